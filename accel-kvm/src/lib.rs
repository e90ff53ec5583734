//! Runs x86_64 guest vCPUs on Linux's `/dev/kvm`.
//!
//! The crate owns the KVM file descriptors and nothing else of the machine: guest memory comes
//! in as a vm-memory `GuestMemoryMmap` (the same one the device models use), port I/O and MMIO
//! exits go out through the [`vcpu::VmIo`] callbacks (the machine forwards them to its
//! `devices::Bus`es), and interrupts come in through [`vm::KvmIrqLine`], an
//! `devices::irq::IrqLine` over `KVM_IRQ_LINE`.
//!
//! The interrupt controllers and the PIT are KVM's in-kernel models (`KVM_CREATE_IRQCHIP`,
//! `KVM_CREATE_PIT2`): the local APIC sits on every guest timer and IPI path, and keeping it in
//! the kernel avoids a round trip to userspace for each of them.
//!
//! The unsafe code lives in [`vm`] (memory slots), [`kick`] (the signal that interrupts
//! `KVM_RUN`) and [`vcpu`] (nothing else: `kvm-ioctls` wraps the ioctls).

pub mod cpuid;
pub mod kick;
pub mod regs;
pub mod vcpu;
pub mod vm;

pub use vcpu::{KvmVcpu, VcpuExit, VmIo};
pub use vm::{KvmIrqLine, KvmVm};

pub use kvm_bindings;

/// Errors from the KVM accelerator.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {0}")]
    Open(#[source] kvm_ioctls::Error),
    /// The KVM API version is not the stable 12.
    #[error("unsupported KVM API version {0} (need 12)")]
    ApiVersion(i32),
    /// The host's KVM lacks a capability tern needs.
    #[error("KVM lacks the capability {0}")]
    MissingCapability(&'static str),
    /// A KVM ioctl failed.
    #[error("KVM {op} failed: {source}")]
    Ioctl {
        /// What was being done.
        op: &'static str,
        /// The errno.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be registered or written.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The kick signal handler could not be installed.
    #[error("cannot install the vCPU kick signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

impl KvmError {
    pub(crate) fn ioctl(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
        move |source| KvmError::Ioctl { op, source }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, KvmError>;
