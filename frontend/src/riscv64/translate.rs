//! Translation of RISC-V 64 code into IR blocks.
//!
//! A block runs until a control transfer, an instruction that must return to the loop (ecall,
//! ebreak, an illegal instruction), `max_insns`, or the end of the guest page the block
//! started on (so direct links never cross a page in system mode). Integer registers are
//! globals (x0 reads as the constant 0 and writes to it are dropped), so the backend keeps them
//! in host registers across the block. Guest memory is little-endian and ordinary accesses need
//! no alignment; LR/SC and AMOs require natural alignment. Floating-point arithmetic calls the
//! bit-exact helpers in [`super::fpu`]; loads, stores, moves and sign injection are inline.
//!
//! Precise exceptions: no instruction writes a register before its last op that may fault, so
//! restoring the pc from `insn_start` data is all an exception needs.

use accel_tcg::{CodeReader, MemFault};
use ir::abi::PAGE_MASK;
use ir::{BinOp, Builder, Cond, ExtFrom, Helper, HelperFlags, MemOp, Size, Temp, Type, UnOp};

use super::compressed::decode_compressed;
use super::cpu::{self, Riscv64Cpu};
use super::decode::decode;
use super::insn::{Insn, Opcode};

/// `ExitTb` reason: an `ecall`; the pc is the ecall's address.
pub const EXIT_ECALL: u32 = 1;
/// `ExitTb` reason: an `ebreak`; the pc is its address.
pub const EXIT_EBREAK: u32 = 2;
/// `ExitTb` reason: an illegal instruction; the pc is its address, `tval` its bits.
pub const EXIT_ILLEGAL: u32 = 3;
/// `ExitTb` reason (system mode): `wfi`; the pc is the next instruction.
pub const EXIT_WFI: u32 = 4;
/// `ExitTb` reason (system mode): the hart's mode, interrupt enables or address translation
/// may have changed (CSR write, `mret`/`sret`, `sfence.vma`); the pc is where to go on.
pub const EXIT_SYNC: u32 = 5;

/// The hart mode a block is translated for; [`Mode::flags`] is the block key's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// A full-system hart (privileged instructions and CSRs go to the `system` helpers);
    /// otherwise a Linux user-mode process.
    pub system: bool,
    /// The privilege level (0 U, 1 S, 3 M).
    pub priv_level: u8,
    /// The MMU index of loads and stores.
    pub data_mmu_idx: u8,
    /// `mstatus.FS` is not Off: FP instructions are legal.
    pub fp_enabled: bool,
}

impl Mode {
    /// A Linux user-mode process.
    pub const USER: Mode = Mode {
        system: false,
        priv_level: 0,
        data_mmu_idx: 0,
        fp_enabled: true,
    };

    /// Packs the mode into block-key flags.
    pub const fn flags(self) -> u32 {
        (self.priv_level as u32 & 3)
            | (self.system as u32) << 2
            | (self.fp_enabled as u32) << 3
            | (self.data_mmu_idx as u32 & 7) << 4
    }

    /// Unpacks [`Mode::flags`].
    pub const fn from_flags(flags: u32) -> Mode {
        Mode {
            priv_level: (flags & 3) as u8,
            system: flags & 4 != 0,
            fp_enabled: flags & 8 != 0,
            data_mmu_idx: ((flags >> 4) & 7) as u8,
        }
    }

    /// The MMU index of instruction fetch: the privilege level's own.
    pub const fn code_mmu_idx(self) -> u8 {
        if !self.system {
            return self.data_mmu_idx;
        }
        match self.priv_level {
            0 => 0,
            1 => 1,
            _ => 3,
        }
    }
}

/// `cause` values the translator records (the privileged spec's exception codes).
pub mod cause {
    /// Illegal instruction.
    pub const ILLEGAL_INSTRUCTION: u64 = 2;
    /// Breakpoint.
    pub const BREAKPOINT: u64 = 3;
    /// Environment call from U-mode (S-mode is 9, M-mode 11).
    pub const ECALL_U: u64 = 8;
}

/// Sets the pc of `cpu` to the instruction whose `insn_start` had `pc`.
pub fn restore_state(cpu: &mut Riscv64Cpu, pc: u64, _extra: u64) {
    cpu.pc = pc;
}

/// Whether translation of the block goes on after an instruction.
#[derive(PartialEq, Eq)]
enum Flow {
    Next,
    End,
}

struct Translator<'a> {
    b: &'a mut Builder,
    pc: u64,
    mmu_idx: u8,
    mode: Mode,
    /// `frm` was found valid earlier in this block and not written since.
    frm_checked: bool,
}

/// Translates the block at `pc` into `b`: at most `max_insns` instructions, fetched through
/// `code` in MMU mode `mmu_idx` (which is also the mode of its loads and stores).
pub fn translate(
    pc: u64,
    code: &mut dyn CodeReader,
    b: &mut Builder,
    max_insns: u32,
    mmu_idx: u8,
) -> Result<(), MemFault> {
    translate_mode(
        pc,
        Mode {
            data_mmu_idx: mmu_idx,
            ..Mode::USER
        },
        code,
        b,
        max_insns,
    )
}

/// Translates the block at `pc` for a hart in `mode`.
pub fn translate_mode(
    pc: u64,
    mode: Mode,
    code: &mut dyn CodeReader,
    b: &mut Builder,
    max_insns: u32,
) -> Result<(), MemFault> {
    let mmu_idx = mode.data_mmu_idx;
    let page = pc & PAGE_MASK;
    let mut t = Translator {
        b,
        pc,
        mmu_idx,
        mode,
        frm_checked: false,
    };
    for n in 0..max_insns.max(1) {
        if n > 0 && t.pc & PAGE_MASK != page {
            break;
        }
        let insn = match fetch(code, t.pc) {
            Ok(Some(insn)) => insn,
            Ok(None) => {
                let raw = raw_bits(code, t.pc);
                t.b.insn_start(t.pc, 0);
                t.illegal(raw);
                return Ok(());
            }
            Err(fault) if n == 0 => return Err(fault),
            // The next instruction is not readable: leave it to the next block, which will
            // take the fault with the right pc.
            Err(_) => break,
        };
        t.b.insn_start(t.pc, 0);
        if t.insn(&insn) == Flow::End {
            return Ok(());
        }
        t.pc = t.pc.wrapping_add(insn.len as u64);
    }
    let pc_g = t.b.global(cpu::PC_GLOBAL);
    t.b.movi(pc_g, t.pc);
    t.b.goto_tb(0);
    Ok(())
}

/// Reads and decodes the instruction at `pc`; `Ok(None)` for an illegal encoding.
fn fetch(code: &mut dyn CodeReader, pc: u64) -> Result<Option<Insn>, MemFault> {
    let mut half = [0u8; 2];
    code.read(pc, &mut half)?;
    let low = u16::from_le_bytes(half);
    if low & 3 != 3 {
        return Ok(decode_compressed(low));
    }
    code.read(pc.wrapping_add(2), &mut half)?;
    let raw = low as u32 | (u16::from_le_bytes(half) as u32) << 16;
    Ok(decode(raw))
}

/// The bits of an illegal instruction for `tval` (16 bits for a compressed-length one).
fn raw_bits(code: &mut dyn CodeReader, pc: u64) -> u64 {
    let mut bytes = [0u8; 4];
    if code.read(pc, &mut bytes[..2]).is_err() {
        return 0;
    }
    let low = u16::from_le_bytes([bytes[0], bytes[1]]);
    if low & 3 != 3 || code.read(pc.wrapping_add(2), &mut bytes[2..]).is_err() {
        return low as u64;
    }
    u32::from_le_bytes(bytes) as u64
}

const I64: Type = Type::I64;
const I32: Type = Type::I32;
/// NaN-boxing of single-precision values in 64-bit registers.
const NAN_BOX: u64 = 0xffff_ffff_0000_0000;

impl Translator<'_> {
    /// The value of `x[r]` (a constant 0 for x0).
    fn x(&mut self, r: u8) -> Temp {
        if r == 0 {
            self.b.constant(I64, 0)
        } else {
            self.b.global(cpu::x_global(r as usize))
        }
    }

    /// Where a result for `x[r]` goes: the global, or a throwaway temp for x0.
    fn xd(&mut self, r: u8) -> Temp {
        if r == 0 {
            self.b.scratch(I64)
        } else {
            self.b.global(cpu::x_global(r as usize))
        }
    }

    fn f(&mut self, r: u8) -> Temp {
        self.b.global(cpu::f_global(r as usize & 31))
    }

    fn tmp(&mut self) -> Temp {
        self.b.scratch(I64)
    }

    fn next_pc(&self, insn: &Insn) -> u64 {
        self.pc.wrapping_add(insn.len as u64)
    }

    fn set_pc(&mut self, pc: u64) {
        let g = self.b.global(cpu::PC_GLOBAL);
        self.b.movi(g, pc);
    }

    fn exit(&mut self, reason: u32, cause: u64, tval: u64) -> Flow {
        self.set_pc(self.pc);
        let c = self.b.constant(I64, cause);
        self.b
            .env_store(c, cpu::CAUSE_OFFSET, MemOp::unsigned(Size::B64));
        let v = self.b.constant(I64, tval);
        self.b
            .env_store(v, cpu::TVAL_OFFSET, MemOp::unsigned(Size::B64));
        self.b.exit_tb(reason);
        Flow::End
    }

    fn illegal(&mut self, raw: u64) -> Flow {
        self.exit(EXIT_ILLEGAL, cause::ILLEGAL_INSTRUCTION, raw)
    }

    /// `rd = a op b` (64-bit).
    fn bin(&mut self, op: BinOp, rd: u8, a: Temp, b: Temp) {
        if rd != 0 {
            let d = self.xd(rd);
            self.b.binary(op, d, a, b);
        }
    }

    /// `rd = a op imm` (64-bit).
    fn bin_imm(&mut self, op: BinOp, rd: u8, a: Temp, imm: i64) {
        let c = self.b.constant(I64, imm as u64);
        self.bin(op, rd, a, c);
    }

    /// `rd = sext32(a op b)` computed in 32 bits (W instructions).
    fn bin_w(&mut self, op: BinOp, rd: u8, a: Temp, b: Temp) {
        if rd == 0 {
            return;
        }
        let (a32, b32, r32) = (
            self.b.scratch(I32),
            self.b.scratch(I32),
            self.b.scratch(I32),
        );
        self.b.trunc(a32, a);
        self.b.trunc(b32, b);
        self.b.binary(op, r32, a32, b32);
        let d = self.xd(rd);
        self.b.ext(ExtFrom::S32, d, r32);
    }

    fn bin_w_imm(&mut self, op: BinOp, rd: u8, a: Temp, imm: i64) {
        let c = self.b.constant(I64, imm as u64);
        self.bin_w(op, rd, a, c);
    }

    /// `rd = cond(a, b)`
    fn set_cond(&mut self, cond: Cond, rd: u8, a: Temp, b: Temp) {
        if rd != 0 {
            let d = self.xd(rd);
            self.b.setcond(cond, d, a, b);
        }
    }

    fn address(&mut self, rs1: u8, imm: i64) -> Temp {
        let base = self.x(rs1);
        if imm == 0 {
            return base;
        }
        let a = self.tmp();
        self.b.addi(a, base, imm as u64);
        a
    }

    fn load(&mut self, insn: &Insn, mop: MemOp) {
        let addr = self.address(insn.rs1, insn.imm);
        // The load runs even for x0: it may fault.
        let d = self.xd(insn.rd);
        self.b.load(d, addr, mop, self.mmu_idx);
    }

    fn store(&mut self, insn: &Insn, size: Size) {
        let addr = self.address(insn.rs1, insn.imm);
        let v = self.x(insn.rs2);
        self.b.store(v, addr, MemOp::unsigned(size), self.mmu_idx);
    }

    fn branch(&mut self, insn: &Insn, cond: Cond) -> Flow {
        let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
        let taken = self.b.new_label();
        self.b.brcond(cond, a, b, taken);
        self.set_pc(self.next_pc(insn));
        self.b.goto_tb(1);
        self.b.set_label(taken);
        self.set_pc(self.pc.wrapping_add(insn.imm as u64));
        self.b.goto_tb(0);
        Flow::End
    }

    fn unary(&mut self, op: UnOp, rd: u8, a: Temp) {
        if rd != 0 {
            let d = self.xd(rd);
            self.b.unary(op, d, a);
        }
    }

    /// `rd = ext(op(low 32 bits of a))` for clzw/ctzw/cpopw.
    fn unary_w(&mut self, op: UnOp, rd: u8, a: Temp) {
        if rd == 0 {
            return;
        }
        let (a32, r32) = (self.b.scratch(I32), self.b.scratch(I32));
        self.b.trunc(a32, a);
        self.b.unary(op, r32, a32);
        let d = self.xd(rd);
        self.b.ext(ExtFrom::U32, d, r32);
    }

    fn ext(&mut self, from: ExtFrom, rd: u8, a: Temp) {
        if rd != 0 {
            let d = self.xd(rd);
            self.b.ext(from, d, a);
        }
    }

    /// `rd = cond(a, b) ? a : b` (min/max).
    fn select(&mut self, cond: Cond, rd: u8, a: Temp, b: Temp) {
        if rd != 0 {
            let d = self.xd(rd);
            self.b.movcond(cond, d, a, b, a, b);
        }
    }

    /// `rd = b + (zext32?(a) << sh)` (Zba).
    fn shift_add(&mut self, rd: u8, a: Temp, b: Temp, sh: u64, uw: bool) {
        if rd == 0 {
            return;
        }
        let t = self.tmp();
        if uw {
            self.b.ext(ExtFrom::U32, t, a);
        } else {
            self.b.mov(t, a);
        }
        if sh != 0 {
            self.b.binary_imm(BinOp::Shl, t, t, sh);
        }
        let d = self.xd(rd);
        self.b.add(d, t, b);
    }

    /// The single-bit mask `1 << (b & 63)` (Zbs).
    fn bit(&mut self, b: Temp) -> Temp {
        let one = self.b.constant(I64, 1);
        let m = self.tmp();
        self.b.shl(m, one, b);
        m
    }

    fn insn(&mut self, insn: &Insn) -> Flow {
        use Opcode::*;
        let (rd, imm) = (insn.rd, insn.imm);
        match insn.op {
            Lui => {
                if rd != 0 {
                    let d = self.xd(rd);
                    self.b.movi(d, imm as u64);
                }
            }
            Auipc => {
                if rd != 0 {
                    let d = self.xd(rd);
                    self.b.movi(d, self.pc.wrapping_add(imm as u64));
                }
            }
            Jal => {
                if rd != 0 {
                    let d = self.xd(rd);
                    self.b.movi(d, self.next_pc(insn));
                }
                self.set_pc(self.pc.wrapping_add(imm as u64));
                self.b.goto_tb(0);
                return Flow::End;
            }
            Jalr => {
                // The target is computed before rd is written: rd may be rs1.
                let target = self.tmp();
                let base = self.x(insn.rs1);
                self.b.addi(target, base, imm as u64);
                self.b.binary_imm(BinOp::And, target, target, !1);
                if rd != 0 {
                    let d = self.xd(rd);
                    self.b.movi(d, self.next_pc(insn));
                }
                let pc_g = self.b.global(cpu::PC_GLOBAL);
                self.b.mov(pc_g, target);
                self.b.lookup_and_goto();
                return Flow::End;
            }
            Beq => return self.branch(insn, Cond::Eq),
            Bne => return self.branch(insn, Cond::Ne),
            Blt => return self.branch(insn, Cond::Lt),
            Bge => return self.branch(insn, Cond::Ge),
            Bltu => return self.branch(insn, Cond::Ltu),
            Bgeu => return self.branch(insn, Cond::Geu),
            Lb => self.load(insn, MemOp::signed(Size::B8)),
            Lh => self.load(insn, MemOp::signed(Size::B16)),
            Lw => self.load(insn, MemOp::signed(Size::B32)),
            Ld => self.load(insn, MemOp::unsigned(Size::B64)),
            Lbu => self.load(insn, MemOp::unsigned(Size::B8)),
            Lhu => self.load(insn, MemOp::unsigned(Size::B16)),
            Lwu => self.load(insn, MemOp::unsigned(Size::B32)),
            Sb => self.store(insn, Size::B8),
            Sh => self.store(insn, Size::B16),
            Sw => self.store(insn, Size::B32),
            Sd => self.store(insn, Size::B64),
            Addi => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Add, rd, a, imm)
            }
            Slti | Sltiu => {
                let a = self.x(insn.rs1);
                let c = self.b.constant(I64, imm as u64);
                self.set_cond(if insn.op == Slti { Cond::Lt } else { Cond::Ltu }, rd, a, c)
            }
            Xori => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Xor, rd, a, imm)
            }
            Ori => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Or, rd, a, imm)
            }
            Andi => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::And, rd, a, imm)
            }
            Slli => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Shl, rd, a, imm)
            }
            Srli => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Shr, rd, a, imm)
            }
            Srai => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Sar, rd, a, imm)
            }
            Add | Sub | Sll | Srl | Sra | Xor | Or | And | Mul | Mulh | Mulhsu | Mulhu | Div
            | Divu | Rem | Remu | Andn | Rol | Ror => {
                let op = match insn.op {
                    Add => BinOp::Add,
                    Sub => BinOp::Sub,
                    Sll => BinOp::Shl,
                    Srl => BinOp::Shr,
                    Sra => BinOp::Sar,
                    Xor => BinOp::Xor,
                    Or => BinOp::Or,
                    And => BinOp::And,
                    Mul => BinOp::Mul,
                    Mulh => BinOp::MulHs,
                    Mulhsu => BinOp::MulHsu,
                    Mulhu => BinOp::MulHu,
                    Div => BinOp::DivS,
                    Divu => BinOp::DivU,
                    Rem => BinOp::RemS,
                    Remu => BinOp::RemU,
                    Andn => BinOp::AndNot,
                    Rol => BinOp::Rotl,
                    _ => BinOp::Rotr,
                };
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                self.bin(op, rd, a, b)
            }
            Slt | Sltu => {
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                self.set_cond(if insn.op == Slt { Cond::Lt } else { Cond::Ltu }, rd, a, b)
            }
            Addiw => {
                let a = self.x(insn.rs1);
                self.bin_w_imm(BinOp::Add, rd, a, imm)
            }
            Slliw => {
                let a = self.x(insn.rs1);
                self.bin_w_imm(BinOp::Shl, rd, a, imm)
            }
            Srliw => {
                let a = self.x(insn.rs1);
                self.bin_w_imm(BinOp::Shr, rd, a, imm)
            }
            Sraiw => {
                let a = self.x(insn.rs1);
                self.bin_w_imm(BinOp::Sar, rd, a, imm)
            }
            Roriw => {
                let a = self.x(insn.rs1);
                self.bin_w_imm(BinOp::Rotr, rd, a, imm)
            }
            Addw | Subw | Sllw | Srlw | Sraw | Mulw | Divw | Divuw | Remw | Remuw | Rolw | Rorw => {
                let op = match insn.op {
                    Addw => BinOp::Add,
                    Subw => BinOp::Sub,
                    Sllw => BinOp::Shl,
                    Srlw => BinOp::Shr,
                    Sraw => BinOp::Sar,
                    Mulw => BinOp::Mul,
                    Divw => BinOp::DivS,
                    Divuw => BinOp::DivU,
                    Remw => BinOp::RemS,
                    Remuw => BinOp::RemU,
                    Rolw => BinOp::Rotl,
                    _ => BinOp::Rotr,
                };
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                self.bin_w(op, rd, a, b)
            }
            Fence => self.b.fence(),
            // Stores to translated code are caught and invalidate it, so instruction fetch is
            // always coherent; the fence only ends nothing.
            FenceI => {}
            Ecall => {
                let cause = cause::ECALL_U
                    + if self.mode.system {
                        self.mode.priv_level as u64
                    } else {
                        0
                    };
                return self.exit(EXIT_ECALL, cause, 0);
            }
            Ebreak => return self.exit(EXIT_EBREAK, cause::BREAKPOINT, self.pc),
            Csrrw | Csrrs | Csrrc | Csrrwi | Csrrsi | Csrrci if self.mode.system => {
                return self.system_csr(insn)
            }
            Csrrw | Csrrs | Csrrc | Csrrwi | Csrrsi | Csrrci => return self.csr(insn),
            LrW | LrD => return self.load_reserved(insn),
            ScW | ScD => return self.store_conditional(insn),
            AmoswapW | AmoaddW | AmoxorW | AmoandW | AmoorW | AmominW | AmomaxW | AmominuW
            | AmomaxuW | AmoswapD | AmoaddD | AmoxorD | AmoandD | AmoorD | AmominD | AmomaxD
            | AmominuD | AmomaxuD => self.amo(insn),
            // mstatus.FS = Off: every F/D instruction is illegal.
            Flw | Fld | Fsw | Fsd | FmvXW | FmvWX | FmvXD | FmvDX if !self.mode.fp_enabled => {
                return self.illegal(insn.raw as u64)
            }
            op if is_fp_arith(op) && !self.mode.fp_enabled => return self.illegal(insn.raw as u64),
            Flw | Fld => {
                let addr = self.address(insn.rs1, imm);
                let d = self.f(rd);
                if insn.op == Flw {
                    let v = self.tmp();
                    self.b
                        .load(v, addr, MemOp::unsigned(Size::B32), self.mmu_idx);
                    self.b.binary_imm(BinOp::Or, d, v, NAN_BOX);
                } else {
                    self.b
                        .load(d, addr, MemOp::unsigned(Size::B64), self.mmu_idx);
                }
            }
            Fsw | Fsd => {
                let addr = self.address(insn.rs1, imm);
                let v = self.f(insn.rs2);
                let size = if insn.op == Fsw { Size::B32 } else { Size::B64 };
                self.b.store(v, addr, MemOp::unsigned(size), self.mmu_idx);
            }
            FmvXW => {
                let v = self.f(insn.rs1);
                self.ext(ExtFrom::S32, rd, v)
            }
            FmvWX => {
                let (v, d) = (self.x(insn.rs1), self.f(rd));
                let t = self.tmp();
                self.b.ext(ExtFrom::U32, t, v);
                self.b.binary_imm(BinOp::Or, d, t, NAN_BOX);
            }
            FmvXD => {
                let v = self.f(insn.rs1);
                if rd != 0 {
                    let d = self.xd(rd);
                    self.b.mov(d, v);
                }
            }
            FmvDX => {
                let (v, d) = (self.x(insn.rs1), self.f(rd));
                self.b.mov(d, v);
            }
            op if is_fp_arith(op) => return self.fp(insn),
            AddUw => {
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                self.shift_add(rd, a, b, 0, true)
            }
            Sh1add | Sh2add | Sh3add | Sh1addUw | Sh2addUw | Sh3addUw => {
                let sh = match insn.op {
                    Sh1add | Sh1addUw => 1,
                    Sh2add | Sh2addUw => 2,
                    _ => 3,
                };
                let uw = matches!(insn.op, Sh1addUw | Sh2addUw | Sh3addUw);
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                self.shift_add(rd, a, b, sh, uw)
            }
            SlliUw => {
                let a = self.x(insn.rs1);
                let zero = self.b.constant(I64, 0);
                self.shift_add(rd, a, zero, imm as u64, true)
            }
            Orn | Xnor => {
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                if rd != 0 {
                    let nb = self.tmp();
                    self.b.not(nb, b);
                    let op = if insn.op == Orn {
                        BinOp::Or
                    } else {
                        BinOp::Xor
                    };
                    self.bin(op, rd, a, nb);
                }
            }
            Clz | Ctz | Cpop | Rev8 => {
                let op = match insn.op {
                    Clz => UnOp::Clz,
                    Ctz => UnOp::Ctz,
                    Cpop => UnOp::Ctpop,
                    _ => UnOp::Bswap,
                };
                let a = self.x(insn.rs1);
                self.unary(op, rd, a)
            }
            Clzw | Ctzw | Cpopw => {
                let op = match insn.op {
                    Clzw => UnOp::Clz,
                    Ctzw => UnOp::Ctz,
                    _ => UnOp::Ctpop,
                };
                let a = self.x(insn.rs1);
                self.unary_w(op, rd, a)
            }
            Max | Maxu | Min | Minu => {
                let cond = match insn.op {
                    Max => Cond::Gt,
                    Maxu => Cond::Gtu,
                    Min => Cond::Lt,
                    _ => Cond::Ltu,
                };
                let (a, b) = (self.x(insn.rs1), self.x(insn.rs2));
                self.select(cond, rd, a, b)
            }
            SextB | SextH | ZextH => {
                let from = match insn.op {
                    SextB => ExtFrom::S8,
                    SextH => ExtFrom::S16,
                    _ => ExtFrom::U16,
                };
                let a = self.x(insn.rs1);
                self.ext(from, rd, a)
            }
            Rori => {
                let a = self.x(insn.rs1);
                self.bin_imm(BinOp::Rotr, rd, a, imm)
            }
            OrcB => {
                if rd != 0 {
                    let a = self.x(insn.rs1);
                    let d = self.xd(rd);
                    self.b.call(&ORC_B, &[a], Some(d));
                }
            }
            Bclr | Bext | Binv | Bset | Bclri | Bexti | Binvi | Bseti => {
                let a = self.x(insn.rs1);
                let index = match insn.op {
                    Bclr | Bext | Binv | Bset => self.x(insn.rs2),
                    _ => self.b.constant(I64, imm as u64),
                };
                if rd != 0 {
                    match insn.op {
                        Bext | Bexti => {
                            let t = self.tmp();
                            self.b.shr(t, a, index);
                            self.bin_imm(BinOp::And, rd, t, 1);
                        }
                        _ => {
                            let m = self.bit(index);
                            let op = match insn.op {
                                Bclr | Bclri => BinOp::AndNot,
                                Binv | Binvi => BinOp::Xor,
                                _ => BinOp::Or,
                            };
                            self.bin(op, rd, a, m);
                        }
                    }
                }
            }
            Sret | Mret | Wfi | SfenceVma if self.mode.system => return self.privileged(insn),
            // Privileged instructions: not available to user code.
            Sret | Mret | Wfi | SfenceVma => return self.illegal(insn.raw as u64),
            _ => return self.illegal(insn.raw as u64),
        }
        Flow::Next
    }
}

/// `orc.b`: each byte becomes 0xff if it was nonzero, else 0.
unsafe extern "C" fn orc_b(a: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let mut r = 0u64;
    for i in 0..8 {
        if (a >> (8 * i)) & 0xff != 0 {
            r |= 0xff << (8 * i);
        }
    }
    r
}

static ORC_B: Helper = Helper {
    name: "orc_b",
    func: orc_b,
    flags: HelperFlags::PURE,
};

mod atomics;
mod csr;
mod fp;
mod system;

use fp::is_fp_arith;

#[cfg(test)]
mod tests;
