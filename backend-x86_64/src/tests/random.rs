//! Random valid blocks run through the interpreter and the JIT from the same state.

use ir::interp::Interpreter;
use ir::testing::{arb_block, arb_env, diff, print_block, TestState};
use proptest::prelude::*;

use super::{backend, run};
use crate::HostFeatures;

fn check(
    block: &ir::Block,
    init: &ir::testing::TestEnvInit,
    features: HostFeatures,
) -> Result<(), TestCaseError> {
    let mut reference = TestState::new(init);
    let want = reference.run_interp(&mut Interpreter::new(), block, 1);
    let mut be = backend(features);
    let mut jit = TestState::new(init);
    let exit = run(&mut be, block, &mut jit);
    let got = jit.outcome(exit);
    if let Some(d) = diff(&want, &got) {
        return Err(TestCaseError::fail(format!("{}\n{d}", print_block(block))));
    }
    Ok(())
}

proptest! {
    // 300 cases by default; PROPTEST_CASES raises it for longer hunts.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    #[test]
    fn jit_agrees_with_the_interpreter_baseline(block in arb_block(), init in arb_env()) {
        check(&block, &init, HostFeatures::baseline())?;
    }

    #[test]
    fn jit_agrees_with_the_interpreter_host_features(block in arb_block(), init in arb_env()) {
        check(&block, &init, HostFeatures::detect())?;
    }
}
