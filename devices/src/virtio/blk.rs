//! virtio-blk, the block device (virtio 1.x spec, section 5.2), backed by a host file.
//!
//! A request is a descriptor chain holding, in this order: a 16-byte device-readable header
//! (`type: le32, reserved: le32, sector: le64`), the data (device-readable for writes,
//! device-writable for reads and GET_ID), and one device-writable status byte. The chain may
//! be split into descriptors any way the driver likes ([`Buffers`] turns it into two byte
//! streams), but the roles must match the request type.
//!
//! Supported: IN (read), OUT (write), FLUSH (`fsync` of the host file) and GET_ID (a 20-byte
//! serial). Anything else gets VIRTIO_BLK_S_UNSUPP. A malformed request fails on its own with
//! VIRTIO_BLK_S_IOERR when the chain ends in a writable status byte, or is returned with used
//! length 0 when it does not; either way with exactly one log line, and the next request is
//! served normally. Data moves with positioned I/O (`pread`/`pwrite`) through a bounded bounce
//! buffer, so a guest cannot make the host allocate more than [`BOUNCE_LEN`] per request.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use log::{error, info, warn};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestMemoryError, GuestMemoryMmap};

use super::chain::Buffers;
use super::{drain_queue, DmaObserver, VirtioDevice, VirtioError};

/// virtio device ID of a block device.
const DEVICE_ID: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
/// The unit of `sector` and `capacity`, whatever the logical block size.
pub const SECTOR_SIZE: u64 = 512;
/// Maximum size of the request queue.
const QUEUE_SIZE: u16 = 256;
/// Most data descriptors in one request (VIRTIO_BLK_F_SEG_MAX): the queue less the header and
/// the status descriptors.
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Length of the request header.
const HEADER_LEN: u64 = 16;
/// Length of the GET_ID answer.
const ID_LEN: usize = VIRTIO_BLK_ID_BYTES as usize;
/// Size of the buffer data goes through between guest memory and the host file.
pub const BOUNCE_LEN: usize = 64 * 1024;

// Layout of `struct virtio_blk_config` (spec 5.2.4), the fields we fill.
/// le64: capacity in 512-byte sectors.
const CFG_CAPACITY: usize = 0x00;
/// le32: most data segments in a request (VIRTIO_BLK_F_SEG_MAX).
const CFG_SEG_MAX: usize = 0x0c;
/// le32: logical block size (VIRTIO_BLK_F_BLK_SIZE).
const CFG_BLK_SIZE: usize = 0x14;
/// Our configuration space ends after `num_queues` (0x22, le16): later fields describe
/// features we do not offer, and read as zero.
const CFG_LEN: usize = 0x24;

/// Errors from opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum BlkError {
    /// The file could not be opened.
    #[error("cannot open disk image {path}: {source}")]
    Open {
        /// The image.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file's size could not be found.
    #[error("cannot find the size of disk image {path}: {source}")]
    Size {
        /// The image.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Why a request failed. Each maps to the status byte the driver gets.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("request header is {0} bytes, needs 16")]
    ShortHeader(u64),
    #[error("request type {0} has device-readable data where device-writable buffers are needed")]
    UnexpectedReadable(u32),
    #[error("request type {0} has device-writable data where device-readable buffers are needed")]
    UnexpectedWritable(u32),
    #[error("data length {0} is not a multiple of 512")]
    UnalignedLength(u64),
    #[error("sectors {sector}+{len} are past the end of the disk ({capacity} sectors)")]
    OutOfRange {
        sector: u64,
        len: u64,
        capacity: u64,
    },
    #[error("write to a read-only disk")]
    ReadOnly,
    #[error("unsupported request type {0}")]
    Unsupported(u32),
    #[error("host I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("guest memory: {0}")]
    Memory(#[from] GuestMemoryError),
}

impl RequestError {
    fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported(_) => VIRTIO_BLK_S_UNSUPP as u8,
            _ => VIRTIO_BLK_S_IOERR as u8,
        }
    }
}

/// The saved state of a [`VirtioBlk`]: enough to reopen the same image the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkState {
    /// The host image.
    pub path: PathBuf,
    /// Whether the guest may write it.
    pub read_only: bool,
    /// The serial GET_ID returns.
    pub id: [u8; ID_LEN],
}

/// A virtio block device whose disk is a host file (or host block device).
pub struct VirtioBlk {
    file: File,
    path: PathBuf,
    read_only: bool,
    id: [u8; ID_LEN],
    /// Disk size in 512-byte sectors, fixed when the image is opened.
    capacity: u64,
    bounce: Vec<u8>,
}

impl std::fmt::Debug for VirtioBlk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioBlk")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl VirtioBlk {
    /// Opens the image at `path`, for reading only or for reading and writing. The capacity
    /// is the image size in whole sectors (a partial last sector is dropped with a log line);
    /// the serial is the first 20 bytes of the file name (see [`VirtioBlk::with_id`]).
    pub fn open(path: &Path, read_only: bool) -> Result<Self, BlkError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BlkError::Open {
                path: path.to_owned(),
                source,
            })?;
        // Seeking to the end works for regular files and host block devices alike (whose
        // metadata length is 0). Positioned I/O later ignores the file offset.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|source| BlkError::Size {
                path: path.to_owned(),
                source,
            })?;
        if size % SECTOR_SIZE != 0 {
            warn!(
                "virtio-blk: {} is {size} bytes, not a multiple of 512; the last {} bytes are not visible to the guest",
                path.display(),
                size % SECTOR_SIZE
            );
        }
        let mut id = [0u8; ID_LEN];
        if let Some(name) = path.file_name() {
            let name = name.as_encoded_bytes();
            let n = name.len().min(ID_LEN);
            id[..n].copy_from_slice(&name[..n]);
        }
        info!(
            "virtio-blk: {} ({} sectors{})",
            path.display(),
            size / SECTOR_SIZE,
            if read_only { ", read-only" } else { "" }
        );
        Ok(Self {
            file,
            path: path.to_owned(),
            read_only,
            id,
            capacity: size / SECTOR_SIZE,
            bounce: vec![0; BOUNCE_LEN],
        })
    }

    /// Sets the serial returned by GET_ID: up to 20 bytes, zero-padded, longer ones cut.
    pub fn with_id(mut self, id: &[u8]) -> Self {
        let n = id.len().min(ID_LEN);
        self.id = [0; ID_LEN];
        self.id[..n].copy_from_slice(&id[..n]);
        self
    }

    /// The disk size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Saves the device's state.
    pub fn state(&self) -> BlkState {
        BlkState {
            path: self.path.clone(),
            read_only: self.read_only,
            id: self.id,
        }
    }

    /// Rebuilds a device from a saved state by reopening its image.
    pub fn from_state(state: &BlkState) -> Result<Self, BlkError> {
        Ok(Self::open(&state.path, state.read_only)?.with_id(&state.id))
    }

    fn config(&self) -> [u8; CFG_LEN] {
        let mut cfg = [0u8; CFG_LEN];
        cfg[CFG_CAPACITY..CFG_CAPACITY + 8].copy_from_slice(&self.capacity.to_le_bytes());
        cfg[CFG_SEG_MAX..CFG_SEG_MAX + 4].copy_from_slice(&SEG_MAX.to_le_bytes());
        cfg[CFG_BLK_SIZE..CFG_BLK_SIZE + 4].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        cfg
    }

    /// Serves one request chain; returns the used length (bytes written to the chain).
    fn serve(
        &mut self,
        bufs: Result<Buffers, super::chain::ChainFault>,
        mem: &GuestMemoryMmap,
    ) -> u32 {
        let bufs = match bufs {
            Ok(bufs) => bufs,
            Err(fault) => {
                warn!("virtio-blk: malformed request: {}", fault.error);
                let Some(status) = fault.last_writable_byte else {
                    return 0;
                };
                return match mem.write_obj(VIRTIO_BLK_S_IOERR as u8, status) {
                    Ok(()) => 1,
                    Err(_) => 0,
                };
            }
        };
        let writable = bufs.writable_len();
        let Some(status_at) = writable.checked_sub(1) else {
            warn!("virtio-blk: malformed request: no device-writable status byte");
            return 0;
        };
        let (status, data_len) = match self.execute(&bufs, mem, status_at) {
            Ok(n) => (VIRTIO_BLK_S_OK as u8, n),
            Err(e @ (RequestError::Io(_) | RequestError::Memory(_))) => {
                error!("virtio-blk: {}: request failed: {e}", self.path.display());
                (e.status(), 0)
            }
            Err(e) => {
                warn!("virtio-blk: request failed: {e}");
                (e.status(), 0)
            }
        };
        if bufs.write_at(mem, status_at, &[status]).is_err() {
            // Cannot happen: the chain was checked to be inside guest memory.
            return 0;
        }
        // Data plus status; data is at most the writable stream, itself under 4 GiB.
        u32::try_from(data_len + 1).unwrap_or(u32::MAX)
    }

    /// Carries out a request whose status byte is at `status_at` in the writable stream.
    /// Returns how many data bytes were written to the guest.
    fn execute(
        &mut self,
        bufs: &Buffers,
        mem: &GuestMemoryMmap,
        status_at: u64,
    ) -> Result<u64, RequestError> {
        let readable = bufs.readable_len();
        if readable < HEADER_LEN {
            return Err(RequestError::ShortHeader(readable));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        bufs.read_at(mem, 0, &mut header)?;
        let [t0, t1, t2, t3, _, _, _, _, s @ ..] = header;
        let kind = u32::from_le_bytes([t0, t1, t2, t3]);
        let sector = u64::from_le_bytes(s);
        // Data lengths on each side of the request.
        let data_in = readable - HEADER_LEN;
        let data_out = status_at;
        match kind {
            VIRTIO_BLK_T_IN => {
                if data_in != 0 {
                    return Err(RequestError::UnexpectedReadable(kind));
                }
                let offset = self.check_range(sector, data_out)?;
                self.copy_to_guest(bufs, mem, offset, data_out)?;
                Ok(data_out)
            }
            VIRTIO_BLK_T_OUT => {
                if data_out != 0 {
                    return Err(RequestError::UnexpectedWritable(kind));
                }
                if self.read_only {
                    return Err(RequestError::ReadOnly);
                }
                let offset = self.check_range(sector, data_in)?;
                self.copy_from_guest(bufs, mem, offset, data_in)?;
                Ok(0)
            }
            VIRTIO_BLK_T_FLUSH => {
                if data_in != 0 {
                    return Err(RequestError::UnexpectedReadable(kind));
                }
                if data_out != 0 {
                    return Err(RequestError::UnexpectedWritable(kind));
                }
                self.file.sync_all()?;
                Ok(0)
            }
            VIRTIO_BLK_T_GET_ID => {
                if data_in != 0 {
                    return Err(RequestError::UnexpectedReadable(kind));
                }
                // At most ID_LEN, so the cast cannot truncate.
                let n = data_out.min(ID_LEN as u64) as usize;
                bufs.write_at(mem, 0, &self.id[..n])?;
                Ok(n as u64)
            }
            other => Err(RequestError::Unsupported(other)),
        }
    }

    /// Checks that `len` bytes from `sector` are whole sectors inside the disk; returns the
    /// byte offset in the image.
    fn check_range(&self, sector: u64, len: u64) -> Result<u64, RequestError> {
        if len % SECTOR_SIZE != 0 {
            return Err(RequestError::UnalignedLength(len));
        }
        let sectors = len / SECTOR_SIZE;
        match sector.checked_add(sectors) {
            Some(end) if end <= self.capacity => Ok(sector * SECTOR_SIZE),
            _ => Err(RequestError::OutOfRange {
                sector,
                len: sectors,
                capacity: self.capacity,
            }),
        }
    }

    /// Reads `len` bytes of the image at `offset` into the start of the writable stream.
    fn copy_to_guest(
        &mut self,
        bufs: &Buffers,
        mem: &GuestMemoryMmap,
        offset: u64,
        len: u64,
    ) -> Result<(), RequestError> {
        let mut done = 0;
        while done < len {
            // At most BOUNCE_LEN, so the cast cannot truncate.
            let n = (len - done).min(BOUNCE_LEN as u64) as usize;
            let chunk = &mut self.bounce[..n];
            self.file.read_exact_at(chunk, offset + done)?;
            bufs.write_at(mem, done, chunk)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Writes `len` bytes from the readable stream, after the header, to the image at `offset`.
    fn copy_from_guest(
        &mut self,
        bufs: &Buffers,
        mem: &GuestMemoryMmap,
        offset: u64,
        len: u64,
    ) -> Result<(), RequestError> {
        let mut done = 0;
        while done < len {
            // At most BOUNCE_LEN, so the cast cannot truncate.
            let n = (len - done).min(BOUNCE_LEN as u64) as usize;
            let chunk = &mut self.bounce[..n];
            bufs.read_at(mem, HEADER_LEN + done, chunk)?;
            self.file.write_all_at(chunk, offset + done)?;
            done += n as u64;
        }
        Ok(())
    }
}

impl VirtioDevice for VirtioBlk {
    fn device_type(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        let mut features =
            1 << VIRTIO_BLK_F_SEG_MAX | 1 << VIRTIO_BLK_F_BLK_SIZE | 1 << VIRTIO_BLK_F_FLUSH;
        if self.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let cfg = self.config();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| cfg.get(o))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `writeback` is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, not offered.
        warn!(
            "virtio-blk: {}-byte write to read-only config space at {offset:#x} ignored",
            data.len()
        );
    }

    // `activate` and `reset` keep the trait's defaults: nothing depends on the negotiated
    // features (FLUSH is always honoured, and a driver that did not accept RO still gets IOERR
    // for writes to a read-only disk), and no per-driver state is kept.

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
        drain_queue(queue, mem, dma, |chain| {
            let parsed = Buffers::parse(chain, mem);
            self.serve(parsed, mem)
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusDevice;
    use crate::virtio::mmio::{CONFIG, DEVICE_ID as DEVICE_ID_REG, INT_VRING, STATUS};
    use crate::virtio::testing::{warnings_during, Driver, DATA, QUEUE_SIZE};
    use crate::virtio::{RecordingDma, FEATURE_VERSION_1};
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use vm_memory::GuestAddress;
    use vmm_sys_util::tempfile::TempFile;

    const WRITE: u16 = VRING_DESC_F_WRITE as u16;
    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const OK: u8 = VIRTIO_BLK_S_OK as u8;
    const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
    const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

    // Guest addresses of a request's parts.
    const HEADER: u64 = DATA;
    const BUF: u64 = DATA + 0x1000;
    const STATUS_BYTE: u64 = DATA + 0x800;
    /// What the status byte holds before the device answers.
    const UNTOUCHED: u8 = 0xee;

    /// An 8-sector image whose sector `n` is filled with byte `n + 1`.
    fn image() -> TempFile {
        let file = TempFile::new().unwrap();
        let data: Vec<u8> = (0..8u8)
            .flat_map(|s| [s + 1; SECTOR_SIZE as usize])
            .collect();
        file.as_file().write_all_at(&data, 0).unwrap();
        file
    }

    fn file_bytes(file: &TempFile, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        file.as_file().read_exact_at(&mut v, offset).unwrap();
        v
    }

    struct Disk {
        d: Driver,
        file: TempFile,
    }

    fn disk(read_only: bool) -> Disk {
        let file = image();
        let blk = VirtioBlk::open(file.as_path(), read_only).unwrap();
        let mut d = Driver::new(Box::new(blk));
        d.init();
        Disk { d, file }
    }

    impl Disk {
        fn header(&self, kind: u32, sector: u64) {
            let mut h = [0u8; 16];
            h[..4].copy_from_slice(&kind.to_le_bytes());
            h[8..].copy_from_slice(&sector.to_le_bytes());
            self.d.mem.write_slice(&h, GuestAddress(HEADER)).unwrap();
            self.d
                .mem
                .write_obj(UNTOUCHED, GuestAddress(STATUS_BYTE))
                .unwrap();
        }

        fn status(&self) -> u8 {
            self.d.mem.read_obj(GuestAddress(STATUS_BYTE)).unwrap()
        }

        fn guest(&self, addr: u64, len: usize) -> Vec<u8> {
            let mut v = vec![0; len];
            self.d.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
            v
        }

        /// header, then `data` buffers, then the status byte; returns (used len, status).
        fn request(&mut self, kind: u32, sector: u64, data: &[(u64, u32, u16)]) -> (u32, u8) {
            self.header(kind, sector);
            let mut bufs = vec![(HEADER, 16, 0)];
            bufs.extend_from_slice(data);
            bufs.push((STATUS_BYTE, 1, WRITE));
            self.d.submit(0, &bufs);
            let used = self.d.take_used(0);
            assert_eq!(used.len(), 1, "one chain in, one chain out");
            assert_eq!(used[0].0, 0);
            (used[0].1, self.status())
        }

        /// Submits a raw chain, expecting one warning line (when it can be checked), and
        /// returns (used len, status byte).
        fn malformed(&mut self, descs: &[(u64, u32, u16, u16)]) -> (u32, u8) {
            let (used, lines) = warnings_during(|| {
                self.d.submit_raw(0, descs, 0);
                self.d.take_used(0)
            });
            assert_eq!(lines.len(), 1, "exactly one warning: {lines:?}");
            assert_eq!(used.len(), 1);
            assert_eq!(
                self.d.read(STATUS) & 64,
                0,
                "the device does not need a reset"
            );
            (used[0].1, self.status())
        }

        /// A good read still works.
        fn still_serves(&mut self) {
            let (len, status) = self.request(VIRTIO_BLK_T_IN, 2, &[(BUF, 512, WRITE)]);
            assert_eq!((len, status), (513, OK));
            assert_eq!(self.guest(BUF, 512), vec![3; 512]);
        }
    }

    fn config_u32(d: &mut Driver, offset: u64) -> u32 {
        d.read(CONFIG + offset)
    }

    #[test]
    fn is_a_block_device_reporting_its_capacity_and_features() {
        let Disk { mut d, .. } = disk(false);
        assert_eq!(d.read(DEVICE_ID_REG), 2);
        let features = d.device_features();
        let expected = FEATURE_VERSION_1
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH;
        assert_eq!(features, expected);
        assert_eq!(config_u32(&mut d, 0), 8, "capacity, low half");
        assert_eq!(config_u32(&mut d, 4), 0, "capacity, high half");
        assert_eq!(config_u32(&mut d, 0x0c), 254, "seg_max");
        assert_eq!(config_u32(&mut d, 0x14), 512, "blk_size");
        assert_eq!(config_u32(&mut d, 0x100), 0, "past the structure");
        let mut byte = [0u8; 1];
        d.transport.read(0, CONFIG, &mut byte);
        assert_eq!(byte, [8]);
    }

    #[test]
    fn a_read_only_disk_offers_ro() {
        let Disk { mut d, .. } = disk(true);
        assert_ne!(d.device_features() & 1 << VIRTIO_BLK_F_RO, 0);
    }

    #[test]
    fn capacity_rounds_a_partial_last_sector_down() {
        let file = TempFile::new().unwrap();
        file.as_file().set_len(3 * 512 + 100).unwrap();
        let blk = VirtioBlk::open(file.as_path(), true).unwrap();
        assert_eq!(blk.capacity(), 3);
    }

    #[test]
    fn opening_a_missing_image_fails() {
        let err = VirtioBlk::open(Path::new("/nonexistent/disk.img"), true).unwrap_err();
        assert!(matches!(err, BlkError::Open { .. }), "{err}");
    }

    #[test]
    fn reads_a_sector() {
        let mut disk = disk(false);
        let (len, status) = disk.request(VIRTIO_BLK_T_IN, 5, &[(BUF, 512, WRITE)]);
        assert_eq!((len, status), (513, OK));
        assert_eq!(disk.guest(BUF, 512), vec![6; 512]);
        assert_eq!(disk.d.ack_interrupt(), INT_VRING);
        assert!(!disk.d.irq.level());
    }

    #[test]
    fn a_read_reports_exactly_its_data_buffers_and_status_byte_once_written() {
        let mut disk = disk(false);
        let dma = RecordingDma::new(&disk.d.mem, disk.d.queues[0].used);
        disk.d.transport.set_dma_observer(dma.clone());
        let (len, status) = disk.request(
            VIRTIO_BLK_T_IN,
            5,
            &[(BUF, 300, WRITE), (BUF + 0x2000, 212, WRITE)],
        );
        assert_eq!((len, status), (513, OK));
        let reports = dma.take();
        let ranges: Vec<_> = reports.iter().map(|r| (r.gpa, r.len)).collect();
        assert_eq!(
            ranges,
            vec![(BUF, 300), (BUF + 0x2000, 212), (STATUS_BYTE, 1)],
            "the header is not reported"
        );
        assert_eq!(
            reports[0].bytes,
            vec![6; 300],
            "reported after the data landed"
        );
        assert_eq!(reports[1].bytes, vec![6; 212]);
        assert_eq!(reports[2].bytes, vec![OK], "and after the status");
        assert!(
            reports.iter().all(|r| r.used_idx == 0),
            "before the driver could see the request done"
        );
    }

    #[test]
    fn a_write_reports_only_its_status_byte() {
        let mut disk = disk(false);
        let dma = RecordingDma::new(&disk.d.mem, disk.d.queues[0].used);
        disk.d.transport.set_dma_observer(dma.clone());
        let (_, status) = disk.request(VIRTIO_BLK_T_OUT, 1, &[(BUF, 512, 0)]);
        assert_eq!(status, OK);
        assert_eq!(dma.take_ranges(), vec![(STATUS_BYTE, 1)]);
    }

    #[test]
    fn a_malformed_request_reports_the_buffer_its_status_went_to() {
        let mut disk = disk(false);
        let dma = RecordingDma::new(&disk.d.mem, disk.d.queues[0].used);
        disk.d.transport.set_dma_observer(dma.clone());
        // A readable buffer after a writable one; the answer goes to the last byte.
        let (len, status) = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (BUF, 512, WRITE | NEXT, 2),
            (BUF + 0x1000, 16, NEXT, 3),
            (STATUS_BYTE, 1, WRITE, 0),
        ]);
        assert_eq!((len, status), (1, IOERR));
        assert_eq!(dma.take_ranges(), vec![(BUF, 512), (STATUS_BYTE, 1)]);
    }

    #[test]
    fn reads_into_scattered_buffers_with_a_split_header() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 1);
        disk.d.submit(
            0,
            &[
                (HEADER, 10, 0),
                (HEADER + 10, 6, 0),
                (BUF, 700, WRITE),
                (BUF + 0x2000, 323, WRITE),
                (BUF + 0x3000, 2, WRITE), // last 512-byte sector's end, and the status byte
            ],
        );
        assert_eq!(disk.d.take_used(0), vec![(0, 1025)]);
        let status: u8 = disk.d.mem.read_obj(GuestAddress(BUF + 0x3001)).unwrap();
        assert_eq!(status, OK);
        assert_eq!(disk.guest(BUF, 512), vec![2; 512]);
        assert_eq!(disk.guest(BUF + 512, 188), vec![3; 188]);
        assert_eq!(disk.guest(BUF + 0x2000, 323), vec![3; 323]);
        assert_eq!(disk.guest(BUF + 0x3000, 1), vec![3]);
    }

    #[test]
    fn a_write_shows_up_in_the_file() {
        let mut disk = disk(false);
        disk.d
            .mem
            .write_slice(&[0xab; 1024], GuestAddress(BUF))
            .unwrap();
        let (len, status) = disk.request(VIRTIO_BLK_T_OUT, 6, &[(BUF, 1024, 0)]);
        assert_eq!((len, status), (1, OK));
        assert_eq!(file_bytes(&disk.file, 5 * 512, 512), vec![6; 512]);
        assert_eq!(file_bytes(&disk.file, 6 * 512, 1024), vec![0xab; 1024]);
    }

    #[test]
    fn large_transfers_go_through_the_bounce_buffer_in_pieces() {
        let file = TempFile::new().unwrap();
        file.as_file().set_len(512 * 512).unwrap();
        let blk = VirtioBlk::open(file.as_path(), false).unwrap();
        let mut d = Driver::new(Box::new(blk));
        d.init();
        let len = 3 * BOUNCE_LEN as u32 / 2;
        let pattern: Vec<u8> = (0..len).map(|i| (i / 512) as u8).collect();
        d.mem.write_slice(&pattern, GuestAddress(0x4_0000)).unwrap();
        let mut disk = Disk { d, file };
        let (_, status) = disk.request(VIRTIO_BLK_T_OUT, 10, &[(0x4_0000, len, 0)]);
        assert_eq!(status, OK);
        assert_eq!(file_bytes(&disk.file, 10 * 512, len as usize), pattern);
        let (used, status) = disk.request(VIRTIO_BLK_T_IN, 10, &[(0x8_0000, len, WRITE)]);
        assert_eq!((used, status), (len + 1, OK));
        assert_eq!(disk.guest(0x8_0000, len as usize), pattern);
    }

    #[test]
    fn flush_succeeds() {
        let mut disk = disk(false);
        assert_eq!(disk.request(VIRTIO_BLK_T_FLUSH, 0, &[]), (1, OK));
        let mut ro = self::disk(true);
        assert_eq!(ro.request(VIRTIO_BLK_T_FLUSH, 0, &[]), (1, OK));
    }

    #[test]
    fn get_id_returns_the_serial() {
        let mut disk = disk(false);
        disk.d
            .mem
            .write_slice(&[0xff; 20], GuestAddress(BUF))
            .unwrap();
        let (len, status) = disk.request(VIRTIO_BLK_T_GET_ID, 0, &[(BUF, 20, WRITE)]);
        assert_eq!((len, status), (21, OK));
        let name = disk
            .file
            .as_path()
            .file_name()
            .unwrap()
            .as_encoded_bytes()
            .to_vec();
        let mut expected = [0u8; 20];
        let n = name.len().min(20);
        expected[..n].copy_from_slice(&name[..n]);
        assert_eq!(disk.guest(BUF, 20), expected);
    }

    #[test]
    fn a_given_serial_is_zero_padded() {
        let file = image();
        let blk = VirtioBlk::open(file.as_path(), true)
            .unwrap()
            .with_id(b"tern-disk-0");
        let mut d = Driver::new(Box::new(blk));
        d.init();
        let mut disk = Disk { d, file };
        disk.d
            .mem
            .write_slice(&[0xff; 20], GuestAddress(BUF))
            .unwrap();
        assert_eq!(
            disk.request(VIRTIO_BLK_T_GET_ID, 0, &[(BUF, 20, WRITE)]),
            (21, OK)
        );
        assert_eq!(&disk.guest(BUF, 20), b"tern-disk-0\0\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn a_read_only_disk_rejects_writes() {
        let mut disk = disk(true);
        disk.d
            .mem
            .write_slice(&[0xab; 512], GuestAddress(BUF))
            .unwrap();
        let (len, status) = disk.request(VIRTIO_BLK_T_OUT, 0, &[(BUF, 512, 0)]);
        assert_eq!((len, status), (1, IOERR));
        assert_eq!(file_bytes(&disk.file, 0, 512), vec![1; 512]);
        disk.still_serves();
    }

    #[test]
    fn reads_and_writes_past_the_end_fail() {
        let mut disk = disk(false);
        for (sector, len) in [
            (8, 512),
            (7, 1024),
            (u64::MAX, 512),
            (u64::MAX / 512 + 1, 512),
        ] {
            let (used, status) = disk.request(VIRTIO_BLK_T_IN, sector, &[(BUF, len, WRITE)]);
            assert_eq!(
                (used, status),
                (1, IOERR),
                "read of {len} bytes at sector {sector}"
            );
            let (used, status) = disk.request(VIRTIO_BLK_T_OUT, sector, &[(BUF, len, 0)]);
            assert_eq!(
                (used, status),
                (1, IOERR),
                "write of {len} bytes at sector {sector}"
            );
        }
        assert_eq!(file_bytes(&disk.file, 7 * 512, 512), vec![8; 512]);
        assert_eq!(
            disk.request(VIRTIO_BLK_T_IN, 7, &[(BUF, 512, WRITE)]),
            (513, OK)
        );
    }

    #[test]
    fn data_that_is_not_whole_sectors_fails() {
        let mut disk = disk(false);
        assert_eq!(
            disk.request(VIRTIO_BLK_T_IN, 0, &[(BUF, 100, WRITE)]),
            (1, IOERR)
        );
        assert_eq!(
            disk.request(VIRTIO_BLK_T_OUT, 0, &[(BUF, 513, 0)]),
            (1, IOERR)
        );
        disk.still_serves();
    }

    #[test]
    fn unknown_request_types_are_unsupported() {
        let mut disk = disk(false);
        for kind in [2, 11, 13, 0x8000_0000] {
            assert_eq!(disk.request(kind, 0, &[]), (1, UNSUPP), "type {kind}");
        }
        disk.still_serves();
    }

    // Malformed chains: each fails on its own with one warning, and the next request works.

    #[test]
    fn malformed_data_buffer_outside_guest_memory() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (1 << 40, 512, WRITE | NEXT, 2),
            (STATUS_BYTE, 1, WRITE, 0),
        ]);
        assert_eq!(r, (1, IOERR));
        disk.still_serves();
    }

    #[test]
    fn malformed_header_outside_guest_memory() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let end = crate::virtio::testing::MEM_SIZE as u64;
        let r = disk.malformed(&[(end - 8, 16, NEXT, 1), (STATUS_BYTE, 1, WRITE, 0)]);
        assert_eq!(r, (1, IOERR));
        disk.still_serves();
    }

    #[test]
    fn malformed_status_outside_guest_memory_is_returned_empty() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (BUF, 512, WRITE | NEXT, 2),
            (1 << 40, 1, WRITE, 0),
        ]);
        assert_eq!(r, (0, UNTOUCHED));
        disk.still_serves();
    }

    #[test]
    fn malformed_read_into_device_readable_buffer() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        disk.d
            .mem
            .write_slice(&[0x55; 512], GuestAddress(BUF))
            .unwrap();
        let r = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (BUF, 512, NEXT, 2),
            (STATUS_BYTE, 1, WRITE, 0),
        ]);
        assert_eq!(r, (1, IOERR));
        assert_eq!(
            disk.guest(BUF, 512),
            vec![0x55; 512],
            "nothing written there"
        );
        disk.still_serves();
    }

    #[test]
    fn malformed_write_from_device_writable_buffer() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_OUT, 0);
        let r = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (BUF, 512, WRITE | NEXT, 2),
            (STATUS_BYTE, 1, WRITE, 0),
        ]);
        assert_eq!(r, (1, IOERR));
        assert_eq!(file_bytes(&disk.file, 0, 512), vec![1; 512]);
        disk.still_serves();
    }

    #[test]
    fn malformed_header_in_a_device_writable_buffer() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[(HEADER, 16, WRITE | NEXT, 1), (STATUS_BYTE, 1, WRITE, 0)]);
        assert_eq!(r, (1, IOERR));
        disk.still_serves();
    }

    #[test]
    fn malformed_short_header() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[
            (HEADER, 12, NEXT, 1),
            (BUF, 512, WRITE | NEXT, 2),
            (STATUS_BYTE, 1, WRITE, 0),
        ]);
        assert_eq!(r, (1, IOERR));
        disk.still_serves();
    }

    #[test]
    fn malformed_missing_status_byte() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(disk.malformed(&[(HEADER, 16, 0, 0)]), (0, UNTOUCHED));
        disk.header(VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            disk.malformed(&[(HEADER, 16, NEXT, 1), (BUF, 0, WRITE, 0)]),
            (0, UNTOUCHED),
            "an empty writable buffer holds no status byte"
        );
        disk.still_serves();
    }

    #[test]
    fn malformed_status_byte_in_a_device_readable_buffer() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (BUF, 512, WRITE | NEXT, 2),
            (STATUS_BYTE, 1, 0, 0),
        ]);
        assert_eq!(r, (0, UNTOUCHED));
        disk.still_serves();
    }

    #[test]
    fn malformed_loop() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[
            (HEADER, 16, NEXT, 1),
            (BUF, 512, WRITE | NEXT, 2),
            (STATUS_BYTE, 1, WRITE | NEXT, 1),
        ]);
        assert_eq!(r, (0, UNTOUCHED));
        disk.still_serves();
    }

    #[test]
    fn malformed_chain_longer_than_the_queue() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        // Every descriptor of the table in one chain, the last pointing back at the first:
        // the chain has more descriptors than the queue holds.
        let mut descs = vec![(HEADER, 16, NEXT, 1)];
        descs.extend((1..QUEUE_SIZE - 1).map(|i| (BUF, 0, WRITE | NEXT, i + 1)));
        descs.push((STATUS_BYTE, 1, WRITE | NEXT, 0));
        assert_eq!(descs.len(), QUEUE_SIZE as usize);
        let r = disk.malformed(&descs);
        assert_eq!(r, (0, UNTOUCHED));
        disk.still_serves();
    }

    #[test]
    fn malformed_next_index_outside_the_table() {
        let mut disk = disk(false);
        disk.header(VIRTIO_BLK_T_IN, 0);
        let r = disk.malformed(&[(HEADER, 16, NEXT, 1), (BUF, 512, WRITE | NEXT, 999)]);
        assert_eq!(r, (0, UNTOUCHED));
        disk.still_serves();
    }

    #[test]
    fn malformed_head_index_outside_the_queue_is_dropped() {
        let mut disk = disk(false);
        let (used, lines) = warnings_during(|| {
            disk.d.submit_raw(0, &[], QUEUE_SIZE + 3);
            disk.d.take_used(0)
        });
        assert_eq!(used, vec![]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        disk.still_serves();
    }

    #[test]
    fn state_round_trips() {
        let file = image();
        let blk = VirtioBlk::open(file.as_path(), true)
            .unwrap()
            .with_id(b"serial");
        let state = blk.state();
        assert_eq!(state.path, file.as_path());
        assert!(state.read_only);
        assert_eq!(&state.id[..7], b"serial\0");
        let restored = VirtioBlk::from_state(&state).unwrap();
        assert_eq!(restored.state(), state);
        assert_eq!(restored.capacity(), 8);
        assert_ne!(restored.features() & 1 << VIRTIO_BLK_F_RO, 0);
    }
}
