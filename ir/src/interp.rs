//! The reference interpreter: what every op means, and the engine on hosts without a backend.
//!
//! The interpreter runs one [`Block`] over a CPU state (an [`EnvHeader`] followed by the
//! frontend's fields) and returns the same [`ExitCode`] the compiled block would. The JIT is
//! tested against it (see `ir::testing`), so it stays deliberately plain: every arithmetic op is
//! the `eval` functions of [`crate::BinOp`] and its siblings, temps live in a `Vec<u64>`, globals are read from and
//! written to the CPU state at their offsets on every use (so helpers and exceptions always see
//! the current value without any syncing), and guest memory goes through [`GuestMemory`].
//!
//! What the interpreter does *not* do: it never tests [`EnvHeader::exit_request`] (the engine
//! does between blocks; guest loops inside a block are bounded by the guest code), and it does
//! not follow `GotoTb` chains or call the lookup function — it returns to its caller, which
//! dispatches the next block itself.
//!
//! Instruction indexes are *static*: an op belongs to the instruction of the last `InsnStart`
//! that precedes it in the op list, whatever path reached it, exactly as generated code records
//! it. A jump to a label therefore restores the index of the label's position.

use crate::abi::{EnvHeader, ExitCode, ExitKind};
use crate::op::{deposit, extract, Op};
use crate::types::{MemOp, Size, Temp, TempKind, Type};
use crate::{Block, HelperFlags};

/// Returned by a [`GuestMemory`] access that raised a guest exception. The memory has already
/// recorded the exception in the CPU state and set [`EnvHeader::unwind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the guest memory access raised a guest exception")]
pub struct Raised;

/// Guest memory as the interpreter sees it: the interpreter's equivalent of the softmmu fast
/// path plus the `load_slow`/`store_slow` calls of generated code. An engine implements it once
/// and shares the code with its slow-path functions, so that both engines behave the same.
pub trait GuestMemory {
    /// A guest load of `mop.size` bytes at `addr` (already truncated to the block's address
    /// type) in MMU mode `mmu_idx`, for the block the engine calls `block_id`. Returns the
    /// loaded value; only its low `mop.size` bytes are used (the interpreter extends them).
    ///
    /// `Err(Raised)` when the access raised a guest exception: the implementation has recorded
    /// it in the CPU state and set [`EnvHeader::unwind`].
    ///
    /// # Safety
    /// `env` is the CPU-state pointer given to [`Interpreter::run`], valid for the whole state.
    unsafe fn load(
        &mut self,
        env: *mut u8,
        addr: u64,
        mop: MemOp,
        mmu_idx: u8,
        block_id: u32,
    ) -> Result<u64, Raised>;

    /// A guest store of the low `mop.size` bytes of `val` at `addr`. Same conventions as
    /// [`GuestMemory::load`].
    ///
    /// # Safety
    /// As for [`GuestMemory::load`].
    unsafe fn store(
        &mut self,
        env: *mut u8,
        addr: u64,
        val: u64,
        mop: MemOp,
        mmu_idx: u8,
        block_id: u32,
    ) -> Result<(), Raised>;
}

/// Where a temp's value is: in the interpreter's value buffer (locals, scratch temps,
/// constants and [`Temp::ENV`], whose "value" is the state pointer), or in a CPU-state field.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Val,
    Global32(u32),
    Global64(u32),
}

/// Where a label is: the index of its `SetLabel` op and the number of `InsnStart`s before it.
#[derive(Debug, Clone, Copy)]
struct LabelPos {
    op: u32,
    insns: u32,
}

const UNPLACED: LabelPos = LabelPos {
    op: u32::MAX,
    insns: 0,
};

/// The interpreter, holding scratch buffers reused from one [`Interpreter::run`] to the next
/// (keep one per vCPU thread).
#[derive(Debug, Default)]
pub struct Interpreter {
    vals: Vec<u64>,
    locs: Vec<Loc>,
    labels: Vec<LabelPos>,
}

/// The values of one run: the temps buffer and the CPU state.
struct Frame<'a> {
    vals: &'a mut [u64],
    locs: &'a [Loc],
    env: *mut u8,
}

impl Frame<'_> {
    #[inline(always)]
    fn get(&self, t: Temp) -> u64 {
        let i = t.index();
        match self.locs[i] {
            Loc::Val => self.vals[i],
            Loc::Global32(off) => {
                let p = self.env.wrapping_add(off as usize).cast::<u32>();
                // SAFETY: `Interpreter::run`'s contract: `env` is valid for reads and writes
                // of every global field of the block.
                (unsafe { p.read_unaligned() }) as u64
            }
            Loc::Global64(off) => {
                let p = self.env.wrapping_add(off as usize).cast::<u64>();
                // SAFETY: as above.
                unsafe { p.read_unaligned() }
            }
        }
    }

    /// Writes `v`, already masked to the temp's type.
    #[inline(always)]
    fn set(&mut self, t: Temp, v: u64) {
        let i = t.index();
        match self.locs[i] {
            Loc::Val => self.vals[i] = v,
            Loc::Global32(off) => {
                let p = self.env.wrapping_add(off as usize).cast::<u32>();
                // SAFETY: as in `get`; an I32 global is a 4-byte field.
                unsafe { p.write_unaligned(v as u32) }
            }
            Loc::Global64(off) => {
                let p = self.env.wrapping_add(off as usize).cast::<u64>();
                // SAFETY: as in `get`.
                unsafe { p.write_unaligned(v) }
            }
        }
    }

    /// Reads `size` bytes of the CPU state at `offset` (an `EnvLoad`), zero-extended.
    fn env_read(&self, offset: u32, size: Size) -> u64 {
        let p = self.env.wrapping_add(offset as usize);
        // The SAFETY of all four: `Interpreter::run`'s contract: the state is large enough for
        // every EnvLoad/EnvStore of the block; the reads are unaligned ones.
        match size {
            // SAFETY: see above.
            Size::B8 => (unsafe { p.read() }) as u64,
            // SAFETY: see above.
            Size::B16 => (unsafe { p.cast::<u16>().read_unaligned() }) as u64,
            // SAFETY: see above.
            Size::B32 => (unsafe { p.cast::<u32>().read_unaligned() }) as u64,
            // SAFETY: see above.
            Size::B64 => unsafe { p.cast::<u64>().read_unaligned() },
        }
    }

    /// Writes the low `size` bytes of `v` to the CPU state at `offset` (an `EnvStore`).
    fn env_write(&mut self, offset: u32, size: Size, v: u64) {
        let p = self.env.wrapping_add(offset as usize);
        match size {
            // SAFETY: as in `env_read`.
            Size::B8 => unsafe { p.write(v as u8) },
            // SAFETY: as in `env_read`.
            Size::B16 => unsafe { p.cast::<u16>().write_unaligned(v as u16) },
            // SAFETY: as in `env_read`.
            Size::B32 => unsafe { p.cast::<u32>().write_unaligned(v as u32) },
            // SAFETY: as in `env_read`.
            Size::B64 => unsafe { p.cast::<u64>().write_unaligned(v) },
        }
    }

    fn header(&self) -> *mut EnvHeader {
        self.env.cast::<EnvHeader>()
    }

    fn set_insn_index(&mut self, index: u32) {
        // SAFETY: the state starts with an `EnvHeader` (`run`'s contract).
        unsafe { (*self.header()).insn_index = index }
    }

    fn unwind(&self) -> u32 {
        // SAFETY: as in `set_insn_index`.
        unsafe { (*self.header()).unwind }
    }
}

impl Interpreter {
    /// An interpreter with empty buffers.
    pub fn new() -> Interpreter {
        Interpreter::default()
    }

    /// Fills the buffers for `block`: constants, locations of globals, label positions.
    fn prepare(&mut self, block: &Block, env: *mut u8) {
        self.vals.clear();
        self.locs.clear();
        for info in &block.temps {
            let (val, loc) = match info.kind {
                TempKind::Env => (env as u64, Loc::Val),
                TempKind::Global { offset, .. } => match info.ty {
                    Type::I32 => (0, Loc::Global32(offset)),
                    Type::I64 => (0, Loc::Global64(offset)),
                },
                TempKind::Const(v) => (v & info.ty.mask(), Loc::Val),
                // Never read before written in a valid block; zero keeps runs deterministic.
                TempKind::Local | TempKind::Scratch => (0, Loc::Val),
            };
            self.vals.push(val);
            self.locs.push(loc);
        }
        self.labels.clear();
        self.labels.resize(block.num_labels as usize, UNPLACED);
        let mut insns = 0u32;
        for (i, op) in block.ops.iter().enumerate() {
            match *op {
                Op::InsnStart { .. } => insns += 1,
                Op::SetLabel(l) => {
                    if let Some(pos) = self.labels.get_mut(l.index()) {
                        debug_assert!(pos.op == u32::MAX, "label {} placed twice", l.0);
                        *pos = LabelPos {
                            op: i as u32,
                            insns,
                        };
                    } else {
                        debug_assert!(false, "label {} out of range", l.0);
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs `block` once and returns how it left.
    ///
    /// `block` should have passed the verifier; on a malformed block the interpreter may panic
    /// with a message naming the problem (a branch to a label that is never placed, ops
    /// running past the end without a terminal, temps out of range).
    ///
    /// # Safety
    /// `env` points to a CPU state that starts with an [`EnvHeader`] and is valid for reads and
    /// writes (for the whole run, with no other live reference to it) at every global's offset
    /// (4 bytes for I32 globals, 8 for I64) and at every `EnvLoad`/`EnvStore` offset of the
    /// block for the access size. The helpers the block calls must be safe to call with the
    /// block's arguments and `env`.
    pub unsafe fn run(
        &mut self,
        block: &Block,
        env: *mut u8,
        mem: &mut dyn GuestMemory,
        block_id: u32,
    ) -> ExitCode {
        self.prepare(block, env);
        let labels = &self.labels[..];
        let mut f = Frame {
            vals: &mut self.vals,
            locs: &self.locs,
            env,
        };
        let addr_mask = block.addr_type.mask();
        let mask_of = |t: Temp| block.temps[t.index()].ty.mask();
        let exit = |kind: ExitKind, payload: u32| ExitCode {
            block_id,
            kind,
            payload: payload & 0xff_ffff,
        };
        let ops = &block.ops[..];
        // Index of the next op, and the number of InsnStarts before it in the op list.
        let mut pc = 0usize;
        let mut insns = 0u32;
        loop {
            let Some(op) = ops.get(pc) else {
                panic!("interpreter: block ran past its last op without a terminal");
            };
            pc += 1;
            match *op {
                Op::Mov { ty, dst, src } => {
                    let v = f.get(src) & ty.mask();
                    f.set(dst, v);
                }
                Op::Binary { op, ty, dst, a, b } => {
                    let v = op.eval(ty, f.get(a), f.get(b));
                    f.set(dst, v);
                }
                Op::Unary { op, ty, dst, src } => {
                    let v = op.eval(ty, f.get(src));
                    f.set(dst, v);
                }
                Op::Ext { from, ty, dst, src } => {
                    let v = from.eval(ty, f.get(src));
                    f.set(dst, v);
                }
                Op::Trunc { dst, src } => {
                    let v = f.get(src) & Type::I32.mask();
                    f.set(dst, v);
                }
                Op::Extract {
                    ty,
                    dst,
                    src,
                    pos,
                    len,
                    signed,
                } => {
                    let v = extract(ty, f.get(src), pos, len, signed);
                    f.set(dst, v);
                }
                Op::Deposit {
                    ty,
                    dst,
                    base,
                    val,
                    pos,
                    len,
                } => {
                    let v = deposit(ty, f.get(base), f.get(val), pos, len);
                    f.set(dst, v);
                }
                Op::SetCond {
                    cond,
                    ty,
                    dst,
                    a,
                    b,
                } => {
                    let v = cond.eval(ty, f.get(a), f.get(b)) as u64;
                    f.set(dst, v);
                }
                Op::MovCond {
                    cond,
                    ty,
                    dst,
                    a,
                    b,
                    t,
                    f: fv,
                } => {
                    let pick = if cond.eval(ty, f.get(a), f.get(b)) {
                        t
                    } else {
                        fv
                    };
                    let v = f.get(pick) & ty.mask();
                    f.set(dst, v);
                }
                Op::SetLabel(_) | Op::Fence => {
                    if matches!(op, Op::Fence) {
                        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                    }
                }
                Op::Br(label) => {
                    let pos = jump(labels, label.index());
                    pc = pos.op as usize;
                    insns = pos.insns;
                }
                Op::BrCond {
                    cond,
                    ty,
                    a,
                    b,
                    label,
                } => {
                    if cond.eval(ty, f.get(a), f.get(b)) {
                        let pos = jump(labels, label.index());
                        pc = pos.op as usize;
                        insns = pos.insns;
                    }
                }
                Op::Load {
                    dst,
                    addr,
                    mop,
                    mmu_idx,
                } => {
                    let a = f.get(addr) & addr_mask;
                    f.set_insn_index(insns.saturating_sub(1));
                    // SAFETY: `env` is the state pointer of this run (our own contract).
                    match unsafe { mem.load(env, a, mop, mmu_idx, block_id) } {
                        Ok(raw) => {
                            let v = mop.extend(raw) & mask_of(dst);
                            f.set(dst, v);
                        }
                        Err(Raised) => return exit(ExitKind::Unwind, 0),
                    }
                }
                Op::Store {
                    val,
                    addr,
                    mop,
                    mmu_idx,
                } => {
                    let a = f.get(addr) & addr_mask;
                    let v = f.get(val);
                    f.set_insn_index(insns.saturating_sub(1));
                    // SAFETY: as for loads.
                    if let Err(Raised) = unsafe { mem.store(env, a, v, mop, mmu_idx, block_id) } {
                        return exit(ExitKind::Unwind, 0);
                    }
                }
                Op::EnvLoad { dst, offset, mop } => {
                    let raw = f.env_read(offset, mop.size);
                    let v = mop.extend(raw) & mask_of(dst);
                    f.set(dst, v);
                }
                Op::EnvStore { val, offset, mop } => {
                    let v = f.get(val);
                    f.env_write(offset, mop.size, v);
                }
                Op::Call {
                    helper,
                    args,
                    nargs,
                    ret,
                } => {
                    let n = nargs as usize;
                    let arg = |i: usize| if i < n { f.get(args[i]) } else { 0 };
                    let a = [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)];
                    let may_raise = helper.flags.contains(HelperFlags::MAY_RAISE);
                    if may_raise {
                        f.set_insn_index(insns.saturating_sub(1));
                    }
                    // SAFETY: `run`'s contract: the block's helpers accept these arguments.
                    let r = unsafe { (helper.func)(a[0], a[1], a[2], a[3], a[4], a[5]) };
                    if may_raise && f.unwind() != 0 {
                        // The result of a raising call is not written: the destination keeps
                        // the value it had when the call started.
                        return exit(ExitKind::Unwind, 0);
                    }
                    if let Some(ret) = ret {
                        let v = r & mask_of(ret);
                        f.set(ret, v);
                    }
                }
                Op::InsnStart { .. } => insns += 1,
                Op::GotoTb { slot } => {
                    debug_assert!(slot < 2, "goto_tb slot {slot}");
                    let kind = if slot == 0 {
                        ExitKind::GotoTb0
                    } else {
                        ExitKind::GotoTb1
                    };
                    return exit(kind, 0);
                }
                Op::ExitTb { reason } => return exit(ExitKind::Exit, reason),
                Op::LookupAndGoto => return exit(ExitKind::Lookup, 0),
            }
        }
    }
}

/// The position of label `l`; panics on a label that is out of range or never placed (the
/// verifier rejects both).
#[inline]
fn jump(labels: &[LabelPos], l: usize) -> LabelPos {
    match labels.get(l) {
        Some(&pos) if pos.op != u32::MAX => pos,
        _ => panic!("interpreter: branch to label {l}, which the block never places"),
    }
}

/// Runs `block` with a fresh [`Interpreter`] (convenient in tests; engines keep one).
///
/// # Safety
/// As for [`Interpreter::run`].
pub unsafe fn run(
    block: &Block,
    env: *mut u8,
    mem: &mut dyn GuestMemory,
    block_id: u32,
) -> ExitCode {
    // SAFETY: forwarded contract.
    unsafe { Interpreter::new().run(block, env, mem, block_id) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{LoadSlowFn, LookupFn, StoreSlowFn, TlbFast, MMU_MODES};
    use crate::op::{BinOp, ExtFrom, UnOp};
    use crate::types::{Cond, GlobalDef};
    use crate::{Builder, Helper};
    use std::mem::offset_of;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    /// A small CPU state: the header, four globals (g0 I64, g1 I32, g2 I64, g3 I32, one per
    /// 8-byte slot so that writes past an I32 field show), and a few non-global fields.
    #[repr(C)]
    struct Env {
        h: EnvHeader,
        g: [u64; 4],
        field: [u64; 2],
        /// Set by the raising helper.
        raised_arg: u64,
    }

    unsafe extern "C" fn no_slow(_: u64, _: u64, _: u64, _: u64) -> u64 {
        unreachable!("the interpreter never calls the slow paths")
    }
    unsafe extern "C" fn no_lookup(_: u64) -> u64 {
        unreachable!("the interpreter never calls the lookup")
    }

    impl Env {
        fn new() -> Box<Env> {
            Box::new(Env {
                h: EnvHeader {
                    exit_request: AtomicU32::new(0),
                    unwind: 0,
                    insn_index: 0xffff,
                    reserved: 0,
                    load_slow: no_slow as LoadSlowFn,
                    store_slow: no_slow as StoreSlowFn,
                    lookup: no_lookup as LookupFn,
                    tlb: [TlbFast {
                        mask: 0,
                        table: std::ptr::null_mut(),
                    }; MMU_MODES],
                    opaque: std::ptr::null_mut(),
                    jump_probe: std::ptr::null(),
                },
                g: [0; 4],
                field: [0; 2],
                raised_arg: 0,
            })
        }
    }

    const G: usize = offset_of!(Env, g);
    const FIELD: u32 = offset_of!(Env, field) as u32;

    fn globals() -> Arc<[GlobalDef]> {
        let tys = [Type::I64, Type::I32, Type::I64, Type::I32];
        let names = ["g0", "g1", "g2", "g3"];
        (0..4)
            .map(|i| GlobalDef {
                name: names[i],
                ty: tys[i],
                offset: (G + 8 * i) as u32,
            })
            .collect()
    }

    /// Guest RAM of 0x100 bytes at 0x1000; accesses at 0x1080..0x1090 fault. Records the
    /// header's instruction index at every access, to check it is set before the access.
    struct Mem {
        bytes: Vec<u8>,
        seen_insn: Vec<u32>,
        seen_block: Vec<u32>,
    }

    const BASE: u64 = 0x1000;

    impl Mem {
        fn new() -> Mem {
            Mem {
                bytes: (0..0x100u32).map(|i| i as u8).collect(),
                seen_insn: Vec::new(),
                seen_block: Vec::new(),
            }
        }

        fn check(&mut self, env: *mut u8, addr: u64, size: Size, block_id: u32) -> Option<usize> {
            // SAFETY: the tests pass the `Env` they own.
            self.seen_insn
                .push(unsafe { (*env.cast::<EnvHeader>()).insn_index });
            self.seen_block.push(block_id);
            let off = addr.wrapping_sub(BASE);
            let end = off + size.bytes() as u64;
            if end > 0x100 || (off < 0x90 && end > 0x80) {
                // SAFETY: as above.
                unsafe { (*env.cast::<EnvHeader>()).unwind = 1 };
                return None;
            }
            Some(off as usize)
        }
    }

    impl GuestMemory for Mem {
        unsafe fn load(
            &mut self,
            env: *mut u8,
            addr: u64,
            mop: MemOp,
            _mmu_idx: u8,
            block_id: u32,
        ) -> Result<u64, Raised> {
            let off = self.check(env, addr, mop.size, block_id).ok_or(Raised)?;
            let mut raw = [0u8; 8];
            let n = mop.size.bytes() as usize;
            raw[..n].copy_from_slice(&self.bytes[off..off + n]);
            // Garbage above the access size, which the interpreter must ignore.
            for b in &mut raw[n..] {
                *b = 0xee;
            }
            Ok(u64::from_le_bytes(raw))
        }

        unsafe fn store(
            &mut self,
            env: *mut u8,
            addr: u64,
            val: u64,
            mop: MemOp,
            _mmu_idx: u8,
            block_id: u32,
        ) -> Result<(), Raised> {
            let off = self.check(env, addr, mop.size, block_id).ok_or(Raised)?;
            let n = mop.size.bytes() as usize;
            self.bytes[off..off + n].copy_from_slice(&val.to_le_bytes()[..n]);
            Ok(())
        }
    }

    fn builder() -> Builder {
        Builder::new(globals(), Type::I64)
    }

    fn exec_with(block: &Block, env: &mut Env, mem: &mut Mem) -> ExitCode {
        // SAFETY: `Env` holds every global and field the test blocks name.
        unsafe { run(block, (env as *mut Env).cast(), mem, 7) }
    }

    /// Runs `block` on a fresh state and returns the exit code and the state.
    fn exec(block: &Block) -> (ExitCode, Box<Env>, Mem) {
        let mut env = Env::new();
        let mut mem = Mem::new();
        let code = exec_with(block, &mut env, &mut mem);
        (code, env, mem)
    }

    fn code(kind: ExitKind, payload: u32) -> ExitCode {
        ExitCode {
            block_id: 7,
            kind,
            payload,
        }
    }

    /// `g0 = a op b` (or g1 for I32) with constant operands, through scratch temps.
    fn binary(op: BinOp, ty: Type, a: u64, b: u64) -> u64 {
        let mut bld = builder();
        let (ta, tb) = (bld.scratch(ty), bld.scratch(ty));
        bld.movi(ta, a);
        bld.movi(tb, b);
        let dst = if ty == Type::I64 {
            bld.global(0)
        } else {
            bld.global(1)
        };
        bld.binary(op, dst, ta, tb);
        bld.exit_tb(0);
        let (_, env, _) = exec(&bld.finish());
        if ty == Type::I64 {
            env.g[0]
        } else {
            env.g[1]
        }
    }

    #[test]
    fn binary_ops_compute_the_documented_results() {
        use BinOp::*;
        use Type::*;
        let m64 = u64::MAX;
        let m32 = 0xffff_ffffu64;
        let cases: &[(BinOp, Type, u64, u64, u64)] = &[
            (Add, I64, m64, 2, 1),
            (Add, I32, m32, 2, 1),
            (Sub, I64, 1, 2, m64),
            (Sub, I32, 1, 2, m32),
            (Mul, I64, 1 << 62, 6, 1 << 63),
            (Mul, I32, 0x1_0001, 0x1_0001, 0x0002_0001),
            (MulHs, I64, m64, 2, m64),
            (MulHs, I32, 0x8000_0000, 0x8000_0000, 0x4000_0000),
            (MulHu, I64, m64, 2, 1),
            (MulHu, I32, m32, m32, 0xffff_fffe),
            (MulHsu, I64, m64, 2, m64),
            (MulHsu, I32, m32, 2, m32),
            // Division by zero and overflow follow RISC-V.
            (DivS, I64, 7, 0, m64),
            (DivS, I64, 1 << 63, m64, 1 << 63),
            (DivS, I64, (-7i64) as u64, 2, (-3i64) as u64),
            (DivS, I32, 0x8000_0000, m32, 0x8000_0000),
            (DivS, I32, 7, 0, m32),
            (DivU, I64, 7, 0, m64),
            (DivU, I64, m64, 2, m64 >> 1),
            (DivU, I32, m32, 2, 0x7fff_ffff),
            (RemS, I64, (-7i64) as u64, 2, m64),
            (RemS, I64, 1 << 63, m64, 0),
            (RemS, I64, 5, 0, 5),
            (RemS, I32, 0x8000_0000, m32, 0),
            (RemS, I32, (-7i32) as u32 as u64, 0, (-7i32) as u32 as u64),
            (RemU, I64, 7, 0, 7),
            (RemU, I32, 10, 3, 1),
            (And, I64, 0xf0f0, 0xff00, 0xf000),
            (Or, I32, 0xf0, 0x0f, 0xff),
            (Xor, I64, m64, 1, m64 - 1),
            (AndNot, I64, 0xff, 0x0f, 0xf0),
            (AndNot, I32, 0, 0, 0),
            // Shift counts wrap at the width.
            (Shl, I64, 1, 63, 1 << 63),
            (Shl, I64, 1, 64, 1),
            (Shl, I32, 1, 31, 0x8000_0000),
            (Shl, I32, 1, 32, 1),
            (Shl, I32, 3, 33, 6),
            (Shr, I64, 1 << 63, 63, 1),
            (Shr, I32, 0x8000_0000, 31, 1),
            (Shr, I32, 0x8000_0000, 32, 0x8000_0000),
            (Sar, I64, 1 << 63, 63, m64),
            (Sar, I32, 0x8000_0000, 31, m32),
            (Sar, I32, 0x8000_0000, 63, m32),
            (Rotl, I64, 1 << 63, 1, 1),
            (Rotl, I32, 0x8000_0001, 1, 3),
            (Rotl, I32, 0x8000_0001, 32, 0x8000_0001),
            (Rotr, I64, 1, 1, 1 << 63),
            (Rotr, I32, 1, 1, 0x8000_0000),
            (Rotr, I64, 1, 64, 1),
        ];
        for &(op, ty, a, b, want) in cases {
            assert_eq!(binary(op, ty, a, b), want, "{op:?} {ty} {a:#x} {b:#x}");
        }
    }

    fn unary(op: UnOp, ty: Type, a: u64) -> u64 {
        let mut bld = builder();
        let t = bld.local(ty);
        bld.movi(t, a);
        let dst = bld.local(ty);
        bld.unary(op, dst, t);
        let g = if ty == Type::I64 {
            bld.global(0)
        } else {
            bld.global(1)
        };
        bld.mov(g, dst);
        bld.exit_tb(0);
        let (_, env, _) = exec(&bld.finish());
        if ty == Type::I64 {
            env.g[0]
        } else {
            env.g[1]
        }
    }

    #[test]
    fn unary_ops_compute_the_documented_results() {
        use Type::*;
        use UnOp::*;
        let cases: &[(UnOp, Type, u64, u64)] = &[
            (Neg, I64, 1, u64::MAX),
            (Neg, I32, 1, 0xffff_ffff),
            (Neg, I32, 0x8000_0000, 0x8000_0000),
            (Not, I64, 0, u64::MAX),
            (Not, I32, 0, 0xffff_ffff),
            (Bswap, I64, 0x0102_0304_0506_0708, 0x0807_0605_0403_0201),
            (Bswap, I32, 0x1122_3344, 0x4433_2211),
            // Bit counts of zero are the width.
            (Clz, I64, 0, 64),
            (Clz, I32, 0, 32),
            (Clz, I64, 1, 63),
            (Clz, I32, 1, 31),
            (Ctz, I64, 0, 64),
            (Ctz, I32, 0, 32),
            (Ctz, I64, 1 << 63, 63),
            (Ctpop, I64, u64::MAX, 64),
            (Ctpop, I32, 0xf0f0_0001, 9),
        ];
        for &(op, ty, a, want) in cases {
            assert_eq!(unary(op, ty, a), want, "{op:?} {ty} {a:#x}");
        }
    }

    #[test]
    fn extensions_truncation_and_bit_fields() {
        let mut b = builder();
        let src64 = b.local(Type::I64);
        let src32 = b.local(Type::I32);
        b.movi(src64, 0xffff_ffff_8000_8080);
        b.movi(src32, 0x8000_8080);
        let (g0, g1, g2, g3) = (b.global(0), b.global(1), b.global(2), b.global(3));
        b.ext(ExtFrom::S8, g0, src64); // 0x80 -> all ones but the low 7 bits
        b.ext(ExtFrom::S16, g1, src32); // I32 destination: sign-extended within 32 bits
        b.ext(ExtFrom::U32, g2, src64);
        b.trunc(g3, src64);
        b.insn_start(0, 0);
        b.exit_tb(0);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g[0], 0xffff_ffff_ffff_ff80);
        assert_eq!(env.g[1], 0xffff_8080);
        assert_eq!(env.g[2], 0x8000_8080);
        assert_eq!(env.g[3], 0x8000_8080);

        let mut b = builder();
        let src = b.local(Type::I64);
        b.movi(src, 0x0000_0000_0000_abcd);
        let (g0, g1, g2) = (b.global(0), b.global(1), b.global(2));
        b.extract(g0, src, 4, 8, false);
        let s32 = b.local(Type::I32);
        b.movi(s32, 0x0000_0080);
        b.extract(g1, s32, 4, 4, true); // 0b1000 sign-extended in 32 bits
        let ones = b.constant(Type::I64, u64::MAX);
        b.deposit(g2, src, ones, 60, 4);
        b.exit_tb(0);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g[0], 0xbc);
        assert_eq!(env.g[1], 0xffff_fff8);
        assert_eq!(env.g[2], 0xf000_0000_0000_abcd);
    }

    #[test]
    fn setcond_and_movcond_compare_in_the_operation_type() {
        let mut b = builder();
        let a = b.constant(Type::I32, 0x8000_0000);
        let zero32 = b.constant(Type::I32, 0);
        let (g0, g1, g2, g3) = (b.global(0), b.global(1), b.global(2), b.global(3));
        // I32 compare, I64 destination.
        b.setcond(Cond::Lt, g0, a, zero32);
        b.setcond(Cond::Ltu, g1, a, zero32);
        let x = b.constant(Type::I64, 0x8000_0000);
        let zero64 = b.constant(Type::I64, 0);
        let t = b.constant(Type::I64, 111);
        let f = b.constant(Type::I64, 222);
        b.movcond(Cond::Lt, g2, x, zero64, t, f); // positive as I64: false
        let t32 = b.constant(Type::I32, 1);
        b.movcond(Cond::TstNe, g3, a, a, t32, zero32);
        b.exit_tb(0);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g, [1, 0, 222, 1]);
    }

    #[test]
    fn i32_globals_are_4_byte_fields_read_zero_extended() {
        let mut env = Env::new();
        env.g[1] = 0xaaaa_aaaa_1234_5678; // high half is not part of g1
        let mut b = builder();
        let (g0, g1) = (b.global(0), b.global(1));
        let t = b.scratch(Type::I64);
        b.ext(ExtFrom::U32, t, g1);
        b.mov(g0, t); // the value read is zero-extended
        b.addi(g1, g1, 0xffff_ffff); // wraps within 32 bits
        b.exit_tb(0);
        exec_with(&b.finish(), &mut env, &mut Mem::new());
        assert_eq!(env.g[0], 0x1234_5678);
        assert_eq!(env.g[1], 0xaaaa_aaaa_1234_5677);
    }

    #[test]
    fn loads_extend_per_memop_and_mask_to_the_destination() {
        let mut b = builder();
        let addr = b.constant(Type::I64, BASE + 0xfe); // bytes fe ff
        let (g0, g1, g2, g3) = (b.global(0), b.global(1), b.global(2), b.global(3));
        b.load(g0, addr, MemOp::signed(Size::B16), 0);
        b.load(g1, addr, MemOp::signed(Size::B16), 0);
        b.load(g2, addr, MemOp::unsigned(Size::B16), 0);
        b.load(g3, addr, MemOp::unsigned(Size::B8), 0);
        b.exit_tb(0);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g[0], 0xffff_ffff_ffff_fffe);
        assert_eq!(env.g[1], 0xffff_fffe);
        assert_eq!(env.g[2], 0xfffe);
        assert_eq!(env.g[3], 0xfe);
    }

    #[test]
    fn stores_write_only_the_low_bytes_and_addresses_have_the_address_type() {
        let mut b = Builder::new(globals(), Type::I32);
        // An I32 address type: the high half of a 64-bit value is not part of the address.
        let addr = b.local(Type::I32);
        b.movi(addr, BASE + 0x10);
        let v = b.constant(Type::I64, 0x1122_3344_5566_7788);
        b.store(v, addr, MemOp::unsigned(Size::B16), 0);
        b.addi(addr, addr, 4);
        b.store(v, addr, MemOp::unsigned(Size::B32), 0);
        let g0 = b.global(0);
        b.load(g0, addr, MemOp::unsigned(Size::B64), 0);
        b.exit_tb(0);
        let (_, env, mem) = exec(&b.finish());
        assert_eq!(&mem.bytes[0x10..0x14], &[0x88, 0x77, 0x12, 0x13]);
        assert_eq!(&mem.bytes[0x14..0x19], &[0x88, 0x77, 0x66, 0x55, 0x18]);
        assert_eq!(env.g[0], 0x1b1a_1918_5566_7788);
        assert_eq!(mem.seen_block, vec![7, 7, 7]);
    }

    #[test]
    fn env_loads_and_stores_reach_non_global_fields() {
        let mut env = Env::new();
        env.field = [0x8070_6050_4030_2010, 0];
        let mut b = builder();
        let (g0, g2) = (b.global(0), b.global(2));
        b.env_load(g0, FIELD + 1, MemOp::signed(Size::B32)); // bytes 20 30 40 50
        b.env_load(g2, FIELD + 7, MemOp::signed(Size::B8)); // 0x80
        let v = b.constant(Type::I64, 0xaabb_ccdd_eeff_0011);
        b.env_store(v, FIELD + 8 + 2, MemOp::unsigned(Size::B16));
        b.exit_tb(0);
        exec_with(&b.finish(), &mut env, &mut Mem::new());
        assert_eq!(env.g[0], 0x5040_3020);
        assert_eq!(env.g[2], 0xffff_ffff_ffff_ff80);
        assert_eq!(env.field[1], 0x0011_0000);
    }

    #[test]
    fn forward_branches_skip_and_unconditional_branches_jump() {
        let mut b = builder();
        let (g0, g2) = (b.global(0), b.global(2));
        let skip = b.new_label();
        let end = b.new_label();
        let one = b.constant(Type::I64, 1);
        b.brcondi(Cond::Eq, one, 1, skip); // taken
        b.movi(g0, 0xbad);
        b.set_label(skip);
        b.brcondi(Cond::Ne, one, 1, end); // not taken
        b.movi(g2, 0x600d);
        b.br(end);
        b.movi(g2, 0xbad);
        b.set_label(end);
        b.exit_tb(0);
        let (c, env, _) = exec(&b.finish());
        assert_eq!(c, code(ExitKind::Exit, 0));
        assert_eq!(env.g[0], 0);
        assert_eq!(env.g[2], 0x600d);
    }

    #[test]
    fn a_backward_branch_runs_a_counted_loop() {
        // g0 = 10 + 9 + ... + 1, counted down in an I32 local.
        let mut b = builder();
        let g0 = b.global(0);
        let n = b.local(Type::I32);
        b.movi(n, 10);
        b.movi(g0, 0);
        let top = b.new_label();
        b.set_label(top);
        let w = b.scratch(Type::I64);
        b.ext(ExtFrom::U32, w, n);
        b.add(g0, g0, w);
        b.addi(n, n, u64::MAX); // n -= 1 (wrapping in 32 bits)
        b.brcondi(Cond::Ne, n, 0, top);
        b.exit_tb(0);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g[0], 55);
    }

    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    unsafe extern "C" fn h_pure(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64 {
        // Distinguishes every argument position.
        a | b << 8 | c << 16 | d << 24 | e << 32 | f << 40 | 0xffff_0000_0000_0000
    }
    unsafe extern "C" fn h_reads(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        // SAFETY: the tests pass their `Env` as the first argument.
        unsafe { (*(env as *const Env)).g[0] + x }
    }
    unsafe extern "C" fn h_writes(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        // SAFETY: as above.
        unsafe { (*(env as *mut Env)).g[2] = x };
        0
    }
    unsafe extern "C" fn h_effect(x: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        COUNT.fetch_add(x, std::sync::atomic::Ordering::Relaxed);
        0
    }
    unsafe extern "C" fn h_raise(env: u64, x: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        if x & 1 != 0 {
            let e = env as *mut Env;
            // SAFETY: as above.
            unsafe { (*e).raised_arg = x };
            // SAFETY: as above.
            unsafe { (*e).h.unwind = 1 };
            return 0xdead;
        }
        x / 2
    }
    static PURE: Helper = Helper {
        name: "pure",
        func: h_pure,
        flags: HelperFlags::PURE,
    };
    static READS: Helper = Helper {
        name: "reads",
        func: h_reads,
        flags: HelperFlags::READS_GLOBALS,
    };
    static WRITES: Helper = Helper {
        name: "writes",
        func: h_writes,
        flags: HelperFlags::WRITES_GLOBALS,
    };
    static EFFECT: Helper = Helper {
        name: "effect",
        func: h_effect,
        flags: HelperFlags::NONE,
    };
    static RAISE: Helper = Helper {
        name: "raise",
        func: h_raise,
        flags: HelperFlags::MAY_RAISE,
    };

    #[test]
    fn calls_pass_arguments_in_order_and_mask_results() {
        let mut b = builder();
        let args: Vec<Temp> = (1..=6).map(|i| b.constant(Type::I64, i)).collect();
        let (g0, g1, g2) = (b.global(0), b.global(1), b.global(2));
        b.call(&PURE, &args, Some(g0));
        b.call(&PURE, &args[..2], Some(g1)); // unused arguments are zero; I32 result masked
        let big = b.constant(Type::I64, 0x1_0000_0000);
        b.call(&EFFECT, &[big], None);
        b.call(&PURE, &[], Some(g2));
        b.exit_tb(0);
        let before = COUNT.load(std::sync::atomic::Ordering::Relaxed);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g[0], 0xffff_0605_0403_0201);
        assert_eq!(env.g[1], 0x0201);
        assert_eq!(env.g[2], 0xffff_0000_0000_0000);
        assert!(COUNT.load(std::sync::atomic::Ordering::Relaxed) - before >= 0x1_0000_0000);
    }

    #[test]
    fn helpers_see_and_change_globals_in_the_state() {
        let mut b = builder();
        let (g0, g2, g3) = (b.global(0), b.global(2), b.global(3));
        b.movi(g0, 100);
        let five = b.constant(Type::I64, 5);
        b.call(&READS, &[Temp::ENV, five], Some(g3)); // sees g0 = 100
        let x = b.constant(Type::I64, 0x4242);
        b.call(&WRITES, &[Temp::ENV, x], None);
        b.addi(g0, g2, 1); // sees the helper's g2
        b.exit_tb(0);
        let (_, env, _) = exec(&b.finish());
        assert_eq!(env.g[3], 105);
        assert_eq!(env.g[2], 0x4242);
        assert_eq!(env.g[0], 0x4243);
    }

    #[test]
    fn a_may_raise_call_that_does_not_raise_continues() {
        let mut b = builder();
        let g0 = b.global(0);
        b.insn_start(0x100, 0);
        let x = b.constant(Type::I64, 8);
        b.call(&RAISE, &[Temp::ENV, x], Some(g0));
        b.exit_tb(3);
        let (c, env, _) = exec(&b.finish());
        assert_eq!(c, code(ExitKind::Exit, 3));
        assert_eq!(env.g[0], 4);
        assert_eq!(env.h.unwind, 0);
        assert_eq!(env.h.insn_index, 0, "set before the call");
    }

    #[test]
    fn a_raising_call_unwinds_leaving_its_destination_and_later_globals_untouched() {
        let mut env = Env::new();
        env.g = [1, 2, 3, 4];
        let mut b = builder();
        let (g0, g1, g2) = (b.global(0), b.global(1), b.global(2));
        b.insn_start(0x100, 0);
        b.movi(g1, 20);
        b.insn_start(0x104, 0);
        let x = b.constant(Type::I64, 7);
        b.call(&RAISE, &[Temp::ENV, x], Some(g0));
        b.movi(g2, 30);
        b.insn_start(0x108, 0);
        b.exit_tb(0);
        let c = exec_with(&b.finish(), &mut env, &mut Mem::new());
        assert_eq!(c, code(ExitKind::Unwind, 0));
        assert_eq!(env.h.insn_index, 1);
        assert_eq!(env.raised_arg, 7);
        assert_eq!(env.g, [1, 20, 3, 4]);
    }

    #[test]
    fn a_faulting_load_in_mid_block_keeps_earlier_writes_only() {
        let mut env = Env::new();
        let mut b = builder();
        let (g0, g1, g2) = (b.global(0), b.global(1), b.global(2));
        b.insn_start(0x100, 0);
        b.movi(g0, 0x11);
        b.insn_start(0x104, 0);
        let ok = b.constant(Type::I64, BASE);
        b.load(g1, ok, MemOp::unsigned(Size::B32), 0);
        b.insn_start(0x108, 0);
        let bad = b.constant(Type::I64, BASE + 0x7e); // crosses into the faulting range
        b.load(g2, bad, MemOp::unsigned(Size::B32), 0);
        b.movi(g0, 0x22);
        b.exit_tb(0);
        let mut mem = Mem::new();
        let c = exec_with(&b.finish(), &mut env, &mut mem);
        assert_eq!(c, code(ExitKind::Unwind, 0));
        assert_eq!(env.h.insn_index, 2);
        assert_eq!(mem.seen_insn, vec![1, 2], "index stored before each access");
        assert_eq!(env.g, [0x11, 0x0302_0100, 0, 0]);
    }

    #[test]
    fn a_faulting_store_writes_nothing_and_an_access_before_any_insn_start_is_insn_0() {
        let mut b = builder();
        let bad = b.constant(Type::I64, BASE + 0x88);
        let v = b.constant(Type::I64, 0);
        b.store(v, bad, MemOp::unsigned(Size::B8), 0);
        b.exit_tb(0);
        let (c, env, mem) = exec(&b.finish());
        assert_eq!(c, code(ExitKind::Unwind, 0));
        assert_eq!(env.h.insn_index, 0);
        assert_eq!(mem.bytes, Mem::new().bytes);
    }

    #[test]
    fn instruction_indexes_are_static_across_backward_branches() {
        // insn 0: n = 2; insn 1 (loop top label precedes it): a load at the loop head, then
        // insn 2: n -= 1, branch back. The second pass through the load is again insn 1.
        let mut b = builder();
        let n = b.local(Type::I64);
        b.insn_start(0x100, 0);
        b.movi(n, 2);
        let top = b.new_label();
        b.set_label(top);
        b.insn_start(0x104, 0);
        let ok = b.constant(Type::I64, BASE);
        let g0 = b.global(0);
        b.load(g0, ok, MemOp::unsigned(Size::B8), 0);
        b.insn_start(0x108, 0);
        b.addi(n, n, u64::MAX);
        b.brcondi(Cond::Ne, n, 0, top);
        let bad = b.constant(Type::I64, BASE + 0x80);
        b.load(g0, bad, MemOp::unsigned(Size::B8), 0);
        b.exit_tb(0);
        let (c, env, mem) = exec(&b.finish());
        assert_eq!(c.kind, ExitKind::Unwind);
        assert_eq!(mem.seen_insn, vec![1, 1, 2]);
        assert_eq!(env.h.insn_index, 2);
    }

    #[test]
    fn terminals_return_their_exit_codes() {
        let one = |f: &dyn Fn(&mut Builder)| {
            let mut b = builder();
            f(&mut b);
            exec(&b.finish()).0
        };
        assert_eq!(one(&|b| b.goto_tb(0)), code(ExitKind::GotoTb0, 0));
        assert_eq!(one(&|b| b.goto_tb(1)), code(ExitKind::GotoTb1, 0));
        assert_eq!(
            one(&|b| b.exit_tb(0x12_3456)),
            code(ExitKind::Exit, 0x12_3456)
        );
        assert_eq!(one(&|b| b.lookup_and_goto()), code(ExitKind::Lookup, 0));
        // Two terminals behind a branch: the branch picks one.
        let two = |v: u64| {
            one(&|b| {
                let l = b.new_label();
                let g0 = b.global(0);
                b.movi(g0, v);
                b.brcondi(Cond::Eq, g0, 0, l);
                b.goto_tb(0);
                b.set_label(l);
                b.goto_tb(1);
            })
        };
        assert_eq!(two(0).kind, ExitKind::GotoTb1);
        assert_eq!(two(1).kind, ExitKind::GotoTb0);
    }

    #[test]
    fn exit_request_is_not_tested_inside_a_block() {
        let mut env = Env::new();
        env.h.exit_request = AtomicU32::new(1);
        let mut b = builder();
        let g0 = b.global(0);
        b.movi(g0, 9);
        b.exit_tb(1);
        let c = exec_with(&b.finish(), &mut env, &mut Mem::new());
        assert_eq!(c, code(ExitKind::Exit, 1));
        assert_eq!(env.g[0], 9);
    }

    #[test]
    fn an_interpreter_is_reusable_across_blocks_of_different_shapes() {
        let mut interp = Interpreter::new();
        let mut env = Env::new();
        let mut mem = Mem::new();
        for n in [3u64, 1, 5] {
            let mut b = builder();
            let g0 = b.global(0);
            for _ in 0..n {
                let t = b.scratch(Type::I64);
                b.movi(t, n);
                b.add(g0, g0, t);
            }
            let l = b.new_label();
            b.br(l);
            b.set_label(l);
            b.exit_tb(0);
            let block = b.finish();
            // SAFETY: `Env` holds every global of the block.
            unsafe { interp.run(&block, (&mut *env as *mut Env).cast(), &mut mem, 1) };
        }
        assert_eq!(env.g[0], 9 + 1 + 25);
    }

    #[test]
    #[should_panic(expected = "never places")]
    fn a_branch_to_an_unplaced_label_panics_clearly() {
        let mut b = builder();
        let l = b.new_label();
        b.br(l);
        b.exit_tb(0);
        exec(&b.finish());
    }
}
