//! Guest memory accesses that the inline fast path does not handle: TLB misses (filled through
//! the frontend's page walk), device pages, pages holding translated code, misaligned and
//! page-crossing accesses; and code fetch for the translator.

use ir::abi::{PAGE_MASK, PAGE_SIZE};
use ir::MemOp;

use crate::cache::CF_ONE_INSN;
use crate::guest::{Access, CodeReader, CpuState, Guest, MemFault};
use crate::tlb::TlbHit;
use crate::vcpu::Context;

/// The access raised a guest exception, which is recorded in the CPU state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised;

impl<G: Guest> Context<G> {
    /// The TLB entry for `vaddr`, walking the guest page tables on a miss. Records nothing.
    pub(crate) fn lookup_or_walk(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        access: Access,
        mmu_idx: u8,
    ) -> Result<TlbHit, MemFault> {
        if let Some(hit) = self.tlb.lookup(mmu_idx, vaddr, access) {
            return Ok(hit);
        }
        self.refill(cpu, vaddr, access, mmu_idx)
    }

    /// The miss path of [`Context::lookup_or_walk`]: walk, fill, look up again.
    #[inline(never)]
    fn refill(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        access: Access,
        mmu_idx: u8,
    ) -> Result<TlbHit, MemFault> {
        // Borrowed beside `self.tlb`, not cloned: no reference-count traffic per refill.
        let engine = &*self.engine;
        let mapping = engine.guest.page_walk(cpu, vaddr, access, mmu_idx)?;
        let phys_page = mapping.phys_page & PAGE_MASK;
        let host = engine.memory.ram_page(phys_page);
        let watched = host.is_some() && engine.cache.is_code_page(phys_page);
        self.tlb.fill_mapping(
            mmu_idx,
            vaddr,
            phys_page,
            mapping.prot,
            host,
            watched,
            mapping.global,
        );
        // A walk that grants less than was asked is a frontend bug; treat it as a fault.
        self.tlb
            .lookup(mmu_idx, vaddr, access)
            .ok_or(MemFault::Page(u64::MAX))
    }

    /// Like [`Context::lookup_or_walk`], recording the guest exception on a fault.
    fn translate(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        access: Access,
        mmu_idx: u8,
    ) -> Result<TlbHit, Raised> {
        self.lookup_or_walk(cpu, vaddr, access, mmu_idx)
            .map_err(|fault| {
                self.engine.guest.raise(cpu, fault, vaddr, access);
                Raised
            })
    }

    /// Splits `[vaddr, vaddr + len)` at the page boundary: `(first part length, second start)`.
    fn split(&self, vaddr: u64, len: u64) -> Option<(u64, u64)> {
        let in_page = PAGE_SIZE - (vaddr & !PAGE_MASK);
        (len > in_page).then(|| (in_page, vaddr.wrapping_add(in_page) & self.engine.addr_mask))
    }

    fn check_alignment(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        mop: MemOp,
        access: Access,
    ) -> Result<(), Raised> {
        if mop.aligned && vaddr & (mop.size.bytes() as u64 - 1) != 0 {
            self.engine
                .guest
                .raise(cpu, MemFault::Misaligned, vaddr, access);
            return Err(Raised);
        }
        Ok(())
    }

    /// A guest load of `mop` at `vaddr` in MMU mode `mmu_idx`.
    pub(crate) fn load(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        mop: MemOp,
        mmu_idx: u8,
    ) -> Result<u64, Raised> {
        let vaddr = vaddr & self.engine.addr_mask;
        self.check_alignment(cpu, vaddr, mop, Access::Read)?;
        let len = mop.size.bytes() as u64;
        let mut buf = [0u8; 8];
        match self.split(vaddr, len) {
            None => self.read_in_page(cpu, vaddr, &mut buf[..len as usize], mmu_idx)?,
            Some((first, second)) => {
                // Both pages are translated before either is read, so a fault on the second
                // leaves no device side effects behind.
                self.translate(cpu, vaddr, Access::Read, mmu_idx)?;
                self.translate(cpu, second, Access::Read, mmu_idx)?;
                self.read_in_page(cpu, vaddr, &mut buf[..first as usize], mmu_idx)?;
                self.read_in_page(cpu, second, &mut buf[first as usize..len as usize], mmu_idx)?;
            }
        }
        Ok(mop.extend(u64::from_le_bytes(buf)))
    }

    fn read_in_page(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        buf: &mut [u8],
        mmu_idx: u8,
    ) -> Result<(), Raised> {
        let hit = self.translate(cpu, vaddr, Access::Read, mmu_idx)?;
        let offset = vaddr & !PAGE_MASK;
        match hit.host_page {
            Some(page) => crate::host_mem::read(page, offset as usize, buf),
            None => {
                if !self.engine.memory.mmio_read(hit.phys_page + offset, buf) {
                    self.engine
                        .guest
                        .raise(cpu, MemFault::Bus, vaddr, Access::Read);
                    return Err(Raised);
                }
            }
        }
        Ok(())
    }

    /// A guest store of the low bytes of `val` at `vaddr`. `block_id` is the running block:
    /// when the store modifies that block's own code, the store is not done, `restart` is set
    /// and the access reports `Raised`, so the engine re-runs the instruction on its own.
    pub(crate) fn store(
        &mut self,
        cpu: &mut G::Cpu,
        vaddr: u64,
        val: u64,
        mop: MemOp,
        mmu_idx: u8,
        block_id: u32,
    ) -> Result<(), Raised> {
        let vaddr = vaddr & self.engine.addr_mask;
        self.check_alignment(cpu, vaddr, mop, Access::Write)?;
        let len = mop.size.bytes() as u64;
        let bytes = val.to_le_bytes();
        let pieces = match self.split(vaddr, len) {
            None => [(vaddr, 0, len), (0, 0, 0)],
            Some((first, second)) => [(vaddr, 0, first), (second, first, len)],
        };
        // Translate every page first: a store that faults on its second page writes nothing.
        let mut hits = [None, None];
        for (hit, &(addr, from, to)) in hits.iter_mut().zip(&pieces) {
            if to > from {
                *hit = Some(self.translate(cpu, addr, Access::Write, mmu_idx)?);
            }
        }
        for (hit, &(addr, from, to)) in hits.iter().zip(&pieces) {
            let Some(hit) = hit else { continue };
            if hit.watched {
                let start = hit.phys_page | (addr & !PAGE_MASK);
                if self.invalidate_code(start, start + (to - from), block_id) {
                    self.restart = true;
                    cpu.header_mut().unwind = 1;
                    return Err(Raised);
                }
                if !self.engine.cache.is_code_page(hit.phys_page) {
                    // No code left on the page: let stores take the fast path again.
                    self.tlb.flush_page(addr);
                }
            }
        }
        for (hit, &(addr, from, to)) in hits.iter().zip(&pieces) {
            let Some(hit) = hit else { continue };
            let offset = addr & !PAGE_MASK;
            let data = &bytes[from as usize..to as usize];
            match hit.host_page {
                Some(page) => crate::host_mem::write(page, offset as usize, data),
                None => {
                    if !self.engine.memory.mmio_write(hit.phys_page + offset, data) {
                        self.engine
                            .guest
                            .raise(cpu, MemFault::Bus, addr, Access::Write);
                        return Err(Raised);
                    }
                }
            }
        }
        Ok(())
    }

    /// Invalidates the blocks on `[start, end)`; true when `running` is one of them and must
    /// not go on (a single-instruction block finishes its own instruction).
    fn invalidate_code(&mut self, start: u64, end: u64, running: u32) -> bool {
        let engine = self.engine.clone();
        let jit = engine.jit.lock().unwrap();
        let linker = jit.as_ref().map(|b| b as &dyn crate::cache::Linker);
        let victims = engine.cache.invalidate_range(linker, start, end);
        drop(jit);
        if victims.is_empty() {
            return false;
        }
        self.stats.invalidated_blocks += victims.len() as u64;
        log::debug!(
            "store to {start:#x}..{end:#x} invalidated {} blocks",
            victims.len()
        );
        victims.contains(&running)
            && engine
                .cache
                .get(running)
                .is_some_and(|tb| tb.key.cflags & CF_ONE_INSN == 0)
    }
}

/// Reads guest code for the translator, recording the physical ranges it came from.
pub(crate) struct CodeFetch<'a, G: Guest> {
    pub ctx: &'a mut Context<G>,
    pub cpu: &'a mut G::Cpu,
    pub mmu_idx: u8,
    /// Physical `[start, end)` ranges read, one per page.
    pub ranges: Vec<(u64, u64)>,
}

impl<G: Guest> CodeReader for CodeFetch<'_, G> {
    fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = vaddr.wrapping_add(done as u64) & self.ctx.engine.addr_mask;
            let offset = addr & !PAGE_MASK;
            let n = ((PAGE_SIZE - offset) as usize).min(buf.len() - done);
            let hit = self
                .ctx
                .lookup_or_walk(self.cpu, addr, Access::Execute, self.mmu_idx)?;
            let page = hit.host_page.ok_or(MemFault::Bus)?;
            crate::host_mem::read(page, offset as usize, &mut buf[done..done + n]);
            let (start, end) = (hit.phys_page | offset, (hit.phys_page | offset) + n as u64);
            match self
                .ranges
                .iter_mut()
                .find(|r| r.0 & PAGE_MASK == hit.phys_page)
            {
                Some(r) => {
                    r.0 = r.0.min(start);
                    r.1 = r.1.max(end);
                }
                None => self.ranges.push((start, end)),
            }
            done += n;
        }
        Ok(())
    }
}
