//! SSE instructions that need no host floating point, translated inline.
//!
//! Register moves, loads into XMM registers, the 64-bit unpacks and shuffles, and the
//! bitwise logic only move or combine the two quadwords of the registers, so they become
//! `env_load`/`env_store` of those halves (and guest loads) instead of a helper call. Every
//! operand is read (and every memory access done) before the first register is written, so
//! a fault leaves the registers untouched and a source may be the destination.

use iced_x86::{Instruction, Mnemonic, OpKind};
use ir::{BinOp, MemOp, Size, Temp};

use super::{unaligned_ok, xmm};
use crate::x86_64::cpu;
use crate::x86_64::translate::{gpr, Flow, Loc, Translator};

impl Translator<'_> {
    fn xmm_store(&mut self, r: usize, half: usize, v: Temp) {
        self.b
            .env_store(v, cpu::xmm_offset(r, half), MemOp::unsigned(Size::B64));
    }

    /// Operand 1 as 128 bits: an XMM register's halves, or a 16-byte load (aligned unless
    /// the instruction allows otherwise).
    fn sse_src128(&mut self, i: &Instruction) -> Option<[Temp; 2]> {
        match i.op_kind(1) {
            OpKind::Register => {
                let s = xmm(i.op_register(1))?;
                Some([self.xmm_load(s, 0), self.xmm_load(s, 1)])
            }
            OpKind::Memory if i.memory_size().size() == 16 => {
                let a = self.address(i, true);
                if !unaligned_ok(i.mnemonic()) {
                    self.check_align(a);
                }
                let (lo, hi, a8) = (self.tmp(), self.tmp(), self.tmp());
                self.b.load(lo, a, self.q(), self.mmu_idx);
                self.b.addi(a8, a, 8);
                self.b.load(hi, a8, self.q(), self.mmu_idx);
                Some([lo, hi])
            }
            _ => None,
        }
    }

    /// Operand 1 as at most 64 bits, zero-extended: an XMM register's low quadword (all of
    /// it: callers cut what they need), a general register, or a load of its size.
    fn sse_src64(&mut self, i: &Instruction) -> Option<Temp> {
        match i.op_kind(1) {
            OpKind::Register => {
                let r = i.op_register(1);
                if let Some(s) = xmm(r) {
                    return Some(self.xmm_load(s, 0));
                }
                let (idx, size, high) = gpr(r)?;
                // A copy: the global may change before the value is stored.
                let v = self.read(Loc::Reg { idx, size, high });
                let c = self.tmp();
                self.b.mov(c, v);
                Some(c)
            }
            OpKind::Memory => {
                let size = match i.memory_size().size() {
                    8 => Size::B64,
                    4 => Size::B32,
                    _ => return None,
                };
                let a = self.address(i, true);
                let v = self.tmp();
                self.b.load(v, a, MemOp::unsigned(size), self.mmu_idx);
                Some(v)
            }
            _ => None,
        }
    }

    /// Translates `i` here if it is one of this module's instructions with an XMM register
    /// destination; `None` leaves it to the helpers.
    pub(in crate::x86_64::translate) fn sse_inline(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        if i.op_count() < 2 || i.op_kind(0) != OpKind::Register {
            return None;
        }
        let d = xmm(i.op_register(0))?;
        let from_mem = i.op_kind(1) == OpKind::Memory;
        let same = i.op_kind(1) == OpKind::Register && i.op_register(1) == i.op_register(0);
        let m = i.mnemonic();
        match m {
            Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu => {
                let [lo, hi] = self.sse_src128(i)?;
                self.xmm_store(d, 0, lo);
                self.xmm_store(d, 1, hi);
            }
            // Register forms replace the low element only; loads and movq/movd zero the rest.
            Movsd if !from_mem => {
                let lo = self.sse_src64(i)?;
                self.xmm_store(d, 0, lo);
            }
            Movss if !from_mem => {
                let s = self.sse_src64(i)?;
                let old = self.xmm_load(d, 0);
                let lo = self.tmp();
                self.b.deposit(lo, old, s, 0, 32);
                self.xmm_store(d, 0, lo);
            }
            Movsd | Movss | Movq | Movd => {
                let mut lo = self.sse_src64(i)?;
                if matches!(m, Movss | Movd) && !from_mem {
                    let t = self.tmp();
                    self.b.binary_imm(BinOp::And, t, lo, 0xffff_ffff);
                    lo = t;
                }
                let zero = self.konst(0);
                self.xmm_store(d, 0, lo);
                self.xmm_store(d, 1, zero);
            }
            Movlps | Movlpd if from_mem => {
                let lo = self.sse_src64(i)?;
                self.xmm_store(d, 0, lo);
            }
            Movhps | Movhpd if from_mem => {
                let hi = self.sse_src64(i)?;
                self.xmm_store(d, 1, hi);
            }
            Movhlps => {
                let s = xmm(i.op_register(1))?;
                let v = self.xmm_load(s, 1);
                self.xmm_store(d, 0, v);
            }
            Movlhps => {
                let s = xmm(i.op_register(1))?;
                let v = self.xmm_load(s, 0);
                self.xmm_store(d, 1, v);
            }
            Unpcklpd | Punpcklqdq => {
                let [lo, _] = self.sse_src128(i)?;
                self.xmm_store(d, 1, lo);
            }
            Unpckhpd | Punpckhqdq => {
                let [_, hi] = self.sse_src128(i)?;
                let lo = self.xmm_load(d, 1);
                self.xmm_store(d, 0, lo);
                self.xmm_store(d, 1, hi);
            }
            Shufpd => {
                let imm = i.immediate8();
                let s = self.sse_src128(i)?;
                let lo = self.xmm_load(d, (imm & 1) as usize);
                let hi = s[(imm >> 1 & 1) as usize];
                self.xmm_store(d, 0, lo);
                self.xmm_store(d, 1, hi);
            }
            // The zeroing idioms.
            Pxor | Xorps | Xorpd | Pandn | Andnps | Andnpd if same => {
                let zero = self.konst(0);
                self.xmm_store(d, 0, zero);
                self.xmm_store(d, 1, zero);
            }
            Pand | Andps | Andpd | Pandn | Andnps | Andnpd | Por | Orps | Orpd | Pxor | Xorps
            | Xorpd => {
                let s = self.sse_src128(i)?;
                let (op, swap) = match m {
                    Pand | Andps | Andpd => (BinOp::And, false),
                    // !d & s
                    Pandn | Andnps | Andnpd => (BinOp::AndNot, true),
                    Por | Orps | Orpd => (BinOp::Or, false),
                    _ => (BinOp::Xor, false),
                };
                let mut r = [Temp::ENV; 2];
                for (half, out) in r.iter_mut().enumerate() {
                    let v = self.xmm_load(d, half);
                    let t = self.tmp();
                    if swap {
                        self.b.binary(op, t, s[half], v);
                    } else {
                        self.b.binary(op, t, v, s[half]);
                    }
                    *out = t;
                }
                self.xmm_store(d, 0, r[0]);
                self.xmm_store(d, 1, r[1]);
            }
            _ => return None,
        }
        Some(Flow::Next)
    }
}
