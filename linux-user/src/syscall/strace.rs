//! `--strace`: one line per system call, `name(args) = result`, with strings and a few flag
//! sets decoded, like strace.

use super::{Process, Sys};

/// How to print one argument.
#[derive(Clone, Copy)]
enum Arg {
    /// Signed decimal (fds, counts, signal numbers).
    Int,
    /// Hexadecimal (pointers, flags without names).
    Hex,
    /// A NUL-terminated guest string.
    Str,
    /// A guest buffer whose length is the argument at this index (printed as a string).
    Buf(usize),
    /// `AT_FDCWD` or a descriptor.
    Dirfd,
    /// `PROT_*` bits.
    Prot,
    /// `MAP_*` bits.
    MapFlags,
    /// `O_*` bits.
    OpenFlags,
}

fn signature(sys: Sys) -> Option<&'static [Arg]> {
    use Arg::*;
    use Sys::*;
    Some(match sys {
        Read | Pread64 | Getdents64 => &[Int, Hex, Int],
        Write | Pwrite64 => &[Int, Buf(2), Int],
        Readv | Writev => &[Int, Hex, Int],
        Openat => &[Dirfd, Str, OpenFlags, Hex],
        Close | Dup | Fsync | Fdatasync | Fchdir => &[Int],
        Lseek => &[Int, Int, Int],
        Fstat => &[Int, Hex],
        Newfstatat => &[Dirfd, Str, Hex, Hex],
        Statx => &[Dirfd, Str, Hex, Hex, Hex],
        Readlinkat => &[Dirfd, Str, Hex, Int],
        Faccessat | Faccessat2 | Mkdirat | Unlinkat | Fchmodat => &[Dirfd, Str, Hex],
        Renameat | Renameat2 => &[Dirfd, Str, Dirfd, Str],
        Chdir | Statfs => &[Str, Hex],
        Ioctl | Fcntl => &[Int, Hex, Hex],
        Dup3 | Pipe2 => &[Int, Int, Hex],
        Mmap => &[Hex, Int, Prot, MapFlags, Int, Hex],
        Munmap => &[Hex, Int],
        Mprotect => &[Hex, Int, Prot],
        Madvise => &[Hex, Int, Int],
        Brk | SetTidAddress | Uname | Sysinfo => &[Hex],
        Exit | ExitGroup | Umask => &[Int],
        Kill | Tkill => &[Int, Int],
        Tgkill => &[Int, Int, Int],
        RtSigaction => &[Int, Hex, Hex, Int],
        RtSigprocmask => &[Int, Hex, Hex, Int],
        Getpid | Getppid | Gettid | Getuid | Geteuid | Getgid | Getegid | SchedYield
        | RtSigreturn => &[],
        ClockGettime | ClockGetres => &[Int, Hex],
        Getrandom => &[Hex, Int, Hex],
        Futex => &[Hex, Int, Int, Hex],
        _ => return None,
    })
}

fn quote(bytes: &[u8], limit: usize) -> String {
    let mut s = String::from("\"");
    for &c in bytes.iter().take(limit) {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    if bytes.len() > limit {
        s.push_str("...");
    }
    s
}

fn flags(v: u64, names: &[(u64, &str)], zero: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = v;
    for &(bit, name) in names {
        if bit != 0 && v & bit == bit {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        zero.to_string()
    } else {
        parts.join("|")
    }
}

/// `name(args)` for a call about to run.
pub fn format_call(p: &Process, sys: Sys, nr: u64, a: &[u64; 6]) -> String {
    let Some(sig) = signature(sys) else {
        let name = if sys == Sys::Unknown {
            format!("syscall_{nr}")
        } else {
            sys.name().to_string()
        };
        let args: Vec<String> = a.iter().map(|v| format!("{v:#x}")).collect();
        return format!("{name}({})", args.join(", "));
    };
    let args: Vec<String> = sig
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let v = a[i];
            match *kind {
                Arg::Int => (v as i64).to_string(),
                Arg::Hex => format!("{v:#x}"),
                Arg::Str => match p.space.read_cstr(v, 256) {
                    Ok(s) => quote(&s, 256),
                    Err(_) => format!("{v:#x}"),
                },
                Arg::Buf(len) => {
                    let n = (a[len] as usize).min(32);
                    let mut b = vec![0u8; n];
                    match p.space.read(v, &mut b) {
                        Ok(()) => quote(&b, 32) + if a[len] > 32 { "..." } else { "" },
                        Err(_) => format!("{v:#x}"),
                    }
                }
                Arg::Dirfd => {
                    if v as i64 as i32 == libc::AT_FDCWD {
                        "AT_FDCWD".to_string()
                    } else {
                        (v as i64).to_string()
                    }
                }
                Arg::Prot => flags(
                    v,
                    &[(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")],
                    "PROT_NONE",
                ),
                Arg::MapFlags => flags(
                    v,
                    &[
                        (0x01, "MAP_SHARED"),
                        (0x02, "MAP_PRIVATE"),
                        (0x10, "MAP_FIXED"),
                        (0x20, "MAP_ANONYMOUS"),
                        (0x4000, "MAP_NORESERVE"),
                        (0x2_0000, "MAP_STACK"),
                        (0x10_0000, "MAP_FIXED_NOREPLACE"),
                    ],
                    "0",
                ),
                Arg::OpenFlags => {
                    let acc = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][(v & 3) as usize];
                    let more = flags(
                        v & !3,
                        &[
                            (0o100, "O_CREAT"),
                            (0o200, "O_EXCL"),
                            (0o1000, "O_TRUNC"),
                            (0o2000, "O_APPEND"),
                            (0o4000, "O_NONBLOCK"),
                            (0o200000, "O_DIRECTORY"),
                            (0o2000000, "O_CLOEXEC"),
                        ],
                        "",
                    );
                    if more.is_empty() {
                        acc.to_string()
                    } else {
                        format!("{acc}|{more}")
                    }
                }
            }
        })
        .collect();
    format!("{}({})", sys.name(), args.join(", "))
}

/// The result as strace shows it: a number, or `-1 ENAME (message)`.
pub fn format_result(r: i64) -> String {
    if (-4095..0).contains(&r) {
        let e = std::io::Error::from_raw_os_error(-r as i32);
        format!("-1 errno {} ({e})", -r)
    } else if r > 0xffff {
        format!("{r:#x}")
    } else {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_print_with_strings_and_flags_decoded() {
        let (p, _) = super::super::tests::process();
        p.space.write(0x10_0000, b"hi\n\0/etc/x\0").unwrap();
        assert_eq!(
            format_call(&p, Sys::Write, 64, &[1, 0x10_0000, 3, 0, 0, 0]),
            "write(1, \"hi\\n\", 3)"
        );
        assert_eq!(
            format_call(
                &p,
                Sys::Openat,
                56,
                &[-100i64 as u64, 0x10_0004, 0o2000101, 0o644, 0, 0]
            ),
            "openat(AT_FDCWD, \"/etc/x\", O_WRONLY|O_CREAT|O_CLOEXEC, 0x1a4)"
        );
        assert_eq!(
            format_call(&p, Sys::Mmap, 222, &[0, 4096, 3, 0x22, u64::MAX, 0]),
            "mmap(0x0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0)"
        );
        assert_eq!(
            format_call(&p, Sys::Unknown, 999, &[1, 2, 3, 4, 5, 6]),
            "syscall_999(0x1, 0x2, 0x3, 0x4, 0x5, 0x6)"
        );
        assert_eq!(format_result(3), "3");
        assert!(format_result(-2).starts_with("-1 errno 2 ("));
    }
}
