//! The RISC-V PLIC (platform-level interrupt controller) in the SiFive / QEMU virt layout.
//!
//! Device interrupt lines ("sources", numbered from 1; source 0 means "none") go through a
//! level-triggered gateway into per-source pending bits; each context (a hart in one
//! privilege mode) has an enable bit per source and a priority threshold, and its output is
//! the hart's external-interrupt wire. Register map (all registers 32 bits):
//!
//! | offset                        | register                                              |
//! |-------------------------------|-------------------------------------------------------|
//! | `0x00_0000 + 4 * source`      | source priority (0 = never interrupts, 1..=[`MAX_PRIORITY`]) |
//! | `0x00_1000 + 4 * word`        | pending bits, 32 sources a word (read-only)           |
//! | `0x00_2000 + 0x80 * ctx + 4 * word` | context enable bits                             |
//! | `0x20_0000 + 0x1000 * ctx`    | context priority threshold                            |
//! | `0x20_0004 + 0x1000 * ctx`    | read: claim; write: complete                          |
//!
//! Contexts are numbered as on QEMU's virt machine: context `2h` is hart `h` in M-mode and
//! drives its `mip.MEIP`, context `2h + 1` is hart `h` in S-mode and drives `mip.SEIP`.
//!
//! Semantics, from the PLIC specification:
//!
//! - A source is pending while its line is high and it is not claimed (the level-triggered
//!   gateway forwards one request at a time; a line going low before the claim withdraws the
//!   request, as QEMU does).
//! - A context's output is high while some pending source enabled for it has a priority above
//!   its threshold.
//! - A claim returns the highest-priority such source (ties to the lowest id) and clears its
//!   pending bit, or 0 when there is none. The source stays claimed, and raises no new
//!   request, until a context for which it is enabled writes its id to claim/complete; if its
//!   line is still high then, it becomes pending again.
//!
//! Priorities and thresholds keep 3 bits (0..=7, as QEMU virt); writes of larger values keep
//! the low bits (the registers are WARL). Accesses that are not aligned 32-bit ones are
//! ignored and read as 0.
//!
//! Locking: the PLIC sits in an `Arc<Mutex<Plic>>` shared by the bus and by the interrupt
//! lines handed out by [`Plic::irq_line`]. A device may call its line while holding its own
//! lock, which then takes the PLIC's lock; the PLIC never calls into a device, so the order
//! "device, then PLIC, then the [`HartInterrupts`] implementation" cannot deadlock. The
//! PLIC drives [`HartInterrupts::set_pending`] with its lock held: that keeps the output
//! changes in the order the state changed (releasing first would let two threads deliver
//! their levels out of order and leave a stale one), so the implementation must be a leaf
//! (atomics and a kick, no device locks).

use std::sync::{Arc, Mutex};

use super::{le_value, put_le, HartInterrupts, MIP_MEIP, MIP_SEIP};
use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Base of the PLIC on the virt machine.
pub const PLIC_BASE: u64 = 0x0c00_0000;
/// Length of the PLIC's range.
pub const PLIC_LEN: u64 = 0x60_0000;
/// Number of interrupt sources on the virt machine (the device tree's `riscv,ndev`): sources
/// 1 to 96 exist.
pub const VIRT_NDEV: u32 = 96;
/// Most sources the layout allows (1023, ids 1..=1023).
pub const MAX_NDEV: u32 = 1023;
/// Highest priority a source can have.
pub const MAX_PRIORITY: u32 = 7;
/// Most harts [`PLIC_LEN`] has context registers for (1024 contexts, two per hart).
pub const MAX_HARTS: usize = ((PLIC_LEN - CONTEXT_BASE) / CONTEXT_STRIDE) as usize / 2;

// Register blocks.
/// Source priorities, one word per source.
const PRIORITY_BASE: u64 = 0x0;
/// Pending bits, 32 sources per word.
const PENDING_BASE: u64 = 0x1000;
/// Enable bits of context 0; each context's block is [`ENABLE_STRIDE`] long.
const ENABLE_BASE: u64 = 0x2000;
/// Distance between two contexts' enable blocks.
const ENABLE_STRIDE: u64 = 0x80;
/// Threshold of context 0; each context's block is [`CONTEXT_STRIDE`] long.
const CONTEXT_BASE: u64 = 0x20_0000;
/// Distance between two contexts' threshold/claim blocks.
const CONTEXT_STRIDE: u64 = 0x1000;
/// Offset of the threshold in a context block.
const CONTEXT_THRESHOLD: u64 = 0;
/// Offset of claim/complete in a context block.
const CONTEXT_CLAIM: u64 = 4;
/// Bits kept by priority and threshold registers.
const PRIORITY_MASK: u32 = MAX_PRIORITY;

/// Errors from building a [`Plic`] or one of its lines.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlicError {
    /// The hart count is 0 or above [`MAX_HARTS`].
    #[error("the PLIC supports 1 to {MAX_HARTS} harts, not {0}")]
    HartCount(usize),
    /// The source count is 0 or above [`MAX_NDEV`].
    #[error("the PLIC supports 1 to {MAX_NDEV} sources, not {0}")]
    SourceCount(u32),
    /// An interrupt line asked for a source that does not exist.
    #[error("PLIC source {id} does not exist (sources are 1..={ndev})")]
    NoSuchSource { id: u32, ndev: u32 },
    /// A saved state whose arrays do not match its hart and source counts.
    #[error("inconsistent PLIC state: {0}")]
    InconsistentState(&'static str),
}

/// Saved state of a [`Plic`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlicState {
    /// Number of harts (contexts are twice as many).
    pub hart_count: usize,
    /// Number of sources (`riscv,ndev`).
    pub ndev: u32,
    /// Priority of each source, indexed by id (entry 0 unused).
    pub priority: Vec<u32>,
    /// Level of each source's input line, indexed by id.
    pub level: Vec<bool>,
    /// Pending bit of each source, indexed by id.
    pub pending: Vec<bool>,
    /// Whether each source is claimed and not yet completed, indexed by id.
    pub claimed: Vec<bool>,
    /// Enable words of each context.
    pub enable: Vec<Vec<u32>>,
    /// Threshold of each context.
    pub threshold: Vec<u32>,
}

/// The PLIC.
pub struct Plic {
    harts: Arc<dyn HartInterrupts>,
    ndev: u32,
    priority: Vec<u32>,
    level: Vec<bool>,
    pending: Vec<bool>,
    claimed: Vec<bool>,
    enable: Vec<Vec<u32>>,
    threshold: Vec<u32>,
    /// Output level last driven per context.
    eip: Vec<bool>,
}

/// Words of 32 bits needed for one bit per source id `0..=ndev`.
fn words_for(ndev: u32) -> usize {
    (ndev as usize + 1).div_ceil(32)
}

/// The hart and `mip` bit driven by context `ctx`.
fn context_target(ctx: usize) -> (usize, u64) {
    (ctx / 2, if ctx % 2 == 0 { MIP_MEIP } else { MIP_SEIP })
}

impl Plic {
    /// A PLIC with `ndev` sources and two contexts per hart for `hart_count` harts, driving
    /// `harts`, out of reset: every priority, enable bit and threshold 0, nothing pending.
    pub fn new(
        hart_count: usize,
        ndev: u32,
        harts: Arc<dyn HartInterrupts>,
    ) -> Result<Self, PlicError> {
        if hart_count == 0 || hart_count > MAX_HARTS {
            return Err(PlicError::HartCount(hart_count));
        }
        if ndev == 0 || ndev > MAX_NDEV {
            return Err(PlicError::SourceCount(ndev));
        }
        let sources = ndev as usize + 1;
        let contexts = 2 * hart_count;
        Ok(Self {
            harts,
            ndev,
            priority: vec![0; sources],
            level: vec![false; sources],
            pending: vec![false; sources],
            claimed: vec![false; sources],
            enable: vec![vec![0; words_for(ndev)]; contexts],
            threshold: vec![0; contexts],
            eip: vec![false; contexts],
        })
    }

    /// The device's state, for snapshots.
    pub fn state(&self) -> PlicState {
        PlicState {
            hart_count: self.eip.len() / 2,
            ndev: self.ndev,
            priority: self.priority.clone(),
            level: self.level.clone(),
            pending: self.pending.clone(),
            claimed: self.claimed.clone(),
            enable: self.enable.clone(),
            threshold: self.threshold.clone(),
        }
    }

    /// Rebuilds a PLIC from a saved state and drives every context's output to match it.
    pub fn from_state(
        state: &PlicState,
        harts: Arc<dyn HartInterrupts>,
    ) -> Result<Self, PlicError> {
        let mut plic = Self::new(state.hart_count, state.ndev, harts)?;
        let sources = plic.priority.len();
        if state.priority.len() != sources
            || state.level.len() != sources
            || state.pending.len() != sources
            || state.claimed.len() != sources
        {
            return Err(PlicError::InconsistentState("per-source arrays"));
        }
        if state.enable.len() != plic.enable.len()
            || state.threshold.len() != plic.threshold.len()
            || state
                .enable
                .iter()
                .any(|e| e.len() != words_for(state.ndev))
        {
            return Err(PlicError::InconsistentState("per-context arrays"));
        }
        plic.priority = state.priority.iter().map(|p| p & PRIORITY_MASK).collect();
        plic.priority[0] = 0;
        plic.level.clone_from(&state.level);
        plic.pending.clone_from(&state.pending);
        plic.claimed.clone_from(&state.claimed);
        plic.pending[0] = false;
        plic.claimed[0] = false;
        plic.threshold = state.threshold.iter().map(|t| t & PRIORITY_MASK).collect();
        for ctx in 0..plic.enable.len() {
            for (word, &bits) in state.enable[ctx].iter().enumerate() {
                plic.enable[ctx][word] = bits & plic.enable_mask(word);
            }
        }
        for ctx in 0..plic.eip.len() {
            plic.eip[ctx] = plic.best(ctx).is_some();
            let (hart, bit) = context_target(ctx);
            plic.harts.set_pending(hart, bit, plic.eip[ctx]);
        }
        Ok(plic)
    }

    /// An interrupt line driving `source` of `plic`, for a device model (a UART, a
    /// virtio-mmio transport). The line holds the `Arc`: see the module doc on locking.
    pub fn irq_line(plic: &Arc<Mutex<Plic>>, source: u32) -> Result<Arc<dyn IrqLine>, PlicError> {
        let ndev = plic.lock().unwrap_or_else(|p| p.into_inner()).ndev;
        if source == 0 || source > ndev {
            return Err(PlicError::NoSuchSource { id: source, ndev });
        }
        Ok(Arc::new(PlicLine {
            plic: plic.clone(),
            source,
        }))
    }

    /// The number of sources (`riscv,ndev`).
    pub fn ndev(&self) -> u32 {
        self.ndev
    }

    /// Drives `source`'s input line to `high`, as an [`IrqLine`] from [`Plic::irq_line`]
    /// does. Sources that do not exist are ignored (logged).
    pub fn set_source_level(&mut self, source: u32, high: bool) {
        if source == 0 || source > self.ndev {
            log::warn!("plic: level change on nonexistent source {source}");
            return;
        }
        let src = source as usize;
        self.level[src] = high;
        if !self.claimed[src] {
            self.pending[src] = high;
        }
        self.update_outputs();
    }

    /// Bits of enable word `word` that name existing sources (source 0 never does).
    fn enable_mask(&self, word: usize) -> u32 {
        let first = word as u32 * 32;
        let mut mask = u32::MAX;
        if first == 0 {
            mask &= !1;
        }
        let last_valid = self.ndev; // highest id
        if first + 31 > last_valid {
            let count = last_valid + 1 - first; // ids first..=ndev in this word
            mask &= (1u32 << count) - 1;
        }
        mask
    }

    fn enabled(&self, ctx: usize, src: usize) -> bool {
        self.enable[ctx][src / 32] & (1 << (src % 32)) != 0
    }

    /// The source context `ctx` would claim now: the pending, enabled source of highest
    /// priority above the threshold, ties going to the lowest id.
    fn best(&self, ctx: usize) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for src in 1..self.priority.len() {
            let priority = self.priority[src];
            if self.pending[src]
                && priority > self.threshold[ctx]
                && self.enabled(ctx, src)
                && best.is_none_or(|(_, p)| priority > p)
            {
                best = Some((src, priority));
            }
        }
        best.map(|(src, _)| src)
    }

    /// Recomputes every context's output and drives those that changed.
    fn update_outputs(&mut self) {
        for ctx in 0..self.eip.len() {
            let level = self.best(ctx).is_some();
            if level != self.eip[ctx] {
                self.eip[ctx] = level;
                let (hart, bit) = context_target(ctx);
                self.harts.set_pending(hart, bit, level);
            }
        }
    }

    /// A claim by context `ctx`.
    fn claim(&mut self, ctx: usize) -> u32 {
        let Some(src) = self.best(ctx) else {
            return 0;
        };
        self.pending[src] = false;
        self.claimed[src] = true;
        self.update_outputs();
        src as u32
    }

    /// A completion of `source` by context `ctx`: ignored unless the source exists, is
    /// enabled for the context and is claimed.
    fn complete(&mut self, ctx: usize, source: u32) {
        let src = source as usize;
        if source == 0 || source > self.ndev || !self.enabled(ctx, src) || !self.claimed[src] {
            log::debug!("plic: context {ctx} completion of {source} ignored");
            return;
        }
        self.claimed[src] = false;
        self.pending[src] = self.level[src];
        self.update_outputs();
    }

    /// Decodes a register offset.
    fn register(&self, offset: u64) -> Option<Register> {
        let contexts = self.eip.len() as u64;
        let words = words_for(self.ndev) as u64;
        if offset < PENDING_BASE {
            let src = (offset - PRIORITY_BASE) / 4;
            return (src >= 1 && src <= u64::from(self.ndev))
                .then_some(Register::Priority(src as usize));
        }
        if offset < ENABLE_BASE {
            let word = (offset - PENDING_BASE) / 4;
            return (word < words).then_some(Register::Pending(word as usize));
        }
        if offset < CONTEXT_BASE {
            let ctx = (offset - ENABLE_BASE) / ENABLE_STRIDE;
            let word = (offset - ENABLE_BASE) % ENABLE_STRIDE / 4;
            return (ctx < contexts && word < words)
                .then_some(Register::Enable(ctx as usize, word as usize));
        }
        let ctx = (offset - CONTEXT_BASE) / CONTEXT_STRIDE;
        if ctx >= contexts {
            return None;
        }
        match (offset - CONTEXT_BASE) % CONTEXT_STRIDE {
            CONTEXT_THRESHOLD => Some(Register::Threshold(ctx as usize)),
            CONTEXT_CLAIM => Some(Register::Claim(ctx as usize)),
            _ => None,
        }
    }
}

/// A decoded PLIC register.
#[derive(Debug, Clone, Copy)]
enum Register {
    Priority(usize),
    Pending(usize),
    Enable(usize, usize),
    Threshold(usize),
    Claim(usize),
}

impl BusDevice for Plic {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let register = if data.len() == 4 && offset % 4 == 0 {
            self.register(offset)
        } else {
            None
        };
        let value = match register {
            Some(Register::Priority(src)) => self.priority[src],
            Some(Register::Pending(word)) => (0..32)
                .map(|bit| word * 32 + bit)
                .filter(|&src| self.pending.get(src).copied().unwrap_or(false))
                .fold(0u32, |v, src| v | 1 << (src % 32)),
            Some(Register::Enable(ctx, word)) => self.enable[ctx][word],
            Some(Register::Threshold(ctx)) => self.threshold[ctx],
            Some(Register::Claim(ctx)) => self.claim(ctx),
            None => {
                log::debug!(
                    "plic: unhandled {}-byte read at {:#x}",
                    data.len(),
                    base + offset
                );
                0
            }
        };
        put_le(data, u64::from(value));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let value = le_value(data) as u32;
        let register = if data.len() == 4 && offset % 4 == 0 {
            self.register(offset)
        } else {
            None
        };
        match register {
            Some(Register::Priority(src)) => {
                self.priority[src] = value & PRIORITY_MASK;
                self.update_outputs();
            }
            Some(Register::Enable(ctx, word)) => {
                self.enable[ctx][word] = value & self.enable_mask(word);
                self.update_outputs();
            }
            Some(Register::Threshold(ctx)) => {
                self.threshold[ctx] = value & PRIORITY_MASK;
                self.update_outputs();
            }
            Some(Register::Claim(ctx)) => self.complete(ctx, value),
            Some(Register::Pending(_)) | None => log::debug!(
                "plic: ignored {}-byte write of {value:#x} at {:#x}",
                data.len(),
                base + offset
            ),
        }
    }
}

/// An input line of the PLIC.
struct PlicLine {
    plic: Arc<Mutex<Plic>>,
    source: u32,
}

impl IrqLine for PlicLine {
    fn set_level(&self, high: bool) {
        self.plic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_source_level(self.source, high);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::riscv::RecordingHarts;

    fn plic(hart_count: usize) -> (Plic, Arc<RecordingHarts>) {
        let harts = Arc::new(RecordingHarts::default());
        (
            Plic::new(hart_count, VIRT_NDEV, harts.clone()).unwrap(),
            harts,
        )
    }

    fn read(plic: &mut Plic, offset: u64) -> u32 {
        let mut buf = [0u8; 4];
        plic.read(PLIC_BASE, offset, &mut buf);
        u32::from_le_bytes(buf)
    }

    fn write(plic: &mut Plic, offset: u64, value: u32) {
        plic.write(PLIC_BASE, offset, &value.to_le_bytes());
    }

    fn priority(src: u32) -> u64 {
        PRIORITY_BASE + 4 * u64::from(src)
    }

    fn enable(ctx: u64, word: u64) -> u64 {
        ENABLE_BASE + ENABLE_STRIDE * ctx + 4 * word
    }

    fn threshold(ctx: u64) -> u64 {
        CONTEXT_BASE + CONTEXT_STRIDE * ctx + CONTEXT_THRESHOLD
    }

    fn claim(ctx: u64) -> u64 {
        CONTEXT_BASE + CONTEXT_STRIDE * ctx + CONTEXT_CLAIM
    }

    /// Source `src` with priority `prio`, enabled for context `ctx`.
    fn route(plic: &mut Plic, src: u32, prio: u32, ctx: u64) {
        write(plic, priority(src), prio);
        let word = u64::from(src / 32);
        let old = read(plic, enable(ctx, word));
        write(plic, enable(ctx, word), old | 1 << (src % 32));
    }

    #[test]
    fn a_high_line_is_pending_and_shows_in_the_pending_bits() {
        let (mut plic, _) = plic(1);
        plic.set_source_level(10, true);
        plic.set_source_level(33, true);
        assert_eq!(read(&mut plic, PENDING_BASE), 1 << 10);
        assert_eq!(read(&mut plic, PENDING_BASE + 4), 1 << 1);
        // Pending bits are read-only.
        write(&mut plic, PENDING_BASE, 0);
        assert_eq!(read(&mut plic, PENDING_BASE), 1 << 10);
        // Level-triggered: the request goes away with the line.
        plic.set_source_level(10, false);
        assert_eq!(read(&mut plic, PENDING_BASE), 0);
    }

    #[test]
    fn output_needs_enable_and_priority_above_threshold() {
        let (mut plic, harts) = plic(1);
        plic.set_source_level(10, true);
        assert!(
            !harts.is_pending(0, MIP_SEIP),
            "priority 0 never interrupts"
        );
        write(&mut plic, priority(10), 1);
        assert!(!harts.is_pending(0, MIP_SEIP), "not enabled");
        write(&mut plic, enable(1, 0), 1 << 10);
        assert!(harts.is_pending(0, MIP_SEIP), "S-mode context 1 of hart 0");
        assert!(
            !harts.is_pending(0, MIP_MEIP),
            "M-mode context 0 not enabled"
        );
        write(&mut plic, threshold(1), 1);
        assert!(
            !harts.is_pending(0, MIP_SEIP),
            "priority must exceed the threshold"
        );
        write(&mut plic, priority(10), 2);
        assert!(harts.is_pending(0, MIP_SEIP));
        plic.set_source_level(10, false);
        assert!(!harts.is_pending(0, MIP_SEIP));
    }

    #[test]
    fn contexts_map_to_harts_and_modes() {
        let (mut plic, harts) = plic(2);
        route(&mut plic, 5, 1, 2); // hart 1, M-mode
        route(&mut plic, 6, 1, 3); // hart 1, S-mode
        plic.set_source_level(5, true);
        assert_eq!(harts.mip(1), MIP_MEIP);
        plic.set_source_level(6, true);
        assert_eq!(harts.mip(1), MIP_MEIP | MIP_SEIP);
        assert_eq!(harts.mip(0), 0);
    }

    #[test]
    fn claim_takes_the_highest_priority_then_the_lowest_id() {
        let (mut plic, _) = plic(1);
        for (src, prio) in [(3, 2), (4, 5), (7, 5), (9, 1)] {
            route(&mut plic, src, prio, 0);
            plic.set_source_level(src, true);
        }
        assert_eq!(read(&mut plic, claim(0)), 4);
        assert_eq!(read(&mut plic, claim(0)), 7);
        assert_eq!(read(&mut plic, claim(0)), 3);
        write(&mut plic, threshold(0), 1);
        assert_eq!(read(&mut plic, claim(0)), 0, "9 is not above the threshold");
    }

    #[test]
    fn a_claimed_source_stays_quiet_until_completed_then_rearms_if_still_high() {
        let (mut plic, harts) = plic(1);
        route(&mut plic, 1, 1, 1);
        plic.set_source_level(1, true);
        assert!(harts.is_pending(0, MIP_SEIP));
        assert_eq!(read(&mut plic, claim(1)), 1);
        assert!(
            !harts.is_pending(0, MIP_SEIP),
            "claim clears the pending bit"
        );
        assert_eq!(read(&mut plic, PENDING_BASE), 0);
        // The line is still high (the device has not been serviced) and toggling it while
        // claimed raises no new request.
        plic.set_source_level(1, false);
        plic.set_source_level(1, true);
        assert!(!harts.is_pending(0, MIP_SEIP));
        assert_eq!(read(&mut plic, claim(1)), 0);
        write(&mut plic, claim(1), 1);
        assert!(
            harts.is_pending(0, MIP_SEIP),
            "still high at completion: pending again"
        );
        assert_eq!(read(&mut plic, claim(1)), 1);
        plic.set_source_level(1, false);
        write(&mut plic, claim(1), 1);
        assert!(!harts.is_pending(0, MIP_SEIP), "low at completion: done");
    }

    #[test]
    fn completion_of_a_source_not_enabled_for_the_context_is_ignored() {
        let (mut plic, _) = plic(1);
        route(&mut plic, 2, 1, 1);
        plic.set_source_level(2, true);
        assert_eq!(read(&mut plic, claim(1)), 2);
        write(&mut plic, claim(0), 2); // context 0 does not have source 2 enabled
        assert_eq!(read(&mut plic, claim(1)), 0, "still claimed");
        write(&mut plic, claim(1), 0); // source 0 does not exist
        write(&mut plic, claim(1), 1000);
        write(&mut plic, claim(1), 2);
        assert_eq!(read(&mut plic, claim(1)), 2);
    }

    #[test]
    fn registers_hold_only_what_exists() {
        let (mut plic, _) = plic(1);
        write(&mut plic, priority(1), 0xffff_ffff);
        assert_eq!(read(&mut plic, priority(1)), MAX_PRIORITY);
        write(&mut plic, priority(0), 3);
        assert_eq!(read(&mut plic, priority(0)), 0, "source 0 is reserved");
        write(&mut plic, priority(VIRT_NDEV + 1), 3);
        assert_eq!(read(&mut plic, priority(VIRT_NDEV + 1)), 0);
        write(&mut plic, enable(0, 0), 0xffff_ffff);
        assert_eq!(
            read(&mut plic, enable(0, 0)),
            0xffff_fffe,
            "bit 0 is hardwired"
        );
        // Sources 96 is bit 0 of word 3; nothing above it exists.
        write(&mut plic, enable(0, 3), 0xffff_ffff);
        assert_eq!(read(&mut plic, enable(0, 3)), 1);
        write(&mut plic, enable(0, 4), 0xffff_ffff);
        assert_eq!(read(&mut plic, enable(0, 4)), 0);
        write(&mut plic, threshold(0), 9);
        assert_eq!(read(&mut plic, threshold(0)), 1);
        // Contexts of a second hart do not exist on a one-hart PLIC.
        write(&mut plic, threshold(2), 3);
        assert_eq!(read(&mut plic, threshold(2)), 0);
        // Only aligned 32-bit accesses count.
        plic.write(PLIC_BASE, priority(2), &[1]);
        plic.write(PLIC_BASE, priority(2) + 2, &1u32.to_le_bytes());
        assert_eq!(read(&mut plic, priority(2)), 0);
    }

    #[test]
    fn irq_lines_drive_their_source() {
        let harts = Arc::new(RecordingHarts::default());
        let plic = Arc::new(Mutex::new(Plic::new(1, VIRT_NDEV, harts.clone()).unwrap()));
        route(&mut plic.lock().unwrap(), 10, 1, 1);
        let line = Plic::irq_line(&plic, 10).unwrap();
        line.set_level(true);
        assert!(harts.is_pending(0, MIP_SEIP));
        line.set_level(false);
        assert!(!harts.is_pending(0, MIP_SEIP));
        assert_eq!(
            Plic::irq_line(&plic, 0).err(),
            Some(PlicError::NoSuchSource { id: 0, ndev: 96 })
        );
        assert!(Plic::irq_line(&plic, 97).is_err());
        assert!(Plic::irq_line(&plic, 96).is_ok());
    }

    #[test]
    fn a_16550_behind_a_plic_line_interrupts_the_hart() {
        use crate::serial::Serial;
        let harts = Arc::new(RecordingHarts::default());
        let plic = Arc::new(Mutex::new(Plic::new(1, VIRT_NDEV, harts.clone()).unwrap()));
        route(&mut plic.lock().unwrap(), 10, 1, 1);
        let mut serial = Serial::new(
            Plic::irq_line(&plic, 10).unwrap(),
            Box::new(std::io::sink()),
        );
        // MCR.OUT2 (the IRQ gate Linux's 8250 driver opens for any port with an IRQ), then
        // IER = THRE interrupt: the empty transmitter raises the line at once.
        serial.write(0x1000_0000, 4, &[0x08]);
        serial.write(0x1000_0000, 1, &[0x02]);
        assert!(harts.is_pending(0, MIP_SEIP));
        assert_eq!(read(&mut plic.lock().unwrap(), claim(1)), 10);
    }

    /// A device that raises its PLIC line while the bus holds its lock, as a UART does when
    /// a hart writes its IER.
    struct Raiser {
        line: Arc<dyn IrqLine>,
    }

    impl BusDevice for Raiser {
        fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
            data.fill(0);
        }
        fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
            self.line.set_level(data[0] != 0);
        }
    }

    #[test]
    fn harts_using_a_device_and_the_plic_at_once_do_not_deadlock() {
        use crate::bus::Bus;
        let harts = Arc::new(RecordingHarts::default());
        let plic = Arc::new(Mutex::new(Plic::new(2, VIRT_NDEV, harts).unwrap()));
        route(&mut plic.lock().unwrap(), 10, 1, 1);
        let raiser = Arc::new(Mutex::new(Raiser {
            line: Plic::irq_line(&plic, 10).unwrap(),
        }));
        let mut bus = Bus::new();
        bus.insert(plic.clone(), PLIC_BASE, PLIC_LEN).unwrap();
        bus.insert(raiser, 0x1000_0000, 0x100).unwrap();
        let device_hart = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    bus.write(0x1000_0000, &[(i % 2) as u8]).unwrap();
                }
            })
        };
        let mut buf = [0u8; 4];
        for _ in 0..20_000 {
            bus.read(PLIC_BASE + claim(1), &mut buf).unwrap();
            let id = u32::from_le_bytes(buf);
            assert!(id == 0 || id == 10);
            if id == 10 {
                bus.write(PLIC_BASE + claim(1), &buf).unwrap();
            }
        }
        device_hart.join().unwrap();
    }

    #[test]
    fn outputs_change_only_when_their_level_does() {
        let (mut plic, harts) = plic(1);
        route(&mut plic, 1, 1, 0);
        route(&mut plic, 2, 1, 0);
        plic.set_source_level(1, true);
        plic.set_source_level(2, true);
        plic.set_source_level(1, false);
        assert_eq!(harts.calls(), vec![(0, MIP_MEIP, true)]);
    }

    #[test]
    fn state_round_trips_and_restore_drives_the_outputs() {
        let (mut plic, _) = plic(2);
        route(&mut plic, 1, 3, 0);
        route(&mut plic, 40, 2, 3);
        plic.set_source_level(1, true);
        plic.set_source_level(40, true);
        write(&mut plic, threshold(3), 1);
        assert_eq!(read(&mut plic, claim(0)), 1);
        let state = plic.state();
        let harts = Arc::new(RecordingHarts::default());
        let mut restored = Plic::from_state(&state, harts.clone()).unwrap();
        assert_eq!(restored.state(), state);
        assert_eq!(harts.mip(0), 0, "source 1 is claimed");
        assert_eq!(harts.mip(1), MIP_SEIP);
        write(&mut restored, claim(0), 1);
        assert_eq!(
            harts.mip(0),
            MIP_MEIP,
            "claimed source completes after restore"
        );
    }

    #[test]
    fn bad_sizes_and_states_are_errors() {
        let harts: Arc<dyn HartInterrupts> = Arc::new(RecordingHarts::default());
        assert_eq!(
            Plic::new(0, 96, harts.clone()).err(),
            Some(PlicError::HartCount(0))
        );
        assert!(Plic::new(MAX_HARTS + 1, 96, harts.clone()).is_err());
        assert_eq!(
            Plic::new(1, 0, harts.clone()).err(),
            Some(PlicError::SourceCount(0))
        );
        assert!(Plic::new(1, MAX_NDEV + 1, harts.clone()).is_err());
        let plic = Plic::new(MAX_HARTS, MAX_NDEV, harts.clone()).unwrap();
        let mut state = plic.state();
        state.threshold.pop();
        assert!(matches!(
            Plic::from_state(&state, harts),
            Err(PlicError::InconsistentState(_))
        ));
    }

    #[test]
    fn the_largest_plic_fits_its_range() {
        let harts = Arc::new(RecordingHarts::default());
        let mut plic = Plic::new(MAX_HARTS, MAX_NDEV, harts.clone()).unwrap();
        let last_ctx = 2 * MAX_HARTS as u64 - 1;
        assert!(claim(last_ctx) < PLIC_LEN);
        assert!(enable(last_ctx, 31) < CONTEXT_BASE);
        route(&mut plic, MAX_NDEV, 1, last_ctx);
        plic.set_source_level(MAX_NDEV, true);
        assert!(harts.is_pending(MAX_HARTS - 1, MIP_SEIP));
        assert_eq!(read(&mut plic, claim(last_ctx)), MAX_NDEV);
    }
}
