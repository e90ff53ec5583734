//! Assembling and running the riscv64 machine on the JIT: RAM at 0x8000_0000, the ACLINT,
//! PLIC, 16550 UART, virtio-mmio slots and SiFive test device on one MMIO bus, OpenSBI in
//! M-mode with a device tree, and the harts.
//!
//! Harts run round-robin on one host thread (the README says so): a tick thread raises timer
//! interrupts from the ACLINT, and asks the running hart to check its interrupts every
//! millisecond and to make way for the next hart every 10 ms.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accel_tcg::{Engine, EngineConfig, RamAndBus, Vcpu};
use devices::bus::Bus;
use devices::exit::ExitRequester;
use devices::irq::IrqLine;
use devices::riscv::aclint::{Aclint, AclintTime};
use devices::riscv::plic::Plic;
use devices::riscv::sifive_test::SifiveTest;
use frontend::riscv64::Riscv64Cpu;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::boot::{self, BootError};
use super::fdt::{self, FdtConfig};
use super::hart::{self, HartWires, RiscvHarts, RET_IDLE, RET_SLICE, RET_STOP};
use super::layout::*;
use crate::run_control::{Outcome, RunControl};
use crate::x86_64::machine::{DriveConfig, SerialOutput};

/// The ISA the device tree announces: what the frontend implements.
const ISA: &str = "rv64imafdc_zicsr_zifencei_zba_zbb_zbs_sstc";
/// The least RAM the machine accepts.
const MIN_MEMORY: u64 = 64 << 20;

/// Everything that describes one run.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// OpenSBI `fw_dynamic.bin` (or compatible firmware).
    pub firmware: PathBuf,
    /// The kernel `Image`.
    pub kernel: PathBuf,
    /// The initrd.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: String,
    /// Bytes of RAM.
    pub mem_size: u64,
    /// Number of harts.
    pub harts: u32,
    /// virtio-blk disks.
    pub drives: Vec<DriveConfig>,
    /// Where the UART's output goes.
    pub serial: SerialOutput,
    /// Ctrl-A escapes on the console (off for tests feeding stdin from a pipe).
    pub console_escapes: bool,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// JIT or interpreter, block logs.
    pub tcg: crate::TcgOptions,
}

/// Why the machine could not run.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// Bad configuration (the user's to fix).
    #[error("{0}")]
    Config(String),
    /// A boot image could not be loaded.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// Guest memory could not be set up.
    #[error("guest memory of {size} bytes: {reason}")]
    Memory {
        /// Requested size.
        size: u64,
        /// Why it failed.
        reason: String,
    },
    /// A device could not be set up.
    #[error("{what}: {reason}")]
    Device {
        /// Which device.
        what: String,
        /// Why.
        reason: String,
    },
    /// The engine failed (a tern bug or the host).
    #[error("JIT engine: {0}")]
    Engine(#[from] accel_tcg::TcgError),
}

impl MachineError {
    /// The user can fix it (exit status 2).
    pub fn is_user_error(&self) -> bool {
        matches!(self, MachineError::Config(_) | MachineError::Boot(_))
    }
}

fn device_error(what: impl Into<String>) -> impl FnOnce(String) -> MachineError {
    let what = what.into();
    move |reason| MachineError::Device { what, reason }
}

/// Runs the machine until the guest powers off, resets, the user quits or the time limit.
pub fn run(config: &MachineConfig) -> Result<Outcome, MachineError> {
    if config.mem_size < MIN_MEMORY || config.mem_size > (1 << 40) {
        return Err(MachineError::Config(format!(
            "--memory {} is out of range (64 MiB to 1 TiB)",
            config.mem_size
        )));
    }
    if config.harts == 0 || config.harts > 64 {
        return Err(MachineError::Config(format!(
            "--smp {} is out of range (1 to 64)",
            config.harts
        )));
    }
    if config.drives.len() + 1 > VIRTIO_SLOTS {
        return Err(MachineError::Config(format!(
            "at most {} drives",
            VIRTIO_SLOTS - 1
        )));
    }
    let harts = config.harts as usize;
    let mem =
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_BASE), config.mem_size as usize)])
            .map_err(|e| MachineError::Memory {
            size: config.mem_size,
            reason: e.to_string(),
        })?;

    let control = Arc::new(RunControl::default());
    let exit: Arc<dyn ExitRequester> = control.clone();
    let wires = Arc::new(HartWires::new(harts));
    let time = Arc::new(AclintTime::host());
    let mut mmio = Bus::new();
    let bus_error = |e: devices::bus::BusError| MachineError::Device {
        what: "MMIO bus".into(),
        reason: e.to_string(),
    };

    let aclint = Arc::new(Mutex::new(
        Aclint::new(harts, time.clone(), wires.clone())
            .map_err(|e| device_error("ACLINT")(e.to_string()))?,
    ));
    mmio.insert(aclint.clone(), CLINT_BASE, CLINT_SIZE)
        .map_err(bus_error)?;
    let plic = Arc::new(Mutex::new(
        Plic::new(harts, PLIC_SOURCES, wires.clone())
            .map_err(|e| device_error("PLIC")(e.to_string()))?,
    ));
    mmio.insert(plic.clone(), PLIC_BASE, PLIC_SIZE)
        .map_err(bus_error)?;
    mmio.insert(
        Arc::new(Mutex::new(SifiveTest::new(exit.clone()))),
        TEST_BASE,
        TEST_SIZE,
    )
    .map_err(bus_error)?;

    let out: Box<dyn Write + Send> = match &config.serial {
        SerialOutput::Stdio => Box::new(std::io::stdout()),
        SerialOutput::File(path) => Box::new(File::create(path).map_err(|e| {
            device_error(format!("serial output file {}", path.display()))(e.to_string())
        })?),
        SerialOutput::None => Box::new(std::io::sink()),
    };
    let plic_line = |source: u32| -> Result<Arc<dyn IrqLine>, MachineError> {
        Plic::irq_line(&plic, source).map_err(|e| device_error("PLIC")(e.to_string()))
    };
    let serial = Arc::new(Mutex::new(devices::serial::Serial::new(
        plic_line(UART_IRQ)?,
        out,
    )));
    mmio.insert(serial.clone(), UART_BASE, UART_SIZE)
        .map_err(bus_error)?;

    let mut virtio: Vec<Box<dyn devices::virtio::VirtioDevice>> = Vec::new();
    for drive in &config.drives {
        let blk = devices::virtio::blk::VirtioBlk::open(&drive.path, drive.read_only)
            .map_err(|e| device_error(format!("drive {}", drive.path.display()))(e.to_string()))?;
        virtio.push(Box::new(blk));
    }
    virtio.push(Box::new(devices::virtio::rng::VirtioRng::new()));
    let mut virtio_nodes = Vec::new();
    let (dma_engine, dma) = crate::code_invalidator::<RiscvHarts>();
    for (slot, device) in virtio.into_iter().enumerate() {
        let irq = VIRTIO_FIRST_IRQ + slot as u32;
        let mut transport =
            devices::virtio::mmio::MmioTransport::new(device, mem.clone(), plic_line(irq)?);
        transport.set_dma_observer(dma.clone());
        mmio.insert(
            Arc::new(Mutex::new(transport)),
            virtio_addr(slot),
            VIRTIO_SIZE,
        )
        .map_err(bus_error)?;
        virtio_nodes.push((virtio_addr(slot), irq));
    }

    let layout = boot::load(
        &mem,
        config.mem_size,
        &config.firmware,
        &config.kernel,
        config.initrd.as_deref(),
        |initrd| {
            fdt::build_fdt(&FdtConfig {
                harts,
                isa: ISA.to_string(),
                mmu_type: "riscv,sv48".to_string(),
                memory: (RAM_BASE, config.mem_size),
                bootargs: config.cmdline.clone(),
                initrd,
                timebase_hz: TIMEBASE_HZ,
                uart: (UART_BASE, UART_IRQ),
                virtio: virtio_nodes.clone(),
                plic: (PLIC_BASE, PLIC_SIZE, PLIC_SOURCES),
                clint: (CLINT_BASE, CLINT_SIZE),
                test: TEST_BASE,
            })
            .map_err(|e| e.to_string())
        },
    )?;
    log::info!(
        "riscv64: firmware {}, kernel {} at {:#x}, {} MiB, {harts} hart(s)",
        config.firmware.display(),
        config.kernel.display(),
        layout.kernel,
        config.mem_size >> 20
    );

    let memory: Arc<dyn accel_tcg::PhysMemory> = Arc::new(RamAndBus::new(mem.clone(), mmio));
    let guest = RiscvHarts {
        memory: memory.clone(),
        control: control.clone(),
        slice_over: Default::default(),
        harts,
        traps: (0..harts).map(|_| Default::default()).collect(),
    };
    let engine = Engine::new(
        guest,
        memory,
        EngineConfig {
            mode: config.tcg.exec_mode,
            log: config.tcg.log.clone(),
            system: true,
            ..EngineConfig::default()
        },
    )?;
    let _ = dma_engine.set(Arc::downgrade(&engine));
    let mut vcpus = Vec::new();
    for id in 0..harts {
        let mut cpu = Riscv64Cpu::new(layout.entry);
        frontend::riscv64::system::reset(&mut cpu, id as u64, layout.entry);
        cpu.x[10] = id as u64;
        cpu.x[11] = layout.fdt;
        cpu.x[12] = layout.fw_dynamic_info;
        cpu.irq_lines = wires.lines[id].clone();
        let t = time.clone();
        cpu.time_source = Some(Arc::new(move || t.mtime()));
        cpu.flush_tlb = Some(hart::flush_tlb);
        cpu.flush_tlb_non_global = Some(accel_tcg::helper_flush_tlb_non_global::<RiscvHarts>);
        vcpus.push(Vcpu::new(engine.clone(), cpu));
    }
    let _ = wires
        .kicks
        .set(vcpus.iter().map(|v| v.exit_requester()).collect());

    let console_error =
        |e: devices::console::ConsoleError| device_error("serial console")(e.to_string());
    let mut terminal =
        devices::console::RawTerminal::new(!config.console_escapes).map_err(console_error)?;
    devices::console::spawn_stdin_reader(serial, exit.clone(), config.console_escapes)
        .map_err(console_error)?;

    let ticker = {
        let (control, wires, aclint, engine) = (
            control.clone(),
            wires.clone(),
            aclint.clone(),
            engine.clone(),
        );
        std::thread::Builder::new()
            .name("riscv-tick".into())
            .spawn(move || tick(&control, &wires, &aclint, &engine, harts))
            .map_err(|e| device_error("timer thread")(e.to_string()))?
    };
    let runner = {
        let (control, wires) = (control.clone(), wires.clone());
        std::thread::Builder::new()
            .name("riscv-harts".into())
            .spawn(move || {
                let _ = wires.runner.set(std::thread::current());
                run_harts(vcpus, &control)
            })
            .map_err(|e| device_error("hart thread")(e.to_string()))?
    };
    let outcome = control.wait(config.timeout);
    wires.kick_all();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !runner.is_finished() && Instant::now() < deadline {
        wires.kick_all();
        std::thread::sleep(Duration::from_millis(5));
    }
    let stuck = !runner.is_finished();
    if !stuck {
        let _ = runner.join();
    }
    let _ = ticker.join();
    if let Err(e) = terminal.restore() {
        log::warn!("cannot restore the terminal: {e}");
    }
    if stuck {
        return Ok(Outcome::Unresponsive(format!(
            "the harts did not stop within 2 s after the run ended ({outcome:?})"
        )));
    }
    Ok(outcome)
}

/// Raises the ACLINT's timer interrupts when they fall due and keeps the harts checking theirs.
fn tick(
    control: &RunControl,
    wires: &HartWires,
    aclint: &Mutex<Aclint>,
    _engine: &Arc<Engine<RiscvHarts>>,
    harts: usize,
) {
    let mut last_slice = Instant::now();
    while !control.stopping() {
        aclint.lock().unwrap_or_else(|p| p.into_inner()).poll();
        if harts > 1 && last_slice.elapsed() >= Duration::from_millis(10) {
            _engine.guest().slice_over.store(true, Ordering::Release);
            last_slice = Instant::now();
        }
        // Sstc timers and pending interrupts are checked at the harts' next block.
        wires.kick_all();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the harts round-robin until the run ends.
fn run_harts(mut vcpus: Vec<Vcpu<RiscvHarts>>, control: &RunControl) {
    let mut idle = vec![false; vcpus.len()];
    loop {
        let mut ran = false;
        for (i, vcpu) in vcpus.iter_mut().enumerate() {
            if control.stopping() {
                return;
            }
            if idle[i] && !frontend::riscv64::system::trap::wfi_wakeup(vcpu.cpu()) {
                continue;
            }
            idle[i] = false;
            ran = true;
            match vcpu.run() {
                Ok(RET_STOP) => return,
                Ok(RET_IDLE) => idle[i] = true,
                Ok(RET_SLICE) => {}
                Ok(other) => log::warn!("hart {i}: unexpected stop {other}"),
                Err(e) => {
                    control.finish(Outcome::GuestCrash(format!(
                        "hart {i} at pc {:#x}: {e}",
                        vcpu.cpu().pc
                    )));
                    return;
                }
            }
        }
        if !ran {
            // Every hart waits for an interrupt; the tick or a device wakes this thread.
            std::thread::park_timeout(Duration::from_millis(1));
        }
    }
}
