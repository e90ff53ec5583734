//! Shared harness of tern's integration tests: builds the bare-metal test guests, runs the
//! `tern` binary with a wall-clock limit (a test fails with the output so far, it never hangs),
//! and reads its serial console incrementally.
//!
//! Guests are built once per test process from `tests/guests` with `make`; the results land in
//! cargo's per-target temporary directory so parallel clones do not share them.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The `tern` binary cargo built for this test.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// How long a test guest may run before the harness kills it. Guests take well under a second
/// natively; CPL0 code under kvm_pvm is emulated and the host may be busy building.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the KVM device lives; KVM tests are skipped (not failed) without it.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// Returns true, and says so on stderr, when `/dev/kvm` is missing: the calling test must
/// return at once. Cargo shows the message only with `--nocapture`, so the skip is also
/// visible in the helper's name at every call site (`if skip_test_without_kvm(..) { return }`).
pub fn skip_test_without_kvm(test: &str) -> bool {
    if Path::new(KVM_DEVICE).exists() {
        return false;
    }
    report_skip(&format!("SKIPPED (no {KVM_DEVICE}): {test}"));
    true
}

/// Skips the calling test when there is no `/dev/kvm` (see [`skip_test_without_kvm`]).
#[macro_export]
macro_rules! skip_test_without_kvm {
    ($name:expr) => {
        if $crate::common::skip_test_without_kvm($name) {
            return;
        }
    };
}

/// Returns true, and says why on stderr, when `/dev/kvm` is kvm_pvm and the test needs
/// something kvm_pvm does not do for non-PVM guests (`why`). Set `TERN_TEST_ON_PVM=1` to run
/// such tests anyway (to see whether a newer kvm_pvm fixed it).
pub fn skip_test_on_kvm_pvm(test: &str, why: &str) -> bool {
    if !Path::new("/sys/module/kvm_pvm").exists() || std::env::var_os("TERN_TEST_ON_PVM").is_some()
    {
        return false;
    }
    report_skip(&format!(
        "SKIPPED (kvm_pvm: {why}; TERN_TEST_ON_PVM=1 runs it): {test}"
    ));
    true
}

/// Writes a skip notice straight to the process's stderr: `eprintln!` inside a test is captured
/// by the test harness and would hide the notice for a test that returns early and "passes".
fn report_skip(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn guests_out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests")
}

fn guests_src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

/// Builds the guests (once per process) and returns their directory; fails the test with the
/// build output and the packages to install when the build does not work.
pub fn guests_dir() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = guests_out_dir();
        let src = guests_src_dir();
        let result = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&src)
            .arg(format!("OUT={}", out.display()))
            .output();
        match result {
            Ok(o) if o.status.success() => Ok(out),
            Ok(o) => Err(format!(
                "building the test guests failed ({}):\n{}{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!("cannot run make: {e}")),
        }
    });
    match built {
        Ok(dir) => dir,
        Err(why) => panic!(
            "{why}\nThe test guests need a C toolchain: apt-get install gcc make binutils \
             (sources in {})",
            guests_src_dir().display()
        ),
    }
}

/// Path of a built test guest, e.g. `guest("hello")` for `hello.elf`.
pub fn guest(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.elf"));
    assert!(
        path.is_file(),
        "the guest build did not produce {}",
        path.display()
    );
    path
}

/// A scratch file path unique to this test process and `name`.
pub fn scratch_file(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch");
    fs::create_dir_all(&dir).expect("create the scratch directory");
    dir.join(format!("{}-{name}", std::process::id()))
}

/// One VM at a time: the test machine has two cores and CPL0 guest code is emulated, so
/// parallel guests would mostly measure each other. Timeouts start after the lock is taken.
fn vm_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a finished (or killed) `tern` run ended.
#[derive(Debug)]
pub struct Outcome {
    /// `tern`'s exit code; `None` when it died from a signal (e.g. killed by the harness).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The harness killed the process (time limit, or after the awaited line).
    pub killed: bool,
    pub elapsed: Duration,
}

impl Outcome {
    /// Serial console lines, without trailing `\r`.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .collect()
    }

    /// Everything a failing assertion should show.
    pub fn describe(&self) -> String {
        format!(
            "exit code: {:?}{} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            if self.killed {
                " (killed by the test harness)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts `tern` exited by itself with `code`.
    pub fn assert_code(&self, code: i32) {
        assert!(
            !self.killed,
            "tern was killed, expected exit code {code}\n{}",
            self.describe()
        );
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n{}",
            self.describe()
        );
    }

    /// Asserts the console printed exactly `expected` as one of its lines.
    pub fn assert_line(&self, expected: &str) {
        assert!(
            self.lines().contains(&expected),
            "no console line {expected:?}\n{}",
            self.describe()
        );
    }

    /// Asserts some console line starts with `prefix`, and returns that line.
    pub fn assert_line_starting(&self, prefix: &str) -> &str {
        match self.lines().into_iter().find(|l| l.starts_with(prefix)) {
            Some(line) => line,
            None => panic!(
                "no console line starting with {prefix:?}\n{}",
                self.describe()
            ),
        }
    }

    /// Asserts the console printed exactly these lines, in this order, and nothing else.
    pub fn assert_lines(&self, expected: &[&str]) {
        assert_eq!(
            self.lines(),
            expected,
            "unexpected console output\n{}",
            self.describe()
        );
    }
}

/// A `tern run` command line being assembled.
pub struct TernRun {
    args: Vec<String>,
    timeout: Duration,
}

/// Starts a `tern` invocation; `args` come after the binary name (e.g. `["run", "--kernel", ..]`).
pub fn tern<I, S>(args: I) -> TernRun
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    TernRun {
        args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
        timeout: GUEST_TIMEOUT,
    }
}

/// `tern run --accel kvm --kernel <guest> <extra...>`.
pub fn run_guest(name: &str, extra: &[&str]) -> TernRun {
    run_guest_on("kvm", name, extra)
}

/// `tern run --accel <accel> --kernel <guest> <extra...>`.
pub fn run_guest_on(accel: &str, name: &str, extra: &[&str]) -> TernRun {
    let kernel = guest(name);
    let mut args = vec![
        "run".to_string(),
        "--accel".to_string(),
        accel.to_string(),
        "--kernel".to_string(),
        kernel.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    tern(args)
}

impl TernRun {
    /// Changes the wall-clock limit.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Starts `tern` with piped stdin/stdout/stderr (holding the one-VM-at-a-time lock).
    pub fn spawn(self) -> Running {
        let lock = vm_lock();
        let mut child = Command::new(TERN)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {TERN}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let (tx, chunks) = mpsc::channel();
        let stdout_reader = thread::spawn(move || {
            let mut stdout = stdout;
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr_text = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr_text);
        let stderr_reader = thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]),
                }
            }
        });

        Running {
            child,
            stdin,
            chunks,
            stdout: Vec::new(),
            scanned: 0,
            stderr: stderr_text,
            readers: vec![stdout_reader, stderr_reader],
            started: Instant::now(),
            deadline: Instant::now() + self.timeout,
            args: self.args,
            _lock: lock,
        }
    }

    /// Runs `tern` to its end with nothing on stdin (kept open), failing the test if it does
    /// not end within the time limit.
    pub fn run(self) -> Outcome {
        self.spawn().wait()
    }

    /// Runs `tern`, writing `input` to its stdin first (stdin then stays open).
    pub fn run_with_input(self, input: &[u8]) -> Outcome {
        let mut running = self.spawn();
        running.write_stdin(input);
        running.wait()
    }
}

/// A `tern` process being watched. Dropping it kills the process.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    stdout: Vec<u8>,
    /// Bytes of `stdout` already searched by `wait_for_line` (whole lines only).
    scanned: usize,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
    deadline: Instant,
    args: Vec<String>,
    _lock: MutexGuard<'static, ()>,
}

impl Running {
    /// Writes `bytes` to tern's stdin (the guest's COM1 receiver).
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).expect("write tern's stdin");
        stdin.flush().expect("flush tern's stdin");
    }

    /// Closes tern's stdin (EOF on the serial input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Moves whatever stdout arrived into the buffer, waiting at most until `until`.
    /// Returns false once stdout has closed.
    fn pump(&mut self, until: Instant) -> bool {
        let wait = until.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(wait) {
            Ok(chunk) => {
                self.stdout.extend_from_slice(&chunk);
                while let Ok(more) = self.chunks.try_recv() {
                    self.stdout.extend_from_slice(&more);
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Waits (at most `limit`, and never past the run's own limit) for a console line that
    /// contains `needle`, and returns it. On timeout or exit, kills tern and fails the test
    /// with the output so far.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let until = (Instant::now() + limit).min(self.deadline);
        loop {
            while let Some(pos) = self.stdout[self.scanned..].iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&self.stdout[self.scanned..self.scanned + pos])
                    .trim_end_matches('\r')
                    .to_string();
                self.scanned += pos + 1;
                if line.contains(needle) {
                    return line;
                }
            }
            let open = self.pump(until);
            if !open || Instant::now() >= until {
                // A last partial line may hold the needle (no newline yet).
                let tail = String::from_utf8_lossy(&self.stdout[self.scanned..]).to_string();
                if tail.contains(needle) {
                    self.scanned = self.stdout.len();
                    return tail;
                }
                let why = if open { "timed out" } else { "tern ended" };
                let outcome = self.finish(true);
                panic!(
                    "{why} waiting for a console line containing {needle:?} (tern {})\n{}",
                    self.args.join(" "),
                    outcome.describe()
                );
            }
        }
    }

    /// Waits (at most `limit`) until the unread console output contains `needle`, also in a
    /// line not finished yet (a shell prompt), and consumes the output up to and including it.
    /// On timeout or exit, kills tern and fails the test with the output so far.
    pub fn wait_for_text(&mut self, needle: &str, limit: Duration) {
        let until = (Instant::now() + limit).min(self.deadline);
        loop {
            let unread = &self.stdout[self.scanned..];
            if let Some(pos) = unread
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                self.scanned += pos + needle.len();
                return;
            }
            let open = self.pump(until);
            if !open || Instant::now() >= until {
                let why = if open { "timed out" } else { "tern ended" };
                let outcome = self.finish(true);
                panic!(
                    "{why} waiting for console output {needle:?} (tern {})\n{}",
                    self.args.join(" "),
                    outcome.describe()
                );
            }
        }
    }

    /// Waits for tern to end by itself; past the time limit, kills it and fails the test.
    pub fn wait(mut self) -> Outcome {
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.finish(false),
                Ok(None) => {}
                Err(e) => panic!("waiting for tern: {e}"),
            }
            if Instant::now() >= self.deadline {
                let outcome = self.finish(true);
                panic!(
                    "tern did not end within {:?} (tern {})\n{}",
                    self.deadline - self.started,
                    self.args.join(" "),
                    outcome.describe()
                );
            }
            // Keep draining stdout so a chatty guest cannot block on a full pipe.
            self.pump(Instant::now() + Duration::from_millis(20));
        }
    }

    /// Kills tern (if still running) and returns what it printed.
    pub fn kill(mut self) -> Outcome {
        self.finish(true)
    }

    fn finish(&mut self, kill: bool) -> Outcome {
        let mut killed = false;
        if kill {
            if let Ok(None) = self.child.try_wait() {
                // Our own child, by its handle: SIGKILL then reap.
                let _ = self.child.kill();
                killed = true;
            }
        }
        self.stdin = None;
        let status: Option<ExitStatus> = self.child.wait().ok();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        while let Ok(chunk) = self.chunks.try_recv() {
            self.stdout.extend_from_slice(&chunk);
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Outcome {
            code: status.and_then(|s| s.code()),
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            killed,
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The Debian PVH `vmlinux` built by `scripts/guests/build.sh`: `$TERN_GUEST_DIR/vmlinux`, else
/// `${TERN_CACHE:-$HOME/.cache/tern}/guests/current-x86_64/vmlinux`. Fails the test if missing.
pub fn linux_vmlinux() -> PathBuf {
    let path = match std::env::var_os("TERN_GUEST_DIR") {
        Some(dir) => PathBuf::from(dir).join("vmlinux"),
        None => {
            let cache = std::env::var_os("TERN_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                    PathBuf::from(home).join(".cache/tern")
                });
            cache.join("guests/current-x86_64/vmlinux")
        }
    };
    assert!(
        path.is_file(),
        "no Linux guest at {}: run scripts/guests/build.sh first (or set TERN_GUEST_DIR)",
        path.display()
    );
    path
}

/// The Debian guest's interactive check (`tern.shell` on its command line): waits for the
/// init's `TERN-SHELL` line and the shell's prompt, types a command on tern's stdin, waits for
/// its output, then powers the guest off and requires exit status 0.
pub fn assert_stdin_command_runs_in_the_guest_shell(mut running: Running, boot_limit: Duration) {
    running.wait_for_line("TERN-SHELL", boot_limit);
    // The shell reads the console once it has printed its prompt (busybox: "/ # ").
    running.wait_for_text("# ", Duration::from_secs(30));
    running.write_stdin(b"echo TERN-ECHO-$((6*7))\n");
    running.wait_for_line("TERN-ECHO-42", Duration::from_secs(30));
    running.write_stdin(b"poweroff -f\n");
    let out = running.wait();
    out.assert_code(0);
}

/// The `irq` bare-metal guest in its `rx` mode under `accel`: a line typed on tern's stdin
/// reaches the guest through COM1's receive interrupt and comes back on the console; the
/// guest then exits with `ok_status`.
pub fn assert_serial_input_reaches_the_irq_guest(accel: &str, ok_status: i32) {
    let mut running = run_guest_on(accel, "irq", &["--append", "rx"]).spawn();
    running.wait_for_line("TERN-RX ready", Duration::from_secs(30));
    running.write_stdin(b"ping 42\n");
    let out = running.wait();
    out.assert_line("TERN-RX: ping 42");
    out.assert_code(ok_status);
}

/// The Debian guest's disk check: makes the test disk of `scripts/guests/make-test-disk.sh`
/// (8 MiB, "TERN-DISK-TEST-1" first), boots the guest with it through `boot` (which gets the
/// `--drive` argument), and requires the init's disk lines, status 0, and the guest's write
/// at byte 4096 of the host file.
pub fn assert_guest_reads_and_writes_the_test_disk(name: &str, boot: &dyn Fn(&str) -> Outcome) {
    let disk = scratch_file(name);
    let mut image = b"TERN-DISK-TEST-1".to_vec();
    image.resize(8 << 20, 0);
    fs::write(&disk, &image).expect("write the test disk");
    let out = boot(disk.to_str().expect("a UTF-8 scratch path"));
    out.assert_code(0);
    out.assert_line("TERN-DISK: vda size=8388608");
    out.assert_line("TERN-DISK-HEAD: 5445524e2d4449534b2d544553542d31");
    out.assert_line("TERN-DISK-WRITTEN");
    let after = fs::read(&disk).expect("read the disk back");
    assert_eq!(
        &after[4096..4112],
        b"TERN-DISK-WRITE1",
        "the guest's write reached the host file"
    );
    let _ = fs::remove_file(&disk);
}
