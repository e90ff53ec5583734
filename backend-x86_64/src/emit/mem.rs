//! Guest memory accesses (inline softmmu fast path, out-of-line slow path) and CPU-state
//! field accesses.

use ir::abi::{offsets, slow_path_info, PAGE_BITS, PAGE_MASK, TLB_ENTRY_BITS};
use ir::{MemOp, Size, Temp, TempKind, Type};

use super::asm::{self, env_mem, mem, mem_idx, Alu, Sh};
use super::{Compiler, SlowPath};
use crate::liveness::DEAD;
use crate::regalloc::Fail;
use crate::regs::*;

type R = Result<(), Fail>;

/// `Compiler::slow_globals` flags: store the global before the slow-path call...
pub(crate) const SLOW_STORE: u8 = 1;
/// ...reload it after the call (it is in a caller-saved register).
pub(crate) const SLOW_RELOAD: u8 = 2;

impl Compiler<'_> {
    /// `Load` (`store == false`, `t` = destination) or `Store` (`t` = value).
    pub(crate) fn lower_guest_mem(
        &mut self,
        i: usize,
        store: bool,
        t: Temp,
        addr: Temp,
        mop: MemOp,
        mmu_idx: u8,
    ) -> R {
        let a = self.use_reg(addr)?;
        let val = if store {
            match self.block.const_value(t) {
                Some(v) if mop.size != Size::B64 || asm::fits_imm32(true, v) => Err(v),
                _ => Ok(self.use_reg(t)?),
            }
        } else {
            Ok(0)
        };
        let t1 = self.alloc_reg(0)?;
        let t2 = self.alloc_reg(0)?;
        let (dst, dst_w64) = if store {
            (0, false)
        } else {
            (self.alloc_reg(0)?, self.w64(t))
        };
        // Snapshot for the slow path. Globals: dirty ones are stored before the call, and those
        // in caller-saved registers are reloaded from the CPU state after it (cheaper than a
        // save and a restore). Other values in caller-saved registers are saved and restored,
        // except operands that die here (nothing reads their register afterwards).
        let start = self.slow_globals.len() as u32;
        let mut save: RegSet = 0;
        let life = self.life[i];
        let (dead_a, dead_b) = if store {
            (
                (life[0] == DEAD).then_some(t.0),
                (life[1] == DEAD).then_some(addr.0),
            )
        } else {
            ((life[0] == DEAD).then_some(addr.0), None)
        };
        for r in crate::regalloc::regs_of(self.rs.used) {
            let o = self.rs.owner[r as usize];
            let caller = CALLER_SAVED & (1 << r) != 0;
            if let TempKind::Global { offset, .. } = self.block.temps[o as usize].kind {
                let dirty = !self.rs.temps[o as usize].in_mem;
                if dirty || caller {
                    let w64 = self.block.temps[o as usize].ty == Type::I64;
                    let flags = (dirty as u8 * SLOW_STORE) | (caller as u8 * SLOW_RELOAD);
                    self.slow_globals.push((r, offset, w64, flags));
                }
            } else if caller && Some(o) != dead_a && Some(o) != dead_b {
                save |= 1 << r;
            }
        }
        let slow = self.asm.new_label();
        let done = self.asm.new_label();
        let globals = (start, self.slow_globals.len() as u32 - start);
        let tlb = offsets::TLB + mmu_idx as u32 * offsets::TLB_FAST_SIZE;
        let tag_off = if store { 8 } else { 0 };
        let bytes = mop.size.bytes() as i32;
        let shift = (PAGE_BITS - TLB_ENTRY_BITS) as u8;
        asm::mov_rr(self.asm, true, t1, a);
        asm::shift_ri(self.asm, Sh::Shr, true, t1, shift);
        asm::alu_rm(self.asm, Alu::And, true, t1, env_mem(tlb));
        asm::alu_rm(self.asm, Alu::Add, true, t1, env_mem(tlb + 8));
        if mop.aligned || bytes == 1 {
            // Keeping the alignment bits makes a misaligned address fail the compare; the
            // ABI's tag flags sit above them (bits 9-11), so no flagged tag can match.
            asm::mov_rr(self.asm, true, t2, a);
            asm::alu_ri(
                self.asm,
                Alu::And,
                true,
                t2,
                (PAGE_MASK as i64 as i32) | (bytes - 1),
            );
        } else {
            asm::lea(self.asm, true, t2, mem(a, bytes - 1));
            asm::alu_ri(self.asm, Alu::And, true, t2, PAGE_MASK as i64 as i32);
        }
        asm::alu_rm(self.asm, Alu::Cmp, true, t2, mem(t1, tag_off));
        asm::jcc(self.asm, asm::Cc::Ne, slow);
        asm::load(self.asm, MemOp::unsigned(Size::B64), true, t1, mem(t1, 24));
        // The host address is a + t1; rbp/r13 as base would need a disp8, so put them second.
        let m = if a & 7 == 5 {
            mem_idx(t1, a, 0)
        } else {
            mem_idx(a, t1, 0)
        };
        if store {
            match val {
                Ok(rv) => asm::store(self.asm, mop.size, rv, m),
                Err(v) => asm::store_imm(self.asm, mop.size, v, m),
            }
        } else {
            asm::load(self.asm, mop, dst_w64, dst, m);
        }
        self.asm.bind(done);
        self.slow.push(SlowPath {
            label: slow,
            done,
            store,
            mop,
            mmu_idx,
            insn_index: self.insn_index(),
            addr: a,
            val,
            dst,
            dst_w64,
            globals,
            save,
        });
        let _ = self.unwind_label();
        if !store {
            self.bind(t, dst);
        }
        Ok(())
    }

    /// The out-of-line slow path of one access: store dirty globals, record the instruction,
    /// call the engine, test for an exception, return to the fast path's end.
    pub(crate) fn emit_slow_path(&mut self, s: &SlowPath) {
        let a = &mut *self.asm;
        a.bind(s.label);
        let (start, len) = s.globals;
        let globals = &self.slow_globals[start as usize..(start + len) as usize];
        for &(r, off, w64, flags) in globals {
            if flags & SLOW_STORE != 0 {
                let size = if w64 { Size::B64 } else { Size::B32 };
                asm::store(a, size, r, env_mem(off));
            }
        }
        asm::store_imm(
            a,
            Size::B32,
            s.insn_index as u64,
            env_mem(offsets::INSN_INDEX),
        );
        let mut k = 0;
        for r in 0..16u8 {
            if s.save & (1 << r) != 0 {
                asm::store(a, Size::B64, r, mem(RSP, save_disp(k)));
                k += 1;
            }
        }
        // Arguments: rdi = env, rsi = addr, rdx = value, rcx = info.
        let mut moves = Moves::default();
        moves.push(RSI, s.addr);
        if let Ok(rv) = s.val {
            if s.store {
                moves.push(RDX, rv);
            }
        }
        parallel_move(a, &mut moves);
        asm::env_ptr(a, RDI);
        match s.val {
            Err(v) if s.store => asm::mov_ri(a, RDX, v),
            _ if !s.store => asm::mov_ri_flags(a, RDX, 0),
            _ => {}
        }
        asm::mov_ri(
            a,
            RCX,
            slow_path_info(s.mop, s.mmu_idx, s.insn_index as u16, self.block_id),
        );
        let f = if s.store {
            offsets::STORE_SLOW
        } else {
            offsets::LOAD_SLOW
        };
        asm::call_mem(a, env_mem(f));
        if !s.store {
            if s.dst_w64 {
                asm::mov_rr(a, true, s.dst, RAX);
            } else {
                asm::mov_rr32(a, s.dst, RAX);
            }
        }
        let mut k = 0;
        for r in 0..16u8 {
            if s.save & (1 << r) != 0 {
                let mop = MemOp::unsigned(Size::B64);
                asm::load(a, mop, true, r, mem(RSP, save_disp(k)));
                k += 1;
            }
        }
        for &(r, off, w64, flags) in globals {
            if flags & SLOW_RELOAD != 0 {
                let size = if w64 { Size::B64 } else { Size::B32 };
                asm::load(a, MemOp::unsigned(size), w64, r, env_mem(off));
            }
        }
        let unwind = self
            .unwind
            .expect("unwind label created with the slow path");
        let a = &mut *self.asm;
        asm::cmp_mem32_zero(a, env_mem(offsets::UNWIND));
        asm::jcc(a, asm::Cc::Ne, unwind);
        asm::jmp(a, s.done);
    }

    pub(crate) fn lower_env_load(&mut self, dst: Temp, offset: u32, mop: MemOp) -> R {
        let d = self.alloc_reg(0)?;
        let w = self.w64(dst);
        asm::load(self.asm, mop, w, d, env_mem(offset));
        self.bind(dst, d);
        Ok(())
    }

    pub(crate) fn lower_env_store(&mut self, val: Temp, offset: u32, mop: MemOp) -> R {
        match self.block.const_value(val) {
            Some(v) if mop.size != Size::B64 || asm::fits_imm32(true, v) => {
                asm::store_imm(self.asm, mop.size, v, env_mem(offset));
            }
            _ => {
                let r = self.use_reg(val)?;
                asm::store(self.asm, mop.size, r, env_mem(offset));
            }
        }
        Ok(())
    }
}

/// Up to six register moves `(dst, src)`, in a fixed array (no allocation).
#[derive(Default)]
pub(crate) struct Moves {
    m: [(Reg, Reg); 6],
    n: usize,
}

impl Moves {
    pub(crate) fn push(&mut self, d: Reg, s: Reg) {
        if d != s {
            self.m[self.n] = (d, s);
            self.n += 1;
        }
    }

    fn remove(&mut self, k: usize) -> (Reg, Reg) {
        let x = self.m[k];
        self.m.copy_within(k + 1..self.n, k);
        self.n -= 1;
        x
    }
}

/// Performs the register moves as if in parallel (sources are read before any destination
/// is written), breaking cycles with `xchg`.
pub(crate) fn parallel_move(a: &mut asm::Asm, moves: &mut Moves) {
    while moves.n > 0 {
        let live = &moves.m[..moves.n];
        let ready = (0..moves.n).find(|&k| !live.iter().any(|&(_, s)| s == live[k].0));
        match ready {
            Some(k) => {
                let (d, s) = moves.remove(k);
                asm::mov_rr(a, true, d, s);
            }
            None => {
                // Every destination is still a source: a cycle. Swap the first move's pair;
                // its destination is done and moves reading it now read the other register.
                let (d, s) = moves.remove(0);
                asm::xchg(a, d, s);
                let mut k = 0;
                while k < moves.n {
                    if moves.m[k].1 == d {
                        moves.m[k].1 = s;
                    }
                    if moves.m[k].0 == moves.m[k].1 {
                        moves.remove(k);
                    } else {
                        k += 1;
                    }
                }
            }
        }
    }
}
