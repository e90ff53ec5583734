//! The KVM virtual machine: memory slots, the in-kernel irqchip and PIT, and vCPU creation.

use std::sync::Arc;

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::vcpu::KvmVcpu;
use crate::{KvmError, Result};

/// Where KVM may place the three pages of its real-mode TSS (Intel VMX needs them below 4 GiB
/// and outside guest RAM): near the top of the 32-bit MMIO hole, above the IOAPIC and local
/// APIC pages, where tern maps nothing else.
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// `KVM_PIT_SPEAKER_DUMMY`: the PIT also emulates port 0x61, the speaker/gate port Linux uses
/// to calibrate against the PIT.
const PIT_SPEAKER_DUMMY: u32 = 1;

/// A VM on `/dev/kvm` with its memory registered and its in-kernel irqchip created.
pub struct KvmVm {
    kvm: Kvm,
    fd: Arc<VmFd>,
}

impl KvmVm {
    /// Opens `/dev/kvm`, checks the API and the capabilities tern relies on, and creates a VM.
    pub fn new() -> Result<Self> {
        let kvm = Kvm::new().map_err(KvmError::Open)?;
        let version = kvm.get_api_version();
        if version != 12 {
            return Err(KvmError::ApiVersion(version));
        }
        for (cap, name) in [
            (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
            (Cap::Pit2, "KVM_CAP_PIT2"),
            (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCapability(name));
            }
        }
        let fd = kvm.create_vm().map_err(KvmError::ioctl("KVM_CREATE_VM"))?;
        fd.set_tss_address(KVM_TSS_ADDRESS)
            .map_err(KvmError::ioctl("KVM_SET_TSS_ADDR"))?;
        Ok(KvmVm {
            kvm,
            fd: Arc::new(fd),
        })
    }

    /// The most vCPUs this host's KVM recommends per VM.
    pub fn max_vcpus(&self) -> usize {
        self.kvm.get_nr_vcpus()
    }

    /// Registers every region of `mem` as a KVM memory slot, slot numbers in region order.
    ///
    /// `mem` must outlive the VM's use of it: the caller keeps a clone for as long as the VM
    /// exists (the regions are reference counted, so any clone keeps the mappings alive).
    pub fn register_memory(&self, mem: &GuestMemoryMmap) -> Result<()> {
        for (slot, region) in mem.iter().enumerate() {
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .map_err(|e| KvmError::Memory(e.to_string()))?;
            let region_desc = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the host range [host, host + len) is a live mmap owned by `mem`'s
            // region, which the caller keeps alive for the VM's lifetime (see above); the slot
            // numbers are distinct and the guest ranges come from a GuestMemoryMmap, which does
            // not allow overlaps.
            unsafe { self.fd.set_user_memory_region(region_desc) }
                .map_err(KvmError::ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }

    /// Creates the in-kernel PIC pair, IOAPIC and local APICs, and the in-kernel PIT.
    /// Must run before any vCPU is created.
    pub fn create_irqchip_and_pit(&self) -> Result<()> {
        self.fd
            .create_irq_chip()
            .map_err(KvmError::ioctl("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd
            .create_pit2(pit)
            .map_err(KvmError::ioctl("KVM_CREATE_PIT2"))
    }

    /// Creates vCPU `index` of `count`, with CPUID from KVM's supported set.
    pub fn create_vcpu(&self, index: u32, count: u32) -> Result<KvmVcpu> {
        let fd = self
            .fd
            .create_vcpu(u64::from(index))
            .map_err(KvmError::ioctl("KVM_CREATE_VCPU"))?;
        let mut cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        crate::cpuid::fit_to_vcpu(cpuid.as_mut_slice(), index, count);
        fd.set_cpuid2(&cpuid)
            .map_err(KvmError::ioctl("KVM_SET_CPUID2"))?;
        Ok(KvmVcpu::new(fd, index))
    }

    /// An interrupt line into the in-kernel irqchip at `gsi` (0-15 reach both the PIC and the
    /// IOAPIC, 16-23 the IOAPIC only).
    pub fn irq_line(&self, gsi: u32) -> Arc<KvmIrqLine> {
        Arc::new(KvmIrqLine {
            vm: self.fd.clone(),
            gsi,
        })
    }
}

/// A device interrupt wire into KVM's in-kernel irqchip (`KVM_IRQ_LINE`).
pub struct KvmIrqLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl devices::irq::IrqLine for KvmIrqLine {
    fn set_level(&self, high: bool) {
        if let Err(e) = self.vm.set_irq_line(self.gsi, high) {
            log::error!("KVM_IRQ_LINE gsi {} level {}: {}", self.gsi, high, e);
        }
    }
}
