//! The local APIC of one vCPU, in xAPIC mode (Intel SDM vol. 3 ch. 11).
//!
//! Register file, at these offsets from the APIC base (`0xFEE0_0000`); every register is 32
//! bits wide and 16-byte aligned:
//!
//! | offset        | register                        | access |
//! |---------------|---------------------------------|--------|
//! | `0x020`       | local APIC ID (bits 31:24)      | RW     |
//! | `0x030`       | version                         | RO     |
//! | `0x080`       | task priority (TPR)             | RW     |
//! | `0x090`       | arbitration priority (APR)      | RO     |
//! | `0x0A0`       | processor priority (PPR)        | RO     |
//! | `0x0B0`       | EOI                             | WO     |
//! | `0x0C0`       | remote read (RRD)               | RO     |
//! | `0x0D0`       | logical destination (LDR)       | RW     |
//! | `0x0E0`       | destination format (DFR)        | RW     |
//! | `0x0F0`       | spurious interrupt vector (SVR) | RW     |
//! | `0x100-0x170` | in-service register (ISR)       | RO     |
//! | `0x180-0x1F0` | trigger mode register (TMR)     | RO     |
//! | `0x200-0x270` | interrupt request register (IRR)| RO     |
//! | `0x280`       | error status (ESR)              | RW     |
//! | `0x300/0x310` | interrupt command (ICR) low/high| RW     |
//! | `0x320-0x370` | LVT timer, thermal, perf, LINT0, LINT1, error | RW |
//! | `0x380`       | timer initial count             | RW     |
//! | `0x390`       | timer current count             | RO     |
//! | `0x3E0`       | timer divide configuration      | RW     |
//!
//! The version register reads `0x0005_0014`: an integrated APIC (0x14) with six LVT entries
//! (max LVT entry 5: no CMCI) and no EOI-broadcast suppression.
//!
//! The timer counts bus clocks at [`APIC_BUS_HZ`] (1 GHz, one tick a nanosecond, as KVM
//! advertises), divided by the divide configuration. TSC-deadline mode compares with a TSC
//! running at the frequency given to [`Tsc::new`] from the same [`Clock`].
//!
//! The CPU's view: [`LocalApic::pending`] gives the vector to take when `RFLAGS.IF = 1`,
//! [`LocalApic::acknowledge`] moves it into service (the INTA cycle), and the EOI register
//! retires it. NMIs, SMIs, ExtINT (the 8259 behind LINT0), INIT and start-up IPIs are recorded
//! for the CPU to take with [`LocalApic::take_nmi`], [`LocalApic::take_smi`],
//! [`LocalApic::ext_int_pending`] and [`LocalApic::take_init_sipi`].
//!
//! Left out: x2APIC mode (the MSRs at `0x800..0x8FF`; `IA32_APIC_BASE.EXTD` cannot be set),
//! relocating the APIC base (the base MSR keeps `0xFEE0_0000`), the remote read register
//! (reads 0), level-triggered LVT LINT inputs (treated as edge), thermal and performance
//! monitoring sources (those LVT entries are storage only), and a divide-configuration change
//! while the timer runs (it takes effect at the next initial-count write).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ApicMessage, DeliveryMode, DestinationMode, Shorthand};
use crate::clock::Clock;

/// The APIC bus clock the timer counts, in Hz (one tick per nanosecond).
pub const APIC_BUS_HZ: u64 = 1_000_000_000;
/// The default physical base of the local APIC.
pub const APIC_DEFAULT_BASE: u64 = 0xFEE0_0000;
/// Length of the register page.
pub const APIC_LEN: u64 = 0x1000;
/// The `IA32_APIC_BASE` MSR.
pub const MSR_IA32_APIC_BASE: u32 = 0x1B;
/// The `IA32_TSC_DEADLINE` MSR.
pub const MSR_IA32_TSC_DEADLINE: u32 = 0x6E0;
/// `IA32_APIC_BASE` bit 8: this is the bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// `IA32_APIC_BASE` bit 10: x2APIC mode (not supported).
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// `IA32_APIC_BASE` bit 11: the APIC is globally enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;

// Register offsets.
/// Local APIC ID.
pub const REG_ID: u32 = 0x020;
/// Version.
pub const REG_VERSION: u32 = 0x030;
/// Task priority.
pub const REG_TPR: u32 = 0x080;
/// Arbitration priority.
pub const REG_APR: u32 = 0x090;
/// Processor priority.
pub const REG_PPR: u32 = 0x0A0;
/// End of interrupt.
pub const REG_EOI: u32 = 0x0B0;
/// Remote read.
pub const REG_RRD: u32 = 0x0C0;
/// Logical destination.
pub const REG_LDR: u32 = 0x0D0;
/// Destination format.
pub const REG_DFR: u32 = 0x0E0;
/// Spurious interrupt vector.
pub const REG_SVR: u32 = 0x0F0;
/// First of the eight ISR words.
pub const REG_ISR: u32 = 0x100;
/// First of the eight TMR words.
pub const REG_TMR: u32 = 0x180;
/// First of the eight IRR words.
pub const REG_IRR: u32 = 0x200;
/// Error status.
pub const REG_ESR: u32 = 0x280;
/// Interrupt command, low half (a write sends the IPI).
pub const REG_ICR_LOW: u32 = 0x300;
/// Interrupt command, high half (destination in bits 31:24).
pub const REG_ICR_HIGH: u32 = 0x310;
/// LVT timer.
pub const REG_LVT_TIMER: u32 = 0x320;
/// LVT thermal sensor.
pub const REG_LVT_THERMAL: u32 = 0x330;
/// LVT performance monitoring counters.
pub const REG_LVT_PERF: u32 = 0x340;
/// LVT LINT0.
pub const REG_LVT_LINT0: u32 = 0x350;
/// LVT LINT1.
pub const REG_LVT_LINT1: u32 = 0x360;
/// LVT error.
pub const REG_LVT_ERROR: u32 = 0x370;
/// Timer initial count.
pub const REG_TIMER_INITIAL: u32 = 0x380;
/// Timer current count.
pub const REG_TIMER_CURRENT: u32 = 0x390;
/// Timer divide configuration.
pub const REG_TIMER_DIVIDE: u32 = 0x3E0;

/// The version register: version 0x14, max LVT entry 5.
const VERSION: u32 = 0x0005_0014;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// SVR bit 9: focus processor checking disabled.
const SVR_FOCUS_DISABLED: u32 = 1 << 9;
/// Bits of the SVR software can write (vector, enable, focus).
const SVR_WRITABLE: u32 = 0x3FF;
/// LVT bit 16: masked.
const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode, bits 18:17.
const LVT_TIMER_MODE_SHIFT: u32 = 17;
/// ICR bit 14: level (assert = 1).
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
/// ICR bit 15: trigger mode (level = 1).
const ICR_TRIGGER_LEVEL: u32 = 1 << 15;
/// ICR bit 11: destination mode (logical = 1).
const ICR_DEST_LOGICAL: u32 = 1 << 11;
/// ESR bit 5: a vector below 16 was sent.
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR bit 6: a vector below 16 was received.
pub const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
/// ESR bit 7: an access to a register that does not exist.
pub const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

/// LVT entries in register order: timer, thermal, perf, LINT0, LINT1, error.
const LVT_COUNT: usize = 6;
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_LINT1: usize = 4;
const LVT_ERROR: usize = 5;
/// Writable bits of each LVT entry (vector, delivery mode, polarity, trigger, mask, timer
/// mode, as the SDM's LVT figure shows; delivery status and remote IRR are read-only).
const LVT_WRITABLE: [u32; LVT_COUNT] = [
    0x0007_00FF, // timer: vector, mask, mode
    0x0001_07FF, // thermal: vector, delivery mode, mask
    0x0001_07FF, // perf: vector, delivery mode, mask
    0x0001_A7FF, // LINT0: vector, delivery mode, polarity, trigger, mask
    0x0001_A7FF, // LINT1: same
    0x0001_00FF, // error: vector, mask
];

/// Errors from building a [`LocalApic`] or a [`Tsc`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LapicError {
    /// A TSC frequency of zero.
    #[error("the TSC frequency must not be zero")]
    TscFrequency,
}

/// The time-stamp counter seen by the TSC-deadline timer: `hz` ticks a second from `epoch`
/// (where it reads 0). The machine shares one between its local APICs and the CPUs' `RDTSC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tsc {
    hz: u64,
    epoch: Instant,
}

impl Tsc {
    /// A TSC counting `hz` ticks a second, reading 0 at `epoch`.
    pub fn new(hz: u64, epoch: Instant) -> Result<Self, LapicError> {
        if hz == 0 {
            return Err(LapicError::TscFrequency);
        }
        Ok(Self { hz, epoch })
    }

    /// Ticks a second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// The TSC at instant `now` (0 before the epoch).
    pub fn ticks_at(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        (nanos * u128::from(self.hz) / 1_000_000_000) as u64
    }

    /// The first instant at which the TSC reads `ticks` or more (`None` if `Instant` cannot
    /// represent it).
    pub fn instant_of(&self, ticks: u64) -> Option<Instant> {
        let nanos = (u128::from(ticks) * 1_000_000_000).div_ceil(u128::from(self.hz));
        let nanos = u64::try_from(nanos).ok()?;
        self.epoch.checked_add(Duration::from_nanos(nanos))
    }
}

/// The timer mode in LVT timer bits 18:17.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// `00`: count down once from the initial count.
    OneShot,
    /// `01`: count down and reload.
    Periodic,
    /// `10`: fire when the TSC reaches `IA32_TSC_DEADLINE`.
    TscDeadline,
}

/// Events for the CPU other than vectored interrupts: INIT and start-up IPIs received since
/// the last [`LocalApic::take_init_sipi`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitSipi {
    /// An INIT arrived (the APIC has already reset its own registers): the CPU resets and
    /// waits for a start-up IPI (unless it is the BSP, which the machine may treat as a reset).
    pub init: bool,
    /// The vector of the latest start-up IPI: execution starts at `vector << 12`. The CPU
    /// honours it only while waiting for SIPI.
    pub sipi_vector: Option<u8>,
}

/// What a register write asks of the rest of the APIC system; the router acts on it once the
/// local APIC's lock is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEffect {
    /// Nothing beyond the register change.
    None,
    /// An EOI retired a level-triggered `vector`: the I/O APIC must clear remote IRR.
    LevelEoi(u8),
    /// An ICR write sends this IPI.
    Ipi(ApicMessage),
}

/// Saved state of a [`LocalApic`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalApicState {
    /// `IA32_APIC_BASE`.
    pub apic_base: u64,
    /// ID register.
    pub id: u32,
    /// TPR.
    pub tpr: u32,
    /// LDR.
    pub ldr: u32,
    /// DFR.
    pub dfr: u32,
    /// SVR.
    pub svr: u32,
    /// ISR, vector `v` at bit `v % 32` of word `v / 32`.
    pub isr: [u32; 8],
    /// TMR.
    pub tmr: [u32; 8],
    /// IRR.
    pub irr: [u32; 8],
    /// ESR as last latched by a write.
    pub esr: u32,
    /// Errors seen since the last ESR write.
    pub esr_pending: u32,
    /// ICR low and high.
    pub icr: [u32; 2],
    /// LVT timer, thermal, perf, LINT0, LINT1, error.
    pub lvt: [u32; LVT_COUNT],
    /// Timer initial count.
    pub timer_initial: u32,
    /// Timer current count when saved (0: not running).
    pub timer_current: u32,
    /// Timer divide configuration.
    pub timer_divide: u32,
    /// `IA32_TSC_DEADLINE` (0: disarmed).
    pub tsc_deadline: u64,
    /// An NMI waiting for the CPU.
    pub nmi: bool,
    /// An SMI waiting for the CPU.
    pub smi: bool,
    /// An ExtINT message (from the I/O APIC) waiting for the CPU.
    pub ext_int: bool,
    /// The levels of LINT0 and LINT1.
    pub lint_level: [bool; 2],
    /// INIT and SIPI not yet taken.
    pub init_sipi: InitSipi,
}

/// A running one-shot or periodic count.
#[derive(Debug, Clone, Copy)]
struct Countdown {
    /// When the count was (last) loaded with the initial count.
    start: Instant,
    /// Nanoseconds per count (the divide value, at one bus clock a nanosecond).
    divide: u64,
}

/// One vCPU's local APIC.
pub struct LocalApic {
    clock: Arc<dyn Clock>,
    tsc: Tsc,
    apic_base: u64,
    id: u32,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: [u32; 8],
    tmr: [u32; 8],
    irr: [u32; 8],
    esr: u32,
    esr_pending: u32,
    icr: [u32; 2],
    lvt: [u32; LVT_COUNT],
    timer_initial: u32,
    timer_divide: u32,
    countdown: Option<Countdown>,
    /// The instant the timer fires next (count reaching 0, or the TSC deadline).
    next_fire: Option<Instant>,
    tsc_deadline: u64,
    nmi: bool,
    smi: bool,
    ext_int: bool,
    lint_level: [bool; 2],
    init_sipi: InitSipi,
}

impl std::fmt::Debug for LocalApic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalApic")
            .field("id", &(self.id >> 24))
            .field("ppr", &self.ppr())
            .field("irr", &self.irr)
            .field("isr", &self.isr)
            .finish_non_exhaustive()
    }
}

/// The divide value selected by divide-configuration bits 3, 1 and 0.
pub fn divide_value(config: u32) -> u64 {
    let code = (config & 3) | ((config >> 1) & 4);
    if code == 7 {
        1
    } else {
        2 << code
    }
}

fn bit(words: &[u32; 8], vector: u8) -> bool {
    words[usize::from(vector / 32)] & (1 << (vector % 32)) != 0
}

fn set_bit(words: &mut [u32; 8], vector: u8, value: bool) {
    let mask = 1 << (vector % 32);
    let word = &mut words[usize::from(vector / 32)];
    if value {
        *word |= mask;
    } else {
        *word &= !mask;
    }
}

/// The highest vector set in `words`.
fn highest(words: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&w| words[w] != 0)
        .map(|w| (w * 32 + 31 - words[w].leading_zeros() as usize) as u8)
}

impl LocalApic {
    /// A local APIC with ID `apic_id` after power-up, counting time on `clock`. The BSP's
    /// LINT0 is left in virtual-wire mode (ExtINT, unmasked) and its LINT1 as NMI, as PC
    /// firmware leaves them (tern has no firmware), so the 8259 reaches the boot CPU.
    pub fn new(apic_id: u8, bsp: bool, clock: Arc<dyn Clock>, tsc: Tsc) -> Self {
        let mut apic = Self {
            clock,
            tsc,
            apic_base: APIC_DEFAULT_BASE | APIC_BASE_ENABLE | if bsp { APIC_BASE_BSP } else { 0 },
            id: u32::from(apic_id) << 24,
            tpr: 0,
            ldr: 0,
            dfr: 0,
            svr: 0,
            isr: [0; 8],
            tmr: [0; 8],
            irr: [0; 8],
            esr: 0,
            esr_pending: 0,
            icr: [0; 2],
            lvt: [0; LVT_COUNT],
            timer_initial: 0,
            timer_divide: 0,
            countdown: None,
            next_fire: None,
            tsc_deadline: 0,
            nmi: false,
            smi: false,
            ext_int: false,
            lint_level: [false; 2],
            init_sipi: InitSipi::default(),
        };
        apic.reset_registers();
        if bsp {
            apic.lvt[LVT_LINT0] = DeliveryMode::ExtInt.bits() << 8;
            apic.lvt[LVT_LINT1] = DeliveryMode::Nmi.bits() << 8;
        }
        apic
    }

    /// The power-up / INIT state of every register but the ID and the base MSR (SDM 11.4.7.3).
    fn reset_registers(&mut self) {
        self.tpr = 0;
        self.ldr = 0;
        self.dfr = u32::MAX;
        self.svr = 0xFF;
        self.isr = [0; 8];
        self.tmr = [0; 8];
        self.irr = [0; 8];
        self.esr = 0;
        self.esr_pending = 0;
        self.icr = [0; 2];
        self.lvt = [LVT_MASKED; LVT_COUNT];
        self.timer_initial = 0;
        self.timer_divide = 0;
        self.countdown = None;
        self.next_fire = None;
        self.tsc_deadline = 0;
        self.ext_int = false;
    }

    /// The APIC ID (bits 31:24 of the ID register).
    pub fn apic_id(&self) -> u8 {
        (self.id >> 24) as u8
    }

    /// The `IA32_APIC_BASE` MSR value: `0xFEE0_0000 | enable | BSP`.
    pub fn apic_base(&self) -> u64 {
        self.apic_base
    }

    /// Whether the APIC is hardware-enabled (`IA32_APIC_BASE` bit 11) and software-enabled
    /// (SVR bit 8).
    pub fn enabled(&self) -> bool {
        self.apic_base & APIC_BASE_ENABLE != 0 && self.svr & SVR_ENABLE != 0
    }

    /// The spurious-interrupt vector from the SVR.
    pub fn spurious_vector(&self) -> u8 {
        self.svr as u8
    }

    /// The processor priority: the TPR if its class is at least the highest in-service
    /// class, else that class (SDM 11.8.3.1).
    pub fn ppr(&self) -> u32 {
        let isrv = highest(&self.isr).map_or(0, u32::from);
        if (self.tpr & 0xF0) >= (isrv & 0xF0) {
            self.tpr & 0xFF
        } else {
            isrv & 0xF0
        }
    }

    /// The arbitration priority (SDM 11.6.2.4 "APR"): the TPR if its class is at least the
    /// highest requested one and above the highest in-service one, else the highest of the
    /// three classes.
    fn apr(&self) -> u32 {
        let tpr = self.tpr & 0xFF;
        let isrv = highest(&self.isr).map_or(0, u32::from) & 0xF0;
        let irrv = highest(&self.irr).map_or(0, u32::from) & 0xF0;
        if (tpr & 0xF0) >= irrv && (tpr & 0xF0) > isrv {
            tpr
        } else {
            (tpr & 0xF0).max(isrv).max(irrv)
        }
    }

    /// The mode selected in the LVT timer entry (the reserved `11` reads as one-shot).
    pub fn timer_mode(&self) -> TimerMode {
        match (self.lvt[LVT_TIMER] >> LVT_TIMER_MODE_SHIFT) & 3 {
            1 => TimerMode::Periodic,
            2 => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }

    // ---- CPU side ----

    /// The vector the CPU must take when it can (`RFLAGS.IF = 1`, no interrupt shadow): the
    /// highest requested vector whose priority class is above the PPR's class. The highest
    /// pending vector waits behind an in-service one of the same or a higher class.
    pub fn pending(&self) -> Option<u8> {
        let vector = highest(&self.irr)?;
        (u32::from(vector) & 0xF0 > self.ppr() & 0xF0).then_some(vector)
    }

    /// The INTA cycle for `vector`, which [`LocalApic::pending`] offered: moves it from IRR
    /// to ISR and returns the vector the CPU dispatches. If the interrupt is no longer
    /// deliverable (the TPR was raised in between, or it is not requested at all), nothing
    /// moves and the spurious vector is returned (SDM 11.9).
    pub fn acknowledge(&mut self, vector: u8) -> u8 {
        if self.pending() != Some(vector) {
            return self.spurious_vector();
        }
        set_bit(&mut self.irr, vector, false);
        set_bit(&mut self.isr, vector, true);
        vector
    }

    /// Whether an ExtINT interrupt waits: LINT0 programmed as ExtINT, unmasked and high (the
    /// 8259's INTR), or an ExtINT message from the I/O APIC. The CPU then takes the vector
    /// from the 8259 (its INTA) and calls [`LocalApic::ack_ext_int`].
    /// With the APIC globally disabled (`IA32_APIC_BASE` bit 11 clear) LINT0 is the CPU's
    /// INTR pin itself.
    pub fn ext_int_pending(&self) -> bool {
        let through_lint0 =
            self.apic_base & APIC_BASE_ENABLE == 0 || self.lint_is(LVT_LINT0, DeliveryMode::ExtInt);
        self.ext_int || through_lint0 && self.lint_level[0]
    }

    /// The CPU took the ExtINT interrupt: forgets an ExtINT message. (The LINT0 wire stays as
    /// the 8259 drives it.)
    pub fn ack_ext_int(&mut self) {
        self.ext_int = false;
    }

    /// Takes a pending NMI.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi)
    }

    /// Takes a pending SMI.
    pub fn take_smi(&mut self) -> bool {
        std::mem::take(&mut self.smi)
    }

    /// Takes the INIT and start-up IPIs received since the last call.
    pub fn take_init_sipi(&mut self) -> InitSipi {
        std::mem::take(&mut self.init_sipi)
    }

    /// Whether anything waits for the CPU: a vector above the PPR, ExtINT, NMI, SMI, INIT or
    /// SIPI. A halted vCPU wakes on this (with `IF = 0` only NMI, SMI and INIT/SIPI wake it).
    pub fn has_event(&self) -> bool {
        self.pending().is_some()
            || self.ext_int_pending()
            || self.nmi
            || self.smi
            || self.init_sipi != InitSipi::default()
    }

    // ---- message side ----

    /// Whether this APIC is the focus processor for `vector` (SDM 11.6.2.4): focus checking
    /// is on (SVR bit 9 clear) and the vector is already requested or in service here.
    /// Lowest-priority delivery prefers the focus processor.
    pub fn is_focus(&self, vector: u8) -> bool {
        self.svr & SVR_FOCUS_DISABLED == 0 && (bit(&self.irr, vector) || bit(&self.isr, vector))
    }

    /// Whether this APIC is a destination of `destination` under `mode` (shorthands are the
    /// router's business). Physical: the APIC ID, or `0xFF` for all. Logical, flat model
    /// (DFR bits 31:28 = `1111`): some bit of the destination is set in LDR bits 31:24.
    /// Logical, cluster model (`0000`): the high nibbles (cluster) are equal and the low
    /// nibbles share a bit, or the destination is `0xFF` (all).
    pub fn matches(&self, mode: DestinationMode, destination: u8) -> bool {
        match mode {
            DestinationMode::Physical => destination == 0xFF || destination == self.apic_id(),
            DestinationMode::Logical => {
                let ldr = (self.ldr >> 24) as u8;
                if self.dfr >> 28 == 0xF {
                    ldr & destination != 0
                } else {
                    destination == 0xFF
                        || (ldr >> 4 == destination >> 4 && ldr & destination & 0x0F != 0)
                }
            }
        }
    }

    /// Accepts a fixed interrupt: sets its IRR bit and its TMR bit to the trigger mode.
    /// Vectors 0 to 15 are illegal: the ESR records it and nothing is requested. A
    /// software-disabled APIC drops fixed interrupts. Returns whether the vector is now
    /// requested.
    pub fn accept(&mut self, vector: u8, level_triggered: bool) -> bool {
        if vector < 16 {
            self.error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        if !self.enabled() {
            log::debug!(
                "lapic {}: vector {vector:#x} dropped, APIC disabled",
                self.apic_id()
            );
            return false;
        }
        set_bit(&mut self.irr, vector, true);
        set_bit(&mut self.tmr, vector, level_triggered);
        true
    }

    /// Receives a message addressed to this APIC (the router has matched the destination).
    /// Returns whether the CPU has something new to take.
    pub fn receive(&mut self, message: &ApicMessage) -> bool {
        match message.delivery_mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.accept(message.vector, message.level_triggered)
            }
            DeliveryMode::Nmi => {
                self.nmi = true;
                true
            }
            DeliveryMode::Smi => {
                self.smi = true;
                true
            }
            DeliveryMode::Init => {
                // INIT resets the APIC but for its ID and base (SDM 11.4.7.3); the CPU's own
                // reset is the vCPU's business.
                self.reset_registers();
                self.nmi = false;
                self.smi = false;
                self.init_sipi.init = true;
                true
            }
            DeliveryMode::StartUp => {
                self.init_sipi.sipi_vector = Some(message.vector);
                true
            }
            DeliveryMode::ExtInt => {
                self.ext_int = true;
                true
            }
        }
    }

    /// Drives LINT0 (`pin` 0) or LINT1 (`pin` 1). A rising edge on an unmasked input delivers
    /// it as its LVT entry says (fixed vector, NMI, SMI, INIT); ExtINT is level: it is pending
    /// while the wire is high (see [`LocalApic::ext_int_pending`]). The polarity bit (13)
    /// inverts the wire. Returns whether the CPU has something new to take.
    pub fn set_lint(&mut self, pin: usize, high: bool) -> bool {
        let Some(&entry) = [LVT_LINT0, LVT_LINT1].get(pin).map(|&i| &self.lvt[i]) else {
            log::warn!("lapic: no LINT{pin}");
            return false;
        };
        let active = high != (entry & (1 << 13) != 0);
        let rising = active && !self.lint_level[pin];
        self.lint_level[pin] = active;
        if entry & LVT_MASKED != 0 {
            return false;
        }
        match DeliveryMode::from_bits(entry >> 8) {
            Some(DeliveryMode::ExtInt) => active,
            Some(mode) if rising => self.receive(&ApicMessage {
                vector: entry as u8,
                delivery_mode: mode,
                destination_mode: DestinationMode::Physical,
                destination: self.apic_id(),
                level_triggered: false,
                shorthand: Shorthand::None,
            }),
            _ => false,
        }
    }

    fn lint_is(&self, index: usize, mode: DeliveryMode) -> bool {
        let entry = self.lvt[index];
        entry & LVT_MASKED == 0 && DeliveryMode::from_bits(entry >> 8) == Some(mode)
    }

    /// Records an error and raises the LVT error interrupt if unmasked.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let entry = self.lvt[LVT_ERROR];
        if entry & LVT_MASKED == 0 {
            // An illegal vector in the error entry itself only records another error.
            let vector = entry as u8;
            if vector >= 16 && self.enabled() {
                set_bit(&mut self.irr, vector, true);
                set_bit(&mut self.tmr, vector, false);
            } else {
                self.esr_pending |= ESR_RECEIVE_ILLEGAL_VECTOR;
            }
        }
    }

    // ---- registers ----

    /// Reads the 32-bit register at `offset` (from the APIC base). Offsets that name no
    /// register, or are not 16-byte aligned, read 0 (and set the ESR's illegal-register bit).
    pub fn read(&mut self, offset: u32) -> u32 {
        let word = |words: &[u32; 8]| words[((offset >> 4) & 7) as usize];
        match offset {
            _ if offset % 16 != 0 => {
                self.error(ESR_ILLEGAL_REGISTER);
                0
            }
            REG_ID => self.id,
            REG_VERSION => VERSION,
            REG_TPR => self.tpr,
            REG_APR => self.apr(),
            REG_PPR => self.ppr(),
            REG_EOI | REG_RRD => 0,
            REG_LDR => self.ldr,
            REG_DFR => self.dfr,
            REG_SVR => self.svr,
            0x100..=0x170 => word(&self.isr),
            0x180..=0x1F0 => word(&self.tmr),
            0x200..=0x270 => word(&self.irr),
            REG_ESR => self.esr,
            REG_ICR_LOW => self.icr[0],
            REG_ICR_HIGH => self.icr[1],
            0x320..=0x370 => self.lvt[((offset - REG_LVT_TIMER) >> 4) as usize],
            REG_TIMER_INITIAL => self.timer_initial,
            REG_TIMER_CURRENT => self.current_count(self.clock.now()),
            REG_TIMER_DIVIDE => self.timer_divide,
            _ => {
                log::debug!("lapic {}: read of reserved {offset:#x}", self.apic_id());
                self.error(ESR_ILLEGAL_REGISTER);
                0
            }
        }
    }

    /// Writes the 32-bit register at `offset`. Read-only and reserved registers ignore the
    /// write (reserved ones set the ESR's illegal-register bit). The result says what the
    /// router must do next (an IPI, an EOI for the I/O APIC).
    pub fn write(&mut self, offset: u32, value: u32) -> WriteEffect {
        match offset {
            _ if offset % 16 != 0 => self.error(ESR_ILLEGAL_REGISTER),
            REG_ID => self.id = value & 0xFF00_0000,
            REG_TPR => self.tpr = value & 0xFF,
            REG_EOI => return self.eoi(),
            REG_LDR => self.ldr = value & 0xFF00_0000,
            REG_DFR => self.dfr = value | 0x0FFF_FFFF,
            REG_SVR => {
                self.svr = value & SVR_WRITABLE;
                if value & SVR_ENABLE == 0 {
                    // Software disable masks every LVT entry (SDM 11.4.7.2).
                    for entry in &mut self.lvt {
                        *entry |= LVT_MASKED;
                    }
                }
            }
            REG_ESR => {
                // Write-then-read: a write latches the errors seen since the last one.
                self.esr = std::mem::take(&mut self.esr_pending);
            }
            REG_ICR_LOW => {
                self.icr[0] = value & 0x000C_CFFF;
                return self.send_ipi();
            }
            REG_ICR_HIGH => self.icr[1] = value & 0xFF00_0000,
            0x320..=0x370 => self.write_lvt(((offset - REG_LVT_TIMER) >> 4) as usize, value),
            REG_TIMER_INITIAL => self.write_initial_count(value),
            REG_TIMER_DIVIDE => self.timer_divide = value & 0xB,
            REG_VERSION | REG_APR | REG_PPR | REG_RRD | 0x100..=0x270 | REG_TIMER_CURRENT => {
                log::debug!("lapic {}: write to read-only {offset:#x}", self.apic_id());
            }
            _ => {
                log::debug!("lapic {}: write to reserved {offset:#x}", self.apic_id());
                self.error(ESR_ILLEGAL_REGISTER);
            }
        }
        WriteEffect::None
    }

    /// An EOI: retires the highest in-service vector; a level-triggered one (TMR set) is
    /// broadcast to the I/O APIC.
    fn eoi(&mut self) -> WriteEffect {
        let Some(vector) = highest(&self.isr) else {
            return WriteEffect::None;
        };
        set_bit(&mut self.isr, vector, false);
        if bit(&self.tmr, vector) {
            WriteEffect::LevelEoi(vector)
        } else {
            WriteEffect::None
        }
    }

    fn write_lvt(&mut self, index: usize, value: u32) {
        let mut value = value & LVT_WRITABLE[index];
        if self.svr & SVR_ENABLE == 0 {
            value |= LVT_MASKED;
        }
        if index == LVT_TIMER {
            let old_mode = self.timer_mode();
            self.lvt[index] = value;
            if self.timer_mode() != old_mode {
                // A mode change disarms the timer (SDM 11.5.4.1).
                self.countdown = None;
                self.next_fire = None;
                self.timer_initial = 0;
                self.tsc_deadline = 0;
            }
        } else {
            self.lvt[index] = value;
        }
    }

    /// Sends the IPI the ICR describes. A level de-assert INIT (the 82489DX's "INIT level
    /// de-assert", which Linux still sends) is not delivered: it only synchronised
    /// arbitration IDs on old hardware.
    fn send_ipi(&mut self) -> WriteEffect {
        let low = self.icr[0];
        let Some(mode) = DeliveryMode::from_bits(low >> 8) else {
            log::debug!("lapic {}: ICR with reserved delivery mode", self.apic_id());
            return WriteEffect::None;
        };
        let level_triggered = low & ICR_TRIGGER_LEVEL != 0;
        if mode == DeliveryMode::Init && level_triggered && low & ICR_LEVEL_ASSERT == 0 {
            return WriteEffect::None;
        }
        let vector = low as u8;
        if matches!(mode, DeliveryMode::Fixed | DeliveryMode::LowestPriority) && vector < 16 {
            self.error(ESR_SEND_ILLEGAL_VECTOR);
            return WriteEffect::None;
        }
        WriteEffect::Ipi(ApicMessage {
            vector,
            delivery_mode: mode,
            destination_mode: if low & ICR_DEST_LOGICAL != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            destination: (self.icr[1] >> 24) as u8,
            // Fixed IPIs are edge-triggered whatever the bit says: only the I/O APIC's level
            // interrupts expect an EOI back.
            level_triggered: false,
            shorthand: Shorthand::from_bits(low >> 18),
        })
    }

    // ---- MSRs ----

    /// Reads `IA32_APIC_BASE` or `IA32_TSC_DEADLINE`; `None` for any other MSR (the caller
    /// raises #GP).
    pub fn read_msr(&self, msr: u32) -> Option<u64> {
        match msr {
            MSR_IA32_APIC_BASE => Some(self.apic_base),
            MSR_IA32_TSC_DEADLINE => Some(self.tsc_deadline),
            _ => None,
        }
    }

    /// Writes `IA32_APIC_BASE` or `IA32_TSC_DEADLINE`; returns `false` (the caller raises
    /// #GP) for other MSRs and for base values this APIC does not support: x2APIC (EXTD),
    /// or a base other than `0xFEE0_0000`. Clearing the enable bit disables the APIC; the
    /// BSP bit is read-only.
    pub fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        match msr {
            MSR_IA32_APIC_BASE => {
                if value & APIC_BASE_EXTD != 0 || value & !0xFFFu64 != APIC_DEFAULT_BASE {
                    return false;
                }
                let was_enabled = self.apic_base & APIC_BASE_ENABLE != 0;
                self.apic_base = APIC_DEFAULT_BASE
                    | (value & APIC_BASE_ENABLE)
                    | (self.apic_base & APIC_BASE_BSP);
                if was_enabled && value & APIC_BASE_ENABLE == 0 {
                    // A global disable returns the APIC to its power-up state (SDM 11.4.3).
                    self.reset_registers();
                }
                true
            }
            MSR_IA32_TSC_DEADLINE => {
                self.write_tsc_deadline(value);
                true
            }
            _ => false,
        }
    }

    // ---- timer ----

    /// A write to `IA32_TSC_DEADLINE` (`ticks` of the [`Tsc`]): arms the timer to fire when
    /// the TSC reaches it, or disarms it with 0. Ignored outside TSC-deadline mode.
    pub fn write_tsc_deadline(&mut self, ticks: u64) {
        if self.timer_mode() != TimerMode::TscDeadline {
            return;
        }
        self.tsc_deadline = ticks;
        self.next_fire = if ticks == 0 {
            None
        } else {
            self.tsc.instant_of(ticks)
        };
    }

    fn write_initial_count(&mut self, value: u32) {
        if self.timer_mode() == TimerMode::TscDeadline {
            return;
        }
        self.timer_initial = value;
        if value == 0 {
            self.countdown = None;
            self.next_fire = None;
            return;
        }
        let countdown = Countdown {
            start: self.clock.now(),
            divide: divide_value(self.timer_divide),
        };
        self.next_fire = countdown
            .start
            .checked_add(Duration::from_nanos(u64::from(value) * countdown.divide));
        self.countdown = Some(countdown);
    }

    /// The current count at `now`.
    fn current_count(&self, now: Instant) -> u32 {
        let Some(countdown) = self.countdown else {
            return 0;
        };
        let elapsed = now.saturating_duration_since(countdown.start).as_nanos();
        let counts = elapsed / u128::from(countdown.divide);
        let initial = u128::from(self.timer_initial);
        match self.timer_mode() {
            TimerMode::Periodic => (initial - counts % initial) as u32,
            _ => initial.saturating_sub(counts) as u32,
        }
    }

    /// Fires the timer if its time has come: one interrupt (through the LVT timer entry,
    /// unless masked) however many periods passed since the last poll. Returns whether a
    /// vector was requested.
    pub fn poll(&mut self) -> bool {
        let now = self.clock.now();
        let Some(fire) = self.next_fire else {
            return false;
        };
        if now < fire {
            return false;
        }
        match (self.timer_mode(), self.countdown) {
            (TimerMode::Periodic, Some(countdown)) => {
                let period = u128::from(self.timer_initial) * u128::from(countdown.divide);
                let elapsed = now.saturating_duration_since(countdown.start).as_nanos();
                let next = (elapsed / period + 1) * period;
                self.next_fire = u64::try_from(next)
                    .ok()
                    .and_then(|n| countdown.start.checked_add(Duration::from_nanos(n)));
            }
            (TimerMode::TscDeadline, _) => {
                self.tsc_deadline = 0;
                self.next_fire = None;
            }
            _ => self.next_fire = None,
        }
        let entry = self.lvt[LVT_TIMER];
        entry & LVT_MASKED == 0 && self.accept(entry as u8, false)
    }

    /// When [`LocalApic::poll`] must run next: the timer's next expiry, `None` if it is not
    /// armed. A time already passed is returned as is.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_fire
    }

    // ---- snapshots ----

    /// The APIC's state, for snapshots.
    pub fn state(&self) -> LocalApicState {
        LocalApicState {
            apic_base: self.apic_base,
            id: self.id,
            tpr: self.tpr,
            ldr: self.ldr,
            dfr: self.dfr,
            svr: self.svr,
            isr: self.isr,
            tmr: self.tmr,
            irr: self.irr,
            esr: self.esr,
            esr_pending: self.esr_pending,
            icr: self.icr,
            lvt: self.lvt,
            timer_initial: self.timer_initial,
            timer_current: self.current_count(self.clock.now()),
            timer_divide: self.timer_divide,
            tsc_deadline: self.tsc_deadline,
            nmi: self.nmi,
            smi: self.smi,
            ext_int: self.ext_int,
            lint_level: self.lint_level,
            init_sipi: self.init_sipi,
        }
    }

    /// Rebuilds an APIC from a saved state; a running one-shot or periodic count resumes from
    /// its saved current count, an armed TSC deadline stays armed (TSC continuity is the
    /// machine's, through `tsc`). Values are masked as register writes would mask them, so a
    /// bad state cannot produce impossible registers.
    pub fn from_state(state: &LocalApicState, clock: Arc<dyn Clock>, tsc: Tsc) -> Self {
        let bsp = state.apic_base & APIC_BASE_BSP != 0;
        let mut apic = Self::new((state.id >> 24) as u8, bsp, clock, tsc);
        apic.apic_base = APIC_DEFAULT_BASE | (state.apic_base & (APIC_BASE_ENABLE | APIC_BASE_BSP));
        apic.tpr = state.tpr & 0xFF;
        apic.ldr = state.ldr & 0xFF00_0000;
        apic.dfr = state.dfr | 0x0FFF_FFFF;
        apic.svr = state.svr & SVR_WRITABLE;
        apic.isr = state.isr;
        apic.tmr = state.tmr;
        apic.irr = state.irr;
        apic.esr = state.esr;
        apic.esr_pending = state.esr_pending;
        apic.icr = [state.icr[0] & 0x000C_CFFF, state.icr[1] & 0xFF00_0000];
        for (i, (dst, src)) in apic.lvt.iter_mut().zip(state.lvt).enumerate() {
            *dst = src & LVT_WRITABLE[i];
        }
        apic.timer_divide = state.timer_divide & 0xB;
        apic.nmi = state.nmi;
        apic.smi = state.smi;
        apic.ext_int = state.ext_int;
        apic.lint_level = state.lint_level;
        apic.init_sipi = state.init_sipi;
        apic.timer_initial = state.timer_initial;
        match apic.timer_mode() {
            TimerMode::TscDeadline => apic.write_tsc_deadline(state.tsc_deadline),
            _ if state.timer_initial != 0
                && (state.timer_current != 0 || apic.timer_mode() == TimerMode::Periodic) =>
            {
                let divide = divide_value(apic.timer_divide);
                let current = state.timer_current.clamp(1, state.timer_initial);
                let done = u64::from(state.timer_initial - current) * divide;
                let now = apic.clock.now();
                let start = now.checked_sub(Duration::from_nanos(done)).unwrap_or(now);
                apic.countdown = Some(Countdown { start, divide });
                apic.next_fire = start.checked_add(Duration::from_nanos(
                    u64::from(state.timer_initial) * divide,
                ));
            }
            _ => {}
        }
        apic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// TSC frequency of the test machines: 2.5 GHz.
    const TSC_HZ: u64 = 2_500_000_000;
    /// LVT timer vector Linux uses (LOCAL_TIMER_VECTOR).
    const TIMER_VECTOR: u32 = 0xEC;

    fn apic(id: u8, bsp: bool) -> (LocalApic, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let tsc = Tsc::new(TSC_HZ, clock.now()).unwrap();
        (LocalApic::new(id, bsp, clock.clone(), tsc), clock)
    }

    /// An APIC brought up as Linux's `setup_local_APIC` does: TPR 0, flat logical mode,
    /// software-enabled with spurious vector 0xFF, error LVT unmasked.
    fn enabled_apic(id: u8) -> (LocalApic, Arc<ManualClock>) {
        let (mut a, clock) = apic(id, false);
        a.write(REG_TPR, 0);
        a.write(REG_DFR, 0xFFFF_FFFF);
        a.write(REG_LDR, 1 << (24 + id));
        a.write(REG_SVR, 0x1FF);
        a.write(REG_LVT_ERROR, 0xFE);
        (a, clock)
    }

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    #[test]
    fn out_of_reset_the_apic_is_software_disabled_with_every_lvt_masked() {
        let (mut a, _) = apic(3, false);
        assert_eq!(a.read(REG_ID), 3 << 24);
        assert_eq!(
            a.read(REG_VERSION),
            0x0005_0014,
            "version 0x14, max LVT entry 5"
        );
        assert_eq!(a.read(REG_SVR), 0xFF);
        assert_eq!(a.read(REG_DFR), 0xFFFF_FFFF);
        assert_eq!(a.read(REG_TPR), 0);
        for reg in (REG_LVT_TIMER..=REG_LVT_ERROR).step_by(16) {
            assert_eq!(a.read(reg), LVT_MASKED, "LVT {reg:#x}");
        }
        assert!(!a.enabled());
        assert_eq!(a.apic_base(), 0xFEE0_0800, "an AP: enabled, not BSP");
    }

    #[test]
    fn the_bsp_leaves_reset_in_virtual_wire_mode() {
        let (mut a, _) = apic(0, true);
        assert_eq!(a.apic_base(), 0xFEE0_0900);
        assert_eq!(a.read(REG_LVT_LINT0), 0x700, "LINT0 ExtINT, unmasked");
        assert_eq!(a.read(REG_LVT_LINT1), 0x400, "LINT1 NMI, unmasked");
        assert!(!a.set_lint(0, false));
        assert!(a.set_lint(0, true), "the 8259's INTR");
        assert!(a.ext_int_pending());
        a.set_lint(0, false);
        assert!(!a.ext_int_pending(), "ExtINT follows the wire");
        a.set_lint(1, true);
        assert!(a.take_nmi(), "LINT1 rising edge is an NMI");
        assert!(!a.take_nmi());
        a.set_lint(1, true);
        assert!(!a.take_nmi(), "no edge, no NMI");
    }

    #[test]
    fn with_the_apic_globally_disabled_lint0_is_the_intr_pin() {
        let (mut a, _) = apic(1, false);
        assert!(a.write_msr(MSR_IA32_APIC_BASE, APIC_DEFAULT_BASE));
        a.set_lint(0, true);
        assert!(a.ext_int_pending());
        assert!(a.has_event());
        a.set_lint(0, false);
        assert!(!a.has_event());
    }

    #[test]
    fn an_ap_ignores_lint0_while_it_is_masked() {
        let (mut a, _) = apic(1, false);
        a.set_lint(0, true);
        assert!(!a.ext_int_pending());
    }

    #[test]
    fn linux_style_bring_up_enables_the_apic_and_unmasks_lvts() {
        let (mut a, _) = apic(1, false);
        a.write(REG_LVT_LINT0, 0x700);
        assert_eq!(
            a.read(REG_LVT_LINT0),
            0x1_0700,
            "masked while software-disabled"
        );
        assert!(
            !a.accept(0x40, false),
            "a disabled APIC drops fixed vectors"
        );
        a.write(REG_SVR, 0x1FF);
        assert!(a.enabled());
        assert_eq!(a.spurious_vector(), 0xFF);
        a.write(REG_LVT_LINT0, 0x700);
        assert_eq!(a.read(REG_LVT_LINT0), 0x700);
        a.write(REG_LVT_TIMER, 0x2_00EC);
        assert_eq!(a.read(REG_LVT_TIMER), 0x2_00EC);
        assert_eq!(a.timer_mode(), TimerMode::Periodic);
        a.write(REG_TPR, 0);
        assert!(a.accept(0x40, false));
        assert_eq!(a.pending(), Some(0x40));
        // Clearing SVR.8 masks every LVT entry again.
        a.write(REG_SVR, 0xFF);
        assert_eq!(a.read(REG_LVT_LINT0), 0x1_0700);
        assert_eq!(a.read(REG_LVT_TIMER), 0x3_00EC);
    }

    #[test]
    fn a_higher_priority_class_preempts_and_a_lower_one_waits_behind_the_isr() {
        let (mut a, _) = enabled_apic(0);
        a.accept(0x51, false);
        assert_eq!(a.acknowledge(0x51), 0x51);
        assert_eq!(a.read(REG_ISR + 0x20) & (1 << 0x11), 1 << 0x11);
        assert_eq!(a.ppr(), 0x50);
        a.accept(0x55, false);
        assert_eq!(a.pending(), None, "same class as the one in service waits");
        a.accept(0x41, false);
        assert_eq!(a.pending(), None, "a lower class waits");
        a.accept(0x61, false);
        assert_eq!(a.pending(), Some(0x61), "a higher class preempts");
        assert_eq!(a.acknowledge(0x61), 0x61);
        assert_eq!(a.read(REG_PPR), 0x60);
        assert_eq!(a.write(REG_EOI, 0), WriteEffect::None);
        assert_eq!(a.ppr(), 0x50, "EOI retired the highest in service, 0x61");
        assert_eq!(a.pending(), None);
        a.write(REG_EOI, 0);
        assert_eq!(a.pending(), Some(0x55));
        assert_eq!(a.acknowledge(0x55), 0x55);
        a.write(REG_EOI, 0);
        assert_eq!(a.pending(), Some(0x41));
    }

    #[test]
    fn the_tpr_holds_back_lower_classes_and_a_late_ack_is_spurious() {
        let (mut a, _) = enabled_apic(0);
        a.accept(0x65, false);
        a.write(REG_TPR, 0x70);
        assert_eq!(a.read(REG_PPR), 0x70);
        assert_eq!(a.pending(), None);
        assert_eq!(
            a.acknowledge(0x65),
            0xFF,
            "no longer deliverable: spurious vector"
        );
        assert_eq!(a.read(REG_IRR + 0x30) & (1 << 5), 1 << 5, "still requested");
        a.write(REG_TPR, 0x65);
        assert_eq!(a.pending(), None, "the class, not the vector, is compared");
        a.write(REG_TPR, 0x50);
        assert_eq!(a.pending(), Some(0x65));
        assert_eq!(a.read(REG_APR), 0x60, "APR: the highest requested class");
    }

    #[test]
    fn vectors_below_16_are_illegal_and_latched_in_the_esr_on_write() {
        let (mut a, _) = enabled_apic(0);
        assert!(!a.accept(3, false));
        assert_eq!(a.read(REG_ESR), 0, "not visible before an ESR write");
        a.write(REG_ESR, 0);
        assert_eq!(a.read(REG_ESR), ESR_RECEIVE_ILLEGAL_VECTOR);
        assert_eq!(a.pending(), Some(0xFE), "the error LVT fired");
        a.write(REG_ESR, 0);
        assert_eq!(a.read(REG_ESR), 0);
        a.write(REG_ICR_LOW, 0x0000_0005);
        a.write(REG_ESR, 0);
        assert_eq!(a.read(REG_ESR), ESR_SEND_ILLEGAL_VECTOR);
    }

    #[test]
    fn eoi_of_a_level_triggered_vector_is_forwarded() {
        let (mut a, _) = enabled_apic(0);
        a.accept(0x30, true);
        a.accept(0x31, false);
        assert_eq!(a.read(REG_TMR + 0x10), 1 << 16, "TMR bit of 0x30 only");
        a.acknowledge(0x31);
        assert_eq!(a.write(REG_EOI, 0), WriteEffect::None);
        a.acknowledge(0x30);
        assert_eq!(a.write(REG_EOI, 0), WriteEffect::LevelEoi(0x30));
        assert_eq!(a.write(REG_EOI, 0), WriteEffect::None, "nothing in service");
    }

    #[test]
    fn the_icr_describes_the_ipi_it_sends() {
        let (mut a, _) = enabled_apic(0);
        a.write(REG_ICR_HIGH, 0x0300_0000);
        let effect = a.write(REG_ICR_LOW, 0x0000_40FD);
        assert_eq!(
            effect,
            WriteEffect::Ipi(ApicMessage {
                vector: 0xFD,
                delivery_mode: DeliveryMode::Fixed,
                destination_mode: DestinationMode::Physical,
                destination: 3,
                level_triggered: false,
                shorthand: Shorthand::None,
            })
        );
        assert_eq!(a.read(REG_ICR_LOW) & (1 << 12), 0, "delivery status: idle");
        let Ipi(m) = a.write(REG_ICR_LOW, 0x000C_0800 | 0x500 | ICR_LEVEL_ASSERT) else {
            panic!("INIT assert must be sent");
        };
        assert_eq!(m.delivery_mode, DeliveryMode::Init);
        assert_eq!(m.destination_mode, DestinationMode::Logical);
        assert_eq!(m.shorthand, Shorthand::AllExcludingSelf);
        assert_eq!(
            a.write(REG_ICR_LOW, 0x0000_8500),
            WriteEffect::None,
            "INIT level de-assert is not sent"
        );
        use WriteEffect::Ipi;
    }

    #[test]
    fn init_resets_the_apic_but_its_id_and_sipi_records_the_vector() {
        let (mut a, _) = enabled_apic(2);
        a.accept(0x40, false);
        let init = ApicMessage {
            vector: 0,
            delivery_mode: DeliveryMode::Init,
            destination_mode: DestinationMode::Physical,
            destination: 2,
            level_triggered: false,
            shorthand: Shorthand::None,
        };
        assert!(a.receive(&init));
        assert_eq!(a.read(REG_ID), 2 << 24);
        assert_eq!(a.read(REG_SVR), 0xFF, "software-disabled again");
        assert_eq!(a.pending(), None, "IRR cleared");
        assert!(a.has_event());
        a.receive(&ApicMessage {
            vector: 0x9A,
            delivery_mode: DeliveryMode::StartUp,
            ..init
        });
        assert_eq!(
            a.take_init_sipi(),
            InitSipi {
                init: true,
                sipi_vector: Some(0x9A)
            }
        );
        assert_eq!(a.take_init_sipi(), InitSipi::default());
        assert!(!a.has_event());
    }

    #[test]
    fn physical_and_logical_destinations_match_as_the_sdm_says() {
        let (mut a, _) = enabled_apic(5);
        use DestinationMode::{Logical, Physical};
        assert!(a.matches(Physical, 5) && a.matches(Physical, 0xFF));
        assert!(!a.matches(Physical, 4));
        // Flat: LDR bits 31:24 are a bitmap.
        a.write(REG_LDR, 0x2400_0000);
        assert!(a.matches(Logical, 0x04) && a.matches(Logical, 0x20) && a.matches(Logical, 0xFF));
        assert!(!a.matches(Logical, 0x09));
        // Cluster: high nibble is the cluster, low nibble a bitmap within it.
        a.write(REG_DFR, 0x0FFF_FFFF);
        assert_eq!(a.read(REG_DFR), 0x0FFF_FFFF);
        a.write(REG_LDR, 0x3200_0000);
        assert!(a.matches(Logical, 0x32) && a.matches(Logical, 0x3F));
        assert!(!a.matches(Logical, 0x31), "right cluster, wrong member");
        assert!(!a.matches(Logical, 0x22), "wrong cluster");
        assert!(a.matches(Logical, 0xFF), "broadcast");
    }

    #[test]
    fn divide_configuration_selects_1_to_128() {
        let expected = [(0b0000, 2), (0b0001, 4), (0b0010, 8), (0b0011, 16)];
        let expected_hi = [(0b1000, 32), (0b1001, 64), (0b1010, 128), (0b1011, 1)];
        for (config, divide) in expected.into_iter().chain(expected_hi) {
            assert_eq!(divide_value(config), divide, "config {config:#06b}");
        }
        let (mut a, _) = enabled_apic(0);
        a.write(REG_TIMER_DIVIDE, 0xFFFF_FFFF);
        assert_eq!(a.read(REG_TIMER_DIVIDE), 0xB, "bits 0, 1 and 3 only");
    }

    #[test]
    fn a_one_shot_count_reads_down_and_fires_once() {
        let (mut a, clock) = enabled_apic(0);
        a.write(REG_LVT_TIMER, TIMER_VECTOR);
        a.write(REG_TIMER_DIVIDE, 0b0011); // divide by 16
        let t0 = clock.now();
        a.write(REG_TIMER_INITIAL, 1000);
        assert_eq!(a.read(REG_TIMER_CURRENT), 1000);
        assert_eq!(a.next_deadline(), Some(t0 + ns(16_000)));
        clock.advance(ns(8_000));
        assert_eq!(a.read(REG_TIMER_CURRENT), 500);
        clock.advance(ns(7_999));
        assert!(!a.poll());
        assert_eq!(a.read(REG_TIMER_CURRENT), 1);
        clock.advance(ns(1));
        assert!(a.poll());
        assert_eq!(a.pending(), Some(0xEC));
        assert_eq!(a.read(REG_TIMER_CURRENT), 0);
        assert_eq!(a.next_deadline(), None);
        clock.advance(ns(100_000));
        assert!(!a.poll(), "one shot only");
        assert_eq!(a.read(REG_TIMER_INITIAL), 1000);
    }

    #[test]
    fn a_periodic_count_reloads_and_coalesces_missed_periods() {
        let (mut a, clock) = enabled_apic(0);
        a.write(REG_LVT_TIMER, 0x2_0000 | TIMER_VECTOR);
        a.write(REG_TIMER_DIVIDE, 0b1011); // divide by 1
        let t0 = clock.now();
        a.write(REG_TIMER_INITIAL, 100);
        clock.advance(ns(100));
        assert_eq!(a.read(REG_TIMER_CURRENT), 100, "reloaded");
        assert!(a.poll());
        assert_eq!(a.next_deadline(), Some(t0 + ns(200)));
        assert_eq!(a.acknowledge(0xEC), 0xEC);
        a.write(REG_EOI, 0);
        clock.advance(ns(150));
        assert_eq!(a.read(REG_TIMER_CURRENT), 50);
        assert!(a.poll(), "one interrupt for the period(s) missed");
        assert_eq!(a.next_deadline(), Some(t0 + ns(300)));
        assert!(!a.poll());
        a.write(REG_TIMER_INITIAL, 0);
        assert_eq!(a.next_deadline(), None, "initial count 0 stops the timer");
        assert_eq!(a.read(REG_TIMER_CURRENT), 0);
    }

    #[test]
    fn a_masked_timer_counts_but_requests_nothing() {
        let (mut a, clock) = enabled_apic(0);
        a.write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
        a.write(REG_TIMER_DIVIDE, 0b1011);
        a.write(REG_TIMER_INITIAL, 10);
        clock.advance(ns(10));
        assert!(!a.poll());
        assert_eq!(a.pending(), None);
        assert_eq!(a.next_deadline(), None, "the one shot is spent");
    }

    #[test]
    fn the_tsc_deadline_timer_fires_when_the_tsc_reaches_the_deadline() {
        let (mut a, clock) = enabled_apic(0);
        a.write_tsc_deadline(1);
        assert_eq!(
            a.read_msr(MSR_IA32_TSC_DEADLINE),
            Some(0),
            "ignored in one-shot mode"
        );
        a.write(REG_LVT_TIMER, 0x4_0000 | TIMER_VECTOR);
        assert_eq!(a.timer_mode(), TimerMode::TscDeadline);
        a.write(REG_TIMER_INITIAL, 5);
        assert_eq!(
            a.read(REG_TIMER_INITIAL),
            0,
            "no count in TSC-deadline mode"
        );
        clock.advance(ns(1000));
        let tsc = Tsc::new(TSC_HZ, clock.now() - ns(1000)).unwrap();
        assert_eq!(tsc.ticks_at(clock.now()), 2500);
        assert!(a.write_msr(MSR_IA32_TSC_DEADLINE, 2500 + 5000)); // 2 µs from now
        assert_eq!(a.next_deadline(), Some(clock.now() + ns(2000)));
        clock.advance(ns(1999));
        assert!(!a.poll());
        clock.advance(ns(1));
        assert!(a.poll());
        assert_eq!(a.pending(), Some(0xEC));
        assert_eq!(
            a.read_msr(MSR_IA32_TSC_DEADLINE),
            Some(0),
            "disarmed once fired"
        );
        // A deadline in the past fires at the next poll; 0 disarms.
        a.write_tsc_deadline(1);
        assert!(a.next_deadline().unwrap() <= clock.now());
        a.write_tsc_deadline(0);
        assert_eq!(a.next_deadline(), None);
        // Leaving TSC-deadline mode disarms.
        a.write_tsc_deadline(u64::from(u32::MAX));
        a.write(REG_LVT_TIMER, TIMER_VECTOR);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn the_apic_base_msr_refuses_x2apic_and_relocation() {
        let (mut a, _) = enabled_apic(0);
        assert_eq!(a.read_msr(MSR_IA32_APIC_BASE), Some(0xFEE0_0800));
        assert!(!a.write_msr(MSR_IA32_APIC_BASE, 0xFEE0_0C00), "x2APIC");
        assert!(!a.write_msr(MSR_IA32_APIC_BASE, 0xFED0_0800), "relocation");
        assert!(a.write_msr(MSR_IA32_APIC_BASE, 0xFEE0_0900));
        assert_eq!(a.apic_base(), 0xFEE0_0800, "BSP bit is read-only");
        assert!(a.write_msr(MSR_IA32_APIC_BASE, 0xFEE0_0000));
        assert!(!a.enabled());
        assert_eq!(a.read(REG_SVR), 0xFF, "a global disable resets the APIC");
        assert_eq!(a.read_msr(0x10), None);
    }

    #[test]
    fn reserved_and_misaligned_registers_read_zero_and_flag_an_error() {
        let (mut a, _) = enabled_apic(0);
        assert_eq!(a.read(0x040), 0);
        assert_eq!(a.read(0x024), 0);
        a.write(0x3F0, 1);
        a.write(REG_PPR, 0xFF);
        assert_eq!(a.read(REG_PPR), 0);
        a.write(REG_ESR, 0);
        assert_eq!(a.read(REG_ESR), ESR_ILLEGAL_REGISTER);
    }

    #[test]
    fn state_round_trips_with_a_running_timer() {
        let (mut a, clock) = enabled_apic(1);
        a.write(REG_TPR, 0x20);
        a.accept(0x80, true);
        a.acknowledge(0x80);
        a.accept(0x90, false);
        a.write(REG_LVT_TIMER, 0x2_0000 | TIMER_VECTOR);
        a.write(REG_TIMER_DIVIDE, 0b0000); // divide by 2
        a.write(REG_TIMER_INITIAL, 1000);
        clock.advance(ns(600));
        let state = a.state();
        assert_eq!(state.timer_current, 700);
        let tsc = Tsc::new(TSC_HZ, clock.now()).unwrap();
        let mut b = LocalApic::from_state(&state, clock.clone(), tsc);
        assert_eq!(b.state(), state);
        assert_eq!(b.next_deadline(), a.next_deadline());
        assert_eq!(
            b.pending(),
            Some(0x90),
            "0x90 requested, above 0x80 in service"
        );
        b.acknowledge(0x90);
        assert_eq!(b.write(REG_EOI, 0), WriteEffect::None);
        assert_eq!(
            b.write(REG_EOI, 0),
            WriteEffect::LevelEoi(0x80),
            "TMR survived"
        );
        clock.advance(ns(1400));
        assert!(b.poll());
    }
}
