//! Text form of blocks for `-d op`-style logs: one op per line, guest instructions introduced by
//! `---- pc` lines, temps by name (`env`, global names, `locN`, `tmpN`, `$0x…` constants).

use std::fmt;

use crate::op::Op;
use crate::types::{Temp, TempKind};
use crate::Block;

struct T<'a>(&'a Block, Temp);

impl fmt::Display for T<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(info) = self.0.temps.get(self.1.index()) else {
            return write!(f, "?{}", self.1 .0);
        };
        match info.kind {
            TempKind::Env => f.write_str("env"),
            TempKind::Global { index, .. } => match self.0.globals.get(index as usize) {
                Some(g) => f.write_str(g.name),
                None => write!(f, "?g{index}"),
            },
            TempKind::Local => write!(f, "loc{}", self.1 .0),
            TempKind::Scratch => write!(f, "tmp{}", self.1 .0),
            TempKind::Const(v) => write!(f, "${v:#x}"),
        }
    }
}

/// Formats one op of `block`.
pub fn format_op(block: &Block, op: &Op) -> String {
    let t = |x: Temp| T(block, x);
    match *op {
        Op::Mov { ty, dst, src } => format!("mov_{ty} {}, {}", t(dst), t(src)),
        Op::Binary { op, ty, dst, a, b } => {
            format!("{}_{ty} {}, {}, {}", op.name(), t(dst), t(a), t(b))
        }
        Op::Unary { op, ty, dst, src } => format!("{}_{ty} {}, {}", op.name(), t(dst), t(src)),
        Op::Ext { from, ty, dst, src } => format!("{}_{ty} {}, {}", from.name(), t(dst), t(src)),
        Op::Trunc { dst, src } => format!("trunc_i32 {}, {}", t(dst), t(src)),
        Op::Extract {
            ty,
            dst,
            src,
            pos,
            len,
            signed,
        } => {
            let s = if signed { "s" } else { "u" };
            format!("extract{s}_{ty} {}, {}, {pos}, {len}", t(dst), t(src))
        }
        Op::Deposit {
            ty,
            dst,
            base,
            val,
            pos,
            len,
        } => {
            format!(
                "deposit_{ty} {}, {}, {}, {pos}, {len}",
                t(dst),
                t(base),
                t(val)
            )
        }
        Op::SetCond {
            cond,
            ty,
            dst,
            a,
            b,
        } => format!(
            "setcond_{ty} {}, {}, {}, {}",
            t(dst),
            t(a),
            t(b),
            cond.name()
        ),
        Op::MovCond {
            cond,
            ty,
            dst,
            a,
            b,
            t: tv,
            f,
        } => {
            format!(
                "movcond_{ty} {}, {}, {}, {}, {}, {}",
                t(dst),
                t(a),
                t(b),
                t(tv),
                t(f),
                cond.name()
            )
        }
        Op::SetLabel(l) => format!("set_label L{}", l.0),
        Op::Br(l) => format!("br L{}", l.0),
        Op::BrCond {
            cond,
            ty,
            a,
            b,
            label,
        } => format!(
            "brcond_{ty} {}, {}, {}, L{}",
            t(a),
            t(b),
            cond.name(),
            label.0
        ),
        Op::Load {
            dst,
            addr,
            mop,
            mmu_idx,
        } => format!("ld_{mop} {}, {}, mmu{mmu_idx}", t(dst), t(addr)),
        Op::Store {
            val,
            addr,
            mop,
            mmu_idx,
        } => format!("st_{mop} {}, {}, mmu{mmu_idx}", t(val), t(addr)),
        Op::EnvLoad { dst, offset, mop } => format!("env_ld_{mop} {}, [{offset:#x}]", t(dst)),
        Op::EnvStore { val, offset, mop } => format!("env_st_{mop} {}, [{offset:#x}]", t(val)),
        Op::Call {
            helper,
            args,
            nargs,
            ret,
        } => {
            let args: Vec<String> = args[..nargs as usize]
                .iter()
                .map(|&a| t(a).to_string())
                .collect();
            match ret {
                Some(r) => format!("call {} = {}({})", t(r), helper.name, args.join(", ")),
                None => format!("call {}({})", helper.name, args.join(", ")),
            }
        }
        Op::Fence => "fence".to_string(),
        Op::InsnStart { pc, extra } => {
            if extra == 0 {
                format!("---- {pc:#x}")
            } else {
                format!("---- {pc:#x} {extra:#x}")
            }
        }
        Op::GotoTb { slot } => format!("goto_tb {slot}"),
        Op::ExitTb { reason } => format!("exit_tb {reason:#x}"),
        Op::LookupAndGoto => "lookup_and_goto".to_string(),
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            let indent = if matches!(op, Op::InsnStart { .. } | Op::SetLabel(_)) {
                ""
            } else {
                " "
            };
            writeln!(f, "{indent}{}", format_op(self, op))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{Builder, Cond, GlobalDef, MemOp, Size, Type};

    #[test]
    fn prints_a_block_like_a_tcg_op_log() {
        let globals: Arc<[GlobalDef]> = Arc::from(vec![
            GlobalDef {
                name: "pc",
                ty: Type::I64,
                offset: 200,
            },
            GlobalDef {
                name: "x5",
                ty: Type::I64,
                offset: 208,
            },
        ]);
        let mut b = Builder::new(globals, Type::I64);
        let (pc, x5) = (b.global(0), b.global(1));
        b.insn_start(0x8000_0000, 0);
        let t = b.scratch(Type::I64);
        b.load(t, x5, MemOp::signed(Size::B32), 1);
        let skip = b.new_label();
        b.brcondi(Cond::Eq, t, 0, skip);
        b.addi(x5, x5, 16);
        b.set_label(skip);
        b.movi(pc, 0x8000_0004);
        b.goto_tb(0);
        let text = b.finish().to_string();
        let expected = "\
---- 0x80000000
 ld_s32 tmp3, x5, mmu1
 brcond_i64 tmp3, $0x0, eq, L0
 add_i64 x5, x5, $0x10
set_label L0
 mov_i64 pc, $0x80000004
 goto_tb 0
";
        assert_eq!(text, expected);
    }
}
