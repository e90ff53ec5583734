//! The riscv64 machine's physical memory map, modelled on QEMU's `virt` board so that the same
//! kernels and firmware run unchanged.

/// The SiFive test device (power-off, reset).
pub const TEST_BASE: u64 = 0x0010_0000;
/// Its length.
pub const TEST_SIZE: u64 = 0x1000;
/// The ACLINT (SiFive CLINT layout: msip, mtimecmp, mtime).
pub const CLINT_BASE: u64 = 0x0200_0000;
/// Its length.
pub const CLINT_SIZE: u64 = 0x1_0000;
/// The PLIC.
pub const PLIC_BASE: u64 = 0x0c00_0000;
/// Its length (two contexts per hart for up to 64 harts... and the threshold pages).
pub const PLIC_SIZE: u64 = 0x60_0000;
/// Number of PLIC interrupt sources (ids 1..=PLIC_SOURCES).
pub const PLIC_SOURCES: u32 = 95;
/// The 16550A UART.
pub const UART_BASE: u64 = 0x1000_0000;
/// Its length.
pub const UART_SIZE: u64 = 0x100;
/// Its PLIC source.
pub const UART_IRQ: u32 = 10;
/// The first virtio-mmio slot; slot `i` is at `VIRTIO_BASE + i * VIRTIO_SIZE`.
pub const VIRTIO_BASE: u64 = 0x1000_1000;
/// The size of a virtio-mmio slot.
pub const VIRTIO_SIZE: u64 = 0x1000;
/// The number of virtio-mmio slots.
pub const VIRTIO_SLOTS: usize = 8;
/// The PLIC source of virtio slot `i` is `VIRTIO_FIRST_IRQ + i`.
pub const VIRTIO_FIRST_IRQ: u32 = 1;
/// Start of RAM (where the firmware is loaded and starts).
pub const RAM_BASE: u64 = 0x8000_0000;
/// Where the kernel is loaded: 2 MiB into RAM (the alignment RV64 kernels need), after
/// OpenSBI.
pub const KERNEL_OFFSET: u64 = 0x20_0000;
/// The timebase (mtime frequency) the device tree announces.
pub const TIMEBASE_HZ: u64 = 10_000_000;

/// The address of virtio slot `i`.
pub const fn virtio_addr(slot: usize) -> u64 {
    VIRTIO_BASE + slot as u64 * VIRTIO_SIZE
}

// The device windows must not overlap each other or RAM.
const _: () = assert!(TEST_BASE + TEST_SIZE <= CLINT_BASE);
const _: () = assert!(CLINT_BASE + CLINT_SIZE <= PLIC_BASE);
const _: () = assert!(PLIC_BASE + PLIC_SIZE <= UART_BASE);
const _: () = assert!(UART_BASE + UART_SIZE <= VIRTIO_BASE);
const _: () = assert!(VIRTIO_BASE + VIRTIO_SLOTS as u64 * VIRTIO_SIZE <= RAM_BASE);
