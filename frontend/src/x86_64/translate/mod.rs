//! Translation of x86_64 code into IR blocks (64-bit mode, general-purpose integer subset).
//!
//! A block is translated for a [`Mode`] (the block key's flags): [`translate`] is the
//! user-mode entry ([`Mode::USER`]), [`translate_mode`] the general one. In system mode the
//! privileged and system instructions exit to the machine ([`EXIT_SYSTEM`], see
//! [`system`]), and the decoder follows the mode's `code_bits`. 16- and 32-bit code add
//! segment bases to their memory operands, use a 16- or 32-bit stack, and in 16-bit code
//! `rip` is linear (`CS.base + IP`): see [`Mode`] and the `legacy` module.
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
//! Not implemented (exit [`EXIT_UD`], with one warning at translation time naming the
//! mnemonic): MMX, SSE3 and later, AVX, BMI, `xgetbv`, and anything else cpuid does not
//! advertise (see [`super::system`]). `ud0/1/2` and a `lock` prefix anywhere but on a
//! read-modify-write instruction with a memory destination raise #UD as the SDM says. A
//! `lock` that is allowed needs nothing more (one vCPU). SSE/SSE2 are in `translate::sse`
//! and x87 in `translate::x87` (x86_64 hosts only: they run the host instruction).
//!
//! The instruction classes live in submodules: `alu` (add..cmp, inc/dec, neg/not), `shift`
//! (shifts, rotates, rcl/rcr, double shifts), `muldiv`, `bits` (bt*, scans, counts),
//! `string`, `stack` (push/pop, pushf/popf, enter/leave), `control` (jumps, calls,
//! conditions, loops), `atomic` (xchg, xadd, cmpxchg, cmpxchg8b/16b), `moves` (mov family,
//! sign extensions, bswap, movbe, xlat) and `misc` (flag moves, nops, cpuid, rdtsc,
//! rdtscp). This module holds the block loop and the operand helpers they share.

use accel_tcg::{CodeReader, MemFault};
use iced_x86::{ConditionCode, Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic};
use iced_x86::{OpKind, Register};
use ir::abi::{PAGE_MASK, PAGE_SIZE};
use ir::{BinOp, Builder, Cond, ExtFrom, MemOp, Size, Temp, Type};

use super::cpu::{self, X86Cpu, RAX};
use super::flags::{self, ext, CcOp, CcState};

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
/// `ExitTb` reason (system mode): a privileged or system instruction for the machine to
/// perform; rip is its address, `sys_op` a [`SysInsn`] encoding, `sys_addr` its memory
/// operand's linear address (see [`system`]).
pub const EXIT_SYSTEM: u32 = 5;
/// `ExitTb` reason (system mode): a fault the translator found (a privileged instruction
/// at CPL > 0, an IOPL check); rip is the instruction, `cause` the vector, `error_code` its
/// error code.
pub const EXIT_EXCEPTION: u32 = 6;

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
    /// Page fault (recorded by the guest's `raise`, not by translated code).
    pub const PF: u64 = 14;
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
    mode: Mode,
    /// Instructions left before the block must end (the `sti` shadow); 0: no limit.
    stop_after: u8,
}

/// Translates the block at `pc` into `b` for a user-mode process: at most `max_insns`
/// instructions, fetched through `code`; loads and stores use MMU mode `mmu_idx`.
pub fn translate(
    pc: u64,
    code: &mut dyn CodeReader,
    b: &mut Builder,
    max_insns: u32,
    mmu_idx: u8,
) -> Result<(), MemFault> {
    let mode = Mode {
        mmu_idx,
        ..Mode::USER
    };
    translate_mode(pc, code, b, max_insns, mode)
}

/// Translates the block at `pc` into `b` for `mode` (see [`Mode`]; in system mode the
/// privileged instructions exit with [`EXIT_SYSTEM`], see [`system`]).
pub fn translate_mode(
    pc: u64,
    code: &mut dyn CodeReader,
    b: &mut Builder,
    max_insns: u32,
    mode: Mode,
) -> Result<(), MemFault> {
    let page = pc & PAGE_MASK;
    let mut t = Translator {
        b,
        pc,
        next: pc,
        mmu_idx: mode.mmu_idx,
        cc: CcState::UNKNOWN,
        mode,
        stop_after: 0,
    };
    for n in 0..max_insns.max(1) {
        if n > 0 && t.pc & PAGE_MASK != page {
            break;
        }
        let instr = match fetch_bits(code, t.pc, mode.code_bits) {
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
        if t.stop_after > 0 {
            t.stop_after -= 1;
            if t.stop_after == 0 {
                break;
            }
        }
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
    fetch_bits(code, pc, 64)
}

/// [`fetch`] for code of `bits` (64, 32 or 16) default size.
pub(crate) fn fetch_bits(
    code: &mut dyn CodeReader,
    pc: u64,
    bits: u8,
) -> Result<Option<Instruction>, MemFault> {
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
    let mut decoder = Decoder::with_ip(bits as u32, &buf[..len], pc, DecoderOptions::NONE);
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

/// Whether `i` may carry a `lock` prefix (SDM Vol. 2 "LOCK"): one of the read-modify-write
/// instructions, with a memory destination. Anything else with `lock` is #UD.
fn lockable(i: &Instruction) -> bool {
    use Mnemonic::*;
    i.op_count() > 0
        && i.op0_kind() == OpKind::Memory
        && matches!(
            i.mnemonic(),
            Add | Adc
                | And
                | Btc
                | Btr
                | Bts
                | Cmpxchg
                | Cmpxchg8b
                | Cmpxchg16b
                | Dec
                | Inc
                | Neg
                | Not
                | Or
                | Sbb
                | Sub
                | Xadd
                | Xchg
                | Xor
        )
}

mod alu;
mod atomic;
mod bits;
mod control;
mod legacy;
mod misc;
mod mode;
mod moves;
mod muldiv;
mod shift;
#[cfg(target_arch = "x86_64")]
mod sse;
mod stack;
mod string;
pub mod system;
#[cfg(target_arch = "x86_64")]
mod x87;

pub use mode::Mode;
pub use system::{Port, Rm, SysInsn, SysOp};

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

    /// The effective address of `i`'s memory operand (segment base included unless `lea`;
    /// see `legacy` for 16- and 32-bit code).
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
            self.wrap_offset(i, a);
        }
        if with_segment {
            self.add_segment_base(a, i.memory_segment());
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

    /// Loads RFLAGS from `v` (`popfq` at CPL 3; `popf` with `width` 0xffff): the arithmetic
    /// flags, DF, and the bits user code may change ([`POPF_USER_MASK`]) within `width`; IF
    /// and IOPL stay, and so do the bits above `width`.
    fn set_rflags(&mut self, v: Temp, width: u64) {
        let f = self.tmp();
        self.b.binary_imm(BinOp::And, f, v, flags::ARITH);
        self.set_eflags(f);
        let df = self.b.global(cpu::DF_GLOBAL);
        let (bit, down, up) = (self.konst(flags::DF), self.konst(u64::MAX), self.konst(1));
        self.b.movcond(Cond::TstNe, df, v, bit, down, up);
        let e = self.b.global(cpu::EFLAGS_GLOBAL);
        let t = self.tmp();
        let mask = self.popf_mask() & width;
        self.b.binary_imm(BinOp::And, t, v, mask);
        self.b.binary_imm(BinOp::And, e, e, !mask);
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
        if i.has_lock_prefix() && !lockable(i) {
            log::debug!(
                "x86_64: lock prefix on {:?} at {:#x}: #UD",
                i.mnemonic(),
                self.pc
            );
            return Some(self.exit(EXIT_UD, self.pc, vector::UD));
        }
        if self.mode.system {
            if let Some(flow) = self.system(i) {
                return Some(flow);
            }
        }
        // SSE first: its movsd/cmpsd share their mnemonics with the string instructions.
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
            // Only string instructions use them meaningfully (and `rep ret`, `repz nop`, and
            // F2 as the MPX `bnd` prefix of branches, a no-op without MPX).
            let branch = i.is_jcc_short_or_near()
                || i.is_jmp_short_or_near()
                || i.is_jmp_near_indirect()
                || i.is_call_near()
                || i.is_call_near_indirect();
            if !branch && !matches!(i.mnemonic(), Ret | Nop | Pause) {
                return None;
            }
        }
        match i.mnemonic() {
            Cpuid | Rdtsc | Rdtscp | Nop | Pause | Endbr64 | Endbr32 | Reservednop | Lfence
            | Mfence | Sfence | Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Prefetchw
            | Prefetch | Prefetchwt1 | Cldemote | Clc | Stc | Cmc | Cld | Std | Lahf | Sahf => {
                self.misc(i)?
            }
            Ud0 | Ud1 | Ud2 => {
                log::debug!("x86_64: {:?} at {:#x}: #UD", i.mnemonic(), self.pc);
                return Some(self.exit(EXIT_UD, self.pc, vector::UD));
            }
            Mov | Movnti | Movzx | Movsx | Movsxd | Lea | Cbw | Cwde | Cdqe | Cwd | Cdq | Cqo
            | Bswap | Movbe | Xlatb => self.moves(i)?,
            Add | Or | Adc | Sbb | And | Sub | Xor | Cmp | Test => self.alu(i)?,
            Inc | Dec | Neg | Not => self.unary(i)?,
            Shl | Sal | Shr | Sar => self.shift(i)?,
            Rol | Ror => self.rotate(i)?,
            Rcl | Rcr => self.rotate_carry(i)?,
            Shld | Shrd => self.double_shift(i)?,
            Imul if i.op_count() > 1 => self.imul(i)?,
            Mul | Imul => self.mul(i)?,
            Div | Idiv => self.div(i)?,
            Push | Pop | Leave | Enter | Pushf | Pushfd | Pushfq | Popf | Popfd | Popfq | Pusha
            | Pushad | Popa | Popad => self.stack(i)?,
            Xchg | Xadd | Cmpxchg | Cmpxchg8b | Cmpxchg16b => self.atomic(i)?,
            Bt | Bts | Btr | Btc => self.bit_test(i)?,
            Bsf | Bsr | Tzcnt | Lzcnt | Popcnt => self.bit_scan(i)?,
            Hlt => return Some(self.exit(EXIT_HLT, self.next, 0)),
            Syscall => return Some(self.exit(EXIT_SYSCALL, self.next, 0)),
            Int3 => return Some(self.exit(EXIT_INT3, self.next, vector::BP)),
            _ => return self.control(i),
        }
        Some(Flow::Next)
    }
}

#[cfg(test)]
mod tests;
