/*
 * triple: an undeliverable exception. With an IDT of limit 0, #UD cannot be delivered (#GP),
 * nor can #GP (#DF), nor #DF: the CPU shuts down. tern must end with status 4.
 */
#include "rt.h"

void guest_main(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = {0, 0};
    rt_puts("TERN-TRIPLE: loading an empty IDT and executing ud2\n");
    __asm__ volatile("lidt %0; ud2" ::"m"(empty));
    rt_fail("survived ud2 with an empty IDT");
}
