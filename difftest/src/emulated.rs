//! The emulated side: the same sequence through tern's x86_64 frontend, under the JIT or the
//! IR interpreter (`accel_tcg::ExecMode`).
//!
//! The guest is flat (virtual = physical) and maps exactly the sandbox the child process maps:
//! the code area read/execute, the data and stack pages read/write; any other access is a
//! page fault (#PF, vector 14), as it is natively. One engine and one vCPU serve every
//! sequence of a run: writing a new sequence invalidates the code area's translations
//! (`Engine::invalidate_phys_range`), which is much cheaper than a new engine per sequence.

use std::sync::Arc;

use accel_tcg::{Engine, EngineConfig, ExecMode, PageProt, RamAndBus, Vcpu};
use frontend::x86_64::flags::CcOp;
use frontend::x86_64::flat::{FlatGuest, RET_EXCEPTION_BASE};
use frontend::x86_64::translate::{EXIT_INT3, EXIT_UD};
use frontend::x86_64::X86Cpu;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::state::{
    code_fits, End, InitState, MachineState, ARITH_FLAGS, CODE_ADDR, CODE_SIZE, COMPARED_FLAGS,
    DATA_ADDR, DF, FS_BASE, GS_BASE, MEM_SIZE, X87,
};

/// Errors of the emulated runner (a guest fault is an [`End::Fault`], never one of these).
#[derive(Debug, thiserror::Error)]
pub enum EmulatedError {
    /// Guest RAM could not be created or accessed.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The engine failed (backend, invalid block).
    #[error("engine: {0}")]
    Engine(#[from] accel_tcg::TcgError),
    /// The run stopped for a reason the sandbox does not expect (`hlt`, `syscall`).
    #[error("the emulated run stopped with exit code {0}")]
    UnexpectedExit(u32),
    /// The code does not fit the code area.
    #[error("{0} bytes of code do not fit the {CODE_SIZE}-byte code area")]
    TooLong(usize),
}

/// The sandbox guest: the code area read/execute, the data and stack pages read/write.
fn sandbox() -> FlatGuest {
    let code = PageProt {
        read: true,
        write: false,
        execute: true,
    };
    let data = PageProt {
        read: true,
        write: true,
        execute: false,
    };
    FlatGuest::new(vec![
        (CODE_ADDR..CODE_ADDR + CODE_SIZE as u64, code),
        (DATA_ADDR..DATA_ADDR + MEM_SIZE as u64, data),
    ])
}

/// One engine (JIT or interpreter) with its vCPU and guest RAM, reused across sequences.
pub struct Emulated {
    ram: GuestMemoryMmap,
    vcpu: Vcpu<FlatGuest>,
}

impl Emulated {
    /// A runner in `mode`. Create it after setting any fault injection: blocks translated
    /// before keep their code.
    pub fn new(mode: ExecMode) -> Result<Emulated, EmulatedError> {
        Emulated::with_block_limit(mode, EngineConfig::default().max_insns)
    }

    /// A runner whose blocks hold at most `max_insns` instructions (small blocks put block
    /// boundaries, where the lazy flags and registers go through the CPU state, everywhere).
    pub fn with_block_limit(mode: ExecMode, max_insns: u32) -> Result<Emulated, EmulatedError> {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(CODE_ADDR), CODE_SIZE),
            (GuestAddress(DATA_ADDR), MEM_SIZE),
        ])
        .map_err(|e| EmulatedError::Memory(e.to_string()))?;
        let engine = Engine::new(
            sandbox(),
            Arc::new(RamAndBus::new(ram.clone(), devices::bus::Bus::new())),
            EngineConfig {
                mode,
                system: false,
                code_size: 32 << 20,
                max_insns,
                ..Default::default()
            },
        )?;
        let vcpu = Vcpu::new(engine, X86Cpu::new(CODE_ADDR));
        Ok(Emulated { ram, vcpu })
    }

    /// Runs `code` (which must end in `int3`) from `init` and returns the end state.
    pub fn run(&mut self, code: &[u8], init: &InitState) -> Result<MachineState, EmulatedError> {
        if !code_fits(init.rip, code.len()) {
            return Err(EmulatedError::TooLong(code.len()));
        }
        let at = (init.rip - CODE_ADDR) as usize;
        let mut area = vec![0xccu8; CODE_SIZE];
        area[at..at + code.len()].copy_from_slice(code);
        let mem_err = |e: vm_memory::GuestMemoryError| EmulatedError::Memory(e.to_string());
        self.ram
            .write_slice(&area, GuestAddress(CODE_ADDR))
            .map_err(mem_err)?;
        self.vcpu
            .engine()
            .invalidate_phys_range(CODE_ADDR, CODE_ADDR + CODE_SIZE as u64);
        let n = init.mem.len().min(MEM_SIZE);
        self.ram
            .write_slice(&init.mem[..n], GuestAddress(DATA_ADDR))
            .map_err(mem_err)?;

        let c = self.vcpu.cpu_mut();
        c.regs = init.regs;
        c.rip = init.rip;
        c.cc_op = CcOp::EFLAGS.encode();
        c.cc_dst = init.rflags & ARITH_FLAGS;
        c.cc_src = init.rflags & ARITH_FLAGS;
        c.cc_src2 = 0;
        c.df = if init.rflags & DF != 0 { u64::MAX } else { 1 };
        // IF set, as for the user-mode child.
        c.eflags = 0x202 | (init.rflags & COMPARED_FLAGS);
        c.xmm = init.xmm;
        c.mxcsr = init.mxcsr as u64;
        c.cause = 0;
        c.error_code = 0;
        (c.fs_base, c.gs_base) = (FS_BASE, GS_BASE);
        // fninit, and the registers' contents zero as on the host side (fxam's C1 is the
        // sign of even an empty register).
        frontend::x86_64::x87::reset(c);
        c.fpr = [[0; 10]; 8];

        let ret = self.vcpu.run()?;
        let end = match ret {
            EXIT_INT3 => End::Trap,
            EXIT_UD => End::Fault(6),
            r if r >= RET_EXCEPTION_BASE => End::Fault((r - RET_EXCEPTION_BASE) as u8),
            r => return Err(EmulatedError::UnexpectedExit(r)),
        };
        let mut mem = vec![0u8; MEM_SIZE];
        self.ram
            .read_slice(&mut mem, GuestAddress(DATA_ADDR))
            .map_err(mem_err)?;
        let c = self.vcpu.cpu();
        let mut image = [0u8; 160];
        frontend::x86_64::x87::write_fxsave(c, &mut image);
        Ok(MachineState {
            regs: c.regs,
            rip: c.rip,
            rflags: c.rflags(),
            xmm: c.xmm,
            mxcsr: c.mxcsr as u32,
            mem,
            x87: X87::from_fxsave(&image),
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_run_a_sequence_and_new_code_replaces_the_old() {
        for mode in [ExecMode::Jit, ExecMode::Interpreter] {
            let mut e = Emulated::new(mode).unwrap();
            let mut i = InitState::blank();
            i.regs[0] = 10;
            // add rax, 5; mov [r15 + 8], rax; int3
            let code = [0x48, 0x83, 0xc0, 0x05, 0x49, 0x89, 0x47, 0x08, 0xcc];
            let s = e.run(&code, &i).unwrap();
            assert_eq!((s.end, s.regs[0], s.mem[8]), (End::Trap, 15, 15));
            assert_eq!(s.rip, CODE_ADDR + code.len() as u64);
            // add rax, 6 at the same address: the old translation must not run.
            let code = [0x48, 0x83, 0xc0, 0x06, 0xcc];
            let s = e.run(&code, &i).unwrap();
            assert_eq!(s.regs[0], 16, "{mode:?}");
        }
    }

    #[test]
    fn faults_outside_the_sandbox_and_division_errors_have_their_vectors() {
        let mut e = Emulated::new(ExecMode::Jit).unwrap();
        let s = e
            .run(&[0x48, 0xf7, 0xf1, 0xcc], &InitState::blank())
            .unwrap();
        assert_eq!((s.end, s.rip), (End::Fault(0), CODE_ADDR));
        let mut i = InitState::blank();
        i.regs[15] = 0x9000_0000;
        let s = e.run(&[0x49, 0x8b, 0x07, 0xcc], &i).unwrap();
        assert_eq!((s.end, s.rip), (End::Fault(14), CODE_ADDR));
        // A store into the code area is refused as natively.
        i.regs[15] = CODE_ADDR;
        let s = e.run(&[0x49, 0x89, 0x07, 0xcc], &i).unwrap();
        assert_eq!(s.end, End::Fault(14));
    }
}
