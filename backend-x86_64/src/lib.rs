//! Compiles `ir` translation blocks to x86_64 host code.
//!
//! Empty until the JIT core issue lands (register allocation, softmmu fast path, chaining).
