//! F and D arithmetic: calls into the bit-exact helpers of [`crate::riscv64::fpu`].
//!
//! The rounding mode is checked at translation time for a static `rm` (5 and 6 are illegal)
//! and at run time for the dynamic one (an `frm` of 5-7 makes the instruction illegal), once
//! per block until the block itself writes `frm`.

use ir::{Cond, Helper, Temp, Type};

use super::{Flow, Translator};
use crate::riscv64::fpu::helpers as h;
use crate::riscv64::insn::{Insn, Opcode};

/// Where an FP helper's operands come from and its result goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `f[rd] = op(env, f[rs1], f[rs2], rm)`
    Binary,
    /// `f[rd] = op(env, f[rs1], rm)`
    Unary,
    /// `f[rd] = op(env, f[rs1], f[rs2], f[rs3], rm)`
    Fused,
    /// `x[rd] = op(env, f[rs1], rm)`
    ToInt,
    /// `f[rd] = op(env, x[rs1], rm)`
    FromInt,
    /// `f[rd] = op(env, f[rs1], f[rs2])` (no rounding)
    MinMax,
    /// `x[rd] = op(env, f[rs1], f[rs2])`
    Compare,
    /// `x[rd] = op(f[rs1])`, pure
    Classify,
    /// `f[rd] = op(f[rs1], f[rs2])`, pure
    SignInject,
}

fn helper(op: Opcode) -> Option<(&'static Helper, Shape)> {
    use Opcode::*;
    use Shape::*;
    Some(match op {
        FaddS => (&h::FADD_S, Binary),
        FsubS => (&h::FSUB_S, Binary),
        FmulS => (&h::FMUL_S, Binary),
        FdivS => (&h::FDIV_S, Binary),
        FaddD => (&h::FADD_D, Binary),
        FsubD => (&h::FSUB_D, Binary),
        FmulD => (&h::FMUL_D, Binary),
        FdivD => (&h::FDIV_D, Binary),
        FsqrtS => (&h::FSQRT_S, Unary),
        FsqrtD => (&h::FSQRT_D, Unary),
        FcvtSD => (&h::FCVT_S_D, Unary),
        FcvtDS => (&h::FCVT_D_S, Unary),
        FmaddS => (&h::FMADD_S, Fused),
        FmsubS => (&h::FMSUB_S, Fused),
        FnmsubS => (&h::FNMSUB_S, Fused),
        FnmaddS => (&h::FNMADD_S, Fused),
        FmaddD => (&h::FMADD_D, Fused),
        FmsubD => (&h::FMSUB_D, Fused),
        FnmsubD => (&h::FNMSUB_D, Fused),
        FnmaddD => (&h::FNMADD_D, Fused),
        FcvtWS => (&h::FCVT_W_S, ToInt),
        FcvtWuS => (&h::FCVT_WU_S, ToInt),
        FcvtLS => (&h::FCVT_L_S, ToInt),
        FcvtLuS => (&h::FCVT_LU_S, ToInt),
        FcvtWD => (&h::FCVT_W_D, ToInt),
        FcvtWuD => (&h::FCVT_WU_D, ToInt),
        FcvtLD => (&h::FCVT_L_D, ToInt),
        FcvtLuD => (&h::FCVT_LU_D, ToInt),
        FcvtSW => (&h::FCVT_S_W, FromInt),
        FcvtSWu => (&h::FCVT_S_WU, FromInt),
        FcvtSL => (&h::FCVT_S_L, FromInt),
        FcvtSLu => (&h::FCVT_S_LU, FromInt),
        FcvtDW => (&h::FCVT_D_W, FromInt),
        FcvtDWu => (&h::FCVT_D_WU, FromInt),
        FcvtDL => (&h::FCVT_D_L, FromInt),
        FcvtDLu => (&h::FCVT_D_LU, FromInt),
        FminS => (&h::FMIN_S, MinMax),
        FmaxS => (&h::FMAX_S, MinMax),
        FminD => (&h::FMIN_D, MinMax),
        FmaxD => (&h::FMAX_D, MinMax),
        FeqS => (&h::FEQ_S, Compare),
        FltS => (&h::FLT_S, Compare),
        FleS => (&h::FLE_S, Compare),
        FeqD => (&h::FEQ_D, Compare),
        FltD => (&h::FLT_D, Compare),
        FleD => (&h::FLE_D, Compare),
        FclassS => (&h::FCLASS_S, Classify),
        FclassD => (&h::FCLASS_D, Classify),
        FsgnjS => (&h::FSGNJ_S, SignInject),
        FsgnjnS => (&h::FSGNJN_S, SignInject),
        FsgnjxS => (&h::FSGNJX_S, SignInject),
        FsgnjD => (&h::FSGNJ_D, SignInject),
        FsgnjnD => (&h::FSGNJN_D, SignInject),
        FsgnjxD => (&h::FSGNJX_D, SignInject),
        _ => return None,
    })
}

/// FP instructions translated through helpers (everything but loads, stores and moves).
pub(super) fn is_fp_arith(op: Opcode) -> bool {
    helper(op).is_some()
}

impl Translator<'_> {
    pub(super) fn fp(&mut self, insn: &Insn) -> Flow {
        let Some((helper, shape)) = helper(insn.op) else {
            return self.illegal(insn.raw as u64);
        };
        let rounds = matches!(
            shape,
            Shape::Binary | Shape::Unary | Shape::Fused | Shape::ToInt | Shape::FromInt
        );
        if rounds {
            match insn.rm {
                5 | 6 => return self.illegal(insn.raw as u64),
                7 if !self.frm_checked => {
                    let valid = self.b.scratch(Type::I64);
                    self.b.call(&h::FRM_VALID, &[Temp::ENV], Some(valid));
                    let ok = self.b.new_label();
                    self.b.brcondi(Cond::Ne, valid, 0, ok);
                    self.illegal(insn.raw as u64);
                    self.b.set_label(ok);
                    self.frm_checked = true;
                }
                _ => {}
            }
        }
        let rm = self.b.constant(Type::I64, insn.rm as u64);
        let env = Temp::ENV;
        let (f1, f2, f3) = (self.f(insn.rs1), self.f(insn.rs2), self.f(insn.rs3));
        let x1 = self.x(insn.rs1);
        let (args, int_result): (Vec<Temp>, bool) = match shape {
            Shape::Binary => (vec![env, f1, f2, rm], false),
            Shape::Unary => (vec![env, f1, rm], false),
            Shape::Fused => (vec![env, f1, f2, f3, rm], false),
            Shape::ToInt => (vec![env, f1, rm], true),
            Shape::FromInt => (vec![env, x1, rm], false),
            Shape::MinMax => (vec![env, f1, f2], false),
            Shape::Compare => (vec![env, f1, f2], true),
            Shape::Classify => (vec![f1], true),
            Shape::SignInject => (vec![f1, f2], false),
        };
        // The helper writes fflags even when the result goes to x0.
        let dst = if int_result {
            self.xd(insn.rd)
        } else {
            self.f(insn.rd)
        };
        self.b.call(helper, &args, Some(dst));
        Flow::Next
    }
}
