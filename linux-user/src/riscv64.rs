//! The riscv64 user-mode guest: the frontend's translator over the process's address space,
//! with page walks answered by the VMA table and every event that needs the kernel (system
//! calls, faults, host signals) handed back to the driver in `lib.rs`.

use std::sync::Arc;

use accel_tcg::{Access, Action, CodeReader, Guest, MemFault, PageMapping};
use frontend::riscv64::translate as rv;
use frontend::riscv64::{cpu, Riscv64Cpu};
use ir::{Builder, GlobalDef, Type};

use crate::guest::{decode_cause, encode_cause, RET_FAULT};
use crate::signal::{si, sig, SigInfo};
use crate::space::AddressSpace;

pub use crate::guest::RET_SYSCALL as RET_ECALL;

/// The signal recorded in the CPU state by [`RiscvUser::raise`] or an exit.
pub fn recorded_signal(cpu: &Riscv64Cpu) -> SigInfo {
    decode_cause(cpu.cause, cpu.tval)
}

/// The riscv64 Linux user-mode guest.
pub struct RiscvUser {
    space: Arc<AddressSpace>,
    globals: Arc<[GlobalDef]>,
}

impl RiscvUser {
    /// A guest whose memory is `space`.
    pub fn new(space: Arc<AddressSpace>) -> RiscvUser {
        RiscvUser {
            space,
            globals: cpu::globals(),
        }
    }
}

impl Guest for RiscvUser {
    type Cpu = Riscv64Cpu;

    fn globals(&self) -> Arc<[GlobalDef]> {
        self.globals.clone()
    }

    fn addr_type(&self) -> Type {
        Type::I64
    }

    fn block_key(&self, cpu: &Riscv64Cpu) -> (u64, u32) {
        (cpu.pc, 0)
    }

    fn pc_offset(&self) -> Option<u32> {
        Some(frontend::riscv64::cpu::PC_OFFSET)
    }

    fn code_mmu_idx(&self, _flags: u32) -> u8 {
        0
    }

    fn translate(
        &self,
        pc: u64,
        _flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        rv::translate(pc, code, b, max_insns, 0)
    }

    fn restore_state(&self, cpu: &mut Riscv64Cpu, pc: u64, extra: u64) {
        rv::restore_state(cpu, pc, extra);
    }

    fn page_walk(
        &self,
        _cpu: &mut Riscv64Cpu,
        vaddr: u64,
        access: Access,
        _mmu_idx: u8,
    ) -> Result<PageMapping, MemFault> {
        self.space.walk(vaddr, access)
    }

    fn raise(&self, cpu: &mut Riscv64Cpu, fault: MemFault, vaddr: u64, _access: Access) {
        let (signo, code) = match fault {
            MemFault::Page(c) if c == si::SEGV_ACCERR as u64 => (sig::SIGSEGV, si::SEGV_ACCERR),
            MemFault::Page(_) => (sig::SIGSEGV, si::SEGV_MAPERR),
            MemFault::Misaligned => (sig::SIGBUS, si::BUS_ADRALN),
            MemFault::Bus => (sig::SIGBUS, si::BUS_ADRERR),
        };
        cpu.cause = encode_cause(signo, code);
        cpu.tval = vaddr;
    }

    fn on_exit(&self, cpu: &mut Riscv64Cpu, reason: u32) -> Action {
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

    fn on_exception(&self, _cpu: &mut Riscv64Cpu) -> Action {
        Action::Return(RET_FAULT)
    }

    fn on_exit_request(&self, _cpu: &mut Riscv64Cpu) -> Action {
        crate::guest::on_exit_request()
    }

    fn disassemble(&self, pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        frontend::riscv64::disasm::read_and_disassemble(pc, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC, PROT_READ};

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
