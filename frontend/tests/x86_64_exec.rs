//! x86_64 instruction semantics run end to end: snippets assembled with the host's GNU as
//! (Intel syntax), translated by the x86_64 frontend and run by the engine under the JIT and
//! under the interpreter (which must agree), with results checked against what the SDM says.
//! Flag consumers are checked both right after the flag-setting instruction (the translator
//! knows the lazy operation and compares directly) and across a block boundary (it does not,
//! and calls `compute_eflags`).

mod common;

use accel_tcg::ExecMode;
use frontend::x86_64::flags::{CcKind, CcOp, CF, OF, PF, SF, ZF};
use frontend::x86_64::translate::{vector, EXIT_HLT, EXIT_INT3, EXIT_SYSCALL, EXIT_UD};

use common::*;

#[test]
fn every_condition_after_cmp_matches_the_sdm() {
    let pairs: [(u64, u64); 6] = [
        (5, 5),
        (1, 2),
        (2, 1),
        (0x8000_0000_0000_0000, 1),
        (0x7fff_ffff_ffff_ffff, u64::MAX),
        (0x1_0000_0003, 0x1_0000_0000),
    ];
    for (a, b) in pairs {
        let d = a.wrapping_sub(b);
        let f = (if a < b { CF } else { 0 })
            | (if d == 0 { ZF } else { 0 })
            | (if (d as i64) < 0 { SF } else { 0 })
            | (if ((a ^ b) & (a ^ d)) >> 63 != 0 {
                OF
            } else {
                0
            })
            | (if (d as u8).count_ones() % 2 == 0 {
                PF
            } else {
                0
            });
        let want: u64 = (0..16).filter(|&c| holds(c, f)).map(|c| 1 << c).sum();
        check_conditions(
            "cmp",
            &format!("mov rax, {a:#x}; mov rbx, {b:#x}"),
            "cmp rax, rbx",
            want,
        );
    }
}

#[test]
fn conditions_after_each_alu_class_and_size() {
    let sub = |s| CcOp::new(CcKind::Sub, s);
    let cases: Vec<(&str, &str, u64)> = vec![
        (
            "mov eax, 0xff; mov ebx, 1",
            "add al, bl",
            expected(CcOp::new(CcKind::Add, 0), 0, 1, 0),
        ),
        (
            "mov eax, 0x7fff; mov ebx, 1",
            "add ax, bx",
            expected(CcOp::new(CcKind::Add, 1), 0x8000, 1, 0),
        ),
        (
            "mov eax, 0x80000000; mov ebx, 1",
            "sub eax, ebx",
            expected(sub(2), 0x7fff_ffff, 1, 0),
        ),
        (
            "mov eax, 3; mov ebx, 5",
            "cmp al, bl",
            expected(sub(0), 0xfe, 5, 0),
        ),
        (
            "mov rax, 0xf0; mov rbx, 0x0f",
            "test rax, rbx",
            expected(CcOp::new(CcKind::Logic, 3), 0, 0, 0),
        ),
        (
            "mov rax, -1; mov rbx, 0x80",
            "and eax, ebx",
            expected(CcOp::new(CcKind::Logic, 2), 0x80, 0, 0),
        ),
        (
            "mov rax, 0x80",
            "or al, 0",
            expected(CcOp::new(CcKind::Logic, 0), 0x80, 0, 0),
        ),
        (
            "mov eax, 0x7fffffff; mov ebx, 1; add ebx, ebx",
            "inc eax",
            expected(CcOp::new(CcKind::Inc, 2), 0x8000_0000, 0, 0),
        ),
        (
            "xor eax, eax; mov ebx, 1; sub ebx, 2",
            "dec ax",
            expected(CcOp::new(CcKind::Dec, 1), 0xffff, 1, 0),
        ),
        (
            "mov eax, 0; mov ebx, 1; sub ebx, 2",
            "adc eax, 0x7fffffff",
            expected(CcOp::new(CcKind::Adc, 2), 0x8000_0000, 0x7fff_ffff, 1),
        ),
        (
            "mov eax, 0; mov ebx, 1; sub ebx, 2",
            "sbb rax, 0",
            expected(CcOp::new(CcKind::Sbb, 3), u64::MAX, 0, 1),
        ),
        ("mov rax, 1", "neg rax", expected(sub(3), u64::MAX, 1, 0)),
        (
            "mov eax, 0xc0",
            "shl al, 1",
            expected(CcOp::new(CcKind::Shl, 0), 0x80, 0xc0, 0),
        ),
        (
            "mov eax, 0x81; mov ecx, 1",
            "shr eax, cl",
            expected(CcOp::new(CcKind::Sar, 2), 0x40, 0x81, 0),
        ),
        (
            "mov rax, -4",
            "sar rax, 2",
            expected(CcOp::new(CcKind::Sar, 3), u64::MAX, (-2i64) as u64, 0),
        ),
        (
            "mov rax, 1 << 62; mov rbx, 2",
            "imul rax, rbx",
            expected(CcOp::new(CcKind::Mul, 3), 1 << 63, 1, 0),
        ),
        (
            "mov rax, 1 << 32; mov rbx, 1 << 32",
            "mul rbx",
            expected(CcOp::new(CcKind::Mul, 3), 0, 1, 0),
        ),
    ];
    for (n, (setup, op, want)) in cases.into_iter().enumerate() {
        check_conditions(&format!("alu{n}"), setup, op, want);
    }
}

#[test]
fn a_zero_shift_count_keeps_the_flags() {
    // cmp sets ZF and CF: 1 - 2 borrows; shl by cl = 0 and by 64 (masked to 0) keep them.
    let want = expected(CcOp::new(CcKind::Sub, 3), u64::MAX, 2, 0);
    check_conditions(
        "shift0",
        "mov rdx, 7; mov ecx, 64; mov rax, 1; cmp rax, 2",
        "shl rdx, cl",
        want,
    );
    check_conditions("shift0i", "mov eax, 1; cmp eax, 2", "shl eax, 0", want);
}

#[test]
fn partial_register_writes_merge_or_zero_extend() {
    let r = run(
        "partial",
        "mov rax, -1; mov al, 0x12; mov ah, 0x34
         mov rbx, -1; mov bx, 0x5678
         mov rcx, -1; mov ecx, 0x9abc
         mov rdx, -1; add edx, 1
         mov rsi, -1; mov sil, 0; mov r8, -1; mov r8b, 5; mov r9, -1; mov r9w, 6
         mov r10, -1; xor r10d, r10d
         mov r11, 0x80; movsx r12, r11b; movzx r13d, r11b; mov r11, -1; movsxd rdi, r11d
         mov rbp, 0x1122334455667788; mov ebp, ebp
         hlt",
    );
    assert_eq!(r.r("rax"), 0xffff_ffff_ffff_3412);
    assert_eq!(r.r("rbx"), 0xffff_ffff_ffff_5678);
    assert_eq!(r.r("rcx"), 0x9abc, "32-bit writes zero-extend");
    assert_eq!(r.r("rdx"), 0, "32-bit arithmetic too");
    assert_eq!(
        r.r("rsi"),
        0xffff_ffff_ffff_ff00,
        "sil is rsi's low byte with REX"
    );
    assert_eq!(r.r("r8"), 0xffff_ffff_ffff_ff05);
    assert_eq!(r.r("r9"), 0xffff_ffff_ffff_0006);
    assert_eq!(r.r("r10"), 0);
    assert_eq!(r.r("r12"), 0xffff_ffff_ffff_ff80);
    assert_eq!(r.r("r13"), 0x80);
    assert_eq!(r.r("rdi"), u64::MAX);
    assert_eq!(r.r("rbp"), 0x5566_7788);
}

#[test]
fn high_byte_registers_and_xchg_cbw_family() {
    let r = run(
        "high",
        "mov rax, 0x1234; mov rbx, 0xab00; add ah, bh; xchg rbx, rax
         mov rax, -1; mov al, 0x80; cbw; mov rsi, rax
         mov eax, 0x8000; cwde; mov rdi, rax
         mov eax, 0x80000000; cdqe; mov r8, rax
         mov rax, -5; cqo; mov r9, rdx
         mov eax, 0x7fffffff; cdq; mov r10, rdx
         xor edx, edx; mov eax, 0x8000; cwd; mov r11, rdx
         mov rax, 0xff; cbw
         hlt",
    );
    assert_eq!(r.r("rbx"), 0xbd34, "ah + bh without touching al");
    assert_eq!(r.r("rsi"), 0xffff_ffff_ffff_ff80, "cbw writes ax only");
    assert_eq!(r.r("rdi"), 0xffff_8000);
    assert_eq!(r.r("r8"), 0xffff_ffff_8000_0000);
    assert_eq!(r.r("r9"), u64::MAX);
    assert_eq!(r.r("r10"), 0);
    assert_eq!(r.r("r11"), 0xffff, "cwd writes dx only");
    assert_eq!(r.r("rax"), 0xffff);
}

#[test]
fn multiply_and_divide() {
    let r = run(
        "muldiv",
        "mov rax, -1; mov rbx, -1; mul rbx; mov rsi, rax; mov rdi, rdx
         mov rax, -2; mov rbx, 3; imul rbx; mov r8, rax; mov r9, rdx
         mov eax, 200; mov ebx, 3; mul bl; mov r10, rax
         mov eax, 0x10000; imul ecx, eax, 0x10000; mov r11, rcx
         mov rax, 100; xor edx, edx; mov rbx, 7; div rbx; mov r12, rax; mov r13, rdx
         mov rax, -100; cqo; idiv rbx; mov r14, rax; mov r15, rdx
         mov ax, 1000; mov cl, 10; div cl; mov rbp, rax
         hlt",
    );
    assert_eq!((r.r("rsi"), r.r("rdi")), (1, u64::MAX - 1));
    assert_eq!((r.r("r8"), r.r("r9")), ((-6i64) as u64, u64::MAX));
    assert_eq!(r.r("r10") & 0xffff, 600);
    assert_eq!(
        r.r("r11"),
        0,
        "imul r32 keeps the low 32 bits, zero-extended"
    );
    assert_eq!((r.r("r12"), r.r("r13")), (14, 2));
    assert_eq!((r.r("r14") as i64, r.r("r15") as i64), (-14, -2));
    assert_eq!(r.r("rbp") & 0xffff, 100, "al = 100, ah = 0");
}

#[test]
fn divide_errors_are_faults_at_the_div() {
    for (name, src) in [
        ("de0", "mov rax, 1; xor ebx, ebx; mov rcx, 9; div rbx; hlt"),
        (
            "de_ovf",
            "mov rax, 0; mov rdx, 1; mov rbx, 1; mov rcx, 9; div rbx; hlt",
        ),
        (
            "de_min",
            "mov eax, 0x80000000; cdq; mov ebx, -1; mov rcx, 9; idiv ebx; hlt",
        ),
    ] {
        let r = run_full(name, src, &[], 0);
        assert_eq!(r.ret, RET_FAULT_BASE + vector::DE as u32, "{name}");
        assert_eq!(r.r("rcx"), 9, "{name}: the instructions before ran");
        let code = assemble(name, src);
        // rip is the div itself: its opcode byte is 0xf7 (with or without a REX prefix).
        let off = (r.rip - CODE) as usize;
        assert!(
            code[off] == 0xf7 || code[off + 1] == 0xf7,
            "{name}: rip {:#x}",
            r.rip
        );
    }
}

#[test]
fn push_pop_call_ret() {
    let r = run(
        "stack",
        "mov rax, 0x1111; push rax; push 0x22; pop rbx; pop rcx
         call 1f; mov rsi, 0x55; jmp 2f
         1: mov rdi, [rsp]; ret
         2: lea rax, [rip + 3f]; call rax; jmp 4f
         3: mov r8, rsp; ret
         4: push rsp; pop r9
         lea rax, [rip + 5f]; push rax; ret
         5: mov r10, 0x77
         hlt",
    );
    assert_eq!((r.r("rbx"), r.r("rcx")), (0x22, 0x1111));
    assert_eq!(r.r("rsi"), 0x55, "ret came back after the call");
    assert_eq!(
        r.r("r8"),
        STACK - 8,
        "an indirect call pushed the return address"
    );
    assert_eq!(r.r("r9"), STACK, "push rsp pushes the old value");
    assert_eq!(r.r("r10"), 0x77);
    assert_eq!(r.r("rsp"), STACK);
    let rdi = r.r("rdi");
    assert!(
        (CODE..CODE + 0x100).contains(&rdi),
        "return address {rdi:#x}"
    );
}

#[test]
fn memory_operands_and_segments() {
    let mut data = [0u8; 64];
    for (i, b) in data.iter_mut().enumerate() {
        *b = i as u8;
    }
    let r = run_full(
        "mem",
        &format!(
            "mov rbx, {DATA}; mov rcx, 2
             mov rax, [rbx + rcx*8 + 4]
             movzx esi, word ptr [rbx + 1]
             movsx rdi, byte ptr [rbx + 0x3f]
             mov qword ptr [rbx + 8*rcx], -1
             add dword ptr [rbx + 16], 2
             mov r8, [rbx + 16]
             mov r9, fs:[8]
             inc byte ptr [rbx]
             mov r10b, [rbx]
             lea r11, [rbx + rcx*4 - 1]
             lea r12d, [rcx + rcx*2 + 0x7fffffff]
             mov r13, [rip + 1f]
             hlt
             1: .quad 0x1122334455667788"
        ),
        &data,
        DATA,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(
        r.r("rax"),
        u64::from_le_bytes([20, 21, 22, 23, 24, 25, 26, 27])
    );
    assert_eq!(r.r("rsi"), 0x0201);
    assert_eq!(r.r("rdi"), 0x3f);
    assert_eq!(
        r.r("r8"),
        0xffff_ffff_0000_0001,
        "add dword wrapped in 32 bits"
    );
    assert_eq!(r.mem64(DATA + 16), 0xffff_ffff_0000_0001);
    assert_eq!(
        r.r("r9"),
        u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        "fs base"
    );
    assert_eq!(r.r("r10") & 0xff, 1);
    assert_eq!(r.r("r11"), DATA + 7);
    assert_eq!(r.r("r12"), 0x8000_0005, "32-bit lea wraps and zero-extends");
    assert_eq!(r.r("r13"), 0x1122_3344_5566_7788, "rip-relative");
}

#[test]
fn cmov_and_setcc_on_memory() {
    let r = run_full(
        "cmov",
        &format!(
            "mov rbx, {DATA}; mov rax, -1; mov rcx, 5; cmp rcx, 6
             cmovb rsi, rcx; cmovae rax, rcx; mov rdi, -1; cmovae edi, ecx
             cmovl r8, [rbx]; setb byte ptr [rbx + 8]; sete byte ptr [rbx + 9]
             hlt"
        ),
        &[0x44, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb],
        0,
    );
    assert_eq!(r.r("rsi"), 5);
    assert_eq!(
        r.r("rax"),
        u64::MAX,
        "cmov not taken keeps a 64-bit register"
    );
    assert_eq!(
        r.r("rdi"),
        0xffff_ffff,
        "cmov r32 zero-extends even when not taken"
    );
    assert_eq!(r.r("r8"), 0x44);
    assert_eq!(r.mem64(DATA + 8) & 0xffff, 0x0001);
}

#[test]
fn exits_hlt_syscall_int3_ud() {
    let r = run_full("sys", "mov eax, 60; syscall; hlt", &[], 0);
    assert_eq!(r.ret, EXIT_SYSCALL);
    assert_eq!(r.rip, CODE + 7, "rip is after the syscall");
    let r = run_full("bp", "nop; int3; hlt", &[], 0);
    assert_eq!((r.ret, r.rip), (EXIT_INT3, CODE + 2));
    let r = run_full("ud", "mov eax, 1; ud2; hlt", &[], 0);
    assert_eq!((r.ret, r.rip), (EXIT_UD, CODE + 5));
    let r = run_full("unimpl", "nop; xgetbv; hlt", &[], 0);
    assert_eq!((r.ret, r.rip), (EXIT_UD, CODE + 1));
}

#[test]
fn loops_run_across_blocks() {
    let r = run(
        "loop",
        "xor eax, eax; mov ecx, 100
         1: add rax, rcx; dec ecx; jnz 1b
         hlt",
    );
    assert_eq!(r.r("rax"), 5050);
    assert_eq!(r.rflags & (ZF | CF), ZF, "dec kept CF clear, set ZF");
}

#[test]
fn flag_moves_pushf_popf_lahf_sahf() {
    let r = run(
        "flagmoves",
        "mov eax, 0x7f; add al, 1; pushfq; pop rbx
         stc; pushfq; pop rcx
         cmc; lahf; movzx esi, ah
         std; pushfq; pop rdx; cld
         mov rax, 0xd7 << 8; sahf; pushfq; pop rdi
         push 0x401; popfq; pushfq; pop r8
         setc r9b; cld
         hlt",
    );
    assert_eq!(r.r("rbx"), 0x892, "0x7f + 1: OF SF AF, bit 1");
    assert_eq!(r.r("rcx"), 0x893, "stc");
    assert_eq!(r.r("rsi"), 0x92, "lahf after cmc: SF AF, bit 1, CF clear");
    assert_eq!(r.r("rdx"), 0xc92, "std shows as DF");
    assert_eq!(r.r("rdi"), 0x8d7, "sahf sets SF ZF AF PF CF and keeps OF");
    assert_eq!(r.r("r8"), 0x403, "popfq loads CF and DF");
    assert_eq!(r.r("r9") & 0xff, 1);
    assert_eq!(r.rflags, 0x3, "cld cleared DF again; CF stays");
}

#[test]
fn rotates_keep_all_flags_but_cf_and_of() {
    let r = run(
        "rot",
        "mov eax, 0x81; rol al, 1; setc r8b; seto r9b; mov rsi, rax
         mov ebx, 0x80000001; ror ebx, 4; setc r10b
         mov rcx, 3; mov rdx, 0x8000000000000001; rol rdx, cl
         mov eax, 0; cmp eax, 0; mov edi, 0x1234; mov ecx, 32; rol di, cl; setz r11b
         hlt",
    );
    assert_eq!(r.r("rsi") & 0xff, 0x03);
    assert_eq!(r.r("r8") & 0xff, 1, "CF is the bit rotated into bit 0");
    assert_eq!(r.r("r9") & 0xff, 1, "OF = MSB xor CF = 0 xor 1");
    assert_eq!(r.r("rbx"), 0x1800_0000);
    assert_eq!(r.r("r10") & 0xff, 0, "ror: CF is the new MSB");
    assert_eq!(r.r("rdx"), 0xc);
    assert_eq!(r.r("rdi"), 0x1234, "rotating 16 bits by 32 is the identity");
    assert_eq!(r.r("r11") & 0xff, 1, "ZF from the cmp survives the rotate");
}

#[test]
fn bit_tests_and_scans() {
    let r = run_full(
        "bits",
        &format!(
            "mov rbx, {DATA}; mov rax, 0x10; bt rax, 4; setc r8b
             bts rax, 0; btr rax, 4; btc rax, 63; mov rsi, rax
             mov rcx, 70; bts qword ptr [rbx], rcx; mov rdx, [rbx + 8]
             mov rcx, -1; bt dword ptr [rbx + 8], ecx; setc r9b
             mov eax, 0x50; bsf r10, rax; bsr r11, rax
             xor eax, eax; mov r12, 77; bsf r12, rax; setz r13b
             mov eax, 0xf0f0; popcnt r14, rax; tzcnt r15, rax; lzcnt rdi, rax
             mov eax, 0x11223344; bswap eax; mov rbp, 0x0102030405060708; bswap rbp
             hlt"
        ),
        &[0; 16],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(r.r("r8") & 0xff, 1);
    assert_eq!(r.r("rsi"), 0x8000_0000_0000_0001);
    assert_eq!(
        r.r("rdx"),
        0x40,
        "bit 70 of the string is bit 6 of the next qword"
    );
    assert_eq!(
        r.r("r9") & 0xff,
        0,
        "offset -1 is bit 31 of the dword before"
    );
    assert_eq!((r.r("r10"), r.r("r11")), (4, 6));
    assert_eq!(
        (r.r("r12"), r.r("r13") & 0xff),
        (77, 1),
        "bsf of 0 keeps the destination"
    );
    assert_eq!((r.r("r14"), r.r("r15"), r.r("rdi")), (8, 4, 48));
    assert_eq!(r.r("rax"), 0x4433_2211);
    assert_eq!(r.r("rbp"), 0x0807_0605_0403_0201);
}

#[test]
fn xadd_and_cmpxchg() {
    let r = run_full(
        "atomics",
        &format!(
            "mov rbx, {DATA}; mov rcx, 5; lock xadd [rbx], rcx; mov rsi, [rbx]
             mov rax, 7; mov rdx, 99; lock cmpxchg [rbx], rdx; setz r8b; mov rdi, [rbx]
             mov rax, 1; lock cmpxchg [rbx], rdx; setz r9b; mov r10, rax
             mov rax, -1; mov r11d, 3; mov eax, 3; mov r12, -1; cmpxchg r12d, r11d; mov r13, r12
             hlt"
        ),
        &[2, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(
        (r.r("rcx"), r.r("rsi")),
        (2, 7),
        "xadd: old value out, sum in memory"
    );
    assert_eq!((r.r("r8") & 0xff, r.r("rdi")), (1, 99), "equal: swapped in");
    assert_eq!(
        (r.r("r9") & 0xff, r.r("r10")),
        (0, 99),
        "not equal: rax loaded"
    );
    assert_eq!(
        r.r("r13"),
        u64::MAX,
        "not equal: 32-bit rax written, r12 untouched"
    );
    assert_eq!(r.r("rax"), 0xffff_ffff);
}

#[test]
fn string_instructions_with_rep() {
    let data: Vec<u8> = (0..64).collect();
    let r = run_full(
        "strings",
        &format!(
            "mov rsi, {DATA}; lea rdi, [rsi + 64]; mov ecx, 10; rep movsb
             mov r8, rsi; mov r9, rcx
             mov eax, 0xab; lea rdi, [rsi + 90]; mov ecx, 3; rep stosw
             std; lea rsi, [rsi + 7]; lodsb; cld; mov r10, rax; mov r11, rsi
             mov rdi, {DATA}; mov al, 5; mov ecx, 64; repne scasb; mov r12, rcx; mov r13, rdi
             mov rsi, {DATA}; lea rdi, [rsi + 64]; mov ecx, 20; repe cmpsb; setb r14b; mov r15, rcx
             xor ecx, ecx; rep movsq
             hlt",
        ),
        &data,
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!((r.r("r8"), r.r("r9")), (DATA + 10, 0));
    let copied: u64 = r.mem64(DATA + 64);
    assert_eq!(copied, u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(r.mem64(DATA + 100) & 0xffff_ffff_ffff, 0x00ab_00ab_00ab);
    assert_eq!(r.r("r10") & 0xff, 17, "lodsb read [DATA + 17]");
    assert_eq!(r.r("r11"), DATA + 16, "and stepped down");
    assert_eq!(
        (r.r("r12"), r.r("r13")),
        (58, DATA + 6),
        "repne scasb stops after the match"
    );
    // DATA+64.. holds 0..9 then stosw bytes at 100..; cmps differs at index 10 (10 vs 0).
    assert_eq!(r.r("r15"), 9, "repe cmpsb stops after the first difference");
    assert_eq!(r.r("r14") & 0xff, 0, "10 - 0 does not borrow");
}

#[test]
fn a_long_rep_goes_round_the_loop_and_finishes() {
    let r = run(
        "longrep",
        &format!("mov rdi, {DATA}; mov eax, 0x5a; mov ecx, 10000; rep stosb; hlt"),
    );
    assert_eq!((r.r("rcx"), r.r("rdi")), (0, DATA + 10000));
    assert_eq!(r.mem64(DATA + 9992), 0x5a5a_5a5a_5a5a_5a5a);
}

/// Random straight-line and branching integer code, with defined flags only (shifts and
/// rotates by one, no multiplies or scans), run natively and under the frontend.
fn random_program(rng: &mut u64, len: usize, memory: bool) -> (String, Vec<String>, String) {
    let mut next = move || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    const R64: [&str; 15] = [
        "rax", "rcx", "rdx", "rbx", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
        "r14", "r15",
    ];
    const R32: [&str; 15] = [
        "eax", "ecx", "edx", "ebx", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d",
        "r13d", "r14d", "r15d",
    ];
    const R16: [&str; 15] = [
        "ax", "cx", "dx", "bx", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w",
        "r14w", "r15w",
    ];
    const R8: [&str; 15] = [
        "al", "cl", "dl", "bl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b",
        "r14b", "r15b",
    ];
    const SIZES: [[&str; 15]; 4] = [R8, R16, R32, R64];
    const ALU: [&str; 9] = [
        "add", "adc", "sub", "sbb", "and", "or", "xor", "cmp", "test",
    ];
    const UN: [&str; 4] = ["inc", "dec", "neg", "not"];
    const SH: [&str; 5] = ["shl", "shr", "sar", "rol", "ror"];
    let mut s = String::new();
    for r in R64 {
        s += &format!("mov {r}, {:#x}\n", next());
    }
    if memory {
        // 256 bytes of the stack, the same on both sides.
        s += "lea rsp, [rsp - 256]\n";
        for k in 0..32 {
            s += &format!("mov rax, {:#x}; mov [rsp + {}], rax\n", next(), 8 * k);
        }
    }
    s += "add rax, rbx\n";
    const PTR: [&str; 4] = ["byte", "word", "dword", "qword"];
    let mut lines = Vec::new();
    for n in 0..len {
        let size = (next() % 4) as usize;
        let (a, b) = (
            SIZES[size][(next() % 15) as usize],
            SIZES[size][(next() % 15) as usize],
        );
        let imm = next() as i64 >> (next() % 64);
        let imm = match size {
            0 => imm as i8 as i64,
            1 => imm as i16 as i64,
            _ => imm as i32 as i64,
        };
        let cc = CC_NAMES[(next() % 16) as usize];
        let off = next() % 249;
        let m = format!("{} ptr [rsp + {off}]", PTR[size]);
        let line = match next() % if memory { 22 } else { 14 } {
            0..=3 => format!("{} {a}, {b}", ALU[(next() % 9) as usize]),
            4 | 5 => format!("{} {a}, {imm}", ALU[(next() % 8) as usize]),
            6 => format!("{} {a}", UN[(next() % 4) as usize]),
            7 => format!("{} {a}, 1", SH[(next() % 5) as usize]),
            8 => format!("set{cc} {}", R8[(next() % 15) as usize]),
            9 if size >= 1 => format!("cmov{cc} {a}, {b}"),
            9 => format!("set{cc} {a}"),
            10 => match next() % 8 {
                0 => format!("loop 1f; xor {a}, {b}; 1:"),
                1 => format!("jrcxz 1f; xor {a}, {b}; 1:"),
                2 => format!(
                    "{} 1f; xor {a}, {b}; 1:",
                    ["loope", "loopne", "jecxz"][(next() % 3) as usize]
                ),
                _ => format!("j{cc} 1f; xor {a}, {b}; 1:"),
            },
            11 if size >= 2 => format!("movzx {a}, {}", R8[(next() % 15) as usize]),
            11 => format!("xchg {a}, {b}"),
            12 => format!(
                "lea {}, [{} + {}*4 + {imm}]",
                R64[(next() % 15) as usize],
                R64[(next() % 15) as usize],
                R64[(next() % 15) as usize]
            ),
            13 => [
                "stc", "clc", "cmc", "cqo", "cdqe", "cwde", "cbw", "cdq", "cwd",
            ][(next() % 9) as usize]
                .to_string(),
            14 => format!("{} {m}, {b}", ALU[(next() % 9) as usize]),
            15 => format!("{} {a}, {m}", ALU[(next() % 8) as usize]),
            16 => format!("{} {m}, {imm}", ALU[(next() % 9) as usize]),
            17 => format!("{} {m}", UN[(next() % 4) as usize]),
            18 => format!("mov {m}, {a}; mov {b}, {m}"),
            19 => format!(
                "push {}; pop {}",
                R64[(next() % 15) as usize],
                R64[(next() % 15) as usize]
            ),
            20 => format!("xadd {m}, {a}"),
            _ => format!("cmpxchg {m}, {a}"),
        };
        // One in four: an instruction that leaves some flags undefined, then an add that
        // defines them all again.
        let line = if next() % 4 == 0 {
            let (x, y) = (
                SIZES[size][(next() % 15) as usize],
                SIZES[size][(next() % 15) as usize],
            );
            let count = next() % (2 * (8 << size) as u64);
            let wide = SIZES[2 + (next() % 2) as usize];
            let (w1, w2) = (wide[(next() % 15) as usize], wide[(next() % 15) as usize]);
            let undefined = match next() % 10 {
                0 => format!("{} {a}, {count}", SH[(next() % 5) as usize]),
                1 => format!("{} {a}, cl", SH[(next() % 5) as usize]),
                2 => format!("{} {b}", ["mul", "imul"][(next() % 2) as usize]),
                3 if size >= 1 => format!("imul {a}, {b}"),
                4 if size >= 1 => format!("imul {a}, {b}, {imm}"),
                5 if size >= 1 => format!(
                    "or {b}, 1; {} {a}, {b}",
                    ["bsf", "bsr", "tzcnt", "lzcnt", "popcnt"][(next() % 5) as usize]
                ),
                6 if size >= 1 => format!(
                    "{} {a}, {}",
                    ["bt", "bts", "btr", "btc"][(next() % 4) as usize],
                    count % (8 << size)
                ),
                7 if w1 != "eax" && w1 != "edx" && w1 != "rax" && w1 != "rdx" => {
                    if next() % 2 == 0 {
                        format!("xor edx, edx; or {w1}, 1; div {w1}")
                    } else {
                        {
                            let ext = if w1.starts_with('e') || w1.ends_with('d') {
                                "cdq"
                            } else {
                                "cqo"
                            };
                            format!("sar rax, 2; {ext}; or {w1}, 1; idiv {w1}")
                        }
                    }
                }
                8 if size >= 1 => {
                    let op = ["shld", "shrd"][(next() % 2) as usize];
                    if size >= 2 && next() % 2 == 0 {
                        format!("{op} {a}, {b}, cl")
                    } else {
                        format!(
                            "{op} {a}, {b}, {}",
                            count % if size == 1 { 16 } else { 8 << size }
                        )
                    }
                }
                _ => format!("xadd {w1}, {w2}"),
            };
            format!("{undefined}; add {x}, {y}")
        } else {
            line
        };
        lines.push(format!("{line} # {n}\n"));
    }
    let mut epi = String::new();
    if memory {
        // Fold the buffer into rax so the comparison of registers covers memory too.
        epi += "xor eax, eax\n";
        for k in 0..32 {
            epi += &format!("rol rax, 1; xor rax, [rsp + {}]\n", 8 * k);
        }
        epi += "lea rsp, [rsp + 256]\n";
    }
    (s, lines, epi)
}

/// Runs random programs against the host; on a difference, reports the shortest failing
/// prefix so the message names the instruction that went wrong.
fn compare_random_programs(seed: u64, memory: bool) {
    compare_programs(seed, if memory { "mem" } else { "" }, |rng| {
        random_program(rng, 60, memory)
    });
}

#[test]
fn random_memory_code_matches_the_host_cpu() {
    compare_random_programs(0x9e37_79b9_7f4a_7c15, true);
}

#[test]
fn random_integer_code_matches_the_host_cpu() {
    compare_random_programs(0x2545_f491_4f6c_dd1d, false);
}

#[test]
fn loop_jrcxz_and_double_shifts() {
    let r = run(
        "loops",
        "xor eax, eax; mov ecx, 5; 1: add eax, 2; loop 1b
         mov r8, rax; xor ecx, ecx; jrcxz 2f; mov r8, 0; 2:
         mov ecx, 10; xor edx, edx; 3: inc edx; cmp edx, 4; loopne 3b; mov r9, rcx
         mov rax, 0x8000000000000001; mov rbx, 0xf000000000000000; shld rax, rbx, 4; setc r10b
         mov esi, 0x1; mov edi, 0x3; shrd esi, edi, 1; setc r11b
         mov r12, 7; mov ecx, 0; shld r12, rbx, cl
         hlt",
    );
    assert_eq!(r.r("r8"), 10, "loop ran five times; jrcxz jumped");
    assert_eq!(r.r("r9"), 6, "loopne stopped when edx reached 4");
    assert_eq!(r.r("rax"), 0x1f, "shld brings in the top of rbx");
    assert_eq!(r.r("r10") & 0xff, 0, "CF: bit 60 of the old rax");
    assert_eq!(r.r("rsi"), 0x8000_0000);
    assert_eq!(r.r("r11") & 0xff, 1, "shrd: CF is the bit shifted out");
    assert_eq!(r.r("r12"), 7, "a zero count changes nothing");
}

#[test]
fn cpuid_reports_sse2_and_the_vendor() {
    let r = run(
        "cpuid",
        "xor eax, eax; cpuid; mov r8, rbx; mov r9, rdx; mov r10, rcx
         mov eax, 1; cpuid; hlt",
    );
    let vendor: Vec<u8> = [r.r("r8"), r.r("r9"), r.r("r10")]
        .iter()
        .flat_map(|w| (*w as u32).to_le_bytes())
        .collect();
    assert_eq!(&vendor, b"TernEmulator");
    assert_ne!(r.r("rdx") & 3 << 25, 0, "SSE and SSE2");
    assert_eq!(r.r("rcx") & 1 << 27, 0, "no OSXSAVE");
}

#[test]
fn rdtsc_counts_up() {
    // The counter differs between runs, so only the JIT runs.
    let code = assemble(
        "rdtsc",
        "rdtsc; shl rdx, 32; or rax, rdx; mov rbx, rax; rdtsc; shl rdx, 32; or rax, rdx; hlt",
    );
    let r = run_mode(&code, &[], 0, ExecMode::Jit);
    assert_eq!(r.ret, EXIT_HLT);
    assert!(r.r("rax") > r.r("rbx"));
}

#[test]
fn sse_moves_and_zeroing_rules() {
    let mut data = Vec::new();
    for k in 0..8u64 {
        data.extend((0x1111_1111_1111_1111 * (k + 1)).to_le_bytes());
    }
    let r = run_full(
        "sse_moves",
        &format!(
            "mov rsi, {DATA}
             movdqa xmm0, [rsi]
             movdqu xmm1, [rsi + 8]
             movaps xmm2, xmm0
             movss xmm2, [rsi + 16]
             movdqa xmm3, xmm0
             movss xmm3, xmm1
             movdqa xmm4, xmm0
             movsd xmm4, [rsi + 24]
             movq xmm5, [rsi + 32]
             mov rax, 0x123456789
             movd xmm6, eax
             movq xmm7, rax
             movdqa xmm8, xmm0
             movhps xmm8, [rsi + 40]
             movlps xmm8, [rsi + 48]
             movdqu [rsi + 64], xmm1
             movss [rsi + 80], xmm0
             movhps [rsi + 88], xmm0
             movq rbx, xmm1
             movd ecx, xmm1
             pmovmskb edx, xmm0
             hlt"
        ),
        &data,
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    let q = |k: u64| 0x1111_1111_1111_1111 * (k + 1);
    assert_eq!(r.xmm[0], [q(0), q(1)]);
    assert_eq!(r.xmm[1], [q(1), q(2)]);
    assert_eq!(
        r.xmm[2],
        [q(2) & 0xffff_ffff, 0],
        "movss from memory zeroes"
    );
    assert_eq!(r.xmm[3], [q(0) & !0xffff_ffff | q(1) & 0xffff_ffff, q(1)]);
    assert_eq!(r.xmm[4], [q(3), 0], "movsd from memory zeroes");
    assert_eq!(r.xmm[5], [q(4), 0]);
    assert_eq!(r.xmm[6], [0x2345_6789, 0]);
    assert_eq!(r.xmm[7], [0x1_2345_6789, 0]);
    assert_eq!(r.xmm[8], [q(6), q(5)]);
    assert_eq!((r.mem64(DATA + 64), r.mem64(DATA + 72)), (q(1), q(2)));
    assert_eq!(
        r.mem64(DATA + 80),
        q(0) & 0xffff_ffff,
        "movss stores four bytes"
    );
    assert_eq!(r.mem64(DATA + 88), q(1));
    assert_eq!((r.r("rbx"), r.r("rcx")), (q(1), q(1) & 0xffff_ffff));
    assert_eq!(r.r("rdx"), 0, "no byte of xmm0 has its top bit set");
}

#[test]
fn misaligned_movdqa_is_a_general_protection_fault() {
    let r = run_full(
        "gp_movdqa",
        &format!("mov rsi, {DATA}; mov rcx, 9; movdqa xmm0, [rsi + 8]; hlt"),
        &[],
        0,
    );
    assert_eq!(r.ret, RET_FAULT_BASE + vector::GP as u32);
    assert_eq!(r.r("rcx"), 9);
    let r = run_full(
        "gp_ldmxcsr",
        &format!("mov rsi, {DATA}; mov dword ptr [rsi], 0x10000; ldmxcsr [rsi]; hlt"),
        &[],
        0,
    );
    assert_eq!(r.ret, RET_FAULT_BASE + vector::GP as u32);
    assert_eq!(r.mxcsr, 0x1f80);
}

#[test]
fn sse_floating_point_sets_mxcsr_flags_and_rounds_as_told() {
    let r = run_full(
        "sse_fp",
        &format!(
            "mov rsi, {DATA}
             mov eax, 1; cvtsi2sd xmm0, eax
             mov eax, 3; cvtsi2sd xmm1, eax
             movapd xmm2, xmm0; divsd xmm2, xmm1
             stmxcsr [rsi]; mov ebx, [rsi]
             mov dword ptr [rsi], 0x5f80; ldmxcsr [rsi]
             movapd xmm3, xmm0; divsd xmm3, xmm1
             cvtsd2si r8, xmm3
             mov rax, 0x7ff8000000000000; movq xmm4, rax
             cvttsd2si r9, xmm4; cvttsd2si r10d, xmm4
             ucomisd xmm4, xmm0
             hlt"
        ),
        &[],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(f64::from_bits(r.xmm[2][0]), 1.0 / 3.0);
    assert_eq!(r.r("rbx"), 0x1f80 | 0x20, "inexact");
    assert_eq!(r.xmm[3][0], (1.0f64 / 3.0).to_bits() + 1, "rounded up");
    assert_eq!(r.r("r8"), 1, "rounded up to an integer too");
    assert_eq!((r.r("r9"), r.r("r10")), (1 << 63, 0x8000_0000));
    assert_eq!(r.rflags & (ZF | PF | CF), ZF | PF | CF, "unordered");
    assert_eq!(r.mxcsr & 0x3f, 0x21, "invalid and inexact");
}

/// Random SSE/SSE2 code: xmm0..15 loaded from a random stack buffer holding integers,
/// floats and doubles; integer, logic, shuffle, floating-point (under random rounding modes,
/// DAZ and FTZ), compare and convert instructions with register and aligned memory sources;
/// the buffer, the XMM registers and MXCSR are compared with the host's.
fn random_sse_program(rng: &mut u64, len: usize) -> (String, Vec<String>, String) {
    let mut next = move || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    const INT: [&str; 52] = [
        "paddb",
        "paddw",
        "paddd",
        "paddq",
        "paddsb",
        "paddsw",
        "paddusb",
        "paddusw",
        "psubb",
        "psubw",
        "psubd",
        "psubq",
        "psubsb",
        "psubsw",
        "psubusb",
        "psubusw",
        "pcmpeqb",
        "pcmpeqw",
        "pcmpeqd",
        "pcmpgtb",
        "pcmpgtw",
        "pcmpgtd",
        "pminub",
        "pmaxub",
        "pminsw",
        "pmaxsw",
        "pavgb",
        "pavgw",
        "psadbw",
        "pmullw",
        "pmulhw",
        "pmulhuw",
        "pmuludq",
        "pmaddwd",
        "punpcklbw",
        "punpcklwd",
        "punpckldq",
        "punpcklqdq",
        "punpckhbw",
        "punpckhwd",
        "punpckhdq",
        "punpckhqdq",
        "packsswb",
        "packuswb",
        "packssdw",
        "pand",
        "pandn",
        "por",
        "pxor",
        "unpcklps",
        "unpckhpd",
        "andnpd",
    ];
    const SHIFT: [&str; 8] = [
        "psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad",
    ];
    const FP: [&str; 36] = [
        "addss",
        "addsd",
        "addps",
        "addpd",
        "subss",
        "subsd",
        "subps",
        "subpd",
        "mulss",
        "mulsd",
        "mulps",
        "mulpd",
        "divss",
        "divsd",
        "divps",
        "divpd",
        "minss",
        "minsd",
        "minps",
        "minpd",
        "maxss",
        "maxsd",
        "maxps",
        "maxpd",
        "sqrtss",
        "sqrtsd",
        "sqrtps",
        "sqrtpd",
        "cvtss2sd",
        "cvtsd2ss",
        "cvtps2pd",
        "cvtpd2ps",
        "cvtdq2ps",
        "cvtps2dq",
        "cvttps2dq",
        "cvtpd2dq",
    ];
    const R64: [&str; 8] = ["rax", "rcx", "rdx", "rbx", "rsi", "rdi", "r8", "r9"];
    const R32: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esi", "edi", "r8d", "r9d"];
    let mut s = String::from("lea rsp, [rsp - 256]\n");
    for k in 0..32 {
        let v = match next() % 4 {
            0 => next(),
            1 => {
                let f = |x: u64| (((x % 2000) as f32 - 1000.0) / 8.0).to_bits() as u64;
                f(next()) | f(next()) << 32
            }
            2 => (((next() % 20000) as f64 - 10000.0) / 3.0).to_bits(),
            _ => next() & 0x807f_ffff_807f_ffff, // denormals and zeros
        };
        s += &format!("mov rax, {v:#x}; mov [rsp + {}], rax\n", 8 * k);
    }
    for i in 0..16 {
        s += &format!("movdqa xmm{i}, [rsp + {}]\n", 16 * i);
    }
    for r in R64 {
        s += &format!("mov {r}, {:#x}\n", next());
    }
    let mut lines = Vec::new();
    for n in 0..len {
        let (a, b) = (next() % 16, next() % 16);
        let src = if next() % 4 == 0 {
            format!("[rsp + {}]", 16 * (next() % 16))
        } else {
            format!("xmm{b}")
        };
        let imm = next() as u8;
        let (r64, r32) = (R64[(next() % 8) as usize], R32[(next() % 8) as usize]);
        let line = match next() % 16 {
            0..=3 => format!("{} xmm{a}, {src}", INT[(next() % 52) as usize]),
            4 => format!("{} xmm{a}, {}", SHIFT[(next() % 8) as usize], imm % 40),
            5 => format!("{} xmm{a}, xmm{b}", SHIFT[(next() % 8) as usize],),
            6 => format!(
                "{} xmm{a}, {src}, {imm}",
                ["pshufd", "pshuflw", "pshufhw", "shufps", "shufpd"][(next() % 5) as usize]
            ),
            7 => format!(
                "{} xmm{a}, {}",
                ["pslldq", "psrldq"][(next() % 2) as usize],
                imm % 20
            ),
            8..=10 => format!("{} xmm{a}, {src}", FP[(next() % 36) as usize]),
            11 => format!(
                "{} xmm{a}, {src}, {}",
                ["cmpps", "cmppd", "cmpss", "cmpsd"][(next() % 4) as usize],
                imm % 8
            ),
            12 => format!(
                "{} xmm{a}, xmm{b}; adc {r64}, 0",
                ["comiss", "comisd", "ucomiss", "ucomisd"][(next() % 4) as usize]
            ),
            13 => match next() % 6 {
                0 => format!("cvtsi2sd xmm{a}, {r64}"),
                1 => format!("cvtsi2ss xmm{a}, {r32}"),
                2 => format!("cvtsd2si {r64}, xmm{b}"),
                3 => format!("cvttss2si {r32}, xmm{b}"),
                4 => format!("pextrw {r32}, xmm{b}, {imm}"),
                _ => format!("pinsrw xmm{a}, {r32}, {imm}"),
            },
            14 => match next() % 6 {
                0 => format!("pmovmskb {r32}, xmm{b}"),
                1 => format!("movmskps {r32}, xmm{b}"),
                2 => format!("movss xmm{a}, xmm{b}"),
                3 => format!(
                    "movsd xmm{a}, {}",
                    if next() % 2 == 0 {
                        format!("xmm{b}")
                    } else {
                        format!("[rsp + {}]", 8 * (next() % 32))
                    }
                ),
                4 => format!("movhps xmm{a}, [rsp + {}]", 8 * (next() % 32)),
                _ => format!("movdqu [rsp + {}], xmm{b}", next() % 240),
            },
            // A new rounding mode, DAZ and FTZ; the exception flags start clean.
            _ => format!(
                "push {:#x}; ldmxcsr [rsp]; add rsp, 8",
                0x1f80 | (next() & 0xe040)
            ),
        };
        lines.push(format!("{line} # {n}\n"));
    }
    let mut epi = String::from("xor eax, eax\n");
    for k in 0..32 {
        epi += &format!("rol rax, 1; xor rax, [rsp + {}]\n", 8 * k);
    }
    epi += "lea rsp, [rsp + 256]\n";
    (s, lines, epi)
}

#[test]
fn random_sse_code_matches_the_host_cpu() {
    compare_programs(0x1234_5678_9abc_def1, "sse", |rng| {
        random_sse_program(rng, 60)
    });
}

#[test]
fn fxsave_and_fxrstor_round_trip_xmm_and_mxcsr() {
    let r = run_full(
        "fxsave",
        &format!(
            "mov rsi, {DATA}
             mov rax, 0x1122334455667788; movq xmm3, rax; pshufd xmm15, xmm3, 0x44
             push 0x3f80; ldmxcsr [rsp]; add rsp, 8
             fxsave [rsi]
             pxor xmm3, xmm3; pxor xmm15, xmm15
             push 0x1f80; ldmxcsr [rsp]; add rsp, 8
             fxrstor [rsi]
             hlt"
        ),
        &[],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(r.xmm[3], [0x1122_3344_5566_7788, 0]);
    assert_eq!(r.xmm[15], [0x1122_3344_5566_7788; 2]);
    assert_eq!(r.mxcsr, 0x3f80);
    assert_eq!(r.mem64(DATA) & 0xffff, 0x037f, "FCW at its reset value");
    assert_eq!(
        r.mem64(DATA + 24),
        0xffff << 32 | 0x3f80,
        "MXCSR and MXCSR_MASK"
    );
    assert_eq!(r.mem64(DATA + 160 + 3 * 16), 0x1122_3344_5566_7788);
}

/// Random x87 code: loads of doubles, floats and integers (ordinary values, zeros,
/// infinities, NaNs, denormals), arithmetic in every form, compares (`fnstsw` and `fcomi`
/// results folded into r15), stores to the buffer, constants, under random precision and
/// rounding control; ends by folding the buffer into rax, the status and control words into
/// r15/r14, and popping ST0..7 into xmm0..7 as 80-bit values. Stack faults happen too.
fn random_x87_program(rng: &mut u64, len: usize) -> (String, Vec<String>, String) {
    let mut next = move || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    const VALUES: [f64; 16] = [
        0.0,
        -0.0,
        1.0,
        -2.5,
        std::f64::consts::PI,
        1e300,
        -1e-300,
        5e-324,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        0.1,
        7.0,
        -123456.789,
        65536.5,
        1.5e10,
    ];
    let mut s = String::from("fninit\nxor r15d, r15d\nxor r14d, r14d\nlea rsp, [rsp - 256]\n");
    for k in 0..30 {
        let v = match next() % 4 {
            0 => next() as i64 as f64 / 1e6,
            _ => VALUES[(next() % 16) as usize],
        };
        s += &format!("mov rax, {:#x}; mov [rsp + {}], rax\n", v.to_bits(), 8 * k);
    }
    // Two floats in slot 30, one word, dword and qword integer in slot 31 (below 255).
    s += "mov rax, 0xc0490fdb3f800001; mov [rsp + 240], rax\n";
    s += "mov rax, 0x0000fff5ffff8001; mov [rsp + 248], rax\n";
    s += "fld qword ptr [rsp]\nfld qword ptr [rsp + 8]\nfld qword ptr [rsp + 16]\n";
    const ARITH: [&str; 6] = ["fadd", "fsub", "fsubr", "fmul", "fdiv", "fdivr"];
    const CONST: [&str; 7] = [
        "fld1", "fldz", "fldpi", "fldl2e", "fldln2", "fldlg2", "fldl2t",
    ];
    const CW: [u16; 6] = [0x037f, 0x077f, 0x0b7f, 0x0f7f, 0x027f, 0x007f];
    let mut depth: i32 = 3;
    let mut lines = Vec::new();
    for n in 0..len {
        let q = 8 * (next() % 30);
        let i = next() % 8;
        let j = 1 + next() % 7;
        let op = ARITH[(next() % 6) as usize];
        // The full status after instructions that define C0, C2 and C3; elsewhere those are
        // "undefined" (and do differ between a run and its emulation), so they are masked.
        let status = "fnstsw ax; movzx eax, ax; rol r15, 5; xor r15, rax";
        let masked = "fnstsw ax; and eax, 0x3aff; rol r15, 5; xor r15, rax";
        let eflags = "pushfq; pop rdx; and edx, 0x8d5; rol r15, 3; xor r15, rdx";
        // Keep the stack mostly between one and seven deep, but not always.
        let want_push = depth < 2 || (depth < 7 && next() % 2 == 0);
        let line = match next() % 12 {
            0 | 1 if want_push => match next() % 7 {
                0 => format!("fld qword ptr [rsp + {q}]"),
                1 => "fld dword ptr [rsp + 244]".to_string(),
                2 => "fild word ptr [rsp + 248]".to_string(),
                3 => "fild dword ptr [rsp + 248]".to_string(),
                4 => format!("fild qword ptr [rsp + {q}]"),
                5 => format!("fld st({i})"),
                _ => CONST[(next() % 7) as usize].to_string(),
            },
            0 | 1 => match next() % 6 {
                0 => format!("fstp qword ptr [rsp + {q}]"),
                1 => format!("fstp dword ptr [rsp + {q}]"),
                2 => format!("fistp dword ptr [rsp + {q}]"),
                3 => format!("fistp qword ptr [rsp + {q}]"),
                4 => format!("fisttp qword ptr [rsp + {q}]"),
                _ => format!("{op}p st({j}), st"),
            },
            2 | 3 => match next() % 5 {
                0 => format!("{op} st, st({i})"),
                1 => format!("{op} st({j}), st"),
                2 => format!("{op} qword ptr [rsp + {q}]"),
                3 => format!("{op} dword ptr [rsp + 240]"),
                _ => format!(
                    "fi{} {} ptr [rsp + 248]",
                    &op[1..],
                    ["word", "dword"][(next() % 2) as usize]
                ),
            },
            4 => [
                "fchs", "fabs", "fsqrt", "frndint", "fscale", "fprem", "fprem1", "f2xm1", "fsin",
                "fcos", "fyl2x", "fyl2xp1", "fpatan", "fincstp", "fdecstp",
            ][(next() % 15) as usize]
                .to_string(),
            5 => format!("fxch st({j})"),
            6 => format!(
                "{}; {status}",
                [
                    format!("fcom st({i})"),
                    format!("fucom st({i})"),
                    format!("fcom qword ptr [rsp + {q}]"),
                    "ftst".to_string(),
                    "fxam".to_string(),
                ][(next() % 5) as usize]
            ),
            7 => format!(
                "{} st, st({i}); {eflags}",
                ["fcomi", "fucomi"][(next() % 2) as usize]
            ),
            8 => match next() % 4 {
                0 => format!("fst qword ptr [rsp + {q}]"),
                1 => format!("fist word ptr [rsp + {q}]"),
                2 => format!("fst st({j})"),
                _ => format!(
                    "fld tbyte ptr [rsp + {}]; fstp tbyte ptr [rsp + {q}]",
                    8 * (next() % 29)
                ),
            },
            9 => format!(
                "mov word ptr [rsp + 250], {:#x}; fldcw word ptr [rsp + 250]",
                CW[(next() % 6) as usize]
            ),
            10 if depth >= 3 => match next() % 4 {
                0 => format!("fcomp st(1); {status}"),
                1 => format!("fucompp; {status}"),
                2 => format!("fcomip st, st(1); {masked}"),
                _ => format!("fucomip st, st(2); {eflags}"),
            },
            // ffree leaves all four condition codes undefined; fxam defines them again.
            10 => format!("ffree st({i}); fxam"),
            11 if next() % 2 == 0 => format!(
                "fcomi st, st({j}); fcmov{} st, st({i})",
                ["b", "nb", "e", "ne", "be", "nbe", "u", "nu"][(next() % 8) as usize]
            ),
            _ => format!("{masked}; fnclex"),
        };
        depth += match line.split(&[' ', ';'][..]).next().unwrap() {
            "fld" | "fild" | "fld1" | "fldz" | "fldpi" | "fldl2e" | "fldln2" | "fldlg2"
            | "fldl2t" => 1,
            "fyl2x" | "fyl2xp1" | "fpatan" => -1,
            "fptan" | "fsincos" | "fxtract" => 1,
            "fstp" | "fistp" | "fisttp" | "fcomp" | "fcomip" | "faddp" | "fsubp" | "fsubrp"
            | "fmulp" | "fdivp" | "fdivrp" => -1,
            "fucompp" | "fucomip" => -2 + (line.starts_with("fucomip")) as i32,
            _ => 0,
        };
        lines.push(format!("{line} # {n}\n"));
    }
    let mut epi = String::from(
        "fnstsw ax; and eax, 0x3aff; xor r15, rax\n\
         fnstcw word ptr [rsp + 250]; movzx eax, word ptr [rsp + 250]; xor r14, rax\n\
         xor eax, eax\n",
    );
    for k in 0..32 {
        epi += &format!("rol rax, 1; xor rax, [rsp + {}]\n", 8 * k);
    }
    for k in 0..8 {
        epi += &format!(
            "pxor xmm{k}, xmm{k}; movdqu [rsp], xmm{k}; fstp tbyte ptr [rsp]; movdqu xmm{k}, [rsp]\n"
        );
    }
    epi += "lea rsp, [rsp + 256]\n";
    (s, lines, epi)
}

#[test]
fn random_x87_code_matches_the_host_cpu() {
    compare_programs(0x5851_f42d_4c95_7f2d, "x87", |rng| {
        random_x87_program(rng, 40)
    });
}

#[test]
fn x87_arithmetic_stores_and_fnstsw() {
    let r = run_full(
        "x87basic",
        &format!(
            "mov rsi, {DATA}
             fninit
             fld1; fldpi; faddp st(1), st
             fstp qword ptr [rsi]
             mov dword ptr [rsi + 8], -7; fild dword ptr [rsi + 8]
             fistp word ptr [rsi + 12]
             fnstcw word ptr [rsi + 16]
             fldz; fld1; fdivrp st(1), st
             fnstsw ax
             fcomi st, st(0); setz bl
             hlt"
        ),
        &[],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(f64::from_bits(r.mem64(DATA)), 1.0 + std::f64::consts::PI);
    assert_eq!(r.mem64(DATA + 8) >> 32 & 0xffff, 0xfff9, "-7 as a word");
    assert_eq!(r.mem64(DATA + 16) & 0xffff, 0x037f, "fnstcw");
    assert_eq!(
        r.r("rax") & 0x3f,
        0x24,
        "1 + pi is inexact, 1 / 0 divides by zero"
    );
    assert_eq!(r.r("rax") >> 11 & 7, 7, "TOP after one push");
    assert_eq!(r.r("rbx") & 0xff, 1, "fcomi st, st is equal");
}

#[test]
fn x87_fxsave_holds_the_stack_and_fxrstor_brings_it_back() {
    let r = run_full(
        "x87fxsave",
        &format!(
            "mov rsi, {DATA}
             fninit; fld1; fldpi
             fxsave [rsi]
             fninit
             fxrstor [rsi]
             fstp qword ptr [rsi + 512]; fstp qword ptr [rsi + 520]
             hlt"
        ),
        &[],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    let head = r.mem64(DATA);
    assert_eq!(head & 0xffff, 0x037f, "FCW");
    assert_eq!(head >> 16 & 0xffff, 6 << 11, "FSW: TOP 6");
    assert_eq!(head >> 32 & 0xff, 0xc0, "abridged FTW: R6 and R7 full");
    assert_eq!(
        r.mem64(DATA + 32),
        0xc90f_daa2_2168_c235,
        "ST0 = pi's mantissa"
    );
    assert_eq!(r.mem64(DATA + 40), 0x4000, "ST0's exponent, the rest zero");
    assert_eq!(f64::from_bits(r.mem64(DATA + 512)), std::f64::consts::PI);
    assert_eq!(f64::from_bits(r.mem64(DATA + 520)), 1.0);
}
/// `fnstenv` stores FCW, FSW and the full tag word (zero, special, valid, empty) as the host
/// does, then masks every exception; `fldenv` brings the status and the stack back. The
/// instruction and data pointers are not tracked (zero), so they are left out.
#[test]
fn x87_fnstenv_and_fldenv_match_the_host() {
    let body = "fninit; fld1; fldz; fldpi; fld1; fld1; fdiv st, st(1); fxch st(1); fdivrp st(2), st
                mov word ptr [rsp - 72], 0x0c7a; fldcw [rsp - 72]
                lea rsp, [rsp - 64]; fnstenv [rsp]
                mov rax, [rsp]; mov ebx, [rsp + 8]; mov ecx, [rsp + 24]
                fnstcw [rsp + 32]; movzx esi, word ptr [rsp + 32]
                fninit; fldenv [rsp]; fnstsw [rsp + 32]; movzx edi, word ptr [rsp + 32]
                fnstcw [rsp + 32]; movzx r8d, word ptr [rsp + 32]
                fstp qword ptr [rsp]; mov r9, [rsp]
                lea rsp, [rsp + 64]";
    assert_eq!(host_mismatch("x87env", body), None);
}

/// Random code of the SSE instructions that are translated inline (moves, loads, 64-bit
/// unpacks and shuffles, bitwise logic and the zeroing idioms) mixed with scalar and packed
/// arithmetic, compares and conversions that read their source from memory, on ordinary
/// numbers, zeros, denormals, infinities and NaNs.
fn random_sse_move_program(rng: &mut u64, len: usize) -> (String, Vec<String>, String) {
    let mut next = move || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    const SPECIAL: [u64; 6] = [
        0,
        0x8000_0000_0000_0000,
        0x7ff0_0000_0000_0000,
        0x7ff8_0000_0000_0001,
        0x0000_0000_0000_0123,
        0x3ff0_0000_0000_0000,
    ];
    const LOGIC: [&str; 12] = [
        "andps", "andpd", "andnps", "andnpd", "orps", "orpd", "xorps", "xorpd", "pand", "pandn",
        "por", "pxor",
    ];
    const MOVE: [&str; 6] = ["movaps", "movapd", "movdqa", "movups", "movupd", "movdqu"];
    const UNPACK: [&str; 4] = ["unpcklpd", "unpckhpd", "punpcklqdq", "punpckhqdq"];
    const ARITH: [&str; 10] = [
        "addsd", "subsd", "mulsd", "divsd", "sqrtsd", "addpd", "mulpd", "subpd", "maxsd", "minpd",
    ];
    let mut s = String::from("lea rsp, [rsp - 288]\n");
    for k in 0..36 {
        let v = match next() % 4 {
            0 => SPECIAL[(next() % 6) as usize],
            1 => next(),
            _ => ((next() % 20000) as f64 / 7.0 - 1000.0).to_bits(),
        };
        s += &format!("mov rax, {v:#x}; mov [rsp + {}], rax\n", 8 * k);
    }
    for i in 0..16 {
        s += &format!("movdqa xmm{i}, [rsp + {}]\n", 16 * (i % 16));
    }
    s += "mov rax, 0x0123456789abcdef; mov ecx, 0x89abcdef\n";
    let mut lines = Vec::new();
    for n in 0..len {
        let (a, b) = (next() % 16, next() % 16);
        let aligned = format!("[rsp + {}]", 16 * (next() % 16));
        let q = format!("[rsp + {}]", 8 * (next() % 32));
        let src = if next() % 3 == 0 {
            aligned.clone()
        } else {
            format!("xmm{b}")
        };
        let line = match next() % 14 {
            0 | 1 => format!("{} xmm{a}, {src}", MOVE[(next() % 6) as usize]),
            2 => format!("movups xmm{a}, [rsp + {}]", next() % 256),
            3 => match next() % 4 {
                0 => format!("movsd xmm{a}, xmm{b}"),
                1 => format!("movsd xmm{a}, qword ptr {q}"),
                2 => format!("movss xmm{a}, xmm{b}"),
                _ => format!("movss xmm{a}, dword ptr {q}"),
            },
            4 => match next() % 5 {
                0 => format!("movq xmm{a}, xmm{b}"),
                1 => format!("movq xmm{a}, qword ptr {q}"),
                2 => format!("movq xmm{a}, rax"),
                3 => format!("movd xmm{a}, ecx"),
                _ => format!("movd xmm{a}, dword ptr {q}"),
            },
            5 => match next() % 6 {
                0 => format!("movlpd xmm{a}, {q}"),
                1 => format!("movlps xmm{a}, {q}"),
                2 => format!("movhpd xmm{a}, {q}"),
                3 => format!("movhps xmm{a}, {q}"),
                4 => format!("movhlps xmm{a}, xmm{b}"),
                _ => format!("movlhps xmm{a}, xmm{b}"),
            },
            6 => format!("{} xmm{a}, {src}", UNPACK[(next() % 4) as usize]),
            7 => format!("shufpd xmm{a}, {src}, {}", next() % 4),
            8 => format!("{} xmm{a}, {src}", LOGIC[(next() % 12) as usize]),
            9 => format!("{} xmm{a}, xmm{a}", LOGIC[(next() % 12) as usize]),
            10 => {
                let op = ARITH[(next() % 10) as usize];
                if op.ends_with("sd") && next() % 2 == 0 {
                    format!("{op} xmm{a}, qword ptr {q}")
                } else {
                    format!("{op} xmm{a}, {src}")
                }
            }
            11 => match next() % 4 {
                0 => format!("ucomisd xmm{a}, qword ptr {q}; adc rax, 0"),
                1 => format!("comisd xmm{a}, xmm{b}; adc rax, 0"),
                2 => format!("cvtsi2sd xmm{a}, qword ptr {q}"),
                _ => format!("cvttsd2si rcx, qword ptr {q}; cvttss2si rdx, dword ptr {q}"),
            },
            12 => match next() % 3 {
                0 => format!("movsd qword ptr {q}, xmm{a}"),
                1 => format!("movaps {aligned}, xmm{a}"),
                _ => format!("movq rax, xmm{a}"),
            },
            _ => format!(
                "push {:#x}; ldmxcsr [rsp]; add rsp, 8",
                0x1f80 | (next() & 0x6000)
            ),
        };
        lines.push(format!("{line} # {n}\n"));
    }
    let mut epi = String::from("xor eax, eax\n");
    for k in 0..36 {
        epi += &format!("rol rax, 1; xor rax, [rsp + {}]\n", 8 * k);
    }
    epi += "lea rsp, [rsp + 288]\n";
    (s, lines, epi)
}

#[test]
fn random_sse_moves_and_logic_match_the_host_cpu() {
    compare_programs(0x5eed_0f5e_5e1a_1e55, "ssemove", |rng| {
        random_sse_move_program(rng, 60)
    });
}
