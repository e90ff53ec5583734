/* write(2) and exit_group(2) through raw syscalls; the status is 7 */
#include "sys.h"

int main(int argc, char **argv)
{
    puts_("hello from x86_64, argc ");
    putu((u64)argc, 10);
    puts_(", argv[1] ");
    puts_(argc > 1 ? argv[1] : "(none)");
    puts_("\n");
    u64 x = 1;
    for (int i = 0; i < 20; i++)
        x = x * 3 + (u64)i;
    puts_("x = ");
    putu(x, 16);
    puts_("\n");
    return 7;
}
