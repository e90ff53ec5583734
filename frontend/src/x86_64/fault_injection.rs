//! A deliberate mistranslation, for proving that differential testing catches one.
//!
//! `tern difftest` and its tests switch this on to check that the harness reports a wrong
//! translation: while a mnemonic is selected, every instruction with that mnemonic is
//! followed by `rax ^= 1`, a change the host CPU never makes (instructions that end a block are left alone). Off (the default) it costs one
//! relaxed load per translated instruction. Nothing outside the difftest harness sets it.

use std::sync::atomic::{AtomicU32, Ordering};

use iced_x86::Mnemonic;

/// The selected mnemonic as its `u32` value plus one; 0 when off.
static TARGET: AtomicU32 = AtomicU32::new(0);

/// Selects the mnemonic to mistranslate (`None`: translate everything correctly). Blocks
/// translated before the call keep their code: flush the engine's cache to apply it.
pub fn set(target: Option<Mnemonic>) {
    TARGET.store(target.map_or(0, |m| m as u32 + 1), Ordering::Relaxed);
}

/// Whether instructions with mnemonic `m` are to be mistranslated.
pub(crate) fn applies_to(m: Mnemonic) -> bool {
    let t = TARGET.load(Ordering::Relaxed);
    t != 0 && t == m as u32 + 1
}
