//! The lock-free lookup table of the block cache: a fixed array of buckets, each a singly
//! linked list of nodes pushed at the head.
//!
//! Readers (every vCPU, also from inside generated code through the `lookup` helper) walk a
//! bucket with acquire loads and never lock. Writers (insertion, removal) are serialised by the
//! block cache's write lock, which the `&mut`-free API cannot enforce, so the mutating methods
//! are `unsafe` with that as their contract. A removed node may still be read by a walker that
//! reached it before, so it is never freed while the table is shared: removed nodes are
//! retired to a list freed when the table is dropped (bounded by the blocks translated in the
//! engine's life, tens of bytes each).

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

use crate::cache::{BlockKey, TranslationBlock};

const BUCKETS: usize = 1 << 15;

struct Node {
    key: BlockKey,
    tb: Arc<TranslationBlock>,
    next: AtomicPtr<Node>,
}

/// Lock-free lookup, externally serialised updates.
pub(crate) struct BlockTable {
    buckets: Box<[AtomicPtr<Node>]>,
    retired: Mutex<Vec<*mut Node>>,
}

// SAFETY: nodes are heap allocations reached only through atomics; they hold `Arc`s of
// `TranslationBlock`, which is Send + Sync.
unsafe impl Send for BlockTable {}
// SAFETY: as above; readers only take shared references to nodes that are never freed while
// the table is alive.
unsafe impl Sync for BlockTable {}

fn bucket(key: &BlockKey) -> usize {
    let h = key.phys_pc.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ key.pc.rotate_left(17)
        ^ ((key.flags as u64) << 32 | key.cflags as u64);
    (h ^ (h >> 29)) as usize & (BUCKETS - 1)
}

impl BlockTable {
    pub(crate) fn new() -> BlockTable {
        BlockTable {
            buckets: (0..BUCKETS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The valid block stored under `key`.
    pub(crate) fn get(&self, key: &BlockKey) -> Option<Arc<TranslationBlock>> {
        let mut p = self.buckets[bucket(key)].load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: non-null node pointers in the table are live allocations: nodes are only
            // freed by Drop, when no reader exists.
            let node = unsafe { &*p };
            if node.key == *key && node.tb.is_valid() {
                return Some(node.tb.clone());
            }
            p = node.next.load(Ordering::Acquire);
        }
        None
    }

    /// Adds `tb` under its key.
    ///
    /// # Safety
    /// Calls to `insert`, `remove` and `clear` are serialised by the caller.
    pub(crate) unsafe fn insert(&self, tb: Arc<TranslationBlock>) {
        let head = &self.buckets[bucket(&tb.key)];
        let node = Box::into_raw(Box::new(Node {
            key: tb.key,
            tb,
            next: AtomicPtr::new(head.load(Ordering::Relaxed)),
        }));
        head.store(node, Ordering::Release);
    }

    /// Unlinks the node of block `id` stored under `key`, if present.
    ///
    /// # Safety
    /// As for [`BlockTable::insert`].
    pub(crate) unsafe fn remove(&self, key: &BlockKey, id: u32) {
        let mut link = &self.buckets[bucket(key)];
        loop {
            let p = link.load(Ordering::Acquire);
            if p.is_null() {
                return;
            }
            // SAFETY: a live node (see `get`).
            let node = unsafe { &*p };
            if node.tb.id == id && node.key == *key {
                // Readers that already reached the node keep walking through its `next`.
                link.store(node.next.load(Ordering::Acquire), Ordering::Release);
                self.retired.lock().unwrap().push(p);
                return;
            }
            link = &node.next;
        }
    }

    /// Unlinks every node.
    ///
    /// # Safety
    /// As for [`BlockTable::insert`].
    pub(crate) unsafe fn clear(&self) {
        let mut retired = self.retired.lock().unwrap();
        for head in self.buckets.iter() {
            let mut p = head.swap(ptr::null_mut(), Ordering::AcqRel);
            while !p.is_null() {
                retired.push(p);
                // SAFETY: a live node, now unreachable from the table but not freed.
                p = unsafe { &*p }.next.load(Ordering::Acquire);
            }
        }
    }
}

impl Drop for BlockTable {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer remains. Every node is either reachable
        // from a bucket or retired, never both, so each is freed exactly once.
        unsafe { self.clear() };
        for p in self.retired.get_mut().unwrap().drain(..) {
            // SAFETY: allocated by Box::into_raw in `insert`, freed only here.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
