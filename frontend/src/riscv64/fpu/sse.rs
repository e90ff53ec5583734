//! Host SSE arithmetic under an explicit rounding mode, returning the exception flags it raised.
//!
//! Each operation is one `asm!` block that saves the host MXCSR, loads a control word (every
//! exception masked, flags clear, DAZ and FTZ off, the requested rounding control), runs the
//! instruction, stores MXCSR to read the flags, and restores the host's MXCSR. Keeping the
//! instruction inside the block is what stops the compiler from constant-folding it or moving
//! it across the MXCSR writes; the operands only pass through registers.
//!
//! SSE (and the FMA3 extension) compute the IEEE 754 correctly rounded result in the four
//! directed/nearest modes and, with underflow masked, raise UE when the result is tiny *after*
//! rounding and inexact — the same rule as RISC-V — so only the NaN result (x86 propagates an
//! operand or returns its "default NaN" 0xFFF8..., RISC-V returns the canonical NaN) and the
//! flag bit positions need fixing up, which the caller does.

use core::arch::asm;

/// MXCSR invalid-operation flag.
pub const IE: u32 = 1 << 0;
/// MXCSR divide-by-zero flag.
pub const ZE: u32 = 1 << 2;
/// MXCSR overflow flag.
pub const OE: u32 = 1 << 3;
/// MXCSR underflow flag.
pub const UE: u32 = 1 << 4;
/// MXCSR precision (inexact) flag.
pub const PE: u32 = 1 << 5;

/// MXCSR rounding control values (bits 14..13).
pub const RC_NEAREST: u32 = 0;
/// Toward negative infinity.
pub const RC_DOWN: u32 = 1;
/// Toward positive infinity.
pub const RC_UP: u32 = 2;
/// Toward zero.
pub const RC_ZERO: u32 = 3;

/// The control word for one operation: exception masks (bits 12..7) all set, rounding control
/// `rc`, flags, DAZ (bit 6) and FTZ (bit 15) clear.
const fn control(rc: u32) -> u32 {
    0x1f80 | (rc << 13)
}

/// The exception flag bits of an MXCSR value.
const FLAGS: u32 = 0x3f;

macro_rules! binop {
    ($(#[$m:meta])* $name:ident, $insn:literal, $t:ty, $bits:ty) => {
        $(#[$m])*
        pub fn $name(a: u64, b: u64, rc: u32) -> (u64, u32) {
            // [host MXCSR, operation control word, MXCSR after the operation]
            let mut csr = [0u32, control(rc), 0u32];
            let mut x = <$t>::from_bits(a as $bits);
            let y = <$t>::from_bits(b as $bits);
            // SAFETY: stmxcsr/ldmxcsr touch only `csr`, a live local array of three u32 that
            // the pointer covers. The loaded control word masks every exception, so the
            // instruction cannot trap, and the host MXCSR saved in csr[0] is reloaded before
            // the block ends, so code outside sees its own rounding mode and flags.
            unsafe {
                asm!(
                    "stmxcsr [{p}]",
                    "ldmxcsr [{p} + 4]",
                    concat!($insn, " {x}, {y}"),
                    "stmxcsr [{p} + 8]",
                    "ldmxcsr [{p}]",
                    p = in(reg) csr.as_mut_ptr(),
                    x = inout(xmm_reg) x,
                    y = in(xmm_reg) y,
                    options(nostack, preserves_flags),
                );
            }
            (x.to_bits() as u64, csr[2] & FLAGS)
        }
    };
}

binop!(
    /// addss.
    add_s, "addss", f32, u32
);
binop!(
    /// subss.
    sub_s, "subss", f32, u32
);
binop!(
    /// mulss.
    mul_s, "mulss", f32, u32
);
binop!(
    /// divss.
    div_s, "divss", f32, u32
);
binop!(
    /// sqrtss of `b` (`a` is ignored: sqrtss writes only the low lane of its destination).
    sqrt_s_of_b, "sqrtss", f32, u32
);
binop!(
    /// addsd.
    add_d, "addsd", f64, u64
);
binop!(
    /// subsd.
    sub_d, "subsd", f64, u64
);
binop!(
    /// mulsd.
    mul_d, "mulsd", f64, u64
);
binop!(
    /// divsd.
    div_d, "divsd", f64, u64
);
binop!(
    /// sqrtsd of `b`.
    sqrt_d_of_b, "sqrtsd", f64, u64
);

/// sqrtss.
pub fn sqrt_s(a: u64, rc: u32) -> (u64, u32) {
    sqrt_s_of_b(0, a, rc)
}

/// sqrtsd.
pub fn sqrt_d(a: u64, rc: u32) -> (u64, u32) {
    sqrt_d_of_b(0, a, rc)
}

macro_rules! cvtop {
    ($(#[$m:meta])* $name:ident, $insn:literal, $from:ty, $from_bits:ty, $to:ty) => {
        $(#[$m])*
        pub fn $name(a: u64, rc: u32) -> (u64, u32) {
            // [host MXCSR, operation control word, MXCSR after the operation]
            let mut csr = [0u32, control(rc), 0u32];
            let x = <$from>::from_bits(a as $from_bits);
            let r: $to;
            // SAFETY: as in `binop!`: only `csr` is accessed through the pointer, exceptions
            // are masked and the host MXCSR is restored within the block.
            unsafe {
                asm!(
                    "stmxcsr [{p}]",
                    "ldmxcsr [{p} + 4]",
                    concat!($insn, " {r}, {x}"),
                    "stmxcsr [{p} + 8]",
                    "ldmxcsr [{p}]",
                    p = in(reg) csr.as_mut_ptr(),
                    x = in(xmm_reg) x,
                    r = out(xmm_reg) r,
                    options(nostack, preserves_flags),
                );
            }
            (r.to_bits() as u64, csr[2] & FLAGS)
        }
    };
}

cvtop!(
    /// cvtsd2ss: double to single.
    cvt_d_to_s, "cvtsd2ss", f64, u64, f32
);

/// The host has the FMA3 instructions (and the OS saves the AVX state they use).
#[inline]
pub fn has_fma() -> bool {
    std::is_x86_feature_detected!("fma")
}

macro_rules! fmaop {
    ($(#[$m:meta])* $name:ident, $insn:literal, $t:ty, $bits:ty) => {
        $(#[$m])*
        ///
        /// Only call when [`has_fma`] is true.
        pub fn $name(a: u64, b: u64, c: u64, rc: u32) -> (u64, u32) {
            // [host MXCSR, operation control word, MXCSR after the operation]
            let mut csr = [0u32, control(rc), 0u32];
            let x = <$t>::from_bits(a as $bits);
            let y = <$t>::from_bits(b as $bits);
            let mut acc = <$t>::from_bits(c as $bits);
            // SAFETY: as in `binop!`: only `csr` is accessed through the pointer, exceptions
            // are masked and the host MXCSR is restored within the block. The caller checked
            // `has_fma`, so the instruction exists and its VEX state is enabled by the OS.
            unsafe {
                asm!(
                    "stmxcsr [{p}]",
                    "ldmxcsr [{p} + 4]",
                    concat!($insn, " {acc}, {x}, {y}"),
                    "stmxcsr [{p} + 8]",
                    "ldmxcsr [{p}]",
                    p = in(reg) csr.as_mut_ptr(),
                    x = in(xmm_reg) x,
                    y = in(xmm_reg) y,
                    acc = inout(xmm_reg) acc,
                    options(nostack, preserves_flags),
                );
            }
            (acc.to_bits() as u64, csr[2] & FLAGS)
        }
    };
}

fmaop!(
    /// vfmadd231ss: `a * b + c` rounded once.
    fma_s, "vfmadd231ss", f32, u32
);
fmaop!(
    /// vfmadd231sd: `a * b + c` rounded once.
    fma_d, "vfmadd231sd", f64, u64
);

/// `a * b + c` rounded once under the host's own MXCSR — Rust's default: round to nearest,
/// every exception masked — without saving or switching it; `None` when the host has no FMA3.
/// For the round-to-nearest fast path, which finds its flags from values, not from MXCSR.
#[inline]
pub fn fused_d(a: f64, b: f64, c: f64) -> Option<f64> {
    if !has_fma() {
        return None;
    }
    let mut acc = c;
    // SAFETY: the host has FMA3 (checked above) and the OS enabled its VEX state; the
    // instruction reads and writes only the three registers, and with every exception masked
    // in the host MXCSR it cannot trap. It only sets sticky MXCSR flags, which Rust code
    // never reads.
    unsafe {
        asm!(
            "vfmadd231sd {acc}, {x}, {y}",
            x = in(xmm_reg) a,
            y = in(xmm_reg) b,
            acc = inout(xmm_reg) acc,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_mxcsr() -> u32 {
        let mut m = 0u32;
        // SAFETY: stmxcsr writes the four bytes of `m`.
        unsafe { asm!("stmxcsr [{}]", in(reg) &mut m as *mut u32, options(nostack)) };
        m
    }

    fn write_mxcsr(m: u32) {
        // SAFETY: ldmxcsr reads the four bytes of `m`; callers pass masked-exception values
        // and restore the previous one, and only this test thread's MXCSR changes.
        unsafe { asm!("ldmxcsr [{}]", in(reg) &m as *const u32, options(nostack)) };
    }

    #[test]
    fn operations_use_their_own_mode_and_flags_and_leave_the_host_mxcsr_alone() {
        let saved = read_mxcsr();
        // A host in round-down with a stale inexact flag.
        let host = control(RC_DOWN) | PE;
        write_mxcsr(host);
        let third = div_d(1f64.to_bits(), 3f64.to_bits(), RC_NEAREST);
        let third_up = div_d(1f64.to_bits(), 3f64.to_bits(), RC_UP);
        let exact = add_d(1f64.to_bits(), 1f64.to_bits(), RC_ZERO);
        let fused = has_fma().then(|| fma_d(1f64.to_bits(), 1f64.to_bits(), 1f64.to_bits(), 0));
        let after = read_mxcsr();
        write_mxcsr(saved);
        assert_eq!(after, host, "host MXCSR restored, flags included");
        assert_eq!(third, (0x3fd5_5555_5555_5555, PE));
        assert_eq!(third_up, (0x3fd5_5555_5555_5556, PE));
        assert_eq!(exact, (2f64.to_bits(), 0), "no stale flags from the host");
        if let Some(fused) = fused {
            assert_eq!(fused, (2f64.to_bits(), 0));
        }
    }

    #[test]
    fn flags_map_one_to_one() {
        assert_eq!(
            div_d(1f64.to_bits(), 0, RC_NEAREST),
            (f64::INFINITY.to_bits(), ZE)
        );
        assert_eq!(mul_d(f64::MAX.to_bits(), 2f64.to_bits(), 0).1, OE | PE);
        // (2 is DE: the operand is subnormal.)
        assert_eq!(mul_d(1, 0.5f64.to_bits(), 0), (0, UE | PE | 2));
        assert_eq!(sqrt_s((-1f32).to_bits() as u64, 0).1, IE);
        // Subnormal operands raise DE, which the caller drops; nothing else here.
        assert_eq!(add_d(1, 1, 0), (2, 2));
    }
}
