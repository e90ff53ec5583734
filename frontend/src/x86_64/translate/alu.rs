//! The arithmetic and logic instructions: add or adc sbb and sub xor cmp test, inc/dec,
//! neg/not.

use iced_x86::{Instruction, Mnemonic};

use super::Translator;
use crate::x86_64::flags::{CcKind, CcOp};

impl Translator<'_> {
    /// `inc`/`dec` (CF kept), `neg`, `not` (no flags).
    pub(super) fn unary(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Inc | Dec => {
                let dst = self.operand(i, 0)?;
                let size = dst.size();
                let cf = self.carry();
                let v = self.read(dst);
                let r = self.tmp();
                let (delta, kind) = if i.mnemonic() == Inc {
                    (1, CcKind::Inc)
                } else {
                    (u64::MAX, CcKind::Dec)
                };
                self.b.addi(r, v, delta);
                self.commit(Some(dst), r, Some((CcOp::new(kind, size), Some(cf), None)));
            }
            Neg => {
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let r = self.tmp();
                self.b.neg(r, v);
                let op = CcOp::new(CcKind::Sub, dst.size());
                self.commit(Some(dst), r, Some((op, Some(v), None)));
            }
            Not => {
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let r = self.tmp();
                self.b.not(r, v);
                self.write(dst, r);
            }
            _ => return None,
        }
        Some(())
    }

    /// add or adc sbb and sub xor cmp test.
    pub(super) fn alu(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        let dst = self.operand(i, 0)?;
        let src = self.operand(i, 1)?;
        let size = dst.size();
        let m = i.mnemonic();
        let cin = match m {
            Adc | Sbb => Some(self.carry()),
            _ => None,
        };
        let a = self.read(dst);
        let b = self.read(src);
        let r = self.tmp();
        let kind = match m {
            Add | Adc => {
                self.b.add(r, a, b);
                if let Some(c) = cin {
                    self.b.add(r, r, c);
                }
                if m == Add {
                    CcKind::Add
                } else {
                    CcKind::Adc
                }
            }
            Sub | Sbb | Cmp => {
                self.b.sub(r, a, b);
                if let Some(c) = cin {
                    self.b.sub(r, r, c);
                }
                if m == Sbb {
                    CcKind::Sbb
                } else {
                    CcKind::Sub
                }
            }
            And | Test => {
                self.b.and(r, a, b);
                CcKind::Logic
            }
            Or => {
                self.b.or(r, a, b);
                CcKind::Logic
            }
            _ => {
                self.b.xor(r, a, b);
                CcKind::Logic
            }
        };
        let op = CcOp::new(kind, size);
        let src = if kind == CcKind::Logic { None } else { Some(b) };
        let out = if matches!(m, Cmp | Test) {
            None
        } else {
            Some(dst)
        };
        self.commit(out, r, Some((op, src, cin)));
        Some(())
    }
}
