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

/// Computes the per-op states of `block` into `out` (reusing `state` and `locals` as
/// scratch). `pc_offset` is the CPU-state offset of the guest pc global: `LookupAndGoto`
/// reads it from its register for the inline jump-cache probe, so it stays LIVE up to there.
///
/// Cost is linear in the ops plus, per basic-block boundary or memory op, the number of
/// globals (a contiguous range, so a `fill`) and locals (a list); scratch temps are never
/// reset: a valid block writes a scratch temp before reading it in each basic block, so when
/// the backward walk reaches the block's start the write has already made it DEAD.
pub fn compute(
    block: &Block,
    pc_offset: Option<u32>,
    out: &mut Vec<OpLife>,
    state: &mut Vec<u8>,
    locals: &mut Vec<u32>,
) {
    let n = block.temps.len();
    out.clear();
    out.resize(block.ops.len(), [DEAD; 7]);
    state.clear();
    state.resize(n, DEAD);
    // Temps 1..=G are the globals (Block's layout); locals are listed.
    let globals = 1..=block.globals.len();
    locals.clear();
    let first = block.globals.len() + 1;
    for (i, t) in block.temps[first..].iter().enumerate() {
        if t.kind == TempKind::Local {
            locals.push((first + i) as u32);
        }
    }
    let pc_temp = pc_offset.and_then(|off| {
        block
            .globals
            .iter()
            .position(|g| g.offset == off)
            .map(|i| i + 1)
    });
    let reset = |state: &mut Vec<u8>, locals: &[u32], local_state: u8| {
        state[globals.clone()].fill(NEEDMEM);
        for &l in locals {
            state[l as usize] = local_state;
        }
    };
    for (i, op) in block.ops.iter().enumerate().rev() {
        match op {
            Op::InsnStart { .. } => continue,
            Op::GotoTb { .. } | Op::ExitTb { .. } => reset(state, locals, DEAD),
            Op::LookupAndGoto => {
                reset(state, locals, DEAD);
                if let Some(t) = pc_temp {
                    state[t] = LIVE;
                }
            }
            Op::Br(_) | Op::SetLabel(_) => reset(state, locals, NEEDMEM),
            Op::BrCond { .. } => {
                for s in &mut state[globals.clone()] {
                    *s = (*s).max(NEEDMEM);
                }
                for &l in locals.iter() {
                    let s = &mut state[l as usize];
                    *s = (*s).max(NEEDMEM);
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
            state[globals.clone()].fill(LIVE);
        }
        let mut k = 0;
        // Two passes, so a temp used twice by one op gets the same state for both uses.
        op.for_each_use(|u| {
            life[k] = state[u.index()];
            k += 1;
        });
        op.for_each_use(|u| state[u.index()] = LIVE);
    }
}
