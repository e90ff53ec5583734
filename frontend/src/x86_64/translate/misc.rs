//! Flag moves (clc stc cmc cld std lahf sahf), the nop forms and fences, cpuid, rdtsc and
//! rdtscp.

use iced_x86::{Instruction, Mnemonic};
use ir::{BinOp, ExtFrom, Helper, HelperFlags, Temp};

use super::{Loc, Translator};
use crate::x86_64::cpu::{self, RAX, RCX, RDX};
use crate::x86_64::flags;

impl Translator<'_> {
    /// Flag moves, nops (`nop`, `nop r/m`, the reserved-nop space 0f 19..0f 1f, `pause`,
    /// `endbr32/64`, fences, prefetches and `cldemote`, which are hints), `cpuid`, `rdtsc`,
    /// `rdtscp`.
    pub(super) fn misc(&mut self, i: &Instruction) -> Option<()> {
        use Mnemonic::*;
        match i.mnemonic() {
            Cpuid => self.b.call(&CPUID, &[Temp::ENV], None),
            Rdtsc | Rdtscp => {
                let v = self.tmp();
                self.b.call(&RDTSC, &[], Some(v));
                let (lo, hi) = (self.tmp(), self.tmp());
                self.b.ext(ExtFrom::U32, lo, v);
                self.b.binary_imm(BinOp::Shr, hi, v, 32);
                let rax = self.reg(RAX);
                self.b.mov(rax, lo);
                let rdx = self.reg(RDX);
                self.b.mov(rdx, hi);
                if i.mnemonic() == Rdtscp {
                    // ecx = IA32_TSC_AUX, which the OS sets (Linux: the CPU number); tern's
                    // user mode runs one CPU and holds it at 0.
                    let rcx = self.reg(RCX);
                    self.b.movi(rcx, 0);
                }
            }
            Nop | Pause | Endbr64 | Endbr32 | Reservednop | Lfence | Mfence | Sfence
            | Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Prefetchw | Prefetch
            | Prefetchwt1 | Cldemote => {}
            Clc | Stc | Cmc => {
                let f = self.cc.value(self.b);
                let t = self.tmp();
                let op = match i.mnemonic() {
                    Clc => BinOp::AndNot,
                    Stc => BinOp::Or,
                    _ => BinOp::Xor,
                };
                self.b.binary_imm(op, t, f, flags::CF);
                self.set_eflags(t);
            }
            Cld | Std => {
                let df = self.b.global(cpu::DF_GLOBAL);
                self.b
                    .movi(df, if i.mnemonic() == Cld { 1 } else { u64::MAX });
            }
            Lahf => {
                let f = self.cc.value(self.b);
                let t = self.tmp();
                self.b.binary_imm(BinOp::Or, t, f, 2);
                let ah = Loc::Reg {
                    idx: RAX,
                    size: 0,
                    high: true,
                };
                self.write_reg(ah, t);
            }
            Sahf => {
                let f = self.cc.value(self.b);
                let (keep, ah) = (self.tmp(), self.tmp());
                self.b.binary_imm(BinOp::And, keep, f, flags::OF);
                let rax = self.reg(RAX);
                self.b.extract(ah, rax, 8, 8, false);
                self.b
                    .binary_imm(BinOp::And, ah, ah, flags::ARITH & !flags::OF);
                self.b.or(ah, ah, keep);
                self.set_eflags(ah);
            }
            _ => return None,
        }
        Some(())
    }
}

/// `cpuid(env)`: reads eax/ecx, writes rax/rbx/rcx/rdx.
static CPUID: Helper = Helper {
    name: "x86_cpuid",
    func: crate::x86_64::system::helper_cpuid,
    flags: HelperFlags::READS_GLOBALS.union(HelperFlags::WRITES_GLOBALS),
};

/// `rdtsc() -> tsc`: no state.
static RDTSC: Helper = Helper {
    name: "x86_rdtsc",
    func: crate::x86_64::system::helper_rdtsc,
    flags: HelperFlags::NONE,
};
