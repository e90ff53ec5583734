//! Paging (SDM vol. 3 chapter 4): the page walk of one linear address, with the access
//! rights, reserved-bit checks, accessed/dirty updates and #PF error codes of the SDM.
//!
//! **Modes.** [`translate`] handles paging off (linear = physical), 32-bit paging (two
//! levels of 4-byte entries, 4 MiB pages with CR4.PSE and PSE-36), PAE paging (the four
//! PDPTEs, then 8-byte PD and PT entries) and 4-level paging (IA-32e mode). 5-level paging
//! is not supported: CPUID does not advertise LA57, [`super::cr::write_cr4`] refuses the bit,
//! and the walk ignores it. PAE PDPTEs are read from memory on every walk instead of being
//! cached at the CR3 load (a guest may only see a difference if it edits its PDPTEs without
//! reloading CR3, which the SDM says gives unpredictable results).
//!
//! **Physical address width.** [`MAXPHYADDR`] is 40 bits (1 TiB); entry bits from 40 up to
//! 51 are reserved and fault with RSVD. CPUID leaf 0x8000_0008 must report the same width.
//!
//! **Features the walk assumes CPUID advertises** (leaf 1 EDX PAE, PSE, PGE; leaf 0x8000_0001
//! EDX NX and Page1GB; leaf 7 EBX SMEP, SMAP; leaf 1 ECX PCID): the walk honours the bits;
//! whether the guest may set them is [`super::cr`]'s and [`super::msr`]'s business.
//! Protection keys are not supported (CR4.PKE stays clear), so PK in the error code is 0, as
//! is SS (no shadow stacks) and SGX.
//!
//! **Order of checks** (SDM 4.7): a not-present entry at any level faults with P=0; a
//! present entry with a reserved bit set faults with P=1 and RSVD=1; a leaf whose combined
//! rights refuse the access faults with P=1. Accessed and dirty flags are written only when
//! the translation succeeds: A in every entry used, top-down, then D in the leaf on a write
//! (the SDM lets a processor set A during a walk that ends in a fault; not doing so is one of
//! the allowed behaviours and keeps faulting accesses free of side effects). Updates are
//! plain writes, not atomic: enough for one vCPU; SMP needs a compare-and-swap in
//! [`super::PhysMem`].
//!
//! **What a TLB may cache.** [`Translation::prot`] holds the rights of the page for the
//! same *kind* of access (user, supervisor with SMAP open, supervisor with SMAP closed): a
//! TLB must keep a separate entry per kind. `write` is granted only once the leaf's D flag is
//! set, so the first store to a clean page walks again and sets it.

use super::cr::{CR0_PG, CR0_WP, CR4_PAE, CR4_PGE, CR4_PSE, CR4_SMAP, CR4_SMEP};
use super::msr::{EFER_LMA, EFER_NXE};
use super::{is_canonical, Exception, PhysMem};

/// The physical-address width: 40 bits.
pub const MAXPHYADDR: u32 = 40;

// --- Paging-structure entry flags (SDM tables 4-14..4-20).
/// Present.
pub const PTE_P: u64 = 1 << 0;
/// Read/write: writes allowed when set in every entry.
pub const PTE_RW: u64 = 1 << 1;
/// User/supervisor: user-mode accesses allowed when set in every entry.
pub const PTE_US: u64 = 1 << 2;
/// Page-level write-through (cache type; no effect here).
pub const PTE_PWT: u64 = 1 << 3;
/// Page-level cache disable (cache type; no effect here).
pub const PTE_PCD: u64 = 1 << 4;
/// Accessed.
pub const PTE_A: u64 = 1 << 5;
/// Dirty (leaves only).
pub const PTE_D: u64 = 1 << 6;
/// Page size: this PDPTE / PDE maps a large page.
pub const PTE_PS: u64 = 1 << 7;
/// Global (leaves only, with CR4.PGE).
pub const PTE_G: u64 = 1 << 8;
/// Execute-disable (with EFER.NXE; reserved without it).
pub const PTE_XD: u64 = 1 << 63;

// --- #PF error-code bits (SDM 4.7).
/// The fault was a protection violation (0: a not-present entry).
pub const PFEC_P: u32 = 1 << 0;
/// The access was a write.
pub const PFEC_W: u32 = 1 << 1;
/// The access was a user-mode access (CPL 3 and not an implicit supervisor access).
pub const PFEC_U: u32 = 1 << 2;
/// A reserved bit was set in some paging-structure entry.
pub const PFEC_RSVD: u32 = 1 << 3;
/// The access was an instruction fetch (reported only with EFER.NXE or CR4.SMEP).
pub const PFEC_I: u32 = 1 << 4;

/// Entry bits above MAXPHYADDR up to bit 51: reserved.
const RSVD_PHYS: u64 = ((1 << 52) - 1) & !((1 << MAXPHYADDR) - 1);
/// The frame-address bits of an 8-byte entry: 51:12 below MAXPHYADDR.
const ADDR_MASK: u64 = ((1 << MAXPHYADDR) - 1) & !0xfff;

/// The kind of an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Execute,
}

/// The register inputs of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paging {
    /// CR0 (PG, WP).
    pub cr0: u64,
    /// CR3: the root table (PCID bits 11:0 are ignored by the walk).
    pub cr3: u64,
    /// CR4 (PSE, PAE, PGE, SMEP, SMAP).
    pub cr4: u64,
    /// IA32_EFER (LMA, NXE).
    pub efer: u64,
    /// RFLAGS.AC: opens user pages to supervisor data accesses at CPL < 3 under SMAP.
    pub ac: bool,
    /// The current privilege level.
    pub cpl: u8,
}

/// The size of the page a translation lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB (PAE and 4-level PDE).
    Size2M,
    /// 4 MiB (32-bit paging PDE with CR4.PSE).
    Size4M,
    /// 1 GiB (4-level PDPTE).
    Size1G,
}

impl PageSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size4M => 1 << 22,
            PageSize::Size1G => 1 << 30,
        }
    }
}

/// Access rights of a page for one kind of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prot {
    /// Data reads allowed.
    pub read: bool,
    /// Data writes allowed (and the page is already dirty).
    pub write: bool,
    /// Instruction fetches allowed.
    pub execute: bool,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the accessed byte.
    pub paddr: u64,
    /// The size of the page the address lies in.
    pub size: PageSize,
    /// What the same kind of access may do on this page without another walk.
    pub prot: Prot,
    /// The mapping is global (G in the leaf, with CR4.PGE): it survives CR3 loads.
    pub global: bool,
}

impl Translation {
    /// The physical address of the 4 KiB page holding the accessed byte.
    pub fn phys_page(&self) -> u64 {
        self.paddr & !0xfff
    }
}

impl From<Translation> for accel_tcg::PageMapping {
    /// The softmmu's view: the 4 KiB physical page and the rights to cache.
    fn from(t: Translation) -> accel_tcg::PageMapping {
        accel_tcg::PageMapping {
            phys_page: t.phys_page(),
            prot: accel_tcg::PageProt {
                read: t.prot.read,
                write: t.prot.write,
                execute: t.prot.execute,
            },
            global: t.global,
        }
    }
}

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MmuError {
    /// A page fault: the error code and the linear address (for CR2).
    #[error("page fault at {addr:#x}, error code {code:#x}")]
    PageFault {
        /// The #PF error code ([`PFEC_P`] ...).
        code: u32,
        /// The faulting linear address.
        addr: u64,
    },
    /// A non-canonical linear address in IA-32e mode: #GP(0), or #SS(0) for a stack access.
    #[error("non-canonical address {0:#x}")]
    NonCanonical(u64),
}

impl MmuError {
    /// The exception to raise; `stack` for accesses through SS (push, pop, RSP-based).
    pub fn exception(self, stack: bool) -> Exception {
        match self {
            MmuError::PageFault { code, addr } => Exception::pf(code, addr),
            MmuError::NonCanonical(_) if stack => Exception::ss(0),
            MmuError::NonCanonical(_) => Exception::gp(0),
        }
    }
}

/// The kinds of access whose page rights differ, for a TLB that keeps one set of entries
/// per kind (the softmmu's MMU index): the rights [`translate`] returns hold for every
/// access of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessClass {
    /// CPL 3, explicit accesses.
    User,
    /// Supervisor accesses with SMAP closing user pages (CR4.SMAP, and AC clear or CPL 3).
    SupervisorSmap,
    /// Supervisor accesses user pages are open to (SMAP off, or AC set at CPL < 3).
    Supervisor,
}

/// The class of a data access (`implicit` for GDT/LDT/IDT/TSS accesses). Fetches at CPL < 3
/// are [`AccessClass::Supervisor`] or [`AccessClass::SupervisorSmap`] alike: SMAP does not
/// apply to them.
pub fn access_class(p: &Paging, implicit: bool) -> AccessClass {
    if p.cpl == 3 && !implicit {
        AccessClass::User
    } else if p.cr4 & CR4_SMAP != 0 && (p.cpl == 3 || !p.ac) {
        AccessClass::SupervisorSmap
    } else {
        AccessClass::Supervisor
    }
}

/// One paging-structure entry the walk used (for the accessed flags).
#[derive(Clone, Copy)]
struct Used {
    addr: u64,
    value: u64,
    wide: bool,
}

fn read_entry<M: PhysMem + ?Sized>(mem: &M, addr: u64, wide: bool) -> u64 {
    if wide {
        mem.read_u64(addr)
    } else {
        let mut b = [0u8; 4];
        if mem.read(addr, &mut b) {
            u64::from(u32::from_le_bytes(b))
        } else {
            u64::from(u32::MAX)
        }
    }
}

fn write_entry<M: PhysMem + ?Sized>(mem: &mut M, e: Used) {
    if e.wide {
        mem.write_u64(e.addr, e.value);
    } else if !mem.write(e.addr, &(e.value as u32).to_le_bytes()) {
        log::debug!("x86 mmu: A/D update at non-RAM {:#x} dropped", e.addr);
    }
}

/// Translates linear address `vaddr` for an access of `kind`. `implicit` marks implicit
/// supervisor-mode accesses (GDT, LDT, IDT, TSS reads; the pushes of an interrupt frame are
/// ordinary accesses at the new CPL), which are supervisor accesses whatever the CPL.
/// Sets accessed and dirty flags in `mem` on success.
pub fn translate<M: PhysMem + ?Sized>(
    p: &Paging,
    mem: &mut M,
    vaddr: u64,
    kind: AccessKind,
    implicit: bool,
) -> Result<Translation, MmuError> {
    let long = p.efer & EFER_LMA != 0;
    if long && !is_canonical(vaddr) {
        return Err(MmuError::NonCanonical(vaddr));
    }
    // Outside IA-32e mode linear addresses have 32 bits.
    let vaddr = if long { vaddr } else { vaddr & 0xffff_ffff };
    if p.cr0 & CR0_PG == 0 {
        return Ok(Translation {
            paddr: vaddr,
            size: PageSize::Size4K,
            prot: Prot {
                read: true,
                write: true,
                execute: true,
            },
            global: false,
        });
    }

    let user = p.cpl == 3 && !implicit;
    let nxe = p.efer & EFER_NXE != 0;
    let pae = p.cr4 & CR4_PAE != 0;
    let smep = p.cr4 & CR4_SMEP != 0;
    // I/D is reported when execute-disable or SMEP makes fetches special.
    let report_fetch = (pae && nxe) || smep;
    let mut base_code = 0;
    if kind == AccessKind::Write {
        base_code |= PFEC_W;
    }
    if user {
        base_code |= PFEC_U;
    }
    if kind == AccessKind::Execute && report_fetch {
        base_code |= PFEC_I;
    }
    let fault = |extra: u32| MmuError::PageFault {
        code: base_code | extra,
        addr: vaddr,
    };
    let not_present = fault(0);
    let reserved = fault(PFEC_P | PFEC_RSVD);
    let xd_rsvd = if nxe { 0 } else { PTE_XD };

    let mut used: Vec<Used> = Vec::with_capacity(4);
    let mut user_all = true;
    let mut write_all = true;
    let mut xd_any = false;
    let mut note = |e: u64, used: &mut Vec<Used>, addr: u64, wide: bool| {
        user_all &= e & PTE_US != 0;
        write_all &= e & PTE_RW != 0;
        xd_any |= nxe && wide && e & PTE_XD != 0;
        used.push(Used {
            addr,
            value: e,
            wide,
        });
    };

    // The walk down to the leaf: (leaf entry, frame base, page size).
    let (leaf, frame, size) = if !pae {
        // 32-bit paging: PD then PT, 4-byte entries.
        let pde_addr = (p.cr3 & 0xffff_f000) | ((vaddr >> 22) & 0x3ff) << 2;
        let pde = read_entry(mem, pde_addr, false);
        if pde & PTE_P == 0 {
            return Err(not_present);
        }
        if pde & PTE_PS != 0 && p.cr4 & CR4_PSE != 0 {
            // 4 MiB page; PSE-36 puts physical bits 39:32 in entry bits 20:13, bit 21 is
            // reserved.
            if pde & (1 << 21) != 0 {
                return Err(reserved);
            }
            note(pde, &mut used, pde_addr, false);
            let frame = (pde & 0xffc0_0000) | ((pde >> 13) & 0xff) << 32;
            (pde, frame, PageSize::Size4M)
        } else {
            note(pde, &mut used, pde_addr, false);
            let pte_addr = (pde & 0xffff_f000) | ((vaddr >> 12) & 0x3ff) << 2;
            let pte = read_entry(mem, pte_addr, false);
            if pte & PTE_P == 0 {
                return Err(not_present);
            }
            note(pte, &mut used, pte_addr, false);
            (pte, pte & 0xffff_f000, PageSize::Size4K)
        }
    } else {
        let mut table;
        let mut level;
        if long {
            table = p.cr3 & ADDR_MASK;
            level = 4;
        } else {
            // PAE: one of four PDPTEs at CR3[31:5]; they have no R/W, U/S or A flags.
            let pdpte_addr = (p.cr3 & 0xffff_ffe0) | ((vaddr >> 30) & 3) << 3;
            let pdpte = mem.read_u64(pdpte_addr);
            if pdpte & PTE_P == 0 {
                return Err(not_present);
            }
            let rsvd = !((1u64 << MAXPHYADDR) - 1) | 0b110 | 0x1e0;
            if pdpte & rsvd != 0 {
                return Err(reserved);
            }
            table = pdpte & ADDR_MASK;
            level = 2;
        }
        loop {
            let shift = 12 + 9 * (level - 1);
            let addr = table | ((vaddr >> shift) & 0x1ff) << 3;
            let e = read_entry(mem, addr, true);
            if e & PTE_P == 0 {
                return Err(not_present);
            }
            let large = e & PTE_PS != 0 && (level == 2 || level == 3);
            let mut rsvd = RSVD_PHYS | xd_rsvd;
            match level {
                4 => rsvd |= PTE_PS,
                3 if large => rsvd |= ((1 << 30) - 1) & !((1 << 13) - 1),
                2 if large => rsvd |= ((1 << 21) - 1) & !((1 << 13) - 1),
                _ => {}
            }
            if e & rsvd != 0 {
                return Err(reserved);
            }
            note(e, &mut used, addr, true);
            if level == 1 || large {
                let size = match level {
                    3 => PageSize::Size1G,
                    2 if large => PageSize::Size2M,
                    _ => PageSize::Size4K,
                };
                let frame = e & ADDR_MASK & !(size.bytes() - 1);
                break (e, frame, size);
            }
            table = e & ADDR_MASK;
            level -= 1;
        }
    };

    // Access rights (SDM 4.6).
    let wp = p.cr0 & CR0_WP != 0;
    let prot = if user {
        Prot {
            read: user_all,
            write: user_all && write_all,
            execute: user_all && !xd_any,
        }
    } else {
        // SMAP closes user pages to supervisor data accesses, except explicit ones at
        // CPL < 3 with RFLAGS.AC set (implicit accesses at CPL 3 are always checked).
        let smap_closed = p.cr4 & CR4_SMAP != 0 && user_all && (p.cpl == 3 || !p.ac);
        Prot {
            read: !smap_closed,
            write: !smap_closed && (write_all || !wp),
            execute: !(xd_any || (smep && user_all)),
        }
    };
    let allowed = match kind {
        AccessKind::Read => prot.read,
        AccessKind::Write => prot.write,
        AccessKind::Execute => prot.execute,
    };
    if !allowed {
        return Err(fault(PFEC_P));
    }

    // Accessed flags top-down, then dirty in the leaf on a write.
    let last = used.len() - 1;
    for (i, e) in used.iter_mut().enumerate() {
        let mut v = e.value | PTE_A;
        if i == last && kind == AccessKind::Write {
            v |= PTE_D;
        }
        if v != e.value {
            e.value = v;
            write_entry(mem, *e);
        }
    }
    let dirty = leaf & PTE_D != 0 || kind == AccessKind::Write;
    Ok(Translation {
        paddr: frame | (vaddr & (size.bytes() - 1)),
        size,
        prot: Prot {
            write: prot.write && dirty,
            ..prot
        },
        global: leaf & PTE_G != 0 && p.cr4 & CR4_PGE != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::cr::{CR0_PE, CR4_PSE};
    use super::super::msr::EFER_LME;
    use super::super::testmem::TestMem;
    use super::super::{GP, PF, SS};
    use super::*;

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    /// The address most tests map: PML4 index 0, PDPT 0, PD 2, PT 3.
    const VA: u64 = 0x40_3000;
    const FRAME: u64 = 0x9_0000;
    const URW: u64 = PTE_P | PTE_RW | PTE_US;

    fn long_mode(cpl: u8) -> Paging {
        Paging {
            cr0: CR0_PE | CR0_PG | CR0_WP,
            cr3: PML4,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA | EFER_NXE,
            ac: false,
            cpl,
        }
    }

    /// Maps VA to FRAME with `upper` flags in the PML4E, PDPTE and PDE, and `leaf` in the PTE.
    fn map(upper: u64, leaf: u64) -> TestMem {
        let mut m = TestMem::new();
        m.set(PML4, PDPT | upper);
        m.set(PDPT, PD | upper);
        m.set(PD + 2 * 8, PT | upper);
        m.set(PT + 3 * 8, FRAME | leaf);
        m
    }

    fn pf_code(r: Result<Translation, MmuError>) -> u32 {
        match r {
            Err(MmuError::PageFault { code, addr }) => {
                assert_eq!(addr, VA + 0x123, "CR2 is the faulting linear address");
                code
            }
            other => panic!("expected a page fault, got {other:?}"),
        }
    }

    fn walk(
        p: &Paging,
        m: &mut TestMem,
        kind: AccessKind,
        implicit: bool,
    ) -> Result<Translation, MmuError> {
        translate(p, m, VA + 0x123, kind, implicit)
    }

    #[test]
    fn a_present_user_page_translates_to_its_frame_with_all_rights() {
        let mut m = map(URW, URW | PTE_D);
        let t = walk(&long_mode(3), &mut m, AccessKind::Read, false).unwrap();
        assert_eq!(t.paddr, FRAME + 0x123);
        assert_eq!(t.phys_page(), FRAME);
        assert_eq!(t.size, PageSize::Size4K);
        assert_eq!(
            t.prot,
            Prot {
                read: true,
                write: true,
                execute: true
            }
        );
        assert!(!t.global);
    }

    #[test]
    fn a_not_present_entry_at_any_level_faults_with_p_clear() {
        for level in 0..4 {
            let mut m = map(URW, URW);
            let addr = [PML4, PDPT, PD + 16, PT + 24][level];
            let e = m.get(addr);
            m.set(addr, e & !PTE_P);
            assert_eq!(
                pf_code(walk(&long_mode(0), &mut m, AccessKind::Read, false)),
                0
            );
        }
    }

    #[test]
    fn the_error_code_reports_write_user_and_fetch() {
        let mut m = map(URW, 0);
        let p = long_mode(3);
        assert_eq!(pf_code(walk(&p, &mut m, AccessKind::Read, false)), PFEC_U);
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Write, false)),
            PFEC_U | PFEC_W
        );
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Execute, false)),
            PFEC_U | PFEC_I
        );
        // Implicit accesses at CPL 3 are supervisor accesses: U/S clear.
        assert_eq!(pf_code(walk(&p, &mut m, AccessKind::Read, true)), 0);
    }

    #[test]
    fn instruction_fetches_are_reported_only_with_nxe_or_smep() {
        let mut m = map(URW, 0);
        let mut p = long_mode(0);
        p.efer &= !EFER_NXE;
        assert_eq!(pf_code(walk(&p, &mut m, AccessKind::Execute, false)), 0);
        p.cr4 |= CR4_SMEP;
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Execute, false)),
            PFEC_I
        );
    }

    #[test]
    fn user_accesses_need_us_at_every_level() {
        for level in 0..4 {
            let mut m = map(URW, URW);
            let addr = [PML4, PDPT, PD + 16, PT + 24][level];
            let e = m.get(addr);
            m.set(addr, e & !PTE_US);
            assert_eq!(
                pf_code(walk(&long_mode(3), &mut m, AccessKind::Read, false)),
                PFEC_P | PFEC_U
            );
            // The supervisor may still read it.
            assert!(walk(&long_mode(0), &mut m, AccessKind::Read, false).is_ok());
        }
    }

    #[test]
    fn user_writes_need_rw_at_every_level_whatever_wp() {
        let mut m = map(PTE_P | PTE_US, URW);
        let mut p = long_mode(3);
        p.cr0 &= !CR0_WP;
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Write, false)),
            PFEC_P | PFEC_W | PFEC_U
        );
        let t = walk(&p, &mut m, AccessKind::Read, false).unwrap();
        assert!(!t.prot.write);
    }

    #[test]
    fn supervisor_writes_to_read_only_pages_fault_only_with_cr0_wp() {
        let mut m = map(URW, PTE_P);
        let mut p = long_mode(0);
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Write, false)),
            PFEC_P | PFEC_W
        );
        p.cr0 &= !CR0_WP;
        let t = walk(&p, &mut m, AccessKind::Write, false).unwrap();
        assert!(t.prot.write);
        assert_ne!(m.get(PT + 24) & PTE_D, 0, "the write dirtied the page");
    }

    #[test]
    fn reading_sets_accessed_at_every_level_and_dirty_nowhere() {
        let mut m = map(URW, URW);
        let t = walk(&long_mode(3), &mut m, AccessKind::Read, false).unwrap();
        for addr in [PML4, PDPT, PD + 16, PT + 24] {
            assert_ne!(m.get(addr) & PTE_A, 0, "A at {addr:#x}");
            assert_eq!(m.get(addr) & PTE_D, 0, "no D at {addr:#x}");
        }
        assert!(!t.prot.write, "a clean page is not cached writable");
    }

    #[test]
    fn writing_sets_dirty_in_the_leaf_only() {
        let mut m = map(URW, URW);
        let t = walk(&long_mode(3), &mut m, AccessKind::Write, false).unwrap();
        assert!(t.prot.write);
        assert_eq!(m.get(PT + 24), FRAME | URW | PTE_A | PTE_D);
        assert_eq!(m.get(PD + 16), PT | URW | PTE_A);
    }

    #[test]
    fn a_faulting_access_sets_no_accessed_or_dirty_flag() {
        let mut m = map(URW, PTE_P | PTE_US);
        assert!(walk(&long_mode(3), &mut m, AccessKind::Write, false).is_err());
        for addr in [PML4, PDPT, PD + 16, PT + 24] {
            assert_eq!(m.get(addr) & (PTE_A | PTE_D), 0);
        }
    }

    #[test]
    fn execute_disable_refuses_fetches_at_any_level_with_nxe() {
        for level in 0..4 {
            let mut m = map(URW, URW);
            let addr = [PML4, PDPT, PD + 16, PT + 24][level];
            let e = m.get(addr);
            m.set(addr, e | PTE_XD);
            assert_eq!(
                pf_code(walk(&long_mode(3), &mut m, AccessKind::Execute, false)),
                PFEC_P | PFEC_U | PFEC_I
            );
            let t = walk(&long_mode(0), &mut m, AccessKind::Read, false).unwrap();
            assert!(!t.prot.execute);
        }
    }

    #[test]
    fn execute_disable_without_nxe_is_a_reserved_bit() {
        let mut m = map(URW, URW | PTE_XD);
        let mut p = long_mode(0);
        p.efer &= !EFER_NXE;
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Read, false)),
            PFEC_P | PFEC_RSVD
        );
    }

    #[test]
    fn address_bits_above_maxphyaddr_are_reserved() {
        let mut m = map(URW, URW | 1 << MAXPHYADDR);
        assert_eq!(
            pf_code(walk(&long_mode(3), &mut m, AccessKind::Write, false)),
            PFEC_P | PFEC_RSVD | PFEC_W | PFEC_U
        );
        let mut m = map(URW, URW);
        m.set(PDPT, PD | URW | 1 << 51);
        assert_eq!(
            pf_code(walk(&long_mode(0), &mut m, AccessKind::Read, false)),
            PFEC_P | PFEC_RSVD
        );
        // Bits 62:52 are ignored.
        let mut m = map(URW, URW | 0x7ff << 52);
        assert!(walk(&long_mode(0), &mut m, AccessKind::Read, false).is_ok());
    }

    #[test]
    fn ps_in_a_pml4e_is_reserved() {
        let mut m = map(URW, URW);
        m.set(PML4, PDPT | URW | PTE_PS);
        assert_eq!(
            pf_code(walk(&long_mode(0), &mut m, AccessKind::Read, false)),
            PFEC_P | PFEC_RSVD
        );
    }

    #[test]
    fn a_2m_page_maps_the_low_21_bits_and_reserves_bits_20_to_13() {
        let mut m = map(URW, URW);
        m.set(PD + 16, 0x4000_0000 | URW | PTE_PS | PTE_G);
        let mut p = long_mode(0);
        let t = walk(&p, &mut m, AccessKind::Read, false).unwrap();
        assert_eq!(t.size, PageSize::Size2M);
        assert_eq!(t.paddr, 0x4000_0000 + (VA & 0x1f_ffff) + 0x123);
        assert!(!t.global, "G needs CR4.PGE");
        p.cr4 |= CR4_PGE;
        assert!(walk(&p, &mut m, AccessKind::Read, false).unwrap().global);
        // PAT (bit 12) is allowed; bits 20:13 are reserved.
        m.set(PD + 16, 0x4000_0000 | URW | PTE_PS | 1 << 12);
        assert!(walk(&p, &mut m, AccessKind::Read, false).is_ok());
        m.set(PD + 16, 0x4000_0000 | URW | PTE_PS | 1 << 13);
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Read, false)),
            PFEC_P | PFEC_RSVD
        );
    }

    #[test]
    fn a_1g_page_maps_the_low_30_bits_and_reserves_bits_29_to_13() {
        let mut m = map(URW, URW);
        m.set(PDPT, 0x80_4000_0000 & ADDR_MASK | URW | PTE_PS);
        let p = long_mode(0);
        let t = walk(&p, &mut m, AccessKind::Write, false).unwrap();
        assert_eq!(t.size, PageSize::Size1G);
        assert_eq!(t.paddr, 0x80_4000_0000 + VA + 0x123);
        assert_ne!(m.get(PDPT) & PTE_D, 0, "D is set in the 1 GiB leaf");
        m.set(PDPT, 0x80_4000_0000 | URW | PTE_PS | 1 << 20);
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Read, false)),
            PFEC_P | PFEC_RSVD
        );
    }

    #[test]
    fn smep_refuses_supervisor_fetches_from_user_pages() {
        let mut m = map(URW, URW);
        let mut p = long_mode(0);
        assert!(walk(&p, &mut m, AccessKind::Execute, false).is_ok());
        p.cr4 |= CR4_SMEP;
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Execute, false)),
            PFEC_P | PFEC_I
        );
        // User fetches are unaffected.
        p.cpl = 3;
        assert!(walk(&p, &mut m, AccessKind::Execute, false).is_ok());
    }

    #[test]
    fn smap_refuses_supervisor_data_accesses_to_user_pages_unless_ac() {
        let mut m = map(URW, URW | PTE_D);
        let mut p = long_mode(0);
        p.cr4 |= CR4_SMAP;
        assert_eq!(pf_code(walk(&p, &mut m, AccessKind::Read, false)), PFEC_P);
        assert_eq!(
            pf_code(walk(&p, &mut m, AccessKind::Write, false)),
            PFEC_P | PFEC_W
        );
        p.ac = true;
        let t = walk(&p, &mut m, AccessKind::Write, false).unwrap();
        assert!(t.prot.read && t.prot.write);
        // An implicit access at CPL 0 follows AC too...
        assert!(walk(&p, &mut m, AccessKind::Read, true).is_ok());
        // ...but one at CPL 3 (a descriptor read from user code) is always checked.
        p.cpl = 3;
        assert_eq!(pf_code(walk(&p, &mut m, AccessKind::Read, true)), PFEC_P);
        // And SMAP never touches supervisor pages.
        let mut m = map(PTE_P | PTE_RW, PTE_P | PTE_RW);
        p.cpl = 0;
        p.ac = false;
        assert!(walk(&p, &mut m, AccessKind::Write, false).is_ok());
    }

    #[test]
    fn non_canonical_addresses_are_gp_or_ss_not_page_faults() {
        let mut m = map(URW, URW);
        let r = translate(
            &long_mode(0),
            &mut m,
            0x0000_8000_0000_0000,
            AccessKind::Read,
            false,
        );
        let e = r.unwrap_err();
        assert_eq!(e, MmuError::NonCanonical(0x0000_8000_0000_0000));
        assert_eq!(e.exception(false).vector, GP);
        assert_eq!(e.exception(false).error_code, Some(0));
        assert_eq!(e.exception(true).vector, SS);
        // The top half is canonical (and not mapped here).
        let r = translate(
            &long_mode(0),
            &mut m,
            0xffff_8000_0000_0000,
            AccessKind::Read,
            false,
        );
        assert_eq!(r.unwrap_err().exception(false).vector, PF);
    }

    #[test]
    fn with_paging_off_linear_is_physical_truncated_to_32_bits() {
        let mut m = TestMem::new();
        let p = Paging {
            cr0: CR0_PE,
            ..Paging::default()
        };
        let t = translate(&p, &mut m, 0x1_2345_6789, AccessKind::Write, false).unwrap();
        assert_eq!(t.paddr, 0x2345_6789);
        assert!(t.prot.read && t.prot.write && t.prot.execute);
    }

    #[test]
    fn a_page_table_in_a_hole_reads_as_ones_and_faults_rsvd() {
        let mut m = map(URW, URW);
        m.top = 0x4000; // PT at 0x4000 is not RAM any more.
        assert_eq!(
            pf_code(walk(&long_mode(0), &mut m, AccessKind::Read, false)),
            PFEC_P | PFEC_RSVD
        );
    }

    #[test]
    fn pae_paging_walks_four_pdptes_then_8_byte_tables() {
        let mut m = TestMem::new();
        // CR3 at 0x1020 (32-byte aligned); VA 0x8040_3123: PDPTE 2, PDE 2, PTE 3.
        m.set(0x1020 + 2 * 8, PD | PTE_P);
        m.set(PD + 2 * 8, PT | URW);
        m.set(PT + 3 * 8, FRAME | PTE_P | PTE_US | PTE_XD);
        let mut p = Paging {
            cr0: CR0_PE | CR0_PG,
            cr3: 0x1020,
            cr4: CR4_PAE,
            efer: EFER_NXE,
            ac: false,
            cpl: 3,
        };
        let t = translate(&p, &mut m, 0x8040_3123, AccessKind::Read, false).unwrap();
        assert_eq!(t.paddr, FRAME + 0x123);
        assert!(!t.prot.write && !t.prot.execute);
        // PDPTE bits 2:1 are reserved.
        m.set(0x1020 + 2 * 8, PD | PTE_P | PTE_RW);
        let e = translate(&p, &mut m, 0x8040_3123, AccessKind::Read, false).unwrap_err();
        assert_eq!(
            e,
            MmuError::PageFault {
                code: PFEC_P | PFEC_RSVD | PFEC_U,
                addr: 0x8040_3123
            }
        );
        p.cpl = 0;
        m.set(0x1020 + 2 * 8, 0);
        let e = translate(&p, &mut m, 0x8040_3123, AccessKind::Read, false).unwrap_err();
        assert_eq!(
            e,
            MmuError::PageFault {
                code: 0,
                addr: 0x8040_3123
            }
        );
    }

    #[test]
    fn thirty_two_bit_paging_maps_4m_pages_with_pse() {
        let mut m = TestMem::new();
        // PDE 1 maps 4 MiB at physical 0x1_0080_0000 (PSE-36: bits 39:32 in PDE bits 20:13).
        let pde = 0x0080_0000u64 | 1 << 13 | PTE_P | PTE_RW | PTE_PS;
        m.write(0x1000 + 4, &(pde as u32).to_le_bytes());
        let mut p = Paging {
            cr0: CR0_PE | CR0_PG,
            cr3: 0x1000,
            cr4: CR4_PSE,
            ..Paging::default()
        };
        let t = translate(&p, &mut m, 0x0040_1234, AccessKind::Write, false).unwrap();
        assert_eq!(t.size, PageSize::Size4M);
        assert_eq!(t.paddr, 0x1_0080_1234);
        let mut b = [0u8; 4];
        m.read(0x1004, &mut b);
        assert_eq!(u64::from(u32::from_le_bytes(b)), pde | PTE_A | PTE_D);
        // Without CR4.PSE the same PDE points to a page table.
        p.cr4 = 0;
        let e = translate(&p, &mut m, 0x0040_1234, AccessKind::Read, false).unwrap_err();
        assert!(matches!(e, MmuError::PageFault { code: 0, .. }));
    }

    #[test]
    fn access_classes_separate_what_smap_and_cpl_make_different() {
        let mut p = long_mode(3);
        assert_eq!(access_class(&p, false), AccessClass::User);
        assert_eq!(access_class(&p, true), AccessClass::Supervisor);
        p.cr4 |= CR4_SMAP;
        p.ac = true;
        assert_eq!(
            access_class(&p, true),
            AccessClass::SupervisorSmap,
            "CPL 3 implicit"
        );
        p.cpl = 0;
        assert_eq!(access_class(&p, false), AccessClass::Supervisor);
        p.ac = false;
        assert_eq!(access_class(&p, false), AccessClass::SupervisorSmap);
    }

    #[test]
    fn a_translation_becomes_the_softmmus_page_mapping() {
        let mut m = map(URW, URW);
        let t = walk(&long_mode(3), &mut m, AccessKind::Read, false).unwrap();
        let pm = accel_tcg::PageMapping::from(t);
        assert_eq!(pm.phys_page, FRAME);
        assert!(pm.prot.read && !pm.prot.write && pm.prot.execute);
    }
}
