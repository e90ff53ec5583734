/* Ring transitions of the `user` guest: iretq into ring 3, and the SYSCALL entry point. */
#include "layout.h"

    .section .text
    .code64

/* enter_user(rip = rdi, rsp = rsi): an iretq frame with user selectors, RFLAGS.IF clear. */
    .globl enter_user
enter_user:
    pushq   $(SEL_UDATA | 3)
    pushq   %rsi
    pushq   $0x2                    /* RFLAGS: only the always-one bit */
    pushq   $(SEL_UCODE64 | 3)
    pushq   %rdi
    iretq

/*
 * SYSCALL lands here at CPL0 with RCX = user RIP, R11 = user RFLAGS and the user's RSP still
 * loaded. Switch to a kernel stack, call kernel_syscall(rdi, rsi, nr = rax) and sysretq.
 */
    .globl syscall_entry
syscall_entry:
    mov     %rsp, user_rsp_saved(%rip)
    lea     syscall_stack_top(%rip), %rsp
    push    %rcx
    push    %r11
    mov     %rax, %rdx
    call    kernel_syscall
    pop     %r11
    pop     %rcx
    mov     user_rsp_saved(%rip), %rsp
    sysretq

    .section .bss
    .p2align 4
    .skip 8192
syscall_stack_top:
user_rsp_saved:
    .quad 0
