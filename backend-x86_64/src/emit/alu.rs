//! Lowering of moves, arithmetic, bit operations, extensions and conditions.

use ir::{BinOp, Cond, ExtFrom, Temp, Type, UnOp};

use super::asm::{self, Alu, Sh};
use super::Compiler;
use crate::liveness::{DST, LIVE};
use crate::regalloc::Fail;
use crate::regalloc::NONE;
use crate::regs::*;

type R = Result<(), Fail>;

impl Compiler<'_> {
    /// A register for a result computed from scratch: `ra` when `a` dies here (and is not in
    /// `avoid`), else a fresh one. No copy is made.
    fn dst_any(&mut self, a: Temp, ra: Reg, a_after: u8, avoid: RegSet) -> Result<Reg, Fail> {
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
        asm::mov_ri_flags(self.asm, d, v);
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
        asm::mov_rr(self.asm, true, d, rs);
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
        let (a, b, ca, cb, a_after, b_after) = if ca.is_some() && op.is_commutative() {
            (b, a, cb, ca, life[1], life[0])
        } else {
            (a, b, ca, cb, life[0], life[1])
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
                        asm::lea(self.asm, w, d, asm::mem(ra, v));
                        self.bind(dst, d);
                        return Ok(());
                    }
                    let d = self.dst_from(a, ra, a_after, 0)?;
                    asm::alu_ri(self.asm, alu, w, d, v);
                    self.bind(dst, d);
                } else {
                    let rb = self.use_reg(b)?;
                    let b_dies = b_after != LIVE && b != a && cb.is_none();
                    if a_after == LIVE && b_dies && op != BinOp::Sub {
                        // Commutative: overwrite b's register instead of copying a.
                        let d = self.dst_from(b, rb, b_after, 0)?;
                        asm::alu_rr(self.asm, alu, w, d, ra);
                        self.bind(dst, d);
                    } else if a_after == LIVE && op == BinOp::Add {
                        // Both stay live: one lea instead of a copy and an add.
                        let d = self.alloc_reg(0)?;
                        asm::lea(self.asm, w, d, asm::mem_idx(ra, rb, 0));
                        self.bind(dst, d);
                    } else {
                        let d = self.dst_from(a, ra, a_after, 0)?;
                        asm::alu_rr(self.asm, alu, w, d, rb);
                        self.bind(dst, d);
                    }
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
                        asm::alu_ri(self.asm, Alu::And, w, d, nv as i32);
                        self.bind(dst, d);
                    }
                    None => {
                        let rb = self.use_reg(b)?;
                        asm::mov_rr(self.asm, true, TMP, rb);
                        asm::grp3(self.asm, asm::NOT, true, TMP);
                        let d = self.dst_from(a, ra, a_after, 0)?;
                        asm::alu_rr(self.asm, Alu::And, w, d, TMP);
                        self.bind(dst, d);
                    }
                }
            }
            BinOp::Mul => {
                let ra = self.use_reg(a)?;
                if let Some(v) = imm {
                    let d = self.dst_any(a, ra, a_after, 0)?;
                    asm::imul_rri(self.asm, w, d, ra, v);
                    self.bind(dst, d);
                } else {
                    let rb = self.use_reg(b)?;
                    let d = self.dst_from(a, ra, a_after, 0)?;
                    asm::imul_rr(self.asm, w, d, rb);
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
                    asm::shift_ri(self.asm, sh, w, d, (v as u32 & (bits - 1)) as u8);
                    self.bind(dst, d);
                } else if self.features.bmi2 && !matches!(sh, Sh::Rol | Sh::Ror) {
                    let rb = self.use_reg(b)?;
                    let ra = self.use_reg(a)?;
                    let d = self.dst_any(a, ra, a_after, 0)?;
                    asm::shift_bmi2(self.asm, sh, w, d, ra, rb);
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
                    asm::shift_cl(self.asm, sh, w, d);
                    self.bind(dst, d);
                }
            }
            BinOp::MulHu | BinOp::MulHs | BinOp::MulHsu if !w => {
                let ra = self.use_reg(a)?;
                let rb = self.use_reg(b)?;
                let d = self.alloc_reg(0)?;
                let a = &mut *self.asm;
                match op {
                    BinOp::MulHu => {
                        asm::mov_rr32(a, d, ra);
                        asm::imul_rr(a, true, d, rb);
                        asm::shift_ri(a, Sh::Shr, true, d, 32);
                    }
                    BinOp::MulHs => {
                        asm::ext_rr(a, ExtFrom::S32, true, d, ra);
                        asm::ext_rr(a, ExtFrom::S32, true, TMP, rb);
                        asm::imul_rr(a, true, d, TMP);
                        asm::shift_ri(a, Sh::Sar, true, d, 32);
                        asm::mov_rr32(a, d, d);
                    }
                    _ => {
                        asm::ext_rr(a, ExtFrom::S32, true, d, ra);
                        asm::imul_rr(a, true, d, rb);
                        asm::shift_ri(a, Sh::Sar, true, d, 32);
                        asm::mov_rr32(a, d, d);
                    }
                }
                self.bind(dst, d);
            }
            BinOp::MulHu | BinOp::MulHs | BinOp::MulHsu => {
                self.reserve(RAX)?;
                self.reserve(RDX)?;
                let ra = self.use_reg(a)?;
                let rb = self.use_reg(b)?;
                if op == BinOp::MulHsu {
                    asm::mov_rr(self.asm, true, TMP, ra);
                    asm::shift_ri(self.asm, Sh::Sar, true, TMP, 63);
                    asm::alu_rr(self.asm, Alu::And, true, TMP, rb);
                }
                asm::mov_rr(self.asm, true, RAX, ra);
                let digit = if op == BinOp::MulHs {
                    asm::IMUL1
                } else {
                    asm::MUL
                };
                asm::grp3(self.asm, digit, true, rb);
                if op == BinOp::MulHsu {
                    asm::alu_rr(self.asm, Alu::Sub, true, RDX, TMP);
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
                let zero = self.asm.new_label();
                let done = self.asm.new_label();
                asm::alu_rr(self.asm, Alu::Test, w, rb, rb);
                asm::jcc(self.asm, asm::Cc::E, zero);
                if signed {
                    let normal = self.asm.new_label();
                    asm::alu_ri(self.asm, Alu::Cmp, w, rb, -1);
                    asm::jcc(self.asm, asm::Cc::Ne, normal);
                    // b == -1: the quotient is -a (MIN stays MIN), the remainder 0.
                    if div {
                        asm::mov_rr(self.asm, true, RAX, ra);
                        asm::grp3(self.asm, asm::NEG, w, RAX);
                    } else {
                        asm::alu_rr(self.asm, Alu::Xor, false, RDX, RDX);
                    }
                    asm::jmp(self.asm, done);
                    self.asm.bind(normal);
                }
                asm::mov_rr(self.asm, true, RAX, ra);
                if signed {
                    // cqo / cdq
                    if w {
                        self.asm.push(0x48);
                    }
                    self.asm.push(0x99);
                    asm::grp3(self.asm, asm::IDIV, w, rb);
                } else {
                    asm::alu_rr(self.asm, Alu::Xor, false, RDX, RDX);
                    asm::grp3(self.asm, asm::DIV, w, rb);
                }
                asm::jmp(self.asm, done);
                self.asm.bind(zero);
                if div {
                    asm::mov_ri(self.asm, out, ty.mask());
                } else {
                    asm::mov_rr(self.asm, true, out, ra);
                }
                self.asm.bind(done);
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
                match op {
                    UnOp::Neg => asm::grp3(self.asm, asm::NEG, w, d),
                    UnOp::Not => asm::grp3(self.asm, asm::NOT, w, d),
                    _ => asm::bswap(self.asm, w, d),
                }
                self.bind(dst, d);
            }
            UnOp::Clz => {
                let d = self.dst_any(src, rs, after, 0)?;
                if self.features.lzcnt {
                    asm::bitop(self.asm, asm::PF3, 0xbd, w, d, rs);
                } else {
                    // bsr gives the index of the top bit; xor with width-1 turns it into the
                    // leading-zero count, and 2*width-1 (for zero) into width.
                    asm::mov_ri(self.asm, TMP, 2 * bits as u64 - 1);
                    asm::bitop(self.asm, 0, 0xbd, w, d, rs);
                    asm::cmov(self.asm, asm::Cc::E, w, d, TMP);
                    asm::alu_ri(self.asm, Alu::Xor, w, d, bits as i32 - 1);
                }
                self.bind(dst, d);
            }
            UnOp::Ctz => {
                let d = self.dst_any(src, rs, after, 0)?;
                if self.features.bmi1 {
                    asm::bitop(self.asm, asm::PF3, 0xbc, w, d, rs);
                } else {
                    asm::mov_ri(self.asm, TMP, bits as u64);
                    asm::bitop(self.asm, 0, 0xbc, w, d, rs);
                    asm::cmov(self.asm, asm::Cc::E, w, d, TMP);
                }
                self.bind(dst, d);
            }
            UnOp::Ctpop => {
                if self.features.popcnt {
                    let d = self.dst_any(src, rs, after, 0)?;
                    asm::bitop(self.asm, asm::PF3, 0xb8, w, d, rs);
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
        let a = &mut *self.asm;
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
        asm::imul_rr(a, w, d, TMP);
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
        asm::ext_rr(self.asm, from, w, d, rs);
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
        let a = &mut *self.asm;
        match (pos, len, signed, w) {
            (0, 8, false, _) => asm::ext_rr(a, ExtFrom::U8, w, d, d),
            (0, 8, true, _) => asm::ext_rr(a, ExtFrom::S8, w, d, d),
            (0, 16, false, _) => asm::ext_rr(a, ExtFrom::U16, w, d, d),
            (0, 16, true, _) => asm::ext_rr(a, ExtFrom::S16, w, d, d),
            (0, 32, false, true) => asm::mov_rr32(a, d, d),
            (0, 32, true, true) => asm::ext_rr(a, ExtFrom::S32, true, d, d),
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
            asm::mov_rr(self.asm, true, TMP, rv);
            if len == 32 {
                asm::mov_rr32(self.asm, TMP, TMP);
            } else if len < 32 {
                asm::alu_ri(self.asm, Alu::And, false, TMP, ((1u64 << len) - 1) as i32);
            } else if len < 64 {
                asm::shift_ri(self.asm, Sh::Shl, true, TMP, 64 - len);
                asm::shift_ri(self.asm, Sh::Shr, true, TMP, 64 - len);
            }
            asm::shift_ri(self.asm, Sh::Shl, w, TMP, pos);
        }
        let d = self.dst_from(base, rb, life[0], 0)?;
        let keep = !field & mask;
        if keep != mask {
            if asm::fits_imm32(w, keep) {
                asm::alu_ri(self.asm, Alu::And, w, d, keep as i32);
            } else {
                let t = self.alloc_reg(0)?;
                asm::mov_ri(self.asm, t, keep);
                asm::alu_rr(self.asm, Alu::And, w, d, t);
            }
        }
        match cval {
            None => asm::alu_rr(self.asm, Alu::Or, w, d, TMP),
            Some(v) => {
                let bits = (v << pos) & field;
                if bits != 0 {
                    if asm::fits_imm32(w, bits) {
                        asm::alu_ri(self.asm, Alu::Or, w, d, bits as i32);
                    } else {
                        asm::mov_ri(self.asm, TMP, bits);
                        asm::alu_rr(self.asm, Alu::Or, w, d, TMP);
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
        asm::setcc(self.asm, c.cc, d);
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
        asm::cmov(self.asm, c.cc, w, d, rt);
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
        asm::mov_rr(self.asm, true, d, rs);
        let _ = life;
        self.bind(dst, d);
        Ok(())
    }
}
