//! The optimizer's specification: targeted rewrites, then random blocks run before and after
//! optimization by a small reference evaluator built on the ops' `eval` functions, which must
//! observe exactly the same things (memory accesses, helper calls with the globals they see,
//! exceptions with their instruction index and globals, the exit and the final state).

use std::collections::HashMap;
use std::sync::Arc;

use super::optimize;
use crate::abi::offsets::HEADER_SIZE;
use crate::verify::verify;
use crate::{
    deposit, extract, BinOp, Block, Builder, Cond, ExtFrom, GlobalDef, Helper, HelperFlags, Label,
    MemOp, Op, Size, Temp, TempKind, Type, UnOp,
};

const BASE: u32 = HEADER_SIZE.next_multiple_of(8);

fn globals() -> Arc<[GlobalDef]> {
    let g = |name, ty, offset| GlobalDef { name, ty, offset };
    Arc::from(vec![
        g("pc", Type::I64, BASE),
        g("x1", Type::I64, BASE + 8),
        g("w2", Type::I32, BASE + 16),
        g("w3", Type::I32, BASE + 20),
    ])
}

unsafe extern "C" fn never_called(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    unreachable!("the test evaluator dispatches helpers by name")
}

macro_rules! helper {
    ($name:ident, $flags:expr) => {
        static $name: Helper = Helper {
            name: stringify!($name),
            func: never_called,
            flags: $flags,
        };
    };
}
helper!(PURE, HelperFlags::PURE);
helper!(NONE, HelperFlags::NONE);
helper!(READER, HelperFlags::READS_GLOBALS);
helper!(WRITER, HelperFlags::WRITES_GLOBALS);
helper!(RAISER, HelperFlags::MAY_RAISE);
static HELPERS: [&Helper; 5] = [&PURE, &NONE, &READER, &WRITER, &RAISER];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 31;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// Something the block did that the rest of the machine can see.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Load(u64, MemOp, u8),
    Store(u64, u64, MemOp, u8),
    Call(&'static str, Vec<u64>, Option<Vec<u64>>),
    Fence,
    Raise(usize, Vec<u64>),
    Exit(String, Vec<u64>, Vec<(u32, u64)>),
    StepLimit,
}

/// Runs `block` from globals `init`; every guest access to an address divisible by 5 raises.
fn run(block: &Block, init: &[u64]) -> Vec<Event> {
    let n = block.temps.len();
    let mut v = vec![0u64; n];
    for (i, t) in block.temps.iter().enumerate() {
        if let TempKind::Const(c) = t.kind {
            v[i] = c;
        }
    }
    for (i, &x) in init.iter().enumerate() {
        v[i + 1] = x & block.temps[i + 1].ty.mask();
    }
    let nglobals = block.globals.len();
    let globals = |v: &[u64]| v[1..=nglobals].to_vec();
    let mut labels = HashMap::new();
    let mut insn = Vec::with_capacity(block.ops.len());
    let mut count = 0usize;
    for (i, op) in block.ops.iter().enumerate() {
        if let Op::InsnStart { .. } = op {
            count += 1;
        }
        if let Op::SetLabel(l) = op {
            labels.insert(*l, i);
        }
        insn.push(count.saturating_sub(1));
    }
    let mut env: HashMap<u32, u64> = HashMap::new();
    let mut events = Vec::new();
    let mut pc = 0;
    for _ in 0..10_000 {
        let op = block.ops[pc];
        pc += 1;
        let ty = |t: Temp| block.ty(t);
        match op {
            Op::Mov { dst, src, .. } => v[dst.index()] = v[src.index()],
            Op::Binary { op, ty, dst, a, b } => {
                v[dst.index()] = op.eval(ty, v[a.index()], v[b.index()])
            }
            Op::Unary { op, ty, dst, src } => v[dst.index()] = op.eval(ty, v[src.index()]),
            Op::Ext { from, ty, dst, src } => v[dst.index()] = from.eval(ty, v[src.index()]),
            Op::Trunc { dst, src } => v[dst.index()] = v[src.index()] & 0xffff_ffff,
            Op::Extract {
                ty,
                dst,
                src,
                pos,
                len,
                signed,
            } => v[dst.index()] = extract(ty, v[src.index()], pos, len, signed),
            Op::Deposit {
                ty,
                dst,
                base,
                val,
                pos,
                len,
            } => v[dst.index()] = deposit(ty, v[base.index()], v[val.index()], pos, len),
            Op::SetCond {
                cond,
                ty,
                dst,
                a,
                b,
            } => v[dst.index()] = cond.eval(ty, v[a.index()], v[b.index()]) as u64,
            Op::MovCond {
                cond,
                ty,
                dst,
                a,
                b,
                t,
                f,
            } => {
                let c = cond.eval(ty, v[a.index()], v[b.index()]);
                v[dst.index()] = if c { v[t.index()] } else { v[f.index()] };
            }
            Op::SetLabel(_) | Op::InsnStart { .. } => {}
            Op::Br(l) => pc = labels[&l],
            Op::BrCond {
                cond,
                ty,
                a,
                b,
                label,
            } => {
                if cond.eval(ty, v[a.index()], v[b.index()]) {
                    pc = labels[&label];
                }
            }
            Op::Load {
                dst,
                addr,
                mop,
                mmu_idx,
            } => {
                let a = v[addr.index()];
                events.push(Event::Load(a, mop, mmu_idx));
                if a % 5 == 0 {
                    events.push(Event::Raise(insn[pc - 1], globals(&v)));
                    return events;
                }
                v[dst.index()] = mop.extend(mix(a)) & ty(dst).mask();
            }
            Op::Store {
                val,
                addr,
                mop,
                mmu_idx,
            } => {
                let a = v[addr.index()];
                let x = v[val.index()] & (u64::MAX >> (64 - mop.size.bits()));
                events.push(Event::Store(a, x, mop, mmu_idx));
                if a % 5 == 0 {
                    events.push(Event::Raise(insn[pc - 1], globals(&v)));
                    return events;
                }
            }
            Op::EnvLoad { dst, offset, mop } => {
                let raw = env.get(&offset).copied().unwrap_or(mix(offset as u64));
                v[dst.index()] = mop.extend(raw) & ty(dst).mask();
            }
            Op::EnvStore { val, offset, mop } => {
                let x = v[val.index()] & (u64::MAX >> (64 - mop.size.bits()));
                env.insert(offset, x);
            }
            Op::Call {
                helper,
                args,
                nargs,
                ret,
            } => {
                let args: Vec<u64> = args[..nargs as usize]
                    .iter()
                    .map(|a| v[a.index()])
                    .collect();
                let seen = helper.flags.syncs_globals().then(|| globals(&v));
                let r = mix(args.iter().fold(7, |h, &a| mix(h ^ a)));
                // A pure call is not an observable event: the optimizer may delete it.
                if helper.flags != HelperFlags::PURE {
                    events.push(Event::Call(helper.name, args.clone(), seen));
                }
                if helper.flags.contains(HelperFlags::MAY_RAISE) && r % 3 == 0 {
                    events.push(Event::Raise(insn[pc - 1], globals(&v)));
                    return events;
                }
                if helper.flags.contains(HelperFlags::WRITES_GLOBALS) {
                    v[1] = r;
                    v[3] = r & 0xffff_ffff;
                }
                if let Some(t) = ret {
                    v[t.index()] = r & ty(t).mask();
                }
            }
            Op::Fence => events.push(Event::Fence),
            Op::GotoTb { .. } | Op::ExitTb { .. } | Op::LookupAndGoto => {
                let mut e: Vec<_> = env.into_iter().collect();
                e.sort();
                events.push(Event::Exit(crate::format_op(block, &op), globals(&v), e));
                return events;
            }
        }
    }
    events.push(Event::StepLimit);
    events
}

fn optimized(block: &Block) -> Block {
    verify(block).unwrap_or_else(|e| panic!("input does not verify: {e}\n{block}"));
    let mut out = block.clone();
    optimize(&mut out);
    verify(&out).unwrap_or_else(|e| panic!("{e}\nbefore:\n{block}after:\n{out}"));
    out
}

/// Optimizes `block`, checks both versions agree on `inits`, and returns the optimized text.
fn check(block: &Block, inits: &[[u64; 4]]) -> String {
    let out = optimized(block);
    for init in inits {
        assert_eq!(
            run(block, init),
            run(&out, init),
            "init {init:x?}\nbefore:\n{block}after:\n{out}"
        );
    }
    out.to_string()
}

const INITS: [[u64; 4]; 3] = [
    [0x1000, 7, 0xffff_fff0, 3],
    [0x2001, u64::MAX, 0x8000_0000, 0x100],
    [1, 0, 0, 0],
];

fn builder() -> Builder {
    let mut b = Builder::new(globals(), Type::I64);
    b.insn_start(0x1000, 0);
    b
}

#[test]
fn constants_fold_and_propagate_and_dead_temps_vanish() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    let t = b.scratch(Type::I64);
    let u = b.scratch(Type::I64);
    b.movi(t, 6);
    b.binary_imm(BinOp::Mul, u, t, 7);
    b.add(x1, x1, u);
    b.movi(pc, 0x1004);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(
        text,
        "---- 0x1000\n add_i64 x1, x1, $0x2a\n mov_i64 pc, $0x1004\n exit_tb 0x0\n"
    );
}

#[test]
fn algebraic_identities_become_moves_or_constants() {
    let mut b = builder();
    let (x1, w2) = (b.global(1), b.global(2));
    let t = b.scratch(Type::I64);
    b.addi(t, x1, 0);
    b.binary_imm(BinOp::Mul, t, t, 1);
    b.binary_imm(BinOp::And, t, t, u64::MAX);
    b.binary_imm(BinOp::Shl, t, t, 64); // the count is taken modulo 64
    b.binary_imm(BinOp::Or, t, t, 0);
    b.mov(x1, t);
    b.xor(w2, w2, w2);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(text, "---- 0x1000\n mov_i32 w2, $0x0\n exit_tb 0x0\n");
}

#[test]
fn identities_that_do_not_hold_are_left_alone() {
    let mut b = builder();
    let x1 = b.global(1);
    b.binary_imm(BinOp::Shl, x1, x1, 32); // not a multiple of 64
    b.binary_imm(BinOp::RemU, x1, x1, 0); // x % 0 == x but only by the RISC-V rule: kept exact
    b.binary_imm(BinOp::DivS, x1, x1, u64::MAX);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert!(text.contains("shl_i64 x1, x1, $0x20"), "{text}");
    assert!(text.contains("divs_i64"), "{text}");
}

#[test]
fn copies_are_propagated_until_either_side_changes() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    let t = b.scratch(Type::I64);
    b.mov(t, x1);
    b.add(pc, t, t); // reads x1 directly
    b.addi(x1, x1, 1); // x1 changes: t still holds the old value
    b.add(pc, pc, t);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(
        text,
        "---- 0x1000\n mov_i64 tmp5, x1\n add_i64 pc, x1, x1\n add_i64 x1, x1, $0x1\n add_i64 pc, pc, tmp5\n exit_tb 0x0\n"
    );
}

#[test]
fn helpers_that_write_globals_end_copies_of_them() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    let t = b.scratch(Type::I64);
    b.mov(t, pc);
    b.call(&WRITER, &[], None);
    b.mov(x1, t);
    b.movi(t, 5);
    b.mov(pc, t);
    b.call(&WRITER, &[], None);
    b.mov(x1, pc);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert!(text.contains("mov_i64 x1, tmp5"), "{text}");
    assert!(text.contains("mov_i64 x1, pc"), "{text}");
}

#[test]
fn knowledge_is_dropped_at_labels() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    let l = b.local(Type::I64);
    b.movi(l, 1);
    let skip = b.new_label();
    b.brcondi(Cond::Eq, x1, 0, skip);
    b.movi(l, 2);
    b.set_label(skip);
    b.mov(pc, l);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert!(text.contains("mov_i64 pc, loc5"), "{text}");
}

#[test]
fn known_bits_delete_redundant_masks_and_extensions() {
    let mut b = builder();
    let (pc, x1, w2) = (b.global(0), b.global(1), b.global(2));
    let t = b.scratch(Type::I64);
    b.load(t, x1, MemOp::unsigned(Size::B8), 0);
    let u = b.scratch(Type::I64);
    b.binary_imm(BinOp::And, u, t, 0xff);
    b.ext(ExtFrom::U16, u, u);
    b.ext(ExtFrom::S16, u, u); // bit 15 is known zero
    b.extract(u, u, 0, 8, false);
    b.mov(pc, u);
    let s = b.scratch(Type::I32);
    b.setcond(Cond::Ltu, s, w2, w2);
    let c256 = b.constant(Type::I64, 0x100);
    b.setcond(Cond::Ltu, s, t, c256); // a byte is below 256
    b.mov(w2, s);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(
        text,
        "---- 0x1000\n ld_u8 tmp5, x1, mmu0\n mov_i64 pc, tmp5\n mov_i32 w2, $0x1\n exit_tb 0x0\n"
    );
}

#[test]
fn sign_extension_of_an_unknown_sign_is_kept() {
    let mut b = builder();
    let (x1, w2) = (b.global(1), b.global(2));
    b.ext(ExtFrom::S8, x1, x1);
    b.ext(ExtFrom::U8, w2, w2);
    b.extract(w2, w2, 0, 32, true); // the whole value: a copy of itself
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(
        text,
        "---- 0x1000\n ext8s_i64 x1, x1\n ext8u_i32 w2, w2\n exit_tb 0x0\n"
    );
}

#[test]
fn constant_branches_become_jumps_or_vanish_and_dead_code_goes() {
    let mut b = builder();
    let pc = b.global(0);
    let one = b.constant(Type::I64, 1);
    let never = b.new_label();
    b.brcondi(Cond::Eq, one, 0, never); // never taken
    b.movi(pc, 0x1004);
    b.insn_start(0x1004, 0);
    let always = b.new_label();
    b.brcondi(Cond::Ne, one, 0, always); // always taken
    b.insn_start(0x1008, 0);
    b.movi(pc, 0x2000);
    b.goto_tb(0);
    b.set_label(never);
    b.movi(pc, 0x3000);
    b.goto_tb(1);
    b.set_label(always);
    b.exit_tb(9);
    let block = b.finish();
    let text = check(&block, &INITS);
    // The skipped instruction's marker stays (before the jump), so indices do not shift.
    assert_eq!(
        text,
        "---- 0x1000\n mov_i64 pc, $0x1004\n---- 0x1004\n---- 0x1008\n exit_tb 0x9\n"
    );
}

#[test]
fn insn_start_markers_survive_even_when_their_ops_vanish() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    let t = b.scratch(Type::I64);
    b.movi(t, 3);
    b.insn_start(0x1004, 0);
    b.mov(t, t);
    b.insn_start(0x1008, 0);
    b.load(x1, pc, MemOp::unsigned(Size::B64), 0);
    b.exit_tb(0);
    let block = b.finish();
    let out = optimized(&block);
    assert_eq!(out.insn_starts(), block.insn_starts());
    check(&block, &INITS);
}

#[test]
fn writes_to_globals_stay_where_an_exception_could_see_them() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    b.movi(pc, 0x1004); // seen by the load if it raises
    b.load(x1, x1, MemOp::unsigned(Size::B32), 0);
    b.movi(pc, 0x1008); // dead: overwritten before anything can observe it
    b.movi(pc, 0x100c);
    b.call(&NONE, &[pc], None); // neither reads globals nor raises
    b.movi(pc, 0x1010);
    b.exit_tb(0);
    let text = check(&b.finish(), &[[0, 5, 0, 0], [0, 6, 0, 0]]);
    assert_eq!(
        text,
        "---- 0x1000\n mov_i64 pc, $0x1004\n ld_u32 x1, x1, mmu0\n call NONE($0x100c)\n mov_i64 pc, $0x1010\n exit_tb 0x0\n"
    );
}

#[test]
fn unused_pure_calls_are_deleted_and_others_kept() {
    let mut b = builder();
    let x1 = b.global(1);
    let t = b.scratch(Type::I64);
    b.call(&PURE, &[x1], Some(t));
    b.call(&NONE, &[x1], Some(t));
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(text, "---- 0x1000\n call tmp5 = NONE(x1)\n exit_tb 0x0\n");
}

#[test]
fn loops_keep_their_locals_alive() {
    let mut b = builder();
    let (pc, x1) = (b.global(0), b.global(1));
    let i = b.local(Type::I64);
    let acc = b.local(Type::I64);
    b.movi(i, 5);
    b.movi(acc, 0);
    let top = b.new_label();
    b.set_label(top);
    b.add(acc, acc, i);
    b.addi(i, i, u64::MAX);
    b.brcondi(Cond::Ne, i, 0, top);
    b.mov(x1, acc);
    b.movi(pc, 0);
    b.exit_tb(0);
    let block = b.finish();
    let out = optimized(&block);
    assert_eq!(out.ops.len(), block.ops.len());
    check(&block, &INITS);
}

#[test]
fn a_constant_backward_branch_keeps_the_block_well_formed() {
    let mut b = builder();
    let x1 = b.global(1);
    let top = b.new_label();
    b.set_label(top);
    b.call(&RAISER, &[x1], Some(x1));
    let one = b.constant(Type::I64, 1);
    b.brcondi(Cond::Eq, one, 1, top);
    b.exit_tb(0);
    check(&b.finish(), &INITS);
}

#[test]
fn a_loop_only_its_own_back_edge_enters_is_deleted_with_the_code_before_it() {
    // insn_start; goto_tb 0; set_label L0; mov loc,4; set_label L1; add loc,loc,-1;
    // brcond ne loc,0,L1; exit_tb 0. L1 is a branch target, but only from inside its own
    // unreachable loop: keeping the loop while deleting `mov loc,4` would read `loc` before
    // any write (the verifier's LocalUndefined).
    let mut b = Builder::new(globals(), Type::I32);
    b.insn_start(0x1000, 0);
    b.goto_tb(0);
    let l0 = b.new_label();
    b.set_label(l0);
    let local = b.local(Type::I32);
    b.movi(local, 4);
    let l1 = b.new_label();
    b.set_label(l1);
    b.addi(local, local, u64::MAX);
    b.brcondi(Cond::Ne, local, 0, l1);
    b.exit_tb(0);
    let text = check(&b.finish(), &INITS);
    assert_eq!(text, "---- 0x1000\n goto_tb 0\n");
}

#[test]
fn unreachable_regions_go_even_when_their_labels_are_targeted_from_dead_code() {
    let mut b = builder();
    let x1 = b.global(1);
    let (dead, also_dead, live) = (b.new_label(), b.new_label(), b.new_label());
    b.brcondi(Cond::Eq, x1, 3, live);
    b.goto_tb(0);
    b.set_label(dead); // targeted only from `also_dead`'s code, itself only from here
    b.insn_start(0x1004, 0);
    b.addi(x1, x1, 1);
    b.br(also_dead);
    b.set_label(also_dead);
    b.brcondi(Cond::Ne, x1, 9, dead);
    b.exit_tb(1);
    b.set_label(live);
    b.exit_tb(2);
    let text = check(&b.finish(), &INITS);
    assert_eq!(
        text,
        "---- 0x1000\n brcond_i64 x1, $0x3, eq, L2\n---- 0x1004\n goto_tb 0\nset_label L2\n exit_tb 0x2\n"
    );
}

#[test]
fn a_block_whose_end_only_an_endless_loop_precedes_still_ends_in_a_terminal() {
    let mut b = builder();
    let x1 = b.global(1);
    let (top, unused) = (b.new_label(), b.new_label());
    b.set_label(top);
    b.call(&RAISER, &[x1], Some(x1));
    b.br(top);
    b.set_label(unused);
    b.exit_tb(0);
    let block = b.finish();
    let out = optimized(&block);
    assert!(out.ops.last().is_some_and(Op::is_terminal), "{out}");
    check(&block, &INITS);
}

#[test]
fn one_optimizer_gives_the_same_results_as_fresh_ones_block_after_block() {
    let mut opt = super::Optimizer::new();
    for seed in 0..500 {
        let block = if seed % 2 == 0 {
            Gen::block(seed)
        } else {
            riscv_like_block(seed, 1 + seed as usize % 70)
        };
        let (mut reused, mut fresh) = (block.clone(), block.clone());
        opt.run(&mut reused);
        super::Optimizer::new().run(&mut fresh);
        assert_eq!(reused.ops, fresh.ops, "seed {seed}");
        assert_eq!(reused.temps, fresh.temps, "seed {seed}");
    }
}

// ---- Random blocks -------------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

struct Gen {
    rng: Rng,
    b: Builder,
    locals: Vec<Temp>,
    scratch: Vec<Temp>,
    pending: Vec<Label>,
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    7,
    31,
    32,
    63,
    0xff,
    0x80,
    0x8000_0000,
    0xffff_ffff,
    u64::MAX,
];

impl Gen {
    fn ty(&mut self) -> Type {
        if self.rng.chance(50) {
            Type::I64
        } else {
            Type::I32
        }
    }

    /// A readable value of type `ty`.
    fn operand(&mut self, ty: Type) -> Temp {
        loop {
            let t = match self.rng.below(10) {
                0..=2 => {
                    let v = if self.rng.chance(70) {
                        self.rng.pick(&INTERESTING)
                    } else {
                        self.rng.next()
                    };
                    return self.b.constant(ty, v);
                }
                3..=5 => self.b.global(self.rng.below(4)),
                6 | 7 if !self.scratch.is_empty() => self.rng.pick(&self.scratch),
                _ if !self.locals.is_empty() => self.rng.pick(&self.locals),
                _ => continue,
            };
            if self.b.ty(t) == ty {
                return t;
            }
        }
    }

    /// A writable temp of type `ty`.
    fn dest(&mut self, ty: Type) -> Temp {
        loop {
            let t = match self.rng.below(10) {
                0..=2 => self.b.global(self.rng.below(4)),
                3 | 4 if !self.locals.is_empty() => self.rng.pick(&self.locals),
                5 | 6 if !self.scratch.is_empty() => self.rng.pick(&self.scratch),
                _ => {
                    let t = self.b.scratch(ty);
                    self.scratch.push(t);
                    return t;
                }
            };
            if self.b.ty(t) == ty {
                return t;
            }
        }
    }

    fn label_here(&mut self) {
        if let Some(l) = self.pending.pop() {
            self.b.set_label(l);
            self.scratch.clear();
        }
    }

    fn op(&mut self) {
        let ty = self.ty();
        match self.rng.below(20) {
            0 | 1 => {
                let (a, d) = (self.operand(ty), self.dest(ty));
                self.b.mov(d, a);
            }
            2..=6 => {
                let op = self.rng.pick(&BinOp::ALL);
                let (x, y) = (self.operand(ty), self.operand(ty));
                let d = self.dest(ty);
                self.b.binary(op, d, x, y);
            }
            7 => {
                let op = self.rng.pick(&UnOp::ALL);
                let (x, d) = (self.operand(ty), self.dest(ty));
                self.b.unary(op, d, x);
            }
            8 => {
                let from = self.rng.pick(&ExtFrom::ALL);
                let dty = if from.bits() == 32 { Type::I64 } else { ty };
                let sty = self.ty();
                let (x, d) = (self.operand(sty), self.dest(dty));
                self.b.ext(from, d, x);
            }
            9 => {
                let (x, d) = (self.operand(Type::I64), self.dest(Type::I32));
                self.b.trunc(d, x);
            }
            10 => {
                let len = 1 + self.rng.below(ty.bits() as usize) as u8;
                let pos = self.rng.below(ty.bits() as usize - len as usize + 1) as u8;
                let signed = self.rng.chance(50);
                let (x, d) = (self.operand(ty), self.dest(ty));
                self.b.extract(d, x, pos, len, signed);
            }
            11 => {
                let len = 1 + self.rng.below(ty.bits() as usize) as u8;
                let pos = self.rng.below(ty.bits() as usize - len as usize + 1) as u8;
                let vty = self.ty();
                let (x, y, d) = (self.operand(ty), self.operand(vty), self.dest(ty));
                self.b.deposit(d, x, y, pos, len);
            }
            12 | 13 => {
                let cond = self.rng.pick(&Cond::ALL);
                let (x, y) = (self.operand(ty), self.operand(ty));
                let dty = self.ty();
                let d = self.dest(dty);
                self.b.setcond(cond, d, x, y);
            }
            14 => {
                let cond = self.rng.pick(&Cond::ALL);
                let (x, y) = (self.operand(ty), self.operand(ty));
                let (t, f) = (self.operand(ty), self.operand(ty));
                let d = self.dest(ty);
                self.b.movcond(cond, d, x, y, t, f);
            }
            15 => {
                let size = self.rng.pick(&Size::ALL);
                let ty = if size == Size::B64 { Type::I64 } else { ty };
                let mop = MemOp {
                    size,
                    signed: self.rng.chance(50),
                    aligned: false,
                };
                let addr = self.operand(Type::I64);
                if self.rng.chance(50) {
                    let d = self.dest(ty);
                    self.b.load(d, addr, mop, 0);
                } else {
                    let x = self.operand(ty);
                    self.b.store(x, addr, mop, 1);
                }
            }
            16 => {
                let offset = BASE + 32 + 8 * self.rng.below(4) as u32;
                let mop = MemOp::unsigned(if ty == Type::I64 {
                    Size::B64
                } else {
                    Size::B32
                });
                if self.rng.chance(50) {
                    let d = self.dest(ty);
                    self.b.env_load(d, offset, mop);
                } else {
                    let x = self.operand(ty);
                    self.b.env_store(x, offset, mop);
                }
            }
            17 => {
                let helper = self.rng.pick(&HELPERS);
                let n = self.rng.below(4);
                let mut args = vec![Temp::ENV; n];
                for a in args.iter_mut() {
                    if self.rng.chance(80) {
                        let ty = self.ty();
                        *a = self.operand(ty);
                    }
                }
                let ret = self.rng.chance(60).then(|| self.dest(ty));
                self.b.call(helper, &args, ret);
            }
            18 => {
                let l = self.b.new_label();
                let cond = self.rng.pick(&Cond::ALL);
                let (x, y) = (self.operand(ty), self.operand(ty));
                self.b.brcond(cond, x, y, l);
                self.pending.push(l);
            }
            _ => {
                if self.rng.chance(50) {
                    self.label_here();
                } else {
                    self.b.fence();
                }
            }
        }
    }

    fn block(seed: u64) -> Block {
        let mut g = Gen {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            b: Builder::new(globals(), Type::I64),
            locals: Vec::new(),
            scratch: Vec::new(),
            pending: Vec::new(),
        };
        for _ in 0..3 {
            let ty = g.ty();
            let l = g.b.local(ty);
            let v = g.operand(ty);
            g.b.mov(l, v);
            g.locals.push(l);
        }
        let insns = 1 + g.rng.below(8);
        for i in 0..insns {
            g.b.insn_start(0x1000 + 4 * i as u64, i as u64);
            for _ in 0..g.rng.below(8) {
                g.op();
            }
        }
        while !g.pending.is_empty() {
            g.label_here();
        }
        match g.rng.below(4) {
            0 => g.b.goto_tb(0),
            1 => g.b.exit_tb(3),
            2 => g.b.lookup_and_goto(),
            _ => {
                let l = g.b.new_label();
                let x = g.operand(Type::I64);
                g.b.brcondi(Cond::Ltu, x, 0x1000, l);
                g.b.goto_tb(0);
                g.b.set_label(l);
                g.b.goto_tb(1);
            }
        }
        g.b.finish()
    }
}

#[test]
fn random_blocks_behave_the_same_after_optimization() {
    let mut rng = Rng(0x1234_5678);
    let mut ops_before = 0;
    let mut ops_after = 0;
    for seed in 0..3000u64 {
        let block = Gen::block(seed);
        let out = optimized(&block);
        ops_before += block.op_count();
        ops_after += out.op_count();
        assert_eq!(out.insn_starts(), block.insn_starts(), "seed {seed}");
        for _ in 0..4 {
            let init = [rng.next(), rng.next(), rng.next(), rng.next()];
            let init = [init[0], init[1] % 16, init[2], init[3] & 0xff];
            assert_eq!(
                run(&block, &init),
                run(&out, &init),
                "seed {seed} init {init:x?}\nbefore:\n{block}after:\n{out}"
            );
        }
    }
    eprintln!("random blocks: {ops_before} ops before optimization, {ops_after} after");
}

#[test]
fn known_bits_never_claim_more_than_eval_gives() {
    use super::bits::Bits;
    let mut rng = Rng(99);
    // A random partial knowledge of x, and a check that x satisfies it.
    let random_bits = |rng: &mut Rng, ty: Type, x: u64| {
        let known = rng.next() & rng.next();
        Bits {
            zero: (!x & known) | !ty.mask(),
            one: x & known & ty.mask(),
        }
    };
    let fits = |b: Bits, v: u64| v & b.zero == 0 && !v & b.one == 0;
    for _ in 0..20_000 {
        let ty = if rng.chance(50) { Type::I64 } else { Type::I32 };
        let x = rng.next() >> rng.below(64) & ty.mask();
        let y = (if rng.chance(30) {
            rng.pick(&INTERESTING)
        } else {
            rng.next() >> rng.below(64)
        }) & ty.mask();
        let (bx, by) = (random_bits(&mut rng, ty, x), random_bits(&mut rng, ty, y));
        for op in BinOp::ALL {
            let r = Bits::binary(op, ty, bx, by);
            assert!(
                fits(r, op.eval(ty, x, y)),
                "{op:?} {ty} {x:#x} {y:#x} {r:x?}"
            );
        }
        for op in UnOp::ALL {
            let r = Bits::unary(op, ty, bx);
            assert!(fits(r, op.eval(ty, x)), "{op:?} {ty} {x:#x} {r:x?}");
        }
        for from in ExtFrom::ALL {
            let r = bx.extend(Type::I64, from.bits(), from.signed());
            assert!(fits(r, from.eval(Type::I64, x)), "{from:?} {x:#x}");
        }
        for cond in Cond::ALL {
            if let Some(c) = Bits::cond(cond, ty, bx, by) {
                assert_eq!(c, cond.eval(ty, x, y), "{cond:?} {ty} {x:#x} {y:#x}");
            }
        }
    }
}

/// Nanoseconds per op (counting every op of the input, markers included) that `pass` takes
/// on `blocks`, best of several rounds. Each block is copied just before it is timed, as a
/// frontend would hand over a block it just wrote (hot in cache), and timed on its own.
fn time_per_op(blocks: &[Block], mut pass: impl FnMut(&mut Block)) -> f64 {
    let ops: usize = blocks.iter().map(|b| b.ops.len()).sum();
    let mut best = f64::MAX;
    for _ in 0..7 {
        let mut total = std::time::Duration::ZERO;
        for b in blocks {
            let mut b = b.clone();
            let start = std::time::Instant::now();
            pass(&mut b);
            total += start.elapsed();
        }
        best = best.min(total.as_nanos() as f64 / ops as f64);
    }
    best
}

#[test]
fn optimization_time_per_op() {
    let blocks: Vec<Block> = (0..500).map(|s| Gen::block(10_000 + s)).collect();
    let mut opt = super::Optimizer::new();
    let ns = time_per_op(&blocks, |b| opt.run(b));
    eprintln!("optimize (small random blocks): {ns:.1} ns per op (debug builds are much slower)");
}

// ---- Realistic blocks and timing -----------------------------------------------------------

/// A riscv-like CPU state: `pc` then `x1..x31`, all I64.
fn riscv_globals() -> Arc<[GlobalDef]> {
    const NAMES: [&str; 32] = [
        "pc", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
        "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
        "x27", "x28", "x29", "x30", "x31",
    ];
    NAMES
        .iter()
        .enumerate()
        .map(|(i, &name)| GlobalDef {
            name,
            ty: Type::I64,
            offset: BASE + 8 * i as u32,
        })
        .collect()
}

/// A block shaped like what a simple riscv64 frontend emits for `insns` instructions: each
/// an `insn_start` and 1-5 ops on globals and fresh scratch temps (reads of x0 are the
/// constant 0, as in a real frontend), some loads and stores, and a conditional branch with
/// two chained exits at the end.
fn riscv_like_block(seed: u64, insns: usize) -> Block {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut b = Builder::new(riscv_globals(), Type::I64);
    let mut pc = 0x8000_0000u64 + (seed % 64) * 0x100;
    let reg = |b: &mut Builder, rng: &mut Rng| -> Temp {
        // x0 reads as zero; small register numbers (sp, a0-a5, t0-t2) are the common ones.
        match rng.below(12) {
            0 => b.constant(Type::I64, 0),
            1..=8 => b.global(rng.pick(&[2, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15])),
            _ => b.global(1 + rng.below(31)),
        }
    };
    let dst =
        |b: &Builder, rng: &mut Rng| b.global(rng.pick(&[1, 5, 6, 7, 10, 11, 12, 13, 14, 15]));
    for _ in 0..insns {
        b.insn_start(pc, 0);
        let imm = (rng.next() as i64 >> 52) as u64; // a sign-extended 12-bit immediate
        match rng.below(12) {
            // addi / li (addi rd, x0, imm)
            0..=2 => {
                let (s, d) = (reg(&mut b, &mut rng), dst(&b, &mut rng));
                let t = b.scratch(Type::I64);
                b.addi(t, s, imm);
                b.mov(d, t);
            }
            // add / sub / and / or / xor
            3 | 4 => {
                let op = rng.pick(&[BinOp::Add, BinOp::Sub, BinOp::And, BinOp::Or, BinOp::Xor]);
                let (x, y, d) = (
                    reg(&mut b, &mut rng),
                    reg(&mut b, &mut rng),
                    dst(&b, &mut rng),
                );
                b.binary(op, d, x, y);
            }
            // ld / lw / lbu
            5 | 6 => {
                let s = reg(&mut b, &mut rng);
                let d = dst(&b, &mut rng);
                let (addr, val) = (b.scratch(Type::I64), b.scratch(Type::I64));
                b.addi(addr, s, imm);
                let mop = rng.pick(&[
                    MemOp::unsigned(Size::B64),
                    MemOp::signed(Size::B32),
                    MemOp::unsigned(Size::B8),
                ]);
                b.load(val, addr, mop, 0);
                b.mov(d, val);
            }
            // sd / sw
            7 => {
                let (s, v) = (reg(&mut b, &mut rng), reg(&mut b, &mut rng));
                let addr = b.scratch(Type::I64);
                b.addi(addr, s, imm);
                let mop = rng.pick(&[MemOp::unsigned(Size::B64), MemOp::unsigned(Size::B32)]);
                b.store(v, addr, mop, 0);
            }
            // slt / sltu / sltiu
            8 => {
                let (x, y, d) = (
                    reg(&mut b, &mut rng),
                    reg(&mut b, &mut rng),
                    dst(&b, &mut rng),
                );
                let t = b.scratch(Type::I64);
                b.setcond(rng.pick(&[Cond::Lt, Cond::Ltu]), t, x, y);
                b.mov(d, t);
            }
            // slli / srli / srai
            9 => {
                let (s, d) = (reg(&mut b, &mut rng), dst(&b, &mut rng));
                let t = b.scratch(Type::I64);
                let op = rng.pick(&[BinOp::Shl, BinOp::Shr, BinOp::Sar]);
                b.binary_imm(op, t, s, rng.below(64) as u64);
                b.mov(d, t);
            }
            // addiw: add, then sign-extend the low 32 bits
            10 => {
                let (s, d) = (reg(&mut b, &mut rng), dst(&b, &mut rng));
                let (t, u) = (b.scratch(Type::I64), b.scratch(Type::I64));
                b.addi(t, s, imm);
                b.ext(ExtFrom::S32, u, t);
                b.mov(d, u);
            }
            // lui / auipc
            _ => {
                let d = dst(&b, &mut rng);
                b.movi(d, pc.wrapping_add(imm << 12));
            }
        }
        pc += 4;
    }
    b.insn_start(pc, 0);
    let taken = b.new_label();
    let (x, y) = (reg(&mut b, &mut rng), reg(&mut b, &mut rng));
    b.brcond(
        rng.pick(&[Cond::Eq, Cond::Ne, Cond::Lt, Cond::Geu]),
        x,
        y,
        taken,
    );
    let pcg = b.global(0);
    b.movi(pcg, pc + 4);
    b.goto_tb(0);
    b.set_label(taken);
    b.movi(pcg, pc.wrapping_add(rng.next() % 4096 * 2));
    b.goto_tb(1);
    b.finish()
}

#[test]
fn riscv_like_blocks_optimize_correctly() {
    let mut rng = Rng(7);
    for seed in 0..300 {
        let block = riscv_like_block(seed, 1 + seed as usize % 60);
        let out = optimized(&block);
        assert_eq!(out.insn_starts(), block.insn_starts(), "seed {seed}");
        assert!(out.op_count() <= block.op_count());
        for _ in 0..4 {
            let init: Vec<u64> = (0..32).map(|_| rng.next() >> rng.below(64)).collect();
            assert_eq!(
                run(&block, &init),
                run(&out, &init),
                "seed {seed}\n{block}{out}"
            );
        }
    }
}

/// The optimizer's cost on blocks of realistic size and shape (40 instructions, ~125 ops),
/// per pass, printed, not asserted (timing depends on the machine; run in release).
#[test]
fn optimization_time_per_op_on_riscv_like_blocks() {
    let blocks: Vec<Block> = (0..400).map(|s| riscv_like_block(s, 40)).collect();
    let ops: usize = blocks.iter().map(|b| b.ops.len()).sum();
    let mut opt = super::Optimizer::new();
    let mut after = 0;
    for b in &blocks {
        let mut b = b.clone();
        opt.run(&mut b);
        after += b.ops.len();
    }
    let fold = time_per_op(&blocks, |b| {
        opt.fold.run(b, &mut opt.label_pos);
    });
    let fold_cfg = time_per_op(&blocks, |b| {
        if opt.fold.run(b, &mut opt.label_pos) {
            opt.cfg.run(b, &opt.label_pos);
        }
    });
    let all = time_per_op(&blocks, |b| opt.run(b));
    let copy = time_per_op(&blocks, |_| {});
    eprintln!(
        "optimize (riscv-like blocks, {} ops before, {} after): {all:.1} ns per op \
         (fold {fold:.1}, cleanup {:.1}, dce {:.1}; timer overhead {copy:.1})",
        ops / blocks.len(),
        after / blocks.len(),
        fold_cfg - fold,
        all - fold_cfg,
    );
    // The convenience function (a per-thread optimizer) costs the same.
    let conv = time_per_op(&blocks, optimize);
    eprintln!("optimize() convenience: {conv:.1} ns per op");
    for insns in [15, 80] {
        let blocks: Vec<Block> = (0..200).map(|s| riscv_like_block(s, insns)).collect();
        let ns = time_per_op(&blocks, |b| opt.run(b));
        let ops = blocks.iter().map(|b| b.ops.len()).sum::<usize>() / blocks.len();
        eprintln!("optimize (riscv-like blocks, {ops} ops): {ns:.1} ns per op");
    }
}
