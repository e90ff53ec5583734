//! The F/D helpers against a reference: every line that `tests/fpu/oracle.c`, run under
//! `qemu-riscv64`, prints is recomputed with `frontend::riscv64::fpu` (both the SSE-backed
//! functions and the forced software path) and must match bit for bit, fflags included.
//!
//! QEMU's RISC-V target uses its softfloat configured for RISC-V (after-rounding tininess,
//! canonical NaNs, RISC-V's fcvt saturation), an independent implementation of the same
//! manual. Cases where QEMU 7.2 is believed wrong would be listed in `QEMU_DEVIATIONS` with
//! the manual's reference; there are none so far.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use frontend::riscv64::fpu::{self, software, Flags, RoundingMode};

type Result2 = (u64, Flags);

/// Operations whose QEMU results we knowingly do not match, with the reason. Empty: every
/// line must match.
const QEMU_DEVIATIONS: &[(&str, &str)] = &[];

/// Evaluates one oracle line's operation: `Some(public path, software path)`.
fn eval(name: &str, rm: RoundingMode, a: u64, b: u64, c: u64) -> Option<(Result2, Result2)> {
    let none = Flags::NONE;
    macro_rules! both {
        ($f:ident($($x:expr),*)) => {
            (fpu::$f($($x,)* rm), software::$f($($x,)* rm))
        };
    }
    macro_rules! one {
        ($e:expr) => {{
            let r = $e;
            (r, r)
        }};
    }
    Some(match name {
        "fadd.s" => both!(fadd_s(a, b)),
        "fsub.s" => both!(fsub_s(a, b)),
        "fmul.s" => both!(fmul_s(a, b)),
        "fdiv.s" => both!(fdiv_s(a, b)),
        "fsqrt.s" => both!(fsqrt_s(a)),
        "fmadd.s" => both!(fmadd_s(a, b, c)),
        "fmsub.s" => both!(fmsub_s(a, b, c)),
        "fnmsub.s" => both!(fnmsub_s(a, b, c)),
        "fnmadd.s" => both!(fnmadd_s(a, b, c)),
        "fadd.d" => both!(fadd_d(a, b)),
        "fsub.d" => both!(fsub_d(a, b)),
        "fmul.d" => both!(fmul_d(a, b)),
        "fdiv.d" => both!(fdiv_d(a, b)),
        "fsqrt.d" => both!(fsqrt_d(a)),
        "fmadd.d" => both!(fmadd_d(a, b, c)),
        "fmsub.d" => both!(fmsub_d(a, b, c)),
        "fnmsub.d" => both!(fnmsub_d(a, b, c)),
        "fnmadd.d" => both!(fnmadd_d(a, b, c)),
        "fcvt.s.d" => both!(fcvt_s_d(a)),
        "fcvt.d.s" => one!(fpu::fcvt_d_s(a, rm)),
        "fmin.s" => one!(fpu::fmin_s(a, b)),
        "fmax.s" => one!(fpu::fmax_s(a, b)),
        "fmin.d" => one!(fpu::fmin_d(a, b)),
        "fmax.d" => one!(fpu::fmax_d(a, b)),
        "feq.s" => one!(fpu::feq_s(a, b)),
        "flt.s" => one!(fpu::flt_s(a, b)),
        "fle.s" => one!(fpu::fle_s(a, b)),
        "feq.d" => one!(fpu::feq_d(a, b)),
        "flt.d" => one!(fpu::flt_d(a, b)),
        "fle.d" => one!(fpu::fle_d(a, b)),
        "fclass.s" => one!((fpu::fclass_s(a), none)),
        "fclass.d" => one!((fpu::fclass_d(a), none)),
        "fsgnj.s" => one!((fpu::fsgnj_s(a, b), none)),
        "fsgnjn.s" => one!((fpu::fsgnjn_s(a, b), none)),
        "fsgnjx.s" => one!((fpu::fsgnjx_s(a, b), none)),
        "fsgnj.d" => one!((fpu::fsgnj_d(a, b), none)),
        "fsgnjn.d" => one!((fpu::fsgnjn_d(a, b), none)),
        "fsgnjx.d" => one!((fpu::fsgnjx_d(a, b), none)),
        "fcvt.w.s" => one!(fpu::fcvt_w_s(a, rm)),
        "fcvt.wu.s" => one!(fpu::fcvt_wu_s(a, rm)),
        "fcvt.l.s" => one!(fpu::fcvt_l_s(a, rm)),
        "fcvt.lu.s" => one!(fpu::fcvt_lu_s(a, rm)),
        "fcvt.w.d" => one!(fpu::fcvt_w_d(a, rm)),
        "fcvt.wu.d" => one!(fpu::fcvt_wu_d(a, rm)),
        "fcvt.l.d" => one!(fpu::fcvt_l_d(a, rm)),
        "fcvt.lu.d" => one!(fpu::fcvt_lu_d(a, rm)),
        "fcvt.s.w" => one!(fpu::fcvt_s_w(a, rm)),
        "fcvt.s.wu" => one!(fpu::fcvt_s_wu(a, rm)),
        "fcvt.s.l" => one!(fpu::fcvt_s_l(a, rm)),
        "fcvt.s.lu" => one!(fpu::fcvt_s_lu(a, rm)),
        "fcvt.d.w" => one!(fpu::fcvt_d_w(a, rm)),
        "fcvt.d.wu" => one!(fpu::fcvt_d_wu(a, rm)),
        "fcvt.d.l" => one!(fpu::fcvt_d_l(a, rm)),
        "fcvt.d.lu" => one!(fpu::fcvt_d_lu(a, rm)),
        _ => return None,
    })
}

/// `program --version` runs.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds the oracle with the Debian cross compiler and runs it under qemu-user.
fn oracle_output() -> String {
    assert!(
        have("riscv64-linux-gnu-gcc"),
        "riscv64-linux-gnu-gcc not found: apt-get install gcc-riscv64-linux-gnu"
    );
    assert!(
        have("qemu-riscv64"),
        "qemu-riscv64 not found: apt-get install -y --no-install-recommends qemu-user"
    );
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fpu/oracle.c");
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("riscv64_fpu_oracle");
    let cc = Command::new("riscv64-linux-gnu-gcc")
        .args(["-static", "-O2", "-march=rv64gc", "-mabi=lp64d", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run riscv64-linux-gnu-gcc");
    assert!(
        cc.status.success(),
        "compiling {}: {}",
        src.display(),
        String::from_utf8_lossy(&cc.stderr)
    );
    let run = Command::new("qemu-riscv64")
        .arg(&exe)
        .output()
        .expect("run qemu-riscv64");
    assert!(
        run.status.success(),
        "oracle under qemu-riscv64: {:?} {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).expect("oracle output is ASCII")
}

#[test]
fn every_operation_matches_qemu_on_edge_cases_and_generated_operands() {
    let out = oracle_output();
    let mut lines = 0usize;
    let mut per_op: BTreeMap<&str, usize> = BTreeMap::new();
    let mut mismatches: Vec<String> = Vec::new();
    let mut mismatch_count: BTreeMap<&str, usize> = BTreeMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 7, "malformed oracle line {line:?}");
        let name = fields[0];
        let n: Vec<u64> = fields[1..]
            .iter()
            .map(|f| u64::from_str_radix(f, 16).expect("hex field"))
            .collect();
        let rm = RoundingMode::from_bits(n[0]).expect("rm 0..=4");
        let (a, b, c) = (n[1], n[2], n[3]);
        let want = (n[4], Flags::from_bits(n[5] as u8));
        let (public, soft) = eval(name, rm, a, b, c).unwrap_or_else(|| panic!("unknown op {name}"));
        lines += 1;
        *per_op.entry(name).or_default() += 1;
        for (path, got) in [("", public), ("software::", soft)] {
            if got != want && !QEMU_DEVIATIONS.iter().any(|(op, _)| *op == name) {
                *mismatch_count.entry(name).or_default() += 1;
                if mismatches.len() < 40 {
                    mismatches.push(format!(
                        "{path}{name} {rm:?} a={a:#x} b={b:#x} c={c:#x}: got {:#x} {:?}, \
                         qemu {:#x} {:?}",
                        got.0, got.1, want.0, want.1
                    ));
                }
            }
        }
    }
    assert!(
        per_op.len() >= 54,
        "the oracle covers every operation: {per_op:?}"
    );
    assert!(
        mismatches.is_empty(),
        "{} lines checked; mismatches per op {mismatch_count:?}:\n{}",
        lines,
        mismatches.join("\n")
    );
}

/// Nanoseconds per call of the hot operations; prints, asserts nothing.
#[test]
#[ignore = "a measurement: cargo test -p frontend --release --test riscv64_fpu -- --ignored --nocapture"]
fn throughput() {
    use std::hint::black_box;
    use std::time::Instant;
    const N: u32 = 2_000_000;
    fn measure(name: &str, mut f: impl FnMut(u64) -> u64) {
        let start = Instant::now();
        let mut acc = 0u64;
        for i in 0..N {
            acc = acc.wrapping_add(f(black_box(i as u64)));
        }
        black_box(acc);
        let ns = start.elapsed().as_nanos() as f64 / N as f64;
        println!("{name:<28} {ns:6.1} ns/call");
    }
    let x = 1.000_000_1f64.to_bits();
    let y = 3.25f64.to_bits();
    for rm in [RoundingMode::Rne, RoundingMode::Rmm] {
        measure(&format!("fadd_d {rm:?}"), |i| fpu::fadd_d(x ^ i, y, rm).0);
        measure(&format!("fmul_d {rm:?}"), |i| fpu::fmul_d(x ^ i, y, rm).0);
        measure(&format!("fmadd_d {rm:?}"), |i| {
            fpu::fmadd_d(x ^ i, y, x, rm).0
        });
        measure(&format!("fdiv_d {rm:?}"), |i| fpu::fdiv_d(x ^ i, y, rm).0);
        measure(&format!("fcvt_l_d {rm:?}"), |i| fpu::fcvt_l_d(y ^ i, rm).0);
        measure(&format!("fcvt_d_l {rm:?}"), |i| fpu::fcvt_d_l(i, rm).0);
        measure(&format!("software::fadd_d {rm:?}"), |i| {
            software::fadd_d(x ^ i, y, rm).0
        });
        measure(&format!("software::fmadd_d {rm:?}"), |i| {
            software::fmadd_d(x ^ i, y, x, rm).0
        });
    }
    let mut cpu = frontend::riscv64::Riscv64Cpu::new(0);
    let env = &mut *cpu as *mut frontend::riscv64::Riscv64Cpu as u64;
    measure("FADD_D helper, rm=7", |i| {
        // SAFETY: `env` is a live CPU state used by nothing else meanwhile.
        unsafe { (fpu::helpers::FADD_D.func)(env, x ^ i, y, 7, 0, 0) }
    });
}
