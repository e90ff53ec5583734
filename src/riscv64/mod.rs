//! tern's riscv64 machine: a QEMU-`virt`-like board (ACLINT, PLIC, 16550, virtio-mmio, SiFive
//! test device) described by a device tree, booting OpenSBI's `fw_dynamic` and Linux on the JIT.

pub mod boot;
pub mod fdt;
mod hart;
pub mod layout;
pub mod machine;
