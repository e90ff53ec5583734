//! The riscv64 machine on the JIT: Debian's stock kernel through Debian's OpenSBI, with the
//! initramfs built by `scripts/guests/build.sh --only riscv64`, checked by its console lines,
//! the host files behind its disks, and tern's exit status.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::tern;

/// The riscv64 guest set: `$TERN_GUEST_DIR_RISCV64`, else
/// `${TERN_CACHE:-$HOME/.cache/tern}/guests/current-riscv64`. Fails the test if missing.
fn guest_dir() -> PathBuf {
    let dir = match std::env::var_os("TERN_GUEST_DIR_RISCV64") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("TERN_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                        .join(".cache/tern")
                });
            cache.join("guests/current-riscv64")
        }
    };
    for f in ["Image", "initramfs.cpio.gz", "fw_dynamic.bin"] {
        assert!(
            dir.join(f).is_file(),
            "no riscv64 guest {f} in {}: run scripts/guests/build.sh --only riscv64 (or set TERN_GUEST_DIR_RISCV64)",
            dir.display()
        );
    }
    dir
}

/// `tern run --arch riscv64` with the guest set and `extra` arguments.
fn riscv64(append: &str, extra: &[&str]) -> common::TernRun {
    let dir = guest_dir();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--arch".into(),
        "riscv64".into(),
        "--bios".into(),
        dir.join("fw_dynamic.bin").display().to_string(),
        "--kernel".into(),
        dir.join("Image").display().to_string(),
        "--initrd".into(),
        dir.join("initramfs.cpio.gz").display().to_string(),
        "--append".into(),
        append.into(),
        "--timeout".into(),
        "120".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    tern(args).timeout(Duration::from_secs(150))
}

#[test]
fn debian_kernel_boots_through_opensbi_to_its_init_and_powers_off() {
    let out = riscv64("console=ttyS0", &[]).run();
    out.assert_code(0);
    out.assert_line("TERN-GUEST-INIT-OK");
    out.assert_line_starting("TERN-KERNEL: ")
        .contains("riscv64");
    assert!(
        out.assert_line_starting("TERN-MD5: ").contains(" ok "),
        "{}",
        out.describe()
    );
    out.assert_line("TERN-GUEST-DONE");
    assert!(
        out.stdout.contains("OpenSBI v"),
        "the firmware ran\n{}",
        out.describe()
    );
}

#[test]
fn the_guest_reads_and_writes_a_virtio_blk_disk_backed_by_a_host_file() {
    common::assert_guest_reads_and_writes_the_test_disk("riscv64-disk.img", &|disk| {
        riscv64("console=ttyS0 tern.quick", &["--drive", disk]).run()
    });
}

#[test]
fn two_harts_are_both_online() {
    let out = riscv64("console=ttyS0 tern.quick", &["--smp", "2"]).run();
    out.assert_code(0);
    assert!(
        out.assert_line_starting("TERN-CPU: ")
            .ends_with("(online: 2)"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_command_typed_on_stdin_runs_in_the_guest_shell() {
    let running = riscv64("console=ttyS0 tern.quick tern.shell", &[]).spawn();
    common::assert_stdin_command_runs_in_the_guest_shell(running, Duration::from_secs(120));
}

#[test]
fn a_kernel_that_crashes_early_ends_the_run_with_a_clear_message() {
    // A valid Image header followed by zeros: illegal instructions from the first one, with no
    // trap vector set up, so the hart traps at the same place forever. tern sees the loop and
    // ends the run as a guest crash (status 4) naming the trap, well before the time limit.
    let mut image = vec![0u8; 64 << 10];
    image[16..24].copy_from_slice(&(64u64 << 10).to_le_bytes());
    image[56..60].copy_from_slice(b"RSC\x05");
    let kernel = common::scratch_file("riscv64-bad-Image");
    std::fs::write(&kernel, &image).unwrap();
    let dir = guest_dir();
    let out = tern([
        "run",
        "--arch",
        "riscv64",
        "--bios",
        dir.join("fw_dynamic.bin").to_str().unwrap(),
        "--kernel",
        kernel.to_str().unwrap(),
        "--timeout",
        "60",
    ])
    .timeout(Duration::from_secs(90))
    .run();
    out.assert_code(4);
    assert!(
        out.stderr.contains("guest crashed") && out.stderr.contains("is stuck: exception"),
        "{}",
        out.describe()
    );
    assert!(
        out.elapsed < Duration::from_secs(30),
        "the loop was noticed quickly\n{}",
        out.describe()
    );
    std::fs::remove_file(&kernel).ok();
}

#[test]
fn missing_firmware_names_the_package_and_exits_2() {
    let dir = guest_dir();
    let out = tern([
        "run",
        "--arch",
        "riscv64",
        "--bios",
        "/nonexistent/fw_dynamic.bin",
        "--kernel",
        dir.join("Image").to_str().unwrap(),
    ])
    .run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("firmware") && out.stderr.contains("opensbi"),
        "{}",
        out.describe()
    );
}
