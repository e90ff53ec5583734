//! The per-vCPU front cache of the block lookup: a direct-mapped table keyed by virtual pc.
//!
//! No locks: each vCPU owns its table. An entry is only a hint; a hit is used when the block is
//! still valid and its virtual pc and flags match. Entries are dropped when the vCPU's TLB is
//! flushed, since the virtual-to-physical mapping they assumed may have changed; a flush of
//! the non-global mappings only (an x86 CR3 load) keeps the entries whose pc was fetched
//! through a global mapping, which the architecture keeps too.
//!
//! The table is on the path of every indirect jump and return of generated code (the
//! `LookupAndGoto` helper), so a slot carries copies of what a hit needs, the key, the host
//! code address and the block cache's invalidation epoch when the block was last seen valid,
//! in 32 bytes: a hit is an index, three compares against the slot and one load of the shared
//! epoch, with no pointer chase into the block and no reference-count traffic. When the epoch
//! moved (some block somewhere was invalidated), the block's own validity flag decides, off
//! the hit path, and the slot is stamped again.

use std::sync::Arc;

use crate::cache::TranslationBlock;

use ir::abi::{jump_cache_group, jump_cache_index, JumpCacheSlot as Slot};

const ENTRIES: usize = ir::abi::JUMP_CACHE_ENTRIES;
/// Slots per page group.
const GROUP: usize = ir::abi::JUMP_CACHE_GROUP;
const EMPTY: Slot = Slot::EMPTY;

/// A vCPU's jump cache.
pub struct JumpCache {
    slots: Box<[Slot; ENTRIES]>,
    /// The block of each slot (`None`: empty); keeps it alive while it is cached.
    blocks: Box<[Option<Arc<TranslationBlock>>]>,
    /// Whether each slot's pc was fetched through a global mapping (kept by
    /// [`JumpCache::clear_non_global`]).
    global: Box<[bool]>,
    /// Indexes of the slots filled since the last [`JumpCache::clear`] (possibly repeated,
    /// possibly emptied since): a full clear touches only these, so a large table costs
    /// nothing extra on guests that flush often (every address-space switch without ASIDs).
    used: Vec<u32>,
}

impl Default for JumpCache {
    fn default() -> Self {
        Self::new()
    }
}

fn packed(flags: u32, cflags: u32) -> u64 {
    u64::from(cflags) << 32 | u64::from(flags)
}

impl JumpCache {
    /// An empty cache.
    pub fn new() -> JumpCache {
        JumpCache {
            slots: vec![EMPTY; ENTRIES]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("ENTRIES slots")),
            blocks: vec![None; ENTRIES].into_boxed_slice(),
            global: vec![false; ENTRIES].into_boxed_slice(),
            used: Vec::new(),
        }
    }

    /// Slots are grouped by guest page (QEMU's jump-cache hash does the same): the high bits
    /// of the index come from the page number, the low bits from the offset in the page, so a
    /// one-page TLB flush clears one group instead of the whole cache. The function is
    /// `ir::abi`'s, since generated code computes it too.
    fn index(pc: u64) -> usize {
        jump_cache_index(pc)
    }

    /// The first slot of the group of `pc`'s page.
    fn group(pc: u64) -> usize {
        jump_cache_group(pc)
    }

    /// The slot table, for the CPU-state header (generated code probes it inline); it stays
    /// at this address for the cache's lifetime.
    pub fn slots(&self) -> *const Slot {
        self.slots.as_ptr()
    }

    /// The valid block cached for virtual `pc` under `flags` and compile flags `cflags`.
    pub fn get(&self, pc: u64, flags: u32, cflags: u32) -> Option<&Arc<TranslationBlock>> {
        let i = Self::index(pc);
        let slot = &self.slots[i];
        if slot.pc != pc || slot.flags != packed(flags, cflags) {
            return None;
        }
        self.blocks[i].as_ref().filter(|tb| tb.is_valid())
    }

    /// Like [`JumpCache::get`], and stamps the slot with `epoch` (the block cache's epoch
    /// read before this call) when the block is valid, so that generated code's inline probe
    /// hits it again after an invalidation elsewhere moved the epoch on.
    pub fn get_stamped(
        &mut self,
        pc: u64,
        flags: u32,
        cflags: u32,
        epoch: u64,
    ) -> Option<Arc<TranslationBlock>> {
        let i = Self::index(pc);
        let tb = self.get(pc, flags, cflags)?.clone();
        self.slots[i].epoch = epoch;
        Some(tb)
    }

    /// The host code address of the compiled block cached for `pc`, `flags` and `cflags` if
    /// it was stamped valid in `epoch`, the block cache's current
    /// [`crate::cache::BlockCache::epoch`]: the hit path of the `LookupAndGoto` helper. On
    /// `None`, [`JumpCache::code_revalidated`] tells whether the block is still usable.
    #[inline]
    pub fn code(&self, pc: u64, flags: u32, cflags: u32, epoch: u64) -> Option<usize> {
        let slot = &self.slots[Self::index(pc)];
        if slot.pc != pc || slot.flags != packed(flags, cflags) || slot.epoch != epoch {
            return None;
        }
        Some(slot.code).filter(|&c| c != 0)
    }

    /// Like [`JumpCache::code`], but a slot stamped in an older epoch is checked against its
    /// block's validity flag, and stamped with `epoch` when still valid.
    pub fn code_revalidated(
        &mut self,
        pc: u64,
        flags: u32,
        cflags: u32,
        epoch: u64,
    ) -> Option<usize> {
        let i = Self::index(pc);
        let slot = &self.slots[i];
        if slot.pc != pc || slot.flags != packed(flags, cflags) {
            return None;
        }
        if slot.epoch != epoch {
            if !self.blocks[i].as_ref()?.is_valid() {
                return None;
            }
            self.slots[i].epoch = epoch;
        }
        Some(self.slots[i].code).filter(|&c| c != 0)
    }

    /// Remembers `tb` for its virtual pc. `epoch` is the block cache's epoch read before `tb`
    /// was found valid (an older epoch is safe: it only forces a validity check).
    pub fn insert(&mut self, tb: Arc<TranslationBlock>, epoch: u64) {
        self.insert_mapped(tb, epoch, false);
    }

    /// [`JumpCache::insert`] of a block whose pc's page is mapped `global`ly.
    pub fn insert_mapped(&mut self, tb: Arc<TranslationBlock>, epoch: u64, global: bool) {
        let i = Self::index(tb.key.pc);
        self.global[i] = global;
        if self.blocks[i].is_none() {
            if self.used.len() >= ENTRIES {
                // Slots refilled after page flushes repeat in the list: rebuild it.
                self.used.clear();
                self.used
                    .extend((0..ENTRIES as u32).filter(|&j| self.blocks[j as usize].is_some()));
            }
            self.used.push(i as u32);
        }
        self.slots[i] = Slot {
            pc: tb.key.pc,
            flags: packed(tb.key.flags, tb.key.cflags),
            code: tb.entry().unwrap_or(0),
            epoch,
        };
        self.blocks[i] = Some(tb);
    }

    /// Forgets the blocks of the guest page of `vaddr` (only its group can hold them).
    pub fn clear_page(&mut self, vaddr: u64) {
        let start = Self::group(vaddr);
        let page = vaddr & ir::abi::PAGE_MASK;
        for i in start..start + GROUP {
            if self.blocks[i].is_some() && self.slots[i].pc & ir::abi::PAGE_MASK == page {
                self.slots[i] = EMPTY;
                self.blocks[i] = None;
            }
        }
    }

    /// Forgets every block not reached through a global mapping (an x86 CR3 load).
    pub fn clear_non_global(&mut self) {
        let mut used = std::mem::take(&mut self.used);
        used.retain(|&i| {
            let i = i as usize;
            if self.blocks[i].is_none() {
                return false;
            }
            if self.global[i] {
                return true;
            }
            self.slots[i] = EMPTY;
            self.blocks[i] = None;
            false
        });
        used.sort_unstable();
        used.dedup();
        self.used = used;
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        for i in self.used.drain(..) {
            self.slots[i as usize] = EMPTY;
            self.blocks[i as usize] = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{BlockCache, BlockCode, BlockKey};
    use backend_x86_64::CompiledBlock;

    fn block(cache: &BlockCache, pc: u64, flags: u32, jit: bool) -> Arc<TranslationBlock> {
        let id = cache.next_id();
        let code = if jit {
            BlockCode::Jit(CompiledBlock {
                entry: 0x10_0000 + id as usize * 0x100,
                len: 16,
                goto_slots: [None, None],
            })
        } else {
            BlockCode::Interp(ir::Block::new(Vec::new().into(), ir::Type::I64))
        };
        let key = BlockKey {
            pc,
            phys_pc: pc,
            flags,
            cflags: 0,
        };
        cache
            .insert(TranslationBlock::new(
                id,
                key,
                vec![(pc, pc + 4)],
                Box::new([(pc, 0)]),
                code,
            ))
            .0
    }

    #[test]
    fn hits_need_the_same_pc_flags_and_a_valid_block() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        let tb = block(&cache, 0x1000, 3, true);
        jc.insert(tb.clone(), cache.epoch());
        assert_eq!(jc.get(0x1000, 3, 0).unwrap().id, tb.id);
        assert_eq!(jc.code(0x1000, 3, 0, cache.epoch()), tb.entry());
        assert!(jc.get(0x1000, 4, 0).is_none(), "other CPU-mode flags");
        assert!(jc.get(0x1000, 3, 1).is_none(), "other compile flags");
        // A pc that shares the slot.
        let alias = (1..)
            .map(|k| 0x1000 + 2 * k)
            .find(|&p| JumpCache::index(p) == JumpCache::index(0x1000))
            .unwrap();
        assert!(jc.code(alias, 3, 0, cache.epoch()).is_none());
        cache.invalidate_range(None, 0x1000, 0x1001);
        assert!(jc.get(0x1000, 3, 0).is_none(), "invalidated blocks miss");
        assert!(jc.code(0x1000, 3, 0, cache.epoch()).is_none());
        assert!(jc.code_revalidated(0x1000, 3, 0, cache.epoch()).is_none());
    }

    #[test]
    fn an_invalidation_elsewhere_costs_one_validity_check_and_nothing_more() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        let a = block(&cache, 0x1000, 0, true);
        let b = block(&cache, 0x5000, 0, true);
        jc.insert(a.clone(), cache.epoch());
        jc.insert(b.clone(), cache.epoch());
        let before = cache.epoch();
        cache.invalidate_range(None, 0x5000, 0x5001);
        assert_ne!(cache.epoch(), before, "an invalidation moves the epoch");
        assert_eq!(jc.code(0x1000, 0, 0, cache.epoch()), None, "stamped before");
        assert_eq!(jc.code_revalidated(0x1000, 0, 0, cache.epoch()), a.entry());
        assert_eq!(
            jc.code(0x1000, 0, 0, cache.epoch()),
            a.entry(),
            "stamped again"
        );
        assert_eq!(jc.code_revalidated(0x5000, 0, 0, cache.epoch()), None);
        assert_eq!(jc.code(0x5000, 0, 0, cache.epoch()), None);
    }

    #[test]
    fn interpreted_blocks_have_no_code_address_and_clear_forgets_all() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        jc.insert(block(&cache, 0x2000, 0, false), cache.epoch());
        jc.insert(block(&cache, 0x3000, 0, true), cache.epoch());
        assert!(jc.get(0x2000, 0, 0).is_some());
        assert_eq!(jc.code(0x2000, 0, 0, cache.epoch()), None);
        assert!(jc.code(0x3000, 0, 0, cache.epoch()).is_some());
        jc.clear();
        assert!(jc.get(0x2000, 0, 0).is_none());
        assert!(jc.code(0x3000, 0, 0, cache.epoch()).is_none());
    }

    #[test]
    fn clear_forgets_every_slot_after_page_flushes_and_refills() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        let a = block(&cache, 0x1000, 0, true);
        let b = block(&cache, 0x9_2040, 0, true);
        // Refill one slot over and over across page flushes: the list of used slots
        // repeats it and must be rebuilt rather than grow without bound.
        for _ in 0..2 * ENTRIES + 3 {
            jc.insert(a.clone(), cache.epoch());
            jc.clear_page(0x1000);
        }
        assert!(jc.used.len() <= ENTRIES);
        jc.insert(a.clone(), cache.epoch());
        jc.insert(b.clone(), cache.epoch());
        jc.clear();
        assert!(jc.get(0x1000, 0, 0).is_none());
        assert!(jc.get(0x9_2040, 0, 0).is_none());
        assert!(jc.slots.iter().all(|s| s.code == 0), "every slot empty");
        assert!(jc.used.is_empty());
    }

    #[test]
    fn neighbouring_blocks_never_share_a_slot() {
        // Within one group, slots are the low bits of the pc: blocks less than a group's
        // span apart (the handlers of an interpreter loop) cannot evict each other.
        let base = 0x40_1000u64;
        let slots: std::collections::HashSet<usize> = (0..GROUP as u64)
            .map(|k| JumpCache::index(base + k))
            .collect();
        assert_eq!(slots.len(), GROUP);
    }

    #[test]
    fn a_page_flush_forgets_that_page_and_keeps_others() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        let here = block(&cache, 0x8020_1040, 0, true);
        let same_page = block(&cache, 0x8020_1ff0, 0, true);
        let elsewhere = block(&cache, 0x8040_3000, 0, true);
        for tb in [&here, &same_page, &elsewhere] {
            jc.insert(tb.clone(), cache.epoch());
        }
        jc.clear_page(0x8020_1000);
        assert!(jc.get(here.key.pc, 0, 0).is_none());
        assert!(jc.get(same_page.key.pc, 0, 0).is_none());
        assert_eq!(jc.get(elsewhere.key.pc, 0, 0).unwrap().id, elsewhere.id);
    }

    #[test]
    fn a_non_global_clear_keeps_blocks_fetched_through_global_mappings() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        let user = block(&cache, 0x40_1000, 0, true);
        let kernel = block(&cache, 0xffff_ffff_8100_0000, 0, true);
        jc.insert_mapped(user, cache.epoch(), false);
        jc.insert_mapped(kernel.clone(), cache.epoch(), true);
        jc.clear_non_global();
        assert!(jc.get(0x40_1000, 0, 0).is_none());
        assert_eq!(jc.get(0xffff_ffff_8100_0000, 0, 0).unwrap().id, kernel.id);
        jc.clear();
        assert!(
            jc.get(0xffff_ffff_8100_0000, 0, 0).is_none(),
            "a full clear drops it"
        );
    }

    #[test]
    fn a_page_clear_keeps_other_pages_of_the_same_group() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        let a = block(&cache, 0x7000, 0, true);
        // Another page whose group is the same (the group comes from a hash of the page).
        let other = (1u64..)
            .map(|k| 0x7000 + (k << ir::abi::PAGE_BITS) + 0x10)
            .find(|&pc| JumpCache::group(pc) == JumpCache::group(0x7000))
            .unwrap();
        let b = block(&cache, other, 0, true);
        jc.insert(a, cache.epoch());
        jc.insert(b.clone(), cache.epoch());
        jc.clear_page(0x7abc);
        assert!(jc.get(0x7000, 0, 0).is_none());
        assert_eq!(jc.get(other, 0, 0).unwrap().id, b.id);
    }
}
