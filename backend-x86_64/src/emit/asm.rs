//! Thin wrappers over `dynasm!` for the instruction forms the lowering uses, with the register
//! numbers and widths chosen at run time.

use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

use crate::regs::*;

/// The assembler type: bytes in a Vec, relocations relative to the final executable address.
pub type Asm = VecAssembler<X64Relocation>;

/// Two-operand ALU operations sharing the classic encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Cmp,
    Test,
}

/// Shift and rotate operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sh {
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
}

/// x86 condition codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cc {
    E,
    Ne,
    L,
    Ge,
    Le,
    G,
    B,
    Ae,
    Be,
    A,
}

impl Cc {
    /// The host condition for an IR condition evaluated after `cmp a, b` (or `test a, b`).
    pub fn of(c: ir::Cond) -> Cc {
        use ir::Cond::*;
        match c {
            Eq | TstEq => Cc::E,
            Ne | TstNe => Cc::Ne,
            Lt => Cc::L,
            Ge => Cc::Ge,
            Le => Cc::Le,
            Gt => Cc::G,
            Ltu => Cc::B,
            Geu => Cc::Ae,
            Leu => Cc::Be,
            Gtu => Cc::A,
        }
    }

    /// The 4-bit condition number used by setcc/cmovcc/jcc.
    fn code(self) -> u8 {
        match self {
            Cc::E => 0x4,
            Cc::Ne => 0x5,
            Cc::L => 0xc,
            Cc::Ge => 0xd,
            Cc::Le => 0xe,
            Cc::G => 0xf,
            Cc::B => 0x2,
            Cc::Ae => 0x3,
            Cc::Be => 0x6,
            Cc::A => 0x7,
        }
    }
}

/// `reg` fits an imm32 operand of a `w64`-bit op (sign-extended for 64-bit ops).
pub fn fits_imm32(w64: bool, v: u64) -> bool {
    if w64 {
        v as i64 == v as i32 as i64
    } else {
        true
    }
}

fn rex(w: bool, reg: Reg, rm: Reg) -> u8 {
    0x40 | (w as u8) << 3 | (reg & 8) >> 1 | (rm & 8) >> 3
}

/// `mov d, s` (32-bit moves zero-extend). Nothing when `d == s`.
pub fn mov_rr(a: &mut Asm, w64: bool, d: Reg, s: Reg) {
    if d == s {
        return;
    }
    if w64 {
        dynasm!(a ; .arch x64 ; mov Rq(d), Rq(s));
    } else {
        dynasm!(a ; .arch x64 ; mov Rd(d), Rd(s));
    }
}

/// Loads an immediate without touching the flags.
pub fn mov_ri(a: &mut Asm, d: Reg, v: u64) {
    if v <= u32::MAX as u64 {
        dynasm!(a ; .arch x64 ; mov Rd(d), v as u32 as i32);
    } else if v as i64 == v as i32 as i64 {
        dynasm!(a ; .arch x64 ; mov Rq(d), v as i32);
    } else {
        dynasm!(a ; .arch x64 ; mov Rq(d), QWORD v as i64);
    }
}

/// Loads an immediate, using `xor` (which clobbers flags) for zero.
pub fn mov_ri_flags(a: &mut Asm, d: Reg, v: u64) {
    if v == 0 {
        dynasm!(a ; .arch x64 ; xor Rd(d), Rd(d));
    } else {
        mov_ri(a, d, v);
    }
}

/// `op d, s`
pub fn alu_rr(a: &mut Asm, op: Alu, w64: bool, d: Reg, s: Reg) {
    macro_rules! e {
        ($i:ident) => {
            if w64 {
                dynasm!(a ; .arch x64 ; $i Rq(d), Rq(s))
            } else {
                dynasm!(a ; .arch x64 ; $i Rd(d), Rd(s))
            }
        };
    }
    match op {
        Alu::Add => e!(add),
        Alu::Sub => e!(sub),
        Alu::And => e!(and),
        Alu::Or => e!(or),
        Alu::Xor => e!(xor),
        Alu::Cmp => e!(cmp),
        Alu::Test => e!(test),
    }
}

/// `op d, imm32` (sign-extended for 64-bit ops).
pub fn alu_ri(a: &mut Asm, op: Alu, w64: bool, d: Reg, imm: i32) {
    macro_rules! e {
        ($i:ident) => {
            if w64 {
                dynasm!(a ; .arch x64 ; $i Rq(d), imm)
            } else {
                dynasm!(a ; .arch x64 ; $i Rd(d), imm)
            }
        };
    }
    match op {
        Alu::Add => e!(add),
        Alu::Sub => e!(sub),
        Alu::And => e!(and),
        Alu::Or => e!(or),
        Alu::Xor => e!(xor),
        Alu::Cmp => e!(cmp),
        Alu::Test => e!(test),
    }
}

/// `op d, cl`
pub fn shift_cl(a: &mut Asm, op: Sh, w64: bool, d: Reg) {
    macro_rules! e {
        ($i:ident) => {
            if w64 {
                dynasm!(a ; .arch x64 ; $i Rq(d), cl)
            } else {
                dynasm!(a ; .arch x64 ; $i Rd(d), cl)
            }
        };
    }
    match op {
        Sh::Shl => e!(shl),
        Sh::Shr => e!(shr),
        Sh::Sar => e!(sar),
        Sh::Rol => e!(rol),
        Sh::Ror => e!(ror),
    }
}

/// `op d, imm8`; nothing for a zero count.
pub fn shift_ri(a: &mut Asm, op: Sh, w64: bool, d: Reg, n: u8) {
    if n == 0 {
        return;
    }
    let n = n as i8;
    macro_rules! e {
        ($i:ident) => {
            if w64 {
                dynasm!(a ; .arch x64 ; $i Rq(d), n)
            } else {
                dynasm!(a ; .arch x64 ; $i Rd(d), n)
            }
        };
    }
    match op {
        Sh::Shl => e!(shl),
        Sh::Shr => e!(shr),
        Sh::Sar => e!(sar),
        Sh::Rol => e!(rol),
        Sh::Ror => e!(ror),
    }
}

/// BMI2 `shlx/shrx/sarx d, s, count` (VEX-encoded, count masked by the CPU).
pub fn shift_bmi2(a: &mut Asm, op: Sh, w64: bool, d: Reg, s: Reg, count: Reg) {
    // VEX.LZ.0F38.W F7 /r with pp: 66 = shlx, F2 = shrx, F3 = sarx; vvvv = count.
    let pp = match op {
        Sh::Shl => 1,
        Sh::Shr => 3,
        Sh::Sar => 2,
        Sh::Rol | Sh::Ror => unreachable!("no BMI2 variable rotate"),
    };
    let r = (!d >> 3) & 1;
    let b = (!s >> 3) & 1;
    let byte1 = r << 7 | 1 << 6 | b << 5 | 0x02;
    let byte2 = (w64 as u8) << 7 | ((!count) & 0xf) << 3 | pp;
    let modrm = 0xc0 | (d & 7) << 3 | (s & 7);
    a.extend([0xc4, byte1, byte2, 0xf7, modrm]);
}

/// `setcc d8 ; movzx d32, d8`
pub fn setcc(a: &mut Asm, cc: Cc, d: Reg) {
    a.extend([rex(false, 0, d), 0x0f, 0x90 | cc.code(), 0xc0 | (d & 7)]);
    dynasm!(a ; .arch x64 ; movzx Rd(d), Rb(d));
}

/// `cmovcc d, s`
pub fn cmov(a: &mut Asm, cc: Cc, w64: bool, d: Reg, s: Reg) {
    a.extend([
        rex(w64, d, s),
        0x0f,
        0x40 | cc.code(),
        0xc0 | (d & 7) << 3 | (s & 7),
    ]);
}

/// `jcc label` (rel32).
pub fn jcc(a: &mut Asm, cc: Cc, l: DynamicLabel) {
    match cc {
        Cc::E => dynasm!(a ; .arch x64 ; je =>l),
        Cc::Ne => dynasm!(a ; .arch x64 ; jne =>l),
        Cc::L => dynasm!(a ; .arch x64 ; jl =>l),
        Cc::Ge => dynasm!(a ; .arch x64 ; jge =>l),
        Cc::Le => dynasm!(a ; .arch x64 ; jle =>l),
        Cc::G => dynasm!(a ; .arch x64 ; jg =>l),
        Cc::B => dynasm!(a ; .arch x64 ; jb =>l),
        Cc::Ae => dynasm!(a ; .arch x64 ; jae =>l),
        Cc::Be => dynasm!(a ; .arch x64 ; jbe =>l),
        Cc::A => dynasm!(a ; .arch x64 ; ja =>l),
    }
}

/// `jmp label`
pub fn jmp(a: &mut Asm, l: DynamicLabel) {
    dynasm!(a ; .arch x64 ; jmp =>l);
}

/// `jmp abs` with rel32 computed for the final address `base + offset`.
pub fn jmp_abs(a: &mut Asm, base: usize, target: usize) {
    let next = base + a.offset().0 + 5;
    let rel = target.wrapping_sub(next) as isize;
    assert!(rel == rel as i32 as isize, "jump out of rel32 range");
    a.push(0xe9);
    a.extend((rel as i32).to_le_bytes());
}

/// `call abs`: rel32 when reachable, else through TMP.
pub fn call_abs(a: &mut Asm, base: usize, target: usize) {
    let next = base + a.offset().0 + 5;
    let rel = target.wrapping_sub(next) as isize;
    if rel == rel as i32 as isize {
        a.push(0xe8);
        a.extend((rel as i32).to_le_bytes());
    } else {
        dynasm!(a ; .arch x64 ; mov Rq(TMP), QWORD target as i64 ; call Rq(TMP));
    }
}

/// A load of `size` from `[base + index + disp]` into `d`, extended to `w64` bits.
pub fn load(
    a: &mut Asm,
    mop: ir::MemOp,
    w64: bool,
    d: Reg,
    base: Reg,
    index: Option<Reg>,
    disp: i32,
) {
    use ir::Size::*;
    macro_rules! m {
        ($($t:tt)*) => {
            match index {
                Some(i) => dynasm!(a ; .arch x64 ; $($t)* [Rq(base) + Rq(i) + disp]),
                None => dynasm!(a ; .arch x64 ; $($t)* [Rq(base) + disp]),
            }
        };
    }
    match (mop.size, mop.signed, w64) {
        (B8, false, _) => m!(movzx Rd(d), BYTE),
        (B8, true, false) => m!(movsx Rd(d), BYTE),
        (B8, true, true) => m!(movsx Rq(d), BYTE),
        (B16, false, _) => m!(movzx Rd(d), WORD),
        (B16, true, false) => m!(movsx Rd(d), WORD),
        (B16, true, true) => m!(movsx Rq(d), WORD),
        (B32, true, true) => m!(movsxd Rq(d), DWORD),
        (B32, _, _) | (B64, _, false) => m!(mov Rd(d), DWORD),
        (B64, _, true) => m!(mov Rq(d), QWORD),
    }
}

/// A store of the low `size` bytes of `s` to `[base + index + disp]`.
pub fn store(a: &mut Asm, size: ir::Size, s: Reg, base: Reg, index: Option<Reg>, disp: i32) {
    use ir::Size::*;
    macro_rules! m {
        ($w:ident, $r:ident) => {
            match index {
                Some(i) => dynasm!(a ; .arch x64 ; mov $w [Rq(base) + Rq(i) + disp], $r(s)),
                None => dynasm!(a ; .arch x64 ; mov $w [Rq(base) + disp], $r(s)),
            }
        };
    }
    match size {
        B8 => m!(BYTE, Rb),
        B16 => m!(WORD, Rw),
        B32 => m!(DWORD, Rd),
        B64 => m!(QWORD, Rq),
    }
}

/// A store of an immediate (which must fit `size`, sign-extended for 64-bit).
pub fn store_imm(a: &mut Asm, size: ir::Size, v: u64, base: Reg, index: Option<Reg>, disp: i32) {
    use ir::Size::*;
    macro_rules! m {
        ($w:ident, $v:expr) => {
            match index {
                Some(i) => dynasm!(a ; .arch x64 ; mov $w [Rq(base) + Rq(i) + disp], $v),
                None => dynasm!(a ; .arch x64 ; mov $w [Rq(base) + disp], $v),
            }
        };
    }
    match size {
        B8 => m!(BYTE, v as i8),
        B16 => m!(WORD, v as i16),
        B32 => m!(DWORD, v as i32),
        B64 => m!(QWORD, v as i32),
    }
}

/// `cmp dword [base + disp], 0`
pub fn cmp_mem32_zero(a: &mut Asm, base: Reg, disp: i32) {
    dynasm!(a ; .arch x64 ; cmp DWORD [Rq(base) + disp], 0);
}

/// Pads with single-byte nops until `base + offset + extra` is a multiple of `align`.
pub fn pad_to(a: &mut Asm, base: usize, extra: usize, align: usize) {
    while (base + a.offset().0 + extra) % align != 0 {
        a.push(0x90);
    }
}
