//! `compute_flags` against the host CPU: each operation runs natively (inline `asm!`, flags
//! read with `pushfq`) on random and edge operands at every size, and the lazy values the
//! translator would record must give the same defined flags.

use super::*;
use core::arch::asm;

/// Binary op `x = x OP y` with CF preset from bit 0 of `cin`; returns (result, rflags).
macro_rules! host_bin {
    ($name:ident, $m:literal) => {
        fn $name(size: u8, a: u64, b: u64, cin: u64) -> (u64, u64) {
            let mut x = a;
            let f: u64;
            // SAFETY: register-only arithmetic; `pushfq`/`pop` balance on the stack that asm!
            // provides when `nostack` is not given.
            unsafe {
                match size {
                    0 => asm!("bt {c}, 0", concat!($m, " {x:l}, {y:l}"), "pushfq", "pop {f}",
                        x = inout(reg) x, y = in(reg) b, c = in(reg) cin, f = out(reg) f),
                    1 => asm!("bt {c}, 0", concat!($m, " {x:x}, {y:x}"), "pushfq", "pop {f}",
                        x = inout(reg) x, y = in(reg) b, c = in(reg) cin, f = out(reg) f),
                    2 => asm!("bt {c}, 0", concat!($m, " {x:e}, {y:e}"), "pushfq", "pop {f}",
                        x = inout(reg) x, y = in(reg) b, c = in(reg) cin, f = out(reg) f),
                    _ => asm!("bt {c}, 0", concat!($m, " {x}, {y}"), "pushfq", "pop {f}",
                        x = inout(reg) x, y = in(reg) b, c = in(reg) cin, f = out(reg) f),
                }
            }
            (x & mask(size), f)
        }
    };
}

/// Unary op `x = OP x` with CF preset from `cin`.
macro_rules! host_un {
    ($name:ident, $m:literal) => {
        fn $name(size: u8, a: u64, cin: u64) -> (u64, u64) {
            let mut x = a;
            let f: u64;
            // SAFETY: as in `host_bin`.
            unsafe {
                match size {
                    0 => asm!("bt {c}, 0", concat!($m, " {x:l}"), "pushfq", "pop {f}",
                        x = inout(reg) x, c = in(reg) cin, f = out(reg) f),
                    1 => asm!("bt {c}, 0", concat!($m, " {x:x}"), "pushfq", "pop {f}",
                        x = inout(reg) x, c = in(reg) cin, f = out(reg) f),
                    2 => asm!("bt {c}, 0", concat!($m, " {x:e}"), "pushfq", "pop {f}",
                        x = inout(reg) x, c = in(reg) cin, f = out(reg) f),
                    _ => asm!("bt {c}, 0", concat!($m, " {x}"), "pushfq", "pop {f}",
                        x = inout(reg) x, c = in(reg) cin, f = out(reg) f),
                }
            }
            (x & mask(size), f)
        }
    };
}

/// Shift `x = x OP cl`.
macro_rules! host_shift {
    ($name:ident, $m:literal) => {
        fn $name(size: u8, a: u64, count: u8) -> (u64, u64) {
            let mut x = a;
            let f: u64;
            // SAFETY: as in `host_bin`.
            unsafe {
                match size {
                    0 => asm!(concat!($m, " {x:l}, cl"), "pushfq", "pop {f}",
                        x = inout(reg) x, in("cl") count, f = out(reg) f),
                    1 => asm!(concat!($m, " {x:x}, cl"), "pushfq", "pop {f}",
                        x = inout(reg) x, in("cl") count, f = out(reg) f),
                    2 => asm!(concat!($m, " {x:e}, cl"), "pushfq", "pop {f}",
                        x = inout(reg) x, in("cl") count, f = out(reg) f),
                    _ => asm!(concat!($m, " {x}, cl"), "pushfq", "pop {f}",
                        x = inout(reg) x, in("cl") count, f = out(reg) f),
                }
            }
            (x & mask(size), f)
        }
    };
}

host_bin!(h_add, "add");
host_bin!(h_adc, "adc");
host_bin!(h_sub, "sub");
host_bin!(h_sbb, "sbb");
host_bin!(h_and, "and");
host_bin!(h_or, "or");
host_bin!(h_xor, "xor");
host_un!(h_inc, "inc");
host_un!(h_dec, "dec");
host_un!(h_neg, "neg");
host_shift!(h_shl, "shl");
host_shift!(h_shr, "shr");
host_shift!(h_sar, "sar");

/// Two-operand `imul` (16/32/64 bits).
fn h_imul(size: u8, a: u64, b: u64) -> (u64, u64) {
    let mut x = a;
    let f: u64;
    match size {
        // SAFETY: as in `host_bin`.
        1 => unsafe {
            asm!("imul {x:x}, {y:x}", "pushfq", "pop {f}", x = inout(reg) x, y = in(reg) b, f = out(reg) f)
        },
        // SAFETY: as in `host_bin`.
        2 => unsafe {
            asm!("imul {x:e}, {y:e}", "pushfq", "pop {f}", x = inout(reg) x, y = in(reg) b, f = out(reg) f)
        },
        // SAFETY: as in `host_bin`.
        _ => unsafe {
            asm!("imul {x}, {y}", "pushfq", "pop {f}", x = inout(reg) x, y = in(reg) b, f = out(reg) f)
        },
    }
    (x & mask(size), f)
}

/// One-operand 64-bit `mul`: (low, high, flags).
fn h_mul64(a: u64, b: u64) -> (u64, u64, u64) {
    let (lo, hi, f): (u64, u64, u64);
    // SAFETY: as in `host_bin`.
    unsafe {
        asm!("mul {y}", "pushfq", "pop {f}", y = in(reg) b, inout("rax") a => lo,
            out("rdx") hi, f = out(reg) f)
    }
    (lo, hi, f)
}

fn mask(size: u8) -> u64 {
    CcOp::new(CcKind::Logic, size).mask()
}

fn sext_of(size: u8, v: u64) -> u64 {
    let sh = 64 - (8u32 << size);
    (((v << sh) as i64) >> sh) as u64
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Random values biased toward the edges of `size`.
    fn operand(&mut self, size: u8) -> u64 {
        let m = mask(size);
        let s = CcOp::new(CcKind::Logic, size).sign();
        let edges = [0, 1, 2, 0xf, 0x10, s - 1, s, s + 1, m - 1, m];
        let r = self.next();
        if r % 4 == 0 {
            edges[(r >> 8) as usize % edges.len()]
        } else {
            self.next() & m
        }
    }
}

const N: usize = 3000;

fn check(what: &str, op: CcOp, (dst, src, src2): (u64, u64, u64), host: u64, defined: u64) {
    let got = compute_flags(op.encode(), dst, src, src2);
    assert_eq!(
        got & defined,
        host & defined,
        "{what} size {} dst {dst:#x} src {src:#x} src2 {src2:#x}: got {got:#x} host {host:#x}",
        op.bits()
    );
}

#[test]
fn add_adc_sub_sbb_neg_match_the_host() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    for size in 0..4u8 {
        for _ in 0..N {
            let (a, b, cin) = (r.operand(size), r.operand(size), r.next() & 1);
            let (d, f) = h_add(size, a, b, cin);
            check("add", CcOp::new(CcKind::Add, size), (d, b, 0), f, ARITH);
            let (d, f) = h_adc(size, a, b, cin);
            check("adc", CcOp::new(CcKind::Adc, size), (d, b, cin), f, ARITH);
            let (d, f) = h_sub(size, a, b, cin);
            check("sub", CcOp::new(CcKind::Sub, size), (d, b, 0), f, ARITH);
            let (d, f) = h_sbb(size, a, b, cin);
            check("sbb", CcOp::new(CcKind::Sbb, size), (d, b, cin), f, ARITH);
            let (d, f) = h_neg(size, a, cin);
            check("neg", CcOp::new(CcKind::Sub, size), (d, a, 0), f, ARITH);
        }
    }
}

#[test]
fn logic_inc_dec_match_the_host() {
    let mut r = Rng(0xdead_beef_cafe_f00d);
    // AF is undefined after logic ops.
    let logic = ARITH & !AF;
    for size in 0..4u8 {
        for _ in 0..N {
            let (a, b, cin) = (r.operand(size), r.operand(size), r.next() & 1);
            let op = CcOp::new(CcKind::Logic, size);
            for (what, (d, f)) in [
                ("and", h_and(size, a, b, cin)),
                ("or", h_or(size, a, b, cin)),
                ("xor", h_xor(size, a, b, cin)),
            ] {
                check(what, op, (d, 0, 0), f, logic);
            }
            let (d, f) = h_inc(size, a, cin);
            check("inc", CcOp::new(CcKind::Inc, size), (d, cin, 0), f, ARITH);
            let (d, f) = h_dec(size, a, cin);
            check("dec", CcOp::new(CcKind::Dec, size), (d, cin, 0), f, ARITH);
        }
    }
}

#[test]
fn shifts_match_the_host_on_defined_flags() {
    let mut r = Rng(0x0bad_c0de_1357_9bdf);
    for size in 0..4u8 {
        let bits = 8u32 << size;
        for _ in 0..N {
            let a = r.operand(size);
            // Counts of the operand width or more leave CF undefined for 8/16-bit operands.
            let count = 1 + (r.next() % (bits as u64 - 1)) as u8;
            // AF is undefined after shifts; OF only for one-bit shifts.
            let defined = if count == 1 {
                ARITH & !AF
            } else {
                CF | PF | ZF | SF
            };
            let c = count as u32 - 1;
            let (d, f) = h_shl(size, a, count);
            check(
                "shl",
                CcOp::new(CcKind::Shl, size),
                (d, (a << c) & mask(size), 0),
                f,
                defined,
            );
            let (d, f) = h_shr(size, a, count);
            check(
                "shr",
                CcOp::new(CcKind::Sar, size),
                (d, a >> c, 0),
                f,
                defined,
            );
            let (d, f) = h_sar(size, a, count);
            let src = ((sext_of(size, a) as i64) >> c) as u64;
            check("sar", CcOp::new(CcKind::Sar, size), (d, src, 0), f, defined);
        }
    }
}

#[test]
fn multiplies_match_the_host_on_cf_and_of() {
    let mut r = Rng(0x5555_aaaa_3333_cccc);
    let defined = CF | OF;
    for _ in 0..N {
        for size in 1..4u8 {
            let (a, b) = (r.operand(size), r.operand(size));
            let (d, f) = h_imul(size, a, b);
            let src = if size == 3 {
                let hi = ((a as i64 as i128 * b as i64 as i128) >> 64) as u64;
                hi ^ ((d as i64) >> 63) as u64
            } else {
                let p = (sext_of(size, a) as i64).wrapping_mul(sext_of(size, b) as i64);
                (p as u64).wrapping_sub(sext_of(size, d))
            };
            check(
                "imul",
                CcOp::new(CcKind::Mul, size),
                (d, src, 0),
                f,
                defined,
            );
        }
        let (a, b) = (r.operand(3), r.operand(3));
        let (lo, hi, f) = h_mul64(a, b);
        check("mul", CcOp::new(CcKind::Mul, 3), (lo, hi, 0), f, defined);
    }
}

#[test]
fn materialised_flags_read_back_and_rflags_merges_df() {
    assert_eq!(
        compute_flags(CcOp::EFLAGS.encode(), 0, CF | ZF | 0x200, 0),
        CF | ZF
    );
    let mut cpu = X86Cpu::new(0);
    cpu.cc_op = CcOp::new(CcKind::Logic, 2).encode();
    cpu.cc_dst = 0;
    cpu.df = u64::MAX;
    cpu.eflags = 0x200 | CF;
    assert_eq!(cpu.rflags(), 0x200 | 0x2 | ZF | PF | DF);
    assert_eq!(
        CcOp::decode(CcOp::new(CcKind::Mul, 1).encode()),
        Some(CcOp::new(CcKind::Mul, 1))
    );
    assert_eq!(CcOp::decode(99 << 2), None);
}
