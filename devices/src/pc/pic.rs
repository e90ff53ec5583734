//! The PC's two cascaded Intel 8259A programmable interrupt controllers, plus the PIIX-style
//! edge/level control registers (ELCR).
//!
//! | ports         | register                                                             |
//! |---------------|----------------------------------------------------------------------|
//! | 0x20 / 0x21   | master: command (ICW1, OCW2, OCW3; reads IRR/ISR/poll) / data (ICW2-4, IMR) |
//! | 0xA0 / 0xA1   | slave, cascaded on the master's IR2                                  |
//! | 0x4D0 / 0x4D1 | ELCR: one bit per IRQ, 1 = level-triggered (IRQ 0, 1, 2, 8, 13 fixed at edge) |
//!
//! One [`Pic`] handles all three ranges (it tells them apart by the range `base` the bus
//! passes); the machine inserts the same `Arc<Mutex<Pic>>` at 0x20 (len 2), 0xA0 (len 2) and
//! 0x4D0 (len 2).
//!
//! The CPU side is [`Pic::intr`] (the INTR pin) and [`Pic::acknowledge`] (the two INTA
//! cycles: the vector comes back, IRR and ISR are updated, the cascade is resolved). Whoever
//! runs the CPU can also give the PIC an output [`IrqLine`] ([`Pic::set_output`]), which is
//! driven to the INTR level every time it changes, so the vCPU loop learns of an interrupt
//! without polling. Devices drive the inputs through [`Pic::pin`].
//!
//! [`Pic`] is a cheap handle: clones (and the pins) share one controller behind a mutex, so
//! device threads can raise IRQs while the bus holds another clone. The output line is driven
//! with that mutex held, to keep INTR changes in order: it must not call back into the PIC
//! (flag the CPU and return).
//!
//! Modelled from the 8259A datasheet: the ICW1-ICW4 initialization sequence, OCW1 (IMR), OCW2
//! (non-specific and specific EOI, rotation on EOI, set priority, rotate in auto-EOI mode),
//! OCW3 (read IRR/ISR, poll command, special mask mode), fully nested priority with rotation,
//! the special fully nested mode on the master, auto-EOI, ICW1's LTIM bit (every input
//! level-triggered) and the per-IRQ ELCR.
//!
//! Choices where the datasheet leaves room:
//!
//! - An edge-triggered request stays latched in IRR until it is acknowledged, even if its
//!   input has gone low again. On the chip the input has to stay high until INTA; emulated
//!   devices, though, may pulse a line in zero time (the PIT's mode 2 OUT is low for one input
//!   clock), and losing those would lose timer ticks. A level-triggered request that goes
//!   away before INTA (or a request masked before INTA) gives the spurious vector of IR7 —
//!   IRQ 7, or IRQ 15 through the cascade (then the master's IR2 is in service, as on the
//!   chip, and Linux sends the master an EOI for it).
//! - ICW1 clears IRR and ISR as well as IMR: after initialization only new requests (a fresh
//!   rising edge, or a level still high) are seen.
//! - 8080/8085 mode (ICW4 bit 0 clear, or no ICW4) is logged and then treated as 8086 mode:
//!   there is no CALL sequence to give on an x86 machine. Buffered mode and the slave ID of
//!   ICW3 are stored and otherwise ignored: the slave always hangs off the master's IR2, as on
//!   every PC.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Base of the master's ports (command, data).
pub const PIC_MASTER_BASE: u64 = 0x20;
/// Base of the slave's ports (command, data).
pub const PIC_SLAVE_BASE: u64 = 0xa0;
/// Base of the two ELCR ports (IRQ 0-7, IRQ 8-15).
pub const ELCR_BASE: u64 = 0x4d0;
/// Length of each of the three port ranges.
pub const PIC_PORTS_LEN: u64 = 2;
/// Number of IRQ inputs of the pair.
pub const PIC_IRQS: usize = 16;
/// The master's input the slave's INT output is wired to.
pub const CASCADE_IRQ: u8 = 2;

// Command port (A0 = 0) write decoding.
/// ICW1: bit 4 set on a command-port write starts initialization.
const ICW1_INIT: u8 = 0x10;
/// ICW1: an ICW4 follows.
const ICW1_IC4: u8 = 0x01;
/// ICW1: single chip, no ICW3.
const ICW1_SNGL: u8 = 0x02;
/// ICW1: level-triggered mode for every input.
const ICW1_LTIM: u8 = 0x08;
/// OCW3 (as opposed to OCW2): bit 3 set with bit 4 clear.
const OCW3_SELECT: u8 = 0x08;
/// OCW3: read register command enable (with RIS selecting ISR over IRR).
const OCW3_RR: u8 = 0x02;
/// OCW3: read ISR (with RR).
const OCW3_RIS: u8 = 0x01;
/// OCW3: poll command.
const OCW3_POLL: u8 = 0x04;
/// OCW3: enable special mask mode change (with SMM giving the new mode).
const OCW3_ESMM: u8 = 0x40;
/// OCW3: special mask mode (with ESMM).
const OCW3_SMM: u8 = 0x20;
// ICW4 bits.
/// ICW4: 8086/8088 mode (else 8080/8085).
const ICW4_8086: u8 = 0x01;
/// ICW4: automatic end of interrupt.
const ICW4_AEOI: u8 = 0x02;
/// ICW4: special fully nested mode.
const ICW4_SFNM: u8 = 0x10;
/// ICW2: the bits of the vector base software chooses (the low 3 are the IR number).
const ICW2_VECTOR_MASK: u8 = 0xf8;
/// Poll word: bit 7 says a request was pending, bits 2-0 its IR.
const POLL_PENDING: u8 = 0x80;
/// ELCR bits that can be set: IRQ 0, 1 and 2 are edge-triggered on a PC ...
const ELCR_MASTER_WRITABLE: u8 = 0xf8;
/// ... and so are IRQ 8 (RTC) and IRQ 13 (FPU).
const ELCR_SLAVE_WRITABLE: u8 = 0xde;

/// Errors from [`Pic::pin`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PicError {
    /// IRQs are 0 to 15.
    #[error("the 8259 pair has IRQs 0 to 15, not {0}")]
    NoSuchIrq(usize),
    /// IRQ 2 is the master's cascade input, driven by the slave only.
    #[error("IRQ 2 is the cascade input of the master 8259 and cannot be driven by a device")]
    CascadeIrq,
}

/// Where a chip is in its initialization sequence: which ICW the data port expects next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InitStep {
    /// Initialized: data-port writes are OCW1 (the IMR).
    #[default]
    Ready,
    /// ICW1 written, ICW2 (vector base) expected.
    Icw2,
    /// ICW3 (cascade wiring) expected.
    Icw3,
    /// ICW4 (mode) expected.
    Icw4,
}

/// Saved state of one 8259A.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PicChipState {
    /// Interrupt request register.
    pub irr: u8,
    /// In-service register.
    pub isr: u8,
    /// Interrupt mask register (OCW1).
    pub imr: u8,
    /// Levels of the eight IR input wires.
    pub input: u8,
    /// The IR with the highest priority (0 unless rotated; the lowest is the one before it).
    pub highest_priority: u8,
    /// Vector base from ICW2 (low three bits zero).
    pub vector_base: u8,
    /// The initialization step the data port is at.
    pub init_step: InitStep,
    /// ICW1 asked for an ICW4.
    pub icw4_needed: bool,
    /// ICW1's single mode (no cascade).
    pub single: bool,
    /// ICW1's LTIM: every input level-triggered.
    pub level_triggered: bool,
    /// ICW3 as written.
    pub icw3: u8,
    /// ICW4's 8086 mode bit.
    pub mode_8086: bool,
    /// ICW4's automatic EOI.
    pub auto_eoi: bool,
    /// OCW2's rotate in automatic EOI mode.
    pub rotate_on_auto_eoi: bool,
    /// ICW4's special fully nested mode.
    pub special_fully_nested: bool,
    /// OCW3's special mask mode.
    pub special_mask: bool,
    /// OCW3: command-port reads return ISR (else IRR).
    pub read_isr: bool,
    /// OCW3's poll command: the next command-port read is a poll.
    pub poll: bool,
}

/// Saved state of the [`Pic`] pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PicState {
    /// The master (IRQ 0-7).
    pub master: PicChipState,
    /// The slave (IRQ 8-15).
    pub slave: PicChipState,
    /// ELCR for IRQ 0-7 and IRQ 8-15 (1 = level-triggered).
    pub elcr: [u8; 2],
}

/// One 8259A: its registers and priority logic.
#[derive(Clone, Debug, Default)]
struct Chip {
    s: PicChipState,
    /// ELCR bits for this chip's inputs.
    elcr: u8,
}

/// The highest-priority IR set in `bits`, counting from `highest` downwards in rotation.
fn highest_in(bits: u8, highest: u8) -> Option<u8> {
    (0..8)
        .map(|i| (highest + i) & 7)
        .find(|&ir| bits & (1 << ir) != 0)
}

impl Chip {
    /// The inputs that are level-sensitive.
    fn level_mask(&self) -> u8 {
        if self.s.level_triggered {
            0xff
        } else {
            self.elcr
        }
    }

    /// Priority rank of `ir`: 0 is the highest.
    fn rank(&self, ir: u8) -> u8 {
        ir.wrapping_sub(self.s.highest_priority) & 7
    }

    /// Drives input `ir` to `high`: a rising edge latches an edge-triggered request, a level
    /// input's request follows the wire.
    fn set_input(&mut self, ir: u8, high: bool) {
        let bit = 1 << ir;
        let was_high = self.s.input & bit != 0;
        if high {
            self.s.input |= bit;
        } else {
            self.s.input &= !bit;
        }
        if self.level_mask() & bit != 0 {
            if high {
                self.s.irr |= bit;
            } else {
                self.s.irr &= !bit;
            }
        } else if high && !was_high {
            self.s.irr |= bit;
        }
    }

    /// The request this chip would present to the CPU (or the master), if any: the highest
    /// unmasked IRR bit with a higher priority than everything in service. In special mask
    /// mode masked levels in service do not inhibit; in special fully nested mode a cascade
    /// input in service does not inhibit further requests from the same slave.
    fn pending(&self, cascade_inputs: u8) -> Option<u8> {
        let ir = highest_in(self.s.irr & !self.s.imr, self.s.highest_priority)?;
        let mut in_service = self.s.isr;
        if self.s.special_mask {
            in_service &= !self.s.imr;
        }
        if self.s.special_fully_nested && cascade_inputs & (1 << ir) != 0 {
            in_service &= !(1 << ir);
        }
        match highest_in(in_service, self.s.highest_priority) {
            Some(busy) if self.rank(busy) <= self.rank(ir) => None,
            _ => Some(ir),
        }
    }

    /// The INTA (or poll) of request `ir`: into service (unless auto-EOI), out of IRR.
    fn accept(&mut self, ir: u8) {
        let bit = 1 << ir;
        if self.s.auto_eoi {
            if self.s.rotate_on_auto_eoi {
                self.s.highest_priority = (ir + 1) & 7;
            }
        } else {
            self.s.isr |= bit;
        }
        if self.level_mask() & bit != 0 {
            // A level request is the wire itself.
            self.s.irr = (self.s.irr & !bit) | (self.s.input & bit);
        } else {
            self.s.irr &= !bit;
        }
    }

    /// The highest-priority IR in service (what a non-specific EOI clears). In special mask
    /// mode that is the highest one not masked, the one actually being serviced.
    fn highest_in_service(&self) -> Option<u8> {
        let mut isr = self.s.isr;
        if self.s.special_mask {
            isr &= !self.s.imr;
        }
        highest_in(isr, self.s.highest_priority)
    }

    /// A command-port write: ICW1, OCW2 or OCW3.
    fn write_command(&mut self, value: u8) {
        if value & ICW1_INIT != 0 {
            self.s = PicChipState {
                input: self.s.input,
                init_step: InitStep::Icw2,
                icw4_needed: value & ICW1_IC4 != 0,
                single: value & ICW1_SNGL != 0,
                level_triggered: value & ICW1_LTIM != 0,
                vector_base: self.s.vector_base,
                ..PicChipState::default()
            };
            // Levels still high are requests again; edges must be new.
            self.s.irr = self.s.input & self.level_mask();
        } else if value & OCW3_SELECT != 0 {
            if value & OCW3_ESMM != 0 {
                self.s.special_mask = value & OCW3_SMM != 0;
            }
            if value & OCW3_RR != 0 {
                self.s.read_isr = value & OCW3_RIS != 0;
            }
            self.s.poll = value & OCW3_POLL != 0;
        } else {
            self.write_ocw2(value);
        }
    }

    /// OCW2: bits 7-5 are R, SL, EOI; bits 2-0 the level for the specific forms.
    fn write_ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI, and rotate on non-specific EOI.
            0b001 | 0b101 => {
                if let Some(ir) = self.highest_in_service() {
                    self.s.isr &= !(1 << ir);
                    if value >> 5 == 0b101 {
                        self.s.highest_priority = (ir + 1) & 7;
                    }
                }
            }
            // Specific EOI.
            0b011 => self.s.isr &= !(1 << level),
            // Rotate on specific EOI: the level becomes the lowest priority.
            0b111 => {
                self.s.isr &= !(1 << level);
                self.s.highest_priority = (level + 1) & 7;
            }
            // Set priority: the level becomes the lowest priority.
            0b110 => self.s.highest_priority = (level + 1) & 7,
            // Set / clear rotate in automatic EOI mode.
            0b100 => self.s.rotate_on_auto_eoi = true,
            0b000 => self.s.rotate_on_auto_eoi = false,
            // 0b010: no operation.
            _ => {}
        }
    }

    /// A data-port write: the next ICW during initialization, else OCW1.
    fn write_data(&mut self, value: u8, name: &str) {
        match self.s.init_step {
            InitStep::Ready => self.s.imr = value,
            InitStep::Icw2 => {
                self.s.vector_base = value & ICW2_VECTOR_MASK;
                self.s.init_step = if !self.s.single {
                    InitStep::Icw3
                } else {
                    self.after_icw3()
                };
                if self.s.init_step == InitStep::Ready {
                    self.no_icw4(name);
                }
            }
            InitStep::Icw3 => {
                self.s.icw3 = value;
                self.s.init_step = self.after_icw3();
                if self.s.init_step == InitStep::Ready {
                    self.no_icw4(name);
                }
            }
            InitStep::Icw4 => {
                self.s.mode_8086 = value & ICW4_8086 != 0;
                self.s.auto_eoi = value & ICW4_AEOI != 0;
                self.s.special_fully_nested = value & ICW4_SFNM != 0;
                self.s.init_step = InitStep::Ready;
                if !self.s.mode_8086 {
                    log::warn!("8259 {name}: 8080 mode requested; giving 8086 vectors anyway");
                }
            }
        }
    }

    fn after_icw3(&self) -> InitStep {
        if self.s.icw4_needed {
            InitStep::Icw4
        } else {
            InitStep::Ready
        }
    }

    /// Initialization ended without ICW4: its bits are all zero (8080 mode, normal EOI).
    fn no_icw4(&mut self, name: &str) {
        self.s.mode_8086 = false;
        self.s.auto_eoi = false;
        self.s.special_fully_nested = false;
        log::warn!("8259 {name}: initialized without ICW4 (8080 mode); giving 8086 vectors");
    }

    /// A command-port read: the poll word after a poll command, else IRR or ISR.
    fn read_command(&mut self, cascade_inputs: u8) -> u8 {
        if self.s.poll {
            self.s.poll = false;
            return match self.pending(cascade_inputs) {
                Some(ir) => {
                    self.accept(ir);
                    POLL_PENDING | ir
                }
                None => 0,
            };
        }
        if self.s.read_isr {
            self.s.isr
        } else {
            self.s.irr
        }
    }
}

/// The controller pair behind the [`Pic`] handles' mutex.
struct PicInner {
    master: Chip,
    slave: Chip,
    output: Option<Arc<dyn IrqLine>>,
    /// The INTR level last driven on `output`.
    intr: bool,
}

impl PicInner {
    /// The master's inputs wired to a slave (none in single mode).
    fn cascade_inputs(&self) -> u8 {
        if self.master.s.single {
            0
        } else {
            1 << CASCADE_IRQ
        }
    }

    /// Propagates the slave's INT to the master's IR2 and the master's INT to INTR.
    fn update(&mut self) {
        let slave_int = self.slave.pending(0).is_some();
        self.master.set_input(CASCADE_IRQ, slave_int);
        let intr = self.master.pending(self.cascade_inputs()).is_some();
        if intr != self.intr {
            self.intr = intr;
            if let Some(output) = &self.output {
                output.set_level(intr);
            }
        }
    }

    fn set_irq(&mut self, irq: u8, high: bool) {
        if irq < 8 {
            self.master.set_input(irq, high);
        } else {
            self.slave.set_input(irq - 8, high);
        }
        self.update();
    }

    fn acknowledge(&mut self) -> u8 {
        let cascade = self.cascade_inputs();
        let vector = match self.master.pending(cascade) {
            None => self.master.s.vector_base | 7,
            Some(ir) => {
                self.master.accept(ir);
                if cascade & (1 << ir) != 0 {
                    match self.slave.pending(0) {
                        Some(sir) => {
                            self.slave.accept(sir);
                            self.slave.s.vector_base | sir
                        }
                        None => self.slave.s.vector_base | 7,
                    }
                } else {
                    self.master.s.vector_base | ir
                }
            }
        };
        self.update();
        vector
    }

    /// Sets the ELCR of chip `index` (0 master, 1 slave), re-evaluating level requests.
    fn write_elcr(&mut self, index: usize, value: u8) {
        let chip = if index == 0 {
            &mut self.master
        } else {
            &mut self.slave
        };
        chip.elcr = value
            & if index == 0 {
                ELCR_MASTER_WRITABLE
            } else {
                ELCR_SLAVE_WRITABLE
            };
        let level = chip.level_mask();
        chip.s.irr = (chip.s.irr & !level) | (chip.s.input & level);
        self.update();
    }
}

/// The 8259A pair; see the module documentation. Clones share the controller.
#[derive(Clone)]
pub struct Pic {
    inner: Arc<Mutex<PicInner>>,
}

impl std::fmt::Debug for Pic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pic").field("state", &self.state()).finish()
    }
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

/// One input wire of the pair, from [`Pic::pin`].
struct PicPin {
    inner: Arc<Mutex<PicInner>>,
    irq: u8,
}

impl IrqLine for PicPin {
    fn set_level(&self, high: bool) {
        lock(&self.inner).set_irq(self.irq, high);
    }
}

fn lock(inner: &Mutex<PicInner>) -> MutexGuard<'_, PicInner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pic {
    /// A pair at power-on: both chips wait for ICW1 in spirit (vector base 0, nothing masked,
    /// nothing pending), all ELCR bits edge, no output line.
    pub fn new() -> Self {
        Self::from_state(&PicState::default())
    }

    /// Rebuilds a pair from a saved state (out-of-range fields are masked to their width).
    /// The output line, if any, is set with [`Pic::set_output`], which drives it at once.
    pub fn from_state(state: &PicState) -> Self {
        let chip = |s: &PicChipState, elcr: u8| {
            let mut s = s.clone();
            s.highest_priority &= 7;
            s.vector_base &= ICW2_VECTOR_MASK;
            Chip { s, elcr }
        };
        let mut inner = PicInner {
            master: chip(&state.master, state.elcr[0] & ELCR_MASTER_WRITABLE),
            slave: chip(&state.slave, state.elcr[1] & ELCR_SLAVE_WRITABLE),
            output: None,
            intr: false,
        };
        inner.update();
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// The state, for snapshots.
    pub fn state(&self) -> PicState {
        let inner = lock(&self.inner);
        PicState {
            master: inner.master.s.clone(),
            slave: inner.slave.s.clone(),
            elcr: [inner.master.elcr, inner.slave.elcr],
        }
    }

    /// Sets the line driven with INTR's level whenever it changes, and drives it now.
    pub fn set_output(&self, output: Arc<dyn IrqLine>) {
        let mut inner = lock(&self.inner);
        output.set_level(inner.intr);
        inner.output = Some(output);
    }

    /// The input wire of `irq` (0, 1 and 3-15; IRQ 2 is the cascade), for a device to drive.
    pub fn pin(&self, irq: usize) -> Result<Arc<dyn IrqLine>, PicError> {
        if irq >= PIC_IRQS {
            return Err(PicError::NoSuchIrq(irq));
        }
        if irq == usize::from(CASCADE_IRQ) {
            return Err(PicError::CascadeIrq);
        }
        Ok(Arc::new(PicPin {
            inner: self.inner.clone(),
            irq: irq as u8,
        }))
    }

    /// The INTR output: the master has a request for the CPU.
    pub fn intr(&self) -> bool {
        lock(&self.inner).intr
    }

    /// The INTA cycle: the vector of the highest-priority request, which goes into service
    /// (through the cascade for IRQ 8-15). With no request left (it went away, or was masked,
    /// after INTR rose) the spurious vector of IR7 (IRQ 7, or IRQ 15 via the slave).
    pub fn acknowledge(&self) -> u8 {
        lock(&self.inner).acknowledge()
    }
}

impl BusDevice for Pic {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let mut inner = lock(&self.inner);
        let cascade = inner.cascade_inputs();
        let value = match (base, offset, data.len()) {
            (PIC_MASTER_BASE, 0, 1) => {
                let v = inner.master.read_command(cascade);
                inner.update();
                v
            }
            (PIC_SLAVE_BASE, 0, 1) => {
                let v = inner.slave.read_command(0);
                inner.update();
                v
            }
            (PIC_MASTER_BASE, 1, 1) => inner.master.s.imr,
            (PIC_SLAVE_BASE, 1, 1) => inner.slave.s.imr,
            (ELCR_BASE, 0, 1) => inner.master.elcr,
            (ELCR_BASE, 1, 1) => inner.slave.elcr,
            _ => {
                log::debug!(
                    "8259: unhandled {}-byte read at {:#x}",
                    data.len(),
                    base + offset
                );
                data.fill(0xff);
                return;
            }
        };
        data[0] = value;
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let mut inner = lock(&self.inner);
        match (base, offset, data) {
            (PIC_MASTER_BASE, 0, &[v]) => inner.master.write_command(v),
            (PIC_SLAVE_BASE, 0, &[v]) => inner.slave.write_command(v),
            (PIC_MASTER_BASE, 1, &[v]) => inner.master.write_data(v, "master"),
            (PIC_SLAVE_BASE, 1, &[v]) => inner.slave.write_data(v, "slave"),
            (ELCR_BASE, 0, &[v]) => inner.write_elcr(0, v),
            (ELCR_BASE, 1, &[v]) => inner.write_elcr(1, v),
            _ => {
                log::debug!(
                    "8259: unhandled {}-byte write at {:#x}",
                    data.len(),
                    base + offset
                );
                return;
            }
        }
        inner.update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;

    fn out(pic: &mut Pic, port: u64, value: u8) {
        let base = port & !1;
        pic.write(base, port - base, &[value]);
    }

    fn inb(pic: &mut Pic, port: u64) -> u8 {
        let base = port & !1;
        let mut b = [0];
        pic.read(base, port - base, &mut b);
        b[0]
    }

    /// Linux's `init_8259A`: ICW1 0x11 (edge, cascade, ICW4), ICW2 0x20 / 0x28, ICW3 0x04
    /// (slave on IR2) / 0x02 (slave ID 2), ICW4 0x01 (8086, normal EOI), then unmask.
    fn linux_init(pic: &mut Pic, master_mask: u8, slave_mask: u8) {
        out(pic, 0x21, 0xff);
        out(pic, 0xa1, 0xff);
        out(pic, 0x20, 0x11);
        out(pic, 0x21, 0x20);
        out(pic, 0x21, 0x04);
        out(pic, 0x21, 0x01);
        out(pic, 0xa0, 0x11);
        out(pic, 0xa1, 0x28);
        out(pic, 0xa1, 0x02);
        out(pic, 0xa1, 0x01);
        out(pic, 0x21, master_mask);
        out(pic, 0xa1, slave_mask);
    }

    fn pic_with_output() -> (Pic, Arc<RecordingIrq>) {
        let mut pic = Pic::new();
        let intr = Arc::new(RecordingIrq::default());
        pic.set_output(intr.clone());
        linux_init(&mut pic, 0x00, 0x00);
        (pic, intr)
    }

    /// OCW3 to read ISR (0x0b) or IRR (0x0a) on the next command-port read.
    fn isr(pic: &mut Pic, port: u64) -> u8 {
        out(pic, port, 0x0b);
        let v = inb(pic, port);
        out(pic, port, 0x0a);
        v
    }

    #[test]
    fn linux_init_sequence_sets_vector_bases_and_masks() {
        let mut pic = Pic::new();
        linux_init(&mut pic, 0xfb, 0xff);
        let s = pic.state();
        assert_eq!(s.master.vector_base, 0x20);
        assert_eq!(s.slave.vector_base, 0x28);
        assert_eq!(s.master.icw3, 0x04);
        assert_eq!(s.slave.icw3, 0x02);
        assert!(s.master.mode_8086 && !s.master.auto_eoi);
        assert_eq!(s.master.init_step, InitStep::Ready);
        assert_eq!(inb(&mut pic, 0x21), 0xfb);
        assert_eq!(inb(&mut pic, 0xa1), 0xff);
        assert!(!pic.intr());
    }

    #[test]
    fn an_edge_on_irq0_raises_intr_and_inta_gives_vector_0x20_until_eoi() {
        let (mut pic, intr) = pic_with_output();
        let irq0 = pic.pin(0).unwrap();
        irq0.set_level(true);
        assert!(pic.intr() && intr.level());
        assert_eq!(inb(&mut pic, 0x20), 0x01, "IRR");
        assert_eq!(pic.acknowledge(), 0x20);
        assert!(!pic.intr() && !intr.level());
        assert_eq!(isr(&mut pic, 0x20), 0x01);
        // The wire is still high: no new edge, no new request.
        irq0.set_level(true);
        assert!(!pic.intr());
        irq0.set_level(false);
        irq0.set_level(true);
        // A new edge is latched but IR0 is in service.
        assert!(!pic.intr());
        out(&mut pic, 0x20, 0x20); // non-specific EOI
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x20);
    }

    #[test]
    fn a_slave_irq_arrives_as_0x28_plus_n_through_the_cascade_and_needs_both_eois() {
        let (mut pic, _intr) = pic_with_output();
        let irq12 = pic.pin(12).unwrap();
        irq12.set_level(true);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x2c);
        assert_eq!(isr(&mut pic, 0x20), 1 << 2, "master IR2 in service");
        assert_eq!(isr(&mut pic, 0xa0), 1 << 4, "slave IR4 in service");
        irq12.set_level(false);
        // Another slave request is blocked by the in-service IR2 on the master until both
        // chips got their EOI.
        let irq10 = pic.pin(10).unwrap();
        irq10.set_level(true);
        assert!(!pic.intr());
        out(&mut pic, 0xa0, 0x20);
        assert_eq!(isr(&mut pic, 0xa0), 0);
        assert!(!pic.intr(), "the master still has IR2 in service");
        out(&mut pic, 0x20, 0x20);
        assert_eq!(isr(&mut pic, 0x20), 0);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x2a);
    }

    #[test]
    fn fully_nested_priority_lower_numbers_first_and_higher_ones_preempt() {
        let (mut pic, _intr) = pic_with_output();
        pic.pin(4).unwrap().set_level(true);
        pic.pin(3).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x23);
        // IR4 waits for IR3's EOI ...
        assert!(!pic.intr());
        // ... but IR1 has a higher priority and nests.
        pic.pin(1).unwrap().set_level(true);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x21);
        assert_eq!(isr(&mut pic, 0x20), 0b1010);
        out(&mut pic, 0x20, 0x20); // clears IR1, the highest in service
        assert_eq!(isr(&mut pic, 0x20), 0b1000);
        assert!(!pic.intr());
        out(&mut pic, 0x20, 0x63); // specific EOI of IR3
        assert_eq!(pic.acknowledge(), 0x24);
    }

    #[test]
    fn masked_requests_wait_in_irr_and_unmasking_delivers_them() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x21, 1 << 5);
        pic.pin(5).unwrap().set_level(true);
        assert!(!pic.intr());
        assert_eq!(inb(&mut pic, 0x20), 1 << 5);
        out(&mut pic, 0x21, 0);
        assert_eq!(pic.acknowledge(), 0x25);
    }

    #[test]
    fn a_slave_masked_on_the_master_is_not_delivered() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x21, 1 << 2);
        pic.pin(9).unwrap().set_level(true);
        assert!(!pic.intr());
        out(&mut pic, 0x21, 0);
        assert_eq!(pic.acknowledge(), 0x29);
    }

    #[test]
    fn rotate_on_non_specific_eoi_makes_the_serviced_level_lowest() {
        let (mut pic, _intr) = pic_with_output();
        pic.pin(1).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x21);
        out(&mut pic, 0x20, 0xa0); // rotate on non-specific EOI
        assert_eq!(pic.state().master.highest_priority, 2);
        // Now IR0 ranks below IR5.
        pic.pin(0).unwrap().set_level(true);
        pic.pin(5).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x25);
        out(&mut pic, 0x20, 0x20);
        assert_eq!(pic.acknowledge(), 0x20);
    }

    #[test]
    fn set_priority_command_rotates_without_eoi() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x20, 0xc0 | 4); // IR4 lowest, IR5 highest
        pic.pin(3).unwrap().set_level(true);
        pic.pin(6).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x26);
    }

    #[test]
    fn auto_eoi_leaves_nothing_in_service_and_can_rotate() {
        let mut pic = Pic::new();
        out(&mut pic, 0x20, 0x11);
        out(&mut pic, 0x21, 0x40);
        out(&mut pic, 0x21, 0x04);
        out(&mut pic, 0x21, 0x03); // 8086, auto-EOI
        out(&mut pic, 0x20, 0x80); // rotate in auto-EOI mode
        pic.pin(3).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x43);
        assert_eq!(isr(&mut pic, 0x20), 0);
        assert_eq!(pic.state().master.highest_priority, 4);
    }

    #[test]
    fn special_fully_nested_mode_lets_a_higher_slave_irq_through_the_cascade_in_service() {
        let mut pic = Pic::new();
        linux_init(&mut pic, 0, 0);
        out(&mut pic, 0x20, 0x11);
        out(&mut pic, 0x21, 0x20);
        out(&mut pic, 0x21, 0x04);
        out(&mut pic, 0x21, 0x11); // 8086, special fully nested
        out(&mut pic, 0x21, 0x00);
        pic.pin(12).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x2c);
        // Lower priority on the slave: blocked by the slave's own ISR.
        pic.pin(14).unwrap().set_level(true);
        assert!(!pic.intr());
        // Higher priority on the slave: through, although the master has IR2 in service.
        pic.pin(9).unwrap().set_level(true);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x29);
    }

    #[test]
    fn without_special_fully_nested_mode_the_cascade_in_service_blocks_the_slave() {
        let (pic, _intr) = pic_with_output();
        pic.pin(12).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x2c);
        pic.pin(9).unwrap().set_level(true);
        assert!(!pic.intr());
    }

    #[test]
    fn poll_command_returns_the_highest_request_and_puts_it_in_service() {
        let (mut pic, _intr) = pic_with_output();
        assert_eq!(
            {
                out(&mut pic, 0x20, 0x0c);
                inb(&mut pic, 0x20)
            },
            0x00,
            "nothing pending"
        );
        pic.pin(6).unwrap().set_level(true);
        pic.pin(4).unwrap().set_level(true);
        out(&mut pic, 0x20, 0x0c);
        assert_eq!(inb(&mut pic, 0x20), 0x84);
        assert_eq!(isr(&mut pic, 0x20), 1 << 4);
        // The poll applies to one read only.
        assert_eq!(inb(&mut pic, 0x20), 1 << 6, "IRR again");
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_through_a_masked_in_service_one() {
        let (mut pic, _intr) = pic_with_output();
        pic.pin(3).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x23);
        pic.pin(6).unwrap().set_level(true);
        assert!(!pic.intr());
        out(&mut pic, 0x21, 1 << 3);
        out(&mut pic, 0x20, 0x68); // set special mask mode
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x26);
        out(&mut pic, 0x20, 0x48); // reset special mask mode
        assert!(!pic.state().master.special_mask);
    }

    #[test]
    fn level_triggered_irqs_via_elcr_follow_the_wire_and_repeat_after_eoi() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x4d0, 1 << 5); // IRQ 5 level
        assert_eq!(inb(&mut pic, 0x4d0), 1 << 5);
        let irq5 = pic.pin(5).unwrap();
        irq5.set_level(true);
        assert_eq!(pic.acknowledge(), 0x25);
        out(&mut pic, 0x20, 0x20);
        // Still high: requested again without a new edge.
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x25);
        out(&mut pic, 0x20, 0x20);
        assert!(pic.intr());
        // The wire drops: the request goes with it.
        irq5.set_level(false);
        assert!(!pic.intr());
    }

    /// Linux's `mask_and_ack_8259A` for a slave IRQ: mask it, specific EOI to the slave, then
    /// to the master's cascade IR2; the handler quiets the device, then unmasks.
    #[test]
    fn a_level_slave_irq_handled_like_linux_is_delivered_once_per_assertion() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x4d1, 1 << 3); // IRQ 11 level
        let irq11 = pic.pin(11).unwrap();
        irq11.set_level(true);
        assert_eq!(pic.acknowledge(), 0x2b);
        out(&mut pic, 0xa1, 1 << 3);
        out(&mut pic, 0xa0, 0x60 | 3);
        out(&mut pic, 0x20, 0x60 | 2);
        irq11.set_level(false);
        out(&mut pic, 0xa1, 0);
        assert!(!pic.intr());
        irq11.set_level(true);
        assert_eq!(pic.acknowledge(), 0x2b);
    }

    #[test]
    fn an_edge_irq_does_not_repeat_while_the_wire_stays_high() {
        let (mut pic, _intr) = pic_with_output();
        let irq11 = pic.pin(11).unwrap();
        irq11.set_level(true);
        assert_eq!(pic.acknowledge(), 0x2b);
        out(&mut pic, 0xa0, 0x20);
        out(&mut pic, 0x20, 0x20);
        assert!(!pic.intr());
    }

    #[test]
    fn elcr_keeps_irq_0_1_2_8_13_edge_triggered() {
        let mut pic = Pic::new();
        out(&mut pic, 0x4d0, 0xff);
        out(&mut pic, 0x4d1, 0xff);
        assert_eq!(inb(&mut pic, 0x4d0), 0xf8);
        assert_eq!(inb(&mut pic, 0x4d1), 0xde);
    }

    #[test]
    fn a_level_request_gone_before_inta_gives_spurious_irq7() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x4d0, 1 << 5);
        let irq5 = pic.pin(5).unwrap();
        irq5.set_level(true);
        assert!(pic.intr());
        irq5.set_level(false);
        assert_eq!(pic.acknowledge(), 0x27);
        assert_eq!(
            isr(&mut pic, 0x20),
            0,
            "a spurious IR7 is not put in service"
        );
    }

    #[test]
    fn a_slave_request_gone_before_inta_gives_spurious_irq15_with_master_ir2_in_service() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x4d1, 1 << 2);
        let irq10 = pic.pin(10).unwrap();
        irq10.set_level(true);
        irq10.set_level(false);
        assert_eq!(pic.acknowledge(), 0x2f);
        assert_eq!(isr(&mut pic, 0xa0), 0);
        assert_eq!(isr(&mut pic, 0x20), 1 << 2);
    }

    #[test]
    fn icw1_clears_pending_edges_and_resets_imr_and_read_select() {
        let (mut pic, _intr) = pic_with_output();
        out(&mut pic, 0x21, 0x10);
        pic.pin(4).unwrap().set_level(true);
        out(&mut pic, 0x20, 0x0b);
        out(&mut pic, 0x20, 0x11);
        let s = pic.state().master;
        assert_eq!((s.irr, s.isr, s.imr, s.read_isr), (0, 0, 0, false));
        assert_eq!(s.init_step, InitStep::Icw2);
    }

    #[test]
    fn pins_out_of_range_and_the_cascade_are_refused() {
        let pic = Pic::new();
        assert_eq!(pic.pin(16).err(), Some(PicError::NoSuchIrq(16)));
        assert_eq!(pic.pin(2).err(), Some(PicError::CascadeIrq));
        assert!(pic.pin(15).is_ok());
    }

    #[test]
    fn state_round_trips_with_a_request_in_service() {
        let (pic, _intr) = pic_with_output();
        pic.pin(9).unwrap().set_level(true);
        pic.pin(4).unwrap().set_level(true);
        assert_eq!(pic.acknowledge(), 0x29);
        let state = pic.state();
        let mut restored = Pic::from_state(&state);
        assert_eq!(restored.state(), state);
        assert!(!restored.intr());
        out(&mut restored, 0xa0, 0x20);
        out(&mut restored, 0x20, 0x20);
        assert_eq!(restored.acknowledge(), 0x24);
    }
}
