//! Data movement: mov, movzx/movsx/movsxd, lea, the cbw and cwd families, bswap.

use iced_x86::{Instruction, Mnemonic, OpKind};
use ir::{BinOp, UnOp};

use super::{Loc, Translator};
use crate::x86_64::cpu::{RAX, RDX};
use crate::x86_64::flags::ext;

impl Translator<'_> {
    /// `mov`, `movzx`/`movsx`/`movsxd`, `lea`, `cbw`..`cqo`, `bswap`.
    pub(super) fn moves(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Mov => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let v = self.read(src);
                self.write(dst, v);
            }
            Movzx | Movsx | Movsxd => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let v = self.read(src);
                let v = ext(self.b, v, src.size(), i.mnemonic() != Movzx);
                self.write_reg(dst, v);
            }
            Lea => {
                let dst = self.operand(i, 0)?;
                if i.op_kind(1) != OpKind::Memory {
                    return None;
                }
                let a = self.address(i, false);
                self.write_reg(dst, a);
            }
            Cbw | Cwde | Cdqe => {
                let size = match i.mnemonic() {
                    Cbw => 1,
                    Cwde => 2,
                    _ => 3,
                };
                let rax = self.reg(RAX);
                let v = ext(self.b, rax, size - 1, true);
                self.write_reg(
                    Loc::Reg {
                        idx: RAX,
                        size,
                        high: false,
                    },
                    v,
                );
            }
            Cwd | Cdq | Cqo => {
                let size = match i.mnemonic() {
                    Cwd => 1,
                    Cdq => 2,
                    _ => 3,
                };
                let rax = self.reg(RAX);
                let v = ext(self.b, rax, size, true);
                let s = self.tmp();
                self.b.binary_imm(BinOp::Sar, s, v, 63);
                self.write_reg(
                    Loc::Reg {
                        idx: RDX,
                        size,
                        high: false,
                    },
                    s,
                );
            }
            Bswap => {
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let t = self.tmp();
                self.b.unary(UnOp::Bswap, t, v);
                if dst.size() == 2 {
                    self.b.binary_imm(BinOp::Shr, t, t, 32);
                }
                self.write_reg(dst, t);
            }
            _ => return None,
        }
        Some(())
    }
}
