//! The x86_64 machine under KVM: builds guest memory, devices, ACPI tables and vCPUs from a
//! [`MachineConfig`], runs them until the guest (or the user, or the clock) ends the run.
//!
//! An exit's path: the vCPU thread's `KVM_RUN` returns a port I/O or MMIO exit;
//! `accel_kvm::KvmVcpu::run` hands it to [`MachineIo`] (this module's `VmIo`), which routes it
//! through the port or MMIO [`Bus`] to the device; a device that raises an interrupt drives its
//! `IrqLine`, here a `KvmIrqLine` into the in-kernel IOAPIC/PIC.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use accel_kvm::{KvmVcpu, KvmVm, VcpuExit, VmIo};
use devices::bus::{Bus, BusDevice, BusError};
use devices::exit::ExitRequester;
use devices::irq::IrqLine;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::acpi::{self, VirtioSlot};
use super::boot::{self, BootConfig, BootError};
use super::layout::*;
pub use crate::run_control::Outcome;
use crate::run_control::RunControl;

/// Where the serial console's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialOutput {
    Stdio,
    File(PathBuf),
    None,
}

/// A virtio-blk disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveConfig {
    pub path: PathBuf,
    pub read_only: bool,
}

/// Everything that describes one run of the machine.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub mem_size: u64,
    pub cpus: u32,
    pub drives: Vec<DriveConfig>,
    pub serial: SerialOutput,
    /// Ctrl-A escapes on stdin (off when stdin is not a terminal would be surprising for
    /// scripts that pipe text containing 0x01, so the CLI decides).
    pub console_escapes: bool,
    pub timeout: Option<Duration>,
}

/// Errors that keep a machine from starting.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A configuration value is out of range.
    #[error("{0}")]
    Config(String),
    /// Guest RAM could not be allocated.
    #[error("cannot allocate {size} bytes of guest memory: {reason}")]
    Memory { size: u64, reason: String },
    /// Loading the kernel or initrd failed.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// KVM refused something.
    #[error(transparent)]
    Kvm(#[from] accel_kvm::KvmError),
    /// A device could not be set up.
    #[error("{what}: {reason}")]
    Device { what: String, reason: String },
    /// Two devices claimed the same addresses (a tern bug).
    #[error("device layout: {0}")]
    Bus(#[from] BusError),
    /// The JIT engine could not start.
    #[error("JIT engine: {0}")]
    Tcg(#[from] accel_tcg::TcgError),
    /// The interrupt controllers and timers of the JIT machine could not be built.
    #[error(transparent)]
    IrqChip(#[from] super::irqchip::IrqChipError),
    /// Writing boot data into guest memory failed.
    #[error("guest memory: {0}")]
    GuestMemory(#[from] vm_memory::GuestMemoryError),
    /// A host thread could not be created.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl MachineError {
    /// Whether the error comes from what the user asked for (bad file, bad size, no KVM),
    /// as opposed to a failure inside tern: the CLI exits 2 for these.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            MachineError::Bus(_)
                | MachineError::Thread(_)
                | MachineError::Tcg(_)
                | MachineError::IrqChip(_)
        )
    }
}

/// Forwards vCPU I/O exits to the device buses.
pub struct MachineIo {
    pio: Bus,
    mmio: Bus,
}

impl VmIo for MachineIo {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        if self.pio.read(u64::from(port), data).is_err() {
            log::trace!("in from unmapped port {port:#x}");
        }
    }
    fn pio_write(&self, port: u16, data: &[u8]) {
        if self.pio.write(u64::from(port), data).is_err() {
            log::trace!("out to unmapped port {port:#x}");
        }
    }
    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if self.mmio.read(addr, data).is_err() {
            log::debug!("read from unmapped MMIO {addr:#x}");
        }
    }
    fn mmio_write(&self, addr: u64, data: &[u8]) {
        if self.mmio.write(addr, data).is_err() {
            log::debug!("write to unmapped MMIO {addr:#x}");
        }
    }
}

/// The smallest guest tern will build: the boot structures and a kernel need room.
pub const MIN_MEMORY: u64 = 16 << 20;

/// Checks what both accelerators require of a configuration.
pub(crate) fn check_config(config: &MachineConfig) -> Result<(), MachineError> {
    if config.mem_size < MIN_MEMORY {
        return Err(MachineError::Config(format!(
            "--memory {} is too small (at least {} MiB)",
            config.mem_size,
            MIN_MEMORY >> 20
        )));
    }
    if config.cpus == 0 || config.cpus > 254 {
        return Err(MachineError::Config(format!(
            "--smp {} is out of range (1 to 254)",
            config.cpus
        )));
    }
    if config.drives.len() + 1 > VIRTIO_MAX_SLOTS {
        return Err(MachineError::Config(format!(
            "at most {} drives",
            VIRTIO_MAX_SLOTS - 1
        )));
    }
    Ok(())
}

/// Guest RAM as the machine's memory map lays it out around the 32-bit device hole.
pub(crate) fn guest_memory(config: &MachineConfig) -> Result<GuestMemoryMmap, MachineError> {
    let ranges: Vec<_> = ram_ranges(config.mem_size)
        .into_iter()
        .map(|(start, len)| (GuestAddress(start), len as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| MachineError::Memory {
        size: config.mem_size,
        reason: e.to_string(),
    })
}

/// Writes the ACPI tables (`hpet`: whether the machine has one) and loads the kernel and
/// initrd; returns the boot CPU's entry state.
pub(crate) fn load_guest(
    config: &MachineConfig,
    mem: &GuestMemoryMmap,
    virtio_slots: &[VirtioSlot],
    hpet: bool,
) -> Result<boot::BootSetup, MachineError> {
    mem.write_slice(
        &acpi::build_tables(config.cpus, virtio_slots, hpet),
        GuestAddress(ACPI_START),
    )?;
    let setup = boot::load_kernel(
        mem,
        &BootConfig {
            kernel: &config.kernel,
            initrd: config.initrd.as_deref(),
            cmdline: &config.cmdline,
            mem_size: config.mem_size,
            rsdp: ACPI_START,
        },
    )?;
    log::info!(
        "booting {} via {}, {} MiB, {} vCPU(s)",
        config.kernel.display(),
        setup.protocol,
        config.mem_size >> 20,
        config.cpus
    );
    Ok(setup)
}

/// Puts the terminal in raw mode and feeds stdin to the serial port; the terminal is restored
/// when the returned guard is.
pub(crate) fn attach_console(
    config: &MachineConfig,
    serial: &Arc<Mutex<devices::serial::Serial>>,
    exit: &Arc<dyn ExitRequester>,
) -> Result<devices::console::RawTerminal, MachineError> {
    let console_error = |e: devices::console::ConsoleError| MachineError::Device {
        what: "serial console".into(),
        reason: e.to_string(),
    };
    // With the Ctrl-A escapes on, Ctrl-C belongs to the guest, as in QEMU's -nographic.
    let terminal =
        devices::console::RawTerminal::new(!config.console_escapes).map_err(console_error)?;
    devices::console::spawn_stdin_reader(serial.clone(), exit.clone(), config.console_escapes)
        .map_err(console_error)?;
    Ok(terminal)
}

/// Builds the machine, runs it to its end, and returns how it ended.
pub fn run(config: &MachineConfig) -> Result<Outcome, MachineError> {
    check_config(config)?;
    let mem = guest_memory(config)?;

    let vm = KvmVm::new()?;
    if config.cpus as usize > vm.max_vcpus() {
        return Err(MachineError::Config(format!(
            "--smp {}: this host's KVM supports at most {} vCPUs",
            config.cpus,
            vm.max_vcpus()
        )));
    }
    vm.register_memory(&mem)?;
    vm.create_irqchip_and_pit()?;

    let control = Arc::new(RunControl::default());
    let exit: Arc<dyn ExitRequester> = control.clone();
    let kvm_line = |gsi: u32| -> Result<Arc<dyn IrqLine>, MachineError> { Ok(vm.irq_line(gsi)) };
    let devices = build_devices(config, &kvm_line, &mem, &exit, None)?;

    // KVM's in-kernel irqchip has no HPET.
    let setup = load_guest(config, &mem, &devices.virtio_slots, false)?;

    let mut vcpus = Vec::new();
    for index in 0..config.cpus {
        let vcpu = vm.create_vcpu(index, config.cpus)?;
        vcpu.init_platform_state()?;
        if index == 0 {
            vcpu.set_boot_state(&setup.cpu)?;
        }
        vcpus.push(vcpu);
    }

    accel_kvm::kick::install_handler()?;
    let io = Arc::new(MachineIo {
        pio: devices.pio,
        mmio: devices.mmio,
    });
    let mut terminal = attach_console(config, &devices.serial, &exit)?;

    let threads = spawn_vcpus(vcpus, &io, &control, &mem)?;
    let outcome = control.wait(config.timeout);
    let stuck = stop_vcpus(threads);
    if let Err(e) = terminal.restore() {
        log::warn!("cannot restore the terminal: {e}");
    }
    if !stuck.is_empty() {
        return Ok(Outcome::Unresponsive(format!(
            "vCPU(s) {stuck:?} did not stop within 2 s after the run ended ({outcome:?})"
        )));
    }
    Ok(outcome)
}

/// The devices of one machine, on their buses.
pub(crate) struct Devices {
    pub(crate) pio: Bus,
    pub(crate) mmio: Bus,
    pub(crate) serial: Arc<Mutex<devices::serial::Serial>>,
    pub(crate) virtio_slots: Vec<VirtioSlot>,
}

/// A device's interrupt wire for a GSI, from whichever interrupt controller the accelerator
/// uses (KVM's in-kernel one, or the device models of `irqchip` under the JIT).
pub(crate) type IrqLineFor<'a> = &'a dyn Fn(u32) -> Result<Arc<dyn IrqLine>, MachineError>;

/// The machine's devices, the same under both accelerators: COM1, the i8042, the RTC, the
/// debug-exit port, the ACPI PM block and the virtio-mmio slots. `dma` hears of guest memory
/// the virtio devices write (the JIT drops translated code there).
pub(crate) fn build_devices(
    config: &MachineConfig,
    irq: IrqLineFor,
    mem: &GuestMemoryMmap,
    exit: &Arc<dyn ExitRequester>,
    dma: Option<Arc<dyn devices::virtio::DmaObserver>>,
) -> Result<Devices, MachineError> {
    let mut pio = Bus::new();
    let mut mmio = Bus::new();

    let out: Box<dyn Write + Send> = match &config.serial {
        SerialOutput::Stdio => Box::new(std::io::stdout()),
        SerialOutput::File(path) => {
            Box::new(File::create(path).map_err(|e| MachineError::Device {
                what: format!("serial output file {}", path.display()),
                reason: e.to_string(),
            })?)
        }
        SerialOutput::None => Box::new(std::io::sink()),
    };
    let com1_irq = irq(COM1_IRQ)?;
    let serial = Arc::new(Mutex::new(devices::serial::Serial::new(com1_irq, out)));
    pio.insert(serial.clone(), u64::from(COM1_PORT), 8)?;

    let i8042: Arc<Mutex<dyn BusDevice>> =
        Arc::new(Mutex::new(devices::i8042::I8042::new(exit.clone())));
    // One controller seen at two ports; 0x61 between them is the PIT's speaker port (KVM's).
    pio.insert(i8042.clone(), devices::i8042::DATA_PORT, 1)?;
    pio.insert(i8042, devices::i8042::COMMAND_PORT, 1)?;

    let mut rtc = devices::rtc::Rtc::new(Box::new(devices::rtc::SystemClock));
    let below_4g = config.mem_size.min(LOW_RAM_END);
    rtc.set_memory_size(below_4g, config.mem_size - below_4g);
    pio.insert(
        Arc::new(Mutex::new(rtc)),
        u64::from(RTC_PORT),
        devices::rtc::RTC_LEN,
    )?;

    let debug_exit = devices::debug_exit::DebugExit::new(exit.clone());
    pio.insert(
        Arc::new(Mutex::new(debug_exit)),
        u64::from(DEBUG_EXIT_PORT),
        4,
    )?;
    let acpi_pm = devices::acpi_pm::AcpiPm::new(exit.clone());
    pio.insert(
        Arc::new(Mutex::new(acpi_pm)),
        u64::from(ACPI_PM_PORT),
        devices::acpi_pm::ACPI_PM_LEN,
    )?;

    let mut virtio: Vec<Box<dyn devices::virtio::VirtioDevice>> = Vec::new();
    for drive in &config.drives {
        let blk =
            devices::virtio::blk::VirtioBlk::open(&drive.path, drive.read_only).map_err(|e| {
                MachineError::Device {
                    what: format!("drive {}", drive.path.display()),
                    reason: e.to_string(),
                }
            })?;
        virtio.push(Box::new(blk));
    }
    virtio.push(Box::new(devices::virtio::rng::VirtioRng::new()));
    let mut virtio_slots = Vec::new();
    for (slot, device) in virtio.into_iter().enumerate() {
        let addr = virtio_mmio_addr(slot);
        let gsi = VIRTIO_FIRST_GSI + slot as u32;
        let mut transport =
            devices::virtio::mmio::MmioTransport::new(device, mem.clone(), irq(gsi)?);
        if let Some(dma) = &dma {
            transport.set_dma_observer(dma.clone());
        }
        mmio.insert(Arc::new(Mutex::new(transport)), addr, VIRTIO_MMIO_SIZE)?;
        virtio_slots.push(VirtioSlot { addr, gsi });
    }
    Ok(Devices {
        pio,
        mmio,
        serial,
        virtio_slots,
    })
}

struct VcpuThread {
    index: u32,
    pthread: libc::pthread_t,
    handle: JoinHandle<()>,
}

fn spawn_vcpus(
    vcpus: Vec<KvmVcpu>,
    io: &Arc<MachineIo>,
    control: &Arc<RunControl>,
    mem: &GuestMemoryMmap,
) -> Result<Vec<VcpuThread>, MachineError> {
    let mut threads = Vec::new();
    for mut vcpu in vcpus {
        let (io, control, mem) = (io.clone(), control.clone(), mem.clone());
        let index = vcpu.index();
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let _ = tx.send(accel_kvm::kick::current_thread());
                vcpu_loop(&mut vcpu, &*io, &control, &mem);
            })
            .map_err(MachineError::Thread)?;
        let pthread = rx.recv().map_err(|_| {
            MachineError::Thread(std::io::Error::other("vCPU thread died at start"))
        })?;
        threads.push(VcpuThread {
            index,
            pthread,
            handle,
        });
    }
    Ok(threads)
}

fn vcpu_loop(vcpu: &mut KvmVcpu, io: &dyn VmIo, control: &RunControl, mem: &GuestMemoryMmap) {
    let index = vcpu.index();
    while !control.stopping() {
        let exit = match vcpu.run(io) {
            Ok(exit) => exit,
            Err(e) => {
                control.finish(Outcome::GuestCrash(format!("vCPU {index}: {e}")));
                break;
            }
        };
        match exit {
            VcpuExit::Interrupted => {}
            // Only seen without an in-kernel irqchip; nothing can wake this vCPU but a kick.
            VcpuExit::Halted => std::thread::sleep(Duration::from_millis(1)),
            VcpuExit::Shutdown => {
                let at = describe_rip(vcpu, mem);
                control.finish(Outcome::GuestCrash(format!(
                    "vCPU {index}: guest triple fault (KVM_EXIT_SHUTDOWN){at}"
                )));
            }
            VcpuExit::InternalError { suberror, data } => {
                let at = describe_rip(vcpu, mem);
                control.finish(Outcome::GuestCrash(format!(
                    "vCPU {index}: KVM internal error, suberror {suberror} (data {data:x?}){at}"
                )));
            }
            VcpuExit::FailEntry { reason } => control.finish(Outcome::GuestCrash(format!(
                "vCPU {index}: KVM could not enter the guest (hardware reason {reason:#x})"
            ))),
            VcpuExit::SystemEvent(kind) => control.finish(match kind {
                1 => Outcome::PowerOff,
                2 => Outcome::Reset,
                _ => Outcome::GuestCrash(format!("vCPU {index}: KVM system event {kind}")),
            }),
            VcpuExit::Unexpected(what) => control.finish(Outcome::GuestCrash(format!(
                "vCPU {index}: unexpected KVM exit {what}"
            ))),
        }
    }
    if control.timed_out() {
        log::warn!(
            "vCPU {index} stopped by the time limit{}",
            describe_rip(vcpu, mem)
        );
    }
}

fn describe_rip(vcpu: &KvmVcpu, mem: &GuestMemoryMmap) -> String {
    match vcpu.code_at_rip(mem) {
        Some((rip, bytes)) => format!(" at RIP {rip:#x}, code bytes {bytes:02x?}"),
        None => String::new(),
    }
}

/// Kicks every vCPU thread out of `KVM_RUN` until it has left its loop. A thread that does not
/// stop within two seconds is left behind (the process is about to exit); the indices of such
/// vCPUs are returned.
fn stop_vcpus(threads: Vec<VcpuThread>) -> Vec<u32> {
    let mut stuck = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    for thread in threads {
        while !thread.handle.is_finished() && Instant::now() < deadline {
            accel_kvm::kick::kick(thread.pthread);
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.handle.is_finished() {
            let _ = thread.handle.join();
        } else {
            stuck.push(thread.index);
        }
    }
    stuck
}
