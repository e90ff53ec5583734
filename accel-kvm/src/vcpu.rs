//! One KVM vCPU: boot-state setup and the run loop that forwards I/O exits to the machine.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, Msrs};
use kvm_ioctls::{VcpuExit as KvmExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::regs::BootCpuState;
use crate::{KvmError, Result};

/// Where a vCPU's port I/O and MMIO exits go: the machine's device buses.
///
/// Modeled on cloud-hypervisor's `VmOps`: the accelerator calls back into the machine, which
/// knows the devices; the accelerator knows nothing of them.
pub trait VmIo: Sync {
    /// An `in` from `port`; fill `data`.
    fn pio_read(&self, port: u16, data: &mut [u8]);
    /// An `out` of `data` to `port`.
    fn pio_write(&self, port: u16, data: &[u8]);
    /// A read of `data.len()` bytes at guest-physical `addr` outside RAM; fill `data`.
    fn mmio_read(&self, addr: u64, data: &mut [u8]);
    /// A write of `data` at guest-physical `addr` outside RAM.
    fn mmio_write(&self, addr: u64, data: &[u8]);
}

/// Why [`KvmVcpu::run`] returned to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuExit {
    /// `KVM_RUN` was interrupted by a signal (the machine's kick): check for a stop request.
    Interrupted,
    /// The vCPU halted with interrupts off in a way KVM hands to userspace.
    Halted,
    /// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
    Shutdown,
    /// KVM could not emulate or enter the guest.
    InternalError {
        /// KVM's suberror (1: emulation failure, 2: simultaneous exceptions, ...).
        suberror: u32,
        /// Extra words KVM reported.
        data: Vec<u64>,
    },
    /// Hardware refused to enter the guest.
    FailEntry {
        /// The hardware's entry failure reason.
        reason: u64,
    },
    /// A system event (KVM_SYSTEM_EVENT_SHUTDOWN = 1, RESET = 2, CRASH = 3).
    SystemEvent(u32),
    /// Any other exit tern does not handle.
    Unexpected(String),
}

/// MSRs every vCPU starts with, beyond KVM's reset values.
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// MISC_ENABLE bit 0: fast string operations.
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRdefType: MTRRs enabled (bit 11), default type write-back (6).
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;

/// Local APIC register offsets and LVT delivery modes (Intel SDM vol. 3, 11.5.1).
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_EXTINT: u32 = 0x7 << 8;
const APIC_MODE_NMI: u32 = 0x4 << 8;

/// A KVM vCPU.
pub struct KvmVcpu {
    fd: VcpuFd,
    index: u32,
}

impl KvmVcpu {
    pub(crate) fn new(fd: VcpuFd, index: u32) -> Self {
        KvmVcpu { fd, index }
    }

    /// This vCPU's index (also its APIC ID).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Puts the local APIC in virtual-wire mode (LINT0 = ExtINT from the 8259, LINT1 = NMI),
    /// as firmware leaves it on a PC, and the FPU and MSRs in their power-on state.
    pub fn init_platform_state(&self) -> Result<()> {
        let mut lapic = self
            .fd
            .get_lapic()
            .map_err(KvmError::ioctl("KVM_GET_LAPIC"))?;
        set_apic_reg(&mut lapic.regs, APIC_LVT_LINT0, APIC_MODE_EXTINT);
        set_apic_reg(&mut lapic.regs, APIC_LVT_LINT1, APIC_MODE_NMI);
        self.fd
            .set_lapic(&lapic)
            .map_err(KvmError::ioctl("KVM_SET_LAPIC"))?;

        let fpu = kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        self.fd
            .set_fpu(&fpu)
            .map_err(KvmError::ioctl("KVM_SET_FPU"))?;

        for (index, data) in [
            (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
            (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK),
        ] {
            let msrs = Msrs::from_entries(&[kvm_msr_entry {
                index,
                data,
                ..Default::default()
            }])
            .map_err(|e| KvmError::Memory(format!("MSR list: {e:?}")))?;
            // Optional: a KVM that refuses one (kvm_pvm refuses some) still runs the guest.
            match self.fd.set_msrs(&msrs) {
                Ok(1) => {}
                other => log::warn!(
                    "vCPU {}: KVM did not take MSR {index:#x} = {data:#x} ({other:?})",
                    self.index
                ),
            }
        }
        Ok(())
    }

    /// Loads the registers a boot protocol starts the guest with.
    pub fn set_boot_state(&self, state: &BootCpuState) -> Result<()> {
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(KvmError::ioctl("KVM_GET_SREGS"))?;
        let mut regs = self
            .fd
            .get_regs()
            .map_err(KvmError::ioctl("KVM_GET_REGS"))?;
        state.apply(&mut regs, &mut sregs);
        self.fd
            .set_sregs(&sregs)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        self.fd
            .set_regs(&regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))
    }

    /// Runs the guest until something the machine must see: I/O exits are forwarded to `io`
    /// and the guest resumes; every other exit is returned.
    pub fn run(&mut self, io: &dyn VmIo) -> Result<VcpuExit> {
        loop {
            let exit = match self.fd.run() {
                Ok(KvmExit::IoIn(port, data)) => {
                    io.pio_read(port, data);
                    continue;
                }
                Ok(KvmExit::IoOut(port, data)) => {
                    io.pio_write(port, data);
                    continue;
                }
                Ok(KvmExit::MmioRead(addr, data)) => {
                    io.mmio_read(addr, data);
                    continue;
                }
                Ok(KvmExit::MmioWrite(addr, data)) => {
                    io.mmio_write(addr, data);
                    continue;
                }
                Ok(KvmExit::Hlt) => VcpuExit::Halted,
                Ok(KvmExit::Shutdown) => VcpuExit::Shutdown,
                Ok(KvmExit::Intr) => VcpuExit::Interrupted,
                Ok(KvmExit::FailEntry(reason, _cpu)) => VcpuExit::FailEntry { reason },
                Ok(KvmExit::SystemEvent(kind, _)) => VcpuExit::SystemEvent(kind),
                Ok(KvmExit::InternalError) => self.internal_error(),
                Ok(other) => VcpuExit::Unexpected(format!("{other:?}")),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    VcpuExit::Interrupted
                }
                Err(e) => {
                    return Err(KvmError::Ioctl {
                        op: "KVM_RUN",
                        source: e,
                    })
                }
            };
            return Ok(exit);
        }
    }

    fn internal_error(&mut self) -> VcpuExit {
        let run = self.fd.get_kvm_run();
        // SAFETY: KVM set exit_reason to KVM_EXIT_INTERNAL_ERROR, which tells us `internal` is
        // the union member it filled in.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let count = (internal.ndata as usize).min(internal.data.len());
        VcpuExit::InternalError {
            suberror: internal.suberror,
            data: internal.data[..count].to_vec(),
        }
    }

    /// The guest's RIP and up to 15 bytes of code at it (read through the guest's page tables),
    /// for error reports.
    pub fn code_at_rip(&self, mem: &GuestMemoryMmap) -> Option<(u64, Vec<u8>)> {
        let regs = self.fd.get_regs().ok()?;
        let sregs = self.fd.get_sregs().ok()?;
        let linear = sregs.cs.base.wrapping_add(regs.rip);
        let mut bytes = Vec::new();
        for i in 0..15u64 {
            let gva = linear.wrapping_add(i);
            let tr = self.fd.translate_gva(gva).ok()?;
            if tr.valid == 0 {
                break;
            }
            match mem.read_obj::<u8>(GuestAddress(tr.physical_address)) {
                Ok(b) => bytes.push(b),
                Err(_) => break,
            }
        }
        Some((regs.rip, bytes))
    }
}

fn set_apic_reg(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let mut word = [0u8; 4];
    for (i, b) in word.iter_mut().enumerate() {
        *b = regs[offset + i] as u8;
    }
    // Keep the vector and mask fields' neighbours, replace the delivery mode (bits 8..10) and
    // unmask (bit 16).
    let value = (u32::from_le_bytes(word) & !(0x7 << 8) & !(1 << 16)) | mode;
    for (i, b) in value.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *b as std::os::raw::c_char;
    }
}
