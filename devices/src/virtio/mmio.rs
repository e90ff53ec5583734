//! The virtio-mmio transport, register layout version 2 (virtio 1.x spec, section 4.2.2).
//!
//! One [`MmioTransport`] is one 0x1000-byte window of guest physical address space holding the
//! control registers (0x000..0x100) and the device configuration space (0x100..). It owns the
//! generic virtio state: device status, feature negotiation, virtqueue configuration and the
//! interrupt status; the [`VirtioDevice`] it holds serves the requests.
//!
//! # Requests are served on the notifying vCPU thread
//!
//! A write to QueueNotify processes the queue right away, inside the MMIO exit of the vCPU that
//! wrote it, with the device's bus lock held. That is the simplest correct choice: no worker
//! thread, no cross-thread wake-ups, and the guest cannot observe a half-done request because
//! the vCPU only resumes once the used ring and InterruptStatus are updated. Its cost is that a
//! slow host file blocks that vCPU for the duration of the I/O. An ioeventfd/irqfd worker per
//! device can replace it later without changing [`VirtioDevice`].
//!
//! # Interrupts
//!
//! The device's interrupt line is level-triggered (IOAPIC GSI 16+slot): it is high exactly
//! while InterruptStatus is non-zero, bit 0 for "used buffer", bit 1 for "configuration
//! change", and it drops when the driver acknowledges the bits through InterruptACK.
//!
//! # Misbehaving drivers
//!
//! Register accesses that are not 32 bits wide, writes to read-only registers and reads of
//! write-only ones are ignored (reads return 0) with a log line. A queue made ready with an
//! invalid size or misaligned or out-of-memory rings stays not ready and the device sets
//! DEVICE_NEEDS_RESET; so does a queue whose rings turn out unusable while serving it.

use std::sync::Arc;

use log::{debug, info, warn};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::{DmaObserver, VirtioDevice, FEATURE_VERSION_1};
use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Length of one virtio-mmio device window.
pub const MMIO_DEVICE_LEN: u64 = 0x1000;

// Register offsets (virtio 1.x spec, table "MMIO Device Register Layout"). R = read-only,
// W = write-only, RW = both. All are 32 bits wide and little-endian.
/// R: 0x74726976, "virt" in little-endian ASCII.
pub const MAGIC_VALUE: u64 = 0x000;
/// R: layout version, 2 for virtio 1.x ("modern") devices.
pub const VERSION: u64 = 0x004;
/// R: virtio device ID; 0 would mean "no device here".
pub const DEVICE_ID: u64 = 0x008;
/// R: subsystem vendor ID.
pub const VENDOR_ID: u64 = 0x00c;
/// R: 32 bits of the offered features, selected by DeviceFeaturesSel.
pub const DEVICE_FEATURES: u64 = 0x010;
/// W: which 32-bit half of the offered features DeviceFeatures shows.
pub const DEVICE_FEATURES_SEL: u64 = 0x014;
/// W: 32 bits of the accepted features, selected by DriverFeaturesSel.
pub const DRIVER_FEATURES: u64 = 0x020;
/// W: which 32-bit half of the accepted features DriverFeatures sets.
pub const DRIVER_FEATURES_SEL: u64 = 0x024;
/// W: which virtqueue the Queue* registers refer to.
pub const QUEUE_SEL: u64 = 0x030;
/// R: maximum size of the selected queue, 0 if the queue does not exist.
pub const QUEUE_NUM_MAX: u64 = 0x034;
/// W: size the driver chose for the selected queue.
pub const QUEUE_NUM: u64 = 0x038;
/// RW: 1 once the selected queue is configured; writing 1 enables it.
pub const QUEUE_READY: u64 = 0x044;
/// W: index of a queue with new available buffers.
pub const QUEUE_NOTIFY: u64 = 0x050;
/// R: pending interrupt causes: bit 0 used buffer, bit 1 configuration change.
pub const INTERRUPT_STATUS: u64 = 0x060;
/// W: interrupt causes the driver has handled.
pub const INTERRUPT_ACK: u64 = 0x064;
/// RW: device status (spec 2.1); writing 0 resets the device.
pub const STATUS: u64 = 0x070;
/// W: descriptor table address of the selected queue, low and high 32 bits.
pub const QUEUE_DESC_LOW: u64 = 0x080;
/// See [`QUEUE_DESC_LOW`].
pub const QUEUE_DESC_HIGH: u64 = 0x084;
/// W: driver area (available ring) address of the selected queue.
pub const QUEUE_DRIVER_LOW: u64 = 0x090;
/// See [`QUEUE_DRIVER_LOW`].
pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
/// W: device area (used ring) address of the selected queue.
pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
/// See [`QUEUE_DEVICE_LOW`].
pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
/// W: which shared memory region SHMLen/SHMBase describe.
pub const SHM_SEL: u64 = 0x0ac;
/// R: length of the selected shared memory region; all ones when it does not exist.
pub const SHM_LEN_LOW: u64 = 0x0b0;
/// See [`SHM_LEN_LOW`].
pub const SHM_LEN_HIGH: u64 = 0x0b4;
/// R: base of the selected shared memory region; all ones when it does not exist.
pub const SHM_BASE_LOW: u64 = 0x0b8;
/// See [`SHM_BASE_LOW`].
pub const SHM_BASE_HIGH: u64 = 0x0bc;
/// R: changes whenever the configuration space may have changed under the driver.
pub const CONFIG_GENERATION: u64 = 0x0fc;
/// RW: start of the device configuration space.
pub const CONFIG: u64 = 0x100;

/// "virt".
const MAGIC: u32 = 0x7472_6976;
/// Layout version of virtio 1.x devices (1 was the legacy layout).
const MMIO_VERSION: u32 = 2;
/// Our vendor ID: "tern" in little-endian ASCII. Drivers do not interpret it.
const VENDOR: u32 = 0x6e72_6574;

/// InterruptStatus bit: the device used a buffer.
pub const INT_VRING: u32 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
/// InterruptStatus bit: the device configuration (or DEVICE_NEEDS_RESET) changed.
pub const INT_CONFIG: u32 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_CONFIG;

/// The status bits a driver may set.
const DRIVER_STATUS_BITS: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE
    | VIRTIO_CONFIG_S_DRIVER
    | VIRTIO_CONFIG_S_FEATURES_OK
    | VIRTIO_CONFIG_S_DRIVER_OK
    | VIRTIO_CONFIG_S_FAILED;

// Bits of `queue_errors`: which part of a queue's configuration the driver set to an invalid
// value. A queue cannot be made ready while any is set.
const QERR_SIZE: u8 = 1 << 0;
const QERR_DESC: u8 = 1 << 1;
const QERR_AVAIL: u8 = 1 << 2;
const QERR_USED: u8 = 1 << 3;

/// Errors from rebuilding a transport from a saved [`MmioState`].
#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    /// The saved state has a different number of queues than the device.
    #[error("saved state has {saved} queues, the device has {device}")]
    QueueCount {
        /// Queues in the saved state.
        saved: usize,
        /// Queues the device has.
        device: usize,
    },
    /// A saved queue's maximum size differs from the device's.
    #[error("queue {index}: saved maximum size {saved}, the device has {device}")]
    QueueMaxSize {
        /// Which queue.
        index: usize,
        /// Its saved maximum size.
        saved: u16,
        /// The device's maximum size.
        device: u16,
    },
    /// A saved queue's configuration is invalid.
    #[error("queue {index}: {source}")]
    Queue {
        /// Which queue.
        index: usize,
        /// What virtio-queue found wrong.
        source: virtio_queue::Error,
    },
    /// A saved ready queue does not fit in guest memory.
    #[error("queue {0} is ready but its rings are not inside guest memory")]
    QueueOutsideMemory(usize),
    /// The device refused to activate with the saved features.
    #[error("device activation failed: {0}")]
    Activate(#[from] super::VirtioError),
}

/// Everything about a transport that must survive a save/restore, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MmioState {
    /// Device status register.
    pub status: u32,
    /// DeviceFeaturesSel.
    pub device_features_sel: u32,
    /// DriverFeaturesSel.
    pub driver_features_sel: u32,
    /// Features the driver accepted so far.
    pub acked_features: u64,
    /// QueueSel.
    pub queue_sel: u32,
    /// Each queue's configuration and ring positions.
    pub queues: Vec<QueueState>,
    /// Per queue, which configuration values the driver set invalid (QERR_* bits).
    pub queue_errors: Vec<u8>,
    /// InterruptStatus.
    pub interrupt_status: u32,
    /// ConfigGeneration.
    pub config_generation: u32,
    /// SHMSel.
    pub shm_sel: u32,
}

/// A virtio device behind a virtio-mmio register window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    irq: Arc<dyn IrqLine>,
    queues: Vec<Queue>,
    queue_errors: Vec<u8>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    acked_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    config_generation: u32,
    shm_sel: u32,
    /// Told about device writes to guest RAM; not part of the saved state (see
    /// [`MmioTransport::set_dma_observer`]).
    dma: Option<Arc<dyn DmaObserver>>,
}

impl MmioTransport {
    /// Puts `device` behind a fresh transport (status 0: not yet seen by any driver). `mem`
    /// is the guest memory the device's queues live in; `irq` is its interrupt line, which
    /// starts and stays low until the device uses a buffer.
    pub fn new(device: Box<dyn VirtioDevice>, mem: GuestMemoryMmap, irq: Arc<dyn IrqLine>) -> Self {
        let queues: Vec<Queue> = device
            .queue_max_sizes()
            .iter()
            .enumerate()
            .map(|(i, &max)| {
                Queue::new(max).unwrap_or_else(|e| {
                    // A bug in the device model, not guest input: the queue shows QueueNumMax
                    // 0, i.e. "not available", and can never be made ready.
                    log::error!(
                        "virtio device type {}: queue {i}: {e}",
                        device.device_type()
                    );
                    Queue::default()
                })
            })
            .collect();
        let queue_errors = vec![0; queues.len()];
        Self {
            device,
            mem,
            irq,
            queues,
            queue_errors,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            acked_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation: 0,
            shm_sel: 0,
            dma: None,
        }
    }

    /// The device behind the transport (use `as_any` to reach the concrete type).
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// From now on, tells `observer` about every guest buffer the device may have written,
    /// after it served the request and before the driver can see the request as done (see
    /// [`DmaObserver`]). A transport starts without one, and so does one rebuilt by
    /// [`MmioTransport::from_state`]: the machine installs it again.
    pub fn set_dma_observer(&mut self, observer: Arc<dyn DmaObserver>) {
        self.dma = Some(observer);
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The pending interrupt causes.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// The features the transport offers: the device's and VIRTIO_F_VERSION_1.
    pub fn offered_features(&self) -> u64 {
        self.device.features() | FEATURE_VERSION_1
    }

    /// Tells the driver the device configuration changed (e.g. a resized disk): bumps
    /// ConfigGeneration and raises the configuration-change interrupt.
    pub fn notify_config_change(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.raise(INT_CONFIG);
    }

    /// Saves the transport's state (not the device's: see the device's own `state()`).
    pub fn state(&self) -> MmioState {
        MmioState {
            status: self.status,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            acked_features: self.acked_features,
            queue_sel: self.queue_sel,
            queues: self.queues.iter().map(Queue::state).collect(),
            queue_errors: self.queue_errors.clone(),
            interrupt_status: self.interrupt_status,
            config_generation: self.config_generation,
            shm_sel: self.shm_sel,
        }
    }

    /// Rebuilds a transport around `device` from a saved state. A device that was running
    /// (DRIVER_OK without DEVICE_NEEDS_RESET) is activated again with the saved features, and
    /// the interrupt line is driven to the saved level.
    pub fn from_state(
        mut device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        irq: Arc<dyn IrqLine>,
        state: &MmioState,
    ) -> Result<Self, MmioError> {
        let max_sizes = device.queue_max_sizes().to_vec();
        if state.queues.len() != max_sizes.len() || state.queue_errors.len() != max_sizes.len() {
            return Err(MmioError::QueueCount {
                saved: state.queues.len(),
                device: max_sizes.len(),
            });
        }
        let mut queues = Vec::with_capacity(max_sizes.len());
        for (index, (saved, &max)) in state.queues.iter().zip(&max_sizes).enumerate() {
            if saved.max_size != max {
                return Err(MmioError::QueueMaxSize {
                    index,
                    saved: saved.max_size,
                    device: max,
                });
            }
            let queue = if max == 0 {
                Queue::default()
            } else {
                Queue::try_from(*saved).map_err(|source| MmioError::Queue { index, source })?
            };
            if queue.ready() && !queue.is_valid(&mem) {
                return Err(MmioError::QueueOutsideMemory(index));
            }
            queues.push(queue);
        }
        let running = state.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && state.status & VIRTIO_CONFIG_S_NEEDS_RESET == 0;
        if running {
            device.activate(state.acked_features)?;
        }
        let transport = Self {
            device,
            mem,
            irq,
            queues,
            queue_errors: state.queue_errors.clone(),
            status: state.status,
            device_features_sel: state.device_features_sel,
            driver_features_sel: state.driver_features_sel,
            acked_features: state.acked_features,
            queue_sel: state.queue_sel,
            interrupt_status: state.interrupt_status,
            config_generation: state.config_generation,
            shm_sel: state.shm_sel,
            dma: None,
        };
        transport.irq.set_level(transport.interrupt_status != 0);
        Ok(transport)
    }

    /// Sets interrupt causes and raises the line if it was low.
    fn raise(&mut self, bits: u32) {
        let was = self.interrupt_status;
        self.interrupt_status |= bits;
        if was == 0 && self.interrupt_status != 0 {
            self.irq.set_level(true);
        }
    }

    /// Clears acknowledged causes and lowers the line once none is left.
    fn acknowledge(&mut self, bits: u32) {
        let was = self.interrupt_status;
        self.interrupt_status &= !bits;
        if was != 0 && self.interrupt_status == 0 {
            self.irq.set_level(false);
        }
    }

    /// Reports an unrecoverable device error to the driver (spec 2.1.2).
    fn needs_reset(&mut self) {
        if self.status & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            return;
        }
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.notify_config_change();
        }
    }

    /// Device reset: back to the state before any driver touched it.
    fn reset(&mut self) {
        debug!(
            "virtio-mmio: device type {} reset",
            self.device.device_type()
        );
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.queue_errors.fill(0);
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.acked_features = 0;
        self.queue_sel = 0;
        self.shm_sel = 0;
        self.acknowledge(u32::MAX);
    }

    fn selected_queue(&self) -> Option<usize> {
        let i = self.queue_sel as usize;
        (i < self.queues.len() && self.queues[i].max_size() != 0).then_some(i)
    }

    fn read_register(&self, offset: u64) -> u32 {
        match offset {
            MAGIC_VALUE => MAGIC,
            VERSION => MMIO_VERSION,
            DEVICE_ID => self.device.device_type(),
            VENDOR_ID => VENDOR,
            DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            QUEUE_NUM_MAX => self
                .selected_queue()
                .map_or(0, |i| u32::from(self.queues[i].max_size())),
            QUEUE_READY => self
                .selected_queue()
                .map_or(0, |i| u32::from(self.queues[i].ready())),
            INTERRUPT_STATUS => self.interrupt_status,
            STATUS => self.status,
            // No shared memory regions: a length (and base) of all ones says so.
            SHM_LEN_LOW | SHM_LEN_HIGH | SHM_BASE_LOW | SHM_BASE_HIGH => u32::MAX,
            CONFIG_GENERATION => self.config_generation,
            _ => {
                warn!("virtio-mmio: read of write-only or unknown register {offset:#x} ignored");
                0
            }
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            DEVICE_FEATURES_SEL => self.device_features_sel = value,
            DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            DRIVER_FEATURES => self.write_driver_features(value),
            QUEUE_SEL => self.queue_sel = value,
            QUEUE_NUM | QUEUE_DESC_LOW | QUEUE_DESC_HIGH | QUEUE_DRIVER_LOW | QUEUE_DRIVER_HIGH
            | QUEUE_DEVICE_LOW | QUEUE_DEVICE_HIGH => self.write_queue_config(offset, value),
            QUEUE_READY => self.write_queue_ready(value),
            QUEUE_NOTIFY => self.notify(value),
            INTERRUPT_ACK => self.acknowledge(value),
            STATUS => self.write_status(value),
            SHM_SEL => self.shm_sel = value,
            _ => warn!(
                "virtio-mmio: write of {value:#x} to read-only or unknown register {offset:#x} ignored"
            ),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        let negotiating = self.status & VIRTIO_CONFIG_S_DRIVER != 0
            && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
        if !negotiating {
            warn!("virtio-mmio: DriverFeatures written outside feature negotiation; ignored");
            return;
        }
        match self.driver_features_sel {
            0 => self.acked_features = (self.acked_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.acked_features = (self.acked_features & 0xffff_ffff) | (u64::from(value) << 32)
            }
            sel if value != 0 => {
                warn!("virtio-mmio: driver accepts features {value:#x} in unknown word {sel}")
            }
            _ => {}
        }
    }

    fn write_queue_config(&mut self, offset: u64, value: u32) {
        let Some(i) = self.selected_queue() else {
            warn!(
                "virtio-mmio: queue register {offset:#x} written for missing queue {}",
                self.queue_sel
            );
            return;
        };
        let queue = &mut self.queues[i];
        if queue.ready() {
            warn!("virtio-mmio: queue {i} reconfigured while ready; ignored");
            return;
        }
        let low = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let high = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        // try_set_* only keep valid values; remember which ones the driver got wrong so the
        // queue cannot go ready with a stale value in their place.
        let (bit, result) = match offset {
            QUEUE_NUM => (
                QERR_SIZE,
                u16::try_from(value)
                    .map_err(|_| virtio_queue::Error::InvalidSize)
                    .and_then(|size| queue.try_set_size(size)),
            ),
            QUEUE_DESC_LOW | QUEUE_DESC_HIGH => {
                let old = queue.desc_table();
                let new = if offset == QUEUE_DESC_LOW {
                    low(old)
                } else {
                    high(old)
                };
                (
                    QERR_DESC,
                    queue.try_set_desc_table_address(GuestAddress(new)),
                )
            }
            QUEUE_DRIVER_LOW | QUEUE_DRIVER_HIGH => {
                let old = queue.avail_ring();
                let new = if offset == QUEUE_DRIVER_LOW {
                    low(old)
                } else {
                    high(old)
                };
                (
                    QERR_AVAIL,
                    queue.try_set_avail_ring_address(GuestAddress(new)),
                )
            }
            _ => {
                let old = queue.used_ring();
                let new = if offset == QUEUE_DEVICE_LOW {
                    low(old)
                } else {
                    high(old)
                };
                (
                    QERR_USED,
                    queue.try_set_used_ring_address(GuestAddress(new)),
                )
            }
        };
        match result {
            Ok(()) => self.queue_errors[i] &= !bit,
            Err(e) => {
                warn!("virtio-mmio: queue {i}: register {offset:#x} = {value:#x}: {e}");
                self.queue_errors[i] |= bit;
            }
        }
    }

    fn write_queue_ready(&mut self, value: u32) {
        let Some(i) = self.selected_queue() else {
            warn!(
                "virtio-mmio: QueueReady written for missing queue {}",
                self.queue_sel
            );
            return;
        };
        if value == 0 {
            // The driver takes the queue back; virtio-mmio has no per-queue reset without
            // VIRTIO_F_RING_RESET, so this only stops the device using it.
            self.queues[i].set_ready(false);
            return;
        }
        if self.queues[i].ready() {
            return;
        }
        if self.queue_errors[i] != 0 {
            warn!("virtio-mmio: queue {i} made ready with an invalid configuration");
            self.needs_reset();
            return;
        }
        self.queues[i].set_ready(true);
        if !self.queues[i].is_valid(&self.mem) {
            warn!(
                "virtio-mmio: queue {i} (size {}, desc {:#x}, avail {:#x}, used {:#x}) is not inside guest memory",
                self.queues[i].size(),
                self.queues[i].desc_table(),
                self.queues[i].avail_ring(),
                self.queues[i].used_ring()
            );
            self.queues[i].set_ready(false);
            self.needs_reset();
        }
    }

    fn notify(&mut self, value: u32) {
        let running = self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && self.status & VIRTIO_CONFIG_S_NEEDS_RESET == 0;
        if !running {
            warn!("virtio-mmio: queue {value} notified while the device is not running; ignored");
            return;
        }
        let i = value as usize;
        if i >= self.queues.len() || !self.queues[i].ready() {
            warn!("virtio-mmio: notification for missing or not-ready queue {value}; ignored");
            return;
        }
        let dma = self.dma.as_deref();
        match self
            .device
            .process_queue(i, &mut self.queues[i], &self.mem, dma)
        {
            Ok(true) => self.raise(INT_VRING),
            Ok(false) => {}
            Err(e) => {
                warn!("virtio-mmio: queue {i} is broken, device needs reset: {e}");
                // Chains completed before the error are on the used ring: tell the driver.
                self.raise(INT_VRING);
                self.needs_reset();
            }
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        if value & !(DRIVER_STATUS_BITS | VIRTIO_CONFIG_S_NEEDS_RESET) != 0 {
            warn!("virtio-mmio: unknown status bits in {value:#x} ignored");
        }
        let mut new = value & DRIVER_STATUS_BITS;
        if old & DRIVER_STATUS_BITS & !new != 0 {
            warn!("virtio-mmio: driver cleared status bits ({old:#x} -> {value:#x}) without a reset; ignored");
            return;
        }
        let added = new & !old;
        if added & VIRTIO_CONFIG_S_FAILED != 0 {
            info!(
                "virtio-mmio: driver gave up on device type {}",
                self.device.device_type()
            );
        }
        // Each step needs the previous one (spec 3.1.1).
        let steps = [
            (VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_ACKNOWLEDGE),
            (VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DRIVER),
            (VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK),
        ];
        for (bit, needs) in steps {
            if added & bit != 0 && new & needs == 0 {
                warn!("virtio-mmio: status {value:#x} sets {bit:#x} before {needs:#x}; ignored");
                return;
            }
        }
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            let offered = self.offered_features();
            if self.acked_features & FEATURE_VERSION_1 == 0 {
                warn!("virtio-mmio: driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported); FEATURES_OK refused");
                new &= !(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
            } else if self.acked_features & !offered != 0 {
                warn!(
                    "virtio-mmio: driver accepted features {:#x} that were not offered; FEATURES_OK refused",
                    self.acked_features & !offered
                );
                new &= !(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
            }
        }
        self.status = new | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
        if new & !old & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            if let Err(e) = self.device.activate(self.acked_features) {
                warn!(
                    "virtio-mmio: device type {}: {e}",
                    self.device.device_type()
                );
                self.needs_reset();
            }
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG {
            if matches!(data.len(), 1 | 2 | 4) {
                self.device.read_config(offset - CONFIG, data);
            } else {
                warn!(
                    "virtio-mmio: {}-byte config read at {offset:#x} ignored",
                    data.len()
                );
                data.fill(0);
            }
            return;
        }
        if data.len() != 4 || offset % 4 != 0 {
            warn!(
                "virtio-mmio: {}-byte register read at {offset:#x} ignored",
                data.len()
            );
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_register(offset).to_le_bytes());
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if offset >= CONFIG {
            if matches!(data.len(), 1 | 2 | 4) {
                self.device.write_config(offset - CONFIG, data);
            } else {
                warn!(
                    "virtio-mmio: {}-byte config write at {offset:#x} ignored",
                    data.len()
                );
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            warn!(
                "virtio-mmio: {}-byte register write at {offset:#x} ignored",
                data.len()
            );
            return;
        };
        if offset % 4 != 0 {
            warn!("virtio-mmio: unaligned register write at {offset:#x} ignored");
            return;
        }
        self.write_register(offset, u32::from_le_bytes(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use crate::virtio::testing::{Driver, DATA, QUEUE_SIZE};
    use crate::virtio::{drain_queue, RecordingDma, VirtioError};
    use std::any::Any;
    use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;

    const ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
    const DRV: u32 = VIRTIO_CONFIG_S_DRIVER;
    const FOK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
    const DOK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
    const NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;
    const WRITE: u16 = VRING_DESC_F_WRITE as u16;
    /// A device-specific feature bit the test device offers.
    const FEATURE_X: u64 = 1 << 3;

    /// A device with two queues that returns every chain with used length 7 and records
    /// what the transport told it.
    #[derive(Default)]
    struct TestDevice {
        config: [u8; 8],
        activated_with: Option<u64>,
        resets: u32,
        served: usize,
        fail_activate: bool,
    }

    impl VirtioDevice for TestDevice {
        fn device_type(&self) -> u32 {
            42
        }
        fn features(&self) -> u64 {
            FEATURE_X
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[256, 64]
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = *self.config.get(offset as usize + i).unwrap_or(&0);
            }
        }
        fn write_config(&mut self, offset: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                if let Some(c) = self.config.get_mut(offset as usize + i) {
                    *c = *b;
                }
            }
        }
        fn activate(&mut self, acked_features: u64) -> Result<(), VirtioError> {
            if self.fail_activate {
                return Err(VirtioError::Activate("test".into()));
            }
            self.activated_with = Some(acked_features);
            Ok(())
        }
        fn reset(&mut self) {
            self.resets += 1;
            self.activated_with = None;
        }
        fn process_queue(
            &mut self,
            _index: usize,
            queue: &mut Queue,
            mem: &GuestMemoryMmap,
            dma: Option<&dyn DmaObserver>,
        ) -> Result<bool, VirtioError> {
            drain_queue(queue, mem, dma, |_| {
                self.served += 1;
                7
            })
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn driver() -> Driver {
        Driver::new(Box::<TestDevice>::default())
    }

    fn device(d: &Driver) -> &TestDevice {
        d.transport.device().as_any().downcast_ref().unwrap()
    }

    #[test]
    fn identifies_itself_as_a_version_2_virtio_mmio_device() {
        let mut d = driver();
        assert_eq!(d.read(MAGIC_VALUE), u32::from_le_bytes(*b"virt"));
        assert_eq!(d.read(VERSION), 2);
        assert_eq!(d.read(DEVICE_ID), 42);
        assert_eq!(d.read(VENDOR_ID), u32::from_le_bytes(*b"tern"));
        assert_eq!(d.read(STATUS), 0);
        assert_eq!(d.read(CONFIG_GENERATION), 0);
    }

    #[test]
    fn offers_the_device_features_and_version_1() {
        let mut d = driver();
        assert_eq!(d.device_features(), FEATURE_X | FEATURE_VERSION_1);
        d.write(DEVICE_FEATURES_SEL, 2);
        assert_eq!(d.read(DEVICE_FEATURES), 0);
    }

    #[test]
    fn full_driver_initialisation_activates_the_device() {
        let mut d = driver();
        d.init();
        assert_eq!(d.read(STATUS), ACK | DRV | FOK | DOK);
        assert_eq!(
            device(&d).activated_with,
            Some(FEATURE_X | FEATURE_VERSION_1)
        );
        assert!(!d.irq.level());
    }

    #[test]
    fn a_driver_without_version_1_is_refused_features_ok() {
        let mut d = driver();
        assert!(!d.negotiate(FEATURE_X));
        assert_eq!(d.read(STATUS), ACK | DRV);
        // It cannot go on to DRIVER_OK either.
        d.write(STATUS, ACK | DRV | FOK | DOK);
        assert_eq!(d.read(STATUS) & (FOK | DOK), 0);
        assert_eq!(device(&d).activated_with, None);
    }

    #[test]
    fn features_that_were_not_offered_are_refused() {
        let mut d = driver();
        assert!(!d.negotiate(FEATURE_VERSION_1 | 1 << 7));
        assert!(d.negotiate(FEATURE_VERSION_1));
    }

    #[test]
    fn features_cannot_change_after_features_ok() {
        let mut d = driver();
        assert!(d.negotiate(FEATURE_VERSION_1));
        d.write(DRIVER_FEATURES_SEL, 0);
        d.write(DRIVER_FEATURES, FEATURE_X as u32);
        d.write(STATUS, ACK | DRV | FOK | DOK);
        assert_eq!(device(&d).activated_with, Some(FEATURE_VERSION_1));
    }

    #[test]
    fn status_steps_must_come_in_order_and_cannot_be_undone() {
        let mut d = driver();
        d.write(STATUS, DRV);
        assert_eq!(d.read(STATUS), 0, "DRIVER before ACKNOWLEDGE");
        d.write(STATUS, ACK | DRV);
        d.write(STATUS, ACK | DRV | DOK);
        assert_eq!(d.read(STATUS), ACK | DRV, "DRIVER_OK before FEATURES_OK");
        d.write(STATUS, ACK);
        assert_eq!(
            d.read(STATUS),
            ACK | DRV,
            "bits are only cleared by a reset"
        );
        d.write(STATUS, ACK | DRV | VIRTIO_CONFIG_S_FAILED);
        assert_eq!(d.read(STATUS), ACK | DRV | VIRTIO_CONFIG_S_FAILED);
    }

    #[test]
    fn queues_report_their_maximum_and_missing_ones_report_zero() {
        let mut d = driver();
        d.write(QUEUE_SEL, 0);
        assert_eq!(d.read(QUEUE_NUM_MAX), 256);
        d.write(QUEUE_SEL, 1);
        assert_eq!(d.read(QUEUE_NUM_MAX), 64);
        d.write(QUEUE_SEL, 2);
        assert_eq!(d.read(QUEUE_NUM_MAX), 0);
        d.write(QUEUE_READY, 1);
        assert_eq!(d.read(QUEUE_READY), 0);
    }

    fn negotiated() -> Driver {
        let mut d = driver();
        assert!(d.negotiate(FEATURE_VERSION_1));
        d
    }

    #[test]
    fn a_queue_with_an_invalid_size_cannot_be_made_ready() {
        for size in [0, 3, 512, 0x1_0000 + 16] {
            let mut d = negotiated();
            d.setup_queue(0);
            assert_eq!(d.read(QUEUE_READY), 1);
            d.write(STATUS, 0);
            assert!(d.negotiate(FEATURE_VERSION_1));
            d.write(QUEUE_SEL, 0);
            d.write(QUEUE_NUM, size);
            d.write(QUEUE_READY, 1);
            assert_eq!(d.read(QUEUE_READY), 0, "size {size}");
            assert_ne!(d.read(STATUS) & NEEDS_RESET, 0);
        }
    }

    #[test]
    fn a_fixed_mistake_no_longer_blocks_the_queue() {
        let mut d = negotiated();
        d.write(QUEUE_SEL, 0);
        d.write(QUEUE_NUM, 3);
        d.setup_queue(0); // writes a valid size and the addresses
        assert_eq!(d.read(QUEUE_READY), 1);
    }

    #[test]
    fn misaligned_rings_cannot_be_made_ready() {
        for (reg, value) in [
            (QUEUE_DESC_LOW, 0x1008),
            (QUEUE_DRIVER_LOW, 0x2001),
            (QUEUE_DEVICE_LOW, 0x3002),
        ] {
            let mut d = negotiated();
            d.setup_queue(1);
            d.write(STATUS, 0);
            assert!(d.negotiate(FEATURE_VERSION_1));
            d.write(QUEUE_SEL, 1);
            d.write(reg, value);
            d.write(QUEUE_READY, 1);
            assert_eq!(d.read(QUEUE_READY), 0, "register {reg:#x} = {value:#x}");
            assert_ne!(d.read(STATUS) & NEEDS_RESET, 0);
        }
    }

    #[test]
    fn rings_outside_guest_memory_cannot_be_made_ready() {
        for reg in [QUEUE_DESC_HIGH, QUEUE_DRIVER_HIGH, QUEUE_DEVICE_HIGH] {
            let mut d = negotiated();
            d.write(QUEUE_SEL, 0);
            d.write(QUEUE_NUM, u32::from(QUEUE_SIZE));
            d.write(reg, 1); // 4 GiB up: no memory there
            d.write(QUEUE_READY, 1);
            assert_eq!(d.read(QUEUE_READY), 0, "register {reg:#x}");
            assert_ne!(d.read(STATUS) & NEEDS_RESET, 0);
        }
    }

    #[test]
    fn a_ready_queue_cannot_be_reconfigured() {
        let mut d = negotiated();
        d.setup_queue(0);
        d.write(QUEUE_DESC_LOW, 0x8_0000);
        assert_eq!(d.transport.state().queues[0].desc_table, 0x1000);
    }

    #[test]
    fn used_buffers_raise_the_line_until_acknowledged() {
        let mut d = driver();
        d.init();
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 7)]);
        assert_eq!(d.read(INTERRUPT_STATUS), INT_VRING);
        assert!(d.irq.level());
        d.write(INTERRUPT_ACK, INT_CONFIG);
        assert!(
            d.irq.level(),
            "acknowledging another cause leaves it pending"
        );
        d.write(INTERRUPT_ACK, INT_VRING);
        assert_eq!(d.read(INTERRUPT_STATUS), 0);
        assert!(!d.irq.level());
        assert_eq!(d.irq.rising_edges(), 1);
        d.submit(1, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(1), vec![(0, 7)]);
        assert!(d.irq.level());
        assert_eq!(device(&d).served, 2);
    }

    #[test]
    fn notifications_before_driver_ok_are_ignored() {
        let mut d = negotiated();
        d.setup_queue(0);
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![]);
        assert!(!d.irq.level());
    }

    #[test]
    fn a_driver_publishing_more_chains_than_the_queue_holds_breaks_the_device() {
        let mut d = driver();
        d.init();
        let avail_idx = GuestAddress(d.queues[0].avail + 2);
        vm_memory::Bytes::write_obj(&d.mem, QUEUE_SIZE + 1, avail_idx).unwrap();
        d.write(QUEUE_NOTIFY, 0);
        assert_ne!(d.read(STATUS) & NEEDS_RESET, 0);
        assert_ne!(d.read(INTERRUPT_STATUS) & INT_CONFIG, 0);
        assert_eq!(d.read(CONFIG_GENERATION), 1);
        assert!(d.irq.level());
        // Further notifications are ignored until the driver resets the device.
        d.write(QUEUE_NOTIFY, 0);
        assert_eq!(device(&d).served, 0);
        d.clear_rings();
        d.init();
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(device(&d).served, 1);
    }

    #[test]
    fn failed_activation_asks_for_a_reset() {
        let dev = TestDevice {
            fail_activate: true,
            ..Default::default()
        };
        let mut d = Driver::new(Box::new(dev));
        assert!(d.negotiate(FEATURE_VERSION_1));
        d.write(STATUS, ACK | DRV | FOK | DOK);
        assert_eq!(d.read(STATUS), ACK | DRV | FOK | DOK | NEEDS_RESET);
        assert_eq!(d.read(INTERRUPT_STATUS), INT_CONFIG);
    }

    #[test]
    fn writing_status_zero_resets_everything() {
        let mut d = driver();
        d.init();
        let resets = device(&d).resets;
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert!(d.irq.level());
        d.write(STATUS, 0);
        assert_eq!(d.read(STATUS), 0);
        assert_eq!(d.read(INTERRUPT_STATUS), 0);
        assert!(!d.irq.level());
        for q in 0..2 {
            d.write(QUEUE_SEL, q);
            assert_eq!(d.read(QUEUE_READY), 0);
        }
        assert_eq!(device(&d).resets, resets + 1);
        assert_eq!(device(&d).activated_with, None);
        let s = d.transport.state();
        assert_eq!((s.acked_features, s.queues[0].next_avail), (0, 0));
        // A new driver starts over and is served from the beginning of fresh rings.
        d.clear_rings();
        d.init();
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 7)]);
    }

    #[test]
    fn accesses_that_are_not_32_bits_wide_are_ignored() {
        let mut d = driver();
        let mut two = [0xaa; 2];
        d.transport.read(0, MAGIC_VALUE, &mut two);
        assert_eq!(two, [0, 0]);
        let mut eight = [0xaa; 8];
        d.transport.read(0, MAGIC_VALUE, &mut eight);
        assert_eq!(eight, [0; 8]);
        d.transport.write(0, STATUS, &[ACK as u8]);
        assert_eq!(d.read(STATUS), 0);
        let mut four = [0; 4];
        d.transport.read(0, MAGIC_VALUE + 1, &mut four);
        assert_eq!(four, [0; 4], "unaligned");
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let mut d = driver();
        for reg in [
            MAGIC_VALUE,
            VERSION,
            DEVICE_ID,
            QUEUE_NUM_MAX,
            INTERRUPT_STATUS,
            CONFIG_GENERATION,
        ] {
            let before = d.read(reg);
            d.write(reg, 0x1234_5678);
            assert_eq!(d.read(reg), before, "register {reg:#x}");
        }
        assert_eq!(d.read(QUEUE_DESC_LOW), 0, "write-only registers read as 0");
        assert_eq!(d.read(SHM_LEN_LOW), u32::MAX, "no shared memory regions");
    }

    #[test]
    fn config_space_takes_8_16_and_32_bit_accesses() {
        let mut d = driver();
        d.transport.write(0, CONFIG + 1, &[0x11]);
        d.transport.write(0, CONFIG + 2, &[0x22, 0x33]);
        d.transport.write(0, CONFIG + 4, &[1, 2, 3, 4]);
        d.transport.write(0, CONFIG, &[9; 8]);
        let mut all = [0u8; 4];
        d.transport.read(0, CONFIG, &mut all);
        assert_eq!(all, [0, 0x11, 0x22, 0x33]);
        let mut one = [0u8; 1];
        d.transport.read(0, CONFIG + 6, &mut one);
        assert_eq!(one, [3]);
        let mut eight = [0xffu8; 8];
        d.transport.read(0, CONFIG, &mut eight);
        assert_eq!(eight, [0; 8], "64-bit accesses are ignored");
    }

    #[test]
    fn config_changes_bump_the_generation_and_interrupt() {
        let mut d = driver();
        d.init();
        d.transport.notify_config_change();
        assert_eq!(d.read(CONFIG_GENERATION), 1);
        assert_eq!(d.ack_interrupt(), INT_CONFIG);
        assert!(!d.irq.level());
    }

    #[test]
    fn state_round_trips_and_a_restored_device_carries_on() {
        let mut d = driver();
        d.init();
        d.submit(0, &[(DATA, 16, WRITE)]);
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(0).len(), 2);
        d.write(QUEUE_SEL, 1);
        let saved = d.transport.state();
        assert_eq!(saved.queues[0].next_avail, 2);
        assert_eq!(saved.interrupt_status, INT_VRING);

        let irq = Arc::new(RecordingIrq::default());
        let restored = MmioTransport::from_state(
            Box::<TestDevice>::default(),
            d.mem.clone(),
            irq.clone(),
            &saved,
        )
        .unwrap();
        assert_eq!(restored.state(), saved);
        assert!(irq.level(), "the pending interrupt is still asserted");
        let dev: &TestDevice = restored.device().as_any().downcast_ref().unwrap();
        assert_eq!(dev.activated_with, Some(FEATURE_X | FEATURE_VERSION_1));

        d.transport = restored;
        d.irq = irq;
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 7)]);
        assert_eq!(d.transport.state().queues[0].next_used, 3);
    }

    #[test]
    fn only_an_installed_observer_hears_of_device_writes_and_a_restored_transport_has_none() {
        let mut d = driver();
        d.init();
        let dma = RecordingDma::new(&d.mem, d.queues[0].used);
        d.submit(0, &[(DATA, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 7)]);
        assert_eq!(dma.take_ranges(), vec![], "not installed yet");

        d.transport.set_dma_observer(dma.clone());
        d.submit(0, &[(DATA + 0x100, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 7)]);
        assert_eq!(dma.take_ranges(), vec![(DATA + 0x100, 16)]);

        let restored = MmioTransport::from_state(
            Box::<TestDevice>::default(),
            d.mem.clone(),
            d.irq.clone(),
            &d.transport.state(),
        )
        .unwrap();
        d.transport = restored;
        d.submit(0, &[(DATA + 0x200, 16, WRITE)]);
        assert_eq!(d.take_used(0), vec![(0, 7)]);
        assert_eq!(dma.take_ranges(), vec![], "the machine installs it again");
    }

    #[test]
    fn restoring_a_mismatched_state_fails() {
        let mem = crate::virtio::testing::new_guest_memory();
        let irq = Arc::new(RecordingIrq::default());
        let fresh = MmioTransport::new(Box::<TestDevice>::default(), mem.clone(), irq.clone());
        let mut state = fresh.state();
        state.queues.pop();
        assert!(matches!(
            MmioTransport::from_state(
                Box::<TestDevice>::default(),
                mem.clone(),
                irq.clone(),
                &state
            ),
            Err(MmioError::QueueCount {
                saved: 1,
                device: 2
            })
        ));
        let mut state = fresh.state();
        state.queues[0].ready = true;
        state.queues[0].desc_table = 1 << 40;
        assert!(matches!(
            MmioTransport::from_state(Box::<TestDevice>::default(), mem, irq, &state),
            Err(MmioError::QueueOutsideMemory(0))
        ));
    }
}
