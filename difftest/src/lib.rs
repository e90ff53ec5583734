//! `tern difftest`: lockstep differential testing of tern's x86_64 translation (JIT and IR
//! interpreter) against the host CPU.
//!
//! A [`gen::Generator`] makes random, valid instruction sequences confined to a sandbox
//! (a code area, a data page that r15 points to, a stack page; see [`state`]); each sequence
//! runs from the same initial state natively in a ptrace'd child process ([`native`]) and
//! through the frontend under `ExecMode::Jit` and `ExecMode::Interpreter` ([`emulated`]).
//! The end states — all GPRs, rip, RFLAGS (the arithmetic flags the SDM leaves undefined at
//! that point masked, see [`seq::undefined_flags`]), xmm0-15, MXCSR, the x87 state (FCW, FSW
//! with undefined condition codes masked, tags, the registers in use), the data and stack
//! pages, and how the run stopped (the trailing `int3`, or a fault's vector with rip at the
//! faulting instruction) — must be equal. On a divergence the harness runs ever longer
//! prefixes of the sequence to find the first instruction after which the states differ,
//! and can [`minimize`](minimize::minimize) the sequence. Every sequence is reproducible from
//! the run's seed and its index ([`sequence_seed`]).
//!
//! Coverage is the number of distinct mnemonics generated over
//! [`gen::implemented_mnemonics`] for the classes run (the frontend's dispatch arms that the
//! generator can sandbox). Throughput counts the instructions executed up to the end or the
//! fault of each sequence, over the time spent generating and running them on all three sides.
//!
//! Choices: the native side is a persistent child per run (fork once, seccomp strict mode,
//! state in and out through ptrace: the cleanest way to capture the state at a fault). The
//! emulated side reuses one engine per mode and invalidates the code area between sequences;
//! the interpreter runs blocks of at most 7 instructions while the JIT's are as long as the
//! engine allows, so block boundaries (where lazy flags and registers go through the CPU
//! state) fall at different points on the two sides.
//! Instructions the frontend answers with #UD are found once per run by probing each
//! candidate encoding through the interpreter, and left out (they are listed in the
//! report), so a frontend still growing does not make the tester report its gaps as bugs.

/// The iced-x86 the sequences are made of (for callers naming mnemonics).
pub use iced_x86;

pub mod emulated;
pub mod gen;
pub mod minimize;
pub mod native;
pub mod seq;
pub mod state;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use accel_tcg::ExecMode;
use iced_x86::{Code, Mnemonic};

use emulated::{Emulated, EmulatedError};
use gen::{Class, Generator};
use native::{Native, NativeError};
use seq::{encode, listing, undefined_flags, Encoded, Sequence};
use state::{compare, End, FieldDiff, MachineState, CODE_ADDR};

/// Errors that stop a run (a divergence is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The native runner failed.
    #[error("native run: {0}")]
    Native(#[from] NativeError),
    /// An emulated runner failed.
    #[error("emulated run: {0}")]
    Emulated(#[from] EmulatedError),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The run's seed; sequence `i` comes from [`sequence_seed`]`(seed, i)`.
    pub seed: u64,
    /// Number of sequences.
    pub sequences: usize,
    /// Index of the first sequence (to replay one sequence of an earlier run).
    pub first: usize,
    /// Instructions per sequence (setups included).
    pub len: usize,
    /// Instruction classes ([`gen::Class::DEFAULT`], all of them, when empty).
    pub classes: Vec<Class>,
    /// Shrink the first divergent sequence.
    pub minimize: bool,
    /// Bound on one native run.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            sequences: 1000,
            first: 0,
            len: 50,
            classes: Vec::new(),
            minimize: false,
            timeout: Duration::from_secs(2),
        }
    }
}

/// The emulated side that disagreed with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The JIT.
    Jit,
    /// The IR interpreter.
    Interpreter,
}

/// A sequence whose emulated end state differs from the host's.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The run's seed.
    pub seed: u64,
    /// The sequence's index in the run.
    pub index: usize,
    /// Which side disagreed (the JIT is checked first).
    pub side: Side,
    /// The sequence (minimized when asked).
    pub sequence: Sequence,
    /// Index of the first instruction after which the states differ.
    pub first: usize,
    /// Its mnemonic.
    pub mnemonic: Mnemonic,
    /// Disassembly with that instruction marked `=>`.
    pub listing: String,
    /// The host's state after the prefix ending with that instruction.
    pub native: MachineState,
    /// The emulated state there.
    pub emulated: MachineState,
    /// The fields that differ.
    pub diffs: Vec<FieldDiff>,
    /// Length of the sequence before minimizing.
    pub original_len: usize,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Sequences run.
    pub sequences: usize,
    /// Instructions executed and compared (up to the end or the fault of each sequence).
    pub instructions: u64,
    /// Sequences that stopped on a fault (same fault on every side).
    pub faults: usize,
    /// Wall-clock time of the sequences (generation and all three runs).
    pub elapsed: Duration,
    /// Divergences (the run stops at the first).
    pub divergences: Vec<Divergence>,
    /// Distinct mnemonics generated that the frontend implements.
    pub generated: BTreeSet<String>,
    /// Size of the frontend's implemented list for the classes run
    /// ([`gen::implemented_mnemonics`]).
    pub implemented: usize,
    /// Mnemonics of that list the run did not generate.
    pub not_generated: Vec<String>,
    /// Candidate encodings left out because the frontend raises #UD for them, with whether
    /// only their memory-operand form was (the register form is still generated).
    pub unimplemented: Vec<(Code, bool)>,
}

impl Report {
    /// Instructions compared per second.
    pub fn insns_per_sec(&self) -> f64 {
        self.instructions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "difftest: {} sequences, {} instructions, {} divergences, {:.0} insns/s, mnemonic coverage {}/{} ({:.0}%)",
            self.sequences,
            self.instructions,
            self.divergences.len(),
            self.insns_per_sec(),
            self.generated.len(),
            self.implemented,
            100.0 * self.generated.len() as f64 / self.implemented.max(1) as f64
        )
    }
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "divergence ({:?} vs host): seed {:#x}, sequence {}, first at instruction {} ({:?})",
            self.side, self.seed, self.index, self.first, self.mnemonic
        )?;
        if self.sequence.items.len() != self.original_len {
            writeln!(
                f,
                "minimized from {} to {} instructions",
                self.original_len,
                self.sequence.items.len()
            )?;
        }
        write!(f, "{}", self.listing)?;
        writeln!(f, "{:<14} {:<40} {:?}", "field", "host", self.side)?;
        writeln!(
            f,
            "{:<14} {:<40} {:#x}",
            "rip",
            format!("{:#x}", self.native.rip),
            self.emulated.rip
        )?;
        for d in self.diffs.iter().filter(|d| d.field != "rip") {
            writeln!(f, "{:<14} {:<40} {}", d.field, d.left, d.right)?;
        }
        Ok(())
    }
}

/// The seed of sequence `index` of a run with `seed` (a SplitMix-style mix, so neighbouring
/// indices give unrelated sequences).
pub fn sequence_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Most instructions per block for the interpreter side (the JIT keeps the engine's default):
/// the two sides split sequences into blocks differently.
const INTERPRETER_BLOCK: u32 = 7;

/// The three runners.
pub struct Harness {
    native: Native,
    jit: Emulated,
    interp: Emulated,
}

/// The three end states of one sequence.
struct Outcome {
    enc: Encoded,
    native: MachineState,
    jit: MachineState,
    interp: MachineState,
    /// Index of the item the run stopped at (`items.len()` for the trailing `int3`).
    stop: usize,
    /// Undefined flags there.
    undefined: u64,
}

impl Outcome {
    /// The first emulated side that differs from the host, with the differences.
    fn divergence(&self) -> Option<(Side, Vec<FieldDiff>)> {
        let j = compare(&self.native, &self.jit, self.undefined);
        if !j.is_empty() {
            return Some((Side::Jit, j));
        }
        let i = compare(&self.native, &self.interp, self.undefined);
        (!i.is_empty()).then_some((Side::Interpreter, i))
    }
}

impl Harness {
    /// Starts the native child and both engines. Set any fault injection before.
    pub fn new(timeout: Duration) -> Result<Harness, Error> {
        Ok(Harness {
            native: Native::new(timeout)?,
            jit: Emulated::new(ExecMode::Jit)?,
            // Short blocks for the interpreter: the same code split at other points.
            interp: Emulated::with_block_limit(ExecMode::Interpreter, INTERPRETER_BLOCK)?,
        })
    }

    /// Runs `seq` on all three sides; `None` when it cannot be encoded.
    fn outcome(&mut self, seq: &Sequence) -> Result<Option<Outcome>, Error> {
        let Ok(enc) = encode(&seq.items, seq.init.rip) else {
            return Ok(None);
        };
        let native = self.native.run(&enc.bytes, &seq.init)?;
        let jit = self.jit.run(&enc.bytes, &seq.init)?;
        let interp = self.interp.run(&enc.bytes, &seq.init)?;
        let stop = match native.end {
            End::Trap => seq.items.len(),
            End::Fault(_) => enc
                .addrs
                .iter()
                .position(|&a| a == native.rip)
                .unwrap_or(seq.items.len()),
        };
        let undefined = undefined_flags(&seq.items)[stop];
        Ok(Some(Outcome {
            enc,
            native,
            jit,
            interp,
            stop,
            undefined,
        }))
    }

    /// Whether `seq` diverges (on either side).
    pub fn diverges(&mut self, seq: &Sequence) -> Result<bool, Error> {
        Ok(self.outcome(seq)?.is_some_and(|o| o.divergence().is_some()))
    }

    /// The first instruction of a divergent `seq` after which the states differ: the
    /// shortest diverging prefix. Returns its index and the prefix's outcome.
    fn locate(&mut self, seq: &Sequence) -> Result<Option<(usize, Outcome)>, Error> {
        for k in 1..=seq.items.len() {
            let prefix = Sequence {
                items: seq.items[..k].to_vec(),
                init: seq.init.clone(),
            };
            if let Some(o) = self.outcome(&prefix)? {
                if o.divergence().is_some() {
                    return Ok(Some((k - 1, o)));
                }
            }
        }
        Ok(None)
    }

    /// The mnemonic of the first diverging instruction of `seq`, if it diverges.
    fn first_mnemonic(&mut self, seq: &Sequence) -> Result<Option<Mnemonic>, Error> {
        if !self.diverges(seq)? {
            return Ok(None);
        }
        Ok(self
            .locate(seq)?
            .map(|(k, _)| seq.items[k].instr.mnemonic()))
    }

    /// Describes the divergence of `seq` (sequence `index` of a run with `seed`), minimized
    /// first when asked; `None` if it does not diverge.
    pub fn explain(
        &mut self,
        seed: u64,
        index: usize,
        seq: &Sequence,
        minimize: bool,
    ) -> Result<Option<Divergence>, Error> {
        let Some(m) = self.first_mnemonic(seq)? else {
            return Ok(None);
        };
        let seq = if minimize {
            // A candidate must still diverge first at an instruction with the same mnemonic.
            let mut err = None;
            let small = minimize::minimize(seq, |cand| match self.first_mnemonic(cand) {
                // Dropping a definer could make a later instruction read undefined flags.
                Ok(found) => found == Some(m) && !seq::reads_undefined(&cand.items),
                Err(e) => {
                    err.get_or_insert(e);
                    false
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            small
        } else {
            seq.clone()
        };
        let Some((first, o)) = self.locate(&seq)? else {
            return Ok(None);
        };
        let (side, diffs) = o.divergence().expect("located prefix diverges");
        let full = encode(&seq.items, seq.init.rip).map(|e| listing(&seq.items, &e, Some(first)));
        Ok(Some(Divergence {
            seed,
            index,
            side,
            first,
            mnemonic: seq.items[first].instr.mnemonic(),
            listing: full.unwrap_or_else(|_| listing(&seq.items[..=first], &o.enc, Some(first))),
            emulated: match side {
                Side::Jit => o.jit,
                Side::Interpreter => o.interp,
            },
            native: o.native,
            diffs,
            original_len: seq.items.len(),
            sequence: seq,
        }))
    }

    /// Whether the frontend implements `code` as sampled in `instr` (it does not raise #UD
    /// at its address).
    fn implemented(&mut self, instr: iced_x86::Instruction) -> Result<bool, Error> {
        let items = vec![seq::Item {
            instr,
            id: 0,
            target: None,
        }];
        let mut init = Generator::new(0, &[]).sequence(0).init;
        init.regs[0] = 1;
        init.rip = CODE_ADDR;
        let Ok(enc) = encode(&items, init.rip) else {
            return Ok(true);
        };
        let s = self.interp.run(&enc.bytes, &init)?;
        Ok(!(s.end == End::Fault(6) && s.rip == CODE_ADDR))
    }
}

/// Runs `config`: generates the sequences, runs each on the host, the JIT and the
/// interpreter, compares, and stops at the first divergence.
pub fn run(config: &Config) -> Result<Report, Error> {
    let mut h = Harness::new(config.timeout)?;
    let mut gen = Generator::new(config.seed, &config.classes);
    let implemented: BTreeSet<Mnemonic> = gen::implemented_mnemonics(&config.classes)
        .into_iter()
        .collect();
    let mut report = Report {
        implemented: implemented.len(),
        ..Report::default()
    };
    // Leave out what the frontend does not implement (yet).
    let mut missing = Vec::new();
    for code in gen.codes() {
        let mut broken = [false; 2];
        for (b, memory) in broken.iter_mut().zip([false, true]) {
            if let Some(i) = gen.sample(code, memory) {
                *b = !h.implemented(i)?;
            }
        }
        match broken {
            [true, _] => missing.push((code, false)),
            [false, true] => missing.push((code, true)),
            _ => {}
        }
    }
    if !missing.is_empty() {
        log::info!(
            "difftest: {} candidate encodings raise #UD in the frontend and are left out: {:?}",
            missing.len(),
            missing
        );
    }
    for i in gen.hand_written() {
        if !h.implemented(i)? {
            missing.push((i.code(), false));
        }
    }
    for &(code, memory_only) in &missing {
        gen.exclude(code, memory_only);
    }
    report.unimplemented = missing;

    let start = Instant::now();
    for index in config.first..config.first + config.sequences {
        gen.reseed(sequence_seed(config.seed, index));
        let seq = gen.sequence(config.len);
        let Some(o) = h.outcome(&seq)? else {
            log::warn!("difftest: sequence {index} could not be encoded; skipped");
            continue;
        };
        report.sequences += 1;
        report.instructions += (o.stop + usize::from(o.stop < seq.items.len())) as u64;
        if o.native.end != End::Trap {
            report.faults += 1;
        }
        for it in &seq.items[..o.stop.min(seq.items.len())] {
            let m = it.instr.mnemonic();
            if implemented.contains(&m) {
                report.generated.insert(format!("{m:?}").to_lowercase());
            }
        }
        if o.divergence().is_some() {
            report.elapsed = start.elapsed();
            if let Some(d) = h.explain(config.seed, index, &seq, config.minimize)? {
                report.divergences.push(Divergence {
                    original_len: seq.items.len(),
                    ..d
                });
            }
            break;
        }
    }
    if report.divergences.is_empty() {
        report.elapsed = start.elapsed();
    }
    report.not_generated = implemented
        .iter()
        .map(|m| format!("{m:?}").to_lowercase())
        .filter(|m| !report.generated.contains(m))
        .collect();
    Ok(report)
}
