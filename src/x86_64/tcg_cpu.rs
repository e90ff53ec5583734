//! The x86_64 CPU of the machine on the JIT, as the engine needs it: the translation mode of
//! the next block, derived from the system state, and the page walk that fills the softmmu
//! TLB, with the faults it finds recorded as the guest will take them.
//!
//! **MMU indexes.** The rights a page walk grants depend on who asks (SDM vol. 3 4.6): user
//! accesses, supervisor accesses with SMAP closing user pages, and supervisor accesses with
//! user pages open. Each [`AccessClass`] gets its own softmmu TLB (its own MMU index), so one
//! cached translation never serves an access it does not cover. Implicit supervisor accesses
//! (descriptor tables, the TSS, interrupt frames) are made by the machine through
//! `sys::Linear`, not by translated code.

use accel_tcg::{Access, MemFault, PageMapping};
use frontend::x86_64::sys::mmu::{self, AccessClass, AccessKind, MmuError};
use frontend::x86_64::sys::seg::ATTR_DB;
use frontend::x86_64::sys::{Segment, SystemState};
use frontend::x86_64::translate::{vector, Mode};
use frontend::x86_64::X86Cpu;
use vm_memory::GuestMemoryMmap;

use super::phys_mem::RamPhysMem;

/// MMU index of CPL 3 accesses.
pub const MMU_USER: u8 = 0;
/// MMU index of supervisor accesses under SMAP (user pages closed).
pub const MMU_SUPERVISOR_SMAP: u8 = 1;
/// MMU index of supervisor accesses with user pages open.
pub const MMU_SUPERVISOR: u8 = 2;

/// `MemFault::Page` payload of a non-canonical address (#GP(0), not a #PF error code).
pub const NON_CANONICAL: u64 = u64::MAX;

/// RFLAGS.AC.
const RFLAGS_AC: u64 = 1 << 18;

/// The MMU index of an access class.
pub fn mmu_idx(class: AccessClass) -> u8 {
    match class {
        AccessClass::User => MMU_USER,
        AccessClass::SupervisorSmap => MMU_SUPERVISOR_SMAP,
        AccessClass::Supervisor => MMU_SUPERVISOR,
    }
}

/// The mode the next block is translated for: CPL, the code size (16 in real mode, the CS
/// descriptor's D bit in protected mode, 64 in 64-bit mode) and the MMU index of its data
/// accesses.
pub fn mode(cpu: &X86Cpu) -> Mode {
    let sys = &cpu.sys;
    let cs = sys.segs[Segment::Cs as usize];
    let code_bits = if sys.cr0 & 1 == 0 {
        16
    } else if sys.in_64bit_mode() {
        64
    } else if cs.attr & ATTR_DB != 0 {
        32
    } else {
        16
    };
    // AC is not an arithmetic flag: it lives in `eflags`, no lazy flags to fold.
    let ac = cpu.eflags & RFLAGS_AC != 0;
    Mode {
        system: true,
        cpl: sys.cpl,
        code_bits,
        mmu_idx: mmu_idx(mmu::access_class(&sys.paging(ac), false)),
    }
}

/// The walk of `vaddr` for an access of MMU index `mmu_idx` (a class: see the module doc),
/// setting accessed and dirty bits in `ram`. A fault comes back as `MemFault::Page` with the
/// #PF error code, or [`NON_CANONICAL`]; [`raise`] records it.
pub fn page_walk(
    ram: &GuestMemoryMmap,
    sys: &SystemState,
    vaddr: u64,
    access: Access,
    mmu_idx: u8,
) -> Result<PageMapping, MemFault> {
    let mut paging = sys.paging(mmu_idx == MMU_SUPERVISOR);
    paging.cpl = if mmu_idx == MMU_USER { 3 } else { 0 };
    let kind = match access {
        Access::Read => AccessKind::Read,
        Access::Write => AccessKind::Write,
        Access::Execute => AccessKind::Execute,
    };
    match mmu::translate(&paging, &mut RamPhysMem(ram), vaddr, kind, false) {
        Ok(t) => Ok(t.into()),
        Err(MmuError::PageFault { code, .. }) => Err(MemFault::Page(u64::from(code))),
        Err(MmuError::NonCanonical(_)) => Err(MemFault::Page(NON_CANONICAL)),
    }
}

/// Records the exception a failed walk of `vaddr` raises: #PF with its error code and CR2,
/// or #GP(0) for a non-canonical address.
pub fn raise(cpu: &mut X86Cpu, fault: MemFault, vaddr: u64) {
    match fault {
        MemFault::Page(NON_CANONICAL) => {
            cpu.cause = vector::GP;
            cpu.error_code = 0;
        }
        MemFault::Page(code) => {
            cpu.cause = vector::PF;
            cpu.error_code = code;
            cpu.sys.cr2 = vaddr;
        }
        // Not produced by the walk; the closest architectural answer.
        MemFault::Misaligned | MemFault::Bus => {
            cpu.cause = vector::GP;
            cpu.error_code = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86_64::boot::{BOOT_CS, BOOT_DS, BOOT_TSS, GDT_CODE32, GDT_DATA, GDT_TSS};
    use crate::x86_64::tcg_boot;
    use accel_kvm::regs::{BootCpuState, Segment as BootSegment};
    use frontend::x86_64::sys::mmu::{PFEC_P, PFEC_U, PFEC_W, PTE_P, PTE_PS, PTE_RW, PTE_US};
    use vm_memory::{Bytes, GuestAddress};

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;

    /// 4-level paging: the first GiB identity-mapped in 2 MiB pages, supervisor-only and
    /// read-only except the second 2 MiB page (user, writable).
    fn long_mode_cpu(ram: &GuestMemoryMmap) -> Box<X86Cpu> {
        ram.write_obj(PDPT | PTE_P | PTE_RW | PTE_US, GuestAddress(PML4))
            .unwrap();
        ram.write_obj(PD | PTE_P | PTE_RW | PTE_US, GuestAddress(PDPT))
            .unwrap();
        for i in 0..512u64 {
            let mut e = i << 21 | PTE_P | PTE_PS;
            if i == 1 {
                e |= PTE_RW | PTE_US;
            }
            ram.write_obj(e, GuestAddress(PD + 8 * i)).unwrap();
        }
        let mut cpu = X86Cpu::new(0);
        let s = &mut cpu.sys;
        s.cr0 = 1 | 1 << 31 | 1 << 16;
        s.cr3 = PML4;
        s.cr4 = 1 << 5;
        s.msrs.efer = 1 << 8 | 1 << 10;
        s.segs[Segment::Cs as usize].attr |= frontend::x86_64::sys::seg::ATTR_L;
        cpu
    }

    fn ram() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 8 << 20)]).unwrap()
    }

    #[test]
    fn the_pvh_entry_translates_as_32_bit_cpl_0_code() {
        let boot = BootCpuState {
            cr0: 1,
            cs: BootSegment::from_gdt_entry(BOOT_CS, GDT_CODE32),
            data: BootSegment::from_gdt_entry(BOOT_DS, GDT_DATA),
            tr: BootSegment::from_gdt_entry(BOOT_TSS, GDT_TSS),
            ..Default::default()
        };
        let mut cpu = X86Cpu::new(0);
        tcg_boot::apply(&boot, &mut cpu);
        let m = mode(&cpu);
        assert_eq!((m.system, m.cpl, m.code_bits), (true, 0, 32));
        assert_eq!(m.mmu_idx, MMU_SUPERVISOR, "no SMAP");
        // Paging off: the walk is the identity.
        let w = page_walk(&ram(), &cpu.sys, 0x12_3456, Access::Write, m.mmu_idx).unwrap();
        assert_eq!(w.phys_page, 0x12_3000);
    }

    #[test]
    fn long_mode_walks_grant_per_class_and_faults_carry_the_error_code_and_cr2() {
        let ram = ram();
        let mut cpu = long_mode_cpu(&ram);
        assert_eq!(mode(&cpu).code_bits, 64);
        let w = page_walk(&ram, &cpu.sys, 0x20_1234, Access::Read, MMU_USER).unwrap();
        assert_eq!(w.phys_page, 0x20_1000);
        let e = page_walk(&ram, &cpu.sys, 0x1234, Access::Read, MMU_USER).unwrap_err();
        assert_eq!(e, MemFault::Page(u64::from(PFEC_P | PFEC_U)));
        let e = page_walk(&ram, &cpu.sys, 0x1234, Access::Write, MMU_SUPERVISOR).unwrap_err();
        assert_eq!(e, MemFault::Page(u64::from(PFEC_P | PFEC_W)), "CR0.WP");
        raise(&mut cpu, e, 0x1234);
        assert_eq!((cpu.cause, cpu.error_code, cpu.sys.cr2), (14, 3, 0x1234));
        let e = page_walk(&ram, &cpu.sys, 1 << 47, Access::Read, MMU_SUPERVISOR).unwrap_err();
        assert_eq!(e, MemFault::Page(NON_CANONICAL));
        raise(&mut cpu, e, 1 << 47);
        assert_eq!((cpu.cause, cpu.error_code), (13, 0));
    }

    #[test]
    fn a_ring_3_cpu_and_smap_pick_their_own_mmu_indexes() {
        let ram = ram();
        let mut cpu = long_mode_cpu(&ram);
        cpu.sys.cpl = 3;
        assert_eq!(mode(&cpu).mmu_idx, MMU_USER);
        cpu.sys.cpl = 0;
        cpu.sys.cr4 |= 1 << 21;
        assert_eq!(mode(&cpu).mmu_idx, MMU_SUPERVISOR_SMAP);
        cpu.set_rflags(RFLAGS_AC | 2);
        assert_eq!(mode(&cpu).mmu_idx, MMU_SUPERVISOR, "AC opens user pages");
    }
}
