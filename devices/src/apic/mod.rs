//! The APIC interrupt architecture of the x86_64 machine when its CPU runs on the JIT (under
//! KVM the in-kernel irqchip stands in for it): the I/O APIC that turns device interrupt pins
//! into messages, and the per-CPU local APIC that receives them, prioritises them, sends
//! inter-processor interrupts and runs the local timer.
//!
//! The pieces, from Intel SDM vol. 3 ch. 11 and the 82093AA I/O APIC datasheet:
//!
//! - [`ioapic::IoApic`]: 24 pins at MMIO `0xFEC0_0000`; each pin's redirection entry turns an
//!   assertion into an [`ApicMessage`] handed to an [`ApicMessageSink`].
//! - [`lapic::LocalApic`]: one per vCPU, register file at the xAPIC offsets, reached by the
//!   machine per CPU (`read`/`write`), never through the shared MMIO bus (every CPU sees its
//!   own APIC at `0xFEE0_0000`).
//! - [`router::ApicBus`]: the "APIC bus". It owns the local APICs, is the I/O APIC's sink,
//!   carries IPIs between local APICs, forwards EOIs of level-triggered vectors back to the
//!   I/O APIC and kicks the vCPU that has something new to take.
//!
//! Locking: the I/O APIC sits in an `Arc<Mutex<IoApic>>`, each local APIC in an
//! `Arc<Mutex<LocalApic>>`. The only orders ever taken are "I/O APIC, then one local APIC" and
//! "one local APIC alone"; the router releases a local APIC's lock before it calls the I/O APIC
//! (EOI) or another local APIC (IPI). The CPU side must therefore go through the router for
//! register writes, and must not call the router while holding a local APIC's lock.

pub mod ioapic;
pub mod lapic;
pub mod router;

/// How a message is delivered (the 3-bit "delivery mode" field of redirection entries, LVT
/// entries and the ICR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// `000`: the vector goes to every destination's IRR.
    Fixed,
    /// `001`: the vector goes to one destination, the one with the lowest priority.
    LowestPriority,
    /// `010`: a system-management interrupt.
    Smi,
    /// `100`: a non-maskable interrupt (the vector is ignored).
    Nmi,
    /// `101`: INIT: the destination resets and waits for a start-up IPI.
    Init,
    /// `110`: start-up IPI: the vector is the page number of the start-up code.
    StartUp,
    /// `111`: the vector comes from an external 8259-compatible controller (INTA cycle).
    ExtInt,
}

impl DeliveryMode {
    /// Decodes the 3-bit field; `011` is reserved and gives `None`.
    pub fn from_bits(bits: u32) -> Option<Self> {
        Some(match bits & 7 {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            2 => Self::Smi,
            4 => Self::Nmi,
            5 => Self::Init,
            6 => Self::StartUp,
            7 => Self::ExtInt,
            _ => return None,
        })
    }

    /// The 3-bit field.
    pub fn bits(self) -> u32 {
        match self {
            Self::Fixed => 0,
            Self::LowestPriority => 1,
            Self::Smi => 2,
            Self::Nmi => 4,
            Self::Init => 5,
            Self::StartUp => 6,
            Self::ExtInt => 7,
        }
    }
}

/// How the destination field is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMode {
    /// The destination is an APIC ID (`0xFF` in xAPIC mode: every APIC).
    Physical,
    /// The destination is matched against each APIC's LDR under its DFR model (flat or
    /// cluster).
    Logical,
}

/// The ICR's destination shorthand (bits 19:18); messages from the I/O APIC use `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorthand {
    /// `00`: the destination field says who.
    None,
    /// `01`: the sending APIC only.
    SelfOnly,
    /// `10`: every APIC, the sender included.
    AllIncludingSelf,
    /// `11`: every APIC but the sender.
    AllExcludingSelf,
}

impl Shorthand {
    /// Decodes the 2-bit field.
    pub fn from_bits(bits: u32) -> Self {
        match bits & 3 {
            0 => Self::None,
            1 => Self::SelfOnly,
            2 => Self::AllIncludingSelf,
            _ => Self::AllExcludingSelf,
        }
    }
}

/// One interrupt message on the APIC bus, from the I/O APIC or from a local APIC's ICR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApicMessage {
    /// The vector (ignored for NMI, SMI, INIT and ExtINT).
    pub vector: u8,
    /// How to deliver it.
    pub delivery_mode: DeliveryMode,
    /// How to read `destination`.
    pub destination_mode: DestinationMode,
    /// The 8-bit xAPIC destination.
    pub destination: u8,
    /// Whether the interrupt is level-triggered: its vector's TMR bit gets set, and its EOI is
    /// forwarded to the I/O APIC.
    pub level_triggered: bool,
    /// The destination shorthand (only IPIs have one).
    pub shorthand: Shorthand,
}

/// Where the I/O APIC sends its messages: the [`router::ApicBus`] in a machine, a recorder in
/// tests. Called with the I/O APIC's lock held, so an implementation must not call back into
/// the I/O APIC.
pub trait ApicMessageSink: Send + Sync {
    /// Delivers `message`.
    fn deliver(&self, message: &ApicMessage);
}

/// How the router tells the machine that a vCPU has something new to take (an interrupt, an
/// NMI, INIT or SIPI): the machine wakes it if halted, or makes it leave its translated code
/// to look. Called with no APIC lock held, but possibly with the I/O APIC's: it must be a leaf
/// (atomics, a condvar notify, a signal), never a device lock.
pub trait VcpuKicker: Send + Sync {
    /// Asks vCPU `cpu` (its index among the router's local APICs) to look at its APIC.
    fn kick(&self, cpu: usize);
}
