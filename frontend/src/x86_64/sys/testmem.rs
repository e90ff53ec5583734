//! A sparse physical memory for the unit tests: 4 KiB pages allocated on first write, with
//! a configurable top of RAM above which nothing answers.

use std::collections::HashMap;

use super::PhysMem;

/// Sparse RAM below `top`.
pub struct TestMem {
    pages: HashMap<u64, Box<[u8; 4096]>>,
    /// First physical address that is not RAM.
    pub top: u64,
}

impl TestMem {
    /// 1 TiB of (sparse) RAM: every address a 40-bit physical address can name.
    pub fn new() -> TestMem {
        TestMem {
            pages: HashMap::new(),
            top: 1 << 40,
        }
    }

    /// Reads one byte (zero where never written).
    pub fn byte(&self, pa: u64) -> u8 {
        self.pages
            .get(&(pa >> 12))
            .map_or(0, |p| p[(pa & 0xfff) as usize])
    }

    /// Reads a u64 (test shorthand).
    pub fn get(&self, pa: u64) -> u64 {
        self.read_u64(pa)
    }

    /// Writes a u64 (test shorthand).
    pub fn set(&mut self, pa: u64, v: u64) {
        self.write_u64(pa, v);
    }
}

impl PhysMem for TestMem {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> bool {
        if paddr.saturating_add(buf.len() as u64) > self.top {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(paddr + i as u64);
        }
        true
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> bool {
        if paddr.saturating_add(data.len() as u64) > self.top {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            let a = paddr + i as u64;
            let page = self
                .pages
                .entry(a >> 12)
                .or_insert_with(|| Box::new([0u8; 4096]));
            page[(a & 0xfff) as usize] = b;
        }
        true
    }
}
