//! Lowering of moves, arithmetic, bit operations, extensions and conditions.

use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};
use ir::{BinOp, Cond, ExtFrom, Temp, Type, UnOp};

use super::asm::{self, Alu, Sh};
use super::Compiler;
use crate::liveness::{DST, LIVE};
use crate::regalloc::NONE;
use crate::regs::*;
use crate::BackendError;

type R = Result<(), BackendError>;

impl Compiler<'_> {
    /// A register for a result computed from scratch: `ra` when `a` dies here (and is not in
    /// `avoid`), else a fresh one. No copy is made.
    fn dst_any(
        &mut self,
        a: Temp,
        ra: Reg,
        a_after: u8,
        avoid: RegSet,
    ) -> Result<Reg, BackendError> {
        let o = self.rs.owner[ra as usize];
        if a_after != LIVE && ra != ENV && avoid & (1 << ra) == 0 && (o == a.0 || o == NONE) {
            return self.dst_from(a, ra, a_after, avoid);
        }
        self.alloc_reg(avoid)
    }

    /// `dst = constant`
    fn set_const(&mut self, dst: Temp, v: u64) -> R {
        let d = match self.reg_opt(dst) {
            Some(r) => {
                self.rs.locked |= 1 << r;
                r
            }
            None => self.alloc_reg(0)?,
        };
        asm::mov_ri_flags(&mut self.asm, d, v);
        self.bind(dst, d);
        Ok(())
    }

    pub(crate) fn lower_mov(&mut self, i: usize, dst: Temp, src: Temp) -> R {
        if dst == src {
            return Ok(());
        }
        if let Some(v) = self.block.const_value(src) {
            return self.set_const(dst, v & self.block.ty(dst).mask());
        }
        let rs = self.use_reg(src)?;
        let after = self.life[i][0];
        if after != LIVE && self.rs.owner[rs as usize] == src.0 {
            // The source dies: the destination takes over its register.
            if self.rs.temps[src.index()].in_mem || after == crate::liveness::DEAD {
                self.unbind(src);
            } else {
                self.spill(src)?;
            }
            self.bind(dst, rs);
            return Ok(());
        }
        let d = self.alloc_reg(0)?;
        asm::mov_rr(&mut self.asm, true, d, rs);
        self.bind(dst, d);
        Ok(())
    }

    pub(crate) fn lower_binary(
        &mut self,
        i: usize,
        op: BinOp,
        ty: Type,
        dst: Temp,
        a: Temp,
        b: Temp,
    ) -> R {
        let w = ty == Type::I64;
        let bits = ty.bits();
        let (ca, cb) = (self.block.const_value(a), self.block.const_value(b));
        if let (Some(x), Some(y)) = (ca, cb) {
            return self.set_const(dst, op.eval(ty, x, y));
        }
        let life = self.life[i];
        // Put a constant second where the operation allows it.
        let (a, b, ca, cb, a_after) = if ca.is_some() && op.is_commutative() {
            (b, a, cb, ca, life[1])
        } else {
            (a, b, ca, cb, life[0])
        };
        let _ = ca;
        let imm = cb.filter(|&v| asm::fits_imm32(w, v)).map(|v| v as i32);
        match op {
            BinOp::Add | BinOp::Sub | BinOp::And | BinOp::Or | BinOp::Xor => {
                let alu = match op {
                    BinOp::Add => Alu::Add,
                    BinOp::Sub => Alu::Sub,
                    BinOp::And => Alu::And,
                    BinOp::Or => Alu::Or,
                    _ => Alu::Xor,
                };
                let ra = self.use_reg(a)?;
                if let Some(v) = imm {
                    if op == BinOp::Add && a_after == LIVE {
                        let d = self.alloc_reg(0)?;
                        if w {
                            dynasm!(self.asm ; .arch x64 ; lea Rq(d), [Rq(ra) + v]);
                        } else {
                            dynasm!(self.asm ; .arch x64 ; lea Rd(d), [Rq(ra) + v]);
                        }
                        self.bind(dst, d);
                        return Ok(());
                    }
                    let d = self.dst_from(a, ra, a_after, 0)?;
                    asm::alu_ri(&mut self.asm, alu, w, d, v);
                    self.bind(dst, d);
                } else {
                    let rb = self.use_reg(b)?;
                    let d = self.dst_from(a, ra, a_after, 0)?;
                    asm::alu_rr(&mut self.asm, alu, w, d, rb);
                    self.bind(dst, d);
                }
            }
            BinOp::AndNot => {
                let ra = self.use_reg(a)?;
                match cb
                    .map(|v| !v & ty.mask())
                    .filter(|&v| asm::fits_imm32(w, v))
                {
                    Some(nv) => {
                        let d = self.dst_from(a, ra, a_after, 0)?;
                        asm::alu_ri(&mut self.asm, Alu::And, w, d, nv as i32);
                        self.bind(dst, d);
                    }
                    None => {
                        let rb = self.use_reg(b)?;
                        asm::mov_rr(&mut self.asm, true, TMP, rb);
                        dynasm!(self.asm ; .arch x64 ; not Rq(TMP));
                        let d = self.dst_from(a, ra, a_after, 0)?;
                        asm::alu_rr(&mut self.asm, Alu::And, w, d, TMP);
                        self.bind(dst, d);
                    }
                }
            }
            BinOp::Mul => {
                let ra = self.use_reg(a)?;
                if let Some(v) = imm {
                    let d = self.dst_any(a, ra, a_after, 0)?;
                    if w {
                        dynasm!(self.asm ; .arch x64 ; imul Rq(d), Rq(ra), v);
                    } else {
                        dynasm!(self.asm ; .arch x64 ; imul Rd(d), Rd(ra), v);
                    }
                    self.bind(dst, d);
                } else {
                    let rb = self.use_reg(b)?;
                    let d = self.dst_from(a, ra, a_after, 0)?;
                    if w {
                        dynasm!(self.asm ; .arch x64 ; imul Rq(d), Rq(rb));
                    } else {
                        dynasm!(self.asm ; .arch x64 ; imul Rd(d), Rd(rb));
                    }
                    self.bind(dst, d);
                }
            }
            BinOp::Shl | BinOp::Shr | BinOp::Sar | BinOp::Rotl | BinOp::Rotr => {
                let sh = match op {
                    BinOp::Shl => Sh::Shl,
                    BinOp::Shr => Sh::Shr,
                    BinOp::Sar => Sh::Sar,
                    BinOp::Rotl => Sh::Rol,
                    _ => Sh::Ror,
                };
                if let Some(v) = cb {
                    let ra = self.use_reg(a)?;
                    let d = self.dst_from(a, ra, a_after, 0)?;
                    asm::shift_ri(&mut self.asm, sh, w, d, (v as u32 & (bits - 1)) as u8);
                    self.bind(dst, d);
                } else if self.features.bmi2 && !matches!(sh, Sh::Rol | Sh::Ror) {
                    let rb = self.use_reg(b)?;
                    let ra = self.use_reg(a)?;
                    let d = self.dst_any(a, ra, a_after, 0)?;
                    asm::shift_bmi2(&mut self.asm, sh, w, d, ra, rb);
                    self.bind(dst, d);
                } else {
                    if self.reg_opt(b) == Some(RCX) {
                        self.rs.locked |= 1 << RCX;
                    } else {
                        self.reserve(RCX)?;
                        self.value_into(b, RCX)?;
                    }
                    let ra = self.use_reg(a)?;
                    let d = self.dst_from(a, ra, a_after, 1 << RCX)?;
                    asm::shift_cl(&mut self.asm, sh, w, d);
                    self.bind(dst, d);
                }
            }
            BinOp::MulHu | BinOp::MulHs | BinOp::MulHsu if !w => {
                let ra = self.use_reg(a)?;
                let rb = self.use_reg(b)?;
                let d = self.alloc_reg(0)?;
                match op {
                    BinOp::MulHu => dynasm!(self.asm ; .arch x64
                        ; mov Rd(d), Rd(ra) ; imul Rq(d), Rq(rb) ; shr Rq(d), 32),
                    BinOp::MulHs => dynasm!(self.asm ; .arch x64
                        ; movsxd Rq(d), Rd(ra) ; movsxd Rq(TMP), Rd(rb) ; imul Rq(d), Rq(TMP)
                        ; sar Rq(d), 32 ; mov Rd(d), Rd(d)),
                    _ => dynasm!(self.asm ; .arch x64
                        ; movsxd Rq(d), Rd(ra) ; imul Rq(d), Rq(rb) ; sar Rq(d), 32
                        ; mov Rd(d), Rd(d)),
                }
                self.bind(dst, d);
            }
            BinOp::MulHu | BinOp::MulHs | BinOp::MulHsu => {
                self.reserve(RAX)?;
                self.reserve(RDX)?;
                let ra = self.use_reg(a)?;
                let rb = self.use_reg(b)?;
                if op == BinOp::MulHsu {
                    dynasm!(self.asm ; .arch x64
                        ; mov Rq(TMP), Rq(ra) ; sar Rq(TMP), 63 ; and Rq(TMP), Rq(rb));
                }
                dynasm!(self.asm ; .arch x64 ; mov rax, Rq(ra));
                if op == BinOp::MulHs {
                    dynasm!(self.asm ; .arch x64 ; imul Rq(rb));
                } else {
                    dynasm!(self.asm ; .arch x64 ; mul Rq(rb));
                }
                if op == BinOp::MulHsu {
                    dynasm!(self.asm ; .arch x64 ; sub rdx, Rq(TMP));
                }
                self.bind(dst, RDX);
            }
            BinOp::DivS | BinOp::DivU | BinOp::RemS | BinOp::RemU => {
                self.reserve(RAX)?;
                self.reserve(RDX)?;
                let ra = self.use_reg(a)?;
                let rb = self.use_reg(b)?;
                let signed = matches!(op, BinOp::DivS | BinOp::RemS);
                let div = matches!(op, BinOp::DivS | BinOp::DivU);
                let out = if div { RAX } else { RDX };
                let zero = self.asm.new_dynamic_label();
                let done = self.asm.new_dynamic_label();
                asm::alu_rr(&mut self.asm, Alu::Test, w, rb, rb);
                asm::jcc(&mut self.asm, asm::Cc::E, zero);
                if signed {
                    let normal = self.asm.new_dynamic_label();
                    asm::alu_ri(&mut self.asm, Alu::Cmp, w, rb, -1);
                    asm::jcc(&mut self.asm, asm::Cc::Ne, normal);
                    // b == -1: the quotient is -a (MIN stays MIN), the remainder 0.
                    if div {
                        asm::mov_rr(&mut self.asm, true, RAX, ra);
                        if w {
                            dynasm!(self.asm ; .arch x64 ; neg rax);
                        } else {
                            dynasm!(self.asm ; .arch x64 ; neg eax);
                        }
                    } else {
                        dynasm!(self.asm ; .arch x64 ; xor edx, edx);
                    }
                    asm::jmp(&mut self.asm, done);
                    dynasm!(self.asm ; .arch x64 ; =>normal);
                }
                asm::mov_rr(&mut self.asm, true, RAX, ra);
                match (signed, w) {
                    (false, true) => dynasm!(self.asm ; .arch x64 ; xor edx, edx ; div Rq(rb)),
                    (false, false) => dynasm!(self.asm ; .arch x64 ; xor edx, edx ; div Rd(rb)),
                    (true, true) => dynasm!(self.asm ; .arch x64 ; cqo ; idiv Rq(rb)),
                    (true, false) => dynasm!(self.asm ; .arch x64 ; cdq ; idiv Rd(rb)),
                }
                asm::jmp(&mut self.asm, done);
                dynasm!(self.asm ; .arch x64 ; =>zero);
                if div {
                    asm::mov_ri(&mut self.asm, out, ty.mask());
                } else {
                    asm::mov_rr(&mut self.asm, true, out, ra);
                }
                dynasm!(self.asm ; .arch x64 ; =>done);
                self.bind(dst, out);
            }
        }
        Ok(())
    }

    pub(crate) fn lower_unary(&mut self, i: usize, op: UnOp, ty: Type, dst: Temp, src: Temp) -> R {
        if let Some(v) = self.block.const_value(src) {
            return self.set_const(dst, op.eval(ty, v));
        }
        let w = ty == Type::I64;
        let bits = ty.bits();
        let after = self.life[i][0];
        let rs = self.use_reg(src)?;
        match op {
            UnOp::Neg | UnOp::Not | UnOp::Bswap => {
                let d = self.dst_from(src, rs, after, 0)?;
                match (op, w) {
                    (UnOp::Neg, true) => dynasm!(self.asm ; .arch x64 ; neg Rq(d)),
                    (UnOp::Neg, false) => dynasm!(self.asm ; .arch x64 ; neg Rd(d)),
                    (UnOp::Not, true) => dynasm!(self.asm ; .arch x64 ; not Rq(d)),
                    (UnOp::Not, false) => dynasm!(self.asm ; .arch x64 ; not Rd(d)),
                    (_, true) => dynasm!(self.asm ; .arch x64 ; bswap Rq(d)),
                    (_, false) => dynasm!(self.asm ; .arch x64 ; bswap Rd(d)),
                }
                self.bind(dst, d);
            }
            UnOp::Clz => {
                let d = self.dst_any(src, rs, after, 0)?;
                if self.features.lzcnt {
                    if w {
                        dynasm!(self.asm ; .arch x64 ; lzcnt Rq(d), Rq(rs));
                    } else {
                        dynasm!(self.asm ; .arch x64 ; lzcnt Rd(d), Rd(rs));
                    }
                } else {
                    // bsr gives the index of the top bit; xor with width-1 turns it into the
                    // leading-zero count, and 2*width-1 (for zero) into width.
                    asm::mov_ri(&mut self.asm, TMP, 2 * bits as u64 - 1);
                    if w {
                        dynasm!(self.asm ; .arch x64 ; bsr Rq(d), Rq(rs));
                    } else {
                        dynasm!(self.asm ; .arch x64 ; bsr Rd(d), Rd(rs));
                    }
                    asm::cmov(&mut self.asm, asm::Cc::E, w, d, TMP);
                    asm::alu_ri(&mut self.asm, Alu::Xor, w, d, bits as i32 - 1);
                }
                self.bind(dst, d);
            }
            UnOp::Ctz => {
                let d = self.dst_any(src, rs, after, 0)?;
                if self.features.bmi1 {
                    if w {
                        dynasm!(self.asm ; .arch x64 ; tzcnt Rq(d), Rq(rs));
                    } else {
                        dynasm!(self.asm ; .arch x64 ; tzcnt Rd(d), Rd(rs));
                    }
                } else {
                    asm::mov_ri(&mut self.asm, TMP, bits as u64);
                    if w {
                        dynasm!(self.asm ; .arch x64 ; bsf Rq(d), Rq(rs));
                    } else {
                        dynasm!(self.asm ; .arch x64 ; bsf Rd(d), Rd(rs));
                    }
                    asm::cmov(&mut self.asm, asm::Cc::E, w, d, TMP);
                }
                self.bind(dst, d);
            }
            UnOp::Ctpop => {
                if self.features.popcnt {
                    let d = self.dst_any(src, rs, after, 0)?;
                    if w {
                        dynasm!(self.asm ; .arch x64 ; popcnt Rq(d), Rq(rs));
                    } else {
                        dynasm!(self.asm ; .arch x64 ; popcnt Rd(d), Rd(rs));
                    }
                    self.bind(dst, d);
                } else {
                    let d = self.dst_from(src, rs, after, 0)?;
                    let t = self.alloc_reg(0)?;
                    self.swar_popcount(w, d, t);
                    self.bind(dst, d);
                }
            }
        }
        Ok(())
    }

    /// Population count of `d` in place (SWAR), with `t` and TMP as temporaries.
    fn swar_popcount(&mut self, w: bool, d: Reg, t: Reg) {
        let a = &mut self.asm;
        let m = |v: u64| if w { v } else { v & 0xffff_ffff };
        asm::mov_rr(a, true, t, d);
        asm::shift_ri(a, Sh::Shr, w, t, 1);
        asm::mov_ri(a, TMP, m(0x5555_5555_5555_5555));
        asm::alu_rr(a, Alu::And, w, t, TMP);
        asm::alu_rr(a, Alu::Sub, w, d, t);
        asm::mov_rr(a, true, t, d);
        asm::shift_ri(a, Sh::Shr, w, t, 2);
        asm::mov_ri(a, TMP, m(0x3333_3333_3333_3333));
        asm::alu_rr(a, Alu::And, w, t, TMP);
        asm::alu_rr(a, Alu::And, w, d, TMP);
        asm::alu_rr(a, Alu::Add, w, d, t);
        asm::mov_rr(a, true, t, d);
        asm::shift_ri(a, Sh::Shr, w, t, 4);
        asm::alu_rr(a, Alu::Add, w, d, t);
        asm::mov_ri(a, TMP, m(0x0f0f_0f0f_0f0f_0f0f));
        asm::alu_rr(a, Alu::And, w, d, TMP);
        asm::mov_ri(a, TMP, m(0x0101_0101_0101_0101));
        if w {
            dynasm!(a ; .arch x64 ; imul Rq(d), Rq(TMP));
        } else {
            dynasm!(a ; .arch x64 ; imul Rd(d), Rd(TMP));
        }
        asm::shift_ri(a, Sh::Shr, w, d, if w { 56 } else { 24 });
    }

    pub(crate) fn lower_ext(
        &mut self,
        i: usize,
        from: ExtFrom,
        ty: Type,
        dst: Temp,
        src: Temp,
    ) -> R {
        if let Some(v) = self.block.const_value(src) {
            return self.set_const(dst, from.eval(ty, v));
        }
        let w = ty == Type::I64;
        let after = self.life[i][0];
        let rs = self.use_reg(src)?;
        let d = self.dst_any(src, rs, after, 0)?;
        let a = &mut self.asm;
        match (from, w) {
            (ExtFrom::S8, true) => dynasm!(a ; .arch x64 ; movsx Rq(d), Rb(rs)),
            (ExtFrom::S8, false) => dynasm!(a ; .arch x64 ; movsx Rd(d), Rb(rs)),
            (ExtFrom::U8, _) => dynasm!(a ; .arch x64 ; movzx Rd(d), Rb(rs)),
            (ExtFrom::S16, true) => dynasm!(a ; .arch x64 ; movsx Rq(d), Rw(rs)),
            (ExtFrom::S16, false) => dynasm!(a ; .arch x64 ; movsx Rd(d), Rw(rs)),
            (ExtFrom::U16, _) => dynasm!(a ; .arch x64 ; movzx Rd(d), Rw(rs)),
            (ExtFrom::S32, true) => dynasm!(a ; .arch x64 ; movsxd Rq(d), Rd(rs)),
            (ExtFrom::S32 | ExtFrom::U32, _) => dynasm!(a ; .arch x64 ; mov Rd(d), Rd(rs)),
        }
        self.bind(dst, d);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lower_extract(
        &mut self,
        i: usize,
        ty: Type,
        dst: Temp,
        src: Temp,
        pos: u8,
        len: u8,
        signed: bool,
    ) -> R {
        if let Some(v) = self.block.const_value(src) {
            return self.set_const(dst, ir::extract(ty, v, pos, len, signed));
        }
        let w = ty == Type::I64;
        let bits = ty.bits() as u8;
        let after = self.life[i][0];
        let rs = self.use_reg(src)?;
        let d = self.dst_from(src, rs, after, 0)?;
        let a = &mut self.asm;
        match (pos, len, signed, w) {
            (0, 8, false, _) => dynasm!(a ; .arch x64 ; movzx Rd(d), Rb(d)),
            (0, 8, true, true) => dynasm!(a ; .arch x64 ; movsx Rq(d), Rb(d)),
            (0, 8, true, false) => dynasm!(a ; .arch x64 ; movsx Rd(d), Rb(d)),
            (0, 16, false, _) => dynasm!(a ; .arch x64 ; movzx Rd(d), Rw(d)),
            (0, 16, true, true) => dynasm!(a ; .arch x64 ; movsx Rq(d), Rw(d)),
            (0, 16, true, false) => dynasm!(a ; .arch x64 ; movsx Rd(d), Rw(d)),
            (0, 32, false, true) => dynasm!(a ; .arch x64 ; mov Rd(d), Rd(d)),
            (0, 32, true, true) => dynasm!(a ; .arch x64 ; movsxd Rq(d), Rd(d)),
            _ => {
                asm::shift_ri(a, Sh::Shl, w, d, bits - pos - len);
                let sh = if signed { Sh::Sar } else { Sh::Shr };
                asm::shift_ri(a, sh, w, d, bits - len);
            }
        }
        self.bind(dst, d);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lower_deposit(
        &mut self,
        i: usize,
        ty: Type,
        dst: Temp,
        base: Temp,
        val: Temp,
        pos: u8,
        len: u8,
    ) -> R {
        let (cbase, cval) = (self.block.const_value(base), self.block.const_value(val));
        if let (Some(x), Some(y)) = (cbase, cval) {
            return self.set_const(dst, ir::deposit(ty, x, y, pos, len));
        }
        let w = ty == Type::I64;
        let mask = ty.mask();
        let field = (u64::MAX >> (64 - len as u32)) << pos & mask;
        let life = self.life[i];
        let rb = self.use_reg(base)?;
        let rv = match cval {
            Some(_) => None,
            None => Some(self.use_reg(val)?),
        };
        if let Some(rv) = rv {
            // TMP = (val & low len bits) << pos, before the destination is touched.
            asm::mov_rr(&mut self.asm, true, TMP, rv);
            if len == 32 {
                dynasm!(self.asm ; .arch x64 ; mov Rd(TMP), Rd(TMP));
            } else if len < 32 {
                asm::alu_ri(
                    &mut self.asm,
                    Alu::And,
                    false,
                    TMP,
                    ((1u64 << len) - 1) as i32,
                );
            } else if len < 64 {
                asm::shift_ri(&mut self.asm, Sh::Shl, true, TMP, 64 - len);
                asm::shift_ri(&mut self.asm, Sh::Shr, true, TMP, 64 - len);
            }
            asm::shift_ri(&mut self.asm, Sh::Shl, w, TMP, pos);
        }
        let d = self.dst_from(base, rb, life[0], 0)?;
        let keep = !field & mask;
        if keep != mask {
            if asm::fits_imm32(w, keep) {
                asm::alu_ri(&mut self.asm, Alu::And, w, d, keep as i32);
            } else {
                let t = self.alloc_reg(0)?;
                asm::mov_ri(&mut self.asm, t, keep);
                asm::alu_rr(&mut self.asm, Alu::And, w, d, t);
            }
        }
        match cval {
            None => asm::alu_rr(&mut self.asm, Alu::Or, w, d, TMP),
            Some(v) => {
                let bits = (v << pos) & field;
                if bits != 0 {
                    if asm::fits_imm32(w, bits) {
                        asm::alu_ri(&mut self.asm, Alu::Or, w, d, bits as i32);
                    } else {
                        asm::mov_ri(&mut self.asm, TMP, bits);
                        asm::alu_rr(&mut self.asm, Alu::Or, w, d, TMP);
                    }
                }
            }
        }
        self.bind(dst, d);
        Ok(())
    }

    pub(crate) fn lower_setcond(
        &mut self,
        _i: usize,
        cond: Cond,
        ty: Type,
        dst: Temp,
        a: Temp,
        b: Temp,
    ) -> R {
        if let (Some(x), Some(y)) = (self.block.const_value(a), self.block.const_value(b)) {
            return self.set_const(dst, cond.eval(ty, x, y) as u64);
        }
        let c = self.cmp_prepare(cond, ty, a, b)?;
        let d = self.alloc_reg(0)?;
        self.cmp_emit(&c);
        asm::setcc(&mut self.asm, c.cc, d);
        self.bind(dst, d);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lower_movcond(
        &mut self,
        i: usize,
        cond: Cond,
        ty: Type,
        dst: Temp,
        a: Temp,
        b: Temp,
        t: Temp,
        f: Temp,
    ) -> R {
        if let (Some(x), Some(y)) = (self.block.const_value(a), self.block.const_value(b)) {
            let pick = if cond.eval(ty, x, y) { t } else { f };
            // Same as a move of the chosen operand, whose after-state is at index 2 or 3.
            let k = if pick == t { 2 } else { 3 };
            let mut life = self.life[i];
            life[0] = life[k];
            return self.lower_mov_with(life, dst, pick);
        }
        let w = ty == Type::I64;
        let c = self.cmp_prepare(cond, ty, a, b)?;
        let rt = self.use_reg(t)?;
        let rf = self.use_reg(f)?;
        let mut avoid = 1 << c.ra;
        if let Ok(rb) = c.rb {
            avoid |= 1 << rb;
        }
        avoid |= 1 << rt;
        let d = self.dst_from(f, rf, self.life[i][3], avoid)?;
        self.cmp_emit(&c);
        asm::cmov(&mut self.asm, c.cc, w, d, rt);
        self.bind(dst, d);
        let _ = DST;
        Ok(())
    }

    fn lower_mov_with(&mut self, life: crate::liveness::OpLife, dst: Temp, src: Temp) -> R {
        if dst == src {
            return Ok(());
        }
        if let Some(v) = self.block.const_value(src) {
            return self.set_const(dst, v);
        }
        let rs = self.use_reg(src)?;
        let d = self.alloc_reg(0)?;
        asm::mov_rr(&mut self.asm, true, d, rs);
        let _ = life;
        self.bind(dst, d);
        Ok(())
    }
}
