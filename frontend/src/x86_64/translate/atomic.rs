//! Exchanges: xchg, xadd, cmpxchg (`lock` is accepted and ignored: one vCPU per engine).

use iced_x86::{Instruction, Mnemonic};
use ir::Cond;

use super::{Loc, Translator, I64};
use crate::x86_64::cpu::RAX;
use crate::x86_64::flags::{ext, CcKind, CcOp};

impl Translator<'_> {
    /// `xchg`, `xadd`, `cmpxchg`.
    pub(super) fn atomic(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Xchg => {
                let a = self.operand(i, 0)?;
                let b = self.operand(i, 1)?;
                let va = self.read(a);
                let vb = self.read(b);
                // Copy both first: a 64-bit read is the register global itself.
                let (ta, tb) = (self.tmp(), self.tmp());
                self.b.mov(ta, va);
                self.b.mov(tb, vb);
                self.store(a, tb);
                self.store(b, ta);
                self.write_reg(a, tb);
                self.write_reg(b, ta);
            }
            Xadd => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let a = self.read(dst);
                let b = self.read(src);
                let (old, r) = (self.tmp(), self.tmp());
                self.b.mov(old, a);
                self.b.add(r, a, b);
                self.store(dst, r);
                self.set_flags(CcOp::new(CcKind::Add, dst.size()), r, Some(b), None);
                // The source gets the old destination first: for xadd r, r the sum wins.
                self.write_reg(src, old);
                self.write_reg(dst, r);
            }
            Cmpxchg => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let size = dst.size();
                let acc_loc = Loc::Reg {
                    idx: RAX,
                    size,
                    high: false,
                };
                let old = self.read(dst);
                let old_copy = self.tmp();
                self.b.mov(old_copy, old);
                let acc = self.read(acc_loc);
                let acc_copy = self.tmp();
                self.b.mov(acc_copy, acc);
                let new = self.read(src);
                let (a, o) = (
                    ext(self.b, acc_copy, size, false),
                    ext(self.b, old_copy, size, false),
                );
                // Equal: dst = src; else dst keeps its value (memory is written back anyway)
                // and the accumulator gets it.
                let (d, r) = (self.tmp(), self.tmp());
                self.b.movcond(Cond::Eq, d, a, o, new, old_copy);
                self.b.sub(r, acc_copy, old_copy);
                self.store(dst, d);
                self.set_flags(CcOp::new(CcKind::Sub, size), r, Some(old_copy), None);
                let acc_new = self.tmp();
                self.b.movcond(Cond::Eq, acc_new, a, o, acc_copy, old_copy);
                match dst {
                    Loc::Reg { .. } => {
                        // Only the register that changes is written (a 32-bit one zero-extends).
                        let l1 = self.b.new_label();
                        let l2 = self.b.new_label();
                        let (d_l, acc_l) = (self.b.local(I64), self.b.local(I64));
                        self.b.mov(d_l, d);
                        self.b.mov(acc_l, acc_new);
                        self.b.brcond(Cond::Ne, a, o, l1);
                        self.write_reg(dst, d_l);
                        self.b.br(l2);
                        self.b.set_label(l1);
                        self.write_reg(acc_loc, acc_l);
                        self.b.set_label(l2);
                    }
                    _ => {
                        let l2 = self.b.new_label();
                        let acc_l = self.b.local(I64);
                        self.b.mov(acc_l, acc_new);
                        self.b.brcond(Cond::Eq, a, o, l2);
                        self.write_reg(acc_loc, acc_l);
                        self.b.set_label(l2);
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }
}
