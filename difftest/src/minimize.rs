//! Shrinking a failing sequence: delta debugging over its instructions (drop ever smaller
//! chunks while the failure stays), then single instructions, then a simpler initial state
//! (registers, XMM registers, flags, MXCSR and memory reset to plain values one at a time).

use crate::seq::Sequence;
use crate::state::{DATA_ADDR, STACK_TOP};

/// Most candidate sequences tried (each costs a few runs).
const MAX_TRIES: usize = 2000;

/// Shrinks `seq` while `fails` holds for the candidate; `fails(seq)` is assumed true.
pub fn minimize(seq: &Sequence, mut fails: impl FnMut(&Sequence) -> bool) -> Sequence {
    let mut best = seq.clone();
    let mut tries = 0;
    let mut attempt = |cand: &Sequence, tries: &mut usize| {
        *tries += 1;
        fails(cand)
    };
    // Delta debugging over chunks.
    let mut n = 2usize;
    while best.items.len() >= 2 && tries < MAX_TRIES {
        let len = best.items.len();
        let chunk = len.div_ceil(n);
        let mut reduced = false;
        for start in (0..len).step_by(chunk) {
            let mut cand = best.clone();
            cand.items.drain(start..(start + chunk).min(len));
            if attempt(&cand, &mut tries) {
                best = cand;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if n >= len {
                break;
            }
            n = (2 * n).min(len);
        }
    }
    // Single instructions, until nothing more goes.
    let mut changed = true;
    while changed && tries < MAX_TRIES {
        changed = false;
        let mut k = 0;
        while k < best.items.len() && tries < MAX_TRIES {
            let mut cand = best.clone();
            cand.items.remove(k);
            if attempt(&cand, &mut tries) {
                best = cand;
                changed = true;
            } else {
                k += 1;
            }
        }
    }
    // A plainer start: each register 0 (rsp and r15 keep the sandbox), each XMM register 0,
    // no flags, the default MXCSR, zeroed memory.
    for r in 0..16 {
        if r == 4 || r == 15 || best.init.regs[r] == 0 || tries >= MAX_TRIES {
            continue;
        }
        let mut cand = best.clone();
        cand.init.regs[r] = 0;
        if attempt(&cand, &mut tries) {
            best = cand;
        }
    }
    debug_assert_eq!(best.init.regs[4], STACK_TOP);
    debug_assert_eq!(best.init.regs[15], DATA_ADDR);
    for x in 0..16 {
        if best.init.xmm[x] == [0, 0] || tries >= MAX_TRIES {
            continue;
        }
        let mut cand = best.clone();
        cand.init.xmm[x] = [0, 0];
        if attempt(&cand, &mut tries) {
            best = cand;
        }
    }
    let simplify: [fn(&mut Sequence); 3] = [
        |s| s.init.rflags = 0,
        |s| s.init.mxcsr = 0x1f80,
        |s| s.init.mem.fill(0),
    ];
    for f in simplify {
        if tries >= MAX_TRIES {
            break;
        }
        let mut cand = best.clone();
        f(&mut cand);
        if cand != best && attempt(&cand, &mut tries) {
            best = cand;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::Generator;
    use iced_x86::Mnemonic;

    #[test]
    fn shrinks_to_the_instruction_the_failure_needs() {
        let seq = Generator::new(5, &[]).sequence(60);
        let Some(target) = seq
            .items
            .iter()
            .map(|i| i.instr.mnemonic())
            .find(|m| *m != Mnemonic::Cmp && *m != Mnemonic::Mov && *m != Mnemonic::Lea)
        else {
            panic!("no instruction to look for");
        };
        let has = |s: &Sequence| s.items.iter().any(|i| i.instr.mnemonic() == target);
        let m = minimize(&seq, has);
        assert_eq!(m.items.len(), 1, "{:?}", m.items);
        assert_eq!(m.items[0].instr.mnemonic(), target);
        assert!(m
            .init
            .regs
            .iter()
            .enumerate()
            .all(|(r, v)| r == 4 || r == 15 || *v == 0));
        assert!(m.init.mem.iter().all(|b| *b == 0));
    }

    #[test]
    fn keeps_what_a_failure_depends_on_together() {
        let seq = Generator::new(6, &[]).sequence(40);
        let first = seq.items[3].id;
        let last = seq.items[30].id;
        let both = |s: &Sequence| {
            s.items.iter().any(|i| i.id == first) && s.items.iter().any(|i| i.id == last)
        };
        let m = minimize(&seq, both);
        let ids: Vec<u64> = m.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [first, last]);
    }
}
