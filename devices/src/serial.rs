//! A 16550A UART: the guest's serial console (COM1 at port 0x3f8, IRQ 4 on the PC machine).
//!
//! The model follows the National Semiconductor PC16550D datasheet closely enough that Linux's
//! 8250 driver probes it as a 16550A and runs it interrupt-driven:
//!
//! - eight registers, with the divisor latch behind `LCR.DLAB`;
//! - a 16-byte receive FIFO (one byte in 16450 mode, when `FCR` bit 0 is clear) filled by the
//!   host through [`Serial::enqueue_input`], which never drops a byte: it takes what fits and
//!   lets the caller retry;
//! - transmission is instantaneous: a byte written to `THR` goes straight to the host writer,
//!   so `LSR.THRE` and `LSR.TEMT` are always set and the THRE interrupt re-arms as soon as a
//!   byte is written; it is also re-armed by every write of `IER` with `ETBEI` set, which is
//!   what Linux's "does THRE re-assert" test and `start_tx` rely on;
//! - interrupt identification by the datasheet's priorities: receiver line status, then
//!   received data / character timeout, then THR empty, then modem status;
//! - the IRQ output is (an enabled interrupt is pending) AND `MCR.OUT2`, the gate PC boards put
//!   on the UART's interrupt pin;
//! - loopback (`MCR.LOOP`): transmitted bytes go to the receiver instead of the host, host
//!   input is held back, and the modem inputs follow the modem outputs (CTS←RTS, DSR←DTR,
//!   RI←OUT1, DCD←OUT2), which Linux's autoconfig checks. A byte looped back into a full FIFO
//!   is an overrun (`LSR.OE`), the only way this model loses data.
//!
//! Left out: baud rate, word length, parity and stop bits are stored but have no effect (no
//! framing, parity or break errors ever occur, so `LSR` bits 2–4 and 7 stay clear); break
//! transmission; the character-timeout delay — with no notion of character time, data below
//! the FIFO trigger level reports the timeout interrupt at once; the transmit FIFO (TX is
//! instantaneous); the modem inputs outside loopback are fixed at CTS, DSR and DCD asserted.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Number of byte registers, the length of the device's range on the bus.
pub const SERIAL_LEN: u64 = 8;
/// Depth of the receive FIFO in FIFO mode.
pub const FIFO_SIZE: usize = 16;

// Register offsets.
/// Receiver buffer (read) / transmitter holding register (write); divisor latch LSB with DLAB.
const DATA: u64 = 0;
/// Interrupt enable register; divisor latch MSB with DLAB.
const IER: u64 = 1;
/// Interrupt identification (read) / FIFO control (write).
const IIR_FCR: u64 = 2;
/// Line control register.
const LCR: u64 = 3;
/// Modem control register.
const MCR: u64 = 4;
/// Line status register.
const LSR: u64 = 5;
/// Modem status register.
const MSR: u64 = 6;
/// Scratch register: plain storage, used by drivers to detect a UART.
const SCR: u64 = 7;

// IER bits.
/// Enable received-data-available (and character timeout) interrupt.
const IER_ERBFI: u8 = 0x01;
/// Enable transmitter-holding-register-empty interrupt.
const IER_ETBEI: u8 = 0x02;
/// Enable receiver line status interrupt.
const IER_ELSI: u8 = 0x04;
/// Enable modem status interrupt.
const IER_EDSSI: u8 = 0x08;
/// Bits 4–7 of IER do not exist on a 16550A and read 0 (Linux probes this).
const IER_MASK: u8 = 0x0f;

// IIR values (bits 0–3) and flags.
/// No interrupt pending (bit 0 set).
const IIR_NONE: u8 = 0x01;
/// Modem status changed.
const IIR_MODEM_STATUS: u8 = 0x00;
/// Transmitter holding register empty.
const IIR_THR_EMPTY: u8 = 0x02;
/// Received data available (FIFO at or above the trigger level).
const IIR_RX_DATA: u8 = 0x04;
/// Receiver line status (overrun, parity, framing, break).
const IIR_LINE_STATUS: u8 = 0x06;
/// Character timeout: data in the FIFO below the trigger level.
const IIR_RX_TIMEOUT: u8 = 0x0c;
/// Bits 6–7: both set when the FIFOs are enabled (a 16550A, not a 16550).
const IIR_FIFOS_ENABLED: u8 = 0xc0;

// FCR bits.
/// Enable the FIFOs; the other bits are only taken while this one is written as 1.
const FCR_ENABLE: u8 = 0x01;
/// Clear the receive FIFO (self-clearing).
const FCR_CLEAR_RX: u8 = 0x02;
/// Receive trigger level: 00 = 1, 01 = 4, 10 = 8, 11 = 14 bytes.
const FCR_TRIGGER: u8 = 0xc0;

// LCR bits.
/// Divisor latch access bit: offsets 0 and 1 become the divisor latch.
const LCR_DLAB: u8 = 0x80;

// MCR bits.
/// Data terminal ready.
const MCR_DTR: u8 = 0x01;
/// Request to send.
const MCR_RTS: u8 = 0x02;
/// User output 1.
const MCR_OUT1: u8 = 0x04;
/// User output 2: gates the IRQ pin on PC boards.
const MCR_OUT2: u8 = 0x08;
/// Local loopback.
const MCR_LOOP: u8 = 0x10;
/// Bits 5–7 of MCR do not exist on a 16550A.
const MCR_MASK: u8 = 0x1f;

// LSR bits.
/// Data ready: the receiver holds at least one byte.
const LSR_DR: u8 = 0x01;
/// Overrun error: a byte arrived with no room for it.
const LSR_OE: u8 = 0x02;
/// Parity error.
const LSR_PE: u8 = 0x04;
/// Framing error.
const LSR_FE: u8 = 0x08;
/// Break interrupt.
const LSR_BI: u8 = 0x10;
/// Transmitter holding register (FIFO) empty.
const LSR_THRE: u8 = 0x20;
/// Transmitter empty (holding and shift registers).
const LSR_TEMT: u8 = 0x40;
/// The error bits, cleared by reading LSR; any of them raises the line status interrupt.
const LSR_ERRORS: u8 = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// MSR bits.
/// Delta clear-to-send.
const MSR_DCTS: u8 = 0x01;
/// Delta data-set-ready.
const MSR_DDSR: u8 = 0x02;
/// Trailing edge of ring indicator (RI went from active to inactive).
const MSR_TERI: u8 = 0x04;
/// Delta data-carrier-detect.
const MSR_DDCD: u8 = 0x08;
/// Clear to send.
const MSR_CTS: u8 = 0x10;
/// Data set ready.
const MSR_DSR: u8 = 0x20;
/// Ring indicator.
const MSR_RI: u8 = 0x40;
/// Data carrier detect.
const MSR_DCD: u8 = 0x80;
/// The delta bits, cleared by reading MSR; any of them raises the modem status interrupt.
const MSR_DELTAS: u8 = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;
/// The modem inputs presented by the host outside loopback: a connected, ready terminal.
const EXTERNAL_MODEM_INPUTS: u8 = MSR_CTS | MSR_DSR | MSR_DCD;

/// Divisor latch after reset: 12, i.e. 9600 baud from the PC's 1.8432 MHz clock. (The
/// datasheet leaves it undefined; a sane value helps guests that read before writing.)
const DEFAULT_DIVISOR: u16 = 12;

/// Errors from rebuilding a [`Serial`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SerialError {
    /// The saved receive FIFO holds more bytes than the hardware can.
    #[error("saved receive FIFO holds {0} bytes, more than the UART's {FIFO_SIZE}")]
    FifoTooLong(usize),
}

/// Saved state of a [`Serial`]: every register and the receive FIFO's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialState {
    /// Divisor latch (DLM << 8 | DLL).
    pub divisor: u16,
    /// Interrupt enable register (bits 0–3).
    pub ier: u8,
    /// The effective FIFO control: bit 0 (FIFOs enabled) and bits 6–7 (trigger level).
    pub fcr: u8,
    /// Line control register.
    pub lcr: u8,
    /// Modem control register (bits 0–4).
    pub mcr: u8,
    /// Latched line status error bits (OE, PE, FE, BI); the rest of LSR is derived.
    pub lsr_errors: u8,
    /// Modem status register: current inputs and latched deltas.
    pub msr: u8,
    /// Scratch register.
    pub scr: u8,
    /// Whether the THR-empty interrupt is armed (cleared by reading it from IIR).
    pub thr_empty_pending: bool,
    /// Received bytes not yet read, oldest first.
    pub rx_fifo: Vec<u8>,
}

/// The 16550A UART.
pub struct Serial {
    divisor: u16,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    lsr_errors: u8,
    msr: u8,
    scr: u8,
    thr_empty_pending: bool,
    rx_fifo: VecDeque<u8>,
    irq: Arc<dyn IrqLine>,
    /// The level last driven on `irq`, so the wire is only touched when it changes.
    irq_level: bool,
    out: Box<dyn Write + Send>,
    /// Set after the first failed write to `out`, so a closed stdout is reported once.
    out_failed: bool,
}

impl Serial {
    /// A UART in its reset state, raising `irq` and sending transmitted bytes to `out`.
    ///
    /// `out` is flushed after every byte so whoever reads it (a terminal, a test harness
    /// reading tern's stdout) sees guest output at once.
    pub fn new(irq: Arc<dyn IrqLine>, out: Box<dyn Write + Send>) -> Self {
        Self {
            divisor: DEFAULT_DIVISOR,
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: 0,
            lsr_errors: 0,
            msr: EXTERNAL_MODEM_INPUTS,
            scr: 0,
            thr_empty_pending: false,
            rx_fifo: VecDeque::with_capacity(FIFO_SIZE),
            irq,
            irq_level: false,
            out,
            out_failed: false,
        }
    }

    /// The UART's state, for snapshots.
    pub fn state(&self) -> SerialState {
        SerialState {
            divisor: self.divisor,
            ier: self.ier,
            fcr: self.fcr,
            lcr: self.lcr,
            mcr: self.mcr,
            lsr_errors: self.lsr_errors,
            msr: self.msr,
            scr: self.scr,
            thr_empty_pending: self.thr_empty_pending,
            rx_fifo: self.rx_fifo.iter().copied().collect(),
        }
    }

    /// Rebuilds a UART from a saved state and drives `irq` to the level that state implies.
    pub fn from_state(
        state: &SerialState,
        irq: Arc<dyn IrqLine>,
        out: Box<dyn Write + Send>,
    ) -> Result<Self, SerialError> {
        if state.rx_fifo.len() > FIFO_SIZE {
            return Err(SerialError::FifoTooLong(state.rx_fifo.len()));
        }
        let mut serial = Self::new(irq, out);
        serial.divisor = state.divisor;
        serial.ier = state.ier & IER_MASK;
        serial.fcr = state.fcr & (FCR_ENABLE | FCR_TRIGGER);
        serial.lcr = state.lcr;
        serial.mcr = state.mcr & MCR_MASK;
        serial.lsr_errors = state.lsr_errors & LSR_ERRORS;
        serial.msr = state.msr;
        serial.scr = state.scr;
        serial.thr_empty_pending = state.thr_empty_pending;
        serial.rx_fifo.extend(&state.rx_fifo);
        let level = serial.irq_pending();
        serial.irq.set_level(level);
        serial.irq_level = level;
        Ok(serial)
    }

    /// Offers host input to the receiver; returns how many leading bytes of `bytes` it took.
    ///
    /// Fewer than `bytes.len()` means the FIFO is full (or the UART is in loopback, where the
    /// receiver is cut off from the outside): the caller keeps the rest and retries later.
    /// Nothing is ever dropped, so the guest never sees an overrun for host input.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        if self.mcr & MCR_LOOP != 0 {
            return 0;
        }
        let room = self.rx_capacity().saturating_sub(self.rx_fifo.len());
        let taken = room.min(bytes.len());
        self.rx_fifo.extend(&bytes[..taken]);
        if taken > 0 {
            self.update_irq();
        }
        taken
    }

    /// How many bytes the receiver holds: the FIFO in FIFO mode, one holding register in
    /// 16450 mode.
    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_SIZE
        } else {
            1
        }
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE != 0
    }

    /// The FIFO fill level at which "received data available" replaces "character timeout".
    fn rx_trigger_level(&self) -> usize {
        match self.fcr & FCR_TRIGGER {
            0x00 => 1,
            0x40 => 4,
            0x80 => 8,
            _ => 14,
        }
    }

    fn lsr(&self) -> u8 {
        let dr = if self.rx_fifo.is_empty() { 0 } else { LSR_DR };
        self.lsr_errors | dr | LSR_THRE | LSR_TEMT
    }

    /// The highest-priority pending, enabled interrupt, as IIR bits 0–3.
    fn interrupt_id(&self) -> u8 {
        if self.ier & IER_ELSI != 0 && self.lsr_errors != 0 {
            IIR_LINE_STATUS
        } else if self.ier & IER_ERBFI != 0 && !self.rx_fifo.is_empty() {
            if self.fifo_enabled() && self.rx_fifo.len() < self.rx_trigger_level() {
                IIR_RX_TIMEOUT
            } else {
                IIR_RX_DATA
            }
        } else if self.ier & IER_ETBEI != 0 && self.thr_empty_pending {
            IIR_THR_EMPTY
        } else if self.ier & IER_EDSSI != 0 && self.msr & MSR_DELTAS != 0 {
            IIR_MODEM_STATUS
        } else {
            IIR_NONE
        }
    }

    fn irq_pending(&self) -> bool {
        self.interrupt_id() != IIR_NONE && self.mcr & MCR_OUT2 != 0
    }

    /// Drives the IRQ wire to the level the registers imply, if it changed.
    fn update_irq(&mut self) {
        let level = self.irq_pending();
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }

    /// The modem inputs (MSR bits 4–7) the UART sees now.
    fn modem_inputs(&self) -> u8 {
        if self.mcr & MCR_LOOP == 0 {
            return EXTERNAL_MODEM_INPUTS;
        }
        let mut inputs = 0;
        if self.mcr & MCR_RTS != 0 {
            inputs |= MSR_CTS;
        }
        if self.mcr & MCR_DTR != 0 {
            inputs |= MSR_DSR;
        }
        if self.mcr & MCR_OUT1 != 0 {
            inputs |= MSR_RI;
        }
        if self.mcr & MCR_OUT2 != 0 {
            inputs |= MSR_DCD;
        }
        inputs
    }

    /// Latches new modem inputs into MSR, setting the delta bits for what changed.
    fn set_modem_inputs(&mut self, inputs: u8) {
        let old = self.msr & !MSR_DELTAS;
        let changed = old ^ inputs;
        let mut deltas = self.msr & MSR_DELTAS;
        if changed & MSR_CTS != 0 {
            deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            deltas |= MSR_DDSR;
        }
        if old & MSR_RI != 0 && inputs & MSR_RI == 0 {
            deltas |= MSR_TERI;
        }
        if changed & MSR_DCD != 0 {
            deltas |= MSR_DDCD;
        }
        self.msr = inputs | deltas;
    }

    /// A byte reaching the receiver from the transmitter in loopback. With the receiver full
    /// it is an overrun: in FIFO mode the new byte is lost, in 16450 mode it overwrites the
    /// holding register (datasheet, LSR bit 1).
    fn loop_back(&mut self, byte: u8) {
        if self.rx_fifo.len() < self.rx_capacity() {
            self.rx_fifo.push_back(byte);
        } else {
            self.lsr_errors |= LSR_OE;
            if !self.fifo_enabled() {
                self.rx_fifo.clear();
                self.rx_fifo.push_back(byte);
            }
        }
    }

    fn transmit(&mut self, byte: u8) {
        if self.mcr & MCR_LOOP != 0 {
            self.loop_back(byte);
        } else if let Err(e) = self.out.write_all(&[byte]).and_then(|()| self.out.flush()) {
            if !self.out_failed {
                log::warn!("serial: cannot write guest output, dropping it: {e}");
                self.out_failed = true;
            }
        }
        // The byte left at once, so the holding register is empty again.
        self.thr_empty_pending = true;
    }

    fn write_fcr(&mut self, value: u8) {
        if (value ^ self.fcr) & FCR_ENABLE != 0 {
            // Switching between 16450 and FIFO mode empties the FIFOs.
            self.rx_fifo.clear();
        }
        if value & FCR_ENABLE == 0 {
            // The other bits are only programmed together with FCR bit 0.
            self.fcr = 0;
            return;
        }
        if value & FCR_CLEAR_RX != 0 {
            self.rx_fifo.clear();
        }
        // Bit 2 (clear the transmit FIFO) has nothing to do: transmission is instantaneous.
        self.fcr = value & (FCR_ENABLE | FCR_TRIGGER);
    }

    fn read_register(&mut self, offset: u64) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            DATA if dlab => self.divisor as u8,
            DATA => self.rx_fifo.pop_front().unwrap_or(0),
            IER if dlab => (self.divisor >> 8) as u8,
            IER => self.ier,
            IIR_FCR => {
                let id = self.interrupt_id();
                if id == IIR_THR_EMPTY {
                    // Reading IIR while THRE is the reported source clears it.
                    self.thr_empty_pending = false;
                }
                let fifo_bits = if self.fifo_enabled() {
                    IIR_FIFOS_ENABLED
                } else {
                    0
                };
                id | fifo_bits
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let lsr = self.lsr();
                self.lsr_errors = 0;
                lsr
            }
            MSR => {
                let msr = self.msr;
                self.msr &= !MSR_DELTAS;
                msr
            }
            SCR => self.scr,
            _ => 0xff,
        }
    }

    fn write_register(&mut self, offset: u64, value: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            DATA if dlab => self.divisor = (self.divisor & 0xff00) | u16::from(value),
            DATA => self.transmit(value),
            IER if dlab => self.divisor = (self.divisor & 0x00ff) | u16::from(value) << 8,
            IER => {
                self.ier = value & IER_MASK;
                if self.ier & IER_ETBEI != 0 {
                    // The holding register is always empty, so enabling (or re-enabling) the
                    // THRE interrupt raises it straight away.
                    self.thr_empty_pending = true;
                }
            }
            IIR_FCR => self.write_fcr(value),
            LCR => self.lcr = value,
            MCR => {
                self.mcr = value & MCR_MASK;
                let inputs = self.modem_inputs();
                self.set_modem_inputs(inputs);
            }
            // LSR and MSR are read-only (the datasheet's factory-test writes are not modelled).
            LSR | MSR => log::debug!("serial: write {value:#x} to read-only offset {offset}"),
            SCR => self.scr = value,
            _ => log::debug!("serial: write {value:#x} beyond the registers at {offset:#x}"),
        }
    }
}

impl BusDevice for Serial {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        // A wider access reaches consecutive byte registers, as on an 8-bit I/O bus.
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = self.read_register(offset + i as u64);
        }
        self.update_irq();
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        for (i, &byte) in data.iter().enumerate() {
            self.write_register(offset + i as u64, byte);
        }
        self.update_irq();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use std::sync::Mutex;

    const BASE: u64 = 0x3f8;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<Vec<u8>>>);

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn take(&self) -> Vec<u8> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    struct Uart {
        dev: Serial,
        irq: Arc<RecordingIrq>,
        out: Output,
    }

    impl Uart {
        fn new() -> Self {
            let irq = Arc::new(RecordingIrq::default());
            let out = Output::default();
            let dev = Serial::new(irq.clone(), Box::new(out.clone()));
            Self { dev, irq, out }
        }
        fn rd(&mut self, offset: u64) -> u8 {
            let mut b = [0];
            self.dev.read(BASE, offset, &mut b);
            b[0]
        }
        fn wr(&mut self, offset: u64, value: u8) {
            self.dev.write(BASE, offset, &[value]);
        }
    }

    #[test]
    fn resets_like_the_datasheet_says() {
        let mut u = Uart::new();
        assert_eq!(u.rd(IER), 0);
        assert_eq!(u.rd(IIR_FCR), IIR_NONE);
        assert_eq!(u.rd(LCR), 0);
        assert_eq!(u.rd(MCR), 0);
        assert_eq!(u.rd(LSR), LSR_THRE | LSR_TEMT);
        assert_eq!(u.rd(MSR), EXTERNAL_MODEM_INPUTS);
        assert!(!u.irq.level());
    }

    #[test]
    fn passes_the_linux_8250_probe_as_a_16550a() {
        let mut u = Uart::new();
        // IER holds only its low four bits.
        u.wr(IER, 0);
        assert_eq!(u.rd(IER) & 0x0f, 0);
        u.wr(IER, 0x0f);
        assert_eq!(u.rd(IER) & 0x0f, 0x0f);
        u.wr(IER, 0xff);
        assert_eq!(
            u.rd(IER),
            0x0f,
            "bits 4-7 (e.g. XScale's UUE) must not stick"
        );
        u.wr(IER, 0);
        // Loopback with RTS and OUT2 shows CTS and DCD only.
        u.wr(MCR, MCR_LOOP | 0x0a);
        assert_eq!(u.rd(MSR) & 0xf0, 0x90);
        u.wr(MCR, 0);
        // No EFR behind LCR=0xbf: offset 2 still reads IIR, which is not 0.
        u.wr(LCR, 0xbf);
        u.wr(IIR_FCR, 0);
        u.wr(LCR, 0);
        u.wr(IIR_FCR, FCR_ENABLE);
        assert_eq!(u.rd(IIR_FCR) >> 6, 3, "FIFOs enabled: a 16550A");
        u.wr(LCR, 0xbf);
        assert_ne!(u.rd(IIR_FCR), 0);
        u.wr(LCR, 0);
        // No 64-byte FIFO (16750): IIR bit 5 stays clear.
        u.wr(IIR_FCR, FCR_ENABLE | 0x20);
        assert_eq!(u.rd(IIR_FCR) & 0x20, 0);
        // Scratch register holds what is written.
        u.wr(SCR, 0xa5);
        assert_eq!(u.rd(SCR), 0xa5);
        u.wr(SCR, 0x5a);
        assert_eq!(u.rd(SCR), 0x5a);
    }

    #[test]
    fn transmitted_bytes_reach_the_host_writer() {
        let mut u = Uart::new();
        for &b in b"hi\n" {
            u.wr(DATA, b);
        }
        assert_eq!(u.out.take(), b"hi\n");
        assert_eq!(u.rd(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn thre_interrupt_is_armed_by_ier_and_cleared_by_reading_iir() {
        let mut u = Uart::new();
        u.wr(MCR, MCR_OUT2);
        u.wr(IER, IER_ETBEI);
        assert!(u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_THR_EMPTY);
        // That read cleared it.
        assert_eq!(u.rd(IIR_FCR), IIR_NONE);
        assert!(!u.irq.level());
        // Linux's THRE re-assert test: IER=0 then IER=THRI raises it again.
        u.wr(IER, 0);
        u.wr(IER, IER_ETBEI);
        assert_eq!(u.rd(IIR_FCR), IIR_THR_EMPTY);
        assert_eq!(u.rd(IIR_FCR), IIR_NONE);
        assert_eq!(u.irq.rising_edges(), 2);
    }

    #[test]
    fn writing_thr_rearms_thre_once_the_byte_drains() {
        let mut u = Uart::new();
        u.wr(MCR, MCR_OUT2);
        u.wr(IER, IER_ETBEI);
        assert_eq!(u.rd(IIR_FCR), IIR_THR_EMPTY);
        assert!(!u.irq.level());
        u.wr(DATA, b'x');
        assert!(u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_THR_EMPTY);
        // With ETBEI clear the byte still goes out but nothing is signalled.
        u.wr(IER, 0);
        u.wr(DATA, b'y');
        assert!(!u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_NONE);
        assert_eq!(u.out.take(), b"xy");
    }

    #[test]
    fn out2_gates_the_irq_pin_but_not_iir() {
        let mut u = Uart::new();
        u.wr(IER, IER_ETBEI);
        assert!(!u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_THR_EMPTY);
        u.wr(IER, IER_ETBEI);
        u.wr(MCR, MCR_OUT2);
        assert!(u.irq.level());
        u.wr(MCR, 0);
        assert!(!u.irq.level());
    }

    #[test]
    fn received_bytes_raise_the_rx_interrupt_until_read() {
        let mut u = Uart::new();
        u.wr(MCR, MCR_OUT2);
        u.wr(IER, IER_ERBFI);
        assert!(!u.irq.level());
        // 16450 mode: a single holding register.
        assert_eq!(u.dev.enqueue_input(b"ab"), 1);
        assert!(u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_RX_DATA);
        assert_eq!(u.rd(LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.rd(DATA), b'a');
        assert_eq!(u.rd(LSR) & LSR_DR, 0);
        assert!(!u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_NONE);
    }

    #[test]
    fn fifo_reports_timeout_below_trigger_and_data_at_trigger() {
        let mut u = Uart::new();
        u.wr(MCR, MCR_OUT2);
        u.wr(IER, IER_ERBFI);
        u.wr(IIR_FCR, FCR_ENABLE | 0x40); // trigger at 4 bytes
        assert_eq!(u.dev.enqueue_input(b"abc"), 3);
        assert_eq!(u.rd(IIR_FCR), IIR_FIFOS_ENABLED | IIR_RX_TIMEOUT);
        assert_eq!(u.dev.enqueue_input(b"d"), 1);
        assert_eq!(u.rd(IIR_FCR), IIR_FIFOS_ENABLED | IIR_RX_DATA);
        let got: Vec<u8> = (0..4).map(|_| u.rd(DATA)).collect();
        assert_eq!(got, b"abcd");
        assert_eq!(u.rd(IIR_FCR), IIR_FIFOS_ENABLED | IIR_NONE);
        assert!(!u.irq.level());
    }

    #[test]
    fn a_full_fifo_takes_no_more_host_input() {
        let mut u = Uart::new();
        u.wr(IIR_FCR, FCR_ENABLE);
        let input: Vec<u8> = (0..20).collect();
        assert_eq!(u.dev.enqueue_input(&input), FIFO_SIZE);
        assert_eq!(u.dev.enqueue_input(&input[FIFO_SIZE..]), 0);
        assert_eq!(u.rd(LSR) & LSR_OE, 0, "host input never overruns");
        assert_eq!(u.rd(DATA), 0);
        assert_eq!(u.dev.enqueue_input(&input[FIFO_SIZE..]), 1);
    }

    #[test]
    fn fcr_clears_the_receive_fifo_and_mode_switches_empty_it() {
        let mut u = Uart::new();
        u.wr(IIR_FCR, FCR_ENABLE);
        u.dev.enqueue_input(b"abc");
        u.wr(IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
        assert_eq!(u.rd(LSR) & LSR_DR, 0);
        u.dev.enqueue_input(b"abc");
        u.wr(IIR_FCR, 0);
        assert_eq!(u.rd(LSR) & LSR_DR, 0);
        assert_eq!(u.rd(IIR_FCR) & IIR_FIFOS_ENABLED, 0);
    }

    #[test]
    fn overflowing_the_fifo_in_loopback_sets_oe_and_line_status_interrupt() {
        let mut u = Uart::new();
        u.wr(IIR_FCR, FCR_ENABLE | FCR_TRIGGER);
        u.wr(MCR, MCR_LOOP | MCR_OUT2);
        u.wr(IER, IER_ERBFI | IER_ELSI);
        for b in 0..=FIFO_SIZE as u8 {
            u.wr(DATA, b);
        }
        // Line status outranks received data.
        assert_eq!(u.rd(IIR_FCR) & 0x0f, IIR_LINE_STATUS);
        assert!(u.irq.level());
        assert_eq!(u.rd(LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        // Reading LSR cleared OE; received data is next.
        assert_eq!(u.rd(LSR) & LSR_OE, 0);
        assert_eq!(u.rd(IIR_FCR) & 0x0f, IIR_RX_DATA);
        // The 17th byte was the one lost.
        let got: Vec<u8> = (0..FIFO_SIZE).map(|_| u.rd(DATA)).collect();
        assert_eq!(got, (0..FIFO_SIZE as u8).collect::<Vec<_>>());
        assert!(
            u.out.take().is_empty(),
            "loopback sends nothing to the host"
        );
    }

    #[test]
    fn overrun_in_16450_mode_overwrites_the_holding_register() {
        let mut u = Uart::new();
        u.wr(MCR, MCR_LOOP);
        u.wr(DATA, 1);
        u.wr(DATA, 2);
        assert_eq!(u.rd(LSR) & LSR_OE, LSR_OE);
        assert_eq!(u.rd(DATA), 2);
    }

    #[test]
    fn loopback_routes_tx_to_rx_and_outputs_to_modem_inputs() {
        let mut u = Uart::new();
        u.wr(MCR, MCR_LOOP);
        assert_eq!(u.rd(MSR) & 0xf0, 0, "all outputs low: all inputs low");
        u.wr(MCR, MCR_LOOP | MCR_DTR);
        assert_eq!(u.rd(MSR), MSR_DSR | MSR_DDSR);
        u.wr(MCR, MCR_LOOP | MCR_RTS);
        assert_eq!(u.rd(MSR), MSR_CTS | MSR_DCTS | MSR_DDSR);
        u.wr(MCR, MCR_LOOP | MCR_OUT1);
        assert_eq!(u.rd(MSR), MSR_RI | MSR_DCTS);
        u.wr(MCR, MCR_LOOP | MCR_OUT2);
        assert_eq!(u.rd(MSR), MSR_DCD | MSR_DDCD | MSR_TERI);
        // Host input is cut off while looping.
        assert_eq!(u.dev.enqueue_input(b"z"), 0);
        u.wr(DATA, b'q');
        assert_eq!(u.rd(LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.rd(DATA), b'q');
        assert!(u.out.take().is_empty());
        // Leaving loopback restores the host's modem lines and input path.
        u.wr(MCR, 0);
        assert_eq!(u.rd(MSR) & 0xf0, EXTERNAL_MODEM_INPUTS);
        assert_eq!(u.dev.enqueue_input(b"z"), 1);
    }

    #[test]
    fn modem_status_changes_interrupt_when_enabled() {
        let mut u = Uart::new();
        u.wr(IER, IER_EDSSI);
        u.wr(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
        assert!(u.irq.level());
        assert_eq!(u.rd(IIR_FCR), IIR_MODEM_STATUS);
        assert_ne!(u.rd(MSR) & MSR_DELTAS, 0);
        assert_eq!(u.rd(IIR_FCR), IIR_NONE);
        assert!(!u.irq.level());
    }

    #[test]
    fn interrupt_priorities_follow_the_datasheet() {
        let mut u = Uart::new();
        u.wr(IIR_FCR, FCR_ENABLE);
        u.wr(MCR, MCR_LOOP | MCR_OUT2);
        u.wr(IER, IER_ERBFI | IER_ETBEI | IER_ELSI | IER_EDSSI);
        for _ in 0..=FIFO_SIZE {
            u.wr(DATA, 0);
        }
        let id = |u: &mut Uart| u.rd(IIR_FCR) & 0x0f;
        assert_eq!(id(&mut u), IIR_LINE_STATUS);
        u.rd(LSR);
        assert_eq!(id(&mut u), IIR_RX_DATA);
        for _ in 0..FIFO_SIZE {
            u.rd(DATA);
        }
        assert_eq!(id(&mut u), IIR_THR_EMPTY);
        assert_eq!(id(&mut u), IIR_MODEM_STATUS);
        u.rd(MSR);
        assert_eq!(id(&mut u), IIR_NONE);
    }

    #[test]
    fn divisor_latch_sits_behind_dlab() {
        let mut u = Uart::new();
        u.wr(LCR, LCR_DLAB | 0x03);
        u.wr(DATA, 0x01);
        u.wr(IER, 0x02);
        assert_eq!(u.rd(DATA), 0x01);
        assert_eq!(u.rd(IER), 0x02);
        assert!(u.out.take().is_empty(), "a DLL write is not a transmission");
        u.wr(LCR, 0x03);
        assert_eq!(u.rd(IER), 0, "IER is untouched by the DLM write");
        assert_eq!(u.dev.state().divisor, 0x0201);
        assert_eq!(u.rd(LCR), 0x03);
    }

    #[test]
    fn odd_accesses_do_not_panic() {
        let mut u = Uart::new();
        let mut wide = [0u8; 4];
        u.dev.read(BASE, 6, &mut wide);
        assert_eq!(&wide[2..], &[0xff, 0xff]);
        u.dev.write(BASE, 7, &[1, 2, 3]);
        u.dev.read(BASE, 100, &mut wide);
        assert_eq!(u.dev.enqueue_input(&[]), 0);
    }

    #[test]
    fn state_round_trips_and_redrives_the_irq() {
        let mut u = Uart::new();
        u.wr(IIR_FCR, FCR_ENABLE | 0x80);
        u.wr(LCR, LCR_DLAB);
        u.wr(DATA, 3);
        u.wr(LCR, 0x1b);
        u.wr(MCR, MCR_OUT2 | MCR_DTR | MCR_RTS);
        u.wr(IER, IER_ERBFI);
        u.wr(SCR, 0x42);
        u.dev.enqueue_input(b"xyz");
        let state = u.dev.state();

        let irq = Arc::new(RecordingIrq::default());
        let out = Output::default();
        let mut restored = Serial::from_state(&state, irq.clone(), Box::new(out)).unwrap();
        assert_eq!(restored.state(), state);
        assert!(irq.level(), "pending RX interrupt is re-driven");
        let mut b = [0];
        restored.read(BASE, DATA, &mut b);
        assert_eq!(b, [b'x']);
    }

    #[test]
    fn from_state_rejects_an_impossible_fifo() {
        let u = Uart::new();
        let mut state = u.dev.state();
        state.rx_fifo = vec![0; FIFO_SIZE + 1];
        let irq = Arc::new(RecordingIrq::default());
        let err = Serial::from_state(&state, irq, Box::new(Output::default())).err();
        assert_eq!(err, Some(SerialError::FifoTooLong(FIFO_SIZE + 1)));
    }
}
