//! The I/O APIC (82093AA): 24 interrupt pins, each with a 64-bit redirection entry that turns
//! the pin's assertion into an [`ApicMessage`] for the local APICs.
//!
//! MMIO at [`IOAPIC_BASE`], two 32-bit registers; everything else is reached indirectly:
//!
//! | offset | register                                                            |
//! |--------|---------------------------------------------------------------------|
//! | `0x00` | IOREGSEL: index of the indirect register IOWIN reaches (bits 7:0)   |
//! | `0x10` | IOWIN: the selected register                                        |
//!
//! | index            | register                                                     |
//! |------------------|--------------------------------------------------------------|
//! | `0x00`           | IOAPICID: the ID in bits 27:24                               |
//! | `0x01`           | IOAPICVER: version `0x11`, max redirection entry 23 (bits 23:16) |
//! | `0x02`           | IOAPICARB: arbitration ID in bits 27:24 (read-only)          |
//! | `0x10 + 2n`, `+1`| redirection entry `n`, low and high halves                   |
//!
//! Redirection entry bits: 7:0 vector, 10:8 delivery mode, 11 destination mode (1 logical),
//! 12 delivery status (RO), 13 polarity (1 active low), 14 remote IRR (RO), 15 trigger mode
//! (1 level), 16 mask, 63:56 destination. Entries reset masked.
//!
//! An edge-triggered pin sends one message per rising edge of its (polarity-corrected)
//! input. A level-triggered pin sends a message while asserted and unmasked and sets remote
//! IRR; no further message goes until a local APIC's EOI of that vector reaches
//! [`IoApic::eoi`], which clears remote IRR and sends again if the pin is still asserted.
//! Messages go out at once, so delivery status always reads 0. Edges that arrive while a pin
//! is masked are lost, as on the 82093AA.

use std::sync::{Arc, Mutex};

use super::{ApicMessage, ApicMessageSink, DeliveryMode, DestinationMode, Shorthand};
use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Base of the I/O APIC in the x86_64 machine.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// Length of its MMIO range.
pub const IOAPIC_LEN: u64 = 0x1000;
/// Number of pins (redirection entries).
pub const IOAPIC_PINS: usize = 24;

// MMIO offsets.
/// Register select.
const IOREGSEL: u64 = 0x00;
/// Register window.
const IOWIN: u64 = 0x10;

// Indirect registers.
/// I/O APIC ID.
const REG_ID: u32 = 0x00;
/// Version.
const REG_VER: u32 = 0x01;
/// Arbitration ID.
const REG_ARB: u32 = 0x02;
/// First redirection entry (low half).
const REG_REDTBL: u32 = 0x10;

/// IOAPICVER: version 0x11 with max redirection entry `IOAPIC_PINS - 1`.
const VERSION: u32 = 0x11 | ((IOAPIC_PINS as u32 - 1) << 16);

// Redirection entry bits.
const RTE_DEST_LOGICAL: u64 = 1 << 11;
const RTE_POLARITY_LOW: u64 = 1 << 13;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_TRIGGER_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
/// Bits software can write: vector, delivery mode, destination mode, polarity, trigger,
/// mask, destination.
const RTE_WRITABLE: u64 = 0xFF00_0000_0001_AFFF;

/// Errors from the I/O APIC.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IoApicError {
    /// A pin number of 24 or more.
    #[error("the I/O APIC has pins 0 to 23, not {0}")]
    NoSuchPin(usize),
}

/// Saved state of an [`IoApic`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoApicState {
    /// IOREGSEL.
    pub ioregsel: u32,
    /// IOAPICID.
    pub id: u32,
    /// The redirection entries (remote IRR included).
    pub redirection: [u64; IOAPIC_PINS],
    /// The raw level of each input wire.
    pub level: [bool; IOAPIC_PINS],
}

/// The I/O APIC.
pub struct IoApic {
    sink: Arc<dyn ApicMessageSink>,
    ioregsel: u32,
    id: u32,
    redirection: [u64; IOAPIC_PINS],
    level: [bool; IOAPIC_PINS],
}

impl std::fmt::Debug for IoApic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoApic")
            .field("id", &(self.id >> 24))
            .field("redirection", &self.redirection)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl IoApic {
    /// An I/O APIC out of reset (ID 0, every entry masked), sending to `sink`.
    pub fn new(sink: Arc<dyn ApicMessageSink>) -> Self {
        Self {
            sink,
            ioregsel: 0,
            id: 0,
            redirection: [RTE_MASKED; IOAPIC_PINS],
            level: [false; IOAPIC_PINS],
        }
    }

    /// The device's state, for snapshots.
    pub fn state(&self) -> IoApicState {
        IoApicState {
            ioregsel: self.ioregsel,
            id: self.id,
            redirection: self.redirection,
            level: self.level,
        }
    }

    /// Rebuilds an I/O APIC from a saved state. Nothing is sent: messages already delivered
    /// live in the local APICs' state, and remote IRR holds back level pins until their EOI.
    pub fn from_state(state: &IoApicState, sink: Arc<dyn ApicMessageSink>) -> Self {
        let mut ioapic = Self::new(sink);
        ioapic.ioregsel = state.ioregsel & 0xFF;
        ioapic.id = state.id & 0x0F00_0000;
        for (dst, src) in ioapic.redirection.iter_mut().zip(state.redirection) {
            *dst = src & (RTE_WRITABLE | RTE_REMOTE_IRR);
        }
        ioapic.level = state.level;
        ioapic
    }

    /// An interrupt line driving pin `n` of `ioapic`, for a device model (COM1 on pin 4,
    /// virtio-mmio slot `i` on pin 16 + `i`).
    pub fn pin(ioapic: &Arc<Mutex<IoApic>>, n: usize) -> Result<Arc<dyn IrqLine>, IoApicError> {
        if n >= IOAPIC_PINS {
            return Err(IoApicError::NoSuchPin(n));
        }
        Ok(Arc::new(IoApicPin {
            ioapic: ioapic.clone(),
            pin: n,
        }))
    }

    /// The redirection entry of `pin` (for the machine's debugging and tests).
    pub fn redirection_entry(&self, pin: usize) -> Option<u64> {
        self.redirection.get(pin).copied()
    }

    /// Drives the input wire of `pin` to `high`, as an [`IrqLine`] from [`IoApic::pin`] does.
    /// Pins that do not exist are ignored (logged).
    pub fn set_pin_level(&mut self, pin: usize, high: bool) {
        if pin >= IOAPIC_PINS {
            log::warn!("ioapic: level change on nonexistent pin {pin}");
            return;
        }
        let was_asserted = self.asserted(pin);
        self.level[pin] = high;
        let entry = self.redirection[pin];
        if entry & RTE_TRIGGER_LEVEL != 0 {
            self.service_level(pin);
        } else if self.asserted(pin) && !was_asserted && entry & RTE_MASKED == 0 {
            self.send(pin);
        }
    }

    /// An EOI of `vector` from a local APIC: every level-triggered pin with that vector and
    /// remote IRR set gets remote IRR cleared, and sends again if still asserted.
    pub fn eoi(&mut self, vector: u8) {
        for pin in 0..IOAPIC_PINS {
            let entry = self.redirection[pin];
            if entry as u8 == vector
                && entry & RTE_TRIGGER_LEVEL != 0
                && entry & RTE_REMOTE_IRR != 0
            {
                self.redirection[pin] &= !RTE_REMOTE_IRR;
                self.service_level(pin);
            }
        }
    }

    /// The pin's input after polarity: active-low entries invert the wire.
    fn asserted(&self, pin: usize) -> bool {
        self.level[pin] != (self.redirection[pin] & RTE_POLARITY_LOW != 0)
    }

    /// Sends a level-triggered pin's message if it is asserted, unmasked and not waiting for
    /// an EOI.
    fn service_level(&mut self, pin: usize) {
        let entry = self.redirection[pin];
        if self.asserted(pin) && entry & (RTE_MASKED | RTE_REMOTE_IRR) == 0 {
            self.redirection[pin] |= RTE_REMOTE_IRR;
            self.send(pin);
        }
    }

    /// Hands pin `pin`'s message to the sink.
    fn send(&self, pin: usize) {
        let entry = self.redirection[pin];
        let Some(delivery_mode) = DeliveryMode::from_bits((entry >> 8) as u32) else {
            log::debug!("ioapic: pin {pin} has a reserved delivery mode");
            return;
        };
        if delivery_mode == DeliveryMode::StartUp {
            log::debug!("ioapic: pin {pin} programmed for start-up, not sent");
            return;
        }
        self.sink.deliver(&ApicMessage {
            vector: entry as u8,
            delivery_mode,
            destination_mode: if entry & RTE_DEST_LOGICAL != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            destination: (entry >> 56) as u8,
            level_triggered: entry & RTE_TRIGGER_LEVEL != 0,
            shorthand: Shorthand::None,
        });
    }

    /// Reads indirect register `index`.
    fn read_register(&self, index: u32) -> u32 {
        match index {
            REG_ID => self.id,
            REG_VER => VERSION,
            REG_ARB => self.id,
            _ => match self.redirection_index(index) {
                Some((pin, high)) => (self.redirection[pin] >> if high { 32 } else { 0 }) as u32,
                None => {
                    log::debug!("ioapic: read of nonexistent register {index:#x}");
                    0
                }
            },
        }
    }

    /// Writes indirect register `index`.
    fn write_register(&mut self, index: u32, value: u32) {
        match index {
            REG_ID => self.id = value & 0x0F00_0000,
            REG_VER | REG_ARB => log::debug!("ioapic: write to read-only register {index:#x}"),
            _ => match self.redirection_index(index) {
                Some((pin, high)) => {
                    let (shift, half) = if high {
                        (32, 0xFFFF_FFFF_0000_0000)
                    } else {
                        (0, 0xFFFF_FFFF)
                    };
                    let writable = half & RTE_WRITABLE;
                    let old = self.redirection[pin];
                    let new = (old & !writable) | ((u64::from(value) << shift) & writable);
                    self.redirection[pin] = new;
                    if new & RTE_TRIGGER_LEVEL == 0 {
                        // Remote IRR is undefined for edge entries; keep it clear.
                        self.redirection[pin] &= !RTE_REMOTE_IRR;
                    } else if old & RTE_MASKED != 0 || old & RTE_TRIGGER_LEVEL == 0 {
                        // Unmasking (or switching to level) an asserted level pin sends it.
                        self.service_level(pin);
                    }
                }
                None => log::debug!("ioapic: write to nonexistent register {index:#x}"),
            },
        }
    }

    /// The pin and half (high = true) that redirection register `index` names.
    fn redirection_index(&self, index: u32) -> Option<(usize, bool)> {
        let rel = index.checked_sub(REG_REDTBL)? as usize;
        (rel / 2 < IOAPIC_PINS).then_some((rel / 2, rel % 2 == 1))
    }
}

impl BusDevice for IoApic {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let value = match (offset, data.len()) {
            (IOREGSEL, 4) => self.ioregsel,
            (IOWIN, 4) => self.read_register(self.ioregsel),
            _ => {
                log::debug!(
                    "ioapic: unhandled {}-byte read at {:#x}",
                    data.len(),
                    base + offset
                );
                0
            }
        };
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = value.checked_shr(8 * i as u32).unwrap_or(0) as u8;
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            log::debug!(
                "ioapic: unhandled {}-byte write at {:#x}",
                data.len(),
                base + offset
            );
            return;
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            IOREGSEL => self.ioregsel = value & 0xFF,
            IOWIN => self.write_register(self.ioregsel, value),
            _ => log::debug!("ioapic: write to {:#x} ignored", base + offset),
        }
    }
}

/// One pin of an I/O APIC as an [`IrqLine`].
struct IoApicPin {
    ioapic: Arc<Mutex<IoApic>>,
    pin: usize,
}

impl IrqLine for IoApicPin {
    fn set_level(&self, high: bool) {
        self.ioapic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_pin_level(self.pin, high);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;

    /// A sink that records every message.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<ApicMessage>>);

    impl Recorder {
        fn take(&self) -> Vec<ApicMessage> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    impl ApicMessageSink for Recorder {
        fn deliver(&self, message: &ApicMessage) {
            self.0.lock().unwrap().push(*message);
        }
    }

    fn ioapic() -> (Arc<Mutex<IoApic>>, Arc<Recorder>, Bus) {
        let sink = Arc::new(Recorder::default());
        let ioapic = Arc::new(Mutex::new(IoApic::new(sink.clone())));
        let mut bus = Bus::new();
        bus.insert(ioapic.clone(), IOAPIC_BASE, IOAPIC_LEN).unwrap();
        (ioapic, sink, bus)
    }

    fn write_reg(bus: &Bus, index: u32, value: u32) {
        bus.write(IOAPIC_BASE, &index.to_le_bytes()).unwrap();
        bus.write(IOAPIC_BASE + 0x10, &value.to_le_bytes()).unwrap();
    }

    fn read_reg(bus: &Bus, index: u32) -> u32 {
        bus.write(IOAPIC_BASE, &index.to_le_bytes()).unwrap();
        let mut data = [0; 4];
        bus.read(IOAPIC_BASE + 0x10, &mut data).unwrap();
        u32::from_le_bytes(data)
    }

    /// Programs pin `pin`'s redirection entry as Linux does: high half (destination) first.
    fn program(bus: &Bus, pin: u32, entry: u64) {
        write_reg(bus, 0x11 + 2 * pin, (entry >> 32) as u32);
        write_reg(bus, 0x10 + 2 * pin, entry as u32);
    }

    const LEVEL: u64 = RTE_TRIGGER_LEVEL;

    #[test]
    fn identification_registers_and_reset_entries() {
        let (_, _, bus) = ioapic();
        assert_eq!(read_reg(&bus, 1), 0x0017_0011, "version 0x11, 24 entries");
        write_reg(&bus, 0, 0xFFFF_FFFF);
        assert_eq!(read_reg(&bus, 0), 0x0F00_0000, "ID in bits 27:24");
        write_reg(&bus, 2, 0);
        assert_eq!(read_reg(&bus, 2), 0x0F00_0000, "ARB is read-only");
        for pin in 0..24 {
            assert_eq!(read_reg(&bus, 0x10 + 2 * pin), 1 << 16, "pin {pin} masked");
            assert_eq!(read_reg(&bus, 0x11 + 2 * pin), 0);
        }
        assert_eq!(read_reg(&bus, 0x10 + 48), 0, "no entry 24");
        let mut byte = [0xAA];
        bus.read(IOAPIC_BASE + 0x10, &mut byte).unwrap();
        assert_eq!(byte, [0], "only 32-bit accesses");
    }

    #[test]
    fn delivery_status_and_remote_irr_are_read_only() {
        let (_, _, bus) = ioapic();
        write_reg(&bus, 0x12, 0xFFFF_FFFF);
        write_reg(&bus, 0x13, 0xFFFF_FFFF);
        assert_eq!(read_reg(&bus, 0x12), 0x0001_AFFF);
        assert_eq!(read_reg(&bus, 0x13), 0xFF00_0000);
    }

    #[test]
    fn an_edge_pin_sends_one_message_per_rising_edge() {
        let (ioapic, sink, bus) = ioapic();
        let com1 = IoApic::pin(&ioapic, 4).unwrap();
        program(&bus, 4, 0x0100_0000_0000_0024);
        com1.set_level(true);
        com1.set_level(true);
        let sent = sink.take();
        assert_eq!(
            sent,
            [ApicMessage {
                vector: 0x24,
                delivery_mode: DeliveryMode::Fixed,
                destination_mode: DestinationMode::Physical,
                destination: 1,
                level_triggered: false,
                shorthand: Shorthand::None,
            }]
        );
        com1.set_level(false);
        assert!(sink.take().is_empty());
        com1.set_level(true);
        assert_eq!(sink.take().len(), 1);
    }

    #[test]
    fn a_masked_pin_sends_nothing_and_its_edges_are_lost() {
        let (ioapic, sink, bus) = ioapic();
        let line = IoApic::pin(&ioapic, 4).unwrap();
        program(&bus, 4, RTE_MASKED | 0x24);
        line.set_level(true);
        assert!(sink.take().is_empty());
        program(&bus, 4, 0x24);
        assert!(sink.take().is_empty(), "the edge came while masked");
    }

    #[test]
    fn a_level_pin_waits_for_eoi_and_redelivers_while_still_asserted() {
        let (ioapic, sink, bus) = ioapic();
        let virtio = IoApic::pin(&ioapic, 16).unwrap();
        program(&bus, 16, LEVEL | 0x31);
        virtio.set_level(true);
        let sent = sink.take();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].level_triggered);
        assert_eq!(
            read_reg(&bus, 0x30) & (RTE_REMOTE_IRR as u32),
            RTE_REMOTE_IRR as u32
        );
        virtio.set_level(true);
        assert!(sink.take().is_empty(), "remote IRR holds it back");
        ioapic.lock().unwrap().eoi(0x32);
        assert!(sink.take().is_empty(), "an EOI for another vector");
        ioapic.lock().unwrap().eoi(0x31);
        assert_eq!(sink.take().len(), 1, "still high: sent again");
        virtio.set_level(false);
        ioapic.lock().unwrap().eoi(0x31);
        assert!(sink.take().is_empty(), "low: not sent again");
        assert_eq!(read_reg(&bus, 0x30) & (RTE_REMOTE_IRR as u32), 0);
    }

    #[test]
    fn an_active_low_pin_is_asserted_while_its_wire_is_low() {
        let (ioapic, sink, bus) = ioapic();
        let line = IoApic::pin(&ioapic, 9).unwrap();
        line.set_level(true);
        program(&bus, 9, LEVEL | RTE_POLARITY_LOW | 0x29);
        assert!(sink.take().is_empty(), "wire high = deasserted");
        line.set_level(false);
        assert_eq!(sink.take().len(), 1);
    }

    #[test]
    fn unmasking_an_asserted_level_pin_sends_it() {
        let (ioapic, sink, bus) = ioapic();
        IoApic::pin(&ioapic, 17).unwrap().set_level(true);
        program(&bus, 17, LEVEL | RTE_MASKED | 0x41);
        assert!(sink.take().is_empty());
        program(&bus, 17, LEVEL | RTE_DEST_LOGICAL | 0x0300_0000_0000_0041);
        let sent = sink.take();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].destination_mode, DestinationMode::Logical);
        assert_eq!(sent[0].destination, 3);
    }

    #[test]
    fn delivery_modes_are_carried_and_reserved_ones_dropped() {
        let (ioapic, sink, bus) = ioapic();
        let line = IoApic::pin(&ioapic, 2).unwrap();
        program(&bus, 2, 0x400); // NMI
        line.set_level(true);
        assert_eq!(sink.take()[0].delivery_mode, DeliveryMode::Nmi);
        line.set_level(false);
        program(&bus, 2, 0x300); // reserved
        line.set_level(true);
        assert!(sink.take().is_empty());
    }

    #[test]
    fn pins_past_23_do_not_exist() {
        let (ioapic, _, _) = ioapic();
        assert_eq!(
            IoApic::pin(&ioapic, 24).err(),
            Some(IoApicError::NoSuchPin(24))
        );
        ioapic.lock().unwrap().set_pin_level(99, true);
    }

    #[test]
    fn state_round_trips() {
        let (ioapic, sink, bus) = ioapic();
        write_reg(&bus, 0, 0x0200_0000);
        program(&bus, 16, LEVEL | 0x31);
        IoApic::pin(&ioapic, 16).unwrap().set_level(true);
        sink.take();
        let state = ioapic.lock().unwrap().state();
        let mut restored = IoApic::from_state(&state, sink.clone());
        assert_eq!(restored.state(), state);
        assert!(sink.take().is_empty(), "a restore sends nothing");
        restored.eoi(0x31);
        assert_eq!(sink.take().len(), 1, "remote IRR and the level survived");
    }
}
