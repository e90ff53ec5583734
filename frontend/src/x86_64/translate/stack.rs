//! Stack instructions: push/pop, pushfq/popfq, leave.

use iced_x86::{Instruction, Mnemonic};
use ir::{MemOp, Size};

use super::{log2, mem_size, Loc, Translator};
use crate::x86_64::cpu::RSP;

impl Translator<'_> {
    /// `push`, `pop`, `leave`, `pushfq`, `popfq`.
    pub(super) fn stack(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Push => {
                let src = self.operand(i, 0)?;
                let size = match src {
                    Loc::Imm { .. } => log2(i.stack_pointer_increment().unsigned_abs() as usize)?,
                    l => l.size(),
                };
                let v = self.read(src);
                let rsp = self.reg(RSP);
                let sp = self.tmp();
                self.b.addi(sp, rsp, (-(1i64 << size)) as u64);
                self.b
                    .store(v, sp, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                self.b.mov(rsp, sp);
            }
            Pop => {
                let dst = self.operand(i, 0)?;
                let size = dst.size();
                let rsp = self.reg(RSP);
                let v = self.tmp();
                self.b
                    .load(v, rsp, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                self.store(dst, v);
                self.b.addi(rsp, rsp, 1 << size);
                self.write_reg(dst, v);
            }
            Leave => {
                let rbp = self.reg(5);
                let v = self.tmp();
                self.b
                    .load(v, rbp, MemOp::unsigned(Size::B64), self.mmu_idx);
                let rsp = self.reg(RSP);
                self.b.addi(rsp, rbp, 8);
                self.b.mov(rbp, v);
            }
            Pushfq => {
                let v = self.rflags();
                let rsp = self.reg(RSP);
                let sp = self.tmp();
                self.b.addi(sp, rsp, (-8i64) as u64);
                self.b
                    .store(v, sp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.mov(rsp, sp);
            }
            Popfq => {
                let rsp = self.reg(RSP);
                let v = self.tmp();
                self.b
                    .load(v, rsp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.addi(rsp, rsp, 8);
                self.set_rflags(v);
            }
            _ => return None,
        }
        Some(())
    }
}
