//! Translation of x86_64 code into IR blocks (64-bit mode, general-purpose integer subset).
//!
//! Instructions are decoded with iced-x86. A block runs until a control transfer, an exit
//! (`hlt`, `syscall`, `int3`, anything not implemented), `max_insns`, or the end of the guest
//! page it started on. The 16 registers are globals; 32-bit writes zero-extend, 8/16-bit
//! writes merge with `deposit` (AH..BH are bits 8..16 of rax..rbx). Flags are lazy (see
//! [`super::flags`]): each flag-setting instruction writes the `cc_*` globals, and the
//! translator tracks the `cc_op` statically within the block so consumers can compare directly.
//!
//! Precise exceptions: every instruction performs its loads, stores and raising helpers
//! before it writes any global, so a fault leaves the state of the instruction's start; the
//! `cc_op` global is always written as soon as it changes, so restoring `rip` is all a fault
//! needs (`insn_start`'s extra word records the static `cc_op`, or `u64::MAX`, for logs).
//!
//! Not implemented yet (exit [`EXIT_UD`], with a warning at translation time): rcl/rcr,
//! 32-bit address-size string and loop instructions, 16-bit `pushf`/`popf`, `enter`,
//! MMX, SSE3 and later, `xgetbv`, `rdtscp`, `cmpxchg8b/16b`. `lock` prefixes are ignored
//! (one vCPU). SSE/SSE2 are in `translate::sse` (x86_64 hosts only: they run the host instruction);
//! `cpuid`/`rdtsc` in [`super::system`].

use accel_tcg::{CodeReader, MemFault};
use iced_x86::{ConditionCode, Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic};
use iced_x86::{OpKind, Register};
use ir::abi::{PAGE_MASK, PAGE_SIZE};
use ir::{BinOp, Builder, Cond, ExtFrom, Helper, HelperFlags, MemOp, Size, Temp, Type, UnOp};

use super::cpu::{self, X86Cpu, RAX, RCX, RDX, RSP};
use super::flags::{self, ext, CcKind, CcOp, CcState};

/// RFLAGS bits besides the arithmetic ones and DF that `popfq` changes at CPL 3: TF (8),
/// NT (14), AC (18), ID (21).
pub const POPF_USER_MASK: u64 = 1 << 8 | 1 << 14 | 1 << 18 | 1 << 21;

/// `ExitTb` reason: `hlt`; rip is the next instruction.
pub const EXIT_HLT: u32 = 1;
/// `ExitTb` reason: `syscall`; rip is the next instruction (what the CPU saves in rcx).
pub const EXIT_SYSCALL: u32 = 2;
/// `ExitTb` reason: `int3` (#BP, a trap); rip is the next instruction, `cause` 3.
pub const EXIT_INT3: u32 = 3;
/// `ExitTb` reason: invalid or not implemented instruction (#UD); rip is its address,
/// `cause` 6.
pub const EXIT_UD: u32 = 4;

/// Exception vectors recorded in `cause`.
pub mod vector {
    /// Divide error (`div`/`idiv` by zero or quotient overflow); a fault.
    pub const DE: u64 = 0;
    /// Breakpoint (`int3`); a trap.
    pub const BP: u64 = 3;
    /// Invalid opcode.
    pub const UD: u64 = 6;
    /// General protection (misaligned 16-byte SSE operand, reserved MXCSR bits); error code 0.
    pub const GP: u64 = 13;
}

/// Iterations of a `rep` string instruction run before the block gives the loop a chance to
/// look at `exit_request` (see [`Translator::string`]).
const REP_ITERATIONS_PER_BLOCK: u64 = 4096;

/// The longest x86 instruction.
const MAX_INSN_LEN: usize = 15;

/// Puts `cpu` back at the instruction whose `insn_start` had `pc`. The lazy-flags globals
/// need nothing: the translator keeps `cc_op` in the state up to date at every point that
/// may raise.
pub fn restore_state(cpu: &mut X86Cpu, pc: u64, _extra: u64) {
    cpu.rip = pc;
}

/// Whether translation of the block goes on after an instruction.
#[derive(PartialEq, Eq)]
enum Flow {
    Next,
    End,
}

/// Where an operand lives.
#[derive(Debug, Clone, Copy)]
enum Loc {
    /// General register `idx`, `1 << size` bytes; `high`: AH/CH/DH/BH.
    Reg { idx: usize, size: u8, high: bool },
    /// Guest memory at `addr`, `1 << size` bytes.
    Mem { addr: Temp, size: u8 },
    /// An immediate, already extended as the instruction says.
    Imm { value: u64, size: u8 },
}

impl Loc {
    fn size(self) -> u8 {
        match self {
            Loc::Reg { size, .. } | Loc::Mem { size, .. } | Loc::Imm { size, .. } => size,
        }
    }
}

/// log2 of a byte count (1, 2, 4, 8); larger sizes are refused by the caller.
fn log2(bytes: usize) -> Option<u8> {
    match bytes {
        1 => Some(0),
        2 => Some(1),
        4 => Some(2),
        8 => Some(3),
        _ => None,
    }
}

fn mem_size(size: u8) -> Size {
    match size {
        0 => Size::B8,
        1 => Size::B16,
        2 => Size::B32,
        _ => Size::B64,
    }
}

/// The general register `r` as `(index, size, high byte)`.
fn gpr(r: Register) -> Option<(usize, u8, bool)> {
    let n = r as usize;
    if r.is_gpr64() {
        Some((n - Register::RAX as usize, 3, false))
    } else if r.is_gpr32() {
        Some((n - Register::EAX as usize, 2, false))
    } else if r.is_gpr16() {
        Some((n - Register::AX as usize, 1, false))
    } else if r.is_gpr8() {
        // AL CL DL BL AH CH DH BH SPL BPL SIL DIL R8L..R15L
        let i = n - Register::AL as usize;
        Some(match i {
            0..=3 => (i, 0, false),
            4..=7 => (i - 4, 0, true),
            _ => (i - 4, 0, false),
        })
    } else {
        None
    }
}

struct Translator<'a> {
    b: &'a mut Builder,
    /// Address of the instruction being translated.
    pc: u64,
    /// Address of the next one.
    next: u64,
    mmu_idx: u8,
    cc: CcState,
}

/// Translates the block at `pc` into `b`: at most `max_insns` instructions, fetched through
/// `code`; loads and stores use MMU mode `mmu_idx`.
pub fn translate(
    pc: u64,
    code: &mut dyn CodeReader,
    b: &mut Builder,
    max_insns: u32,
    mmu_idx: u8,
) -> Result<(), MemFault> {
    let page = pc & PAGE_MASK;
    let mut t = Translator {
        b,
        pc,
        next: pc,
        mmu_idx,
        cc: CcState::UNKNOWN,
    };
    for n in 0..max_insns.max(1) {
        if n > 0 && t.pc & PAGE_MASK != page {
            break;
        }
        let instr = match fetch(code, t.pc) {
            Ok(i) => i,
            Err(fault) if n == 0 => return Err(fault),
            // Leave the unreadable instruction to the next block, which takes the fault.
            Err(_) => break,
        };
        t.b.insn_start(t.pc, t.cc.extra());
        t.next = t.pc.wrapping_add(instr.map_or(1, |i| i.len()) as u64);
        let flow = match instr {
            None => t.ud(None),
            Some(i) => match t.insn(&i) {
                Some(flow) => {
                    // Only where the block goes on: after an exit, no code may follow.
                    if flow == Flow::Next && super::fault_injection::applies_to(i.mnemonic()) {
                        t.inject_fault();
                    }
                    flow
                }
                None => t.ud(Some(&i)),
            },
        };
        if flow == Flow::End {
            return Ok(());
        }
        t.pc = t.next;
    }
    let rip = t.b.global(cpu::RIP_GLOBAL);
    t.b.movi(rip, t.pc);
    t.b.goto_tb(0);
    Ok(())
}

/// Reads and decodes the instruction at `pc`: `Ok(None)` for an invalid encoding. Reads up
/// to 15 bytes; when the following page is not readable, decodes from what the current page
/// holds and fails only if the instruction really extends past it.
pub(crate) fn fetch(code: &mut dyn CodeReader, pc: u64) -> Result<Option<Instruction>, MemFault> {
    let mut buf = [0u8; MAX_INSN_LEN];
    let in_page = ((PAGE_SIZE - (pc & !PAGE_MASK)) as usize).min(MAX_INSN_LEN);
    code.read(pc, &mut buf[..in_page])?;
    let mut len = in_page;
    let mut next_fault = None;
    if in_page < MAX_INSN_LEN {
        match code.read(pc.wrapping_add(in_page as u64), &mut buf[in_page..]) {
            Ok(()) => len = MAX_INSN_LEN,
            Err(f) => next_fault = Some(f),
        }
    }
    let mut decoder = Decoder::with_ip(64, &buf[..len], pc, DecoderOptions::NONE);
    let instr = decoder.decode();
    if instr.is_invalid() {
        if let (DecoderError::NoMoreBytes, Some(f)) = (decoder.last_error(), next_fault) {
            return Err(f);
        }
        return Ok(None);
    }
    Ok(Some(instr))
}

/// The condition-code number (0..=15, O NO B AE E NE BE A S NS P NP L GE LE G) of `i`.
fn cc_of(i: &Instruction) -> Option<u8> {
    match i.condition_code() {
        ConditionCode::None => None,
        c => Some(c as u8 - 1),
    }
}

const I64: Type = Type::I64;

#[cfg(target_arch = "x86_64")]
mod sse;
#[cfg(target_arch = "x86_64")]
mod x87;

impl Translator<'_> {
    fn tmp(&mut self) -> Temp {
        self.b.scratch(I64)
    }

    fn reg(&mut self, idx: usize) -> Temp {
        self.b.global(cpu::reg_global(idx))
    }

    fn konst(&mut self, v: u64) -> Temp {
        self.b.constant(I64, v)
    }

    fn set_rip(&mut self, v: u64) {
        let g = self.b.global(cpu::RIP_GLOBAL);
        self.b.movi(g, v);
    }

    fn exit(&mut self, reason: u32, rip: u64, cause: u64) -> Flow {
        self.set_rip(rip);
        let c = self.konst(cause);
        self.b
            .env_store(c, cpu::CAUSE_OFFSET, MemOp::unsigned(Size::B64));
        self.b.exit_tb(reason);
        Flow::End
    }

    /// The deliberate mistranslation of [`super::fault_injection`]: `rax ^= 1`.
    fn inject_fault(&mut self) {
        let rax = self.reg(RAX);
        self.b.binary_imm(BinOp::Xor, rax, rax, 1);
    }

    fn ud(&mut self, i: Option<&Instruction>) -> Flow {
        match i {
            Some(i) => log::warn!(
                "x86_64: {:?} at {:#x} is not implemented; the guest gets #UD",
                i.mnemonic(),
                self.pc
            ),
            None => log::warn!("x86_64: invalid instruction at {:#x}", self.pc),
        }
        self.exit(EXIT_UD, self.pc, vector::UD)
    }

    /// The effective address of `i`'s memory operand (segment base included unless `lea`).
    fn address(&mut self, i: &Instruction, with_segment: bool) -> Temp {
        let a = self.tmp();
        if i.is_ip_rel_memory_operand() {
            self.b.movi(a, i.ip_rel_memory_address());
        } else {
            let (base, index) = (i.memory_base(), i.memory_index());
            self.b.movi(a, i.memory_displacement64());
            if let Some((r, _, _)) = gpr(base) {
                let g = self.reg(r);
                self.b.add(a, a, g);
            }
            if let Some((r, _, _)) = gpr(index) {
                let g = self.reg(r);
                let scale = i.memory_index_scale().trailing_zeros() as u64;
                let s = self.tmp();
                self.b.binary_imm(BinOp::Shl, s, g, scale);
                self.b.add(a, a, s);
            }
            // A 0x67 prefix: 32-bit address arithmetic.
            if base.is_gpr32() || index.is_gpr32() {
                self.b.ext(ExtFrom::U32, a, a);
            }
        }
        if with_segment {
            let seg = match i.memory_segment() {
                Register::FS => Some(cpu::FS_BASE_GLOBAL),
                Register::GS => Some(cpu::GS_BASE_GLOBAL),
                _ => None,
            };
            if let Some(g) = seg {
                let g = self.b.global(g);
                self.b.add(a, a, g);
            }
        }
        a
    }

    /// Operand `n` of `i`; `None` for kinds this slice does not handle.
    fn operand(&mut self, i: &Instruction, n: u32) -> Option<Loc> {
        Some(match i.op_kind(n) {
            OpKind::Register => {
                let (idx, size, high) = gpr(i.op_register(n))?;
                Loc::Reg { idx, size, high }
            }
            OpKind::Memory => {
                let size = log2(i.memory_size().size())?;
                let addr = self.address(i, true);
                Loc::Mem { addr, size }
            }
            OpKind::Immediate8 => Loc::Imm {
                value: i.immediate(n),
                size: 0,
            },
            OpKind::Immediate16 | OpKind::Immediate8to16 => Loc::Imm {
                value: i.immediate(n),
                size: 1,
            },
            OpKind::Immediate32 | OpKind::Immediate8to32 => Loc::Imm {
                value: i.immediate(n),
                size: 2,
            },
            OpKind::Immediate64 | OpKind::Immediate8to64 | OpKind::Immediate32to64 => Loc::Imm {
                value: i.immediate(n),
                size: 3,
            },
            _ => return None,
        })
    }

    /// The value of `loc`, zero-extended from its size. May be a global itself (64-bit
    /// registers): read it before any write to that register.
    fn read(&mut self, loc: Loc) -> Temp {
        match loc {
            Loc::Reg { idx, size, high } => {
                let g = self.reg(idx);
                if high {
                    let t = self.tmp();
                    self.b.extract(t, g, 8, 8, false);
                    t
                } else {
                    ext(self.b, g, size, false)
                }
            }
            Loc::Mem { addr, size } => {
                let t = self.tmp();
                self.b
                    .load(t, addr, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                t
            }
            Loc::Imm { value, .. } => self.konst(value),
        }
    }

    /// Writes `v` to register operand `loc` with the partial-register rules.
    fn write_reg(&mut self, loc: Loc, v: Temp) {
        if let Loc::Reg { idx, size, high } = loc {
            let g = self.reg(idx);
            match (size, high) {
                (3, _) => self.b.mov(g, v),
                (2, _) => self.b.ext(ExtFrom::U32, g, v),
                (1, _) => self.b.deposit(g, g, v, 0, 16),
                (_, false) => self.b.deposit(g, g, v, 0, 8),
                (_, true) => self.b.deposit(g, g, v, 8, 8),
            }
        }
    }

    /// Stores `v` if `loc` is memory (the instruction's last step that may fault).
    fn store(&mut self, loc: Loc, v: Temp) {
        if let Loc::Mem { addr, size } = loc {
            self.b
                .store(v, addr, MemOp::unsigned(mem_size(size)), self.mmu_idx);
        }
    }

    /// Writes `v` to `loc` (memory or register).
    fn write(&mut self, loc: Loc, v: Temp) {
        self.store(loc, v);
        self.write_reg(loc, v);
    }

    /// Records the lazy flags of `op`.
    fn set_flags(&mut self, op: CcOp, dst: Temp, src: Option<Temp>, src2: Option<Temp>) {
        self.cc.set(self.b, op);
        let g = self.b.global(cpu::CC_DST_GLOBAL);
        self.b.mov(g, dst);
        if let Some(s) = src {
            let g = self.b.global(cpu::CC_SRC_GLOBAL);
            self.b.mov(g, s);
        }
        if let Some(s) = src2 {
            let g = self.b.global(cpu::CC_SRC2_GLOBAL);
            self.b.mov(g, s);
        }
    }

    /// Ends an instruction with result `r` in `loc` and lazy flags: the store first (it may
    /// fault), then the flags, then the register (a source may be the destination register).
    fn commit(
        &mut self,
        loc: Option<Loc>,
        r: Temp,
        flags: Option<(CcOp, Option<Temp>, Option<Temp>)>,
    ) {
        if let Some(l) = loc {
            self.store(l, r);
        }
        if let Some((op, src, src2)) = flags {
            self.set_flags(op, r, src, src2);
        }
        if let Some(l) = loc {
            self.write_reg(l, r);
        }
    }

    /// Makes `f` (the six arithmetic flags) the materialised lazy flags.
    fn set_eflags(&mut self, f: Temp) {
        self.set_flags(CcOp::EFLAGS, f, Some(f), None);
    }

    /// The whole RFLAGS image (`pushfq`): `eflags` with the lazy flags and DF merged in.
    fn rflags(&mut self) -> Temp {
        let f = self.cc.value(self.b);
        let (v, d) = (self.tmp(), self.tmp());
        let e = self.b.global(cpu::EFLAGS_GLOBAL);
        self.b
            .binary_imm(BinOp::And, v, e, !(flags::ARITH | flags::DF));
        self.b.or(v, v, f);
        let df = self.b.global(cpu::DF_GLOBAL);
        self.b.binary_imm(BinOp::Shr, d, df, 63);
        self.b.binary_imm(BinOp::Shl, d, d, 10);
        self.b.or(v, v, d);
        self.b.binary_imm(BinOp::Or, v, v, 2);
        v
    }

    /// Loads RFLAGS from `v` (`popfq` at CPL 3): the arithmetic flags, DF, and the bits user
    /// code may change ([`POPF_USER_MASK`]); IF and IOPL stay.
    fn set_rflags(&mut self, v: Temp) {
        let f = self.tmp();
        self.b.binary_imm(BinOp::And, f, v, flags::ARITH);
        self.set_eflags(f);
        let df = self.b.global(cpu::DF_GLOBAL);
        let (bit, down, up) = (self.konst(flags::DF), self.konst(u64::MAX), self.konst(1));
        self.b.movcond(Cond::TstNe, df, v, bit, down, up);
        let e = self.b.global(cpu::EFLAGS_GLOBAL);
        let t = self.tmp();
        self.b.binary_imm(BinOp::And, t, v, POPF_USER_MASK);
        self.b.binary_imm(BinOp::And, e, e, !POPF_USER_MASK);
        self.b.or(e, e, t);
    }

    /// CF as 0/1 in a new temp.
    fn carry(&mut self) -> Temp {
        let (c, a, b) = self.cc.condition(self.b, 2);
        let t = self.tmp();
        self.b.setcond(c, t, a, b);
        t
    }

    fn insn(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        // First: SSE's movsd/cmpsd share their mnemonics with the string instructions.
        #[cfg(target_arch = "x86_64")]
        if sse::is_sse(i) {
            return self.sse(i);
        }
        #[cfg(target_arch = "x86_64")]
        if x87::is_x87(i) {
            return self.x87(i);
        }
        if matches!(
            i.mnemonic(),
            Movsb
                | Movsw
                | Movsd
                | Movsq
                | Stosb
                | Stosw
                | Stosd
                | Stosq
                | Lodsb
                | Lodsw
                | Lodsd
                | Lodsq
                | Scasb
                | Scasw
                | Scasd
                | Scasq
                | Cmpsb
                | Cmpsw
                | Cmpsd
                | Cmpsq
        ) {
            self.string(i)?;
            return Some(Flow::Next);
        }
        if i.has_rep_prefix() || i.has_repne_prefix() {
            // Only string instructions use them meaningfully (and `rep ret`, `repz nop`).
            if !matches!(i.mnemonic(), Ret | Nop | Pause) {
                return None;
            }
        }
        match i.mnemonic() {
            Cpuid => self.b.call(&CPUID, &[Temp::ENV], None),
            Rdtsc => {
                let v = self.tmp();
                self.b.call(&RDTSC, &[], Some(v));
                let (lo, hi) = (self.tmp(), self.tmp());
                self.b.ext(ExtFrom::U32, lo, v);
                self.b.binary_imm(BinOp::Shr, hi, v, 32);
                let rax = self.reg(RAX);
                self.b.mov(rax, lo);
                let rdx = self.reg(RDX);
                self.b.mov(rdx, hi);
            }
            Nop | Pause | Endbr64 | Lfence | Mfence | Sfence | Prefetchnta | Prefetcht0
            | Prefetcht1 | Prefetcht2 | Prefetchw => {}
            Mov => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let v = self.read(src);
                self.write(dst, v);
            }
            Movzx | Movsx | Movsxd => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let v = self.read(src);
                let v = ext(self.b, v, src.size(), i.mnemonic() != Movzx);
                self.write_reg(dst, v);
            }
            Lea => {
                let dst = self.operand(i, 0)?;
                if i.op_kind(1) != OpKind::Memory {
                    return None;
                }
                let a = self.address(i, false);
                self.write_reg(dst, a);
            }
            Add | Or | Adc | Sbb | And | Sub | Xor | Cmp | Test => self.alu(i)?,
            Inc | Dec => {
                let dst = self.operand(i, 0)?;
                let size = dst.size();
                let cf = self.carry();
                let v = self.read(dst);
                let r = self.tmp();
                let (delta, kind) = if i.mnemonic() == Inc {
                    (1, CcKind::Inc)
                } else {
                    (u64::MAX, CcKind::Dec)
                };
                self.b.addi(r, v, delta);
                self.commit(Some(dst), r, Some((CcOp::new(kind, size), Some(cf), None)));
            }
            Neg => {
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let r = self.tmp();
                self.b.neg(r, v);
                let op = CcOp::new(CcKind::Sub, dst.size());
                self.commit(Some(dst), r, Some((op, Some(v), None)));
            }
            Not => {
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let r = self.tmp();
                self.b.not(r, v);
                self.write(dst, r);
            }
            Shl | Sal | Shr | Sar => self.shift(i)?,
            Xchg => {
                let a = self.operand(i, 0)?;
                let b = self.operand(i, 1)?;
                let va = self.read(a);
                let vb = self.read(b);
                // Copy both first: a 64-bit read is the register global itself.
                let (ta, tb) = (self.tmp(), self.tmp());
                self.b.mov(ta, va);
                self.b.mov(tb, vb);
                self.store(a, tb);
                self.store(b, ta);
                self.write_reg(a, tb);
                self.write_reg(b, ta);
            }
            Cbw | Cwde | Cdqe => {
                let size = match i.mnemonic() {
                    Cbw => 1,
                    Cwde => 2,
                    _ => 3,
                };
                let rax = self.reg(RAX);
                let v = ext(self.b, rax, size - 1, true);
                self.write_reg(
                    Loc::Reg {
                        idx: RAX,
                        size,
                        high: false,
                    },
                    v,
                );
            }
            Cwd | Cdq | Cqo => {
                let size = match i.mnemonic() {
                    Cwd => 1,
                    Cdq => 2,
                    _ => 3,
                };
                let rax = self.reg(RAX);
                let v = ext(self.b, rax, size, true);
                let s = self.tmp();
                self.b.binary_imm(BinOp::Sar, s, v, 63);
                self.write_reg(
                    Loc::Reg {
                        idx: RDX,
                        size,
                        high: false,
                    },
                    s,
                );
            }
            Imul if i.op_count() > 1 => self.imul(i)?,
            Mul | Imul => self.mul(i)?,
            Div | Idiv => self.div(i)?,
            Push => {
                let src = self.operand(i, 0)?;
                let size = match src {
                    Loc::Imm { .. } => log2(i.stack_pointer_increment().unsigned_abs() as usize)?,
                    l => l.size(),
                };
                let v = self.read(src);
                let rsp = self.reg(RSP);
                let sp = self.tmp();
                self.b.addi(sp, rsp, (-(1i64 << size)) as u64);
                self.b
                    .store(v, sp, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                self.b.mov(rsp, sp);
            }
            Pop => {
                let dst = self.operand(i, 0)?;
                let size = dst.size();
                let rsp = self.reg(RSP);
                let v = self.tmp();
                self.b
                    .load(v, rsp, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                self.store(dst, v);
                self.b.addi(rsp, rsp, 1 << size);
                self.write_reg(dst, v);
            }
            Leave => {
                let rbp = self.reg(5);
                let v = self.tmp();
                self.b
                    .load(v, rbp, MemOp::unsigned(Size::B64), self.mmu_idx);
                let rsp = self.reg(RSP);
                self.b.addi(rsp, rbp, 8);
                self.b.mov(rbp, v);
            }
            Jmp => {
                match i.op0_kind() {
                    OpKind::NearBranch64 => {
                        self.set_rip(i.near_branch_target());
                        self.b.goto_tb(0);
                    }
                    _ => {
                        let t = self.operand(i, 0)?;
                        if t.size() != 3 {
                            return None;
                        }
                        let v = self.read(t);
                        let rip = self.b.global(cpu::RIP_GLOBAL);
                        self.b.mov(rip, v);
                        self.b.lookup_and_goto();
                    }
                }
                return Some(Flow::End);
            }
            Call => {
                let target = match i.op0_kind() {
                    OpKind::NearBranch64 => None,
                    _ => {
                        let t = self.operand(i, 0)?;
                        if t.size() != 3 {
                            return None;
                        }
                        let v = self.read(t);
                        let c = self.tmp();
                        self.b.mov(c, v);
                        Some(c)
                    }
                };
                let rsp = self.reg(RSP);
                let sp = self.tmp();
                self.b.addi(sp, rsp, (-8i64) as u64);
                let ret = self.konst(self.next);
                self.b
                    .store(ret, sp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.mov(rsp, sp);
                match target {
                    None => {
                        self.set_rip(i.near_branch_target());
                        self.b.goto_tb(0);
                    }
                    Some(t) => {
                        let rip = self.b.global(cpu::RIP_GLOBAL);
                        self.b.mov(rip, t);
                        self.b.lookup_and_goto();
                    }
                }
                return Some(Flow::End);
            }
            Ret => {
                let extra = if i.op_count() == 1 {
                    i.immediate16() as u64
                } else {
                    0
                };
                let rsp = self.reg(RSP);
                let v = self.tmp();
                self.b
                    .load(v, rsp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.addi(rsp, rsp, 8 + extra);
                let rip = self.b.global(cpu::RIP_GLOBAL);
                self.b.mov(rip, v);
                self.b.lookup_and_goto();
                return Some(Flow::End);
            }
            _ if i.is_jcc_short_or_near() => {
                let cc = cc_of(i)?;
                let (c, a, b) = self.cc.condition(self.b, cc);
                let taken = self.b.new_label();
                self.b.brcond(c, a, b, taken);
                self.set_rip(self.next);
                self.b.goto_tb(1);
                self.b.set_label(taken);
                self.set_rip(i.near_branch_target());
                self.b.goto_tb(0);
                return Some(Flow::End);
            }
            Seto | Setno | Setb | Setae | Sete | Setne | Setbe | Seta | Sets | Setns | Setp
            | Setnp | Setl | Setge | Setle | Setg => {
                let cc = cc_of(i)?;
                let dst = self.operand(i, 0)?;
                let (c, a, b) = self.cc.condition(self.b, cc);
                let v = self.tmp();
                self.b.setcond(c, v, a, b);
                self.write(dst, v);
            }
            Cmovo | Cmovno | Cmovb | Cmovae | Cmove | Cmovne | Cmovbe | Cmova | Cmovs | Cmovns
            | Cmovp | Cmovnp | Cmovl | Cmovge | Cmovle | Cmovg => {
                let cc = cc_of(i)?;
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                // The source is read (and may fault) whatever the condition.
                let v = self.read(src);
                let old = self.read(dst);
                let (c, a, b) = self.cc.condition(self.b, cc);
                let r = self.tmp();
                self.b.movcond(c, r, a, b, v, old);
                // A 32-bit destination is zero-extended even when the condition is false.
                self.write_reg(dst, r);
            }
            Clc | Stc | Cmc => {
                let f = self.cc.value(self.b);
                let t = self.tmp();
                let op = match i.mnemonic() {
                    Clc => BinOp::AndNot,
                    Stc => BinOp::Or,
                    _ => BinOp::Xor,
                };
                self.b.binary_imm(op, t, f, flags::CF);
                self.set_eflags(t);
            }
            Cld | Std => {
                let df = self.b.global(cpu::DF_GLOBAL);
                self.b
                    .movi(df, if i.mnemonic() == Cld { 1 } else { u64::MAX });
            }
            Lahf => {
                let f = self.cc.value(self.b);
                let t = self.tmp();
                self.b.binary_imm(BinOp::Or, t, f, 2);
                let ah = Loc::Reg {
                    idx: RAX,
                    size: 0,
                    high: true,
                };
                self.write_reg(ah, t);
            }
            Sahf => {
                let f = self.cc.value(self.b);
                let (keep, ah) = (self.tmp(), self.tmp());
                self.b.binary_imm(BinOp::And, keep, f, flags::OF);
                let rax = self.reg(RAX);
                self.b.extract(ah, rax, 8, 8, false);
                self.b
                    .binary_imm(BinOp::And, ah, ah, flags::ARITH & !flags::OF);
                self.b.or(ah, ah, keep);
                self.set_eflags(ah);
            }
            Pushfq => {
                let v = self.rflags();
                let rsp = self.reg(RSP);
                let sp = self.tmp();
                self.b.addi(sp, rsp, (-8i64) as u64);
                self.b
                    .store(v, sp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.mov(rsp, sp);
            }
            Popfq => {
                let rsp = self.reg(RSP);
                let v = self.tmp();
                self.b
                    .load(v, rsp, MemOp::unsigned(Size::B64), self.mmu_idx);
                self.b.addi(rsp, rsp, 8);
                self.set_rflags(v);
            }
            Rol | Ror => self.rotate(i)?,
            Shld | Shrd => self.double_shift(i)?,
            Jrcxz | Jecxz | Loop | Loope | Loopne => {
                use iced_x86::Code;
                // loop with a 0x67 prefix counts in ecx: not supported.
                if matches!(
                    i.code(),
                    Code::Loop_rel8_64_ECX | Code::Loope_rel8_64_ECX | Code::Loopne_rel8_64_ECX
                ) {
                    return None;
                }
                let rcx = self.reg(RCX);
                let taken = self.b.new_label();
                match i.mnemonic() {
                    Jrcxz | Jecxz => {
                        let m = if i.mnemonic() == Jecxz {
                            u32::MAX as u64
                        } else {
                            u64::MAX
                        };
                        let mk = self.konst(m);
                        self.b.brcond(Cond::TstEq, rcx, mk, taken);
                    }
                    m => {
                        // loop: rcx -= 1 (no flags), taken while rcx != 0 (and ZF for
                        // loope/loopne, read before anything changes).
                        let zf = match m {
                            Loope | Loopne => {
                                let (c, a, b) = self.cc.condition(self.b, 4);
                                let z = self.b.local(I64);
                                self.b.setcond(c, z, a, b);
                                Some(z)
                            }
                            _ => None,
                        };
                        self.b.addi(rcx, rcx, u64::MAX);
                        let not_taken = self.b.new_label();
                        if let Some(z) = zf {
                            let want = if m == Loope { 0 } else { 1 };
                            self.b.brcondi(Cond::Eq, z, want, not_taken);
                        }
                        self.b.brcondi(Cond::Ne, rcx, 0, taken);
                        self.b.set_label(not_taken);
                    }
                }
                self.set_rip(self.next);
                self.b.goto_tb(1);
                self.b.set_label(taken);
                self.set_rip(i.near_branch_target());
                self.b.goto_tb(0);
                return Some(Flow::End);
            }
            Bt | Bts | Btr | Btc => self.bit_test(i)?,
            Bsf | Bsr | Tzcnt | Lzcnt | Popcnt => self.bit_scan(i)?,
            Bswap => {
                let dst = self.operand(i, 0)?;
                let v = self.read(dst);
                let t = self.tmp();
                self.b.unary(UnOp::Bswap, t, v);
                if dst.size() == 2 {
                    self.b.binary_imm(BinOp::Shr, t, t, 32);
                }
                self.write_reg(dst, t);
            }
            Xadd => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let a = self.read(dst);
                let b = self.read(src);
                let (old, r) = (self.tmp(), self.tmp());
                self.b.mov(old, a);
                self.b.add(r, a, b);
                self.store(dst, r);
                self.set_flags(CcOp::new(CcKind::Add, dst.size()), r, Some(b), None);
                // The source gets the old destination first: for xadd r, r the sum wins.
                self.write_reg(src, old);
                self.write_reg(dst, r);
            }
            Cmpxchg => {
                let dst = self.operand(i, 0)?;
                let src = self.operand(i, 1)?;
                let size = dst.size();
                let acc_loc = Loc::Reg {
                    idx: RAX,
                    size,
                    high: false,
                };
                let old = self.read(dst);
                let old_copy = self.tmp();
                self.b.mov(old_copy, old);
                let acc = self.read(acc_loc);
                let acc_copy = self.tmp();
                self.b.mov(acc_copy, acc);
                let new = self.read(src);
                let (a, o) = (
                    ext(self.b, acc_copy, size, false),
                    ext(self.b, old_copy, size, false),
                );
                // Equal: dst = src; else dst keeps its value (memory is written back anyway)
                // and the accumulator gets it.
                let (d, r) = (self.tmp(), self.tmp());
                self.b.movcond(Cond::Eq, d, a, o, new, old_copy);
                self.b.sub(r, acc_copy, old_copy);
                self.store(dst, d);
                self.set_flags(CcOp::new(CcKind::Sub, size), r, Some(old_copy), None);
                let acc_new = self.tmp();
                self.b.movcond(Cond::Eq, acc_new, a, o, acc_copy, old_copy);
                match dst {
                    Loc::Reg { .. } => {
                        // Only the register that changes is written (a 32-bit one zero-extends).
                        let l1 = self.b.new_label();
                        let l2 = self.b.new_label();
                        let (d_l, acc_l) = (self.b.local(I64), self.b.local(I64));
                        self.b.mov(d_l, d);
                        self.b.mov(acc_l, acc_new);
                        self.b.brcond(Cond::Ne, a, o, l1);
                        self.write_reg(dst, d_l);
                        self.b.br(l2);
                        self.b.set_label(l1);
                        self.write_reg(acc_loc, acc_l);
                        self.b.set_label(l2);
                    }
                    _ => {
                        let l2 = self.b.new_label();
                        let acc_l = self.b.local(I64);
                        self.b.mov(acc_l, acc_new);
                        self.b.brcond(Cond::Eq, a, o, l2);
                        self.write_reg(acc_loc, acc_l);
                        self.b.set_label(l2);
                    }
                }
            }
            Hlt => return Some(self.exit(EXIT_HLT, self.next, 0)),
            Syscall => return Some(self.exit(EXIT_SYSCALL, self.next, 0)),
            Int3 => return Some(self.exit(EXIT_INT3, self.next, vector::BP)),
            _ => return None,
        }
        Some(Flow::Next)
    }

    /// add or adc sbb and sub xor cmp test.
    fn alu(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        let dst = self.operand(i, 0)?;
        let src = self.operand(i, 1)?;
        let size = dst.size();
        let m = i.mnemonic();
        let cin = match m {
            Adc | Sbb => Some(self.carry()),
            _ => None,
        };
        let a = self.read(dst);
        let b = self.read(src);
        let r = self.tmp();
        let kind = match m {
            Add | Adc => {
                self.b.add(r, a, b);
                if let Some(c) = cin {
                    self.b.add(r, r, c);
                }
                if m == Add {
                    CcKind::Add
                } else {
                    CcKind::Adc
                }
            }
            Sub | Sbb | Cmp => {
                self.b.sub(r, a, b);
                if let Some(c) = cin {
                    self.b.sub(r, r, c);
                }
                if m == Sbb {
                    CcKind::Sbb
                } else {
                    CcKind::Sub
                }
            }
            And | Test => {
                self.b.and(r, a, b);
                CcKind::Logic
            }
            Or => {
                self.b.or(r, a, b);
                CcKind::Logic
            }
            _ => {
                self.b.xor(r, a, b);
                CcKind::Logic
            }
        };
        let op = CcOp::new(kind, size);
        let src = if kind == CcKind::Logic { None } else { Some(b) };
        let out = if matches!(m, Cmp | Test) {
            None
        } else {
            Some(dst)
        };
        self.commit(out, r, Some((op, src, cin)));
        Some(())
    }

    /// shl/sal, shr, sar by an immediate, 1 or cl.
    fn shift(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let size = dst.size();
        let count_mask = if size == 3 { 63 } else { 31 };
        let (op, kind) = match i.mnemonic() {
            Mnemonic::Shl | Mnemonic::Sal => (BinOp::Shl, CcKind::Shl),
            Mnemonic::Shr => (BinOp::Shr, CcKind::Sar),
            _ => (BinOp::Sar, CcKind::Sar),
        };
        let v = self.read(dst);
        let v = if op == BinOp::Sar {
            ext(self.b, v, size, true)
        } else {
            v
        };
        let cc = CcOp::new(kind, size);
        if i.op_count() < 2 || i.op1_kind() != OpKind::Register {
            let count = if i.op_count() < 2 {
                1
            } else {
                i.immediate(1) & count_mask
            };
            if count == 0 {
                // No flags change; a register is still written (zero-extension of 32 bits).
                self.write_reg(dst, v);
                return Some(());
            }
            let (r, s) = (self.tmp(), self.tmp());
            self.b.binary_imm(op, r, v, count);
            self.b.binary_imm(op, s, v, count - 1);
            self.commit(Some(dst), r, Some((cc, Some(s), None)));
            return Some(());
        }
        if i.op1_register() != Register::CL {
            return None;
        }
        let rcx = self.reg(RCX);
        let n = self.tmp();
        self.b.binary_imm(BinOp::And, n, rcx, count_mask);
        let (r, s, n1) = (self.tmp(), self.tmp(), self.tmp());
        self.b.binary(op, r, v, n);
        self.b.addi(n1, n, u64::MAX);
        self.b.binary(op, s, v, n1);
        self.store(dst, r);
        // A zero count keeps every flag: select the old lazy values then.
        let zero = self.konst(0);
        let enc = self.konst(cc.encode());
        for (g, new) in [
            (cpu::CC_OP_GLOBAL, enc),
            (cpu::CC_DST_GLOBAL, r),
            (cpu::CC_SRC_GLOBAL, s),
        ] {
            let g = self.b.global(g);
            self.b.movcond(Cond::Eq, g, n, zero, g, new);
        }
        self.cc.known = None;
        self.write_reg(dst, r);
        Some(())
    }

    /// `shld`/`shrd` by an immediate or cl. The lazy flags reuse `Shl`/`Sar`: `cc_src` is
    /// the double-width value shifted by count - 1, whose top (shld) or bottom (shrd) bit is
    /// the last bit shifted out. A 16-bit shift by more than 16 leaves an undefined result.
    fn double_shift(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let src = self.operand(i, 1)?;
        let size = dst.size();
        let bits = 8u64 << size;
        let count_mask = if size == 3 { 63 } else { 31 };
        let left = i.mnemonic() == Mnemonic::Shld;
        let n = match i.op2_kind() {
            OpKind::Register if i.op2_register() == Register::CL => {
                let rcx = self.reg(RCX);
                let n = self.tmp();
                self.b.binary_imm(BinOp::And, n, rcx, count_mask);
                n
            }
            OpKind::Register => return None,
            _ => self.konst(i.immediate(2) & count_mask),
        };
        let d = self.read(dst);
        let sv = self.read(src);
        // Shifts by `bits - n` stay in 1..bits for n in 1..bits; the count-1 value splits its
        // second shift in two so n = 1 never asks for a shift by `bits`.
        let (back, n1) = (self.tmp(), self.tmp());
        let w = self.konst(bits);
        self.b.sub(back, w, n);
        self.b.addi(n1, n, u64::MAX);
        let (main, other) = if left {
            (BinOp::Shl, BinOp::Shr)
        } else {
            (BinOp::Shr, BinOp::Shl)
        };
        let (r, t, s, t2) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.b.binary(main, r, d, n);
        self.b.binary(other, t, sv, back);
        self.b.or(r, r, t);
        self.b.binary(main, s, d, n1);
        self.b.binary_imm(other, t2, sv, 1);
        self.b.binary(other, t2, t2, back);
        self.b.or(s, s, t2);
        let zero = self.konst(0);
        // A zero count changes nothing, not even the destination.
        let r_sel = self.tmp();
        self.b.movcond(Cond::Eq, r_sel, n, zero, d, r);
        self.store(dst, r_sel);
        let kind = if left { CcKind::Shl } else { CcKind::Sar };
        let enc = self.konst(CcOp::new(kind, size).encode());
        for (g, new) in [
            (cpu::CC_OP_GLOBAL, enc),
            (cpu::CC_DST_GLOBAL, r),
            (cpu::CC_SRC_GLOBAL, s),
        ] {
            let g = self.b.global(g);
            self.b.movcond(Cond::Eq, g, n, zero, g, new);
        }
        self.cc.known = None;
        self.write_reg(dst, r_sel);
        Some(())
    }

    /// `rol`/`ror` by an immediate, 1 or cl: CF and OF change (when the masked count is not
    /// 0), the other flags stay. OF is computed for every count (the SDM defines it for 1).
    fn rotate(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let size = dst.size();
        let bits = 8u64 << size;
        let count_mask = if size == 3 { 63 } else { 31 };
        let left = i.mnemonic() == Mnemonic::Rol;
        let count = if i.op_count() < 2 {
            self.konst(1)
        } else if i.op1_kind() == OpKind::Register {
            if i.op1_register() != Register::CL {
                return None;
            }
            let rcx = self.reg(RCX);
            let c = self.tmp();
            self.b.binary_imm(BinOp::And, c, rcx, count_mask);
            c
        } else {
            self.konst(i.immediate(1) & count_mask)
        };
        let v = self.read(dst);
        let r = self.tmp();
        if size == 3 {
            let op = if left { BinOp::Rotl } else { BinOp::Rotr };
            self.b.binary(op, r, v, count);
        } else {
            // Rotate by count mod width with two shifts of the zero-extended value.
            let (n, back, hi) = (self.tmp(), self.tmp(), self.tmp());
            self.b.binary_imm(BinOp::And, n, count, bits - 1);
            let w = self.konst(bits);
            self.b.sub(back, w, n);
            let (first, second) = if left {
                (BinOp::Shl, BinOp::Shr)
            } else {
                (BinOp::Shr, BinOp::Shl)
            };
            self.b.binary(first, r, v, n);
            self.b.binary(second, hi, v, back);
            self.b.or(r, r, hi);
            self.b.binary_imm(BinOp::And, r, r, u64::MAX >> (64 - bits));
        }
        self.store(dst, r);
        // CF: the bit rotated in last; OF: MSB(r) ^ CF (rol), the two top bits' xor (ror).
        let f = self.cc.value(self.b);
        let (cf, of, t) = (self.tmp(), self.tmp(), self.tmp());
        if left {
            self.b.binary_imm(BinOp::And, cf, r, 1);
            self.b.binary_imm(BinOp::Shr, t, r, bits - 1);
            self.b.xor(of, t, cf);
        } else {
            self.b.binary_imm(BinOp::Shr, cf, r, bits - 1);
            self.b.binary_imm(BinOp::Shr, t, r, bits - 2);
            self.b.xor(of, t, cf);
        }
        self.b.binary_imm(BinOp::And, cf, cf, 1);
        self.b.binary_imm(BinOp::And, of, of, 1);
        self.b.binary_imm(BinOp::Shl, of, of, 11);
        let new = self.tmp();
        self.b
            .binary_imm(BinOp::AndNot, new, f, flags::CF | flags::OF);
        self.b.or(new, new, cf);
        self.b.or(new, new, of);
        let zero = self.konst(0);
        let sel = self.tmp();
        self.b.movcond(Cond::Eq, sel, count, zero, f, new);
        self.set_eflags(sel);
        self.write_reg(dst, r);
        Some(())
    }

    /// `bt`/`bts`/`btr`/`btc`: CF = the selected bit; the other flags stay (the SDM leaves
    /// OF SF AF PF undefined). A register offset into memory addresses a bit string: the
    /// signed offset selects the operand-sized word.
    fn bit_test(&mut self, i: &Instruction) -> Option<()> {
        let size = log2(match i.op0_kind() {
            OpKind::Memory => i.memory_size().size(),
            _ => i.op0_register().size(),
        })?;
        let bits = 8u64 << size;
        let off = self.operand(i, 1)?;
        let off_v = self.read(off);
        let dst = match (self.operand(i, 0)?, off) {
            (Loc::Mem { addr, size }, Loc::Reg { .. }) => {
                let (word, a) = (self.tmp(), self.tmp());
                let s = ext(self.b, off_v, size, true);
                self.b
                    .binary_imm(BinOp::Sar, word, s, (bits.trailing_zeros()) as u64);
                self.b.binary_imm(BinOp::Shl, word, word, size as u64);
                self.b.add(a, addr, word);
                Loc::Mem { addr: a, size }
            }
            (l, _) => l,
        };
        let n = self.tmp();
        self.b.binary_imm(BinOp::And, n, off_v, bits - 1);
        let v = self.read(dst);
        let (bit, mask) = (self.tmp(), self.tmp());
        self.b.shr(bit, v, n);
        self.b.binary_imm(BinOp::And, bit, bit, 1);
        let one = self.konst(1);
        self.b.shl(mask, one, n);
        let r = self.tmp();
        let op = match i.mnemonic() {
            Mnemonic::Bts => Some(BinOp::Or),
            Mnemonic::Btr => Some(BinOp::AndNot),
            Mnemonic::Btc => Some(BinOp::Xor),
            _ => None,
        };
        if let Some(op) = op {
            self.b.binary(op, r, v, mask);
            self.store(dst, r);
        }
        let f = self.cc.value(self.b);
        let new = self.tmp();
        self.b.binary_imm(BinOp::AndNot, new, f, flags::CF);
        self.b.or(new, new, bit);
        self.set_eflags(new);
        if op.is_some() {
            self.write_reg(dst, r);
        }
        Some(())
    }

    /// `bsf`/`bsr` (ZF = source is zero, destination kept then; the undefined flags follow
    /// the source as after a logic op), `tzcnt`/`lzcnt` (CF = source is zero, ZF = result is
    /// zero) and `popcnt` (ZF = source is zero, the others clear).
    fn bit_scan(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        let dst = self.operand(i, 0)?;
        let src = self.operand(i, 1)?;
        let size = dst.size();
        let bits = 8u64 << size;
        let v = self.read(src);
        let r = self.tmp();
        let m = i.mnemonic();
        match m {
            Bsf | Tzcnt => {
                // A bit above the operand makes a zero source count as the width.
                let t = self.tmp();
                self.b
                    .binary_imm(BinOp::Or, t, v, if bits == 64 { 0 } else { 1 << bits });
                self.b.unary(UnOp::Ctz, r, t);
            }
            Bsr => {
                self.b.unary(UnOp::Clz, r, v);
                self.b.binary_imm(BinOp::Xor, r, r, 63);
            }
            Lzcnt => {
                self.b.unary(UnOp::Clz, r, v);
                self.b.addi(r, r, bits.wrapping_sub(64));
            }
            _ => self.b.unary(UnOp::Ctpop, r, v),
        }
        let zero = self.konst(0);
        match m {
            Bsf | Bsr => {
                let old = self.read(dst);
                let sel = self.tmp();
                self.b.movcond(Cond::Eq, sel, v, zero, old, r);
                self.set_flags(CcOp::new(CcKind::Logic, size), v, None, None);
                self.write_reg(dst, sel);
            }
            _ => {
                let (f, t) = (self.tmp(), self.tmp());
                let (zf, cf) = (self.konst(flags::ZF), self.konst(flags::CF));
                if m == Popcnt {
                    self.b.movcond(Cond::Eq, f, v, zero, zf, zero);
                } else {
                    self.b.movcond(Cond::Eq, f, v, zero, cf, zero);
                    self.b.movcond(Cond::Eq, t, r, zero, zf, zero);
                    self.b.or(f, f, t);
                }
                self.set_eflags(f);
                self.write_reg(dst, r);
            }
        }
        Some(())
    }

    /// String instructions, with `rep`/`repe`/`repne` as a loop inside the block. Each
    /// iteration updates rsi/rdi/rcx after its accesses, so a fault restarts the instruction
    /// with the progress made, as the SDM specifies.
    fn string(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        let m = i.mnemonic();
        let size = log2(i.memory_size().size())?;
        // 32-bit address size (0x67) is not supported.
        for n in 0..i.op_count() {
            if matches!(i.op_kind(n), OpKind::MemorySegESI | OpKind::MemoryESEDI) {
                return None;
            }
        }
        let compares = matches!(
            m,
            Scasb | Scasw | Scasd | Scasq | Cmpsb | Cmpsw | Cmpsd | Cmpsq
        );
        let rep = i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix();
        let mop = MemOp::unsigned(mem_size(size));
        let step = self.b.local(I64);
        let df = self.b.global(cpu::DF_GLOBAL);
        self.b.binary_imm(BinOp::Shl, step, df, size as u64);
        let (rsi, rdi, rcx) = (self.reg(6), self.reg(7), self.reg(RCX));
        // The source segment may be overridden (fs/gs); es is flat.
        let src_base = match i.memory_segment() {
            Register::FS => Some(self.b.global(cpu::FS_BASE_GLOBAL)),
            Register::GS => Some(self.b.global(cpu::GS_BASE_GLOBAL)),
            _ => None,
        };
        if compares {
            // Flags are written in the loop: keep the cc_op global exact on every path.
            self.cc.known = None;
        }
        let labels = rep.then(|| (self.b.new_label(), self.b.new_label(), self.b.local(I64)));
        if let Some((top, done, budget)) = labels {
            self.b.movi(budget, REP_ITERATIONS_PER_BLOCK);
            self.b.set_label(top);
            self.b.brcondi(Cond::Eq, rcx, 0, done);
        }
        let src_addr = |t: &mut Self| match src_base {
            Some(base) => {
                let a = t.tmp();
                t.b.add(a, rsi, base);
                a
            }
            None => rsi,
        };
        let acc = Loc::Reg {
            idx: RAX,
            size,
            high: false,
        };
        match m {
            Movsb | Movsw | Movsd | Movsq => {
                let a = src_addr(self);
                let v = self.tmp();
                self.b.load(v, a, mop, self.mmu_idx);
                self.b.store(v, rdi, mop, self.mmu_idx);
                self.b.add(rsi, rsi, step);
                self.b.add(rdi, rdi, step);
            }
            Stosb | Stosw | Stosd | Stosq => {
                let v = self.read(acc);
                self.b.store(v, rdi, mop, self.mmu_idx);
                self.b.add(rdi, rdi, step);
            }
            Lodsb | Lodsw | Lodsd | Lodsq => {
                let a = src_addr(self);
                let v = self.tmp();
                self.b.load(v, a, mop, self.mmu_idx);
                self.b.add(rsi, rsi, step);
                self.write_reg(acc, v);
            }
            _ => {
                // scas: acc - [rdi]; cmps: [rsi] - [rdi].
                let a = if matches!(m, Scasb | Scasw | Scasd | Scasq) {
                    let v = self.read(acc);
                    let t = self.tmp();
                    self.b.mov(t, v);
                    t
                } else {
                    let a = src_addr(self);
                    let v = self.tmp();
                    self.b.load(v, a, mop, self.mmu_idx);
                    v
                };
                let b = self.tmp();
                self.b.load(b, rdi, mop, self.mmu_idx);
                let r = self.tmp();
                self.b.sub(r, a, b);
                let op = CcOp::new(CcKind::Sub, size);
                let g = self.b.global(cpu::CC_OP_GLOBAL);
                self.b.movi(g, op.encode());
                let (gd, gs) = (
                    self.b.global(cpu::CC_DST_GLOBAL),
                    self.b.global(cpu::CC_SRC_GLOBAL),
                );
                self.b.mov(gd, r);
                self.b.mov(gs, b);
                if !matches!(m, Scasb | Scasw | Scasd | Scasq) {
                    self.b.add(rsi, rsi, step);
                }
                self.b.add(rdi, rdi, step);
            }
        }
        if let Some((top, done, budget)) = labels {
            self.b.addi(rcx, rcx, u64::MAX);
            if compares {
                // repe stops when ZF = 0, repne when ZF = 1.
                let gd = self.b.global(cpu::CC_DST_GLOBAL);
                let mask = self.konst(u64::MAX >> (64 - (8u32 << size)));
                let cond = if i.has_repne_prefix() {
                    Cond::TstEq
                } else {
                    Cond::TstNe
                };
                self.b.brcond(cond, gd, mask, done);
            }
            // After a bounded number of iterations, go round through the block lookup (whose
            // entry checks exit_request), restarting the instruction where it stands, so a
            // huge count cannot hold off interrupts and stop requests.
            self.b.addi(budget, budget, u64::MAX);
            self.b.brcondi(Cond::Ne, budget, 0, top);
            self.set_rip(self.pc);
            self.b.lookup_and_goto();
            self.b.set_label(done);
            if compares {
                self.cc.known = None;
            }
        } else if compares {
            self.cc.known = Some(CcOp::new(CcKind::Sub, size));
        }
        Some(())
    }

    /// Two- and three-operand `imul`.
    fn imul(&mut self, i: &Instruction) -> Option<()> {
        let dst = self.operand(i, 0)?;
        let size = dst.size();
        let (a, b) = if i.op_count() == 3 {
            (self.operand(i, 1)?, self.operand(i, 2)?)
        } else {
            (dst, self.operand(i, 1)?)
        };
        let va = self.read(a);
        let vb = self.read(b);
        let r = self.tmp();
        let ovf = self.tmp();
        if size == 3 {
            let hi = self.tmp();
            self.b.mul(r, va, vb);
            self.b.binary(BinOp::MulHs, hi, va, vb);
            self.b.binary_imm(BinOp::Sar, ovf, r, 63);
            self.b.xor(ovf, ovf, hi);
        } else {
            let sa = ext(self.b, va, size, true);
            let sb = ext(self.b, vb, size, true);
            self.b.mul(r, sa, sb);
            let low = ext(self.b, r, size, true);
            self.b.sub(ovf, r, low);
        }
        self.commit(
            Some(dst),
            r,
            Some((CcOp::new(CcKind::Mul, size), Some(ovf), None)),
        );
        Some(())
    }

    /// One-operand `mul`/`imul`: rdx:rax (ax for bytes) = rax * r/m.
    fn mul(&mut self, i: &Instruction) -> Option<()> {
        let src = self.operand(i, 0)?;
        let size = src.size();
        let signed = i.mnemonic() == Mnemonic::Imul;
        let v = self.read(src);
        let rax = self.reg(RAX);
        let (lo, hi, ovf) = (self.tmp(), self.tmp(), self.tmp());
        if size == 3 {
            self.b.mul(lo, rax, v);
            if signed {
                self.b.binary(BinOp::MulHs, hi, rax, v);
                self.b.binary_imm(BinOp::Sar, ovf, lo, 63);
                self.b.xor(ovf, ovf, hi);
            } else {
                self.b.binary(BinOp::MulHu, hi, rax, v);
                self.b.mov(ovf, hi);
            }
        } else {
            let a = ext(self.b, rax, size, signed);
            let b = ext(self.b, v, size, signed);
            self.b.mul(lo, a, b);
            let bits = 8u64 << size;
            self.b.binary_imm(BinOp::Shr, hi, lo, bits);
            if signed {
                let low = ext(self.b, lo, size, true);
                self.b.sub(ovf, lo, low);
            } else {
                let m = self.konst((1 << bits) - 1);
                self.b.binary(BinOp::AndNot, ovf, lo, m);
            }
        }
        self.set_flags(CcOp::new(CcKind::Mul, size), lo, Some(ovf), None);
        let reg = |idx, size| Loc::Reg {
            idx,
            size,
            high: false,
        };
        if size == 0 {
            self.write_reg(reg(RAX, 1), lo);
        } else {
            self.write_reg(reg(RDX, size), hi);
            self.write_reg(reg(RAX, size), lo);
        }
        Some(())
    }

    /// `div`/`idiv`, through a helper that raises #DE.
    fn div(&mut self, i: &Instruction) -> Option<()> {
        let src = self.operand(i, 0)?;
        let v = self.read(src);
        let size = self.konst(src.size() as u64);
        let signed = self.konst((i.mnemonic() == Mnemonic::Idiv) as u64);
        self.b.call(&DIVIDE, &[Temp::ENV, v, size, signed], None);
        Some(())
    }
}

/// `div`/`idiv` of rdx:rax (ax for bytes) by `divisor` (zero-extended from `1 << size` bytes):
/// writes quotient and remainder, or records #DE (division by zero, quotient too large)
/// leaving the registers alone.
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
unsafe extern "C" fn helper_divide(
    env: u64,
    divisor: u64,
    size: u64,
    signed: u64,
    _: u64,
    _: u64,
) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    if divide(&mut cpu.regs, divisor, size as u8, signed != 0).is_none() {
        cpu.cause = vector::DE;
        cpu.error_code = 0;
        cpu.header.unwind = 1;
    }
    0
}

/// The arithmetic of [`helper_divide`] on the registers; `None` means #DE.
fn divide(regs: &mut [u64; 16], divisor: u64, size: u8, signed: bool) -> Option<()> {
    let bits = 8u32 << size;
    let m = u64::MAX >> (64 - bits);
    let (rax, rdx) = (regs[RAX], regs[RDX]);
    let sext = |v: u64| ((v << (64 - bits)) as i64 >> (64 - bits)) as i128;
    // The double-width dividend.
    let dividend: u128 = match size {
        0 => (rax & 0xffff) as u128,
        3 => (rdx as u128) << 64 | rax as u128,
        _ => ((rdx & m) as u128) << bits | (rax & m) as u128,
    };
    let d = divisor & m;
    let (q, r) = if signed {
        let n = if size == 3 {
            dividend as i128
        } else {
            // Sign-extend the 2*bits-wide dividend.
            let w = 2 * bits;
            ((dividend << (128 - w)) as i128) >> (128 - w)
        };
        let d = sext(d);
        let q = n.checked_div(d)?;
        let r = n.checked_rem(d)?;
        if q < -(1i128 << (bits - 1)) || q >= 1i128 << (bits - 1) {
            return None;
        }
        (q as u64 & m, r as u64 & m)
    } else {
        let q = dividend.checked_div(d as u128)?;
        if q > m as u128 {
            return None;
        }
        (q as u64, (dividend % d as u128) as u64)
    };
    match size {
        0 => regs[RAX] = (rax & !0xffff) | r << 8 | q,
        1 => {
            regs[RAX] = (rax & !0xffff) | q;
            regs[RDX] = (rdx & !0xffff) | r;
        }
        _ => {
            regs[RAX] = q;
            regs[RDX] = r;
        }
    }
    Some(())
}

/// `divide(env, divisor, size, signed)`: reads and writes rax/rdx, may raise #DE.
static DIVIDE: Helper = Helper {
    name: "x86_divide",
    func: helper_divide,
    flags: HelperFlags::READS_GLOBALS
        .union(HelperFlags::WRITES_GLOBALS)
        .union(HelperFlags::MAY_RAISE),
};

/// `cpuid(env)`: reads eax/ecx, writes rax/rbx/rcx/rdx.
static CPUID: Helper = Helper {
    name: "x86_cpuid",
    func: super::system::helper_cpuid,
    flags: HelperFlags::READS_GLOBALS.union(HelperFlags::WRITES_GLOBALS),
};

/// `rdtsc() -> tsc`: no state.
static RDTSC: Helper = Helper {
    name: "x86_rdtsc",
    func: super::system::helper_rdtsc,
    flags: HelperFlags::NONE,
};

#[cfg(test)]
mod tests {
    use super::*;
    use ir::{Block, Op};

    /// Code readable in `[start, end)` only.
    struct Window {
        start: u64,
        bytes: Vec<u8>,
    }

    impl CodeReader for Window {
        fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemFault> {
            let off = vaddr.wrapping_sub(self.start) as usize;
            match self.bytes.get(off..off + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    Ok(())
                }
                None => Err(MemFault::Page(vaddr)),
            }
        }
    }

    fn translate_at(pc: u64, code: &mut Window) -> Result<Block, MemFault> {
        let mut b = Builder::new(cpu::globals(), Type::I64);
        translate(pc, code, &mut b, 64, 0)?;
        let block = b.finish();
        ir::verify::verify(&block).unwrap();
        Ok(block)
    }

    /// The last page of a window ending at 0x2000 holds `tail` at its very end.
    fn page_end(tail: &[u8]) -> (u64, Window) {
        let mut bytes = vec![0x90; 0x1000 - tail.len()];
        bytes.extend_from_slice(tail);
        let pc = 0x2000 - tail.len() as u64;
        (
            pc,
            Window {
                start: 0x1000,
                bytes,
            },
        )
    }

    #[test]
    fn an_instruction_running_into_an_unreadable_page_faults_when_first() {
        // mov eax, imm32 (b8 + 4 bytes) with only 3 bytes readable.
        let (pc, mut code) = page_end(&[0xb8, 1, 2]);
        assert_eq!(
            translate_at(pc, &mut code).err(),
            Some(MemFault::Page(0x2000))
        );
    }

    #[test]
    fn a_block_stops_before_an_instruction_it_cannot_fetch_whole() {
        let (pc, mut code) = page_end(&[0x90, 0xb8, 1, 2]);
        let block = translate_at(pc, &mut code).unwrap();
        assert_eq!(block.insn_starts().len(), 1);
    }

    #[test]
    fn a_short_instruction_at_a_page_end_needs_no_bytes_beyond_it() {
        let (pc, mut code) = page_end(&[0x48, 0x01, 0xd8]); // add rax, rbx
        let block = translate_at(pc, &mut code).unwrap();
        assert_eq!(block.insn_starts(), vec![(pc, u64::MAX)]);
        assert!(matches!(block.ops.last(), Some(Op::GotoTb { slot: 0 })));
    }

    #[test]
    fn undecodable_bytes_and_unimplemented_instructions_exit_with_ud() {
        for bytes in [&[0x0f, 0xff][..], &[0x0f, 0x01, 0xd0], &[0x06]] {
            let mut code = Window {
                start: 0x1000,
                bytes: bytes.iter().copied().chain([0x90; 16]).collect(),
            };
            let block = translate_at(0x1000, &mut code).unwrap();
            assert!(
                matches!(block.ops.last(), Some(Op::ExitTb { reason: EXIT_UD })),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn the_static_cc_op_rides_in_insn_start_and_is_written_once() {
        // cmp rax, rbx; cmp rax, rcx; jb ...
        let mut code = Window {
            start: 0x1000,
            bytes: [0x48, 0x39, 0xd8, 0x48, 0x39, 0xc8, 0x72, 0x00]
                .into_iter()
                .chain([0x90; 16])
                .collect(),
        };
        let block = translate_at(0x1000, &mut code).unwrap();
        let sub64 = CcOp::new(CcKind::Sub, 3).encode();
        assert_eq!(
            block.insn_starts(),
            vec![(0x1000, u64::MAX), (0x1003, sub64), (0x1006, sub64)]
        );
        let cc_op = Temp(1 + cpu::CC_OP_GLOBAL as u32);
        let writes = block
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Mov { dst, .. } if *dst == cc_op))
            .count();
        assert_eq!(writes, 1);
        assert!(
            !block.ops.iter().any(|op| matches!(op, Op::Call { .. })),
            "jb compares directly"
        );
    }

    #[test]
    fn division_writes_quotient_and_remainder_per_size() {
        let mut r = [0u64; 16];
        r[RAX] = 0xffff_ffff_ffff_0064; // ax = 100
        divide(&mut r, 7, 0, false).unwrap();
        assert_eq!(r[RAX], 0xffff_ffff_ffff_020e, "ah = 2, al = 14, rest kept");
        r[RAX] = 0xdead_beef_0000_0007;
        r[RDX] = 0x1234_5678_0000_0000;
        divide(&mut r, 2, 2, false).unwrap();
        assert_eq!((r[RAX], r[RDX]), (3, 1), "32-bit results zero-extend");
        r[RAX] = (-7i64) as u64;
        r[RDX] = u64::MAX;
        divide(&mut r, 2, 3, true).unwrap();
        assert_eq!(
            (r[RAX] as i64, r[RDX] as i64),
            (-3, -1),
            "truncating, remainder signed"
        );
    }

    #[test]
    fn division_by_zero_and_overflow_raise_and_keep_the_registers() {
        let mut r = [0u64; 16];
        r[RAX] = 5;
        assert!(divide(&mut r, 0, 3, false).is_none());
        assert!(divide(&mut r, 0, 3, true).is_none());
        r[RDX] = 1;
        assert!(
            divide(&mut r, 1, 3, false).is_none(),
            "quotient 2^64 does not fit"
        );
        r[RAX] = 1 << 63;
        r[RDX] = u64::MAX;
        assert!(divide(&mut r, u64::MAX, 3, true).is_none(), "MIN / -1");
        r[RAX] = 0x8000;
        assert!(
            divide(&mut r, 0xff, 0, true).is_none(),
            "-32768 / -1 as bytes"
        );
        assert_eq!((r[RAX], r[RDX]), (0x8000, u64::MAX));
    }
}
