/*
 * smp: starting a second CPU the way a PC kernel does. The BSP sends INIT, then two start-up IPIs
 * through its local APIC to APIC ID 1 (parked in wait-for-SIPI); the AP runs the trampoline at
 * 0x8000 (real mode -> protected mode -> long mode, sharing the BSP's page tables), prints
 * "TERN-CPU <id> up" and raises a flag. The BSP waits for the flag (bounded), then reports the
 * APIC IDs seen. Run with --smp 2.
 */
#include "rt.h"

#define SMP_OK 0x2f /* tern exits with 95 */

#define TARGET_APIC_ID 1

/* Local APIC registers. */
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define SVR_ENABLE 0x100
#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600
#define ICR_LEVEL_ASSERT 0x00004000
#define ICR_SEND_PENDING 0x00001000

extern char ap_trampoline_start[], ap_trampoline_end[];

uint64_t ap_stack_top;
static uint8_t ap_stack[16384] __attribute__((aligned(16)));
static volatile uint32_t ap_up, ap_apic_id;

void ap_main(void)
{
    rt_load_idt();
    uint32_t id = rt_lapic_id();
    rt_printf("TERN-CPU %u up\n", id);
    ap_apic_id = id;
    barrier();
    ap_up = 1;
    for (;;)
        __asm__ volatile("cli; hlt");
}

static void wait_ms(uint64_t ms)
{
    uint64_t deadline = rt_deadline(ms);
    while (!rt_expired(deadline))
        cpu_relax();
}

static void send_ipi(uint32_t apic_id, uint32_t command)
{
    mmio_write32(LAPIC_BASE + LAPIC_ICR_HI, apic_id << 24);
    mmio_write32(LAPIC_BASE + LAPIC_ICR_LO, command);
    uint64_t deadline = rt_deadline(100);
    while (mmio_read32(LAPIC_BASE + LAPIC_ICR_LO) & ICR_SEND_PENDING) {
        if (rt_expired(deadline))
            rt_fail("IPI 0x%x to APIC %u still pending", command, apic_id);
        cpu_relax();
    }
}

void guest_main(void)
{
    uint32_t bsp = rt_lapic_id();
    rt_printf("TERN-CPU %u up\n", bsp);

    size_t len = (size_t)(ap_trampoline_end - ap_trampoline_start);
    memcpy((void *)AP_TRAMPOLINE, ap_trampoline_start, len);
    ap_stack_top = (uint64_t)(ap_stack + sizeof ap_stack);
    barrier();

    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | 0xff);
    send_ipi(TARGET_APIC_ID, ICR_INIT | ICR_LEVEL_ASSERT);
    wait_ms(10);
    for (int i = 0; i < 2 && !ap_up; i++) {
        send_ipi(TARGET_APIC_ID, ICR_STARTUP | ICR_LEVEL_ASSERT | (AP_TRAMPOLINE >> 12));
        wait_ms(1);
    }

    uint64_t deadline = rt_deadline(5000);
    while (!ap_up) {
        if (rt_expired(deadline))
            rt_fail("AP %u did not come up after INIT-SIPI-SIPI", TARGET_APIC_ID);
        cpu_relax();
    }
    rt_printf("TERN-SMP cpus=2 apic-ids=%u,%u\n", bsp, ap_apic_id);
    if (ap_apic_id != TARGET_APIC_ID)
        rt_fail("the AP reports APIC ID %u, expected %u", ap_apic_id, TARGET_APIC_ID);
    rt_exit(SMP_OK);
}
