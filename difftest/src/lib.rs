//! Differential testing of tern's x86_64 translation against the host CPU.
pub mod emulated;
pub mod gen;
pub mod native;
pub mod seq;
pub mod state;
