//! Lowering of one verified block to host code: the op loop, control flow, terminals and the
//! out-of-line stubs emitted after the body.
//!
//! Code layout of a block:
//! ```text
//! entry:  cmp dword [r14 - 128], 0 ; jne exit_requested   (EXIT_REQUEST via the biased env)
//!         body (fast paths inline)
//! stubs:  exit_requested, unwind, goto_tb slot exits, load/store slow paths
//! ```

mod alu;
pub mod asm;
mod call;
mod lookup;
mod mem;

use ir::abi::{offsets, ExitCode, ExitKind};
use ir::{Block, Op};

use crate::liveness::{self, OpLife, DST};
use crate::regalloc::Fail;
use crate::regalloc::RegState;
use crate::regs::*;
use crate::{BackendError, HostFeatures};
use asm::{env_mem, Alu, Asm, Cc, DynamicLabel};

/// A slow path to emit after the body, with the allocator state it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlowPath {
    pub label: DynamicLabel,
    pub done: DynamicLabel,
    pub store: bool,
    pub mop: ir::MemOp,
    pub mmu_idx: u8,
    pub insn_index: u32,
    pub addr: Reg,
    /// Register of the stored value, or the constant.
    pub val: Result<Reg, u64>,
    /// Load destination and whether it is 64-bit.
    pub dst: Reg,
    pub dst_w64: bool,
    /// Globals to store before / reload after the call: a range of `Compiler::slow_globals`.
    pub globals: (u32, u32),
    /// Caller-saved registers holding values needed after the op.
    pub save: RegSet,
}

/// A prepared comparison: registers loaded, condition chosen.
pub(crate) struct Cmp {
    pub cc: Cc,
    pub alu: Alu,
    pub w64: bool,
    pub ra: Reg,
    /// The second register, or an immediate.
    pub rb: Result<Reg, i32>,
}

/// Where a GotoTb slot's pieces are in the block's code (byte offsets).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GotoOffsets {
    /// The patchable jump's rel32 field.
    pub field: usize,
    /// The stub that returns `GotoTbN` to the loop.
    pub exit_stub: usize,
    /// The stub that probes the jump cache first (system mode).
    pub probe_stub: Option<usize>,
}

/// What [`compile`] produces besides the code (left in `Scratch::asm`): per GotoTb slot.
pub(crate) type Output = [Option<GotoOffsets>; 2];

/// Per-block compiler state.
pub(crate) struct Compiler<'a> {
    pub asm: &'a mut Asm,
    pub block: &'a Block,
    pub features: HostFeatures,
    /// See [`crate::BackendConfig::pc_offset`].
    pub pc_offset: Option<u32>,
    /// See [`crate::BackendConfig::cross_page_probe`].
    pub cross_page_probe: bool,
    pub block_id: u32,
    pub epilogue: usize,
    pub rs: &'a mut RegState,
    pub life: &'a [OpLife],
    /// The block's local temps.
    pub locals: &'a [u32],
    pub labels: &'a mut Vec<DynamicLabel>,
    pub slow: &'a mut Vec<SlowPath>,
    /// Globals of every slow path: (register, CPU-state offset, 64-bit, `SLOW_*` flags).
    pub slow_globals: &'a mut Vec<(Reg, u32, bool, u8)>,
    pub unwind: Option<DynamicLabel>,
    /// InsnStart ops seen so far (the current instruction's index is one less).
    pub insns_seen: u32,
    pub goto: [Option<(usize, DynamicLabel)>; 2],
}

/// Reusable buffers of the compiler: nothing is allocated per block once they have grown.
#[derive(Default)]
pub(crate) struct Scratch {
    pub rs: RegState,
    pub life: Vec<OpLife>,
    pub state: Vec<u8>,
    pub locals: Vec<u32>,
    pub asm: Asm,
    pub labels: Vec<DynamicLabel>,
    pub slow: Vec<SlowPath>,
    pub slow_globals: Vec<(Reg, u32, bool, u8)>,
}

/// Compiles `block` for executable address `base`.
pub(crate) fn compile(
    block: &Block,
    block_id: u32,
    base: usize,
    epilogue: usize,
    config: &crate::BackendConfig,
    scratch: &mut Scratch,
) -> Result<Output, BackendError> {
    let pc_offset = config.pc_offset;
    let Scratch {
        rs,
        life,
        state,
        locals,
        asm,
        labels,
        slow,
        slow_globals,
    } = scratch;
    liveness::compute(block, pc_offset, life, state, locals);
    rs.reset(block)?;
    asm.reset(base);
    asm.buf.reserve(block.ops.len() * 16 + 256);
    labels.clear();
    for _ in 0..block.num_labels {
        labels.push(asm.new_label());
    }
    slow.clear();
    slow_globals.clear();
    let c = Compiler {
        asm,
        block,
        features: config.features,
        pc_offset,
        cross_page_probe: config.cross_page_probe,
        block_id,
        epilogue,
        rs,
        life,
        locals,
        labels,
        slow,
        slow_globals,
        unwind: None,
        insns_seen: 0,
        goto: [None, None],
    };
    Ok(c.run()?)
}

impl Compiler<'_> {
    /// Index of the instruction the current op belongs to (0 before any InsnStart).
    pub(crate) fn insn_index(&self) -> u32 {
        self.insns_seen.saturating_sub(1)
    }

    fn exit_code(&self, kind: ExitKind, payload: u32) -> u64 {
        ExitCode {
            block_id: self.block_id,
            kind,
            payload,
        }
        .encode()
    }

    /// `mov rax, code ; jmp epilogue`
    /// A slot's probe stub (system mode, see [`crate::BackendConfig::cross_page_probe`]): the
    /// target pc is in the CPU state already; a jump-cache hit jumps to its code, a miss goes
    /// on to the slot's exit stub `exit`. Returns its offset.
    fn probe_stub(&mut self, exit: DynamicLabel) -> Option<usize> {
        let (true, Some(offset)) = (self.cross_page_probe, self.pc_offset) else {
            return None;
        };
        let at = self.asm.offset();
        lookup::probe(self.asm, lookup::Pc::Env(offset));
        asm::jmp(self.asm, exit);
        Some(at)
    }

    fn emit_return(&mut self, code: u64) {
        asm::mov_ri(self.asm, RAX, code);
        asm::jmp_abs(self.asm, self.epilogue);
    }

    /// The block's unwind exit (created on first use).
    pub(crate) fn unwind_label(&mut self) -> DynamicLabel {
        match self.unwind {
            Some(l) => l,
            None => {
                let l = self.asm.new_label();
                self.unwind = Some(l);
                l
            }
        }
    }

    fn run(mut self) -> Result<Output, Fail> {
        let exit_req = self.asm.new_label();
        asm::cmp_mem32_zero(self.asm, env_mem(offsets::EXIT_REQUEST));
        asm::jcc(self.asm, Cc::Ne, exit_req);
        let block = self.block;
        for (i, op) in block.ops.iter().enumerate() {
            self.lower(i, op)?;
        }
        // Stubs.
        self.asm.bind(exit_req);
        self.emit_return(self.exit_code(ExitKind::ExitRequested, 0));
        if let Some(l) = self.unwind {
            self.asm.bind(l);
            self.emit_return(self.exit_code(ExitKind::Unwind, 0));
        }
        let mut goto = [None, None];
        for (slot, out) in goto.iter_mut().enumerate() {
            if let Some((field, stub)) = self.goto[slot] {
                let stub_off = self.asm.offset();
                self.asm.bind(stub);
                let kind = if slot == 0 {
                    ExitKind::GotoTb0
                } else {
                    ExitKind::GotoTb1
                };
                self.emit_return(self.exit_code(kind, 0));
                let probe_stub = self.probe_stub(stub);
                *out = Some(GotoOffsets {
                    field,
                    exit_stub: stub_off,
                    probe_stub,
                });
            }
        }
        for k in 0..self.slow.len() {
            let s = self.slow[k];
            self.emit_slow_path(&s);
        }
        self.asm.finish();
        Ok(goto)
    }

    /// Unlocks the op's registers and applies the operands' after-op states.
    fn end_op(&mut self, i: usize, op: &Op) -> Result<(), Fail> {
        let life = self.life[i];
        let dst = op.def();
        let mut uses = [ir::Temp(0); 6];
        let mut n = 0;
        op.for_each_use(|u| {
            uses[n] = u;
            n += 1;
        });
        for k in 0..n {
            if Some(uses[k]) != dst {
                self.retire(uses[k], life[k])?;
            }
        }
        if let Some(d) = dst {
            self.retire(d, life[DST])?;
        }
        self.rs.locked = 0;
        Ok(())
    }

    fn lower(&mut self, i: usize, op: &Op) -> Result<(), Fail> {
        match *op {
            Op::InsnStart { .. } => {
                self.insns_seen += 1;
                return Ok(());
            }
            Op::SetLabel(l) => {
                self.sync_boundary()?;
                self.at_label();
                let l = self.labels[l.index()];
                self.asm.bind(l);
                return Ok(());
            }
            Op::Br(l) => {
                self.sync_boundary()?;
                self.forget_all();
                asm::jmp(self.asm, self.labels[l.index()]);
                return Ok(());
            }
            Op::BrCond {
                cond,
                ty,
                a,
                b,
                label,
            } => self.lower_brcond(i, cond, ty, a, b, label)?,
            Op::GotoTb { slot } => {
                self.sync_globals()?;
                self.forget_all();
                let stub = self.asm.new_label();
                asm::pad_to(self.asm, 1, 4);
                // Always rel32 (the stub is a forward label), so the field can be patched.
                asm::jmp(self.asm, stub);
                let field = self.asm.offset() - 4;
                debug_assert!(self.asm.buf[field - 1] == 0xe9 && (self.asm.base + field) % 4 == 0);
                let slot = slot as usize & 1;
                // A second use of the same slot is a verifier error; the last one wins.
                self.goto[slot] = Some((field, stub));
                return Ok(());
            }
            Op::ExitTb { reason } => {
                self.sync_globals()?;
                self.forget_all();
                self.emit_return(self.exit_code(ExitKind::Exit, reason));
                return Ok(());
            }
            Op::LookupAndGoto => {
                self.sync_globals()?;
                let pc = self.pc_offset.map(|offset| match self.global_reg(offset) {
                    Some(r) => lookup::Pc::Reg(r),
                    None => lookup::Pc::Env(offset),
                });
                self.forget_all();
                // rdx carries this block's Lookup exit code to the shared miss stub.
                let code = self.exit_code(ExitKind::Lookup, 0);
                lookup::lookup_and_goto(self.asm, pc, code);
                return Ok(());
            }
            Op::Fence => {
                self.asm.extend(&[0x0f, 0xae, 0xf0]); // mfence
                return Ok(());
            }
            Op::Mov { dst, src, .. } => self.lower_mov(i, dst, src)?,
            Op::Binary {
                op: bop,
                ty,
                dst,
                a,
                b,
            } => self.lower_binary(i, bop, ty, dst, a, b)?,
            Op::Unary {
                op: uop,
                ty,
                dst,
                src,
            } => self.lower_unary(i, uop, ty, dst, src)?,
            Op::Ext { from, ty, dst, src } => self.lower_ext(i, from, ty, dst, src)?,
            Op::Trunc { dst, src } => {
                self.lower_ext(i, ir::ExtFrom::U32, ir::Type::I32, dst, src)?
            }
            Op::Extract {
                ty,
                dst,
                src,
                pos,
                len,
                signed,
            } => self.lower_extract(i, ty, dst, src, pos, len, signed)?,
            Op::Deposit {
                ty,
                dst,
                base,
                val,
                pos,
                len,
            } => self.lower_deposit(i, ty, dst, base, val, pos, len)?,
            Op::SetCond {
                cond,
                ty,
                dst,
                a,
                b,
            } => self.lower_setcond(i, cond, ty, dst, a, b)?,
            Op::MovCond {
                cond,
                ty,
                dst,
                a,
                b,
                t,
                f,
            } => self.lower_movcond(i, cond, ty, dst, a, b, t, f)?,
            Op::Load {
                dst,
                addr,
                mop,
                mmu_idx,
            } => self.lower_guest_mem(i, false, dst, addr, mop, mmu_idx)?,
            Op::Store {
                val,
                addr,
                mop,
                mmu_idx,
            } => self.lower_guest_mem(i, true, val, addr, mop, mmu_idx)?,
            Op::EnvLoad { dst, offset, mop } => self.lower_env_load(dst, offset, mop)?,
            Op::EnvStore { val, offset, mop } => self.lower_env_store(val, offset, mop)?,
            Op::Call {
                helper,
                args,
                nargs,
                ret,
            } => self.lower_call(i, helper, &args[..nargs as usize], ret)?,
        }
        self.end_op(i, op)
    }

    /// Loads the operands of a comparison of `a` with `b` (locked), choosing an immediate
    /// where possible; [`Compiler::cmp_emit`] then emits the `cmp`/`test`. Split in two so that
    /// callers can place moves and stores between the loads and the flags.
    pub(crate) fn cmp_prepare(
        &mut self,
        cond: ir::Cond,
        ty: ir::Type,
        a: ir::Temp,
        b: ir::Temp,
    ) -> Result<Cmp, Fail> {
        let w64 = ty == ir::Type::I64;
        let tst = matches!(cond, ir::Cond::TstEq | ir::Cond::TstNe);
        let alu = if tst { Alu::Test } else { Alu::Cmp };
        let (ca, cb) = (self.block.const_value(a), self.block.const_value(b));
        let (a, b, cond, cb) = if ca.is_some() && cb.is_none() {
            (b, a, cond.swap(), ca)
        } else {
            (a, b, cond, cb)
        };
        let ra = self.use_reg(a)?;
        let rb = match cb {
            Some(v) if asm::fits_imm32(w64, v) => Err(v as i32),
            _ => Ok(self.use_reg(b)?),
        };
        Ok(Cmp {
            cc: Cc::of(cond),
            alu,
            w64,
            ra,
            rb,
        })
    }

    /// Emits the comparison prepared by [`Compiler::cmp_prepare`].
    pub(crate) fn cmp_emit(&mut self, c: &Cmp) {
        match c.rb {
            Ok(rb) => asm::alu_rr(self.asm, c.alu, c.w64, c.ra, rb),
            Err(imm) => asm::alu_ri(self.asm, c.alu, c.w64, c.ra, imm),
        }
    }

    fn lower_brcond(
        &mut self,
        _i: usize,
        cond: ir::Cond,
        ty: ir::Type,
        a: ir::Temp,
        b: ir::Temp,
        label: ir::Label,
    ) -> Result<(), Fail> {
        let target = self.labels[label.index()];
        if let (Some(x), Some(y)) = (self.block.const_value(a), self.block.const_value(b)) {
            self.sync_boundary()?;
            if cond.eval(ty, x, y) {
                asm::jmp(self.asm, target);
            }
            return Ok(());
        }
        // Operands first (loads may evict), then the stores, then the flags.
        let c = self.cmp_prepare(cond, ty, a, b)?;
        self.sync_boundary()?;
        self.cmp_emit(&c);
        asm::jcc(self.asm, c.cc, target);
        Ok(())
    }
}
