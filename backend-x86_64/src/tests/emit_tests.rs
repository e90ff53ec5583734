//! Byte-exact emission tests (in the style of Cranelift's `emit_tests.rs`): small blocks
//! compiled with `HostFeatures::baseline()`, their code disassembled with iced-x86, each line
//! "hex bytes  instruction" compared with the expected text. Relative branch targets are
//! printed as offsets from the block's entry, so the listing does not depend on where the
//! buffer is mapped.

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, NasmFormatter};
use ir::testing::globals;
use ir::{Builder, Cond, MemOp, Size, Type};

use super::{backend, backend_with_pc};
use crate::HostFeatures;

/// The block's code as "hex  asm" lines, up to and including the first `jmp` to a stub or
/// the epilogue (the body), with branch targets as `entry+off`.
fn listing(build: impl FnOnce(&mut Builder)) -> Vec<String> {
    listing_on(backend(HostFeatures::baseline()), build)
}

/// [`listing`] on a given backend.
fn listing_on(mut be: crate::Backend, build: impl FnOnce(&mut Builder)) -> Vec<String> {
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
            "498b5e38  mov rbx,[r14+38h]",
            "498b6e48  mov rbp,[r14+48h]",
            "4801eb  add rbx,rbp",
            "4883c310  add rbx,10h",
            "49895e38  mov [r14+38h],rbx",
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
            "418b5e40  mov ebx,[r14+40h]",
            "418b6e58  mov ebp,[r14+58h]",
            "29eb  sub ebx,ebp",
            "41895e40  mov [r14+40h],ebx",
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
            "498b4e48  mov rcx,[r14+48h]",
            "498b5e38  mov rbx,[r14+38h]",
            "48d3e3  shl rbx,cl",
            "49895e38  mov [r14+38h],rbx",
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
            "498b5e38  mov rbx,[r14+38h]",
            "498b6e48  mov rbp,[r14+48h]",
            "4839eb  cmp rbx,rbp",
            "0f92c0  setb al",
            "0fb6c0  movzx eax,al",
            "49894650  mov [r14+50h],rax",
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
            "498b5e38  mov rbx,[r14+38h]",
            "4889d8  mov rax,rbx",
            "48c1e807  shr rax,7",
            "492346a8  and rax,[r14-58h]",
            "490346b0  add rax,[r14-50h]",
            "488d4b03  lea rcx,[rbx+3]",
            "4881e100f0ffff  and rcx,0FFFFFFFFFFFFF000h",
            "483b08  cmp rcx,[rax]",
            "0f8538000000  jne entry+106",
            "488b4018  mov rax,[rax+18h]",
            "8b1403  mov edx,[rbx+rax]",
            "49895648  mov [r14+48h],rdx",
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
            "498b5e38  mov rbx,[r14+38h]",
            "4883c301  add rbx,1",
            "49895e38  mov [r14+38h],rbx",
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
            "418b5e40  mov ebx,[r14+40h]",
            "83c301  add ebx,1",
            "41895e40  mov [r14+40h],ebx",
            "90  nop",
            "e90f000000  jmp entry+43",
            "48b80500000001000000  mov rax,100000005h",
            "e9afffffff  jmp entry-38",
        ],
    );
}

#[test]
fn load_slow_path_stores_dirty_globals_and_saves_nothing() {
    // g0 is dirty in a callee-saved register: the stub stores it (the slow path may raise,
    // and the engine must see it) and keeps it; the address g2 goes to rsi; nothing else is
    // in a caller-saved register, so nothing is saved or reloaded around the call.
    let got = listing(|b| {
        let (g0, g2, g3) = (b.global(0), b.global(2), b.global(3));
        b.addi(g0, g0, 1);
        b.load(g3, g2, MemOp::unsigned(Size::B64), 0);
        b.add(g3, g3, g0);
        b.exit_tb(0);
    });
    if std::env::var("BLESS").is_ok() {
        println!("BLESS-BEGIN\n{}\nBLESS-END", got.join("\n"));
    }
    // The stub is the code after the three exit stubs (exit_request, unwind, this exit).
    let stub: Vec<&str> = got[got.len() - SLOW.len()..]
        .iter()
        .map(|l| l.as_str())
        .collect();
    assert_eq!(stub, SLOW, "full listing:\n{}", got.join("\n"));
    assert!(got[got.len() - SLOW.len() - 1].contains("jmp entry-38"));
}

const SLOW: &[&str] = &[
    "49895e38  mov [r14+38h],rbx",
    "41c7468800000000  mov dword [r14-78h],0",
    "4889ee  mov rsi,rbp",
    "498d7e80  lea rdi,[r14-80h]",
    "31d2  xor edx,edx",
    "48b90300000001000000  mov rcx,100000003h",
    "41ff5690  call qword [r14-70h]",
    "4889c2  mov rdx,rax",
    "41837e8400  cmp dword [r14-7Ch],0",
    "75c4  jne entry+107",
    "eb99  jmp entry+66",
];

#[test]
fn lookup_and_goto_probes_the_jump_cache_inline_before_calling_the_lookup() {
    // Global 0 is the guest pc here. It is still in rbx after the store, so the probe takes
    // it from there; then the probe pointer; the slot index (page group | low pc bits)
    // scaled by 32; pc, flags and epoch compared; a hit jumps to the slot's code; a miss
    // calls the lookup with the block's Lookup exit code ready in rdx.
    let be = backend_with_pc(
        HostFeatures::baseline(),
        Some(ir::testing::global_offset(0)),
    );
    let got = listing_on(be, |b| {
        let g0 = b.global(0);
        b.addi(g0, g0, 1);
        b.lookup_and_goto();
    });
    if std::env::var("BLESS").is_ok() {
        println!("BLESS-BEGIN\n{}\nBLESS-END", got.join("\n"));
    }
    let want: &[&str] = &[
        "41837e8000  cmp dword [r14-80h],0",
        "0f858c000000  jne entry+151",
        "498b5e38  mov rbx,[r14+38h]",
        "4883c301  add rbx,1",
        "49895e38  mov [r14+38h],rbx",
        "4889de  mov rsi,rbx",
        "498b7e30  mov rdi,[r14+30h]",
        "4889f0  mov rax,rsi",
        "48c1e80c  shr rax,0Ch",
        "4889c1  mov rcx,rax",
        "48c1e907  shr rcx,7",
        "4831c1  xor rcx,rax",
        "48c1e80e  shr rax,0Eh",
        "4831c1  xor rcx,rax",
        "83e13f  and ecx,3Fh",
        "c1e109  shl ecx,9",
        "89f0  mov eax,esi",
        "81e0ff010000  and eax,1FFh",
        "09c1  or ecx,eax",
        "c1e105  shl ecx,5",
        "48030f  add rcx,[rdi]",
        "483b31  cmp rsi,[rcx]",
        "0f852e000000  jne entry+131",
        "488b4710  mov rax,[rdi+10h]",
        "483b4108  cmp rax,[rcx+8]",
        "0f8520000000  jne entry+131",
        "488b4708  mov rax,[rdi+8]",
        "488b00  mov rax,[rax]",
        "483b4118  cmp rax,[rcx+18h]",
        "0f850f000000  jne entry+131",
        "488b4110  mov rax,[rcx+10h]",
        "4885c0  test rax,rax",
        "0f8402000000  je entry+131",
        "ffe0  jmp rax",
        "498d7e80  lea rdi,[r14-80h]",
        "41ff56a0  call qword [r14-60h]",
        "48ba0200000001000000  mov rdx,100000002h",
        "ffe0  jmp rax",
        "48b80500000001000000  mov rax,100000005h",
    ];
    let n = want.len().min(got.len());
    assert_eq!(&got[..n], want, "full listing:\n{}", got.join("\n"));
}

#[test]
fn without_a_pc_offset_lookup_and_goto_only_calls_the_lookup() {
    let got = listing_on(backend_with_pc(HostFeatures::baseline(), None), |b| {
        b.lookup_and_goto()
    });
    assert_eq!(
        &got[..4],
        &[
            "41837e8000  cmp dword [r14-80h],0",
            "0f8514000000  jne entry+31",
            "498d7e80  lea rdi,[r14-80h]",
            "41ff56a0  call qword [r14-60h]",
        ],
        "full listing:\n{}",
        got.join("\n")
    );
}
