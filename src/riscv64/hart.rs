//! The riscv64 hart as the TCG engine sees it: system-mode translation, page walks through
//! the privileged architecture, traps and interrupts, and how a hart waits in `wfi`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use accel_tcg::{Access, Action, CodeReader, Guest, MemFault, PageMapping, PhysMemory};
use devices::riscv::HartInterrupts;
use frontend::riscv64::system::{mmu, trap};
use frontend::riscv64::translate::{
    self, Mode, EXIT_EBREAK, EXIT_ECALL, EXIT_ILLEGAL, EXIT_SYNC, EXIT_WFI,
};
use frontend::riscv64::{cpu, Riscv64Cpu};
use ir::{Builder, GlobalDef, Type};

use crate::run_control::RunControl;

/// `Vcpu::run` result: the run is over.
pub const RET_STOP: u32 = 1;
/// `Vcpu::run` result: the hart waits in `wfi` with nothing to wake it.
pub const RET_IDLE: u32 = 2;
/// `Vcpu::run` result: the hart's time slice is over (several harts share one thread).
pub const RET_SLICE: u32 = 3;

/// The engine's guest: every hart of one machine.
pub struct RiscvHarts {
    pub(crate) memory: Arc<dyn PhysMemory>,
    pub(crate) control: Arc<RunControl>,
    /// Set by the machine's tick when the running hart should let the next one run.
    pub(crate) slice_over: AtomicBool,
    pub(crate) harts: usize,
    /// Per hart: the last synchronous trap and how many times in a row it repeated.
    pub(crate) traps: Vec<std::sync::Mutex<TrapRepeat>>,
}

/// The same exception at the same pc, over and over, with nothing else in between: a hart
/// that can never make progress (a kernel that crashed before setting up its trap vector).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TrapRepeat {
    cause: u64,
    pc: u64,
    tval: u64,
    count: u32,
}

/// Identical consecutive traps after which the run ends as a guest crash.
const TRAP_LOOP_LIMIT: u32 = 100_000;

impl RiscvHarts {
    /// Takes the synchronous exception recorded in the hart, ending the run when the hart has
    /// taken exactly this trap, at this pc, [`TRAP_LOOP_LIMIT`] times in a row.
    fn take_exception(&self, cpu: &mut Riscv64Cpu) -> Action {
        let (cause, pc, tval) = (cpu.cause, cpu.pc, cpu.tval);
        let hart = cpu.csrs.mhartid as usize;
        if let Some(slot) = self.traps.get(hart) {
            let mut t = slot.lock().unwrap_or_else(|p| p.into_inner());
            if (t.cause, t.pc, t.tval) == (cause, pc, tval) {
                t.count += 1;
            } else {
                *t = TrapRepeat {
                    cause,
                    pc,
                    tval,
                    count: 1,
                };
            }
            if t.count >= TRAP_LOOP_LIMIT {
                self.control.finish(crate::run_control::Outcome::GuestCrash(format!(
                    "hart {hart} is stuck: exception {cause} (tval {tval:#x}) at pc {pc:#x}, {TRAP_LOOP_LIMIT} times in a row (privilege {}, mtvec {:#x}, stvec {:#x})",
                    cpu.priv_level, cpu.csrs.mtvec, cpu.csrs.stvec
                )));
                return Action::Return(RET_STOP);
            }
        }
        trap::take_trap(cpu, cause, tval);
        Action::Continue
    }

    fn mode(cpu: &Riscv64Cpu) -> Mode {
        let fs = cpu.csrs.mstatus & frontend::riscv64::system::csr::MSTATUS_FS;
        Mode {
            system: true,
            priv_level: cpu.priv_level as u8,
            data_mmu_idx: mmu::data_mmu_idx(cpu),
            fp_enabled: fs != 0,
        }
    }

    /// Takes the interrupt that is pending and enabled, if any.
    fn take_interrupt(cpu: &mut Riscv64Cpu) {
        if let Some(cause) = trap::pending_interrupt(cpu) {
            trap::take_trap(cpu, cause, 0);
        }
    }
}

impl Guest for RiscvHarts {
    type Cpu = Riscv64Cpu;

    fn globals(&self) -> Arc<[GlobalDef]> {
        cpu::globals()
    }

    fn addr_type(&self) -> Type {
        Type::I64
    }

    fn block_key(&self, cpu: &Riscv64Cpu) -> (u64, u32) {
        (cpu.pc, Self::mode(cpu).flags())
    }

    fn pc_offset(&self) -> Option<u32> {
        Some(frontend::riscv64::cpu::PC_OFFSET)
    }

    fn code_mmu_idx(&self, flags: u32) -> u8 {
        Mode::from_flags(flags).code_mmu_idx()
    }

    fn translate(
        &self,
        pc: u64,
        flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        translate::translate_mode(pc, Mode::from_flags(flags), code, b, max_insns)
    }

    fn restore_state(&self, cpu: &mut Riscv64Cpu, pc: u64, extra: u64) {
        translate::restore_state(cpu, pc, extra)
    }

    fn page_walk(
        &self,
        cpu: &mut Riscv64Cpu,
        vaddr: u64,
        access: Access,
        mmu_idx: u8,
    ) -> Result<PageMapping, MemFault> {
        mmu::translate(cpu, &*self.memory, vaddr, access, mmu_idx)
    }

    fn raise(&self, cpu: &mut Riscv64Cpu, fault: MemFault, vaddr: u64, access: Access) {
        let (cause, tval) = mmu::exception_for(fault, access, vaddr);
        cpu.cause = cause;
        cpu.tval = tval;
    }

    fn on_exit(&self, cpu: &mut Riscv64Cpu, reason: u32) -> Action {
        match reason {
            EXIT_ECALL | EXIT_EBREAK | EXIT_ILLEGAL => {
                if let Action::Return(code) = self.take_exception(cpu) {
                    return Action::Return(code);
                }
            }
            EXIT_WFI => {
                if !trap::wfi_wakeup(cpu) {
                    return Action::Return(RET_IDLE);
                }
            }
            EXIT_SYNC => {}
            other => log::warn!("riscv64 hart: unknown block exit {other}"),
        }
        Self::take_interrupt(cpu);
        Action::Continue
    }

    fn on_exception(&self, cpu: &mut Riscv64Cpu) -> Action {
        self.take_exception(cpu)
    }

    fn on_exit_request(&self, cpu: &mut Riscv64Cpu) -> Action {
        if self.control.stopping() {
            return Action::Return(RET_STOP);
        }
        Self::take_interrupt(cpu);
        if self.harts > 1 && self.slice_over.swap(false, Ordering::AcqRel) {
            return Action::Return(RET_SLICE);
        }
        Action::Continue
    }

    fn disassemble(&self, pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        frontend::riscv64::disasm::read_and_disassemble(pc, code)
    }
}

/// The harts' interrupt wires, driven by the ACLINT and the PLIC: a mip bit per wire, then a
/// kick so a hart running chained blocks notices, and a wake-up for a thread parked in `wfi`.
pub struct HartWires {
    pub(crate) lines: Vec<Arc<AtomicU64>>,
    pub(crate) kicks: OnceLock<Vec<accel_tcg::ExitRequester>>,
    pub(crate) runner: OnceLock<Thread>,
}

impl HartWires {
    /// Wires for `harts` harts.
    pub fn new(harts: usize) -> HartWires {
        HartWires {
            lines: (0..harts).map(|_| Arc::new(AtomicU64::new(0))).collect(),
            kicks: OnceLock::new(),
            runner: OnceLock::new(),
        }
    }

    /// Makes every hart leave generated code at its next block and wakes the runner.
    pub fn kick_all(&self) {
        if let Some(kicks) = self.kicks.get() {
            kicks.iter().for_each(|k| k.request());
        }
        if let Some(t) = self.runner.get() {
            t.unpark();
        }
    }
}

impl HartInterrupts for HartWires {
    fn set_pending(&self, hart: usize, bit: u64, level: bool) {
        let Some(line) = self.lines.get(hart) else {
            return;
        };
        if level {
            line.fetch_or(bit, Ordering::AcqRel);
            if let Some(k) = self.kicks.get().and_then(|k| k.get(hart)) {
                k.request();
            }
            if let Some(t) = self.runner.get() {
                t.unpark();
            }
        } else {
            line.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// The hart's TLB-flush hook (CSR writes, `sfence.vma`).
///
/// # Safety
/// `env` is the CPU state of a hart of a `Vcpu<RiscvHarts>` running a helper.
pub(crate) unsafe fn flush_tlb(env: u64, page: Option<u64>) {
    match page {
        // SAFETY: forwarded from the caller (a helper of a running hart).
        Some(vaddr) => unsafe { accel_tcg::helper_flush_tlb_page::<RiscvHarts>(env, vaddr) },
        // SAFETY: as above.
        None => unsafe { accel_tcg::helper_flush_tlb::<RiscvHarts>(env) },
    }
}
