//! Per-instruction edge cases of the x86_64 integer ISA, one test per class, checked two
//! ways: against the host CPU (the same code run natively; only the flags the SDM defines
//! for the case are compared) and against the SDM's own statements (asserted values).
//!
//! Host comparisons run a list of lines; each line folds what it checks (results, flags
//! masked to the defined ones, memory) into r14 and r15, so one native run covers many
//! cases, and a difference is reported with the first line that causes it. Memory lives in
//! a 512-byte buffer at rbp (on the stack on both sides); addresses left in rbx, rsi and rdi
//! are made relative to rbp before the registers are compared.

mod common;

use common::*;
use frontend::x86_64::flags::{AF, CF, OF, PF, SF, ZF};
use frontend::x86_64::translate::{vector, EXIT_HLT, EXIT_UD};

/// The arithmetic flags.
const ALL: u64 = CF | PF | AF | ZF | SF | OF;

const REGS: [[&str; 4]; 4] = [
    ["r8b", "r8w", "r8d", "r8"],
    ["r9b", "r9w", "r9d", "r9"],
    ["r10b", "r10w", "r10d", "r10"],
    ["r11b", "r11w", "r11d", "r11"],
];
const PTR: [&str; 4] = ["byte", "word", "dword", "qword"];

/// Sets every register but rsp to a known value and makes the buffer at rbp.
fn prologue() -> String {
    let mut s = String::from("sub rsp, 1024; and rsp, -16; mov rbp, rsp\n");
    for k in 0..64 {
        s += &format!(
            "mov rax, {:#x}; mov [rbp + {}], rax\n",
            0x0123_4567_89ab_cdefu64
                .wrapping_mul(k + 1)
                .rotate_left(k as u32),
            8 * k
        );
    }
    for (n, r) in [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
        "r15",
    ]
    .iter()
    .enumerate()
    {
        s += &format!(
            "mov {r}, {:#x}\n",
            0x1111_1111_1111_1111u64 * (n as u64 + 1)
        );
    }
    // rbx, rsi and rdi hold pointers into the buffer (the epilogue makes them relative).
    s + "lea rbx, [rbp + 0x100]; lea rsi, [rbp + 0x108]; lea rdi, [rbp + 0x110]; cld; xor eax, eax\n"
}

/// Folds the buffer into r13, makes rbx/rsi/rdi relative to rbp, clears rbp.
fn epilogue() -> String {
    let mut s = String::from("cld\n");
    for k in 0..64 {
        s += &format!("rol r13, 3; xor r13, [rbp + {}]\n", 8 * k);
    }
    s + "sub rbx, rbp; sub rsi, rbp; sub rdi, rbp; xor ebp, ebp\n"
}

/// `r` folded into r14.
fn fold(r: &str) -> String {
    format!("rol r14, 7; xor r14, {r}")
}

/// The flags in `mask` folded into r15 (clobbers rax).
fn flags(mask: u64) -> String {
    format!("pushfq; pop rax; and rax, {mask:#x}; rol r15, 5; xor r15, rax")
}

/// Runs `lines` natively and under the frontend; on a difference, panics naming the first
/// line after which the states differ (found by bisection: the folds make a difference
/// stick).
fn vs_host(name: &str, lines: &[String]) {
    let (pro, epi) = (prologue(), epilogue());
    let body = |k: usize| {
        let mut s = pro.clone();
        for (n, l) in lines[..k].iter().enumerate() {
            s += &format!("{l} # {n}\n");
        }
        s + &epi
    };
    let name = format!("isa_{name}");
    if host_mismatch(&name, &body(lines.len())).is_none() {
        return;
    }
    let (mut good, mut bad) = (0, lines.len());
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if host_mismatch(&name, &body(mid)).is_some() {
            bad = mid;
        } else {
            good = mid;
        }
    }
    let what = host_mismatch(&name, &body(bad)).unwrap();
    panic!(
        "{name}: {what} after line {}: `{}`",
        bad - 1,
        lines[bad - 1]
    );
}

/// Values with interesting bit patterns at every size.
const VALUES: [u64; 6] = [
    0,
    1,
    0x8000_0000_0000_0001,
    0x7fff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0x8123_4567_89ab_cdef,
];

#[test]
fn shifts_and_rotates_mask_the_count_and_define_the_flags_the_sdm_defines() {
    let mut lines = Vec::new();
    for op in ["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"] {
        for size in 0..4u8 {
            let bits = 8u64 << size;
            let mask_count = if size == 3 { 63 } else { 31 };
            for count in [
                0,
                1,
                2,
                bits - 1,
                bits,
                bits + 1,
                31,
                32,
                33,
                63,
                64,
                65,
                255,
            ] {
                for (k, v) in VALUES.iter().enumerate() {
                    let c = count & mask_count;
                    let defined = match (op, c) {
                        (_, 0) => ALL,
                        ("shl" | "shr" | "sar", 1) => ALL & !AF,
                        ("shl" | "shr", c) if c >= bits => PF | ZF | SF,
                        ("shl" | "shr" | "sar", _) => CF | PF | ZF | SF,
                        (_, 1) => ALL,
                        _ => ALL & !OF,
                    };
                    let r = REGS[k % 4][size as usize];
                    let carry = if k % 2 == 0 { "stc" } else { "clc" };
                    // A register destination by cl, then a memory one by the immediate.
                    lines.push(format!(
                        "mov {}, {v:#x}; mov r12d, {:#x}; add r12b, 0x7f; {carry}
                         mov ecx, {count:#x}; {op} {r}, cl; {}; {}",
                        REGS[k % 4][3],
                        k * 0x35,
                        fold(REGS[k % 4][3]),
                        flags(defined)
                    ));
                    lines.push(format!(
                        "mov r12d, {:#x}; add r12b, 0x7f; {carry}
                         {op} {} ptr [rbp + {}], {count}; {}",
                        k * 0x35 + 1,
                        PTR[size as usize],
                        8 * k,
                        flags(defined)
                    ));
                }
            }
            // The one-operand form (count 1).
            lines.push(format!(
                "mov {}, 0x81; stc; {op} {}; {}; {}",
                REGS[0][3],
                REGS[0][size as usize],
                fold(REGS[0][3]),
                flags(ALL & !AF)
            ));
        }
    }
    vs_host("shifts", &lines);
}

#[test]
fn rcl_and_rcr_turn_the_value_and_cf_as_one_wider_register() {
    // 8 bits rotate through 9: rcl by 9 is the identity, rcl by 8 a right turn by one.
    let r = run(
        "isa_rcx",
        "mov eax, 0x83; stc; rcl al, 9; setc bl; mov r8, rax
         mov eax, 0x83; stc; rcl al, 8; setc r13b; mov r9, rax
         mov eax, 0x8001; clc; rcr ax, 1; setc dl; seto sil; mov r10, rax
         mov rax, 1; stc; rcr rax, 1; setc dil; mov r11, rax
         mov rax, 0xff; stc; mov ecx, 64; rcl eax, cl; mov r12, rax
         hlt",
    );
    assert_eq!((r.r("r8") & 0xff, r.r("rbx") & 0xff), (0x83, 1));
    assert_eq!((r.r("r9") & 0xff, r.r("r13") & 0xff), (0xc1, 1));
    assert_eq!(r.r("r10") & 0xffff, 0x4000);
    assert_eq!(
        (r.r("rdx") & 0xff, r.r("rsi") & 0xff),
        (1, 1),
        "CF = old bit 0; OF = old MSB xor old CF"
    );
    assert_eq!(
        (r.r("r11"), r.r("rdi") & 0xff),
        (1 << 63, 1),
        "CF in at the top, bit 0 out"
    );
    assert_eq!(
        r.r("r12"),
        0xff,
        "count 64 masks to 0 for 32 bits: the register is only zero-extended"
    );
}

#[test]
fn divide_errors_at_every_size_are_faults_that_change_nothing() {
    let cases = [
        ("div bl", "xor ebx, ebx; mov eax, 1"),
        ("div bx", "xor ebx, ebx; mov eax, 1"),
        ("div ebx", "xor ebx, ebx; mov eax, 1"),
        ("div rbx", "xor ebx, ebx; mov eax, 1"),
        ("idiv bl", "xor ebx, ebx; mov eax, 1"),
        ("idiv rbx", "xor ebx, ebx; mov eax, 1"),
        // Quotient overflow: 0x100 / 1 in 8 bits, rdx:rax >= divisor << width.
        ("div bl", "mov ebx, 1; mov eax, 0x100"),
        ("div bx", "mov ebx, 1; mov edx, 1; xor eax, eax"),
        ("div ebx", "mov ebx, 2; mov edx, 2; xor eax, eax"),
        ("div rbx", "mov ebx, 3; mov edx, 3; xor eax, eax"),
        // INT_MIN / -1 at every size.
        ("idiv bl", "mov ebx, -1; mov eax, 0xff80"),
        ("idiv bx", "mov ebx, -1; mov eax, 0x8000; mov edx, 0xffff"),
        ("idiv ebx", "mov ebx, -1; mov eax, 0x80000000; cdq"),
        ("idiv rbx", "mov rbx, -1; mov rax, 1 << 63; cqo"),
        // A positive quotient one too large for the signed range.
        ("idiv bl", "mov ebx, 1; mov eax, 0x80"),
    ];
    for (n, (op, setup)) in cases.iter().enumerate() {
        let name = format!("isa_de{n}");
        let src = format!("mov rdx, 0x5555; mov rcx, 9; {setup}; cmp ecx, 9; {op}; hlt");
        let r = run_full(&name, &src, &[], 0);
        assert_eq!(
            r.ret,
            RET_FAULT_BASE + vector::DE as u32,
            "{op} after {setup}"
        );
        assert_eq!(r.r("rcx"), 9, "{op}: what came before ran");
        let before = run(
            &format!("{name}b"),
            &format!("mov rdx, 0x5555; mov rcx, 9; {setup}; cmp ecx, 9; hlt"),
        );
        assert_eq!(r.regs, before.regs, "{op}: registers unchanged");
        assert_eq!(r.rflags, before.rflags, "{op}: flags unchanged");
    }
}

#[test]
fn multiplies_set_cf_and_of_when_the_high_half_matters() {
    let mut lines = Vec::new();
    let pairs: [(u64, u64); 6] = [
        (3, 5),
        (u64::MAX, u64::MAX),
        (0x80, 2),
        (0x7fff_ffff, 2),
        (1 << 63, 1),
        (0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321),
    ];
    for (a, b) in pairs {
        for size in 0..4 {
            let (ra, rb) = (REGS[0][size], REGS[1][size]);
            for op in ["mul", "imul"] {
                lines.push(format!(
                    "mov rax, {a:#x}; mov r9, {b:#x}; mov rdx, -1; {op} {rb}; {}; {}; {}",
                    fold("rax"),
                    fold("rdx"),
                    flags(CF | OF)
                ));
            }
            if size > 0 {
                lines.push(format!(
                    "mov r8, {a:#x}; mov r9, {b:#x}; imul {ra}, {rb}; {}; {}",
                    fold("r8"),
                    flags(CF | OF)
                ));
                lines.push(format!(
                    "mov r9, {b:#x}; imul {ra}, {rb}, -3; {}; {}",
                    fold("r8"),
                    flags(CF | OF)
                ));
                lines.push(format!(
                    "mov r9, {b:#x}; imul {ra}, {} ptr [rbp + 8], 0x7f; {}; {}",
                    PTR[size],
                    fold("r8"),
                    flags(CF | OF)
                ));
            }
        }
    }
    vs_host("mul", &lines);
}

#[test]
fn bit_scans_and_counts_including_a_zero_source() {
    let mut lines = Vec::new();
    for v in VALUES
        .iter()
        .chain(&[0x10, 0x8000, 0x100_0000, 0xf0f0_0000_0000])
    {
        for (d, s) in REGS[0][1..].iter().zip(&REGS[1][1..]) {
            for op in ["tzcnt", "lzcnt", "popcnt"] {
                // CF and ZF defined for tzcnt/lzcnt; popcnt clears the others.
                let defined = if op == "popcnt" { ALL } else { CF | ZF };
                lines.push(format!(
                    "mov r8, -1; mov r9, {v:#x}; {op} {d}, {s}; {}; {}",
                    fold("r8"),
                    flags(defined)
                ));
            }
            // bsf/bsr: ZF says whether the source was zero; a zero source leaves the whole
            // destination register as it was (also its upper half for 32 bits).
            for op in ["bsf", "bsr"] {
                lines.push(format!(
                    "mov r8, 0x123456789; mov r9, {v:#x}; {op} {d}, {s}; {}; {}",
                    fold("r8"),
                    flags(ZF)
                ));
            }
        }
    }
    vs_host("scans", &lines);
    // The SDM's values for a zero source.
    let r = run(
        "isa_scan0",
        "xor ebx, ebx; tzcnt ax, bx; setc cl; lzcnt rdx, rbx; mov r8, -1; bsf r8, rbx; setz sil
         popcnt r9, rbx; setz dil
         hlt",
    );
    assert_eq!(r.r("rax") & 0xffff, 16, "tzcnt of 0 is the operand size");
    assert_eq!(r.r("rcx") & 0xff, 1, "with CF set");
    assert_eq!(r.r("rdx"), 64);
    assert_eq!((r.r("r8"), r.r("rsi") & 0xff), (u64::MAX, 1));
    assert_eq!((r.r("r9"), r.r("rdi") & 0xff), (0, 1));
}

#[test]
fn bit_tests_address_a_bit_string_with_register_offsets() {
    let mut lines = Vec::new();
    for op in ["bt", "bts", "btr", "btc"] {
        for size in 1..4 {
            let r = REGS[1][size];
            for off in [0i64, 5, 31, 63, 64, 100, 1000, 2047, -1, -8, -65, -200] {
                // The buffer is 512 bytes at rbp: aim the base into its middle so every
                // offset stays inside.
                lines.push(format!(
                    "mov r9, {off}; {op} {} ptr [rbp + 256], {r}; {}",
                    PTR[size],
                    flags(CF)
                ));
            }
            for imm in [0, 7, 15, 17, 31, 33, 63, 127] {
                // An immediate offset is taken modulo the operand size.
                lines.push(format!(
                    "{op} {} ptr [rbp + 16], {imm}; {}",
                    PTR[size],
                    flags(CF)
                ));
                lines.push(format!(
                    "mov r8, 0x5a5a5a5a5a5a5a5a; {op} {}, {imm}; {}; {}",
                    REGS[0][size],
                    fold("r8"),
                    flags(CF)
                ));
            }
            // A register operand: the offset register is taken modulo the size too.
            lines.push(format!(
                "mov r8, 0x5a5a5a5a5a5a5a5a; mov r9, 0x1234567; {op} {}, {r}; {}; {}",
                REGS[0][size],
                fold("r8"),
                flags(CF)
            ));
        }
    }
    vs_host("bittest", &lines);
}

#[test]
fn string_instructions_go_down_with_df_and_do_nothing_with_a_zero_count() {
    let mut lines = Vec::new();
    for op in [
        "movsb", "movsw", "movsd", "movsq", "stosb", "stosw", "stosd", "stosq", "lodsb", "lodsw",
        "lodsd", "lodsq", "scasb", "scasw", "scasd", "scasq", "cmpsb", "cmpsw", "cmpsd", "cmpsq",
    ] {
        let compares = op.starts_with("scas") || op.starts_with("cmps");
        let defined = if compares { ALL } else { 0 };
        for (dir, rep, count) in [
            ("std", "", 1),
            ("std", "rep", 5),
            ("cld", "rep", 0),
            ("std", "rep", 0),
            ("std", "repne", 7),
            ("cld", "repe", 7),
        ] {
            let rep = if compares {
                rep
            } else if rep.is_empty() {
                ""
            } else {
                "rep"
            };
            lines.push(format!(
                "lea rsi, [rbp + 200]; lea rdi, [rbp + 300]; mov ecx, {count}
                 mov rax, [rbp + 200]; cmp eax, 1; {dir}; {rep} {op}; cld; {}; {}; {}",
                fold("rcx"),
                fold("rax"),
                flags(defined)
            ));
            // Make the compares find equal and different data.
            lines.push("mov rax, [rbp + 304]; mov [rbp + 204], rax".to_string());
        }
    }
    vs_host("strings", &lines);
}

#[test]
fn address_size_32_string_ops_and_loops_use_esi_edi_ecx() {
    let r = run_full(
        "isa_addr32",
        &format!(
            "mov rsi, {:#x}; mov rdi, {:#x}; mov rcx, 0x100000003
             addr32 rep movsb
             mov r8, rsi; mov r9, rdi; mov r10, rcx
             mov rsi, {:#x}; addr32 lodsd; mov r11, rsi
             mov rcx, 0x500000002; xor r12d, r12d
             1: inc r12d; addr32 loop 1b
             mov r13, rcx
             hlt",
            (1u64 << 32) | DATA,
            (1u64 << 33) | (DATA + 64),
            (0xffu64 << 32) | DATA
        ),
        &(0..64).collect::<Vec<u8>>(),
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!(
        (r.r("r8"), r.r("r9"), r.r("r10")),
        (DATA + 3, DATA + 67, 0),
        "esi/edi/ecx were used and written back zero-extended"
    );
    assert_eq!(
        r.mem64(DATA + 64) & 0xff_ffff,
        0x02_0100,
        "three bytes copied"
    );
    assert_eq!((r.r("rax"), r.r("r11")), (0x0302_0100, DATA + 4));
    assert_eq!(
        (r.r("r12"), r.r("r13")),
        (2, 0),
        "loop counted ecx (2), not rcx"
    );
}

#[test]
fn cmpxchg_and_xadd_at_every_size_and_both_outcomes() {
    let mut lines = Vec::new();
    for size in 0..4 {
        let (d, s) = (REGS[0][size], REGS[1][size]);
        for equal in [true, false] {
            let a = if equal { "r8" } else { "r10" };
            lines.push(format!(
                "mov r8, 0x8899aabbccddeeff; mov r10, 0x1122334455667788; mov r9, -2
                 mov rax, {a}; cmpxchg {d}, {s}; {}; {}; {}",
                fold("r8"),
                fold("rax"),
                flags(ALL)
            ));
            lines.push(format!(
                "mov rax, [rbp + {}]; {}; lock cmpxchg {} ptr [rbp + 24], {s}; {}; {}",
                if equal { 24 } else { 32 },
                if equal { "" } else { "not rax" },
                PTR[size],
                fold("rax"),
                flags(ALL)
            ));
        }
        lines.push(format!(
            "mov r8, 0x7f7f7f7f7f7f7f7f; mov r9, 0x0101010101010101; xadd {d}, {s}; {}; {}; {}",
            fold("r8"),
            fold("r9"),
            flags(ALL)
        ));
        lines.push(format!(
            "mov r9, -1; lock xadd {} ptr [rbp + 40], {s}; {}; {}",
            PTR[size],
            fold("r9"),
            flags(ALL)
        ));
        lines.push(format!(
            "mov r8, 5; xadd {d}, {d}; {}; {}",
            fold("r8"),
            flags(ALL)
        ));
    }
    vs_host("cmpxchg", &lines);
}

#[test]
fn cmpxchg8b_and_cmpxchg16b_compare_pairs_and_only_touch_zf() {
    let mut lines = Vec::new();
    for equal in [true, false] {
        let hi = if equal { "[rbp + 52]" } else { "[rbp + 60]" };
        lines.push(format!(
            "mov rax, [rbp + 48]; mov rdx, {hi}
             mov rbx, 0x1111222233334444; mov rcx, 0x5555666677778888; stc
             lock cmpxchg8b [rbp + 48]; {}; {}; {}",
            fold("rax"),
            fold("rdx"),
            flags(ALL)
        ));
        let hi = if equal { "[rbp + 72]" } else { "[rbp + 80]" };
        lines.push(format!(
            "mov rax, [rbp + 64]; mov rdx, {hi}
             mov rbx, 0x1111222233334444; mov rcx, 0x5555666677778888; cmp eax, eax
             lock cmpxchg16b [rbp + 64]; {}; {}; {}",
            fold("rax"),
            fold("rdx"),
            flags(ALL)
        ));
    }
    lines.push("lea rbx, [rbp]".to_string());
    vs_host("cmpxchg8b", &lines);
    let r = run_full(
        "isa_cx16_gp",
        &format!("mov rsi, {DATA}; mov ecx, 7; cmpxchg16b [rsi + 8]; hlt"),
        &[],
        0,
    );
    assert_eq!(
        r.ret,
        RET_FAULT_BASE + vector::GP as u32,
        "cmpxchg16b needs 16-byte alignment"
    );
    let code = assemble(
        "isa_cx16_gp",
        &format!("mov rsi, {DATA}; mov ecx, 7; cmpxchg16b [rsi + 8]; hlt"),
    );
    let at = (r.rip - CODE) as usize;
    assert_eq!(
        &code[at..at + 3],
        &[0x48, 0x0f, 0xc7],
        "the fault is at the cmpxchg16b"
    );
    assert_eq!(r.r("rcx"), 7);
}

#[test]
fn partial_registers_merge_and_ah_is_not_spl() {
    let mut lines = Vec::new();
    for (w, r) in [
        ("mov ah, 0x7e", "rax"),
        ("add ah, 0x80", "rax"),
        ("mov ch, dh", "rcx"),
        ("mov rbx, 0x1234; xchg bh, al", "rbx"),
        ("mov r12b, spl; and r12d, 0xf", "r12"),
        // The same opcode and ModRM with and without REX: ah without, spl with.
        ("mov rax, 0x1234; .byte 0x88, 0xe0", "rax"),
        (
            "mov rax, 0x1234; .byte 0x40, 0x88, 0xe0; and eax, 0xf",
            "rax",
        ),
        ("mov rcx, 0x5678; .byte 0x88, 0xe9", "rcx"),
        (
            "mov rcx, 0x5678; .byte 0x40, 0x88, 0xe9; and ecx, 0xf",
            "rcx",
        ),
        ("mov rsi, -1; mov sil, 0x33", "rsi"),
        ("mov rsi, 0x77; mov rdi, 0x55aa; mov dil, sil", "rdi"),
        ("add r8b, r9b", "r8"),
        ("mov r10w, 0x8000", "r10"),
        ("inc r11d", "r11"),
        ("movzx eax, ah", "rax"),
        ("mov rbx, 0x9abc; movsx edx, bh", "rdx"),
        ("not ah", "rax"),
        ("shl dh, 3", "rdx"),
        ("mov rbx, 0x4321; cmovz ax, bx", "rax"),
        ("mov rbx, 0x4321; cmovnz eax, ebx", "rax"),
    ] {
        // bh, sil and dil hold data for a moment: rbx, rsi and rdi are buffer pointers
        // again at the end of each line.
        lines.push(format!(
            "{w}; {}; {}; lea rbx, [rbp]; lea rsi, [rbp]; lea rdi, [rbp]",
            fold(r),
            flags(CF | ZF | SF)
        ));
    }
    vs_host("partial", &lines);
}

#[test]
fn push_and_pop_of_rsp_itself() {
    let r = run(
        "isa_rsp",
        "mov rax, rsp
         push rsp; pop rbx
         push 0x1234; mov qword ptr [rsp - 8], 0; pop qword ptr [rsp - 16]; mov rcx, [rsp - 16]
         push 0x5678; push 0x9abc; pop qword ptr [rsp]; pop rdx
         push 0x42; pop rsp; mov rsi, rsp; mov rsp, rax
         .byte 0x66, 0x6a, 0x07; pop si; mov rdi, rsp
         hlt",
    );
    assert_eq!(
        r.r("rbx"),
        STACK,
        "push rsp pushes the value before the push"
    );
    assert_eq!(
        r.r("rcx"),
        0x1234,
        "pop [rsp - 16] addresses with the incremented rsp"
    );
    assert_eq!(
        r.r("rdx"),
        0x9abc,
        "pop [rsp] writes where the next pop reads"
    );
    assert_eq!(r.r("rsi") & !0xffff, 0, "pop rsp loads rsp");
    assert_eq!(r.r("rsi") & 0xffff, 7, "pop si");
    assert_eq!(r.r("rdi"), STACK, "16-bit push and pop move rsp by 2");
    let lines = vec![
        "mov r12, rsp; push rsp; pop r8; sub r8, r12; xor r12d, r12d; {f}".replace("{f}", &fold("r8")),
        "push 0x1234; mov qword ptr [rsp - 8], 0; pop qword ptr [rsp - 16]; mov r9, [rsp - 16]; {f}"
            .replace("{f}", &fold("r9")),
        "push 0x5678; push 0x9abc; pop qword ptr [rsp]; pop r10; {f}".replace("{f}", &fold("r10")),
        "mov r12, rsp; .byte 0x66, 0x6a, 0x55; pop r11w; mov r11, rsp; sub r11, r12; xor r12d, r12d; {f}"
            .replace("{f}", &fold("r11")),
        "mov r12, rsp; lea rax, [rsp - 64]; push rax; pop rsp; sub r12, rsp; {f}; lea rsp, [rsp + 64]; xor r12d, r12d; xor eax, eax"
            .replace("{f}", &fold("r12")),
        "xor r12d, r12d".to_string(),
    ];
    vs_host("rsp", &lines);
}

#[test]
fn enter_builds_frames_at_nesting_levels_0_to_3_and_leave_undoes_them() {
    let mut lines = Vec::new();
    for wide in [true, false] {
        let p = if wide { "" } else { ".byte 0x66;" };
        for level in [0, 1, 2, 3, 31, 33] {
            // A stack of known alignment (its low 16 bits 0x8000, so 16-bit frame pointers
            // never borrow from the upper bits) with rbp 64 bytes above rsp; every pointer
            // is measured from rsp before the enter (rbx), and the display holds rbx-based
            // values too so that the frame's words compare equal on both sides.
            let mut l = String::from(
                "mov r12, rsp; mov r13, rbp; and rsp, -0x10000; sub rsp, 0x8000
                 lea rbp, [rsp + 64]; mov rbx, rsp; lea rax, [rbx + 0x66]; mov [rbx], rax
                 lea rax, [rbx + 0x77]; mov [rbp - 8], rax; lea rax, [rbx + 0x88]; mov [rbp - 16], rax\n",
            );
            l += &format!(
                "{p} enter 24, {level}
                 mov r8, rbx; sub r8, rsp; mov r9, rbx; sub r9, rbp\n"
            );
            if wide && level % 32 <= 3 {
                l += "mov r10, [rsp + 24]; sub r10, rbx; mov r11, [rsp + 32]; sub r11, rbx\n";
            }
            l += &format!(
                "{p} leave
                 mov rax, rbx; sub rax, rsp; lea rdx, [rbx + 64]; sub rdx, rbp
                 mov rsp, r12; mov rbp, r13; lea rbx, [rbp]; xor r12d, r12d; xor r13d, r13d
                 {}; {}; {}; {}; {}; {}",
                fold("r8"),
                fold("r9"),
                fold("r10"),
                fold("r11"),
                fold("rax"),
                fold("rdx")
            );
            lines.push(l);
        }
    }
    vs_host("enter", &lines);
    let r = run(
        "isa_enter",
        "mov rbp, 0x8000; mov qword ptr [0x8000 - 8], 0x77
         enter 16, 2
         mov rax, rsp; mov rbx, rbp; mov rcx, [rsp + 16]; mov rdx, [rsp + 24]; mov rsi, [rsp + 32]
         leave
         hlt",
    );
    let frame = STACK - 8;
    assert_eq!(r.r("rbx"), frame, "rbp = rsp after pushing rbp");
    assert_eq!(
        r.r("rax"),
        frame - 16 - 16,
        "two frame pointers, then 16 bytes"
    );
    assert_eq!(r.r("rcx"), frame, "the new frame pointer is pushed last");
    assert_eq!(r.r("rdx"), 0x77, "then the display copied from [rbp - 8]");
    assert_eq!(r.r("rsi"), 0x8000, "the old rbp first");
    assert_eq!((r.r("rsp"), r.r("rbp")), (STACK, 0x8000), "leave undoes it");
    let r = run(
        "isa_enterw",
        "mov rsp, 0x88000; mov rbp, 0x88100; mov word ptr [0x88100 - 2], 0x77
         .byte 0x66; enter 4, 2
         mov rax, rsp; mov rbx, rbp; mov cx, [rsp + 4]; mov dx, [rsp + 6]; mov si, [rsp + 8]
         .byte 0x66; leave
         mov rdi, rbp; mov r8, rsp
         mov rbp, 0x12348000; .byte 0x66; enter 0, 0; mov r9, rbp
         hlt",
    );
    // The 16-bit forms move only bp: they round-trip when rbp and rsp share their upper bits.
    let frame = 0x8_8000 - 2;
    assert_eq!(r.r("rbx"), frame, "bp = the 16-bit frame pointer");
    assert_eq!(
        r.r("rax"),
        frame - 4 - 4,
        "two 16-bit frame pointers, then 4 bytes"
    );
    assert_eq!(
        r.r("rcx") & 0xffff,
        frame & 0xffff,
        "the new frame pointer, 16 bits"
    );
    assert_eq!(r.r("rdx") & 0xffff, 0x77, "the display from [rbp - 2]");
    assert_eq!(r.r("rsi") & 0xffff, 0x8100, "the old bp");
    assert_eq!(
        (r.r("rdi"), r.r("r8")),
        (0x8_8100, 0x8_8000),
        "leavew undoes it"
    );
    assert_eq!(r.r("r9"), 0x1234_0000 | (frame & 0xffff), "only bp changes");
}

#[test]
fn pushf_and_popf_at_16_and_64_bits() {
    let lines = vec![
        // IF (0x200) is set natively, not in tern's bare CPU: masked out.
        format!(
            "mov r8b, 0x7f; add r8b, 1; pushfw; pop r9w; and r9, 0x8d5; {}",
            fold("r9")
        ),
        format!(
            ".byte 0x66, 0x68, 0xd5, 0x08; popfw; {}; pushfq; pop r9; and r9, 0xdff; {}",
            flags(ALL),
            fold("r9")
        ),
        format!(
            "push 0x400; popfq; pushfw; pop r10w; and r10, 0xdff; cld; {}",
            fold("r10")
        ),
        format!("mov r11, rsp; pushfw; sub r11, rsp; popfw; {}", fold("r11")),
    ];
    vs_host("pushf", &lines);
}

#[test]
fn movbe_xlat_bswap_movsxd_and_the_cwd_family() {
    let mut lines = Vec::new();
    for size in 1..4 {
        let r = REGS[0][size];
        lines.push(format!(
            "mov r8, -1; movbe {r}, {} ptr [rbp + 8]; {}",
            PTR[size],
            fold("r8")
        ));
        lines.push(format!(
            "mov r8, 0x0102030405060708; movbe {} ptr [rbp + 16], {r}",
            PTR[size]
        ));
    }
    lines.push(format!(
        "mov r8, 0x0102030405060708; bswap r8; bswap r8d; {}",
        fold("r8")
    ));
    // bswap r16: the SDM leaves the result undefined; processors clear the register.
    lines.push(format!(
        "mov r9, 0x0102030405060708; .byte 0x66, 0x41, 0x0f, 0xc9; {}",
        fold("r9")
    ));
    for al in [0, 5, 0x80, 0xff] {
        lines.push(format!(
            "lea rbx, [rbp + 64]; mov rax, -256 + {al}; xlatb; {}",
            fold("rax")
        ));
    }
    for v in VALUES {
        lines.push(format!(
            "mov rax, {v:#x}; mov rdx, 0x1234; cwd; {}; cdq; {}; cqo; {}",
            fold("rdx"),
            fold("rdx"),
            fold("rdx")
        ));
        lines.push(format!(
            "mov r9, {v:#x}; movsxd r8, r9d; {}; mov r8, -1; .byte 0x45, 0x63, 0xc1; {}",
            fold("r8"),
            fold("r8")
        ));
        lines.push(format!(
            "mov rax, {v:#x}; cbw; {}; cwde; {}; cdqe; {}",
            fold("rax"),
            fold("rax"),
            fold("rax")
        ));
    }
    // lea at every operand size, and with 32-bit address arithmetic (0x67), which wraps at
    // 4 GiB and zero-extends, also for a lone displacement.
    for (n, l) in [
        "lea r8w, [r9 + r10 * 2 + 5]",
        "lea r8d, [r9 + r10 * 8 - 1]",
        "lea r8, [r9 + r10 * 4 + 0x7fffffff]",
        "addr32 lea r8, [r9d + r10d * 2 + 0x10]",
        "addr32 lea r8, [r9d - 1]",
        "addr32 lea r8d, [r10d * 8]",
        "addr32 lea r8, [0x80000000]",
        "lea r8, [r9d * 1 + 0x80000000]",
    ]
    .iter()
    .enumerate()
    {
        lines.push(format!(
            "mov r8, -1; mov r9, {:#x}; mov r10, {:#x}; {l}; {}",
            0xffff_ffff_0000_0000u64 | n as u64,
            0x8000_0000_8000_0000u64 | (n as u64) << 12,
            fold("r8")
        ));
    }
    vs_host("moves", &lines);
}

#[test]
fn every_nop_form_does_nothing() {
    // (Also `bnd jmp`: F2 on a branch is the MPX prefix, a no-op without MPX.)
    let r = run(
        "isa_nops",
        "mov rax, 0x100000001; cmp eax, 2
         nop; .byte 0x87, 0xc0; pause; endbr64; endbr32
         nop word ptr [rax + rax * 1 + 0]
         nop dword ptr [rax]
         .byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0
         .byte 0x0f, 0x19, 0xc0
         .byte 0x0f, 0x1e, 0xf8
         .byte 0xf3, 0x90
         .byte 0xf2, 0xeb, 0x00
         prefetcht0 [rax]; prefetchw [rax]; lfence; mfence; sfence
         .byte 0x0f, 0x0d, 0x00; .byte 0x0f, 0x1c, 0x00
         setb bl
         hlt",
    );
    assert_eq!(r.r("rax"), 1, "xchg eax, eax zero-extends, and that is all");
    assert_eq!(r.r("rbx") & 0xff, 1, "the flags of the cmp survive");
}

#[test]
fn ud2_and_misplaced_lock_prefixes_raise_ud_at_the_instruction() {
    for (n, (code, off)) in [
        ("mov eax, 1; ud2; hlt", 5),
        ("mov eax, 1; .byte 0xf0, 0x01, 0xd8; hlt", 5),
        ("mov eax, 1; .byte 0xf0, 0x89, 0x03; hlt", 5),
        ("mov eax, 1; .byte 0xf0, 0x90; hlt", 5),
        ("mov eax, 1; .byte 0x0f, 0xff, 0xc0; hlt", 5),
    ]
    .into_iter()
    .enumerate()
    {
        let r = run_full(&format!("isa_ud{n}"), code, &[], 0);
        assert_eq!((r.ret, r.rip), (EXIT_UD, CODE + off), "{code}");
        assert_eq!(r.r("rax"), 1, "{code}");
    }
    let r = run_full(
        "isa_lockok",
        &format!(
            "mov rbx, {DATA}; mov eax, 3; lock add [rbx], eax; lock not qword ptr [rbx + 8]; hlt"
        ),
        &[],
        0,
    );
    assert_eq!(r.ret, EXIT_HLT);
    assert_eq!((r.mem64(DATA), r.mem64(DATA + 8)), (3, u64::MAX));
}

#[test]
fn rdtscp_reads_the_counter_and_tsc_aux_zero() {
    let r = run(
        "isa_rdtscp",
        "mov rcx, -1; rdtsc; shl rdx, 32; or rax, rdx; mov rbx, rax
         rdtscp; shl rdx, 32; or rax, rdx
         cmp rax, rbx; setae sil; xor eax, eax; xor ebx, ebx; xor edx, edx
         hlt",
    );
    assert_eq!(r.r("rcx"), 0, "ecx = IA32_TSC_AUX, 0 in user mode");
    assert_eq!(r.r("rsi"), 1, "the counter does not go back");
}

#[test]
fn conditions_right_after_each_flag_setter_match_the_host() {
    // Consumers in the same block as the flag setter compare the lazy operands directly
    // (no flags computed); each of the 16 conditions lands in a byte of the buffer.
    const CC: [&str; 16] = [
        "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
    ];
    let values: [u64; 7] = [
        0,
        1,
        u64::MAX,
        0x7f,
        0x80,
        0x8000_0000_0000_0000,
        0x7fff_ffff_7fff_7fff,
    ];
    // One program per size: the code must fit below the test machine's data.
    for (size, (a, b)) in REGS[0].iter().zip(REGS[1]).enumerate() {
        let mut lines = Vec::new();
        for (x, y) in values
            .iter()
            .flat_map(|x| values.iter().map(move |y| (*x, *y)))
        {
            for (op, of_defined) in [
                (format!("inc {a}"), true),
                (format!("dec {a}"), true),
                (format!("adc {a}, {b}"), true),
                (format!("sbb {a}, {b}"), true),
                (format!("add {a}, {b}; adc {a}, {b}"), true),
                (format!("sub {a}, {b}; sbb {a}, {b}"), true),
                (format!("shl {a}, 1"), true),
                (format!("shr {a}, 1"), true),
                (format!("sar {a}, 1"), true),
                (format!("shl {a}, 3"), false),
                (format!("sar {a}, 5"), false),
                (format!("mov ecx, {}; shr {a}, cl", y % 7), false),
                (format!("neg {a}"), true),
                (format!("and {a}, {b}"), true),
            ] {
                for carry in ["clc", "stc"] {
                    let mut l = format!("mov r8, {x:#x}; mov r9, {y:#x}; {carry}; {op}");
                    for (k, c) in CC.iter().enumerate() {
                        let uses_of = matches!(k, 0 | 1 | 12..=15);
                        if of_defined || !uses_of {
                            l += &format!("; set{c} byte ptr [rbp + {}]", 400 + k);
                        }
                    }
                    // And the carry into an adc, straight from the lazy values.
                    l += &format!(
                        "; mov r10, 5; adc r10, 0; mov rax, [rbp + 400]; {}; mov rax, [rbp + 408]; {}; {}",
                        fold("rax"),
                        fold("rax"),
                        fold("r10")
                    );
                    lines.push(l);
                }
            }
        }
        vs_host(&format!("conditions{size}"), &lines);
    }
}

/// Random programs over the instructions this file is about, mixed with ordinary ALU code:
/// rcl/rcr, movbe, cmpxchg8b/16b, xadd/cmpxchg, bswap, the scans and counts and loop/jecxz,
/// with the flags an instruction leaves undefined redefined by an `add` after it.
fn random_isa_program(rng: &mut u64) -> (String, Vec<String>, String) {
    let mut next = move || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    const R64: [&str; 14] = [
        "rax", "rcx", "rdx", "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
        "r15",
    ];
    let sized = |r: &str, size: usize| -> String {
        let low = |base: &str| match (base, size) {
            (b, 3) => b.to_string(),
            ("rax" | "rcx" | "rdx" | "rbx", 2) => format!("e{}", &base[1..]),
            ("rax" | "rcx" | "rdx" | "rbx", 1) => base[1..].to_string(),
            ("rax" | "rcx" | "rdx" | "rbx", _) => format!("{}l", &base[1..2]),
            ("rsi" | "rdi", 2) => format!("e{}", &base[1..]),
            ("rsi" | "rdi", 1) => base[1..].to_string(),
            ("rsi" | "rdi", _) => format!("{}l", &base[1..]),
            (b, 2) => format!("{b}d"),
            (b, 1) => format!("{b}w"),
            (b, _) => format!("{b}b"),
        };
        low(r)
    };
    let mut pro = String::new();
    for r in R64 {
        pro += &format!("mov {r}, {:#x}\n", next());
    }
    pro += "lea rsp, [rsp - 256]\n";
    for k in 0..32 {
        pro += &format!("mov rax, {:#x}; mov [rsp + {}], rax\n", next(), 8 * k);
    }
    const PTR: [&str; 4] = ["byte", "word", "dword", "qword"];
    let mut lines = Vec::new();
    for n in 0..60 {
        let size = (next() % 4) as usize;
        let (a, b) = (
            sized(R64[(next() % 14) as usize], size),
            sized(R64[(next() % 14) as usize], size),
        );
        let (x, y) = (
            sized(R64[(next() % 14) as usize], size),
            sized(R64[(next() % 14) as usize], size),
        );
        let off = next() % 248;
        let count = next() % 70;
        let line = match next() % 16 {
            0 => format!("{} {a}, 1", ["rcl", "rcr"][(next() % 2) as usize]),
            1 => format!(
                "{} {a}, {count}; add {x}, {y}",
                ["rcl", "rcr"][(next() % 2) as usize]
            ),
            2 => format!(
                "mov ecx, {count}; {} {a}, cl; add {x}, {y}",
                ["rcl", "rcr"][(next() % 2) as usize]
            ),
            3 if size > 0 => format!("movbe {a}, {} ptr [rsp + {off}]", PTR[size]),
            4 if size > 0 => format!("movbe {} ptr [rsp + {off}], {a}", PTR[size]),
            5 => format!(
                "{}lock cmpxchg8b [rsp + {}]",
                if next() % 2 == 0 {
                    format!("mov rax, [rsp + {}]; ", off & !7)
                } else {
                    String::new()
                },
                off & !7
            ),
            6 => format!(
                "{}lock cmpxchg16b [rsp + {}]",
                if next() % 2 == 0 {
                    format!(
                        "mov rax, [rsp + {0}]; mov rdx, [rsp + {0} + 8]; ",
                        off & !15
                    )
                } else {
                    String::new()
                },
                off & !15
            ),
            7 => format!("lock xadd {} ptr [rsp + {off}], {a}", PTR[size]),
            8 => format!("lock cmpxchg {} ptr [rsp + {off}], {a}", PTR[size]),
            9 if size >= 2 => format!("bswap {a}"),
            10 if size > 0 => format!(
                "{} {a}, {b}; add {x}, {y}",
                ["bsf", "bsr", "tzcnt", "lzcnt", "popcnt"][(next() % 5) as usize]
            ),
            11 => format!(
                "{} 1f; xor {a}, {b}; 1:",
                ["loop", "loope", "loopne", "jecxz", "jrcxz"][(next() % 5) as usize]
            ),
            12 => format!("addr32 loop 1f; xor {a}, {b}; 1:"),
            13 => format!(
                "{} {a}, {b}",
                ["add", "adc", "sub", "sbb", "xor", "cmp"][(next() % 6) as usize]
            ),
            14 => format!(
                "{} {a}",
                ["inc", "dec", "neg", "not"][(next() % 4) as usize]
            ),
            _ => format!(
                "cmc; set{} {}",
                ["b", "l", "o", "be"][(next() % 4) as usize],
                sized(R64[(next() % 14) as usize], 0)
            ),
        };
        lines.push(format!("{line} # {n}\n"));
    }
    let mut epi = String::from("xor eax, eax\n");
    for k in 0..32 {
        epi += &format!("rol rax, 1; xor rax, [rsp + {}]\n", 8 * k);
    }
    epi += "lea rsp, [rsp + 256]\n";
    (pro, lines, epi)
}

#[test]
fn random_code_with_the_newer_instructions_matches_the_host_cpu() {
    compare_programs(0x1234_5678_9abc_def1, "isa", random_isa_program);
}

#[test]
fn movnti_maskmovdqu_and_the_rcp_rsqrt_approximations_match_the_host() {
    let mut lines = Vec::new();
    // movnti: a plain store of a general register.
    lines.push("mov r8, 0x1122334455667788; movnti [rbp + 24], r8; movnti [rbp + 36], r8d".into());
    // maskmovdqu: the bytes of xmm0 whose mask byte in xmm1 has its top bit set go to [rdi].
    for (data, mask) in [(32, 48), (48, 96), (96, 0), (0, 8)] {
        lines.push(format!(
            "movdqu xmm0, [rbp + {data}]; movdqu xmm1, [rbp + {mask}]; maskmovdqu xmm0, xmm1"
        ));
    }
    lines.push("pxor xmm1, xmm1; maskmovdqu xmm0, xmm1".into());
    // rcp and rsqrt (an approximation whose bits the host decides; tern runs the host's),
    // on ordinary values, zeros, denormals, infinities and NaNs, register and memory forms.
    lines.push(
        "mov rax, 0x3f80000040490fdb; mov [rbp + 128], rax; mov rax, 0x0000000180000000; \
         mov [rbp + 136], rax; mov rax, 0x7f800000ff800001; mov [rbp + 144], rax; \
         mov rax, 0xc2f60000007fffff; mov [rbp + 152], rax"
            .into(),
    );
    for off in [128, 144] {
        lines.push(format!(
            "movups xmm2, [rbp + {off}]; rcpps xmm3, xmm2; rsqrtps xmm4, xmm2; \
             movaps xmm5, xmm0; rcpss xmm5, xmm2; movaps xmm6, xmm1; rsqrtss xmm6, xmm2"
        ));
        lines.push(format!(
            "rcpps xmm7, [rbp + {off}]; rsqrtps xmm8, [rbp + {off}]; \
             rcpss xmm9, [rbp + {}]; rsqrtss xmm10, [rbp + {}]",
            off + 4,
            off + 8
        ));
    }
    vs_host("sse_rest", &lines);
}
