//! The block verifier: checks that a [`Block`] follows every rule the interpreter, the optimizer
//! and the backend rely on, and lists everything that is wrong (Cranelift-style: one error per
//! problem, each naming the op index and the op as printed).
//!
//! Frontends run it in debug builds after translating a block, and the optimizer's tests run it
//! after optimizing; a block that passes is one every consumer of the IR must handle.
//!
//! The checks, in the order they are made:
//!
//! **Temp table**
//! - temp 0 is [`Temp::ENV`] (kind `Env`, type I64) and no other temp is `Env`;
//! - temps `1..=globals.len()` are the globals in table order (same offset, type and index) and
//!   no other temp is a `Global`;
//! - constants fit their type (an I32 constant has no bits above 31);
//! - each global's offset is at least [`HEADER_SIZE`] (the header belongs to the generated-code
//!   ABI), naturally aligned for its type, and no two globals share a byte.
//!
//! **Each op**
//! - every temp index is in range (an op with a bad index gets no further checks);
//! - [`Temp::ENV`] is only a `Call` argument; constants and `ENV` are never written;
//! - operand types: `Mov`/`Binary`/`Unary`/`MovCond`: every operand and the destination have
//!   type `ty`; `Ext`: the destination has type `ty` (I64 for `S32`/`U32`), the source either
//!   type; `Trunc`: I32 from I64; `Extract`: source and destination `ty`; `Deposit`: base and
//!   destination `ty`, the value either type; `SetCond`/`BrCond`: both compared operands `ty`,
//!   a `SetCond` destination either type;
//! - `Extract`/`Deposit` fields: `1 <= len` and `pos + len <= ty.bits()`;
//! - `Load`/`Store`: the address has the block's `addr_type`; a loaded or stored temp is at
//!   least as wide as the access (an I32 temp takes at most 32 bits);
//! - `EnvLoad`/`EnvStore`: the same width rule; the field is naturally aligned, starts at or
//!   after [`HEADER_SIZE`] (header fields are the ABI's, not IR state) and overlaps no global
//!   (globals are accessed as temps, so the backend may hold them in registers);
//! - `Call`: `nargs <= MAX_CALL_ARGS`; a `PURE` helper has no other flag;
//! - `GotoTb` slot is 0 or 1, each slot at most once per block.
//!
//! **Labels and control flow**
//! - every label that is set or targeted is `< num_labels`; each targeted label is set exactly
//!   once (labels set but never targeted are fine, a label set twice is not);
//! - the block is not empty and its last op is a terminal;
//! - nothing but a `SetLabel` follows a `Br` or a terminal (such code could never run);
//! - a block has an `InsnStart` before the first op that may raise (the index recorded on an
//!   exception must name a real instruction).
//!
//! **Definitions before uses**
//! - a scratch temp is read only after being written in the same straight-line region: walking
//!   forward, every scratch temp becomes undefined at a `SetLabel` and after a `Br` or terminal
//!   (a `BrCond`'s fall-through keeps them);
//! - a local temp is read only after a write somewhere earlier in op order (a simple rule that
//!   every frontend pattern satisfies; it does not prove the write happens on every path).

use std::fmt;

use crate::abi::offsets::HEADER_SIZE;
use crate::op::{Op, MAX_CALL_ARGS};
use crate::types::{Label, Temp, TempKind, Type};
use crate::{format_op, Block, HelperFlags};

/// What is wrong; see the module docs for the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Temp 0 must be `ENV` of type I64, and only temp 0 may be `Env`.
    #[error("temp {0} has the wrong kind for its index (temp 0 is env, 1..=globals are the globals in order)")]
    BadTempTable(u32),
    /// A constant temp holds bits above its type.
    #[error("constant temp {0} has bits above its type")]
    ConstTooWide(u32),
    /// A global's offset is inside the ABI header.
    #[error("global {0} is inside the generated-code header")]
    GlobalInHeader(&'static str),
    /// A global is not naturally aligned.
    #[error("global {0} is not naturally aligned")]
    GlobalMisaligned(&'static str),
    /// Two globals share bytes of the CPU state.
    #[error("globals {0} and {1} overlap")]
    GlobalsOverlap(&'static str, &'static str),
    /// The block has no ops.
    #[error("the block is empty")]
    Empty,
    /// A temp index beyond the temp table.
    #[error("temp {0} is out of range")]
    TempOutOfRange(u32),
    /// `ENV` used other than as a call argument.
    #[error("env may only be a call argument")]
    EnvUse,
    /// A constant or `ENV` is written.
    #[error("temp {0} is a constant or env and cannot be written")]
    WritesReadOnly(u32),
    /// An operand or destination has the wrong type.
    #[error("temp {temp} has type {found}, the op needs {expected}")]
    TypeMismatch {
        /// The temp.
        temp: u32,
        /// What the op needs.
        expected: Type,
        /// What the temp is.
        found: Type,
    },
    /// An `Extract`/`Deposit` field that is empty or runs past the type.
    #[error("field pos {pos} len {len} does not fit {bits} bits")]
    BadField {
        /// First bit.
        pos: u8,
        /// Width.
        len: u8,
        /// Type width.
        bits: u32,
    },
    /// A memory access wider than the temp it loads into or stores from.
    #[error("a {access}-bit access does not fit temp {temp}")]
    AccessTooWide {
        /// Temp.
        temp: u32,
        /// Access width in bits.
        access: u32,
    },
    /// A CPU-state access that is misaligned.
    #[error("state offset {0:#x} is not naturally aligned")]
    EnvMisaligned(u32),
    /// A CPU-state access inside the header.
    #[error("state offset {0:#x} is inside the generated-code header")]
    EnvInHeader(u32),
    /// A CPU-state access that touches a global's bytes.
    #[error("state offset {offset:#x} overlaps global {global}")]
    EnvOverlapsGlobal {
        /// The access offset.
        offset: u32,
        /// The global.
        global: &'static str,
    },
    /// Too many call arguments.
    #[error("{0} call arguments, at most {MAX_CALL_ARGS}")]
    TooManyArgs(u8),
    /// A `PURE` helper with other flags.
    #[error("helper {0} is PURE and has other flags")]
    ImpureFlags(&'static str),
    /// A label index beyond `num_labels`.
    #[error("label L{} is out of range", .0 .0)]
    LabelOutOfRange(Label),
    /// A label set more than once.
    #[error("label L{} is set more than once", .0 .0)]
    LabelSetTwice(Label),
    /// A label targeted but never set.
    #[error("label L{} is targeted but never set", .0 .0)]
    LabelNeverSet(Label),
    /// The last op is not a terminal.
    #[error("the last op is not a terminal")]
    NoTerminal,
    /// An op after a `Br` or terminal that is not a `SetLabel`.
    #[error("unreachable: follows a br or a terminal without a label in between")]
    Unreachable,
    /// A scratch temp read before being written in its region.
    #[error("scratch temp {0} is read before being written since the last label or branch")]
    ScratchUndefined(u32),
    /// A local temp read before any write.
    #[error("local temp {0} is read before any write")]
    LocalUndefined(u32),
    /// A `GotoTb` slot other than 0 or 1.
    #[error("goto_tb slot {0} is not 0 or 1")]
    BadSlot(u8),
    /// A `GotoTb` slot used twice.
    #[error("goto_tb slot {0} is used more than once")]
    SlotReused(u8),
    /// An op that may raise before any `InsnStart`.
    #[error("may raise before the first insn_start")]
    RaiseBeforeInsnStart,
}

/// One problem: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the op in `block.ops`; `None` for problems of the block as a whole.
    pub index: Option<usize>,
    /// The op as [`format_op`] prints it (empty for block-level problems).
    pub op: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "op {i} `{}`: {}", self.op, self.kind),
            None => write!(f, "block: {}", self.kind),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Every problem found in a block, in op order (block-level ones first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl VerifyErrors {
    /// The kinds of the errors, for tests and quick matching.
    pub fn kinds(&self) -> impl Iterator<Item = &ErrorKind> {
        self.0.iter().map(|e| &e.kind)
    }
}

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} verifier error(s)", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}

/// Checks `block` against every rule in the module docs.
pub fn verify(block: &Block) -> Result<(), VerifyErrors> {
    let mut v = Verifier {
        block,
        errors: Vec::new(),
    };
    v.temp_table();
    v.ops();
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(VerifyErrors(v.errors))
    }
}

struct Verifier<'a> {
    block: &'a Block,
    errors: Vec<VerifyError>,
}

impl Verifier<'_> {
    fn block_error(&mut self, kind: ErrorKind) {
        self.errors.push(VerifyError {
            index: None,
            op: String::new(),
            kind,
        });
    }

    fn error(&mut self, index: usize, kind: ErrorKind) {
        let op = match self.block.ops[index] {
            // The printer slices the argument array; do not let it see a bad count.
            Op::Call { helper, nargs, .. } if nargs as usize > MAX_CALL_ARGS => {
                format!("call {}(<{nargs} arguments>)", helper.name)
            }
            ref op => format_op(self.block, op),
        };
        self.errors.push(VerifyError {
            index: Some(index),
            op,
            kind,
        });
    }

    fn temp_table(&mut self) {
        let b = self.block;
        let nglobals = b.globals.len();
        for (i, info) in b.temps.iter().enumerate() {
            let ok = match info.kind {
                TempKind::Env => i == 0 && info.ty == Type::I64,
                TempKind::Global { offset, index } => {
                    i >= 1
                        && i <= nglobals
                        && index as usize == i - 1
                        && b.globals[i - 1].offset == offset
                        && b.globals[i - 1].ty == info.ty
                }
                TempKind::Const(v) => {
                    if v & !info.ty.mask() != 0 {
                        self.block_error(ErrorKind::ConstTooWide(i as u32));
                    }
                    i > nglobals
                }
                TempKind::Local | TempKind::Scratch => i > nglobals,
            };
            if !ok {
                self.block_error(ErrorKind::BadTempTable(i as u32));
            }
        }
        if b.temps.len() <= nglobals {
            self.block_error(ErrorKind::BadTempTable(b.temps.len() as u32));
        }
        for (i, g) in b.globals.iter().enumerate() {
            let size = g.ty.bits() / 8;
            if g.offset < HEADER_SIZE {
                self.block_error(ErrorKind::GlobalInHeader(g.name));
            }
            if g.offset % size != 0 {
                self.block_error(ErrorKind::GlobalMisaligned(g.name));
            }
            for h in &b.globals[..i] {
                let hsize = h.ty.bits() / 8;
                if g.offset < h.offset + hsize && h.offset < g.offset + size {
                    self.block_error(ErrorKind::GlobalsOverlap(h.name, g.name));
                }
            }
        }
    }

    fn ops(&mut self) {
        let b = self.block;
        let ntemps = b.temps.len();
        if b.ops.is_empty() {
            self.block_error(ErrorKind::Empty);
            return;
        }
        if !b.ops.last().is_some_and(Op::is_terminal) {
            self.error(b.ops.len() - 1, ErrorKind::NoTerminal);
        }

        // Which labels are set (and where first) and which are targeted.
        let nlabels = b.num_labels as usize;
        let mut set = vec![false; nlabels];
        let mut targeted = vec![false; nlabels];
        // Scratch temps defined in the current region: stamp == region.
        let mut scratch_stamp = vec![0u32; ntemps];
        let mut region = 1u32;
        let mut local_written = vec![false; ntemps];
        let mut slots = [false; 2];
        let mut seen_insn_start = false;
        let mut after_barrier = false;

        for (i, op) in b.ops.iter().enumerate() {
            // Unreachable code.
            if after_barrier && !matches!(op, Op::SetLabel(_)) {
                self.error(i, ErrorKind::Unreachable);
            }
            after_barrier = op.is_barrier();

            // Argument counts and temp ranges first: the remaining checks slice the arguments
            // and index the temp table.
            if let Op::Call { nargs, .. } = *op {
                if nargs as usize > MAX_CALL_ARGS {
                    self.error(i, ErrorKind::TooManyArgs(nargs));
                    continue;
                }
            }
            let mut bad = None;
            op.for_each_use(|t| {
                if t.index() >= ntemps {
                    bad = Some(t);
                }
            });
            if let Some(d) = op.def() {
                if d.index() >= ntemps {
                    bad = Some(d);
                }
            }
            if let Some(t) = bad {
                self.error(i, ErrorKind::TempOutOfRange(t.0));
                continue;
            }

            // ENV and constants.
            if !matches!(op, Op::Call { .. }) {
                let mut env = false;
                op.for_each_use(|t| env |= b.temps[t.index()].kind == TempKind::Env);
                if env {
                    self.error(i, ErrorKind::EnvUse);
                }
            }
            if let Some(d) = op.def() {
                if matches!(b.temps[d.index()].kind, TempKind::Env | TempKind::Const(_)) {
                    self.error(i, ErrorKind::WritesReadOnly(d.0));
                }
            }

            self.op_rules(i, op);

            // Labels and slots.
            let label = match *op {
                Op::SetLabel(l) | Op::Br(l) | Op::BrCond { label: l, .. } => Some(l),
                _ => None,
            };
            let label = label.filter(|l| {
                let ok = l.index() < nlabels;
                if !ok {
                    self.error(i, ErrorKind::LabelOutOfRange(*l));
                }
                ok
            });
            match (op, label) {
                (Op::SetLabel(_), Some(l)) => {
                    if set[l.index()] {
                        self.error(i, ErrorKind::LabelSetTwice(l));
                    }
                    set[l.index()] = true;
                }
                (Op::Br(_) | Op::BrCond { .. }, Some(l)) => targeted[l.index()] = true,
                (&Op::GotoTb { slot }, _) => {
                    if slot > 1 {
                        self.error(i, ErrorKind::BadSlot(slot));
                    } else if slots[slot as usize] {
                        self.error(i, ErrorKind::SlotReused(slot));
                    } else {
                        slots[slot as usize] = true;
                    }
                }
                (Op::InsnStart { .. }, _) => seen_insn_start = true,
                _ => {}
            }
            if op.may_raise() && !seen_insn_start {
                self.error(i, ErrorKind::RaiseBeforeInsnStart);
            }

            // Definitions before uses.
            if matches!(op, Op::SetLabel(_)) {
                region += 1;
            }
            let mut undefined = Vec::new();
            op.for_each_use(|t| match b.temps[t.index()].kind {
                TempKind::Scratch if scratch_stamp[t.index()] != region => {
                    undefined.push(ErrorKind::ScratchUndefined(t.0))
                }
                TempKind::Local if !local_written[t.index()] => {
                    undefined.push(ErrorKind::LocalUndefined(t.0))
                }
                _ => {}
            });
            for kind in undefined {
                self.error(i, kind);
            }
            if let Some(d) = op.def() {
                scratch_stamp[d.index()] = region;
                local_written[d.index()] = true;
            }
            if op.is_barrier() {
                region += 1;
            }
        }

        for l in 0..nlabels {
            if targeted[l] && !set[l] {
                self.block_error(ErrorKind::LabelNeverSet(Label(l as u32)));
            }
        }
    }

    /// Types, fields, access widths and call shapes of one op whose temps are in range.
    fn op_rules(&mut self, i: usize, op: &Op) {
        let b = self.block;
        let mut errs = Vec::new();
        let mut expect = |t: Temp, ty: Type| {
            let found = b.ty(t);
            if found != ty {
                errs.push(ErrorKind::TypeMismatch {
                    temp: t.0,
                    expected: ty,
                    found,
                });
            }
        };
        match *op {
            Op::Mov { ty, dst, src } => {
                expect(dst, ty);
                expect(src, ty);
            }
            Op::Binary { ty, dst, a, b, .. } => {
                expect(dst, ty);
                expect(a, ty);
                expect(b, ty);
            }
            Op::Unary { ty, dst, src, .. } => {
                expect(dst, ty);
                expect(src, ty);
            }
            Op::Ext { from, ty, dst, .. } => {
                expect(dst, ty);
                if from.bits() == 32 {
                    expect(dst, Type::I64);
                }
            }
            Op::Trunc { dst, src } => {
                expect(dst, Type::I32);
                expect(src, Type::I64);
            }
            Op::Extract {
                ty,
                dst,
                src,
                pos,
                len,
                ..
            } => {
                expect(dst, ty);
                expect(src, ty);
                field(&mut errs, ty, pos, len);
            }
            Op::Deposit {
                ty,
                dst,
                base,
                pos,
                len,
                ..
            } => {
                expect(dst, ty);
                expect(base, ty);
                field(&mut errs, ty, pos, len);
            }
            Op::SetCond { ty, a, b, .. } | Op::BrCond { ty, a, b, .. } => {
                expect(a, ty);
                expect(b, ty);
            }
            Op::MovCond {
                ty,
                dst,
                a,
                b,
                t,
                f,
                ..
            } => {
                for x in [dst, a, b, t, f] {
                    expect(x, ty);
                }
            }
            Op::Load { dst, addr, mop, .. } => {
                expect(addr, b.addr_type);
                width(&mut errs, b, dst, mop.size.bits());
            }
            Op::Store { val, addr, mop, .. } => {
                expect(addr, b.addr_type);
                width(&mut errs, b, val, mop.size.bits());
            }
            Op::EnvLoad {
                dst: t,
                offset,
                mop,
            }
            | Op::EnvStore {
                val: t,
                offset,
                mop,
            } => {
                width(&mut errs, b, t, mop.size.bits());
                let size = mop.size.bytes();
                if offset % size != 0 {
                    errs.push(ErrorKind::EnvMisaligned(offset));
                }
                if offset < HEADER_SIZE {
                    errs.push(ErrorKind::EnvInHeader(offset));
                }
                for g in b.globals.iter() {
                    if offset < g.offset + g.ty.bits() / 8 && g.offset < offset + size {
                        errs.push(ErrorKind::EnvOverlapsGlobal {
                            offset,
                            global: g.name,
                        });
                    }
                }
            }
            Op::Call { helper, .. } => {
                if helper.flags.contains(HelperFlags::PURE) && helper.flags != HelperFlags::PURE {
                    errs.push(ErrorKind::ImpureFlags(helper.name));
                }
            }
            Op::SetLabel(_)
            | Op::Br(_)
            | Op::Fence
            | Op::InsnStart { .. }
            | Op::GotoTb { .. }
            | Op::ExitTb { .. }
            | Op::LookupAndGoto => {}
        }
        for kind in errs {
            self.error(i, kind);
        }
    }
}

fn field(errs: &mut Vec<ErrorKind>, ty: Type, pos: u8, len: u8) {
    if len == 0 || pos as u32 + len as u32 > ty.bits() {
        errs.push(ErrorKind::BadField {
            pos,
            len,
            bits: ty.bits(),
        });
    }
}

fn width(errs: &mut Vec<ErrorKind>, b: &Block, t: Temp, access: u32) {
    if access > b.ty(t).bits() {
        errs.push(ErrorKind::AccessTooWide { temp: t.0, access });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{BinOp, Builder, Cond, ExtFrom, GlobalDef, Helper, MemOp, Size, TempInfo};

    /// First 8-aligned offset after the header.
    const BASE: u32 = HEADER_SIZE.next_multiple_of(8);

    fn globals() -> Arc<[GlobalDef]> {
        Arc::from(vec![
            GlobalDef {
                name: "pc",
                ty: Type::I64,
                offset: BASE,
            },
            GlobalDef {
                name: "x1",
                ty: Type::I64,
                offset: BASE + 8,
            },
            GlobalDef {
                name: "w",
                ty: Type::I32,
                offset: BASE + 16,
            },
        ])
    }

    fn builder() -> Builder {
        let mut b = Builder::new(globals(), Type::I64);
        b.insn_start(0x1000, 0);
        b
    }

    unsafe extern "C" fn nop(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        0
    }
    static PURE_HELPER: Helper = Helper {
        name: "pure",
        func: nop,
        flags: HelperFlags::PURE,
    };
    static RAISING: Helper = Helper {
        name: "raising",
        func: nop,
        flags: HelperFlags::MAY_RAISE,
    };
    static MIXED: std::sync::LazyLock<Helper> = std::sync::LazyLock::new(|| Helper {
        name: "mixed",
        func: nop,
        flags: HelperFlags::PURE | HelperFlags::READS_GLOBALS,
    });

    /// Finishes `b` with `exit_tb 0` and returns the error kinds.
    fn errors_of(block: &Block) -> Vec<ErrorKind> {
        match verify(block) {
            Ok(()) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.kind).collect(),
        }
    }

    fn finish(mut b: Builder) -> Vec<ErrorKind> {
        b.exit_tb(0);
        errors_of(&b.finish())
    }

    fn assert_only(errors: Vec<ErrorKind>, expected: ErrorKind) {
        assert_eq!(errors, vec![expected]);
    }

    #[test]
    fn a_typical_block_passes() {
        let mut b = builder();
        let (pc, x1, w) = (b.global(0), b.global(1), b.global(2));
        let t = b.scratch(Type::I64);
        let l = b.local(Type::I32);
        b.load(t, x1, MemOp::signed(Size::B32), 0);
        b.trunc(l, t);
        let skip = b.new_label();
        let unused = b.new_label();
        b.brcondi(Cond::Eq, t, 0, skip);
        b.addi(x1, x1, 16);
        b.ext(ExtFrom::U32, x1, l);
        b.setcond(Cond::Ltu, w, x1, pc);
        b.set_label(unused);
        b.set_label(skip);
        b.add(w, w, l);
        b.extract(w, w, 3, 29, true);
        b.deposit(x1, x1, w, 32, 32);
        b.call(&RAISING, &[Temp::ENV, w], Some(pc));
        b.env_store(w, BASE + 32, MemOp::unsigned(Size::B16));
        b.movi(pc, 0x1004);
        let other = b.new_label();
        b.brcondi(Cond::Ne, w, 0, other);
        b.goto_tb(0);
        b.set_label(other);
        b.goto_tb(1);
        let block = b.finish();
        assert_eq!(verify(&block), Ok(()));
    }

    #[test]
    fn backward_branches_and_locals_across_labels_pass() {
        let mut b = builder();
        let i = b.local(Type::I64);
        b.movi(i, 10);
        let top = b.new_label();
        b.set_label(top);
        let t = b.scratch(Type::I64);
        b.addi(t, i, u64::MAX);
        b.mov(i, t);
        b.brcondi(Cond::Ne, i, 0, top);
        assert_eq!(finish(b), vec![]);
    }

    #[test]
    fn errors_name_the_op_index_and_text() {
        let mut b = builder();
        let t = b.scratch(Type::I64);
        b.mov(b.global(0), t);
        b.exit_tb(0);
        let err = verify(&b.finish()).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].index, Some(1));
        assert_eq!(err.0[0].op, "mov_i64 pc, tmp4");
        let text = err.to_string();
        assert!(
            text.contains("op 1 `mov_i64 pc, tmp4`: scratch temp 4"),
            "{text}"
        );
    }

    #[test]
    fn temps_must_be_in_range() {
        let mut b = builder();
        b.push(Op::Mov {
            ty: Type::I64,
            dst: b.global(0),
            src: Temp(99),
        });
        assert_only(finish(b), ErrorKind::TempOutOfRange(99));
    }

    #[test]
    fn env_is_only_a_call_argument() {
        let mut b = builder();
        b.push(Op::Mov {
            ty: Type::I64,
            dst: b.global(0),
            src: Temp::ENV,
        });
        assert_only(finish(b), ErrorKind::EnvUse);
    }

    #[test]
    fn constants_and_env_are_never_written() {
        let mut b = builder();
        let c = b.constant(Type::I64, 1);
        b.mov(c, b.global(0));
        assert_only(finish(b), ErrorKind::WritesReadOnly(c.0));
        let mut b = builder();
        b.push(Op::Mov {
            ty: Type::I64,
            dst: Temp::ENV,
            src: b.global(0),
        });
        let errors = finish(b);
        assert!(errors.contains(&ErrorKind::WritesReadOnly(0)), "{errors:?}");
    }

    #[test]
    fn the_temp_table_starts_with_env_and_the_globals() {
        let mut b = builder();
        b.exit_tb(0);
        let mut block = b.finish();
        block.temps[2] = TempInfo {
            ty: Type::I64,
            kind: TempKind::Local,
        };
        assert_eq!(errors_of(&block), vec![ErrorKind::BadTempTable(2)]);
        let mut block2 = block.clone();
        block2.temps[2] = block2.temps[1];
        assert_eq!(errors_of(&block2), vec![ErrorKind::BadTempTable(2)]);
        block.temps[2] = TempInfo {
            ty: Type::I64,
            kind: TempKind::Env,
        };
        assert_eq!(errors_of(&block), vec![ErrorKind::BadTempTable(2)]);
    }

    #[test]
    fn constants_fit_their_type() {
        let mut b = builder();
        b.exit_tb(0);
        let mut block = b.finish();
        block.temps.push(TempInfo {
            ty: Type::I32,
            kind: TempKind::Const(1 << 32),
        });
        assert_eq!(errors_of(&block), vec![ErrorKind::ConstTooWide(4)]);
    }

    fn block_with_globals(globals: Vec<GlobalDef>) -> Vec<ErrorKind> {
        let mut b = Builder::new(Arc::from(globals), Type::I64);
        b.exit_tb(0);
        errors_of(&b.finish())
    }

    #[test]
    fn globals_are_outside_the_header_aligned_and_disjoint() {
        let g = |name, ty, offset| GlobalDef { name, ty, offset };
        assert_eq!(
            block_with_globals(vec![g("a", Type::I64, 0)]),
            vec![ErrorKind::GlobalInHeader("a")]
        );
        assert_eq!(
            block_with_globals(vec![g("a", Type::I64, BASE + 4)]),
            vec![ErrorKind::GlobalMisaligned("a")]
        );
        assert_eq!(
            block_with_globals(vec![g("a", Type::I64, BASE), g("b", Type::I32, BASE + 4)]),
            vec![ErrorKind::GlobalsOverlap("a", "b")]
        );
        assert_eq!(
            block_with_globals(vec![g("a", Type::I32, BASE), g("b", Type::I32, BASE + 4)]),
            vec![]
        );
    }

    #[test]
    fn mov_binary_unary_and_movcond_operands_have_the_op_type() {
        let mut b = builder();
        let (x1, w) = (b.global(1), b.global(2));
        b.push(Op::Binary {
            op: BinOp::Add,
            ty: Type::I64,
            dst: x1,
            a: x1,
            b: w,
        });
        let mismatch = ErrorKind::TypeMismatch {
            temp: w.0,
            expected: Type::I64,
            found: Type::I32,
        };
        assert_only(finish(b), mismatch.clone());
        let mut b = builder();
        b.push(Op::Mov {
            ty: Type::I64,
            dst: x1,
            src: w,
        });
        assert_only(finish(b), mismatch.clone());
        let mut b = builder();
        b.push(Op::Unary {
            op: crate::UnOp::Not,
            ty: Type::I64,
            dst: w,
            src: x1,
        });
        assert_only(finish(b), mismatch.clone());
        let mut b = builder();
        b.movcond(Cond::Eq, x1, x1, x1, x1, w);
        assert_only(finish(b), mismatch);
    }

    #[test]
    fn ext_destination_type_and_32_bit_sources() {
        let mut b = builder();
        let (x1, w) = (b.global(1), b.global(2));
        b.ext(ExtFrom::U8, w, x1); // i64 source into i32: fine
        b.ext(ExtFrom::S32, w, x1);
        assert_only(
            finish(b),
            ErrorKind::TypeMismatch {
                temp: w.0,
                expected: Type::I64,
                found: Type::I32,
            },
        );
    }

    #[test]
    fn trunc_goes_from_i64_to_i32() {
        let mut b = builder();
        let w = b.global(2);
        b.trunc(w, w);
        assert_only(
            finish(b),
            ErrorKind::TypeMismatch {
                temp: w.0,
                expected: Type::I64,
                found: Type::I32,
            },
        );
    }

    #[test]
    fn setcond_and_brcond_compare_values_of_their_type() {
        let mut b = builder();
        let (x1, w) = (b.global(1), b.global(2));
        b.setcond(Cond::Eq, w, x1, x1); // i32 result of an i64 compare: fine
        b.push(Op::SetCond {
            cond: Cond::Eq,
            ty: Type::I64,
            dst: x1,
            a: x1,
            b: w,
        });
        let l = b.new_label();
        b.push(Op::BrCond {
            cond: Cond::Eq,
            ty: Type::I32,
            a: x1,
            b: w,
            label: l,
        });
        b.set_label(l);
        assert_eq!(
            finish(b),
            vec![
                ErrorKind::TypeMismatch {
                    temp: w.0,
                    expected: Type::I64,
                    found: Type::I32,
                },
                ErrorKind::TypeMismatch {
                    temp: x1.0,
                    expected: Type::I32,
                    found: Type::I64,
                },
            ]
        );
    }

    #[test]
    fn extract_and_deposit_fields_fit_the_type() {
        let mut b = builder();
        let (x1, w) = (b.global(1), b.global(2));
        b.extract(x1, x1, 0, 64, false);
        b.deposit(x1, x1, w, 32, 32); // an i32 value into an i64 base: fine
        b.extract(w, w, 16, 17, false);
        b.deposit(x1, x1, x1, 3, 0);
        assert_eq!(
            finish(b),
            vec![
                ErrorKind::BadField {
                    pos: 16,
                    len: 17,
                    bits: 32
                },
                ErrorKind::BadField {
                    pos: 3,
                    len: 0,
                    bits: 64
                },
            ]
        );
    }

    #[test]
    fn memory_addresses_have_the_address_type_and_values_fit_the_access() {
        let mut b = builder();
        let (x1, w) = (b.global(1), b.global(2));
        b.load(w, x1, MemOp::signed(Size::B32), 0);
        b.store(w, x1, MemOp::unsigned(Size::B16), 0);
        b.load(w, x1, MemOp::unsigned(Size::B64), 0);
        b.store(x1, w, MemOp::unsigned(Size::B64), 0);
        assert_eq!(
            finish(b),
            vec![
                ErrorKind::AccessTooWide {
                    temp: w.0,
                    access: 64
                },
                ErrorKind::TypeMismatch {
                    temp: w.0,
                    expected: Type::I64,
                    found: Type::I32
                },
            ]
        );
    }

    #[test]
    fn state_accesses_avoid_the_header_and_the_globals() {
        let mut b = builder();
        let (x1, w) = (b.global(1), b.global(2));
        b.env_load(x1, BASE + 24, MemOp::unsigned(Size::B64));
        b.env_store(w, BASE + 20, MemOp::unsigned(Size::B32));
        b.env_store(w, 8, MemOp::unsigned(Size::B32));
        b.env_load(x1, BASE + 26, MemOp::unsigned(Size::B32));
        b.env_load(x1, BASE + 16, MemOp::unsigned(Size::B16));
        b.env_store(w, BASE + 32, MemOp::unsigned(Size::B64));
        assert_eq!(
            finish(b),
            vec![
                ErrorKind::EnvInHeader(8),
                ErrorKind::EnvMisaligned(BASE + 26),
                ErrorKind::EnvOverlapsGlobal {
                    offset: BASE + 16,
                    global: "w"
                },
                ErrorKind::AccessTooWide {
                    temp: w.0,
                    access: 64
                },
            ]
        );
    }

    #[test]
    fn calls_take_at_most_six_arguments_and_pure_excludes_other_flags() {
        let mut b = builder();
        b.push(Op::Call {
            helper: &PURE_HELPER,
            args: [Temp::ENV; MAX_CALL_ARGS],
            nargs: 7,
            ret: None,
        });
        b.call(&PURE_HELPER, &[Temp::ENV; 6], Some(b.global(2)));
        assert_only(finish(b), ErrorKind::TooManyArgs(7));
        let mut b = builder();
        b.call(&MIXED, &[], None);
        assert_only(finish(b), ErrorKind::ImpureFlags("mixed"));
    }

    #[test]
    fn labels_are_in_range_and_set_exactly_once() {
        let mut b = builder();
        b.br(Label(3));
        assert!(finish(b).contains(&ErrorKind::LabelOutOfRange(Label(3))));
        let mut b = builder();
        let l = b.new_label();
        b.brcondi(Cond::Eq, b.global(0), 0, l);
        b.set_label(l);
        b.set_label(l);
        assert_only(finish(b), ErrorKind::LabelSetTwice(l));
        let mut b = builder();
        let l = b.new_label();
        b.brcondi(Cond::Eq, b.global(0), 0, l);
        assert_only(finish(b), ErrorKind::LabelNeverSet(l));
    }

    #[test]
    fn the_last_op_is_a_terminal() {
        let mut b = builder();
        b.movi(b.global(0), 1);
        assert_only(errors_of(&b.finish()), ErrorKind::NoTerminal);
        let b = Builder::new(globals(), Type::I64).finish();
        assert_only(errors_of(&b), ErrorKind::Empty);
    }

    #[test]
    fn nothing_but_a_label_follows_a_branch_or_terminal() {
        let mut b = builder();
        let l = b.new_label();
        b.br(l);
        b.movi(b.global(0), 1);
        b.set_label(l);
        assert_only(finish(b), ErrorKind::Unreachable);
        let mut b = builder();
        b.goto_tb(0);
        b.insn_start(0x1004, 0);
        assert_only(finish(b), ErrorKind::Unreachable);
        // Several terminals separated by labels are fine.
        let mut b = builder();
        let l = b.new_label();
        b.brcondi(Cond::Eq, b.global(0), 0, l);
        b.goto_tb(0);
        b.set_label(l);
        assert_eq!(finish(b), vec![]);
    }

    #[test]
    fn scratch_temps_die_at_labels_and_after_branches() {
        let mut b = builder();
        let t = b.scratch(Type::I64);
        b.movi(t, 1);
        let l = b.new_label();
        b.brcondi(Cond::Eq, b.global(0), 0, l);
        b.mov(b.global(0), t); // fall-through keeps t
        b.set_label(l);
        b.mov(b.global(1), t);
        assert_only(finish(b), ErrorKind::ScratchUndefined(t.0));

        let mut b = builder();
        let t = b.scratch(Type::I64);
        b.add(t, t, t);
        assert_eq!(
            finish(b),
            vec![
                ErrorKind::ScratchUndefined(t.0),
                ErrorKind::ScratchUndefined(t.0)
            ]
        );
    }

    #[test]
    fn locals_are_written_before_being_read() {
        let mut b = builder();
        let l = b.local(Type::I64);
        let lab = b.new_label();
        b.set_label(lab);
        b.mov(b.global(0), l);
        b.movi(l, 3);
        b.brcondi(Cond::Eq, b.global(0), 0, lab);
        assert_only(finish(b), ErrorKind::LocalUndefined(l.0));
    }

    #[test]
    fn goto_tb_slots_are_0_or_1_and_used_once() {
        let mut b = builder();
        b.goto_tb(2);
        assert_only(errors_of(&b.finish()), ErrorKind::BadSlot(2));
        let mut b = builder();
        let l = b.new_label();
        b.brcondi(Cond::Eq, b.global(0), 0, l);
        b.goto_tb(1);
        b.set_label(l);
        b.goto_tb(1);
        assert_only(errors_of(&b.finish()), ErrorKind::SlotReused(1));
    }

    #[test]
    fn an_insn_start_precedes_the_first_op_that_may_raise() {
        let mut b = Builder::new(globals(), Type::I64);
        b.movi(b.global(0), 1); // cannot raise: fine before any insn_start
        b.call(&RAISING, &[], None);
        b.insn_start(0x1000, 0);
        b.load(b.global(1), b.global(0), MemOp::unsigned(Size::B8), 0);
        assert_only(finish(b), ErrorKind::RaiseBeforeInsnStart);
    }

    #[test]
    fn every_problem_is_reported() {
        let mut b = builder();
        let t = b.scratch(Type::I64);
        b.mov(b.global(2), t);
        b.goto_tb(5);
        b.movi(b.global(0), 0);
        let errors = errors_of(&b.finish());
        assert_eq!(errors.len(), 5, "{errors:?}");
    }
}
