//! Building blocks op by op, the way frontends translate guest instructions.

use crate::fast_hash::FastHashMap;
use std::sync::Arc;

use crate::op::{BinOp, ExtFrom, Op, UnOp, MAX_CALL_ARGS};
use crate::types::{Cond, GlobalDef, Label, MemOp, Temp, TempKind, Type};
use crate::{Block, Helper};

/// Appends ops to a [`Block`]. A frontend keeps one builder per vCPU and calls
/// [`Builder::finish`] per translated block; the builder's buffers are reused.
///
/// Operation types come from the destination temp; mismatches are caught by the verifier.
pub struct Builder {
    block: Block,
    consts: FastHashMap<(Type, u64), Temp>,
    insns: u32,
}

macro_rules! binary_ops {
    ($($name:ident => $op:ident),* $(,)?) => {
        $(
            #[doc = concat!("`dst = a ", stringify!($name), " b`")]
            pub fn $name(&mut self, dst: Temp, a: Temp, b: Temp) {
                self.binary(BinOp::$op, dst, a, b);
            }
        )*
    };
}

macro_rules! unary_ops {
    ($($name:ident => $op:ident),* $(,)?) => {
        $(
            #[doc = concat!("`dst = ", stringify!($name), " src`")]
            pub fn $name(&mut self, dst: Temp, src: Temp) {
                self.unary(UnOp::$op, dst, src);
            }
        )*
    };
}

impl Builder {
    /// A builder for blocks over `globals`, with guest addresses of type `addr_type`.
    pub fn new(globals: Arc<[GlobalDef]>, addr_type: Type) -> Builder {
        Builder {
            block: Block::new(globals, addr_type),
            consts: FastHashMap::default(),
            insns: 0,
        }
    }

    /// Takes the finished block and leaves the builder empty for the next one.
    pub fn finish(&mut self) -> Block {
        let fresh = Block::new(self.block.globals.clone(), self.block.addr_type);
        self.consts.clear();
        self.insns = 0;
        std::mem::replace(&mut self.block, fresh)
    }

    /// The block built so far.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The temp of global number `index`.
    pub fn global(&self, index: usize) -> Temp {
        self.block.global(index)
    }

    /// The type of `t`.
    pub fn ty(&self, t: Temp) -> Type {
        self.block.ty(t)
    }

    /// Number of `InsnStart` markers so far.
    pub fn insn_count(&self) -> u32 {
        self.insns
    }

    /// Number of ops so far.
    pub fn op_count(&self) -> usize {
        self.block.ops.len()
    }

    /// A new scratch temp (dead at labels; see [`TempKind::Scratch`]).
    pub fn scratch(&mut self, ty: Type) -> Temp {
        self.block.add_temp(ty, TempKind::Scratch)
    }

    /// A new local temp (live across labels within the block).
    pub fn local(&mut self, ty: Type) -> Temp {
        self.block.add_temp(ty, TempKind::Local)
    }

    /// The constant `value` (truncated to `ty`), interned.
    pub fn constant(&mut self, ty: Type, value: u64) -> Temp {
        let value = value & ty.mask();
        if let Some(&t) = self.consts.get(&(ty, value)) {
            return t;
        }
        let t = self.block.add_temp(ty, TempKind::Const(value));
        self.consts.insert((ty, value), t);
        t
    }

    /// A new label, to be placed with [`Builder::set_label`].
    pub fn new_label(&mut self) -> Label {
        self.block.num_labels += 1;
        Label(self.block.num_labels - 1)
    }

    /// Appends a raw op.
    pub fn push(&mut self, op: Op) {
        self.block.ops.push(op);
    }

    /// `dst = src`
    pub fn mov(&mut self, dst: Temp, src: Temp) {
        let ty = self.ty(dst);
        self.push(Op::Mov { ty, dst, src });
    }

    /// `dst = value`
    pub fn movi(&mut self, dst: Temp, value: u64) {
        let ty = self.ty(dst);
        let c = self.constant(ty, value);
        self.push(Op::Mov { ty, dst, src: c });
    }

    /// `dst = a op b`
    pub fn binary(&mut self, op: BinOp, dst: Temp, a: Temp, b: Temp) {
        let ty = self.ty(dst);
        self.push(Op::Binary { op, ty, dst, a, b });
    }

    /// `dst = a op imm`
    pub fn binary_imm(&mut self, op: BinOp, dst: Temp, a: Temp, imm: u64) {
        let ty = self.ty(dst);
        let b = self.constant(ty, imm);
        self.push(Op::Binary { op, ty, dst, a, b });
    }

    /// `dst = a + imm`
    pub fn addi(&mut self, dst: Temp, a: Temp, imm: u64) {
        self.binary_imm(BinOp::Add, dst, a, imm);
    }

    binary_ops! {
        add => Add, sub => Sub, mul => Mul, mulhs => MulHs, mulhu => MulHu, mulhsu => MulHsu,
        divs => DivS, divu => DivU, rems => RemS, remu => RemU, and => And, or => Or, xor => Xor,
        andnot => AndNot, shl => Shl, shr => Shr, sar => Sar, rotl => Rotl, rotr => Rotr,
    }

    /// `dst = op src`
    pub fn unary(&mut self, op: UnOp, dst: Temp, src: Temp) {
        let ty = self.ty(dst);
        self.push(Op::Unary { op, ty, dst, src });
    }

    unary_ops! { neg => Neg, not => Not, bswap => Bswap, clz => Clz, ctz => Ctz, ctpop => Ctpop }

    /// `dst = extend(src)` from the width `from` names.
    pub fn ext(&mut self, from: ExtFrom, dst: Temp, src: Temp) {
        let ty = self.ty(dst);
        self.push(Op::Ext { from, ty, dst, src });
    }

    /// `dst:i32 = src:i64` truncated.
    pub fn trunc(&mut self, dst: Temp, src: Temp) {
        self.push(Op::Trunc { dst, src });
    }

    /// `dst = extend(src[pos..pos+len])`
    pub fn extract(&mut self, dst: Temp, src: Temp, pos: u8, len: u8, signed: bool) {
        let ty = self.ty(dst);
        self.push(Op::Extract {
            ty,
            dst,
            src,
            pos,
            len,
            signed,
        });
    }

    /// `dst = base` with bits `pos..pos+len` taken from `val`.
    pub fn deposit(&mut self, dst: Temp, base: Temp, val: Temp, pos: u8, len: u8) {
        let ty = self.ty(dst);
        self.push(Op::Deposit {
            ty,
            dst,
            base,
            val,
            pos,
            len,
        });
    }

    /// `dst = cond(a, b)` as 0 or 1.
    pub fn setcond(&mut self, cond: Cond, dst: Temp, a: Temp, b: Temp) {
        let ty = self.ty(a);
        self.push(Op::SetCond {
            cond,
            ty,
            dst,
            a,
            b,
        });
    }

    /// `dst = if cond(a, b) { t } else { f }`
    pub fn movcond(&mut self, cond: Cond, dst: Temp, a: Temp, b: Temp, t: Temp, f: Temp) {
        let ty = self.ty(dst);
        self.push(Op::MovCond {
            cond,
            ty,
            dst,
            a,
            b,
            t,
            f,
        });
    }

    /// Places `label` here.
    pub fn set_label(&mut self, label: Label) {
        self.push(Op::SetLabel(label));
    }

    /// Jumps to `label`.
    pub fn br(&mut self, label: Label) {
        self.push(Op::Br(label));
    }

    /// Jumps to `label` if `cond(a, b)`.
    pub fn brcond(&mut self, cond: Cond, a: Temp, b: Temp, label: Label) {
        let ty = self.ty(a);
        self.push(Op::BrCond {
            cond,
            ty,
            a,
            b,
            label,
        });
    }

    /// Jumps to `label` if `cond(a, imm)`.
    pub fn brcondi(&mut self, cond: Cond, a: Temp, imm: u64, label: Label) {
        let ty = self.ty(a);
        let b = self.constant(ty, imm);
        self.push(Op::BrCond {
            cond,
            ty,
            a,
            b,
            label,
        });
    }

    /// `dst = guest[addr]`
    pub fn load(&mut self, dst: Temp, addr: Temp, mop: MemOp, mmu_idx: u8) {
        self.push(Op::Load {
            dst,
            addr,
            mop,
            mmu_idx,
        });
    }

    /// `guest[addr] = val`
    pub fn store(&mut self, val: Temp, addr: Temp, mop: MemOp, mmu_idx: u8) {
        self.push(Op::Store {
            val,
            addr,
            mop,
            mmu_idx,
        });
    }

    /// `dst = cpu_state[offset]`
    pub fn env_load(&mut self, dst: Temp, offset: u32, mop: MemOp) {
        self.push(Op::EnvLoad { dst, offset, mop });
    }

    /// `cpu_state[offset] = val`
    pub fn env_store(&mut self, val: Temp, offset: u32, mop: MemOp) {
        self.push(Op::EnvStore { val, offset, mop });
    }

    /// Calls `helper` with `args` (at most [`MAX_CALL_ARGS`]), writing the result to `ret`.
    pub fn call(&mut self, helper: &'static Helper, args: &[Temp], ret: Option<Temp>) {
        assert!(
            args.len() <= MAX_CALL_ARGS,
            "helper {} called with {} arguments",
            helper.name,
            args.len()
        );
        let mut a = [Temp::ENV; MAX_CALL_ARGS];
        a[..args.len()].copy_from_slice(args);
        self.push(Op::Call {
            helper,
            args: a,
            nargs: args.len() as u8,
            ret,
        });
    }

    /// A guest memory ordering point.
    pub fn fence(&mut self) {
        self.push(Op::Fence);
    }

    /// Starts guest instruction `pc`.
    pub fn insn_start(&mut self, pc: u64, extra: u64) {
        self.insns += 1;
        self.push(Op::InsnStart { pc, extra });
    }

    /// Ends the block, chaining through `slot` to the pc already in the pc global.
    pub fn goto_tb(&mut self, slot: u8) {
        self.push(Op::GotoTb { slot });
    }

    /// Ends the block, returning `reason` to the loop.
    pub fn exit_tb(&mut self, reason: u32) {
        self.push(Op::ExitTb { reason });
    }

    /// Ends the block with an indirect jump to the pc in the pc global.
    pub fn lookup_and_goto(&mut self) {
        self.push(Op::LookupAndGoto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals() -> Arc<[GlobalDef]> {
        Arc::from(vec![
            GlobalDef {
                name: "pc",
                ty: Type::I64,
                offset: 200,
            },
            GlobalDef {
                name: "a0",
                ty: Type::I32,
                offset: 208,
            },
        ])
    }

    #[test]
    fn constants_are_interned_per_type_and_truncated() {
        let mut b = Builder::new(globals(), Type::I64);
        let c1 = b.constant(Type::I64, 5);
        assert_eq!(b.constant(Type::I64, 5), c1);
        assert_ne!(b.constant(Type::I32, 5), c1);
        let big = b.constant(Type::I32, 0x1_0000_0007);
        assert_eq!(b.block().const_value(big), Some(7));
        assert_eq!(b.constant(Type::I32, 7), big);
    }

    #[test]
    fn globals_follow_env_and_finish_resets() {
        let mut b = Builder::new(globals(), Type::I64);
        assert_eq!(b.global(0), Temp(1));
        assert_eq!(b.ty(b.global(1)), Type::I32);
        b.insn_start(0x1000, 0);
        let t = b.scratch(Type::I64);
        b.addi(t, b.global(0), 4);
        b.mov(b.global(0), t);
        b.exit_tb(1);
        let block = b.finish();
        assert_eq!(block.ops.len(), 4);
        assert_eq!(block.insn_starts(), vec![(0x1000, 0)]);
        assert_eq!(b.op_count(), 0);
        assert_eq!(b.block().temps.len(), 3);
        // Constants interned in the previous block are not reused in the next.
        let c = b.constant(Type::I64, 4);
        assert_eq!(c, Temp(3));
    }
}
