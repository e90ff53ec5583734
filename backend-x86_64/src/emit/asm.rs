//! A small x86_64 encoder for the instruction forms the lowering uses, writing into a byte
//! vector that is reused from block to block.
//!
//! Why not dynasm: with registers and displacements chosen at run time, dynasm always emits a
//! REX prefix, a 32-bit displacement and a 32-bit immediate, and its assembler allocates per
//! block. Here every form takes the shortest encoding: REX only when an operand needs it
//! (64-bit width, r8-r15, or spl/bpl/sil/dil as byte registers), no displacement / disp8 /
//! disp32 as the value needs, imm8 forms of ALU ops and shifts by one, and rel8 for backward
//! branches that reach.
//!
//! Labels are indices into a position table; forward references are rel32 fields recorded in
//! a fixup list and patched by [`Asm::finish`]. Absolute targets (stubs, helpers) are encoded
//! against the final executable address `base`.

use crate::regs::*;

/// "No index register" in a [`Mem`].
pub const NOREG: Reg = 0xff;

/// A memory operand `[base + index + disp]` (scale 1; `index` may be [`NOREG`], never rsp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mem {
    pub base: Reg,
    pub index: Reg,
    pub disp: i32,
}

/// `[base + disp]`
pub const fn mem(base: Reg, disp: i32) -> Mem {
    Mem {
        base,
        index: NOREG,
        disp,
    }
}

/// `[base + index + disp]`
pub const fn mem_idx(base: Reg, index: Reg, disp: i32) -> Mem {
    Mem { base, index, disp }
}

/// The CPU-state field at byte `offset` (through the biased [`ENV`]).
pub const fn env_mem(offset: u32) -> Mem {
    mem(ENV, offset as i32 - ENV_BIAS)
}

/// `lea d, [ENV - ENV_BIAS]`: the unbiased CPU-state pointer.
pub fn env_ptr(a: &mut Asm, d: Reg) {
    lea(a, true, d, mem(ENV, -ENV_BIAS));
}

/// A label of the code being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicLabel(u32);

const UNBOUND: u32 = u32::MAX;

/// The assembler: code bytes, label positions and pending rel32 fixups, all reused across
/// blocks ([`Asm::reset`]).
#[derive(Debug, Default)]
pub struct Asm {
    pub buf: Vec<u8>,
    labels: Vec<u32>,
    /// (offset of a rel32 field, label)
    fixups: Vec<(u32, u32)>,
    /// Executable address of `buf[0]`.
    pub base: usize,
}

/// Legacy prefixes used as mandatory prefixes.
pub const P66: u8 = 0x66;
pub const PF3: u8 = 0xf3;

/// `r` as a byte register needs a REX prefix (spl, bpl, sil, dil instead of ah..bh).
fn byte_rex(r: Reg) -> bool {
    (4..8).contains(&r)
}

/// `v` fits a sign-extended imm8 / disp8.
pub fn fits_i8(v: i32) -> bool {
    v == v as i8 as i32
}

impl Asm {
    /// Empties the assembler for a block at executable address `base`.
    pub fn reset(&mut self, base: usize) {
        self.buf.clear();
        self.labels.clear();
        self.fixups.clear();
        self.base = base;
    }

    /// A fresh assembler for code at `base` (stubs, tests).
    pub fn new(base: usize) -> Asm {
        Asm {
            base,
            ..Asm::default()
        }
    }

    /// Current offset from the start of the code.
    #[inline]
    pub fn offset(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn push(&mut self, b: u8) {
        self.buf.push(b);
    }

    #[inline]
    pub fn extend(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    #[inline]
    fn imm32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn new_label(&mut self) -> DynamicLabel {
        self.labels.push(UNBOUND);
        DynamicLabel(self.labels.len() as u32 - 1)
    }

    /// Places `l` at the current offset.
    pub fn bind(&mut self, l: DynamicLabel) {
        self.labels[l.0 as usize] = self.buf.len() as u32;
    }

    /// Resolves the forward references. A label used but never bound is a backend bug.
    pub fn finish(&mut self) {
        for &(at, l) in &self.fixups {
            let target = self.labels[l as usize];
            assert!(target != UNBOUND, "unbound label");
            let rel = target as i32 - (at as i32 + 4);
            self.buf[at as usize..at as usize + 4].copy_from_slice(&rel.to_le_bytes());
        }
        self.fixups.clear();
    }

    /// Appends the `n` low bytes of `head` (n <= 8): one 8-byte store, then the length is
    /// cut back. Pushing byte by byte would reload and store the vector's length per byte
    /// (a `u8` store may alias it).
    #[inline(always)]
    fn put(&mut self, head: Head) {
        let len = self.buf.len();
        self.buf.extend_from_slice(&head.v.to_le_bytes());
        self.buf.truncate(len + head.n as usize);
    }

    /// Optional mandatory prefix, then REX if any bit is set or `force`.
    #[inline]
    fn prefix_rex(&mut self, pfx: u8, w: bool, reg: Reg, index: Reg, rm: Reg, force: bool) {
        let mut h = Head::default();
        h.prefix_rex(pfx, w, reg, index, rm, force);
        self.put(h);
    }

    /// `op reg, rm` with a register `rm` (ModRM mod = 11). `force_rex` for byte registers.
    #[inline(always)]
    pub fn op_rr(&mut self, pfx: u8, w: bool, op: &[u8], reg: Reg, rm: Reg, force_rex: bool) {
        let mut h = Head::default();
        h.prefix_rex(pfx, w, reg, 0, rm, force_rex);
        h.extend(op);
        h.push(0xc0 | (reg & 7) << 3 | (rm & 7));
        self.put(h);
    }

    /// `op reg, [mem]` with the shortest displacement.
    #[inline(always)]
    pub fn op_rm(&mut self, pfx: u8, w: bool, op: &[u8], reg: Reg, m: Mem, force_rex: bool) {
        let mut h = Head::default();
        let index = if m.index == NOREG { 0 } else { m.index };
        h.prefix_rex(pfx, w, reg, index, m.base, force_rex);
        h.extend(op);
        let r = (reg & 7) << 3;
        let b = m.base & 7;
        // rbp/r13 as base have no disp-less form (that encoding means rip-relative).
        let md = if m.disp == 0 && b != 5 {
            0x00
        } else if fits_i8(m.disp) {
            0x40
        } else {
            0x80
        };
        if m.index == NOREG && b != 4 {
            h.push(md | r | b);
        } else {
            debug_assert!(m.index != RSP, "rsp cannot be an index");
            let idx = if m.index == NOREG { 4 } else { m.index & 7 };
            h.push(md | r | 4);
            h.push(idx << 3 | b);
        }
        if md == 0x40 {
            h.push(m.disp as i8 as u8);
        }
        self.put(h);
        if md == 0x80 {
            self.imm32(m.disp);
        }
    }

    /// `jcc`/`jmp` to a label: rel8 backward when it reaches, else rel32 (fixed up later).
    fn branch(&mut self, short: u8, near: &[u8], l: DynamicLabel) {
        let target = self.labels[l.0 as usize];
        if target != UNBOUND {
            let rel8 = target as i64 - (self.buf.len() as i64 + 2);
            if rel8 >= -128 {
                self.buf.push(short);
                self.buf.push(rel8 as i8 as u8);
                return;
            }
            self.buf.extend_from_slice(near);
            let rel = target as i64 - (self.buf.len() as i64 + 4);
            self.imm32(rel as i32);
            return;
        }
        self.buf.extend_from_slice(near);
        self.fixups.push((self.buf.len() as u32, l.0));
        self.imm32(0);
    }
}

/// The first bytes of one instruction (at most 8: prefix, REX, opcode, ModRM, SIB, disp8)
/// gathered in an integer, so they reach the code vector in one store.
#[derive(Default, Clone, Copy)]
struct Head {
    v: u64,
    n: u32,
}

impl Head {
    #[inline(always)]
    fn push(&mut self, x: u8) {
        debug_assert!(self.n < 8, "instruction head longer than 8 bytes");
        self.v |= (x as u64) << (8 * self.n);
        self.n += 1;
    }

    #[inline(always)]
    fn extend(&mut self, xs: &[u8]) {
        for &x in xs {
            self.push(x);
        }
    }

    #[inline]
    fn prefix_rex(&mut self, pfx: u8, w: bool, reg: Reg, index: Reg, rm: Reg, force: bool) {
        if pfx != 0 {
            self.push(pfx);
        }
        let rex = (w as u8) << 3 | (reg >> 3 & 1) << 2 | (index >> 3 & 1) << 1 | (rm >> 3 & 1);
        if rex != 0 || force {
            self.push(0x40 | rex);
        }
    }
}

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

impl Alu {
    /// The /digit of the 0x81/0x83 group and the base opcode of the `rm, reg` form.
    fn codes(self) -> (u8, u8) {
        match self {
            Alu::Add => (0, 0x01),
            Alu::Or => (1, 0x09),
            Alu::And => (4, 0x21),
            Alu::Sub => (5, 0x29),
            Alu::Xor => (6, 0x31),
            Alu::Cmp => (7, 0x39),
            Alu::Test => (0, 0x85),
        }
    }
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

impl Sh {
    fn digit(self) -> u8 {
        match self {
            Sh::Rol => 0,
            Sh::Ror => 1,
            Sh::Shl => 4,
            Sh::Shr => 5,
            Sh::Sar => 7,
        }
    }
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

/// `v` fits an imm32 operand of a `w64`-bit op (sign-extended for 64-bit ops).
pub fn fits_imm32(w64: bool, v: u64) -> bool {
    if w64 {
        v as i64 == v as i32 as i64
    } else {
        true
    }
}

/// `mov d, s` (32-bit moves zero-extend). Nothing when `d == s`.
pub fn mov_rr(a: &mut Asm, w64: bool, d: Reg, s: Reg) {
    if d != s {
        a.op_rr(0, w64, &[0x89], s, d, false);
    }
}

/// `mov d32, s32` even when `d == s` (zero-extends the low half).
pub fn mov_rr32(a: &mut Asm, d: Reg, s: Reg) {
    a.op_rr(0, false, &[0x89], s, d, false);
}

/// Loads an immediate without touching the flags: `mov r32, imm32` (zero-extending),
/// `mov r64, simm32`, or `mov r64, imm64`.
pub fn mov_ri(a: &mut Asm, d: Reg, v: u64) {
    if v <= u32::MAX as u64 {
        if d >= 8 {
            a.push(0x41);
        }
        a.push(0xb8 | (d & 7));
        a.imm32(v as u32 as i32);
    } else if v as i64 == v as i32 as i64 {
        a.op_rr(0, true, &[0xc7], 0, d, false);
        a.imm32(v as i32);
    } else {
        a.push(0x48 | (d >> 3));
        a.push(0xb8 | (d & 7));
        a.extend(&v.to_le_bytes());
    }
}

/// Loads an immediate, using `xor` (which clobbers flags) for zero.
pub fn mov_ri_flags(a: &mut Asm, d: Reg, v: u64) {
    if v == 0 {
        alu_rr(a, Alu::Xor, false, d, d);
    } else {
        mov_ri(a, d, v);
    }
}

/// `op d, s`
pub fn alu_rr(a: &mut Asm, op: Alu, w64: bool, d: Reg, s: Reg) {
    a.op_rr(0, w64, &[op.codes().1], s, d, false);
}

/// `op d, imm` (sign-extended for 64-bit ops), imm8 form where it fits.
pub fn alu_ri(a: &mut Asm, op: Alu, w64: bool, d: Reg, imm: i32) {
    let (digit, _) = op.codes();
    if op == Alu::Test {
        a.op_rr(0, w64, &[0xf7], 0, d, false);
        a.imm32(imm);
    } else if fits_i8(imm) {
        a.op_rr(0, w64, &[0x83], digit, d, false);
        a.push(imm as i8 as u8);
    } else {
        a.op_rr(0, w64, &[0x81], digit, d, false);
        a.imm32(imm);
    }
}

/// `op d, [m]` (load-op; `Test` is `test [m], d`).
pub fn alu_rm(a: &mut Asm, op: Alu, w64: bool, d: Reg, m: Mem) {
    let opc = match op {
        Alu::Test => 0x85,
        _ => op.codes().1 + 2,
    };
    a.op_rm(0, w64, &[opc], d, m, false);
}

/// `op d, cl`
pub fn shift_cl(a: &mut Asm, op: Sh, w64: bool, d: Reg) {
    a.op_rr(0, w64, &[0xd3], op.digit(), d, false);
}

/// `op d, n`; nothing for a zero count.
pub fn shift_ri(a: &mut Asm, op: Sh, w64: bool, d: Reg, n: u8) {
    if n == 0 {
        return;
    }
    if n == 1 {
        a.op_rr(0, w64, &[0xd1], op.digit(), d, false);
    } else {
        a.op_rr(0, w64, &[0xc1], op.digit(), d, false);
        a.push(n);
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
    a.extend(&[0xc4, byte1, byte2, 0xf7, modrm]);
}

/// Unary group-3 operations on a register: `not` (2), `neg` (3), `mul` (4), `imul` (5),
/// `div` (6), `idiv` (7).
pub fn grp3(a: &mut Asm, digit: u8, w64: bool, r: Reg) {
    a.op_rr(0, w64, &[0xf7], digit, r, false);
}
pub const NOT: u8 = 2;
pub const NEG: u8 = 3;
pub const MUL: u8 = 4;
pub const IMUL1: u8 = 5;
pub const DIV: u8 = 6;
pub const IDIV: u8 = 7;

/// `imul d, s`
pub fn imul_rr(a: &mut Asm, w64: bool, d: Reg, s: Reg) {
    a.op_rr(0, w64, &[0x0f, 0xaf], d, s, false);
}

/// `imul d, s, imm`
pub fn imul_rri(a: &mut Asm, w64: bool, d: Reg, s: Reg, imm: i32) {
    if fits_i8(imm) {
        a.op_rr(0, w64, &[0x6b], d, s, false);
        a.push(imm as i8 as u8);
    } else {
        a.op_rr(0, w64, &[0x69], d, s, false);
        a.imm32(imm);
    }
}

/// `bswap r`
pub fn bswap(a: &mut Asm, w64: bool, r: Reg) {
    a.prefix_rex(0, w64, 0, 0, r, false);
    a.extend(&[0x0f, 0xc8 | (r & 7)]);
}

/// Bit scans and counts `d, s`: `F3 0F xx` (lzcnt BD, tzcnt BC, popcnt B8) or `0F xx`
/// (bsr BD, bsf BC).
pub fn bitop(a: &mut Asm, pfx: u8, opc: u8, w64: bool, d: Reg, s: Reg) {
    a.op_rr(pfx, w64, &[0x0f, opc], d, s, false);
}

/// Register extensions: `movzx d32, s8/s16`, `movsx d, s8/s16`, `movsxd d64, s32`.
pub fn ext_rr(a: &mut Asm, from: ir::ExtFrom, w64: bool, d: Reg, s: Reg) {
    use ir::ExtFrom::*;
    match from {
        U8 => a.op_rr(0, false, &[0x0f, 0xb6], d, s, byte_rex(s)),
        S8 => a.op_rr(0, w64, &[0x0f, 0xbe], d, s, byte_rex(s)),
        U16 => a.op_rr(0, false, &[0x0f, 0xb7], d, s, false),
        S16 => a.op_rr(0, w64, &[0x0f, 0xbf], d, s, false),
        S32 if w64 => a.op_rr(0, true, &[0x63], d, s, false),
        S32 | U32 => mov_rr32(a, d, s),
    }
}

/// `lea d, [m]` (32-bit destination when `!w64`).
pub fn lea(a: &mut Asm, w64: bool, d: Reg, m: Mem) {
    a.op_rm(0, w64, &[0x8d], d, m, false);
}

/// `setcc d8 ; movzx d32, d8`
pub fn setcc(a: &mut Asm, cc: Cc, d: Reg) {
    a.op_rr(0, false, &[0x0f, 0x90 | cc.code()], 0, d, byte_rex(d));
    a.op_rr(0, false, &[0x0f, 0xb6], d, d, byte_rex(d));
}

/// `cmovcc d, s`
pub fn cmov(a: &mut Asm, cc: Cc, w64: bool, d: Reg, s: Reg) {
    a.op_rr(0, w64, &[0x0f, 0x40 | cc.code()], d, s, false);
}

/// `xchg a, b` (64-bit)
pub fn xchg(a: &mut Asm, x: Reg, y: Reg) {
    a.op_rr(0, true, &[0x87], x, y, false);
}

/// `jcc label`
pub fn jcc(a: &mut Asm, cc: Cc, l: DynamicLabel) {
    a.branch(0x70 | cc.code(), &[0x0f, 0x80 | cc.code()], l);
}

/// `jmp label`
pub fn jmp(a: &mut Asm, l: DynamicLabel) {
    a.branch(0xeb, &[0xe9], l);
}

/// `jmp abs` with rel32 computed for the final address.
pub fn jmp_abs(a: &mut Asm, target: usize) {
    let next = a.base + a.offset() + 5;
    let rel = target.wrapping_sub(next) as isize;
    assert!(rel == rel as i32 as isize, "jump out of rel32 range");
    a.push(0xe9);
    a.imm32(rel as i32);
}

/// `call abs`: rel32 when reachable, else through TMP.
pub fn call_abs(a: &mut Asm, target: usize) {
    let next = a.base + a.offset() + 5;
    let rel = target.wrapping_sub(next) as isize;
    if rel == rel as i32 as isize {
        a.push(0xe8);
        a.imm32(rel as i32);
    } else {
        a.push(0x49);
        a.push(0xb8 | (TMP & 7));
        a.extend(&(target as u64).to_le_bytes());
        call_reg(a, TMP);
    }
}

/// `call r`
pub fn call_reg(a: &mut Asm, r: Reg) {
    a.op_rr(0, false, &[0xff], 2, r, false);
}

/// `call qword [m]`
pub fn call_mem(a: &mut Asm, m: Mem) {
    a.op_rm(0, false, &[0xff], 2, m, false);
}

/// `jmp r`
pub fn jmp_reg(a: &mut Asm, r: Reg) {
    a.op_rr(0, false, &[0xff], 4, r, false);
}

/// A load of `mop.size` bytes from `m` into `d`, extended to `w64` bits as `mop` says.
pub fn load(a: &mut Asm, mop: ir::MemOp, w64: bool, d: Reg, m: Mem) {
    use ir::Size::*;
    match (mop.size, mop.signed, w64) {
        (B8, false, _) => a.op_rm(0, false, &[0x0f, 0xb6], d, m, false),
        (B8, true, w) => a.op_rm(0, w, &[0x0f, 0xbe], d, m, false),
        (B16, false, _) => a.op_rm(0, false, &[0x0f, 0xb7], d, m, false),
        (B16, true, w) => a.op_rm(0, w, &[0x0f, 0xbf], d, m, false),
        (B32, true, true) => a.op_rm(0, true, &[0x63], d, m, false),
        (B32, _, _) | (B64, _, false) => a.op_rm(0, false, &[0x8b], d, m, false),
        (B64, _, true) => a.op_rm(0, true, &[0x8b], d, m, false),
    }
}

/// A store of the low `size` bytes of `s` to `m`.
pub fn store(a: &mut Asm, size: ir::Size, s: Reg, m: Mem) {
    use ir::Size::*;
    match size {
        B8 => a.op_rm(0, false, &[0x88], s, m, byte_rex(s)),
        B16 => a.op_rm(P66, false, &[0x89], s, m, false),
        B32 => a.op_rm(0, false, &[0x89], s, m, false),
        B64 => a.op_rm(0, true, &[0x89], s, m, false),
    }
}

/// A store of an immediate (which must fit `size`, sign-extended for 64-bit).
pub fn store_imm(a: &mut Asm, size: ir::Size, v: u64, m: Mem) {
    use ir::Size::*;
    match size {
        B8 => {
            a.op_rm(0, false, &[0xc6], 0, m, false);
            a.push(v as u8);
        }
        B16 => {
            a.op_rm(P66, false, &[0xc7], 0, m, false);
            a.extend(&(v as u16).to_le_bytes());
        }
        B32 | B64 => {
            a.op_rm(0, size == B64, &[0xc7], 0, m, false);
            a.imm32(v as u32 as i32);
        }
    }
}

/// `cmp dword [m], 0` (imm8 form)
pub fn cmp_mem32_zero(a: &mut Asm, m: Mem) {
    a.op_rm(0, false, &[0x83], 7, m, false);
    a.push(0);
}

/// Pads with single-byte nops until `base + offset + extra` is a multiple of `align`.
pub fn pad_to(a: &mut Asm, extra: usize, align: usize) {
    while (a.base + a.offset() + extra) % align != 0 {
        a.push(0x90);
    }
}
