//! Translation of the SSE/SSE2 instructions and of `ldmxcsr`/`stmxcsr`/`fxsave`/`fxrstor`.
//!
//! The XMM registers and MXCSR live in the CPU state, not in globals. Three ways, cheapest
//! first:
//!
//! - moves, loads, 64-bit unpacks and shuffles and the bitwise logic are inline IR on the
//!   registers' two quadwords ([`moves`]); so are stores of XMM registers to memory or to a
//!   general register;
//! - the floating-point instructions that matter for speed have a helper of their own per
//!   instruction ([`ops`]), given register numbers or the loaded source;
//! - everything else runs [`crate::x86_64::sse::exec`] in one general helper call, with a
//!   descriptor of the instruction.
//!
//! The translator loads any memory source first (so a fault leaves everything untouched),
//! and writes a helper's general-register result (or the flags of `comiss`) afterwards.
//! 16-byte memory operands must be aligned (#GP) except for movups/movupd/movdqu.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ir::{Helper, HelperFlags, MemOp, Size, Temp};

use super::{gpr, vector, Flow, Loc, Translator};
use crate::x86_64::cpu::{self, X86Cpu};
use crate::x86_64::sse::{self, Res};

mod moves;
mod ops;

/// Whether `i` belongs to this module: an XMM operand, or one of the SSE state instructions.
pub(super) fn is_sse(i: &Instruction) -> bool {
    use Mnemonic::*;
    // The conversions to an integer from memory have no XMM operand.
    matches!(
        i.mnemonic(),
        Ldmxcsr
            | Stmxcsr
            | Fxsave
            | Fxsave64
            | Fxrstor
            | Fxrstor64
            | Cvtsd2si
            | Cvttsd2si
            | Cvtss2si
            | Cvttss2si
    ) || (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_xmm())
}

fn xmm(r: Register) -> Option<usize> {
    r.is_xmm().then(|| r as usize - Register::XMM0 as usize)
}

/// Helper descriptor: mnemonic (bits 0..16), destination (16..20) and source (20..24) XMM
/// numbers, the source comes from the arguments (24), the general operand is 64-bit (25),
/// the source was memory (26), the immediate (32..40).
struct Desc {
    op: Mnemonic,
    dst: usize,
    src: usize,
    args: bool,
    wide: bool,
    mem: bool,
    imm: u8,
}

impl Desc {
    fn pack(&self) -> u64 {
        self.op as u64
            | (self.dst as u64) << 16
            | (self.src as u64) << 20
            | (self.args as u64) << 24
            | (self.wide as u64) << 25
            | (self.mem as u64) << 26
            | (self.imm as u64) << 32
    }

    fn unpack(v: u64) -> Option<Desc> {
        Some(Desc {
            op: Mnemonic::try_from((v & 0xffff) as usize).ok()?,
            dst: (v >> 16 & 15) as usize,
            src: (v >> 20 & 15) as usize,
            args: v >> 24 & 1 != 0,
            wide: v >> 25 & 1 != 0,
            mem: v >> 26 & 1 != 0,
            imm: (v >> 32) as u8,
        })
    }
}

/// Runs one SSE instruction described by `desc` (see [`Desc`]) on the XMM registers;
/// `lo`/`hi` are the source when it does not come from a register. Returns the general
/// register result, if any.
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
unsafe extern "C" fn helper_sse(env: u64, desc: u64, lo: u64, hi: u64, _: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    let Some(d) = Desc::unpack(desc) else {
        return 0;
    };
    let s = if d.args { [lo, hi] } else { cpu.xmm[d.src] };
    let mut mx = cpu.mxcsr as u32;
    let out = sse::exec(d.op, cpu.xmm[d.dst], s, d.imm, d.mem, d.wide, &mut mx);
    cpu.mxcsr = mx as u64;
    match out {
        Some(Res::Xmm(v)) => {
            cpu.xmm[d.dst] = v;
            0
        }
        Some(Res::Gpr(v)) => v,
        None => 0,
    }
}

/// `sse(env, desc, lo, hi) -> gpr`: touches only XMM registers and MXCSR (not globals).
static SSE: Helper = Helper {
    name: "x86_sse",
    func: helper_sse,
    flags: HelperFlags::NONE,
};

fn raise_gp(cpu: &mut X86Cpu) {
    cpu.cause = vector::GP;
    cpu.error_code = 0;
    cpu.header.unwind = 1;
}

/// `ldmxcsr`: #GP(0) if a reserved bit of `v` is set, else MXCSR = `v`.
///
/// # Safety
/// As [`helper_sse`].
unsafe extern "C" fn helper_ldmxcsr(env: u64, v: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    match sse::valid_mxcsr(v as u32) {
        Some(m) => cpu.mxcsr = m as u64,
        None => raise_gp(cpu),
    }
    0
}

static LDMXCSR: Helper = Helper {
    name: "x86_ldmxcsr",
    func: helper_ldmxcsr,
    flags: HelperFlags::MAY_RAISE,
};

/// Instructions whose 16-byte memory operand need not be aligned.
fn unaligned_ok(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu)
}

/// The FXSAVE image's MXCSR_MASK: every bit `ldmxcsr` accepts (DAZ included).
const FXSAVE_MXCSR_MASK: u64 = 0xffff;

impl Translator<'_> {
    fn q(&self) -> MemOp {
        MemOp::unsigned(Size::B64)
    }

    fn xmm_load(&mut self, r: usize, half: usize) -> Temp {
        let t = self.tmp();
        self.b
            .env_load(t, cpu::xmm_offset(r, half), MemOp::unsigned(Size::B64));
        t
    }

    fn check_align(&mut self, addr: Temp) {
        self.b
            .call(&super::atomic::CHECK_ALIGN16, &[Temp::ENV, addr], None);
    }

    /// Translates an SSE instruction; `None` for what this slice does not implement.
    pub(super) fn sse(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        if (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_mm()) {
            return None;
        }
        let m = i.mnemonic();
        match m {
            Ldmxcsr => {
                let a = self.address(i, true);
                let v = self.tmp();
                self.b.load(v, a, MemOp::unsigned(Size::B32), self.mmu_idx);
                self.b.call(&LDMXCSR, &[Temp::ENV, v], None);
                return Some(Flow::Next);
            }
            Stmxcsr => {
                let a = self.address(i, true);
                let v = self.tmp();
                self.b
                    .env_load(v, cpu::MXCSR_OFFSET, MemOp::unsigned(Size::B32));
                self.b.store(v, a, MemOp::unsigned(Size::B32), self.mmu_idx);
                return Some(Flow::Next);
            }
            Fxsave | Fxsave64 => {
                self.fxsave(i);
                return Some(Flow::Next);
            }
            Fxrstor | Fxrstor64 => {
                self.fxrstor(i);
                return Some(Flow::Next);
            }
            Maskmovdqu => {
                self.maskmovdqu(i)?;
                return Some(Flow::Next);
            }
            _ => {}
        }
        // Every SSE instruction left has an XMM or general register destination, or is a
        // store of an XMM register (to memory, or a general register for movd/movq).
        let src_xmm = (i.op_count() > 1 && i.op_kind(1) == OpKind::Register)
            .then(|| xmm(i.op_register(1)))
            .flatten();
        match i.op_kind(0) {
            OpKind::Memory => return self.sse_store(i, src_xmm?),
            OpKind::Register if matches!(m, Movd | Movq) && gpr(i.op_register(0)).is_some() => {
                let (idx, size, high) = gpr(i.op_register(0))?;
                let v = self.xmm_load(src_xmm?, 0);
                self.write_reg(Loc::Reg { idx, size, high }, v);
                return Some(Flow::Next);
            }
            OpKind::Register => {}
            _ => return None,
        }
        if let Some(flow) = self.sse_inline(i) {
            return Some(flow);
        }
        let dst_reg = i.op_register(0);
        let mut desc = Desc {
            op: m,
            dst: xmm(dst_reg).unwrap_or(0),
            src: 0,
            args: false,
            wide: dst_reg.is_gpr64(),
            mem: false,
            imm: 0,
        };
        // The immediate: the last operand when there is one.
        let last = i.op_count().checked_sub(1)?;
        if i.op_kind(last) == OpKind::Immediate8 {
            desc.imm = i.immediate8();
        }
        // Translate-time check that the helper knows this mnemonic.
        let mut mx = 0x1f80;
        sse::exec(m, [0; 2], [0; 2], desc.imm, false, desc.wide, &mut mx)?;
        let (mut lo, mut hi) = (self.konst(0), self.konst(0));
        match i.op_count() {
            1 => return None,
            _ => match i.op_kind(1) {
                OpKind::Register => {
                    let r = i.op_register(1);
                    if let Some(x) = xmm(r) {
                        desc.src = x;
                    } else {
                        let (idx, size, high) = gpr(r)?;
                        desc.args = true;
                        desc.wide = size == 3;
                        let v = self.read(Loc::Reg { idx, size, high });
                        let c = self.tmp();
                        self.b.mov(c, v);
                        lo = c;
                    }
                }
                OpKind::Memory => {
                    let bytes = i.memory_size().size();
                    let a = self.address(i, true);
                    desc.args = true;
                    desc.mem = true;
                    // cvtsi2s{s,d} from memory: the integer's width is the operand's.
                    if xmm(dst_reg).is_some() {
                        desc.wide = bytes == 8;
                    }
                    match bytes {
                        16 => {
                            if !unaligned_ok(m) {
                                self.check_align(a);
                            }
                            lo = self.tmp();
                            self.b.load(lo, a, self.q(), self.mmu_idx);
                            let a8 = self.tmp();
                            self.b.addi(a8, a, 8);
                            hi = self.tmp();
                            self.b.load(hi, a8, self.q(), self.mmu_idx);
                        }
                        8 | 4 | 2 => {
                            let size = match bytes {
                                8 => Size::B64,
                                4 => Size::B32,
                                _ => Size::B16,
                            };
                            lo = self.tmp();
                            self.b.load(lo, a, MemOp::unsigned(size), self.mmu_idx);
                        }
                        _ => return None,
                    }
                }
                // Shifts by an immediate: the count is the source.
                OpKind::Immediate8 => {
                    desc.args = true;
                    lo = self.konst(i.immediate8() as u64);
                }
                _ => return None,
            },
        }
        let r = self.tmp();
        if let Some(h) = ops::lookup(m, desc.wide) {
            // The immediate only where there is one (the compares).
            let d = self.konst(ops::reg_arg(desc.dst));
            let (shape, mut args, mut n) = if desc.args {
                (&h.args, [Temp::ENV, d, lo, hi, Temp::ENV], 4)
            } else {
                let s = self.konst(ops::reg_arg(desc.src));
                (&h.reg, [Temp::ENV, d, s, Temp::ENV, Temp::ENV], 3)
            };
            if i.op_kind(last) == OpKind::Immediate8 {
                args[n] = self.konst(desc.imm as u64);
                n += 1;
            }
            self.b.call(shape, &args[..n], Some(r));
        } else {
            let d = self.konst(desc.pack());
            self.b.call(&SSE, &[Temp::ENV, d, lo, hi], Some(r));
        }
        if matches!(m, Comiss | Comisd | Ucomiss | Ucomisd) {
            self.set_eflags(r);
        } else if let Some((idx, size, high)) = gpr(dst_reg) {
            self.write_reg(Loc::Reg { idx, size, high }, r);
        }
        Some(Flow::Next)
    }

    /// Stores of XMM register `x` to memory: whole (movaps & co, movntdq & co), its low
    /// dword or quadword (movss, movd, movsd, movq, movlps/movlpd) or its high quadword
    /// (movhps/movhpd).
    fn sse_store(&mut self, i: &Instruction, x: usize) -> Option<Flow> {
        use Mnemonic::*;
        let m = i.mnemonic();
        let a = self.address(i, true);
        match m {
            Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu | Movntps | Movntpd | Movntdq => {
                if !unaligned_ok(m) {
                    self.check_align(a);
                }
                let lo = self.xmm_load(x, 0);
                let hi = self.xmm_load(x, 1);
                self.b.store(lo, a, self.q(), self.mmu_idx);
                let a8 = self.tmp();
                self.b.addi(a8, a, 8);
                self.b.store(hi, a8, self.q(), self.mmu_idx);
            }
            Movss | Movd => {
                let v = self.xmm_load(x, 0);
                self.b.store(v, a, MemOp::unsigned(Size::B32), self.mmu_idx);
            }
            Movsd | Movq | Movlps | Movlpd => {
                let v = self.xmm_load(x, 0);
                self.b.store(v, a, self.q(), self.mmu_idx);
            }
            Movhps | Movhpd => {
                let v = self.xmm_load(x, 1);
                self.b.store(v, a, self.q(), self.mmu_idx);
            }
            _ => return None,
        }
        Some(Flow::Next)
    }

    /// `maskmovdqu data, mask`: each byte of `data` whose byte in `mask` has its top bit set
    /// is stored at `[rdi + k]` (`[edi + k]` with a 0x67 prefix; ds, or an fs/gs override);
    /// the other bytes of memory are not touched, so a fully masked store cannot fault.
    fn maskmovdqu(&mut self, i: &Instruction) -> Option<()> {
        let a32 = i.op_kind(0) == OpKind::MemorySegEDI;
        let (data, mask) = (xmm(i.op_register(1))?, xmm(i.op_register(2))?);
        // Values that live across the per-byte labels must be locals.
        let addr = self.b.local(ir::Type::I64);
        let rdi = self.reg(7);
        if a32 {
            self.b.ext(ir::ExtFrom::U32, addr, rdi);
        } else {
            self.b.mov(addr, rdi);
        }
        self.add_segment_base(addr, i.memory_segment());
        let mut halves = [[Temp::ENV; 2]; 2];
        for (pair, r) in halves.iter_mut().zip([data, mask]) {
            for (half, slot) in pair.iter_mut().enumerate() {
                let v = self.b.local(ir::Type::I64);
                let t = self.xmm_load(r, half);
                self.b.mov(v, t);
                *slot = v;
            }
        }
        for k in 0..16u64 {
            let (half, shift) = ((k / 8) as usize, (k % 8) * 8);
            let skip = self.b.new_label();
            let bit = self.tmp();
            self.b
                .binary_imm(ir::BinOp::Shr, bit, halves[1][half], shift + 7);
            self.b.binary_imm(ir::BinOp::And, bit, bit, 1);
            self.b.brcondi(ir::Cond::Eq, bit, 0, skip);
            let byte = self.tmp();
            self.b
                .binary_imm(ir::BinOp::Shr, byte, halves[0][half], shift);
            let p = self.tmp();
            self.b.addi(p, addr, k);
            self.b
                .store(byte, p, MemOp::unsigned(Size::B8), self.mmu_idx);
            self.b.set_label(skip);
        }
        Some(())
    }

    /// `fxsave`: the 512-byte image: the x87 part (FCW, FSW, abridged FTW, ST0..7 at 32;
    /// FOP and the instruction/data pointers zero), MXCSR and its mask at 24, xmm0..15 at
    /// 160. Bytes 416..512 are left alone, as the processor does.
    fn fxsave(&mut self, i: &Instruction) {
        let a = self.address(i, true);
        self.check_align(a);
        let at = |t: &mut Self, off: u64| {
            let p = t.tmp();
            t.b.addi(p, a, off);
            p
        };
        self.x87_fxsave(a);
        let zero = self.konst(0);
        for off in [8, 16] {
            let p = at(self, off);
            self.b.store(zero, p, self.q(), self.mmu_idx);
        }
        let mx = self.tmp();
        self.b
            .env_load(mx, cpu::MXCSR_OFFSET, MemOp::unsigned(Size::B32));
        self.b
            .binary_imm(ir::BinOp::Or, mx, mx, FXSAVE_MXCSR_MASK << 32);
        let p = at(self, 24);
        self.b.store(mx, p, self.q(), self.mmu_idx);
        for r in 0..16 {
            for half in 0..2 {
                let v = self.xmm_load(r, half);
                let p = at(self, 160 + 16 * r as u64 + 8 * half as u64);
                self.b.store(v, p, self.q(), self.mmu_idx);
            }
        }
    }

    /// `fxrstor`: the x87 part, MXCSR (with its #GP check) and xmm0..15 from the image.
    /// Everything is loaded before anything changes.
    fn fxrstor(&mut self, i: &Instruction) {
        let a = self.address(i, true);
        self.check_align(a);
        let p = self.tmp();
        self.b.addi(p, a, 24);
        let mx = self.tmp();
        self.b.load(mx, p, MemOp::unsigned(Size::B32), self.mmu_idx);
        let fpu = self.x87_fxrstor_load(a);
        let mut vals = Vec::with_capacity(32);
        for k in 0..32u64 {
            let p = self.tmp();
            self.b.addi(p, a, 160 + 8 * k);
            let v = self.b.local(ir::Type::I64);
            self.b.load(v, p, self.q(), self.mmu_idx);
            vals.push(v);
        }
        self.b.call(&LDMXCSR, &[Temp::ENV, mx], None);
        self.x87_fxrstor_apply(&fpu);
        for (k, v) in vals.into_iter().enumerate() {
            self.b
                .env_store(v, cpu::xmm_offset(k / 2, k % 2), MemOp::unsigned(Size::B64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip() {
        let d = Desc {
            op: Mnemonic::Pshufd,
            dst: 15,
            src: 9,
            args: true,
            wide: false,
            mem: true,
            imm: 0xa5,
        };
        let u = Desc::unpack(d.pack()).unwrap();
        assert_eq!(
            (u.op, u.dst, u.src, u.args, u.wide, u.mem, u.imm),
            (Mnemonic::Pshufd, 15, 9, true, false, true, 0xa5)
        );
    }

    #[test]
    fn a_bad_descriptor_changes_nothing() {
        let mut cpu = X86Cpu::new(0);
        cpu.xmm[0] = [1, 2];
        // SAFETY: a live X86Cpu that nothing else touches.
        let r = unsafe { helper_sse(&mut *cpu as *mut X86Cpu as u64, 0xffff, 0, 0, 0, 0) };
        assert_eq!((r, cpu.xmm[0]), (0, [1, 2]));
    }
}
