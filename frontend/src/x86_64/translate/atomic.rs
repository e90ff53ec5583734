//! Exchanges: xchg, xadd, cmpxchg, cmpxchg8b, cmpxchg16b. A `lock` prefix (checked in the
//! block loop: only on a memory destination) needs nothing more: one engine runs one vCPU
//! and a translated instruction is not interrupted between its load and its store.

use iced_x86::{Instruction, Mnemonic};
use ir::{BinOp, Cond, ExtFrom, Helper, HelperFlags, MemOp, Size, Temp};

use super::{vector, Loc, Translator, I64};
use crate::x86_64::cpu::{X86Cpu, RAX, RCX, RDX};
use crate::x86_64::flags::{self, ext, CcKind, CcOp};

impl Translator<'_> {
    /// `xchg`, `xadd`, `cmpxchg`, `cmpxchg8b`, `cmpxchg16b`.
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
            Cmpxchg8b | Cmpxchg16b => self.cmpxchg_double(i)?,
            _ => return None,
        }
        Some(())
    }

    /// `cmpxchg8b m64` / `cmpxchg16b m128` (SDM "CMPXCHG8B/CMPXCHG16B"): compare edx:eax
    /// (rdx:rax) with the memory operand; equal: ZF = 1 and memory = ecx:ebx (rcx:rbx); else
    /// ZF = 0, edx:eax (rdx:rax) = memory, and memory is written back unchanged. Only ZF
    /// changes. `cmpxchg16b` raises #GP(0) when the operand is not 16-byte aligned, which
    /// also keeps both halves in one page (no half-done store). On a match the accumulator
    /// registers are not written (a 32-bit one keeps its upper half); on a mismatch the
    /// 32-bit halves zero-extend.
    fn cmpxchg_double(&mut self, i: &Instruction) -> Option<()> {
        if i.op_count() != 1 || i.op0_kind() != iced_x86::OpKind::Memory {
            return None;
        }
        let wide = i.mnemonic() == Mnemonic::Cmpxchg16b;
        let addr = self.address(i, true);
        if wide {
            self.b.call(&CHECK_ALIGN16, &[Temp::ENV, addr], None);
        }
        let (rax, rbx, rcx, rdx) = (self.reg(RAX), self.reg(3), self.reg(RCX), self.reg(RDX));
        let q = MemOp::unsigned(Size::B64);
        let zero = self.konst(0);
        // `diff` is zero exactly when the comparison succeeds.
        let diff = self.tmp();
        let (new_lo, new_hi, acc_lo, acc_hi) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        if wide {
            let (lo, hi, a8, t) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
            self.b.load(lo, addr, q, self.mmu_idx);
            self.b.addi(a8, addr, 8);
            self.b.load(hi, a8, q, self.mmu_idx);
            self.b.xor(diff, lo, rax);
            self.b.xor(t, hi, rdx);
            self.b.or(diff, diff, t);
            self.b.movcond(Cond::Eq, new_lo, diff, zero, rbx, lo);
            self.b.movcond(Cond::Eq, new_hi, diff, zero, rcx, hi);
            self.b.store(new_lo, addr, q, self.mmu_idx);
            self.b.store(new_hi, a8, q, self.mmu_idx);
            self.b.movcond(Cond::Eq, acc_lo, diff, zero, rax, lo);
            self.b.movcond(Cond::Eq, acc_hi, diff, zero, rdx, hi);
        } else {
            let (old, exp, new, t) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
            self.b.load(old, addr, q, self.mmu_idx);
            // edx:eax and ecx:ebx as 64-bit values.
            self.b.deposit(exp, rax, rdx, 32, 32);
            self.b.deposit(new, rbx, rcx, 32, 32);
            self.b.xor(diff, old, exp);
            self.b.movcond(Cond::Eq, t, diff, zero, new, old);
            self.b.store(t, addr, q, self.mmu_idx);
            let (lo, hi) = (self.tmp(), self.tmp());
            self.b.ext(ExtFrom::U32, lo, old);
            self.b.binary_imm(BinOp::Shr, hi, old, 32);
            self.b.movcond(Cond::Eq, acc_lo, diff, zero, rax, lo);
            self.b.movcond(Cond::Eq, acc_hi, diff, zero, rdx, hi);
        }
        let f = self.cc.value(self.b);
        let (z, nf) = (self.tmp(), self.tmp());
        self.b.setcond(Cond::Eq, z, diff, zero);
        self.b
            .binary_imm(BinOp::Shl, z, z, flags::ZF.trailing_zeros() as u64);
        self.b.binary_imm(BinOp::AndNot, nf, f, flags::ZF);
        self.b.or(nf, nf, z);
        self.set_eflags(nf);
        self.b.mov(rax, acc_lo);
        self.b.mov(rdx, acc_hi);
        Some(())
    }
}

/// Records #GP(0) and unwinds when `addr` is not 16-byte aligned (`cmpxchg16b`'s operand,
/// and the SSE instructions whose 16-byte memory operands must be aligned).
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
unsafe extern "C" fn helper_check_align16(
    env: u64,
    addr: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
) -> u64 {
    if addr & 15 != 0 {
        // SAFETY: by this function's contract.
        let cpu = unsafe { &mut *(env as *mut X86Cpu) };
        cpu.cause = vector::GP;
        cpu.error_code = 0;
        cpu.header.unwind = 1;
    }
    0
}

/// `check_align16(env, addr)`: may raise #GP.
pub(super) static CHECK_ALIGN16: Helper = Helper {
    name: "x86_check_align16",
    func: helper_check_align16,
    flags: HelperFlags::MAY_RAISE,
};
