//! The generator of random, valid, sandboxed instruction sequences.
//!
//! Most instructions come from iced-x86's own table of encodings: every legacy 64-bit
//! [`Code`] whose mnemonic is in one of the class lists below, whose CPUID features are the
//! base ISA, SSE/SSE2, POPCNT, LZCNT or BMI1, and whose operands are general or XMM
//! registers, r/m, immediates or fixed registers, is a candidate; its operands are filled at
//! random. Instructions with implicit memory or a special contract get hand-written setups:
//! string instructions (rsi/rdi inside the data page, a small rcx), stack instructions
//! (bounded depth, `popfq` only of a value just pushed), divisions (a dividend that usually
//! fits), `bsf`/`bsr` (a source made non-zero, since the result is undefined otherwise),
//! `bt` with a register offset into memory (a small offset), shifts by `cl` (a `mov cl`
//! right before, so the count and with it the undefined flags are known), `ldmxcsr` (a
//! valid value stored first), forward branches.
//!
//! Sandbox invariants: rsp and r15 are never written except by the stack instructions
//! (rsp) — r15 holds [`DATA_ADDR`] and is the base of every generated memory operand (or an
//! absolute or rip-relative address in the data page); rsp stays within the stack page.
//! Flag consumers (jcc, setcc, cmov, adc, sbb, rcl, rcr, pushf, lahf, cmc, loope...) never
//! read a flag that is undefined at that point (see [`crate::seq::effect`]): a `cmp` that
//! defines them all is inserted first when needed.

use iced_x86::{
    Code, CpuidFeature, Instruction, InstructionInfoFactory, MemoryOperand, Mnemonic, OpAccess,
    OpCodeOperandKind as K, OpKind, Register, RepPrefixKind,
};

use crate::seq::{effect, Item, Sequence};
use crate::state::{
    InitState, ARITH_FLAGS, CODE_ADDR, DATA_ADDR, DATA_SIZE, DF, FS_BASE, GS_BASE, MEM_SIZE,
    STACK_TOP, X87_CC,
};

/// A small deterministic generator (SplitMix64): the same seed gives the same sequences on
/// every host and Rust version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One element of `v`.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// Instruction classes, selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// add or adc sbb and sub xor cmp test inc dec neg not.
    Alu,
    /// Shifts, rotates (also through carry), double shifts.
    Shift,
    /// mul, imul (all forms), div and idiv (with occasional #DE).
    MulDiv,
    /// bt bts btr btc, bsf bsr, tzcnt lzcnt popcnt, bswap.
    Bit,
    /// movs stos lods scas cmps, with and without rep/repe/repne, both directions.
    String,
    /// Flag producer/consumer pairs: cmov, setcc, lahf/sahf, clc/stc/cmc.
    Cond,
    /// Forward jcc, loop/loope/loopne, jrcxz/jecxz.
    Branch,
    /// push/pop of registers, memory and immediates, pushfq/popfq.
    Stack,
    /// mov family, lea, xchg, xadd, cmpxchg, sign extensions, cld/std.
    Misc,
    /// SSE/SSE2: moves, integer and floating-point arithmetic, compares, conversions,
    /// shuffles, ldmxcsr/stmxcsr, under random MXCSR rounding, DAZ and FTZ.
    Sse,
    /// x87: loads and stores of every format, arithmetic, compares (fnstsw, fcomi),
    /// transcendentals, fcmov, stack juggling, under random precision and rounding control.
    X87,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 11] = [
        Class::Alu,
        Class::Shift,
        Class::MulDiv,
        Class::Bit,
        Class::String,
        Class::Cond,
        Class::Branch,
        Class::Stack,
        Class::Misc,
        Class::Sse,
        Class::X87,
    ];

    /// The classes run when none are named: every class. (x87 joined once the stack-fault
    /// and condition-code corner cases this tester found were fixed in the frontend.)
    pub const DEFAULT: [Class; 11] = Class::ALL;

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Alu => "alu",
            Class::Shift => "shift",
            Class::MulDiv => "muldiv",
            Class::Bit => "bit",
            Class::String => "string",
            Class::Cond => "cond",
            Class::Branch => "branch",
            Class::Stack => "stack",
            Class::Misc => "misc",
            Class::Sse => "sse",
            Class::X87 => "x87",
        }
    }

    /// The class named `s`.
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The mnemonics drawn from iced-x86's encoding table for this class.
    fn table_mnemonics(self) -> &'static [Mnemonic] {
        use Mnemonic::*;
        match self {
            Class::Alu => &[
                Add, Or, Adc, Sbb, And, Sub, Xor, Cmp, Test, Inc, Dec, Neg, Not,
            ],
            Class::Shift => &[Shl, Sal, Shr, Sar, Rol, Ror, Rcl, Rcr, Shld, Shrd],
            Class::MulDiv => &[Mul, Imul, Div, Idiv],
            Class::Bit => &[Bt, Bts, Btr, Btc, Bsf, Bsr, Tzcnt, Lzcnt, Popcnt, Bswap],
            Class::String | Class::Branch | Class::Stack => &[],
            Class::Cond => &[
                Cmovo, Cmovno, Cmovb, Cmovae, Cmove, Cmovne, Cmovbe, Cmova, Cmovs, Cmovns, Cmovp,
                Cmovnp, Cmovl, Cmovge, Cmovle, Cmovg, Seto, Setno, Setb, Setae, Sete, Setne, Setbe,
                Seta, Sets, Setns, Setp, Setnp, Setl, Setge, Setle, Setg, Lahf, Sahf, Clc, Stc,
                Cmc,
            ],
            Class::Misc => &[
                Mov, Movnti, Movzx, Movsx, Movsxd, Lea, Xchg, Xadd, Cmpxchg, Cmpxchg8b, Cmpxchg16b,
                Movbe, Cbw, Cwde, Cdqe, Cwd, Cdq, Cqo, Cld, Std, Nop,
            ],
            Class::Sse => SSE_MNEMONICS,
            Class::X87 => X87_MNEMONICS,
        }
    }
}

/// The SSE/SSE2 mnemonics the frontend implements (`frontend/src/x86_64/sse.rs`'s `exec`
/// and the moves of `translate/sse.rs`), minus those with implicit operands.
const SSE_MNEMONICS: &[Mnemonic] = {
    use Mnemonic::*;
    &[
        Movaps, Movups, Movapd, Movupd, Movdqa, Movdqu, Movntps, Movntpd, Movntdq, Movss, Movsd,
        Movq, Movd, Movlps, Movlpd, Movhps, Movhpd, Movhlps, Movlhps, Movmskps, Movmskpd, Pmovmskb,
        Pand, Andps, Andpd, Pandn, Andnps, Andnpd, Por, Orps, Orpd, Pxor, Xorps, Xorpd, Paddb,
        Paddw, Paddd, Paddq, Paddsb, Paddsw, Paddusb, Paddusw, Psubb, Psubw, Psubd, Psubq, Psubsb,
        Psubsw, Psubusb, Psubusw, Pcmpeqb, Pcmpeqw, Pcmpeqd, Pcmpgtb, Pcmpgtw, Pcmpgtd, Pminub,
        Pmaxub, Pminsw, Pmaxsw, Pavgb, Pavgw, Psadbw, Pmullw, Pmulhw, Pmulhuw, Pmuludq, Pmaddwd,
        Psllw, Pslld, Psllq, Psrlw, Psrld, Psrlq, Psraw, Psrad, Punpcklbw, Punpcklwd, Punpckldq,
        Punpcklqdq, Punpckhbw, Punpckhwd, Punpckhdq, Punpckhqdq, Packsswb, Packuswb, Packssdw,
        Unpcklps, Unpckhps, Unpcklpd, Unpckhpd, Pslldq, Psrldq, Pshufd, Pshuflw, Pshufhw, Shufps,
        Shufpd, Pinsrw, Pextrw, Addss, Addsd, Addps, Addpd, Subss, Subsd, Subps, Subpd, Mulss,
        Mulsd, Mulps, Mulpd, Divss, Divsd, Divps, Divpd, Minss, Minsd, Minps, Minpd, Maxss, Maxsd,
        Maxps, Maxpd, Sqrtss, Sqrtsd, Sqrtps, Sqrtpd, Cmpss, Cmpsd, Cmpps, Cmppd, Comiss, Comisd,
        Ucomiss, Ucomisd, Cvtss2sd, Cvtsd2ss, Cvtps2pd, Cvtpd2ps, Cvtdq2ps, Cvtdq2pd, Cvtps2dq,
        Cvttps2dq, Cvtpd2dq, Cvttpd2dq, Cvtsi2ss, Cvtsi2sd, Cvtss2si, Cvttss2si, Cvtsd2si,
        Cvttsd2si, Stmxcsr, Ldmxcsr, Rcpps, Rcpss, Rsqrtps, Rsqrtss,
    ]
};

/// The x87 mnemonics the frontend implements (`translate/x87.rs`), minus fldcw (only of a
/// valid value, see `Generator::fldcw`) and the environment/state saves.
const X87_MNEMONICS: &[Mnemonic] = {
    use Mnemonic::*;
    &[
        Fld, Fild, Fst, Fstp, Fist, Fistp, Fisttp, Fadd, Faddp, Fiadd, Fsub, Fsubp, Fisub, Fsubr,
        Fsubrp, Fisubr, Fmul, Fmulp, Fimul, Fdiv, Fdivp, Fidiv, Fdivr, Fdivrp, Fidivr, Fchs, Fabs,
        Fsqrt, Frndint, Fscale, Fprem, Fprem1, Fxch, Fcom, Fcomp, Fcompp, Fucom, Fucomp, Fucompp,
        Fcomi, Fcomip, Fucomi, Fucomip, Ftst, Fxam, Fld1, Fldz, Fldpi, Fldl2e, Fldln2, Fldlg2,
        Fldl2t, Fincstp, Fdecstp, Ffree, Fcmovb, Fcmove, Fcmovbe, Fcmovu, Fcmovnb, Fcmovne,
        Fcmovnbe, Fcmovnu, F2xm1, Fsin, Fcos, Fptan, Fsincos, Fpatan, Fxtract, Fyl2x, Fyl2xp1,
        Fnstsw, Fnstcw, Fninit, Fnclex,
    ]
};

/// The mnemonics the x86_64 frontend implements that this generator emits for `classes`
/// (all when empty): the class lists above, taken from the arms of `translate`'s dispatch
/// (`frontend/src/x86_64/translate/mod.rs`), `sse.rs`'s `exec` and `translate/x87.rs`, and the
/// hand-written forms (string, branch and stack instructions, xlatb, fldcw). Left out:
/// system instructions (cpuid, rdtsc, syscall, hlt), calls, returns and indirect jumps,
/// enter/leave, fxsave/fxrstor and the x87 environment saves. The denominator of the
/// coverage figure.
pub fn implemented_mnemonics(classes: &[Class]) -> Vec<Mnemonic> {
    use Mnemonic::*;
    let classes = if classes.is_empty() {
        &Class::DEFAULT[..]
    } else {
        classes
    };
    let mut v: Vec<Mnemonic> = Vec::new();
    for &c in classes {
        v.extend_from_slice(c.table_mnemonics());
        v.extend_from_slice(match c {
            Class::String => &[
                Movsb, Movsw, Movsd, Movsq, Stosb, Stosw, Stosd, Stosq, Lodsb, Lodsw, Lodsd, Lodsq,
                Scasb, Scasw, Scasd, Scasq, Cmpsb, Cmpsw, Cmpsd, Cmpsq,
            ],
            Class::Branch => &[
                Jo, Jno, Jb, Jae, Je, Jne, Jbe, Ja, Js, Jns, Jp, Jnp, Jl, Jge, Jle, Jg, Loop,
                Loope, Loopne, Jrcxz, Jecxz,
            ],
            Class::Stack => &[Push, Pop, Pushfq, Popfq, Pushf, Popf],
            Class::Misc => &[Xlatb],
            Class::X87 => &[Fldcw],
            _ => &[],
        });
    }
    v.sort_by_key(|m| *m as u32);
    v.dedup();
    v
}

/// CPUID features a generated instruction may need (the host must have them: checked by
/// [`host_supports`]).
const FEATURES: &[CpuidFeature] = &[
    CpuidFeature::INTEL8086,
    CpuidFeature::INTEL186,
    CpuidFeature::INTEL286,
    CpuidFeature::INTEL386,
    CpuidFeature::INTEL486,
    CpuidFeature::X64,
    CpuidFeature::CMOV,
    CpuidFeature::SSE,
    CpuidFeature::SSE2,
    CpuidFeature::POPCNT,
    CpuidFeature::LZCNT,
    CpuidFeature::BMI1,
    CpuidFeature::MOVBE,
    CpuidFeature::FPU,
    CpuidFeature::FPU287,
    CpuidFeature::FPU387,
    CpuidFeature::SSE3,
    CpuidFeature::CX8,
    CpuidFeature::CMPXCHG16B,
];

/// Whether the host runs `f` (tzcnt/lzcnt silently run as bsf/bsr without BMI1/LZCNT).
fn host_supports(f: CpuidFeature) -> bool {
    match f {
        CpuidFeature::POPCNT => std::arch::is_x86_feature_detected!("popcnt"),
        CpuidFeature::LZCNT => std::arch::is_x86_feature_detected!("lzcnt"),
        CpuidFeature::BMI1 => std::arch::is_x86_feature_detected!("bmi1"),
        CpuidFeature::MOVBE => std::arch::is_x86_feature_detected!("movbe"),
        CpuidFeature::CMPXCHG16B => std::arch::is_x86_feature_detected!("cmpxchg16b"),
        _ => true,
    }
}

/// Operand kinds the table-driven builder fills.
fn supported_operand(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_opcode
            | K::r16_rm
            | K::r32_reg
            | K::r32_opcode
            | K::r32_rm
            | K::r64_reg
            | K::r64_opcode
            | K::r64_rm
            | K::xmm_reg
            | K::xmm_rm
            | K::xmm_or_mem
            | K::mem
            | K::al
            | K::ax
            | K::eax
            | K::rax
            | K::cl
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::st0
            | K::sti_opcode
    )
}

/// The table-driven candidates of `class`.
fn table_codes(class: Class) -> Vec<Code> {
    let ms = class.table_mnemonics();
    Code::values()
        .filter(|c| {
            let oc = c.op_code();
            oc.is_instruction()
                && oc.encoding() == iced_x86::EncodingKind::Legacy
                && oc.mode64()
                && ms.contains(&c.mnemonic())
                && !oc.is_stack_instruction()
                && oc.op_kinds().iter().all(|k| supported_operand(*k))
                && c.cpuid_features()
                    .iter()
                    .all(|f| FEATURES.contains(f) && host_supports(*f))
                && !is_undocumented_alias(*c)
                && !oc.fwait()
                // ldmxcsr only of a valid value: see `Generator::ldmxcsr`.
                && c.mnemonic() != Mnemonic::Ldmxcsr
                // bswap of a 16-bit register is undefined.
                && *c != Code::Bswap_r16
                // SSE4.1's pextrw to memory.
                && *c != Code::Pextrw_r32m16_xmm_imm8
        })
        .collect()
}

/// Whether `c` is one of the undocumented x87 aliases (`fcom st(i)` at DC D0+i, `fxch` at
/// DD C8+i, `fstp` at DF D0+i...), which iced names after their opcode (`Fxch_st0_sti_DDC8`).
/// (An earlier filter took a digit at the end of the name's first part for the mark of an
/// alias, which kept `f2xm1`, `fld1`, `fldlg2`, `fldln2`, `fprem1` and `fyl2xp1` out and
/// let the aliases in.)
fn is_undocumented_alias(c: Code) -> bool {
    let name = format!("{c:?}");
    let last = name.rsplit('_').next().unwrap_or_default();
    format!("{:?}", c.mnemonic()).starts_with('F')
        && last.len() == 4
        && last
            .chars()
            .all(|d| d.is_ascii_digit() || ('A'..='F').contains(&d))
}

const GPR64: [Register; 16] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSP,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// General register `n` (0..16) at `bits`; for 8 bits `n` 16..20 are AH..BH.
fn gpr(n: usize, bits: u32) -> Register {
    let base = match bits {
        64 => Register::RAX,
        32 => Register::EAX,
        16 => Register::AX,
        _ => {
            return match n {
                0..=3 => Register::AL + n as u32,
                16..=19 => Register::AH + (n - 16) as u32,
                _ => Register::SPL + (n - 4) as u32,
            }
        }
    };
    base + n as u32
}

/// Values registers and immediates are drawn from besides plain random ones.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    u64::MAX,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 63,
];

/// A register or immediate value: interesting, small, or random.
fn value(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.pick(&INTERESTING),
        1 => rng.below(64).wrapping_sub(16),
        2 => rng.pick(&INTERESTING) ^ (1 << rng.below(64)),
        _ => rng.next_u64(),
    }
}

/// Floating-point bit patterns worth testing (zeros, ones, infinities, NaNs, denormals,
/// extremes), as doubles and as floats.
const F64S: [u64; 12] = [
    0,
    1 << 63,
    0x3ff0_0000_0000_0000,
    0xbff8_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0x7ff4_0000_0000_0001,
    1,
    0x0010_0000_0000_0000,
    0x7fef_ffff_ffff_ffff,
    0x41e0_0000_0000_0000,
];
const F32S: [u32; 12] = [
    0,
    1 << 31,
    0x3f80_0000,
    0xbfc0_0000,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0x7fa0_0001,
    1,
    0x0080_0000,
    0x7f7f_ffff,
    0x4f00_0000,
];

/// A 64-bit value for SSE data: integers, two floats, or a double.
fn sse_value(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => value(rng),
        1 | 2 => {
            let mut f = || {
                if rng.chance(60) {
                    rng.pick(&F32S) as u64
                } else {
                    let v = (rng.next_u64() as i32 as f32) / 1024.0;
                    v.to_bits() as u64
                }
            };
            f() | f() << 32
        }
        _ => {
            if rng.chance(60) {
                rng.pick(&F64S)
            } else {
                ((rng.next_u64() as i64 as f64) / 65536.0).to_bits()
            }
        }
    }
}

/// Most pushes outstanding (bytes below the initial rsp).
const MAX_DEPTH: i64 = 0x600;

/// Generates sequences; see the module doc.
pub struct Generator {
    rng: Rng,
    classes: Vec<Class>,
    codes: Vec<(Class, Vec<Code>)>,
    info: InstructionInfoFactory,
    encoder: iced_x86::Encoder,
    /// For [`Generator::sample`]: r/m operands all memory or all registers.
    force_memory: Option<bool>,
    /// Encodings generated with register operands only.
    register_only: Vec<Code>,
    /// Hand-written encodings not to generate (the frontend raises #UD for them).
    disabled: Vec<Code>,
    /// Setups the memory operand just built needs (an index register made small).
    mem_setup: Vec<Instruction>,
    /// Inside a group that must run whole: every push is glued.
    glue_all: bool,
    next_id: u64,
    items: Vec<Item>,
    /// Undefined flags now (after the last item, before pending branch merges).
    undef: u64,
    /// Branch targets (ids) still ahead, with the undefined flags they carry and the index
    /// of the branch.
    pending: Vec<(u64, u64, usize)>,
    /// Bytes pushed and not popped.
    depth: i64,
    /// Values on the x87 stack (as far as straight-line code knows).
    fpu_depth: i32,
}

impl Generator {
    /// A generator for `classes` ([`Class::DEFAULT`] when empty), reproducible from `seed`.
    pub fn new(seed: u64, classes: &[Class]) -> Generator {
        let classes: Vec<Class> = if classes.is_empty() {
            Class::DEFAULT.to_vec()
        } else {
            classes.to_vec()
        };
        let codes = Class::ALL.iter().map(|&c| (c, table_codes(c))).collect();
        Generator {
            rng: Rng::new(seed),
            classes,
            codes,
            info: InstructionInfoFactory::new(),
            encoder: iced_x86::Encoder::new(64),
            force_memory: None,
            mem_setup: Vec::new(),
            register_only: Vec::new(),
            disabled: Vec::new(),
            glue_all: false,
            next_id: 0,
            items: Vec::new(),
            undef: 0,
            pending: Vec::new(),
            depth: 0,
            fpu_depth: 0,
        }
    }

    /// Restarts the random stream from `seed` (the code tables stay).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng::new(seed);
    }

    /// Number of table-driven candidate encodings of the selected classes (for reports).
    pub fn candidate_codes(&self) -> usize {
        self.codes
            .iter()
            .filter(|(c, _)| self.classes.contains(c))
            .map(|(_, v)| v.len())
            .sum()
    }

    /// Drops candidate encoding `code` (e.g. one the frontend does not implement), or with
    /// `memory_only` just its memory-operand form.
    pub fn exclude(&mut self, code: Code, memory_only: bool) {
        if memory_only {
            self.register_only.push(code);
        } else {
            self.disabled.push(code);
            for (_, v) in &mut self.codes {
                v.retain(|c| *c != code);
            }
        }
    }

    /// An instance of `code` with its r/m operand a register (`memory` false) or memory,
    /// for probing what the frontend implements.
    pub fn sample(&mut self, code: Code, memory: bool) -> Option<Instruction> {
        self.force_memory = Some(memory);
        let i = (0..50).find_map(|_| self.build(code));
        self.force_memory = None;
        self.mem_setup.clear();
        i
    }

    /// The hand-written encodings (outside iced-x86's table walk) with a sample each, for
    /// probing what the frontend implements.
    pub fn hand_written(&self) -> Vec<Instruction> {
        let xlat = MemoryOperand::with_base_index(Register::RBX, Register::AL);
        let mut v = vec![
            Instruction::with(Code::Pushfw),
            Instruction::with(Code::Popfw),
            Instruction::with(Code::Pushfq),
            Instruction::with(Code::Popfq),
        ];
        v.extend(Instruction::with1(Code::Xlat_m8, xlat));
        v.extend(Instruction::with_movsq(
            64,
            Register::None,
            RepPrefixKind::None,
        ));
        v.extend(Instruction::with_branch(Code::Jecxz_rel8_64, 0));
        v.extend(Instruction::with_branch(Code::Loopne_rel8_64_RCX, 0));
        v
    }

    /// The candidate table-driven encodings of every class (producers of the selected
    /// classes may come from the others).
    pub fn codes(&self) -> Vec<Code> {
        self.codes
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    }

    /// The next sequence: about `len` instructions (setups included) and a random start.
    pub fn sequence(&mut self, len: usize) -> Sequence {
        self.items.clear();
        self.undef = 0;
        self.pending.clear();
        self.depth = 0;
        self.fpu_depth = 0;
        self.next_id = 0;
        let init = self.init_state();
        let mut guard = 0;
        while self.items.len() < len && guard < len * 20 {
            guard += 1;
            let class = self.rng.pick(&self.classes);
            self.class(class);
        }
        Sequence {
            items: std::mem::take(&mut self.items),
            init,
        }
    }

    fn init_state(&mut self) -> InitState {
        let r = &mut self.rng;
        let mut regs = [0u64; 16];
        for v in regs.iter_mut() {
            *v = value(r);
        }
        regs[4] = STACK_TOP;
        regs[15] = DATA_ADDR;
        let rflags = (r.next_u64() & ARITH_FLAGS) | if r.chance(20) { DF } else { 0 };
        let mut xmm = [[0u64; 2]; 16];
        for x in xmm.iter_mut() {
            *x = [sse_value(r), sse_value(r)];
        }
        // Every exception masked, a random rounding mode, DAZ and FTZ, some sticky flags.
        let mxcsr = 0x1f80
            | (r.below(4) as u32) << 13
            | if r.chance(25) { 0x40 } else { 0 }
            | if r.chance(25) { 0x8000 } else { 0 }
            | if r.chance(20) { r.below(64) as u32 } else { 0 };
        let mut mem = vec![0u8; MEM_SIZE];
        for q in mem.chunks_mut(8) {
            let v = if r.chance(50) { sse_value(r) } else { value(r) };
            q.copy_from_slice(&v.to_le_bytes());
        }
        // A quarter of the sequences start just before the code area's second page.
        let rip = if r.chance(25) {
            CODE_ADDR + 0x1000 - 1 - r.below(256)
        } else {
            CODE_ADDR
        };
        InitState {
            rip,
            regs,
            rflags,
            xmm,
            mxcsr,
            mem,
        }
    }

    /// Undefined flags at the next item (pending merges for its id included).
    fn undef_at_next(&self) -> u64 {
        self.pending
            .iter()
            .filter(|p| p.0 == self.next_id)
            .fold(self.undef, |u, p| u | p.1)
    }

    /// Appends `i` (and a `cmp` before it if it reads an undefined flag).
    fn push(&mut self, i: Instruction, target: Option<u64>) {
        self.push_item(i, target, false)
    }

    /// Appends `i`, the second or later instruction of a group that must run whole (a setup
    /// and what it prepares): branches that would land on it land after it instead.
    fn push_glued(&mut self, i: Instruction) {
        self.push_item(i, None, true)
    }

    fn push_item(&mut self, i: Instruction, target: Option<u64>, glued: bool) {
        let glued = glued || self.glue_all;
        if glued {
            let id = self.next_id;
            for p in self.pending.iter_mut().filter(|p| p.0 == id) {
                p.0 = id + 1;
                if let Some(b) = self.items.get_mut(p.2) {
                    b.target = Some(id + 1);
                }
            }
        }
        let u = self.undef_at_next();
        let is_target = self.pending.iter().any(|p| p.0 == self.next_id);
        let prev = self.items.last().map(|it| it.instr);
        let e = effect(prev.as_ref(), &i, is_target);
        if e.read & u != 0 {
            if e.read & u & X87_CC != 0 {
                // fxam defines all four condition codes, whatever ST(0) holds.
                self.push(Instruction::with(Code::Fxam), None);
            } else {
                self.define_flags();
            }
            return self.push_item(i, target, glued);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.retain(|p| p.0 != id);
        self.undef = e.apply(u);
        if let Some(t) = target {
            self.pending.push((t, self.undef, self.items.len()));
        }
        if i.mnemonic() == Mnemonic::Fninit {
            self.fpu_depth = 0;
        } else {
            let f = i.fpu_stack_increment_info();
            if f.writes_top() {
                self.fpu_depth = (self.fpu_depth - f.increment()).clamp(0, 8);
            }
        }
        self.items.push(Item {
            instr: i,
            id,
            target,
        });
    }

    /// `cmp r64, r64`: defines all six arithmetic flags.
    fn define_flags(&mut self) {
        let (a, b) = (self.rng.below(16) as usize, self.rng.below(16) as usize);
        let i = Instruction::with2(Code::Cmp_r64_rm64, GPR64[a], GPR64[b]).expect("cmp r64, r64");
        self.push(i, None);
    }

    /// Whether `i` writes rsp or r15 (the sandbox's anchors).
    fn writes_anchor(&mut self, i: &Instruction) -> bool {
        self.info.info(i).used_registers().iter().any(|u| {
            matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) && matches!(u.register().full_register(), Register::RSP | Register::R15)
        })
    }

    /// A memory operand of `size` bytes in the data page: `[r15 + d]` mostly, sometimes an
    /// absolute or a rip-relative address, one straddling the boundary with the stack page,
    /// or `[r15 + index * scale + d]` with the index register made a byte first (the setup
    /// goes to `mem_setup`). `align`: the alignment to keep (1 for any).
    fn mem(&mut self, size: usize, align: u64) -> MemoryOperand {
        let size = size.max(1) as u64;
        let mut off = self.rng.below(DATA_SIZE as u64 - size - 16) & !(align - 1);
        if self.rng.chance(8) {
            off = (DATA_SIZE as u64 - size + 1 + self.rng.below(size)) & !(align - 1);
        }
        if align == 1 && self.rng.chance(15) {
            // Not rax/rdx: the division setups (cbw, cqo...) rewrite them.
            const INDEX: [usize; 11] = [1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13];
            let n = self.rng.pick(&INDEX);
            let scale = 1u32 << self.rng.below(4);
            let setup = Instruction::with2(Code::Movzx_r32_rm8, gpr(n, 32), gpr(n, 8))
                .expect("movzx r32, r8");
            self.mem_setup.push(setup);
            let disp = self.rng.below(MEM_SIZE as u64 - 255 * scale as u64 - size);
            return MemoryOperand::with_base_index_scale_displ_size(
                Register::R15,
                GPR64[n],
                scale,
                disp as i64,
                1,
            );
        }
        match self.rng.below(10) {
            // fs:[d] and gs:[d]: the segment base plus an absolute displacement.
            0 if self.rng.chance(30) => MemoryOperand::new(
                Register::None,
                Register::None,
                1,
                (DATA_ADDR + off - FS_BASE) as i64,
                4,
                false,
                Register::FS,
            ),
            0 if self.rng.chance(30) && off >= GS_BASE - DATA_ADDR => MemoryOperand::new(
                Register::None,
                Register::None,
                1,
                (DATA_ADDR + off - GS_BASE) as i64,
                4,
                false,
                Register::GS,
            ),
            0 => MemoryOperand::with_displ(DATA_ADDR + off, 4),
            1 => MemoryOperand::with_base_displ(Register::RIP, (DATA_ADDR + off) as i64),
            // 32-bit address size (0x67): the same address, computed modulo 2^32.
            2 if self.rng.chance(30) => MemoryOperand::with_base_displ(Register::R15D, off as i64),
            _ => MemoryOperand::with_base_displ(Register::R15, off as i64),
        }
    }

    /// An immediate for `i`'s operand `n`, given its kind: shift counts are kept where the
    /// result and CF are defined for the operand size.
    fn imm(&mut self, code: Code, bits: u32) -> u64 {
        use Mnemonic::*;
        match code.mnemonic() {
            Shl | Sal | Shr | Sar | Rol | Ror | Shld | Shrd => self.count(code.mnemonic(), bits),
            Rcl | Rcr => self.rng.below(256),
            _ => value(&mut self.rng),
        }
    }

    /// A shift count for an operand of `bits`: below the width (at most 16 for a 16-bit
    /// double shift), sometimes with bits above the 5- or 6-bit mask set.
    fn count(&mut self, m: Mnemonic, bits: u32) -> u64 {
        let limit = match (m, bits) {
            (Mnemonic::Shld | Mnemonic::Shrd, 16) => 17,
            (_, b) => b as u64,
        };
        let c = match self.rng.below(4) {
            0 => 1,
            1 => 0,
            _ => self.rng.below(limit),
        };
        let above = if bits == 64 { 64 } else { 32 };
        c + above * self.rng.below(256 / above)
    }

    /// Fills `code`'s operands at random; `None` when the combination is refused (writes
    /// rsp/r15, high byte register with REX).
    fn build(&mut self, code: Code) -> Option<Instruction> {
        let oc = code.op_code();
        self.mem_setup.clear();
        let mut i = Instruction::default();
        i.set_code(code);
        let bits = match oc.op_kinds().first() {
            Some(K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al) => 8,
            Some(K::r16_or_mem | K::r16_reg | K::r16_opcode | K::r16_rm | K::ax) => 16,
            Some(K::r32_or_mem | K::r32_reg | K::r32_opcode | K::r32_rm | K::eax) => 32,
            _ => 64,
        };
        let msize = oc.memory_size().size();
        let mut uses_rex_reg = false;
        let mut uses_high = false;
        for (n, k) in oc.op_kinds().iter().enumerate() {
            let n = n as u32;
            let reg_bits = match k {
                K::r8_or_mem | K::r8_reg | K::r8_opcode => Some(8),
                K::r16_or_mem | K::r16_reg | K::r16_opcode | K::r16_rm => Some(16),
                K::r32_or_mem | K::r32_reg | K::r32_opcode | K::r32_rm => Some(32),
                K::r64_or_mem | K::r64_reg | K::r64_opcode | K::r64_rm => Some(64),
                _ => None,
            };
            let is_rm = matches!(
                k,
                K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem | K::xmm_or_mem
            );
            let memory = match self.force_memory {
                Some(m) => m,
                None => self.rng.chance(30) && !self.register_only.contains(&code),
            };
            if *k == K::mem || (is_rm && memory) {
                let align = self.alignment(code, msize);
                let m = self.mem(msize, align);
                i.set_op_kind(n, OpKind::Memory);
                i.set_memory_base(m.base);
                i.set_memory_index(m.index);
                i.set_memory_index_scale(m.scale);
                i.set_memory_displ_size(m.displ_size);
                i.set_memory_displacement64(m.displacement as u64);
                i.set_segment_prefix(m.segment_prefix);
                continue;
            }
            if let Some(b) = reg_bits {
                let r = if b == 8 {
                    let n = self.rng.below(20) as usize;
                    if n >= 16 {
                        uses_high = true;
                    } else if n >= 4 {
                        uses_rex_reg = true;
                    }
                    gpr(n, 8)
                } else {
                    gpr(self.rng.below(16) as usize, b)
                };
                i.set_op_kind(n, OpKind::Register);
                i.set_op_register(n, r);
                continue;
            }
            match k {
                K::xmm_reg | K::xmm_rm | K::xmm_or_mem => {
                    i.set_op_kind(n, OpKind::Register);
                    i.set_op_register(n, Register::XMM0 + self.rng.below(16) as u32);
                }
                K::st0 => {
                    i.set_op_kind(n, OpKind::Register);
                    i.set_op_register(n, Register::ST0);
                }
                K::sti_opcode => {
                    i.set_op_kind(n, OpKind::Register);
                    i.set_op_register(n, Register::ST0 + self.rng.below(8) as u32);
                }
                K::al | K::ax | K::eax | K::rax | K::cl => {
                    let r = match k {
                        K::al => Register::AL,
                        K::ax => Register::AX,
                        K::eax => Register::EAX,
                        K::rax => Register::RAX,
                        _ => Register::CL,
                    };
                    i.set_op_kind(n, OpKind::Register);
                    i.set_op_register(n, r);
                }
                K::imm8_const_1 => {
                    i.set_op_kind(n, OpKind::Immediate8);
                    i.set_immediate8(1);
                }
                K::imm8 => {
                    i.set_op_kind(n, OpKind::Immediate8);
                    let v = self.imm(code, bits) as u8;
                    i.set_immediate8(v);
                }
                K::imm8sex16 => {
                    i.set_op_kind(n, OpKind::Immediate8to16);
                    i.set_immediate8to16(value(&mut self.rng) as i8 as i16);
                }
                K::imm8sex32 => {
                    i.set_op_kind(n, OpKind::Immediate8to32);
                    i.set_immediate8to32(value(&mut self.rng) as i8 as i32);
                }
                K::imm8sex64 => {
                    i.set_op_kind(n, OpKind::Immediate8to64);
                    i.set_immediate8to64(value(&mut self.rng) as i8 as i64);
                }
                K::imm16 => {
                    i.set_op_kind(n, OpKind::Immediate16);
                    i.set_immediate16(value(&mut self.rng) as u16);
                }
                K::imm32 => {
                    i.set_op_kind(n, OpKind::Immediate32);
                    i.set_immediate32(value(&mut self.rng) as u32);
                }
                K::imm32sex64 => {
                    i.set_op_kind(n, OpKind::Immediate32to64);
                    i.set_immediate32to64(value(&mut self.rng) as i32 as i64);
                }
                K::imm64 => {
                    i.set_op_kind(n, OpKind::Immediate64);
                    i.set_immediate64(value(&mut self.rng));
                }
                _ => return None,
            }
        }
        if uses_high && uses_rex_reg {
            return None;
        }
        // Whatever else the encoder refuses (AH..BH where a REX prefix is needed).
        if self.encoder.encode(&i, 0).is_err() {
            return None;
        }
        if self.writes_anchor(&i) {
            return None;
        }
        // lock on a read-modify-write of memory (ignored by the frontend: one vCPU).
        if i.op0_kind() == OpKind::Memory && oc.can_use_lock_prefix() && self.rng.chance(15) {
            i.set_has_lock_prefix(true);
        }
        Some(i)
    }

    /// Alignment of a memory operand of `size` bytes for `code`: SSE's 16-byte operands
    /// are aligned except for the unaligned moves (and, rarely, to test #GP); others any.
    fn alignment(&mut self, code: Code, size: usize) -> u64 {
        use Mnemonic::*;
        let unaligned_ok = matches!(code.mnemonic(), Movups | Movupd | Movdqu);
        if size == 16 && !unaligned_ok {
            if self.rng.chance(1) {
                8
            } else {
                16
            }
        } else if self.rng.chance(50) {
            size.next_power_of_two() as u64
        } else {
            1
        }
    }

    /// One instruction (with its setup) of `class`.
    fn class(&mut self, class: Class) {
        match class {
            Class::String => self.string(),
            Class::Branch => self.branch(),
            Class::Stack => self.stack(),
            Class::Sse if self.rng.chance(4) => self.ldmxcsr(),
            Class::X87 if self.rng.chance(4) => self.fldcw(),
            Class::Misc if self.rng.chance(5) && !self.disabled.contains(&Code::Xlat_m8) => {
                // xlatb reads [rbx + al]: rbx into the data page first.
                let off = self.rng.below(DATA_SIZE as u64 - 256);
                let m = MemoryOperand::with_base_displ(Register::R15, off as i64);
                let l = Instruction::with2(Code::Lea_r64_m, Register::RBX, m).expect("lea");
                let x = MemoryOperand::with_base_index(Register::RBX, Register::AL);
                let i = Instruction::with1(Code::Xlat_m8, x).expect("xlatb");
                self.push(l, None);
                self.push_glued(i);
            }
            Class::Cond if self.rng.chance(50) => {
                // A producer right before its consumer (same block, static flags).
                self.producer();
                self.table(Class::Cond);
            }
            c => self.table(c),
        }
    }

    /// A flag producer: an ALU operation mostly, else a shift or rotate, a bit test or scan,
    /// or a multiplication (whose lazy flags the consumer after it reads directly).
    fn producer(&mut self) {
        let c = self.rng.pick(&[
            Class::Alu,
            Class::Alu,
            Class::Shift,
            Class::Bit,
            Class::MulDiv,
        ]);
        self.table(c);
    }

    /// A table-driven instruction of `class`, with what its mnemonic needs before it.
    fn table(&mut self, class: Class) {
        // Every class's table is kept: producers for `cond` and `branch` come from the
        // ALU, shift, bit and multiply tables even when those classes are not selected.
        let Some(n) = self
            .codes
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, v)| v.len())
            .filter(|n| *n > 0)
        else {
            return;
        };
        let k = self.rng.below(n as u64) as usize;
        let Some(code) = self
            .codes
            .iter()
            .find(|(c, _)| *c == class)
            .and_then(|(_, v)| v.get(k).copied())
        else {
            return;
        };
        let Some(i) = self.build(code) else {
            return;
        };
        // x87: mostly no stack fault (nothing popped or read beyond the values there, no
        // push onto a full stack); one in ten may fault (masked: a NaN and SF).
        if class == Class::X87 && !self.rng.chance(10) && !self.fpu_fits(&i) {
            return;
        }
        let setups = std::mem::take(&mut self.mem_setup);
        for (n, s) in setups.into_iter().enumerate() {
            self.push_item(s, None, n > 0);
            // What follows needs the index register as set: keep the group whole.
            self.glue_all = true;
        }
        self.table_rest(code, i);
        self.glue_all = false;
    }

    /// The setups `code`'s mnemonic needs, then `i`.
    fn table_rest(&mut self, code: Code, i: Instruction) {
        use Mnemonic::*;
        match code.mnemonic() {
            Div | Idiv => self.div_setup(&i),
            Bsf | Bsr => self.nonzero_source(&i),
            Bt | Bts | Btr | Btc
                if i.op0_kind() == OpKind::Memory && i.op1_kind() == OpKind::Register =>
            {
                // A small offset keeps the bit string's word inside the page.
                let r = i.op1_register().full_register();
                if r == Register::RSP || r == Register::R15 {
                    return;
                }
                let off = self.rng.below(128) as u32;
                let mov = Instruction::with2(Code::Mov_r32_imm32, gpr(r.number(), 32), off)
                    .expect("mov r32, imm32");
                self.push(mov, None);
            }
            Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd => {
                let last = i.op_count() - 1;
                if i.op_kind(last) == OpKind::Register && i.op_register(last) == Register::CL {
                    // Rotations through carry read CF: define it before the pair.
                    if matches!(code.mnemonic(), Rcl | Rcr) && self.undef_at_next() & 1 != 0 {
                        self.define_flags();
                    }
                    let bits = match i.op0_kind() {
                        OpKind::Register => i.op0_register().size() as u32 * 8,
                        _ => code.op_code().memory_size().size() as u32 * 8,
                    };
                    let c = match code.mnemonic() {
                        Rcl | Rcr => self.rng.below(256),
                        m => self.count(m, bits),
                    } as u32;
                    let mov = Instruction::with2(Code::Mov_r8_imm8, Register::CL, c)
                        .expect("mov cl, imm8");
                    self.push(mov, None);
                }
            }
            _ => {
                self.push(i, None);
                return;
            }
        }
        self.push_glued(i);
    }

    /// Whether `i` runs without an x87 stack fault at the current depth.
    fn fpu_fits(&self, i: &Instruction) -> bool {
        use Mnemonic::*;
        let d = self.fpu_depth;
        let f = i.fpu_stack_increment_info();
        let after = d - if f.writes_top() { f.increment() } else { 0 };
        let top_reg = (0..i.op_count())
            .filter(|&n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_st())
            .map(|n| (i.op_register(n) as i32) - (Register::ST0 as i32))
            .max()
            .unwrap_or(0);
        // What is read from the stack besides explicit ST(i): ST(0) for nearly everything,
        // ST(1) too for the two-operand forms without operands.
        let needs = match i.mnemonic() {
            Fld1 | Fldz | Fldpi | Fldl2e | Fldln2 | Fldlg2 | Fldl2t | Fninit | Fnclex | Fnstsw
            | Fnstcw | Fincstp | Fdecstp | Ffree | Fxam => 0,
            Fld | Fild if i.op_count() == 1 && i.op0_kind() == OpKind::Memory => 0,
            Fprem | Fprem1 | Fscale | Fyl2x | Fyl2xp1 | Fpatan | Fcompp | Fucompp => 2,
            _ if i.op_count() == 0 => 1,
            _ => top_reg + 1,
        };
        (0..=8).contains(&after) && d >= needs
    }

    /// Before a division: a dividend that fits (zero- or sign-extended rax) nine times in ten.
    fn div_setup(&mut self, i: &Instruction) {
        if self.rng.chance(10) {
            return;
        }
        let bits = match i.op0_kind() {
            OpKind::Register => i.op0_register().size() * 8,
            _ => i.memory_size().size() * 8,
        };
        let signed = i.mnemonic() == Mnemonic::Idiv;
        let setup = match (bits, signed) {
            (8, false) => Instruction::with2(Code::Movzx_r32_rm8, Register::EAX, Register::AL),
            (_, false) => Instruction::with2(Code::Xor_r32_rm32, Register::EDX, Register::EDX),
            (8, true) => Ok(Instruction::with(Code::Cbw)),
            (16, true) => Ok(Instruction::with(Code::Cwd)),
            (32, true) => Ok(Instruction::with(Code::Cdq)),
            _ => Ok(Instruction::with(Code::Cqo)),
        }
        .expect("division setup");
        self.push(setup, None);
    }

    /// Before `bsf`/`bsr`: `or` a bit into the source (whose result is undefined when zero).
    fn nonzero_source(&mut self, i: &Instruction) {
        let bit = 1u32 << self.rng.below(7);
        let size = match i.op1_kind() {
            OpKind::Register => i.op1_register().size(),
            _ => i.memory_size().size(),
        };
        let code = match size {
            2 => Code::Or_rm16_imm8,
            4 => Code::Or_rm32_imm8,
            _ => Code::Or_rm64_imm8,
        };
        let mut or = Instruction::default();
        or.set_code(code);
        if i.op1_kind() == OpKind::Register {
            let r = i.op1_register();
            // rsp and r15 hold addresses: never zero, and never written.
            if matches!(r.full_register(), Register::RSP | Register::R15) {
                return;
            }
            or.set_op0_kind(OpKind::Register);
            or.set_op0_register(r);
        } else {
            or.set_op0_kind(OpKind::Memory);
            or.set_memory_base(i.memory_base());
            or.set_memory_index(i.memory_index());
            or.set_memory_index_scale(i.memory_index_scale());
            or.set_memory_displ_size(i.memory_displ_size());
            or.set_memory_displacement64(i.memory_displacement64());
            or.set_segment_prefix(i.segment_prefix());
        }
        or.set_op1_kind(OpKind::Immediate8to64);
        match size {
            2 => {
                or.set_op1_kind(OpKind::Immediate8to16);
                or.set_immediate8to16(bit as i16);
            }
            4 => {
                or.set_op1_kind(OpKind::Immediate8to32);
                or.set_immediate8to32(bit as i32);
            }
            _ => or.set_immediate8to64(bit as i64),
        }
        self.push(or, None);
    }

    /// `ldmxcsr` of a valid value (exceptions masked, random rounding, DAZ, FTZ, flags),
    /// stored into the data page first.
    fn ldmxcsr(&mut self) {
        let v = 0x1f80
            | (self.rng.below(4) as u32) << 13
            | if self.rng.chance(30) { 0x40 } else { 0 }
            | if self.rng.chance(30) { 0x8000 } else { 0 }
            | self.rng.below(64) as u32 & if self.rng.chance(30) { 0x3f } else { 0 };
        let off = self.rng.below(DATA_SIZE as u64 / 4 - 1) * 4;
        let m = MemoryOperand::with_base_displ(Register::R15, off as i64);
        let st = Instruction::with2(Code::Mov_rm32_imm32, m, v).expect("mov m32, imm32");
        let ld = Instruction::with1(Code::Ldmxcsr_m32, m).expect("ldmxcsr");
        self.push(st, None);
        self.push_glued(ld);
    }

    /// `fldcw` of a control word with every exception masked and a random precision and
    /// rounding control, stored into the data page first.
    fn fldcw(&mut self) {
        let v = 0x7f | (self.rng.below(4) as u32) << 8 | (self.rng.below(4) as u32) << 10;
        let off = self.rng.below(DATA_SIZE as u64 / 2 - 1) * 2;
        let m = MemoryOperand::with_base_displ(Register::R15, off as i64);
        let st = Instruction::with2(Code::Mov_rm16_imm16, m, v).expect("mov m16, imm16");
        let ld = Instruction::with1(Code::Fldcw_m2byte, m).expect("fldcw");
        self.push(st, None);
        self.push_glued(ld);
    }

    /// A string instruction with rsi/rdi inside the data page and a small rcx.
    fn string(&mut self) {
        let rep = self.rng.below(3);
        let kind = self.rng.below(5);
        let size = self.rng.below(4);
        let compares = kind >= 3;
        let rp = match (rep, compares) {
            (0, _) => RepPrefixKind::None,
            (1, _) => RepPrefixKind::Repe,
            (_, true) => RepPrefixKind::Repne,
            (_, false) => RepPrefixKind::Repe,
        };
        let seg = Register::None;
        macro_rules! pick {
            ($b:ident, $w:ident, $d:ident, $q:ident $(, $seg:expr)?) => {
                match size {
                    0 => Instruction::$b(64, $($seg,)? rp),
                    1 => Instruction::$w(64, $($seg,)? rp),
                    2 => Instruction::$d(64, $($seg,)? rp),
                    _ => Instruction::$q(64, $($seg,)? rp),
                }
            };
        }
        let i = match kind {
            0 => pick!(with_movsb, with_movsw, with_movsd, with_movsq, seg),
            1 => pick!(with_stosb, with_stosw, with_stosd, with_stosq),
            2 => pick!(with_lodsb, with_lodsw, with_lodsd, with_lodsq, seg),
            3 => pick!(with_scasb, with_scasw, with_scasd, with_scasq),
            _ => pick!(with_cmpsb, with_cmpsw, with_cmpsd, with_cmpsq, seg),
        }
        .expect("string instruction");
        // Both pointers at least 128 bytes from the ends of the data and stack pages: 16
        // iterations of 8 bytes either way stay inside (and may cross from one to the other).
        let lea = |g: &mut Generator, r: Register, glued: bool| {
            let off = 128 + g.rng.below(MEM_SIZE as u64 - 256);
            let m = MemoryOperand::with_base_displ(Register::R15, off as i64);
            let l = Instruction::with2(Code::Lea_r64_m, r, m).expect("lea");
            g.push_item(l, None, glued);
        };
        lea(self, Register::RSI, false);
        lea(self, Register::RDI, true);
        if rep != 0 {
            let n = self.rng.below(17) as u32;
            let mov = Instruction::with2(Code::Mov_r32_imm32, Register::ECX, n).expect("mov ecx");
            self.push_glued(mov);
        }
        if self.rng.chance(30) {
            let d = if self.rng.chance(50) {
                Code::Std
            } else {
                Code::Cld
            };
            self.push_glued(Instruction::with(d));
        }
        self.push_glued(i);
    }

    /// A forward conditional branch (jcc, loop family, jrcxz), sometimes after a producer.
    fn branch(&mut self) {
        const JCC: [Code; 16] = [
            Code::Jo_rel32_64,
            Code::Jno_rel32_64,
            Code::Jb_rel32_64,
            Code::Jae_rel32_64,
            Code::Je_rel32_64,
            Code::Jne_rel32_64,
            Code::Jbe_rel32_64,
            Code::Ja_rel32_64,
            Code::Js_rel32_64,
            Code::Jns_rel32_64,
            Code::Jp_rel32_64,
            Code::Jnp_rel32_64,
            Code::Jl_rel32_64,
            Code::Jge_rel32_64,
            Code::Jle_rel32_64,
            Code::Jg_rel32_64,
        ];
        const LOOPS: [Code; 5] = [
            Code::Loop_rel8_64_RCX,
            Code::Loope_rel8_64_RCX,
            Code::Loopne_rel8_64_RCX,
            Code::Jrcxz_rel8_64,
            Code::Jecxz_rel8_64,
        ];
        if self.rng.chance(40) {
            self.producer();
        }
        let code = if self.rng.chance(80) {
            self.rng.pick(&JCC)
        } else {
            self.rng.pick(&LOOPS)
        };
        let i = Instruction::with_branch(code, 0).expect("branch");
        // The branch gets id next_id (or next_id + 1 after an inserted cmp): a target up to
        // five items past it, short enough for loop's rel8.
        let target = self.next_id + 2 + self.rng.below(5);
        self.push(i, Some(target));
    }

    /// push/pop of registers, memory and immediates; pushfq; popfq of a pushed immediate.
    fn stack(&mut self) {
        let r = |g: &mut Generator| GPR64[g.rng.below(16) as usize];
        let can_push = self.depth < MAX_DEPTH;
        let can_pop = self.depth > -MAX_DEPTH;
        let choice = self.rng.below(9);
        let (i, delta) = match choice {
            0 | 1 if can_push => (Instruction::with1(Code::Push_r64, r(self)), 8),
            2 if can_push => (
                Instruction::with1(Code::Pushq_imm32, value(&mut self.rng) as i32),
                8,
            ),
            3 if can_push => {
                let m = self.mem(8, 8);
                (Instruction::with1(Code::Push_rm64, m), 8)
            }
            4 if can_push => (Instruction::with(Code::Pushfq).into_ok(), 8),
            5 if can_push => {
                // popfq of arithmetic flags and DF only (never TF or AC).
                let v = (self.rng.next_u64() & (ARITH_FLAGS | DF)) as u32 | 2;
                let p = Instruction::with1(Code::Pushq_imm32, v).expect("push imm32");
                self.push(p, None);
                self.push_glued(Instruction::with(Code::Popfq));
                return;
            }
            6 if can_pop => {
                let mut reg = r(self);
                while matches!(reg, Register::RSP | Register::R15) {
                    reg = r(self);
                }
                (Instruction::with1(Code::Pop_r64, reg), -8)
            }
            7 if can_pop => {
                let m = self.mem(8, 8);
                (Instruction::with1(Code::Pop_rm64, m), -8)
            }
            // The 16-bit forms: pushfw, or popfw of a pushed word.
            8 if can_push && self.rng.chance(50) && !self.disabled.contains(&Code::Pushfw) => {
                (Instruction::with(Code::Pushfw).into_ok(), 2)
            }
            8 if can_push && !self.disabled.contains(&Code::Popfw) => {
                let v = (self.rng.next_u64() & (ARITH_FLAGS | DF)) as u32 | 2;
                let p = Instruction::with1(Code::Push_imm16, v).expect("push imm16");
                self.push(p, None);
                self.push_glued(Instruction::with(Code::Popfw));
                return;
            }
            _ => return,
        };
        let Ok(i) = i else { return };
        self.depth += delta;
        self.push(i, None);
    }
}

/// `Instruction::with` returns the instruction itself; this lets it sit among `Result`s.
trait IntoOk {
    fn into_ok(self) -> Result<Instruction, iced_x86::IcedError>;
}

impl IntoOk for Instruction {
    fn into_ok(self) -> Result<Instruction, iced_x86::IcedError> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::{encode, undefined_flags};
    use iced_x86::{Decoder, DecoderOptions};

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a = Generator::new(42, &[]).sequence(50);
        let b = Generator::new(42, &[]).sequence(50);
        assert_eq!(a, b);
        let c = Generator::new(43, &[]).sequence(50);
        assert_ne!(a, c);
    }

    #[test]
    fn every_class_has_candidates_or_hand_written_forms() {
        for c in Class::ALL {
            let g = Generator::new(1, &[c]);
            let table = !c.table_mnemonics().is_empty();
            assert_eq!(g.candidate_codes() > 0, table, "{c:?}");
            assert_eq!(Class::parse(c.name()), Some(c));
        }
    }

    /// The sandbox invariants, checked on the decoded bytes of many sequences: nothing but
    /// the stack instructions writes rsp, nothing writes r15, every explicit memory operand
    /// is r15-, rip-relative or absolute inside the data page, and no instruction reads a
    /// flag that is undefined before it.
    #[test]
    fn sequences_stay_in_the_sandbox_and_never_read_undefined_flags() {
        let mut g = Generator::new(7, &[]);
        let mut info = InstructionInfoFactory::new();
        // Every addressing form shows up: fs, gs, index, rip-relative, 32-bit, absolute.
        let mut forms = [0usize; 6];
        for _ in 0..200 {
            let s = g.sequence(40);
            assert!(s.items.len() >= 40);
            let undef = undefined_flags(&s.items);
            for (k, it) in s.items.iter().enumerate() {
                let i = &it.instr;
                let prev = k.checked_sub(1).map(|p| &s.items[p].instr);
                let e = effect(prev, i, false);
                assert_eq!(e.read & undef[k], 0, "{i} reads an undefined flag");
                for u in info.info(i).used_registers() {
                    let w = matches!(
                        u.access(),
                        OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite
                    );
                    let r = u.register().full_register();
                    assert!(!(w && r == Register::R15), "{i} writes r15");
                    if w && r == Register::RSP {
                        assert!(i.is_stack_instruction(), "{i} writes rsp");
                    }
                }
                if i.mnemonic() == Mnemonic::Xlatb {
                    let p = &s.items[k - 1].instr;
                    assert_eq!(p.code(), Code::Lea_r64_m, "{p}; {i}");
                    assert_eq!(
                        (p.op0_register(), p.memory_base()),
                        (Register::RBX, Register::R15)
                    );
                    assert!(p.memory_displacement64() + 256 <= DATA_SIZE as u64);
                } else if i.op_kinds().any(|k| k == OpKind::Memory) && i.mnemonic() != Mnemonic::Lea
                {
                    let b = i.memory_base();
                    assert!(
                        matches!(
                            b,
                            Register::R15 | Register::R15D | Register::RIP | Register::None
                        ),
                        "{i}"
                    );
                    let form = match (i.segment_prefix(), b, i.memory_index()) {
                        (Register::FS, ..) => 0,
                        (Register::GS, ..) => 1,
                        (_, _, x) if x != Register::None => 2,
                        (_, Register::RIP, _) => 3,
                        (_, Register::R15D, _) => 4,
                        (_, Register::None, _) => 5,
                        _ => 6,
                    };
                    if let Some(f) = forms.get_mut(form) {
                        *f += 1;
                    }
                    let b = if b == Register::R15D {
                        Register::R15
                    } else {
                        b
                    };
                    let idx = i.memory_index();
                    if idx != Register::None {
                        // Made a byte by the movzx right before.
                        let p = &s.items[k - 1].instr;
                        assert_eq!(b, Register::R15, "{i}");
                        assert!(
                            (0..k).rev().take(6).any(|j| {
                                let p = &s.items[j].instr;
                                p.code() == Code::Movzx_r32_rm8
                                    && p.op0_register().full_register() == idx
                            }),
                            "{p} then {i}"
                        );
                        let top = i.memory_displacement64() + 255 * i.memory_index_scale() as u64;
                        assert!(top < MEM_SIZE as u64, "{i}");
                    } else if b != Register::R15 {
                        let a = i.memory_displacement64()
                            + match i.segment_prefix() {
                                Register::FS => FS_BASE,
                                Register::GS => GS_BASE,
                                _ => 0,
                            };
                        assert!((DATA_ADDR..DATA_ADDR + MEM_SIZE as u64).contains(&a), "{i}");
                    } else {
                        assert!(i.memory_displacement64() < MEM_SIZE as u64, "{i}");
                    }
                }
            }
            // Decoding the bytes gives back the items, then int3.
            let e = encode(&s.items, s.init.rip).unwrap();
            assert!(crate::state::code_fits(s.init.rip, e.bytes.len()));
            let mut d = Decoder::with_ip(64, &e.bytes, s.init.rip, DecoderOptions::NONE);
            for (k, it) in s.items.iter().enumerate() {
                let i = d.decode();
                assert_eq!(i.ip(), e.addrs[k]);
                // xchg eax, eax is encoded as 0x90, which is nop (no zero-extension).
                if i.mnemonic() != Mnemonic::Nop {
                    assert_eq!(i.mnemonic(), it.instr.mnemonic());
                }
            }
            assert_eq!(d.decode().code(), Code::Int3);
        }
        assert!(forms.iter().all(|&n| n > 0), "{forms:?}");
    }

    /// The setups that make an instruction's result or flags defined come right before it.
    #[test]
    fn setups_precede_what_they_prepare() {
        let mut g = Generator::new(11, &[Class::Bit, Class::Shift, Class::MulDiv]);
        let (mut scans, mut cl_shifts) = (0, 0);
        for _ in 0..300 {
            let s = g.sequence(30);
            for (k, it) in s.items.iter().enumerate().skip(1) {
                let (i, p) = (&it.instr, &s.items[k - 1].instr);
                let m = i.mnemonic();
                if matches!(m, Mnemonic::Bsf | Mnemonic::Bsr) && i.op1_kind() == OpKind::Register {
                    let r = i.op1_register();
                    if !matches!(r.full_register(), Register::RSP | Register::R15) {
                        scans += 1;
                        assert_eq!(p.mnemonic(), Mnemonic::Or, "{p}; {i}");
                        assert_eq!(p.op0_register(), r, "{p}; {i}");
                    }
                }
                let last = i.op_count().saturating_sub(1);
                let shift = matches!(
                    m,
                    Mnemonic::Shl
                        | Mnemonic::Sal
                        | Mnemonic::Shr
                        | Mnemonic::Sar
                        | Mnemonic::Rol
                        | Mnemonic::Ror
                        | Mnemonic::Shld
                        | Mnemonic::Shrd
                );
                let by_cl = shift
                    && i.op_kind(last) == OpKind::Register
                    && i.op_register(last) == Register::CL;
                if by_cl && !matches!(m, Mnemonic::Rcl | Mnemonic::Rcr) {
                    cl_shifts += 1;
                    assert_eq!(p.code(), Code::Mov_r8_imm8, "{p}; {i}");
                    let bits = match i.op0_kind() {
                        OpKind::Register => i.op0_register().size() as u64 * 8,
                        _ => i.memory_size().size() as u64 * 8,
                    };
                    let mask = if bits == 64 { 63 } else { 31 };
                    let limit = if matches!(m, Mnemonic::Shld | Mnemonic::Shrd) {
                        bits.max(17)
                    } else {
                        bits
                    };
                    assert!((p.immediate8() as u64 & mask) < limit, "{p}; {i}");
                }
            }
        }
        assert!(scans > 20 && cl_shifts > 20, "{scans} {cl_shifts}");
    }

    /// Every x87 mnemonic of the table has candidates (`fld1`, `f2xm1`, `fprem1` and
    /// `fyl2xp1` too, whose names end in a digit), the undocumented aliases none, and x87 is
    /// one of the classes run by default.
    #[test]
    fn x87_mnemonics_ending_in_a_digit_are_candidates_and_x87_runs_by_default() {
        let codes = table_codes(Class::X87);
        for &m in X87_MNEMONICS {
            assert!(codes.iter().any(|c| c.mnemonic() == m), "{m:?}");
        }
        for alias in [
            Code::Fcom_st0_sti_DCD0,
            Code::Fxch_st0_sti_DDC8,
            Code::Fstp_sti_DFD8,
        ] {
            assert!(!codes.contains(&alias), "{alias:?}");
        }
        assert!(Class::DEFAULT.contains(&Class::X87));
    }

    #[test]
    fn the_initial_state_anchors_the_sandbox() {
        let s = Generator::new(3, &[]).sequence(10);
        assert_eq!(s.init.regs[4], STACK_TOP);
        assert_eq!(s.init.regs[15], DATA_ADDR);
        assert_eq!(s.init.mxcsr & 0x1f80, 0x1f80, "every exception masked");
        assert_eq!(s.init.mem.len(), MEM_SIZE);
    }
}
