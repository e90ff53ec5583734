//! The semantics of the SSE/SSE2 instructions on 128-bit register values.
//!
//! Arithmetic, comparisons and conversions run the very same instruction on the host (this
//! module needs an x86_64 host): with the guest's MXCSR rounding mode, DAZ and FTZ loaded,
//! every exception masked, and the sticky flags the host raised OR-ed back into the guest
//! MXCSR, the result is the architectural one bit for bit, NaN propagation and operand-order
//! rules of min/max included. Shuffles, inserts, extracts and moves are plain Rust.
//!
//! Gap: unmasked guest exceptions (#XM) are not delivered; the flag is set as if masked.

use core::arch::asm;
use core::arch::x86_64::__m128i;

use iced_x86::Mnemonic;

/// An XMM register value: the low and high quadwords.
pub type Xmm = [u64; 2];

/// MXCSR bits that may be set (flags, DAZ, masks, RC, FTZ); the rest are reserved (#GP).
pub const MXCSR_MASK: u32 = 0xffff;
/// The exception flags (IE DE ZE OE UE PE).
const MXCSR_FLAGS: u32 = 0x3f;
/// The exception masks.
const MXCSR_MASKS: u32 = 0x3f << 7;

/// What an instruction produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Res {
    /// A new value for the destination XMM register.
    Xmm(Xmm),
    /// A value for the destination general register (or the flags of `comiss`/`ucomiss`).
    Gpr(u64),
}

fn to_m(v: Xmm) -> __m128i {
    // SAFETY: both are 16 plain bytes; every bit pattern is valid for each.
    unsafe { core::mem::transmute::<Xmm, __m128i>(v) }
}

fn from_m(v: __m128i) -> Xmm {
    // SAFETY: both are 16 plain bytes; every bit pattern is valid for each.
    unsafe { core::mem::transmute::<__m128i, Xmm>(v) }
}

/// The MXCSR the host runs a guest operation under: the guest's control bits, every
/// exception masked, the flags clear (so the ones set afterwards are this operation's).
fn host_mxcsr(guest: u32) -> u32 {
    (guest & MXCSR_MASK & !MXCSR_FLAGS) | MXCSR_MASKS
}

/// `insn d, s` on the host, integer (no MXCSR involved).
macro_rules! int2 {
    ($insn:literal, $d:expr, $s:expr) => {{
        let mut d = to_m($d);
        let s = to_m($s);
        // SAFETY: one SSE2 register-to-register instruction on the operands given; it
        // touches no memory and no other register.
        unsafe {
            asm!(concat!($insn, " {d}, {s}"), d = inout(xmm_reg) d, s = in(xmm_reg) s,
                 options(pure, nomem, nostack));
        }
        Res::Xmm(from_m(d))
    }};
}

/// `insn d, s` on the host under the guest's MXCSR, the raised flags OR-ed into it.
macro_rules! fp2 {
    ($insn:literal, $d:expr, $s:expr, $mx:expr) => {
        fp2t!(concat!($insn, " {d}, {s}"), $d, $s, $mx)
    };
}

/// Like `fp2!` with the whole instruction template given (`{d}`, `{s}` the operands).
macro_rules! fp2t {
    ($tmpl:expr, $d:expr, $s:expr, $mx:expr) => {{
        let mut d = to_m($d);
        let s = to_m($s);
        let mut m = host_mxcsr(*$mx);
        let mut saved = 0u32;
        // SAFETY: saves the host MXCSR, runs one SSE instruction with every exception
        // masked (it cannot trap), reads the flags back and restores the host MXCSR; the
        // two pointers are to the locals `saved` and `m`.
        unsafe {
            asm!("stmxcsr [{saved}]", "ldmxcsr [{m}]", $tmpl,
                 "stmxcsr [{m}]", "ldmxcsr [{saved}]",
                 d = inout(xmm_reg) d, s = in(xmm_reg) s,
                 m = in(reg) &mut m, saved = in(reg) &mut saved, options(nostack));
        }
        *$mx |= m & MXCSR_FLAGS;
        Res::Xmm(from_m(d))
    }};
}

/// Converts a scalar in the low lane of `s` to an integer register: `insn r, s`.
macro_rules! fp2gpr {
    ($insn:literal, $wide:expr, $s:expr, $mx:expr) => {{
        let s = to_m($s);
        let mut m = host_mxcsr(*$mx);
        let mut saved = 0u32;
        let r: u64;
        if $wide {
            // SAFETY: as in `fp2!`; the result goes to a general register.
            unsafe {
                asm!("stmxcsr [{saved}]", "ldmxcsr [{m}]", concat!($insn, " {r}, {s}"),
                     "stmxcsr [{m}]", "ldmxcsr [{saved}]",
                     r = out(reg) r, s = in(xmm_reg) s,
                     m = in(reg) &mut m, saved = in(reg) &mut saved, options(nostack));
            }
        } else {
            let r32: u32;
            // SAFETY: as in `fp2!`; the result goes to a general register.
            unsafe {
                asm!("stmxcsr [{saved}]", "ldmxcsr [{m}]", concat!($insn, " {r:e}, {s}"),
                     "stmxcsr [{m}]", "ldmxcsr [{saved}]",
                     r = out(reg) r32, s = in(xmm_reg) s,
                     m = in(reg) &mut m, saved = in(reg) &mut saved, options(nostack));
            }
            r = r32 as u64;
        }
        *$mx |= m & MXCSR_FLAGS;
        Res::Gpr(r)
    }};
}

/// Converts the integer `v` into the low lane of `d`: `insn d, v`.
macro_rules! gpr2fp {
    ($insn:literal, $wide:expr, $d:expr, $v:expr, $mx:expr) => {{
        let mut d = to_m($d);
        let v: u64 = $v;
        let mut m = host_mxcsr(*$mx);
        let mut saved = 0u32;
        if $wide {
            // SAFETY: as in `fp2!`; the source is a general register.
            unsafe {
                asm!("stmxcsr [{saved}]", "ldmxcsr [{m}]", concat!($insn, " {d}, {v}"),
                     "stmxcsr [{m}]", "ldmxcsr [{saved}]",
                     d = inout(xmm_reg) d, v = in(reg) v,
                     m = in(reg) &mut m, saved = in(reg) &mut saved, options(nostack));
            }
        } else {
            // SAFETY: as in `fp2!`; the source is a general register.
            unsafe {
                asm!("stmxcsr [{saved}]", "ldmxcsr [{m}]", concat!($insn, " {d}, {v:e}"),
                     "stmxcsr [{m}]", "ldmxcsr [{saved}]",
                     d = inout(xmm_reg) d, v = in(reg) v as u32,
                     m = in(reg) &mut m, saved = in(reg) &mut saved, options(nostack));
            }
        }
        *$mx |= m & MXCSR_FLAGS;
        Res::Xmm(from_m(d))
    }};
}

/// `(u)comis{s,d} a, b`: ZF, PF, CF as the host sets them (OF, SF, AF clear).
macro_rules! fpcomi {
    ($insn:literal, $a:expr, $b:expr, $mx:expr) => {{
        let a = to_m($a);
        let b = to_m($b);
        let mut m = host_mxcsr(*$mx);
        let mut saved = 0u32;
        let f: u64;
        // SAFETY: as in `fp2!`; pushfq/pop use the stack (no `nostack`).
        unsafe {
            asm!("stmxcsr [{saved}]", "ldmxcsr [{m}]", concat!($insn, " {a}, {b}"),
                 "pushfq", "pop {f}", "stmxcsr [{m}]", "ldmxcsr [{saved}]",
                 a = in(xmm_reg) a, b = in(xmm_reg) b, f = out(reg) f,
                 m = in(reg) &mut m, saved = in(reg) &mut saved);
        }
        *$mx |= m & MXCSR_FLAGS;
        Res::Gpr(f & (super::flags::ZF | super::flags::PF | super::flags::CF))
    }};
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
        Addss => fp2!("addss", d, s, mx),
        Addsd => fp2!("addsd", d, s, mx),
        Addps => fp2!("addps", d, s, mx),
        Addpd => fp2!("addpd", d, s, mx),
        Subss => fp2!("subss", d, s, mx),
        Subsd => fp2!("subsd", d, s, mx),
        Subps => fp2!("subps", d, s, mx),
        Subpd => fp2!("subpd", d, s, mx),
        Mulss => fp2!("mulss", d, s, mx),
        Mulsd => fp2!("mulsd", d, s, mx),
        Mulps => fp2!("mulps", d, s, mx),
        Mulpd => fp2!("mulpd", d, s, mx),
        Divss => fp2!("divss", d, s, mx),
        Divsd => fp2!("divsd", d, s, mx),
        Divps => fp2!("divps", d, s, mx),
        Divpd => fp2!("divpd", d, s, mx),
        Minss => fp2!("minss", d, s, mx),
        Minsd => fp2!("minsd", d, s, mx),
        Minps => fp2!("minps", d, s, mx),
        Minpd => fp2!("minpd", d, s, mx),
        Maxss => fp2!("maxss", d, s, mx),
        Maxsd => fp2!("maxsd", d, s, mx),
        Maxps => fp2!("maxps", d, s, mx),
        Maxpd => fp2!("maxpd", d, s, mx),
        Sqrtss => fp2!("sqrtss", d, s, mx),
        Sqrtsd => fp2!("sqrtsd", d, s, mx),
        Sqrtps => fp2!("sqrtps", d, s, mx),
        Sqrtpd => fp2!("sqrtpd", d, s, mx),
        Cmpss => cmp(0, d, s, imm, mx),
        Cmpsd => cmp(1, d, s, imm, mx),
        Cmpps => cmp(2, d, s, imm, mx),
        Cmppd => cmp(3, d, s, imm, mx),
        Comiss => fpcomi!("comiss", d, s, mx),
        Comisd => fpcomi!("comisd", d, s, mx),
        Ucomiss => fpcomi!("ucomiss", d, s, mx),
        Ucomisd => fpcomi!("ucomisd", d, s, mx),
        Cvtss2sd => fp2!("cvtss2sd", d, s, mx),
        Cvtsd2ss => fp2!("cvtsd2ss", d, s, mx),
        Cvtps2pd => fp2!("cvtps2pd", d, s, mx),
        Cvtpd2ps => fp2!("cvtpd2ps", d, s, mx),
        Cvtdq2ps => fp2!("cvtdq2ps", d, s, mx),
        Cvtdq2pd => fp2!("cvtdq2pd", d, s, mx),
        Cvtps2dq => fp2!("cvtps2dq", d, s, mx),
        Cvttps2dq => fp2!("cvttps2dq", d, s, mx),
        Cvtpd2dq => fp2!("cvtpd2dq", d, s, mx),
        Cvttpd2dq => fp2!("cvttpd2dq", d, s, mx),
        Cvtsi2ss => gpr2fp!("cvtsi2ss", wide, d, s[0], mx),
        Cvtsi2sd => gpr2fp!("cvtsi2sd", wide, d, s[0], mx),
        Cvtss2si => fp2gpr!("cvtss2si", wide, s, mx),
        Cvttss2si => fp2gpr!("cvttss2si", wide, s, mx),
        Cvtsd2si => fp2gpr!("cvtsd2si", wide, s, mx),
        Cvttsd2si => fp2gpr!("cvttsd2si", wide, s, mx),
        _ => return None,
    })
}

/// `cmp{ss,sd,ps,pd}` (`kind` 0..=3 in that order) with predicate `imm & 7` (EQ LT LE UNORD
/// NEQ NLT NLE ORD); SSE/SSE2 encodings only look at the low three bits.
fn cmp(kind: u8, d: Xmm, s: Xmm, imm: u8, mx: &mut u32) -> Res {
    macro_rules! preds {
        ($insn:literal) => {
            match imm & 7 {
                0 => fp2t!(concat!($insn, " {d}, {s}, 0"), d, s, mx),
                1 => fp2t!(concat!($insn, " {d}, {s}, 1"), d, s, mx),
                2 => fp2t!(concat!($insn, " {d}, {s}, 2"), d, s, mx),
                3 => fp2t!(concat!($insn, " {d}, {s}, 3"), d, s, mx),
                4 => fp2t!(concat!($insn, " {d}, {s}, 4"), d, s, mx),
                5 => fp2t!(concat!($insn, " {d}, {s}, 5"), d, s, mx),
                6 => fp2t!(concat!($insn, " {d}, {s}, 6"), d, s, mx),
                _ => fp2t!(concat!($insn, " {d}, {s}, 7"), d, s, mx),
            }
        };
    }
    match kind {
        0 => preds!("cmpss"),
        1 => preds!("cmpsd"),
        2 => preds!("cmpps"),
        _ => preds!("cmppd"),
    }
}

/// `ldmxcsr`'s check: `None` (#GP) when a reserved bit is set.
pub fn valid_mxcsr(v: u32) -> Option<u32> {
    (v & !MXCSR_MASK == 0).then_some(v)
}
