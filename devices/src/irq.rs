//! Interrupt lines from devices to whatever interrupt controller the machine has.
//!
//! A device holds an `Arc<dyn IrqLine>` and drives it like the wire on real hardware: high while
//! it has an interrupt pending, low once the guest has serviced it. Edge-triggered inputs (the
//! ISA IRQs on an 8259) see the rising edge; level-triggered ones (IOAPIC pins used by
//! virtio-mmio) see the level. Under KVM the line becomes `KVM_IRQ_LINE`; under the JIT it
//! becomes an input of the emulated interrupt controller.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// One interrupt wire.
pub trait IrqLine: Send + Sync {
    /// Drives the wire to `high`.
    fn set_level(&self, high: bool);
}

/// An [`IrqLine`] that remembers its level and counts rising edges: for machines without an
/// interrupt controller and for tests.
#[derive(Debug, Default)]
pub struct RecordingIrq {
    level: AtomicBool,
    rising_edges: AtomicU32,
}

impl RecordingIrq {
    /// The current level of the wire.
    pub fn level(&self) -> bool {
        self.level.load(Ordering::SeqCst)
    }

    /// How many times the wire went from low to high.
    pub fn rising_edges(&self) -> u32 {
        self.rising_edges.load(Ordering::SeqCst)
    }
}

impl IrqLine for RecordingIrq {
    fn set_level(&self, high: bool) {
        if !self.level.swap(high, Ordering::SeqCst) && high {
            self.rising_edges.fetch_add(1, Ordering::SeqCst);
        }
    }
}
