//! Guest-architecture frontends: decode guest code and translate it into `ir`.
//!
//! `riscv64` runs full systems; `x86_64` (iced-x86 decoding, lazy EFLAGS) is a first slice of
//! the integer instruction set.

pub mod riscv64;
pub mod x86_64;
