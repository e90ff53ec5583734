//! Tests of `tcg_sys`: each system instruction performed on a CPU state, as the SDM says.

use super::*;
