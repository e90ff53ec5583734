//! Portable IEEE 754 binary32/binary64 arithmetic with RISC-V's rules: the canonical NaN for
//! every NaN result, tininess detected after rounding, the five rounding modes, saturating
//! conversions to integers.
//!
//! Every operation computes the exact result (or an exact result plus a sticky bit below the
//! rounding position) in `u128` and rounds once in [`round_pack`]. This is the path for RMM,
//! for operations SSE has no exact equivalent of, and for hosts other than x86_64; on x86_64
//! the tests check it against the SSE path and against QEMU.
//!
//! Values are raw bits in the low bits of a `u64` (a single in bits 31..0, unboxed). Finite
//! values are unpacked to `sig * 2^exp` with `exp` the exponent of the significand's LSB.

use std::cmp::Ordering;

use super::{Flags, RoundingMode};

/// A binary interchange format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmt {
    /// Width of the exponent field.
    pub exp_bits: u32,
    /// Width of the fraction field (precision minus one).
    pub frac_bits: u32,
}

/// binary32.
pub const S: Fmt = Fmt {
    exp_bits: 8,
    frac_bits: 23,
};
/// binary64.
pub const D: Fmt = Fmt {
    exp_bits: 11,
    frac_bits: 52,
};

impl Fmt {
    const fn bias(self) -> i32 {
        (1 << (self.exp_bits - 1)) - 1
    }

    /// The all-ones exponent field (infinities and NaNs).
    const fn exp_max(self) -> u64 {
        (1 << self.exp_bits) - 1
    }

    /// The sign bit.
    pub const fn sign_bit(self) -> u64 {
        1 << (self.exp_bits + self.frac_bits)
    }

    const fn frac_mask(self) -> u64 {
        (1 << self.frac_bits) - 1
    }

    /// The quiet bit of a NaN (the fraction's MSB).
    const fn quiet_bit(self) -> u64 {
        1 << (self.frac_bits - 1)
    }

    /// RISC-V's canonical NaN: positive, quiet, zero payload.
    pub const fn canonical_nan(self) -> u64 {
        (self.exp_max() << self.frac_bits) | self.quiet_bit()
    }

    /// Infinity of the given sign.
    pub const fn inf(self, sign: bool) -> u64 {
        (self.exp_max() << self.frac_bits) | self.sign(sign)
    }

    /// Zero of the given sign.
    pub const fn zero(self, sign: bool) -> u64 {
        self.sign(sign)
    }

    /// The largest finite magnitude with the given sign.
    const fn max_finite(self, sign: bool) -> u64 {
        (((self.exp_max() - 1) << self.frac_bits) | self.frac_mask()) | self.sign(sign)
    }

    const fn sign(self, sign: bool) -> u64 {
        if sign {
            self.sign_bit()
        } else {
            0
        }
    }

    /// `x` without its sign bit.
    const fn magnitude(self, x: u64) -> u64 {
        x & (self.sign_bit() - 1)
    }

    /// `x` is a NaN (quiet or signalling).
    pub const fn is_nan(self, x: u64) -> bool {
        self.magnitude(x) > self.inf(false)
    }

    /// `x` is a signalling NaN (quiet bit clear).
    pub const fn is_snan(self, x: u64) -> bool {
        self.is_nan(x) && x & self.quiet_bit() == 0
    }
}

/// An unpacked value; the sign is kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Nan,
    Inf,
    Zero,
    /// `sig * 2^exp`, `sig` normalized to exactly `frac_bits + 1` bits (subnormals too).
    Fin {
        exp: i32,
        sig: u64,
    },
}

fn unpack(f: Fmt, x: u64) -> (bool, Val) {
    let sign = x & f.sign_bit() != 0;
    let field = (x >> f.frac_bits) & f.exp_max();
    let frac = x & f.frac_mask();
    let val = if field == f.exp_max() {
        if frac == 0 {
            Val::Inf
        } else {
            Val::Nan
        }
    } else if field == 0 {
        if frac == 0 {
            Val::Zero
        } else {
            // Subnormal: normalize so every finite significand has the same width.
            let shift = frac.leading_zeros() - (63 - f.frac_bits);
            Val::Fin {
                exp: 1 - f.bias() - f.frac_bits as i32 - shift as i32,
                sig: frac << shift,
            }
        }
    } else {
        Val::Fin {
            exp: field as i32 - f.bias() - f.frac_bits as i32,
            sig: frac | 1 << f.frac_bits,
        }
    };
    (sign, val)
}

/// The result of an operation with a NaN operand: the canonical NaN, NV if any operand is
/// signalling.
fn nan_result(f: Fmt, operands: &[u64]) -> (u64, Flags) {
    let nv = operands.iter().any(|&x| f.is_snan(x));
    (f.canonical_nan(), if nv { Flags::NV } else { Flags::NONE })
}

fn invalid(f: Fmt) -> (u64, Flags) {
    (f.canonical_nan(), Flags::NV)
}

/// The sign of an exact zero sum of operands of opposite signs (IEEE 754 6.3): +0, except -0
/// when rounding down.
fn cancel_sign(rm: RoundingMode) -> bool {
    rm == RoundingMode::Rdn
}

/// Shifts `sig` right by `s` bits rounding as `rm` says for a value of sign `sign`.
/// Returns the rounded quotient and whether bits were lost.
fn shift_round(sig: u128, s: u32, sign: bool, rm: RoundingMode) -> (u128, bool) {
    if s == 0 {
        return (sig, false);
    }
    let (q, half_cmp) = if s > 128 {
        (0, Ordering::Less)
    } else if s == 128 {
        (0, sig.cmp(&(1u128 << 127)))
    } else {
        let rem = sig & ((1u128 << s) - 1);
        (sig >> s, rem.cmp(&(1u128 << (s - 1))))
    };
    let inexact = if s >= 128 {
        sig != 0
    } else {
        sig & ((1u128 << s) - 1) != 0
    };
    let up = match rm {
        RoundingMode::Rne => {
            half_cmp == Ordering::Greater || (half_cmp == Ordering::Equal && q & 1 == 1)
        }
        RoundingMode::Rtz => false,
        RoundingMode::Rdn => sign && inexact,
        RoundingMode::Rup => !sign && inexact,
        RoundingMode::Rmm => half_cmp != Ordering::Less,
    };
    (q + up as u128, inexact)
}

/// Rounds `±sig * 2^exp` to format `f` under `rm`: the one rounding every operation ends in.
///
/// `sig` may carry a sticky bit in its LSB, as long as the LSB is at least two bits below the
/// rounding position (the callers keep dozens). Underflow follows RISC-V (and IEEE 754's
/// "after rounding" option): the result is tiny when rounding it to the format's precision
/// with an unbounded exponent gives a magnitude below the smallest normal; UF is raised when
/// it is tiny and inexact.
pub fn round_pack(f: Fmt, sign: bool, exp: i32, sig: u128, rm: RoundingMode) -> (u64, Flags) {
    if sig == 0 {
        return (f.zero(sign), Flags::NONE);
    }
    let p = f.frac_bits as i32 + 1;
    let msb = 127 - sig.leading_zeros() as i32;
    let e = exp + msb; // 2^e <= |value| < 2^(e+1)
    let emin = 1 - f.bias();
    if e > f.bias() {
        return overflow(f, sign, rm);
    }
    let tiny = match e.cmp(&(emin - 1)) {
        Ordering::Less => true,
        Ordering::Equal => {
            let s = msb - (p - 1);
            s <= 0 || shift_round(sig, s as u32, sign, rm).0 >> p == 0
        }
        Ordering::Greater => false,
    };
    let lsb_exp = e.max(emin) - (p - 1);
    let s = lsb_exp - exp;
    let (q, inexact) = if s <= 0 {
        (sig << (-s) as u32, false)
    } else {
        shift_round(sig, s as u32, sign, rm)
    };
    // A normal q has its implicit bit at `frac_bits`, adding one to the exponent field: start
    // one below. A carry out of rounding (q == 2^p) moves on to the next binade the same way,
    // and a subnormal rounding up to 2^(p-1) becomes the smallest normal.
    let base = if e >= emin {
        (e + f.bias() - 1) as u64
    } else {
        0
    };
    let bits = (base << f.frac_bits) + q as u64;
    if (bits >> f.frac_bits) >= f.exp_max() {
        return overflow(f, sign, rm);
    }
    let mut flags = Flags::NONE;
    if inexact {
        flags |= Flags::NX;
        if tiny {
            flags |= Flags::UF;
        }
    }
    (bits | f.sign(sign), flags)
}

/// The result of a finite value too large for the format: infinity or the largest finite
/// number, whichever the rounding direction reaches.
fn overflow(f: Fmt, sign: bool, rm: RoundingMode) -> (u64, Flags) {
    let to_inf = match rm {
        RoundingMode::Rne | RoundingMode::Rmm => true,
        RoundingMode::Rtz => false,
        RoundingMode::Rdn => sign,
        RoundingMode::Rup => !sign,
    };
    let bits = if to_inf {
        f.inf(sign)
    } else {
        f.max_finite(sign)
    };
    (bits, Flags::OF | Flags::NX)
}

/// `x >> d`, OR-ing any bit shifted out into the LSB.
fn shr_jam(x: u128, d: u32) -> u128 {
    if d == 0 {
        x
    } else if d >= 128 {
        (x != 0) as u128
    } else {
        (x >> d) | ((x & ((1u128 << d) - 1)) != 0) as u128
    }
}

/// `±ma * 2^ea + ±mb * 2^eb` for nonzero `ma`, `mb` of at most 126 bits, exact or with a
/// sticky bit far below any rounding position; `None` when the sum is exactly zero.
///
/// Both operands are moved up to bit 125 (two bits of headroom for the carry) and the smaller
/// is shifted right with jamming. A shift is only lossy when the exponents differ by more than
/// the zero bits below the operand (at least 20 for a 106-bit product), and then at most one
/// bit cancels, so the jammed bit stays far below the result's rounding position.
fn sum_exact(a: (bool, i32, u128), b: (bool, i32, u128)) -> Option<(bool, i32, u128)> {
    let norm = |(s, e, m): (bool, i32, u128)| {
        let k = m.leading_zeros() - 2;
        (s, e - k as i32, m << k)
    };
    let (a, b) = (norm(a), norm(b));
    let (big, small) = if a.1 >= b.1 { (a, b) } else { (b, a) };
    let d = (big.1 - small.1) as u32;
    let sm = shr_jam(small.2, d);
    let (sign, m) = if big.0 == small.0 {
        (big.0, big.2 + sm)
    } else {
        match big.2.cmp(&sm) {
            Ordering::Greater => (big.0, big.2 - sm),
            Ordering::Less => (small.0, sm - big.2),
            Ordering::Equal => return None,
        }
    };
    Some((sign, big.1, m))
}

/// `a + b`.
pub fn add(f: Fmt, a: u64, b: u64, rm: RoundingMode) -> (u64, Flags) {
    let (sa, va) = unpack(f, a);
    let (sb, vb) = unpack(f, b);
    match (va, vb) {
        (Val::Nan, _) | (_, Val::Nan) => nan_result(f, &[a, b]),
        (Val::Inf, Val::Inf) if sa != sb => invalid(f),
        (Val::Inf, _) => (f.inf(sa), Flags::NONE),
        (_, Val::Inf) => (f.inf(sb), Flags::NONE),
        (Val::Zero, Val::Zero) => {
            let sign = if sa == sb { sa } else { cancel_sign(rm) };
            (f.zero(sign), Flags::NONE)
        }
        (Val::Zero, Val::Fin { .. }) => (b, Flags::NONE),
        (Val::Fin { .. }, Val::Zero) => (a, Flags::NONE),
        (Val::Fin { exp: ea, sig: ma }, Val::Fin { exp: eb, sig: mb }) => {
            match sum_exact((sa, ea, ma as u128), (sb, eb, mb as u128)) {
                None => (f.zero(cancel_sign(rm)), Flags::NONE),
                Some((s, e, m)) => round_pack(f, s, e, m, rm),
            }
        }
    }
}

/// `a * b`.
pub fn mul(f: Fmt, a: u64, b: u64, rm: RoundingMode) -> (u64, Flags) {
    let (sa, va) = unpack(f, a);
    let (sb, vb) = unpack(f, b);
    let sign = sa != sb;
    match (va, vb) {
        (Val::Nan, _) | (_, Val::Nan) => nan_result(f, &[a, b]),
        (Val::Inf, Val::Zero) | (Val::Zero, Val::Inf) => invalid(f),
        (Val::Inf, _) | (_, Val::Inf) => (f.inf(sign), Flags::NONE),
        (Val::Zero, _) | (_, Val::Zero) => (f.zero(sign), Flags::NONE),
        (Val::Fin { exp: ea, sig: ma }, Val::Fin { exp: eb, sig: mb }) => {
            round_pack(f, sign, ea + eb, ma as u128 * mb as u128, rm)
        }
    }
}

/// `a / b`.
pub fn div(f: Fmt, a: u64, b: u64, rm: RoundingMode) -> (u64, Flags) {
    let (sa, va) = unpack(f, a);
    let (sb, vb) = unpack(f, b);
    let sign = sa != sb;
    match (va, vb) {
        (Val::Nan, _) | (_, Val::Nan) => nan_result(f, &[a, b]),
        (Val::Inf, Val::Inf) | (Val::Zero, Val::Zero) => invalid(f),
        (Val::Inf, _) => (f.inf(sign), Flags::NONE),
        (_, Val::Inf) => (f.zero(sign), Flags::NONE),
        (Val::Fin { .. }, Val::Zero) => (f.inf(sign), Flags::DZ),
        (Val::Zero, _) => (f.zero(sign), Flags::NONE),
        (Val::Fin { exp: ea, sig: ma }, Val::Fin { exp: eb, sig: mb }) => {
            // Both significands have p bits, so the quotient has at least 64 bits.
            let num = (ma as u128) << 64;
            let q = num / mb as u128;
            let sticky = (num % mb as u128 != 0) as u128;
            round_pack(f, sign, ea - eb - 64, q | sticky, rm)
        }
    }
}

/// Integer square root: `(floor(sqrt(n)), exact)`.
fn isqrt(n: u128) -> (u128, bool) {
    let mut rem = n;
    let mut root: u128 = 0;
    let mut bit: u128 = 1 << 126;
    while bit > n {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    (root, rem == 0)
}

/// `sqrt(a)`.
pub fn sqrt(f: Fmt, a: u64, rm: RoundingMode) -> (u64, Flags) {
    let (sign, v) = unpack(f, a);
    match v {
        Val::Nan => nan_result(f, &[a]),
        Val::Zero => (a, Flags::NONE),
        _ if sign => invalid(f),
        Val::Inf => (a, Flags::NONE),
        Val::Fin { exp, sig } => {
            // Make the exponent even, then scale by 2^64 so the root has ~59 bits.
            let (exp, sig) = if exp.rem_euclid(2) != 0 {
                (exp - 1, (sig as u128) << 1)
            } else {
                (exp, sig as u128)
            };
            let (root, exact) = isqrt(sig << 64);
            round_pack(f, false, (exp - 64) / 2, root | (!exact) as u128, rm)
        }
    }
}

/// `(±a * b) ± c` with one rounding: `negate_product` and `negate_addend` select fmadd
/// (false, false), fmsub (false, true), fnmsub (true, false), fnmadd (true, true).
///
/// The negations are sign flips of the exact operands, so an exact zero result of opposite
/// signs follows the usual rule (+0 but in RDN). `inf * 0` sets NV even when `c` is a quiet
/// NaN, as the RISC-V manual requires.
pub fn fma(
    f: Fmt,
    a: u64,
    b: u64,
    c: u64,
    negate_product: bool,
    negate_addend: bool,
    rm: RoundingMode,
) -> (u64, Flags) {
    let (sa, va) = unpack(f, a);
    let (sb, vb) = unpack(f, b);
    let (sc, vc) = unpack(f, c);
    let sp = (sa != sb) != negate_product;
    let sc = sc != negate_addend;
    let inf_times_zero = matches!((va, vb), (Val::Inf, Val::Zero) | (Val::Zero, Val::Inf));
    if va == Val::Nan || vb == Val::Nan || vc == Val::Nan {
        let (nan, flags) = nan_result(f, &[a, b, c]);
        return (nan, if inf_times_zero { Flags::NV } else { flags });
    }
    if inf_times_zero {
        return invalid(f);
    }
    if va == Val::Inf || vb == Val::Inf {
        if vc == Val::Inf && sc != sp {
            return invalid(f);
        }
        return (f.inf(sp), Flags::NONE);
    }
    if vc == Val::Inf {
        return (f.inf(sc), Flags::NONE);
    }
    let (Val::Fin { exp: ea, sig: ma }, Val::Fin { exp: eb, sig: mb }) = (va, vb) else {
        // The product is an exact zero.
        return match vc {
            Val::Zero => {
                let sign = if sp == sc { sp } else { cancel_sign(rm) };
                (f.zero(sign), Flags::NONE)
            }
            _ => (f.magnitude(c) | f.sign(sc), Flags::NONE),
        };
    };
    let product = (sp, ea + eb, ma as u128 * mb as u128);
    match vc {
        Val::Fin { exp: ec, sig: mc } => match sum_exact(product, (sc, ec, mc as u128)) {
            None => (f.zero(cancel_sign(rm)), Flags::NONE),
            Some((s, e, m)) => round_pack(f, s, e, m, rm),
        },
        _ => round_pack(f, sp, product.1, product.2, rm),
    }
}

/// Conversion between formats (fcvt.s.d, fcvt.d.s).
pub fn convert(from: Fmt, to: Fmt, a: u64, rm: RoundingMode) -> (u64, Flags) {
    let (sign, v) = unpack(from, a);
    match v {
        Val::Nan => (
            to.canonical_nan(),
            if from.is_snan(a) {
                Flags::NV
            } else {
                Flags::NONE
            },
        ),
        Val::Inf => (to.inf(sign), Flags::NONE),
        Val::Zero => (to.zero(sign), Flags::NONE),
        Val::Fin { exp, sig } => round_pack(to, sign, exp, sig as u128, rm),
    }
}

/// The integer types of fcvt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntKind {
    /// `w`: i32, results sign-extended to 64 bits.
    W,
    /// `wu`: u32, results sign-extended to 64 bits (as RV64 defines for 32-bit results).
    Wu,
    /// `l`: i64.
    L,
    /// `lu`: u64.
    Lu,
}

impl IntKind {
    fn range(self) -> (i128, i128) {
        match self {
            IntKind::W => (i32::MIN as i128, i32::MAX as i128),
            IntKind::Wu => (0, u32::MAX as i128),
            IntKind::L => (i64::MIN as i128, i64::MAX as i128),
            IntKind::Lu => (0, u64::MAX as i128),
        }
    }

    /// The register value of `v` (which is in range).
    fn encode(self, v: i128) -> u64 {
        match self {
            IntKind::W | IntKind::Wu => v as u32 as i32 as i64 as u64,
            IntKind::L | IntKind::Lu => v as u64,
        }
    }

    /// The integer a register holds as this kind's source operand.
    fn decode(self, x: u64) -> i128 {
        match self {
            IntKind::W => x as i32 as i128,
            IntKind::Wu => x as u32 as i128,
            IntKind::L => x as i64 as i128,
            IntKind::Lu => x as i128,
        }
    }
}

/// fcvt.{w,wu,l,lu}.{s,d}: rounds to an integer; out-of-range values and infinities saturate
/// to the nearer bound and NaN gives the largest value, all with NV only (the manual's
/// table); an in-range inexact result sets NX.
pub fn to_int(f: Fmt, a: u64, kind: IntKind, rm: RoundingMode) -> (u64, Flags) {
    let (sign, v) = unpack(f, a);
    let (min, max) = kind.range();
    let saturate = |negative: bool| {
        let bound = if negative { min } else { max };
        (kind.encode(bound), Flags::NV)
    };
    match v {
        Val::Nan => saturate(false),
        Val::Inf => saturate(sign),
        Val::Zero => (0, Flags::NONE),
        Val::Fin { exp, sig } => {
            if exp > 64 {
                return saturate(sign);
            }
            let (q, inexact) = if exp >= 0 {
                ((sig as u128) << exp, false)
            } else {
                shift_round(sig as u128, (-exp) as u32, sign, rm)
            };
            let value = if sign { -(q as i128) } else { q as i128 };
            if value < min || value > max {
                return saturate(sign);
            }
            let flags = if inexact { Flags::NX } else { Flags::NONE };
            (kind.encode(value), flags)
        }
    }
}

/// fcvt.{s,d}.{w,wu,l,lu}: the integer in register `x`, rounded to `f`.
pub fn from_int(f: Fmt, x: u64, kind: IntKind, rm: RoundingMode) -> (u64, Flags) {
    let v = kind.decode(x);
    round_pack(f, v < 0, 0, v.unsigned_abs(), rm)
}

/// A total order key for non-NaN values in which -0 < +0.
fn order_key(f: Fmt, x: u64) -> i128 {
    let mag = f.magnitude(x) as i128;
    if x & f.sign_bit() != 0 {
        -mag - 1
    } else {
        mag
    }
}

/// fmin (`max == false`) and fmax: -0 < +0; one NaN operand gives the other operand; two give
/// the canonical NaN; a signalling NaN sets NV.
pub fn min_max(f: Fmt, a: u64, b: u64, max: bool) -> (u64, Flags) {
    let flags = if f.is_snan(a) || f.is_snan(b) {
        Flags::NV
    } else {
        Flags::NONE
    };
    let r = match (f.is_nan(a), f.is_nan(b)) {
        (true, true) => f.canonical_nan(),
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            let a_less = order_key(f, a) < order_key(f, b);
            if a_less == max {
                b
            } else {
                a
            }
        }
    };
    (r, flags)
}

/// The comparisons of feq/flt/fle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// feq: quiet, NV only for a signalling NaN.
    Eq,
    /// flt: signalling, NV for any NaN.
    Lt,
    /// fle: signalling, NV for any NaN.
    Le,
}

/// feq/flt/fle: 1 or 0; any NaN compares false.
pub fn compare(f: Fmt, a: u64, b: u64, op: Compare) -> (u64, Flags) {
    if f.is_nan(a) || f.is_nan(b) {
        let nv = match op {
            Compare::Eq => f.is_snan(a) || f.is_snan(b),
            Compare::Lt | Compare::Le => true,
        };
        return (0, if nv { Flags::NV } else { Flags::NONE });
    }
    let both_zero = f.magnitude(a) == 0 && f.magnitude(b) == 0;
    let (ka, kb) = (order_key(f, a), order_key(f, b));
    let r = match op {
        Compare::Eq => both_zero || a == b,
        Compare::Lt => !both_zero && ka < kb,
        Compare::Le => both_zero || ka <= kb,
    };
    (r as u64, Flags::NONE)
}

/// fclass: one bit set of ten (0 -inf, 1 negative normal, 2 negative subnormal, 3 -0, 4 +0,
/// 5 positive subnormal, 6 positive normal, 7 +inf, 8 signalling NaN, 9 quiet NaN).
pub fn classify(f: Fmt, a: u64) -> u64 {
    let (sign, v) = unpack(f, a);
    let field = (a >> f.frac_bits) & f.exp_max();
    let bit = match v {
        Val::Nan if f.is_snan(a) => 8,
        Val::Nan => 9,
        Val::Inf => 7,
        Val::Zero => 4,
        Val::Fin { .. } if field == 0 => 5,
        Val::Fin { .. } => 6,
    };
    let bit = match (sign, bit) {
        (true, 4..=7) => 7 - bit,
        _ => bit,
    };
    1 << bit
}
