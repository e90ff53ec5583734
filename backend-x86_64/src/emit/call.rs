//! Helper calls (SysV): syncing globals per the helper's flags, preserving live values across
//! the call, passing arguments, and the unwind test after helpers that may raise.

use ir::abi::offsets;
use ir::{Helper, HelperFlags, Temp, TempKind, Type};

use super::asm;
use super::asm::env_mem;
use super::mem::{parallel_move, Moves};
use super::Compiler;
use crate::liveness::{DST, LIVE};
use crate::regalloc::Fail;
use crate::regalloc::NONE;
use crate::regs::*;

impl Compiler<'_> {
    pub(crate) fn lower_call(
        &mut self,
        i: usize,
        helper: &'static Helper,
        args: &[Temp],
        ret: Option<Temp>,
    ) -> Result<(), Fail> {
        let flags = helper.flags;
        let life = self.life[i];
        if flags.syncs_globals() || flags.contains(HelperFlags::WRITES_GLOBALS) {
            self.sync_globals()?;
        }
        if flags.contains(HelperFlags::MAY_RAISE) {
            let idx = self.insn_index() as u64;
            asm::store_imm(self.asm, ir::Size::B32, idx, env_mem(offsets::INSN_INDEX));
        }
        // Where each argument is now: register sources are moved in parallel after the live
        // values have been saved (saving only copies, so the sources stay valid).
        let mut reg_moves = Moves::default();
        let mut others = [(0, Temp::ENV); 6];
        let mut n_others = 0;
        for (k, &t) in args.iter().enumerate() {
            let dst = ARG_REGS[k];
            match self.kind(t) {
                TempKind::Env | TempKind::Const(_) => {
                    others[n_others] = (dst, t);
                    n_others += 1;
                }
                _ => match self.reg_opt(t) {
                    Some(r) => reg_moves.push(dst, r),
                    None => {
                        others[n_others] = (dst, t);
                        n_others += 1;
                    }
                },
            }
        }
        // Values in caller-saved registers that are needed after the call go to free
        // callee-saved registers, else to memory.
        let writes = flags.contains(HelperFlags::WRITES_GLOBALS);
        for r in 0..16u8 {
            let o = self.rs.owner[r as usize];
            if o == NONE || CALLER_SAVED & (1 << r) == 0 {
                continue;
            }
            let t = Temp(o);
            let arg_after = args.iter().position(|&x| x == t).map(|k| life[k]);
            let is_global = matches!(self.kind(t), TempKind::Global { .. });
            match arg_after {
                Some(after) if after != LIVE => {
                    // Last use: store it now if it must reach memory, then let it go.
                    self.retire(t, after)?;
                    continue;
                }
                _ => {}
            }
            if Some(t) == ret || (is_global && writes) {
                // Overwritten by the result, or reloaded after the call (already stored).
                self.unbind(t);
                continue;
            }
            self.save_across_call(t, r)?;
        }
        parallel_move(self.asm, &mut reg_moves);
        for &(dst, t) in &others[..n_others] {
            self.value_into(t, dst)?;
        }
        asm::call_abs(self.asm, helper.func as usize);
        // Caller-saved registers are clobbered; nothing should be bound to them now.
        for r in 0..16u8 {
            if CALLER_SAVED & (1 << r) != 0 && self.rs.owner[r as usize] != NONE {
                let t = Temp(self.rs.owner[r as usize]);
                self.unbind(t);
            }
        }
        if writes {
            self.forget_globals();
        }
        if flags.contains(HelperFlags::MAY_RAISE) {
            let l = self.unwind_label();
            asm::cmp_mem32_zero(self.asm, env_mem(offsets::UNWIND));
            asm::jcc(self.asm, asm::Cc::Ne, l);
        }
        if let Some(t) = ret {
            if self.block.ty(t) == Type::I32 {
                asm::mov_rr32(self.asm, RAX, RAX);
            }
            self.rs.locked |= 1 << RAX;
            self.bind(t, RAX);
        }
        let _ = DST;
        Ok(())
    }

    /// Moves `t` out of caller-saved `r` into a free callee-saved register, or to memory.
    fn save_across_call(&mut self, t: Temp, r: Reg) -> Result<(), Fail> {
        let free = CALLEE_SAVED & !self.rs.used & !self.rs.locked;
        let free = (free != 0).then(|| free.trailing_zeros() as Reg);
        match free {
            Some(x) => {
                asm::mov_rr(self.asm, true, x, r);
                let in_mem = self.rs.temps[t.index()].in_mem;
                self.rs.set_owner(r, NONE);
                self.rs.set_owner(x, t.0);
                self.rs.temps[t.index()].reg = x;
                self.rs.temps[t.index()].in_mem = in_mem;
            }
            None => self.spill(t)?,
        }
        Ok(())
    }
}
