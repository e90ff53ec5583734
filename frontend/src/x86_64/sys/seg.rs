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
