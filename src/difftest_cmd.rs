//! `tern difftest`: random instruction sequences run on the host CPU, the JIT and the IR
//! interpreter from the same state; any difference is reported with the seed that replays it.

use std::process::ExitCode;
use std::time::Duration;

use difftest::gen::Class;
use difftest::{run, Config};

/// Arguments of `tern difftest`.
#[derive(clap::Args)]
pub struct DifftestArgs {
    /// Seed of the run (decimal or 0x-hex); from the clock when omitted (and printed).
    #[arg(long, value_parser = parse_u64)]
    seed: Option<u64>,
    /// Number of sequences.
    #[arg(long, default_value_t = 1000)]
    sequences: usize,
    /// Instructions per sequence.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=150))]
    len: u64,
    /// Index of the first sequence (with --sequences 1: replay one sequence of a run).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Instruction classes, comma-separated: alu, shift, muldiv, bit, string, cond, branch,
    /// stack, misc, sse, x87 (all when omitted).
    #[arg(long, value_delimiter = ',', value_parser = parse_class)]
    classes: Vec<Class>,
    /// Shrink a divergent sequence before printing it.
    #[arg(long)]
    minimize: bool,
    /// Per-sequence bound on the native run, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Test the tester: mistranslate this mnemonic (`rax ^= 1` after it) so the run must
    /// report a divergence.
    #[arg(long, value_name = "MNEMONIC", value_parser = parse_mnemonic)]
    inject_fault: Option<difftest::iced_x86::Mnemonic>,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))
}

fn parse_class(s: &str) -> Result<Class, String> {
    Class::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
        format!("unknown class {s:?} (one of {})", names.join(", "))
    })
}

fn parse_mnemonic(s: &str) -> Result<difftest::iced_x86::Mnemonic, String> {
    difftest::iced_x86::Mnemonic::values()
        .find(|m| format!("{m:?}").eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown mnemonic {s:?}"))
}

/// Runs the difftest: exit 0 without divergence, 1 with one, 2 when the harness cannot run.
pub fn difftest(args: DifftestArgs) -> ExitCode {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let config = Config {
        seed,
        sequences: args.sequences,
        first: args.first,
        len: args.len as usize,
        classes: args.classes.clone(),
        minimize: args.minimize,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    frontend::x86_64::fault_injection::set(args.inject_fault);
    let result = run(&config);
    frontend::x86_64::fault_injection::set(None);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tern: difftest: {e}");
            return ExitCode::from(2);
        }
    };
    println!("seed {seed:#x}: {}", report.summary());
    if !report.unimplemented.is_empty() {
        let list: Vec<String> = report
            .unimplemented
            .iter()
            .map(|(c, memory_only)| {
                format!("{c:?}{}", if *memory_only { " (memory form)" } else { "" })
            })
            .collect();
        println!(
            "left out ({} encodings the frontend answers with #UD): {}",
            list.len(),
            list.join(", ")
        );
    }
    if !report.not_generated.is_empty() && report.divergences.is_empty() && args.classes.is_empty()
    {
        println!("not generated: {}", report.not_generated.join(" "));
    }
    match report.divergences.first() {
        None => ExitCode::SUCCESS,
        Some(d) => {
            print!("{d}");
            let classes: Vec<&str> = args.classes.iter().map(|c| c.name()).collect();
            println!(
                "replay: tern difftest --seed {:#x} --first {} --sequences 1 --len {}{}",
                d.seed,
                d.index,
                args.len,
                if classes.is_empty() {
                    String::new()
                } else {
                    format!(" --classes {}", classes.join(","))
                }
            );
            ExitCode::from(1)
        }
    }
}
