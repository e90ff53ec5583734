//! When the host instruction, run as it is, already gives the guest's result and flags.
//!
//! Rust code runs under the default MXCSR: round to nearest even, every exception masked, no
//! DAZ or FTZ (Rust never changes it, and [`super::mxcsr`] leaves no other mode loaded). For
//! a guest in that same mode the host instruction gives the guest's result bit for bit; only
//! its flags are unknown without a slow `stmxcsr`. From the values, in the common case:
//!
//! - operands that are neither NaN, infinite nor denormal raise no DE, and no IE except for
//!   0/0 and the square root of a negative number, whose results are NaN;
//! - a result that is a normal number of magnitude at least 2^-1021 (2^-125 for singles) was
//!   not tiny before or after rounding (no UE) and did not overflow (in this rounding mode an
//!   overflow gives infinity), and a division by zero gives infinity (ZE): both are caught by
//!   checking the result;
//! - a zero sum or difference of such operands is exact, as is a zero product, quotient or
//!   square root with a zero operand, so neither raises anything;
//! - what is left is PE. It is sticky, programs raise it on their first inexact operation and
//!   almost never clear it, so it is simply required to be set in the guest MXCSR already.
//!
//! Minimum, maximum and the comparisons raise only IE (a NaN operand) and DE (a denormal one),
//! whatever the mode. Everything these rules do not cover goes the exact way, under the
//! guest's MXCSR ([`super::mxcsr`]).

use core::arch::x86_64::{
    __m128, __m128d, __m128i, _mm_and_pd, _mm_and_ps, _mm_castsi128_pd, _mm_castsi128_ps,
    _mm_cmpeq_pd, _mm_cmpeq_ps, _mm_cmple_pd, _mm_cmple_ps, _mm_cmplt_pd, _mm_cmplt_ps,
    _mm_movemask_pd, _mm_movemask_ps, _mm_or_pd, _mm_or_ps, _mm_set1_epi32, _mm_set1_epi64x,
    _mm_setzero_pd, _mm_setzero_ps,
};

use super::mxcsr;
use super::Xmm;

/// What an arithmetic instruction computes, for the rules above.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Addition or subtraction: a zero result is always exact.
    AddSub,
    /// Multiplication or division: a zero result is exact when an operand is zero.
    MulDiv,
    /// Square root of the source alone.
    Sqrt,
}

/// Lane `i` of `v`: a single (the low 32 bits) or a double.
#[inline(always)]
fn lane(v: Xmm, single: bool, i: usize) -> u64 {
    if single {
        v[i / 2] >> (32 * (i % 2)) & 0xffff_ffff
    } else {
        v[i]
    }
}

/// The magnitude of `x` shifted to the top of a u64 (sign dropped, exponent field first),
/// and the value of one unit of the exponent field there: every class below is then a
/// range of this one number, tested with one or two comparisons.
#[inline(always)]
fn magnitude(x: u64, single: bool) -> (u64, u64) {
    if single {
        (x << 33, 1 << 56)
    } else {
        (x << 1, 1 << 53)
    }
}

/// The all-ones exponent field (infinities and NaNs).
#[inline(always)]
fn max_exponent(single: bool) -> u64 {
    if single {
        0xff
    } else {
        0x7ff
    }
}

/// ±0.
#[inline(always)]
pub fn is_zero(x: u64, single: bool) -> bool {
    magnitude(x, single).0 == 0
}

/// Finite and not denormal (zero allowed).
#[inline(always)]
pub fn ordinary(x: u64, single: bool) -> bool {
    let (m, unit) = magnitude(x, single);
    m == 0 || m.wrapping_sub(unit) < (max_exponent(single) - 1) * unit
}

/// A normal number (not zero).
#[inline(always)]
fn normal(x: u64, single: bool) -> bool {
    let (m, unit) = magnitude(x, single);
    m.wrapping_sub(unit) < (max_exponent(single) - 1) * unit
}

/// Neither NaN nor denormal (infinities allowed): raises nothing in a compare.
#[inline(always)]
pub fn quiet(x: u64, single: bool) -> bool {
    let (m, unit) = magnitude(x, single);
    m == 0 || m.wrapping_sub(unit) <= (max_exponent(single) - 1) * unit
}

/// A normal number of magnitude at least twice the smallest normal one: neither tiny nor
/// an overflow.
#[inline(always)]
pub fn safe(x: u64, single: bool) -> bool {
    let (m, unit) = magnitude(x, single);
    m.wrapping_sub(2 * unit) < (max_exponent(single) - 2) * unit
}

/// Whether an instruction that may be inexact can take the fast path under guest MXCSR
/// `mx`: the default mode, and PE already set.
#[inline(always)]
pub fn may_try(mx: u32) -> bool {
    mxcsr::default_mode(mx) && mx & mxcsr::PE != 0
}

/// Whether `r`, computed by the host from `d` and `s` in `lanes` lanes, is the guest's
/// result with no flag the guest does not already have (see the module doc; the caller
/// checked [`may_try`]).
#[inline(always)]
pub fn arith_ok(kind: Kind, single: bool, lanes: usize, d: Xmm, s: Xmm, r: Xmm) -> bool {
    let mut ok = true;
    for i in 0..lanes {
        let b = lane(s, single, i);
        let a = if kind == Kind::Sqrt {
            b
        } else {
            lane(d, single, i)
        };
        let x = lane(r, single, i);
        // The common case first, in three range tests: normal operands, a safe result.
        ok &= normal(a, single) && normal(b, single) && safe(x, single)
            || ordinary(a, single)
                && ordinary(b, single)
                && (safe(x, single)
                    || is_zero(x, single)
                        && (kind == Kind::AddSub || is_zero(a, single) || is_zero(b, single)));
    }
    ok
}

/// Whether min, max or a compare of `d` and `s` in `lanes` lanes raises nothing.
#[inline(always)]
pub fn quiet_ok(single: bool, lanes: usize, d: Xmm, s: Xmm) -> bool {
    let mut ok = true;
    for i in 0..lanes {
        ok &= quiet(lane(d, single, i), single) && quiet(lane(s, single, i), single);
    }
    ok
}

/// Safe wrappers of the SSE2 register operations the packed checks use.
macro_rules! sse2 {
    ($($name:ident($($a:ident: $t:ty),*) -> $r:ty = $f:ident;)*) => {$(
        #[inline(always)]
        fn $name($($a: $t),*) -> $r {
            // SAFETY: SSE2 is part of the x86_64 baseline; a register-only operation.
            unsafe { $f($($a),*) }
        }
    )*};
}

sse2! {
    pd_of(v: __m128i) -> __m128d = _mm_castsi128_pd;
    ps_of(v: __m128i) -> __m128 = _mm_castsi128_ps;
    splat64(v: i64) -> __m128i = _mm_set1_epi64x;
    splat32(v: i32) -> __m128i = _mm_set1_epi32;
    zero_pd() -> __m128d = _mm_setzero_pd;
    zero_ps() -> __m128 = _mm_setzero_ps;
    and_pd(a: __m128d, b: __m128d) -> __m128d = _mm_and_pd;
    and_ps(a: __m128, b: __m128) -> __m128 = _mm_and_ps;
    or_pd(a: __m128d, b: __m128d) -> __m128d = _mm_or_pd;
    or_ps(a: __m128, b: __m128) -> __m128 = _mm_or_ps;
    eq_pd(a: __m128d, b: __m128d) -> __m128d = _mm_cmpeq_pd;
    eq_ps(a: __m128, b: __m128) -> __m128 = _mm_cmpeq_ps;
    le_pd(a: __m128d, b: __m128d) -> __m128d = _mm_cmple_pd;
    le_ps(a: __m128, b: __m128) -> __m128 = _mm_cmple_ps;
    lt_pd(a: __m128d, b: __m128d) -> __m128d = _mm_cmplt_pd;
    lt_ps(a: __m128, b: __m128) -> __m128 = _mm_cmplt_ps;
    mask_pd(a: __m128d) -> i32 = _mm_movemask_pd;
    mask_ps(a: __m128) -> i32 = _mm_movemask_ps;
}

/// [`arith_ok`] for all lanes of a packed instruction at once, with SSE2 compares on the
/// magnitudes instead of one lane at a time (a compare of a NaN or a denormal may raise a
/// flag in the host MXCSR: that only makes [`super::mxcsr::enter`] load it again).
#[inline(always)]
pub fn packed_arith_ok(kind: Kind, single: bool, d: __m128i, s: __m128i, r: __m128i) -> bool {
    if single {
        packed_ok_ps(kind, d, s, r)
    } else {
        packed_ok_pd(kind, d, s, r)
    }
}

/// Two doubles: ordinary operands, a safe result or an exact zero.
#[inline(always)]
fn packed_ok_pd(kind: Kind, d: __m128i, s: __m128i, r: __m128i) -> bool {
    let bits = |v: i64| pd_of(splat64(v));
    let (abs_mask, inf) = (bits(i64::MAX), bits(0x7ff0_0000_0000_0000));
    let (min, min2) = (bits(0x0010_0000_0000_0000), bits(0x0020_0000_0000_0000));
    let zero = zero_pd();
    let abs = |v: __m128i| and_pd(pd_of(v), abs_mask);
    let (a, b, x) = (abs(d), abs(s), abs(r));
    let a = if kind == Kind::Sqrt { b } else { a };
    let ordinary = |v: __m128d| or_pd(and_pd(le_pd(min, v), lt_pd(v, inf)), eq_pd(v, zero));
    let safe = and_pd(le_pd(min2, x), lt_pd(x, inf));
    let zero_ok = if kind == Kind::AddSub {
        eq_pd(x, zero)
    } else {
        and_pd(eq_pd(x, zero), or_pd(eq_pd(a, zero), eq_pd(b, zero)))
    };
    let ok = and_pd(and_pd(ordinary(a), ordinary(b)), or_pd(safe, zero_ok));
    mask_pd(ok) == 0b11
}

/// Four singles: as [`packed_ok_pd`].
#[inline(always)]
fn packed_ok_ps(kind: Kind, d: __m128i, s: __m128i, r: __m128i) -> bool {
    let bits = |v: i32| ps_of(splat32(v));
    let (abs_mask, inf) = (bits(i32::MAX), bits(0x7f80_0000));
    let (min, min2) = (bits(0x0080_0000), bits(0x0100_0000));
    let zero = zero_ps();
    let abs = |v: __m128i| and_ps(ps_of(v), abs_mask);
    let (a, b, x) = (abs(d), abs(s), abs(r));
    let a = if kind == Kind::Sqrt { b } else { a };
    let ordinary = |v: __m128| or_ps(and_ps(le_ps(min, v), lt_ps(v, inf)), eq_ps(v, zero));
    let safe = and_ps(le_ps(min2, x), lt_ps(x, inf));
    let zero_ok = if kind == Kind::AddSub {
        eq_ps(x, zero)
    } else {
        and_ps(eq_ps(x, zero), or_ps(eq_ps(a, zero), eq_ps(b, zero)))
    };
    let ok = and_ps(and_ps(ordinary(a), ordinary(b)), or_ps(safe, zero_ok));
    mask_ps(ok) == 0b1111
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> u64 {
        x.to_bits()
    }

    fn s(x: f32) -> u64 {
        x.to_bits() as u64
    }

    #[test]
    fn operand_classes() {
        for (x, single, ord, qui) in [
            (d(1.5), false, true, true),
            (d(-0.0), false, true, true),
            (d(f64::INFINITY), false, false, true),
            (d(f64::NAN), false, false, false),
            (1, false, false, false), // a denormal
            (s(2.0), true, true, true),
            (s(f32::NEG_INFINITY), true, false, true),
            (s(f32::NAN), true, false, false),
            (0x8000_0001, true, false, false), // a negative denormal
        ] {
            assert_eq!(ordinary(x, single), ord, "{x:#x}");
            assert_eq!(quiet(x, single), qui, "{x:#x}");
        }
    }

    #[test]
    fn results_near_the_underflow_threshold_are_not_safe() {
        assert!(
            !safe(d(f64::MIN_POSITIVE), false),
            "could be a rounded-up tiny result"
        );
        assert!(safe(d(f64::MIN_POSITIVE * 2.0), false));
        assert!(!safe(s(f32::MIN_POSITIVE), true));
        assert!(safe(s(f32::MIN_POSITIVE * 2.0), true));
        assert!(
            !safe(d(f64::INFINITY), false),
            "an overflow or a division by zero"
        );
        assert!(safe(d(f64::MAX), false));
    }

    #[test]
    fn zero_results_are_exact_only_where_the_rules_say() {
        let (one, zero) = ([d(1.0), 0], [d(0.0), 0]);
        assert!(arith_ok(Kind::AddSub, false, 1, one, one, zero), "1 - 1");
        assert!(arith_ok(Kind::MulDiv, false, 1, zero, one, zero), "0 * 1");
        let tiny = [d(1e-200), 0];
        assert!(
            !arith_ok(Kind::MulDiv, false, 1, tiny, tiny, zero),
            "1e-200 * 1e-200 underflows to zero"
        );
        assert!(arith_ok(Kind::Sqrt, false, 1, one, zero, zero), "sqrt(0)");
    }

    #[test]
    fn every_lane_counts() {
        let ok = [s(1.0) | s(2.0) << 32, s(3.0) | s(4.0) << 32];
        let nan = [s(1.0) | s(2.0) << 32, s(3.0) | s(f32::NAN) << 32];
        assert!(quiet_ok(true, 4, ok, ok));
        assert!(!quiet_ok(true, 4, ok, nan), "the NaN in lane 3");
        assert!(quiet_ok(true, 3, ok, nan), "lane 3 is not compared");
    }

    #[test]
    fn pe_must_be_set_and_the_mode_default() {
        assert!(!may_try(mxcsr::DEFAULT));
        assert!(may_try(mxcsr::DEFAULT | mxcsr::PE));
        assert!(
            may_try(mxcsr::PE),
            "unmasked exceptions do not change results"
        );
        assert!(!may_try(mxcsr::DEFAULT | mxcsr::PE | 1 << 13), "round down");
        assert!(!may_try(mxcsr::DEFAULT | mxcsr::PE | 1 << 15), "FTZ");
        assert!(!may_try(mxcsr::DEFAULT | mxcsr::PE | 1 << 6), "DAZ");
    }

    #[test]
    fn the_packed_checks_agree_with_the_lane_checks() {
        use crate::x86_64::sse::to_m;
        let special = [
            0u64,
            1 << 63,
            1,
            0x000f_ffff_ffff_ffff,
            0x0010_0000_0000_0000,
            0x001f_ffff_ffff_ffff,
            0x0020_0000_0000_0000,
            0x7fef_ffff_ffff_ffff,
            0x7ff0_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0x7ff0_0000_0000_0001,
            0x3ff0_0000_0000_0000,
            0x0000_0001_0000_0001, // a single denormal in each half
            0x0080_0000_0100_0000, // the singles' smallest normal and twice it
            0x7f80_0000_3f80_0000, // a single infinity and 1.0
            0xff80_0001_0000_0000, // a single NaN and +0
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            special[(seed % 16) as usize] ^ ((seed >> 20 & 0x3) * (seed & 1))
        };
        for _ in 0..20_000 {
            let (d, s, r) = ([next(), next()], [next(), next()], [next(), next()]);
            for kind in [Kind::AddSub, Kind::MulDiv, Kind::Sqrt] {
                for (single, lanes) in [(false, 2), (true, 4)] {
                    assert_eq!(
                        packed_arith_ok(kind, single, to_m(d), to_m(s), to_m(r)),
                        arith_ok(kind, single, lanes, d, s, r),
                        "{kind:?} single {single}: {d:x?} {s:x?} -> {r:x?}"
                    );
                }
            }
        }
    }
}
