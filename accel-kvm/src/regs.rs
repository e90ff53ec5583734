//! The x86 CPU state a boot protocol hands to a vCPU, as plain data.
//!
//! The machine decides what state a boot protocol needs (32-bit protected mode for PVH, 64-bit
//! long mode for the Linux boot protocol); this module turns it into KVM's register structs.
//! The struct knows nothing of KVM so the JIT can take the same state later.

use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs};

/// One segment register, with its hidden descriptor cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    /// Descriptor type field (bits 8..11 of the high word).
    pub type_: u8,
    pub present: bool,
    pub dpl: u8,
    /// Default operation size (32-bit when set).
    pub db: bool,
    /// Code/data (set) or system (clear) descriptor.
    pub s: bool,
    /// 64-bit code segment.
    pub l: bool,
    /// Granularity (limit in 4 KiB units when set).
    pub g: bool,
}

impl Segment {
    /// Decodes a 64-bit GDT entry, as the CPU would when loading `selector`.
    pub fn from_gdt_entry(selector: u16, entry: u64) -> Self {
        let base = ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000);
        let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
        let g = (entry >> 55) & 1 == 1;
        Segment {
            base,
            limit: if g {
                (raw_limit << 12) | 0xfff
            } else {
                raw_limit
            },
            selector,
            type_: ((entry >> 40) & 0xf) as u8,
            present: (entry >> 47) & 1 == 1,
            dpl: ((entry >> 45) & 3) as u8,
            db: (entry >> 54) & 1 == 1,
            s: (entry >> 44) & 1 == 1,
            l: (entry >> 53) & 1 == 1,
            g,
        }
    }

    fn to_kvm(self) -> kvm_segment {
        kvm_segment {
            base: self.base,
            limit: self.limit,
            selector: self.selector,
            type_: self.type_,
            present: self.present as u8,
            dpl: self.dpl,
            db: self.db as u8,
            s: self.s as u8,
            l: self.l as u8,
            g: self.g as u8,
            avl: 0,
            unusable: (!self.present) as u8,
            padding: 0,
        }
    }
}

/// A descriptor-table register (GDTR, IDTR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    pub base: u64,
    pub limit: u16,
}

/// What a boot protocol sets in a vCPU before its first instruction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootCpuState {
    pub rip: u64,
    pub rsp: u64,
    pub rbx: u64,
    pub rsi: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub gdt: DescriptorTable,
    pub idt: DescriptorTable,
    pub cs: Segment,
    /// Loaded into DS, ES, FS, GS and SS.
    pub data: Segment,
    pub tr: Segment,
}

impl BootCpuState {
    /// Writes this state over `regs`/`sregs`, keeping the fields it does not own (APIC base,
    /// interrupt bitmap, LDT...) as KVM initialised them.
    pub(crate) fn apply(&self, regs: &mut kvm_regs, sregs: &mut kvm_sregs) {
        *regs = kvm_regs {
            rip: self.rip,
            rsp: self.rsp,
            rbx: self.rbx,
            rsi: self.rsi,
            rflags: self.rflags | 0x2,
            ..Default::default()
        };
        sregs.cr0 = self.cr0;
        sregs.cr3 = self.cr3;
        sregs.cr4 = self.cr4;
        sregs.efer = self.efer;
        sregs.gdt = kvm_dtable {
            base: self.gdt.base,
            limit: self.gdt.limit,
            ..Default::default()
        };
        sregs.idt = kvm_dtable {
            base: self.idt.base,
            limit: self.idt.limit,
            ..Default::default()
        };
        sregs.cs = self.cs.to_kvm();
        let data = self.data.to_kvm();
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.tr = self.tr.to_kvm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_flat_64bit_code_descriptor() {
        // base 0, limit 0xfffff, G, L, P, S, type 0xb (execute/read, accessed)
        let seg = Segment::from_gdt_entry(0x10, 0x00af_9b00_0000_ffff);
        assert_eq!(seg.base, 0);
        assert_eq!(seg.limit, 0xffff_ffff);
        assert!(seg.l && seg.g && seg.present && seg.s && !seg.db);
        assert_eq!(seg.type_, 0xb);
        assert_eq!(seg.dpl, 0);
    }

    #[test]
    fn decodes_base_and_byte_granular_limit() {
        // base 0x12345678, limit 0x67, type 0xb (busy TSS), P, system descriptor
        let entry = 0x1200_8b34_5678_0067u64;
        let seg = Segment::from_gdt_entry(0x18, entry);
        assert_eq!(seg.base, 0x1234_5678);
        assert_eq!(seg.limit, 0x67);
        assert!(!seg.s && seg.present && !seg.g);
    }
}
