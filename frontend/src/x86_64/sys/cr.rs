//! Control registers (SDM vol. 3 2.5): their bits and the checks of `mov crN, reg`.
//!
//! The write functions return what the translator must do besides storing the value: which
//! cached translations are stale ([`Flush`]). They implement the #GP conditions of the SDM
//! for the features the CPU offers (PSE, PAE, PGE, PCID, SMEP, SMAP, OSFXSR/OSXMMEXCPT; not
//! LA57, PKE, VMX, SMX, OSXSAVE, FSGSBASE, UMIP, CET).

use super::msr::{EFER_LMA, EFER_LME};
use super::{Exception, SystemState};

// --- CR0.
/// Protection enable.
pub const CR0_PE: u64 = 1 << 0;
/// Monitor coprocessor.
pub const CR0_MP: u64 = 1 << 1;
/// x87 emulation.
pub const CR0_EM: u64 = 1 << 2;
/// Task switched.
pub const CR0_TS: u64 = 1 << 3;
/// Extension type (hard-wired to 1).
pub const CR0_ET: u64 = 1 << 4;
/// Numeric error reporting.
pub const CR0_NE: u64 = 1 << 5;
/// Write protect: supervisor writes honour read-only pages.
pub const CR0_WP: u64 = 1 << 16;
/// Alignment mask (with RFLAGS.AC at CPL 3).
pub const CR0_AM: u64 = 1 << 18;
/// Not write-through.
pub const CR0_NW: u64 = 1 << 29;
/// Cache disable.
pub const CR0_CD: u64 = 1 << 30;
/// Paging.
pub const CR0_PG: u64 = 1 << 31;
/// The CR0 bits that exist.
pub const CR0_VALID: u64 = CR0_PE
    | CR0_MP
    | CR0_EM
    | CR0_TS
    | CR0_ET
    | CR0_NE
    | CR0_WP
    | CR0_AM
    | CR0_NW
    | CR0_CD
    | CR0_PG;

// --- CR4.
/// Virtual-8086 mode extensions.
pub const CR4_VME: u64 = 1 << 0;
/// Protected-mode virtual interrupts.
pub const CR4_PVI: u64 = 1 << 1;
/// Time-stamp disable (rdtsc privileged).
pub const CR4_TSD: u64 = 1 << 2;
/// Debugging extensions.
pub const CR4_DE: u64 = 1 << 3;
/// 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// Physical-address extension (PAE and 4-level paging).
pub const CR4_PAE: u64 = 1 << 5;
/// Machine-check enable.
pub const CR4_MCE: u64 = 1 << 6;
/// Global pages.
pub const CR4_PGE: u64 = 1 << 7;
/// Performance-counter enable.
pub const CR4_PCE: u64 = 1 << 8;
/// OS supports fxsave/fxrstor.
pub const CR4_OSFXSR: u64 = 1 << 9;
/// OS handles SIMD exceptions.
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// 5-level paging (not supported: writing it is #GP).
pub const CR4_LA57: u64 = 1 << 12;
/// Process-context identifiers.
pub const CR4_PCIDE: u64 = 1 << 17;
/// Supervisor-mode execution prevention.
pub const CR4_SMEP: u64 = 1 << 20;
/// Supervisor-mode access prevention.
pub const CR4_SMAP: u64 = 1 << 21;
/// The CR4 bits the CPU offers; the rest are reserved (#GP).
pub const CR4_VALID: u64 = CR4_VME
    | CR4_PVI
    | CR4_TSD
    | CR4_DE
    | CR4_PSE
    | CR4_PAE
    | CR4_MCE
    | CR4_PGE
    | CR4_PCE
    | CR4_OSFXSR
    | CR4_OSXMMEXCPT
    | CR4_PCIDE
    | CR4_SMEP
    | CR4_SMAP;

/// CR3 with CR4.PCIDE: the PCID.
pub const CR3_PCID: u64 = 0xfff;
/// `mov cr3` source bit 63 with CR4.PCIDE: keep the new PCID's translations.
pub const CR3_NOFLUSH: u64 = 1 << 63;

/// Which cached translations a control-register write made stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// None.
    None,
    /// All non-global translations.
    NonGlobal,
    /// All translations, global ones too.
    All,
}

/// `mov cr0, value`: #GP(0) for reserved bits (63:32 too), PG without PE, NW without CD,
/// and for enabling paging with EFER.LME while CR4.PAE is clear (SDM 2.5, 10.8.5). Turning
/// paging on with EFER.LME sets EFER.LMA (entering IA-32e mode); turning it off clears LMA
/// (not allowed from 64-bit mode: #GP). Clearing PE or PG, or toggling WP, flushes everything.
pub fn write_cr0(s: &mut SystemState, value: u64) -> Result<Flush, Exception> {
    let value = value | CR0_ET;
    if value & !CR0_VALID != 0
        || (value & CR0_PG != 0 && value & CR0_PE == 0)
        || (value & CR0_NW != 0 && value & CR0_CD == 0)
    {
        return Err(Exception::gp(0));
    }
    let old = s.cr0;
    let pg_on = old & CR0_PG == 0 && value & CR0_PG != 0;
    let pg_off = old & CR0_PG != 0 && value & CR0_PG == 0;
    if pg_on && s.msrs.efer & EFER_LME != 0 {
        if s.cr4 & CR4_PAE == 0 {
            return Err(Exception::gp(0));
        }
        s.msrs.efer |= EFER_LMA;
    }
    if pg_off {
        if s.in_64bit_mode() {
            return Err(Exception::gp(0));
        }
        s.msrs.efer &= !EFER_LMA;
    }
    s.cr0 = value;
    let changed = old ^ value;
    Ok(if changed & (CR0_PG | CR0_PE | CR0_WP) != 0 {
        Flush::All
    } else {
        Flush::None
    })
}

/// `mov cr4, value`: #GP(0) for reserved or unsupported bits (LA57 among them), clearing PAE
/// in IA-32e mode, and setting PCIDE outside IA-32e mode or with CR3 bits 11:0 != 0. Changing
/// PGE, PAE, PSE, PCIDE, SMEP or SMAP flushes everything (SDM 4.10.4.1).
pub fn write_cr4(s: &mut SystemState, value: u64) -> Result<Flush, Exception> {
    if value & !CR4_VALID != 0 {
        return Err(Exception::gp(0));
    }
    if s.long_mode() && value & CR4_PAE == 0 {
        return Err(Exception::gp(0));
    }
    if value & CR4_PCIDE != 0 && s.cr4 & CR4_PCIDE == 0 && (!s.long_mode() || s.cr3 & CR3_PCID != 0)
    {
        return Err(Exception::gp(0));
    }
    let changed = s.cr4 ^ value;
    s.cr4 = value;
    Ok(
        if changed & (CR4_PGE | CR4_PAE | CR4_PSE | CR4_PCIDE | CR4_SMEP | CR4_SMAP) != 0 {
            Flush::All
        } else {
            Flush::None
        },
    )
}

/// `mov cr3, value`: #GP(0) for address bits at or above MAXPHYADDR (in IA-32e mode; bits
/// 63:32 are ignored outside it). With CR4.PCIDE, bit 63 asks to keep the cached
/// translations and is not stored. Non-global translations are flushed otherwise (this
/// model does not tag TLB entries with PCIDs, so a PCID switch flushes too).
pub fn write_cr3(s: &mut SystemState, value: u64) -> Result<Flush, Exception> {
    let pcide = s.cr4 & CR4_PCIDE != 0;
    let keep = pcide && value & CR3_NOFLUSH != 0;
    let value = if pcide { value & !CR3_NOFLUSH } else { value };
    let value = if s.long_mode() {
        if value >> super::mmu::MAXPHYADDR != 0 {
            return Err(Exception::gp(0));
        }
        value
    } else {
        value & 0xffff_ffff
    };
    let pcid_changed = (s.cr3 ^ value) & CR3_PCID != 0;
    s.cr3 = value;
    Ok(if keep && !pcid_changed {
        Flush::None
    } else {
        Flush::NonGlobal
    })
}

/// `mov cr8, value`: the task priority, bits 3:0; #GP(0) for the rest.
pub fn write_cr8(s: &mut SystemState, value: u64) -> Result<(), Exception> {
    if value & !0xf != 0 {
        return Err(Exception::gp(0));
    }
    s.cr8 = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::msr::{EFER_LMA, EFER_LME};
    use super::super::seg::{Segment, ATTR_L};
    use super::*;

    fn gp<T: std::fmt::Debug>(r: Result<T, Exception>) -> bool {
        matches!(r, Err(e) if e == Exception::gp(0))
    }

    #[test]
    fn paging_needs_protection_and_cd_is_needed_for_nw() {
        let mut s = SystemState::reset();
        assert!(gp(write_cr0(&mut s, CR0_PG)));
        assert!(gp(write_cr0(&mut s, CR0_PE | CR0_NW)));
        assert!(gp(write_cr0(&mut s, CR0_PE | 1 << 32)));
        assert!(gp(write_cr0(&mut s, CR0_PE | 1 << 6)));
        assert_eq!(write_cr0(&mut s, CR0_PE), Ok(Flush::All));
        assert_eq!(s.cr0, CR0_PE | CR0_ET, "ET is hard-wired");
    }

    #[test]
    fn paging_with_lme_enters_ia32e_mode_and_needs_pae() {
        let mut s = SystemState::reset();
        write_cr0(&mut s, CR0_PE).unwrap();
        s.msrs.efer = EFER_LME;
        assert!(gp(write_cr0(&mut s, CR0_PE | CR0_PG)));
        assert_eq!(s.msrs.efer & EFER_LMA, 0);
        write_cr4(&mut s, CR4_PAE).unwrap();
        write_cr0(&mut s, CR0_PE | CR0_PG).unwrap();
        assert_ne!(s.msrs.efer & EFER_LMA, 0);
        assert!(s.long_mode());
        // PAE cannot go away in IA-32e mode.
        assert!(gp(write_cr4(&mut s, 0)));
        // Nor can paging, from 64-bit code.
        s.seg_mut(Segment::Cs).attr |= ATTR_L;
        assert!(gp(write_cr0(&mut s, CR0_PE)));
        // From compatibility mode it leaves IA-32e mode.
        s.seg_mut(Segment::Cs).attr &= !ATTR_L;
        write_cr0(&mut s, CR0_PE).unwrap();
        assert_eq!(s.msrs.efer & EFER_LMA, 0);
    }

    #[test]
    fn toggling_wp_flushes_everything() {
        let mut s = SystemState::reset();
        write_cr0(&mut s, CR0_PE).unwrap();
        assert_eq!(write_cr0(&mut s, CR0_PE | CR0_WP), Ok(Flush::All));
        assert_eq!(write_cr0(&mut s, CR0_PE | CR0_WP | CR0_TS), Ok(Flush::None));
    }

    #[test]
    fn cr4_refuses_reserved_and_unsupported_bits_la57_among_them() {
        let mut s = SystemState::reset();
        for bit in [CR4_LA57, 1 << 13, 1 << 16, 1 << 18, 1 << 22, 1 << 32] {
            assert!(gp(write_cr4(&mut s, bit)), "{bit:#x}");
        }
        assert_eq!(
            write_cr4(&mut s, CR4_PAE | CR4_PGE | CR4_SMEP | CR4_SMAP),
            Ok(Flush::All)
        );
        assert_eq!(
            write_cr4(&mut s, CR4_PAE | CR4_PGE | CR4_SMEP | CR4_SMAP | CR4_OSFXSR),
            Ok(Flush::None)
        );
    }

    #[test]
    fn pcide_needs_ia32e_mode_and_a_zero_pcid() {
        let mut s = SystemState::reset();
        assert!(gp(write_cr4(&mut s, CR4_PCIDE)));
        s.msrs.efer = EFER_LME | EFER_LMA;
        s.cr4 = CR4_PAE;
        s.cr3 = 0x1001;
        assert!(gp(write_cr4(&mut s, CR4_PAE | CR4_PCIDE)));
        s.cr3 = 0x1000;
        write_cr4(&mut s, CR4_PAE | CR4_PCIDE).unwrap();
    }

    #[test]
    fn cr3_loads_flush_non_global_translations_unless_told_not_to() {
        let mut s = SystemState::reset();
        s.msrs.efer = EFER_LME | EFER_LMA;
        s.cr4 = CR4_PAE;
        assert_eq!(write_cr3(&mut s, 0x5000), Ok(Flush::NonGlobal));
        assert!(gp(write_cr3(&mut s, 1 << 40)));
        s.cr4 |= CR4_PCIDE;
        assert_eq!(write_cr3(&mut s, 0x6000 | CR3_NOFLUSH), Ok(Flush::None));
        assert_eq!(s.cr3, 0x6000, "bit 63 is not stored");
        assert_eq!(
            write_cr3(&mut s, 0x6001 | CR3_NOFLUSH),
            Ok(Flush::NonGlobal)
        );
    }

    #[test]
    fn cr8_holds_four_bits() {
        let mut s = SystemState::reset();
        write_cr8(&mut s, 0xf).unwrap();
        assert!(write_cr8(&mut s, 0x10).is_err());
        assert_eq!(s.cr8, 0xf);
    }
}
