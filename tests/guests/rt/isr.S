/*
 * Interrupt and exception entry: 256 stubs, 16 bytes apart (rt_isr_stubs + 16 * vector), each
 * pushing a dummy error code when the CPU does not push one (SDM vol. 3, table 6-1) and the
 * vector, then a common path that saves the general registers, calls rt_interrupt(frame) and
 * returns with iretq. The frame layout is struct rt_frame in rt.h.
 */
    .section .text
    .code64
    .p2align 4
    .globl rt_isr_stubs
rt_isr_stubs:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq   $0
    .endif
    pushq   $vec
    jmp     isr_common
    .set vec, vec + 1
    .endr

isr_common:
    cld
    push    %rax
    push    %rbx
    push    %rcx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %rbp
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    mov     %rsp, %rdi
    call    rt_interrupt
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rbp
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rbx
    pop     %rax
    add     $16, %rsp               /* vector and error code */
    iretq
