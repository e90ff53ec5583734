//! The block optimizer: cheap forward and backward passes that keep the exact semantics the
//! reference `eval` functions and the interpreter define.
//!
//! [`Optimizer::run`] (or the convenience [`optimize`]) runs, in order:
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
//! 2. **cleanup** ([`cfg`], only for blocks with labels): ops not reachable from the entry
//!    (found by walking the label graph, so a loop only its own back-edge enters goes too),
//!    branches to the next op, labels no reachable branch targets. `InsnStart` markers are never deleted (they move before the
//!    branch that made their code unreachable), so instruction indices stay exact.
//! 3. **dce** ([`dce`]): backward liveness deleting side-effect-free ops whose result is dead,
//!    including writes to globals that are overwritten before anything can observe them
//!    (terminals, ops that may raise, helpers that touch globals).
//!
//! Every pass is linear in the number of ops and allocates nothing once an [`Optimizer`] has
//! seen a block as large: per-temp tables are indexed by temp number and invalidated by
//! bumping an epoch instead of being cleared, and ops are rewritten in place. Label numbering
//! is left alone: deleted labels are just unused ids.

mod bits;
mod cfg;
mod dce;
mod fold;

use std::cell::RefCell;

use crate::Block;

/// "No such op" in per-label position tables.
const NO_POS: u32 = u32::MAX;

/// The optimizer with its working memory, to be kept and reused for every block a thread
/// translates: after the first few blocks it no longer allocates.
pub struct Optimizer {
    fold: fold::Fold,
    cfg: cfg::Cfg,
    dce: dce::Dce,
    /// Index of each label's `SetLabel` after folding.
    label_pos: Vec<u32>,
}

impl Optimizer {
    /// An optimizer with empty buffers.
    pub fn new() -> Optimizer {
        Optimizer {
            fold: fold::Fold::new(),
            cfg: cfg::Cfg::new(),
            dce: dce::Dce::new(),
            label_pos: Vec::new(),
        }
    }

    /// Optimizes `block` in place. The block must pass [`crate::verify::verify`]; the result
    /// does too, and computes the same CPU state, memory accesses, helper calls and exits.
    pub fn run(&mut self, block: &mut Block) {
        if self.fold.run(block, &mut self.label_pos) {
            self.cfg.run(block, &self.label_pos);
        }
        self.dce.run(block);
    }
}

impl Default for Optimizer {
    fn default() -> Optimizer {
        Optimizer::new()
    }
}

/// Optimizes `block` in place with a per-thread [`Optimizer`], so that callers that do not
/// keep one still avoid per-block allocation. See [`Optimizer::run`].
pub fn optimize(block: &mut Block) {
    thread_local! {
        static OPTIMIZER: RefCell<Optimizer> = RefCell::new(Optimizer::new());
    }
    OPTIMIZER.with(|o| match o.try_borrow_mut() {
        Ok(mut o) => o.run(block),
        // Not reachable (nothing here calls back into `optimize`), but cheap to be safe.
        Err(_) => Optimizer::new().run(block),
    })
}

#[cfg(test)]
mod tests;
