//! Host monotonic time for device models with timers (the riscv64 ACLINT, the PC's PIT, local
//! APIC timer and HPET): a trait so that tests and deterministic runs can drive time by hand.
//!
//! Timer devices never sleep or spawn threads themselves. They answer two questions for the
//! machine that owns them: `poll(now)` (raise whatever interrupt is due) and
//! `next_deadline()` (when to call `poll` next); the machine's timer thread (or, under the
//! JIT, its vCPU loop) does the waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A host monotonic clock: [`HostClock`] in a machine, [`ManualClock`] in tests.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// [`Clock`] reading `Instant::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostClock;

impl Clock for HostClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A [`Clock`] that stands still until told to move: time in tests is exact.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock reading the host's current instant, frozen there.
    pub fn new() -> ManualClock {
        ManualClock {
            now: Mutex::new(Instant::now()),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new();
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_micros(1500));
        assert_eq!(c.now() - t0, Duration::from_micros(1500));
    }
}
