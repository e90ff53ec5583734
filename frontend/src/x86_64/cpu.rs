//! The x86_64 CPU state that translated code runs on, and its IR globals.
//!
//! Arithmetic flags are lazy (see [`super::flags`]): the last flag-setting operation leaves
//! its kind in `cc_op` and its result and operands in `cc_dst`/`cc_src`/`cc_src2`, and the
//! six arithmetic flags are computed only when something asks for them. The lazy-flags fields
//! come first after the header because nearly every instruction writes them.

use std::sync::Arc;

use ir::abi::EnvHeader;
use ir::{GlobalDef, Type};

/// Names of the 16 general registers in iced-x86's order (rax rcx rdx rbx rsp rbp rsi rdi
/// r8..r15), which is also the hardware encoding order.
pub const REG_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Index of rax in [`X86Cpu::regs`].
pub const RAX: usize = 0;
/// Index of rcx.
pub const RCX: usize = 1;
/// Index of rdx.
pub const RDX: usize = 2;
/// Index of rbx.
pub const RBX: usize = 3;
/// Index of rsp.
pub const RSP: usize = 4;
/// Index of rsi.
pub const RSI: usize = 6;

/// The architectural state of one x86_64 CPU, as translated code and helpers see it.
#[repr(C)]
pub struct X86Cpu {
    /// The engine's header (must be first).
    pub header: EnvHeader,
    /// The lazy-flags operation: a [`super::flags::CcOp`] encoding.
    pub cc_op: u64,
    /// The result of the last flag-setting operation (or the flags themselves for `Eflags`).
    pub cc_dst: u64,
    /// The operand the last operation's flags need (see [`super::flags::CcOp`]).
    pub cc_src: u64,
    /// A third value for operations that need one (the carry-in of `adc`/`sbb`).
    pub cc_src2: u64,
    /// General registers, rax..r15.
    pub regs: [u64; 16],
    /// The instruction pointer. Only up to date between blocks and after a restore.
    pub rip: u64,
    /// The string direction: +1 (DF clear) or -1 (DF set), as a two's-complement u64.
    pub df: u64,
    /// RFLAGS bits that no lazy operation covers (IF, TF, DF mirror, reserved bit 1, ...).
    /// The six arithmetic flags here are stale; [`super::flags::rflags`] merges them.
    pub eflags: u64,
    /// FS segment base (user TLS).
    pub fs_base: u64,
    /// GS segment base.
    pub gs_base: u64,
    /// SSE registers, low quadword first. Not globals: SSE instructions run in helpers
    /// that read and write them here, and moves to memory load them with `env_load`.
    pub xmm: [[u64; 2]; 16],
    /// SSE control/status register (low 32 bits; the rest stay zero).
    pub mxcsr: u64,
    /// The exception vector when a block stopped on an exception (0 #DE, 3 #BP, 6 #UD ...).
    pub cause: u64,
    /// The exception's error code, where the vector has one.
    pub error_code: u64,
    /// x87 physical registers R0..R7, 80-bit values as in memory (ST(i) is
    /// R[(top + i) % 8]). Not globals: x87 instructions run in helpers (see `super::x87`).
    pub fpr: [[u8; 10]; 8],
    /// x87 top of stack (0..8).
    pub fpu_top: u16,
    /// x87 tags, abridged as in FXSAVE: bit i set when `R[i]` holds a value.
    pub fpu_tags: u16,
    /// x87 control word.
    pub fpu_cw: u16,
    /// x87 status word (its TOP field is kept in `fpu_top`).
    pub fpu_sw: u16,
    /// System mode: the operation a block stopped on with
    /// [`super::translate::EXIT_SYSTEM`], a [`super::translate::SysInsn`] encoding.
    pub sys_op: u64,
    /// System mode: the linear address of that operation's memory operand (computed by the
    /// translated code, segment base included), when it has one.
    pub sys_addr: u64,
    /// Where the machine lets `rep movs`/`rep stos` reach guest RAM directly (see
    /// [`super::bulk`]); `None`: every iteration goes through the softmmu.
    pub host_range: Option<super::bulk::HostRange>,
    /// The system state (control, segment and descriptor-table registers, CPL, MSRs) that
    /// only a whole-machine guest uses; user mode leaves it at reset. Last, because
    /// translated code never addresses it directly.
    pub sys: super::sys::SystemState,
}

impl X86Cpu {
    /// A CPU with every register zero, the flags clear and rip at `rip`.
    pub fn new(rip: u64) -> Box<X86Cpu> {
        Box::new(X86Cpu {
            header: EnvHeader::detached(),
            cc_op: super::flags::CcOp::EFLAGS.encode(),
            cc_dst: 0,
            cc_src: 0,
            cc_src2: 0,
            regs: [0; 16],
            rip,
            df: 1,
            // Bit 1 of RFLAGS always reads as one.
            eflags: 0x2,
            fs_base: 0,
            gs_base: 0,
            xmm: [[0; 2]; 16],
            mxcsr: 0x1f80,
            cause: 0,
            error_code: 0,
            fpr: [[0; 10]; 8],
            fpu_top: 0,
            fpu_tags: 0,
            // fninit's control word: every exception masked, 64-bit precision, to nearest.
            fpu_cw: 0x037f,
            fpu_sw: 0,
            sys_op: 0,
            sys_addr: 0,
            host_range: None,
            sys: super::sys::SystemState::reset(),
        })
    }

    /// The full RFLAGS value: the lazy arithmetic flags merged into `eflags`.
    pub fn rflags(&self) -> u64 {
        super::flags::rflags(self)
    }

    /// Sets RFLAGS to `v`: the arithmetic flags become materialised lazy flags, DF its
    /// direction, the rest `eflags` (bit 1 always set).
    pub fn set_rflags(&mut self, v: u64) {
        use super::flags::{CcOp, ARITH, DF};
        self.cc_op = CcOp::EFLAGS.encode();
        self.cc_src = v & ARITH;
        self.cc_dst = 0;
        self.cc_src2 = 0;
        self.df = if v & DF != 0 { u64::MAX } else { 1 };
        self.eflags = (v & !(ARITH | DF)) | 0x2;
    }

    /// The system operation the last block stopped on with
    /// [`super::translate::EXIT_SYSTEM`] (`sys_op` decoded); its memory operand, if any, is
    /// at linear address `sys_addr`.
    pub fn sys_insn(&self) -> Option<super::translate::SysInsn> {
        super::translate::SysInsn::decode(self.sys_op)
    }
}

// SAFETY: repr(C) with the EnvHeader as its first field; every global lies inside the struct.
unsafe impl accel_tcg::CpuState for X86Cpu {
    fn header(&self) -> &EnvHeader {
        &self.header
    }
    fn header_mut(&mut self) -> &mut EnvHeader {
        &mut self.header
    }
}

macro_rules! offsets {
    ($($(#[$m:meta])* $name:ident => $field:ident),* $(,)?) => {
        $(
            $(#[$m])*
            pub const $name: u32 = std::mem::offset_of!(X86Cpu, $field) as u32;
        )*
    };
}

offsets! {
    /// Byte offset of `cc_op`.
    CC_OP_OFFSET => cc_op,
    /// Byte offset of `cc_dst`.
    CC_DST_OFFSET => cc_dst,
    /// Byte offset of `cc_src`.
    CC_SRC_OFFSET => cc_src,
    /// Byte offset of `cc_src2`.
    CC_SRC2_OFFSET => cc_src2,
    /// Byte offset of `rip`.
    RIP_OFFSET => rip,
    /// Byte offset of `df`.
    DF_OFFSET => df,
    /// Byte offset of `eflags`.
    EFLAGS_OFFSET => eflags,
    /// Byte offset of `fs_base`.
    FS_BASE_OFFSET => fs_base,
    /// Byte offset of `gs_base`.
    GS_BASE_OFFSET => gs_base,
    /// Byte offset of `mxcsr`.
    MXCSR_OFFSET => mxcsr,
    /// Byte offset of `cause`.
    CAUSE_OFFSET => cause,
    /// Byte offset of `error_code`.
    ERROR_CODE_OFFSET => error_code,
    /// Byte offset of `fpu_cw`.
    FPU_CW_OFFSET => fpu_cw,
    /// Byte offset of `sys_op`.
    SYS_OP_OFFSET => sys_op,
    /// Byte offset of `sys_addr`.
    SYS_ADDR_OFFSET => sys_addr,
}

/// Byte offset of the base of segment register `seg` (`sys::Segment` order: ES CS SS DS FS
/// GS) in the system state: what 16- and 32-bit code adds to its offsets, read at run time
/// because a block's key does not include the bases (only instructions that exit to the
/// machine change them). FS and GS use [`FS_BASE_OFFSET`]/[`GS_BASE_OFFSET`] instead.
pub const fn seg_base_offset(seg: usize) -> u32 {
    (std::mem::offset_of!(X86Cpu, sys.segs)
        + seg * std::mem::size_of::<super::sys::SegmentCache>()
        + std::mem::offset_of!(super::sys::SegmentCache, base)) as u32
}

/// Byte offset of CS's base: 16-bit code's `rip` is `CS.base + IP` (see
/// [`super::translate::Mode`]), so near calls and returns convert with it.
pub const CS_BASE_OFFSET: u32 = seg_base_offset(super::sys::Segment::Cs as usize);

/// Byte offset of `regs[i]`.
pub const fn reg_offset(i: usize) -> u32 {
    (std::mem::offset_of!(X86Cpu, regs) + 8 * i) as u32
}

/// Byte offset of quadword `half` (0 low, 1 high) of `xmm[i]`.
pub const fn xmm_offset(i: usize, half: usize) -> u32 {
    (std::mem::offset_of!(X86Cpu, xmm) + 16 * i + 8 * half) as u32
}

/// Global index of `cc_op`.
pub const CC_OP_GLOBAL: usize = 0;
/// Global index of `cc_dst`.
pub const CC_DST_GLOBAL: usize = 1;
/// Global index of `cc_src`.
pub const CC_SRC_GLOBAL: usize = 2;
/// Global index of `cc_src2`.
pub const CC_SRC2_GLOBAL: usize = 3;
/// Global index of `regs[i]`.
pub const fn reg_global(i: usize) -> usize {
    4 + i
}
/// Global index of `rip`.
pub const RIP_GLOBAL: usize = 20;
/// Global index of `df`.
pub const DF_GLOBAL: usize = 21;
/// Global index of `eflags`.
pub const EFLAGS_GLOBAL: usize = 22;
/// Global index of `fs_base`.
pub const FS_BASE_GLOBAL: usize = 23;
/// Global index of `gs_base`.
pub const GS_BASE_GLOBAL: usize = 24;

/// The globals, hot ones first (in the same order as the fields): the lazy flags, the 16
/// general registers, rip, df, eflags, fs_base, gs_base; all I64.
pub fn globals() -> Arc<[GlobalDef]> {
    let g64 = |name, offset| GlobalDef {
        name,
        ty: Type::I64,
        offset,
    };
    let mut g = vec![
        g64("cc_op", CC_OP_OFFSET),
        g64("cc_dst", CC_DST_OFFSET),
        g64("cc_src", CC_SRC_OFFSET),
        g64("cc_src2", CC_SRC2_OFFSET),
    ];
    for (i, name) in REG_NAMES.iter().enumerate() {
        g.push(g64(name, reg_offset(i)));
    }
    g.push(g64("rip", RIP_OFFSET));
    g.push(g64("df", DF_OFFSET));
    g.push(g64("eflags", EFLAGS_OFFSET));
    g.push(g64("fs_base", FS_BASE_OFFSET));
    g.push(g64("gs_base", GS_BASE_OFFSET));
    Arc::from(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_sit_where_their_indexes_say() {
        let g = globals();
        assert_eq!(g[CC_OP_GLOBAL].offset, CC_OP_OFFSET);
        assert_eq!(g[CC_DST_GLOBAL].offset, CC_DST_OFFSET);
        assert_eq!(g[CC_SRC_GLOBAL].offset, CC_SRC_OFFSET);
        assert_eq!(g[CC_SRC2_GLOBAL].offset, CC_SRC2_OFFSET);
        assert_eq!(g[reg_global(RSP)].name, "rsp");
        assert_eq!(g[reg_global(RSP)].offset, reg_offset(RSP));
        assert_eq!(g[RIP_GLOBAL].offset, RIP_OFFSET);
        assert_eq!(g[DF_GLOBAL].offset, DF_OFFSET);
        assert_eq!(g[EFLAGS_GLOBAL].offset, EFLAGS_OFFSET);
        assert_eq!(g[FS_BASE_GLOBAL].offset, FS_BASE_OFFSET);
        assert_eq!(g[GS_BASE_GLOBAL].offset, GS_BASE_OFFSET);
        assert_eq!(g.len(), GS_BASE_GLOBAL + 1);
        assert!(g
            .iter()
            .all(|d| d.offset >= ir::abi::offsets::HEADER_SIZE && d.offset % 8 == 0));
    }

    #[test]
    fn segment_base_offsets_are_distinct_aligned_and_inside_the_cpu() {
        let offsets: Vec<u32> = (0..6).map(seg_base_offset).collect();
        for (n, &o) in offsets.iter().enumerate() {
            assert_eq!(o % 8, 0, "segment {n}");
            assert!(
                o as usize + 8 <= std::mem::size_of::<X86Cpu>(),
                "segment {n}"
            );
            assert!(
                o > SYS_ADDR_OFFSET,
                "segment {n}: inside `sys`, after the globals"
            );
            assert!(offsets[..n].iter().all(|&p| p != o));
        }
        assert_eq!(CS_BASE_OFFSET, seg_base_offset(1));
    }

    #[test]
    fn the_lazy_flags_come_right_after_the_header() {
        assert_eq!(CC_OP_OFFSET, ir::abi::offsets::HEADER_SIZE);
        assert!(reg_offset(0) < CC_OP_OFFSET + 40);
    }
}
