//! The block optimizer: cheap forward and backward passes that keep the exact semantics the
//! reference `eval` functions and the interpreter define.
//!
//! [`optimize`] runs, in order:
//! 1. **fold** (one forward walk, [`fold`]): copy propagation (uses of `dst` after
//!    `mov dst, src` read `src` while neither is rewritten), constant propagation and
//!    folding through the ops' own `eval` functions, algebraic identities that hold for every
//!    value (`x+0`, `x*1`, `x&-1`, `x|0`, `x^x`, `x-x`, shifts by a multiple of the width, ...),
//!    and known bits (which bits of each temp are certainly 0 or 1, from constants,
//!    extensions, `and`, shifts, `setcond`, unsigned extracts and loads, I32 types): an
//!    `and`/`ext`/`extract` that cannot change its operand becomes a `mov`, a result whose
//!    bits are all known becomes a constant, and conditions they decide fold `setcond`,
//!    `movcond` and `brcond` (a forward `brcond` that always holds becomes `br`; one that
//!    never holds disappears). Knowledge is forgotten at labels and branches, and about globals
//!    at calls that write them.
//! 2. **cleanup** ([`cfg`]): unreachable ops after a `br` or terminal, branches to the next op,
//!    labels no branch targets. `InsnStart` markers are never deleted (they move before the
//!    branch that made their code unreachable), so instruction indices stay exact.
//! 3. **dce** ([`dce`]): backward liveness deleting side-effect-free ops whose result is dead,
//!    including writes to globals that are overwritten before anything can observe them
//!    (terminals, ops that may raise, helpers that touch globals).
//!
//! Every pass is linear in the number of ops (the cleanup repeats until stable, normally
//! twice). Label numbering is left alone: deleted labels are just unused ids.

mod bits;
mod cfg;
mod dce;
mod fold;

use crate::Block;

/// Optimizes `block` in place. The block must pass [`crate::verify::verify`]; the result
/// does too, and computes the same CPU state, memory accesses, helper calls and exits.
pub fn optimize(block: &mut Block) {
    fold::fold(block);
    cfg::cleanup(block);
    dce::dce(block);
}

#[cfg(test)]
mod tests;
