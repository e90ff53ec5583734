//! File and descriptor system calls, run on the host's descriptors.
//!
//! Most structures are the same on riscv64 and x86_64 hosts (iovec, timespec, statx,
//! linux_dirent64, pollfd, flock, termios, winsize, statfs on 64-bit); `struct stat` is not:
//! riscv64 uses the asm-generic layout, converted field by field by [`generic_stat`].

use std::ffi::CString;

use super::{host, last_errno, Process, Sys, SysResult};
use crate::signal::{si, sig, SigInfo};

/// `AT_FDCWD` as the guest passes it (a sign-extended int).
fn dirfd(v: u64) -> libc::c_int {
    v as i64 as libc::c_int
}

/// The asm-generic `struct stat` (riscv64): 128 bytes.
// The casts are identities on some hosts and not on others (field types vary by host ABI).
#[allow(clippy::unnecessary_cast)]
pub fn generic_stat(st: &libc::stat) -> [u8; 128] {
    let mut b = [0u8; 128];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &(st.st_dev as u64).to_le_bytes());
    put(8, &(st.st_ino as u64).to_le_bytes());
    put(16, &(st.st_mode as u32).to_le_bytes());
    put(20, &(st.st_nlink as u32).to_le_bytes());
    put(24, &(st.st_uid as u32).to_le_bytes());
    put(28, &(st.st_gid as u32).to_le_bytes());
    put(32, &(st.st_rdev as u64).to_le_bytes());
    // 40: __pad1
    put(48, &(st.st_size as i64).to_le_bytes());
    put(56, &(st.st_blksize as i32).to_le_bytes());
    // 60: __pad2
    put(64, &(st.st_blocks as i64).to_le_bytes());
    put(72, &(st.st_atime as i64).to_le_bytes());
    put(80, &(st.st_atime_nsec as u64).to_le_bytes());
    put(88, &(st.st_mtime as i64).to_le_bytes());
    put(96, &(st.st_mtime_nsec as u64).to_le_bytes());
    put(104, &(st.st_ctime as i64).to_le_bytes());
    put(112, &(st.st_ctime_nsec as u64).to_le_bytes());
    b
}

/// Terminal ioctls passed through (same numbers and structures on riscv64 and x86_64).
mod tty {
    pub const TCGETS: u64 = 0x5401;
    pub const TCSETS: u64 = 0x5402;
    pub const TCSETSW: u64 = 0x5403;
    pub const TCSETSF: u64 = 0x5404;
    pub const TIOCGWINSZ: u64 = 0x5413;
    pub const TIOCSWINSZ: u64 = 0x5414;
    pub const FIONREAD: u64 = 0x541b;
    pub const FIONBIO: u64 = 0x5421;
    /// `struct termios` (asm-generic and x86_64 alike): 4 flags, c_line, 19 c_cc.
    pub const TERMIOS_SIZE: u64 = 36;
}

impl Process {
    fn stat_out(&mut self, st: &libc::stat, at: u64) -> SysResult {
        match self.arch {
            crate::elf::Arch::Riscv64 => self.put(at, &generic_stat(st))?,
            crate::elf::Arch::X86_64 => self.put(at, &super::x86_64::stat(st))?,
        }
        Ok(0)
    }

    fn rw_result(&mut self, r: isize) -> SysResult {
        if r < 0 {
            let e = last_errno();
            if e == libc::EPIPE {
                // SAFETY: getuid has no preconditions.
                let uid = unsafe { libc::getuid() };
                self.signals.queue(SigInfo::sent(
                    sig::SIGPIPE,
                    si::USER,
                    self.pid() as u32,
                    uid,
                ));
            }
            return Err(e);
        }
        Ok(r as i64)
    }

    /// Host iovecs for a guest iovec array, each buffer checked for the access.
    fn iovecs(&mut self, at: u64, count: u64, host_writes: bool) -> Result<Vec<libc::iovec>, i32> {
        if count > 1024 {
            return Err(libc::EINVAL);
        }
        let mut v = Vec::with_capacity(count as usize);
        for i in 0..count {
            let b = self.get::<16>(at + 16 * i)?;
            let base = u64::from_le_bytes(b[..8].try_into().expect("8"));
            let len = u64::from_le_bytes(b[8..].try_into().expect("8"));
            let p = if host_writes {
                self.out_buf(base, len)?
            } else {
                self.in_buf(base, len)? as *mut u8
            };
            v.push(libc::iovec {
                iov_base: p.cast(),
                iov_len: len as usize,
            });
        }
        Ok(v)
    }

    pub(super) fn file_call(&mut self, sys: Sys, a: [u64; 6]) -> SysResult {
        use Sys::*;
        let fd = a[0] as i32;
        match sys {
            Read => {
                let p = self.out_buf(a[1], a[2])?;
                // SAFETY: `p..p + a[2]` is a checked, mapped guest range.
                let r = unsafe { libc::read(fd, p.cast(), a[2] as usize) };
                self.rw_result(r)
            }
            Write => {
                let p = self.in_buf(a[1], a[2])?;
                // SAFETY: as above.
                let r = unsafe { libc::write(fd, p.cast(), a[2] as usize) };
                self.rw_result(r)
            }
            Pread64 => {
                let p = self.out_buf(a[1], a[2])?;
                // SAFETY: as above.
                let r = unsafe { libc::pread(fd, p.cast(), a[2] as usize, a[3] as i64) };
                self.rw_result(r)
            }
            Pwrite64 => {
                let p = self.in_buf(a[1], a[2])?;
                // SAFETY: as above.
                let r = unsafe { libc::pwrite(fd, p.cast(), a[2] as usize, a[3] as i64) };
                self.rw_result(r)
            }
            Readv | Writev => {
                let iov = self.iovecs(a[1], a[2], sys == Readv)?;
                let r = if sys == Readv {
                    // SAFETY: every iovec points at a checked, mapped guest range.
                    unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as i32) }
                } else {
                    // SAFETY: as above.
                    unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as i32) }
                };
                self.rw_result(r)
            }
            Openat => {
                let path = self.path(a[1])?;
                // SAFETY: `path` is a valid C string; openat has no other preconditions.
                host(i64::from(unsafe {
                    libc::openat(
                        dirfd(a[0]),
                        path.as_ptr(),
                        a[2] as i32,
                        a[3] as libc::c_uint,
                    )
                }))
            }
            // SAFETY: closing a descriptor has no memory-safety preconditions.
            Close => host(i64::from(unsafe { libc::close(fd) })),
            // SAFETY: as above.
            Lseek => host(unsafe { libc::lseek(fd, a[1] as i64, a[2] as i32) }),
            // SAFETY: as above.
            Dup => host(i64::from(unsafe { libc::dup(fd) })),
            // SAFETY: as above.
            Dup3 => host(i64::from(unsafe {
                libc::dup3(fd, a[1] as i32, a[2] as i32)
            })),
            // SAFETY: as above.
            Fsync => host(i64::from(unsafe { libc::fsync(fd) })),
            // SAFETY: as above.
            Fdatasync => host(i64::from(unsafe { libc::fdatasync(fd) })),
            // SAFETY: as above.
            Ftruncate => host(i64::from(unsafe { libc::ftruncate(fd, a[1] as i64) })),
            // SAFETY: as above.
            Fchdir => host(i64::from(unsafe { libc::fchdir(fd) })),
            // SAFETY: as above.
            Fchmod => host(i64::from(unsafe { libc::fchmod(fd, a[1] as libc::mode_t) })),
            Fcntl => self.fcntl(fd, a[1], a[2]),
            Ioctl => self.ioctl(fd, a[1], a[2]),
            Pipe2 => {
                let mut fds = [0i32; 2];
                // SAFETY: `fds` has room for the two descriptors.
                host(i64::from(unsafe {
                    libc::pipe2(fds.as_mut_ptr(), a[1] as i32)
                }))?;
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&fds[0].to_le_bytes());
                b[4..].copy_from_slice(&fds[1].to_le_bytes());
                if let Err(e) = self.put(a[0], &b) {
                    for fd in fds {
                        // SAFETY: the descriptors were just created and are ours to close.
                        unsafe { libc::close(fd) };
                    }
                    return Err(e);
                }
                Ok(0)
            }
            Getdents64 => {
                let p = self.out_buf(a[1], a[2])?;
                // SAFETY: `p..p + a[2]` is a checked, mapped guest range; linux_dirent64 is
                // the same on every architecture.
                host(unsafe { libc::syscall(libc::SYS_getdents64, fd, p, a[2] as usize) })
            }
            Fstat => {
                // SAFETY: all-zero is a valid stat.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: `st` is valid and writable.
                host(i64::from(unsafe { libc::fstat(fd, &mut st) }))?;
                self.stat_out(&st, a[1])
            }
            Newfstatat => {
                let path = self.path(a[1])?;
                // SAFETY: all-zero is a valid stat.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: valid C string and stat buffer.
                host(i64::from(unsafe {
                    libc::fstatat(dirfd(a[0]), path.as_ptr(), &mut st, a[3] as i32)
                }))?;
                self.stat_out(&st, a[2])
            }
            Statx => {
                let path = self.path(a[1])?;
                let mut buf = [0u8; 256];
                // SAFETY: valid C string; `buf` holds a whole struct statx (256 bytes).
                host(unsafe {
                    libc::syscall(
                        libc::SYS_statx,
                        dirfd(a[0]),
                        path.as_ptr(),
                        a[2] as i32,
                        a[3] as u32,
                        buf.as_mut_ptr(),
                    )
                })?;
                self.put(a[4], &buf)?;
                Ok(0)
            }
            Statfs | Fstatfs => {
                // SAFETY: all-zero is a valid statfs.
                let mut st: libc::statfs = unsafe { std::mem::zeroed() };
                let r = if sys == Statfs {
                    let path = self.path(a[0])?;
                    // SAFETY: valid C string and buffer.
                    unsafe { libc::statfs(path.as_ptr(), &mut st) }
                } else {
                    // SAFETY: valid buffer.
                    unsafe { libc::fstatfs(fd, &mut st) }
                };
                host(i64::from(r))?;
                self.put(a[1], super::as_bytes(&st))?;
                Ok(0)
            }
            Readlinkat => {
                let path = self.path(a[1])?;
                if path.as_bytes() == b"/proc/self/exe" {
                    let exe = self.exe.as_os_str().as_encoded_bytes().to_vec();
                    let n = exe.len().min(a[3] as usize);
                    self.put(a[2], &exe[..n])?;
                    return Ok(n as i64);
                }
                let p = self.out_buf(a[2], a[3])?;
                // SAFETY: valid C string; `p..p + a[3]` is a checked guest range.
                host(unsafe {
                    libc::readlinkat(dirfd(a[0]), path.as_ptr(), p.cast(), a[3] as usize)
                } as i64)
            }
            Getcwd => {
                let p = self.out_buf(a[0], a[1])?;
                // SAFETY: `p..p + a[1]` is a checked guest range; the raw system call returns
                // the length including the NUL, as the guest expects.
                host(unsafe { libc::syscall(libc::SYS_getcwd, p, a[1] as usize) })
            }
            Chdir => {
                let path = self.path(a[0])?;
                // SAFETY: valid C string.
                host(i64::from(unsafe { libc::chdir(path.as_ptr()) }))
            }
            Truncate => {
                let path = self.path(a[0])?;
                // SAFETY: valid C string.
                host(i64::from(unsafe {
                    libc::truncate(path.as_ptr(), a[1] as i64)
                }))
            }
            Mkdirat => {
                let path = self.path(a[1])?;
                // SAFETY: valid C string.
                host(i64::from(unsafe {
                    libc::mkdirat(dirfd(a[0]), path.as_ptr(), a[2] as libc::mode_t)
                }))
            }
            Unlinkat => {
                let path = self.path(a[1])?;
                // SAFETY: valid C string.
                host(i64::from(unsafe {
                    libc::unlinkat(dirfd(a[0]), path.as_ptr(), a[2] as i32)
                }))
            }
            Faccessat | Faccessat2 => {
                let path = self.path(a[1])?;
                let flags = if sys == Faccessat2 { a[3] } else { 0 };
                // SAFETY: valid C string.
                host(unsafe {
                    libc::syscall(
                        libc::SYS_faccessat2,
                        dirfd(a[0]),
                        path.as_ptr(),
                        a[2] as i32,
                        flags as i32,
                    )
                })
            }
            Fchmodat => {
                let path = self.path(a[1])?;
                // SAFETY: valid C string.
                host(unsafe {
                    libc::syscall(libc::SYS_fchmodat, dirfd(a[0]), path.as_ptr(), a[2] as u32)
                })
            }
            Fchownat => {
                let path = self.path(a[1])?;
                // SAFETY: valid C string.
                host(i64::from(unsafe {
                    libc::fchownat(
                        dirfd(a[0]),
                        path.as_ptr(),
                        a[2] as u32,
                        a[3] as u32,
                        a[4] as i32,
                    )
                }))
            }
            Renameat | Renameat2 => {
                let from = self.path(a[1])?;
                let to = self.path(a[3])?;
                let flags = if sys == Renameat2 { a[4] as u32 } else { 0 };
                // SAFETY: valid C strings.
                host(unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        dirfd(a[0]),
                        from.as_ptr(),
                        dirfd(a[2]),
                        to.as_ptr(),
                        flags,
                    )
                })
            }
            Symlinkat => {
                let target = self.path(a[0])?;
                let link = self.path(a[2])?;
                // SAFETY: valid C strings.
                host(i64::from(unsafe {
                    libc::symlinkat(target.as_ptr(), dirfd(a[1]), link.as_ptr())
                }))
            }
            Linkat => {
                let from = self.path(a[1])?;
                let to = self.path(a[3])?;
                // SAFETY: valid C strings.
                host(i64::from(unsafe {
                    libc::linkat(
                        dirfd(a[0]),
                        from.as_ptr(),
                        dirfd(a[2]),
                        to.as_ptr(),
                        a[4] as i32,
                    )
                }))
            }
            Utimensat => {
                let path: Option<CString> = if a[1] != 0 {
                    Some(self.path(a[1])?)
                } else {
                    None
                };
                let times = if a[2] != 0 {
                    Some(self.get::<32>(a[2])?)
                } else {
                    None
                };
                // SAFETY: valid C string (or NULL) and a 2-timespec array (or NULL).
                host(unsafe {
                    libc::syscall(
                        libc::SYS_utimensat,
                        dirfd(a[0]),
                        path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                        times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
                        a[3] as i32,
                    )
                })
            }
            Ppoll => self.ppoll(a),
            _ => {
                log::warn!(
                    "system call {} not implemented (returns ENOSYS)",
                    sys.name()
                );
                Err(libc::ENOSYS)
            }
        }
    }

    fn fcntl(&mut self, fd: i32, cmd: u64, arg: u64) -> SysResult {
        let cmd = cmd as i32;
        match cmd {
            libc::F_DUPFD
            | libc::F_DUPFD_CLOEXEC
            | libc::F_GETFD
            | libc::F_SETFD
            | libc::F_GETFL
            | libc::F_SETFL
            | libc::F_GETPIPE_SZ
            | libc::F_SETPIPE_SZ => {
                // SAFETY: integer-argument commands.
                host(i64::from(unsafe {
                    libc::fcntl(fd, cmd, arg as libc::c_int)
                }))
            }
            libc::F_GETLK | libc::F_SETLK | libc::F_SETLKW => {
                let mut fl = self.get::<32>(arg)?;
                // SAFETY: `fl` holds a struct flock (same 32-byte layout on both).
                host(i64::from(unsafe { libc::fcntl(fd, cmd, fl.as_mut_ptr()) }))?;
                if cmd == libc::F_GETLK {
                    self.put(arg, &fl)?;
                }
                Ok(0)
            }
            _ => Err(libc::EINVAL),
        }
    }

    fn ioctl(&mut self, fd: i32, req: u64, arg: u64) -> SysResult {
        use tty::*;
        let (size, out) = match req {
            TCGETS => (TERMIOS_SIZE, true),
            TCSETS | TCSETSW | TCSETSF => (TERMIOS_SIZE, false),
            TIOCGWINSZ => (8, true),
            TIOCSWINSZ => (8, false),
            FIONREAD => (4, true),
            FIONBIO => (4, false),
            _ => return Err(libc::ENOTTY),
        };
        let mut buf = [0u8; 64];
        if !out {
            self.space
                .read(arg, &mut buf[..size as usize])
                .map_err(|e| e.errno())?;
        } else {
            self.space
                .check(arg, size, crate::space::Need::Write)
                .map_err(|e| e.errno())?;
        }
        // SAFETY: `buf` is larger than every structure these requests read or write.
        host(i64::from(unsafe {
            libc::ioctl(fd, req as _, buf.as_mut_ptr())
        }))?;
        if out {
            self.put(arg, &buf[..size as usize])?;
        }
        Ok(0)
    }

    fn ppoll(&mut self, a: [u64; 6]) -> SysResult {
        let nfds = a[1];
        if nfds > 4096 {
            return Err(libc::EINVAL);
        }
        let timeout = if a[2] != 0 {
            let b = self.get::<16>(a[2])?;
            Some(libc::timespec {
                tv_sec: i64::from_le_bytes(b[..8].try_into().expect("8")),
                tv_nsec: i64::from_le_bytes(b[8..].try_into().expect("8")),
            })
        } else {
            None
        };
        if nfds == 0 && timeout.is_none() {
            // pause(): only a signal ends it.
            self.wait_for_signal();
            return Err(libc::EINTR);
        }
        let p = self.out_buf(a[0], nfds * 8)?;
        // SAFETY: `p` is a checked guest array of `nfds` pollfds (same layout on both); the
        // timeout is a valid timespec or NULL.
        host(i64::from(unsafe {
            libc::ppoll(
                p.cast(),
                nfds as libc::nfds_t,
                timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _),
                std::ptr::null(),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_converts_field_by_field_to_the_generic_layout() {
        // SAFETY: all-zero is a valid stat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_dev = 0x0102;
        st.st_ino = 0x1122_3344_5566;
        st.st_mode = 0o100644;
        st.st_nlink = 3;
        st.st_uid = 1000;
        st.st_gid = 100;
        st.st_rdev = 0x0507;
        st.st_size = 0x1_0000_0001;
        st.st_blksize = 4096;
        st.st_blocks = 16;
        st.st_atime = 1_700_000_000;
        st.st_atime_nsec = 5;
        st.st_mtime = 1_700_000_001;
        st.st_mtime_nsec = 6;
        st.st_ctime = 1_700_000_002;
        st.st_ctime_nsec = 7;
        let b = generic_stat(&st);
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(u64_at(0), 0x0102);
        assert_eq!(u64_at(8), 0x1122_3344_5566);
        assert_eq!(u32_at(16), 0o100644);
        assert_eq!(u32_at(20), 3);
        assert_eq!(u32_at(24), 1000);
        assert_eq!(u32_at(28), 100);
        assert_eq!(u64_at(32), 0x0507);
        assert_eq!(u64_at(48), 0x1_0000_0001);
        assert_eq!(u32_at(56), 4096);
        assert_eq!(u64_at(64), 16);
        assert_eq!((u64_at(72), u64_at(80)), (1_700_000_000, 5));
        assert_eq!((u64_at(88), u64_at(96)), (1_700_000_001, 6));
        assert_eq!((u64_at(104), u64_at(112)), (1_700_000_002, 7));
        assert_eq!(u64_at(120), 0);
    }

    #[test]
    fn file_calls_round_trip_through_guest_memory() {
        let (mut p, mut cpu) = super::super::tests::process();
        let dir = std::env::temp_dir().join(format!("tern-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        let mut cpath = path.as_os_str().as_encoded_bytes().to_vec();
        cpath.push(0);
        p.space.write(0x10_0000, &cpath).unwrap();
        p.space.write(0x10_1000, b"hello").unwrap();
        let mut call = |p: &mut Process, sys, a| match p.syscall(&mut cpu, sys, 0, a) {
            super::super::Outcome::Return(r) => r,
            o => panic!("{o:?}"),
        };
        let flags = (libc::O_CREAT | libc::O_RDWR) as u64;
        let fd = call(
            &mut p,
            Sys::Openat,
            [libc::AT_FDCWD as u64, 0x10_0000, flags, 0o644, 0, 0],
        );
        assert!(fd >= 0);
        let fd = fd as u64;
        assert_eq!(call(&mut p, Sys::Write, [fd, 0x10_1000, 5, 0, 0, 0]), 5);
        assert_eq!(call(&mut p, Sys::Lseek, [fd, 0, 0, 0, 0, 0]), 0);
        assert_eq!(call(&mut p, Sys::Read, [fd, 0x10_2000, 100, 0, 0, 0]), 5);
        let mut b = [0u8; 5];
        p.space.read(0x10_2000, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert_eq!(call(&mut p, Sys::Fstat, [fd, 0x10_3000, 0, 0, 0, 0]), 0);
        assert_eq!(p.space.read_u64(0x10_3000 + 48).unwrap(), 5, "st_size");
        assert_eq!(call(&mut p, Sys::Close, [fd, 0, 0, 0, 0, 0]), 0);
        assert_eq!(
            call(
                &mut p,
                Sys::Unlinkat,
                [libc::AT_FDCWD as u64, 0x10_0000, 0, 0, 0, 0]
            ),
            0
        );
        assert_eq!(
            call(
                &mut p,
                Sys::Newfstatat,
                [libc::AT_FDCWD as u64, 0x10_0000, 0x10_3000, 0, 0, 0]
            ),
            -i64::from(libc::ENOENT)
        );
        assert_eq!(
            call(&mut p, Sys::Ioctl, [0, 0x1234, 0, 0, 0, 0]),
            -i64::from(libc::ENOTTY)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
