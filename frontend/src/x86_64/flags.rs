//! Lazy EFLAGS: flag-setting instructions record what they did, consumers compute only the
//! condition they need.
//!
//! Nearly every integer instruction writes the six arithmetic flags (CF PF AF ZF SF OF) and
//! nearly none of them are read, so the translator does not compute them. It records the
//! operation in `cc_op` (a [`CcOp`]: kind and operand size), its result in `cc_dst`, and the
//! operand the flags need in `cc_src` (and `cc_src2`). A consumer (`jcc`, `setcc`, `cmovcc`)
//! asks for one condition: when the translator knows the `CcOp` statically (it was set
//! earlier in the same block) it emits a direct comparison, e.g. `jb` after `cmp` compares
//! the original operands unsigned; otherwise it calls [`compute_flags`] through
//! [`COMPUTE_EFLAGS`] and tests bits. Direct comparisons exist for ZF and SF after anything,
//! every condition but P after logic ops, B BE L LE after sub/cmp, CF after add, adc, sbb and
//! shifts (so multi-word adc/sbb chains never materialise the flags), CF OF L LE after
//! inc/dec, and CF/OF after multiplies. inc/dec themselves need the CF before them: at a block
//! start (nothing known) that one costs a helper call.
//!
//! What `cc_dst`/`cc_src`/`cc_src2` hold per kind (all values zero-extended from the operand
//! size unless said otherwise):
//!
//! | kind   | cc_dst      | cc_src                          | cc_src2  |
//! |--------|-------------|---------------------------------|----------|
//! | Eflags | -           | the flags themselves            | -        |
//! | Add    | result      | second operand                  | -        |
//! | Adc    | result      | second operand                  | carry in |
//! | Sub    | result      | second operand (`neg`: operand) | -        |
//! | Sbb    | result      | second operand                  | borrow in|
//! | Logic  | result      | -                               | -        |
//! | Inc/Dec| result      | CF before (0/1; inc/dec keep it)| -        |
//! | Shl    | result      | operand shifted by count - 1    | -        |
//! | Sar    | result      | operand (sign- or zero-extended for sar/shr) shifted right by count - 1 | - |
//! | Mul    | low result  | nonzero iff CF = OF = 1 (full 64 bits, not masked) | - |
//!
//! Undefined flags, documented choices: AF is 0 after logic ops, shifts and multiplies; OF after
//! a shift by more than one is `CF xor MSB(result)` for left shifts and `MSB(src xor result)`
//! for right shifts (what the count-1 formula gives); after a multiply SF, ZF and PF follow the
//! low result. `div`/`idiv` leave the flags as they were. Instructions that change only some
//! flags (`rol`/`ror`: CF OF; `bt*`: CF; `clc`/`stc`/`cmc`, `sahf`, `popf`) materialise the
//! flags (`Eflags`) and edit them; `bt*` keep OF SF AF PF (undefined in the SDM); `bsf`/`bsr`
//! record a logic op on the source (ZF = source is zero, the undefined rest follows it).
//! `rcl`/`rcr` (`translate::shift`) give OF by the count-1 formula for every count. The
//! shift and rotate choices match the AMD processors the differential tests run on, for the
//! undefined OF and CF too (checked by hand; the tests compare only the defined flags).

use ir::{BinOp, Builder, Cond, Helper, HelperFlags, Temp, Type};

use super::cpu::{self, X86Cpu};

/// Carry flag.
pub const CF: u64 = 1 << 0;
/// Parity flag (even parity of the low byte of the result).
pub const PF: u64 = 1 << 2;
/// Auxiliary carry (out of bit 3).
pub const AF: u64 = 1 << 4;
/// Zero flag.
pub const ZF: u64 = 1 << 6;
/// Sign flag.
pub const SF: u64 = 1 << 7;
/// Direction flag (held in `df`, not lazily).
pub const DF: u64 = 1 << 10;
/// Overflow flag.
pub const OF: u64 = 1 << 11;
/// The six flags lazy operations produce.
pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;

/// The kind of the last flag-setting operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CcKind {
    /// The flags are materialised in `cc_src`.
    Eflags = 0,
    /// `add`
    Add = 1,
    /// `adc`
    Adc = 2,
    /// `sub`, `cmp`, `neg`
    Sub = 3,
    /// `sbb`
    Sbb = 4,
    /// `and`, `or`, `xor`, `test`
    Logic = 5,
    /// `inc`
    Inc = 6,
    /// `dec`
    Dec = 7,
    /// `shl`/`sal`
    Shl = 8,
    /// `shr` and `sar` (the same formulas serve both, given how `cc_src` is extended)
    Sar = 9,
    /// `mul`, `imul`
    Mul = 10,
}

impl CcKind {
    const ALL: [CcKind; 11] = [
        CcKind::Eflags,
        CcKind::Add,
        CcKind::Adc,
        CcKind::Sub,
        CcKind::Sbb,
        CcKind::Logic,
        CcKind::Inc,
        CcKind::Dec,
        CcKind::Shl,
        CcKind::Sar,
        CcKind::Mul,
    ];
}

/// A lazy-flags operation: its kind and operand size (log2 of bytes, 0..=3). Packed into the
/// `cc_op` global as `kind << 2 | size`, which is also the `insn_start` extra word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcOp {
    /// What the operation was.
    pub kind: CcKind,
    /// log2 of the operand size in bytes.
    pub size: u8,
}

impl CcOp {
    /// Materialised flags.
    pub const EFLAGS: CcOp = CcOp {
        kind: CcKind::Eflags,
        size: 3,
    };

    /// `kind` at operand size `1 << size` bytes.
    pub const fn new(kind: CcKind, size: u8) -> CcOp {
        CcOp {
            kind,
            size: size & 3,
        }
    }

    /// The `cc_op` global's encoding.
    pub const fn encode(self) -> u64 {
        (self.kind as u64) << 2 | self.size as u64
    }

    /// Decodes [`CcOp::encode`]; `None` for values no translator writes.
    pub fn decode(v: u64) -> Option<CcOp> {
        let kind = *CcKind::ALL.get((v >> 2) as usize)?;
        Some(CcOp::new(kind, (v & 3) as u8))
    }

    /// Operand width in bits.
    pub const fn bits(self) -> u32 {
        8 << self.size
    }

    /// Mask of the operand bits.
    pub const fn mask(self) -> u64 {
        u64::MAX >> (64 - self.bits())
    }

    /// The sign bit of the operand size.
    pub const fn sign(self) -> u64 {
        1 << (self.bits() - 1)
    }
}

fn parity(v: u64) -> u64 {
    if (v as u8).count_ones() % 2 == 0 {
        PF
    } else {
        0
    }
}

/// The six arithmetic flags left by operation `op` (a [`CcOp`] encoding) with the lazy values
/// `dst`, `src`, `src2`. Total: an unknown `op` reads as materialised flags.
pub fn compute_flags(op: u64, dst: u64, src: u64, src2: u64) -> u64 {
    let Some(cc) = CcOp::decode(op) else {
        return src & ARITH;
    };
    let (m, sign) = (cc.mask(), cc.sign());
    let dst = dst & m;
    let zs =
        |d: u64| (if d == 0 { ZF } else { 0 }) | (if d & sign != 0 { SF } else { 0 }) | parity(d);
    let of = |b: bool| if b { OF } else { 0 };
    let cf = |b: bool| if b { CF } else { 0 };
    match cc.kind {
        CcKind::Eflags => src & ARITH,
        CcKind::Add | CcKind::Adc => {
            let src = src & m;
            let cin = if cc.kind == CcKind::Adc { src2 & 1 } else { 0 };
            let src1 = dst.wrapping_sub(src).wrapping_sub(cin) & m;
            let carry = if cin != 0 { dst <= src } else { dst < src };
            zs(dst)
                | cf(carry)
                | ((src1 ^ src ^ dst) & AF)
                | of((src1 ^ dst) & (src ^ dst) & sign != 0)
        }
        CcKind::Sub | CcKind::Sbb => {
            let src = src & m;
            let bin = if cc.kind == CcKind::Sbb { src2 & 1 } else { 0 };
            let src1 = dst.wrapping_add(src).wrapping_add(bin) & m;
            let borrow = if bin != 0 { src1 <= src } else { src1 < src };
            zs(dst)
                | cf(borrow)
                | ((src1 ^ src ^ dst) & AF)
                | of((src1 ^ src) & (src1 ^ dst) & sign != 0)
        }
        CcKind::Logic => zs(dst),
        CcKind::Inc => {
            zs(dst) | cf(src & 1 != 0) | (if dst & 0xf == 0 { AF } else { 0 }) | of(dst == sign)
        }
        CcKind::Dec => {
            zs(dst)
                | cf(src & 1 != 0)
                | (if dst & 0xf == 0xf { AF } else { 0 })
                | of(dst == sign - 1)
        }
        CcKind::Shl => {
            let c = src & sign != 0;
            zs(dst) | cf(c) | of(c != (dst & sign != 0))
        }
        CcKind::Sar => zs(dst) | cf(src & 1 != 0) | of((src ^ dst) & sign != 0),
        CcKind::Mul => zs(dst) | cf(src != 0) | of(src != 0),
    }
}

/// The full RFLAGS of `cpu`: `eflags` with the lazy arithmetic flags and DF merged in.
pub fn rflags(cpu: &X86Cpu) -> u64 {
    let arith = compute_flags(cpu.cc_op, cpu.cc_dst, cpu.cc_src, cpu.cc_src2);
    let df = if cpu.df as i64 == -1 { DF } else { 0 };
    (cpu.eflags & !(ARITH | DF)) | arith | df | 0x2
}

/// `compute_eflags(cc_op, cc_dst, cc_src, cc_src2) -> flags`, for translated code.
unsafe extern "C" fn helper_compute_eflags(
    op: u64,
    dst: u64,
    src: u64,
    src2: u64,
    _: u64,
    _: u64,
) -> u64 {
    compute_flags(op, dst, src, src2)
}

/// The helper consumers call when the `CcOp` is not known at translation time. Pure: it takes
/// the lazy values as arguments rather than reading the state, so unused calls fold away and
/// no global needs storing before it.
pub static COMPUTE_EFLAGS: Helper = Helper {
    name: "compute_eflags",
    func: helper_compute_eflags,
    flags: HelperFlags::PURE,
};

/// The translator's static view of the lazy flags within one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcState {
    /// The operation whose values are in the `cc_*` globals, when known; `None` after a
    /// block entry or a path merge (the `cc_op` global then says).
    pub known: Option<CcOp>,
}

impl CcState {
    /// At a block entry nothing is known.
    pub const UNKNOWN: CcState = CcState { known: None };

    /// Records that the `cc_*` globals now hold values for `op`, writing the `cc_op` global
    /// only if it changes. The caller writes `cc_dst`/`cc_src`/`cc_src2` itself.
    pub fn set(&mut self, b: &mut Builder, op: CcOp) {
        if self.known != Some(op) {
            let g = b.global(cpu::CC_OP_GLOBAL);
            b.movi(g, op.encode());
            self.known = Some(op);
        }
    }

    /// The `insn_start` extra word: the static `cc_op`, or `u64::MAX` when unknown.
    pub fn extra(&self) -> u64 {
        self.known.map_or(u64::MAX, CcOp::encode)
    }

    /// A comparison `(cond, a, b)` that holds exactly when x86 condition code `cc` (0..=15:
    /// O NO B AE E NE BE A S NS P NP L GE LE G) holds for the current flags.
    pub fn condition(&self, b: &mut Builder, cc: u8) -> (Cond, Temp, Temp) {
        let (cond, x, y) = match self.known {
            Some(op) if op.kind != CcKind::Eflags => match self.direct(b, op, cc & !1) {
                Some(c) => c,
                None => self.by_flag_bits(b, cc & !1),
            },
            _ => self.by_flag_bits(b, cc & !1),
        };
        if cc & 1 != 0 {
            (cond.invert(), x, y)
        } else {
            (cond, x, y)
        }
    }

    /// The six arithmetic flags as a value (the `cc_src` global itself when they are already
    /// materialised, else a call to [`COMPUTE_EFLAGS`]).
    pub fn value(&self, b: &mut Builder) -> Temp {
        match self.known {
            Some(op) if op.kind == CcKind::Eflags => b.global(cpu::CC_SRC_GLOBAL),
            _ => {
                let f = b.scratch(Type::I64);
                let args = [
                    b.global(cpu::CC_OP_GLOBAL),
                    b.global(cpu::CC_DST_GLOBAL),
                    b.global(cpu::CC_SRC_GLOBAL),
                    b.global(cpu::CC_SRC2_GLOBAL),
                ];
                b.call(&COMPUTE_EFLAGS, &args, Some(f));
                f
            }
        }
    }

    /// The even condition `cc` straight from the lazy values of a known `op`, where cheap.
    fn direct(&self, b: &mut Builder, op: CcOp, cc: u8) -> Option<(Cond, Temp, Temp)> {
        let dst = b.global(cpu::CC_DST_GLOBAL);
        let src = b.global(cpu::CC_SRC_GLOBAL);
        let mask = b.constant(Type::I64, op.mask());
        let sign = b.constant(Type::I64, op.sign());
        let zero = b.constant(Type::I64, 0);
        match cc {
            4 => return Some((Cond::TstEq, dst, mask)),
            8 => return Some((Cond::TstNe, dst, sign)),
            _ => {}
        }
        match op.kind {
            CcKind::Logic => match cc {
                0 | 2 => Some((Cond::Ne, zero, zero)),
                6 => Some((Cond::TstEq, dst, mask)),
                12 => Some((Cond::TstNe, dst, sign)),
                14 => {
                    let s = sext(b, dst, op);
                    Some((Cond::Le, s, zero))
                }
                _ => None,
            },
            CcKind::Sub => {
                // The original operands: src1 = dst + src, src2 = src.
                let src1 = b.scratch(Type::I64);
                b.add(src1, dst, src);
                let (c, signed) = match cc {
                    2 => (Cond::Ltu, false),
                    6 => (Cond::Leu, false),
                    12 => (Cond::Lt, true),
                    14 => (Cond::Le, true),
                    _ => return None,
                };
                if signed {
                    let (a, s) = (sext(b, src1, op), sext(b, src, op));
                    Some((c, a, s))
                } else {
                    let (a, s) = (zext(b, src1, op), zext(b, src, op));
                    Some((c, a, s))
                }
            }
            CcKind::Add if cc == 2 => {
                let (d, s) = (zext(b, dst, op), zext(b, src, op));
                Some((Cond::Ltu, d, s))
            }
            CcKind::Mul if cc == 0 || cc == 2 => Some((Cond::Ne, src, zero)),
            CcKind::Inc | CcKind::Dec => {
                let inc = op.kind == CcKind::Inc;
                match cc {
                    // CF is the one kept from before, in cc_src.
                    2 => {
                        let one = b.constant(Type::I64, 1);
                        Some((Cond::TstNe, src, one))
                    }
                    // OF: inc wrapped MAX to MIN, dec MIN to MAX.
                    0 => {
                        let d = zext(b, dst, op);
                        let k = b.constant(Type::I64, if inc { op.sign() } else { op.sign() - 1 });
                        Some((Cond::Eq, d, k))
                    }
                    // L (SF != OF) and LE say whether the exact result is < 0 (<= 0): compare
                    // the operand x (dst - 1 for inc, dst + 1 for dec) signed. inc: x + 1 < 0
                    // is x < -1, x + 1 <= 0 is x < 0; dec: x - 1 < 0 is x < 1, <= 0 is x <= 1.
                    12 | 14 => {
                        let x = b.scratch(Type::I64);
                        b.binary_imm(BinOp::Add, x, dst, if inc { u64::MAX } else { 1 });
                        let x = sext(b, x, op);
                        let (c, k) = match (inc, cc) {
                            (true, 12) => (Cond::Lt, u64::MAX),
                            (true, _) => (Cond::Lt, 0),
                            (false, 12) => (Cond::Lt, 1),
                            (false, _) => (Cond::Le, 1),
                        };
                        let k = b.constant(Type::I64, k);
                        Some((c, x, k))
                    }
                    _ => None,
                }
            }
            // CF of a shift: the last bit shifted out is the top bit (shl) or bit 0 (shr,
            // sar) of the operand shifted by count - 1.
            CcKind::Shl if cc == 2 => Some((Cond::TstNe, src, sign)),
            CcKind::Sar if cc == 2 => {
                let one = b.constant(Type::I64, 1);
                Some((Cond::TstNe, src, one))
            }
            // CF of adc/sbb (the next adc or sbb of a multi-word chain): the carry-in
            // selects between the strict and the non-strict unsigned comparison.
            CcKind::Adc | CcKind::Sbb if cc == 2 => {
                let src2 = b.global(cpu::CC_SRC2_GLOBAL);
                let s = zext(b, src, op);
                let a = if op.kind == CcKind::Adc {
                    zext(b, dst, op)
                } else {
                    // The first operand: dst + src + borrow-in.
                    let (t, cin) = (b.scratch(Type::I64), b.scratch(Type::I64));
                    b.binary_imm(BinOp::And, cin, src2, 1);
                    b.add(t, dst, src);
                    b.add(t, t, cin);
                    zext(b, t, op)
                };
                let (lt, le, c) = (
                    b.scratch(Type::I64),
                    b.scratch(Type::I64),
                    b.scratch(Type::I64),
                );
                b.setcond(Cond::Ltu, lt, a, s);
                b.setcond(Cond::Leu, le, a, s);
                let one = b.constant(Type::I64, 1);
                b.movcond(Cond::TstNe, c, src2, one, le, lt);
                Some((Cond::Ne, c, zero))
            }
            _ => None,
        }
    }

    /// The even condition `cc` by testing bits of the computed flags.
    fn by_flag_bits(&self, b: &mut Builder, cc: u8) -> (Cond, Temp, Temp) {
        let f = self.value(b);
        let bit = |b: &mut Builder, m: u64| {
            let c = b.constant(Type::I64, m);
            (Cond::TstNe, f, c)
        };
        match cc {
            0 => bit(b, OF),
            2 => bit(b, CF),
            4 => bit(b, ZF),
            6 => bit(b, CF | ZF),
            8 => bit(b, SF),
            10 => bit(b, PF),
            _ => {
                // SF (bit 7) moved onto OF (bit 11): bit 11 of t is SF ^ OF.
                let t = b.scratch(Type::I64);
                b.binary_imm(BinOp::Shl, t, f, 4);
                b.binary(BinOp::Xor, t, t, f);
                if cc == 14 {
                    // ZF (bit 6) moved onto bit 11 too.
                    let z = b.scratch(Type::I64);
                    b.binary_imm(BinOp::Shl, z, f, 5);
                    b.binary(BinOp::Or, t, t, z);
                }
                let c = b.constant(Type::I64, OF);
                (Cond::TstNe, t, c)
            }
        }
    }
}

/// `v` zero-extended from the size of `op` (a new scratch, or `v` for 64 bits).
pub fn zext(b: &mut Builder, v: Temp, op: CcOp) -> Temp {
    ext(b, v, op.size, false)
}

/// `v` sign-extended from the size of `op`.
pub fn sext(b: &mut Builder, v: Temp, op: CcOp) -> Temp {
    ext(b, v, op.size, true)
}

/// `v` extended from `1 << size` bytes to 64 bits.
pub fn ext(b: &mut Builder, v: Temp, size: u8, signed: bool) -> Temp {
    use ir::ExtFrom::*;
    let from = match (size, signed) {
        (0, false) => U8,
        (0, true) => S8,
        (1, false) => U16,
        (1, true) => S16,
        (2, false) => U32,
        (2, true) => S32,
        _ => return v,
    };
    let t = b.scratch(Type::I64);
    b.ext(from, t, v);
    t
}

#[cfg(test)]
mod tests;
