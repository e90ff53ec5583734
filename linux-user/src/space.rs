//! The guest's virtual address space: one host reservation that holds every guest page at
//! `host base + guest address`, and the table of mapped areas (VMAs) with the guest's
//! permissions.
//!
//! Why one reservation: the softmmu's TLB points at host pages, and translated code indexes
//! them with the guest address. Keeping guest page `a` at `base + a` makes "physical = virtual"
//! (the engine's [`PhysMemory`] is this address space) and lets system calls hand guest buffers
//! straight to the host kernel once the VMA table has vouched for them.
//!
//! Host pages of mapped guest pages are always read-write on the host: the guest's permissions
//! live only in the VMA table, which the guest page walk reads. Unmapping a range replaces its
//! host pages by fresh `PROT_NONE` pages, which drops their contents (a later mapping reads as
//! zeros, as Linux guarantees) and makes any stray host access fault instead of leaking data.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use accel_tcg::PhysMemory;

/// Guest page size.
pub const PAGE_SIZE: u64 = 4096;

/// `PROT_READ`: loads allowed.
pub const PROT_READ: u32 = 0x1;
/// `PROT_WRITE`: stores allowed (on riscv64 this implies loads).
pub const PROT_WRITE: u32 = 0x2;
/// `PROT_EXEC`: instruction fetches allowed.
pub const PROT_EXEC: u32 = 0x4;

/// `MAP_SHARED`.
pub const MAP_SHARED: u32 = 0x01;
/// `MAP_PRIVATE`.
pub const MAP_PRIVATE: u32 = 0x02;
/// `MAP_SHARED_VALIDATE`.
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
/// `MAP_FIXED`: place exactly at `addr`, replacing what is there.
pub const MAP_FIXED: u32 = 0x10;
/// `MAP_ANONYMOUS`: zero-filled memory, no file.
pub const MAP_ANONYMOUS: u32 = 0x20;
/// `MAP_FIXED_NOREPLACE`: place exactly at `addr`, fail with EEXIST if anything is there.
pub const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;

/// Lowest address `mmap` hands out on its own (Linux's default `vm.mmap_min_addr`).
pub const MMAP_MIN_ADDR: u64 = 0x1_0000;

/// Rounds `v` down to a page boundary.
pub const fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

/// Rounds `v` up to a page boundary, `None` on overflow.
pub fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(page_down)
}

/// Errors of address-space operations; each corresponds to the errno Linux returns.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// No room for the mapping, or the range is (partly) unmapped where it must be mapped.
    #[error("out of guest address space or range not mapped")]
    NoMemory,
    /// Misaligned address, zero length, bad flags.
    #[error("invalid argument")]
    Invalid,
    /// `MAP_FIXED_NOREPLACE` over an existing mapping.
    #[error("range already mapped")]
    Exists,
    /// A guest pointer does not point at memory with the needed permission.
    #[error("bad guest address {0:#x}")]
    Fault(u64),
    /// The host refused to (re)map pages of the reservation, or a file could not be read.
    #[error("host memory operation failed: {0}")]
    Host(#[from] std::io::Error),
}

impl SpaceError {
    /// The (positive) Linux errno for this error.
    pub fn errno(&self) -> i32 {
        match self {
            SpaceError::NoMemory => libc::ENOMEM,
            SpaceError::Invalid => libc::EINVAL,
            SpaceError::Exists => libc::EEXIST,
            SpaceError::Fault(_) => libc::EFAULT,
            SpaceError::Host(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// One mapped area `[start, end)` (the start is the table's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    /// End (exclusive, page-aligned).
    pub end: u64,
    /// `PROT_*` bits the guest asked for.
    pub prot: u32,
}

/// What a guest access needs from a VMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Loads (granted by PROT_READ or PROT_WRITE, as on riscv64 Linux).
    Read,
    /// Stores.
    Write,
    /// Instruction fetches.
    Exec,
}

impl Need {
    /// Whether `prot` grants this access.
    pub fn allowed_by(self, prot: u32) -> bool {
        match self {
            Need::Read => prot & (PROT_READ | PROT_WRITE) != 0,
            Need::Write => prot & PROT_WRITE != 0,
            Need::Exec => prot & PROT_EXEC != 0,
        }
    }
}

/// The mutable part: the VMA table and the heap and placement bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Mapped areas keyed by start; never overlapping.
    pub vmas: BTreeMap<u64, Vma>,
    /// Start of the heap (page-aligned, set by the loader).
    pub brk_start: u64,
    /// Current program break (not page-aligned).
    pub brk: u64,
    /// `mmap` without a usable hint places mappings top-down below this address.
    pub mmap_base: u64,
}

impl Layout {
    /// The VMA containing `addr`.
    pub fn find(&self, addr: u64) -> Option<(u64, Vma)> {
        self.vmas
            .range(..=addr)
            .next_back()
            .filter(|(_, v)| v.end > addr)
            .map(|(&s, &v)| (s, v))
    }

    /// Whether nothing is mapped in `[start, end)`.
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        self.vmas
            .range(..end)
            .next_back()
            .is_none_or(|(_, v)| v.end <= start)
    }

    /// Removes `[start, end)` from the table, splitting the VMAs that straddle its edges.
    fn carve(&mut self, start: u64, end: u64) {
        let hit: Vec<(u64, Vma)> = self
            .vmas
            .range(..end)
            .rev()
            .take_while(|(_, v)| v.end > start)
            .map(|(&s, &v)| (s, v))
            .collect();
        for (s, v) in hit {
            self.vmas.remove(&s);
            if s < start {
                self.vmas.insert(s, Vma { end: start, ..v });
            }
            if v.end > end {
                self.vmas.insert(end, v);
            }
        }
    }

    /// Whether `[start, end)` is entirely mapped.
    fn is_covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.find(at) {
                Some((_, v)) => at = v.end,
                None => return false,
            }
        }
        true
    }

    /// The highest free gap of `len` bytes below `mmap_base` (and above `MMAP_MIN_ADDR`).
    fn find_free_top_down(&self, len: u64) -> Option<u64> {
        let mut top = self.mmap_base;
        for (&s, v) in self.vmas.range(..top).rev() {
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(s);
        }
        (top >= MMAP_MIN_ADDR.checked_add(len)?).then(|| top - len)
    }
}

/// Guest pages per leaf of [`PageProts`] (a leaf covers 128 MiB of guest space).
const LEAF_PAGES: u64 = 1 << 15;

/// Page-table byte: the page is mapped; the low bits are its `PROT_*`.
const PAGE_MAPPED: u8 = 0x80;

/// The VMA table flattened to one byte per guest page, for the softmmu's TLB refills: a page
/// walk is then two loads instead of a lock and a B-tree search. Leaves are allocated when a
/// mapping first touches their range and live as long as the address space; writers hold the
/// layout's write lock and bring the bytes in line with the VMA table after every change.
struct PageProts {
    leaves: Box<[OnceLock<Box<[AtomicU8]>>]>,
}

impl PageProts {
    fn new(size: u64) -> PageProts {
        let pages = size / PAGE_SIZE;
        PageProts {
            leaves: (0..pages.div_ceil(LEAF_PAGES))
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// The byte of guest page number `page` (0 when unmapped or outside the space).
    fn get(&self, page: u64) -> u8 {
        let Some(leaf) = usize::try_from(page / LEAF_PAGES)
            .ok()
            .and_then(|i| self.leaves.get(i))
            .and_then(OnceLock::get)
        else {
            return 0;
        };
        leaf[(page % LEAF_PAGES) as usize].load(Ordering::Acquire)
    }

    /// Sets the bytes of pages `[first, end)` (which lie inside the space) to `value`.
    fn set(&self, first: u64, end: u64, value: u8) {
        let mut page = first;
        while page < end {
            let leaf_end = ((page / LEAF_PAGES) + 1) * LEAF_PAGES;
            let stop = leaf_end.min(end);
            let slot = &self.leaves[(page / LEAF_PAGES) as usize];
            let leaf = match slot.get() {
                Some(leaf) => Some(leaf),
                // Unmapping pages no leaf covers: they already read as unmapped.
                None if value == 0 => None,
                None => {
                    Some(slot.get_or_init(|| (0..LEAF_PAGES).map(|_| AtomicU8::new(0)).collect()))
                }
            };
            if let Some(leaf) = leaf {
                let from = page % LEAF_PAGES;
                for i in from..from + (stop - page) {
                    leaf[i as usize].store(value, Ordering::Release);
                }
            }
            page = stop;
        }
    }
}

/// The guest address space.
pub struct AddressSpace {
    /// Host address of guest address 0.
    base: usize,
    /// Bytes reserved: guest addresses are `0..size`.
    size: u64,
    layout: RwLock<Layout>,
    /// The VMA table's permissions per page, readable without the lock.
    pages: PageProts,
}

impl std::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSpace")
            .field("base", &format_args!("{:#x}", self.base))
            .field("size", &format_args!("{:#x}", self.size))
            .finish()
    }
}

impl AddressSpace {
    /// Reserves `size` bytes of host address space (a page multiple) for guest addresses
    /// `0..size`, nothing mapped. `mmap` places mappings below `size - 128 MiB` (room for the
    /// stack above them, as Linux leaves a gap of at least 128 MiB under the stack).
    pub fn new(size: u64) -> Result<AddressSpace, SpaceError> {
        if size == 0 || size % PAGE_SIZE != 0 || size < (256 << 20) {
            return Err(SpaceError::Invalid);
        }
        let len = usize::try_from(size).map_err(|_| SpaceError::Invalid)?;
        // SAFETY: a fresh anonymous PROT_NONE reservation at an address the kernel picks; it
        // aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(AddressSpace {
            base: p as usize,
            size,
            layout: RwLock::new(Layout {
                mmap_base: size - (128 << 20),
                ..Layout::default()
            }),
            pages: PageProts::new(size),
        })
    }

    /// The `PROT_*` bits of the mapping that holds guest address `addr`, `None` when the page
    /// is unmapped. Lock-free (this is what page walks use); agrees with [`Layout::find`].
    pub fn page_prot(&self, addr: u64) -> Option<u32> {
        let b = self.pages.get(addr / PAGE_SIZE);
        (b & PAGE_MAPPED != 0).then_some(u32::from(b & !PAGE_MAPPED))
    }

    /// Brings the per-page permissions of `[start, end)` (page-aligned, inside the space) in
    /// line with `layout`, which the caller holds for writing. Each page is written once with
    /// its final value, so a lock-free reader never sees a page that stays mapped as unmapped.
    fn sync_pages(&self, layout: &Layout, start: u64, end: u64) {
        let mut at = start;
        while at < end {
            let (stop, value) = match layout.find(at) {
                Some((_, v)) => (v.end.min(end), PAGE_MAPPED | (v.prot & 0x7) as u8),
                None => {
                    let next = layout.vmas.range(at..end).next().map_or(end, |(&s, _)| s);
                    (next, 0)
                }
            };
            self.pages.set(at / PAGE_SIZE, stop / PAGE_SIZE, value);
            at = stop;
        }
    }

    /// Guest addresses are `0..size()`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The VMA table, for reading.
    pub fn layout(&self) -> RwLockReadGuard<'_, Layout> {
        self.layout.read().unwrap_or_else(|e| e.into_inner())
    }

    fn layout_mut(&self) -> RwLockWriteGuard<'_, Layout> {
        self.layout.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Host pointer of guest address `addr` (which must be below `size()`).
    fn host(&self, addr: u64) -> *mut u8 {
        debug_assert!(addr <= self.size);
        (self.base + addr as usize) as *mut u8
    }

    /// Replaces the host pages of `[start, end)` (inside the reservation) by fresh pages,
    /// read-write when `usable`, else `PROT_NONE`.
    fn remap_host(&self, start: u64, end: u64, usable: bool) -> Result<(), SpaceError> {
        if start >= end {
            return Ok(());
        }
        let prot = if usable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_NONE
        };
        // SAFETY: `[start, end)` lies inside our own reservation (callers check against
        // `size`), so MAP_FIXED replaces only pages this object owns; the engine reaches them
        // only through pointers it gets from `ram_page`, which it re-fetches after the TLB
        // flush that follows every unmap.
        let p = unsafe {
            libc::mmap(
                self.host(start).cast(),
                (end - start) as usize,
                prot,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Linux `mmap`: maps `len` bytes with `prot`, at `addr` per `flags`, filled from host file
    /// descriptor `file` at its offset (`(fd, offset)`) or zero. Returns the guest address.
    ///
    /// File mappings are copies: `MAP_SHARED` file mappings are accepted but their changes are
    /// not written back to the file (a single-process guest cannot tell, except through the
    /// file itself). Pages past the end of the file read as zeros (Linux raises SIGBUS).
    pub fn mmap(
        &self,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        file: Option<(i32, u64)>,
    ) -> Result<u64, SpaceError> {
        if len == 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
            return Err(SpaceError::Invalid);
        }
        if !matches!(
            flags & MAP_SHARED_VALIDATE,
            MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE
        ) {
            return Err(SpaceError::Invalid);
        }
        let len = page_up(len).ok_or(SpaceError::NoMemory)?;
        if let Some((_, off)) = file {
            if off % PAGE_SIZE != 0 {
                return Err(SpaceError::Invalid);
            }
        }
        let mut layout = self.layout_mut();
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let start = if fixed {
            if addr % PAGE_SIZE != 0 {
                return Err(SpaceError::Invalid);
            }
            let end = addr.checked_add(len).ok_or(SpaceError::NoMemory)?;
            if end > self.size {
                return Err(SpaceError::NoMemory);
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && !layout.is_free(addr, end) {
                return Err(SpaceError::Exists);
            }
            layout.carve(addr, end);
            self.sync_pages(&layout, addr, end);
            addr
        } else {
            let hint = page_down(addr);
            let hint_ok = hint >= MMAP_MIN_ADDR
                && hint
                    .checked_add(len)
                    .is_some_and(|e| e <= self.size && layout.is_free(hint, e));
            if hint_ok {
                hint
            } else {
                layout.find_free_top_down(len).ok_or(SpaceError::NoMemory)?
            }
        };
        let end = start + len;
        self.remap_host(start, end, true)?;
        if let Some((fd, off)) = file {
            if let Err(e) = self.fill_from_file(start, len, fd, off) {
                let _ = self.remap_host(start, end, false);
                return Err(e);
            }
        }
        layout.vmas.insert(start, Vma { end, prot });
        self.sync_pages(&layout, start, end);
        log::debug!("mmap {start:#x}..{end:#x} prot {prot:#x} flags {flags:#x}");
        Ok(start)
    }

    fn fill_from_file(&self, start: u64, len: u64, fd: i32, off: u64) -> Result<(), SpaceError> {
        let mut done = 0u64;
        while done < len {
            // SAFETY: the destination `[start + done, start + len)` was just mapped read-write
            // inside our reservation; pread writes at most `len - done` bytes there.
            let n = unsafe {
                libc::pread(
                    fd,
                    self.host(start + done).cast(),
                    (len - done) as usize,
                    (off + done) as libc::off_t,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            if n == 0 {
                break;
            }
            done += n as u64;
        }
        Ok(())
    }

    /// Linux `munmap`: unmaps `[addr, addr + len)` (page-rounded), holes allowed. The caller
    /// must flush the vCPU's TLB and invalidate translated code in the range.
    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), SpaceError> {
        if addr % PAGE_SIZE != 0 || len == 0 {
            return Err(SpaceError::Invalid);
        }
        let end = page_up(addr.checked_add(len).ok_or(SpaceError::Invalid)?)
            .ok_or(SpaceError::Invalid)?;
        if end > self.size {
            return Err(SpaceError::Invalid);
        }
        let mut layout = self.layout_mut();
        layout.carve(addr, end);
        self.sync_pages(&layout, addr, end);
        self.remap_host(addr, end, false)?;
        log::debug!("munmap {addr:#x}..{end:#x}");
        Ok(())
    }

    /// Linux `mprotect`: sets `prot` on `[addr, addr + len)`, which must be fully mapped
    /// (ENOMEM otherwise, and nothing changes). The caller must flush the vCPU's TLB.
    pub fn mprotect(&self, addr: u64, len: u64, prot: u32) -> Result<(), SpaceError> {
        if addr % PAGE_SIZE != 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
            return Err(SpaceError::Invalid);
        }
        let end = page_up(addr.checked_add(len).ok_or(SpaceError::NoMemory)?)
            .ok_or(SpaceError::NoMemory)?;
        if end == addr {
            return Ok(());
        }
        let mut layout = self.layout_mut();
        if end > self.size || !layout.is_covered(addr, end) {
            return Err(SpaceError::NoMemory);
        }
        layout.carve(addr, end);
        // Re-insert the range with its new permissions, one VMA per former piece is not
        // needed: the range is contiguous and uniform now.
        layout.vmas.insert(addr, Vma { end, prot });
        self.sync_pages(&layout, addr, end);
        Ok(())
    }

    /// Sets where the heap starts (page-aligned up); the break starts there.
    pub fn set_brk_start(&self, addr: u64) {
        let start = page_up(addr).unwrap_or(addr);
        let mut layout = self.layout_mut();
        layout.brk_start = start;
        layout.brk = start;
    }

    /// Linux `brk`: moves the break to `new` if it can and returns the (possibly unchanged)
    /// break. `new` below the heap start (0 in particular) only queries.
    pub fn brk(&self, new: u64) -> u64 {
        let mut layout = self.layout_mut();
        let cur = layout.brk;
        if new < layout.brk_start || new > self.size {
            return cur;
        }
        let (Some(old_end), Some(new_end)) = (page_up(cur), page_up(new)) else {
            return cur;
        };
        if new_end > old_end {
            if !layout.is_free(old_end, new_end) || new_end > layout.mmap_base {
                return cur;
            }
            if self.remap_host(old_end, new_end, true).is_err() {
                return cur;
            }
            // Extend the heap VMA when it ends where the new pages start.
            let merged = layout
                .find(old_end - 1)
                .filter(|&(s, v)| {
                    s >= layout.brk_start && v.end == old_end && v.prot == PROT_READ | PROT_WRITE
                })
                .map(|(s, _)| s);
            match merged {
                Some(s) => {
                    layout.vmas.insert(
                        s,
                        Vma {
                            end: new_end,
                            prot: PROT_READ | PROT_WRITE,
                        },
                    );
                }
                None => {
                    layout.vmas.insert(
                        old_end,
                        Vma {
                            end: new_end,
                            prot: PROT_READ | PROT_WRITE,
                        },
                    );
                }
            }
            self.sync_pages(&layout, old_end, new_end);
        } else if new_end < old_end {
            layout.carve(new_end, old_end);
            self.sync_pages(&layout, new_end, old_end);
            if self.remap_host(new_end, old_end, false).is_err() {
                return cur;
            }
        }
        layout.brk = new;
        new
    }

    /// Checks that `[addr, addr + len)` is mapped with `need` permission.
    pub fn check(&self, addr: u64, len: u64, need: Need) -> Result<(), SpaceError> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(SpaceError::Fault(addr))?;
        if end > self.size {
            return Err(SpaceError::Fault(addr));
        }
        let layout = self.layout();
        let mut at = addr;
        while at < end {
            match layout.find(at) {
                Some((_, v)) if need.allowed_by(v.prot) => at = v.end,
                _ => return Err(SpaceError::Fault(at)),
            }
        }
        Ok(())
    }

    /// A host pointer to guest `[addr, addr + len)` after checking it for `need`, for handing
    /// guest buffers to host system calls. The pointer stays valid until the range is
    /// unmapped (no guest code runs while a system call uses it).
    pub fn host_range(&self, addr: u64, len: u64, need: Need) -> Result<*mut u8, SpaceError> {
        self.check(addr, len, need)?;
        Ok(self.host(addr))
    }

    /// Copies guest memory at `addr` into `buf` (the guest must be able to read it).
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), SpaceError> {
        let src = self.host_range(addr, buf.len() as u64, Need::Read)?;
        // SAFETY: `check` proved the range mapped, so its host pages are read-write pages of
        // our reservation; `buf` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` into guest memory at `addr` (the guest must be able to write it).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), SpaceError> {
        let dst = self.host_range(addr, data.len() as u64, Need::Write)?;
        // SAFETY: as in `read`, with write permission checked.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Writes `data` ignoring guest permissions (the loader filling read-only segments).
    pub fn write_unchecked_prot(&self, addr: u64, data: &[u8]) -> Result<(), SpaceError> {
        let dst = self.host_range(addr, data.len() as u64, Need::Read)?;
        // SAFETY: the range is mapped (checked), and mapped host pages are always writable.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Reads a little-endian u64.
    pub fn read_u64(&self, addr: u64) -> Result<u64, SpaceError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), SpaceError> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, SpaceError> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read up to the end of the page, so a string ending just before an unmapped page
            // is fine.
            let n = (PAGE_SIZE - at % PAGE_SIZE).min((max - out.len()) as u64);
            let mut chunk = vec![0u8; n as usize];
            self.read(at, &mut chunk)?;
            if let Some(z) = chunk.iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            at += n;
        }
        Err(SpaceError::Invalid)
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // SAFETY: the reservation was made in `new` with this size and nothing else owns it.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.size as usize) };
    }
}

impl PhysMemory for AddressSpace {
    fn ram_page(&self, paddr: u64) -> Option<NonNull<u8>> {
        let page = page_down(paddr);
        if page >= self.size {
            return None;
        }
        self.page_prot(page)?;
        NonNull::new(self.host(page))
    }

    fn mmio_read(&self, _paddr: u64, _data: &mut [u8]) -> bool {
        false
    }

    fn mmio_write(&self, _paddr: u64, _data: &[u8]) -> bool {
        false
    }
}

impl AddressSpace {
    /// The softmmu page walk of user mode (physical = virtual): the page of `vaddr` and what
    /// the guest may do with it, or the SIGSEGV code (`SEGV_MAPERR` for no mapping,
    /// `SEGV_ACCERR` for a forbidden access) as `MemFault::Page`. Reads the per-page copy of
    /// the VMA table: no lock and no tree search per TLB refill.
    pub fn walk(
        &self,
        vaddr: u64,
        access: accel_tcg::Access,
    ) -> Result<accel_tcg::PageMapping, accel_tcg::MemFault> {
        use crate::signal::si;
        use accel_tcg::{Access, MemFault, PageMapping, PageProt};
        let page = page_down(vaddr);
        let Some(vma_prot) = self.page_prot(page) else {
            return Err(MemFault::Page(si::SEGV_MAPERR as u64));
        };
        let prot = PageProt {
            read: Need::Read.allowed_by(vma_prot),
            write: Need::Write.allowed_by(vma_prot),
            execute: Need::Exec.allowed_by(vma_prot),
        };
        let allowed = match access {
            Access::Read => prot.read,
            Access::Write => prot.write,
            Access::Execute => prot.execute,
        };
        if !allowed {
            return Err(MemFault::Page(si::SEGV_ACCERR as u64));
        }
        Ok(PageMapping {
            phys_page: page,
            prot,
            global: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 1 << 32;
    const RW: u32 = PROT_READ | PROT_WRITE;

    fn space() -> AddressSpace {
        AddressSpace::new(SIZE).unwrap()
    }

    fn vmas(s: &AddressSpace) -> Vec<(u64, u64, u32)> {
        s.layout()
            .vmas
            .iter()
            .map(|(&a, v)| (a, v.end, v.prot))
            .collect()
    }

    #[test]
    fn anonymous_mappings_go_top_down_below_the_mmap_base_and_read_zero() {
        let s = space();
        let base = s.layout().mmap_base;
        let a = s
            .mmap(0, 100, RW, MAP_PRIVATE | MAP_ANONYMOUS, None)
            .unwrap();
        assert_eq!(a, base - PAGE_SIZE);
        let b = s
            .mmap(0, 0x3000, RW, MAP_PRIVATE | MAP_ANONYMOUS, None)
            .unwrap();
        assert_eq!(b, a - 0x3000);
        assert_eq!(s.read_u64(b + 0x2ff8).unwrap(), 0);
        s.write_u64(a, 7).unwrap();
        assert_eq!(s.read_u64(a).unwrap(), 7);
    }

    #[test]
    fn a_free_hint_is_taken_and_a_taken_hint_is_not() {
        let s = space();
        let a = s
            .mmap(0x1000_0123, 0x1000, RW, MAP_PRIVATE | MAP_ANONYMOUS, None)
            .unwrap();
        assert_eq!(a, 0x1000_0000);
        let b = s
            .mmap(0x1000_0000, 0x1000, RW, MAP_PRIVATE | MAP_ANONYMOUS, None)
            .unwrap();
        assert_ne!(b, a);
    }

    #[test]
    fn map_fixed_replaces_the_middle_of_a_mapping_with_zeroed_pages() {
        let s = space();
        let a = s
            .mmap(
                0x2000_0000,
                0x4000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        s.write_u64(a + 0x1000, 0xdead).unwrap();
        s.write_u64(a, 0xbeef).unwrap();
        s.mmap(
            a + 0x1000,
            0x1000,
            PROT_READ,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            None,
        )
        .unwrap();
        assert_eq!(
            vmas(&s),
            vec![
                (a, a + 0x1000, RW),
                (a + 0x1000, a + 0x2000, PROT_READ),
                (a + 0x2000, a + 0x4000, RW)
            ]
        );
        assert_eq!(s.read_u64(a + 0x1000).unwrap(), 0);
        assert_eq!(s.read_u64(a).unwrap(), 0xbeef);
        assert!(matches!(
            s.write_u64(a + 0x1000, 1),
            Err(SpaceError::Fault(_))
        ));
    }

    #[test]
    fn fixed_noreplace_refuses_a_taken_range_and_fixed_rejects_misalignment() {
        let s = space();
        let a = s
            .mmap(
                0x2000_0000,
                0x2000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        let e = s
            .mmap(
                a + 0x1000,
                0x2000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                None,
            )
            .unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST);
        let e = s
            .mmap(
                a + 1,
                0x1000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        let e = s
            .mmap(0, 0, RW, MAP_PRIVATE | MAP_ANONYMOUS, None)
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        let e = s.mmap(0, 0x1000, RW, MAP_ANONYMOUS, None).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "neither private nor shared");
    }

    #[test]
    fn too_big_a_mapping_is_enomem() {
        let s = space();
        let e = s
            .mmap(0, SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS, None)
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENOMEM);
        let e = s
            .mmap(
                SIZE - 0x1000,
                0x2000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENOMEM);
    }

    /// Every page of `[from, to)`: the lock-free per-page permissions equal the VMA table's.
    fn assert_pages_agree(s: &AddressSpace, from: u64, to: u64) {
        let layout = s.layout();
        for page in (from..to).step_by(PAGE_SIZE as usize) {
            assert_eq!(
                s.page_prot(page + 0x10),
                layout.find(page).map(|(_, v)| v.prot),
                "page {page:#x}"
            );
        }
    }

    #[test]
    fn per_page_permissions_follow_every_change_of_the_vma_table() {
        let s = space();
        // Straddles a leaf boundary of the page table (128 MiB).
        let a = 0x800_0000 - 0x3000;
        s.mmap(a, 0x8000, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, None)
            .unwrap();
        assert_pages_agree(&s, a - 0x2000, a + 0xa000);
        s.mprotect(a + 0x1000, 0x3000, PROT_READ | PROT_EXEC)
            .unwrap();
        s.mmap(
            a + 0x5000,
            0x1000,
            0,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            None,
        )
        .unwrap();
        assert_eq!(s.page_prot(a + 0x5000), Some(0), "PROT_NONE is mapped");
        s.munmap(a + 0x2000, 0x1000).unwrap();
        assert_eq!(s.page_prot(a + 0x2000), None);
        assert_pages_agree(&s, a - 0x2000, a + 0xa000);
        s.set_brk_start(0x4000_0000);
        s.brk(0x4000_5000);
        assert_pages_agree(&s, 0x4000_0000, 0x4000_8000);
        s.brk(0x4000_1000);
        assert_pages_agree(&s, 0x4000_0000, 0x4000_8000);
        assert_eq!(s.page_prot(SIZE), None, "outside the space");
        assert_eq!(s.page_prot(u64::MAX), None);
    }

    #[test]
    fn munmap_punches_holes_and_unmapped_pages_come_back_zero() {
        let s = space();
        let a = s
            .mmap(
                0x3000_0000,
                0x3000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        s.write_u64(a + 0x1000, 5).unwrap();
        s.munmap(a + 0x1000, 1).unwrap();
        assert_eq!(
            vmas(&s),
            vec![(a, a + 0x1000, RW), (a + 0x2000, a + 0x3000, RW)]
        );
        assert!(s.ram_page(a + 0x1000).is_none());
        assert!(s.ram_page(a + 0x2fff).is_some());
        assert!(matches!(s.read_u64(a + 0x1000), Err(SpaceError::Fault(x)) if x == a + 0x1000));
        // Unmapping a range with holes is fine; misaligned is not.
        s.munmap(a, 0x3000).unwrap();
        assert!(vmas(&s).is_empty());
        assert_eq!(s.munmap(a + 1, 0x1000).unwrap_err().errno(), libc::EINVAL);
        s.mmap(
            a + 0x1000,
            0x1000,
            RW,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            None,
        )
        .unwrap();
        assert_eq!(s.read_u64(a + 0x1000).unwrap(), 0);
    }

    #[test]
    fn mprotect_splits_and_refuses_partly_unmapped_ranges() {
        let s = space();
        let a = s
            .mmap(
                0x4000_0000,
                0x4000,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        s.mprotect(a + 0x1000, 0x1000, PROT_READ | PROT_EXEC)
            .unwrap();
        assert_eq!(
            vmas(&s),
            vec![
                (a, a + 0x1000, RW),
                (a + 0x1000, a + 0x2000, PROT_READ | PROT_EXEC),
                (a + 0x2000, a + 0x4000, RW)
            ]
        );
        assert!(s.check(a + 0x1000, 4, Need::Exec).is_ok());
        assert!(s.check(a, 4, Need::Exec).is_err());
        let e = s.mprotect(a + 0x3000, 0x2000, PROT_READ).unwrap_err();
        assert_eq!(e.errno(), libc::ENOMEM);
        assert_eq!(vmas(&s).len(), 3, "a failed mprotect changes nothing");
    }

    #[test]
    fn brk_grows_and_shrinks_by_pages_and_refuses_to_go_below_its_start() {
        let s = space();
        s.set_brk_start(0x50_0123);
        assert_eq!(s.brk(0), 0x50_1000);
        assert_eq!(s.brk(0x50_1000 + 0x2345), 0x50_1000 + 0x2345);
        assert_eq!(vmas(&s), vec![(0x50_1000, 0x50_4000, RW)]);
        s.write_u64(0x50_3ff8, 1).unwrap();
        assert_eq!(s.brk(0x50_5000), 0x50_5000);
        assert_eq!(vmas(&s), vec![(0x50_1000, 0x50_5000, RW)], "grown in place");
        assert_eq!(s.brk(0x50_2000), 0x50_2000);
        assert_eq!(vmas(&s), vec![(0x50_1000, 0x50_2000, RW)]);
        assert!(s.read_u64(0x50_3ff8).is_err());
        assert_eq!(s.brk(0x1000), 0x50_2000, "below the start: unchanged");
        // A mapping in the way stops growth.
        s.mmap(
            0x60_0000,
            0x1000,
            RW,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            None,
        )
        .unwrap();
        assert_eq!(s.brk(0x70_0000), 0x50_2000);
    }

    #[test]
    fn checks_catch_bad_pointers_without_touching_the_host() {
        let s = space();
        assert!(matches!(s.read_u64(0), Err(SpaceError::Fault(0))));
        assert!(s.check(u64::MAX - 3, 8, Need::Read).is_err());
        assert!(s.check(SIZE - 4, 8, Need::Read).is_err());
        let a = s
            .mmap(
                0x5000_0000,
                0x1000,
                PROT_READ,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                None,
            )
            .unwrap();
        assert!(s.check(a, 0x1000, Need::Read).is_ok());
        assert!(
            s.check(a + 0xff8, 16, Need::Read).is_err(),
            "runs off the mapping"
        );
        assert!(s.write(a, &[1]).is_err(), "read-only");
        s.write_unchecked_prot(a, b"hi\0").unwrap();
        assert_eq!(s.read_cstr(a, 100).unwrap(), b"hi");
    }

    #[test]
    fn file_mappings_copy_the_file_from_its_offset() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let dir = std::env::temp_dir().join(format!("tern-space-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut data = vec![b'a'; 4096];
        data.extend_from_slice(b"second page");
        f.write_all(&data).unwrap();
        drop(f);
        let f = std::fs::File::open(&path).unwrap();
        let s = space();
        let a = s
            .mmap(
                0,
                0x2000,
                PROT_READ,
                MAP_PRIVATE,
                Some((f.as_raw_fd(), 4096)),
            )
            .unwrap();
        let mut buf = [0u8; 12];
        s.read(a, &mut buf).unwrap();
        assert_eq!(&buf, b"second page\0");
        assert_eq!(
            s.mmap(0, 0x1000, PROT_READ, MAP_PRIVATE, Some((f.as_raw_fd(), 1)))
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
