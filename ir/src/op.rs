//! The operations of the IR and their reference semantics.
//!
//! Every arithmetic operation is total and deterministic, so that the interpreter, the
//! optimizer's constant folding and the JIT can be required to agree bit for bit:
//! - shift and rotate counts are taken modulo the type width (the count's low 5 or 6 bits);
//! - division follows RISC-V: `x / 0` is all ones, `x % 0` is `x`, and signed `MIN / -1`
//!   is `MIN` with remainder 0. Frontends whose guest traps instead (x86 `#DE`) test first;
//! - `clz`/`ctz` of zero is the type width;
//! - I32 values are kept zero-extended; every result is masked to its type.

use crate::types::{Cond, Label, MemOp, Temp, Type};
use crate::Helper;

/// Two-operand arithmetic and logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// wrapping `a + b`
    Add,
    /// wrapping `a - b`
    Sub,
    /// low half of `a * b`
    Mul,
    /// high half of signed × signed
    MulHs,
    /// high half of unsigned × unsigned
    MulHu,
    /// high half of signed `a` × unsigned `b` (RISC-V `mulhsu`)
    MulHsu,
    /// signed division (see the module docs for /0 and overflow)
    DivS,
    /// unsigned division
    DivU,
    /// signed remainder
    RemS,
    /// unsigned remainder
    RemU,
    /// `a & b`
    And,
    /// `a | b`
    Or,
    /// `a ^ b`
    Xor,
    /// `a & !b`
    AndNot,
    /// `a << (b % width)`
    Shl,
    /// logical `a >> (b % width)`
    Shr,
    /// arithmetic `a >> (b % width)`
    Sar,
    /// rotate left by `b % width`
    Rotl,
    /// rotate right by `b % width`
    Rotr,
}

impl BinOp {
    /// Every binary operation, for exhaustive tests and generators.
    pub const ALL: [BinOp; 19] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::MulHs,
        BinOp::MulHu,
        BinOp::MulHsu,
        BinOp::DivS,
        BinOp::DivU,
        BinOp::RemS,
        BinOp::RemU,
        BinOp::And,
        BinOp::Or,
        BinOp::Xor,
        BinOp::AndNot,
        BinOp::Shl,
        BinOp::Shr,
        BinOp::Sar,
        BinOp::Rotl,
        BinOp::Rotr,
    ];

    /// `a op b == b op a` for all values.
    pub const fn is_commutative(self) -> bool {
        matches!(
            self,
            BinOp::Add
                | BinOp::Mul
                | BinOp::MulHs
                | BinOp::MulHu
                | BinOp::And
                | BinOp::Or
                | BinOp::Xor
        )
    }

    /// The lowercase name used by the printer.
    pub const fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::MulHs => "mulhs",
            BinOp::MulHu => "mulhu",
            BinOp::MulHsu => "mulhsu",
            BinOp::DivS => "divs",
            BinOp::DivU => "divu",
            BinOp::RemS => "rems",
            BinOp::RemU => "remu",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Xor => "xor",
            BinOp::AndNot => "andnot",
            BinOp::Shl => "shl",
            BinOp::Shr => "shr",
            BinOp::Sar => "sar",
            BinOp::Rotl => "rotl",
            BinOp::Rotr => "rotr",
        }
    }

    /// The reference result of `a op b` for type `ty`. Inputs may carry garbage above the
    /// type's width; the result never does.
    pub fn eval(self, ty: Type, a: u64, b: u64) -> u64 {
        let m = ty.mask();
        let (a, b) = (a & m, b & m);
        let bits = ty.bits();
        let sext = |v: u64| -> i64 {
            match ty {
                Type::I32 => v as u32 as i32 as i64,
                Type::I64 => v as i64,
            }
        };
        let (sa, sb) = (sext(a), sext(b));
        let min = 1u64 << (bits - 1);
        let count = (b as u32) & (bits - 1);
        let r = match self {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::MulHs => ((sa as i128 * sb as i128) >> bits) as u64,
            BinOp::MulHu => ((a as u128 * b as u128) >> bits) as u64,
            BinOp::MulHsu => ((sa as i128 * b as i128) >> bits) as u64,
            BinOp::DivS => {
                if b == 0 {
                    u64::MAX
                } else if a == min && sb == -1 {
                    min
                } else {
                    (sa / sb) as u64
                }
            }
            BinOp::DivU => a.checked_div(b).unwrap_or(u64::MAX),
            BinOp::RemS => {
                if b == 0 {
                    a
                } else if a == min && sb == -1 {
                    0
                } else {
                    (sa % sb) as u64
                }
            }
            BinOp::RemU => a.checked_rem(b).unwrap_or(a),
            BinOp::And => a & b,
            BinOp::Or => a | b,
            BinOp::Xor => a ^ b,
            BinOp::AndNot => a & !b,
            BinOp::Shl => a << count,
            BinOp::Shr => a >> count,
            BinOp::Sar => (sa >> count) as u64,
            BinOp::Rotl => match ty {
                Type::I32 => (a as u32).rotate_left(count) as u64,
                Type::I64 => a.rotate_left(count),
            },
            BinOp::Rotr => match ty {
                Type::I32 => (a as u32).rotate_right(count) as u64,
                Type::I64 => a.rotate_right(count),
            },
        };
        r & m
    }
}

/// One-operand operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// two's complement negation
    Neg,
    /// bitwise not
    Not,
    /// reverse the bytes of the whole value
    Bswap,
    /// count leading zeros (width for 0)
    Clz,
    /// count trailing zeros (width for 0)
    Ctz,
    /// count set bits
    Ctpop,
}

impl UnOp {
    /// Every unary operation.
    pub const ALL: [UnOp; 6] = [
        UnOp::Neg,
        UnOp::Not,
        UnOp::Bswap,
        UnOp::Clz,
        UnOp::Ctz,
        UnOp::Ctpop,
    ];

    /// The lowercase name used by the printer.
    pub const fn name(self) -> &'static str {
        match self {
            UnOp::Neg => "neg",
            UnOp::Not => "not",
            UnOp::Bswap => "bswap",
            UnOp::Clz => "clz",
            UnOp::Ctz => "ctz",
            UnOp::Ctpop => "ctpop",
        }
    }

    /// The reference result for type `ty`.
    pub fn eval(self, ty: Type, a: u64) -> u64 {
        let m = ty.mask();
        let a = a & m;
        let r = match (self, ty) {
            (UnOp::Neg, _) => a.wrapping_neg(),
            (UnOp::Not, _) => !a,
            (UnOp::Bswap, Type::I32) => (a as u32).swap_bytes() as u64,
            (UnOp::Bswap, Type::I64) => a.swap_bytes(),
            (UnOp::Clz, Type::I32) => (a as u32).leading_zeros() as u64,
            (UnOp::Clz, Type::I64) => a.leading_zeros() as u64,
            (UnOp::Ctz, Type::I32) => (a as u32).trailing_zeros() as u64,
            (UnOp::Ctz, Type::I64) => a.trailing_zeros() as u64,
            (UnOp::Ctpop, _) => a.count_ones() as u64,
        };
        r & m
    }
}

/// The source width of an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtFrom {
    /// sign-extend the low 8 bits
    S8,
    /// zero-extend the low 8 bits
    U8,
    /// sign-extend the low 16 bits
    S16,
    /// zero-extend the low 16 bits
    U16,
    /// sign-extend the low 32 bits (destination must be I64)
    S32,
    /// zero-extend the low 32 bits (destination must be I64)
    U32,
}

impl ExtFrom {
    /// Every extension.
    pub const ALL: [ExtFrom; 6] = [
        ExtFrom::S8,
        ExtFrom::U8,
        ExtFrom::S16,
        ExtFrom::U16,
        ExtFrom::S32,
        ExtFrom::U32,
    ];

    /// Source bit width.
    pub const fn bits(self) -> u32 {
        match self {
            ExtFrom::S8 | ExtFrom::U8 => 8,
            ExtFrom::S16 | ExtFrom::U16 => 16,
            ExtFrom::S32 | ExtFrom::U32 => 32,
        }
    }

    /// Sign (else zero) extension.
    pub const fn signed(self) -> bool {
        matches!(self, ExtFrom::S8 | ExtFrom::S16 | ExtFrom::S32)
    }

    /// The lowercase name used by the printer.
    pub const fn name(self) -> &'static str {
        match self {
            ExtFrom::S8 => "ext8s",
            ExtFrom::U8 => "ext8u",
            ExtFrom::S16 => "ext16s",
            ExtFrom::U16 => "ext16u",
            ExtFrom::S32 => "ext32s",
            ExtFrom::U32 => "ext32u",
        }
    }

    /// The reference result for a destination of type `ty`.
    pub fn eval(self, ty: Type, a: u64) -> u64 {
        let shift = 64 - self.bits();
        let r = if self.signed() {
            (((a << shift) as i64) >> shift) as u64
        } else {
            (a << shift) >> shift
        };
        r & ty.mask()
    }
}

/// Reference semantics of [`Op::Extract`]: `len` bits of `a` from bit `pos`, extended.
pub fn extract(ty: Type, a: u64, pos: u8, len: u8, signed: bool) -> u64 {
    let (pos, len) = (pos as u32, len as u32);
    let shift = 64 - len;
    let field = (a & ty.mask()) << (shift - pos);
    let r = if signed {
        ((field as i64) >> shift) as u64
    } else {
        field >> shift
    };
    r & ty.mask()
}

/// Reference semantics of [`Op::Deposit`]: `base` with bits `pos..pos+len` replaced by the low
/// `len` bits of `val`.
pub fn deposit(ty: Type, base: u64, val: u64, pos: u8, len: u8) -> u64 {
    let field_mask = (u64::MAX >> (64 - len as u32)) << pos;
    ((base & !field_mask) | ((val << pos) & field_mask)) & ty.mask()
}

/// The largest number of helper-call arguments (the SysV integer argument registers).
pub const MAX_CALL_ARGS: usize = 6;

/// The operand walk behind [`Op::for_each_use`] and [`Op::for_each_use_mut`]: one list of
/// which fields an op reads, for shared and for mutable references (`$iter` is `iter` or
/// `iter_mut` over call arguments).
macro_rules! visit_uses {
    ($op:expr, $f:expr, $iter:ident) => {{
        let mut f = $f;
        match $op {
            Op::Mov { src, .. }
            | Op::Unary { src, .. }
            | Op::Ext { src, .. }
            | Op::Trunc { src, .. } => f(src),
            Op::Extract { src, .. } => f(src),
            Op::Binary { a, b, .. } | Op::SetCond { a, b, .. } | Op::BrCond { a, b, .. } => {
                f(a);
                f(b);
            }
            Op::Deposit { base, val, .. } => {
                f(base);
                f(val);
            }
            Op::MovCond { a, b, t, f: fv, .. } => {
                f(a);
                f(b);
                f(t);
                f(fv);
            }
            Op::Load { addr, .. } => f(addr),
            Op::Store { val, addr, .. } => {
                f(val);
                f(addr);
            }
            Op::EnvStore { val, .. } => f(val),
            Op::Call { args, nargs, .. } => args[..*nargs as usize].$iter().for_each(f),
            Op::EnvLoad { .. }
            | Op::SetLabel(_)
            | Op::Br(_)
            | Op::Fence
            | Op::InsnStart { .. }
            | Op::GotoTb { .. }
            | Op::ExitTb { .. }
            | Op::LookupAndGoto => {}
        }
    }};
}

/// One operation. Operands are temps (constants are [`TempKind::Const`](crate::TempKind)
/// temps); `ty` fields give the operation's type, which the verifier checks against the temps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `dst = src`
    Mov { ty: Type, dst: Temp, src: Temp },
    /// `dst = a op b`
    Binary {
        op: BinOp,
        ty: Type,
        dst: Temp,
        a: Temp,
        b: Temp,
    },
    /// `dst = op a`
    Unary {
        op: UnOp,
        ty: Type,
        dst: Temp,
        src: Temp,
    },
    /// `dst = extend(low bits of src)`; `src` may be I32 or I64, `ty` is the type of `dst`.
    Ext {
        from: ExtFrom,
        ty: Type,
        dst: Temp,
        src: Temp,
    },
    /// `dst:i32 = low 32 bits of src:i64`
    Trunc { dst: Temp, src: Temp },
    /// `dst = extend(src[pos..pos+len])`; `1 <= len`, `pos + len <= width`.
    Extract {
        ty: Type,
        dst: Temp,
        src: Temp,
        pos: u8,
        len: u8,
        signed: bool,
    },
    /// `dst = base` with bits `pos..pos+len` replaced by the low bits of `val`.
    Deposit {
        ty: Type,
        dst: Temp,
        base: Temp,
        val: Temp,
        pos: u8,
        len: u8,
    },
    /// `dst = cond(a, b) as 0/1`; `ty` is the type of `a` and `b`, `dst` may be either type.
    SetCond {
        cond: Cond,
        ty: Type,
        dst: Temp,
        a: Temp,
        b: Temp,
    },
    /// `dst = if cond(a, b) { t } else { f }`, all of type `ty`.
    MovCond {
        cond: Cond,
        ty: Type,
        dst: Temp,
        a: Temp,
        b: Temp,
        t: Temp,
        f: Temp,
    },
    /// Marks the position of `label`; a basic-block boundary.
    SetLabel(Label),
    /// Unconditional jump to a label of the same block.
    Br(Label),
    /// Jump to `label` if `cond(a, b)`, else fall through.
    BrCond {
        cond: Cond,
        ty: Type,
        a: Temp,
        b: Temp,
        label: Label,
    },
    /// `dst = guest memory[addr]`, through the softmmu of MMU mode `mmu_idx`. `addr` has the
    /// block's guest address type. May raise (page fault, alignment, bus error).
    Load {
        dst: Temp,
        addr: Temp,
        mop: MemOp,
        mmu_idx: u8,
    },
    /// `guest memory[addr] = low bits of val`. May raise.
    Store {
        val: Temp,
        addr: Temp,
        mop: MemOp,
        mmu_idx: u8,
    },
    /// `dst = cpu_state[offset]` for a field that is not a global.
    EnvLoad { dst: Temp, offset: u32, mop: MemOp },
    /// `cpu_state[offset] = low bits of val` for a field that is not a global.
    EnvStore { val: Temp, offset: u32, mop: MemOp },
    /// Calls a Rust helper with `args[..nargs]` (SysV, zero-extended to 64 bits; [`Temp::ENV`]
    /// passes the CPU-state pointer) and writes its result to `ret`.
    Call {
        helper: &'static Helper,
        args: [Temp; MAX_CALL_ARGS],
        nargs: u8,
        ret: Option<Temp>,
    },
    /// An ordering point for guest memory accesses (guest fences); also a compiler barrier.
    Fence,
    /// Starts the code of the guest instruction at `pc`; `extra` is frontend state that must
    /// be restored with it when the instruction faults (x86: the lazy-flags operation).
    InsnStart { pc: u64, extra: u64 },
    /// Terminal: continue with the next block through chaining slot `slot` (0 or 1). The
    /// frontend has already stored the target guest pc into its pc global.
    GotoTb { slot: u8 },
    /// Terminal: return to the execution loop with a frontend-defined `reason`.
    ExitTb { reason: u32 },
    /// Terminal: continue at the guest pc held in the pc global, through a run-time lookup of
    /// the block cache (indirect jumps, returns); returns to the loop when there is no block.
    LookupAndGoto,
}

impl Op {
    /// Calls `f` on every temp the op reads.
    pub fn for_each_use(&self, mut f: impl FnMut(Temp)) {
        visit_uses!(self, |t: &Temp| f(*t), iter)
    }

    /// Calls `f` on a mutable reference to every temp the op reads (for rewriting passes).
    pub fn for_each_use_mut(&mut self, f: impl FnMut(&mut Temp)) {
        visit_uses!(self, f, iter_mut)
    }

    /// The temp the op writes, if any.
    pub fn def(&self) -> Option<Temp> {
        match *self {
            Op::Mov { dst, .. }
            | Op::Binary { dst, .. }
            | Op::Unary { dst, .. }
            | Op::Ext { dst, .. }
            | Op::Trunc { dst, .. }
            | Op::Extract { dst, .. }
            | Op::Deposit { dst, .. }
            | Op::SetCond { dst, .. }
            | Op::MovCond { dst, .. }
            | Op::Load { dst, .. }
            | Op::EnvLoad { dst, .. } => Some(dst),
            Op::Call { ret, .. } => ret,
            _ => None,
        }
    }

    /// Ends the block: nothing after it runs.
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Op::GotoTb { .. } | Op::ExitTb { .. } | Op::LookupAndGoto
        )
    }

    /// Control does not fall through to the next op (an unconditional branch or a terminal).
    pub const fn is_barrier(&self) -> bool {
        matches!(self, Op::Br(_)) || self.is_terminal()
    }

    /// The op does something besides writing its destination (memory, helpers with effects,
    /// control flow, markers), so it must not be removed even when its result is unused.
    pub fn has_side_effects(&self) -> bool {
        match self {
            Op::Call { helper, .. } => !helper.flags.contains(crate::HelperFlags::PURE),
            // A guest load may fault or touch MMIO; a state load cannot, but is kept simple.
            Op::Load { .. } => true,
            Op::Mov { .. }
            | Op::Binary { .. }
            | Op::Unary { .. }
            | Op::Ext { .. }
            | Op::Trunc { .. }
            | Op::Extract { .. }
            | Op::Deposit { .. }
            | Op::SetCond { .. }
            | Op::MovCond { .. }
            | Op::EnvLoad { .. } => false,
            _ => true,
        }
    }

    /// The op may leave the block through a guest exception.
    pub fn may_raise(&self) -> bool {
        match self {
            Op::Load { .. } | Op::Store { .. } => true,
            Op::Call { helper, .. } => helper.flags.contains(crate::HelperFlags::MAY_RAISE),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_edge_cases_follow_riscv() {
        let t = Type::I64;
        assert_eq!(BinOp::DivU.eval(t, 7, 0), u64::MAX);
        assert_eq!(BinOp::DivS.eval(t, 7, 0), u64::MAX);
        assert_eq!(BinOp::RemU.eval(t, 7, 0), 7);
        assert_eq!(BinOp::RemS.eval(t, (-7i64) as u64, 0), (-7i64) as u64);
        assert_eq!(BinOp::DivS.eval(t, 1 << 63, u64::MAX), 1 << 63);
        assert_eq!(BinOp::RemS.eval(t, 1 << 63, u64::MAX), 0);
        let t = Type::I32;
        assert_eq!(BinOp::DivU.eval(t, 7, 0), 0xffff_ffff);
        assert_eq!(BinOp::DivS.eval(t, 0x8000_0000, 0xffff_ffff), 0x8000_0000);
        assert_eq!(BinOp::RemS.eval(t, 0x8000_0000, 0xffff_ffff), 0);
        assert_eq!(
            BinOp::DivS.eval(t, (-7i32) as u32 as u64, 2),
            (-3i32) as u32 as u64
        );
        assert_eq!(
            BinOp::RemS.eval(t, (-7i32) as u32 as u64, 2),
            (-1i32) as u32 as u64
        );
    }

    #[test]
    fn shift_counts_wrap_at_the_type_width() {
        assert_eq!(BinOp::Shl.eval(Type::I32, 1, 33), 2);
        assert_eq!(BinOp::Shl.eval(Type::I64, 1, 65), 2);
        assert_eq!(BinOp::Shl.eval(Type::I64, 1, 33), 1 << 33);
        assert_eq!(BinOp::Sar.eval(Type::I32, 0x8000_0000, 31), 0xffff_ffff);
        assert_eq!(BinOp::Shr.eval(Type::I32, 0x8000_0000, 31), 1);
        assert_eq!(BinOp::Rotl.eval(Type::I32, 0x8000_0001, 1), 3);
        assert_eq!(BinOp::Rotr.eval(Type::I64, 1, 1), 1 << 63);
    }

    #[test]
    fn high_multiplies_use_the_right_signedness() {
        let m1 = u64::MAX; // -1 signed
        assert_eq!(BinOp::MulHu.eval(Type::I64, m1, m1), u64::MAX - 1);
        assert_eq!(BinOp::MulHs.eval(Type::I64, m1, m1), 0);
        assert_eq!(BinOp::MulHsu.eval(Type::I64, m1, m1), u64::MAX);
        assert_eq!(BinOp::MulHsu.eval(Type::I32, 0xffff_ffff, 2), 0xffff_ffff);
        assert_eq!(BinOp::MulHu.eval(Type::I32, 0xffff_ffff, 2), 1);
    }

    #[test]
    fn results_never_carry_bits_above_their_type() {
        let samples = [0u64, 1, 0xffff_ffff, 0x1_2345_6789, u64::MAX, 1 << 63];
        for op in BinOp::ALL {
            for &a in &samples {
                for &b in &samples {
                    assert_eq!(op.eval(Type::I32, a, b) >> 32, 0, "{op:?}");
                }
            }
        }
        for op in UnOp::ALL {
            for &a in &samples {
                assert_eq!(op.eval(Type::I32, a) >> 32, 0, "{op:?}");
            }
        }
    }

    #[test]
    fn bit_counts_of_zero_are_the_width() {
        assert_eq!(UnOp::Clz.eval(Type::I32, 0), 32);
        assert_eq!(UnOp::Ctz.eval(Type::I64, 0), 64);
        assert_eq!(UnOp::Clz.eval(Type::I32, 0xf_0000_0001), 31);
        assert_eq!(UnOp::Bswap.eval(Type::I32, 0x1122_3344), 0x4433_2211);
    }

    #[test]
    fn extract_and_deposit_fields() {
        assert_eq!(extract(Type::I64, 0xabcd, 4, 8, false), 0xbc);
        assert_eq!(extract(Type::I64, 0x80, 4, 4, true), (-8i64) as u64);
        assert_eq!(extract(Type::I32, 0x8000_0000, 0, 32, true), 0x8000_0000);
        assert_eq!(extract(Type::I64, u64::MAX, 0, 64, false), u64::MAX);
        assert_eq!(deposit(Type::I64, 0xffff, 0x12, 4, 8), 0xf12f);
        assert_eq!(deposit(Type::I32, 0, u64::MAX, 0, 32), 0xffff_ffff);
        assert_eq!(deposit(Type::I64, 0, u64::MAX, 0, 64), u64::MAX);
        assert_eq!(ExtFrom::S8.eval(Type::I32, 0x80), 0xffff_ff80);
        assert_eq!(
            ExtFrom::U32.eval(Type::I64, 0xffff_ffff_8000_0000),
            0x8000_0000
        );
    }
}
