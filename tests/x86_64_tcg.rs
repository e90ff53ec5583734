//! The x86_64 machine with its CPUs on the JIT (`--accel tcg`): the bare-metal guests of
//! `tests/guests` print the same console output and end with the same status as under KVM,
//! and Debian's stock kernel (bzImage and PVH vmlinux, images from `scripts/guests/build.sh`)
//! boots to its /init, runs the init's checks, uses a virtio-blk disk, brings up a second
//! CPU, runs a command typed on stdin, and powers off.
//!
//! The KVM half of each comparison needs /dev/kvm: without it the test says
//! `SKIPPED (no /dev/kvm)` for that half and still checks the JIT run on its own.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::{linux_vmlinux, run_guest_on, scratch_file, tern, Outcome};

/// Exit statuses of the bare-metal guests' successful ends ((v << 1) | 1).
const HELLO_OK: i32 = (0x2a << 1) | 1;
const MMIO_OK: i32 = (0x2b << 1) | 1;
const IRQ_THRE_OK: i32 = (0x2c << 1) | 1;
const IRQ_RX_OK: i32 = (0x2d << 1) | 1;
const USER_OK: i32 = (0x2e << 1) | 1;
const SMP_OK: i32 = (0x2f << 1) | 1;
const BLK_OK: i32 = (0x30 << 1) | 1;
/// tern's status for a crashed guest.
const GUEST_CRASHED: i32 = 4;

/// Runs guest `name` under the JIT and, where /dev/kvm exists, under KVM; asserts both print
/// the same console output and end with the same status, which must be `status`. `setup`
/// prepares per-run arguments (a fresh disk, say). Returns the JIT run.
fn same_under_kvm_and_tcg(name: &str, setup: &dyn Fn() -> Vec<String>, status: i32) -> Outcome {
    let run = |accel: &str| {
        let extra = setup();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        run_guest_on(accel, name, &extra).run()
    };
    let tcg = run("tcg");
    tcg.assert_code(status);
    let test = format!("{name}: the KVM half of the KVM/JIT comparison");
    if !common::skip_test_without_kvm(&test) {
        let kvm = run("kvm");
        assert_eq!(
            (kvm.code, kvm.lines()),
            (tcg.code, tcg.lines()),
            "KVM and the JIT disagree\n== KVM ==\n{}\n== JIT ==\n{}",
            kvm.describe(),
            tcg.describe()
        );
    }
    tcg
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn hello_is_the_same_under_kvm_and_tcg() {
    let out = same_under_kvm_and_tcg("hello", &|| args(&["--append", "tern test"]), HELLO_OK);
    out.assert_line("TERN-CMDLINE: tern test");
}

#[test]
fn the_32_bit_pvh_entry_guest_is_the_same_under_kvm_and_tcg() {
    same_under_kvm_and_tcg("tiny", &|| args(&[]), HELLO_OK);
}

#[test]
fn virtio_mmio_probing_is_the_same_under_kvm_and_tcg() {
    let out = same_under_kvm_and_tcg("mmio", &|| args(&[]), MMIO_OK);
    // The slot after the last device reads as an open bus, as on a PC.
    out.assert_line("TERN-MMIO slot 1: no device (magic=0xffffffff)");
}

#[test]
fn the_com1_interrupt_through_the_ioapic_is_the_same_under_kvm_and_tcg() {
    let out = same_under_kvm_and_tcg("irq", &|| args(&[]), IRQ_THRE_OK);
    out.assert_line("TERN-IRQ thre handled: vector=0x40 iir=0x02 count=1");
}

#[test]
fn init_sipi_sipi_starts_the_second_cpu_the_same_under_kvm_and_tcg() {
    let out = same_under_kvm_and_tcg("smp", &|| args(&["--smp", "2"]), SMP_OK);
    out.assert_line("TERN-SMP cpus=2 apic-ids=0,1");
}

#[test]
fn a_triple_fault_ends_the_run_the_same_under_kvm_and_tcg() {
    let out = same_under_kvm_and_tcg("triple", &|| args(&[]), GUEST_CRASHED);
    assert!(
        out.stderr.contains("triple fault"),
        "tern names the triple fault\n{}",
        out.describe()
    );
}

#[test]
fn the_virtio_blk_driver_guest_is_the_same_under_kvm_and_tcg() {
    let disk = scratch_file("tcg-blk.img");
    let setup = || {
        let mut image = vec![0u8; 1 << 20];
        image[..16].copy_from_slice(b"TERN-DISK-TEST-1");
        fs::write(&disk, &image).expect("write the test disk");
        args(&["--drive", disk.to_str().unwrap()])
    };
    let out = same_under_kvm_and_tcg("virtio_blk", &setup, BLK_OK);
    out.assert_line("TERN-BLK readback sector1: match");
    let image = fs::read(&disk).unwrap();
    assert_eq!(
        &image[512..528],
        b"TERN-GUEST-WROTE",
        "the write reached the file"
    );
    let _ = fs::remove_file(&disk);
}

#[test]
fn serial_input_reaches_the_guest_under_tcg() {
    common::assert_serial_input_reaches_the_irq_guest("tcg", IRQ_RX_OK);
}

/// The ring-3 guest is compared with the host's own computation rather than with KVM: on
/// kvm_pvm, ring-3 `syscall` and `int 0x80` do not reach ring 0 (see kvm_guests.rs).
#[test]
fn ring_3_code_returns_through_syscall_int80_and_an_exception_under_tcg() {
    let out = run_guest_on("tcg", "user", &[]).run();
    out.assert_code(USER_OK);
    let syscall = out.assert_line_starting("TERN-USER syscall: result=0x");
    assert!(syscall.ends_with("user-cpl=3 kernel-cpl=0"), "{syscall}");
    out.assert_line_starting("TERN-USER int80: result=0x");
    out.assert_line("TERN-USER ok");
    let out = run_guest_on("tcg", "user", &["--append", "ud2"]).run();
    out.assert_code(USER_OK);
    let ud2 = out.assert_line_starting("TERN-USER ud2: result=0x");
    assert!(
        ud2.ends_with("user-cpl=3 frame-cs=0x33 kernel-cpl=0"),
        "{ud2}"
    );
}

/// The Debian guest set's directory (where `linux_vmlinux` is).
fn debian(file: &str) -> PathBuf {
    let path = linux_vmlinux().with_file_name(file);
    assert!(
        path.is_file(),
        "no {} : run scripts/guests/build.sh first (or set TERN_GUEST_DIR)",
        path.display()
    );
    path
}

/// `tern run --accel tcg` of Debian's `kernel` with the initramfs and `append`.
fn debian_tcg(kernel: &str, append: &str, extra: &[&str]) -> common::TernRun {
    let mut a = args(&[
        "run",
        "--accel",
        "tcg",
        "--kernel",
        debian(kernel).to_str().unwrap(),
        "--initrd",
        debian("initramfs.cpio.gz").to_str().unwrap(),
        "--append",
        append,
        "--memory",
        "512M",
        "--timeout",
        "150",
    ]);
    a.extend(extra.iter().map(|s| s.to_string()));
    tern(a).timeout(Duration::from_secs(180))
}

fn assert_init_checks_passed(out: &Outcome) {
    out.assert_code(0);
    out.assert_line("TERN-GUEST-INIT-OK");
    assert!(
        out.assert_line_starting("TERN-KERNEL: ")
            .ends_with(" x86_64"),
        "{}",
        out.describe()
    );
    assert!(
        out.assert_line_starting("TERN-MD5: ").contains(" ok "),
        "{}",
        out.describe()
    );
    out.assert_line("TERN-GUEST-DONE");
}

#[test]
fn debian_bzimage_boots_to_its_init_and_powers_off_under_tcg() {
    let out = debian_tcg("bzImage", "console=ttyS0", &[]).run();
    assert_init_checks_passed(&out);
}

#[test]
fn debian_pvh_vmlinux_boots_to_its_init_and_powers_off_under_tcg() {
    let out = debian_tcg("vmlinux", "console=ttyS0", &[]).run();
    assert_init_checks_passed(&out);
    // The TSC frequency came from CPUID, not from a calibration against the 8254.
    assert!(
        out.stdout.contains("tsc: Detected 2000.000 MHz processor"),
        "{}",
        out.describe()
    );
}

#[test]
fn the_guest_reads_and_writes_a_virtio_blk_disk_under_tcg() {
    common::assert_guest_reads_and_writes_the_test_disk("tcg-debian-disk.img", &|disk| {
        debian_tcg("bzImage", "console=ttyS0 tern.quick", &["--drive", disk]).run()
    });
}

#[test]
fn two_cpus_are_online_under_tcg() {
    let out = debian_tcg("bzImage", "console=ttyS0 tern.quick", &["--smp", "2"]).run();
    out.assert_code(0);
    assert!(
        out.assert_line_starting("TERN-CPU: ")
            .ends_with("(online: 2)"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_command_typed_on_stdin_runs_in_the_guest_shell_under_tcg() {
    let running = debian_tcg("bzImage", "console=ttyS0 tern.quick tern.shell", &[]).spawn();
    common::assert_stdin_command_runs_in_the_guest_shell(running, Duration::from_secs(150));
}

#[test]
fn a_kernel_that_triple_faults_early_ends_the_run_with_a_clear_message() {
    // Debian's bzImage with `ud2` at its 64-bit entry point: the loader's boot state has no
    // IDT, so the #UD becomes a double fault and then a shutdown.
    let mut image = fs::read(debian("bzImage")).unwrap();
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let entry64 = (setup_sects + 1) * 512 + 0x200;
    image[entry64..entry64 + 2].copy_from_slice(&[0x0f, 0x0b]);
    let kernel = scratch_file("bzImage-ud2");
    fs::write(&kernel, &image).unwrap();
    let out = tern([
        "run",
        "--accel",
        "tcg",
        "--kernel",
        kernel.to_str().unwrap(),
        "--timeout",
        "60",
    ])
    .timeout(Duration::from_secs(90))
    .run();
    out.assert_code(GUEST_CRASHED);
    assert!(
        out.stderr.contains("guest crashed") && out.stderr.contains("triple fault"),
        "{}",
        out.describe()
    );
    assert!(
        out.elapsed < Duration::from_secs(20),
        "the shutdown ends the run at once\n{}",
        out.describe()
    );
    let _ = fs::remove_file(&kernel);
}
