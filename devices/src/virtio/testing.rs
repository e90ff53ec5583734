//! Test helpers: a small guest memory, and a "driver" that sets devices up through the
//! virtio-mmio registers and lays out descriptors and rings by hand, as a guest driver would.

use std::sync::Arc;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
};
use virtio_bindings::virtio_ring::VRING_DESC_F_NEXT;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::mmio::*;
use super::VirtioDevice;
use crate::bus::BusDevice;
use crate::irq::RecordingIrq;

/// Size of the test guest memory, from guest physical 0.
pub const MEM_SIZE: usize = 0x10_0000;
/// Queue size the test driver picks (smaller than the devices' maximum, as drivers may).
pub const QUEUE_SIZE: u16 = 16;
/// Where the test driver puts request buffers.
pub const DATA: u64 = 0x2_0000;

/// 1 MiB of guest memory at 0.
pub fn new_guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// A split virtqueue in guest memory, written the way a driver writes it.
#[derive(Debug, Clone, Copy)]
pub struct RawQueue {
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
}

impl RawQueue {
    /// A queue with its descriptor table at `base` and its rings in the next pages.
    pub fn new(base: u64, size: u16) -> Self {
        Self::at(base, base + 0x1000, base + 0x2000, size)
    }

    pub fn at(desc: u64, avail: u64, used: u64, size: u16) -> Self {
        Self {
            desc,
            avail,
            used,
            size,
        }
    }

    /// Writes descriptor `index`: address, length, flags and next index (spec 2.7.5).
    pub fn write_desc(
        &self,
        mem: &GuestMemoryMmap,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let at = GuestAddress(self.desc + 16 * u64::from(index));
        mem.write_obj(addr.to_le(), at).unwrap();
        mem.write_obj(len.to_le(), GuestAddress(at.0 + 8)).unwrap();
        mem.write_obj(flags.to_le(), GuestAddress(at.0 + 12))
            .unwrap();
        mem.write_obj(next.to_le(), GuestAddress(at.0 + 14))
            .unwrap();
    }

    /// Publishes `head` in the available ring and bumps its index (spec 2.7.13).
    pub fn push_avail(&self, mem: &GuestMemoryMmap, head: u16) {
        let idx: u16 = mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        let slot = GuestAddress(self.avail + 4 + 2 * u64::from(idx % self.size));
        mem.write_obj(head.to_le(), slot).unwrap();
        mem.write_obj(idx.wrapping_add(1).to_le(), GuestAddress(self.avail + 2))
            .unwrap();
    }

    /// The used ring's index.
    pub fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// Used ring entry number `n` (not wrapped): (descriptor id, length).
    pub fn used_elem(&self, mem: &GuestMemoryMmap, n: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(n % self.size);
        (
            mem.read_obj(GuestAddress(at)).unwrap(),
            mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    /// A ready virtio-queue `Queue` over this layout, bypassing any transport.
    pub fn queue(&self, _mem: &GuestMemoryMmap) -> Queue {
        let mut q = Queue::new(self.size).unwrap();
        q.set_desc_table_address(Some(self.desc as u32), Some((self.desc >> 32) as u32));
        q.set_avail_ring_address(Some(self.avail as u32), Some((self.avail >> 32) as u32));
        q.set_used_ring_address(Some(self.used as u32), Some((self.used >> 32) as u32));
        q.set_ready(true);
        q
    }
}

/// A guest driver talking to one device through a virtio-mmio transport.
pub struct Driver {
    pub transport: MmioTransport,
    pub mem: GuestMemoryMmap,
    pub irq: Arc<RecordingIrq>,
    pub queues: Vec<RawQueue>,
    used_seen: Vec<u16>,
}

impl Driver {
    pub fn new(device: Box<dyn VirtioDevice>) -> Self {
        let mem = new_guest_memory();
        let irq = Arc::new(RecordingIrq::default());
        let queues = (0..device.queue_max_sizes().len() as u64)
            .map(|i| RawQueue::new(0x1000 + i * 0x4000, QUEUE_SIZE))
            .collect::<Vec<_>>();
        let used_seen = vec![0; queues.len()];
        let transport = MmioTransport::new(device, mem.clone(), irq.clone());
        Self {
            transport,
            mem,
            irq,
            queues,
            used_seen,
        }
    }

    /// A 32-bit register read.
    pub fn read(&mut self, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        self.transport.read(0xd000_0000, offset, &mut data);
        u32::from_le_bytes(data)
    }

    /// A 32-bit register write.
    pub fn write(&mut self, offset: u64, value: u32) {
        self.transport
            .write(0xd000_0000, offset, &value.to_le_bytes());
    }

    /// The device's offered features, both halves.
    pub fn device_features(&mut self) -> u64 {
        self.write(DEVICE_FEATURES_SEL, 0);
        let low = self.read(DEVICE_FEATURES);
        self.write(DEVICE_FEATURES_SEL, 1);
        let high = self.read(DEVICE_FEATURES);
        (u64::from(high) << 32) | u64::from(low)
    }

    /// Steps 1-5 of driver initialisation (spec 3.1.1): reset, ACKNOWLEDGE, DRIVER, features,
    /// FEATURES_OK. Returns whether the device kept FEATURES_OK.
    pub fn negotiate(&mut self, features: u64) -> bool {
        self.write(STATUS, 0);
        self.write(STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        self.write(STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
        self.write(DRIVER_FEATURES_SEL, 0);
        self.write(DRIVER_FEATURES, features as u32);
        self.write(DRIVER_FEATURES_SEL, 1);
        self.write(DRIVER_FEATURES, (features >> 32) as u32);
        let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
        self.write(STATUS, s);
        self.read(STATUS) & VIRTIO_CONFIG_S_FEATURES_OK != 0
    }

    /// Sets queue `index` up at its layout (spec 4.2.3.2).
    pub fn setup_queue(&mut self, index: u32) {
        let raw = self.queues[index as usize];
        self.write(QUEUE_SEL, index);
        assert_eq!(self.read(QUEUE_READY), 0);
        assert!(self.read(QUEUE_NUM_MAX) >= u32::from(raw.size));
        self.write(QUEUE_NUM, u32::from(raw.size));
        self.write(QUEUE_DESC_LOW, raw.desc as u32);
        self.write(QUEUE_DESC_HIGH, (raw.desc >> 32) as u32);
        self.write(QUEUE_DRIVER_LOW, raw.avail as u32);
        self.write(QUEUE_DRIVER_HIGH, (raw.avail >> 32) as u32);
        self.write(QUEUE_DEVICE_LOW, raw.used as u32);
        self.write(QUEUE_DEVICE_HIGH, (raw.used >> 32) as u32);
        self.write(QUEUE_READY, 1);
    }

    /// The whole initialisation, accepting every offered feature.
    pub fn init(&mut self) {
        assert_eq!(self.read(MAGIC_VALUE), 0x7472_6976);
        assert_eq!(self.read(VERSION), 2);
        let features = self.device_features();
        assert!(self.negotiate(features));
        for i in 0..self.queues.len() as u32 {
            self.setup_queue(i);
            assert_eq!(self.read(QUEUE_READY), 1);
        }
        let s = self.read(STATUS);
        self.write(STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
        assert_eq!(
            self.read(STATUS) & VIRTIO_CONFIG_S_DRIVER_OK,
            VIRTIO_CONFIG_S_DRIVER_OK
        );
    }

    /// Writes `descs` (addr, len, flags, next) at table indices 0.., publishes `head` and
    /// notifies the queue.
    pub fn submit_raw(&mut self, queue: usize, descs: &[(u64, u32, u16, u16)], head: u16) {
        let raw = self.queues[queue];
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
            raw.write_desc(&self.mem, i as u16, addr, len, flags, next);
        }
        raw.push_avail(&self.mem, head);
        self.write(QUEUE_NOTIFY, queue as u32);
    }

    /// Submits a well-formed chain of (addr, len, flags) buffers: NEXT links added.
    pub fn submit(&mut self, queue: usize, bufs: &[(u64, u32, u16)]) {
        let descs: Vec<_> = bufs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let more = i + 1 < bufs.len();
                let flags = if more {
                    flags | VRING_DESC_F_NEXT as u16
                } else {
                    flags
                };
                (addr, len, flags, if more { i as u16 + 1 } else { 0 })
            })
            .collect();
        self.submit_raw(queue, &descs, 0);
    }

    /// Used ring entries (id, len) that appeared since the last call.
    pub fn take_used(&mut self, queue: usize) -> Vec<(u32, u32)> {
        let raw = self.queues[queue];
        let end = raw.used_idx(&self.mem);
        let mut out = Vec::new();
        while self.used_seen[queue] != end {
            out.push(raw.used_elem(&self.mem, self.used_seen[queue]));
            self.used_seen[queue] = self.used_seen[queue].wrapping_add(1);
        }
        out
    }

    /// Zeroes every queue's table and rings, as a driver does before setting a queue up anew.
    pub fn clear_rings(&mut self) {
        for raw in &self.queues {
            self.mem
                .write_slice(&[0; 0x3000], GuestAddress(raw.desc))
                .unwrap();
        }
        self.used_seen.fill(0);
    }

    /// Reads InterruptStatus and acknowledges all of it, as Linux's handler does.
    pub fn ack_interrupt(&mut self) -> u32 {
        let status = self.read(INTERRUPT_STATUS);
        self.write(INTERRUPT_ACK, status);
        status
    }
}

/// Log lines at warning level or above emitted by the current thread while `f` ran. Panics
/// if another logger was installed in this test binary first: the count could not be checked.
pub fn warnings_during<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    use std::cell::RefCell;
    use std::sync::OnceLock;

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.level() <= log::Level::Warn
        }
        fn log(&self, record: &log::Record) {
            if self.enabled(record.metadata()) {
                LINES.with(|l| l.borrow_mut().push(record.args().to_string()));
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| {
        let ok = log::set_logger(&CAPTURE).is_ok();
        if ok {
            log::set_max_level(log::LevelFilter::Warn);
        }
        ok
    });
    assert!(
        installed,
        "another logger is installed: warnings cannot be counted"
    );
    LINES.with(|l| l.borrow_mut().clear());
    let result = f();
    let lines = LINES.with(|l| std::mem::take(&mut *l.borrow_mut()));
    (result, lines)
}
