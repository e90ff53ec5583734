//! The CPU mode a block is translated for, and its packing into the block key's flags.
//!
//! Everything that changes how an instruction translates lives here: whether privileged
//! instructions are legal at all (system mode), the CPL they are checked against, the
//! default operand and address size the decoder uses, and the MMU index of loads and stores.
//! The machine derives a [`Mode`] from the CPU state before every block lookup; anything
//! that can change it (CR writes, `iretq`, `syscall`, far transfers, ...) leaves the block
//! through [`super::EXIT_SYSTEM`], so a block never runs in a mode it was not translated for.
//!
//! **The machine's contract for 16- and 32-bit code** (see `legacy` for the details):
//!
//! - With `code_bits` 16, `rip` (and so a block's pc) is the **linear** address `CS.base +
//!   IP`. The machine sets `rip = sys.segs[Cs].base + ip` whenever it enters 16-bit code
//!   (an AP started by SIPI: CS = vector << 8, CS.base = vector << 12, rip = CS.base; a far
//!   jump, call, return or `iret` landing in 16-bit code; a real-mode interrupt) and
//!   subtracts CS.base to get IP back whenever it needs one (pushing a return address for a
//!   far call or an interrupt from 16-bit code, performing a far transfer out of it, or
//!   advancing past an [`EXIT_SYSTEM`](super::EXIT_SYSTEM) instruction, which is simply
//!   `rip += len` since both are linear). Translated code reads CS.base from the CPU state at
//!   run time ([`crate::x86_64::cpu::CS_BASE_OFFSET`]): near calls push `rip_next -
//!   CS.base`, near returns and indirect jumps go to `CS.base + IP`.
//! - With `code_bits` 32, `rip` is EIP and the code segment is taken as flat (CS.base 0).
//! - Outside 64-bit mode, every memory operand's linear address (including the one stored
//!   in `sys_addr` for `lgdt`, `lidt`, `lss`, far jumps through memory, ...) is its
//!   segment's base, read at run time from `sys.segs[..].base` for ES/CS/SS/DS and from
//!   the `fs_base`/`gs_base` fields for FS/GS (which the machine keeps equal to
//!   `sys.segs[Fs/Gs].base`), plus the offset wrapped at the address size, wrapped at 4 GiB.
//!   The machine must keep the bases in `sys.segs` current (it performs every segment load
//!   anyway). The offsets of direct far jumps and calls (`FarJmpImm`, `FarCallImm`) are
//!   offsets, not linear addresses.
//! - The stack is `SS.base + SP` with a 16-bit SP in 16-bit code and `SS.base + ESP` with a
//!   32-bit ESP in 32-bit code, whatever SS.B says.

/// The mode of a translated block; [`Mode::flags`] is the block key's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// A whole-machine guest: privileged and system instructions exit to the machine
    /// ([`super::EXIT_SYSTEM`]); otherwise a Linux user-mode process, where they stay as
    /// they always were (#UD, #GP or the `hlt`/`syscall` exits).
    pub system: bool,
    /// The current privilege level, 0..=3 (3 in user mode).
    pub cpl: u8,
    /// The code segment's default size: 64 (64-bit mode), 32 or 16 (the decoder's bitness,
    /// and the stack's address size outside 64-bit mode). With 16, `rip` is linear: see the
    /// module doc.
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
