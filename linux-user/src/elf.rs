//! Loading static ELF64 executables into the guest address space.
//!
//! What Linux's `binfmt_elf` does for a program without an interpreter: check the header,
//! map every `PT_LOAD` segment with its permissions (file bytes copied in, the rest of the
//! memory size zero: the bss), pick a load bias for position-independent (`ET_DYN`)
//! executables, and put the program break after the highest segment. Programs that need a
//! dynamic loader (`PT_INTERP`) are refused with a clear message.

use goblin::elf::header::{EM_RISCV, EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR};

use crate::space::{
    page_down, page_up, AddressSpace, SpaceError, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC,
    PROT_READ, PROT_WRITE,
};

/// Guest architectures the loader knows. The machine field of the ELF header decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// RV64GC Linux (asm-generic system call table).
    Riscv64,
    /// x86_64 Linux (its own system call table, `struct stat` and signal frame).
    X86_64,
}

impl Arch {
    /// The `uname` machine string.
    pub fn machine(self) -> &'static str {
        match self {
            Arch::Riscv64 => "riscv64",
            Arch::X86_64 => "x86_64",
        }
    }

    /// The architecture of ELF `e_machine`, if tern emulates it.
    pub fn from_machine(machine: u16) -> Option<Arch> {
        match machine {
            EM_RISCV => Some(Arch::Riscv64),
            EM_X86_64 => Some(Arch::X86_64),
            _ => None,
        }
    }

    /// `AT_HWCAP`: for riscv64 one bit per single-letter extension, bit (letter - 'A'); for
    /// x86_64 the cpuid leaf 1 EDX the translated CPU advertises, as Linux passes it.
    pub fn hwcap(self) -> u64 {
        match self {
            Arch::Riscv64 => b"IMAFDC".iter().fold(0, |acc, &c| acc | 1u64 << (c - b'A')),
            Arch::X86_64 => u64::from(frontend::x86_64::system::LEAF1_EDX),
        }
    }

    /// `AT_PLATFORM`: the string Linux puts on the initial stack (riscv64 has none).
    pub fn platform(self) -> Option<&'static [u8]> {
        match self {
            Arch::Riscv64 => None,
            Arch::X86_64 => Some(b"x86_64"),
        }
    }
}

/// Why a program cannot be loaded (never the guest's runtime fault).
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Not an ELF file at all, or too short for its header.
    #[error("not an ELF executable")]
    NotElf,
    /// ELFCLASS32.
    #[error("32-bit ELF executables are not supported")]
    Class32,
    /// Big-endian or unknown data encoding.
    #[error("big-endian ELF executables are not supported")]
    BigEndian,
    /// `e_machine` names an architecture we do not emulate.
    #[error(
        "unsupported ELF machine {0} (riscv64, EM_RISCV = 243, and x86_64, EM_X86_64 = 62, are)"
    )]
    Machine(u16),
    /// The program is for another architecture than the one asked for (`--arch`).
    #[error("the program is for {found}, not {wanted}")]
    WrongArch {
        /// What `--arch` asked for.
        wanted: &'static str,
        /// What the ELF header says.
        found: &'static str,
    },
    /// Neither ET_EXEC nor ET_DYN (a relocatable object or a core file).
    #[error("ELF type {0} is not an executable")]
    NotExecutable(u16),
    /// The program needs a dynamic loader.
    #[error("dynamically linked programs are not supported yet; link with -static")]
    Dynamic,
    /// The headers are inconsistent or point outside the file.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// Mapping a segment failed.
    #[error("cannot map segment at {vaddr:#x}: {source}")]
    Map {
        /// Segment address.
        vaddr: u64,
        /// Why.
        source: SpaceError,
    },
}

/// What the loader tells the stack builder and the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedElf {
    /// Architecture.
    pub arch: Arch,
    /// Entry point (bias applied).
    pub entry: u64,
    /// Guest address of the program headers (for `AT_PHDR`), 0 when not loaded.
    pub phdr: u64,
    /// Size of one program header.
    pub phent: u64,
    /// Number of program headers.
    pub phnum: u64,
    /// Load bias (0 for ET_EXEC).
    pub bias: u64,
    /// Initial program break: the page after the highest segment.
    pub brk: u64,
}

/// Checks the identification bytes, machine and type without loading anything.
pub fn probe(bytes: &[u8]) -> Result<Arch, ElfError> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    match bytes[4] {
        1 => return Err(ElfError::Class32),
        2 => {}
        _ => return Err(ElfError::NotElf),
    }
    if bytes[5] != 1 {
        return Err(ElfError::BigEndian);
    }
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let arch = Arch::from_machine(machine).ok_or(ElfError::Machine(machine))?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    Ok(arch)
}

fn prot_of(flags: u32) -> u32 {
    let mut p = 0;
    if flags & PF_R != 0 {
        p |= PROT_READ;
    }
    if flags & PF_W != 0 {
        p |= PROT_WRITE;
    }
    if flags & PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

/// Where position-independent executables go: Linux's `ELF_ET_DYN_BASE` for riscv64, two
/// thirds of the user address space, page-aligned.
pub fn dyn_base(space: &AddressSpace) -> u64 {
    page_down(space.size() / 3 * 2)
}

/// Loads the executable image `bytes` into `space`.
pub fn load(space: &AddressSpace, bytes: &[u8]) -> Result<LoadedElf, ElfError> {
    let arch = probe(bytes)?;
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
    if elf.program_headers.iter().any(|p| p.p_type == PT_INTERP) {
        return Err(ElfError::Dynamic);
    }
    let bias = if elf.header.e_type == ET_DYN {
        dyn_base(space)
    } else {
        0
    };
    let mut loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        .collect();
    if loads.is_empty() {
        return Err(ElfError::Malformed("no loadable segment".into()));
    }
    loads.sort_by_key(|p| p.p_vaddr);

    // Validate every segment before mapping anything.
    for p in &loads {
        let file_end = p.p_offset.checked_add(p.p_filesz);
        if file_end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(ElfError::Malformed(format!(
                "segment at {:#x} extends past the end of the file",
                p.p_vaddr
            )));
        }
        if p.p_filesz > p.p_memsz {
            return Err(ElfError::Malformed(format!(
                "segment at {:#x} has a file size larger than its memory size",
                p.p_vaddr
            )));
        }
        let end = p
            .p_vaddr
            .checked_add(bias)
            .and_then(|v| v.checked_add(p.p_memsz))
            .and_then(page_up);
        if end.is_none_or(|e| e > space.size()) || p.p_vaddr.wrapping_add(bias) < 0x1000 {
            return Err(ElfError::Malformed(format!(
                "segment at {:#x} is outside the user address space",
                p.p_vaddr
            )));
        }
        if p.p_vaddr % crate::space::PAGE_SIZE != p.p_offset % crate::space::PAGE_SIZE {
            return Err(ElfError::Malformed(format!(
                "segment at {:#x} is not congruent to its file offset",
                p.p_vaddr
            )));
        }
    }

    // Map the page ranges. Two segments may share a page (end of text, start of data): the
    // shared page is mapped once with the union of their permissions, so the second mapping
    // does not wipe what the first one will hold.
    let mut mapped_end = 0u64;
    let mut max_end = 0u64;
    for p in &loads {
        let start = page_down(p.p_vaddr + bias);
        let end = page_up(p.p_vaddr + bias + p.p_memsz).unwrap_or(start);
        let prot = prot_of(p.p_flags);
        let map_from = start.max(mapped_end);
        if start < mapped_end {
            let shared_end = mapped_end.min(end);
            let old = space.layout().find(start).map(|(_, v)| v.prot).unwrap_or(0);
            space
                .mprotect(start, shared_end - start, old | prot)
                .map_err(|source| ElfError::Map {
                    vaddr: p.p_vaddr,
                    source,
                })?;
        }
        if map_from < end {
            space
                .mmap(
                    map_from,
                    end - map_from,
                    prot,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    None,
                )
                .map_err(|source| ElfError::Map {
                    vaddr: p.p_vaddr,
                    source,
                })?;
        }
        mapped_end = mapped_end.max(end);
        max_end = max_end.max(end);
    }
    for p in &loads {
        let data = &bytes[p.p_offset as usize..(p.p_offset + p.p_filesz) as usize];
        space
            .write_unchecked_prot(p.p_vaddr + bias, data)
            .map_err(|source| ElfError::Map {
                vaddr: p.p_vaddr,
                source,
            })?;
    }

    let phoff = elf.header.e_phoff;
    let phdr = match elf.program_headers.iter().find(|p| p.p_type == PT_PHDR) {
        Some(p) => p.p_vaddr + bias,
        None => loads
            .iter()
            .find(|p| phoff >= p.p_offset && phoff < p.p_offset + p.p_filesz)
            .map_or(0, |p| p.p_vaddr + bias + (phoff - p.p_offset)),
    };
    Ok(LoadedElf {
        arch,
        entry: elf.header.e_entry.wrapping_add(bias),
        phdr,
        phent: u64::from(elf.header.e_phentsize),
        phnum: elf.program_headers.len() as u64,
        bias,
        brk: max_end,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal riscv64 ELF: one RX segment holding `code` at `vaddr` (page-aligned), plus
    /// optional extra program headers appended as (type, flags, offset, vaddr, filesz, memsz).
    pub(crate) fn tiny_elf(e_type: u16, vaddr: u64, code: &[u8], extra: &[[u64; 6]]) -> Vec<u8> {
        let phnum = 1 + extra.len();
        let code_off = 0x1000u64;
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&EM_RISCV.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&vaddr.to_le_bytes()); // entry
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut ph = |t: u32, fl: u32, off: u64, va: u64, fs: u64, ms: u64| {
            f.extend_from_slice(&t.to_le_bytes());
            f.extend_from_slice(&fl.to_le_bytes());
            for v in [off, va, va, fs, ms, 0x1000] {
                f.extend_from_slice(&v.to_le_bytes());
            }
        };
        ph(
            PT_LOAD,
            PF_R | PF_X,
            code_off,
            vaddr,
            code.len() as u64,
            code.len() as u64,
        );
        for e in extra {
            ph(e[0] as u32, e[1] as u32, e[2], e[3], e[4], e[5]);
        }
        f.resize(code_off as usize, 0);
        f.extend_from_slice(code);
        f
    }

    fn space() -> AddressSpace {
        AddressSpace::new(1 << 34).unwrap()
    }

    #[test]
    fn a_static_executable_loads_at_its_addresses_with_bss_zeroed() {
        let s = space();
        let data_seg = [
            u64::from(PT_LOAD),
            u64::from(PF_R | PF_W),
            0x1000,
            0x20_1000,
            4,
            0x3000,
        ];
        let elf = tiny_elf(ET_EXEC, 0x10000, &[0x13, 0, 0, 0], &[data_seg]);
        let l = load(&s, &elf).unwrap();
        assert_eq!(l.entry, 0x10000);
        assert_eq!(l.bias, 0);
        assert_eq!(l.brk, 0x20_4000);
        assert_eq!(l.phnum, 2);
        let mut b = [0u8; 4];
        s.read(0x10000, &mut b).unwrap();
        assert_eq!(b, [0x13, 0, 0, 0]);
        assert!(s.check(0x10000, 4, crate::space::Need::Exec).is_ok());
        assert!(s.write(0x10000, &[0]).is_err(), "text is read-only");
        assert_eq!(s.read_u64(0x20_2000).unwrap(), 0, "bss");
        s.write(0x20_2000, &[1]).unwrap();
    }

    #[test]
    fn position_independent_executables_get_the_dyn_base_bias() {
        let s = space();
        let elf = tiny_elf(ET_DYN, 0x1000, &[0x13, 0, 0, 0], &[]);
        let l = load(&s, &elf).unwrap();
        assert_eq!(l.bias, dyn_base(&s));
        assert_eq!(l.entry, dyn_base(&s) + 0x1000);
        assert!(s.check(l.entry, 4, crate::space::Need::Exec).is_ok());
    }

    #[test]
    fn a_program_with_an_interpreter_is_refused_as_dynamic() {
        let s = space();
        let interp = [u64::from(PT_INTERP), u64::from(PF_R), 0x1000, 0x10000, 4, 4];
        let elf = tiny_elf(ET_EXEC, 0x10000, b"/ld\0", &[interp]);
        let e = load(&s, &elf).unwrap_err();
        assert!(matches!(e, ElfError::Dynamic));
        assert_eq!(
            e.to_string(),
            "dynamically linked programs are not supported yet; link with -static"
        );
    }

    #[test]
    fn wrong_machine_32_bit_and_truncated_files_are_clear_errors() {
        let s = space();
        let mut elf = tiny_elf(ET_EXEC, 0x10000, &[0; 4], &[]);
        elf[18..20].copy_from_slice(&40u16.to_le_bytes());
        assert!(matches!(load(&s, &elf), Err(ElfError::Machine(40))));
        let mut elf = tiny_elf(ET_EXEC, 0x10000, &[0; 4], &[]);
        elf[4] = 1;
        assert!(matches!(load(&s, &elf), Err(ElfError::Class32)));
        let elf = tiny_elf(ET_EXEC, 0x10000, &[0; 4], &[]);
        for cut in [0, 3, 19, 40, 64, 100, 0x1002] {
            assert!(load(&s, &elf[..cut]).is_err(), "cut at {cut}");
        }
        let elf = tiny_elf(1, 0x10000, &[0; 4], &[]);
        assert!(matches!(load(&s, &elf), Err(ElfError::NotExecutable(1))));
        assert!(matches!(load(&s, b"#!/bin/sh\n"), Err(ElfError::NotElf)));
    }

    #[test]
    fn segments_outside_the_file_or_the_address_space_are_malformed() {
        let s = space();
        let past_eof = [
            u64::from(PT_LOAD),
            u64::from(PF_R),
            0x1000,
            0x40_0000,
            0x10_0000,
            0x10_0000,
        ];
        let elf = tiny_elf(ET_EXEC, 0x10000, &[0; 4], &[past_eof]);
        assert!(matches!(load(&s, &elf), Err(ElfError::Malformed(_))));
        let huge = [
            u64::from(PT_LOAD),
            u64::from(PF_R),
            0x1000,
            u64::MAX - 0xfff,
            4,
            4,
        ];
        let elf = tiny_elf(ET_EXEC, 0x10000, &[0; 4], &[huge]);
        assert!(matches!(load(&s, &elf), Err(ElfError::Malformed(_))));
    }

    #[test]
    fn x86_64_executables_are_recognised_by_their_machine() {
        let s = space();
        let mut elf = tiny_elf(ET_EXEC, 0x40_0000, &[0xf4], &[]);
        elf[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        assert_eq!(probe(&elf).unwrap(), Arch::X86_64);
        let l = load(&s, &elf).unwrap();
        assert_eq!((l.arch, l.entry), (Arch::X86_64, 0x40_0000));
        assert_eq!(Arch::X86_64.machine(), "x86_64");
        assert_eq!(Arch::X86_64.platform(), Some(&b"x86_64"[..]));
    }

    #[test]
    fn x86_64_hwcap_is_what_cpuid_leaf_1_edx_says() {
        let edx = frontend::x86_64::system::cpuid(1, 0)[3];
        assert_eq!(Arch::X86_64.hwcap(), u64::from(edx));
        assert_ne!(Arch::X86_64.hwcap() & 1 << 26, 0, "SSE2");
    }

    #[test]
    fn hwcap_has_the_imafdc_letters() {
        let h = Arch::Riscv64.hwcap();
        for c in b"IMAFDC" {
            assert_ne!(h & 1 << (c - b'A'), 0);
        }
        assert_eq!(h.count_ones(), 6);
    }
}
