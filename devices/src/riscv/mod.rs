//! Devices of the riscv64 "virt" machine: the core-local interruptor, the platform-level
//! interrupt controller and the SiFive test (power-off) device.
//!
//! The machine is laid out like QEMU's `virt` board so that OpenSBI and an unmodified Linux
//! kernel find what they expect from the device tree:
//!
//! | device                         | base          | length     |
//! |--------------------------------|---------------|------------|
//! | [`sifive_test::SifiveTest`]    | `0x0010_0000` | `0x1000`   |
//! | [`aclint::Aclint`] (CLINT)     | `0x0200_0000` | `0x1_0000` |
//! | [`plic::Plic`]                 | `0x0c00_0000` | `0x60_0000`|
//!
//! The interrupt controllers end in per-hart wires into the `mip` CSR. The device models do
//! not know how a hart is run, so they drive those wires through [`HartInterrupts`], which the
//! CPU side implements (atomically setting the `mip` bit and kicking the hart out of generated
//! code so it notices).
//!
//! Lock order (see each device): a device that drives an interrupt line may hold its own lock
//! while it calls into the PLIC; the PLIC and the ACLINT call [`HartInterrupts::set_pending`]
//! while holding their own lock, so that implementation must be a leaf: it may not take any
//! device lock.

pub mod aclint;
pub mod plic;
pub mod sifive_test;

/// `mip.MSIP`: machine software interrupt pending, driven by the ACLINT's MSWI.
pub const MIP_MSIP: u64 = 1 << 3;
/// `mip.MTIP`: machine timer interrupt pending, driven by the ACLINT's MTIMER.
pub const MIP_MTIP: u64 = 1 << 7;
/// `mip.SEIP`: supervisor external interrupt pending, driven by the PLIC's S-mode contexts.
pub const MIP_SEIP: u64 = 1 << 9;
/// `mip.MEIP`: machine external interrupt pending, driven by the PLIC's M-mode contexts.
pub const MIP_MEIP: u64 = 1 << 11;

/// The harts' interrupt-pending inputs, as seen from the interrupt controllers.
///
/// Implemented by the CPU side. `bit` is one of [`MIP_MSIP`], [`MIP_MTIP`], [`MIP_SEIP`],
/// [`MIP_MEIP`]; `level` is the new level of that wire. The devices may repeat a level that
/// has not changed (after a restore, for instance), so an implementation should treat that as
/// a no-op. It is called with a device lock held and must not take device locks itself.
pub trait HartInterrupts: Send + Sync {
    /// Drives `hart`'s interrupt-pending wire `bit` to `level`.
    fn set_pending(&self, hart: usize, bit: u64, level: bool);
}

/// A [`HartInterrupts`] that remembers each hart's pending bits and every call in order: for
/// tests, and for machines whose harts are not running yet.
#[derive(Debug, Default)]
pub struct RecordingHarts {
    inner: std::sync::Mutex<RecordingHartsInner>,
}

#[derive(Debug, Default)]
struct RecordingHartsInner {
    mip: Vec<u64>,
    calls: Vec<(usize, u64, bool)>,
}

impl RecordingHarts {
    fn lock(&self) -> std::sync::MutexGuard<'_, RecordingHartsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending bits of `hart` as last driven (0 for a hart never driven).
    pub fn mip(&self, hart: usize) -> u64 {
        self.lock().mip.get(hart).copied().unwrap_or(0)
    }

    /// Whether `hart`'s wire `bit` is high.
    pub fn is_pending(&self, hart: usize, bit: u64) -> bool {
        self.mip(hart) & bit != 0
    }

    /// Every `(hart, bit, level)` call so far, oldest first.
    pub fn calls(&self) -> Vec<(usize, u64, bool)> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls (the levels stay).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }
}

impl HartInterrupts for RecordingHarts {
    fn set_pending(&self, hart: usize, bit: u64, level: bool) {
        let mut inner = self.lock();
        if inner.mip.len() <= hart {
            inner.mip.resize(hart + 1, 0);
        }
        if level {
            inner.mip[hart] |= bit;
        } else {
            inner.mip[hart] &= !bit;
        }
        inner.calls.push((hart, bit, level));
    }
}

/// Reads a little-endian value of up to 8 bytes.
fn le_value(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .enumerate()
        .fold(0u64, |v, (i, &b)| v | u64::from(b) << (8 * i))
}

/// Fills `data` with the low `data.len()` bytes of `value`, little-endian.
fn put_le(data: &mut [u8], value: u64) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = if i < 8 { (value >> (8 * i)) as u8 } else { 0 };
    }
}
