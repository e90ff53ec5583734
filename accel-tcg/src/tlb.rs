//! The per-vCPU software TLB that the inline fast path of generated code reads.
//!
//! One direct-mapped table per MMU mode, indexed by virtual page number, with the entry layout
//! of [`ir::abi::TlbEntry`]. A tag is the virtual page address plus flag bits: a page without
//! RAM behind it carries `TLB_MMIO` in its tags, and a RAM page that holds translated code
//! carries `TLB_WATCH` in its write tag, so stores to it reach the slow path, which invalidates
//! the blocks translated from it. Beside the entries the TLB keeps each entry's physical page,
//! which the slow path needs for device accesses and code invalidation, and whether it is
//! global: [`SoftTlb::flush_non_global`] (an x86 CR3 load) keeps global mappings, so a
//! guest kernel's own pages survive its address-space switches as on hardware.

use std::ptr::NonNull;

use ir::abi::{
    EnvHeader, TlbEntry, TlbFast, MMU_MODES, PAGE_BITS, PAGE_MASK, TLB_ENTRY_BITS, TLB_INVALID,
    TLB_MMIO, TLB_WATCH,
};

use crate::guest::{Access, PageProt};

/// Entries per MMU mode (a power of two, at most 65536: flush logs hold 16-bit indexes):
/// 16384 pages, 64 MiB of reach, so a working set of a few tens of MiB refills only on
/// conflicts (measured on a 32 MiB random walk: 512 entries 7.3 s, 4096 3.2 s, 8192 2.7 s,
/// 16384 2.5 s). Flushes stay cheap however big the table is: they invalidate only the entries
/// filled since the previous flush (see [`SoftTlb::flush`]). The price is memory, 640 KiB per
/// MMU mode and vCPU, and [`SoftTlb::watch_phys_page`] scanning the modes in use.
pub const TLB_ENTRIES: usize = 16384;

/// Fills per MMU mode a flush undoes one by one; past that it rewrites the mode's table.
const DIRTY_LOG: usize = 256;

const _: () = assert!(TLB_ENTRIES.is_power_of_two() && TLB_ENTRIES <= 1 << 16);

/// What the slow path learns from a TLB entry that matches an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlbHit {
    /// Physical address of the page.
    pub phys_page: u64,
    /// Host address of the page if it is RAM.
    pub host_page: Option<NonNull<u8>>,
    /// For writes: the page holds translated code.
    pub watched: bool,
    /// The mapping is global (kept by [`SoftTlb::flush_non_global`]).
    pub global: bool,
}

/// The software TLB of one vCPU.
pub struct SoftTlb {
    /// `MMU_MODES` tables of `TLB_ENTRIES` entries, one after the other. Never reallocated:
    /// the header points generated code at them.
    entries: Box<[TlbEntry]>,
    /// The physical page of each entry, same indexing.
    phys: Box<[u64]>,
    /// Bit `m`: MMU mode `m` was filled since the last full flush.
    used: u8,
    /// Bit `m`: mode `m` had more than [`DIRTY_LOG`] fills since the last flush.
    overflowed: u8,
    /// Per mode, the indexes filled since the last flush (up to [`DIRTY_LOG`]).
    dirty: [Vec<u16>; MMU_MODES],
    /// Whether each entry (same indexing as `entries`) holds a global mapping.
    global: Box<[bool]>,
    /// Per mode, the indexes of global fills since the last full flush (up to
    /// [`GLOBAL_LOG`]), which a non-global flush keeps and a full one must still clear.
    globals: [Vec<u16>; MMU_MODES],
    /// Bit `m`: mode `m` had more than [`GLOBAL_LOG`] global fills since the last full flush.
    globals_overflowed: u8,
}

/// Global fills per MMU mode a full flush undoes one by one.
const GLOBAL_LOG: usize = 4096;

impl Default for SoftTlb {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftTlb {
    /// A TLB with every entry invalid.
    pub fn new() -> SoftTlb {
        SoftTlb {
            entries: vec![TlbEntry::INVALID; MMU_MODES * TLB_ENTRIES].into_boxed_slice(),
            phys: vec![0; MMU_MODES * TLB_ENTRIES].into_boxed_slice(),
            used: 0,
            overflowed: 0,
            dirty: std::array::from_fn(|_| Vec::with_capacity(DIRTY_LOG)),
            global: vec![false; MMU_MODES * TLB_ENTRIES].into_boxed_slice(),
            globals: std::array::from_fn(|_| Vec::new()),
            globals_overflowed: 0,
        }
    }

    /// Points the header's fast-path descriptors at this TLB's tables. The tables never move,
    /// so this is done once per vCPU.
    pub fn install(&mut self, header: &mut EnvHeader) {
        for (fast, table) in header
            .tlb
            .iter_mut()
            .zip(self.entries.chunks_exact_mut(TLB_ENTRIES))
        {
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

    /// Position in `entries`/`phys` of `vaddr`'s entry in mode `mmu`.
    fn slot(mmu: usize, vaddr: u64) -> usize {
        mmu * TLB_ENTRIES + Self::index(vaddr)
    }

    /// The entry for `vaddr` in MMU mode `mmu_idx`, whatever page it holds.
    pub fn entry(&self, mmu_idx: u8, vaddr: u64) -> &TlbEntry {
        &self.entries[Self::slot(mmu_idx as usize % MMU_MODES, vaddr)]
    }

    /// Looks `vaddr` up for `access`; `None` on a miss.
    #[inline]
    pub fn lookup(&self, mmu_idx: u8, vaddr: u64, access: Access) -> Option<TlbHit> {
        let slot = Self::slot(mmu_idx as usize % MMU_MODES, vaddr);
        let e = &self.entries[slot];
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
            phys_page: self.phys[slot],
            host_page,
            watched: tag & TLB_WATCH != 0,
            global: self.global[slot],
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
        self.fill_mapping(mmu_idx, vaddr, phys_page, prot, host_page, watched, false);
    }

    /// [`SoftTlb::fill`] of a mapping that may be `global`.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_mapping(
        &mut self,
        mmu_idx: u8,
        vaddr: u64,
        phys_page: u64,
        prot: PageProt,
        host_page: Option<NonNull<u8>>,
        watched: bool,
        global: bool,
    ) {
        let mmu = mmu_idx as usize % MMU_MODES;
        let slot = Self::slot(mmu, vaddr);
        let vpage = vaddr & PAGE_MASK;
        let mmio = if host_page.is_none() { TLB_MMIO } else { 0 };
        let tag = |allowed: bool, extra: u64| {
            if allowed {
                vpage | mmio | extra
            } else {
                u64::MAX
            }
        };
        self.entries[slot] = TlbEntry {
            addr_read: tag(prot.read, 0),
            addr_write: tag(prot.write, if watched { TLB_WATCH } else { 0 }),
            addr_code: tag(prot.execute, 0),
            addend: host_page.map_or(0, |h| (h.as_ptr() as u64).wrapping_sub(vpage)),
        };
        self.phys[slot] = phys_page;
        self.global[slot] = global;
        let index = slot - mmu * TLB_ENTRIES;
        if global {
            let bit = 1u8 << mmu;
            self.used |= bit;
            if self.globals_overflowed & bit == 0 {
                if self.globals[mmu].len() < GLOBAL_LOG {
                    self.globals[mmu].push(index as u16);
                } else {
                    self.globals_overflowed |= bit;
                }
            }
        } else {
            self.note_fill(mmu, index);
        }
    }

    /// Remembers that entry `index` of mode `mmu` may be valid, for the next flush.
    fn note_fill(&mut self, mmu: usize, index: usize) {
        let bit = 1u8 << mmu;
        self.used |= bit;
        if self.overflowed & bit == 0 {
            let log = &mut self.dirty[mmu];
            if log.len() < DIRTY_LOG {
                log.push(index as u16);
            } else {
                self.overflowed |= bit;
            }
        }
    }

    /// Invalidates every entry of every MMU mode.
    ///
    /// Costs what was filled since the last flush, not the table size: modes never filled are
    /// skipped, a mode with few fills has just those entries invalidated, and only a mode with
    /// more than [`DIRTY_LOG`] fills has its whole table rewritten.
    pub fn flush(&mut self) {
        for mmu in 0..MMU_MODES {
            let bit = 1u8 << mmu;
            if self.used & bit == 0 {
                continue;
            }
            let range = mmu * TLB_ENTRIES..(mmu + 1) * TLB_ENTRIES;
            let table = &mut self.entries[range.clone()];
            let global = &mut self.global[range];
            if (self.overflowed | self.globals_overflowed) & bit != 0 {
                table.fill(TlbEntry::INVALID);
                global.fill(false);
            } else {
                for &i in self.dirty[mmu].iter().chain(&self.globals[mmu]) {
                    table[i as usize] = TlbEntry::INVALID;
                    global[i as usize] = false;
                }
            }
            self.dirty[mmu].clear();
            self.globals[mmu].clear();
        }
        self.used = 0;
        self.overflowed = 0;
        self.globals_overflowed = 0;
    }

    /// Invalidates every entry that is not global (an x86 CR3 load without PCIDs), at the
    /// cost of what was filled since the last flush, as [`SoftTlb::flush`].
    pub fn flush_non_global(&mut self) {
        for mmu in 0..MMU_MODES {
            let bit = 1u8 << mmu;
            if self.used & bit == 0 {
                continue;
            }
            let range = mmu * TLB_ENTRIES..(mmu + 1) * TLB_ENTRIES;
            let table = &mut self.entries[range.clone()];
            let global = &self.global[range];
            if self.overflowed & bit != 0 {
                for (e, &g) in table.iter_mut().zip(global) {
                    if !g {
                        *e = TlbEntry::INVALID;
                    }
                }
            } else {
                for &i in &self.dirty[mmu] {
                    if !global[i as usize] {
                        table[i as usize] = TlbEntry::INVALID;
                    }
                }
            }
            self.dirty[mmu].clear();
            if self.globals[mmu].is_empty() && self.globals_overflowed & bit == 0 {
                self.used &= !bit;
            }
        }
        self.overflowed = 0;
    }

    /// Invalidates the entries that map the virtual page of `vaddr`, in every MMU mode.
    pub fn flush_page(&mut self, vaddr: u64) {
        let vpage = vaddr & PAGE_MASK;
        for mmu in 0..MMU_MODES {
            if self.used & (1 << mmu) == 0 {
                continue;
            }
            let e = &mut self.entries[Self::slot(mmu, vaddr)];
            let maps = [e.addr_read, e.addr_write, e.addr_code]
                .iter()
                .any(|&t| t & TLB_INVALID == 0 && t & PAGE_MASK == vpage);
            if maps {
                *e = TlbEntry::INVALID;
            }
        }
    }

    /// Marks the write tags of entries that map `phys_page` as watched: the page now holds
    /// translated code, so stores to it must take the slow path. Scans only the modes filled
    /// since the last flush.
    pub fn watch_phys_page(&mut self, phys_page: u64) {
        for mmu in 0..MMU_MODES {
            if self.used & (1 << mmu) == 0 {
                continue;
            }
            let range = mmu * TLB_ENTRIES..(mmu + 1) * TLB_ENTRIES;
            for (e, &p) in self.entries[range.clone()]
                .iter_mut()
                .zip(&self.phys[range])
            {
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

    #[test]
    fn a_flush_after_more_fills_than_it_logs_still_invalidates_everything() {
        let mut tlb = SoftTlb::new();
        let pages = (DIRTY_LOG + 10) as u64;
        for p in 0..pages {
            tlb.fill(
                3,
                p << PAGE_BITS,
                p << PAGE_BITS,
                PageProt::ALL,
                Some(host()),
                false,
            );
        }
        tlb.fill(5, 0x7000, 0x7000, PageProt::ALL, Some(host()), false);
        tlb.flush();
        for p in 0..pages {
            assert!(tlb.lookup(3, p << PAGE_BITS, Access::Read).is_none());
        }
        assert!(tlb.lookup(5, 0x7000, Access::Read).is_none());
        // And the logs start afresh: a later fill is flushed too.
        tlb.fill(3, 0x9000, 0x9000, PageProt::ALL, Some(host()), false);
        tlb.flush();
        assert!(tlb.lookup(3, 0x9000, Access::Read).is_none());
    }

    #[test]
    fn every_mode_has_its_own_table_of_tlb_entries_in_the_header() {
        unsafe extern "C" fn slow(_: u64, _: u64, _: u64, _: u64) -> u64 {
            0
        }
        unsafe extern "C" fn lookup(_: u64) -> u64 {
            0
        }
        let mut tlb = SoftTlb::new();
        let mut header = EnvHeader {
            exit_request: Default::default(),
            unwind: 0,
            insn_index: 0,
            reserved: 0,
            load_slow: slow,
            store_slow: slow,
            lookup,
            tlb: [TlbFast {
                mask: 0,
                table: std::ptr::null_mut(),
            }; MMU_MODES],
            opaque: std::ptr::null_mut(),
            jump_probe: std::ptr::null(),
        };
        tlb.install(&mut header);
        tlb.fill(2, 0x1234_5000, 0x5000, PageProt::ALL, Some(host()), false);
        let fast = header.tlb[2];
        let off = (0x1234_5000u64 >> (PAGE_BITS - TLB_ENTRY_BITS)) & fast.mask;
        let entry = fast
            .table
            .cast::<u8>()
            .wrapping_add(off as usize)
            .cast::<TlbEntry>();
        // SAFETY: the offset is masked into the mode's table, which `tlb` owns and keeps alive.
        let e = unsafe { *entry };
        assert_eq!(e.addr_read, 0x1234_5000);
        assert_eq!(fast.mask, ((TLB_ENTRIES - 1) as u64) << TLB_ENTRY_BITS);
        assert_ne!(header.tlb[1].table, fast.table);
    }

    fn fill_global(tlb: &mut SoftTlb, mmu: u8, page: u64, global: bool) {
        tlb.fill_mapping(mmu, page, page, PageProt::ALL, Some(host()), false, global);
    }

    #[test]
    fn a_non_global_flush_keeps_global_mappings_and_a_full_flush_drops_them() {
        let mut tlb = SoftTlb::new();
        fill_global(&mut tlb, 1, 0x1000, false);
        fill_global(&mut tlb, 1, 0xffff_8000_0000_2000, true);
        assert!(
            tlb.lookup(1, 0xffff_8000_0000_2000, Access::Read)
                .unwrap()
                .global
        );
        tlb.flush_non_global();
        assert!(tlb.lookup(1, 0x1000, Access::Read).is_none());
        assert!(tlb.lookup(1, 0xffff_8000_0000_2000, Access::Read).is_some());
        // Still dropped by a full flush after the non-global one emptied the fill log.
        tlb.flush();
        assert!(tlb.lookup(1, 0xffff_8000_0000_2000, Access::Read).is_none());
    }

    #[test]
    fn a_slot_refilled_with_the_other_kind_of_mapping_is_flushed_by_what_it_holds_now() {
        let mut tlb = SoftTlb::new();
        let stride = (TLB_ENTRIES as u64) << PAGE_BITS;
        // The same slot: first global, then a non-global page, then global again.
        fill_global(&mut tlb, 0, 0x3000, true);
        fill_global(&mut tlb, 0, 0x3000 + stride, false);
        tlb.flush_non_global();
        assert!(tlb.lookup(0, 0x3000 + stride, Access::Read).is_none());
        fill_global(&mut tlb, 0, 0x3000, false);
        fill_global(&mut tlb, 0, 0x3000 + stride, true);
        tlb.flush_non_global();
        assert!(tlb.lookup(0, 0x3000 + stride, Access::Read).is_some());
    }

    #[test]
    fn a_non_global_flush_after_many_fills_scans_and_still_keeps_globals() {
        let mut tlb = SoftTlb::new();
        fill_global(&mut tlb, 3, 0xffff_ffff_8000_0000, true);
        for p in 1..(DIRTY_LOG as u64 + 20) {
            fill_global(&mut tlb, 3, p << PAGE_BITS, false);
        }
        tlb.flush_non_global();
        assert!(tlb.lookup(3, 0xffff_ffff_8000_0000, Access::Read).is_some());
        for p in 1..(DIRTY_LOG as u64 + 20) {
            assert!(tlb.lookup(3, p << PAGE_BITS, Access::Read).is_none(), "{p}");
        }
    }
}
