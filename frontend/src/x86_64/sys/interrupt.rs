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
    let pieces = Linear::new(paging, mem).prepare_write(top, bytes.len(), false, true)?;
    if d.attr() & ATTR_ACCESSED == 0 {
        // The accessed bit of the new CS's descriptor (byte 5).
        let byte = ((d.0 >> 40) as u8) | 1;
        Linear::new(s.paging(false), mem).write(f.addr.wrapping_add(5), &[byte], true, false)?;
    }
    Linear::new(paging, mem).commit(&pieces, &bytes);

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
/// (their FS/GS base is kept). A popped VM flag at CPL 0 is #GP(0) (no virtual-8086 mode in
/// IA-32e mode). Outside IA-32e mode: #GP(0) (not implemented).
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
    // Virtual-8086 mode does not exist in IA-32e mode; only CPL 0 may ask for it.
    if s.cpl == 0 && new_flags & RFLAGS_VM != 0 {
        return Err(Exception::gp(0));
    }
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
        seg::null_segments_above(s, new_cpl);
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
/// RFLAGS; RFLAGS loses the IA32_FMASK bits and RF; CS = STAR bits 47:32 and SS = that + 8, flat,
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
/// state changes. RIP = RCX (ECX for the 32-bit form), RFLAGS = R11 without RF and VM;
/// with B = STAR bits 63:48, CS = B + 16 (64-bit) or B (32-bit) and SS = B + 8, RPL 3, flat,
/// at CPL 3.
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

#[cfg(test)]
mod tests {
    use super::super::testmem::machine::{self, *};
    use super::super::testmem::TestMem;
    use super::super::{SegmentCache, BP, NMI, UD};
    use super::*;

    const INT: u64 = 0xe;
    const TRAP: u64 = 0xf;
    /// Where the iretq tests put their frames.
    const FRAME: u64 = 0x20_0800;

    /// The eight-byte words at `addr`.
    fn words(m: &TestMem, addr: u64, n: usize) -> Vec<u64> {
        (0..n).map(|i| m.get(addr + 8 * i as u64)).collect()
    }

    fn pf(code: u32, addr: u64) -> Event {
        Event::from(Exception::pf(code, addr))
    }

    #[test]
    fn an_exception_from_ring_3_switches_to_rsp0_and_pushes_ss_rsp_rflags_cs_rip_error() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, PF, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, pf(0x6, 0x20_5000)).unwrap();
        // Six words below RSP0 (already 16-byte aligned).
        assert_eq!(r.rsp, RSP0 - 48);
        assert_eq!(
            words(&m, RSP0 - 48, 6),
            [
                0x6,
                USER_RIP,
                u64::from(UCODE),
                RFLAGS_FIXED | RFLAGS_IF | RFLAGS_CF,
                USER_RSP,
                u64::from(UDATA)
            ]
        );
        assert_eq!(r.rip, HANDLER + u64::from(PF) * 16);
        assert_eq!(s.cpl, 0);
        assert_eq!(s.seg(Segment::Cs).selector, KCODE);
        assert_ne!(s.seg(Segment::Cs).attr & ATTR_L, 0);
        assert_eq!(
            s.seg(Segment::Ss).selector,
            0,
            "SS is null with RPL = new CPL"
        );
        assert_eq!(s.cr2, 0x20_5000);
        assert_eq!(
            r.rflags,
            RFLAGS_FIXED | RFLAGS_CF,
            "an interrupt gate clears IF"
        );
        // The frame bytes, little-endian, exactly.
        let mut b = [0u8; 16];
        m.read(RSP0 - 40, &mut b);
        assert_eq!(
            b,
            [0x34, 0x12, 0x40, 0, 0, 0, 0, 0, 0x33, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn an_ist_gate_uses_its_stack_aligned_to_16_even_without_privilege_change() {
        let (mut s, mut r, mut m) = machine::new();
        m.write(TSS + 0x24, &(IST1 + 8).to_le_bytes());
        gate(&mut m, NMI, INT, 0, 1, true);
        let ev = Event {
            vector: NMI,
            kind: EventKind::Nmi,
            error_code: None,
            cr2: None,
        };
        deliver(&mut r, &mut s, &mut m, ev).unwrap();
        assert_eq!(
            r.rsp,
            IST1 - 40,
            "IST1 + 8 aligned down to IST1, five words"
        );
        assert_eq!(m.get(IST1 - 8), u64::from(UDATA));
        // Again from ring 0: still the IST stack, not the current one.
        let kernel_rsp = r.rsp - 0x100;
        r.rsp = kernel_rsp;
        deliver(&mut r, &mut s, &mut m, ev).unwrap();
        assert_eq!(r.rsp, IST1 - 40);
        assert_eq!(m.get(IST1 - 16), kernel_rsp);
    }

    #[test]
    fn without_privilege_change_the_current_stack_is_aligned_and_ss_pushed() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, 0x30, INT, 0, 0, true);
        s.cpl = 0;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_9b00_0000_ffff).cache(KCODE);
        *s.seg_mut(Segment::Ss) = seg::Descriptor(0x00cf_9300_0000_ffff).cache(KDATA);
        r.rsp = 0x8808;
        deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
        assert_eq!(r.rsp, 0x8800 - 40);
        assert_eq!(
            words(&m, r.rsp, 5),
            [
                USER_RIP,
                u64::from(KCODE),
                RFLAGS_FIXED | RFLAGS_IF | RFLAGS_CF,
                0x8808,
                u64::from(KDATA)
            ]
        );
        assert_eq!(s.seg(Segment::Ss).selector, KDATA, "SS unchanged");
    }

    #[test]
    fn a_trap_gate_leaves_if_set_both_clear_tf_nt_rf() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, BP, TRAP, 3, 0, true);
        r.rflags |= RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_AC;
        deliver(&mut r, &mut s, &mut m, Event::software(BP)).unwrap();
        assert_eq!(r.rflags, RFLAGS_FIXED | RFLAGS_IF | RFLAGS_CF | RFLAGS_AC);
        assert_eq!(
            m.get(RSP0 - 24),
            RFLAGS_FIXED | RFLAGS_IF | RFLAGS_CF | RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_AC,
            "the pushed image is the old RFLAGS"
        );
    }

    #[test]
    fn software_interrupts_need_gate_dpl_at_least_cpl() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, 0x80, INT, 0, 0, true);
        gate(&mut m, GP, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::software(0x80)).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(GP) * 16, "#GP delivered instead");
        assert_eq!(m.get(r.rsp), 0x80 * 8 + 2, "IDT bit set, EXT clear");
        // Hardware events ignore the gate's DPL.
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, 0x80, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::external(0x80)).unwrap();
        assert_eq!(r.rip, HANDLER + 0x80 * 16);
    }

    #[test]
    fn a_not_present_gate_is_np_and_a_bad_type_is_gp_with_idt_and_ext_bits() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, 0x30, INT, 0, 0, false);
        gate(&mut m, NP, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(NP) * 16);
        assert_eq!(m.get(r.rsp), 0x30 * 8 + 2 + 1);

        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, 0x31, 0xc, 0, 0, true); // a call gate in the IDT
        gate(&mut m, GP, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::external(0x31)).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(GP) * 16);
        assert_eq!(m.get(r.rsp), 0x31 * 8 + 2 + 1);
    }

    #[test]
    fn a_vector_past_the_idt_limit_is_gp() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, GP, INT, 0, 0, true);
        s.idtr.limit = 0x30 * 16 + 14; // one byte short of gate 0x30
        deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
        assert_eq!(m.get(r.rsp), 0x30 * 8 + 3);
    }

    #[test]
    fn the_target_code_segment_is_checked() {
        for (sel, vector, code) in [
            (KCODE_NP, NP, 0x38 + 1),
            (KDATA, GP, 0x18 + 1),
            (KCODE32, GP, 0x08 + 1),
            (0, GP, 1),
        ] {
            let (mut s, mut r, mut m) = machine::new();
            gate_to(&mut m, 0x30, sel, HANDLER, INT, 0, 0, true);
            gate(&mut m, NP, INT, 0, 0, true);
            gate(&mut m, GP, INT, 0, 0, true);
            deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
            assert_eq!(r.rip, HANDLER + u64::from(vector) * 16, "selector {sel:#x}");
            assert_eq!(m.get(r.rsp), code, "selector {sel:#x}");
        }
    }

    #[test]
    fn a_non_canonical_handler_is_gp() {
        let (mut s, mut r, mut m) = machine::new();
        gate_to(&mut m, 0x30, KCODE, 0x0000_8000_0000_0000, INT, 0, 0, true);
        gate(&mut m, GP, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(GP) * 16);
        assert_eq!(m.get(r.rsp), 1);
    }

    #[test]
    fn a_page_fault_while_delivering_a_page_fault_is_a_double_fault() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, PF, INT, 0, 0, true);
        gate(&mut m, DF, INT, 0, 1, true);
        // RSP0 points at unmapped memory (PD entry 3 is absent).
        m.write(TSS + 4, &0x80_0000u64.to_le_bytes());
        let before = m.get(0x7f_fff8);
        deliver(&mut r, &mut s, &mut m, pf(0x4, 0x20_5000)).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(DF) * 16);
        assert_eq!(r.rsp, IST1 - 48);
        assert_eq!(m.get(r.rsp), 0, "#DF pushes error code 0");
        assert_eq!(
            m.get(r.rsp + 8),
            USER_RIP,
            "the frame is the interrupted user context"
        );
        assert_eq!(
            s.cr2, 0x7f_ffd0,
            "CR2 holds the last page fault: the frame's address"
        );
        assert_eq!(m.get(0x7f_fff8), before);
    }

    #[test]
    fn a_contributory_fault_while_delivering_one_is_a_double_fault() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, GP, INT, 0, 0, false); // #GP's gate is not present: #NP
        gate(&mut m, NP, INT, 0, 0, true);
        gate(&mut m, DF, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::from(Exception::gp(0))).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(DF) * 16);
    }

    #[test]
    fn a_benign_exception_lets_a_contributory_one_through() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, UD, INT, 0, 0, false);
        gate(&mut m, NP, INT, 0, 0, true);
        gate(&mut m, DF, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::from(Exception::ud())).unwrap();
        assert_eq!(r.rip, HANDLER + u64::from(NP) * 16);
    }

    #[test]
    fn a_fault_while_delivering_a_double_fault_shuts_down() {
        let (mut s, mut r, mut m) = machine::new();
        gate(&mut m, PF, INT, 0, 0, false);
        gate(&mut m, NP, INT, 0, 0, false);
        // #PF → #NP (gate absent) → #DF (gate absent too) → #NP → shutdown.
        assert_eq!(
            deliver(&mut r, &mut s, &mut m, pf(0, 0x1000)),
            Err(DeliveryError::TripleFault)
        );
    }

    #[test]
    fn delivery_outside_ia32e_mode_is_reported_not_guessed() {
        let (mut s, mut r, mut m) = machine::new();
        s.msrs.efer = 0;
        assert_eq!(
            deliver(&mut r, &mut s, &mut m, Event::external(0x30)),
            Err(DeliveryError::NotLongMode)
        );
    }

    #[test]
    fn iretq_returns_to_ring_3_restoring_the_interrupted_context() {
        let (mut s, mut r, mut m) = machine::new();
        let (s0, r0) = (s.clone(), r);
        gate(&mut m, 0x30, INT, 0, 0, true);
        deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
        iretq(&mut r, &mut s, &mut m).unwrap();
        assert_eq!(r, r0);
        assert_eq!(s.cpl, 3);
        assert_eq!(s.seg(Segment::Cs), s0.seg(Segment::Cs));
        assert_eq!(s.seg(Segment::Ss), s0.seg(Segment::Ss));
    }

    #[test]
    fn iretq_to_the_same_level_pops_ss_and_rsp_too() {
        let (mut s, mut r, mut m) = machine::new();
        s.cpl = 0;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_9b00_0000_ffff).cache(KCODE);
        r.rsp = 0x8800;
        for (i, v) in [0xffff_ffff_8000_1000, u64::from(KCODE), 0x2, 0x8abc, 0]
            .iter()
            .enumerate()
        {
            m.set(0x8800 + 8 * i as u64, *v);
        }
        iretq(&mut r, &mut s, &mut m).unwrap();
        assert_eq!(
            (r.rip, r.rsp, r.rflags),
            (0xffff_ffff_8000_1000, 0x8abc, 0x2)
        );
        assert_eq!(s.cpl, 0);
        assert_eq!(
            s.seg(Segment::Ss).selector,
            0,
            "a null SS is fine back to 64-bit ring 0"
        );
    }

    /// An iretq frame at FRAME (user memory, so ring 3 may pop it too) for a CPL-0 kernel.
    fn kernel_frame(rip: u64, cs: u16, rflags: u64, ss: u16) -> (SystemState, Regs, TestMem) {
        let (mut s, mut r, mut m) = machine::new();
        s.cpl = 0;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_9b00_0000_ffff).cache(KCODE);
        r.rsp = FRAME;
        r.rflags = RFLAGS_FIXED;
        for (i, v) in [rip, u64::from(cs), rflags, USER_RSP, u64::from(ss)]
            .iter()
            .enumerate()
        {
            m.set(FRAME + 8 * i as u64, *v);
        }
        (s, r, m)
    }

    #[test]
    fn iretq_checks_the_popped_cs_ss_and_rip() {
        let gp = |c| Err(Exception::gp(c));
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2, UDATA);
        r.rflags |= RFLAGS_NT;
        assert_eq!(iretq(&mut r, &mut s, &mut m), gp(0), "NT: no task return");
        let (mut s, mut r, mut m) = kernel_frame(0x0000_8000_0000_0000, UCODE, 2, UDATA);
        assert_eq!(iretq(&mut r, &mut s, &mut m), gp(0), "non-canonical RIP");
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2, KDATA);
        assert_eq!(iretq(&mut r, &mut s, &mut m), gp(0x18), "SS RPL != CS RPL");
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2, 3);
        assert_eq!(iretq(&mut r, &mut s, &mut m), gp(0), "null SS to ring 3");
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2, UDATA_NP | 3);
        assert_eq!(iretq(&mut r, &mut s, &mut m), Err(Exception::ss(0x70)));
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, KCODE_NP, 2, 0);
        assert_eq!(iretq(&mut r, &mut s, &mut m), Err(Exception::np(0x38)));
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2, UDATA);
        s.cpl = 3;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_fb00_0000_ffff).cache(UCODE);
        m.set(FRAME + 8, u64::from(KCODE));
        assert_eq!(
            iretq(&mut r, &mut s, &mut m),
            gp(0x10),
            "no return to an inner level"
        );
        assert_eq!(s.cpl, 3, "nothing changed");
        assert_eq!(r.rsp, FRAME);
    }

    #[test]
    fn iretq_changes_iopl_only_at_cpl_0_and_if_only_at_cpl_up_to_iopl() {
        let (mut s, mut r, mut m) =
            kernel_frame(USER_RIP, UCODE, 0x2 | RFLAGS_IOPL | RFLAGS_IF, UDATA);
        iretq(&mut r, &mut s, &mut m).unwrap();
        assert_eq!(r.rflags, 0x2 | RFLAGS_IOPL | RFLAGS_IF);
        // From ring 3 with IOPL 0 neither IOPL nor IF moves.
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 0x2 | RFLAGS_IOPL | 0x1, UDATA);
        s.cpl = 3;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_fb00_0000_ffff).cache(UCODE);
        *s.seg_mut(Segment::Ss) = seg::Descriptor(0x00cf_f300_0000_ffff).cache(UDATA);
        r.rflags = RFLAGS_FIXED | RFLAGS_IF;
        iretq(&mut r, &mut s, &mut m).unwrap();
        assert_eq!(r.rflags, 0x2 | RFLAGS_IF | 0x1);
    }

    #[test]
    fn iretq_to_an_outer_level_nulls_data_segments_it_may_not_use() {
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2, UDATA);
        *s.seg_mut(Segment::Ds) = seg::Descriptor(0x00cf_9300_0000_ffff).cache(KDATA);
        *s.seg_mut(Segment::Fs) = SegmentCache {
            base: 0x7777,
            ..seg::Descriptor(0x00cf_9300_0000_ffff).cache(KDATA)
        };
        iretq(&mut r, &mut s, &mut m).unwrap();
        assert_eq!(s.seg(Segment::Ds).selector, 0);
        assert_eq!(s.seg(Segment::Ds).attr, 0);
        assert_eq!(s.seg(Segment::Fs).base, 0x7777, "the FS base stays");
        assert_eq!(s.seg(Segment::Es).selector, UDATA, "user data stays");
    }

    #[test]
    fn syscall_and_sysret_round_trip_between_ring_3_and_ring_0() {
        let (mut s, mut r, _) = machine::new();
        s.msrs.lstar = 0xffff_ffff_8100_0040;
        s.msrs.fmask = RFLAGS_IF | RFLAGS_TF | RFLAGS_AC;
        r.rflags |= RFLAGS_AC;
        let before = r;
        syscall(&mut r, &mut s).unwrap();
        assert_eq!(r.rcx, USER_RIP);
        assert_eq!(r.r11, before.rflags);
        assert_eq!(r.rip, 0xffff_ffff_8100_0040);
        assert_eq!(r.rflags, RFLAGS_FIXED | RFLAGS_CF);
        assert_eq!(s.cpl, 0);
        assert_eq!(s.seg(Segment::Cs).selector, 0x10);
        assert_eq!(s.seg(Segment::Ss).selector, 0x18);
        assert!(s.in_64bit_mode());
        sysret(&mut r, &mut s, true).unwrap();
        assert_eq!((r.rip, r.rflags), (USER_RIP, before.rflags));
        assert_eq!(s.cpl, 3);
        assert_eq!(s.seg(Segment::Cs).selector, 0x33);
        assert_eq!(s.seg(Segment::Ss).selector, 0x2b);
        assert_eq!(s.seg(Segment::Cs).dpl(), 3);
        assert!(s.in_64bit_mode());
    }

    #[test]
    fn sysret_without_rex_w_returns_to_compatibility_mode() {
        let (mut s, mut r, _) = machine::new();
        s.cpl = 0;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_9b00_0000_ffff).cache(KCODE);
        r.rcx = 0xdead_0000_0804_8000;
        r.r11 = 0x2 | RFLAGS_RF | RFLAGS_VM | RFLAGS_IF;
        sysret(&mut r, &mut s, false).unwrap();
        assert_eq!(r.rip, 0x0804_8000);
        assert_eq!(r.rflags, 0x2 | RFLAGS_IF, "RF and VM never come back");
        assert_eq!(s.seg(Segment::Cs).selector, 0x23);
        assert!(!s.in_64bit_mode());
    }

    #[test]
    fn sysret_faults_before_changing_anything() {
        let (mut s, mut r, _) = machine::new();
        assert_eq!(sysret(&mut r, &mut s, true), Err(Exception::gp(0)), "CPL 3");
        s.cpl = 0;
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00af_9b00_0000_ffff).cache(KCODE);
        r.rcx = 0x0000_8000_0000_0000;
        let (s0, r0) = (s.clone(), r);
        assert_eq!(
            sysret(&mut r, &mut s, true),
            Err(Exception::gp(0)),
            "non-canonical RCX"
        );
        assert_eq!((s, r), (s0, r0));
    }

    #[test]
    fn syscall_needs_efer_sce_and_64_bit_mode() {
        let (mut s, mut r, _) = machine::new();
        s.msrs.efer &= !EFER_SCE;
        assert_eq!(syscall(&mut r, &mut s), Err(Exception::ud()));
        assert_eq!(sysret(&mut r, &mut s, true), Err(Exception::ud()));
        let (mut s, mut r, _) = machine::new();
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00cf_fb00_0000_ffff).cache(UCODE32);
        assert_eq!(syscall(&mut r, &mut s), Err(Exception::ud()));
    }

    #[test]
    fn swapgs_exchanges_gs_base_and_kernel_gs_base_at_cpl_0_only() {
        let (mut s, _, _) = machine::new();
        s.seg_mut(Segment::Gs).base = 0x1111;
        s.msrs.kernel_gs_base = 0xffff_8880_0000_2222;
        assert_eq!(swapgs(&mut s), Err(Exception::gp(0)));
        s.cpl = 0;
        swapgs(&mut s).unwrap();
        assert_eq!(s.seg(Segment::Gs).base, 0xffff_8880_0000_2222);
        assert_eq!(s.msrs.kernel_gs_base, 0x1111);
        swapgs(&mut s).unwrap();
        assert_eq!(s.seg(Segment::Gs).base, 0x1111);
        *s.seg_mut(Segment::Cs) = seg::Descriptor(0x00cf_9b00_0000_ffff).cache(KCODE32);
        assert_eq!(swapgs(&mut s), Err(Exception::ud()));
    }

    #[test]
    fn a_frame_that_faults_halfway_writes_nothing() {
        let (mut s, mut r, mut m) = machine::new();
        // 6..8 MiB supervisor-writable, 8..10 MiB absent; RSP0 16 bytes above the boundary.
        m.set(
            0x3018,
            0x60_0000
                | super::super::mmu::PTE_P
                | super::super::mmu::PTE_RW
                | super::super::mmu::PTE_PS,
        );
        m.write(TSS + 4, &0x80_0010u64.to_le_bytes());
        gate(&mut m, 0x30, INT, 0, 0, true);
        gate(&mut m, PF, INT, 0, 1, true);
        deliver(&mut r, &mut s, &mut m, Event::external(0x30)).unwrap();
        assert_eq!(
            words(&m, 0x7f_ffe0, 4),
            [0; 4],
            "the mapped half was not written"
        );
        // An interrupt is benign: the #PF is delivered on its own (IST1), not as #DF.
        assert_eq!(r.rip, HANDLER + u64::from(PF) * 16);
        assert_eq!(s.cr2, 0x80_0000);
        assert_eq!(
            m.get(r.rsp),
            0x2,
            "a supervisor write to a not-present page"
        );
        assert_eq!(m.get(r.rsp + 8), USER_RIP);
    }

    #[test]
    fn iretq_refuses_virtual_8086_mode_at_cpl_0() {
        let (mut s, mut r, mut m) = kernel_frame(USER_RIP, UCODE, 2 | RFLAGS_VM, UDATA);
        assert_eq!(iretq(&mut r, &mut s, &mut m), Err(Exception::gp(0)));
    }
}
