//! Shifts, rotates and double shifts.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ir::{BinOp, Cond};

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
}
