//! Guest signals: the actions the guest installed, its mask and pending set, the alternate
//! stack, and delivery and return from handlers. The architecture-specific half (the
//! `rt_sigframe` layout, which registers carry what) is the [`UserCpu`] trait; the riscv64
//! frame is here, the x86_64 one in [`crate::x86_64`].
//!
//! Signal numbers, `sa_flags` bits and `siginfo_t` are the asm-generic ones, which riscv64
//! and x86_64 share. Synchronous faults (SIGSEGV, SIGBUS, SIGILL, SIGTRAP) are delivered at once
//! by the driver; signals from `kill`/`tgkill` to the process itself and host signals forwarded
//! to the guest wait in the pending set until they are unblocked.
//!
//! Host signals: [`install_host_handlers`] makes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and
//! SIGUSR2 sent to tern reach the guest: the host handler records the signal in a process-wide
//! set and asks the vCPU to leave translated code; the driver then moves it to the guest's
//! pending set. Host SIGPIPE is ignored so that a write to a closed pipe returns EPIPE, which
//! the write system calls turn into a guest SIGPIPE as Linux would.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use accel_tcg::ExitRequester;
use frontend::riscv64::Riscv64Cpu;

use crate::space::{AddressSpace, SpaceError};

/// Highest signal number (real-time signals included).
pub const NSIG: usize = 64;

/// Signal numbers (asm-generic).
pub mod sig {
    /// Hangup.
    pub const SIGHUP: u32 = 1;
    /// Interrupt (Ctrl-C).
    pub const SIGINT: u32 = 2;
    /// Quit.
    pub const SIGQUIT: u32 = 3;
    /// Illegal instruction.
    pub const SIGILL: u32 = 4;
    /// Breakpoint.
    pub const SIGTRAP: u32 = 5;
    /// abort().
    pub const SIGABRT: u32 = 6;
    /// Bus error (misaligned atomic).
    pub const SIGBUS: u32 = 7;
    /// Arithmetic exception.
    pub const SIGFPE: u32 = 8;
    /// Kill (cannot be caught).
    pub const SIGKILL: u32 = 9;
    /// User signal 1.
    pub const SIGUSR1: u32 = 10;
    /// Segmentation fault.
    pub const SIGSEGV: u32 = 11;
    /// User signal 2.
    pub const SIGUSR2: u32 = 12;
    /// Write to a pipe with no reader.
    pub const SIGPIPE: u32 = 13;
    /// Timer.
    pub const SIGALRM: u32 = 14;
    /// Termination.
    pub const SIGTERM: u32 = 15;
    /// Child status changed.
    pub const SIGCHLD: u32 = 17;
    /// Continue.
    pub const SIGCONT: u32 = 18;
    /// Stop (cannot be caught).
    pub const SIGSTOP: u32 = 19;
    /// Terminal stop.
    pub const SIGTSTP: u32 = 20;
    /// Background read.
    pub const SIGTTIN: u32 = 21;
    /// Background write.
    pub const SIGTTOU: u32 = 22;
    /// Urgent socket data.
    pub const SIGURG: u32 = 23;
    /// Window size change.
    pub const SIGWINCH: u32 = 28;
}
use sig::*;

/// `sa_flags` bits.
pub mod sa {
    /// Handler takes (signo, siginfo, ucontext).
    pub const SIGINFO: u64 = 0x4;
    /// `restorer` is valid (x86_64: glibc always sets it).
    pub const RESTORER: u64 = 0x0400_0000;
    /// Run the handler on the alternate stack.
    pub const ONSTACK: u64 = 0x0800_0000;
    /// Restart interrupted system calls (not done: calls return EINTR).
    pub const RESTART: u64 = 0x1000_0000;
    /// Do not block the signal in its own handler.
    pub const NODEFER: u64 = 0x4000_0000;
    /// Reset to the default action on delivery.
    pub const RESETHAND: u64 = 0x8000_0000;
}

/// `si_code` values used here.
pub mod si {
    /// Sent by kill().
    pub const USER: i32 = 0;
    /// Sent by tkill()/tgkill().
    pub const TKILL: i32 = -6;
    /// Address not mapped.
    pub const SEGV_MAPERR: i32 = 1;
    /// Permission denied.
    pub const SEGV_ACCERR: i32 = 2;
    /// Misaligned address.
    pub const BUS_ADRALN: i32 = 1;
    /// Non-existent physical address.
    pub const BUS_ADRERR: i32 = 2;
    /// Illegal opcode.
    pub const ILL_ILLOPC: i32 = 1;
    /// Breakpoint.
    pub const TRAP_BRKPT: i32 = 1;
    /// Illegal operand (x86 #UD).
    pub const ILL_ILLOPN: i32 = 2;
    /// Integer divide by zero (x86 #DE).
    pub const FPE_INTDIV: i32 = 1;
    /// Sent by the kernel itself (x86 int3, #GP).
    pub const KERNEL: i32 = 0x80;
}

/// `SIG_DFL`.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN`.
pub const SIG_IGN: u64 = 1;
/// `ss_flags`: currently on the alternate stack.
pub const SS_ONSTACK: u32 = 1;
/// `ss_flags`: alternate stack disabled.
pub const SS_DISABLE: u32 = 2;
/// Smallest alternate stack Linux accepts.
pub const MINSIGSTKSZ: u64 = 2048;

/// Errors of signal bookkeeping (they become errnos).
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Bad signal number or flags.
    #[error("invalid signal argument")]
    Invalid,
    /// Changing the alternate stack while running on it.
    #[error("alternate signal stack in use")]
    Busy,
    /// Alternate stack smaller than MINSIGSTKSZ.
    #[error("alternate signal stack too small")]
    TooSmall,
}

impl SignalError {
    /// The Linux errno.
    pub fn errno(&self) -> i32 {
        match self {
            SignalError::Invalid => libc::EINVAL,
            SignalError::Busy => libc::EPERM,
            SignalError::TooSmall => libc::ENOMEM,
        }
    }
}

/// The name of a signal, for reports.
pub fn name(signo: u32) -> String {
    let n = match signo {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGILL => "SIGILL",
        SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT",
        SIGBUS => "SIGBUS",
        SIGFPE => "SIGFPE",
        SIGKILL => "SIGKILL",
        SIGUSR1 => "SIGUSR1",
        SIGSEGV => "SIGSEGV",
        SIGUSR2 => "SIGUSR2",
        SIGPIPE => "SIGPIPE",
        SIGALRM => "SIGALRM",
        SIGTERM => "SIGTERM",
        SIGCHLD => "SIGCHLD",
        SIGCONT => "SIGCONT",
        SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP",
        SIGURG => "SIGURG",
        SIGWINCH => "SIGWINCH",
        _ => return format!("signal {signo}"),
    };
    n.to_string()
}

fn bit(signo: u32) -> u64 {
    1u64 << (signo - 1)
}

/// Signals that can be neither caught nor blocked.
const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// One installed action (the kernel's `struct sigaction`: handler, flags, mask, and on x86_64
/// the `sa_restorer` handlers return to; riscv64 has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigAction {
    /// Handler address, SIG_DFL or SIG_IGN.
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
    /// `sa_restorer` (x86_64, with SA_RESTORER): where the handler returns; 0 if none.
    pub restorer: u64,
}

/// What a signal's default action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// Nothing.
    Ignore,
    /// The process ends (with or without a core dump; tern writes no core).
    Terminate,
}

/// The default action of `signo`. Stop signals are treated as ignored: a user-mode emulator
/// has no job control to stop for.
pub fn default_action(signo: u32) -> Default {
    match signo {
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH | SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => {
            Default::Ignore
        }
        _ => Default::Terminate,
    }
}

/// The parts of `siginfo_t` tern fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigInfo {
    /// Signal number.
    pub signo: u32,
    /// `si_code`.
    pub code: i32,
    /// Faulting address (SIGSEGV, SIGBUS, SIGILL, SIGTRAP), else 0.
    pub addr: u64,
    /// Sender pid (kill, tgkill), else 0.
    pub pid: u32,
    /// Sender uid.
    pub uid: u32,
    /// Whether `addr` (rather than pid/uid) is the meaningful union member.
    pub fault: bool,
}

impl SigInfo {
    /// A fault-type siginfo.
    pub fn fault(signo: u32, code: i32, addr: u64) -> SigInfo {
        SigInfo {
            signo,
            code,
            addr,
            fault: true,
            ..SigInfo::default()
        }
    }

    /// A siginfo for a signal sent by a process.
    pub fn sent(signo: u32, code: i32, pid: u32, uid: u32) -> SigInfo {
        SigInfo {
            signo,
            code,
            pid,
            uid,
            ..SigInfo::default()
        }
    }

    /// The 128-byte `siginfo_t`.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        if self.fault {
            b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        } else {
            b[16..20].copy_from_slice(&self.pid.to_le_bytes());
            b[20..24].copy_from_slice(&self.uid.to_le_bytes());
        }
        b
    }
}

/// The alternate signal stack (`stack_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AltStack {
    /// Base.
    pub sp: u64,
    /// `SS_*` flags as set (SS_DISABLE or 0).
    pub flags: u32,
    /// Size.
    pub size: u64,
}

impl std::default::Default for AltStack {
    fn default() -> Self {
        AltStack {
            sp: 0,
            flags: SS_DISABLE,
            size: 0,
        }
    }
}

/// What delivering a signal came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A handler frame was built; the CPU now runs the handler.
    Handler,
    /// Ignored (explicitly or by default).
    Ignored,
    /// The process dies of this signal.
    Fatal(SigInfo),
}

/// The guest's signal state (one thread).
#[derive(Debug, Clone)]
pub struct SignalState {
    actions: [SigAction; NSIG + 1],
    /// Blocked signals (bit signo-1).
    pub mask: u64,
    pending: Vec<SigInfo>,
    /// The alternate stack.
    pub altstack: AltStack,
    /// Guest address of the `rt_sigreturn` trampoline that handlers return to.
    pub trampoline: u64,
}

impl SignalState {
    /// Every action default, nothing blocked or pending.
    pub fn new(trampoline: u64) -> SignalState {
        SignalState {
            actions: [SigAction::default(); NSIG + 1],
            mask: 0,
            pending: Vec::new(),
            altstack: AltStack::default(),
            trampoline,
        }
    }

    /// The action of `signo`.
    pub fn action(&self, signo: u32) -> Result<SigAction, SignalError> {
        if signo == 0 || signo as usize > NSIG {
            return Err(SignalError::Invalid);
        }
        Ok(self.actions[signo as usize])
    }

    /// `rt_sigaction`: installs `new` (if any), returns the old action.
    pub fn set_action(
        &mut self,
        signo: u32,
        new: Option<SigAction>,
    ) -> Result<SigAction, SignalError> {
        let old = self.action(signo)?;
        if let Some(mut new) = new {
            if signo == SIGKILL || signo == SIGSTOP {
                return Err(SignalError::Invalid);
            }
            new.mask &= !UNBLOCKABLE;
            self.actions[signo as usize] = new;
            if new.handler == SIG_IGN
                || (new.handler == SIG_DFL && default_action(signo) == Default::Ignore)
            {
                self.pending.retain(|p| p.signo != signo);
            }
        }
        Ok(old)
    }

    /// `rt_sigprocmask` with `how` (0 block, 1 unblock, 2 set); returns the old mask.
    pub fn set_mask(&mut self, how: u64, set: Option<u64>) -> Result<u64, SignalError> {
        let old = self.mask;
        if let Some(set) = set {
            self.mask = match how {
                0 => old | set,
                1 => old & !set,
                2 => set,
                _ => return Err(SignalError::Invalid),
            } & !UNBLOCKABLE;
        }
        Ok(old)
    }

    /// Signals pending (for `rt_sigpending`).
    pub fn pending_set(&self) -> u64 {
        self.pending.iter().fold(0, |m, p| m | bit(p.signo))
    }

    /// Queues `info` unless the signal is ignored; a standard signal already pending is not
    /// queued twice.
    pub fn queue(&mut self, info: SigInfo) {
        let act = self.actions[info.signo as usize];
        if act.handler == SIG_IGN
            || (act.handler == SIG_DFL && default_action(info.signo) == Default::Ignore)
        {
            return;
        }
        if info.signo < 32 && self.pending.iter().any(|p| p.signo == info.signo) {
            return;
        }
        self.pending.push(info);
    }

    /// Takes the lowest-numbered pending signal that is not blocked.
    pub fn take_deliverable(&mut self) -> Option<SigInfo> {
        let i = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, p)| self.mask & bit(p.signo) == 0)
            .min_by_key(|(_, p)| p.signo)
            .map(|(i, _)| i)?;
        Some(self.pending.remove(i))
    }

    /// `sigaltstack`: installs `new` (if any) given the current `sp`; returns the old setting
    /// with SS_ONSTACK when `sp` is on it.
    pub fn set_altstack(
        &mut self,
        sp: u64,
        new: Option<AltStack>,
    ) -> Result<AltStack, SignalError> {
        let mut old = self.altstack;
        let on = self.on_altstack(sp);
        if on {
            old.flags |= SS_ONSTACK;
        }
        if let Some(new) = new {
            if on {
                return Err(SignalError::Busy);
            }
            if new.flags & !SS_DISABLE != 0 && new.flags != SS_ONSTACK {
                return Err(SignalError::Invalid);
            }
            if new.flags & SS_DISABLE != 0 {
                self.altstack = AltStack::default();
            } else {
                if new.size < MINSIGSTKSZ {
                    return Err(SignalError::TooSmall);
                }
                self.altstack = AltStack { flags: 0, ..new };
            }
        }
        Ok(old)
    }

    /// Whether `sp` is on the alternate stack.
    pub fn on_altstack(&self, sp: u64) -> bool {
        self.altstack.flags & SS_DISABLE == 0
            && sp > self.altstack.sp
            && sp <= self.altstack.sp.wrapping_add(self.altstack.size)
    }

    /// A synchronous fault: as Linux's `force_sig`, a blocked or ignored fault signal is
    /// unblocked and reset to its default action (so it kills) before delivery.
    pub fn force(&mut self, info: SigInfo) {
        let s = info.signo as usize;
        if self.mask & bit(info.signo) != 0 || self.actions[s].handler == SIG_IGN {
            self.actions[s] = SigAction::default();
            self.mask &= !bit(info.signo);
        }
    }

    /// Delivers `info` to the guest running on `cpu`: picks the stack, has the architecture
    /// build its signal frame and point the CPU at the handler, or reports that the signal is
    /// ignored or fatal.
    pub fn deliver<C: UserCpu + ?Sized>(
        &mut self,
        cpu: &mut C,
        space: &AddressSpace,
        info: SigInfo,
    ) -> Delivery {
        let act = self.actions[info.signo as usize];
        match act.handler {
            SIG_IGN => return Delivery::Ignored,
            SIG_DFL => {
                return match default_action(info.signo) {
                    Default::Ignore => Delivery::Ignored,
                    Default::Terminate => Delivery::Fatal(info),
                }
            }
            _ => {}
        }
        let old_sp = cpu.sp();
        let mut sp = old_sp;
        let mut new_stack = false;
        if act.flags & sa::ONSTACK != 0
            && self.altstack.flags & SS_DISABLE == 0
            && !self.on_altstack(sp)
        {
            sp = self.altstack.sp.wrapping_add(self.altstack.size);
            new_stack = true;
        }
        let mut altstack = self.altstack;
        if self.on_altstack(old_sp) {
            altstack.flags |= SS_ONSTACK;
        }
        let request = FrameRequest {
            sp,
            new_stack,
            info,
            action: act,
            mask: self.mask,
            altstack,
            trampoline: self.trampoline,
        };
        if let Err(frame) = cpu.push_signal_frame(space, &request) {
            log::debug!("cannot write the signal frame at {frame:#x}: SIGSEGV");
            self.actions[SIGSEGV as usize] = SigAction::default();
            return Delivery::Fatal(SigInfo::fault(SIGSEGV, si::SEGV_MAPERR, frame));
        }
        self.mask |= act.mask;
        if act.flags & sa::NODEFER == 0 {
            self.mask |= bit(info.signo);
        }
        self.mask &= !UNBLOCKABLE;
        if act.flags & sa::RESETHAND != 0 {
            self.actions[info.signo as usize] = SigAction::default();
        }
        Delivery::Handler
    }

    /// `rt_sigreturn`: restores the registers, FP state, mask and alternate stack saved in the
    /// frame at the guest's `sp`.
    pub fn sigreturn<C: UserCpu + ?Sized>(
        &mut self,
        cpu: &mut C,
        space: &AddressSpace,
    ) -> Result<(), SpaceError> {
        let saved = cpu.pop_signal_frame(space)?;
        self.mask = saved.mask & !UNBLOCKABLE;
        let ss = saved.altstack;
        // Like the kernel's restore_altstack: a bad saved stack is ignored, not fatal.
        let _ = self.set_altstack(
            cpu.sp(),
            Some(AltStack {
                flags: ss.flags & SS_DISABLE,
                ..ss
            }),
        );
        Ok(())
    }
}

/// What the architecture needs to build a signal frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRequest {
    /// Stack top to build below (the alternate stack's top when switching to it).
    pub sp: u64,
    /// Whether `sp` is a fresh alternate stack (x86_64 skips its red zone only on the
    /// interrupted stack).
    pub new_stack: bool,
    /// The signal.
    pub info: SigInfo,
    /// Its action (handler, flags, restorer).
    pub action: SigAction,
    /// The mask to save (restored by `rt_sigreturn`).
    pub mask: u64,
    /// The alternate stack to save, SS_ONSTACK set when the interrupted code was on it.
    pub altstack: AltStack,
    /// The `rt_sigreturn` trampoline page, for handlers without a restorer.
    pub trampoline: u64,
}

/// What `rt_sigreturn` reads back besides the registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedContext {
    /// The signal mask.
    pub mask: u64,
    /// The alternate stack setting.
    pub altstack: AltStack,
}

/// What the architecture-neutral layers (signal delivery, system calls, the driver loop)
/// need from a guest CPU; each architecture's half of the user-mode ABI.
pub trait UserCpu {
    /// The stack pointer.
    fn sp(&self) -> u64;
    /// The program counter.
    fn pc(&self) -> u64;
    /// The system call the CPU stopped on: its number and six arguments. Also does what the
    /// instruction does to other registers (x86_64's `syscall` writes rcx and r11).
    fn syscall_request(&mut self) -> (u64, [u64; 6]);
    /// Puts `r` in the result register and moves past the system call instruction.
    fn syscall_return(&mut self, r: i64);
    /// The fault signal the guest's exit and exception hooks recorded in the CPU state.
    fn recorded_signal(&self) -> SigInfo;
    /// Writes the architecture's `rt_sigframe` below `req.sp` and points the CPU at the
    /// handler; on failure, the guest address that could not be written.
    fn push_signal_frame(&mut self, space: &AddressSpace, req: &FrameRequest) -> Result<(), u64>;
    /// Restores the registers from the frame `rt_sigreturn` finds at the stack pointer.
    fn pop_signal_frame(&mut self, space: &AddressSpace) -> Result<SavedContext, SpaceError>;
    /// `arch_prctl`'s FS (`gs` false) or GS base, on architectures that have them.
    fn segment_base(&mut self, _gs: bool) -> Option<&mut u64> {
        None
    }
}

/// A boxed CPU (how the engine holds them) is the CPU.
impl<T: UserCpu + ?Sized> UserCpu for Box<T> {
    fn sp(&self) -> u64 {
        (**self).sp()
    }
    fn pc(&self) -> u64 {
        (**self).pc()
    }
    fn syscall_request(&mut self) -> (u64, [u64; 6]) {
        (**self).syscall_request()
    }
    fn syscall_return(&mut self, r: i64) {
        (**self).syscall_return(r)
    }
    fn recorded_signal(&self) -> SigInfo {
        (**self).recorded_signal()
    }
    fn push_signal_frame(&mut self, space: &AddressSpace, req: &FrameRequest) -> Result<(), u64> {
        (**self).push_signal_frame(space, req)
    }
    fn pop_signal_frame(&mut self, space: &AddressSpace) -> Result<SavedContext, SpaceError> {
        (**self).pop_signal_frame(space)
    }
    fn segment_base(&mut self, gs: bool) -> Option<&mut u64> {
        (**self).segment_base(gs)
    }
}

/// Offsets in the riscv64 `struct rt_sigframe { siginfo_t info; struct ucontext uc; }`.
pub mod frame {
    /// Whole frame.
    pub const SIZE: u64 = 1088;
    /// `info`.
    pub const INFO: u64 = 0;
    /// `uc`.
    pub const UC: u64 = 128;
    /// `uc.uc_flags`.
    pub const FLAGS: u64 = UC;
    /// `uc.uc_link`.
    pub const LINK: u64 = UC + 8;
    /// `uc.uc_stack` (ss_sp, ss_flags + padding, ss_size).
    pub const STACK: u64 = UC + 16;
    /// `uc.uc_sigmask` (the kernel's 8-byte sigset, then padding to 128 bytes).
    pub const SIGMASK: u64 = UC + 40;
    /// `uc.uc_mcontext.sc_regs`: pc, then x1..x31.
    pub const REGS: u64 = UC + 176;
    /// `uc.uc_mcontext.sc_fpregs.d.f[0..32]`.
    pub const FPREGS: u64 = REGS + 256;
    /// `uc.uc_mcontext.sc_fpregs.d.fcsr`.
    pub const FCSR: u64 = FPREGS + 256;
}

impl UserCpu for Riscv64Cpu {
    fn sp(&self) -> u64 {
        self.x[2]
    }

    fn pc(&self) -> u64 {
        self.pc
    }

    fn syscall_request(&mut self) -> (u64, [u64; 6]) {
        let x = &self.x;
        (x[17], [x[10], x[11], x[12], x[13], x[14], x[15]])
    }

    fn syscall_return(&mut self, r: i64) {
        self.x[10] = r as u64;
        self.pc = self.pc.wrapping_add(4);
    }

    fn recorded_signal(&self) -> SigInfo {
        crate::riscv64::recorded_signal(self)
    }

    fn push_signal_frame(&mut self, space: &AddressSpace, req: &FrameRequest) -> Result<(), u64> {
        let frame = req.sp.wrapping_sub(frame::SIZE) & !15;
        if write_frame(self, space, frame, req).is_err() {
            return Err(frame);
        }
        self.x[1] = req.trampoline;
        self.x[2] = frame;
        self.x[10] = u64::from(req.info.signo);
        self.x[11] = frame + frame::INFO;
        self.x[12] = frame + frame::UC;
        self.pc = req.action.handler;
        Ok(())
    }

    fn pop_signal_frame(&mut self, space: &AddressSpace) -> Result<SavedContext, SpaceError> {
        let frame = self.x[2];
        let mut uc = vec![0u8; (frame::SIZE - frame::UC) as usize];
        space.read(frame + frame::UC, &mut uc)?;
        let word = |off: u64| {
            let o = (off - frame::UC) as usize;
            u64::from_le_bytes(uc[o..o + 8].try_into().expect("8 bytes"))
        };
        self.pc = word(frame::REGS);
        for i in 1..32 {
            self.x[i] = word(frame::REGS + 8 * i as u64);
        }
        for i in 0..32 {
            self.f[i] = word(frame::FPREGS + 8 * i as u64);
        }
        let fcsr = word(frame::FCSR) as u32;
        self.fflags = u64::from(fcsr & 0x1f);
        self.frm = u64::from((fcsr >> 5) & 7);
        self.reservation = u64::MAX;
        Ok(SavedContext {
            mask: word(frame::SIGMASK),
            altstack: AltStack {
                sp: word(frame::STACK),
                flags: word(frame::STACK + 8) as u32,
                size: word(frame::STACK + 16),
            },
        })
    }
}

fn write_frame(
    cpu: &Riscv64Cpu,
    space: &AddressSpace,
    at: u64,
    req: &FrameRequest,
) -> Result<(), SpaceError> {
    let mut f = vec![0u8; frame::SIZE as usize];
    let mut put = |off: u64, v: u64| {
        f[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(frame::FLAGS, 0);
    put(frame::LINK, 0);
    put(frame::STACK, req.altstack.sp);
    put(frame::STACK + 8, u64::from(req.altstack.flags));
    put(frame::STACK + 16, req.altstack.size);
    put(frame::SIGMASK, req.mask);
    put(frame::REGS, cpu.pc);
    for i in 1..32 {
        put(frame::REGS + 8 * i as u64, cpu.x[i]);
    }
    for i in 0..32 {
        put(frame::FPREGS + 8 * i as u64, cpu.f[i]);
    }
    put(frame::FCSR, (cpu.frm & 7) << 5 | (cpu.fflags & 0x1f));
    f[..128].copy_from_slice(&req.info.to_bytes());
    space.write(at, &f)
}

/// Signals the host forwards to the guest.
pub const FORWARDED: [u32; 6] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// Host signals received and not yet given to the guest (bit signo-1).
static HOST_PENDING: AtomicU64 = AtomicU64::new(0);
/// The running vCPU's exit requester (leaked: a signal handler may read it at any time).
static REQUESTER: AtomicPtr<ExitRequester> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn host_handler(signo: libc::c_int) {
    if signo > 0 && signo as usize <= NSIG {
        HOST_PENDING.fetch_or(bit(signo as u32), Ordering::SeqCst);
    }
    let r = REQUESTER.load(Ordering::SeqCst);
    if !r.is_null() {
        // SAFETY: REQUESTER only ever holds pointers leaked from Boxes, never freed.
        // `request` is one atomic store, which is async-signal-safe.
        unsafe { (*r).request() };
    }
}

/// Installs the host handlers for [`FORWARDED`] signals (no SA_RESTART, so a blocking host
/// system call returns EINTR and the guest sees its signal promptly), ignores host SIGPIPE,
/// and makes `requester` the vCPU to interrupt.
pub fn install_host_handlers(requester: ExitRequester) {
    let leaked = Box::into_raw(Box::new(requester));
    // The previous requester is deliberately leaked: a handler on another thread may still
    // be using it.
    REQUESTER.store(leaked, Ordering::SeqCst);
    for s in FORWARDED {
        // SAFETY: a zeroed sigaction is valid; the handler only does atomic operations.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = host_handler as extern "C" fn(libc::c_int) as usize;
        act.sa_flags = 0;
        // SAFETY: `act` is a valid sigaction; replacing the process's handler for a signal
        // tern forwards is the point.
        unsafe {
            libc::sigemptyset(&mut act.sa_mask);
        }
        // SAFETY: as above.
        unsafe {
            libc::sigaction(s as libc::c_int, &act, std::ptr::null_mut());
        }
    }
    // SAFETY: ignoring SIGPIPE has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Takes the host signals received since the last call.
pub fn take_host_signals() -> u64 {
    HOST_PENDING.swap(0, Ordering::SeqCst)
}

/// Whether host signals are waiting.
pub fn host_signals_pending() -> bool {
    HOST_PENDING.load(Ordering::SeqCst) != 0
}

/// The signals in a host-pending bit set.
pub fn signals_in(set: u64) -> impl Iterator<Item = u32> {
    (1..=NSIG as u32).filter(move |&s| set & bit(s) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};

    fn setup() -> (AddressSpace, Box<Riscv64Cpu>, SignalState) {
        let s = AddressSpace::new(1 << 32).unwrap();
        s.mmap(
            0x100_0000,
            0x10_0000,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            None,
        )
        .unwrap();
        let mut cpu = Riscv64Cpu::new(0x1_0000);
        cpu.x[2] = 0x110_0000 - 0x100;
        for i in 1..32 {
            if i != 2 {
                cpu.x[i] = 0x1000 + i as u64;
            }
            cpu.f[i] = 0xf000 + i as u64;
        }
        cpu.frm = 3;
        cpu.fflags = 0x11;
        (s, cpu, SignalState::new(0x7000))
    }

    fn handler(flags: u64, mask: u64) -> SigAction {
        SigAction {
            handler: 0x2_0000,
            flags,
            mask,
            restorer: 0,
        }
    }

    #[test]
    fn delivery_builds_the_frame_and_sigreturn_restores_everything() {
        let (s, mut cpu, mut st) = setup();
        st.set_action(SIGUSR1, Some(handler(sa::SIGINFO, bit(SIGUSR2))))
            .unwrap();
        st.mask = bit(SIGALRM);
        let sp0 = cpu.x[2];
        let info = SigInfo::sent(SIGUSR1, si::TKILL, 42, 1000);
        assert_eq!(st.deliver(&mut cpu, &s, info), Delivery::Handler);
        let frame = cpu.x[2];
        assert_eq!(frame % 16, 0);
        assert!(frame <= sp0 - frame::SIZE);
        assert_eq!(cpu.pc, 0x2_0000);
        assert_eq!(cpu.x[1], 0x7000, "returns through the trampoline");
        assert_eq!(cpu.x[10], u64::from(SIGUSR1));
        assert_eq!(cpu.x[11], frame);
        assert_eq!(cpu.x[12], frame + 128);
        assert_eq!(st.mask, bit(SIGALRM) | bit(SIGUSR2) | bit(SIGUSR1));
        // siginfo and the saved context, at the kernel's offsets.
        let mut w = [0u8; 4];
        s.read(frame, &mut w).unwrap();
        assert_eq!(u32::from_le_bytes(w), SIGUSR1);
        s.read(frame + 16, &mut w).unwrap();
        assert_eq!(u32::from_le_bytes(w), 42);
        assert_eq!(s.read_u64(frame + 128 + 176).unwrap(), 0x1_0000, "saved pc");
        assert_eq!(
            s.read_u64(frame + 128 + 176 + 8).unwrap(),
            0x1001,
            "saved ra"
        );
        assert_eq!(s.read_u64(frame + 128 + 176 + 16).unwrap(), sp0, "saved sp");
        assert_eq!(
            s.read_u64(frame + 128 + 40).unwrap(),
            bit(SIGALRM),
            "old mask"
        );
        assert_eq!(s.read_u64(frame + 128 + 432 + 8).unwrap(), 0xf001);
        assert_eq!(s.read_u64(frame + 128 + 688).unwrap() & 0xff, 3 << 5 | 0x11);

        // The handler clobbers registers; sigreturn brings them back.
        cpu.x[5] = 0;
        cpu.f[1] = 0;
        cpu.frm = 0;
        st.sigreturn(&mut cpu, &s).unwrap();
        assert_eq!(cpu.pc, 0x1_0000);
        assert_eq!(cpu.x[2], sp0);
        assert_eq!(cpu.x[5], 0x1005);
        assert_eq!(cpu.f[1], 0xf001);
        assert_eq!((cpu.frm, cpu.fflags), (3, 0x11));
        assert_eq!(st.mask, bit(SIGALRM));
    }

    #[test]
    fn nodefer_resethand_and_the_alternate_stack_are_honoured() {
        let (s, mut cpu, mut st) = setup();
        st.set_action(
            SIGSEGV,
            Some(handler(sa::NODEFER | sa::RESETHAND | sa::ONSTACK, 0)),
        )
        .unwrap();
        st.set_altstack(
            cpu.x[2],
            Some(AltStack {
                sp: 0x100_0000,
                flags: 0,
                size: 0x4000,
            }),
        )
        .unwrap();
        let info = SigInfo::fault(SIGSEGV, si::SEGV_MAPERR, 0);
        assert_eq!(st.deliver(&mut cpu, &s, info), Delivery::Handler);
        assert!(
            cpu.x[2] < 0x100_4000 && cpu.x[2] >= 0x100_0000,
            "on the alternate stack"
        );
        assert_eq!(st.mask & bit(SIGSEGV), 0, "SA_NODEFER");
        assert_eq!(
            st.action(SIGSEGV).unwrap(),
            SigAction::default(),
            "SA_RESETHAND"
        );
        // Changing the alternate stack while on it is refused.
        assert!(matches!(
            st.set_altstack(cpu.x[2], Some(AltStack::default())),
            Err(SignalError::Busy)
        ));
        // The second fault now takes the default action.
        assert_eq!(st.deliver(&mut cpu, &s, info), Delivery::Fatal(info));
    }

    #[test]
    fn default_and_ignored_actions_and_blocked_pending_signals() {
        let (s, mut cpu, mut st) = setup();
        assert!(matches!(
            st.deliver(&mut cpu, &s, SigInfo::sent(SIGTERM, si::USER, 1, 0)),
            Delivery::Fatal(_)
        ));
        assert_eq!(
            st.deliver(&mut cpu, &s, SigInfo::sent(SIGCHLD, si::USER, 1, 0)),
            Delivery::Ignored
        );
        st.set_mask(0, Some(bit(SIGUSR1))).unwrap();
        st.queue(SigInfo::sent(SIGUSR1, si::TKILL, 1, 0));
        st.queue(SigInfo::sent(SIGUSR1, si::TKILL, 1, 0));
        st.queue(SigInfo::sent(SIGUSR2, si::TKILL, 1, 0));
        assert_eq!(st.pending_set(), bit(SIGUSR1) | bit(SIGUSR2));
        assert_eq!(st.take_deliverable().unwrap().signo, SIGUSR2);
        assert_eq!(st.take_deliverable(), None, "SIGUSR1 is blocked");
        st.set_mask(1, Some(bit(SIGUSR1))).unwrap();
        assert_eq!(st.take_deliverable().unwrap().signo, SIGUSR1);
        assert_eq!(
            st.take_deliverable(),
            None,
            "standard signals do not queue twice"
        );
        assert!(st.set_action(SIGKILL, Some(handler(0, 0))).is_err());
        assert!(st.set_action(65, None).is_err());
        st.set_mask(2, Some(u64::MAX)).unwrap();
        assert_eq!(st.mask & UNBLOCKABLE, 0);
    }

    #[test]
    fn a_blocked_fault_is_forced_to_its_default_action() {
        let (s, mut cpu, mut st) = setup();
        st.set_action(SIGSEGV, Some(handler(0, 0))).unwrap();
        st.set_mask(0, Some(bit(SIGSEGV))).unwrap();
        let info = SigInfo::fault(SIGSEGV, si::SEGV_MAPERR, 8);
        st.force(info);
        assert_eq!(st.deliver(&mut cpu, &s, info), Delivery::Fatal(info));
    }

    #[test]
    fn an_unwritable_stack_makes_delivery_fatal() {
        let (s, mut cpu, mut st) = setup();
        st.set_action(SIGUSR1, Some(handler(0, 0))).unwrap();
        cpu.x[2] = 0x10; // nothing mapped there
        assert!(matches!(
            st.deliver(&mut cpu, &s, SigInfo::sent(SIGUSR1, si::USER, 1, 0)),
            Delivery::Fatal(SigInfo { signo: SIGSEGV, .. })
        ));
    }

    #[test]
    fn siginfo_layout_matches_the_kernel() {
        let b = SigInfo::fault(SIGBUS, si::BUS_ADRALN, 0x1234_5678_9abc).to_bytes();
        assert_eq!(&b[0..4], &7u32.to_le_bytes());
        assert_eq!(&b[8..12], &1i32.to_le_bytes());
        assert_eq!(&b[16..24], &0x1234_5678_9abcu64.to_le_bytes());
    }
}
