//! Guest-architecture frontends: decode guest code and translate it into `ir`.
//!
//! `riscv64` is the first; the x86_64 frontend (iced-x86 decoding, lazy EFLAGS) comes later.

pub mod riscv64;
