//! tern: machines, loaders and the run loop behind the `tern` command.

pub mod riscv64;
pub mod run_control;
pub mod x86_64;
