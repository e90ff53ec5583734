//! Segmentation (SDM vol. 3 chapter 3, 5.8, 7.2): descriptors, the segment-register cache,
//! and the checks of loading a segment register in protected and IA-32e mode.
//!
//! Descriptor attributes are kept in the packed "access rights" layout of the SDM (the
//! descriptor's bits 47:40 and 55:52 as one u16: type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13,
//! D/B 14, G 15), like VMX does. In IA-32e mode system descriptors (LDT, TSS, gates) are 16
//! bytes; call gates are not supported: a far transfer through one is #GP(selector).

use super::{Exception, Linear, PhysMem, SystemState, TableReg};

// --- Access-rights bits of a [`SegmentCache`] / descriptor (descriptor bits 40..56 packed).
/// Type: accessed (code/data).
pub const ATTR_ACCESSED: u16 = 1 << 0;
/// Type: writable (data) / readable (code).
pub const ATTR_RW: u16 = 1 << 1;
/// Type: conforming (code) / expand-down (data).
pub const ATTR_CE: u16 = 1 << 2;
/// Type: code (with S).
pub const ATTR_CODE: u16 = 1 << 3;
/// S: code or data (clear: a system descriptor).
pub const ATTR_S: u16 = 1 << 4;
/// Shift of the DPL.
pub const ATTR_DPL_SHIFT: u32 = 5;
/// Present.
pub const ATTR_P: u16 = 1 << 7;
/// Available to software.
pub const ATTR_AVL: u16 = 1 << 12;
/// 64-bit code segment.
pub const ATTR_L: u16 = 1 << 13;
/// Default operand size / big.
pub const ATTR_DB: u16 = 1 << 14;
/// Granularity: limit in 4 KiB units.
pub const ATTR_G: u16 = 1 << 15;

// --- System descriptor types (S clear) in IA-32e mode.
/// LDT.
pub const SYS_LDT: u16 = 0x2;
/// Available 64-bit TSS.
pub const SYS_TSS_AVAIL: u16 = 0x9;
/// Busy 64-bit TSS.
pub const SYS_TSS_BUSY: u16 = 0xb;
/// 64-bit call gate.
pub const SYS_CALL_GATE: u16 = 0xc;
/// 64-bit interrupt gate.
pub const SYS_INT_GATE: u16 = 0xe;
/// 64-bit trap gate.
pub const SYS_TRAP_GATE: u16 = 0xf;

/// The segment registers, in the order of the ModRM `sreg` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// ES.
    Es = 0,
    /// CS.
    Cs = 1,
    /// SS.
    Ss = 2,
    /// DS.
    Ds = 3,
    /// FS.
    Fs = 4,
    /// GS.
    Gs = 5,
}

/// A segment register: the visible selector and the hidden descriptor cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentCache {
    /// The selector (index 15:3, TI 2, RPL 1:0).
    pub selector: u16,
    /// The base address.
    pub base: u64,
    /// The limit in bytes (already scaled by G).
    pub limit: u32,
    /// The access rights (`ATTR_*`); 0 marks an unusable (null-loaded) register.
    pub attr: u16,
}

impl SegmentCache {
    /// The descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        ((self.attr >> ATTR_DPL_SHIFT) & 3) as u8
    }

    /// A null-loaded, unusable register with `selector`.
    pub fn null(selector: u16) -> SegmentCache {
        SegmentCache {
            selector,
            ..SegmentCache::default()
        }
    }
}

/// An 8-byte segment descriptor as stored in the GDT or LDT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor(pub u64);

impl Descriptor {
    /// The base address (bits 31:0; system descriptors in IA-32e mode add a high half).
    pub fn base(self) -> u64 {
        let d = self.0;
        ((d >> 16) & 0xff_ffff) | ((d >> 56) & 0xff) << 24
    }

    /// The limit in bytes, scaled by G.
    pub fn limit(self) -> u32 {
        let d = self.0;
        let raw = ((d & 0xffff) | ((d >> 48) & 0xf) << 16) as u32;
        if self.attr() & ATTR_G != 0 {
            raw << 12 | 0xfff
        } else {
            raw
        }
    }

    /// The access rights (`ATTR_*`).
    pub fn attr(self) -> u16 {
        let d = self.0;
        (((d >> 40) & 0xff) | ((d >> 52) & 0xf) << 12) as u16
    }

    /// The DPL.
    pub fn dpl(self) -> u8 {
        ((self.attr() >> ATTR_DPL_SHIFT) & 3) as u8
    }

    /// Present.
    pub fn present(self) -> bool {
        self.attr() & ATTR_P != 0
    }

    /// A code or data descriptor (S set).
    pub fn is_code_data(self) -> bool {
        self.attr() & ATTR_S != 0
    }

    /// A code segment.
    pub fn is_code(self) -> bool {
        self.attr() & (ATTR_S | ATTR_CODE) == ATTR_S | ATTR_CODE
    }

    /// The 4-bit type field.
    pub fn typ(self) -> u16 {
        self.attr() & 0xf
    }

    /// The cache contents for `selector`.
    pub fn cache(self, selector: u16) -> SegmentCache {
        SegmentCache {
            selector,
            base: self.base(),
            limit: self.limit(),
            attr: self.attr(),
        }
    }
}

/// Where a descriptor came from: the linear address of its 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// The descriptor (low 8 bytes).
    pub desc: Descriptor,
    /// Its linear address.
    pub addr: u64,
}

/// Reads the 8-byte descriptor `selector` names (GDT or, with TI, the LDT), with implicit
/// supervisor accesses. #GP(selector) when it lies beyond the table's limit (or TI names an
/// unusable LDT); `ext` is the EXT bit for the error code.
pub fn fetch<M: PhysMem + ?Sized>(
    s: &SystemState,
    mem: &mut M,
    selector: u16,
    ext: u32,
) -> Result<Fetched, Exception> {
    let err = Exception::gp(u32::from(selector & 0xfffc) | ext);
    let table = if selector & 4 != 0 {
        if s.ldtr.attr & ATTR_P == 0 {
            return Err(err);
        }
        TableReg {
            base: s.ldtr.base,
            limit: s.ldtr.limit.min(0xffff) as u16,
        }
    } else {
        s.gdtr
    };
    fetch_from(s, mem, table, u32::from(selector & !7), 8, err).map(|(lo, addr)| Fetched {
        desc: Descriptor(lo),
        addr,
    })
}

/// Reads the u64 at `offset` in `table` after checking that `len` bytes fit its limit.
fn fetch_from<M: PhysMem + ?Sized>(
    s: &SystemState,
    mem: &mut M,
    table: TableReg,
    offset: u32,
    len: u32,
    err: Exception,
) -> Result<(u64, u64), Exception> {
    if offset + len - 1 > u32::from(table.limit) {
        return Err(err);
    }
    let addr = table.base.wrapping_add(u64::from(offset));
    let addr = if s.long_mode() {
        addr
    } else {
        addr & 0xffff_ffff
    };
    let mut lin = Linear::new(s.paging(false), mem);
    let v = lin.read_u64(addr, true, false)?;
    Ok((v, addr))
}

/// Reads the high 8 bytes of a 16-byte system descriptor at linear `addr`.
pub fn fetch_high<M: PhysMem + ?Sized>(
    s: &SystemState,
    mem: &mut M,
    addr: u64,
) -> Result<u64, Exception> {
    let mut lin = Linear::new(s.paging(false), mem);
    lin.read_u64(addr.wrapping_add(8), true, false)
}

/// Sets the accessed bit of the descriptor at `f.addr` (in memory) if it is clear.
fn mark_accessed<M: PhysMem + ?Sized>(
    s: &SystemState,
    mem: &mut M,
    f: &Fetched,
) -> Result<(), Exception> {
    if f.desc.attr() & ATTR_ACCESSED == 0 {
        let mut lin = Linear::new(s.paging(false), mem);
        // The type byte is byte 5 of the descriptor.
        let byte = ((f.desc.0 >> 40) as u8) | 1;
        lin.write(f.addr.wrapping_add(5), &[byte], true, false)?;
    }
    Ok(())
}

/// Loads DS, ES, FS or GS with `selector` (`mov sreg`, `pop sreg`, `lds`...), in protected or
/// IA-32e mode (SDM MOV, "protected mode"): a null selector loads an unusable register (in
/// 64-bit mode FS and GS keep no base either, as on Intel CPUs); otherwise #GP(selector)
/// beyond the table limit, for system descriptors, execute-only code, or when a data or
/// non-conforming code segment has DPL < max(CPL, RPL); #NP(selector) when not present.
/// Sets the descriptor's accessed bit.
pub fn load_data<M: PhysMem + ?Sized>(
    s: &mut SystemState,
    mem: &mut M,
    reg: Segment,
    selector: u16,
) -> Result<(), Exception> {
    debug_assert!(!matches!(reg, Segment::Cs | Segment::Ss));
    if selector & !3 == 0 {
        *s.seg_mut(reg) = SegmentCache::null(selector);
        return Ok(());
    }
    let f = fetch(s, mem, selector, 0)?;
    let d = f.desc;
    let gp = Exception::gp(u32::from(selector & 0xfffc));
    let a = d.attr();
    if !d.is_code_data() || (d.is_code() && a & ATTR_RW == 0) {
        return Err(gp);
    }
    let conforming_code = d.is_code() && a & ATTR_CE != 0;
    let rpl = (selector & 3) as u8;
    if !conforming_code && (rpl > d.dpl() || s.cpl > d.dpl()) {
        return Err(gp);
    }
    if !d.present() {
        return Err(Exception::np(u32::from(selector & 0xfffc)));
    }
    mark_accessed(s, mem, &f)?;
    let mut c = d.cache(selector);
    c.attr |= ATTR_ACCESSED;
    *s.seg_mut(reg) = c;
    Ok(())
}

/// Loads SS with `selector` (`mov ss`, `pop ss`, `lss`): a null selector is allowed only in
/// 64-bit mode at CPL < 3 with RPL = CPL (else #GP(0)); otherwise #GP(selector) unless RPL =
/// CPL, the segment is writable data and DPL = CPL; #SS(selector) when not present.
pub fn load_ss<M: PhysMem + ?Sized>(
    s: &mut SystemState,
    mem: &mut M,
    selector: u16,
) -> Result<(), Exception> {
    let rpl = (selector & 3) as u8;
    if selector & !3 == 0 {
        if s.in_64bit_mode() && s.cpl < 3 && rpl == s.cpl {
            *s.seg_mut(Segment::Ss) = null_ss(selector);
            return Ok(());
        }
        return Err(Exception::gp(0));
    }
    let gp = Exception::gp(u32::from(selector & 0xfffc));
    if rpl != s.cpl {
        return Err(gp);
    }
    let f = fetch(s, mem, selector, 0)?;
    let d = f.desc;
    if !d.is_code_data() || d.is_code() || d.attr() & ATTR_RW == 0 || d.dpl() != s.cpl {
        return Err(gp);
    }
    if !d.present() {
        return Err(Exception::ss(u32::from(selector & 0xfffc)));
    }
    mark_accessed(s, mem, &f)?;
    let mut c = d.cache(selector);
    c.attr |= ATTR_ACCESSED;
    *s.seg_mut(Segment::Ss) = c;
    Ok(())
}

/// The SS a 64-bit privilege change or null load leaves: selector `selector` (RPL = the new
/// CPL), usable, writable, with DPL = RPL, base 0.
pub fn null_ss(selector: u16) -> SegmentCache {
    SegmentCache {
        selector,
        base: 0,
        limit: 0xffff_ffff,
        attr: ATTR_P
            | ATTR_S
            | ATTR_RW
            | ATTR_ACCESSED
            | ATTR_DB
            | ATTR_G
            | (selector & 3) << ATTR_DPL_SHIFT,
    }
}

/// After a return to the outer privilege level `cpl` (`iret`, far `ret`): DS, ES, FS and GS
/// holding a data or non-conforming code segment with DPL < `cpl` are nulled (SDM IRET and
/// RET), keeping the FS/GS base as 64-bit CPUs do.
pub fn null_segments_above(s: &mut SystemState, cpl: u8) {
    for r in [Segment::Es, Segment::Ds, Segment::Fs, Segment::Gs] {
        let c = s.seg_mut(r);
        let conforming = c.attr & ATTR_CODE != 0 && c.attr & ATTR_CE != 0;
        if c.attr & ATTR_P != 0 && !conforming && c.dpl() < cpl {
            *c = SegmentCache {
                base: c.base,
                ..SegmentCache::null(0)
            };
        }
    }
}

/// The kind of far control transfer that loads CS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarKind {
    /// Far `jmp` or `call` straight to a code segment: the CPL stays.
    JmpCall,
    /// Far `ret` or `iret`: to the same or an outer (numerically higher) privilege, RPL.
    Return,
}

/// Checks a far transfer to `selector` and returns the new CS cache (RPL = the new CPL) and
/// the new CPL, without changing `s` (SDM JMP, CALL, RET, IRET): #GP(0) for a null
/// selector; #GP(selector) beyond the limit, for anything but a code segment (call gates and
/// TSSs included: not supported), for a privilege mismatch (jmp/call: conforming DPL <= CPL,
/// non-conforming RPL <= CPL and DPL = CPL; return: RPL >= CPL, conforming DPL <= RPL,
/// non-conforming DPL = RPL), or for L and D both set in IA-32e mode; #NP(selector) when
/// not present. Sets the accessed bit.
pub fn check_far_cs<M: PhysMem + ?Sized>(
    s: &SystemState,
    mem: &mut M,
    selector: u16,
    kind: FarKind,
) -> Result<(SegmentCache, u8), Exception> {
    if selector & !3 == 0 {
        return Err(Exception::gp(0));
    }
    let gp = Exception::gp(u32::from(selector & 0xfffc));
    let f = fetch(s, mem, selector, 0)?;
    let d = f.desc;
    if !d.is_code() {
        if !d.is_code_data() && d.typ() == SYS_CALL_GATE {
            log::debug!("x86 far transfer through a call gate: not supported, #GP");
        }
        return Err(gp);
    }
    let rpl = (selector & 3) as u8;
    let conforming = d.attr() & ATTR_CE != 0;
    let new_cpl = match kind {
        FarKind::JmpCall => {
            let ok = if conforming {
                d.dpl() <= s.cpl
            } else {
                rpl <= s.cpl && d.dpl() == s.cpl
            };
            if !ok {
                return Err(gp);
            }
            s.cpl
        }
        FarKind::Return => {
            let ok = rpl >= s.cpl
                && if conforming {
                    d.dpl() <= rpl
                } else {
                    d.dpl() == rpl
                };
            if !ok {
                return Err(gp);
            }
            rpl
        }
    };
    if s.long_mode() && d.attr() & (ATTR_L | ATTR_DB) == ATTR_L | ATTR_DB {
        return Err(gp);
    }
    if !d.present() {
        return Err(Exception::np(u32::from(selector & 0xfffc)));
    }
    mark_accessed(s, mem, &f)?;
    let mut c = d.cache((selector & !3) | u16::from(new_cpl));
    c.attr |= ATTR_ACCESSED;
    Ok((c, new_cpl))
}

/// A 64-bit TSS (SDM figure 8-11): the stacks of privilege changes and the interrupt stack
/// table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tss64 {
    /// RSP0..RSP2: the stack pointers of privilege levels 0..2.
    pub rsp: [u64; 3],
    /// IST1..IST7: the interrupt stack table.
    pub ist: [u64; 7],
    /// The offset of the I/O permission bitmap.
    pub iomap_base: u16,
}

/// TSS offset of RSP0.
pub const TSS_RSP0: u32 = 0x04;
/// TSS offset of IST1.
pub const TSS_IST1: u32 = 0x24;
/// TSS offset of the I/O map base.
pub const TSS_IOMAP: u32 = 0x66;
/// The smallest limit of a 64-bit TSS.
pub const TSS_MIN_LIMIT: u32 = 0x67;

/// Reads the u64 at `offset` in the current TSS: #TS(TR selector | `ext`) when it lies
/// beyond TR's limit.
pub fn tss_read<M: PhysMem + ?Sized>(
    s: &SystemState,
    mem: &mut M,
    offset: u32,
    ext: u32,
) -> Result<u64, Exception> {
    if offset + 7 > s.tr.limit {
        return Err(Exception::ts(u32::from(s.tr.selector & 0xfffc) | ext));
    }
    let mut lin = Linear::new(s.paging(false), mem);
    lin.read_u64(s.tr.base.wrapping_add(u64::from(offset)), true, false)
}

/// Reads the whole current 64-bit TSS.
pub fn read_tss<M: PhysMem + ?Sized>(s: &SystemState, mem: &mut M) -> Result<Tss64, Exception> {
    let mut t = Tss64::default();
    for i in 0..3 {
        t.rsp[i] = tss_read(s, mem, TSS_RSP0 + 8 * i as u32, 0)?;
    }
    for i in 0..7 {
        t.ist[i] = tss_read(s, mem, TSS_IST1 + 8 * i as u32, 0)?;
    }
    t.iomap_base = (tss_read(s, mem, TSS_IOMAP - 6, 0)? >> 48) as u16;
    Ok(t)
}

/// `ltr selector` (IA-32e mode): CPL 0 only (#GP(0)); a null selector is #GP(0); otherwise
/// #GP(selector) for an LDT selector, beyond the GDT limit, or anything but an available
/// 64-bit TSS (limit at least 0x67, canonical base); #NP(selector) when not present. Marks
/// the descriptor busy in memory.
pub fn ltr<M: PhysMem + ?Sized>(
    s: &mut SystemState,
    mem: &mut M,
    selector: u16,
) -> Result<(), Exception> {
    if s.cpl != 0 || selector & !3 == 0 {
        return Err(Exception::gp(0));
    }
    let gp = Exception::gp(u32::from(selector & 0xfffc));
    if selector & 4 != 0 {
        return Err(gp);
    }
    let f = fetch(s, mem, selector, 0)?;
    let d = f.desc;
    if d.is_code_data() || d.typ() != SYS_TSS_AVAIL {
        return Err(gp);
    }
    let high = if s.long_mode() {
        fetch_high(s, mem, f.addr)?
    } else {
        0
    };
    let base = d.base() | (high & 0xffff_ffff) << 32;
    if !super::is_canonical(base) || d.limit() < TSS_MIN_LIMIT {
        return Err(gp);
    }
    if !d.present() {
        return Err(Exception::np(u32::from(selector & 0xfffc)));
    }
    let busy = (d.0 >> 40) as u8 | 0x2;
    Linear::new(s.paging(false), mem).write(f.addr.wrapping_add(5), &[busy], true, false)?;
    s.tr = SegmentCache {
        selector,
        base,
        limit: d.limit(),
        attr: d.attr() | 0x2,
    };
    Ok(())
}

/// `lldt selector` (IA-32e mode): CPL 0 only (#GP(0)); a null selector makes the LDT
/// unusable; otherwise #GP(selector) for an LDT selector, beyond the GDT limit, or anything
/// but an LDT descriptor with a canonical base; #NP(selector) when not present.
pub fn lldt<M: PhysMem + ?Sized>(
    s: &mut SystemState,
    mem: &mut M,
    selector: u16,
) -> Result<(), Exception> {
    if s.cpl != 0 {
        return Err(Exception::gp(0));
    }
    if selector & !3 == 0 {
        s.ldtr = SegmentCache::null(selector);
        return Ok(());
    }
    let gp = Exception::gp(u32::from(selector & 0xfffc));
    if selector & 4 != 0 {
        return Err(gp);
    }
    let f = fetch(s, mem, selector, 0)?;
    let d = f.desc;
    if d.is_code_data() || d.typ() != SYS_LDT {
        return Err(gp);
    }
    let high = if s.long_mode() {
        fetch_high(s, mem, f.addr)?
    } else {
        0
    };
    let base = d.base() | (high & 0xffff_ffff) << 32;
    if !super::is_canonical(base) {
        return Err(gp);
    }
    if !d.present() {
        return Err(Exception::np(u32::from(selector & 0xfffc)));
    }
    s.ldtr = SegmentCache {
        selector,
        base,
        limit: d.limit(),
        attr: d.attr(),
    };
    Ok(())
}

/// `lgdt` / `lidt`: loads a descriptor-table register from its memory operand's `limit` and
/// `base` (the caller reads the 10-byte operand). #GP(0) at CPL != 0 and, in 64-bit mode, for
/// a non-canonical base; outside 64-bit mode only 32 bits of base are kept.
pub fn load_table_reg(s: &SystemState, limit: u16, base: u64) -> Result<TableReg, Exception> {
    if s.cpl != 0 {
        return Err(Exception::gp(0));
    }
    if s.in_64bit_mode() {
        if !super::is_canonical(base) {
            return Err(Exception::gp(0));
        }
        Ok(TableReg { base, limit })
    } else {
        Ok(TableReg {
            base: base & 0xffff_ffff,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testmem::machine::{self, *};
    use super::super::{GP, NP, SS};
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, Exception>) -> (u8, Option<u32>) {
        let e = r.expect_err("an exception");
        (e.vector, e.error_code)
    }

    #[test]
    fn descriptors_decode_base_limit_and_attributes() {
        // Flat 4 GiB kernel data: G, D/B, P, DPL 0, writable data.
        let d = Descriptor(0x00cf_9300_0000_ffff);
        assert_eq!(d.base(), 0);
        assert_eq!(d.limit(), 0xffff_ffff);
        assert_eq!(
            d.attr(),
            ATTR_G | ATTR_DB | ATTR_P | ATTR_S | ATTR_RW | ATTR_ACCESSED
        );
        assert_eq!(d.dpl(), 0);
        // Byte granular, base 0x12345678, limit 0xabcde, DPL 3, 64-bit code.
        let d = Descriptor(0x122a_fb34_5678_bcde);
        assert_eq!(d.base(), 0x1234_5678);
        assert_eq!(d.limit(), 0xa_bcde);
        assert_eq!(d.dpl(), 3);
        assert!(d.is_code());
        assert_ne!(d.attr() & ATTR_L, 0);
        assert_eq!(d.attr() & ATTR_G, 0);
        assert!(!d.present() || d.attr() & ATTR_P != 0);
    }

    #[test]
    fn a_null_data_selector_loads_an_unusable_register() {
        let (mut s, _, mut m) = machine::new();
        s.seg_mut(Segment::Fs).base = 0x1234;
        load_data(&mut s, &mut m, Segment::Fs, 3).unwrap();
        assert_eq!(*s.seg(Segment::Fs), SegmentCache::null(3));
    }

    #[test]
    fn loading_a_data_segment_checks_dpl_against_cpl_and_rpl() {
        let (mut s, _, mut m) = machine::new();
        // CPL 3 cannot load kernel data...
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Ds, KDATA)),
            (GP, Some(0x18))
        );
        // ...but can load user data, with any RPL <= 3.
        load_data(&mut s, &mut m, Segment::Ds, UDATA).unwrap();
        assert_eq!(s.seg(Segment::Ds).limit, 0xffff_ffff);
        // At CPL 0 an RPL above the DPL refuses kernel data.
        s.cpl = 0;
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Es, KDATA | 3)),
            (GP, Some(0x18))
        );
        load_data(&mut s, &mut m, Segment::Es, KDATA).unwrap();
    }

    #[test]
    fn readable_code_loads_into_data_registers_execute_only_code_does_not() {
        let (mut s, _, mut m) = machine::new();
        // Conforming readable code skips the privilege check.
        load_data(&mut s, &mut m, Segment::Ds, KCODE_CONF | 3).unwrap();
        s.cpl = 0;
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Ds, KCODE_XO)),
            (GP, Some(0x60))
        );
    }

    #[test]
    fn system_descriptors_and_selectors_past_the_limit_are_gp() {
        let (mut s, _, mut m) = machine::new();
        s.cpl = 0;
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Ds, TSS_SEL)),
            (GP, Some(0x40))
        );
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Ds, 0xa0)),
            (GP, Some(0xa0))
        );
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Ds, 0x98)),
            (GP, Some(0x98)),
            "the 8 bytes must fit the limit 0x9f"
        );
    }

    #[test]
    fn a_not_present_data_segment_is_np_and_sets_no_accessed_bit() {
        let (mut s, _, mut m) = machine::new();
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Gs, UDATA_NP | 3)),
            (NP, Some(0x70))
        );
        assert_eq!(m.get(GDT + 0x70) & (1 << 40), 0);
    }

    #[test]
    fn loading_a_segment_sets_its_accessed_bit_in_memory() {
        let (mut s, _, mut m) = machine::new();
        m.set(GDT + 0x28, 0x00cf_f200_0000_ffff);
        load_data(&mut s, &mut m, Segment::Ds, UDATA).unwrap();
        assert_eq!(m.get(GDT + 0x28), 0x00cf_f300_0000_ffff);
        assert_ne!(s.seg(Segment::Ds).attr & ATTR_ACCESSED, 0);
    }

    #[test]
    fn ti_selects_the_ldt() {
        let (mut s, _, mut m) = machine::new();
        load_data(&mut s, &mut m, Segment::Es, 0x0f).unwrap();
        assert_eq!(s.seg(Segment::Es).selector, 0x0f);
        // Past the LDT's limit (0xf).
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Es, 0x17)),
            (GP, Some(0x14))
        );
        s.ldtr = SegmentCache::null(0);
        assert_eq!(
            err(load_data(&mut s, &mut m, Segment::Es, 0x0f)),
            (GP, Some(0x0c))
        );
    }

    #[test]
    fn ss_must_be_writable_data_at_cpl_with_rpl_cpl() {
        let (mut s, _, mut m) = machine::new();
        load_ss(&mut s, &mut m, UDATA).unwrap();
        assert_eq!(
            err(load_ss(&mut s, &mut m, UDATA & !3)),
            (GP, Some(0x28)),
            "RPL != CPL"
        );
        assert_eq!(
            err(load_ss(&mut s, &mut m, UCODE)),
            (GP, Some(0x30)),
            "code"
        );
        assert_eq!(
            err(load_ss(&mut s, &mut m, UDATA_RO | 3)),
            (GP, Some(0x90)),
            "read-only"
        );
        assert_eq!(
            err(load_ss(&mut s, &mut m, UDATA_NP | 3)),
            (SS, Some(0x70)),
            "not present"
        );
        s.cpl = 0;
        assert_eq!(
            err(load_ss(&mut s, &mut m, UDATA & !3)),
            (GP, Some(0x28)),
            "DPL != CPL"
        );
    }

    #[test]
    fn a_null_ss_is_allowed_only_in_64_bit_mode_below_cpl_3() {
        let (mut s, _, mut m) = machine::new();
        assert_eq!(err(load_ss(&mut s, &mut m, 3)), (GP, Some(0)));
        s.cpl = 0;
        load_ss(&mut s, &mut m, 0).unwrap();
        assert_eq!(s.seg(Segment::Ss).selector, 0);
        assert_eq!(
            err(load_ss(&mut s, &mut m, 1)),
            (GP, Some(0)),
            "RPL must be CPL"
        );
        // In compatibility mode a null SS is #GP(0) at any CPL.
        *s.seg_mut(Segment::Cs) = Descriptor(0x00cf_9b00_0000_ffff).cache(KCODE32);
        assert_eq!(err(load_ss(&mut s, &mut m, 0)), (GP, Some(0)));
    }

    #[test]
    fn far_jumps_stay_at_cpl_and_check_the_code_segment() {
        let (mut s, _, mut m) = machine::new();
        let (cs, cpl) = check_far_cs(&s, &mut m, UCODE32, FarKind::JmpCall).unwrap();
        assert_eq!((cs.selector, cpl), (UCODE32, 3));
        assert_eq!(cs.attr & ATTR_L, 0);
        assert_eq!(
            err(check_far_cs(&s, &mut m, KCODE, FarKind::JmpCall)),
            (GP, Some(0x10))
        );
        assert_eq!(
            err(check_far_cs(&s, &mut m, 0, FarKind::JmpCall)),
            (GP, Some(0))
        );
        assert_eq!(
            err(check_far_cs(&s, &mut m, UDATA, FarKind::JmpCall)),
            (GP, Some(0x28))
        );
        // Conforming code of DPL 0 is reachable from CPL 3 and runs at CPL 3.
        let (cs, cpl) = check_far_cs(&s, &mut m, KCODE_CONF, FarKind::JmpCall).unwrap();
        assert_eq!((cs.selector, cpl), (KCODE_CONF | 3, 3));
        s.cpl = 0;
        assert_eq!(
            err(check_far_cs(&s, &mut m, KCODE_NP, FarKind::JmpCall)),
            (NP, Some(0x38))
        );
        assert_eq!(
            err(check_far_cs(&s, &mut m, KCODE_LD, FarKind::JmpCall)),
            (GP, Some(0x88))
        );
    }

    #[test]
    fn call_gates_are_not_supported_and_gp() {
        let (s, _, mut m) = machine::new();
        assert_eq!(
            err(check_far_cs(&s, &mut m, CALL_GATE | 3, FarKind::JmpCall)),
            (GP, Some(0x78))
        );
    }

    #[test]
    fn far_returns_go_to_the_same_or_an_outer_level() {
        let (mut s, _, mut m) = machine::new();
        s.cpl = 0;
        let (cs, cpl) = check_far_cs(&s, &mut m, UCODE, FarKind::Return).unwrap();
        assert_eq!((cs.selector, cpl), (UCODE, 3));
        assert_eq!(
            err(check_far_cs(&s, &mut m, UCODE & !3, FarKind::Return)),
            (GP, Some(0x30)),
            "DPL != RPL"
        );
        s.cpl = 3;
        assert_eq!(
            err(check_far_cs(&s, &mut m, KCODE, FarKind::Return)),
            (GP, Some(0x10)),
            "inner"
        );
    }

    #[test]
    fn ltr_loads_an_available_tss_and_marks_it_busy() {
        let (mut s, _, mut m) = machine::new();
        // The machine ran ltr already.
        assert_eq!(s.tr.selector, TSS_SEL);
        assert_eq!(s.tr.base, TSS);
        assert_eq!(s.tr.limit, 0x67);
        assert_eq!((m.get(GDT + 0x40) >> 40) & 0xf, u64::from(SYS_TSS_BUSY));
        s.cpl = 0;
        assert_eq!(
            err(ltr(&mut s, &mut m, TSS_SEL)),
            (GP, Some(0x40)),
            "already busy"
        );
        assert_eq!(err(ltr(&mut s, &mut m, KDATA)), (GP, Some(0x18)));
        assert_eq!(err(ltr(&mut s, &mut m, 0)), (GP, Some(0)));
        s.cpl = 3;
        assert_eq!(
            err(ltr(&mut s, &mut m, TSS_SEL)),
            (GP, Some(0)),
            "CPL 0 only"
        );
    }

    #[test]
    fn the_64_bit_tss_holds_rsp0_ist1_and_the_io_map_base() {
        let (s, _, mut m) = machine::new();
        let t = read_tss(&s, &mut m).unwrap();
        assert_eq!(t.rsp, [RSP0, 0, 0]);
        assert_eq!(t.ist, [IST1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(t.iomap_base, 0x68);
        assert_eq!(
            err(tss_read(&s, &mut m, 0x64, 1)),
            (super::super::TS, Some(0x41))
        );
    }

    #[test]
    fn lldt_takes_ldt_descriptors_only() {
        let (mut s, _, mut m) = machine::new();
        s.cpl = 0;
        assert_eq!(s.ldtr.base, 0x8000);
        assert_eq!(err(lldt(&mut s, &mut m, TSS_SEL)), (GP, Some(0x40)));
        lldt(&mut s, &mut m, 0).unwrap();
        assert_eq!(s.ldtr.attr, 0);
    }

    #[test]
    fn lgdt_and_lidt_need_cpl_0_and_a_canonical_base_in_64_bit_mode() {
        let (mut s, _, _) = machine::new();
        assert_eq!(err(load_table_reg(&s, 0xfff, 0x1000)), (GP, Some(0)));
        s.cpl = 0;
        *s.seg_mut(Segment::Cs) = Descriptor(0x00af_9b00_0000_ffff).cache(KCODE);
        assert_eq!(
            err(load_table_reg(&s, 0xfff, 0x0000_8000_0000_0000)),
            (GP, Some(0))
        );
        let t = load_table_reg(&s, 0xfff, 0xffff_fe00_0000_0000).unwrap();
        assert_eq!((t.base, t.limit), (0xffff_fe00_0000_0000, 0xfff));
        *s.seg_mut(Segment::Cs) = Descriptor(0x00cf_9b00_0000_ffff).cache(KCODE32);
        assert_eq!(
            load_table_reg(&s, 7, 0x1_2345_6789).unwrap().base,
            0x2345_6789
        );
    }
}
