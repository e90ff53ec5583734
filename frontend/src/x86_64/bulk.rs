//! `rep movs` and `rep stos` at host speed: whole runs of iterations copied or filled
//! straight in guest RAM, a page at a time, before the translated per-iteration loop takes
//! over for whatever is left.
//!
//! Kernels zero and copy pages with these (Linux's `clear_page` is `rep stosq`, its
//! `copy_user` and `memcpy` `rep movs`): through the softmmu every element is a TLB check, a
//! load and a store, where a host `memset` of the page is a few dozen cycles.
//!
//! [`helper_rep_bulk`] runs at the instruction's start (every register and flag in the CPU
//! state) and does what it can: the direction flag must be clear (forward), the address size
//! 64 bits, and each chunk must lie within one source and one destination page that the
//! machine's [`HostRange`] maps to RAM (for stores: RAM without translated code, whose
//! stores must go through the softmmu to invalidate it). A forward copy whose destination
//! starts inside its source (the pattern-repeating overlap) is left to the loop. It updates
//! rsi, rdi and rcx as the iterations it performed would have, so the loop that follows
//! resumes exactly there; anything it cannot do, including every fault, is the loop's.

use super::cpu::{X86Cpu, RAX, RCX, RSI};

/// The machine's direct access to guest RAM: the host address of `[vaddr, vaddr + len)`
/// (within one page) for a load (`write` false) or a store, in MMU mode `mmu_idx`, or null
/// when the access needs the softmmu (not RAM, a watched code page, a fault).
///
/// # Safety
/// `env` is the CPU state of a vCPU running a helper; the pointer returned is valid for
/// `len` bytes until that helper returns.
pub type HostRange = unsafe fn(env: u64, vaddr: u64, len: u64, write: bool, mmu_idx: u8) -> *mut u8;

/// Most bytes one call moves: the loop's exit-request check comes at least this often.
const MAX_BYTES_PER_CALL: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// rdi.
const RDI: usize = 7;

/// `info` of [`helper_rep_bulk`]: bit 0 stos (else movs), bits 2:1 log2 of the element size,
/// bits 15:8 the MMU index of data accesses.
pub fn bulk_info(stos: bool, log2_size: u8, mmu_idx: u8) -> u64 {
    u64::from(stos) | u64::from(log2_size & 3) << 1 | u64::from(mmu_idx) << 8
}

/// Performs leading iterations of the `rep movs`/`rep stos` the CPU is at (see the module
/// documentation).
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] whose vCPU runs this helper (no other
/// reference to it is live).
pub(crate) unsafe extern "C" fn helper_rep_bulk(
    env: u64,
    info: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
) -> u64 {
    // The registers are copied out and written back: `host_range` reaches the same CPU state
    // (its page walks read the system registers), so no reference to it is held across.
    let (host_range, forward, mut rsi, mut rdi, mut rcx, rax) = {
        // SAFETY: by this function's contract; the borrow ends with this block.
        let cpu = unsafe { &*(env as *const X86Cpu) };
        (
            cpu.host_range,
            cpu.df == 1,
            cpu.regs[RSI],
            cpu.regs[RDI],
            cpu.regs[RCX],
            cpu.regs[RAX],
        )
    };
    let Some(host_range) = host_range.filter(|_| forward) else {
        return 0;
    };
    let stos = info & 1 != 0;
    let size = 1u64 << ((info >> 1) & 3);
    let mmu_idx = (info >> 8) as u8;
    let mut budget = MAX_BYTES_PER_CALL;
    while rcx != 0 && budget > 0 {
        let room = |a: u64| (PAGE - (a & (PAGE - 1))) / size;
        let mut n = rcx.min(room(rdi)).min(budget / size);
        if !stos {
            n = n.min(room(rsi));
        }
        if n == 0 {
            // An element straddles a page boundary: the loop's.
            break;
        }
        let len = n * size;
        // SAFETY: forwarded from this function's contract; the range lies in one page.
        let d = unsafe { host_range(env, rdi, len, true, mmu_idx) };
        if d.is_null() {
            break;
        }
        if stos {
            let value = rax.to_le_bytes();
            let element = &value[..size as usize];
            if element.iter().all(|&b| b == element[0]) {
                // SAFETY: `d` is valid for `len` bytes (HostRange's contract).
                unsafe { std::ptr::write_bytes(d, element[0], len as usize) };
            } else {
                for k in 0..n as usize {
                    let at = d.wrapping_add(k * element.len());
                    // SAFETY: as above; element `k` lies within the `len` bytes at `d`.
                    unsafe { std::ptr::copy_nonoverlapping(element.as_ptr(), at, element.len()) };
                }
            }
        } else {
            // SAFETY: as above, for the load.
            let s = unsafe { host_range(env, rsi, len, false, mmu_idx) };
            if s.is_null() {
                break;
            }
            // Forward element order equals a memmove unless the destination starts inside
            // the source: then later elements read what earlier ones wrote.
            let (sa, da) = (s as usize, d as usize);
            if da > sa && da < sa + len as usize {
                break;
            }
            // SAFETY: both ranges are valid for `len` bytes; `copy` allows overlap.
            unsafe { std::ptr::copy(s, d, len as usize) };
            rsi = rsi.wrapping_add(len);
        }
        rdi = rdi.wrapping_add(len);
        rcx -= n;
        budget -= len;
    }
    // SAFETY: by this function's contract; no other reference is live now.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    cpu.regs[RSI] = rsi;
    cpu.regs[RDI] = rdi;
    cpu.regs[RCX] = rcx;
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Guest "RAM" of the tests: 4 pages at guest address 0x10000; page 3 is not RAM.
        static RAM: RefCell<Vec<u8>> = RefCell::new(vec![0; 4 * PAGE as usize]);
    }
    const BASE: u64 = 0x10000;

    unsafe fn test_range(_env: u64, vaddr: u64, len: u64, _write: bool, _mmu: u8) -> *mut u8 {
        let off = vaddr.wrapping_sub(BASE);
        assert!(off % PAGE + len <= PAGE, "one page at a time");
        if off >= 3 * PAGE {
            return std::ptr::null_mut();
        }
        RAM.with(|r| r.borrow_mut().as_mut_ptr().wrapping_add(off as usize))
    }

    fn cpu(rsi: u64, rdi: u64, rcx: u64, rax: u64) -> Box<X86Cpu> {
        let mut c = X86Cpu::new(0);
        c.host_range = Some(test_range);
        c.regs[RSI] = rsi;
        c.regs[RDI] = rdi;
        c.regs[RCX] = rcx;
        c.regs[RAX] = rax;
        c
    }

    fn run(c: &mut X86Cpu, stos: bool, log2: u8) {
        // SAFETY: `c` is a whole CPU state, not otherwise borrowed.
        unsafe {
            helper_rep_bulk(
                c as *mut X86Cpu as u64,
                bulk_info(stos, log2, 0),
                0,
                0,
                0,
                0,
            )
        };
    }

    fn ram(at: u64, len: usize) -> Vec<u8> {
        RAM.with(|r| r.borrow()[(at - BASE) as usize..][..len].to_vec())
    }

    #[test]
    fn rep_stosq_fills_across_pages_and_leaves_registers_as_the_iterations_would() {
        let mut c = cpu(0, BASE + 0x800, 600, 0x1122_3344_5566_7788);
        run(&mut c, true, 3);
        assert_eq!(c.regs[RCX], 0);
        assert_eq!(c.regs[7], BASE + 0x800 + 600 * 8);
        let bytes = ram(BASE + 0x800, 600 * 8);
        assert!(bytes
            .chunks(8)
            .all(|e| e == 0x1122_3344_5566_7788u64.to_le_bytes()));
        assert_eq!(
            ram(BASE + 0x800 + 4800, 8),
            [0; 8],
            "nothing past the count"
        );
    }

    #[test]
    fn rep_movsb_copies_and_stops_where_ram_ends_for_the_loop_to_fault() {
        RAM.with(|r| {
            r.borrow_mut()[..256]
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = i as u8)
        });
        let mut c = cpu(BASE, BASE + 3 * PAGE - 100, 256, 0);
        run(&mut c, false, 0);
        assert_eq!(c.regs[RCX], 156, "100 bytes up to the page that is not RAM");
        assert_eq!(c.regs[RSI], BASE + 100);
        assert_eq!(c.regs[7], BASE + 3 * PAGE);
        assert_eq!(ram(BASE + 3 * PAGE - 100, 100), ram(BASE, 100));
    }

    #[test]
    fn a_forward_copy_into_its_own_source_and_a_backward_one_are_left_to_the_loop() {
        let mut c = cpu(BASE + 0x100, BASE + 0x101, 16, 0);
        run(&mut c, false, 0);
        assert_eq!(c.regs[RCX], 16, "the pattern-repeating overlap");
        let mut c = cpu(BASE + 0x100, BASE + 0x200, 16, 0);
        c.df = u64::MAX;
        run(&mut c, false, 0);
        assert_eq!(c.regs[RCX], 16, "DF set");
        let mut c = cpu(BASE + 0x101, BASE + 0x100, 16, 0);
        run(&mut c, false, 0);
        assert_eq!(
            c.regs[RCX], 0,
            "a destination below the source is a plain memmove"
        );
    }

    #[test]
    fn an_element_straddling_a_page_is_left_to_the_loop() {
        let mut c = cpu(0, BASE + PAGE - 4, 2, 0);
        run(&mut c, true, 3);
        assert_eq!((c.regs[RCX], c.regs[7]), (2, BASE + PAGE - 4));
    }

    #[test]
    fn without_a_host_range_nothing_happens() {
        let mut c = cpu(0, BASE, 8, 0);
        c.host_range = None;
        run(&mut c, true, 0);
        assert_eq!(c.regs[RCX], 8);
    }
}
