//! The forward pass: copy and constant propagation, constant folding, algebraic identities and
//! known-bits simplification, all in one walk over the ops.
//!
//! What the pass knows about each temp is valid from its definition to the next label (where
//! control may arrive from elsewhere) or unconditional branch/terminal, so no iteration over
//! the control-flow graph is needed. Knowledge is dropped cheaply by bumping an epoch instead
//! of clearing tables. A copy `dst = src` is remembered with the *version* (write count) of
//! `src`; any later write to `src` bumps its version and silently invalidates every copy of
//! it. Helpers that write globals bump the versions of all globals.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::bits::Bits;
use crate::op::{BinOp, Op};
use crate::types::{Cond, Label, Temp, TempKind, Type};
use crate::{deposit, extract, Block, HelperFlags};

/// What is known about one temp, valid while `epoch` is the current epoch.
#[derive(Clone, Copy)]
struct Info {
    epoch: u32,
    bits: Bits,
    /// `Temp::ENV` for "not a copy".
    copy: Temp,
    copy_version: u32,
}

struct Fold {
    info: Vec<Info>,
    version: Vec<u32>,
    epoch: u32,
    consts: HashMap<(Type, u64), Temp, BuildHasherDefault<MulHasher>>,
    /// Labels already placed (a branch to one of them goes backward).
    placed: Vec<bool>,
    nglobals: usize,
    out: Vec<Op>,
}

/// Runs the forward pass over `block`.
pub(super) fn fold(block: &mut Block) {
    let n = block.temps.len();
    let mut consts = HashMap::with_capacity_and_hasher(n / 2, Default::default());
    for (i, t) in block.temps.iter().enumerate() {
        if let TempKind::Const(v) = t.kind {
            consts.entry((t.ty, v)).or_insert(Temp(i as u32));
        }
    }
    let ops = std::mem::take(&mut block.ops);
    let mut f = Fold {
        info: vec![
            Info {
                epoch: 0,
                bits: Bits { zero: 0, one: 0 },
                copy: Temp::ENV,
                copy_version: 0,
            };
            n
        ],
        version: vec![0; n],
        epoch: 1,
        consts,
        placed: vec![false; block.num_labels as usize],
        nglobals: block.globals.len(),
        out: Vec::with_capacity(ops.len()),
    };
    for op in &ops {
        f.op(block, *op);
    }
    block.ops = f.out;
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
    fn bits(&self, b: &Block, t: Temp) -> Bits {
        let info = b.temps[t.index()];
        match info.kind {
            TempKind::Const(v) => Bits::constant(info.ty, v),
            _ if self.info[t.index()].epoch == self.epoch => self.info[t.index()].bits,
            _ => Bits::unknown(info.ty),
        }
    }

    fn constant(&mut self, b: &mut Block, ty: Type, v: u64) -> Temp {
        let v = v & ty.mask();
        *self
            .consts
            .entry((ty, v))
            .or_insert_with(|| b.add_temp(ty, TempKind::Const(v)))
    }

    /// The temp a use of `t` should read: a constant if `t`'s value is known, the source of
    /// a still-valid copy, else `t` itself.
    fn resolve(&mut self, b: &mut Block, t: Temp) -> Temp {
        let info = b.temps[t.index()];
        if matches!(info.kind, TempKind::Const(_) | TempKind::Env) {
            return t;
        }
        let i = self.info[t.index()];
        if i.epoch != self.epoch {
            return t;
        }
        if let Some(v) = i.bits.value() {
            return self.constant(b, info.ty, v);
        }
        if i.copy != Temp::ENV && self.version[i.copy.index()] == i.copy_version {
            return i.copy;
        }
        t
    }

    /// Records a write of `dst`.
    fn define(&mut self, dst: Temp, bits: Bits, copy: Option<Temp>) {
        self.version[dst.index()] += 1;
        let copy = copy.unwrap_or(Temp::ENV);
        self.info[dst.index()] = Info {
            epoch: self.epoch,
            bits,
            copy,
            copy_version: self.version[copy.index()],
        };
    }

    /// Forgets everything about temps that may change or arrive from elsewhere.
    fn forget_all(&mut self) {
        self.epoch += 1;
    }

    fn emit(&mut self, op: Op) {
        self.out.push(op);
    }

    /// `dst = src`, or nothing when they are the same temp.
    fn mov(&mut self, b: &Block, ty: Type, dst: Temp, src: Temp) {
        if dst == src {
            return;
        }
        let bits = self.bits(b, src);
        let copy = (!matches!(b.temps[src.index()].kind, TempKind::Const(_))).then_some(src);
        self.emit(Op::Mov { ty, dst, src });
        self.define(dst, bits, copy);
    }

    fn movi(&mut self, b: &mut Block, dst: Temp, v: u64) {
        let ty = b.ty(dst);
        let c = self.constant(b, ty, v);
        self.emit(Op::Mov { ty, dst, src: c });
        self.define(dst, Bits::constant(ty, v), None);
    }

    /// Emits `op` writing `dst`, or a constant move when `bits` knows the whole result.
    fn result(&mut self, b: &mut Block, op: Op, dst: Temp, bits: Bits) {
        match bits.value() {
            Some(v) => self.movi(b, dst, v),
            None => {
                self.emit(op);
                self.define(dst, bits, None);
            }
        }
    }

    fn op(&mut self, b: &mut Block, mut op: Op) {
        op.for_each_use_mut(|t| *t = self.resolve(b, *t));
        match op {
            Op::Mov { ty, dst, src } => self.mov(b, ty, dst, src),
            Op::Binary {
                op: bop,
                ty,
                dst,
                mut a,
                b: mut y,
            } => {
                // Constants second, so that the identities below need only look at `y`.
                if bop.is_commutative() && self.bits(b, a).value().is_some() {
                    std::mem::swap(&mut a, &mut y);
                }
                let (ba, by) = (self.bits(b, a), self.bits(b, y));
                if let Some(src) = binary_identity(bop, ty, a, y, ba, by) {
                    return self.mov(b, ty, dst, src);
                }
                if a == y && matches!(bop, BinOp::Sub | BinOp::Xor | BinOp::AndNot) {
                    return self.movi(b, dst, 0);
                }
                let bits = Bits::binary(bop, ty, ba, by);
                let op = Op::Binary {
                    op: bop,
                    ty,
                    dst,
                    a,
                    b: y,
                };
                self.result(b, op, dst, bits);
            }
            Op::Unary {
                op: uop,
                ty,
                dst,
                src,
            } => {
                let bits = Bits::unary(uop, ty, self.bits(b, src));
                self.result(b, op, dst, bits);
            }
            Op::Ext { from, ty, dst, src } => {
                let bs = self.bits(b, src);
                let bits = bs.extend(ty, from.bits(), from.signed());
                // Extending a value that already has the extension's form is a copy.
                if b.ty(src) == ty && is_identity(ty, from.bits(), bs, bits) {
                    return self.mov(b, ty, dst, src);
                }
                self.result(b, op, dst, bits);
            }
            Op::Trunc { dst, src } => {
                let bits = self.bits(b, src).extend(Type::I32, 32, false);
                self.result(b, op, dst, bits);
            }
            Op::Extract {
                ty,
                dst,
                src,
                pos,
                len,
                signed,
            } => {
                let bs = self.bits(b, src);
                if let Some(v) = bs.value() {
                    return self.movi(b, dst, extract(ty, v, pos, len, signed));
                }
                let shifted = Bits {
                    zero: bs.zero >> pos,
                    one: bs.one >> pos,
                };
                let bits = shifted.extend(ty, len as u32, signed);
                if pos == 0 && is_identity(ty, len as u32, bs, bits) {
                    return self.mov(b, ty, dst, src);
                }
                self.result(b, op, dst, bits);
            }
            Op::Deposit {
                ty,
                dst,
                base,
                val,
                pos,
                len,
            } => {
                let (bb, bv) = (self.bits(b, base), self.bits(b, val));
                if let (Some(x), Some(y)) = (bb.value(), bv.value()) {
                    return self.movi(b, dst, deposit(ty, x, y, pos, len));
                }
                if len as u32 == ty.bits() && b.ty(val) == ty {
                    return self.mov(b, ty, dst, val);
                }
                let field = super::bits::low_mask(len as u32) << pos;
                let bits = Bits {
                    zero: (bb.zero & !field) | ((bv.zero << pos) & field) | !ty.mask(),
                    one: ((bb.one & !field) | ((bv.one << pos) & field)) & ty.mask(),
                };
                self.result(b, op, dst, bits);
            }
            Op::SetCond {
                cond,
                ty,
                dst,
                a,
                b: y,
            } => match self.decide(b, cond, ty, a, y) {
                Some(v) => self.movi(b, dst, v as u64),
                None => {
                    let dty = b.ty(dst);
                    self.emit(op);
                    self.define(dst, Bits::new_unsigned(dty, 1), None);
                }
            },
            Op::MovCond {
                cond,
                ty,
                dst,
                a,
                b: y,
                t,
                f,
            } => {
                let pick = if t == f {
                    Some(t)
                } else {
                    self.decide(b, cond, ty, a, y)
                        .map(|c| if c { t } else { f })
                };
                match pick {
                    Some(src) => self.mov(b, ty, dst, src),
                    None => {
                        let (bt, bf) = (self.bits(b, t), self.bits(b, f));
                        self.emit(op);
                        let bits = Bits {
                            zero: bt.zero & bf.zero,
                            one: bt.one & bf.one,
                        };
                        self.define(dst, bits, None);
                    }
                }
            }
            Op::BrCond {
                cond,
                ty,
                a,
                b: y,
                label,
            } => match self.decide(b, cond, ty, a, y) {
                Some(false) => {}
                // A constant backward branch is an endless loop unless something inside
                // leaves the block; keep its shape so the block still ends in a terminal.
                Some(true) if !self.placed(label) => {
                    self.emit(Op::Br(label));
                    self.forget_all();
                }
                _ => self.emit(op),
            },
            Op::Load { dst, mop, .. } | Op::EnvLoad { dst, mop, .. } => {
                let dty = b.ty(dst);
                let bits = if mop.signed {
                    Bits::unknown(dty)
                } else {
                    Bits::new_unsigned(dty, mop.size.bits())
                };
                self.emit(op);
                self.define(dst, bits, None);
            }
            Op::Call { helper, ret, .. } => {
                self.emit(op);
                if helper.flags.contains(HelperFlags::WRITES_GLOBALS) {
                    for g in 1..=self.nglobals {
                        self.version[g] += 1;
                        self.info[g].epoch = 0;
                    }
                }
                if let Some(r) = ret {
                    let ty = b.ty(r);
                    self.define(r, Bits::unknown(ty), None);
                }
            }
            Op::SetLabel(l) => {
                if let Some(p) = self.placed.get_mut(l.index()) {
                    *p = true;
                }
                self.forget_all();
                self.emit(op);
            }
            Op::Br(_) | Op::GotoTb { .. } | Op::ExitTb { .. } | Op::LookupAndGoto => {
                self.forget_all();
                self.emit(op);
            }
            Op::Store { .. } | Op::EnvStore { .. } | Op::Fence | Op::InsnStart { .. } => {
                self.emit(op)
            }
        }
    }

    fn placed(&self, l: Label) -> bool {
        self.placed.get(l.index()).copied().unwrap_or(true)
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

/// A multiply-rotate hasher for the constant table: its keys are small and not chosen by
/// anyone hostile (they come from the frontend), and SipHash would dominate the pass.
#[derive(Default)]
struct MulHasher(u64);

impl Hasher for MulHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
