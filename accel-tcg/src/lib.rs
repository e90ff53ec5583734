//! The TCG accelerator: runs guest code translated to IR, compiled by the x86_64 backend (or
//! interpreted), with a software MMU over the shared guest memory and devices.
//!
//! The pieces, in the order a block meets them: [`guest::Guest`] is the frontend contract
//! (translation, page walks, exceptions); [`vcpu::Vcpu::run`] is the per-vCPU loop; the
//! [`cache`] holds translated blocks shared by all vCPUs, keyed by physical pc, virtual pc and
//! CPU-mode flags, with direct links between them and invalidation on writes to their code;
//! [`tlb`] is the software TLB the inline fast path reads; `softmmu` does everything the fast
//! path does not (misses, devices, code pages, page-crossing accesses).
//!
//! Several vCPU threads may share one [`Engine`]: lookups in the block cache are lock-free
//! (behind each vCPU's own jump cache), updates and the backend are behind locks, and the TLB
//! and jump cache are per vCPU. Not yet done for SMP: flushing the code buffer waits for no other vCPU, and a page
//! that becomes code is write-watched only in the translating vCPU's TLB.

mod block_table;
pub mod cache;
mod engine;
pub mod guest;
mod host_mem;
pub mod jump_cache;
mod log_block;
pub mod memory;
mod softmmu;
pub mod tlb;
mod vcpu;

pub use engine::{Engine, EngineConfig, EngineStats, ExecMode, LogConfig};
pub use guest::{Access, Action, CodeReader, CpuState, Guest, MemFault, PageMapping, PageProt};
pub use memory::{PhysMemory, RamAndBus};
pub use vcpu::{
    helper_flush_tlb, helper_flush_tlb_non_global, helper_flush_tlb_page, helper_host_range,
    ExitRequester, Vcpu, VcpuStats,
};

/// Errors of the TCG accelerator (a guest's own faults are guest exceptions, never these).
#[derive(Debug, thiserror::Error)]
pub enum TcgError {
    /// The backend failed (code buffer, a block it cannot compile).
    #[error("JIT backend: {0}")]
    Backend(#[from] backend_x86_64::BackendError),
    /// The frontend produced a block the verifier rejects (a translator bug).
    #[error("invalid block translated at {pc:#x}: {error}")]
    InvalidBlock {
        /// Guest pc of the block.
        pc: u64,
        /// The verifier's message.
        error: String,
    },
    /// Generated code returned an exit code that means nothing.
    #[error("generated code returned an unknown exit code {0:#x}")]
    BadExitCode(u64),
    /// The JIT emits x86_64 code; on other hosts only the interpreter runs guest code.
    #[error("the JIT needs an x86_64 host; use the interpreter")]
    JitUnavailable,
    /// An exit named a block the cache does not know.
    #[error("exit from unknown block {0}")]
    UnknownBlock(u32),
}
