//! Loading a kernel into guest memory and choosing how the boot CPU starts.
//!
//! Two protocols, picked from the file's first bytes:
//! - **bzImage** (Documentation/arch/x86/boot.rst): linux-loader copies the protected-mode
//!   kernel to 1 MiB and hands back the setup header; tern fills the "zero page"
//!   (`boot_params`: e820 map, command line, initrd, RSDP) and enters the 64-bit entry point
//!   at load address + 0x200 in long mode with an identity map of the low 4 GiB.
//! - **PVH** (an ELF with a `XEN_ELFNOTE_PHYS32_ENTRY` note, such as Linux's `vmlinux` or
//!   tern's test guests): linux-loader copies the PT_LOAD segments; tern writes an
//!   `hvm_start_info` (command line, initrd as module 0, memory map, RSDP) and enters the note's
//!   entry point in 32-bit protected mode, paging off, EBX pointing at the start info.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use accel_kvm::regs::{BootCpuState, DescriptorTable, Segment};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::*;

/// Errors while loading the kernel and initrd.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel file cannot be read.
    #[error("cannot read kernel {path}: {source}")]
    KernelRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Neither a bzImage nor an ELF.
    #[error("{0}: not a kernel tern can boot (neither a bzImage nor an ELF file)")]
    UnknownFormat(PathBuf),
    /// An ELF without the PVH entry note.
    #[error("{0}: ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")]
    NoPvhEntry(PathBuf),
    /// A bzImage too old for the 64-bit boot protocol.
    #[error("{0}: bzImage has no 64-bit entry point (boot protocol 2.12+ with XLF_KERNEL_64)")]
    No64BitEntry(PathBuf),
    /// linux-loader rejected the image (malformed, or does not fit in guest memory).
    #[error("cannot load kernel {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: linux_loader::loader::Error,
    },
    /// The initrd file cannot be read.
    #[error("cannot read initrd {path}: {source}")]
    InitrdRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The initrd does not fit between the kernel and the top of low memory.
    #[error("initrd {path} ({size} bytes) does not fit in guest memory below {limit:#x}")]
    InitrdTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The command line is longer than the kernel (or tern) accepts.
    #[error("kernel command line is {len} bytes; at most {max} allowed")]
    CmdlineTooLong { len: usize, max: usize },
    /// Writing boot structures into guest memory failed.
    #[error("writing boot data to guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

type Result<T> = std::result::Result<T, BootError>;

/// What the machine needs to know to start the boot CPU.
pub struct BootSetup {
    pub cpu: BootCpuState,
    pub protocol: &'static str,
}

/// GDT selectors of the boot GDT (the Linux boot protocol wants `__BOOT_CS` = 0x10 and
/// `__BOOT_DS` = 0x18).
pub(crate) const BOOT_CS: u16 = 0x10;
pub(crate) const BOOT_DS: u16 = 0x18;
pub(crate) const BOOT_TSS: u16 = 0x20;
pub(crate) const GDT_CODE64: u64 = 0x00af_9b00_0000_ffff;
pub(crate) const GDT_CODE32: u64 = 0x00cf_9b00_0000_ffff;
pub(crate) const GDT_DATA: u64 = 0x00cf_9300_0000_ffff;
/// A busy 32-bit TSS at 0 of 0x68 bytes: VMX requires TR to hold a usable TSS.
pub(crate) const GDT_TSS: u64 = 0x0000_8b00_0000_0067;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// setup_header.xloadflags bit 0: the kernel has a 64-bit entry at +0x200.
const XLF_KERNEL_64: u16 = 1;
/// setup_header.type_of_loader for a loader without an assigned ID.
const LOADER_UNDEFINED: u8 = 0xff;
const PVH_START_INFO_MAGIC: u32 = 0x336e_c578;

/// Everything the loader needs to know about the machine.
pub struct BootConfig<'a> {
    pub kernel: &'a Path,
    pub initrd: Option<&'a Path>,
    pub cmdline: &'a str,
    pub mem_size: u64,
    pub rsdp: u64,
}

/// Loads the kernel (and initrd, command line, boot structures) into `mem`.
pub fn load_kernel(mem: &GuestMemoryMmap, cfg: &BootConfig) -> Result<BootSetup> {
    let kernel_read = |source| BootError::KernelRead {
        path: cfg.kernel.to_path_buf(),
        source,
    };
    let mut file = File::open(cfg.kernel).map_err(kernel_read)?;
    let mut head = [0u8; 0x206];
    let got = read_up_to(&mut file, &mut head).map_err(kernel_read)?;
    let head = &head[..got];
    if head.starts_with(b"\x7fELF") {
        load_pvh(mem, cfg, &mut file)
    } else if head.len() >= 0x206 && &head[0x202..0x206] == b"HdrS" {
        load_bzimage(mem, cfg, &mut file)
    } else {
        Err(BootError::UnknownFormat(cfg.kernel.to_path_buf()))
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match file.read(&mut buf[total..])? {
            0 => break,
            n => total += n,
        }
    }
    Ok(total)
}

fn load_bzimage(mem: &GuestMemoryMmap, cfg: &BootConfig, file: &mut File) -> Result<BootSetup> {
    let loaded =
        BzImage::load(mem, None, file, Some(GuestAddress(HIMEM_START))).map_err(|source| {
            BootError::Load {
                path: cfg.kernel.to_path_buf(),
                source,
            }
        })?;
    let mut hdr = loaded
        .setup_header
        .ok_or_else(|| BootError::UnknownFormat(cfg.kernel.to_path_buf()))?;
    if hdr.version < 0x20c || hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BootError::No64BitEntry(cfg.kernel.to_path_buf()));
    }
    let max_cmdline = (hdr.cmdline_size as usize).min(CMDLINE_MAX - 1);
    write_cmdline(mem, cfg.cmdline, max_cmdline)?;

    hdr.type_of_loader = LOADER_UNDEFINED;
    hdr.cmd_line_ptr = CMDLINE as u32;
    if let Some(initrd) = cfg.initrd {
        let limit = u64::from(hdr.initrd_addr_max).saturating_add(1);
        let (addr, size) = load_initrd(mem, initrd, cfg.mem_size, loaded.kernel_end, limit)?;
        hdr.ramdisk_image = addr as u32;
        hdr.ramdisk_size = size as u32;
    }
    let mut params = boot_params {
        hdr,
        acpi_rsdp_addr: cfg.rsdp,
        ..Default::default()
    };
    let map = e820_map(cfg.mem_size);
    params.e820_entries = map.len() as u8;
    for (slot, &(addr, size, kind)) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr,
            size,
            r#type: kind,
        };
    }
    mem.write_obj(params, GuestAddress(ZERO_PAGE))?;

    write_gdt(mem, GDT_CODE64)?;
    write_identity_page_tables(mem)?;
    let cs = Segment::from_gdt_entry(BOOT_CS, GDT_CODE64);
    Ok(BootSetup {
        cpu: BootCpuState {
            rip: loaded.kernel_load.0 + 0x200,
            rsp: BOOT_STACK,
            rsi: ZERO_PAGE,
            cr0: CR0_PE | CR0_ET | CR0_PG,
            cr3: PML4,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA,
            cs,
            ..boot_segments()
        },
        protocol: "Linux 64-bit boot protocol (bzImage)",
    })
}

fn load_pvh(mem: &GuestMemoryMmap, cfg: &BootConfig, file: &mut File) -> Result<BootSetup> {
    let loaded = Elf::load(mem, None, file, Some(GuestAddress(HIMEM_START))).map_err(|source| {
        BootError::Load {
            path: cfg.kernel.to_path_buf(),
            source,
        }
    })?;
    let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap else {
        return Err(BootError::NoPvhEntry(cfg.kernel.to_path_buf()));
    };
    write_cmdline(mem, cfg.cmdline, CMDLINE_MAX - 1)?;

    let map = e820_map(cfg.mem_size);
    let memmap_addr = PVH_START_INFO + 0x40;
    for (i, &(addr, size, kind)) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr,
            size,
            type_: kind,
            reserved: 0,
        };
        mem.write_obj(entry, GuestAddress(memmap_addr + i as u64 * 24))?;
    }
    let modlist_addr = PVH_START_INFO + 0x800;
    let mut nr_modules = 0;
    if let Some(initrd) = cfg.initrd {
        let (paddr, size) = load_initrd(mem, initrd, cfg.mem_size, loaded.kernel_end, u64::MAX)?;
        let module = hvm_modlist_entry {
            paddr,
            size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        mem.write_obj(module, GuestAddress(modlist_addr))?;
        nr_modules = 1;
    }
    let info = hvm_start_info {
        magic: PVH_START_INFO_MAGIC,
        version: 1,
        flags: 0,
        nr_modules,
        modlist_paddr: if nr_modules > 0 { modlist_addr } else { 0 },
        cmdline_paddr: CMDLINE,
        rsdp_paddr: cfg.rsdp,
        memmap_paddr: memmap_addr,
        memmap_entries: map.len() as u32,
        reserved: 0,
    };
    mem.write_obj(info, GuestAddress(PVH_START_INFO))?;

    write_gdt(mem, GDT_CODE32)?;
    Ok(BootSetup {
        cpu: BootCpuState {
            rip: entry.0,
            rbx: PVH_START_INFO,
            cr0: CR0_PE | CR0_ET,
            cs: Segment::from_gdt_entry(BOOT_CS, GDT_CODE32),
            ..boot_segments()
        },
        protocol: "PVH (ELF with XEN_ELFNOTE_PHYS32_ENTRY)",
    })
}

/// The parts of the boot state both protocols share: GDTR, data segments, TR.
fn boot_segments() -> BootCpuState {
    BootCpuState {
        rflags: 0x2,
        gdt: DescriptorTable {
            base: BOOT_GDT,
            limit: 5 * 8 - 1,
        },
        data: Segment::from_gdt_entry(BOOT_DS, GDT_DATA),
        tr: Segment::from_gdt_entry(BOOT_TSS, GDT_TSS),
        ..Default::default()
    }
}

fn write_gdt(mem: &GuestMemoryMmap, code: u64) -> Result<()> {
    let gdt = [0u64, 0, code, GDT_DATA, GDT_TSS];
    for (i, entry) in gdt.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(BOOT_GDT + 8 * i as u64))?;
    }
    Ok(())
}

/// Identity-maps the low 4 GiB with 2 MiB pages, as the 64-bit boot protocol requires for the
/// kernel, the zero page and the command line.
fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<()> {
    const PRESENT_WRITABLE: u64 = 0x3;
    const PAGE_SIZE_2M: u64 = 0x80;
    mem.write_obj(PDPT | PRESENT_WRITABLE, GuestAddress(PML4))?;
    for dir in 0..PD_COUNT {
        let pd = PD + dir * 0x1000;
        mem.write_obj(pd | PRESENT_WRITABLE, GuestAddress(PDPT + dir * 8))?;
        for i in 0..512u64 {
            let phys = ((dir * 512 + i) << 21) | PAGE_SIZE_2M | PRESENT_WRITABLE;
            mem.write_obj(phys, GuestAddress(pd + i * 8))?;
        }
    }
    Ok(())
}

fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str, max: usize) -> Result<()> {
    if cmdline.len() > max || cmdline.as_bytes().contains(&0) {
        return Err(BootError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    mem.write_slice(cmdline.as_bytes(), GuestAddress(CMDLINE))?;
    mem.write_obj(0u8, GuestAddress(CMDLINE + cmdline.len() as u64))?;
    Ok(())
}

/// Copies the initrd to the highest page-aligned address below `limit` and the end of low
/// RAM, above the kernel. Returns its address and size.
fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    mem_size: u64,
    kernel_end: u64,
    limit: u64,
) -> Result<(u64, u64)> {
    let read_err = |source| BootError::InitrdRead {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let size = file.seek(SeekFrom::End(0)).map_err(read_err)?;
    file.rewind().map_err(read_err)?;
    let top = mem_size.min(LOW_RAM_END).min(limit);
    let too_large = || BootError::InitrdTooLarge {
        path: path.to_path_buf(),
        size,
        limit: top,
    };
    let addr = top.checked_sub(size).ok_or_else(too_large)? & !0xfff;
    if addr < kernel_end.max(HIMEM_START) {
        return Err(too_large());
    }
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize)
        .map_err(|e| match e {
            vm_memory::GuestMemoryError::IOError(source) => read_err(source),
            other => BootError::Memory(other),
        })?;
    Ok((addr, size))
}

/// The firmware memory map: conventional memory below the EBDA, the EBDA/BIOS area (with the
/// ACPI tables) reserved, then RAM from 1 MiB, split around the 32-bit MMIO hole.
pub fn e820_map(mem_size: u64) -> Vec<(u64, u64, u32)> {
    let mut map = vec![
        (0, EBDA_START, E820_RAM),
        (EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
    ];
    for (start, len) in ram_ranges(mem_size) {
        let end = start + len;
        let start = start.max(HIMEM_START);
        if end > start {
            map.push((start, end - start, E820_RAM));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_reserves_the_bios_area_and_skips_the_hole() {
        assert_eq!(
            e820_map(256 << 20),
            vec![
                (0, 0x9fc00, 1),
                (0x9fc00, 0x60400, 2),
                (0x10_0000, (256 << 20) - 0x10_0000, 1)
            ]
        );
        let big = e820_map(5 << 30);
        assert_eq!(big[2], (0x10_0000, LOW_RAM_END - 0x10_0000, 1));
        assert_eq!(big[3], (HIGH_RAM_START, (5 << 30) - LOW_RAM_END, 1));
    }

    fn guest_mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap()
    }

    fn config<'a>(kernel: &'a Path) -> BootConfig<'a> {
        BootConfig {
            kernel,
            initrd: None,
            cmdline: "console=ttyS0",
            mem_size: 64 << 20,
            rsdp: ACPI_START,
        }
    }

    #[test]
    fn garbage_and_empty_files_are_not_kernels() {
        let dir = std::env::temp_dir().join(format!("tern-boot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage");
        std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let mem = guest_mem();
        for path in [&garbage, &empty] {
            assert!(matches!(
                load_kernel(&mem, &config(path)),
                Err(BootError::UnknownFormat(_))
            ));
        }
        let truncated_elf = dir.join("elf");
        std::fs::write(&truncated_elf, b"\x7fELF\x02\x01\x01").unwrap();
        assert!(matches!(
            load_kernel(&mem, &config(&truncated_elf)),
            Err(BootError::Load { .. })
        ));
        assert!(matches!(
            load_kernel(&mem, &config(&dir.join("missing"))),
            Err(BootError::KernelRead { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn page_tables_identity_map_4g_with_2m_pages() {
        let mem = guest_mem();
        write_identity_page_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4)).unwrap();
        assert_eq!(pml4, PDPT | 3);
        let pdpt3: u64 = mem.read_obj(GuestAddress(PDPT + 24)).unwrap();
        assert_eq!(pdpt3, (PD + 0x3000) | 3);
        let last: u64 = mem.read_obj(GuestAddress(PD + 0x3000 + 511 * 8)).unwrap();
        assert_eq!(last, 0xffe0_0000 | 0x83);
    }

    #[test]
    fn overlong_command_lines_are_refused() {
        let mem = guest_mem();
        let long = "x".repeat(100);
        assert!(matches!(
            write_cmdline(&mem, &long, 99),
            Err(BootError::CmdlineTooLong { len: 100, max: 99 })
        ));
        write_cmdline(&mem, "abc", 99).unwrap();
        let mut buf = [0u8; 4];
        mem.read_slice(&mut buf, GuestAddress(CMDLINE)).unwrap();
        assert_eq!(&buf, b"abc\0");
    }
}
