//! Physical memory protection (volume II, "Physical Memory Protection"), as far as OpenSBI
//! programs it: OFF, TOR, NA4 and NAPOT entries with R/W/X and the lock bit, 4-byte
//! granularity (G = 0), 64 entries.
//!
//! The softmmu caches permissions per 4 KiB page, so [`page_prot`] asks for the whole page
//! and only falls back to the exact address when an entry boundary cuts the page (OpenSBI's
//! regions are page-aligned, so the fallback is an approximation nobody should meet).
//!
//! Unlike the letter of the spec (an S/U access that matches no entry fails as soon as any
//! entry is implemented), an S/U access is allowed while no entry is active at all, so a
//! machine booted without firmware still runs; once firmware programs one entry the spec's
//! rule applies.

use accel_tcg::{Access, PageProt};
use ir::abi::PAGE_SIZE;

use super::csr::{Csrs, PMPADDR_MASK, PMP_ENTRIES};
use super::PRIV_M;
use crate::riscv64::Riscv64Cpu;

/// Read permission.
pub const CFG_R: u8 = 1 << 0;
/// Write permission.
pub const CFG_W: u8 = 1 << 1;
/// Execute permission.
pub const CFG_X: u8 = 1 << 2;
/// Shift of the address-matching field A.
pub const CFG_A_SHIFT: u32 = 3;
/// The A field.
pub const CFG_A: u8 = 3 << CFG_A_SHIFT;
/// Locked: writes to the entry are ignored and M-mode is checked too.
pub const CFG_L: u8 = 1 << 7;
/// A = OFF.
pub const A_OFF: u8 = 0;
/// A = TOR: top of range, `[pmpaddr[i-1] << 2, pmpaddr[i] << 2)`.
pub const A_TOR: u8 = 1;
/// A = NA4: the naturally aligned 4 bytes at `pmpaddr[i] << 2`.
pub const A_NA4: u8 = 2;
/// A = NAPOT: a naturally aligned power-of-two region of at least 8 bytes, encoded by trailing
/// ones in pmpaddr.
pub const A_NAPOT: u8 = 3;

fn mode(cfg: u8) -> u8 {
    (cfg & CFG_A) >> CFG_A_SHIFT
}

fn locked(c: &Csrs, i: usize) -> bool {
    c.pmpcfg[i] & CFG_L != 0
}

/// Writes pmp`i`cfg: ignored when locked; bits 6:5 are reserved zero; the reserved R=0 W=1
/// combination leaves the entry unchanged (WARL).
pub fn write_cfg(c: &mut Csrs, i: usize, value: u8) {
    if i >= PMP_ENTRIES || locked(c, i) {
        return;
    }
    if value & (CFG_R | CFG_W) == CFG_W {
        return;
    }
    c.pmpcfg[i] = value & (CFG_L | CFG_A | CFG_X | CFG_W | CFG_R);
}

/// Writes pmpaddr`i`: ignored when entry `i` is locked, or when entry `i + 1` is a locked TOR
/// entry (whose bottom it is).
pub fn write_addr(c: &mut Csrs, i: usize, value: u64) {
    if i >= PMP_ENTRIES || locked(c, i) {
        return;
    }
    if i + 1 < PMP_ENTRIES && locked(c, i + 1) && mode(c.pmpcfg[i + 1]) == A_TOR {
        return;
    }
    c.pmpaddr[i] = value & PMPADDR_MASK;
}

/// The byte range `[start, end)` entry `i` matches, `None` when off. `end` is exclusive and
/// may be 2^64 (hence u128).
fn range(c: &Csrs, i: usize) -> Option<(u128, u128)> {
    let addr = c.pmpaddr[i] as u128;
    match mode(c.pmpcfg[i]) {
        A_TOR => {
            let bottom = if i == 0 {
                0
            } else {
                (c.pmpaddr[i - 1] as u128) << 2
            };
            Some((bottom, addr << 2))
        }
        A_NA4 => Some((addr << 2, (addr << 2) + 4)),
        A_NAPOT => {
            let ones = c.pmpaddr[i].trailing_ones();
            let size = 1u128 << (ones + 3);
            let base = (addr & !((1u128 << ones) - 1)) << 2;
            Some((base, base + size))
        }
        _ => None,
    }
}

fn permits(cfg: u8, access: Access) -> bool {
    let bit = match access {
        Access::Read => CFG_R,
        Access::Write => CFG_W,
        Access::Execute => CFG_X,
    };
    cfg & bit != 0
}

/// Whether an access of `len` bytes at `paddr` by privilege `priv_level` passes PMP.
///
/// The lowest-numbered entry that matches any byte decides: the access fails if it is not
/// entirely inside that entry, or if the entry lacks the permission (checked for M-mode only
/// when the entry is locked). No matching entry: M-mode passes; S/U passes only while no entry
/// is active.
pub fn check(cpu: &Riscv64Cpu, paddr: u64, len: u64, access: Access, priv_level: u64) -> bool {
    let c = &cpu.csrs;
    let start = paddr as u128;
    let end = start + len.max(1) as u128;
    let mut any_active = false;
    for i in 0..PMP_ENTRIES {
        let Some((lo, hi)) = range(c, i) else {
            continue;
        };
        any_active = true;
        if end <= lo || start >= hi {
            continue;
        }
        if start < lo || end > hi {
            return false;
        }
        let cfg = c.pmpcfg[i];
        if priv_level == PRIV_M && cfg & CFG_L == 0 {
            return true;
        }
        return permits(cfg, access);
    }
    priv_level == PRIV_M || !any_active
}

/// The permissions PMP grants privilege `priv_level` on the 4 KiB page at `page`; when an
/// entry boundary cuts the page, those of the byte at `paddr` (see the module docs).
pub fn page_prot(cpu: &Riscv64Cpu, page: u64, paddr: u64, priv_level: u64) -> PageProt {
    let whole = |a| check(cpu, page, PAGE_SIZE, a, priv_level);
    let prot = PageProt {
        read: whole(Access::Read),
        write: whole(Access::Write),
        execute: whole(Access::Execute),
    };
    if prot != PageProt::default() {
        return prot;
    }
    let byte = |a| check(cpu, paddr, 1, a, priv_level);
    PageProt {
        read: byte(Access::Read),
        write: byte(Access::Write),
        execute: byte(Access::Execute),
    }
}
