//! Data movement: mov (and SSE2's non-temporal `movnti`, the same store: tern has no cache
//! to bypass), movzx/movsx/movsxd, lea, the cbw and cwd families, bswap, movbe, xlat.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ir::{BinOp, ExtFrom, UnOp};

use super::{Loc, Translator};
use crate::x86_64::cpu::{RAX, RDX};
use crate::x86_64::flags::ext;

impl Translator<'_> {
    /// `mov`, `movnti`, `movzx`/`movsx`/`movsxd`, `lea`, `cbw`..`cqo`, `bswap`, `movbe`,
    /// `xlatb`.
    pub(super) fn moves(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Mov | Movnti => {
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
                // The SDM leaves `bswap r16` undefined; processors (Intel and AMD) clear the
                // 16-bit register, and so does this: the swapped zero-extended value has the
                // two bytes at the top of the 64 bits, the low 16 are zero.
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let t = self.tmp();
                self.b.unary(UnOp::Bswap, t, v);
                if dst.size() == 2 {
                    self.b.binary_imm(BinOp::Shr, t, t, 32);
                }
                self.write_reg(dst, t);
            }
            Movbe => {
                // A load or a store with the bytes reversed (16, 32 or 64 bits); no flags.
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let v = self.read(src);
                let t = self.tmp();
                self.b.unary(UnOp::Bswap, t, v);
                let bits = 8u64 << dst.size();
                if bits < 64 {
                    self.b.binary_imm(BinOp::Shr, t, t, 64 - bits);
                }
                self.write(dst, t);
            }
            Xlatb => {
                // al = [rbx + al] (ebx + al or bx + al, wrapped at the address size), in DS
                // or an override's segment (only fs/gs have a base in 64-bit mode).
                let rbx = self.reg(3);
                let rax = self.reg(RAX);
                let (a, al) = (self.tmp(), self.tmp());
                self.b.ext(ExtFrom::U8, al, rax);
                self.b.add(a, rbx, al);
                match i.memory_base() {
                    Register::EBX => self.b.ext(ExtFrom::U32, a, a),
                    Register::BX => self.b.ext(ExtFrom::U16, a, a),
                    _ => {}
                }
                self.add_segment_base(a, i.memory_segment());
                let v = self.read(Loc::Mem { addr: a, size: 0 });
                let al = Loc::Reg {
                    idx: RAX,
                    size: 0,
                    high: false,
                };
                self.write_reg(al, v);
            }
            _ => return None,
        }
        Some(())
    }
}
