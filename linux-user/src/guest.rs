//! The user-mode guest: one `Guest` implementation over the process's address space for
//! every architecture ([`UserGuest`]), how a run of guest code ends (the `Vcpu::run` return
//! codes the driver in `lib.rs` serves) and how a synchronous signal is recorded in the CPU
//! state until the driver delivers it.
//!
//! Each architecture (`riscv64.rs`, `x86_64.rs`) provides only what differs, as a
//! [`UserArch`]: its CPU state and translator, which exits and exceptions become which
//! signals, and where in its CPU state the fault address lives.

use std::marker::PhantomData;
use std::sync::Arc;

use accel_tcg::{Access, Action, CodeReader, CpuState, Guest, MemFault, PageMapping};
use ir::{Builder, GlobalDef, Type};

use crate::signal::{self, sig, SigInfo};
use crate::space::AddressSpace;

/// What one guest architecture contributes to the user-mode guest.
pub trait UserArch: Send + Sync + 'static {
    /// The CPU state.
    type Cpu: CpuState;
    /// Byte offset of the pc in the CPU state (the block key's pc).
    const PC_OFFSET: u32;
    /// The CPU state's globals.
    fn globals() -> Arc<[GlobalDef]>;
    /// The pc.
    fn pc(cpu: &Self::Cpu) -> u64;
    /// Translates the block at `pc` (user mode).
    fn translate(
        pc: u64,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault>;
    /// Puts `cpu` back at the instruction of an `insn_start`.
    fn restore_state(cpu: &mut Self::Cpu, pc: u64, extra: u64);
    /// Records the signal a memory fault at `vaddr` raises.
    fn raise(cpu: &mut Self::Cpu, fault: MemFault, vaddr: u64);
    /// What a frontend exit means (a system call, or a signal recorded in the state).
    fn on_exit(cpu: &mut Self::Cpu, reason: u32) -> Action;
    /// What an exception recorded by translated code means.
    fn on_exception(cpu: &mut Self::Cpu) -> Action;
    /// One instruction's text and length, for `--log in_asm`.
    fn disassemble(pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)>;
}

/// The user-mode guest of architecture `A`: translated code over the process's address
/// space (page walks answered by its VMA table), every event that needs the kernel handed
/// back to the driver.
pub struct UserGuest<A> {
    space: Arc<AddressSpace>,
    globals: Arc<[GlobalDef]>,
    arch: PhantomData<fn() -> A>,
}

impl<A: UserArch> UserGuest<A> {
    /// A guest whose memory is `space`.
    pub fn new(space: Arc<AddressSpace>) -> UserGuest<A> {
        UserGuest {
            space,
            globals: A::globals(),
            arch: PhantomData,
        }
    }
}

impl<A: UserArch> Guest for UserGuest<A> {
    type Cpu = A::Cpu;

    fn globals(&self) -> Arc<[GlobalDef]> {
        self.globals.clone()
    }

    fn addr_type(&self) -> Type {
        Type::I64
    }

    fn block_key(&self, cpu: &A::Cpu) -> (u64, u32) {
        (A::pc(cpu), 0)
    }

    fn pc_offset(&self) -> Option<u32> {
        Some(A::PC_OFFSET)
    }

    fn code_mmu_idx(&self, _flags: u32) -> u8 {
        0
    }

    fn translate(
        &self,
        pc: u64,
        _flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        A::translate(pc, code, b, max_insns)
    }

    fn restore_state(&self, cpu: &mut A::Cpu, pc: u64, extra: u64) {
        A::restore_state(cpu, pc, extra);
    }

    fn page_walk(
        &self,
        _cpu: &mut A::Cpu,
        vaddr: u64,
        access: Access,
        _mmu_idx: u8,
    ) -> Result<PageMapping, MemFault> {
        self.space.walk(vaddr, access)
    }

    fn raise(&self, cpu: &mut A::Cpu, fault: MemFault, vaddr: u64, _access: Access) {
        A::raise(cpu, fault, vaddr);
    }

    fn on_exit(&self, cpu: &mut A::Cpu, reason: u32) -> Action {
        A::on_exit(cpu, reason)
    }

    fn on_exception(&self, cpu: &mut A::Cpu) -> Action {
        A::on_exception(cpu)
    }

    fn on_exit_request(&self, _cpu: &mut A::Cpu) -> Action {
        on_exit_request()
    }

    fn disassemble(&self, pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        A::disassemble(pc, code)
    }
}

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
