//! Tests of the privileged architecture, written as the spec states the rules.
