//! The F/D rules of the RISC-V manual, case by case, with the expected bits worked out from
//! the spec; then the SSE path against the software path on many generated operands.

use super::helpers::*;
use super::RoundingMode::{Rdn, Rmm, Rne, Rtz, Rup};
use super::*;

const NX: Flags = Flags::NX;
const UF: Flags = Flags::UF;
const OF: Flags = Flags::OF;
const DZ: Flags = Flags::DZ;
const NV: Flags = Flags::NV;
const NONE: Flags = Flags::NONE;

/// Single register bits for an f32, NaN-boxed.
fn s(x: f32) -> u64 {
    box_s(x.to_bits() as u64)
}
fn sb(bits: u32) -> u64 {
    box_s(bits as u64)
}
fn d(x: f64) -> u64 {
    x.to_bits()
}

const CANON_S: u64 = 0xffff_ffff_7fc0_0000;
const CANON_D: u64 = 0x7ff8_0000_0000_0000;
const QNAN_D: u64 = 0x7ff8_0000_dead_beef;
const SNAN_D: u64 = 0x7ff0_0000_0000_0001;
const QNAN_S: u32 = 0x7fc1_2345;
const SNAN_S: u32 = 0x7f80_0001;
const MIN_NORMAL_D: u64 = 0x0010_0000_0000_0000;
const MAX_D: u64 = 0x7fef_ffff_ffff_ffff;
const INF_D: u64 = 0x7ff0_0000_0000_0000;
const NEG_INF_D: u64 = 0xfff0_0000_0000_0000;

/// Checks the public function and its software twin give `want`.
macro_rules! check {
    ($f:ident($($a:expr),*; $rm:expr) => ($want:expr, $flags:expr)) => {{
        let want = ($want, $flags);
        let args: &[u64] = &[$($a),*];
        assert_eq!($f($($a,)* $rm), want, "{}({:x?}) {:?}", stringify!($f), args, $rm);
        assert_eq!(software::$f($($a,)* $rm), want, "software::{}({:x?}) {:?}",
            stringify!($f), args, $rm);
    }};
}

#[test]
fn singles_that_are_not_nan_boxed_read_as_the_canonical_nan() {
    let unboxed_one = 1.0f32.to_bits() as u64; // upper half zero
    check!(fadd_s(unboxed_one, s(1.0); Rne) => (CANON_S, NONE));
    check!(fadd_s(0x7fff_ffff_3f80_0000, s(1.0); Rne) => (CANON_S, NONE));
    assert_eq!(fclass_s(unboxed_one), 1 << 9, "a quiet NaN");
    assert_eq!(feq_s(unboxed_one, unboxed_one), (0, NONE), "quiet: no NV");
    assert_eq!(fmin_s(unboxed_one, s(2.0)), (s(2.0), NONE));
    assert_eq!(fcvt_d_s(unboxed_one, Rne), (CANON_D, NONE));
    // Sign injection reads the canonical NaN too, and boxes its result.
    assert_eq!(fsgnj_s(unboxed_one, s(-1.0)), 0xffff_ffff_ffc0_0000);
    assert_eq!(fsgnjn_s(s(1.0), unboxed_one), s(-1.0));
}

#[test]
fn single_results_are_nan_boxed() {
    check!(fadd_s(s(1.0), s(2.0); Rne) => (s(3.0), NONE));
    check!(fcvt_s_d(d(0.5); Rne) => (s(0.5), NONE));
    assert_eq!(fcvt_s_w(3, Rne), (s(3.0), NONE));
    assert_eq!(fmax_s(s(1.0), s(-1.0)), (s(1.0), NONE));
}

#[test]
fn nan_results_are_canonical_and_only_snan_or_invalid_sets_nv() {
    check!(fadd_d(QNAN_D, d(1.0); Rne) => (CANON_D, NONE));
    check!(fmul_d(d(1.0), QNAN_D | 1 << 63; Rup) => (CANON_D, NONE));
    check!(fadd_d(SNAN_D, d(1.0); Rne) => (CANON_D, NV));
    check!(fdiv_d(d(1.0), SNAN_D; Rmm) => (CANON_D, NV));
    check!(fsub_d(INF_D, INF_D; Rne) => (CANON_D, NV));
    check!(fadd_d(INF_D, NEG_INF_D; Rtz) => (CANON_D, NV));
    check!(fmul_d(INF_D, 0; Rne) => (CANON_D, NV));
    check!(fdiv_d(0, 0; Rne) => (CANON_D, NV));
    check!(fdiv_d(INF_D, NEG_INF_D; Rne) => (CANON_D, NV));
    check!(fsqrt_d(d(-1.0); Rne) => (CANON_D, NV));
    check!(fsqrt_d(NEG_INF_D; Rne) => (CANON_D, NV));
    check!(fadd_s(sb(QNAN_S), s(1.0); Rne) => (CANON_S, NONE));
    check!(fmul_s(sb(SNAN_S), s(1.0); Rne) => (CANON_S, NV));
    check!(fsqrt_s(sb(SNAN_S); Rmm) => (CANON_S, NV));
    check!(fcvt_s_d(SNAN_D; Rne) => (CANON_S, NV));
    check!(fcvt_s_d(QNAN_D; Rne) => (CANON_S, NONE));
    assert_eq!(fcvt_d_s(sb(SNAN_S), Rne), (CANON_D, NV));
    assert_eq!(fcvt_d_s(sb(QNAN_S), Rne), (CANON_D, NONE));
}

#[test]
fn division_by_zero_gives_a_signed_infinity_and_dz() {
    check!(fdiv_d(d(1.0), 0; Rne) => (INF_D, DZ));
    check!(fdiv_d(d(-1.0), 0; Rne) => (NEG_INF_D, DZ));
    check!(fdiv_d(d(1.0), d(-0.0); Rtz) => (NEG_INF_D, DZ));
    check!(fdiv_d(INF_D, 0; Rne) => (INF_D, NONE));
    check!(fdiv_s(s(2.0), s(0.0); Rmm) => (s(f32::INFINITY), DZ));
}

#[test]
fn each_rounding_mode_rounds_its_way() {
    // 1 + 2^-53 is half an ulp above 1: a tie.
    let tie = d(f64::from_bits(0x3ca0_0000_0000_0000)); // 2^-53
    let one_up = 0x3ff0_0000_0000_0001;
    check!(fadd_d(d(1.0), tie; Rne) => (d(1.0), NX));
    check!(fadd_d(d(1.0), tie; Rtz) => (d(1.0), NX));
    check!(fadd_d(d(1.0), tie; Rdn) => (d(1.0), NX));
    check!(fadd_d(d(1.0), tie; Rup) => (one_up, NX));
    check!(fadd_d(d(1.0), tie; Rmm) => (one_up, NX));
    // Negative: directions swap, ties away from zero stay away from zero.
    let neg_one_up = one_up | 1 << 63;
    check!(fadd_d(d(-1.0), tie | 1 << 63; Rne) => (d(-1.0), NX));
    check!(fadd_d(d(-1.0), tie | 1 << 63; Rdn) => (neg_one_up, NX));
    check!(fadd_d(d(-1.0), tie | 1 << 63; Rup) => (d(-1.0), NX));
    check!(fadd_d(d(-1.0), tie | 1 << 63; Rmm) => (neg_one_up, NX));
    // A tie with an odd neighbour: RNE goes to the even one (up), like RMM.
    check!(fadd_d(one_up, tie; Rne) => (0x3ff0_0000_0000_0002, NX));
    check!(fadd_d(one_up, tie; Rmm) => (0x3ff0_0000_0000_0002, NX));
    check!(fadd_d(one_up, tie; Rtz) => (one_up, NX));
    // 1/3 is not a tie: RMM is nearest.
    check!(fdiv_d(d(1.0), d(3.0); Rne) => (0x3fd5_5555_5555_5555, NX));
    check!(fdiv_d(d(1.0), d(3.0); Rmm) => (0x3fd5_5555_5555_5555, NX));
    check!(fdiv_d(d(1.0), d(3.0); Rup) => (0x3fd5_5555_5555_5556, NX));
    check!(fdiv_d(d(-1.0), d(3.0); Rdn) => (0xbfd5_5555_5555_5556, NX));
    // sqrt(2) = 1.41421356237309504880..., just below 0x3ff6a09e667f3bcd.
    check!(fsqrt_d(d(2.0); Rne) => (0x3ff6_a09e_667f_3bcd, NX));
    check!(fsqrt_d(d(2.0); Rtz) => (0x3ff6_a09e_667f_3bcc, NX));
    check!(fsqrt_d(d(2.0); Rup) => (0x3ff6_a09e_667f_3bcd, NX));
    check!(fsqrt_d(d(4.0); Rmm) => (d(2.0), NONE));
    check!(fsqrt_d(d(-0.0); Rne) => (d(-0.0), NONE));
    // Singles: 1 + 2^-24 is a tie.
    check!(fadd_s(s(1.0), sb(0x3380_0000); Rmm) => (sb(0x3f80_0001), NX));
    check!(fadd_s(s(1.0), sb(0x3380_0000); Rne) => (s(1.0), NX));
}

#[test]
fn exact_zero_sums_are_positive_except_when_rounding_down() {
    for rm in [Rne, Rtz, Rup, Rmm] {
        check!(fsub_d(d(1.5), d(1.5); rm) => (d(0.0), NONE));
        check!(fadd_d(d(0.0), d(-0.0); rm) => (d(0.0), NONE));
        check!(fmadd_d(d(1.0), d(1.0), d(-1.0); rm) => (d(0.0), NONE));
    }
    check!(fsub_d(d(1.5), d(1.5); Rdn) => (d(-0.0), NONE));
    check!(fadd_d(d(0.0), d(-0.0); Rdn) => (d(-0.0), NONE));
    check!(fadd_d(d(-0.0), d(-0.0); Rne) => (d(-0.0), NONE));
    check!(fmadd_d(d(1.0), d(1.0), d(-1.0); Rdn) => (d(-0.0), NONE));
    // fnmadd = -(a*b) - c: -(+0) - (+0) = -0 in every mode.
    check!(fnmadd_d(d(0.0), d(1.0), d(0.0); Rne) => (d(-0.0), NONE));
    // fmsub = a*b - c: +0 - +0 is an opposite-sign zero sum.
    check!(fmsub_d(d(0.0), d(1.0), d(0.0); Rne) => (d(0.0), NONE));
    check!(fmsub_d(d(0.0), d(1.0), d(0.0); Rdn) => (d(-0.0), NONE));
}

#[test]
fn overflow_goes_to_infinity_or_the_largest_finite_by_direction() {
    check!(fmul_d(MAX_D, d(2.0); Rne) => (INF_D, OF | NX));
    check!(fmul_d(MAX_D, d(2.0); Rmm) => (INF_D, OF | NX));
    check!(fmul_d(MAX_D, d(2.0); Rtz) => (MAX_D, OF | NX));
    check!(fmul_d(MAX_D, d(2.0); Rdn) => (MAX_D, OF | NX));
    check!(fmul_d(MAX_D, d(2.0); Rup) => (INF_D, OF | NX));
    check!(fmul_d(MAX_D, d(-2.0); Rdn) => (NEG_INF_D, OF | NX));
    check!(fmul_d(MAX_D, d(-2.0); Rup) => (MAX_D | 1 << 63, OF | NX));
    // Rounding up into overflow: max + half an ulp.
    let half_ulp = 0x7c90_0000_0000_0000; // 2^970
    check!(fadd_d(MAX_D, half_ulp; Rne) => (INF_D, OF | NX));
    check!(fadd_d(MAX_D, half_ulp; Rtz) => (MAX_D, NX));
    check!(fcvt_s_d(d(1e300); Rne) => (s(f32::INFINITY), OF | NX));
    check!(fcvt_s_d(d(1e300); Rtz) => (s(f32::MAX), OF | NX));
}

#[test]
fn tininess_is_detected_after_rounding() {
    // 2^-1022 - 2^-1076: below the smallest normal, but rounding it to 53 bits with an
    // unbounded exponent gives exactly 2^-1022 (a tie, to even) — not tiny, so no UF.
    let tiny_product = (d(-(2f64.powi(-538))), d(2f64.powi(-538)));
    for rm in [Rne, Rup, Rmm] {
        check!(fmadd_d(tiny_product.0, tiny_product.1, MIN_NORMAL_D; rm) => (MIN_NORMAL_D, NX));
    }
    // Rounding toward zero keeps it below 2^-1022: tiny and inexact.
    check!(fmadd_d(tiny_product.0, tiny_product.1, MIN_NORMAL_D; Rtz)
        => (MIN_NORMAL_D - 1, UF | NX));
    // Exact subnormal results are tiny but not inexact: no UF.
    check!(fmul_d(MIN_NORMAL_D, d(0.5); Rne) => (0x0008_0000_0000_0000, NONE));
    // The smallest subnormal halved: a tie between 0 and itself.
    check!(fmul_d(1, d(0.5); Rne) => (0, UF | NX));
    check!(fmul_d(1, d(0.5); Rmm) => (1, UF | NX));
    check!(fmul_d(1, d(0.5); Rup) => (1, UF | NX));
    check!(fmul_d(1 | 1u64 << 63, d(0.5); Rdn) => (1 | 1u64 << 63, UF | NX));
    // Singles: 2^-126 * (1 - 2^-24) = 2^-126 - 2^-150 has 24 significant bits, so rounding
    // with an unbounded exponent leaves it below 2^-126: tiny, although the subnormal
    // rounding (a tie, to even) does give 2^-126.
    check!(fmul_s(sb(0x0080_0000), sb(0x3f7f_ffff); Rne) => (sb(0x0080_0000), UF | NX));
    check!(fmul_s(sb(0x0080_0000), sb(0x3f7f_ffff); Rtz) => (sb(0x007f_ffff), UF | NX));
    // 2^-126 - 2^-151 needs 25 bits: rounded to 24 it is 2^-126 (a tie, to even), not tiny.
    check!(fcvt_s_d(0x380f_ffff_f000_0000; Rne) => (sb(0x0080_0000), NX));
    check!(fcvt_s_d(0x380f_ffff_f000_0000; Rdn) => (sb(0x007f_ffff), UF | NX));
}

#[test]
fn fused_multiply_add_rounds_once() {
    // (1 + 2^-52)(1 - 2^-52) - 1 = -2^-104 exactly; a separate multiply would round to 0.
    let a = 0x3ff0_0000_0000_0001;
    let b = 0x3fef_ffff_ffff_fffe;
    check!(fmadd_d(a, b, d(-1.0); Rne) => (0xb970_0000_0000_0000, NONE));
    check!(fmsub_d(a, b, d(1.0); Rne) => (0xb970_0000_0000_0000, NONE));
    check!(fnmsub_d(a, b, d(1.0); Rne) => (0x3970_0000_0000_0000, NONE));
    check!(fnmadd_d(a, b, d(-1.0); Rne) => (0x3970_0000_0000_0000, NONE));
    check!(fmadd_s(sb(0x3f80_0001), sb(0x3f7f_fffe), s(-1.0); Rne) => (sb(0xa880_0000), NONE));
    // Plain cases and the RMM software path.
    check!(fmadd_d(d(2.0), d(3.0), d(4.0); Rmm) => (d(10.0), NONE));
    check!(fnmadd_s(s(2.0), s(3.0), s(4.0); Rne) => (s(-10.0), NONE));
}

#[test]
fn fused_multiply_add_invalid_cases() {
    let qnan = QNAN_D;
    // inf * 0 is invalid even with a quiet NaN addend (the manual says so explicitly).
    check!(fmadd_d(INF_D, 0, qnan; Rne) => (CANON_D, NV));
    check!(fnmsub_d(0, NEG_INF_D, qnan; Rne) => (CANON_D, NV));
    check!(fmadd_d(INF_D, 0, d(1.0); Rne) => (CANON_D, NV));
    check!(fmadd_s(sb(0x7f80_0000), s(0.0), sb(QNAN_S); Rne) => (CANON_S, NV));
    // Other NaN cases: NV only for a signalling operand.
    check!(fmadd_d(d(1.0), d(2.0), qnan; Rne) => (CANON_D, NONE));
    check!(fmadd_d(d(1.0), SNAN_D, d(2.0); Rne) => (CANON_D, NV));
    // inf - inf after the product.
    check!(fmadd_d(INF_D, d(1.0), NEG_INF_D; Rne) => (CANON_D, NV));
    check!(fmsub_d(INF_D, d(1.0), INF_D; Rne) => (CANON_D, NV));
    check!(fmadd_d(INF_D, d(1.0), INF_D; Rne) => (INF_D, NONE));
    check!(fnmadd_d(INF_D, d(1.0), d(5.0); Rne) => (NEG_INF_D, NONE));
}

#[test]
fn conversions_to_integers_saturate_as_the_table_says() {
    // NaN -> largest positive; +-inf and out-of-range -> the nearer bound; NV, no NX.
    let max_w = 0x7fff_ffff;
    let min_w = 0xffff_ffff_8000_0000; // sign-extended
    assert_eq!(fcvt_w_d(QNAN_D, Rne), (max_w, NV));
    assert_eq!(fcvt_w_d(NEG_INF_D, Rne), (min_w, NV));
    assert_eq!(fcvt_w_d(INF_D, Rne), (max_w, NV));
    assert_eq!(fcvt_w_d(d(2147483648.0), Rne), (max_w, NV));
    assert_eq!(fcvt_w_d(d(-2147483648.0), Rne), (min_w, NONE));
    assert_eq!(fcvt_w_d(d(-2147483648.5), Rtz), (min_w, NX));
    assert_eq!(fcvt_w_d(d(-2147483648.5), Rdn), (min_w, NV));
    assert_eq!(
        fcvt_w_d(d(2147483647.5), Rne),
        (max_w, NV),
        "rounds to 2^31"
    );
    assert_eq!(fcvt_w_d(d(2147483647.5), Rtz), (max_w, NX));
    // Unsigned: negatives that round to zero are fine, others invalid; NaN -> all ones,
    // sign-extended from 32 bits.
    assert_eq!(fcvt_wu_d(QNAN_D, Rne), (u64::MAX, NV));
    assert_eq!(fcvt_wu_d(INF_D, Rne), (u64::MAX, NV));
    assert_eq!(fcvt_wu_d(NEG_INF_D, Rne), (0, NV));
    assert_eq!(fcvt_wu_d(d(-1.0), Rne), (0, NV));
    assert_eq!(fcvt_wu_d(d(-0.5), Rne), (0, NX));
    assert_eq!(fcvt_wu_d(d(-0.5), Rmm), (0, NV), "rounds to -1");
    assert_eq!(fcvt_wu_d(d(-0.9), Rtz), (0, NX));
    assert_eq!(fcvt_wu_d(d(4294967295.0), Rne), (u64::MAX, NONE));
    assert_eq!(
        fcvt_wu_d(d(2147483648.0), Rne),
        (0xffff_ffff_8000_0000, NONE)
    );
    assert_eq!(fcvt_l_d(QNAN_D, Rne), (i64::MAX as u64, NV));
    assert_eq!(
        fcvt_l_d(d(-9223372036854775808.0), Rne),
        (i64::MIN as u64, NONE)
    );
    assert_eq!(
        fcvt_l_d(d(9223372036854775808.0), Rne),
        (i64::MAX as u64, NV)
    );
    assert_eq!(fcvt_lu_d(SNAN_D, Rne), (u64::MAX, NV));
    assert_eq!(
        fcvt_lu_d(d(18446744073709549568.0), Rne),
        (0xffff_ffff_ffff_f800, NONE)
    );
    assert_eq!(fcvt_lu_d(d(18446744073709551616.0), Rne), (u64::MAX, NV));
    assert_eq!(fcvt_l_s(sb(0xff80_0000), Rne), (i64::MIN as u64, NV));
    assert_eq!(fcvt_lu_s(s(-0.0), Rne), (0, NONE));
    assert_eq!(
        fcvt_w_s(0x3f80_0000, Rne),
        (max_w, NV),
        "unboxed: canonical NaN"
    );
    // Ties: RNE to even, RMM away from zero.
    assert_eq!(fcvt_w_d(d(2.5), Rne), (2, NX));
    assert_eq!(fcvt_w_d(d(2.5), Rmm), (3, NX));
    assert_eq!(fcvt_w_d(d(-2.5), Rmm), (-3i64 as u64, NX));
    assert_eq!(fcvt_w_d(d(-2.5), Rne), (-2i64 as u64, NX));
    assert_eq!(fcvt_w_d(d(-2.5), Rup), (-2i64 as u64, NX));
    assert_eq!(fcvt_w_d(d(-2.5), Rdn), (-3i64 as u64, NX));
    assert_eq!(fcvt_w_s(s(0.5), Rmm), (1, NX));
    assert_eq!(fcvt_w_s(s(0.5), Rne), (0, NX));
    assert_eq!(
        fcvt_l_d(1, Rup),
        (1, NX),
        "smallest subnormal rounds up to 1"
    );
}

#[test]
fn conversions_from_integers_round_and_read_32_bit_sources_from_the_low_half() {
    assert_eq!(fcvt_s_l((1 << 24) + 1, Rne), (s(16777216.0), NX));
    assert_eq!(fcvt_s_l((1 << 24) + 1, Rup), (s(16777218.0), NX));
    assert_eq!(fcvt_s_l((1 << 24) + 1, Rmm), (s(16777218.0), NX));
    assert_eq!(
        fcvt_s_l(-((1 << 24) + 1i64) as u64, Rup),
        (s(-16777216.0), NX)
    );
    assert_eq!(fcvt_s_lu(u64::MAX, Rne), (sb(0x5f80_0000), NX));
    assert_eq!(fcvt_s_lu(u64::MAX, Rtz), (sb(0x5f7f_ffff), NX));
    assert_eq!(fcvt_s_l(u64::MAX, Rne), (s(-1.0), NONE));
    assert_eq!(fcvt_s_w(0x1_0000_0001, Rne), (s(1.0), NONE));
    assert_eq!(fcvt_s_wu(0xffff_ffff_ffff_ffff, Rtz), (sb(0x4f7f_ffff), NX));
    assert_eq!(fcvt_d_w(0xffff_ffff, Rne), (d(-1.0), NONE));
    assert_eq!(
        fcvt_d_wu(0xffff_ffff_ffff_ffff, Rne),
        (d(4294967295.0), NONE)
    );
    assert_eq!(
        fcvt_d_l(i64::MIN as u64, Rne),
        (d(-9223372036854775808.0), NONE)
    );
    assert_eq!(fcvt_d_lu(u64::MAX, Rdn), (0x43ef_ffff_ffff_ffff, NX));
    assert_eq!(
        fcvt_d_l(0, Rdn),
        (0, NONE),
        "integer zero is +0 in every mode"
    );
}

#[test]
fn fmin_fmax_follow_minimum_number() {
    assert_eq!(fmin_d(d(-0.0), d(0.0)), (d(-0.0), NONE));
    assert_eq!(fmin_d(d(0.0), d(-0.0)), (d(-0.0), NONE));
    assert_eq!(fmax_d(d(-0.0), d(0.0)), (d(0.0), NONE));
    assert_eq!(fmax_d(d(0.0), d(-0.0)), (d(0.0), NONE));
    assert_eq!(fmin_d(QNAN_D, d(1.0)), (d(1.0), NONE));
    assert_eq!(fmax_d(d(1.0), QNAN_D), (d(1.0), NONE));
    assert_eq!(fmin_d(SNAN_D, d(1.0)), (d(1.0), NV));
    assert_eq!(fmax_d(QNAN_D, QNAN_D), (CANON_D, NONE));
    assert_eq!(fmin_d(SNAN_D, QNAN_D), (CANON_D, NV));
    assert_eq!(fmin_d(d(-3.0), d(2.0)), (d(-3.0), NONE));
    assert_eq!(fmax_d(NEG_INF_D, d(-1e300)), (d(-1e300), NONE));
    assert_eq!(fmin_s(s(-0.0), s(0.0)), (s(-0.0), NONE));
    assert_eq!(fmax_s(sb(SNAN_S), s(-7.0)), (s(-7.0), NV));
    assert_eq!(fmax_s(sb(SNAN_S), sb(QNAN_S)), (CANON_S, NV));
}

#[test]
fn comparisons_feq_is_quiet_flt_fle_signal() {
    assert_eq!(feq_d(QNAN_D, d(1.0)), (0, NONE));
    assert_eq!(feq_d(SNAN_D, d(1.0)), (0, NV));
    assert_eq!(flt_d(QNAN_D, d(1.0)), (0, NV));
    assert_eq!(fle_d(d(1.0), QNAN_D), (0, NV));
    assert_eq!(feq_d(d(-0.0), d(0.0)), (1, NONE));
    assert_eq!(flt_d(d(-0.0), d(0.0)), (0, NONE));
    assert_eq!(fle_d(d(0.0), d(-0.0)), (1, NONE));
    assert_eq!(flt_d(d(-2.0), d(-1.0)), (1, NONE));
    assert_eq!(flt_d(d(-1.0), d(-2.0)), (0, NONE));
    assert_eq!(fle_d(NEG_INF_D, INF_D), (1, NONE));
    assert_eq!(feq_s(s(1.5), s(1.5)), (1, NONE));
    assert_eq!(flt_s(sb(QNAN_S), s(1.0)), (0, NV));
    assert_eq!(feq_s(sb(SNAN_S), s(1.0)), (0, NV));
}

#[test]
fn fclass_sets_one_of_ten_bits() {
    let d_cases = [
        (NEG_INF_D, 0),
        (d(-1.0), 1),
        (0x800f_ffff_ffff_ffff, 2),
        (d(-0.0), 3),
        (d(0.0), 4),
        (1, 5),
        (MIN_NORMAL_D, 6),
        (INF_D, 7),
        (SNAN_D, 8),
        (QNAN_D, 9),
        (SNAN_D | 1 << 63, 8),
    ];
    for (x, bit) in d_cases {
        assert_eq!(fclass_d(x), 1 << bit, "{x:#x}");
    }
    let s_cases = [
        (0xff80_0000, 0),
        (0xbf80_0000, 1),
        (0x8000_0001, 2),
        (0x8000_0000, 3),
        (0, 4),
        (0x007f_ffff, 5),
        (0x7f7f_ffff, 6),
        (0x7f80_0000, 7),
        (SNAN_S, 8),
        (QNAN_S, 9),
    ];
    for (x, bit) in s_cases {
        assert_eq!(fclass_s(sb(x)), 1 << bit, "{x:#x}");
    }
}

#[test]
fn sign_injection() {
    assert_eq!(fsgnj_d(d(1.0), d(-2.0)), d(-1.0));
    assert_eq!(fsgnjn_d(d(1.0), d(-2.0)), d(1.0));
    assert_eq!(fsgnjx_d(d(-1.0), d(-2.0)), d(1.0));
    assert_eq!(
        fsgnj_d(SNAN_D, d(-2.0)),
        SNAN_D | 1 << 63,
        "no canonicalization"
    );
    assert_eq!(fsgnjx_s(s(-1.0), s(-2.0)), s(1.0));
}

#[test]
fn rounding_mode_fields_resolve_and_reserved_ones_are_illegal() {
    assert_eq!(RoundingMode::resolve(0, 4), Some(Rne));
    assert_eq!(RoundingMode::resolve(4, 0), Some(Rmm));
    assert_eq!(RoundingMode::resolve(7, 3), Some(Rup));
    assert_eq!(RoundingMode::resolve(5, 0), None);
    assert_eq!(RoundingMode::resolve(6, 0), None);
    for frm in 5..8 {
        assert_eq!(RoundingMode::resolve(7, frm), None);
    }
    assert!(RoundingMode::is_legal_field(7));
    assert!(!RoundingMode::is_legal_field(5));
}

// --- Helpers, through their ABI ---

fn call(h: &ir::Helper, cpu: &mut crate::riscv64::Riscv64Cpu, args: [u64; 5]) -> u64 {
    let env = cpu as *mut _ as u64;
    // SAFETY: `env` points to a live CPU state that nothing else uses during the call.
    unsafe { (h.func)(env, args[0], args[1], args[2], args[3], args[4]) }
}

#[test]
fn helpers_use_frm_for_dynamic_rounding_and_accrue_fflags() {
    let mut cpu = crate::riscv64::Riscv64Cpu::new(0);
    cpu.frm = Rup as u64;
    let third = call(&FDIV_D, &mut cpu, [d(1.0), d(3.0), 7, 0, 0]);
    assert_eq!(third, 0x3fd5_5555_5555_5556);
    assert_eq!(cpu.fflags, NX.bits() as u64);
    // A static mode overrides frm; flags are OR-ed in.
    let third = call(&FDIV_D, &mut cpu, [d(1.0), d(3.0), Rne as u64, 0, 0]);
    assert_eq!(third, 0x3fd5_5555_5555_5555);
    call(&FDIV_D, &mut cpu, [d(1.0), 0, 0, 0, 0]);
    assert_eq!(cpu.fflags, (NX | DZ).bits() as u64);
    // fma, fcvt and the comparisons.
    cpu.fflags = 0;
    let r = call(&FMADD_S, &mut cpu, [s(2.0), s(3.0), s(1.0), 7, 0]);
    assert_eq!(r, s(7.0));
    assert_eq!(call(&FCVT_W_D, &mut cpu, [QNAN_D, 1, 0, 0, 0]), 0x7fff_ffff);
    assert_eq!(cpu.fflags, NV.bits() as u64);
    cpu.fflags = 0;
    assert_eq!(call(&FLT_D, &mut cpu, [d(1.0), d(2.0), 0, 0, 0]), 1);
    assert_eq!(cpu.fflags, 0);
    // Pure ones take no env.
    // SAFETY: pure helpers dereference nothing.
    let class = unsafe { (FCLASS_D.func)(d(-0.0), 0, 0, 0, 0, 0) };
    assert_eq!(class, 1 << 3);
    // SAFETY: as above.
    let neg = unsafe { (FSGNJN_S.func)(s(1.0), s(1.0), 0, 0, 0, 0) };
    assert_eq!(neg, s(-1.0));
}

#[test]
fn helpers_with_an_invalid_mode_do_nothing_and_frm_valid_reports_it() {
    let mut cpu = crate::riscv64::Riscv64Cpu::new(0);
    cpu.frm = 5;
    assert_eq!(call(&FRM_VALID, &mut cpu, [0; 5]), 0);
    assert_eq!(call(&FDIV_D, &mut cpu, [d(1.0), 0, 7, 0, 0]), 0);
    assert_eq!(call(&FADD_D, &mut cpu, [d(1.0), d(1.0), 6, 0, 0]), 0);
    assert_eq!(cpu.fflags, 0, "no flags from an illegal instruction");
    cpu.frm = 4;
    assert_eq!(call(&FRM_VALID, &mut cpu, [0; 5]), 1);
}

// --- SSE against software ---

/// xorshift64*: deterministic operands without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Operands that reach the interesting places: exponents at the extremes and near each
    /// other, significands with few or many bits, specials.
    fn operand(&mut self, f: soft::Fmt) -> u64 {
        let r = self.next();
        let sign = (r & 1) << (f.exp_bits + f.frac_bits);
        let emax = (1u64 << f.exp_bits) - 1;
        let exp = match (r >> 1) % 8 {
            0 => 0,
            1 => 1 + (r >> 8) % 3,
            2 => emax - 1 - (r >> 8) % 3,
            3 => emax,
            4 => emax / 2 + (r >> 8) % 8 - 4,
            _ => (r >> 8) % emax,
        };
        let frac_mask = (1u64 << f.frac_bits) - 1;
        let frac = match (r >> 4) % 5 {
            0 => 0,
            1 => 1 << ((r >> 20) % f.frac_bits as u64),
            2 => frac_mask,
            3 => frac_mask ^ (1 << ((r >> 20) % f.frac_bits as u64)),
            _ => self.next() & frac_mask,
        };
        sign | (exp << f.frac_bits) | frac
    }
}

/// Every SSE-backed operation agrees with the software path, bit for bit and flag for flag,
/// in the four modes SSE has (RMM is software on both).
#[test]
fn sse_and_software_paths_agree() {
    type Op2 = fn(u64, u64, RoundingMode) -> (u64, Flags);
    type Op3 = fn(u64, u64, u64, RoundingMode) -> (u64, Flags);
    let binary: [(&str, Op2, Op2, bool); 8] = [
        ("fadd_s", fadd_s, software::fadd_s, true),
        ("fsub_s", fsub_s, software::fsub_s, true),
        ("fmul_s", fmul_s, software::fmul_s, true),
        ("fdiv_s", fdiv_s, software::fdiv_s, true),
        ("fadd_d", fadd_d, software::fadd_d, false),
        ("fsub_d", fsub_d, software::fsub_d, false),
        ("fmul_d", fmul_d, software::fmul_d, false),
        ("fdiv_d", fdiv_d, software::fdiv_d, false),
    ];
    let ternary: [(&str, Op3, Op3, bool); 8] = [
        ("fmadd_s", fmadd_s, software::fmadd_s, true),
        ("fmsub_s", fmsub_s, software::fmsub_s, true),
        ("fnmsub_s", fnmsub_s, software::fnmsub_s, true),
        ("fnmadd_s", fnmadd_s, software::fnmadd_s, true),
        ("fmadd_d", fmadd_d, software::fmadd_d, false),
        ("fmsub_d", fmsub_d, software::fmsub_d, false),
        ("fnmsub_d", fnmsub_d, software::fnmsub_d, false),
        ("fnmadd_d", fnmadd_d, software::fnmadd_d, false),
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let fmt = |single: bool| if single { soft::S } else { soft::D };
    let reg = |single: bool, x: u64| if single { box_s(x) } else { x };
    for _ in 0..20_000 {
        for rm in [Rne, Rtz, Rdn, Rup] {
            for (name, hw, sw, single) in binary {
                let a = reg(single, rng.operand(fmt(single)));
                let b = reg(single, rng.operand(fmt(single)));
                assert_eq!(hw(a, b, rm), sw(a, b, rm), "{name}({a:#x}, {b:#x}) {rm:?}");
            }
            for (name, hw, sw, single) in ternary {
                let a = reg(single, rng.operand(fmt(single)));
                let b = reg(single, rng.operand(fmt(single)));
                // Addends near the (rounded) product make deep cancellation likely.
                let c = if rng.next() % 2 == 0 {
                    let p = if single {
                        fmul_s(a, b, rm).0
                    } else {
                        fmul_d(a, b, rm).0
                    };
                    let flip = (rng.next() & 1) << if single { 31 } else { 63 };
                    reg(
                        single,
                        (p ^ (rng.next() % 4) ^ flip)
                            & fmt(single).sign_bit().wrapping_mul(2).wrapping_sub(1),
                    )
                } else {
                    reg(single, rng.operand(fmt(single)))
                };
                assert_eq!(
                    hw(a, b, c, rm),
                    sw(a, b, c, rm),
                    "{name}({a:#x}, {b:#x}, {c:#x}) {rm:?}"
                );
            }
            let a = rng.operand(soft::S);
            assert_eq!(
                fsqrt_s(box_s(a), rm),
                software::fsqrt_s(box_s(a), rm),
                "fsqrt_s({a:#x})"
            );
            let a = rng.operand(soft::D);
            assert_eq!(fsqrt_d(a, rm), software::fsqrt_d(a, rm), "fsqrt_d({a:#x})");
            assert_eq!(
                fcvt_s_d(a, rm),
                software::fcvt_s_d(a, rm),
                "fcvt_s_d({a:#x})"
            );
        }
    }
}

// --- The round-to-nearest fast path against software ---

impl Rng {
    /// Operands for the fast path's edges, often related to `near` (the other operand): raw
    /// bit patterns, the edge operands above, short significands (exact products and ties),
    /// the extremes of the exponent range and the fast path's own thresholds, values a few
    /// binades from `near` or a few ulps from it (cancellation, ties in sums), and ordinary
    /// magnitudes.
    fn fast_operand(&mut self, f: soft::Fmt, near: u64) -> u64 {
        let r = self.next();
        let width = f.exp_bits + f.frac_bits;
        let sign = (r & 1) << width;
        let emax = (1u64 << f.exp_bits) - 1;
        let frac_mask = (1u64 << f.frac_bits) - 1;
        let pick = |x: u64, n: u64| x % n;
        let with_exp = |exp: u64, frac: u64| sign | (exp.min(emax) << f.frac_bits) | frac;
        let near_exp = (near >> f.frac_bits) & emax;
        match pick(r >> 1, 9) {
            0 => self.operand(f),
            1 => self.next() & (sign.wrapping_mul(2).wrapping_sub(1) | sign),
            2 => {
                // An odd integer of 1..=28 bits (1..=24 for singles), placed at a random
                // normal exponent.
                let bits = 1 + pick(r >> 8, 28.min(f.frac_bits as u64 + 1)) as u32;
                let sig = (self.next() & ((1u64 << bits) - 1)) | 1 | (1 << (bits - 1));
                let frac = (sig << (f.frac_bits + 1 - bits)) & frac_mask;
                with_exp(1 + pick(r >> 16, emax - 1), frac)
            }
            3 => with_exp(emax - 1 - pick(r >> 8, 4), self.next() & frac_mask),
            4 => {
                // Near the underflow range and near the fast path's 2^-895 threshold (biased
                // exponent 128 in binary64).
                let exp = if pick(r >> 8, 2) == 0 || f.exp_bits == 8 {
                    pick(r >> 12, 30)
                } else {
                    100 + pick(r >> 12, 56)
                };
                with_exp(exp, self.next() & frac_mask)
            }
            5 => {
                // A few binades from `near`, up to just past the width of the significand.
                let d = pick(r >> 8, f.frac_bits as u64 + 4);
                let exp = if r >> 20 & 1 == 0 {
                    near_exp.saturating_sub(d)
                } else {
                    near_exp + d
                };
                let frac = if r >> 21 & 1 == 0 {
                    self.next() & frac_mask
                } else {
                    1 << pick(r >> 24, f.frac_bits as u64)
                };
                with_exp(exp, frac)
            }
            6 => (near ^ pick(r >> 8, 8)) ^ ((r >> 12 & 1) << width),
            _ => {
                let bias = emax / 2;
                with_exp(bias - 40 + pick(r >> 8, 80), self.next() & frac_mask)
            }
        }
    }
}

/// The fast path, where it answers, gives exactly the software path's bits and flags in RNE;
/// where it does not, the public functions still agree with software. Each operation must
/// take the fast path for a good share of the operands, or the comparison would prove little.
#[test]
fn round_to_nearest_fast_path_matches_software() {
    type Fast2 = fn(u64, u64) -> Option<(u64, Flags)>;
    type Op2 = fn(u64, u64, RoundingMode) -> (u64, Flags);
    type Fast3 = fn(u64, u64, u64) -> Option<(u64, Flags)>;
    type Op3 = fn(u64, u64, u64, RoundingMode) -> (u64, Flags);
    let binary: [(&str, Fast2, Op2, Op2, bool); 8] = [
        ("add_s", fast::add_s, fadd_s, software::fadd_s, true),
        ("sub_s", fast::sub_s, fsub_s, software::fsub_s, true),
        ("mul_s", fast::mul_s, fmul_s, software::fmul_s, true),
        ("div_s", fast::div_s, fdiv_s, software::fdiv_s, true),
        ("add_d", fast::add_d, fadd_d, software::fadd_d, false),
        ("sub_d", fast::sub_d, fsub_d, software::fsub_d, false),
        ("mul_d", fast::mul_d, fmul_d, software::fmul_d, false),
        ("div_d", fast::div_d, fdiv_d, software::fdiv_d, false),
    ];
    // The fast fma takes the product's and the addend's signs already applied: fmadd.
    let ternary: [(&str, Fast3, Op3, Op3, bool); 2] = [
        ("fma_s", fast::fma_s, fmadd_s, software::fmadd_s, true),
        ("fma_d", fast::fma_d, fmadd_d, software::fmadd_d, false),
    ];
    let fmt = |single: bool| if single { soft::S } else { soft::D };
    let reg = |single: bool, x: u64| if single { box_s(x) } else { x };
    let unreg = |single: bool, x: u64| if single { x & 0xffff_ffff } else { x };
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut hits = std::collections::BTreeMap::<&str, u32>::new();
    const N: u32 = 300_000;
    let mut checked = 0u64;
    for _ in 0..N {
        for (name, fast, public, sw, single) in binary {
            let a = rng.fast_operand(fmt(single), rng.0 & 0x7fff_ffff);
            let b = rng.fast_operand(fmt(single), a);
            let (a, b) = if rng.next() & 1 == 0 { (a, b) } else { (b, a) };
            let want = sw(reg(single, a), reg(single, b), Rne);
            if let Some(got) = fast(a, b) {
                *hits.entry(name).or_default() += 1;
                assert_eq!(
                    reg(single, got.0),
                    want.0,
                    "{name}({a:#x}, {b:#x}): {:?} vs {:?}",
                    got.1,
                    want.1
                );
                assert_eq!(got.1, want.1, "{name}({a:#x}, {b:#x}) flags");
            }
            let got = public(reg(single, a), reg(single, b), Rne);
            assert_eq!(got, want, "public {name}({a:#x}, {b:#x})");
            checked += 2;
        }
        for (name, fast, public, sw, single) in ternary {
            let f = fmt(single);
            let a = rng.fast_operand(f, rng.0 & 0x7fff_ffff);
            let b = rng.fast_operand(f, a);
            // Addends near minus the product make deep cancellation and exact results likely.
            let c = if rng.next() % 2 == 0 {
                let p = unreg(
                    single,
                    software::fmul_s(reg(single, a), reg(single, b), Rne).0,
                );
                let p = if single {
                    p
                } else {
                    software::fmul_d(a, b, Rne).0
                };
                rng.fast_operand(f, p ^ f.sign_bit())
            } else {
                rng.fast_operand(f, b)
            };
            let want = sw(reg(single, a), reg(single, b), reg(single, c), Rne);
            if let Some(got) = fast(a, b, c) {
                *hits.entry(name).or_default() += 1;
                assert_eq!(
                    (reg(single, got.0), got.1),
                    want,
                    "{name}({a:#x}, {b:#x}, {c:#x})"
                );
            }
            let got = public(reg(single, a), reg(single, b), reg(single, c), Rne);
            assert_eq!(got, want, "public {name}({a:#x}, {b:#x}, {c:#x})");
            checked += 2;
        }
        // Square roots and fcvt.s.d.
        let a = rng.fast_operand(soft::D, rng.0);
        let want = software::fsqrt_d(a, Rne);
        if let Some(got) = fast::sqrt_d(a) {
            *hits.entry("sqrt_d").or_default() += 1;
            assert_eq!(got, want, "sqrt_d({a:#x})");
        }
        assert_eq!(fsqrt_d(a, Rne), want, "public sqrt_d({a:#x})");
        let want = software::fcvt_s_d(a, Rne);
        if let Some(got) = fast::cvt_s_d(a) {
            *hits.entry("cvt_s_d").or_default() += 1;
            assert_eq!(boxed(got), want, "cvt_s_d({a:#x})");
        }
        assert_eq!(fcvt_s_d(a, Rne), want, "public cvt_s_d({a:#x})");
        let a = rng.fast_operand(soft::S, rng.0);
        let want = software::fsqrt_s(box_s(a), Rne);
        if let Some(got) = fast::sqrt_s(a) {
            *hits.entry("sqrt_s").or_default() += 1;
            assert_eq!(boxed(got), want, "sqrt_s({a:#x})");
        }
        assert_eq!(fsqrt_s(box_s(a), Rne), want, "public sqrt_s({a:#x})");
        assert_eq!(
            fcvt_d_s(box_s(a), Rne),
            soft::convert(soft::S, soft::D, a, Rne),
            "fcvt_d_s({a:#x})"
        );
        checked += 7;
    }
    println!("{checked} comparisons; fast path taken: {hits:?}");
    for (name, n) in &hits {
        assert!(*n > N / 4, "{name}: fast path taken only {n} times of {N}");
    }
    assert_eq!(
        hits.len(),
        13,
        "every operation took the fast path: {hits:?}"
    );
}

/// The integer to float conversions on the host, against software, over integers of every
/// width and the rounding boundaries of single and double.
#[test]
fn integer_conversions_on_the_host_match_software() {
    type Conv = fn(u64, RoundingMode) -> (u64, Flags);
    let ops: [(&str, Conv, soft::Fmt, soft::IntKind); 8] = [
        ("fcvt_d_w", fcvt_d_w, soft::D, soft::IntKind::W),
        ("fcvt_d_wu", fcvt_d_wu, soft::D, soft::IntKind::Wu),
        ("fcvt_d_l", fcvt_d_l, soft::D, soft::IntKind::L),
        ("fcvt_d_lu", fcvt_d_lu, soft::D, soft::IntKind::Lu),
        ("fcvt_s_w", fcvt_s_w, soft::S, soft::IntKind::W),
        ("fcvt_s_wu", fcvt_s_wu, soft::S, soft::IntKind::Wu),
        ("fcvt_s_l", fcvt_s_l, soft::S, soft::IntKind::L),
        ("fcvt_s_lu", fcvt_s_lu, soft::S, soft::IntKind::Lu),
    ];
    let mut rng = Rng(0x5eed_1234_8765_4321);
    for i in 0..200_000u32 {
        let r = rng.next();
        // Random widths, then values around the 24- and 53-bit boundaries (ties included).
        let x = match i % 4 {
            0 => r,
            1 => r >> (r % 64),
            2 => (1u64 << (24 + r % 40)).wrapping_add(r >> 40) ^ (r & 1) << 63,
            _ => (r >> (r % 64)).wrapping_neg(),
        };
        for (name, op, f, kind) in ops {
            for rm in [Rne, Rtz, Rdn, Rup, Rmm] {
                let (want, flags) = soft::from_int(f, x, kind, rm);
                let want = if f == soft::S { box_s(want) } else { want };
                assert_eq!(op(x, rm), (want, flags), "{name}({x:#x}) {rm:?}");
            }
        }
    }
}

/// Dekker's product (the path for hosts without FMA) decides exactness as software does.
#[test]
fn dekker_exactness_checks_match_software() {
    let mut rng = Rng(0xdec0_de00_1234_5678);
    let mut answered = 0u32;
    const N: u32 = 300_000;
    for _ in 0..N {
        let a = rng.fast_operand(soft::D, rng.0);
        let b = rng.fast_operand(soft::D, a);
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let p = x * y;
        if p.is_finite() {
            if let Some(exact) = fast::product_is_dekker(x, y, p) {
                answered += 1;
                let nx = software::fmul_d(a, b, Rne).1.bits() & NX.bits() != 0;
                assert_eq!(exact, !nx, "{a:#x} * {b:#x}");
            }
        }
        let q = x / y;
        if q.is_finite() && q != 0.0 && y != 0.0 {
            if let Some(exact) = fast::product_is_dekker(q, y, x) {
                let nx = software::fdiv_d(a, b, Rne).1.bits() & NX.bits() != 0;
                assert_eq!(exact, !nx, "{a:#x} / {b:#x}");
            }
        }
        let s = x.abs().sqrt();
        if let Some(exact) = fast::product_is_dekker(s, s, x.abs()) {
            let nx = software::fsqrt_d(a & !(1 << 63), Rne).1.bits() & NX.bits() != 0;
            assert_eq!(exact, !nx, "sqrt {a:#x}");
        }
    }
    assert!(
        answered > N / 4,
        "Dekker's check answered {answered} of {N}"
    );
}

#[test]
fn fast_path_leaves_special_operands_and_tiny_results_to_the_exact_path() {
    let one = 1f64.to_bits();
    let third = 0x3fd5_5555_5555_5555;
    // Common cases are answered.
    assert_eq!(fast::add_d(one, one), Some((d(2.0), NONE)));
    assert_eq!(fast::div_d(one, d(3.0)), Some((third, NX)));
    assert_eq!(fast::mul_d(MAX_D, d(2.0)), Some((INF_D, OF | NX)));
    assert_eq!(
        fast::add_d(d(1.0), 0x3ca0_0000_0000_0000),
        Some((one, NX)),
        "a tie"
    );
    assert_eq!(fast::sqrt_d(d(4.0)), Some((d(2.0), NONE)));
    assert_eq!(
        fast::mul_s(0x3f80_0000, 0x4000_0000),
        Some((0x4000_0000, NONE))
    );
    // NaN and infinite operands, division by zero, negative square roots: not answered.
    assert_eq!(fast::add_d(QNAN_D, one), None);
    assert_eq!(fast::mul_d(INF_D, one), None);
    assert_eq!(fast::div_d(one, 0), None);
    assert_eq!(fast::sqrt_d(d(-1.0)), None);
    assert_eq!(fast::add_s(S.canonical_nan(), 0x3f80_0000), None);
    // Tiny or nearly tiny results are not answered, except exact zeros.
    assert_eq!(fast::mul_d(1, d(0.5)), None);
    assert_eq!(fast::mul_d(MIN_NORMAL_D, d(1.5)), None);
    assert_eq!(fast::mul_d(0, d(-3.0)), Some((d(-0.0), NONE)));
    assert_eq!(fast::mul_s(0x0080_0000, 0x3f7f_ffff), None);
    assert_eq!(fast::cvt_s_d(0x380f_ffff_f000_0000), None);
    // Sums never underflow: a subnormal sum is exact.
    assert_eq!(fast::add_d(1, 1), Some((2, NONE)));
}
