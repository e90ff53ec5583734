//! Backward liveness over one block, the input of the register allocator.
//!
//! For every op it records, per operand, what the value is needed for *after* the op:
//! - [`DEAD`]: nothing; its register can be dropped without a store;
//! - [`NEEDMEM`]: no later read in this basic block, but the value must reach memory (a global
//!   at a block exit or label, a local at a label): store it if dirty, then drop the register;
//! - [`LIVE`]: read again later (or needed in a register by a slow path or helper that may
//!   see the globals): keep it.
//!
//! Basic-block boundaries follow the allocator's rule: at `SetLabel`, `Br` and `BrCond` the
//! globals and locals are in memory; scratch temps die at `SetLabel`, `Br` and terminals.

use ir::{Block, Op, TempKind};

pub const DEAD: u8 = 0;
pub const NEEDMEM: u8 = 1;
pub const LIVE: u8 = 2;

/// Index of the destination's state in [`OpLife`].
pub const DST: usize = 6;

/// Per-op states: `[0..nuses]` for the uses in `Op::for_each_use` order, `[DST]` for the def.
pub type OpLife = [u8; 7];

/// Computes the per-op states of `block` into `out` (reusing `state` as scratch).
pub fn compute(block: &Block, out: &mut Vec<OpLife>, state: &mut Vec<u8>) {
    let n = block.temps.len();
    out.clear();
    out.resize(block.ops.len(), [DEAD; 7]);
    state.clear();
    state.resize(n, DEAD);
    let kinds = &block.temps;
    let reset = |state: &mut Vec<u8>, locals: u8| {
        for (s, t) in state.iter_mut().zip(kinds.iter()) {
            *s = match t.kind {
                TempKind::Global { .. } => NEEDMEM,
                TempKind::Local => locals,
                _ => DEAD,
            };
        }
    };
    let raise_globals = |state: &mut Vec<u8>| {
        for (s, t) in state.iter_mut().zip(kinds.iter()) {
            if matches!(t.kind, TempKind::Global { .. }) {
                *s = LIVE;
            }
        }
    };
    for (i, op) in block.ops.iter().enumerate().rev() {
        match op {
            Op::GotoTb { .. } | Op::ExitTb { .. } | Op::LookupAndGoto => reset(state, DEAD),
            Op::Br(_) | Op::SetLabel(_) => reset(state, NEEDMEM),
            Op::BrCond { .. } => {
                for (s, t) in state.iter_mut().zip(kinds.iter()) {
                    if matches!(t.kind, TempKind::Global { .. } | TempKind::Local) {
                        *s = (*s).max(NEEDMEM);
                    }
                }
            }
            _ => {}
        }
        let life = &mut out[i];
        if let Some(d) = op.def() {
            life[DST] = state[d.index()];
            state[d.index()] = DEAD;
        }
        // Ops that may show the globals to other code keep them (slow paths store dirty
        // globals from their registers; calls store them before the call).
        let shows_globals = match op {
            Op::Load { .. } | Op::Store { .. } => true,
            Op::Call { helper, .. } => {
                let f = helper.flags;
                f.syncs_globals() || f.contains(ir::HelperFlags::WRITES_GLOBALS)
            }
            _ => false,
        };
        if shows_globals {
            raise_globals(state);
        }
        let mut k = 0;
        op.for_each_use(|u| {
            life[k] = state[u.index()];
            k += 1;
        });
        op.for_each_use(|u| state[u.index()] = LIVE);
    }
}
