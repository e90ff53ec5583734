/*
 * mmio: the virtio-mmio slots as a guest sees them. Walks the slots until the first one without
 * the magic value, prints each device's identification registers and checks tern's layout:
 * every device is a modern (version 2) transport, the drives (DeviceID 2) come first and the
 * last device is the virtio-rng (DeviceID 4) -- so without drives the rng is in slot 0.
 */
#include "virtio_mmio.h"

#define MMIO_OK 0x2b /* tern exits with 87 */

void guest_main(void)
{
    unsigned found = 0;
    uint32_t ids[VIRTIO_MMIO_SLOTS];

    for (unsigned i = 0; i < virtio_slot_count() && i < VIRTIO_MMIO_SLOTS; i++) {
        uint64_t base = virtio_slot(i);
        uint32_t magic = mmio_read32(base + VMMIO_MAGIC);
        if (magic != VIRTIO_MAGIC) {
            rt_printf("TERN-MMIO slot %u: no device (magic=0x%08x)\n", i, magic);
            break;
        }
        uint32_t version = mmio_read32(base + VMMIO_VERSION);
        uint32_t device = mmio_read32(base + VMMIO_DEVICE_ID);
        uint32_t vendor = mmio_read32(base + VMMIO_VENDOR_ID);
        rt_printf("TERN-MMIO slot %u: magic=0x%08x version=%u device=%u vendor=0x%08x\n", i, magic, version, device,
                  vendor);
        if (version != 2)
            rt_fail("slot %u: version %u, expected 2 (virtio 1.x)", i, version);
        ids[found++] = device;
    }

    if (found == 0)
        rt_fail("no virtio-mmio device at 0x%lx", VIRTIO_MMIO_BASE);
    for (unsigned i = 0; i + 1 < found; i++)
        if (ids[i] != VIRTIO_ID_BLOCK)
            rt_fail("slot %u: device %u, expected the drives (2) before the rng", i, ids[i]);
    if (ids[found - 1] != VIRTIO_ID_RNG)
        rt_fail("slot %u: device %u, expected the rng (4) last", found - 1, ids[found - 1]);
    rt_printf("TERN-MMIO devices=%u drives=%u rng-slot=%u\n", found, found - 1, found - 1);
    rt_exit(MMIO_OK);
}
