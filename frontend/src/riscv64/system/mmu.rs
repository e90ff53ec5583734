//! Virtual memory (volume II, "Supervisor-Level ISA": satp, Sv39, Sv48) over the engine's
//! softmmu.
//!
//! **MMU indexes.** The softmmu keeps one TLB per MMU index and generated code picks the index
//! of each access at translation time, so an index must stand for everything that changes a
//! translation or its permissions besides satp and MXR (whose writes flush the TLB):
//! [`MMU_U`], [`MMU_S`], [`MMU_S_SUM`] (S with mstatus.SUM: U pages readable and writable) and
//! [`MMU_M`] (no translation). Data accesses use the effective privilege (MPP's with
//! mstatus.MPRV in M-mode); fetches always use the current privilege without SUM.
//!
//! **Page walk.** [`translate`] follows the spec's algorithm: canonical address check, PTE
//! loads (PMP-checked as S-mode implicit accesses), the V/R/W/X rules, reserved bits, leaf
//! permissions, misaligned superpages, then A/D updates by compare-and-swap on the PTE in
//! guest RAM, restarting the walk if the PTE changed under it.

use std::sync::atomic::{AtomicU64, Ordering};

use accel_tcg::{Access, MemFault, PageMapping, PageProt, PhysMemory};
use ir::abi::PAGE_MASK;

use super::csr::{
    MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_MXR, MSTATUS_SUM, SATP_MODE_BARE,
    SATP_MODE_SHIFT, SATP_MODE_SV39, SATP_MODE_SV48, SATP_PPN,
};
use super::trap::code;
use super::{pmp, PRIV_M, PRIV_S, PRIV_U};
use crate::riscv64::Riscv64Cpu;

/// MMU index of U-mode accesses.
pub const MMU_U: u8 = 0;
/// MMU index of S-mode accesses without SUM (and of all S-mode fetches).
pub const MMU_S: u8 = 1;
/// MMU index of S-mode data accesses with mstatus.SUM set.
pub const MMU_S_SUM: u8 = 2;
/// MMU index of M-mode accesses: physical, PMP only.
pub const MMU_M: u8 = 3;

/// Physical addresses have 56 bits.
pub const PA_BITS: u32 = 56;

// --- PTE fields.
/// Valid.
pub const PTE_V: u64 = 1 << 0;
/// Readable.
pub const PTE_R: u64 = 1 << 1;
/// Writable.
pub const PTE_W: u64 = 1 << 2;
/// Executable.
pub const PTE_X: u64 = 1 << 3;
/// Accessible to U-mode.
pub const PTE_U: u64 = 1 << 4;
/// Global mapping (no effect here: the TLB is flushed whole on satp writes).
pub const PTE_G: u64 = 1 << 5;
/// Accessed.
pub const PTE_A: u64 = 1 << 6;
/// Dirty.
pub const PTE_D: u64 = 1 << 7;
/// Shift of the PPN.
pub const PTE_PPN_SHIFT: u32 = 10;
/// The PPN (44 bits).
pub const PTE_PPN: u64 = ((1 << 44) - 1) << PTE_PPN_SHIFT;
/// Bits 63:54: N (Svnapot), PBMT (Svpbmt) and reserved bits; none is implemented, so any set
/// bit is a page fault.
pub const PTE_RESERVED: u64 = !((1 << 54) - 1);

/// The virtual-address span of superpage mappings the TLB may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperpageSpan {
    /// Lowest virtual address covered.
    pub lo: u64,
    /// Highest virtual address covered (inclusive).
    pub hi: u64,
}

impl SuperpageSpan {
    /// No superpage cached.
    pub const EMPTY: SuperpageSpan = SuperpageSpan {
        lo: u64::MAX,
        hi: 0,
    };

    /// Grows the span to cover `[start, start + size)`.
    pub fn add(&mut self, start: u64, size: u64) {
        self.lo = self.lo.min(start);
        self.hi = self.hi.max(start.wrapping_add(size - 1));
    }

    /// Whether `vaddr` may be inside a cached superpage.
    pub fn contains(&self, vaddr: u64) -> bool {
        self.lo <= vaddr && vaddr <= self.hi
    }
}

/// The privilege level an MMU index stands for.
pub fn priv_of(mmu_idx: u8) -> u64 {
    match mmu_idx {
        MMU_U => PRIV_U,
        MMU_S | MMU_S_SUM => PRIV_S,
        _ => PRIV_M,
    }
}

/// The MMU index of loads and stores in the current state.
pub fn data_mmu_idx(cpu: &Riscv64Cpu) -> u8 {
    let s = cpu.csrs.mstatus;
    let effective = if cpu.priv_level == PRIV_M && s & MSTATUS_MPRV != 0 {
        (s & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
    } else {
        cpu.priv_level
    };
    match effective {
        PRIV_U => MMU_U,
        PRIV_S if s & MSTATUS_SUM != 0 => MMU_S_SUM,
        PRIV_S => MMU_S,
        _ => MMU_M,
    }
}

/// The MMU index of instruction fetches in the current state.
pub fn code_mmu_idx(cpu: &Riscv64Cpu) -> u8 {
    match cpu.priv_level {
        PRIV_U => MMU_U,
        PRIV_S => MMU_S,
        _ => MMU_M,
    }
}

/// The page-fault code for an access.
pub fn page_fault_code(access: Access) -> u64 {
    match access {
        Access::Read => code::LOAD_PAGE_FAULT,
        Access::Write => code::STORE_PAGE_FAULT,
        Access::Execute => code::INSTRUCTION_PAGE_FAULT,
    }
}

/// The access-fault code for an access.
pub fn access_fault_code(access: Access) -> u64 {
    match access {
        Access::Read => code::LOAD_ACCESS,
        Access::Write => code::STORE_ACCESS,
        Access::Execute => code::INSTRUCTION_ACCESS,
    }
}

/// The exception `(cause, tval)` for a failed access at `vaddr`: page walks report their
/// code in `MemFault::Page`; misaligned accesses (LR/SC/AMO) and bus errors map to the
/// misaligned and access-fault codes of the access kind.
pub fn exception_for(fault: MemFault, access: Access, vaddr: u64) -> (u64, u64) {
    let cause = match fault {
        MemFault::Page(c) => c,
        MemFault::Misaligned => match access {
            Access::Read => code::LOAD_MISALIGNED,
            Access::Write => code::STORE_MISALIGNED,
            Access::Execute => code::INSTRUCTION_MISALIGNED,
        },
        MemFault::Bus => access_fault_code(access),
    };
    (cause, vaddr)
}

fn allowed(prot: PageProt, access: Access) -> bool {
    match access {
        Access::Read => prot.read,
        Access::Write => prot.write,
        Access::Execute => prot.execute,
    }
}

fn intersect(a: PageProt, b: PageProt) -> PageProt {
    PageProt {
        read: a.read && b.read,
        write: a.write && b.write,
        execute: a.execute && b.execute,
    }
}

/// Translates `vaddr` for `access` in MMU mode `mmu_idx`: the 4 KiB physical page and the
/// permissions valid for that index. `write` is granted only when the PTE's D bit is set, so
/// a later store walks again to set it.
pub fn translate(
    cpu: &mut Riscv64Cpu,
    mem: &dyn PhysMemory,
    vaddr: u64,
    access: Access,
    mmu_idx: u8,
) -> Result<PageMapping, MemFault> {
    let priv_level = priv_of(mmu_idx);
    let satp = cpu.csrs.satp;
    let mode = satp >> SATP_MODE_SHIFT;
    let levels = match mode {
        _ if priv_level == PRIV_M => None,
        SATP_MODE_SV39 => Some(3),
        SATP_MODE_SV48 => Some(4),
        SATP_MODE_BARE => None,
        _ => None,
    };
    let Some(levels) = levels else {
        if vaddr >> PA_BITS != 0 {
            return Err(MemFault::Page(access_fault_code(access)));
        }
        return physical(
            cpu,
            vaddr & PAGE_MASK,
            vaddr,
            access,
            priv_level,
            PageProt::ALL,
            false,
        );
    };

    let page_fault = MemFault::Page(page_fault_code(access));
    let va_bits = 12 + 9 * levels;
    let shift = 64 - va_bits;
    if (((vaddr << shift) as i64) >> shift) as u64 != vaddr {
        return Err(page_fault);
    }
    let mstatus = cpu.csrs.mstatus;

    'walk: loop {
        let mut table = (satp & SATP_PPN) << 12;
        let mut level = levels - 1;
        // G in any PTE of the walk makes the mapping global (privileged spec 4.3.1).
        let mut global = false;
        let (pte, slot, pte_addr) = loop {
            let index = (vaddr >> (12 + 9 * level)) & 0x1ff;
            let pte_addr = table + index * 8;
            let slot = pte_slot(cpu, mem, pte_addr, Access::Read)
                .ok_or(MemFault::Page(access_fault_code(access)))?;
            let pte = slot.load(Ordering::Acquire);
            if pte & PTE_V == 0 || pte & (PTE_R | PTE_W) == PTE_W || pte & PTE_RESERVED != 0 {
                return Err(page_fault);
            }
            global |= pte & PTE_G != 0;
            if pte & (PTE_R | PTE_X) != 0 {
                break (pte, slot, pte_addr);
            }
            if level == 0 {
                return Err(page_fault);
            }
            level -= 1;
            table = ((pte & PTE_PPN) >> PTE_PPN_SHIFT) << 12;
        };

        // Leaf permissions for this MMU index.
        let user_page = pte & PTE_U != 0;
        let mut prot = PageProt {
            read: pte & PTE_R != 0 || (mstatus & MSTATUS_MXR != 0 && pte & PTE_X != 0),
            write: pte & PTE_W != 0,
            execute: pte & PTE_X != 0,
        };
        match mmu_idx {
            MMU_U if !user_page => return Err(page_fault),
            MMU_S if user_page => return Err(page_fault),
            // SUM opens U pages to S loads and stores, never to S fetches.
            MMU_S_SUM if user_page => prot.execute = false,
            _ => {}
        }
        if !allowed(prot, access) {
            return Err(page_fault);
        }
        let ppn = (pte & PTE_PPN) >> PTE_PPN_SHIFT;
        let low_pages = (1u64 << (9 * level)) - 1;
        if ppn & low_pages != 0 {
            return Err(page_fault);
        }

        // Accessed and dirty, atomically against other harts and the guest's own updates.
        let mut new = pte | PTE_A;
        if access == Access::Write {
            new |= PTE_D;
        }
        if new != pte {
            if !pmp::check(cpu, pte_addr, 8, Access::Write, PRIV_S) {
                return Err(MemFault::Page(access_fault_code(access)));
            }
            if slot
                .compare_exchange(pte, new, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue 'walk;
            }
        }
        if new & PTE_D == 0 {
            prot.write = false;
        }

        let page_number = (ppn & !low_pages) | ((vaddr >> 12) & low_pages);
        let phys_page = page_number << 12;
        if level > 0 {
            let size = 1u64 << (12 + 9 * level);
            cpu.superpages.add(vaddr & !(size - 1), size);
        }
        return physical(
            cpu,
            phys_page,
            phys_page | (vaddr & !PAGE_MASK),
            access,
            priv_level,
            prot,
            global,
        );
    }
}

/// Finishes a translation to physical page `page`: PMP for `priv_level` narrows `prot`, and
/// must allow `access` at `paddr`.
fn physical(
    cpu: &Riscv64Cpu,
    page: u64,
    paddr: u64,
    access: Access,
    priv_level: u64,
    prot: PageProt,
    global: bool,
) -> Result<PageMapping, MemFault> {
    let prot = intersect(prot, pmp::page_prot(cpu, page, paddr, priv_level));
    if !allowed(prot, access) {
        return Err(MemFault::Page(access_fault_code(access)));
    }
    Ok(PageMapping {
        phys_page: page,
        prot,
        global,
    })
}

/// The PTE at `pte_addr` as an atomic in guest RAM; `None` (an access fault) when PMP denies
/// the S-mode implicit access or the address is not RAM.
fn pte_slot<'m>(
    cpu: &Riscv64Cpu,
    mem: &'m dyn PhysMemory,
    pte_addr: u64,
    access: Access,
) -> Option<&'m AtomicU64> {
    if pte_addr >> PA_BITS != 0 || !pmp::check(cpu, pte_addr, 8, access, PRIV_S) {
        return None;
    }
    let page = mem.ram_page(pte_addr)?;
    let offset = (pte_addr & !PAGE_MASK) as usize;
    // SAFETY: `ram_page` returns a host mapping of the whole 4 KiB guest page, and `offset`
    // is below 4096, so the result stays inside that mapping.
    let ptr = unsafe { page.as_ptr().add(offset) }.cast::<u64>();
    // SAFETY: `ptr` is valid for the lifetime of `mem` (the mapping lives as long as the
    // memory object) and 8-byte aligned (pages are page-aligned in the host and PTE addresses
    // are table base + 8 × index). Guest RAM is shared with other harts and devices; every
    // access this code makes to it is atomic.
    Some(unsafe { AtomicU64::from_ptr(ptr) })
}
