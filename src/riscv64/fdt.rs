//! The flattened device tree that describes the riscv64 virt machine to OpenSBI and Linux.
//!
//! RISC-V firmware and kernels discover everything from the device tree: harts and their ISA,
//! RAM, the interrupt controllers and how interrupts are wired, the console, the virtio-mmio
//! slots and how to power off. The tree follows what QEMU's `virt` machine gives the same
//! kernel (the Linux bindings `riscv/cpus.yaml`, `interrupt-controller/sifive,plic-1.0.0.yaml`,
//! `timer/sifive,clint.yaml`, `power/reset/syscon-poweroff.yaml`), limited to the devices tern
//! has: no PCI, flash, fw-cfg or RTC.
//!
//! Interrupt wiring, in the numbers of the harts' `riscv,cpu-intc` controllers (the `mip` bit
//! numbers): the CLINT drives 3 (M software) and 7 (M timer) of every hart; the PLIC's context
//! `2h` drives hart `h`'s 11 (M external) and context `2h + 1` its 9 (S external), which is
//! the order of its `interrupts-extended` list. Devices name their PLIC source in
//! `interrupts`.
//!
//! Phandles: hart `h`'s `cpu` node is `1 + 2h` and its interrupt controller `2 + 2h`; the PLIC
//! and the test device follow.

use std::io::Read;

use vm_fdt::FdtWriter;

/// The 16550's input clock, as QEMU's virt machine announces it (1.8432 MHz * 2).
const UART_CLOCK_HZ: u32 = 3_686_400;
/// Length of the 16550's register window.
const UART_SIZE: u64 = 0x100;
/// Length of one virtio-mmio slot.
const VIRTIO_SIZE: u64 = 0x1000;
/// Length of the SiFive test device's window.
const TEST_SIZE: u64 = 0x1000;
/// The test device's commands for power-off and reset (see `devices::riscv::sifive_test`).
const FINISHER_PASS: u32 = 0x5555;
const FINISHER_RESET: u32 = 0x7777;
/// Interrupt numbers at a hart's `riscv,cpu-intc`: the `mip` bits.
const IRQ_M_SOFT: u32 = 3;
const IRQ_M_TIMER: u32 = 7;
const IRQ_S_EXT: u32 = 9;
const IRQ_M_EXT: u32 = 11;
/// Bytes of `rng-seed` handed to the kernel (enough to seed its CRNG).
const RNG_SEED_LEN: usize = 32;

/// Errors from [`build_fdt`].
#[derive(Debug, thiserror::Error)]
pub enum FdtError {
    /// A machine needs at least one hart.
    #[error("the machine needs at least one hart")]
    NoHarts,
    /// The RAM size is 0 or RAM runs past the end of the address space.
    #[error("invalid RAM range {base:#x}+{size:#x}")]
    BadMemory { base: u64, size: u64 },
    /// The initrd ends before it starts.
    #[error("invalid initrd range {start:#x}..{end:#x}")]
    BadInitrd { start: u64, end: u64 },
    /// The ISA string is not `rv64` followed by single-letter extensions and then
    /// `_`-separated multi-letter ones.
    #[error("invalid riscv,isa string {0:?}")]
    BadIsa(String),
    /// A timebase the 32-bit `timebase-frequency` cannot hold, or 0.
    #[error("invalid timebase frequency {0} Hz")]
    BadTimebase(u64),
    /// A PLIC with no sources, or a device wired to a source the PLIC does not have.
    #[error("PLIC source {irq} is outside 1..={ndev}")]
    BadIrq { irq: u32, ndev: u32 },
    /// No entropy for `rng-seed`.
    #[error("reading random bytes for rng-seed: {0}")]
    Entropy(#[source] std::io::Error),
    /// vm-fdt refused the tree (a malformed name or string).
    #[error("writing the device tree: {0}")]
    Fdt(#[from] vm_fdt::Error),
}

/// What the device tree describes: the machine's harts, RAM, boot parameters and the address
/// and PLIC source of each device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdtConfig {
    /// Number of harts.
    pub harts: usize,
    /// The harts' ISA string, e.g. `"rv64imafdc_zicsr_zifencei_zba_zbb_zbs"`.
    pub isa: String,
    /// The harts' MMU, `"riscv,sv39"`, `"riscv,sv48"` or `"riscv,sv57"`.
    pub mmu_type: String,
    /// RAM: `(base, size)`.
    pub memory: (u64, u64),
    /// The kernel command line.
    pub bootargs: String,
    /// The initrd's `[start, end)` in guest physical memory, if one is loaded.
    pub initrd: Option<(u64, u64)>,
    /// Frequency of `mtime` / the `time` CSR.
    pub timebase_hz: u64,
    /// The 16550A UART: `(base, PLIC source)`.
    pub uart: (u64, u32),
    /// The virtio-mmio slots: `(base, PLIC source)` each.
    pub virtio: Vec<(u64, u32)>,
    /// The PLIC: `(base, size, number of sources)`.
    pub plic: (u64, u64, u32),
    /// The CLINT / ACLINT: `(base, size)`.
    pub clint: (u64, u64),
    /// The SiFive test device's base.
    pub test: u64,
}

/// The `riscv,isa-extensions` list for `isa`: the single-letter extensions, then the
/// multi-letter ones in the string's order. `g` stands for `imafd_zicsr_zifencei`.
fn isa_extensions(isa: &str) -> Result<Vec<String>, FdtError> {
    let bad = || FdtError::BadIsa(isa.to_string());
    let lower = isa.to_ascii_lowercase();
    let rest = lower.strip_prefix("rv64").ok_or_else(bad)?;
    let mut parts = rest.split('_');
    let letters = parts.next().unwrap_or("");
    if !letters.starts_with(['i', 'g']) {
        return Err(bad());
    }
    let mut extensions: Vec<String> = Vec::new();
    let push = |name: &str, list: &mut Vec<String>| {
        if !list.iter().any(|e| e == name) {
            list.push(name.to_string());
        }
    };
    let mut implied = Vec::new();
    for letter in letters.chars() {
        if !letter.is_ascii_lowercase() {
            return Err(bad());
        }
        if letter == 'g' {
            for l in ["i", "m", "a", "f", "d"] {
                push(l, &mut extensions);
            }
            implied.extend(["zicsr", "zifencei"]);
        } else {
            push(letter.encode_utf8(&mut [0; 4]), &mut extensions);
        }
    }
    for name in implied {
        push(name, &mut extensions);
    }
    for part in parts {
        if part.len() < 2
            || !part.starts_with(['z', 's', 'x'])
            || !part.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad());
        }
        push(part, &mut extensions);
    }
    Ok(extensions)
}

/// 32 bytes from the host's random source, for the kernel's `rng-seed`.
fn rng_seed() -> Result<[u8; RNG_SEED_LEN], FdtError> {
    let mut seed = [0u8; RNG_SEED_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(FdtError::Entropy)?;
    Ok(seed)
}

/// Checks the parts of `config` the tree cannot express or a kernel would choke on.
fn validate(config: &FdtConfig) -> Result<Vec<String>, FdtError> {
    if config.harts == 0 {
        return Err(FdtError::NoHarts);
    }
    let (base, size) = config.memory;
    if size == 0 || base.checked_add(size).is_none() {
        return Err(FdtError::BadMemory { base, size });
    }
    if let Some((start, end)) = config.initrd {
        if end < start {
            return Err(FdtError::BadInitrd { start, end });
        }
    }
    if config.timebase_hz == 0 || u32::try_from(config.timebase_hz).is_err() {
        return Err(FdtError::BadTimebase(config.timebase_hz));
    }
    let ndev = config.plic.2;
    for irq in std::iter::once(config.uart.1).chain(config.virtio.iter().map(|v| v.1)) {
        if irq == 0 || irq > ndev {
            return Err(FdtError::BadIrq { irq, ndev });
        }
    }
    isa_extensions(&config.isa)
}

/// Builds the device tree blob for `config`.
pub fn build_fdt(config: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    let extensions = validate(config)?;
    let cpu_phandle = |hart: usize| 1 + 2 * hart as u32;
    let intc_phandle = |hart: usize| 2 + 2 * hart as u32;
    let plic_phandle = 1 + 2 * config.harts as u32;
    let test_phandle = plic_phandle + 1;

    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "riscv-virtio")?;
    fdt.property_string("model", "tern,riscv-virt")?;

    // /chosen: the command line, console, initrd and entropy.
    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &config.bootargs)?;
    fdt.property_string("stdout-path", &format!("/soc/serial@{:x}", config.uart.0))?;
    if let Some((start, end)) = config.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.property("rng-seed", &rng_seed()?)?;
    fdt.end_node(chosen)?;

    // Power-off and reboot go through the test device, seen as a syscon register map.
    for (name, compatible, value) in [
        ("poweroff", "syscon-poweroff", FINISHER_PASS),
        ("reboot", "syscon-reboot", FINISHER_RESET),
    ] {
        let node = fdt.begin_node(name)?;
        fdt.property_string("compatible", compatible)?;
        fdt.property_u32("regmap", test_phandle)?;
        fdt.property_u32("offset", 0)?;
        fdt.property_u32("value", value)?;
        fdt.end_node(node)?;
    }

    let (mem_base, mem_size) = config.memory;
    let memory = fdt.begin_node(&format!("memory@{mem_base:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[mem_base, mem_size])?;
    fdt.end_node(memory)?;

    // /cpus: one node per hart, each with its local interrupt controller.
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    fdt.property_u32("timebase-frequency", config.timebase_hz as u32)?;
    for hart in 0..config.harts {
        let cpu = fdt.begin_node(&format!("cpu@{hart:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_u32("reg", hart as u32)?;
        fdt.property_string("status", "okay")?;
        fdt.property_string("compatible", "riscv")?;
        fdt.property_string("riscv,isa", &config.isa.to_ascii_lowercase())?;
        fdt.property_string("riscv,isa-base", "rv64i")?;
        fdt.property_string_list("riscv,isa-extensions", extensions.clone())?;
        fdt.property_string("mmu-type", &config.mmu_type)?;
        fdt.property_phandle(cpu_phandle(hart))?;
        let intc = fdt.begin_node("interrupt-controller")?;
        // No interrupt-map below it: zero address cells (dtc's interrupt_provider check).
        fdt.property_u32("#address-cells", 0)?;
        fdt.property_u32("#interrupt-cells", 1)?;
        fdt.property_null("interrupt-controller")?;
        fdt.property_string("compatible", "riscv,cpu-intc")?;
        fdt.property_phandle(intc_phandle(hart))?;
        fdt.end_node(intc)?;
        fdt.end_node(cpu)?;
    }
    // One cluster of single-threaded cores.
    let cpu_map = fdt.begin_node("cpu-map")?;
    let cluster = fdt.begin_node("cluster0")?;
    for hart in 0..config.harts {
        let core = fdt.begin_node(&format!("core{hart}"))?;
        fdt.property_u32("cpu", cpu_phandle(hart))?;
        fdt.end_node(core)?;
    }
    fdt.end_node(cluster)?;
    fdt.end_node(cpu_map)?;
    fdt.end_node(cpus)?;

    // /soc: the memory-mapped devices, addressed 1:1.
    let soc = fdt.begin_node("soc")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "simple-bus")?;
    fdt.property_null("ranges")?;

    let (clint_base, clint_size) = config.clint;
    let clint = fdt.begin_node(&format!("clint@{clint_base:x}"))?;
    fdt.property_string_list(
        "compatible",
        vec!["sifive,clint0".into(), "riscv,clint0".into()],
    )?;
    fdt.property_array_u64("reg", &[clint_base, clint_size])?;
    let cells: Vec<u32> = (0..config.harts)
        .flat_map(|h| [intc_phandle(h), IRQ_M_SOFT, intc_phandle(h), IRQ_M_TIMER])
        .collect();
    fdt.property_array_u32("interrupts-extended", &cells)?;
    fdt.end_node(clint)?;

    let (plic_base, plic_size, ndev) = config.plic;
    let plic = fdt.begin_node(&format!("plic@{plic_base:x}"))?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_string_list(
        "compatible",
        vec!["sifive,plic-1.0.0".into(), "riscv,plic0".into()],
    )?;
    fdt.property_u32("riscv,ndev", ndev)?;
    fdt.property_array_u64("reg", &[plic_base, plic_size])?;
    let cells: Vec<u32> = (0..config.harts)
        .flat_map(|h| [intc_phandle(h), IRQ_M_EXT, intc_phandle(h), IRQ_S_EXT])
        .collect();
    fdt.property_array_u32("interrupts-extended", &cells)?;
    fdt.property_phandle(plic_phandle)?;
    fdt.end_node(plic)?;

    let (uart_base, uart_irq) = config.uart;
    let serial = fdt.begin_node(&format!("serial@{uart_base:x}"))?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[uart_base, UART_SIZE])?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.property_u32("interrupts", uart_irq)?;
    fdt.property_u32("interrupt-parent", plic_phandle)?;
    fdt.end_node(serial)?;

    for &(base, irq) in &config.virtio {
        let virtio = fdt.begin_node(&format!("virtio_mmio@{base:x}"))?;
        fdt.property_string("compatible", "virtio,mmio")?;
        fdt.property_array_u64("reg", &[base, VIRTIO_SIZE])?;
        fdt.property_u32("interrupts", irq)?;
        fdt.property_u32("interrupt-parent", plic_phandle)?;
        fdt.end_node(virtio)?;
    }

    let test = fdt.begin_node(&format!("test@{:x}", config.test))?;
    fdt.property_string_list(
        "compatible",
        vec![
            "sifive,test1".into(),
            "sifive,test0".into(),
            "syscon".into(),
        ],
    )?;
    fdt.property_array_u64("reg", &[config.test, TEST_SIZE])?;
    fdt.property_phandle(test_phandle)?;
    fdt.end_node(test)?;

    fdt.end_node(soc)?;
    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The virt machine's layout with two harts.
    fn config() -> FdtConfig {
        FdtConfig {
            harts: 2,
            isa: "rv64imafdc_zicsr_zifencei_zba_zbb_zbs".into(),
            mmu_type: "riscv,sv48".into(),
            memory: (0x8000_0000, 0x1000_0000),
            bootargs: "console=ttyS0 earlycon".into(),
            initrd: Some((0x8820_0000, 0x8833_7564)),
            timebase_hz: 10_000_000,
            uart: (0x1000_0000, 10),
            virtio: vec![(0x1000_1000, 1), (0x1000_2000, 2)],
            plic: (0x0c00_0000, 0x60_0000, 95),
            clint: (0x0200_0000, 0x1_0000),
            test: 0x10_0000,
        }
    }

    /// The tree as `dtc` decompiles it.
    fn decompile(blob: &[u8]) -> String {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let child = Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => panic!(
                "dtc is needed to check the device tree ({e}): \
                 apt-get install -y --no-install-recommends device-tree-compiler"
            ),
        };
        child.stdin.take().unwrap().write_all(blob).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "dtc rejected the tree: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(!warnings.contains("Warning"), "dtc warns: {warnings}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The text of node `name` (its first line to its closing brace) in decompiled `dts`.
    fn node<'a>(dts: &'a str, name: &str) -> &'a str {
        let start = dts
            .find(&format!("\t{name} {{"))
            .unwrap_or_else(|| panic!("no node {name} in\n{dts}"));
        let indent = dts[..start].rsplit('\n').next().unwrap().len() + 1;
        let close = format!("\n{}}};", "\t".repeat(indent));
        let end = dts[start..].find(&close).unwrap() + start;
        &dts[start..end]
    }

    #[test]
    fn the_blob_is_a_flattened_device_tree() {
        let blob = build_fdt(&config()).unwrap();
        assert_eq!(blob[..4], [0xd0, 0x0d, 0xfe, 0xed], "FDT magic");
        let total = u32::from_be_bytes(blob[4..8].try_into().unwrap());
        assert_eq!(total as usize, blob.len());
    }

    #[test]
    fn harts_have_isa_mmu_and_a_local_interrupt_controller() {
        let dts = decompile(&build_fdt(&config()).unwrap());
        let cpus = node(&dts, "cpus");
        assert!(cpus.contains("timebase-frequency = <0x989680>;"));
        assert!(cpus.contains("#address-cells = <0x01>;"));
        assert!(cpus.contains("#size-cells = <0x00>;"));
        for hart in 0..2 {
            let cpu = node(&dts, &format!("cpu@{hart}"));
            assert!(cpu.contains("device_type = \"cpu\";"));
            assert!(cpu.contains(&format!("reg = <0x{hart:02x}>;")));
            assert!(cpu.contains("compatible = \"riscv\";"));
            assert!(cpu.contains("status = \"okay\";"));
            assert!(cpu.contains("riscv,isa = \"rv64imafdc_zicsr_zifencei_zba_zbb_zbs\";"));
            assert!(cpu.contains("riscv,isa-base = \"rv64i\";"));
            assert!(cpu.contains(
                "riscv,isa-extensions = \"i\\0m\\0a\\0f\\0d\\0c\\0zicsr\\0zifencei\\0zba\\0zbb\\0zbs\";"
            ));
            assert!(cpu.contains("mmu-type = \"riscv,sv48\";"));
            assert!(cpu.contains(&format!("phandle = <0x{:02x}>;", 1 + 2 * hart)));
            let intc = node(cpu, "interrupt-controller");
            assert!(intc.contains("compatible = \"riscv,cpu-intc\";"));
            assert!(intc.contains("#interrupt-cells = <0x01>;"));
            assert!(intc.contains("interrupt-controller;"));
            assert!(intc.contains(&format!("phandle = <0x{:02x}>;", 2 + 2 * hart)));
        }
        assert!(!dts.contains("cpu@2"));
        let map = node(&dts, "cpu-map");
        assert!(node(map, "core0").contains("cpu = <0x01>;"));
        assert!(node(map, "core1").contains("cpu = <0x03>;"));
    }

    #[test]
    fn memory_and_chosen_describe_ram_and_boot() {
        let dts = decompile(&build_fdt(&config()).unwrap());
        let memory = node(&dts, "memory@80000000");
        assert!(memory.contains("device_type = \"memory\";"));
        assert!(memory.contains("reg = <0x00 0x80000000 0x00 0x10000000>;"));
        let chosen = node(&dts, "chosen");
        assert!(chosen.contains("bootargs = \"console=ttyS0 earlycon\";"));
        assert!(chosen.contains("stdout-path = \"/soc/serial@10000000\";"));
        assert!(chosen.contains("linux,initrd-start = <0x00 0x88200000>;"));
        assert!(chosen.contains("linux,initrd-end = <0x00 0x88337564>;"));
        assert!(chosen.contains("rng-seed = "));
        let without = FdtConfig {
            initrd: None,
            ..config()
        };
        let dts = decompile(&build_fdt(&without).unwrap());
        assert!(!dts.contains("linux,initrd"));
    }

    #[test]
    fn rng_seed_is_32_fresh_bytes() {
        let seed = |dts: &str| {
            let chosen = node(dts, "chosen");
            let line = chosen
                .lines()
                .find(|l| l.contains("rng-seed"))
                .unwrap()
                .to_string();
            line
        };
        let a = seed(&decompile(&build_fdt(&config()).unwrap()));
        let b = seed(&decompile(&build_fdt(&config()).unwrap()));
        // dtc prints 32 bytes as 8 cells.
        assert_eq!(a.matches("0x").count(), 8, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn interrupt_controllers_are_wired_to_every_hart() {
        let dts = decompile(&build_fdt(&config()).unwrap());
        let soc = node(&dts, "soc");
        assert!(soc.contains("compatible = \"simple-bus\";"));
        assert!(soc.contains("ranges;"));
        let clint = node(&dts, "clint@2000000");
        assert!(clint.contains("compatible = \"sifive,clint0\\0riscv,clint0\";"));
        assert!(clint.contains("reg = <0x00 0x2000000 0x00 0x10000>;"));
        assert!(clint.contains("interrupts-extended = <0x02 0x03 0x02 0x07 0x04 0x03 0x04 0x07>;"));
        let plic = node(&dts, "plic@c000000");
        assert!(plic.contains("compatible = \"sifive,plic-1.0.0\\0riscv,plic0\";"));
        assert!(plic.contains("riscv,ndev = <0x5f>;"));
        assert!(plic.contains("reg = <0x00 0xc000000 0x00 0x600000>;"));
        assert!(plic.contains("interrupts-extended = <0x02 0x0b 0x02 0x09 0x04 0x0b 0x04 0x09>;"));
        assert!(plic.contains("#interrupt-cells = <0x01>;"));
        assert!(plic.contains("interrupt-controller;"));
        assert!(plic.contains("phandle = <0x05>;"));
    }

    #[test]
    fn devices_name_their_plic_source() {
        let dts = decompile(&build_fdt(&config()).unwrap());
        let serial = node(&dts, "serial@10000000");
        assert!(serial.contains("compatible = \"ns16550a\";"));
        assert!(serial.contains("reg = <0x00 0x10000000 0x00 0x100>;"));
        // 3686400 is the bytes 00 38 40 00, which dtc's guesser prints as a string (QEMU's
        // tree decompiles the same way).
        assert!(serial.contains("clock-frequency = \"\\08@\";"), "{serial}");
        assert!(serial.contains("interrupts = <0x0a>;"));
        assert!(serial.contains("interrupt-parent = <0x05>;"));
        for (i, base) in [(1, "10001000"), (2, "10002000")] {
            let virtio = node(&dts, &format!("virtio_mmio@{base}"));
            assert!(virtio.contains("compatible = \"virtio,mmio\";"));
            assert!(virtio.contains(&format!("reg = <0x00 0x{base} 0x00 0x1000>;")));
            assert!(virtio.contains(&format!("interrupts = <0x{i:02x}>;")));
            assert!(virtio.contains("interrupt-parent = <0x05>;"));
        }
        assert_eq!(dts.matches("virtio_mmio@").count(), 2);
    }

    #[test]
    fn power_off_and_reboot_go_through_the_test_device() {
        let dts = decompile(&build_fdt(&config()).unwrap());
        let test = node(&dts, "test@100000");
        assert!(test.contains("compatible = \"sifive,test1\\0sifive,test0\\0syscon\";"));
        assert!(test.contains("reg = <0x00 0x100000 0x00 0x1000>;"));
        assert!(test.contains("phandle = <0x06>;"));
        let poweroff = node(&dts, "poweroff");
        assert!(poweroff.contains("compatible = \"syscon-poweroff\";"));
        assert!(poweroff.contains("regmap = <0x06>;"));
        assert!(poweroff.contains("offset = <0x00>;"));
        assert!(poweroff.contains("value = <0x5555>;"));
        let reboot = node(&dts, "reboot");
        assert!(reboot.contains("compatible = \"syscon-reboot\";"));
        assert!(reboot.contains("regmap = <0x06>;"));
        assert!(reboot.contains("value = <0x7777>;"));
    }

    #[test]
    fn g_expands_and_the_extension_list_follows_the_isa_string() {
        assert_eq!(
            isa_extensions("rv64gc_zba_sstc").unwrap(),
            ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zba", "sstc"]
        );
        assert_eq!(
            isa_extensions("RV64IMAFDCH_Zicsr").unwrap(),
            ["i", "m", "a", "f", "d", "c", "h", "zicsr"]
        );
        for bad in ["rv32imac", "rv64", "rv64mac", "rv64i_", "rv64i_q", "rv64i1"] {
            assert!(
                matches!(isa_extensions(bad), Err(FdtError::BadIsa(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_configs_are_errors() {
        let err = |c: FdtConfig| build_fdt(&c).unwrap_err();
        assert!(matches!(
            err(FdtConfig {
                harts: 0,
                ..config()
            }),
            FdtError::NoHarts
        ));
        assert!(matches!(
            err(FdtConfig {
                memory: (0x8000_0000, 0),
                ..config()
            }),
            FdtError::BadMemory { .. }
        ));
        assert!(matches!(
            err(FdtConfig {
                memory: (u64::MAX - 0xfff, 0x2000),
                ..config()
            }),
            FdtError::BadMemory { .. }
        ));
        assert!(matches!(
            err(FdtConfig {
                initrd: Some((0x9000_0000, 0x8000_0000)),
                ..config()
            }),
            FdtError::BadInitrd { .. }
        ));
        assert!(matches!(
            err(FdtConfig {
                timebase_hz: 1 << 32,
                ..config()
            }),
            FdtError::BadTimebase(_)
        ));
        assert!(matches!(
            err(FdtConfig {
                uart: (0x1000_0000, 96),
                ..config()
            }),
            FdtError::BadIrq { irq: 96, ndev: 95 }
        ));
        assert!(matches!(
            err(FdtConfig {
                virtio: vec![(0x1000_1000, 0)],
                ..config()
            }),
            FdtError::BadIrq { irq: 0, .. }
        ));
        assert!(matches!(
            err(FdtConfig {
                isa: "rv32imac".into(),
                ..config()
            }),
            FdtError::BadIsa(_)
        ));
        assert!(matches!(
            err(FdtConfig {
                bootargs: "nul\0inside".into(),
                ..config()
            }),
            FdtError::Fdt(_)
        ));
    }
}
