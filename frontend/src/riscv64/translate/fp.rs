//! F and D arithmetic: calls into the bit-exact helpers of [`crate::riscv64::fpu`].

use super::{Flow, Translator};
use crate::riscv64::insn::{Insn, Opcode};

/// FP instructions translated through helpers (everything but loads, stores and moves).
pub(super) fn is_fp_arith(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        FmaddS
            | FmsubS
            | FnmsubS
            | FnmaddS
            | FaddS
            | FsubS
            | FmulS
            | FdivS
            | FsqrtS
            | FsgnjS
            | FsgnjnS
            | FsgnjxS
            | FminS
            | FmaxS
            | FcvtWS
            | FcvtWuS
            | FcvtLS
            | FcvtLuS
            | FcvtSW
            | FcvtSWu
            | FcvtSL
            | FcvtSLu
            | FeqS
            | FltS
            | FleS
            | FclassS
            | FmaddD
            | FmsubD
            | FnmsubD
            | FnmaddD
            | FaddD
            | FsubD
            | FmulD
            | FdivD
            | FsqrtD
            | FsgnjD
            | FsgnjnD
            | FsgnjxD
            | FminD
            | FmaxD
            | FcvtSD
            | FcvtDS
            | FcvtWD
            | FcvtWuD
            | FcvtLD
            | FcvtLuD
            | FcvtDW
            | FcvtDWu
            | FcvtDL
            | FcvtDLu
            | FeqD
            | FltD
            | FleD
            | FclassD
    )
}

impl Translator<'_> {
    /// Until the FP helpers land, FP arithmetic is an illegal instruction.
    pub(super) fn fp(&mut self, insn: &Insn) -> Flow {
        self.illegal(insn.raw as u64)
    }
}
