//! x87 edge cases checked against the host CPU and the SDM: stack underflow and overflow of
//! the instructions that push a second result, the condition codes the stack-fault and NaN
//! paths leave, found by `tern difftest --classes x87`.
//!
//! Each snippet starts from `fninit`, may preset the condition codes (through `fldenv`), runs
//! the instruction under test and ends with [`DUMP`], which puts the x87 state into general
//! registers so that both the host comparison ([`host_mismatch`]) and the assertions see it.

// The shared harness re-exports names other test files use.
#[allow(unused_imports)]
mod common;

use common::*;

/// Stores the x87 state into general registers: rax = FSW, rbx = abridged tag word,
/// rcx/rdx = ST0 (mantissa, sign and exponent), rsi/rdi = ST1, r8/r9 = ST2 (an FXSAVE image
/// keeps the registers in stack order).
const DUMP: &str = "lea rsp, [rsp - 512]; fxsave [rsp]
    movzx eax, word ptr [rsp + 2]; movzx ebx, byte ptr [rsp + 4]
    mov rcx, [rsp + 32]; movzx edx, word ptr [rsp + 40]
    mov rsi, [rsp + 48]; movzx edi, word ptr [rsp + 56]
    mov r8, [rsp + 64]; movzx r9d, word ptr [rsp + 72]
    lea rsp, [rsp + 512]";

/// Sets the condition codes to `cc` (FSW bits 8, 9, 10, 14) through `fnstenv`/`fldenv`.
fn preset(cc: u16) -> String {
    format!(
        "lea rsp, [rsp - 64]; fnstenv [rsp]; or word ptr [rsp + 4], {cc:#x}; fldenv [rsp]
         lea rsp, [rsp + 64]"
    )
}

/// Pushes eight ones: a full stack.
const FULL: &str = "fld1; fld1; fld1; fld1; fld1; fld1; fld1; fld1";

/// The x87 state a snippet leaves.
#[derive(Debug, PartialEq, Eq)]
struct X87 {
    fsw: u16,
    ftw: u8,
    st: [(u64, u16); 3],
}

/// Runs `fninit` then `body` under the frontend (JIT and interpreter agree), requires the
/// host to end in the same state, and returns it.
fn x87(name: &str, body: &str) -> X87 {
    let full = format!("fninit\n{body}\n{DUMP}");
    if let Some(what) = host_mismatch(name, &full) {
        panic!("{name}: `{body}` differs from the host: {what}");
    }
    let r = run(name, &format!("{full}\nhlt"));
    X87 {
        fsw: r.r("rax") as u16,
        ftw: r.r("rbx") as u8,
        st: [
            (r.r("rcx"), r.r("rdx") as u16),
            (r.r("rsi"), r.r("rdi") as u16),
            (r.r("r8"), r.r("r9") as u16),
        ],
    }
}

/// The QNaN "real indefinite", as (mantissa, sign and exponent).
const INDEFINITE: (u64, u16) = (0xc000_0000_0000_0000, 0xffff);

/// Loads the 80-bit value (mantissa `m`, sign and exponent `se`).
fn ld80(m: u64, se: u16) -> String {
    format!(
        "lea rsp, [rsp - 32]; mov rax, {m:#x}; mov [rsp], rax; mov word ptr [rsp + 8], {se:#x}
         fld tbyte ptr [rsp]; lea rsp, [rsp + 32]"
    )
}

/// Bug 1 (underflow): `fptan`, `fsincos` and `fxtract` with an empty ST(0) still push: the
/// masked #IS response writes the indefinite to ST(1) (the old ST(0)) and to the new ST(0),
/// with IE, SF and C1 = 0; C2 (out of range) is clear for the trigonometric ones.
#[test]
fn pushing_transcendentals_on_an_empty_stack_push_two_indefinites() {
    for op in ["fptan", "fsincos", "fxtract"] {
        let s = x87(&format!("x87under_{op}"), op);
        assert_eq!(s.fsw, 7 << 11 | 0x41, "{op}: TOP 7, IE and SF, C1 clear");
        assert_eq!(s.ftw, 0x81, "{op}: R7 and R0 hold values");
        assert_eq!(s.st[0], INDEFINITE, "{op}: ST0");
        assert_eq!(s.st[1], INDEFINITE, "{op}: ST1");
        // With every condition code set first: C1 cleared, C2 too unless fxtract (for
        // which the SDM leaves C0, C2 and C3 undefined; the processor keeps them).
        let s = x87(
            &format!("x87under_cc_{op}"),
            &format!("{}; {op}", preset(0x4700)),
        );
        let c2 = if op == "fxtract" { 0x400 } else { 0 };
        assert_eq!(s.fsw & 0x4700, 0x4100 | c2, "{op}: condition codes");
        // An empty ST(0) with a full ST(7) is still an underflow, not an overflow.
        let s = x87(
            &format!("x87under_full_{op}"),
            &format!("{FULL}; ffree st(0); {op}"),
        );
        assert_eq!(s.fsw, 7 << 11 | 0x41, "{op}: underflow wins");
        assert_eq!((s.st[0], s.st[1]), (INDEFINITE, INDEFINITE), "{op}");
    }
}

/// Bug 1 (overflow): the push of `fptan`, `fsincos` and `fxtract` onto a full ST(7) leaves
/// the indefinite in both ST(0) and ST(1), nothing computed (no PE), IE, SF and C1 = 1.
#[test]
fn pushing_transcendentals_on_a_full_stack_overflow_into_two_indefinites() {
    for op in ["fptan", "fsincos", "fxtract"] {
        let s = x87(&format!("x87over_{op}"), &format!("{FULL}; {op}"));
        assert_eq!(s.fsw, 7 << 11 | 0x241, "{op}: TOP 7, C1, IE and SF, no PE");
        assert_eq!(s.ftw, 0xff, "{op}");
        assert_eq!((s.st[0], s.st[1]), (INDEFINITE, INDEFINITE), "{op}");
        assert_eq!(s.st[2], (1 << 63, 0x3fff), "{op}: ST2 is still 1.0");
    }
}

/// Bug 2: on a stack underflow `fsin`, `fcos`, `fprem` and `fprem1` clear C2 (no operand
/// out of range, no incomplete reduction) and C1, and leave C0 and C3 (`ftst` of an empty
/// register sets C0, C2 and C3 first).
#[test]
fn underflowing_fsin_fcos_and_fprem_clear_c2() {
    for op in ["fsin", "fcos", "fprem", "fprem1"] {
        let s = x87(&format!("x87c2_{op}"), &format!("ftst; {op}"));
        assert_eq!(s.fsw, 0x4141, "{op}: C3, C0, SF, IE");
        assert_eq!(s.st[0], INDEFINITE, "{op}");
    }
    // fprem with only ST(1) empty underflows as well.
    let s = x87(
        "x87c2_fprem_st1",
        &format!("fldpi; {}; fprem", preset(0x4700)),
    );
    assert_eq!(s.fsw & 0x4700, 0x4100, "C3 and C0 kept, C2 and C1 clear");
    assert_eq!(s.st[0], INDEFINITE);
}

/// Bug 3: the `fprem` of a NaN leaves C0, C1 and C3 as they were (there is no quotient)
/// and clears C2; the divergence came from an underflowing arithmetic instruction before
/// it, which cleared C0, C2 and C3 where the processor keeps them (the SDM leaves them
/// undefined, the differential tester compares them again after `fprem`).
#[test]
fn fprem_of_a_nan_keeps_the_quotient_bits_and_underflows_keep_c0_c2_c3() {
    let nan = ld80(0xffff_ffff_ffff_c800, 0xffff);
    let big = ld80(0xfcbd_1ce4_0000_0000, 0x401c);
    let s = x87(
        "x87prem_nan",
        &format!("{big}; {nan}; {}; fprem", preset(0x4500)),
    );
    assert_eq!(s.fsw & 0x4700, 0x4100, "C3 and C0 stay, C2 clear");
    assert_eq!(s.st[0], (0xffff_ffff_ffff_c800, 0xffff), "the NaN stays");
    for op in [
        "fadd st, st(1)",
        "fdivr st(1), st",
        "fmulp st(1), st",
        "fsub qword ptr [rsp - 16]",
        "fidiv dword ptr [rsp - 16]",
    ] {
        let s = x87(
            &format!("x87under_arith_{}", op.split(' ').next().unwrap()),
            &format!("mov qword ptr [rsp - 16], 3; {}; {op}", preset(0x4700)),
        );
        assert_eq!(s.fsw & 0x4700, 0x4500, "{op}: only C1 cleared");
        assert_eq!(s.fsw & 0x41, 0x41, "{op}: IE and SF");
    }
    // Then fprem of the NaN the underflow left (with the indefinite in ST(1) too).
    let s = x87(
        "x87under_then_prem",
        &format!("{}; fadd st, st(1); fld st(0); fprem", preset(0x4500)),
    );
    assert_eq!(s.fsw & 0x4700, 0x4100);
}

/// Bug 4: `ffree` clears C1 (the SDM leaves all four codes undefined; the processor clears
/// C1 and keeps the rest), which `fcomi` then leaves as it is.
#[test]
fn ffree_clears_c1_and_fcomi_keeps_it() {
    let s = x87(
        "x87ffree",
        &format!("fld1; fldpi; {}; ffree st(2)", preset(0x4700)),
    );
    assert_eq!(s.fsw & 0x4700, 0x4500);
    let s = x87(
        "x87ffree_fcomip",
        &format!(
            "fld1; fldpi; {}; ffree st(2); fcomip st, st(0)",
            preset(0x0200)
        ),
    );
    assert_eq!(s.fsw & 0x200, 0, "C1 clear");
    let s = x87(
        "x87fcomi_keeps_c1",
        &format!("fld1; fldpi; {}; fcomip st, st(0)", preset(0x0200)),
    );
    assert_eq!(
        s.fsw & 0x200,
        0x200,
        "fcomi alone keeps C1 on the processor"
    );
}

/// Found after the fixes above: an 80-bit store converts nothing and, like the processor,
/// leaves C0, C2 and C3 (which the SDM leaves undefined) as they were, also when it
/// underflows; the `fprem` after it keeps them (`fcomp` of an empty register set them).
#[test]
fn an_80_bit_store_keeps_c0_c2_c3() {
    let s = x87(
        "x87fstp80",
        "fcomp st(7); lea rsp, [rsp - 32]; fstp tbyte ptr [rsp]; lea rsp, [rsp + 32]; fprem",
    );
    assert_eq!(s.fsw, 2 << 11 | 0x4141, "TOP 2, C3 and C0 kept, IE and SF");
    let s = x87(
        "x87fstp80_full",
        &format!(
            "fldpi; {}; lea rsp, [rsp - 32]; fstp tbyte ptr [rsp]; lea rsp, [rsp + 32]",
            preset(0x4700)
        ),
    );
    assert_eq!(s.fsw & 0x4700, 0x4500, "C1 clear, the rest kept");
}
