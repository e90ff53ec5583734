/* The test guests' runtime in C: console, exit, interrupts, start-up info. */
#include "rt.h"

/* 16550 registers (offsets from COM1) used by the console. */
#define UART_THR 0
#define UART_LSR 5
#define LSR_THRE 0x20 /* transmit holding register empty */

/* Local APIC registers (offsets from LAPIC_BASE). */
#define LAPIC_ID 0x20
#define LAPIC_EOI 0xb0

struct idt_entry {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr; /* P | DPL | type (0xe: 64-bit interrupt gate) */
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t zero;
} __attribute__((packed));

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iopb_offset;
} __attribute__((packed));

extern char rt_isr_stubs[];

static struct idt_entry idt[256] __attribute__((aligned(16)));
static rt_handler handlers[256];
static struct tss64 tss __attribute__((aligned(16)));
static const struct hvm_start_info *start_info;
static volatile uint32_t console_lock;

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

static void lock_console(void)
{
    /* xchg with memory is implicitly locked. */
    uint32_t taken = 1;
    for (;;) {
        __asm__ volatile("xchg %0, %1" : "+r"(taken), "+m"(console_lock) : : "memory");
        if (!taken)
            return;
        taken = 1;
        cpu_relax();
    }
}

static void unlock_console(void)
{
    barrier();
    console_lock = 0;
}

static void putc_raw(char c)
{
    /* Bounded: a UART that never reports THRE must not hang the guest forever. */
    for (int i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & LSR_THRE); i++)
        cpu_relax();
    outb(COM1 + UART_THR, (uint8_t)c);
}

void rt_putc(char c)
{
    lock_console();
    putc_raw(c);
    unlock_console();
}

void rt_puts(const char *s)
{
    lock_console();
    while (*s)
        putc_raw(*s++);
    unlock_console();
}

static void put_unsigned(uint64_t v, unsigned base, int width, char pad)
{
    char buf[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (n < width && n < (int)sizeof buf)
        buf[n++] = pad;
    while (n)
        putc_raw(buf[--n]);
}

void rt_vprintf(const char *fmt, va_list ap)
{
    lock_console();
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            putc_raw(*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, is_long = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            while (*s)
                putc_raw(*s++);
            break;
        }
        case 'c':
            putc_raw((char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = is_long ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                putc_raw('-');
                v = -v;
            }
            put_unsigned((uint64_t)v, 10, width, pad);
            break;
        }
        case 'u':
            put_unsigned(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad);
            break;
        case 'x':
            put_unsigned(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad);
            break;
        case 'p':
            putc_raw('0');
            putc_raw('x');
            put_unsigned((uint64_t)va_arg(ap, void *), 16, width, pad);
            break;
        case '%':
            putc_raw('%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            putc_raw('%');
            putc_raw(*fmt);
        }
    }
    unlock_console();
}

void rt_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vprintf(fmt, ap);
    va_end(ap);
}

void rt_exit(uint32_t value)
{
    outl(DEBUG_EXIT_PORT, value);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void rt_fail(const char *fmt, ...)
{
    va_list ap;
    rt_puts("TERN-FAIL: ");
    va_start(ap, fmt);
    rt_vprintf(fmt, ap);
    va_end(ap);
    rt_puts("\n");
    rt_exit(RT_EXIT_FAIL);
}

const struct hvm_start_info *rt_start_info(void) { return start_info; }

const char *rt_cmdline(void)
{
    if (!start_info || !start_info->cmdline_paddr)
        return "";
    return (const char *)start_info->cmdline_paddr;
}

int rt_cmdline_has(const char *word)
{
    const char *s = rt_cmdline();
    size_t n = strlen(word);
    while (*s) {
        while (*s == ' ')
            s++;
        const char *end = s;
        while (*end && *end != ' ')
            end++;
        if ((size_t)(end - s) == n && memcmp(s, word, n) == 0)
            return 1;
        s = end;
    }
    return 0;
}

uint64_t rt_cmdline_u64(const char *key, uint64_t fallback)
{
    const char *s = rt_cmdline();
    size_t n = strlen(key);
    while (*s) {
        while (*s == ' ')
            s++;
        if (memcmp(s, key, n) == 0 && s[n] == '=') {
            const char *p = s + n + 1;
            unsigned base = 10;
            if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
                base = 16;
                p += 2;
            }
            uint64_t v = 0;
            int digits = 0;
            for (;; p++, digits++) {
                unsigned d;
                if (*p >= '0' && *p <= '9')
                    d = (unsigned)(*p - '0');
                else if (base == 16 && *p >= 'a' && *p <= 'f')
                    d = (unsigned)(*p - 'a' + 10);
                else if (base == 16 && *p >= 'A' && *p <= 'F')
                    d = (unsigned)(*p - 'A' + 10);
                else
                    break;
                v = v * base + d;
            }
            if (digits && (*p == ' ' || *p == 0))
                return v;
            return fallback;
        }
        while (*s && *s != ' ')
            s++;
    }
    return fallback;
}

static void set_gate(unsigned vector, uint64_t target, unsigned dpl)
{
    struct idt_entry *e = &idt[vector];
    e->offset_lo = (uint16_t)target;
    e->selector = SEL_KCODE64;
    e->ist = 0;
    e->type_attr = (uint8_t)(0x80 | (dpl << 5) | 0xe);
    e->offset_mid = (uint16_t)(target >> 16);
    e->offset_hi = (uint32_t)(target >> 32);
    e->zero = 0;
}

void rt_set_handler(uint8_t vector, rt_handler handler) { handlers[vector] = handler; }

void rt_set_gate_dpl(uint8_t vector, unsigned dpl)
{
    set_gate(vector, (uint64_t)(rt_isr_stubs + 16 * vector), dpl);
}

void rt_load_idt(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" ::"m"(desc));
}

void rt_lapic_eoi(void) { mmio_write32(LAPIC_BASE + LAPIC_EOI, 0); }

uint32_t rt_lapic_id(void) { return mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24; }

/* Called from isr.S for every vector. */
void rt_interrupt(struct rt_frame *frame)
{
    rt_handler h = handlers[frame->vector & 0xff];
    if (h) {
        h(frame);
        return;
    }
    if (frame->vector < 32) {
        uint64_t cr2 = 0;
        if (frame->vector == 14)
            __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        rt_printf("TERN-EXCEPTION vector=%lu (%s) error=0x%lx rip=0x%lx cs=0x%lx cr2=0x%lx\n", frame->vector,
                  exception_names[frame->vector], frame->error, frame->rip, frame->cs, cr2);
    } else {
        rt_printf("TERN-EXCEPTION unexpected interrupt vector=%lu rip=0x%lx\n", frame->vector, frame->rip);
    }
    rt_exit(RT_EXIT_EXCEPTION);
}

void rt_map_user_2m(uint64_t addr)
{
    if (addr >= (1UL << 30))
        rt_fail("rt_map_user_2m: 0x%lx is beyond the first GiB", addr);
    pd[addr >> 21] |= PTE_U;
    __asm__ volatile("invlpg (%0)" ::"r"(addr) : "memory");
}

void rt_load_tss(uint64_t rsp0)
{
    tss.rsp[0] = rsp0;
    tss.iopb_offset = sizeof tss; /* no I/O permission bitmap: ring 3 has no port access */
    uint64_t base = (uint64_t)&tss;
    uint64_t limit = sizeof tss - 1;
    uint64_t *d = (uint64_t *)(rt_gdt + SEL_TSS);
    /* System descriptor, type 9 (available 64-bit TSS), present, DPL 0 (SDM vol. 3, 8.2.3). */
    d[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89UL << 40) | (((limit >> 16) & 0xf) << 48) |
           (((base >> 24) & 0xff) << 56);
    d[1] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
}

uint64_t rt_deadline(uint64_t ms) { return rdtsc() + ms * 3000000UL; }

int rt_expired(uint64_t deadline) { return (int64_t)(rdtsc() - deadline) > 0; }

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* Entered from entry.S in long mode with the boot stack. */
void rt_start(const struct hvm_start_info *si)
{
    if (si && si->magic == HVM_START_MAGIC)
        start_info = si;
    for (unsigned v = 0; v < 256; v++)
        rt_set_gate_dpl((uint8_t)v, 0);
    rt_load_idt();
    if (!start_info)
        rt_puts("TERN-WARN: no hvm_start_info (bad magic)\n");
    guest_main();
    rt_fail("guest_main returned");
}
