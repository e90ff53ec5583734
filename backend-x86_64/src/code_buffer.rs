//! The executable code buffer: one memfd mapped twice.
//!
//! **W^X policy.** The buffer is a `memfd` mapped once `PROT_READ | PROT_WRITE` (the *writable
//! view*, where code is copied in and jump fields are patched) and once `PROT_READ | PROT_EXEC`
//! (the *executable view*, where code runs). No address is ever both writable and executable,
//! and nothing is remapped after creation, so patching a chained jump while other threads run
//! the code is a plain aligned 4-byte store through the writable view.
//!
//! All the unsafe code of the backend (mapping, copying, patching, calling into generated
//! code) lives in this module.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

/// One memfd mapped at two addresses.
#[derive(Debug)]
pub struct CodeBuffer {
    rw: *mut u8,
    rx: *mut u8,
    capacity: usize,
}

// SAFETY: the buffer is two plain mappings; all writes go through `&mut self` (`write`) or
// are atomic 4-byte stores (`patch_u32`).
unsafe impl Send for CodeBuffer {}
// SAFETY: as above; shared access only reads or performs atomic patches.
unsafe impl Sync for CodeBuffer {}

impl CodeBuffer {
    /// Creates a buffer of `capacity` bytes (rounded up to whole pages).
    pub fn new(capacity: usize) -> io::Result<CodeBuffer> {
        let page = 4096;
        let capacity = capacity.max(page).div_ceil(page) * page;
        // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
        let fd = unsafe { libc::memfd_create(c"tern-jit".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let map = |prot| {
            // SAFETY: a fresh shared mapping of our own fd; the kernel picks the address.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    capacity,
                    prot,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                Ok(p.cast::<u8>())
            }
        };
        // SAFETY: fd is ours; ftruncate sizes the memfd.
        let result = if unsafe { libc::ftruncate(fd, capacity as libc::off_t) } != 0 {
            Err(io::Error::last_os_error())
        } else {
            map(libc::PROT_READ | libc::PROT_WRITE).and_then(|rw| {
                match map(libc::PROT_READ | libc::PROT_EXEC) {
                    Ok(rx) => Ok((rw, rx)),
                    Err(e) => {
                        // SAFETY: rw was mapped above with this length and is not used elsewhere.
                        unsafe { libc::munmap(rw.cast(), capacity) };
                        Err(e)
                    }
                }
            })
        };
        // SAFETY: the mappings keep the memory alive; the fd is no longer needed.
        unsafe { libc::close(fd) };
        let (rw, rx) = result?;
        Ok(CodeBuffer { rw, rx, capacity })
    }

    /// Bytes in the buffer.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Address of the executable view.
    pub fn rx_base(&self) -> usize {
        self.rx as usize
    }

    /// Copies `code` to `offset` (through the writable view).
    ///
    /// Panics if the range is outside the buffer (a backend bug, never guest-controlled).
    pub fn write(&mut self, offset: usize, code: &[u8]) {
        assert!(offset + code.len() <= self.capacity, "code buffer overrun");
        let dst = self.rw.wrapping_add(offset);
        // SAFETY: the range is inside the rw mapping (checked above) and `code` is a separate
        // Rust slice, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len()) };
    }

    /// Reads back `len` bytes at `offset` (for logs and tests).
    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.capacity, "code buffer overrun");
        let src = self.rw.wrapping_add(offset);
        // SAFETY: the range is inside the mapping, which lives as long as `self`.
        unsafe { std::slice::from_raw_parts(src, len) }
    }

    /// Atomically stores a 4-byte value at the 4-byte aligned `offset`, so a thread executing
    /// the instruction sees the old or the new field, never a mix.
    pub fn patch_u32(&self, offset: usize, value: u32) {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.capacity,
            "bad patch offset"
        );
        // SAFETY: the field is aligned and inside the rw mapping; AtomicU32 has the layout of
        // u32, and all concurrent writers use atomic stores.
        let field = unsafe { &*self.rw.wrapping_add(offset).cast::<AtomicU32>() };
        field.store(value, Ordering::Release);
    }

    /// Calls the entry trampoline at `tramp` (an address in the executable view) with `env`
    /// and `entry`.
    ///
    /// # Safety
    /// `tramp` must be the trampoline emitted by the backend, `entry` the entry of a block
    /// compiled since the last flush, and `env` valid for every access of the code it reaches.
    pub unsafe fn call_trampoline(tramp: usize, env: *mut u8, entry: usize) -> u64 {
        // SAFETY: the caller guarantees tramp is our `extern "C" fn(*mut u8, usize) -> u64`.
        let f: unsafe extern "C" fn(*mut u8, usize) -> u64 = unsafe { std::mem::transmute(tramp) };
        // SAFETY: the caller guarantees env/entry are valid for the generated code.
        unsafe { f(env, entry) }
    }
}

impl Drop for CodeBuffer {
    fn drop(&mut self) {
        // SAFETY: both mappings were created with `capacity` bytes and are unmapped once.
        unsafe {
            libc::munmap(self.rw.cast(), self.capacity);
        }
        // SAFETY: as above.
        unsafe {
            libc::munmap(self.rx.cast(), self.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_show_the_same_bytes() {
        let mut b = CodeBuffer::new(10000).unwrap();
        assert_eq!(b.capacity(), 12288);
        b.write(100, &[1, 2, 3, 4]);
        b.patch_u32(100, 0xdead_beef);
        assert_eq!(b.bytes(100, 4), &0xdead_beefu32.to_le_bytes());
        // SAFETY: reading the rx view, inside the mapping.
        let rx = unsafe { std::slice::from_raw_parts((b.rx_base() + 100) as *const u8, 4) };
        assert_eq!(rx, &0xdead_beefu32.to_le_bytes());
    }
}
