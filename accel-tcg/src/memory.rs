//! Guest physical memory as the softmmu sees it: RAM pages it can point the TLB at, and
//! everything else, which goes to device models.

use std::ptr::NonNull;

use ir::abi::{PAGE_MASK, PAGE_SIZE};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The guest physical address space.
pub trait PhysMemory: Send + Sync {
    /// The host address of the RAM page holding `paddr` (page-aligned), or `None` if the
    /// address is not RAM. The page stays mapped as long as the memory object lives.
    fn ram_page(&self, paddr: u64) -> Option<NonNull<u8>>;
    /// Reads from a device; `false` when no device answers (a bus error).
    fn mmio_read(&self, paddr: u64, data: &mut [u8]) -> bool;
    /// Writes to a device; `false` when no device answers.
    fn mmio_write(&self, paddr: u64, data: &[u8]) -> bool;
}

/// RAM from a `vm-memory` map (the same guest memory KVM uses) plus a device bus for MMIO.
pub struct RamAndBus {
    ram: GuestMemoryMmap,
    mmio: devices::bus::Bus,
}

impl RamAndBus {
    /// Combines `ram` and the MMIO `bus`.
    pub fn new(ram: GuestMemoryMmap, mmio: devices::bus::Bus) -> RamAndBus {
        RamAndBus { ram, mmio }
    }

    /// The RAM.
    pub fn ram(&self) -> &GuestMemoryMmap {
        &self.ram
    }
}

impl PhysMemory for RamAndBus {
    fn ram_page(&self, paddr: u64) -> Option<NonNull<u8>> {
        let page = GuestAddress(paddr & PAGE_MASK);
        let region = self.ram.find_region(page)?;
        // A page that runs off the end of its region is not usable as a whole page.
        let offset = region.to_region_addr(page)?;
        if offset.0.checked_add(PAGE_SIZE)? > region.len() {
            return None;
        }
        let host = region.get_host_address(offset).ok()?;
        NonNull::new(host)
    }

    fn mmio_read(&self, paddr: u64, data: &mut [u8]) -> bool {
        self.mmio.read(paddr, data).is_ok()
    }

    fn mmio_write(&self, paddr: u64, data: &[u8]) -> bool {
        self.mmio.write(paddr, data).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_pages_resolve_and_holes_do_not() {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x4000),
            (GuestAddress(0x10000), 0x1000),
        ])
        .unwrap();
        let mem = RamAndBus::new(ram, devices::bus::Bus::new());
        let p0 = mem.ram_page(0x10).unwrap();
        let p1 = mem.ram_page(0x1fff).unwrap();
        // SAFETY: both pointers come from the same mapping; only the distance is computed.
        assert_eq!(unsafe { p1.as_ptr().offset_from(p0.as_ptr()) }, 0x1000);
        assert!(mem.ram_page(0x4000).is_none());
        assert!(mem.ram_page(0x10fff).is_some());
        assert!(!mem.mmio_write(0x4000, &[1]));
    }
}
