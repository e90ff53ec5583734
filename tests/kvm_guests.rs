//! End-to-end tests: tern boots the bare-metal guests of `tests/guests` (and Debian's PVH
//! `vmlinux`) under KVM and the tests check the serial console and the exit status.
//!
//! Exit statuses: a guest writing v to isa-debug-exit ends tern with (v << 1) | 1; each guest has
//! its own success value, failures use v = 0x60 (193) and unexpected exceptions v = 0x61 (195).
//! A triple fault is status 4, bad input status 2.

#[macro_use]
mod common;

use std::fs;
use std::time::Duration;

use common::{linux_vmlinux, run_guest, scratch_file, tern};

/// Exit statuses of the guests' successful ends ((v << 1) | 1).
const HELLO_OK: i32 = (0x2a << 1) | 1;
const MMIO_OK: i32 = (0x2b << 1) | 1;
const IRQ_THRE_OK: i32 = (0x2c << 1) | 1;
const IRQ_RX_OK: i32 = (0x2d << 1) | 1;
const USER_OK: i32 = (0x2e << 1) | 1;
const SMP_OK: i32 = (0x2f << 1) | 1;
const BLK_OK: i32 = (0x30 << 1) | 1;
const BLK_RO_OK: i32 = (0x31 << 1) | 1;
/// tern's status for a crashed guest (triple fault, KVM internal error).
const GUEST_CRASHED: i32 = 4;
/// tern's status for bad flags and bad input files.
const BAD_INPUT: i32 = 2;

/// The signature the virtio-blk tests put at the start of the disk.
const DISK_SIGNATURE: &[u8; 16] = b"TERN-DISK-TEST-1";
const SECTOR: usize = 512;

/// What the `user` guest's ring-3 loop computes: xorshift64 (13, 7, 17), 8,000,000 rounds.
fn xorshift_rounds(mut x: u64) -> u64 {
    for _ in 0..8_000_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}
/// Measured on kvm_pvm (the `user` guest prints it): SYSCALL from ring 3 reaches LSTAR without
/// leaving CPL3, and `int 0x80` from ring 3 raises #UD instead of entering the DPL-3 gate. Both
/// are CPU virtualization inside KVM, no tern code is involved.
const PVM_RING3_TRAPS: &str = "SYSCALL and int 0x80 from ring 3 do not reach ring 0";
const USER_SEED_SYSCALL: u64 = 0x0123_4567_89ab_cdef;
const USER_SEED_INT80: u64 = 0xfedc_ba98_7654_3210;

/// A 1 MiB raw disk: the signature in sector 0, zeros elsewhere.
fn make_disk(name: &str) -> std::path::PathBuf {
    let path = scratch_file(name);
    let mut image = vec![0u8; 1 << 20];
    image[..DISK_SIGNATURE.len()].copy_from_slice(DISK_SIGNATURE);
    fs::write(&path, &image).expect("write the test disk");
    path
}

/// The sector the virtio_blk guest writes to sector 1.
fn guest_pattern() -> Vec<u8> {
    let mut sector: Vec<u8> = (0..SECTOR).map(|i| (i * 7 + 3) as u8).collect();
    sector[..16].copy_from_slice(b"TERN-GUEST-WROTE");
    sector
}

#[test]
fn hello_prints_and_exits_through_debug_exit() {
    skip_test_without_kvm!("hello_prints_and_exits_through_debug_exit");
    let out = run_guest("hello", &["--append", "tern test cmdline"]).run();
    out.assert_lines(&["TERN-TEST hello", "TERN-CMDLINE: tern test cmdline"]);
    out.assert_code(HELLO_OK);
}

#[test]
fn tiny_32_bit_guest_runs_from_the_pvh_entry_state() {
    // The benchmark guest: nothing but the PVH entry state (32-bit flat segments, paging off).
    skip_test_without_kvm!("tiny_32_bit_guest_runs_from_the_pvh_entry_state");
    let out = run_guest("tiny", &["--memory", "128M"]).run();
    out.assert_lines(&["TERN-TEST hello"]);
    out.assert_code(HELLO_OK);
}

#[test]
fn mmio_without_drives_has_the_rng_in_slot_0() {
    skip_test_without_kvm!("mmio_without_drives_has_the_rng_in_slot_0");
    let out = run_guest("mmio", &[]).run();
    out.assert_line_starting("TERN-MMIO slot 0: magic=0x74726976 version=2 device=4 vendor=0x");
    out.assert_line_starting("TERN-MMIO slot 1: no device");
    out.assert_line("TERN-MMIO devices=1 drives=0 rng-slot=0");
    out.assert_code(MMIO_OK);
}

#[test]
fn mmio_with_a_drive_puts_blk_first_then_rng() {
    skip_test_without_kvm!("mmio_with_a_drive_puts_blk_first_then_rng");
    let disk = make_disk("mmio-drive.img");
    let out = run_guest("mmio", &["--drive", disk.to_str().unwrap()]).run();
    out.assert_line_starting("TERN-MMIO slot 0: magic=0x74726976 version=2 device=2 vendor=0x");
    out.assert_line_starting("TERN-MMIO slot 1: magic=0x74726976 version=2 device=4 vendor=0x");
    out.assert_line_starting("TERN-MMIO slot 2: no device");
    out.assert_line("TERN-MMIO devices=2 drives=1 rng-slot=1");
    out.assert_code(MMIO_OK);
    let _ = fs::remove_file(disk);
}

#[test]
fn irq_com1_thre_interrupt_reaches_the_guest_handler() {
    skip_test_without_kvm!("irq_com1_thre_interrupt_reaches_the_guest_handler");
    let out = run_guest("irq", &[]).run();
    let routing = out.assert_line_starting("TERN-IRQ ioapic ");
    assert!(
        routing.ends_with("pin4=0x00000040 apic-id=0"),
        "{}",
        out.describe()
    );
    out.assert_line("TERN-IRQ thre handled: vector=0x40 iir=0x02 count=1");
    out.assert_code(IRQ_THRE_OK);
}

#[test]
fn irq_serial_input_reaches_the_guest() {
    skip_test_without_kvm!("irq_serial_input_reaches_the_guest");
    common::assert_serial_input_reaches_the_irq_guest("kvm", IRQ_RX_OK);
}

#[test]
fn user_mode_returns_through_syscall_and_int80() {
    skip_test_without_kvm!("user_mode_returns_through_syscall_and_int80");
    if common::skip_test_on_kvm_pvm(
        "user_mode_returns_through_syscall_and_int80",
        PVM_RING3_TRAPS,
    ) {
        return;
    }
    let out = run_guest("user", &[]).run();
    out.assert_line(&format!(
        "TERN-USER syscall: result=0x{:016x} user-cpl=3 kernel-cpl=0",
        xorshift_rounds(USER_SEED_SYSCALL)
    ));
    out.assert_line(&format!(
        "TERN-USER int80: result=0x{:016x} user-cpl=3 frame-cs=0x33 kernel-cpl=0",
        xorshift_rounds(USER_SEED_INT80)
    ));
    out.assert_line("TERN-USER ok");
    out.assert_code(USER_OK);
}

#[test]
fn user_mode_returns_through_int80_alone() {
    skip_test_without_kvm!("user_mode_returns_through_int80_alone");
    if common::skip_test_on_kvm_pvm("user_mode_returns_through_int80_alone", PVM_RING3_TRAPS) {
        return;
    }
    let out = run_guest("user", &["--append", "int80"]).run();
    out.assert_line(&format!(
        "TERN-USER int80: result=0x{:016x} user-cpl=3 frame-cs=0x33 kernel-cpl=0",
        xorshift_rounds(USER_SEED_INT80)
    ));
    out.assert_code(USER_OK);
}

#[test]
fn user_mode_returns_through_an_exception() {
    skip_test_without_kvm!("user_mode_returns_through_an_exception");
    let out = run_guest("user", &["--append", "ud2"]).run();
    out.assert_line(&format!(
        "TERN-USER ud2: result=0x{:016x} user-cpl=3 frame-cs=0x33 kernel-cpl=0",
        xorshift_rounds(USER_SEED_INT80)
    ));
    out.assert_line("TERN-USER ok");
    out.assert_code(USER_OK);
}

#[test]
fn smp_bsp_starts_the_ap_with_init_sipi_sipi() {
    skip_test_without_kvm!("smp_bsp_starts_the_ap_with_init_sipi_sipi");
    let out = run_guest("smp", &["--smp", "2"]).run();
    out.assert_line("TERN-CPU 0 up");
    out.assert_line("TERN-CPU 1 up");
    out.assert_line("TERN-SMP cpus=2 apic-ids=0,1");
    out.assert_code(SMP_OK);
}

#[test]
fn triple_fault_ends_the_run_with_status_4() {
    skip_test_without_kvm!("triple_fault_ends_the_run_with_status_4");
    let out = run_guest("triple", &[]).run();
    out.assert_lines(&["TERN-TRIPLE: loading an empty IDT and executing ud2"]);
    out.assert_code(GUEST_CRASHED);
    assert!(
        out.stderr.to_lowercase().contains("triple fault"),
        "tern should say the guest triple-faulted\n{}",
        out.describe()
    );
}

/// Lines both virtio_blk modes print after the write checks: three malformed chains, each
/// rejected and followed by a good read.
fn assert_malformed_chains_rejected(out: &common::Outcome) {
    for bad in ["beyond-ram", "readable-data", "self-loop"] {
        out.assert_line_starting(&format!("TERN-BLK bad {bad}: rejected ("));
        out.assert_line(&format!("TERN-BLK good read after {bad}: ok"));
    }
    out.assert_line("TERN-BLK ok");
}

#[test]
fn virtio_blk_guest_driver_reads_writes_flushes_and_survives_bad_chains() {
    skip_test_without_kvm!("virtio_blk_guest_driver_reads_writes_flushes_and_survives_bad_chains");
    let disk = make_disk("blk-rw.img");
    let out = run_guest("virtio_blk", &["--drive", disk.to_str().unwrap()]).run();
    out.assert_line("TERN-BLK found in slot 0 at 0xd0000000");
    out.assert_line("TERN-BLK features: version1=1 flush=1 ro=0");
    out.assert_line_starting("TERN-BLK capacity=2048 sectors ");
    out.assert_line("TERN-BLK sector0: 5445524e2d4449534b2d544553542d31 |TERN-DISK-TEST-1|");
    out.assert_line("TERN-BLK write sector1: status=0");
    out.assert_line("TERN-BLK flush: status=0");
    out.assert_line("TERN-BLK readback sector1: match");
    assert_malformed_chains_rejected(&out);
    out.assert_code(BLK_OK);

    let image = fs::read(&disk).expect("read the disk back");
    assert_eq!(
        &image[SECTOR..2 * SECTOR],
        guest_pattern().as_slice(),
        "sector 1 on the host"
    );
    assert_eq!(&image[..16], DISK_SIGNATURE, "sector 0 must be untouched");
    let _ = fs::remove_file(disk);
}

#[test]
fn virtio_blk_readonly_drive_refuses_writes_with_ioerr() {
    skip_test_without_kvm!("virtio_blk_readonly_drive_refuses_writes_with_ioerr");
    let disk = make_disk("blk-ro.img");
    let before = fs::read(&disk).expect("read the disk");
    let drive = format!("{},readonly", disk.display());
    let out = run_guest("virtio_blk", &["--drive", &drive, "--append", "ro"]).run();
    let features = out.assert_line_starting("TERN-BLK features: version1=1 ");
    assert!(
        features.ends_with(" ro=1"),
        "the device must offer VIRTIO_BLK_F_RO\n{}",
        out.describe()
    );
    out.assert_line("TERN-BLK sector0: 5445524e2d4449534b2d544553542d31 |TERN-DISK-TEST-1|");
    out.assert_line("TERN-BLK write sector1: status=1");
    out.assert_line("TERN-BLK readback sector1: unchanged");
    assert_malformed_chains_rejected(&out);
    out.assert_code(BLK_RO_OK);
    assert!(
        fs::read(&disk).expect("read the disk back") == before,
        "a read-only disk changed"
    );
    let _ = fs::remove_file(disk);
}

#[test]
fn linux_pvh_vmlinux_prints_its_banner() {
    skip_test_without_kvm!("linux_pvh_vmlinux_prints_its_banner");
    let vmlinux = linux_vmlinux();
    let mut running = tern([
        "run",
        "--accel",
        "kvm",
        "--kernel",
        vmlinux.to_str().unwrap(),
        "--append",
        "console=ttyS0 earlyprintk=ttyS0",
    ])
    .timeout(Duration::from_secs(150))
    .spawn();
    let banner = running.wait_for_line("Linux version", Duration::from_secs(120));
    let out = running.kill();
    assert!(
        banner.contains("Linux version 6."),
        "banner: {banner}\n{}",
        out.describe()
    );
}

/// A bad-input run: status 2 and a single line on stderr.
fn assert_bad_input_one_line(out: &common::Outcome) {
    out.assert_code(BAD_INPUT);
    let stderr = out.stderr.trim_end();
    assert!(
        !stderr.is_empty(),
        "no message on stderr\n{}",
        out.describe()
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected a one-line message\n{}",
        out.describe()
    );
}

#[test]
fn cli_garbage_kernel_is_bad_input() {
    let garbage = scratch_file("garbage-kernel.bin");
    // Not ELF, not a bzImage: a deterministic pseudo-random 4 KiB.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&garbage, bytes).expect("write the garbage kernel");
    let out = tern(["run", "--kernel", garbage.to_str().unwrap()]).run();
    assert_bad_input_one_line(&out);
    let _ = fs::remove_file(garbage);
}

#[test]
fn cli_missing_kernel_is_bad_input() {
    let missing = scratch_file("no-such-kernel");
    let _ = fs::remove_file(&missing);
    let out = tern(["run", "--kernel", missing.to_str().unwrap()]).run();
    assert_bad_input_one_line(&out);
    assert!(
        out.stderr.contains("no-such-kernel"),
        "the message should name the file\n{}",
        out.describe()
    );
}

#[test]
fn cli_unknown_flag_is_bad_input() {
    let out = tern(["run", "--kernel", "x", "--no-such-flag"]).run();
    out.assert_code(BAD_INPUT);
    assert!(
        !out.stderr.trim().is_empty(),
        "no message on stderr\n{}",
        out.describe()
    );
}

/// The harness itself: a guest that never ends fails its test after the time limit, with the
/// output so far, instead of hanging the test run.
#[test]
#[should_panic(expected = "tern did not end within")]
fn harness_fails_a_run_that_outlives_its_time_limit() {
    if common::skip_test_without_kvm("harness_fails_a_run_that_outlives_its_time_limit") {
        panic!("tern did not end within (skipped: no /dev/kvm)");
    }
    // The rx mode of `irq` waits for serial input forever.
    run_guest("irq", &["--append", "rx"])
        .timeout(Duration::from_secs(3))
        .run();
}

#[test]
fn harness_kills_a_run_once_the_awaited_line_appears() {
    skip_test_without_kvm!("harness_kills_a_run_once_the_awaited_line_appears");
    let mut running = run_guest("irq", &["--append", "rx"]).spawn();
    let line = running.wait_for_line("RX ready", Duration::from_secs(30));
    assert_eq!(line, "TERN-RX ready");
    let out = running.kill();
    assert!(out.killed && out.code.is_none(), "{}", out.describe());
}
