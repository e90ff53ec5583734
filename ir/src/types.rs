//! The value-level vocabulary of the IR: types, temps, labels, conditions and memory operations.

use std::fmt;

/// The type of an IR value. Guest state is integers only (see the crate docs on floating point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// 32 bits. Held zero-extended wherever it lives in 64 bits (host registers, the interpreter).
    I32,
    /// 64 bits.
    I64,
}

impl Type {
    /// Width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Type::I32 => 32,
            Type::I64 => 64,
        }
    }

    /// The mask of the bits a value of this type keeps.
    pub const fn mask(self) -> u64 {
        match self {
            Type::I32 => u32::MAX as u64,
            Type::I64 => u64::MAX,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::I32 => "i32",
            Type::I64 => "i64",
        })
    }
}

/// A value slot of one [`Block`](crate::Block): an index into its temp table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Temp(pub u32);

impl Temp {
    /// The temp that stands for the CPU-state pointer. It is temp 0 of every block and may only
    /// appear as a helper-call argument.
    pub const ENV: Temp = Temp(0);

    /// The index into the block's temp table.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a temp's value lives and how long it stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TempKind {
    /// The CPU-state pointer passed to helpers ([`Temp::ENV`]).
    Env,
    /// A field of the guest CPU state at a fixed byte offset from the state pointer. Globals
    /// are live into and out of every block: the backend may hold them in host registers but
    /// must store them back at block exits, before helper calls that read them and before
    /// anything that may raise a guest exception.
    Global {
        /// Byte offset of the field in the CPU state.
        offset: u32,
        /// Index into the block's [`GlobalDef`] table, for names in logs.
        index: u32,
    },
    /// A value that lives across labels and branches within one block, dead at its exits.
    Local,
    /// A value that is dead at every label and after every unconditional branch: the cheap
    /// kind, which the register allocator never needs to keep in memory across basic blocks.
    /// Reading it after a label before writing it again is a verifier error.
    Scratch,
    /// A constant. Constant temps are interned per block and never written.
    Const(u64),
}

/// Static description of one global: a field of the guest CPU state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalDef {
    /// Name used by the printer (e.g. `x5`, `rax`, `pc`).
    pub name: &'static str,
    /// Type of the field; an `I32` field is 4 bytes, an `I64` field 8 bytes.
    pub ty: Type,
    /// Byte offset of the field from the CPU-state pointer; must be naturally aligned.
    pub offset: u32,
}

/// Per-temp information kept by the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempInfo {
    /// The value type.
    pub ty: Type,
    /// The storage class.
    pub kind: TempKind,
}

/// A branch target within one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub u32);

impl Label {
    /// The index of the label.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A comparison between two values of the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cond {
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// signed `a < b`
    Lt,
    /// signed `a >= b`
    Ge,
    /// signed `a <= b`
    Le,
    /// signed `a > b`
    Gt,
    /// unsigned `a < b`
    Ltu,
    /// unsigned `a >= b`
    Geu,
    /// unsigned `a <= b`
    Leu,
    /// unsigned `a > b`
    Gtu,
    /// `a & b == 0` (an x86 `test` followed by `jz`)
    TstEq,
    /// `a & b != 0`
    TstNe,
}

impl Cond {
    /// Every condition, for exhaustive tests and generators.
    pub const ALL: [Cond; 12] = [
        Cond::Eq,
        Cond::Ne,
        Cond::Lt,
        Cond::Ge,
        Cond::Le,
        Cond::Gt,
        Cond::Ltu,
        Cond::Geu,
        Cond::Leu,
        Cond::Gtu,
        Cond::TstEq,
        Cond::TstNe,
    ];

    /// The condition that holds exactly when `self` does not.
    pub const fn invert(self) -> Cond {
        match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Lt => Cond::Ge,
            Cond::Ge => Cond::Lt,
            Cond::Le => Cond::Gt,
            Cond::Gt => Cond::Le,
            Cond::Ltu => Cond::Geu,
            Cond::Geu => Cond::Ltu,
            Cond::Leu => Cond::Gtu,
            Cond::Gtu => Cond::Leu,
            Cond::TstEq => Cond::TstNe,
            Cond::TstNe => Cond::TstEq,
        }
    }

    /// The condition with its operands exchanged: `a c b == b c.swap() a`.
    pub const fn swap(self) -> Cond {
        match self {
            Cond::Lt => Cond::Gt,
            Cond::Gt => Cond::Lt,
            Cond::Le => Cond::Ge,
            Cond::Ge => Cond::Le,
            Cond::Ltu => Cond::Gtu,
            Cond::Gtu => Cond::Ltu,
            Cond::Leu => Cond::Geu,
            Cond::Geu => Cond::Leu,
            c => c,
        }
    }

    /// Evaluates the condition on two values of type `ty` (bits above the type are ignored).
    pub fn eval(self, ty: Type, a: u64, b: u64) -> bool {
        let (a, b) = (a & ty.mask(), b & ty.mask());
        let (sa, sb) = match ty {
            Type::I32 => (a as u32 as i32 as i64, b as u32 as i32 as i64),
            Type::I64 => (a as i64, b as i64),
        };
        match self {
            Cond::Eq => a == b,
            Cond::Ne => a != b,
            Cond::Lt => sa < sb,
            Cond::Ge => sa >= sb,
            Cond::Le => sa <= sb,
            Cond::Gt => sa > sb,
            Cond::Ltu => a < b,
            Cond::Geu => a >= b,
            Cond::Leu => a <= b,
            Cond::Gtu => a > b,
            Cond::TstEq => a & b == 0,
            Cond::TstNe => a & b != 0,
        }
    }

    /// The lowercase name used by the printer.
    pub const fn name(self) -> &'static str {
        match self {
            Cond::Eq => "eq",
            Cond::Ne => "ne",
            Cond::Lt => "lt",
            Cond::Ge => "ge",
            Cond::Le => "le",
            Cond::Gt => "gt",
            Cond::Ltu => "ltu",
            Cond::Geu => "geu",
            Cond::Leu => "leu",
            Cond::Gtu => "gtu",
            Cond::TstEq => "tsteq",
            Cond::TstNe => "tstne",
        }
    }
}

/// The size of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1 byte
    B8,
    /// 2 bytes
    B16,
    /// 4 bytes
    B32,
    /// 8 bytes
    B64,
}

impl Size {
    /// Every size, smallest first.
    pub const ALL: [Size; 4] = [Size::B8, Size::B16, Size::B32, Size::B64];

    /// Bytes accessed.
    pub const fn bytes(self) -> u32 {
        1 << self.log2()
    }

    /// log2 of the byte count.
    pub const fn log2(self) -> u32 {
        match self {
            Size::B8 => 0,
            Size::B16 => 1,
            Size::B32 => 2,
            Size::B64 => 3,
        }
    }

    /// Bits accessed.
    pub const fn bits(self) -> u32 {
        self.bytes() * 8
    }
}

/// How a guest or CPU-state memory access is performed. Guest memory is little-endian: both
/// guests tern runs (x86_64, riscv64) are, and so is every host the JIT targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemOp {
    /// Access size.
    pub size: Size,
    /// Loads: sign-extend (else zero-extend) the value to the destination type.
    pub signed: bool,
    /// The access must be naturally aligned; a misaligned one goes to the slow path, which
    /// raises the guest's alignment fault. Without it, misaligned accesses are performed
    /// (split across pages by the slow path where needed).
    pub aligned: bool,
}

impl MemOp {
    /// An unsigned, unaligned-allowed access of `size`.
    pub const fn unsigned(size: Size) -> MemOp {
        MemOp {
            size,
            signed: false,
            aligned: false,
        }
    }

    /// A sign-extending, unaligned-allowed access of `size`.
    pub const fn signed(size: Size) -> MemOp {
        MemOp {
            size,
            signed: true,
            aligned: false,
        }
    }

    /// The same access with natural alignment required.
    pub const fn with_aligned(self) -> MemOp {
        MemOp {
            aligned: true,
            ..self
        }
    }

    /// A compact encoding (bits 0-1 size, bit 2 signed, bit 3 aligned), used in the slow-path
    /// call ABI ([`crate::abi`]).
    pub const fn bits(self) -> u32 {
        self.size.log2() | (self.signed as u32) << 2 | (self.aligned as u32) << 3
    }

    /// Decodes [`MemOp::bits`]; the bits above 3 are ignored.
    pub const fn from_bits(bits: u32) -> MemOp {
        let size = match bits & 3 {
            0 => Size::B8,
            1 => Size::B16,
            2 => Size::B32,
            _ => Size::B64,
        };
        MemOp {
            size,
            signed: bits & 4 != 0,
            aligned: bits & 8 != 0,
        }
    }

    /// Extends a raw loaded value (the low `size` bytes of `raw`) as this access requires.
    pub const fn extend(self, raw: u64) -> u64 {
        let bits = self.size.bits();
        if bits == 64 {
            return raw;
        }
        let shift = 64 - bits;
        if self.signed {
            (((raw << shift) as i64) >> shift) as u64
        } else {
            (raw << shift) >> shift
        }
    }
}

impl fmt::Display for MemOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.signed { 's' } else { 'u' };
        write!(f, "{}{}", sign, self.size.bits())?;
        if self.aligned {
            f.write_str("a")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_and_swapped_conditions_agree_with_eval() {
        let samples = [
            0u64,
            1,
            2,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX as u64,
            1 << 63,
            u64::MAX,
        ];
        for cond in Cond::ALL {
            for ty in [Type::I32, Type::I64] {
                for &a in &samples {
                    for &b in &samples {
                        assert_eq!(
                            cond.invert().eval(ty, a, b),
                            !cond.eval(ty, a, b),
                            "{cond:?}"
                        );
                        assert_eq!(cond.swap().eval(ty, b, a), cond.eval(ty, a, b), "{cond:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn i32_comparisons_see_only_the_low_32_bits_and_their_sign() {
        assert!(Cond::Lt.eval(Type::I32, 0x8000_0000, 0));
        assert!(!Cond::Lt.eval(Type::I64, 0x8000_0000, 0));
        assert!(Cond::Eq.eval(Type::I32, 0x1_0000_0005, 5));
    }

    #[test]
    fn memop_bits_round_trip_and_extend() {
        for size in Size::ALL {
            for signed in [false, true] {
                for aligned in [false, true] {
                    let m = MemOp {
                        size,
                        signed,
                        aligned,
                    };
                    assert_eq!(MemOp::from_bits(m.bits()), m);
                }
            }
        }
        assert_eq!(MemOp::signed(Size::B8).extend(0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(MemOp::unsigned(Size::B16).extend(0x1_8001), 0x8001);
        assert_eq!(MemOp::signed(Size::B32).extend(0x7fff_ffff), 0x7fff_ffff);
        assert_eq!(MemOp::signed(Size::B64).extend(u64::MAX), u64::MAX);
    }
}
