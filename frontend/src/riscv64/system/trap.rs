//! Traps (volume II, "Machine-Level ISA": mcause, medeleg/mideleg, mtvec; and the supervisor
//! equivalents): taking one, returning with mret/sret, wfi, and choosing the interrupt to take.

use super::csr::{
    self, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP, MIP_STIP, MSTATUS_MIE, MSTATUS_MPIE,
    MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP,
    MSTATUS_TSR, MSTATUS_TW,
};
use super::{PRIV_M, PRIV_S, PRIV_U};
use crate::riscv64::Riscv64Cpu;

/// Bit 63 of a cause: an interrupt rather than an exception.
pub const INTERRUPT: u64 = 1 << 63;

/// Exception codes (mcause/scause with bit 63 clear).
pub mod code {
    /// Instruction address misaligned.
    pub const INSTRUCTION_MISALIGNED: u64 = 0;
    /// Instruction access fault.
    pub const INSTRUCTION_ACCESS: u64 = 1;
    /// Illegal instruction.
    pub const ILLEGAL_INSTRUCTION: u64 = 2;
    /// Breakpoint.
    pub const BREAKPOINT: u64 = 3;
    /// Load address misaligned.
    pub const LOAD_MISALIGNED: u64 = 4;
    /// Load access fault.
    pub const LOAD_ACCESS: u64 = 5;
    /// Store/AMO address misaligned.
    pub const STORE_MISALIGNED: u64 = 6;
    /// Store/AMO access fault.
    pub const STORE_ACCESS: u64 = 7;
    /// Environment call from U-mode (from S: 9, from M: 11 = this + privilege).
    pub const ECALL_U: u64 = 8;
    /// Environment call from S-mode.
    pub const ECALL_S: u64 = 9;
    /// Environment call from M-mode.
    pub const ECALL_M: u64 = 11;
    /// Instruction page fault.
    pub const INSTRUCTION_PAGE_FAULT: u64 = 12;
    /// Load page fault.
    pub const LOAD_PAGE_FAULT: u64 = 13;
    /// Store/AMO page fault.
    pub const STORE_PAGE_FAULT: u64 = 15;
}

/// Interrupt codes (cause with bit 63 set; also the bit numbers in mip/mie).
pub mod irq {
    /// Supervisor software interrupt.
    pub const SSI: u64 = 1;
    /// Machine software interrupt.
    pub const MSI: u64 = 3;
    /// Supervisor timer interrupt.
    pub const STI: u64 = 5;
    /// Machine timer interrupt.
    pub const MTI: u64 = 7;
    /// Supervisor external interrupt.
    pub const SEI: u64 = 9;
    /// Machine external interrupt.
    pub const MEI: u64 = 11;
}

/// A synchronous exception: its cause code and the value for xtval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exception {
    /// Instruction address misaligned (tval: the target address).
    #[error("instruction address misaligned at {0:#x}")]
    InstructionMisaligned(u64),
    /// Instruction access fault (tval: the address).
    #[error("instruction access fault at {0:#x}")]
    InstructionAccessFault(u64),
    /// Illegal instruction (tval: the instruction bits, or 0 when not known yet).
    #[error("illegal instruction {0:#x}")]
    IllegalInstruction(u64),
    /// Breakpoint (tval: the pc).
    #[error("breakpoint at {0:#x}")]
    Breakpoint(u64),
    /// Load address misaligned.
    #[error("load address misaligned at {0:#x}")]
    LoadMisaligned(u64),
    /// Load access fault.
    #[error("load access fault at {0:#x}")]
    LoadAccessFault(u64),
    /// Store/AMO address misaligned.
    #[error("store address misaligned at {0:#x}")]
    StoreMisaligned(u64),
    /// Store/AMO access fault.
    #[error("store access fault at {0:#x}")]
    StoreAccessFault(u64),
    /// Environment call from U-mode.
    #[error("ecall from U-mode")]
    EcallU,
    /// Environment call from S-mode.
    #[error("ecall from S-mode")]
    EcallS,
    /// Environment call from M-mode.
    #[error("ecall from M-mode")]
    EcallM,
    /// Instruction page fault.
    #[error("instruction page fault at {0:#x}")]
    InstructionPageFault(u64),
    /// Load page fault.
    #[error("load page fault at {0:#x}")]
    LoadPageFault(u64),
    /// Store/AMO page fault.
    #[error("store page fault at {0:#x}")]
    StorePageFault(u64),
}

impl Exception {
    /// The exception code for xcause.
    pub fn cause(self) -> u64 {
        use Exception::*;
        match self {
            InstructionMisaligned(_) => code::INSTRUCTION_MISALIGNED,
            InstructionAccessFault(_) => code::INSTRUCTION_ACCESS,
            IllegalInstruction(_) => code::ILLEGAL_INSTRUCTION,
            Breakpoint(_) => code::BREAKPOINT,
            LoadMisaligned(_) => code::LOAD_MISALIGNED,
            LoadAccessFault(_) => code::LOAD_ACCESS,
            StoreMisaligned(_) => code::STORE_MISALIGNED,
            StoreAccessFault(_) => code::STORE_ACCESS,
            EcallU => code::ECALL_U,
            EcallS => code::ECALL_S,
            EcallM => code::ECALL_M,
            InstructionPageFault(_) => code::INSTRUCTION_PAGE_FAULT,
            LoadPageFault(_) => code::LOAD_PAGE_FAULT,
            StorePageFault(_) => code::STORE_PAGE_FAULT,
        }
    }

    /// The value for xtval.
    pub fn tval(self) -> u64 {
        use Exception::*;
        match self {
            InstructionMisaligned(v)
            | InstructionAccessFault(v)
            | IllegalInstruction(v)
            | Breakpoint(v)
            | LoadMisaligned(v)
            | LoadAccessFault(v)
            | StoreMisaligned(v)
            | StoreAccessFault(v)
            | InstructionPageFault(v)
            | LoadPageFault(v)
            | StorePageFault(v) => v,
            EcallU | EcallS | EcallM => 0,
        }
    }

    /// Records the exception in the CPU state's `cause`/`tval` fields, where the engine's
    /// `on_exception` will find it.
    pub fn record(self, cpu: &mut Riscv64Cpu) {
        cpu.cause = self.cause();
        cpu.tval = self.tval();
    }
}

/// Takes a trap at the current pc: `cause` is an exception code, or an interrupt code with
/// bit 63 set; `tval` goes to xtval.
///
/// The trap goes to S when the hart is in U or S and the cause is delegated (medeleg for
/// exceptions, mideleg for interrupts), else to M. The target's xEPC gets the pc, xCAUSE and
/// xTVAL the cause and value, xPIE the old xIE, xIE is cleared, xPP gets the old privilege;
/// the pc becomes xtvec's base, plus 4 × code for interrupts when xtvec is vectored. Any LR
/// reservation is dropped.
pub fn take_trap(cpu: &mut Riscv64Cpu, cause: u64, tval: u64) {
    let interrupt = cause & INTERRUPT != 0;
    let code = cause & !INTERRUPT;
    let deleg = if interrupt {
        cpu.csrs.mideleg
    } else {
        cpu.csrs.medeleg
    };
    let to_s = cpu.priv_level <= PRIV_S && code < 64 && (deleg >> code) & 1 != 0;
    let c = &mut cpu.csrs;
    let tvec = if to_s {
        c.sepc = cpu.pc;
        c.scause = cause;
        c.stval = tval;
        let mut s = c.mstatus & !(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP);
        if c.mstatus & MSTATUS_SIE != 0 {
            s |= MSTATUS_SPIE;
        }
        if cpu.priv_level == PRIV_S {
            s |= MSTATUS_SPP;
        }
        c.mstatus = s;
        cpu.priv_level = PRIV_S;
        c.stvec
    } else {
        c.mepc = cpu.pc;
        c.mcause = cause;
        c.mtval = tval;
        let mut s = c.mstatus & !(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP);
        if c.mstatus & MSTATUS_MIE != 0 {
            s |= MSTATUS_MPIE;
        }
        s |= cpu.priv_level << MSTATUS_MPP_SHIFT;
        c.mstatus = s;
        cpu.priv_level = PRIV_M;
        c.mtvec
    };
    let base = tvec & !3;
    cpu.pc = if interrupt && tvec & 3 == 1 {
        base.wrapping_add(4 * code)
    } else {
        base
    };
    cpu.reservation = u64::MAX;
    log::trace!(
        "trap cause {cause:#x} tval {tval:#x} to {} at {:#x}",
        if to_s { "S" } else { "M" },
        cpu.pc
    );
}

/// `mret`: illegal below M. Restores MIE from MPIE (MPIE becomes 1), the privilege from MPP
/// (MPP becomes U), clears MPRV when the new privilege is below M, and jumps to mepc.
pub fn mret(cpu: &mut Riscv64Cpu) -> Result<(), Exception> {
    if cpu.priv_level < PRIV_M {
        return Err(Exception::IllegalInstruction(0));
    }
    let s = cpu.csrs.mstatus;
    let new_priv = (s & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
    let mut n = s & !(MSTATUS_MIE | MSTATUS_MPP);
    if s & MSTATUS_MPIE != 0 {
        n |= MSTATUS_MIE;
    }
    n |= MSTATUS_MPIE;
    if new_priv != PRIV_M {
        n &= !MSTATUS_MPRV;
    }
    cpu.csrs.mstatus = n;
    cpu.priv_level = new_priv;
    cpu.pc = cpu.csrs.mepc;
    Ok(())
}

/// `sret`: illegal in U, and in S when mstatus.TSR is set. Restores SIE from SPIE (SPIE
/// becomes 1), the privilege from SPP (SPP becomes U), clears MPRV (the new privilege is
/// below M), and jumps to sepc.
pub fn sret(cpu: &mut Riscv64Cpu) -> Result<(), Exception> {
    if cpu.priv_level < PRIV_S || (cpu.priv_level == PRIV_S && cpu.csrs.mstatus & MSTATUS_TSR != 0)
    {
        return Err(Exception::IllegalInstruction(0));
    }
    let s = cpu.csrs.mstatus;
    let new_priv = if s & MSTATUS_SPP != 0 { PRIV_S } else { PRIV_U };
    let mut n = s & !(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV);
    if s & MSTATUS_SPIE != 0 {
        n |= MSTATUS_SIE;
    }
    n |= MSTATUS_SPIE;
    cpu.csrs.mstatus = n;
    cpu.priv_level = new_priv;
    cpu.pc = cpu.csrs.sepc;
    Ok(())
}

/// `wfi`: illegal in U, and in S when mstatus.TW is set. Otherwise the hart may stop until
/// [`wfi_wakeup`] is true (the caller decides; returning at once is also correct).
pub fn wfi(cpu: &mut Riscv64Cpu) -> Result<(), Exception> {
    if cpu.priv_level == PRIV_U || (cpu.priv_level == PRIV_S && cpu.csrs.mstatus & MSTATUS_TW != 0)
    {
        return Err(Exception::IllegalInstruction(0));
    }
    Ok(())
}

/// Whether a hart stopped in wfi must resume: some interrupt is pending and enabled in mie,
/// whatever the global enables and delegation say.
pub fn wfi_wakeup(cpu: &Riscv64Cpu) -> bool {
    csr::mip(cpu) & cpu.csrs.mie != 0
}

/// With Sstc on and its interrupt enabled, the time at which STIP will rise (`stimecmp`), so
/// the machine can wake a waiting hart; `None` when no Sstc timer is armed.
pub fn sstc_deadline(cpu: &Riscv64Cpu) -> Option<u64> {
    let c = &cpu.csrs;
    (c.menvcfg & csr::MENVCFG_STCE != 0 && c.mie & MIP_STIP != 0 && c.stimecmp != u64::MAX)
        .then_some(c.stimecmp)
}

/// Interrupts in order of priority (volume II: MEI, MSI, MTI, SEI, SSI, STI).
const PRIORITY: [(u64, u64); 6] = [
    (MIP_MEIP, irq::MEI),
    (MIP_MSIP, irq::MSI),
    (MIP_MTIP, irq::MTI),
    (MIP_SEIP, irq::SEI),
    (MIP_SSIP, irq::SSI),
    (MIP_STIP, irq::STI),
];

/// The interrupt to take now, as a cause with bit 63 set, or `None`.
///
/// An interrupt is pending and enabled when its bit is set in both mip and mie. One not
/// delegated (to M) is taken when the hart is below M, or in M with mstatus.MIE; one
/// delegated (to S) when the hart is in U, or in S with mstatus.SIE, never in M. Interrupts to
/// M come before interrupts to S; within each, MEI > MSI > MTI > SEI > SSI > STI.
pub fn pending_interrupt(cpu: &Riscv64Cpu) -> Option<u64> {
    let c = &cpu.csrs;
    let pending = csr::mip(cpu) & c.mie;
    if pending == 0 {
        return None;
    }
    let p = cpu.priv_level;
    let m_enabled = p < PRIV_M || c.mstatus & MSTATUS_MIE != 0;
    let s_enabled = p < PRIV_S || (p == PRIV_S && c.mstatus & MSTATUS_SIE != 0);
    let mut takeable = 0;
    if m_enabled {
        takeable |= pending & !c.mideleg;
    }
    let to_m = takeable;
    if s_enabled {
        takeable |= pending & c.mideleg;
    }
    [to_m, takeable].into_iter().find_map(|set| {
        PRIORITY
            .iter()
            .find(|(bit, _)| set & bit != 0)
            .map(|&(_, code)| INTERRUPT | code)
    })
}
