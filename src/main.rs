//! The `tern` command.

mod accel_select;
mod difftest_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tern::x86_64::machine::{self, DriveConfig, MachineConfig, SerialOutput};

/// Exit status for bad flags, bad input files and unusable accelerators.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "tern",
    version,
    about = "Runs x86_64 guests under KVM (and, later, x86_64 and riscv64 guests on a JIT)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a guest kernel on a virtual machine.
    Run(RunArgs),
    /// Run a static Linux program (riscv64 or x86_64) through the JIT.
    User(UserArgs),
    /// Compare the x86_64 JIT and interpreter with the host CPU on random instruction sequences.
    Difftest(difftest_cmd::DifftestArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UserArch {
    Riscv64,
    #[value(name = "x86_64")]
    X86_64,
}

#[derive(clap::Args)]
struct UserArgs {
    /// Guest architecture; read from the ELF header when omitted.
    #[arg(long, value_enum)]
    arch: Option<UserArch>,
    /// Print each system call with its arguments and result to stderr.
    #[arg(long)]
    strace: bool,
    /// Run translated code with the IR interpreter instead of the JIT.
    #[arg(long)]
    interpreter: bool,
    /// Log each translated block to stderr: any of in_asm,op,op_opt,out_asm (QEMU's -d words).
    #[arg(long, value_name = "ITEMS")]
    log: Option<String>,
    /// Only log blocks that start in START..END (hexadecimal guest addresses).
    #[arg(long, value_name = "START..END")]
    log_range: Option<String>,
    /// At exit, print to stderr what translation cost: blocks, guest instructions, IR ops,
    /// time, and nanoseconds per guest instruction.
    #[arg(long)]
    stats: bool,
    /// The program.
    program: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Accel {
    /// KVM when /dev/kvm can be opened.
    Auto,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// The binary translator (not available yet).
    Tcg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    /// A QEMU-virt-like riscv64 board on the JIT (OpenSBI + Linux).
    Riscv64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Accelerator that runs the guest CPUs.
    #[arg(long, value_enum, default_value = "auto")]
    accel: Accel,
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    arch: Arch,
    /// Kernel: a bzImage, or an ELF with a PVH entry note (e.g. vmlinux). Without it, tern
    /// boots the Debian guest that scripts/guests/build.sh made (its vmlinux and initramfs).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initial ramdisk.
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = "console=ttyS0")]
    append: String,
    /// Guest memory, in bytes or with a K, M or G suffix.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    memory: u64,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    smp: u32,
    /// A virtio-blk disk backed by a host file: PATH or PATH,readonly. Repeatable.
    #[arg(long, value_parser = parse_drive)]
    drive: Vec<DriveConfig>,
    /// Serial console: stdio, file:PATH or none.
    #[arg(long, default_value = "stdio", value_parser = parse_serial)]
    serial: SerialOutput,
    /// End the run (exit status 6) after this many seconds of wall-clock time.
    #[arg(long)]
    timeout: Option<f64>,
    /// riscv64: the M-mode firmware (OpenSBI's fw_dynamic.bin). Default: the one
    /// scripts/guests/build.sh fetched, else Debian's opensbi package.
    #[arg(long)]
    bios: Option<PathBuf>,
    /// On the JIT: run translated code with the IR interpreter instead.
    #[arg(long)]
    interpreter: bool,
    /// On the JIT: log each translated block to stderr: any of in_asm,op,op_opt,out_asm
    /// (QEMU's -d words).
    #[arg(long, value_name = "ITEMS")]
    log: Option<String>,
    /// Only log blocks that start in START..END (hexadecimal guest virtual addresses).
    #[arg(long, value_name = "START..END")]
    log_range: Option<String>,
}

impl RunArgs {
    /// The JIT's settings from the flags.
    fn tcg_options(&self) -> Result<tern::TcgOptions, Failure> {
        let mut log = match &self.log {
            Some(items) => accel_tcg::LogConfig::parse(items)
                .map_err(|e| usage(anyhow::anyhow!("--log: {e}")))?,
            None => accel_tcg::LogConfig::default(),
        };
        if let Some(range) = &self.log_range {
            log.range = Some(parse_range(range).map_err(usage)?);
        }
        Ok(tern::TcgOptions {
            exec_mode: if self.interpreter {
                accel_tcg::ExecMode::Interpreter
            } else {
                accel_tcg::ExecMode::Jit
            },
            log,
        })
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        _ => (text, 0),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 512M, 2G)"))?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

fn parse_drive(text: &str) -> Result<DriveConfig, String> {
    let mut parts = text.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or("empty drive path")?;
    let mut read_only = false;
    for option in parts {
        match option {
            "readonly" | "readonly=on" | "ro" => read_only = true,
            other => return Err(format!("unknown drive option '{other}' (known: readonly)")),
        }
    }
    Ok(DriveConfig {
        path: PathBuf::from(path),
        read_only,
    })
}

fn parse_serial(text: &str) -> Result<SerialOutput, String> {
    match text {
        "stdio" => Ok(SerialOutput::Stdio),
        "none" => Ok(SerialOutput::None),
        _ => match text.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SerialOutput::File(PathBuf::from(path))),
            _ => Err(format!("'{text}': expected stdio, file:PATH or none")),
        },
    }
}

/// A failure the user caused (exit 2) or tern's own (exit 1).
struct Failure {
    usage: bool,
    error: anyhow::Error,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let block_log = match &cli.command {
        Command::User(u) => u.log.is_some(),
        Command::Run(r) => r.log.is_some(),
        Command::Difftest(_) => false,
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    logger.format(|buf, record| {
        use std::io::Write;
        // Block logs (--log) are printed as they are, like QEMU's -d output.
        if record.target() == "tern::log" {
            writeln!(buf, "{}", record.args())
        } else {
            writeln!(
                buf,
                "[{} {} {}] {}",
                buf.timestamp_millis(),
                record.level(),
                record.target(),
                record.args()
            )
        }
    });
    if block_log {
        logger.filter_module("tern::log", log::LevelFilter::Info);
    }
    logger.init();
    let result = match cli.command {
        Command::Difftest(args) => return difftest_cmd::difftest(args),
        Command::Run(args) => run(args),
        Command::User(args) => user(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("tern: {:#}", failure.error);
            ExitCode::from(if failure.usage { EXIT_USAGE } else { 1 })
        }
    }
}

/// `tern user`: the guest's exit status becomes tern's (128 + signal for a fatal signal).
fn user(args: UserArgs) -> Result<u8, Failure> {
    // Without --arch the program's ELF header decides; with it, a mismatch is refused.
    let arch = args.arch.map(|a| match a {
        UserArch::Riscv64 => linux_user::elf::Arch::Riscv64,
        UserArch::X86_64 => linux_user::elf::Arch::X86_64,
    });
    let mut log = match &args.log {
        Some(items) => {
            accel_tcg::LogConfig::parse(items).map_err(|e| usage(anyhow::anyhow!("--log: {e}")))?
        }
        None => accel_tcg::LogConfig::default(),
    };
    if let Some(range) = &args.log_range {
        log.range = Some(parse_range(range).map_err(usage)?);
    }
    let options = linux_user::UserOptions {
        log,
        strace: args.strace,
        arch,
        exec_mode: if args.interpreter {
            accel_tcg::ExecMode::Interpreter
        } else {
            accel_tcg::ExecMode::Jit
        },
        ..linux_user::UserOptions::default()
    };
    let env = linux_user::host_env();
    match linux_user::run(&args.program, &args.args, &env, &options) {
        Ok(exit) => {
            if args.stats {
                eprintln!(
                    "tern: translated {} blocks, {} guest instructions, {} IR ops in {:.1} ms: \
                     {:.0} ns per guest instruction",
                    exit.blocks,
                    exit.guest_insns,
                    exit.ir_ops,
                    exit.translate_nanos as f64 / 1e6,
                    exit.translate_nanos as f64 / exit.guest_insns.max(1) as f64
                );
            }
            Ok(exit.status as u8)
        }
        Err(e) => {
            let is_input = matches!(
                e,
                linux_user::UserError::Read { .. } | linux_user::UserError::Elf { .. }
            );
            // The message already names the cause; the error chain would repeat it.
            let error = anyhow::anyhow!("{e}");
            Err(if is_input {
                usage(error)
            } else {
                Failure {
                    usage: false,
                    error,
                }
            })
        }
    }
}

/// Parses `START..END` with hexadecimal (optionally 0x-prefixed) addresses.
fn parse_range(text: &str) -> anyhow::Result<(u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16);
    let (start, end) = text
        .split_once("..")
        .context("--log-range: expected START..END")?;
    let (start, end) = (
        hex(start).context("--log-range start")?,
        hex(end).context("--log-range end")?,
    );
    if start >= end {
        bail!("--log-range {text}: empty range");
    }
    Ok((start, end))
}

fn usage(error: anyhow::Error) -> Failure {
    Failure { usage: true, error }
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    if args.arch == Arch::Riscv64 {
        return run_riscv64(args);
    }
    let tcg = args.tcg_options()?;
    let accel = match args.accel {
        Accel::Auto => {
            let (choice, why) = accel_select::choose(&accel_select::HostVirt::detect());
            log::info!("--accel auto: {choice:?} ({why})");
            match choice {
                accel_select::Choice::Kvm => Accel::Kvm,
                accel_select::Choice::Tcg => Accel::Tcg,
            }
        }
        other => other,
    };
    let timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => return Err(usage(anyhow::anyhow!("--timeout {secs}: must be positive"))),
        None => None,
    };
    let (kernel, initrd) = match args.kernel {
        Some(kernel) => (kernel, args.initrd),
        None => {
            let dir = default_guest_dir().map_err(usage)?;
            let initrd = args.initrd.or(Some(dir.join("initramfs.cpio.gz")));
            (dir.join("vmlinux"), initrd)
        }
    };
    check_readable(&kernel, "kernel").map_err(usage)?;
    if let Some(initrd) = &initrd {
        check_readable(initrd, "initrd").map_err(usage)?;
    }
    let config = MachineConfig {
        kernel,
        initrd,
        cmdline: args.append,
        mem_size: args.memory,
        cpus: args.smp,
        drives: args.drive,
        serial: args.serial,
        console_escapes: true,
        timeout,
    };
    let outcome = if accel == Accel::Tcg {
        tern::x86_64::tcg_machine::run(&config, &tcg)
    } else {
        machine::run(&config)
    }
    .map_err(|e| Failure {
        usage: e.is_user_error(),
        error: e.into(),
    })?;
    let status = outcome.exit_status();
    match &outcome {
        machine::Outcome::GuestCrash(what) => eprintln!("tern: guest crashed: {what}"),
        machine::Outcome::Unresponsive(what) => eprintln!("tern: guest unresponsive: {what}"),
        machine::Outcome::Timeout(limit) => {
            eprintln!(
                "tern: time limit of {:.1} s reached; guest stopped",
                limit.as_secs_f64()
            )
        }
        _ => log::info!("guest ended: {outcome:?}, exit status {status}"),
    }
    Ok(status as u8)
}

/// Debian's OpenSBI (package `opensbi`).
const DEBIAN_OPENSBI: &str = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin";

/// `tern run --arch riscv64`: the riscv64 board on the JIT.
fn run_riscv64(args: RunArgs) -> Result<u8, Failure> {
    let tcg = args.tcg_options()?;
    if args.accel == Accel::Kvm {
        return Err(usage(anyhow::anyhow!(
            "--arch riscv64 runs on the JIT only (--accel tcg or auto)"
        )));
    }
    let timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => return Err(usage(anyhow::anyhow!("--timeout {secs}: must be positive"))),
        None => None,
    };
    let default_dir = || guest_dir("riscv64");
    let (kernel, initrd) = match args.kernel {
        Some(kernel) => (kernel, args.initrd),
        None => {
            let dir = default_dir().map_err(usage)?;
            let initrd = args.initrd.or(Some(dir.join("initramfs.cpio.gz")));
            (dir.join("Image"), initrd)
        }
    };
    check_readable(&kernel, "kernel").map_err(usage)?;
    if let Some(initrd) = &initrd {
        check_readable(initrd, "initrd").map_err(usage)?;
    }
    let firmware = match args.bios {
        Some(path) => path,
        None => {
            let candidates = [
                default_dir().ok().map(|d| d.join("fw_dynamic.bin")),
                Some(PathBuf::from(DEBIAN_OPENSBI)),
            ];
            candidates.into_iter().flatten().find(|p| p.is_file()).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "no riscv64 firmware found: install Debian's OpenSBI (apt-get install opensbi, which provides {DEBIAN_OPENSBI}) or pass --bios PATH"
                ))
            })?
        }
    };
    check_readable(&firmware, "firmware").map_err(|e| {
        usage(anyhow::anyhow!(
            "{e:#} (Debian's OpenSBI firmware is in package opensbi: {DEBIAN_OPENSBI})"
        ))
    })?;
    let config = tern::riscv64::machine::MachineConfig {
        firmware,
        kernel,
        initrd,
        cmdline: args.append,
        mem_size: args.memory,
        harts: args.smp,
        drives: args.drive,
        serial: args.serial,
        console_escapes: true,
        timeout,
        tcg,
    };
    let outcome = tern::riscv64::machine::run(&config).map_err(|e| Failure {
        usage: e.is_user_error(),
        error: e.into(),
    })?;
    Ok(report_outcome(&outcome))
}

/// Prints what the user needs to know about how the run ended; returns the exit status.
fn report_outcome(outcome: &machine::Outcome) -> u8 {
    let status = outcome.exit_status();
    match outcome {
        machine::Outcome::GuestCrash(what) => eprintln!("tern: guest crashed: {what}"),
        machine::Outcome::Unresponsive(what) => eprintln!("tern: guest unresponsive: {what}"),
        machine::Outcome::Timeout(limit) => {
            eprintln!(
                "tern: time limit of {:.1} s reached; guest stopped",
                limit.as_secs_f64()
            )
        }
        _ => log::info!("guest ended: {outcome:?}, exit status {status}"),
    }
    status as u8
}

/// The riscv64 guest built by `scripts/guests/build.sh --only riscv64`:
/// `$TERN_GUEST_DIR_RISCV64`, else `${TERN_CACHE:-$HOME/.cache/tern}/guests/current-riscv64`.
fn guest_dir(set: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("TERN_GUEST_DIR_RISCV64") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = match std::env::var_os("TERN_CACHE") {
                Some(cache) => PathBuf::from(cache),
                None => {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tern")
                }
            };
            cache.join(format!("guests/current-{set}"))
        }
    };
    if !dir.join("Image").is_file() {
        bail!("no --kernel given and no default guest in {}: build it with scripts/guests/build.sh --only {set}", dir.display());
    }
    Ok(dir)
}

/// The x86_64 guest built by `scripts/guests/build.sh`: `$TERN_GUEST_DIR`, else
/// `${TERN_CACHE:-$HOME/.cache/tern}/guests/current-x86_64`.
fn default_guest_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("TERN_GUEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = match std::env::var_os("TERN_CACHE") {
                Some(cache) => PathBuf::from(cache),
                None => {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tern")
                }
            };
            cache.join("guests/current-x86_64")
        }
    };
    if !dir.join("vmlinux").is_file() {
        bail!(
            "no --kernel given and no default guest in {}: build it with scripts/guests/build.sh",
            dir.display()
        );
    }
    Ok(dir)
}

fn check_readable(path: &std::path::Path, what: &str) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{what} {}", path.display()))?;
    if !meta.is_file() {
        bail!("{what} {}: not a regular file", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_suffixes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn drives_take_a_readonly_option() {
        let d = parse_drive("disk.img,readonly").unwrap();
        assert!(d.read_only && d.path == std::path::Path::new("disk.img"));
        assert!(!parse_drive("disk.img").unwrap().read_only);
        assert!(parse_drive("disk.img,bogus").is_err());
        assert!(parse_drive("").is_err());
    }

    #[test]
    fn serial_forms() {
        assert_eq!(parse_serial("stdio"), Ok(SerialOutput::Stdio));
        assert_eq!(
            parse_serial("file:/tmp/x"),
            Ok(SerialOutput::File(PathBuf::from("/tmp/x")))
        );
        assert!(parse_serial("file:").is_err());
        assert!(parse_serial("tcp").is_err());
    }
}
