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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use backend_x86_64::{CompiledBlock, GotoSlot};
use ir::abi::PAGE_MASK;

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
    by_page: HashMap<u64, Vec<u32>>,
}

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

/// The shared block cache.
pub struct BlockCache {
    /// Bookkeeping; its write lock also serialises every update of `table`.
    inner: RwLock<Inner>,
    /// Lookup by key, lock-free for readers.
    table: BlockTable,
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
        }
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

    /// Whether some valid block was translated from `phys_page`.
    pub fn is_code_page(&self, phys_page: u64) -> bool {
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
    /// (the page's mapping may change), nor to a block spanning two pages.
    pub fn link(
        &self,
        linker: &dyn Linker,
        from: &TranslationBlock,
        slot: u8,
        to: &TranslationBlock,
        system: bool,
    ) -> bool {
        if system && (from.key.pc & PAGE_MASK != to.key.pc & PAGE_MASK || to.spans_pages()) {
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
        inner.valid -= 1;
        // SAFETY: table updates happen only under the write lock, which the caller holds.
        unsafe { self.table.remove(&tb.key, id) };
        for &(start, _) in &tb.phys_ranges {
            if let Some(list) = inner.by_page.get_mut(&(start & PAGE_MASK)) {
                list.retain(|&x| x != id);
                if list.is_empty() {
                    inner.by_page.remove(&(start & PAGE_MASK));
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
        *inner = Inner::default();
        // SAFETY: under the write lock.
        unsafe { self.table.clear() };
    }
}
