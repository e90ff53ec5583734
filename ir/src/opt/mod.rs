//! Block optimizer (being written; see the JIT core issue).
