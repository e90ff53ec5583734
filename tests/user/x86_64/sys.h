/* Freestanding x86_64 Linux test support: raw `syscall` wrappers, a tiny printf-less output,
 * and _start. Built with -nostdlib -mgeneral-regs-only, so it runs on an x86_64 frontend
 * without SSE. */
#ifndef TERN_X86_SYS_H
#define TERN_X86_SYS_H

typedef unsigned long u64;
typedef long i64;

#define SYS_write 1
#define SYS_mmap 9
#define SYS_mprotect 10
#define SYS_munmap 11
#define SYS_rt_sigaction 13
#define SYS_rt_sigreturn 15
#define SYS_getpid 39
#define SYS_exit 60
#define SYS_kill 62
#define SYS_uname 63
#define SYS_arch_prctl 158
#define SYS_exit_group 231

static inline i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
    register i64 r10 __asm__("r10") = d;
    register i64 r8 __asm__("r8") = e;
    register i64 r9 __asm__("r9") = f;
    i64 ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define sys3(n, a, b, c) sys6(n, (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)

static __attribute__((unused)) u64 slen(const char *s)
{
    u64 n = 0;
    while (s[n])
        n++;
    return n;
}

static __attribute__((unused)) void puts_(const char *s) { sys3(SYS_write, 1, s, slen(s)); }

static __attribute__((unused)) void putu(u64 v, int base)
{
    char buf[24];
    int i = sizeof buf;
    buf[--i] = 0;
    do {
        int d = (int)(v % (u64)base);
        buf[--i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= (u64)base;
    } while (v);
    puts_(&buf[i]);
}

static __attribute__((noreturn, unused)) void exit_(int code)
{
    for (;;)
        sys3(SYS_exit_group, code, 0, 0);
}

int main(int argc, char **argv);

/* The kernel leaves argc at (%rsp), argv after it; rsp is 16-byte aligned. */
__asm__(".text\n.global _start\n_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov (%rsp), %rdi\n"
        "  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n"
        "  call main\n"
        "  mov %eax, %edi\n"
        "  mov $231, %eax\n"
        "  syscall\n"
        "  hlt\n");

/* The kernel's struct sigaction on x86_64, and the restorer glibc would pass. */
struct ksigaction {
    void *handler;
    u64 flags;
    void (*restorer)(void);
    u64 mask;
};
#define SA_SIGINFO 4
#define SA_RESTORER 0x04000000
#define SA_NODEFER 0x40000000
#define SA_RESETHAND 0x80000000

void tern_restorer(void);
__asm__(".text\n.global tern_restorer\ntern_restorer:\n"
        "  mov $15, %eax\n"
        "  syscall\n"
        "  hlt\n");

static __attribute__((unused)) int sigaction_(int sig, void *handler, u64 flags)
{
    struct ksigaction act = {handler, flags | SA_RESTORER, tern_restorer, 0};
    return (int)sys6(SYS_rt_sigaction, sig, (i64)&act, 0, 8, 0, 0);
}

/* Offsets in siginfo_t and ucontext_t (x86_64). */
#define SI_SIGNO(si) (*(int *)((char *)(si) + 0))
#define SI_CODE(si) (*(int *)((char *)(si) + 8))
#define SI_ADDR(si) (*(u64 *)((char *)(si) + 16))
#define UC_GREG(uc, off) (*(u64 *)((char *)(uc) + 40 + (off)))
#define SC_RAX 104
#define SC_RBX 88
#define SC_RIP 128
#define SC_TRAPNO 160
#define SC_CR2 176
#define SC_FPSTATE 184

#endif
