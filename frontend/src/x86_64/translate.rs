//! Translation (coming).
