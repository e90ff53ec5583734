//! `tern user`: static riscv64 Linux programs (C sources in `tests/user/`) run under the JIT,
//! each checked for its exact stdout and exit status.

use std::path::Path;
use std::process::Command;

#[path = "user/harness.rs"]
mod harness;

fn tern_user(prog: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tern"));
    c.arg("user").arg(prog);
    c
}

user_tests!(tern_user);
