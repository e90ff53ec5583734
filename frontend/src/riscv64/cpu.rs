//! The RISC-V 64 CPU state that translated code runs on, and its IR globals.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ir::abi::EnvHeader;
use ir::{GlobalDef, Type};

/// ABI names of x0..x31, for logs.
pub const XREG_NAMES: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

/// ABI names of f0..f31, for logs.
pub const FREG_NAMES: [&str; 32] = [
    "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1", "fa2",
    "fa3", "fa4", "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9",
    "fs10", "fs11", "ft8", "ft9", "ft10", "ft11",
];

/// The architectural state of one hart, as translated code and helpers see it.
///
/// `x[0]` is always zero: translated code never writes it. Floating-point registers hold raw
/// bits; single-precision values are NaN-boxed (upper 32 bits all ones).
#[repr(C)]
pub struct Riscv64Cpu {
    /// The engine's header (must be first).
    pub header: EnvHeader,
    /// Integer registers.
    pub x: [u64; 32],
    /// The pc. Only up to date between blocks and after an exception is restored.
    pub pc: u64,
    /// Floating-point registers.
    pub f: [u64; 32],
    /// Accrued FP exception flags (`fflags`: NV DZ OF UF NX in bits 4..0).
    pub fflags: u64,
    /// Dynamic rounding mode (`frm`, 0..=4).
    pub frm: u64,
    /// LR/SC reservation: the reserved address, or `u64::MAX` when none.
    pub reservation: u64,
    /// The value loaded by the LR that made the reservation (SC compares it).
    pub reservation_value: u64,
    /// Why the hart stopped translated code: the frontend's exception cause.
    pub cause: u64,
    /// The faulting address or instruction bits for `cause`.
    pub tval: u64,
    // --- System mode (privileged architecture, see `super::system`). A user-mode hart leaves
    // these at their `new` values and never reads them.
    /// Current privilege level: 0 U, 1 S, 3 M ([`super::system::PRIV_U`] etc.).
    pub priv_level: u64,
    /// The machine- and supervisor-level CSRs.
    pub csrs: super::system::Csrs,
    /// The interrupt lines devices drive: `mip` bits MSIP, MTIP, SEIP and MEIP, set and cleared
    /// from device threads (the machine hands clones of this `Arc` to the ACLINT and PLIC, and
    /// sets `header.exit_request` after raising a line so the hart looks at it).
    pub irq_lines: Arc<AtomicU64>,
    /// The `time` CSR source: mtime in timebase ticks, set by the machine; `None` reads 0.
    pub time_source: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// Called to flush this hart's softmmu TLB (`None`: everything, `Some(vaddr)`: that page),
    /// with the CPU-state pointer as `env`; set by the machine (typically to
    /// `accel_tcg::helper_flush_tlb`/`helper_flush_tlb_page`). Only ever called from helpers
    /// that the engine runs on this hart's state.
    pub flush_tlb: Option<unsafe fn(env: u64, page: Option<u64>)>,
    /// Called to flush the TLB entries of non-global mappings only (a new satp root or ASID;
    /// typically `accel_tcg::helper_flush_tlb_non_global`); `None` falls back to a whole
    /// [`Riscv64Cpu::flush_tlb`].
    pub flush_tlb_non_global: Option<unsafe fn(env: u64)>,
    /// Virtual-address span covered by superpage mappings handed to the TLB since the last
    /// full flush, so `sfence.vma addr` knows when flushing one 4 KiB entry is not enough.
    pub superpages: super::system::mmu::SuperpageSpan,
}

impl Riscv64Cpu {
    /// A hart with every register zero and the pc at `pc`.
    pub fn new(pc: u64) -> Box<Riscv64Cpu> {
        Box::new(Riscv64Cpu {
            header: EnvHeader::detached(),
            x: [0; 32],
            pc,
            f: [0; 32],
            fflags: 0,
            frm: 0,
            reservation: u64::MAX,
            reservation_value: 0,
            cause: 0,
            tval: 0,
            priv_level: super::system::PRIV_U,
            csrs: super::system::Csrs::new(0),
            irq_lines: Arc::new(AtomicU64::new(0)),
            time_source: None,
            flush_tlb: None,
            flush_tlb_non_global: None,
            superpages: super::system::mmu::SuperpageSpan::EMPTY,
        })
    }
}

// SAFETY: repr(C) with the EnvHeader as its first field; every global lies inside the struct.
unsafe impl accel_tcg::CpuState for Riscv64Cpu {
    fn header(&self) -> &EnvHeader {
        &self.header
    }
    fn header_mut(&mut self) -> &mut EnvHeader {
        &mut self.header
    }
}

/// Byte offset of `x[i]`.
pub const fn x_offset(i: usize) -> u32 {
    (std::mem::offset_of!(Riscv64Cpu, x) + 8 * i) as u32
}

/// Byte offset of `f[i]`.
pub const fn f_offset(i: usize) -> u32 {
    (std::mem::offset_of!(Riscv64Cpu, f) + 8 * i) as u32
}

/// Byte offset of the pc.
pub const PC_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, pc) as u32;
/// Byte offset of `fflags`.
pub const FFLAGS_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, fflags) as u32;
/// Byte offset of `frm`.
pub const FRM_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, frm) as u32;
/// Byte offset of the reservation address.
pub const RESERVATION_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, reservation) as u32;
/// Byte offset of the reserved value.
pub const RESERVATION_VALUE_OFFSET: u32 =
    std::mem::offset_of!(Riscv64Cpu, reservation_value) as u32;
/// Byte offset of `cause`.
pub const CAUSE_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, cause) as u32;
/// Byte offset of `tval`.
pub const TVAL_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, tval) as u32;

/// Byte offset of the privilege level.
pub const PRIV_LEVEL_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, priv_level) as u32;
/// Byte offset of the CSR block.
pub const CSRS_OFFSET: u32 = std::mem::offset_of!(Riscv64Cpu, csrs) as u32;
/// Byte offset of `mstatus` (inside the CSR block).
pub const MSTATUS_OFFSET: u32 =
    CSRS_OFFSET + std::mem::offset_of!(super::system::Csrs, mstatus) as u32;
/// Byte offset of `satp` (inside the CSR block).
pub const SATP_OFFSET: u32 = CSRS_OFFSET + std::mem::offset_of!(super::system::Csrs, satp) as u32;

/// Global index of `x[i]` for `i` in 1..32 (x0 is not a global: it reads as a constant).
pub const fn x_global(i: usize) -> usize {
    i - 1
}
/// Global index of the pc.
pub const PC_GLOBAL: usize = 31;
/// Global index of `f[i]`.
pub const fn f_global(i: usize) -> usize {
    32 + i
}

/// The globals: x1..x31, pc, f0..f31, all I64.
pub fn globals() -> Arc<[GlobalDef]> {
    let mut g = Vec::with_capacity(64);
    for (i, name) in XREG_NAMES.iter().enumerate().skip(1) {
        g.push(GlobalDef {
            name,
            ty: Type::I64,
            offset: x_offset(i),
        });
    }
    g.push(GlobalDef {
        name: "pc",
        ty: Type::I64,
        offset: PC_OFFSET,
    });
    for (i, name) in FREG_NAMES.iter().enumerate() {
        g.push(GlobalDef {
            name,
            ty: Type::I64,
            offset: f_offset(i),
        });
    }
    Arc::from(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_sit_where_their_indexes_say() {
        let g = globals();
        assert_eq!(g[x_global(2)].offset, x_offset(2));
        assert_eq!(g[x_global(2)].name, "sp");
        assert_eq!(g[PC_GLOBAL].offset, PC_OFFSET);
        assert_eq!(g[f_global(10)].name, "fa0");
        assert!(g.iter().all(|d| d.offset >= ir::abi::offsets::HEADER_SIZE));
    }
}
