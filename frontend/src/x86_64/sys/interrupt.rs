//! Event delivery and the privileged control transfers of IA-32e mode (SDM vol. 3 chapter
//! 6, instruction pages of IRET, SYSCALL, SYSRET, SWAPGS).
//!
//! [`deliver`] takes an exception or interrupt through the 64-bit IDT: the 16-byte gate,
//! its checks, the stack switch (RSP0..2 from the TSS on a privilege change, or an IST
//! stack), 16-byte alignment, the frame SS, RSP, RFLAGS, CS, RIP and the error code, then
//! the new CS, SS, CPL, RIP, RSP and RFLAGS. A fault while delivering is handled as the SDM's
//! table 6-5 says: benign first events let the second one through, contributory-on-
//! contributory and page-fault-on-contributory-or-page-fault become #DF, and anything
//! during #DF is a triple fault (a shutdown, [`DeliveryError::TripleFault`]).
//!
//! The caller prepares [`Regs::rip`]: the faulting instruction for faults, the next one for
//! traps, software interrupts and external interrupts; and [`Regs::rflags`]: complete
//! (lazy flags merged), with RF set by the caller for faults where the SDM wants it in the
//! saved image. The frame is written only once every check has passed and every stack
//! byte is known to be writable, so a nested fault leaves memory and state as they were.
//!
//! Not implemented (documented gaps): delivery outside IA-32e mode (legacy protected-mode
//! 32-bit gates, real-mode IVT: [`DeliveryError::NotLongMode`]), task gates, and iret
//! outside IA-32e mode.

use super::msr::EFER_SCE;
use super::seg::{
    self, FarKind, Segment, SegmentCache, ATTR_ACCESSED, ATTR_CE, ATTR_CODE, ATTR_DB,
    ATTR_DPL_SHIFT, ATTR_G, ATTR_L, ATTR_P, ATTR_RW, ATTR_S, SYS_INT_GATE, SYS_TRAP_GATE,
};
use super::{is_canonical, Exception, Linear, PhysMem, SystemState, DF, GP, NP, PF, SS, TS};

// --- RFLAGS bits.
/// Carry.
pub const RFLAGS_CF: u64 = 1 << 0;
/// Reserved, always 1.
pub const RFLAGS_FIXED: u64 = 1 << 1;
/// Trap (single step).
pub const RFLAGS_TF: u64 = 1 << 8;
/// Interrupt enable.
pub const RFLAGS_IF: u64 = 1 << 9;
/// I/O privilege level (2 bits).
pub const RFLAGS_IOPL: u64 = 3 << 12;
/// Nested task.
pub const RFLAGS_NT: u64 = 1 << 14;
/// Resume (suppresses instruction breakpoints once).
pub const RFLAGS_RF: u64 = 1 << 16;
/// Virtual-8086 mode.
pub const RFLAGS_VM: u64 = 1 << 17;
/// Alignment check / SMAP override.
pub const RFLAGS_AC: u64 = 1 << 18;
/// Virtual interrupt flag.
pub const RFLAGS_VIF: u64 = 1 << 19;
/// Virtual interrupt pending.
pub const RFLAGS_VIP: u64 = 1 << 20;
/// CPUID available.
pub const RFLAGS_ID: u64 = 1 << 21;
/// The arithmetic flags and the others any privilege may change with iret/popf.
const RFLAGS_USER: u64 = 0x0cd5 | RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_AC | RFLAGS_ID;
/// The bits sysret loads from R11 (all defined flags but RF and VM).
const RFLAGS_SYSRET: u64 = 0x3c_7fd7;

/// The general-purpose state events read and write (the rest of the CPU is untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs {
    /// The instruction pointer (see the module documentation for which one).
    pub rip: u64,
    /// The stack pointer.
    pub rsp: u64,
    /// RFLAGS, complete.
    pub rflags: u64,
    /// RCX (syscall/sysret).
    pub rcx: u64,
    /// R11 (syscall/sysret).
    pub r11: u64,
}

/// Where an event comes from; it decides the DPL check and the EXT bit of error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An exception the processor detected (faults, traps, aborts; int1/icebp too).
    Exception,
    /// A maskable external interrupt (INTR).
    External,
    /// A non-maskable interrupt.
    Nmi,
    /// `int n`, `int3`, `into`: the gate's DPL must be at least CPL.
    Software,
}

/// An event to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The vector.
    pub vector: u8,
    /// Where it comes from.
    pub kind: EventKind,
    /// The error code to push (for exceptions that have one).
    pub error_code: Option<u32>,
    /// The page-fault address to load into CR2 (for #PF).
    pub cr2: Option<u64>,
}

impl Event {
    /// An external interrupt with `vector`.
    pub fn external(vector: u8) -> Event {
        Event {
            vector,
            kind: EventKind::External,
            error_code: None,
            cr2: None,
        }
    }

    /// `int vector`.
    pub fn software(vector: u8) -> Event {
        Event {
            vector,
            kind: EventKind::Software,
            error_code: None,
            cr2: None,
        }
    }
}

impl From<Exception> for Event {
    fn from(e: Exception) -> Event {
        Event {
            vector: e.vector,
            kind: EventKind::Exception,
            error_code: e.error_code,
            cr2: e.cr2,
        }
    }
}

/// Why an event could not be delivered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// A fault while delivering #DF: the processor shuts down.
    #[error("triple fault (shutdown)")]
    TripleFault,
    /// Delivery outside IA-32e mode is not implemented.
    #[error("event delivery outside IA-32e mode is not implemented")]
    NotLongMode,
}

/// The SDM's classes of exceptions for double faults (table 6-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

fn class(vector: u8, kind: EventKind) -> Class {
    if kind != EventKind::Exception {
        return Class::Benign;
    }
    match vector {
        0 | TS | NP | SS | GP => Class::Contributory,
        PF => Class::PageFault,
        DF => Class::DoubleFault,
        _ => Class::Benign,
    }
}

/// Delivers `ev` (SDM 6.14 in IA-32e mode), handling faults during delivery as double and
/// triple faults. On success `regs` and `s` hold the handler's state and the frame is on
/// its stack; CR2 holds the address of the last page fault detected.
pub fn deliver<M: PhysMem + ?Sized>(
    regs: &mut Regs,
    s: &mut SystemState,
    mem: &mut M,
    ev: Event,
) -> Result<(), DeliveryError> {
    if !s.long_mode() {
        return Err(DeliveryError::NotLongMode);
    }
    let mut ev = ev;
    if let Some(cr2) = ev.cr2 {
        s.cr2 = cr2;
    }
    loop {
        let nested = match deliver_once(regs, s, mem, &ev) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        log::debug!(
            "x86: exception {} while delivering vector {}",
            nested.vector,
            ev.vector
        );
        if let Some(cr2) = nested.cr2 {
            s.cr2 = cr2;
        }
        let first = class(ev.vector, ev.kind);
        let second = class(nested.vector, EventKind::Exception);
        ev = match (first, second) {
            (Class::DoubleFault, _) => return Err(DeliveryError::TripleFault),
            (Class::Contributory, Class::Contributory)
            | (Class::PageFault, Class::Contributory | Class::PageFault) => Event {
                vector: DF,
                kind: EventKind::Exception,
                error_code: Some(0),
                cr2: None,
            },
            _ => Event::from(nested),
        };
    }
}

/// One attempt at delivering `ev`; a nested exception comes back as the error.
fn deliver_once<M: PhysMem + ?Sized>(
    regs: &mut Regs,
    s: &mut SystemState,
    mem: &mut M,
    ev: &Event,
) -> Result<(), Exception> {
    let ext = u32::from(ev.kind != EventKind::Software);
    let vec_code = u32::from(ev.vector) * 8 + 2;
    let idt_gp = Exception::gp(vec_code | ext);

    // The 16-byte gate.
    let off = u64::from(ev.vector) * 16;
    if off + 15 > u64::from(s.idtr.limit) {
        return Err(idt_gp);
    }
    let (lo, hi) = {
        let mut lin = Linear::new(s.paging(false), mem);
        let addr = s.idtr.base.wrapping_add(off);
        (
            lin.read_u64(addr, true, false)?,
            lin.read_u64(addr.wrapping_add(8), true, false)?,
        )
    };
    let typ = ((lo >> 40) & 0x1f) as u16;
    let gate_dpl = ((lo >> 45) & 3) as u8;
    if typ != SYS_INT_GATE && typ != SYS_TRAP_GATE {
        return Err(idt_gp);
    }
    if ev.kind == EventKind::Software && gate_dpl < s.cpl {
        return Err(Exception::gp(vec_code));
    }
    if lo & (1 << 47) == 0 {
        return Err(Exception::np(vec_code | ext));
    }
    let selector = (lo >> 16) as u16;
    let target = (lo & 0xffff) | ((lo >> 48) & 0xffff) << 16 | (hi & 0xffff_ffff) << 32;
    let ist = ((lo >> 32) & 7) as u32;

    // The target code segment.
    if selector & !3 == 0 {
        return Err(Exception::gp(ext));
    }
    let sel_code = u32::from(selector & 0xfffc) | ext;
    let f = seg::fetch(s, mem, selector, ext)?;
    let d = f.desc;
    if !d.is_code() || d.dpl() > s.cpl {
        return Err(Exception::gp(sel_code));
    }
    if !d.present() {
        return Err(Exception::np(sel_code));
    }
    if d.attr() & (ATTR_L | ATTR_DB) != ATTR_L {
        return Err(Exception::gp(sel_code));
    }
    let new_cpl = if d.attr() & ATTR_CE != 0 {
        s.cpl
    } else {
        d.dpl()
    };

    // The stack.
    let new_rsp = if ist != 0 {
        seg::tss_read(s, mem, seg::TSS_IST1 + 8 * (ist - 1), ext)?
    } else if new_cpl < s.cpl {
        seg::tss_read(s, mem, seg::TSS_RSP0 + 8 * u32::from(new_cpl), ext)?
    } else {
        regs.rsp
    };
    if !is_canonical(new_rsp) {
        return Err(Exception::ss(ext));
    }
    if !is_canonical(target) {
        return Err(Exception::gp(ext));
    }
    let new_rsp = new_rsp & !0xf;

    // The frame, lowest address first.
    let mut frame: Vec<u64> = Vec::with_capacity(6);
    if let Some(code) = ev.error_code {
        frame.push(u64::from(code));
    }
    frame.extend([
        regs.rip,
        u64::from(s.seg(Segment::Cs).selector),
        regs.rflags,
        regs.rsp,
        u64::from(s.seg(Segment::Ss).selector),
    ]);
    let top = new_rsp.wrapping_sub(8 * frame.len() as u64);
    let bytes: Vec<u8> = frame.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut paging = s.paging(regs.rflags & RFLAGS_AC != 0);
    paging.cpl = new_cpl;
    let mut lin = Linear::new(paging, mem);
    let pieces = lin.prepare_write(top, bytes.len(), false, true)?;
    lin.commit(&pieces, &bytes);
    if d.attr() & ATTR_ACCESSED == 0 {
        // The accessed bit of the new CS's descriptor (byte 5).
        let byte = ((d.0 >> 40) as u8) | 1;
        Linear::new(s.paging(false), mem).write(f.addr.wrapping_add(5), &[byte], true, false)?;
    }

    // The handler's state.
    if new_cpl != s.cpl {
        *s.seg_mut(Segment::Ss) = seg::null_ss(u16::from(new_cpl));
    }
    let mut cs = d.cache((selector & !3) | u16::from(new_cpl));
    cs.attr |= ATTR_ACCESSED;
    *s.seg_mut(Segment::Cs) = cs;
    s.cpl = new_cpl;
    regs.rsp = top;
    regs.rip = target;
    regs.rflags &= !(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM);
    if typ == SYS_INT_GATE {
        regs.rflags &= !RFLAGS_IF;
    }
    Ok(())
}

/// `iretq` in IA-32e mode: pops RIP, CS, RFLAGS, RSP, SS and returns to the same or an
/// outer privilege level (SDM IRET, "IA-32e mode"). #GP(0) with RFLAGS.NT (no task returns
/// in IA-32e mode); CS checked as a far return ([`seg::check_far_cs`]); a non-canonical
/// RIP for a 64-bit CS, or one beyond a compatibility-mode CS limit, is #GP(0). A null SS
/// is allowed only back to 64-bit code below CPL 3 (else #GP(0)); otherwise SS must have
/// RPL = DPL = the new CPL and be writable data (#GP(selector)), and present
/// (#SS(selector)). IOPL, VIF and VIP change only at CPL 0, IF only at CPL <= IOPL. On a
/// return to an outer level DS, ES, FS and GS that the new CPL may not use are nulled
/// (their FS/GS base is kept). Outside IA-32e mode: #GP(0) (not implemented).
pub fn iretq<M: PhysMem + ?Sized>(
    regs: &mut Regs,
    s: &mut SystemState,
    mem: &mut M,
) -> Result<(), Exception> {
    if !s.long_mode() {
        log::debug!("x86: iret outside IA-32e mode is not implemented");
        return Err(Exception::gp(0));
    }
    if regs.rflags & RFLAGS_NT != 0 {
        return Err(Exception::gp(0));
    }
    let mut popped = [0u64; 5];
    {
        let mut lin = Linear::new(s.paging(regs.rflags & RFLAGS_AC != 0), mem);
        for (i, v) in popped.iter_mut().enumerate() {
            *v = lin.read_u64(regs.rsp.wrapping_add(8 * i as u64), false, true)?;
        }
    }
    let [new_rip, cs_sel, new_flags, new_rsp, ss_sel] = popped;
    let (cs_sel, ss_sel) = (cs_sel as u16, ss_sel as u16);
    let (cs, new_cpl) = seg::check_far_cs(s, mem, cs_sel, FarKind::Return)?;
    let to64 = cs.attr & ATTR_L != 0;
    if (to64 && !is_canonical(new_rip)) || (!to64 && new_rip > u64::from(cs.limit)) {
        return Err(Exception::gp(0));
    }
    let ss = if ss_sel & !3 == 0 {
        if !to64 || new_cpl == 3 {
            return Err(Exception::gp(0));
        }
        seg::null_ss(ss_sel)
    } else {
        let gp = Exception::gp(u32::from(ss_sel & 0xfffc));
        if (ss_sel & 3) as u8 != new_cpl {
            return Err(gp);
        }
        let f = seg::fetch(s, mem, ss_sel, 0)?;
        let d = f.desc;
        if !d.is_code_data() || d.is_code() || d.attr() & ATTR_RW == 0 || d.dpl() != new_cpl {
            return Err(gp);
        }
        if !d.present() {
            return Err(Exception::ss(u32::from(ss_sel & 0xfffc)));
        }
        let mut c = d.cache(ss_sel);
        c.attr |= ATTR_ACCESSED;
        c
    };

    let cpl = s.cpl;
    let iopl = ((regs.rflags & RFLAGS_IOPL) >> 12) as u8;
    let mut mask = RFLAGS_USER;
    if cpl == 0 {
        mask |= RFLAGS_IOPL | RFLAGS_VIF | RFLAGS_VIP;
    }
    if cpl <= iopl {
        mask |= RFLAGS_IF;
    }
    regs.rflags = (regs.rflags & !mask) | (new_flags & mask) | RFLAGS_FIXED;
    regs.rflags &= !RFLAGS_VM;
    regs.rip = new_rip;
    regs.rsp = new_rsp;
    *s.seg_mut(Segment::Cs) = cs;
    *s.seg_mut(Segment::Ss) = ss;
    s.cpl = new_cpl;
    if new_cpl > cpl {
        for r in [Segment::Es, Segment::Ds, Segment::Fs, Segment::Gs] {
            let c = s.seg_mut(r);
            let code = c.attr & ATTR_CODE != 0;
            let conforming = code && c.attr & ATTR_CE != 0;
            if c.attr & ATTR_P != 0 && !conforming && c.dpl() < new_cpl {
                *c = SegmentCache {
                    base: c.base,
                    ..SegmentCache::null(0)
                };
            }
        }
    }
    Ok(())
}

/// The flat CS or SS syscall and sysret load: base 0, limit 4 GiB, `dpl`.
fn flat(selector: u16, dpl: u8, code64: bool, code32: bool) -> SegmentCache {
    let mut attr = ATTR_P | ATTR_S | ATTR_RW | ATTR_ACCESSED | ATTR_G;
    attr |= u16::from(dpl) << ATTR_DPL_SHIFT;
    if code64 || code32 {
        attr |= ATTR_CODE;
    }
    if code64 {
        attr |= ATTR_L;
    } else {
        attr |= ATTR_DB;
    }
    SegmentCache {
        selector,
        base: 0,
        limit: 0xffff_ffff,
        attr,
    }
}

/// `syscall` (SDM SYSCALL): #UD unless EFER.SCE and 64-bit mode (Intel CPUs refuse it in
/// compatibility mode). RCX gets the return address (`regs.rip`, the next instruction), R11
/// RFLAGS; RFLAGS loses the IA32_FMASK bits and RF; CS = STAR[47:32] and SS = that + 8, flat,
/// at CPL 0; RIP = IA32_LSTAR.
pub fn syscall(regs: &mut Regs, s: &mut SystemState) -> Result<(), Exception> {
    if s.msrs.efer & EFER_SCE == 0 || !s.in_64bit_mode() {
        return Err(Exception::ud());
    }
    let sel = (s.msrs.star >> 32) as u16 & 0xfffc;
    regs.rcx = regs.rip;
    regs.r11 = regs.rflags & !RFLAGS_RF;
    regs.rip = s.msrs.lstar;
    regs.rflags = (regs.rflags & !s.msrs.fmask & !RFLAGS_RF) | RFLAGS_FIXED;
    *s.seg_mut(Segment::Cs) = flat(sel, 0, true, false);
    *s.seg_mut(Segment::Ss) = flat(sel.wrapping_add(8), 0, false, false);
    s.cpl = 0;
    Ok(())
}

/// `sysret` (SDM SYSRET), `rex_w` for the 64-bit form: #UD unless EFER.SCE and 64-bit mode;
/// #GP(0) at CPL != 0, and (Intel) for a non-canonical RCX in the 64-bit form, before any
/// state changes. RIP = RCX (ECX for the 32-bit form), RFLAGS = R11 without RF and VM; CS =
/// STAR[63:48] + 16 (64-bit) or STAR[63:48] (32-bit), SS = STAR[63:48] + 8, RPL 3, flat, at
/// CPL 3.
pub fn sysret(regs: &mut Regs, s: &mut SystemState, rex_w: bool) -> Result<(), Exception> {
    if s.msrs.efer & EFER_SCE == 0 || !s.in_64bit_mode() {
        return Err(Exception::ud());
    }
    if s.cpl != 0 || (rex_w && !is_canonical(regs.rcx)) {
        return Err(Exception::gp(0));
    }
    let base = (s.msrs.star >> 48) as u16;
    regs.rip = if rex_w {
        regs.rcx
    } else {
        regs.rcx & 0xffff_ffff
    };
    regs.rflags = (regs.r11 & RFLAGS_SYSRET) | RFLAGS_FIXED;
    let cs_sel = if rex_w { base.wrapping_add(16) } else { base } | 3;
    *s.seg_mut(Segment::Cs) = flat(cs_sel, 3, rex_w, !rex_w);
    *s.seg_mut(Segment::Ss) = flat(base.wrapping_add(8) | 3, 3, false, false);
    s.cpl = 3;
    Ok(())
}

/// `swapgs` (SDM SWAPGS): #UD outside 64-bit mode, #GP(0) at CPL != 0; exchanges the GS base
/// with IA32_KERNEL_GS_BASE.
pub fn swapgs(s: &mut SystemState) -> Result<(), Exception> {
    if !s.in_64bit_mode() {
        return Err(Exception::ud());
    }
    if s.cpl != 0 {
        return Err(Exception::gp(0));
    }
    let gs = s.seg(Segment::Gs).base;
    s.seg_mut(Segment::Gs).base = s.msrs.kernel_gs_base;
    s.msrs.kernel_gs_base = gs;
    Ok(())
}
