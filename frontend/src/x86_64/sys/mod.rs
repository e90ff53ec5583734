//! The x86_64 system architecture (Intel SDM volume 3) as pure functions over a
//! [`SystemState`] and a small physical-memory trait, for the whole-machine JIT (issue 8).
//!
//! Nothing here is wired into the translator yet: the translator and the machine will call
//! [`mmu::translate`] from the softmmu's TLB-miss path, [`interrupt::deliver`] when an
//! exception or interrupt is taken, [`interrupt::iretq`], [`interrupt::syscall`],
//! [`interrupt::sysret`] and [`interrupt::swapgs`] from helpers, [`seg`] for segment loads
//! and [`SystemState::rdmsr`]/[`SystemState::wrmsr`] for `rdmsr`/`wrmsr`.
//!
//! **Memory.** Every function reaches guest memory through [`PhysMem`]. Linear addresses go
//! through [`mmu`] first ([`Linear`] does both). Physical addresses that are not RAM read as
//! all ones (an open bus) and ignore writes: a page-table entry read from a hole then has
//! reserved bits set and faults with RSVD, which is what a real machine without memory there
//! would do, and needs no extra error path.
//!
//! **Modes.** 64-bit long mode completely; protected mode as far as segment loads and paging
//! (paging off, 32-bit two-level paging with PSE, PAE paging) go. Not implemented
//! (documented gaps): 5-level paging (CR4.LA57 is refused by [`cr::write_cr4`]), event
//! delivery and iret outside IA-32e mode, call gates, task gates and task switches,
//! virtual-8086 mode, protection keys, MTRRs.
//!
//! **Also the translator's job.** Flushing cached translations when [`cr`] says so, on
//! `invlpg`, and on `wrmsr` EFER (NXE changes rights); RF in the RFLAGS image of faults;
//! advertising in CPUID what these functions honour (see [`mmu`]).

pub mod cr;
pub mod interrupt;
pub mod mmu;
pub mod msr;
pub mod seg;

#[cfg(test)]
mod testmem;

pub use interrupt::{Event, EventKind, Regs};
pub use mmu::{AccessKind, Paging, Translation};
pub use msr::Msrs;
pub use seg::{Segment, SegmentCache};

/// Physical memory as the system architecture sees it.
pub trait PhysMem {
    /// Reads `buf.len()` bytes at `paddr`; `false` when the address is not RAM (or not a
    /// device that answers).
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool;
    /// Writes `data` at `paddr`; `false` when nothing is there.
    fn write(&mut self, paddr: u64, data: &[u8]) -> bool;

    /// A little-endian u64 at `paddr`; all ones where there is no memory (open bus).
    fn read_u64(&self, paddr: u64) -> u64 {
        let mut b = [0u8; 8];
        if self.read(paddr, &mut b) {
            u64::from_le_bytes(b)
        } else {
            u64::MAX
        }
    }

    /// Writes a little-endian u64 at `paddr`; writes to holes are dropped.
    fn write_u64(&mut self, paddr: u64, value: u64) {
        if !self.write(paddr, &value.to_le_bytes()) {
            log::debug!("x86 sys: write to non-RAM physical address {paddr:#x} dropped");
        }
    }
}

// --- Exception vectors (SDM vol. 3 table 6-1).
/// #DE divide error.
pub const DE: u8 = 0;
/// #DB debug.
pub const DB: u8 = 1;
/// NMI.
pub const NMI: u8 = 2;
/// #BP breakpoint (int3).
pub const BP: u8 = 3;
/// #OF overflow (into).
pub const OF: u8 = 4;
/// #UD invalid opcode.
pub const UD: u8 = 6;
/// #DF double fault.
pub const DF: u8 = 8;
/// #TS invalid TSS.
pub const TS: u8 = 10;
/// #NP segment not present.
pub const NP: u8 = 11;
/// #SS stack-segment fault.
pub const SS: u8 = 12;
/// #GP general protection.
pub const GP: u8 = 13;
/// #PF page fault.
pub const PF: u8 = 14;

/// An architectural exception raised by a system operation: the vector, its error code (for
/// the vectors that push one) and, for #PF, the faulting linear address for CR2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("x86 exception {vector} (error code {error_code:?}, cr2 {cr2:?})")]
pub struct Exception {
    /// The vector.
    pub vector: u8,
    /// The error code, for #DF, #TS, #NP, #SS, #GP, #PF, #AC.
    pub error_code: Option<u32>,
    /// The faulting linear address (#PF only).
    pub cr2: Option<u64>,
}

impl Exception {
    /// #GP with `code`.
    pub fn gp(code: u32) -> Exception {
        Exception {
            vector: GP,
            error_code: Some(code),
            cr2: None,
        }
    }

    /// #SS with `code`.
    pub fn ss(code: u32) -> Exception {
        Exception {
            vector: SS,
            error_code: Some(code),
            cr2: None,
        }
    }

    /// #NP with `code`.
    pub fn np(code: u32) -> Exception {
        Exception {
            vector: NP,
            error_code: Some(code),
            cr2: None,
        }
    }

    /// #TS with `code`.
    pub fn ts(code: u32) -> Exception {
        Exception {
            vector: TS,
            error_code: Some(code),
            cr2: None,
        }
    }

    /// #UD.
    pub fn ud() -> Exception {
        Exception {
            vector: UD,
            error_code: None,
            cr2: None,
        }
    }

    /// #PF at `addr` with error `code`.
    pub fn pf(code: u32, addr: u64) -> Exception {
        Exception {
            vector: PF,
            error_code: Some(code),
            cr2: Some(addr),
        }
    }
}

/// Whether `addr` is canonical for 48-bit linear addresses (bits 63:47 all equal).
pub fn is_canonical(addr: u64) -> bool {
    ((addr << 16) as i64 >> 16) as u64 == addr
}

/// A descriptor-table register (GDTR, IDTR): base and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableReg {
    /// Linear base address.
    pub base: u64,
    /// Limit (last valid byte offset).
    pub limit: u16,
}

/// The system state of one x86_64 CPU that user-mode code never sees: control registers,
/// segment registers with their hidden parts, descriptor-table registers, CPL and the MSR
/// file. [`crate::x86_64::X86Cpu`] embeds it when the translator is wired up; until then it
/// stands alone so the user-mode code is untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemState {
    /// CR0.
    pub cr0: u64,
    /// CR2: the last page-fault linear address.
    pub cr2: u64,
    /// CR3: the top paging structure (and the PCID in bits 11:0 with CR4.PCIDE).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8: the task-priority register (bits 3:0).
    pub cr8: u64,
    /// ES, CS, SS, DS, FS, GS, indexed by [`Segment`].
    pub segs: [SegmentCache; 6],
    /// The GDT register.
    pub gdtr: TableReg,
    /// The IDT register.
    pub idtr: TableReg,
    /// The LDT register (selector and its loaded descriptor).
    pub ldtr: SegmentCache,
    /// The task register (selector and its loaded 64-bit TSS descriptor).
    pub tr: SegmentCache,
    /// The current privilege level (0..=3), equal to CS.RPL in protected mode.
    pub cpl: u8,
    /// The model-specific registers (EFER among them).
    pub msrs: Msrs,
}

impl Default for SystemState {
    fn default() -> Self {
        SystemState::reset()
    }
}

impl SystemState {
    /// The state after RESET (SDM vol. 3 table 10-1), with the segments flat 16-bit and
    /// paging and protection off. A PVH or 64-bit loader overwrites it wholesale.
    pub fn reset() -> SystemState {
        let flat = SegmentCache {
            selector: 0,
            base: 0,
            limit: 0xffff,
            // Present, S, read/write data, accessed.
            attr: seg::ATTR_P | seg::ATTR_S | 0x3,
        };
        let mut cs = flat;
        cs.selector = 0xf000;
        cs.base = 0xffff_0000;
        cs.attr = seg::ATTR_P | seg::ATTR_S | 0xb;
        SystemState {
            cr0: cr::CR0_ET | cr::CR0_CD | cr::CR0_NW,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            segs: [flat, cs, flat, flat, flat, flat],
            gdtr: TableReg {
                base: 0,
                limit: 0xffff,
            },
            idtr: TableReg {
                base: 0,
                limit: 0xffff,
            },
            ldtr: SegmentCache {
                attr: seg::ATTR_P | 0x2,
                ..SegmentCache::default()
            },
            tr: SegmentCache {
                limit: 0xffff,
                attr: seg::ATTR_P | 0xb,
                ..SegmentCache::default()
            },
            cpl: 0,
            msrs: Msrs::default(),
        }
    }

    /// The segment register `s`.
    pub fn seg(&self, s: Segment) -> &SegmentCache {
        &self.segs[s as usize]
    }

    /// The segment register `s`, mutably.
    pub fn seg_mut(&mut self, s: Segment) -> &mut SegmentCache {
        &mut self.segs[s as usize]
    }

    /// IA-32e mode is active (EFER.LMA).
    pub fn long_mode(&self) -> bool {
        self.msrs.efer & msr::EFER_LMA != 0
    }

    /// 64-bit mode: IA-32e mode with a CS whose L bit is set.
    pub fn in_64bit_mode(&self) -> bool {
        self.long_mode() && self.seg(Segment::Cs).attr & seg::ATTR_L != 0
    }

    /// The paging inputs of an access at the current CPL with `ac` = RFLAGS.AC.
    pub fn paging(&self, ac: bool) -> Paging {
        Paging {
            cr0: self.cr0,
            cr3: self.cr3,
            cr4: self.cr4,
            efer: self.msrs.efer,
            ac,
            cpl: self.cpl,
        }
    }
}

/// Linear-address access for system operations: page walks through [`mmu::translate`] then
/// physical accesses, split at page boundaries. Faults come back as [`Exception`]s (with
/// CR2 for #PF; the caller writes CR2 when it delivers the fault).
pub struct Linear<'a, M: PhysMem + ?Sized> {
    /// The paging inputs (CR0, CR3, CR4, EFER, AC, CPL).
    pub paging: Paging,
    /// Physical memory.
    pub mem: &'a mut M,
}

impl<'a, M: PhysMem + ?Sized> Linear<'a, M> {
    /// Linear access with `paging` over `mem`.
    pub fn new(paging: Paging, mem: &'a mut M) -> Self {
        Linear { paging, mem }
    }

    /// The physical address of each byte run of `[addr, addr + len)`, checked for `kind`.
    /// `implicit` marks implicit supervisor accesses (descriptor tables, the TSS); `stack`
    /// selects #SS instead of #GP for non-canonical addresses.
    fn pieces(
        &mut self,
        addr: u64,
        len: usize,
        kind: AccessKind,
        implicit: bool,
        stack: bool,
    ) -> Result<Vec<(u64, usize)>, Exception> {
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < len {
            let a = addr.wrapping_add(done as u64);
            let room = (0x1000 - (a & 0xfff)) as usize;
            let n = room.min(len - done);
            let t = mmu::translate(&self.paging, &mut *self.mem, a, kind, implicit)
                .map_err(|e| e.exception(stack))?;
            out.push((t.paddr, n));
            done += n;
        }
        Ok(out)
    }

    /// Reads `buf.len()` bytes at linear `addr`.
    pub fn read(
        &mut self,
        addr: u64,
        buf: &mut [u8],
        implicit: bool,
        stack: bool,
    ) -> Result<(), Exception> {
        let pieces = self.pieces(addr, buf.len(), AccessKind::Read, implicit, stack)?;
        let mut off = 0;
        for (pa, n) in pieces {
            if !self.mem.read(pa, &mut buf[off..off + n]) {
                buf[off..off + n].fill(0xff);
            }
            off += n;
        }
        Ok(())
    }

    /// Reads a u64 at linear `addr`.
    pub fn read_u64(&mut self, addr: u64, implicit: bool, stack: bool) -> Result<u64, Exception> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b, implicit, stack)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Checks that `[addr, addr + len)` may be written and returns where each run goes; the
    /// caller commits with [`Linear::commit`] once every check of an operation has passed.
    /// The walks of the runs before a faulting one may already have set their accessed and
    /// dirty flags (the SDM does not order the accesses of one instruction).
    pub fn prepare_write(
        &mut self,
        addr: u64,
        len: usize,
        implicit: bool,
        stack: bool,
    ) -> Result<Vec<(u64, usize)>, Exception> {
        self.pieces(addr, len, AccessKind::Write, implicit, stack)
    }

    /// Writes `data` to the runs [`Linear::prepare_write`] returned.
    pub fn commit(&mut self, pieces: &[(u64, usize)], data: &[u8]) {
        let mut off = 0;
        for &(pa, n) in pieces {
            if !self.mem.write(pa, &data[off..off + n]) {
                log::debug!("x86 sys: write to non-RAM physical address {pa:#x} dropped");
            }
            off += n;
        }
    }

    /// Writes `data` at linear `addr`.
    pub fn write(
        &mut self,
        addr: u64,
        data: &[u8],
        implicit: bool,
        stack: bool,
    ) -> Result<(), Exception> {
        let pieces = self.prepare_write(addr, data.len(), implicit, stack)?;
        self.commit(&pieces, data);
        Ok(())
    }
}

impl SystemState {
    /// The state to save (the system state is plain data).
    pub fn state(&self) -> SystemState {
        self.clone()
    }

    /// Rebuilds the system state from saved state.
    pub fn from_state(state: &SystemState) -> SystemState {
        state.clone()
    }
}
