//! The CSR file of a hart: machine- and supervisor-level CSRs, the FP CSRs and the counters,
//! with the spec's access rules and WARL legalisation.
//!
//! Access rules (Zicsr and volume II, "CSR Listing"): bits 9:8 of the address are the lowest
//! privilege that may access the CSR, bits 11:10 == 3 mark it read-only; violating either, or
//! naming a CSR this hart does not implement, is an illegal-instruction exception. OpenSBI
//! probes optional CSRs (menvcfg, stimecmp, mseccfg, the debug triggers...) by accessing them
//! under a temporary trap handler, so an unimplemented CSR must trap rather than read zero.

use std::sync::atomic::Ordering;

use super::trap::Exception;
use super::{PRIV_M, PRIV_S};
use crate::riscv64::Riscv64Cpu;

// --- CSR addresses.
/// `fflags`: accrued FP exceptions.
pub const FFLAGS: u16 = 0x001;
/// `frm`: dynamic rounding mode.
pub const FRM: u16 = 0x002;
/// `fcsr`: frm and fflags together.
pub const FCSR: u16 = 0x003;
/// `cycle` (user read-only shadow of mcycle).
pub const CYCLE: u16 = 0xc00;
/// `time` (user read-only view of the platform's mtime).
pub const TIME: u16 = 0xc01;
/// `instret` (user read-only shadow of minstret).
pub const INSTRET: u16 = 0xc02;
/// `hpmcounter3`; `hpmcounter4..31` follow.
pub const HPMCOUNTER3: u16 = 0xc03;
/// `hpmcounter31`.
pub const HPMCOUNTER31: u16 = 0xc1f;
/// `sstatus`: the supervisor view of mstatus.
pub const SSTATUS: u16 = 0x100;
/// `sie`: the delegated bits of mie.
pub const SIE: u16 = 0x104;
/// `stvec`: supervisor trap vector.
pub const STVEC: u16 = 0x105;
/// `scounteren`: which counters U-mode may read.
pub const SCOUNTEREN: u16 = 0x106;
/// `senvcfg`: supervisor environment configuration.
pub const SENVCFG: u16 = 0x10a;
/// `sscratch`.
pub const SSCRATCH: u16 = 0x140;
/// `sepc`: supervisor exception pc.
pub const SEPC: u16 = 0x141;
/// `scause`.
pub const SCAUSE: u16 = 0x142;
/// `stval`.
pub const STVAL: u16 = 0x143;
/// `sip`: the delegated bits of mip.
pub const SIP: u16 = 0x144;
/// `stimecmp` (Sstc): supervisor timer compare.
pub const STIMECMP: u16 = 0x14d;
/// `satp`: address translation and protection.
pub const SATP: u16 = 0x180;
/// `mvendorid` (0: not a commercial implementation).
pub const MVENDORID: u16 = 0xf11;
/// `marchid` (0).
pub const MARCHID: u16 = 0xf12;
/// `mimpid` (0).
pub const MIMPID: u16 = 0xf13;
/// `mhartid`.
pub const MHARTID: u16 = 0xf14;
/// `mconfigptr` (0: no configuration structure).
pub const MCONFIGPTR: u16 = 0xf15;
/// `mstatus`.
pub const MSTATUS: u16 = 0x300;
/// `misa`.
pub const MISA: u16 = 0x301;
/// `medeleg`: exceptions delegated to S.
pub const MEDELEG: u16 = 0x302;
/// `mideleg`: interrupts delegated to S.
pub const MIDELEG: u16 = 0x303;
/// `mie`: interrupt enables.
pub const MIE: u16 = 0x304;
/// `mtvec`: machine trap vector.
pub const MTVEC: u16 = 0x305;
/// `mcounteren`: which counters S-mode (and U-mode, with scounteren) may read.
pub const MCOUNTEREN: u16 = 0x306;
/// `menvcfg`: machine environment configuration (STCE enables Sstc).
pub const MENVCFG: u16 = 0x30a;
/// `mcountinhibit`.
pub const MCOUNTINHIBIT: u16 = 0x320;
/// `mhpmevent3`; `mhpmevent4..31` follow.
pub const MHPMEVENT3: u16 = 0x323;
/// `mhpmevent31`.
pub const MHPMEVENT31: u16 = 0x33f;
/// `mscratch`.
pub const MSCRATCH: u16 = 0x340;
/// `mepc`: machine exception pc.
pub const MEPC: u16 = 0x341;
/// `mcause`.
pub const MCAUSE: u16 = 0x342;
/// `mtval`.
pub const MTVAL: u16 = 0x343;
/// `mip`: pending interrupts.
pub const MIP: u16 = 0x344;
/// `pmpcfg0`; only the even ones up to `pmpcfg14` exist on RV64.
pub const PMPCFG0: u16 = 0x3a0;
/// `pmpcfg15` (odd: does not exist on RV64).
pub const PMPCFG15: u16 = 0x3af;
/// `pmpaddr0`.
pub const PMPADDR0: u16 = 0x3b0;
/// `pmpaddr63`.
pub const PMPADDR63: u16 = 0x3ef;
/// `mcycle`.
pub const MCYCLE: u16 = 0xb00;
/// `minstret`.
pub const MINSTRET: u16 = 0xb02;
/// `mhpmcounter3`; `mhpmcounter4..31` follow.
pub const MHPMCOUNTER3: u16 = 0xb03;
/// `mhpmcounter31`.
pub const MHPMCOUNTER31: u16 = 0xb1f;

// --- mstatus / sstatus fields.
/// Supervisor interrupt enable.
pub const MSTATUS_SIE: u64 = 1 << 1;
/// Machine interrupt enable.
pub const MSTATUS_MIE: u64 = 1 << 3;
/// SIE before the last trap into S.
pub const MSTATUS_SPIE: u64 = 1 << 5;
/// MIE before the last trap into M.
pub const MSTATUS_MPIE: u64 = 1 << 7;
/// Privilege before the last trap into S (0 U, 1 S).
pub const MSTATUS_SPP: u64 = 1 << 8;
/// Shift of MPP, the privilege before the last trap into M (2 bits).
pub const MSTATUS_MPP_SHIFT: u32 = 11;
/// The MPP field.
pub const MSTATUS_MPP: u64 = 3 << MSTATUS_MPP_SHIFT;
/// The FS field (FP unit state: 0 Off, 1 Initial, 2 Clean, 3 Dirty).
pub const MSTATUS_FS: u64 = 3 << 13;
/// Modify privilege: M-mode loads and stores translate as MPP.
pub const MSTATUS_MPRV: u64 = 1 << 17;
/// Permit supervisor access to user pages.
pub const MSTATUS_SUM: u64 = 1 << 18;
/// Make executable pages readable.
pub const MSTATUS_MXR: u64 = 1 << 19;
/// Trap virtual memory: satp and sfence.vma are illegal in S-mode.
pub const MSTATUS_TVM: u64 = 1 << 20;
/// Timeout wait: wfi is illegal in S-mode.
pub const MSTATUS_TW: u64 = 1 << 21;
/// Trap sret: sret is illegal in S-mode.
pub const MSTATUS_TSR: u64 = 1 << 22;
/// UXL (U-mode XLEN, read-only 2 = 64 bits).
pub const MSTATUS_UXL: u64 = 3 << 32;
/// SXL (S-mode XLEN, read-only 2 = 64 bits).
pub const MSTATUS_SXL: u64 = 3 << 34;
/// State dirty summary: FS (or XS/VS) is Dirty.
pub const MSTATUS_SD: u64 = 1 << 63;
/// UXL = SXL = 64 bits: the read-only part of mstatus.
const MSTATUS_XLEN64: u64 = (2 << 32) | (2 << 34);
/// What M-mode can write in mstatus.
const MSTATUS_WRITABLE: u64 = MSTATUS_SIE
    | MSTATUS_MIE
    | MSTATUS_SPIE
    | MSTATUS_MPIE
    | MSTATUS_SPP
    | MSTATUS_MPP
    | MSTATUS_FS
    | MSTATUS_MPRV
    | MSTATUS_SUM
    | MSTATUS_MXR
    | MSTATUS_TVM
    | MSTATUS_TW
    | MSTATUS_TSR;
/// The bits of mstatus that sstatus shows (UBE, VS and XS exist but are zero here).
pub const SSTATUS_MASK: u64 = MSTATUS_SIE
    | MSTATUS_SPIE
    | MSTATUS_SPP
    | MSTATUS_FS
    | MSTATUS_SUM
    | MSTATUS_MXR
    | MSTATUS_UXL
    | MSTATUS_SD;
/// What S-mode can write through sstatus.
const SSTATUS_WRITABLE: u64 =
    MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR;

// --- mip / mie bits (interrupt code n is bit n).
/// Supervisor software interrupt.
pub const MIP_SSIP: u64 = 1 << 1;
/// Machine software interrupt (ACLINT MSWI).
pub const MIP_MSIP: u64 = 1 << 3;
/// Supervisor timer interrupt (software from M, or Sstc's stimecmp).
pub const MIP_STIP: u64 = 1 << 5;
/// Machine timer interrupt (ACLINT MTIMER).
pub const MIP_MTIP: u64 = 1 << 7;
/// Supervisor external interrupt (PLIC S context, or software from M).
pub const MIP_SEIP: u64 = 1 << 9;
/// Machine external interrupt (PLIC M context).
pub const MIP_MEIP: u64 = 1 << 11;
/// The bits devices drive through [`Riscv64Cpu::irq_lines`].
pub const MIP_DEVICE_BITS: u64 = MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_MEIP;
/// The interrupts that exist on this hart (also the writable bits of mie).
pub const MIP_ALL: u64 = MIP_SSIP | MIP_MSIP | MIP_STIP | MIP_MTIP | MIP_SEIP | MIP_MEIP;
/// Interrupts that may be delegated to S (the writable bits of mideleg).
pub const MIDELEG_WRITABLE: u64 = MIP_SSIP | MIP_STIP | MIP_SEIP;
/// Exceptions that may be delegated to S: causes 0-9, 12, 13 and 15. Ecall from M (11) can
/// never be delegated; 10 and 14 are reserved.
pub const MEDELEG_WRITABLE: u64 = 0xb3ff;

// --- misa.
/// RV64 (MXL = 2) with A, C, D, F, I, M, S, U.
pub const MISA_VALUE: u64 = (2 << 62)
    | (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 5)
    | (1 << 8)
    | (1 << 12)
    | (1 << 18)
    | (1 << 20);

// --- menvcfg / senvcfg.
/// Fence of I/O implies memory (no effect here: fences are total).
pub const ENVCFG_FIOM: u64 = 1 << 0;
/// Sstc enable: stimecmp is accessible from S and drives STIP.
pub const MENVCFG_STCE: u64 = 1 << 63;

// --- satp.
/// Shift of satp.MODE.
pub const SATP_MODE_SHIFT: u32 = 60;
/// satp.MODE = Bare.
pub const SATP_MODE_BARE: u64 = 0;
/// satp.MODE = Sv39.
pub const SATP_MODE_SV39: u64 = 8;
/// satp.MODE = Sv48.
pub const SATP_MODE_SV48: u64 = 9;
/// satp.ASID (16 bits implemented).
pub const SATP_ASID: u64 = 0xffff << 44;
/// satp.PPN.
pub const SATP_PPN: u64 = (1 << 44) - 1;

// --- PMP.
/// Number of PMP entries.
pub const PMP_ENTRIES: usize = 64;
/// Implemented bits of pmpaddr: physical address bits 55:2.
pub const PMPADDR_MASK: u64 = (1 << 54) - 1;

/// The privileged CSRs of one hart. `mstatus` is always kept legal (SD, UXL and SXL included),
/// so generated code may read it directly at [`crate::riscv64::cpu::MSTATUS_OFFSET`].
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csrs {
    /// mstatus (sstatus is a view of it).
    pub mstatus: u64,
    /// mhartid.
    pub mhartid: u64,
    /// medeleg.
    pub medeleg: u64,
    /// mideleg.
    pub mideleg: u64,
    /// mie (sie is a view of it).
    pub mie: u64,
    /// The software-writable bits of mip (SSIP, STIP, SEIP's software bit); the device lines
    /// live in [`Riscv64Cpu::irq_lines`] and Sstc's STIP is computed on read.
    pub mip: u64,
    /// mtvec.
    pub mtvec: u64,
    /// mscratch.
    pub mscratch: u64,
    /// mepc.
    pub mepc: u64,
    /// mcause.
    pub mcause: u64,
    /// mtval.
    pub mtval: u64,
    /// mcounteren.
    pub mcounteren: u64,
    /// mcountinhibit (stored, no effect).
    pub mcountinhibit: u64,
    /// menvcfg.
    pub menvcfg: u64,
    /// stvec.
    pub stvec: u64,
    /// sscratch.
    pub sscratch: u64,
    /// sepc.
    pub sepc: u64,
    /// scause.
    pub scause: u64,
    /// stval.
    pub stval: u64,
    /// scounteren.
    pub scounteren: u64,
    /// senvcfg.
    pub senvcfg: u64,
    /// satp.
    pub satp: u64,
    /// stimecmp.
    pub stimecmp: u64,
    /// mcycle = time + this (there is no cycle count; writes set the offset).
    pub mcycle_offset: u64,
    /// minstret = time + this.
    pub minstret_offset: u64,
    /// pmp0cfg..pmp63cfg, one byte each (pmpcfg0 holds entries 0-7, pmpcfg2 8-15...).
    pub pmpcfg: [u8; PMP_ENTRIES],
    /// pmpaddr0..63.
    pub pmpaddr: [u64; PMP_ENTRIES],
}

impl Csrs {
    /// The reset state of hart `hartid`: everything zero except the fixed XLEN fields, and
    /// stimecmp at its maximum so Sstc raises no timer interrupt before software sets it.
    pub fn new(hartid: u64) -> Csrs {
        Csrs {
            mstatus: MSTATUS_XLEN64,
            mhartid: hartid,
            medeleg: 0,
            mideleg: 0,
            mie: 0,
            mip: 0,
            mtvec: 0,
            mscratch: 0,
            mepc: 0,
            mcause: 0,
            mtval: 0,
            mcounteren: 0,
            mcountinhibit: 0,
            menvcfg: 0,
            stvec: 0,
            sscratch: 0,
            sepc: 0,
            scause: 0,
            stval: 0,
            scounteren: 0,
            senvcfg: 0,
            satp: 0,
            stimecmp: u64::MAX,
            mcycle_offset: 0,
            minstret_offset: 0,
            pmpcfg: [0; PMP_ENTRIES],
            pmpaddr: [0; PMP_ENTRIES],
        }
    }
}

/// What a CSR write requires of the engine beyond the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEffect {
    /// Nothing.
    None,
    /// End the block: interrupt enables or pending bits, or the mode bits that pick the
    /// translation flags (MPRV, MPP, SUM, FS), may have changed, so pending interrupts and the
    /// next block's key must be looked at again.
    EndBlock,
    /// Flush the whole TLB (satp's mode, MXR, PMP changed), then as for `EndBlock`.
    FlushTlb,
    /// Flush the TLB's non-global mappings (satp's root or ASID changed in the same mode:
    /// global mappings are the same in every address space), then as for `EndBlock`.
    FlushTlbNonGlobal,
}

/// How csrrw/csrrs/csrrc combine the old value with the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrOp {
    /// csrrw: the operand replaces the value.
    Write,
    /// csrrs: set the operand's bits.
    Set,
    /// csrrc: clear the operand's bits.
    Clear,
}

impl CsrOp {
    /// The op for the helpers' `op` argument (0 = rw, 1 = set, 2 = clear).
    pub fn from_bits(op: u64) -> Option<CsrOp> {
        match op {
            0 => Some(CsrOp::Write),
            1 => Some(CsrOp::Set),
            2 => Some(CsrOp::Clear),
            _ => None,
        }
    }

    fn apply(self, old: u64, operand: u64) -> u64 {
        match self {
            CsrOp::Write => operand,
            CsrOp::Set => old | operand,
            CsrOp::Clear => old & !operand,
        }
    }
}

/// An illegal-instruction exception with `tval` left for the caller (which knows the
/// instruction bits).
const ILLEGAL: Exception = Exception::IllegalInstruction(0);

/// Whether a write to `csr` can change anything that requires the translator to end the
/// block after the instruction (see [`WriteEffect`]): decidable at translation time.
pub fn write_ends_block(csr: u16) -> bool {
    matches!(
        csr,
        SSTATUS
            | SIE
            | SIP
            | STIMECMP
            | SATP
            | MSTATUS
            | MIDELEG
            | MIE
            | MIP
            | MENVCFG
            | PMPCFG0..=PMPCFG15
            | PMPADDR0..=PMPADDR63
    )
}

/// The current value of mip: software bits, device lines, and Sstc's timer comparison.
pub fn mip(cpu: &Riscv64Cpu) -> u64 {
    let lines = cpu.irq_lines.load(Ordering::Acquire) & MIP_DEVICE_BITS;
    let mut mip = cpu.csrs.mip | lines;
    if cpu.csrs.menvcfg & MENVCFG_STCE != 0 {
        mip &= !MIP_STIP;
        if time(cpu) >= cpu.csrs.stimecmp {
            mip |= MIP_STIP;
        }
    }
    mip
}

/// The platform time (mtime) in timebase ticks; 0 without a time source.
pub fn time(cpu: &Riscv64Cpu) -> u64 {
    cpu.time_source.as_ref().map_or(0, |f| f())
}

/// Reads `csr` as the hart's current privilege level may.
pub fn read(cpu: &mut Riscv64Cpu, csr: u16) -> Result<u64, Exception> {
    check_access(cpu, csr, false)?;
    read_unchecked(cpu, csr)
}

/// Writes `value` to `csr` as the hart's current privilege level may, legalising WARL fields.
pub fn write(cpu: &mut Riscv64Cpu, csr: u16, value: u64) -> Result<WriteEffect, Exception> {
    check_access(cpu, csr, true)?;
    // Probe readability first: a CSR that cannot be read in this state cannot be written.
    read_unchecked(cpu, csr)?;
    write_unchecked(cpu, csr, value)
}

/// A whole csrrw/csrrs/csrrc: reads the old value, and when `write` (csrrw always; csrrs and
/// csrrc unless the operand register is x0 or the immediate is 0) writes `op(old, operand)`.
/// Returns the old value for rd.
///
/// For mip and sip, the read-modify-write uses SEIP's software-writable bit rather than the
/// OR with the PLIC's line that a plain read shows, as the spec requires.
pub fn read_modify_write(
    cpu: &mut Riscv64Cpu,
    csr: u16,
    op: CsrOp,
    operand: u64,
    write: bool,
) -> Result<(u64, WriteEffect), Exception> {
    check_access(cpu, csr, write)?;
    let old = read_unchecked(cpu, csr)?;
    if !write {
        return Ok((old, WriteEffect::None));
    }
    let base = match csr {
        MIP | SIP => (old & !MIP_SEIP) | (cpu.csrs.mip & MIP_SEIP),
        _ => old,
    };
    let effect = write_unchecked(cpu, csr, op.apply(base, operand))?;
    Ok((old, effect))
}

/// The privilege and read-only rules that the CSR number alone decides.
fn check_access(cpu: &Riscv64Cpu, csr: u16, write: bool) -> Result<(), Exception> {
    let required = ((csr >> 8) & 3) as u64;
    if cpu.priv_level < required {
        return Err(ILLEGAL);
    }
    if write && (csr >> 10) & 3 == 3 {
        return Err(ILLEGAL);
    }
    Ok(())
}

/// FP CSRs need the FP unit on (mstatus.FS != Off).
fn check_fs(cpu: &Riscv64Cpu) -> Result<(), Exception> {
    if cpu.csrs.mstatus & MSTATUS_FS == 0 {
        return Err(ILLEGAL);
    }
    Ok(())
}

/// The counter enable bit `n` (0 cycle, 1 time, 2 instret, 3.. hpm) for the current mode.
fn check_counter(cpu: &Riscv64Cpu, n: u16) -> Result<(), Exception> {
    let bit = 1u64 << n;
    let allowed = match cpu.priv_level {
        PRIV_M => true,
        PRIV_S => cpu.csrs.mcounteren & bit != 0,
        _ => cpu.csrs.mcounteren & cpu.csrs.scounteren & bit != 0,
    };
    if allowed {
        Ok(())
    } else {
        Err(ILLEGAL)
    }
}

/// Sstc: below M, stimecmp needs menvcfg.STCE and mcounteren.TM.
fn check_stimecmp(cpu: &Riscv64Cpu) -> Result<(), Exception> {
    if cpu.priv_level < PRIV_M
        && (cpu.csrs.menvcfg & MENVCFG_STCE == 0 || cpu.csrs.mcounteren & 2 == 0)
    {
        return Err(ILLEGAL);
    }
    Ok(())
}

/// satp in S-mode traps when mstatus.TVM is set.
fn check_tvm(cpu: &Riscv64Cpu) -> Result<(), Exception> {
    if cpu.priv_level == PRIV_S && cpu.csrs.mstatus & MSTATUS_TVM != 0 {
        return Err(ILLEGAL);
    }
    Ok(())
}

/// Value of counter `n` (0 cycle, 2 instret; hpm counters read zero).
fn counter(cpu: &Riscv64Cpu, n: u16) -> u64 {
    match n {
        0 => time(cpu).wrapping_add(cpu.csrs.mcycle_offset),
        1 => time(cpu),
        2 => time(cpu).wrapping_add(cpu.csrs.minstret_offset),
        _ => 0,
    }
}

/// Reads a CSR whose privilege rules have been checked; the remaining (state-dependent)
/// rules and existence are checked here.
fn read_unchecked(cpu: &mut Riscv64Cpu, csr: u16) -> Result<u64, Exception> {
    let c = &cpu.csrs;
    Ok(match csr {
        FFLAGS => {
            check_fs(cpu)?;
            cpu.fflags & 0x1f
        }
        FRM => {
            check_fs(cpu)?;
            cpu.frm & 7
        }
        FCSR => {
            check_fs(cpu)?;
            (cpu.frm & 7) << 5 | (cpu.fflags & 0x1f)
        }
        CYCLE..=HPMCOUNTER31 => {
            check_counter(cpu, csr - CYCLE)?;
            counter(cpu, csr - CYCLE)
        }
        SSTATUS => c.mstatus & SSTATUS_MASK,
        SIE => c.mie & c.mideleg,
        STVEC => c.stvec,
        SCOUNTEREN => c.scounteren,
        SENVCFG => c.senvcfg,
        SSCRATCH => c.sscratch,
        SEPC => c.sepc,
        SCAUSE => c.scause,
        STVAL => c.stval,
        SIP => mip(cpu) & cpu.csrs.mideleg,
        STIMECMP => {
            check_stimecmp(cpu)?;
            c.stimecmp
        }
        SATP => {
            check_tvm(cpu)?;
            c.satp
        }
        MVENDORID | MARCHID | MIMPID | MCONFIGPTR => 0,
        MHARTID => c.mhartid,
        MSTATUS => c.mstatus,
        MISA => MISA_VALUE,
        MEDELEG => c.medeleg,
        MIDELEG => c.mideleg,
        MIE => c.mie,
        MTVEC => c.mtvec,
        MCOUNTEREN => c.mcounteren,
        MENVCFG => c.menvcfg,
        MCOUNTINHIBIT => c.mcountinhibit,
        MHPMEVENT3..=MHPMEVENT31 => 0,
        MSCRATCH => c.mscratch,
        MEPC => c.mepc,
        MCAUSE => c.mcause,
        MTVAL => c.mtval,
        MIP => mip(cpu),
        PMPCFG0..=PMPCFG15 if csr % 2 == 0 => {
            let first = (csr - PMPCFG0) as usize * 4;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&c.pmpcfg[first..first + 8]);
            u64::from_le_bytes(bytes)
        }
        PMPADDR0..=PMPADDR63 => c.pmpaddr[(csr - PMPADDR0) as usize],
        MCYCLE => counter(cpu, 0),
        MINSTRET => counter(cpu, 2),
        MHPMCOUNTER3..=MHPMCOUNTER31 => 0,
        _ => return Err(ILLEGAL),
    })
}

/// Legalises a new mstatus: only `writable` bits change, MPP keeps its old value when written
/// with the reserved 2, FS is Off or Dirty, SD follows FS, UXL/SXL stay 64-bit.
fn legal_mstatus(old: u64, value: u64, writable: u64) -> u64 {
    let mut new = (old & !writable) | (value & writable);
    if (new & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT == 2 {
        new = (new & !MSTATUS_MPP) | (old & MSTATUS_MPP);
    }
    if new & MSTATUS_FS != 0 {
        new |= MSTATUS_FS | MSTATUS_SD;
    } else {
        new &= !MSTATUS_SD;
    }
    (new & !(MSTATUS_UXL | MSTATUS_SXL)) | MSTATUS_XLEN64
}

/// A trap vector: modes 0 (direct) and 1 (vectored) only; a reserved mode leaves it unchanged.
fn legal_tvec(old: u64, value: u64) -> u64 {
    if value & 3 >= 2 {
        old
    } else {
        value
    }
}

/// Writes a CSR that exists and may be written in the current state.
fn write_unchecked(cpu: &mut Riscv64Cpu, csr: u16, value: u64) -> Result<WriteEffect, Exception> {
    let c = &mut cpu.csrs;
    let mut effect = WriteEffect::None;
    match csr {
        FFLAGS => cpu.fflags = value & 0x1f,
        FRM => cpu.frm = value & 7,
        FCSR => {
            cpu.fflags = value & 0x1f;
            cpu.frm = (value >> 5) & 7;
        }
        SSTATUS | MSTATUS => {
            let writable = if csr == SSTATUS {
                SSTATUS_WRITABLE
            } else {
                MSTATUS_WRITABLE
            };
            let old = c.mstatus;
            c.mstatus = legal_mstatus(old, value, writable);
            effect = if (old ^ c.mstatus) & MSTATUS_MXR != 0 {
                WriteEffect::FlushTlb
            } else {
                WriteEffect::EndBlock
            };
        }
        SIE => {
            let m = c.mideleg;
            c.mie = (c.mie & !m) | (value & m & MIP_ALL);
            effect = WriteEffect::EndBlock;
        }
        SIP => {
            let m = c.mideleg & MIP_SSIP;
            c.mip = (c.mip & !m) | (value & m);
            effect = WriteEffect::EndBlock;
        }
        STVEC => c.stvec = legal_tvec(c.stvec, value),
        SCOUNTEREN => c.scounteren = value & 0xffff_ffff,
        SENVCFG => c.senvcfg = value & ENVCFG_FIOM,
        SSCRATCH => c.sscratch = value,
        SEPC => c.sepc = value & !1,
        SCAUSE => c.scause = value,
        STVAL => c.stval = value,
        STIMECMP => {
            c.stimecmp = value;
            effect = WriteEffect::EndBlock;
        }
        SATP => {
            let mode = value >> SATP_MODE_SHIFT;
            // An unsupported mode makes the whole write have no effect (how Linux probes for
            // Sv57 and Sv48).
            if matches!(mode, SATP_MODE_BARE | SATP_MODE_SV39 | SATP_MODE_SV48) {
                let old_mode = c.satp >> SATP_MODE_SHIFT;
                c.satp = if mode == SATP_MODE_BARE {
                    0
                } else {
                    value & ((0xf << SATP_MODE_SHIFT) | SATP_ASID | SATP_PPN)
                };
                effect = if mode == old_mode && mode != SATP_MODE_BARE {
                    WriteEffect::FlushTlbNonGlobal
                } else {
                    WriteEffect::FlushTlb
                };
            }
        }
        MISA => {}
        MEDELEG => c.medeleg = value & MEDELEG_WRITABLE,
        MIDELEG => {
            c.mideleg = value & MIDELEG_WRITABLE;
            effect = WriteEffect::EndBlock;
        }
        MIE => {
            c.mie = value & MIP_ALL;
            effect = WriteEffect::EndBlock;
        }
        MTVEC => c.mtvec = legal_tvec(c.mtvec, value),
        MCOUNTEREN => c.mcounteren = value & 0xffff_ffff,
        MENVCFG => {
            c.menvcfg = value & (ENVCFG_FIOM | MENVCFG_STCE);
            effect = WriteEffect::EndBlock;
        }
        MCOUNTINHIBIT => c.mcountinhibit = value & 0xffff_fffd,
        MHPMEVENT3..=MHPMEVENT31 | MHPMCOUNTER3..=MHPMCOUNTER31 => {}
        MSCRATCH => c.mscratch = value,
        MEPC => c.mepc = value & !1,
        MCAUSE => c.mcause = value,
        MTVAL => c.mtval = value,
        MIP => {
            let mut writable = MIP_SSIP | MIP_SEIP;
            if c.menvcfg & MENVCFG_STCE == 0 {
                writable |= MIP_STIP;
            }
            c.mip = (c.mip & !writable) | (value & writable);
            effect = WriteEffect::EndBlock;
        }
        PMPCFG0..=PMPCFG15 => {
            let first = (csr - PMPCFG0) as usize * 4;
            for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                super::pmp::write_cfg(c, first + i, byte);
            }
            effect = WriteEffect::FlushTlb;
        }
        PMPADDR0..=PMPADDR63 => {
            super::pmp::write_addr(c, (csr - PMPADDR0) as usize, value);
            effect = WriteEffect::FlushTlb;
        }
        MCYCLE => cpu.csrs.mcycle_offset = value.wrapping_sub(time(cpu)),
        MINSTRET => cpu.csrs.minstret_offset = value.wrapping_sub(time(cpu)),
        // Everything else was refused by the read probe or is read-only by number.
        _ => return Err(ILLEGAL),
    }
    Ok(effect)
}
