//! Address-range dispatch of guest port I/O and MMIO to device models.
//!
//! A machine has two [`Bus`]es, one for the x86 port space and one for MMIO. Each maps
//! non-overlapping `[base, base + len)` ranges to a device; an access is routed by its first
//! byte, and the device sees the offset into its own range (as in Firecracker's `vstate/bus.rs`
//! and crosvm's `Bus`). Devices sit behind their own `Mutex`, so vCPU threads can access
//! different devices concurrently; the range table itself is immutable after setup.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A device model reachable through a [`Bus`].
pub trait BusDevice: Send {
    /// Reads `data.len()` bytes at `offset` into the device's range, which starts at `base`.
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` into the device's range, which starts at `base`.
    fn write(&mut self, base: u64, offset: u64, data: &[u8]);
}

/// Errors from building or using a [`Bus`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range `[base, base + len)` overlaps one already on the bus.
    #[error("bus range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap { base: u64, len: u64 },
    /// A range of length zero, or one that wraps around the address space.
    #[error("invalid bus range {base:#x}+{len:#x}")]
    InvalidRange { base: u64, len: u64 },
    /// No device covers the accessed address.
    #[error("no device at {0:#x}")]
    NoDevice(u64),
}

#[derive(Clone)]
struct Range {
    len: u64,
    device: Arc<Mutex<dyn BusDevice>>,
}

/// A map from address ranges to devices. Cloning is cheap: clones share the devices.
#[derive(Clone, Default)]
pub struct Bus {
    ranges: BTreeMap<u64, Range>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `device` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        device: Arc<Mutex<dyn BusDevice>>,
        base: u64,
        len: u64,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        if let Some((&prev_base, prev)) = self.ranges.range(..end).next_back() {
            if prev_base + prev.len > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        self.ranges.insert(base, Range { len, device });
        Ok(())
    }

    /// The device covering `addr`, with the base of its range.
    fn find(&self, addr: u64) -> Option<(u64, &Range)> {
        let (&base, range) = self.ranges.range(..=addr).next_back()?;
        (addr - base < range.len).then_some((base, range))
    }

    /// Whether some device covers `addr`.
    pub fn contains(&self, addr: u64) -> bool {
        self.find(addr).is_some()
    }

    /// Routes a read of `data.len()` bytes at `addr`. With no device there, `data` is filled
    /// with `0xff` (an open bus) and the error is returned so the caller may log it.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> Result<(), BusError> {
        match self.find(addr) {
            Some((base, range)) => {
                lock(&range.device).read(base, addr - base, data);
                Ok(())
            }
            None => {
                data.fill(0xff);
                Err(BusError::NoDevice(addr))
            }
        }
    }

    /// Routes a write of `data` at `addr`; with no device there the write is dropped.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), BusError> {
        let (base, range) = self.find(addr).ok_or(BusError::NoDevice(addr))?;
        lock(&range.device).write(base, addr - base, data);
        Ok(())
    }
}

/// Locks a device, carrying on if another thread panicked while holding it: the device state
/// is plain data, and one vCPU thread's failure is reported by the machine, not here.
fn lock(device: &Mutex<dyn BusDevice>) -> MutexGuard<'_, dyn BusDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        last: Option<(u64, u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
            self.last = Some((base, offset, data.to_vec()));
        }
    }

    #[test]
    fn routes_by_range_and_passes_offsets() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::new();
        bus.insert(dev.clone(), 0x3f8, 8).unwrap();
        let mut buf = [0u8; 1];
        bus.read(0x3fd, &mut buf).unwrap();
        assert_eq!(buf, [5]);
        bus.write(0x3f9, &[7, 8]).unwrap();
        assert_eq!(dev.lock().unwrap().last, Some((0x3f8, 1, vec![7, 8])));
    }

    #[test]
    fn unmapped_reads_float_high_and_report() {
        let bus = Bus::new();
        let mut buf = [0u8; 4];
        assert_eq!(bus.read(0x80, &mut buf), Err(BusError::NoDevice(0x80)));
        assert_eq!(buf, [0xff; 4]);
        assert_eq!(bus.write(0x80, &[1]), Err(BusError::NoDevice(0x80)));
    }

    #[test]
    fn rejects_overlaps_and_empty_ranges() {
        let mut bus = Bus::new();
        let dev = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(dev(), 0x100, 0x10).unwrap();
        assert!(matches!(
            bus.insert(dev(), 0x10f, 1),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(dev(), 0xf8, 9),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(dev(), 0x200, 0),
            Err(BusError::InvalidRange { .. })
        ));
        assert!(matches!(
            bus.insert(dev(), u64::MAX, 2),
            Err(BusError::InvalidRange { .. })
        ));
        bus.insert(dev(), 0x110, 1).unwrap();
        bus.insert(dev(), 0xf0, 0x10).unwrap();
        assert!(bus.contains(0x110) && !bus.contains(0x111));
    }
}
