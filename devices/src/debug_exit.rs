//! QEMU's `isa-debug-exit` device: a port that ends the run with a status the guest chooses.
//!
//! Test kernels and firmware use it to report pass/fail without a console parser: writing `v`
//! to the port asks the machine to stop with [`ExitReason::DebugExit`]`(v)`, and `tern` exits
//! with `(v << 1) | 1` (so a guest can never fake a plain 0 exit). On the PC machine it sits at
//! port 0xf4 and is [`DEBUG_EXIT_LEN`] bytes wide, as in QEMU.
//!
//! Left out: QEMU's configurable base and size (the machine picks them); the device has no
//! registers to read, and reads return 0.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitRequester};

/// Width of the device's port range: accesses of 1, 2 or 4 bytes all land on it.
pub const DEBUG_EXIT_LEN: u64 = 4;

/// The isa-debug-exit device.
pub struct DebugExit {
    exit: Arc<dyn ExitRequester>,
}

/// Saved state of a [`DebugExit`]: it has none, but every device offers the same save/restore
/// interface so the machine can treat them alike.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugExitState {}

impl DebugExit {
    /// A device that sends its exit requests to `exit`.
    pub fn new(exit: Arc<dyn ExitRequester>) -> Self {
        Self { exit }
    }

    /// The device's state, for snapshots.
    pub fn state(&self) -> DebugExitState {
        DebugExitState {}
    }

    /// Rebuilds a device from a saved state.
    pub fn from_state(_state: &DebugExitState, exit: Arc<dyn ExitRequester>) -> Self {
        Self::new(exit)
    }
}

impl BusDevice for DebugExit {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        // The value is the little-endian number formed by the written bytes; an `outb` gives
        // 0..=255, an `outl` the full 32 bits. Wider (impossible on the port bus) writes keep
        // their low 4 bytes rather than failing.
        let value = data
            .iter()
            .take(4)
            .enumerate()
            .fold(0u32, |v, (i, &b)| v | u32::from(b) << (8 * i));
        log::info!(
            "isa-debug-exit: guest wrote {value:#x} at {:#x}",
            base + offset
        );
        self.exit.request_exit(ExitReason::DebugExit(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exit::RecordingExit as Exits;

    fn device() -> (DebugExit, Arc<Exits>) {
        let exits = Arc::new(Exits::default());
        (DebugExit::new(exits.clone()), exits)
    }

    #[test]
    fn a_byte_write_requests_exit_with_that_value() {
        let (mut dev, exits) = device();
        dev.write(0xf4, 0, &[0x10]);
        assert_eq!(exits.requests(), [ExitReason::DebugExit(0x10)]);
    }

    #[test]
    fn word_and_dword_writes_are_little_endian() {
        let (mut dev, exits) = device();
        dev.write(0xf4, 0, &[0x34, 0x12]);
        dev.write(0xf4, 0, &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(
            exits.requests(),
            [
                ExitReason::DebugExit(0x1234),
                ExitReason::DebugExit(0x1234_5678)
            ]
        );
    }

    #[test]
    fn reads_return_zero_and_do_not_exit() {
        let (mut dev, exits) = device();
        let mut buf = [0xaa; 4];
        dev.read(0xf4, 0, &mut buf);
        assert_eq!(buf, [0; 4]);
        assert!(exits.requests().is_empty());
    }

    #[test]
    fn state_round_trips() {
        let (dev, exits) = device();
        let state = dev.state();
        let mut restored = DebugExit::from_state(&state, exits.clone());
        assert_eq!(restored.state(), state);
        restored.write(0xf4, 0, &[3]);
        assert_eq!(exits.requests(), [ExitReason::DebugExit(3)]);
    }
}
