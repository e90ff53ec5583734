//! The host side: sequences run natively in a sandboxed child process under ptrace.
//!
//! Design: one child per [`Native`], forked once. Before the fork the parent creates a memfd
//! holding the code area and the data+stack pages and maps it shared; the child maps the
//! same memfd at [`CODE_ADDR`] (read/execute) and [`DATA_ADDR`] (read/write), asks to be
//! traced, enters seccomp strict mode (no system call but read/write/exit from then on) and
//! stops on an `int3`. For each sequence the parent writes the code and the initial memory
//! straight into its own view of the memfd, sets the registers with `PTRACE_SETREGS` and
//! XMM/MXCSR with `PTRACE_SETFPREGS`, resumes the child at [`CODE_ADDR`] and waits for the
//! trailing `int3` (SIGTRAP) or a fault (SIGFPE #DE or #XM, SIGILL #UD, SIGSEGV #GP or
//! #PF, told apart by `si_code`), then reads the state back. The fault's signal is never
//! delivered: the next run overwrites rip anyway. A watchdog thread kills a child that runs
//! longer than the timeout; the run then fails with [`NativeError::Timeout`] and the next
//! run forks a fresh child.
//!
//! ptrace requests must come from the thread that forked the child, so a [`Native`] is not
//! `Send`. All `unsafe` of the crate's host side lives here.

use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::state::{
    code_fits, End, InitState, MachineState, CODE_ADDR, CODE_SIZE, COMPARED_FLAGS, DATA_ADDR,
    FS_BASE, GS_BASE, MEM_SIZE, X87,
};

/// Errors of the native runner.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// A system call of the parent failed.
    #[error("{call} failed: {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// errno.
        source: std::io::Error,
    },
    /// The child could not set itself up (mapping the sandbox at its fixed addresses).
    #[error("the sandbox child exited during setup (status {0:#x})")]
    Setup(i32),
    /// The child stopped for a reason the harness does not expect.
    #[error("the sandbox child stopped unexpectedly (wait status {0:#x})")]
    Unexpected(i32),
    /// The sequence ran longer than the timeout; the child was killed.
    #[error("the sequence ran longer than {0:?} natively (killed)")]
    Timeout(Duration),
    /// The code does not fit the code area from its start.
    #[error("{0} bytes of code do not fit the {CODE_SIZE}-byte code area")]
    TooLong(usize),
}

fn sys(call: &'static str) -> NativeError {
    NativeError::Sys {
        call,
        source: std::io::Error::last_os_error(),
    }
}

/// `si_code` of SIGFPE for an integer division (#DE).
const FPE_INTDIV: i32 = 1;

/// Byte offset of the data page in the memfd (the code area comes first).
const MEM_OFFSET: usize = CODE_SIZE;
/// Bytes of the memfd.
const SHARED_SIZE: usize = CODE_SIZE + MEM_SIZE;

/// What the watchdog thread and the runner share.
#[derive(Default)]
struct Watch {
    /// When the running child is to be killed; `None` while nothing runs.
    deadline: Option<Instant>,
    /// The child to kill.
    pid: libc::pid_t,
    /// The watchdog killed the child.
    fired: bool,
    /// The runner is gone: the thread ends.
    quit: bool,
}

type Shared = Arc<(Mutex<Watch>, Condvar)>;

fn watchdog(shared: Shared) {
    let (lock, cv) = &*shared;
    let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if w.quit {
            return;
        }
        w = match w.deadline {
            None => cv.wait(w).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    // SAFETY: sending a signal has no memory effects; the pid is our child,
                    // not yet reaped (the runner reaps it only after disarming under this lock).
                    unsafe { libc::kill(w.pid, libc::SIGKILL) };
                    w.fired = true;
                    w.deadline = None;
                    continue;
                }
                cv.wait_timeout(w, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// The native runner: a traced child process holding the sandbox.
pub struct Native {
    pid: libc::pid_t,
    memfd: libc::c_int,
    /// The parent's view of the memfd (code area, then data and stack pages).
    view: *mut u8,
    regs: libc::user_regs_struct,
    fpregs: libc::user_fpregs_struct,
    timeout: Duration,
    watch: Shared,
    thread: Option<JoinHandle<()>>,
    /// ptrace belongs to the forking thread.
    _not_send: PhantomData<*const ()>,
}

impl Native {
    /// Forks the sandbox child. `timeout` bounds each run.
    pub fn new(timeout: Duration) -> Result<Native, NativeError> {
        // SAFETY: the name is a NUL-terminated literal.
        let memfd = unsafe { libc::memfd_create(c"tern-difftest".as_ptr(), libc::MFD_CLOEXEC) };
        if memfd < 0 {
            return Err(sys("memfd_create"));
        }
        // SAFETY: memfd is our descriptor.
        if unsafe { libc::ftruncate(memfd, SHARED_SIZE as libc::off_t) } != 0 {
            let e = sys("ftruncate");
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(memfd) };
            return Err(e);
        }
        // SAFETY: a fresh shared mapping of our memfd, at an address the kernel chooses.
        let view = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SHARED_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                memfd,
                0,
            )
        };
        if view == libc::MAP_FAILED {
            let e = sys("mmap");
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(memfd) };
            return Err(e);
        }
        let watch: Shared = Arc::default();
        let w2 = watch.clone();
        let thread = std::thread::Builder::new()
            .name("difftest-watchdog".into())
            .spawn(move || watchdog(w2))
            .map_err(|source| NativeError::Sys {
                call: "spawn",
                source,
            })?;
        let mut n = Native {
            pid: 0,
            memfd,
            view: view.cast(),
            // SAFETY: plain integer structs; all-zero is a valid value (filled by spawn).
            regs: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            fpregs: unsafe { std::mem::zeroed() },
            timeout,
            watch,
            thread: Some(thread),
            _not_send: PhantomData,
        };
        n.spawn()?;
        Ok(n)
    }

    /// Forks the child and waits for its first stop; keeps its registers as the template.
    fn spawn(&mut self) -> Result<(), NativeError> {
        let memfd = self.memfd;
        // SAFETY: the child runs only async-signal-safe system calls (no allocation, no
        // locks) and never returns from `child`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(sys("fork"));
        }
        if pid == 0 {
            child(memfd);
        }
        self.pid = pid;
        let status = self.wait()?;
        if !(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTRAP) {
            self.pid = 0;
            return Err(NativeError::Setup(status));
        }
        self.watch.0.lock().unwrap_or_else(|e| e.into_inner()).pid = pid;
        let (mut regs, mut fpregs) = (self.regs, self.fpregs);
        self.ptrace(libc::PTRACE_GETREGS, (&raw mut regs).cast(), "GETREGS")?;
        self.ptrace(
            libc::PTRACE_GETFPREGS,
            (&raw mut fpregs).cast(),
            "GETFPREGS",
        )?;
        (self.regs, self.fpregs) = (regs, fpregs);
        Ok(())
    }

    fn wait(&self) -> Result<i32, NativeError> {
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a local.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
            if r == self.pid {
                return Ok(status);
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(sys("waitpid"));
            }
        }
    }

    fn ptrace(
        &self,
        req: libc::c_uint,
        data: *mut libc::c_void,
        call: &'static str,
    ) -> Result<(), NativeError> {
        // SAFETY: `data` points to the structure `req` reads or writes (or is null for
        // PTRACE_CONT); the child is stopped and traced by this thread.
        let r = unsafe { libc::ptrace(req, self.pid, std::ptr::null_mut::<libc::c_void>(), data) };
        if r < 0 {
            return Err(sys(call));
        }
        Ok(())
    }

    fn kill_child(&mut self) {
        if self.pid > 0 {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
            self.pid = 0;
        }
    }

    /// Runs `code` (which must end in `int3`) from `init` and returns the end state.
    pub fn run(&mut self, code: &[u8], init: &InitState) -> Result<MachineState, NativeError> {
        if !code_fits(init.rip, code.len()) {
            return Err(NativeError::TooLong(code.len()));
        }
        let at = (init.rip - CODE_ADDR) as usize;
        if self.pid == 0 {
            self.spawn()?;
        }
        // SAFETY: `view` is our SHARED_SIZE-byte mapping; the ranges are inside it and the
        // child is stopped, so nothing else accesses the memory now.
        let shared = unsafe { std::slice::from_raw_parts_mut(self.view, SHARED_SIZE) };
        shared[..CODE_SIZE].fill(0xcc);
        shared[at..at + code.len()].copy_from_slice(code);
        let n = init.mem.len().min(MEM_SIZE);
        shared[MEM_OFFSET..MEM_OFFSET + n].copy_from_slice(&init.mem[..n]);

        let mut regs = self.regs;
        let r = &init.regs;
        (regs.rax, regs.rcx, regs.rdx, regs.rbx) = (r[0], r[1], r[2], r[3]);
        (regs.rsp, regs.rbp, regs.rsi, regs.rdi) = (r[4], r[5], r[6], r[7]);
        (regs.r8, regs.r9, regs.r10, regs.r11) = (r[8], r[9], r[10], r[11]);
        (regs.r12, regs.r13, regs.r14, regs.r15) = (r[12], r[13], r[14], r[15]);
        regs.rip = init.rip;
        // The child's own TLS is never used again: the segment bases are the sandbox's.
        (regs.fs_base, regs.gs_base) = (FS_BASE, GS_BASE);
        regs.orig_rax = u64::MAX;
        regs.eflags = 0x202 | (init.rflags & COMPARED_FLAGS);
        self.ptrace(libc::PTRACE_SETREGS, (&raw mut regs).cast(), "SETREGS")?;
        let mut fp = self.fpregs;
        fp.mxcsr = init.mxcsr;
        // The x87 as after fninit, on both sides.
        (fp.cwd, fp.swd, fp.ftw, fp.fop, fp.rip, fp.rdp) = (0x37f, 0, 0, 0, 0, 0);
        fp.st_space = [0; 32];
        for (i, x) in init.xmm.iter().enumerate() {
            for (h, q) in x.iter().enumerate() {
                fp.xmm_space[4 * i + 2 * h] = *q as u32;
                fp.xmm_space[4 * i + 2 * h + 1] = (*q >> 32) as u32;
            }
        }
        self.ptrace(libc::PTRACE_SETFPREGS, (&raw mut fp).cast(), "SETFPREGS")?;

        {
            let (lock, cv) = &*self.watch;
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            w.deadline = Some(Instant::now() + self.timeout);
            w.fired = false;
            cv.notify_one();
        }
        let cont = self.ptrace(libc::PTRACE_CONT, std::ptr::null_mut(), "CONT");
        let status = cont.and_then(|_| self.wait());
        let fired = {
            let mut w = self.watch.0.lock().unwrap_or_else(|e| e.into_inner());
            w.deadline = None;
            w.fired
        };
        let status = status?;
        if fired || !libc::WIFSTOPPED(status) {
            if !libc::WIFSTOPPED(status) {
                // Killed or exited: reaped already by wait().
                self.pid = 0;
            } else {
                self.kill_child();
            }
            return Err(if fired {
                NativeError::Timeout(self.timeout)
            } else {
                NativeError::Unexpected(status)
            });
        }
        let end = match libc::WSTOPSIG(status) {
            libc::SIGTRAP => End::Trap,
            libc::SIGILL => End::Fault(6),
            sig @ (libc::SIGFPE | libc::SIGSEGV | libc::SIGBUS) => {
                // SAFETY: siginfo_t is plain data; all-zero is valid before the kernel fills it.
                let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
                self.ptrace(libc::PTRACE_GETSIGINFO, (&raw mut si).cast(), "GETSIGINFO")?;
                End::Fault(match (sig, si.si_code) {
                    // Integer division is #DE; the floating-point codes come from #XM.
                    (libc::SIGFPE, FPE_INTDIV) => 0,
                    (libc::SIGFPE, _) => 19,
                    // The kernel reports #GP as SI_KERNEL, page faults as SEGV_MAPERR/ACCERR.
                    (_, libc::SI_KERNEL) => 13,
                    _ => 14,
                })
            }
            _ => {
                self.kill_child();
                return Err(NativeError::Unexpected(status));
            }
        };
        let mut out = self.regs;
        self.ptrace(libc::PTRACE_GETREGS, (&raw mut out).cast(), "GETREGS")?;
        let mut fpo = self.fpregs;
        self.ptrace(libc::PTRACE_GETFPREGS, (&raw mut fpo).cast(), "GETFPREGS")?;
        let mut xmm = [[0u64; 2]; 16];
        for (i, x) in xmm.iter_mut().enumerate() {
            for (h, q) in x.iter_mut().enumerate() {
                *q = fpo.xmm_space[4 * i + 2 * h] as u64
                    | (fpo.xmm_space[4 * i + 2 * h + 1] as u64) << 32;
            }
        }
        Ok(MachineState {
            regs: [
                out.rax, out.rcx, out.rdx, out.rbx, out.rsp, out.rbp, out.rsi, out.rdi, out.r8,
                out.r9, out.r10, out.r11, out.r12, out.r13, out.r14, out.r15,
            ],
            rip: out.rip,
            rflags: out.eflags,
            xmm,
            mxcsr: fpo.mxcsr,
            mem: shared[MEM_OFFSET..MEM_OFFSET + MEM_SIZE].to_vec(),
            x87: x87_of(&fpo),
            end,
        })
    }
}

/// The x87 state of a ptrace FXSAVE image.
fn x87_of(fp: &libc::user_fpregs_struct) -> X87 {
    let mut st = [[0u8; 10]; 8];
    for (i, s) in st.iter_mut().enumerate() {
        let mut b = [0u8; 16];
        for w in 0..4 {
            b[4 * w..4 * w + 4].copy_from_slice(&fp.st_space[4 * i + w].to_le_bytes());
        }
        s.copy_from_slice(&b[..10]);
    }
    X87 {
        cw: fp.cwd,
        sw: fp.swd,
        tags: fp.ftw as u8,
        st,
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        self.kill_child();
        {
            let (lock, cv) = &*self.watch;
            lock.lock().unwrap_or_else(|e| e.into_inner()).quit = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: our own mapping and descriptor, unused from now on.
        unsafe {
            libc::munmap(self.view.cast(), SHARED_SIZE);
        }
        // SAFETY: as above.
        unsafe { libc::close(self.memfd) };
    }
}

/// The child: map the sandbox, become traced, lock down, stop. Never returns. Only raw
/// system calls on this process's own address space and state, each async-signal-safe, as
/// the child of a possibly multithreaded parent must.
fn child(memfd: libc::c_int) -> ! {
    let fixed = libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE;
    let null = std::ptr::null_mut::<libc::c_void>();
    let fail = |code| -> ! {
        // SAFETY: ends this process at once, without running the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    };
    // SAFETY: makes the parent our tracer; no memory is passed.
    if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, null, null) } != 0 {
        fail(10);
    }
    // SAFETY: maps the memfd at a fixed address that must be free (NOREPLACE), so nothing
    // of this process is replaced.
    let code = unsafe {
        libc::mmap(
            CODE_ADDR as *mut libc::c_void,
            CODE_SIZE,
            libc::PROT_READ | libc::PROT_EXEC,
            fixed,
            memfd,
            0,
        )
    };
    // SAFETY: as above.
    let data = unsafe {
        libc::mmap(
            DATA_ADDR as *mut libc::c_void,
            MEM_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            fixed,
            memfd,
            MEM_OFFSET as libc::off_t,
        )
    };
    if code as u64 != CODE_ADDR || data as u64 != DATA_ADDR {
        fail(11);
    }
    // SAFETY: sets this process's parent-death signal; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: seccomp strict mode for this process; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) } != 0 {
        fail(12);
    }
    loop {
        // SAFETY: a breakpoint trap: the tracer sees the stop and takes over the registers.
        unsafe { std::arch::asm!("int3") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DATA_SIZE;

    #[test]
    fn a_sequence_runs_natively_and_stops_after_its_int3() {
        let mut n = Native::new(Duration::from_secs(2)).unwrap();
        // add rax, 5; mov [r15 + 8], rax; int3
        let code = [0x48, 0x83, 0xc0, 0x05, 0x49, 0x89, 0x47, 0x08, 0xcc];
        let mut i = InitState::blank();
        i.regs[0] = 10;
        let s = n.run(&code, &i).unwrap();
        assert_eq!(s.end, End::Trap);
        assert_eq!(s.regs[0], 15);
        assert_eq!(s.rip, CODE_ADDR + code.len() as u64);
        assert_eq!(s.mem[8], 15);
        assert_eq!(s.mxcsr, 0x1f80);
        // The state does not leak from one run into the next.
        let s2 = n.run(&code, &InitState::blank()).unwrap();
        assert_eq!(s2.regs[0], 5);
    }

    #[test]
    fn faults_come_back_as_their_vectors_with_rip_at_the_instruction() {
        let mut n = Native::new(Duration::from_secs(2)).unwrap();
        // div rcx with rcx = 0
        let s = n
            .run(&[0x48, 0xf7, 0xf1, 0xcc], &InitState::blank())
            .unwrap();
        assert_eq!((s.end, s.rip), (End::Fault(0), CODE_ADDR));
        // ud2
        let s = n.run(&[0x0f, 0x0b, 0xcc], &InitState::blank()).unwrap();
        assert_eq!(s.end, End::Fault(6));
        // movaps xmm0, [r15 + 8]: misaligned, #GP
        let s = n
            .run(&[0x41, 0x0f, 0x28, 0x47, 0x08, 0xcc], &InitState::blank())
            .unwrap();
        assert_eq!(s.end, End::Fault(13));
        // mov rax, [r15 + DATA_SIZE + STACK_SIZE]: past the sandbox, #PF
        let mut i = InitState::blank();
        i.regs[15] = DATA_ADDR + MEM_SIZE as u64 + DATA_SIZE as u64 * 16;
        let s = n.run(&[0x49, 0x8b, 0x07, 0xcc], &i).unwrap();
        assert_eq!(s.end, End::Fault(14));
        // And the child still runs sequences afterwards.
        assert_eq!(n.run(&[0xcc], &InitState::blank()).unwrap().end, End::Trap);
    }

    #[test]
    fn a_runaway_sequence_times_out_and_the_next_run_works() {
        let mut n = Native::new(Duration::from_millis(100)).unwrap();
        // jmp $
        let e = n.run(&[0xeb, 0xfe], &InitState::blank()).unwrap_err();
        assert!(matches!(e, NativeError::Timeout(_)), "{e}");
        assert_eq!(n.run(&[0xcc], &InitState::blank()).unwrap().end, End::Trap);
    }

    #[test]
    fn a_system_call_kills_the_locked_down_child_without_hanging() {
        let mut n = Native::new(Duration::from_secs(2)).unwrap();
        // mov eax, 39 (getpid); syscall: seccomp strict mode kills the child.
        let e = n
            .run(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xcc], &InitState::blank())
            .unwrap_err();
        assert!(matches!(e, NativeError::Unexpected(_)), "{e}");
        assert_eq!(n.run(&[0xcc], &InitState::blank()).unwrap().end, End::Trap);
    }
}
