//! Linux user-mode emulation: runs a static riscv64 or x86_64 Linux program on the TCG engine,
//! with its system calls carried out on the host.
//!
//! The pieces: [`space`] is the guest address space (one host reservation plus a VMA table,
//! which is also the engine's "physical" memory), [`elf`] loads the program, [`stack`] builds
//! the initial stack, [`riscv64`] and [`x86_64`] are the engine's `Guest`s for user mode,
//! [`syscall`] runs system calls (one layer, a number table per architecture) and [`signal`]
//! delivers signals (the architecture's half is [`signal::UserCpu`]). [`run`] ties them
//! together: it loops running guest code until the guest makes a system call or takes a
//! signal, handles that, and goes on until the guest exits or dies.

pub mod elf;
pub mod guest;
pub mod riscv64;
pub mod signal;
pub mod space;
pub mod stack;
pub mod syscall;
pub mod x86_64;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use accel_tcg::{CpuState, Engine, EngineConfig, ExecMode, Guest, Vcpu};
use frontend::riscv64::Riscv64Cpu;
use frontend::x86_64::X86Cpu;

use crate::elf::{Arch, LoadedElf};
use crate::guest::{RET_FAULT, RET_SYSCALL};
use crate::riscv64::RiscvUser;
use crate::signal::{Delivery, SigInfo, UserCpu};
use crate::space::{AddressSpace, MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ};
use crate::stack::InitialStack;
use crate::syscall::{Outcome, Process};
use crate::x86_64::X86User;

/// Size of the guest address space: 2^38 bytes, riscv64 Sv39's user half. x86_64 guests get
/// the same (their 2^47-byte user half would not fit in one host reservation beside tern's
/// own): static programs load at 4 MiB and mmap top-down from here.
pub const ADDRESS_SPACE_SIZE: u64 = 1 << 38;

/// The `rt_sigreturn` trampoline handlers return to (`li a7, 139; ecall`), as Linux's vDSO
/// `__vdso_rt_sigreturn`.
const SIGRETURN_TRAMPOLINE: [u32; 2] = [0x08b0_0893, 0x0000_0073];

/// How to run the program.
#[derive(Debug, Clone)]
pub struct UserOptions {
    /// Print every system call with its arguments and result to stderr.
    pub strace: bool,
    /// JIT or interpreter.
    pub exec_mode: ExecMode,
    /// What the engine logs about each translated block (`--log in_asm,op,...`).
    pub log: accel_tcg::LogConfig,
    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to this process to
    /// the guest (installs process-wide host handlers; leave it on for the `tern` binary).
    pub forward_host_signals: bool,
    /// The architecture the program must be (`--arch`); `None`: whatever its ELF header says.
    pub arch: Option<Arch>,
}

impl Default for UserOptions {
    fn default() -> Self {
        UserOptions {
            strace: false,
            exec_mode: ExecMode::Jit,
            log: accel_tcg::LogConfig::default(),
            forward_host_signals: true,
            arch: None,
        }
    }
}

/// What stops a program from running at all (never the guest's own faults, which end as
/// signals and exit statuses). The `tern` binary exits with status 2 for these.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The program file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The program path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a loadable executable for a supported architecture.
    #[error("{path}: {source}")]
    Elf {
        /// The program path.
        path: PathBuf,
        /// Why.
        source: elf::ElfError,
    },
    /// The address space or the initial stack could not be set up.
    #[error("cannot set up the guest address space: {0}")]
    Space(#[from] space::SpaceError),
    /// The engine failed (a translator or backend bug, not a guest fault).
    #[error("TCG engine: {0}")]
    Engine(#[from] accel_tcg::TcgError),
}

/// The host environment as `(name, value)` pairs, for [`run`].
pub fn host_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// How a program ended, and what running it cost the translator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    /// What the program passed to `exit`, or 128 + the number of the signal that killed it.
    pub status: i32,
    /// Blocks translated.
    pub blocks: u64,
    /// Guest instructions in those blocks.
    pub guest_insns: u64,
    /// IR ops in those blocks after optimization.
    pub ir_ops: u64,
    /// Wall time spent translating, in nanoseconds.
    pub translate_nanos: u64,
}

/// Runs `program` with arguments `args` (argv[1..]; argv[0] is `program` as given) and
/// environment `env`, and returns its exit status: what it passed to `exit`, or 128 + the
/// signal number when a signal killed it (after one line on stderr saying so, as a shell
/// would); with the translation counters of the run.
pub fn run(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    options: &UserOptions,
) -> Result<Exit, UserError> {
    let bytes = std::fs::read(program).map_err(|source| UserError::Read {
        path: program.to_path_buf(),
        source,
    })?;
    let elf_err = |source| UserError::Elf {
        path: program.to_path_buf(),
        source,
    };
    let arch = elf::probe(&bytes).map_err(elf_err)?;
    if let Some(wanted) = options.arch.filter(|&w| w != arch) {
        return Err(elf_err(elf::ElfError::WrongArch {
            wanted: wanted.machine(),
            found: arch.machine(),
        }));
    }
    let space = Arc::new(AddressSpace::new(ADDRESS_SPACE_SIZE)?);
    let loaded = elf::load(&space, &bytes).map_err(elf_err)?;
    drop(bytes);
    space.set_brk_start(loaded.brk);

    // The sigreturn trampoline page, placed like the vDSO (top-down, below the stack gap).
    let tramp = space.mmap(
        0,
        0x1000,
        PROT_READ | PROT_EXEC,
        MAP_PRIVATE | MAP_ANONYMOUS,
        None,
    )?;
    let code: Vec<u8> = match arch {
        Arch::Riscv64 => SIGRETURN_TRAMPOLINE
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect(),
        Arch::X86_64 => x86_64::SIGRETURN_TRAMPOLINE.to_vec(),
    };
    space.write_unchecked_prot(tramp, &code)?;

    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(program.as_os_str().as_encoded_bytes().to_vec());
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let envp: Vec<Vec<u8>> = env
        .iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect();
    let mut random = [0u8; 16];
    // SAFETY: `random` is a writable 16-byte buffer.
    let got = unsafe { libc::getrandom(random.as_mut_ptr().cast(), 16, 0) };
    if got != 16 {
        log::warn!("getrandom failed; AT_RANDOM bytes are not random");
    }
    let st = stack::build(
        &space,
        ADDRESS_SPACE_SIZE,
        &loaded,
        &argv,
        &envp,
        &argv[0],
        random,
    )?;

    let exe = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let mut process = Process::new(space.clone(), loaded.arch, exe, tramp);
    process.strace = options.strace;

    let config = EngineConfig {
        mode: options.exec_mode,
        system: false,
        log: options.log.clone(),
        ..EngineConfig::default()
    };
    match arch {
        Arch::Riscv64 => {
            let mut cpu = Riscv64Cpu::new(loaded.entry);
            cpu.x[2] = st.sp;
            let guest = RiscvUser::new(space.clone());
            start(
                guest, cpu, space, config, program, &loaded, &st, options, process,
            )
        }
        Arch::X86_64 => {
            let mut cpu = X86Cpu::new(loaded.entry);
            cpu.regs[frontend::x86_64::cpu::RSP] = st.sp;
            let guest = X86User::new(space.clone());
            start(
                guest, cpu, space, config, program, &loaded, &st, options, process,
            )
        }
    }
}

/// Makes the engine and the vCPU for `guest` starting in `cpu`, and drives it.
#[allow(clippy::too_many_arguments)]
fn start<G>(
    guest: G,
    cpu: Box<G::Cpu>,
    space: Arc<AddressSpace>,
    config: EngineConfig,
    program: &Path,
    loaded: &LoadedElf,
    st: &InitialStack,
    options: &UserOptions,
    mut process: Process,
) -> Result<Exit, UserError>
where
    G: Guest,
    G::Cpu: UserCpu + CpuState,
{
    let engine = Engine::new(guest, space, config)?;
    let mut vcpu = Vcpu::new(engine, cpu);
    if options.forward_host_signals {
        signal::install_host_handlers(vcpu.exit_requester());
    }
    log::debug!(
        "running {} ({}) at entry {:#x}, sp {:#x}",
        program.display(),
        loaded.arch.machine(),
        loaded.entry,
        st.sp
    );
    let status = drive(&mut vcpu, &mut process)?;
    let stats = vcpu.engine().stats();
    Ok(Exit {
        status,
        blocks: stats.translations.load(Ordering::Relaxed),
        guest_insns: stats.guest_insns.load(Ordering::Relaxed),
        ir_ops: stats.ops.load(Ordering::Relaxed),
        translate_nanos: stats.translate_nanos.load(Ordering::Relaxed),
    })
}

/// The loop: run guest code, then serve what stopped it.
fn drive<G>(vcpu: &mut Vcpu<G>, process: &mut Process) -> Result<i32, UserError>
where
    G: Guest,
    G::Cpu: UserCpu + CpuState,
{
    loop {
        let code = vcpu.run()?;
        match code {
            RET_SYSCALL => {
                let cpu = vcpu.cpu_mut();
                let (nr, raw) = cpu.syscall_request();
                let (sys, a) = syscall::table(process.arch, nr, raw);
                match process.syscall(cpu, sys, nr, a) {
                    Outcome::Return(r) => cpu.syscall_return(r),
                    Outcome::Exit(status) => return Ok(status),
                    Outcome::Restored => {}
                    Outcome::Killed(info) => return Ok(fatal(info, cpu.pc())),
                }
                if std::mem::take(&mut process.flush_tlb) {
                    vcpu.flush_tlb();
                }
                for (start, end) in std::mem::take(&mut process.invalidate) {
                    vcpu.engine().invalidate_phys_range(start, end);
                }
            }
            RET_FAULT => {
                let info = vcpu.cpu().recorded_signal();
                log::debug!(
                    "guest fault {} at pc {:#x}, address {:#x}",
                    signal::name(info.signo),
                    vcpu.cpu().pc(),
                    info.addr
                );
                process.signals.force(info);
                let space = process.space.clone();
                let cpu = vcpu.cpu_mut();
                if let Delivery::Fatal(info) = process.signals.deliver(cpu, &space, info) {
                    return Ok(fatal(info, cpu.pc()));
                }
            }
            _ => {}
        }
        // Host signals forwarded to the guest, then whatever is deliverable.
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        for s in signal::signals_in(signal::take_host_signals()) {
            process
                .signals
                .queue(SigInfo::sent(s, signal::si::USER, pid, 0));
        }
        while let Some(info) = process.signals.take_deliverable() {
            let space = process.space.clone();
            let cpu = vcpu.cpu_mut();
            if let Delivery::Fatal(info) = process.signals.deliver(cpu, &space, info) {
                return Ok(fatal(info, cpu.pc()));
            }
        }
    }
}

/// Reports a fatal signal the way a shell would see the process die, and returns 128 + signo.
fn fatal(info: SigInfo, pc: u64) -> i32 {
    let mut line = format!(
        "tern: guest killed by {} at pc {pc:#x}",
        signal::name(info.signo)
    );
    if info.fault {
        line.push_str(&format!(" (address {:#x})", info.addr));
    }
    // This one line is the documented report of a guest's death (like a shell's).
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    128 + info.signo as i32
}

/// Convenience for the `tern` binary: whether `status` means "killed by a signal".
pub fn killed_by_signal(status: i32) -> Option<u32> {
    (status > 128 && status <= 128 + signal::NSIG as i32).then(|| (status - 128) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_a_read_error() {
        let e = run(
            Path::new("/nonexistent/prog"),
            &[],
            &[],
            &UserOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, UserError::Read { .. }));
    }

    #[test]
    fn a_dynamic_program_is_refused_with_the_link_static_hint() {
        let dir = std::env::temp_dir().join(format!("tern-lu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dyn");
        let interp = [
            u64::from(goblin::elf::program_header::PT_INTERP),
            4,
            0x1000,
            0x10000,
            4,
            4,
        ];
        let elf = elf::tests::tiny_elf(goblin::elf::header::ET_EXEC, 0x10000, b"/ld\0", &[interp]);
        std::fs::write(&path, elf).unwrap();
        let e = run(&path, &[], &[], &UserOptions::default()).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("dynamically linked programs are not supported yet; link with -static"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_trampoline_encodes_li_a7_139_and_ecall() {
        // addi a7, x0, 139: imm 139 << 20 | rd 17 << 7 | opcode 0x13.
        assert_eq!(SIGRETURN_TRAMPOLINE[0], 139 << 20 | 17 << 7 | 0x13);
        assert_eq!(SIGRETURN_TRAMPOLINE[1], 0x73);
    }
}
