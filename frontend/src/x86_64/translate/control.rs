//! Control transfers and condition consumers: jmp/call/ret, jcc, setcc, cmovcc, loop/jrcxz.

use iced_x86::{Instruction, Mnemonic, OpKind};
use ir::{Cond, ExtFrom, MemOp, Size};

use super::{cc_of, Flow, Translator, I64};
use crate::x86_64::cpu::{self, RCX, RSP};

impl Translator<'_> {
    /// Jumps, calls, returns, loops and the condition-code consumers; `None` for anything else.
    pub(super) fn control(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        if self.legacy() && matches!(i.mnemonic(), Jmp | Call | Ret) {
            return self.near_legacy(i);
        }
        match i.mnemonic() {
            Jmp => {
                match i.op0_kind() {
                    OpKind::NearBranch64 => {
                        self.set_rip(i.near_branch_target());
                        self.b.goto_tb(0);
                    }
                    _ => {
                        let t = self.operand(i, 0)?;
                        if t.size() != 3 {
                            return None;
                        }
                        let v = self.read(t);
                        let rip = self.b.global(cpu::RIP_GLOBAL);
                        self.b.mov(rip, v);
                        self.b.lookup_and_goto();
                    }
                }
                return Some(Flow::End);
            }
            Call => {
                let target = match i.op0_kind() {
                    OpKind::NearBranch64 => None,
                    _ => {
                        let t = self.operand(i, 0)?;
                        if t.size() != 3 {
                            return None;
                        }
                        let v = self.read(t);
                        let c = self.tmp();
                        self.b.mov(c, v);
                        Some(c)
                    }
                };
                let rsp = self.reg(RSP);
                let sp = self.tmp();
                self.b.addi(sp, rsp, (-8i64) as u64);
                let ret = self.konst(self.next);
                self.b
                    .store(ret, sp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.mov(rsp, sp);
                match target {
                    None => {
                        self.set_rip(i.near_branch_target());
                        self.b.goto_tb(0);
                    }
                    Some(t) => {
                        let rip = self.b.global(cpu::RIP_GLOBAL);
                        self.b.mov(rip, t);
                        self.b.lookup_and_goto();
                    }
                }
                return Some(Flow::End);
            }
            Ret => {
                let extra = if i.op_count() == 1 {
                    i.immediate16() as u64
                } else {
                    0
                };
                let rsp = self.reg(RSP);
                let v = self.tmp();
                self.b
                    .load(v, rsp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.addi(rsp, rsp, 8 + extra);
                let rip = self.b.global(cpu::RIP_GLOBAL);
                self.b.mov(rip, v);
                self.b.lookup_and_goto();
                return Some(Flow::End);
            }
            _ if i.is_jcc_short_or_near() => {
                let cc = cc_of(i)?;
                let (c, a, b) = self.cc.condition(self.b, cc);
                let taken = self.b.new_label();
                self.b.brcond(c, a, b, taken);
                self.set_rip(self.next);
                self.b.goto_tb(1);
                self.b.set_label(taken);
                self.set_rip(self.branch_target(i));
                self.b.goto_tb(0);
                return Some(Flow::End);
            }
            Seto | Setno | Setb | Setae | Sete | Setne | Setbe | Seta | Sets | Setns | Setp
            | Setnp | Setl | Setge | Setle | Setg => {
                let cc = cc_of(i)?;
                let dst = self.operand(i, 0)?;
                let (c, a, b) = self.cc.condition(self.b, cc);
                let v = self.tmp();
                self.b.setcond(c, v, a, b);
                self.write(dst, v);
            }
            Cmovo | Cmovno | Cmovb | Cmovae | Cmove | Cmovne | Cmovbe | Cmova | Cmovs | Cmovns
            | Cmovp | Cmovnp | Cmovl | Cmovge | Cmovle | Cmovg => {
                let cc = cc_of(i)?;
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                // The source is read (and may fault) whatever the condition.
                let v = self.read(src);
                let old = self.read(dst);
                let (c, a, b) = self.cc.condition(self.b, cc);
                let r = self.tmp();
                self.b.movcond(c, r, a, b, v, old);
                // A 32-bit destination is zero-extended even when the condition is false.
                self.write_reg(dst, r);
            }
            Jcxz | Jrcxz | Jecxz | Loop | Loope | Loopne => {
                // The address size picks the count register: cx, ecx (a 32-bit write:
                // zero-extended) or rcx; 0x67 switches it.
                let bits = super::legacy::count_bits(i.code());
                let rcx = self.reg(RCX);
                let taken = self.b.new_label();
                match i.mnemonic() {
                    Jcxz | Jrcxz | Jecxz => {
                        let (c, a, b) = self.count_zero(bits);
                        self.b.brcond(c, a, b, taken);
                    }
                    m => {
                        // loop: rcx -= 1 (no flags), taken while rcx != 0 (and ZF for
                        // loope/loopne, read before anything changes).
                        let zf = match m {
                            Loope | Loopne => {
                                let (c, a, b) = self.cc.condition(self.b, 4);
                                let z = self.b.local(I64);
                                self.b.setcond(c, z, a, b);
                                Some(z)
                            }
                            _ => None,
                        };
                        if bits == 16 {
                            let c = self.tmp();
                            self.b.addi(c, rcx, u64::MAX);
                            self.set_count(c, 16);
                        } else {
                            self.b.addi(rcx, rcx, u64::MAX);
                            if bits == 32 {
                                self.b.ext(ExtFrom::U32, rcx, rcx);
                            }
                        }
                        let not_taken = self.b.new_label();
                        if let Some(z) = zf {
                            let want = if m == Loope { 0 } else { 1 };
                            self.b.brcondi(Cond::Eq, z, want, not_taken);
                        }
                        if bits == 16 {
                            let (c, a, b) = self.count_zero(16);
                            self.b.brcond(c.invert(), a, b, taken);
                        } else {
                            self.b.brcondi(Cond::Ne, rcx, 0, taken);
                        }
                        self.b.set_label(not_taken);
                    }
                }
                self.set_rip(self.next);
                self.b.goto_tb(1);
                self.b.set_label(taken);
                self.set_rip(self.branch_target(i));
                self.b.goto_tb(0);
                return Some(Flow::End);
            }
            _ => return None,
        }
        Some(Flow::Next)
    }
}
