//! `tern-user [--strace] [--interp] PROGRAM ARGS...`: runs a static riscv64 or x86_64 Linux program (the
//! architecture comes from its ELF header).
//!
//! A stand-alone front door to the crate (the `tern user` subcommand does the same), used by
//! the crate's own integration tests. Exit status: the guest's, 128 + signal when a signal
//! killed it, 2 when the program cannot be run at all.

use std::path::Path;
use std::process::ExitCode;

use linux_user::{host_env, run, UserOptions};

fn main() -> ExitCode {
    let mut options = UserOptions::default();
    let mut args = std::env::args().skip(1).peekable();
    while let Some(flag) = args.peek().filter(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--strace" => options.strace = true,
            "--interp" => options.exec_mode = accel_tcg::ExecMode::Interpreter,
            "--" => {
                args.next();
                break;
            }
            other => {
                eprintln!("tern-user: unknown option {other}");
                return ExitCode::from(2);
            }
        }
        args.next();
    }
    let Some(program) = args.next() else {
        eprintln!("usage: tern-user [--strace] [--interp] PROGRAM ARGS...");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    match run(Path::new(&program), &rest, &host_env(), &options) {
        Ok(exit) => ExitCode::from(exit.status as u8),
        Err(e) => {
            eprintln!("tern-user: {e}");
            ExitCode::from(2)
        }
    }
}
