//! Property-test support: a test CPU state and guest memory that both the [`interp`] interpreter
//! and generated code can run on, helpers with every flag, random valid blocks, and a
//! comparison of final states. Compiled with the `testing` feature.
//!
//! The intended use, in the backend's tests:
//! ```ignore
//! proptest!(|(block in arb_block(), init in arb_env())| {
//!     let mut reference = TestState::new(&init);
//!     let want = reference.run_interp(&mut Interpreter::new(), &block, 1);
//!     let mut jit = TestState::new(&init);
//!     let code = /* compile `block` with id 1 and call it with jit.env_ptr() */;
//!     let got = jit.outcome(ExitCode::decode(code).unwrap());
//!     if let Some(d) = diff(&want, &got) { panic!("{}\n{d}", print_block(&block)) }
//! });
//! ```
//!
//! **The machine.** [`TestEnv`] is an [`EnvHeader`], 16 u64 global slots ([`NUM_GLOBALS`] of
//! them are globals, [`globals`]; the last four are never named and must stay untouched; an I32
//! global is the low 4 bytes of its slot and the high 4 bytes must stay untouched too), 8
//! "env scratch" slots for `EnvLoad`/`EnvStore`, a pointer to the [`TestMemory`], the
//! exception record ([`RaisedRecord`]), the address the lookup function returns, and the
//! effect accumulator of the `NONE`-flag helper.
//!
//! [`TestMemory`] is a window of 16 pages at guest [`WINDOW_BASE`]: page [`FAULT_PAGE`] raises
//! on every access, page [`MMIO_PAGE`] is reached only through the slow path (it behaves like
//! RAM and counts accesses), page [`WATCH_PAGE`] is read through the fast path but written
//! through the slow path (counted); every other address raises. Misaligned `aligned` accesses
//! raise too. MMU mode 0's TLB maps the window for the inline fast path; every other mode's TLB
//! is all invalid, so those accesses always take the slow path. The slow paths and the
//! interpreter's [`GuestMemory`] share one implementation, so the counters and faults agree
//! whichever path an engine takes — provided it takes the slow path exactly where the TLB says.

use std::fmt::Write as _;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

use proptest::prelude::*;

use crate::abi::{
    decode_slow_path_info, EnvHeader, ExitCode, ExitKind, JumpProbe, LoadSlowFn, LookupFn,
    StoreSlowFn, TlbEntry, TlbFast, MMU_MODES, NO_JUMP_CACHE, PAGE_BITS, PAGE_SIZE, TLB_ENTRY_BITS,
    TLB_INVALID, TLB_MMIO, TLB_WATCH,
};
use crate::interp::{self, GuestMemory, Interpreter};
use crate::op::{BinOp, ExtFrom, Op, UnOp};
use crate::types::{Cond, GlobalDef, MemOp, Size, Temp, TempKind, Type};
use crate::{format_op, Block, Builder, Helper, HelperFlags};

/// Guest address of the first byte of the memory window.
pub const WINDOW_BASE: u64 = 0x10000;
/// Pages in the window.
pub const WINDOW_PAGES: usize = 16;
/// Bytes in the window.
pub const WINDOW_SIZE: u64 = WINDOW_PAGES as u64 * PAGE_SIZE;
/// The window page on which every access raises ([`RaiseKind::Fault`]).
pub const FAULT_PAGE: usize = 3;
/// The window page that is "MMIO": slow path only, behaves like RAM, accesses are counted.
pub const MMIO_PAGE: usize = 5;
/// The window page that is "watched": reads on the fast path, writes on the slow path
/// (counted).
pub const WATCH_PAGE: usize = 6;
/// Entries of each TLB table.
pub const TLB_ENTRIES: usize = 64;
/// u64 global slots in [`TestEnv`].
pub const GLOBAL_SLOTS: usize = 16;
/// Globals defined over the first slots ([`globals`]).
pub const NUM_GLOBALS: usize = 12;
/// u64 env-scratch slots in [`TestEnv`] for `EnvLoad`/`EnvStore`.
pub const SCRATCH_SLOTS: usize = 8;

/// What raised a guest exception in the test machine.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RaiseKind {
    /// Nothing raised.
    #[default]
    None = 0,
    /// An access touched the faulting page or left the window; `addr` is the first such byte.
    Fault = 1,
    /// An `aligned` access was misaligned; `addr` is the access address.
    Misaligned = 2,
    /// [`HELPER_RAISE`] raised; `addr` is its argument.
    Helper = 3,
}

/// The exception record, written by whatever raised.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaisedRecord {
    /// What raised.
    pub kind: RaiseKind,
    /// How many times something raised (more than one means an engine went on after a raise).
    pub count: u32,
    /// The faulting address (see [`RaiseKind`]).
    pub addr: u64,
}

/// The test CPU state. See the module docs for the layout.
#[repr(C)]
pub struct TestEnv {
    /// The generated-code header.
    pub header: EnvHeader,
    /// Global slots; [`globals`] names the first [`NUM_GLOBALS`].
    pub globals: [u64; GLOBAL_SLOTS],
    /// Fields for `EnvLoad`/`EnvStore` (not globals).
    pub scratch: [u64; SCRATCH_SLOTS],
    /// The memory, for the slow-path functions (also in `header.opaque`).
    pub mem: *mut TestMemory,
    /// The last guest exception.
    pub raised: RaisedRecord,
    /// What [`test_lookup`] returns: set it to the backend's "return to the loop" address (or
    /// a block's code) before running generated code that ends in `LookupAndGoto`. Zero, the
    /// default, is not a valid code address.
    pub lookup_target: u64,
    /// Accumulator of [`HELPER_EFFECT`] (a side effect outside the globals).
    pub effects: u64,
}

/// Byte offset of global slot `i` in [`TestEnv`].
pub const fn global_offset(i: usize) -> u32 {
    (offset_of!(TestEnv, globals) + 8 * i) as u32
}

/// Byte offset of env-scratch slot `i` in [`TestEnv`].
pub const fn scratch_offset(i: usize) -> u32 {
    (offset_of!(TestEnv, scratch) + 8 * i) as u32
}

const GLOBAL_TYPES: [Type; NUM_GLOBALS] = [
    Type::I64,
    Type::I32,
    Type::I64,
    Type::I64,
    Type::I32,
    Type::I64,
    Type::I32,
    Type::I64,
    Type::I64,
    Type::I32,
    Type::I64,
    Type::I32,
];
const GLOBAL_NAMES: [&str; NUM_GLOBALS] = [
    "g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g10", "g11",
];

/// The globals of [`TestEnv`]: `g0..g11`, global `i` in slot `i`, a mix of I64 and I32
/// (`g0` is I64, which [`HELPER_READS`] reads; `g1` is I32, which [`HELPER_WRITES`] writes).
pub fn globals() -> Arc<[GlobalDef]> {
    (0..NUM_GLOBALS)
        .map(|i| GlobalDef {
            name: GLOBAL_NAMES[i],
            ty: GLOBAL_TYPES[i],
            offset: global_offset(i),
        })
        .collect()
}

/// A 4 KiB page, so the window's backing store is page aligned like a real guest RAM mapping.
#[repr(C, align(4096))]
#[derive(Clone)]
struct Page([u8; PAGE_SIZE as usize]);

/// Why a [`TestMemory`] access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The byte at this address is on the faulting page or outside the window.
    Page(u64),
    /// An `aligned` access at this address is misaligned.
    Misaligned(u64),
}

/// The guest memory window of the test machine (see the module docs).
pub struct TestMemory {
    pages: Vec<Page>,
    tlb: Box<[TlbEntry; TLB_ENTRIES]>,
    invalid_tlb: Box<[TlbEntry; TLB_ENTRIES]>,
    /// Accesses (loads) that touched the MMIO page.
    pub mmio_reads: u64,
    /// Stores that touched the MMIO page.
    pub mmio_writes: u64,
    /// Stores that touched the watched page.
    pub watched_writes: u64,
}

impl TestMemory {
    /// A window whose bytes are `fill(offset)`, with the TLB of MMU mode 0 filled.
    pub fn new(mut fill: impl FnMut(usize) -> u8) -> TestMemory {
        let mut pages = vec![Page([0; PAGE_SIZE as usize]); WINDOW_PAGES];
        for (p, page) in pages.iter_mut().enumerate() {
            for (i, b) in page.0.iter_mut().enumerate() {
                *b = fill(p * PAGE_SIZE as usize + i);
            }
        }
        let host = pages.as_ptr() as u64;
        let mut tlb = Box::new([TlbEntry::INVALID; TLB_ENTRIES]);
        for p in 0..WINDOW_PAGES {
            if p == FAULT_PAGE {
                continue;
            }
            let guest = WINDOW_BASE + p as u64 * PAGE_SIZE;
            let (read, write) = match p {
                MMIO_PAGE => (guest | TLB_MMIO, guest | TLB_MMIO),
                WATCH_PAGE => (guest, guest | TLB_WATCH),
                _ => (guest, guest),
            };
            tlb[tlb_index(guest)] = TlbEntry {
                addr_read: read,
                addr_write: write,
                addr_code: guest,
                addend: host.wrapping_add(p as u64 * PAGE_SIZE).wrapping_sub(guest),
            };
        }
        debug_assert!(tlb
            .iter()
            .all(|e| e.addr_read & TLB_INVALID == 0 || *e == TlbEntry::INVALID));
        TestMemory {
            pages,
            tlb,
            invalid_tlb: Box::new([TlbEntry::INVALID; TLB_ENTRIES]),
            mmio_reads: 0,
            mmio_writes: 0,
            watched_writes: 0,
        }
    }

    /// The window's bytes.
    pub fn bytes(&self) -> &[u8] {
        // Pages are plain byte arrays laid out back to back.
        let len = self.pages.len() * PAGE_SIZE as usize;
        let ptr = self.pages.as_ptr().cast::<u8>();
        // SAFETY: `pages` is `len` initialized, contiguous bytes borrowed for `&self`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.pages.len() * PAGE_SIZE as usize;
        let ptr = self.pages.as_mut_ptr().cast::<u8>();
        // SAFETY: as in `bytes`, borrowed mutably for `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Host address of the window's first byte.
    pub fn host_base(&self) -> u64 {
        self.pages.as_ptr() as u64
    }

    /// Checks an access and returns its offset in the window. Misalignment is checked first,
    /// then every byte (nothing is accessed unless all of it can be).
    fn check(addr: u64, size: u32, aligned: bool) -> Result<usize, Fault> {
        let size = size as u64;
        if aligned && addr & (size - 1) != 0 {
            return Err(Fault::Misaligned(addr));
        }
        for i in 0..size {
            let a = addr.wrapping_add(i);
            let off = a.wrapping_sub(WINDOW_BASE);
            if off >= WINDOW_SIZE || (off >> PAGE_BITS) as usize == FAULT_PAGE {
                return Err(Fault::Page(a));
            }
        }
        Ok((addr - WINDOW_BASE) as usize)
    }

    fn touches(off: usize, size: u32, page: usize) -> bool {
        let first = off >> PAGE_BITS;
        let last = (off + size as usize - 1) >> PAGE_BITS;
        first == page || last == page
    }

    /// A guest load: the low `mop.size` bytes, zero-extended (callers extend per `mop`).
    pub fn load(&mut self, addr: u64, mop: MemOp) -> Result<u64, Fault> {
        let size = mop.size.bytes();
        let off = Self::check(addr, size, mop.aligned)?;
        if Self::touches(off, size, MMIO_PAGE) {
            self.mmio_reads += 1;
        }
        let mut raw = [0u8; 8];
        raw[..size as usize].copy_from_slice(&self.bytes()[off..off + size as usize]);
        Ok(u64::from_le_bytes(raw))
    }

    /// A guest store of the low `mop.size` bytes of `val`.
    pub fn store(&mut self, addr: u64, val: u64, mop: MemOp) -> Result<(), Fault> {
        let size = mop.size.bytes();
        let off = Self::check(addr, size, mop.aligned)?;
        if Self::touches(off, size, MMIO_PAGE) {
            self.mmio_writes += 1;
        }
        if Self::touches(off, size, WATCH_PAGE) {
            self.watched_writes += 1;
        }
        self.bytes_mut()[off..off + size as usize]
            .copy_from_slice(&val.to_le_bytes()[..size as usize]);
        Ok(())
    }
}

/// Index of the TLB entry for guest address `addr`.
pub const fn tlb_index(addr: u64) -> usize {
    ((addr >> PAGE_BITS) as usize) & (TLB_ENTRIES - 1)
}

/// Records `fault` in the state and sets `unwind`.
///
/// # Safety
/// `env` points to a live [`TestEnv`] not otherwise borrowed.
unsafe fn raise(env: *mut TestEnv, kind: RaiseKind, addr: u64) {
    // SAFETY: the caller's contract.
    let env = unsafe { &mut *env };
    env.raised.kind = kind;
    env.raised.count += 1;
    env.raised.addr = addr;
    env.header.unwind = 1;
}

/// # Safety
/// As for [`raise`].
unsafe fn raise_fault(env: *mut TestEnv, fault: Fault) {
    let (kind, addr) = match fault {
        Fault::Page(a) => (RaiseKind::Fault, a),
        Fault::Misaligned(a) => (RaiseKind::Misaligned, a),
    };
    // SAFETY: forwarded.
    unsafe { raise(env, kind, addr) }
}

/// The memory of the [`TestEnv`] at `env`.
///
/// # Safety
/// `env` points to a live [`TestEnv`] built by [`TestState`], whose memory is not otherwise
/// borrowed.
unsafe fn memory_of<'a>(env: *mut TestEnv) -> &'a mut TestMemory {
    // SAFETY: the caller's contract.
    let mem = unsafe { (*env).mem };
    // SAFETY: `TestState` keeps `mem` pointing at its live memory.
    unsafe { &mut *mem }
}

/// The load slow path of the test machine ([`LoadSlowFn`]).
///
/// # Safety
/// `env` is the address of a [`TestEnv`] built by [`TestState`].
pub unsafe extern "C" fn test_load_slow(env: u64, addr: u64, _val: u64, info: u64) -> u64 {
    let env = env as *mut TestEnv;
    let (mop, _mmu_idx, _insn, _block) = decode_slow_path_info(info);
    // SAFETY: the caller's contract.
    let mem = unsafe { memory_of(env) };
    match mem.load(addr, mop) {
        Ok(raw) => mop.extend(raw),
        Err(f) => {
            // SAFETY: the caller's contract; `mem` is not part of the `TestEnv`.
            unsafe { raise_fault(env, f) };
            0
        }
    }
}

/// The store slow path of the test machine ([`StoreSlowFn`]).
///
/// # Safety
/// As for [`test_load_slow`].
pub unsafe extern "C" fn test_store_slow(env: u64, addr: u64, val: u64, info: u64) -> u64 {
    let env = env as *mut TestEnv;
    let (mop, _mmu_idx, _insn, _block) = decode_slow_path_info(info);
    // SAFETY: the caller's contract.
    let mem = unsafe { memory_of(env) };
    if let Err(f) = mem.store(addr, val, mop) {
        // SAFETY: as in `test_load_slow`.
        unsafe { raise_fault(env, f) };
    }
    0
}

/// The lookup function of the test machine ([`LookupFn`]): returns
/// [`TestEnv::lookup_target`].
///
/// # Safety
/// `env` is the address of a live [`TestEnv`].
pub unsafe extern "C" fn test_lookup(env: u64) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { (*(env as *const TestEnv)).lookup_target }
}

/// The interpreter reaches the test memory through the same code as the slow paths.
impl GuestMemory for TestMemory {
    unsafe fn load(
        &mut self,
        env: *mut u8,
        addr: u64,
        mop: MemOp,
        _mmu_idx: u8,
        _block_id: u32,
    ) -> Result<u64, interp::Raised> {
        match TestMemory::load(self, addr, mop) {
            Ok(v) => Ok(v),
            Err(f) => {
                // SAFETY: `env` is the TestEnv of the run (the trait's contract).
                unsafe { raise_fault(env.cast(), f) };
                Err(interp::Raised)
            }
        }
    }

    unsafe fn store(
        &mut self,
        env: *mut u8,
        addr: u64,
        val: u64,
        mop: MemOp,
        _mmu_idx: u8,
        _block_id: u32,
    ) -> Result<(), interp::Raised> {
        TestMemory::store(self, addr, val, mop).map_err(|f| {
            // SAFETY: as in `load`.
            unsafe { raise_fault(env.cast(), f) };
            interp::Raised
        })
    }
}

// ---- Helpers ---------------------------------------------------------------------------------

unsafe extern "C" fn pure_fn(a: u64, b: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a.wrapping_mul(3) ^ b
}

unsafe extern "C" fn reads_fn(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the helper's contract: the first argument is the TestEnv.
    let g0 = unsafe { (*(env as *const TestEnv)).globals[0] };
    g0.wrapping_add(x)
}

unsafe extern "C" fn writes_fn(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let slot = (env as *mut TestEnv).wrapping_byte_add(global_offset(1) as usize);
    // SAFETY: the first argument is the TestEnv; g1 is the I32 field at the start of slot 1.
    unsafe { slot.cast::<u32>().write(x as u32) };
    x ^ 0x5a5a
}

unsafe extern "C" fn raise_fn(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    if x & 1 != 0 {
        // SAFETY: the first argument is the TestEnv.
        unsafe { raise(env as *mut TestEnv, RaiseKind::Helper, x) };
        return 0xdead_beef;
    }
    x >> 1
}

unsafe extern "C" fn six_fn(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64 {
    // Every position has its own multiplier, so swapped arguments change the result.
    [a, b, c, d, e, f]
        .iter()
        .fold(0u64, |acc, &x| acc.wrapping_mul(1_000_003).wrapping_add(x))
}

unsafe extern "C" fn effect_fn(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the first argument is the TestEnv; `effects` is not a global.
    let e = unsafe { &mut (*(env as *mut TestEnv)).effects };
    *e = e.wrapping_mul(31).wrapping_add(x);
    *e
}

/// `PURE`: `(a, b) -> a * 3 ^ b`.
pub static HELPER_PURE: Helper = Helper {
    name: "test_pure",
    func: pure_fn,
    flags: HelperFlags::PURE,
};
/// `READS_GLOBALS`: `(env, x) -> g0 + x`.
pub static HELPER_READS: Helper = Helper {
    name: "test_reads_g0",
    func: reads_fn,
    flags: HelperFlags::READS_GLOBALS,
};
/// `WRITES_GLOBALS`: `(env, x)` sets `g1 = x` (I32) and returns `x ^ 0x5a5a`.
pub static HELPER_WRITES: Helper = Helper {
    name: "test_writes_g1",
    func: writes_fn,
    flags: HelperFlags::WRITES_GLOBALS,
};
/// `MAY_RAISE`: `(env, x)`: raises ([`RaiseKind::Helper`], `addr = x`) when `x` is odd, else
/// returns `x >> 1`.
pub static HELPER_RAISE: Helper = Helper {
    name: "test_raise_if_odd",
    func: raise_fn,
    flags: HelperFlags::MAY_RAISE,
};
/// `PURE`, six arguments: a polynomial with one weight per position (argument order).
pub static HELPER_SIX: Helper = Helper {
    name: "test_six",
    func: six_fn,
    flags: HelperFlags::PURE,
};
/// No flags (a side effect outside the globals): `(env, x)`:
/// `effects = effects * 31 + x`, returns the new `effects`. Order-sensitive, so dropped,
/// duplicated or reordered calls show.
pub static HELPER_EFFECT: Helper = Helper {
    name: "test_effect",
    func: effect_fn,
    flags: HelperFlags::NONE,
};

/// Every test helper.
pub static TEST_HELPERS: [&Helper; 6] = [
    &HELPER_PURE,
    &HELPER_READS,
    &HELPER_WRITES,
    &HELPER_RAISE,
    &HELPER_SIX,
    &HELPER_EFFECT,
];

// ---- State -----------------------------------------------------------------------------------

/// The initial state of one test: global slots, env-scratch slots, memory contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEnvInit {
    /// Initial global slots (whole slots: an I32 global's high half is garbage that must stay).
    pub globals: [u64; GLOBAL_SLOTS],
    /// Initial env-scratch slots.
    pub scratch: [u64; SCRATCH_SLOTS],
    /// Seed of the memory contents (see [`fill_byte`]).
    pub mem_seed: u64,
}

impl Default for TestEnvInit {
    fn default() -> TestEnvInit {
        TestEnvInit {
            globals: [0; GLOBAL_SLOTS],
            scratch: [0; SCRATCH_SLOTS],
            mem_seed: 0,
        }
    }
}

/// Byte `offset` of the window for a memory seed (a splitmix64 stream).
pub fn fill_byte(seed: u64, offset: usize) -> u8 {
    let mut z = seed.wrapping_add((offset as u64 / 8 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> ((offset % 8) * 8)) as u8
}

/// The block-cache epoch of every test state.
static TEST_EPOCH: AtomicU64 = AtomicU64::new(0);
/// The jump probe of every test state: no slot ever hits.
static TEST_PROBE: JumpProbe = JumpProbe {
    slots: NO_JUMP_CACHE.as_ptr(),
    epoch: &TEST_EPOCH,
    block_flags: 0,
};

/// A [`TestEnv`] and its [`TestMemory`], at stable heap addresses (the header's TLB pointers
/// and `TestEnv::mem` point into them).
pub struct TestState {
    env: NonNull<TestEnv>,
    mem: NonNull<TestMemory>,
}

impl TestState {
    /// A fresh state: `exit_request` and `unwind` 0, `insn_index` 0, the slow paths and
    /// lookup pointing at [`test_load_slow`], [`test_store_slow`] and [`test_lookup`], MMU
    /// mode 0's TLB mapping the window and the other modes' TLBs all invalid, `opaque` and
    /// `mem` pointing at the memory, `lookup_target` 0.
    pub fn new(init: &TestEnvInit) -> TestState {
        let seed = init.mem_seed;
        let mem = NonNull::from(Box::leak(Box::new(TestMemory::new(|o| fill_byte(seed, o)))));
        // SAFETY: `mem` was just leaked from a Box and nothing else refers to it yet.
        let m = unsafe { &mut *mem.as_ptr() };
        let mask = ((TLB_ENTRIES - 1) as u64) << TLB_ENTRY_BITS;
        let mut tlb = [TlbFast {
            mask,
            table: m.invalid_tlb.as_mut_ptr(),
        }; MMU_MODES];
        tlb[0].table = m.tlb.as_mut_ptr();
        let env = Box::new(TestEnv {
            header: EnvHeader {
                exit_request: AtomicU32::new(0),
                unwind: 0,
                insn_index: 0,
                reserved: 0,
                load_slow: test_load_slow as LoadSlowFn,
                store_slow: test_store_slow as StoreSlowFn,
                lookup: test_lookup as LookupFn,
                tlb,
                opaque: mem.as_ptr().cast(),
                // Every inline probe misses, so `LookupAndGoto` always calls `test_lookup`.
                jump_probe: &TEST_PROBE,
            },
            globals: init.globals,
            scratch: init.scratch,
            mem: mem.as_ptr(),
            raised: RaisedRecord::default(),
            lookup_target: 0,
            effects: 0,
        });
        TestState {
            env: NonNull::from(Box::leak(env)),
            mem,
        }
    }

    /// The state pointer to give the interpreter or generated code.
    pub fn env_ptr(&self) -> *mut u8 {
        self.env.as_ptr().cast()
    }

    /// The CPU state (do not hold it across a run).
    pub fn env(&self) -> &TestEnv {
        // SAFETY: `env` is live until drop; runs need `&mut self`, so no run is in progress.
        unsafe { self.env.as_ref() }
    }

    /// The CPU state, mutably (e.g. to set `lookup_target` or `exit_request`).
    pub fn env_mut(&mut self) -> &mut TestEnv {
        // SAFETY: as in `env`, exclusive through `&mut self`.
        unsafe { self.env.as_mut() }
    }

    /// The memory.
    pub fn memory(&self) -> &TestMemory {
        // SAFETY: as in `env`.
        unsafe { self.mem.as_ref() }
    }

    /// The memory, mutably.
    pub fn memory_mut(&mut self) -> &mut TestMemory {
        // SAFETY: as in `env_mut`.
        unsafe { self.mem.as_mut() }
    }

    /// Runs `block` in the interpreter and returns the outcome.
    ///
    /// # Panics
    /// If the block could reach outside [`TestEnv`] (a global not in [`globals`]'s slots, an
    /// `EnvLoad`/`EnvStore` outside the scratch slots) or calls a helper other than the
    /// [`TEST_HELPERS`]: the interpreter's safety contract could not be met.
    pub fn run_interp(
        &mut self,
        interp: &mut Interpreter,
        block: &Block,
        block_id: u32,
    ) -> Outcome {
        assert_fits(block);
        let env = self.env_ptr();
        // SAFETY: `assert_fits` checked every field the block touches is inside the scratch
        // or global slots of the live TestEnv, and that it calls only the test helpers, which
        // take the TestEnv as their env argument or touch nothing.
        let code = unsafe { interp.run(block, env, self.memory_mut(), block_id) };
        self.outcome(code)
    }

    /// The final state after a run that returned `exit`.
    pub fn outcome(&self, exit: ExitCode) -> Outcome {
        let e = self.env();
        let m = self.memory();
        Outcome {
            exit,
            globals: e.globals,
            scratch: e.scratch,
            unwind: e.header.unwind,
            insn_index: e.header.insn_index,
            raised: e.raised,
            effects: e.effects,
            memory: m.bytes().to_vec(),
            mmio_reads: m.mmio_reads,
            mmio_writes: m.mmio_writes,
            watched_writes: m.watched_writes,
        }
    }
}

impl Drop for TestState {
    fn drop(&mut self) {
        // SAFETY: both were leaked from Boxes in `new` and are dropped once, here.
        drop(unsafe { Box::from_raw(self.env.as_ptr()) });
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(self.mem.as_ptr()) });
    }
}

fn assert_fits(block: &Block) {
    let gbase = global_offset(0);
    let gend = global_offset(GLOBAL_SLOTS);
    for g in block.globals.iter() {
        let end = g.offset + g.ty.bits() / 8;
        assert!(
            g.offset >= gbase && end <= gend,
            "global {} is outside TestEnv's global slots",
            g.name
        );
    }
    for t in &block.temps {
        if let TempKind::Global { offset, .. } = t.kind {
            assert!(offset >= gbase && offset + t.ty.bits() / 8 <= gend);
        }
    }
    let (sbase, send) = (scratch_offset(0), scratch_offset(SCRATCH_SLOTS));
    for op in &block.ops {
        match *op {
            Op::EnvLoad { offset, mop, .. } | Op::EnvStore { offset, mop, .. } => assert!(
                offset >= sbase && offset + mop.size.bytes() <= send,
                "EnvLoad/EnvStore at {offset:#x} is outside TestEnv's scratch slots"
            ),
            Op::Call { helper, .. } => assert!(
                TEST_HELPERS.iter().any(|h| std::ptr::eq(*h, helper)),
                "helper {} is not a test helper",
                helper.name
            ),
            _ => {}
        }
    }
}

/// Everything observable after a run, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code.
    pub exit: ExitCode,
    /// Global slots.
    pub globals: [u64; GLOBAL_SLOTS],
    /// Env-scratch slots.
    pub scratch: [u64; SCRATCH_SLOTS],
    /// `EnvHeader::unwind`.
    pub unwind: u32,
    /// `EnvHeader::insn_index` (compared only when the exit is an unwind: engines may differ
    /// in when they store it otherwise).
    pub insn_index: u32,
    /// The exception record.
    pub raised: RaisedRecord,
    /// [`HELPER_EFFECT`]'s accumulator.
    pub effects: u64,
    /// The memory window.
    pub memory: Vec<u8>,
    /// [`TestMemory::mmio_reads`].
    pub mmio_reads: u64,
    /// [`TestMemory::mmio_writes`].
    pub mmio_writes: u64,
    /// [`TestMemory::watched_writes`].
    pub watched_writes: u64,
}

/// A readable list of the differences between `expected` and `actual` (globals by name, slots,
/// header fields, the first differing memory bytes, counters, exit code), or `None` when they
/// agree.
pub fn diff(expected: &Outcome, actual: &Outcome) -> Option<String> {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    if expected.exit != actual.exit {
        line(format!(
            "exit: expected {:?}, got {:?}",
            expected.exit, actual.exit
        ));
    }
    for i in 0..GLOBAL_SLOTS {
        let (e, a) = (expected.globals[i], actual.globals[i]);
        if e != a {
            let name = if i < NUM_GLOBALS {
                format!("{} ({})", GLOBAL_NAMES[i], GLOBAL_TYPES[i])
            } else {
                format!("unnamed slot {i}")
            };
            line(format!(
                "global slot {i} {name}: expected {e:#x}, got {a:#x}"
            ));
        }
    }
    for i in 0..SCRATCH_SLOTS {
        let (e, a) = (expected.scratch[i], actual.scratch[i]);
        if e != a {
            line(format!("env scratch slot {i}: expected {e:#x}, got {a:#x}"));
        }
    }
    if expected.unwind != actual.unwind {
        line(format!(
            "unwind: expected {}, got {}",
            expected.unwind, actual.unwind
        ));
    }
    let unwinding = expected.exit.kind == ExitKind::Unwind || actual.exit.kind == ExitKind::Unwind;
    if unwinding && expected.insn_index != actual.insn_index {
        line(format!(
            "insn_index: expected {}, got {}",
            expected.insn_index, actual.insn_index
        ));
    }
    if expected.raised != actual.raised {
        line(format!(
            "raised: expected {:?}, got {:?}",
            expected.raised, actual.raised
        ));
    }
    if expected.effects != actual.effects {
        line(format!(
            "effects: expected {:#x}, got {:#x}",
            expected.effects, actual.effects
        ));
    }
    for (name, e, a) in [
        ("mmio_reads", expected.mmio_reads, actual.mmio_reads),
        ("mmio_writes", expected.mmio_writes, actual.mmio_writes),
        (
            "watched_writes",
            expected.watched_writes,
            actual.watched_writes,
        ),
    ] {
        if e != a {
            line(format!("{name}: expected {e}, got {a}"));
        }
    }
    let bad: Vec<usize> = (0..expected.memory.len().min(actual.memory.len()))
        .filter(|&i| expected.memory[i] != actual.memory[i])
        .collect();
    for &i in bad.iter().take(16) {
        line(format!(
            "memory {:#x}: expected {:#04x}, got {:#04x}",
            WINDOW_BASE + i as u64,
            expected.memory[i],
            actual.memory[i]
        ));
    }
    if bad.len() > 16 {
        line(format!("... and {} more differing bytes", bad.len() - 16));
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// The block as text, one op per line with its index (for failure messages).
pub fn print_block(block: &Block) -> String {
    let mut s = String::new();
    for (i, op) in block.ops.iter().enumerate() {
        let _ = writeln!(s, "{i:4}: {}", format_op(block, op));
    }
    s
}

// ---- Random blocks ---------------------------------------------------------------------------

/// An operand, resolved against what exists when the block is built: a global, local or
/// defined scratch temp of the needed type (index modulo how many there are) or a constant.
#[derive(Debug, Clone, Copy)]
enum Src {
    Global(u8),
    Local(u8),
    Scratch(u8),
    Const(u64),
}

/// A destination, resolved like [`Src`]; scratch destinations may be new temps.
#[derive(Debug, Clone, Copy)]
enum Dst {
    Global(u8),
    Local(u8),
    NewScratch,
    Scratch(u8),
}

#[derive(Debug, Clone, Copy)]
enum Term {
    GotoTb(u8),
    Exit(u32),
    Lookup,
}

/// A guest address: `base page + (src & mask)`.
#[derive(Debug, Clone, Copy)]
struct AddrGen {
    src: Src,
    page: u8,
    mask: u8,
}

#[derive(Debug, Clone, Copy)]
enum Alu {
    Mov,
    Bin(BinOp),
    Un(UnOp),
    Ext(ExtFrom),
    Trunc,
    Extract { pos: u8, len: u8, signed: bool },
    Deposit { pos: u8, len: u8 },
    SetCond(Cond),
    MovCond(Cond),
}

#[derive(Debug, Clone)]
enum Item {
    Insn,
    Alu {
        alu: Alu,
        ty: Type,
        ty2: Type,
        dst: Dst,
        srcs: [Src; 4],
    },
    Load {
        dst: Dst,
        ty: Type,
        addr: AddrGen,
        mop: MemOp,
        mmu_idx: u8,
    },
    Store {
        val: Src,
        ty: Type,
        addr: AddrGen,
        mop: MemOp,
        mmu_idx: u8,
    },
    EnvLoad {
        dst: Dst,
        ty: Type,
        slot: u8,
        byte: u8,
        mop: MemOp,
    },
    EnvStore {
        val: Src,
        ty: Type,
        slot: u8,
        byte: u8,
        mop: MemOp,
    },
    Call {
        helper: u8,
        args: [(Src, Type); 6],
        ret: Option<(Dst, Type)>,
    },
    Fence,
    If {
        cond: Cond,
        ty: Type,
        a: Src,
        b: Src,
        body: Vec<Item>,
        exit: Option<Term>,
    },
    IfElse {
        cond: Cond,
        ty: Type,
        a: Src,
        b: Src,
        then: Vec<Item>,
        els: Vec<Item>,
    },
    Loop {
        ty: Type,
        count: u8,
        body: Vec<Item>,
    },
}

/// A random program, turned into a valid [`Block`] by [`Program::build`].
#[derive(Debug, Clone)]
struct Program {
    addr_type: Type,
    locals: [u8; 6],
    items: Vec<Item>,
    end: Term,
    /// A second terminal behind a branch at the end.
    alt_end: Option<(Cond, Src, Term)>,
}

/// Values that sit on the edges of the ops' semantics.
const INTERESTING: [u64; 20] = [
    0,
    1,
    2,
    u64::MAX,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MIN as u64,
    i64::MAX as u64,
    31,
    32,
    33,
    63,
    64,
    0xff,
    0x80,
    0xffff,
    WINDOW_BASE,
    0xffff_ffff_ffff_fffe,
];

fn arb_value() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => prop::sample::select(&INTERESTING[..]),
        1 => 0u64..0x100,
        2 => any::<u64>(),
    ]
    .boxed()
}

fn arb_type() -> BoxedStrategy<Type> {
    prop_oneof![Just(Type::I64), Just(Type::I32)].boxed()
}

fn arb_src() -> BoxedStrategy<Src> {
    prop_oneof![
        3 => any::<u8>().prop_map(Src::Global),
        2 => any::<u8>().prop_map(Src::Local),
        3 => any::<u8>().prop_map(Src::Scratch),
        2 => arb_value().prop_map(Src::Const),
    ]
    .boxed()
}

fn arb_dst() -> BoxedStrategy<Dst> {
    prop_oneof![
        3 => any::<u8>().prop_map(Dst::Global),
        2 => any::<u8>().prop_map(Dst::Local),
        2 => Just(Dst::NewScratch),
        2 => any::<u8>().prop_map(Dst::Scratch),
    ]
    .boxed()
}

fn arb_term() -> BoxedStrategy<Term> {
    prop_oneof![
        (0u8..2).prop_map(Term::GotoTb),
        (0u32..0x100_0000).prop_map(Term::Exit),
        Just(Term::Lookup),
    ]
    .boxed()
}

fn arb_cond() -> BoxedStrategy<Cond> {
    prop::sample::select(&Cond::ALL[..]).boxed()
}

fn arb_mop() -> BoxedStrategy<MemOp> {
    (
        prop::sample::select(&Size::ALL[..]),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(size, signed, aligned)| MemOp {
            size,
            signed,
            aligned,
        })
        .boxed()
}

fn arb_addr() -> BoxedStrategy<AddrGen> {
    (arb_src(), any::<u8>(), any::<u8>())
        .prop_map(|(src, page, mask)| AddrGen { src, page, mask })
        .boxed()
}

fn arb_mmu_idx() -> BoxedStrategy<u8> {
    prop_oneof![3 => Just(0u8), 1 => 1u8..MMU_MODES as u8].boxed()
}

fn arb_alu() -> BoxedStrategy<Alu> {
    prop_oneof![
        2 => Just(Alu::Mov),
        8 => prop::sample::select(&BinOp::ALL[..]).prop_map(Alu::Bin),
        2 => prop::sample::select(&UnOp::ALL[..]).prop_map(Alu::Un),
        2 => prop::sample::select(&ExtFrom::ALL[..]).prop_map(Alu::Ext),
        1 => Just(Alu::Trunc),
        1 => (any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(pos, len, signed)| Alu::Extract { pos, len, signed }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(pos, len)| Alu::Deposit { pos, len }),
        2 => arb_cond().prop_map(Alu::SetCond),
        1 => arb_cond().prop_map(Alu::MovCond),
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Item> {
    let alu = (
        arb_alu(),
        arb_type(),
        arb_type(),
        arb_dst(),
        [arb_src(), arb_src(), arb_src(), arb_src()],
    )
        .prop_map(|(alu, ty, ty2, dst, srcs)| Item::Alu {
            alu,
            ty,
            ty2,
            dst,
            srcs,
        });
    let load = (arb_dst(), arb_type(), arb_addr(), arb_mop(), arb_mmu_idx()).prop_map(
        |(dst, ty, addr, mop, mmu_idx)| Item::Load {
            dst,
            ty,
            addr,
            mop,
            mmu_idx,
        },
    );
    let store = (arb_src(), arb_type(), arb_addr(), arb_mop(), arb_mmu_idx()).prop_map(
        |(val, ty, addr, mop, mmu_idx)| Item::Store {
            val,
            ty,
            addr,
            mop,
            mmu_idx,
        },
    );
    let env_load = (arb_dst(), arb_type(), any::<u8>(), any::<u8>(), arb_mop()).prop_map(
        |(dst, ty, slot, byte, mop)| Item::EnvLoad {
            dst,
            ty,
            slot,
            byte,
            mop,
        },
    );
    let env_store = (arb_src(), arb_type(), any::<u8>(), any::<u8>(), arb_mop()).prop_map(
        |(val, ty, slot, byte, mop)| Item::EnvStore {
            val,
            ty,
            slot,
            byte,
            mop,
        },
    );
    let arg = || (arb_src(), arb_type());
    let call = (
        any::<u8>(),
        [arg(), arg(), arg(), arg(), arg(), arg()],
        prop::option::weighted(0.8, (arb_dst(), arb_type())),
    )
        .prop_map(|(helper, args, ret)| Item::Call { helper, args, ret });
    prop_oneof![
        3 => Just(Item::Insn).boxed(),
        12 => alu.boxed(),
        3 => load.boxed(),
        3 => store.boxed(),
        1 => env_load.boxed(),
        1 => env_store.boxed(),
        2 => call.boxed(),
        1 => Just(Item::Fence).boxed(),
    ]
    .boxed()
}

fn arb_item() -> BoxedStrategy<Item> {
    arb_leaf().prop_recursive(3, 48, 6, |inner| {
        let body = || prop::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            3 => inner.clone(),
            2 => (arb_cond(), arb_type(), arb_src(), arb_src(), body(),
                  prop::option::weighted(0.25, arb_term()))
                .prop_map(|(cond, ty, a, b, body, exit)| Item::If { cond, ty, a, b, body, exit })
                .boxed(),
            1 => (arb_cond(), arb_type(), arb_src(), arb_src(), body(), body())
                .prop_map(|(cond, ty, a, b, then, els)| Item::IfElse { cond, ty, a, b, then, els })
                .boxed(),
            1 => (arb_type(), 1u8..5, body())
                .prop_map(|(ty, count, body)| Item::Loop { ty, count, body })
                .boxed(),
        ]
    })
    .boxed()
}

fn arb_program() -> impl Strategy<Value = Program> {
    (
        prop_oneof![4 => Just(Type::I64), 1 => Just(Type::I32)],
        any::<[u8; 6]>(),
        prop::collection::vec(arb_item(), 1..24),
        arb_term(),
        prop::option::weighted(0.3, (arb_cond(), arb_src(), arb_term())),
    )
        .prop_map(|(addr_type, locals, items, end, alt_end)| Program {
            addr_type,
            locals,
            items,
            end,
            alt_end,
        })
}

/// Random valid blocks over [`globals`] that call only [`TEST_HELPERS`] and touch only the
/// [`TestEnv`] scratch slots and (mostly) the memory window: every op kind in both types,
/// constants on the edges of the semantics, scratch temps within their regions, locals,
/// forward branches (if and if/else), bounded countdown loops, loads and stores of every size
/// and signedness (sometimes `aligned`, sometimes misaligned, sometimes on the fault, MMIO or
/// watched page, across pages, or outside the window), `EnvLoad`/`EnvStore`, calls to every
/// test helper, `InsnStart`s, `Fence`s, and one terminal at the end or two behind a branch
/// (plus early exits inside `if`s). I64 or (sometimes) I32 guest addresses.
pub fn arb_block() -> impl Strategy<Value = Block> {
    arb_program().prop_map(|p| p.build())
}

/// Random initial states: global and scratch slots with values on the edges of the semantics
/// (small ones too, which make addresses in the window), and a memory seed.
pub fn arb_env() -> impl Strategy<Value = TestEnvInit> {
    (
        [
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
            arb_value(),
        ],
        any::<[u64; SCRATCH_SLOTS]>(),
        any::<u64>(),
    )
        .prop_map(|(globals, scratch, mem_seed)| TestEnvInit {
            globals,
            scratch,
            mem_seed,
        })
}

const TYPES: [Type; 2] = [Type::I64, Type::I32];

fn ty_index(ty: Type) -> usize {
    match ty {
        Type::I64 => 0,
        Type::I32 => 1,
    }
}

/// Builds a [`Program`] into a block, keeping track of what the verifier requires.
struct Gen {
    b: Builder,
    /// Globals, locals and all scratch temps by type.
    globals: [Vec<Temp>; 2],
    locals: [Vec<Temp>; 2],
    scratch: [Vec<Temp>; 2],
    /// Scratch temps defined in the current region, by type.
    defined: [Vec<Temp>; 2],
    pc: u64,
    used_slots: [bool; 2],
}

impl Program {
    fn build(&self) -> Block {
        let mut g = Gen {
            b: Builder::new(globals(), self.addr_type),
            globals: [Vec::new(), Vec::new()],
            locals: [Vec::new(), Vec::new()],
            scratch: [Vec::new(), Vec::new()],
            defined: [Vec::new(), Vec::new()],
            pc: 0x40_0000,
            used_slots: [false; 2],
        };
        for (i, &ty) in GLOBAL_TYPES.iter().enumerate() {
            let t = g.b.global(i);
            g.globals[ty_index(ty)].push(t);
        }
        g.insn();
        // Locals are written before anything reads them.
        for (i, &init) in self.locals.iter().enumerate() {
            let ty = TYPES[i % 2];
            let t = g.b.local(ty);
            let src = if init & 1 == 0 {
                g.src(Src::Global(init >> 1), ty)
            } else {
                g.src(
                    Src::Const(INTERESTING[(init >> 1) as usize % INTERESTING.len()]),
                    ty,
                )
            };
            g.b.mov(t, src);
            g.locals[ty_index(ty)].push(t);
        }
        g.items(&self.items);
        if let Some((cond, a, alt)) = self.alt_end {
            let l = g.b.new_label();
            let a = g.src(a, Type::I64);
            let z = g.b.constant(Type::I64, 0);
            g.b.brcond(cond, a, z, l);
            g.term(self.end);
            g.label(l);
            g.term(alt);
        } else {
            g.term(self.end);
        }
        g.b.finish()
    }
}

impl Gen {
    fn insn(&mut self) {
        self.b.insn_start(self.pc, self.pc ^ 0x5555);
        self.pc += 4;
    }

    fn label(&mut self, l: crate::Label) {
        self.b.set_label(l);
        self.defined = [Vec::new(), Vec::new()];
    }

    fn barrier(&mut self) {
        self.defined = [Vec::new(), Vec::new()];
    }

    fn src(&mut self, s: Src, ty: Type) -> Temp {
        let k = ty_index(ty);
        let pick = |v: &Vec<Temp>, i: u8| (!v.is_empty()).then(|| v[i as usize % v.len()]);
        let t = match s {
            Src::Global(i) => pick(&self.globals[k], i),
            Src::Local(i) => pick(&self.locals[k], i),
            Src::Scratch(i) => pick(&self.defined[k], i),
            Src::Const(v) => Some(self.b.constant(ty, v)),
        };
        match (t, s) {
            (Some(t), _) => t,
            (None, Src::Scratch(i) | Src::Local(i) | Src::Global(i)) => self
                .b
                .constant(ty, INTERESTING[i as usize % INTERESTING.len()]),
            (None, Src::Const(v)) => self.b.constant(ty, v),
        }
    }

    fn dst(&mut self, d: Dst, ty: Type) -> Temp {
        let k = ty_index(ty);
        match d {
            Dst::Global(i) => self.globals[k][i as usize % self.globals[k].len()],
            Dst::Local(i) if !self.locals[k].is_empty() => {
                self.locals[k][i as usize % self.locals[k].len()]
            }
            Dst::Scratch(i) if !self.scratch[k].is_empty() => {
                self.scratch[k][i as usize % self.scratch[k].len()]
            }
            _ => {
                let t = self.b.scratch(ty);
                self.scratch[k].push(t);
                t
            }
        }
    }

    /// Records that `t` (just written) is defined in the current region.
    fn wrote(&mut self, t: Temp) {
        let info = self.b.block().temp(t);
        if info.kind == TempKind::Scratch {
            let k = ty_index(info.ty);
            if !self.defined[k].contains(&t) {
                self.defined[k].push(t);
            }
        }
    }

    fn items(&mut self, items: &[Item]) {
        for item in items {
            self.item(item);
        }
    }

    fn item(&mut self, item: &Item) {
        match *item {
            Item::Insn => self.insn(),
            Item::Fence => self.b.fence(),
            Item::Alu {
                alu,
                ty,
                ty2,
                dst,
                srcs,
            } => self.alu(alu, ty, ty2, dst, srcs),
            Item::Load {
                dst,
                ty,
                addr,
                mop,
                mmu_idx,
            } => {
                let mop = fit(mop, ty);
                let a = self.addr(addr, mop);
                let d = self.dst(dst, ty);
                self.b.load(d, a, mop, mmu_idx);
                self.wrote(d);
            }
            Item::Store {
                val,
                ty,
                addr,
                mop,
                mmu_idx,
            } => {
                let mop = fit(mop, ty);
                let a = self.addr(addr, mop);
                let v = self.src(val, ty);
                self.b.store(v, a, mop, mmu_idx);
            }
            Item::EnvLoad {
                dst,
                ty,
                slot,
                byte,
                mop,
            } => {
                let mop = fit(mop, ty);
                let off = env_offset(slot, byte, mop);
                let d = self.dst(dst, ty);
                self.b.env_load(d, off, mop);
                self.wrote(d);
            }
            Item::EnvStore {
                val,
                ty,
                slot,
                byte,
                mop,
            } => {
                let mop = fit(mop, ty);
                let off = env_offset(slot, byte, mop);
                let v = self.src(val, ty);
                self.b.env_store(v, off, mop);
            }
            Item::Call { helper, args, ret } => self.call(helper, args, ret),
            Item::If {
                cond,
                ty,
                a,
                b,
                ref body,
                exit,
            } => {
                let l = self.b.new_label();
                let (a, b) = (self.src(a, ty), self.src(b, ty));
                self.b.brcond(cond, a, b, l);
                self.items(body);
                if let Some(t) = exit {
                    self.term(t);
                }
                self.label(l);
            }
            Item::IfElse {
                cond,
                ty,
                a,
                b,
                ref then,
                ref els,
            } => {
                let (l_else, l_end) = (self.b.new_label(), self.b.new_label());
                let (a, b) = (self.src(a, ty), self.src(b, ty));
                self.b.brcond(cond, a, b, l_else);
                self.items(then);
                self.b.br(l_end);
                self.barrier();
                self.label(l_else);
                self.items(els);
                self.label(l_end);
            }
            Item::Loop {
                ty,
                count,
                ref body,
            } => {
                // A counter no other op writes: the loop runs `count` times.
                let c = self.b.local(ty);
                self.b.movi(c, count as u64);
                let top = self.b.new_label();
                self.label(top);
                self.items(body);
                self.b.addi(c, c, u64::MAX);
                self.b.brcondi(Cond::Ne, c, 0, top);
            }
        }
    }

    fn alu(&mut self, alu: Alu, ty: Type, ty2: Type, dst: Dst, s: [Src; 4]) {
        let d = match alu {
            Alu::Mov => {
                let a = self.src(s[0], ty);
                let d = self.dst(dst, ty);
                self.b.mov(d, a);
                d
            }
            Alu::Bin(op) => {
                let (a, b) = (self.src(s[0], ty), self.src(s[1], ty));
                let d = self.dst(dst, ty);
                self.b.binary(op, d, a, b);
                d
            }
            Alu::Un(op) => {
                let a = self.src(s[0], ty);
                let d = self.dst(dst, ty);
                self.b.unary(op, d, a);
                d
            }
            Alu::Ext(from) => {
                let ty = if from.bits() == 32 { Type::I64 } else { ty };
                let a = self.src(s[0], ty2);
                let d = self.dst(dst, ty);
                self.b.ext(from, d, a);
                d
            }
            Alu::Trunc => {
                let a = self.src(s[0], Type::I64);
                let d = self.dst(dst, Type::I32);
                self.b.trunc(d, a);
                d
            }
            Alu::Extract { pos, len, signed } => {
                let (pos, len) = field(ty, pos, len);
                let a = self.src(s[0], ty);
                let d = self.dst(dst, ty);
                self.b.extract(d, a, pos, len, signed);
                d
            }
            Alu::Deposit { pos, len } => {
                let (pos, len) = field(ty, pos, len);
                let (base, val) = (self.src(s[0], ty), self.src(s[1], ty2));
                let d = self.dst(dst, ty);
                self.b.deposit(d, base, val, pos, len);
                d
            }
            Alu::SetCond(cond) => {
                let (a, b) = (self.src(s[0], ty), self.src(s[1], ty));
                let d = self.dst(dst, ty2);
                self.b.setcond(cond, d, a, b);
                d
            }
            Alu::MovCond(cond) => {
                let (a, b) = (self.src(s[0], ty), self.src(s[1], ty));
                let (t, f) = (self.src(s[2], ty), self.src(s[3], ty));
                let d = self.dst(dst, ty);
                self.b.movcond(cond, d, a, b, t, f);
                d
            }
        };
        self.wrote(d);
    }

    /// `base + (src & mask)` in fresh scratch temps of the address type.
    fn addr(&mut self, a: AddrGen, mop: MemOp) -> Temp {
        let ty = self.b.block().addr_type;
        let page = match a.page % 32 {
            0 => FAULT_PAGE as u64,
            1 => MMIO_PAGE as u64,
            2 => WATCH_PAGE as u64,
            // Just past the window, or far below it.
            3 => WINDOW_PAGES as u64,
            4 => 0u64.wrapping_sub(WINDOW_BASE >> PAGE_BITS),
            p => [0, 1, 2, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 5, 6][p as usize % 15],
        };
        let base = WINDOW_BASE.wrapping_add(page << PAGE_BITS);
        const MASKS: [u64; 8] = [0xfff, 0xff8, 0xffc, 0xfff, 0x1fff, 0x7, 0, 0xff0];
        let mut mask = MASKS[a.mask as usize % MASKS.len()];
        // Aligned accesses are mostly aligned; one in eight keeps its misaligned chances.
        if mop.aligned && a.mask & 0x38 != 0 {
            mask &= !(mop.size.bytes() as u64 - 1);
        }
        let x = self.src(a.src, ty);
        let m = self.b.scratch(ty);
        self.b.binary_imm(BinOp::And, m, x, mask);
        let t = self.b.scratch(ty);
        self.b.addi(t, m, base);
        t
    }

    fn call(&mut self, helper: u8, args: [(Src, Type); 6], ret: Option<(Dst, Type)>) {
        let (h, n, env_first): (&'static Helper, usize, bool) = match helper % 8 {
            0 | 1 => (&HELPER_PURE, 2, false),
            2 => (&HELPER_READS, 2, true),
            3 => (&HELPER_WRITES, 2, true),
            4 => (&HELPER_RAISE, 2, true),
            5 | 6 => (&HELPER_SIX, 6, false),
            _ => (&HELPER_EFFECT, 2, true),
        };
        let mut temps = Vec::with_capacity(n);
        for (i, &(s, ty)) in args.iter().enumerate().take(n) {
            temps.push(if i == 0 && env_first {
                Temp::ENV
            } else {
                self.src(s, ty)
            });
        }
        let ret = ret.map(|(d, ty)| self.dst(d, ty));
        self.b.call(h, &temps, ret);
        if let Some(r) = ret {
            self.wrote(r);
        }
    }

    fn term(&mut self, t: Term) {
        match t {
            Term::GotoTb(slot) => {
                let slot = slot as usize & 1;
                if !self.used_slots[slot] {
                    self.used_slots[slot] = true;
                    self.b.goto_tb(slot as u8);
                } else if !self.used_slots[1 - slot] {
                    self.used_slots[1 - slot] = true;
                    self.b.goto_tb(1 - slot as u8);
                } else {
                    self.b.lookup_and_goto();
                }
            }
            Term::Exit(reason) => self.b.exit_tb(reason),
            Term::Lookup => self.b.lookup_and_goto(),
        }
        self.barrier();
    }
}

/// The access size reduced to fit a temp of type `ty`.
fn fit(mut mop: MemOp, ty: Type) -> MemOp {
    if ty == Type::I32 && mop.size == Size::B64 {
        mop.size = Size::B32;
    }
    mop
}

/// A naturally aligned field in the env-scratch slots.
fn env_offset(slot: u8, byte: u8, mop: MemOp) -> u32 {
    let size = mop.size.bytes();
    let byte = (byte as u32 % 8) & !(size - 1);
    scratch_offset(slot as usize % SCRATCH_SLOTS) + byte
}

/// A bit field `pos..pos+len` that fits `ty` with `len >= 1`.
fn field(ty: Type, pos: u8, len: u8) -> (u8, u8) {
    let bits = ty.bits() as u8;
    let pos = pos % bits;
    let len = 1 + len % (bits - pos);
    (pos, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{offsets, slow_path_info};

    fn page(p: usize) -> u64 {
        WINDOW_BASE + p as u64 * PAGE_SIZE
    }

    #[test]
    fn globals_follow_the_header_and_alternate_types() {
        let g = globals();
        assert_eq!(g.len(), NUM_GLOBALS);
        assert!(g[0].offset >= offsets::HEADER_SIZE);
        assert_eq!(g[0].ty, Type::I64);
        assert_eq!(g[1].ty, Type::I32);
        assert!(g.iter().any(|g| g.ty == Type::I32) && g.iter().any(|g| g.ty == Type::I64));
        assert_eq!(std::mem::offset_of!(TestEnv, header), 0);
    }

    #[test]
    fn mode_0_tlb_maps_the_window_with_flags_and_other_modes_miss() {
        let s = TestState::new(&TestEnvInit::default());
        let fast = s.env().header.tlb;
        assert_eq!(fast[0].mask, 63 << TLB_ENTRY_BITS);
        let lookup = |mode: usize, addr: u64| {
            let off = (addr >> (PAGE_BITS - TLB_ENTRY_BITS)) & fast[mode].mask;
            let entry = fast[mode].table.wrapping_byte_add(off as usize);
            // SAFETY: `off` is masked to the 64-entry table, which lives as long as `s`.
            unsafe { *entry }
        };
        let host = s.memory().host_base();
        let e = lookup(0, page(1) + 0x123);
        assert_eq!(e.addr_read, page(1));
        assert_eq!(e.addr_write, page(1));
        assert_eq!(
            e.addend.wrapping_add(page(1) + 0x123),
            host + PAGE_SIZE + 0x123
        );
        let e = lookup(0, page(MMIO_PAGE));
        assert_eq!(e.addr_read, page(MMIO_PAGE) | TLB_MMIO);
        assert_eq!(e.addr_write, page(MMIO_PAGE) | TLB_MMIO);
        let e = lookup(0, page(WATCH_PAGE));
        assert_eq!(e.addr_read, page(WATCH_PAGE));
        assert_eq!(e.addr_write, page(WATCH_PAGE) | TLB_WATCH);
        assert_eq!(lookup(0, page(FAULT_PAGE)), TlbEntry::INVALID);
        for mode in 1..MMU_MODES {
            assert_eq!(lookup(mode, page(1)), TlbEntry::INVALID);
        }
        assert_eq!(host % PAGE_SIZE, 0, "page-aligned backing store");
    }

    #[test]
    fn memory_faults_misalignment_and_page_crossing() {
        let mut m = TestMemory::new(|o| o as u8);
        let u32a = MemOp::unsigned(Size::B32).with_aligned();
        assert_eq!(m.load(page(0) + 4, u32a), Ok(0x0706_0504));
        assert_eq!(
            m.load(page(0) + 5, u32a),
            Err(Fault::Misaligned(page(0) + 5))
        );
        assert_eq!(
            m.load(page(FAULT_PAGE) + 8, MemOp::unsigned(Size::B8)),
            Err(Fault::Page(page(FAULT_PAGE) + 8))
        );
        // Crossing between normal pages works; crossing into the faulting page raises and
        // writes nothing.
        let u64u = MemOp::unsigned(Size::B64);
        m.store(page(1) + 0xffc, 0x1122_3344_5566_7788, u64u)
            .unwrap();
        assert_eq!(m.load(page(1) + 0xffc, u64u), Ok(0x1122_3344_5566_7788));
        let before = m.bytes().to_vec();
        assert_eq!(
            m.store(page(2) + 0xffe, u64::MAX, u64u),
            Err(Fault::Page(page(FAULT_PAGE)))
        );
        assert_eq!(m.bytes(), &before[..]);
        // Outside the window, on both sides and across its end.
        assert!(m.load(WINDOW_BASE - 1, MemOp::unsigned(Size::B8)).is_err());
        assert!(m
            .load(WINDOW_BASE + WINDOW_SIZE - 2, u32a.with_aligned())
            .is_err());
        assert_eq!(
            m.load(WINDOW_BASE + WINDOW_SIZE - 2, MemOp::unsigned(Size::B32)),
            Err(Fault::Page(WINDOW_BASE + WINDOW_SIZE))
        );
        assert!(m.load(u64::MAX, MemOp::unsigned(Size::B16)).is_err());
    }

    #[test]
    fn mmio_and_watched_pages_count_their_slow_accesses() {
        let mut m = TestMemory::new(|_| 0);
        let b = MemOp::unsigned(Size::B8);
        m.store(page(MMIO_PAGE), 7, b).unwrap();
        assert_eq!(m.load(page(MMIO_PAGE), b), Ok(7));
        m.load(page(MMIO_PAGE) - 1, MemOp::unsigned(Size::B16))
            .unwrap();
        assert_eq!((m.mmio_reads, m.mmio_writes), (2, 1));
        m.load(page(WATCH_PAGE), b).unwrap();
        m.store(page(WATCH_PAGE) + 9, 1, b).unwrap();
        assert_eq!(m.watched_writes, 1);
        assert_eq!((m.mmio_reads, m.mmio_writes), (2, 1));
    }

    #[test]
    fn slow_paths_find_the_memory_through_env_and_record_faults() {
        let mut s = TestState::new(&TestEnvInit {
            mem_seed: 3,
            ..TestEnvInit::default()
        });
        let env = s.env_ptr() as u64;
        let info = slow_path_info(MemOp::signed(Size::B8), 0, 2, 9);
        // SAFETY: `env` is the live TestEnv of `s`.
        unsafe { test_store_slow(env, page(4) + 1, 0x80, info) };
        // SAFETY: as above.
        let v = unsafe { test_load_slow(env, page(4) + 1, 0, info) };
        assert_eq!(v, 0xffff_ffff_ffff_ff80, "extended per the MemOp");
        assert_eq!(s.env().header.unwind, 0);
        // SAFETY: as above.
        unsafe { test_load_slow(env, page(FAULT_PAGE), 0, info) };
        assert_eq!(s.env().header.unwind, 1);
        assert_eq!(
            s.env().raised,
            RaisedRecord {
                kind: RaiseKind::Fault,
                count: 1,
                addr: page(FAULT_PAGE)
            }
        );
        s.env_mut().lookup_target = 0x1234;
        // SAFETY: as above.
        assert_eq!(unsafe { test_lookup(env) }, 0x1234);
        assert_eq!(s.env().header.opaque, s.env().mem.cast());
    }

    #[test]
    fn helpers_do_what_their_docs_say() {
        let mut s = TestState::new(&TestEnvInit::default());
        s.env_mut().globals[0] = 100;
        s.env_mut().globals[1] = 0xaaaa_aaaa_0000_0000;
        let env = s.env_ptr() as u64;
        // SAFETY: the helpers take the live TestEnv of `s` or plain values.
        unsafe {
            assert_eq!((HELPER_PURE.func)(5, 1, 0, 0, 0, 0), 14);
        }
        // SAFETY: as above.
        unsafe {
            assert_eq!((HELPER_READS.func)(env, 5, 0, 0, 0, 0), 105);
        }
        // SAFETY: as above.
        unsafe { (HELPER_WRITES.func)(env, 0x1_2345_6789, 0, 0, 0, 0) };
        assert_eq!(s.env().globals[1], 0xaaaa_aaaa_2345_6789, "an I32 field");
        // SAFETY: as above.
        let six = |a: [u64; 6]| unsafe { (HELPER_SIX.func)(a[0], a[1], a[2], a[3], a[4], a[5]) };
        assert_ne!(six([1, 2, 3, 4, 5, 6]), six([2, 1, 3, 4, 5, 6]));
        assert_ne!(six([1, 2, 3, 4, 5, 6]), six([1, 2, 3, 4, 6, 5]));
        // SAFETY: as above.
        unsafe { (HELPER_EFFECT.func)(env, 2, 0, 0, 0, 0) };
        // SAFETY: as above.
        unsafe { (HELPER_EFFECT.func)(env, 3, 0, 0, 0, 0) };
        assert_eq!(s.env().effects, 2 * 31 + 3);
        // SAFETY: as above.
        assert_eq!(unsafe { (HELPER_RAISE.func)(env, 8, 0, 0, 0, 0) }, 4);
        assert_eq!(s.env().header.unwind, 0);
        // SAFETY: as above.
        unsafe { (HELPER_RAISE.func)(env, 9, 0, 0, 0, 0) };
        assert_eq!(s.env().header.unwind, 1);
        assert_eq!(s.env().raised.kind, RaiseKind::Helper);
        assert_eq!(s.env().raised.addr, 9);
    }

    #[test]
    fn the_interpreter_runs_on_the_test_state_through_the_shared_memory_code() {
        let mut b = Builder::new(globals(), Type::I64);
        b.insn_start(0x100, 0);
        let a = b.constant(Type::I64, page(MMIO_PAGE) + 8);
        let g0 = b.global(0);
        b.store(g0, a, MemOp::unsigned(Size::B64), 0);
        let g2 = b.global(2);
        b.load(g2, a, MemOp::unsigned(Size::B16), 0);
        b.insn_start(0x104, 0);
        let bad = b.constant(Type::I64, page(0) + 2);
        b.load(g2, bad, MemOp::unsigned(Size::B32).with_aligned(), 1);
        b.exit_tb(0);
        let block = b.finish();
        crate::verify::verify(&block).unwrap();
        let mut init = TestEnvInit::default();
        init.globals[0] = 0xabcd;
        let mut s = TestState::new(&init);
        let o = s.run_interp(&mut Interpreter::new(), &block, 5);
        assert_eq!(o.exit.kind, ExitKind::Unwind);
        assert_eq!(o.exit.block_id, 5);
        assert_eq!(o.insn_index, 1);
        assert_eq!(o.globals[2], 0xabcd);
        assert_eq!((o.mmio_reads, o.mmio_writes), (1, 1));
        assert_eq!(o.raised.kind, RaiseKind::Misaligned);
        assert_eq!(o.raised.addr, page(0) + 2);
    }

    #[test]
    fn diff_names_what_differs() {
        let s = TestState::new(&TestEnvInit::default());
        let code = ExitCode {
            block_id: 1,
            kind: ExitKind::Exit,
            payload: 0,
        };
        let a = s.outcome(code);
        assert_eq!(diff(&a, &a.clone()), None);
        let mut b = a.clone();
        b.globals[1] = 5;
        b.memory[0x10] ^= 1;
        b.insn_index = 3; // not an unwind: ignored
        let d = diff(&a, &b).unwrap();
        assert!(d.contains("g1 (i32)"), "{d}");
        assert!(d.contains("memory 0x10010"), "{d}");
        assert!(!d.contains("insn_index"), "{d}");
        b.exit.kind = ExitKind::Unwind;
        let d = diff(&a, &b).unwrap();
        assert!(d.contains("insn_index") && d.contains("exit"), "{d}");
    }

    #[test]
    #[should_panic(expected = "not a test helper")]
    fn run_interp_refuses_foreign_helpers() {
        unsafe extern "C" fn f(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
            0
        }
        static FOREIGN: Helper = Helper {
            name: "foreign",
            func: f,
            flags: HelperFlags::NONE,
        };
        let mut b = Builder::new(globals(), Type::I64);
        b.call(&FOREIGN, &[], None);
        b.exit_tb(0);
        let block = b.finish();
        TestState::new(&TestEnvInit::default()).run_interp(&mut Interpreter::new(), &block, 0);
    }
}
