//! The per-vCPU front cache of the block lookup: a direct-mapped table keyed by virtual pc.
//!
//! No locks: each vCPU owns its table. An entry is only a hint; a hit is used when the block is
//! still valid and its virtual pc and flags match. Entries are dropped when the vCPU's TLB is
//! flushed, since the virtual-to-physical mapping they assumed may have changed.
//!
//! The table is on the path of every indirect jump and return of generated code (the
//! `LookupAndGoto` helper), so an entry carries copies of what a hit needs, the key and the
//! host code address, in one 32-byte slot: a hit is an index, two compares against the slot
//! and one load of the block's validity flag, with no reference-count traffic.

use std::sync::Arc;

use crate::cache::TranslationBlock;

const ENTRIES: usize = 4096;

/// One slot: the block and copies of its key and entry point.
#[derive(Clone, Default)]
#[repr(C, align(32))]
struct Slot {
    /// The block's virtual pc.
    pc: u64,
    /// `cflags << 32 | flags` of the block.
    flags: u64,
    /// Host code address of the block, 0 when it has none (interpreter mode).
    code: usize,
    /// The block; `None` for an empty slot. Keeps the block alive while it is cached.
    tb: Option<Arc<TranslationBlock>>,
}

/// A vCPU's jump cache.
pub struct JumpCache {
    slots: Box<[Slot]>,
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
            slots: vec![Slot::default(); ENTRIES].into_boxed_slice(),
        }
    }

    fn index(pc: u64) -> usize {
        ((pc >> 1) ^ (pc >> 13)) as usize & (ENTRIES - 1)
    }

    /// The slot of `pc` if it holds a valid block for `pc`, `flags` and `cflags`.
    #[inline]
    fn hit(&self, pc: u64, flags: u32, cflags: u32) -> Option<&Slot> {
        let slot = &self.slots[Self::index(pc)];
        if slot.pc != pc || slot.flags != packed(flags, cflags) {
            return None;
        }
        slot.tb.as_ref().filter(|tb| tb.is_valid())?;
        Some(slot)
    }

    /// The valid block cached for virtual `pc` under `flags` and compile flags `cflags`.
    pub fn get(&self, pc: u64, flags: u32, cflags: u32) -> Option<&Arc<TranslationBlock>> {
        self.hit(pc, flags, cflags)?.tb.as_ref()
    }

    /// The host code address of the valid compiled block cached for `pc`, `flags` and
    /// `cflags`: the hit path of the `LookupAndGoto` helper.
    #[inline]
    pub fn code(&self, pc: u64, flags: u32, cflags: u32) -> Option<usize> {
        self.hit(pc, flags, cflags)
            .map(|slot| slot.code)
            .filter(|&c| c != 0)
    }

    /// Remembers `tb` for its virtual pc.
    pub fn insert(&mut self, tb: Arc<TranslationBlock>) {
        let i = Self::index(tb.key.pc);
        self.slots[i] = Slot {
            pc: tb.key.pc,
            flags: packed(tb.key.flags, tb.key.cflags),
            code: tb.entry().unwrap_or(0),
            tb: Some(tb),
        };
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        for slot in self.slots.iter_mut().filter(|s| s.tb.is_some()) {
            *slot = Slot::default();
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
        jc.insert(tb.clone());
        assert_eq!(jc.get(0x1000, 3, 0).unwrap().id, tb.id);
        assert_eq!(jc.code(0x1000, 3, 0), tb.entry());
        assert!(jc.get(0x1000, 4, 0).is_none(), "other CPU-mode flags");
        assert!(jc.get(0x1000, 3, 1).is_none(), "other compile flags");
        // A pc that shares the slot.
        let alias = (1..)
            .map(|k| 0x1000 + 2 * k)
            .find(|&p| JumpCache::index(p) == JumpCache::index(0x1000))
            .unwrap();
        assert!(jc.code(alias, 3, 0).is_none());
        cache.invalidate_range(None, 0x1000, 0x1001);
        assert!(jc.get(0x1000, 3, 0).is_none(), "invalidated blocks miss");
        assert!(jc.code(0x1000, 3, 0).is_none());
    }

    #[test]
    fn interpreted_blocks_have_no_code_address_and_clear_forgets_all() {
        let cache = BlockCache::new();
        let mut jc = JumpCache::new();
        jc.insert(block(&cache, 0x2000, 0, false));
        jc.insert(block(&cache, 0x3000, 0, true));
        assert!(jc.get(0x2000, 0, 0).is_some());
        assert_eq!(jc.code(0x2000, 0, 0), None);
        jc.clear();
        assert!(jc.get(0x2000, 0, 0).is_none());
        assert!(jc.code(0x3000, 0, 0).is_none());
    }
}
