//! The semantics of the x87 instructions glibc and gcc use, on the guest's x87 state.
//!
//! Like SSE (see [`super::sse`]), arithmetic runs the very same instruction on the host: the
//! guest's operands are loaded onto the (otherwise empty) host x87 stack as 80-bit values,
//! under the guest's control word (precision and rounding) with every exception masked; the
//! result, the condition codes and the sticky exception flags the host raised come back.
//! Register bookkeeping (top of stack, tags, stack faults, moves, `fchs`/`fabs`) is Rust.
//!
//! Memory operands never reach this module as addresses: the translator loads the bytes
//! and passes them in, and for stores asks for the value first ([`Phase::DryLo`],
//! [`Phase::DryHi`], which change nothing), stores it, then commits ([`Phase::Commit`]) the
//! pop and the flags, so a faulting store leaves the x87 state untouched.
//!
//! Where the SDM calls condition codes "undefined" the host's behaviour is what the guest
//! gets: the guest's codes are loaded into the host before each operation (`fldenv`), and
//! whatever the host instruction leaves is taken back. Where processors differ from the SDM
//! (`fcomi` and `fcmov` leave C1; `fld st(i)` of an empty register on a full stack reports
//! the underflow), this module follows the processor; the differential tests in
//! `tests/x86_64_exec.rs` and `tests/x86_64_x87.rs` compare x87 code with the host CPU.
//!
//! Stack faults never reach the host (its stack holds only the operands), so their masked
//! responses are Rust, after the SDM (section 8.5.1.1, #IS: the destination gets the real
//! indefinite, C1 = 0 for an underflow and 1 for an overflow) and, for the codes it leaves
//! undefined, after the processor: an underflowing arithmetic instruction leaves C0, C2 and
//! C3 alone; `fsin`, `fcos`, `fptan`, `fsincos`, `fprem` and `fprem1` clear C2 (their
//! operand was not "out of range", their reduction not "incomplete"); `fptan`, `fsincos`
//! and `fxtract` write the indefinite to both ST(1) and the pushed ST(0), for an empty ST(0)
//! as for a full ST(7); `ffree` clears C1.
//!
//! Gaps: unmasked x87 exceptions are not delivered (#MF); the flag, ES and B are set and the
//! masked response is taken. The instruction and data pointers (FIP/FDP/FOP) read as zero.
//! Not implemented (#UD): `fnsave`/`frstor`, `fbld`/`fbstp`.

use core::arch::asm;

use super::cpu::X86Cpu;

/// An 80-bit extended-precision value as it sits in memory: mantissa, then sign/exponent.
pub type F80 = [u8; 10];

/// The QNaN "real indefinite" a masked invalid operation produces.
pub const INDEFINITE: F80 = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];

/// The control word after `fninit`: every exception masked, 64-bit precision, round to nearest.
pub const DEFAULT_CW: u16 = 0x037f;

/// Status word bits.
mod sw {
    /// Invalid operation.
    pub const IE: u16 = 1;
    /// Stack fault (with IE; C1 says overflow).
    pub const SF: u16 = 1 << 6;
    /// Error summary.
    pub const ES: u16 = 1 << 7;
    /// Condition code bits.
    pub const C0: u16 = 1 << 8;
    pub const C1: u16 = 1 << 9;
    pub const C2: u16 = 1 << 10;
    pub const C3: u16 = 1 << 14;
    /// Busy (mirrors ES).
    pub const B: u16 = 1 << 15;
    /// TOP, bits 11..14 (kept apart in [`super::Fpu::top`]).
    pub const TOP: u16 = 7 << 11;
    /// The six exception flags.
    pub const FLAGS: u16 = 0x3f;
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// The guest's x87 state, copied out of [`X86Cpu`] for one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fpu {
    /// Physical registers R0..R7 (ST(i) is R[(top + i) % 8]).
    pub regs: [F80; 8],
    /// Top of stack (0..8).
    pub top: u8,
    /// Bit i set: R[i] holds a value (the abridged tag word of FXSAVE).
    pub tags: u8,
    /// Control word.
    pub cw: u16,
    /// Status word without TOP.
    pub sw: u16,
}

impl Fpu {
    /// The x87 part of `cpu`.
    pub fn of(cpu: &X86Cpu) -> Fpu {
        Fpu {
            regs: cpu.fpr,
            top: (cpu.fpu_top & 7) as u8,
            tags: cpu.fpu_tags as u8,
            cw: cpu.fpu_cw,
            sw: cpu.fpu_sw & !sw::TOP,
        }
    }

    /// Writes this state back into `cpu`.
    pub fn save(&self, cpu: &mut X86Cpu) {
        cpu.fpr = self.regs;
        cpu.fpu_top = self.top as u16;
        cpu.fpu_tags = self.tags as u16;
        cpu.fpu_cw = self.cw;
        cpu.fpu_sw = self.sw;
    }

    /// The state after `fninit`.
    pub fn init(&mut self) {
        self.top = 0;
        self.tags = 0;
        self.cw = DEFAULT_CW;
        self.sw = 0;
    }

    /// The status word as `fnstsw` stores it (TOP included).
    pub fn status(&self) -> u16 {
        self.sw & !sw::TOP | (self.top as u16) << 11
    }

    fn phys(&self, i: u8) -> usize {
        ((self.top + i) & 7) as usize
    }

    fn empty(&self, i: u8) -> bool {
        self.tags & 1 << self.phys(i) == 0
    }

    /// ST(i), or `None` when it is empty.
    pub fn st(&self, i: u8) -> Option<F80> {
        (!self.empty(i)).then(|| self.regs[self.phys(i)])
    }

    fn set(&mut self, i: u8, v: F80) {
        let p = self.phys(i);
        self.regs[p] = v;
        self.tags |= 1 << p;
    }

    /// Merges exception flags, recomputing ES and B (set when an unmasked one is pending).
    fn raise(&mut self, flags: u16) {
        self.sw |= flags & (sw::FLAGS | sw::SF);
        if self.sw & !self.cw & sw::FLAGS != 0 {
            self.sw |= sw::ES | sw::B;
        }
    }

    /// Stack underflow: IE + SF, C1 clear.
    fn underflow(&mut self) {
        self.sw &= !sw::C1;
        self.raise(sw::IE | sw::SF);
    }

    /// ST(i), or the indefinite after recording a stack underflow.
    fn get(&mut self, i: u8) -> F80 {
        self.st(i).unwrap_or_else(|| {
            self.underflow();
            INDEFINITE
        })
    }

    /// Pushes `v`; a full register at the new top is a stack overflow (IE + SF + C1) and
    /// the masked response pushes the indefinite.
    fn push(&mut self, v: F80) {
        self.top = (self.top + 7) & 7;
        let v = if self.empty(0) {
            v
        } else {
            self.raise(sw::IE | sw::SF);
            self.sw |= sw::C1;
            INDEFINITE
        };
        self.set(0, v);
    }

    fn pop(&mut self) {
        self.tags &= !(1 << self.phys(0));
        self.top = (self.top + 1) & 7;
    }

    /// Takes the condition codes in `mask` from the host status `host` and its flags.
    fn merge(&mut self, host: u16, mask: u16) {
        self.sw = self.sw & !mask | host & mask;
        self.raise(host);
    }
}

/// Writes the x87 part of an FXSAVE image of `cpu` into `image` (at least 160 bytes): FCW,
/// FSW, abridged FTW at 0..8 (FOP zero), the pointers at 8..24 zero, ST0..7 in 16-byte slots
/// at 32. Bytes 24..32 (MXCSR and its mask) are left alone. For signal frames and the like;
/// the `fxsave` instruction stores the same bytes through the guest's memory.
pub fn write_fxsave(cpu: &X86Cpu, image: &mut [u8]) {
    let f = Fpu::of(cpu);
    if image.len() < 160 {
        return;
    }
    image[0..2].copy_from_slice(&f.cw.to_le_bytes());
    image[2..4].copy_from_slice(&f.status().to_le_bytes());
    image[4] = f.tags;
    image[5..24].fill(0);
    for i in 0..8u8 {
        let o = 32 + 16 * i as usize;
        image[o..o + 10].copy_from_slice(&f.regs[f.phys(i)]);
        image[o + 10..o + 16].fill(0);
    }
}

/// Loads the x87 part of an FXSAVE image (see [`write_fxsave`]) into `cpu`; a short image
/// changes nothing.
pub fn read_fxsave(cpu: &mut X86Cpu, image: &[u8]) {
    if image.len() < 160 {
        return;
    }
    let mut f = Fpu::of(cpu);
    f.cw = u16::from_le_bytes([image[0], image[1]]);
    let status = u16::from_le_bytes([image[2], image[3]]);
    f.sw = status & !sw::TOP;
    f.top = (status >> 11 & 7) as u8;
    f.tags = image[4];
    for i in 0..8u8 {
        let o = 32 + 16 * i as usize;
        let p = f.phys(i);
        f.regs[p].copy_from_slice(&image[o..o + 10]);
    }
    f.save(cpu);
}

/// `fninit` on `cpu` (what a signal handler starts with).
pub fn reset(cpu: &mut X86Cpu) {
    let mut f = Fpu::of(cpu);
    f.init();
    f.save(cpu);
}

/// Memory operand formats (also: where a source comes from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// A stack register ST(i), no memory.
    Reg = 0,
    F32 = 1,
    F64 = 2,
    F80 = 3,
    I16 = 4,
    I32 = 5,
    I64 = 6,
}

impl Fmt {
    fn from_bits(v: u64) -> Option<Fmt> {
        Some(match v {
            0 => Fmt::Reg,
            1 => Fmt::F32,
            2 => Fmt::F64,
            3 => Fmt::F80,
            4 => Fmt::I16,
            5 => Fmt::I32,
            6 => Fmt::I64,
            _ => return None,
        })
    }

    /// Bytes in memory.
    pub fn bytes(self) -> usize {
        match self {
            Fmt::Reg => 0,
            Fmt::I16 => 2,
            Fmt::F32 | Fmt::I32 => 4,
            Fmt::F64 | Fmt::I64 => 8,
            Fmt::F80 => 10,
        }
    }
}

/// What one helper call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `fninit`.
    Init = 0,
    /// `fld`/`fild`: push the source.
    Load = 1,
    /// `fst(p)`/`fist(p)` to memory or ST(i); `sub` 1: `fisttp` (truncate).
    Store = 2,
    /// ST(dst) = ST(dst) op src (`rev`: src op ST(dst)); `sub`: [`Arith`], with
    /// [`ARITH_DST_I`] when the destination is ST(i) and the source ST(0).
    Arith = 3,
    /// `fchs`.
    Chs = 4,
    /// `fabs`.
    Abs = 5,
    /// `fsqrt`.
    Sqrt = 6,
    /// `frndint`.
    Rndint = 7,
    /// `fxch st(i)`.
    Xch = 8,
    /// Compare ST(0) with the source; `sub` 1: unordered (`fucom`), bit 1: return EFLAGS.
    Com = 9,
    /// `fxam`.
    Xam = 10,
    /// `ftst`.
    Tst = 11,
    /// Push constant `sub` (1, l2t, l2e, pi, lg2, ln2, 0 in opcode order).
    Const = 12,
    /// `fscale`.
    Scale = 13,
    /// `fprem`; `sub` 1: `fprem1`.
    Prem = 14,
    /// `ffree st(i)`.
    Free = 15,
    /// `fnstsw`: returns the status word.
    Stsw = 16,
    /// `fnclex`.
    Clex = 17,
    /// `fcmovcc st, st(i)`: the condition holds when the source `lo` is non-zero.
    Cmov = 18,
    /// `fnstenv`: dry phases return quadword `sub` of the 28-byte environment; the commit
    /// masks every exception, as the instruction does after storing.
    Stenv = 19,
    /// `fldenv`: `lo` holds bytes 0..8 of the environment (FCW, FSW), `hi` bytes 8..10 (FTW).
    Ldenv = 20,
    /// One-operand transcendentals on ST(0), `sub`: 0 `f2xm1`, 1 `fsin`, 2 `fcos`, 3 `fptan`,
    /// 4 `fsincos`, 5 `fxtract` (the last three push a second result).
    Trans1 = 21,
    /// ST(1) = f(ST(1), ST(0)) and pop, `sub`: 0 `fyl2x`, 1 `fyl2xp1`, 2 `fpatan`.
    Trans2 = 22,
    /// `fincstp` (`sub` 0) / `fdecstp` (1).
    Stp = 23,
}

impl Op {
    fn from_bits(v: u64) -> Option<Op> {
        use Op::*;
        Some(match v {
            0 => Init,
            1 => Load,
            2 => Store,
            3 => Arith,
            4 => Chs,
            5 => Abs,
            6 => Sqrt,
            7 => Rndint,
            8 => Xch,
            9 => Com,
            10 => Xam,
            11 => Tst,
            12 => Const,
            13 => Scale,
            14 => Prem,
            15 => Free,
            16 => Stsw,
            17 => Clex,
            18 => Cmov,
            19 => Stenv,
            20 => Ldenv,
            21 => Trans1,
            22 => Trans2,
            23 => Stp,
            _ => return None,
        })
    }
}

/// The arithmetic of [`Op::Arith`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
}

/// Which part of a store a call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Everything (no memory destination).
    Full = 0,
    /// Returns the stored value's low 8 bytes; changes nothing.
    DryLo = 1,
    /// Returns bytes 8..10 of an 80-bit store; changes nothing.
    DryHi = 2,
    /// The store happened: apply flags and pops.
    Commit = 3,
}

/// One helper call, packed into a u64: op (bits 0..8), sub (8..16), ST index (16..19),
/// format (20..23), pops (24..26), reversed (26), phase (28..30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    pub op: Op,
    pub sub: u8,
    pub i: u8,
    pub fmt: Fmt,
    pub pops: u8,
    pub rev: bool,
    pub phase: Phase,
}

impl Desc {
    /// A description of `op` with everything else zero.
    pub fn new(op: Op) -> Desc {
        Desc {
            op,
            sub: 0,
            i: 0,
            fmt: Fmt::Reg,
            pops: 0,
            rev: false,
            phase: Phase::Full,
        }
    }

    pub fn pack(&self) -> u64 {
        self.op as u64
            | (self.sub as u64) << 8
            | (self.i as u64 & 7) << 16
            | (self.fmt as u64) << 20
            | (self.pops as u64 & 3) << 24
            | (self.rev as u64) << 26
            | (self.phase as u64) << 28
    }

    pub fn unpack(v: u64) -> Option<Desc> {
        Some(Desc {
            op: Op::from_bits(v & 0xff)?,
            sub: (v >> 8) as u8,
            i: (v >> 16 & 7) as u8,
            fmt: Fmt::from_bits(v >> 20 & 7)?,
            pops: (v >> 24 & 3) as u8,
            rev: v >> 26 & 1 != 0,
            phase: match v >> 28 & 3 {
                0 => Phase::Full,
                1 => Phase::DryLo,
                2 => Phase::DryHi,
                _ => Phase::Commit,
            },
        })
    }
}

/// The host control word for a guest one: its precision and rounding, every exception masked.
fn host_cw(cw: u16) -> u16 {
    cw & 0x0f00 | 0x7f
}

/// The 28-byte environment (`fldenv`, 32-bit format) the host runs a guest operation in:
/// [`host_cw`], the guest's condition codes (which instructions leave alone or leave
/// "undefined" as they were) with no flags and TOP 0, every register empty.
fn host_env(cw: u16, status: u16) -> [u32; 7] {
    [
        host_cw(cw) as u32,
        (status & sw::CC) as u32,
        0xffff,
        0,
        0,
        0,
        0,
    ]
}

/// Runs `insn` on the host with `a` in ST(0) and `b` in ST(1) under `cw` and the condition
/// codes of status `sw`: the new ST(0) and the status word right after `insn`.
macro_rules! run2 {
    ($insn:expr, $cw:expr, $sw:expr, $a:expr, $b:expr) => {{
        let a: F80 = $a;
        let b: F80 = $b;
        let env = host_env($cw, $sw);
        let mut r: F80 = [0; 10];
        let mut st: u16 = 0;
        let mut saved: u16 = 0;
        // SAFETY: saves the host control word, loads an environment with every exception
        // masked (so nothing traps) and every register empty, pushes two values onto the x87 stack (empty between Rust
        // statements by the ABI), runs one instruction that leaves two values, stores the
        // status and ST(0), pops both and restores the control word: the host x87 state is
        // as before but for its flags. The pointers are to locals of the right sizes.
        unsafe {
            asm!(
                "fnstcw word ptr [{saved}]",
                "fldenv [{env}]",
                "fld tbyte ptr [{b}]",
                "fld tbyte ptr [{a}]",
                $insn,
                "fnstsw word ptr [{st}]",
                "fstp tbyte ptr [{r}]",
                "fstp st(0)",
                "fldcw word ptr [{saved}]",
                saved = in(reg) &mut saved,
                env = in(reg) &env,
                a = in(reg) &a,
                b = in(reg) &b,
                r = in(reg) &mut r,
                st = in(reg) &mut st,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        (r, st)
    }};
}

/// Converts memory bytes `m` to an 80-bit value with `insn` (`fld`/`fild` from `[{m}]`).
macro_rules! load_mem {
    ($insn:expr, $cw:expr, $sw:expr, $m:expr) => {{
        let m: u64 = $m;
        let env = host_env($cw, $sw);
        let mut r: F80 = [0; 10];
        let mut st: u16 = 0;
        let mut saved: u16 = 0;
        // SAFETY: as in `run2!`; one value is pushed from the local `m` and popped to `r`.
        unsafe {
            asm!(
                "fnstcw word ptr [{saved}]",
                "fldenv [{env}]",
                $insn,
                "fnstsw word ptr [{st}]",
                "fstp tbyte ptr [{r}]",
                "fldcw word ptr [{saved}]",
                saved = in(reg) &mut saved,
                env = in(reg) &env,
                m = in(reg) &m,
                r = in(reg) &mut r,
                st = in(reg) &mut st,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        (r, st)
    }};
}

/// Runs `insn` on the host with `a` in ST(0) and memory source bytes `m` at `[{m}]`:
/// the new ST(0) and the status right after `insn` (the memory operand's own exceptions,
/// such as a denormal, come in the instruction's order of priority).
macro_rules! run_mem {
    ($insn:expr, $cw:expr, $sw:expr, $a:expr, $m:expr) => {{
        let a: F80 = $a;
        let m: u64 = $m;
        let env = host_env($cw, $sw);
        let mut r: F80 = [0; 10];
        let mut st: u16 = 0;
        let mut saved: u16 = 0;
        // SAFETY: as in `run2!`; one value is pushed from `a`, the instruction reads the
        // local `m`, and the result is popped into `r`.
        unsafe {
            asm!(
                "fnstcw word ptr [{saved}]",
                "fldenv [{env}]",
                "fld tbyte ptr [{a}]",
                $insn,
                "fnstsw word ptr [{st}]",
                "fstp tbyte ptr [{r}]",
                "fldcw word ptr [{saved}]",
                saved = in(reg) &mut saved,
                env = in(reg) &env,
                a = in(reg) &a,
                m = in(reg) &m,
                r = in(reg) &mut r,
                st = in(reg) &mut st,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        (r, st)
    }};
}

/// `fop st(0), m` (`rev`: the reversed instruction) for arithmetic `op` on memory format
/// `fmt` (F32, F64, I16, I32), on the host.
fn arith_mem(f: &Fpu, op: u8, rev: bool, fmt: Fmt, a: F80, m: u64) -> Option<(F80, u16)> {
    let (cw, s) = (f.cw, f.sw);
    macro_rules! forms {
        ($($o:literal, $r:literal, $fmt:pat, $insn:literal;)*) => {
            match (op, rev, fmt) {
                $(($o, $r, $fmt) => Some(run_mem!($insn, cw, s, a, m)),)*
                _ => None,
            }
        };
    }
    forms! {
        0, false, Fmt::F32, "fadd dword ptr [{m}]";
        0, false, Fmt::F64, "fadd qword ptr [{m}]";
        0, false, Fmt::I16, "fiadd word ptr [{m}]";
        0, false, Fmt::I32, "fiadd dword ptr [{m}]";
        1, false, Fmt::F32, "fsub dword ptr [{m}]";
        1, false, Fmt::F64, "fsub qword ptr [{m}]";
        1, false, Fmt::I16, "fisub word ptr [{m}]";
        1, false, Fmt::I32, "fisub dword ptr [{m}]";
        1, true, Fmt::F32, "fsubr dword ptr [{m}]";
        1, true, Fmt::F64, "fsubr qword ptr [{m}]";
        1, true, Fmt::I16, "fisubr word ptr [{m}]";
        1, true, Fmt::I32, "fisubr dword ptr [{m}]";
        2, false, Fmt::F32, "fmul dword ptr [{m}]";
        2, false, Fmt::F64, "fmul qword ptr [{m}]";
        2, false, Fmt::I16, "fimul word ptr [{m}]";
        2, false, Fmt::I32, "fimul dword ptr [{m}]";
        3, false, Fmt::F32, "fdiv dword ptr [{m}]";
        3, false, Fmt::F64, "fdiv qword ptr [{m}]";
        3, false, Fmt::I16, "fidiv word ptr [{m}]";
        3, false, Fmt::I32, "fidiv dword ptr [{m}]";
        3, true, Fmt::F32, "fdivr dword ptr [{m}]";
        3, true, Fmt::F64, "fdivr qword ptr [{m}]";
        3, true, Fmt::I16, "fidivr word ptr [{m}]";
        3, true, Fmt::I32, "fidivr dword ptr [{m}]";
        // Compares (op 4, rev unused): the status carries the result.
        4, false, Fmt::F32, "fcom dword ptr [{m}]";
        4, false, Fmt::F64, "fcom qword ptr [{m}]";
        4, false, Fmt::I16, "ficom word ptr [{m}]";
        4, false, Fmt::I32, "ficom dword ptr [{m}]";
    }
}

/// Runs `insn` on the host with `a` alone in ST(0): the new ST(0), the new ST(1) (for the
/// instructions that push a second result; else whatever an empty register stores), and the
/// status right after `insn`.
macro_rules! run1 {
    ($insn:expr, $cw:expr, $sw:expr, $a:expr) => {{
        let a: F80 = $a;
        let env = host_env($cw, $sw);
        let mut r: F80 = [0; 10];
        let mut r2: F80 = [0; 10];
        let mut st: u16 = 0;
        let mut saved: u16 = 0;
        // SAFETY: as in `run2!`; one value is pushed from `a`, the instruction leaves one or
        // two, and two pops empty the stack again (popping an empty register with every
        // exception masked only sets host flags nobody reads).
        unsafe {
            asm!(
                "fnstcw word ptr [{saved}]",
                "fldenv [{env}]",
                "fld tbyte ptr [{a}]",
                $insn,
                "fnstsw word ptr [{st}]",
                "fstp tbyte ptr [{r}]",
                "fstp tbyte ptr [{r2}]",
                "fldcw word ptr [{saved}]",
                saved = in(reg) &mut saved,
                env = in(reg) &env,
                a = in(reg) &a,
                r = in(reg) &mut r,
                r2 = in(reg) &mut r2,
                st = in(reg) &mut st,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        (r, r2, st)
    }};
}

/// Converts `a` to a memory format with `insn` (a popping store to `[{m}]`).
macro_rules! store_mem {
    ($insn:expr, $cw:expr, $sw:expr, $a:expr) => {{
        let a: F80 = $a;
        let env = host_env($cw, $sw);
        let mut m: u64 = 0;
        let mut st: u16 = 0;
        let mut saved: u16 = 0;
        // SAFETY: as in `run2!`; one value is pushed from `a` and popped by the store into
        // the local `m` (at most 8 bytes).
        unsafe {
            asm!(
                "fnstcw word ptr [{saved}]",
                "fldenv [{env}]",
                "fld tbyte ptr [{a}]",
                $insn,
                "fnstsw word ptr [{st}]",
                "fldcw word ptr [{saved}]",
                saved = in(reg) &mut saved,
                env = in(reg) &env,
                a = in(reg) &a,
                m = in(reg) &mut m,
                st = in(reg) &mut st,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        (m, st)
    }};
}

fn f80_of(lo: u64, hi: u64) -> F80 {
    let mut v = [0u8; 10];
    v[..8].copy_from_slice(&lo.to_le_bytes());
    v[8..].copy_from_slice(&(hi as u16).to_le_bytes());
    v
}

/// Splits an 80-bit value into its low 8 bytes and its sign/exponent.
pub fn f80_parts(v: &F80) -> (u64, u64) {
    let mut lo = [0u8; 8];
    lo.copy_from_slice(&v[..8]);
    (
        u64::from_le_bytes(lo),
        u16::from_le_bytes([v[8], v[9]]) as u64,
    )
}

const ZERO: F80 = [0; 10];

/// The source operand of `d` as an 80-bit value: ST(i), or memory bytes `lo`/`hi`
/// converted (with the conversion's exceptions).
fn source(f: &mut Fpu, d: &Desc, lo: u64, hi: u64) -> F80 {
    let (v, st) = match d.fmt {
        Fmt::Reg => return f.get(d.i),
        Fmt::F80 => return f80_of(lo, hi),
        Fmt::F32 => load_mem!("fld dword ptr [{m}]", f.cw, f.sw, lo),
        Fmt::F64 => load_mem!("fld qword ptr [{m}]", f.cw, f.sw, lo),
        Fmt::I16 => load_mem!("fild word ptr [{m}]", f.cw, f.sw, lo),
        Fmt::I32 => load_mem!("fild dword ptr [{m}]", f.cw, f.sw, lo),
        Fmt::I64 => load_mem!("fild qword ptr [{m}]", f.cw, f.sw, lo),
    };
    f.raise(st);
    v
}

/// ST(0) converted to `fmt` (`trunc`: `fisttp`): the bytes, zero-extended, and the status.
fn convert(f: &Fpu, v: F80, fmt: Fmt, trunc: bool) -> (u64, u16) {
    let cw = f.cw;
    match (fmt, trunc) {
        (Fmt::F32, _) => store_mem!("fstp dword ptr [{m}]", cw, f.sw, v),
        (Fmt::F64, _) => store_mem!("fstp qword ptr [{m}]", cw, f.sw, v),
        (Fmt::I16, false) => store_mem!("fistp word ptr [{m}]", cw, f.sw, v),
        (Fmt::I32, false) => store_mem!("fistp dword ptr [{m}]", cw, f.sw, v),
        (Fmt::I64, false) => store_mem!("fistp qword ptr [{m}]", cw, f.sw, v),
        (Fmt::I16, true) => store_mem!("fisttp word ptr [{m}]", cw, f.sw, v),
        (Fmt::I32, true) => store_mem!("fisttp dword ptr [{m}]", cw, f.sw, v),
        (Fmt::I64, true) => store_mem!("fisttp qword ptr [{m}]", cw, f.sw, v),
        (Fmt::F80, _) | (Fmt::Reg, _) => (f80_parts(&v).0, 0),
    }
}

/// Runs the instruction described by `d` on `f`; `lo`/`hi` are a memory source's bytes.
/// Returns the stored value for stores' dry phases, the status word for `fnstsw`, EFLAGS
/// (ZF PF CF) for `fcomi`, else 0.
pub fn exec(f: &mut Fpu, d: &Desc, lo: u64, hi: u64) -> u64 {
    let cw = f.cw;
    let mut out = 0;
    match d.op {
        Op::Init => f.init(),
        Op::Clex => f.sw &= !(sw::FLAGS | sw::SF | sw::ES | sw::B),
        Op::Stsw => out = f.status() as u64,
        Op::Load => {
            f.sw &= !sw::C1;
            if d.fmt == Fmt::Reg && f.empty(d.i) {
                // An empty source register is what gets reported (underflow, C1 clear),
                // even when the stack is also full.
                f.underflow();
                f.top = (f.top + 7) & 7;
                f.set(0, INDEFINITE);
            } else {
                let v = match d.fmt {
                    // A full stack overflows before the operand is looked at (no #D).
                    _ if !f.empty(7) => INDEFINITE,
                    // No conversion: loading from a register or m80 raises nothing.
                    Fmt::Reg => f.get(d.i),
                    _ => source(f, d, lo, hi),
                };
                f.push(v);
            }
        }
        Op::Store => {
            let v = f.get(0);
            if d.fmt == Fmt::Reg {
                f.sw &= !sw::C1;
                f.set(d.i, v);
            } else {
                let (m, st) = convert(f, v, d.fmt, d.sub == 1);
                match d.phase {
                    Phase::DryLo => return m,
                    Phase::DryHi => return f80_parts(&v).1,
                    // An 80-bit store converts nothing: C1 clear, C0, C2 and C3 (undefined)
                    // stay as they were, as on the processor.
                    _ if d.fmt == Fmt::F80 => f.sw &= !sw::C1,
                    _ => f.merge(st, sw::CC),
                }
            }
            for _ in 0..d.pops {
                f.pop();
            }
        }
        Op::Arith => {
            let to_i = d.fmt == Fmt::Reg && d.sub & ARITH_DST_I != 0;
            // `fop st(i), st(0)`: ST(i) is the destination and ST(0) the source.
            let (dst_i, src_i) = if to_i { (d.i, 0) } else { (0, d.i) };
            let src_ok = d.fmt != Fmt::Reg || !f.empty(src_i);
            let dst_ok = !f.empty(dst_i);
            if d.fmt != Fmt::Reg {
                let dst = f.get(0);
                let r = if dst_ok {
                    let (r, st) = arith_mem(f, d.sub & 3, d.rev, d.fmt, dst, lo)
                        .unwrap_or((INDEFINITE, sw::IE));
                    f.merge(st, sw::CC);
                    r
                } else {
                    // Underflow (recorded by `get`): C0, C2 and C3 stay as they were.
                    INDEFINITE
                };
                f.set(0, r);
                return out;
            }
            let src = f.get(src_i);
            let dst = f.get(dst_i);
            let (a, b) = if d.rev { (src, dst) } else { (dst, src) };
            let r = if src_ok && dst_ok {
                let (r, st) = match d.sub & 3 {
                    0 => run2!("fadd st, st(1)", cw, f.sw, a, b),
                    1 => run2!("fsub st, st(1)", cw, f.sw, a, b),
                    2 => run2!("fmul st, st(1)", cw, f.sw, a, b),
                    _ => run2!("fdiv st, st(1)", cw, f.sw, a, b),
                };
                f.merge(st, sw::CC);
                r
            } else {
                // Underflow (recorded by `get`): C0, C2 and C3 stay as they were.
                INDEFINITE
            };
            f.set(dst_i, r);
            for _ in 0..d.pops {
                f.pop();
            }
        }
        Op::Chs | Op::Abs => {
            // An empty ST(0) becomes the indefinite itself (not its negation).
            let v = match f.st(0) {
                None => f.get(0),
                Some(mut v) => {
                    if d.op == Op::Chs {
                        v[9] ^= 0x80;
                    } else {
                        v[9] &= 0x7f;
                    }
                    v
                }
            };
            f.sw &= !sw::C1;
            f.set(0, v);
        }
        Op::Sqrt | Op::Rndint | Op::Scale | Op::Prem => {
            let ok = !f.empty(0) && (!matches!(d.op, Op::Scale | Op::Prem) || !f.empty(1));
            let a = f.get(0);
            let b = if matches!(d.op, Op::Scale | Op::Prem) {
                f.get(1)
            } else {
                ZERO
            };
            if !ok {
                // Underflow (C1 cleared by `get`); fprem's C2 ("reduction incomplete") is
                // cleared too, C0 and C3 stay.
                if d.op == Op::Prem {
                    f.sw &= !sw::C2;
                }
                f.set(0, INDEFINITE);
            } else {
                let (r, st) = match (d.op, d.sub) {
                    (Op::Sqrt, _) => run2!("fsqrt", cw, f.sw, a, b),
                    (Op::Rndint, _) => run2!("frndint", cw, f.sw, a, b),
                    (Op::Scale, _) => run2!("fscale", cw, f.sw, a, b),
                    (_, 0) => run2!("fprem", cw, f.sw, a, b),
                    _ => run2!("fprem1", cw, f.sw, a, b),
                };
                f.merge(st, sw::CC);
                f.set(0, r);
            }
        }
        Op::Xch => {
            let a = f.get(0);
            let b = f.get(d.i);
            f.sw &= !sw::C1;
            f.set(0, b);
            f.set(d.i, a);
        }
        Op::Com | Op::Tst => {
            let ok = !f.empty(0) && (d.op == Op::Tst || d.fmt != Fmt::Reg || !f.empty(d.i));
            let a = f.get(0);
            let b = if d.op == Op::Tst || d.fmt != Fmt::Reg {
                ZERO
            } else {
                f.get(d.i)
            };
            let cc = if !ok {
                sw::C0 | sw::C2 | sw::C3
            } else {
                let (_, st) = match (d.op, d.sub & 1) {
                    (Op::Tst, _) => run2!("ftst", cw, f.sw, a, b),
                    _ if d.fmt != Fmt::Reg => {
                        arith_mem(f, 4, false, d.fmt, a, lo).unwrap_or((INDEFINITE, sw::IE))
                    }
                    (_, 0) => run2!("fcom st(1)", cw, f.sw, a, b),
                    _ => run2!("fucom st(1)", cw, f.sw, a, b),
                };
                f.raise(st);
                st & (sw::C0 | sw::C2 | sw::C3)
            };
            if d.sub & 2 != 0 {
                // fcomi: ZF = C3, PF = C2, CF = C0; the condition codes keep theirs, C1
                // included (the SDM says C1 is cleared; processors leave it, except on a
                // stack underflow, which cleared it above).
                let bit = |c: u16, flag: u64| if cc & c != 0 { flag } else { 0 };
                out = bit(sw::C3, super::flags::ZF)
                    | bit(sw::C2, super::flags::PF)
                    | bit(sw::C0, super::flags::CF);
            } else {
                f.sw = f.sw & !sw::CC | cc;
            }
            for _ in 0..d.pops {
                f.pop();
            }
        }
        Op::Xam => {
            let sign = (f.regs[f.phys(0)][9] >> 7) as u16;
            let cc = match f.st(0) {
                None => sw::C3 | sw::C0,
                Some(v) => run2!("fxam", cw, f.sw, v, ZERO).1 & (sw::C0 | sw::C2 | sw::C3),
            };
            f.sw = f.sw & !sw::CC | cc | if sign != 0 { sw::C1 } else { 0 };
        }
        Op::Const => {
            let (v, st) = match d.sub {
                0 => run2!("fstp st(0)\nfld1", cw, f.sw, ZERO, ZERO),
                1 => run2!("fstp st(0)\nfldl2t", cw, f.sw, ZERO, ZERO),
                2 => run2!("fstp st(0)\nfldl2e", cw, f.sw, ZERO, ZERO),
                3 => run2!("fstp st(0)\nfldpi", cw, f.sw, ZERO, ZERO),
                4 => run2!("fstp st(0)\nfldlg2", cw, f.sw, ZERO, ZERO),
                5 => run2!("fstp st(0)\nfldln2", cw, f.sw, ZERO, ZERO),
                _ => (ZERO, 0),
            };
            f.raise(st);
            f.sw &= !sw::C1;
            f.push(v);
        }
        Op::Cmov => {
            if f.empty(0) || f.empty(d.i) {
                f.underflow();
                f.set(0, INDEFINITE);
            } else {
                // C1 stays (processors only clear it on an underflow).
                if lo != 0 {
                    let v = f.regs[f.phys(d.i)];
                    f.set(0, v);
                }
            }
        }
        Op::Stenv => match d.phase {
            Phase::DryLo | Phase::DryHi => return env_quad(f, d.sub),
            _ => f.cw |= sw::FLAGS,
        },
        Op::Ldenv => {
            f.cw = lo as u16;
            let status = (lo >> 32) as u16;
            f.sw = status & !sw::TOP;
            f.top = (status >> 11 & 7) as u8;
            // Tag 11 is empty; valid, zero and special all hold a value.
            f.tags = (0..8).fold(0, |t, r| {
                if hi >> (2 * r) & 3 == 3 {
                    t
                } else {
                    t | 1 << r
                }
            });
        }
        Op::Trans1 => {
            // fptan, fsincos and fxtract push a second result.
            let pushes = d.sub >= 3;
            let Some(a) = f.st(0).filter(|_| !pushes || f.empty(7)) else {
                // Stack fault: an empty ST(0) is an underflow (C1 = 0) even when ST(7) is
                // full too; else the push overflows (C1 = 1). Nothing is computed: both
                // results are the indefinite, and C2 ("operand out of range" for the
                // trigonometric ones) is clear.
                if f.empty(0) {
                    f.underflow();
                } else {
                    f.raise(sw::IE | sw::SF);
                    f.sw |= sw::C1;
                }
                if (1..=4).contains(&d.sub) {
                    f.sw &= !sw::C2;
                }
                f.set(0, INDEFINITE);
                if pushes {
                    f.top = (f.top + 7) & 7;
                    f.set(0, INDEFINITE);
                }
                return out;
            };
            let (r, r2, st) = match d.sub {
                0 => run1!("f2xm1", cw, f.sw, a),
                1 => run1!("fsin", cw, f.sw, a),
                2 => run1!("fcos", cw, f.sw, a),
                3 => run1!("fptan", cw, f.sw, a),
                4 => run1!("fsincos", cw, f.sw, a),
                _ => run1!("fxtract", cw, f.sw, a),
            };
            f.merge(st, sw::CC);
            if d.sub < 3 {
                f.set(0, r);
            } else if d.sub == 5 || st & sw::C2 == 0 {
                // C2 set: the operand was out of range and ST(0) stays as it was.
                f.set(0, r2);
                f.push(r);
            }
        }
        Op::Trans2 => {
            if f.empty(0) || f.empty(1) {
                f.underflow();
                f.set(1, INDEFINITE);
            } else {
                let (a, b) = (f.regs[f.phys(0)], f.regs[f.phys(1)]);
                let (r, st) = match d.sub {
                    0 => run2!("fyl2x", cw, f.sw, a, b),
                    1 => run2!("fyl2xp1", cw, f.sw, a, b),
                    _ => run2!("fpatan", cw, f.sw, a, b),
                };
                f.merge(st, sw::CC);
                f.set(1, r);
            }
            f.pop();
        }
        Op::Stp => {
            f.sw &= !sw::C1;
            f.top = if d.sub == 0 { f.top + 1 } else { f.top + 7 } & 7;
        }
        Op::Free => {
            // The SDM leaves all four condition codes undefined; processors clear C1.
            f.sw &= !sw::C1;
            let p = f.phys(d.i);
            f.tags &= !(1 << p);
        }
    }
    out
}

/// The full tag word: two bits per physical register, 00 valid, 01 zero, 10 special (NaN,
/// infinity, denormal, unsupported), 11 empty.
pub fn full_tags(f: &Fpu) -> u16 {
    (0..8).fold(0, |t, r| {
        let tag = if f.tags & 1 << r == 0 {
            3
        } else {
            let (mant, se) = f80_parts(&f.regs[r]);
            let exp = se & 0x7fff;
            match (exp, mant) {
                (0, 0) => 1,
                (0x7fff, _) | (0, _) => 2,
                (_, m) if m >> 63 == 0 => 2,
                _ => 0,
            }
        };
        t | tag << (2 * r)
    })
}

/// Quadword `k` (0..4) of the 28-byte protected-mode environment `fnstenv` stores: FCW,
/// FSW, full FTW (each in a dword whose upper half reads as ones), then the instruction and
/// data pointers (zero: not tracked) with FDS's dword again upper ones; quadword 3 is only
/// 4 bytes.
fn env_quad(f: &Fpu, k: u8) -> u64 {
    let dword = |v: u16| 0xffff_0000 | v as u64;
    match k {
        0 => dword(f.cw) | dword(f.status()) << 32,
        1 => dword(full_tags(f)),
        2 => 0,
        _ => dword(0),
    }
}

/// Whether `sub` of an [`Op::Arith`] names the destination ST(i) rather than ST(0).
pub const ARITH_DST_I: u8 = 0x80;

#[cfg(test)]
mod tests {
    use super::*;

    fn fpu() -> Fpu {
        let mut f = Fpu {
            regs: [ZERO; 8],
            top: 0,
            tags: 0,
            cw: 0,
            sw: 0,
        };
        f.init();
        f
    }

    fn f80(x: f64) -> F80 {
        let mut f = fpu();
        source(&mut f, &desc_mem(Op::Load, Fmt::F64), x.to_bits(), 0)
    }

    fn desc_mem(op: Op, fmt: Fmt) -> Desc {
        Desc {
            fmt,
            ..Desc::new(op)
        }
    }

    fn to_f64(f: &Fpu, v: F80) -> f64 {
        f64::from_bits(convert(f, v, Fmt::F64, false).0)
    }

    #[test]
    fn the_fxsave_image_round_trips_the_stack_and_its_top() {
        let mut cpu = X86Cpu::new(0);
        let mut f = Fpu::of(&cpu);
        exec(&mut f, &Desc::new(Op::Const), 0, 0);
        exec(
            &mut f,
            &Desc {
                sub: 3,
                ..Desc::new(Op::Const)
            },
            0,
            0,
        );
        f.save(&mut cpu);
        let mut image = [0xaau8; 512];
        write_fxsave(&cpu, &mut image);
        assert_eq!(&image[0..6], &[0x7f, 0x03, 0x00, 0x30, 0xc0, 0x00]);
        assert_eq!(image[24], 0xaa, "MXCSR is not the x87's");
        assert_eq!(
            &image[32 + 8..32 + 16],
            &[0x00, 0x40, 0, 0, 0, 0, 0, 0],
            "ST0 = pi"
        );
        let mut other = X86Cpu::new(0);
        read_fxsave(&mut other, &image);
        assert_eq!(Fpu::of(&other), Fpu::of(&cpu));
        reset(&mut other);
        assert_eq!(
            (other.fpu_tags, other.fpu_top, other.fpu_cw),
            (0, 0, DEFAULT_CW)
        );
    }

    #[test]
    fn descriptors_round_trip() {
        let d = Desc {
            op: Op::Arith,
            sub: 0x83,
            i: 5,
            fmt: Fmt::I64,
            pops: 2,
            rev: true,
            phase: Phase::Commit,
        };
        assert_eq!(Desc::unpack(d.pack()), Some(d));
        assert_eq!(Desc::unpack(0xff), None);
    }

    #[test]
    fn one_plus_two_pushes_and_pops_through_the_stack() {
        let mut f = fpu();
        exec(&mut f, &desc_mem(Op::Load, Fmt::I32), 1, 0);
        exec(&mut f, &desc_mem(Op::Load, Fmt::F64), 2f64.to_bits(), 0);
        assert_eq!((f.top, f.tags), (6, 0xc0));
        let add = Desc {
            sub: Arith::Add as u8 | ARITH_DST_I,
            i: 1,
            pops: 1,
            ..Desc::new(Op::Arith)
        };
        exec(&mut f, &add, 0, 0);
        assert_eq!((f.top, f.tags), (7, 0x80));
        assert_eq!(to_f64(&f, f.st(0).unwrap()), 3.0);
        assert_eq!(f.status() & sw::TOP, 7 << 11);
    }

    #[test]
    fn division_by_zero_flags_ze_and_gives_infinity() {
        let mut f = fpu();
        exec(&mut f, &desc_mem(Op::Load, Fmt::F64), 1f64.to_bits(), 0);
        let div = Desc {
            sub: Arith::Div as u8,
            ..desc_mem(Op::Arith, Fmt::F64)
        };
        exec(&mut f, &div, 0, 0);
        assert_eq!(to_f64(&f, f.st(0).unwrap()), f64::INFINITY);
        assert_eq!(f.sw & sw::FLAGS, 1 << 2);
    }

    #[test]
    fn a_ninth_push_overflows_into_the_indefinite() {
        let mut f = fpu();
        for _ in 0..8 {
            exec(&mut f, &Desc::new(Op::Const), 0, 0);
        }
        assert_eq!(f.sw & (sw::IE | sw::SF), 0);
        exec(&mut f, &Desc::new(Op::Const), 0, 0);
        assert_eq!(f.st(0), Some(INDEFINITE));
        assert_eq!(f.sw & (sw::IE | sw::SF | sw::C1), sw::IE | sw::SF | sw::C1);
    }

    #[test]
    fn storing_from_an_empty_stack_underflows() {
        let mut f = fpu();
        let st = Desc {
            phase: Phase::DryLo,
            ..desc_mem(Op::Store, Fmt::I32)
        };
        // The helper throws away the state of dry runs: give it a copy.
        let mut copy = f;
        assert_eq!(
            exec(&mut copy, &st, 0, 0),
            0x8000_0000,
            "integer indefinite"
        );
        let st = Desc {
            phase: Phase::Commit,
            ..st
        };
        exec(&mut f, &st, 0, 0);
        assert_eq!(f.sw & (sw::IE | sw::SF | sw::C1), sw::IE | sw::SF);
    }

    #[test]
    fn rounding_control_applies_to_fist() {
        let mut f = fpu();
        let v = f80(2.5);
        assert_eq!(convert(&f, v, Fmt::I32, false).0, 2, "to nearest even");
        f.cw |= 0x0800; // round up
        assert_eq!(convert(&f, v, Fmt::I32, false).0, 3);
        assert_eq!(convert(&f, v, Fmt::I32, true).0, 2, "fisttp truncates");
    }

    #[test]
    fn fcomi_maps_the_condition_codes_to_zf_pf_cf() {
        let mut f = fpu();
        let load = |f: &mut Fpu, x: f64| exec(f, &desc_mem(Op::Load, Fmt::F64), x.to_bits(), 0);
        let comi = |sub| Desc {
            sub,
            i: 1,
            ..Desc::new(Op::Com)
        };
        load(&mut f, 2.0);
        load(&mut f, 1.0);
        let fl = exec(&mut f, &comi(2), 0, 0);
        assert_eq!(fl, super::super::flags::CF, "1 < 2");
        load(&mut f, f64::NAN);
        let fl = exec(&mut f, &comi(3), 0, 0);
        assert_eq!(
            fl,
            super::super::flags::CF | super::super::flags::PF | super::super::flags::ZF
        );
        assert_eq!(f.sw & sw::IE, 0, "fucomi of a QNaN is quiet");
        exec(&mut f, &comi(2), 0, 0);
        assert_eq!(f.sw & sw::IE, sw::IE, "fcomi of a QNaN is not");
    }

    #[test]
    fn fxam_classifies_empty_zero_and_negative_normals() {
        let mut f = fpu();
        exec(&mut f, &Desc::new(Op::Xam), 0, 0);
        assert_eq!(f.sw & sw::CC & !sw::C1, sw::C3 | sw::C0, "empty");
        exec(
            &mut f,
            &desc_mem(Op::Load, Fmt::F64),
            (-1.5f64).to_bits(),
            0,
        );
        exec(&mut f, &Desc::new(Op::Xam), 0, 0);
        assert_eq!(f.sw & sw::CC, sw::C2 | sw::C1, "negative normal");
    }
}
