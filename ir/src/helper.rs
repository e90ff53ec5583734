//! Rust functions that translated code calls, and what the IR may assume about them.

use std::fmt;
use std::ops::BitOr;

/// The one calling convention of helpers: six integer arguments and an integer result, SysV on
/// x86_64 hosts. Unused arguments are zero; I32 arguments arrive zero-extended, and an I32
/// result must be zero-extended by the helper. A helper that receives [`Temp::ENV`]
/// (crate::Temp::ENV) gets the CPU-state pointer as an integer.
///
/// One fixed signature (rather than one per arity) keeps calls from the interpreter and from
/// generated code free of transmutes between function types.
pub type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, u64) -> u64;

/// What a helper may do besides computing its result. The backend uses these to decide which
/// globals to store before the call and which to reload after it; the optimizer uses `PURE` to
/// delete unused calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HelperFlags(u8);

impl HelperFlags {
    /// No flags: the helper has side effects outside the globals (devices, non-global state
    /// fields) but neither reads nor writes globals and never raises.
    pub const NONE: HelperFlags = HelperFlags(0);
    /// The result depends only on the arguments and there are no side effects: an unused call
    /// may be deleted. Excludes every other flag.
    pub const PURE: HelperFlags = HelperFlags(1);
    /// Reads globals from the CPU state: dirty globals are stored before the call.
    pub const READS_GLOBALS: HelperFlags = HelperFlags(2);
    /// Writes globals in the CPU state: globals held in registers are reloaded after the call.
    pub const WRITES_GLOBALS: HelperFlags = HelperFlags(4);
    /// May raise a guest exception (see [`crate::abi`]): dirty globals are stored first, the
    /// instruction index is recorded, and the unwind flag is tested after the call.
    pub const MAY_RAISE: HelperFlags = HelperFlags(8);

    /// All bits of `other` are set in `self`.
    pub const fn contains(self, other: HelperFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Dirty globals must be in the CPU state when the helper runs.
    pub const fn syncs_globals(self) -> bool {
        self.0 & (Self::READS_GLOBALS.0 | Self::MAY_RAISE.0) != 0
    }

    /// Both sets of flags; usable in `static` helper definitions.
    pub const fn union(self, other: HelperFlags) -> HelperFlags {
        HelperFlags(self.0 | other.0)
    }

    /// Raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for HelperFlags {
    type Output = HelperFlags;
    fn bitor(self, rhs: HelperFlags) -> HelperFlags {
        HelperFlags(self.0 | rhs.0)
    }
}

/// A helper as the IR refers to it. Frontends define these as `static`s.
pub struct Helper {
    /// Name for logs.
    pub name: &'static str,
    /// The function.
    pub func: HelperFn,
    /// What it may do.
    pub flags: HelperFlags,
}

impl fmt::Debug for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Helper({})", self.name)
    }
}

impl PartialEq for Helper {
    fn eq(&self, other: &Helper) -> bool {
        std::ptr::eq(self, other)
    }
}
