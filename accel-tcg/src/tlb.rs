//! The per-vCPU software TLB that the inline fast path of generated code reads.
//!
//! One direct-mapped table per MMU mode, indexed by virtual page number, with the entry layout
//! of [`ir::abi::TlbEntry`]. A tag is the virtual page address plus flag bits: a page without
//! RAM behind it carries `TLB_MMIO` in its tags, and a RAM page that holds translated code
//! carries `TLB_WATCH` in its write tag, so stores to it reach the slow path, which invalidates
//! the blocks translated from it. Beside the entries the TLB keeps each entry's physical page,
//! which the slow path needs for device accesses and code invalidation.

use std::ptr::NonNull;

use ir::abi::{
    EnvHeader, TlbEntry, TlbFast, MMU_MODES, PAGE_BITS, PAGE_MASK, TLB_ENTRY_BITS, TLB_INVALID,
    TLB_MMIO, TLB_WATCH,
};

use crate::guest::{Access, PageProt};

/// Entries per MMU mode (a power of two).
pub const TLB_ENTRIES: usize = 512;

/// What the slow path learns from a TLB entry that matches an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlbHit {
    /// Physical address of the page.
    pub phys_page: u64,
    /// Host address of the page if it is RAM.
    pub host_page: Option<NonNull<u8>>,
    /// For writes: the page holds translated code.
    pub watched: bool,
}

/// The software TLB of one vCPU.
pub struct SoftTlb {
    entries: Box<[[TlbEntry; TLB_ENTRIES]; MMU_MODES]>,
    phys: Box<[[u64; TLB_ENTRIES]; MMU_MODES]>,
}

impl Default for SoftTlb {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftTlb {
    /// A TLB with every entry invalid.
    pub fn new() -> SoftTlb {
        SoftTlb {
            entries: Box::new([[TlbEntry::INVALID; TLB_ENTRIES]; MMU_MODES]),
            phys: Box::new([[0; TLB_ENTRIES]; MMU_MODES]),
        }
    }

    /// Points the header's fast-path descriptors at this TLB's tables. The tables never move,
    /// so this is done once per vCPU.
    pub fn install(&mut self, header: &mut EnvHeader) {
        for (fast, table) in header.tlb.iter_mut().zip(self.entries.iter_mut()) {
            *fast = TlbFast {
                mask: ((TLB_ENTRIES - 1) as u64) << TLB_ENTRY_BITS,
                table: table.as_mut_ptr(),
            };
        }
    }

    /// The table index of `vaddr`.
    pub fn index(vaddr: u64) -> usize {
        ((vaddr >> PAGE_BITS) as usize) & (TLB_ENTRIES - 1)
    }

    /// The entry for `vaddr` in MMU mode `mmu_idx`, whatever page it holds.
    pub fn entry(&self, mmu_idx: u8, vaddr: u64) -> &TlbEntry {
        &self.entries[mmu_idx as usize % MMU_MODES][Self::index(vaddr)]
    }

    /// Looks `vaddr` up for `access`; `None` on a miss.
    pub fn lookup(&self, mmu_idx: u8, vaddr: u64, access: Access) -> Option<TlbHit> {
        let mmu = mmu_idx as usize % MMU_MODES;
        let idx = Self::index(vaddr);
        let e = &self.entries[mmu][idx];
        let tag = match access {
            Access::Read => e.addr_read,
            Access::Write => e.addr_write,
            Access::Execute => e.addr_code,
        };
        if tag & TLB_INVALID != 0 || tag & PAGE_MASK != vaddr & PAGE_MASK {
            return None;
        }
        let host_page = if tag & TLB_MMIO != 0 {
            None
        } else {
            NonNull::new(e.addend.wrapping_add(vaddr & PAGE_MASK) as *mut u8)
        };
        Some(TlbHit {
            phys_page: self.phys[mmu][idx],
            host_page,
            watched: tag & TLB_WATCH != 0,
        })
    }

    /// Installs a mapping of virtual page `vaddr` to `phys_page`, with `host_page` its RAM (or
    /// `None` for devices) and `watched` set when the page holds translated code.
    pub fn fill(
        &mut self,
        mmu_idx: u8,
        vaddr: u64,
        phys_page: u64,
        prot: PageProt,
        host_page: Option<NonNull<u8>>,
        watched: bool,
    ) {
        let mmu = mmu_idx as usize % MMU_MODES;
        let idx = Self::index(vaddr);
        let vpage = vaddr & PAGE_MASK;
        let mmio = if host_page.is_none() { TLB_MMIO } else { 0 };
        let tag = |allowed: bool, extra: u64| {
            if allowed {
                vpage | mmio | extra
            } else {
                u64::MAX
            }
        };
        self.entries[mmu][idx] = TlbEntry {
            addr_read: tag(prot.read, 0),
            addr_write: tag(prot.write, if watched { TLB_WATCH } else { 0 }),
            addr_code: tag(prot.execute, 0),
            addend: host_page.map_or(0, |h| (h.as_ptr() as u64).wrapping_sub(vpage)),
        };
        self.phys[mmu][idx] = phys_page;
    }

    /// Invalidates every entry of every MMU mode.
    pub fn flush(&mut self) {
        for table in self.entries.iter_mut() {
            table.fill(TlbEntry::INVALID);
        }
    }

    /// Invalidates the entries that map the virtual page of `vaddr`, in every MMU mode.
    pub fn flush_page(&mut self, vaddr: u64) {
        let idx = Self::index(vaddr);
        let vpage = vaddr & PAGE_MASK;
        for table in self.entries.iter_mut() {
            let e = &mut table[idx];
            let maps = [e.addr_read, e.addr_write, e.addr_code]
                .iter()
                .any(|&t| t & TLB_INVALID == 0 && t & PAGE_MASK == vpage);
            if maps {
                *e = TlbEntry::INVALID;
            }
        }
    }

    /// Marks the write tags of entries that map `phys_page` as watched: the page now holds
    /// translated code, so stores to it must take the slow path.
    pub fn watch_phys_page(&mut self, phys_page: u64) {
        for (table, phys) in self.entries.iter_mut().zip(self.phys.iter()) {
            for (e, &p) in table.iter_mut().zip(phys.iter()) {
                if p == phys_page && e.addr_write & TLB_INVALID == 0 {
                    e.addr_write |= TLB_WATCH;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> NonNull<u8> {
        NonNull::new(0x7000_0000_0000 as *mut u8).unwrap()
    }

    #[test]
    fn filled_entries_hit_for_allowed_accesses_only() {
        let mut tlb = SoftTlb::new();
        let prot = PageProt {
            read: true,
            write: false,
            execute: true,
        };
        tlb.fill(1, 0x4000_1234, 0x8000_0000, prot, Some(host()), false);
        let hit = tlb.lookup(1, 0x4000_1ff8, Access::Read).unwrap();
        assert_eq!(hit.phys_page, 0x8000_0000);
        assert_eq!(hit.host_page, Some(host()));
        assert!(tlb.lookup(1, 0x4000_1000, Access::Write).is_none());
        assert!(tlb.lookup(1, 0x4000_1000, Access::Execute).is_some());
        assert!(
            tlb.lookup(0, 0x4000_1000, Access::Read).is_none(),
            "other MMU modes are separate"
        );
        assert!(tlb.lookup(1, 0x4000_2000, Access::Read).is_none());
    }

    #[test]
    fn entries_are_what_the_inline_fast_path_compares() {
        let mut tlb = SoftTlb::new();
        tlb.fill(0, 0x5000, 0x9000, PageProt::ALL, Some(host()), false);
        let e = *tlb.entry(0, 0x5000);
        // The fast path: (addr + size - 1) & PAGE_MASK == tag, then host = addr + addend.
        let addr = 0x5ffcu64;
        assert_eq!((addr + 3) & PAGE_MASK, e.addr_read);
        assert_eq!(addr.wrapping_add(e.addend), host().as_ptr() as u64 + 0xffc);
        assert_ne!(
            (0x5ffeu64 + 3) & PAGE_MASK,
            e.addr_read,
            "a page-crossing access misses"
        );
    }

    #[test]
    fn mmio_and_watched_pages_never_match_the_fast_path() {
        let mut tlb = SoftTlb::new();
        tlb.fill(0, 0xd000_0000, 0xd000_0000, PageProt::ALL, None, false);
        let e = *tlb.entry(0, 0xd000_0000);
        assert_ne!(e.addr_read, 0xd000_0000);
        assert_eq!(
            tlb.lookup(0, 0xd000_0010, Access::Read).unwrap().host_page,
            None
        );

        tlb.fill(0, 0x1000, 0x3000, PageProt::ALL, Some(host()), false);
        tlb.watch_phys_page(0x3000);
        let e = *tlb.entry(0, 0x1000);
        assert_eq!(e.addr_read, 0x1000, "loads stay fast");
        assert_ne!(e.addr_write, 0x1000, "stores go slow");
        assert!(tlb.lookup(0, 0x1000, Access::Write).unwrap().watched);
    }

    #[test]
    fn flushes_invalidate() {
        let mut tlb = SoftTlb::new();
        tlb.fill(0, 0x1000, 0x1000, PageProt::ALL, Some(host()), false);
        tlb.fill(2, 0x2000, 0x2000, PageProt::ALL, Some(host()), false);
        tlb.flush_page(0x1abc);
        assert!(tlb.lookup(0, 0x1000, Access::Read).is_none());
        assert!(tlb.lookup(2, 0x2000, Access::Read).is_some());
        tlb.flush();
        assert!(tlb.lookup(2, 0x2000, Access::Read).is_none());
    }
}
