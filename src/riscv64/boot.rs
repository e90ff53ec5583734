//! Loading a riscv64 machine's boot images into guest RAM: OpenSBI's `fw_dynamic` firmware at
//! the start of RAM, the kernel `Image` 2 MiB above it, the initrd, the device tree, and the
//! `fw_dynamic_info` block that tells the firmware where the kernel is (what QEMU's `-bios`
//! does for `fw_dynamic.bin`).

use std::path::{Path, PathBuf};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{KERNEL_OFFSET, RAM_BASE};

/// `fw_dynamic_info.magic`: "OSBI".
const FW_DYNAMIC_MAGIC: u64 = 0x4942_534f;
/// `fw_dynamic_info.version` with the `boot_hart` field.
const FW_DYNAMIC_VERSION: u64 = 2;
/// `fw_dynamic_info.next_mode`: S-mode.
const NEXT_MODE_S: u64 = 1;
/// The Linux RISC-V `Image` header's magic ("RSC\x05" at offset 56).
const IMAGE_MAGIC2: u32 = 0x0543_5352;
const MIB2: u64 = 2 << 20;

/// Errors while loading boot images.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel is not a RISC-V Linux `Image`.
    #[error("{0}: not a RISC-V Linux Image (no \"RSC\\x05\" magic in its header)")]
    NotAnImage(PathBuf),
    /// The images do not fit in guest RAM.
    #[error("the boot images do not fit in {0} MiB of RAM")]
    TooLarge(u64),
    /// The device tree could not be built.
    #[error("device tree: {0}")]
    Fdt(String),
    /// Writing guest memory failed.
    #[error("guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// Where things were put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// The firmware's entry (every hart starts here in M-mode).
    pub entry: u64,
    /// The kernel's load address (the firmware jumps there in S-mode).
    pub kernel: u64,
    /// The initrd's `[start, end)`, if any.
    pub initrd: Option<(u64, u64)>,
    /// The device tree's address (`a1` at entry).
    pub fdt: u64,
    /// The `fw_dynamic_info` block's address (`a2` at entry).
    pub fw_dynamic_info: u64,
}

fn read(path: &Path) -> Result<Vec<u8>, BootError> {
    std::fs::read(path).map_err(|source| BootError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The kernel image's size in memory (its header's `image_size`, at least the file's size).
fn image_size(image: &[u8], path: &Path) -> Result<u64, BootError> {
    if image.len() < 64 || u32::from_le_bytes(image[56..60].try_into().unwrap()) != IMAGE_MAGIC2 {
        return Err(BootError::NotAnImage(path.to_path_buf()));
    }
    let size = u64::from_le_bytes(image[16..24].try_into().unwrap());
    Ok(size.max(image.len() as u64))
}

const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

/// Loads the firmware, kernel and initrd, then the device tree that `make_fdt` builds for the
/// initrd's final place.
pub fn load(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    firmware: &Path,
    kernel: &Path,
    initrd: Option<&Path>,
    make_fdt: impl FnOnce(Option<(u64, u64)>) -> Result<Vec<u8>, String>,
) -> Result<BootLayout, BootError> {
    let ram_end = RAM_BASE + mem_size;
    let fw = read(firmware)?;
    if fw.len() as u64 > KERNEL_OFFSET {
        return Err(BootError::TooLarge(mem_size >> 20));
    }
    mem.write_slice(&fw, GuestAddress(RAM_BASE))?;

    let image = read(kernel)?;
    let kernel_addr = RAM_BASE + KERNEL_OFFSET;
    let kernel_end = kernel_addr + image_size(&image, kernel)?;
    if kernel_end > ram_end {
        return Err(BootError::TooLarge(mem_size >> 20));
    }
    mem.write_slice(&image, GuestAddress(kernel_addr))?;

    // The initrd goes well above the kernel (which needs room for its bss and early page
    // tables): halfway into RAM, as QEMU does, or right after the kernel if RAM is small.
    let initrd = match initrd {
        None => None,
        Some(path) => {
            let data = read(path)?;
            let start = align_up(
                kernel_end
                    .max(RAM_BASE + mem_size / 2)
                    .min(ram_end.saturating_sub(data.len() as u64 + 4 * MIB2)),
                MIB2,
            )
            .max(align_up(kernel_end, MIB2));
            let end = start + data.len() as u64;
            mem.write_slice(&data, GuestAddress(start))?;
            Some((start, end))
        }
    };
    let fdt = make_fdt(initrd).map_err(BootError::Fdt)?;
    // The device tree at the top of RAM, 2 MiB aligned; the info block in the page below it.
    let fdt_addr = (ram_end - align_up(fdt.len() as u64, 0x1000) - MIB2) & !(MIB2 - 1);
    let info_addr = fdt_addr - 0x1000;
    let lowest = initrd.map_or(kernel_end, |(_, end)| end);
    if info_addr < lowest {
        return Err(BootError::TooLarge(mem_size >> 20));
    }
    mem.write_slice(&fdt, GuestAddress(fdt_addr))?;
    let info = [
        FW_DYNAMIC_MAGIC,
        FW_DYNAMIC_VERSION,
        kernel_addr,
        NEXT_MODE_S,
        0,
        0,
    ];
    for (i, word) in info.iter().enumerate() {
        mem.write_obj(*word, GuestAddress(info_addr + 8 * i as u64))?;
    }
    Ok(BootLayout {
        entry: RAM_BASE,
        kernel: kernel_addr,
        initrd,
        fdt: fdt_addr,
        fw_dynamic_info: info_addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn image(size: usize) -> Vec<u8> {
        let mut img = vec![0u8; size];
        img[16..24].copy_from_slice(&(size as u64 * 2).to_le_bytes());
        img[56..60].copy_from_slice(&IMAGE_MAGIC2.to_le_bytes());
        img
    }

    #[test]
    fn images_land_where_the_firmware_and_kernel_expect_them() {
        let dir = std::env::temp_dir().join(format!("tern-rv-boot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fw = file(&dir, "fw.bin", &[0x13; 64]);
        let kernel = file(&dir, "Image", &image(4096));
        let initrd = file(&dir, "initrd", &[7; 1000]);
        let mem_size = 256 << 20;
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_BASE), mem_size as usize)])
                .unwrap();
        let layout = load(&mem, mem_size, &fw, &kernel, Some(&initrd), |initrd| {
            assert!(initrd.is_some());
            Ok(vec![0xd0, 0x0d, 0xfe, 0xed])
        })
        .unwrap();
        assert_eq!(layout.entry, RAM_BASE);
        assert_eq!(layout.kernel, RAM_BASE + 0x20_0000);
        let (start, end) = layout.initrd.unwrap();
        assert_eq!(end - start, 1000);
        assert!(start >= RAM_BASE + mem_size / 2 && start % MIB2 == 0);
        assert_eq!(layout.fdt % MIB2, 0);
        assert!(layout.fdt > end);
        assert_eq!(
            mem.read_obj::<u32>(GuestAddress(layout.fdt)).unwrap(),
            0xedfe0dd0
        );
        assert_eq!(
            mem.read_obj::<u64>(GuestAddress(layout.fw_dynamic_info))
                .unwrap(),
            FW_DYNAMIC_MAGIC
        );
        assert_eq!(
            mem.read_obj::<u64>(GuestAddress(layout.fw_dynamic_info + 16))
                .unwrap(),
            layout.kernel
        );
        assert_eq!(mem.read_obj::<u8>(GuestAddress(RAM_BASE)).unwrap(), 0x13);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_kernel_without_the_image_header_is_refused() {
        let dir = std::env::temp_dir().join(format!("tern-rv-boot-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fw = file(&dir, "fw.bin", &[0; 16]);
        let kernel = file(&dir, "notimage", &[0x7f; 100]);
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_BASE), 64 << 20)]).unwrap();
        let err = load(&mem, 64 << 20, &fw, &kernel, None, |_| Ok(Vec::new())).unwrap_err();
        assert!(matches!(err, BootError::NotAnImage(_)), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
