//! The semantics of the SSE/SSE2 instructions on 128-bit register values.
//!
//! Arithmetic, comparisons and conversions run the very same instruction on the host (this
//! module needs an x86_64 host), so results are the architectural ones bit for bit, NaN
//! propagation and operand-order rules of min/max included. Two ways:
//!
//! - the fast way ([`fast`]): the instruction as it is, under the host's default MXCSR, when
//!   the guest is in that mode too and the operand and result values prove that it raised no
//!   flag the guest does not already have: no MXCSR access at all;
//! - the exact way ([`mxcsr`]): under the guest's rounding mode, DAZ and FTZ with every
//!   exception masked, the flags the host raised OR-ed back into the guest MXCSR, the guest
//!   MXCSR left resident in the host between instructions when its mode is the default.
//!
//! Shuffles, inserts, extracts and moves are plain Rust.
//!
//! Gap: unmasked guest exceptions (#XM) are not delivered; the flag is set as if masked.

use core::arch::asm;
use core::arch::x86_64::{__m128i, _mm_cvtsi128_si64, _mm_set_epi64x, _mm_unpackhi_epi64};

use iced_x86::Mnemonic;

pub mod fast;
pub mod mxcsr;

use fast::Kind;

/// An XMM register value: the low and high quadwords.
pub type Xmm = [u64; 2];

/// MXCSR bits that may be set (flags, DAZ, masks, RC, FTZ); the rest are reserved (#GP).
pub const MXCSR_MASK: u32 = 0xffff;

/// What an instruction produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Res {
    /// A new value for the destination XMM register.
    Xmm(Xmm),
    /// A value for the destination general register (or the flags of `comiss`/`ucomiss`).
    Gpr(u64),
}

/// The register value in an SSE register. Built from the two quadwords in general
/// registers (movq, movq, punpcklqdq) rather than through memory: a 16-byte reload of two
/// 8-byte stores would stall on store forwarding.
#[inline(always)]
pub fn to_m(v: Xmm) -> __m128i {
    // SAFETY: SSE2 is part of the x86_64 baseline.
    unsafe { _mm_set_epi64x(v[1] as i64, v[0] as i64) }
}

/// The two quadwords of `v`, taken out through general registers (see [`to_m`]).
#[inline(always)]
pub fn from_m(v: __m128i) -> Xmm {
    // SAFETY: SSE2 is part of the x86_64 baseline.
    let lo = unsafe { _mm_cvtsi128_si64(v) };
    // SAFETY: as above.
    let high = unsafe { _mm_unpackhi_epi64(v, v) };
    // SAFETY: as above.
    let hi = unsafe { _mm_cvtsi128_si64(high) };
    [lo as u64, hi as u64]
}

/// `insn d, s` on the host, integer (no MXCSR involved).
macro_rules! int2 {
    ($insn:literal, $d:expr, $s:expr) => {
        Res::Xmm(from_m(host2!(
            concat!($insn, " {d}, {s}"),
            to_m($d),
            to_m($s)
        )))
    };
}

/// The instruction template `$tmpl` (`{d}`, `{s}` its operands) run on the host as it is,
/// under whatever MXCSR is loaded (the default mode, see [`fast`]); the new `d`.
macro_rules! host2 {
    ($tmpl:expr, $d:expr, $s:expr) => {{
        let mut d: __m128i = $d;
        let s: __m128i = $s;
        // SAFETY: one SSE instruction on the two registers given; exceptions are masked in
        // the host MXCSR (Rust's default, never unmasked here), so it cannot trap.
        unsafe {
            asm!($tmpl, d = inout(xmm_reg) d, s = in(xmm_reg) s, options(pure, nomem, nostack));
        }
        d
    }};
}

/// The instruction template `$tmpl` run under the guest MXCSR `$mx` (a `&mut u32`), the
/// raised flags OR-ed into it; the new `d`.
macro_rules! guest2 {
    ($tmpl:expr, $d:expr, $s:expr, $mx:expr) => {{
        let mut d: __m128i = $d;
        let s: __m128i = $s;
        let e = mxcsr::enter(*$mx);
        // SAFETY: one SSE instruction on the two registers given, every exception masked by
        // `enter`. Not `nomem`/`pure`: it must stay between `enter` and `leave`.
        unsafe {
            asm!($tmpl, d = inout(xmm_reg) d, s = in(xmm_reg) s, options(nostack));
        }
        mxcsr::leave(e, $mx);
        d
    }};
}

/// Arithmetic instructions: `name insn kind single lanes`, each a module `name` with
/// `quick` (the fast way when [`fast::arith_ok`] allows it), `exact` and `run` (either).
macro_rules! arith {
    ($($name:ident $insn:literal $kind:ident $single:literal $lanes:literal;)*) => {$(
        #[doc = concat!("`", $insn, " d, s`.")]
        pub mod $name {
            use super::*;

            /// The result the fast way, or `None` when it takes the exact way; the guest
            /// MXCSR `mx` needs no change when there is one.
            #[inline(always)]
            pub fn quick(d: __m128i, s: __m128i, mx: u32) -> Option<__m128i> {
                if fast::may_try(mx) {
                    let r = host2!(concat!($insn, " {d}, {s}"), d, s);
                    let ok = if $lanes == 1 {
                        fast::arith_ok(Kind::$kind, $single, 1, from_m(d), from_m(s), from_m(r))
                    } else {
                        fast::packed_arith_ok(Kind::$kind, $single, d, s, r)
                    };
                    if ok {
                        return Some(r);
                    }
                }
                None
            }

            /// The result under guest MXCSR `mx`, the raised flags added to it.
            #[cold]
            #[inline(never)]
            pub fn exact(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
                guest2!(concat!($insn, " {d}, {s}"), d, s, mx)
            }

            /// Whichever way applies.
            #[inline(always)]
            pub fn run(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
                match quick(d, s, *mx) {
                    Some(r) => r,
                    None => exact(d, s, mx),
                }
            }
        }
    )*};
}

arith! {
    addss "addss" AddSub true 1;
    addsd "addsd" AddSub false 1;
    addps "addps" AddSub true 4;
    addpd "addpd" AddSub false 2;
    subss "subss" AddSub true 1;
    subsd "subsd" AddSub false 1;
    subps "subps" AddSub true 4;
    subpd "subpd" AddSub false 2;
    mulss "mulss" MulDiv true 1;
    mulsd "mulsd" MulDiv false 1;
    mulps "mulps" MulDiv true 4;
    mulpd "mulpd" MulDiv false 2;
    divss "divss" MulDiv true 1;
    divsd "divsd" MulDiv false 1;
    divps "divps" MulDiv true 4;
    divpd "divpd" MulDiv false 2;
    sqrtss "sqrtss" Sqrt true 1;
    sqrtsd "sqrtsd" Sqrt false 1;
    sqrtps "sqrtps" Sqrt true 4;
    sqrtpd "sqrtpd" Sqrt false 2;
}

/// Instructions that raise only IE and DE (min, max): fast when no operand is a NaN or a
/// denormal, in any mode. Modules as for `arith!`.
macro_rules! quiet2 {
    ($($name:ident $insn:literal $single:literal $lanes:literal;)*) => {$(
        #[doc = concat!("`", $insn, " d, s`.")]
        pub mod $name {
            use super::*;

            /// The result the fast way, or `None` when it takes the exact way.
            #[inline(always)]
            pub fn quick(d: __m128i, s: __m128i, _mx: u32) -> Option<__m128i> {
                fast::quiet_ok($single, $lanes, from_m(d), from_m(s))
                    .then(|| host2!(concat!($insn, " {d}, {s}"), d, s))
            }

            /// The result under guest MXCSR `mx`, the raised flags added to it.
            #[cold]
            #[inline(never)]
            pub fn exact(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
                guest2!(concat!($insn, " {d}, {s}"), d, s, mx)
            }

            /// Whichever way applies.
            #[inline(always)]
            pub fn run(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
                match quick(d, s, *mx) {
                    Some(r) => r,
                    None => exact(d, s, mx),
                }
            }
        }
    )*};
}

quiet2! {
    minss "minss" true 1;
    minsd "minsd" false 1;
    minps "minps" true 4;
    minpd "minpd" false 2;
    maxss "maxss" true 1;
    maxsd "maxsd" false 1;
    maxps "maxps" true 4;
    maxpd "maxpd" false 2;
}

/// Instructions that always go the exact way (the rarer conversions).
macro_rules! exact2 {
    ($($name:ident $insn:literal;)*) => {$(
        #[doc = concat!("`", $insn, " d, s` under guest MXCSR `mx`.")]
        pub fn $name(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
            guest2!(concat!($insn, " {d}, {s}"), d, s, mx)
        }
    )*};
}

exact2! {
    cvtpd2ps "cvtpd2ps";
    cvtdq2ps "cvtdq2ps";
    cvtps2dq "cvtps2dq";
    cvttps2dq "cvttps2dq";
    cvtpd2dq "cvtpd2dq";
    cvttpd2dq "cvttpd2dq";
}

/// `cvtss2sd d, s`: exact for every number, so only NaNs and denormals raise anything.
#[inline(always)]
pub fn cvtss2sd(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
    if fast::quiet(from_m(s)[0] & 0xffff_ffff, true) {
        return host2!("cvtss2sd {d}, {s}", d, s);
    }
    guest2!("cvtss2sd {d}, {s}", d, s, mx)
}

/// `cvtps2pd d, s`: as [`cvtss2sd`], two lanes.
#[inline(always)]
pub fn cvtps2pd(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
    if fast::quiet_ok(true, 2, from_m(s), from_m(s)) {
        return host2!("cvtps2pd {d}, {s}", d, s);
    }
    guest2!("cvtps2pd {d}, {s}", d, s, mx)
}

/// `cvtdq2pd d, s`: every 32-bit integer is a double; nothing is ever raised.
#[inline(always)]
pub fn cvtdq2pd(d: __m128i, s: __m128i, _mx: &mut u32) -> __m128i {
    host2!("cvtdq2pd {d}, {s}", d, s)
}

/// `cvtsd2ss d, s`: a rounding, checked like arithmetic.
#[inline(always)]
pub fn cvtsd2ss(d: __m128i, s: __m128i, mx: &mut u32) -> __m128i {
    if fast::may_try(*mx) {
        let r = host2!("cvtsd2ss {d}, {s}", d, s);
        let (x, y) = (from_m(s)[0], from_m(r)[0] & 0xffff_ffff);
        if fast::ordinary(x, false)
            && (fast::safe(y, true) || fast::is_zero(y, true) && fast::is_zero(x, false))
        {
            return r;
        }
    }
    guest2!("cvtsd2ss {d}, {s}", d, s, mx)
}

/// `insn d, v` with `v` a general register (`{v}` 64-bit, `{v:e}` 32-bit in the template).
macro_rules! gpr2fp {
    ($tmpl:expr, $d:expr, $v:expr) => {{
        let mut d: __m128i = $d;
        // SAFETY: one conversion from a general register; exceptions masked (see host2).
        unsafe {
            asm!($tmpl, d = inout(xmm_reg) d, v = in(reg) $v, options(pure, nomem, nostack));
        }
        d
    }};
    ($tmpl:expr, $d:expr, $v:expr, $mx:expr) => {{
        let mut d: __m128i = $d;
        let e = mxcsr::enter(*$mx);
        // SAFETY: as in guest2.
        unsafe {
            asm!($tmpl, d = inout(xmm_reg) d, v = in(reg) $v, options(nostack));
        }
        mxcsr::leave(e, $mx);
        d
    }};
}

/// `cvtsi2s{d,s} d, v` (`single`: to a single; `wide`: `v` is 64-bit, else its low 32 bits).
/// Integers up to 2^53 (2^24 for singles) in magnitude convert exactly in any mode.
#[inline(always)]
pub fn cvtsi2f(single: bool, wide: bool, d: __m128i, v: u64, mx: &mut u32) -> __m128i {
    let n = if wide { v as i64 } else { v as i32 as i64 };
    let exact = n.unsigned_abs() <= if single { 1 << 24 } else { 1 << 53 };
    let fast = exact || fast::may_try(*mx);
    match (single, wide, fast) {
        (false, true, true) => gpr2fp!("cvtsi2sd {d}, {v}", d, v),
        (false, false, true) => gpr2fp!("cvtsi2sd {d}, {v:e}", d, v as u32),
        (true, true, true) => gpr2fp!("cvtsi2ss {d}, {v}", d, v),
        (true, false, true) => gpr2fp!("cvtsi2ss {d}, {v:e}", d, v as u32),
        (false, true, false) => gpr2fp!("cvtsi2sd {d}, {v}", d, v, mx),
        (false, false, false) => gpr2fp!("cvtsi2sd {d}, {v:e}", d, v as u32, mx),
        (true, true, false) => gpr2fp!("cvtsi2ss {d}, {v}", d, v, mx),
        (true, false, false) => gpr2fp!("cvtsi2ss {d}, {v:e}", d, v as u32, mx),
    }
}

/// `insn r, s` to a general register (`{r}` 64-bit, `{r:e}` 32-bit), as `u64`.
macro_rules! fp2gpr {
    ($tmpl:expr, $s:expr) => {{
        let s: __m128i = $s;
        let r: u64;
        // SAFETY: one conversion to a general register; exceptions masked (see host2).
        unsafe {
            asm!($tmpl, r = out(reg) r, s = in(xmm_reg) s, options(pure, nomem, nostack));
        }
        r
    }};
    ($tmpl:expr, $s:expr, $mx:expr) => {{
        let s: __m128i = $s;
        let r: u64;
        let e = mxcsr::enter(*$mx);
        // SAFETY: as in guest2.
        unsafe {
            asm!($tmpl, r = out(reg) r, s = in(xmm_reg) s, options(nostack));
        }
        mxcsr::leave(e, $mx);
        r
    }};
}

/// `cvt(t)s{s,d}2si r, s` (`single` source, `trunc`ating, `wide` result), the result
/// zero-extended. Fast for finite, non-denormal sources whose result is not the integer
/// indefinite, in the default mode (truncation: any mode), when exact or PE is set.
#[inline(always)]
pub fn cvtf2si(single: bool, trunc: bool, wide: bool, s: __m128i, mx: &mut u32) -> u64 {
    macro_rules! pick {
        ($($mx:expr)?) => {
            match (single, trunc, wide) {
                (false, false, true) => fp2gpr!("cvtsd2si {r}, {s}", s $(, $mx)?),
                (false, true, true) => fp2gpr!("cvttsd2si {r}, {s}", s $(, $mx)?),
                (true, false, true) => fp2gpr!("cvtss2si {r}, {s}", s $(, $mx)?),
                (true, true, true) => fp2gpr!("cvttss2si {r}, {s}", s $(, $mx)?),
                (false, false, false) => fp2gpr!("cvtsd2si {r:e}, {s}", s $(, $mx)?) as u32 as u64,
                (false, true, false) => fp2gpr!("cvttsd2si {r:e}, {s}", s $(, $mx)?) as u32 as u64,
                (true, false, false) => fp2gpr!("cvtss2si {r:e}, {s}", s $(, $mx)?) as u32 as u64,
                (true, true, false) => fp2gpr!("cvttss2si {r:e}, {s}", s $(, $mx)?) as u32 as u64,
            }
        };
    }
    let x = if single {
        from_m(s)[0] & 0xffff_ffff
    } else {
        from_m(s)[0]
    };
    if fast::ordinary(x, single) && (trunc || mxcsr::default_mode(*mx)) {
        let r = pick!();
        let (n, indefinite) = if wide {
            (r as i64, r == 1 << 63)
        } else {
            (r as u32 as i32 as i64, r == 1 << 31)
        };
        let exact = if single {
            n as f32 == f32::from_bits(x as u32)
        } else {
            n as f64 == f64::from_bits(x)
        };
        if !indefinite && (exact || *mx & mxcsr::PE != 0) {
            return r;
        }
    }
    pick!(mx)
}

/// `(u)comis{s,d} a, b` (`single`, `ordered`: comis, which signals on quiet NaNs too): ZF, PF,
/// CF (OF, SF, AF clear). Without a NaN or a denormal operand, from the comparison in Rust;
/// otherwise as the host instruction sets them, under the guest MXCSR.
#[inline(always)]
pub fn comis(single: bool, ordered: bool, a: __m128i, b: __m128i, mx: &mut u32) -> u64 {
    macro_rules! run {
        ($insn:literal) => {{
            let f: u64;
            let e = mxcsr::enter(*mx);
            // SAFETY: one compare, every exception masked by `enter`; pushfq/pop use the
            // stack (no `nostack`).
            unsafe {
                asm!(concat!($insn, " {a}, {b}"), "pushfq", "pop {f}",
                     a = in(xmm_reg) a, b = in(xmm_reg) b, f = out(reg) f);
            }
            mxcsr::leave(e, mx);
            f
        }};
    }
    let (x, y) = (from_m(a)[0], from_m(b)[0]);
    let f = if fast::quiet_ok(single, 1, [x, 0], [y, 0]) {
        // Without NaNs the result is never unordered (PF clear) and raises nothing.
        let (less, equal) = if single {
            let (x, y) = (f32::from_bits(x as u32), f32::from_bits(y as u32));
            (x < y, x == y)
        } else {
            let (x, y) = (f64::from_bits(x), f64::from_bits(y));
            (x < y, x == y)
        };
        if less {
            super::flags::CF
        } else if equal {
            super::flags::ZF
        } else {
            0
        }
    } else {
        match (single, ordered) {
            (true, true) => run!("comiss"),
            (false, true) => run!("comisd"),
            (true, false) => run!("ucomiss"),
            (false, false) => run!("ucomisd"),
        }
    };
    f & (super::flags::ZF | super::flags::PF | super::flags::CF)
}

fn words(v: Xmm) -> [u16; 8] {
    let b = (v[1] as u128) << 64 | v[0] as u128;
    core::array::from_fn(|i| (b >> (16 * i)) as u16)
}

fn from_words(w: [u16; 8]) -> Xmm {
    let mut r = [0u64; 2];
    for (i, x) in w.iter().enumerate() {
        r[i / 4] |= (*x as u64) << (16 * (i % 4));
    }
    r
}

fn dwords(v: Xmm) -> [u32; 4] {
    [
        v[0] as u32,
        (v[0] >> 32) as u32,
        v[1] as u32,
        (v[1] >> 32) as u32,
    ]
}

fn from_dwords(d: [u32; 4]) -> Xmm {
    [
        d[0] as u64 | (d[1] as u64) << 32,
        d[2] as u64 | (d[3] as u64) << 32,
    ]
}

fn u128_of(v: Xmm) -> u128 {
    (v[1] as u128) << 64 | v[0] as u128
}

fn of_u128(v: u128) -> Xmm {
    [v as u64, (v >> 64) as u64]
}

/// Runs `op` with destination value `d` and source value `s` (a register, memory contents
/// zero-extended to 128 bits, or a general register's value); `imm` is the immediate,
/// `mem` says the source came from memory (movss/movsd zero the rest then), `wide` that the
/// general-register operand is 64-bit. `None`: not an SSE instruction this module knows.
/// Always inlined: with `op` a constant (the per-instruction helpers) only its arm remains.
#[inline(always)]
pub fn exec(
    op: Mnemonic,
    d: Xmm,
    s: Xmm,
    imm: u8,
    mem: bool,
    wide: bool,
    mx: &mut u32,
) -> Option<Res> {
    use Mnemonic::*;
    const LO32: u64 = 0xffff_ffff;
    Some(match op {
        // Moves.
        Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu => Res::Xmm(s),
        Movss if mem => Res::Xmm([s[0] & LO32, 0]),
        Movss => Res::Xmm([d[0] & !LO32 | s[0] & LO32, d[1]]),
        Movsd if mem => Res::Xmm([s[0], 0]),
        Movsd => Res::Xmm([s[0], d[1]]),
        Movq => Res::Xmm([s[0], 0]),
        Movd => Res::Xmm([s[0] & LO32, 0]),
        Movlps | Movlpd => Res::Xmm([s[0], d[1]]),
        Movhps | Movhpd => Res::Xmm([d[0], s[0]]),
        Movhlps => Res::Xmm([s[1], d[1]]),
        Movlhps => Res::Xmm([d[0], s[0]]),
        Movmskps => Res::Gpr(
            dwords(s)
                .iter()
                .enumerate()
                .fold(0, |a, (i, x)| a | ((*x as u64) >> 31) << i),
        ),
        Movmskpd => Res::Gpr(s[0] >> 63 | (s[1] >> 63) << 1),
        Pmovmskb => {
            let v = u128_of(s);
            Res::Gpr((0..16).fold(0, |a, i| a | (((v >> (8 * i + 7)) & 1) as u64) << i))
        }
        // Logic.
        Pand | Andps | Andpd => Res::Xmm([d[0] & s[0], d[1] & s[1]]),
        Pandn | Andnps | Andnpd => Res::Xmm([!d[0] & s[0], !d[1] & s[1]]),
        Por | Orps | Orpd => Res::Xmm([d[0] | s[0], d[1] | s[1]]),
        Pxor | Xorps | Xorpd => Res::Xmm([d[0] ^ s[0], d[1] ^ s[1]]),
        // Integer arithmetic, comparisons, shifts by an xmm count (the immediate forms come
        // here with the count in `s`), packs and unpacks.
        Paddb => int2!("paddb", d, s),
        Paddw => int2!("paddw", d, s),
        Paddd => int2!("paddd", d, s),
        Paddq => int2!("paddq", d, s),
        Paddsb => int2!("paddsb", d, s),
        Paddsw => int2!("paddsw", d, s),
        Paddusb => int2!("paddusb", d, s),
        Paddusw => int2!("paddusw", d, s),
        Psubb => int2!("psubb", d, s),
        Psubw => int2!("psubw", d, s),
        Psubd => int2!("psubd", d, s),
        Psubq => int2!("psubq", d, s),
        Psubsb => int2!("psubsb", d, s),
        Psubsw => int2!("psubsw", d, s),
        Psubusb => int2!("psubusb", d, s),
        Psubusw => int2!("psubusw", d, s),
        Pcmpeqb => int2!("pcmpeqb", d, s),
        Pcmpeqw => int2!("pcmpeqw", d, s),
        Pcmpeqd => int2!("pcmpeqd", d, s),
        Pcmpgtb => int2!("pcmpgtb", d, s),
        Pcmpgtw => int2!("pcmpgtw", d, s),
        Pcmpgtd => int2!("pcmpgtd", d, s),
        Pminub => int2!("pminub", d, s),
        Pmaxub => int2!("pmaxub", d, s),
        Pminsw => int2!("pminsw", d, s),
        Pmaxsw => int2!("pmaxsw", d, s),
        Pavgb => int2!("pavgb", d, s),
        Pavgw => int2!("pavgw", d, s),
        // Approximations whose bits the processor decides (within the SDM's 1.5 * 2^-12
        // relative error): the host's are as good as any, and neither depends on MXCSR.
        Rcpps => int2!("rcpps", d, s),
        Rcpss => int2!("rcpss", d, s),
        Rsqrtps => int2!("rsqrtps", d, s),
        Rsqrtss => int2!("rsqrtss", d, s),
        Psadbw => int2!("psadbw", d, s),
        Pmullw => int2!("pmullw", d, s),
        Pmulhw => int2!("pmulhw", d, s),
        Pmulhuw => int2!("pmulhuw", d, s),
        Pmuludq => int2!("pmuludq", d, s),
        Pmaddwd => int2!("pmaddwd", d, s),
        Psllw => int2!("psllw", d, s),
        Pslld => int2!("pslld", d, s),
        Psllq => int2!("psllq", d, s),
        Psrlw => int2!("psrlw", d, s),
        Psrld => int2!("psrld", d, s),
        Psrlq => int2!("psrlq", d, s),
        Psraw => int2!("psraw", d, s),
        Psrad => int2!("psrad", d, s),
        Punpcklbw => int2!("punpcklbw", d, s),
        Punpcklwd => int2!("punpcklwd", d, s),
        Punpckldq => int2!("punpckldq", d, s),
        Punpcklqdq => int2!("punpcklqdq", d, s),
        Punpckhbw => int2!("punpckhbw", d, s),
        Punpckhwd => int2!("punpckhwd", d, s),
        Punpckhdq => int2!("punpckhdq", d, s),
        Punpckhqdq => int2!("punpckhqdq", d, s),
        Packsswb => int2!("packsswb", d, s),
        Packuswb => int2!("packuswb", d, s),
        Packssdw => int2!("packssdw", d, s),
        Unpcklps => int2!("unpcklps", d, s),
        Unpckhps => int2!("unpckhps", d, s),
        Unpcklpd => int2!("unpcklpd", d, s),
        Unpckhpd => int2!("unpckhpd", d, s),
        Pslldq => Res::Xmm(of_u128(
            u128_of(d)
                .checked_shl(8 * imm as u32)
                .filter(|_| imm < 16)
                .unwrap_or(0),
        )),
        Psrldq => Res::Xmm(of_u128(
            u128_of(d)
                .checked_shr(8 * imm as u32)
                .filter(|_| imm < 16)
                .unwrap_or(0),
        )),
        // Shuffles, inserts, extracts.
        Pshufd => {
            let x = dwords(s);
            Res::Xmm(from_dwords(core::array::from_fn(|i| {
                x[(imm >> (2 * i) & 3) as usize]
            })))
        }
        Pshuflw => {
            let x = words(s);
            let mut r = x;
            for (i, w) in r.iter_mut().take(4).enumerate() {
                *w = x[(imm >> (2 * i) & 3) as usize];
            }
            Res::Xmm(from_words(r))
        }
        Pshufhw => {
            let x = words(s);
            let mut r = x;
            for i in 0..4 {
                r[4 + i] = x[4 + (imm >> (2 * i) & 3) as usize];
            }
            Res::Xmm(from_words(r))
        }
        Shufps => {
            let (a, b) = (dwords(d), dwords(s));
            let sel = |i: usize| (imm >> (2 * i) & 3) as usize;
            Res::Xmm(from_dwords([a[sel(0)], a[sel(1)], b[sel(2)], b[sel(3)]]))
        }
        Shufpd => Res::Xmm([d[(imm & 1) as usize], s[(imm >> 1 & 1) as usize]]),
        Pinsrw => {
            let mut w = words(d);
            w[(imm & 7) as usize] = s[0] as u16;
            Res::Xmm(from_words(w))
        }
        Pextrw => Res::Gpr(words(s)[(imm & 7) as usize] as u64),
        // Floating point.
        Addss => Res::Xmm(from_m(addss::run(to_m(d), to_m(s), mx))),
        Addsd => Res::Xmm(from_m(addsd::run(to_m(d), to_m(s), mx))),
        Addps => Res::Xmm(from_m(addps::run(to_m(d), to_m(s), mx))),
        Addpd => Res::Xmm(from_m(addpd::run(to_m(d), to_m(s), mx))),
        Subss => Res::Xmm(from_m(subss::run(to_m(d), to_m(s), mx))),
        Subsd => Res::Xmm(from_m(subsd::run(to_m(d), to_m(s), mx))),
        Subps => Res::Xmm(from_m(subps::run(to_m(d), to_m(s), mx))),
        Subpd => Res::Xmm(from_m(subpd::run(to_m(d), to_m(s), mx))),
        Mulss => Res::Xmm(from_m(mulss::run(to_m(d), to_m(s), mx))),
        Mulsd => Res::Xmm(from_m(mulsd::run(to_m(d), to_m(s), mx))),
        Mulps => Res::Xmm(from_m(mulps::run(to_m(d), to_m(s), mx))),
        Mulpd => Res::Xmm(from_m(mulpd::run(to_m(d), to_m(s), mx))),
        Divss => Res::Xmm(from_m(divss::run(to_m(d), to_m(s), mx))),
        Divsd => Res::Xmm(from_m(divsd::run(to_m(d), to_m(s), mx))),
        Divps => Res::Xmm(from_m(divps::run(to_m(d), to_m(s), mx))),
        Divpd => Res::Xmm(from_m(divpd::run(to_m(d), to_m(s), mx))),
        Minss => Res::Xmm(from_m(minss::run(to_m(d), to_m(s), mx))),
        Minsd => Res::Xmm(from_m(minsd::run(to_m(d), to_m(s), mx))),
        Minps => Res::Xmm(from_m(minps::run(to_m(d), to_m(s), mx))),
        Minpd => Res::Xmm(from_m(minpd::run(to_m(d), to_m(s), mx))),
        Maxss => Res::Xmm(from_m(maxss::run(to_m(d), to_m(s), mx))),
        Maxsd => Res::Xmm(from_m(maxsd::run(to_m(d), to_m(s), mx))),
        Maxps => Res::Xmm(from_m(maxps::run(to_m(d), to_m(s), mx))),
        Maxpd => Res::Xmm(from_m(maxpd::run(to_m(d), to_m(s), mx))),
        Sqrtss => Res::Xmm(from_m(sqrtss::run(to_m(d), to_m(s), mx))),
        Sqrtsd => Res::Xmm(from_m(sqrtsd::run(to_m(d), to_m(s), mx))),
        Sqrtps => Res::Xmm(from_m(sqrtps::run(to_m(d), to_m(s), mx))),
        Sqrtpd => Res::Xmm(from_m(sqrtpd::run(to_m(d), to_m(s), mx))),
        Cmpss => Res::Xmm(from_m(cmp(0, to_m(d), to_m(s), imm, mx))),
        Cmpsd => Res::Xmm(from_m(cmp(1, to_m(d), to_m(s), imm, mx))),
        Cmpps => Res::Xmm(from_m(cmp(2, to_m(d), to_m(s), imm, mx))),
        Cmppd => Res::Xmm(from_m(cmp(3, to_m(d), to_m(s), imm, mx))),
        Comiss => Res::Gpr(comis(true, true, to_m(d), to_m(s), mx)),
        Comisd => Res::Gpr(comis(false, true, to_m(d), to_m(s), mx)),
        Ucomiss => Res::Gpr(comis(true, false, to_m(d), to_m(s), mx)),
        Ucomisd => Res::Gpr(comis(false, false, to_m(d), to_m(s), mx)),
        Cvtss2sd => Res::Xmm(from_m(cvtss2sd(to_m(d), to_m(s), mx))),
        Cvtsd2ss => Res::Xmm(from_m(cvtsd2ss(to_m(d), to_m(s), mx))),
        Cvtps2pd => Res::Xmm(from_m(cvtps2pd(to_m(d), to_m(s), mx))),
        Cvtpd2ps => Res::Xmm(from_m(cvtpd2ps(to_m(d), to_m(s), mx))),
        Cvtdq2ps => Res::Xmm(from_m(cvtdq2ps(to_m(d), to_m(s), mx))),
        Cvtdq2pd => Res::Xmm(from_m(cvtdq2pd(to_m(d), to_m(s), mx))),
        Cvtps2dq => Res::Xmm(from_m(cvtps2dq(to_m(d), to_m(s), mx))),
        Cvttps2dq => Res::Xmm(from_m(cvttps2dq(to_m(d), to_m(s), mx))),
        Cvtpd2dq => Res::Xmm(from_m(cvtpd2dq(to_m(d), to_m(s), mx))),
        Cvttpd2dq => Res::Xmm(from_m(cvttpd2dq(to_m(d), to_m(s), mx))),
        Cvtsi2ss => Res::Xmm(from_m(cvtsi2f(true, wide, to_m(d), s[0], mx))),
        Cvtsi2sd => Res::Xmm(from_m(cvtsi2f(false, wide, to_m(d), s[0], mx))),
        Cvtss2si => Res::Gpr(cvtf2si(true, false, wide, to_m(s), mx)),
        Cvttss2si => Res::Gpr(cvtf2si(true, true, wide, to_m(s), mx)),
        Cvtsd2si => Res::Gpr(cvtf2si(false, false, wide, to_m(s), mx)),
        Cvttsd2si => Res::Gpr(cvtf2si(false, true, wide, to_m(s), mx)),
        _ => return None,
    })
}

/// `cmp{ss,sd,ps,pd}` (`kind` 0..=3 in that order) with predicate `imm & 7` (EQ LT LE UNORD
/// NEQ NLT NLE ORD); SSE/SSE2 encodings only look at the low three bits. Fast (no MXCSR)
/// when no compared lane is a NaN or a denormal.
#[inline(always)]
pub fn cmp(kind: u8, d: __m128i, s: __m128i, imm: u8, mx: &mut u32) -> __m128i {
    macro_rules! preds {
        ($insn:literal, $how:ident $(, $mx:expr)?) => {
            match imm & 7 {
                0 => $how!(concat!($insn, " {d}, {s}, 0"), d, s $(, $mx)?),
                1 => $how!(concat!($insn, " {d}, {s}, 1"), d, s $(, $mx)?),
                2 => $how!(concat!($insn, " {d}, {s}, 2"), d, s $(, $mx)?),
                3 => $how!(concat!($insn, " {d}, {s}, 3"), d, s $(, $mx)?),
                4 => $how!(concat!($insn, " {d}, {s}, 4"), d, s $(, $mx)?),
                5 => $how!(concat!($insn, " {d}, {s}, 5"), d, s $(, $mx)?),
                6 => $how!(concat!($insn, " {d}, {s}, 6"), d, s $(, $mx)?),
                _ => $how!(concat!($insn, " {d}, {s}, 7"), d, s $(, $mx)?),
            }
        };
    }
    let (single, lanes) = [(true, 1), (false, 1), (true, 4), (false, 2)][kind as usize & 3];
    if fast::quiet_ok(single, lanes, from_m(d), from_m(s)) {
        match kind {
            0 => preds!("cmpss", host2),
            1 => preds!("cmpsd", host2),
            2 => preds!("cmpps", host2),
            _ => preds!("cmppd", host2),
        }
    } else {
        match kind {
            0 => preds!("cmpss", guest2, mx),
            1 => preds!("cmpsd", guest2, mx),
            2 => preds!("cmpps", guest2, mx),
            _ => preds!("cmppd", guest2, mx),
        }
    }
}

/// `ldmxcsr`'s check: `None` (#GP) when a reserved bit is set.
pub fn valid_mxcsr(v: u32) -> Option<u32> {
    (v & !MXCSR_MASK == 0).then_some(v)
}
