//! String instructions (movs stos lods scas cmps) with the `rep` prefixes, the direction
//! flag, and 64- or (0x67) 32-bit address size.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ir::{BinOp, Cond, ExtFrom, MemOp};

use super::{log2, mem_size, Loc, Translator, I64, REP_ITERATIONS_PER_BLOCK};
use crate::x86_64::cpu::{self, RAX, RCX};
use crate::x86_64::flags::{CcKind, CcOp};

impl Translator<'_> {
    /// String instructions, with `rep`/`repe`/`repne` as a loop inside the block. Each
    /// iteration updates rsi/rdi/rcx after its accesses, so a fault restarts the instruction
    /// with the progress made, as the SDM specifies.
    pub(super) fn string(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        let m = i.mnemonic();
        let size = log2(i.memory_size().size())?;
        // A 0x67 prefix: esi/edi/ecx instead of rsi/rdi/rcx. Addresses are the 32-bit
        // registers zero-extended, and their updates (32-bit writes) zero-extend too.
        let a32 = (0..i.op_count()).any(|n| {
            matches!(
                i.op_kind(n),
                OpKind::MemorySegESI | OpKind::MemoryESEDI | OpKind::MemorySegEDI
            )
        });
        let compares = matches!(
            m,
            Scasb | Scasw | Scasd | Scasq | Cmpsb | Cmpsw | Cmpsd | Cmpsq
        );
        let rep = i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix();
        let mop = MemOp::unsigned(mem_size(size));
        let step = self.b.local(I64);
        let df = self.b.global(cpu::DF_GLOBAL);
        self.b.binary_imm(BinOp::Shl, step, df, size as u64);
        let (rsi, rdi, rcx) = (self.reg(6), self.reg(7), self.reg(RCX));
        // The source segment may be overridden (fs/gs); es is flat.
        let src_base = match i.memory_segment() {
            Register::FS => Some(self.b.global(cpu::FS_BASE_GLOBAL)),
            Register::GS => Some(self.b.global(cpu::GS_BASE_GLOBAL)),
            _ => None,
        };
        if compares {
            // Flags are written in the loop: keep the cc_op global exact on every path.
            self.cc.known = None;
        }
        let labels = rep.then(|| (self.b.new_label(), self.b.new_label(), self.b.local(I64)));
        if let Some((top, done, budget)) = labels {
            self.b.movi(budget, REP_ITERATIONS_PER_BLOCK);
            self.b.set_label(top);
            let count_mask = self.konst(if a32 { u32::MAX as u64 } else { u64::MAX });
            self.b.brcond(Cond::TstEq, rcx, count_mask, done);
        }
        let index = |t: &mut Self, r: ir::Temp| {
            if a32 {
                let a = t.tmp();
                t.b.ext(ExtFrom::U32, a, r);
                a
            } else {
                r
            }
        };
        let src_addr = |t: &mut Self| {
            let a = index(t, rsi);
            match src_base {
                Some(base) => {
                    let s = t.tmp();
                    t.b.add(s, a, base);
                    s
                }
                None => a,
            }
        };
        let dst_addr = |t: &mut Self| index(t, rdi);
        // rsi/rdi/rcx += step, as 32-bit registers under 0x67.
        let advance = |t: &mut Self, r: ir::Temp, by: ir::Temp| {
            t.b.add(r, r, by);
            if a32 {
                t.b.ext(ExtFrom::U32, r, r);
            }
        };
        let acc = Loc::Reg {
            idx: RAX,
            size,
            high: false,
        };
        match m {
            Movsb | Movsw | Movsd | Movsq => {
                let a = src_addr(self);
                let v = self.tmp();
                self.b.load(v, a, mop, self.mmu_idx);
                let d = dst_addr(self);
                self.b.store(v, d, mop, self.mmu_idx);
                advance(self, rsi, step);
                advance(self, rdi, step);
            }
            Stosb | Stosw | Stosd | Stosq => {
                let v = self.read(acc);
                let d = dst_addr(self);
                self.b.store(v, d, mop, self.mmu_idx);
                advance(self, rdi, step);
            }
            Lodsb | Lodsw | Lodsd | Lodsq => {
                let a = src_addr(self);
                let v = self.tmp();
                self.b.load(v, a, mop, self.mmu_idx);
                advance(self, rsi, step);
                self.write_reg(acc, v);
            }
            _ => {
                // scas: acc - [rdi]; cmps: [rsi] - [rdi].
                let a = if matches!(m, Scasb | Scasw | Scasd | Scasq) {
                    let v = self.read(acc);
                    let t = self.tmp();
                    self.b.mov(t, v);
                    t
                } else {
                    let a = src_addr(self);
                    let v = self.tmp();
                    self.b.load(v, a, mop, self.mmu_idx);
                    v
                };
                let b = self.tmp();
                let d = dst_addr(self);
                self.b.load(b, d, mop, self.mmu_idx);
                let r = self.tmp();
                self.b.sub(r, a, b);
                let op = CcOp::new(CcKind::Sub, size);
                let g = self.b.global(cpu::CC_OP_GLOBAL);
                self.b.movi(g, op.encode());
                let (gd, gs) = (
                    self.b.global(cpu::CC_DST_GLOBAL),
                    self.b.global(cpu::CC_SRC_GLOBAL),
                );
                self.b.mov(gd, r);
                self.b.mov(gs, b);
                if !matches!(m, Scasb | Scasw | Scasd | Scasq) {
                    advance(self, rsi, step);
                }
                advance(self, rdi, step);
            }
        }
        if let Some((top, done, budget)) = labels {
            let minus_one = self.konst(u64::MAX);
            advance(self, rcx, minus_one);
            if compares {
                // repe stops when ZF = 0, repne when ZF = 1.
                let gd = self.b.global(cpu::CC_DST_GLOBAL);
                let mask = self.konst(u64::MAX >> (64 - (8u32 << size)));
                let cond = if i.has_repne_prefix() {
                    Cond::TstEq
                } else {
                    Cond::TstNe
                };
                self.b.brcond(cond, gd, mask, done);
            }
            // After a bounded number of iterations, go round through the block lookup (whose
            // entry checks exit_request), restarting the instruction where it stands, so a
            // huge count cannot hold off interrupts and stop requests.
            self.b.addi(budget, budget, u64::MAX);
            self.b.brcondi(Cond::Ne, budget, 0, top);
            self.set_rip(self.pc);
            self.b.lookup_and_goto();
            self.b.set_label(done);
            if compares {
                self.cc.known = None;
            }
        } else if compares {
            self.cc.known = Some(CcOp::new(CcKind::Sub, size));
        }
        Some(())
    }
}
