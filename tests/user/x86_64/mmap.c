/* anonymous mmap, munmap and mprotect through raw syscalls */
#include "sys.h"

#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    u64 len = 3 * 4096;
    i64 p = sys6(SYS_mmap, 0, (i64)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p < 0 && p > -4096)
        return 1;
    u64 *w = (u64 *)p;
    u64 zero = 1;
    for (u64 i = 0; i < len / 8; i++)
        if (w[i] != 0)
            zero = 0;
    for (u64 i = 0; i < len / 8; i++)
        w[i] = i * i;
    u64 sum = 0;
    for (u64 i = 0; i < len / 8; i++)
        sum += w[i];
    puts_(zero ? "fresh pages are zero\n" : "fresh pages NOT zero\n");
    puts_("sum ");
    putu(sum, 10);
    puts_("\n");
    i64 r = sys3(SYS_mprotect, p + 4096, 4096, PROT_READ);
    puts_("mprotect ");
    putu((u64)r, 10);
    puts_(", munmap ");
    putu((u64)sys3(SYS_munmap, p, len, 0), 10);
    puts_("\n");
    i64 bad = sys6(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, 12345, 0);
    puts_("file mmap of a bad fd -> -");
    putu((u64)-bad, 10);
    puts_("\n");
    return 0;
}
