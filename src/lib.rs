//! tern: machines, loaders and the run loop behind the `tern` command.

pub mod x86_64;
