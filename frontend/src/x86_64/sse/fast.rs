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
        ok &= ordinary(a, single)
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
}
