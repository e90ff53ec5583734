//! A generated sequence: its instructions with branch targets by id, its encoding, and which arithmetic flags are undefined (per the SDM) before each
//! instruction.
//!
//! Items carry ids rather than addresses so a sequence stays valid when items are dropped
//! (prefixes when locating a divergence, chunks when minimizing): a branch to an id that is
//! gone goes to the next item that is still there, or to the trailing `int3`.

use std::collections::HashMap;

use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, CpuidFeature, Formatter, Instruction,
    InstructionBlock, Mnemonic, NasmFormatter, OpKind, Register, RflagsBits,
};

use crate::state::{InitState, CODE_ADDR, DF, X87_C0, X87_C1, X87_C2, X87_C3, X87_CC};

/// Fake instruction pointers the block encoder uses as item identities (never executed).
const ID_BASE: u64 = 0x7000_0000_0000;
/// The id of the trailing `int3`.
pub const END_ID: u64 = 1 << 40;

/// One instruction of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The instruction (its ip and branch target are set at encoding).
    pub instr: Instruction,
    /// Identity, increasing along the sequence.
    pub id: u64,
    /// For a relative branch: the id it jumps to (forward only).
    pub target: Option<u64>,
}

/// A sequence and the state it starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The instructions (the trailing `int3` is added at encoding).
    pub items: Vec<Item>,
    /// The initial state.
    pub init: InitState,
}

/// A sequence encoded at its start address.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Machine code, ending in `int3`.
    pub bytes: Vec<u8>,
    /// Address of each item, then of the trailing `int3`.
    pub addrs: Vec<u64>,
}

/// Encoding failed (an operand combination iced-x86 refuses).
#[derive(Debug, thiserror::Error)]
#[error("encoding: {0}")]
pub struct EncodeError(pub String);

/// Where the branch of `items[k]` lands: the index of the first item at or after its target
/// id (`items.len()` for the trailing `int3`).
pub fn resolve(items: &[Item], k: usize) -> Option<usize> {
    let t = items[k].target?;
    Some(
        items[k + 1..]
            .iter()
            .position(|it| it.id >= t)
            .map_or(items.len(), |p| k + 1 + p),
    )
}

/// Encodes `items` followed by `int3` at `rip`.
pub fn encode(items: &[Item], rip: u64) -> Result<Encoded, EncodeError> {
    let mut v: Vec<Instruction> = Vec::with_capacity(items.len() + 1);
    for (k, it) in items.iter().enumerate() {
        let mut i = it.instr;
        i.set_ip(ID_BASE + it.id);
        if let Some(t) = resolve(items, k) {
            let id = items.get(t).map_or(END_ID, |x| x.id);
            i.set_near_branch64(ID_BASE + id);
        }
        v.push(i);
    }
    let mut int3 = Instruction::with(Code::Int3);
    int3.set_ip(ID_BASE + END_ID);
    v.push(int3);
    let r = BlockEncoder::encode(
        64,
        InstructionBlock::new(&v, rip),
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )
    .map_err(|e| EncodeError(e.to_string()))?;
    Ok(Encoded {
        addrs: r
            .new_instruction_offsets
            .iter()
            .map(|&o| rip + o as u64)
            .collect(),
        bytes: r.code_buffer,
    })
}

/// Formats one instruction (NASM syntax), showing branch targets as item offsets.
pub fn format(instr: &Instruction) -> String {
    let mut s = String::new();
    NasmFormatter::new().format(instr, &mut s);
    s
}

/// Disassembly of an encoded sequence, one line per item, `mark` flagged with `=>`.
pub fn listing(items: &[Item], enc: &Encoded, mark: Option<usize>) -> String {
    let mut out = String::new();
    let start = enc.addrs.first().copied().unwrap_or(CODE_ADDR);
    let mut decoder = iced_x86::Decoder::with_ip(64, &enc.bytes, start, 0);
    let mut k = 0;
    while decoder.can_decode() {
        let i = decoder.decode();
        let here = enc.addrs.iter().position(|&a| a == i.ip());
        let flag = if here.is_some() && here == mark {
            "=>"
        } else {
            "  "
        };
        out += &format!("{flag} {:#08x}  {}\n", i.ip(), format(&i));
        k += 1;
        if i.code() == Code::Int3 || k > items.len() * 2 + 8 {
            break;
        }
    }
    out
}

/// iced-x86 flag bits as RFLAGS bits (arithmetic flags and DF).
fn rflags_of(b: u32) -> u64 {
    let mut r = 0;
    for (i, e) in [
        (RflagsBits::OF, 1u64 << 11),
        (RflagsBits::SF, 1 << 7),
        (RflagsBits::ZF, 1 << 6),
        (RflagsBits::AF, 1 << 4),
        (RflagsBits::CF, 1),
        (RflagsBits::PF, 1 << 2),
        (RflagsBits::DF, DF),
    ] {
        if b & i != 0 {
            r |= e;
        }
    }
    r
}

const CF: u64 = 1;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;

/// What an instruction does to the flags: reads, defines (writes a value the SDM
/// specifies), or leaves undefined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effect {
    /// Flags whose value the instruction uses.
    pub read: u64,
    /// Flags it sets to a specified value.
    pub defined: u64,
    /// Flags it leaves undefined.
    pub undefined: u64,
}

impl Effect {
    /// The undefined set after the instruction, from the one before.
    pub fn apply(&self, before: u64) -> u64 {
        (before & !self.defined) | self.undefined
    }
}

/// Operand size in bits of `i`'s first operand.
fn op0_bits(i: &Instruction) -> u32 {
    match i.op0_kind() {
        OpKind::Register => i.op0_register().size() as u32 * 8,
        _ => i.memory_size().size() as u32 * 8,
    }
}

/// The shift count of a shift or rotate, masked as the CPU masks it, if it is known: an
/// immediate, or `cl` set by a `mov cl, imm8` right before (and not a branch target).
fn shift_count(prev: Option<&Instruction>, i: &Instruction, is_target: bool) -> Option<u32> {
    let bits = op0_bits(i);
    let mask = if bits == 64 { 63 } else { 31 };
    let last = i.op_count() - 1;
    match i.op_kind(last) {
        OpKind::Immediate8 => Some(i.immediate8() as u32 & mask),
        OpKind::Register if i.op_register(last) == Register::CL => {
            let p = prev.filter(|_| !is_target)?;
            (p.code() == Code::Mov_r8_imm8 && p.op0_register() == Register::CL)
                .then(|| p.immediate8() as u32 & mask)
        }
        _ => None,
    }
}

/// The flag effect of `i` (`prev` is the instruction before it in the sequence; `is_target`
/// whether a branch lands on `i`). iced-x86's tables give reads and writes; the
/// count-dependent shift and rotate rules of the SDM are applied here.
pub fn effect(prev: Option<&Instruction>, i: &Instruction, is_target: bool) -> Effect {
    use Mnemonic::*;
    let read = rflags_of(i.rflags_read());
    let undefined = rflags_of(i.rflags_undefined());
    let defined = rflags_of(i.rflags_modified()) & !undefined;
    let m = i.mnemonic();
    if is_x87(i) {
        let (cc_read, cc_def, cc_undef) = x87_cc(m);
        return Effect {
            read: read | cc_read,
            defined: defined | cc_def,
            undefined: undefined | cc_undef,
        };
    }
    if matches!(
        m,
        Cmpsb | Cmpsw | Cmpsd | Cmpsq | Scasb | Scasw | Scasd | Scasq
    ) && (i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix())
        && !(0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_xmm())
    {
        // A repeated compare with rcx = 0 changes no flag: what was undefined stays so,
        // and what was defined is defined either way.
        return Effect {
            read,
            defined: 0,
            undefined: 0,
        };
    }
    if !matches!(
        m,
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd
    ) {
        return Effect {
            read,
            defined,
            undefined,
        };
    }
    let bits = op0_bits(i);
    let small = bits < 32;
    let count = shift_count(prev, i, is_target);
    let none = Effect::default();
    match (m, count) {
        (_, Some(0)) => none,
        (Shl | Sal | Shr | Sar, Some(c)) => {
            let mut u = AF | if c > 1 { OF } else { 0 };
            if c >= bits {
                u |= CF | OF;
            }
            Effect {
                read: 0,
                defined: (CF | PF | ZF | SF | OF) & !u,
                undefined: u,
            }
        }
        (Shl | Sal | Shr | Sar, None) => Effect {
            read: 0,
            defined: 0,
            undefined: AF | OF | if small { CF } else { 0 },
        },
        (Rol | Ror, Some(c)) => Effect {
            read: 0,
            defined: CF | if c == 1 { OF } else { 0 },
            undefined: if c == 1 { 0 } else { OF },
        },
        (Rcl | Rcr, Some(c)) => Effect {
            read: CF,
            defined: CF | if c == 1 { OF } else { 0 },
            undefined: if c == 1 { 0 } else { OF },
        },
        (Rol | Ror, None) => Effect {
            read: 0,
            defined: 0,
            undefined: OF,
        },
        (Rcl | Rcr, None) => Effect {
            read: CF,
            defined: 0,
            undefined: OF,
        },
        (_, Some(c)) => {
            // shld/shrd
            let mut u = AF | if c > 1 { OF } else { 0 };
            if c > bits {
                u |= CF | OF | SF | ZF | PF;
            }
            Effect {
                read: 0,
                defined: (CF | PF | ZF | SF | OF) & !u,
                undefined: u,
            }
        }
        (_, None) => Effect {
            read: 0,
            defined: 0,
            undefined: AF | OF | if small { CF | SF | ZF | PF } else { 0 },
        },
    }
}

/// Whether `i` is an x87 instruction (its CPUID feature is one of the FPU's, or fisttp).
fn is_x87(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Fisttp
        || i.cpuid_features().iter().any(|f| {
            matches!(
                f,
                CpuidFeature::FPU
                    | CpuidFeature::FPU287
                    | CpuidFeature::FPU287XL_ONLY
                    | CpuidFeature::FPU387
                    | CpuidFeature::FPU387SL_ONLY
            )
        })
}

/// What an x87 instruction does to the condition codes C0..C3 (read, defined, undefined),
/// after the SDM's "FPU flags affected" sections.
fn x87_cc(m: Mnemonic) -> (u64, u64, u64) {
    use Mnemonic::*;
    let rest = X87_C0 | X87_C2 | X87_C3;
    match m {
        Fcom | Fcomp | Fcompp | Fucom | Fucomp | Fucompp | Ftst | Fxam | Fprem | Fprem1
        | Fninit => (0, X87_CC, 0),
        // C0, C2, C3 unaffected.
        Fcomi | Fcomip | Fucomi | Fucomip => (0, X87_C1, 0),
        // Reads all four; the SDM leaves them undefined after.
        Fnstsw => (X87_CC, 0, X87_CC),
        Ffree | Fldcw | Fnstcw | Fnclex | Fnop => (0, 0, X87_CC),
        // C2: the operand was out of range.
        Fsin | Fcos | Fptan | Fsincos => (0, X87_C1 | X87_C2, X87_C0 | X87_C3),
        _ => (0, X87_C1, rest),
    }
}

/// The undefined arithmetic flags (and x87 condition codes, bits 32..36) before each item
/// and, last, at the trailing `int3`
/// (`items.len() + 1` values), with what every forward branch carries merged in at its
/// target. Nothing is undefined at the start.
pub fn undefined_flags(items: &[Item]) -> Vec<u64> {
    let mut out = Vec::with_capacity(items.len() + 1);
    let mut pending: HashMap<usize, u64> = HashMap::new();
    let mut targets = vec![false; items.len() + 1];
    for k in 0..items.len() {
        if let Some(t) = resolve(items, k) {
            targets[t] = true;
        }
    }
    let mut u = 0;
    for k in 0..items.len() {
        u |= pending.remove(&k).unwrap_or(0);
        out.push(u);
        let prev = k.checked_sub(1).map(|p| &items[p].instr);
        u = effect(prev, &items[k].instr, targets[k]).apply(u);
        if let Some(t) = resolve(items, k) {
            // The branch itself changes no flag: what holds after it holds at the target.
            *pending.entry(t).or_default() |= u;
        }
    }
    u |= pending.remove(&items.len()).unwrap_or(0);
    out.push(u);
    out
}

/// Whether some item reads a flag or condition code that is undefined before it (what a
/// minimized candidate must not do: the generator never emits that).
pub fn reads_undefined(items: &[Item]) -> bool {
    let u = undefined_flags(items);
    let mut targets = vec![false; items.len() + 1];
    for k in 0..items.len() {
        if let Some(t) = resolve(items, k) {
            targets[t] = true;
        }
    }
    items.iter().enumerate().any(|(k, it)| {
        let prev = k.checked_sub(1).map(|p| &items[p].instr);
        effect(prev, &it.instr, targets[k]).read & u[k] != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u64, i: Instruction) -> Item {
        Item {
            instr: i,
            id,
            target: None,
        }
    }

    fn shl_rax(n: u32) -> Instruction {
        Instruction::with2(Code::Shl_rm64_imm8, Register::RAX, n).unwrap()
    }

    #[test]
    fn a_logic_op_leaves_af_undefined_and_an_add_defines_it_again() {
        let items = vec![
            item(
                0,
                Instruction::with2(Code::And_rm64_r64, Register::RAX, Register::RBX).unwrap(),
            ),
            item(
                1,
                Instruction::with2(Code::Add_rm64_r64, Register::RAX, Register::RBX).unwrap(),
            ),
        ];
        assert_eq!(undefined_flags(&items), vec![0, AF, 0]);
    }

    #[test]
    fn shift_flags_depend_on_the_count() {
        let u = |n| undefined_flags(&[item(0, shl_rax(n))])[1];
        assert_eq!(u(0), 0, "a zero count changes nothing");
        assert_eq!(u(1), AF);
        assert_eq!(u(5), AF | OF);
        assert_eq!(u(64), 0, "masked to 0");
        let cl = Instruction::with2(Code::Shl_rm8_CL, Register::AL, Register::CL).unwrap();
        let mov = |n: u32| Instruction::with2(Code::Mov_r8_imm8, Register::CL, n).unwrap();
        assert_eq!(
            undefined_flags(&[item(0, mov(1)), item(1, cl)])[2],
            AF,
            "cl known from the mov before"
        );
        assert_eq!(
            undefined_flags(&[item(0, mov(12)), item(1, cl)])[2],
            AF | OF | CF,
            "a byte shifted by 12: CF undefined too"
        );
        assert_eq!(
            undefined_flags(&[item(1, cl)])[1],
            AF | OF | CF,
            "unknown count: assume the worst"
        );
    }

    #[test]
    fn a_branch_carries_its_undefined_flags_to_its_target() {
        let mut jcc = item(1, Instruction::with_branch(Code::Je_rel32_64, 0).unwrap());
        jcc.target = Some(3);
        let items = vec![
            item(
                0,
                Instruction::with2(Code::Cmp_rm64_r64, Register::RAX, Register::RBX).unwrap(),
            ),
            jcc,
            item(
                2,
                Instruction::with1(Code::Mul_rm64, Register::RBX).unwrap(),
            ),
            item(
                3,
                Instruction::with2(Code::Add_rm64_r64, Register::RAX, Register::RBX).unwrap(),
            ),
            item(4, shl_rax(3)),
        ];
        let u = undefined_flags(&items);
        assert_eq!(u[2], 0);
        assert_eq!(u[3], SF | ZF | AF | PF, "after mul");
        assert_eq!(u[4], 0, "add defines everything");
        assert_eq!(u[5], AF | OF);
        // Drop the add: the jump target moves to the shift, whose count is an immediate.
        let short: Vec<Item> = items.iter().filter(|i| i.id != 3).cloned().collect();
        assert_eq!(resolve(&short, 1), Some(3));
        assert_eq!(undefined_flags(&short)[3], SF | ZF | AF | PF);
    }

    #[test]
    fn a_repeated_compare_may_leave_undefined_flags_undefined() {
        let mul = Instruction::with1(Code::Mul_rm64, Register::RBX).unwrap();
        let scas = Instruction::with_scasq(64, iced_x86::RepPrefixKind::Repne).unwrap();
        let once = Instruction::with_scasq(64, iced_x86::RepPrefixKind::None).unwrap();
        let u = undefined_flags(&[item(0, mul), item(1, scas)]);
        assert_eq!(u[2], SF | ZF | AF | PF);
        assert_eq!(undefined_flags(&[item(0, mul), item(1, once)])[2], 0);
    }

    #[test]
    fn x87_condition_codes_are_defined_by_compares_and_read_by_fnstsw() {
        let fxam = Instruction::with(Code::Fxam);
        let fadd = Instruction::with2(Code::Fadd_st0_sti, Register::ST0, Register::ST1).unwrap();
        let fnstsw = Instruction::with1(Code::Fnstsw_AX, Register::AX).unwrap();
        let u = undefined_flags(&[item(0, fxam), item(1, fadd)]);
        assert_eq!(u[1], 0);
        assert_eq!(
            u[2],
            X87_C0 | X87_C2 | X87_C3,
            "C1 is the rounding direction"
        );
        assert!(!reads_undefined(&[item(0, fxam), item(1, fnstsw)]));
        assert!(reads_undefined(&[
            item(0, fxam),
            item(1, fadd),
            item(2, fnstsw)
        ]));
    }

    #[test]
    fn encoding_places_items_and_resolves_forward_branches() {
        let mut jcc = item(0, Instruction::with_branch(Code::Jne_rel32_64, 0).unwrap());
        jcc.target = Some(9);
        let items = vec![jcc, item(1, shl_rax(1))];
        let e = encode(&items, CODE_ADDR).unwrap();
        assert_eq!(e.addrs.len(), 3);
        assert_eq!(e.addrs[0], CODE_ADDR);
        assert_eq!(*e.bytes.last().unwrap(), 0xcc);
        // jne rel8 over the shift to the int3.
        assert_eq!(e.bytes[0], 0x75);
        assert_eq!(e.bytes[1] as u64, e.addrs[2] - e.addrs[1]);
    }
}
