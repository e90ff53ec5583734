//! System calls: the guest-neutral [`Sys`] enum that each architecture's table maps numbers
//! to, and the handlers, which run them on the host.
//!
//! Handlers take raw 64-bit arguments, check every guest pointer against the VMA table
//! (EFAULT, never a host fault), translate structures whose guest layout differs from the
//! host's (`struct stat` on riscv64, `struct sigaction` on x86_64), and return the Linux
//! convention: a value, or `-errno`. Each architecture has a number table ([`riscv64`],
//! [`x86_64`]) and one layer serves them all; [`table`] picks the table.
//!
//! File descriptors are the host's own: the guest's fd 0..2 are tern's stdin, stdout and
//! stderr, and a guest `open` returns a host descriptor. tern opens no descriptors of its own
//! while the guest runs, so the guest sees the numbers a native run would.

mod fs;
pub mod riscv64;
mod strace;
pub mod x86_64;

use std::sync::Arc;

use crate::elf::Arch;
use crate::signal::{self, sig, AltStack, SigAction, SigInfo, SignalState, UserCpu};
use crate::space::{AddressSpace, Need, SpaceError, MAP_ANONYMOUS, PROT_EXEC};

pub use strace::format_call;

macro_rules! sys_enum {
    ($($v:ident = $n:literal,)*) => {
        /// A system call, whatever its number on the guest architecture.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Sys { $(#[doc = $n] $v,)* }
        impl Sys {
            /// The call's name, as strace prints it.
            pub fn name(self) -> &'static str {
                match self { $(Sys::$v => $n,)* }
            }
        }
    };
}

sys_enum! {
    Getcwd = "getcwd", Dup = "dup", Dup3 = "dup3", Fcntl = "fcntl", Ioctl = "ioctl",
    Mkdirat = "mkdirat", Unlinkat = "unlinkat", Symlinkat = "symlinkat", Linkat = "linkat",
    Renameat = "renameat", Statfs = "statfs", Fstatfs = "fstatfs", Truncate = "truncate",
    Ftruncate = "ftruncate", Faccessat = "faccessat", Chdir = "chdir", Fchdir = "fchdir",
    Fchmod = "fchmod", Fchmodat = "fchmodat", Fchownat = "fchownat", Openat = "openat",
    Close = "close", Pipe2 = "pipe2", Getdents64 = "getdents64", Lseek = "lseek", Read = "read",
    Write = "write", Readv = "readv", Writev = "writev", Pread64 = "pread64",
    Pwrite64 = "pwrite64", Ppoll = "ppoll", Readlinkat = "readlinkat",
    Newfstatat = "newfstatat", Fstat = "fstat", Fsync = "fsync", Fdatasync = "fdatasync",
    Utimensat = "utimensat", Exit = "exit", ExitGroup = "exit_group",
    SetTidAddress = "set_tid_address", Futex = "futex", SetRobustList = "set_robust_list",
    Nanosleep = "nanosleep", ClockGettime = "clock_gettime", ClockGetres = "clock_getres",
    ClockNanosleep = "clock_nanosleep", SchedSetaffinity = "sched_setaffinity",
    SchedGetaffinity = "sched_getaffinity", SchedYield = "sched_yield", Kill = "kill",
    Tkill = "tkill", Tgkill = "tgkill", Sigaltstack = "sigaltstack",
    RtSigaction = "rt_sigaction", RtSigprocmask = "rt_sigprocmask",
    RtSigpending = "rt_sigpending", RtSigreturn = "rt_sigreturn", Times = "times",
    Getpgid = "getpgid", Getsid = "getsid", Uname = "uname", Getrlimit = "getrlimit",
    Setrlimit = "setrlimit", Getrusage = "getrusage", Umask = "umask", Prctl = "prctl",
    Gettimeofday = "gettimeofday", Getpid = "getpid", Getppid = "getppid", Getuid = "getuid",
    Geteuid = "geteuid", Getgid = "getgid", Getegid = "getegid", Gettid = "gettid",
    Sysinfo = "sysinfo", Brk = "brk", Munmap = "munmap", Mremap = "mremap", Mmap = "mmap",
    Mprotect = "mprotect", Madvise = "madvise", RiscvHwprobe = "riscv_hwprobe",
    RiscvFlushIcache = "riscv_flush_icache", Prlimit64 = "prlimit64",
    Renameat2 = "renameat2", Getrandom = "getrandom", Membarrier = "membarrier",
    Statx = "statx", Rseq = "rseq", Faccessat2 = "faccessat2", ArchPrctl = "arch_prctl",
    Dup2 = "dup2", Time = "time", Unknown = "unknown",
}

/// The system call number `nr` with arguments `a` means on `arch`, with the arguments of the
/// guest-neutral call it maps onto (x86_64's legacy path calls become their `*at` forms).
pub fn table(arch: Arch, nr: u64, a: [u64; 6]) -> (Sys, [u64; 6]) {
    match arch {
        Arch::Riscv64 => (riscv64::sys(nr), a),
        Arch::X86_64 => x86_64::sys(nr, a),
    }
}

/// `arch_prctl` codes.
mod arch_prctl {
    /// Set the GS base.
    pub const SET_GS: u64 = 0x1001;
    /// Set the FS base.
    pub const SET_FS: u64 = 0x1002;
    /// Read the FS base.
    pub const GET_FS: u64 = 0x1003;
    /// Read the GS base.
    pub const GET_GS: u64 = 0x1004;
}

/// How a system call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Return this value (or `-errno`) in the result register and go on after the call.
    Return(i64),
    /// The process exits with this status.
    Exit(i32),
    /// The call set the whole register state itself (`rt_sigreturn`): do not touch it.
    Restored,
    /// The process dies of this signal (a bad `rt_sigreturn` frame).
    Killed(SigInfo),
}

/// Handler result: a value or a positive errno.
type SysResult = Result<i64, i32>;

fn space_err(e: SpaceError) -> i32 {
    e.errno()
}

/// The errno of the last failed host call.
fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A host return value as a handler result.
fn host(r: i64) -> SysResult {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// Everything a system call may touch besides the CPU.
pub struct Process {
    /// The address space.
    pub space: Arc<AddressSpace>,
    /// Signal state.
    pub signals: SignalState,
    /// Guest architecture.
    pub arch: Arch,
    /// Print each call (`--strace`).
    pub strace: bool,
    /// Absolute path of the program (for `/proc/self/exe`).
    pub exe: std::path::PathBuf,
    /// `set_tid_address` pointer.
    pub clear_child_tid: u64,
    /// Set when mappings changed: the driver must flush the vCPU's TLB.
    pub flush_tlb: bool,
    /// Guest ranges whose translated code must be dropped (unmapped, or written by a call).
    pub invalidate: Vec<(u64, u64)>,
}

impl Process {
    /// A process over `space` with default signal state (handlers return to `trampoline`).
    pub fn new(
        space: Arc<AddressSpace>,
        arch: Arch,
        exe: std::path::PathBuf,
        trampoline: u64,
    ) -> Process {
        Process {
            space,
            signals: SignalState::new(trampoline),
            arch,
            strace: false,
            exe,
            clear_child_tid: 0,
            flush_tlb: false,
            invalidate: Vec::new(),
        }
    }

    /// Records that the host wrote guest `[addr, addr + len)`: translated code there is stale.
    fn wrote(&mut self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        let exec = {
            let layout = self.space.layout();
            layout
                .vmas
                .range(..addr + len)
                .rev()
                .take_while(|(_, v)| v.end > addr)
                .any(|(_, v)| v.prot & PROT_EXEC != 0)
        };
        if exec {
            self.invalidate.push((addr, addr + len));
        }
    }

    /// A checked host pointer for a guest buffer the host will write.
    fn out_buf(&mut self, addr: u64, len: u64) -> Result<*mut u8, i32> {
        let p = self
            .space
            .host_range(addr, len, Need::Write)
            .map_err(space_err)?;
        self.wrote(addr, len);
        Ok(p)
    }

    /// A checked host pointer for a guest buffer the host will read.
    fn in_buf(&self, addr: u64, len: u64) -> Result<*const u8, i32> {
        self.space
            .host_range(addr, len, Need::Read)
            .map(|p| p as *const u8)
            .map_err(space_err)
    }

    /// Copies `data` to the guest.
    fn put(&mut self, addr: u64, data: &[u8]) -> Result<(), i32> {
        self.space.write(addr, data).map_err(space_err)?;
        self.wrote(addr, data.len() as u64);
        Ok(())
    }

    /// Copies guest bytes in.
    fn get<const N: usize>(&self, addr: u64) -> Result<[u8; N], i32> {
        let mut b = [0u8; N];
        self.space.read(addr, &mut b).map_err(space_err)?;
        Ok(b)
    }

    fn get_u64(&self, addr: u64) -> Result<u64, i32> {
        Ok(u64::from_le_bytes(self.get::<8>(addr)?))
    }

    /// A guest path (NUL-terminated, at most PATH_MAX) as a C string.
    fn path(&self, addr: u64) -> Result<std::ffi::CString, i32> {
        let bytes = self
            .space
            .read_cstr(addr, libc::PATH_MAX as usize)
            .map_err(|e| match e {
                SpaceError::Invalid => libc::ENAMETOOLONG,
                e => e.errno(),
            })?;
        Ok(std::ffi::CString::new(bytes).expect("no interior NUL"))
    }

    /// Runs system call `sys` (number `nr` on the guest) with arguments `a`.
    pub fn syscall<C: UserCpu + ?Sized>(
        &mut self,
        cpu: &mut C,
        sys: Sys,
        nr: u64,
        a: [u64; 6],
    ) -> Outcome {
        let before = self.strace.then(|| format_call(self, sys, nr, &a));
        let outcome = match self.dispatch(cpu, sys, nr, a) {
            Ok(o) => o,
            Err(errno) => Outcome::Return(-i64::from(errno)),
        };
        if let Some(call) = before {
            let result = match outcome {
                Outcome::Return(r) => strace::format_result(r),
                Outcome::Exit(_) => "?".to_string(),
                Outcome::Restored => "(restored)".to_string(),
                Outcome::Killed(_) => "(killed)".to_string(),
            };
            // `--strace` output is the user-visible purpose of this option.
            use std::io::Write;
            let _ = writeln!(std::io::stderr().lock(), "{call} = {result}");
        }
        outcome
    }

    fn dispatch<C: UserCpu + ?Sized>(
        &mut self,
        cpu: &mut C,
        sys: Sys,
        nr: u64,
        a: [u64; 6],
    ) -> Result<Outcome, i32> {
        use Sys::*;
        let r = match sys {
            Exit | ExitGroup => return Ok(Outcome::Exit((a[0] & 0xff) as i32)),
            RtSigreturn => {
                return Ok(match self.signals.sigreturn(cpu, &self.space) {
                    Ok(()) => Outcome::Restored,
                    Err(e) => Outcome::Killed(SigInfo::fault(
                        sig::SIGSEGV,
                        signal::si::SEGV_MAPERR,
                        match e {
                            SpaceError::Fault(a) => a,
                            _ => cpu.sp(),
                        },
                    )),
                })
            }
            Brk => Ok(self.space.brk(a[0]) as i64),
            Mmap => self.mmap(a),
            Munmap => {
                let r = self.space.munmap(a[0], a[1]).map_err(space_err);
                if r.is_ok() {
                    self.flush_tlb = true;
                    let end = crate::space::page_up(a[0].saturating_add(a[1])).unwrap_or(u64::MAX);
                    self.invalidate.push((a[0], end));
                }
                r.map(|()| 0)
            }
            Mprotect => {
                let r = self
                    .space
                    .mprotect(a[0], a[1], a[2] as u32)
                    .map_err(space_err);
                if r.is_ok() {
                    self.flush_tlb = true;
                }
                r.map(|()| 0)
            }
            Mremap => Err(libc::ENOMEM),
            Madvise | Membarrier | RiscvFlushIcache => Ok(0),
            SetTidAddress => {
                self.clear_child_tid = a[0];
                Ok(self.pid())
            }
            SetRobustList => Ok(0),
            Rseq | RiscvHwprobe => Err(libc::ENOSYS),
            Getpid | Gettid => Ok(self.pid()),
            // SAFETY: these id queries have no preconditions.
            Getppid => Ok(i64::from(unsafe { libc::getppid() })),
            // SAFETY: as above.
            Getuid => Ok(i64::from(unsafe { libc::getuid() })),
            // SAFETY: as above.
            Geteuid => Ok(i64::from(unsafe { libc::geteuid() })),
            // SAFETY: as above.
            Getgid => Ok(i64::from(unsafe { libc::getgid() })),
            // SAFETY: as above.
            Getegid => Ok(i64::from(unsafe { libc::getegid() })),
            // SAFETY: as above; pid 0 means the caller.
            Getpgid => host(i64::from(unsafe { libc::getpgid(0) })),
            // SAFETY: as above.
            Getsid => host(i64::from(unsafe { libc::getsid(0) })),
            SchedYield => Ok(0),
            SchedSetaffinity => Ok(0),
            SchedGetaffinity => {
                if a[1] < 8 {
                    return Err(libc::EINVAL);
                }
                self.put(a[2], &1u64.to_le_bytes())?;
                Ok(8)
            }
            Uname => self.uname(a[0]),
            Sysinfo => {
                // SAFETY: an all-zero sysinfo is a valid value to be overwritten.
                let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
                // SAFETY: `si` is a valid, writable sysinfo.
                host(i64::from(unsafe { libc::sysinfo(&mut si) }))?;
                self.put(a[0], as_bytes(&si))?;
                Ok(0)
            }
            Getrlimit => self.prlimit(0, a[0], 0, a[1]),
            Setrlimit => Ok(0),
            Prlimit64 => {
                if a[0] != 0 && a[0] as i64 != self.pid() {
                    return Err(libc::ESRCH);
                }
                self.prlimit(0, a[1], a[2], a[3])
            }
            Getrusage => {
                // SAFETY: all-zero is a valid rusage.
                let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
                // SAFETY: `ru` is valid and writable.
                host(i64::from(unsafe { libc::getrusage(a[0] as i32, &mut ru) }))?;
                self.put(a[1], as_bytes(&ru))?;
                Ok(0)
            }
            Times => {
                // SAFETY: all-zero is a valid tms.
                let mut t: libc::tms = unsafe { std::mem::zeroed() };
                // SAFETY: `t` is valid and writable.
                let r = unsafe { libc::times(&mut t) };
                if a[0] != 0 {
                    self.put(a[0], as_bytes(&t))?;
                }
                Ok(r as i64)
            }
            Prctl => Err(libc::EINVAL),
            Umask => {
                // SAFETY: umask has no preconditions.
                Ok(i64::from(unsafe { libc::umask(a[0] as libc::mode_t) }))
            }
            ClockGettime | ClockGetres => {
                // SAFETY: all-zero is a valid timespec.
                let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
                let r = if sys == ClockGettime {
                    // SAFETY: `ts` is valid and writable.
                    unsafe { libc::clock_gettime(a[0] as libc::clockid_t, &mut ts) }
                } else {
                    // SAFETY: as above.
                    unsafe { libc::clock_getres(a[0] as libc::clockid_t, &mut ts) }
                };
                host(i64::from(r))?;
                if a[1] != 0 {
                    self.put(a[1], as_bytes(&ts))?;
                }
                Ok(0)
            }
            Gettimeofday => {
                // SAFETY: all-zero is a valid timespec.
                let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
                // SAFETY: `ts` is valid and writable.
                host(i64::from(unsafe {
                    libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts)
                }))?;
                if a[0] != 0 {
                    let mut tv = [0u8; 16];
                    tv[..8].copy_from_slice(&ts.tv_sec.to_le_bytes());
                    tv[8..].copy_from_slice(&(ts.tv_nsec / 1000).to_le_bytes());
                    self.put(a[0], &tv)?;
                }
                if a[1] != 0 {
                    self.put(a[1], &[0u8; 8])?;
                }
                Ok(0)
            }
            Nanosleep => self.sleep(libc::CLOCK_MONOTONIC, 0, a[0], a[1]),
            ClockNanosleep => self.sleep(a[0] as libc::clockid_t, a[1] as i32, a[2], a[3]),
            Getrandom => {
                let p = self.out_buf(a[0], a[1])?;
                // SAFETY: `p..p + a[1]` is a checked, mapped guest range.
                host(unsafe { libc::getrandom(p.cast(), a[1] as usize, a[2] as u32) } as i64)
            }
            Futex => self.futex(a),
            Kill => {
                let pid = a[0] as i64 as i32;
                if pid == 0 || pid == -1 || i64::from(pid) == self.pid() {
                    self.send_self(a[1], signal::si::USER)
                } else {
                    // SAFETY: kill has no memory-safety preconditions.
                    host(i64::from(unsafe { libc::kill(pid, a[1] as i32) }))
                }
            }
            Tkill => {
                if a[0] as i64 != self.pid() {
                    return Err(libc::ESRCH);
                }
                self.send_self(a[1], signal::si::TKILL)
            }
            Tgkill => {
                if a[0] as i64 != self.pid() || a[1] as i64 != self.pid() {
                    return Err(libc::ESRCH);
                }
                self.send_self(a[2], signal::si::TKILL)
            }
            RtSigaction => self.rt_sigaction(a),
            RtSigprocmask => {
                if a[3] != 8 {
                    return Err(libc::EINVAL);
                }
                let set = if a[1] != 0 {
                    Some(self.get_u64(a[1])?)
                } else {
                    None
                };
                let old = self.signals.set_mask(a[0], set).map_err(|e| e.errno())?;
                if a[2] != 0 {
                    self.put(a[2], &old.to_le_bytes())?;
                }
                Ok(0)
            }
            RtSigpending => {
                if a[1] != 8 {
                    return Err(libc::EINVAL);
                }
                let set = self.signals.pending_set();
                self.put(a[0], &set.to_le_bytes())?;
                Ok(0)
            }
            Sigaltstack => {
                let new = if a[0] != 0 {
                    let b = self.get::<24>(a[0])?;
                    Some(AltStack {
                        sp: u64::from_le_bytes(b[0..8].try_into().expect("8")),
                        flags: u32::from_le_bytes(b[8..12].try_into().expect("4")),
                        size: u64::from_le_bytes(b[16..24].try_into().expect("8")),
                    })
                } else {
                    None
                };
                let old = self
                    .signals
                    .set_altstack(cpu.sp(), new)
                    .map_err(|e| e.errno())?;
                if a[1] != 0 {
                    let mut b = [0u8; 24];
                    b[0..8].copy_from_slice(&old.sp.to_le_bytes());
                    b[8..12].copy_from_slice(&old.flags.to_le_bytes());
                    b[16..24].copy_from_slice(&old.size.to_le_bytes());
                    self.put(a[1], &b)?;
                }
                Ok(0)
            }
            ArchPrctl => {
                let (gs, set) = match a[0] {
                    arch_prctl::SET_FS => (false, true),
                    arch_prctl::SET_GS => (true, true),
                    arch_prctl::GET_FS => (false, false),
                    arch_prctl::GET_GS => (true, false),
                    _ => return Err(libc::EINVAL),
                };
                let Some(base) = cpu.segment_base(gs) else {
                    return Err(libc::EINVAL);
                };
                if set {
                    // A non-canonical base would #GP on the kernel's wrmsr.
                    if a[1] >= 1 << 47 {
                        return Err(libc::EPERM);
                    }
                    *base = a[1];
                    Ok(0)
                } else {
                    let v = *base;
                    self.put(a[1], &v.to_le_bytes())?;
                    Ok(0)
                }
            }
            Time => {
                // SAFETY: all-zero is a valid timespec.
                let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
                // SAFETY: `ts` is valid and writable.
                host(i64::from(unsafe {
                    libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts)
                }))?;
                if a[0] != 0 {
                    self.put(a[0], &ts.tv_sec.to_le_bytes())?;
                }
                Ok(ts.tv_sec)
            }
            Dup2 => {
                // SAFETY: dup2 has no memory-safety preconditions.
                host(i64::from(unsafe { libc::dup2(a[0] as i32, a[1] as i32) }))
            }
            Unknown => {
                log::warn!("unknown system call {nr} (returns ENOSYS)");
                Err(libc::ENOSYS)
            }
            _ => self.file_call(sys, a),
        };
        r.map(Outcome::Return)
    }

    fn pid(&self) -> i64 {
        // SAFETY: getpid has no preconditions.
        i64::from(unsafe { libc::getpid() })
    }

    fn send_self(&mut self, signo: u64, code: i32) -> SysResult {
        if signo == 0 {
            return Ok(0);
        }
        if signo > signal::NSIG as u64 {
            return Err(libc::EINVAL);
        }
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        self.signals
            .queue(SigInfo::sent(signo as u32, code, self.pid() as u32, uid));
        Ok(0)
    }

    fn mmap(&mut self, a: [u64; 6]) -> SysResult {
        let flags = a[3] as u32;
        let file = if flags & MAP_ANONYMOUS != 0 {
            None
        } else {
            let fd = a[4] as i32;
            // SAFETY: all-zero is a valid stat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `st` is valid and writable.
            if unsafe { libc::fstat(fd, &mut st) } < 0 {
                return Err(libc::EBADF);
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(libc::ENODEV);
            }
            Some((fd, a[5]))
        };
        let addr = self
            .space
            .mmap(a[0], a[1], a[2] as u32, flags, file)
            .map_err(space_err)?;
        // A fixed mapping may replace pages that held code or sat in the TLB.
        self.flush_tlb = true;
        self.invalidate.push((addr, addr.saturating_add(a[1])));
        Ok(addr as i64)
    }

    fn uname(&mut self, at: u64) -> SysResult {
        // SAFETY: all-zero is a valid utsname.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is valid and writable.
        host(i64::from(unsafe { libc::uname(&mut u) }))?;
        let mut out = [0u8; 65 * 6];
        let field = |f: &[libc::c_char]| -> Vec<u8> {
            f.iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect()
        };
        let fields = [
            b"Linux".to_vec(),
            field(&u.nodename),
            field(&u.release),
            field(&u.version),
            self.arch.machine().as_bytes().to_vec(),
            field(&u.domainname),
        ];
        for (i, f) in fields.iter().enumerate() {
            let n = f.len().min(64);
            out[i * 65..i * 65 + n].copy_from_slice(&f[..n]);
        }
        self.put(at, &out)?;
        Ok(0)
    }

    fn prlimit(&mut self, _pid: u64, res: u64, new: u64, old: u64) -> SysResult {
        // New limits are accepted and ignored: they would bind tern itself, not the guest.
        if new != 0 {
            self.get::<16>(new)?;
        }
        if old != 0 {
            // SAFETY: all-zero is a valid rlimit.
            let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
            // SAFETY: `rl` is valid and writable.
            host(i64::from(unsafe { libc::getrlimit(res as _, &mut rl) }))?;
            if res == libc::RLIMIT_STACK as u64 {
                rl.rlim_cur = crate::stack::STACK_SIZE;
            }
            self.put(old, as_bytes(&rl))?;
        }
        Ok(0)
    }

    fn sleep(&mut self, clock: libc::clockid_t, flags: i32, req: u64, rem: u64) -> SysResult {
        let b = self.get::<16>(req)?;
        let ts = libc::timespec {
            tv_sec: i64::from_le_bytes(b[..8].try_into().expect("8")),
            tv_nsec: i64::from_le_bytes(b[8..].try_into().expect("8")),
        };
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(libc::EINVAL);
        }
        // SAFETY: all-zero is a valid timespec.
        let mut left: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: both timespecs are valid; clock_nanosleep returns the error number.
        let e = unsafe { libc::clock_nanosleep(clock, flags, &ts, &mut left) };
        if e == libc::EINTR && rem != 0 && flags == 0 {
            self.put(rem, as_bytes(&left))?;
        }
        if e != 0 {
            return Err(e);
        }
        Ok(0)
    }

    fn futex(&mut self, a: [u64; 6]) -> SysResult {
        const WAIT: u64 = 0;
        const WAKE: u64 = 1;
        const REQUEUE: u64 = 3;
        const CMP_REQUEUE: u64 = 4;
        const WAKE_OP: u64 = 5;
        const WAIT_BITSET: u64 = 9;
        const WAKE_BITSET: u64 = 10;
        match a[1] & 0x7f {
            WAIT | WAIT_BITSET => {
                let cur = u32::from_le_bytes(self.get::<4>(a[0])?);
                if cur != a[2] as u32 {
                    return Err(libc::EAGAIN);
                }
                // One thread: nobody can wake us. With a timeout, wait it out; without one,
                // block until a signal arrives, as Linux would.
                if a[3] != 0 {
                    let clock = if a[1] & 256 != 0 {
                        libc::CLOCK_REALTIME
                    } else {
                        libc::CLOCK_MONOTONIC
                    };
                    let abs = if a[1] & 0x7f == WAIT_BITSET {
                        libc::TIMER_ABSTIME
                    } else {
                        0
                    };
                    return match self.sleep(clock, abs, a[3], 0) {
                        Ok(_) => Err(libc::ETIMEDOUT),
                        Err(e) => Err(e),
                    };
                }
                log::warn!("futex wait with no other thread and no timeout: waiting for a signal");
                self.wait_for_signal();
                Err(libc::EINTR)
            }
            WAKE | WAKE_BITSET | REQUEUE | CMP_REQUEUE | WAKE_OP => Ok(0),
            _ => Err(libc::ENOSYS),
        }
    }

    /// Blocks until a host signal arrives (the guest waits with nothing that could wake it).
    fn wait_for_signal(&self) {
        while !signal::host_signals_pending() {
            // SAFETY: pause has no preconditions; it returns when any handler ran.
            unsafe { libc::pause() };
        }
    }

    fn rt_sigaction(&mut self, a: [u64; 6]) -> SysResult {
        if a[3] != 8 {
            return Err(libc::EINVAL);
        }
        let new = if a[1] != 0 {
            // riscv64's struct is 24 bytes, x86_64's 32 (it adds sa_restorer).
            let mut b = [0u8; 32];
            let len = sigaction_to(self.arch, &SigAction::default()).len();
            self.space.read(a[1], &mut b[..len]).map_err(space_err)?;
            Some(sigaction_from(self.arch, &b))
        } else {
            None
        };
        let old = self
            .signals
            .set_action(a[0] as u32, new)
            .map_err(|e| e.errno())?;
        if a[2] != 0 {
            let b = sigaction_to(self.arch, &old);
            self.put(a[2], &b)?;
        }
        Ok(0)
    }
}

/// The kernel's `struct sigaction` for `arch`: riscv64 (asm-generic) is handler, flags, mask;
/// x86_64 is handler, flags, restorer, mask.
fn sigaction_from(arch: Arch, b: &[u8; 32]) -> SigAction {
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8"));
    match arch {
        Arch::Riscv64 => SigAction {
            handler: w(0),
            flags: w(1),
            mask: w(2),
            restorer: 0,
        },
        Arch::X86_64 => SigAction {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: w(3),
        },
    }
}

/// [`sigaction_from`]'s inverse, as many bytes as `arch`'s struct has.
fn sigaction_to(arch: Arch, act: &SigAction) -> Vec<u8> {
    let words: &[u64] = match arch {
        Arch::Riscv64 => &[act.handler, act.flags, act.mask],
        Arch::X86_64 => &[act.handler, act.flags, act.restorer, act.mask],
    };
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The bytes of a plain C struct (no padding secrets: these are kernel ABI structs that the
/// host filled in completely or zeroed first).
fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: `v` is a valid `T` of `size_of::<T>()` bytes, zero-initialised before the host
    // filled it, so every byte (padding included) is initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    use frontend::riscv64::Riscv64Cpu;

    pub(crate) fn process() -> (Process, Box<Riscv64Cpu>) {
        let space = Arc::new(AddressSpace::new(1 << 32).unwrap());
        space
            .mmap(
                0x10_0000,
                0x10000,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        let mut cpu = Riscv64Cpu::new(0);
        cpu.x[2] = 0x10_f000;
        (
            Process::new(space, Arch::Riscv64, "/bin/true".into(), 0x1000),
            cpu,
        )
    }

    fn call(p: &mut Process, cpu: &mut Riscv64Cpu, sys: Sys, a: [u64; 6]) -> i64 {
        match p.syscall(cpu, sys, 0, a) {
            Outcome::Return(r) => r,
            o => panic!("unexpected {o:?}"),
        }
    }

    #[test]
    fn bad_guest_pointers_are_efault_not_host_crashes() {
        let (mut p, mut cpu) = process();
        let efault = -i64::from(libc::EFAULT);
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Write, [1, 0x10, 5, 0, 0, 0]),
            efault
        );
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Read, [0, 0xdead_0000, 5, 0, 0, 0]),
            efault
        );
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Write, [1, 0x10_fff0, 0x100, 0, 0, 0]),
            efault,
            "runs past the mapping"
        );
        assert_eq!(
            call(&mut p, &mut cpu, Sys::ClockGettime, [0, 8, 0, 0, 0, 0]),
            efault
        );
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Uname, [u64::MAX - 4, 0, 0, 0, 0, 0]),
            efault
        );
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Openat, [0, 0, 0, 0, 0, 0]),
            efault
        );
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Fstat, [1, 0x20, 0, 0, 0, 0]),
            efault
        );
        p.space.write_u64(0x10_0008, 5).unwrap();
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Writev, [1, 0x10_0000, 1, 0, 0, 0]),
            efault,
            "the iovec points at address 0"
        );
    }

    #[test]
    fn unknown_calls_are_enosys() {
        let (mut p, mut cpu) = process();
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Unknown, [0; 6]),
            -i64::from(libc::ENOSYS)
        );
    }

    #[test]
    fn exit_group_exits_with_the_low_byte() {
        let (mut p, mut cpu) = process();
        assert_eq!(
            p.syscall(&mut cpu, Sys::ExitGroup, 94, [0x12a, 0, 0, 0, 0, 0]),
            Outcome::Exit(42)
        );
    }

    #[test]
    fn uname_says_riscv64_and_clock_gettime_fills_a_timespec() {
        let (mut p, mut cpu) = process();
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Uname, [0x10_0000, 0, 0, 0, 0, 0]),
            0
        );
        assert_eq!(p.space.read_cstr(0x10_0000, 65).unwrap(), b"Linux");
        assert_eq!(
            p.space.read_cstr(0x10_0000 + 4 * 65, 65).unwrap(),
            b"riscv64"
        );
        assert_eq!(
            call(
                &mut p,
                &mut cpu,
                Sys::ClockGettime,
                [1, 0x10_1000, 0, 0, 0, 0]
            ),
            0
        );
        assert!(
            p.space.read_u64(0x10_1000).unwrap() > 0 || p.space.read_u64(0x10_1008).unwrap() > 0
        );
    }

    #[test]
    fn sigaction_round_trips_and_tgkill_to_self_queues_the_signal() {
        let (mut p, mut cpu) = process();
        let act = 0x10_0000;
        p.space.write_u64(act, 0x4_0000).unwrap();
        p.space.write_u64(act + 8, signal::sa::SIGINFO).unwrap();
        p.space.write_u64(act + 16, 0).unwrap();
        assert_eq!(
            call(&mut p, &mut cpu, Sys::RtSigaction, [10, act, 0, 8, 0, 0]),
            0
        );
        assert_eq!(
            call(
                &mut p,
                &mut cpu,
                Sys::RtSigaction,
                [10, 0, act + 0x100, 8, 0, 0]
            ),
            0
        );
        assert_eq!(p.space.read_u64(act + 0x100).unwrap(), 0x4_0000);
        assert_eq!(
            call(&mut p, &mut cpu, Sys::RtSigaction, [10, act, 0, 16, 0, 0]),
            -i64::from(libc::EINVAL),
            "sigset size must be 8"
        );
        let pid = p.pid() as u64;
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Tgkill, [pid, pid, 10, 0, 0, 0]),
            0
        );
        assert_eq!(p.signals.take_deliverable().unwrap().signo, 10);
    }

    #[test]
    fn brk_mmap_and_munmap_go_through_the_address_space() {
        let (mut p, mut cpu) = process();
        p.space.set_brk_start(0x20_0000);
        assert_eq!(call(&mut p, &mut cpu, Sys::Brk, [0; 6]), 0x20_0000);
        assert_eq!(
            call(&mut p, &mut cpu, Sys::Brk, [0x20_8000, 0, 0, 0, 0, 0]),
            0x20_8000
        );
        let a = call(
            &mut p,
            &mut cpu,
            Sys::Mmap,
            [
                0,
                0x2000,
                3,
                u64::from(MAP_PRIVATE | MAP_ANONYMOUS),
                u64::MAX,
                0,
            ],
        );
        assert!(a > 0);
        p.flush_tlb = false;
        assert_eq!(
            call(
                &mut p,
                &mut cpu,
                Sys::Munmap,
                [a as u64, 0x2000, 0, 0, 0, 0]
            ),
            0
        );
        assert!(p.flush_tlb, "the driver is told to flush the TLB");
        assert_eq!(
            call(
                &mut p,
                &mut cpu,
                Sys::Mmap,
                [0, 0x1000, 3, u64::from(MAP_PRIVATE), 999, 0]
            ),
            -i64::from(libc::EBADF)
        );
    }
}
