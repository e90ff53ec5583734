//! The model-specific registers `rdmsr`/`wrmsr` reach (SDM vol. 4 table 2-2, AMD APM vol. 2
//! appendix A). Everything not listed here is #GP(0), MTRRs included (CPUID does not
//! advertise MTRR). FS_BASE and GS_BASE are the hidden bases of FS and GS, so they live in
//! [`super::SystemState::segs`]; [`SystemState::rdmsr`] and [`SystemState::wrmsr`] reach
//! them there.

use super::cr::CR0_PG;
use super::seg::Segment;
use super::{is_canonical, Exception, SystemState};

// --- MSR indexes.
/// Time-stamp counter.
pub const MSR_TSC: u32 = 0x10;
/// Local APIC base and enables.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_BIOS_SIGN_ID: the loaded microcode update's signature (bits 63:32). Linux writes 0,
/// runs `cpuid(1)` and reads it back with an unchecked `rdmsr` on every Intel family >= 6
/// processor (`intel_get_microcode_revision`), so it must exist.
pub const MSR_BIOS_SIGN_ID: u32 = 0x8b;
/// IA32_ARCH_CAPABILITIES (read-only, CPUID.(7,0).EDX[29]): the speculative-execution
/// issues the processor is not affected by. Linux reads it with an unchecked `rdmsr` once
/// CPUID advertises it (`x86_read_arch_cap_msr`).
pub const MSR_ARCH_CAPABILITIES: u32 = 0x10a;
/// SYSENTER code segment.
pub const MSR_SYSENTER_CS: u32 = 0x174;
/// SYSENTER stack pointer.
pub const MSR_SYSENTER_ESP: u32 = 0x175;
/// SYSENTER entry point.
pub const MSR_SYSENTER_EIP: u32 = 0x176;
/// Miscellaneous feature enables.
pub const MSR_MISC_ENABLE: u32 = 0x1a0;
/// Page-attribute table.
pub const MSR_PAT: u32 = 0x277;
/// Extended features (SCE, LME, LMA, NXE).
pub const MSR_EFER: u32 = 0xc000_0080;
/// syscall/sysret segment selectors.
pub const MSR_STAR: u32 = 0xc000_0081;
/// 64-bit syscall entry point.
pub const MSR_LSTAR: u32 = 0xc000_0082;
/// Compatibility-mode syscall entry point (stored; Intel CPUs never use it).
pub const MSR_CSTAR: u32 = 0xc000_0083;
/// RFLAGS bits syscall clears.
pub const MSR_FMASK: u32 = 0xc000_0084;
/// FS base.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// GS base.
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// The GS base swapgs exchanges with GS_BASE.
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// The value rdtscp returns in ECX.
pub const MSR_TSC_AUX: u32 = 0xc000_0103;

// --- EFER bits.
/// syscall/sysret enable.
pub const EFER_SCE: u64 = 1 << 0;
/// IA-32e mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// IA-32e mode active (set by the CPU when paging turns on with LME).
pub const EFER_LMA: u64 = 1 << 10;
/// Execute-disable enable.
pub const EFER_NXE: u64 = 1 << 11;

// --- APIC_BASE bits.
/// This is the bootstrap processor (read-only).
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// The local APIC is enabled.
pub const APIC_BASE_EN: u64 = 1 << 11;
/// The APIC base address after reset.
pub const APIC_BASE_DEFAULT: u64 = 0xfee0_0000;

// --- ARCH_CAPABILITIES bits (SDM vol. 4 table 2-2; Linux's names in comments).
/// Not susceptible to Rogue Data Cache Load, i.e. Meltdown (RDCL_NO): no page-table
/// isolation.
pub const ARCH_CAP_RDCL_NO: u64 = 1 << 0;
/// No L1D flush needed on VM entry (SKIP_L1DFL_VMENTRY): there is no L1D.
pub const ARCH_CAP_SKIP_L1DFL_VMENTRY: u64 = 1 << 3;
/// Not susceptible to Speculative Store Bypass (SSB_NO).
pub const ARCH_CAP_SSB_NO: u64 = 1 << 4;
/// Not susceptible to Microarchitectural Data Sampling (MDS_NO): no `verw` on kernel exit.
pub const ARCH_CAP_MDS_NO: u64 = 1 << 5;
/// No machine check on a page-size change without TLB invalidation (PSCHANGE_MC_NO): no
/// iTLB multihit.
pub const ARCH_CAP_PSCHANGE_MC_NO: u64 = 1 << 6;
/// Not susceptible to TSX Asynchronous Abort (TAA_NO).
pub const ARCH_CAP_TAA_NO: u64 = 1 << 8;
/// Not susceptible to the SBDR and SSDP variants of MMIO stale data (SBDR_SSDP_NO).
pub const ARCH_CAP_SBDR_SSDP_NO: u64 = 1 << 13;
/// Not susceptible to the FBSDP variant of MMIO stale data (FBSDP_NO).
pub const ARCH_CAP_FBSDP_NO: u64 = 1 << 14;
/// Not susceptible to the PSDP variant of MMIO stale data (PSDP_NO).
pub const ARCH_CAP_PSDP_NO: u64 = 1 << 15;
/// Not susceptible to Branch History Injection (BHI_NO).
pub const ARCH_CAP_BHI_NO: u64 = 1 << 20;
/// Not susceptible to post-barrier RSB predictions (PBRSB_NO).
pub const ARCH_CAP_PBRSB_NO: u64 = 1 << 24;
/// Not susceptible to Gather Data Sampling (GDS_NO).
pub const ARCH_CAP_GDS_NO: u64 = 1 << 26;
/// Not susceptible to Register File Data Sampling (RFDS_NO).
pub const ARCH_CAP_RFDS_NO: u64 = 1 << 27;
/// Not susceptible to Indirect Target Selection (ITS_NO; defined for virtual machines:
/// without it Linux assumes a guest is affected).
pub const ARCH_CAP_ITS_NO: u64 = 1 << 62;

/// IA32_ARCH_CAPABILITIES: every "not affected" bit, since nothing in tern speculates, and
/// nothing else. Left clear on purpose: IBRS_ALL (1; Linux would then run enhanced IBRS and
/// write IA32_SPEC_CTRL, which does not exist here), RSBA (2) and RRSBA (19) (they declare
/// a vulnerability), TSX_CTRL (7), FB_CLEAR (17), FB_CLEAR_CTRL (18), GDS_CTRL (25) and
/// RFDS_CLEAR (28) (they promise MSRs or `verw` behaviour that mitigations would use). With
/// this value and tern's CPUID, Linux 6.1 flags only the bugs no bit can clear for an Intel
/// family 6 processor off its whitelists (Spectre v1, Spectre v2 and SWAPGS: retpolines and
/// `lfence`, no MSR), and neither Meltdown nor L1TF, MDS, TAA, MMIO stale data, SSB, RFDS,
/// GDS, BHI, iTLB multihit or ITS.
pub const ARCH_CAPABILITIES: u64 = ARCH_CAP_RDCL_NO
    | ARCH_CAP_SKIP_L1DFL_VMENTRY
    | ARCH_CAP_SSB_NO
    | ARCH_CAP_MDS_NO
    | ARCH_CAP_PSCHANGE_MC_NO
    | ARCH_CAP_TAA_NO
    | ARCH_CAP_SBDR_SSDP_NO
    | ARCH_CAP_FBSDP_NO
    | ARCH_CAP_PSDP_NO
    | ARCH_CAP_BHI_NO
    | ARCH_CAP_PBRSB_NO
    | ARCH_CAP_GDS_NO
    | ARCH_CAP_RFDS_NO
    | ARCH_CAP_ITS_NO;

/// The microcode update signature IA32_BIOS_SIGN_ID reports: 0, "no update loaded" (SDM
/// vol. 3 9.11.7.1), which is the truth: there is no microcode.
pub const MICROCODE_REVISION: u32 = 0;

/// PAT after reset: WB, WT, UC-, UC, twice.
pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
/// MISC_ENABLE after reset: fast strings enabled.
pub const MISC_ENABLE_DEFAULT: u64 = 1;

/// The MSR file (all but FS/GS base, which are segment state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msrs {
    /// IA32_EFER.
    pub efer: u64,
    /// IA32_STAR.
    pub star: u64,
    /// IA32_LSTAR.
    pub lstar: u64,
    /// IA32_CSTAR.
    pub cstar: u64,
    /// IA32_FMASK.
    pub fmask: u64,
    /// IA32_KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// Guest TSC = host TSC + this (wrapping).
    pub tsc_offset: u64,
    /// IA32_TSC_AUX.
    pub tsc_aux: u64,
    /// IA32_APIC_BASE.
    pub apic_base: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
    /// IA32_SYSENTER_CS.
    pub sysenter_cs: u64,
    /// IA32_SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// IA32_SYSENTER_EIP.
    pub sysenter_eip: u64,
}

impl Default for Msrs {
    /// The values after RESET of the bootstrap processor.
    fn default() -> Self {
        Msrs {
            efer: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            fmask: 0,
            kernel_gs_base: 0,
            tsc_offset: 0,
            tsc_aux: 0,
            apic_base: APIC_BASE_DEFAULT | APIC_BASE_BSP | APIC_BASE_EN,
            pat: PAT_DEFAULT,
            misc_enable: MISC_ENABLE_DEFAULT,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
        }
    }
}

/// The saved MSR file (it is plain data: the state is the struct itself).
pub type MsrState = Msrs;

impl Msrs {
    /// The state to save.
    pub fn state(&self) -> MsrState {
        *self
    }

    /// Rebuilds the MSR file from saved state.
    pub fn from_state(state: &MsrState) -> Msrs {
        *state
    }
}

/// Whether every byte of a PAT value is a memory type (0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-).
pub fn pat_valid(value: u64) -> bool {
    value
        .to_le_bytes()
        .iter()
        .all(|&t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
}

impl SystemState {
    /// `rdmsr`: the value of MSR `index`, `host_tsc` being the host's time-stamp counter
    /// (for IA32_TSC). #GP(0) for MSRs that do not exist.
    pub fn rdmsr(&self, index: u32, host_tsc: u64) -> Result<u64, Exception> {
        let m = &self.msrs;
        Ok(match index {
            MSR_TSC => host_tsc.wrapping_add(m.tsc_offset),
            MSR_APIC_BASE => m.apic_base,
            MSR_BIOS_SIGN_ID => u64::from(MICROCODE_REVISION) << 32,
            MSR_ARCH_CAPABILITIES => ARCH_CAPABILITIES,
            MSR_SYSENTER_CS => m.sysenter_cs,
            MSR_SYSENTER_ESP => m.sysenter_esp,
            MSR_SYSENTER_EIP => m.sysenter_eip,
            MSR_MISC_ENABLE => m.misc_enable,
            MSR_PAT => m.pat,
            MSR_EFER => m.efer,
            MSR_STAR => m.star,
            MSR_LSTAR => m.lstar,
            MSR_CSTAR => m.cstar,
            MSR_FMASK => m.fmask,
            MSR_FS_BASE => self.seg(Segment::Fs).base,
            MSR_GS_BASE => self.seg(Segment::Gs).base,
            MSR_KERNEL_GS_BASE => m.kernel_gs_base,
            MSR_TSC_AUX => m.tsc_aux,
            _ => {
                log::debug!("x86 rdmsr of unknown MSR {index:#x}: #GP");
                return Err(Exception::gp(0));
            }
        })
    }

    /// `wrmsr`: sets MSR `index` to `value`. #GP(0) for unknown MSRs, reserved bits, and
    /// non-canonical addresses in the base and entry-point MSRs. Writing EFER keeps LMA
    /// (the CPU owns it) and refuses a change of LME while paging is on. Writing the TSC
    /// moves the offset from `host_tsc`.
    pub fn wrmsr(&mut self, index: u32, value: u64, host_tsc: u64) -> Result<(), Exception> {
        let canonical = |v: u64| {
            if is_canonical(v) {
                Ok(v)
            } else {
                Err(Exception::gp(0))
            }
        };
        let paging = self.cr0 & CR0_PG != 0;
        let m = &mut self.msrs;
        match index {
            MSR_TSC => m.tsc_offset = value.wrapping_sub(host_tsc),
            MSR_APIC_BASE => {
                // Base bits 39:12, EN, BSP (read-only); x2APIC (EXTD) is not offered.
                let valid = (((1u64 << super::mmu::MAXPHYADDR) - 1) & !0xfff)
                    | APIC_BASE_EN
                    | APIC_BASE_BSP;
                if value & !valid != 0 {
                    return Err(Exception::gp(0));
                }
                m.apic_base = (value & !APIC_BASE_BSP) | (m.apic_base & APIC_BASE_BSP);
            }
            // Writing (0, before `cpuid(1)`) only prepares the read of the signature, which
            // never changes: no microcode update is ever loaded.
            MSR_BIOS_SIGN_ID => {}
            // Read-only: an enumeration.
            MSR_ARCH_CAPABILITIES => return Err(Exception::gp(0)),
            MSR_SYSENTER_CS => m.sysenter_cs = value & 0xffff_ffff,
            MSR_SYSENTER_ESP => m.sysenter_esp = canonical(value)?,
            MSR_SYSENTER_EIP => m.sysenter_eip = canonical(value)?,
            // Model-specific feature switches: kept as written (Linux clears XD-disable and
            // the CPUID limit bit with safe accesses).
            MSR_MISC_ENABLE => m.misc_enable = value,
            MSR_PAT => {
                if !pat_valid(value) {
                    return Err(Exception::gp(0));
                }
                m.pat = value;
            }
            MSR_EFER => {
                if value & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0 {
                    return Err(Exception::gp(0));
                }
                if paging && (value ^ m.efer) & EFER_LME != 0 {
                    return Err(Exception::gp(0));
                }
                m.efer = (value & !EFER_LMA) | (m.efer & EFER_LMA);
            }
            MSR_STAR => m.star = value,
            MSR_LSTAR => m.lstar = canonical(value)?,
            MSR_CSTAR => m.cstar = canonical(value)?,
            MSR_FMASK => {
                if value >> 32 != 0 {
                    return Err(Exception::gp(0));
                }
                m.fmask = value;
            }
            MSR_KERNEL_GS_BASE => m.kernel_gs_base = canonical(value)?,
            MSR_TSC_AUX => {
                if value >> 32 != 0 {
                    return Err(Exception::gp(0));
                }
                m.tsc_aux = value;
            }
            MSR_FS_BASE => self.seg_mut(Segment::Fs).base = canonical(value)?,
            MSR_GS_BASE => self.seg_mut(Segment::Gs).base = canonical(value)?,
            _ => {
                log::debug!("x86 wrmsr of unknown MSR {index:#x} = {value:#x}: #GP");
                return Err(Exception::gp(0));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::cr::{CR0_PE, CR0_PG, CR4_PAE};
    use super::super::GP;
    use super::*;

    fn gp(r: Result<(), Exception>) -> bool {
        matches!(r, Err(e) if e.vector == GP && e.error_code == Some(0))
    }

    #[test]
    fn reset_values_are_those_of_the_bootstrap_processor() {
        let s = SystemState::reset();
        assert_eq!(s.rdmsr(MSR_APIC_BASE, 0), Ok(0xfee0_0900));
        assert_eq!(s.rdmsr(MSR_PAT, 0), Ok(0x0007_0406_0007_0406));
        assert_eq!(s.rdmsr(MSR_EFER, 0), Ok(0));
    }

    #[test]
    fn unknown_msrs_are_gp_both_ways() {
        let mut s = SystemState::reset();
        for index in [0x0, 0x1b + 1, 0x200, 0x2ff, 0xc000_0104, 0x4b56_4d00] {
            assert_eq!(s.rdmsr(index, 0), Err(Exception::gp(0)), "{index:#x}");
            assert!(gp(s.wrmsr(index, 0, 0)), "{index:#x}");
        }
    }

    #[test]
    fn mtrrs_are_gp_because_cpuid_does_not_advertise_them() {
        let s = SystemState::reset();
        for index in [0xfe, 0x2ff, 0x200, 0x250] {
            assert!(s.rdmsr(index, 0).is_err());
        }
    }

    #[test]
    fn efer_accepts_sce_lme_nxe_and_refuses_reserved_bits() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_EFER, EFER_SCE | EFER_LME | EFER_NXE, 0)
            .unwrap();
        assert_eq!(s.rdmsr(MSR_EFER, 0), Ok(EFER_SCE | EFER_LME | EFER_NXE));
        assert!(gp(s.wrmsr(MSR_EFER, 1 << 1, 0)));
        assert!(gp(s.wrmsr(MSR_EFER, 1 << 12, 0)));
    }

    #[test]
    fn efer_lma_is_owned_by_the_processor() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_EFER, EFER_LMA, 0).unwrap();
        assert_eq!(
            s.msrs.efer & EFER_LMA,
            0,
            "writing LMA does not enter IA-32e mode"
        );
        s.msrs.efer = EFER_LME | EFER_LMA;
        s.cr0 = CR0_PE | CR0_PG;
        s.cr4 = CR4_PAE;
        s.wrmsr(MSR_EFER, EFER_LME | EFER_NXE, 0).unwrap();
        assert_eq!(
            s.msrs.efer,
            EFER_LME | EFER_LMA | EFER_NXE,
            "nor does clearing it leave"
        );
    }

    #[test]
    fn efer_lme_cannot_change_while_paging_is_on() {
        let mut s = SystemState::reset();
        s.cr0 = CR0_PE | CR0_PG;
        assert!(gp(s.wrmsr(MSR_EFER, EFER_LME, 0)));
        s.wrmsr(MSR_EFER, EFER_NXE, 0).unwrap();
    }

    #[test]
    fn base_and_entry_msrs_must_be_canonical() {
        let mut s = SystemState::reset();
        for index in [
            MSR_LSTAR,
            MSR_CSTAR,
            MSR_FS_BASE,
            MSR_GS_BASE,
            MSR_KERNEL_GS_BASE,
            MSR_SYSENTER_ESP,
            MSR_SYSENTER_EIP,
        ] {
            assert!(gp(s.wrmsr(index, 0x0000_8000_0000_0000, 0)), "{index:#x}");
            s.wrmsr(index, 0xffff_8000_1234_5678, 0).unwrap();
            assert_eq!(s.rdmsr(index, 0), Ok(0xffff_8000_1234_5678), "{index:#x}");
        }
    }

    #[test]
    fn fs_and_gs_base_are_the_segment_bases() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_FS_BASE, 0x7000, 0).unwrap();
        s.wrmsr(MSR_GS_BASE, 0x8000, 0).unwrap();
        assert_eq!(s.seg(Segment::Fs).base, 0x7000);
        assert_eq!(s.seg(Segment::Gs).base, 0x8000);
    }

    #[test]
    fn star_takes_any_value_fmask_and_tsc_aux_only_32_bits() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_STAR, 0x0023_0010_dead_beef, 0).unwrap();
        assert_eq!(s.rdmsr(MSR_STAR, 0), Ok(0x0023_0010_dead_beef));
        s.wrmsr(MSR_FMASK, 0x4_7700, 0).unwrap();
        assert!(gp(s.wrmsr(MSR_FMASK, 1 << 32, 0)));
        s.wrmsr(MSR_TSC_AUX, 7, 0).unwrap();
        assert!(gp(s.wrmsr(MSR_TSC_AUX, 1 << 40, 0)));
        assert_eq!(s.rdmsr(MSR_TSC_AUX, 0), Ok(7));
    }

    #[test]
    fn the_tsc_runs_with_the_host_from_the_value_written() {
        let mut s = SystemState::reset();
        assert_eq!(s.rdmsr(MSR_TSC, 1000), Ok(1000));
        s.wrmsr(MSR_TSC, 50, 1000).unwrap();
        assert_eq!(s.rdmsr(MSR_TSC, 1000), Ok(50));
        assert_eq!(s.rdmsr(MSR_TSC, 1500), Ok(550));
    }

    #[test]
    fn pat_entries_must_be_memory_types() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_PAT, 0x0706_0504_0100_0706, 0).unwrap();
        for bad in [2u64, 3, 8, 0xff] {
            assert!(gp(s.wrmsr(MSR_PAT, bad << 24, 0)), "type {bad}");
        }
        assert_eq!(s.rdmsr(MSR_PAT, 0), Ok(0x0706_0504_0100_0706));
    }

    #[test]
    fn apic_base_keeps_bsp_and_refuses_x2apic_and_reserved_bits() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_APIC_BASE, 0xfed0_0000 | APIC_BASE_EN, 0)
            .unwrap();
        assert_eq!(
            s.rdmsr(MSR_APIC_BASE, 0),
            Ok(0xfed0_0000 | APIC_BASE_EN | APIC_BASE_BSP)
        );
        assert!(gp(s.wrmsr(
            MSR_APIC_BASE,
            0xfee0_0000 | APIC_BASE_EN | 1 << 10,
            0
        )));
        assert!(gp(s.wrmsr(MSR_APIC_BASE, 1 << 45, 0)));
    }

    #[test]
    fn sysenter_and_misc_enable_are_accepted() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_SYSENTER_CS, 0x10, 0).unwrap();
        s.wrmsr(MSR_MISC_ENABLE, 1 | 1 << 22, 0).unwrap();
        assert_eq!(s.rdmsr(MSR_SYSENTER_CS, 0), Ok(0x10));
        assert_eq!(s.rdmsr(MSR_MISC_ENABLE, 0), Ok(1 | 1 << 22));
    }

    #[test]
    fn the_microcode_signature_reads_no_update_after_the_write_of_zero() {
        let mut s = SystemState::reset();
        // Linux: wrmsr(0x8b, 0); cpuid(1); rdmsr(0x8b) -> revision in EDX.
        s.wrmsr(MSR_BIOS_SIGN_ID, 0, 0).unwrap();
        assert_eq!(s.rdmsr(MSR_BIOS_SIGN_ID, 0), Ok(0));
        s.wrmsr(MSR_BIOS_SIGN_ID, 0x1234_0000_0000, 0).unwrap();
        assert_eq!(s.rdmsr(MSR_BIOS_SIGN_ID, 0), Ok(0), "writes load nothing");
    }

    #[test]
    fn arch_capabilities_says_not_affected_and_promises_no_msr_or_mitigation() {
        let mut s = SystemState::reset();
        let caps = s.rdmsr(MSR_ARCH_CAPABILITIES, 0).unwrap();
        for (bit, what) in [
            (0, "RDCL_NO: no Meltdown, no page-table isolation"),
            (4, "SSB_NO"),
            (5, "MDS_NO"),
            (6, "PSCHANGE_MC_NO: no iTLB multihit"),
            (8, "TAA_NO"),
            (13, "SBDR_SSDP_NO"),
            (14, "FBSDP_NO"),
            (15, "PSDP_NO"),
            (20, "BHI_NO"),
            (24, "PBRSB_NO"),
            (26, "GDS_NO"),
            (27, "RFDS_NO"),
            (62, "ITS_NO"),
        ] {
            assert_ne!(caps & 1 << bit, 0, "{what}");
        }
        for (bit, what) in [
            (1, "IBRS_ALL: would make Linux write IA32_SPEC_CTRL"),
            (2, "RSBA: declares Retbleed"),
            (7, "TSX_CTRL: promises IA32_TSX_CTRL"),
            (17, "FB_CLEAR"),
            (18, "FB_CLEAR_CTRL: promises IA32_MCU_OPT_CTRL"),
            (19, "RRSBA"),
            (25, "GDS_CTRL: promises IA32_MCU_OPT_CTRL"),
            (28, "RFDS_CLEAR: asks for verw"),
        ] {
            assert_eq!(caps & 1 << bit, 0, "{what}");
        }
        assert!(gp(s.wrmsr(MSR_ARCH_CAPABILITIES, 0, 0)), "read-only");
        assert_eq!(s.rdmsr(MSR_ARCH_CAPABILITIES, 0), Ok(caps));
    }

    #[test]
    fn the_msrs_linux_reads_unchecked_on_intel_exist_and_the_ones_it_probes_do_not() {
        let s = SystemState::reset();
        // Unchecked rdmsr in Linux 6.1's Intel early boot, given tern's CPUID.
        for index in [
            MSR_BIOS_SIGN_ID,
            MSR_ARCH_CAPABILITIES,
            MSR_MISC_ENABLE,
            MSR_PAT,
        ] {
            assert!(s.rdmsr(index, 0).is_ok(), "{index:#x}");
        }
        // Probed with rdmsr_safe, or only behind CPUID bits tern leaves clear: #GP is the
        // answer that says "absent".
        for index in [
            0x3a,  // IA32_FEATURE_CONTROL (VMX/SGX locking)
            0x140, // MISC_FEATURES_ENABLES (CPUID faulting)
            0xce,  // PLATFORM_INFO
            0x48,  // IA32_SPEC_CTRL
            0x49,  // IA32_PRED_CMD
            0x122, // IA32_TSX_CTRL
            0x123, // IA32_MCU_OPT_CTRL
            0x3b,  // IA32_TSC_ADJUST
        ] {
            assert_eq!(s.rdmsr(index, 0), Err(Exception::gp(0)), "{index:#x}");
        }
    }

    #[test]
    fn the_msr_file_round_trips_through_its_state() {
        let mut s = SystemState::reset();
        s.wrmsr(MSR_LSTAR, 0xffff_ffff_8100_0000, 0).unwrap();
        s.wrmsr(MSR_TSC, 99, 0).unwrap();
        let saved = s.msrs.state();
        let back = Msrs::from_state(&saved);
        assert_eq!(back, s.msrs);
        assert_ne!(back, Msrs::default());
    }
}
