//! What the riscv64 and x86_64 user-mode guests share: how a run of guest code ends (the
//! `Vcpu::run` return codes the driver in `lib.rs` serves) and how a synchronous signal is
//! recorded in the CPU state until the driver delivers it.
//!
//! Each architecture's `Guest` impl (`riscv64.rs`, `x86_64.rs`) keeps only what differs:
//! its translator, which exits and exceptions become which signals, and where in its CPU
//! state the fault address lives.

use accel_tcg::Action;

use crate::signal::{self, sig, SigInfo};

/// `Vcpu::run` return code: the guest made a system call (`ecall`, `syscall`).
pub const RET_SYSCALL: u32 = 1;
/// `Vcpu::run` return code: a synchronous signal is recorded in the CPU state.
pub const RET_FAULT: u32 = 2;
/// `Vcpu::run` return code: a host signal waits for the guest.
pub const RET_INTERRUPT: u32 = 3;

/// Packs a fault signal and its `si_code` into the CPU state's cause word: the signal in the
/// high half, so it never looks like an exception number a frontend helper stores there.
pub fn encode_cause(signo: u32, code: i32) -> u64 {
    u64::from(signo) << 32 | u64::from(code as u32)
}

/// The signal [`encode_cause`] packed into `cause`, for fault address `addr`; SIGSEGV when
/// `cause` holds no valid signal number.
pub fn decode_cause(cause: u64, addr: u64) -> SigInfo {
    let signo = (cause >> 32) as u32;
    let signo = if signo == 0 || signo as usize > signal::NSIG {
        sig::SIGSEGV
    } else {
        signo
    };
    SigInfo::fault(signo, cause as u32 as i32, addr)
}

/// What a guest does when another thread asked its vCPU to stop: hand host signals to the
/// driver, or go on (the request was for something else).
pub fn on_exit_request() -> Action {
    if signal::host_signals_pending() {
        Action::Return(RET_INTERRUPT)
    } else {
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::si;

    #[test]
    fn causes_round_trip_and_garbage_becomes_sigsegv() {
        let c = encode_cause(sig::SIGBUS, si::BUS_ADRALN);
        assert_eq!(
            decode_cause(c, 0x43),
            SigInfo::fault(sig::SIGBUS, si::BUS_ADRALN, 0x43)
        );
        assert_eq!(
            decode_cause(13, 0).signo,
            sig::SIGSEGV,
            "an exception number"
        );
        assert_eq!(
            decode_cause(99 << 32, 0).signo,
            sig::SIGSEGV,
            "no such signal"
        );
    }
}
