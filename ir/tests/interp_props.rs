//! Property tests of the interpreter over random blocks from `ir::testing` (run with
//! `cargo test -p ir --features testing`).
#![cfg(feature = "testing")]

use std::collections::HashSet;

use ir::abi::ExitKind;
use ir::interp::Interpreter;
use ir::testing::{arb_block, arb_env, diff, print_block, RaiseKind, TestEnvInit, TestState};
use ir::{Block, Op};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// `cases` cases; failures are printed, not persisted (integration tests have no source file
/// proptest can locate for its regression files).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// The generator's promise: every block it makes passes the verifier.
    #[test]
    fn generated_blocks_pass_the_verifier(block in arb_block()) {
        if let Err(e) = ir::verify::verify(&block) {
            panic!("{e}\n{}", print_block(&block));
        }
    }

    /// Random valid blocks run to a terminal (or an unwind) without panicking, and a second
    /// run from the same initial state, with the same reused interpreter, ends identically.
    #[test]
    fn the_interpreter_is_deterministic(block in arb_block(), init in arb_env()) {
        let mut interp = Interpreter::new();
        let first = TestState::new(&init).run_interp(&mut interp, &block, 3);
        let second = TestState::new(&init).run_interp(&mut interp, &block, 3);
        if let Some(d) = diff(&first, &second) {
            panic!("{d}\n{}", print_block(&block));
        }
        prop_assert_eq!(first.exit.block_id, 3);
        // Something raised exactly when the block unwound, and only once.
        prop_assert_eq!(first.exit.kind == ExitKind::Unwind, first.unwind != 0);
        prop_assert_eq!(first.raised.count, first.unwind);
        // The four unnamed global slots are never written.
        prop_assert_eq!(&first.globals[12..], &init.globals[12..]);
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// The optimizer preserves meaning: an optimized block ends in the same state (globals,
    /// state fields, memory, counters, exception record and index, exit code) as the
    /// original, from the same random initial state.
    #[test]
    fn optimized_blocks_behave_like_the_originals(block in arb_block(), init in arb_env()) {
        let mut optimized = block.clone();
        ir::opt::optimize(&mut optimized);
        let mut interp = Interpreter::new();
        let want = TestState::new(&init).run_interp(&mut interp, &block, 3);
        let got = TestState::new(&init).run_interp(&mut interp, &optimized, 3);
        if let Some(d) = diff(&want, &got) {
            panic!(
                "{d}\noriginal:\n{}optimized:\n{}initial state: {init:?}",
                print_block(&block),
                print_block(&optimized)
            );
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// The optimizer's output is a valid block, which the backend may rely on.
    #[test]
    fn optimized_blocks_pass_the_verifier(block in arb_block()) {
        let mut optimized = block.clone();
        ir::opt::optimize(&mut optimized);
        if let Err(e) = ir::verify::verify(&optimized) {
            panic!(
                "{e}\noriginal:\n{}optimized:\n{}",
                print_block(&block),
                print_block(&optimized)
            );
        }
    }
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Mov { .. } => "mov",
        Op::Binary { .. } => "binary",
        Op::Unary { .. } => "unary",
        Op::Ext { .. } => "ext",
        Op::Trunc { .. } => "trunc",
        Op::Extract { .. } => "extract",
        Op::Deposit { .. } => "deposit",
        Op::SetCond { .. } => "setcond",
        Op::MovCond { .. } => "movcond",
        Op::SetLabel(_) => "set_label",
        Op::Br(_) => "br",
        Op::BrCond { .. } => "brcond",
        Op::Load { .. } => "load",
        Op::Store { .. } => "store",
        Op::EnvLoad { .. } => "env_load",
        Op::EnvStore { .. } => "env_store",
        Op::Call { .. } => "call",
        Op::Fence => "fence",
        Op::InsnStart { .. } => "insn_start",
        Op::GotoTb { .. } => "goto_tb",
        Op::ExitTb { .. } => "exit_tb",
        Op::LookupAndGoto => "lookup_and_goto",
    }
}

/// The generator is only useful if it reaches everything: every op kind, every exit kind,
/// every kind of raise, the MMIO and watched pages, I32 addresses, and blocks that run long
/// enough to matter.
#[test]
fn the_generator_covers_every_op_exit_and_raise() {
    let mut runner = TestRunner::deterministic();
    let strategy = (arb_block(), arb_env());
    let mut ops = HashSet::new();
    let mut exits = HashSet::new();
    let mut raises = HashSet::new();
    let (mut mmio, mut watched, mut i32_addr, mut loops) = (0, 0, 0, 0);
    let mut interp = Interpreter::new();
    for _ in 0..600 {
        let (block, init): (Block, TestEnvInit) = strategy.new_tree(&mut runner).unwrap().current();
        ops.extend(block.ops.iter().map(op_kind));
        if block.addr_type == ir::Type::I32 {
            i32_addr += 1;
        }
        let back = block.ops.iter().enumerate().any(|(i, op)| match op {
            Op::BrCond { label, .. } => block.ops[..i].contains(&Op::SetLabel(*label)),
            _ => false,
        });
        loops += back as u32;
        let o = TestState::new(&init).run_interp(&mut interp, &block, 0);
        exits.insert(format!("{:?}", o.exit.kind));
        raises.insert(o.raised.kind);
        mmio += (o.mmio_reads + o.mmio_writes > 0) as u32;
        watched += (o.watched_writes > 0) as u32;
    }
    for k in [
        "mov",
        "binary",
        "unary",
        "ext",
        "trunc",
        "extract",
        "deposit",
        "setcond",
        "movcond",
        "set_label",
        "br",
        "brcond",
        "load",
        "store",
        "env_load",
        "env_store",
        "call",
        "fence",
        "insn_start",
        "goto_tb",
        "exit_tb",
        "lookup_and_goto",
    ] {
        assert!(ops.contains(k), "no {k} generated");
    }
    for k in ["GotoTb0", "GotoTb1", "Lookup", "Exit", "Unwind"] {
        assert!(exits.contains(k), "no {k} exit: {exits:?}");
    }
    for k in [
        RaiseKind::None,
        RaiseKind::Fault,
        RaiseKind::Misaligned,
        RaiseKind::Helper,
    ] {
        assert!(raises.contains(&k), "no {k:?}");
    }
    assert!(mmio > 10 && watched > 10, "mmio {mmio} watched {watched}");
    assert!(i32_addr > 30 && loops > 30, "i32 {i32_addr} loops {loops}");
}
