//! The RISC-V privileged architecture (ISA manual volume II, machine and supervisor levels) as
//! plain Rust over [`Riscv64Cpu`](super::Riscv64Cpu), for the riscv64 system machine.
//!
//! The pieces:
//! - [`csr`]: the CSR file ([`Csrs`]), its access rules and WARL legalisation, and what a
//!   write means for the engine ([`WriteEffect`]).
//! - [`trap`]: taking traps (with delegation), `mret`/`sret`, `wfi`, and which interrupt is to
//!   be taken now ([`trap::pending_interrupt`]).
//! - [`mmu`]: the MMU-index scheme of the softmmu, the Sv39/Sv48 page walk with hardware A/D
//!   updates, and the mapping from memory faults to exception causes.
//! - [`pmp`]: physical memory protection as OpenSBI programs it.
//! - [`helpers`]: the `ir::Helper`s the translator calls in system mode.
//!
//! What this hart is: RV64IMAFDC with S and U modes, Sv39 and Sv48, Sstc, 64 PMP entries with
//! 4-byte granularity, 16 ASID bits, a 56-bit physical address space, hardware-managed A/D
//! bits (Svadu behaviour without the `menvcfg.ADUE` switch), no Svpbmt, Svnapot, Smepmp, H or
//! V. `FS` is kept at Off or Dirty (any non-Off write reads back as Dirty), so software always
//! saves FP state and the translator never has to update it.

pub mod csr;
pub mod helpers;
pub mod mmu;
pub mod pmp;
pub mod trap;

#[cfg(test)]
mod tests;

pub use csr::{Csrs, WriteEffect};
pub use trap::Exception;

/// User mode.
pub const PRIV_U: u64 = 0;
/// Supervisor mode.
pub const PRIV_S: u64 = 1;
/// Machine mode.
pub const PRIV_M: u64 = 3;

/// Puts `cpu` in the state the privileged spec gives a hart at reset, for a system machine:
/// M-mode, every CSR at its reset value with `mhartid = hartid` (MIE and MPRV clear, satp
/// Bare, no PMP entry active), no LR reservation, the pc at `pc`. Integer and FP registers,
/// `irq_lines`, `time_source` and `flush_tlb` are left alone.
pub fn reset(cpu: &mut super::Riscv64Cpu, hartid: u64, pc: u64) {
    cpu.priv_level = PRIV_M;
    cpu.csrs = Csrs::new(hartid);
    cpu.reservation = u64::MAX;
    cpu.superpages = mmu::SuperpageSpan::EMPTY;
    cpu.pc = pc;
}

/// Whether FP instructions and the FP CSRs are usable now (mstatus.FS is not Off). In system
/// mode the translator must make FP instructions illegal otherwise (so this belongs in the
/// block key); a user-mode hart never looks.
pub fn fp_enabled(cpu: &super::Riscv64Cpu) -> bool {
    cpu.csrs.mstatus & csr::MSTATUS_FS != 0
}
