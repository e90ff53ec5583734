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

pub mod blk;
pub mod chain;
pub mod mmio;
pub mod rng;

#[cfg(test)]
pub(crate) mod testing;

use std::any::Any;

use log::warn;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

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
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, VirtioError>;

    /// The device as `Any`, so the machine can reach the concrete device (e.g. to save its
    /// state) through the transport.
    fn as_any(&self) -> &dyn Any;
}

/// Pops every available descriptor chain from `queue`, lets `handle` serve it and puts it on
/// the used ring with the length `handle` returns (the number of bytes the device wrote).
///
/// Returns whether anything was put on the used ring. A chain whose head index is outside
/// the queue cannot be returned to the driver (the used ring holds descriptor indices): it is
/// dropped with a warning, and the device carries on.
pub(crate) fn drain_queue<F>(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    mut handle: F,
) -> Result<bool, VirtioError>
where
    F: FnMut(DescriptorChain<&GuestMemoryMmap>) -> u32,
{
    let mut used_any = false;
    while let Some(chain) = next_chain(queue, mem)? {
        let head = chain.head_index();
        if head >= queue.size() {
            warn!(
                "virtio: available ring names descriptor {head}, outside a queue of {}; dropped",
                queue.size()
            );
            continue;
        }
        let len = handle(chain);
        queue.add_used(mem, head, len)?;
        used_any = true;
    }
    Ok(used_any)
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
