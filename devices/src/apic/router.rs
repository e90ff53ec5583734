//! The APIC bus: delivers I/O APIC messages and IPIs to the local APICs, forwards EOIs of
//! level-triggered vectors to the I/O APIC, runs the local timers and kicks vCPUs.
//!
//! Destinations (SDM 11.6.2): a shorthand (self, all including self, all excluding self)
//! overrides the destination field; otherwise every local APIC whose
//! [`LocalApic::matches`] accepts the (mode, destination) pair is a destination.
//!
//! Lowest-priority delivery picks one destination: the one with the lowest arbitration
//! priority, here taken as its processor priority class (PPR bits 7:4), ties going to the
//! lowest vCPU index. The focus processor (one already requesting or servicing the vector,
//! when focus checking is on) wins over all, and a software-disabled APIC is passed over
//! when another can accept. (The SDM leaves the arbitration to the chipset; this one is
//! deterministic.)
//!
//! The vCPU threads reach their own APIC's registers through [`ApicBus::read`] and
//! [`ApicBus::write`], never by locking it and writing directly, so that an EOI or an ICR
//! write can reach the I/O APIC or another APIC after the writer's lock is released (see
//! the locking rules in [`crate::apic`]).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use super::ioapic::IoApic;
use super::lapic::{LocalApic, WriteEffect};
use super::{ApicMessage, ApicMessageSink, DeliveryMode, Shorthand, VcpuKicker};
use crate::irq::IrqLine;

/// Errors from building or using an [`ApicBus`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApicBusError {
    /// No local APIC at all.
    #[error("the APIC bus needs at least one local APIC")]
    NoCpus,
    /// A vCPU index past the last local APIC.
    #[error("no vCPU {cpu} (the machine has {count})")]
    NoSuchCpu { cpu: usize, count: usize },
    /// Two local APICs with the same APIC ID.
    #[error("two local APICs have APIC ID {0}")]
    DuplicateId(u8),
    /// An I/O APIC was attached twice.
    #[error("an I/O APIC is already attached")]
    IoApicAttached,
}

/// The APIC bus of one machine.
pub struct ApicBus {
    lapics: Vec<Arc<Mutex<LocalApic>>>,
    kicker: Arc<dyn VcpuKicker>,
    ioapic: OnceLock<Weak<Mutex<IoApic>>>,
}

fn lock(apic: &Mutex<LocalApic>) -> MutexGuard<'_, LocalApic> {
    apic.lock().unwrap_or_else(|p| p.into_inner())
}

impl ApicBus {
    /// A bus joining `lapics` (vCPU `i` owns `lapics[i]`), kicking vCPUs through `kicker`.
    pub fn new(
        lapics: Vec<Arc<Mutex<LocalApic>>>,
        kicker: Arc<dyn VcpuKicker>,
    ) -> Result<Arc<Self>, ApicBusError> {
        if lapics.is_empty() {
            return Err(ApicBusError::NoCpus);
        }
        let mut ids: Vec<u8> = lapics.iter().map(|a| lock(a).apic_id()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ApicBusError::DuplicateId(w[0]));
        }
        Ok(Arc::new(Self {
            lapics,
            kicker,
            ioapic: OnceLock::new(),
        }))
    }

    /// Connects the I/O APIC that EOIs go back to. The bus keeps a weak reference (the I/O
    /// APIC holds the bus as its sink).
    pub fn attach_ioapic(&self, ioapic: &Arc<Mutex<IoApic>>) -> Result<(), ApicBusError> {
        self.ioapic
            .set(Arc::downgrade(ioapic))
            .map_err(|_| ApicBusError::IoApicAttached)
    }

    /// The number of vCPUs.
    pub fn cpu_count(&self) -> usize {
        self.lapics.len()
    }

    /// The local APIC of vCPU `cpu`, for the CPU side's own calls (`pending`, `acknowledge`,
    /// `take_nmi`, ...); register accesses go through [`ApicBus::read`] and
    /// [`ApicBus::write`].
    pub fn lapic(&self, cpu: usize) -> Result<&Arc<Mutex<LocalApic>>, ApicBusError> {
        self.lapics.get(cpu).ok_or(ApicBusError::NoSuchCpu {
            cpu,
            count: self.lapics.len(),
        })
    }

    /// vCPU `cpu` reads its APIC register at `offset`.
    pub fn read(&self, cpu: usize, offset: u32) -> Result<u32, ApicBusError> {
        Ok(lock(self.lapic(cpu)?).read(offset))
    }

    /// vCPU `cpu` writes its APIC register at `offset`; an EOI of a level-triggered vector
    /// reaches the I/O APIC, an ICR write sends its IPI.
    pub fn write(&self, cpu: usize, offset: u32, value: u32) -> Result<(), ApicBusError> {
        let effect = lock(self.lapic(cpu)?).write(offset, value);
        self.apply(cpu, effect);
        Ok(())
    }

    /// vCPU `cpu` writes an APIC MSR (`IA32_APIC_BASE`, `IA32_TSC_DEADLINE`); `Ok(false)`
    /// means the CPU raises #GP.
    pub fn write_msr(&self, cpu: usize, msr: u32, value: u64) -> Result<bool, ApicBusError> {
        Ok(lock(self.lapic(cpu)?).write_msr(msr, value))
    }

    /// vCPU `cpu` reads an APIC MSR; `Ok(None)` means the CPU raises #GP.
    pub fn read_msr(&self, cpu: usize, msr: u32) -> Result<Option<u64>, ApicBusError> {
        Ok(lock(self.lapic(cpu)?).read_msr(msr))
    }

    fn apply(&self, cpu: usize, effect: WriteEffect) {
        match effect {
            WriteEffect::None => {}
            WriteEffect::LevelEoi(vector) => {
                if let Some(ioapic) = self.ioapic.get().and_then(Weak::upgrade) {
                    ioapic.lock().unwrap_or_else(|p| p.into_inner()).eoi(vector);
                }
            }
            WriteEffect::Ipi(message) => self.send(Some(cpu), &message),
        }
    }

    /// Drives LINT0 (`pin` 0) or LINT1 (`pin` 1) of vCPU `cpu`: the 8259's INTR goes to the
    /// boot CPU's LINT0.
    pub fn set_lint(&self, cpu: usize, pin: usize, high: bool) -> Result<(), ApicBusError> {
        let event = {
            let mut apic = lock(self.lapic(cpu)?);
            apic.set_lint(pin, high);
            apic.has_event()
        };
        if event {
            self.kicker.kick(cpu);
        }
        Ok(())
    }

    /// An [`IrqLine`] driving LINT `pin` of vCPU `cpu` (for the 8259's INTR output).
    pub fn lint_line(
        bus: &Arc<ApicBus>,
        cpu: usize,
        pin: usize,
    ) -> Result<Arc<dyn IrqLine>, ApicBusError> {
        bus.lapic(cpu)?;
        Ok(Arc::new(LintLine {
            bus: bus.clone(),
            cpu,
            pin,
        }))
    }

    /// Runs every local APIC's timer, kicking the vCPUs whose timer requested a vector.
    pub fn poll(&self) {
        for (cpu, apic) in self.lapics.iter().enumerate() {
            if lock(apic).poll() {
                self.kicker.kick(cpu);
            }
        }
    }

    /// The earliest timer deadline of all local APICs. It moves only through a vCPU's own
    /// register or MSR write (initial count, LVT timer, `IA32_TSC_DEADLINE`) and through
    /// [`ApicBus::poll`]: a machine with a separate timer thread wakes it after those writes;
    /// a JIT vCPU loop simply re-reads it before it next waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lapics
            .iter()
            .filter_map(|a| lock(a).next_deadline())
            .min()
    }

    /// The vCPUs `message` goes to, `sender` being the vCPU whose ICR sent it (`None` for the
    /// I/O APIC).
    fn destinations(&self, sender: Option<usize>, message: &ApicMessage) -> Vec<usize> {
        let all = 0..self.lapics.len();
        match message.shorthand {
            Shorthand::SelfOnly => sender.into_iter().collect(),
            Shorthand::AllIncludingSelf => all.collect(),
            Shorthand::AllExcludingSelf => all.filter(|&c| Some(c) != sender).collect(),
            Shorthand::None => all
                .filter(|&c| {
                    lock(&self.lapics[c]).matches(message.destination_mode, message.destination)
                })
                .collect(),
        }
    }

    /// Delivers `message` from `sender` and kicks its destinations.
    fn send(&self, sender: Option<usize>, message: &ApicMessage) {
        let mut targets = self.destinations(sender, message);
        if message.delivery_mode == DeliveryMode::LowestPriority && targets.len() > 1 {
            let chosen = targets
                .iter()
                .map(|&c| {
                    let apic = lock(&self.lapics[c]);
                    (
                        !apic.is_focus(message.vector),
                        !apic.enabled(),
                        apic.ppr() & 0xF0,
                        c,
                    )
                })
                .min()
                .map(|(_, _, _, c)| c);
            targets = chosen.into_iter().collect();
        }
        if targets.is_empty() {
            log::debug!("apic bus: no destination for {message:?}");
        }
        for cpu in targets {
            let event = {
                let mut apic = lock(&self.lapics[cpu]);
                apic.receive(message) && apic.has_event()
            };
            if event {
                self.kicker.kick(cpu);
            }
        }
    }
}

impl ApicMessageSink for ApicBus {
    fn deliver(&self, message: &ApicMessage) {
        self.send(None, message);
    }
}

/// A local APIC's LINT input as an [`IrqLine`].
struct LintLine {
    bus: Arc<ApicBus>,
    cpu: usize,
    pin: usize,
}

impl IrqLine for LintLine {
    fn set_level(&self, high: bool) {
        if let Err(e) = self.bus.set_lint(self.cpu, self.pin, high) {
            log::warn!("apic bus: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apic::ioapic::{IOAPIC_BASE, IOAPIC_LEN};
    use crate::apic::lapic::*;
    use crate::bus::Bus;
    use crate::clock::{Clock, ManualClock};
    use std::time::Duration;

    /// Records kicks.
    #[derive(Default)]
    struct Kicks(Mutex<Vec<usize>>);

    impl Kicks {
        fn take(&self) -> Vec<usize> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    impl VcpuKicker for Kicks {
        fn kick(&self, cpu: usize) {
            self.0.lock().unwrap().push(cpu);
        }
    }

    struct Machine {
        bus: Arc<ApicBus>,
        kicks: Arc<Kicks>,
        ioapic: Arc<Mutex<IoApic>>,
        mmio: Bus,
        clock: Arc<ManualClock>,
    }

    /// `cpus` vCPUs with APIC IDs 0, 1, ..., vCPU 0 the BSP, each brought up as Linux does
    /// (flat logical mode, LDR bit = APIC ID, SVR 0x1FF, TPR 0), and an I/O APIC on MMIO.
    fn machine(cpus: u8) -> Machine {
        let clock = Arc::new(ManualClock::new());
        let tsc = Tsc::new(1_000_000_000, clock.now()).unwrap();
        let lapics = (0..cpus)
            .map(|id| Arc::new(Mutex::new(LocalApic::new(id, id == 0, clock.clone(), tsc))))
            .collect();
        let kicks = Arc::new(Kicks::default());
        let bus = ApicBus::new(lapics, kicks.clone()).unwrap();
        let ioapic = Arc::new(Mutex::new(IoApic::new(bus.clone())));
        bus.attach_ioapic(&ioapic).unwrap();
        let mut mmio = Bus::new();
        mmio.insert(ioapic.clone(), IOAPIC_BASE, IOAPIC_LEN)
            .unwrap();
        for cpu in 0..usize::from(cpus) {
            bus.write(cpu, REG_DFR, 0xFFFF_FFFF).unwrap();
            bus.write(cpu, REG_LDR, 1 << (24 + cpu)).unwrap();
            bus.write(cpu, REG_SVR, 0x1FF).unwrap();
            bus.write(cpu, REG_TPR, 0).unwrap();
        }
        Machine {
            bus,
            kicks,
            ioapic,
            mmio,
            clock,
        }
    }

    impl Machine {
        fn program_pin(&self, pin: u32, entry: u64) {
            for (index, value) in [(0x11 + 2 * pin, entry >> 32), (0x10 + 2 * pin, entry)] {
                self.mmio.write(IOAPIC_BASE, &index.to_le_bytes()).unwrap();
                self.mmio
                    .write(IOAPIC_BASE + 0x10, &(value as u32).to_le_bytes())
                    .unwrap();
            }
        }

        fn lapic(&self, cpu: usize) -> MutexGuard<'_, LocalApic> {
            lock(self.bus.lapic(cpu).unwrap())
        }

        /// The CPU takes its pending interrupt (INTA) and returns its vector.
        fn take(&self, cpu: usize) -> Option<u8> {
            let mut apic = self.lapic(cpu);
            let vector = apic.pending()?;
            Some(apic.acknowledge(vector))
        }

        fn ipi(&self, from: usize, high: u32, low: u32) {
            self.bus.write(from, REG_ICR_HIGH, high).unwrap();
            self.bus.write(from, REG_ICR_LOW, low).unwrap();
        }
    }

    #[test]
    fn a_level_virtio_pin_reaches_the_cpu_and_its_eoi_comes_back() {
        let m = machine(2);
        let virtio = IoApic::pin(&m.ioapic, 16).unwrap();
        // Level, active high, fixed, physical destination APIC 1, vector 0x31.
        m.program_pin(16, 0x0100_0000_0000_8031);
        virtio.set_level(true);
        assert_eq!(m.kicks.take(), [1]);
        assert_eq!(m.take(0), None);
        assert_eq!(m.take(1), Some(0x31));
        assert_eq!(m.lapic(1).read(REG_TMR + 0x10), 1 << 17, "TMR: level");
        // The driver has not yet cleared the device's interrupt: the EOI makes the I/O APIC
        // send it again.
        m.bus.write(1, REG_EOI, 0).unwrap();
        assert_eq!(m.kicks.take(), [1]);
        assert_eq!(m.take(1), Some(0x31));
        // Now it has; the EOI clears remote IRR and nothing comes back.
        virtio.set_level(false);
        m.bus.write(1, REG_EOI, 0).unwrap();
        assert!(m.kicks.take().is_empty());
        assert_eq!(m.take(1), None);
        let entry = m.ioapic.lock().unwrap().redirection_entry(16).unwrap();
        assert_eq!(entry & (1 << 14), 0, "remote IRR clear");
        virtio.set_level(true);
        assert_eq!(m.take(1), Some(0x31), "the next assertion is delivered");
    }

    #[test]
    fn a_masked_pin_reaches_no_cpu() {
        let m = machine(1);
        m.program_pin(16, 0x0001_8031);
        IoApic::pin(&m.ioapic, 16).unwrap().set_level(true);
        assert!(m.kicks.take().is_empty());
        assert_eq!(m.take(0), None);
    }

    #[test]
    fn a_fixed_ipi_goes_from_one_apic_to_another() {
        let m = machine(2);
        m.ipi(0, 0x0100_0000, 0x40FD);
        assert_eq!(m.kicks.take(), [1]);
        assert_eq!(m.take(1), Some(0xFD));
        assert_eq!(m.take(0), None);
        // An edge IPI's EOI does not bother the I/O APIC (nothing to observe but no panic).
        m.bus.write(1, REG_EOI, 0).unwrap();
        m.ipi(0, 0x0700_0000, 0x40FD);
        assert!(m.kicks.take().is_empty(), "APIC ID 7 does not exist");
    }

    #[test]
    fn init_then_startup_ipis_are_recorded_for_the_target() {
        let m = machine(2);
        // Linux's wakeup_secondary_cpu_via_init: INIT assert, INIT de-assert, SIPI twice.
        m.ipi(0, 0x0100_0000, 0x0000_C500);
        m.ipi(0, 0x0100_0000, 0x0000_8500);
        m.ipi(0, 0x0100_0000, 0x0000_0698);
        m.ipi(0, 0x0100_0000, 0x0000_0698);
        assert_eq!(m.kicks.take(), [1, 1, 1]);
        assert_eq!(
            m.lapic(1).take_init_sipi(),
            InitSipi {
                init: true,
                sipi_vector: Some(0x98)
            }
        );
        assert_eq!(m.lapic(0).take_init_sipi(), InitSipi::default());
    }

    #[test]
    fn shorthands_override_the_destination() {
        let m = machine(3);
        m.ipi(1, 0, 0x0004_0050); // self
        assert_eq!(m.kicks.take(), [1]);
        m.ipi(1, 0, 0x0008_0051); // all including self
        assert_eq!(m.kicks.take(), [0, 1, 2]);
        m.ipi(1, 0, 0x000C_0052); // all excluding self
        assert_eq!(m.kicks.take(), [0, 2]);
        assert_eq!(m.take(1), Some(0x51));
        assert_eq!(m.take(0), Some(0x52));
        assert_eq!(m.take(2), Some(0x52));
    }

    #[test]
    fn logical_flat_and_cluster_destinations_select_apics() {
        let m = machine(3);
        // Flat: LDR bitmaps 1, 2, 4.
        m.ipi(0, 0x0600_0000, 0x0860);
        assert_eq!(m.kicks.take(), [1, 2]);
        // Cluster: vCPU 0 and 1 in cluster 2 (members 1 and 2), vCPU 2 in cluster 3.
        for (cpu, ldr) in [(0, 0x21), (1, 0x22), (2, 0x31)] {
            m.bus.write(cpu, REG_DFR, 0x0FFF_FFFF).unwrap();
            m.bus.write(cpu, REG_LDR, ldr << 24).unwrap();
        }
        m.ipi(0, 0x2300_0000, 0x0861);
        assert_eq!(m.kicks.take(), [0, 1]);
        m.ipi(0, 0x3100_0000, 0x0862);
        assert_eq!(m.kicks.take(), [2]);
        m.ipi(0, 0x3200_0000, 0x0863);
        assert!(m.kicks.take().is_empty());
    }

    #[test]
    fn lowest_priority_goes_to_the_lowest_processor_priority() {
        let m = machine(3);
        m.bus.write(0, REG_TPR, 0x40).unwrap();
        m.bus.write(1, REG_TPR, 0x20).unwrap();
        m.bus.write(2, REG_TPR, 0x30).unwrap();
        m.ipi(0, 0x0700_0000, 0x0970); // logical 0b111, lowest priority
        assert_eq!(m.kicks.take(), [1]);
        // vCPU 1 now requests 0x70: it is the focus processor for that vector.
        m.bus.write(1, REG_TPR, 0x50).unwrap();
        m.ipi(0, 0x0700_0000, 0x0970);
        assert_eq!(m.kicks.take(), [1], "focus processor");
        m.ipi(0, 0x0700_0000, 0x0971);
        assert_eq!(m.kicks.take(), [2], "no focus: lowest PPR");
    }

    #[test]
    fn nmi_ipis_and_ioapic_nmis_reach_the_cpu() {
        let m = machine(2);
        m.ipi(0, 0x0100_0000, 0x0400);
        assert!(m.lapic(1).take_nmi());
        m.program_pin(5, 0x0000_0400);
        IoApic::pin(&m.ioapic, 5).unwrap().set_level(true);
        assert!(m.lapic(0).take_nmi());
    }

    #[test]
    fn the_8259_reaches_the_boot_cpu_through_lint0() {
        let m = machine(2);
        let intr = ApicBus::lint_line(&m.bus, 0, 0).unwrap();
        intr.set_level(true);
        assert_eq!(m.kicks.take(), [0]);
        assert!(m.lapic(0).ext_int_pending());
        intr.set_level(false);
        assert!(!m.lapic(0).ext_int_pending());
        assert!(ApicBus::lint_line(&m.bus, 2, 0).is_err());
    }

    #[test]
    fn timers_are_polled_and_kick_their_cpu() {
        let m = machine(2);
        m.bus.write(1, REG_LVT_TIMER, 0xEC).unwrap();
        m.bus.write(1, REG_TIMER_DIVIDE, 0b1011).unwrap();
        m.bus.write(1, REG_TIMER_INITIAL, 500).unwrap();
        let deadline = m.bus.next_deadline().unwrap();
        assert_eq!(deadline, m.clock.now() + Duration::from_nanos(500));
        m.bus.poll();
        assert!(m.kicks.take().is_empty());
        m.clock.advance(Duration::from_nanos(500));
        m.bus.poll();
        assert_eq!(m.kicks.take(), [1]);
        assert_eq!(m.take(1), Some(0xEC));
        assert_eq!(m.bus.next_deadline(), None);
    }

    #[test]
    fn the_bus_refuses_bad_configurations() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let tsc = Tsc::new(1, clock.now()).unwrap();
        let kicks = Arc::new(Kicks::default());
        assert_eq!(
            ApicBus::new(vec![], kicks.clone()).err(),
            Some(ApicBusError::NoCpus)
        );
        let twins = (0..2)
            .map(|_| Arc::new(Mutex::new(LocalApic::new(4, false, clock.clone(), tsc))))
            .collect();
        assert_eq!(
            ApicBus::new(twins, kicks).err(),
            Some(ApicBusError::DuplicateId(4))
        );
        let m = machine(1);
        assert_eq!(
            m.bus.attach_ioapic(&m.ioapic),
            Err(ApicBusError::IoApicAttached)
        );
        assert_eq!(
            m.bus.read(1, REG_ID),
            Err(ApicBusError::NoSuchCpu { cpu: 1, count: 1 })
        );
        assert_eq!(
            Tsc::new(0, clock.now()).err(),
            Some(LapicError::TscFrequency)
        );
    }
}
