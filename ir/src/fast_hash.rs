//! A fast hasher for the small integer keys of translation-time tables (the builder's
//! constant pool, the block cache's page index).
//!
//! The standard library's SipHash resists collision attacks on keys an adversary chooses;
//! these keys are constants and page numbers, and SipHash cost several percent of the time
//! spent translating. This is a multiply-rotate mix in the style of the Fx hash (rustc's),
//! written here: each word is folded in with a rotate, xor and multiply by an odd constant,
//! which moves entropy into the high bits that hashbrown's control bytes use.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// An odd 64-bit constant with well-mixed bits (from the golden ratio).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hasher; see the module doc.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }

    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn write_isize(&mut self, v: isize) {
        self.add(v as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(v: T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(v)
    }

    #[test]
    fn neighbouring_keys_differ_in_the_high_bits() {
        // hashbrown picks buckets from the low bits and control bytes from the top 7: both
        // must vary between consecutive page numbers and constants.
        let tops: std::collections::HashSet<u64> = (0..128u64).map(|k| hash(k) >> 57).collect();
        assert!(tops.len() > 64, "{} distinct top-7-bit values", tops.len());
        let lows: std::collections::HashSet<u64> = (0..128u64).map(|k| hash(k) & 127).collect();
        assert!(lows.len() > 64, "{} distinct low-7-bit values", lows.len());
    }

    #[test]
    fn a_map_with_it_behaves_like_a_map() {
        let mut m: FastHashMap<(u8, u64), u32> = FastHashMap::default();
        for i in 0..10_000u64 {
            m.insert(((i % 3) as u8, i), i as u32);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&(1, 9_997)), Some(&9_997));
        assert_eq!(m.get(&(0, 9_997)), None);
    }
}
