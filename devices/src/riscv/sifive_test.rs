//! The SiFive test device ("finisher"): one register through which the guest powers the
//! machine off, resets it, or ends the run with a failure code.
//!
//! QEMU's virt machine puts it at `0x0010_0000` and the device tree names it a `syscon`, so
//! Linux's `syscon-poweroff` / `syscon-reboot` drivers write [`FINISHER_PASS`] /
//! [`FINISHER_RESET`] to it, and OpenSBI uses it for its system-reset calls. A 32-bit write at
//! offset 0 is decoded by its low 16 bits:
//!
//! | low 16 bits          | meaning                       | request                              |
//! |----------------------|-------------------------------|--------------------------------------|
//! | [`FINISHER_PASS`]    | power off, success            | [`ExitReason::PowerOff`]             |
//! | [`FINISHER_FAIL`]    | end with code `value >> 16`   | [`ExitReason::DebugExit`]`(code)`    |
//! | [`FINISHER_RESET`]   | reset                         | [`ExitReason::Reset`]                |
//!
//! A failure code has no exact match among the exit reasons; `DebugExit(code)` is the one that
//! carries a guest-chosen code and gives a failing exit status (`(code << 1) | 1`), so a
//! failure is never mistaken for a clean power-off.
//!
//! Other values, widths and offsets are ignored (logged); reads return 0.

use std::sync::Arc;

use super::le_value;
use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitRequester};

/// Base of the test device on the virt machine.
pub const SIFIVE_TEST_BASE: u64 = 0x0010_0000;
/// Length of the test device's range.
pub const SIFIVE_TEST_LEN: u64 = 0x1000;

/// Low half of the command: the test failed; the high 16 bits are the exit code.
pub const FINISHER_FAIL: u32 = 0x3333;
/// Low half of the command: the test passed; power off.
pub const FINISHER_PASS: u32 = 0x5555;
/// Low half of the command: reset the machine.
pub const FINISHER_RESET: u32 = 0x7777;

/// Offset of the one register.
const FINISHER_REG: u64 = 0;
/// Bits of the register that select the command.
const COMMAND_MASK: u32 = 0xffff;

/// The SiFive test device.
pub struct SifiveTest {
    exit: Arc<dyn ExitRequester>,
}

/// Saved state of a [`SifiveTest`]: it has none, but it offers the same save/restore
/// interface as every device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SifiveTestState {}

impl SifiveTest {
    /// A device that sends its requests to `exit`.
    pub fn new(exit: Arc<dyn ExitRequester>) -> Self {
        Self { exit }
    }

    /// The device's state, for snapshots.
    pub fn state(&self) -> SifiveTestState {
        SifiveTestState {}
    }

    /// Rebuilds a device from a saved state.
    pub fn from_state(_state: &SifiveTestState, exit: Arc<dyn ExitRequester>) -> Self {
        Self::new(exit)
    }
}

impl BusDevice for SifiveTest {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let value = le_value(data) as u32;
        if offset != FINISHER_REG || data.len() != 4 {
            log::debug!(
                "sifive_test: ignored {}-byte write of {value:#x} at {:#x}",
                data.len(),
                base + offset
            );
            return;
        }
        let reason = match value & COMMAND_MASK {
            FINISHER_PASS => ExitReason::PowerOff,
            FINISHER_RESET => ExitReason::Reset,
            FINISHER_FAIL => ExitReason::DebugExit(value >> 16),
            _ => {
                log::warn!("sifive_test: unknown command {value:#x}");
                return;
            }
        };
        log::info!("sifive_test: guest wrote {value:#x}: {reason:?}");
        self.exit.request_exit(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::RecordingExit;

    fn device() -> (SifiveTest, Arc<RecordingExit>) {
        let exits = Arc::new(RecordingExit::default());
        (SifiveTest::new(exits.clone()), exits)
    }

    fn write32(dev: &mut SifiveTest, offset: u64, value: u32) {
        dev.write(SIFIVE_TEST_BASE, offset, &value.to_le_bytes());
    }

    #[test]
    fn pass_powers_off() {
        let (mut dev, exits) = device();
        write32(&mut dev, 0, FINISHER_PASS);
        assert_eq!(exits.requests(), vec![ExitReason::PowerOff]);
    }

    #[test]
    fn reset_resets() {
        let (mut dev, exits) = device();
        write32(&mut dev, 0, FINISHER_RESET);
        assert_eq!(exits.requests(), vec![ExitReason::Reset]);
    }

    #[test]
    fn fail_carries_the_code_in_the_high_half() {
        let (mut dev, exits) = device();
        write32(&mut dev, 0, FINISHER_FAIL | (42 << 16));
        write32(&mut dev, 0, FINISHER_FAIL);
        assert_eq!(
            exits.requests(),
            vec![ExitReason::DebugExit(42), ExitReason::DebugExit(0)]
        );
    }

    #[test]
    fn other_values_widths_and_offsets_do_nothing() {
        let (mut dev, exits) = device();
        write32(&mut dev, 0, 0x1234);
        write32(&mut dev, 4, FINISHER_PASS);
        dev.write(SIFIVE_TEST_BASE, 0, &[0x55, 0x55]);
        dev.write(SIFIVE_TEST_BASE, 0, &u64::from(FINISHER_PASS).to_le_bytes());
        assert!(exits.requests().is_empty());
        let mut buf = [0xffu8; 4];
        dev.read(SIFIVE_TEST_BASE, 0, &mut buf);
        assert_eq!(buf, [0; 4]);
    }

    #[test]
    fn state_round_trips() {
        let (dev, exits) = device();
        let state = dev.state();
        let mut restored = SifiveTest::from_state(&state, exits.clone());
        assert_eq!(restored.state(), state);
        write32(&mut restored, 0, FINISHER_PASS);
        assert_eq!(exits.requests(), vec![ExitReason::PowerOff]);
    }
}
