/* rt_sigaction with a restorer, a signal sent to itself, the handler's siginfo and
 * ucontext, and rt_sigreturn restoring every register the interrupted code held */
#include "sys.h"

#define SIGUSR1 10
static volatile int got;
static volatile u64 saved_rbx;

static void handler(int sig, void *si, void *uc)
{
    got = sig;
    puts_("handler: signal ");
    putu((u64)sig, 10);
    puts_(" si_signo ");
    putu((u64)SI_SIGNO(si), 10);
    puts_(" si_code ");
    putu((u64)(unsigned)SI_CODE(si), 10);
    puts_(UC_GREG(uc, SC_FPSTATE) != 0 ? " fpstate set\n" : " fpstate missing\n");
    saved_rbx = UC_GREG(uc, SC_RBX);
    /* Clobber callee-saved registers: sigreturn must bring them back. */
    __asm__ volatile("mov $0, %%rbx\n mov $0, %%r12\n mov $0, %%r13" ::: "rbx", "r12", "r13");
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (sigaction_(SIGUSR1, handler, SA_SIGINFO) != 0)
        return 1;
    u64 rbx_after, r12_after;
    __asm__ volatile("mov $0x1234, %%rbx\n"
                     "mov $0x5678, %%r12\n"
                     "mov $39, %%eax\n syscall\n"      /* getpid */
                     "mov %%rax, %%rdi\n mov $10, %%esi\n mov $62, %%eax\n syscall\n" /* kill */
                     "mov %%rbx, %0\n mov %%r12, %1\n"
                     : "=r"(rbx_after), "=r"(r12_after)
                     :
                     : "rax", "rdi", "rsi", "rcx", "r11", "rbx", "r12", "memory");
    puts_("back in main: got ");
    putu((u64)got, 10);
    puts_(" rbx ");
    putu(rbx_after, 16);
    puts_(" r12 ");
    putu(r12_after, 16);
    puts_(" saved rbx ");
    putu(saved_rbx, 16);
    puts_("\n");
    return 0;
}
