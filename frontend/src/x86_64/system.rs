//! `cpuid` and `rdtsc`: what the translated CPU tells the guest about itself.
//!
//! `cpuid` advertises exactly what the frontend implements, so that glibc's ifunc selection
//! never picks a routine that would hit #UD: the x87 FPU (the subset in [`super::x87`]), SSE,
//! SSE2, FXSR, CMOV, TSC, CX8, CMPXCHG16B, MOVBE, POPCNT, LZCNT (ABM), RDTSCP, long mode and
//! `syscall`. No MMX, SSE3+, AVX/OSXSAVE/XSAVE or BMI.

use super::cpu::{X86Cpu, RAX, RCX, RDX};

/// The vendor string, split as cpuid returns it in ebx, edx, ecx: "TernEmulator".
const VENDOR: [u8; 12] = *b"TernEmulator";
/// The brand string of leaves 0x8000_0002..=0x8000_0004 (48 bytes, NUL padded).
const BRAND: &[u8] = b"Tern emulated x86_64 CPU";

/// Highest basic leaf.
const MAX_BASIC: u32 = 7;
/// Highest extended leaf.
const MAX_EXTENDED: u32 = 0x8000_0004;

/// Leaf 1 edx: FPU (0), TSC (4), CX8 (8), CMOV (15), FXSR (24), SSE (25), SSE2 (26).
pub const LEAF1_EDX: u32 = 1 | 1 << 4 | 1 << 8 | 1 << 15 | 1 << 24 | 1 << 25 | 1 << 26;
/// Leaf 1 ecx: CMPXCHG16B (13), MOVBE (22), POPCNT (23).
pub const LEAF1_ECX: u32 = 1 << 13 | 1 << 22 | 1 << 23;
/// Leaf 0x8000_0001 ecx: LAHF/SAHF in long mode (0), ABM/LZCNT (5).
pub const EXT1_ECX: u32 = 1 | 1 << 5;
/// Leaf 0x8000_0001 edx: SYSCALL (11), RDTSCP (27), long mode (29).
pub const EXT1_EDX: u32 = 1 << 11 | 1 << 27 | 1 << 29;

fn word(bytes: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    for (k, b) in w.iter_mut().enumerate() {
        *b = bytes.get(4 * i + k).copied().unwrap_or(0);
    }
    u32::from_le_bytes(w)
}

/// `cpuid` leaf `leaf`, subleaf `sub`: `[eax, ebx, ecx, edx]`. Leaves past the maximum read
/// as zeros.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    match leaf {
        0 => [
            MAX_BASIC,
            word(&VENDOR, 0),
            word(&VENDOR, 2),
            word(&VENDOR, 1),
        ],
        // Family 6, model 1, stepping 0; one logical processor, APIC id 0.
        1 => [0x0000_0610, 0x0001_0000, LEAF1_ECX, LEAF1_EDX],
        // Structured extended features: none (no BMI1/BMI2, no ERMS, ...).
        7 if sub == 0 => [0; 4],
        0x8000_0000 => [MAX_EXTENDED, 0, 0, 0],
        0x8000_0001 => [0, 0, EXT1_ECX, EXT1_EDX],
        0x8000_0002..=0x8000_0004 => {
            let base = 4 * (leaf - 0x8000_0002) as usize;
            [
                word(BRAND, base),
                word(BRAND, base + 1),
                word(BRAND, base + 2),
                word(BRAND, base + 3),
            ]
        }
        _ => [0; 4],
    }
}

/// `cpuid` on the registers: leaf in eax, subleaf in ecx; results zero-extended into
/// rax, rbx, rcx, rdx.
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
pub(crate) unsafe extern "C" fn helper_cpuid(
    env: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    let r = cpuid(cpu.regs[RAX] as u32, cpu.regs[RCX] as u32);
    cpu.regs[RAX] = r[0] as u64;
    cpu.regs[3] = r[1] as u64;
    cpu.regs[RCX] = r[2] as u64;
    cpu.regs[RDX] = r[3] as u64;
    0
}

/// The time-stamp counter: the host's on x86_64 hosts (invariant TSC on anything recent),
/// nanoseconds of a monotonic clock elsewhere.
pub(crate) extern "C" fn helper_rdtsc(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc only reads the time-stamp counter; x86_64 hosts all have it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(words: &[u32]) -> String {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_vendor_reads_in_ebx_edx_ecx_order() {
        let r = cpuid(0, 0);
        assert_eq!(r[0], MAX_BASIC);
        assert_eq!(string(&[r[1], r[3], r[2]]), "TernEmulator");
    }

    #[test]
    fn leaf_one_advertises_sse2_and_nothing_unimplemented() {
        let [_, _, ecx, edx] = cpuid(1, 0);
        assert_ne!(edx & 1 << 25, 0, "SSE");
        assert_ne!(edx & 1 << 26, 0, "SSE2");
        assert_eq!(edx & 1 << 23, 0, "no MMX");
        assert_ne!(edx & 1, 0, "x87 FPU");
        assert_eq!(ecx & 1 << 27, 0, "no OSXSAVE");
        assert_eq!(ecx & 1 << 28, 0, "no AVX");
        assert_eq!(ecx & 1, 0, "no SSE3");
        assert_eq!(cpuid(7, 0), [0; 4], "no BMI1/BMI2/AVX2");
    }

    #[test]
    fn the_integer_extensions_the_frontend_implements_are_advertised() {
        let [_, _, ecx, edx] = cpuid(1, 0);
        assert_ne!(edx & 1 << 8, 0, "CX8: cmpxchg8b");
        assert_ne!(ecx & 1 << 13, 0, "CMPXCHG16B");
        assert_ne!(ecx & 1 << 22, 0, "MOVBE");
        assert_ne!(ecx & 1 << 23, 0, "POPCNT");
        let [_, _, ecx, edx] = cpuid(0x8000_0001, 0);
        assert_ne!(ecx & 1 << 5, 0, "ABM: lzcnt");
        assert_ne!(edx & 1 << 27, 0, "RDTSCP");
        assert_eq!(
            edx & 1 << 26,
            0,
            "no 1 GiB pages (no such thing in user mode)"
        );
    }

    #[test]
    fn the_brand_string_spans_three_leaves() {
        assert_eq!(cpuid(0x8000_0000, 0)[0], 0x8000_0004);
        let mut w = Vec::new();
        for leaf in 0x8000_0002..=0x8000_0004 {
            w.extend(cpuid(leaf, 0));
        }
        let s = string(&w);
        assert_eq!(s.trim_end_matches('\0'), "Tern emulated x86_64 CPU");
        assert_eq!(s.len(), 48);
    }

    #[test]
    fn unknown_leaves_are_zero() {
        assert_eq!(cpuid(0x4000_0000, 0), [0; 4]);
        assert_eq!(cpuid(0x8000_0008, 0), [0; 4]);
    }
}
