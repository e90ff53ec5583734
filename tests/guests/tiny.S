/*
 * tiny: the smallest useful PVH guest, for the boot benchmark (benches/boot-vs-qemu.sh). It
 * stays in the 32-bit protected mode PVH enters with (no page tables, no IDT, no long mode), so
 * that almost all of the time measured is the VMM's: print one line on COM1, exit through
 * isa-debug-exit with 0x2a (status 85).
 */
    .set    COM1, 0x3f8
    .set    DEBUG_EXIT, 0xf4

    .section .note.Xen, "a", @note
    .balign 4
    .long   4                       /* name size: "Xen\0" */
    .long   4                       /* descriptor size */
    .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz  "Xen"
    .long   start

    .text
    .code32
    .globl  start
start:
    mov     $message, %esi
1:  movzbl  (%esi), %eax
    test    %al, %al
    jz      2f
    mov     $COM1, %dx
    out     %al, %dx
    inc     %esi
    jmp     1b
2:  mov     $0x2a, %eax
    mov     $DEBUG_EXIT, %dx
    out     %eax, %dx
    hlt
    jmp     2b

    .section .rodata
message:
    .asciz  "TERN-TEST hello\n"
