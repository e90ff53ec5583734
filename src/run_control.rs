//! How a running machine decides that it is done, and with what outcome.
//!
//! Any thread may end the run: a device (power-off, reset, debug-exit, Ctrl-A x) through
//! [`devices::exit::ExitRequester`], a vCPU thread when its guest crashed, or the main thread
//! when the wall-clock limit passes. The first outcome wins; the main thread waits for it and
//! then stops the vCPUs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use devices::exit::{ExitReason, ExitRequester};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest powered off.
    PowerOff,
    /// The guest reset the machine (tern has no firmware to reboot into, so the run ends).
    Reset,
    /// The guest wrote `value` to the isa-debug-exit port.
    DebugExit(u32),
    /// The user typed Ctrl-A x.
    UserQuit,
    /// The guest crashed (triple fault, KVM internal error): what happened, for the user.
    GuestCrash(String),
    /// The `--timeout` wall-clock limit passed.
    Timeout(Duration),
    /// The run ended but some vCPU could not be stopped: what happened.
    Unresponsive(String),
}

impl Outcome {
    /// tern's exit status for this outcome (see the README's table).
    pub fn exit_status(&self) -> i32 {
        match self {
            Outcome::PowerOff | Outcome::Reset | Outcome::UserQuit => 0,
            // QEMU's isa-debug-exit convention; the shell sees the low 8 bits.
            Outcome::DebugExit(value) => ((value << 1) | 1) as i32 & 0xff,
            Outcome::GuestCrash(_) => 4,
            Outcome::Timeout(_) | Outcome::Unresponsive(_) => 6,
        }
    }
}

/// The shared "is the run over?" state.
#[derive(Default)]
pub struct RunControl {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
    stopping: AtomicBool,
}

impl RunControl {
    /// Ends the run with `outcome` unless it already ended.
    pub fn finish(&self, outcome: Outcome) {
        let mut slot = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            log::info!("run ends: {outcome:?}");
            *slot = Some(outcome);
            self.stopping.store(true, Ordering::SeqCst);
            self.done.notify_all();
        }
    }

    /// Whether vCPU threads should leave their loops.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Whether the run ended by reaching its time limit.
    pub fn timed_out(&self) -> bool {
        matches!(
            *self.outcome.lock().unwrap_or_else(|p| p.into_inner()),
            Some(Outcome::Timeout(_))
        )
    }

    /// Waits for the outcome; after `limit` (if any) the run ends with [`Outcome::Timeout`].
    pub fn wait(&self, limit: Option<Duration>) -> Outcome {
        let deadline = limit.map(|l| (Instant::now() + l, l));
        let mut slot = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            match deadline {
                None => slot = self.done.wait(slot).unwrap_or_else(|p| p.into_inner()),
                Some((at, limit)) => {
                    let now = Instant::now();
                    if now >= at {
                        drop(slot);
                        self.finish(Outcome::Timeout(limit));
                        slot = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
                        continue;
                    }
                    slot = self
                        .done
                        .wait_timeout(slot, at - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

impl ExitRequester for RunControl {
    fn request_exit(&self, reason: ExitReason) {
        self.finish(match reason {
            ExitReason::PowerOff => Outcome::PowerOff,
            ExitReason::Reset => Outcome::Reset,
            ExitReason::DebugExit(value) => Outcome::DebugExit(value),
            ExitReason::UserQuit => Outcome::UserQuit,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn exit_statuses_follow_the_documented_table() {
        assert_eq!(Outcome::PowerOff.exit_status(), 0);
        assert_eq!(Outcome::Reset.exit_status(), 0);
        assert_eq!(Outcome::DebugExit(0x2a).exit_status(), 85);
        assert_eq!(Outcome::DebugExit(0).exit_status(), 1);
        assert_eq!(Outcome::GuestCrash("x".into()).exit_status(), 4);
        assert_eq!(Outcome::Timeout(Duration::ZERO).exit_status(), 6);
    }

    #[test]
    fn first_outcome_wins_and_wakes_the_waiter() {
        let rc = Arc::new(RunControl::default());
        let rc2 = rc.clone();
        let t = std::thread::spawn(move || rc2.wait(None));
        rc.request_exit(ExitReason::DebugExit(3));
        rc.request_exit(ExitReason::PowerOff);
        assert_eq!(t.join().unwrap(), Outcome::DebugExit(3));
        assert!(rc.stopping());
    }

    #[test]
    fn a_time_limit_ends_the_run() {
        let rc = RunControl::default();
        let limit = Duration::from_millis(20);
        assert_eq!(rc.wait(Some(limit)), Outcome::Timeout(limit));
    }
}
