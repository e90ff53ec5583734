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

/// An [`ExitRequester`] that records every request in order: for tests of devices that end the
/// run (the machine's own requester keeps only the first).
#[derive(Debug, Default)]
pub struct RecordingExit {
    requests: std::sync::Mutex<Vec<ExitReason>>,
}

impl RecordingExit {
    /// The requests so far, oldest first.
    pub fn requests(&self) -> Vec<ExitReason> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ExitRequester for RecordingExit {
    fn request_exit(&self, reason: ExitReason) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reason);
    }
}
