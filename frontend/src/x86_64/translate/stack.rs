//! Stack instructions: push/pop, pushf/popf (16, 32 and 64 bits), enter/leave (16, 32 and
//! 64 bits).
//!
//! In 64-bit mode the stack address size is always 64 bits; the operand size (64 by default,
//! 16 with a 0x66 prefix) sets how much each push and pop moves. In 16- and 32-bit code the
//! stack is `SS.base + SP` (ESP), its pointer wrapping at the code size (see `legacy`).
//! Every instruction does its loads and stores before it writes a register, so a fault
//! restarts it cleanly.

use iced_x86::{Code, Instruction, Mnemonic, Register};
use ir::{BinOp, ExtFrom, MemOp, Temp};

use super::{log2, mem_size, Loc, Translator};
use crate::x86_64::cpu::RSP;

/// rbp's register number.
const RBP: usize = 5;

impl Translator<'_> {
    /// `push`, `pop`, `enter`, `leave`, `pushf`/`pushfq`, `popf`/`popfq`.
    pub(super) fn stack(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Push => {
                let src = self.operand(i, 0)?;
                let size = match src {
                    Loc::Imm { .. } => log2(i.stack_pointer_increment().unsigned_abs() as usize)?,
                    l => l.size(),
                };
                // `push rsp` pushes the value before the decrement: read it first.
                let v = self.read(src);
                self.push(v, size);
            }
            Pop => {
                let dst = self.operand(i, 0)?;
                let size = dst.size();
                // A memory destination based on rsp is addressed with the incremented rsp
                // (SDM "POP"); `pop rsp` ends with the loaded value, not the increment.
                let dst = match dst {
                    Loc::Mem { addr, size: s }
                        if matches!(i.memory_base(), Register::RSP | Register::ESP) =>
                    {
                        self.b.addi(addr, addr, 1 << size);
                        if i.memory_base() == Register::ESP {
                            self.b.ext(ExtFrom::U32, addr, addr);
                        }
                        Loc::Mem { addr, size: s }
                    }
                    l => l,
                };
                let top = self.stack_top();
                let v = self.tmp();
                self.b
                    .load(v, top, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                self.store(dst, v);
                self.release_stack(1 << size);
                self.write_reg(dst, v);
            }
            Leave => {
                // rsp = rbp, then pop rbp (bp for the 16-bit form, merged into rbp).
                let size = match i.code() {
                    Code::Leavew => 1,
                    Code::Leaved => 2,
                    _ => 3,
                };
                let rbp = self.reg(RBP);
                let v = self.tmp();
                if self.legacy() {
                    // SP = BP (ESP = EBP) at the stack's size, then the pop.
                    let sp = self.tmp();
                    self.b.mov(sp, rbp);
                    self.wrap_sp(sp);
                    let a = self.stack_linear(sp);
                    self.b
                        .load(v, a, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                    self.b.addi(sp, sp, 1 << size);
                    self.wrap_sp(sp);
                    self.set_sp(sp);
                } else {
                    self.b
                        .load(v, rbp, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                    let rsp = self.reg(RSP);
                    self.b.addi(rsp, rbp, 1 << size);
                }
                let bp = Loc::Reg {
                    idx: RBP,
                    size,
                    high: false,
                };
                self.write_reg(bp, v);
            }
            Enter => self.enter(i)?,
            Pusha | Pushad | Popa | Popad => self.push_pop_all(i),
            Pushf | Pushfd | Pushfq => {
                let size = match i.mnemonic() {
                    Pushf => 1,
                    Pushfd => 2,
                    _ => 3,
                };
                let v = self.rflags();
                if size == 2 {
                    // pushfd stores VM and RF as 0 (SDM "PUSHF").
                    self.b.binary_imm(BinOp::And, v, v, !(3u64 << 16));
                }
                self.push(v, size);
            }
            Popf | Popfd | Popfq => {
                let (size, width) = match i.mnemonic() {
                    Popf => (1, 0xffff),
                    Popfd => (2, u32::MAX as u64),
                    _ => (3, u64::MAX),
                };
                let top = self.stack_top();
                let v = self.tmp();
                self.b
                    .load(v, top, MemOp::unsigned(mem_size(size)), self.mmu_idx);
                self.release_stack(1 << size);
                self.set_rflags(v, width);
            }
            _ => return None,
        }
        Some(())
    }

    /// Pushes the low `1 << size` bytes of `v`: the store, then rsp.
    fn push(&mut self, v: Temp, size: u8) {
        let sp = self.sp_plus(-(1i64 << size));
        let slot = self.stack_linear(sp);
        self.b
            .store(v, slot, MemOp::unsigned(mem_size(size)), self.mmu_idx);
        self.set_sp(sp);
    }

    /// `pusha`/`pushad` (16- and 32-bit code only): pushes AX CX DX BX, the SP from before
    /// the first push, BP SI DI; `popa`/`popad` pops them back in reverse, discarding the
    /// saved SP. All the stores (loads) come before any register changes.
    fn push_pop_all(&mut self, i: &Instruction) {
        use Mnemonic::*;
        let size = if matches!(i.mnemonic(), Pusha | Popa) {
            1
        } else {
            2
        };
        let bytes = 1i64 << size;
        let mop = MemOp::unsigned(mem_size(size));
        if matches!(i.mnemonic(), Pusha | Pushad) {
            let values: Vec<Temp> = (0..8)
                .map(|r| {
                    let v = self.reg(r);
                    let t = self.tmp();
                    self.b.mov(t, v);
                    t
                })
                .collect();
            for (k, v) in values.into_iter().enumerate() {
                let sp = self.sp_plus(-bytes * (k as i64 + 1));
                let a = self.stack_linear(sp);
                self.b.store(v, a, mop, self.mmu_idx);
            }
            let sp = self.sp_plus(-bytes * 8);
            self.set_sp(sp);
        } else {
            // DI is on top, AX at the bottom.
            let mut values = Vec::new();
            for k in 0..8 {
                let sp = self.sp_plus(bytes * k);
                let a = self.stack_linear(sp);
                let v = self.tmp();
                self.b.load(v, a, mop, self.mmu_idx);
                values.push(((7 - k) as usize, v));
            }
            self.release_stack(bytes as u64 * 8);
            for (r, v) in values {
                if r != RSP {
                    let l = Loc::Reg {
                        idx: r,
                        size,
                        high: false,
                    };
                    self.write_reg(l, v);
                }
            }
        }
    }

    /// `enter alloc, level` (SDM "ENTER"): push rbp; for nesting level n > 0 copy the
    /// n - 1 frame pointers below the old rbp (`[rbp - k * size]`) and push the new frame
    /// pointer; rbp (bp, ebp for the 16- and 32-bit forms) = the frame pointer; rsp -=
    /// alloc. Outside 64-bit mode every stack address wraps at the stack's size and is in
    /// SS. The loads all come before the stores, and the registers change last.
    fn enter(&mut self, i: &Instruction) -> Option<()> {
        let size: u8 = match i.code() {
            Code::Enterw_imm16_imm8 => 1,
            Code::Enterd_imm16_imm8 => 2,
            _ => 3,
        };
        let bytes = 1u64 << size;
        let alloc = i.immediate16() as u64;
        let level = i.immediate8_2nd() as u64 % 32;
        let mop = MemOp::unsigned(mem_size(size));
        let (rsp, rbp) = (self.reg(RSP), self.reg(RBP));
        // The linear address of stack offset `off` (wrapped in place): `off` in 64-bit mode.
        let at = |t: &mut Self, off: Temp| {
            t.wrap_sp(off);
            t.stack_linear(off)
        };
        // The display: [rbp - k * bytes] for k in 1..level, read before anything is written.
        let mut display = Vec::new();
        for k in 1..level {
            let (a, v) = (self.tmp(), self.tmp());
            self.b.addi(a, rbp, (k * bytes).wrapping_neg());
            let a = at(self, a);
            self.b.load(v, a, mop, self.mmu_idx);
            display.push(v);
        }
        // The frame pointer: rsp after pushing rbp.
        let frame = self.tmp();
        self.b.addi(frame, rsp, bytes.wrapping_neg());
        let a = at(self, frame);
        self.b.store(rbp, a, mop, self.mmu_idx);
        let sp = self.tmp();
        self.b.mov(sp, frame);
        if level > 0 {
            for v in display {
                self.b.addi(sp, sp, bytes.wrapping_neg());
                let a = at(self, sp);
                self.b.store(v, a, mop, self.mmu_idx);
            }
            self.b.addi(sp, sp, bytes.wrapping_neg());
            let a = at(self, sp);
            self.b.store(frame, a, mop, self.mmu_idx);
        }
        let bp = Loc::Reg {
            idx: RBP,
            size,
            high: false,
        };
        self.write_reg(bp, frame);
        if self.legacy() {
            self.b.binary_imm(BinOp::Sub, sp, sp, alloc);
            self.wrap_sp(sp);
            self.set_sp(sp);
        } else {
            self.b.binary_imm(BinOp::Sub, rsp, sp, alloc);
        }
        Some(())
    }
}
