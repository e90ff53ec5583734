//! Device models shared by every tern machine.
//!
//! A device here knows nothing of the accelerator that runs the CPU: it sees register reads
//! and writes through [`bus::BusDevice`], raises interrupts through an [`irq::IrqLine`], asks
//! for the run to end through an [`exit::ExitRequester`], and reaches guest memory through
//! vm-memory's `GuestMemory`. The same models serve KVM and the JIT.

pub mod acpi_pm;
pub mod apic;
pub mod bus;
pub mod clock;
pub mod console;
pub mod debug_exit;
pub mod exit;
pub mod hpet;
pub mod i8042;
pub mod irq;
pub mod pc;
pub mod riscv;
pub mod rtc;
pub mod serial;
pub mod virtio;
