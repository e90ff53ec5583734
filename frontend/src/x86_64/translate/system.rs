//! System mode: the privileged and system instructions, as exits to the machine.
//!
//! In a [`Mode`](super::Mode) with `system` set, each instruction that reads or changes system state
//! (control, debug and descriptor-table registers, MSRs, I/O ports, privilege changes,
//! interrupts) ends its block with [`EXIT_SYSTEM`]: `rip` is the instruction itself,
//! [`X86Cpu::sys_op`](crate::x86_64::X86Cpu::sys_op) holds a [`SysInsn`] (which operation,
//! its register numbers, sizes, port and immediate, and the instruction's length) and
//! [`X86Cpu::sys_addr`](crate::x86_64::X86Cpu::sys_addr) the linear address of its memory
//! operand, computed by the translated code. The machine performs it with
//! [`crate::x86_64::sys`], then either advances `rip` by the length or delivers the fault
//! precisely (nothing of the instruction has happened yet). Since every operation that
//! can change the [`Mode`](super::Mode) (CR0/CR4/EFER writes, `iretq`, `syscall`/`sysret`, far
//! transfers, `int n`) is such an exit, the machine recomputes the mode before the next
//! block and no block runs in a mode it was not translated for.
//!
//! Privilege checks that depend only on the CPL are done at translation time: an
//! instruction that needs CPL 0 at CPL > 0 ends the block with [`EXIT_EXCEPTION`], `cause`
//! 13 (#GP) and `error_code` 0, `rip` at the instruction. The IOPL checks of `cli`, `sti`
//! and the I/O instructions read RFLAGS.IOPL at run time (only emitted at CPL > 0, since
//! CPL 0 always passes).
//!
//! `cpuid`, `rdtsc` and `rdtscp` are exits too, although they change nothing: the machine
//! owns the CPUID table a kernel sees, the TSC offset, CR4.TSD and IA32_TSC_AUX. So is
//! `pause`, at any CPL: a spin-wait loop's hint, which a machine running several vCPUs on
//! one thread takes as the moment to let the others run (the lock holder among them).
//!
//! Done inline, because they cannot change how code translates: `cli`/`sti` (RFLAGS.IF in
//! the `eflags` global), `wbinvd`/`invd` (no caches to write
//! back: no-ops at CPL 0), `hlt` at CPL 0 ([`EXIT_HLT`], `rip` the next instruction, as in
//! user mode), and `popf` at CPL 0, which may also change IF and IOPL and then ends the
//! block so a now-enabled interrupt is taken.
//!
//! **The `sti` shadow.** An interrupt that `sti` enables must not be taken before the
//! instruction after `sti` has run (SDM vol. 2, STI). Interrupts are only taken between
//! blocks (every block tests `exit_request` on entry), so `sti` translates the following
//! instruction into the same block and then ends it: a pending interrupt is taken right
//! after that instruction (or when it halts, for `sti; hlt`). Gap: when `sti` is the last
//! instruction a block can hold (the end of its page, or `max_insns`), the block ends
//! right after `sti` and an interrupt may be taken one instruction early. The `mov ss`/`pop
//! ss` shadow is not modelled.
//!
//! **16- and 32-bit code.** Memory operands, and so `sys_addr`, include their segment's
//! base outside 64-bit mode, and in 16-bit code `rip` is linear (`CS.base + IP`): the
//! contract is in [`Mode`](super::Mode)'s module doc. `lss`/`lds`/`les`/`lfs`/`lgs` exit as
//! [`SysOp::LoadFarPointer`] (a segment load), `mov` to and from segment registers as
//! [`SysOp::MovToSeg`]/[`SysOp::MovFromSeg`].
//!
//! **Documented gaps.** The TSS I/O permission bitmap (an I/O instruction at CPL > IOPL is
//! #GP(0) whatever the bitmap says); CR4.UMIP, CR4.TSD and CR4.PVI/VME (the machine sees
//! `rdtsc` and `sgdt`.. as exits and may check them); `popf`/`cli`/`sti` at 0 < CPL <= IOPL
//! changing IF through `popf`; `lmsw`/`smsw`, `int1`, `push`/`pop` of segment registers
//! (#UD, logged); segment limits and access rights (never checked); the
//! stack's size follows the code size, not SS.B; virtual-8086 mode.

use iced_x86::{Code, Instruction, MemorySize, Mnemonic, OpKind, Register};
use ir::{BinOp, Cond, MemOp, Size};

use super::{gpr, vector, Flow, Translator, EXIT_EXCEPTION, EXIT_HLT, EXIT_SYSTEM};
use crate::x86_64::cpu;

/// RFLAGS.IF: maskable interrupts enabled.
const IF: u64 = 1 << 9;
/// RFLAGS.IOPL (bits 13:12).
const IOPL_SHIFT: u64 = 12;

/// A register-or-memory operand of `lldt`, `ltr`, `sldt`, `str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rm {
    /// General register `gpr` (0..16, rax..r15), `size` bytes (2, 4 or 8).
    Reg {
        /// The register number.
        gpr: u8,
        /// The operand size in bytes.
        size: u8,
    },
    /// A 16-bit memory operand at [`X86Cpu::sys_addr`](crate::x86_64::X86Cpu::sys_addr).
    Mem,
}

/// The port operand of `in`/`out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// An immediate port number (0..=255).
    Imm(u8),
    /// The port in DX.
    Dx,
}

/// A system operation the translated code stopped on. Memory operands (the
/// pseudo-descriptors of `lgdt`.., the selectors of `lldt`.., `invlpg`'s address, the far
/// pointers of `ljmp`/`lcall`) are at [`X86Cpu::sys_addr`](crate::x86_64::X86Cpu::sys_addr).
/// Register numbers are the hardware ones (rax 0 .. r15 15; CRn/DRn as `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysOp {
    /// `mov crN, gpr`.
    MovToCr {
        /// The control register.
        cr: u8,
        /// The source register (64- or 32-bit by the mode).
        gpr: u8,
    },
    /// `mov gpr, crN`.
    MovFromCr {
        /// The control register.
        cr: u8,
        /// The destination register.
        gpr: u8,
    },
    /// `mov drN, gpr`.
    MovToDr {
        /// The debug register.
        dr: u8,
        /// The source register.
        gpr: u8,
    },
    /// `mov gpr, drN`.
    MovFromDr {
        /// The debug register.
        dr: u8,
        /// The destination register.
        gpr: u8,
    },
    /// `clts`: clears CR0.TS.
    Clts,
    /// `rdmsr`: edx:eax = MSR(ecx).
    Rdmsr,
    /// `wrmsr`: MSR(ecx) = edx:eax.
    Wrmsr,
    /// `lgdt m`; `size` is the operand size in bytes (8 in 64-bit mode: a 10-byte operand).
    Lgdt {
        /// Operand size: 2, 4 or 8.
        size: u8,
    },
    /// `lidt m`.
    Lidt {
        /// Operand size: 2, 4 or 8.
        size: u8,
    },
    /// `sgdt m`.
    Sgdt {
        /// Operand size: 2, 4 or 8.
        size: u8,
    },
    /// `sidt m`.
    Sidt {
        /// Operand size: 2, 4 or 8.
        size: u8,
    },
    /// `lldt r/m16`.
    Lldt(Rm),
    /// `ltr r/m16`.
    Ltr(Rm),
    /// `sldt r/m` (a register destination of 32 or 64 bits is zero-extended).
    Sldt(Rm),
    /// `str r/m`.
    Str(Rm),
    /// `invlpg m`: the page of `sys_addr`.
    Invlpg,
    /// `in al/ax/eax, port`.
    In {
        /// The port.
        port: Port,
        /// 1, 2 or 4 bytes.
        size: u8,
    },
    /// `out port, al/ax/eax`.
    Out {
        /// The port.
        port: Port,
        /// 1, 2 or 4 bytes.
        size: u8,
    },
    /// `ins` to ES:rdi from port DX.
    Ins {
        /// 1, 2 or 4 bytes per element.
        size: u8,
        /// With a `rep` prefix (count in rcx/ecx/cx).
        rep: bool,
        /// The address size: 64, 32 or 16 (rdi/edi/di, rcx/ecx/cx).
        addr_bits: u8,
    },
    /// `outs` from seg:rsi to port DX.
    Outs {
        /// 1, 2 or 4 bytes per element.
        size: u8,
        /// With a `rep` prefix.
        rep: bool,
        /// The address size: 64, 32 or 16.
        addr_bits: u8,
        /// The source segment (0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS: `sys::Segment` order).
        seg: u8,
    },
    /// `iret` (2), `iretd` (4), `iretq` (8).
    Iret {
        /// The operand size in bytes.
        size: u8,
    },
    /// `syscall`.
    Syscall,
    /// `sysret` (4: to compatibility mode) or `sysretq` (8).
    Sysret {
        /// The operand size in bytes.
        size: u8,
    },
    /// `swapgs`.
    Swapgs,
    /// `int imm8`.
    Int {
        /// The vector.
        vector: u8,
    },
    /// `int3` (#BP as a software exception).
    Int3,
    /// `into` (#OF when RFLAGS.OF is set; 32-bit code only).
    Into,
    /// `rdtsc` (the machine adds the TSC offset and checks CR4.TSD).
    Rdtsc,
    /// `rdtscp` (also ecx = IA32_TSC_AUX).
    Rdtscp,
    /// `retf`/`lret [imm16]`.
    Lret {
        /// The operand size in bytes: 2, 4 or 8.
        size: u8,
        /// The bytes released after the pop (`imm16`).
        pop: u16,
    },
    /// `jmp far [m]` (`ljmp *m`): offset then selector at `sys_addr`.
    FarJmp {
        /// The offset's size in bytes: 2, 4 or 8.
        size: u8,
    },
    /// `call far [m]`.
    FarCall {
        /// The offset's size in bytes: 2, 4 or 8.
        size: u8,
    },
    /// `mov sreg, r/m16`: a segment load (SS also starts the `mov ss` shadow, not
    /// modelled).
    MovToSeg {
        /// The segment (0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS).
        seg: u8,
        /// The selector's source.
        src: Rm,
    },
    /// `mov r/m, sreg`: stores the selector (a 32/64-bit register destination is
    /// zero-extended).
    MovFromSeg {
        /// The segment.
        seg: u8,
        /// The destination.
        dst: Rm,
    },
    /// `cpuid`: the machine answers, since what a kernel must be told (APIC, MSR, PAE,
    /// PGE, ...) differs from the user-mode table in `x86_64::system`.
    Cpuid,
    /// `jmp ptr16:32` (or `ptr16:16`; 16/32-bit code only): the offset is in `sys_addr`.
    FarJmpImm {
        /// The selector.
        selector: u16,
        /// The offset's size in bytes: 2 or 4.
        size: u8,
    },
    /// `call ptr16:32` (or `ptr16:16`): the offset is in `sys_addr`.
    FarCallImm {
        /// The selector.
        selector: u16,
        /// The offset's size in bytes: 2 or 4.
        size: u8,
    },
    /// `verr r/m16`: ZF = the segment the selector names is readable at this privilege.
    Verr(Rm),
    /// `verw r/m16`: ZF = the segment is writable at this privilege.
    Verw(Rm),
    /// `pause` (a spin-wait loop's hint): nothing to do, but a machine that runs several vCPUs
    /// on one thread gives the others their turn, since this one waits for one of them.
    Pause,
    /// `lss`/`lds`/`les`/`lfs`/`lgs r, m16:16` (m16:32, m16:64): the far pointer at
    /// `sys_addr` (the offset, then the 16-bit selector) loaded into the segment register
    /// and the general register; nothing is written when the segment load faults.
    LoadFarPointer {
        /// The segment (0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS).
        seg: u8,
        /// The destination register (rax 0 .. r15 15).
        gpr: u8,
        /// The offset's and the register's size in bytes: 2, 4 or 8.
        size: u8,
    },
}

/// A [`SysOp`] and the length of its instruction (what the machine adds to `rip` when the
/// operation completes without a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysInsn {
    /// The operation.
    pub op: SysOp,
    /// The instruction's length in bytes (1..=15).
    pub len: u8,
}

/// The fields of a [`SysInsn`] encoding: kind in bits 7:0, `len` in 11:8, `a` (a register
/// number) in 15:12, `b` (a second one, or a segment) in 19:16, `size` (bytes) in 23:20, a
/// flag (`rep`, memory operand, port in DX) in bit 24, `aux` (address bits, vector) in 39:32
/// and `imm` (port, `lret` pop count) in 55:40.
#[derive(Default)]
struct Fields {
    kind: u8,
    a: u8,
    b: u8,
    size: u8,
    flag: bool,
    aux: u8,
    imm: u16,
}

impl SysInsn {
    /// The `u64` the translated code stores in `sys_op`.
    pub fn encode(self) -> u64 {
        use SysOp::*;
        let f = |kind| Fields {
            kind,
            ..Fields::default()
        };
        let rm = |kind, rm: Rm| match rm {
            Rm::Reg { gpr, size } => Fields {
                kind,
                a: gpr,
                size,
                ..Fields::default()
            },
            Rm::Mem => Fields {
                kind,
                flag: true,
                ..Fields::default()
            },
        };
        let port = |kind, port: Port, size| match port {
            Port::Imm(p) => Fields {
                kind,
                size,
                imm: p as u16,
                ..Fields::default()
            },
            Port::Dx => Fields {
                kind,
                size,
                flag: true,
                ..Fields::default()
            },
        };
        let sized = |kind, size| Fields {
            kind,
            size,
            ..Fields::default()
        };
        let regs = |kind, a, b| Fields {
            kind,
            a,
            b,
            ..Fields::default()
        };
        let x = match self.op {
            MovToCr { cr, gpr } => regs(1, cr, gpr),
            MovFromCr { cr, gpr } => regs(2, cr, gpr),
            MovToDr { dr, gpr } => regs(3, dr, gpr),
            MovFromDr { dr, gpr } => regs(4, dr, gpr),
            Clts => f(5),
            Rdmsr => f(6),
            Wrmsr => f(7),
            Lgdt { size } => sized(8, size),
            Lidt { size } => sized(9, size),
            Sgdt { size } => sized(10, size),
            Sidt { size } => sized(11, size),
            Lldt(r) => rm(12, r),
            Ltr(r) => rm(13, r),
            Sldt(r) => rm(14, r),
            Str(r) => rm(15, r),
            Invlpg => f(16),
            In { port: p, size } => port(17, p, size),
            Out { port: p, size } => port(18, p, size),
            Ins {
                size,
                rep,
                addr_bits,
            } => Fields {
                kind: 19,
                size,
                flag: rep,
                aux: addr_bits,
                ..Fields::default()
            },
            Outs {
                size,
                rep,
                addr_bits,
                seg,
            } => Fields {
                kind: 20,
                size,
                flag: rep,
                aux: addr_bits,
                b: seg,
                ..Fields::default()
            },
            Iret { size } => sized(21, size),
            Syscall => f(22),
            Sysret { size } => sized(23, size),
            Swapgs => f(24),
            Int { vector } => Fields {
                kind: 25,
                aux: vector,
                ..Fields::default()
            },
            Int3 => f(26),
            Into => f(27),
            Rdtsc => f(28),
            Rdtscp => f(29),
            Lret { size, pop } => Fields {
                kind: 30,
                size,
                imm: pop,
                ..Fields::default()
            },
            FarJmp { size } => sized(31, size),
            FarCall { size } => sized(32, size),
            MovToSeg { seg, src } => Fields {
                b: seg,
                ..rm(33, src)
            },
            MovFromSeg { seg, dst } => Fields {
                b: seg,
                ..rm(34, dst)
            },
            Cpuid => f(37),
            Pause => f(39),
            Verr(r) => rm(40, r),
            Verw(r) => rm(41, r),
            LoadFarPointer { seg, gpr, size } => Fields {
                kind: 38,
                a: gpr,
                b: seg,
                size,
                ..Fields::default()
            },
            FarJmpImm { selector, size } => Fields {
                kind: 35,
                size,
                imm: selector,
                ..Fields::default()
            },
            FarCallImm { selector, size } => Fields {
                kind: 36,
                size,
                imm: selector,
                ..Fields::default()
            },
        };
        x.kind as u64
            | (self.len as u64 & 0xf) << 8
            | (x.a as u64 & 0xf) << 12
            | (x.b as u64 & 0xf) << 16
            | (x.size as u64 & 0xf) << 20
            | (x.flag as u64) << 24
            | (x.aux as u64) << 32
            | (x.imm as u64) << 40
    }

    /// Unpacks [`SysInsn::encode`]; `None` for a value no instruction stores.
    pub fn decode(v: u64) -> Option<SysInsn> {
        use SysOp::*;
        let (a, b) = ((v >> 12) as u8 & 0xf, (v >> 16) as u8 & 0xf);
        let size = (v >> 20) as u8 & 0xf;
        let flag = v >> 24 & 1 != 0;
        let aux = (v >> 32) as u8;
        let imm = (v >> 40) as u16;
        let rm = if flag {
            Rm::Mem
        } else {
            Rm::Reg { gpr: a, size }
        };
        let port = if flag { Port::Dx } else { Port::Imm(imm as u8) };
        let op = match v as u8 {
            1 => MovToCr { cr: a, gpr: b },
            2 => MovFromCr { cr: a, gpr: b },
            3 => MovToDr { dr: a, gpr: b },
            4 => MovFromDr { dr: a, gpr: b },
            5 => Clts,
            6 => Rdmsr,
            7 => Wrmsr,
            8 => Lgdt { size },
            9 => Lidt { size },
            10 => Sgdt { size },
            11 => Sidt { size },
            12 => Lldt(rm),
            13 => Ltr(rm),
            14 => Sldt(rm),
            15 => Str(rm),
            16 => Invlpg,
            17 => In { port, size },
            18 => Out { port, size },
            19 => Ins {
                size,
                rep: flag,
                addr_bits: aux,
            },
            20 => Outs {
                size,
                rep: flag,
                addr_bits: aux,
                seg: b,
            },
            21 => Iret { size },
            22 => Syscall,
            23 => Sysret { size },
            24 => Swapgs,
            25 => Int { vector: aux },
            26 => Int3,
            27 => Into,
            28 => Rdtsc,
            29 => Rdtscp,
            30 => Lret { size, pop: imm },
            31 => FarJmp { size },
            32 => FarCall { size },
            33 => MovToSeg { seg: b, src: rm },
            34 => MovFromSeg { seg: b, dst: rm },
            35 => FarJmpImm {
                selector: imm,
                size,
            },
            36 => FarCallImm {
                selector: imm,
                size,
            },
            37 => Cpuid,
            39 => Pause,
            40 => Verr(rm),
            41 => Verw(rm),
            38 => LoadFarPointer {
                seg: b,
                gpr: a,
                size,
            },
            _ => return None,
        };
        Some(SysInsn {
            op,
            len: (v >> 8) as u8 & 0xf,
        })
    }
}

/// The offset size of a far-pointer memory operand, in bytes; `None` for a near one.
fn far_size(m: MemorySize) -> Option<u8> {
    Some(match m {
        MemorySize::SegPtr16 => 2,
        MemorySize::SegPtr32 => 4,
        MemorySize::SegPtr64 => 8,
        _ => return None,
    })
}

/// The operand size of `lgdt`/`lidt`/`sgdt`/`sidt`: 2 (a 24-bit base), 4 or 8.
fn table_size(i: &Instruction) -> u8 {
    match i.code() {
        Code::Lgdt_m1632_16 | Code::Lidt_m1632_16 | Code::Sgdt_m1632_16 | Code::Sidt_m1632_16 => 2,
        Code::Lgdt_m1632 | Code::Lidt_m1632 | Code::Sgdt_m1632 | Code::Sidt_m1632 => 4,
        _ => 8,
    }
}

/// The segment number of `r` in `sys::Segment` order.
fn seg_index(r: Register) -> u8 {
    match r {
        Register::ES => 0,
        Register::CS => 1,
        Register::SS => 2,
        Register::FS => 4,
        Register::GS => 5,
        _ => 3,
    }
}

impl Translator<'_> {
    /// Ends the block with `vector` (error code `code`) at this instruction.
    fn fault(&mut self, vector: u64, code: u64) -> Flow {
        let c = self.konst(code);
        self.b
            .env_store(c, cpu::ERROR_CODE_OFFSET, MemOp::unsigned(Size::B64));
        self.exit(EXIT_EXCEPTION, self.pc, vector)
    }

    /// #GP(0) unless the CPL is 0.
    fn privileged(&mut self) -> Option<Flow> {
        (self.mode.cpl != 0).then(|| self.fault(vector::GP, 0))
    }

    /// At CPL > 0: a run-time branch to #GP(0) when CPL > RFLAGS.IOPL.
    fn check_iopl(&mut self) {
        if self.mode.cpl == 0 {
            return;
        }
        let e = self.b.global(cpu::EFLAGS_GLOBAL);
        let iopl = self.tmp();
        self.b.extract(iopl, e, IOPL_SHIFT as u8, 2, false);
        let ok = self.b.new_label();
        self.b.brcondi(Cond::Geu, iopl, self.mode.cpl as u64, ok);
        self.fault(vector::GP, 0);
        self.b.set_label(ok);
    }

    /// Ends the block with [`EXIT_SYSTEM`] for `op`; `addr` is its memory operand's address.
    fn sys_exit(&mut self, op: SysOp, addr: Option<ir::Temp>) -> Flow {
        if let Some(a) = addr {
            self.b
                .env_store(a, cpu::SYS_ADDR_OFFSET, MemOp::unsigned(Size::B64));
        }
        let insn = SysInsn {
            op,
            len: self.next.wrapping_sub(self.pc) as u8,
        };
        let v = self.konst(insn.encode());
        self.b
            .env_store(v, cpu::SYS_OP_OFFSET, MemOp::unsigned(Size::B64));
        self.exit(EXIT_SYSTEM, self.pc, 0)
    }

    /// The register-or-memory operand `n` of `i`, with the memory address computed.
    fn rm(&mut self, i: &Instruction, n: u32) -> Option<(Rm, Option<ir::Temp>)> {
        match i.op_kind(n) {
            OpKind::Register => {
                let (idx, size, _) = gpr(i.op_register(n))?;
                Some((
                    Rm::Reg {
                        gpr: idx as u8,
                        size: 1 << size,
                    },
                    None,
                ))
            }
            OpKind::Memory => Some((Rm::Mem, Some(self.address(i, true)))),
            _ => None,
        }
    }

    /// The system-mode translation of `i` when it is a privileged or system instruction;
    /// `None` for everything else (translated as in user mode).
    pub(super) fn system(&mut self, i: &Instruction) -> Option<Flow> {
        use Mnemonic::*;
        debug_assert!(self.mode.system);
        let op = match i.mnemonic() {
            Hlt => {
                return Some(
                    self.privileged()
                        .unwrap_or_else(|| self.exit(EXIT_HLT, self.next, 0)),
                )
            }
            Wbinvd | Invd | Wbnoinvd => return Some(self.privileged().unwrap_or(Flow::Next)),
            Cli | Sti => {
                self.check_iopl();
                let e = self.b.global(cpu::EFLAGS_GLOBAL);
                if i.mnemonic() == Cli {
                    self.b.binary_imm(BinOp::AndNot, e, e, IF);
                } else {
                    self.b.binary_imm(BinOp::Or, e, e, IF);
                    // The shadow: this instruction and the next one end the block.
                    self.stop_after = 2;
                }
                return Some(Flow::Next);
            }
            Popf | Popfd | Popfq if self.mode.cpl == 0 => {
                self.stack(i)?;
                // IF may have been set: end the block so a pending interrupt is taken.
                self.set_rip(self.next);
                self.b.goto_tb(0);
                return Some(Flow::End);
            }
            Mov if i.op0_kind() == OpKind::Register
                && i.op1_kind() == OpKind::Register
                && (i.op0_register().is_cr()
                    || i.op0_register().is_dr()
                    || i.op1_register().is_cr()
                    || i.op1_register().is_dr()) =>
            {
                if let Some(f) = self.privileged() {
                    return Some(f);
                }
                let (r0, r1) = (i.op0_register(), i.op1_register());
                let num = |r: Register, base: Register| (r as usize - base as usize) as u8;
                if r0.is_cr() {
                    SysOp::MovToCr {
                        cr: num(r0, Register::CR0),
                        gpr: gpr(r1)?.0 as u8,
                    }
                } else if r0.is_dr() {
                    SysOp::MovToDr {
                        dr: num(r0, Register::DR0),
                        gpr: gpr(r1)?.0 as u8,
                    }
                } else if r1.is_cr() {
                    SysOp::MovFromCr {
                        cr: num(r1, Register::CR0),
                        gpr: gpr(r0)?.0 as u8,
                    }
                } else {
                    SysOp::MovFromDr {
                        dr: num(r1, Register::DR0),
                        gpr: gpr(r0)?.0 as u8,
                    }
                }
            }
            Mov if (i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register())
                || (i.op1_kind() == OpKind::Register && i.op1_register().is_segment_register()) =>
            {
                let (op, a) = if i.op0_register().is_segment_register() {
                    let seg = seg_index(i.op0_register());
                    let (mut src, a) = self.rm(i, 1)?;
                    if let Rm::Reg { size, .. } = &mut src {
                        *size = 2;
                    }
                    (SysOp::MovToSeg { seg, src }, a)
                } else {
                    let seg = seg_index(i.op1_register());
                    let (dst, a) = self.rm(i, 0)?;
                    (SysOp::MovFromSeg { seg, dst }, a)
                };
                return Some(self.sys_exit(op, a));
            }
            Clts | Rdmsr | Wrmsr | Swapgs | Invlpg | Lgdt | Lidt | Lldt | Ltr => {
                if let Some(f) = self.privileged() {
                    return Some(f);
                }
                let (op, addr) = match i.mnemonic() {
                    Clts => (SysOp::Clts, None),
                    Rdmsr => (SysOp::Rdmsr, None),
                    Wrmsr => (SysOp::Wrmsr, None),
                    Swapgs => (SysOp::Swapgs, None),
                    Invlpg => (SysOp::Invlpg, Some(self.address(i, true))),
                    Lgdt | Lidt => {
                        let size = table_size(i);
                        let a = self.address(i, true);
                        let op = if i.mnemonic() == Lgdt {
                            SysOp::Lgdt { size }
                        } else {
                            SysOp::Lidt { size }
                        };
                        (op, Some(a))
                    }
                    _ => {
                        let (mut rm, a) = self.rm(i, 0)?;
                        // A register source is read as 16 bits whatever its encoding says.
                        if let Rm::Reg { size, .. } = &mut rm {
                            *size = 2;
                        }
                        let op = if i.mnemonic() == Lldt {
                            SysOp::Lldt(rm)
                        } else {
                            SysOp::Ltr(rm)
                        };
                        (op, a)
                    }
                };
                return Some(self.sys_exit(op, addr));
            }
            Sgdt | Sidt => {
                let size = table_size(i);
                let a = self.address(i, true);
                let op = if i.mnemonic() == Sgdt {
                    SysOp::Sgdt { size }
                } else {
                    SysOp::Sidt { size }
                };
                return Some(self.sys_exit(op, Some(a)));
            }
            Sldt | Str => {
                let (rm, a) = self.rm(i, 0)?;
                let op = if i.mnemonic() == Sldt {
                    SysOp::Sldt(rm)
                } else {
                    SysOp::Str(rm)
                };
                return Some(self.sys_exit(op, a));
            }
            Verr | Verw => {
                let (mut rm, a) = self.rm(i, 0)?;
                if let Rm::Reg { size, .. } = &mut rm {
                    *size = 2;
                }
                let op = if i.mnemonic() == Verr {
                    SysOp::Verr(rm)
                } else {
                    SysOp::Verw(rm)
                };
                return Some(self.sys_exit(op, a));
            }
            In | Out => {
                let (data, port) = if i.mnemonic() == In { (0, 1) } else { (1, 0) };
                let (_, size, _) = gpr(i.op_register(data))?;
                let port = match i.op_kind(port) {
                    OpKind::Immediate8 => Port::Imm(i.immediate8()),
                    OpKind::Register => Port::Dx,
                    _ => return None,
                };
                self.check_iopl();
                let size = 1 << size;
                if i.mnemonic() == In {
                    SysOp::In { port, size }
                } else {
                    SysOp::Out { port, size }
                }
            }
            Insb | Insw | Insd | Outsb | Outsw | Outsd => {
                let size = match i.mnemonic() {
                    Insb | Outsb => 1,
                    Insw | Outsw => 2,
                    _ => 4,
                };
                let rep = i.has_rep_prefix() || i.has_repne_prefix();
                let mem = if matches!(i.mnemonic(), Insb | Insw | Insd) {
                    i.op0_kind()
                } else {
                    i.op1_kind()
                };
                let addr_bits = match mem {
                    OpKind::MemoryESRDI | OpKind::MemorySegRSI => 64,
                    OpKind::MemoryESEDI | OpKind::MemorySegESI => 32,
                    _ => 16,
                };
                self.check_iopl();
                if matches!(i.mnemonic(), Insb | Insw | Insd) {
                    SysOp::Ins {
                        size,
                        rep,
                        addr_bits,
                    }
                } else {
                    SysOp::Outs {
                        size,
                        rep,
                        addr_bits,
                        seg: seg_index(i.memory_segment()),
                    }
                }
            }
            Iret | Iretd | Iretq => SysOp::Iret {
                size: match i.mnemonic() {
                    Iret => 2,
                    Iretd => 4,
                    _ => 8,
                },
            },
            // The machine checks EFER.SCE and the mode before the CPL (#UD before #GP).
            Syscall => SysOp::Syscall,
            Sysret | Sysretq => SysOp::Sysret {
                size: if i.mnemonic() == Sysretq { 8 } else { 4 },
            },
            Int => SysOp::Int {
                vector: i.immediate8(),
            },
            Int3 => SysOp::Int3,
            Into => SysOp::Into,
            Rdtsc => SysOp::Rdtsc,
            Rdtscp => SysOp::Rdtscp,
            Cpuid => SysOp::Cpuid,
            Pause => SysOp::Pause,
            Lss | Lds | Les | Lfs | Lgs => {
                let seg = match i.mnemonic() {
                    Les => 0,
                    Lss => 2,
                    Lds => 3,
                    Lfs => 4,
                    _ => 5,
                };
                let (gpr, size, _) = gpr(i.op0_register())?;
                let a = self.address(i, true);
                let op = SysOp::LoadFarPointer {
                    seg,
                    gpr: gpr as u8,
                    size: 1 << size,
                };
                return Some(self.sys_exit(op, Some(a)));
            }
            Retf => {
                let size = match i.code() {
                    Code::Retfw | Code::Retfw_imm16 => 2,
                    Code::Retfd | Code::Retfd_imm16 => 4,
                    _ => 8,
                };
                let pop = if i.op_count() == 1 {
                    i.immediate16()
                } else {
                    0
                };
                SysOp::Lret { size, pop }
            }
            Jmp | Call if matches!(i.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32) => {
                let (size, offset) = if i.op0_kind() == OpKind::FarBranch32 {
                    (4, i.far_branch32() as u64)
                } else {
                    (2, i.far_branch16() as u64)
                };
                let selector = i.far_branch_selector();
                let op = if i.mnemonic() == Jmp {
                    SysOp::FarJmpImm { selector, size }
                } else {
                    SysOp::FarCallImm { selector, size }
                };
                let a = self.konst(offset);
                return Some(self.sys_exit(op, Some(a)));
            }
            Jmp | Call if i.op0_kind() == OpKind::Memory => {
                // Near indirect jumps through memory go on as in user mode.
                let size = far_size(i.memory_size())?;
                let a = self.address(i, true);
                let op = if i.mnemonic() == Jmp {
                    SysOp::FarJmp { size }
                } else {
                    SysOp::FarCall { size }
                };
                return Some(self.sys_exit(op, Some(a)));
            }
            _ => return None,
        };
        Some(self.sys_exit(op, None))
    }

    /// The RFLAGS bits `popf` may change besides the arithmetic ones and DF: at CPL 0 in
    /// system mode IF and IOPL too.
    pub(super) fn popf_mask(&self) -> u64 {
        let sys = if self.mode.system && self.mode.cpl == 0 {
            IF | 3 << IOPL_SHIFT
        } else {
            0
        };
        super::POPF_USER_MASK | sys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ops() -> Vec<SysOp> {
        use SysOp::*;
        vec![
            MovToCr { cr: 4, gpr: 15 },
            MovFromCr { cr: 8, gpr: 3 },
            MovToDr { dr: 7, gpr: 1 },
            MovFromDr { dr: 6, gpr: 9 },
            Clts,
            Rdmsr,
            Wrmsr,
            Pause,
            Verr(Rm::Reg { gpr: 3, size: 2 }),
            Verw(Rm::Mem),
            Lgdt { size: 8 },
            Lidt { size: 4 },
            Sgdt { size: 2 },
            Sidt { size: 8 },
            Lldt(Rm::Reg { gpr: 12, size: 2 }),
            Ltr(Rm::Mem),
            Sldt(Rm::Reg { gpr: 0, size: 8 }),
            Str(Rm::Mem),
            Invlpg,
            In {
                port: Port::Imm(0x71),
                size: 1,
            },
            In {
                port: Port::Dx,
                size: 4,
            },
            Out {
                port: Port::Imm(0xf4),
                size: 2,
            },
            Out {
                port: Port::Dx,
                size: 1,
            },
            Ins {
                size: 2,
                rep: true,
                addr_bits: 64,
            },
            Outs {
                size: 4,
                rep: false,
                addr_bits: 32,
                seg: 5,
            },
            Iret { size: 8 },
            Syscall,
            Sysret { size: 4 },
            Swapgs,
            Int { vector: 0x80 },
            Int3,
            Into,
            Rdtsc,
            Rdtscp,
            Lret {
                size: 8,
                pop: 0x1234,
            },
            FarJmp { size: 4 },
            FarCall { size: 8 },
            MovToSeg {
                seg: 2,
                src: Rm::Reg { gpr: 7, size: 2 },
            },
            MovFromSeg {
                seg: 5,
                dst: Rm::Mem,
            },
            FarJmpImm {
                selector: 0x10,
                size: 4,
            },
            FarCallImm {
                selector: 0xffff,
                size: 2,
            },
            Cpuid,
            LoadFarPointer {
                seg: 2,
                gpr: 4,
                size: 2,
            },
        ]
    }

    #[test]
    fn every_operation_survives_encoding() {
        for (n, op) in all_ops().into_iter().enumerate() {
            let insn = SysInsn {
                op,
                len: 1 + (n % 15) as u8,
            };
            assert_eq!(SysInsn::decode(insn.encode()), Some(insn), "{op:?}");
        }
    }

    #[test]
    fn different_operations_encode_differently() {
        let ops = all_ops();
        let codes: std::collections::HashSet<u64> = ops
            .iter()
            .map(|&op| SysInsn { op, len: 3 }.encode())
            .collect();
        assert_eq!(codes.len(), ops.len());
    }

    #[test]
    fn values_no_instruction_stores_do_not_decode() {
        assert_eq!(SysInsn::decode(0), None);
        assert_eq!(SysInsn::decode(42), None);
        assert_eq!(SysInsn::decode(0xff), None);
    }
}
