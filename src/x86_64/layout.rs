//! The guest-physical memory map of tern's x86_64 machine.
//!
//! ```text
//! 0x0000_0500  boot GDT                     0x0000_9000  PML4 (64-bit Linux boot only)
//! 0x0000_6000  PVH hvm_start_info + memmap  0x0000_a000  PDPT
//! 0x0000_7000  Linux boot_params            0x0000_b000  4 page directories (2 MiB pages)
//! 0x0000_8ff0  initial stack (64-bit boot)  0x0002_0000  kernel command line
//! 0x0009_fc00  -- reserved up to 1 MiB --   0x000e_0000  ACPI tables (RSDP first)
//! 0x0010_0000  kernel                        ...         initrd at the top of low RAM
//! 0xc000_0000  -- MMIO hole up to 4 GiB --  0xd000_0000  virtio-mmio slots (4 KiB each)
//! 0xfec0_0000  IOAPIC    0xfee0_0000 local APIC    0x1_0000_0000  RAM beyond 3 GiB
//! ```

/// Start of the boot GDT (used by both boot protocols).
pub const BOOT_GDT: u64 = 0x500;
/// PVH `hvm_start_info`, followed by its memory map and module list.
pub const PVH_START_INFO: u64 = 0x6000;
/// The Linux boot protocol's "zero page".
pub const ZERO_PAGE: u64 = 0x7000;
/// Initial stack pointer for the 64-bit Linux entry.
pub const BOOT_STACK: u64 = 0x8ff0;
/// Identity-mapping page tables for the 64-bit Linux entry.
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD: u64 = 0xb000;
/// Number of page directories: 4 x 1 GiB of 2 MiB pages covers the low 4 GiB.
pub const PD_COUNT: u64 = 4;
/// Kernel command line (the Linux boot protocol allows up to `cmdline_size` bytes).
pub const CMDLINE: u64 = 0x20000;
/// Most bytes of command line tern accepts (the end of the area before the EBDA).
pub const CMDLINE_MAX: usize = 0x10000;
/// The classic EBDA start: RAM below it is usable, [EBDA, 1 MiB) reserved.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables, in the BIOS area Linux scans for the RSDP.
pub const ACPI_START: u64 = 0xe0000;
pub const ACPI_END: u64 = 0x10_0000;
/// Where kernels are loaded (the "high memory" start of the boot protocol).
pub const HIMEM_START: u64 = 0x10_0000;
/// End of the RAM below the 32-bit MMIO hole.
pub const LOW_RAM_END: u64 = 0xc000_0000;
/// RAM beyond `LOW_RAM_END` bytes continues here.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;
/// virtio-mmio slot `i` is at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// First IOAPIC pin used for virtio-mmio slots (level-triggered, active-high).
pub const VIRTIO_FIRST_GSI: u32 = 16;
/// How many virtio-mmio slots fit the 24-pin IOAPIC.
pub const VIRTIO_MAX_SLOTS: usize = 8;
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
pub const LAPIC_ADDR: u64 = 0xfee0_0000;

/// Port I/O map.
pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;
pub const I8042_PORT: u16 = 0x60;
pub const RTC_PORT: u16 = 0x70;
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
pub const ACPI_PM_PORT: u16 = 0x600;

// The fixed boot areas must not overlap: checked when tern is compiled.
const _: () = {
    assert!(BOOT_GDT + 8 * 5 <= PVH_START_INFO);
    assert!(PVH_START_INFO + 0x1000 <= ZERO_PAGE);
    assert!(BOOT_STACK < PML4 && PML4 < PDPT && PDPT < PD);
    assert!(PD + PD_COUNT * 0x1000 <= CMDLINE);
    assert!(CMDLINE + CMDLINE_MAX as u64 <= EBDA_START);
    assert!(VIRTIO_MMIO_BASE + VIRTIO_MAX_SLOTS as u64 * VIRTIO_MMIO_SIZE <= IOAPIC_ADDR);
    assert!(VIRTIO_FIRST_GSI + VIRTIO_MAX_SLOTS as u32 <= 24);
};

/// Guest RAM ranges for `mem_size` bytes of memory.
pub fn ram_ranges(mem_size: u64) -> Vec<(u64, u64)> {
    if mem_size <= LOW_RAM_END {
        vec![(0, mem_size)]
    } else {
        vec![(0, LOW_RAM_END), (HIGH_RAM_START, mem_size - LOW_RAM_END)]
    }
}

/// The guest-physical address of virtio-mmio slot `slot`.
pub fn virtio_mmio_addr(slot: usize) -> u64 {
    VIRTIO_MMIO_BASE + slot as u64 * VIRTIO_MMIO_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_splits_around_the_mmio_hole() {
        assert_eq!(ram_ranges(512 << 20), vec![(0, 512 << 20)]);
        assert_eq!(
            ram_ranges(4 << 30),
            vec![(0, LOW_RAM_END), (HIGH_RAM_START, 1 << 30)]
        );
    }
}
