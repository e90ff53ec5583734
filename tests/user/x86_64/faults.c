/* Dies of the fault argv[1] names (null, ud2, int3, div0, hlt) with no handler: the exit
 * status says which signal (SIGSEGV, SIGILL, SIGTRAP, SIGFPE, SIGSEGV) */
#include "sys.h"

static int eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 100;
    const char *w = argv[1];
    puts_("about to fault: ");
    puts_(w);
    puts_("\n");
    if (eq(w, "null"))
        return *(volatile int *)0;
    if (eq(w, "ud2"))
        __asm__ volatile("ud2");
    if (eq(w, "int3"))
        __asm__ volatile("int3");
    if (eq(w, "hlt"))
        __asm__ volatile("hlt");
    if (eq(w, "div0")) {
        volatile u64 z = 0;
        u64 q;
        __asm__ volatile("xor %%edx, %%edx\n mov $7, %%eax\n divq %1" : "=&a"(q) : "r"(z) : "rdx");
        return (int)q;
    }
    return 101;
}
