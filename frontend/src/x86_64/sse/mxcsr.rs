//! Running one host SSE instruction under the guest's MXCSR: the resident MXCSR.
//!
//! The slow, always-exact way to run a guest floating-point instruction is the host's own
//! instruction with the guest's rounding mode, DAZ and FTZ loaded and every exception masked,
//! then reading the flags it raised. `ldmxcsr` and `stmxcsr` are slow (microcoded, they wait
//! for the floating-point pipeline), so the guest's MXCSR is left *resident* in the host:
//!
//! - When the guest's control bits are the default (round to nearest even, no DAZ, no FTZ;
//!   the guest's exception masks do not matter, the host always runs masked), the host
//!   MXCSR is set to `0x1f80 | guest flags` and left that way. The next operation finds it
//!   there (one `stmxcsr` to check) and runs without any `ldmxcsr`; host flags are sticky like
//!   the guest's, so the flags after the instruction are exactly the guest's new flags. Rust
//!   code of the emulator runs under the same control bits as always (it never looks at the
//!   flags), so leaving this value loaded changes nothing for it. Whatever else changes the
//!   host MXCSR (emulator code raising a flag, another guest CPU on this thread, a guest
//!   `ldmxcsr`) makes the check fail, and the value is loaded again: the only cost is one
//!   `ldmxcsr`.
//! - Any other guest mode (directed rounding, DAZ, FTZ) is switched in and out around the one
//!   instruction, so emulator code never runs under a mode it does not expect.
//!
//! Gap: unmasked guest exceptions (#XM) are not delivered; the flag is set as if masked.

use core::arch::asm;

/// The exception flags (IE DE ZE OE UE PE).
pub const FLAGS: u32 = 0x3f;
/// The precision (inexact) flag.
pub const PE: u32 = 0x20;
/// The exception masks.
pub const MASKS: u32 = 0x3f << 7;
/// DAZ (bit 6), the rounding control (bits 13-14) and FTZ (bit 15): the control bits that
/// change results.
pub const MODE: u32 = 1 << 6 | 3 << 13 | 1 << 15;
/// The MXCSR Rust code runs under (and the processor's reset value): round to nearest even,
/// every exception masked, no DAZ or FTZ, flags clear.
pub const DEFAULT: u32 = 0x1f80;
/// The bits `ldmxcsr` accepts.
const VALID: u32 = 0xffff;

/// Reads the host MXCSR.
#[inline(always)]
pub fn read() -> u32 {
    let mut m = 0u32;
    // SAFETY: stmxcsr writes the four bytes of the local `m`.
    unsafe { asm!("stmxcsr [{}]", in(reg) &mut m, options(nostack, preserves_flags)) };
    m
}

/// Loads the host MXCSR. Callers pass values with every exception masked and no reserved
/// bit set, so no later instruction can trap and `ldmxcsr` itself cannot fault.
#[inline(always)]
fn write(m: u32) {
    // SAFETY: ldmxcsr reads the four bytes of the local `m`; see above for the value.
    unsafe { asm!("ldmxcsr [{}]", in(reg) &m, options(nostack, preserves_flags)) };
}

/// Whether the guest MXCSR `guest` asks for the default rounding (nearest even, no DAZ, no
/// FTZ), the mode Rust code and the value-checked fast paths run in.
#[inline(always)]
pub fn default_mode(guest: u32) -> bool {
    guest & MODE == 0
}

/// How [`enter`] set the host up; give it back to [`leave`].
#[must_use]
pub enum Entered {
    /// The guest's MXCSR is resident in the host and stays so after the instruction.
    Resident,
    /// A non-default guest mode was switched in; `host` goes back afterwards.
    Switched {
        /// The host MXCSR before.
        host: u32,
    },
}

/// Prepares the host MXCSR for one instruction of a guest whose MXCSR is `guest`.
#[inline(always)]
pub fn enter(guest: u32) -> Entered {
    let host = read();
    let control = guest & VALID & !FLAGS | MASKS;
    if default_mode(guest) {
        let want = control | guest & FLAGS;
        if host != want {
            write(want);
        }
        Entered::Resident
    } else {
        // The flags start clear so that the ones read afterwards are the instruction's.
        write(control);
        Entered::Switched { host }
    }
}

/// Adds the flags the instruction raised to `guest` and, after a switch, restores the host.
#[inline(always)]
pub fn leave(e: Entered, guest: &mut u32) {
    let after = read();
    *guest |= after & FLAGS;
    if let Entered::Switched { host } = e {
        write(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `addsd` of `a` and `b` run as the guest instruction under `mx`.
    fn addsd(a: f64, b: f64, mx: &mut u32) -> f64 {
        let mut d = a;
        let e = enter(*mx);
        // SAFETY: one register-to-register addsd, every exception masked by `enter`.
        unsafe {
            asm!("addsd {d}, {s}", d = inout(xmm_reg) d, s = in(xmm_reg) b, options(nomem, nostack))
        };
        leave(e, mx);
        d
    }

    /// Runs `f` and puts the test thread's MXCSR back afterwards.
    fn with_host_restored(f: impl FnOnce()) {
        let saved = read();
        f();
        write(saved);
    }

    /// 1 + 0.1 is inexact and rounds up to nearest (the four bits shifted out are 1010).
    const TENTH: (f64, f64) = (1.0, 0.1);

    #[test]
    fn a_default_mode_guest_stays_resident_and_its_flags_stay_sticky() {
        with_host_restored(|| {
            let mut mx = DEFAULT;
            let r = addsd(TENTH.0, TENTH.1, &mut mx);
            assert_eq!(r, 1.1);
            assert_eq!(mx, DEFAULT | PE, "1 + 0.1 is inexact");
            assert_eq!(read(), DEFAULT | PE, "the guest MXCSR is left in the host");
            // An exact operation raises nothing and clears nothing.
            assert_eq!(addsd(1.0, 2.0, &mut mx), 3.0);
            assert_eq!(mx, DEFAULT | PE, "PE stays set");
            assert_eq!(read(), DEFAULT | PE);
        });
    }

    #[test]
    fn a_guest_with_its_flags_clear_sees_no_flag_left_resident_by_an_earlier_operation() {
        with_host_restored(|| {
            let mut first = DEFAULT;
            addsd(TENTH.0, TENTH.1, &mut first);
            // A guest ldmxcsr cleared the flags (or this is another CPU).
            let mut mx = DEFAULT;
            assert_eq!(addsd(1.0, 2.0, &mut mx), 3.0);
            assert_eq!(mx, DEFAULT, "the host's PE from before is not the guest's");
        });
    }

    #[test]
    fn an_operation_after_emulator_code_changed_the_host_mxcsr_gets_only_its_own_flags() {
        with_host_restored(|| {
            let mut mx = DEFAULT | PE;
            addsd(TENTH.0, TENTH.1, &mut mx);
            // Emulator code raised a division by zero and (oddly) changed the rounding mode.
            write(DEFAULT | 0x04 | 3 << 13);
            let r = addsd(TENTH.0, TENTH.1, &mut mx);
            assert_eq!(r, 1.1, "rounded to nearest, not toward zero");
            assert_eq!(mx, DEFAULT | PE, "no ZE from the emulator's operation");
        });
    }

    #[test]
    fn a_non_default_mode_between_two_operations_is_switched_in_and_out() {
        with_host_restored(|| {
            let mut mx = DEFAULT;
            let nearest = addsd(TENTH.0, TENTH.1, &mut mx);
            assert_eq!(read(), DEFAULT | PE);
            // The guest's ldmxcsr: round toward zero (RC = 3), flags clear.
            let mut mx = DEFAULT | 3 << 13;
            let toward_zero = addsd(TENTH.0, TENTH.1, &mut mx);
            assert_eq!(
                toward_zero.to_bits(),
                nearest.to_bits() - 1,
                "1 + 0.1 rounds up to nearest"
            );
            assert_eq!(mx, DEFAULT | 3 << 13 | PE);
            assert_eq!(
                read(),
                DEFAULT | PE,
                "the host is as it was before the switch"
            );
            // Back to the default mode: resident again, with the guest's (clear) flags.
            let mut mx = DEFAULT;
            assert_eq!(addsd(1.0, 2.0, &mut mx), 3.0);
            assert_eq!((mx, read()), (DEFAULT, DEFAULT));
        });
    }

    #[test]
    fn daz_and_ftz_are_modes_too() {
        with_host_restored(|| {
            let tiny = f64::from_bits(1); // the smallest denormal
            let mut mx = DEFAULT | 1 << 6;
            assert_eq!(
                addsd(tiny, 0.0, &mut mx),
                0.0,
                "DAZ reads the denormal as zero"
            );
            let mut mx = DEFAULT;
            assert_eq!(addsd(tiny, 0.0, &mut mx), tiny);
            assert_eq!(mx, DEFAULT | 0x02, "DE: a denormal operand");
        });
    }

    #[test]
    fn unmasked_guest_exceptions_still_run_masked() {
        with_host_restored(|| {
            let mut mx = DEFAULT & !MASKS;
            assert_eq!(addsd(1.0, f64::MIN_POSITIVE, &mut mx), 1.0);
            assert_eq!(mx, PE, "the flag is set as if masked (the documented gap)");
            assert_eq!(read() & MASKS, MASKS);
        });
    }
}
