/* Constants shared by the runtime's assembly and C. */
#ifndef TERN_RT_LAYOUT_H
#define TERN_RT_LAYOUT_H

/*
 * GDT selectors, in Linux's x86_64 layout. The order is dictated by SYSCALL/SYSRET (STAR[47:32] =
 * kernel CS, kernel SS = +8; STAR[63:48] = user CS32, user SS = +8, user CS64 = +16), and the
 * user selectors are exactly Linux's (0x2b, 0x33) because kvm_pvm runs ring 3 on the host's own
 * GDT and insists on them (its STAR check compares against the host's __USER_CS).
 */
#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA 0x18
#define SEL_UCODE32 0x20
#define SEL_UDATA 0x28
#define SEL_UCODE64 0x30
#define SEL_TSS 0x40
/* Bytes in the GDT: nine 8-byte slots (0x38 unused), the TSS taking two. */
#define RT_GDT_SIZE 0x50

/* Page-table entry bits (SDM vol. 3, 4.5). */
#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_U 0x4
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS 0x80

#define CR0_PE 0x1
#define CR0_WP 0x10000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_PGE 0x80

#define MSR_EFER 0xc0000080
#define EFER_SCE 0x1
#define EFER_LME 0x100

/* Where the AP start-up trampoline is copied (must be below 1 MiB, 4 KiB aligned). */
#define AP_TRAMPOLINE 0x8000

#endif
