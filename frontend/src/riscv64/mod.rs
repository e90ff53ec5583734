//! The RISC-V 64 frontend: decoding (RV64GC with Zba/Zbb/Zbs), the CPU state, and the
//! translation of guest code into `ir` blocks.

pub mod compressed;
pub mod cpu;
pub mod decode;
pub mod disasm;
pub mod fpu;
pub mod insn;
pub mod system;
pub mod translate;

pub use cpu::Riscv64Cpu;
pub use insn::{Insn, Opcode};
