//! What all vCPUs of one guest share: the frontend, guest memory, the block cache and the
//! backend with its code buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use backend_x86_64::{Backend, BackendConfig, HostFeatures};

use crate::cache::BlockCache;
use crate::guest::Guest;
use crate::memory::PhysMemory;
use crate::TcgError;

/// How blocks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    /// Compiled to host code by the x86_64 backend.
    Jit,
    /// Run by the IR reference interpreter (any host; also a cross-check of the JIT).
    Interpreter,
}

/// What to log about each translated block (QEMU's `-d in_asm,op,op_opt,out_asm`), as `info`
/// records with target `tern::log`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// The guest instructions (through the frontend's disassembler).
    pub in_asm: bool,
    /// The IR as translated.
    pub op: bool,
    /// The IR after optimization.
    pub op_opt: bool,
    /// The host code.
    pub out_asm: bool,
    /// Only blocks starting in `[start, end)`.
    pub range: Option<(u64, u64)>,
}

impl LogConfig {
    /// Whether anything is logged for a block at `pc`.
    pub fn wants(&self, pc: u64) -> bool {
        (self.in_asm || self.op || self.op_opt || self.out_asm)
            && self.range.is_none_or(|(s, e)| (s..e).contains(&pc))
    }

    /// Parses QEMU-style `-d` items: `in_asm,op,op_opt,out_asm`.
    pub fn parse(items: &str) -> Result<LogConfig, String> {
        let mut log = LogConfig::default();
        for item in items.split(',').filter(|s| !s.is_empty()) {
            match item {
                "in_asm" => log.in_asm = true,
                "op" => log.op = true,
                "op_opt" => log.op_opt = true,
                "out_asm" => log.out_asm = true,
                other => {
                    return Err(format!(
                        "unknown log item {other:?} (in_asm, op, op_opt, out_asm)"
                    ))
                }
            }
        }
        Ok(log)
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// JIT or interpreter.
    pub mode: ExecMode,
    /// Bytes of host code buffer (JIT).
    pub code_size: usize,
    /// Most guest instructions per block.
    pub max_insns: u32,
    /// System emulation: no direct links across guest pages (their mappings may change).
    pub system: bool,
    /// Run the IR optimizer on each block.
    pub optimize: bool,
    /// Link blocks directly to each other (off only to measure what chaining buys).
    pub chain: bool,
    /// Per-block logs.
    pub log: LogConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: ExecMode::Jit,
            code_size: 64 << 20,
            max_insns: 256,
            system: true,
            optimize: true,
            chain: true,
            log: LogConfig::default(),
        }
    }
}

/// Counters shared by all vCPUs.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Blocks translated.
    pub translations: AtomicU64,
    /// IR ops compiled or prepared for the interpreter.
    pub ops: AtomicU64,
    /// Guest instructions in the translated blocks.
    pub guest_insns: AtomicU64,
    /// Wall time spent translating, from fetching the first instruction to the block being
    /// in the cache (decode, IR, optimizer, backend), in nanoseconds.
    pub translate_nanos: AtomicU64,
    /// Code-buffer flushes.
    pub flushes: AtomicU64,
}

/// The shared part of the TCG accelerator.
pub struct Engine<G: Guest> {
    pub(crate) guest: G,
    pub(crate) memory: Arc<dyn PhysMemory>,
    pub(crate) cache: BlockCache,
    /// The backend (JIT mode): compiles, links and flushes under this lock. The same lock
    /// serialises translation in interpreter mode, so block ids stay in order.
    pub(crate) jit: Mutex<Option<Backend>>,
    pub(crate) entry: Option<backend_x86_64::Trampoline>,
    pub(crate) lookup_miss: usize,
    pub(crate) config: EngineConfig,
    pub(crate) addr_mask: u64,
    pub(crate) stats: EngineStats,
    /// Pages that became code, for the other vCPUs' TLBs (see [`CodePageLog`]).
    pub(crate) code_pages: std::sync::Mutex<CodePageLog>,
    /// [`CodePageLog::end`], readable without the lock.
    pub(crate) code_pages_end: std::sync::atomic::AtomicUsize,
}

/// Physical pages that gained their first translated block, in order. The vCPU that
/// translated a block write-watches the page in its own TLB at once; every other vCPU must do
/// the same before it runs guest code again, or a store through one of its older TLB entries
/// would change the code without invalidating it. Each vCPU remembers how far it has read.
#[derive(Debug, Default)]
pub(crate) struct CodePageLog {
    /// Absolute index of `pages[0]`.
    pub base: usize,
    /// Pages from `base` on.
    pub pages: Vec<u64>,
}

impl CodePageLog {
    /// Entries kept before the log is dropped and readers flush their whole TLB instead.
    const LIMIT: usize = 4096;

    /// Absolute index one past the last page.
    pub fn end(&self) -> usize {
        self.base + self.pages.len()
    }

    /// Appends pages; returns the new end.
    pub fn push(&mut self, pages: &[u64]) -> usize {
        if self.pages.len() + pages.len() > Self::LIMIT {
            self.base = self.end();
            self.pages.clear();
        }
        self.pages.extend_from_slice(pages);
        self.end()
    }
}

impl<G: Guest> Engine<G> {
    /// An engine for `guest` over `memory`.
    pub fn new(
        guest: G,
        memory: Arc<dyn PhysMemory>,
        config: EngineConfig,
    ) -> Result<Arc<Engine<G>>, TcgError> {
        if config.mode == ExecMode::Jit && !cfg!(target_arch = "x86_64") {
            return Err(TcgError::JitUnavailable);
        }
        let backend = match config.mode {
            ExecMode::Jit => Some(Backend::new(BackendConfig {
                code_size: config.code_size,
                features: HostFeatures::detect(),
                pc_offset: guest.pc_offset(),
                cross_page_probe: config.system,
            })?),
            ExecMode::Interpreter => None,
        };
        let entry = backend.as_ref().map(|b| b.trampoline());
        let lookup_miss = backend.as_ref().map_or(0, |b| b.lookup_miss_address());
        let addr_mask = guest.addr_type().mask();
        Ok(Arc::new(Engine {
            guest,
            memory,
            cache: BlockCache::new(),
            jit: Mutex::new(backend),
            entry,
            lookup_miss,
            config,
            addr_mask,
            stats: EngineStats::default(),
            code_pages: Default::default(),
            code_pages_end: Default::default(),
        }))
    }

    /// The frontend.
    pub fn guest(&self) -> &G {
        &self.guest
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The shared counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Bytes of host code in the code buffer (0 for the interpreter).
    pub fn code_bytes(&self) -> usize {
        self.jit
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |b| b.used_bytes())
    }

    /// Number of valid translated blocks.
    pub fn cached_blocks(&self) -> usize {
        self.cache.len()
    }

    /// Invalidates translated code for guest physical `[start, end)` (e.g. after a device
    /// wrote guest RAM by DMA).
    pub fn invalidate_phys_range(&self, start: u64, end: u64) {
        let jit = self.jit.lock().unwrap();
        let linker = jit.as_ref().map(|b| b as &dyn crate::cache::Linker);
        self.cache.invalidate_range(linker, start, end);
    }

    /// Drops all translated code. Only safe to call while no vCPU runs generated code; vCPUs
    /// notice through the blocks' validity.
    pub(crate) fn flush_locked(&self, backend: &mut Option<Backend>) {
        if let Some(b) = backend.as_mut() {
            b.flush();
        }
        self.cache.flush();
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        log::debug!("translated code flushed");
    }
}
