//! The legacy PC interrupt and timer chips the x86_64 machine emulates when its CPU runs on
//! the JIT (under KVM the in-kernel irqchip and PIT stand in for them): the 8259A
//! programmable interrupt controller pair and the 8254 programmable interval timer.

pub mod pic;
pub mod pit;
