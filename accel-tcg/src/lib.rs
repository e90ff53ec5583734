//! The TCG-style execution engine: translation-block cache, chaining, softmmu TLB, vCPU loop.
//!
//! Empty until the JIT core issue lands. The `tern` binary reports `--accel tcg` as not yet
//! available rather than pretending to run anything.
