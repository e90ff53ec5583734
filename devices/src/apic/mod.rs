//! The APIC interrupt architecture of the x86_64 machine when its CPU runs on the JIT (under
//! KVM the in-kernel irqchip stands in for it): the I/O APIC that turns device interrupt pins
//! into messages, and the per-CPU local APIC that receives them, prioritises them, sends
//! inter-processor interrupts and runs the local timer.
