//! virtio-rng, the entropy device (virtio 1.x spec, section 5.4).
//!
//! One queue, `requestq`; every device-writable buffer the driver makes available is filled
//! with bytes from the host kernel's `getrandom(2)` (the same pool as /dev/urandom), and the
//! used length says how many. There are no device feature bits and no configuration space.

use std::any::Any;
use std::io;

use log::{error, warn};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::chain::Buffers;
use super::{drain_queue, DmaObserver, VirtioDevice, VirtioError};

/// virtio device ID of an entropy source.
const DEVICE_ID: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
/// Maximum size of `requestq`.
const QUEUE_SIZE: u16 = 256;
/// Most bytes given for one request. The spec lets the device return fewer bytes than the
/// buffer holds; capping bounds the time a vCPU spends in one notification (Linux asks for at
/// most a page at a time anyway).
const MAX_BYTES_PER_REQUEST: u64 = 64 * 1024;
/// Bytes drawn from the host at a time.
const CHUNK: usize = 4096;

/// The saved state of a [`VirtioRng`]: it has none, the type exists for symmetry with the
/// other devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RngState;

/// A virtio entropy device drawing from the host's `getrandom`.
#[derive(Debug, Default)]
pub struct VirtioRng {
    _private: (),
}

impl VirtioRng {
    /// A new entropy device.
    pub fn new() -> Self {
        Self::default()
    }

    /// Saves the device's state.
    pub fn state(&self) -> RngState {
        RngState
    }

    /// Rebuilds a device from a saved state.
    pub fn from_state(_state: &RngState) -> Self {
        Self::new()
    }

    /// Serves one request; returns the number of bytes written.
    fn serve(&self, bufs: &Buffers, mem: &GuestMemoryMmap) -> u32 {
        if bufs.readable_len() != 0 {
            warn!("virtio-rng: request has device-readable buffers; they are ignored");
        }
        let want = bufs.writable_len().min(MAX_BYTES_PER_REQUEST);
        let mut chunk = [0u8; CHUNK];
        let mut done = 0u64;
        while done < want {
            // At most CHUNK, so the cast cannot truncate.
            let n = (want - done).min(CHUNK as u64) as usize;
            if let Err(e) = fill_random(&mut chunk[..n]) {
                error!("virtio-rng: getrandom failed: {e}");
                break;
            }
            if let Err(e) = bufs.write_at(mem, done, &chunk[..n]) {
                // Cannot happen for a parsed chain; fail the request rather than panic.
                warn!("virtio-rng: writing guest buffer failed: {e}");
                break;
            }
            done += n as u64;
        }
        // At most MAX_BYTES_PER_REQUEST.
        done as u32
    }
}

impl VirtioDevice for VirtioRng {
    fn device_type(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        warn!("virtio-rng: read of nonexistent config space at {offset:#x}");
        data.fill(0);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        warn!("virtio-rng: write to nonexistent config space at {offset:#x} ignored");
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
        dma: Option<&dyn DmaObserver>,
    ) -> Result<bool, VirtioError> {
        if index != 0 {
            return Err(VirtioError::NoSuchQueue(index));
        }
        drain_queue(queue, mem, dma, |chain| match Buffers::parse(chain, mem) {
            Ok(bufs) => self.serve(&bufs, mem),
            Err(fault) => {
                warn!("virtio-rng: request refused: {}", fault.error);
                0
            }
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Fills `buf` from the kernel's random pool, retrying on interruption and short reads.
fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes that outlives the
        // call; getrandom writes at most that many bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // Non-negative and at most `rest.len()`.
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::{DEVICE_ID as DEVICE_ID_REG, INT_VRING};
    use crate::virtio::testing::{Driver, DATA};
    use crate::virtio::RecordingDma;
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use vm_memory::{Bytes, GuestAddress};

    const WRITE: u16 = VRING_DESC_F_WRITE as u16;
    const NEXT: u16 = VRING_DESC_F_NEXT as u16;

    fn driver() -> Driver {
        let mut d = Driver::new(Box::new(VirtioRng::new()));
        d.init();
        d
    }

    fn guest_bytes(d: &Driver, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        d.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    #[test]
    fn is_an_entropy_device_with_one_queue() {
        let mut d = Driver::new(Box::new(VirtioRng::new()));
        assert_eq!(d.read(DEVICE_ID_REG), 4);
        assert_eq!(d.queues.len(), 1);
    }

    #[test]
    fn fills_the_requested_length_with_random_bytes() {
        let mut d = driver();
        d.submit(0, &[(DATA, 64, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 64)]);
        assert_eq!(d.ack_interrupt(), INT_VRING);
        let first = guest_bytes(&d, DATA, 64);
        assert_ne!(first, vec![0; 64]);
        d.submit(0, &[(DATA, 64, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 64)]);
        assert_ne!(guest_bytes(&d, DATA, 64), first, "fresh bytes every time");
        assert_eq!(
            guest_bytes(&d, DATA + 64, 16),
            vec![0; 16],
            "nothing past the buffer"
        );
    }

    #[test]
    fn fills_every_buffer_of_a_chain() {
        let mut d = driver();
        d.submit(0, &[(DATA, 3, WRITE), (DATA + 0x1000, 5000, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 5003)]);
        assert_ne!(guest_bytes(&d, DATA + 0x1000 + 4096, 904), vec![0; 904]);
    }

    #[test]
    fn large_requests_get_at_most_the_cap() {
        let mut d = driver();
        d.submit(0, &[(DATA, 0x2_0000, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, MAX_BYTES_PER_REQUEST as u32)]);
    }

    #[test]
    fn a_malformed_chain_is_returned_empty_and_the_next_request_works() {
        let mut d = driver();
        // A loop: 0 -> 1 -> 0.
        d.submit_raw(
            0,
            &[(DATA, 8, WRITE | NEXT, 1), (DATA + 8, 8, WRITE | NEXT, 0)],
            0,
        );
        assert_eq!(d.take_used(0), vec![(0, 0)]);
        assert_eq!(guest_bytes(&d, DATA, 16), vec![0; 16]);
        // Outside guest memory.
        d.submit(0, &[(1 << 40, 8, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 0)]);
        d.submit(0, &[(DATA, 8, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 8)]);
    }

    #[test]
    fn reports_the_buffers_it_filled_and_nothing_for_readable_ones() {
        let mut d = driver();
        let dma = RecordingDma::new(&d.mem, d.queues[0].used);
        d.transport.set_dma_observer(dma.clone());
        d.submit(0, &[(DATA, 3, WRITE), (DATA + 0x1000, 5000, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 5003)]);
        let reports = dma.take();
        let ranges: Vec<_> = reports.iter().map(|r| (r.gpa, r.len)).collect();
        assert_eq!(ranges, vec![(DATA, 3), (DATA + 0x1000, 5000)]);
        assert_eq!(
            reports[1].bytes,
            guest_bytes(&d, DATA + 0x1000, 5000),
            "reported once filled"
        );

        d.submit(0, &[(DATA + 0x4000, 64, 0)]);
        assert_eq!(d.take_used(0), vec![(0, 0)]);
        assert_eq!(dma.take_ranges(), vec![]);
    }

    #[test]
    fn state_round_trips() {
        let rng = VirtioRng::new();
        assert_eq!(VirtioRng::from_state(&rng.state()).state(), rng.state());
    }
}
