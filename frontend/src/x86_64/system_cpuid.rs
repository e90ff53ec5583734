//! `cpuid` for a whole machine on the JIT (system mode): what a kernel needs to see besides
//! what a user program does (`super::system::cpuid`), and only what tern implements.
//!
//! On top of the user-mode features: PSE, MSR, PAE, APIC, PGE, PAT (leaf 1 EDX), TSC-deadline
//! timer and "running under a hypervisor" (leaf 1 ECX), SMEP (leaf 7 EBX, a paging rule that
//! needs no instruction), NX, 1 GiB pages and long mode (leaf 0x8000_0001 EDX), an invariant
//! TSC (leaf 0x8000_0007: the TSC counts host monotonic time at a fixed rate), and the
//! address sizes of the page walk (leaf 0x8000_0008). Leaf 1 EBX carries the vCPU's initial
//! APIC ID, and HTT with the logical processor count when there is more than one vCPU.
//!
//! Left out on purpose: SMAP and FSGSBASE (their instructions, `stac`/`clac` and
//! `rd/wrfsbase`, are not translated), x2APIC and MTRRs (not modelled), CLFLUSH, MMX, SSE3 and
//! later, XSAVE/AVX, PCID (no per-PCID TLB), MCE/MCA, SYSENTER.

use super::sys::mmu::MAXPHYADDR;
use super::system::{cpuid as user_cpuid, EXT1_ECX, EXT1_EDX, LEAF1_ECX, LEAF1_EDX};

/// Leaf 1 EDX bits added for a kernel: PSE (3), MSR (5), PAE (6), APIC (9), PGE (13), PAT (16).
pub const SYSTEM_LEAF1_EDX: u32 = LEAF1_EDX | 1 << 3 | 1 << 5 | 1 << 6 | 1 << 9 | 1 << 13 | 1 << 16;
/// Leaf 1 EDX: HTT, set when the package has more than one logical processor.
const HTT: u32 = 1 << 28;
/// Leaf 1 ECX bits added: TSC-deadline (24), hypervisor present (31).
pub const SYSTEM_LEAF1_ECX: u32 = LEAF1_ECX | 1 << 24 | 1 << 31;
/// Leaf 7 EBX: SMEP (7).
pub const SYSTEM_LEAF7_EBX: u32 = 1 << 7;
/// Leaf 0x8000_0001 EDX bits added: NX (20), 1 GiB pages (26).
pub const SYSTEM_EXT1_EDX: u32 = EXT1_EDX | 1 << 20 | 1 << 26;
/// Leaf 0x8000_0007 EDX: invariant TSC (8).
const INVARIANT_TSC: u32 = 1 << 8;
/// Linear-address bits (4-level paging).
const LINEAR_BITS: u32 = 48;
/// Highest extended leaf in system mode.
const MAX_EXTENDED: u32 = 0x8000_0008;

/// `cpuid` leaf `leaf`, subleaf `sub`, as vCPU `apic_id` of a machine with `cpus` vCPUs sees
/// it: `[eax, ebx, ecx, edx]`.
pub fn cpuid(leaf: u32, sub: u32, apic_id: u8, cpus: u32) -> [u32; 4] {
    match leaf {
        1 => {
            let [eax, _, _, _] = user_cpuid(1, 0);
            let (htt, count) = if cpus > 1 {
                (HTT, cpus.min(255))
            } else {
                (0, 1)
            };
            let ebx = u32::from(apic_id) << 24 | count << 16;
            [eax, ebx, SYSTEM_LEAF1_ECX, SYSTEM_LEAF1_EDX | htt]
        }
        7 if sub == 0 => [0, SYSTEM_LEAF7_EBX, 0, 0],
        0x8000_0000 => [MAX_EXTENDED, 0, 0, 0],
        0x8000_0001 => [0, 0, EXT1_ECX, SYSTEM_EXT1_EDX],
        0x8000_0007 => [0, 0, 0, INVARIANT_TSC],
        0x8000_0008 => [MAXPHYADDR | LINEAR_BITS << 8, 0, 0, 0],
        // The vendor, the brand string, and zeros past the maximum leaves.
        _ => user_cpuid(leaf, sub),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_sees_paging_apic_and_msr_features_and_nothing_unimplemented() {
        let [_, _, ecx, edx] = cpuid(1, 0, 0, 1);
        for (bit, what) in [(3, "PSE"), (5, "MSR"), (6, "PAE"), (9, "APIC"), (13, "PGE")] {
            assert_ne!(edx & 1 << bit, 0, "{what}");
        }
        assert_ne!(edx & 1 << 25, 0, "SSE still");
        assert_eq!(edx & 1 << 23, 0, "no MMX");
        assert_eq!(edx & 1 << 12, 0, "no MTRR");
        assert_eq!(edx & 1 << 19, 0, "no CLFLUSH");
        assert_eq!(edx & 1 << 28, 0, "one logical processor: no HTT");
        assert_ne!(ecx & 1 << 24, 0, "TSC-deadline timer");
        assert_eq!(ecx & 1 << 21, 0, "no x2APIC");
        assert_eq!(ecx & 1 << 17, 0, "no PCID");
        assert_eq!(ecx & 1 << 26, 0, "no XSAVE");
        let [_, ebx, _, _] = cpuid(7, 0, 0, 1);
        assert_ne!(ebx & 1 << 7, 0, "SMEP");
        assert_eq!(ebx & 1 << 20, 0, "no SMAP: stac/clac are not translated");
        assert_eq!(ebx & 1, 0, "no FSGSBASE");
    }

    #[test]
    fn each_vcpu_sees_its_apic_id_and_the_package_size() {
        let [_, ebx, _, edx] = cpuid(1, 0, 3, 4);
        assert_eq!(ebx >> 24, 3);
        assert_eq!((ebx >> 16) & 0xff, 4);
        assert_ne!(edx & HTT, 0);
    }

    #[test]
    fn long_mode_nx_1g_pages_and_the_page_walks_address_sizes() {
        assert_eq!(cpuid(0x8000_0000, 0, 0, 1)[0], 0x8000_0008);
        let [_, _, _, edx] = cpuid(0x8000_0001, 0, 0, 1);
        assert_ne!(edx & 1 << 29, 0, "LM");
        assert_ne!(edx & 1 << 20, 0, "NX");
        assert_ne!(edx & 1 << 26, 0, "1 GiB pages");
        assert_ne!(edx & 1 << 11, 0, "SYSCALL");
        let [eax, _, _, _] = cpuid(0x8000_0008, 0, 0, 1);
        assert_eq!(eax & 0xff, MAXPHYADDR);
        assert_eq!((eax >> 8) & 0xff, 48);
        assert_ne!(cpuid(0x8000_0007, 0, 0, 1)[3] & 1 << 8, 0, "invariant TSC");
    }

    #[test]
    fn the_vendor_and_brand_are_the_user_modes() {
        assert_eq!(cpuid(0, 0, 0, 1), user_cpuid(0, 0));
        assert_eq!(cpuid(0x8000_0003, 0, 0, 1), user_cpuid(0x8000_0003, 0));
    }
}
