//! The forward pass: copy and constant propagation, constant folding, algebraic identities and
//! known-bits simplification, all in one walk over the ops.
//!
//! What the pass knows about each temp is valid from its definition to the next label (where
//! control may arrive from elsewhere) or unconditional branch/terminal, so no iteration over
//! the control-flow graph is needed. Knowledge is dropped cheaply by bumping an epoch instead
//! of clearing tables. A copy `dst = src` is remembered with the *version* (write count) of
//! `src`; any later write to `src` bumps its version and silently invalidates every copy of
//! it. Helpers that write globals bump the versions of all globals.

use super::bits::Bits;
use super::NO_POS;
use crate::op::{BinOp, Op};
use crate::types::{Cond, Label, Temp, TempKind, Type};
use crate::{deposit, extract, Block, HelperFlags};

/// What is known about one temp, valid while `epoch` is the current epoch.
#[derive(Clone, Copy)]
struct Info {
    epoch: u32,
    /// Write count of the temp: a copy of it is valid while this equals its `copy_version`.
    /// Never reset (only compared for equality), so it survives from block to block.
    version: u32,
    /// A temp holding the same value (`Temp::ENV` for none): the source of a `mov`, or the
    /// constant it moved.
    copy: Temp,
    copy_version: u32,
    bits: Bits,
}

const FRESH: Info = Info {
    epoch: 0,
    version: 0,
    copy: Temp::ENV,
    copy_version: 0,
    bits: Bits { zero: 0, one: 0 },
};

/// The forward pass's state, kept from block to block so that a block costs no allocation:
/// per-temp knowledge is invalidated by moving to a new epoch rather than by clearing.
pub(super) struct Fold {
    info: Vec<Info>,
    /// The current epoch; 0 is never current (it marks "nothing known").
    epoch: u32,
    consts: ConstTable,
    nglobals: usize,
}

impl Fold {
    pub fn new() -> Fold {
        Fold {
            info: Vec::new(),
            epoch: 0,
            consts: ConstTable::default(),
            nglobals: 0,
        }
    }

    /// Runs the forward pass over `block`, rewriting its ops in place (each op becomes at most
    /// one op). `label_pos[l]` receives the index of `SetLabel(l)` in the result (or
    /// [`NO_POS`]). Returns whether the block has labels, i.e. whether control flow needs
    /// cleaning up.
    pub fn run(&mut self, block: &mut Block, label_pos: &mut Vec<u32>) -> bool {
        let n = block.temps.len();
        if self.info.len() < n {
            self.info.resize(n, FRESH);
        }
        self.forget_all();
        self.nglobals = block.globals.len();
        label_pos.clear();
        label_pos.resize(block.num_labels as usize, NO_POS);
        let mut ops = std::mem::take(&mut block.ops);
        self.consts.reset(n + ops.len());
        let mut labels = false;
        let mut w = 0;
        for i in 0..ops.len() {
            // Rewritten in place: building the op elsewhere and copying it costs a
            // store-forwarding stall per op, a large share of the whole pass.
            if !self.op(block, &mut ops[i], label_pos) {
                continue;
            }
            if let Op::SetLabel(l) = ops[i] {
                if let Some(p) = label_pos.get_mut(l.index()) {
                    *p = w as u32;
                }
                labels = true;
            }
            if w != i {
                ops[w] = ops[i];
            }
            w += 1;
        }
        ops.truncate(w);
        block.ops = ops;
        labels
    }
}

/// Whether `l` was placed before the current op (a branch to it goes backward). Unknown
/// labels count as placed, so nothing is assumed about them.
fn placed(label_pos: &[u32], l: Label) -> bool {
    label_pos.get(l.index()).is_none_or(|&p| p != NO_POS)
}

/// The result of `cond` on two copies of the same value, when it does not depend on it.
fn same_operands(cond: Cond) -> Option<bool> {
    match cond {
        Cond::Eq | Cond::Ge | Cond::Le | Cond::Geu | Cond::Leu => Some(true),
        Cond::Ne | Cond::Lt | Cond::Gt | Cond::Ltu | Cond::Gtu => Some(false),
        Cond::TstEq | Cond::TstNe => None,
    }
}

impl Fold {
    /// What is known about the bits of `t`. Constants and `Temp::ENV` are never defined, so
    /// their entries are never current and only they need the temp table.
    #[inline(always)]
    fn bits(&self, b: &Block, t: Temp) -> Bits {
        let i = &self.info[t.index()];
        if i.epoch == self.epoch {
            return i.bits;
        }
        let info = b.temps[t.index()];
        match info.kind {
            TempKind::Const(v) => Bits::constant(info.ty, v),
            _ => Bits::unknown(info.ty),
        }
    }

    fn constant(&mut self, b: &mut Block, ty: Type, v: u64) -> Temp {
        let t = self.consts.get_or_insert(b, ty, v & ty.mask());
        if self.info.len() < b.temps.len() {
            self.info.resize(b.temps.len(), FRESH);
        }
        t
    }

    /// The temp a use of `t` should read: a constant if `t`'s value is known, the source of
    /// a still-valid copy, else `t` itself. (Constants and `Temp::ENV` are never defined, so
    /// their entries are never current: they stay themselves.)
    #[inline(always)]
    fn resolve(&mut self, b: &mut Block, t: Temp) -> Temp {
        let i = self.info[t.index()];
        if i.epoch != self.epoch {
            return t;
        }
        let copy_valid = i.copy != Temp::ENV && self.info[i.copy.index()].version == i.copy_version;
        if let Some(v) = i.bits.value() {
            // The constant it was moved from, if that is how it got its value.
            if copy_valid && matches!(b.temps[i.copy.index()].kind, TempKind::Const(_)) {
                return i.copy;
            }
            return self.constant(b, b.temps[t.index()].ty, v);
        }
        if copy_valid {
            return i.copy;
        }
        t
    }

    /// Records a write of `dst`.
    #[inline(always)]
    fn define(&mut self, dst: Temp, bits: Bits, copy: Option<Temp>) {
        let copy = copy.unwrap_or(Temp::ENV);
        let copy_version = self.info[copy.index()].version;
        let i = &mut self.info[dst.index()];
        i.version = i.version.wrapping_add(1);
        i.epoch = self.epoch;
        i.bits = bits;
        i.copy = copy;
        i.copy_version = copy_version;
    }

    /// Forgets everything about temps that may change or arrive from elsewhere.
    fn forget_all(&mut self) {
        if self.epoch == u32::MAX {
            self.info.iter_mut().for_each(|i| i.epoch = 0);
            self.epoch = 0;
        }
        self.epoch += 1;
    }

    /// Makes `op` the copy `dst = src`; false (delete it) when they are the same temp.
    #[inline(always)]
    fn mov(&mut self, b: &Block, op: &mut Op, ty: Type, dst: Temp, src: Temp) -> bool {
        if dst == src {
            return false;
        }
        let bits = self.bits(b, src);
        self.define(dst, bits, Some(src));
        *op = Op::Mov { ty, dst, src };
        true
    }

    /// Makes `op` the constant move `dst = v`.
    fn movi(&mut self, b: &mut Block, op: &mut Op, dst: Temp, v: u64) -> bool {
        let ty = b.ty(dst);
        let c = self.constant(b, ty, v);
        self.define(dst, Bits::constant(ty, v), Some(c));
        *op = Op::Mov { ty, dst, src: c };
        true
    }

    /// Keeps `op` writing `dst`, or makes it a constant move when `bits` knows the whole
    /// result.
    #[inline(always)]
    fn result(&mut self, b: &mut Block, op: &mut Op, dst: Temp, bits: Bits) -> bool {
        match bits.value() {
            Some(v) => self.movi(b, op, dst, v),
            None => {
                self.define(dst, bits, None);
                true
            }
        }
    }

    /// Rewrites `op` in place; false when it goes away.
    ///
    /// Each arm resolves its own operands (rather than a generic walk over the uses first),
    /// so that each op costs one dispatch on its kind: mispredicted dispatches are most of
    /// what a pass over ops costs.
    fn op(&mut self, b: &mut Block, op: &mut Op, label_pos: &[u32]) -> bool {
        match op {
            Op::Mov { ty, dst, src } => {
                let (ty, dst) = (*ty, *dst);
                let src = self.resolve(b, *src);
                self.mov(b, op, ty, dst, src)
            }
            Op::Binary {
                op: bop,
                ty,
                dst,
                a,
                b: y,
            } => {
                let (bop, ty, dst) = (*bop, *ty, *dst);
                let mut a = self.resolve(b, *a);
                let mut y = self.resolve(b, *y);
                // Constants second, so that the identities below need only look at `y`.
                if bop.is_commutative() && self.bits(b, a).value().is_some() {
                    std::mem::swap(&mut a, &mut y);
                }
                let (ba, by) = (self.bits(b, a), self.bits(b, y));
                if let Some(src) = binary_identity(bop, ty, a, y, ba, by) {
                    return self.mov(b, op, ty, dst, src);
                }
                if a == y && matches!(bop, BinOp::Sub | BinOp::Xor | BinOp::AndNot) {
                    return self.movi(b, op, dst, 0);
                }
                let bits = Bits::binary(bop, ty, ba, by);
                *op = Op::Binary {
                    op: bop,
                    ty,
                    dst,
                    a,
                    b: y,
                };
                self.result(b, op, dst, bits)
            }
            Op::Unary {
                op: uop,
                ty,
                dst,
                src,
            } => {
                let (uop, ty, dst) = (*uop, *ty, *dst);
                *src = self.resolve(b, *src);
                let bits = Bits::unary(uop, ty, self.bits(b, *src));
                self.result(b, op, dst, bits)
            }
            Op::Ext { from, ty, dst, src } => {
                let (from, ty, dst) = (*from, *ty, *dst);
                *src = self.resolve(b, *src);
                let src = *src;
                let bs = self.bits(b, src);
                let bits = bs.extend(ty, from.bits(), from.signed());
                // Extending a value that already has the extension's form is a copy.
                if b.ty(src) == ty && is_identity(ty, from.bits(), bs, bits) {
                    return self.mov(b, op, ty, dst, src);
                }
                self.result(b, op, dst, bits)
            }
            Op::Trunc { dst, src } => {
                let dst = *dst;
                *src = self.resolve(b, *src);
                let bits = self.bits(b, *src).extend(Type::I32, 32, false);
                self.result(b, op, dst, bits)
            }
            Op::Extract {
                ty,
                dst,
                src,
                pos,
                len,
                signed,
            } => {
                let (ty, dst, pos, len, signed) = (*ty, *dst, *pos, *len, *signed);
                *src = self.resolve(b, *src);
                let src = *src;
                let bs = self.bits(b, src);
                if let Some(v) = bs.value() {
                    return self.movi(b, op, dst, extract(ty, v, pos, len, signed));
                }
                let shifted = Bits {
                    zero: bs.zero >> pos,
                    one: bs.one >> pos,
                };
                let bits = shifted.extend(ty, len as u32, signed);
                if pos == 0 && is_identity(ty, len as u32, bs, bits) {
                    return self.mov(b, op, ty, dst, src);
                }
                self.result(b, op, dst, bits)
            }
            Op::Deposit {
                ty,
                dst,
                base,
                val,
                pos,
                len,
            } => {
                let (ty, dst, pos, len) = (*ty, *dst, *pos, *len);
                *base = self.resolve(b, *base);
                *val = self.resolve(b, *val);
                let (base, val) = (*base, *val);
                let (bb, bv) = (self.bits(b, base), self.bits(b, val));
                if let (Some(x), Some(y)) = (bb.value(), bv.value()) {
                    return self.movi(b, op, dst, deposit(ty, x, y, pos, len));
                }
                if len as u32 == ty.bits() && b.ty(val) == ty {
                    return self.mov(b, op, ty, dst, val);
                }
                let field = super::bits::low_mask(len as u32) << pos;
                let bits = Bits {
                    zero: (bb.zero & !field) | ((bv.zero << pos) & field) | !ty.mask(),
                    one: ((bb.one & !field) | ((bv.one << pos) & field)) & ty.mask(),
                };
                self.result(b, op, dst, bits)
            }
            Op::SetCond {
                cond,
                ty,
                dst,
                a,
                b: y,
            } => {
                let (cond, ty, dst) = (*cond, *ty, *dst);
                *a = self.resolve(b, *a);
                *y = self.resolve(b, *y);
                match self.decide(b, cond, ty, *a, *y) {
                    Some(v) => self.movi(b, op, dst, v as u64),
                    None => {
                        let dty = b.ty(dst);
                        self.define(dst, Bits::new_unsigned(dty, 1), None);
                        true
                    }
                }
            }
            Op::MovCond {
                cond,
                ty,
                dst,
                a,
                b: y,
                t,
                f,
            } => {
                let (cond, ty, dst) = (*cond, *ty, *dst);
                *a = self.resolve(b, *a);
                *y = self.resolve(b, *y);
                *t = self.resolve(b, *t);
                *f = self.resolve(b, *f);
                let (a, y, t, f) = (*a, *y, *t, *f);
                let pick = if t == f {
                    Some(t)
                } else {
                    self.decide(b, cond, ty, a, y)
                        .map(|c| if c { t } else { f })
                };
                match pick {
                    Some(src) => self.mov(b, op, ty, dst, src),
                    None => {
                        let (bt, bf) = (self.bits(b, t), self.bits(b, f));
                        let bits = Bits {
                            zero: bt.zero & bf.zero,
                            one: bt.one & bf.one,
                        };
                        self.define(dst, bits, None);
                        true
                    }
                }
            }
            Op::BrCond {
                cond,
                ty,
                a,
                b: y,
                label,
            } => {
                let (cond, ty, label) = (*cond, *ty, *label);
                *a = self.resolve(b, *a);
                *y = self.resolve(b, *y);
                match self.decide(b, cond, ty, *a, *y) {
                    Some(false) => false,
                    // A constant backward branch is an endless loop unless something inside
                    // leaves the block; keep its shape so the block still ends in a terminal.
                    Some(true) if !placed(label_pos, label) => {
                        self.forget_all();
                        *op = Op::Br(label);
                        true
                    }
                    _ => true,
                }
            }
            Op::Load { dst, addr, mop, .. } => {
                let (dst, mop) = (*dst, *mop);
                *addr = self.resolve(b, *addr);
                self.load(b, dst, mop);
                true
            }
            Op::EnvLoad { dst, mop, .. } => {
                let (dst, mop) = (*dst, *mop);
                self.load(b, dst, mop);
                true
            }
            Op::Store { val, addr, .. } => {
                *val = self.resolve(b, *val);
                *addr = self.resolve(b, *addr);
                true
            }
            Op::EnvStore { val, .. } => {
                *val = self.resolve(b, *val);
                true
            }
            Op::Call {
                helper,
                args,
                nargs,
                ret,
            } => {
                for a in &mut args[..*nargs as usize] {
                    *a = self.resolve(b, *a);
                }
                let (flags, ret) = (helper.flags, *ret);
                if flags.contains(HelperFlags::WRITES_GLOBALS) {
                    for i in &mut self.info[1..=self.nglobals] {
                        i.version = i.version.wrapping_add(1);
                        i.epoch = 0;
                    }
                }
                if let Some(r) = ret {
                    let ty = b.ty(r);
                    self.define(r, Bits::unknown(ty), None);
                }
                true
            }
            Op::SetLabel(_)
            | Op::Br(_)
            | Op::GotoTb { .. }
            | Op::ExitTb { .. }
            | Op::LookupAndGoto => {
                self.forget_all();
                true
            }
            Op::Fence | Op::InsnStart { .. } => true,
        }
    }

    /// Records the result of a guest or state load.
    fn load(&mut self, b: &Block, dst: Temp, mop: crate::MemOp) {
        let dty = b.ty(dst);
        let bits = if mop.signed {
            Bits::unknown(dty)
        } else {
            Bits::new_unsigned(dty, mop.size.bits())
        };
        self.define(dst, bits, None);
    }

    /// The value of `cond(a, b)` if it is known now.
    fn decide(&self, b: &Block, cond: Cond, ty: Type, a: Temp, y: Temp) -> Option<bool> {
        if a == y {
            if let Some(v) = same_operands(cond) {
                return Some(v);
            }
        }
        Bits::cond(cond, ty, self.bits(b, a), self.bits(b, y))
    }
}

/// The operand `a op b` equals, when an identity says so from the known bits (`b` holds the
/// constant operand of a commutative op).
fn binary_identity(op: BinOp, ty: Type, a: Temp, b: Temp, ba: Bits, bb: Bits) -> Option<Temp> {
    let zero = |x: Bits| x.max() == 0;
    let is = |x: Bits, v: u64| x.value() == Some(v & ty.mask());
    // A shift or rotate count is taken modulo the width.
    let count_zero = bb.max() & u64::from(ty.bits() - 1) == 0;
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Or | BinOp::Xor | BinOp::AndNot if zero(bb) => Some(a),
        BinOp::Add if zero(ba) => Some(b),
        // Every bit that may be set in one operand is known set in the other.
        BinOp::And if ba.max() & !bb.one == 0 => Some(a),
        BinOp::And if bb.max() & !ba.one == 0 => Some(b),
        BinOp::Or if bb.max() & !ba.one == 0 => Some(a),
        BinOp::Or if ba.max() & !bb.one == 0 => Some(b),
        BinOp::And | BinOp::Or if a == b => Some(a),
        BinOp::Mul | BinOp::DivU | BinOp::DivS if is(bb, 1) => Some(a),
        BinOp::Shl | BinOp::Shr | BinOp::Sar | BinOp::Rotl | BinOp::Rotr if count_zero => Some(a),
        _ => None,
    }
}

/// Whether extending the low `n` bits of a value with known bits `src` (giving `res`) leaves
/// it unchanged: every bit from `n` up is known in the result and known the same in `src`.
fn is_identity(ty: Type, n: u32, src: Bits, res: Bits) -> bool {
    let high = !super::bits::low_mask(n) & ty.mask();
    (res.zero | res.one) & high == high
        && res.zero & high & !src.zero == 0
        && res.one & high & !src.one == 0
}

impl Bits {
    /// A value of type `ty` below `2^bits`.
    fn new_unsigned(ty: Type, bits: u32) -> Bits {
        Bits {
            zero: !super::bits::low_mask(bits) | !ty.mask(),
            one: 0,
        }
    }
}

/// The block's constant temps by `(type, value)`, so that folded results reuse an existing
/// constant (constants are interned per block).
///
/// A block needs only a few lookups (about 3 in a 40-instruction block, most of them misses),
/// so the first lookup gathers the block's constants into a short list, branch-free (which
/// temps are constants follows no pattern a branch predictor could learn), and lookups scan
/// that list. A block that keeps looking up switches to an open-addressing table. Both stay
/// allocated from block to block; a table slot belongs to the current block only when its
/// stamp matches.
#[derive(Default)]
struct ConstTable {
    /// The block's constants (the first `len` entries), gathered on the first lookup.
    list: Vec<Entry>,
    len: usize,
    gathered: bool,
    lookups: u32,
    slots: Vec<Slot>,
    stamp: u32,
    /// Whether this block's constants are in `slots`.
    hashed: bool,
    /// Entries the table must hold at most for this block (temps + ops: each op adds at most
    /// one constant).
    bound: usize,
}

/// Lookups per block answered by scanning the list before building the table.
const SCANNED_LOOKUPS: u32 = 16;

#[derive(Clone, Copy, Default)]
struct Entry {
    /// The value; I32 and I64 constants of the same value are different keys.
    value: u64,
    temp: u32,
    ty64: bool,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    stamp: u32,
    entry: Entry,
}

impl ConstTable {
    /// Starts a new block of at most `bound` constants.
    fn reset(&mut self, bound: usize) {
        if self.stamp == u32::MAX {
            self.slots.iter_mut().for_each(|s| s.stamp = 0);
            self.stamp = 0;
        }
        self.stamp += 1;
        self.len = 0;
        self.gathered = false;
        self.lookups = 0;
        self.hashed = false;
        self.bound = bound;
    }

    /// The constant temp of `ty` holding `v` (already masked), created if the block has none.
    fn get_or_insert(&mut self, b: &mut Block, ty: Type, v: u64) -> Temp {
        let ty64 = ty == Type::I64;
        if !self.hashed {
            if !self.gathered {
                self.gather(b);
            }
            self.lookups += 1;
            if self.lookups <= SCANNED_LOOKUPS {
                let list = &self.list[..self.len];
                if let Some(e) = list.iter().find(|e| e.value == v && e.ty64 == ty64) {
                    return Temp(e.temp);
                }
                let t = b.add_temp(ty, TempKind::Const(v));
                self.push(Entry {
                    value: v,
                    temp: t.0,
                    ty64,
                });
                return t;
            }
            self.hash_list();
        }
        match self.probe(v, ty64) {
            Ok(t) => t,
            Err(i) => {
                let t = b.add_temp(ty, TempKind::Const(v));
                self.slots[i] = Slot {
                    stamp: self.stamp,
                    entry: Entry {
                        value: v,
                        temp: t.0,
                        ty64,
                    },
                };
                t
            }
        }
    }

    fn push(&mut self, e: Entry) {
        if self.len == self.list.len() {
            self.list.push(e);
        } else {
            self.list[self.len] = e;
        }
        self.len += 1;
    }

    /// Collects the block's constants into `list`.
    fn gather(&mut self, b: &Block) {
        self.gathered = true;
        if self.list.len() < b.temps.len() + 1 {
            self.list.resize(b.temps.len() + 1, Entry::default());
        }
        let mut len = 0;
        for (t, info) in b.temps.iter().enumerate() {
            // Written unconditionally, kept by advancing `len`: no branch on the kind.
            let (value, is_const) = match info.kind {
                TempKind::Const(v) => (v, 1),
                _ => (0, 0),
            };
            self.list[len] = Entry {
                value,
                temp: t as u32,
                ty64: info.ty == Type::I64,
            };
            len += is_const;
        }
        self.len = len;
    }

    /// Moves the list into the hash table (the first of equal constants wins, as in a scan).
    fn hash_list(&mut self) {
        self.hashed = true;
        // At most half full, so probe chains stay short and always end.
        let size = (2 * self.bound).next_power_of_two().max(64);
        if self.slots.len() < size {
            self.slots = vec![Slot::default(); size];
        }
        for k in 0..self.len {
            let e = self.list[k];
            if let Err(i) = self.probe(e.value, e.ty64) {
                self.slots[i] = Slot {
                    stamp: self.stamp,
                    entry: e,
                };
            }
        }
    }

    /// The temp for a key, or the free slot where it belongs.
    fn probe(&self, v: u64, ty64: bool) -> Result<Temp, usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash(v, ty64) & mask;
        loop {
            let s = &self.slots[i];
            if s.stamp != self.stamp {
                return Err(i);
            }
            if s.entry.value == v && s.entry.ty64 == ty64 {
                return Ok(Temp(s.entry.temp));
            }
            i = (i + 1) & mask;
        }
    }
}

/// Fibonacci hashing of a constant key; its top bits index the table.
fn hash(v: u64, ty64: bool) -> usize {
    ((v ^ ty64 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize
}
