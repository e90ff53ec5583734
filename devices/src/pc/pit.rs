//! The Intel 8254 programmable interval timer, and the bits of the PC's port 0x61 (system
//! control port B) that belong to it.
//!
//! | port | register                                                                  |
//! |------|---------------------------------------------------------------------------|
//! | 0x40 | counter 0: OUT drives IRQ 0 (the system timer)                            |
//! | 0x41 | counter 1: DRAM refresh on old PCs, wired to nothing here                 |
//! | 0x42 | counter 2: gate and OUT reach software through port 0x61 (speaker, calibration) |
//! | 0x43 | control word: mode programming, counter latch and read-back commands (write-only) |
//! | 0x61 | bit 0 counter 2's gate, bit 1 speaker data enable (stored), bits 2-3 stored, bit 4 refresh toggle (flips on every read), bit 5 counter 2's OUT |
//!
//! [`Pit`] serves 0x40-0x43; [`Pit::port61`] gives a separate small [`BusDevice`] for 0x61
//! sharing the same timer. [`Pit`] is a cheap handle whose clones share one timer behind a
//! mutex, so the machine's timer thread can [`Pit::poll`] while the bus holds another clone.
//!
//! # Time
//!
//! The input clock is [`PIT_HZ`] (1 193 182 Hz), derived from a [`Clock`]: tick `k` happens
//! `k / PIT_HZ` seconds after the timer's epoch. A counter never counts by being polled; each
//! stores the tick its count was loaded at, and its count and OUT at any tick are computed
//! from the elapsed ticks and the mode. Following the datasheet, a count written to a counter
//! is loaded into the counting element on the *next* clock pulse, which does not decrement
//! it: in mode 0 an initial count of N raises OUT N + 1 pulses after the write.
//!
//! # IRQ 0
//!
//! Counter 0's OUT drives the IRQ 0 line given to [`Pit::new`]. Nothing happens by itself:
//! the machine calls [`Pit::poll`] at (or after) [`Pit::next_deadline`], and `poll` gives the
//! line a rising edge if OUT rose since the previous poll (and leaves it at OUT's current
//! level). In the periodic modes the edges stay on the counter's own schedule, not the
//! poll's: a poll that comes late by less than a period still produces that period's one edge
//! and the next deadline is unchanged. When the machine polls later than a whole period (a
//! stopped VM, a host under load, seconds late), the edges missed meanwhile are coalesced into
//! one: an edge-triggered IRQ can only latch one request anyway, and Linux (like other
//! tick-based guests) tolerates lost ticks by reading a clocksource rather than counting
//! interrupts. Every write to the PIT's ports polls first, so reprogramming never loses or
//! invents an edge, and drives IRQ 0 to OUT's new level after: a control word for modes 1-5
//! sets OUT high, which (from the power-on low) is a rising edge and an IRQ 0, as on the chip.
//! A guest write that moves the next deadline calls the function given to
//! [`Pit::set_deadline_notifier`], so the machine's timer thread re-reads it.
//! The IRQ line is driven with the PIT's mutex held: lock order is PIT, then whatever the line
//! locks (the 8259 or I/O APIC); those never call back into the PIT.
//!
//! # Modes
//!
//! All six (6 and 7 are 2 and 3, as on the chip): 0 interrupt on terminal count, 1 hardware
//! retriggerable one-shot, 2 rate generator, 3 square wave, 4 software triggered strobe, 5
//! hardware triggered strobe, with the gate behaviour of the datasheet (0 and 4 pause while
//! the gate is low; 1 and 5 are triggered by a gate rising edge; 2 and 3 stop with OUT high
//! while the gate is low and restart with a fresh count on its rising edge). A count written
//! while modes 2 or 3 are counting takes over at the end of the current period. Counts of 1
//! in modes 2 and 3 are illegal per the datasheet: OUT never rises again (no interrupts).
//!
//! Refused: BCD counting. A control word with the BCD bit set counts in binary, the status
//! byte reports binary (bit 0 clear), and a warning is logged; no PC software depends on it.
//! The control word register is write-only: reading port 0x43 gives 0xff.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::irq::IrqLine;

/// Base of the counter and control ports.
pub const PIT_BASE: u64 = 0x40;
/// Length of the counter and control port range (0x40-0x43).
pub const PIT_LEN: u64 = 4;
/// System control port B.
pub const PORT61_BASE: u64 = 0x61;
/// Length of port 0x61's range.
pub const PORT61_LEN: u64 = 1;
/// The 8254's input clock on a PC, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Number of counters.
pub const PIT_COUNTERS: usize = 3;

// Control word (port 0x43) fields.
/// Bits 7-6: counter select; 3 is the read-back command.
const CW_SELECT_SHIFT: u8 = 6;
/// Select value of the read-back command.
const CW_READ_BACK: u8 = 3;
/// Bits 5-4: access mode; 0 is the counter latch command.
const CW_ACCESS_SHIFT: u8 = 4;
/// Access mode 0: counter latch command.
const ACCESS_LATCH: u8 = 0;
/// Access mode 1: least significant byte only.
const ACCESS_LSB: u8 = 1;
/// Access mode 2: most significant byte only.
const ACCESS_MSB: u8 = 2;
/// Access mode 3: LSB then MSB.
const ACCESS_WORD: u8 = 3;
/// Bits 3-1: mode.
const CW_MODE_SHIFT: u8 = 1;
/// Bit 0: BCD counting.
const CW_BCD: u8 = 0x01;
/// Read-back: bit 5 clear latches the counts.
const RB_NOT_COUNT: u8 = 0x20;
/// Read-back: bit 4 clear latches the status.
const RB_NOT_STATUS: u8 = 0x10;
// Status byte.
/// Status bit 7: OUT.
const STATUS_OUT: u8 = 0x80;
/// Status bit 6: null count (the last count written is not yet in the counting element).
const STATUS_NULL: u8 = 0x40;
// Port 0x61.
/// Counter 2's gate.
const P61_GATE2: u8 = 0x01;
/// The bits stored as written (gate 2, speaker data, parity/channel check enables).
const P61_STORED: u8 = 0x0f;
/// The refresh request toggle.
const P61_REFRESH: u8 = 0x10;
/// Counter 2's OUT.
const P61_OUT2: u8 = 0x20;

/// What [`Pit::set_deadline_notifier`] takes.
pub type DeadlineNotifier = Arc<dyn Fn() + Send + Sync>;

/// Saved state of one counter. Ticks are absolute input-clock ticks on the PIT's time line
/// ([`PitState::tick`] is "now" at save time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PitCounterState {
    /// Mode bits of the control word (0-7; 6 and 7 act as 2 and 3).
    pub mode: u8,
    /// Access mode: 1 LSB, 2 MSB, 3 LSB then MSB.
    pub access: u8,
    /// The control word asked for BCD (refused: counting is binary).
    pub bcd: bool,
    /// The count register: the last count written (0 means 65536).
    pub reload: u16,
    /// A count has been written since the control word.
    pub has_count: bool,
    /// The count the counting element runs with (0 means 65536).
    pub active: u16,
    /// The counting element is loaded (or will be at `load_tick`) and runs.
    pub armed: bool,
    /// The tick the counting element was loaded at.
    pub load_tick: u64,
    /// The tick counting is measured from (`load_tick` shifted by gate pauses).
    pub start_tick: u64,
    /// Pulses counted when the gate paused counting (modes 0 and 4).
    pub paused: Option<u64>,
    /// Modes 2 and 3: `reload` replaces `active` at this tick (the end of a period).
    pub switch_tick: Option<u64>,
    /// OUT while not armed.
    pub idle_out: bool,
    /// OUT between arming and `load_tick`.
    pub out_before_load: bool,
    /// The counting element while not armed.
    pub idle_count: u16,
    /// The gate input.
    pub gate: bool,
    /// Null count until this tick (`u64::MAX`: until a count is loaded).
    pub null_until: Option<u64>,
    /// First byte of an LSB-then-MSB count write.
    pub write_lsb: Option<u8>,
    /// The next LSB-then-MSB read returns the MSB.
    pub read_msb_next: bool,
    /// A count latched by the latch or read-back command.
    pub latched_count: Option<u16>,
    /// A status byte latched by the read-back command.
    pub latched_status: Option<u8>,
}

/// Saved state of the [`Pit`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PitState {
    /// The three counters.
    pub counters: [PitCounterState; PIT_COUNTERS],
    /// The tick the state was taken at.
    pub tick: u64,
    /// The tick of the last poll (edges of counter 0 before it are delivered).
    pub last_poll_tick: u64,
    /// The level IRQ 0 was last driven to.
    pub irq_level: bool,
    /// Port 0x61's stored bits (0-3).
    pub port61: u8,
    /// Port 0x61's refresh toggle.
    pub refresh: bool,
}

/// `reload` as a count: 0 stands for 65536.
fn count_of(reload: u16) -> u64 {
    if reload == 0 {
        0x1_0000
    } else {
        u64::from(reload)
    }
}

/// One 8254 counter; all times in ticks.
#[derive(Clone, Debug)]
struct Counter {
    s: PitCounterState,
}

impl Counter {
    /// A counter at power-on: mode 0 with no count (OUT low, never rising), LSB-then-MSB.
    fn new(gate: bool) -> Self {
        Counter {
            s: PitCounterState {
                access: ACCESS_WORD,
                gate,
                ..PitCounterState::default()
            },
        }
    }

    /// The mode the counter behaves as (6 and 7 are 2 and 3).
    fn mode(&self) -> u8 {
        if self.s.mode >= 6 {
            self.s.mode - 4
        } else {
            self.s.mode
        }
    }

    /// The count and start of the segment that holds tick `t`.
    fn segment(&self, t: u64) -> (u64, u64) {
        match self.s.switch_tick {
            Some(sw) if t >= sw => (count_of(self.s.reload), sw),
            _ => (count_of(self.s.active), self.s.start_tick),
        }
    }

    /// Pulses counted since the counting element was loaded, if it is by tick `t`.
    fn pulses(&self, t: u64) -> Option<u64> {
        if !self.s.armed || t < self.s.load_tick {
            return None;
        }
        if let Some(e) = self.s.paused {
            return Some(e);
        }
        let (_, start) = self.segment(t);
        Some(t.saturating_sub(start))
    }

    /// OUT at tick `t`.
    fn out(&self, t: u64) -> bool {
        let Some(p) = self.pulses(t) else {
            return if self.s.armed {
                self.s.out_before_load
            } else {
                self.s.idle_out
            };
        };
        let (n, _) = self.segment(t);
        match self.mode() {
            0 | 1 => p >= n,
            2 => p % n != n - 1,
            3 => p % n < n.div_ceil(2),
            _ => p != n,
        }
    }

    /// The counting element at tick `t`.
    fn count(&self, t: u64) -> u16 {
        let Some(p) = self.pulses(t) else {
            return self.s.idle_count;
        };
        let (n, _) = self.segment(t);
        let ce = match self.mode() {
            2 => n - p % n,
            3 => {
                let phase = p % n;
                let high = n.div_ceil(2);
                let half = if phase < high { phase } else { phase - high };
                (n & !1).wrapping_sub(2 * half)
            }
            _ => n.wrapping_sub(p),
        };
        ce as u16
    }

    /// The first tick after `t` at which OUT rises, if it will with nothing reprogrammed.
    fn next_rise_after(&self, t: u64) -> Option<u64> {
        if !self.s.armed || self.s.paused.is_some() {
            return None;
        }
        let (n, start) = self.segment(t);
        let rise = match self.mode() {
            0 | 1 => start + n,
            4 | 5 => start + n + 1,
            _ if n < 2 => return None,
            _ if t < start => start + n,
            _ => start + ((t - start) / n + 1) * n,
        };
        (rise > t).then_some(rise)
    }

    /// Whether the count is null (not yet loaded) at tick `t`.
    fn null_count(&self, t: u64) -> bool {
        self.s.null_until.is_some_and(|until| t < until)
    }

    /// Commits a count switch that has happened by tick `t`.
    fn advance(&mut self, t: u64) {
        if let Some(sw) = self.s.switch_tick.filter(|&sw| t >= sw) {
            self.s.active = self.s.reload;
            self.s.start_tick = sw;
            self.s.load_tick = sw;
            self.s.switch_tick = None;
        }
    }

    /// Loads `active` into the counting element on the clock pulse after tick `t`.
    fn arm(&mut self, t: u64, out_before_load: bool) {
        self.s.armed = true;
        self.s.load_tick = t + 1;
        self.s.start_tick = t + 1;
        self.s.switch_tick = None;
        self.s.out_before_load = out_before_load;
        self.s.paused = (!self.s.gate && matches!(self.mode(), 0 | 4)).then_some(0);
        if self.null_count(t) {
            self.s.null_until = Some(t + 1);
        }
    }

    /// Stops counting at tick `t`, OUT held at `out`.
    fn disarm(&mut self, t: u64, out: bool) {
        self.s.idle_count = self.count(t);
        self.s.armed = false;
        self.s.paused = None;
        self.s.switch_tick = None;
        self.s.idle_out = out;
    }

    /// A control word programming this counter.
    fn program(&mut self, t: u64, control: u8) {
        let mode = (control >> CW_MODE_SHIFT) & 7;
        let bcd = control & CW_BCD != 0;
        if bcd {
            log::warn!("8254: BCD counting is not supported; counting in binary");
        }
        self.disarm(t, mode != 0);
        self.s.mode = mode;
        self.s.access = (control >> CW_ACCESS_SHIFT) & 3;
        self.s.bcd = bcd;
        self.s.has_count = false;
        self.s.null_until = Some(u64::MAX);
        self.s.write_lsb = None;
        self.s.read_msb_next = false;
        self.s.latched_count = None;
        self.s.latched_status = None;
    }

    /// A byte written to the counter's port at tick `t`.
    fn write(&mut self, t: u64, value: u8) {
        let count = match self.s.access {
            ACCESS_LSB => u16::from(value),
            ACCESS_MSB => u16::from(value) << 8,
            _ => match self.s.write_lsb.take() {
                Some(lsb) => u16::from_le_bytes([lsb, value]),
                None => {
                    self.s.write_lsb = Some(value);
                    if self.mode() == 0 {
                        // Writing the first byte stops counting, OUT low at once.
                        self.disarm(t, false);
                    }
                    return;
                }
            },
        };
        self.load(t, count);
    }

    /// A complete count written at tick `t`.
    fn load(&mut self, t: u64, count: u16) {
        self.s.reload = count;
        self.s.has_count = true;
        self.s.null_until = Some(u64::MAX);
        match self.mode() {
            0 | 4 => {
                self.s.active = count;
                self.arm(t, self.mode() == 4);
            }
            // Waits for a gate trigger.
            1 | 5 => {}
            _ => {
                if !self.s.armed {
                    if self.s.gate {
                        self.s.active = count;
                        self.arm(t, true);
                    }
                } else if t < self.s.load_tick {
                    self.s.active = count;
                    self.s.null_until = Some(self.s.load_tick);
                } else if let Some(sw) = self.next_period_end(t) {
                    self.s.switch_tick = Some(sw);
                    self.s.null_until = Some(sw);
                }
            }
        }
    }

    /// Modes 2 and 3: the tick the period running at `t` ends (the next reload).
    fn next_period_end(&self, t: u64) -> Option<u64> {
        let (n, start) = self.segment(t);
        Some(start + ((t.checked_sub(start)?) / n + 1) * n)
    }

    /// The gate input driven to `high` at tick `t`.
    fn set_gate(&mut self, t: u64, high: bool) {
        if self.s.gate == high {
            return;
        }
        self.s.gate = high;
        match self.mode() {
            0 | 4 if self.s.armed => {
                if !high && self.s.paused.is_none() {
                    self.s.paused = Some(self.pulses(t).unwrap_or(0));
                } else if let Some(e) = self.s.paused.filter(|_| high) {
                    self.s.start_tick = t.max(self.s.load_tick).saturating_sub(e);
                    self.s.paused = None;
                }
            }
            0 | 4 => {}
            1 | 5 => {
                if high && self.s.has_count {
                    let out = self.out(t);
                    self.s.active = self.s.reload;
                    self.arm(t, out);
                }
            }
            _ => {
                if high {
                    if self.s.has_count {
                        self.s.active = self.s.reload;
                        self.arm(t, true);
                    }
                } else {
                    self.disarm(t, true);
                    self.s.active = self.s.reload;
                }
            }
        }
    }

    /// The status byte at tick `t`.
    fn status(&self, t: u64) -> u8 {
        let mut status = (self.s.access << CW_ACCESS_SHIFT) | (self.s.mode << CW_MODE_SHIFT);
        if self.out(t) {
            status |= STATUS_OUT;
        }
        if self.null_count(t) {
            status |= STATUS_NULL;
        }
        status
    }

    /// The counter latch command: the count is frozen for reading (once, until read).
    fn latch_count(&mut self, t: u64) {
        if self.s.latched_count.is_none() {
            self.s.latched_count = Some(self.count(t));
            self.s.read_msb_next = false;
        }
    }

    /// A read of the counter's port at tick `t`.
    fn read(&mut self, t: u64) -> u8 {
        if let Some(status) = self.s.latched_status.take() {
            return status;
        }
        let (value, latched) = match self.s.latched_count {
            Some(latched) => (latched, true),
            None => (self.count(t), false),
        };
        let [lsb, msb] = value.to_le_bytes();
        let (byte, done) = match self.s.access {
            ACCESS_LSB => (lsb, true),
            ACCESS_MSB => (msb, true),
            _ if self.s.read_msb_next => {
                self.s.read_msb_next = false;
                (msb, true)
            }
            _ => {
                self.s.read_msb_next = true;
                (lsb, false)
            }
        };
        if latched && done {
            self.s.latched_count = None;
        }
        byte
    }
}

/// The timer behind the [`Pit`] handles' mutex.
struct PitInner {
    clock: Arc<dyn Clock>,
    epoch: Instant,
    /// The tick at `epoch`.
    epoch_tick: u64,
    counters: [Counter; PIT_COUNTERS],
    irq0: Arc<dyn IrqLine>,
    irq_level: bool,
    last_poll_tick: u64,
    port61: u8,
    refresh: bool,
    /// Told when a guest write moved counter 0's next deadline.
    notifier: Option<DeadlineNotifier>,
}

impl PitInner {
    /// The tick at `now`.
    fn tick_at(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        self.epoch_tick
            .saturating_add((nanos * u128::from(PIT_HZ) / 1_000_000_000) as u64)
    }

    fn now_tick(&self) -> u64 {
        self.tick_at(self.clock.now())
    }

    /// The first instant at which tick `tick` has happened.
    fn instant_of(&self, tick: u64) -> Option<Instant> {
        let ticks = u128::from(tick.saturating_sub(self.epoch_tick));
        let nanos = (ticks * 1_000_000_000).div_ceil(u128::from(PIT_HZ));
        let d = Duration::new(
            u64::try_from(nanos / 1_000_000_000).ok()?,
            (nanos % 1_000_000_000) as u32,
        );
        self.epoch.checked_add(d)
    }

    /// Delivers counter 0's OUT edges up to tick `t` to IRQ 0 (coalesced), then follows OUT.
    fn poll_at(&mut self, t: u64) {
        let counter = &self.counters[0];
        let rose = counter
            .next_rise_after(self.last_poll_tick)
            .is_some_and(|r| r <= t);
        let out = counter.out(t);
        if rose {
            if self.irq_level {
                self.irq0.set_level(false);
            }
            self.irq0.set_level(true);
            self.irq_level = true;
        }
        if out != self.irq_level {
            self.irq0.set_level(out);
            self.irq_level = out;
        }
        self.last_poll_tick = self.last_poll_tick.max(t);
        for counter in &mut self.counters {
            counter.advance(t);
        }
    }

    fn write_control(&mut self, t: u64, control: u8) {
        let select = control >> CW_SELECT_SHIFT;
        if select == CW_READ_BACK {
            for (i, counter) in self.counters.iter_mut().enumerate() {
                if control & (2 << i) == 0 {
                    continue;
                }
                if control & RB_NOT_COUNT == 0 {
                    counter.latch_count(t);
                }
                if control & RB_NOT_STATUS == 0 && counter.s.latched_status.is_none() {
                    counter.s.latched_status = Some(counter.status(t));
                }
            }
            return;
        }
        let counter = &mut self.counters[usize::from(select)];
        if (control >> CW_ACCESS_SHIFT) & 3 == ACCESS_LATCH {
            counter.latch_count(t);
        } else {
            counter.program(t, control);
        }
    }
}

/// The 8254; see the module documentation. Clones share the timer.
#[derive(Clone)]
pub struct Pit {
    inner: Arc<Mutex<PitInner>>,
}

impl std::fmt::Debug for Pit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pit").field("state", &self.state()).finish()
    }
}

fn lock(inner: &Mutex<PitInner>) -> MutexGuard<'_, PitInner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pit {
    /// A PIT at power-on counting from `clock`, counter 0's OUT driving `irq0`: every counter
    /// in mode 0 without a count (OUT low, no interrupt until software programs one), gates 0
    /// and 1 high, counter 2's gate low (port 0x61 reads 0).
    pub fn new(clock: Arc<dyn Clock>, irq0: Arc<dyn IrqLine>) -> Self {
        let epoch = clock.now();
        Self {
            inner: Arc::new(Mutex::new(PitInner {
                clock,
                epoch,
                epoch_tick: 0,
                counters: [Counter::new(true), Counter::new(true), Counter::new(false)],
                irq0,
                irq_level: false,
                last_poll_tick: 0,
                port61: 0,
                refresh: false,
                notifier: None,
            })),
        }
    }

    /// Rebuilds a PIT from a saved state: time resumes at the saved tick now (the time the
    /// machine was stopped does not count), and IRQ 0 is driven to its saved level.
    pub fn from_state(state: &PitState, clock: Arc<dyn Clock>, irq0: Arc<dyn IrqLine>) -> Self {
        let epoch = clock.now();
        let counter = |s: &PitCounterState| {
            let mut s = s.clone();
            s.mode &= 7;
            s.access &= 3;
            if s.access == ACCESS_LATCH {
                s.access = ACCESS_WORD;
            }
            Counter { s }
        };
        irq0.set_level(state.irq_level);
        Self {
            inner: Arc::new(Mutex::new(PitInner {
                clock,
                epoch,
                epoch_tick: state.tick,
                counters: [
                    counter(&state.counters[0]),
                    counter(&state.counters[1]),
                    counter(&state.counters[2]),
                ],
                irq0,
                irq_level: state.irq_level,
                last_poll_tick: state.last_poll_tick.min(state.tick),
                port61: state.port61 & P61_STORED,
                refresh: state.refresh,
                notifier: None,
            })),
        }
    }

    /// The state, for snapshots.
    pub fn state(&self) -> PitState {
        let inner = lock(&self.inner);
        PitState {
            counters: [
                inner.counters[0].s.clone(),
                inner.counters[1].s.clone(),
                inner.counters[2].s.clone(),
            ],
            tick: inner.now_tick(),
            last_poll_tick: inner.last_poll_tick,
            irq_level: inner.irq_level,
            port61: inner.port61,
            refresh: inner.refresh,
        }
    }

    /// Raises IRQ 0 if counter 0's OUT rose since the last poll (one edge, however many
    /// periods passed) and leaves the line at OUT's level. The machine calls it when
    /// [`Pit::next_deadline`] passes.
    pub fn poll(&self) {
        let mut inner = lock(&self.inner);
        let t = inner.now_tick();
        inner.poll_at(t);
    }

    /// When counter 0's OUT next rises (the instant [`Pit::poll`] should run), or `None` if
    /// it will not without reprogramming. An edge not yet polled gives an instant already
    /// past, so the caller polls at once.
    pub fn next_deadline(&self) -> Option<Instant> {
        let inner = lock(&self.inner);
        let rise = inner.counters[0].next_rise_after(inner.last_poll_tick)?;
        inner.instant_of(rise)
    }

    /// Sets the function called (with the PIT's lock held: it must not call back into the
    /// PIT, only wake whoever waits) when a guest write moves [`Pit::next_deadline`], so a
    /// timer thread sleeping towards an old deadline (or with none) looks again.
    pub fn set_deadline_notifier(&self, notifier: DeadlineNotifier) {
        lock(&self.inner).notifier = Some(notifier);
    }

    /// Port 0x61's device, sharing this timer.
    pub fn port61(&self) -> Port61 {
        Port61 {
            inner: self.inner.clone(),
        }
    }
}

impl BusDevice for Pit {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let mut inner = lock(&self.inner);
        let t = inner.now_tick();
        match (offset, data.len()) {
            (0..=2, 1) => data[0] = inner.counters[offset as usize].read(t),
            _ => {
                if offset != 3 || data.len() != 1 {
                    log::debug!(
                        "8254: unhandled {}-byte read at {:#x}",
                        data.len(),
                        base + offset
                    );
                }
                data.fill(0xff);
            }
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let mut inner = lock(&self.inner);
        let t = inner.now_tick();
        inner.poll_at(t);
        let deadline = inner.counters[0].next_rise_after(t);
        match (offset, data) {
            (0..=2, &[v]) => inner.counters[offset as usize].write(t, v),
            (3, &[v]) => inner.write_control(t, v),
            _ => log::debug!(
                "8254: unhandled {}-byte write at {:#x}",
                data.len(),
                base + offset
            ),
        }
        // IRQ 0 follows OUT's new level (a control word can set it high or low).
        inner.poll_at(t);
        if inner.counters[0].next_rise_after(t) != deadline {
            if let Some(notifier) = &inner.notifier {
                notifier();
            }
        }
    }
}

/// Port 0x61 (system control port B): counter 2's gate and OUT, the speaker enable, and the
/// refresh toggle; from [`Pit::port61`].
pub struct Port61 {
    inner: Arc<Mutex<PitInner>>,
}

impl BusDevice for Port61 {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        if offset != 0 || data.len() != 1 {
            log::debug!(
                "port 0x61: unhandled {}-byte read at {:#x}",
                data.len(),
                base + offset
            );
            data.fill(0xff);
            return;
        }
        let mut inner = lock(&self.inner);
        let t = inner.now_tick();
        inner.refresh = !inner.refresh;
        let mut value = inner.port61 & P61_STORED;
        if inner.refresh {
            value |= P61_REFRESH;
        }
        if inner.counters[2].out(t) {
            value |= P61_OUT2;
        }
        data[0] = value;
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let &[value] = data else {
            log::debug!(
                "port 0x61: unhandled {}-byte write at {:#x}",
                data.len(),
                base + offset
            );
            return;
        };
        let mut inner = lock(&self.inner);
        let t = inner.now_tick();
        inner.poll_at(t);
        inner.port61 = value & P61_STORED;
        inner.counters[2].set_gate(t, value & P61_GATE2 != 0);
        inner.poll_at(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::irq::RecordingIrq;

    struct Rig {
        clock: Arc<ManualClock>,
        irq0: Arc<RecordingIrq>,
        pit: Pit,
        port61: Port61,
    }

    impl Rig {
        fn new() -> Rig {
            let clock = Arc::new(ManualClock::new());
            let irq0 = Arc::new(RecordingIrq::default());
            let pit = Pit::new(clock.clone(), irq0.clone());
            let port61 = pit.port61();
            Rig {
                clock,
                irq0,
                pit,
                port61,
            }
        }

        fn out(&mut self, port: u64, value: u8) {
            if port == PORT61_BASE {
                self.port61.write(PORT61_BASE, 0, &[value]);
            } else {
                self.pit.write(PIT_BASE, port - PIT_BASE, &[value]);
            }
        }

        fn inb(&mut self, port: u64) -> u8 {
            let mut b = [0];
            if port == PORT61_BASE {
                self.port61.read(PORT61_BASE, 0, &mut b);
            } else {
                self.pit.read(PIT_BASE, port - PIT_BASE, &mut b);
            }
            b[0]
        }

        /// Advances the clock by `d` in `step`s, polling like a timer thread would.
        fn run(&mut self, d: Duration, step: Duration) {
            let mut left = d;
            while !left.is_zero() {
                let s = step.min(left);
                self.clock.advance(s);
                left -= s;
                self.pit.poll();
            }
        }

        /// Rising edges of IRQ 0 after the one the control word gave (OUT low to high).
        fn ticks_seen(&self) -> u32 {
            self.irq0.rising_edges() - 1
        }

        fn read_word(&mut self, port: u64) -> u16 {
            let lsb = self.inb(port);
            let msb = self.inb(port);
            u16::from_le_bytes([lsb, msb])
        }
    }

    /// The duration of `ticks` input clocks (rounded up to the nanosecond).
    fn ticks(ticks: u64) -> Duration {
        Duration::from_nanos((ticks * 1_000_000_000).div_ceil(PIT_HZ))
    }

    /// Linux's periodic tick setup (`init_pit_timer` for periodic mode): control word 0x34
    /// (counter 0, LSB then MSB, mode 2), then LATCH = (PIT_HZ + HZ/2) / HZ.
    #[test]
    fn mode_2_gives_one_irq0_edge_per_period_at_the_programmed_rate() {
        let mut rig = Rig::new();
        let latch: u16 = 11932; // HZ = 100
        rig.out(0x43, 0x34);
        rig.out(0x40, latch as u8);
        rig.out(0x40, (latch >> 8) as u8);
        assert_eq!(rig.irq0.rising_edges(), 1, "the control word raised OUT");
        assert!(rig.irq0.level());
        rig.run(Duration::from_secs(1), Duration::from_micros(100));
        // Period = 11932 / 1193182 s = 10.0002 ms: 99 whole periods fit in a second after
        // the load pulse.
        assert_eq!(rig.ticks_seen(), 99);
        rig.run(Duration::from_millis(10), Duration::from_micros(100));
        assert_eq!(rig.ticks_seen(), 100);
    }

    #[test]
    fn mode_2_next_deadline_is_the_next_period_boundary() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0xe8);
        rig.out(0x40, 0x03); // 1000 ticks
        let t0 = rig.clock.now();
        // Loaded on the next pulse (tick 1), first rise at tick 1001.
        assert_eq!(rig.pit.next_deadline(), Some(t0 + ticks(1001) - (t0 - t0)));
        rig.clock.advance(ticks(1000));
        rig.pit.poll();
        assert_eq!(rig.ticks_seen(), 0, "OUT is low for the last pulse");
        assert!(!rig.irq0.level());
        rig.clock.advance(ticks(1001) - ticks(1000));
        rig.pit.poll();
        assert_eq!(rig.ticks_seen(), 1);
        assert!(rig.irq0.level());
        let next = rig.pit.next_deadline().unwrap();
        assert_eq!(next - t0, ticks(2001));
    }

    #[test]
    fn mode_3_square_wave_rises_once_per_period_and_is_high_half_of_it() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x36); // counter 0, LSB then MSB, mode 3
        rig.out(0x40, 0x00);
        rig.out(0x40, 0x00); // 65536: 18.2 Hz
        rig.run(Duration::from_secs(1), Duration::from_micros(500));
        assert_eq!(rig.ticks_seen(), 18);
        // Read-back status of counter 0 in each half of a period.
        let t = rig.pit.state().tick;
        let phase = (t - 1) % 65536;
        rig.out(0x43, 0xe2); // read-back, status only, counter 0
        let status = rig.inb(0x40);
        assert_eq!(status & 0x3f, 0x36);
        assert_eq!(status & STATUS_OUT != 0, phase < 32768);
    }

    #[test]
    fn mode_2_polled_seconds_late_coalesces_into_one_edge_on_schedule() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0xa9);
        rig.out(0x40, 0x04); // 1193 ticks, ~1 kHz
        let t0 = rig.clock.now();
        rig.clock.advance(Duration::from_secs(3));
        rig.pit.poll();
        assert_eq!(rig.ticks_seen(), 1);
        // The next edge stays on the counter's phase.
        let next = rig.pit.next_deadline().unwrap() - t0;
        let k = (ticks_in(Duration::from_secs(3)) - 1) / 1193 + 1;
        assert_eq!(next, ticks(1 + k * 1193));
        assert!(next > Duration::from_secs(3));
    }

    fn ticks_in(d: Duration) -> u64 {
        (d.as_nanos() * u128::from(PIT_HZ) / 1_000_000_000) as u64
    }

    #[test]
    fn a_poll_late_by_less_than_a_period_still_gets_that_periods_edge() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0xe8);
        rig.out(0x40, 0x03); // 1000 ticks
        let t0 = rig.clock.now();
        rig.clock.advance(ticks(1500));
        rig.pit.poll();
        assert_eq!(rig.ticks_seen(), 1);
        assert_eq!(rig.pit.next_deadline().unwrap() - t0, ticks(2001));
    }

    /// Linux's one-shot clockevent (`pit_next_event` after control word 0x38, mode 4):
    /// OUT strobes low for one pulse after N + 1, one edge.
    #[test]
    fn mode_4_strobe_gives_a_single_edge() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x38);
        rig.out(0x40, 100);
        rig.out(0x40, 0);
        rig.run(ticks(101), ticks(1));
        assert_eq!(rig.ticks_seen(), 0);
        rig.run(ticks(1), ticks(1));
        assert_eq!(rig.ticks_seen(), 1);
        rig.run(Duration::from_millis(200), Duration::from_millis(1));
        assert_eq!(rig.ticks_seen(), 1);
    }

    #[test]
    fn programming_counter_0_tells_the_timer_thread_its_deadline_moved() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let mut rig = Rig::new();
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        rig.pit.set_deadline_notifier(Arc::new(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        rig.out(0x43, 0x34);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "no count yet: still no deadline"
        );
        rig.out(0x40, 0x9c);
        rig.out(0x40, 0x2e);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Latching, reading and counter 2 leave counter 0's deadline alone.
        rig.out(0x43, 0x00);
        rig.read_word(0x40);
        rig.out(0x43, 0xb0);
        rig.out(0x42, 0x10);
        rig.out(0x42, 0x00);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        rig.out(0x43, 0x30);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "disarmed: no deadline now");
    }

    #[test]
    fn mode_0_one_shot_raises_out_after_n_plus_1_pulses_and_stays_high() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x30); // counter 0, LSB then MSB, mode 0
        rig.out(0x40, 0x10);
        assert!(!rig.irq0.level());
        rig.out(0x40, 0x27); // 10000
        let t0 = rig.clock.now();
        assert_eq!(rig.pit.next_deadline().unwrap() - t0, ticks(10001));
        rig.clock.advance(ticks(10000));
        rig.pit.poll();
        assert!(!rig.irq0.level());
        rig.clock.advance(ticks(10001) - ticks(10000));
        rig.pit.poll();
        assert!(rig.irq0.level());
        assert_eq!(rig.irq0.rising_edges(), 1);
        assert_eq!(rig.pit.next_deadline(), None);
        rig.run(Duration::from_millis(100), Duration::from_millis(1));
        assert_eq!(rig.irq0.rising_edges(), 1);
        assert!(rig.irq0.level());
        // A new control word sets OUT low.
        rig.out(0x43, 0x30);
        assert!(!rig.irq0.level());
    }

    #[test]
    fn counter_latch_freezes_the_count_while_counting_continues() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0x00);
        rig.out(0x40, 0x10); // 4096
        rig.clock.advance(ticks(101));
        rig.out(0x43, 0x00); // latch counter 0
        rig.clock.advance(ticks(500));
        assert_eq!(rig.read_word(0x40), 4096 - 100);
        // Latch released: live count now.
        assert_eq!(rig.read_word(0x40), 4096 - 600);
    }

    #[test]
    fn a_second_latch_before_reading_is_ignored() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0x00);
        rig.out(0x40, 0x10);
        rig.clock.advance(ticks(11));
        rig.out(0x43, 0x00);
        rig.clock.advance(ticks(10));
        rig.out(0x43, 0x00);
        assert_eq!(rig.read_word(0x40), 4096 - 10);
    }

    #[test]
    fn read_back_latches_status_then_count_of_several_counters() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0x00);
        rig.out(0x40, 0x10);
        rig.out(0x43, 0x74); // counter 1, LSB then MSB, mode 2
        rig.out(0x43, 0xe2); // read-back status of counter 0 in the tick of its write
        assert_eq!(rig.inb(0x40), 0x40 | 0x80 | 0x34, "null count until loaded");
        rig.clock.advance(ticks(201));
        rig.out(0x43, 0xc6); // read-back count and status, counters 0 and 1
        rig.clock.advance(ticks(50));
        assert_eq!(rig.inb(0x40), 0x80 | 0x34, "loaded: no null count");
        assert_eq!(rig.inb(0x41), 0x40 | 0x80 | 0x34, "counter 1 has no count");
        assert_eq!(
            rig.read_word(0x40),
            4096 - 200,
            "count latched at the read-back"
        );
        assert_eq!(rig.read_word(0x40), 4096 - 250, "live again");
    }

    #[test]
    fn lsb_only_and_msb_only_access_modes() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x52); // counter 1, LSB only, mode 1
        rig.out(0x41, 0x80);
        assert_eq!(rig.pit.state().counters[1].reload, 0x80);
        rig.out(0x43, 0x64); // counter 1, MSB only, mode 2
        rig.out(0x41, 0x02);
        assert_eq!(rig.pit.state().counters[1].reload, 0x200);
        rig.clock.advance(ticks(17));
        assert_eq!(rig.inb(0x41), 0x01, "0x200 - 16 = 0x1f0, MSB");
    }

    #[test]
    fn a_count_written_in_mode_2_takes_over_at_the_end_of_the_period() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0xe8);
        rig.out(0x40, 0x03); // 1000
        let t0 = rig.clock.now();
        rig.clock.advance(ticks(500));
        rig.out(0x40, 0xf4);
        rig.out(0x40, 0x01); // 500
        assert_eq!(rig.pit.next_deadline().unwrap() - t0, ticks(1001));
        rig.clock.advance(ticks(1001) - ticks(500));
        rig.pit.poll();
        assert_eq!(rig.ticks_seen(), 1);
        assert_eq!(rig.pit.next_deadline().unwrap() - t0, ticks(1501));
    }

    /// Linux's `pit_calibrate_tsc`: gate 2 high with the speaker off, counter 2 in mode 0
    /// (0xb0) with a 50 ms count, then spin on port 0x61 bit 5 until OUT goes high.
    #[test]
    fn counter_2_gated_through_port_61_times_linux_tsc_calibration() {
        let mut rig = Rig::new();
        let v = rig.inb(0x61);
        rig.out(0x61, (v & !0x02) | 0x01);
        let latch: u16 = (PIT_HZ / 20) as u16; // 50 ms
        rig.out(0x43, 0xb0);
        rig.out(0x42, latch as u8);
        rig.out(0x42, (latch >> 8) as u8);
        let start = rig.clock.now();
        let mut reads = 0u32;
        while rig.inb(0x61) & 0x20 == 0 {
            rig.clock.advance(Duration::from_nanos(100));
            reads += 1;
            assert!(reads < 1_000_000, "OUT 2 never rose");
        }
        let elapsed = rig.clock.now() - start;
        // (latch + 1) pulses.
        let expected = ticks(u64::from(latch) + 1);
        assert!(elapsed >= expected && elapsed < expected + Duration::from_nanos(100));
        assert!(elapsed.as_secs_f64() > 0.0499 && elapsed.as_secs_f64() < 0.0501);
        // Counter 2 is no IRQ.
        assert_eq!(rig.irq0.rising_edges(), 0);
    }

    #[test]
    fn gate_2_low_pauses_mode_0_counting() {
        let mut rig = Rig::new();
        rig.out(0x61, 0x01);
        rig.out(0x43, 0xb0);
        rig.out(0x42, 0xe8);
        rig.out(0x42, 0x03); // 1000
        rig.clock.advance(ticks(401));
        rig.out(0x61, 0x00);
        rig.clock.advance(Duration::from_millis(10));
        rig.out(0x43, 0x80);
        assert_eq!(rig.read_word(0x42), 600);
        rig.out(0x61, 0x01);
        rig.clock.advance(ticks(599));
        assert_eq!(rig.inb(0x61) & 0x20, 0);
        rig.clock.advance(ticks(600) - ticks(599));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20);
    }

    #[test]
    fn mode_1_one_shot_is_triggered_by_a_gate_rising_edge() {
        let mut rig = Rig::new();
        rig.out(0x43, 0xb2); // counter 2, LSB then MSB, mode 1
        rig.out(0x42, 100);
        rig.out(0x42, 0);
        rig.clock.advance(ticks(1000));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20, "OUT high until triggered");
        rig.out(0x61, 0x01);
        rig.clock.advance(ticks(2));
        assert_eq!(rig.inb(0x61) & 0x20, 0, "low while counting");
        rig.clock.advance(ticks(101) - ticks(2));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20, "high at terminal count");
    }

    #[test]
    fn mode_1_retriggered_while_counting_starts_the_one_shot_over() {
        let mut rig = Rig::new();
        rig.out(0x43, 0xb2);
        rig.out(0x42, 100);
        rig.out(0x42, 0);
        rig.out(0x61, 0x01);
        rig.clock.advance(ticks(51));
        rig.out(0x61, 0x00);
        rig.out(0x61, 0x01); // retrigger at tick 51
        rig.clock.advance(ticks(51 + 100) - ticks(51));
        assert_eq!(rig.inb(0x61) & 0x20, 0, "still counting the new one-shot");
        rig.clock.advance(ticks(52 + 100) - ticks(51 + 100));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20);
    }

    #[test]
    fn mode_5_strobes_out_low_for_one_pulse_n_after_the_gate_trigger() {
        let mut rig = Rig::new();
        rig.out(0x43, 0xba); // counter 2, LSB then MSB, mode 5
        rig.out(0x42, 10);
        rig.out(0x42, 0);
        rig.clock.advance(ticks(100));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20, "no strobe without a trigger");
        rig.out(0x61, 0x01);
        rig.clock.advance(ticks(110) - ticks(100));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20);
        rig.clock.advance(ticks(111) - ticks(110));
        assert_eq!(rig.inb(0x61) & 0x20, 0, "the strobe");
        rig.clock.advance(ticks(112) - ticks(111));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20);
    }

    #[test]
    fn mode_3_counts_down_by_two_in_each_half_period() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x36);
        rig.out(0x40, 100);
        rig.out(0x40, 0);
        rig.clock.advance(ticks(1 + 10));
        assert_eq!(rig.read_word(0x40), 80);
        rig.clock.advance(ticks(1 + 60) - ticks(1 + 10));
        assert_eq!(
            rig.read_word(0x40),
            80,
            "second half: reloaded, ten pulses in"
        );
    }

    #[test]
    fn mode_3_on_counter_2_stops_with_out_high_while_the_gate_is_low() {
        let mut rig = Rig::new();
        rig.out(0x43, 0xb6);
        rig.out(0x42, 100);
        rig.out(0x42, 0);
        rig.clock.advance(ticks(1000));
        assert_eq!(rig.inb(0x61) & 0x20, 0x20);
        rig.out(0x61, 0x01);
        rig.clock.advance(ticks(1 + 60));
        assert_eq!(rig.inb(0x61) & 0x20, 0, "second half of the period");
        rig.out(0x61, 0x00);
        assert_eq!(rig.inb(0x61) & 0x20, 0x20);
    }

    #[test]
    fn port_61_stores_its_low_bits_and_toggles_refresh_on_reads() {
        let mut rig = Rig::new();
        rig.out(0x61, 0xff);
        let a = rig.inb(0x61);
        let b = rig.inb(0x61);
        assert_eq!(a & 0x0f, 0x0f);
        assert_ne!(a & 0x10, b & 0x10);
        assert_eq!(a & 0xc0, 0);
    }

    #[test]
    fn control_port_is_write_only_and_bcd_is_refused() {
        let mut rig = Rig::new();
        assert_eq!(rig.inb(0x43), 0xff);
        rig.out(0x43, 0x35); // mode 2, BCD
        rig.out(0x43, 0xe2);
        assert_eq!(rig.inb(0x40) & 0x01, 0, "status reports binary counting");
    }

    #[test]
    fn state_round_trips_and_time_resumes_where_it_stopped() {
        let mut rig = Rig::new();
        rig.out(0x43, 0x34);
        rig.out(0x40, 0xe8);
        rig.out(0x40, 0x03);
        rig.clock.advance(ticks(301));
        let state = rig.pit.state();
        let clock = Arc::new(ManualClock::new());
        clock.advance(Duration::from_secs(5));
        let irq0 = Arc::new(RecordingIrq::default());
        let mut pit = Pit::from_state(&state, clock.clone(), irq0.clone());
        assert_eq!(pit.state(), state);
        let mut b = [0u8];
        pit.write(PIT_BASE, 3, &[0x00]);
        pit.read(PIT_BASE, 0, &mut b);
        let lsb = b[0];
        pit.read(PIT_BASE, 0, &mut b);
        assert_eq!(u16::from_le_bytes([lsb, b[0]]), 700);
        assert_eq!(
            pit.next_deadline().unwrap() - clock.now(),
            ticks(1001) - ticks(301)
        );
    }
}
