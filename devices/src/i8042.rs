//! The i8042 keyboard controller, as far as a PC with no keyboard or mouse needs one.
//!
//! Guests touch it for two reasons: the classic reset (command 0xFE pulses the CPU reset
//! line, Linux's `reboot=kbd` and its fallback when ACPI reset fails), and Linux's i8042
//! driver probing the controller at boot. The model answers every controller command that
//! probe sends at once, so it never waits out a timeout or loops:
//!
//! | command      | effect                                                              |
//! |--------------|---------------------------------------------------------------------|
//! | 0x20..=0x3F  | read controller RAM byte (0x20: the command byte, "CTR")            |
//! | 0x60..=0x7F  | write controller RAM byte from the next data-port write             |
//! | 0xA7 / 0xA8  | disable / enable the aux (mouse) port: CTR bit 5                    |
//! | 0xA9, 0xAB   | aux / keyboard interface test: 0x00 (no error)                      |
//! | 0xAA         | controller self-test: 0x55                                          |
//! | 0xAD / 0xAE  | disable / enable the keyboard: CTR bit 4                            |
//! | 0xD0 / 0xD1  | read / write the output port; a write with bit 0 clear resets      |
//! | 0xD2 / 0xD3  | next data byte comes back as if from the keyboard / the aux port    |
//! | 0xD4         | next data byte goes to the aux device (there is none: dropped)      |
//! | 0xF0..=0xFF  | pulse output port bits 0–3 (clear = pulse); bit 0 is the reset line |
//!
//! The status register's output-buffer-full bit is set only while a byte waits to be read,
//! and the input buffer is never full (commands complete instantly).
//!
//! **Port layout.** The controller owns ports 0x60 (data) and 0x64 (status/command), with
//! 0x61–0x63 belonging to other devices (0x61 is the PIT/speaker port). The device decodes
//! the absolute port `base + offset` it is accessed at, so the machine inserts one shared
//! device twice: at [`DATA_PORT`] with length 1 and at [`COMMAND_PORT`] with length 1.
//! (Inserting it once at 0x60 with length 5 works too; 0x61–0x63 then read 0xFF.)
//!
//! Left out: the keyboard and mouse themselves (bytes written for them are dropped, so a
//! guest's keyboard driver sees no device and gives up after its own timeout — Linux can be
//! told to skip the probe with `i8042.noaux i8042.nomux i8042.dumbkbd`), the IRQ 1/12 lines
//! (only a keyboard or mouse byte would raise them), scan-code translation, A20 gating (A20
//! is always on), the input port (0xC0) and the password/test-input commands.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitRequester};

/// The data port (read: output buffer; write: command parameter or keyboard byte).
pub const DATA_PORT: u64 = 0x60;
/// The status (read) and command (write) port.
pub const COMMAND_PORT: u64 = 0x64;

// Status register bits.
/// Output buffer full: a byte waits at the data port.
const STS_OBF: u8 = 0x01;
/// System flag, copied from CTR bit 2.
const STS_SYS: u8 = 0x04;
/// Last write went to the command port (A2 address line), not the data port.
const STS_CMD: u8 = 0x08;
/// Keyboard not inhibited (the key lock is unlocked).
const STS_UNLOCKED: u8 = 0x10;
/// The waiting byte came from the aux (mouse) port.
const STS_AUX_OBF: u8 = 0x20;

// Controller command byte (RAM byte 0) bits.
/// Keyboard interrupt enable.
const CTR_KBD_INT: u8 = 0x01;
/// System flag: POST passed.
const CTR_SYS: u8 = 0x04;
/// Keyboard interface disabled.
const CTR_KBD_DISABLE: u8 = 0x10;
/// Aux interface disabled.
const CTR_AUX_DISABLE: u8 = 0x20;
/// Translate keyboard scan codes to set 1.
const CTR_XLATE: u8 = 0x40;
/// The command byte a PC BIOS typically leaves: keyboard interrupt on, POST passed,
/// translation on.
const DEFAULT_CTR: u8 = CTR_KBD_INT | CTR_SYS | CTR_XLATE;

// Output port bits.
/// CPU reset line, active low: writing 0 resets the machine.
const OUT_RESET: u8 = 0x01;
/// A20 gate.
const OUT_A20: u8 = 0x02;
/// Output port after power-on: not in reset, A20 enabled.
const DEFAULT_OUTPUT_PORT: u8 = OUT_RESET | OUT_A20;

// Controller commands.
const CMD_READ_RAM_FIRST: u8 = 0x20;
const CMD_READ_RAM_LAST: u8 = 0x3f;
const CMD_WRITE_RAM_FIRST: u8 = 0x60;
const CMD_WRITE_RAM_LAST: u8 = 0x7f;
const CMD_AUX_DISABLE: u8 = 0xa7;
const CMD_AUX_ENABLE: u8 = 0xa8;
const CMD_AUX_TEST: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_KBD_DISABLE: u8 = 0xad;
const CMD_KBD_ENABLE: u8 = 0xae;
const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_WRITE_KBD_OUTPUT: u8 = 0xd2;
const CMD_WRITE_AUX_OUTPUT: u8 = 0xd3;
const CMD_WRITE_TO_AUX: u8 = 0xd4;
const CMD_PULSE_FIRST: u8 = 0xf0;

/// Self-test passed.
const SELF_TEST_OK: u8 = 0x55;
/// Interface test passed.
const INTERFACE_TEST_OK: u8 = 0x00;

/// Size of the controller RAM addressed by commands 0x20..=0x3F / 0x60..=0x7F.
const RAM_SIZE: usize = 32;

/// Saved state of an [`I8042`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I8042State {
    /// Controller RAM; byte 0 is the command byte.
    pub ram: [u8; RAM_SIZE],
    /// The output port.
    pub output_port: u8,
    /// The byte waiting at the data port, if any.
    pub output: Option<u8>,
    /// Whether that byte came from the aux port.
    pub output_from_aux: bool,
    /// The last byte read from the data port, which it keeps returning when empty.
    pub last_output: u8,
    /// A command waiting for its parameter byte at the data port.
    pub pending_command: Option<u8>,
    /// Whether the last write went to the command port.
    pub last_write_was_command: bool,
}

/// The keyboard controller.
pub struct I8042 {
    ram: [u8; RAM_SIZE],
    output_port: u8,
    output: Option<u8>,
    output_from_aux: bool,
    last_output: u8,
    pending_command: Option<u8>,
    last_write_was_command: bool,
    exit: Arc<dyn ExitRequester>,
}

impl I8042 {
    /// A controller in its post-BIOS state, sending reset requests to `exit`.
    pub fn new(exit: Arc<dyn ExitRequester>) -> Self {
        let mut ram = [0; RAM_SIZE];
        ram[0] = DEFAULT_CTR;
        Self {
            ram,
            output_port: DEFAULT_OUTPUT_PORT,
            output: None,
            output_from_aux: false,
            last_output: 0,
            pending_command: None,
            last_write_was_command: false,
            exit,
        }
    }

    /// The controller's state, for snapshots.
    pub fn state(&self) -> I8042State {
        I8042State {
            ram: self.ram,
            output_port: self.output_port,
            output: self.output,
            output_from_aux: self.output_from_aux,
            last_output: self.last_output,
            pending_command: self.pending_command,
            last_write_was_command: self.last_write_was_command,
        }
    }

    /// Rebuilds a controller from a saved state.
    pub fn from_state(state: &I8042State, exit: Arc<dyn ExitRequester>) -> Self {
        Self {
            ram: state.ram,
            output_port: state.output_port,
            output: state.output,
            output_from_aux: state.output_from_aux,
            last_output: state.last_output,
            pending_command: state.pending_command,
            last_write_was_command: state.last_write_was_command,
            exit,
        }
    }

    fn ctr(&self) -> u8 {
        self.ram[0]
    }

    fn status(&self) -> u8 {
        let mut status = STS_UNLOCKED;
        if self.ctr() & CTR_SYS != 0 {
            status |= STS_SYS;
        }
        if self.output.is_some() {
            status |= STS_OBF;
            if self.output_from_aux {
                status |= STS_AUX_OBF;
            }
        }
        if self.last_write_was_command {
            status |= STS_CMD;
        }
        status
    }

    /// Puts a byte in the output buffer. The real buffer holds one byte; a reply arriving
    /// before the previous one was read replaces it.
    fn respond(&mut self, byte: u8, from_aux: bool) {
        if let Some(old) = self.output {
            log::debug!("i8042: output byte {old:#x} overwritten before being read");
        }
        self.output = Some(byte);
        self.output_from_aux = from_aux;
    }

    fn read_data(&mut self) -> u8 {
        if let Some(byte) = self.output.take() {
            self.last_output = byte;
            self.output_from_aux = false;
        }
        self.last_output
    }

    fn reset(&self, why: &str) {
        log::info!("i8042: {why}: resetting the machine");
        self.exit.request_exit(ExitReason::Reset);
    }

    fn write_output_port(&mut self, value: u8) {
        if value & OUT_A20 == 0 {
            log::debug!("i8042: guest tried to disable A20, which stays enabled");
        }
        self.output_port = value | OUT_A20;
        if value & OUT_RESET == 0 {
            self.reset("output port written with the reset line low");
        }
    }

    fn write_command(&mut self, command: u8) {
        // A new command abandons one still waiting for its parameter.
        self.pending_command = None;
        match command {
            CMD_READ_RAM_FIRST..=CMD_READ_RAM_LAST => {
                let byte = self.ram[usize::from(command - CMD_READ_RAM_FIRST)];
                self.respond(byte, false);
            }
            CMD_WRITE_RAM_FIRST..=CMD_WRITE_RAM_LAST
            | CMD_WRITE_OUTPUT_PORT
            | CMD_WRITE_KBD_OUTPUT
            | CMD_WRITE_AUX_OUTPUT
            | CMD_WRITE_TO_AUX => self.pending_command = Some(command),
            CMD_AUX_DISABLE => self.ram[0] |= CTR_AUX_DISABLE,
            CMD_AUX_ENABLE => self.ram[0] &= !CTR_AUX_DISABLE,
            CMD_AUX_TEST | CMD_KBD_TEST => self.respond(INTERFACE_TEST_OK, false),
            CMD_SELF_TEST => self.respond(SELF_TEST_OK, false),
            CMD_KBD_DISABLE => self.ram[0] |= CTR_KBD_DISABLE,
            CMD_KBD_ENABLE => self.ram[0] &= !CTR_KBD_DISABLE,
            CMD_READ_OUTPUT_PORT => self.respond(self.output_port, false),
            CMD_PULSE_FIRST..=0xff => {
                // Bits 0-3 select the output port lines to pulse low; 0xFE pulses reset.
                if command & OUT_RESET == 0 {
                    self.reset("reset line pulsed");
                }
            }
            _ => log::debug!("i8042: unsupported controller command {command:#x}; ignored"),
        }
    }

    fn write_data(&mut self, value: u8) {
        match self.pending_command.take() {
            Some(command @ CMD_WRITE_RAM_FIRST..=CMD_WRITE_RAM_LAST) => {
                self.ram[usize::from(command - CMD_WRITE_RAM_FIRST)] = value;
            }
            Some(CMD_WRITE_OUTPUT_PORT) => self.write_output_port(value),
            Some(CMD_WRITE_KBD_OUTPUT) => self.respond(value, false),
            Some(CMD_WRITE_AUX_OUTPUT) => self.respond(value, true),
            Some(CMD_WRITE_TO_AUX) => {
                log::debug!("i8042: byte {value:#x} for the aux device dropped: none attached");
            }
            Some(other) => {
                log::debug!("i8042: parameter {value:#x} for command {other:#x} ignored");
            }
            None => {
                log::debug!("i8042: byte {value:#x} for the keyboard dropped: none attached");
            }
        }
    }

    fn read_port(&mut self, port: u64) -> u8 {
        match port {
            DATA_PORT => self.read_data(),
            COMMAND_PORT => self.status(),
            _ => 0xff,
        }
    }

    fn write_port(&mut self, port: u64, value: u8) {
        match port {
            DATA_PORT => {
                self.last_write_was_command = false;
                self.write_data(value);
            }
            COMMAND_PORT => {
                self.last_write_was_command = true;
                self.write_command(value);
            }
            _ => log::debug!("i8042: write {value:#x} to unowned port {port:#x}"),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        // A wider access reaches consecutive byte ports, as on an 8-bit I/O bus.
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = self.read_port(base.wrapping_add(offset).wrapping_add(i as u64));
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        for (i, &byte) in data.iter().enumerate() {
            self.write_port(base.wrapping_add(offset).wrapping_add(i as u64), byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exit::RecordingExit as Exits;

    struct Kbc {
        dev: I8042,
        exits: Arc<Exits>,
    }

    impl Kbc {
        fn new() -> Self {
            let exits = Arc::new(Exits::default());
            Self {
                dev: I8042::new(exits.clone()),
                exits,
            }
        }
        fn status(&mut self) -> u8 {
            let mut b = [0];
            self.dev.read(COMMAND_PORT, 0, &mut b);
            b[0]
        }
        fn command(&mut self, cmd: u8) {
            self.dev.write(COMMAND_PORT, 0, &[cmd]);
        }
        fn write_data(&mut self, v: u8) {
            self.dev.write(DATA_PORT, 0, &[v]);
        }
        fn read_data(&mut self) -> u8 {
            let mut b = [0];
            self.dev.read(DATA_PORT, 0, &mut b);
            b[0]
        }
        /// What Linux's `i8042_command` does: send, then wait (boundedly) for each reply.
        fn command_with_reply(&mut self, cmd: u8) -> Option<u8> {
            assert_eq!(self.status() & 0x02, 0, "input buffer never full");
            self.command(cmd);
            (0..1000)
                .any(|_| self.status() & STS_OBF != 0)
                .then(|| self.read_data())
        }
        fn exits(&self) -> Vec<ExitReason> {
            self.exits.requests()
        }
    }

    #[test]
    fn output_buffer_is_full_only_while_a_byte_waits() {
        let mut k = Kbc::new();
        assert_eq!(k.status() & STS_OBF, 0);
        k.command(CMD_SELF_TEST);
        assert_eq!(k.status() & STS_OBF, STS_OBF);
        assert_eq!(k.read_data(), SELF_TEST_OK);
        assert_eq!(k.status() & STS_OBF, 0);
    }

    #[test]
    fn self_and_interface_tests_pass() {
        let mut k = Kbc::new();
        assert_eq!(k.command_with_reply(CMD_SELF_TEST), Some(0x55));
        assert_eq!(k.command_with_reply(CMD_KBD_TEST), Some(0x00));
        assert_eq!(k.command_with_reply(CMD_AUX_TEST), Some(0x00));
    }

    #[test]
    fn command_byte_reads_and_writes() {
        let mut k = Kbc::new();
        assert_eq!(k.command_with_reply(0x20), Some(DEFAULT_CTR));
        assert_eq!(k.status() & STS_SYS, STS_SYS);
        k.command(0x60);
        k.write_data(0x30);
        assert_eq!(k.command_with_reply(0x20), Some(0x30));
        assert_eq!(k.status() & STS_SYS, 0, "status SYS follows CTR bit 2");
        assert_eq!(k.status() & STS_OBF, 0, "writing CTR produces no reply");
    }

    #[test]
    fn disable_and_enable_commands_flip_ctr_bits() {
        let mut k = Kbc::new();
        k.command(CMD_KBD_DISABLE);
        k.command(CMD_AUX_DISABLE);
        let ctr = k.command_with_reply(0x20).unwrap();
        assert_eq!(ctr & (CTR_KBD_DISABLE | CTR_AUX_DISABLE), 0x30);
        k.command(CMD_KBD_ENABLE);
        k.command(CMD_AUX_ENABLE);
        let ctr = k.command_with_reply(0x20).unwrap();
        assert_eq!(ctr & (CTR_KBD_DISABLE | CTR_AUX_DISABLE), 0);
    }

    #[test]
    fn pulsing_the_reset_line_resets() {
        let mut k = Kbc::new();
        k.command(0xff); // pulses nothing
        assert!(k.exits().is_empty());
        k.command(0xfe);
        assert_eq!(k.exits(), [ExitReason::Reset]);
    }

    #[test]
    fn output_port_reads_back_and_a_cleared_bit_0_resets() {
        let mut k = Kbc::new();
        assert_eq!(k.command_with_reply(CMD_READ_OUTPUT_PORT), Some(0x03));
        k.command(CMD_WRITE_OUTPUT_PORT);
        k.write_data(0x03 | 0xc0);
        assert!(k.exits().is_empty());
        assert_eq!(k.command_with_reply(CMD_READ_OUTPUT_PORT), Some(0xc3));
        k.command(CMD_WRITE_OUTPUT_PORT);
        k.write_data(0x02);
        assert_eq!(k.exits(), [ExitReason::Reset]);
    }

    #[test]
    fn write_output_buffer_commands_echo_with_the_right_source() {
        let mut k = Kbc::new();
        k.command(CMD_WRITE_AUX_OUTPUT);
        k.write_data(0x5a);
        assert_eq!(k.status() & (STS_OBF | STS_AUX_OBF), STS_OBF | STS_AUX_OBF);
        assert_eq!(k.read_data(), 0x5a);
        assert_eq!(k.status() & (STS_OBF | STS_AUX_OBF), 0);
        k.command(CMD_WRITE_KBD_OUTPUT);
        k.write_data(0xa5);
        assert_eq!(k.status() & (STS_OBF | STS_AUX_OBF), STS_OBF);
        assert_eq!(k.read_data(), 0xa5);
    }

    #[test]
    fn bytes_for_absent_devices_vanish() {
        let mut k = Kbc::new();
        k.write_data(0xf2); // keyboard "identify"
        k.command(CMD_WRITE_TO_AUX);
        k.write_data(0xf2);
        assert_eq!(k.status() & STS_OBF, 0);
        assert!(k.exits().is_empty());
    }

    #[test]
    fn status_a2_bit_tracks_the_last_port_written() {
        let mut k = Kbc::new();
        k.command(CMD_KBD_ENABLE);
        assert_eq!(k.status() & STS_CMD, STS_CMD);
        k.write_data(0);
        assert_eq!(k.status() & STS_CMD, 0);
    }

    #[test]
    fn linux_probe_sequence_completes() {
        let mut k = Kbc::new();
        // i8042_flush: read until OBF clears (bounded).
        assert!((0..16).any(|_| k.status() & STS_OBF == 0));
        // Stable CTR read.
        let a = k.command_with_reply(0x20).unwrap();
        let b = k.command_with_reply(0x20).unwrap();
        assert_eq!(a, b);
        // Self test, then CTR restored.
        assert_eq!(k.command_with_reply(CMD_SELF_TEST), Some(0x55));
        k.command(0x60);
        k.write_data(a & !(CTR_KBD_INT | 0x02));
        // Mux check: a non-mux controller echoes 0xF0, 0x56, 0xA4 through AUX_LOOP.
        for v in [0xf0, 0x56, 0xa4] {
            k.command(CMD_WRITE_AUX_OUTPUT);
            k.write_data(v);
            assert_eq!(k.read_data(), v);
        }
        assert_eq!(k.status() & STS_OBF, 0);
        assert!(k.exits().is_empty());
    }

    #[test]
    fn decodes_absolute_ports_in_either_layout() {
        let mut k = Kbc::new();
        // One device at 0x60 with length 5: the command port is offset 4.
        k.dev.write(DATA_PORT, 4, &[CMD_SELF_TEST]);
        let mut b = [0];
        k.dev.read(DATA_PORT, 4, &mut b);
        assert_eq!(b[0] & STS_OBF, STS_OBF);
        k.dev.read(DATA_PORT, 0, &mut b);
        assert_eq!(b[0], 0x55);
        // Ports in between are not the controller's.
        k.dev.read(DATA_PORT, 1, &mut b);
        assert_eq!(b[0], 0xff);
        k.dev.write(DATA_PORT, 1, &[0xfe]);
        assert!(k.exits().is_empty());
    }

    #[test]
    fn state_round_trips_including_a_pending_parameter() {
        let mut k = Kbc::new();
        k.command(CMD_KBD_DISABLE);
        k.command(CMD_SELF_TEST);
        k.command(0x60);
        let state = k.dev.state();
        let exits = Arc::new(Exits::default());
        let mut restored = I8042::from_state(&state, exits);
        assert_eq!(restored.state(), state);
        restored.write(DATA_PORT, 0, &[0x07]);
        assert_eq!(restored.state().ram[0], 0x07);
        let mut b = [0];
        restored.read(DATA_PORT, 0, &mut b);
        assert_eq!(b[0], 0x55);
    }
}
