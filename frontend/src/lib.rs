//! Guest-architecture frontends: decode guest code and translate it into `ir`.
//!
//! Empty until the JIT issues land: the riscv64 frontend comes with riscv64 user mode, the
//! x86_64 frontend (iced-x86 decoding, lazy EFLAGS) after it. Nothing here runs guest code yet.
