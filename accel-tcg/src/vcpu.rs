//! One vCPU of the TCG accelerator and its execution loop.
//!
//! The loop: act on `exit_request` (interrupts, stop requests) → find the next block (jump
//! cache, then the shared cache, else translate) → link the previous block's goto slot to it
//! when that exit was an unlinked `goto_tb` → run it → handle its exit (frontend `ExitTb`
//! reasons, guest exceptions restored to their instruction, self-modifying code restarts).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ir::abi::{ExitCode, ExitKind};
use ir::{Builder, MemOp};

use crate::cache::{BlockCode, BlockKey, TranslationBlock, CF_ONE_INSN};
use crate::engine::Engine;
use crate::guest::{Access, Action, CpuState, Guest};
use crate::jump_cache::JumpCache;
use crate::softmmu::{CodeFetch, Raised};
use crate::tlb::SoftTlb;
use crate::TcgError;

/// Per-vCPU counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VcpuStats {
    /// Times the loop ran a block (each entry into generated code or the interpreter).
    pub dispatches: u64,
    /// Direct links made from this vCPU.
    pub links: u64,
    /// Blocks invalidated by this vCPU's stores to code.
    pub invalidated_blocks: u64,
    /// Guest exceptions taken (including restarts).
    pub unwinds: u64,
    /// Calls of the lookup helper: indirect jumps whose inline jump-cache probe missed.
    pub lookup_calls: u64,
    /// Whole-TLB flushes asked by the frontend or the machine (through the vCPU or a helper).
    pub tlb_flushes: u64,
    /// Single-page TLB flushes asked by the frontend or the machine.
    pub tlb_page_flushes: u64,
    /// Flushes of every non-global TLB entry asked by the machine.
    pub tlb_non_global_flushes: u64,
}

/// The per-vCPU state that slow paths reach through `EnvHeader::opaque`.
pub(crate) struct Context<G: Guest> {
    pub engine: Arc<Engine<G>>,
    pub tlb: SoftTlb,
    pub jump_cache: JumpCache,
    /// What generated code's inline jump-cache probe reads (`EnvHeader::jump_probe`).
    pub jump_probe: ir::abi::JumpProbe,
    /// Set by a store that modified the block it ran in.
    pub restart: bool,
    pub stats: VcpuStats,
    /// How far this vCPU has applied the engine's code-page log to its TLB.
    pub code_pages_seen: usize,
}

/// Owns the CPU-state allocation, shared with [`ExitRequester`]s so they never outlive it.
struct CpuAlloc<C>(NonNull<C>);

// SAFETY: the allocation is a `C: Send`; other threads only touch its atomic `exit_request`.
unsafe impl<C: Send> Send for CpuAlloc<C> {}
// SAFETY: as above: shared access from other threads is limited to the atomic field.
unsafe impl<C: Send> Sync for CpuAlloc<C> {}

impl<C> Drop for CpuAlloc<C> {
    fn drop(&mut self) {
        // SAFETY: leaked from a Box in `Vcpu::new`; this is the last owner.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Asks a vCPU, from any thread, to leave generated code at the next block entry and call its
/// frontend's `on_exit_request` (to take an interrupt, or to stop).
#[derive(Clone)]
pub struct ExitRequester {
    flag: NonNull<AtomicU32>,
    _cpu: Arc<dyn Send + Sync>,
}

// SAFETY: `flag` points into the CPU-state allocation kept alive by `_cpu`, and is only used
// through atomic operations.
unsafe impl Send for ExitRequester {}
// SAFETY: as above.
unsafe impl Sync for ExitRequester {}

impl ExitRequester {
    /// Requests the exit.
    pub fn request(&self) {
        // SAFETY: the header (and so `exit_request`, its first field) lives as long as `_cpu`;
        // the vCPU thread accesses this field only atomically as well.
        unsafe { self.flag.as_ref() }.store(1, Ordering::Release);
    }
}

/// A vCPU: its CPU state and the engine state that is private to it.
pub struct Vcpu<G: Guest> {
    alloc: Arc<CpuAlloc<G::Cpu>>,
    // Both are Box allocations turned into raw pointers: generated code and slow paths reach
    // them through the CPU-state pointer while `run` is on the stack, so no Rust reference to
    // them may be held across a call into generated code.
    cpu: NonNull<G::Cpu>,
    ctx: NonNull<Context<G>>,
    engine: Arc<Engine<G>>,
    builder: Builder,
    interp: ir::interp::Interpreter,
    next_cflags: u32,
}

// SAFETY: the raw pointers are owned allocations used only by the thread that owns the Vcpu
// (G::Cpu is Send; Context holds an Arc of a Send + Sync engine and plain data).
unsafe impl<G: Guest> Send for Vcpu<G> {}

impl<G: Guest> Vcpu<G> {
    /// A vCPU running `cpu` on `engine`.
    pub fn new(engine: Arc<Engine<G>>, cpu: Box<G::Cpu>) -> Vcpu<G> {
        let ctx = Box::new(Context {
            engine: engine.clone(),
            tlb: SoftTlb::new(),
            jump_cache: JumpCache::new(),
            jump_probe: ir::abi::JumpProbe {
                slots: ir::abi::NO_JUMP_CACHE.as_ptr(),
                epoch: std::ptr::null(),
                block_flags: 0,
            },
            restart: false,
            code_pages_seen: 0,
            stats: VcpuStats::default(),
        });
        let ctx = NonNull::from(Box::leak(ctx));
        let cpu = NonNull::from(Box::leak(cpu));
        let alloc = Arc::new(CpuAlloc(cpu));
        let builder = Builder::new(engine.guest.globals(), engine.guest.addr_type());
        let mut vcpu = Vcpu {
            alloc,
            cpu,
            ctx,
            engine,
            builder,
            interp: ir::interp::Interpreter::new(),
            next_cflags: 0,
        };
        vcpu.install_header();
        vcpu
    }

    fn install_header(&mut self) {
        let ctx_ptr = self.ctx.as_ptr();
        let (cpu, ctx) = self.parts_mut();
        let h = cpu.header_mut();
        h.load_slow = load_slow::<G>;
        h.store_slow = store_slow::<G>;
        h.lookup = lookup::<G>;
        h.opaque = ctx_ptr.cast();
        h.unwind = 0;
        ctx.jump_probe.slots = ctx.jump_cache.slots();
        ctx.jump_probe.epoch = ctx.engine.cache.epoch_ptr();
        h.jump_probe = &ctx.jump_probe;
        ctx.tlb.install(h);
    }

    /// A handle other threads use to make this vCPU leave generated code.
    pub fn exit_requester(&self) -> ExitRequester {
        let flag = self.cpu.cast::<AtomicU32>();
        ExitRequester {
            flag,
            _cpu: self.alloc.clone(),
        }
    }

    /// The CPU state.
    pub fn cpu(&self) -> &G::Cpu {
        // SAFETY: owned allocation; `&self` excludes `run`.
        unsafe { self.cpu.as_ref() }
    }

    /// The CPU state, mutably.
    pub fn cpu_mut(&mut self) -> &mut G::Cpu {
        // SAFETY: owned allocation; `&mut self` excludes every other access.
        unsafe { self.cpu.as_mut() }
    }

    /// The CPU state and the context at once (they are separate allocations).
    fn parts_mut(&mut self) -> (&mut G::Cpu, &mut Context<G>) {
        // SAFETY: owned allocation; `&mut self` excludes other accesses, and callers drop the
        // reference before running guest code.
        let cpu = unsafe { &mut *self.cpu.as_ptr() };
        // SAFETY: as above, a separate allocation from `cpu`.
        let ctx = unsafe { &mut *self.ctx.as_ptr() };
        (cpu, ctx)
    }

    fn ctx(&mut self) -> &mut Context<G> {
        // SAFETY: owned allocation; callers drop the reference before running guest code.
        unsafe { self.ctx.as_mut() }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine<G>> {
        &self.engine
    }

    /// This vCPU's counters.
    pub fn stats(&self) -> VcpuStats {
        // SAFETY: owned allocation; `&self` excludes `run`.
        unsafe { self.ctx.as_ref() }.stats
    }

    /// Forgets every TLB entry (and the jump cache, whose entries assumed the old mappings).
    pub fn flush_tlb(&mut self) {
        self.ctx().flush_tlb();
    }

    /// Forgets every TLB entry that is not global, and the jump-cache entries reached
    /// through them (an x86 CR3 load: kernel mappings marked global stay).
    pub fn flush_tlb_non_global(&mut self) {
        self.ctx().flush_tlb_non_global();
    }

    /// Forgets the TLB entries of the page of `vaddr`.
    pub fn flush_tlb_page(&mut self, vaddr: u64) {
        self.ctx().flush_tlb_page(vaddr);
    }

    /// Runs guest code until the frontend returns an [`Action::Return`] code.
    pub fn run(&mut self) -> Result<u32, TcgError> {
        // The block and slot of the last unlinked goto_tb exit, and the code-buffer flush count
        // then: after a flush, block ids are reused and that block is gone.
        let mut link_from: Option<(u32, u8, u64)> = None;
        loop {
            if self.cpu().header().exit_request.load(Ordering::Acquire) != 0 {
                self.cpu().header().exit_request.store(0, Ordering::Release);
                link_from = None;
                let engine = self.engine.clone();
                if let Action::Return(code) = engine.guest.on_exit_request(self.cpu_mut()) {
                    return Ok(code);
                }
            }
            self.watch_new_code_pages();
            let tb = match self.find_block()? {
                Some(tb) => tb,
                None => {
                    // Fetching the first instruction faulted; the exception is recorded.
                    link_from = None;
                    if let Action::Return(code) = self.take_exception() {
                        return Ok(code);
                    }
                    continue;
                }
            };
            if let Some((from, slot, flushes)) =
                link_from.take().filter(|_| self.engine.config.chain)
            {
                if flushes == self.engine.stats.flushes.load(Ordering::Acquire) {
                    self.try_link(from, slot, &tb);
                }
            }
            let exit = self.execute(&tb);
            self.ctx().stats.dispatches += 1;
            let Some(exit) = ExitCode::decode(exit) else {
                return Err(TcgError::BadExitCode(exit));
            };
            match exit.kind {
                ExitKind::GotoTb0 | ExitKind::GotoTb1 => {
                    let slot = (exit.kind == ExitKind::GotoTb1) as u8;
                    link_from = Some((
                        exit.block_id,
                        slot,
                        self.engine.stats.flushes.load(Ordering::Acquire),
                    ));
                }
                ExitKind::Lookup | ExitKind::ExitRequested => {}
                ExitKind::Exit => {
                    let engine = self.engine.clone();
                    if let Action::Return(code) = engine.guest.on_exit(self.cpu_mut(), exit.payload)
                    {
                        return Ok(code);
                    }
                }
                ExitKind::Unwind => {
                    if let Action::Return(code) = self.unwind(exit.block_id)? {
                        return Ok(code);
                    }
                }
            }
        }
    }

    /// Write-watches, in this vCPU's TLB, the pages that other vCPUs made code since the last
    /// call (or flushes the TLB when the log moved on too far).
    fn watch_new_code_pages(&mut self) {
        let engine = self.engine.clone();
        let end = engine.code_pages_end.load(Ordering::Acquire);
        let ctx = self.ctx();
        if end == ctx.code_pages_seen {
            return;
        }
        let log = engine.code_pages.lock().unwrap();
        if ctx.code_pages_seen < log.base {
            ctx.tlb.flush();
            ctx.jump_cache.clear();
        } else {
            for &page in &log.pages[ctx.code_pages_seen - log.base..] {
                ctx.tlb.watch_phys_page(page);
            }
        }
        ctx.code_pages_seen = log.end();
    }

    /// Restores the state to the faulting instruction of block `block_id`, then takes the
    /// exception or arranges the restart of a self-modifying store.
    fn unwind(&mut self, block_id: u32) -> Result<Action, TcgError> {
        self.ctx().stats.unwinds += 1;
        let index = {
            let h = self.cpu_mut().header_mut();
            h.unwind = 0;
            h.insn_index as usize
        };
        let tb = self
            .engine
            .cache
            .get(block_id)
            .ok_or(TcgError::UnknownBlock(block_id))?;
        let &(pc, extra) = tb
            .insn_starts
            .get(index)
            .ok_or(TcgError::UnknownBlock(block_id))?;
        let engine = self.engine.clone();
        engine.guest.restore_state(self.cpu_mut(), pc, extra);
        if std::mem::take(&mut self.ctx().restart) {
            self.next_cflags = CF_ONE_INSN;
            return Ok(Action::Continue);
        }
        Ok(self.take_exception())
    }

    fn take_exception(&mut self) -> Action {
        let engine = self.engine.clone();
        engine.guest.on_exception(self.cpu_mut())
    }

    fn try_link(&mut self, from: u32, slot: u8, to: &Arc<TranslationBlock>) {
        let Some(src) = self.engine.cache.get(from) else {
            return;
        };
        let jit = self.engine.jit.lock().unwrap();
        let Some(backend) = jit.as_ref() else { return };
        if self
            .engine
            .cache
            .link(backend, &src, slot, to, self.engine.config.system)
        {
            drop(jit);
            self.ctx().stats.links += 1;
        }
    }

    /// The block at the current pc, translated if needed; `None` when fetching its first
    /// instruction raised.
    fn find_block(&mut self) -> Result<Option<Arc<TranslationBlock>>, TcgError> {
        let engine = self.engine.clone();
        let (pc, flags) = engine.guest.block_key(self.cpu());
        let cflags = std::mem::take(&mut self.next_cflags);
        // Read before the block's validity is checked: a later invalidation moves it on.
        let epoch = engine.cache.epoch();
        if let Some(tb) = self.ctx().jump_cache.get_stamped(pc, flags, cflags, epoch) {
            return Ok(Some(tb));
        }
        let mmu_idx = engine.guest.code_mmu_idx(flags);
        let (cpu, ctx) = self.parts_mut();
        let hit = match ctx.lookup_or_walk(cpu, pc, Access::Execute, mmu_idx) {
            Ok(hit) => hit,
            Err(fault) => {
                engine.guest.raise(cpu, fault, pc, Access::Execute);
                return Ok(None);
            }
        };
        let key = BlockKey {
            pc,
            phys_pc: hit.phys_page | (pc & !ir::abi::PAGE_MASK),
            flags,
            cflags,
        };
        let tb = match engine.cache.lookup(&key) {
            Some(tb) => tb,
            None => match self.translate(key, mmu_idx)? {
                Some(tb) => tb,
                None => return Ok(None),
            },
        };
        self.ctx()
            .jump_cache
            .insert_mapped(tb.clone(), epoch, hit.global && !tb.spans_pages());
        Ok(Some(tb))
    }

    fn translate(
        &mut self,
        key: BlockKey,
        mmu_idx: u8,
    ) -> Result<Option<Arc<TranslationBlock>>, TcgError> {
        let engine = self.engine.clone();
        let started = std::time::Instant::now();
        let max_insns = if key.cflags & CF_ONE_INSN != 0 {
            1
        } else {
            engine.config.max_insns
        };
        // SAFETY: owned allocation; no generated code runs during this call and no other
        // reference to it is live.
        let cpu = unsafe { &mut *self.cpu.as_ptr() };
        // SAFETY: as above, a separate allocation.
        let ctx = unsafe { &mut *self.ctx.as_ptr() };
        let mut fetch = CodeFetch {
            ctx,
            cpu,
            mmu_idx,
            ranges: Vec::with_capacity(2),
        };
        if let Err(fault) =
            engine
                .guest
                .translate(key.pc, key.flags, &mut fetch, &mut self.builder, max_insns)
        {
            self.builder.finish();
            engine
                .guest
                .raise(fetch.cpu, fault, key.pc, Access::Execute);
            return Ok(None);
        }
        let mut block = self.builder.finish();
        let logging = engine.config.log.wants(key.pc);
        if logging && engine.config.log.in_asm {
            crate::log_block::in_asm(&engine.guest, key.pc, &block.insn_starts(), &mut fetch);
        }
        if logging && engine.config.log.op {
            crate::log_block::ops("OP", key.pc, &block);
        }
        let ranges = fetch.ranges;
        if cfg!(debug_assertions) {
            if let Err(e) = ir::verify::verify(&block) {
                return Err(TcgError::InvalidBlock {
                    pc: key.pc,
                    error: e.to_string(),
                });
            }
        }
        if engine.config.optimize {
            ir::opt::optimize(&mut block);
        }
        if logging && engine.config.log.op_opt {
            crate::log_block::ops("OP after optimization", key.pc, &block);
        }
        let insn_starts = block.insn_starts().into_boxed_slice();
        engine.stats.translations.fetch_add(1, Ordering::Relaxed);
        engine
            .stats
            .ops
            .fetch_add(block.ops.len() as u64, Ordering::Relaxed);
        engine
            .stats
            .guest_insns
            .fetch_add(insn_starts.len() as u64, Ordering::Relaxed);

        let mut jit = engine.jit.lock().unwrap();
        let (id, code) = match jit.as_mut() {
            None => (engine.cache.next_id(), BlockCode::Interp(block)),
            Some(backend) => {
                let id = engine.cache.next_id();
                match backend.compile(&block, id) {
                    Ok(code) => (id, BlockCode::Jit(code)),
                    Err(backend_x86_64::BackendError::BufferFull) => {
                        engine.flush_locked(&mut jit);
                        let backend = jit.as_mut().expect("JIT mode has a backend");
                        let id = engine.cache.next_id();
                        (id, BlockCode::Jit(backend.compile(&block, id)?))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let (true, Some(backend), BlockCode::Jit(compiled)) =
            (logging && engine.config.log.out_asm, jit.as_ref(), &code)
        {
            crate::log_block::out_asm(key.pc, compiled.entry, backend.code(compiled));
        }
        let (tb, new_pages) =
            engine
                .cache
                .insert(TranslationBlock::new(id, key, ranges, insn_starts, code));
        drop(jit);
        engine.stats.translate_nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let ctx = self.ctx();
        for &page in &new_pages {
            ctx.tlb.watch_phys_page(page);
        }
        if !new_pages.is_empty() {
            let end = engine.code_pages.lock().unwrap().push(&new_pages);
            engine.code_pages_end.store(end, Ordering::Release);
        }
        Ok(Some(tb))
    }

    fn execute(&mut self, tb: &TranslationBlock) -> u64 {
        // The flags of every block reached from here through links and inline lookups (see
        // `ir::abi`, "Indirect jumps").
        self.ctx().jump_probe.block_flags = u64::from(tb.key.flags);
        let env = self.cpu.as_ptr().cast::<u8>();
        match &tb.code {
            BlockCode::Jit(code) => {
                let entry = self
                    .engine
                    .entry
                    .as_ref()
                    .expect("JIT mode has an entry trampoline");
                // SAFETY: env is this vCPU's CPU state (repr(C), EnvHeader first, per the
                // CpuState contract) with its header installed; the block was compiled by
                // this engine's backend since the last flush (flushes happen only on this
                // thread, between blocks, and invalidate `tb` for the next lookup). No Rust
                // reference to the state or the context is live.
                unsafe { entry.enter(env, code.entry) }
            }
            BlockCode::Interp(block) => {
                let mut mem = SlowPathMemory::<G>(std::marker::PhantomData);
                // SAFETY: as above; the interpreter's memory goes through the same slow paths.
                unsafe { self.interp.run(block, env, &mut mem, tb.id) }.encode()
            }
        }
    }
}

impl<G: Guest> Drop for Vcpu<G> {
    fn drop(&mut self) {
        // SAFETY: leaked from a Box in `new` and not referenced elsewhere. The CPU state is
        // freed by the last owner of `alloc`.
        unsafe { drop(Box::from_raw(self.ctx.as_ptr())) };
    }
}

/// The interpreter's guest memory: the same slow paths as generated code.
struct SlowPathMemory<G>(std::marker::PhantomData<G>);

impl<G: Guest> ir::interp::GuestMemory for SlowPathMemory<G> {
    unsafe fn load(
        &mut self,
        env: *mut u8,
        addr: u64,
        mop: MemOp,
        mmu_idx: u8,
        block_id: u32,
    ) -> Result<u64, ir::interp::Raised> {
        // SAFETY: env is the vCPU's state, as for generated code.
        let (cpu, ctx) = unsafe { parts::<G>(env as u64) };
        ctx.load(
            cpu,
            addr,
            MemOp {
                signed: false,
                ..mop
            },
            mmu_idx,
        )
        .map_err(|Raised| ir::interp::Raised)
        .inspect(|_| {
            let _ = block_id;
        })
    }

    unsafe fn store(
        &mut self,
        env: *mut u8,
        addr: u64,
        val: u64,
        mop: MemOp,
        mmu_idx: u8,
        block_id: u32,
    ) -> Result<(), ir::interp::Raised> {
        // SAFETY: env is the vCPU's state, as for generated code.
        let (cpu, ctx) = unsafe { parts::<G>(env as u64) };
        ctx.store(cpu, addr, val, mop, mmu_idx, block_id)
            .map_err(|Raised| ir::interp::Raised)
    }
}

/// The CPU state and the vCPU context behind a CPU-state pointer.
///
/// # Safety
/// `env` is the CPU state of a live [`Vcpu<G>`] whose `run` is executing generated code or the
/// interpreter (so no Rust reference to either object is live).
unsafe fn parts<'a, G: Guest>(env: u64) -> (&'a mut G::Cpu, &'a mut Context<G>) {
    // SAFETY: per the function contract.
    let cpu = unsafe { &mut *(env as *mut G::Cpu) };
    let ctx = cpu.header().opaque.cast::<Context<G>>();
    // SAFETY: `opaque` was set by `install_header` to the vCPU's context allocation.
    (cpu, unsafe { &mut *ctx })
}

/// `EnvHeader::load_slow` for guest `G`.
unsafe extern "C" fn load_slow<G: Guest>(env: u64, addr: u64, _val: u64, info: u64) -> u64 {
    let (mop, mmu_idx, _, _) = ir::abi::decode_slow_path_info(info);
    // SAFETY: called by generated code of a running vCPU with its CPU-state pointer.
    let (cpu, ctx) = unsafe { parts::<G>(env) };
    match ctx.load(cpu, addr, mop, mmu_idx) {
        Ok(v) => v,
        Err(Raised) => {
            cpu.header_mut().unwind = 1;
            0
        }
    }
}

/// `EnvHeader::store_slow` for guest `G`.
unsafe extern "C" fn store_slow<G: Guest>(env: u64, addr: u64, val: u64, info: u64) -> u64 {
    let (mop, mmu_idx, _, block_id) = ir::abi::decode_slow_path_info(info);
    // SAFETY: called by generated code of a running vCPU with its CPU-state pointer.
    let (cpu, ctx) = unsafe { parts::<G>(env) };
    if ctx.store(cpu, addr, val, mop, mmu_idx, block_id).is_err() {
        cpu.header_mut().unwind = 1;
    }
    0
}

/// `EnvHeader::lookup` for guest `G`: the jump cache; on a miss the shared cache through the
/// TLB's code entry (no page walk, no translation); else back to the loop.
unsafe extern "C" fn lookup<G: Guest>(env: u64) -> u64 {
    // SAFETY: called by generated code of a running vCPU with its CPU-state pointer.
    let (cpu, ctx) = unsafe { parts::<G>(env) };
    ctx.stats.lookup_calls += 1;
    let (pc, flags) = ctx.engine.guest.block_key(cpu);
    match ctx.jump_cache.code(pc, flags, 0, ctx.engine.cache.epoch()) {
        Some(code) => code as u64,
        // A tail call, so the hit path above saves no registers.
        None => ctx.lookup_miss(pc, flags) as u64,
    }
}

impl<G: Guest> Context<G> {
    /// Forgets every TLB entry, and the jump cache, whose entries assumed the old mappings.
    fn flush_tlb(&mut self) {
        self.stats.tlb_flushes += 1;
        self.tlb.flush();
        self.jump_cache.clear();
    }

    /// Forgets the TLB and jump-cache entries of non-global mappings.
    fn flush_tlb_non_global(&mut self) {
        self.stats.tlb_non_global_flushes += 1;
        self.tlb.flush_non_global();
        self.jump_cache.clear_non_global();
    }

    /// Forgets the TLB and jump-cache entries of the page of `vaddr`.
    fn flush_tlb_page(&mut self, vaddr: u64) {
        self.stats.tlb_page_flushes += 1;
        self.tlb.flush_page(vaddr);
        self.jump_cache.clear_page(vaddr);
    }

    /// The jump-cache miss of the `lookup` helper: the cached block if it is still valid (the
    /// epoch moved since it was stamped), else [`Context::lookup_shared`]'s block, else the
    /// backend's "return to the loop" address.
    #[inline(never)]
    fn lookup_miss(&mut self, pc: u64, flags: u32) -> usize {
        let epoch = self.engine.cache.epoch();
        self.jump_cache
            .code_revalidated(pc, flags, 0, epoch)
            .or_else(|| self.lookup_shared(pc, flags))
            .unwrap_or(self.engine.lookup_miss)
    }

    /// The jump-cache miss of the `lookup` helper: a compiled block for `pc` from the shared
    /// cache, found without leaving generated code when the pc's page is in the TLB. Anything
    /// harder (a TLB miss, a block still to translate) is left to the loop.
    fn lookup_shared(&mut self, pc: u64, flags: u32) -> Option<usize> {
        let mmu_idx = self.engine.guest.code_mmu_idx(flags);
        let hit = self.tlb.lookup(mmu_idx, pc, Access::Execute)?;
        let key = BlockKey {
            pc,
            phys_pc: hit.phys_page | (pc & !ir::abi::PAGE_MASK),
            flags,
            cflags: 0,
        };
        let epoch = self.engine.cache.epoch();
        let tb = self.engine.cache.lookup(&key)?;
        let code = tb.entry()?;
        let global = hit.global && !tb.spans_pages();
        self.jump_cache.insert_mapped(tb, epoch, global);
        Some(code)
    }
}

/// For frontend helpers that change address translation (satp or CR3 writes, `sfence.vma`
/// without an address): forgets every TLB entry of the vCPU whose CPU state is `env`.
///
/// # Safety
/// `env` is the CPU-state pointer a helper received from a block of a [`Vcpu<G>`].
pub unsafe fn helper_flush_tlb<G: Guest>(env: u64) {
    // SAFETY: per the function contract, as for the slow paths.
    let (_, ctx) = unsafe { parts::<G>(env) };
    ctx.flush_tlb();
}

/// For frontend helpers that load a new address space whose global mappings stay (a riscv
/// satp write within one translation mode, `sfence.vma x0, asid`): forgets the TLB entries
/// and jump-cache entries of non-global mappings, as [`Vcpu::flush_tlb_non_global`].
///
/// # Safety
/// As for [`helper_flush_tlb`].
pub unsafe fn helper_flush_tlb_non_global<G: Guest>(env: u64) {
    // SAFETY: per the function contract, as for the slow paths.
    let (_, ctx) = unsafe { parts::<G>(env) };
    ctx.flush_tlb_non_global();
}

/// For frontend helpers that reach guest RAM in bulk (x86 `rep movs`/`rep stos`): the host
/// address of `[vaddr, vaddr + len)`, which must lie within one guest page, for a load or a
/// store (`write`) in MMU mode `mmu_idx`, filling the TLB as an access would; null when the
/// range is not plain RAM for that access (a device, a store to a page holding translated
/// code, which must invalidate it) or the access would fault (nothing is raised: the caller
/// leaves it to a real access).
///
/// # Safety
/// As for [`helper_flush_tlb`]; the pointer is valid for `len` bytes until the helper
/// returns to generated code.
pub unsafe fn helper_host_range<G: Guest>(
    env: u64,
    vaddr: u64,
    len: u64,
    write: bool,
    mmu_idx: u8,
) -> *mut u8 {
    let offset = vaddr & !ir::abi::PAGE_MASK;
    if len == 0 || offset + len > ir::abi::PAGE_SIZE {
        return std::ptr::null_mut();
    }
    // SAFETY: per the function contract, as for the slow paths.
    let (cpu, ctx) = unsafe { parts::<G>(env) };
    let access = if write { Access::Write } else { Access::Read };
    match ctx.lookup_or_walk(cpu, vaddr, access, mmu_idx) {
        Ok(hit) if !(write && hit.watched) => hit.host_page.map_or(std::ptr::null_mut(), |p| {
            p.as_ptr().wrapping_add(offset as usize)
        }),
        _ => std::ptr::null_mut(),
    }
}

/// For frontend helpers that change one page's translation (`sfence.vma addr`, `invlpg`).
///
/// # Safety
/// As for [`helper_flush_tlb`].
pub unsafe fn helper_flush_tlb_page<G: Guest>(env: u64, vaddr: u64) {
    // SAFETY: per the function contract, as for the slow paths.
    let (_, ctx) = unsafe { parts::<G>(env) };
    ctx.flush_tlb_page(vaddr);
}
