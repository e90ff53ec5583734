//! The PC interrupt architecture as device models, for the x86_64 machine when its CPU runs
//! on the JIT (under KVM the in-kernel irqchip, PIT and their routing stand in for all of
//! this): the 8259 pair, the 8254, the I/O APIC, one local APIC per vCPU and the HPET, wired
//! as a PC wires them.
//!
//! ```text
//!  ISA IRQ n (n < 16) ──┬── 8259 pin n ── INTR ── LINT0 of vCPU 0 (ExtINT)
//!                       └── I/O APIC pin n (IRQ 0: pin 2, the MADT's override)
//!  GSI 16..24 (virtio) ──── I/O APIC pin ── messages ── local APICs (ApicBus)
//!  8254 OUT0 ────────────── ISA IRQ 0
//!  HPET timer ───────────── its I/O APIC pin; legacy mode: ISA IRQ 0 / 8
//! ```
//!
//! Devices get their interrupt wires from [`IrqChip::irq_line`], the same way the KVM machine
//! gets them from `KvmVm::irq_line`. The timers never wait on their own:
//! [`IrqChip::poll`] raises whatever is due and [`IrqChip::next_deadline`] says when to call it
//! again; [`IrqChip::spawn_timer_thread`] does that on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use devices::apic::ioapic::{IoApic, IOAPIC_BASE, IOAPIC_LEN, IOAPIC_PINS};
use devices::apic::lapic::{LocalApic, Tsc};
use devices::apic::router::ApicBus;
use devices::apic::VcpuKicker;
use devices::bus::{Bus, BusDevice, BusError};
use devices::clock::Clock;
use devices::hpet::{Hpet, HPET_BASE, HPET_LEN};
use devices::irq::IrqLine;
use devices::pc::pic::{Pic, ELCR_BASE, PIC_MASTER_BASE, PIC_SLAVE_BASE};
use devices::pc::pit::{Pit, PIT_BASE, PIT_LEN, PORT61_BASE, PORT61_LEN};

/// Longest the timer thread sleeps without looking: the local APIC and HPET do not announce
/// new deadlines (the 8254 does), so a guest that reprograms them is seen within this.
const MAX_TIMER_SLEEP: Duration = Duration::from_millis(1);

/// Errors building the interrupt architecture.
#[derive(Debug, thiserror::Error)]
pub enum IrqChipError {
    /// A local APIC or the APIC bus could not be built.
    #[error("APIC: {0}")]
    Apic(String),
    /// Two devices claim the same port or address.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A GSI beyond the I/O APIC's pins.
    #[error("no interrupt line {0} (the I/O APIC has {IOAPIC_PINS} inputs)")]
    NoSuchGsi(u32),
}

/// The interrupt controllers and timers of one machine.
pub struct IrqChip {
    pic: Pic,
    pit: Pit,
    ioapic: Arc<Mutex<IoApic>>,
    apic_bus: Arc<ApicBus>,
    hpet: Arc<Mutex<Hpet>>,
    /// The time-stamp counter the local APICs' TSC-deadline timers count.
    tsc: Tsc,
    /// Wakes the timer thread early (the 8254 was reprogrammed, or the machine stops).
    wake: Arc<(Mutex<bool>, Condvar)>,
}

/// One ISA interrupt wire: the 8259 input and the I/O APIC input it is also connected to.
struct IsaLine {
    pic: Option<Arc<dyn IrqLine>>,
    ioapic: Arc<dyn IrqLine>,
}

impl IrqLine for IsaLine {
    fn set_level(&self, high: bool) {
        if let Some(pic) = &self.pic {
            pic.set_level(high);
        }
        self.ioapic.set_level(high);
    }
}

/// The wire of `gsi`: ISA IRQs 0-15 drive the 8259 input and the I/O APIC pin (IRQ 0 on
/// pin 2, the MADT's override; IRQ 2 is the 8259's cascade, so only the I/O APIC), GSIs 16-23
/// only the I/O APIC.
fn gsi_line(
    pic: &Pic,
    ioapic: &Arc<Mutex<IoApic>>,
    gsi: u32,
) -> Result<Arc<dyn IrqLine>, IrqChipError> {
    let n = gsi as usize;
    if n >= IOAPIC_PINS {
        return Err(IrqChipError::NoSuchGsi(gsi));
    }
    let pin = IoApic::pin(ioapic, if n == 0 { 2 } else { n })
        .map_err(|e| IrqChipError::Apic(e.to_string()))?;
    if n >= 16 {
        return Ok(pin);
    }
    Ok(Arc::new(IsaLine {
        pic: pic.pin(n).ok(),
        ioapic: pin,
    }))
}

impl IrqChip {
    /// The interrupt architecture of a machine with `cpus` vCPUs (vCPU 0 the bootstrap
    /// processor, APIC IDs = indexes), a TSC of `tsc_hz`, timers on `clock`, and `kicker`
    /// to make a vCPU look at its local APIC.
    pub fn new(
        cpus: usize,
        tsc_hz: u64,
        clock: Arc<dyn Clock>,
        kicker: Arc<dyn VcpuKicker>,
    ) -> Result<IrqChip, IrqChipError> {
        let apic_err = |e: &dyn std::fmt::Display| IrqChipError::Apic(e.to_string());
        let tsc = Tsc::new(tsc_hz, clock.now()).map_err(|e| apic_err(&e))?;
        let lapics = (0..cpus)
            .map(|i| {
                let id = u8::try_from(i).map_err(|e| apic_err(&e))?;
                Ok(Arc::new(Mutex::new(LocalApic::new(
                    id,
                    i == 0,
                    clock.clone(),
                    tsc,
                ))))
            })
            .collect::<Result<Vec<_>, IrqChipError>>()?;
        let apic_bus = ApicBus::new(lapics, kicker).map_err(|e| apic_err(&e))?;
        let ioapic = Arc::new(Mutex::new(IoApic::new(apic_bus.clone())));
        apic_bus.attach_ioapic(&ioapic).map_err(|e| apic_err(&e))?;

        let pic = Pic::new();
        pic.set_output(ApicBus::lint_line(&apic_bus, 0, 0).map_err(|e| apic_err(&e))?);

        let gsi = |n: u32| gsi_line(&pic, &ioapic, n);
        let pit = Pit::new(clock.clone(), gsi(0)?);
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let waker = wake.clone();
        pit.set_deadline_notifier(Arc::new(move || {
            *waker.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            waker.1.notify_all();
        }));
        // The HPET's wires: I/O APIC inputs, except that its legacy routes (inputs 2 and 8)
        // are ISA IRQ 0 and 8, which also reach the 8259.
        let mut hpet_lines = Vec::with_capacity(IOAPIC_PINS);
        for pin in 0..IOAPIC_PINS {
            hpet_lines.push(match pin {
                2 => gsi(0)?,
                8 => gsi(8)?,
                p => IoApic::pin(&ioapic, p).map_err(|e| apic_err(&e))?,
            });
        }
        let hpet = Arc::new(Mutex::new(Hpet::new(clock, hpet_lines)));
        Ok(IrqChip {
            pic,
            pit,
            ioapic,
            apic_bus,
            hpet,
            tsc,
            wake,
        })
    }

    /// The interrupt wire of global system interrupt `gsi`, as the MADT describes them: ISA
    /// IRQs 0-15 reach both the 8259 and the I/O APIC (IRQ 0 on its pin 2), GSIs 16-23 only
    /// the I/O APIC.
    pub fn irq_line(&self, gsi: u32) -> Result<Arc<dyn IrqLine>, IrqChipError> {
        gsi_line(&self.pic, &self.ioapic, gsi)
    }

    /// Puts the port devices (8259s and ELCR, 8254, port 0x61) on `pio` and the memory-mapped
    /// ones (I/O APIC, HPET) on `mmio`. Local APIC accesses are per vCPU: the CPU side sends
    /// them to [`IrqChip::apic_bus`].
    pub fn insert_into(&self, pio: &mut Bus, mmio: &mut Bus) -> Result<(), IrqChipError> {
        let pic: Arc<Mutex<dyn BusDevice>> = Arc::new(Mutex::new(self.pic.clone()));
        for base in [PIC_MASTER_BASE, PIC_SLAVE_BASE, ELCR_BASE] {
            pio.insert(pic.clone(), base, 2)?;
        }
        pio.insert(Arc::new(Mutex::new(self.pit.clone())), PIT_BASE, PIT_LEN)?;
        pio.insert(
            Arc::new(Mutex::new(self.pit.port61())),
            PORT61_BASE,
            PORT61_LEN,
        )?;
        mmio.insert(self.ioapic.clone(), IOAPIC_BASE, IOAPIC_LEN)?;
        mmio.insert(self.hpet.clone(), HPET_BASE, HPET_LEN)?;
        Ok(())
    }

    /// The machine's time-stamp counter (what `rdtsc` reads before the guest's offset).
    pub fn tsc(&self) -> Tsc {
        self.tsc
    }

    /// The 8259 pair (the CPU side acknowledges ExtINT through it).
    pub fn pic(&self) -> &Pic {
        &self.pic
    }

    /// The local APICs and their bus.
    pub fn apic_bus(&self) -> &Arc<ApicBus> {
        &self.apic_bus
    }

    /// Raises every timer interrupt that is due.
    pub fn poll(&self) {
        self.pit.poll();
        self.hpet.lock().unwrap_or_else(|e| e.into_inner()).poll();
        self.apic_bus.poll();
    }

    /// The earliest instant at which [`IrqChip::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let hpet = self
            .hpet
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_deadline();
        [
            self.pit.next_deadline(),
            hpet,
            self.apic_bus.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Polls the timers on a thread of its own until `stop` is set (then call
    /// [`IrqChip::wake_timer_thread`] so it notices at once).
    pub fn spawn_timer_thread(self: &Arc<Self>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let chip = self.clone();
        std::thread::Builder::new()
            .name("tern-timers".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    chip.poll();
                    let now = Instant::now();
                    let sleep = chip
                        .next_deadline()
                        .map_or(MAX_TIMER_SLEEP, |d| d.saturating_duration_since(now))
                        .min(MAX_TIMER_SLEEP);
                    let (flag, cv) = &*chip.wake;
                    let mut woken = flag.lock().unwrap_or_else(|e| e.into_inner());
                    if !*woken {
                        woken = cv
                            .wait_timeout(woken, sleep)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    *woken = false;
                }
            })
            .expect("spawning the timer thread")
    }

    /// Wakes the timer thread (after a stop request, or a timer reprogrammed by the guest).
    pub fn wake_timer_thread(&self) {
        let (flag, cv) = &*self.wake;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devices::clock::ManualClock;
    use std::sync::atomic::AtomicU32;

    #[derive(Default)]
    struct Kicks(AtomicU32);

    impl VcpuKicker for Kicks {
        fn kick(&self, _cpu: usize) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn chip(cpus: usize) -> (Arc<ManualClock>, Arc<Kicks>, IrqChip, Bus, Bus) {
        let clock = Arc::new(ManualClock::new());
        let kicks = Arc::new(Kicks::default());
        let chip = IrqChip::new(cpus, 1_000_000_000, clock.clone(), kicks.clone()).unwrap();
        let (mut pio, mut mmio) = (Bus::new(), Bus::new());
        chip.insert_into(&mut pio, &mut mmio).unwrap();
        (clock, kicks, chip, pio, mmio)
    }

    fn outb(bus: &Bus, port: u64, v: u8) {
        bus.write(port, &[v]).unwrap();
    }

    fn mmio32(bus: &Bus, addr: u64, v: u32) {
        bus.write(addr, &v.to_le_bytes()).unwrap();
    }

    /// Linux's 8259 initialisation (vectors 0x20 and 0x28), everything unmasked.
    fn init_pic(pio: &Bus) {
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0x00),
            (0xa1, 0x00),
        ] {
            outb(pio, port, v);
        }
    }

    /// Takes the pending IRQ 0 (INTA and EOI), as a CPU's handler would.
    fn take_irq0(chip: &IrqChip, pio: &Bus) {
        assert!(chip.pic().intr());
        assert_eq!(chip.pic().acknowledge(), 0x20);
        outb(pio, 0x20, 0x20);
        assert!(!chip.pic().intr());
    }

    /// Enables vCPU `cpu`'s local APIC (spurious vector 0xff, software enable).
    fn enable_lapic(chip: &IrqChip, cpu: usize) {
        chip.apic_bus().write(cpu, 0xf0, 0x1ff).unwrap();
    }

    #[test]
    fn an_isa_irq_routed_by_the_ioapic_reaches_the_named_cpus_local_apic() {
        let (_clock, kicks, chip, _pio, mmio) = chip(2);
        enable_lapic(&chip, 1);
        // Redirection entry of pin 4 (COM1): vector 0x34, fixed, physical, edge, to APIC 1.
        mmio32(&mmio, IOAPIC_BASE, 0x10 + 2 * 4);
        mmio32(&mmio, IOAPIC_BASE + 0x10, 0x34);
        mmio32(&mmio, IOAPIC_BASE, 0x10 + 2 * 4 + 1);
        mmio32(&mmio, IOAPIC_BASE + 0x10, 1 << 24);
        let com1 = chip.irq_line(4).unwrap();
        com1.set_level(true);
        com1.set_level(false);
        let lapic1 = chip.apic_bus().lapic(1).unwrap();
        assert_eq!(lapic1.lock().unwrap().pending(), Some(0x34));
        assert!(kicks.0.load(Ordering::SeqCst) > 0, "the vCPU was kicked");
        assert_eq!(
            chip.apic_bus().lapic(0).unwrap().lock().unwrap().pending(),
            None
        );
    }

    #[test]
    fn the_8254_ticks_the_boot_cpu_through_the_8259_and_lint0_extint() {
        let (clock, _kicks, chip, pio, _mmio) = chip(1);
        init_pic(&pio);
        // Mode 2 at 100 Hz. Programming raises OUT once (a real edge on the chip): take it.
        outb(&pio, 0x43, 0x34);
        outb(&pio, 0x40, 0x9c);
        outb(&pio, 0x40, 0x2e);
        take_irq0(&chip, &pio);
        let lapic0 = chip.apic_bus().lapic(0).unwrap().clone();
        clock.advance(Duration::from_millis(5));
        chip.poll();
        assert!(!lapic0.lock().unwrap().ext_int_pending(), "half a period");
        clock.advance(Duration::from_millis(6));
        chip.poll();
        assert!(lapic0.lock().unwrap().ext_int_pending());
        assert_eq!(chip.pic().acknowledge(), 0x20);
        let deadline = chip.next_deadline().unwrap();
        assert!(deadline > clock.now() && deadline <= clock.now() + Duration::from_millis(10));
    }

    #[test]
    fn a_virtio_gsi_reaches_only_the_ioapic_and_gsis_past_its_pins_are_refused() {
        let (_clock, _kicks, chip, pio, mmio) = chip(1);
        init_pic(&pio);
        enable_lapic(&chip, 0);
        // Pin 16: vector 0x41, level-triggered, to APIC 0.
        mmio32(&mmio, IOAPIC_BASE, 0x10 + 2 * 16);
        mmio32(&mmio, IOAPIC_BASE + 0x10, 0x41 | 1 << 15);
        mmio32(&mmio, IOAPIC_BASE, 0x10 + 2 * 16 + 1);
        mmio32(&mmio, IOAPIC_BASE + 0x10, 0);
        chip.irq_line(16).unwrap().set_level(true);
        let lapic0 = chip.apic_bus().lapic(0).unwrap().clone();
        assert_eq!(lapic0.lock().unwrap().pending(), Some(0x41));
        assert!(!chip.pic().intr(), "GSI 16 has no 8259 input");
        assert!(matches!(
            chip.irq_line(24),
            Err(IrqChipError::NoSuchGsi(24))
        ));
    }

    #[test]
    fn the_hpet_in_legacy_mode_replaces_the_8254_on_isa_irq_0() {
        let (clock, _kicks, chip, pio, mmio) = chip(1);
        init_pic(&pio);
        let hpet = |off: u64, v: u64| mmio.write(HPET_BASE + off, &v.to_le_bytes()).unwrap();
        // Timer 0 periodic every 1 ms, legacy replacement, then enable.
        hpet(0x100, 1 << 2 | 1 << 3 | 1 << 6);
        hpet(0x108, 100_000);
        hpet(0x108, 100_000);
        hpet(0x010, 0b11);
        clock.advance(Duration::from_millis(1));
        chip.poll();
        assert!(chip.pic().intr(), "IRQ 0 through the 8259");
        assert_eq!(chip.pic().acknowledge(), 0x20);
    }

    #[test]
    fn the_timer_thread_polls_and_stops_when_asked() {
        let kicks = Arc::new(Kicks::default());
        let chip = Arc::new(
            IrqChip::new(1, 1_000_000_000, Arc::new(devices::clock::HostClock), kicks).unwrap(),
        );
        let (mut pio, mut mmio) = (Bus::new(), Bus::new());
        chip.insert_into(&mut pio, &mut mmio).unwrap();
        init_pic(&pio);
        outb(&pio, 0x43, 0x34);
        outb(&pio, 0x40, 0xa9); // 1193 counts: about 1 ms
        outb(&pio, 0x40, 0x04);
        take_irq0(&chip, &pio);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = chip.spawn_timer_thread(stop.clone());
        let start = Instant::now();
        while !chip.pic().intr() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(chip.pic().intr(), "the thread raised IRQ 0 on its own");
        stop.store(true, Ordering::Release);
        chip.wake_timer_thread();
        thread.join().unwrap();
    }
}
