//! Random valid blocks and a test CPU state for property tests (being written).
