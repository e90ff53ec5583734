//! The x86_64 machine's CPU as an `accel_tcg::Guest`: blocks keyed and translated by the
//! system-mode [`Mode`] of the moment, the softmmu filled by the guest's own page tables, and
//! everything that needs the machine (a system instruction, an exception or interrupt to
//! deliver, `hlt`) handed back to the machine's vCPU loop as a return code.

use std::sync::Arc;

use accel_tcg::{Access, Action, CodeReader, Guest, MemFault, PageMapping};
use frontend::x86_64::translate::{self, Mode, EXIT_HLT, EXIT_SYSTEM};
use frontend::x86_64::{cpu, X86Cpu};
use ir::{Builder, GlobalDef, Type};
use vm_memory::GuestMemoryMmap;

use super::tcg_cpu;

/// `Vcpu::run` return code: `hlt` (rip is the next instruction).
pub const RET_HLT: u32 = 1;
/// `Vcpu::run` return code: a system instruction waits for the machine (`X86Cpu::sys_insn`,
/// rip at the instruction).
pub const RET_SYSTEM: u32 = 2;
/// `Vcpu::run` return code: an exception to deliver (`cause`, `error_code`; rip at the
/// faulting instruction).
pub const RET_EXCEPTION: u32 = 3;
/// `Vcpu::run` return code: another thread asked the vCPU to stop (an interrupt to look at,
/// or the end of the run).
pub const RET_INTERRUPT: u32 = 4;

/// The guest of one x86_64 machine under the JIT.
pub struct X86SystemGuest {
    ram: GuestMemoryMmap,
    globals: Arc<[GlobalDef]>,
}

impl X86SystemGuest {
    /// The guest over the machine's RAM (page tables are read and updated there).
    pub fn new(ram: GuestMemoryMmap) -> X86SystemGuest {
        X86SystemGuest {
            ram,
            globals: cpu::globals(),
        }
    }
}

impl Guest for X86SystemGuest {
    type Cpu = X86Cpu;

    fn globals(&self) -> Arc<[GlobalDef]> {
        self.globals.clone()
    }

    fn addr_type(&self) -> Type {
        Type::I64
    }

    fn block_key(&self, cpu: &X86Cpu) -> (u64, u32) {
        (cpu.rip, tcg_cpu::mode(cpu).flags())
    }

    fn pc_offset(&self) -> Option<u32> {
        Some(cpu::RIP_OFFSET)
    }

    fn code_mmu_idx(&self, flags: u32) -> u8 {
        // Instruction fetches are checked with the CPL's own rights (SMAP is about data).
        if Mode::from_flags(flags).cpl == 3 {
            tcg_cpu::MMU_USER
        } else {
            tcg_cpu::MMU_SUPERVISOR
        }
    }

    fn translate(
        &self,
        pc: u64,
        flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        translate::translate_mode(pc, code, b, max_insns, Mode::from_flags(flags))
    }

    fn restore_state(&self, cpu: &mut X86Cpu, pc: u64, extra: u64) {
        translate::restore_state(cpu, pc, extra);
    }

    fn page_walk(
        &self,
        cpu: &mut X86Cpu,
        vaddr: u64,
        access: Access,
        mmu_idx: u8,
    ) -> Result<PageMapping, MemFault> {
        tcg_cpu::page_walk(&self.ram, &cpu.sys, vaddr, access, mmu_idx)
    }

    fn raise(&self, cpu: &mut X86Cpu, fault: MemFault, vaddr: u64, _access: Access) {
        tcg_cpu::raise(cpu, fault, vaddr);
    }

    fn on_exit(&self, _cpu: &mut X86Cpu, reason: u32) -> Action {
        Action::Return(match reason {
            EXIT_HLT => RET_HLT,
            EXIT_SYSTEM => RET_SYSTEM,
            // EXIT_EXCEPTION and #UD (EXIT_UD): `cause` says which exception.
            _ => RET_EXCEPTION,
        })
    }

    fn on_exception(&self, _cpu: &mut X86Cpu) -> Action {
        Action::Return(RET_EXCEPTION)
    }

    fn on_exit_request(&self, _cpu: &mut X86Cpu) -> Action {
        Action::Return(RET_INTERRUPT)
    }

    fn disassemble(&self, pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        frontend::x86_64::disasm::disassemble(pc, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accel_tcg::{Engine, EngineConfig, ExecMode, RamAndBus, Vcpu};
    use frontend::x86_64::cpu::RAX;
    use frontend::x86_64::sys::mmu::{PTE_P, PTE_PS, PTE_RW};
    use frontend::x86_64::sys::seg::ATTR_L;
    use frontend::x86_64::sys::Segment;
    use frontend::x86_64::translate::SysOp;
    use vm_memory::{Bytes, GuestAddress};

    const CODE: u64 = 0x10_0000;

    /// 8 MiB of RAM, the first 6 MiB identity-mapped (2 MiB supervisor pages), 6-8 MiB not
    /// present; a CPU in 64-bit mode at CPL 0 about to run `code`.
    fn machine(code: &[u8], mode: ExecMode) -> (GuestMemoryMmap, Vcpu<X86SystemGuest>) {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 8 << 20)]).unwrap();
        let (pml4, pdpt, pd) = (0x1000u64, 0x2000u64, 0x3000u64);
        ram.write_obj(pdpt | PTE_P | PTE_RW, GuestAddress(pml4))
            .unwrap();
        ram.write_obj(pd | PTE_P | PTE_RW, GuestAddress(pdpt))
            .unwrap();
        for i in 0..3u64 {
            ram.write_obj(i << 21 | PTE_P | PTE_RW | PTE_PS, GuestAddress(pd + 8 * i))
                .unwrap();
        }
        ram.write_slice(code, GuestAddress(CODE)).unwrap();
        let mut cpu = X86Cpu::new(CODE);
        let s = &mut cpu.sys;
        s.cr0 = 1 | 1 << 16 | 1 << 31;
        s.cr3 = pml4;
        s.cr4 = 1 << 5;
        s.msrs.efer = 1 << 8 | 1 << 10;
        s.segs[Segment::Cs as usize].attr |= ATTR_L;
        let engine = Engine::new(
            X86SystemGuest::new(ram.clone()),
            Arc::new(RamAndBus::new(ram.clone(), devices::bus::Bus::new())),
            EngineConfig {
                mode,
                system: true,
                ..Default::default()
            },
        )
        .unwrap();
        (ram, Vcpu::new(engine, cpu))
    }

    #[test]
    fn code_runs_through_the_guests_page_tables_until_hlt() {
        for mode in [ExecMode::Jit, ExecMode::Interpreter] {
            // mov rax, [0x200000]; add rax, 1; mov [0x200008], rax; hlt
            let code = [
                0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x48, 0x83, 0xc0, 0x01, 0x48, 0x89,
                0x04, 0x25, 0x08, 0x00, 0x20, 0x00, 0xf4,
            ];
            let (ram, mut vcpu) = machine(&code, mode);
            ram.write_obj(41u64, GuestAddress(0x20_0000)).unwrap();
            assert_eq!(vcpu.run().unwrap(), RET_HLT);
            assert_eq!(ram.read_obj::<u64>(GuestAddress(0x20_0008)).unwrap(), 42);
            assert_eq!(vcpu.cpu().rip, CODE + code.len() as u64);
            // The walk set the accessed and dirty bits of the 2 MiB page written.
            let pde: u64 = ram.read_obj(GuestAddress(0x3000 + 8)).unwrap();
            assert_eq!(pde & (1 << 5 | 1 << 6), 1 << 5 | 1 << 6);
        }
    }

    #[test]
    fn a_load_from_a_missing_page_is_a_page_fault_with_cr2_at_the_instruction() {
        for mode in [ExecMode::Jit, ExecMode::Interpreter] {
            // mov rbx, 7; mov rax, [0x600000]; hlt
            let code = [
                0x48, 0xc7, 0xc3, 0x07, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x60,
                0x00, 0xf4,
            ];
            let (_ram, mut vcpu) = machine(&code, mode);
            assert_eq!(vcpu.run().unwrap(), RET_EXCEPTION);
            let c = vcpu.cpu();
            assert_eq!((c.cause, c.error_code, c.sys.cr2), (14, 0, 0x60_0000));
            assert_eq!(c.rip, CODE + 7, "the faulting instruction");
            assert_eq!(c.regs[3], 7, "what ran before it stays done");
        }
    }

    #[test]
    fn a_system_instruction_comes_back_to_the_machine_decoded() {
        // mov rax, 0x5000; mov cr3, rax
        let code = [0x48, 0xc7, 0xc0, 0x00, 0x50, 0x00, 0x00, 0x0f, 0x22, 0xd8];
        let (_ram, mut vcpu) = machine(&code, ExecMode::Jit);
        assert_eq!(vcpu.run().unwrap(), RET_SYSTEM);
        let c = vcpu.cpu();
        assert_eq!(c.rip, CODE + 7);
        assert_eq!(c.regs[RAX], 0x5000);
        let insn = c.sys_insn().unwrap();
        assert_eq!(
            insn.op,
            SysOp::MovToCr {
                cr: 3,
                gpr: RAX as u8
            }
        );
        assert_eq!(insn.len, 3);
    }
}
