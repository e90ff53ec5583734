//! Known bits: for one value, which bits are certainly 0 and which certainly 1.
//!
//! The transfer functions here are deliberately simple (one pass, no iteration) and each is
//! exact about what it claims: a bit is only reported known when every input consistent with
//! the operands' known bits gives it that value. The optimizer turns fully known results into
//! constants, so an over-claim here would be a miscompile; the tests in `opt` check these
//! against the `eval` functions on random values.

use crate::op::{BinOp, UnOp};
use crate::types::{Cond, Type};

/// Known bits of a value of some type. Invariants: `zero & one == 0`, and `zero` includes
/// every bit above the type (I32 values are held zero-extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bits {
    /// Bits known to be 0.
    pub zero: u64,
    /// Bits known to be 1.
    pub one: u64,
}

/// The low `n` bits set (`n` may be 64).
pub(crate) const fn low_mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1 << n) - 1
    }
}

impl Bits {
    /// Nothing known but the type.
    pub fn unknown(ty: Type) -> Bits {
        Bits {
            zero: !ty.mask(),
            one: 0,
        }
    }

    /// Every bit known.
    pub fn constant(ty: Type, v: u64) -> Bits {
        let v = v & ty.mask();
        Bits { zero: !v, one: v }
    }

    /// Clamps raw masks to the type and restores the invariants.
    fn new(ty: Type, zero: u64, one: u64) -> Bits {
        let one = one & ty.mask();
        Bits {
            zero: (zero & !one) | !ty.mask(),
            one,
        }
    }

    /// The value, if every bit is known.
    pub fn value(self) -> Option<u64> {
        (self.zero | self.one == u64::MAX).then_some(self.one)
    }

    /// The largest value (unsigned) the bits allow.
    pub fn max(self) -> u64 {
        !self.zero
    }

    /// The smallest value (unsigned) the bits allow.
    pub fn min(self) -> u64 {
        self.one
    }

    /// Number of low bits known zero.
    fn low_zeros(self) -> u32 {
        self.zero.trailing_ones()
    }

    /// Number of bits needed for the largest possible value.
    fn width(self) -> u32 {
        64 - self.max().leading_zeros()
    }

    /// Known bits of the low `n` bits extended (zero or sign) to `ty`.
    pub fn extend(self, ty: Type, n: u32, signed: bool) -> Bits {
        let lm = low_mask(n);
        if !signed {
            return Bits::new(ty, self.zero | !lm, self.one & lm);
        }
        let sign = 1u64 << (n - 1);
        if self.zero & sign != 0 {
            Bits::new(ty, self.zero | !lm, self.one & lm)
        } else if self.one & sign != 0 {
            Bits::new(ty, self.zero & lm, self.one | !lm)
        } else {
            let below = lm >> 1;
            Bits::new(ty, self.zero & below, self.one & below)
        }
    }

    /// Known bits of `a op b`.
    pub fn binary(op: BinOp, ty: Type, a: Bits, b: Bits) -> Bits {
        if let (Some(x), Some(y)) = (a.value(), b.value()) {
            return Bits::constant(ty, op.eval(ty, x, y));
        }
        let m = ty.mask();
        let width = ty.bits();
        let count = b.value().map(|c| (c as u32) & (width - 1));
        match op {
            BinOp::And => Bits::new(ty, a.zero | b.zero, a.one & b.one),
            BinOp::Or => Bits::new(ty, a.zero & b.zero, a.one | b.one),
            BinOp::Xor => Bits::new(
                ty,
                (a.zero & b.zero) | (a.one & b.one),
                (a.zero & b.one) | (a.one & b.zero),
            ),
            BinOp::AndNot => Bits::new(ty, a.zero | b.one, a.one & b.zero),
            BinOp::Add => {
                // Carries never reach below both operands' low zeros, and the sum of values
                // below 2^p and 2^q is below 2^(max(p, q) + 1).
                let low = a.low_zeros().min(b.low_zeros());
                let high = a.width().max(b.width()) + 1;
                Bits::new(ty, low_mask(low) | !low_mask(high), 0)
            }
            BinOp::Sub => Bits::new(ty, low_mask(a.low_zeros().min(b.low_zeros())), 0),
            BinOp::Mul => Bits::new(ty, low_mask(a.low_zeros() + b.low_zeros()), 0),
            BinOp::Shl => match count {
                Some(c) => Bits::new(
                    ty,
                    op.eval(ty, a.zero, c as u64) | low_mask(c),
                    op.eval(ty, a.one, c as u64),
                ),
                None => Bits::new(ty, low_mask(a.low_zeros()), 0),
            },
            BinOp::Shr => match count {
                Some(c) => Bits::new(
                    ty,
                    ((a.zero & m) >> c) | !(m >> c),
                    op.eval(ty, a.one, c as u64),
                ),
                None => Bits::new(ty, !low_mask(a.width()), 0),
            },
            BinOp::Sar => match count {
                // Shifting the known-zero and known-one masks arithmetically copies the sign
                // bit's knowledge into the vacated bits, which is exactly what happens to it.
                Some(c) => Bits::new(
                    ty,
                    op.eval(ty, a.zero, c as u64),
                    op.eval(ty, a.one, c as u64),
                ),
                None => Bits::unknown(ty),
            },
            BinOp::Rotl | BinOp::Rotr => match count {
                Some(c) => Bits::new(
                    ty,
                    op.eval(ty, a.zero, c as u64),
                    op.eval(ty, a.one, c as u64),
                ),
                None => Bits::unknown(ty),
            },
            BinOp::MulHs
            | BinOp::MulHu
            | BinOp::MulHsu
            | BinOp::DivS
            | BinOp::DivU
            | BinOp::RemS
            | BinOp::RemU => Bits::unknown(ty),
        }
    }

    /// Known bits of `op a`.
    pub fn unary(op: UnOp, ty: Type, a: Bits) -> Bits {
        if let Some(x) = a.value() {
            return Bits::constant(ty, op.eval(ty, x));
        }
        match op {
            UnOp::Not => Bits::new(ty, a.one, a.zero),
            UnOp::Bswap => Bits::new(ty, op.eval(ty, a.zero), op.eval(ty, a.one)),
            // -x keeps the trailing zeros of x.
            UnOp::Neg => Bits::new(ty, low_mask(a.low_zeros()), 0),
            // Counts are at most 64.
            UnOp::Clz | UnOp::Ctz | UnOp::Ctpop => Bits::new(ty, !0x7f, 0),
        }
    }

    /// Whether `cond(a, b)` is decided by the known bits alone.
    pub fn cond(cond: Cond, ty: Type, a: Bits, b: Bits) -> Option<bool> {
        if let (Some(x), Some(y)) = (a.value(), b.value()) {
            return Some(cond.eval(ty, x, y));
        }
        let ltu = |a: Bits, b: Bits| {
            if a.max() < b.min() {
                Some(true)
            } else if a.min() >= b.max() {
                Some(false)
            } else {
                None
            }
        };
        // Signed order: values of different known signs are ordered by sign; values of the
        // same known sign are ordered as unsigned.
        let sign = 1u64 << (ty.bits() - 1);
        let lt = |a: Bits, b: Bits| {
            let neg = |x: Bits| {
                if x.one & sign != 0 {
                    Some(true)
                } else if x.zero & sign != 0 {
                    Some(false)
                } else {
                    None
                }
            };
            match (neg(a)?, neg(b)?) {
                (na, nb) if na != nb => Some(na),
                _ => ltu(a, b),
            }
        };
        let differ = (a.one & b.zero) | (a.zero & b.one) != 0;
        let not = |x: Option<bool>| x.map(|v| !v);
        match cond {
            Cond::Eq => differ.then_some(false),
            Cond::Ne => differ.then_some(true),
            Cond::Ltu => ltu(a, b),
            Cond::Geu => not(ltu(a, b)),
            Cond::Gtu => ltu(b, a),
            Cond::Leu => not(ltu(b, a)),
            Cond::Lt => lt(a, b),
            Cond::Ge => not(lt(a, b)),
            Cond::Gt => lt(b, a),
            Cond::Le => not(lt(b, a)),
            Cond::TstEq | Cond::TstNe => {
                let tst = if a.max() & b.max() == 0 {
                    Some(true)
                } else if a.one & b.one != 0 {
                    Some(false)
                } else {
                    None
                };
                if cond == Cond::TstEq {
                    tst
                } else {
                    not(tst)
                }
            }
        }
    }
}
