//! Byte-exact emission tests (in the style of Cranelift's `emit_tests.rs`): small blocks
//! compiled with `HostFeatures::baseline()`, their code disassembled with iced-x86, each line
//! "hex bytes  instruction" compared with the expected text. Relative branch targets are
//! printed as offsets from the block's entry, so the listing does not depend on where the
//! buffer is mapped.

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, NasmFormatter};
use ir::testing::globals;
use ir::{Builder, Cond, MemOp, Size, Type};

use super::backend;
use crate::HostFeatures;

/// The block's code as "hex  asm" lines, up to and including the first `jmp` to a stub or
/// the epilogue (the body), with branch targets as `entry+off`.
fn listing(build: impl FnOnce(&mut Builder)) -> Vec<String> {
    let mut be = backend(HostFeatures::baseline());
    let mut b = Builder::new(globals(), Type::I64);
    build(&mut b);
    let cb = be.compile(&b.finish(), 1).unwrap();
    let code = be.code(&cb).to_vec();
    let mut dec = Decoder::with_ip(64, &code, cb.entry as u64, DecoderOptions::NONE);
    let mut fmt = NasmFormatter::new();
    fmt.options_mut().set_branch_leading_zeros(false);
    let mut out = Vec::new();
    let mut ins = Instruction::default();
    while dec.can_decode() {
        let off = dec.position();
        dec.decode_out(&mut ins);
        let mut text = String::new();
        fmt.format(&ins, &mut text);
        if ins.is_jmp_short_or_near() || ins.is_jcc_short_or_near() {
            let target = ins.near_branch_target() as i64 - cb.entry as i64;
            let m = ins.mnemonic();
            text = format!("{:?} entry{:+}", m, target).to_lowercase();
        }
        let hex: String = code[off..off + ins.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(format!("{hex}  {text}"));
        if out.len() > 40 {
            break;
        }
    }
    out
}

fn check(build: impl FnOnce(&mut Builder), want: &[&str]) {
    let got = listing(build);
    if std::env::var("BLESS").is_ok() {
        println!("BLESS-BEGIN\n{}\nBLESS-END", got.join("\n"));
    }
    let n = want.len().min(got.len());
    assert_eq!(&got[..n], want, "full listing:\n{}", got.join("\n"));
}

/// Every block starts with the exit-request test: `exit_request` is at offset 0 of the state,
/// -128 from the biased env register, so a disp8 and an imm8 (5 bytes), then a rel32 `jne` to
/// the block's exit-request stub.
const ENTRY: [&str; 2] = ["41837e8000  cmp dword [r14-80h],0", "0f85"];

#[test]
fn block_entry_tests_exit_request() {
    let got = listing(|b| b.exit_tb(0));
    assert_eq!(got[0], ENTRY[0]);
    assert!(got[1].starts_with(ENTRY[1]), "{}", got[1]);
}

#[test]
fn add_register_and_immediate() {
    check(
        |b| {
            let (g0, g2) = (b.global(0), b.global(2));
            b.add(g0, g0, g2);
            b.addi(g0, g0, 0x10);
            b.exit_tb(0);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f8522000000  jne entry+45",
            "498b4630  mov rax,[r14+30h]",
            "498b4e40  mov rcx,[r14+40h]",
            "4801c8  add rax,rcx",
            "4883c010  add rax,10h",
            "49894630  mov [r14+30h],rax",
            "48b80300000001000000  mov rax,100000003h",
            "e9adffffff  jmp entry-38",
        ],
    );
}

#[test]
fn i32_ops_use_32_bit_forms() {
    check(
        |b| {
            let (g1, g4) = (b.global(1), b.global(4));
            b.sub(g1, g1, g4);
            b.exit_tb(0);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f851d000000  jne entry+40",
            "418b4638  mov eax,[r14+38h]",
            "418b4e50  mov ecx,[r14+50h]",
            "29c8  sub eax,ecx",
            "41894638  mov [r14+38h],eax",
            "48b80300000001000000  mov rax,100000003h",
            "e9b2ffffff  jmp entry-38",
        ],
    );
}

#[test]
fn variable_shift_uses_cl() {
    check(
        |b| {
            let (g0, g2) = (b.global(0), b.global(2));
            b.shl(g0, g0, g2);
            b.exit_tb(0);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f851e000000  jne entry+41",
            "498b4e40  mov rcx,[r14+40h]",
            "498b4630  mov rax,[r14+30h]",
            "48d3e0  shl rax,cl",
            "49894630  mov [r14+30h],rax",
            "48b80300000001000000  mov rax,100000003h",
            "e9b1ffffff  jmp entry-38",
        ],
    );
}

#[test]
fn setcond_is_cmp_setcc_movzx() {
    check(
        |b| {
            let (g0, g2, g3) = (b.global(0), b.global(2), b.global(3));
            b.setcond(Cond::Ltu, g3, g0, g2);
            b.exit_tb(0);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f8524000000  jne entry+47",
            "498b4630  mov rax,[r14+30h]",
            "498b4e40  mov rcx,[r14+40h]",
            "4839c8  cmp rax,rcx",
            "0f92c2  setb dl",
            "0fb6d2  movzx edx,dl",
            "49895648  mov [r14+48h],rdx",
            "48b80300000001000000  mov rax,100000003h",
            "e9abffffff  jmp entry-38",
        ],
    );
}

#[test]
fn load_fast_path() {
    check(
        |b| {
            let (g0, g2) = (b.global(0), b.global(2));
            b.load(g2, g0, MemOp::unsigned(Size::B32), 0);
            b.exit_tb(0);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f8541000000  jne entry+76",
            "498b4630  mov rax,[r14+30h]",
            "4889c1  mov rcx,rax",
            "48c1e907  shr rcx,7",
            "49234ea8  and rcx,[r14-58h]",
            "49034eb0  add rcx,[r14-50h]",
            "488d5003  lea rdx,[rax+3]",
            "4881e200f0ffff  and rdx,0FFFFFFFFFFFFF000h",
            "483b11  cmp rdx,[rcx]",
            "0f8538000000  jne entry+106",
            "488b4918  mov rcx,[rcx+18h]",
            "8b3408  mov esi,[rax+rcx]",
            "49897640  mov [r14+40h],rsi",
            "48b80300000001000000  mov rax,100000003h",
            "e98effffff  jmp entry-38",
        ],
    );
}

#[test]
fn goto_tb_jump_field_is_aligned() {
    // The jmp's rel32 field (entry+24) happens to be on a 4-byte boundary, so no nops; it
    // targets the slot's exit stub right after it.
    check(
        |b| {
            let g0 = b.global(0);
            b.addi(g0, g0, 1);
            b.goto_tb(0);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f8511000000  jne entry+28",
            "498b4630  mov rax,[r14+30h]",
            "4883c001  add rax,1",
            "49894630  mov [r14+30h],rax",
            "e90f000000  jmp entry+43",
            "48b80500000001000000  mov rax,100000005h",
            "e9afffffff  jmp entry-38",
        ],
    );
}

#[test]
fn goto_tb_pads_with_nops_to_align_the_jump_field() {
    // A 32-bit add needs no REX, one byte less than above: a nop puts the field (entry+24)
    // back on a 4-byte boundary.
    check(
        |b| {
            let g1 = b.global(1);
            b.addi(g1, g1, 1);
            b.goto_tb(1);
        },
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f8511000000  jne entry+28",
            "418b4638  mov eax,[r14+38h]",
            "83c001  add eax,1",
            "41894638  mov [r14+38h],eax",
            "90  nop",
            "e90f000000  jmp entry+43",
            "48b80500000001000000  mov rax,100000005h",
            "e9afffffff  jmp entry-38",
        ],
    );
}
