/*
 * AP start-up. The BSP copies [ap_trampoline_start, ap_trampoline_end) to AP_TRAMPOLINE (0x8000)
 * and sends INIT-SIPI-SIPI with vector 0x08: the AP starts in real mode at 0800:0000. The
 * trampoline loads the runtime's GDT, enables protection and jumps to ap_entry32 in the image
 * (identity-mapped, so absolute addresses hold), which takes the BSP's path into long mode with
 * the BSP's page tables and calls ap_main on the stack in ap_stack_top.
 */
#include "layout.h"

    .section .text
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    xor     %ax, %ax
    mov     %ax, %ds
    /* 32-bit operand size: load all 32 bits of the GDT base. */
    lgdtl   AP_TRAMPOLINE + (tramp_gdt_desc - ap_trampoline_start)
    mov     %cr0, %eax
    or      $CR0_PE, %eax
    mov     %eax, %cr0
    ljmpl   $SEL_KCODE32, $ap_entry32
    .p2align 2
tramp_gdt_desc:
    .word   RT_GDT_SIZE - 1
    .long   rt_gdt
ap_trampoline_end:

    .code32
ap_entry32:
    mov     $SEL_KDATA, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    mov     %eax, %fs
    mov     %eax, %gs
    mov     ap_stack_top, %esp      /* low half; enter_long_mode pushes a far pointer */
    mov     $ap_long64, %ebx
    jmp     enter_long_mode

    .code64
ap_long64:
    mov     $SEL_KDATA, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    xor     %eax, %eax
    mov     %eax, %fs
    mov     %eax, %gs
    mov     ap_stack_top(%rip), %rsp
    call    ap_main
1:  cli
    hlt
    jmp     1b
