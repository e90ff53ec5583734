//! A flat x86_64 guest: virtual = physical over a few regions with fixed permissions, and
//! every exit and exception handed back to the caller. What tests and `tern difftest` run
//! translated code on (no page tables, no operating system).

use std::ops::Range;
use std::sync::Arc;

use accel_tcg::{Access, Action, CodeReader, Guest, MemFault, PageMapping, PageProt};
use ir::abi::PAGE_MASK;
use ir::{Builder, GlobalDef, Type};

use super::cpu::{self, X86Cpu};
use super::translate;

/// `Vcpu::run` returns `RET_EXCEPTION_BASE + vector` when the code raised an exception
/// (`X86Cpu::cause` = the vector, `error_code` the faulting address for #PF); frontend exits
/// (`translate::EXIT_*`) come back as themselves.
pub const RET_EXCEPTION_BASE: u32 = 100;

/// The guest: the regions it maps (`[start, end)` with their permissions); anything else is
/// a #PF.
pub struct FlatGuest {
    regions: Vec<(Range<u64>, PageProt)>,
    /// The mode every block is translated for ([`translate::Mode::USER`] unless
    /// [`FlatGuest::with_mode`] says otherwise).
    mode: translate::Mode,
}

impl FlatGuest {
    /// A guest mapping `regions`.
    pub fn new(regions: Vec<(Range<u64>, PageProt)>) -> FlatGuest {
        FlatGuest {
            regions,
            mode: translate::Mode::USER,
        }
    }

    /// The same guest translating for `mode` (system-mode tests: privileged instructions
    /// come back as `EXIT_SYSTEM`/`EXIT_EXCEPTION`).
    pub fn with_mode(self, mode: translate::Mode) -> FlatGuest {
        FlatGuest { mode, ..self }
    }

    /// A guest mapping `[0, size)` with every permission.
    pub fn ram(size: u64) -> FlatGuest {
        FlatGuest::new(vec![(0..size, PageProt::ALL)])
    }

    fn prot(&self, vaddr: u64) -> Option<PageProt> {
        self.regions
            .iter()
            .find(|(r, _)| r.contains(&vaddr))
            .map(|&(_, p)| p)
    }
}

impl Guest for FlatGuest {
    type Cpu = X86Cpu;

    fn globals(&self) -> Arc<[GlobalDef]> {
        cpu::globals()
    }

    fn addr_type(&self) -> Type {
        Type::I64
    }

    fn block_key(&self, cpu: &X86Cpu) -> (u64, u32) {
        (cpu.rip, self.mode.flags())
    }

    fn pc_offset(&self) -> Option<u32> {
        Some(cpu::RIP_OFFSET)
    }

    fn code_mmu_idx(&self, flags: u32) -> u8 {
        translate::Mode::from_flags(flags).mmu_idx
    }

    fn translate(
        &self,
        pc: u64,
        flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max: u32,
    ) -> Result<(), MemFault> {
        translate::translate_mode(pc, code, b, max, translate::Mode::from_flags(flags))
    }

    fn restore_state(&self, cpu: &mut X86Cpu, pc: u64, extra: u64) {
        translate::restore_state(cpu, pc, extra)
    }

    fn page_walk(
        &self,
        _: &mut X86Cpu,
        vaddr: u64,
        access: Access,
        _: u8,
    ) -> Result<PageMapping, MemFault> {
        let prot = self.prot(vaddr).ok_or(MemFault::Page(0))?;
        let allowed = match access {
            Access::Read => prot.read,
            Access::Write => prot.write,
            Access::Execute => prot.execute,
        };
        if !allowed {
            return Err(MemFault::Page(0));
        }
        Ok(PageMapping {
            phys_page: vaddr & PAGE_MASK,
            prot,
            global: false,
        })
    }

    fn raise(&self, cpu: &mut X86Cpu, _: MemFault, vaddr: u64, _: Access) {
        cpu.cause = translate::vector::PF;
        cpu.error_code = vaddr;
    }

    fn on_exit(&self, _: &mut X86Cpu, reason: u32) -> Action {
        Action::Return(reason)
    }

    fn on_exception(&self, cpu: &mut X86Cpu) -> Action {
        Action::Return(RET_EXCEPTION_BASE + cpu.cause as u32)
    }

    fn on_exit_request(&self, _: &mut X86Cpu) -> Action {
        Action::Continue
    }

    fn disassemble(&self, pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        super::disasm::disassemble(pc, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_outside_the_regions_or_without_the_permission_fault() {
        let ro = PageProt {
            read: true,
            write: false,
            execute: false,
        };
        let g = FlatGuest::new(vec![(0x1000..0x3000, PageProt::ALL), (0x8000..0x9000, ro)]);
        let mut cpu = X86Cpu::new(0);
        let m = g.page_walk(&mut cpu, 0x2abc, Access::Write, 0).unwrap();
        assert_eq!(m.phys_page, 0x2000);
        assert!(g.page_walk(&mut cpu, 0x3000, Access::Read, 0).is_err());
        assert!(g.page_walk(&mut cpu, 0x8010, Access::Read, 0).is_ok());
        assert!(g.page_walk(&mut cpu, 0x8010, Access::Write, 0).is_err());
        g.raise(&mut cpu, MemFault::Page(0), 0x8010, Access::Write);
        assert_eq!((cpu.cause, cpu.error_code), (14, 0x8010));
        assert_eq!(
            g.on_exception(&mut cpu),
            Action::Return(RET_EXCEPTION_BASE + 14)
        );
    }
}
