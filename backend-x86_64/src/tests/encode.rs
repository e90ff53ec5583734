//! The hand encoder against an oracle: for every register (and base/index/displacement
//! combination) the bytes of `emit::asm` must disassemble (iced-x86) to the same instruction as
//! dynasm's encoding of it, and must never be longer.

// dynasm! expands dynamic register operands to same-type `.into()` conversions.
#![allow(clippy::useless_conversion)]

use dynasmrt::{dynasm, DynasmApi, VecAssembler};
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, NasmFormatter};
use ir::{MemOp, Size};

use crate::emit::asm::{self, mem, mem_idx, Alu, Asm, Mem, Sh, NOREG};
use crate::regs::*;

type Dyn = VecAssembler<dynasmrt::x64::X64Relocation>;

fn text(code: &[u8]) -> String {
    let mut dec = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut fmt = NasmFormatter::new();
    let mut out = String::new();
    let mut ins = Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        fmt.format(&ins, &mut out);
        out.push_str("; ");
    }
    out
}

/// Encodes with both, compares.
fn same(what: &str, mine: impl FnOnce(&mut Asm), oracle: impl FnOnce(&mut Dyn)) {
    let mut a = Asm::new(0);
    mine(&mut a);
    let mut d = Dyn::new(0);
    oracle(&mut d);
    let theirs = d.finalize().unwrap();
    assert_eq!(
        text(&a.buf),
        text(&theirs),
        "{what}: mine {:02x?} oracle {:02x?}",
        a.buf,
        theirs
    );
    assert!(a.buf.len() <= theirs.len(), "{what}: longer than dynasm's");
}

const DISPS: [i32; 6] = [0, 8, -128, 127, 128, -0x1000];

fn mems() -> Vec<Mem> {
    let mut v = Vec::new();
    for base in 0..16u8 {
        for &disp in &DISPS {
            v.push(mem(base, disp));
        }
        for index in [RAX, RBP, R12, R13, R11] {
            v.push(mem_idx(base, index, 0));
            v.push(mem_idx(base, index, 24));
        }
    }
    v
}

fn dyn_load(d: &mut Dyn, kind: u8, r: u8, m: Mem) {
    let (b, disp) = (m.base, m.disp);
    macro_rules! m {
        ($($t:tt)*) => {
            if m.index == NOREG {
                dynasm!(d ; .arch x64 ; $($t)* [Rq(b) + disp])
            } else {
                let i = m.index;
                dynasm!(d ; .arch x64 ; $($t)* [Rq(b) + Rq(i) + disp])
            }
        };
    }
    match kind {
        0 => m!(mov Rq(r), QWORD),
        1 => m!(mov Rd(r), DWORD),
        2 => m!(movzx Rd(r), BYTE),
        3 => m!(movsx Rq(r), WORD),
        4 => m!(movsxd Rq(r), DWORD),
        5 => m!(lea Rq(r),),
        _ => m!(add Rq(r), QWORD),
    }
}

#[test]
fn memory_operands_match_the_oracle() {
    let mops = [
        MemOp::unsigned(Size::B64),
        MemOp::unsigned(Size::B32),
        MemOp::unsigned(Size::B8),
        MemOp::signed(Size::B16),
        MemOp::signed(Size::B32),
    ];
    for m in mems() {
        for r in [RAX, RSI, RDI, R8, R15] {
            for kind in 0..7u8 {
                same(
                    &format!("kind {kind} r{r} {m:?}"),
                    |a| match kind {
                        0..=4 => asm::load(a, mops[kind as usize], kind != 1, r, m),
                        5 => asm::lea(a, true, r, m),
                        _ => asm::alu_rm(a, Alu::Add, true, r, m),
                    },
                    |d| dyn_load(d, kind, r, m),
                );
            }
            for size in [Size::B8, Size::B16, Size::B32, Size::B64] {
                same(
                    &format!("store {size:?} r{r} {m:?}"),
                    |a| asm::store(a, size, r, m),
                    |d| {
                        let (b, disp) = (m.base, m.disp);
                        macro_rules! st {
                            ($w:ident, $reg:ident) => {
                                if m.index == NOREG {
                                    dynasm!(d ; .arch x64 ; mov $w [Rq(b) + disp], $reg(r))
                                } else {
                                    let i = m.index;
                                    dynasm!(d ; .arch x64 ; mov $w [Rq(b) + Rq(i) + disp], $reg(r))
                                }
                            };
                        }
                        match size {
                            Size::B8 => st!(BYTE, Rb),
                            Size::B16 => st!(WORD, Rw),
                            Size::B32 => st!(DWORD, Rd),
                            Size::B64 => st!(QWORD, Rq),
                        }
                    },
                );
            }
        }
    }
}

#[test]
fn register_forms_match_the_oracle() {
    for d in 0..16u8 {
        for s in 0..16u8 {
            same(
                "mov",
                |a| asm::mov_rr32(a, d, s),
                |o| dynasm!(o ; .arch x64 ; mov Rd(d), Rd(s)),
            );
            same(
                "add",
                |a| asm::alu_rr(a, Alu::Add, true, d, s),
                |o| dynasm!(o ; .arch x64 ; add Rq(d), Rq(s)),
            );
            same(
                "cmp",
                |a| asm::alu_rr(a, Alu::Cmp, false, d, s),
                |o| dynasm!(o ; .arch x64 ; cmp Rd(d), Rd(s)),
            );
            same(
                "imul",
                |a| asm::imul_rr(a, true, d, s),
                |o| dynasm!(o ; .arch x64 ; imul Rq(d), Rq(s)),
            );
            same(
                "movzx8",
                |a| asm::ext_rr(a, ir::ExtFrom::U8, false, d, s),
                |o| dynasm!(o ; .arch x64 ; movzx Rd(d), Rb(s)),
            );
            same(
                "movsx16",
                |a| asm::ext_rr(a, ir::ExtFrom::S16, true, d, s),
                |o| dynasm!(o ; .arch x64 ; movsx Rq(d), Rw(s)),
            );
            same(
                "xchg",
                |a| asm::xchg(a, d, s),
                |o| dynasm!(o ; .arch x64 ; xchg Rq(d), Rq(s)),
            );
        }
        for imm in [0, 1, -1, 127, 128, -128, -129, 0x1234_5678] {
            same(
                "sub imm",
                |a| asm::alu_ri(a, Alu::Sub, true, d, imm),
                |o| dynasm!(o ; .arch x64 ; sub Rq(d), imm),
            );
            same(
                "and imm32",
                |a| asm::alu_ri(a, Alu::And, false, d, imm),
                |o| dynasm!(o ; .arch x64 ; and Rd(d), imm),
            );
            same(
                "imul imm",
                |a| asm::imul_rri(a, true, d, R9, imm),
                |o| dynasm!(o ; .arch x64 ; imul Rq(d), r9, imm),
            );
        }
        for n in [1u8, 7, 63] {
            same(
                "shr",
                |a| asm::shift_ri(a, Sh::Shr, true, d, n),
                |o| dynasm!(o ; .arch x64 ; shr Rq(d), n as i8),
            );
        }
        same(
            "sar cl",
            |a| asm::shift_cl(a, Sh::Sar, false, d),
            |o| dynasm!(o ; .arch x64 ; sar Rd(d), cl),
        );
        same(
            "setb",
            |a| asm::setcc(a, asm::Cc::B, d),
            |o| dynasm!(o ; .arch x64 ; setb Rb(d) ; movzx Rd(d), Rb(d)),
        );
        same(
            "bswap",
            |a| asm::bswap(a, true, d),
            |o| dynasm!(o ; .arch x64 ; bswap Rq(d)),
        );
        same(
            "neg",
            |a| asm::grp3(a, asm::NEG, false, d),
            |o| dynasm!(o ; .arch x64 ; neg Rd(d)),
        );
    }
}
