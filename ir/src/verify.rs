//! Block verifier (being written; see the JIT core issue).
