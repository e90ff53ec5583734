//! The ACLINT (Advanced Core Local Interruptor) in the SiFive CLINT layout: per-hart machine
//! software interrupts (MSWI) and the machine timer (MTIMER).
//!
//! One 64 KiB range, as on QEMU's `virt` machine at `0x0200_0000`:
//!
//! | offset                | register          | width | meaning                              |
//! |-----------------------|-------------------|-------|--------------------------------------|
//! | `0x0000 + 4 * hart`   | `msip[hart]`      | 32    | bit 0 drives the hart's `mip.MSIP`   |
//! | `0x4000 + 8 * hart`   | `mtimecmp[hart]`  | 64    | `mip.MTIP` is `mtime >= mtimecmp`    |
//! | `0xbff8`              | `mtime`           | 64    | the free-running platform time       |
//!
//! The 64-bit registers also take 32-bit accesses to either half, which is how RV32 software
//! and some firmware write them.
//!
//! `mtime` counts at [`TIMEBASE_HZ`] (10 MHz, QEMU virt's `timebase-frequency`) from a host
//! monotonic [`Clock`]. The count lives in [`AclintTime`], shared through an `Arc` by the
//! device, the harts (whose `time` CSR and Sstc `stimecmp` read it without taking the device's
//! lock) and the machine's timer thread. Because `MTIP` must rise when `mtime` passes
//! `mtimecmp` with nobody touching the device, the machine runs a timer thread:
//!
//! ```text
//! loop {
//!     let seen = time.generation();
//!     let deadline = { let aclint = aclint.lock(); aclint.poll(); aclint.next_deadline() };
//!     // ... min with the harts' stimecmp deadlines (time.deadline_for(stimecmp)) ...
//!     time.wait(seen, deadline);
//! }
//! ```
//!
//! Writes to `mtimecmp` or `mtime` call [`AclintTime::notify`], which ends that wait early so
//! the thread re-reads the new deadline; the CPU side does the same after writing `stimecmp`.
//!
//! Left out: the ACLINT's separate SSWI (supervisor software interrupt) device, which Linux
//! does not need with SBI IPIs; the reset value of `mtimecmp` is implementation-defined and
//! is `u64::MAX` here (no timer interrupt until software programs one).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{le_value, put_le, HartInterrupts, MIP_MSIP, MIP_MTIP};
use crate::bus::BusDevice;

/// Base of the ACLINT on the virt machine.
pub const ACLINT_BASE: u64 = 0x0200_0000;
/// Length of the ACLINT's range.
pub const ACLINT_LEN: u64 = 0x1_0000;
/// Frequency of `mtime` in ticks per second (the device tree's `timebase-frequency`).
pub const TIMEBASE_HZ: u64 = 10_000_000;
/// Most harts the layout has room for: `msip` and `mtimecmp` each end where the next block
/// starts (`0x4000 / 4 - 1` and `(0xbff8 - 0x4000) / 8`).
pub const MAX_HARTS: usize = 4095;

// Register offsets.
/// First `msip` register (MSWI); hart `h`'s is at `MSIP_BASE + 4 * h`.
const MSIP_BASE: u64 = 0x0000;
/// First `mtimecmp` register (MTIMER); hart `h`'s is at `MTIMECMP_BASE + 8 * h`.
const MTIMECMP_BASE: u64 = 0x4000;
/// The `mtime` counter.
const MTIME: u64 = 0xbff8;
/// Only bit 0 of `msip` is writable; the other bits read as zero.
const MSIP_BIT: u32 = 1;

/// Errors from building an [`Aclint`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclintError {
    /// The hart count is 0 or above [`MAX_HARTS`].
    #[error("the ACLINT supports 1 to {MAX_HARTS} harts, not {0}")]
    HartCount(usize),
    /// A saved state whose per-hart arrays disagree in length.
    #[error("inconsistent ACLINT state: {msip} msip and {mtimecmp} mtimecmp registers")]
    InconsistentState { msip: usize, mtimecmp: usize },
}

pub use crate::clock::{Clock, HostClock};

/// Ticks of [`TIMEBASE_HZ`] in `d`, rounded down.
fn ticks_in(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(TIMEBASE_HZ) / 1_000_000_000) as u64
}

/// The shortest duration holding `ticks` whole ticks (rounded up, so that at the end of it
/// `mtime` has advanced by at least `ticks`).
fn duration_of(ticks: u64) -> Duration {
    let nanos = (u128::from(ticks) * 1_000_000_000).div_ceil(u128::from(TIMEBASE_HZ));
    Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    )
}

/// The platform time base: `mtime`, readable from any thread without a lock, plus the
/// "a deadline changed" signal the timer thread waits on.
///
/// `mtime = offset + ticks since epoch`, with both the guest's writes to `mtime` and restores
/// changing only `offset`, so reads are one clock read and one atomic load.
pub struct AclintTime {
    clock: Arc<dyn Clock>,
    epoch: Instant,
    /// `mtime` at `epoch`, wrapping.
    offset: AtomicU64,
    /// Bumped by [`AclintTime::notify`]; the timer thread waits for it to change.
    generation: Mutex<u64>,
    changed: Condvar,
}

impl std::fmt::Debug for AclintTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclintTime")
            .field("mtime", &self.mtime())
            .finish_non_exhaustive()
    }
}

impl AclintTime {
    /// A time base starting at `mtime = 0` now, counting from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let epoch = clock.now();
        Self {
            clock,
            epoch,
            offset: AtomicU64::new(0),
            generation: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    /// A time base counting from the host's monotonic clock.
    pub fn host() -> Self {
        Self::new(Arc::new(HostClock))
    }

    /// Ticks since the epoch at `now` (0 if the clock went backwards, which a monotonic
    /// clock does not).
    fn elapsed_ticks(&self, now: Instant) -> u64 {
        ticks_in(now.saturating_duration_since(self.epoch))
    }

    /// The current `mtime`: what the `time` CSR reads and what `stimecmp` compares with.
    pub fn mtime(&self) -> u64 {
        self.mtime_at(self.clock.now())
    }

    /// `mtime` at instant `now`.
    fn mtime_at(&self, now: Instant) -> u64 {
        self.offset
            .load(Ordering::Acquire)
            .wrapping_add(self.elapsed_ticks(now))
    }

    /// Sets `mtime` to `value` from now on (a guest write, or a restore), and wakes the timer
    /// thread since every deadline moved.
    pub fn set_mtime(&self, value: u64) {
        let elapsed = self.elapsed_ticks(self.clock.now());
        self.offset
            .store(value.wrapping_sub(elapsed), Ordering::Release);
        self.notify();
    }

    /// When `mtime >= cmp` will hold: `Some(now)` if it already does, `None` for
    /// `cmp == u64::MAX` (software's usual "timer off"; `mtime` would reach it only after
    /// 58 000 years) or a deadline the host `Instant` cannot represent.
    ///
    /// The comparison is unsigned, as the privileged spec's `mtime >= mtimecmp`.
    pub fn deadline_for(&self, cmp: u64) -> Option<Instant> {
        let now = self.clock.now();
        let mtime = self.mtime_at(now);
        if mtime >= cmp {
            return Some(now);
        }
        if cmp == u64::MAX {
            return None;
        }
        now.checked_add(duration_of(cmp - mtime))
    }

    /// The clock's current instant (the time the deadlines are expressed in).
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The current generation: read it before computing deadlines, then pass it to
    /// [`AclintTime::wait`].
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Says that some deadline changed (a write to `mtimecmp`, `mtime` or `stimecmp`, or the
    /// machine wanting its timer thread to look at a stop flag): wakes every
    /// [`AclintTime::wait`].
    pub fn notify(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *generation = generation.wrapping_add(1);
        self.changed.notify_all();
    }

    /// Blocks until the generation differs from `seen` or, with a deadline, until the host
    /// reaches it; returns the generation at return. `deadline` is in host `Instant`s: with a
    /// fake [`Clock`] only the generation is meaningful.
    pub fn wait(&self, seen: u64, deadline: Option<Instant>) -> u64 {
        let mut generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        while *generation == seen {
            match deadline {
                None => {
                    generation = self
                        .changed
                        .wait(generation)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    generation = self
                        .changed
                        .wait_timeout(generation, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        *generation
    }
}

/// Saved state of an [`Aclint`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclintState {
    /// Bit 0 of each hart's `msip`.
    pub msip: Vec<bool>,
    /// Each hart's `mtimecmp`.
    pub mtimecmp: Vec<u64>,
    /// `mtime` when the state was taken.
    pub mtime: u64,
}

/// The ACLINT device: MSWI and MTIMER for `harts` harts.
pub struct Aclint {
    time: Arc<AclintTime>,
    harts: Arc<dyn HartInterrupts>,
    msip: Vec<bool>,
    mtimecmp: Vec<u64>,
    /// The `MTIP` level last driven for each hart, so [`Aclint::poll`] signals changes only.
    mtip: Vec<AtomicBool>,
}

impl Aclint {
    /// An ACLINT for `hart_count` harts counting on `time` and driving `harts`, out of reset:
    /// no software interrupt, `mtimecmp = u64::MAX`.
    pub fn new(
        hart_count: usize,
        time: Arc<AclintTime>,
        harts: Arc<dyn HartInterrupts>,
    ) -> Result<Self, AclintError> {
        if hart_count == 0 || hart_count > MAX_HARTS {
            return Err(AclintError::HartCount(hart_count));
        }
        Ok(Self {
            time,
            harts,
            msip: vec![false; hart_count],
            mtimecmp: vec![u64::MAX; hart_count],
            mtip: (0..hart_count).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// The device's state, for snapshots.
    pub fn state(&self) -> AclintState {
        AclintState {
            msip: self.msip.clone(),
            mtimecmp: self.mtimecmp.clone(),
            mtime: self.time.mtime(),
        }
    }

    /// Rebuilds a device from a saved state: `time` is set to the saved `mtime`, and every
    /// hart's `MSIP` and `MTIP` wires are driven to match the state.
    pub fn from_state(
        state: &AclintState,
        time: Arc<AclintTime>,
        harts: Arc<dyn HartInterrupts>,
    ) -> Result<Self, AclintError> {
        if state.msip.len() != state.mtimecmp.len() {
            return Err(AclintError::InconsistentState {
                msip: state.msip.len(),
                mtimecmp: state.mtimecmp.len(),
            });
        }
        let mut aclint = Self::new(state.msip.len(), time, harts)?;
        aclint.msip.clone_from(&state.msip);
        aclint.mtimecmp.clone_from(&state.mtimecmp);
        aclint.time.set_mtime(state.mtime);
        for (hart, &level) in aclint.msip.iter().enumerate() {
            aclint.harts.set_pending(hart, MIP_MSIP, level);
        }
        for hart in 0..aclint.msip.len() {
            aclint.drive_mtip(hart, true);
        }
        Ok(aclint)
    }

    /// The number of harts.
    pub fn hart_count(&self) -> usize {
        self.msip.len()
    }

    /// The shared time base (for the harts' `time` CSR, Sstc and the timer thread).
    pub fn time(&self) -> &Arc<AclintTime> {
        &self.time
    }

    /// The current `mtime`.
    pub fn mtime(&self) -> u64 {
        self.time.mtime()
    }

    /// Re-evaluates every hart's `MTIP` level (`mtime >= mtimecmp`) and drives the wires that
    /// changed. The machine's timer thread calls it when a deadline passes.
    pub fn poll(&self) {
        for hart in 0..self.mtimecmp.len() {
            self.drive_mtip(hart, false);
        }
    }

    /// The earliest instant at which some hart's `MTIP` must rise, or `None` if no timer is
    /// armed. A deadline already passed (but not yet signalled by [`Aclint::poll`]) is
    /// returned as is, so the caller polls at once.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.mtimecmp
            .iter()
            .zip(&self.mtip)
            .filter(|(_, raised)| !raised.load(Ordering::Relaxed))
            .filter_map(|(&cmp, _)| self.time.deadline_for(cmp))
            .min()
    }

    /// Computes `hart`'s `MTIP` and drives it if it changed, or always with `force`.
    fn drive_mtip(&self, hart: usize, force: bool) {
        let level = self.time.mtime() >= self.mtimecmp[hart];
        let old = self.mtip[hart].swap(level, Ordering::Relaxed);
        if force || old != level {
            self.harts.set_pending(hart, MIP_MTIP, level);
        }
    }

    /// The 64-bit register at `offset & !7` (an `mtimecmp` or `mtime`), if any.
    fn read_u64(&self, reg: u64) -> Option<u64> {
        if reg == MTIME {
            return Some(self.time.mtime());
        }
        let hart = self.mtimecmp_hart(reg)?;
        Some(self.mtimecmp[hart])
    }

    /// The hart whose `mtimecmp` is at `reg`, if `reg` is one.
    fn mtimecmp_hart(&self, reg: u64) -> Option<usize> {
        let index = reg.checked_sub(MTIMECMP_BASE)? / 8;
        (reg < MTIME && (index as usize) < self.mtimecmp.len()).then_some(index as usize)
    }

    /// The hart whose `msip` is at `offset`, if it is one.
    fn msip_hart(&self, offset: u64) -> Option<usize> {
        let index = (offset - MSIP_BASE) / 4;
        (offset < MTIMECMP_BASE && (index as usize) < self.msip.len()).then_some(index as usize)
    }

    /// Stores `value` in the 64-bit register at `reg`.
    fn write_u64(&mut self, reg: u64, value: u64) {
        if reg == MTIME {
            self.time.set_mtime(value);
            self.poll();
        } else if let Some(hart) = self.mtimecmp_hart(reg) {
            self.mtimecmp[hart] = value;
            self.drive_mtip(hart, false);
            self.time.notify();
        }
    }
}

impl BusDevice for Aclint {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let len = data.len() as u64;
        let value = match len {
            4 if offset % 4 == 0 && offset < MTIMECMP_BASE => self
                .msip_hart(offset)
                .map(|hart| u64::from(self.msip[hart])),
            4 | 8 if offset % len == 0 => {
                self.read_u64(offset & !7).map(|v| v >> (8 * (offset & 4)))
            }
            _ => None,
        };
        match value {
            Some(value) => put_le(data, value),
            None => {
                log::debug!("aclint: unhandled {len}-byte read at {:#x}", base + offset);
                data.fill(0);
            }
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let len = data.len() as u64;
        let value = le_value(data);
        match len {
            4 if offset % 4 == 0 && offset < MTIMECMP_BASE => {
                if let Some(hart) = self.msip_hart(offset) {
                    let level = value as u32 & MSIP_BIT != 0;
                    self.msip[hart] = level;
                    self.harts.set_pending(hart, MIP_MSIP, level);
                    return;
                }
            }
            8 if offset % 8 == 0 && self.read_u64(offset).is_some() => {
                self.write_u64(offset, value);
                return;
            }
            4 if offset % 4 == 0 => {
                let reg = offset & !7;
                if let Some(old) = self.read_u64(reg) {
                    // Replace one half, keeping the other as it is now.
                    let shift = 8 * (offset & 4);
                    let new = (old & !(0xffff_ffff << shift)) | (value << shift);
                    self.write_u64(reg, new);
                    return;
                }
            }
            _ => {}
        }
        log::debug!(
            "aclint: ignored {len}-byte write of {value:#x} at {:#x}",
            base + offset
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::riscv::RecordingHarts;

    /// A clock that moves only when told to.
    struct FakeClock {
        start: Instant,
        nanos: AtomicU64,
    }

    impl FakeClock {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                start: Instant::now(),
                nanos: AtomicU64::new(0),
            })
        }

        fn advance(&self, d: Duration) {
            self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
        }
    }

    struct Rig {
        aclint: Aclint,
        clock: Arc<FakeClock>,
        harts: Arc<RecordingHarts>,
    }

    fn rig(hart_count: usize) -> Rig {
        let clock = FakeClock::new();
        let harts = Arc::new(RecordingHarts::default());
        let time = Arc::new(AclintTime::new(clock.clone()));
        let aclint = Aclint::new(hart_count, time, harts.clone()).unwrap();
        Rig {
            aclint,
            clock,
            harts,
        }
    }

    fn read(aclint: &mut Aclint, offset: u64, len: usize) -> u64 {
        let mut buf = vec![0u8; len];
        aclint.read(ACLINT_BASE, offset, &mut buf);
        le_value(&buf)
    }

    fn write(aclint: &mut Aclint, offset: u64, len: usize, value: u64) {
        aclint.write(ACLINT_BASE, offset, &value.to_le_bytes()[..len]);
    }

    #[test]
    fn mtime_counts_at_the_timebase_from_the_host_clock() {
        let mut r = rig(1);
        assert_eq!(read(&mut r.aclint, MTIME, 8), 0);
        r.clock.advance(Duration::from_millis(1));
        assert_eq!(read(&mut r.aclint, MTIME, 8), TIMEBASE_HZ / 1000);
        assert_eq!(r.aclint.mtime(), 10_000);
        assert_eq!(r.aclint.time().mtime(), 10_000);
        // A partial tick does not count yet.
        r.clock.advance(Duration::from_nanos(99));
        assert_eq!(r.aclint.mtime(), 10_000);
        r.clock.advance(Duration::from_nanos(1));
        assert_eq!(r.aclint.mtime(), 10_001);
    }

    #[test]
    fn mtime_can_be_written_whole_or_by_halves_and_keeps_counting() {
        let mut r = rig(1);
        write(&mut r.aclint, MTIME, 8, 0x1_0000_0000);
        r.clock.advance(Duration::from_micros(1));
        assert_eq!(read(&mut r.aclint, MTIME, 8), 0x1_0000_000a);
        assert_eq!(read(&mut r.aclint, MTIME, 4), 0xa);
        assert_eq!(read(&mut r.aclint, MTIME + 4, 4), 1);
        write(&mut r.aclint, MTIME + 4, 4, 5);
        assert_eq!(r.aclint.mtime(), 0x5_0000_000a);
        write(&mut r.aclint, MTIME, 4, 0x20);
        assert_eq!(r.aclint.mtime(), 0x5_0000_0020);
    }

    #[test]
    fn msip_bit_0_drives_the_harts_software_interrupt() {
        let mut r = rig(2);
        write(&mut r.aclint, MSIP_BASE + 4, 4, 0xffff_ffff);
        assert!(r.harts.is_pending(1, MIP_MSIP));
        assert!(!r.harts.is_pending(0, MIP_MSIP));
        // Only bit 0 is implemented.
        assert_eq!(read(&mut r.aclint, MSIP_BASE + 4, 4), 1);
        write(&mut r.aclint, MSIP_BASE + 4, 4, 2);
        assert!(!r.harts.is_pending(1, MIP_MSIP));
        assert_eq!(read(&mut r.aclint, MSIP_BASE + 4, 4), 0);
    }

    #[test]
    fn registers_of_absent_harts_read_zero_and_ignore_writes() {
        let mut r = rig(2);
        write(&mut r.aclint, MSIP_BASE + 8, 4, 1);
        write(&mut r.aclint, MTIMECMP_BASE + 16, 8, 0);
        assert_eq!(read(&mut r.aclint, MSIP_BASE + 8, 4), 0);
        assert_eq!(read(&mut r.aclint, MTIMECMP_BASE + 16, 8), 0);
        assert!(r.harts.calls().is_empty());
        // Misaligned and odd-sized accesses are ignored too.
        write(&mut r.aclint, MSIP_BASE + 1, 1, 1);
        write(&mut r.aclint, MTIMECMP_BASE + 4, 8, 0);
        assert!(r.harts.calls().is_empty());
        assert_eq!(read(&mut r.aclint, MTIMECMP_BASE, 8), u64::MAX);
    }

    #[test]
    fn mtimecmp_resets_to_never_and_reads_back_whole_or_by_halves() {
        let mut r = rig(2);
        assert_eq!(read(&mut r.aclint, MTIMECMP_BASE + 8, 8), u64::MAX);
        write(&mut r.aclint, MTIMECMP_BASE + 8, 8, 0x1234_5678_9abc_def0);
        assert_eq!(read(&mut r.aclint, MTIMECMP_BASE + 8, 4), 0x9abc_def0);
        assert_eq!(read(&mut r.aclint, MTIMECMP_BASE + 12, 4), 0x1234_5678);
        write(&mut r.aclint, MTIMECMP_BASE + 12, 4, 0xffff_ffff);
        assert_eq!(
            read(&mut r.aclint, MTIMECMP_BASE + 8, 8),
            0xffff_ffff_9abc_def0
        );
        assert!(r.harts.calls().is_empty(), "no timer fired");
    }

    #[test]
    fn mtip_is_the_level_mtime_at_or_past_mtimecmp() {
        let mut r = rig(1);
        write(&mut r.aclint, MTIMECMP_BASE, 8, 100);
        assert!(!r.harts.is_pending(0, MIP_MTIP));
        r.clock.advance(duration_of(99));
        r.aclint.poll();
        assert!(!r.harts.is_pending(0, MIP_MTIP));
        r.clock.advance(duration_of(1));
        r.aclint.poll();
        assert!(r.harts.is_pending(0, MIP_MTIP), "mtime == mtimecmp fires");
        // Writing a later compare value lowers the wire at once.
        write(&mut r.aclint, MTIMECMP_BASE, 8, 1000);
        assert!(!r.harts.is_pending(0, MIP_MTIP));
        // Writing one already passed raises it at once.
        write(&mut r.aclint, MTIMECMP_BASE, 8, 0);
        assert!(r.harts.is_pending(0, MIP_MTIP));
    }

    #[test]
    fn poll_signals_only_changes() {
        let mut r = rig(2);
        write(&mut r.aclint, MTIMECMP_BASE, 8, 10);
        r.clock.advance(duration_of(10));
        r.aclint.poll();
        r.aclint.poll();
        assert_eq!(r.harts.calls(), vec![(0, MIP_MTIP, true)]);
    }

    #[test]
    fn next_deadline_is_when_the_earliest_armed_timer_fires() {
        let mut r = rig(2);
        assert_eq!(r.aclint.next_deadline(), None, "nothing armed at reset");
        let start = r.clock.now();
        write(&mut r.aclint, MTIMECMP_BASE, 8, 50);
        write(&mut r.aclint, MTIMECMP_BASE + 8, 8, 20);
        assert_eq!(r.aclint.next_deadline(), Some(start + duration_of(20)));
        // Once hart 1's timer has fired, it no longer holds the deadline back.
        r.clock.advance(duration_of(20));
        assert_eq!(r.aclint.next_deadline(), Some(r.clock.now()), "due now");
        r.aclint.poll();
        assert_eq!(r.aclint.next_deadline(), Some(start + duration_of(50)));
    }

    #[test]
    fn deadlines_round_up_to_a_whole_tick() {
        let clock = FakeClock::new();
        let time = AclintTime::new(clock.clone());
        let deadline = time.deadline_for(3).unwrap();
        assert_eq!(deadline - clock.now(), Duration::from_nanos(300));
        clock.advance(Duration::from_nanos(299));
        assert_eq!(time.mtime(), 2);
        clock.advance(Duration::from_nanos(1));
        assert_eq!(time.mtime(), 3);
        assert_eq!(time.deadline_for(u64::MAX), None, "never");
    }

    #[test]
    fn writes_to_the_timer_wake_the_timer_thread() {
        let r = rig(1);
        let time = r.aclint.time().clone();
        let seen = time.generation();
        let aclint = Arc::new(Mutex::new(r.aclint));
        let writer = {
            let aclint = aclint.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                write(&mut aclint.lock().unwrap(), MTIMECMP_BASE, 8, 5);
            })
        };
        // Without the write this would block forever.
        assert_ne!(time.wait(seen, None), seen);
        writer.join().unwrap();
        // A passed deadline returns at once with the generation unchanged.
        let seen = time.generation();
        assert_eq!(time.wait(seen, Some(Instant::now())), seen);
    }

    #[test]
    fn state_round_trips_and_restore_drives_the_wires() {
        let mut r = rig(2);
        write(&mut r.aclint, MSIP_BASE + 4, 4, 1);
        write(&mut r.aclint, MTIMECMP_BASE, 8, 7);
        r.clock.advance(duration_of(10));
        let state = r.aclint.state();
        assert_eq!(
            state,
            AclintState {
                msip: vec![false, true],
                mtimecmp: vec![7, u64::MAX],
                mtime: 10,
            }
        );
        let clock = FakeClock::new();
        let harts = Arc::new(RecordingHarts::default());
        let time = Arc::new(AclintTime::new(clock.clone()));
        let restored = Aclint::from_state(&state, time, harts.clone()).unwrap();
        assert_eq!(restored.state(), state);
        assert_eq!(harts.mip(0), MIP_MTIP);
        assert_eq!(harts.mip(1), MIP_MSIP);
    }

    #[test]
    fn bad_hart_counts_and_states_are_errors() {
        let time = Arc::new(AclintTime::host());
        let harts = Arc::new(RecordingHarts::default());
        assert_eq!(
            Aclint::new(0, time.clone(), harts.clone()).err(),
            Some(AclintError::HartCount(0))
        );
        assert!(Aclint::new(MAX_HARTS, time.clone(), harts.clone()).is_ok());
        assert!(Aclint::new(MAX_HARTS + 1, time.clone(), harts.clone()).is_err());
        let state = AclintState {
            msip: vec![false],
            mtimecmp: vec![],
            mtime: 0,
        };
        assert!(matches!(
            Aclint::from_state(&state, time, harts),
            Err(AclintError::InconsistentState { .. })
        ));
    }

    #[test]
    fn the_last_hart_fits_below_mtime() {
        let mut r = rig(MAX_HARTS);
        let last = MAX_HARTS as u64 - 1;
        write(&mut r.aclint, MTIMECMP_BASE + 8 * last, 8, 42);
        assert_eq!(read(&mut r.aclint, MTIMECMP_BASE + 8 * last, 8), 42);
        assert_eq!(MTIMECMP_BASE + 8 * last + 8, MTIME);
        write(&mut r.aclint, MSIP_BASE + 4 * last, 4, 1);
        assert!(r.harts.is_pending(MAX_HARTS - 1, MIP_MSIP));
    }
}
