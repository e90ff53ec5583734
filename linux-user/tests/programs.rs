//! The riscv64 test programs of `tests/user/` run through this crate's `tern-user` binary
//! (the same cases `tests/user_riscv64.rs` runs through `tern user`).

use std::path::Path;
use std::process::Command;

#[path = "../../tests/user/harness.rs"]
mod harness;

fn tern_user(prog: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tern-user"));
    c.arg(prog);
    c
}

user_tests!(tern_user);

#[test]
fn strace_prints_calls_and_results() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tern-user"));
    c.arg("--strace").arg(harness::programs().join("hello"));
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, world\n");
    assert!(
        err.contains("write(1, \"hello, world\\n\", 13) = 13"),
        "{err}"
    );
    assert!(err.contains("exit_group(0) = ?"), "{err}");
}
