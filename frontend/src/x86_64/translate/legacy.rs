//! 16- and 32-bit code (a system-mode [`Mode`](super::Mode) with `code_bits` 16 or 32):
//! segment bases, the 16/32-bit stack, and 16-bit code's linear `rip`.
//!
//! **Segment bases.** Outside 64-bit mode every memory operand is `segment base + offset`
//! (SDM vol. 3 3.4): the default segment is DS, SS for operands based on SP/BP (ESP/EBP),
//! ES for string destinations; prefixes override it (never the string destination). The
//! offset is computed at the address size (16 bits: it wraps at 64 KiB before the base is
//! added) and the linear address is 32 bits. ES, CS, SS and DS bases are read at run time
//! from `sys.segs[..].base` ([`cpu::seg_base_offset`]), since a block's key does not hold
//! them; only exits to the machine change them. FS and GS use the `fs_base`/`gs_base`
//! globals in every mode, as in 64-bit mode, which the machine keeps equal to
//! `sys.segs[Fs/Gs].base`. In 64-bit mode nothing changes: only FS and GS have bases.
//! Segment limits and access rights are not checked (gap: no #GP/#SS for an offset past a
//! limit or a write through a read-only segment).
//!
//! **The stack.** Pushes, pops, near calls and returns, `enter`/`leave` and `pushf`/`popf`
//! address `SS.base + SP` with a 16-bit SP in 16-bit code and `SS.base + ESP` with a 32-bit
//! ESP in 32-bit code: the stack's address size follows the code size, not SS.B (gap: 16-bit
//! code on a 32-bit stack or 32-bit code on a 16-bit one). A 16-bit SP write leaves bits
//! 63:16 of rsp alone; a 32-bit ESP write zero-extends.
//!
//! **`rip` in 16-bit code is linear.** With `code_bits` 16, a block's pc and the `rip`
//! global are `CS.base + IP`, so code is fetched where it really is. Direct near branches
//! go to `next + displacement` without wrapping IP at 64 KiB (real code does not rely on the
//! wrap); a near `call` pushes `next - CS.base` (the IP, 2 bytes, 4 with a 0x66 prefix), a
//! near `ret` pops the IP and continues at `CS.base + IP`, an indirect near `jmp`/`call` goes
//! to `CS.base + target`. CS.base is read at run time. In 32-bit code `rip` is EIP and the
//! code segment is taken as flat (CS.base 0, what Linux and the PVH entry use; gap
//! otherwise).

use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};
use ir::{Cond, ExtFrom, MemOp, Size, Temp};

use super::{Flow, Translator};
use crate::x86_64::cpu::{self, RCX, RSP};

/// The `sys::Segment` number of ES, CS, SS or DS (DS for anything else: FS and GS never get
/// here).
fn seg_number(r: Register) -> usize {
    match r {
        Register::ES => 0,
        Register::CS => 1,
        Register::SS => 2,
        _ => 3,
    }
}

/// The address size (16, 32 or 64) of `i`'s explicit memory operand in code of
/// `code_bits`: its registers' size, or, with no register, its displacement's size (a
/// lone displacement is as wide as the address).
fn address_bits(i: &Instruction, code_bits: u8) -> u8 {
    let (base, index) = (i.memory_base(), i.memory_index());
    if base.is_gpr16() || index.is_gpr16() {
        16
    } else if base.is_gpr32() || index.is_gpr32() {
        32
    } else if base.is_gpr64() || index.is_gpr64() || base == Register::RIP {
        64
    } else {
        match i.memory_displ_size() {
            2 => 16,
            4 => 32,
            8 => 64,
            _ => code_bits,
        }
    }
}

/// The width in bits of the count register (CX, ECX or RCX) of a `loop*` or `j*cxz`.
pub(super) fn count_bits(code: Code) -> u8 {
    use Code::*;
    match code {
        Loop_rel8_16_CX | Loop_rel8_32_CX | Loope_rel8_16_CX | Loope_rel8_32_CX
        | Loopne_rel8_16_CX | Loopne_rel8_32_CX | Jcxz_rel8_16 | Jcxz_rel8_32 => 16,
        Loop_rel8_16_ECX | Loop_rel8_32_ECX | Loop_rel8_64_ECX | Loope_rel8_16_ECX
        | Loope_rel8_32_ECX | Loope_rel8_64_ECX | Loopne_rel8_16_ECX | Loopne_rel8_32_ECX
        | Loopne_rel8_64_ECX | Jecxz_rel8_16 | Jecxz_rel8_32 | Jecxz_rel8_64 => 32,
        _ => 64,
    }
}

/// The linear target of a direct near branch whose decoder-computed target is
/// `decoded` (iced wraps it at the operand size, from a linear `next`), in code of
/// `code_bits`. In 16-bit code the displacement is recovered and added to the linear
/// `next`; elsewhere the decoded target is right as it is.
pub(super) fn linear_target(code_bits: u8, kind: OpKind, decoded: u64, next: u64) -> u64 {
    let width = match kind {
        OpKind::NearBranch16 => 16,
        OpKind::NearBranch32 => 32,
        _ => return decoded,
    };
    if code_bits != 16 {
        return decoded;
    }
    let shift = 64 - width;
    let disp = ((decoded.wrapping_sub(next) << shift) as i64) >> shift;
    next.wrapping_add(disp as u64)
}

impl Translator<'_> {
    /// Whether the block is 16- or 32-bit code.
    pub(super) fn legacy(&self) -> bool {
        self.mode.code_bits != 64
    }

    /// The base of `seg`, if it has one in this mode: outside 64-bit mode any segment's,
    /// in 64-bit mode FS's and GS's only.
    fn segment_base(&mut self, seg: Register) -> Option<Temp> {
        match seg {
            Register::FS => Some(self.b.global(cpu::FS_BASE_GLOBAL)),
            Register::GS => Some(self.b.global(cpu::GS_BASE_GLOBAL)),
            _ if self.legacy() => {
                let t = self.tmp();
                let offset = cpu::seg_base_offset(seg_number(seg));
                self.b.env_load(t, offset, MemOp::unsigned(Size::B64));
                Some(t)
            }
            _ => None,
        }
    }

    /// Adds the base of `seg` (see [`Self::segment_base`]) to the offset in `a`, in place;
    /// outside 64-bit mode the linear address is then 32 bits.
    pub(super) fn add_segment_base(&mut self, a: Temp, seg: Register) {
        if let Some(base) = self.segment_base(seg) {
            self.b.add(a, a, base);
            if self.legacy() {
                self.b.ext(ExtFrom::U32, a, a);
            }
        }
    }

    /// `offset` plus the base of `seg` as [`Self::add_segment_base`] adds it: `offset` itself
    /// when there is no base to add, a new temp otherwise.
    pub(super) fn segment_linear(&mut self, seg: Register, offset: Temp) -> Temp {
        match self.segment_base(seg) {
            Some(base) => {
                let a = self.tmp();
                self.b.add(a, offset, base);
                if self.legacy() {
                    self.b.ext(ExtFrom::U32, a, a);
                }
                a
            }
            None => offset,
        }
    }

    /// Outside 64-bit mode, truncates the offset in `a` (of `i`'s memory operand) to its
    /// address size.
    pub(super) fn wrap_offset(&mut self, i: &Instruction, a: Temp) {
        if !self.legacy() {
            return;
        }
        match address_bits(i, self.mode.code_bits) {
            16 => self.b.ext(ExtFrom::U16, a, a),
            32 => self.b.ext(ExtFrom::U32, a, a),
            _ => {}
        }
    }

    /// The linear target of the direct near branch `i` (see [`linear_target`]).
    pub(super) fn branch_target(&self, i: &Instruction) -> u64 {
        linear_target(
            self.mode.code_bits,
            i.op0_kind(),
            i.near_branch_target(),
            self.next,
        )
    }

    /// `v` truncated to the stack's address size (nothing in 64-bit mode).
    pub(super) fn wrap_sp(&mut self, v: Temp) {
        match self.mode.code_bits {
            16 => self.b.ext(ExtFrom::U16, v, v),
            32 => self.b.ext(ExtFrom::U32, v, v),
            _ => {}
        }
    }

    /// A new temp with the stack pointer plus `delta`, wrapped at the stack's size.
    pub(super) fn sp_plus(&mut self, delta: i64) -> Temp {
        let rsp = self.reg(RSP);
        let sp = self.tmp();
        self.b.addi(sp, rsp, delta as u64);
        self.wrap_sp(sp);
        sp
    }

    /// The linear address of stack offset `sp`: `sp` itself in 64-bit mode, `SS.base + sp`
    /// otherwise.
    pub(super) fn stack_linear(&mut self, sp: Temp) -> Temp {
        if self.legacy() {
            self.segment_linear(Register::SS, sp)
        } else {
            sp
        }
    }

    /// The linear address of the top of the stack (rsp itself in 64-bit mode).
    pub(super) fn stack_top(&mut self) -> Temp {
        let rsp = self.reg(RSP);
        if !self.legacy() {
            return rsp;
        }
        let sp = self.tmp();
        self.b.mov(sp, rsp);
        self.wrap_sp(sp);
        self.stack_linear(sp)
    }

    /// Makes `sp` (already wrapped) the stack pointer: all of rsp in 64-bit mode, ESP
    /// zero-extended in 32-bit code, SP merged into rsp's low 16 bits in 16-bit code.
    pub(super) fn set_sp(&mut self, sp: Temp) {
        let rsp = self.reg(RSP);
        if self.mode.code_bits == 16 {
            self.b.deposit(rsp, rsp, sp, 0, 16);
        } else {
            self.b.mov(rsp, sp);
        }
    }

    /// Releases `n` bytes of stack (after a pop): rsp += n at the stack's size.
    pub(super) fn release_stack(&mut self, n: u64) {
        if !self.legacy() {
            let rsp = self.reg(RSP);
            self.b.addi(rsp, rsp, n);
            return;
        }
        let sp = self.sp_plus(n as i64);
        self.set_sp(sp);
    }

    /// Writes `v` to the count register of a `loop*` (CX, ECX or RCX by `bits`).
    pub(super) fn set_count(&mut self, v: Temp, bits: u8) {
        let rcx = self.reg(RCX);
        match bits {
            16 => self.b.deposit(rcx, rcx, v, 0, 16),
            32 => self.b.ext(ExtFrom::U32, rcx, v),
            _ => self.b.mov(rcx, v),
        }
    }

    /// `v` (an IP or EIP) as the linear address `rip` holds: `CS.base + v` in 16-bit code,
    /// `v` in 32-bit code.
    fn ip_to_rip(&mut self, v: Temp) -> Temp {
        if self.mode.code_bits == 16 {
            let cs = self.tmp();
            self.b
                .env_load(cs, cpu::CS_BASE_OFFSET, MemOp::unsigned(Size::B64));
            self.b.add(cs, cs, v);
            cs
        } else {
            v
        }
    }

    /// Near `jmp`, `call` and `ret` in 16- and 32-bit code (direct, or through a register
    /// or memory operand) with 2- or 4-byte stack slots by the operand size; `None` for
    /// other forms.
    pub(super) fn near_legacy(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        if i.mnemonic() == Ret {
            let size = match i.code() {
                Code::Retnw | Code::Retnw_imm16 => 2,
                _ => 4,
            };
            let pop = if i.op_count() == 1 {
                i.immediate16() as u64
            } else {
                0
            };
            let top = self.stack_top();
            let v = self.tmp();
            let mop = MemOp::unsigned(if size == 2 { Size::B16 } else { Size::B32 });
            self.b.load(v, top, mop, self.mmu_idx);
            self.release_stack(size + pop);
            let target = self.ip_to_rip(v);
            let rip = self.b.global(cpu::RIP_GLOBAL);
            self.b.mov(rip, target);
            self.b.lookup_and_goto();
            return Some(Flow::End);
        }
        let target = match i.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 => None,
            OpKind::Register | OpKind::Memory => {
                let l = self.operand(i, 0)?;
                if !matches!(l.size(), 1 | 2) {
                    return None;
                }
                let v = self.read(l);
                let t = self.tmp();
                self.b.mov(t, v);
                Some(t)
            }
            _ => return None,
        };
        if i.mnemonic() == Call {
            let size = i.stack_pointer_increment().unsigned_abs() as i64;
            let mop = MemOp::unsigned(if size == 2 { Size::B16 } else { Size::B32 });
            let sp = self.sp_plus(-size);
            let slot = self.stack_linear(sp);
            let next = self.konst(self.next);
            let ret = if self.mode.code_bits == 16 {
                // The IP: the linear next instruction less CS.base.
                let ip = self.tmp();
                self.b
                    .env_load(ip, cpu::CS_BASE_OFFSET, MemOp::unsigned(Size::B64));
                self.b.sub(ip, next, ip);
                ip
            } else {
                next
            };
            self.b.store(ret, slot, mop, self.mmu_idx);
            self.set_sp(sp);
        }
        match target {
            None => {
                self.set_rip(self.branch_target(i));
                self.b.goto_tb(0);
            }
            Some(t) => {
                let t = self.ip_to_rip(t);
                let rip = self.b.global(cpu::RIP_GLOBAL);
                self.b.mov(rip, t);
                self.b.lookup_and_goto();
            }
        }
        Some(Flow::End)
    }

    /// Whether the count register (of `bits`) is zero, as a condition on `rcx`.
    pub(super) fn count_zero(&mut self, bits: u8) -> (Cond, Temp, Temp) {
        let rcx = self.reg(RCX);
        let mask = match bits {
            16 => 0xffff,
            32 => u32::MAX as u64,
            _ => u64::MAX,
        };
        let m = self.konst(mask);
        (Cond::TstEq, rcx, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn decode(bits: u32, bytes: &[u8], ip: u64) -> Instruction {
        Decoder::with_ip(bits, bytes, ip, DecoderOptions::NONE).decode()
    }

    #[test]
    fn sixteen_bit_branch_targets_are_next_plus_the_displacement_not_wrapped_at_64k() {
        // jmp short -2 (eb fe) at linear 0x9_0010: an infinite loop onto itself, whatever
        // CS.base is; iced wraps its target at 16 bits.
        let i = decode(16, &[0xeb, 0xfe], 0x9_0010);
        let t = linear_target(16, i.op0_kind(), i.near_branch_target(), 0x9_0012);
        assert_eq!(t, 0x9_0010);
        // call rel16 +0x100 (e8 00 01) at 0x9_fff0 crosses a 64 KiB line.
        let i = decode(16, &[0xe8, 0x00, 0x01], 0x9_fff0);
        let t = linear_target(16, i.op0_kind(), i.near_branch_target(), 0x9_fff3);
        assert_eq!(t, 0xa_00f3);
        // With 0x66 (jmp rel32) backwards by 0x20.
        let i = decode(16, &[0x66, 0xe9, 0xe0, 0xff, 0xff, 0xff], 0x8_1000);
        let t = linear_target(16, i.op0_kind(), i.near_branch_target(), 0x8_1006);
        assert_eq!(t, 0x8_0fe6);
    }

    #[test]
    fn thirty_two_and_sixty_four_bit_targets_are_the_decoders() {
        let i = decode(32, &[0xeb, 0xfe], 0x10_0000);
        assert_eq!(
            linear_target(32, i.op0_kind(), i.near_branch_target(), 0x10_0002),
            0x10_0000
        );
        let i = decode(64, &[0xe8, 0, 0, 0, 0], 0xffff_ffff_8100_0000);
        let decoded = i.near_branch_target();
        assert_eq!(linear_target(64, i.op0_kind(), decoded, 0), decoded);
    }

    #[test]
    fn the_count_register_follows_the_address_size() {
        // loop in 16-bit code counts in cx; with 0x67 in ecx; in 64-bit code in rcx.
        assert_eq!(count_bits(decode(16, &[0xe2, 0xfe], 0).code()), 16);
        assert_eq!(count_bits(decode(16, &[0x67, 0xe2, 0xfd], 0).code()), 32);
        assert_eq!(count_bits(decode(32, &[0xe2, 0xfe], 0).code()), 32);
        assert_eq!(count_bits(decode(64, &[0xe2, 0xfe], 0).code()), 64);
        assert_eq!(count_bits(decode(64, &[0x67, 0xe2, 0xfd], 0).code()), 32);
        // jcxz / jecxz / jrcxz.
        assert_eq!(count_bits(decode(16, &[0xe3, 0xfe], 0).code()), 16);
        assert_eq!(count_bits(decode(32, &[0xe3, 0xfe], 0).code()), 32);
        assert_eq!(count_bits(decode(64, &[0xe3, 0xfe], 0).code()), 64);
    }

    #[test]
    fn the_address_size_of_a_memory_operand() {
        // mov ax, [bx + si + 2]; mov ax, [0x1234]; with 0x67: mov ax, [ebx]; mov ax, [0x12345678].
        assert_eq!(address_bits(&decode(16, &[0x8b, 0x40, 0x02], 0), 16), 16);
        assert_eq!(
            address_bits(&decode(16, &[0x8b, 0x06, 0x34, 0x12], 0), 16),
            16
        );
        assert_eq!(address_bits(&decode(16, &[0x67, 0x8b, 0x03], 0), 16), 32);
        let abs32 = [0x67, 0x8b, 0x05, 0x78, 0x56, 0x34, 0x12];
        assert_eq!(address_bits(&decode(16, &abs32, 0), 16), 32);
        // 32-bit code: mov eax, [0x12345678]; with 0x67: mov eax, [bx].
        let abs32 = [0x8b, 0x05, 0x78, 0x56, 0x34, 0x12];
        assert_eq!(address_bits(&decode(32, &abs32, 0), 32), 32);
        assert_eq!(address_bits(&decode(32, &[0x67, 0x8b, 0x07], 0), 32), 16);
    }
}
