//! x86_64's system call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`) mapped onto the
//! guest-neutral [`Sys`], and the x86_64 structures whose layout differs from riscv64's.
//!
//! x86_64 keeps the pre-`*at` path calls (`open`, `stat`, `unlink`, ...) that asm-generic
//! dropped; [`sys`] turns each into its `*at` form with `AT_FDCWD`, so one handler serves both
//! architectures (strace then shows the `*at` name).

use super::Sys;

/// `AT_FDCWD` as a raw argument.
const AT_FDCWD: u64 = -100i64 as u64;
/// `AT_SYMLINK_NOFOLLOW`.
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_REMOVEDIR`.
const AT_REMOVEDIR: u64 = 0x200;
/// `O_WRONLY | O_CREAT | O_TRUNC`, what `creat` opens with.
const CREAT_FLAGS: u64 = 0o1101;

/// The call x86_64 Linux runs for number `nr` (`rax`) with arguments `a` (rdi, rsi, rdx, r10,
/// r8, r9), and the arguments the neutral handler takes.
pub fn sys(nr: u64, a: [u64; 6]) -> (Sys, [u64; 6]) {
    use Sys::*;
    let s = match nr {
        0 => Read,
        1 => Write,
        2 => return (Openat, [AT_FDCWD, a[0], a[1], a[2], 0, 0]),
        3 => Close,
        4 => return (Newfstatat, [AT_FDCWD, a[0], a[1], 0, 0, 0]),
        5 => Fstat,
        6 => {
            return (
                Newfstatat,
                [AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW, 0, 0],
            )
        }
        8 => Lseek,
        9 => Mmap,
        10 => Mprotect,
        11 => Munmap,
        12 => Brk,
        13 => RtSigaction,
        14 => RtSigprocmask,
        15 => RtSigreturn,
        16 => Ioctl,
        17 => Pread64,
        18 => Pwrite64,
        19 => Readv,
        20 => Writev,
        21 => return (Faccessat, [AT_FDCWD, a[0], a[1], 0, 0, 0]),
        22 => return (Pipe2, [a[0], 0, 0, 0, 0, 0]),
        24 => SchedYield,
        25 => Mremap,
        28 => Madvise,
        32 => Dup,
        33 => Dup2,
        35 => Nanosleep,
        39 => Getpid,
        60 => Exit,
        62 => Kill,
        63 => Uname,
        72 => Fcntl,
        74 => Fsync,
        75 => Fdatasync,
        76 => Truncate,
        77 => Ftruncate,
        79 => Getcwd,
        80 => Chdir,
        81 => Fchdir,
        82 => return (Renameat, [AT_FDCWD, a[0], AT_FDCWD, a[1], 0, 0]),
        83 => return (Mkdirat, [AT_FDCWD, a[0], a[1], 0, 0, 0]),
        84 => return (Unlinkat, [AT_FDCWD, a[0], AT_REMOVEDIR, 0, 0, 0]),
        85 => return (Openat, [AT_FDCWD, a[0], CREAT_FLAGS, a[1], 0, 0]),
        86 => return (Linkat, [AT_FDCWD, a[0], AT_FDCWD, a[1], 0, 0]),
        87 => return (Unlinkat, [AT_FDCWD, a[0], 0, 0, 0, 0]),
        88 => return (Symlinkat, [a[0], AT_FDCWD, a[1], 0, 0, 0]),
        89 => return (Readlinkat, [AT_FDCWD, a[0], a[1], a[2], 0, 0]),
        90 => return (Fchmodat, [AT_FDCWD, a[0], a[1], 0, 0, 0]),
        91 => Fchmod,
        92 => return (Fchownat, [AT_FDCWD, a[0], a[1], a[2], 0, 0]),
        94 => {
            return (
                Fchownat,
                [AT_FDCWD, a[0], a[1], a[2], AT_SYMLINK_NOFOLLOW, 0],
            )
        }
        95 => Umask,
        96 => Gettimeofday,
        97 => Getrlimit,
        98 => Getrusage,
        99 => Sysinfo,
        100 => Times,
        102 => Getuid,
        104 => Getgid,
        107 => Geteuid,
        108 => Getegid,
        110 => Getppid,
        111 => return (Getpgid, [0; 6]),
        121 => Getpgid,
        124 => Getsid,
        127 => RtSigpending,
        131 => Sigaltstack,
        137 => Statfs,
        138 => Fstatfs,
        157 => Prctl,
        158 => ArchPrctl,
        160 => Setrlimit,
        186 => Gettid,
        200 => Tkill,
        201 => Time,
        202 => Futex,
        203 => SchedSetaffinity,
        204 => SchedGetaffinity,
        217 => Getdents64,
        218 => SetTidAddress,
        228 => ClockGettime,
        229 => ClockGetres,
        230 => ClockNanosleep,
        231 => ExitGroup,
        234 => Tgkill,
        257 => Openat,
        258 => Mkdirat,
        260 => Fchownat,
        262 => Newfstatat,
        263 => Unlinkat,
        264 => Renameat,
        265 => Linkat,
        266 => Symlinkat,
        267 => Readlinkat,
        268 => Fchmodat,
        269 => Faccessat,
        271 => Ppoll,
        273 => SetRobustList,
        280 => Utimensat,
        292 => Dup3,
        293 => Pipe2,
        302 => Prlimit64,
        316 => Renameat2,
        318 => Getrandom,
        324 => Membarrier,
        332 => Statx,
        334 => Rseq,
        439 => Faccessat2,
        _ => Unknown,
    };
    (s, a)
}

/// x86_64's `struct stat` (`arch/x86/include/uapi/asm/stat.h`), 144 bytes: the field order
/// differs from asm-generic (nlink before mode, 64-bit nlink and blksize). Built field by
/// field so it does not depend on the host's own layout.
// The casts are identities on some hosts and not on others (field types vary by host ABI).
#[allow(clippy::unnecessary_cast)]
pub fn stat(st: &libc::stat) -> [u8; 144] {
    let mut b = [0u8; 144];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &(st.st_dev as u64).to_le_bytes());
    put(8, &(st.st_ino as u64).to_le_bytes());
    put(16, &(st.st_nlink as u64).to_le_bytes());
    put(24, &(st.st_mode as u32).to_le_bytes());
    put(28, &(st.st_uid as u32).to_le_bytes());
    put(32, &(st.st_gid as u32).to_le_bytes());
    // 36: __pad0
    put(40, &(st.st_rdev as u64).to_le_bytes());
    put(48, &(st.st_size as i64).to_le_bytes());
    put(56, &(st.st_blksize as i64).to_le_bytes());
    put(64, &(st.st_blocks as i64).to_le_bytes());
    put(72, &(st.st_atime as i64).to_le_bytes());
    put(80, &(st.st_atime_nsec as u64).to_le_bytes());
    put(88, &(st.st_mtime as i64).to_le_bytes());
    put(96, &(st.st_mtime_nsec as u64).to_le_bytes());
    put(104, &(st.st_ctime as i64).to_le_bytes());
    put(112, &(st.st_ctime_nsec as u64).to_le_bytes());
    // 120..144: __unused[3]
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_a_static_program_starts_with_have_their_x86_64_numbers() {
        let a = [1, 2, 3, 4, 5, 6];
        assert_eq!(sys(1, a), (Sys::Write, a));
        assert_eq!(sys(60, a).0, Sys::Exit);
        assert_eq!(sys(231, a).0, Sys::ExitGroup);
        assert_eq!(sys(158, a).0, Sys::ArchPrctl);
        assert_eq!(sys(15, a).0, Sys::RtSigreturn);
        assert_eq!(sys(13, a).0, Sys::RtSigaction);
        assert_eq!(sys(9, a).0, Sys::Mmap);
        assert_eq!(sys(5000, a).0, Sys::Unknown);
        assert_eq!(sys(201, a).0, Sys::Time);
    }

    #[test]
    fn legacy_path_calls_become_their_at_forms_relative_to_the_cwd() {
        let a = [0x1000, 0o644, 0o600, 0, 0, 0];
        assert_eq!(
            sys(2, a),
            (Sys::Openat, [AT_FDCWD, 0x1000, 0o644, 0o600, 0, 0])
        );
        assert_eq!(
            sys(6, a),
            (Sys::Newfstatat, [AT_FDCWD, 0x1000, 0o644, 0x100, 0, 0])
        );
        assert_eq!(
            sys(84, a),
            (Sys::Unlinkat, [AT_FDCWD, 0x1000, 0x200, 0, 0, 0])
        );
        assert_eq!(
            sys(88, a),
            (Sys::Symlinkat, [0x1000, AT_FDCWD, 0o644, 0, 0, 0])
        );
        assert_eq!(
            sys(85, a),
            (Sys::Openat, [AT_FDCWD, 0x1000, 0o1101, 0o644, 0, 0])
        );
        assert_eq!(sys(22, a), (Sys::Pipe2, [0x1000, 0, 0, 0, 0, 0]));
    }

    /// On an x86_64 host the libc crate's numbers are the kernel's: every mapped number must
    /// name the call of the same name.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn numbers_agree_with_the_host_kernel_headers() {
        let host: &[(i64, Sys)] = &[
            (libc::SYS_read, Sys::Read),
            (libc::SYS_write, Sys::Write),
            (libc::SYS_close, Sys::Close),
            (libc::SYS_fstat, Sys::Fstat),
            (libc::SYS_lseek, Sys::Lseek),
            (libc::SYS_mmap, Sys::Mmap),
            (libc::SYS_mprotect, Sys::Mprotect),
            (libc::SYS_munmap, Sys::Munmap),
            (libc::SYS_brk, Sys::Brk),
            (libc::SYS_rt_sigaction, Sys::RtSigaction),
            (libc::SYS_rt_sigprocmask, Sys::RtSigprocmask),
            (libc::SYS_rt_sigreturn, Sys::RtSigreturn),
            (libc::SYS_ioctl, Sys::Ioctl),
            (libc::SYS_pread64, Sys::Pread64),
            (libc::SYS_pwrite64, Sys::Pwrite64),
            (libc::SYS_readv, Sys::Readv),
            (libc::SYS_writev, Sys::Writev),
            (libc::SYS_sched_yield, Sys::SchedYield),
            (libc::SYS_mremap, Sys::Mremap),
            (libc::SYS_madvise, Sys::Madvise),
            (libc::SYS_dup, Sys::Dup),
            (libc::SYS_dup2, Sys::Dup2),
            (libc::SYS_nanosleep, Sys::Nanosleep),
            (libc::SYS_getpid, Sys::Getpid),
            (libc::SYS_exit, Sys::Exit),
            (libc::SYS_kill, Sys::Kill),
            (libc::SYS_uname, Sys::Uname),
            (libc::SYS_fcntl, Sys::Fcntl),
            (libc::SYS_fsync, Sys::Fsync),
            (libc::SYS_fdatasync, Sys::Fdatasync),
            (libc::SYS_truncate, Sys::Truncate),
            (libc::SYS_ftruncate, Sys::Ftruncate),
            (libc::SYS_getcwd, Sys::Getcwd),
            (libc::SYS_chdir, Sys::Chdir),
            (libc::SYS_fchdir, Sys::Fchdir),
            (libc::SYS_fchmod, Sys::Fchmod),
            (libc::SYS_umask, Sys::Umask),
            (libc::SYS_gettimeofday, Sys::Gettimeofday),
            (libc::SYS_getrlimit, Sys::Getrlimit),
            (libc::SYS_getrusage, Sys::Getrusage),
            (libc::SYS_sysinfo, Sys::Sysinfo),
            (libc::SYS_times, Sys::Times),
            (libc::SYS_getuid, Sys::Getuid),
            (libc::SYS_getgid, Sys::Getgid),
            (libc::SYS_geteuid, Sys::Geteuid),
            (libc::SYS_getegid, Sys::Getegid),
            (libc::SYS_getppid, Sys::Getppid),
            (libc::SYS_getpgid, Sys::Getpgid),
            (libc::SYS_getsid, Sys::Getsid),
            (libc::SYS_rt_sigpending, Sys::RtSigpending),
            (libc::SYS_sigaltstack, Sys::Sigaltstack),
            (libc::SYS_statfs, Sys::Statfs),
            (libc::SYS_fstatfs, Sys::Fstatfs),
            (libc::SYS_prctl, Sys::Prctl),
            (libc::SYS_arch_prctl, Sys::ArchPrctl),
            (libc::SYS_setrlimit, Sys::Setrlimit),
            (libc::SYS_gettid, Sys::Gettid),
            (libc::SYS_tkill, Sys::Tkill),
            (libc::SYS_time, Sys::Time),
            (libc::SYS_futex, Sys::Futex),
            (libc::SYS_sched_setaffinity, Sys::SchedSetaffinity),
            (libc::SYS_sched_getaffinity, Sys::SchedGetaffinity),
            (libc::SYS_getdents64, Sys::Getdents64),
            (libc::SYS_set_tid_address, Sys::SetTidAddress),
            (libc::SYS_clock_gettime, Sys::ClockGettime),
            (libc::SYS_clock_getres, Sys::ClockGetres),
            (libc::SYS_clock_nanosleep, Sys::ClockNanosleep),
            (libc::SYS_exit_group, Sys::ExitGroup),
            (libc::SYS_tgkill, Sys::Tgkill),
            (libc::SYS_openat, Sys::Openat),
            (libc::SYS_mkdirat, Sys::Mkdirat),
            (libc::SYS_fchownat, Sys::Fchownat),
            (libc::SYS_newfstatat, Sys::Newfstatat),
            (libc::SYS_unlinkat, Sys::Unlinkat),
            (libc::SYS_renameat, Sys::Renameat),
            (libc::SYS_linkat, Sys::Linkat),
            (libc::SYS_symlinkat, Sys::Symlinkat),
            (libc::SYS_readlinkat, Sys::Readlinkat),
            (libc::SYS_fchmodat, Sys::Fchmodat),
            (libc::SYS_faccessat, Sys::Faccessat),
            (libc::SYS_ppoll, Sys::Ppoll),
            (libc::SYS_set_robust_list, Sys::SetRobustList),
            (libc::SYS_utimensat, Sys::Utimensat),
            (libc::SYS_dup3, Sys::Dup3),
            (libc::SYS_pipe2, Sys::Pipe2),
            (libc::SYS_prlimit64, Sys::Prlimit64),
            (libc::SYS_renameat2, Sys::Renameat2),
            (libc::SYS_getrandom, Sys::Getrandom),
            (libc::SYS_membarrier, Sys::Membarrier),
            (libc::SYS_statx, Sys::Statx),
            (libc::SYS_rseq, Sys::Rseq),
            (libc::SYS_faccessat2, Sys::Faccessat2),
        ];
        for &(nr, call) in host {
            assert_eq!(sys(nr as u64, [0; 6]).0, call, "number {nr}");
        }
    }

    #[test]
    fn stat_puts_nlink_before_mode_as_x86_64_does() {
        // SAFETY: all-zero is a valid stat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_ino = 0x1122;
        st.st_nlink = 3;
        st.st_mode = 0o100644;
        st.st_size = 12345;
        st.st_mtime = 99;
        let b = stat(&st);
        let w = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(w(8), 0x1122);
        assert_eq!(w(16), 3);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 0o100644);
        assert_eq!(w(48), 12345);
        assert_eq!(w(88), 99);
    }

    /// On an x86_64 host the converted stat is byte for byte the host's own.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn stat_matches_the_host_layout() {
        assert_eq!(std::mem::size_of::<libc::stat>(), 144);
        // SAFETY: all-zero is a valid stat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let path = std::ffi::CString::new("/").unwrap();
        // SAFETY: valid C string and stat buffer.
        assert_eq!(unsafe { libc::stat(path.as_ptr(), &mut st) }, 0);
        // SAFETY: a stat is 144 initialised bytes (zeroed first).
        let raw =
            unsafe { std::slice::from_raw_parts((&st as *const libc::stat).cast::<u8>(), 144) };
        assert_eq!(&stat(&st)[..], raw);
    }
}
