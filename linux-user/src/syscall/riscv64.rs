//! riscv64's system call numbers: the asm-generic table (`include/uapi/asm-generic/unistd.h`)
//! plus riscv's architecture-specific calls from 244 up. x86_64's table (different numbers,
//! same [`Sys`] values) can sit beside this one.

use super::Sys;

/// The system call riscv64 Linux runs for number `nr` (`a7`).
pub fn sys(nr: u64) -> Sys {
    use Sys::*;
    match nr {
        17 => Getcwd,
        23 => Dup,
        24 => Dup3,
        25 => Fcntl,
        29 => Ioctl,
        34 => Mkdirat,
        35 => Unlinkat,
        36 => Symlinkat,
        37 => Linkat,
        38 => Renameat,
        43 => Statfs,
        44 => Fstatfs,
        45 => Truncate,
        46 => Ftruncate,
        48 => Faccessat,
        49 => Chdir,
        50 => Fchdir,
        52 => Fchmod,
        53 => Fchmodat,
        54 => Fchownat,
        56 => Openat,
        57 => Close,
        59 => Pipe2,
        61 => Getdents64,
        62 => Lseek,
        63 => Read,
        64 => Write,
        65 => Readv,
        66 => Writev,
        67 => Pread64,
        68 => Pwrite64,
        73 => Ppoll,
        78 => Readlinkat,
        79 => Newfstatat,
        80 => Fstat,
        82 => Fsync,
        83 => Fdatasync,
        88 => Utimensat,
        93 => Exit,
        94 => ExitGroup,
        96 => SetTidAddress,
        98 => Futex,
        99 => SetRobustList,
        101 => Nanosleep,
        113 => ClockGettime,
        114 => ClockGetres,
        115 => ClockNanosleep,
        122 => SchedSetaffinity,
        123 => SchedGetaffinity,
        124 => SchedYield,
        129 => Kill,
        130 => Tkill,
        131 => Tgkill,
        132 => Sigaltstack,
        134 => RtSigaction,
        135 => RtSigprocmask,
        136 => RtSigpending,
        139 => RtSigreturn,
        153 => Times,
        155 => Getpgid,
        156 => Getsid,
        160 => Uname,
        163 => Getrlimit,
        164 => Setrlimit,
        165 => Getrusage,
        166 => Umask,
        167 => Prctl,
        169 => Gettimeofday,
        172 => Getpid,
        173 => Getppid,
        174 => Getuid,
        175 => Geteuid,
        176 => Getgid,
        177 => Getegid,
        178 => Gettid,
        179 => Sysinfo,
        214 => Brk,
        215 => Munmap,
        216 => Mremap,
        222 => Mmap,
        226 => Mprotect,
        233 => Madvise,
        258 => RiscvHwprobe,
        259 => RiscvFlushIcache,
        261 => Prlimit64,
        276 => Renameat2,
        278 => Getrandom,
        283 => Membarrier,
        291 => Statx,
        293 => Rseq,
        439 => Faccessat2,
        _ => Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_a_static_glibc_program_starts_with_have_their_generic_numbers() {
        assert_eq!(sys(64), Sys::Write);
        assert_eq!(sys(94), Sys::ExitGroup);
        assert_eq!(sys(214), Sys::Brk);
        assert_eq!(sys(222), Sys::Mmap);
        assert_eq!(sys(139), Sys::RtSigreturn);
        assert_eq!(sys(79), Sys::Newfstatat);
        assert_eq!(sys(1000), Sys::Unknown);
    }
}
