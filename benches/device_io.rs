//! Cost of the device side of a vCPU exit: routing a port or MMIO access through `Bus` to a
//! device. Every port I/O and MMIO exit under KVM pays this on top of the exit itself.

use std::sync::{Arc, Mutex};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use devices::bus::{Bus, BusDevice};

struct Scratch {
    value: u8,
}

impl BusDevice for Scratch {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(self.value);
    }
    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        self.value = data[0];
    }
}

fn bus_with_pc_ports() -> Bus {
    let mut bus = Bus::new();
    for (base, len) in [(0x60, 5), (0x70, 2), (0xf4, 4), (0x3f8, 8), (0x600, 4)] {
        bus.insert(Arc::new(Mutex::new(Scratch { value: 0 })), base, len)
            .unwrap();
    }
    bus
}

fn bench_bus(c: &mut Criterion) {
    let bus = bus_with_pc_ports();
    c.bench_function("bus: 1-byte port write to the UART", |b| {
        b.iter(|| bus.write(black_box(0x3f8), b"x").unwrap())
    });
    c.bench_function("bus: 1-byte port read from the UART", |b| {
        let mut data = [0u8; 1];
        b.iter(|| bus.read(black_box(0x3fd), &mut data).unwrap())
    });
    c.bench_function("bus: access to an unmapped port", |b| {
        let mut data = [0u8; 1];
        b.iter(|| bus.read(black_box(0x80), &mut data).is_err())
    });
}

criterion_group!(benches, bench_bus);
criterion_main!(benches);
