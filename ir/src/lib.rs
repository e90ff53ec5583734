//! The platform-neutral intermediate representation of translated guest code.
//!
//! Empty until the JIT core issue lands (typed ops, builder, verifier, optimizer, interpreter).
