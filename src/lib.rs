//! tern: machines, loaders and the run loop behind the `tern` command.

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
