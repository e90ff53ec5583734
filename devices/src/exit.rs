//! How a device asks the machine to stop running the guest.
//!
//! Power-off, reset and QEMU's isa-debug-exit are device actions that end the run. The device
//! only states what happened; the machine decides how to stop its vCPUs and what exit status
//! `tern` returns.

/// Why a device asked for the run to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered the machine off (ACPI S5).
    PowerOff,
    /// The guest reset the machine (i8042 pulse, ACPI reset). tern has no firmware to reboot
    /// into, so a reset ends the run as QEMU's `-no-reboot` does.
    Reset,
    /// The guest wrote `value` to the isa-debug-exit port; tern exits with `(value << 1) | 1`.
    DebugExit(u32),
    /// The user typed Ctrl-A x on the serial console.
    UserQuit,
}

/// Receives requests to end the run. Implemented by the machine.
pub trait ExitRequester: Send + Sync {
    /// Asks the machine to stop; the first request wins, later ones are ignored.
    fn request_exit(&self, reason: ExitReason);
}
