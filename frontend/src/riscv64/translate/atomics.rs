//! The A extension: LR/SC with a value-checked reservation, and AMOs as load-op-store.
//!
//! One vCPU at a time runs guest code today, so a load-op-store sequence is atomic with
//! respect to other harts. The reservation is the address and the value LR loaded; SC
//! succeeds when the reservation holds that address and memory still holds that value (the
//! same check QEMU makes), and always clears it.

use ir::{BinOp, Cond, ExtFrom, MemOp, Size, Type};

use super::{Flow, Translator};
use crate::riscv64::cpu;
use crate::riscv64::insn::{Insn, Opcode};

fn width(op: Opcode) -> Size {
    use Opcode::*;
    match op {
        LrW | ScW | AmoswapW | AmoaddW | AmoxorW | AmoandW | AmoorW | AmominW | AmomaxW
        | AmominuW | AmomaxuW => Size::B32,
        _ => Size::B64,
    }
}

/// The loaded value as the register holds it: words are sign-extended.
fn loaded(size: Size) -> MemOp {
    match size {
        Size::B32 => MemOp::signed(Size::B32).with_aligned(),
        _ => MemOp::unsigned(size).with_aligned(),
    }
}

impl Translator<'_> {
    pub(super) fn load_reserved(&mut self, insn: &Insn) -> Flow {
        let size = width(insn.op);
        let addr = self.x(insn.rs1);
        let v = self.tmp();
        self.b.load(v, addr, loaded(size), self.mmu_idx);
        self.b
            .env_store(addr, cpu::RESERVATION_OFFSET, MemOp::unsigned(Size::B64));
        self.b
            .env_store(v, cpu::RESERVATION_VALUE_OFFSET, MemOp::unsigned(Size::B64));
        if insn.rd != 0 {
            let d = self.xd(insn.rd);
            self.b.mov(d, v);
        }
        Flow::Next
    }

    pub(super) fn store_conditional(&mut self, insn: &Insn) -> Flow {
        let size = width(insn.op);
        let addr = self.x(insn.rs1);
        let value = self.x(insn.rs2);
        // Locals: they live across the labels below.
        let result = self.b.local(Type::I64);
        let fail = self.b.new_label();
        let done = self.b.new_label();
        self.b.movi(result, 1);
        let reserved = self.b.local(Type::I64);
        self.b.env_load(
            reserved,
            cpu::RESERVATION_OFFSET,
            MemOp::unsigned(Size::B64),
        );
        self.b.brcond(Cond::Ne, reserved, addr, fail);
        let current = self.b.local(Type::I64);
        self.b.load(current, addr, loaded(size), self.mmu_idx);
        let expected = self.b.local(Type::I64);
        self.b.env_load(
            expected,
            cpu::RESERVATION_VALUE_OFFSET,
            MemOp::unsigned(Size::B64),
        );
        self.b.brcond(Cond::Ne, current, expected, fail);
        self.b.store(
            value,
            addr,
            MemOp::unsigned(size).with_aligned(),
            self.mmu_idx,
        );
        self.b.movi(result, 0);
        self.b.br(done);
        self.b.set_label(fail);
        self.b.br(done);
        self.b.set_label(done);
        let none = self.b.constant(Type::I64, u64::MAX);
        self.b
            .env_store(none, cpu::RESERVATION_OFFSET, MemOp::unsigned(Size::B64));
        if insn.rd != 0 {
            let d = self.xd(insn.rd);
            self.b.mov(d, result);
        }
        Flow::Next
    }

    pub(super) fn amo(&mut self, insn: &Insn) {
        use Opcode::*;
        let size = width(insn.op);
        let addr = self.x(insn.rs1);
        let src = self.x(insn.rs2);
        let old = self.tmp();
        self.b.load(old, addr, loaded(size), self.mmu_idx);
        let new = self.tmp();
        // Compare as the width's signed or unsigned values: words are sign-extended in
        // registers, so unsigned word compares look at the low 32 bits only.
        let (a, b) = if size == Size::B32 && matches!(insn.op, AmominuW | AmomaxuW) {
            let (a, b) = (self.tmp(), self.tmp());
            self.b.ext(ExtFrom::U32, a, old);
            self.b.ext(ExtFrom::U32, b, src);
            (a, b)
        } else if size == Size::B32 && matches!(insn.op, AmominW | AmomaxW) {
            let b = self.tmp();
            self.b.ext(ExtFrom::S32, b, src);
            (old, b)
        } else {
            (old, src)
        };
        match insn.op {
            AmoswapW | AmoswapD => self.b.mov(new, src),
            AmoaddW | AmoaddD => self.b.binary(BinOp::Add, new, old, src),
            AmoxorW | AmoxorD => self.b.binary(BinOp::Xor, new, old, src),
            AmoandW | AmoandD => self.b.binary(BinOp::And, new, old, src),
            AmoorW | AmoorD => self.b.binary(BinOp::Or, new, old, src),
            AmominW | AmominD => self.b.movcond(Cond::Lt, new, a, b, old, src),
            AmomaxW | AmomaxD => self.b.movcond(Cond::Gt, new, a, b, old, src),
            AmominuW | AmominuD => self.b.movcond(Cond::Ltu, new, a, b, old, src),
            _ => self.b.movcond(Cond::Gtu, new, a, b, old, src),
        }
        self.b.store(
            new,
            addr,
            MemOp::unsigned(size).with_aligned(),
            self.mmu_idx,
        );
        if insn.rd != 0 {
            let d = self.xd(insn.rd);
            self.b.mov(d, old);
        }
    }
}
