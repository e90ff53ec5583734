//! Control-flow cleanup: unreachable code, branches to the next op and labels nobody targets.

use crate::op::Op;
use crate::Block;

/// Deletes ops that can never run (after a `Br` or terminal, up to the next targeted label),
/// branches whose target is the very next op, and labels no branch targets. Deleting one can
/// orphan a label further up (its only branch was unreachable), so the walk repeats until
/// nothing changes; each round is linear and real blocks settle in two.
///
/// `InsnStart` markers in deleted code are kept: they move up to just before the branch or
/// terminal that made the code unreachable. That op cannot raise, and the markers still
/// precede every op they preceded before, so every reachable op keeps its instruction index
/// (the exception table stays exact) and the block keeps all its instructions.
pub(super) fn cleanup(block: &mut Block) {
    let nlabels = block.num_labels as usize;
    let mut refs = vec![0u32; nlabels];
    loop {
        refs.iter_mut().for_each(|r| *r = 0);
        for op in &block.ops {
            if let Op::Br(l) | Op::BrCond { label: l, .. } = *op {
                refs[l.index()] += 1;
            }
        }
        let ops = &block.ops;
        let mut out = Vec::with_capacity(ops.len());
        let mut changed = false;
        // Position of the barrier that started the current unreachable run, if in one.
        let mut dead_after: Option<usize> = None;
        for (i, &op) in ops.iter().enumerate() {
            if let Some(at) = dead_after.as_mut() {
                match op {
                    Op::SetLabel(l) if refs[l.index()] > 0 => dead_after = None,
                    Op::InsnStart { .. } => {
                        out.insert(*at, op);
                        *at += 1;
                        changed = true;
                        continue;
                    }
                    _ => {
                        if let Op::Br(l) | Op::BrCond { label: l, .. } = op {
                            refs[l.index()] -= 1;
                        }
                        changed = true;
                        continue;
                    }
                }
            }
            match op {
                Op::Br(l) | Op::BrCond { label: l, .. }
                    if ops.get(i + 1) == Some(&Op::SetLabel(l)) =>
                {
                    refs[l.index()] -= 1;
                    changed = true;
                    continue;
                }
                Op::SetLabel(l) if refs[l.index()] == 0 => {
                    changed = true;
                    continue;
                }
                _ => {}
            }
            out.push(op);
            if op.is_barrier() {
                dead_after = Some(out.len() - 1);
            }
        }
        // A block whose end became unreachable behind a backward branch (an endless loop)
        // would no longer end in a terminal: leave such a block alone.
        if !changed || !out.last().is_some_and(Op::is_terminal) {
            return;
        }
        block.ops = out;
    }
}
