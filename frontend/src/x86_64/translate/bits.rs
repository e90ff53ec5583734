//! Bit tests (`bt*`), bit scans and counts (`bsf`/`bsr`, `tzcnt`/`lzcnt`, `popcnt`).

use iced_x86::{Instruction, Mnemonic, OpKind};
use ir::{BinOp, Cond, UnOp};

use super::{log2, Loc, Translator};
use crate::x86_64::flags::{self, ext, CcKind, CcOp};

impl Translator<'_> {
    /// `bt`/`bts`/`btr`/`btc`: CF = the selected bit; the other flags stay (the SDM leaves
    /// OF SF AF PF undefined). A register offset into memory addresses a bit string: the
    /// signed offset selects the operand-sized word.
    pub(super) fn bit_test(&mut self, i: &Instruction) -> Option<()> {
        let size = log2(match i.op0_kind() {
            OpKind::Memory => i.memory_size().size(),
            _ => i.op0_register().size(),
        })?;
        let bits = 8u64 << size;
        let off = self.operand(i, 1)?;
        let off_v = self.read(off);
        let dst = match (self.operand(i, 0)?, off) {
            (Loc::Mem { addr, size }, Loc::Reg { .. }) => {
                let (word, a) = (self.tmp(), self.tmp());
                let s = ext(self.b, off_v, size, true);
                self.b
                    .binary_imm(BinOp::Sar, word, s, (bits.trailing_zeros()) as u64);
                self.b.binary_imm(BinOp::Shl, word, word, size as u64);
                self.b.add(a, addr, word);
                Loc::Mem { addr: a, size }
            }
            (l, _) => l,
        };
        let n = self.tmp();
        self.b.binary_imm(BinOp::And, n, off_v, bits - 1);
        let v = self.read(dst);
        let (bit, mask) = (self.tmp(), self.tmp());
        self.b.shr(bit, v, n);
        self.b.binary_imm(BinOp::And, bit, bit, 1);
        let one = self.konst(1);
        self.b.shl(mask, one, n);
        let r = self.tmp();
        let op = match i.mnemonic() {
            Mnemonic::Bts => Some(BinOp::Or),
            Mnemonic::Btr => Some(BinOp::AndNot),
            Mnemonic::Btc => Some(BinOp::Xor),
            _ => None,
        };
        if let Some(op) = op {
            self.b.binary(op, r, v, mask);
            self.store(dst, r);
        }
        let f = self.cc.value(self.b);
        let new = self.tmp();
        self.b.binary_imm(BinOp::AndNot, new, f, flags::CF);
        self.b.or(new, new, bit);
        self.set_eflags(new);
        if op.is_some() {
            self.write_reg(dst, r);
        }
        Some(())
    }

    /// `bsf`/`bsr` (ZF = source is zero, destination kept then; the undefined flags follow
    /// the source as after a logic op), `tzcnt`/`lzcnt` (CF = source is zero, ZF = result is
    /// zero) and `popcnt` (ZF = source is zero, the others clear).
    pub(super) fn bit_scan(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        let dst = self.operand(i, 0)?;
        let src = self.operand(i, 1)?;
        let size = dst.size();
        let bits = 8u64 << size;
        let v = self.read(src);
        let r = self.tmp();
        let m = i.mnemonic();
        match m {
            Bsf | Tzcnt => {
                // A bit above the operand makes a zero source count as the width.
                let t = self.tmp();
                self.b
                    .binary_imm(BinOp::Or, t, v, if bits == 64 { 0 } else { 1 << bits });
                self.b.unary(UnOp::Ctz, r, t);
            }
            Bsr => {
                self.b.unary(UnOp::Clz, r, v);
                self.b.binary_imm(BinOp::Xor, r, r, 63);
            }
            Lzcnt => {
                self.b.unary(UnOp::Clz, r, v);
                self.b.addi(r, r, bits.wrapping_sub(64));
            }
            _ => self.b.unary(UnOp::Ctpop, r, v),
        }
        let zero = self.konst(0);
        match m {
            Bsf | Bsr => {
                // A zero source leaves the destination register whole, as the AMD manual
                // specifies (the SDM says undefined; Intel parts clear the upper half of a
                // 32-bit destination): for 32 bits, the whole 64-bit register is selected
                // and written back, not zero-extended.
                let whole = match dst {
                    Loc::Reg { idx, size: 2, .. } => Some(Loc::Reg {
                        idx,
                        size: 3,
                        high: false,
                    }),
                    _ => None,
                };
                let old = self.read(whole.unwrap_or(dst));
                let sel = self.tmp();
                self.b.movcond(Cond::Eq, sel, v, zero, old, r);
                self.set_flags(CcOp::new(CcKind::Logic, size), v, None, None);
                self.write_reg(whole.unwrap_or(dst), sel);
            }
            _ => {
                let (f, t) = (self.tmp(), self.tmp());
                let (zf, cf) = (self.konst(flags::ZF), self.konst(flags::CF));
                if m == Popcnt {
                    self.b.movcond(Cond::Eq, f, v, zero, zf, zero);
                } else {
                    self.b.movcond(Cond::Eq, f, v, zero, cf, zero);
                    self.b.movcond(Cond::Eq, t, r, zero, zf, zero);
                    self.b.or(f, f, t);
                }
                self.set_eflags(f);
                self.write_reg(dst, r);
            }
        }
        Some(())
    }
}
