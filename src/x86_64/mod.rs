//! tern's x86_64 machine: memory map, ACPI description, boot protocols and devices.

pub mod acpi;
pub mod boot;
pub mod irqchip;
pub mod layout;
pub mod machine;
pub mod phys_mem;
pub mod tcg_boot;
pub mod tcg_cpu;
pub mod tcg_guest;
pub mod tcg_machine;
pub mod tcg_sys;

pub use crate::run_control::Outcome;
