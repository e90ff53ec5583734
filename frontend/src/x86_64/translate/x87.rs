//! Translation of the x87 instructions (see [`crate::x86_64::x87`] for their semantics).
//!
//! The x87 state lives in the CPU state, not in globals; every instruction is one call of
//! the `x87` helper with a packed [`Desc`]. A memory source is loaded by the translator
//! first and passed as two quadwords; a memory destination takes three steps: the helper
//! returns the value without changing anything, the translator stores it (which may fault),
//! then a commit call applies the pop and the flags. `fcomi` & co. return EFLAGS, which
//! become the materialised lazy flags; `fnstsw ax` returns the status word.

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind, Register};
use ir::{Helper, HelperFlags, MemOp, Size, Temp};

use super::{Flow, Loc, Translator};
use crate::x86_64::cpu::{self, X86Cpu, RAX};
use crate::x86_64::x87::{self, Arith, Desc, Fmt, Fpu, Op, Phase, ARITH_DST_I};

/// Runs one x87 instruction described by `desc` (see [`Desc`]) with memory source bytes
/// `lo`/`hi`.
///
/// # Safety
/// `env` is the state pointer of an [`X86Cpu`] that nothing else accesses during the call.
unsafe extern "C" fn helper_x87(env: u64, desc: u64, lo: u64, hi: u64, _: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    let Some(d) = Desc::unpack(desc) else {
        return 0;
    };
    let mut f = Fpu::of(cpu);
    let r = x87::exec(&mut f, &d, lo, hi);
    if !matches!(d.phase, Phase::DryLo | Phase::DryHi) {
        f.save(cpu);
    }
    r
}

/// `x87(env, desc, lo, hi) -> value`: touches only the x87 state (not globals).
static X87: Helper = Helper {
    name: "x86_x87",
    func: helper_x87,
    flags: HelperFlags::NONE,
};

/// Quadword `k` of the x87 part of the FXSAVE image: 0 is bytes 0..8 (FCW, FSW, abridged
/// FTW, FOP 0), 1 + 2i and 2 + 2i are the two quadwords of ST(i)'s 16-byte slot.
///
/// # Safety
/// As [`helper_x87`].
unsafe extern "C" fn helper_fxsave(env: u64, k: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    let f = Fpu::of(cpu);
    match k {
        0 => f.cw as u64 | (f.status() as u64) << 16 | (f.tags as u64) << 32,
        _ => {
            let i = ((k - 1) / 2) as u8 & 7;
            let v = f.regs[((f.top + i) & 7) as usize];
            let (lo, hi) = x87::f80_parts(&v);
            if k % 2 == 1 {
                lo
            } else {
                hi
            }
        }
    }
}

static FXSAVE: Helper = Helper {
    name: "x86_fxsave_x87",
    func: helper_fxsave,
    flags: HelperFlags::NONE,
};

/// Restores from the FXSAVE image: `k` 0 with the first quadword (FCW, FSW, FTW), or
/// ST(k - 1) from `lo` and `hi` (load the control part first: it sets TOP).
///
/// # Safety
/// As [`helper_x87`].
unsafe extern "C" fn helper_fxrstor(env: u64, k: u64, lo: u64, hi: u64, _: u64, _: u64) -> u64 {
    // SAFETY: by this function's contract.
    let cpu = unsafe { &mut *(env as *mut X86Cpu) };
    let mut f = Fpu::of(cpu);
    if k == 0 {
        f.cw = lo as u16;
        let sw = (lo >> 16) as u16;
        f.sw = sw & !(7 << 11);
        f.top = (sw >> 11 & 7) as u8;
        f.tags = (lo >> 32) as u8;
    } else {
        let p = ((f.top as u64 + k - 1) & 7) as usize;
        f.regs[p][..8].copy_from_slice(&lo.to_le_bytes());
        f.regs[p][8..].copy_from_slice(&(hi as u16).to_le_bytes());
    }
    f.save(cpu);
    0
}

static FXRSTOR: Helper = Helper {
    name: "x86_fxrstor_x87",
    func: helper_fxrstor,
    flags: HelperFlags::NONE,
};

/// Whether `i` is an x87 instruction this module translates (or refuses).
pub(super) fn is_x87(i: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        i.mnemonic(),
        Fninit
            | Finit
            | Fldcw
            | Fnstcw
            | Fstcw
            | Fnstsw
            | Fstsw
            | Fnclex
            | Fclex
            | Fld
            | Fst
            | Fstp
            | Fild
            | Fist
            | Fistp
            | Fisttp
            | Fadd
            | Faddp
            | Fiadd
            | Fsub
            | Fsubp
            | Fisub
            | Fsubr
            | Fsubrp
            | Fisubr
            | Fmul
            | Fmulp
            | Fimul
            | Fdiv
            | Fdivp
            | Fidiv
            | Fdivr
            | Fdivrp
            | Fidivr
            | Fchs
            | Fabs
            | Fsqrt
            | Frndint
            | Fxch
            | Fcom
            | Fcomp
            | Fcompp
            | Fucom
            | Fucomp
            | Fucompp
            | Fcomi
            | Fcomip
            | Fucomi
            | Fucomip
            | Ficom
            | Ficomp
            | Fxam
            | Ftst
            | Fld1
            | Fldz
            | Fldpi
            | Fldl2e
            | Fldln2
            | Fldlg2
            | Fldl2t
            | Fscale
            | Fprem
            | Fprem1
            | Wait
            | Ffree
            | Fnop
            | F2xm1
            | Fsin
            | Fcos
            | Fptan
            | Fsincos
            | Fxtract
            | Fyl2x
            | Fyl2xp1
            | Fpatan
            | Fincstp
            | Fdecstp
            | Fnstenv
            | Fstenv
            | Fldenv
            | Fcmovb
            | Fcmovnb
            | Fcmove
            | Fcmovne
            | Fcmovbe
            | Fcmovnbe
            | Fcmovu
            | Fcmovnu
    )
}

/// ST register number of operand `n`, if it is one.
fn st_of(i: &Instruction, n: u32) -> Option<u8> {
    (i.op_kind(n) == OpKind::Register && i.op_register(n).is_st())
        .then(|| (i.op_register(n) as usize - Register::ST0 as usize) as u8)
}

/// The memory format of `i`'s memory operand.
fn fmt_of(i: &Instruction) -> Option<Fmt> {
    Some(match i.memory_size() {
        MemorySize::Float32 => Fmt::F32,
        MemorySize::Float64 => Fmt::F64,
        MemorySize::Float80 => Fmt::F80,
        MemorySize::Int16 | MemorySize::UInt16 => Fmt::I16,
        MemorySize::Int32 => Fmt::I32,
        MemorySize::Int64 => Fmt::I64,
        _ => return None,
    })
}

impl Translator<'_> {
    fn x87_call(&mut self, d: Desc, lo: Temp, hi: Temp) -> Temp {
        let desc = self.konst(d.pack());
        let r = self.tmp();
        self.b.call(&X87, &[Temp::ENV, desc, lo, hi], Some(r));
        r
    }

    /// Loads `i`'s memory operand of format `fmt`: the low 8 bytes (zero-extended) and, for
    /// 80-bit values, bytes 8..10.
    fn x87_load(&mut self, i: &Instruction, fmt: Fmt) -> Option<(Temp, Temp)> {
        let a = self.address(i, true);
        let lo = self.tmp();
        let size = match fmt.bytes() {
            2 => Size::B16,
            4 => Size::B32,
            8 | 10 => Size::B64,
            _ => return None,
        };
        self.b.load(lo, a, MemOp::unsigned(size), self.mmu_idx);
        let hi = if fmt == Fmt::F80 {
            let a8 = self.tmp();
            self.b.addi(a8, a, 8);
            let hi = self.tmp();
            self.b
                .load(hi, a8, MemOp::unsigned(Size::B16), self.mmu_idx);
            hi
        } else {
            self.konst(0)
        };
        Some((lo, hi))
    }

    /// A store of ST(0) to `i`'s memory operand: the value, the store, then the commit.
    fn x87_store(&mut self, i: &Instruction, d: Desc) -> Option<()> {
        let a = self.address(i, true);
        let z = self.konst(0);
        let lo = self.x87_call(
            Desc {
                phase: Phase::DryLo,
                ..d
            },
            z,
            z,
        );
        let size = match d.fmt.bytes() {
            2 => Size::B16,
            4 => Size::B32,
            8 | 10 => Size::B64,
            _ => return None,
        };
        if d.fmt == Fmt::F80 {
            let hi = self.x87_call(
                Desc {
                    phase: Phase::DryHi,
                    ..d
                },
                z,
                z,
            );
            self.b
                .store(lo, a, MemOp::unsigned(Size::B64), self.mmu_idx);
            let a8 = self.tmp();
            self.b.addi(a8, a, 8);
            self.b
                .store(hi, a8, MemOp::unsigned(Size::B16), self.mmu_idx);
        } else {
            self.b.store(lo, a, MemOp::unsigned(size), self.mmu_idx);
        }
        self.x87_call(
            Desc {
                phase: Phase::Commit,
                ..d
            },
            z,
            z,
        );
        Some(())
    }

    /// Translates an x87 instruction; `None` for forms this slice does not implement.
    pub(super) fn x87(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        let m = i.mnemonic();
        let mem = (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory);
        let z = self.konst(0);
        let simple = |op| Some(Desc::new(op));
        let d = match m {
            Wait | Fnop => return Some(Flow::Next),
            Fninit | Finit => simple(Op::Init),
            Fnclex | Fclex => simple(Op::Clex),
            Fldcw => {
                let a = self.address(i, true);
                let v = self.tmp();
                self.b.load(v, a, MemOp::unsigned(Size::B16), self.mmu_idx);
                self.b
                    .env_store(v, cpu::FPU_CW_OFFSET, MemOp::unsigned(Size::B16));
                return Some(Flow::Next);
            }
            Fnstcw | Fstcw => {
                let a = self.address(i, true);
                let v = self.tmp();
                self.b
                    .env_load(v, cpu::FPU_CW_OFFSET, MemOp::unsigned(Size::B16));
                self.b.store(v, a, MemOp::unsigned(Size::B16), self.mmu_idx);
                return Some(Flow::Next);
            }
            Fnstsw | Fstsw => {
                let v = self.x87_call(Desc::new(Op::Stsw), z, z);
                if mem {
                    let a = self.address(i, true);
                    self.b.store(v, a, MemOp::unsigned(Size::B16), self.mmu_idx);
                } else {
                    let ax = Loc::Reg {
                        idx: RAX,
                        size: 1,
                        high: false,
                    };
                    self.write_reg(ax, v);
                }
                return Some(Flow::Next);
            }
            Fld | Fild => {
                if mem {
                    let fmt = fmt_of(i)?;
                    let (lo, hi) = self.x87_load(i, fmt)?;
                    self.x87_call(
                        Desc {
                            fmt,
                            ..Desc::new(Op::Load)
                        },
                        lo,
                        hi,
                    );
                    return Some(Flow::Next);
                }
                Some(Desc {
                    i: st_of(i, 0)?,
                    ..Desc::new(Op::Load)
                })
            }
            Fst | Fstp | Fist | Fistp | Fisttp => {
                let d = Desc {
                    pops: matches!(m, Fstp | Fistp | Fisttp) as u8,
                    sub: (m == Fisttp) as u8,
                    ..Desc::new(Op::Store)
                };
                if mem {
                    self.x87_store(
                        i,
                        Desc {
                            fmt: fmt_of(i)?,
                            ..d
                        },
                    )?;
                    return Some(Flow::Next);
                }
                Some(Desc {
                    i: st_of(i, 0)?,
                    ..d
                })
            }
            Fadd | Faddp | Fiadd | Fsub | Fsubp | Fisub | Fsubr | Fsubrp | Fisubr | Fmul
            | Fmulp | Fimul | Fdiv | Fdivp | Fidiv | Fdivr | Fdivrp | Fidivr => {
                let kind = match m {
                    Fadd | Faddp | Fiadd => Arith::Add,
                    Fsub | Fsubp | Fisub | Fsubr | Fsubrp | Fisubr => Arith::Sub,
                    Fmul | Fmulp | Fimul => Arith::Mul,
                    _ => Arith::Div,
                };
                let mut d = Desc {
                    sub: kind as u8,
                    rev: matches!(m, Fsubr | Fsubrp | Fisubr | Fdivr | Fdivrp | Fidivr),
                    pops: matches!(m, Faddp | Fsubp | Fsubrp | Fmulp | Fdivp | Fdivrp) as u8,
                    ..Desc::new(Op::Arith)
                };
                if mem {
                    d.fmt = fmt_of(i)?;
                    let (lo, hi) = self.x87_load(i, d.fmt)?;
                    self.x87_call(d, lo, hi);
                    return Some(Flow::Next);
                }
                match i.op_count() {
                    // `faddp` with no operands: st(1), st(0).
                    0 => {
                        d.i = 1;
                        d.sub |= ARITH_DST_I;
                    }
                    _ => {
                        let (a, b) = (st_of(i, 0)?, st_of(i, 1)?);
                        if a == 0 {
                            d.i = b;
                        } else if b == 0 {
                            d.i = a;
                            d.sub |= ARITH_DST_I;
                        } else {
                            return None;
                        }
                    }
                }
                Some(d)
            }
            Fcmovb | Fcmovnb | Fcmove | Fcmovne | Fcmovbe | Fcmovnbe | Fcmovu | Fcmovnu => {
                // The condition-code numbers of jcc: B AE E NE BE A P NP.
                let cc = match m {
                    Fcmovb => 2,
                    Fcmovnb => 3,
                    Fcmove => 4,
                    Fcmovne => 5,
                    Fcmovbe => 6,
                    Fcmovnbe => 7,
                    Fcmovu => 10,
                    _ => 11,
                };
                let (c, x, y) = self.cc.condition(self.b, cc);
                let t = self.tmp();
                self.b.setcond(c, t, x, y);
                let d = Desc {
                    i: (0..i.op_count()).filter_map(|n| st_of(i, n)).next_back()?,
                    ..Desc::new(Op::Cmov)
                };
                self.x87_call(d, t, z);
                return Some(Flow::Next);
            }
            Fnstenv | Fstenv => {
                let a = self.address(i, true);
                for k in 0..4u8 {
                    let v = self.x87_call(
                        Desc {
                            sub: k,
                            phase: Phase::DryLo,
                            ..Desc::new(Op::Stenv)
                        },
                        z,
                        z,
                    );
                    let p = self.tmp();
                    self.b.addi(p, a, 8 * k as u64);
                    let size = if k == 3 { Size::B32 } else { Size::B64 };
                    self.b.store(v, p, MemOp::unsigned(size), self.mmu_idx);
                }
                Some(Desc {
                    phase: Phase::Commit,
                    ..Desc::new(Op::Stenv)
                })
            }
            Fldenv => {
                let a = self.address(i, true);
                let lo = self.tmp();
                self.b.load(lo, a, MemOp::unsigned(Size::B64), self.mmu_idx);
                let p = self.tmp();
                self.b.addi(p, a, 8);
                let hi = self.tmp();
                self.b.load(hi, p, MemOp::unsigned(Size::B16), self.mmu_idx);
                // The rest of the 28 bytes is not used, but must be readable.
                let p = self.tmp();
                self.b.addi(p, a, 24);
                let rest = self.tmp();
                self.b
                    .load(rest, p, MemOp::unsigned(Size::B32), self.mmu_idx);
                self.x87_call(Desc::new(Op::Ldenv), lo, hi);
                return Some(Flow::Next);
            }
            F2xm1 | Fsin | Fcos | Fptan | Fsincos | Fxtract => Some(Desc {
                sub: match m {
                    F2xm1 => 0,
                    Fsin => 1,
                    Fcos => 2,
                    Fptan => 3,
                    Fsincos => 4,
                    _ => 5,
                },
                ..Desc::new(Op::Trans1)
            }),
            Fyl2x | Fyl2xp1 | Fpatan => Some(Desc {
                sub: match m {
                    Fyl2x => 0,
                    Fyl2xp1 => 1,
                    _ => 2,
                },
                ..Desc::new(Op::Trans2)
            }),
            Fincstp | Fdecstp => Some(Desc {
                sub: (m == Fdecstp) as u8,
                ..Desc::new(Op::Stp)
            }),
            Fchs => simple(Op::Chs),
            Fabs => simple(Op::Abs),
            Fsqrt => simple(Op::Sqrt),
            Frndint => simple(Op::Rndint),
            Fscale => simple(Op::Scale),
            Fprem => simple(Op::Prem),
            Fprem1 => Some(Desc {
                sub: 1,
                ..Desc::new(Op::Prem)
            }),
            Fxam => simple(Op::Xam),
            Ftst => simple(Op::Tst),
            Fld1 | Fldl2t | Fldl2e | Fldpi | Fldlg2 | Fldln2 | Fldz => Some(Desc {
                sub: match m {
                    Fld1 => 0,
                    Fldl2t => 1,
                    Fldl2e => 2,
                    Fldpi => 3,
                    Fldlg2 => 4,
                    Fldln2 => 5,
                    _ => 6,
                },
                ..Desc::new(Op::Const)
            }),
            Fxch => Some(Desc {
                i: (0..i.op_count())
                    .filter_map(|n| st_of(i, n))
                    .next_back()
                    .unwrap_or(1),
                ..Desc::new(Op::Xch)
            }),
            Ffree => Some(Desc {
                i: st_of(i, 0)?,
                ..Desc::new(Op::Free)
            }),
            Fcom | Fcomp | Fcompp | Fucom | Fucomp | Fucompp | Fcomi | Fcomip | Fucomi
            | Fucomip | Ficom | Ficomp => {
                let unordered = matches!(m, Fucom | Fucomp | Fucompp | Fucomi | Fucomip);
                let eflags = matches!(m, Fcomi | Fcomip | Fucomi | Fucomip);
                let mut d = Desc {
                    sub: unordered as u8 | (eflags as u8) << 1,
                    pops: match m {
                        Fcompp | Fucompp => 2,
                        Fcomp | Fucomp | Fcomip | Fucomip | Ficomp => 1,
                        _ => 0,
                    },
                    i: 1,
                    ..Desc::new(Op::Com)
                };
                let (mut lo, mut hi) = (z, z);
                if mem {
                    d.fmt = fmt_of(i)?;
                    (lo, hi) = self.x87_load(i, d.fmt)?;
                } else if let Some(s) = (0..i.op_count()).filter_map(|n| st_of(i, n)).next_back() {
                    d.i = s;
                }
                let r = self.x87_call(d, lo, hi);
                if eflags {
                    self.set_eflags(r);
                }
                return Some(Flow::Next);
            }
            _ => None,
        }?;
        self.x87_call(d, z, z);
        Some(Flow::Next)
    }

    /// The x87 part of `fxsave` at `a`: bytes 0..8 and the eight 16-byte ST slots at 32.
    /// Bytes 8..24 (the instruction and data pointers) are written by the caller.
    pub(super) fn x87_fxsave(&mut self, a: Temp) {
        for k in 0..17u64 {
            let kk = self.konst(k);
            let v = self.tmp();
            self.b.call(&FXSAVE, &[Temp::ENV, kk], Some(v));
            let off = if k == 0 { 0 } else { 32 + 8 * (k - 1) };
            let p = self.tmp();
            self.b.addi(p, a, off);
            // A slot's high quadword is zero-extended: its reserved bytes 10..16 read zero.
            self.b.store(v, p, MemOp::unsigned(Size::B64), self.mmu_idx);
        }
    }

    /// Loads the x87 part of an FXSAVE image at `a` into locals (before anything changes).
    pub(super) fn x87_fxrstor_load(&mut self, a: Temp) -> Vec<Temp> {
        (0..17u64)
            .map(|k| {
                let off = if k == 0 { 0 } else { 32 + 8 * (k - 1) };
                let p = self.tmp();
                self.b.addi(p, a, off);
                let v = self.b.local(ir::Type::I64);
                self.b.load(v, p, MemOp::unsigned(Size::B64), self.mmu_idx);
                v
            })
            .collect()
    }

    /// Applies what [`Self::x87_fxrstor_load`] loaded.
    pub(super) fn x87_fxrstor_apply(&mut self, vals: &[Temp]) {
        let z = self.konst(0);
        let k0 = self.konst(0);
        self.b.call(&FXRSTOR, &[Temp::ENV, k0, vals[0], z], None);
        for r in 0..8u64 {
            let k = self.konst(r + 1);
            let (lo, hi) = (vals[1 + 2 * r as usize], vals[2 + 2 * r as usize]);
            self.b.call(&FXRSTOR, &[Temp::ENV, k, lo, hi], None);
        }
    }
}
