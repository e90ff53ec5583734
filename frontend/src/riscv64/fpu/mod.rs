//! The F and D extensions' arithmetic, bit-exact to the RISC-V ISA manual (volume I, "F" and
//! "D" chapters), for the translator to call as helpers.
//!
//! # What the translator does and what the helpers do
//! Loads, stores and moves (flw/fsw/fld/fsd, fmv.x.w/fmv.w.x/fmv.x.d/fmv.d.x) are inline IR;
//! fsgnj* may be inline too, but helpers exist for them. Everything else calls one of the
//! [`helpers`] statics, which read `frm` from and OR the raised flags into
//! [`Riscv64Cpu::fflags`](super::Riscv64Cpu::fflags).
//!
//! **Rounding modes.** The `rm` argument is the instruction's 3-bit field. The translator
//! raises illegal instruction at translation time for rm = 5 or 6. For rm = 7 (dynamic) it
//! must check `frm` at run time before the operation: call [`helpers::FRM_VALID`] (`(env) ->
//! 1 | 0`) and raise illegal instruction on 0 (it may skip repeated checks until the next
//! write of `frm`). A helper called with an invalid mode anyway does nothing: it leaves
//! `fflags` alone and returns 0. The exact operations (fcvt.d.s, fcvt.d.w, fcvt.d.wu, whose
//! results never round) take `rm` for uniformity and ignore it.
//!
//! # Helper argument orders
//! Registers are passed as raw 64-bit `f`/`x` register bits; singles NaN-boxed. Every helper
//! returns the value to write to `rd`: NaN-boxed for single results, sign-extended 32-bit
//! results for fcvt.w*.* and the comparisons' 0/1 in an `x` register.
//!
//! | helpers | arguments | flags |
//! |---|---|---|
//! | `FADD_S FSUB_S FMUL_S FDIV_S`, `_D` likewise | `(env, rs1, rs2, rm)` | NONE |
//! | `FSQRT_S FSQRT_D` | `(env, rs1, rm)` | NONE |
//! | `FMADD_S FMSUB_S FNMSUB_S FNMADD_S`, `_D` likewise | `(env, rs1, rs2, rs3, rm)` | NONE |
//! | `FCVT_{W,WU,L,LU}_{S,D}` (float to `x`) | `(env, rs1, rm)` | NONE |
//! | `FCVT_{S,D}_{W,WU,L,LU}` (`x` to float) | `(env, rs1, rm)` | NONE |
//! | `FCVT_S_D FCVT_D_S` | `(env, rs1, rm)` | NONE |
//! | `FMIN_S FMAX_S FEQ_S FLT_S FLE_S`, `_D` likewise | `(env, rs1, rs2)` | NONE |
//! | `FCLASS_S FCLASS_D` | `(rs1)` — no env | PURE |
//! | `FSGNJ_S FSGNJN_S FSGNJX_S`, `_D` likewise | `(rs1, rs2)` — no env | PURE |
//! | `FRM_VALID` | `(env)` | NONE |
//!
//! # Host arithmetic or software
//! **Round to nearest, ties to even** (static, or dynamic with `frm` = RNE), the mode nearly
//! all code runs in, first tries module `fast`: the host's plain `f32`/`f64` arithmetic in
//! its default environment (which is RNE) with the flags derived from the values by exact
//! error terms, never touching MXCSR. It covers add, sub, mul, div, sqrt, the fused
//! multiply-adds (doubles only on hosts with FMA3), fcvt.s.d, fcvt.d.s and the integer to
//! float conversions, for finite operands and results away from the underflow range; NaN or
//! infinite operands, division by zero and tiny results fall through to the paths below.
//!
//! Otherwise, on x86_64 hosts add, sub, mul, div, sqrt and fcvt.s.d run on SSE with MXCSR set to the
//! instruction's rounding mode (module `sse`), and the fused multiply-adds on FMA3 when the
//! host has it; their flags are read back from MXCSR and NaN results replaced by the canonical
//! NaN. SSE detects tininess after rounding, as RISC-V does, so its underflow flag is used as
//! is. RMM (no SSE equivalent), FMA on hosts without FMA3, every conversion involving an
//! integer, fcvt.d.s, and everything else on other hosts use [`soft`], a small exact
//! softfloat.
//! fmin/fmax, comparisons, fclass and sign injection never round and are plain bit logic.
//! The [`software`] module offers the rounding operations forced onto the software path (no
//! fast path, no SSE), so the paths can be checked against each other.
//!
//! NaN-boxing: a single operand whose upper 32 bits are not all ones reads as the canonical
//! NaN (quiet: no NV), and single results are written with the upper 32 bits all ones.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

mod fast;
pub mod helpers;
pub mod soft;
#[cfg(target_arch = "x86_64")]
mod sse;
#[cfg(test)]
mod tests;

use soft::{Compare, Fmt, IntKind, D, S};

/// Accrued exception flags, bit-compatible with `fflags`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No exception.
    pub const NONE: Flags = Flags(0);
    /// Inexact.
    pub const NX: Flags = Flags(1 << 0);
    /// Underflow.
    pub const UF: Flags = Flags(1 << 1);
    /// Overflow.
    pub const OF: Flags = Flags(1 << 2);
    /// Divide by zero.
    pub const DZ: Flags = Flags(1 << 3);
    /// Invalid operation.
    pub const NV: Flags = Flags(1 << 4);

    /// The `fflags` bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from `fflags` bits (bits above 4 ignored).
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & 0x1f)
    }

    /// No flag set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The RISC-V flags for the MXCSR exception flags of one operation (DE has no RISC-V
    /// counterpart and is dropped).
    #[cfg(target_arch = "x86_64")]
    fn from_mxcsr(m: u32) -> Flags {
        let mut f = Flags::NONE;
        for (bit, flag) in [
            (sse::IE, Flags::NV),
            (sse::ZE, Flags::DZ),
            (sse::OE, Flags::OF),
            (sse::UE, Flags::UF),
            (sse::PE, Flags::NX),
        ] {
            if m & bit != 0 {
                f |= flag;
            }
        }
        f
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "-");
        }
        let names = [(16, "NV"), (8, "DZ"), (4, "OF"), (2, "UF"), (1, "NX")];
        let set: Vec<&str> = names
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect();
        write!(f, "{}", set.join("|"))
    }
}

/// A resolved rounding mode (never "dynamic").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RoundingMode {
    /// Round to nearest, ties to even.
    Rne = 0,
    /// Round toward zero.
    Rtz = 1,
    /// Round down (toward negative infinity).
    Rdn = 2,
    /// Round up (toward positive infinity).
    Rup = 3,
    /// Round to nearest, ties to max magnitude.
    Rmm = 4,
}

impl RoundingMode {
    /// The five modes in encoding order.
    pub const ALL: [RoundingMode; 5] = [
        RoundingMode::Rne,
        RoundingMode::Rtz,
        RoundingMode::Rdn,
        RoundingMode::Rup,
        RoundingMode::Rmm,
    ];

    /// The mode a `frm` value (or static rm field 0..=4) encodes; `None` for the reserved
    /// values 5..=7.
    pub fn from_bits(bits: u64) -> Option<RoundingMode> {
        RoundingMode::ALL.get(usize::try_from(bits).ok()?).copied()
    }

    /// The mode an instruction's `rm` field selects given `frm`: rm 7 means `frm`. `None`
    /// when the instruction is illegal: rm 5 or 6, or rm 7 with `frm` 5..=7.
    pub fn resolve(rm: u64, frm: u64) -> Option<RoundingMode> {
        if rm == 7 {
            RoundingMode::from_bits(frm)
        } else {
            RoundingMode::from_bits(rm)
        }
    }

    /// An `rm` field the translator may accept statically (all but the reserved 5 and 6;
    /// 7 still needs the run-time `frm` check).
    pub const fn is_legal_field(rm: u8) -> bool {
        rm <= 4 || rm == 7
    }

    /// MXCSR rounding control, for the modes SSE has.
    #[cfg(target_arch = "x86_64")]
    fn mxcsr_rc(self) -> Option<u32> {
        match self {
            RoundingMode::Rne => Some(sse::RC_NEAREST),
            RoundingMode::Rtz => Some(sse::RC_ZERO),
            RoundingMode::Rdn => Some(sse::RC_DOWN),
            RoundingMode::Rup => Some(sse::RC_UP),
            RoundingMode::Rmm => None,
        }
    }
}

/// The single in register bits `x`: the low half if NaN-boxed, else the canonical NaN.
pub const fn unbox_s(x: u64) -> u64 {
    if x >> 32 == 0xffff_ffff {
        x & 0xffff_ffff
    } else {
        S.canonical_nan()
    }
}

/// Register bits holding single `x` (bits 31..0), NaN-boxed.
pub const fn box_s(x: u64) -> u64 {
    x | 0xffff_ffff_0000_0000
}

fn boxed((r, f): (u64, Flags)) -> (u64, Flags) {
    (box_s(r), f)
}

/// A host result made RISC-V: any NaN becomes the canonical one, flags translated.
#[cfg(target_arch = "x86_64")]
fn from_host(f: Fmt, r: u64, mxcsr: u32) -> (u64, Flags) {
    let r = if f.is_nan(r) { f.canonical_nan() } else { r };
    (r, Flags::from_mxcsr(mxcsr))
}

#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// `a op b` in format `f` (singles unboxed): the RNE fast path, else SSE, when `hw` and the
/// mode allow.
#[inline(always)]
fn arith(f: Fmt, op: Arith, a: u64, b: u64, rm: RoundingMode, hw: bool) -> (u64, Flags) {
    if hw && rm == RoundingMode::Rne {
        let single = f == S;
        let fast = match (op, single) {
            (Arith::Add, true) => fast::add_s(a, b),
            (Arith::Sub, true) => fast::sub_s(a, b),
            (Arith::Mul, true) => fast::mul_s(a, b),
            (Arith::Div, true) => fast::div_s(a, b),
            (Arith::Add, false) => fast::add_d(a, b),
            (Arith::Sub, false) => fast::sub_d(a, b),
            (Arith::Mul, false) => fast::mul_d(a, b),
            (Arith::Div, false) => fast::div_d(a, b),
        };
        if let Some(r) = fast {
            return r;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if hw {
        if let Some(rc) = rm.mxcsr_rc() {
            let single = f == S;
            let (r, m) = match (op, single) {
                (Arith::Add, true) => sse::add_s(a, b, rc),
                (Arith::Sub, true) => sse::sub_s(a, b, rc),
                (Arith::Mul, true) => sse::mul_s(a, b, rc),
                (Arith::Div, true) => sse::div_s(a, b, rc),
                (Arith::Add, false) => sse::add_d(a, b, rc),
                (Arith::Sub, false) => sse::sub_d(a, b, rc),
                (Arith::Mul, false) => sse::mul_d(a, b, rc),
                (Arith::Div, false) => sse::div_d(a, b, rc),
            };
            return from_host(f, r, m);
        }
    }
    match op {
        Arith::Add => soft::add(f, a, b, rm),
        Arith::Sub => soft::add(f, a, b ^ f.sign_bit(), rm),
        Arith::Mul => soft::mul(f, a, b, rm),
        Arith::Div => soft::div(f, a, b, rm),
    }
}

#[inline(always)]
fn sqrt(f: Fmt, a: u64, rm: RoundingMode, hw: bool) -> (u64, Flags) {
    if hw && rm == RoundingMode::Rne {
        let fast = if f == S {
            fast::sqrt_s(a)
        } else {
            fast::sqrt_d(a)
        };
        if let Some(r) = fast {
            return r;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if hw {
        if let Some(rc) = rm.mxcsr_rc() {
            let (r, m) = if f == S {
                sse::sqrt_s(a, rc)
            } else {
                sse::sqrt_d(a, rc)
            };
            return from_host(f, r, m);
        }
    }
    soft::sqrt(f, a, rm)
}

/// The fused multiply-adds. NaN operands always take the software path, which knows that
/// `inf * 0 + qNaN` is invalid on RISC-V; the host instruction sees only non-NaN operands.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fma(
    f: Fmt,
    a: u64,
    b: u64,
    c: u64,
    np: bool,
    na: bool,
    rm: RoundingMode,
    hw: bool,
) -> (u64, Flags) {
    if hw && rm == RoundingMode::Rne {
        let a = if np { a ^ f.sign_bit() } else { a };
        let c = if na { c ^ f.sign_bit() } else { c };
        let fast = if f == S {
            fast::fma_s(a, b, c)
        } else {
            fast::fma_d(a, b, c)
        };
        if let Some(r) = fast {
            return r;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if hw && !f.is_nan(a) && !f.is_nan(b) && !f.is_nan(c) && sse::has_fma() {
        if let Some(rc) = rm.mxcsr_rc() {
            let a = if np { a ^ f.sign_bit() } else { a };
            let c = if na { c ^ f.sign_bit() } else { c };
            let (r, m) = if f == S {
                sse::fma_s(a, b, c, rc)
            } else {
                sse::fma_d(a, b, c, rc)
            };
            return from_host(f, r, m);
        }
    }
    soft::fma(f, a, b, c, np, na, rm)
}

#[inline(always)]
fn cvt_s_d(a: u64, rm: RoundingMode, hw: bool) -> (u64, Flags) {
    if hw && rm == RoundingMode::Rne {
        if let Some(r) = fast::cvt_s_d(a) {
            return boxed(r);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if hw {
        if let Some(rc) = rm.mxcsr_rc() {
            let (r, m) = sse::cvt_d_to_s(a, rc);
            return boxed(from_host(S, r, m));
        }
    }
    boxed(soft::convert(D, S, a, rm))
}

/// Use the host's arithmetic where it is exact: the RNE fast path on every host, SSE on
/// x86_64.
const HW: bool = true;

/// Defines each rounding operation twice: the public one (SSE where exact) and the one in
/// [`software`] (always the portable path), from one body taking `hw`.
macro_rules! rounding_ops {
    ($($(#[$m:meta])* fn $name:ident($($arg:ident),*) = |$hw:ident, $rm:ident| $body:expr;)*) => {
        $(
            $(#[$m])*
            #[inline]
            pub fn $name($($arg: u64,)* $rm: RoundingMode) -> (u64, Flags) {
                let $hw = HW;
                $body
            }
        )*
        /// The rounding operations forced onto the portable software path (what hosts other
        /// than x86_64 always run), for checking the SSE path against it.
        pub mod software {
            use super::*;
            $(
                $(#[$m])*
                pub fn $name($($arg: u64,)* $rm: RoundingMode) -> (u64, Flags) {
                    let $hw = false;
                    $body
                }
            )*
        }
    };
}

rounding_ops! {
    /// fadd.s.
    fn fadd_s(a, b) = |hw, rm| boxed(arith(S, Arith::Add, unbox_s(a), unbox_s(b), rm, hw));
    /// fsub.s.
    fn fsub_s(a, b) = |hw, rm| boxed(arith(S, Arith::Sub, unbox_s(a), unbox_s(b), rm, hw));
    /// fmul.s.
    fn fmul_s(a, b) = |hw, rm| boxed(arith(S, Arith::Mul, unbox_s(a), unbox_s(b), rm, hw));
    /// fdiv.s.
    fn fdiv_s(a, b) = |hw, rm| boxed(arith(S, Arith::Div, unbox_s(a), unbox_s(b), rm, hw));
    /// fsqrt.s.
    fn fsqrt_s(a) = |hw, rm| boxed(sqrt(S, unbox_s(a), rm, hw));
    /// fmadd.s: `a * b + c`.
    fn fmadd_s(a, b, c) = |hw, rm| boxed(fma(S, unbox_s(a), unbox_s(b), unbox_s(c), false, false, rm, hw));
    /// fmsub.s: `a * b - c`.
    fn fmsub_s(a, b, c) = |hw, rm| boxed(fma(S, unbox_s(a), unbox_s(b), unbox_s(c), false, true, rm, hw));
    /// fnmsub.s: `-(a * b) + c`.
    fn fnmsub_s(a, b, c) = |hw, rm| boxed(fma(S, unbox_s(a), unbox_s(b), unbox_s(c), true, false, rm, hw));
    /// fnmadd.s: `-(a * b) - c`.
    fn fnmadd_s(a, b, c) = |hw, rm| boxed(fma(S, unbox_s(a), unbox_s(b), unbox_s(c), true, true, rm, hw));
    /// fadd.d.
    fn fadd_d(a, b) = |hw, rm| arith(D, Arith::Add, a, b, rm, hw);
    /// fsub.d.
    fn fsub_d(a, b) = |hw, rm| arith(D, Arith::Sub, a, b, rm, hw);
    /// fmul.d.
    fn fmul_d(a, b) = |hw, rm| arith(D, Arith::Mul, a, b, rm, hw);
    /// fdiv.d.
    fn fdiv_d(a, b) = |hw, rm| arith(D, Arith::Div, a, b, rm, hw);
    /// fsqrt.d.
    fn fsqrt_d(a) = |hw, rm| sqrt(D, a, rm, hw);
    /// fmadd.d: `a * b + c`.
    fn fmadd_d(a, b, c) = |hw, rm| fma(D, a, b, c, false, false, rm, hw);
    /// fmsub.d: `a * b - c`.
    fn fmsub_d(a, b, c) = |hw, rm| fma(D, a, b, c, false, true, rm, hw);
    /// fnmsub.d: `-(a * b) + c`.
    fn fnmsub_d(a, b, c) = |hw, rm| fma(D, a, b, c, true, false, rm, hw);
    /// fnmadd.d: `-(a * b) - c`.
    fn fnmadd_d(a, b, c) = |hw, rm| fma(D, a, b, c, true, true, rm, hw);
    /// fcvt.s.d.
    fn fcvt_s_d(a) = |hw, rm| cvt_s_d(a, rm, hw);
}

/// fcvt.d.s (exact: `rm` is ignored).
pub fn fcvt_d_s(a: u64, rm: RoundingMode) -> (u64, Flags) {
    let a = unbox_s(a);
    if HW {
        if let Some(r) = fast::cvt_d_s(a) {
            return r;
        }
    }
    soft::convert(S, D, a, rm)
}

/// The integer to float conversions on the host: the exact fcvt.d.w and fcvt.d.wu in every
/// mode, the others in RNE; `None` for the software path.
fn from_int_fast(f: Fmt, x: u64, kind: IntKind, rm: RoundingMode) -> Option<(u64, Flags)> {
    if !HW {
        return None;
    }
    match (f == S, kind) {
        (false, IntKind::W) => Some(fast::cvt_d_w(x)),
        (false, IntKind::Wu) => Some(fast::cvt_d_wu(x)),
        _ if rm != RoundingMode::Rne => None,
        (false, IntKind::L) => Some(fast::cvt_d_l(x)),
        (false, IntKind::Lu) => Some(fast::cvt_d_lu(x)),
        (true, IntKind::W) => Some(fast::cvt_s_w(x)),
        (true, IntKind::Wu) => Some(fast::cvt_s_wu(x)),
        (true, IntKind::L) => Some(fast::cvt_s_l(x)),
        (true, IntKind::Lu) => Some(fast::cvt_s_lu(x)),
    }
}

macro_rules! int_conversions {
    ($($(#[$m:meta])* $to:ident, $from:ident, $fmt:expr, $kind:expr;)*) => {
        $(
            $(#[$m])*
            pub fn $to(a: u64, rm: RoundingMode) -> (u64, Flags) {
                let a = if $fmt == S { unbox_s(a) } else { a };
                soft::to_int($fmt, a, $kind, rm)
            }
        )*
        int_conversions!(@from $($(#[$m])* $from, $fmt, $kind;)*);
    };
    (@from $($(#[$m:meta])* $from:ident, $fmt:expr, $kind:expr;)*) => {
        $(
            /// The conversion back: the integer register `x` rounded to the format.
            pub fn $from(x: u64, rm: RoundingMode) -> (u64, Flags) {
                let (r, f) = from_int_fast($fmt, x, $kind, rm)
                    .unwrap_or_else(|| soft::from_int($fmt, x, $kind, rm));
                if $fmt == S { boxed((r, f)) } else { (r, f) }
            }
        )*
    };
}

int_conversions! {
    /// fcvt.w.s (result sign-extended).
    fcvt_w_s, fcvt_s_w, S, IntKind::W;
    /// fcvt.wu.s (32-bit result sign-extended, as RV64 does).
    fcvt_wu_s, fcvt_s_wu, S, IntKind::Wu;
    /// fcvt.l.s.
    fcvt_l_s, fcvt_s_l, S, IntKind::L;
    /// fcvt.lu.s.
    fcvt_lu_s, fcvt_s_lu, S, IntKind::Lu;
    /// fcvt.w.d (result sign-extended).
    fcvt_w_d, fcvt_d_w, D, IntKind::W;
    /// fcvt.wu.d (32-bit result sign-extended).
    fcvt_wu_d, fcvt_d_wu, D, IntKind::Wu;
    /// fcvt.l.d.
    fcvt_l_d, fcvt_d_l, D, IntKind::L;
    /// fcvt.lu.d.
    fcvt_lu_d, fcvt_d_lu, D, IntKind::Lu;
}

/// fmin.s.
pub fn fmin_s(a: u64, b: u64) -> (u64, Flags) {
    boxed(soft::min_max(S, unbox_s(a), unbox_s(b), false))
}
/// fmax.s.
pub fn fmax_s(a: u64, b: u64) -> (u64, Flags) {
    boxed(soft::min_max(S, unbox_s(a), unbox_s(b), true))
}
/// fmin.d.
pub fn fmin_d(a: u64, b: u64) -> (u64, Flags) {
    soft::min_max(D, a, b, false)
}
/// fmax.d.
pub fn fmax_d(a: u64, b: u64) -> (u64, Flags) {
    soft::min_max(D, a, b, true)
}
/// feq.s: 1 or 0.
pub fn feq_s(a: u64, b: u64) -> (u64, Flags) {
    soft::compare(S, unbox_s(a), unbox_s(b), Compare::Eq)
}
/// flt.s.
pub fn flt_s(a: u64, b: u64) -> (u64, Flags) {
    soft::compare(S, unbox_s(a), unbox_s(b), Compare::Lt)
}
/// fle.s.
pub fn fle_s(a: u64, b: u64) -> (u64, Flags) {
    soft::compare(S, unbox_s(a), unbox_s(b), Compare::Le)
}
/// feq.d.
pub fn feq_d(a: u64, b: u64) -> (u64, Flags) {
    soft::compare(D, a, b, Compare::Eq)
}
/// flt.d.
pub fn flt_d(a: u64, b: u64) -> (u64, Flags) {
    soft::compare(D, a, b, Compare::Lt)
}
/// fle.d.
pub fn fle_d(a: u64, b: u64) -> (u64, Flags) {
    soft::compare(D, a, b, Compare::Le)
}
/// fclass.s: the 10-bit class mask.
pub fn fclass_s(a: u64) -> u64 {
    soft::classify(S, unbox_s(a))
}
/// fclass.d.
pub fn fclass_d(a: u64) -> u64 {
    soft::classify(D, a)
}

/// Sign injection: `a`'s magnitude with the sign `pick(sign of a, sign of b)`.
fn sgnj(f: Fmt, a: u64, b: u64, pick: fn(bool, bool) -> bool) -> u64 {
    let sa = a & f.sign_bit() != 0;
    let sb = b & f.sign_bit() != 0;
    let sign = if pick(sa, sb) { f.sign_bit() } else { 0 };
    (a & !f.sign_bit()) | sign
}

/// fsgnj.s (unboxed operands read as the canonical NaN here too).
pub fn fsgnj_s(a: u64, b: u64) -> u64 {
    box_s(sgnj(S, unbox_s(a), unbox_s(b), |_, b| b))
}
/// fsgnjn.s.
pub fn fsgnjn_s(a: u64, b: u64) -> u64 {
    box_s(sgnj(S, unbox_s(a), unbox_s(b), |_, b| !b))
}
/// fsgnjx.s.
pub fn fsgnjx_s(a: u64, b: u64) -> u64 {
    box_s(sgnj(S, unbox_s(a), unbox_s(b), |a, b| a != b))
}
/// fsgnj.d.
pub fn fsgnj_d(a: u64, b: u64) -> u64 {
    sgnj(D, a, b, |_, b| b)
}
/// fsgnjn.d.
pub fn fsgnjn_d(a: u64, b: u64) -> u64 {
    sgnj(D, a, b, |_, b| !b)
}
/// fsgnjx.d.
pub fn fsgnjx_d(a: u64, b: u64) -> u64 {
    sgnj(D, a, b, |a, b| a != b)
}
