//! Round-to-nearest-even without touching the host's floating-point state.
//!
//! Rust code runs with the host's default floating-point environment: round to nearest, ties
//! to even, every exception masked, no flush-to-zero (Rust never changes it). So for RNE the
//! plain `f32`/`f64` operators already give the correctly rounded IEEE 754 result, and only the
//! flags must be found some other way. Instead of switching MXCSR around every operation (two
//! `ldmxcsr`, which stall), each function here derives RISC-V's flags from the values:
//!
//! - **NX** from an exact error term: the error of a sum with Fast2Sum (for `|x| >= |y|`,
//!   `s - x` is exact and `y - (s - x)` is the rounding error); a product, quotient or square
//!   root is exact iff its defining product (`x*y`, `q*y`, `s*s`) equals the other side
//!   exactly, checked with one fused multiply-add or, without host FMA, Dekker's exact product.
//!   Singles use `f64`, where the product of two singles is always exact.
//! - **OF** when the result is infinite although every operand was finite (in RNE an overflow
//!   always rounds to infinity), with NX.
//! - **DZ**, **NV**, NaN operands, infinite operands: not handled — they are rare, and the
//!   caller falls back to the exact path.
//! - **UF** never arises: any result that is tiny, or near enough to the underflow range that
//!   the error terms above could themselves underflow, is also left to the exact path, except
//!   the exact zeros (a zero operand of a product or dividend), which raise nothing.
//!
//! Each function returns `None` for the cases it leaves to the exact path, and otherwise the
//! same bits and flags that path would give (the randomized tests check this on millions of
//! operands). Singles are unboxed bits in the low half of the `u64`, as in [`super::soft`].

use super::Flags;

/// binary64 exponent field.
const D_EXP: u64 = 0x7ff0_0000_0000_0000;
/// binary64 magnitude bits.
const D_ABS: u64 = 0x7fff_ffff_ffff_ffff;
/// The smallest magnitude (2^-895, biased exponent 128) at which the exactness checks are
/// certain: the error of a product `x*y` near `v` is a multiple of
/// `ulp(x) * ulp(y) >= |x*y| * 2^-106`, which for `|v| >= 2^-895` stays far above the
/// smallest subnormal 2^-1074, so it neither underflows nor rounds to zero.
const D_SAFE: u64 = 128 << 52;
/// binary32 exponent field.
const S_EXP: u64 = 0x7f80_0000;
/// binary32 magnitude bits.
const S_ABS: u64 = 0x7fff_ffff;
/// The smallest normal binary32 magnitude; results at or below it may be tiny (before the
/// subnormal rounding a value just under it may round up to it), so they go the exact way.
const S_MIN_NORMAL: u64 = 0x0080_0000;

const NONE: Flags = Flags::NONE;
const NX: Flags = Flags::NX;
const OVERFLOW: Flags = Flags(Flags::OF.0 | Flags::NX.0);

fn inexact(nx: bool) -> Flags {
    if nx {
        NX
    } else {
        NONE
    }
}

/// Neither infinite nor NaN.
fn finite_d(x: u64) -> bool {
    x & D_EXP != D_EXP
}

fn finite_s(x: u64) -> bool {
    x & S_EXP != S_EXP
}

fn d(x: u64) -> f64 {
    f64::from_bits(x)
}

fn s(x: u64) -> f32 {
    f32::from_bits(x as u32)
}

fn bits_s(x: f32) -> u64 {
    x.to_bits() as u64
}

/// `x * y + z` rounded once in the host's RNE, when the host has FMA3.
#[cfg(target_arch = "x86_64")]
#[inline]
fn fused(x: f64, y: f64, z: f64) -> Option<f64> {
    super::sse::fused_d(x, y, z)
}

/// No fused multiply-add is used off x86_64: [`product_is`] takes Dekker's product instead.
#[cfg(not(target_arch = "x86_64"))]
fn fused(_: f64, _: f64, _: f64) -> Option<f64> {
    None
}

/// Veltkamp's split of `x` into a high half of 26 bits and the rest, both exact.
fn split(x: f64) -> (f64, f64) {
    const C: f64 = 134_217_729.0; // 2^27 + 1
    let c = C * x;
    let hi = c - (c - x);
    (hi, x - hi)
}

/// Dekker's exact product: `(p, e)` with `p = RN(x*y)` and `p + e = x*y` exactly, using only
/// plain multiplications. `None` unless both are normal and below 2^978 (so the split cannot
/// overflow) — callers also keep `|x*y|` above 2^-895, so no partial product underflows.
pub fn two_product(x: f64, y: f64) -> Option<(f64, f64)> {
    let ok = |v: f64| (1..=2000).contains(&((v.to_bits() >> 52) & 0x7ff));
    if !ok(x) || !ok(y) {
        return None;
    }
    let p = x * y;
    let (xh, xl) = split(x);
    let (yh, yl) = split(y);
    let e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl;
    Some((p, e))
}

/// Whether `x * y` is exactly `v`, a finite value within a few ulps of it; `None` when
/// `|v| < 2^-895`, where the check would not be certain ([`D_SAFE`]).
#[inline]
fn product_is(x: f64, y: f64, v: f64) -> Option<bool> {
    if v.to_bits() & D_ABS < D_SAFE {
        return None;
    }
    if let Some(r) = fused(x, y, -v) {
        // The exact x*y - v is 0 or at least 2^-1001 in magnitude, so it rounds to 0 only
        // when it is 0.
        return Some(r == 0.0);
    }
    product_is_dekker(x, y, v)
}

/// [`product_is`] without FMA: `x*y = p + e` exactly, and `p = RN(x*y)`, so `x*y = v` iff
/// `p = v` and `e = 0`. Also `None` for `|v| >= 2^978`: the split halves may exceed their
/// value, so their products could overflow near the top of the range.
pub fn product_is_dekker(x: f64, y: f64, v: f64) -> Option<bool> {
    let v_abs = v.to_bits() & D_ABS;
    if !(D_SAFE..(2001 << 52)).contains(&v_abs) {
        return None;
    }
    let (p, e) = two_product(x, y)?;
    Some(p == v && e == 0.0)
}

/// The rounding error of `s = RN(x + y)` by Fast2Sum (exact for finite `s`, subnormals
/// included: with `|hi| >= |lo|`, `s - hi` is exact and so is `lo - (s - hi)`).
#[inline]
fn sum_error_d(x: f64, y: f64, s: f64) -> f64 {
    let (hi, lo) = if x.abs() >= y.abs() { (x, y) } else { (y, x) };
    lo - (s - hi)
}

fn sum_error_s(x: f32, y: f32, s: f32) -> f32 {
    let (hi, lo) = if x.abs() >= y.abs() { (x, y) } else { (y, x) };
    lo - (s - hi)
}

/// fadd.d in RNE. A sum that lands in the subnormal range is exact, so sums never underflow.
#[inline]
pub fn add_d(a: u64, b: u64) -> Option<(u64, Flags)> {
    if !finite_d(a) || !finite_d(b) {
        return None;
    }
    let (x, y) = (d(a), d(b));
    let r = x + y;
    if !r.is_finite() {
        return Some((r.to_bits(), OVERFLOW));
    }
    Some((r.to_bits(), inexact(sum_error_d(x, y, r) != 0.0)))
}

/// fsub.d in RNE.
#[inline]
pub fn sub_d(a: u64, b: u64) -> Option<(u64, Flags)> {
    add_d(a, b ^ (1 << 63))
}

/// fmul.d in RNE.
#[inline]
pub fn mul_d(a: u64, b: u64) -> Option<(u64, Flags)> {
    if !finite_d(a) || !finite_d(b) {
        return None;
    }
    let (x, y) = (d(a), d(b));
    let p = x * y;
    if !p.is_finite() {
        return Some((p.to_bits(), OVERFLOW));
    }
    if p.to_bits() & D_ABS < D_SAFE {
        // A zero factor gives an exact signed zero; anything else this small may be tiny.
        return (x == 0.0 || y == 0.0).then_some((p.to_bits(), NONE));
    }
    Some((p.to_bits(), inexact(!product_is(x, y, p)?)))
}

/// fdiv.d in RNE (division by zero goes the exact way).
#[inline]
pub fn div_d(a: u64, b: u64) -> Option<(u64, Flags)> {
    if !finite_d(a) || !finite_d(b) || b & D_ABS == 0 {
        return None;
    }
    let (x, y) = (d(a), d(b));
    let q = x / y;
    if !q.is_finite() {
        return Some((q.to_bits(), OVERFLOW));
    }
    if x == 0.0 {
        return Some((q.to_bits(), NONE));
    }
    if q.to_bits() & D_ABS < D_SAFE {
        return None;
    }
    Some((q.to_bits(), inexact(!product_is(q, y, x)?)))
}

/// fsqrt.d in RNE (negative operands, which are invalid, go the exact way).
#[inline]
pub fn sqrt_d(a: u64) -> Option<(u64, Flags)> {
    if !finite_d(a) {
        return None;
    }
    let x = d(a);
    if x == 0.0 {
        return Some((a, NONE));
    }
    if x < 0.0 {
        return None;
    }
    let r = x.sqrt();
    Some((r.to_bits(), inexact(!product_is(r, r, x)?)))
}

/// `a * b + c` (signs already applied) in RNE, on x86_64 hosts with FMA3.
///
/// With `p = RN(a*b)` and `ep = a*b - p` (exact by one more FMA), and `t = RN(r - c)` with its
/// Fast2Sum error `et`, both pairs are the unique "rounded value plus exact remainder" form of
/// their sums, so `a*b + c = r` exactly iff `p = t` and `ep = et`.
pub fn fma_d(a: u64, b: u64, c: u64) -> Option<(u64, Flags)> {
    if !finite_d(a) || !finite_d(b) || !finite_d(c) {
        return None;
    }
    let (x, y, z) = (d(a), d(b), d(c));
    let r = fused(x, y, z)?;
    if !r.is_finite() {
        return Some((r.to_bits(), OVERFLOW));
    }
    if x == 0.0 || y == 0.0 {
        // The product is an exact zero: r is c, or a signed zero by the sum rules.
        return Some((r.to_bits(), NONE));
    }
    let p = x * y;
    if !p.is_finite() || p.to_bits() & D_ABS < D_SAFE || r.to_bits() & D_ABS < D_SAFE {
        return None;
    }
    let ep = fused(x, y, -p)?;
    let t = r - z;
    if !t.is_finite() {
        return None;
    }
    let et = sum_error_d(r, -z, t);
    Some((r.to_bits(), inexact(!(p == t && ep == et))))
}

/// fadd.s in RNE.
#[inline]
pub fn add_s(a: u64, b: u64) -> Option<(u64, Flags)> {
    if !finite_s(a) || !finite_s(b) {
        return None;
    }
    let (x, y) = (s(a), s(b));
    let r = x + y;
    if !r.is_finite() {
        return Some((bits_s(r), OVERFLOW));
    }
    Some((bits_s(r), inexact(sum_error_s(x, y, r) != 0.0)))
}

/// fsub.s in RNE.
#[inline]
pub fn sub_s(a: u64, b: u64) -> Option<(u64, Flags)> {
    add_s(a, b ^ 0x8000_0000)
}

/// A single result `r` rounded once from the exact value `v` held in an `f64`.
fn single_from_exact(v: f64) -> Option<(u64, Flags)> {
    let r = v as f32;
    if r.is_infinite() {
        return Some((bits_s(r), OVERFLOW));
    }
    if bits_s(r) & S_ABS <= S_MIN_NORMAL {
        return (v == 0.0).then_some((bits_s(r), NONE));
    }
    Some((bits_s(r), inexact(r as f64 != v)))
}

/// fmul.s in RNE: the product of two singles is exact in an `f64` (48 bits, exponents far
/// inside its range), so one rounding to single is the correctly rounded result.
#[inline]
pub fn mul_s(a: u64, b: u64) -> Option<(u64, Flags)> {
    if !finite_s(a) || !finite_s(b) {
        return None;
    }
    single_from_exact(s(a) as f64 * s(b) as f64)
}

/// fdiv.s in RNE; exactness by `q*b = a`, an exact `f64` product.
#[inline]
pub fn div_s(a: u64, b: u64) -> Option<(u64, Flags)> {
    if !finite_s(a) || !finite_s(b) || b & S_ABS == 0 {
        return None;
    }
    let (x, y) = (s(a), s(b));
    let q = x / y;
    if q.is_infinite() {
        return Some((bits_s(q), OVERFLOW));
    }
    if x == 0.0 {
        return Some((bits_s(q), NONE));
    }
    if bits_s(q) & S_ABS <= S_MIN_NORMAL {
        return None;
    }
    Some((bits_s(q), inexact(q as f64 * y as f64 != x as f64)))
}

/// fsqrt.s in RNE.
#[inline]
pub fn sqrt_s(a: u64) -> Option<(u64, Flags)> {
    if !finite_s(a) {
        return None;
    }
    let x = s(a);
    if x == 0.0 {
        return Some((a, NONE));
    }
    if x < 0.0 {
        return None;
    }
    let r = x.sqrt();
    let r64 = r as f64;
    Some((bits_s(r), inexact(r64 * r64 != x as f64)))
}

/// `a * b + c` (signs already applied) for singles in RNE, on any host: `a*b` is exact in an
/// `f64`; `t = RN64(a*b + c)` is the exact sum when its Fast2Sum error is zero, and otherwise
/// still rounds to the same single unless `t` is a midpoint between two singles (a single
/// midpoint has 25 bits, so it is a double, and no double lies strictly between the exact sum
/// and `t`) — that case goes the exact way.
pub fn fma_s(a: u64, b: u64, c: u64) -> Option<(u64, Flags)> {
    if !finite_s(a) || !finite_s(b) || !finite_s(c) {
        return None;
    }
    let p = s(a) as f64 * s(b) as f64;
    let z = s(c) as f64;
    let t = p + z;
    let e = sum_error_d(p, z, t);
    if e == 0.0 {
        return single_from_exact(t);
    }
    // t is inside the binary32 range here (|p|, |z| < 2^256), a normal double: its low 29
    // fraction bits are what a single drops; exactly half of that is a midpoint.
    const DROPPED: u64 = (1 << 29) - 1;
    if t.to_bits() & DROPPED == 1 << 28 {
        return None;
    }
    let r = t as f32;
    if r.is_infinite() {
        return Some((bits_s(r), OVERFLOW));
    }
    if bits_s(r) & S_ABS <= S_MIN_NORMAL {
        return None;
    }
    Some((bits_s(r), NX))
}

/// fcvt.s.d in RNE.
pub fn cvt_s_d(a: u64) -> Option<(u64, Flags)> {
    if !finite_d(a) {
        return None;
    }
    single_from_exact(d(a))
}

/// fcvt.d.s, exact in every mode: only NaNs (canonical result, NV for a signalling one) go
/// the exact way.
pub fn cvt_d_s(a: u64) -> Option<(u64, Flags)> {
    let x = s(a);
    (!x.is_nan()).then(|| ((x as f64).to_bits(), NONE))
}

/// fcvt.d.w: every 32-bit integer is a double, in every mode.
pub fn cvt_d_w(x: u64) -> (u64, Flags) {
    ((x as i32 as f64).to_bits(), NONE)
}

/// fcvt.d.wu, exact in every mode.
pub fn cvt_d_wu(x: u64) -> (u64, Flags) {
    ((x as u32 as f64).to_bits(), NONE)
}

/// fcvt.d.l in RNE (Rust's integer-to-float `as` rounds to nearest, ties to even).
pub fn cvt_d_l(x: u64) -> (u64, Flags) {
    let r = x as i64 as f64;
    (r.to_bits(), inexact(r as i128 != x as i64 as i128))
}

/// fcvt.d.lu in RNE.
pub fn cvt_d_lu(x: u64) -> (u64, Flags) {
    let r = x as f64;
    (r.to_bits(), inexact(r as u128 != x as u128))
}

/// fcvt.s.w in RNE.
pub fn cvt_s_w(x: u64) -> (u64, Flags) {
    let r = x as i32 as f32;
    (bits_s(r), inexact(r as i64 != x as i32 as i64))
}

/// fcvt.s.wu in RNE.
pub fn cvt_s_wu(x: u64) -> (u64, Flags) {
    let r = x as u32 as f32;
    (bits_s(r), inexact(r as u64 != x as u32 as u64))
}

/// fcvt.s.l in RNE.
pub fn cvt_s_l(x: u64) -> (u64, Flags) {
    let r = x as i64 as f32;
    (bits_s(r), inexact(r as i128 != x as i64 as i128))
}

/// fcvt.s.lu in RNE.
pub fn cvt_s_lu(x: u64) -> (u64, Flags) {
    let r = x as f32;
    (bits_s(r), inexact(r as u128 != x as u128))
}
