//! The boot CPU's first state on the JIT: the [`BootCpuState`] the loaders build (the same one
//! KVM receives) written into the translator's CPU state, so both accelerators start a guest
//! identically: registers, CR0/CR3/CR4, EFER, GDTR/IDTR, TR and the segment caches, CPL 0,
//! interrupts off.

use accel_kvm::regs::{BootCpuState, Segment as BootSegment};
use frontend::x86_64::cpu::{RBX, RSI, RSP};
use frontend::x86_64::sys::seg::{ATTR_DB, ATTR_DPL_SHIFT, ATTR_G, ATTR_L, ATTR_P, ATTR_S};
use frontend::x86_64::sys::{Segment, SegmentCache, SystemState, TableReg};
use frontend::x86_64::X86Cpu;

/// The segment cache a CPU holds after loading `seg`'s descriptor.
fn cache(seg: &BootSegment) -> SegmentCache {
    let flag = |set: bool, bit: u16| if set { bit } else { 0 };
    let attr = u16::from(seg.type_ & 0xf)
        | flag(seg.s, ATTR_S)
        | (u16::from(seg.dpl & 3) << ATTR_DPL_SHIFT)
        | flag(seg.present, ATTR_P)
        | flag(seg.l, ATTR_L)
        | flag(seg.db, ATTR_DB)
        | flag(seg.g, ATTR_G);
    SegmentCache {
        selector: seg.selector,
        base: seg.base,
        limit: seg.limit,
        attr: if seg.present { attr } else { 0 },
    }
}

/// Puts `boot` into `cpu` (a fresh CPU state: what `boot` does not name keeps its reset value).
pub fn apply(boot: &BootCpuState, cpu: &mut X86Cpu) {
    cpu.rip = boot.rip;
    cpu.regs[RSP] = boot.rsp;
    cpu.regs[RBX] = boot.rbx;
    cpu.regs[RSI] = boot.rsi;
    cpu.set_rflags(boot.rflags | 0x2);
    let sys: &mut SystemState = &mut cpu.sys;
    sys.cr0 = boot.cr0;
    sys.cr3 = boot.cr3;
    sys.cr4 = boot.cr4;
    sys.msrs.efer = boot.efer;
    sys.gdtr = TableReg {
        base: boot.gdt.base,
        limit: boot.gdt.limit,
    };
    sys.idtr = TableReg {
        base: boot.idt.base,
        limit: boot.idt.limit,
    };
    let data = cache(&boot.data);
    for seg in [
        Segment::Es,
        Segment::Ss,
        Segment::Ds,
        Segment::Fs,
        Segment::Gs,
    ] {
        *sys.seg_mut(seg) = data;
    }
    *sys.seg_mut(Segment::Cs) = cache(&boot.cs);
    sys.tr = cache(&boot.tr);
    sys.cpl = 0;
    cpu.fs_base = data.base;
    cpu.gs_base = data.base;
}

#[cfg(test)]
mod tests {
    use super::*;
    use accel_kvm::regs::DescriptorTable;
    use frontend::x86_64::sys::seg::ATTR_CODE;

    use crate::x86_64::boot::{
        BOOT_CS, BOOT_DS, BOOT_TSS, GDT_CODE32, GDT_CODE64, GDT_DATA, GDT_TSS,
    };

    fn pvh_like(code: u64) -> BootCpuState {
        BootCpuState {
            rip: 0x100_0000,
            rbx: 0x6000,
            rflags: 0,
            cr0: 1 | 1 << 4,
            gdt: DescriptorTable {
                base: 0x500,
                limit: 39,
            },
            cs: BootSegment::from_gdt_entry(BOOT_CS, code),
            data: BootSegment::from_gdt_entry(BOOT_DS, GDT_DATA),
            tr: BootSegment::from_gdt_entry(BOOT_TSS, GDT_TSS),
            ..Default::default()
        }
    }

    #[test]
    fn the_pvh_entry_is_flat_32_bit_protected_mode_at_cpl_0_with_interrupts_off() {
        let mut cpu = X86Cpu::new(0);
        apply(&pvh_like(GDT_CODE32), &mut cpu);
        assert_eq!((cpu.rip, cpu.regs[RBX]), (0x100_0000, 0x6000));
        assert_eq!(cpu.rflags() & (1 << 9), 0, "IF clear");
        assert_eq!(cpu.rflags() & 2, 2, "bit 1 reads as one");
        let s = &cpu.sys;
        assert_eq!(s.cpl, 0);
        assert_eq!(s.cr0 & 1, 1, "protected mode");
        assert!(!s.long_mode());
        let cs = s.segs[Segment::Cs as usize];
        assert_eq!((cs.selector, cs.base, cs.limit), (0x10, 0, 0xffff_ffff));
        assert_ne!(cs.attr & ATTR_CODE, 0);
        assert_ne!(cs.attr & ATTR_DB, 0, "32-bit code");
        assert_eq!(cs.attr & ATTR_L, 0);
        let ds = s.segs[Segment::Ds as usize];
        assert_eq!((ds.selector, ds.limit), (0x18, 0xffff_ffff));
        assert_eq!(s.segs[Segment::Ss as usize], ds);
        assert_eq!((s.gdtr.base, s.gdtr.limit), (0x500, 39));
        assert_eq!((s.tr.selector, s.tr.limit), (0x20, 0x67));
    }

    #[test]
    fn the_64_bit_boot_protocol_starts_in_long_mode() {
        let mut b = pvh_like(GDT_CODE64);
        b.cr0 |= 1 << 31;
        b.cr4 = 1 << 5;
        b.cr3 = 0x9000;
        b.efer = 1 << 8 | 1 << 10;
        let mut cpu = X86Cpu::new(0);
        apply(&b, &mut cpu);
        assert!(cpu.sys.long_mode());
        assert!(cpu.sys.in_64bit_mode());
        assert_eq!(cpu.sys.cr3, 0x9000);
    }
}
