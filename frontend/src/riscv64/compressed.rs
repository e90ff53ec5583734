//! Table-driven decoder for the 16-bit RV64C instructions (including the double-precision
//! loads and stores `c.fld`, `c.fsd`, `c.fldsp`, `c.fsdsp`), expanded to the base instruction
//! they stand for, with `len == 2` and the 16-bit encoding in `raw`.
//!
//! Rows are bucketed by quadrant (bits 1..0) and funct3 (bits 15..13), at compile time. Unlike
//! the 32-bit table, a few rows overlap on purpose, as in the manual's own tables: a more
//! specific row comes first and wins (`c.ebreak` before `c.jalr` before `c.add`, `c.jr`
//! before `c.mv`, `c.addi16sp` before `c.lui`); the unit tests check that every overlap is of
//! this kind. Conditions a bit pattern cannot express (an immediate or register that must not
//! be zero) are checked by the expansion, which returns `None` for the reserved encodings:
//! `c.addi4spn` with `nzuimm = 0` (which includes the all-zero word), `c.addiw` with `rd = 0`,
//! `c.lui`/`c.addi16sp` with a zero immediate, `c.lwsp`/`c.ldsp` with `rd = 0` and `c.jr`
//! with `rs1 = 0`. HINTs (`c.nop` with an immediate, `c.addi` with a zero immediate, `c.li`,
//! `c.lui`, `c.mv`, `c.add`, `c.slli` with `rd = 0`, shifts by zero) expand like any other
//! encoding. Quadrant 0 funct3 100 and `c.subw`/`c.addw`'s two neighbours (Zcb in newer
//! specs) are reserved here and return `None`.

use super::decode::pattern;
use super::insn::{Insn, Opcode};

/// How a compressed row expands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Addi4spn,
    Fld,
    Lw,
    Ld,
    Fsd,
    Sw,
    Sd,
    Addi,
    Addiw,
    Li,
    Addi16sp,
    Lui,
    Srli,
    Srai,
    Andi,
    Sub,
    Xor,
    Or,
    And,
    Subw,
    Addw,
    J,
    Beqz,
    Bnez,
    Slli,
    Fldsp,
    Lwsp,
    Ldsp,
    Jr,
    Mv,
    Ebreak,
    Jalr,
    Add,
    Fsdsp,
    Swsp,
    Sdsp,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mask: u16,
    bits: u16,
    kind: Kind,
}

const fn c(pat: &str, kind: Kind) -> Entry {
    let (mask, bits) = pattern(pat, 16);
    Entry {
        mask: mask as u16,
        bits: bits as u16,
        kind,
    }
}

use Kind as K;

/// The compressed table, in the manual's order (quadrant, then funct3). Free-bit letters:
/// `r` a full register, `p` a 3-bit "prime" register (x8..x15), `i` an immediate.
#[rustfmt::skip]
const TABLE: &[Entry] = &[
    // Quadrant 0
    c("000 iiiiiiii ppp 00", K::Addi4spn),
    c("001 iii ppp ii ppp 00", K::Fld),
    c("010 iii ppp ii ppp 00", K::Lw),
    c("011 iii ppp ii ppp 00", K::Ld),
    c("101 iii ppp ii ppp 00", K::Fsd),
    c("110 iii ppp ii ppp 00", K::Sw),
    c("111 iii ppp ii ppp 00", K::Sd),
    // Quadrant 1
    c("000 i rrrrr iiiii 01", K::Addi),
    c("001 i rrrrr iiiii 01", K::Addiw),
    c("010 i rrrrr iiiii 01", K::Li),
    c("011 i 00010 iiiii 01", K::Addi16sp),
    c("011 i rrrrr iiiii 01", K::Lui),
    c("100 i 00 ppp iiiii 01", K::Srli),
    c("100 i 01 ppp iiiii 01", K::Srai),
    c("100 i 10 ppp iiiii 01", K::Andi),
    c("100 0 11 ppp 00 ppp 01", K::Sub),
    c("100 0 11 ppp 01 ppp 01", K::Xor),
    c("100 0 11 ppp 10 ppp 01", K::Or),
    c("100 0 11 ppp 11 ppp 01", K::And),
    c("100 1 11 ppp 00 ppp 01", K::Subw),
    c("100 1 11 ppp 01 ppp 01", K::Addw),
    c("101 iiiiiiiiiii 01", K::J),
    c("110 iii ppp iiiii 01", K::Beqz),
    c("111 iii ppp iiiii 01", K::Bnez),
    // Quadrant 2
    c("000 i rrrrr iiiii 10", K::Slli),
    c("001 i rrrrr iiiii 10", K::Fldsp),
    c("010 i rrrrr iiiii 10", K::Lwsp),
    c("011 i rrrrr iiiii 10", K::Ldsp),
    c("100 0 rrrrr 00000 10", K::Jr),
    c("100 0 rrrrr rrrrr 10", K::Mv),
    c("100 1 00000 00000 10", K::Ebreak),
    c("100 1 rrrrr 00000 10", K::Jalr),
    c("100 1 rrrrr rrrrr 10", K::Add),
    c("101 iiiiii rrrrr 10", K::Fsdsp),
    c("110 iiiiii rrrrr 10", K::Swsp),
    c("111 iiiiii rrrrr 10", K::Sdsp),
];

/// Buckets: quadrant (0..3) * 8 + funct3.
const NKEYS: usize = 24;

const fn in_bucket(entry: &Entry, key: usize) -> bool {
    let kbits = ((key / 8) as u16) | (((key % 8) as u16) << 13);
    (entry.bits ^ kbits) & entry.mask & 0xe003 == 0
}

const fn bucketed_len() -> usize {
    let mut n = 0;
    let mut key = 0;
    while key < NKEYS {
        let mut i = 0;
        while i < TABLE.len() {
            if in_bucket(&TABLE[i], key) {
                n += 1;
            }
            i += 1;
        }
        key += 1;
    }
    n
}

const FLAT_LEN: usize = bucketed_len();

type Buckets = ([Entry; FLAT_LEN], [(u8, u8); NKEYS]);

const fn build() -> Buckets {
    let mut flat = [c("0000000000000000", K::Addi4spn); FLAT_LEN];
    let mut index = [(0u8, 0u8); NKEYS];
    let mut n = 0;
    let mut key = 0;
    while key < NKEYS {
        let start = n;
        let mut i = 0;
        while i < TABLE.len() {
            if in_bucket(&TABLE[i], key) {
                flat[n] = TABLE[i];
                n += 1;
            }
            i += 1;
        }
        index[key] = (start as u8, n as u8);
        key += 1;
    }
    (flat, index)
}

static BUCKETS: Buckets = build();

/// Bits `hi..=lo` of `raw`, shifted to `at`.
#[inline]
fn bits(raw: u16, hi: u32, lo: u32, at: u32) -> u32 {
    ((u32::from(raw) >> lo) & ((1 << (hi - lo + 1)) - 1)) << at
}

/// Sign-extends the low `width` bits of `v`.
#[inline]
fn sext(v: u32, width: u32) -> i64 {
    let shift = 32 - width;
    i64::from(((v << shift) as i32) >> shift)
}

/// Full register field, bits 11..7.
#[inline]
fn r_hi(raw: u16) -> u8 {
    ((raw >> 7) & 31) as u8
}
/// Full register field, bits 6..2.
#[inline]
fn r_lo(raw: u16) -> u8 {
    ((raw >> 2) & 31) as u8
}
/// Prime register field at bits 9..7.
#[inline]
fn p_hi(raw: u16) -> u8 {
    8 + ((raw >> 7) & 7) as u8
}
/// Prime register field at bits 4..2.
#[inline]
fn p_lo(raw: u16) -> u8 {
    8 + ((raw >> 2) & 7) as u8
}

/// The 6-bit CI immediate: imm[5] at bit 12, imm[4:0] at bits 6..2.
#[inline]
fn ci_imm(raw: u16) -> u32 {
    bits(raw, 12, 12, 5) | bits(raw, 6, 2, 0)
}

fn insn(op: Opcode, raw: u16, rd: u8, rs1: u8, rs2: u8, imm: i64) -> Insn {
    let mut i = Insn::new(op, 2, u32::from(raw));
    i.rd = rd;
    i.rs1 = rs1;
    i.rs2 = rs2;
    i.imm = imm;
    i
}

fn expand(kind: Kind, raw: u16) -> Option<Insn> {
    use Opcode as O;
    // Offsets of the register-relative loads and stores.
    let cl_w = || i64::from(bits(raw, 12, 10, 3) | bits(raw, 6, 6, 2) | bits(raw, 5, 5, 6));
    let cl_d = || i64::from(bits(raw, 12, 10, 3) | bits(raw, 6, 5, 6));
    // Offsets of the stack-pointer-relative ones.
    let lwsp = || i64::from(bits(raw, 12, 12, 5) | bits(raw, 6, 4, 2) | bits(raw, 3, 2, 6));
    let ldsp = || i64::from(bits(raw, 12, 12, 5) | bits(raw, 6, 5, 3) | bits(raw, 4, 2, 6));
    let swsp = || i64::from(bits(raw, 12, 9, 2) | bits(raw, 8, 7, 6));
    let sdsp = || i64::from(bits(raw, 12, 10, 3) | bits(raw, 9, 7, 6));
    let cb_off = || {
        let v = bits(raw, 12, 12, 8)
            | bits(raw, 11, 10, 3)
            | bits(raw, 6, 5, 6)
            | bits(raw, 4, 3, 1)
            | bits(raw, 2, 2, 5);
        sext(v, 9)
    };
    let rd = r_hi(raw);
    let rs2 = r_lo(raw);
    let prd = p_hi(raw);
    Some(match kind {
        K::Addi4spn => {
            let imm = bits(raw, 12, 11, 4)
                | bits(raw, 10, 7, 6)
                | bits(raw, 6, 6, 2)
                | bits(raw, 5, 5, 3);
            if imm == 0 {
                return None;
            }
            insn(O::Addi, raw, p_lo(raw), 2, 0, i64::from(imm))
        }
        K::Fld => insn(O::Fld, raw, p_lo(raw), prd, 0, cl_d()),
        K::Lw => insn(O::Lw, raw, p_lo(raw), prd, 0, cl_w()),
        K::Ld => insn(O::Ld, raw, p_lo(raw), prd, 0, cl_d()),
        K::Fsd => insn(O::Fsd, raw, 0, prd, p_lo(raw), cl_d()),
        K::Sw => insn(O::Sw, raw, 0, prd, p_lo(raw), cl_w()),
        K::Sd => insn(O::Sd, raw, 0, prd, p_lo(raw), cl_d()),
        K::Addi => insn(O::Addi, raw, rd, rd, 0, sext(ci_imm(raw), 6)),
        K::Addiw => {
            if rd == 0 {
                return None;
            }
            insn(O::Addiw, raw, rd, rd, 0, sext(ci_imm(raw), 6))
        }
        K::Li => insn(O::Addi, raw, rd, 0, 0, sext(ci_imm(raw), 6)),
        K::Addi16sp => {
            let v = bits(raw, 12, 12, 9)
                | bits(raw, 6, 6, 4)
                | bits(raw, 5, 5, 6)
                | bits(raw, 4, 3, 7)
                | bits(raw, 2, 2, 5);
            if v == 0 {
                return None;
            }
            insn(O::Addi, raw, 2, 2, 0, sext(v, 10))
        }
        K::Lui => {
            let v = ci_imm(raw);
            if v == 0 {
                return None;
            }
            insn(O::Lui, raw, rd, 0, 0, sext(v << 12, 18))
        }
        K::Srli => insn(O::Srli, raw, prd, prd, 0, i64::from(ci_imm(raw))),
        K::Srai => insn(O::Srai, raw, prd, prd, 0, i64::from(ci_imm(raw))),
        K::Andi => insn(O::Andi, raw, prd, prd, 0, sext(ci_imm(raw), 6)),
        K::Sub => insn(O::Sub, raw, prd, prd, p_lo(raw), 0),
        K::Xor => insn(O::Xor, raw, prd, prd, p_lo(raw), 0),
        K::Or => insn(O::Or, raw, prd, prd, p_lo(raw), 0),
        K::And => insn(O::And, raw, prd, prd, p_lo(raw), 0),
        K::Subw => insn(O::Subw, raw, prd, prd, p_lo(raw), 0),
        K::Addw => insn(O::Addw, raw, prd, prd, p_lo(raw), 0),
        K::J => {
            let v = bits(raw, 12, 12, 11)
                | bits(raw, 11, 11, 4)
                | bits(raw, 10, 9, 8)
                | bits(raw, 8, 8, 10)
                | bits(raw, 7, 7, 6)
                | bits(raw, 6, 6, 7)
                | bits(raw, 5, 3, 1)
                | bits(raw, 2, 2, 5);
            insn(O::Jal, raw, 0, 0, 0, sext(v, 12))
        }
        K::Beqz => insn(O::Beq, raw, 0, prd, 0, cb_off()),
        K::Bnez => insn(O::Bne, raw, 0, prd, 0, cb_off()),
        K::Slli => insn(O::Slli, raw, rd, rd, 0, i64::from(ci_imm(raw))),
        K::Fldsp => insn(O::Fld, raw, rd, 2, 0, ldsp()),
        K::Lwsp | K::Ldsp if rd == 0 => return None,
        K::Lwsp => insn(O::Lw, raw, rd, 2, 0, lwsp()),
        K::Ldsp => insn(O::Ld, raw, rd, 2, 0, ldsp()),
        K::Jr => {
            if rd == 0 {
                return None;
            }
            insn(O::Jalr, raw, 0, rd, 0, 0)
        }
        K::Mv => insn(O::Add, raw, rd, 0, rs2, 0),
        K::Ebreak => insn(O::Ebreak, raw, 0, 0, 0, 0),
        K::Jalr => insn(O::Jalr, raw, 1, rd, 0, 0),
        K::Add => insn(O::Add, raw, rd, rd, rs2, 0),
        K::Fsdsp => insn(O::Fsd, raw, 0, 2, rs2, sdsp()),
        K::Swsp => insn(O::Sw, raw, 0, 2, rs2, swsp()),
        K::Sdsp => insn(O::Sd, raw, 0, 2, rs2, sdsp()),
    })
}

/// Decodes a 16-bit compressed instruction into the base instruction it expands to (`len`
/// 2, `raw` the 16-bit word). Returns `None` for words that are not compressed (low bits
/// `0b11`) and for reserved encodings.
pub fn decode_compressed(raw: u16) -> Option<Insn> {
    let key = usize::from(raw & 3) * 8 + usize::from(raw >> 13);
    let (start, end) = *BUCKETS.1.get(key)?;
    let rows = BUCKETS.0.get(usize::from(start)..usize::from(end))?;
    let row = rows.iter().find(|e| raw & e.mask == e.bits)?;
    expand(row.kind, raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::riscv64::decode::{overlap, subset};
    use Opcode as O;

    fn d(raw: u16) -> Insn {
        decode_compressed(raw).unwrap_or_else(|| panic!("{raw:#06x} should decode"))
    }

    fn fields(i: Insn) -> (Opcode, u8, u8, u8, i64) {
        assert_eq!(i.len, 2);
        (i.op, i.rd, i.rs1, i.rs2, i.imm)
    }

    #[test]
    fn overlapping_rows_are_specialisations_listed_first() {
        for (i, a) in TABLE.iter().enumerate() {
            assert_ne!(a.bits & 3, 3, "{:?}", a.kind);
            assert_eq!(a.mask & 0xe003, 0xe003, "{:?}", a.kind);
            for b in &TABLE[i + 1..] {
                let (am, ab) = (u32::from(a.mask), u32::from(a.bits));
                let (bm, bb) = (u32::from(b.mask), u32::from(b.bits));
                if overlap(am, ab, bm, bb) {
                    assert!(
                        subset(am, ab, bm, bb) && am != bm,
                        "{:?} overlaps {:?} without being a special case of it",
                        a.kind,
                        b.kind
                    );
                }
            }
        }
    }

    #[test]
    fn every_row_is_reachable() {
        // With every free bit set, no row is shadowed by a special case listed before it.
        for row in TABLE {
            let raw = row.bits | !row.mask;
            let key = usize::from(raw & 3) * 8 + usize::from(raw >> 13);
            let (s, e) = BUCKETS.1[key];
            let found = BUCKETS.0[usize::from(s)..usize::from(e)]
                .iter()
                .find(|r| raw & r.mask == r.bits)
                .unwrap();
            assert_eq!(found.kind, row.kind);
        }
    }

    #[test]
    fn quadrant0() {
        // c.addi4spn s0, sp, 1020 (nzuimm all ones)
        assert_eq!(fields(d(0x1fe0)), (O::Addi, 8, 2, 0, 1020));
        // nzuimm = 0 is reserved, whatever rd'
        assert_eq!(decode_compressed(0x0000), None);
        assert_eq!(decode_compressed(0x001c), None);
        // c.lw a0, 124(a1): uimm[5:3]=111 uimm[2]=1 uimm[6]=1
        assert_eq!(fields(d(0x5de8)), (O::Lw, 10, 11, 0, 124));
        // c.ld a0, 248(a1)
        assert_eq!(fields(d(0x7de8)), (O::Ld, 10, 11, 0, 248));
        // c.fld fa0, 8(a1)
        assert_eq!(fields(d(0x2588)), (O::Fld, 10, 11, 0, 8));
        // c.sd a0, 248(a1)
        assert_eq!(fields(d(0xfde8)), (O::Sd, 0, 11, 10, 248));
        // c.sw a0, 4(a1)
        assert_eq!(fields(d(0xc1c8)), (O::Sw, 0, 11, 10, 4));
        // c.fsd fa0, 0(a1)
        assert_eq!(fields(d(0xa188)), (O::Fsd, 0, 11, 10, 0));
        // funct3 100 of quadrant 0 is reserved
        assert_eq!(decode_compressed(0x8000 | 0x1fe0), None);
    }

    #[test]
    fn quadrant1() {
        // c.nop and c.addi a0, -1
        assert_eq!(fields(d(0x0001)), (O::Addi, 0, 0, 0, 0));
        assert_eq!(fields(d(0x157d)), (O::Addi, 10, 10, 0, -1));
        // c.addiw a0, 1; rd = 0 reserved
        assert_eq!(fields(d(0x2505)), (O::Addiw, 10, 10, 0, 1));
        assert_eq!(decode_compressed(0x2005), None);
        // c.li a0, -32
        assert_eq!(fields(d(0x5501)), (O::Addi, 10, 0, 0, -32));
        // c.addi16sp sp, -512 / 496; zero reserved
        assert_eq!(fields(d(0x7101)), (O::Addi, 2, 2, 0, -512));
        assert_eq!(fields(d(0x617d)), (O::Addi, 2, 2, 0, 496));
        assert_eq!(decode_compressed(0x6101), None);
        // c.lui a0, 0xfffe1 -> -0x1f000; c.lui a0, 1; zero reserved
        assert_eq!(fields(d(0x7505)), (O::Lui, 10, 0, 0, -0x1f000));
        assert_eq!(fields(d(0x6505)), (O::Lui, 10, 0, 0, 0x1000));
        assert_eq!(decode_compressed(0x6501), None);
        // c.srli a0, 63; c.srai a1, 1; c.andi a0, -1
        assert_eq!(fields(d(0x917d)), (O::Srli, 10, 10, 0, 63));
        assert_eq!(fields(d(0x8585)), (O::Srai, 11, 11, 0, 1));
        assert_eq!(fields(d(0x997d)), (O::Andi, 10, 10, 0, -1));
        // c.sub a0, a1; c.and; c.subw; c.addw
        assert_eq!(fields(d(0x8d0d)), (O::Sub, 10, 10, 11, 0));
        assert_eq!(fields(d(0x8d6d)), (O::And, 10, 10, 11, 0));
        assert_eq!(fields(d(0x9d0d)), (O::Subw, 10, 10, 11, 0));
        assert_eq!(fields(d(0x9d2d)), (O::Addw, 10, 10, 11, 0));
        // funct 100 1 11 .. 10/11 reserved
        assert_eq!(decode_compressed(0x9d4d), None);
        assert_eq!(decode_compressed(0x9d6d), None);
        // c.j -2; c.j +2046
        assert_eq!(fields(d(0xbffd)), (O::Jal, 0, 0, 0, -2));
        assert_eq!(fields(d(0xaffd)), (O::Jal, 0, 0, 0, 2046));
        // c.beqz a0, -256; c.bnez a0, +254
        assert_eq!(fields(d(0xd101)), (O::Beq, 0, 10, 0, -256));
        assert_eq!(fields(d(0xed7d)), (O::Bne, 0, 10, 0, 254));
    }

    #[test]
    fn quadrant2() {
        // c.slli a0, 63; c.slli zero, 1 is a HINT and decodes
        assert_eq!(fields(d(0x157e)), (O::Slli, 10, 10, 0, 63));
        assert_eq!(fields(d(0x0006)), (O::Slli, 0, 0, 0, 1));
        // c.lwsp a0, 252(sp); c.ldsp ra, 504(sp); rd = 0 reserved
        assert_eq!(fields(d(0x557e)), (O::Lw, 10, 2, 0, 252));
        assert_eq!(fields(d(0x70fe)), (O::Ld, 1, 2, 0, 504));
        assert_eq!(decode_compressed(0x407e), None);
        assert_eq!(decode_compressed(0x607e), None);
        // c.fldsp f0, 0(sp) is fine
        assert_eq!(fields(d(0x2002)), (O::Fld, 0, 2, 0, 0));
        // c.jr ra; c.jr zero reserved; c.mv a0, a1; c.mv zero, a1 HINT
        assert_eq!(fields(d(0x8082)), (O::Jalr, 0, 1, 0, 0));
        assert_eq!(decode_compressed(0x8002), None);
        assert_eq!(fields(d(0x852e)), (O::Add, 10, 0, 11, 0));
        assert_eq!(fields(d(0x802e)), (O::Add, 0, 0, 11, 0));
        // c.ebreak; c.jalr a0; c.add a0, a1
        assert_eq!(fields(d(0x9002)), (O::Ebreak, 0, 0, 0, 0));
        assert_eq!(fields(d(0x9502)), (O::Jalr, 1, 10, 0, 0));
        assert_eq!(fields(d(0x952e)), (O::Add, 10, 10, 11, 0));
        // c.swsp a0, 252(sp); c.sdsp ra, 504(sp); c.fsdsp fa0, 8(sp)
        assert_eq!(fields(d(0xdfaa)), (O::Sw, 0, 2, 10, 252));
        assert_eq!(fields(d(0xffe6)), (O::Sd, 0, 2, 25, 504));
        assert_eq!(fields(d(0xa42a)), (O::Fsd, 0, 2, 10, 8));
    }

    #[test]
    fn thirty_two_bit_words_are_not_compressed() {
        assert_eq!(decode_compressed(0x0003), None);
        assert_eq!(decode_compressed(0xffff), None);
    }
}
