//! System-mode instructions: CSR accesses, `mret`/`sret`, `wfi` and `sfence.vma` call the
//! privileged-architecture helpers of [`crate::riscv64::system`], and end the block where the
//! hart's mode, interrupt enables or address translation may have changed.

use ir::{Temp, Type};

use super::{Flow, Translator, EXIT_SYNC, EXIT_WFI};
use crate::riscv64::insn::{Insn, Opcode};
use crate::riscv64::system::helpers as h;

impl Translator<'_> {
    pub(super) fn system_csr(&mut self, insn: &Insn) -> Flow {
        use Opcode::*;
        let immediate = matches!(insn.op, Csrrwi | Csrrsi | Csrrci);
        let value = if immediate {
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
        let op = match insn.op {
            Csrrw | Csrrwi => 0,
            Csrrs | Csrrsi => 1,
            _ => 2,
        };
        let csr = self.b.constant(Type::I64, insn.csr as u64);
        let op = self.b.constant(Type::I64, op);
        let write = self.b.constant(Type::I64, writes as u64);
        let old = self.xd(insn.rd);
        self.b
            .call(&h::CSR_RW, &[Temp::ENV, csr, value, op, write], Some(old));
        if insn.csr <= 3 {
            // fflags/frm/fcsr: a new frm must be checked again before dynamic rounding.
            self.frm_checked = false;
        }
        // Only CSRs that change translation, interrupt enables or pending interrupts end the
        // block (sscratch, sepc, stvec... are written on every trap and context switch).
        if writes && crate::riscv64::system::csr::write_ends_block(insn.csr) {
            self.sync_exit(self.next_pc(insn));
            return Flow::End;
        }
        Flow::Next
    }

    pub(super) fn privileged(&mut self, insn: &Insn) -> Flow {
        use Opcode::*;
        let bits = self.b.constant(Type::I64, insn.raw as u64);
        match insn.op {
            Mret | Sret => {
                // The helper sets the pc (a global) and the privilege level.
                let helper = if insn.op == Mret { &h::MRET } else { &h::SRET };
                self.b.call(helper, &[Temp::ENV, bits], None);
                self.b.exit_tb(EXIT_SYNC);
            }
            Wfi => {
                self.b.call(&h::WFI, &[Temp::ENV, bits], None);
                self.set_pc(self.next_pc(insn));
                self.b.exit_tb(EXIT_WFI);
            }
            _ => {
                let vaddr = self.x(insn.rs1);
                let asid = self.x(insn.rs2);
                let operands = (insn.rs1 != 0) as u64 | ((insn.rs2 != 0) as u64) << 1;
                let operands = self.b.constant(Type::I64, operands);
                self.b
                    .call(&h::SFENCE_VMA, &[Temp::ENV, vaddr, asid, operands], None);
                self.sync_exit(self.next_pc(insn));
            }
        }
        Flow::End
    }

    /// Ends the block at `next` through the loop, which looks at the hart's state again.
    fn sync_exit(&mut self, next: u64) {
        self.set_pc(next);
        self.b.exit_tb(EXIT_SYNC);
    }
}
