//! The per-vCPU front cache of the block lookup: a direct-mapped table keyed by virtual pc.
//!
//! No locks: each vCPU owns its table. An entry is only a hint; a hit is used when the block is
//! still valid and its virtual pc and flags match. Entries are dropped when the vCPU's TLB is
//! flushed, since the virtual-to-physical mapping they assumed may have changed.

use std::sync::Arc;

use crate::cache::TranslationBlock;

const ENTRIES: usize = 4096;

/// A vCPU's jump cache.
pub struct JumpCache {
    entries: Box<[Option<Arc<TranslationBlock>>]>,
}

impl Default for JumpCache {
    fn default() -> Self {
        Self::new()
    }
}

impl JumpCache {
    /// An empty cache.
    pub fn new() -> JumpCache {
        JumpCache {
            entries: vec![None; ENTRIES].into_boxed_slice(),
        }
    }

    fn index(pc: u64) -> usize {
        ((pc >> 1) ^ (pc >> 13)) as usize & (ENTRIES - 1)
    }

    /// The valid block cached for virtual `pc` under `flags` and compile flags `cflags`.
    pub fn get(&self, pc: u64, flags: u32, cflags: u32) -> Option<&Arc<TranslationBlock>> {
        self.entries[Self::index(pc)].as_ref().filter(|tb| {
            tb.key.pc == pc && tb.key.flags == flags && tb.key.cflags == cflags && tb.is_valid()
        })
    }

    /// Remembers `tb` for its virtual pc.
    pub fn insert(&mut self, tb: Arc<TranslationBlock>) {
        let i = Self::index(tb.key.pc);
        self.entries[i] = Some(tb);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.iter_mut().for_each(|e| *e = None);
    }
}
