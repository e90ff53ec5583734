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

    /// The earliest timer deadline of all local APICs.
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
