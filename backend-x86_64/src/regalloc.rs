//! The register allocator's state: where each temp's value is, which register holds what, and
//! the moves, loads, spills and stores that keep them consistent.
//!
//! Local and linear, QEMU-style: ops are lowered in order; each temp is in a register, in its
//! canonical memory (a global's CPU-state field, or a local's or scratch's spill slot), both
//! (clean), or a constant. A register holding a value not yet in memory is *dirty*. The
//! per-op liveness states ([`crate::liveness`]) free registers at last uses, so dead scratch
//! values are never spilled.

use ir::{Temp, TempKind, Type};

use crate::emit::asm;
use crate::emit::Compiler;
use crate::liveness::{DEAD, LIVE, NEEDMEM};
use crate::regs::*;
use crate::BackendError;

/// Why a block cannot be compiled. A small `Copy` type, so that the allocator's results stay
/// in registers on hot paths; it becomes [`BackendError::TooComplex`] at the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// More locals than spill slots.
    Locals(u32),
    /// More values to spill than spill slots.
    SpillSlots,
    /// More values needed at once by one op than allocatable registers.
    Registers,
}

impl From<Fail> for BackendError {
    fn from(f: Fail) -> BackendError {
        BackendError::TooComplex(match f {
            Fail::Locals(n) => format!("{n} locals, more than {SPILL_SLOTS} spill slots"),
            Fail::SpillSlots => format!("more than {SPILL_SLOTS} spill slots"),
            Fail::Registers => "out of registers".into(),
        })
    }
}

/// No register / no owner / no slot.
pub const NONE: u32 = u32::MAX;

/// Where one temp's value is.
#[derive(Debug, Clone, Copy)]
pub struct TempLoc {
    /// Register number, or 0xff.
    pub reg: u8,
    /// The canonical memory holds the current value.
    pub in_mem: bool,
    /// Spill slot of a local or scratch temp, or `u16::MAX`.
    pub slot: u16,
}

pub const NO_REG: u8 = 0xff;
pub const NO_SLOT: u16 = u16::MAX;

/// The allocator's bookkeeping, reset per block.
#[derive(Debug, Default)]
pub struct RegState {
    pub temps: Vec<TempLoc>,
    /// Temp owning each register, or [`NONE`]. Change it through [`RegState::set_owner`],
    /// which keeps `used` in step.
    pub owner: [u32; 16],
    /// Registers with an owner.
    pub used: RegSet,
    /// Registers in use by the op being lowered (not evictable).
    pub locked: RegSet,
    pub free_slots: Vec<u16>,
    pub next_slot: u16,
}

impl RegState {
    /// Fresh state for `block`. Locals get their slots up front: a label may be reached from
    /// code emitted later (a backward branch), so a local's home must not depend on the order
    /// of emission.
    pub fn reset(&mut self, block: &ir::Block) -> Result<(), Fail> {
        let mut next = 0u16;
        self.temps.clear();
        for t in &block.temps {
            let slot = if t.kind == TempKind::Local {
                next += 1;
                next - 1
            } else {
                NO_SLOT
            };
            self.temps.push(TempLoc {
                reg: NO_REG,
                in_mem: matches!(t.kind, TempKind::Global { .. }),
                slot,
            });
        }
        if next as usize > SPILL_SLOTS {
            return Err(Fail::Locals(next as u32));
        }
        self.owner = [NONE; 16];
        self.used = 0;
        self.locked = 0;
        self.free_slots.clear();
        self.next_slot = next;
        Ok(())
    }
}

impl RegState {
    #[inline]
    pub fn set_owner(&mut self, r: Reg, o: u32) {
        self.owner[r as usize] = o;
        if o == NONE {
            self.used &= !(1 << r);
        } else {
            self.used |= 1 << r;
        }
    }
}

/// The registers of `set`, lowest first.
#[inline]
pub fn regs_of(mut set: RegSet) -> impl Iterator<Item = Reg> {
    std::iter::from_fn(move || {
        if set == 0 {
            return None;
        }
        let r = set.trailing_zeros() as Reg;
        set &= set - 1;
        Some(r)
    })
}

/// The preferred register of a non-empty `set`: caller-saved first (cheap between calls).
#[inline]
fn pick(set: RegSet) -> Reg {
    let c = set & CALLER_SAVED;
    (if c != 0 { c } else { set }).trailing_zeros() as Reg
}

impl Compiler<'_> {
    #[inline]
    pub(crate) fn kind(&self, t: Temp) -> TempKind {
        self.block.temps[t.index()].kind
    }

    #[inline]
    pub(crate) fn w64(&self, t: Temp) -> bool {
        self.block.temps[t.index()].ty == Type::I64
    }

    /// The temp's register, if it has one.
    #[inline]
    pub(crate) fn reg_opt(&self, t: Temp) -> Option<Reg> {
        let r = self.rs.temps[t.index()].reg;
        (r != NO_REG).then_some(r)
    }

    #[inline]
    fn dirty(&self, t: Temp) -> bool {
        let l = self.rs.temps[t.index()];
        l.reg != NO_REG && !l.in_mem
    }

    /// The canonical memory of `t`: (operand, 64-bit field).
    fn mem_of(&mut self, t: Temp) -> Result<(asm::Mem, bool), Fail> {
        match self.kind(t) {
            TempKind::Global { offset, .. } => Ok((asm::env_mem(offset), self.w64(t))),
            TempKind::Local | TempKind::Scratch => {
                let mut slot = self.rs.temps[t.index()].slot;
                if slot == NO_SLOT {
                    slot = match self.rs.free_slots.pop() {
                        Some(s) => s,
                        None => {
                            if self.rs.next_slot as usize >= SPILL_SLOTS {
                                return Err(Fail::SpillSlots);
                            }
                            self.rs.next_slot += 1;
                            self.rs.next_slot - 1
                        }
                    };
                    self.rs.temps[t.index()].slot = slot;
                }
                Ok((asm::mem(RSP, spill_disp(slot)), true))
            }
            k => unreachable!("{k:?} has no memory"),
        }
    }

    /// Stores `t`'s register to its canonical memory; it becomes clean.
    pub(crate) fn store_temp(&mut self, t: Temp) -> Result<(), Fail> {
        let r = self.rs.temps[t.index()].reg;
        let (m, w64) = self.mem_of(t)?;
        let size = if w64 { ir::Size::B64 } else { ir::Size::B32 };
        asm::store(self.asm, size, r, m);
        self.rs.temps[t.index()].in_mem = true;
        Ok(())
    }

    /// Drops the binding between `t` and its register (no store).
    #[inline]
    pub(crate) fn unbind(&mut self, t: Temp) {
        let r = self.rs.temps[t.index()].reg;
        if r != NO_REG {
            self.rs.set_owner(r, NONE);
            self.rs.temps[t.index()].reg = NO_REG;
        }
    }

    /// Makes `t` (whose value is being replaced) own `r`, dirty.
    #[inline]
    pub(crate) fn bind(&mut self, t: Temp, r: Reg) {
        let old = self.rs.temps[t.index()].reg;
        if old != NO_REG && old != r {
            self.rs.set_owner(old, NONE);
        }
        let prev = self.rs.owner[r as usize];
        if prev != NONE && prev != t.0 {
            self.rs.temps[prev as usize].reg = NO_REG;
        }
        self.rs.set_owner(r, t.0);
        let l = &mut self.rs.temps[t.index()];
        l.reg = r;
        l.in_mem = false;
    }

    /// Stores `t` if dirty, then drops its register.
    #[inline]
    pub(crate) fn spill(&mut self, t: Temp) -> Result<(), Fail> {
        if self.dirty(t) {
            self.store_temp(t)?;
        }
        self.unbind(t);
        Ok(())
    }

    /// A free register not in `avoid`, evicting a value if needed (a clean one first). The
    /// register is locked.
    #[inline]
    pub(crate) fn alloc_reg(&mut self, avoid: RegSet) -> Result<Reg, Fail> {
        self.alloc_reg_pref(avoid, CALLER_SAVED)
    }

    /// [`Compiler::alloc_reg`] choosing in `prefer` first when a register is free there:
    /// callee-saved registers for values that live long (globals), so that calls and slow
    /// paths need not save or reload them.
    #[inline]
    pub(crate) fn alloc_reg_pref(&mut self, avoid: RegSet, prefer: RegSet) -> Result<Reg, Fail> {
        let ok = ALLOCATABLE & !(self.rs.locked | avoid);
        let free = ok & !self.rs.used;
        if free != 0 {
            let p = free & prefer;
            let r = (if p != 0 { p } else { free }).trailing_zeros() as Reg;
            self.rs.locked |= 1 << r;
            return Ok(r);
        }
        self.evict(ok)
    }

    /// Frees a register of `ok` (all in use), a clean one if any, and locks it.
    #[inline(never)]
    fn evict(&mut self, ok: RegSet) -> Result<Reg, Fail> {
        let mut victim = None;
        for r in regs_of(ok) {
            let o = self.rs.owner[r as usize];
            if self.rs.temps[o as usize].in_mem {
                victim = Some(r);
                break;
            }
            victim.get_or_insert(r);
        }
        let r = victim.ok_or(Fail::Registers)?;
        let o = Temp(self.rs.owner[r as usize]);
        self.spill(o)?;
        self.rs.locked |= 1 << r;
        Ok(r)
    }

    /// Frees physical register `r` for the current op (moving its owner to another register
    /// when one is free, else spilling it) and locks it.
    pub(crate) fn reserve(&mut self, r: Reg) -> Result<(), Fail> {
        let o = self.rs.owner[r as usize];
        if o != NONE {
            let t = Temp(o);
            let free = ALLOCATABLE & !self.rs.used & !(self.rs.locked | 1 << r);
            let free = (free != 0).then(|| pick(free));
            match free {
                Some(x) => {
                    asm::mov_rr(self.asm, true, x, r);
                    let in_mem = self.rs.temps[o as usize].in_mem;
                    self.rs.set_owner(r, NONE);
                    self.rs.set_owner(x, o);
                    self.rs.temps[o as usize].reg = x;
                    self.rs.temps[o as usize].in_mem = in_mem;
                    if self.rs.locked & (1 << r) != 0 {
                        // The value was an operand of this op: it is now in x.
                        self.rs.locked |= 1 << x;
                    }
                }
                None => self.spill(t)?,
            }
        }
        self.rs.locked |= 1 << r;
        Ok(())
    }

    /// Emits code putting `t`'s value in physical register `r` without binding it.
    pub(crate) fn value_into(&mut self, t: Temp, r: Reg) -> Result<(), Fail> {
        match self.kind(t) {
            TempKind::Env => asm::env_ptr(self.asm, r),
            TempKind::Const(v) => asm::mov_ri(self.asm, r, v),
            _ => {
                if let Some(s) = self.reg_opt(t) {
                    asm::mov_rr(self.asm, true, r, s);
                } else {
                    self.load_mem(t, r)?;
                }
            }
        }
        Ok(())
    }

    fn load_mem(&mut self, t: Temp, r: Reg) -> Result<(), Fail> {
        let l = self.rs.temps[t.index()];
        if !l.in_mem {
            // Read before any write (the verifier rejects this for scratch temps): zero.
            asm::mov_ri(self.asm, r, 0);
            return Ok(());
        }
        let (m, w64) = self.mem_of(t)?;
        let mop = ir::MemOp::unsigned(if w64 { ir::Size::B64 } else { ir::Size::B32 });
        asm::load(self.asm, mop, w64, r, m);
        Ok(())
    }

    /// `t` in a register (loaded and bound if needed), locked for the current op. Constants
    /// get a temporary register.
    #[inline]
    pub(crate) fn use_reg(&mut self, t: Temp) -> Result<Reg, Fail> {
        if let Some(r) = self.reg_opt(t) {
            self.rs.locked |= 1 << r;
            return Ok(r);
        }
        match self.kind(t) {
            TempKind::Env => {
                // Only helper arguments may be ENV (verifier); this is for robustness.
                let r = self.alloc_reg(0)?;
                asm::env_ptr(self.asm, r);
                Ok(r)
            }
            TempKind::Const(v) => {
                let r = self.alloc_reg(0)?;
                asm::mov_ri(self.asm, r, v);
                Ok(r)
            }
            kind => {
                let prefer = if matches!(kind, TempKind::Global { .. }) {
                    CALLEE_SAVED
                } else {
                    CALLER_SAVED
                };
                let r = self.alloc_reg_pref(0, prefer)?;
                self.load_mem(t, r)?;
                let in_mem = self.rs.temps[t.index()].in_mem;
                self.bind(t, r);
                self.rs.temps[t.index()].in_mem = in_mem;
                Ok(r)
            }
        }
    }

    /// A register for the result of an op whose first operand `a` (in `ra`) is overwritten in
    /// place: `ra` itself when `a` dies here, else a copy.
    pub(crate) fn dst_from(
        &mut self,
        a: Temp,
        ra: Reg,
        a_after: u8,
        avoid: RegSet,
    ) -> Result<Reg, Fail> {
        let owned = self.rs.owner[ra as usize] == a.0;
        let owner_ok = owned || self.rs.owner[ra as usize] == NONE;
        let is_const = matches!(self.kind(a), TempKind::Const(_));
        if owner_ok && (a_after != LIVE || is_const) && avoid & (1 << ra) == 0 && ra != ENV {
            if owned {
                if a_after == NEEDMEM && self.dirty(a) {
                    self.store_temp(a)?;
                }
                self.unbind(a);
            }
            self.rs.locked |= 1 << ra;
            return Ok(ra);
        }
        let d = self.alloc_reg(avoid)?;
        asm::mov_rr(self.asm, true, d, ra);
        Ok(d)
    }

    /// Applies an operand's after-op state.
    #[inline]
    pub(crate) fn retire(&mut self, t: Temp, after: u8) -> Result<(), Fail> {
        match self.kind(t) {
            TempKind::Env | TempKind::Const(_) => return Ok(()),
            _ => {}
        }
        match after {
            DEAD => {
                self.unbind(t);
                if self.kind(t) == TempKind::Scratch {
                    let l = &mut self.rs.temps[t.index()];
                    l.in_mem = false;
                    if l.slot != NO_SLOT {
                        self.rs.free_slots.push(l.slot);
                        l.slot = NO_SLOT;
                    }
                }
            }
            NEEDMEM => self.spill(t)?,
            _ => {}
        }
        Ok(())
    }

    /// Stores every dirty global (they stay in their registers, clean).
    pub(crate) fn sync_globals(&mut self) -> Result<(), Fail> {
        for r in regs_of(self.rs.used) {
            let o = self.rs.owner[r as usize];
            if o != NONE
                && matches!(self.block.temps[o as usize].kind, TempKind::Global { .. })
                && !self.rs.temps[o as usize].in_mem
            {
                self.store_temp(Temp(o))?;
            }
        }
        Ok(())
    }

    /// Stores every dirty global and local (basic-block boundary).
    pub(crate) fn sync_boundary(&mut self) -> Result<(), Fail> {
        for r in regs_of(self.rs.used) {
            let o = self.rs.owner[r as usize];
            if o != NONE
                && matches!(
                    self.block.temps[o as usize].kind,
                    TempKind::Global { .. } | TempKind::Local
                )
                && !self.rs.temps[o as usize].in_mem
            {
                self.store_temp(Temp(o))?;
            }
        }
        Ok(())
    }

    /// State at a label: nothing in registers, globals and locals in memory (every path into
    /// a label syncs them first).
    pub(crate) fn at_label(&mut self) {
        self.forget_all();
        for l in &mut self.rs.temps[1..=self.block.globals.len()] {
            l.in_mem = true;
        }
        for &t in self.locals {
            self.rs.temps[t as usize].in_mem = true;
        }
    }

    /// Forgets every register binding (after a sync: values are in memory or dead).
    /// The host register holding the global at CPU-state `offset`, if one does.
    pub(crate) fn global_reg(&self, offset: u32) -> Option<Reg> {
        regs_of(self.rs.used).find(|&r| {
            let o = self.rs.owner[r as usize];
            o != NONE
                && matches!(self.block.temps[o as usize].kind,
                            TempKind::Global { offset: g, .. } if g == offset)
        })
    }

    pub(crate) fn forget_all(&mut self) {
        for r in regs_of(self.rs.used) {
            let o = self.rs.owner[r as usize];
            self.rs.temps[o as usize].reg = NO_REG;
            self.rs.owner[r as usize] = NONE;
        }
        self.rs.used = 0;
    }

    /// Forgets the registers of globals (after a helper that writes globals).
    pub(crate) fn forget_globals(&mut self) {
        for r in regs_of(self.rs.used) {
            let o = self.rs.owner[r as usize];
            if matches!(self.block.temps[o as usize].kind, TempKind::Global { .. }) {
                self.rs.temps[o as usize].reg = NO_REG;
                self.rs.temps[o as usize].in_mem = true;
                self.rs.set_owner(r, NONE);
            }
        }
    }
}
