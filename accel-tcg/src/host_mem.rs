//! Copies between guest RAM pages (host pointers from the softmmu) and Rust buffers.

use std::ptr::NonNull;

use ir::abi::PAGE_SIZE;

/// Copies `buf.len()` bytes from `page + offset`.
pub(crate) fn read(page: NonNull<u8>, offset: usize, buf: &mut [u8]) {
    assert!(
        offset + buf.len() <= PAGE_SIZE as usize,
        "guest access leaves its page"
    );
    // SAFETY: `page` is the start of a mapped guest RAM page of PAGE_SIZE bytes (from
    // `PhysMemory::ram_page`, which keeps it mapped while the engine lives) and the range was
    // checked to stay inside it. Guest RAM may be written concurrently by other vCPUs or
    // devices; a byte copy of such memory is what the guest would observe as a racy access.
    // SAFETY: `page` is the start of a mapped guest RAM page of PAGE_SIZE bytes and `offset`
    // is inside it (checked above).
    let src = unsafe { page.as_ptr().add(offset) };
    // SAFETY: `src..src + len` is inside that page (above); `buf` is a distinct Rust buffer.
    unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
}

/// Copies `data` to `page + offset`.
pub(crate) fn write(page: NonNull<u8>, offset: usize, data: &[u8]) {
    assert!(
        offset + data.len() <= PAGE_SIZE as usize,
        "guest access leaves its page"
    );
    // SAFETY: as in `read`: a mapped, writable guest RAM page and an in-page range.
    // SAFETY: as in `read`.
    let dst = unsafe { page.as_ptr().add(offset) };
    // SAFETY: `dst..dst + len` is inside that page (above); `data` is a distinct Rust buffer.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
}
