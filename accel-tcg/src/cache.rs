//! The block cache shared by all vCPUs: translated blocks by key and by physical page, the
//! direct links between them, and their invalidation.
//!
//! A block is found by [`BlockKey`]: physical pc, virtual pc, CPU-mode flags and the engine's
//! compile flags, so a remapped page needs no flush and code translated under another
//! privilege level is never reused. Blocks are also listed under each physical page they were
//! translated from; a store to such a page invalidates the blocks that cover the written
//! bytes. Invalidating a block marks it invalid (lookups and jump caches skip it), unlinks
//! every direct jump into it and out of it, and forgets it; its host code stays in the buffer
//! (a vCPU may still be running it) until the next flush.
//!
//! Lock order: the backend's lock (compile, link, unlink) is taken before this cache's lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use backend_x86_64::{CompiledBlock, GotoSlot};
use ir::abi::{PAGE_BITS, PAGE_MASK};

use crate::block_table::BlockTable;

/// Compile flag: translate a single instruction (used to re-run a store that modified the
/// block it was running in).
pub const CF_ONE_INSN: u32 = 1 << 0;

/// What identifies a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// Guest virtual pc of the first instruction.
    pub pc: u64,
    /// Guest physical address of the first instruction.
    pub phys_pc: u64,
    /// The frontend's CPU-mode flags.
    pub flags: u32,
    /// The engine's compile flags (`CF_*`).
    pub cflags: u32,
}

/// The runnable form of a block.
#[derive(Debug)]
pub enum BlockCode {
    /// Host code from the x86_64 backend.
    Jit(CompiledBlock),
    /// IR for the reference interpreter.
    Interp(ir::Block),
}

#[derive(Debug, Default)]
struct Links {
    /// Where each goto slot is linked to.
    out: [Option<u32>; 2],
    /// Blocks (and their slot) that jump straight here.
    incoming: Vec<(u32, u8)>,
}

/// One translated block.
#[derive(Debug)]
pub struct TranslationBlock {
    /// The id generated code reports in its exit codes.
    pub id: u32,
    /// The cache key.
    pub key: BlockKey,
    /// Physical address range of the guest code, `[start, end)`, per page: the second page
    /// is used when the code crosses a page boundary.
    pub phys_ranges: Vec<(u64, u64)>,
    /// `(pc, extra)` of each instruction, for precise exceptions.
    pub insn_starts: Box<[(u64, u64)]>,
    /// The code.
    pub code: BlockCode,
    valid: AtomicBool,
    links: Mutex<Links>,
}

impl TranslationBlock {
    /// A valid, unlinked block.
    pub fn new(
        id: u32,
        key: BlockKey,
        phys_ranges: Vec<(u64, u64)>,
        insn_starts: Box<[(u64, u64)]>,
        code: BlockCode,
    ) -> TranslationBlock {
        TranslationBlock {
            id,
            key,
            phys_ranges,
            insn_starts,
            code,
            valid: AtomicBool::new(true),
            links: Mutex::default(),
        }
    }

    /// Not invalidated yet.
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Acquire)
    }

    /// The block's code lies on more than one guest page.
    pub fn spans_pages(&self) -> bool {
        self.phys_ranges.len() > 1
    }

    /// The goto slots of the host code, if compiled.
    fn goto_slot(&self, slot: u8) -> Option<GotoSlot> {
        match &self.code {
            BlockCode::Jit(c) => c.goto_slots.get(slot as usize).copied().flatten(),
            BlockCode::Interp(_) => None,
        }
    }

    /// The host entry, if compiled.
    #[inline]
    pub fn entry(&self) -> Option<usize> {
        match &self.code {
            BlockCode::Jit(c) => Some(c.entry),
            BlockCode::Interp(_) => None,
        }
    }

    /// Where slot `slot` is linked to.
    pub fn linked_to(&self, slot: u8) -> Option<u32> {
        self.links
            .lock()
            .unwrap()
            .out
            .get(slot as usize)
            .copied()
            .flatten()
    }
}

#[derive(Default)]
struct Inner {
    blocks: Vec<Option<Arc<TranslationBlock>>>,
    /// Number of valid blocks.
    valid: usize,
    by_page: ir::fast_hash::FastHashMap<u64, Vec<u32>>,
}

/// `Links::out` of a slot pointed at its own jump-cache probe stub (no block behind it).
const PROBE_LINK: u32 = u32::MAX;

/// Patches host jumps; the backend in JIT mode.
pub trait Linker {
    /// Points `slot` at `target`.
    fn link(&self, slot: &GotoSlot, target: usize);
    /// Points `slot` back at its exit.
    fn unlink(&self, slot: &GotoSlot);
}

impl Linker for backend_x86_64::Backend {
    fn link(&self, slot: &GotoSlot, target: usize) {
        backend_x86_64::Backend::link(self, slot, target)
    }
    fn unlink(&self, slot: &GotoSlot) {
        backend_x86_64::Backend::unlink(self, slot)
    }
}

/// log2 of the number of counters in the code-page filter.
const CODE_FILTER_BITS: u32 = 16;

/// The filter counter of physical page `page`.
fn code_filter_slot(page: u64) -> usize {
    ((page >> PAGE_BITS).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - CODE_FILTER_BITS)) as usize
}

/// The shared block cache.
pub struct BlockCache {
    /// Bookkeeping; its write lock also serialises every update of `table` and
    /// `code_filter`.
    inner: RwLock<Inner>,
    /// Lookup by key, lock-free for readers.
    table: BlockTable,
    /// A counting filter over the pages that hold code: counter `code_filter_slot(p)` is the
    /// number of code pages hashing to it. Every TLB refill asks whether its page holds code,
    /// and nearly all the answers are "no": a zero counter gives that answer with one load and
    /// no lock; a nonzero one (a code page or a collision) falls back to the exact map.
    code_filter: Box<[AtomicU32]>,
    /// Bumped after every invalidation and flush, so a vCPU's jump cache can tell that a block
    /// it saw valid in the current epoch is still valid without reading the block.
    epoch: AtomicU64,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockCache {
    /// An empty cache.
    pub fn new() -> BlockCache {
        BlockCache {
            inner: RwLock::default(),
            table: BlockTable::new(),
            code_filter: (0..1usize << CODE_FILTER_BITS)
                .map(|_| AtomicU32::new(0))
                .collect(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The invalidation epoch: it changes after any block is invalidated or the cache is
    /// flushed. A block found valid while the epoch read beforehand is still current is
    /// still valid.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Where the epoch lives, for generated code's inline jump-cache probe (the cache lives
    /// as long as its engine, which outlives every vCPU running its code).
    pub(crate) fn epoch_ptr(&self) -> *const AtomicU64 {
        &self.epoch
    }

    /// The valid block for `key`, without taking a lock.
    pub fn lookup(&self, key: &BlockKey) -> Option<Arc<TranslationBlock>> {
        self.table.get(key)
    }

    /// The block with id `id`, valid or not, if it was created since the last flush.
    pub fn get(&self, id: u32) -> Option<Arc<TranslationBlock>> {
        self.inner.read().unwrap().blocks.get(id as usize)?.clone()
    }

    /// The id the next inserted block gets.
    pub fn next_id(&self) -> u32 {
        self.inner.read().unwrap().blocks.len() as u32
    }

    /// Number of valid blocks.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap().valid
    }

    /// No valid blocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some valid block was translated from `phys_page`. Lock-free for pages that hold
    /// no code (the common case: it is asked on every TLB refill).
    #[inline]
    pub fn is_code_page(&self, phys_page: u64) -> bool {
        let page = phys_page & PAGE_MASK;
        if self.code_filter[code_filter_slot(page)].load(Ordering::Acquire) == 0 {
            return false;
        }
        self.is_code_page_locked(page)
    }

    #[cold]
    fn is_code_page_locked(&self, phys_page: u64) -> bool {
        self.inner
            .read()
            .unwrap()
            .by_page
            .get(&(phys_page & PAGE_MASK))
            .is_some_and(|v| !v.is_empty())
    }

    /// Adds `tb` (whose id must be [`BlockCache::next_id`]); returns it shared, and the
    /// physical pages that hold code for the first time.
    pub fn insert(&self, tb: TranslationBlock) -> (Arc<TranslationBlock>, Vec<u64>) {
        let mut inner = self.inner.write().unwrap();
        assert_eq!(
            tb.id as usize,
            inner.blocks.len(),
            "block ids are handed out in order"
        );
        let tb = Arc::new(tb);
        let mut new_pages = Vec::new();
        for &(start, _) in &tb.phys_ranges {
            let list = inner.by_page.entry(start & PAGE_MASK).or_default();
            if list.is_empty() {
                new_pages.push(start & PAGE_MASK);
                self.code_filter[code_filter_slot(start & PAGE_MASK)]
                    .fetch_add(1, Ordering::AcqRel);
            }
            list.push(tb.id);
        }
        // SAFETY: table updates happen only under the write lock held here.
        unsafe { self.table.insert(tb.clone()) };
        inner.valid += 1;
        inner.blocks.push(Some(tb.clone()));
        (tb, new_pages)
    }

    /// Links `from`'s `slot` straight to `to` if both are still valid and the slot is free.
    /// `system` applies the system-mode rule: no direct link to code on another guest page
    /// (the page's mapping may change), nor to a block spanning two pages; such a slot is
    /// pointed at its inline jump-cache probe instead, when the backend made one (this
    /// returns `false`: no block link was made).
    pub fn link(
        &self,
        linker: &dyn Linker,
        from: &TranslationBlock,
        slot: u8,
        to: &TranslationBlock,
        system: bool,
    ) -> bool {
        if system && (from.key.pc & PAGE_MASK != to.key.pc & PAGE_MASK || to.spans_pages()) {
            if let Some((goto, probe)) = from
                .goto_slot(slot)
                .and_then(|g| g.probe_stub.map(|p| (g, p)))
            {
                let _inner = self.inner.write().unwrap();
                let mut links = from.links.lock().unwrap();
                if from.is_valid() && links.out[slot as usize].is_none() {
                    links.out[slot as usize] = Some(PROBE_LINK);
                    linker.link(&goto, probe);
                }
            }
            return false;
        }
        let (Some(goto), Some(target)) = (from.goto_slot(slot), to.entry()) else {
            return false;
        };
        let _inner = self.inner.write().unwrap();
        if !from.is_valid() || !to.is_valid() {
            return false;
        }
        {
            let mut links = from.links.lock().unwrap();
            if links.out[slot as usize].is_some() {
                return false;
            }
            links.out[slot as usize] = Some(to.id);
        }
        to.links.lock().unwrap().incoming.push((from.id, slot));
        linker.link(&goto, target);
        true
    }

    /// Invalidates every block whose code overlaps the physical range `[start, end)`; returns
    /// their ids.
    pub fn invalidate_range(&self, linker: Option<&dyn Linker>, start: u64, end: u64) -> Vec<u32> {
        let mut inner = self.inner.write().unwrap();
        let mut victims = Vec::new();
        let mut page = start & PAGE_MASK;
        while page < end {
            if let Some(ids) = inner.by_page.get(&page) {
                for &id in ids {
                    let Some(Some(tb)) = inner.blocks.get(id as usize) else {
                        continue;
                    };
                    if tb.phys_ranges.iter().any(|&(s, e)| s < end && start < e)
                        && !victims.contains(&id)
                    {
                        victims.push(id);
                    }
                }
            }
            page += ir::abi::PAGE_SIZE;
        }
        for &id in &victims {
            self.invalidate_locked(&mut inner, linker, id);
        }
        victims
    }

    fn invalidate_locked(&self, inner: &mut Inner, linker: Option<&dyn Linker>, id: u32) {
        let Some(Some(tb)) = inner.blocks.get(id as usize).cloned() else {
            return;
        };
        if !tb.valid.swap(false, Ordering::AcqRel) {
            return;
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        inner.valid -= 1;
        // SAFETY: table updates happen only under the write lock, which the caller holds.
        unsafe { self.table.remove(&tb.key, id) };
        for &(start, _) in &tb.phys_ranges {
            if let Some(list) = inner.by_page.get_mut(&(start & PAGE_MASK)) {
                list.retain(|&x| x != id);
                if list.is_empty() {
                    inner.by_page.remove(&(start & PAGE_MASK));
                    self.code_filter[code_filter_slot(start & PAGE_MASK)]
                        .fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        let links = std::mem::take(&mut *tb.links.lock().unwrap());
        // Jumps into this block go back to their exits.
        for (src_id, slot) in links.incoming {
            let Some(Some(src)) = inner.blocks.get(src_id as usize) else {
                continue;
            };
            let mut src_links = src.links.lock().unwrap();
            if src_links.out[slot as usize] == Some(id) {
                src_links.out[slot as usize] = None;
                if let (Some(linker), Some(goto)) = (linker, src.goto_slot(slot)) {
                    linker.unlink(&goto);
                }
            }
        }
        // Jumps out of it: the targets forget the link (its own code is dead anyway, but a
        // vCPU still inside it must leave at its end rather than run on).
        for (slot, dst) in links.out.iter().enumerate() {
            let Some(dst_id) = dst else { continue };
            if let (Some(linker), Some(goto)) = (linker, tb.goto_slot(slot as u8)) {
                linker.unlink(&goto);
            }
            if let Some(Some(dst)) = inner.blocks.get(*dst_id as usize) {
                dst.links
                    .lock()
                    .unwrap()
                    .incoming
                    .retain(|&(s, sl)| !(s == id && sl == slot as u8));
            }
        }
    }

    /// Forgets every block (after the code buffer was flushed). Ids start again at 0.
    pub fn flush(&self) {
        let mut inner = self.inner.write().unwrap();
        for tb in inner.blocks.iter().flatten() {
            tb.valid.store(false, Ordering::Release);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        *inner = Inner::default();
        for counter in self.code_filter.iter() {
            counter.store(0, Ordering::Release);
        }
        // SAFETY: under the write lock.
        unsafe { self.table.clear() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_x86_64::CompiledBlock;

    /// Records patches: `(field, target)`.
    #[derive(Default)]
    struct RecordingLinker {
        patches: Mutex<Vec<(usize, usize)>>,
    }

    impl Linker for RecordingLinker {
        fn link(&self, slot: &GotoSlot, target: usize) {
            self.patches.lock().unwrap().push((slot.field, target));
        }
        fn unlink(&self, slot: &GotoSlot) {
            self.patches
                .lock()
                .unwrap()
                .push((slot.field, slot.exit_stub));
        }
    }

    impl RecordingLinker {
        fn take(&self) -> Vec<(usize, usize)> {
            std::mem::take(&mut *self.patches.lock().unwrap())
        }
    }

    /// A fake compiled block whose addresses encode its id: entry id*0x1000, slot n's field
    /// id*0x1000+0x100+n*8, its exit stub +0x200+n*8, its probe stub +0x300+n*8.
    fn block(cache: &BlockCache, pc: u64, len: u64) -> Arc<TranslationBlock> {
        let id = cache.next_id();
        let base = id as usize * 0x1000;
        let slot = |n: usize| {
            Some(GotoSlot {
                field: base + 0x100 + n * 8,
                exit_stub: base + 0x200 + n * 8,
                probe_stub: Some(base + 0x300 + n * 8),
            })
        };
        let code = CompiledBlock {
            entry: base,
            len: 64,
            goto_slots: [slot(0), slot(1)],
        };
        let key = BlockKey {
            pc,
            phys_pc: pc,
            flags: 0,
            cflags: 0,
        };
        let end = pc + len;
        let mut ranges = vec![(pc, end.min((pc & PAGE_MASK) + ir::abi::PAGE_SIZE))];
        if end > (pc & PAGE_MASK) + ir::abi::PAGE_SIZE {
            ranges.push(((pc & PAGE_MASK) + ir::abi::PAGE_SIZE, end));
        }
        cache
            .insert(TranslationBlock::new(
                id,
                key,
                ranges,
                Box::new([(pc, 0)]),
                BlockCode::Jit(code),
            ))
            .0
    }

    #[test]
    fn lookups_find_valid_blocks_by_their_whole_key() {
        let cache = BlockCache::new();
        let tb = block(&cache, 0x1000, 16);
        assert_eq!(cache.lookup(&tb.key).unwrap().id, 0);
        assert!(cache.lookup(&BlockKey { flags: 1, ..tb.key }).is_none());
        assert!(cache
            .lookup(&BlockKey {
                phys_pc: 0x9000,
                ..tb.key
            })
            .is_none());
        assert!(cache.is_code_page(0x1000));
        assert!(!cache.is_code_page(0x2000));
    }

    #[test]
    fn linking_patches_once_and_respects_the_same_page_rule_in_system_mode() {
        let cache = BlockCache::new();
        let linker = RecordingLinker::default();
        let a = block(&cache, 0x1000, 16);
        let b = block(&cache, 0x1100, 16);
        let far = block(&cache, 0x5000, 16);
        assert!(cache.link(&linker, &a, 0, &b, true));
        assert_eq!(linker.take(), vec![(0x100, 0x1000)]);
        assert!(
            !cache.link(&linker, &a, 0, &b, true),
            "a slot is linked once"
        );
        assert!(
            !cache.link(&linker, &a, 1, &far, true),
            "no link to another page in system mode"
        );
        assert_eq!(
            linker.take(),
            vec![(0x108, 0x308)],
            "the slot goes to its own jump-cache probe instead"
        );
        assert!(!cache.link(&linker, &a, 1, &far, true));
        assert!(linker.take().is_empty(), "once");
        assert!(
            cache.link(&linker, &b, 1, &far, false),
            "user mode links anywhere"
        );
        assert_eq!(a.linked_to(0), Some(1));
        assert_eq!(b.linked_to(1), Some(2));
    }

    #[test]
    fn invalidating_a_block_sends_its_probe_linked_slot_back_to_its_exit() {
        let cache = BlockCache::new();
        let linker = RecordingLinker::default();
        let a = block(&cache, 0x1000, 16);
        let far = block(&cache, 0x5000, 16);
        assert!(!cache.link(&linker, &a, 0, &far, true));
        assert_eq!(linker.take(), vec![(0x100, 0x300)]);
        cache.invalidate_range(Some(&linker), 0x5000, 0x5010);
        assert!(
            linker.take().is_empty(),
            "the probe checks the target itself"
        );
        cache.invalidate_range(Some(&linker), 0x1000, 0x1010);
        assert_eq!(linker.take(), vec![(0x100, 0x200)]);
    }

    #[test]
    fn a_block_spanning_two_pages_is_never_a_direct_target_in_system_mode() {
        let cache = BlockCache::new();
        let linker = RecordingLinker::default();
        let a = block(&cache, 0x1f00, 16);
        let spanning = block(&cache, 0x1ff8, 16);
        assert!(spanning.spans_pages());
        assert!(!cache.link(&linker, &a, 0, &spanning, true));
    }

    #[test]
    fn invalidating_a_target_unlinks_every_jump_into_it() {
        let cache = BlockCache::new();
        let linker = RecordingLinker::default();
        let a = block(&cache, 0x1000, 16);
        let b = block(&cache, 0x1100, 16);
        let c = block(&cache, 0x1200, 16);
        assert!(cache.link(&linker, &a, 0, &c, true));
        assert!(cache.link(&linker, &b, 1, &c, true));
        linker.take();
        // A store to c's bytes only.
        assert_eq!(
            cache.invalidate_range(Some(&linker), 0x1208, 0x1209),
            vec![2]
        );
        let mut patches = linker.take();
        patches.sort();
        assert_eq!(
            patches,
            vec![(0x100, 0x200), (0x1108, 0x1208)],
            "both slots back at their exit stubs"
        );
        assert!(!c.is_valid());
        assert!(cache.lookup(&c.key).is_none());
        assert!(a.is_valid() && b.is_valid());
        assert_eq!((a.linked_to(0), b.linked_to(1)), (None, None));
        // The slots can be linked again, to a new translation.
        let c2 = block(&cache, 0x1200, 16);
        assert!(cache.link(&linker, &a, 0, &c2, true));
    }

    #[test]
    fn invalidating_a_source_drops_its_outgoing_links() {
        let cache = BlockCache::new();
        let linker = RecordingLinker::default();
        let a = block(&cache, 0x1000, 16);
        let b = block(&cache, 0x1100, 16);
        assert!(cache.link(&linker, &a, 0, &b, true));
        linker.take();
        assert_eq!(
            cache.invalidate_range(Some(&linker), 0x1000, 0x1001),
            vec![0]
        );
        assert_eq!(
            linker.take(),
            vec![(0x100, 0x200)],
            "a's own jump goes back to its exit"
        );
        assert!(b.links.lock().unwrap().incoming.is_empty());
        // Invalidating b now patches nothing of a.
        cache.invalidate_range(Some(&linker), 0x1100, 0x1110);
        assert!(linker.take().is_empty());
        assert!(!cache.is_code_page(0x1000));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_range_invalidates_only_the_blocks_it_overlaps_on_either_page() {
        let cache = BlockCache::new();
        let spanning = block(&cache, 0x1ff8, 16);
        let before = block(&cache, 0x1000, 16);
        let after = block(&cache, 0x2100, 16);
        assert_eq!(
            cache.invalidate_range(None, 0x2004, 0x2008),
            vec![spanning.id]
        );
        assert!(before.is_valid() && after.is_valid());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn code_pages_are_known_exactly_while_they_hold_valid_blocks() {
        let cache = BlockCache::new();
        // Many pages, so some share a filter counter with a page that holds no code.
        let blocks: Vec<_> = (0..2000u64)
            .map(|i| block(&cache, 0x10_0000 + i * 0x2000, 16))
            .collect();
        for i in 0..2000u64 {
            assert!(cache.is_code_page(0x10_0000 + i * 0x2000 + 0x123));
            assert!(
                !cache.is_code_page(0x10_1000 + i * 0x2000),
                "the odd pages hold no code, whatever their filter counter says"
            );
        }
        cache.invalidate_range(None, 0x10_0000, 0x10_0001);
        assert!(!cache.is_code_page(0x10_0000));
        assert!(cache.is_code_page(0x10_2000));
        cache.flush();
        assert!(!cache.is_code_page(0x10_2000));
        assert!(cache
            .code_filter
            .iter()
            .all(|c| c.load(Ordering::Relaxed) == 0));
        drop(blocks);
    }

    #[test]
    fn two_blocks_on_a_page_keep_it_code_until_both_are_gone() {
        let cache = BlockCache::new();
        block(&cache, 0x3000, 16);
        block(&cache, 0x3800, 16);
        cache.invalidate_range(None, 0x3000, 0x3001);
        assert!(cache.is_code_page(0x3000));
        cache.invalidate_range(None, 0x3800, 0x3801);
        assert!(!cache.is_code_page(0x3000));
        assert_eq!(
            cache.code_filter[code_filter_slot(0x3000)].load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn a_flush_forgets_everything_and_restarts_ids() {
        let cache = BlockCache::new();
        let a = block(&cache, 0x1000, 16);
        cache.flush();
        assert!(!a.is_valid());
        assert!(cache.lookup(&a.key).is_none());
        assert_eq!(cache.next_id(), 0);
        assert!(cache.get(0).is_none());
    }
}
