//! Translation-speed and code-size measurements (ignored tests; run with
//! `cargo test --release -p backend-x86_64 translation_speed -- --ignored --nocapture`).
//!
//! Two workloads:
//! - *random*: `ir::testing::arb_block`, every op kind in odd mixes (the worst case);
//! - *realistic*: blocks shaped like a RISC-V frontend's output ([`riscv_like_block`]): ~40
//!   guest instructions, each an `InsnStart` and 1-3 ops on the `x1..x31` globals (ALU with
//!   registers and immediates, shifts, address arithmetic with loads and stores, set-less-than),
//!   ending in a conditional branch and two `goto_tb`s.

use ir::abi::offsets::HEADER_SIZE;
use ir::{BinOp, Block, Builder, Cond, ExtFrom, GlobalDef, MemOp, Size, Type};
use std::sync::Arc;

use crate::{Backend, BackendConfig, BackendError};

/// A small deterministic generator (xorshift64*), so the workload is the same every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const XNAMES: [&str; 32] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30", "x31",
];

/// A RISC-V-like CPU state: the header, then `x0..x31` (x0 is never a global), then `pc`.
/// Globals `0..31` are `x1..x31`, global 31 is `pc`.
pub(crate) fn riscv_globals() -> Arc<[GlobalDef]> {
    let x = |i: usize| HEADER_SIZE + 8 * i as u32;
    let mut g: Vec<GlobalDef> = (1..32)
        .map(|i| GlobalDef {
            name: XNAMES[i],
            ty: Type::I64,
            offset: x(i),
        })
        .collect();
    g.push(GlobalDef {
        name: "pc",
        ty: Type::I64,
        offset: x(32),
    });
    g.into()
}

/// One block of `insns` RISC-V-like instructions (see the module docs).
pub(crate) fn riscv_like_block(rng: &mut Rng, globals: &Arc<[GlobalDef]>, insns: usize) -> Block {
    let mut b = Builder::new(globals.clone(), Type::I64);
    // Register choice skewed towards a few hot registers, like compiled code.
    let reg = |rng: &mut Rng| {
        let r = if rng.below(4) == 0 {
            rng.below(31)
        } else {
            [1, 2, 9, 10, 11, 12, 14, 15][rng.below(8) as usize] - 1
        };
        r as usize
    };
    let mut pc = 0x8000_0000u64 + rng.below(1 << 20) * 4;
    for _ in 0..insns {
        b.insn_start(pc, 0);
        pc += 4;
        let (d, s1, s2) = (reg(rng), reg(rng), reg(rng));
        let (d, s1, s2) = (b.global(d), b.global(s1), b.global(s2));
        let imm = (rng.below(4096) as i64 - 2048) as u64;
        match rng.below(16) {
            // addi / andi / ori / xori
            0..=3 => {
                let op = [BinOp::Add, BinOp::Add, BinOp::And, BinOp::Xor][rng.below(4) as usize];
                b.binary_imm(op, d, s1, imm);
            }
            // add / sub / and / or / xor
            // add / sub / and / or / xor, through a scratch half of the time (as frontends do
            // when rd may alias a source)
            4..=6 => {
                let op = [BinOp::Add, BinOp::Sub, BinOp::And, BinOp::Or, BinOp::Xor]
                    [rng.below(5) as usize];
                if rng.below(2) == 0 {
                    let t = b.scratch(Type::I64);
                    b.binary(op, t, s1, s2);
                    b.mov(d, t);
                } else {
                    b.binary(op, d, s1, s2);
                }
            }
            // slli / srli / srai
            7 => {
                let op = [BinOp::Shl, BinOp::Shr, BinOp::Sar][rng.below(3) as usize];
                b.binary_imm(op, d, s1, rng.below(64));
            }
            // sll / srl (the count masked by the IR semantics)
            8 => {
                let op = [BinOp::Shl, BinOp::Shr][rng.below(2) as usize];
                b.binary(op, d, s1, s2);
            }
            // addiw: add, then sign-extend the low 32 bits
            9 => {
                let t = b.scratch(Type::I64);
                b.addi(t, s1, imm);
                b.ext(ExtFrom::S32, d, t);
            }
            // ld / lw / lbu
            10..=12 => {
                let t = b.scratch(Type::I64);
                b.addi(t, s1, imm);
                let mop = [
                    MemOp::unsigned(Size::B64),
                    MemOp::signed(Size::B32),
                    MemOp::unsigned(Size::B8),
                ][rng.below(3) as usize];
                if rng.below(2) == 0 {
                    let v = b.scratch(Type::I64);
                    b.load(v, t, mop, 0);
                    b.mov(d, v);
                } else {
                    b.load(d, t, mop, 0);
                }
            }
            // sd / sw
            13 | 14 => {
                let t = b.scratch(Type::I64);
                b.addi(t, s1, imm);
                let size = if rng.below(2) == 0 {
                    Size::B64
                } else {
                    Size::B32
                };
                b.store(s2, t, MemOp::unsigned(size), 0);
            }
            // slt / sltu
            _ => {
                let c = if rng.below(2) == 0 {
                    Cond::Lt
                } else {
                    Cond::Ltu
                };
                b.setcond(c, d, s1, s2);
            }
        }
    }
    // beq s1, s2, taken ; fallthrough: pc += 4, goto_tb 0 ; taken: pc = target, goto_tb 1
    b.insn_start(pc, 0);
    let (s1, s2) = (b.global(reg(rng)), b.global(reg(rng)));
    let pcg = b.global(31);
    let taken = b.new_label();
    b.brcond(Cond::Eq, s1, s2, taken);
    b.movi(pcg, pc + 4);
    b.goto_tb(0);
    b.set_label(taken);
    b.movi(pcg, pc.wrapping_add(imm_branch(rng)));
    b.goto_tb(1);
    b.finish()
}

fn imm_branch(rng: &mut Rng) -> u64 {
    (rng.below(8192) as i64 - 4096) as u64 & !1
}

/// CPU time of this thread, so other processes on the machine do not inflate the figures.
struct CpuClock(std::time::Duration);

impl CpuClock {
    fn now() -> CpuClock {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to the valid pointer we pass.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        CpuClock(std::time::Duration::new(
            ts.tv_sec as u64,
            ts.tv_nsec as u32,
        ))
    }

    fn elapsed(&self) -> std::time::Duration {
        CpuClock::now().0.saturating_sub(self.0)
    }
}

/// Reads every op and temp of `b` (what a frontend or optimizer that just produced the block
/// leaves in the cache), returning something that depends on all of it.
fn touch(b: &Block) -> u64 {
    let mut x = b.temps.iter().fold(0u64, |x, t| x ^ t.ty.bits() as u64);
    for op in &b.ops {
        x = x.wrapping_add(op.def().map_or(1, |d| d.0 as u64));
    }
    x
}

/// Compiles every block `rounds` times into one backend; returns the best ns/op with the IR
/// in the cache (the block was just built, as in the engine: each compile is preceded by a
/// [`touch`] of its block, whose time alone is measured and subtracted), the best ns/op with
/// the IR cold (3000 blocks do not fit the caches), and the bytes of code per op.
/// Times are thread CPU times.
fn measure(blocks: &[Block], rounds: usize) -> (f64, f64, f64) {
    let ops: usize = blocks.iter().map(|b| b.ops.len()).sum();
    let mut be = Backend::new(BackendConfig::default()).unwrap();
    let (mut hot, mut cold) = (f64::MAX, f64::MAX);
    let mut bytes = 0;
    let mut sink = 0u64;
    for _ in 0..rounds {
        be.flush();
        bytes = 0;
        let start = CpuClock::now();
        for (i, blk) in blocks.iter().enumerate() {
            match be.compile(blk, i as u32) {
                Ok(cb) => bytes += cb.len,
                Err(BackendError::BufferFull) => be.flush(),
                Err(e) => panic!("{e}"),
            }
        }
        cold = cold.min(start.elapsed().as_nanos() as f64 / ops as f64);
        be.flush();
        let start = CpuClock::now();
        for (i, blk) in blocks.iter().enumerate() {
            sink ^= touch(blk);
            if let Err(BackendError::BufferFull) = be.compile(blk, i as u32) {
                be.flush();
            }
        }
        let both = start.elapsed();
        let start = CpuClock::now();
        for blk in blocks {
            sink ^= touch(blk);
        }
        let t = both.saturating_sub(start.elapsed());
        hot = hot.min(t.as_nanos() as f64 / ops as f64);
    }
    std::hint::black_box(sink);
    (hot, cold, bytes as f64 / ops as f64)
}

pub(crate) fn random_blocks(n: usize) -> Vec<Block> {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| {
            ir::testing::arb_block()
                .new_tree(&mut runner)
                .unwrap()
                .current()
        })
        .collect()
}

pub(crate) fn realistic_blocks(n: usize) -> Vec<Block> {
    let g = riscv_globals();
    let mut rng = Rng::new(0x7e57_0001);
    (0..n).map(|_| riscv_like_block(&mut rng, &g, 40)).collect()
}

#[test]
fn realistic_blocks_are_valid() {
    for b in realistic_blocks(50) {
        ir::verify::verify(&b).unwrap();
    }
}

#[test]
#[ignore = "measurement: cargo test --release -p backend-x86_64 translation_speed -- --ignored --nocapture"]
fn translation_speed() {
    type Make = fn(usize) -> Vec<Block>;
    let workloads: [(&str, Make); 2] = [("random", random_blocks), ("realistic", realistic_blocks)];
    for (name, make) in workloads {
        // TERN_SPEED_ONLY=random|realistic measures one workload (for profiles).
        if std::env::var("TERN_SPEED_ONLY").is_ok_and(|w| w != name) {
            continue;
        }
        let blocks = make(3000);
        let ops: usize = blocks.iter().map(|b| b.ops.len()).sum();
        // More rounds (TERN_SPEED_ROUNDS) make the compile loop dominate a profile.
        let rounds = std::env::var("TERN_SPEED_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let (hot, cold, bytes) = measure(&blocks, rounds);
        println!(
            "{name:>9}: {} blocks, {ops} ops ({:.0} per block): {hot:.1} ns/op with the IR in \
             cache ({cold:.1} cold), {bytes:.1} bytes/op",
            blocks.len(),
            ops as f64 / blocks.len() as f64
        );
    }
}

/// Prints one realistic block and its code (`-- --ignored --nocapture`).
#[test]
#[ignore = "listing for inspection"]
fn listing_of_a_realistic_block() {
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, NasmFormatter};
    let blocks = realistic_blocks(1);
    let mut be = Backend::new(BackendConfig::default()).unwrap();
    let cb = be.compile(&blocks[0], 1).unwrap();
    let code = be.code(&cb).to_vec();
    let mut dec = Decoder::with_ip(64, &code, 0, DecoderOptions::NONE);
    let mut fmt = NasmFormatter::new();
    let mut ins = Instruction::default();
    println!("{}", ir::testing::print_block(&blocks[0]));
    while dec.can_decode() {
        let off = dec.position();
        dec.decode_out(&mut ins);
        let mut t = String::new();
        fmt.format(&ins, &mut t);
        println!("{off:5} {:2} {t}", ins.len());
    }
}
