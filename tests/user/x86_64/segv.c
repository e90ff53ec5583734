/* A load from NULL: a SIGSEGV handler sees si_addr 0, SEGV_MAPERR, trapno 14 and cr2 0, and
 * resumes after the faulting instruction by editing the saved rip */
#include "sys.h"

#define SIGSEGV 11

static void handler(int sig, void *si, void *uc)
{
    puts_("SIGSEGV handler: sig ");
    putu((u64)sig, 10);
    puts_(" addr ");
    putu(SI_ADDR(si), 16);
    puts_(" code ");
    putu((u64)SI_CODE(si), 10);
    puts_(" trapno ");
    putu(UC_GREG(uc, SC_TRAPNO), 10);
    puts_(" cr2 ");
    putu(UC_GREG(uc, SC_CR2), 16);
    puts_("\n");
    UC_GREG(uc, SC_RIP) += 2; /* mov (%rax), %eax is 8b 00 */
    UC_GREG(uc, SC_RAX) = 99;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    sigaction_(SIGSEGV, handler, SA_SIGINFO);
    u64 v;
    __asm__ volatile("xor %%eax, %%eax\n .byte 0x8b, 0x00\n mov %%rax, %0" : "=r"(v) : : "rax", "memory");
    puts_("resumed with rax ");
    putu(v, 10);
    puts_("\n");
    return 5;
}
