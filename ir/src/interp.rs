//! Reference interpreter (being written; see the JIT core issue).
