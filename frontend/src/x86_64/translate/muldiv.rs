//! `mul`/`imul` (one, two and three operands) and `div`/`idiv` with #DE.

use iced_x86::{Instruction, Mnemonic};
use ir::{BinOp, Helper, HelperFlags, Temp};

use super::{vector, Loc, Translator};
use crate::x86_64::cpu::{X86Cpu, RAX, RDX};
use crate::x86_64::flags::{ext, CcKind, CcOp};

impl Translator<'_> {
    /// Two- and three-operand `imul`.
    pub(super) fn imul(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let size = dst.size();
        let (a, b) = if i.op_count() == 3 {
            (self.operand(i, 1)?, self.operand(i, 2)?)
        } else {
            (dst, self.operand(i, 1)?)
        };
        let va = self.read(a);
        let vb = self.read(b);
        let r = self.tmp();
        let ovf = self.tmp();
        if size == 3 {
            let hi = self.tmp();
            self.b.mul(r, va, vb);
            self.b.binary(BinOp::MulHs, hi, va, vb);
            self.b.binary_imm(BinOp::Sar, ovf, r, 63);
            self.b.xor(ovf, ovf, hi);
        } else {
            let sa = ext(self.b, va, size, true);
            let sb = ext(self.b, vb, size, true);
            self.b.mul(r, sa, sb);
            let low = ext(self.b, r, size, true);
            self.b.sub(ovf, r, low);
        }
        self.commit(
            Some(dst),
            r,
            Some((CcOp::new(CcKind::Mul, size), Some(ovf), None)),
        );
        Some(())
    }

    /// One-operand `mul`/`imul`: rdx:rax (ax for bytes) = rax * r/m.
    pub(super) fn mul(&mut self, i: &Instruction) -> Option<()> {
        let src = self.operand(i, 0)?;
        let size = src.size();
        let signed = i.mnemonic() == Mnemonic::Imul;
        let v = self.read(src);
        let rax = self.reg(RAX);
        let (lo, hi, ovf) = (self.tmp(), self.tmp(), self.tmp());
        if size == 3 {
            self.b.mul(lo, rax, v);
            if signed {
                self.b.binary(BinOp::MulHs, hi, rax, v);
                self.b.binary_imm(BinOp::Sar, ovf, lo, 63);
                self.b.xor(ovf, ovf, hi);
            } else {
                self.b.binary(BinOp::MulHu, hi, rax, v);
                self.b.mov(ovf, hi);
            }
        } else {
            let a = ext(self.b, rax, size, signed);
            let b = ext(self.b, v, size, signed);
            self.b.mul(lo, a, b);
            let bits = 8u64 << size;
            self.b.binary_imm(BinOp::Shr, hi, lo, bits);
            if signed {
                let low = ext(self.b, lo, size, true);
                self.b.sub(ovf, lo, low);
            } else {
                let m = self.konst((1 << bits) - 1);
                self.b.binary(BinOp::AndNot, ovf, lo, m);
            }
        }
        self.set_flags(CcOp::new(CcKind::Mul, size), lo, Some(ovf), None);
        let reg = |idx, size| Loc::Reg {
            idx,
            size,
            high: false,
        };
        if size == 0 {
            self.write_reg(reg(RAX, 1), lo);
        } else {
            self.write_reg(reg(RDX, size), hi);
            self.write_reg(reg(RAX, size), lo);
        }
        Some(())
    }

    /// `div`/`idiv`, through a helper that raises #DE.
    pub(super) fn div(&mut self, i: &Instruction) -> Option<()> {
        let src = self.operand(i, 0)?;
        let v = self.read(src);
        let size = self.konst(src.size() as u64);
        let signed = self.konst((i.mnemonic() == Mnemonic::Idiv) as u64);
        self.b.call(&DIVIDE, &[Temp::ENV, v, size, signed], None);
        Some(())
    }
}

/// `div`/`idiv` of rdx:rax (ax for bytes) by `divisor` (zero-extended from `1 << size` bytes):
/// writes quotient and remainder, or records #DE (division by zero, quotient too large)
/// leaving the registers alone.
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
unsafe extern "C" fn helper_divide(
    env: u64,
    divisor: u64,
    size: u64,
    signed: u64,
    _: u64,
    _: u64,
) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    if divide(&mut cpu.regs, divisor, size as u8, signed != 0).is_none() {
        cpu.cause = vector::DE;
        cpu.error_code = 0;
        cpu.header.unwind = 1;
    }
    0
}

/// The arithmetic of [`helper_divide`] on the registers; `None` means #DE.
///
/// Up to 32-bit operands the dividend fits in 64 bits and plain 64-bit division is exact; the
/// 64-bit forms check for #DE first and then divide with the host's `div` (128-bit division in
/// software costs several times more, and programs divide in inner loops).
fn divide(regs: &mut [u64; 16], divisor: u64, size: u8, signed: bool) -> Option<()> {
    let bits = 8u32 << size;
    let m = u64::MAX >> (64 - bits);
    let (rax, rdx) = (regs[RAX], regs[RDX]);
    let d = divisor & m;
    let (q, r) = if size == 3 {
        if signed {
            idiv_wide(rdx, rax, d)?
        } else if rdx >= d {
            return None;
        } else {
            div_wide(rdx, rax, d)
        }
    } else {
        // The double-width dividend: ax, dx:ax or edx:eax.
        let n = if size == 0 {
            rax & 0xffff
        } else {
            (rdx & m) << bits | (rax & m)
        };
        if signed {
            let w = 2 * bits;
            let n = ((n << (64 - w)) as i64) >> (64 - w);
            let d = ((d << (64 - bits)) as i64) >> (64 - bits);
            // i64::MIN / -1 (only reachable for 32-bit operands) is an overflow either way.
            let q = n.checked_div(d)?;
            let r = n.checked_rem(d)?;
            if q < -(1i64 << (bits - 1)) || q >= 1i64 << (bits - 1) {
                return None;
            }
            (q as u64 & m, r as u64 & m)
        } else {
            let q = n.checked_div(d)?;
            if q > m {
                return None;
            }
            (q, n % d)
        }
    };
    write_quotient(regs, size, q, r);
    Some(())
}

/// Puts quotient `q` and remainder `r` where `div`/`idiv` of operand size `1 << size` bytes
/// leaves them: al/ah (the rest of rax kept), ax/dx (the rest kept), eax/edx (zero-extended)
/// or rax/rdx.
fn write_quotient(regs: &mut [u64; 16], size: u8, q: u64, r: u64) {
    match size {
        0 => regs[RAX] = (regs[RAX] & !0xffff) | r << 8 | q,
        1 => {
            regs[RAX] = (regs[RAX] & !0xffff) | q;
            regs[RDX] = (regs[RDX] & !0xffff) | r;
        }
        _ => {
            regs[RAX] = q;
            regs[RDX] = r;
        }
    }
}

/// Signed 128-by-64-bit division of `hi:lo` by `d` with x86's truncation and #DE rules:
/// `None` for a zero divisor or a quotient outside the i64 range.
fn idiv_wide(hi: u64, lo: u64, d: u64) -> Option<(u64, u64)> {
    if d == 0 {
        return None;
    }
    let (neg_n, neg_d) = ((hi as i64) < 0, (d as i64) < 0);
    // Magnitudes; the dividend's as a 128-bit two's-complement negation.
    let (mh, ml) = if neg_n {
        ((!hi).wrapping_add(u64::from(lo == 0)), lo.wrapping_neg())
    } else {
        (hi, lo)
    };
    let dm = if neg_d { d.wrapping_neg() } else { d };
    if mh >= dm {
        return None;
    }
    let (qm, rm) = div_wide(mh, ml, dm);
    let neg_q = neg_n != neg_d;
    if qm > (1 << 63) || (qm == 1 << 63 && !neg_q) {
        return None;
    }
    let q = if neg_q { qm.wrapping_neg() } else { qm };
    let r = if neg_n { rm.wrapping_neg() } else { rm };
    Some((q, r))
}

/// Unsigned division of the 128-bit `hi:lo` by `d`, which the caller has checked cannot
/// overflow (`hi < d`, so `d != 0`): the quotient and the remainder.
fn div_wide(hi: u64, lo: u64, d: u64) -> (u64, u64) {
    debug_assert!(hi < d);
    #[cfg(target_arch = "x86_64")]
    {
        let (q, r): (u64, u64);
        // SAFETY: `div` of rdx:rax by a register; with rdx < d (checked by every caller) it
        // cannot fault, and it changes only rax, rdx and the flags.
        unsafe {
            core::arch::asm!("div {d}", d = in(reg) d, inout("rax") lo => q,
                             inout("rdx") hi => r, options(pure, nomem, nostack));
        }
        (q, r)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let n = u128::from(hi) << 64 | u128::from(lo);
        ((n / u128::from(d)) as u64, (n % u128::from(d)) as u64)
    }
}

/// `divide(env, divisor, size, signed)`: reads and writes rax/rdx, may raise #DE.
static DIVIDE: Helper = Helper {
    name: "x86_divide",
    func: helper_divide,
    flags: HelperFlags::READS_GLOBALS
        .union(HelperFlags::WRITES_GLOBALS)
        .union(HelperFlags::MAY_RAISE),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_writes_quotient_and_remainder_per_size() {
        let mut r = [0u64; 16];
        r[RAX] = 0xffff_ffff_ffff_0064; // ax = 100
        divide(&mut r, 7, 0, false).unwrap();
        assert_eq!(r[RAX], 0xffff_ffff_ffff_020e, "ah = 2, al = 14, rest kept");
        r[RAX] = 0xdead_beef_0000_0007;
        r[RDX] = 0x1234_5678_0000_0000;
        divide(&mut r, 2, 2, false).unwrap();
        assert_eq!((r[RAX], r[RDX]), (3, 1), "32-bit results zero-extend");
        r[RAX] = (-7i64) as u64;
        r[RDX] = u64::MAX;
        divide(&mut r, 2, 3, true).unwrap();
        assert_eq!(
            (r[RAX] as i64, r[RDX] as i64),
            (-3, -1),
            "truncating, remainder signed"
        );
    }

    /// The SDM's definition, in 128-bit arithmetic: the reference the fast paths must match.
    fn reference(regs: &mut [u64; 16], divisor: u64, size: u8, signed: bool) -> Option<()> {
        let bits = 8u32 << size;
        let m = u64::MAX >> (64 - bits);
        let (rax, rdx) = (regs[RAX], regs[RDX]);
        let dividend: u128 = match size {
            0 => (rax & 0xffff) as u128,
            3 => (rdx as u128) << 64 | rax as u128,
            _ => ((rdx & m) as u128) << bits | (rax & m) as u128,
        };
        let d = divisor & m;
        let (q, r) = if signed {
            let w = 2 * bits;
            let n = ((dividend << (128 - w)) as i128) >> (128 - w);
            let d = ((d << (64 - bits)) as i64 >> (64 - bits)) as i128;
            let q = n.checked_div(d)?;
            let r = n.checked_rem(d)?;
            if q < -(1i128 << (bits - 1)) || q >= 1i128 << (bits - 1) {
                return None;
            }
            (q as u64 & m, r as u64 & m)
        } else {
            let q = dividend.checked_div(d as u128)?;
            if q > m as u128 {
                return None;
            }
            (q as u64, (dividend % d as u128) as u64)
        };
        write_quotient(regs, size, q, r);
        Some(())
    }

    #[test]
    fn division_matches_the_128_bit_definition_on_edge_and_random_operands() {
        let edges = [
            0u64,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            i64::MAX as u64,
            1 << 63,
            u64::MAX,
            u64::MAX - 1,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases = Vec::new();
        for &a in &edges {
            for &b in &edges {
                for &c in &edges {
                    cases.push((a, b, c));
                }
            }
        }
        for _ in 0..200_000 {
            let (a, b, c) = (next(), next(), next());
            // Small high halves and divisors make the non-#DE cases common.
            let shift = (next() % 64) as u32;
            cases.push((a, b >> shift, c >> (next() % 64)));
        }
        for (rax, rdx, divisor) in cases {
            for size in 0..4 {
                for signed in [false, true] {
                    let mut fast = [0u64; 16];
                    fast[RAX] = rax;
                    fast[RDX] = rdx;
                    let mut slow = fast;
                    let got = divide(&mut fast, divisor, size, signed);
                    let want = reference(&mut slow, divisor, size, signed);
                    assert_eq!(
                        (got, fast),
                        (want, slow),
                        "rdx:rax {rdx:#x}:{rax:#x} / {divisor:#x}, size {size}, signed {signed}"
                    );
                }
            }
        }
    }

    #[test]
    fn division_by_zero_and_overflow_raise_and_keep_the_registers() {
        let mut r = [0u64; 16];
        r[RAX] = 5;
        assert!(divide(&mut r, 0, 3, false).is_none());
        assert!(divide(&mut r, 0, 3, true).is_none());
        r[RDX] = 1;
        assert!(
            divide(&mut r, 1, 3, false).is_none(),
            "quotient 2^64 does not fit"
        );
        r[RAX] = 1 << 63;
        r[RDX] = u64::MAX;
        assert!(divide(&mut r, u64::MAX, 3, true).is_none(), "MIN / -1");
        r[RAX] = 0x8000;
        assert!(
            divide(&mut r, 0xff, 0, true).is_none(),
            "-32768 / -1 as bytes"
        );
        assert_eq!((r[RAX], r[RDX]), (0x8000, u64::MAX));
    }
}
