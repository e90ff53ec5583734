//! Table-driven decoder for 32-bit RISC-V encodings (RV64IMAFD, Zicsr, Zifencei, Zba, Zbb,
//! Zbs and the privileged instructions).
//!
//! Every instruction is one row of [`TABLE`]: a bit pattern written as in the ISA manual's
//! opcode map (`0`/`1` fixed, anything else free), the [`Opcode`] it means and the [`Format`]
//! that says which fields to extract. The patterns are parsed at compile time.
//!
//! For speed the rows are sorted, also at compile time, into buckets keyed by the major opcode
//! (bits 6..2) and a second field chosen per major opcode (funct3 for most, funct5 for OP-FP
//! and AMO, the fmt field for the fused multiply-adds), so a lookup is two array reads and a
//! scan of at most a handful of `(raw & mask) == bits` tests. A row whose pattern leaves part
//! of the key free is copied into every bucket it can match. Rows are tried in table order;
//! the unit tests check that no two rows can match the same word, so the order never matters.
//!
//! Choices where the manual leaves room:
//! - FP instructions with a rounding-mode field decode for every `rm`, including the
//!   reserved 5 and 6: whether the instruction is legal depends on `frm` when `rm` is 7
//!   (dynamic), so the translator raises illegal-instruction at run time for all three cases.
//! - `fence` ignores `fm`, `rs1` and `rd` (the manual: reserved `fm` values are to be treated
//!   as a normal fence; `rs1`/`rd` are reserved for finer-grained fences and ignored), and
//!   `fence.i` ignores its immediate, `rs1` and `rd` likewise.
//! - HINT encodings (`addi x0, ...`, `lui x0, ...`, `fence` with pred or succ zero, ...)
//!   decode as the ordinary instruction, which is the architecturally correct no-op.
//! - Everything else not in the table (reserved funct fields, shifts with `shamt[5]` set in
//!   the W forms, the H and Q FP formats, the 48-bit and longer prefixes) returns `None`.

use super::insn::{Insn, Opcode};

/// Which fields an instruction takes from its encoding. The fields not listed stay zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No operands (`ecall`, `fence.i`, `mret`, ...).
    None,
    /// `rd`, `rs1`, `rs2`.
    R,
    /// `rd`, `rs1`, `rs2`, `rm` (FP arithmetic).
    RRm,
    /// `rd`, `rs1` (unary ops whose `rs2` field is part of the opcode).
    R1,
    /// `rd`, `rs1`, `rm` (`fsqrt`, `fcvt`).
    R1Rm,
    /// `rd`, `rs1`, `rs2`, `rs3`, `rm` (fused multiply-add).
    R4,
    /// `rd`, `rs1`, `rs2`, `rm = aq << 1 | rl` (AMOs, LR/SC).
    Amo,
    /// `rd`, `rs1`, 12-bit signed `imm` (loads, `addi`, `jalr`).
    I,
    /// `rd`, `rs1`, 6-bit shift amount in `imm`.
    Shamt6,
    /// `rd`, `rs1`, 5-bit shift amount in `imm`.
    Shamt5,
    /// `rs1`, `rs2`, 12-bit signed `imm` (stores).
    S,
    /// `rs1`, `rs2`, 13-bit signed byte offset in `imm`.
    B,
    /// `rd`, `imm = sext(raw[31:12] << 12)`.
    U,
    /// `rd`, 21-bit signed byte offset in `imm`.
    J,
    /// `rd`, `rs1`, `csr`.
    Csr,
    /// `rd`, `csr`, the 5-bit `uimm` (zero-extended) in `imm`.
    CsrI,
    /// `imm = pred << 4 | succ`.
    Fence,
}

/// One row of the decode table.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Bits that the pattern fixes.
    pub mask: u32,
    /// Their values.
    pub bits: u32,
    /// The instruction.
    pub op: Opcode,
    /// The fields it takes.
    pub format: Format,
}

/// Parses a 32-bit pattern at compile time: `0`/`1` are fixed bits, spaces are ignored and
/// any other character is a free bit. Returns `(mask, bits)`.
pub(crate) const fn pattern(s: &str, width: u32) -> (u32, u32) {
    let b = s.as_bytes();
    let mut mask = 0u32;
    let mut bits = 0u32;
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c == b' ' {
            continue;
        }
        mask <<= 1;
        bits <<= 1;
        if c == b'0' {
            mask |= 1;
        } else if c == b'1' {
            mask |= 1;
            bits |= 1;
        }
        n += 1;
    }
    assert!(n == width, "decode pattern has the wrong number of bits");
    (mask, bits)
}

const fn e(pat: &str, op: Opcode, format: Format) -> Entry {
    let (mask, bits) = pattern(pat, 32);
    Entry {
        mask,
        bits,
        op,
        format,
    }
}

use Format as F;
use Opcode as O;

/// The decode table, grouped by major opcode in the manual's order. Free bits are written
/// as the field letters of the manual (`r` registers, `i` immediates, `m` rounding mode,
/// `a` aq/rl, `p`/`s` fence pred/succ, `c` CSR number, `x` ignored).
#[rustfmt::skip]
pub const TABLE: &[Entry] = &[
    // LOAD
    e("iiiiiiiiiiii rrrrr 011 rrrrr 0000011", O::Ld, F::I),
    e("iiiiiiiiiiii rrrrr 010 rrrrr 0000011", O::Lw, F::I),
    e("iiiiiiiiiiii rrrrr 110 rrrrr 0000011", O::Lwu, F::I),
    e("iiiiiiiiiiii rrrrr 100 rrrrr 0000011", O::Lbu, F::I),
    e("iiiiiiiiiiii rrrrr 000 rrrrr 0000011", O::Lb, F::I),
    e("iiiiiiiiiiii rrrrr 001 rrrrr 0000011", O::Lh, F::I),
    e("iiiiiiiiiiii rrrrr 101 rrrrr 0000011", O::Lhu, F::I),
    // LOAD-FP
    e("iiiiiiiiiiii rrrrr 010 rrrrr 0000111", O::Flw, F::I),
    e("iiiiiiiiiiii rrrrr 011 rrrrr 0000111", O::Fld, F::I),
    // MISC-MEM
    e("xxxxppppssss xxxxx 000 xxxxx 0001111", O::Fence, F::Fence),
    e("xxxxxxxxxxxx xxxxx 001 xxxxx 0001111", O::FenceI, F::None),
    // OP-IMM
    e("iiiiiiiiiiii rrrrr 000 rrrrr 0010011", O::Addi, F::I),
    e("000000 iiiiii rrrrr 001 rrrrr 0010011", O::Slli, F::Shamt6),
    e("iiiiiiiiiiii rrrrr 010 rrrrr 0010011", O::Slti, F::I),
    e("iiiiiiiiiiii rrrrr 011 rrrrr 0010011", O::Sltiu, F::I),
    e("iiiiiiiiiiii rrrrr 100 rrrrr 0010011", O::Xori, F::I),
    e("000000 iiiiii rrrrr 101 rrrrr 0010011", O::Srli, F::Shamt6),
    e("010000 iiiiii rrrrr 101 rrrrr 0010011", O::Srai, F::Shamt6),
    e("iiiiiiiiiiii rrrrr 110 rrrrr 0010011", O::Ori, F::I),
    e("iiiiiiiiiiii rrrrr 111 rrrrr 0010011", O::Andi, F::I),
    e("0110000 00000 rrrrr 001 rrrrr 0010011", O::Clz, F::R1),
    e("0110000 00001 rrrrr 001 rrrrr 0010011", O::Ctz, F::R1),
    e("0110000 00010 rrrrr 001 rrrrr 0010011", O::Cpop, F::R1),
    e("0110000 00100 rrrrr 001 rrrrr 0010011", O::SextB, F::R1),
    e("0110000 00101 rrrrr 001 rrrrr 0010011", O::SextH, F::R1),
    e("011000 iiiiii rrrrr 101 rrrrr 0010011", O::Rori, F::Shamt6),
    e("001010000111 rrrrr 101 rrrrr 0010011", O::OrcB, F::R1),
    e("011010111000 rrrrr 101 rrrrr 0010011", O::Rev8, F::R1),
    e("010010 iiiiii rrrrr 001 rrrrr 0010011", O::Bclri, F::Shamt6),
    e("010010 iiiiii rrrrr 101 rrrrr 0010011", O::Bexti, F::Shamt6),
    e("011010 iiiiii rrrrr 001 rrrrr 0010011", O::Binvi, F::Shamt6),
    e("001010 iiiiii rrrrr 001 rrrrr 0010011", O::Bseti, F::Shamt6),
    // AUIPC
    e("iiiiiiiiiiiiiiiiiiii rrrrr 0010111", O::Auipc, F::U),
    // OP-IMM-32
    e("iiiiiiiiiiii rrrrr 000 rrrrr 0011011", O::Addiw, F::I),
    e("0000000 iiiii rrrrr 001 rrrrr 0011011", O::Slliw, F::Shamt5),
    e("0000000 iiiii rrrrr 101 rrrrr 0011011", O::Srliw, F::Shamt5),
    e("0100000 iiiii rrrrr 101 rrrrr 0011011", O::Sraiw, F::Shamt5),
    e("000010 iiiiii rrrrr 001 rrrrr 0011011", O::SlliUw, F::Shamt6),
    e("0110000 00000 rrrrr 001 rrrrr 0011011", O::Clzw, F::R1),
    e("0110000 00001 rrrrr 001 rrrrr 0011011", O::Ctzw, F::R1),
    e("0110000 00010 rrrrr 001 rrrrr 0011011", O::Cpopw, F::R1),
    e("0110000 iiiii rrrrr 101 rrrrr 0011011", O::Roriw, F::Shamt5),
    // STORE
    e("iiiiiii rrrrr rrrrr 011 iiiii 0100011", O::Sd, F::S),
    e("iiiiiii rrrrr rrrrr 010 iiiii 0100011", O::Sw, F::S),
    e("iiiiiii rrrrr rrrrr 000 iiiii 0100011", O::Sb, F::S),
    e("iiiiiii rrrrr rrrrr 001 iiiii 0100011", O::Sh, F::S),
    // STORE-FP
    e("iiiiiii rrrrr rrrrr 010 iiiii 0100111", O::Fsw, F::S),
    e("iiiiiii rrrrr rrrrr 011 iiiii 0100111", O::Fsd, F::S),
    // AMO
    e("00010 aa 00000 rrrrr 010 rrrrr 0101111", O::LrW, F::Amo),
    e("00011 aa rrrrr rrrrr 010 rrrrr 0101111", O::ScW, F::Amo),
    e("00001 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmoswapW, F::Amo),
    e("00000 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmoaddW, F::Amo),
    e("00100 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmoxorW, F::Amo),
    e("01100 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmoandW, F::Amo),
    e("01000 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmoorW, F::Amo),
    e("10000 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmominW, F::Amo),
    e("10100 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmomaxW, F::Amo),
    e("11000 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmominuW, F::Amo),
    e("11100 aa rrrrr rrrrr 010 rrrrr 0101111", O::AmomaxuW, F::Amo),
    e("00010 aa 00000 rrrrr 011 rrrrr 0101111", O::LrD, F::Amo),
    e("00011 aa rrrrr rrrrr 011 rrrrr 0101111", O::ScD, F::Amo),
    e("00001 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmoswapD, F::Amo),
    e("00000 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmoaddD, F::Amo),
    e("00100 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmoxorD, F::Amo),
    e("01100 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmoandD, F::Amo),
    e("01000 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmoorD, F::Amo),
    e("10000 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmominD, F::Amo),
    e("10100 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmomaxD, F::Amo),
    e("11000 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmominuD, F::Amo),
    e("11100 aa rrrrr rrrrr 011 rrrrr 0101111", O::AmomaxuD, F::Amo),
    // OP
    e("0000000 rrrrr rrrrr 000 rrrrr 0110011", O::Add, F::R),
    e("0100000 rrrrr rrrrr 000 rrrrr 0110011", O::Sub, F::R),
    e("0000000 rrrrr rrrrr 001 rrrrr 0110011", O::Sll, F::R),
    e("0000000 rrrrr rrrrr 010 rrrrr 0110011", O::Slt, F::R),
    e("0000000 rrrrr rrrrr 011 rrrrr 0110011", O::Sltu, F::R),
    e("0000000 rrrrr rrrrr 100 rrrrr 0110011", O::Xor, F::R),
    e("0000000 rrrrr rrrrr 101 rrrrr 0110011", O::Srl, F::R),
    e("0100000 rrrrr rrrrr 101 rrrrr 0110011", O::Sra, F::R),
    e("0000000 rrrrr rrrrr 110 rrrrr 0110011", O::Or, F::R),
    e("0000000 rrrrr rrrrr 111 rrrrr 0110011", O::And, F::R),
    e("0000001 rrrrr rrrrr 000 rrrrr 0110011", O::Mul, F::R),
    e("0000001 rrrrr rrrrr 001 rrrrr 0110011", O::Mulh, F::R),
    e("0000001 rrrrr rrrrr 010 rrrrr 0110011", O::Mulhsu, F::R),
    e("0000001 rrrrr rrrrr 011 rrrrr 0110011", O::Mulhu, F::R),
    e("0000001 rrrrr rrrrr 100 rrrrr 0110011", O::Div, F::R),
    e("0000001 rrrrr rrrrr 101 rrrrr 0110011", O::Divu, F::R),
    e("0000001 rrrrr rrrrr 110 rrrrr 0110011", O::Rem, F::R),
    e("0000001 rrrrr rrrrr 111 rrrrr 0110011", O::Remu, F::R),
    e("0010000 rrrrr rrrrr 010 rrrrr 0110011", O::Sh1add, F::R),
    e("0010000 rrrrr rrrrr 100 rrrrr 0110011", O::Sh2add, F::R),
    e("0010000 rrrrr rrrrr 110 rrrrr 0110011", O::Sh3add, F::R),
    e("0100000 rrrrr rrrrr 111 rrrrr 0110011", O::Andn, F::R),
    e("0100000 rrrrr rrrrr 110 rrrrr 0110011", O::Orn, F::R),
    e("0100000 rrrrr rrrrr 100 rrrrr 0110011", O::Xnor, F::R),
    e("0000101 rrrrr rrrrr 110 rrrrr 0110011", O::Max, F::R),
    e("0000101 rrrrr rrrrr 111 rrrrr 0110011", O::Maxu, F::R),
    e("0000101 rrrrr rrrrr 100 rrrrr 0110011", O::Min, F::R),
    e("0000101 rrrrr rrrrr 101 rrrrr 0110011", O::Minu, F::R),
    e("0110000 rrrrr rrrrr 001 rrrrr 0110011", O::Rol, F::R),
    e("0110000 rrrrr rrrrr 101 rrrrr 0110011", O::Ror, F::R),
    e("0100100 rrrrr rrrrr 001 rrrrr 0110011", O::Bclr, F::R),
    e("0100100 rrrrr rrrrr 101 rrrrr 0110011", O::Bext, F::R),
    e("0110100 rrrrr rrrrr 001 rrrrr 0110011", O::Binv, F::R),
    e("0010100 rrrrr rrrrr 001 rrrrr 0110011", O::Bset, F::R),
    // LUI
    e("iiiiiiiiiiiiiiiiiiii rrrrr 0110111", O::Lui, F::U),
    // OP-32
    e("0000000 rrrrr rrrrr 000 rrrrr 0111011", O::Addw, F::R),
    e("0100000 rrrrr rrrrr 000 rrrrr 0111011", O::Subw, F::R),
    e("0000000 rrrrr rrrrr 001 rrrrr 0111011", O::Sllw, F::R),
    e("0000000 rrrrr rrrrr 101 rrrrr 0111011", O::Srlw, F::R),
    e("0100000 rrrrr rrrrr 101 rrrrr 0111011", O::Sraw, F::R),
    e("0000001 rrrrr rrrrr 000 rrrrr 0111011", O::Mulw, F::R),
    e("0000001 rrrrr rrrrr 100 rrrrr 0111011", O::Divw, F::R),
    e("0000001 rrrrr rrrrr 101 rrrrr 0111011", O::Divuw, F::R),
    e("0000001 rrrrr rrrrr 110 rrrrr 0111011", O::Remw, F::R),
    e("0000001 rrrrr rrrrr 111 rrrrr 0111011", O::Remuw, F::R),
    e("0000100 rrrrr rrrrr 000 rrrrr 0111011", O::AddUw, F::R),
    e("0010000 rrrrr rrrrr 010 rrrrr 0111011", O::Sh1addUw, F::R),
    e("0010000 rrrrr rrrrr 100 rrrrr 0111011", O::Sh2addUw, F::R),
    e("0010000 rrrrr rrrrr 110 rrrrr 0111011", O::Sh3addUw, F::R),
    e("0000100 00000 rrrrr 100 rrrrr 0111011", O::ZextH, F::R1),
    e("0110000 rrrrr rrrrr 001 rrrrr 0111011", O::Rolw, F::R),
    e("0110000 rrrrr rrrrr 101 rrrrr 0111011", O::Rorw, F::R),
    // MADD, MSUB, NMSUB, NMADD (fmt 00 = S, 01 = D)
    e("rrrrr 00 rrrrr rrrrr mmm rrrrr 1000011", O::FmaddS, F::R4),
    e("rrrrr 01 rrrrr rrrrr mmm rrrrr 1000011", O::FmaddD, F::R4),
    e("rrrrr 00 rrrrr rrrrr mmm rrrrr 1000111", O::FmsubS, F::R4),
    e("rrrrr 01 rrrrr rrrrr mmm rrrrr 1000111", O::FmsubD, F::R4),
    e("rrrrr 00 rrrrr rrrrr mmm rrrrr 1001011", O::FnmsubS, F::R4),
    e("rrrrr 01 rrrrr rrrrr mmm rrrrr 1001011", O::FnmsubD, F::R4),
    e("rrrrr 00 rrrrr rrrrr mmm rrrrr 1001111", O::FnmaddS, F::R4),
    e("rrrrr 01 rrrrr rrrrr mmm rrrrr 1001111", O::FnmaddD, F::R4),
    // OP-FP, single precision
    e("0000000 rrrrr rrrrr mmm rrrrr 1010011", O::FaddS, F::RRm),
    e("0000100 rrrrr rrrrr mmm rrrrr 1010011", O::FsubS, F::RRm),
    e("0001000 rrrrr rrrrr mmm rrrrr 1010011", O::FmulS, F::RRm),
    e("0001100 rrrrr rrrrr mmm rrrrr 1010011", O::FdivS, F::RRm),
    e("0101100 00000 rrrrr mmm rrrrr 1010011", O::FsqrtS, F::R1Rm),
    e("0010000 rrrrr rrrrr 000 rrrrr 1010011", O::FsgnjS, F::R),
    e("0010000 rrrrr rrrrr 001 rrrrr 1010011", O::FsgnjnS, F::R),
    e("0010000 rrrrr rrrrr 010 rrrrr 1010011", O::FsgnjxS, F::R),
    e("0010100 rrrrr rrrrr 000 rrrrr 1010011", O::FminS, F::R),
    e("0010100 rrrrr rrrrr 001 rrrrr 1010011", O::FmaxS, F::R),
    e("1100000 00000 rrrrr mmm rrrrr 1010011", O::FcvtWS, F::R1Rm),
    e("1100000 00001 rrrrr mmm rrrrr 1010011", O::FcvtWuS, F::R1Rm),
    e("1100000 00010 rrrrr mmm rrrrr 1010011", O::FcvtLS, F::R1Rm),
    e("1100000 00011 rrrrr mmm rrrrr 1010011", O::FcvtLuS, F::R1Rm),
    e("1101000 00000 rrrrr mmm rrrrr 1010011", O::FcvtSW, F::R1Rm),
    e("1101000 00001 rrrrr mmm rrrrr 1010011", O::FcvtSWu, F::R1Rm),
    e("1101000 00010 rrrrr mmm rrrrr 1010011", O::FcvtSL, F::R1Rm),
    e("1101000 00011 rrrrr mmm rrrrr 1010011", O::FcvtSLu, F::R1Rm),
    e("1110000 00000 rrrrr 000 rrrrr 1010011", O::FmvXW, F::R1),
    e("1111000 00000 rrrrr 000 rrrrr 1010011", O::FmvWX, F::R1),
    e("1010000 rrrrr rrrrr 010 rrrrr 1010011", O::FeqS, F::R),
    e("1010000 rrrrr rrrrr 001 rrrrr 1010011", O::FltS, F::R),
    e("1010000 rrrrr rrrrr 000 rrrrr 1010011", O::FleS, F::R),
    e("1110000 00000 rrrrr 001 rrrrr 1010011", O::FclassS, F::R1),
    // OP-FP, double precision
    e("0000001 rrrrr rrrrr mmm rrrrr 1010011", O::FaddD, F::RRm),
    e("0000101 rrrrr rrrrr mmm rrrrr 1010011", O::FsubD, F::RRm),
    e("0001001 rrrrr rrrrr mmm rrrrr 1010011", O::FmulD, F::RRm),
    e("0001101 rrrrr rrrrr mmm rrrrr 1010011", O::FdivD, F::RRm),
    e("0101101 00000 rrrrr mmm rrrrr 1010011", O::FsqrtD, F::R1Rm),
    e("0010001 rrrrr rrrrr 000 rrrrr 1010011", O::FsgnjD, F::R),
    e("0010001 rrrrr rrrrr 001 rrrrr 1010011", O::FsgnjnD, F::R),
    e("0010001 rrrrr rrrrr 010 rrrrr 1010011", O::FsgnjxD, F::R),
    e("0010101 rrrrr rrrrr 000 rrrrr 1010011", O::FminD, F::R),
    e("0010101 rrrrr rrrrr 001 rrrrr 1010011", O::FmaxD, F::R),
    e("0100000 00001 rrrrr mmm rrrrr 1010011", O::FcvtSD, F::R1Rm),
    e("0100001 00000 rrrrr mmm rrrrr 1010011", O::FcvtDS, F::R1Rm),
    e("1100001 00000 rrrrr mmm rrrrr 1010011", O::FcvtWD, F::R1Rm),
    e("1100001 00001 rrrrr mmm rrrrr 1010011", O::FcvtWuD, F::R1Rm),
    e("1100001 00010 rrrrr mmm rrrrr 1010011", O::FcvtLD, F::R1Rm),
    e("1100001 00011 rrrrr mmm rrrrr 1010011", O::FcvtLuD, F::R1Rm),
    e("1101001 00000 rrrrr mmm rrrrr 1010011", O::FcvtDW, F::R1Rm),
    e("1101001 00001 rrrrr mmm rrrrr 1010011", O::FcvtDWu, F::R1Rm),
    e("1101001 00010 rrrrr mmm rrrrr 1010011", O::FcvtDL, F::R1Rm),
    e("1101001 00011 rrrrr mmm rrrrr 1010011", O::FcvtDLu, F::R1Rm),
    e("1110001 00000 rrrrr 000 rrrrr 1010011", O::FmvXD, F::R1),
    e("1111001 00000 rrrrr 000 rrrrr 1010011", O::FmvDX, F::R1),
    e("1010001 rrrrr rrrrr 010 rrrrr 1010011", O::FeqD, F::R),
    e("1010001 rrrrr rrrrr 001 rrrrr 1010011", O::FltD, F::R),
    e("1010001 rrrrr rrrrr 000 rrrrr 1010011", O::FleD, F::R),
    e("1110001 00000 rrrrr 001 rrrrr 1010011", O::FclassD, F::R1),
    // BRANCH
    e("iiiiiii rrrrr rrrrr 000 iiiii 1100011", O::Beq, F::B),
    e("iiiiiii rrrrr rrrrr 001 iiiii 1100011", O::Bne, F::B),
    e("iiiiiii rrrrr rrrrr 100 iiiii 1100011", O::Blt, F::B),
    e("iiiiiii rrrrr rrrrr 101 iiiii 1100011", O::Bge, F::B),
    e("iiiiiii rrrrr rrrrr 110 iiiii 1100011", O::Bltu, F::B),
    e("iiiiiii rrrrr rrrrr 111 iiiii 1100011", O::Bgeu, F::B),
    // JALR
    e("iiiiiiiiiiii rrrrr 000 rrrrr 1100111", O::Jalr, F::I),
    // JAL
    e("iiiiiiiiiiiiiiiiiiii rrrrr 1101111", O::Jal, F::J),
    // SYSTEM
    e("000000000000 00000 000 00000 1110011", O::Ecall, F::None),
    e("000000000001 00000 000 00000 1110011", O::Ebreak, F::None),
    e("000100000010 00000 000 00000 1110011", O::Sret, F::None),
    e("001100000010 00000 000 00000 1110011", O::Mret, F::None),
    e("000100000101 00000 000 00000 1110011", O::Wfi, F::None),
    e("0001001 rrrrr rrrrr 000 00000 1110011", O::SfenceVma, F::R),
    e("cccccccccccc rrrrr 001 rrrrr 1110011", O::Csrrw, F::Csr),
    e("cccccccccccc rrrrr 010 rrrrr 1110011", O::Csrrs, F::Csr),
    e("cccccccccccc rrrrr 011 rrrrr 1110011", O::Csrrc, F::Csr),
    e("cccccccccccc iiiii 101 rrrrr 1110011", O::Csrrwi, F::CsrI),
    e("cccccccccccc iiiii 110 rrrrr 1110011", O::Csrrsi, F::CsrI),
    e("cccccccccccc iiiii 111 rrrrr 1110011", O::Csrrci, F::CsrI),
];

/// Bits that every row must fix: the length bits and the major opcode.
const MAJOR_MASK: u32 = 0x7f;

/// The second-level key of each major opcode: `(shift, width)` of the field that splits its
/// bucket. Width 0 means the major opcode alone is the key.
const SUBKEY: [(u32, u32); 32] = {
    let mut k = [(12, 3); 32]; // funct3
    k[0b00101] = (0, 0); // AUIPC
    k[0b01011] = (27, 5); // AMO: funct5
    k[0b01101] = (0, 0); // LUI
    k[0b10000] = (25, 2); // MADD: fmt
    k[0b10001] = (25, 2); // MSUB
    k[0b10010] = (25, 2); // NMSUB
    k[0b10011] = (25, 2); // NMADD
    k[0b10100] = (27, 5); // OP-FP: funct5
    k[0b11011] = (0, 0); // JAL
    k
};

/// Number of second-level slots per major opcode (the widest key is 5 bits).
const SLOTS: usize = 32;

/// The word bits that bucket `key` (= major * SLOTS + sub) fixes: `(mask, bits)`.
const fn key_pattern(key: usize) -> (u32, u32) {
    let major = (key / SLOTS) as u32;
    let sub = (key % SLOTS) as u32;
    let (shift, width) = SUBKEY[major as usize];
    let field = ((1u32 << width) - 1) << shift;
    (
        MAJOR_MASK | field,
        (major << 2) | 0b11 | ((sub << shift) & field),
    )
}

/// Whether some word in bucket `key` can match `entry`.
const fn in_bucket(entry: &Entry, key: usize) -> bool {
    let (kmask, kbits) = key_pattern(key);
    let sub = (key % SLOTS) as u32;
    let width = SUBKEY[key / SLOTS].1;
    // Slots beyond the key's width are never looked up; keep them empty.
    sub < (1 << width) && (entry.bits ^ kbits) & entry.mask & kmask == 0
}

/// Total rows once every row is copied into each bucket it can match.
const fn bucketed_len(table: &[Entry]) -> usize {
    let mut n = 0;
    let mut key = 0;
    while key < 32 * SLOTS {
        let mut i = 0;
        while i < table.len() {
            if in_bucket(&table[i], key) {
                n += 1;
            }
            i += 1;
        }
        key += 1;
    }
    n
}

const FLAT_LEN: usize = bucketed_len(TABLE);

/// The bucketed rows and, per key, `(start, end)` in them.
type Buckets = ([Entry; FLAT_LEN], [(u16, u16); 32 * SLOTS]);

const fn build() -> Buckets {
    let mut flat = [e("0000000 00000 00000 000 00000 0000000", O::Ecall, F::None); FLAT_LEN];
    let mut index = [(0u16, 0u16); 32 * SLOTS];
    let mut n = 0;
    let mut key = 0;
    while key < 32 * SLOTS {
        let start = n;
        let mut i = 0;
        while i < TABLE.len() {
            if in_bucket(&TABLE[i], key) {
                flat[n] = TABLE[i];
                n += 1;
            }
            i += 1;
        }
        index[key] = (start as u16, n as u16);
        key += 1;
    }
    (flat, index)
}

static BUCKETS: Buckets = build();

/// The rows that may match `raw` (any word with `raw & 3 == 3`).
#[inline]
fn bucket(raw: u32) -> &'static [Entry] {
    let major = ((raw >> 2) & 31) as usize;
    let (shift, width) = SUBKEY[major];
    let sub = ((raw >> shift) & ((1 << width) - 1)) as usize;
    let (start, end) = BUCKETS.1[major * SLOTS + sub];
    BUCKETS.0.get(start as usize..end as usize).unwrap_or(&[])
}

#[inline]
fn rd(raw: u32) -> u8 {
    ((raw >> 7) & 31) as u8
}
#[inline]
fn rs1(raw: u32) -> u8 {
    ((raw >> 15) & 31) as u8
}
#[inline]
fn rs2(raw: u32) -> u8 {
    ((raw >> 20) & 31) as u8
}
#[inline]
fn funct3(raw: u32) -> u8 {
    ((raw >> 12) & 7) as u8
}

/// Decodes a 32-bit instruction. Returns `None` for anything that is not a 32-bit encoding
/// (low two bits other than `0b11`, or a 48-bit-or-longer prefix) or is reserved or not
/// implemented by tern.
pub fn decode(raw: u32) -> Option<Insn> {
    if raw & 3 != 3 {
        return None;
    }
    let entry = bucket(raw).iter().find(|e| raw & e.mask == e.bits)?;
    let mut insn = Insn::new(entry.op, 4, raw);
    let sraw = raw as i32;
    match entry.format {
        Format::None => {}
        Format::R => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.rs2 = rs2(raw);
        }
        Format::RRm => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.rs2 = rs2(raw);
            insn.rm = funct3(raw);
        }
        Format::R1 => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
        }
        Format::R1Rm => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.rm = funct3(raw);
        }
        Format::R4 => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.rs2 = rs2(raw);
            insn.rs3 = (raw >> 27) as u8;
            insn.rm = funct3(raw);
        }
        Format::Amo => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.rs2 = rs2(raw);
            insn.rm = ((raw >> 25) & 3) as u8;
        }
        Format::I => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.imm = i64::from(sraw >> 20);
        }
        Format::Shamt6 => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.imm = i64::from((raw >> 20) & 63);
        }
        Format::Shamt5 => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.imm = i64::from((raw >> 20) & 31);
        }
        Format::S => {
            insn.rs1 = rs1(raw);
            insn.rs2 = rs2(raw);
            insn.imm = i64::from(((sraw >> 25) << 5) | ((sraw >> 7) & 31));
        }
        Format::B => {
            insn.rs1 = rs1(raw);
            insn.rs2 = rs2(raw);
            let imm = ((sraw >> 31) << 12)
                | (((sraw >> 7) & 1) << 11)
                | (((sraw >> 25) & 0x3f) << 5)
                | (((sraw >> 8) & 0xf) << 1);
            insn.imm = i64::from(imm);
        }
        Format::U => {
            insn.rd = rd(raw);
            insn.imm = i64::from(sraw & !0xfff);
        }
        Format::J => {
            insn.rd = rd(raw);
            let imm = ((sraw >> 31) << 20)
                | (sraw & 0xff000)
                | (((sraw >> 20) & 1) << 11)
                | (((sraw >> 21) & 0x3ff) << 1);
            insn.imm = i64::from(imm);
        }
        Format::Csr => {
            insn.rd = rd(raw);
            insn.rs1 = rs1(raw);
            insn.csr = (raw >> 20) as u16;
        }
        Format::CsrI => {
            insn.rd = rd(raw);
            insn.imm = i64::from(rs1(raw));
            insn.csr = (raw >> 20) as u16;
        }
        Format::Fence => {
            insn.imm = i64::from((raw >> 20) & 0xff);
        }
    }
    Some(insn)
}

/// Decodes the instruction at the start of `bytes` (little-endian), compressed or not.
/// Returns `None` if `bytes` is too short for the instruction's length or the encoding is
/// illegal.
pub fn decode_at(bytes: &[u8]) -> Option<Insn> {
    let lo = u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]);
    if lo & 3 != 3 {
        return super::compressed::decode_compressed(lo);
    }
    let hi = u16::from_le_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    decode(u32::from(lo) | (u32::from(hi) << 16))
}

/// Whether two patterns can match the same word.
#[cfg(test)]
pub(crate) const fn overlap(m1: u32, b1: u32, m2: u32, b2: u32) -> bool {
    (b1 ^ b2) & m1 & m2 == 0
}

/// Whether pattern 1 matches a subset of what pattern 2 matches.
#[cfg(test)]
pub(crate) const fn subset(m1: u32, b1: u32, m2: u32, b2: u32) -> bool {
    m1 & m2 == m2 && b1 & m2 == b2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(raw: u32) -> Insn {
        decode(raw).unwrap_or_else(|| panic!("{raw:#010x} should decode"))
    }

    #[test]
    fn every_row_fixes_the_length_bits_and_the_major_opcode() {
        for e in TABLE {
            assert_eq!(e.mask & MAJOR_MASK, MAJOR_MASK, "{:?}", e.op);
            assert_eq!(e.bits & 3, 3, "{:?}", e.op);
            assert_ne!(e.bits & 0x1c, 0x1c, "{:?} uses a 48-bit prefix", e.op);
        }
    }

    #[test]
    fn no_two_rows_match_the_same_word() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    !overlap(a.mask, a.bits, b.mask, b.bits),
                    "{:?} and {:?} overlap",
                    a.op,
                    b.op
                );
            }
        }
    }

    #[test]
    fn every_opcode_has_exactly_one_row() {
        for op in crate::riscv64::disasm::ALL_OPCODES {
            let n = TABLE.iter().filter(|e| e.op == *op).count();
            assert_eq!(n, 1, "{op:?}");
        }
        assert_eq!(TABLE.len(), crate::riscv64::disasm::ALL_OPCODES.len());
    }

    #[test]
    fn each_row_is_found_through_its_buckets() {
        // The word with every free bit zero and the word with every free bit one must both
        // decode to the row's opcode: checks the bucketing and the key table.
        for e in TABLE {
            for raw in [e.bits, e.bits | !e.mask] {
                assert_eq!(d(raw).op, e.op, "{raw:#010x}");
            }
        }
        let slots: usize = BUCKETS.1.iter().map(|(s, e)| usize::from(e - s)).sum();
        assert_eq!(slots, FLAT_LEN);
    }

    #[test]
    fn r_type_fields() {
        // add a0, a1, a2
        let i = d(0x00c5_8533);
        assert_eq!(
            (i.op, i.rd, i.rs1, i.rs2, i.imm, i.len),
            (O::Add, 10, 11, 12, 0, 4)
        );
        assert_eq!(i.raw, 0x00c5_8533);
        // sub t0, t1, t2
        assert_eq!(d(0x4073_02b3).op, O::Sub);
    }

    #[test]
    fn i_type_immediates_are_sign_extended() {
        // addi a0, a0, -1
        let i = d(0xfff5_0513);
        assert_eq!((i.op, i.rd, i.rs1, i.imm), (O::Addi, 10, 10, -1));
        // ld ra, 8(sp)
        let i = d(0x0081_3083);
        assert_eq!((i.op, i.rd, i.rs1, i.imm), (O::Ld, 1, 2, 8));
        // jalr zero, 0(ra)
        assert_eq!(d(0x0000_8067).op, O::Jalr);
    }

    #[test]
    fn s_type_immediate_is_split_and_signed() {
        // sd ra, -8(sp): imm = 0xff8 -> imm[11:5]=0x7f, imm[4:0]=0x18
        let i = d(0xfe11_3c23);
        assert_eq!((i.op, i.rs1, i.rs2, i.imm, i.rd), (O::Sd, 2, 1, -8, 0));
    }

    #[test]
    fn branch_offsets_are_bytes() {
        // beq a0, zero, -4
        let i = d(0xfe05_0ee3);
        assert_eq!((i.op, i.rs1, i.rs2, i.imm), (O::Beq, 10, 0, -4));
        // bne a0, a1, +4094 (largest)
        let i = d(0x7eb5_1fe3);
        assert_eq!((i.op, i.imm), (O::Bne, 4094));
        // blt with offset -4096 (smallest)
        let i = d(0x80b5_4063);
        assert_eq!((i.op, i.imm), (O::Blt, -4096));
    }

    #[test]
    fn jal_offsets_are_bytes() {
        // jal ra, +2048: imm[11] set only
        let i = d(0x0010_00ef);
        assert_eq!((i.op, i.rd, i.imm), (O::Jal, 1, 2048));
        // jal zero, -2 ** 20
        let i = d(0x8000_006f);
        assert_eq!(i.imm, -(1 << 20));
        // jal zero, 0x7fffe (imm[19:12] and imm[10:1])
        let i = d(0x7fff_f06f);
        assert_eq!(i.imm, (1 << 20) - 2);
    }

    #[test]
    fn u_type_immediate_is_shifted() {
        // lui a0, 0x12345
        let i = d(0x1234_5537);
        assert_eq!((i.op, i.rd, i.imm), (O::Lui, 10, 0x1234_5000));
        // auipc t0, 0xfffff -> negative
        let i = d(0xffff_f297);
        assert_eq!((i.op, i.rd, i.imm), (O::Auipc, 5, -4096));
    }

    #[test]
    fn shifts_take_six_bits_but_w_forms_only_five() {
        // slli a0, a0, 63
        let i = d(0x03f5_1513);
        assert_eq!((i.op, i.imm), (O::Slli, 63));
        // srai a0, a0, 33
        let i = d(0x4215_5513);
        assert_eq!((i.op, i.imm), (O::Srai, 33));
        // slliw a0, a0, 31 decodes; with shamt[5] set it is reserved
        assert_eq!(d(0x01f5_151b).imm, 31);
        assert_eq!(decode(0x0215_151b), None);
        assert_eq!(decode(0x0215_551b), None, "srliw shamt[5]");
        assert_eq!(decode(0x4215_551b), None, "sraiw shamt[5]");
        // roriw shamt[5] is reserved too
        assert_eq!(decode(0x6215_551b), None);
    }

    #[test]
    fn csr_fields() {
        // csrrw a0, mstatus (0x300), a1
        let i = d(0x3005_9573);
        assert_eq!((i.op, i.rd, i.rs1, i.csr), (O::Csrrw, 10, 11, 0x300));
        // csrrsi zero, fflags (1), 31: uimm in imm, rs1 zero
        let i = d(0x001f_e073);
        assert_eq!((i.op, i.rd, i.rs1, i.imm, i.csr), (O::Csrrsi, 0, 0, 31, 1));
        // funct3 100 in SYSTEM is not ours
        assert_eq!(decode(0x3005_c573), None);
    }

    #[test]
    fn fence_keeps_pred_succ_and_ignores_fm_rs1_rd() {
        // fence rw, w
        let i = d(0x0310_000f);
        assert_eq!((i.op, i.imm), (O::Fence, 0x31));
        // fence.tso (fm = 1000, pred = succ = rw)
        let i = d(0x8330_000f);
        assert_eq!((i.op, i.imm), (O::Fence, 0x33));
        // nonzero rs1 and rd are ignored
        assert_eq!(d(0x0ff5_050f).imm, 0xff);
        // fence.i ignores its fields
        assert_eq!(d(0x0000_100f).op, O::FenceI);
        assert_eq!(d(0x1235_150f).op, O::FenceI);
        // MISC-MEM funct3 010 (cbo.*) is not ours
        assert_eq!(decode(0x0000_200f), None);
    }

    #[test]
    fn amo_ordering_bits() {
        // amoadd.d.aqrl a0, a2, (a1)
        let i = d(0x06c5_b52f);
        assert_eq!(
            (i.op, i.rd, i.rs1, i.rs2, i.rm),
            (O::AmoaddD, 10, 11, 12, 3)
        );
        // lr.w.aq a0, (a1)
        let i = d(0x1405_a52f);
        assert_eq!((i.op, i.rs1, i.rs2, i.rm), (O::LrW, 11, 0, 2));
        // lr.w with rs2 != 0 is reserved
        assert_eq!(decode(0x1415_a52f), None);
        // AMO with funct3 000 (no such width here)
        assert_eq!(decode(0x06c5_852f), None);
    }

    #[test]
    fn fp_rounding_modes_and_reserved_formats() {
        // fadd.d fa0, fa1, fa2, rtz (rm = 1)
        let i = d(0x02c5_9553);
        assert_eq!((i.op, i.rd, i.rs1, i.rs2, i.rm), (O::FaddD, 10, 11, 12, 1));
        // rm = 5 and 6 decode (the translator raises), rm = 7 is dynamic
        assert_eq!(d(0x02c5_d553).rm, 5);
        assert_eq!(d(0x02c5_e553).rm, 6);
        assert_eq!(d(0x02c5_f553).rm, 7);
        // fmt = 10 (half) and 11 (quad) are not implemented
        assert_eq!(decode(0x04c5_f553), None);
        assert_eq!(decode(0x06c5_f553), None);
        // fmadd.s fa0, fa1, fa2, fa3: rs3 in bits 31..27
        let i = d(0x68c5_f543);
        assert_eq!(
            (i.op, i.rs3, i.rs2, i.rs1, i.rd, i.rm),
            (O::FmaddS, 13, 12, 11, 10, 7)
        );
        // fmadd.h (fmt = 10)
        assert_eq!(decode(0x6cc5_f543), None);
        // fsgnj.d with funct3 011 is reserved
        assert_eq!(decode(0x22c5_b553), None);
        // fsqrt.d with rs2 != 0 is reserved
        assert_eq!(decode(0x5a15_f553), None);
    }

    #[test]
    fn privileged() {
        assert_eq!(d(0x1020_0073).op, O::Sret);
        assert_eq!(d(0x3020_0073).op, O::Mret);
        assert_eq!(d(0x1050_0073).op, O::Wfi);
        let i = d(0x12b5_0073);
        assert_eq!((i.op, i.rs1, i.rs2, i.rd), (O::SfenceVma, 10, 11, 0));
        // ecall with any nonzero field is reserved
        assert_eq!(decode(0x0000_0473), None);
        assert_eq!(d(0x0000_0073).op, O::Ecall);
        assert_eq!(d(0x0010_0073).op, O::Ebreak);
    }

    #[test]
    fn non_32_bit_encodings_are_rejected() {
        assert_eq!(decode(0x0000_0000), None);
        assert_eq!(decode(0x0000_0001), None);
        assert_eq!(decode(0x0000_001f), None, "48-bit prefix");
        assert_eq!(decode(0x0000_003f), None, "64-bit prefix");
        assert_eq!(decode(0x0000_007f), None, "longer prefix");
        assert_eq!(decode(0xffff_ffff), None);
    }

    #[test]
    fn decode_at_reads_little_endian_and_needs_enough_bytes() {
        assert_eq!(
            decode_at(&[0x33, 0x85, 0xc5, 0x00]).map(|i| i.op),
            Some(O::Add)
        );
        assert_eq!(decode_at(&[0x33, 0x85, 0xc5]), None);
        assert_eq!(decode_at(&[0x05]), None);
        // c.addi a0, 1 = 0x0505
        let i = decode_at(&[0x05, 0x05]).unwrap();
        assert_eq!((i.op, i.len, i.imm), (O::Addi, 2, 1));
    }
}
