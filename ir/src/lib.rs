//! The platform-neutral intermediate representation of translated guest code.
//!
//! A guest frontend turns a run of guest instructions into a [`Block`] with a [`Builder`]; the
//! engine verifies it ([`verify`], in debug builds), optimizes it ([`opt`]) and either compiles
//! it (the x86_64 backend) or runs it with the [`interp`] reference interpreter. The
//! interpreter defines what every op means; the backend is tested against it.
//!
//! The shape follows QEMU's TCG ops (typed temps over a CPU-state struct, `insn_start`
//! markers, `goto_tb`/`exit_tb` terminals) with Cranelift's habits (typed ops, a builder, a
//! verifier that lists its checks).
//!
//! **Floating point is done in helpers, not IR ops.** The two guests disagree on almost every
//! corner of IEEE 754 that matters for bit-exactness: NaN propagation and the default NaN
//! (RISC-V returns the canonical NaN, x86 the first quiet operand), exception flags (fflags
//! vs MXCSR, with x86's denormal flag), rounding-mode sources (per-instruction `rm` vs MXCSR
//! and the x87 control word), conversions that saturate (RISC-V) or return the integer
//! indefinite (x86), and the x87's 80-bit format. FP ops in the IR would either carry all of
//! that as guest-specific flavours or be wrong for one guest. Helpers written per guest, using
//! the host's SSE where its result is exact for that guest, keep the IR small and both guests
//! exact; the cost is a call per FP instruction, which the field's experience (QEMU's TCG does
//! the same) shows is acceptable. FP registers are plain integer bits in the CPU state.

pub mod abi;
mod block;
mod builder;
pub mod fast_hash;
mod helper;
pub mod interp;
mod op;
pub mod opt;
mod print;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
pub mod verify;

pub use block::Block;
pub use builder::Builder;
pub use helper::{Helper, HelperFlags, HelperFn};
pub use op::{deposit, extract, BinOp, ExtFrom, Op, UnOp, MAX_CALL_ARGS};
pub use print::format_op;
pub use types::{Cond, GlobalDef, Label, MemOp, Size, Temp, TempInfo, TempKind, Type};
