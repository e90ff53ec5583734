//! JIT core benchmarks on the "toy" test guest: translation cost, a hot loop under the JIT and
//! the interpreter, the dispatcher with and without block chaining, and the softmmu fast path.
//! `cargo bench -p accel-tcg --bench jit`; results go to BENCHMARKS.md.

#[path = "../tests/toy/mod.rs"]
mod toy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use accel_tcg::{Engine, EngineConfig, ExecMode, RamAndBus, Vcpu};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use toy::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const CODE: u64 = 0x1000;

fn vcpu(mode: ExecMode, code: &[u8], config: impl FnOnce(&mut EngineConfig)) -> Vcpu<Toy> {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
    ram.write_slice(code, GuestAddress(CODE)).unwrap();
    let mut cfg = EngineConfig {
        mode,
        ..EngineConfig::default()
    };
    config(&mut cfg);
    let engine = Engine::new(
        Toy::default(),
        Arc::new(RamAndBus::new(ram, devices::bus::Bus::new())),
        cfg,
    )
    .unwrap();
    Vcpu::new(engine, ToyCpu::new(CODE))
}

/// `iterations` rounds of `body`, counted down in r7.
fn counted_loop(iterations: i32, body: &[[u8; 8]]) -> Vec<u8> {
    let mut insns = vec![insn(LI, 7, 0, iterations), insn(LI, 1, 0, 0x10_0000)];
    insns.extend_from_slice(body);
    insns.push(insn(ADDI, 7, 7, -1));
    insns.push(insn(BNEZ, 7, 0, -8 * (body.len() as i32 + 1)));
    insns.push(insn(HALT, 0, 0, 0));
    program(&insns)
}

fn run_once(mode: ExecMode, code: &[u8], config: impl Fn(&mut EngineConfig) + Copy) -> Duration {
    let mut v = vcpu(mode, code, config);
    let start = Instant::now();
    let ret = v.run().unwrap();
    assert_eq!(
        ret,
        RET_HALT,
        "pc {:#x} fault {} at {:#x}",
        v.cpu().pc,
        v.cpu().fault_kind,
        v.cpu().fault_addr
    );
    start.elapsed()
}

fn hot_loop(c: &mut Criterion) {
    const N: i32 = 1_000_000;
    let body = [
        insn(ADDI, 2, 2, 3),
        add(3, 3, 2),
        insn(ADDI, 4, 3, -1),
        add(5, 4, 2),
    ];
    let code = counted_loop(N, &body);
    let mut g = c.benchmark_group("hot_loop");
    g.throughput(Throughput::Elements(N as u64 * (body.len() as u64 + 2)));
    for (name, mode) in [
        ("jit", ExecMode::Jit),
        ("interpreter", ExecMode::Interpreter),
    ] {
        g.bench_function(BenchmarkId::new("guest_insns", name), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_once(mode, &code, |_| {})).sum())
        });
    }
    g.finish();
}

fn dispatcher(c: &mut Criterion) {
    // A loop whose body is split into blocks by jumps to the next instruction.
    const N: i32 = 200_000;
    let body = [
        insn(ADDI, 2, 2, 1),
        insn(JMP, 0, 0, 8),
        insn(ADDI, 3, 3, 1),
        insn(JMP, 0, 0, 8),
    ];
    let code = counted_loop(N, &body);
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(N as u64 * 3));
    for chain in [true, false] {
        g.bench_function(
            BenchmarkId::new("blocks", if chain { "chained" } else { "unchained" }),
            |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| run_once(ExecMode::Jit, &code, move |c| c.chain = chain))
                        .sum()
                })
            },
        );
    }
    g.finish();
}

fn softmmu(c: &mut Criterion) {
    // The same loop with and without four RAM accesses (all TLB hits after the first).
    const N: i32 = 500_000;
    let plain = counted_loop(
        N,
        &[
            insn(ADDI, 2, 2, 1),
            insn(ADDI, 3, 3, 1),
            insn(ADDI, 4, 4, 1),
            insn(ADDI, 5, 5, 1),
        ],
    );
    let memory = counted_loop(
        N,
        &[
            insn(ST, 2, 1, 0),
            insn(LD, 3, 1, 0),
            insn(ST, 3, 1, 8),
            insn(LD, 4, 1, 8),
        ],
    );
    let mut g = c.benchmark_group("softmmu");
    g.throughput(Throughput::Elements(N as u64 * 4));
    for (name, code) in [("alu", &plain), ("load_store", &memory)] {
        g.bench_function(BenchmarkId::new("four_insns", name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run_once(ExecMode::Jit, code, |_| {}))
                    .sum()
            })
        });
    }
    g.finish();
}

fn translation(c: &mut Criterion) {
    // 2000 distinct blocks of 16 instructions, each run once: dominated by translation.
    const BLOCKS: usize = 2000;
    let mut insns = Vec::new();
    for i in 0..BLOCKS {
        for k in 0..7 {
            // r2..r5 only: r1 holds the data address.
            insns.push(insn(
                ADDI,
                2 + (k % 4) as u8,
                2 + ((k + 1) % 4) as u8,
                (i * 7 + k) as i32,
            ));
            insns.push(add(
                2 + ((k + 2) % 4) as u8,
                2 + (k % 4) as u8,
                2 + ((k + 3) % 4) as u8,
            ));
        }
        insns.push(insn(LD, 6, 1, 0));
        insns.push(insn(JMP, 0, 0, 8));
    }
    insns.insert(0, insn(LI, 1, 0, 0x10_0000));
    insns.push(insn(HALT, 0, 0, 0));
    let code = program(&insns);
    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(BLOCKS as u64 * 16));
    g.bench_function("guest_insns", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run_once(ExecMode::Jit, &code, |_| {}))
                .sum()
        })
    });
    g.finish();

    let mut v = vcpu(ExecMode::Jit, &code, |_| {});
    let start = Instant::now();
    v.run().unwrap();
    let elapsed = start.elapsed();
    let stats = v.engine().stats();
    let ops = stats.ops.load(std::sync::atomic::Ordering::Relaxed);
    let blocks = stats
        .translations
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "translate: {blocks} blocks, {ops} IR ops, {:.1} ns per IR op end to end (translate + optimize + compile + run once), {} bytes of host code",
        elapsed.as_nanos() as f64 / ops as f64,
        v.engine().code_bytes()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = translation, hot_loop, dispatcher, softmmu
}
criterion_main!(benches);
