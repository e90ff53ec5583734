//! The x86_64 machine with its CPUs on the JIT (`--accel tcg`): the KVM machine's memory map,
//! loaders, ACPI tables and devices, with the PC interrupt controllers and timers as device
//! models (`irqchip`) instead of KVM's in-kernel ones, and the CPUs translated.
//!
//! **The vCPU loop.** `Vcpu::run` returns to this loop for everything a block cannot do on
//! its own (`tcg_guest`'s return codes): a system instruction is performed by `tcg_sys`, an
//! exception or interrupt is delivered through the IDT by `sys::interrupt::deliver`, `hlt`
//! parks the vCPU until its local APIC has something for it. Interrupts are taken between
//! blocks: a device or timer that raises one makes the target's local APIC kick the vCPU
//! (its exit request), which brings it back here, where the highest-priority vector (or
//! the 8259's, through LINT0 in ExtINT mode) is acknowledged and delivered when RFLAGS.IF
//! allows.
//!
//! **SMP.** The vCPUs run round-robin on one host thread, each for a slice of [`SLICE`], cut
//! short when it halts, when it executes `pause` (a spin-wait: what it waits for needs
//! another vCPU), or when another vCPU is kicked (an IPI or an interrupt routed there, so
//! wake-ups between vCPUs take a block, not a slice); application processors wait for INIT
//! and start-up IPIs and begin in real mode at the SIPI vector, as on hardware.
//!
//! **Local APIC accesses.** Every vCPU sees its own local APIC at 0xFEE0_0000; the MMIO bus is
//! shared, so the vCPU loop records which vCPU runs ([`CURRENT_CPU`]) and the APIC's bus
//! device routes the access there.
//!
//! Documented gaps: NMIs are not blocked until the next `iret`; a halted vCPU with IF = 0
//! wakes only for NMI, INIT or SIPI, and one with both an interrupt and an NMI waiting wakes
//! for the interrupt's sake too.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use accel_tcg::{Engine, EngineConfig, ExitRequester, PhysMemory, RamAndBus, Vcpu};
use devices::apic::lapic::LocalApic;
use devices::apic::router::ApicBus;
use devices::apic::VcpuKicker;
use devices::bus::{Bus, BusDevice};
use devices::clock::{Clock, HostClock};
use devices::exit::ExitRequester as RunExit;
use devices::irq::IrqLine;
use frontend::x86_64::sys::interrupt::{self, Event, EventKind};
use frontend::x86_64::sys::seg::{ATTR_P, ATTR_S};
use frontend::x86_64::sys::{PhysMem, Segment, SystemState};
use frontend::x86_64::translate::SysOp;
use frontend::x86_64::X86Cpu;
use vm_memory::GuestMemoryMmap;

use super::irqchip::IrqChip;
use super::machine::{self, MachineConfig, MachineError};
use super::phys_mem::RamPhysMem;
use super::tcg_guest::{X86SystemGuest, RET_EXCEPTION, RET_HLT, RET_INTERRUPT, RET_SYSTEM};
use super::tcg_sys::{self, SysEnv, TlbFlush};
use super::{tcg_boot, Outcome};
use crate::run_control::RunControl;

/// The TSC frequency of the machine (the TSC counts host monotonic time at this rate).
pub const TSC_HZ: u64 = 2_000_000_000;
/// How long one vCPU runs before the next gets the thread (more than one vCPU).
pub const SLICE: Duration = Duration::from_millis(4);
/// The local APIC's MMIO window.
const LAPIC_BASE: u64 = 0xfee0_0000;
const LAPIC_LEN: u64 = 0x1000;

thread_local! {
    /// The vCPU the current thread runs (whose local APIC 0xFEE0_0000 reaches).
    static CURRENT_CPU: Cell<usize> = const { Cell::new(0) };
}

/// The local APICs at 0xFEE0_0000, each vCPU seeing its own.
struct LapicMmio(Arc<ApicBus>);

impl BusDevice for LapicMmio {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let cpu = CURRENT_CPU.get();
        let reg = self.0.read(cpu, (offset & !3) as u32).unwrap_or(0);
        let bytes = reg.to_le_bytes();
        let start = (offset & 3) as usize;
        for (i, d) in data.iter_mut().enumerate() {
            *d = bytes.get(start + i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        // The registers take aligned 32-bit writes (SDM 11.4.1); narrower ones are dropped.
        if data.len() < 4 || offset & 3 != 0 {
            log::debug!(
                "local APIC: {}-byte write at {offset:#x} ignored",
                data.len()
            );
            return;
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let _ = self.0.write(CURRENT_CPU.get(), offset as u32, v);
    }
}

/// Makes a vCPU look at its local APIC: its exit request, and a wake-up for the thread
/// parked while every vCPU halts.
#[derive(Default)]
struct Kicker {
    requesters: OnceLock<Vec<ExitRequester>>,
    runner: OnceLock<Thread>,
    /// The vCPU the runner thread is running now.
    running: AtomicUsize,
    /// Per vCPU: kicked while another one ran; its turn should come soon (an IPI, a device
    /// interrupt routed to it), so the running vCPU ends its slice at its next block.
    waiting: OnceLock<Vec<AtomicBool>>,
}

impl Kicker {
    fn kick_all(&self) {
        if let Some(r) = self.requesters.get() {
            r.iter().for_each(ExitRequester::request);
        }
        if let Some(t) = self.runner.get() {
            t.unpark();
        }
    }
}

impl VcpuKicker for Kicker {
    fn kick(&self, cpu: usize) {
        if let Some(r) = self.requesters.get().and_then(|r| r.get(cpu)) {
            r.request();
        }
        let running = self.running.load(Ordering::Acquire);
        if running != cpu {
            if let Some(w) = self.waiting.get().and_then(|w| w.get(cpu)) {
                w.store(true, Ordering::Release);
            }
            if let Some(r) = self.requesters.get().and_then(|r| r.get(running)) {
                r.request();
            }
        }
        if let Some(t) = self.runner.get() {
            t.unpark();
        }
    }
}

/// Guest RAM for the machine's own writes (interrupt frames, descriptor flags, `ins`):
/// translated code on the pages written is dropped, as for guest stores.
struct CodeAwareRam<'a> {
    ram: &'a GuestMemoryMmap,
    engine: &'a Engine<X86SystemGuest>,
}

impl PhysMem for CodeAwareRam<'_> {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool {
        RamPhysMem(self.ram).read(paddr, buf)
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> bool {
        let ok = RamPhysMem(self.ram).write(paddr, data);
        if ok {
            self.engine
                .invalidate_phys_range(paddr, paddr + data.len() as u64);
        }
        ok
    }
}

/// The physical address space as a PC's CPU sees it: RAM, devices, and an open bus
/// elsewhere (reads return all ones, writes vanish), where the softmmu would otherwise
/// raise a bus error.
struct PcPhysMemory(RamAndBus);

impl PhysMemory for PcPhysMemory {
    fn ram_page(&self, paddr: u64) -> Option<NonNull<u8>> {
        self.0.ram_page(paddr)
    }

    fn mmio_read(&self, paddr: u64, data: &mut [u8]) -> bool {
        if !self.0.mmio_read(paddr, data) {
            log::debug!("read from unmapped physical address {paddr:#x}: all ones");
            data.fill(0xff);
        }
        true
    }

    fn mmio_write(&self, paddr: u64, data: &[u8]) -> bool {
        if !self.0.mmio_write(paddr, data) {
            log::debug!("write to unmapped physical address {paddr:#x} dropped");
        }
        true
    }
}

/// Where a vCPU stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Running,
    /// In `hlt`, until its local APIC has an event for it.
    Halted,
    /// An application processor before (or after an INIT, waiting for) its start-up IPI.
    WaitForSipi,
}

struct VcpuSlot {
    index: usize,
    vcpu: Vcpu<X86SystemGuest>,
    state: RunState,
}

/// What every vCPU shares.
struct Shared {
    ram: GuestMemoryMmap,
    pio: Bus,
    chip: Arc<IrqChip>,
    control: Arc<RunControl>,
    cpus: u32,
    kicker: Arc<Kicker>,
}

/// Builds the machine, runs it to its end and returns how it ended.
pub fn run(config: &MachineConfig, tcg: &crate::TcgOptions) -> Result<Outcome, MachineError> {
    machine::check_config(config)?;
    let mem = machine::guest_memory(config)?;
    let control = Arc::new(RunControl::default());
    let exit: Arc<dyn RunExit> = control.clone();

    let clock: Arc<dyn Clock> = Arc::new(HostClock);
    let kicker = Arc::new(Kicker::default());
    let chip = Arc::new(IrqChip::new(
        config.cpus as usize,
        TSC_HZ,
        clock.clone(),
        kicker.clone(),
    )?);
    let chip_line =
        |gsi: u32| -> Result<Arc<dyn IrqLine>, MachineError> { Ok(chip.irq_line(gsi)?) };
    let (dma_engine, dma) = crate::code_invalidator::<X86SystemGuest>();
    let mut devices = machine::build_devices(config, &chip_line, &mem, &exit, Some(dma))?;
    chip.insert_into(&mut devices.pio, &mut devices.mmio)?;
    devices.mmio.insert(
        Arc::new(Mutex::new(LapicMmio(chip.apic_bus().clone()))),
        LAPIC_BASE,
        LAPIC_LEN,
    )?;
    let setup = machine::load_guest(config, &mem, &devices.virtio_slots, true)?;

    let engine = Engine::new(
        X86SystemGuest::new(mem.clone()),
        Arc::new(PcPhysMemory(RamAndBus::new(
            mem.clone(),
            devices.mmio.clone(),
        ))),
        EngineConfig {
            mode: tcg.exec_mode,
            log: tcg.log.clone(),
            system: true,
            ..EngineConfig::default()
        },
    )?;
    let _ = dma_engine.set(Arc::downgrade(&engine));

    let mut slots = Vec::new();
    for index in 0..config.cpus as usize {
        let mut cpu = X86Cpu::new(0);
        cpu.host_range = Some(accel_tcg::helper_host_range::<X86SystemGuest>);
        let state = if index == 0 {
            tcg_boot::apply(&setup.cpu, &mut cpu);
            tcg_sys::sync_bases(&mut cpu);
            RunState::Running
        } else {
            RunState::WaitForSipi
        };
        slots.push(VcpuSlot {
            index,
            vcpu: Vcpu::new(engine.clone(), cpu),
            state,
        });
    }
    let _ = kicker
        .requesters
        .set(slots.iter().map(|s| s.vcpu.exit_requester()).collect());
    let _ = kicker
        .waiting
        .set(slots.iter().map(|_| AtomicBool::new(false)).collect());

    let mut terminal = machine::attach_console(config, &devices.serial, &exit)?;
    let stop = Arc::new(AtomicBool::new(false));
    let timers = chip.spawn_timer_thread(stop.clone());
    let shared = Shared {
        ram: mem,
        pio: devices.pio,
        chip: chip.clone(),
        control: control.clone(),
        cpus: config.cpus,
        kicker: kicker.clone(),
    };
    let slicer = (config.cpus > 1).then(|| {
        let (kicker, stop) = (kicker.clone(), stop.clone());
        std::thread::Builder::new()
            .name("tern-slices".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(SLICE);
                    kicker.kick_all();
                }
            })
    });
    let slicer = slicer.transpose().map_err(MachineError::Thread)?;
    let runner = {
        let kicker = kicker.clone();
        std::thread::Builder::new()
            .name("tern-vcpus".into())
            .spawn(move || {
                let _ = kicker.runner.set(std::thread::current());
                run_vcpus(slots, &shared);
            })
            .map_err(MachineError::Thread)?
    };

    let outcome = control.wait(config.timeout);
    stop.store(true, Ordering::Release);
    chip.wake_timer_thread();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !runner.is_finished() && Instant::now() < deadline {
        kicker.kick_all();
        std::thread::sleep(Duration::from_millis(1));
    }
    let stuck = !runner.is_finished();
    if !stuck {
        let _ = runner.join();
    }
    let _ = timers.join();
    if let Some(s) = slicer {
        let _ = s.join();
    }
    if let Err(e) = terminal.restore() {
        log::warn!("cannot restore the terminal: {e}");
    }
    if stuck {
        return Ok(Outcome::Unresponsive(format!(
            "the vCPUs did not stop within 2 s after the run ended ({outcome:?})"
        )));
    }
    Ok(outcome)
}

/// Runs the vCPUs round-robin until the run ends.
fn run_vcpus(mut slots: Vec<VcpuSlot>, m: &Shared) {
    round_robin(&mut slots, m);
    if let Some(first) = slots.first() {
        let e = first.vcpu.engine().stats();
        log::info!(
            "JIT: {} blocks translated ({} guest instructions, {:.2} s), {} code flushes",
            e.translations.load(Ordering::Relaxed),
            e.guest_insns.load(Ordering::Relaxed),
            e.translate_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            e.flushes.load(Ordering::Relaxed)
        );
    }
    for slot in &slots {
        log::info!("vCPU {}: {:?}", slot.index, slot.vcpu.stats());
    }
    if m.control.timed_out() {
        for slot in &slots {
            let cpu = slot.vcpu.cpu();
            log::warn!(
                "vCPU {} stopped by the time limit ({:?}) at RIP {:#x}, RSP {:#x}, CPL {}",
                slot.index,
                slot.state,
                cpu.rip,
                cpu.regs[4],
                cpu.sys.cpl
            );
        }
    }
}

fn round_robin(slots: &mut [VcpuSlot], m: &Shared) {
    loop {
        let mut ran = false;
        for slot in slots.iter_mut() {
            if m.control.stopping() {
                return;
            }
            CURRENT_CPU.set(slot.index);
            m.kicker.running.store(slot.index, Ordering::Release);
            if let Some(w) = m.kicker.waiting.get().and_then(|w| w.get(slot.index)) {
                w.store(false, Ordering::Release);
            }
            service_apic(slot, m);
            if slot.state != RunState::Running {
                continue;
            }
            ran = true;
            if let Err(outcome) = run_slice(slot, m) {
                m.control.finish(outcome);
                return;
            }
        }
        if !ran {
            // Every vCPU waits; a kick (interrupt, timer, the end of the run) unparks us.
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }
}

/// Whether a vCPU other than the running one was kicked since its last turn.
fn another_vcpu_waits(m: &Shared) -> bool {
    m.kicker
        .waiting
        .get()
        .is_some_and(|w| w.iter().any(|k| k.load(Ordering::Acquire)))
}

/// INIT and start-up IPIs, and the end of `hlt`.
fn service_apic(slot: &mut VcpuSlot, m: &Shared) {
    let Ok(lapic) = m.chip.apic_bus().lapic(slot.index) else {
        return;
    };
    let mut l = lapic.lock().unwrap_or_else(|e| e.into_inner());
    let ipis = l.take_init_sipi();
    if ipis.init && slot.index != 0 {
        log::debug!("vCPU {}: INIT", slot.index);
        slot.state = RunState::WaitForSipi;
    }
    if let (Some(vector), RunState::WaitForSipi) = (ipis.sipi_vector, slot.state) {
        log::debug!("vCPU {}: start-up IPI, vector {vector:#x}", slot.index);
        start_in_real_mode(slot.vcpu.cpu_mut(), vector);
        slot.vcpu.flush_tlb();
        slot.state = RunState::Running;
    }
    if slot.state == RunState::Halted && wakes_from_hlt(&l, slot.vcpu.cpu()) {
        slot.state = RunState::Running;
    }
}

/// The state after INIT, then a start-up IPI with `vector`: real mode, CS = vector << 8,
/// IP = 0 (`rip` linear in 16-bit code: the page `vector << 12`).
fn start_in_real_mode(cpu: &mut X86Cpu, vector: u8) {
    let fresh = X86Cpu::new(0);
    cpu.regs = [0; 16];
    cpu.xmm = fresh.xmm;
    cpu.mxcsr = fresh.mxcsr;
    cpu.fpr = fresh.fpr;
    cpu.fpu_top = fresh.fpu_top;
    cpu.fpu_tags = fresh.fpu_tags;
    cpu.fpu_cw = fresh.fpu_cw;
    cpu.fpu_sw = fresh.fpu_sw;
    cpu.sys = SystemState::reset();
    let cs = cpu.sys.seg_mut(Segment::Cs);
    cs.selector = u16::from(vector) << 8;
    cs.base = u64::from(vector) << 12;
    cs.limit = 0xffff;
    cs.attr = ATTR_P | ATTR_S | 0xb;
    cpu.rip = u64::from(vector) << 12;
    cpu.set_rflags(2);
    tcg_sys::sync_bases(cpu);
}

/// Runs one vCPU until it halts, its slice ends (several vCPUs) or the run ends.
fn run_slice(slot: &mut VcpuSlot, m: &Shared) -> Result<(), Outcome> {
    let start = Instant::now();
    loop {
        take_interrupt(slot, m)?;
        let code = slot.vcpu.run().map_err(|e| {
            Outcome::GuestCrash(format!(
                "vCPU {}: JIT engine error at RIP {:#x}: {e}",
                slot.index,
                slot.vcpu.cpu().rip
            ))
        })?;
        match code {
            RET_HLT => {
                if !interrupt_waiting(slot, m) {
                    slot.state = RunState::Halted;
                    return Ok(());
                }
            }
            RET_SYSTEM => {
                let pause = slot.vcpu.cpu().sys_insn().map(|i| i.op) == Some(SysOp::Pause);
                system_instruction(slot, m)?;
                // A spin-wait: whatever it waits for needs another vCPU to run.
                if pause && m.cpus > 1 {
                    return Ok(());
                }
            }
            RET_EXCEPTION => {
                let cpu = slot.vcpu.cpu();
                let vector = cpu.cause as u8;
                let error_code = has_error_code(vector).then_some(cpu.error_code as u32);
                deliver(
                    slot,
                    m,
                    Event {
                        vector,
                        kind: EventKind::Exception,
                        error_code,
                        cr2: None,
                    },
                )?;
            }
            RET_INTERRUPT => {
                if m.control.stopping()
                    || (m.cpus > 1 && (start.elapsed() >= SLICE || another_vcpu_waits(m)))
                {
                    return Ok(());
                }
            }
            other => {
                return Err(Outcome::GuestCrash(format!(
                    "vCPU {}: unexpected return {other} from the JIT",
                    slot.index
                )))
            }
        }
    }
}

/// Exceptions that push an error code (SDM table 6-1).
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}

/// Whether an interrupt the CPU would take now is waiting (`hlt` then returns at once).
fn interrupt_waiting(slot: &VcpuSlot, m: &Shared) -> bool {
    let Ok(lapic) = m.chip.apic_bus().lapic(slot.index) else {
        return false;
    };
    let l = lapic.lock().unwrap_or_else(|e| e.into_inner());
    wakes_from_hlt(&l, slot.vcpu.cpu())
}

/// Whether the local APIC has an event that ends `hlt` for `cpu`: anything with RFLAGS.IF
/// set; with it clear only NMI, INIT or SIPI (see the module documentation's gap).
fn wakes_from_hlt(l: &LocalApic, cpu: &X86Cpu) -> bool {
    let interrupt = l.pending().is_some() || l.ext_int_pending();
    l.has_event() && (!interrupt || tcg_sys::interrupts_enabled(cpu))
}

/// Delivers the NMI or the maskable interrupt the local APIC (or the 8259 through it) has for
/// the vCPU, if the CPU takes it now.
fn take_interrupt(slot: &mut VcpuSlot, m: &Shared) -> Result<(), Outcome> {
    let Ok(lapic) = m.chip.apic_bus().lapic(slot.index) else {
        return Ok(());
    };
    let mut l = lapic.lock().unwrap_or_else(|e| e.into_inner());
    let event = if l.take_nmi() {
        Event {
            vector: frontend::x86_64::sys::NMI,
            kind: EventKind::Nmi,
            error_code: None,
            cr2: None,
        }
    } else if !tcg_sys::interrupts_enabled(slot.vcpu.cpu()) {
        return Ok(());
    } else if let Some(v) = l.pending() {
        Event::external(l.acknowledge(v))
    } else if l.ext_int_pending() {
        l.ack_ext_int();
        // The 8259's INTA may lower its INTR, which reaches this APIC's LINT0: unlock first.
        drop(l);
        Event::external(m.chip.pic().acknowledge())
    } else {
        return Ok(());
    };
    deliver(slot, m, event)
}

/// Delivers `event` through the IDT; a triple fault (or an event outside long mode, which
/// tern does not deliver) ends the run.
fn deliver(slot: &mut VcpuSlot, m: &Shared, event: Event) -> Result<(), Outcome> {
    let engine = slot.vcpu.engine().clone();
    let cpu = slot.vcpu.cpu_mut();
    let mut regs = tcg_sys::regs_of(cpu, cpu.rip);
    let mut mem = CodeAwareRam {
        ram: &m.ram,
        engine: &engine,
    };
    match interrupt::deliver(&mut regs, &mut cpu.sys, &mut mem, event) {
        Ok(()) => {
            tcg_sys::set_regs(cpu, &regs);
            tcg_sys::sync_bases(cpu);
            Ok(())
        }
        Err(interrupt::DeliveryError::TripleFault) => Err(Outcome::GuestCrash(format!(
            "vCPU {}: guest triple fault (shutdown) delivering vector {} at RIP {:#x}",
            slot.index, event.vector, cpu.rip
        ))),
        Err(interrupt::DeliveryError::NotLongMode) if !idt_holds_any(&cpu.sys, event.vector) => {
            Err(Outcome::GuestCrash(format!(
                "vCPU {}: guest triple fault (shutdown): vector {} at RIP {:#x} with an IDT \
                 (limit {:#x}) that holds neither it, #GP nor #DF",
                slot.index, event.vector, cpu.rip, cpu.sys.idtr.limit
            )))
        }
        Err(interrupt::DeliveryError::NotLongMode) => Err(Outcome::GuestCrash(format!(
            "vCPU {}: {} {} at RIP {:#x} outside long mode, where tern does not deliver events \
             (CR0 {:#x})",
            slot.index,
            if event.kind == EventKind::External {
                "interrupt"
            } else {
                "exception"
            },
            event.vector,
            cpu.rip,
            cpu.sys.cr0
        ))),
    }
}

/// Whether a protected-mode IDT has a gate for `vector`, or failing that for #GP or #DF (the
/// events a missing gate turns into): with none of them, the CPU shuts down, whatever the
/// gates' format. Real mode (an interrupt vector table) always has room.
fn idt_holds_any(s: &SystemState, vector: u8) -> bool {
    const GATE32: u32 = 8;
    let fits = |v: u8| u32::from(s.idtr.limit) >= u32::from(v) * GATE32 + GATE32 - 1;
    s.cr0 & 1 == 0 || fits(vector) || fits(13) || fits(8)
}

/// Performs the system instruction the vCPU stopped on.
fn system_instruction(slot: &mut VcpuSlot, m: &Shared) -> Result<(), Outcome> {
    let Some(insn) = slot.vcpu.cpu().sys_insn() else {
        let cpu = slot.vcpu.cpu();
        return Err(Outcome::GuestCrash(format!(
            "vCPU {}: undecodable system operation {:#x} at RIP {:#x}",
            slot.index, cpu.sys_op, cpu.rip
        )));
    };
    let engine = slot.vcpu.engine().clone();
    let mut mem = CodeAwareRam {
        ram: &m.ram,
        engine: &engine,
    };
    let mut env = SysEnv {
        mem: &mut mem,
        pio: &m.pio,
        apic: m.chip.apic_bus(),
        cpu_index: slot.index,
        cpus: m.cpus,
        tsc: m.chip.tsc(),
        tsc_hz: TSC_HZ,
    };
    match tcg_sys::perform(slot.vcpu.cpu_mut(), insn, &mut env) {
        Ok(TlbFlush::None) => Ok(()),
        Ok(TlbFlush::Page(addr)) => {
            slot.vcpu.flush_tlb_page(addr);
            Ok(())
        }
        Ok(TlbFlush::NonGlobal) => {
            slot.vcpu.flush_tlb_non_global();
            Ok(())
        }
        Ok(TlbFlush::All) => {
            slot.vcpu.flush_tlb();
            Ok(())
        }
        Err(event) => deliver(slot, m, event),
    }
}
