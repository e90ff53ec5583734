//! The operations as `ir::Helper`s: `unsafe extern "C"` entry points that the translator's
//! calls reach, each reading `frm` (dynamic rounding) from and accruing into `fflags` of the
//! CPU state passed as `env`. Argument orders are in the [module docs](super).
//!
//! They are `HelperFlags::NONE` (they touch `fflags`/`frm`, which are CPU-state fields but not
//! IR globals, and never raise), except fclass and the sign injections, which touch nothing
//! and are `PURE`.

use ir::{Helper, HelperFlags};

use super::{Flags, RoundingMode};
use crate::riscv64::Riscv64Cpu;

/// Reads `frm` of the CPU state at `env`.
///
/// # Safety
/// `env` is the CPU-state pointer the engine passes to helpers: a live [`Riscv64Cpu`] whose
/// `frm` and `fflags` fields nothing else accesses during the call.
unsafe fn frm(env: u64) -> u64 {
    let cpu = env as *const Riscv64Cpu;
    // SAFETY: by this function's contract `cpu` points to a live Riscv64Cpu.
    unsafe { (*cpu).frm }
}

/// ORs `flags` into `fflags` of the CPU state at `env`.
///
/// # Safety
/// As for [`frm`].
unsafe fn accrue(env: u64, flags: Flags) {
    if flags.is_empty() {
        return;
    }
    let cpu = env as *mut Riscv64Cpu;
    // SAFETY: by this function's contract `cpu` points to a live Riscv64Cpu whose `fflags`
    // nothing else accesses now.
    unsafe { (*cpu).fflags |= flags.bits() as u64 };
}

/// Runs `op` under the mode the `rm` field selects (7: `frm`) and accrues its flags. An
/// invalid mode, which the translator must have turned into an illegal-instruction trap
/// before the call, does nothing and returns 0.
///
/// # Safety
/// As for [`frm`].
unsafe fn with_rounding(env: u64, rm: u64, op: impl FnOnce(RoundingMode) -> (u64, Flags)) -> u64 {
    let mode = if rm == 7 {
        // SAFETY: forwarded contract.
        RoundingMode::from_bits(unsafe { frm(env) })
    } else {
        RoundingMode::from_bits(rm)
    };
    let Some(mode) = mode else {
        log::warn!("fpu helper called with an invalid rounding mode (rm {rm})");
        return 0;
    };
    let (r, flags) = op(mode);
    // SAFETY: forwarded contract.
    unsafe { accrue(env, flags) };
    r
}

/// Runs `op` and accrues its flags.
///
/// # Safety
/// As for [`frm`].
unsafe fn with_flags(env: u64, op: impl FnOnce() -> (u64, Flags)) -> u64 {
    let (r, flags) = op();
    // SAFETY: forwarded contract.
    unsafe { accrue(env, flags) };
    r
}

/// `STATIC: function, "name", (operands), (unused argument slots as `_`)`: helpers
/// `(env, operands..., rm)`.
macro_rules! rounding_helpers {
    ($($(#[$m:meta])* $stat:ident: $op:path, $name:literal, ($($arg:ident),+), ($($u:tt),*);)*) => {$(
        $(#[$m])*
        pub static $stat: Helper = Helper {
            name: $name,
            func: {
                unsafe extern "C" fn entry(env: u64, $($arg: u64,)+ rm: u64, $($u: u64),*) -> u64 {
                    // SAFETY: the engine calls helpers with `env` = the running hart's state.
                    unsafe { with_rounding(env, rm, |rm| $op($($arg,)+ rm)) }
                }
                entry
            },
            flags: HelperFlags::NONE,
        };
    )*};
}

/// Helpers `(env, rs1, rs2)` without rounding that may raise flags.
macro_rules! flag_helpers {
    ($($(#[$m:meta])* $stat:ident: $op:path, $name:literal;)*) => {$(
        $(#[$m])*
        pub static $stat: Helper = Helper {
            name: $name,
            func: {
                unsafe extern "C" fn entry(env: u64, a: u64, b: u64, _: u64, _: u64, _: u64) -> u64 {
                    // SAFETY: the engine calls helpers with `env` = the running hart's state.
                    unsafe { with_flags(env, || $op(a, b)) }
                }
                entry
            },
            flags: HelperFlags::NONE,
        };
    )*};
}

/// Pure helpers `(rs1, rs2)`.
macro_rules! pure_helpers {
    ($($(#[$m:meta])* $stat:ident: $op:path, $name:literal;)*) => {$(
        $(#[$m])*
        pub static $stat: Helper = Helper {
            name: $name,
            func: {
                unsafe extern "C" fn entry(a: u64, b: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
                    let _ = b;
                    $op(a, b)
                }
                entry
            },
            flags: HelperFlags::PURE,
        };
    )*};
}

rounding_helpers! {
    /// `(env, rs1, rs2, rm)`.
    FADD_S: super::fadd_s, "fadd.s", (a, b), (_, _);
    /// `(env, rs1, rs2, rm)`.
    FSUB_S: super::fsub_s, "fsub.s", (a, b), (_, _);
    /// `(env, rs1, rs2, rm)`.
    FMUL_S: super::fmul_s, "fmul.s", (a, b), (_, _);
    /// `(env, rs1, rs2, rm)`.
    FDIV_S: super::fdiv_s, "fdiv.s", (a, b), (_, _);
    /// `(env, rs1, rm)`.
    FSQRT_S: super::fsqrt_s, "fsqrt.s", (a), (_, _, _);
    /// `(env, rs1, rs2, rs3, rm)`.
    FMADD_S: super::fmadd_s, "fmadd.s", (a, b, c), (_);
    /// `(env, rs1, rs2, rs3, rm)`.
    FMSUB_S: super::fmsub_s, "fmsub.s", (a, b, c), (_);
    /// `(env, rs1, rs2, rs3, rm)`.
    FNMSUB_S: super::fnmsub_s, "fnmsub.s", (a, b, c), (_);
    /// `(env, rs1, rs2, rs3, rm)`.
    FNMADD_S: super::fnmadd_s, "fnmadd.s", (a, b, c), (_);
    /// `(env, rs1, rs2, rm)`.
    FADD_D: super::fadd_d, "fadd.d", (a, b), (_, _);
    /// `(env, rs1, rs2, rm)`.
    FSUB_D: super::fsub_d, "fsub.d", (a, b), (_, _);
    /// `(env, rs1, rs2, rm)`.
    FMUL_D: super::fmul_d, "fmul.d", (a, b), (_, _);
    /// `(env, rs1, rs2, rm)`.
    FDIV_D: super::fdiv_d, "fdiv.d", (a, b), (_, _);
    /// `(env, rs1, rm)`.
    FSQRT_D: super::fsqrt_d, "fsqrt.d", (a), (_, _, _);
    /// `(env, rs1, rs2, rs3, rm)`.
    FMADD_D: super::fmadd_d, "fmadd.d", (a, b, c), (_);
    /// `(env, rs1, rs2, rs3, rm)`.
    FMSUB_D: super::fmsub_d, "fmsub.d", (a, b, c), (_);
    /// `(env, rs1, rs2, rs3, rm)`.
    FNMSUB_D: super::fnmsub_d, "fnmsub.d", (a, b, c), (_);
    /// `(env, rs1, rs2, rs3, rm)`.
    FNMADD_D: super::fnmadd_d, "fnmadd.d", (a, b, c), (_);
    /// `(env, rs1, rm)`.
    FCVT_S_D: super::fcvt_s_d, "fcvt.s.d", (a), (_, _, _);
    /// `(env, rs1, rm)`; exact, `rm` ignored.
    FCVT_D_S: super::fcvt_d_s, "fcvt.d.s", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_W_S: super::fcvt_w_s, "fcvt.w.s", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_WU_S: super::fcvt_wu_s, "fcvt.wu.s", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_L_S: super::fcvt_l_s, "fcvt.l.s", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_LU_S: super::fcvt_lu_s, "fcvt.lu.s", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_W_D: super::fcvt_w_d, "fcvt.w.d", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_WU_D: super::fcvt_wu_d, "fcvt.wu.d", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_L_D: super::fcvt_l_d, "fcvt.l.d", (a), (_, _, _);
    /// `(env, rs1, rm)` -> x.
    FCVT_LU_D: super::fcvt_lu_d, "fcvt.lu.d", (a), (_, _, _);
    /// `(env, x rs1, rm)`.
    FCVT_S_W: super::fcvt_s_w, "fcvt.s.w", (a), (_, _, _);
    /// `(env, x rs1, rm)`.
    FCVT_S_WU: super::fcvt_s_wu, "fcvt.s.wu", (a), (_, _, _);
    /// `(env, x rs1, rm)`.
    FCVT_S_L: super::fcvt_s_l, "fcvt.s.l", (a), (_, _, _);
    /// `(env, x rs1, rm)`.
    FCVT_S_LU: super::fcvt_s_lu, "fcvt.s.lu", (a), (_, _, _);
    /// `(env, x rs1, rm)`; exact, `rm` ignored.
    FCVT_D_W: super::fcvt_d_w, "fcvt.d.w", (a), (_, _, _);
    /// `(env, x rs1, rm)`; exact, `rm` ignored.
    FCVT_D_WU: super::fcvt_d_wu, "fcvt.d.wu", (a), (_, _, _);
    /// `(env, x rs1, rm)`.
    FCVT_D_L: super::fcvt_d_l, "fcvt.d.l", (a), (_, _, _);
    /// `(env, x rs1, rm)`.
    FCVT_D_LU: super::fcvt_d_lu, "fcvt.d.lu", (a), (_, _, _);
}

flag_helpers! {
    /// `(env, rs1, rs2)`.
    FMIN_S: super::fmin_s, "fmin.s";
    /// `(env, rs1, rs2)`.
    FMAX_S: super::fmax_s, "fmax.s";
    /// `(env, rs1, rs2)` -> x 0/1.
    FEQ_S: super::feq_s, "feq.s";
    /// `(env, rs1, rs2)` -> x 0/1.
    FLT_S: super::flt_s, "flt.s";
    /// `(env, rs1, rs2)` -> x 0/1.
    FLE_S: super::fle_s, "fle.s";
    /// `(env, rs1, rs2)`.
    FMIN_D: super::fmin_d, "fmin.d";
    /// `(env, rs1, rs2)`.
    FMAX_D: super::fmax_d, "fmax.d";
    /// `(env, rs1, rs2)` -> x 0/1.
    FEQ_D: super::feq_d, "feq.d";
    /// `(env, rs1, rs2)` -> x 0/1.
    FLT_D: super::flt_d, "flt.d";
    /// `(env, rs1, rs2)` -> x 0/1.
    FLE_D: super::fle_d, "fle.d";
}

fn fclass_s(a: u64, _: u64) -> u64 {
    super::fclass_s(a)
}

fn fclass_d(a: u64, _: u64) -> u64 {
    super::fclass_d(a)
}

pure_helpers! {
    /// `(rs1)` -> x mask; no env.
    FCLASS_S: fclass_s, "fclass.s";
    /// `(rs1)` -> x mask; no env.
    FCLASS_D: fclass_d, "fclass.d";
    /// `(rs1, rs2)`; no env.
    FSGNJ_S: super::fsgnj_s, "fsgnj.s";
    /// `(rs1, rs2)`; no env.
    FSGNJN_S: super::fsgnjn_s, "fsgnjn.s";
    /// `(rs1, rs2)`; no env.
    FSGNJX_S: super::fsgnjx_s, "fsgnjx.s";
    /// `(rs1, rs2)`; no env.
    FSGNJ_D: super::fsgnj_d, "fsgnj.d";
    /// `(rs1, rs2)`; no env.
    FSGNJN_D: super::fsgnjn_d, "fsgnjn.d";
    /// `(rs1, rs2)`; no env.
    FSGNJX_D: super::fsgnjx_d, "fsgnjx.d";
}

unsafe extern "C" fn frm_valid(env: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the engine calls helpers with `env` = the running hart's state.
    let frm = unsafe { frm(env) };
    RoundingMode::from_bits(frm).is_some() as u64
}

/// `(env) -> 1` when `frm` holds a valid rounding mode (0..=4), else 0: the run-time check
/// that an instruction with rm = 7 is legal.
pub static FRM_VALID: Helper = Helper {
    name: "frm_valid",
    func: frm_valid,
    flags: HelperFlags::NONE,
};
