//! One helper per instruction and operand shape.
//!
//! The general SSE helper decodes a descriptor and dispatches on the mnemonic at run time.
//! The instructions code spends its time in (floating-point arithmetic, min/max, compares,
//! the scalar conversions, and the integer, shuffle and mask instructions of glibc's string
//! functions) get a helper of their own instead, generated per instruction: it reads the
//! XMM registers it names (by quadwords; scalar instructions only the low one), runs the
//! instruction's function in [`crate::x86_64::sse`] and writes the destination, with
//! nothing decided at run time but the fast-or-exact choice. The fast way runs without a
//! stack frame; the exact way (under the guest MXCSR) is out of line. Two shapes each:
//!
//! - `reg(env, dst, src[, imm])`: both operands XMM registers (as [`reg_arg`]s);
//! - `args(env, dst, lo, hi[, imm])`: the source given as two quadwords (memory contents
//!   zero-extended to 128 bits, or a general register's value).
//!
//! The immediate is passed only by instructions that have one. The result is the new
//! destination register, or a value for the translator (a general register, or the flags
//! of `comis`), returned.

use core::arch::asm;
use core::arch::x86_64::{__m128i, _mm_set_epi64x};

use iced_x86::Mnemonic;
use ir::{Helper, HelperFlags};

use crate::x86_64::cpu::X86Cpu;
use crate::x86_64::sse::{self, from_m};

/// What an instruction produced.
enum Out {
    /// The new destination XMM register (only its low quadword for scalar instructions).
    Xmm(__m128i),
    /// A value for the translator.
    Gpr(u64),
}

/// An instruction's semantics, the fast way and the exact way (see [`crate::x86_64::sse`]).
trait Op {
    /// Reads and writes only the low quadwords: the helpers touch nothing else (a scalar
    /// instruction leaves the rest of the destination alone).
    const SCALAR: bool;
    /// The result when it needs no change to MXCSR `mx` (`None`: take the exact way).
    fn quick(d: __m128i, s: __m128i, imm: u8, mx: u32) -> Option<Out>;
    /// The result under MXCSR `mx`, the flags raised added to it.
    fn exact(d: __m128i, s: __m128i, imm: u8, mx: &mut u32) -> Out;
}

/// The two helpers of one instruction.
pub(super) struct Shapes {
    /// Both operands registers: `(env, dst, src, imm)`.
    pub reg: Helper,
    /// The source in the arguments: `(env, dst, lo, hi, imm)`.
    pub args: Helper,
}

/// XMM register `r`, or only its low quadword for scalar instructions, loaded straight into
/// an SSE register eight bytes at a time: translated code writes the registers by
/// quadwords, and one 16-byte load of two such stores would stall on store forwarding (the
/// compiler would merge two plain 8-byte loads into one).
#[inline(always)]
fn load<O: Op>(cpu: &X86Cpu, r: usize) -> __m128i {
    let p = cpu.xmm[r].as_ptr();
    let v: __m128i;
    if O::SCALAR {
        // SAFETY: reads the first quadword of the live register `cpu.xmm[r]`.
        unsafe {
            asm!("movq {v}, qword ptr [{p}]", v = out(xmm_reg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
    } else {
        // SAFETY: reads the two quadwords of the live register `cpu.xmm[r]`.
        unsafe {
            asm!("movq {v}, qword ptr [{p}]", "movhps {v}, qword ptr [{p} + 8]",
                 v = out(xmm_reg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
    }
    v
}

/// Writes XMM register `r` (its low quadword for scalar instructions) by quadwords, so
/// that translated code's 8-byte loads of it are forwarded.
#[inline(always)]
fn store<O: Op>(cpu: &mut X86Cpu, r: usize, v: __m128i) {
    let p = cpu.xmm[r].as_mut_ptr();
    if O::SCALAR {
        // SAFETY: writes the first quadword of the live register `cpu.xmm[r]`.
        unsafe {
            asm!("movq qword ptr [{p}], {v}", v = in(xmm_reg) v, p = in(reg) p,
                 options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: writes the two quadwords of the live register `cpu.xmm[r]`.
        unsafe {
            asm!("movq qword ptr [{p}], {v}", "movhps qword ptr [{p} + 8], {v}",
                 v = in(xmm_reg) v, p = in(reg) p, options(nostack, preserves_flags));
        }
    }
}

/// Writes the result to XMM register `d`, or returns it.
#[inline(always)]
fn finish<O: Op>(cpu: &mut X86Cpu, d: usize, out: Out) -> u64 {
    match out {
        Out::Xmm(v) => {
            store::<O>(cpu, d, v);
            0
        }
        Out::Gpr(v) => v,
    }
}

/// Runs `O` the exact way on XMM register `d` and source `s`, updating MXCSR. Out of line,
/// so that the fast way needs no stack frame.
#[cold]
#[inline(never)]
fn exact<O: Op>(cpu: &mut X86Cpu, d: usize, s: __m128i, imm: u8) -> u64 {
    let mut mx = cpu.mxcsr as u32;
    let out = O::exact(load::<O>(cpu, d), s, imm, &mut mx);
    cpu.mxcsr = mx as u64;
    finish::<O>(cpu, d, out)
}

/// Runs `O` on XMM register `d` and source `s`.
#[inline(always)]
fn apply<O: Op>(cpu: &mut X86Cpu, d: usize, s: __m128i, imm: u8) -> u64 {
    match O::quick(load::<O>(cpu, d), s, imm, cpu.mxcsr as u32) {
        Some(out) => finish::<O>(cpu, d, out),
        None => exact::<O>(cpu, d, s, imm),
    }
}

/// The XMM register number in a helper argument: the register's byte offset in the array
/// (`16 * n`), which the compiler folds into the address of a load or store.
#[inline(always)]
fn reg_of(arg: u64) -> usize {
    (arg >> 4) as usize & 15
}

/// The argument that names XMM register `r` (see [`reg_of`]).
pub(super) fn reg_arg(r: usize) -> u64 {
    (r as u64 & 15) << 4
}

/// The `reg` shape.
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
unsafe extern "C" fn from_reg<O: Op>(env: u64, d: u64, s: u64, imm: u64, _: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    let s = load::<O>(cpu, reg_of(s));
    apply::<O>(cpu, reg_of(d), s, imm as u8)
}

/// The `args` shape.
///
/// # Safety
/// As [`from_reg`].
unsafe extern "C" fn from_args<O: Op>(env: u64, d: u64, lo: u64, hi: u64, imm: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    // SAFETY: SSE2 is part of the x86_64 baseline.
    let s = unsafe { _mm_set_epi64x(hi as i64, lo as i64) };
    apply::<O>(cpu, reg_of(d), s, imm as u8)
}

/// The two helpers of `O`, named `name`.
macro_rules! shapes {
    ($ty:ident, $name:expr) => {
        // Touch only XMM registers and MXCSR (not globals); never raise.
        Shapes {
            reg: Helper {
                name: concat!("x86_", $name),
                func: from_reg::<$ty>,
                flags: HelperFlags::NONE,
            },
            args: Helper {
                name: concat!("x86_", $name, "_args"),
                func: from_args::<$ty>,
                flags: HelperFlags::NONE,
            },
        }
    };
}

/// `arith_ops! { Type STATIC name scalar Mnemonic; ... }` for the instructions with a
/// module `name` in [`crate::x86_64::sse`] (`quick`, `exact`), and `lookup_arith` over
/// them.
macro_rules! arith_ops {
    ($($ty:ident $st:ident $name:ident $scalar:literal $m:ident;)*) => {
        $(
            enum $ty {}
            impl Op for $ty {
                const SCALAR: bool = $scalar;
                #[inline(always)]
                fn quick(d: __m128i, s: __m128i, _: u8, mx: u32) -> Option<Out> {
                    sse::$name::quick(d, s, mx).map(Out::Xmm)
                }
                #[inline(always)]
                fn exact(d: __m128i, s: __m128i, _: u8, mx: &mut u32) -> Out {
                    Out::Xmm(sse::$name::exact(d, s, mx))
                }
            }
            static $st: Shapes = shapes!($ty, stringify!($name));
        )*

        fn lookup_arith(m: Mnemonic) -> Option<&'static Shapes> {
            match m {
                $(Mnemonic::$m => Some(&$st),)*
                _ => None,
            }
        }
    };
}

arith_ops! {
    Addss ADDSS addss true Addss;
    Addsd ADDSD addsd true Addsd;
    Addps ADDPS addps false Addps;
    Addpd ADDPD addpd false Addpd;
    Subss SUBSS subss true Subss;
    Subsd SUBSD subsd true Subsd;
    Subps SUBPS subps false Subps;
    Subpd SUBPD subpd false Subpd;
    Mulss MULSS mulss true Mulss;
    Mulsd MULSD mulsd true Mulsd;
    Mulps MULPS mulps false Mulps;
    Mulpd MULPD mulpd false Mulpd;
    Divss DIVSS divss true Divss;
    Divsd DIVSD divsd true Divsd;
    Divps DIVPS divps false Divps;
    Divpd DIVPD divpd false Divpd;
    Sqrtss SQRTSS sqrtss true Sqrtss;
    Sqrtsd SQRTSD sqrtsd true Sqrtsd;
    Sqrtps SQRTPS sqrtps false Sqrtps;
    Sqrtpd SQRTPD sqrtpd false Sqrtpd;
    Minss MINSS minss true Minss;
    Minsd MINSD minsd true Minsd;
    Minps MINPS minps false Minps;
    Minpd MINPD minpd false Minpd;
    Maxss MAXSS maxss true Maxss;
    Maxsd MAXSD maxsd true Maxsd;
    Maxps MAXPS maxps false Maxps;
    Maxpd MAXPD maxpd false Maxpd;
}

/// The instructions without a module of their own in [`crate::x86_64::sse`] (integer
/// arithmetic, shuffles, masks): [`sse::exec`] with the mnemonic a constant, so that only
/// its arm is left. None of them uses `exec`'s `mem` or `wide`.
#[inline(always)]
fn general(m: Mnemonic, d: __m128i, s: __m128i, imm: u8, mx: &mut u32) -> Out {
    match sse::exec(m, from_m(d), from_m(s), imm, false, false, mx) {
        Some(sse::Res::Xmm(v)) => Out::Xmm(sse::to_m(v)),
        Some(sse::Res::Gpr(v)) => Out::Gpr(v),
        // Not reached: the rows name only instructions `exec` knows.
        None => Out::Gpr(0),
    }
}

/// The helpers of instruction `m` (`wide`: its general-register operand is 64-bit), if it
/// has its own.
pub(super) fn lookup(m: Mnemonic, wide: bool) -> Option<&'static Shapes> {
    lookup_arith(m).or_else(|| lookup_other(m, wide))
}

/// `ops! { Type STATIC "name" scalar (mnemonic, wide) => |d, s, imm, mx| result; ... }`
/// for the other instructions: their one function both ways (the fast way is its result
/// when it left MXCSR alone; otherwise the exact way runs it again, which gives the same
/// result and the flags), and `lookup_other` over the rows. `wide` is the
/// general-register operand's width where it matters (`_` elsewhere).
macro_rules! ops {
    ($($ty:ident $st:ident $name:literal $scalar:literal $pat:pat => |$d:pat_param, $s:pat_param, $imm:pat_param, $mx:ident| $body:expr;)*) => {
        $(
            enum $ty {}
            impl $ty {
                #[inline(always)]
                fn run($d: __m128i, $s: __m128i, $imm: u8, $mx: &mut u32) -> Out {
                    $body
                }
            }
            impl Op for $ty {
                const SCALAR: bool = $scalar;
                #[inline(always)]
                fn quick(d: __m128i, s: __m128i, imm: u8, mx: u32) -> Option<Out> {
                    let mut m = mx;
                    let out = Self::run(d, s, imm, &mut m);
                    (m == mx).then_some(out)
                }
                #[inline(always)]
                fn exact(d: __m128i, s: __m128i, imm: u8, mx: &mut u32) -> Out {
                    Self::run(d, s, imm, mx)
                }
            }
            static $st: Shapes = shapes!($ty, $name);
        )*

        fn lookup_other(m: Mnemonic, wide: bool) -> Option<&'static Shapes> {
            use Mnemonic::*;
            match (m, wide) {
                $($pat => Some(&$st),)*
                _ => None,
            }
        }
    };
}

ops! {
    Cmpss CMPSS "cmpss" true (Cmpss, _) => |d, s, imm, mx| Out::Xmm(sse::cmp(0, d, s, imm, mx));
    Cmpsd CMPSD "cmpsd" true (Cmpsd, _) => |d, s, imm, mx| Out::Xmm(sse::cmp(1, d, s, imm, mx));
    Cmpps CMPPS "cmpps" false (Cmpps, _) => |d, s, imm, mx| Out::Xmm(sse::cmp(2, d, s, imm, mx));
    Cmppd CMPPD "cmppd" false (Cmppd, _) => |d, s, imm, mx| Out::Xmm(sse::cmp(3, d, s, imm, mx));
    Comiss COMISS "comiss" true (Comiss, _) => |d, s, _, mx| Out::Gpr(sse::comis(true, true, d, s, mx));
    Comisd COMISD "comisd" true (Comisd, _) => |d, s, _, mx| Out::Gpr(sse::comis(false, true, d, s, mx));
    Ucomiss UCOMISS "ucomiss" true (Ucomiss, _) => |d, s, _, mx| Out::Gpr(sse::comis(true, false, d, s, mx));
    Ucomisd UCOMISD "ucomisd" true (Ucomisd, _) => |d, s, _, mx| Out::Gpr(sse::comis(false, false, d, s, mx));
    Cvtss2sd CVTSS2SD "cvtss2sd" true (Cvtss2sd, _) => |d, s, _, mx| Out::Xmm(sse::cvtss2sd(d, s, mx));
    Cvtsd2ss CVTSD2SS "cvtsd2ss" true (Cvtsd2ss, _) => |d, s, _, mx| Out::Xmm(sse::cvtsd2ss(d, s, mx));
    Cvtdq2pd CVTDQ2PD "cvtdq2pd" false (Cvtdq2pd, _) => |d, s, _, mx| Out::Xmm(sse::cvtdq2pd(d, s, mx));
    Cvtps2pd CVTPS2PD "cvtps2pd" false (Cvtps2pd, _) => |d, s, _, mx| Out::Xmm(sse::cvtps2pd(d, s, mx));
    Cvtsi2sd64 CVTSI2SD64 "cvtsi2sd64" true (Cvtsi2sd, true) => |d, s, _, mx| Out::Xmm(sse::cvtsi2f(false, true, d, from_m(s)[0], mx));
    Cvtsi2sd32 CVTSI2SD32 "cvtsi2sd32" true (Cvtsi2sd, false) => |d, s, _, mx| Out::Xmm(sse::cvtsi2f(false, false, d, from_m(s)[0], mx));
    Cvtsi2ss64 CVTSI2SS64 "cvtsi2ss64" true (Cvtsi2ss, true) => |d, s, _, mx| Out::Xmm(sse::cvtsi2f(true, true, d, from_m(s)[0], mx));
    Cvtsi2ss32 CVTSI2SS32 "cvtsi2ss32" true (Cvtsi2ss, false) => |d, s, _, mx| Out::Xmm(sse::cvtsi2f(true, false, d, from_m(s)[0], mx));
    Cvtsd2si64 CVTSD2SI64 "cvtsd2si64" true (Cvtsd2si, true) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(false, false, true, s, mx));
    Cvtsd2si32 CVTSD2SI32 "cvtsd2si32" true (Cvtsd2si, false) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(false, false, false, s, mx));
    Cvttsd2si64 CVTTSD2SI64 "cvttsd2si64" true (Cvttsd2si, true) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(false, true, true, s, mx));
    Cvttsd2si32 CVTTSD2SI32 "cvttsd2si32" true (Cvttsd2si, false) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(false, true, false, s, mx));
    Cvtss2si64 CVTSS2SI64 "cvtss2si64" true (Cvtss2si, true) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(true, false, true, s, mx));
    Cvtss2si32 CVTSS2SI32 "cvtss2si32" true (Cvtss2si, false) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(true, false, false, s, mx));
    Cvttss2si64 CVTTSS2SI64 "cvttss2si64" true (Cvttss2si, true) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(true, true, true, s, mx));
    Cvttss2si32 CVTTSS2SI32 "cvttss2si32" true (Cvttss2si, false) => |_, s, _, mx| Out::Gpr(sse::cvtf2si(true, true, false, s, mx));
    Pcmpeqb PCMPEQB "pcmpeqb" false (Pcmpeqb, _) => |d, s, imm, mx| general(Mnemonic::Pcmpeqb, d, s, imm, mx);
    Pcmpeqw PCMPEQW "pcmpeqw" false (Pcmpeqw, _) => |d, s, imm, mx| general(Mnemonic::Pcmpeqw, d, s, imm, mx);
    Pcmpeqd PCMPEQD "pcmpeqd" false (Pcmpeqd, _) => |d, s, imm, mx| general(Mnemonic::Pcmpeqd, d, s, imm, mx);
    Pcmpgtb PCMPGTB "pcmpgtb" false (Pcmpgtb, _) => |d, s, imm, mx| general(Mnemonic::Pcmpgtb, d, s, imm, mx);
    Pminub PMINUB "pminub" false (Pminub, _) => |d, s, imm, mx| general(Mnemonic::Pminub, d, s, imm, mx);
    Pmaxub PMAXUB "pmaxub" false (Pmaxub, _) => |d, s, imm, mx| general(Mnemonic::Pmaxub, d, s, imm, mx);
    Pmovmskb PMOVMSKB "pmovmskb" false (Pmovmskb, _) => |d, s, imm, mx| general(Mnemonic::Pmovmskb, d, s, imm, mx);
    Paddb PADDB "paddb" false (Paddb, _) => |d, s, imm, mx| general(Mnemonic::Paddb, d, s, imm, mx);
    Paddw PADDW "paddw" false (Paddw, _) => |d, s, imm, mx| general(Mnemonic::Paddw, d, s, imm, mx);
    Paddd PADDD "paddd" false (Paddd, _) => |d, s, imm, mx| general(Mnemonic::Paddd, d, s, imm, mx);
    Paddq PADDQ "paddq" false (Paddq, _) => |d, s, imm, mx| general(Mnemonic::Paddq, d, s, imm, mx);
    Psubb PSUBB "psubb" false (Psubb, _) => |d, s, imm, mx| general(Mnemonic::Psubb, d, s, imm, mx);
    Psubw PSUBW "psubw" false (Psubw, _) => |d, s, imm, mx| general(Mnemonic::Psubw, d, s, imm, mx);
    Psubd PSUBD "psubd" false (Psubd, _) => |d, s, imm, mx| general(Mnemonic::Psubd, d, s, imm, mx);
    Psubq PSUBQ "psubq" false (Psubq, _) => |d, s, imm, mx| general(Mnemonic::Psubq, d, s, imm, mx);
    Pshufd PSHUFD "pshufd" false (Pshufd, _) => |d, s, imm, mx| general(Mnemonic::Pshufd, d, s, imm, mx);
    Punpcklbw PUNPCKLBW "punpcklbw" false (Punpcklbw, _) => |d, s, imm, mx| general(Mnemonic::Punpcklbw, d, s, imm, mx);
    Punpcklwd PUNPCKLWD "punpcklwd" false (Punpcklwd, _) => |d, s, imm, mx| general(Mnemonic::Punpcklwd, d, s, imm, mx);
    Punpckldq PUNPCKLDQ "punpckldq" false (Punpckldq, _) => |d, s, imm, mx| general(Mnemonic::Punpckldq, d, s, imm, mx);
    Punpckhbw PUNPCKHBW "punpckhbw" false (Punpckhbw, _) => |d, s, imm, mx| general(Mnemonic::Punpckhbw, d, s, imm, mx);
    Pslldq PSLLDQ "pslldq" false (Pslldq, _) => |d, s, imm, mx| general(Mnemonic::Pslldq, d, s, imm, mx);
    Psrldq PSRLDQ "psrldq" false (Psrldq, _) => |d, s, imm, mx| general(Mnemonic::Psrldq, d, s, imm, mx);
    Psllq PSLLQ "psllq" false (Psllq, _) => |d, s, imm, mx| general(Mnemonic::Psllq, d, s, imm, mx);
    Psrlq PSRLQ "psrlq" false (Psrlq, _) => |d, s, imm, mx| general(Mnemonic::Psrlq, d, s, imm, mx);
    Pslld PSLLD "pslld" false (Pslld, _) => |d, s, imm, mx| general(Mnemonic::Pslld, d, s, imm, mx);
    Psrld PSRLD "psrld" false (Psrld, _) => |d, s, imm, mx| general(Mnemonic::Psrld, d, s, imm, mx);
    Pmuludq PMULUDQ "pmuludq" false (Pmuludq, _) => |d, s, imm, mx| general(Mnemonic::Pmuludq, d, s, imm, mx);
    Unpcklps UNPCKLPS "unpcklps" false (Unpcklps, _) => |d, s, imm, mx| general(Mnemonic::Unpcklps, d, s, imm, mx);
    Shufps SHUFPS "shufps" false (Shufps, _) => |d, s, imm, mx| general(Mnemonic::Shufps, d, s, imm, mx);
    Movmskpd MOVMSKPD "movmskpd" false (Movmskpd, _) => |d, s, imm, mx| general(Mnemonic::Movmskpd, d, s, imm, mx);
    Movmskps MOVMSKPS "movmskps" false (Movmskps, _) => |d, s, imm, mx| general(Mnemonic::Movmskps, d, s, imm, mx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86_64::sse::Xmm;

    fn call(h: &Helper, cpu: &mut X86Cpu, args: [u64; 5]) -> u64 {
        let env = cpu as *mut X86Cpu as u64;
        // SAFETY: a live X86Cpu that nothing else touches during the call.
        unsafe { (h.func)(env, args[0], args[1], args[2], args[3], args[4]) }
    }

    #[test]
    fn a_register_helper_reads_both_registers_and_writes_the_destination() {
        let mut cpu = X86Cpu::new(0);
        cpu.mxcsr = 0x1fa0;
        cpu.xmm[3] = [1.5f64.to_bits(), 7];
        cpu.xmm[12] = [2.25f64.to_bits(), 9];
        let h = lookup(Mnemonic::Addsd, false).unwrap();
        assert_eq!(
            call(&h.reg, &mut cpu, [reg_arg(3), reg_arg(12), 0, 0, 0]),
            0
        );
        assert_eq!(cpu.xmm[3], [3.75f64.to_bits(), 7], "the high lane stays");
        assert_eq!(cpu.xmm[12], [2.25f64.to_bits(), 9]);
    }

    #[test]
    fn an_args_helper_takes_the_source_from_its_arguments() {
        let mut cpu = X86Cpu::new(0);
        cpu.xmm[0] = [1.0f64.to_bits(), 0];
        let h = lookup(Mnemonic::Divsd, false).unwrap();
        call(&h.args, &mut cpu, [0, 3.0f64.to_bits(), 0, 0, 0]);
        assert_eq!(cpu.xmm[0][0], (1.0f64 / 3.0).to_bits());
        assert_eq!(cpu.mxcsr, 0x1fa0, "PE, through the exact path");
    }

    #[test]
    fn compares_return_the_flags_and_conversions_the_integer() {
        let mut cpu = X86Cpu::new(0);
        cpu.xmm[1] = [2.0f64.to_bits(), 0];
        cpu.xmm[2] = [(-3.7f64).to_bits(), 0];
        let ucomisd = lookup(Mnemonic::Ucomisd, false).unwrap();
        let flags = call(&ucomisd.reg, &mut cpu, [reg_arg(1), reg_arg(2), 0, 0, 0]);
        assert_eq!(flags, 0, "2 > -3.7: ZF PF CF clear");
        let cvt = lookup(Mnemonic::Cvttsd2si, false).unwrap();
        assert_eq!(
            call(&cvt.reg, &mut cpu, [0, reg_arg(2), 0, 0, 0]),
            (-3i32) as u32 as u64
        );
        let cvt = lookup(Mnemonic::Cvtsd2si, true).unwrap();
        assert_eq!(
            call(&cvt.reg, &mut cpu, [0, reg_arg(2), 0, 0, 0]),
            (-4i64) as u64
        );
        let imm = lookup(Mnemonic::Cmpsd, false).unwrap();
        call(&imm.reg, &mut cpu, [reg_arg(1), reg_arg(2), 6, 0, 0]); // NLE: 2 > -3.7
        assert_eq!(cpu.xmm[1][0], u64::MAX);
    }

    #[test]
    fn only_the_listed_instructions_have_their_own_helpers() {
        assert!(lookup(Mnemonic::Pinsrw, false).is_none());
        assert!(lookup(Mnemonic::Pshufd, false).is_some());
        assert!(lookup(Mnemonic::Cvtsi2sd, true).is_some());
    }

    /// With PE already set the fast way is taken, so every other flag must still be found:
    /// each case here is caught by the value checks and goes the exact way.
    #[test]
    fn with_pe_set_the_other_flags_are_still_raised() {
        const PE: u64 = 0x20;
        let tiny = 1e-200f64.to_bits();
        let denormal = 1u64;
        let cases: [(Mnemonic, Xmm, Xmm, u64, &str); 6] = [
            (
                Mnemonic::Mulsd,
                [tiny, 0],
                [tiny, 0],
                0x10,
                "UE: the product underflows",
            ),
            (
                Mnemonic::Divsd,
                [1f64.to_bits(), 0],
                [0, 0],
                0x04,
                "ZE: 1 / 0",
            ),
            (
                Mnemonic::Addsd,
                [1f64.to_bits(), 0],
                [denormal, 0],
                0x02,
                "DE: a denormal operand",
            ),
            (
                Mnemonic::Sqrtsd,
                [0, 0],
                [(-1f64).to_bits(), 0],
                0x01,
                "IE: sqrt(-1)",
            ),
            (
                Mnemonic::Mulpd,
                [2f64.to_bits(), f64::MAX.to_bits()],
                [2f64.to_bits(), 2f64.to_bits()],
                0x08,
                "OE: the high lane overflows",
            ),
            (
                Mnemonic::Maxpd,
                [2f64.to_bits(), f64::NAN.to_bits()],
                [1f64.to_bits(), 1f64.to_bits()],
                0x01,
                "IE: max with a NaN",
            ),
        ];
        for (m, d, s, flag, what) in cases {
            let mut cpu = X86Cpu::new(0);
            cpu.mxcsr = 0x1f80 | PE;
            cpu.xmm[1] = d;
            cpu.xmm[2] = s;
            call(
                &lookup(m, false).unwrap().reg,
                &mut cpu,
                [reg_arg(1), reg_arg(2), 0, 0, 0],
            );
            assert_eq!(cpu.mxcsr & 0x3f & !PE, flag, "{what}");
        }
    }

    #[test]
    fn with_pe_set_an_ordinary_operation_changes_only_its_destination() {
        let mut cpu = X86Cpu::new(0);
        cpu.mxcsr = 0x1fa0;
        cpu.xmm[4] = [3f64.to_bits(), 5];
        cpu.xmm[5] = [7f64.to_bits(), 6];
        call(
            &lookup(Mnemonic::Divsd, false).unwrap().reg,
            &mut cpu,
            [reg_arg(4), reg_arg(5), 0, 0, 0],
        );
        assert_eq!(cpu.xmm[4], [(3f64 / 7.0).to_bits(), 5]);
        assert_eq!(cpu.mxcsr, 0x1fa0);
    }
}
