//! Tests of the backend: byte-exact emission, execution of every op, control flow, helpers,
//! memory paths, chaining, and random blocks against the reference interpreter.

mod emit_tests;
mod encode;
mod exec;
mod random;
mod speed;

use crate::{Backend, BackendConfig, HostFeatures};
use ir::abi::ExitCode;
use ir::testing::{TestEnvInit, TestState};

pub(crate) fn backend(features: HostFeatures) -> Backend {
    Backend::new(BackendConfig {
        code_size: 1 << 20,
        features,
    })
    .unwrap()
}

/// Compiles and runs `block` (id 1) on `state`.
pub(crate) fn run(be: &mut Backend, block: &ir::Block, state: &mut TestState) -> ExitCode {
    state.env_mut().lookup_target = be.lookup_miss_address() as u64;
    let cb = be.compile(block, 1).unwrap();
    // SAFETY: the test state is a valid TestEnv for blocks over ir::testing::globals().
    let code = unsafe { be.enter(state.env_ptr(), cb.entry) };
    ExitCode::decode(code).expect("valid exit code")
}

pub(crate) fn fresh() -> TestState {
    TestState::new(&TestEnvInit::default())
}
