/* hello: the smallest guest. Proves the PVH entry, long mode, the UART and isa-debug-exit. */
#include "rt.h"

#define HELLO_OK 0x2a /* tern exits with 85 */

void guest_main(void)
{
    rt_puts("TERN-TEST hello\n");
    rt_printf("TERN-CMDLINE: %s\n", rt_cmdline());
    rt_exit(HELLO_OK);
}
