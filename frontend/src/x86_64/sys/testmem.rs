//! A sparse physical memory for the unit tests: 4 KiB pages allocated on first write, with
//! a configurable top of RAM above which nothing answers.

use std::collections::HashMap;

use super::PhysMem;

/// Sparse RAM below `top`.
pub struct TestMem {
    pages: HashMap<u64, Box<[u8; 4096]>>,
    /// First physical address that is not RAM.
    pub top: u64,
}

impl TestMem {
    /// 1 TiB of (sparse) RAM: every address a 40-bit physical address can name.
    pub fn new() -> TestMem {
        TestMem {
            pages: HashMap::new(),
            top: 1 << 40,
        }
    }

    /// Reads one byte (zero where never written).
    pub fn byte(&self, pa: u64) -> u8 {
        self.pages
            .get(&(pa >> 12))
            .map_or(0, |p| p[(pa & 0xfff) as usize])
    }

    /// Reads a u64 (test shorthand).
    pub fn get(&self, pa: u64) -> u64 {
        self.read_u64(pa)
    }

    /// Writes a u64 (test shorthand).
    pub fn set(&mut self, pa: u64, v: u64) {
        self.write_u64(pa, v);
    }
}

impl PhysMem for TestMem {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool {
        if paddr.saturating_add(buf.len() as u64) > self.top {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(paddr + i as u64);
        }
        true
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> bool {
        if paddr.saturating_add(data.len() as u64) > self.top {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            let a = paddr + i as u64;
            let page = self
                .pages
                .entry(a >> 12)
                .or_insert_with(|| Box::new([0u8; 4096]));
            page[(a & 0xfff) as usize] = b;
        }
        true
    }
}

/// A 64-bit machine for the segment and interrupt tests, laid out like Linux's: paging on
/// with 2 MiB identity pages (0..2 MiB supervisor, 2..4 MiB user), the GDT below, the IDT
/// empty, a TSS with RSP0 and IST1, and the CPU in 64-bit user mode at CPL 3.
pub mod machine {
    use super::super::cr::{CR0_PE, CR0_PG, CR0_WP, CR4_PAE};
    use super::super::interrupt::{Regs, RFLAGS_FIXED, RFLAGS_IF};
    use super::super::mmu::{PTE_P, PTE_PS, PTE_RW, PTE_US};
    use super::super::msr::{EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE};
    use super::super::seg::{self, Descriptor, Segment};
    use super::super::{PhysMem, SystemState, TableReg};
    use super::TestMem;

    /// The GDT's linear (= physical) address.
    pub const GDT: u64 = 0x5000;
    /// The IDT's address.
    pub const IDT: u64 = 0x6000;
    /// The TSS's address.
    pub const TSS: u64 = 0x7000;
    /// The ring-0 stack top in the TSS.
    pub const RSP0: u64 = 0x9000;
    /// IST1's stack top.
    pub const IST1: u64 = 0xa000;
    /// The user stack pointer.
    pub const USER_RSP: u64 = 0x20_1008;
    /// The user instruction pointer.
    pub const USER_RIP: u64 = 0x40_1234;
    /// Handler addresses (not mapped; delivery does not fetch).
    pub const HANDLER: u64 = 0xffff_ffff_8100_0000;

    // GDT selectors.
    /// 32-bit kernel code.
    pub const KCODE32: u16 = 0x08;
    /// 64-bit kernel code.
    pub const KCODE: u16 = 0x10;
    /// Kernel data.
    pub const KDATA: u16 = 0x18;
    /// 32-bit user code.
    pub const UCODE32: u16 = 0x23;
    /// User data.
    pub const UDATA: u16 = 0x2b;
    /// 64-bit user code.
    pub const UCODE: u16 = 0x33;
    /// A 64-bit kernel code segment that is not present.
    pub const KCODE_NP: u16 = 0x38;
    /// The TSS (16 bytes).
    pub const TSS_SEL: u16 = 0x40;
    /// An LDT descriptor (16 bytes).
    pub const LDT_SEL: u16 = 0x50;
    /// Execute-only 64-bit kernel code.
    pub const KCODE_XO: u16 = 0x60;
    /// Readable conforming code, DPL 0.
    pub const KCODE_CONF: u16 = 0x68;
    /// A data segment that is not present, DPL 3.
    pub const UDATA_NP: u16 = 0x70;
    /// A call gate (16 bytes).
    pub const CALL_GATE: u16 = 0x78;
    /// Code with both L and D set.
    pub const KCODE_LD: u16 = 0x88;
    /// Read-only data, DPL 3.
    pub const UDATA_RO: u16 = 0x90;

    /// The descriptors, by selector.
    pub fn gdt() -> Vec<(u16, u64)> {
        vec![
            (KCODE32, 0x00cf_9b00_0000_ffff),
            (KCODE, 0x00af_9b00_0000_ffff),
            (KDATA, 0x00cf_9300_0000_ffff),
            (UCODE32 & !3, 0x00cf_fb00_0000_ffff),
            (UDATA & !3, 0x00cf_f300_0000_ffff),
            (UCODE & !3, 0x00af_fb00_0000_ffff),
            (KCODE_NP, 0x00af_1b00_0000_ffff),
            // TSS: base TSS, limit 0x67, type 9, present.
            (TSS_SEL, 0x0000_8900_0000_0067 | (TSS & 0xff_ffff) << 16),
            (TSS_SEL + 8, TSS >> 32),
            // LDT: base 0x8000, limit 0xf, type 2, present.
            (LDT_SEL, 0x0000_8200_8000_000f),
            (LDT_SEL + 8, 0),
            (KCODE_XO, 0x00af_9900_0000_ffff),
            (KCODE_CONF, 0x00af_9f00_0000_ffff),
            (UDATA_NP, 0x00cf_7200_0000_ffff),
            // A 64-bit call gate to KCODE, DPL 3.
            (CALL_GATE, 0x0000_ec00_0010_0000),
            (CALL_GATE + 8, 0),
            (KCODE_LD, 0x00ef_9b00_0000_ffff),
            (UDATA_RO, 0x00cf_f100_0000_ffff),
        ]
    }

    /// Writes a 64-bit gate for `vector`: `typ` 0xe (interrupt) or 0xf (trap).
    pub fn gate(m: &mut TestMem, vector: u8, typ: u64, dpl: u64, ist: u64, present: bool) {
        gate_to(
            m,
            vector,
            KCODE,
            HANDLER + u64::from(vector) * 16,
            typ,
            dpl,
            ist,
            present,
        );
    }

    /// Writes a gate with an explicit selector and target.
    #[allow(clippy::too_many_arguments)]
    pub fn gate_to(
        m: &mut TestMem,
        vector: u8,
        selector: u16,
        target: u64,
        typ: u64,
        dpl: u64,
        ist: u64,
        present: bool,
    ) {
        let lo = (target & 0xffff)
            | u64::from(selector) << 16
            | ist << 32
            | typ << 40
            | dpl << 45
            | u64::from(present) << 47
            | ((target >> 16) & 0xffff) << 48;
        let addr = IDT + u64::from(vector) * 16;
        m.set(addr, lo);
        m.set(addr + 8, target >> 32);
    }

    /// The machine: state, registers and memory.
    pub fn new() -> (SystemState, Regs, TestMem) {
        let mut m = TestMem::new();
        m.set(0x1000, 0x2000 | PTE_P | PTE_RW | PTE_US);
        m.set(0x2000, 0x3000 | PTE_P | PTE_RW | PTE_US);
        m.set(0x3000, PTE_P | PTE_RW | PTE_PS);
        m.set(0x3008, 0x20_0000 | PTE_P | PTE_RW | PTE_US | PTE_PS);
        m.set(0x3010, 0x40_0000 | PTE_P | PTE_US | PTE_PS);
        for (sel, d) in gdt() {
            m.set(GDT + u64::from(sel), d);
        }
        // RSP0 at offset 4, IST1 at 0x24, I/O map base at 0x66.
        m.write(TSS + 4, &RSP0.to_le_bytes());
        m.write(TSS + 0x24, &IST1.to_le_bytes());
        m.write(TSS + 0x66, &0x68u16.to_le_bytes());
        // An LDT at 0x8000 with one user data descriptor at index 1 (selector 0x0f).
        m.set(0x8008, 0x00cf_f300_0000_ffff);

        let mut s = SystemState::reset();
        s.cr0 = CR0_PE | CR0_PG | CR0_WP | super::super::cr::CR0_ET;
        s.cr3 = 0x1000;
        s.cr4 = CR4_PAE;
        s.msrs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
        s.msrs.star = 0x0023_0010_0000_0000;
        s.gdtr = TableReg {
            base: GDT,
            limit: 0x9f,
        };
        s.idtr = TableReg {
            base: IDT,
            limit: 0xfff,
        };
        s.cpl = 0;
        seg::ltr(&mut s, &mut m, TSS_SEL).expect("ltr");
        seg::lldt(&mut s, &mut m, LDT_SEL).expect("lldt");
        let desc = |sel: u16| {
            let d = Descriptor(m.get(GDT + u64::from(sel & !7)));
            let mut c = d.cache(sel);
            c.attr |= seg::ATTR_ACCESSED;
            c
        };
        *s.seg_mut(Segment::Cs) = desc(UCODE);
        *s.seg_mut(Segment::Ss) = desc(UDATA);
        *s.seg_mut(Segment::Ds) = desc(UDATA);
        *s.seg_mut(Segment::Es) = desc(UDATA);
        *s.seg_mut(Segment::Fs) = super::super::SegmentCache::null(0);
        *s.seg_mut(Segment::Gs) = super::super::SegmentCache::null(0);
        s.cpl = 3;
        let regs = Regs {
            rip: USER_RIP,
            rsp: USER_RSP,
            rflags: RFLAGS_FIXED | RFLAGS_IF | 0x1, // CF set, to see it preserved
            rcx: 0,
            r11: 0,
        };
        (s, regs, m)
    }
}
