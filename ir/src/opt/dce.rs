//! Dead-code elimination by backward liveness.

use crate::op::Op;
use crate::types::TempKind;
use crate::{Block, HelperFlags};

/// A set of temps.
struct Set(Vec<u64>);

impl Set {
    fn new(n: usize) -> Set {
        Set(vec![0; n.div_ceil(64)])
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn union(&mut self, other: &[u64]) {
        self.0.iter_mut().zip(other).for_each(|(a, b)| *a |= b);
    }
    fn assign(&mut self, other: &[u64]) {
        self.0.copy_from_slice(other);
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
pub(super) fn dce(block: &mut Block) {
    let n = block.temps.len();
    let mut globals = Set::new(n);
    let mut unknown_target = Set::new(n);
    for (i, t) in block.temps.iter().enumerate() {
        match t.kind {
            TempKind::Global { .. } => {
                globals.insert(i);
                unknown_target.insert(i);
            }
            TempKind::Local => unknown_target.insert(i),
            _ => {}
        }
    }
    // The live set recorded at each label, flat: label `l` owns words `l * words..`.
    let words = n.div_ceil(64);
    let nlabels = block.num_labels as usize;
    let mut label_live = vec![0u64; nlabels * words];
    let mut label_seen = vec![false; nlabels];
    let mut live = Set::new(n);
    let mut keep = vec![true; block.ops.len()];
    for (i, op) in block.ops.iter().enumerate().rev() {
        let target = |l: crate::Label| -> &[u64] {
            if label_seen.get(l.index()).copied().unwrap_or(false) {
                &label_live[l.index() * words..(l.index() + 1) * words]
            } else {
                &unknown_target.0
            }
        };
        match *op {
            Op::GotoTb { .. } | Op::ExitTb { .. } | Op::LookupAndGoto => live.assign(&globals.0),
            Op::Br(l) => live.assign(target(l)),
            Op::BrCond { label, .. } => live.union(target(label)),
            Op::SetLabel(l) if l.index() < nlabels => {
                label_seen[l.index()] = true;
                label_live[l.index() * words..(l.index() + 1) * words].copy_from_slice(&live.0);
            }
            _ => {}
        }
        if let Some(d) = op.def() {
            if !live.contains(d.index()) && !op.has_side_effects() {
                keep[i] = false;
                continue;
            }
            live.remove(d.index());
        }
        let observes_globals = match op {
            Op::Load { .. } | Op::Store { .. } => true,
            Op::Call { helper, .. } => {
                helper.flags != HelperFlags::NONE && helper.flags != HelperFlags::PURE
            }
            _ => false,
        };
        if observes_globals {
            live.union(&globals.0);
        }
        op.for_each_use(|t| live.insert(t.index()));
    }
    let mut i = 0;
    block.ops.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}
