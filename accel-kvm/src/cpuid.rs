//! The CPUID a vCPU reports: KVM's supported set, fitted to this machine's topology.
//!
//! KVM_GET_SUPPORTED_CPUID says what the host and KVM can give a guest. From that, each vCPU
//! gets its own APIC ID and the machine's CPU count in the topology leaves, the hypervisor bit,
//! and no architectural PMU (tern does not virtualise performance counters, so leaf 0xA must
//! not promise them).

use kvm_bindings::kvm_cpuid_entry2;

/// CPUID leaf 1, ECX bit 31: "running under a hypervisor".
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID leaf 1, EDX bit 28: more than one logical processor per package.
const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Level type in ECX[15:8] of leaves 0xB/0x1F.
const LEVEL_TYPE_SMT: u32 = 1;
const LEVEL_TYPE_CORE: u32 = 2;

/// Number of bits needed to hold APIC IDs `0..count`.
fn id_bits(count: u32) -> u32 {
    if count <= 1 {
        0
    } else {
        32 - (count - 1).leading_zeros()
    }
}

/// Rewrites `entries` (KVM's supported CPUID) for vCPU `cpu_index` of `cpu_count`, all cores
/// of one package, one thread per core. The APIC ID equals the vCPU index.
pub fn fit_to_vcpu(entries: &mut [kvm_cpuid_entry2], cpu_index: u32, cpu_count: u32) {
    let apic_id = cpu_index;
    for entry in entries.iter_mut() {
        match entry.function {
            0x1 => {
                entry.ebx =
                    (entry.ebx & 0x0000_ffff) | (apic_id << 24) | (cpu_count.min(255) << 16);
                entry.ecx |= LEAF1_ECX_HYPERVISOR;
                if cpu_count > 1 {
                    entry.edx |= LEAF1_EDX_HTT;
                } else {
                    entry.edx &= !LEAF1_EDX_HTT;
                }
            }
            0x4 => {
                // Cache topology: EAX[31:26] = cores per package - 1; EAX[25:14] = threads
                // sharing this cache - 1 (private L1/L2, shared L3).
                let level = (entry.eax >> 5) & 0x7;
                let sharing = if level >= 3 { cpu_count - 1 } else { 0 };
                entry.eax = (entry.eax & 0x3fff)
                    | ((cpu_count - 1).min(63) << 26)
                    | (sharing.min(0xfff) << 14);
            }
            0xa => {
                entry.eax = 0;
                entry.ebx = 0;
                entry.ecx = 0;
                entry.edx = 0;
            }
            0xb | 0x1f => {
                entry.edx = apic_id;
                match entry.index {
                    0 => {
                        entry.eax = 0;
                        entry.ebx = 1;
                        entry.ecx = (LEVEL_TYPE_SMT << 8) | entry.index;
                    }
                    1 => {
                        entry.eax = id_bits(cpu_count);
                        entry.ebx = cpu_count;
                        entry.ecx = (LEVEL_TYPE_CORE << 8) | entry.index;
                    }
                    _ => {
                        entry.eax = 0;
                        entry.ebx = 0;
                        entry.ecx = entry.index;
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0xffff_ffff,
            ebx: 0xffff_ffff,
            ecx: 0,
            edx: 0xffff_ffff,
            ..Default::default()
        }
    }

    #[test]
    fn leaf1_carries_apic_id_count_and_hypervisor_bit() {
        let mut e = [entry(1, 0)];
        fit_to_vcpu(&mut e, 3, 4);
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_ne!(e[0].ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(e[0].edx & LEAF1_EDX_HTT, 0);
        let mut single = [entry(1, 0)];
        fit_to_vcpu(&mut single, 0, 1);
        assert_eq!(single[0].edx & LEAF1_EDX_HTT, 0);
    }

    #[test]
    fn extended_topology_describes_one_package() {
        let mut e = [entry(0xb, 0), entry(0xb, 1), entry(0xb, 2)];
        fit_to_vcpu(&mut e, 2, 3);
        assert_eq!((e[0].eax, e[0].ebx, e[0].ecx, e[0].edx), (0, 1, 0x100, 2));
        assert_eq!((e[1].eax, e[1].ebx, e[1].ecx, e[1].edx), (2, 3, 0x201, 2));
        assert_eq!((e[2].ebx, e[2].ecx >> 8), (0, 0));
    }

    #[test]
    fn no_pmu_is_promised() {
        let mut e = [entry(0xa, 0)];
        fit_to_vcpu(&mut e, 0, 1);
        assert_eq!(e[0].eax, 0);
    }

    #[test]
    fn id_bits_rounds_up() {
        assert_eq!([1, 2, 3, 4, 5].map(id_bits), [0, 1, 2, 2, 3]);
    }
}
