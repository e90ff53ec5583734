//! The system-mode `ir::Helper`s the translator calls.
//!
//! | helper | arguments → result | flags |
//! |---|---|---|
//! | [`CSR_RW`] | `(env, csr, value, op, write, insn)` → old value | MAY_RAISE |
//! | [`MRET`] | `(env)` → 0, sets `pc` and the privilege | MAY_RAISE, WRITES_GLOBALS |
//! | [`SRET`] | `(env)` → 0, sets `pc` and the privilege | MAY_RAISE, WRITES_GLOBALS |
//! | [`WFI`] | `(env, insn)` → 0 | MAY_RAISE |
//! | [`SFENCE_VMA`] | `(env, vaddr, asid, operands, insn)` → 0 | MAY_RAISE |
//!
//! `insn` is the instruction's bits, the `tval` of an illegal-instruction exception.
//!
//! A helper that raises records the exception in [`Riscv64Cpu::cause`]/[`Riscv64Cpu::tval`],
//! sets `header.unwind = 1` and returns 0; the engine then restores the pc of the instruction
//! and the machine takes the trap with [`super::trap::take_trap`]. TLB flushes go through
//! [`Riscv64Cpu::flush_tlb`] when the machine has set it.
//!
//! What the translator must do around them:
//! - CSR_RW: end the block after the instruction when [`super::csr::write_ends_block`] says
//!   so for a writing access (the pc of the next instruction in the `pc` global first).
//! - MRET/SRET: they write `cpu.pc` (mepc/sepc); end the block with a lookup of that pc.
//! - WFI: set `pc` to the next instruction and leave the block so the machine can wait for
//!   [`super::trap::wfi_wakeup`].
//! - SFENCE_VMA: end the block (later code may translate differently).

use ir::abi::PAGE_MASK;
use ir::{Helper, HelperFlags};

use super::csr::{self, CsrOp, WriteEffect};
use super::mmu::SuperpageSpan;
use super::trap::{self, Exception};
use super::{PRIV_S, PRIV_U};
use crate::riscv64::Riscv64Cpu;

/// The hart the engine passes as `env`.
///
/// # Safety
/// `env` is the CPU-state pointer the engine passes to helpers: a live [`Riscv64Cpu`] that
/// nothing else accesses during the call.
unsafe fn cpu<'a>(env: u64) -> &'a mut Riscv64Cpu {
    // SAFETY: by this function's contract.
    unsafe { &mut *(env as *mut Riscv64Cpu) }
}

/// Records `e` (an illegal instruction gets `insn` as tval) and asks the block to unwind.
fn raise(cpu: &mut Riscv64Cpu, e: Exception, insn: u64) -> u64 {
    let e = match e {
        Exception::IllegalInstruction(_) => Exception::IllegalInstruction(insn),
        other => other,
    };
    e.record(cpu);
    cpu.header.unwind = 1;
    0
}

/// Flushes the whole TLB (`None`) or one page through the machine's hook. A page inside a
/// cached superpage flushes everything: the TLB holds superpages as many 4 KiB entries.
fn flush(cpu: &mut Riscv64Cpu, env: u64, page: Option<u64>) {
    let page = page.filter(|&p| !cpu.superpages.contains(p));
    if page.is_none() {
        cpu.superpages = SuperpageSpan::EMPTY;
    }
    if let Some(hook) = cpu.flush_tlb {
        // SAFETY: `env` is the state the engine called the helper with, as the hook expects.
        unsafe { hook(env, page.map(|p| p & PAGE_MASK)) };
    }
}

/// Flushes the TLB's non-global mappings through the machine's hook (else everything). The
/// superpage span stays: global superpages may still be cached.
fn flush_non_global(cpu: &mut Riscv64Cpu, env: u64) {
    match cpu.flush_tlb_non_global {
        // SAFETY: as in `flush`.
        Some(hook) => unsafe { hook(env) },
        None => flush(cpu, env, None),
    }
}

unsafe extern "C" fn csr_rw(env: u64, csr: u64, value: u64, op: u64, write: u64, insn: u64) -> u64 {
    // SAFETY: the engine calls helpers with `env` = the running hart's state.
    let cpu = unsafe { cpu(env) };
    let Some(op) = CsrOp::from_bits(op) else {
        log::warn!("csr_rw helper called with op {op}");
        return raise(cpu, Exception::IllegalInstruction(0), insn);
    };
    match csr::read_modify_write(cpu, csr as u16, op, value, write != 0) {
        Ok((old, effect)) => {
            match effect {
                WriteEffect::FlushTlb => flush(cpu, env, None),
                WriteEffect::FlushTlbNonGlobal => flush_non_global(cpu, env),
                WriteEffect::None | WriteEffect::EndBlock => {}
            }
            old
        }
        Err(e) => raise(cpu, e, insn),
    }
}

/// `(env, csr, value, op, write, insn) -> old value`: csrrw (`op` 0), csrrs (1), csrrc (2) on
/// any CSR, with the privileged access rules; `write` is 0 for csrrs/csrrc with x0 or uimm 0
/// (read only), else 1. Raises illegal instruction with tval = `insn`. Flushes the TLB itself
/// when the write requires it. MAY_RAISE.
pub static CSR_RW: Helper = Helper {
    name: "csr_rw",
    func: csr_rw,
    flags: HelperFlags::MAY_RAISE,
};

unsafe extern "C" fn mret(env: u64, insn: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the engine calls helpers with `env` = the running hart's state.
    let cpu = unsafe { cpu(env) };
    match trap::mret(cpu) {
        Ok(()) => 0,
        Err(e) => raise(cpu, e, insn),
    }
}

/// `(env, insn) -> 0`: mret; sets `pc` to mepc and the privilege to MPP. Illegal below M.
/// MAY_RAISE | WRITES_GLOBALS.
pub static MRET: Helper = Helper {
    name: "mret",
    func: mret,
    flags: HelperFlags::MAY_RAISE.union(HelperFlags::WRITES_GLOBALS),
};

unsafe extern "C" fn sret(env: u64, insn: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the engine calls helpers with `env` = the running hart's state.
    let cpu = unsafe { cpu(env) };
    match trap::sret(cpu) {
        Ok(()) => 0,
        Err(e) => raise(cpu, e, insn),
    }
}

/// `(env, insn) -> 0`: sret; sets `pc` to sepc and the privilege to SPP. Illegal in U, and in
/// S with mstatus.TSR. MAY_RAISE | WRITES_GLOBALS.
pub static SRET: Helper = Helper {
    name: "sret",
    func: sret,
    flags: HelperFlags::MAY_RAISE.union(HelperFlags::WRITES_GLOBALS),
};

unsafe extern "C" fn wfi(env: u64, insn: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the engine calls helpers with `env` = the running hart's state.
    let cpu = unsafe { cpu(env) };
    match trap::wfi(cpu) {
        Ok(()) => 0,
        Err(e) => raise(cpu, e, insn),
    }
}

/// `(env, insn) -> 0`: the legality check of wfi (illegal in U, and in S with mstatus.TW).
/// MAY_RAISE.
pub static WFI: Helper = Helper {
    name: "wfi",
    func: wfi,
    flags: HelperFlags::MAY_RAISE,
};

unsafe extern "C" fn sfence_vma(
    env: u64,
    vaddr: u64,
    _asid: u64,
    operands: u64,
    insn: u64,
    _: u64,
) -> u64 {
    // SAFETY: the engine calls helpers with `env` = the running hart's state.
    let cpu = unsafe { cpu(env) };
    let p = cpu.priv_level;
    if p == PRIV_U || (p == PRIV_S && cpu.csrs.mstatus & csr::MSTATUS_TVM != 0) {
        return raise(cpu, Exception::IllegalInstruction(0), insn);
    }
    // The ASID only narrows what must be flushed; flushing every ASID is always correct.
    // Without rs1, rs2 != x0 leaves global mappings alone (privileged spec, SFENCE.VMA).
    if operands & 1 != 0 {
        flush(cpu, env, Some(vaddr));
    } else if operands & 2 != 0 {
        flush_non_global(cpu, env);
    } else {
        flush(cpu, env, None);
    }
    0
}

/// `(env, vaddr, asid, operands, insn) -> 0`: sfence.vma; `operands` bit 0 is set when rs1 is
/// not x0 (one page, else every page), bit 1 when rs2 is not x0 (global mappings stay);
/// `asid` is rs2's value (ignored). Illegal in U, and in S with mstatus.TVM. MAY_RAISE.
pub static SFENCE_VMA: Helper = Helper {
    name: "sfence.vma",
    func: sfence_vma,
    flags: HelperFlags::MAY_RAISE,
};
