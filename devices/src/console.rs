//! The host side of the serial console: tern's stdin and terminal, wired to the guest's UART.
//!
//! Three pieces, usable separately:
//!
//! - [`RawTerminal`] puts stdin's terminal into raw mode (no line editing, no echo, Ctrl-C
//!   and friends passed to the guest unless asked otherwise) so keystrokes reach the guest
//!   one by one, and puts the saved settings back on [`RawTerminal::restore`] or drop. When
//!   stdin is not a terminal (a pipe, `/dev/null`, a test harness) it does nothing.
//! - [`EscapeFilter`] implements QEMU's console escapes: Ctrl-A x quits, Ctrl-A Ctrl-A sends
//!   one Ctrl-A, Ctrl-A h is swallowed, Ctrl-A followed by anything else sends both bytes.
//! - [`spawn_stdin_reader`] reads stdin in a thread, filters it, and feeds the UART's receive
//!   FIFO, waiting while it is full. End of input just ends the thread: a guest keeps
//!   running with stdin at `/dev/null`.
//!
//! Left out: QEMU's other escapes (monitor, break, log toggling, timestamps) and printing the
//! Ctrl-A h help text. Raw mode is not undone if the process is killed by a signal or calls
//! `std::process::exit` while a [`RawTerminal`] is alive: the machine must call
//! [`RawTerminal::restore`] on every way out it controls.

use std::io::{self, Read};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::exit::{ExitReason, ExitRequester};
use crate::serial::Serial;

/// The escape key: Ctrl-A, as in QEMU.
pub const ESCAPE_KEY: u8 = 0x01;
/// After [`ESCAPE_KEY`]: quit tern.
const QUIT_KEY: u8 = b'x';
/// After [`ESCAPE_KEY`]: help (swallowed; tern prints none).
const HELP_KEY: u8 = b'h';

/// How long the feeding thread waits before offering bytes to a full FIFO again.
const RETRY_INTERVAL: Duration = Duration::from_millis(2);
/// Input read but not yet taken by the guest is capped at this many bytes; beyond it, input
/// is dropped (with a warning) so the reader stays free to see Ctrl-A x even when the guest
/// has stopped reading its UART.
const MAX_PENDING_INPUT: usize = 64 * 1024;

/// Errors of the host console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// `tcgetattr` failed on a descriptor `isatty` accepted.
    #[error("cannot read the terminal settings of fd {fd}: {source}")]
    GetAttributes {
        /// The terminal's descriptor.
        fd: RawFd,
        /// The OS error.
        source: io::Error,
    },
    /// `tcsetattr` failed.
    #[error("cannot change the terminal settings of fd {fd}: {source}")]
    SetAttributes {
        /// The terminal's descriptor.
        fd: RawFd,
        /// The OS error.
        source: io::Error,
    },
    /// The console threads could not be started.
    #[error("cannot start a console thread: {0}")]
    Spawn(io::Error),
}

/// Stdin's terminal in raw mode, for as long as this value lives.
pub struct RawTerminal {
    fd: RawFd,
    /// The settings to put back; `None` when stdin is not a terminal or after restoring.
    saved: Option<libc::termios>,
}

impl RawTerminal {
    /// Puts stdin's terminal into raw mode if stdin is a terminal; otherwise returns a value
    /// that does nothing.
    ///
    /// With `keep_signals`, Ctrl-C, Ctrl-Z and Ctrl-\ still signal tern (useful when the
    /// escape keys are off); without it they go to the guest like any other byte.
    pub fn new(keep_signals: bool) -> Result<Self, ConsoleError> {
        Self::on_fd(libc::STDIN_FILENO, keep_signals)
    }

    fn on_fd(fd: RawFd, keep_signals: bool) -> Result<Self, ConsoleError> {
        // SAFETY: isatty only inspects the descriptor number; any value is acceptable.
        if unsafe { libc::isatty(fd) } != 1 {
            log::debug!("console: fd {fd} is not a terminal; leaving it as it is");
            return Ok(Self { fd, saved: None });
        }
        let saved = get_attributes(fd)?;
        let mut raw = saved;
        make_raw(&mut raw, keep_signals);
        set_attributes(fd, &raw)?;
        Ok(Self {
            fd,
            saved: Some(saved),
        })
    }

    /// Whether the terminal is currently in raw mode because of this value.
    pub fn is_raw(&self) -> bool {
        self.saved.is_some()
    }

    /// Puts the saved settings back. Calling it again, or on a non-terminal, does nothing.
    pub fn restore(&mut self) -> Result<(), ConsoleError> {
        if let Some(saved) = self.saved {
            set_attributes(self.fd, &saved)?;
            self.saved = None;
        }
        Ok(())
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            log::warn!("console: {e}");
        }
    }
}

/// Turns off everything that makes a terminal cook its input. Output processing (`OPOST`)
/// stays on: tern's own messages on the same terminal keep their newline handling, and the
/// guest's `\r\n` passes through unchanged.
fn make_raw(t: &mut libc::termios, keep_signals: bool) {
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN);
    if !keep_signals {
        t.c_lflag &= !libc::ISIG;
    }
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    // Reads return as soon as one byte is there.
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
}

fn get_attributes(fd: RawFd) -> Result<libc::termios, ConsoleError> {
    // SAFETY: termios is a C struct of integers and integer arrays, for which all-zero bytes
    // are a valid value.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, exclusively borrowed termios; tcgetattr only writes into it.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        let source = io::Error::last_os_error();
        return Err(ConsoleError::GetAttributes { fd, source });
    }
    Ok(t)
}

fn set_attributes(fd: RawFd, t: &libc::termios) -> Result<(), ConsoleError> {
    // SAFETY: `t` is a valid termios that tcsetattr only reads.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) } != 0 {
        let source = io::Error::last_os_error();
        return Err(ConsoleError::SetAttributes { fd, source });
    }
    Ok(())
}

/// A console command typed through the escape key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeCommand {
    /// Ctrl-A x: end the run.
    Quit,
}

/// QEMU-style escape handling over a stream of input bytes.
///
/// It keeps one bit of state (whether the last byte was Ctrl-A), so an escape split across
/// two reads is still recognised.
#[derive(Debug, Default, Clone)]
pub struct EscapeFilter {
    after_escape: bool,
}

impl EscapeFilter {
    /// A filter that has seen no input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends to `out` the bytes of `input` meant for the guest. Returns
    /// `Some(EscapeCommand::Quit)` at Ctrl-A x; the bytes after it are not looked at.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<EscapeCommand> {
        for &byte in input {
            if !self.after_escape {
                if byte == ESCAPE_KEY {
                    self.after_escape = true;
                } else {
                    out.push(byte);
                }
                continue;
            }
            self.after_escape = false;
            match byte {
                QUIT_KEY => return Some(EscapeCommand::Quit),
                ESCAPE_KEY => out.push(ESCAPE_KEY),
                HELP_KEY => {}
                other => out.extend_from_slice(&[ESCAPE_KEY, other]),
            }
        }
        None
    }
}

/// What the reading and feeding threads share.
#[derive(Default)]
struct Shared {
    /// Set at Ctrl-A x: the feeder drops what it still holds.
    quit: AtomicBool,
    /// Bytes sent to the feeder and not yet taken by the UART.
    pending: AtomicUsize,
}

/// Feeds tern's stdin to `serial` in the background. See [`spawn_input_reader`].
pub fn spawn_stdin_reader(
    serial: Arc<Mutex<Serial>>,
    exit: Arc<dyn ExitRequester>,
    escapes: bool,
) -> Result<JoinHandle<()>, ConsoleError> {
    spawn_input_reader(io::stdin(), serial, exit, escapes)
}

/// Feeds `input` to `serial` in the background.
///
/// One thread reads `input` and, when `escapes` is on, runs it through an [`EscapeFilter`];
/// Ctrl-A x asks `exit` for [`ExitReason::UserQuit`]. A second thread offers the bytes to the
/// UART, retrying every few milliseconds while its FIFO is full, so a guest that stops reading
/// cannot keep the reader from seeing Ctrl-A x. End of input (or a read error, logged) ends
/// the reader; the returned handle is the feeder's, which finishes once every byte read has
/// reached the UART, or at once after Ctrl-A x. Nobody needs to join it.
pub fn spawn_input_reader<R: Read + Send + 'static>(
    input: R,
    serial: Arc<Mutex<Serial>>,
    exit: Arc<dyn ExitRequester>,
    escapes: bool,
) -> Result<JoinHandle<()>, ConsoleError> {
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel();
    let feeder = {
        let shared = shared.clone();
        thread::Builder::new()
            .name("console-feed".into())
            .spawn(move || feed_uart(&rx, &serial, &shared))
            .map_err(ConsoleError::Spawn)?
    };
    // If this spawn fails, `tx` is dropped with the closure and the feeder ends by itself.
    thread::Builder::new()
        .name("console-read".into())
        .spawn(move || read_input(input, &tx, exit.as_ref(), escapes, &shared))
        .map_err(ConsoleError::Spawn)?;
    Ok(feeder)
}

fn read_input<R: Read>(
    mut input: R,
    tx: &Sender<Vec<u8>>,
    exit: &dyn ExitRequester,
    escapes: bool,
    shared: &Shared,
) {
    let mut filter = EscapeFilter::new();
    let mut buf = [0u8; 1024];
    let mut dropping = false;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => {
                log::debug!("console: end of input");
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("console: cannot read input, the guest gets no more: {e}");
                return;
            }
        };
        let mut bytes = Vec::with_capacity(n);
        let command = if escapes {
            filter.filter(&buf[..n], &mut bytes)
        } else {
            bytes.extend_from_slice(&buf[..n]);
            None
        };
        if !bytes.is_empty() {
            if shared.pending.load(Ordering::SeqCst) + bytes.len() > MAX_PENDING_INPUT {
                if !dropping {
                    log::warn!("console: the guest is not reading its serial port; dropping input");
                    dropping = true;
                }
            } else {
                dropping = false;
                shared.pending.fetch_add(bytes.len(), Ordering::SeqCst);
                if tx.send(bytes).is_err() {
                    return;
                }
            }
        }
        if command == Some(EscapeCommand::Quit) {
            log::info!("console: Ctrl-A x typed, quitting");
            // Ask first, so the run is already ending when the feeder (whose handle the
            // caller may be joining) sees the flag and stops.
            exit.request_exit(ExitReason::UserQuit);
            shared.quit.store(true, Ordering::SeqCst);
            return;
        }
    }
}

fn feed_uart(rx: &Receiver<Vec<u8>>, serial: &Mutex<Serial>, shared: &Shared) {
    while let Ok(chunk) = rx.recv() {
        let mut rest = chunk.as_slice();
        loop {
            if shared.quit.load(Ordering::SeqCst) {
                return;
            }
            let taken = lock(serial).enqueue_input(rest);
            rest = &rest[taken..];
            if rest.is_empty() {
                break;
            }
            thread::sleep(RETRY_INTERVAL);
        }
        shared.pending.fetch_sub(chunk.len(), Ordering::SeqCst);
    }
}

/// Locks the UART, carrying on if a vCPU thread panicked while holding it (as the bus does).
fn lock(serial: &Mutex<Serial>) -> MutexGuard<'_, Serial> {
    serial
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusDevice;
    use crate::irq::RecordingIrq;
    use std::collections::VecDeque;
    use std::time::Instant;

    fn filtered(input: &[u8]) -> (Vec<u8>, Option<EscapeCommand>) {
        let mut out = Vec::new();
        let command = EscapeFilter::new().filter(input, &mut out);
        (out, command)
    }

    #[test]
    fn ordinary_bytes_pass_through() {
        assert_eq!(filtered(b"ls -l\r\x03"), (b"ls -l\r\x03".to_vec(), None));
    }

    #[test]
    fn ctrl_a_x_quits_and_stops_filtering() {
        assert_eq!(
            filtered(b"ab\x01xcd"),
            (b"ab".to_vec(), Some(EscapeCommand::Quit))
        );
    }

    #[test]
    fn ctrl_a_ctrl_a_sends_one_ctrl_a() {
        assert_eq!(filtered(b"\x01\x01z"), (b"\x01z".to_vec(), None));
    }

    #[test]
    fn ctrl_a_h_is_swallowed() {
        assert_eq!(filtered(b"a\x01hb"), (b"ab".to_vec(), None));
    }

    #[test]
    fn ctrl_a_then_another_key_sends_both() {
        assert_eq!(filtered(b"\x01c\x01X"), (b"\x01c\x01X".to_vec(), None));
    }

    #[test]
    fn an_escape_split_across_reads_is_recognised() {
        let mut f = EscapeFilter::new();
        let mut out = Vec::new();
        assert_eq!(f.filter(b"q\x01", &mut out), None);
        assert_eq!(out, b"q", "a trailing Ctrl-A is held back");
        assert_eq!(f.filter(b"x", &mut out), Some(EscapeCommand::Quit));
        assert_eq!(out, b"q");
    }

    #[derive(Default)]
    struct Exits(Mutex<Vec<ExitReason>>);

    impl ExitRequester for Exits {
        fn request_exit(&self, reason: ExitReason) {
            self.0.lock().unwrap().push(reason);
        }
    }

    /// A reader that returns its chunks one read at a time, then end of input.
    struct Chunks(VecDeque<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(chunk) = self.0.pop_front() else {
                return Ok(0);
            };
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| p.to_vec()).collect())
    }

    /// A UART with its FIFO on, as Linux leaves it.
    fn uart() -> Arc<Mutex<Serial>> {
        let mut serial = Serial::new(Arc::new(RecordingIrq::default()), Box::new(io::sink()));
        serial.write(0x3f8, 2, &[0x01]);
        Arc::new(Mutex::new(serial))
    }

    /// Reads what the guest would from RBR until LSR.DR is clear.
    fn drain(serial: &Mutex<Serial>) -> Vec<u8> {
        let mut serial = serial.lock().unwrap();
        let mut got = Vec::new();
        loop {
            let mut lsr = [0];
            serial.read(0x3f8, 5, &mut lsr);
            if lsr[0] & 1 == 0 {
                return got;
            }
            let mut b = [0];
            serial.read(0x3f8, 0, &mut b);
            got.push(b[0]);
        }
    }

    #[test]
    fn input_reaches_the_uart_and_eof_ends_quietly() {
        let serial = uart();
        let exits = Arc::new(Exits::default());
        let input = chunks(&[b"hel", b"lo"]);
        spawn_input_reader(input, serial.clone(), exits.clone(), true)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(drain(&serial), b"hello");
        assert!(exits.0.lock().unwrap().is_empty());
    }

    #[test]
    fn ctrl_a_x_requests_user_quit() {
        let serial = uart();
        let exits = Arc::new(Exits::default());
        let input = chunks(&[b"ab\x01", b"xcd"]);
        spawn_input_reader(input, serial.clone(), exits.clone(), true)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(*exits.0.lock().unwrap(), [ExitReason::UserQuit]);
        // Bytes before the escape may or may not have been delivered when the feeder
        // stopped; nothing after it ever is.
        let got = drain(&serial);
        assert!(b"ab".starts_with(&got), "got {got:?}");
    }

    #[test]
    fn without_escapes_ctrl_a_x_goes_to_the_guest() {
        let serial = uart();
        let exits = Arc::new(Exits::default());
        let input = chunks(&[b"\x01x"]);
        spawn_input_reader(input, serial.clone(), exits.clone(), false)
            .unwrap()
            .join()
            .unwrap();
        assert!(exits.0.lock().unwrap().is_empty());
        assert_eq!(drain(&serial), b"\x01x");
    }

    #[test]
    fn a_full_fifo_is_retried_until_the_guest_reads() {
        let serial = uart();
        let exits = Arc::new(Exits::default());
        let message: Vec<u8> = (0..40).map(|i| b'a' + i % 26).collect();
        let handle = spawn_input_reader(chunks(&[&message]), serial.clone(), exits, true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < message.len() && Instant::now() < deadline {
            got.extend(drain(&serial));
            thread::sleep(Duration::from_millis(1));
        }
        handle.join().unwrap();
        assert_eq!(got, message);
    }

    #[test]
    fn ctrl_a_x_is_seen_while_the_guest_is_not_reading() {
        let serial = uart();
        let exits = Arc::new(Exits::default());
        let input = chunks(&[&[b'z'; 32], b"\x01x"]);
        let handle = spawn_input_reader(input, serial.clone(), exits.clone(), true).unwrap();
        // Nobody drains the FIFO, yet the feeder gives up once quit is seen.
        handle.join().unwrap();
        assert_eq!(*exits.0.lock().unwrap(), [ExitReason::UserQuit]);
    }

    /// Opens a pseudo-terminal pair; returns the master (kept open) and the slave.
    fn open_pty() -> (std::fs::File, std::fs::File) {
        let master = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/ptmx")
            .expect("no /dev/ptmx");
        use std::os::fd::AsRawFd;
        // SAFETY: unlockpt only operates on the descriptor, which `master` keeps open.
        assert_eq!(unsafe { libc::unlockpt(master.as_raw_fd()) }, 0);
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: `name` is a writable buffer of the length passed; ptsname_r NUL-terminates.
        let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
        assert_eq!(rc, 0);
        let path: String = name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8 as char)
            .collect();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        (master, slave)
    }

    #[test]
    fn raw_mode_is_entered_and_restored_on_a_terminal() {
        use std::os::fd::AsRawFd;
        let (_master, slave) = open_pty();
        let fd = slave.as_raw_fd();
        let cooked = get_attributes(fd).unwrap();
        assert_ne!(cooked.c_lflag & libc::ICANON, 0, "a new pty starts cooked");

        let mut raw = RawTerminal::on_fd(fd, false).unwrap();
        assert!(raw.is_raw());
        let t = get_attributes(fd).unwrap();
        assert_eq!(t.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        assert_eq!(t.c_iflag & (libc::ICRNL | libc::IXON), 0);
        assert_eq!(t.c_cc[libc::VMIN], 1);

        raw.restore().unwrap();
        assert!(!raw.is_raw());
        let t = get_attributes(fd).unwrap();
        assert_eq!(t.c_lflag, cooked.c_lflag);
        assert_eq!(t.c_iflag, cooked.c_iflag);
        // Restoring twice is harmless.
        raw.restore().unwrap();

        // Dropping restores too; keep_signals leaves ISIG on.
        let raw = RawTerminal::on_fd(fd, true).unwrap();
        let t = get_attributes(fd).unwrap();
        assert_ne!(t.c_lflag & libc::ISIG, 0);
        assert_eq!(t.c_lflag & libc::ICANON, 0);
        drop(raw);
        assert_eq!(get_attributes(fd).unwrap().c_lflag, cooked.c_lflag);
    }

    #[test]
    fn a_non_terminal_is_left_alone() {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut raw = RawTerminal::on_fd(file.as_raw_fd(), false).unwrap();
        assert!(!raw.is_raw());
        raw.restore().unwrap();
        raw.restore().unwrap();
    }
}
