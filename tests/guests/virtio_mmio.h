/* virtio-mmio transport registers (virtio 1.x spec, 4.2.2) and tern's slot layout. */
#ifndef TERN_VIRTIO_MMIO_H
#define TERN_VIRTIO_MMIO_H

#include "rt.h"

/* tern: slot i at 0xd0000000 + i * 0x1000; drives first, then one virtio-rng. */
#define VIRTIO_MMIO_BASE 0xd0000000UL
#define VIRTIO_MMIO_STRIDE 0x1000UL
#define VIRTIO_MMIO_SLOTS 8

#define VIRTIO_MAGIC 0x74726976 /* "virt", little-endian */

#define VMMIO_MAGIC 0x000
#define VMMIO_VERSION 0x004
#define VMMIO_DEVICE_ID 0x008
#define VMMIO_VENDOR_ID 0x00c
#define VMMIO_DEVICE_FEATURES 0x010
#define VMMIO_DEVICE_FEATURES_SEL 0x014
#define VMMIO_DRIVER_FEATURES 0x020
#define VMMIO_DRIVER_FEATURES_SEL 0x024
#define VMMIO_QUEUE_SEL 0x030
#define VMMIO_QUEUE_NUM_MAX 0x034
#define VMMIO_QUEUE_NUM 0x038
#define VMMIO_QUEUE_READY 0x044
#define VMMIO_QUEUE_NOTIFY 0x050
#define VMMIO_INTERRUPT_STATUS 0x060
#define VMMIO_INTERRUPT_ACK 0x064
#define VMMIO_STATUS 0x070
#define VMMIO_QUEUE_DESC_LOW 0x080
#define VMMIO_QUEUE_DESC_HIGH 0x084
#define VMMIO_QUEUE_DRIVER_LOW 0x090
#define VMMIO_QUEUE_DRIVER_HIGH 0x094
#define VMMIO_QUEUE_DEVICE_LOW 0x0a0
#define VMMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VMMIO_CONFIG_GENERATION 0x0fc
#define VMMIO_CONFIG 0x100

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4

/*
 * Slot address and count. `vmmio-base=`, `vmmio-stride=` and `vmmio-slots=` on the command line
 * override tern's layout, so the guests can also be tried on QEMU's microvm (base 0xfeb00000,
 * stride 0x200, 24 slots, devices from the last slot down).
 */
static inline unsigned virtio_slot_count(void)
{
    uint64_t n = rt_cmdline_u64("vmmio-slots", VIRTIO_MMIO_SLOTS);
    return n > 64 ? 64 : (unsigned)n;
}

static inline uint64_t virtio_slot(unsigned i)
{
    return rt_cmdline_u64("vmmio-base", VIRTIO_MMIO_BASE) + i * rt_cmdline_u64("vmmio-stride", VIRTIO_MMIO_STRIDE);
}

#endif
