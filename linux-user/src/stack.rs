//! The initial process stack, laid out as Linux's `create_elf_tables` does.
//!
//! From the top of the stack down: a null word, the executable's file name (`AT_EXECFN`
//! points at it), the environment strings, the argument strings, the 16 `AT_RANDOM` bytes,
//! then (16-byte aligned at `sp`) argc, the argv pointers and a null, the envp pointers and a
//! null, and the auxiliary vector ending with `AT_NULL`. The C runtime's `_start` reads all of
//! it from `sp`.

use crate::elf::LoadedElf;
use crate::space::{AddressSpace, SpaceError, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ};
use crate::space::{PAGE_SIZE, PROT_WRITE};

/// Size of the stack mapping (Linux's default `RLIMIT_STACK`).
pub const STACK_SIZE: u64 = 8 << 20;

/// Auxiliary vector types (`include/uapi/linux/auxvec.h`).
pub mod at {
    /// End of the vector.
    pub const NULL: u64 = 0;
    /// Program headers.
    pub const PHDR: u64 = 3;
    /// Size of one program header.
    pub const PHENT: u64 = 4;
    /// Number of program headers.
    pub const PHNUM: u64 = 5;
    /// Page size.
    pub const PAGESZ: u64 = 6;
    /// Interpreter base (0: none).
    pub const BASE: u64 = 7;
    /// Flags (0).
    pub const FLAGS: u64 = 8;
    /// Program entry.
    pub const ENTRY: u64 = 9;
    /// Real uid.
    pub const UID: u64 = 11;
    /// Effective uid.
    pub const EUID: u64 = 12;
    /// Real gid.
    pub const GID: u64 = 13;
    /// Effective gid.
    pub const EGID: u64 = 14;
    /// Platform name string.
    pub const PLATFORM: u64 = 15;
    /// Hardware capabilities.
    pub const HWCAP: u64 = 16;
    /// Clock ticks per second.
    pub const CLKTCK: u64 = 17;
    /// Secure mode (setuid).
    pub const SECURE: u64 = 23;
    /// Address of 16 random bytes.
    pub const RANDOM: u64 = 25;
    /// File name of the program.
    pub const EXECFN: u64 = 31;
}

/// What the stack builder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialStack {
    /// Initial stack pointer (16-byte aligned), pointing at argc.
    pub sp: u64,
    /// Lowest address of the stack mapping.
    pub bottom: u64,
    /// One past the highest address of the stack mapping.
    pub top: u64,
}

/// Maps the stack just below `top` and builds the initial frame for `elf` with `args`, `env`
/// (`NAME=value` strings), `execfn` and the `AT_RANDOM` bytes.
pub fn build(
    space: &AddressSpace,
    top: u64,
    elf: &LoadedElf,
    args: &[Vec<u8>],
    env: &[Vec<u8>],
    execfn: &[u8],
    random: [u8; 16],
) -> Result<InitialStack, SpaceError> {
    let bottom = top.checked_sub(STACK_SIZE).ok_or(SpaceError::NoMemory)?;
    space.mmap(
        bottom,
        STACK_SIZE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        None,
    )?;
    let mut p = top - 8;
    let mut push_str = |s: &[u8]| -> Result<u64, SpaceError> {
        p = p
            .checked_sub(s.len() as u64 + 1)
            .filter(|&q| q >= bottom + PAGE_SIZE)
            .ok_or(SpaceError::NoMemory)?;
        space.write(p, s)?;
        space.write(p + s.len() as u64, &[0])?;
        Ok(p)
    };
    let execfn_addr = push_str(execfn)?;
    let platform_addr = match elf.arch.platform() {
        Some(name) => Some(push_str(name)?),
        None => None,
    };
    let mut env_ptrs = Vec::with_capacity(env.len());
    for e in env.iter().rev() {
        env_ptrs.push(push_str(e)?);
    }
    env_ptrs.reverse();
    let mut arg_ptrs = Vec::with_capacity(args.len());
    for a in args.iter().rev() {
        arg_ptrs.push(push_str(a)?);
    }
    arg_ptrs.reverse();
    p &= !15;
    p -= 16;
    let random_addr = p;
    space.write(random_addr, &random)?;

    let (uid, euid, gid, egid) = (
        // SAFETY: no preconditions.
        unsafe { libc::getuid() },
        // SAFETY: no preconditions.
        unsafe { libc::geteuid() },
        // SAFETY: no preconditions.
        unsafe { libc::getgid() },
        // SAFETY: no preconditions.
        unsafe { libc::getegid() },
    );
    let mut auxv: Vec<(u64, u64)> = vec![
        (at::PHDR, elf.phdr),
        (at::PHENT, elf.phent),
        (at::PHNUM, elf.phnum),
        (at::PAGESZ, PAGE_SIZE),
        (at::BASE, 0),
        (at::FLAGS, 0),
        (at::ENTRY, elf.entry),
        (at::UID, u64::from(uid)),
        (at::EUID, u64::from(euid)),
        (at::GID, u64::from(gid)),
        (at::EGID, u64::from(egid)),
        (at::SECURE, 0),
        (at::RANDOM, random_addr),
        (at::HWCAP, elf.arch.hwcap()),
        (at::CLKTCK, 100),
        (at::EXECFN, execfn_addr),
    ];
    if let Some(addr) = platform_addr {
        auxv.push((at::PLATFORM, addr));
    }
    auxv.push((at::NULL, 0));
    let words = 1 + arg_ptrs.len() + 1 + env_ptrs.len() + 1 + 2 * auxv.len();
    let sp = (p - 8 * words as u64) & !15;
    if sp < bottom + PAGE_SIZE {
        return Err(SpaceError::NoMemory);
    }
    let mut table = Vec::with_capacity(words);
    table.push(args.len() as u64);
    table.extend(&arg_ptrs);
    table.push(0);
    table.extend(&env_ptrs);
    table.push(0);
    for (k, v) in auxv {
        table.push(k);
        table.push(v);
    }
    let bytes: Vec<u8> = table.iter().flat_map(|w| w.to_le_bytes()).collect();
    space.write(sp, &bytes)?;
    Ok(InitialStack { sp, bottom, top })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::Arch;

    fn elf() -> LoadedElf {
        LoadedElf {
            arch: Arch::Riscv64,
            entry: 0x10078,
            phdr: 0x10040,
            phent: 56,
            phnum: 4,
            bias: 0,
            brk: 0x20000,
        }
    }

    /// Parses the frame at `sp` back: (argv, envp, auxv).
    #[allow(clippy::type_complexity)]
    fn parse(s: &AddressSpace, sp: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<(u64, u64)>) {
        let argc = s.read_u64(sp).unwrap();
        let mut at = sp + 8;
        let mut argv = Vec::new();
        for _ in 0..argc {
            argv.push(s.read_cstr(s.read_u64(at).unwrap(), 4096).unwrap());
            at += 8;
        }
        assert_eq!(s.read_u64(at).unwrap(), 0, "argv ends with NULL");
        at += 8;
        let mut envp = Vec::new();
        loop {
            let p = s.read_u64(at).unwrap();
            at += 8;
            if p == 0 {
                break;
            }
            envp.push(s.read_cstr(p, 4096).unwrap());
        }
        let mut auxv = Vec::new();
        loop {
            let (k, v) = (s.read_u64(at).unwrap(), s.read_u64(at + 8).unwrap());
            at += 16;
            auxv.push((k, v));
            if k == at::NULL {
                break;
            }
        }
        (argv, envp, auxv)
    }

    #[test]
    fn the_frame_parses_back_into_argv_envp_and_auxv() {
        let s = AddressSpace::new(1 << 32).unwrap();
        let top = (1u64 << 32) - 0x1000;
        let args = vec![b"/bin/prog".to_vec(), b"one".to_vec(), b"".to_vec()];
        let env = vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()];
        let st = build(&s, top, &elf(), &args, &env, b"/bin/prog", [7; 16]).unwrap();
        assert_eq!(st.sp % 16, 0);
        assert_eq!(st.bottom, top - STACK_SIZE);
        let (argv, envp, auxv) = parse(&s, st.sp);
        assert_eq!(argv, args);
        assert_eq!(envp, env);
        let get = |k| auxv.iter().find(|a| a.0 == k).map(|a| a.1).unwrap();
        assert_eq!(get(at::PHDR), 0x10040);
        assert_eq!(get(at::PHENT), 56);
        assert_eq!(get(at::PHNUM), 4);
        assert_eq!(get(at::PAGESZ), 4096);
        assert_eq!(get(at::ENTRY), 0x10078);
        assert_eq!(get(at::HWCAP), Arch::Riscv64.hwcap());
        assert_eq!(get(at::CLKTCK), 100);
        assert_eq!(get(at::SECURE), 0);
        let mut r = [0u8; 16];
        s.read(get(at::RANDOM), &mut r).unwrap();
        assert_eq!(r, [7; 16]);
        assert_eq!(s.read_cstr(get(at::EXECFN), 100).unwrap(), b"/bin/prog");
        assert_eq!(auxv.last(), Some(&(at::NULL, 0)));
        // Strings sit above the table, below the top.
        assert!(get(at::EXECFN) > st.sp && get(at::EXECFN) < top);
    }

    #[test]
    fn x86_64_stacks_name_their_platform() {
        let s = AddressSpace::new(1 << 32).unwrap();
        let top = (1u64 << 32) - 0x1000;
        let e = LoadedElf {
            arch: Arch::X86_64,
            ..elf()
        };
        let st = build(&s, top, &e, &[b"p".to_vec()], &[], b"p", [1; 16]).unwrap();
        let (_, _, auxv) = parse(&s, st.sp);
        let get = |k| auxv.iter().find(|a| a.0 == k).map(|a| a.1).unwrap();
        assert_eq!(s.read_cstr(get(at::PLATFORM), 100).unwrap(), b"x86_64");
        assert_eq!(get(at::HWCAP), Arch::X86_64.hwcap());
        let (_, _, rv) = parse(&s, {
            let s2 = &s;
            build(s2, top, &elf(), &[b"p".to_vec()], &[], b"p", [1; 16])
                .unwrap()
                .sp
        });
        assert!(rv.iter().all(|a| a.0 != at::PLATFORM), "riscv64 has none");
    }

    #[test]
    fn arguments_that_do_not_fit_are_enomem_not_a_crash() {
        let s = AddressSpace::new(1 << 32).unwrap();
        let top = (1u64 << 32) - 0x1000;
        let big = vec![vec![b'x'; 1 << 20]; 9];
        let e = build(&s, top, &elf(), &big, &[], b"p", [0; 16]);
        assert!(e.is_err());
    }
}
