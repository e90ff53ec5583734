//! Disassembly of decoded instructions in the style of GNU objdump with `-M no-aliases`
//! (`addi a0,a0,1`, `ld ra,8(sp)`, `beq a0,zero,0x1234`), for `--log in_asm`.
//!
//! Registers use their ABI names, CSRs their names when tern knows them, rounding modes are
//! shown only when not dynamic. A compressed instruction prints as the base instruction it
//! expands to (`c.addi a0,1` prints `addi a0,a0,1`), since that is what the translator runs.

use std::fmt;

use super::cpu::{FREG_NAMES, XREG_NAMES};
use super::decode::{Format, TABLE};
use super::insn::{Insn, Opcode};

macro_rules! opcodes {
    ($($op:ident => $m:literal),* $(,)?) => {
        /// Every [`Opcode`], in declaration order. Built from the same list as [`mnemonic`],
        /// whose `match` is exhaustive, so a new opcode cannot be missing here.
        pub const ALL_OPCODES: &[Opcode] = &[$(Opcode::$op),*];

        /// The assembler mnemonic of `op` (without AMO ordering suffixes).
        pub fn mnemonic(op: Opcode) -> &'static str {
            match op {
                $(Opcode::$op => $m),*
            }
        }
    };
}

opcodes! {
    Lui => "lui", Auipc => "auipc", Jal => "jal", Jalr => "jalr",
    Beq => "beq", Bne => "bne", Blt => "blt", Bge => "bge", Bltu => "bltu", Bgeu => "bgeu",
    Lb => "lb", Lh => "lh", Lw => "lw", Ld => "ld", Lbu => "lbu", Lhu => "lhu", Lwu => "lwu",
    Sb => "sb", Sh => "sh", Sw => "sw", Sd => "sd",
    Addi => "addi", Slti => "slti", Sltiu => "sltiu", Xori => "xori", Ori => "ori",
    Andi => "andi", Slli => "slli", Srli => "srli", Srai => "srai",
    Add => "add", Sub => "sub", Sll => "sll", Slt => "slt", Sltu => "sltu", Xor => "xor",
    Srl => "srl", Sra => "sra", Or => "or", And => "and",
    Addiw => "addiw", Slliw => "slliw", Srliw => "srliw", Sraiw => "sraiw",
    Addw => "addw", Subw => "subw", Sllw => "sllw", Srlw => "srlw", Sraw => "sraw",
    Fence => "fence", FenceI => "fence.i", Ecall => "ecall", Ebreak => "ebreak",
    Csrrw => "csrrw", Csrrs => "csrrs", Csrrc => "csrrc",
    Csrrwi => "csrrwi", Csrrsi => "csrrsi", Csrrci => "csrrci",
    Mul => "mul", Mulh => "mulh", Mulhsu => "mulhsu", Mulhu => "mulhu", Div => "div",
    Divu => "divu", Rem => "rem", Remu => "remu", Mulw => "mulw", Divw => "divw",
    Divuw => "divuw", Remw => "remw", Remuw => "remuw",
    LrW => "lr.w", ScW => "sc.w", AmoswapW => "amoswap.w", AmoaddW => "amoadd.w",
    AmoxorW => "amoxor.w", AmoandW => "amoand.w", AmoorW => "amoor.w", AmominW => "amomin.w",
    AmomaxW => "amomax.w", AmominuW => "amominu.w", AmomaxuW => "amomaxu.w",
    LrD => "lr.d", ScD => "sc.d", AmoswapD => "amoswap.d", AmoaddD => "amoadd.d",
    AmoxorD => "amoxor.d", AmoandD => "amoand.d", AmoorD => "amoor.d", AmominD => "amomin.d",
    AmomaxD => "amomax.d", AmominuD => "amominu.d", AmomaxuD => "amomaxu.d",
    Flw => "flw", Fsw => "fsw", FmaddS => "fmadd.s", FmsubS => "fmsub.s",
    FnmsubS => "fnmsub.s", FnmaddS => "fnmadd.s", FaddS => "fadd.s", FsubS => "fsub.s",
    FmulS => "fmul.s", FdivS => "fdiv.s", FsqrtS => "fsqrt.s", FsgnjS => "fsgnj.s",
    FsgnjnS => "fsgnjn.s", FsgnjxS => "fsgnjx.s", FminS => "fmin.s", FmaxS => "fmax.s",
    FcvtWS => "fcvt.w.s", FcvtWuS => "fcvt.wu.s", FcvtLS => "fcvt.l.s", FcvtLuS => "fcvt.lu.s",
    FcvtSW => "fcvt.s.w", FcvtSWu => "fcvt.s.wu", FcvtSL => "fcvt.s.l", FcvtSLu => "fcvt.s.lu",
    FmvXW => "fmv.x.w", FmvWX => "fmv.w.x", FeqS => "feq.s", FltS => "flt.s", FleS => "fle.s",
    FclassS => "fclass.s",
    Fld => "fld", Fsd => "fsd", FmaddD => "fmadd.d", FmsubD => "fmsub.d",
    FnmsubD => "fnmsub.d", FnmaddD => "fnmadd.d", FaddD => "fadd.d", FsubD => "fsub.d",
    FmulD => "fmul.d", FdivD => "fdiv.d", FsqrtD => "fsqrt.d", FsgnjD => "fsgnj.d",
    FsgnjnD => "fsgnjn.d", FsgnjxD => "fsgnjx.d", FminD => "fmin.d", FmaxD => "fmax.d",
    FcvtSD => "fcvt.s.d", FcvtDS => "fcvt.d.s",
    FcvtWD => "fcvt.w.d", FcvtWuD => "fcvt.wu.d", FcvtLD => "fcvt.l.d", FcvtLuD => "fcvt.lu.d",
    FcvtDW => "fcvt.d.w", FcvtDWu => "fcvt.d.wu", FcvtDL => "fcvt.d.l", FcvtDLu => "fcvt.d.lu",
    FmvXD => "fmv.x.d", FmvDX => "fmv.d.x", FeqD => "feq.d", FltD => "flt.d", FleD => "fle.d",
    FclassD => "fclass.d",
    AddUw => "add.uw", Sh1add => "sh1add", Sh2add => "sh2add", Sh3add => "sh3add",
    Sh1addUw => "sh1add.uw", Sh2addUw => "sh2add.uw", Sh3addUw => "sh3add.uw",
    SlliUw => "slli.uw",
    Andn => "andn", Orn => "orn", Xnor => "xnor", Clz => "clz", Clzw => "clzw", Ctz => "ctz",
    Ctzw => "ctzw", Cpop => "cpop", Cpopw => "cpopw", Max => "max", Maxu => "maxu",
    Min => "min", Minu => "minu", SextB => "sext.b", SextH => "sext.h", ZextH => "zext.h",
    Rol => "rol", Rolw => "rolw", Ror => "ror", Rori => "rori", Roriw => "roriw", Rorw => "rorw",
    OrcB => "orc.b", Rev8 => "rev8",
    Bclr => "bclr", Bclri => "bclri", Bext => "bext", Bexti => "bexti", Binv => "binv",
    Binvi => "binvi", Bset => "bset", Bseti => "bseti",
    Sret => "sret", Mret => "mret", Wfi => "wfi", SfenceVma => "sfence.vma",
}

/// Names of the CSRs tern's machines use, as objdump spells them.
const CSR_NAMES: &[(u16, &str)] = &[
    (0x001, "fflags"),
    (0x002, "frm"),
    (0x003, "fcsr"),
    (0xc00, "cycle"),
    (0xc01, "time"),
    (0xc02, "instret"),
    (0x100, "sstatus"),
    (0x104, "sie"),
    (0x105, "stvec"),
    (0x106, "scounteren"),
    (0x140, "sscratch"),
    (0x141, "sepc"),
    (0x142, "scause"),
    (0x143, "stval"),
    (0x144, "sip"),
    (0x180, "satp"),
    (0x300, "mstatus"),
    (0x301, "misa"),
    (0x302, "medeleg"),
    (0x303, "mideleg"),
    (0x304, "mie"),
    (0x305, "mtvec"),
    (0x306, "mcounteren"),
    (0x340, "mscratch"),
    (0x341, "mepc"),
    (0x342, "mcause"),
    (0x343, "mtval"),
    (0x344, "mip"),
    (0xb00, "mcycle"),
    (0xb02, "minstret"),
    (0xf11, "mvendorid"),
    (0xf12, "marchid"),
    (0xf13, "mimpid"),
    (0xf14, "mhartid"),
];

/// The name of a rounding mode, or `None` for dynamic.
fn rounding_mode(rm: u8) -> Option<&'static str> {
    match rm {
        0 => Some("rne"),
        1 => Some("rtz"),
        2 => Some("rdn"),
        3 => Some("rup"),
        4 => Some("rmm"),
        5 => Some("rm5"),
        6 => Some("rm6"),
        _ => None,
    }
}

fn is_fp(op: Opcode) -> bool {
    use Opcode as O;
    matches!(
        op,
        O::Flw
            | O::Fsw
            | O::FmaddS
            | O::FmsubS
            | O::FnmsubS
            | O::FnmaddS
            | O::FaddS
            | O::FsubS
            | O::FmulS
            | O::FdivS
            | O::FsqrtS
            | O::FsgnjS
            | O::FsgnjnS
            | O::FsgnjxS
            | O::FminS
            | O::FmaxS
            | O::FcvtWS
            | O::FcvtWuS
            | O::FcvtLS
            | O::FcvtLuS
            | O::FcvtSW
            | O::FcvtSWu
            | O::FcvtSL
            | O::FcvtSLu
            | O::FmvXW
            | O::FmvWX
            | O::FeqS
            | O::FltS
            | O::FleS
            | O::FclassS
            | O::Fld
            | O::Fsd
            | O::FmaddD
            | O::FmsubD
            | O::FnmsubD
            | O::FnmaddD
            | O::FaddD
            | O::FsubD
            | O::FmulD
            | O::FdivD
            | O::FsqrtD
            | O::FsgnjD
            | O::FsgnjnD
            | O::FsgnjxD
            | O::FminD
            | O::FmaxD
            | O::FcvtSD
            | O::FcvtDS
            | O::FcvtWD
            | O::FcvtWuD
            | O::FcvtLD
            | O::FcvtLuD
            | O::FcvtDW
            | O::FcvtDWu
            | O::FcvtDL
            | O::FcvtDLu
            | O::FmvXD
            | O::FmvDX
            | O::FeqD
            | O::FltD
            | O::FleD
            | O::FclassD
    )
}

/// FP instructions whose result goes to an integer register.
fn rd_is_x(op: Opcode) -> bool {
    use Opcode as O;
    matches!(
        op,
        O::FcvtWS
            | O::FcvtWuS
            | O::FcvtLS
            | O::FcvtLuS
            | O::FmvXW
            | O::FeqS
            | O::FltS
            | O::FleS
            | O::FclassS
            | O::FcvtWD
            | O::FcvtWuD
            | O::FcvtLD
            | O::FcvtLuD
            | O::FmvXD
            | O::FeqD
            | O::FltD
            | O::FleD
            | O::FclassD
    )
}

/// FP instructions whose source is an integer register.
fn rs1_is_x(op: Opcode) -> bool {
    use Opcode as O;
    matches!(
        op,
        O::FcvtSW
            | O::FcvtSWu
            | O::FcvtSL
            | O::FcvtSLu
            | O::FmvWX
            | O::FmvDX
            | O::FcvtDW
            | O::FcvtDWu
            | O::FcvtDL
            | O::FcvtDLu
    )
}

/// Conversions that are always exact: objdump shows their `rm` only when it is neither
/// dynamic nor `rne`, which is what assemblers write.
fn rm_irrelevant(op: Opcode) -> bool {
    matches!(op, Opcode::FcvtDW | Opcode::FcvtDWu | Opcode::FcvtDS)
}

fn format_of(op: Opcode) -> Format {
    TABLE
        .iter()
        .find(|e| e.op == op)
        .map_or(Format::None, |e| e.format)
}

fn x(r: u8) -> &'static str {
    XREG_NAMES[usize::from(r & 31)]
}

fn f(r: u8) -> &'static str {
    FREG_NAMES[usize::from(r & 31)]
}

fn fence_set(bits: i64) -> String {
    if bits & 0xf == 0 {
        return "0".to_string();
    }
    "iorw"
        .chars()
        .enumerate()
        .filter(|(i, _)| bits & (8 >> i) != 0)
        .map(|(_, c)| c)
        .collect()
}

/// Writes `insn`; branch and jump targets are absolute when `pc` is given, else `.+off`.
fn write(out: &mut fmt::Formatter<'_>, insn: &Insn, pc: Option<u64>) -> fmt::Result {
    use Opcode as O;
    let op = insn.op;
    let fp = is_fp(op);
    let rd = if fp && !rd_is_x(op) {
        f(insn.rd)
    } else {
        x(insn.rd)
    };
    let rs1 = if fp && !rs1_is_x(op) {
        f(insn.rs1)
    } else {
        x(insn.rs1)
    };
    let rs2 = if fp { f(insn.rs2) } else { x(insn.rs2) };
    let target = |out: &mut fmt::Formatter<'_>| match pc {
        Some(pc) => write!(out, "{:#x}", pc.wrapping_add_signed(insn.imm)),
        None => write!(out, ".{:+}", insn.imm),
    };
    let name = mnemonic(op);
    let rm = if rm_irrelevant(op) && insn.rm == 0 {
        None
    } else {
        rounding_mode(insn.rm)
    };
    match op {
        O::Fence if insn.raw >> 28 == 0b1000 && insn.imm == 0x33 => {
            return out.write_str("fence.tso");
        }
        O::Fence => {
            return write!(
                out,
                "fence {},{}",
                fence_set(insn.imm >> 4),
                fence_set(insn.imm)
            );
        }
        O::SfenceVma => return write!(out, "{name} {},{}", x(insn.rs1), x(insn.rs2)),
        O::Lb | O::Lh | O::Lw | O::Ld | O::Lbu | O::Lhu | O::Lwu | O::Flw | O::Fld | O::Jalr => {
            return write!(out, "{name} {rd},{}({})", insn.imm, x(insn.rs1));
        }
        O::Sb | O::Sh | O::Sw | O::Sd | O::Fsw | O::Fsd => {
            return write!(out, "{name} {rs2},{}({})", insn.imm, x(insn.rs1));
        }
        _ => {}
    }
    match format_of(op) {
        Format::None => out.write_str(name),
        Format::R => write!(out, "{name} {rd},{rs1},{rs2}"),
        Format::RRm => {
            write!(out, "{name} {rd},{rs1},{rs2}")?;
            rm.map_or(Ok(()), |rm| write!(out, ",{rm}"))
        }
        Format::R1 => write!(out, "{name} {rd},{rs1}"),
        Format::R1Rm => {
            write!(out, "{name} {rd},{rs1}")?;
            rm.map_or(Ok(()), |rm| write!(out, ",{rm}"))
        }
        Format::R4 => {
            write!(out, "{name} {rd},{rs1},{rs2},{}", f(insn.rs3))?;
            rm.map_or(Ok(()), |rm| write!(out, ",{rm}"))
        }
        Format::Amo => {
            let order = ["", ".rl", ".aq", ".aqrl"][usize::from(insn.rm & 3)];
            if matches!(op, O::LrW | O::LrD) {
                write!(out, "{name}{order} {rd},({rs1})")
            } else {
                write!(out, "{name}{order} {rd},{rs2},({rs1})")
            }
        }
        Format::I => write!(out, "{name} {rd},{rs1},{}", insn.imm),
        Format::Shamt6 | Format::Shamt5 => write!(out, "{name} {rd},{rs1},{:#x}", insn.imm),
        Format::S => write!(out, "{name} {rs2},{}({rs1})", insn.imm),
        Format::B => {
            write!(out, "{name} {rs1},{rs2},")?;
            target(out)
        }
        Format::U => write!(out, "{name} {rd},{:#x}", (insn.imm >> 12) & 0xfffff),
        Format::J => {
            write!(out, "{name} {rd},")?;
            target(out)
        }
        Format::Csr | Format::CsrI => {
            write!(out, "{name} {rd},")?;
            match CSR_NAMES.iter().find(|(n, _)| *n == insn.csr) {
                Some((_, csr)) => out.write_str(csr)?,
                None => write!(out, "{:#x}", insn.csr)?,
            }
            if format_of(op) == Format::Csr {
                write!(out, ",{rs1}")
            } else {
                write!(out, ",{}", insn.imm)
            }
        }
        Format::Fence => write!(out, "{name} {:#x}", insn.imm),
    }
}

/// Lets `format!("{}", insn)` print an instruction without knowing its address.
struct At<'a>(&'a Insn, Option<u64>);

impl fmt::Display for At<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write(out, self.0, self.1)
    }
}

/// Branch and jump targets print relative to the instruction (`beq a0,zero,.-16`); use
/// [`disassemble`] to get absolute targets.
impl fmt::Display for Insn {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write(out, self, None)
    }
}

/// Disassembles `insn` located at `pc`: branch and jump targets are absolute.
pub fn disassemble(insn: &Insn, pc: u64) -> String {
    At(insn, Some(pc)).to_string()
}

/// Reads the instruction at `pc` through `code` and disassembles it; `(text, length)`.
/// Encodings that do not decode print as `.insn` with their bits.
pub fn read_and_disassemble(
    pc: u64,
    code: &mut dyn accel_tcg::CodeReader,
) -> Option<(String, u64)> {
    let mut bytes = [0u8; 4];
    code.read(pc, &mut bytes[..2]).ok()?;
    let low = u16::from_le_bytes([bytes[0], bytes[1]]);
    if low & 3 != 3 {
        let text = match super::compressed::decode_compressed(low) {
            Some(insn) => disassemble(&insn, pc),
            None => format!(".insn 2, {low:#06x}"),
        };
        return Some((text, 2));
    }
    code.read(pc.wrapping_add(2), &mut bytes[2..]).ok()?;
    let raw = u32::from_le_bytes(bytes);
    let text = match super::decode::decode(raw) {
        Some(insn) => disassemble(&insn, pc),
        None => format!(".insn 4, {raw:#010x}"),
    };
    Some((text, 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::riscv64::compressed::decode_compressed;
    use crate::riscv64::decode::decode;

    fn dis(raw: u32, pc: u64) -> String {
        disassemble(&decode(raw).unwrap(), pc)
    }

    #[test]
    fn integer_forms() {
        assert_eq!(dis(0xfff5_0513, 0), "addi a0,a0,-1");
        assert_eq!(dis(0x0035_1513, 0), "slli a0,a0,0x3");
        assert_eq!(dis(0x1234_5537, 0), "lui a0,0x12345");
        assert_eq!(dis(0xffff_f517, 0), "auipc a0,0xfffff");
        assert_eq!(dis(0x0081_3083, 0), "ld ra,8(sp)");
        assert_eq!(dis(0xfe11_3c23, 0), "sd ra,-8(sp)");
        assert_eq!(dis(0x0000_8067, 0), "jalr zero,0(ra)");
        assert_eq!(dis(0x00c5_8533, 0), "add a0,a1,a2");
    }

    #[test]
    fn targets_are_absolute_with_a_pc_and_relative_without() {
        // beq a0,zero,-16 at 0x1010
        let i = decode(0xfe05_08e3).unwrap();
        assert_eq!(disassemble(&i, 0x1010), "beq a0,zero,0x1000");
        assert_eq!(i.to_string(), "beq a0,zero,.-16");
        // jal ra,-20 at 0x14
        assert_eq!(dis(0xfedf_f0ef, 0x14), "jal ra,0x0");
    }

    #[test]
    fn csr_fence_system() {
        assert_eq!(dis(0x3005_9573, 0), "csrrw a0,mstatus,a1");
        assert_eq!(dis(0x7c00_2573, 0), "csrrs a0,0x7c0,zero");
        assert_eq!(dis(0x0012_d073, 0), "csrrwi zero,fflags,5");
        assert_eq!(dis(0x0ff0_000f, 0), "fence iorw,iorw");
        assert_eq!(dis(0x0210_000f, 0), "fence r,w");
        assert_eq!(dis(0x8330_000f, 0), "fence.tso");
        assert_eq!(dis(0x0000_100f, 0), "fence.i");
        assert_eq!(dis(0x12b5_0073, 0), "sfence.vma a0,a1");
        assert_eq!(dis(0x0000_0073, 0), "ecall");
        assert_eq!(dis(0x1050_0073, 0), "wfi");
    }

    #[test]
    fn fp_register_names_and_rounding_modes() {
        assert_eq!(dis(0x02c5_9553, 0), "fadd.d fa0,fa1,fa2,rtz");
        assert_eq!(dis(0x02c5_f553, 0), "fadd.d fa0,fa1,fa2");
        assert_eq!(dis(0x02c5_8553, 0), "fadd.d fa0,fa1,fa2,rne");
        assert_eq!(dis(0xd205_0553, 0), "fcvt.d.w fa0,a0");
        assert_eq!(dis(0xc205_7553, 0), "fcvt.w.d a0,fa0");
        assert_eq!(dis(0xc205_1553, 0), "fcvt.w.d a0,fa0,rtz");
        assert_eq!(dis(0x68c5_f543, 0), "fmadd.s fa0,fa1,fa2,fa3");
        assert_eq!(dis(0x0045_2507, 0), "flw fa0,4(a0)");
        assert_eq!(dis(0x00a1_3427, 0), "fsd fa0,8(sp)");
        assert_eq!(dis(0xe205_0553, 0), "fmv.x.d a0,fa0");
    }

    #[test]
    fn atomics() {
        assert_eq!(dis(0x1405_a52f, 0), "lr.w.aq a0,(a1)");
        assert_eq!(dis(0x1ec5_b52f, 0), "sc.d.aqrl a0,a2,(a1)");
        assert_eq!(dis(0x00c5_a52f, 0), "amoadd.w a0,a2,(a1)");
    }

    #[test]
    fn compressed_prints_its_expansion() {
        assert_eq!(
            decode_compressed(0x0505).unwrap().to_string(),
            "addi a0,a0,1"
        );
        assert_eq!(
            decode_compressed(0x60a2).unwrap().to_string(),
            "ld ra,8(sp)"
        );
    }

    #[test]
    fn mnemonics_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for op in ALL_OPCODES {
            assert!(seen.insert(mnemonic(*op)), "{op:?}");
        }
    }
}
