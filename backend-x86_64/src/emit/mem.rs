//! Guest memory accesses (inline softmmu fast path, out-of-line slow path) and CPU-state
//! field accesses.

use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};
use ir::abi::{offsets, slow_path_info, PAGE_BITS, PAGE_MASK, TLB_ENTRY_BITS};
use ir::{MemOp, Size, Temp, TempKind, Type};

use super::asm::{self, Alu};
use super::{Compiler, SlowPath};
use crate::regalloc::NONE;
use crate::regs::*;
use crate::BackendError;

type R = Result<(), BackendError>;

impl Compiler<'_> {
    /// `Load` (`store == false`, `t` = destination) or `Store` (`t` = value).
    pub(crate) fn lower_guest_mem(
        &mut self,
        _i: usize,
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
        // Snapshot for the slow path: dirty globals and live caller-saved registers.
        let mut globals = Vec::new();
        let mut save: RegSet = 0;
        for r in 0..16u8 {
            let o = self.rs.owner[r as usize];
            if o == NONE {
                continue;
            }
            if let TempKind::Global { offset, .. } = self.block.temps[o as usize].kind {
                if !self.rs.temps[o as usize].in_mem {
                    globals.push((
                        r,
                        offset as i32,
                        self.block.temps[o as usize].ty == Type::I64,
                    ));
                }
            }
            if CALLER_SAVED & (1 << r) != 0 {
                save |= 1 << r;
            }
        }
        let slow = self.asm.new_dynamic_label();
        let done = self.asm.new_dynamic_label();
        let tlb = offsets::TLB as i32 + mmu_idx as i32 * offsets::TLB_FAST_SIZE as i32;
        let tag_off = if store { 8 } else { 0 };
        let bytes = mop.size.bytes() as i32;
        let shift = (PAGE_BITS - TLB_ENTRY_BITS) as i8;
        dynasm!(self.asm ; .arch x64
            ; mov Rq(t1), Rq(a)
            ; shr Rq(t1), shift
            ; and Rq(t1), QWORD [r14 + tlb]
            ; add Rq(t1), QWORD [r14 + tlb + 8]
        );
        if mop.aligned || bytes == 1 {
            // Keeping the alignment bits makes a misaligned address fail the compare; the
            // ABI's tag flags sit above them (bits 9-11), so no flagged tag can match.
            asm::mov_rr(&mut self.asm, true, t2, a);
            asm::alu_ri(
                &mut self.asm,
                Alu::And,
                true,
                t2,
                (PAGE_MASK as i64 as i32) | (bytes - 1),
            );
        } else {
            dynasm!(self.asm ; .arch x64 ; lea Rq(t2), [Rq(a) + bytes - 1]);
            asm::alu_ri(&mut self.asm, Alu::And, true, t2, PAGE_MASK as i64 as i32);
        }
        dynasm!(self.asm ; .arch x64
            ; cmp Rq(t2), QWORD [Rq(t1) + tag_off]
            ; jne =>slow
            ; mov Rq(t1), QWORD [Rq(t1) + 24]
        );
        if store {
            match val {
                Ok(rv) => asm::store(&mut self.asm, mop.size, rv, a, Some(t1), 0),
                Err(v) => asm::store_imm(&mut self.asm, mop.size, v, a, Some(t1), 0),
            }
        } else {
            asm::load(&mut self.asm, mop, dst_w64, dst, a, Some(t1), 0);
        }
        dynasm!(self.asm ; .arch x64 ; =>done);
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
        let a = &mut self.asm;
        dynasm!(a ; .arch x64 ; =>s.label);
        for &(r, off, w64) in &s.globals {
            let size = if w64 { Size::B64 } else { Size::B32 };
            asm::store(a, size, r, ENV, None, off);
        }
        let idx = s.insn_index as i32;
        let insn = offsets::INSN_INDEX as i32;
        dynasm!(a ; .arch x64 ; mov DWORD [r14 + insn], idx);
        let mut k = 0;
        for r in 0..16u8 {
            if s.save & (1 << r) != 0 {
                asm::store(a, Size::B64, r, RSP, None, save_disp(k));
                k += 1;
            }
        }
        // Arguments: rdi = env, rsi = addr, rdx = value, rcx = info.
        let mut moves = vec![(RSI, s.addr)];
        if let Ok(rv) = s.val {
            if s.store {
                moves.push((RDX, rv));
            }
        }
        parallel_move(a, &mut moves);
        asm::mov_rr(a, true, RDI, ENV);
        match s.val {
            Err(v) if s.store => asm::mov_ri(a, RDX, v),
            _ if !s.store => asm::mov_ri(a, RDX, 0),
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
        } as i32;
        dynasm!(a ; .arch x64 ; call QWORD [r14 + f]);
        if !s.store {
            if s.dst_w64 {
                asm::mov_rr(a, true, s.dst, RAX);
            } else {
                dynasm!(a ; .arch x64 ; mov Rd(s.dst), eax);
            }
        }
        let mut k = 0;
        for r in 0..16u8 {
            if s.save & (1 << r) != 0 {
                let mop = MemOp::unsigned(Size::B64);
                asm::load(a, mop, true, r, RSP, None, save_disp(k));
                k += 1;
            }
        }
        let unwind = self
            .unwind
            .expect("unwind label created with the slow path");
        let a = &mut self.asm;
        asm::cmp_mem32_zero(a, ENV, offsets::UNWIND as i32);
        asm::jcc(a, asm::Cc::Ne, unwind);
        asm::jmp(a, s.done);
    }

    pub(crate) fn lower_env_load(&mut self, dst: Temp, offset: u32, mop: MemOp) -> R {
        let d = self.alloc_reg(0)?;
        let w = self.w64(dst);
        asm::load(&mut self.asm, mop, w, d, ENV, None, offset as i32);
        self.bind(dst, d);
        Ok(())
    }

    pub(crate) fn lower_env_store(&mut self, val: Temp, offset: u32, mop: MemOp) -> R {
        match self.block.const_value(val) {
            Some(v) if mop.size != Size::B64 || asm::fits_imm32(true, v) => {
                asm::store_imm(&mut self.asm, mop.size, v, ENV, None, offset as i32);
            }
            _ => {
                let r = self.use_reg(val)?;
                asm::store(&mut self.asm, mop.size, r, ENV, None, offset as i32);
            }
        }
        Ok(())
    }
}

/// Performs the register moves `(dst, src)` as if in parallel (sources are read before any
/// destination is written), breaking cycles with `xchg`.
pub(crate) fn parallel_move(a: &mut asm::Asm, moves: &mut Vec<(Reg, Reg)>) {
    moves.retain(|&(d, s)| d != s);
    while !moves.is_empty() {
        let ready = (0..moves.len()).find(|&k| {
            let d = moves[k].0;
            !moves.iter().any(|&(_, s)| s == d)
        });
        match ready {
            Some(k) => {
                let (d, s) = moves.remove(k);
                asm::mov_rr(a, true, d, s);
            }
            None => {
                // Every destination is still a source: a cycle. Swap the first move's pair;
                // its destination is done and moves reading it now read the other register.
                let (d, s) = moves.remove(0);
                dynasm!(a ; .arch x64 ; xchg Rq(d), Rq(s));
                for m in moves.iter_mut() {
                    if m.1 == d {
                        m.1 = s;
                    }
                }
                moves.retain(|&(d, s)| d != s);
            }
        }
    }
}
