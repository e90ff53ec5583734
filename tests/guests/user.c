/*
 * user: code at CPL3. The kernel part sets up a TSS (RSP0), the SYSCALL MSRs and a DPL-3 gate
 * for int 0x80, then iretq's to a ring-3 function in the 2 MiB page at 4 MiB (the only page
 * with U/S set). Ring 3 runs the hot loops (under kvm_pvm CPL3 runs natively while CPL0 is
 * emulated) and reports each result once through SYSCALL and once through int 0x80; the kernel
 * prints the result and the privilege levels each path saw. `int80` on the command line skips the
 * SYSCALL leg; `ud2` returns through an exception instead (kvm_pvm does not deliver SYSCALL or
 * int 0x80 from ring 3 to a non-PVM guest, see the tests).
 *
 * The loops iterate xorshift64 (13, 7, 17) USER_ROUNDS times from two seeds; the host test
 * computes the same values to check the printed results.
 */
#include "rt.h"

#define USER_OK 0x2e /* tern exits with 93 */

#define USER_ROUNDS 8000000UL
#define USER_SEED_SYSCALL 0x0123456789abcdefUL
#define USER_SEED_INT80 0xfedcba9876543210UL

#define SYS_REPORT_SYSCALL 1
#define SYS_REPORT_INT80 2
#define SYS_REPORT_UD2 3

/* How ring 3 gets back to the kernel, chosen on the command line. */
#define PATH_BOTH 0  /* default: SYSCALL, then int 0x80 */
#define PATH_INT80 1 /* `int80`: int 0x80 only */
#define PATH_UD2 2   /* `ud2`: an exception (#UD) only */
#define INT80_VECTOR 0x80

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SFMASK 0xc0000084
/* RFLAGS bits SYSCALL clears: TF, IF, DF, NT, AC. */
#define SFMASK_BITS 0x47700UL

void enter_user(void (*rip)(void), uint64_t rsp) __attribute__((noreturn));
void syscall_entry(void);
uint64_t kernel_syscall(uint64_t a0, uint64_t a1, uint64_t nr);

extern char __user_start[], __user_end[];

static uint8_t kernel_stack[16384] __attribute__((aligned(16)));
static uint8_t user_stack[8192] __attribute__((section(".user.data"), aligned(16)));
/* Written by the kernel before entering ring 3; lives in the user page so ring 3 may read it. */
static volatile uint32_t user_path __attribute__((section(".user.data")));

static uint64_t syscall_result;
static unsigned syscall_user_cpl, syscall_kernel_cpl;

/* ---- ring 3: nothing here may touch kernel memory or call kernel functions ---- */

__attribute__((section(".user.text"), noinline)) static uint64_t user_spin(uint64_t x)
{
    for (uint64_t i = 0; i < USER_ROUNDS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __asm__ volatile("" : "+r"(x)); /* keep the loop a loop */
    }
    return x;
}

__attribute__((section(".user.text"), noreturn)) static void user_main(void)
{
    uint64_t cs, ret, r;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    uint64_t cpl = cs & 3;

    if (user_path == PATH_BOTH) {
        r = user_spin(USER_SEED_SYSCALL);
        /* This kernel's SYSCALL convention: the C call clobbers every caller-saved register. */
        __asm__ volatile("syscall"
                         : "=a"(ret), "+D"(r), "+S"(cpl)
                         : "a"(SYS_REPORT_SYSCALL)
                         : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory");
        (void)ret;
        cpl = cs & 3;
    }

    r = user_spin(USER_SEED_INT80);
    if (user_path == PATH_UD2)
        __asm__ volatile("ud2" : : "a"(SYS_REPORT_UD2), "D"(r), "S"(cpl) : "memory");
    else
        __asm__ volatile("int $0x80" : : "a"(SYS_REPORT_INT80), "D"(r), "S"(cpl) : "memory");
    for (;;)
        ; /* the int 0x80 and #UD handlers end the run */
}

/* ---- ring 0 ---- */

uint64_t kernel_syscall(uint64_t a0, uint64_t a1, uint64_t nr)
{
    if (nr != SYS_REPORT_SYSCALL)
        rt_fail("syscall number %lu, expected %u", nr, SYS_REPORT_SYSCALL);
    syscall_result = a0;
    syscall_user_cpl = (unsigned)a1;
    syscall_kernel_cpl = read_cs() & 3;
    rt_printf("TERN-USER syscall: result=0x%016lx user-cpl=%u kernel-cpl=%u\n", a0, syscall_user_cpl,
              syscall_kernel_cpl);
    return 0;
}

/* The end of every path: report what ring 3 computed and which privilege levels were seen. */
static void report_trap(struct rt_frame *f, const char *path, uint64_t nr)
{
    if (f->rax != nr)
        rt_fail("%s with rax=%lu, expected %lu", path, f->rax, nr);
    unsigned kernel_cpl = read_cs() & 3;
    rt_printf("TERN-USER %s: result=0x%016lx user-cpl=%lu frame-cs=0x%lx kernel-cpl=%u\n", path, f->rdi, f->rsi,
              f->cs, kernel_cpl);
    if (f->rsi != 3 || (f->cs & 3) != 3 || (user_path == PATH_BOTH && syscall_user_cpl != 3))
        rt_fail("ring-3 code did not run at CPL3");
    if (kernel_cpl != 0 || (user_path == PATH_BOTH && syscall_kernel_cpl != 0))
        rt_fail("the kernel paths did not run at CPL0");
    rt_puts("TERN-USER ok\n");
    rt_exit(USER_OK);
}

static void int80_handler(struct rt_frame *f) { report_trap(f, "int80", SYS_REPORT_INT80); }

static void ud_handler(struct rt_frame *f)
{
    if ((f->cs & 3) != 3) {
        rt_printf("TERN-EXCEPTION vector=6 (#UD) in the kernel rip=0x%lx\n", f->rip);
        rt_exit(RT_EXIT_EXCEPTION);
    }
    const uint8_t *insn = (const uint8_t *)f->rip;
    if (insn[0] == 0xcd && insn[1] == 0x80)
        rt_fail("int 0x80 at CPL3 (rip=0x%lx) raised #UD instead of entering the DPL-3 gate", f->rip);
    report_trap(f, "ud2", SYS_REPORT_UD2);
}

/* A page fault fetching syscall_entry from ring 3 means SYSCALL jumped without changing CPL. */
static void pf_handler(struct rt_frame *f)
{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    if ((f->cs & 3) == 3 && f->rip == (uint64_t)syscall_entry)
        rt_fail("SYSCALL reached LSTAR (0x%lx) still at CPL3 (cs=0x%lx): no switch to ring 0", f->rip, f->cs);
    rt_printf("TERN-EXCEPTION vector=14 (#PF) error=0x%lx rip=0x%lx cs=0x%lx cr2=0x%lx\n", f->error, f->rip, f->cs,
              cr2);
    rt_exit(RT_EXIT_EXCEPTION);
}

void guest_main(void)
{
    if ((uint64_t)__user_start != 0x400000 || (uint64_t)__user_end > 0x600000)
        rt_fail("user code/data at 0x%lx..0x%lx, expected inside 0x400000..0x600000",
                (uint64_t)__user_start, (uint64_t)__user_end);
    rt_map_user_2m((uint64_t)__user_start);
    rt_load_tss((uint64_t)(kernel_stack + sizeof kernel_stack));

    user_path = rt_cmdline_has("ud2") ? PATH_UD2 : rt_cmdline_has("int80") ? PATH_INT80 : PATH_BOTH;
    rt_set_handler(INT80_VECTOR, int80_handler);
    rt_set_handler(6, ud_handler);
    rt_set_handler(14, pf_handler);
    rt_set_gate_dpl(INT80_VECTOR, 3);

    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
    /* SYSCALL: CS = 0x10, SS = 0x18. SYSRET (64-bit): CS = 0x20 + 16, SS = 0x20 + 8, RPL 3. */
    wrmsr(MSR_STAR, ((uint64_t)(SEL_UCODE32 | 3) << 48) | ((uint64_t)SEL_KCODE64 << 32));
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_SFMASK, SFMASK_BITS);

    rt_printf("TERN-USER entering ring 3 at 0x%lx\n", (uint64_t)user_main);
    enter_user(user_main, (uint64_t)(user_stack + sizeof user_stack));
}
