//! The hardware-reduced ACPI power-management registers: how an ACPI guest powers off and
//! resets the machine.
//!
//! A hardware-reduced FADT (ACPI 6.x, section 4.1) has no PM1 event/control blocks; instead
//! it points at a *sleep control* register, a *sleep status* register and the *reset*
//! register, each one byte. On the PC machine they sit at port 0x600 ([`ACPI_PM_LEN`] bytes):
//!
//! | offset | register        | behaviour                                                     |
//! |--------|-----------------|---------------------------------------------------------------|
//! | 0      | sleep control   | write `SLP_EN \| S5_SLP_TYP << 2` → [`ExitReason::PowerOff`]  |
//! | 1      | sleep status    | reads 0: `WAK_STS` clear, the machine never sleeps             |
//! | 2      | reset           | write [`RESET_VALUE`] → [`ExitReason::Reset`]                 |
//! | 3      | reserved        | reads 0, writes ignored                                        |
//!
//! The DSDT's `\_S5` package must carry [`S5_SLP_TYP`] so the guest writes the value this
//! device recognises; the FADT's reset register must name offset [`RESET_OFFSET`] and
//! [`RESET_VALUE`].
//!
//! Left out: sleep states other than S5 (S1–S4 writes are logged and ignored — tern cannot
//! suspend a guest) and wake events.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitRequester};

/// Length of the register block on the bus.
pub const ACPI_PM_LEN: u64 = 4;
/// Offset of the sleep control register (FADT `SLEEP_CONTROL_REG`).
pub const SLEEP_CONTROL_OFFSET: u64 = 0;
/// Offset of the sleep status register (FADT `SLEEP_STATUS_REG`).
pub const SLEEP_STATUS_OFFSET: u64 = 1;
/// Offset of the reset register (FADT `RESET_REG`).
pub const RESET_OFFSET: u64 = 2;
/// The value the guest writes to the reset register (FADT `RESET_VALUE`).
pub const RESET_VALUE: u8 = 0x01;
/// The `SLP_TYP` value of the S5 (soft-off) state, as the DSDT's `\_S5` package says.
pub const S5_SLP_TYP: u8 = 5;

/// Sleep control: `SLP_EN`, the bit that starts the transition (ACPI 6.x, 4.8.3.7).
const SLP_EN: u8 = 1 << 5;
/// Sleep control: position of the 3-bit `SLP_TYP` field.
const SLP_TYP_SHIFT: u8 = 2;
/// Sleep control: mask of `SLP_TYP` after shifting.
const SLP_TYP_MASK: u8 = 0x7;

/// The hardware-reduced ACPI PM register block.
pub struct AcpiPm {
    exit: Arc<dyn ExitRequester>,
}

/// Saved state of an [`AcpiPm`]: the registers hold nothing between accesses, so it is empty;
/// it exists so every device offers the same save/restore interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcpiPmState {}

impl AcpiPm {
    /// A register block that sends power-off and reset requests to `exit`.
    pub fn new(exit: Arc<dyn ExitRequester>) -> Self {
        Self { exit }
    }

    /// The device's state, for snapshots.
    pub fn state(&self) -> AcpiPmState {
        AcpiPmState {}
    }

    /// Rebuilds a device from a saved state.
    pub fn from_state(_state: &AcpiPmState, exit: Arc<dyn ExitRequester>) -> Self {
        Self::new(exit)
    }

    fn write_sleep_control(&self, value: u8) {
        if value & SLP_EN == 0 {
            // Setting SLP_TYP alone does nothing until SLP_EN is written.
            return;
        }
        let slp_typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
        if slp_typ == S5_SLP_TYP {
            log::info!("acpi-pm: guest entered S5, powering off");
            self.exit.request_exit(ExitReason::PowerOff);
        } else {
            log::warn!("acpi-pm: guest asked for sleep type {slp_typ}, which tern does not support; ignored");
        }
    }

    fn write_register(&self, offset: u64, value: u8) {
        match offset {
            SLEEP_CONTROL_OFFSET => self.write_sleep_control(value),
            // WAK_STS is write-1-to-clear and never set, so there is nothing to clear.
            SLEEP_STATUS_OFFSET => {}
            RESET_OFFSET if value == RESET_VALUE => {
                log::info!("acpi-pm: guest wrote the reset register");
                self.exit.request_exit(ExitReason::Reset);
            }
            RESET_OFFSET => log::debug!("acpi-pm: reset register written with {value:#x}; ignored"),
            _ => log::debug!("acpi-pm: write {value:#x} to reserved offset {offset:#x}"),
        }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        // Sleep control's SLP_EN is write-only and reads 0, sleep status has WAK_STS clear,
        // and the reset register is write-only.
        data.fill(0);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        // A wider access reaches consecutive byte registers, as on an 8-bit I/O bus.
        for (i, &byte) in data.iter().enumerate() {
            self.write_register(offset + i as u64, byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exit::RecordingExit as Exits;

    fn device() -> (AcpiPm, Arc<Exits>) {
        let exits = Arc::new(Exits::default());
        (AcpiPm::new(exits.clone()), exits)
    }

    fn exits(e: &Exits) -> Vec<ExitReason> {
        e.requests()
    }

    #[test]
    fn slp_en_with_s5_powers_off() {
        let (mut dev, e) = device();
        dev.write(0x600, SLEEP_CONTROL_OFFSET, &[SLP_EN | (S5_SLP_TYP << 2)]);
        assert_eq!(exits(&e), [ExitReason::PowerOff]);
    }

    #[test]
    fn s5_without_slp_en_does_nothing() {
        let (mut dev, e) = device();
        dev.write(0x600, SLEEP_CONTROL_OFFSET, &[S5_SLP_TYP << 2]);
        assert!(exits(&e).is_empty());
    }

    #[test]
    fn other_sleep_types_are_ignored() {
        let (mut dev, e) = device();
        for typ in (0..8).filter(|&t| t != S5_SLP_TYP) {
            dev.write(0x600, SLEEP_CONTROL_OFFSET, &[SLP_EN | (typ << 2)]);
        }
        assert!(exits(&e).is_empty());
    }

    #[test]
    fn reset_value_resets_and_others_do_not() {
        let (mut dev, e) = device();
        dev.write(0x600, RESET_OFFSET, &[0x02]);
        dev.write(0x600, RESET_OFFSET, &[0x00]);
        assert!(exits(&e).is_empty());
        dev.write(0x600, RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(exits(&e), [ExitReason::Reset]);
    }

    #[test]
    fn sleep_status_reads_wak_sts_clear() {
        let (mut dev, e) = device();
        let mut buf = [0xff];
        dev.write(0x600, SLEEP_STATUS_OFFSET, &[0x80]);
        dev.read(0x600, SLEEP_STATUS_OFFSET, &mut buf);
        assert_eq!(buf, [0]);
        assert!(exits(&e).is_empty());
    }

    #[test]
    fn a_word_write_reaches_consecutive_registers() {
        let (mut dev, e) = device();
        // Offset 1 (status) gets 0, offset 2 (reset) gets the reset value.
        dev.write(0x600, SLEEP_STATUS_OFFSET, &[0x00, RESET_VALUE]);
        assert_eq!(exits(&e), [ExitReason::Reset]);
    }

    #[test]
    fn state_round_trips() {
        let (dev, e) = device();
        let state = dev.state();
        let mut restored = AcpiPm::from_state(&state, e.clone());
        assert_eq!(restored.state(), state);
        restored.write(0x600, RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(exits(&e), [ExitReason::Reset]);
    }
}
