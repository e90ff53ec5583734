//! virtio 1.x devices ("modern" only) and the virtio-mmio transport that exposes them.
//!
//! The split follows the virtio specification: a *transport* ([`mmio::MmioTransport`]) owns the
//! generic parts (device status, feature negotiation, virtqueue configuration, interrupts) and a
//! *device* ([`VirtioDevice`], e.g. [`blk::VirtioBlk`], [`rng::VirtioRng`]) owns only what is
//! specific to its type: its feature bits, its configuration space and what a request on each
//! of its queues means. A device never touches the transport's registers, so the same device
//! could later sit behind virtio-pci.
//!
//! Only VIRTIO_F_VERSION_1 ("modern") drivers are supported: the transport always offers the
//! bit and refuses FEATURES_OK to a driver that did not accept it, which removes the legacy
//! endianness and layout rules from every device.
//!
//! # Device writes to guest RAM
//!
//! Devices write guest RAM directly (a block read lands in the driver's buffers), behind the
//! back of whatever else watches guest memory: a JIT that caches code translated from guest
//! pages must drop it when a device overwrites them, as it does for the guest's own stores. A
//! transport may therefore be given a [`DmaObserver`], which is told about every buffer a
//! device may have written once the device has served the request that carried it, before
//! the driver can see the request as done.

pub mod blk;
pub mod chain;
pub mod mmio;
pub mod rng;

#[cfg(test)]
pub(crate) mod testing;

use std::any::Any;

use log::warn;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// VIRTIO_F_VERSION_1 as a feature mask: the device complies with virtio 1.x (spec 6.1).
pub const FEATURE_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// Errors a device reports to its transport. Any of them means the device cannot go on without
/// a reset: the transport sets DEVICE_NEEDS_RESET and tells the driver.
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    /// The driver notified, or the transport asked about, a queue the device does not have.
    #[error("the device has no queue {0}")]
    NoSuchQueue(usize),
    /// The virtqueue itself is unusable (e.g. the driver published more available entries
    /// than the queue holds, or the used ring cannot be written).
    #[error("virtqueue error: {0}")]
    Queue(#[from] virtio_queue::Error),
    /// The device could not start with the negotiated features.
    #[error("activation failed: {0}")]
    Activate(String),
}

/// Something that must know when a device has written guest RAM (e.g. a JIT's translated
/// code cache, which must not keep running code a device overwrote).
///
/// It is called on the thread that serves the queue (for [`mmio::MmioTransport`], the vCPU
/// that notified), with the transport's lock held: it must be quick and must not access the
/// device. Only request buffers are reported, never the virtqueue rings, which hold no code.
pub trait DmaObserver: Send + Sync {
    /// Guest physical `[gpa, gpa + len)` may have been written by a device. `len` is never 0
    /// and the range never wraps around the address space; it lies inside guest memory.
    fn written(&self, gpa: u64, len: u64);
}

/// Any `Fn(gpa, len)` closure is an observer, so a machine can forward reports to its
/// accelerator without a type of its own.
impl<F: Fn(u64, u64) + Send + Sync> DmaObserver for F {
    fn written(&self, gpa: u64, len: u64) {
        self(gpa, len)
    }
}

/// A virtio device type, as seen by a transport.
///
/// The transport calls these on the vCPU thread that accessed the device's registers (see
/// [`mmio`] for why requests are served synchronously).
pub trait VirtioDevice: Send {
    /// The virtio device ID (spec 5: 2 = block, 4 = entropy source, ...).
    fn device_type(&self) -> u32;

    /// The device-type feature bits the device offers. The transport adds the bits it owns
    /// (VIRTIO_F_VERSION_1), so devices return only their own.
    fn features(&self) -> u64;

    /// The maximum size of each queue; the length of the slice is the number of queues.
    /// Sizes must be powers of two no larger than 32768 (split virtqueues, spec 2.7).
    fn queue_max_sizes(&self) -> &[u16];

    /// Reads `data.len()` bytes of the device configuration space at `offset`. Bytes beyond the
    /// structure the device defines read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// Writes the device configuration space at `offset`. Devices whose configuration is
    /// read-only log and ignore the write.
    fn write_config(&mut self, offset: u64, data: &[u8]);

    /// Called once the driver has set DRIVER_OK, with the features both sides agreed on.
    /// Devices whose behaviour does not depend on the negotiated features keep the default.
    fn activate(&mut self, _acked_features: u64) -> Result<(), VirtioError> {
        Ok(())
    }

    /// Forgets everything negotiated with the driver (the driver wrote 0 to the status).
    /// Devices that keep no per-driver state keep the default.
    fn reset(&mut self) {}

    /// Serves every request available on queue `index`. Returns whether buffers were put on
    /// the used ring, i.e. whether the driver should be interrupted. A malformed request must
    /// fail on its own (and be returned to the driver); an error here means the queue itself
    /// is broken.
    ///
    /// `dma`, when present, must be told about every guest buffer the device may have
    /// written before the request is put on the used ring; [`drain_queue`] does that.
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
        dma: Option<&dyn DmaObserver>,
    ) -> Result<bool, VirtioError>;

    /// The device as `Any`, so the machine can reach the concrete device (e.g. to save its
    /// state) through the transport.
    fn as_any(&self) -> &dyn Any;
}

/// Pops every available descriptor chain from `queue`, lets `handle` serve it and puts it on
/// the used ring with the length `handle` returns (the number of bytes the device wrote).
///
/// With an observer, every device-writable buffer of the chain (the part of it inside guest
/// memory) is reported to `dma` after `handle` returned and before the chain is used: those
/// are the only guest bytes a device may write while serving it. The buffers are read from the
/// chain before `handle` runs, so they are the ones the device saw. Without an observer the
/// chain is not walked twice.
///
/// Returns whether anything was put on the used ring. A chain whose head index is outside
/// the queue cannot be returned to the driver (the used ring holds descriptor indices): it is
/// dropped with a warning, and the device carries on.
pub(crate) fn drain_queue<F>(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    dma: Option<&dyn DmaObserver>,
    mut handle: F,
) -> Result<bool, VirtioError>
where
    F: FnMut(DescriptorChain<&GuestMemoryMmap>) -> u32,
{
    let mut used_any = false;
    // (address, length) of the current chain's writable buffers; reused across chains.
    let mut writable: Vec<(u64, u32)> = Vec::new();
    while let Some(chain) = next_chain(queue, mem)? {
        let head = chain.head_index();
        if head >= queue.size() {
            warn!(
                "virtio: available ring names descriptor {head}, outside a queue of {}; dropped",
                queue.size()
            );
            continue;
        }
        if dma.is_some() {
            writable.clear();
            // The same walk `Buffers::parse` makes (indirect tables included, bounded by the
            // queue size); a malformed chain reports what it has, which is at least what the
            // device may write to (e.g. virtio-blk's status byte in its last buffer).
            writable.extend(
                chain
                    .clone()
                    .filter(|d| d.is_write_only() && d.len() > 0)
                    .map(|d| (d.addr().0, d.len())),
            );
        }
        let len = handle(chain);
        if let Some(dma) = dma {
            for &(addr, len) in &writable {
                report_in_memory(dma, mem, addr, u64::from(len));
            }
        }
        queue.add_used(mem, head, len)?;
        used_any = true;
    }
    Ok(used_any)
}

/// Reports the parts of `[addr, addr + len)` that are guest RAM: a device cannot have written
/// anything else, and a guest must not be able to make the observer walk gigabytes of
/// address space that hold no memory.
fn report_in_memory(dma: &dyn DmaObserver, mem: &GuestMemoryMmap, addr: u64, len: u64) {
    let end = addr.saturating_add(len);
    for region in mem.iter() {
        let start = region.start_addr().0;
        let region_end = start.saturating_add(region.len());
        let (lo, hi) = (addr.max(start), end.min(region_end));
        if lo < hi {
            dma.written(lo, hi - lo);
        }
    }
}

/// The next available chain. A fresh iterator per chain: `AvailIter` borrows the queue, which
/// `add_used` needs in between; and each call re-reads the available index, so chains the
/// driver adds meanwhile (from another vCPU) are served too.
fn next_chain<'a>(
    queue: &mut Queue,
    mem: &'a GuestMemoryMmap,
) -> Result<Option<DescriptorChain<&'a GuestMemoryMmap>>, VirtioError> {
    Ok(queue.iter(mem)?.next())
}

/// One report a [`RecordingDma`] received, with what the guest saw at that moment.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DmaReport {
    /// The reported range's start.
    pub gpa: u64,
    /// The reported range's length.
    pub len: u64,
    /// The bytes of the range when the report arrived (what the device had written by then).
    pub bytes: Vec<u8>,
    /// The watched queue's used index when the report arrived.
    pub used_idx: u16,
}

/// A [`DmaObserver`] for tests: records each report with the reported bytes and a queue's
/// used index as they were at that moment, so tests can tell that reports come after the
/// device wrote and before the driver could see the request done.
#[cfg(test)]
pub(crate) struct RecordingDma {
    mem: GuestMemoryMmap,
    used_ring: u64,
    reports: std::sync::Mutex<Vec<DmaReport>>,
}

#[cfg(test)]
impl RecordingDma {
    /// Watches guest memory `mem` and the queue whose used ring is at `used_ring`.
    pub fn new(mem: &GuestMemoryMmap, used_ring: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            mem: mem.clone(),
            used_ring,
            reports: Default::default(),
        })
    }

    /// The reports received since the last call.
    pub fn take(&self) -> Vec<DmaReport> {
        std::mem::take(&mut *self.reports.lock().unwrap())
    }

    /// The `(gpa, len)` of the reports received since the last call.
    pub fn take_ranges(&self) -> Vec<(u64, u64)> {
        self.take().iter().map(|r| (r.gpa, r.len)).collect()
    }
}

#[cfg(test)]
impl DmaObserver for RecordingDma {
    fn written(&self, gpa: u64, len: u64) {
        use vm_memory::{Bytes, GuestAddress};
        let mut bytes = vec![0; len as usize];
        self.mem.read_slice(&mut bytes, GuestAddress(gpa)).unwrap();
        let used_idx = self.mem.read_obj(GuestAddress(self.used_ring + 2)).unwrap();
        self.reports.lock().unwrap().push(DmaReport {
            gpa,
            len,
            bytes,
            used_idx,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{new_guest_memory, RawQueue, DATA, MEM_SIZE, QUEUE_SIZE};
    use super::*;
    use virtio_bindings::virtio_ring::{
        VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
    };
    use vm_memory::{Bytes, GuestAddress};

    const WRITE: u16 = VRING_DESC_F_WRITE as u16;
    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

    /// Publishes the chain `descs` (addr, len, flags, next) at table index 0 of a fresh queue
    /// and drains it with a handler that fills every writable buffer with 0x5a, reporting to
    /// a recorder when `observe`. Returns the reports.
    fn drain(descs: &[(u64, u32, u16, u16)], observe: bool) -> Vec<DmaReport> {
        let mem = new_guest_memory();
        let raw = RawQueue::new(0x1000, QUEUE_SIZE);
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
            raw.write_desc(&mem, i as u16, addr, len, flags, next);
        }
        raw.push_avail(&mem, 0);
        let mut queue = raw.queue(&mem);
        let dma = RecordingDma::new(&mem, raw.used);
        let observer: Option<&dyn DmaObserver> = if observe { Some(&*dma) } else { None };
        let used = drain_queue(&mut queue, &mem, observer, |chain| {
            let mut n = 0;
            for d in chain.filter(|d| d.is_write_only()) {
                let fill = vec![0x5a; d.len() as usize];
                if mem.write_slice(&fill, d.addr()).is_ok() {
                    n += d.len();
                }
            }
            n
        })
        .unwrap();
        assert!(used);
        assert_eq!(raw.used_idx(&mem), 1, "the chain was used");
        dma.take()
    }

    fn ranges(reports: &[DmaReport]) -> Vec<(u64, u64)> {
        reports.iter().map(|r| (r.gpa, r.len)).collect()
    }

    #[test]
    fn every_writable_buffer_is_reported_after_it_was_written_and_before_the_chain_is_used() {
        let reports = drain(
            &[
                (DATA, 16, NEXT, 1),
                (DATA + 0x1000, 100, WRITE | NEXT, 2),
                (DATA + 0x3000, 3, WRITE, 0),
            ],
            true,
        );
        assert_eq!(
            ranges(&reports),
            vec![(DATA + 0x1000, 100), (DATA + 0x3000, 3)]
        );
        for r in &reports {
            assert!(
                r.bytes.iter().all(|&b| b == 0x5a),
                "written before the report"
            );
            assert_eq!(r.used_idx, 0, "reported before the chain is used");
        }
    }

    #[test]
    fn a_chain_with_only_readable_buffers_reports_nothing() {
        let reports = drain(&[(DATA, 16, NEXT, 1), (DATA + 0x100, 64, 0, 0)], true);
        assert_eq!(reports, vec![]);
    }

    #[test]
    fn without_an_observer_nothing_is_reported_and_the_chain_is_still_served() {
        let reports = drain(&[(DATA, 64, WRITE, 0)], false);
        assert_eq!(reports, vec![]);
    }

    #[test]
    fn empty_buffers_are_not_reported() {
        let reports = drain(&[(DATA, 0, WRITE | NEXT, 1), (DATA + 8, 8, WRITE, 0)], true);
        assert_eq!(ranges(&reports), vec![(DATA + 8, 8)]);
    }

    #[test]
    fn buffers_of_an_indirect_table_are_reported() {
        let table = DATA + 0x8000;
        // The indirect table lives in guest memory, written before the chain is published.
        let mem = new_guest_memory();
        let raw = RawQueue::new(0x1000, QUEUE_SIZE);
        let inner = RawQueue::at(table, 0, 0, QUEUE_SIZE);
        inner.write_desc(&mem, 0, DATA, 16, NEXT, 1);
        inner.write_desc(&mem, 1, DATA + 0x1000, 32, WRITE, 0);
        raw.write_desc(&mem, 0, table, 32, INDIRECT, 0);
        raw.push_avail(&mem, 0);
        let mut queue = raw.queue(&mem);
        let dma = RecordingDma::new(&mem, raw.used);
        drain_queue(&mut queue, &mem, Some(&*dma), |_| 32).unwrap();
        assert_eq!(dma.take_ranges(), vec![(DATA + 0x1000, 32)]);
    }

    #[test]
    fn a_malformed_chain_still_reports_its_writable_buffers() {
        // Readable after writable: refused by `Buffers::parse`, but a device may still answer
        // in the last buffer (virtio-blk's status byte), so it is reported.
        let reports = drain(&[(DATA, 8, WRITE | NEXT, 1), (DATA + 8, 8, 0, 0)], true);
        assert_eq!(ranges(&reports), vec![(DATA, 8)]);
    }

    #[test]
    fn only_the_part_of_a_buffer_inside_guest_memory_is_reported() {
        let end = MEM_SIZE as u64;
        let reports = drain(
            &[
                (end - 0x10, 0x100, WRITE | NEXT, 1),
                (1 << 40, 0x1000, WRITE | NEXT, 2),
                (u64::MAX - 4, 0x100, WRITE, 0),
            ],
            true,
        );
        assert_eq!(ranges(&reports), vec![(end - 0x10, 0x10)]);
    }

    #[test]
    fn a_closure_is_an_observer() {
        let seen = std::sync::Mutex::new(Vec::new());
        let observer = |gpa, len| seen.lock().unwrap().push((gpa, len));
        let dma: &dyn DmaObserver = &observer;
        dma.written(0x1000, 8);
        assert_eq!(*seen.lock().unwrap(), vec![(0x1000, 8)]);
    }

    #[test]
    fn each_memory_region_gets_its_own_report() {
        let mem = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x1_0000),
            (GuestAddress(0x2_0000), 0x1_0000),
        ])
        .unwrap();
        let dma = RecordingDma::new(&mem, 0);
        // Spans the end of the first region, the hole and the start of the second.
        report_in_memory(&*dma, &mem, 0xf000, 0x1_2000);
        assert_eq!(
            dma.take_ranges(),
            vec![(0xf000, 0x1000), (0x2_0000, 0x1000)]
        );
    }
}
