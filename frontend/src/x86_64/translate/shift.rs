//! Shifts, rotates (also through the carry) and double shifts.
//!
//! Counts are masked to 5 bits (6 for 64-bit operands) before anything else; a masked count
//! of 0 changes neither the destination's value nor a flag (a 32-bit register destination is
//! still zero-extended, as processors do).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ir::{BinOp, Cond, Helper, HelperFlags};

use super::Translator;
use crate::x86_64::cpu::{self, RCX};
use crate::x86_64::flags::{self, ext, CcKind, CcOp};

impl Translator<'_> {
    /// shl/sal, shr, sar by an immediate, 1 or cl.
    pub(super) fn shift(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let size = dst.size();
        let count_mask = if size == 3 { 63 } else { 31 };
        let (op, kind) = match i.mnemonic() {
            Mnemonic::Shl | Mnemonic::Sal => (BinOp::Shl, CcKind::Shl),
            Mnemonic::Shr => (BinOp::Shr, CcKind::Sar),
            _ => (BinOp::Sar, CcKind::Sar),
        };
        let v = self.read(dst);
        let v = if op == BinOp::Sar {
            ext(self.b, v, size, true)
        } else {
            v
        };
        let cc = CcOp::new(kind, size);
        if i.op_count() < 2 || i.op1_kind() != OpKind::Register {
            let count = if i.op_count() < 2 {
                1
            } else {
                i.immediate(1) & count_mask
            };
            if count == 0 {
                // No flags change; a register is still written (zero-extension of 32 bits).
                self.write_reg(dst, v);
                return Some(());
            }
            let (r, s) = (self.tmp(), self.tmp());
            self.b.binary_imm(op, r, v, count);
            self.b.binary_imm(op, s, v, count - 1);
            self.commit(Some(dst), r, Some((cc, Some(s), None)));
            return Some(());
        }
        if i.op1_register() != Register::CL {
            return None;
        }
        let rcx = self.reg(RCX);
        let n = self.tmp();
        self.b.binary_imm(BinOp::And, n, rcx, count_mask);
        let (r, s, n1) = (self.tmp(), self.tmp(), self.tmp());
        self.b.binary(op, r, v, n);
        self.b.addi(n1, n, u64::MAX);
        self.b.binary(op, s, v, n1);
        self.store(dst, r);
        // A zero count keeps every flag: select the old lazy values then.
        let zero = self.konst(0);
        let enc = self.konst(cc.encode());
        for (g, new) in [
            (cpu::CC_OP_GLOBAL, enc),
            (cpu::CC_DST_GLOBAL, r),
            (cpu::CC_SRC_GLOBAL, s),
        ] {
            let g = self.b.global(g);
            self.b.movcond(Cond::Eq, g, n, zero, g, new);
        }
        self.cc.known = None;
        self.write_reg(dst, r);
        Some(())
    }

    /// `shld`/`shrd` by an immediate or cl. The lazy flags reuse `Shl`/`Sar`: `cc_src` is
    /// the double-width value shifted by count - 1, whose top (shld) or bottom (shrd) bit is
    /// the last bit shifted out. A 16-bit shift by more than 16 leaves an undefined result.
    pub(super) fn double_shift(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let src = self.operand(i, 1)?;
        let size = dst.size();
        let bits = 8u64 << size;
        let count_mask = if size == 3 { 63 } else { 31 };
        let left = i.mnemonic() == Mnemonic::Shld;
        let n = match i.op2_kind() {
            OpKind::Register if i.op2_register() == Register::CL => {
                let rcx = self.reg(RCX);
                let n = self.tmp();
                self.b.binary_imm(BinOp::And, n, rcx, count_mask);
                n
            }
            OpKind::Register => return None,
            _ => self.konst(i.immediate(2) & count_mask),
        };
        let d = self.read(dst);
        let sv = self.read(src);
        // Shifts by `bits - n` stay in 1..bits for n in 1..bits; the count-1 value splits its
        // second shift in two so n = 1 never asks for a shift by `bits`.
        let (back, n1) = (self.tmp(), self.tmp());
        let w = self.konst(bits);
        self.b.sub(back, w, n);
        self.b.addi(n1, n, u64::MAX);
        let (main, other) = if left {
            (BinOp::Shl, BinOp::Shr)
        } else {
            (BinOp::Shr, BinOp::Shl)
        };
        let (r, t, s, t2) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.b.binary(main, r, d, n);
        self.b.binary(other, t, sv, back);
        self.b.or(r, r, t);
        self.b.binary(main, s, d, n1);
        self.b.binary_imm(other, t2, sv, 1);
        self.b.binary(other, t2, t2, back);
        self.b.or(s, s, t2);
        let zero = self.konst(0);
        // A zero count changes nothing, not even the destination.
        let r_sel = self.tmp();
        self.b.movcond(Cond::Eq, r_sel, n, zero, d, r);
        self.store(dst, r_sel);
        let kind = if left { CcKind::Shl } else { CcKind::Sar };
        let enc = self.konst(CcOp::new(kind, size).encode());
        for (g, new) in [
            (cpu::CC_OP_GLOBAL, enc),
            (cpu::CC_DST_GLOBAL, r),
            (cpu::CC_SRC_GLOBAL, s),
        ] {
            let g = self.b.global(g);
            self.b.movcond(Cond::Eq, g, n, zero, g, new);
        }
        self.cc.known = None;
        self.write_reg(dst, r_sel);
        Some(())
    }

    /// `rol`/`ror` by an immediate, 1 or cl: CF and OF change (when the masked count is not
    /// 0), the other flags stay. OF is computed for every count (the SDM defines it for 1).
    pub(super) fn rotate(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let size = dst.size();
        let bits = 8u64 << size;
        let count_mask = if size == 3 { 63 } else { 31 };
        let left = i.mnemonic() == Mnemonic::Rol;
        let count = if i.op_count() < 2 {
            self.konst(1)
        } else if i.op1_kind() == OpKind::Register {
            if i.op1_register() != Register::CL {
                return None;
            }
            let rcx = self.reg(RCX);
            let c = self.tmp();
            self.b.binary_imm(BinOp::And, c, rcx, count_mask);
            c
        } else {
            self.konst(i.immediate(1) & count_mask)
        };
        let v = self.read(dst);
        let r = self.tmp();
        if size == 3 {
            let op = if left { BinOp::Rotl } else { BinOp::Rotr };
            self.b.binary(op, r, v, count);
        } else {
            // Rotate by count mod width with two shifts of the zero-extended value.
            let (n, back, hi) = (self.tmp(), self.tmp(), self.tmp());
            self.b.binary_imm(BinOp::And, n, count, bits - 1);
            let w = self.konst(bits);
            self.b.sub(back, w, n);
            let (first, second) = if left {
                (BinOp::Shl, BinOp::Shr)
            } else {
                (BinOp::Shr, BinOp::Shl)
            };
            self.b.binary(first, r, v, n);
            self.b.binary(second, hi, v, back);
            self.b.or(r, r, hi);
            self.b.binary_imm(BinOp::And, r, r, u64::MAX >> (64 - bits));
        }
        self.store(dst, r);
        // CF: the bit rotated in last; OF: MSB(r) ^ CF (rol), the two top bits' xor (ror).
        let f = self.cc.value(self.b);
        let (cf, of, t) = (self.tmp(), self.tmp(), self.tmp());
        if left {
            self.b.binary_imm(BinOp::And, cf, r, 1);
            self.b.binary_imm(BinOp::Shr, t, r, bits - 1);
            self.b.xor(of, t, cf);
        } else {
            self.b.binary_imm(BinOp::Shr, cf, r, bits - 1);
            self.b.binary_imm(BinOp::Shr, t, r, bits - 2);
            self.b.xor(of, t, cf);
        }
        self.b.binary_imm(BinOp::And, cf, cf, 1);
        self.b.binary_imm(BinOp::And, of, of, 1);
        self.b.binary_imm(BinOp::Shl, of, of, 11);
        let new = self.tmp();
        self.b
            .binary_imm(BinOp::AndNot, new, f, flags::CF | flags::OF);
        self.b.or(new, new, cf);
        self.b.or(new, new, of);
        let zero = self.konst(0);
        let sel = self.tmp();
        self.b.movcond(Cond::Eq, sel, count, zero, f, new);
        self.set_eflags(sel);
        self.write_reg(dst, r);
        Some(())
    }

    /// `rcl`/`rcr` by an immediate, 1 or cl: a rotation of the `bits + 1`-wide value CF:dest.
    /// The arithmetic is [`rotate_through_carry`], called twice as a pure helper (once for
    /// the result, once for the flags); the flags are materialised first.
    pub(super) fn rotate_carry(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let count = if i.op_count() < 2 {
            self.konst(1)
        } else if i.op1_kind() == OpKind::Register {
            if i.op1_register() != Register::CL {
                return None;
            }
            self.reg(RCX)
        } else {
            self.konst(i.immediate(1))
        };
        let v = self.read(dst);
        let f = self.cc.value(self.b);
        let how = self.konst(dst.size() as u64 | ((i.mnemonic() == Mnemonic::Rcl) as u64) << 8);
        let (r, nf) = (self.tmp(), self.tmp());
        self.b.call(&RCX_RESULT, &[v, count, how, f], Some(r));
        self.b.call(&RCX_FLAGS, &[v, count, how, f], Some(nf));
        self.store(dst, r);
        self.set_eflags(nf);
        self.write_reg(dst, r);
        Some(())
    }
}

/// `rcl` (`left`) or `rcr` of the `8 << size`-bit value `v` by `count` with the arithmetic
/// flags `flags`: `(result, flags)`. SDM "RCL/RCR/ROL/ROR": the count is masked to 5 bits (6
/// for 64-bit operands), then taken modulo 9 (8-bit) or 17 (16-bit); each step moves CF into
/// the vacated end and the bit rotated out into CF. Only CF and OF change, and nothing does
/// for a masked count of 0.
///
/// OF is defined by the SDM for a masked count of 1 only (rcl: MSB(result) xor CF; rcr:
/// MSB xor the next bit of the result). For other counts tern applies the same formula to the
/// final result, including when the count mod 9 or 17 is 0 (the value and CF are unchanged,
/// OF still follows the formula); that is what the AMD processors tern is tested on give.
pub(crate) fn rotate_through_carry(
    v: u64,
    count: u64,
    size: u8,
    flags: u64,
    left: bool,
) -> (u64, u64) {
    let bits = 8u32 << (size & 3);
    let m = u64::MAX >> (64 - bits);
    let v = v & m;
    let masked = count & if bits == 64 { 63 } else { 31 };
    if masked == 0 {
        return (v, flags);
    }
    let n = match bits {
        8 => masked % 9,
        16 => masked % 17,
        _ => masked,
    } as u32;
    let wide = bits + 1;
    let wmask = (1u128 << wide) - 1;
    let x = v as u128 | ((flags & flags::CF) as u128) << bits;
    // A left rotation by n of a `wide`-bit value is a right rotation by wide - n.
    let l = if left { n } else { (wide - n) % wide };
    let x = if l == 0 {
        x
    } else {
        ((x << l) | (x >> (wide - l))) & wmask
    };
    let r = (x as u64) & m;
    let cf = ((x >> bits) & 1) as u64;
    let msb = r >> (bits - 1);
    let of = if left {
        msb ^ cf
    } else {
        msb ^ ((r >> (bits - 2)) & 1)
    };
    let f = (flags & !(flags::CF | flags::OF)) | (cf * flags::CF) | (of * flags::OF);
    (r, f)
}

/// `how` packs the size (bits 0..2) and the direction (bit 8: left).
fn unpack(how: u64) -> (u8, bool) {
    ((how & 3) as u8, how & 1 << 8 != 0)
}

/// `rcx_result(v, count, how, flags) -> result`.
extern "C" fn helper_rcx_result(v: u64, count: u64, how: u64, flags: u64, _: u64, _: u64) -> u64 {
    let (size, left) = unpack(how);
    rotate_through_carry(v, count, size, flags, left).0
}

/// `rcx_flags(v, count, how, flags) -> flags`.
extern "C" fn helper_rcx_flags(v: u64, count: u64, how: u64, flags: u64, _: u64, _: u64) -> u64 {
    let (size, left) = unpack(how);
    rotate_through_carry(v, count, size, flags, left).1
}

/// The result of `rcl`/`rcr` (pure).
static RCX_RESULT: Helper = Helper {
    name: "x86_rcx_result",
    func: helper_rcx_result,
    flags: HelperFlags::PURE,
};

/// The flags after `rcl`/`rcr` (pure).
static RCX_FLAGS: Helper = Helper {
    name: "x86_rcx_flags",
    func: helper_rcx_flags,
    flags: HelperFlags::PURE,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86_64::flags::{CF, OF, ZF};

    #[test]
    fn rcl_by_one_moves_cf_into_bit_0_and_the_msb_into_cf() {
        assert_eq!(rotate_through_carry(0x80, 1, 0, CF, true), (0x01, CF | OF));
        let (r, f) = rotate_through_carry(0x40, 1, 0, 0, true);
        assert_eq!(
            (r, f & (CF | OF)),
            (0x80, OF),
            "OF = MSB(r) xor CF = 1 xor 0"
        );
    }

    #[test]
    fn rcr_by_one_moves_cf_into_the_msb_and_bit_0_into_cf() {
        let (r, f) = rotate_through_carry(0x8001, 1, 1, 0, false);
        assert_eq!((r, f & CF), (0x4000, CF));
        assert_eq!(f & OF, OF, "OF = old MSB xor old CF = 1 xor 0");
        let (r, f) = rotate_through_carry(0, 1, 3, CF, false);
        assert_eq!((r, f & (CF | OF)), (1 << 63, OF));
    }

    #[test]
    fn the_count_is_masked_then_taken_modulo_width_plus_one() {
        // 8 bits: 9 is a full turn of the 9-bit CF:value, 10 the same as 1.
        assert_eq!(rotate_through_carry(0x5a, 9, 0, CF, true).0, 0x5a);
        assert_eq!(
            rotate_through_carry(0x5a, 10, 0, CF, true),
            rotate_through_carry(0x5a, 1, 0, CF, true)
        );
        // 16 bits: mod 17; 32 bits: the masked count 33 & 31 = 1.
        assert_eq!(
            rotate_through_carry(0x1234, 18, 1, 0, false),
            rotate_through_carry(0x1234, 1, 1, 0, false)
        );
        assert_eq!(
            rotate_through_carry(0x1234, 33, 2, 0, true),
            rotate_through_carry(0x1234, 1, 2, 0, true)
        );
        // 64 bits: a count of 64 masks to 0: nothing changes, not even OF.
        assert_eq!(rotate_through_carry(7, 64, 3, ZF | OF, true), (7, ZF | OF));
    }

    #[test]
    fn a_rotation_by_the_width_brings_cf_round_to_the_top() {
        // rcl by 8 of a byte (a right turn by one of the 9-bit CF:value): the old CF lands in
        // bit 7, bit 0 of the old value in CF.
        let (r, f) = rotate_through_carry(0x83, 8, 0, CF, true);
        assert_eq!((r, f & CF), (0x80 | 0x83 >> 1, CF));
        // For 32 bits a count of 32 is masked to 0.
        assert_eq!(
            rotate_through_carry(0x8000_0003, 32, 2, CF, true).0,
            0x8000_0003
        );
    }

    #[test]
    fn other_flags_are_kept() {
        let (_, f) = rotate_through_carry(1, 3, 3, ZF, true);
        assert_eq!(f & ZF, ZF);
    }
}
