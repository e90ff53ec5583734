//! Control-flow cleanup: unreachable code, branches to the next op and labels nobody targets.
//!
//! Reachability is computed from the entry over the label graph, not from "is this label
//! referenced": a loop whose only way in is its own back-edge is referenced, yet dead, and
//! keeping it while the code that initialised its locals goes would leave a block that reads
//! a local before writing it.

use super::NO_POS;
use crate::op::Op;
use crate::types::Label;
use crate::Block;

/// The pass's buffers, kept from block to block.
pub(super) struct Cfg {
    /// Whether each label can be reached from the entry.
    reached: Vec<bool>,
    /// Number of reachable branches to each label.
    refs: Vec<u32>,
    /// Ops at which reachable code starts that have not been walked yet.
    work: Vec<u32>,
    out: Vec<Op>,
}

impl Cfg {
    pub fn new() -> Cfg {
        Cfg {
            reached: Vec::new(),
            refs: Vec::new(),
            work: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Deletes every op that cannot run (not reachable from the first op by falling through
    /// and branching), branches whose target is the very next op, and labels no reachable
    /// branch targets. `label_pos[l]` is the index of `SetLabel(l)` in `block.ops`.
    ///
    /// `InsnStart` markers in deleted code are kept: they move up to just before the branch or
    /// terminal that ends the reachable code before them. That op cannot raise, and the
    /// markers still precede every op they preceded before, so every reachable op keeps its
    /// instruction index (the exception table stays exact) and the block keeps all its
    /// instructions.
    ///
    /// If the block's last op (its terminal) is unreachable, the block is an endless loop
    /// that only an exception leaves; it still has to end in a terminal, so the terminal is
    /// kept behind a fresh label.
    pub fn run(&mut self, block: &mut Block, label_pos: &[u32]) {
        let nlabels = block.num_labels as usize;
        self.reached.clear();
        self.reached.resize(nlabels, false);
        self.refs.clear();
        self.refs.resize(nlabels, 0);
        let ops = &block.ops;
        if ops.is_empty() {
            return;
        }

        // Walk every reachable run of ops once: from the entry, and from each label when the
        // first reachable branch to it is found.
        let mut walked = 0usize;
        // Whether the rebuild below would change anything besides dropping unreachable ops.
        let mut simplify = false;
        self.work.clear();
        self.work.push(0);
        while let Some(start) = self.work.pop() {
            let mut i = start as usize;
            while i < ops.len() {
                let op = ops[i];
                match op {
                    Op::Br(l) | Op::BrCond { label: l, .. } => {
                        if let Some(r) = self.refs.get_mut(l.index()) {
                            *r += 1;
                            simplify |= ops.get(i + 1) == Some(&Op::SetLabel(l));
                            if !self.reached[l.index()] {
                                self.reached[l.index()] = true;
                                let pos = label_pos[l.index()];
                                if pos != NO_POS {
                                    walked += 1; // the SetLabel itself
                                    self.work.push(pos + 1);
                                }
                            }
                        }
                    }
                    Op::SetLabel(l) if l.index() < nlabels => {
                        // Falling into a label whose code is (or will be) walked anyway.
                        if self.reached[l.index()] {
                            break;
                        }
                        self.reached[l.index()] = true;
                    }
                    _ => {}
                }
                walked += 1;
                if op.is_barrier() {
                    break;
                }
                i += 1;
            }
        }
        // A reachable label no reachable branch targets goes too.
        simplify |= self
            .reached
            .iter()
            .zip(&self.refs)
            .any(|(&reached, &refs)| reached && refs == 0);
        if walked == ops.len() && !simplify {
            return;
        }

        let out = &mut self.out;
        out.clear();
        let mut live = true;
        for &op in ops {
            match op {
                Op::SetLabel(l) if l.index() < nlabels => {
                    live = self.reached[l.index()];
                    if !live {
                        continue;
                    }
                    // Branches straight to here do nothing.
                    while let Some(Op::Br(m) | Op::BrCond { label: m, .. }) = out.last() {
                        if *m != l {
                            break;
                        }
                        out.pop();
                        self.refs[l.index()] -= 1;
                    }
                    if self.refs[l.index()] > 0 {
                        out.push(op);
                    }
                }
                Op::InsnStart { .. } if !live => match out.pop() {
                    // Before the barrier that ended the reachable code.
                    Some(barrier) => {
                        out.push(op);
                        out.push(barrier);
                    }
                    None => out.push(op),
                },
                _ if !live => {}
                _ => {
                    out.push(op);
                    live = !op.is_barrier();
                }
            }
        }
        let last = *ops.last().expect("checked non-empty");
        if !out.last().is_some_and(Op::is_terminal) && last.is_terminal() {
            out.push(Op::SetLabel(Label(block.num_labels)));
            out.push(last);
            block.num_labels += 1;
        }
        std::mem::swap(&mut block.ops, out);
    }
}
