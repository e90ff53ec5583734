//! Guest RAM as the x86_64 system architecture reads and writes it (`frontend::x86_64::sys::
//! PhysMem`): page-table walks, descriptor tables, the TSS and interrupt frames of the machine
//! on the JIT go through this, never through devices: a physical address that is not RAM
//! reads as all ones (an open bus) and ignores writes.

use frontend::x86_64::sys::PhysMem;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// The machine's RAM, for the system architecture's own accesses.
pub struct RamPhysMem<'a>(pub &'a GuestMemoryMmap);

impl PhysMem for RamPhysMem<'_> {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool {
        self.0.read_slice(buf, GuestAddress(paddr)).is_ok()
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> bool {
        self.0.write_slice(data, GuestAddress(paddr)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_reads_and_writes_and_holes_read_as_all_ones() {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0x1000), 0x2000)]).unwrap();
        let mut m = RamPhysMem(&ram);
        m.write_u64(0x1ff8, 0x1122_3344_5566_7788);
        assert_eq!(m.read_u64(0x1ff8), 0x1122_3344_5566_7788);
        assert_eq!(m.read_u64(0x8000), u64::MAX, "no RAM: open bus");
        assert!(!m.write(0x8000, &[1]));
        assert_eq!(m.read_u64(0x2ffc), u64::MAX, "straddles the end of RAM");
    }
}
