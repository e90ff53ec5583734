//! Dead-code elimination by backward liveness.

use crate::op::Op;
use crate::types::TempKind;
use crate::{Block, HelperFlags};

/// Set operations on bit sets of temps stored as `u64` words.
fn insert(set: &mut [u64], i: usize) {
    set[i / 64] |= 1 << (i % 64);
}

fn contains(set: &[u64], i: usize) -> bool {
    set[i / 64] & (1 << (i % 64)) != 0
}

fn union(set: &mut [u64], other: &[u64]) {
    set.iter_mut().zip(other).for_each(|(a, b)| *a |= b);
}

/// The pass's buffers, kept from block to block.
pub(super) struct Dce {
    live: Vec<u64>,
    globals: Vec<u64>,
    /// What is live at a label not seen yet (a backward branch): every global and local.
    /// Built on the first such branch of a block only.
    unknown_target: Vec<u64>,
    /// The live set recorded at each label, flat: label `l` owns words `l * words..`.
    label_live: Vec<u64>,
    label_seen: Vec<bool>,
}

impl Dce {
    pub fn new() -> Dce {
        Dce {
            live: Vec::new(),
            globals: Vec::new(),
            unknown_target: Vec::new(),
            label_live: Vec::new(),
            label_seen: Vec::new(),
        }
    }

    /// Deletes ops without side effects whose destination is dead.
    ///
    /// Liveness is computed in one backward walk. Globals are live wherever their value in the
    /// CPU state can be observed: at terminals, at every op that may raise (loads, stores, calls
    /// with `MAY_RAISE`: an exception must see the state as it was when the op started) and at
    /// calls that read or write globals (a helper that writes some globals may not write all of
    /// them). So a write to a global is deleted only when the global is written again before any
    /// such point with no read in between. Locals and scratch temps are dead at terminals.
    ///
    /// At a label the live set is recorded; a forward branch takes its target's set. A backward
    /// branch's target has not been seen yet, so it conservatively takes every global and local
    /// (scratch temps are dead at labels by definition).
    pub fn run(&mut self, block: &mut Block) {
        let n = block.temps.len();
        let words = n.div_ceil(64);
        let nlabels = block.num_labels as usize;
        let Dce {
            live,
            globals,
            unknown_target,
            label_live,
            label_seen,
        } = self;
        // Globals are temps 1..=G.
        globals.clear();
        globals.resize(words, 0);
        for g in 1..=block.globals.len() {
            insert(globals, g);
        }
        unknown_target.clear();
        let mut unknown_built = false;
        label_live.clear();
        label_live.resize(nlabels * words, 0);
        label_seen.clear();
        label_seen.resize(nlabels, false);
        live.clear();
        live.resize(words, 0);

        // Where the live set at a branch target is: its recorded words in `label_live` (by
        // offset), or `unknown_target` (`None`) for a label not seen yet.
        let target = |l: crate::Label,
                      label_seen: &[bool],
                      unknown_built: &mut bool,
                      unknown: &mut Vec<u64>| {
            if label_seen.get(l.index()).copied().unwrap_or(false) {
                return Some(l.index() * words);
            }
            if !*unknown_built {
                *unknown_built = true;
                unknown.extend_from_slice(globals);
                for (t, info) in block.temps.iter().enumerate() {
                    if info.kind == TempKind::Local {
                        insert(unknown, t);
                    }
                }
            }
            None
        };
        let mut ops = std::mem::take(&mut block.ops);
        // Kept ops are packed at the end of `ops`, from `w` on.
        let mut w = ops.len();
        for i in (0..ops.len()).rev() {
            // One dispatch per op (mispredicted dispatches are most of a pass's cost): each
            // arm kills what the op defines, deleting it if that was dead and it has no
            // effect, then adds what it reads.
            macro_rules! pure_def {
                ($dst:expr) => {{
                    let d = $dst.index();
                    if !contains(live, d) {
                        continue;
                    }
                    live[d / 64] &= !(1 << (d % 64));
                }};
            }
            // Matched in place: copying the op out and back costs a store-forwarding stall.
            match ops[i] {
                Op::Mov { dst, src, .. }
                | Op::Unary { dst, src, .. }
                | Op::Ext { dst, src, .. }
                | Op::Trunc { dst, src }
                | Op::Extract { dst, src, .. } => {
                    pure_def!(dst);
                    insert(live, src.index());
                }
                Op::Binary { dst, a, b, .. } | Op::SetCond { dst, a, b, .. } => {
                    pure_def!(dst);
                    insert(live, a.index());
                    insert(live, b.index());
                }
                Op::Deposit { dst, base, val, .. } => {
                    pure_def!(dst);
                    insert(live, base.index());
                    insert(live, val.index());
                }
                Op::MovCond {
                    dst, a, b, t, f, ..
                } => {
                    pure_def!(dst);
                    insert(live, a.index());
                    insert(live, b.index());
                    insert(live, t.index());
                    insert(live, f.index());
                }
                Op::EnvLoad { dst, .. } => pure_def!(dst),
                // A guest access may raise: the state must be exact there.
                Op::Load { dst, addr, .. } => {
                    let d = dst.index();
                    live[d / 64] &= !(1 << (d % 64));
                    union(live, globals);
                    insert(live, addr.index());
                }
                Op::Store { val, addr, .. } => {
                    union(live, globals);
                    insert(live, val.index());
                    insert(live, addr.index());
                }
                Op::EnvStore { val, .. } => insert(live, val.index()),
                Op::Call {
                    helper,
                    args,
                    nargs,
                    ret,
                } => {
                    if let Some(r) = ret {
                        let d = r.index();
                        if !contains(live, d) && helper.flags.contains(HelperFlags::PURE) {
                            continue;
                        }
                        live[d / 64] &= !(1 << (d % 64));
                    }
                    if helper.flags != HelperFlags::NONE && helper.flags != HelperFlags::PURE {
                        union(live, globals);
                    }
                    for a in &args[..nargs as usize] {
                        insert(live, a.index());
                    }
                }
                Op::GotoTb { .. } | Op::ExitTb { .. } | Op::LookupAndGoto => {
                    live.copy_from_slice(globals)
                }
                Op::Br(l) => match target(l, label_seen, &mut unknown_built, unknown_target) {
                    None => live.copy_from_slice(unknown_target),
                    Some(at) => live.copy_from_slice(&label_live[at..at + words]),
                },
                Op::BrCond { a, b, label, .. } => {
                    match target(label, label_seen, &mut unknown_built, unknown_target) {
                        None => union(live, unknown_target),
                        Some(at) => union(live, &label_live[at..at + words]),
                    }
                    insert(live, a.index());
                    insert(live, b.index());
                }
                Op::SetLabel(l) => {
                    if l.index() < nlabels {
                        label_seen[l.index()] = true;
                        label_live[l.index() * words..(l.index() + 1) * words]
                            .copy_from_slice(live);
                    }
                }
                Op::Fence | Op::InsnStart { .. } => {}
            }
            w -= 1;
            if w != i {
                ops[w] = ops[i];
            }
        }
        ops.drain(..w);
        block.ops = ops;
    }
}
