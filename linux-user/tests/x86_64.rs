//! The freestanding x86_64 test programs of `tests/user/x86_64/` (raw `syscall`, no SSE), and
//! the C programs of `tests/user/` built against static glibc, run natively and through this
//! crate's `tern-user` binary, JIT and interpreter: stdout and the exit status must agree (a native death by signal N is tern's status 128 + N). Each case
//! also pins the expected output, so a host that behaves oddly cannot make both sides wrong
//! in the same way unnoticed.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Builds the programs once (host gcc) and returns their directory.
fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/user/x86_64");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-x86_64-programs");
        let o = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&src)
            .arg(format!("OUT={}", out.display()))
            .output()
            .expect("run make (apt-get install make gcc)");
        assert!(
            o.status.success(),
            "building the x86_64 test programs failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

/// (status as a shell reports it, stdout, stderr)
fn output(mut cmd: Command) -> (i32, String, String) {
    let o = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    let status = match (o.status.code(), o.status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    };
    (
        status,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `prog args` natively, under the JIT and under the interpreter; checks all three give
/// `status` and `stdout`.
fn check(prog: &str, args: &[&str], status: i32, stdout: &str) {
    let path = programs().join(prog);
    let mut native = Command::new(&path);
    native.args(args);
    let (ns, no, _) = output(native);
    assert_eq!(
        (ns, no.as_str()),
        (status, stdout),
        "native {prog} {args:?}"
    );
    for flags in [&[][..], &["--interp"][..]] {
        let mut tern = Command::new(env!("CARGO_BIN_EXE_tern-user"));
        tern.args(flags).arg(&path).args(args);
        let (ts, to, te) = output(tern);
        assert_eq!(
            (ts, to.as_str()),
            (ns, no.as_str()),
            "tern-user {flags:?} {prog} {args:?}; stderr:\n{te}"
        );
    }
}

#[test]
fn write_and_exit_status() {
    check(
        "hello",
        &["arg1"],
        7,
        "hello from x86_64, argc 2, argv[1] arg1\nx = 103c9226b\n",
    );
}

#[test]
fn arch_prctl_sets_and_reads_fs_and_gs() {
    check(
        "tls",
        &[],
        0,
        "fs:8 2222 fs:16 3333 gs:8 bbbb self ok get_fs ok get_gs ok\nfs store ok\n\
         bad code -> -22\n",
    );
}

#[test]
fn anonymous_mmap_mprotect_munmap() {
    check(
        "mmap",
        &[],
        0,
        "fresh pages are zero\nsum 1206780160\nmprotect 0, munmap 0\n\
         file mmap of a bad fd -> -9\n",
    );
}

#[test]
fn a_handler_with_a_restorer_returns_through_rt_sigreturn() {
    check(
        "signal",
        &[],
        0,
        "handler: signal 10 si_signo 10 si_code 0 fpstate set\n\
         back in main: got 10 rbx 1234 r12 5678 saved rbx 1234\n",
    );
}

#[test]
fn a_sigsegv_handler_sees_the_fault_and_resumes_by_editing_rip() {
    check(
        "segv",
        &[],
        5,
        "SIGSEGV handler: sig 11 addr 0 code 1 trapno 14 cr2 0\nresumed with rax 99\n",
    );
}

#[test]
fn unhandled_faults_kill_with_the_linux_signal() {
    for (what, signo) in [
        ("null", 11),
        ("ud2", 4),
        ("int3", 5),
        ("div0", 8),
        ("hlt", 11),
    ] {
        check(
            "faults",
            &[what],
            128 + signo,
            &format!("about to fault: {what}\n"),
        );
    }
}

/// Runs `prog args` natively and under tern-user (JIT) and checks they agree; returns the
/// native (status, stdout). For the glibc programs, whose output the riscv64 tests pin.
fn same_as_native(prog: &str, args: &[&str]) -> (i32, String) {
    let path = programs().join(prog);
    let mut native = Command::new(&path);
    native.args(args);
    let (ns, no, _) = output(native);
    let mut tern = Command::new(env!("CARGO_BIN_EXE_tern-user"));
    tern.arg(&path).args(args);
    let (ts, to, te) = output(tern);
    assert_eq!(
        (ts, to.as_str()),
        (ns, no.as_str()),
        "tern-user {prog} {args:?}; stderr:\n{te}"
    );
    (ns, no)
}

#[test]
fn glibc_hello_args_malloc_and_exit_statuses() {
    assert_eq!(
        same_as_native("glibc-hello", &[]),
        (0, "hello, world\n".to_string())
    );
    let (_, out) = same_as_native("glibc-args", &["one", "two words", ""]);
    assert!(out.starts_with("argc=4\nargv[1]=one\nargv[2]=two words\nargv[3]=\n"));
    same_as_native("glibc-malloc", &[]);
    assert_eq!(same_as_native("glibc-exitcode", &["42"]).0, 42);
    assert_eq!(same_as_native("glibc-exitcode", &["abort"]).0, 134);
    assert_eq!(same_as_native("glibc-exitcode", &["segv"]).0, 139);
}

#[test]
fn glibc_floating_point_printf_and_scanf_through_x87_and_sse() {
    let (status, out) = same_as_native("glibc-float", &[]);
    assert_eq!(status, 0);
    assert!(!out.is_empty());
}

#[test]
fn glibc_signals() {
    for what in ["segv", "usr1"] {
        assert_eq!(same_as_native("glibc-signals", &[what]).0, 0, "{what}");
    }
}

#[test]
fn glibc_file_io() {
    let base =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("x86-fileio-{}", std::process::id()));
    let mut outs = Vec::new();
    for runner in ["native", "tern"] {
        let dir = base.join(runner);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prog = programs().join("glibc-fileio");
        let cmd = if runner == "native" {
            let mut c = Command::new(&prog);
            c.arg(&dir);
            c
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_tern-user"));
            c.arg(&prog).arg(&dir);
            c
        };
        outs.push(output(cmd));
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{runner} cleaned up"
        );
    }
    std::fs::remove_dir_all(&base).unwrap();
    assert_eq!(
        (outs[1].0, &outs[1].1),
        (outs[0].0, &outs[0].1),
        "stderr:\n{}",
        outs[1].2
    );
    assert!(outs[0].1.contains("data=quick\n"), "{}", outs[0].1);
}
