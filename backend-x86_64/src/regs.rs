//! Host register numbers and the fixed register conventions of generated code.
//!
//! - `r14` holds the CPU-state pointer (`env`) plus [`ENV_BIAS`] in every block; chained
//!   blocks inherit it.
//! - `rsp` points at the frame the entry trampoline sets up: [`SPILL_SLOTS`] spill slots at
//!   `[rsp + 8*i]`, then [`SAVE_SLOTS`] slots where slow paths save caller-saved registers.
//!   It is 16-byte aligned inside blocks, so calls need no adjustment.
//! - `r11` is a scratch register the allocator never hands out (immediates, swaps).
//! - Every other register (13 of them) is allocatable.

/// A host general-purpose register number (the x86 encoding, 0..16).
pub type Reg = u8;

pub const RAX: Reg = 0;
pub const RCX: Reg = 1;
pub const RDX: Reg = 2;
pub const RBX: Reg = 3;
pub const RSP: Reg = 4;
pub const RBP: Reg = 5;
pub const RSI: Reg = 6;
pub const RDI: Reg = 7;
pub const R8: Reg = 8;
pub const R9: Reg = 9;
pub const R10: Reg = 10;
pub const R11: Reg = 11;
pub const R12: Reg = 12;
pub const R13: Reg = 13;
pub const R14: Reg = 14;
pub const R15: Reg = 15;

/// The CPU-state pointer, biased by [`ENV_BIAS`].
pub const ENV: Reg = R14;
/// `ENV` holds `state + ENV_BIAS`: CPU-state offsets `0..256` (the whole `EnvHeader` and the
/// first globals after it) are then reachable with a disp8 (`-128..127`), which saves three
/// bytes on every such access compared with a disp32. Frontends should put their hottest
/// globals first after the header. Code that passes the state pointer on (helper calls, slow
/// paths, lookups) does `lea reg, [ENV - ENV_BIAS]`.
pub const ENV_BIAS: i32 = 128;
/// The reserved scratch register.
pub const TMP: Reg = R11;

/// A set of registers as a bit mask.
pub type RegSet = u16;

/// Allocation order: caller-saved first (cheap to use between calls), callee-saved last; within
/// each group the lowest number first (the allocator works on bit sets).
pub const ALLOC_ORDER: [Reg; 13] = [
    RAX, RCX, RDX, RSI, RDI, R8, R9, R10, RBX, RBP, R12, R13, R15,
];
/// Every allocatable register (the set form of [`ALLOC_ORDER`]).
pub const ALLOCATABLE: RegSet = CALLER_SAVED | CALLEE_SAVED;
/// Registers a call clobbers (SysV), excluding the reserved TMP.
pub const CALLER_SAVED: RegSet =
    1 << RAX | 1 << RCX | 1 << RDX | 1 << RSI | 1 << RDI | 1 << R8 | 1 << R9 | 1 << R10;
/// Callee-saved allocatable registers.
pub const CALLEE_SAVED: RegSet = 1 << RBX | 1 << R12 | 1 << R13 | 1 << R15 | 1 << RBP;
/// SysV integer argument registers.
pub const ARG_REGS: [Reg; 6] = [RDI, RSI, RDX, RCX, R8, R9];

/// Spill slots per frame.
pub const SPILL_SLOTS: usize = 256;
/// Slots for registers saved around slow-path calls.
pub const SAVE_SLOTS: usize = 16;
/// Bytes `enter` subtracts from rsp after pushing the six callee-saved registers: the slots
/// plus 8, so rsp is 16-byte aligned (return address + 6 pushes = 56 bytes).
pub const FRAME_SIZE: i32 = ((SPILL_SLOTS + SAVE_SLOTS) * 8 + 8) as i32;

/// rsp displacement of spill slot `i`.
pub const fn spill_disp(i: u16) -> i32 {
    i as i32 * 8
}

/// rsp displacement of save slot `i`.
pub const fn save_disp(i: usize) -> i32 {
    ((SPILL_SLOTS + i) * 8) as i32
}
