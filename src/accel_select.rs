//! `--accel auto`: which accelerator will run an x86_64 guest fastest on this host.
//!
//! KVM is the fast path only when the host CPU virtualizes in hardware (VT-x or AMD-V: the
//! `vmx` or `svm` flag in `/proc/cpuinfo`). `/dev/kvm` can also be backed by software
//! virtualization (kvm_pvm, on hosts that are themselves guests without nested
//! virtualization): there, guest kernel code is emulated one instruction at a time, and the
//! JIT runs a whole machine far faster. So: KVM when `/dev/kvm` opens and the CPU has vmx or
//! svm; the JIT when `/dev/kvm` is missing, unusable or software-only.

use std::path::Path;

/// The accelerator `--accel auto` picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// The binary translator.
    Tcg,
}

/// What the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVirt {
    /// `Ok` when /dev/kvm opens read-write, else why not.
    pub kvm: Result<(), String>,
    /// The CPU advertises VT-x (`vmx`) or AMD-V (`svm`).
    pub hardware_virt: bool,
}

impl HostVirt {
    /// Probes this host: opens /dev/kvm, reads the CPU flags.
    pub fn detect() -> HostVirt {
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(|_| ())
            .map_err(|e| format!("/dev/kvm: {e}"));
        HostVirt {
            kvm,
            hardware_virt: cpu_has_hardware_virt(Path::new("/proc/cpuinfo")),
        }
    }
}

/// Whether the `flags` lines of a cpuinfo file list `vmx` or `svm`.
fn cpu_has_hardware_virt(cpuinfo: &Path) -> bool {
    std::fs::read_to_string(cpuinfo).is_ok_and(|text| flags_have_hardware_virt(&text))
}

fn flags_have_hardware_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_once(':').map_or("", |(_, f)| f).split_whitespace())
        .any(|f| f == "vmx" || f == "svm")
}

/// The choice for `host`, and the reason in words for the log line.
pub fn choose(host: &HostVirt) -> (Choice, String) {
    match (&host.kvm, host.hardware_virt) {
        (Ok(()), true) => (Choice::Kvm, "KVM with hardware virtualization".into()),
        (Ok(()), false) => (
            Choice::Tcg,
            "/dev/kvm is software virtualization here (no vmx/svm CPU flag); the JIT is faster"
                .into(),
        ),
        (Err(why), _) => (Choice::Tcg, why.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(kvm: bool, hw: bool) -> HostVirt {
        HostVirt {
            kvm: if kvm {
                Ok(())
            } else {
                Err("/dev/kvm: No such file or directory".into())
            },
            hardware_virt: hw,
        }
    }

    #[test]
    fn kvm_with_vmx_or_svm_wins() {
        assert_eq!(choose(&host(true, true)).0, Choice::Kvm);
    }

    #[test]
    fn software_kvm_loses_to_the_jit() {
        let (c, why) = choose(&host(true, false));
        assert_eq!(c, Choice::Tcg);
        assert!(why.contains("software"), "{why}");
    }

    #[test]
    fn without_kvm_the_jit_runs_and_the_reason_names_the_error() {
        let (c, why) = choose(&host(false, true));
        assert_eq!(c, Choice::Tcg);
        assert!(why.contains("No such file"), "{why}");
    }

    #[test]
    fn cpu_flags_are_read_from_the_flags_lines_only() {
        let amd = "processor\t: 0\nflags\t\t: fpu vme svm sse2\nbugs\t\t: vmx\n";
        assert!(flags_have_hardware_virt(amd));
        let pvm = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\nmodel name\t: vmx box\n";
        assert!(!flags_have_hardware_virt(pvm));
        assert!(flags_have_hardware_virt("flags : vmx"));
        assert!(!flags_have_hardware_virt("flags : vmxe"));
    }
}
