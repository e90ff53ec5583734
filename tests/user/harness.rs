//! The riscv64 user-mode test programs (C sources and Makefile beside this file) and what each
//! must print and exit with. Shared by `tests/user_riscv64.rs` (through `tern user`) and
//! `linux-user/tests/programs.rs` (through the crate's `tern-user` binary): each test file
//! supplies the command that runs a program, and `user_tests!` makes one test per case.
//!
//! The programs are built once per test process with `make` into cargo's per-target temporary
//! directory; a missing cross compiler fails the tests with the packages to install.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one program may run (the JIT is fast; the host may be busy building).
pub const TIMEOUT: Duration = Duration::from_secs(60);

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("tests/user/Makefile").exists())
        .expect("the repository root holds tests/user/Makefile")
        .join("tests/user")
}

/// Builds the programs (once) and returns their directory.
pub fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-programs");
        let result = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(src_dir())
            .arg(format!("OUT={}", out.display()))
            .output();
        match result {
            Ok(o) if o.status.success() => out,
            Ok(o) => panic!(
                "building the riscv64 test programs failed (install the cross compiler: \
                 apt-get install gcc-riscv64-linux-gnu libc6-dev-riscv64-cross):\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "cannot run make for the riscv64 test programs ({e}); \
                 apt-get install make gcc-riscv64-linux-gnu libc6-dev-riscv64-cross"
            ),
        }
    })
}

/// What a finished program did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

fn collect(mut child: Child, what: &str) -> Run {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let so = t_out.join().unwrap_or_default();
            let se = t_err.join().unwrap_or_default();
            panic!(
                "{what}: no exit within {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&so),
                String::from_utf8_lossy(&se)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
    }
}

/// Runs test program `prog` with `args` through `runner` (which makes the command).
pub fn run(runner: fn(&Path) -> Command, prog: &str, args: &[&str]) -> Run {
    let mut cmd = runner(&programs().join(prog));
    cmd.args(args)
        .env("TERN_TEST_VAR", "from the host")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn the emulator");
    collect(child, &format!("{prog} {args:?}"))
}

/// Checks the exit status and exact stdout.
pub fn expect(r: &Run, code: i32, stdout: &str) {
    assert_eq!(
        (r.code(), r.stdout.as_str()),
        (code, stdout),
        "stderr:\n{}",
        r.stderr
    );
}

pub fn hello(runner: fn(&Path) -> Command) {
    expect(&run(runner, "hello", &[]), 0, "hello, world\n");
}

pub fn args_and_env(runner: fn(&Path) -> Command) {
    let r = run(runner, "args", &["one", "two words", ""]);
    expect(
        &r,
        0,
        "argc=4\nargv[1]=one\nargv[2]=two words\nargv[3]=\nTERN_TEST_VAR=from the host\n",
    );
}

pub fn file_io(runner: fn(&Path) -> Command) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "user-fileio-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let r = run(runner, "fileio", &[dir.to_str().unwrap()]);
    expect(
        &r,
        0,
        "write=44\nlseek=4\nread=5\ndata=quick\nsize=44 regular=1\nb.size=13\n\
         b.content=12345 second\nentries: a.txt sub\nunlink=0\nunlink2=0\nrmdir=0\ngone=1\n",
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "the program cleaned up"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

pub fn malloc_heavy(runner: fn(&Path) -> Command) {
    expect(
        &run(runner, "malloc", &[]),
        0,
        "checksum=c4319c4aa41a0ddb\n",
    );
}

pub fn floating_point(runner: fn(&Path) -> Command) {
    expect(
        &run(runner, "float", &[]),
        0,
        "3.141593 -2.500000e-03 1.5\n-0.0078539816\n0.448799 1.41421 1e+301\n\
         6.022e+23 -1.2345E-05\n1.643934566682\n-7 4\n",
    );
}

pub fn sigsegv_handler_longjmps(runner: fn(&Path) -> Command) {
    expect(
        &run(runner, "signals", &["segv"]),
        0,
        "caught signal 11 at address (nil)\ncaught again 11 at address 0x8\n",
    );
}

pub fn sigill_handler(runner: fn(&Path) -> Command) {
    expect(&run(runner, "signals", &["ill"]), 0, "caught signal 4\n");
}

pub fn raise_sigusr1(runner: fn(&Path) -> Command) {
    expect(
        &run(runner, "signals", &["usr1"]),
        0,
        "raise=0\nhandler saw 10\n",
    );
}

pub fn sigint_from_outside(runner: fn(&Path) -> Command) {
    let mut cmd = runner(&programs().join("signals"));
    cmd.arg("sigint")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the emulator");
    // Wait for "ready\n" before sending the signal, reading byte by byte so nothing after it
    // is consumed here.
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let start = Instant::now();
    while !seen.ends_with(b"ready\n") {
        let mut b = [0u8; 1];
        if out.read(&mut b).unwrap_or(0) == 0 || start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!(
                "no \"ready\" from the guest: {:?}",
                String::from_utf8_lossy(&seen)
            );
        }
        seen.push(b[0]);
    }
    // SAFETY: kill(2) of our own child process, which has not been waited for yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.stdout = Some(out);
    let r = collect(child, "signals sigint");
    expect(&r, 0, "got 2\n");
}

pub fn exit_42(runner: fn(&Path) -> Command) {
    expect(&run(runner, "exitcode", &["42"]), 42, "");
}

pub fn abort_is_134(runner: fn(&Path) -> Command) {
    let r = run(runner, "exitcode", &["abort"]);
    expect(&r, 134, "");
    assert!(r.stderr.contains("guest killed by SIGABRT"), "{}", r.stderr);
}

pub fn uncaught_sigsegv_is_139_with_one_line(runner: fn(&Path) -> Command) {
    let r = run(runner, "exitcode", &["segv"]);
    expect(&r, 139, "");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].starts_with("tern: guest killed by SIGSEGV at pc 0x")
            && lines[0].ends_with("(address 0x0)"),
        "{}",
        lines[0]
    );
}

/// One `#[test]` per case, running programs through `$runner: fn(&Path) -> Command`.
#[macro_export]
macro_rules! user_tests {
    ($runner:expr) => {
        $crate::user_tests!(@each $runner; hello, args_and_env, file_io, malloc_heavy,
            floating_point, sigsegv_handler_longjmps, sigill_handler, raise_sigusr1,
            sigint_from_outside, exit_42, abort_is_134, uncaught_sigsegv_is_139_with_one_line);
    };
    (@each $runner:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                harness::$case($runner);
            }
        )*
    };
}
