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
    // Global 0 plays the guest pc, so blocks ending in LookupAndGoto run the inline probe
    // (which always misses on the test state's empty jump cache) before the lookup call.
    backend_with_pc(features, Some(ir::testing::global_offset(0)))
}

/// A test backend whose guest pc global is at `pc_offset` (inline jump-cache probes).
pub(crate) fn backend_with_pc(features: HostFeatures, pc_offset: Option<u32>) -> Backend {
    Backend::new(BackendConfig {
        code_size: 1 << 20,
        features,
        pc_offset,
        cross_page_probe: false,
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
