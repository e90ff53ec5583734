//! The x86_64 half of the user-mode guest ([`crate::guest::UserGuest`]): the translator,
//! the x86_64 half of the user ABI ([`UserCpu`]: `syscall` registers, the `rt_sigframe`), and
//! the mapping of CPU exceptions to the signals Linux sends for them (#UD SIGILL, int3
//! SIGTRAP, #DE SIGFPE, page faults SIGSEGV).

use std::sync::Arc;

use accel_tcg::{Action, CodeReader, MemFault};
use frontend::x86_64::flags as xflags;
use frontend::x86_64::translate::{self as xt, vector};
use frontend::x86_64::{cpu, X86Cpu};
use ir::{Builder, GlobalDef};

use crate::guest::{decode_cause, encode_cause, UserArch, UserGuest, RET_FAULT};
use crate::signal::{sa, si, sig, AltStack, FrameRequest, SavedContext, SigInfo, UserCpu};
use crate::space::{AddressSpace, SpaceError};

/// `Vcpu::run` return code: the guest ran `syscall` (rip = the next instruction).
pub use crate::guest::RET_SYSCALL;

/// The `rt_sigreturn` trampoline for handlers installed without SA_RESTORER (x86_64 glibc
/// always passes one; Linux would kill such a handler's process, tern is lenient):
/// `mov eax, 15; syscall`.
pub const SIGRETURN_TRAMPOLINE: [u8; 7] = [0xb8, 15, 0, 0, 0, 0x0f, 0x05];

/// Index of each general register in [`X86Cpu::regs`] (hardware order).
mod r {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    pub const R8: usize = 8;
    pub const R9: usize = 9;
    pub const R10: usize = 10;
    pub const R11: usize = 11;
}

/// The signal recorded in the CPU state (by a fault, an exit or an exception).
pub fn recorded_signal(cpu: &X86Cpu) -> SigInfo {
    let mut info = decode_cause(cpu.cause, cpu.error_code);
    if info.code == si::KERNEL {
        info.addr = 0;
    }
    info
}

/// Records signal `signo` with `code` for address `addr` (kept in `error_code` until
/// [`recorded_signal`] reads it: user mode has no other use for it at that point).
fn record(cpu: &mut X86Cpu, signo: u32, code: i32, addr: u64) {
    cpu.cause = encode_cause(signo, code);
    cpu.error_code = addr;
}

/// The x86_64 half of the user-mode guest.
pub struct X86_64;

/// The x86_64 Linux user-mode guest.
pub type X86User = UserGuest<X86_64>;

impl UserArch for X86_64 {
    type Cpu = X86Cpu;
    const PC_OFFSET: u32 = cpu::RIP_OFFSET;

    fn globals() -> Arc<[GlobalDef]> {
        cpu::globals()
    }

    fn pc(cpu: &X86Cpu) -> u64 {
        cpu.rip
    }

    fn translate(
        pc: u64,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        xt::translate(pc, code, b, max_insns, 0)
    }

    fn restore_state(cpu: &mut X86Cpu, pc: u64, extra: u64) {
        xt::restore_state(cpu, pc, extra);
    }

    fn raise(cpu: &mut X86Cpu, fault: MemFault, vaddr: u64) {
        // x86 has no alignment faults for ordinary accesses (AC is off): anything else the
        // engine reports is a page fault.
        let code = match fault {
            MemFault::Page(c) if c == si::SEGV_ACCERR as u64 => si::SEGV_ACCERR,
            _ => si::SEGV_MAPERR,
        };
        record(cpu, sig::SIGSEGV, code, vaddr);
    }

    fn on_exit(cpu: &mut X86Cpu, reason: u32) -> Action {
        match reason {
            xt::EXIT_SYSCALL => return Action::Return(RET_SYSCALL),
            // int3 is a trap: rip is already past it; Linux sends SI_KERNEL.
            xt::EXIT_INT3 => record(cpu, sig::SIGTRAP, si::KERNEL, 0),
            // hlt at CPL 3 is #GP, which Linux turns into SIGSEGV from the kernel; rip is
            // back at the instruction.
            xt::EXIT_HLT => {
                cpu.rip = cpu.rip.wrapping_sub(1);
                record(cpu, sig::SIGSEGV, si::KERNEL, 0);
            }
            other => {
                if other != xt::EXIT_UD {
                    log::warn!("unknown exit reason {other} at rip {:#x}: SIGILL", cpu.rip);
                }
                let rip = cpu.rip;
                record(cpu, sig::SIGILL, si::ILL_ILLOPN, rip);
            }
        }
        Action::Return(RET_FAULT)
    }

    fn on_exception(cpu: &mut X86Cpu) -> Action {
        if cpu.cause >> 32 == 0 {
            // A vector stored by a frontend helper; rip is the faulting instruction.
            let rip = cpu.rip;
            match cpu.cause {
                vector::DE => record(cpu, sig::SIGFPE, si::FPE_INTDIV, rip),
                vector::UD => record(cpu, sig::SIGILL, si::ILL_ILLOPN, rip),
                vector::BP => record(cpu, sig::SIGTRAP, si::KERNEL, 0),
                v => {
                    log::warn!("exception vector {v} at rip {rip:#x}: SIGSEGV");
                    record(cpu, sig::SIGSEGV, si::KERNEL, 0);
                }
            }
        }
        Action::Return(RET_FAULT)
    }

    fn disassemble(pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
        frontend::x86_64::disasm::disassemble(pc, code)
    }
}

/// The x86_64 `struct rt_sigframe` (`arch/x86/include/asm/sigframe.h`): the return address
/// the handler's `ret` pops (`pretcode`), the `ucontext`, the `siginfo`, and the FPU state
/// (fxsave format, 64-byte aligned) above them.
pub mod frame {
    /// `pretcode`: the restorer.
    pub const PRETCODE: u64 = 0;
    /// `uc`.
    pub const UC: u64 = 8;
    /// `uc.uc_flags`.
    pub const FLAGS: u64 = UC;
    /// `uc.uc_link`.
    pub const LINK: u64 = UC + 8;
    /// `uc.uc_stack` (ss_sp, ss_flags + padding, ss_size).
    pub const STACK: u64 = UC + 16;
    /// `uc.uc_mcontext`: `struct sigcontext`, 256 bytes.
    pub const MCONTEXT: u64 = UC + 40;
    /// `uc.uc_sigmask`.
    pub const SIGMASK: u64 = UC + 296;
    /// `info`.
    pub const INFO: u64 = UC + 304;
    /// Bytes up to the end of `info`.
    pub const SIZE: u64 = INFO + 128;
    /// The fxsave area the `fpstate` pointer names.
    pub const FPSTATE_SIZE: u64 = 512;

    /// Offsets in `struct sigcontext` (x86_64): r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx,
    /// rsp, rip, eflags, cs/gs/fs/ss, err, trapno, oldmask, cr2, fpstate.
    pub mod sc {
        /// r8 (r9..r15 follow).
        pub const R8: u64 = 0;
        /// rdi.
        pub const RDI: u64 = 64;
        /// rsi.
        pub const RSI: u64 = 72;
        /// rbp.
        pub const RBP: u64 = 80;
        /// rbx.
        pub const RBX: u64 = 88;
        /// rdx.
        pub const RDX: u64 = 96;
        /// rax.
        pub const RAX: u64 = 104;
        /// rcx.
        pub const RCX: u64 = 112;
        /// rsp.
        pub const RSP: u64 = 120;
        /// rip.
        pub const RIP: u64 = 128;
        /// eflags.
        pub const EFLAGS: u64 = 136;
        /// cs (u16), then gs, fs, ss.
        pub const CS: u64 = 144;
        /// ss (u16).
        pub const SS: u64 = 150;
        /// Page-fault error code.
        pub const ERR: u64 = 152;
        /// Exception vector.
        pub const TRAPNO: u64 = 160;
        /// The old mask's first word.
        pub const OLDMASK: u64 = 168;
        /// Fault address.
        pub const CR2: u64 = 176;
        /// Pointer to the fxsave area.
        pub const FPSTATE: u64 = 184;
    }

    /// Offsets in the fxsave area.
    pub mod fx {
        /// x87 control word (u16).
        pub const FCW: u64 = 0;
        /// MXCSR (u32).
        pub const MXCSR: u64 = 24;
        /// MXCSR_MASK (u32).
        pub const MXCSR_MASK: u64 = 28;
        /// xmm0 (16 bytes each).
        pub const XMM: u64 = 160;
    }
}

/// `uc_flags`: the saved `ss` is meaningful and restored strictly (what 64-bit Linux sets).
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// User code and stack selectors of 64-bit Linux.
const USER_CS: u16 = 0x33;
const USER_SS: u16 = 0x2b;
/// The space below rsp that leaf functions may use without moving it.
const RED_ZONE: u64 = 128;
/// RFLAGS bits `rt_sigreturn` takes from the frame (the kernel's FIX_EFLAGS): CF PF AF ZF SF
/// TF DF OF, NT, RF, AC, ID.
const FIX_EFLAGS: u64 = xflags::ARITH | 1 << 8 | xflags::DF | 1 << 14 | 1 << 16 | 1 << 18 | 1 << 21;

/// The exception vector and error code a fault signal came from, for `sigcontext`.
fn trap_of(info: &SigInfo) -> (u64, u64) {
    if !info.fault {
        return (0, 0);
    }
    match info.signo {
        sig::SIGSEGV if info.code != si::KERNEL => {
            // User-mode page fault: U=4, plus P=1 for a protection violation.
            let p = u64::from(info.code == si::SEGV_ACCERR);
            (14, 4 | p)
        }
        sig::SIGSEGV => (13, 0),
        sig::SIGFPE => (vector::DE, 0),
        sig::SIGILL => (vector::UD, 0),
        sig::SIGTRAP => (vector::BP, 0),
        _ => (0, 0),
    }
}

impl UserCpu for X86Cpu {
    fn sp(&self) -> u64 {
        self.regs[r::RSP]
    }

    fn pc(&self) -> u64 {
        self.rip
    }

    fn syscall_request(&mut self) -> (u64, [u64; 6]) {
        // What the `syscall` instruction itself does: the return rip in rcx, RFLAGS in r11.
        self.regs[r::RCX] = self.rip;
        self.regs[r::R11] = self.rflags();
        let g = &self.regs;
        (
            g[r::RAX],
            [
                g[r::RDI],
                g[r::RSI],
                g[r::RDX],
                g[r::R10],
                g[r::R8],
                g[r::R9],
            ],
        )
    }

    fn syscall_return(&mut self, r: i64) {
        // rip already points past `syscall`.
        self.regs[r::RAX] = r as u64;
    }

    fn recorded_signal(&self) -> SigInfo {
        recorded_signal(self)
    }

    fn push_signal_frame(&mut self, space: &AddressSpace, req: &FrameRequest) -> Result<(), u64> {
        let mut sp = req.sp;
        if !req.new_stack {
            sp = sp.wrapping_sub(RED_ZONE);
        }
        let fpstate = sp.wrapping_sub(frame::FPSTATE_SIZE) & !63;
        // As if `call handler` had pushed the restorer: rsp + 8 is 16-byte aligned.
        let at = (fpstate.wrapping_sub(frame::SIZE) & !15).wrapping_sub(8);
        let restorer = if req.action.flags & sa::RESTORER != 0 {
            req.action.restorer
        } else {
            req.trampoline
        };
        let f = frame_bytes(self, req, fpstate, restorer);
        let fx = fxsave_bytes(self);
        if space.write(fpstate, &fx).is_err() {
            return Err(fpstate);
        }
        if space.write(at, &f).is_err() {
            return Err(at);
        }
        self.regs[r::RDI] = u64::from(req.info.signo);
        self.regs[r::RSI] = at + frame::INFO;
        self.regs[r::RDX] = at + frame::UC;
        self.regs[r::RAX] = 0;
        self.regs[r::RSP] = at;
        self.rip = req.action.handler;
        // The handler starts with a fresh x87 state (the interrupted one is in the frame).
        #[cfg(target_arch = "x86_64")]
        frontend::x86_64::x87::reset(self);
        // Handlers start with DF and TF clear.
        let flags = self.rflags() & !(xflags::DF | 1 << 8);
        self.set_rflags(flags);
        Ok(())
    }

    fn pop_signal_frame(&mut self, space: &AddressSpace) -> Result<SavedContext, SpaceError> {
        // The handler's `ret` popped pretcode: the frame starts 8 below rsp.
        let at = self.regs[r::RSP].wrapping_sub(8);
        let mut uc = vec![0u8; (frame::INFO - frame::UC) as usize];
        space.read(at + frame::UC, &mut uc)?;
        let word = |off: u64| {
            let o = (off - frame::UC) as usize;
            u64::from_le_bytes(uc[o..o + 8].try_into().expect("8 bytes"))
        };
        let m = |off: u64| word(frame::MCONTEXT + off);
        for i in 0..8 {
            self.regs[r::R8 + i] = m(frame::sc::R8 + 8 * i as u64);
        }
        self.regs[r::RDI] = m(frame::sc::RDI);
        self.regs[r::RSI] = m(frame::sc::RSI);
        self.regs[r::RBP] = m(frame::sc::RBP);
        self.regs[r::RBX] = m(frame::sc::RBX);
        self.regs[r::RDX] = m(frame::sc::RDX);
        self.regs[r::RAX] = m(frame::sc::RAX);
        self.regs[r::RCX] = m(frame::sc::RCX);
        self.regs[r::RSP] = m(frame::sc::RSP);
        self.rip = m(frame::sc::RIP);
        let flags = (self.rflags() & !FIX_EFLAGS) | (m(frame::sc::EFLAGS) & FIX_EFLAGS);
        self.set_rflags(flags);
        let fp = m(frame::sc::FPSTATE);
        if fp != 0 {
            let mut fx = [0u8; frame::FPSTATE_SIZE as usize];
            space.read(fp, &mut fx)?;
            let mx = u32::from_le_bytes(fx[24..28].try_into().expect("4 bytes"));
            // Reserved MXCSR bits would #GP in the kernel's fxrstor: refuse like it does.
            if mx & 0xffff_0000 != 0 {
                return Err(SpaceError::Fault(fp + frame::fx::MXCSR));
            }
            self.mxcsr = u64::from(mx);
            #[cfg(target_arch = "x86_64")]
            frontend::x86_64::x87::read_fxsave(self, &fx);
            for (i, x) in self.xmm.iter_mut().enumerate() {
                let o = (frame::fx::XMM + 16 * i as u64) as usize;
                x[0] = u64::from_le_bytes(fx[o..o + 8].try_into().expect("8 bytes"));
                x[1] = u64::from_le_bytes(fx[o + 8..o + 16].try_into().expect("8 bytes"));
            }
        }
        Ok(SavedContext {
            mask: word(frame::SIGMASK),
            altstack: AltStack {
                sp: word(frame::STACK),
                flags: word(frame::STACK + 8) as u32,
                size: word(frame::STACK + 16),
            },
        })
    }

    fn segment_base(&mut self, gs: bool) -> Option<&mut u64> {
        Some(if gs {
            &mut self.gs_base
        } else {
            &mut self.fs_base
        })
    }
}

/// The frame's bytes up to the end of `info`, the registers saved from `cpu`.
fn frame_bytes(cpu: &X86Cpu, req: &FrameRequest, fpstate: u64, restorer: u64) -> Vec<u8> {
    let mut f = vec![0u8; frame::SIZE as usize];
    let mut put = |off: u64, v: &[u8]| {
        f[off as usize..off as usize + v.len()].copy_from_slice(v);
    };
    put(frame::PRETCODE, &restorer.to_le_bytes());
    put(
        frame::FLAGS,
        &(UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS).to_le_bytes(),
    );
    put(frame::LINK, &0u64.to_le_bytes());
    put(frame::STACK, &req.altstack.sp.to_le_bytes());
    put(
        frame::STACK + 8,
        &u64::from(req.altstack.flags).to_le_bytes(),
    );
    put(frame::STACK + 16, &req.altstack.size.to_le_bytes());
    let mc = |off: u64| frame::MCONTEXT + off;
    for i in 0..8 {
        put(
            mc(frame::sc::R8 + 8 * i as u64),
            &cpu.regs[r::R8 + i].to_le_bytes(),
        );
    }
    for (off, reg) in [
        (frame::sc::RDI, r::RDI),
        (frame::sc::RSI, r::RSI),
        (frame::sc::RBP, r::RBP),
        (frame::sc::RBX, r::RBX),
        (frame::sc::RDX, r::RDX),
        (frame::sc::RAX, r::RAX),
        (frame::sc::RCX, r::RCX),
        (frame::sc::RSP, r::RSP),
    ] {
        put(mc(off), &cpu.regs[reg].to_le_bytes());
    }
    put(mc(frame::sc::RIP), &cpu.rip.to_le_bytes());
    put(mc(frame::sc::EFLAGS), &cpu.rflags().to_le_bytes());
    put(mc(frame::sc::CS), &USER_CS.to_le_bytes());
    put(mc(frame::sc::SS), &USER_SS.to_le_bytes());
    let (trapno, err) = trap_of(&req.info);
    put(mc(frame::sc::ERR), &err.to_le_bytes());
    put(mc(frame::sc::TRAPNO), &trapno.to_le_bytes());
    put(mc(frame::sc::OLDMASK), &req.mask.to_le_bytes());
    let cr2 = if req.info.fault && req.info.signo == sig::SIGSEGV {
        req.info.addr
    } else {
        0
    };
    put(mc(frame::sc::CR2), &cr2.to_le_bytes());
    put(mc(frame::sc::FPSTATE), &fpstate.to_le_bytes());
    put(frame::SIGMASK, &req.mask.to_le_bytes());
    put(frame::INFO, &req.info.to_bytes());
    f
}

/// The fxsave-format FPU/SSE state of `cpu`.
fn fxsave_bytes(cpu: &X86Cpu) -> [u8; frame::FPSTATE_SIZE as usize] {
    let mut fx = [0u8; frame::FPSTATE_SIZE as usize];
    // x87 default control word (all exceptions masked, 64-bit precision).
    fx[frame::fx::FCW as usize..][..2].copy_from_slice(&0x37fu16.to_le_bytes());
    fx[frame::fx::MXCSR as usize..][..4].copy_from_slice(&(cpu.mxcsr as u32).to_le_bytes());
    fx[frame::fx::MXCSR_MASK as usize..][..4].copy_from_slice(&0xffffu32.to_le_bytes());
    for (i, x) in cpu.xmm.iter().enumerate() {
        let o = (frame::fx::XMM + 16 * i as u64) as usize;
        fx[o..o + 8].copy_from_slice(&x[0].to_le_bytes());
        fx[o + 8..o + 16].copy_from_slice(&x[1].to_le_bytes());
    }
    // The x87 part (control and status words, tags, the stack) where the frontend has one.
    #[cfg(target_arch = "x86_64")]
    frontend::x86_64::x87::write_fxsave(cpu, &mut fx);
    fx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{SigAction, SignalState, SIG_DFL};
    use crate::space::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    use crate::syscall::{self, Outcome, Process, Sys};
    use accel_tcg::{Access, Guest};

    const HANDLER: u64 = 0x2_0000;
    const RESTORER: u64 = 0x3_0000;

    fn setup() -> (Arc<AddressSpace>, Box<X86Cpu>) {
        let s = Arc::new(AddressSpace::new(1 << 32).unwrap());
        s.mmap(
            0x100_0000,
            0x10_0000,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            None,
        )
        .unwrap();
        let mut cpu = X86Cpu::new(0x40_1000);
        for (i, reg) in cpu.regs.iter_mut().enumerate() {
            *reg = 0x1000 + i as u64;
        }
        cpu.regs[r::RSP] = 0x110_0000 - 0x108;
        cpu.set_rflags(xflags::CF | xflags::ZF | xflags::DF | 0x2);
        cpu.mxcsr = 0x1fa0;
        cpu.xmm[3] = [0x3333, 0x3_0000];
        (s, cpu)
    }

    fn action(flags: u64) -> SigAction {
        SigAction {
            handler: HANDLER,
            flags: flags | sa::RESTORER,
            mask: 0,
            restorer: RESTORER,
        }
    }

    fn read_u64(s: &AddressSpace, at: u64) -> u64 {
        s.read_u64(at).unwrap()
    }

    #[test]
    fn the_frame_has_the_kernel_layout_and_sigreturn_restores_everything() {
        let (s, mut cpu) = setup();
        let mut st = SignalState::new(0x7000);
        st.set_action(sig::SIGUSR1, Some(action(sa::SIGINFO)))
            .unwrap();
        st.mask = 1 << (sig::SIGALRM - 1);
        let sp0 = cpu.regs[r::RSP];
        let info = SigInfo::sent(sig::SIGUSR1, si::TKILL, 42, 1000);
        assert_eq!(
            st.deliver(&mut cpu, &s, info),
            crate::signal::Delivery::Handler
        );
        let f = cpu.regs[r::RSP];
        assert_eq!((f + 8) % 16, 0, "as if called: rsp + 8 is 16-byte aligned");
        assert!(f + frame::SIZE <= sp0 - RED_ZONE, "below the red zone");
        assert_eq!(cpu.rip, HANDLER);
        assert_eq!(cpu.regs[r::RDI], u64::from(sig::SIGUSR1));
        assert_eq!(cpu.regs[r::RSI], f + 312, "&info");
        assert_eq!(cpu.regs[r::RDX], f + 8, "&uc");
        assert_eq!(cpu.regs[r::RAX], 0);
        assert_eq!(cpu.rflags() & xflags::DF, 0, "handlers start with DF clear");
        assert_eq!(read_u64(&s, f), RESTORER, "pretcode");
        // ucontext: flags, link, stack, then sigcontext in the kernel's register order.
        assert_eq!(read_u64(&s, f + 8), 6);
        let mc = f + 8 + 40;
        let expect = [
            (0, 0x1008),      // r8
            (56, 0x100f),     // r15
            (64, 0x1007),     // rdi
            (72, 0x1006),     // rsi
            (80, 0x1005),     // rbp
            (88, 0x1003),     // rbx
            (96, 0x1002),     // rdx
            (104, 0x1000),    // rax
            (112, 0x1001),    // rcx
            (120, sp0),       // rsp
            (128, 0x40_1000), // rip
        ];
        for (off, v) in expect {
            assert_eq!(read_u64(&s, mc + off), v, "sigcontext offset {off}");
        }
        let fl = read_u64(&s, mc + 136);
        assert_eq!(
            fl & (xflags::CF | xflags::ZF | xflags::DF),
            xflags::CF | xflags::ZF | xflags::DF
        );
        let mut sel = [0u8; 8];
        s.read(mc + 144, &mut sel).unwrap();
        assert_eq!(u16::from_le_bytes([sel[0], sel[1]]), 0x33, "cs");
        assert_eq!(u16::from_le_bytes([sel[6], sel[7]]), 0x2b, "ss");
        assert_eq!(
            read_u64(&s, f + 8 + 296),
            1 << (sig::SIGALRM - 1),
            "uc_sigmask"
        );
        let fp = read_u64(&s, mc + 184);
        assert_eq!(fp % 64, 0, "fpstate is 64-byte aligned");
        assert!(fp >= f + frame::SIZE && fp + 512 <= sp0 - RED_ZONE);
        let mut fx = [0u8; 512];
        s.read(fp, &mut fx).unwrap();
        assert_eq!(u32::from_le_bytes(fx[24..28].try_into().unwrap()), 0x1fa0);
        assert_eq!(
            u64::from_le_bytes(fx[160 + 48..160 + 56].try_into().unwrap()),
            0x3333
        );
        let mut w = [0u8; 4];
        s.read(f + 312, &mut w).unwrap();
        assert_eq!(u32::from_le_bytes(w), sig::SIGUSR1, "si_signo");

        // The handler clobbers state, returns (popping pretcode), and calls rt_sigreturn.
        cpu.regs = [0; 16];
        cpu.regs[r::RSP] = f + 8;
        cpu.xmm[3] = [0, 0];
        cpu.mxcsr = 0x1f80;
        cpu.set_rflags(0x2);
        st.sigreturn(&mut cpu, &s).unwrap();
        assert_eq!(cpu.rip, 0x40_1000);
        assert_eq!(cpu.regs[r::RSP], sp0);
        for i in [0, 1, 2, 3, 5, 6, 7, 8, 15] {
            assert_eq!(cpu.regs[i], 0x1000 + i as u64, "register {i}");
        }
        assert_eq!(
            cpu.rflags() & (xflags::CF | xflags::ZF | xflags::DF),
            xflags::CF | xflags::ZF | xflags::DF
        );
        assert_eq!(cpu.df, u64::MAX, "DF set again");
        assert_eq!((cpu.mxcsr, cpu.xmm[3]), (0x1fa0, [0x3333, 0x3_0000]));
        assert_eq!(st.mask, 1 << (sig::SIGALRM - 1));
    }

    #[test]
    fn a_fault_frame_records_trapno_and_cr2_and_no_restorer_uses_the_trampoline() {
        let (s, mut cpu) = setup();
        let mut st = SignalState::new(0x7000);
        st.set_action(
            sig::SIGSEGV,
            Some(SigAction {
                handler: HANDLER,
                flags: sa::SIGINFO,
                mask: 0,
                restorer: 0,
            }),
        )
        .unwrap();
        let info = SigInfo::fault(sig::SIGSEGV, si::SEGV_ACCERR, 0xdead_0000);
        st.deliver(&mut cpu, &s, info);
        let f = cpu.regs[r::RSP];
        assert_eq!(read_u64(&s, f), 0x7000, "trampoline as the return address");
        let mc = f + 8 + 40;
        assert_eq!(read_u64(&s, mc + 160), 14, "trapno: page fault");
        assert_eq!(read_u64(&s, mc + 152), 5, "err: user, protection");
        assert_eq!(read_u64(&s, mc + 176), 0xdead_0000, "cr2");
        assert_eq!(read_u64(&s, f + 312 + 16), 0xdead_0000, "si_addr");
    }

    #[test]
    fn an_unwritable_stack_kills_with_sigsegv() {
        let (s, mut cpu) = setup();
        let mut st = SignalState::new(0x7000);
        st.set_action(sig::SIGUSR1, Some(action(0))).unwrap();
        cpu.regs[r::RSP] = 0x5000;
        assert!(matches!(
            st.deliver(&mut cpu, &s, SigInfo::sent(sig::SIGUSR1, si::USER, 1, 0)),
            crate::signal::Delivery::Fatal(SigInfo {
                signo: sig::SIGSEGV,
                ..
            })
        ));
        assert_eq!(st.action(sig::SIGUSR1).unwrap().handler, HANDLER);
        assert_eq!(st.action(sig::SIGSEGV).unwrap().handler, SIG_DFL);
    }

    #[test]
    fn syscall_entry_reads_rax_and_the_abi_argument_registers_and_clobbers_rcx_r11() {
        let (_, mut cpu) = setup();
        cpu.rip = 0x40_2002;
        let flags = cpu.rflags();
        let (nr, a) = cpu.syscall_request();
        assert_eq!(nr, 0x1000);
        assert_eq!(a, [0x1007, 0x1006, 0x1002, 0x100a, 0x1008, 0x1009]);
        assert_eq!(cpu.regs[r::RCX], 0x40_2002, "rcx = return rip");
        assert_eq!(cpu.regs[r::R11], flags, "r11 = rflags");
        cpu.syscall_return(-22);
        assert_eq!(cpu.regs[r::RAX] as i64, -22);
        assert_eq!(cpu.rip, 0x40_2002, "rip already past syscall");
    }

    #[test]
    fn arch_prctl_sets_and_gets_fs_and_gs_through_the_syscall_layer() {
        let (s, mut cpu) = setup();
        let mut p = Process::new(s.clone(), crate::elf::Arch::X86_64, "/x".into(), 0x7000);
        let mut call = |cpu: &mut X86Cpu, nr: u64, a: [u64; 6]| {
            let (sys, a) = syscall::table(crate::elf::Arch::X86_64, nr, a);
            match p.syscall(cpu, sys, nr, a) {
                Outcome::Return(r) => r,
                o => panic!("{o:?}"),
            }
        };
        assert_eq!(call(&mut cpu, 158, [0x1002, 0x7fff_1000, 0, 0, 0, 0]), 0);
        assert_eq!(cpu.fs_base, 0x7fff_1000);
        assert_eq!(call(&mut cpu, 158, [0x1001, 0x5000, 0, 0, 0, 0]), 0);
        assert_eq!(cpu.gs_base, 0x5000);
        assert_eq!(call(&mut cpu, 158, [0x1003, 0x100_0000, 0, 0, 0, 0]), 0);
        assert_eq!(s.read_u64(0x100_0000).unwrap(), 0x7fff_1000);
        assert_eq!(call(&mut cpu, 158, [0x1004, 0x100_0008, 0, 0, 0, 0]), 0);
        assert_eq!(s.read_u64(0x100_0008).unwrap(), 0x5000);
        assert_eq!(
            call(&mut cpu, 158, [0x1003, 0x10, 0, 0, 0, 0]),
            -i64::from(libc::EFAULT)
        );
        assert_eq!(
            call(&mut cpu, 158, [0x1002, 1 << 47, 0, 0, 0, 0]),
            -i64::from(libc::EPERM),
            "non-canonical"
        );
        assert_eq!(
            call(&mut cpu, 158, [7, 0, 0, 0, 0, 0]),
            -i64::from(libc::EINVAL)
        );
        assert_eq!(Sys::ArchPrctl.name(), "arch_prctl");
    }

    #[test]
    fn x86_64_sigaction_carries_the_restorer_between_flags_and_mask() {
        let (s, mut cpu) = setup();
        let mut p = Process::new(s.clone(), crate::elf::Arch::X86_64, "/x".into(), 0x7000);
        let act = 0x100_0000;
        for (i, v) in [HANDLER, sa::SIGINFO | sa::RESTORER, RESTORER, 0x400]
            .iter()
            .enumerate()
        {
            s.write_u64(act + 8 * i as u64, *v).unwrap();
        }
        let r = p.syscall(
            &mut cpu,
            Sys::RtSigaction,
            13,
            [10, act, act + 0x100, 8, 0, 0],
        );
        assert_eq!(r, Outcome::Return(0));
        let got = p.signals.action(10).unwrap();
        assert_eq!(
            (got.handler, got.restorer, got.mask),
            (HANDLER, RESTORER, 0x400)
        );
        let r = p.syscall(
            &mut cpu,
            Sys::RtSigaction,
            13,
            [10, 0, act + 0x100, 8, 0, 0],
        );
        assert_eq!(r, Outcome::Return(0));
        assert_eq!(read_u64(&s, act + 0x110), RESTORER);
        assert_eq!(read_u64(&s, act + 0x118), 0x400);
    }

    #[test]
    fn exceptions_become_the_signals_linux_sends() {
        let g = X86User::new(Arc::new(AddressSpace::new(1 << 32).unwrap()));
        let mut cpu = X86Cpu::new(0x40_1000);
        assert_eq!(
            g.on_exit(&mut cpu, xt::EXIT_SYSCALL),
            Action::Return(RET_SYSCALL)
        );
        assert_eq!(g.on_exit(&mut cpu, xt::EXIT_UD), Action::Return(RET_FAULT));
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGILL, si::ILL_ILLOPN, 0x40_1000)
        );
        g.on_exit(&mut cpu, xt::EXIT_INT3);
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGTRAP, si::KERNEL, 0)
        );
        cpu.cause = vector::DE;
        assert_eq!(g.on_exception(&mut cpu), Action::Return(RET_FAULT));
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGFPE, si::FPE_INTDIV, 0x40_1000)
        );
        g.raise(
            &mut cpu,
            MemFault::Page(si::SEGV_ACCERR as u64),
            0x44,
            Access::Write,
        );
        g.on_exception(&mut cpu);
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGSEGV, si::SEGV_ACCERR, 0x44)
        );
        g.raise(
            &mut cpu,
            MemFault::Page(si::SEGV_MAPERR as u64),
            0,
            Access::Read,
        );
        assert_eq!(
            recorded_signal(&cpu),
            SigInfo::fault(sig::SIGSEGV, si::SEGV_MAPERR, 0)
        );
    }

    #[test]
    fn time_returns_the_seconds_and_stores_them_when_asked() {
        let (s, mut cpu) = setup();
        let mut p = Process::new(s.clone(), crate::elf::Arch::X86_64, "/x".into(), 0x7000);
        let (sys, a) = syscall::table(crate::elf::Arch::X86_64, 201, [0x100_0000, 0, 0, 0, 0, 0]);
        let Outcome::Return(t) = p.syscall(&mut cpu, sys, 201, a) else {
            panic!("time must return")
        };
        assert!(t > 1_600_000_000, "{t}");
        let stored = s.read_u64(0x100_0000).unwrap() as i64;
        assert!(stored == t || stored == t + 1);
        let Outcome::Return(e) = p.syscall(&mut cpu, Sys::Time, 201, [0x10, 0, 0, 0, 0, 0]) else {
            panic!("time must return")
        };
        assert_eq!(e, -i64::from(libc::EFAULT));
    }

    #[test]
    fn the_trampoline_is_mov_eax_15_syscall() {
        assert_eq!(SIGRETURN_TRAMPOLINE[0], 0xb8, "mov eax, imm32");
        assert_eq!(
            u32::from_le_bytes(SIGRETURN_TRAMPOLINE[1..5].try_into().unwrap()),
            15
        );
        assert_eq!(&SIGRETURN_TRAMPOLINE[5..], &[0x0f, 0x05]);
    }
}
