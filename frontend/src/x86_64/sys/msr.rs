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
