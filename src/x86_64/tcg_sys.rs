//! The system instructions of the machine on the JIT: what the translated code stopped on
//! with `EXIT_SYSTEM` (`X86Cpu::sys_insn`, the memory operand's linear address in
//! `sys_addr`), performed against the CPU's system state, guest memory, the port bus and the
//! local APIC, with the architecture's checks from `frontend::x86_64::sys`.
//!
//! [`perform`] either completes the instruction (`rip` past it, or wherever a control
//! transfer went) and says which cached translations it made stale, or returns the event to
//! deliver: a fault with `rip` still at the instruction and nothing of it done, or a software
//! interrupt (`int n`, `int3`, `into`) with `rip` at the next instruction.
//!
//! **16-bit code.** In code whose `Mode::code_bits` is 16, `rip` holds the linear address
//! (CS.base + IP): transfers into such code add the new CS base, transfers out of it (and the
//! offsets it pushes) subtract the old one.
//!
//! Documented gaps: debug registers read as their reset values and writes are dropped (no
//! hardware breakpoints); `iret` of 16/32-bit operand size and far transfers through call
//! gates are #GP; `ins`/`outs` check no I/O permission bitmap (as the translator).

use devices::apic::lapic::Tsc;
use devices::apic::router::ApicBus;
use devices::bus::Bus;
use frontend::x86_64::cpu::{RAX, RCX, RDX, RSP};
use frontend::x86_64::sys::cr::{self, Flush, CR0_PE, CR0_TS, CR4_TSD};
use frontend::x86_64::sys::interrupt::{self, Event, EventKind, Regs, RFLAGS_IF};
use frontend::x86_64::sys::msr::{MSR_APIC_BASE, MSR_EFER};
use frontend::x86_64::sys::seg::{self, FarKind, Segment, ATTR_DB};
use frontend::x86_64::sys::{Exception, Linear, PhysMem, SystemState};
use frontend::x86_64::translate::{Port, Rm, SysInsn, SysOp};
use frontend::x86_64::X86Cpu;

/// `IA32_TSC_DEADLINE`, owned by the local APIC.
const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// The local APIC's task-priority register (CR8 is its bits 7:4).
const APIC_TPR: u32 = 0x80;
/// Most `ins`/`outs` iterations one exit performs; a longer `rep` runs again from the same
/// instruction (so a huge count cannot stall the machine loop).
const MAX_STRING_ITERATIONS: u64 = 4096;
/// RFLAGS.OF (`into`).
const RFLAGS_OF: u64 = 1 << 11;
/// RFLAGS.DF.
const RFLAGS_DF: u64 = 1 << 10;
/// RFLAGS.ZF (`verr`/`verw`'s answer).
const RFLAGS_ZF: u64 = 1 << 6;

/// What the machine lends a system instruction.
pub struct SysEnv<'a> {
    /// Guest physical memory (writes invalidate translated code).
    pub mem: &'a mut dyn PhysMem,
    /// The port I/O bus.
    pub pio: &'a Bus,
    /// The local APICs.
    pub apic: &'a ApicBus,
    /// This vCPU's index (= its APIC ID).
    pub cpu_index: usize,
    /// vCPUs in the machine.
    pub cpus: u32,
    /// The machine's TSC (before the guest's `IA32_TSC` offset).
    pub tsc: Tsc,
    /// Its frequency, for CPUID.
    pub tsc_hz: u64,
}

impl SysEnv<'_> {
    fn host_tsc(&self) -> u64 {
        self.tsc.ticks_at(std::time::Instant::now())
    }
}

/// Cached translations a completed instruction made stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlbFlush {
    /// Nothing.
    None,
    /// The page of this linear address.
    Page(u64),
    /// Every translation but those of global pages (a CR3 load).
    NonGlobal,
    /// Everything.
    All,
}

impl From<Flush> for TlbFlush {
    fn from(f: Flush) -> TlbFlush {
        match f {
            Flush::None => TlbFlush::None,
            Flush::NonGlobal => TlbFlush::NonGlobal,
            Flush::All => TlbFlush::All,
        }
    }
}

/// Performs `insn`, which `cpu` stopped on. `Err` is the event to deliver (see the module
/// documentation for where `rip` is).
pub fn perform(cpu: &mut X86Cpu, insn: SysInsn, env: &mut SysEnv) -> Result<TlbFlush, Event> {
    let next = cpu.rip.wrapping_add(u64::from(insn.len));
    let r = run(cpu, insn.op, next, env);
    sync_bases(cpu);
    match r {
        Ok(Step::Next(flush)) => {
            cpu.rip = next;
            Ok(flush)
        }
        Ok(Step::Jumped(flush)) => Ok(flush),
        Ok(Step::Again) => Ok(TlbFlush::None),
        Err(Raise::Fault(e)) => Err(e.into()),
        Err(Raise::Software(vector)) => {
            cpu.rip = next;
            Err(Event {
                vector,
                kind: EventKind::Software,
                error_code: None,
                cr2: None,
            })
        }
    }
}

/// The FS and GS bases the translated code adds live in `fs_base`/`gs_base`; the segment
/// caches are the architectural copy. Called after anything that may have changed them.
pub fn sync_bases(cpu: &mut X86Cpu) {
    cpu.fs_base = cpu.sys.seg(Segment::Fs).base;
    cpu.gs_base = cpu.sys.seg(Segment::Gs).base;
}

enum Step {
    /// Done: continue at the next instruction.
    Next(TlbFlush),
    /// Done: `rip` was set by the instruction.
    Jumped(TlbFlush),
    /// Partly done (a long `rep ins/outs`): run the same instruction again.
    Again,
}

enum Raise {
    Fault(Exception),
    Software(u8),
}

impl From<Exception> for Raise {
    fn from(e: Exception) -> Raise {
        Raise::Fault(e)
    }
}

fn next(flush: TlbFlush) -> Result<Step, Raise> {
    Ok(Step::Next(flush))
}

fn done() -> Result<Step, Raise> {
    next(TlbFlush::None)
}

/// Whether RFLAGS.AC opens user pages to supervisor data accesses right now.
fn ac(cpu: &X86Cpu) -> bool {
    cpu.eflags & interrupt::RFLAGS_AC != 0
}

fn read_mem(cpu: &X86Cpu, env: &mut SysEnv, addr: u64, buf: &mut [u8]) -> Result<(), Exception> {
    Linear::new(cpu.sys.paging(ac(cpu)), &mut *env.mem).read(addr, buf, false, false)
}

fn write_mem(cpu: &X86Cpu, env: &mut SysEnv, addr: u64, data: &[u8]) -> Result<(), Exception> {
    Linear::new(cpu.sys.paging(ac(cpu)), &mut *env.mem).write(addr, data, false, false)
}

fn read_uint(cpu: &X86Cpu, env: &mut SysEnv, addr: u64, size: usize) -> Result<u64, Exception> {
    let mut b = [0u8; 8];
    read_mem(cpu, env, addr, &mut b[..size])?;
    Ok(u64::from_le_bytes(b))
}

/// Whether the CPU runs 16-bit code (where `rip` is linear: see the module documentation).
fn code16(s: &SystemState) -> bool {
    s.cr0 & CR0_PE == 0 || (!s.in_64bit_mode() && s.seg(Segment::Cs).attr & ATTR_DB == 0)
}

/// The operand width of register moves to and from control registers.
fn reg_mask(s: &SystemState) -> u64 {
    if s.in_64bit_mode() {
        u64::MAX
    } else {
        0xffff_ffff
    }
}

/// Writes `value` to general register `gpr` as an operand of `size` bytes: 4 zero-extends,
/// 1 and 2 keep the rest of the register.
fn set_gpr(cpu: &mut X86Cpu, gpr: u8, size: u8, value: u64) {
    let r = &mut cpu.regs[usize::from(gpr & 15)];
    *r = match size {
        1 => (*r & !0xff) | (value & 0xff),
        2 => (*r & !0xffff) | (value & 0xffff),
        4 => value & 0xffff_ffff,
        _ => value,
    };
}

fn selector_of(cpu: &X86Cpu, env: &mut SysEnv, rm: Rm) -> Result<u16, Exception> {
    Ok(match rm {
        Rm::Reg { gpr, .. } => cpu.regs[usize::from(gpr & 15)] as u16,
        Rm::Mem => read_uint(cpu, env, cpu.sys_addr, 2)? as u16,
    })
}

fn store_selector(cpu: &mut X86Cpu, env: &mut SysEnv, rm: Rm, sel: u16) -> Result<(), Exception> {
    match rm {
        Rm::Reg { gpr, size } => {
            set_gpr(cpu, gpr, size.max(2), u64::from(sel));
            // A 32- or 64-bit destination is zero-extended.
            if size >= 4 {
                cpu.regs[usize::from(gpr & 15)] = u64::from(sel);
            }
            Ok(())
        }
        Rm::Mem => write_mem(cpu, env, cpu.sys_addr, &sel.to_le_bytes()),
    }
}

fn run(cpu: &mut X86Cpu, op: SysOp, next_rip: u64, env: &mut SysEnv) -> Result<Step, Raise> {
    use SysOp::*;
    match op {
        MovToCr { cr, gpr } => {
            let v = cpu.regs[usize::from(gpr)] & reg_mask(&cpu.sys);
            let s = &mut cpu.sys;
            let flush = match cr {
                0 => cr::write_cr0(s, v)?.into(),
                2 => {
                    s.cr2 = v;
                    TlbFlush::None
                }
                3 => cr::write_cr3(s, v)?.into(),
                4 => cr::write_cr4(s, v)?.into(),
                8 => {
                    cr::write_cr8(s, v)?;
                    let _ = env
                        .apic
                        .write(env.cpu_index, APIC_TPR, (v as u32 & 0xf) << 4);
                    TlbFlush::None
                }
                _ => return Err(Exception::ud().into()),
            };
            next(flush)
        }
        MovFromCr { cr, gpr } => {
            let s = &cpu.sys;
            let v = match cr {
                0 => s.cr0,
                2 => s.cr2,
                3 => s.cr3,
                4 => s.cr4,
                8 => u64::from(env.apic.read(env.cpu_index, APIC_TPR).unwrap_or(0) >> 4),
                _ => return Err(Exception::ud().into()),
            } & reg_mask(s);
            cpu.regs[usize::from(gpr)] = v;
            done()
        }
        MovToDr { dr, .. } => {
            log::debug!("x86 tcg: mov to dr{dr} ignored (no hardware breakpoints)");
            done()
        }
        MovFromDr { dr, gpr } => {
            cpu.regs[usize::from(gpr)] = match dr {
                6 | 4 => 0xffff_0ff0,
                7 | 5 => 0x400,
                _ => 0,
            };
            done()
        }
        Clts => {
            cpu.sys.cr0 &= !CR0_TS;
            done()
        }
        Rdmsr => {
            let index = cpu.regs[RCX] as u32;
            let value = match index {
                MSR_APIC_BASE | MSR_TSC_DEADLINE => env
                    .apic
                    .read_msr(env.cpu_index, index)
                    .ok()
                    .flatten()
                    .ok_or(Exception::gp(0))?,
                _ => cpu.sys.rdmsr(index, env.host_tsc())?,
            };
            let value = if index == MSR_TSC_DEADLINE && value != 0 {
                value.wrapping_add(cpu.sys.msrs.tsc_offset)
            } else {
                value
            };
            cpu.regs[RAX] = value & 0xffff_ffff;
            cpu.regs[RDX] = value >> 32;
            done()
        }
        Wrmsr => {
            let index = cpu.regs[RCX] as u32;
            let value = (cpu.regs[RDX] << 32) | (cpu.regs[RAX] & 0xffff_ffff);
            match index {
                MSR_TSC_DEADLINE => {
                    // The APIC counts the machine's TSC; the guest's has its IA32_TSC offset. A
                    // deadline the guest's TSC has already passed fires at once (SDM 11.5.4.1):
                    // compare in the guest's time, where it cannot wrap.
                    let offset = cpu.sys.msrs.tsc_offset;
                    let host = env.host_tsc();
                    let guest_now = host.wrapping_add(offset);
                    let ticks = if value == 0 {
                        0
                    } else if value <= guest_now {
                        host.max(1)
                    } else {
                        host.saturating_add(value - guest_now)
                    };
                    if !matches!(env.apic.write_msr(env.cpu_index, index, ticks), Ok(true)) {
                        return Err(Exception::gp(0).into());
                    }
                    done()
                }
                MSR_APIC_BASE => {
                    // The architectural checks first, so a refused write changes nothing.
                    let before = cpu.sys.msrs;
                    cpu.sys.wrmsr(index, value, env.host_tsc())?;
                    if !matches!(env.apic.write_msr(env.cpu_index, index, value), Ok(true)) {
                        cpu.sys.msrs = before;
                        return Err(Exception::gp(0).into());
                    }
                    done()
                }
                _ => {
                    let efer = cpu.sys.msrs.efer;
                    cpu.sys.wrmsr(index, value, env.host_tsc())?;
                    // NXE changes what the cached translations allow.
                    let flush = if index == MSR_EFER && efer != cpu.sys.msrs.efer {
                        TlbFlush::All
                    } else {
                        TlbFlush::None
                    };
                    next(flush)
                }
            }
        }
        Lgdt { size } | Lidt { size } => {
            let limit = read_uint(cpu, env, cpu.sys_addr, 2)? as u16;
            let base_len = if size == 8 { 8 } else { 4 };
            let mut base = read_uint(cpu, env, cpu.sys_addr.wrapping_add(2), base_len)?;
            if size == 2 {
                base &= 0xff_ffff;
            }
            let reg = seg::load_table_reg(&cpu.sys, limit, base)?;
            if matches!(op, Lgdt { .. }) {
                cpu.sys.gdtr = reg;
            } else {
                cpu.sys.idtr = reg;
            }
            done()
        }
        Sgdt { .. } | Sidt { .. } => {
            let reg = if matches!(op, Sgdt { .. }) {
                cpu.sys.gdtr
            } else {
                cpu.sys.idtr
            };
            let mut bytes = [0u8; 10];
            bytes[..2].copy_from_slice(&reg.limit.to_le_bytes());
            bytes[2..].copy_from_slice(&reg.base.to_le_bytes());
            let len = if cpu.sys.in_64bit_mode() { 10 } else { 6 };
            write_mem(cpu, env, cpu.sys_addr, &bytes[..len])?;
            done()
        }
        Lldt(_) | Ltr(_) | Sldt(_) | Str(_) | Verr(_) | Verw(_) if cpu.sys.cr0 & CR0_PE == 0 => {
            // Not recognised in real-address mode (SDM, real-address mode exceptions).
            Err(Exception::ud().into())
        }
        Lldt(rm) => {
            let sel = selector_of(cpu, env, rm)?;
            seg::lldt(&mut cpu.sys, &mut *env.mem, sel)?;
            done()
        }
        Ltr(rm) => {
            let sel = selector_of(cpu, env, rm)?;
            seg::ltr(&mut cpu.sys, &mut *env.mem, sel)?;
            done()
        }
        Sldt(rm) => {
            let sel = cpu.sys.ldtr.selector;
            store_selector(cpu, env, rm, sel)?;
            done()
        }
        Str(rm) => {
            let sel = cpu.sys.tr.selector;
            store_selector(cpu, env, rm, sel)?;
            done()
        }
        Invlpg => next(TlbFlush::Page(cpu.sys_addr)),
        In { port, size } => {
            let port = port_number(cpu, port);
            let v = port_in(env, port, size);
            set_gpr(cpu, RAX as u8, size, v);
            done()
        }
        Out { port, size } => {
            let port = port_number(cpu, port);
            let bytes = cpu.regs[RAX].to_le_bytes();
            port_out(env, port, &bytes[..usize::from(size)]);
            done()
        }
        Ins {
            size,
            rep,
            addr_bits,
        } => string_io(cpu, env, true, size, rep, addr_bits, Segment::Es),
        Outs {
            size,
            rep,
            addr_bits,
            seg,
        } => {
            let seg = segment(seg).ok_or(Exception::ud())?;
            string_io(cpu, env, false, size, rep, addr_bits, seg)
        }
        Iret { size } => {
            if size != 8 {
                log::debug!("x86 tcg: iret with a {size}-byte operand is not implemented: #GP");
                return Err(Exception::gp(0).into());
            }
            let mut regs = regs_of(cpu, cpu.rip);
            interrupt::iretq(&mut regs, &mut cpu.sys, &mut *env.mem)?;
            set_regs(cpu, &regs);
            Ok(Step::Jumped(TlbFlush::None))
        }
        Syscall => {
            let mut regs = regs_of(cpu, next_rip);
            interrupt::syscall(&mut regs, &mut cpu.sys)?;
            set_regs(cpu, &regs);
            Ok(Step::Jumped(TlbFlush::None))
        }
        Sysret { size } => {
            let mut regs = regs_of(cpu, next_rip);
            interrupt::sysret(&mut regs, &mut cpu.sys, size == 8)?;
            set_regs(cpu, &regs);
            Ok(Step::Jumped(TlbFlush::None))
        }
        Swapgs => {
            interrupt::swapgs(&mut cpu.sys)?;
            done()
        }
        Int { vector } => Err(Raise::Software(vector)),
        Int3 => Err(Raise::Software(frontend::x86_64::sys::BP)),
        Into => {
            if cpu.rflags() & RFLAGS_OF != 0 {
                Err(Raise::Software(frontend::x86_64::sys::OF))
            } else {
                done()
            }
        }
        Rdtsc | Rdtscp => {
            if cpu.sys.cr4 & CR4_TSD != 0 && cpu.sys.cpl != 0 {
                return Err(Exception::gp(0).into());
            }
            let t = env.host_tsc().wrapping_add(cpu.sys.msrs.tsc_offset);
            cpu.regs[RAX] = t & 0xffff_ffff;
            cpu.regs[RDX] = t >> 32;
            if op == Rdtscp {
                cpu.regs[RCX] = cpu.sys.msrs.tsc_aux & 0xffff_ffff;
            }
            done()
        }
        // The machine yields to the other vCPUs (see `tcg_machine`); nothing else to do.
        Pause => done(),
        Verr(rm) | Verw(rm) => {
            let sel = selector_of(cpu, env, rm)?;
            let ok = segment_accessible(&cpu.sys, &mut *env.mem, sel, matches!(op, Verw(_)));
            let flags = cpu.rflags();
            cpu.set_rflags(if ok {
                flags | RFLAGS_ZF
            } else {
                flags & !RFLAGS_ZF
            });
            done()
        }
        Cpuid => {
            let [a, b, c, d] = frontend::x86_64::system_cpuid::cpuid(
                cpu.regs[RAX] as u32,
                cpu.regs[RCX] as u32,
                env.cpu_index as u8,
                env.cpus,
                env.tsc_hz,
            );
            cpu.regs[RAX] = u64::from(a);
            cpu.regs[3] = u64::from(b);
            cpu.regs[RCX] = u64::from(c);
            cpu.regs[RDX] = u64::from(d);
            done()
        }
        MovToSeg { seg, src } => {
            let reg = segment(seg).ok_or(Exception::ud())?;
            let sel = selector_of(cpu, env, src)?;
            load_segment(cpu, env, reg, sel)?;
            done()
        }
        MovFromSeg { seg, dst } => {
            let reg = segment(seg).ok_or(Exception::ud())?;
            let sel = cpu.sys.seg(reg).selector;
            store_selector(cpu, env, dst, sel)?;
            done()
        }
        FarJmp { size } | FarCall { size } => {
            let offset = read_uint(cpu, env, cpu.sys_addr, usize::from(size))?;
            let sel = read_uint(cpu, env, cpu.sys_addr.wrapping_add(u64::from(size)), 2)? as u16;
            far_transfer(
                cpu,
                env,
                sel,
                offset,
                size,
                matches!(op, FarCall { .. }),
                next_rip,
            )
        }
        FarJmpImm { selector, size } | FarCallImm { selector, size } => {
            let offset = cpu.sys_addr;
            let call = matches!(op, FarCallImm { .. });
            far_transfer(cpu, env, selector, offset, size, call, next_rip)
        }
        Lret { size, pop } => far_return(cpu, env, size, pop),
        LoadFarPointer { seg, gpr, size } => {
            let reg = segment(seg).ok_or(Exception::ud())?;
            let offset = read_uint(cpu, env, cpu.sys_addr, usize::from(size))?;
            let sel = read_uint(cpu, env, cpu.sys_addr.wrapping_add(u64::from(size)), 2)? as u16;
            load_segment(cpu, env, reg, sel)?;
            set_gpr(cpu, gpr, size, offset);
            done()
        }
    }
}

/// `verr`/`verw` (SDM VERR/VERW): whether `sel` names a code or data segment the current
/// privilege may read (`write`: write) through: not null, within the table, a code or data
/// descriptor, DPL >= max(CPL, RPL) unless it is conforming code (read only), readable code or
/// any data for reads, writable data for writes. A descriptor that cannot be read is simply
/// not accessible (ZF = 0), as a limit violation is.
fn segment_accessible(s: &SystemState, mem: &mut dyn PhysMem, sel: u16, write: bool) -> bool {
    if sel & !3 == 0 {
        return false;
    }
    let Ok(f) = seg::fetch(s, mem, sel, 0) else {
        return false;
    };
    let d = f.desc;
    if !d.is_code_data() {
        return false;
    }
    let attr = d.attr();
    let conforming = d.is_code() && attr & seg::ATTR_CE != 0;
    let rpl = (sel & 3) as u8;
    if !conforming && d.dpl() < s.cpl.max(rpl) {
        return false;
    }
    match (write, d.is_code()) {
        (true, true) => false,
        // For code RW means readable, for data writable; data is always readable.
        (true, false) | (false, true) => attr & seg::ATTR_RW != 0,
        (false, false) => true,
    }
}

fn segment(n: u8) -> Option<Segment> {
    Some(match n {
        0 => Segment::Es,
        1 => Segment::Cs,
        2 => Segment::Ss,
        3 => Segment::Ds,
        4 => Segment::Fs,
        5 => Segment::Gs,
        _ => return None,
    })
}

fn port_number(cpu: &X86Cpu, port: Port) -> u16 {
    match port {
        Port::Imm(p) => u16::from(p),
        Port::Dx => cpu.regs[RDX] as u16,
    }
}

/// An `in` of `size` bytes; nothing at the port reads as all ones (an open ISA bus).
fn port_in(env: &SysEnv, port: u16, size: u8) -> u64 {
    let mut b = [0xffu8; 8];
    if env
        .pio
        .read(u64::from(port), &mut b[..usize::from(size)])
        .is_err()
    {
        log::trace!("in from unmapped port {port:#x}");
        b = [0xff; 8];
    }
    u64::from_le_bytes(b) & (u64::MAX >> (64 - 8 * u32::from(size)))
}

fn port_out(env: &SysEnv, port: u16, data: &[u8]) {
    if env.pio.write(u64::from(port), data).is_err() {
        log::trace!("out to unmapped port {port:#x}");
    }
}

/// `ins`/`outs`, with `rep` at most [`MAX_STRING_ITERATIONS`] per exit. Outside 64-bit mode
/// the segment base is added to the offset.
fn string_io(
    cpu: &mut X86Cpu,
    env: &mut SysEnv,
    input: bool,
    size: u8,
    rep: bool,
    addr_bits: u8,
    seg: Segment,
) -> Result<Step, Raise> {
    let amask = match addr_bits {
        16 => 0xffff,
        32 => 0xffff_ffff,
        _ => u64::MAX,
    };
    let base = if cpu.sys.in_64bit_mode() && !matches!(seg, Segment::Fs | Segment::Gs) {
        0
    } else {
        cpu.sys.seg(seg).base
    };
    let index = if input { 7 } else { 6 };
    let port = cpu.regs[RDX] as u16;
    let step = if cpu.rflags() & RFLAGS_DF != 0 {
        0u64.wrapping_sub(u64::from(size))
    } else {
        u64::from(size)
    };
    let mut count = if rep { cpu.regs[RCX] & amask } else { 1 };
    let mut iterations = 0;
    while count > 0 {
        if iterations == MAX_STRING_ITERATIONS {
            return Ok(Step::Again);
        }
        let offset = cpu.regs[index] & amask;
        let addr = base.wrapping_add(offset);
        if input {
            let v = port_in(env, port, size);
            write_mem(cpu, env, addr, &v.to_le_bytes()[..usize::from(size)])?;
        } else {
            let v = read_uint(cpu, env, addr, usize::from(size))?;
            port_out(env, port, &v.to_le_bytes()[..usize::from(size)]);
        }
        set_index(&mut cpu.regs[index], addr_bits, offset.wrapping_add(step));
        count -= 1;
        if rep {
            set_index(&mut cpu.regs[RCX], addr_bits, count);
        }
        iterations += 1;
    }
    done()
}

/// Writes an index or count register at an address size: 16 bits keep the rest of the
/// register, 32 bits zero-extend (a 32-bit register write, SDM vol. 1 3.4.1.1).
fn set_index(r: &mut u64, addr_bits: u8, value: u64) {
    *r = match addr_bits {
        16 => (*r & !0xffff) | (value & 0xffff),
        32 => value & 0xffff_ffff,
        _ => value,
    };
}

/// The registers event delivery and the privileged transfers read, with `rip` as given.
pub(crate) fn regs_of(cpu: &X86Cpu, rip: u64) -> Regs {
    Regs {
        rip,
        rsp: cpu.regs[RSP],
        rflags: cpu.rflags(),
        rcx: cpu.regs[RCX],
        r11: cpu.regs[11],
    }
}

/// Writes back what [`regs_of`] took.
pub(crate) fn set_regs(cpu: &mut X86Cpu, regs: &Regs) {
    cpu.rip = regs.rip;
    cpu.regs[RSP] = regs.rsp;
    cpu.regs[RCX] = regs.rcx;
    cpu.regs[11] = regs.r11;
    cpu.set_rflags(regs.rflags);
}

/// A segment load by `mov sreg`: real mode takes the selector as paragraph, protected and
/// IA-32e mode check the descriptor.
fn load_segment(
    cpu: &mut X86Cpu,
    env: &mut SysEnv,
    reg: Segment,
    sel: u16,
) -> Result<(), Exception> {
    if reg == Segment::Cs {
        // CS changes only through far transfers (SDM MOV: #UD in every mode).
        return Err(Exception::ud());
    }
    if cpu.sys.cr0 & CR0_PE == 0 {
        let c = cpu.sys.seg_mut(reg);
        c.selector = sel;
        c.base = u64::from(sel) << 4;
        return Ok(());
    }
    match reg {
        Segment::Ss => seg::load_ss(&mut cpu.sys, &mut *env.mem, sel),
        _ => seg::load_data(&mut cpu.sys, &mut *env.mem, reg, sel),
    }
}

/// The stack's linear address for `rsp` (the SS base outside 64-bit mode).
fn stack_addr(s: &SystemState, rsp: u64) -> u64 {
    if s.in_64bit_mode() {
        rsp
    } else if s.seg(Segment::Ss).attr & ATTR_DB != 0 {
        s.seg(Segment::Ss).base.wrapping_add(rsp & 0xffff_ffff)
    } else {
        s.seg(Segment::Ss).base.wrapping_add(rsp & 0xffff)
    }
}

/// The stack pointer's width: 64 in 64-bit mode, else SS's B bit: 32 or 16.
fn stack_bits(s: &SystemState) -> u8 {
    if s.in_64bit_mode() {
        64
    } else if s.seg(Segment::Ss).attr & ATTR_DB != 0 {
        32
    } else {
        16
    }
}

/// rsp moved by `delta` bytes at the stack's width (a 16-bit SP keeps rsp's upper bits).
fn moved_sp(s: &SystemState, rsp: u64, delta: u64) -> u64 {
    let mut r = rsp;
    set_index(&mut r, stack_bits(s), rsp.wrapping_add(delta));
    r
}

/// The IP to push or compare for `rip` (16-bit code keeps `rip` linear).
fn offset_of(s: &SystemState, rip: u64) -> u64 {
    if code16(s) {
        rip.wrapping_sub(s.seg(Segment::Cs).base) & 0xffff
    } else {
        rip
    }
}

/// Sets `rip` for `offset` in the code segment now loaded.
fn land(cpu: &mut X86Cpu, offset: u64) {
    cpu.rip = if code16(&cpu.sys) {
        cpu.sys.seg(Segment::Cs).base.wrapping_add(offset & 0xffff)
    } else if cpu.sys.in_64bit_mode() {
        offset
    } else {
        offset & 0xffff_ffff
    };
}

/// A far `jmp` or `call` to `sel:offset`.
fn far_transfer(
    cpu: &mut X86Cpu,
    env: &mut SysEnv,
    sel: u16,
    offset: u64,
    size: u8,
    call: bool,
    next_rip: u64,
) -> Result<Step, Raise> {
    if cpu.sys.cr0 & CR0_PE == 0 {
        // Real mode: the selector is a paragraph.
        if call {
            push_far_return(cpu, env, size, next_rip)?;
        }
        let cs = cpu.sys.seg_mut(Segment::Cs);
        cs.selector = sel;
        cs.base = u64::from(sel) << 4;
        land(cpu, offset);
        return Ok(Step::Jumped(TlbFlush::None));
    }
    let (cache, cpl) = seg::check_far_cs(&cpu.sys, &mut *env.mem, sel, FarKind::JmpCall)?;
    if call {
        push_far_return(cpu, env, size, next_rip)?;
    }
    *cpu.sys.seg_mut(Segment::Cs) = cache;
    cpu.sys.cpl = cpl;
    land(cpu, offset);
    Ok(Step::Jumped(TlbFlush::None))
}

fn push_far_return(
    cpu: &mut X86Cpu,
    env: &mut SysEnv,
    size: u8,
    next_rip: u64,
) -> Result<(), Exception> {
    let n = u64::from(size);
    let cs = u64::from(cpu.sys.seg(Segment::Cs).selector);
    let ip = offset_of(&cpu.sys, next_rip);
    let rsp = moved_sp(&cpu.sys, cpu.regs[RSP], 0u64.wrapping_sub(2 * n));
    let mut frame = [0u8; 16];
    frame[..8].copy_from_slice(&ip.to_le_bytes());
    let mut cs_bytes = [0u8; 8];
    cs_bytes.copy_from_slice(&cs.to_le_bytes());
    let size = usize::from(size);
    frame[size..2 * size].copy_from_slice(&cs_bytes[..size]);
    let addr = stack_addr(&cpu.sys, rsp);
    Linear::new(cpu.sys.paging(ac(cpu)), &mut *env.mem).write(
        addr,
        &frame[..2 * size],
        false,
        true,
    )?;
    cpu.regs[RSP] = rsp;
    Ok(())
}

/// `lret`/`retf [pop]`: pops the offset and CS (and, to an outer privilege level, RSP and
/// SS).
fn far_return(cpu: &mut X86Cpu, env: &mut SysEnv, size: u8, pop: u16) -> Result<Step, Raise> {
    let n = u64::from(size);
    let rsp = cpu.regs[RSP];
    let read = |cpu: &X86Cpu, env: &mut SysEnv, at: u64| -> Result<u64, Exception> {
        let mut b = [0u8; 8];
        let addr = stack_addr(&cpu.sys, at);
        Linear::new(cpu.sys.paging(ac(cpu)), &mut *env.mem).read(
            addr,
            &mut b[..usize::from(size)],
            false,
            true,
        )?;
        Ok(u64::from_le_bytes(b))
    };
    let offset = read(cpu, env, rsp)?;
    let sel = read(cpu, env, moved_sp(&cpu.sys, rsp, n))? as u16;
    let after = moved_sp(&cpu.sys, rsp, 2 * n + u64::from(pop));
    if cpu.sys.cr0 & CR0_PE == 0 {
        let cs = cpu.sys.seg_mut(Segment::Cs);
        cs.selector = sel;
        cs.base = u64::from(sel) << 4;
        cpu.regs[RSP] = after;
        land(cpu, offset);
        return Ok(Step::Jumped(TlbFlush::None));
    }
    let (cache, cpl) = seg::check_far_cs(&cpu.sys, &mut *env.mem, sel, FarKind::Return)?;
    if cpl != cpu.sys.cpl {
        // To an outer level: the caller's stack follows.
        let new_rsp = read(cpu, env, after)?;
        let ss = read(cpu, env, moved_sp(&cpu.sys, after, n))? as u16;
        let old = cpu.sys.clone();
        *cpu.sys.seg_mut(Segment::Cs) = cache;
        cpu.sys.cpl = cpl;
        if let Err(e) = seg::load_ss(&mut cpu.sys, &mut *env.mem, ss) {
            cpu.sys = old;
            return Err(e.into());
        }
        cpu.regs[RSP] = moved_sp(&cpu.sys, new_rsp, u64::from(pop));
        seg::null_segments_above(&mut cpu.sys, cpl);
    } else {
        *cpu.sys.seg_mut(Segment::Cs) = cache;
        cpu.regs[RSP] = after;
    }
    land(cpu, offset);
    Ok(Step::Jumped(TlbFlush::None))
}

/// Whether maskable interrupts are enabled.
pub fn interrupts_enabled(cpu: &X86Cpu) -> bool {
    cpu.eflags & RFLAGS_IF != 0
}

#[cfg(test)]
#[path = "tcg_sys_tests.rs"]
mod tests;
