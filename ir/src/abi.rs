//! The contract between translated code (JIT output or the interpreter) and the engine that
//! runs it: the header every CPU state starts with, the softmmu TLB layout the inline fast path
//! reads, the slow-path calls, and the exit codes a block returns.
//!
//! **CPU state.** The frontend's `#[repr(C)]` CPU state begins with an [`EnvHeader`]; globals
//! are fields after it. Generated code keeps the state pointer in a fixed host register.
//!
//! **Exceptions.** Nothing unwinds through generated code. A helper or memory slow path that
//! raises a guest exception records it in the CPU state (frontend-defined), sets
//! [`EnvHeader::unwind`] and returns normally; the block then leaves through
//! [`ExitKind::Unwind`]. Before any op that may raise, dirty globals are stored and
//! [`EnvHeader::insn_index`] is set, so the engine finds the guest pc (and the frontend's
//! `extra` word) in the block's `insn_start` table and the state is exactly that before the
//! faulting instruction. Frontends keep this precise by writing no global of an instruction
//! before its last op that may raise.
//!
//! **Block entry.** Every block first tests [`EnvHeader::exit_request`]; another thread sets
//! it to break a chain of directly linked blocks (interrupts, stop requests).
//!
//! **Indirect jumps.** `LookupAndGoto` first probes the vCPU's jump cache inline
//! ([`JumpProbe`], [`JumpCacheSlot`], [`jump_cache_index`]) with the guest pc (whose place in
//! the CPU state the backend is told) and the flags of [`JumpProbe::block_flags`], and calls
//! [`EnvHeader::lookup`] only on a miss.
//! That relies on a rule every frontend keeps: an instruction that changes the block-key
//! flags (privilege level, CPU mode) ends its block with an exit to the loop, never with a
//! chained or looked-up jump, so the flags at any `LookupAndGoto` are those of the block
//! that runs it, which the loop stores in `block_flags` before it enters generated code.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// Guest pages are 4 KiB for every guest tern runs.
pub const PAGE_BITS: u32 = 12;
/// Guest page size.
pub const PAGE_SIZE: u64 = 1 << PAGE_BITS;
/// Mask of the page-number bits of an address.
pub const PAGE_MASK: u64 = !(PAGE_SIZE - 1);

/// Number of MMU modes (softmmu TLBs) a CPU state carries.
pub const MMU_MODES: usize = 8;

/// Tag bit: the entry is invalid for this kind of access (`u64::MAX` tags are invalid too).
///
/// The flag bits sit at bits 9-11, above the alignment bits the fast path keeps for aligned
/// accesses (`addr & (PAGE_MASK | size - 1)`, at most bits 0-2), so one compare catches both
/// a misaligned address and a flagged page.
pub const TLB_INVALID: u64 = 1 << 11;
/// Tag bit: the page is MMIO; every access goes to the slow path and from there to the bus.
pub const TLB_MMIO: u64 = 1 << 10;
/// Tag bit (write tags): the page holds translated code; writes go to the slow path, which
/// invalidates the blocks translated from it.
pub const TLB_WATCH: u64 = 1 << 9;

/// One softmmu TLB entry: 32 bytes, so the fast path indexes with a shift.
///
/// A tag is the guest virtual page address, or that with flag bits in the low 12 bits to force
/// the slow path. The fast path computes `(addr + size - 1) & PAGE_MASK` (`addr &
/// (PAGE_MASK | size - 1)` for aligned accesses), so an access that crosses a page, a
/// misaligned one that must fault, or any flagged page fails the compare.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlbEntry {
    /// Tag for loads.
    pub addr_read: u64,
    /// Tag for stores.
    pub addr_write: u64,
    /// Tag for instruction fetch (used by the engine, not by generated code).
    pub addr_code: u64,
    /// `host address - guest virtual address` for the page.
    pub addend: u64,
}

impl TlbEntry {
    /// An entry that matches nothing.
    pub const INVALID: TlbEntry = TlbEntry {
        addr_read: u64::MAX,
        addr_write: u64::MAX,
        addr_code: u64::MAX,
        addend: 0,
    };
}

/// log2 of `size_of::<TlbEntry>()`.
pub const TLB_ENTRY_BITS: u32 = 5;

/// Where the fast path finds one MMU mode's TLB.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TlbFast {
    /// `(entries - 1) << TLB_ENTRY_BITS`: ANDed with `addr >> (PAGE_BITS - TLB_ENTRY_BITS)`
    /// it gives the byte offset of the entry.
    pub mask: u64,
    /// The entry table (a power-of-two number of entries).
    pub table: *mut TlbEntry,
}

/// The slow path of a guest load, called by generated code on a TLB miss or flagged page:
/// `(env, addr, 0, info) -> value`, with `info` from [`slow_path_info`]. The value comes back
/// extended as the load's `MemOp` says. On a fault it sets `unwind` and returns anything.
pub type LoadSlowFn = unsafe extern "C" fn(env: u64, addr: u64, val: u64, info: u64) -> u64;
/// The slow path of a guest store: `(env, addr, value, info)`. Same fault convention.
pub type StoreSlowFn = unsafe extern "C" fn(env: u64, addr: u64, val: u64, info: u64) -> u64;
/// Finds the host code of the block at the current guest pc for `LookupAndGoto`:
/// `(env) -> host code address`, or the address of the engine's "return to the loop" code.
pub type LookupFn = unsafe extern "C" fn(env: u64) -> u64;

/// Packs the fourth slow-path argument: `MemOp` bits in bits 0-7, the MMU mode in bits 8-15,
/// the instruction index in bits 16-31 and the block id in bits 32-63 (the slow path needs the
/// block to tell whether a store modifies the code that is running).
pub const fn slow_path_info(mop: crate::MemOp, mmu_idx: u8, insn_index: u16, block_id: u32) -> u64 {
    mop.bits() as u64 | (mmu_idx as u64) << 8 | (insn_index as u64) << 16 | (block_id as u64) << 32
}

/// The fields of [`slow_path_info`]: `(mop, mmu_idx, insn_index, block_id)`.
pub const fn decode_slow_path_info(info: u64) -> (crate::MemOp, u8, u16, u32) {
    (
        crate::MemOp::from_bits(info as u32 & 0xff),
        (info >> 8) as u8,
        (info >> 16) as u16,
        (info >> 32) as u32,
    )
}

/// The most `InsnStart`s a block may have (instruction indexes are 16 bits in the slow-path ABI).
pub const MAX_INSNS: usize = 1 << 16;

/// The start of every CPU state.
#[repr(C)]
pub struct EnvHeader {
    /// Nonzero: leave at the next block entry with [`ExitKind::ExitRequested`]. Set by other
    /// threads (interrupt controllers, the machine's stop path) and by helpers.
    pub exit_request: AtomicU32,
    /// Nonzero: a helper or slow path raised; leave through [`ExitKind::Unwind`].
    pub unwind: u32,
    /// Index of the `InsnStart` of the instruction that was running when something raised.
    pub insn_index: u32,
    /// Padding; keeps the pointers below 8-byte aligned.
    pub reserved: u32,
    /// Slow path of guest loads.
    pub load_slow: LoadSlowFn,
    /// Slow path of guest stores.
    pub store_slow: StoreSlowFn,
    /// Block lookup for `LookupAndGoto`.
    pub lookup: LookupFn,
    /// The fast-path view of each MMU mode's TLB.
    pub tlb: [TlbFast; MMU_MODES],
    /// The engine's per-vCPU context, for slow paths and helpers that need more than the
    /// CPU state (memory, devices, the block cache). Generated code never reads it.
    pub opaque: *mut std::ffi::c_void,
    /// What the inline jump-cache probe of `LookupAndGoto` reads besides the pc. Behind a
    /// pointer so the header stays small: globals close to its end get short encodings.
    pub jump_probe: *const JumpProbe,
}

/// The inline jump-cache probe's view of a vCPU (see the module doc, "Indirect jumps").
#[derive(Debug)]
#[repr(C)]
pub struct JumpProbe {
    /// The vCPU's jump cache: [`JUMP_CACHE_ENTRIES`] slots.
    pub slots: *const JumpCacheSlot,
    /// The block cache's invalidation epoch; a slot is usable only if stamped with it.
    pub epoch: *const AtomicU64,
    /// The block-key flags of the running block.
    pub block_flags: u64,
}

// SAFETY: the pointers are to the vCPU's own jump cache and to its engine's epoch, both
// outliving the probe; the probe moves between threads only with its vCPU.
unsafe impl Send for JumpProbe {}
// SAFETY: a shared `&JumpProbe` only reads the pointer values, never what they point to.
unsafe impl Sync for JumpProbe {}

/// Slots in a vCPU's jump cache.
pub const JUMP_CACHE_ENTRIES: usize = 32768;
/// Slots per page group of the jump cache (a one-page flush clears one group).
pub const JUMP_CACHE_GROUP: usize = 512;

/// One jump-cache slot, as generated code reads it. A slot with `code == 0` never hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct JumpCacheSlot {
    /// The block's virtual pc.
    pub pc: u64,
    /// `cflags << 32 | flags` of the block.
    pub flags: u64,
    /// Host code address of the block; 0 when it has none (interpreter mode).
    pub code: usize,
    /// The block cache's epoch at which the block was known valid.
    pub epoch: u64,
}

impl JumpCacheSlot {
    /// A slot that matches nothing.
    pub const EMPTY: JumpCacheSlot = JumpCacheSlot {
        pc: 0,
        flags: 0,
        code: 0,
        epoch: u64::MAX,
    };
}

/// A jump cache in which every probe misses (all slots zero: no code), for CPU states whose
/// guest does not say where its pc is. Zero-initialised, so it costs no space in the binary.
pub static NO_JUMP_CACHE: [JumpCacheSlot; JUMP_CACHE_ENTRIES] = [JumpCacheSlot {
    pc: 0,
    flags: 0,
    code: 0,
    epoch: 0,
}; JUMP_CACHE_ENTRIES];

/// The first slot of the group of `pc`'s page: the page number hashed to one of the
/// `JUMP_CACHE_ENTRIES / JUMP_CACHE_GROUP` groups (neighbouring pages, as a program's hot
/// code is, land in different groups).
pub const fn jump_cache_group(pc: u64) -> usize {
    let page = pc >> PAGE_BITS;
    (((page ^ (page >> 7) ^ (page >> 14)) as usize) & (JUMP_CACHE_ENTRIES / JUMP_CACHE_GROUP - 1))
        * JUMP_CACHE_GROUP
}

/// The slot of `pc`: its page's group, and within it the low bits of the offset, so that
/// blocks close together (a loop's, an interpreter's handlers) never share a slot; folding
/// higher bits in was tried and made hot neighbours collide. The generated probe computes
/// the same function.
pub const fn jump_cache_index(pc: u64) -> usize {
    jump_cache_group(pc) | (pc as usize & (JUMP_CACHE_GROUP - 1))
}

/// Stands in for the slow paths until an engine installs its own: a CPU state is built before
/// the vCPU that runs it. Never reached by generated code of a set-up vCPU.
unsafe extern "C" fn detached_slow_path(_: u64, _: u64, _: u64, _: u64) -> u64 {
    0
}

/// Stands in for the lookup until an engine installs its own.
unsafe extern "C" fn detached_lookup(_: u64) -> u64 {
    0
}

impl EnvHeader {
    /// A header not attached to any engine yet: no exit request, no TLBs, placeholder slow
    /// paths. The engine fills it in when it adopts the CPU state.
    pub fn detached() -> EnvHeader {
        EnvHeader {
            exit_request: AtomicU32::new(0),
            unwind: 0,
            insn_index: 0,
            reserved: 0,
            load_slow: detached_slow_path,
            store_slow: detached_slow_path,
            lookup: detached_lookup,
            tlb: [TlbFast {
                mask: 0,
                table: std::ptr::null_mut(),
            }; MMU_MODES],
            opaque: std::ptr::null_mut(),
            jump_probe: std::ptr::null(),
        }
    }
}

// SAFETY: the raw pointers in the header (TLB tables, the engine context) point at per-vCPU
// data owned together with the CPU state; a CPU state moves between threads as a whole, and
// the only field other threads touch is the atomic `exit_request`.
unsafe impl Send for EnvHeader {}

/// Byte offsets of [`EnvHeader`] fields, for generated code.
pub mod offsets {
    use super::EnvHeader;
    use std::mem::offset_of;

    /// [`EnvHeader::exit_request`]
    pub const EXIT_REQUEST: u32 = offset_of!(EnvHeader, exit_request) as u32;
    /// [`EnvHeader::unwind`]
    pub const UNWIND: u32 = offset_of!(EnvHeader, unwind) as u32;
    /// [`EnvHeader::insn_index`]
    pub const INSN_INDEX: u32 = offset_of!(EnvHeader, insn_index) as u32;
    /// [`EnvHeader::load_slow`]
    pub const LOAD_SLOW: u32 = offset_of!(EnvHeader, load_slow) as u32;
    /// [`EnvHeader::store_slow`]
    pub const STORE_SLOW: u32 = offset_of!(EnvHeader, store_slow) as u32;
    /// [`EnvHeader::lookup`]
    pub const LOOKUP: u32 = offset_of!(EnvHeader, lookup) as u32;
    /// [`EnvHeader::tlb`]
    pub const TLB: u32 = offset_of!(EnvHeader, tlb) as u32;
    /// [`EnvHeader::opaque`]
    pub const OPAQUE: u32 = offset_of!(EnvHeader, opaque) as u32;
    /// [`EnvHeader::jump_probe`]
    pub const JUMP_PROBE: u32 = offset_of!(EnvHeader, jump_probe) as u32;
    /// [`super::JumpProbe::slots`]
    pub const PROBE_SLOTS: i32 = offset_of!(super::JumpProbe, slots) as i32;
    /// [`super::JumpProbe::epoch`]
    pub const PROBE_EPOCH: i32 = offset_of!(super::JumpProbe, epoch) as i32;
    /// [`super::JumpProbe::block_flags`]
    pub const PROBE_BLOCK_FLAGS: i32 = offset_of!(super::JumpProbe, block_flags) as i32;
    /// [`JumpCacheSlot::pc`]
    pub const SLOT_PC: i32 = offset_of!(super::JumpCacheSlot, pc) as i32;
    /// [`JumpCacheSlot::flags`]
    pub const SLOT_FLAGS: i32 = offset_of!(super::JumpCacheSlot, flags) as i32;
    /// [`JumpCacheSlot::code`]
    pub const SLOT_CODE: i32 = offset_of!(super::JumpCacheSlot, code) as i32;
    /// [`JumpCacheSlot::epoch`]
    pub const SLOT_EPOCH: i32 = offset_of!(super::JumpCacheSlot, epoch) as i32;
    /// Size of one `TlbFast`.
    pub const TLB_FAST_SIZE: u32 = std::mem::size_of::<super::TlbFast>() as u32;
    /// Size of the header: globals start at or after this offset.
    pub const HEADER_SIZE: u32 = std::mem::size_of::<EnvHeader>() as u32;
}

/// Why a block returned to the execution loop: the low 8 bits of its 64-bit exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitKind {
    /// `GotoTb` slot 0 was not linked yet; the pc global holds the target.
    GotoTb0 = 0,
    /// `GotoTb` slot 1 was not linked yet.
    GotoTb1 = 1,
    /// `LookupAndGoto` found no block for the pc global.
    Lookup = 2,
    /// `ExitTb`; the payload is its reason.
    Exit = 3,
    /// A guest exception (or a restart) was raised; see [`EnvHeader::insn_index`].
    Unwind = 4,
    /// The block saw `exit_request` at entry and ran nothing.
    ExitRequested = 5,
}

/// A block's exit code, decoded: which block (the engine's id, given to the backend when it
/// compiled the block), why, and a 24-bit payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode {
    /// The engine's id of the block that returned.
    pub block_id: u32,
    /// Why it returned.
    pub kind: ExitKind,
    /// `ExitTb`'s reason; zero otherwise.
    pub payload: u32,
}

impl ExitCode {
    /// Encodes as `block_id << 32 | payload << 8 | kind`.
    pub const fn encode(self) -> u64 {
        (self.block_id as u64) << 32 | ((self.payload & 0xff_ffff) as u64) << 8 | self.kind as u64
    }

    /// Decodes a code returned by generated code; `None` for an unknown kind.
    pub const fn decode(code: u64) -> Option<ExitCode> {
        let kind = match code as u8 {
            0 => ExitKind::GotoTb0,
            1 => ExitKind::GotoTb1,
            2 => ExitKind::Lookup,
            3 => ExitKind::Exit,
            4 => ExitKind::Unwind,
            5 => ExitKind::ExitRequested,
            _ => return None,
        };
        Some(ExitCode {
            block_id: (code >> 32) as u32,
            kind,
            payload: ((code >> 8) & 0xff_ffff) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_flags_stay_clear_of_page_and_alignment_bits() {
        for flag in [TLB_INVALID, TLB_MMIO, TLB_WATCH] {
            assert_eq!(flag & PAGE_MASK, 0);
            assert_eq!(flag & 7, 0);
        }
    }

    #[test]
    fn header_layout_is_stable_for_generated_code() {
        assert_eq!(offsets::EXIT_REQUEST, 0);
        assert_eq!(offsets::UNWIND, 4);
        assert_eq!(offsets::INSN_INDEX, 8);
        assert_eq!(offsets::LOAD_SLOW, 16);
        assert_eq!(offsets::TLB, 40);
        assert_eq!(offsets::TLB_FAST_SIZE, 16);
        assert_eq!(std::mem::size_of::<TlbEntry>(), 1 << TLB_ENTRY_BITS);
    }

    #[test]
    fn exit_codes_round_trip() {
        let c = ExitCode {
            block_id: 0xdead_beef,
            kind: ExitKind::Exit,
            payload: 0x12_3456,
        };
        assert_eq!(ExitCode::decode(c.encode()), Some(c));
        assert_eq!(ExitCode::decode(0xff), None);
    }

    #[test]
    fn slow_path_info_packs_fields() {
        let mop = crate::MemOp::signed(crate::Size::B16).with_aligned();
        let info = slow_path_info(mop, 3, 77, 0xdead_beef);
        assert_eq!(decode_slow_path_info(info), (mop, 3, 77, 0xdead_beef));
    }
}
