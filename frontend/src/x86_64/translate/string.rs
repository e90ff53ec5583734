//! String instructions (movs stos lods scas cmps) with the `rep` prefixes, the direction
//! flag, and 64-, 32- or 16-bit address size (rsi/rdi/rcx, esi/edi/ecx, si/di/cx). In 16- and
//! 32-bit code the source is `DS.base + SI` (or an override's segment) and the destination
//! `ES.base + DI` (see `legacy`); in 64-bit mode only an FS or GS source has a base.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ir::{BinOp, Cond, ExtFrom, Helper, HelperFlags, MemOp, Temp};

use crate::x86_64::bulk::{bulk_info, helper_rep_bulk};

/// `rep_bulk(env, info)`: leading iterations of `rep movs`/`rep stos` in host RAM; reads and
/// writes rsi/rdi/rcx (and reads rax, DF).
static REP_BULK: Helper = Helper {
    name: "x86_rep_bulk",
    func: helper_rep_bulk,
    flags: HelperFlags::READS_GLOBALS.union(HelperFlags::WRITES_GLOBALS),
};

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
        // The address size (0x67 switches it): esi/edi/ecx instead of rsi/rdi/rcx are the
        // 32-bit registers zero-extended, and their updates (32-bit writes) zero-extend
        // too; si/di/cx are the low 16 bits, and their updates leave the rest alone.
        let a32 = (0..i.op_count()).any(|n| {
            matches!(
                i.op_kind(n),
                OpKind::MemorySegESI | OpKind::MemoryESEDI | OpKind::MemorySegEDI
            )
        });
        let a16 = (0..i.op_count()).any(|n| {
            matches!(
                i.op_kind(n),
                OpKind::MemorySegSI | OpKind::MemoryESDI | OpKind::MemorySegDI
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
        // The source segment may be overridden; the destination is always ES (flat in
        // 64-bit mode).
        let src_seg = i.memory_segment();
        if compares {
            // Flags are written in the loop: keep the cc_op global exact on every path.
            self.cc.known = None;
        }
        // rep movs/stos in 64-bit addressing without a segment base, in a whole machine
        // (which lends `X86Cpu::host_range`): first as many whole runs as it can do in host
        // RAM (`bulk`), then the loop for the rest.
        let bulk = rep
            && self.mode.system
            && !a16
            && !a32
            && !self.legacy()
            && match m {
                Stosb | Stosw | Stosd | Stosq => true,
                Movsb | Movsw | Movsd | Movsq => !matches!(src_seg, Register::FS | Register::GS),
                _ => false,
            };
        if bulk {
            let stos = matches!(m, Stosb | Stosw | Stosd | Stosq);
            let info = self.konst(bulk_info(stos, size, self.mmu_idx));
            self.b.call(&REP_BULK, &[Temp::ENV, info], None);
        }
        let labels = rep.then(|| (self.b.new_label(), self.b.new_label(), self.b.local(I64)));
        if let Some((top, done, budget)) = labels {
            self.b.movi(budget, REP_ITERATIONS_PER_BLOCK);
            self.b.set_label(top);
            let count_mask = self.konst(if a16 {
                0xffff
            } else if a32 {
                u32::MAX as u64
            } else {
                u64::MAX
            });
            self.b.brcond(Cond::TstEq, rcx, count_mask, done);
        }
        let index = |t: &mut Self, r: ir::Temp| {
            if a32 || a16 {
                let a = t.tmp();
                let from = if a16 { ExtFrom::U16 } else { ExtFrom::U32 };
                t.b.ext(from, a, r);
                a
            } else {
                r
            }
        };
        let src_addr = |t: &mut Self| {
            let a = index(t, rsi);
            t.segment_linear(src_seg, a)
        };
        let dst_addr = |t: &mut Self| {
            let a = index(t, rdi);
            if t.legacy() {
                t.segment_linear(Register::ES, a)
            } else {
                a
            }
        };
        // rsi/rdi/rcx += step at the address size.
        let advance = |t: &mut Self, r: ir::Temp, by: ir::Temp| {
            if a16 {
                let s = t.tmp();
                t.b.add(s, r, by);
                t.b.deposit(r, r, s, 0, 16);
                return;
            }
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
