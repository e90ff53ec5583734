/* The test guests' runtime: console, exit, port and MMIO access, interrupts, start-up info. */
#ifndef TERN_RT_H
#define TERN_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* Values written to isa-debug-exit; tern exits with (v << 1) | 1. Success codes are per guest. */
#define RT_EXIT_FAIL 0x60      /* a check failed (status 193) */
#define RT_EXIT_EXCEPTION 0x61 /* an unexpected exception or interrupt (status 195) */

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4
#define LAPIC_BASE 0xfee00000UL
#define IOAPIC_BASE 0xfec00000UL

/* Registers as saved by isr.S, lowest address first. */
struct rt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* xen/include/public/arch-x86/hvm/start_info.h layout, version 1. */
struct hvm_start_info {
    uint32_t magic; /* 0x336ec578 */
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
#define HVM_START_MAGIC 0x336ec578

typedef void (*rt_handler)(struct rt_frame *frame);

/* Provided by each guest. */
void guest_main(void);

/* Console (COM1, polled) and formatted output: %s %c %d %u %x %p, 'l' and zero-pad width. */
void rt_putc(char c);
void rt_puts(const char *s);
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_vprintf(const char *fmt, va_list ap);

/* Ends the run through isa-debug-exit; halts forever if nothing listens on the port. */
__attribute__((noreturn)) void rt_exit(uint32_t value);
/* Prints "TERN-FAIL: <message>" and exits with RT_EXIT_FAIL. */
__attribute__((noreturn, format(printf, 1, 2))) void rt_fail(const char *fmt, ...);

/* Start-up information and command line (empty string when there is none). */
const struct hvm_start_info *rt_start_info(void);
const char *rt_cmdline(void);
/* True when the command line holds `word` as a whole space-separated token. */
int rt_cmdline_has(const char *word);
/* The number in a `key=NUMBER` token (decimal or 0x-hex), or `fallback` when absent/malformed. */
uint64_t rt_cmdline_u64(const char *key, uint64_t fallback);

/* Interrupts: handlers for any vector; gate DPL 3 lets ring 3 reach it with `int n`. */
void rt_set_handler(uint8_t vector, rt_handler handler);
void rt_set_gate_dpl(uint8_t vector, unsigned dpl);
void rt_load_idt(void);
void rt_lapic_eoi(void);
uint32_t rt_lapic_id(void);

/* Marks the 2 MiB page holding `addr` (first GiB only) as user-accessible. */
void rt_map_user_2m(uint64_t addr);
/* Loads a 64-bit TSS whose RSP0 is `rsp0`. */
void rt_load_tss(uint64_t rsp0);

/* Deadline helpers on the TSC, counting 3 GHz as a guess of its rate (the guests have no timer
 * calibration): only to bound polling loops so a broken device cannot hang a guest. */
uint64_t rt_deadline(uint64_t ms);
int rt_expired(uint64_t deadline);

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

extern char rt_gdt[];
extern uint32_t rt_gib_pages;
extern uint64_t pd[];

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline uint16_t read_cs(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return cs;
}

#endif
