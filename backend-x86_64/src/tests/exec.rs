//! Execution tests: blocks built with the Builder, run with `enter` on the test CPU state.

use ir::abi::{ExitCode, ExitKind};
use ir::testing::{
    self, globals, TestEnvInit, TestState, HELPER_RAISE, HELPER_READS, HELPER_SIX, HELPER_WRITES,
    WINDOW_BASE,
};
use ir::{BinOp, Builder, Cond, ExtFrom, MemOp, Size, Type, UnOp};

use super::{backend, fresh, run};
use crate::{BackendConfig, BackendError, HostFeatures};

const VALUES: [u64; 14] = [
    0,
    1,
    2,
    3,
    31,
    32,
    63,
    64,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_ffff,
    0x1234_5678_9abc_def1,
];

/// Global of type `ty` used as operand/result holder: g0 (I64) or g1 (I32), g2/g4 for `b`.
fn gl(ty: Type) -> (usize, usize, usize) {
    match ty {
        Type::I64 => (0, 2, 3),
        Type::I32 => (1, 4, 6),
    }
}

fn state_with(a: u64, b: u64) -> TestState {
    let mut init = TestEnvInit::default();
    init.globals[0] = a;
    init.globals[2] = b;
    init.globals[1] = a & 0xffff_ffff;
    init.globals[4] = b & 0xffff_ffff;
    TestState::new(&init)
}

fn for_features(mut f: impl FnMut(HostFeatures)) {
    f(HostFeatures::baseline());
    f(HostFeatures::detect());
}

#[test]
fn every_binary_op_matches_eval_on_edge_values() {
    for_features(|feat| {
        let mut be = backend(feat);
        for ty in [Type::I32, Type::I64] {
            let (ga, gb, gd) = gl(ty);
            for op in BinOp::ALL {
                // Register operands.
                let mut b = Builder::new(globals(), Type::I64);
                let (x, y, d) = (b.global(ga), b.global(gb), b.global(gd));
                b.binary(op, d, x, y);
                b.exit_tb(0);
                let reg_block = b.finish();
                for &va in &VALUES {
                    for &vb in &VALUES {
                        let mut s = state_with(va, vb);
                        run(&mut be, &reg_block, &mut s);
                        let got = s.env().globals[gd] & ty.mask();
                        assert_eq!(
                            got,
                            op.eval(ty, va, vb),
                            "{op:?} {ty} {va:#x} {vb:#x} {feat:?}"
                        );
                        // Immediate second operand.
                        let mut b = Builder::new(globals(), Type::I64);
                        let (x, d) = (b.global(ga), b.global(gd));
                        b.binary_imm(op, d, x, vb);
                        b.exit_tb(0);
                        let blk = b.finish();
                        let mut s = state_with(va, 0);
                        run(&mut be, &blk, &mut s);
                        let got = s.env().globals[gd] & ty.mask();
                        assert_eq!(got, op.eval(ty, va, vb), "{op:?} imm {ty} {va:#x} {vb:#x}");
                    }
                }
                be.flush();
            }
        }
    });
}

#[test]
fn unary_ext_extract_deposit_setcond_movcond_match_eval() {
    for_features(|feat| {
        let mut be = backend(feat);
        for ty in [Type::I32, Type::I64] {
            let (ga, gb, gd) = gl(ty);
            for &va in &VALUES {
                for op in UnOp::ALL {
                    let mut b = Builder::new(globals(), Type::I64);
                    let (x, d) = (b.global(ga), b.global(gd));
                    b.unary(op, d, x);
                    b.exit_tb(0);
                    let mut s = state_with(va, 0);
                    run(&mut be, &b.finish(), &mut s);
                    assert_eq!(
                        s.env().globals[gd] & ty.mask(),
                        op.eval(ty, va),
                        "{op:?} {ty} {va:#x}"
                    );
                }
                for from in ExtFrom::ALL {
                    if ty == Type::I32 && from.bits() == 32 {
                        continue;
                    }
                    let mut b = Builder::new(globals(), Type::I64);
                    let (x, d) = (b.global(ga), b.global(gd));
                    b.ext(from, d, x);
                    b.exit_tb(0);
                    let mut s = state_with(va, 0);
                    run(&mut be, &b.finish(), &mut s);
                    assert_eq!(
                        s.env().globals[gd] & ty.mask(),
                        from.eval(ty, va),
                        "{from:?} {ty}"
                    );
                }
                let bits = ty.bits() as u8;
                for (pos, len) in [
                    (0, 1),
                    (0, 8),
                    (0, 16),
                    (0, 32),
                    (3, 5),
                    (8, 24),
                    (bits - 1, 1),
                    (0, bits),
                    (4, bits - 4),
                ] {
                    if pos + len > bits {
                        continue;
                    }
                    for signed in [false, true] {
                        let mut b = Builder::new(globals(), Type::I64);
                        let (x, d) = (b.global(ga), b.global(gd));
                        b.extract(d, x, pos, len, signed);
                        b.exit_tb(0);
                        let mut s = state_with(va, 0);
                        run(&mut be, &b.finish(), &mut s);
                        let want = ir::extract(ty, va, pos, len, signed);
                        assert_eq!(
                            s.env().globals[gd] & ty.mask(),
                            want,
                            "extract {pos} {len} {signed} {ty} {va:#x}"
                        );
                    }
                    for &vb in &VALUES[..6] {
                        let mut b = Builder::new(globals(), Type::I64);
                        let (x, y, d) = (b.global(ga), b.global(gb), b.global(gd));
                        b.deposit(d, x, y, pos, len);
                        b.exit_tb(0);
                        let mut s = state_with(va, vb.wrapping_mul(0x0123_4567_89ab_cdef));
                        let vb = s.env().globals[gb];
                        run(&mut be, &b.finish(), &mut s);
                        let want = ir::deposit(ty, va, vb, pos, len);
                        assert_eq!(
                            s.env().globals[gd] & ty.mask(),
                            want,
                            "deposit {pos} {len} {ty}"
                        );
                    }
                }
                for &vb in &VALUES {
                    for cond in Cond::ALL {
                        let mut b = Builder::new(globals(), Type::I64);
                        let (x, y, d) = (b.global(ga), b.global(gb), b.global(gd));
                        b.setcond(cond, d, x, y);
                        let t = b.constant(ty, 0x55);
                        let m = b.global(if ty == Type::I64 { 5 } else { 9 });
                        b.movcond(cond, m, x, y, t, y);
                        b.exit_tb(0);
                        let mut s = state_with(va, vb);
                        run(&mut be, &b.finish(), &mut s);
                        let c = cond.eval(ty, va, vb);
                        assert_eq!(
                            s.env().globals[gd] & ty.mask(),
                            c as u64,
                            "setcond {cond:?}"
                        );
                        let mi = if ty == Type::I64 { 5 } else { 9 };
                        let want = if c { 0x55 } else { vb & ty.mask() };
                        assert_eq!(s.env().globals[mi] & ty.mask(), want, "movcond {cond:?}");
                    }
                }
                be.flush();
            }
        }
    });
}

#[test]
fn a_backward_loop_runs_a_thousand_times_and_forward_branches_skip() {
    let mut be = backend(HostFeatures::detect());
    let mut b = Builder::new(globals(), Type::I64);
    let (g0, g2) = (b.global(0), b.global(2));
    let n = b.local(Type::I64);
    b.movi(n, 1000);
    b.movi(g0, 0);
    let top = b.new_label();
    let skip = b.new_label();
    b.set_label(top);
    b.addi(g0, g0, 3);
    b.addi(n, n, u64::MAX);
    b.brcondi(Cond::Ne, n, 0, top);
    b.brcondi(Cond::Eq, g0, 3000, skip);
    b.movi(g2, 0xbad);
    b.set_label(skip);
    b.exit_tb(7);
    let mut s = fresh();
    let exit = run(&mut be, &b.finish(), &mut s);
    assert_eq!(exit.kind, ExitKind::Exit);
    assert_eq!(exit.payload, 7);
    assert_eq!(s.env().globals[0], 3000);
    assert_eq!(s.env().globals[2], 0);
}

#[test]
fn six_argument_helpers_and_global_syncing_flags() {
    let mut be = backend(HostFeatures::detect());
    let mut b = Builder::new(globals(), Type::I64);
    let g: Vec<_> = (0..8).map(|i| b.global(i)).collect();
    // g0 dirty before a READS call: the helper must see the new value.
    b.addi(g[0], g[0], 100);
    let r = b.scratch(Type::I64);
    let c = b.constant(Type::I64, 5);
    b.call(&HELPER_READS, &[ir::Temp::ENV, c], Some(r));
    b.mov(g[2], r);
    // Six arguments in order.
    let r6 = b.scratch(Type::I64);
    b.call(&HELPER_SIX, &[g[3], g[5], g[0], g[7], g[2], c], Some(r6));
    b.mov(g[8 - 1], r6);
    // g1 cached in a register, then written by the helper: must be reloaded.
    let t = b.scratch(Type::I32);
    b.addi(t, g[1], 1);
    let x = b.constant(Type::I64, 0x77);
    let r2 = b.scratch(Type::I64);
    b.call(&HELPER_WRITES, &[ir::Temp::ENV, x], Some(r2));
    b.add(g[4], g[1], t);
    b.mov(g[3], r2);
    b.exit_tb(0);
    let block = b.finish();
    let mut init = TestEnvInit::default();
    for i in 0..8 {
        init.globals[i] = (i as u64 + 1) * 0x1111;
    }
    let mut want = TestState::new(&init);
    let w = want.run_interp(&mut ir::interp::Interpreter::new(), &block, 1);
    let mut s = TestState::new(&init);
    let exit = run(&mut be, &block, &mut s);
    let got = s.outcome(exit);
    assert_eq!(testing::diff(&w, &got), None);
    assert_eq!(got.globals[2], 0x1111 + 100 + 5);
    assert_eq!(got.globals[1] & 0xffff_ffff, 0x77);
}

#[test]
fn a_raising_helper_leaves_through_unwind_with_globals_as_before() {
    let mut be = backend(HostFeatures::detect());
    let mut b = Builder::new(globals(), Type::I64);
    let (g0, g2) = (b.global(0), b.global(2));
    b.insn_start(0x1000, 0);
    b.addi(g0, g0, 1);
    b.insn_start(0x1004, 0);
    let one = b.constant(Type::I64, 3);
    let r = b.scratch(Type::I64);
    b.call(&HELPER_RAISE, &[ir::Temp::ENV, one], Some(r));
    b.mov(g2, r);
    b.exit_tb(0);
    let mut s = fresh();
    let exit = run(&mut be, &b.finish(), &mut s);
    assert_eq!(exit.kind, ExitKind::Unwind);
    assert_eq!(s.env().header.insn_index, 1);
    assert_eq!(s.env().globals[0], 1);
    assert_eq!(s.env().globals[2], 0);
}

#[test]
fn loads_and_stores_hit_miss_and_raise() {
    let mut be = backend(HostFeatures::detect());
    for (mmu, page, raises) in [
        (0u8, 0u64, false),
        (1, 0, false),
        (0, testing::FAULT_PAGE as u64, true),
    ] {
        let mut b = Builder::new(globals(), Type::I64);
        let (g0, g2, g3) = (b.global(0), b.global(2), b.global(3));
        b.insn_start(0x1000, 0);
        b.addi(g3, g3, 9);
        b.insn_start(0x1004, 0);
        let addr = b.constant(Type::I64, WINDOW_BASE + page * 4096 + 0x10);
        b.store(g0, addr, MemOp::unsigned(Size::B64), mmu);
        b.insn_start(0x1008, 0);
        b.load(g2, addr, MemOp::signed(Size::B16), mmu);
        b.exit_tb(0);
        let mut init = TestEnvInit::default();
        init.globals[0] = 0x1234_5678_9abc_fedc;
        let mut s = TestState::new(&init);
        let exit = run(&mut be, &b.finish(), &mut s);
        if raises {
            assert_eq!(exit.kind, ExitKind::Unwind);
            assert_eq!(s.env().header.insn_index, 1);
            assert_eq!(s.env().globals[3], 9, "globals as before the store");
            assert_eq!(s.env().globals[2], 0);
        } else {
            assert_eq!(exit.kind, ExitKind::Exit, "mmu {mmu}");
            assert_eq!(s.env().globals[2], 0xffff_ffff_ffff_fedc);
            assert_eq!(s.env().globals[3], 9);
        }
    }
}

#[test]
fn goto_tb_exits_until_linked_then_chains_and_unlinks() {
    let mut be = backend(HostFeatures::detect());
    let mut b = Builder::new(globals(), Type::I64);
    let g0 = b.global(0);
    b.addi(g0, g0, 1);
    b.goto_tb(0);
    let first = be.compile(&b.finish(), 10).unwrap();
    let slot = first.goto_slots[0].expect("slot 0");
    assert_eq!(slot.field % 4, 0, "rel32 field is 4-byte aligned");
    assert!(first.goto_slots[1].is_none());
    let mut b = Builder::new(globals(), Type::I64);
    let g2 = b.global(2);
    b.addi(g2, g2, 5);
    b.exit_tb(3);
    let second = be.compile(&b.finish(), 11).unwrap();
    let mut s = fresh();
    let go = |s: &mut TestState| {
        // SAFETY: both blocks were compiled since the last flush, over the test globals.
        ExitCode::decode(unsafe { be.enter(s.env_ptr(), first.entry) }).unwrap()
    };
    let e = go(&mut s);
    assert_eq!((e.block_id, e.kind), (10, ExitKind::GotoTb0));
    be.link(&slot, second.entry);
    let e = go(&mut s);
    assert_eq!((e.block_id, e.kind, e.payload), (11, ExitKind::Exit, 3));
    assert_eq!(s.env().globals[0], 2);
    assert_eq!(s.env().globals[2], 5);
    be.unlink(&slot);
    let e = go(&mut s);
    assert_eq!((e.block_id, e.kind), (10, ExitKind::GotoTb0));
    assert_eq!(s.env().globals[2], 5);
}

#[test]
fn exit_request_is_checked_at_entry() {
    let mut be = backend(HostFeatures::detect());
    let mut b = Builder::new(globals(), Type::I64);
    let g0 = b.global(0);
    b.addi(g0, g0, 1);
    b.exit_tb(0);
    let mut s = fresh();
    s.env_mut()
        .header
        .exit_request
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let e = run(&mut be, &b.finish(), &mut s);
    assert_eq!((e.block_id, e.kind), (1, ExitKind::ExitRequested));
    assert_eq!(s.env().globals[0], 0);
}

#[test]
fn lookup_and_goto_miss_returns_lookup() {
    let mut be = backend(HostFeatures::detect());
    let mut b = Builder::new(globals(), Type::I64);
    let g0 = b.global(0);
    b.addi(g0, g0, 1);
    b.lookup_and_goto();
    let mut s = fresh();
    let e = run(&mut be, &b.finish(), &mut s);
    assert_eq!((e.block_id, e.kind), (1, ExitKind::Lookup));
    assert_eq!(s.env().globals[0], 1);
}

#[test]
fn a_full_buffer_reports_buffer_full_and_flush_recovers() {
    let mut be = crate::Backend::new(BackendConfig {
        code_size: 4096,
        features: HostFeatures::baseline(),
        pc_offset: None,
        cross_page_probe: false,
    })
    .unwrap();
    let mut b = Builder::new(globals(), Type::I64);
    let g0 = b.global(0);
    for _ in 0..40 {
        b.addi(g0, g0, 0x1234_5678);
    }
    b.exit_tb(0);
    let block = b.finish();
    let mut n = 0;
    loop {
        match be.compile(&block, 1) {
            Ok(_) => n += 1,
            Err(BackendError::BufferFull) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(n < 1000);
    }
    assert!(n >= 1);
    be.flush();
    let mut s = fresh();
    run(&mut be, &block, &mut s);
    assert_eq!(s.env().globals[0], 40 * 0x1234_5678);
}

/// Every global in a register (the caller-saved ones too, 12 globals for 5 callee-saved
/// registers), most of them dirty, across slow-path accesses (MMIO page, another MMU mode)
/// and one that raises: the stub stores the dirty ones, reloads those in caller-saved
/// registers after the call, and the results match the interpreter's.
#[test]
fn slow_paths_keep_globals_held_in_caller_saved_registers() {
    let mut be = backend(HostFeatures::detect());
    for (mmu, page) in [
        (0u8, testing::MMIO_PAGE as u64),
        (2, 1),
        (0, testing::FAULT_PAGE as u64),
    ] {
        let mut b = Builder::new(globals(), Type::I64);
        let g: Vec<_> = (0..12).map(|i| b.global(i)).collect();
        b.insn_start(0x1000, 0);
        for (i, &x) in g.iter().enumerate() {
            b.addi(x, x, i as u64 * 3 + 1);
        }
        let addr = b.scratch(Type::I64);
        b.movi(addr, WINDOW_BASE + page * 4096 + 64);
        b.insn_start(0x1004, 0);
        let v = b.scratch(Type::I64);
        b.load(v, addr, MemOp::unsigned(Size::B64), mmu);
        b.store(g[5], addr, MemOp::unsigned(Size::B32), mmu);
        b.insn_start(0x1008, 0);
        for &x in &g[6..] {
            b.add(x, x, g[0]);
        }
        b.xor(g[3], g[3], v);
        b.exit_tb(0);
        let block = b.finish();
        let mut init = TestEnvInit::default();
        for (i, x) in init.globals.iter_mut().enumerate() {
            *x = 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1);
        }
        let mut want = TestState::new(&init);
        let w = want.run_interp(&mut ir::interp::Interpreter::new(), &block, 1);
        let mut s = TestState::new(&init);
        let exit = run(&mut be, &block, &mut s);
        let got = s.outcome(exit);
        assert_eq!(testing::diff(&w, &got), None, "mmu {mmu} page {page}");
        let raises = page == testing::FAULT_PAGE as u64;
        assert_eq!(exit.kind == ExitKind::Unwind, raises);
    }
}
