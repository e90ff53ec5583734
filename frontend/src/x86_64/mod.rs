//! The x86_64 frontend (first slice): the CPU state, lazy EFLAGS, and the translation of the
//! general-purpose integer instructions into `ir` blocks, decoding with iced-x86.

pub mod bulk;
pub mod cpu;
pub mod disasm;
pub mod fault_injection;
pub mod flags;
pub mod flat;
#[cfg(target_arch = "x86_64")]
pub mod sse;
pub mod sys;
pub mod system;
pub mod system_cpuid;
pub mod translate;
#[cfg(target_arch = "x86_64")]
pub mod x87;

pub use cpu::X86Cpu;
pub use flags::{CcKind, CcOp};
