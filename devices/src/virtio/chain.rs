//! Checking a descriptor chain the driver made available, and copying through its buffers.
//!
//! virtio-queue's `DescriptorChain` iterator already refuses to follow a chain forever: it
//! yields at most "queue size" descriptors (so loops and over-long chains end), stops at a
//! `next` index outside the table, at a descriptor it cannot read, at a nested or misaligned
//! indirect table, and once the chain's buffers add up to more than 4 GiB. But it ends in all
//! those cases exactly as it ends at a well-formed last descriptor: silently. It also never
//! looks at the buffers' addresses. [`Buffers::parse`] adds what is missing:
//!
//! * a chain that stopped while its last descriptor still had VIRTQ_DESC_F_NEXT set was cut
//!   short by one of the cases above, and is rejected as unterminated;
//! * every buffer must lie entirely inside guest memory;
//! * device-readable buffers must all come before device-writable ones (spec 2.7.4.2).
//!
//! A parsed chain is then a pair of byte streams, the readable one and the writable one, so
//! devices need not care how the driver split a request into descriptors (VIRTIO_F_VERSION_1
//! implies VIRTIO_F_ANY_LAYOUT: no framing may be assumed).

use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryError, GuestMemoryMmap, Permissions};

/// Why a descriptor chain was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not even the head descriptor could be read (index or table outside memory).
    #[error("descriptor chain is empty: its head cannot be read")]
    Empty,
    /// The chain did not end: a loop, more descriptors than the queue holds, a `next` index
    /// outside the table, an unreadable descriptor or a bad indirect table.
    #[error("descriptor chain does not end after {0} descriptors (loop, over-long chain, bad next index or bad indirect table)")]
    Unterminated(usize),
    /// A buffer is not entirely inside guest memory.
    #[error("descriptor buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutsideMemory {
        /// Guest physical address of the buffer.
        addr: u64,
        /// Its length in bytes.
        len: u32,
    },
    /// A device-readable buffer follows a device-writable one.
    #[error("device-readable descriptor after a device-writable one")]
    ReadableAfterWritable,
}

/// A chain that was refused, with what is left to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFault {
    /// Why it was refused.
    pub error: ChainError,
    /// The last byte of the chain when the chain did end in a device-writable buffer inside
    /// guest memory: where a device with a trailing status byte (virtio-blk) can still report
    /// the failure. `None` when there is nowhere safe to write.
    pub last_writable_byte: Option<GuestAddress>,
}

/// One guest buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

/// A checked descriptor chain: its device-readable and device-writable buffers, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buffers {
    readable: Vec<Segment>,
    writable: Vec<Segment>,
}

impl Buffers {
    /// Walks `chain`, whose buffers are in `mem`, and checks it (see the module documentation).
    pub fn parse(
        chain: DescriptorChain<&GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
    ) -> Result<Self, ChainFault> {
        let mut buffers = Buffers::default();
        let mut count = 0usize;
        let mut last = None;
        let mut first_error = None;
        for desc in chain {
            count += 1;
            last = Some(desc);
            let seg = Segment {
                addr: desc.addr(),
                len: desc.len(),
            };
            let access = if desc.is_write_only() {
                Permissions::Write
            } else {
                Permissions::Read
            };
            if seg.len > 0 && !mem.check_range(seg.addr, seg.len as usize, access) {
                first_error.get_or_insert(ChainError::OutsideMemory {
                    addr: seg.addr.0,
                    len: seg.len,
                });
            }
            if desc.is_write_only() {
                buffers.writable.push(seg);
            } else {
                if !buffers.writable.is_empty() {
                    first_error.get_or_insert(ChainError::ReadableAfterWritable);
                }
                buffers.readable.push(seg);
            }
        }
        let Some(last) = last else {
            return Err(ChainFault {
                error: ChainError::Empty,
                last_writable_byte: None,
            });
        };
        if last.has_next() {
            return Err(ChainFault {
                error: ChainError::Unterminated(count),
                last_writable_byte: None,
            });
        }
        match first_error {
            None => Ok(buffers),
            Some(error) => {
                let last_writable_byte = (last.is_write_only() && last.len() > 0)
                    .then(|| last.addr().0.checked_add(u64::from(last.len()) - 1))
                    .flatten()
                    .map(GuestAddress)
                    .filter(|&byte| mem.check_range(byte, 1, Permissions::Write));
                Err(ChainFault {
                    error,
                    last_writable_byte,
                })
            }
        }
    }

    /// Total length of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Total length of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Copies `buf.len()` bytes from offset `offset` of the readable stream.
    pub fn read_at(
        &self,
        mem: &GuestMemoryMmap,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), GuestMemoryError> {
        for_each_piece(&self.readable, offset, buf.len(), |addr, range| {
            mem.read_slice(&mut buf[range], addr)
        })
    }

    /// Copies `buf` to offset `offset` of the writable stream.
    pub fn write_at(
        &self,
        mem: &GuestMemoryMmap,
        offset: u64,
        buf: &[u8],
    ) -> Result<(), GuestMemoryError> {
        for_each_piece(&self.writable, offset, buf.len(), |addr, range| {
            mem.write_slice(&buf[range], addr)
        })
    }
}

/// Maps `[offset, offset + len)` of the stream made of `segments` to guest addresses and calls
/// `f(address, range_in_caller_buffer)` for each piece. A range past the end of the stream is
/// an error, never a partial copy.
fn for_each_piece<F>(
    segments: &[Segment],
    offset: u64,
    len: usize,
    mut f: F,
) -> Result<(), GuestMemoryError>
where
    F: FnMut(GuestAddress, std::ops::Range<usize>) -> Result<(), GuestMemoryError>,
{
    let mut skip = offset;
    let mut done = 0usize;
    for seg in segments {
        if done == len {
            break;
        }
        let seg_len = u64::from(seg.len);
        if skip >= seg_len {
            skip -= seg_len;
            continue;
        }
        // Both fit in usize: `seg_len - skip` is at most u32::MAX and is compared with a usize.
        let n = ((seg_len - skip) as usize).min(len - done);
        let addr = seg
            .addr
            .0
            .checked_add(skip)
            .map(GuestAddress)
            .ok_or(GuestMemoryError::GuestAddressOverflow)?;
        f(addr, done..done + n)?;
        done += n;
        skip = 0;
    }
    if done == len {
        Ok(())
    } else {
        Err(GuestMemoryError::PartialBuffer {
            expected: len,
            completed: done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{new_guest_memory, RawQueue};
    use virtio_bindings::virtio_ring::{
        VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
    };
    use virtio_queue::{QueueOwnedT, QueueT};

    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const WRITE: u16 = VRING_DESC_F_WRITE as u16;
    const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

    /// Makes `descs` (addr, len, flags, next) available as one chain starting at 0 and parses it.
    fn parse(descs: &[(u64, u32, u16, u16)]) -> Result<Buffers, ChainFault> {
        let mem = new_guest_memory();
        let raw = RawQueue::new(0x1000, 8);
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
            raw.write_desc(&mem, i as u16, addr, len, flags, next);
        }
        raw.push_avail(&mem, 0);
        let mut queue = raw.queue(&mem);
        let chain = queue.iter(&mem).unwrap().next().unwrap();
        assert_eq!(queue.next_avail(), 1);
        Buffers::parse(chain, &mem)
    }

    #[test]
    fn splits_a_chain_into_readable_and_writable_streams() {
        let b = parse(&[
            (0x8000, 16, NEXT, 1),
            (0x9000, 100, NEXT | WRITE, 2),
            (0xa000, 1, WRITE, 0),
        ])
        .unwrap();
        assert_eq!(b.readable_len(), 16);
        assert_eq!(b.writable_len(), 101);
    }

    #[test]
    fn streams_cross_descriptor_boundaries() {
        let mem = new_guest_memory();
        let b = Buffers {
            readable: vec![],
            writable: vec![
                Segment {
                    addr: GuestAddress(0x8000),
                    len: 3,
                },
                Segment {
                    addr: GuestAddress(0x9000),
                    len: 3,
                },
            ],
        };
        b.write_at(&mem, 1, &[1, 2, 3, 4, 5]).unwrap();
        let mut out = [0u8; 3];
        mem.read_slice(&mut out, GuestAddress(0x8000)).unwrap();
        assert_eq!(out, [0, 1, 2]);
        mem.read_slice(&mut out, GuestAddress(0x9000)).unwrap();
        assert_eq!(out, [3, 4, 5]);
        assert!(
            b.write_at(&mem, 2, &[0; 5]).is_err(),
            "past the end of the stream"
        );
    }

    #[test]
    fn a_loop_is_unterminated() {
        let err = parse(&[(0x8000, 16, NEXT, 1), (0x9000, 16, NEXT, 0)]).unwrap_err();
        assert_eq!(err.error, ChainError::Unterminated(8));
        assert_eq!(err.last_writable_byte, None);
    }

    #[test]
    fn a_chain_longer_than_the_queue_is_unterminated() {
        let descs: Vec<_> = (0..8).map(|i| (0x8000, 1, NEXT, i + 1)).collect();
        // Descriptor 7 points at 8, outside a table of 8: the iterator stops there.
        assert_eq!(
            parse(&descs).unwrap_err().error,
            ChainError::Unterminated(8)
        );
    }

    #[test]
    fn indirect_tables_are_followed_but_a_misaligned_one_is_unterminated() {
        // The indirect table at 0x7000 holds zeros: one descriptor of length 0, no flags: fine.
        let ok = parse(&[(0x8000, 16, NEXT, 1), (0x7000, 16, INDIRECT, 0)]).unwrap();
        assert_eq!(ok.readable_len(), 16);
        let err = parse(&[(0x8000, 16, NEXT, 1), (0x7000, 15, INDIRECT, 0)]).unwrap_err();
        assert_eq!(
            err.error,
            ChainError::Unterminated(1),
            "misaligned table length"
        );
    }

    #[test]
    fn buffers_outside_memory_are_refused_but_the_status_byte_is_found() {
        let err = parse(&[
            (0x8000, 16, NEXT, 1),
            (0xffff_0000, 512, NEXT | WRITE, 2),
            (0xa000, 1, WRITE, 0),
        ])
        .unwrap_err();
        assert_eq!(
            err.error,
            ChainError::OutsideMemory {
                addr: 0xffff_0000,
                len: 512
            }
        );
        assert_eq!(err.last_writable_byte, Some(GuestAddress(0xa000)));
        // A buffer straddling the end of memory is outside too.
        let end = crate::virtio::testing::MEM_SIZE as u64;
        let err = parse(&[(end - 4, 8, 0, 0)]).unwrap_err();
        assert!(matches!(err.error, ChainError::OutsideMemory { .. }));
        assert_eq!(err.last_writable_byte, None);
    }

    #[test]
    fn readable_after_writable_is_refused() {
        let err = parse(&[(0x8000, 1, NEXT | WRITE, 1), (0x9000, 16, 0, 0)]).unwrap_err();
        assert_eq!(err.error, ChainError::ReadableAfterWritable);
        assert_eq!(err.last_writable_byte, None);
    }

    #[test]
    fn an_unreadable_head_is_empty() {
        let mem = new_guest_memory();
        // A descriptor table at the very end of memory: entry 1 is past it.
        let last = crate::virtio::testing::MEM_SIZE as u64;
        let raw = RawQueue::at(last - 16, 0x2000, 0x3000, 2);
        raw.write_desc(&mem, 0, 0x8000, 1, 0, 0);
        raw.push_avail(&mem, 1);
        let mut queue = raw.queue(&mem);
        let chain = queue.iter(&mem).unwrap().next().unwrap();
        assert_eq!(
            Buffers::parse(chain, &mem).unwrap_err().error,
            ChainError::Empty
        );
    }
}
