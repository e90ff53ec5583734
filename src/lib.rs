//! tern: machines, loaders and the run loop behind the `tern` command.

use std::sync::{Arc, OnceLock, Weak};

use devices::virtio::DmaObserver;

pub mod riscv64;
pub mod run_control;
pub mod x86_64;

/// How the JIT runs a machine's CPUs (`tern run` on the JIT).
#[derive(Debug, Clone)]
pub struct TcgOptions {
    /// Generated code or the IR interpreter.
    pub exec_mode: accel_tcg::ExecMode,
    /// Per-block logs (`--log`, `--log-range`).
    pub log: accel_tcg::LogConfig,
}

/// Where a machine puts its engine once it exists, for [`code_invalidator`]'s observer.
pub type LateEngine<G> = Arc<OnceLock<Weak<accel_tcg::Engine<G>>>>;

/// A virtio DMA observer that drops the translated code of guest RAM a device wrote, as
/// guest stores do, for an engine made after the devices (the engine owns the MMIO bus that
/// owns them, hence the late, weak link): give the observer to the transports, then set the
/// cell to the engine.
pub fn code_invalidator<G: accel_tcg::Guest>() -> (LateEngine<G>, Arc<dyn DmaObserver>) {
    let cell: LateEngine<G> = Arc::default();
    let engine = cell.clone();
    let observer = Arc::new(move |gpa: u64, len: u64| {
        if let Some(engine) = engine.get().and_then(Weak::upgrade) {
            engine.invalidate_phys_range(gpa, gpa + len);
        }
    });
    (cell, observer)
}
