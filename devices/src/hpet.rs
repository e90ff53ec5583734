//! The High Precision Event Timer (IA-PC HPET specification 1.0a): a free-running 64-bit
//! main counter and three comparators that interrupt through I/O APIC inputs.
//!
//! The x86_64 machine uses it under the JIT as the timer Linux can trust without
//! calibration: its period is in the capabilities register, so the guest never measures it
//! against another clock (which is what makes a busy host's calibration fail). One
//! 1 KiB MMIO range at [`HPET_BASE`]:
//!
//! | offset            | register                          |
//! |-------------------|-----------------------------------|
//! | `0x000`           | general capabilities and ID (RO)  |
//! | `0x010`           | general configuration             |
//! | `0x020`           | general interrupt status (W1C)    |
//! | `0x0f0`           | main counter                      |
//! | `0x100 + 0x20 n`  | timer n configuration/capabilities|
//! | `0x108 + 0x20 n`  | timer n comparator                |
//! | `0x110 + 0x20 n`  | timer n FSB route (unsupported)   |
//!
//! Every register is 64 bits wide and also takes 32-bit accesses to either half.
//!
//! The counter runs at [`FREQUENCY_HZ`] from a [`Clock`] while enabled. Like the other timer
//! models it never sleeps: [`Hpet::poll`] raises what is due and [`Hpet::next_deadline`] says
//! when to poll next. A timer that falls behind (the machine polled late) fires once and
//! catches up: periodic interrupts are coalesced, as a late tick on real hardware would be.
//!
//! Interrupts go to the I/O APIC input the timer's route field names (any of the 24), or in
//! legacy replacement mode timer 0 to input 2 and timer 1 to input 8 (the ISA IRQ 0 and 8
//! of a PC, through the usual interrupt source override). Left out: FSB (MSI) delivery, and
//! a 32-bit one-shot timer firing again after the counter wraps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::irq::IrqLine;

/// Guest physical base of the HPET on the PC machine.
pub const HPET_BASE: u64 = 0xfed0_0000;
/// Length of its MMIO range.
pub const HPET_LEN: u64 = 0x400;
/// Main counter frequency: 100 MHz, a 10 ns tick.
pub const FREQUENCY_HZ: u64 = 100_000_000;
/// Counter period in femtoseconds, as the capabilities register reports it.
pub const PERIOD_FS: u64 = 1_000_000_000_000_000 / FREQUENCY_HZ;
/// Number of comparators.
pub const TIMERS: usize = 3;
/// I/O APIC inputs a timer can be routed to (the route capability bitmap).
pub const ROUTE_CAP: u64 = 0x00ff_ffff;

// Register offsets.
const CAPABILITIES: u64 = 0x000;
const CONFIG: u64 = 0x010;
const STATUS: u64 = 0x020;
const COUNTER: u64 = 0x0f0;
const TIMER_BASE: u64 = 0x100;
const TIMER_STRIDE: u64 = 0x20;
const TIMER_CONFIG: u64 = 0x00;
const TIMER_COMPARATOR: u64 = 0x08;

// General configuration bits.
/// `ENABLE_CNF`: the counter runs and timers may interrupt.
const ENABLE: u64 = 1 << 0;
/// `LEG_RT_CNF`: legacy replacement routing.
const LEGACY: u64 = 1 << 1;

// Timer configuration bits.
/// `Tn_INT_TYPE_CNF`: level-triggered (else edge).
const T_LEVEL: u64 = 1 << 1;
/// `Tn_INT_ENB_CNF`: interrupts enabled.
const T_ENABLE: u64 = 1 << 2;
/// `Tn_TYPE_CNF`: periodic (only where `Tn_PER_INT_CAP`).
const T_PERIODIC: u64 = 1 << 3;
/// `Tn_PER_INT_CAP` (read-only): the timer can be periodic.
const T_PERIODIC_CAP: u64 = 1 << 4;
/// `Tn_SIZE_CAP` (read-only): the comparator is 64 bits wide.
const T_SIZE_CAP: u64 = 1 << 5;
/// `Tn_VAL_SET_CNF`: the next comparator write sets the comparator, not the period.
const T_VAL_SET: u64 = 1 << 6;
/// `Tn_32MODE_CNF`: the timer works on the counter's low 32 bits.
const T_32BIT: u64 = 1 << 8;
/// `Tn_INT_ROUTE_CNF`: the I/O APIC input, bits 9-13.
const T_ROUTE_SHIFT: u32 = 9;
const T_ROUTE_MASK: u64 = 0x1f << T_ROUTE_SHIFT;
/// The configuration bits software may write.
const T_WRITABLE: u64 = T_LEVEL | T_ENABLE | T_PERIODIC | T_VAL_SET | T_32BIT | T_ROUTE_MASK;

/// One comparator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerState {
    /// The writable configuration bits.
    pub config: u64,
    /// The comparator value.
    pub comparator: u64,
    /// The period of a periodic timer, in counter ticks.
    pub period: u64,
    /// Counter value (64-bit, absolute) at which the timer fires next, if armed.
    pub fire_at: Option<u64>,
}

/// Saved state of an [`Hpet`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HpetState {
    /// General configuration.
    pub config: u64,
    /// General interrupt status (level-triggered timers' pending bits).
    pub status: u64,
    /// The main counter when the state was taken.
    pub counter: u64,
    /// The comparators.
    pub timers: [TimerState; TIMERS],
}

/// The HPET.
pub struct Hpet {
    clock: Arc<dyn Clock>,
    config: u64,
    status: u64,
    /// The counter at `since` (while enabled), or its frozen value (while disabled).
    counter_base: u64,
    since: Instant,
    timers: [TimerState; TIMERS],
    /// I/O APIC inputs 0..24.
    lines: Vec<Arc<dyn IrqLine>>,
}

impl Hpet {
    /// An HPET whose interrupts drive `lines` (I/O APIC inputs, index = input number; inputs
    /// past the end are not connected), counting on `clock`. Everything starts disabled.
    pub fn new(clock: Arc<dyn Clock>, lines: Vec<Arc<dyn IrqLine>>) -> Hpet {
        let since = clock.now();
        Hpet {
            clock,
            config: 0,
            status: 0,
            counter_base: 0,
            since,
            timers: [TimerState::default(); TIMERS],
            lines,
        }
    }

    /// The device's state.
    pub fn state(&self) -> HpetState {
        HpetState {
            config: self.config,
            status: self.status,
            counter: self.counter(self.clock.now()),
            timers: self.timers,
        }
    }

    /// An HPET in `state`, its counter going on from the saved value.
    pub fn from_state(
        clock: Arc<dyn Clock>,
        lines: Vec<Arc<dyn IrqLine>>,
        state: &HpetState,
    ) -> Hpet {
        let mut h = Hpet::new(clock, lines);
        h.config = state.config & (ENABLE | LEGACY);
        h.status = state.status & ((1 << TIMERS) - 1);
        h.counter_base = state.counter;
        h.timers = state.timers;
        for t in &mut h.timers {
            t.config &= T_WRITABLE;
        }
        h
    }

    /// The main counter at `now`.
    fn counter(&self, now: Instant) -> u64 {
        if self.config & ENABLE == 0 {
            return self.counter_base;
        }
        let nanos = now.saturating_duration_since(self.since).as_nanos();
        let ticks = nanos * u128::from(FREQUENCY_HZ) / 1_000_000_000;
        self.counter_base.wrapping_add(ticks as u64)
    }

    /// When the counter reaches `value` (at or after `since`), while enabled.
    fn instant_of(&self, value: u64) -> Instant {
        let ticks = value.wrapping_sub(self.counter_base);
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(FREQUENCY_HZ);
        self.since + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Raises the interrupts that are due.
    pub fn poll(&mut self) {
        if self.config & ENABLE == 0 {
            return;
        }
        let now = self.counter(self.clock.now());
        for n in 0..TIMERS {
            let t = self.timers[n];
            let Some(at) = t.fire_at else { continue };
            if now < at {
                continue;
            }
            let timer = &mut self.timers[n];
            if t.config & T_PERIODIC != 0 && t.period != 0 {
                // Catch up without an interrupt per missed period.
                let behind = (now - at) / t.period + 1;
                let next = at.wrapping_add(behind.wrapping_mul(t.period));
                timer.fire_at = Some(next);
                timer.comparator = if t.config & T_32BIT != 0 {
                    next & 0xffff_ffff
                } else {
                    next
                };
            } else {
                timer.fire_at = None;
            }
            if t.config & T_ENABLE != 0 {
                self.interrupt(n);
            }
        }
    }

    /// When [`Hpet::poll`] has something to do next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.config & ENABLE == 0 {
            return None;
        }
        self.timers
            .iter()
            .filter(|t| t.config & T_ENABLE != 0)
            .filter_map(|t| t.fire_at)
            .map(|at| self.instant_of(at))
            .min()
    }

    /// The I/O APIC input of timer `n`.
    fn input_of(&self, n: usize) -> usize {
        if self.config & LEGACY != 0 && n < 2 {
            return [2, 8][n];
        }
        ((self.timers[n].config & T_ROUTE_MASK) >> T_ROUTE_SHIFT) as usize
    }

    fn interrupt(&mut self, n: usize) {
        let Some(line) = self.lines.get(self.input_of(n)).cloned() else {
            log::debug!("hpet: timer {n} routed to an unconnected input");
            return;
        };
        if self.timers[n].config & T_LEVEL != 0 {
            self.status |= 1 << n;
            line.set_level(true);
        } else {
            line.set_level(true);
            line.set_level(false);
        }
    }

    /// Re-arms timer `n` after its comparator or configuration changed: the first counter
    /// value at or after now whose compared bits equal the comparator (a comparator in the
    /// past of a 64-bit timer never matches).
    fn arm(&mut self, n: usize) {
        let now = self.counter(self.clock.now());
        let t = &mut self.timers[n];
        t.fire_at = if t.config & T_32BIT != 0 {
            let c = (now & !0xffff_ffff) | (t.comparator & 0xffff_ffff);
            Some(if c < now { c.wrapping_add(1 << 32) } else { c })
        } else {
            (t.comparator >= now).then_some(t.comparator)
        };
    }

    /// The 64-bit value of the register at `offset` (8-aligned).
    fn read_register(&self, offset: u64) -> u64 {
        match offset {
            CAPABILITIES => {
                let rev = 1;
                let timers = (TIMERS as u64 - 1) << 8;
                let count_64 = 1 << 13;
                let legacy = 1 << 15;
                let vendor = 0x1af4 << 16;
                rev | timers | count_64 | legacy | vendor | PERIOD_FS << 32
            }
            CONFIG => self.config,
            STATUS => self.status,
            COUNTER => self.counter(self.clock.now()),
            _ => match Self::timer_register(offset) {
                Some((n, TIMER_CONFIG)) => {
                    let periodic_cap = if n == 0 { T_PERIODIC_CAP } else { 0 };
                    self.timers[n].config | periodic_cap | T_SIZE_CAP | ROUTE_CAP << 32
                }
                Some((n, TIMER_COMPARATOR)) => self.timers[n].comparator,
                _ => 0,
            },
        }
    }

    fn write_register(&mut self, offset: u64, value: u64) {
        let now = self.clock.now();
        match offset {
            CONFIG => {
                let old = self.config;
                let new = value & (ENABLE | LEGACY);
                if old & ENABLE != 0 && new & ENABLE == 0 {
                    self.counter_base = self.counter(now);
                }
                if old & ENABLE == 0 && new & ENABLE != 0 {
                    self.since = now;
                }
                self.config = new;
                if old & ENABLE == 0 && new & ENABLE != 0 {
                    for n in 0..TIMERS {
                        self.arm(n);
                    }
                }
            }
            STATUS => {
                let cleared = value & self.status;
                self.status &= !cleared;
                for n in 0..TIMERS {
                    if cleared & 1 << n != 0 {
                        if let Some(line) = self.lines.get(self.input_of(n)) {
                            line.set_level(false);
                        }
                    }
                }
            }
            COUNTER => {
                // Software should halt the counter first; a write while it runs restarts
                // the count from the written value.
                self.counter_base = value;
                self.since = now;
                for n in 0..TIMERS {
                    self.arm(n);
                }
            }
            _ => match Self::timer_register(offset) {
                Some((n, TIMER_CONFIG)) => {
                    let mut v = value & T_WRITABLE;
                    if n != 0 {
                        v &= !T_PERIODIC;
                    }
                    let was_level = self.timers[n].config & T_LEVEL != 0;
                    self.timers[n].config = v;
                    if was_level && v & T_LEVEL == 0 && self.status & 1 << n != 0 {
                        self.status &= !(1 << n);
                        if let Some(line) = self.lines.get(self.input_of(n)) {
                            line.set_level(false);
                        }
                    }
                    self.arm(n);
                }
                Some((n, TIMER_COMPARATOR)) => {
                    let t = &mut self.timers[n];
                    let v = if t.config & T_32BIT != 0 {
                        value & 0xffff_ffff
                    } else {
                        value
                    };
                    if t.config & T_PERIODIC != 0 && t.config & T_VAL_SET == 0 {
                        // Periodic without VAL_SET: the write sets the period (added to the
                        // comparator at each match); the comparator itself stays.
                        t.period = v;
                    } else {
                        t.comparator = v;
                    }
                    t.config &= !T_VAL_SET;
                    self.arm(n);
                }
                _ => {}
            },
        }
    }

    /// `(timer, register)` for an offset in the timers' block.
    fn timer_register(offset: u64) -> Option<(usize, u64)> {
        let rel = offset.checked_sub(TIMER_BASE)?;
        let n = (rel / TIMER_STRIDE) as usize;
        (n < TIMERS).then_some((n, rel % TIMER_STRIDE))
    }
}

impl BusDevice for Hpet {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let aligned = offset & !7;
        let shift = (offset & 7) * 8;
        let v = self.read_register(aligned) >> shift;
        for (i, b) in data.iter_mut().enumerate() {
            *b = (v >> (8 * i)) as u8;
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let aligned = offset & !7;
        let shift = (offset & 7) * 8;
        if data.is_empty() || shift + 8 * data.len() as u64 > 64 {
            log::debug!("hpet: ignoring a {}-byte write at {offset:#x}", data.len());
            return;
        }
        let mut bytes = [0u8; 8];
        for (i, b) in data.iter().enumerate() {
            bytes[i] = *b;
        }
        let value = u64::from_le_bytes(bytes) << shift;
        let mask = if data.len() == 8 {
            u64::MAX
        } else {
            ((1u64 << (8 * data.len())) - 1) << shift
        };
        // The other half of the register keeps its value (read back through the same
        // register, so read-only bits are dropped again by the write).
        let old = match aligned {
            COUNTER => self.counter(self.clock.now()),
            STATUS => 0,
            _ => self.read_register(aligned),
        };
        self.write_register(aligned, (old & !mask) | (value & mask));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::irq::RecordingIrq;

    struct Rig {
        clock: Arc<ManualClock>,
        pins: Vec<Arc<RecordingIrq>>,
        hpet: Hpet,
    }

    fn rig() -> Rig {
        let clock = Arc::new(ManualClock::new());
        let pins: Vec<Arc<RecordingIrq>> = (0..24).map(|_| Arc::default()).collect();
        let lines = pins.iter().map(|p| p.clone() as Arc<dyn IrqLine>).collect();
        let hpet = Hpet::new(clock.clone(), lines);
        Rig { clock, pins, hpet }
    }

    fn read64(h: &mut Hpet, off: u64) -> u64 {
        let mut b = [0u8; 8];
        h.read(HPET_BASE, off, &mut b);
        u64::from_le_bytes(b)
    }

    fn read32(h: &mut Hpet, off: u64) -> u32 {
        let mut b = [0u8; 4];
        h.read(HPET_BASE, off, &mut b);
        u32::from_le_bytes(b)
    }

    fn write64(h: &mut Hpet, off: u64, v: u64) {
        h.write(HPET_BASE, off, &v.to_le_bytes());
    }

    fn write32(h: &mut Hpet, off: u64, v: u32) {
        h.write(HPET_BASE, off, &v.to_le_bytes());
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn capabilities_report_the_period_three_timers_a_64_bit_counter_and_legacy_routing() {
        let mut r = rig();
        let cap = read64(&mut r.hpet, CAPABILITIES);
        assert_eq!(cap >> 32, PERIOD_FS);
        assert_eq!(PERIOD_FS, 10_000_000, "10 ns");
        assert_eq!(
            (cap >> 8) & 0x1f,
            2,
            "NUM_TIM_CAP is the last timer's number"
        );
        assert_ne!(cap & 1 << 13, 0);
        assert_ne!(cap & 1 << 15, 0);
        assert_eq!(read32(&mut r.hpet, CAPABILITIES + 4) as u64, PERIOD_FS);
        let t0 = read64(&mut r.hpet, TIMER_BASE);
        assert_ne!(t0 & T_PERIODIC_CAP, 0, "timer 0 can be periodic");
        assert_eq!(t0 >> 32, ROUTE_CAP);
        assert_eq!(
            read64(&mut r.hpet, TIMER_BASE + TIMER_STRIDE) & T_PERIODIC_CAP,
            0
        );
    }

    #[test]
    fn the_counter_runs_at_100_mhz_only_while_enabled() {
        let mut r = rig();
        r.clock.advance(us(5));
        assert_eq!(read64(&mut r.hpet, COUNTER), 0, "halted at reset");
        write64(&mut r.hpet, CONFIG, ENABLE);
        r.clock.advance(us(10));
        assert_eq!(read64(&mut r.hpet, COUNTER), 1000);
        write64(&mut r.hpet, CONFIG, 0);
        r.clock.advance(us(10));
        assert_eq!(read64(&mut r.hpet, COUNTER), 1000, "frozen");
        write64(&mut r.hpet, COUNTER, 0xffff_fff0);
        write64(&mut r.hpet, CONFIG, ENABLE);
        r.clock.advance(Duration::from_nanos(200));
        assert_eq!(read32(&mut r.hpet, COUNTER), 4, "low half wrapped");
        assert_eq!(
            read32(&mut r.hpet, COUNTER + 4),
            1,
            "carried into the high half"
        );
    }

    #[test]
    fn a_periodic_legacy_timer_0_ticks_input_2_at_its_period_as_linux_programs_it() {
        let mut r = rig();
        // Linux's hpet_set_periodic: halt, periodic + enable + VAL_SET, comparator = now +
        // delta, then the period, then start the counter (legacy mode for the PIT's role).
        write64(&mut r.hpet, CONFIG, LEGACY);
        write64(&mut r.hpet, TIMER_BASE, T_PERIODIC | T_ENABLE | T_VAL_SET);
        let delta = 100_000; // 1 ms
        write64(&mut r.hpet, TIMER_BASE + TIMER_COMPARATOR, delta);
        write64(&mut r.hpet, TIMER_BASE + TIMER_COMPARATOR, delta);
        write64(&mut r.hpet, CONFIG, LEGACY | ENABLE);
        let start = r.clock.now();
        assert_eq!(r.hpet.next_deadline(), Some(start + us(1000)));
        for _ in 0..10 {
            r.clock.advance(us(1000));
            r.hpet.poll();
        }
        assert_eq!(r.pins[2].rising_edges(), 10);
        assert!(!r.pins[2].level(), "edge-triggered: a pulse");
        assert_eq!(r.hpet.next_deadline(), Some(start + us(11_000)));
        // Polled 5.5 periods late: one interrupt, then back on the period's grid.
        r.clock.advance(us(5500));
        r.hpet.poll();
        assert_eq!(r.pins[2].rising_edges(), 11);
        assert_eq!(r.hpet.next_deadline(), Some(start + us(16_000)));
    }

    #[test]
    fn a_one_shot_level_timer_on_a_routed_input_holds_until_the_status_bit_is_cleared() {
        let mut r = rig();
        write64(&mut r.hpet, CONFIG, ENABLE);
        let t1 = TIMER_BASE + TIMER_STRIDE;
        write64(&mut r.hpet, t1, T_LEVEL | T_ENABLE | 20 << T_ROUTE_SHIFT);
        write64(&mut r.hpet, t1 + TIMER_COMPARATOR, 50_000);
        r.clock.advance(us(499));
        r.hpet.poll();
        assert!(!r.pins[20].level());
        r.clock.advance(us(1));
        r.hpet.poll();
        assert!(r.pins[20].level());
        assert_eq!(read64(&mut r.hpet, STATUS), 0b10);
        r.clock.advance(us(1000));
        r.hpet.poll();
        assert_eq!(r.pins[20].rising_edges(), 1, "one-shot");
        assert_eq!(r.hpet.next_deadline(), None);
        write64(&mut r.hpet, STATUS, 0b10);
        assert!(!r.pins[20].level());
        assert_eq!(read64(&mut r.hpet, STATUS), 0);
    }

    #[test]
    fn a_32_bit_timer_matches_the_low_half_and_a_past_64_bit_comparator_never_fires() {
        let mut r = rig();
        write64(&mut r.hpet, COUNTER, 0x1_0000_0000 + 1000);
        write64(&mut r.hpet, CONFIG, ENABLE);
        write64(
            &mut r.hpet,
            TIMER_BASE + 2 * TIMER_STRIDE,
            T_ENABLE | T_32BIT | 5 << T_ROUTE_SHIFT,
        );
        write32(
            &mut r.hpet,
            TIMER_BASE + 2 * TIMER_STRIDE + TIMER_COMPARATOR,
            2000,
        );
        r.clock.advance(us(10));
        r.hpet.poll();
        assert_eq!(r.pins[5].rising_edges(), 1);
        write64(&mut r.hpet, TIMER_BASE, T_ENABLE | 6 << T_ROUTE_SHIFT);
        write64(&mut r.hpet, TIMER_BASE + TIMER_COMPARATOR, 10);
        r.clock.advance(us(100));
        r.hpet.poll();
        assert_eq!(r.pins[6].rising_edges(), 0);
    }

    #[test]
    fn timers_other_than_0_cannot_be_periodic_and_read_only_bits_stay() {
        let mut r = rig();
        let t2 = TIMER_BASE + 2 * TIMER_STRIDE;
        write64(&mut r.hpet, t2, u64::MAX);
        let v = read64(&mut r.hpet, t2);
        assert_eq!(v & T_PERIODIC, 0);
        assert_eq!(v & T_SIZE_CAP, T_SIZE_CAP, "read-only capability kept");
        assert_ne!(
            v & T_VAL_SET,
            0,
            "VAL_SET holds until the next comparator write"
        );
        write64(&mut r.hpet, t2 + TIMER_COMPARATOR, 1);
        assert_eq!(read64(&mut r.hpet, t2) & T_VAL_SET, 0);
    }

    #[test]
    fn state_round_trips_and_the_counter_goes_on_from_the_saved_value() {
        let mut r = rig();
        write64(&mut r.hpet, CONFIG, ENABLE);
        write64(&mut r.hpet, TIMER_BASE, T_ENABLE | 3 << T_ROUTE_SHIFT);
        write64(&mut r.hpet, TIMER_BASE + TIMER_COMPARATOR, 5000);
        r.clock.advance(us(20));
        let s = r.hpet.state();
        assert_eq!(s.counter, 2000);
        let lines = r
            .pins
            .iter()
            .map(|p| p.clone() as Arc<dyn IrqLine>)
            .collect();
        let mut h = Hpet::from_state(r.clock.clone(), lines, &s);
        assert_eq!(h.state(), s);
        r.clock.advance(us(30));
        h.poll();
        assert_eq!(r.pins[3].rising_edges(), 1);
    }
}
