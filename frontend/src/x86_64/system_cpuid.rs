//! `cpuid` for a whole machine on the JIT (system mode): what a kernel needs to see besides
//! what a user program does (`super::system::cpuid`), and only what tern implements.
//!
//! **Identity.** The processor says it is a "GenuineIntel" family 6 part, of a model no Intel
//! processor has ([`MODEL`]), running under a hypervisor. Why Intel and not tern's own vendor:
//! Linux trusts CPUID for the TSC frequency only on Intel (leaf 0x15 in
//! `native_calibrate_tsc`, leaf 0x16 in `cpu_khz_from_cpuid`) and otherwise calibrates the
//! TSC against the PIT, which fails on a loaded host; and for a vendor it does not know it
//! assumes Meltdown and turns on page-table isolation, a CR3 write on every kernel entry and
//! exit, which an emulator pays dearly for. An unknown model keeps every model-keyed quirk
//! table of the kernel (errata, vulnerability lists, perf, idle and TSC tables) from
//! matching: the kernel goes by the feature bits and by `IA32_ARCH_CAPABILITIES` instead.
//!
//! **Features.** On top of the user-mode features: PSE, MSR, PAE, APIC, PGE, PAT (leaf 1
//! EDX), TSC-deadline timer and "running under a hypervisor" (leaf 1 ECX), an APIC timer that
//! runs in every idle state (ARAT, leaf 6), SMEP (leaf 7 EBX, a paging rule that needs no
//! instruction), `IA32_ARCH_CAPABILITIES` (leaf 7 EDX, see [`super::sys::msr`]), the
//! topology of the vCPUs (leaf 0xB), the TSC and crystal frequencies (leaves 0x15 and 0x16),
//! NX, 1 GiB pages and long mode (leaf 0x8000_0001 EDX), an invariant TSC (leaf 0x8000_0007:
//! the TSC counts host monotonic time at a fixed rate), and the address sizes of the page
//! walk (leaf 0x8000_0008). Leaf 1 EBX carries the vCPU's initial APIC ID, and HTT with the
//! logical processor count when there is more than one vCPU.
//!
//! Left out on purpose: SMAP and FSGSBASE (their instructions, `stac`/`clac` and
//! `rd/wrfsbase`, are not translated), x2APIC and MTRRs (not modelled), CLFLUSH, MMX, SSE3 and
//! later, XSAVE/AVX, PCID (no per-PCID TLB), MCE/MCA, SYSENTER, MONITOR/MWAIT, performance
//! monitoring (leaf 0xA is zero), the speculation controls (no IBRS/IBPB/STIBP/SSBD: nothing
//! speculates). Cache descriptors (leaves 2 and 4) describe no cache: tern has none to
//! describe, and Linux then only loses the cache sizes in /proc/cpuinfo.
//!
//! **Leaves in between.** The maximum basic leaf is 0x16, so every leaf up to it answers as
//! the SDM describes a processor without that feature: zeros, except leaf 2 (one round of
//! null descriptors) and the leaves above. Leaves past the maximum basic or extended leaf,
//! and the hypervisor range 0x4000_0000 (no paravirtual interface is offered), read as zeros.

use super::sys::mmu::MAXPHYADDR;
use super::system::{cpuid as user_cpuid, EXT1_ECX, EXT1_EDX, LEAF1_ECX, LEAF1_EDX};

/// The vendor string, as leaf 0 returns it in EBX, EDX, ECX.
pub const VENDOR: [u8; 12] = *b"GenuineIntel";
/// Family 6: every Intel Core, Atom and Xeon processor before family 18/19 is family 6, and
/// Linux's Intel code paths (microcode revision, MISC_ENABLE, constant TSC, PAT) take the
/// family-6 branch.
pub const FAMILY: u32 = 6;
/// Model 0x6B: no Intel processor has it, so no table of Linux keyed by family 6 models
/// matches (checked against arch/x86/include/asm/intel-family.h up to Linux 6.17, which
/// lists 0x6A Ice Lake-X and 0x6C Ice Lake-D around it, and against the vulnerability
/// lists of arch/x86/kernel/cpu/common.c). Anything below 15 would be taken for a P6 or
/// Pentium M (Linux then drops PAT for an erratum of those and picks the P6 PMU); 0x6B is
/// also past the thresholds Linux applies to "new enough" family 6 models (0xD for
/// MISC_ENABLE's CPUID limit, 0xE for a constant-rate TSC).
pub const MODEL: u32 = 0x6b;
/// Stepping 0.
pub const STEPPING: u32 = 0;
/// Leaf 1 EAX: stepping (3:0), model (7:4), family (11:8), extended model (19:16).
pub const SIGNATURE: u32 = (MODEL >> 4) << 16 | FAMILY << 8 | (MODEL & 0xf) << 4 | STEPPING;
/// Highest basic leaf: 0x16, the processor frequency leaf Linux reads for `cpu_khz`.
pub const MAX_BASIC: u32 = 0x16;
/// Highest extended leaf in system mode.
pub const MAX_EXTENDED: u32 = 0x8000_0008;

/// Leaf 1 EDX bits added for a kernel: PSE (3), MSR (5), PAE (6), APIC (9), PGE (13), PAT (16).
pub const SYSTEM_LEAF1_EDX: u32 = LEAF1_EDX | 1 << 3 | 1 << 5 | 1 << 6 | 1 << 9 | 1 << 13 | 1 << 16;
/// Leaf 1 EDX: HTT, set when the package has more than one logical processor.
const HTT: u32 = 1 << 28;
/// Leaf 1 ECX bits added: TSC-deadline (24), hypervisor present (31).
pub const SYSTEM_LEAF1_ECX: u32 = LEAF1_ECX | 1 << 24 | 1 << 31;
/// Leaf 2 EAX: AL = 1 (one `cpuid(2)` gives all descriptors), every other byte a null
/// descriptor; EBX, ECX, EDX are null descriptors too.
const LEAF2_EAX: u32 = 1;
/// Leaf 6 EAX: ARAT (2), the APIC timer keeps running in idle states (tern's counts host
/// time whatever the vCPU does), so Linux needs no broadcast timer.
pub const SYSTEM_LEAF6_EAX: u32 = 1 << 2;
/// Leaf 7 EBX: SMEP (7).
pub const SYSTEM_LEAF7_EBX: u32 = 1 << 7;
/// Leaf 7 EDX: IA32_ARCH_CAPABILITIES (29), the MSR that lists the speculative-execution
/// issues the processor is not affected by ([`super::sys::msr::ARCH_CAPABILITIES`]).
pub const SYSTEM_LEAF7_EDX: u32 = 1 << 29;
/// Leaf 0x8000_0001 EDX bits added: NX (20), 1 GiB pages (26).
pub const SYSTEM_EXT1_EDX: u32 = EXT1_EDX | 1 << 20 | 1 << 26;
/// Leaf 0x8000_0007 EDX: invariant TSC (8).
const INVARIANT_TSC: u32 = 1 << 8;
/// Linear-address bits (4-level paging).
const LINEAR_BITS: u32 = 48;

/// Leaf 0xB level types (ECX 15:8).
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// The core crystal clock of leaf 0x15, in Hz: 1 GHz, the rate at which tern's local APIC
/// timer counts (`devices::apic::lapic::APIC_BUS_HZ`). Linux sets its APIC timer period
/// from this crystal (`lapic_timer_period = crystal_khz * 1000 / HZ`), so the two must agree.
pub const CRYSTAL_HZ: u64 = 1_000_000_000;
/// The largest TSC/crystal ratio numerator Linux computes with correctly:
/// `native_calibrate_tsc` returns `crystal_khz * numerator / denominator` in 32-bit
/// arithmetic, and the crystal is 10^6 kHz.
pub const MAX_RATIO_NUMERATOR: u64 = u32::MAX as u64 / (CRYSTAL_HZ / 1000);

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The TSC/crystal ratio of leaf 0x15 for a TSC of `tsc_hz`: `(denominator, numerator)`
/// (EAX, EBX), `None` for a TSC of 0 Hz (the leaf then reads zeros: "not enumerated").
///
/// Exact, so that the kernel's TSC frequency is the machine's to the hertz, whenever the
/// reduced fraction `tsc_hz / CRYSTAL_HZ` has a numerator of at most
/// [`MAX_RATIO_NUMERATOR`]: every multiple of 1 GHz up to 4294 GHz, and every multiple of
/// 1 MHz up to 4.294 GHz (the numerator is then at most the frequency in MHz). Otherwise it
/// is the closest fraction with such a numerator (a convergent or semiconvergent of the
/// continued fraction), off by less than a millionth for any frequency of a real TSC.
pub fn tsc_crystal_ratio(tsc_hz: u64) -> Option<(u32, u32)> {
    if tsc_hz == 0 {
        return None;
    }
    let g = gcd(tsc_hz, CRYSTAL_HZ);
    let (num, den) = (tsc_hz / g, CRYSTAL_HZ / g);
    if num <= MAX_RATIO_NUMERATOR {
        // den divides 10^9, so it fits.
        return Some((den as u32, num as u32));
    }
    let (n, d) = closest_fraction(num, den, MAX_RATIO_NUMERATOR);
    Some((d as u32, n as u32))
}

/// The fraction `n/d` closest to `p/q` with `1 <= n <= max_num` and `d >= 1`, given that
/// `p/q` itself (in lowest terms) has `p > max_num`. Walks the convergents of the continued
/// fraction of `p/q` until the numerator would pass `max_num`, then picks the better of the
/// last convergent and the largest semiconvergent that still fits (the best approximations
/// with a bounded numerator are among those two).
fn closest_fraction(p: u64, q: u64, max_num: u64) -> (u64, u64) {
    let (p, q, max) = (u128::from(p), u128::from(q), u128::from(max_num));
    // Convergents h/k; (h0, k0) the one before (h1, k1). Start from 0/1 and 1/0.
    let (mut h0, mut k0, mut h1, mut k1) = (0u128, 1u128, 1u128, 0u128);
    let (mut a_p, mut a_q) = (p, q);
    while a_q != 0 {
        let a = a_p / a_q;
        let (h2, k2) = (a * h1 + h0, a * k1 + k0);
        if h2 > max {
            // The semiconvergents (t*h1 + h0)/(t*k1 + k0), t < a, lie between h0/k0 and
            // h2/k2. The largest that fits and h1/k1 are neighbours in the Stern-Brocot
            // tree with p/q between them, and any fraction between two neighbours has a
            // numerator of at least the sum of theirs, which is past `max`: the closest
            // fraction that fits is one of the two.
            let t = (max - h0) / h1;
            let semi = (t * h1 + h0, t * k1 + k0);
            let last = (h1, k1);
            // Distance to p/q, compared without division: |h*q - p*k| / (k*q).
            let err = |(h, k): (u128, u128)| (h * q).abs_diff(p * k);
            let better = if last.1 == 0 || (semi.1 != 0 && err(semi) * last.1 < err(last) * semi.1)
            {
                semi
            } else {
                last
            };
            return (better.0 as u64, better.1.max(1) as u64);
        }
        (h0, k0, h1, k1) = (h1, k1, h2, k2);
        (a_p, a_q) = (a_q, a_p % a_q);
    }
    // Not reached when p > max_num (the last convergent is p/q itself).
    (max_num, 1)
}

/// Leaf 0x15: `[denominator, numerator, crystal Hz, 0]`, zeros when the TSC rate is unknown.
fn leaf_15(tsc_hz: u64) -> [u32; 4] {
    match tsc_crystal_ratio(tsc_hz) {
        Some((den, num)) => [den, num, CRYSTAL_HZ as u32, 0],
        None => [0; 4],
    }
}

/// Leaf 0x16: base and maximum frequency (the TSC's: the processor has no other clock) and
/// bus (reference) frequency, in MHz, 16 bits each.
fn leaf_16(tsc_hz: u64) -> [u32; 4] {
    if tsc_hz == 0 {
        return [0; 4];
    }
    let mhz = (tsc_hz.saturating_add(500_000) / 1_000_000).min(0xffff) as u32;
    [mhz, mhz, (CRYSTAL_HZ / 1_000_000) as u32, 0]
}

/// Leaf 0xB, subleaf `sub`: one logical processor per core, `cpus` cores in the package, the
/// x2APIC ID (= the APIC ID) in EDX. Level 0 is SMT, level 1 the core; higher levels are
/// invalid (type 0), which ends the kernel's walk.
fn leaf_b(sub: u32, apic_id: u8, cpus: u32) -> [u32; 4] {
    let id = u32::from(apic_id);
    match sub {
        0 => [0, 1, LEVEL_SMT << 8, id],
        1 => {
            // Bits of the APIC ID below the package ID: enough for `cpus` IDs.
            let shift = 32 - (cpus.max(1) - 1).leading_zeros();
            [shift, cpus.max(1), 1 | LEVEL_CORE << 8, id]
        }
        _ => [0, 0, sub & 0xff, id],
    }
}

fn word(bytes: &[u8; 12], i: usize) -> u32 {
    u32::from_le_bytes([
        bytes[4 * i],
        bytes[4 * i + 1],
        bytes[4 * i + 2],
        bytes[4 * i + 3],
    ])
}

/// `cpuid` leaf `leaf`, subleaf `sub`, as vCPU `apic_id` of a machine with `cpus` vCPUs and a
/// TSC counting at `tsc_hz` sees it: `[eax, ebx, ecx, edx]`.
///
/// `tsc_hz` is the rate of the TSC the guest reads (`rdtsc`, `IA32_TSC`, the TSC-deadline
/// timer); leaves 0x15 and 0x16 report it (see [`tsc_crystal_ratio`]), 0 reports nothing.
pub fn cpuid(leaf: u32, sub: u32, apic_id: u8, cpus: u32, tsc_hz: u64) -> [u32; 4] {
    let cpus = cpus.clamp(1, 255);
    match leaf {
        0 => [
            MAX_BASIC,
            word(&VENDOR, 0),
            word(&VENDOR, 2),
            word(&VENDOR, 1),
        ],
        1 => {
            let (htt, count) = if cpus > 1 { (HTT, cpus) } else { (0, 1) };
            let ebx = u32::from(apic_id) << 24 | count << 16;
            [SIGNATURE, ebx, SYSTEM_LEAF1_ECX, SYSTEM_LEAF1_EDX | htt]
        }
        2 => [LEAF2_EAX, 0, 0, 0],
        6 => [SYSTEM_LEAF6_EAX, 0, 0, 0],
        7 if sub == 0 => [0, SYSTEM_LEAF7_EBX, 0, SYSTEM_LEAF7_EDX],
        0xb => leaf_b(sub, apic_id, cpus),
        0x15 => leaf_15(tsc_hz),
        0x16 => leaf_16(tsc_hz),
        // Leaves 3, 4, 5, 7.n, 8, 9, 0xA, 0xC..=0x14: the features they describe are absent.
        3..=MAX_BASIC => [0; 4],
        0x8000_0000 => [MAX_EXTENDED, 0, 0, 0],
        0x8000_0001 => [0, 0, EXT1_ECX, SYSTEM_EXT1_EDX],
        // The brand string is the user mode's.
        0x8000_0002..=0x8000_0004 => user_cpuid(leaf, sub),
        0x8000_0007 => [0, 0, 0, INVARIANT_TSC],
        0x8000_0008 => [MAXPHYADDR | LINEAR_BITS << 8, 0, 0, 0],
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 GHz, the frequency the machine's TSC is given in the tests.
    const GHZ: u64 = 1_000_000_000;

    fn id(leaf: u32, sub: u32) -> [u32; 4] {
        cpuid(leaf, sub, 0, 1, GHZ)
    }

    /// What Linux 6.1's `native_calibrate_tsc` computes from leaf 0x15, in its 32-bit
    /// arithmetic: (tsc_khz, lapic_timer_period at HZ=250).
    fn linux_tsc_khz(leaf15: [u32; 4]) -> (u32, u32) {
        let [den, num, crystal_hz, _] = leaf15;
        let crystal_khz = crystal_hz / 1000;
        (
            crystal_khz.wrapping_mul(num) / den,
            crystal_khz * 1000 / 250,
        )
    }

    fn text(words: &[u32]) -> String {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_kernel_sees_an_intel_family_6_processor_of_an_unknown_model() {
        let [max, ebx, ecx, edx] = id(0, 0);
        assert_eq!(text(&[ebx, edx, ecx]), "GenuineIntel");
        assert!(max >= 0x16, "leaf 0x16 must be reachable");
        let [eax, _, _, _] = id(1, 0);
        let family = (eax >> 8) & 0xf;
        let model = (eax >> 4) & 0xf | ((eax >> 16) & 0xf) << 4;
        assert_eq!(family, 6);
        assert_eq!((eax >> 20) & 0xff, 0, "no extended family for family 6");
        assert_eq!(model, 0x6b);
        assert!(
            model >= 15,
            "below 15 Linux takes it for a P6 and drops PAT"
        );
    }

    #[test]
    fn a_kernel_sees_paging_apic_and_msr_features_and_nothing_unimplemented() {
        let [_, _, ecx, edx] = id(1, 0);
        for (bit, what) in [(3, "PSE"), (5, "MSR"), (6, "PAE"), (9, "APIC"), (13, "PGE")] {
            assert_ne!(edx & 1 << bit, 0, "{what}");
        }
        assert_ne!(edx & 1 << 16, 0, "PAT");
        assert_ne!(edx & 1 << 25, 0, "SSE still");
        assert_eq!(edx & 1 << 23, 0, "no MMX");
        assert_eq!(edx & 1 << 12, 0, "no MTRR");
        assert_eq!(edx & 1 << 19, 0, "no CLFLUSH");
        assert_eq!(edx & 1 << 14, 0, "no MCA");
        assert_eq!(edx & 1 << 28, 0, "one logical processor: no HTT");
        assert_ne!(ecx & 1 << 24, 0, "TSC-deadline timer");
        assert_ne!(ecx & 1 << 31, 0, "hypervisor");
        assert_eq!(ecx & 1 << 21, 0, "no x2APIC");
        assert_eq!(ecx & 1 << 17, 0, "no PCID");
        assert_eq!(ecx & 1 << 26, 0, "no XSAVE");
        assert_eq!(ecx & 1 << 27, 0, "no OSXSAVE");
        assert_eq!(ecx & 1 << 3, 0, "no MONITOR/MWAIT");
        assert_eq!(ecx & 1 << 15, 0, "no PDCM (no IA32_PERF_CAPABILITIES)");
        let [max_sub, ebx, ecx7, edx7] = id(7, 0);
        assert_eq!(max_sub, 0, "no subleaf 1");
        assert_ne!(ebx & 1 << 7, 0, "SMEP");
        assert_eq!(ebx & 1 << 20, 0, "no SMAP: stac/clac are not translated");
        assert_eq!(ebx & 1, 0, "no FSGSBASE");
        assert_eq!(ebx & 1 << 1, 0, "no IA32_TSC_ADJUST");
        assert_eq!(ecx7, 0);
        assert_ne!(edx7 & 1 << 29, 0, "IA32_ARCH_CAPABILITIES");
        for (bit, what) in [
            (26, "IBRS/IBPB"),
            (27, "STIBP"),
            (28, "L1D_FLUSH"),
            (31, "SSBD"),
        ] {
            assert_eq!(edx7 & 1 << bit, 0, "no {what}: no MSR behind it");
        }
        assert_eq!(edx7 & 1 << 30, 0, "no IA32_CORE_CAPABILITIES");
        assert_eq!(edx7 & !(1 << 29), 0, "nothing else");
    }

    #[test]
    fn leaf_15_gives_linux_the_tsc_frequency_exactly_and_the_apic_timer_rate() {
        let (khz, lapic_period) = linux_tsc_khz(id(0x15, 0));
        assert_eq!(khz, 1_000_000);
        assert_eq!(lapic_period, 4_000_000, "1 GHz APIC bus / HZ=250");
        assert_eq!(id(0x15, 0)[2] as u64, devices::apic::lapic::APIC_BUS_HZ);
        for hz in [
            2_500_000_000u64,
            3_000_000_000,
            2_394_000_000,
            1_234_000_000,
            4_294_000_000,
            7_000_000_000,
        ] {
            let leaf = cpuid(0x15, 0, 0, 1, hz);
            let (khz, _) = linux_tsc_khz(leaf);
            assert_eq!(u64::from(khz), hz / 1000, "{hz} Hz: {leaf:x?}");
            let [den, num, crystal, _] = leaf;
            assert_eq!(
                u64::from(crystal) * u64::from(num),
                hz * u64::from(den),
                "SDM formula"
            );
        }
    }

    #[test]
    fn an_awkward_tsc_frequency_is_approximated_within_linux_arithmetic() {
        // The best fraction with a numerator of at most 4294 (found by brute force).
        assert_eq!(tsc_crystal_ratio(2_394_567_891), Some((1399, 3350)));
        for hz in [
            2_394_567_891u64,
            4_999_999_999,
            1_000_000_001,
            3_333_333_333,
        ] {
            let leaf = cpuid(0x15, 0, 0, 1, hz);
            let [den, num, _, _] = leaf;
            assert!(u64::from(num) <= MAX_RATIO_NUMERATOR, "{hz}: {leaf:x?}");
            assert!(den > 0 && num > 0);
            let (khz, _) = linux_tsc_khz(leaf);
            let err = (f64::from(khz) * 1000.0 - hz as f64).abs() / hz as f64;
            assert!(err < 1e-6, "{hz} Hz read as {khz} kHz");
        }
    }

    #[test]
    fn the_closest_fraction_is_the_best_with_a_bounded_numerator() {
        // pi ~ 355/113 (numerator <= 400), 22/7 (<= 100).
        let (p, q) = (3_141_592_653u64, 1_000_000_000u64);
        assert_eq!(closest_fraction(p, q, 400), (355, 113));
        assert_eq!(closest_fraction(p, q, 100), (22, 7));
        // Brute force agrees on a few bounds.
        let e = |(n, d): (u64, u64)| (n as f64 / d as f64 - p as f64 / q as f64).abs();
        for max in [5u64, 17, 60, 300] {
            let (n, d) = closest_fraction(p, q, max);
            let best = (1..=max)
                .flat_map(|n| (1..=max).map(move |d| (n, d)))
                .min_by(|a, b| e(*a).total_cmp(&e(*b)))
                .unwrap();
            assert!(
                e((n, d)) <= e(best) + 1e-15,
                "max {max}: {n}/{d} vs {best:?}"
            );
        }
        // A ratio whose integer part alone is too big: the largest numerator over 1.
        assert_eq!(closest_fraction(9_000_000, 1, 4294), (4294, 1));
    }

    #[test]
    fn leaf_16_reports_the_tsc_in_mhz_and_the_crystal_as_bus_clock() {
        assert_eq!(id(0x16, 0), [1000, 1000, 1000, 0]);
        assert_eq!(cpuid(0x16, 0, 0, 1, 2_394_567_891)[0], 2395);
        assert_eq!(
            cpuid(0x16, 0, 0, 1, 100_000_000_000)[0],
            0xffff,
            "16-bit field"
        );
        // Linux's cpu_khz (leaf 0x16) and tsc_khz (leaf 0x15) agree within its 10% check.
        let hz = 2_500_000_000;
        let (tsc_khz, _) = linux_tsc_khz(cpuid(0x15, 0, 0, 1, hz));
        assert_eq!(cpuid(0x16, 0, 0, 1, hz)[0] * 1000, tsc_khz);
    }

    #[test]
    fn without_a_tsc_frequency_leaves_15_and_16_enumerate_nothing() {
        assert_eq!(cpuid(0x15, 0, 0, 1, 0), [0; 4]);
        assert_eq!(cpuid(0x16, 0, 0, 1, 0), [0; 4]);
    }

    #[test]
    fn leaves_up_to_the_maximum_describe_absent_features() {
        assert_eq!(id(2, 0), [1, 0, 0, 0], "one round of null descriptors");
        assert_eq!(
            id(4, 0)[0] & 0x1f,
            0,
            "no cache described (type 0 ends the list)"
        );
        assert_eq!(id(6, 0), [1 << 2, 0, 0, 0], "ARAT only");
        assert_eq!(id(0xa, 0), [0; 4], "no performance monitoring");
        assert_eq!(id(0xd, 0), [0; 4], "no XSAVE state");
        assert_eq!(id(0xd, 1), [0; 4]);
        for leaf in [3, 5, 8, 9, 0xc, 0xe, 0xf, 0x10, 0x12, 0x14] {
            assert_eq!(id(leaf, 0), [0; 4], "leaf {leaf:#x}");
        }
        assert_eq!(id(7, 1), [0; 4]);
        assert_eq!(id(0x17, 0), [0; 4], "past the maximum");
        assert_eq!(
            id(0x1f, 0),
            [0; 4],
            "leaf 0x1F is past the maximum: 0xB rules"
        );
        assert_eq!(id(0x4000_0000, 0), [0; 4], "no paravirtual interface");
    }

    #[test]
    fn leaf_b_reports_one_thread_per_core_and_a_core_per_vcpu() {
        let [eax, ebx, ecx, edx] = cpuid(0xb, 0, 2, 4, GHZ);
        assert_eq!((eax & 0x1f, ebx & 0xffff, ecx), (0, 1, 1 << 8), "SMT level");
        assert_eq!(edx, 2, "x2APIC ID");
        let [eax, ebx, ecx, edx] = cpuid(0xb, 1, 2, 4, GHZ);
        assert_eq!(
            (eax & 0x1f, ebx & 0xffff, ecx),
            (2, 4, 1 | 2 << 8),
            "core level"
        );
        assert_eq!(edx, 2);
        let [eax, ebx, ecx, edx] = cpuid(0xb, 2, 2, 4, GHZ);
        assert_eq!(
            (eax, ebx, ecx, edx),
            (0, 0, 2, 2),
            "invalid level ends the walk"
        );
        // Shifts for odd counts round up; one vCPU needs no bits.
        assert_eq!(cpuid(0xb, 1, 0, 3, GHZ)[0], 2);
        assert_eq!(cpuid(0xb, 1, 0, 5, GHZ)[0], 3);
        assert_eq!(cpuid(0xb, 1, 0, 1, GHZ)[0..2], [0, 1]);
        // The package ID (APIC ID >> shift) is 0 for every vCPU.
        for cpus in 1..=16u32 {
            let shift = cpuid(0xb, 1, 0, cpus, GHZ)[0];
            assert_eq!((cpus - 1) >> shift, 0, "{cpus} vCPUs");
        }
    }

    #[test]
    fn each_vcpu_sees_its_apic_id_and_the_package_size() {
        let [_, ebx, _, edx] = cpuid(1, 0, 3, 4, GHZ);
        assert_eq!(ebx >> 24, 3);
        assert_eq!((ebx >> 16) & 0xff, 4);
        assert_ne!(edx & HTT, 0);
    }

    #[test]
    fn long_mode_nx_1g_pages_and_the_page_walks_address_sizes() {
        assert_eq!(id(0x8000_0000, 0)[0], 0x8000_0008);
        let [_, _, _, edx] = id(0x8000_0001, 0);
        assert_ne!(edx & 1 << 29, 0, "LM");
        assert_ne!(edx & 1 << 20, 0, "NX");
        assert_ne!(edx & 1 << 26, 0, "1 GiB pages");
        assert_ne!(edx & 1 << 11, 0, "SYSCALL");
        let [eax, _, _, _] = id(0x8000_0008, 0);
        assert_eq!(eax & 0xff, MAXPHYADDR);
        assert_eq!((eax >> 8) & 0xff, 48);
        assert_ne!(id(0x8000_0007, 0)[3] & 1 << 8, 0, "invariant TSC");
        assert_eq!(id(0x8000_0009, 0), [0; 4], "past the maximum");
    }

    #[test]
    fn the_brand_is_the_user_modes_and_user_mode_keeps_its_identity() {
        for leaf in 0x8000_0002..=0x8000_0004 {
            assert_eq!(id(leaf, 0), user_cpuid(leaf, 0));
        }
        let [_, ebx, ecx, edx] = user_cpuid(0, 0);
        assert_eq!(text(&[ebx, edx, ecx]), "TernEmulator");
        assert_eq!(user_cpuid(0, 0)[0], 7);
    }
}
