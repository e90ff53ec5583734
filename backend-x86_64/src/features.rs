//! Optional host instructions the backend may use.

/// Which optional x86_64 extensions the generated code may use. Tests use
/// [`HostFeatures::baseline`] so emitted bytes do not depend on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFeatures {
    /// `lzcnt` (ABM): clz without a zero check.
    pub lzcnt: bool,
    /// BMI1: `tzcnt`, `andn`.
    pub bmi1: bool,
    /// BMI2: `shlx`/`shrx`/`sarx` (count in any register).
    pub bmi2: bool,
    /// `popcnt`.
    pub popcnt: bool,
    /// `movbe` (not used yet: guests are little-endian like the host).
    pub movbe: bool,
}

impl HostFeatures {
    /// What the host CPU supports (the baseline on hosts that are not x86_64, where the
    /// backend's code cannot run anyway: engines use the IR interpreter there).
    #[cfg(not(target_arch = "x86_64"))]
    pub fn detect() -> Self {
        Self::baseline()
    }

    /// What the host CPU supports.
    #[cfg(target_arch = "x86_64")]
    pub fn detect() -> Self {
        HostFeatures {
            lzcnt: std::arch::is_x86_feature_detected!("lzcnt"),
            bmi1: std::arch::is_x86_feature_detected!("bmi1"),
            bmi2: std::arch::is_x86_feature_detected!("bmi2"),
            popcnt: std::arch::is_x86_feature_detected!("popcnt"),
            movbe: std::arch::is_x86_feature_detected!("movbe"),
        }
    }

    /// Plain x86_64: no optional extension.
    pub fn baseline() -> Self {
        HostFeatures {
            lzcnt: false,
            bmi1: false,
            bmi2: false,
            popcnt: false,
            movbe: false,
        }
    }
}
