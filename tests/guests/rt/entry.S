/*
 * PVH entry of the test guests: the loader enters pvh_start32 in 32-bit protected mode, paging
 * off, flat segments, interrupts off, EBX = physical address of hvm_start_info, ESP undefined.
 * We install our own GDT, build identity page tables for the first 4 GiB, enter long mode and
 * call rt_start(start_info) in C.
 *
 * CPL0 code is emulated one instruction at a time under kvm_pvm, so this path is kept short:
 * the first GiB uses 2 MiB pages (512 entries; the `user` guest marks single 2 MiB pages U/S),
 * the other three 1 GiB pages when CPUID.80000001h:EDX[26] says the CPU has them, else 2 MiB.
 */
#include "layout.h"

/* Xen PVH ELF note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), desc = 32-bit entry. */
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4                 /* namesz */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .long pvh_start32
    .p2align 2

    .section .text.entry, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    mov     %ebx, %edi              /* hvm_start_info, becomes rt_start's first argument */
    lgdt    gdt_desc
    ljmp    $SEL_KCODE32, $1f
1:  mov     $SEL_KDATA, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    mov     %eax, %fs
    mov     %eax, %gs
    mov     $boot_stack_top, %esp

    /* PML4[0] -> PDPT. Non-leaf entries carry U/S=1: leaf entries decide who may access. */
    mov     $pdpt, %eax
    or      $(PTE_P | PTE_W | PTE_U), %eax
    mov     %eax, pml4

    /* 1 GiB pages available? */
    mov     $0x80000001, %eax
    cpuid
    xor     %ebp, %ebp
    bt      $26, %edx
    jnc     2f
    inc     %ebp
2:  mov     %ebp, rt_gib_pages

    /* PDPT[i] -> pd[i] for the GiBs that use 2 MiB pages (only GiB 0 with 1 GiB pages). */
    mov     $1, %ecx                /* number of page directories in use */
    test    %ebp, %ebp
    jnz     3f
    mov     $4, %ecx
3:  xor     %esi, %esi              /* GiB index */
4:  mov     %esi, %eax
    shl     $12, %eax
    add     $pd, %eax
    or      $(PTE_P | PTE_W | PTE_U), %eax
    mov     %eax, pdpt(,%esi,8)
    inc     %esi
    cmp     %ecx, %esi
    jb      4b
    /* Remaining GiBs (1..3) as 1 GiB pages; GiB 3 (MMIO, APICs) uncached. */
5:  cmp     $4, %esi
    jae     6f
    mov     %esi, %eax
    shl     $30, %eax
    or      $(PTE_P | PTE_W | PTE_PS), %eax
    cmp     $3, %esi
    jne     55f
    or      $(PTE_PWT | PTE_PCD), %eax
55: mov     %eax, pdpt(,%esi,8)
    inc     %esi
    jmp     5b

    /* 2 MiB entries: ecx*512 of them, address = index << 21. */
6:  shl     $9, %ecx
    xor     %esi, %esi
7:  mov     %esi, %eax
    shl     $21, %eax
    or      $(PTE_P | PTE_W | PTE_PS), %eax
    cmp     $(3 * 512), %esi
    jb      8f
    or      $(PTE_PWT | PTE_PCD), %eax
8:  mov     %eax, pd(,%esi,8)
    inc     %esi
    cmp     %ecx, %esi
    jb      7b

    mov     $long_mode_64, %ebx
    jmp     enter_long_mode

/*
 * Common to the BSP and the APs: PAE, CR3, EFER.LME, paging, then far jump to the 64-bit
 * address in EBX (through an indirect far pointer, as EBX is a run-time value).
 */
    .globl enter_long_mode
enter_long_mode:
    mov     %cr4, %eax
    or      $(CR4_PAE | CR4_PGE), %eax
    mov     %eax, %cr4
    mov     $pml4, %eax
    mov     %eax, %cr3
    mov     $MSR_EFER, %ecx
    rdmsr
    or      $EFER_LME, %eax
    wrmsr
    mov     %cr0, %eax
    or      $(CR0_PG | CR0_PE | CR0_WP), %eax
    mov     %eax, %cr0
    push    $SEL_KCODE64
    push    %ebx
    lret

    .code64
long_mode_64:
    mov     $SEL_KDATA, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    xor     %eax, %eax
    mov     %eax, %fs
    mov     %eax, %gs
    mov     $boot_stack_top, %rsp
    xor     %ebp, %ebp
    /* rdi still holds hvm_start_info (zero-extended by the 32-bit mov). */
    call    rt_start
9:  cli
    hlt
    jmp     9b

/* GDT: see the selectors in layout.h. The TSS descriptor is filled at run time. */
    .section .data
    .p2align 4
    .globl rt_gdt
rt_gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00cf9a000000ffff        /* 0x08 kernel code, 32-bit (entry, AP trampoline) */
    .quad 0x00af9a000000ffff        /* 0x10 kernel code, 64-bit */
    .quad 0x00cf92000000ffff        /* 0x18 kernel data */
    .quad 0x00cffa000000ffff        /* 0x20 user code, 32-bit (DPL 3; only STAR's base) */
    .quad 0x00cff2000000ffff        /* 0x28 user data (DPL 3) */
    .quad 0x00affa000000ffff        /* 0x30 user code, 64-bit (DPL 3) */
    .quad 0                         /* 0x38 unused */
    .quad 0, 0                      /* 0x40 TSS */
rt_gdt_end:
    .p2align 3
    .word 0
    .globl gdt_desc
gdt_desc:
    .word rt_gdt_end - rt_gdt - 1
    .quad rt_gdt

    .section .bss
    .p2align 12
    .globl pml4, pdpt, pd
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4 * 4096
    .p2align 4
boot_stack:
    .skip 16384
    .globl boot_stack_top
boot_stack_top:
    .globl rt_gib_pages
rt_gib_pages:
    .long 0
