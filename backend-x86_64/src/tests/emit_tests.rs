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

/// Every block starts with the exit-request test. (dynasm encodes runtime displacements and
/// immediates as 32-bit fields, hence the long forms.)
const ENTRY: [&str; 2] = ["4181bc260000000000000000  cmp dword [r14],0", "0f85"];

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
            "4181bc260000000000000000  cmp dword [r14],0",
            "0f8531000000  jne entry+67",
            "498b8426b0000000  mov rax,[r14+0B0h]",
            "498b8c26c0000000  mov rcx,[r14+0C0h]",
            "4801c8  add rax,rcx",
            "4881c010000000  add rax,10h",
            "49898426b0000000  mov [r14+0B0h],rax",
            "48b80300000001000000  mov rax,100000003h",
            "e9a3ffffff  jmp entry-26",
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
            "4181bc260000000000000000  cmp dword [r14],0",
            "0f852a000000  jne entry+60",
            "418b8426b8000000  mov eax,[r14+0B8h]",
            "418b8c26d0000000  mov ecx,[r14+0D0h]",
            "4029c8  sub eax,ecx",
            "41898426b8000000  mov [r14+0B8h],eax",
            "48b80300000001000000  mov rax,100000003h",
            "e9aaffffff  jmp entry-26",
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
            "4181bc260000000000000000  cmp dword [r14],0",
            "0f852a000000  jne entry+60",
            "498b8c26c0000000  mov rcx,[r14+0C0h]",
            "498b8426b0000000  mov rax,[r14+0B0h]",
            "48d3e0  shl rax,cl",
            "49898426b0000000  mov [r14+0B0h],rax",
            "48b80300000001000000  mov rax,100000003h",
            "e9aaffffff  jmp entry-26",
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
            "4181bc260000000000000000  cmp dword [r14],0",
            "0f8532000000  jne entry+68",
            "498b8426b0000000  mov rax,[r14+0B0h]",
            "498b8c26c0000000  mov rcx,[r14+0C0h]",
            "483bc1  cmp rax,rcx",
            "400f92c2  setb dl",
            "400fb6d2  movzx edx,dl",
            "49899426c8000000  mov [r14+0C8h],rdx",
            "48b80300000001000000  mov rax,100000003h",
            "e9a2ffffff  jmp entry-26",
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
            "4181bc260000000000000000  cmp dword [r14],0",
            "0f855e000000  jne entry+112",
            "498b8426b0000000  mov rax,[r14+0B0h]",
            "4889c1  mov rcx,rax",
            "48c1e907  shr rcx,7",
            "49238e28000000  and rcx,[r14+28h]",
            "49038e30000000  add rcx,[r14+30h]",
            "488d942003000000  lea rdx,[rax+3]",
            "4881e200f0ffff  and rdx,0FFFFFFFFFFFFF000h",
            "483b942100000000  cmp rdx,[rcx]",
            "0f8542000000  jne entry+142",
            "488b4c2118  mov rcx,[rcx+18h]",
            "408bb40800000000  mov esi,[rax+rcx]",
            "4989b426c0000000  mov [r14+0C0h],rsi",
            "48b80300000001000000  mov rax,100000003h",
            "e976ffffff  jmp entry-26",
        ],
    );
}

#[test]
fn goto_tb_jump_field_is_aligned() {
    // The nops put the jmp's rel32 field (entry+44) on a 4-byte boundary; it targets the
    // slot's exit stub right after it.
    check(
        |b| {
            let g0 = b.global(0);
            b.addi(g0, g0, 1);
            b.goto_tb(0);
        },
        &[
            "4181bc260000000000000000  cmp dword [r14],0",
            "0f851e000000  jne entry+48",
            "498b8426b0000000  mov rax,[r14+0B0h]",
            "4881c001000000  add rax,1",
            "49898426b0000000  mov [r14+0B0h],rax",
            "90  nop",
            "90  nop",
            "e90f000000  jmp entry+63",
        ],
    );
}
