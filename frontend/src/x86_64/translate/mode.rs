//! The CPU mode a block is translated for, and its packing into the block key's flags.
//!
//! Everything that changes how an instruction translates lives here: whether privileged
//! instructions are legal at all (system mode), the CPL they are checked against, the
//! default operand and address size the decoder uses, and the MMU index of loads and stores.
//! The machine derives a [`Mode`] from the CPU state before every block lookup; anything
//! that can change it (CR writes, `iretq`, `syscall`, far transfers, ...) leaves the block
//! through [`super::EXIT_SYSTEM`], so a block never runs in a mode it was not translated for.

/// The mode of a translated block; [`Mode::flags`] is the block key's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// A whole-machine guest: privileged and system instructions exit to the machine
    /// ([`super::EXIT_SYSTEM`]); otherwise a Linux user-mode process, where they stay as
    /// they always were (#UD, #GP or the `hlt`/`syscall` exits).
    pub system: bool,
    /// The current privilege level, 0..=3 (3 in user mode).
    pub cpl: u8,
    /// The code segment's default size: 64 (64-bit mode), 32 or 16 (the decoder's bitness).
    pub code_bits: u8,
    /// The MMU index of loads and stores (0..=7).
    pub mmu_idx: u8,
}

impl Mode {
    /// A Linux user-mode process: what `translate` has always done. Its flags are 0.
    pub const USER: Mode = Mode {
        system: false,
        cpl: 3,
        code_bits: 64,
        mmu_idx: 0,
    };

    /// Packs the mode into block-key flags: bits 1:0 `cpl ^ 3` (so that CPL 3 is 0), bit 2
    /// `system`, bits 4:3 the code size (0 = 64, 1 = 32, 2 = 16), bits 7:5 `mmu_idx`.
    pub const fn flags(self) -> u32 {
        let bits = match self.code_bits {
            32 => 1,
            16 => 2,
            _ => 0,
        };
        ((self.cpl as u32 & 3) ^ 3)
            | (self.system as u32) << 2
            | bits << 3
            | (self.mmu_idx as u32 & 7) << 5
    }

    /// Unpacks [`Mode::flags`] (the unused encoding 3 of the code size reads as 64).
    pub const fn from_flags(flags: u32) -> Mode {
        Mode {
            cpl: ((flags & 3) ^ 3) as u8,
            system: flags & 4 != 0,
            code_bits: match (flags >> 3) & 3 {
                1 => 32,
                2 => 16,
                _ => 64,
            },
            mmu_idx: ((flags >> 5) & 7) as u8,
        }
    }

    /// A system-mode CPU at `cpl` running 64-bit code with loads and stores in `mmu_idx`.
    pub const fn system64(cpl: u8, mmu_idx: u8) -> Mode {
        Mode {
            system: true,
            cpl,
            code_bits: 64,
            mmu_idx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_mode_packs_to_zero_so_existing_block_keys_do_not_change() {
        assert_eq!(Mode::USER.flags(), 0);
        assert_eq!(Mode::from_flags(0), Mode::USER);
    }

    #[test]
    fn every_mode_survives_the_round_trip_through_the_flags() {
        for system in [false, true] {
            for cpl in 0..4 {
                for code_bits in [16, 32, 64] {
                    for mmu_idx in 0..8 {
                        let m = Mode {
                            system,
                            cpl,
                            code_bits,
                            mmu_idx,
                        };
                        assert_eq!(Mode::from_flags(m.flags()), m, "{m:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn different_modes_have_different_flags() {
        let a = Mode::system64(0, 0);
        let b = Mode::system64(3, 0);
        let c = Mode { code_bits: 32, ..a };
        assert_ne!(a.flags(), b.flags());
        assert_ne!(a.flags(), c.flags());
        assert_ne!(a.flags(), Mode::USER.flags());
    }
}
