//! Zicsr in user mode: the floating-point CSRs and the read-only counters. Any other CSR, or
//! a write to a read-only one, is an illegal instruction (as a U-mode hart sees it).

use ir::{BinOp, Helper, HelperFlags, MemOp, Size, Temp, Type};

use super::{Flow, Translator};
use crate::riscv64::cpu;
use crate::riscv64::insn::{Insn, Opcode};

/// `fflags`
pub const CSR_FFLAGS: u16 = 0x001;
/// `frm`
pub const CSR_FRM: u16 = 0x002;
/// `fcsr`
pub const CSR_FCSR: u16 = 0x003;
/// `cycle`
pub const CSR_CYCLE: u16 = 0xc00;
/// `time`
pub const CSR_TIME: u16 = 0xc01;
/// `instret`
pub const CSR_INSTRET: u16 = 0xc02;

/// The timebase of the `time` CSR in user mode: 10 MHz, as on QEMU's virt machine.
pub const TIMEBASE_HZ: u64 = 10_000_000;

/// Reads the host's monotonic clock in timebase ticks.
unsafe extern "C" fn read_time(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    (start.elapsed().as_nanos() as u64) / (1_000_000_000 / TIMEBASE_HZ)
}

static READ_TIME: Helper = Helper {
    name: "read_time",
    func: read_time,
    flags: HelperFlags::NONE,
};

const B64: MemOp = MemOp::unsigned(Size::B64);

impl Translator<'_> {
    pub(super) fn csr(&mut self, insn: &Insn) -> Flow {
        use Opcode::*;
        let immediate = matches!(insn.op, Csrrwi | Csrrsi | Csrrci);
        let source = if immediate {
            self.b.constant(Type::I64, insn.imm as u64)
        } else {
            self.x(insn.rs1)
        };
        // csrrs/csrrc with x0 (or uimm 0) only read; csrrw always writes.
        let writes = matches!(insn.op, Csrrw | Csrrwi)
            || if immediate {
                insn.imm != 0
            } else {
                insn.rs1 != 0
            };
        let old = self.b.local(Type::I64);
        match insn.csr {
            CSR_FFLAGS => self.b.env_load(old, cpu::FFLAGS_OFFSET, B64),
            CSR_FRM => self.b.env_load(old, cpu::FRM_OFFSET, B64),
            CSR_FCSR => {
                let frm = self.tmp();
                self.b.env_load(frm, cpu::FRM_OFFSET, B64);
                self.b.binary_imm(BinOp::Shl, frm, frm, 5);
                let flags = self.tmp();
                self.b.env_load(flags, cpu::FFLAGS_OFFSET, B64);
                self.b.binary(BinOp::Or, old, frm, flags);
            }
            CSR_CYCLE | CSR_TIME | CSR_INSTRET if !writes => {
                self.b.call(&READ_TIME, &[], Some(old))
            }
            _ => return self.illegal(insn.raw as u64),
        }
        if writes {
            let new = self.tmp();
            match insn.op {
                Csrrw | Csrrwi => self.b.mov(new, source),
                Csrrs | Csrrsi => self.b.binary(BinOp::Or, new, old, source),
                _ => self.b.binary(BinOp::AndNot, new, old, source),
            }
            self.write_fp_csr(insn.csr, new);
        }
        if insn.rd != 0 {
            let d = self.xd(insn.rd);
            self.b.mov(d, old);
        }
        Flow::Next
    }

    fn write_fp_csr(&mut self, csr: u16, value: Temp) {
        if csr != CSR_FFLAGS {
            self.frm_checked = false;
        }
        let flags = self.tmp();
        match csr {
            CSR_FFLAGS => {
                self.b.binary_imm(BinOp::And, flags, value, 0x1f);
                self.b.env_store(flags, cpu::FFLAGS_OFFSET, B64);
            }
            CSR_FRM => {
                self.b.binary_imm(BinOp::And, flags, value, 7);
                self.b.env_store(flags, cpu::FRM_OFFSET, B64);
            }
            _ => {
                self.b.binary_imm(BinOp::And, flags, value, 0x1f);
                self.b.env_store(flags, cpu::FFLAGS_OFFSET, B64);
                let frm = self.tmp();
                self.b.binary_imm(BinOp::Shr, frm, value, 5);
                self.b.binary_imm(BinOp::And, frm, frm, 7);
                self.b.env_store(frm, cpu::FRM_OFFSET, B64);
            }
        }
    }
}
