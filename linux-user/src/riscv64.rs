//! The riscv64 half of the user-mode guest ([`crate::guest::UserGuest`]): the frontend's
//! translator, and which exits and faults become which signals.

use std::sync::Arc;

use accel_tcg::{Action, CodeReader, MemFault};
use frontend::riscv64::translate as rv;
use frontend::riscv64::{cpu, Riscv64Cpu};
use ir::{Builder, GlobalDef};

use crate::guest::{decode_cause, encode_cause, UserArch, UserGuest, RET_FAULT};
use crate::signal::{si, sig, SigInfo};

pub use crate::guest::RET_SYSCALL as RET_ECALL;

/// The signal recorded in the CPU state by a fault or an exit.
pub fn recorded_signal(cpu: &Riscv64Cpu) -> SigInfo {
    decode_cause(cpu.cause, cpu.tval)
}

/// The riscv64 half of the user-mode guest.
pub struct Riscv64;

/// The riscv64 Linux user-mode guest.
pub type RiscvUser = UserGuest<Riscv64>;

impl UserArch for Riscv64 {
    type Cpu = Riscv64Cpu;
    const PC_OFFSET: u32 = cpu::PC_OFFSET;

    fn globals() -> Arc<[GlobalDef]> {
        cpu::globals()
    }

    fn pc(cpu: &Riscv64Cpu) -> u64 {
        cpu.pc
    }

    fn translate(
        pc: u64,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        rv::translate(pc, code, b, max_insns, 0)
    }

    fn restore_state(cpu: &mut Riscv64Cpu, pc: u64, extra: u64) {
        rv::restore_state(cpu, pc, extra);
    }

    fn raise(cpu: &mut Riscv64Cpu, fault: MemFault, vaddr: u64) {
        let (signo, code) = match fault {
            MemFault::Page(c) if c == si::SEGV_ACCERR as u64 => (sig::SIGSEGV, si::SEGV_ACCERR),
            MemFault::Page(_) => (sig::SIGSEGV, si::SEGV_MAPERR),
            MemFault::Misaligned => (sig::SIGBUS, si::BUS_ADRALN),
            MemFault::Bus => (sig::SIGBUS, si::BUS_ADRERR),
        };
        cpu.cause = encode_cause(signo, code);
        cpu.tval = vaddr;
    }

    fn on_exit(cpu: &mut Riscv64Cpu, reason: u32) -> Action {
        match reason {
            rv::EXIT_ECALL => Action::Return(RET_ECALL),
            rv::EXIT_EBREAK => {
                cpu.cause = encode_cause(sig::SIGTRAP, si::TRAP_BRKPT);
                cpu.tval = cpu.pc;
                Action::Return(RET_FAULT)
            }
            other => {
                if other != rv::EXIT_ILLEGAL {
                    log::warn!("unknown exit reason {other} at pc {:#x}: SIGILL", cpu.pc);
                }
                cpu.cause = encode_cause(sig::SIGILL, si::ILL_ILLOPC);
                cpu.tval = cpu.pc;
                Action::Return(RET_FAULT)
            }
        }
    }

    fn on_exception(_cpu: &mut Riscv64Cpu) -> Action {
        Action::Return(RET_FAULT)
    }

    fn disassemble(pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        frontend::riscv64::disasm::read_and_disassemble(pc, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{AddressSpace, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC, PROT_READ};
    use accel_tcg::{Access, Guest};

    #[test]
    fn page_walks_follow_the_vma_table_with_maperr_and_accerr() {
        let space = Arc::new(AddressSpace::new(1 << 32).unwrap());
        space
            .mmap(
                0x1_0000,
                0x1000,
                PROT_READ | PROT_EXEC,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        let g = RiscvUser::new(space);
        let mut cpu = Riscv64Cpu::new(0);
        let m = g.page_walk(&mut cpu, 0x1_0123, Access::Execute, 0).unwrap();
        assert_eq!(m.phys_page, 0x1_0000);
        assert!(m.prot.read && m.prot.execute && !m.prot.write);
        assert_eq!(
            g.page_walk(&mut cpu, 0x1_0000, Access::Write, 0),
            Err(MemFault::Page(si::SEGV_ACCERR as u64))
        );
        assert_eq!(
            g.page_walk(&mut cpu, 0x2_0000, Access::Read, 0),
            Err(MemFault::Page(si::SEGV_MAPERR as u64))
        );
        assert_eq!(
            g.page_walk(&mut cpu, u64::MAX, Access::Read, 0),
            Err(MemFault::Page(si::SEGV_MAPERR as u64))
        );
    }

    #[test]
    fn faults_are_recorded_as_signals() {
        let g = RiscvUser::new(Arc::new(AddressSpace::new(1 << 32).unwrap()));
        let mut cpu = Riscv64Cpu::new(0x1000);
        g.raise(
            &mut cpu,
            MemFault::Page(si::SEGV_ACCERR as u64),
            0x44,
            Access::Write,
        );
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGSEGV, si::SEGV_ACCERR, 0x44)
        );
        g.raise(&mut cpu, MemFault::Misaligned, 0x43, Access::Write);
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGBUS, si::BUS_ADRALN, 0x43)
        );
        assert_eq!(
            g.on_exit(&mut cpu, rv::EXIT_ILLEGAL),
            Action::Return(RET_FAULT)
        );
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGILL, si::ILL_ILLOPC, 0x1000)
        );
        assert_eq!(
            g.on_exit(&mut cpu, rv::EXIT_EBREAK),
            Action::Return(RET_FAULT)
        );
        assert_eq!(recorded_signal(&cpu).signo, sig::SIGTRAP);
        assert_eq!(
            g.on_exit(&mut cpu, rv::EXIT_ECALL),
            Action::Return(RET_ECALL)
        );
    }
}
