//! System mode of the x86_64 translator: privileged and system instructions stop the block
//! with `EXIT_SYSTEM` and the decoded operation (`SysInsn` in `sys_op`, the memory operand's
//! linear address in `sys_addr`) with rip at the instruction, so the machine can perform it;
//! at CPL 3 the privileged ones are #GP(0) (`EXIT_EXCEPTION`); 32-bit code decodes as 32-bit;
//! user mode is what it always was. Each run goes through the JIT and the interpreter, which
//! must agree.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use accel_tcg::{CodeReader, Engine, EngineConfig, ExecMode, MemFault, RamAndBus, Vcpu};
use common::{assemble, CODE, DATA, RAM, STACK};
use frontend::x86_64::cpu::{self, RAX, RCX, RDX, RSP};
use frontend::x86_64::flat::FlatGuest;
use frontend::x86_64::translate::{
    translate_mode, vector, Mode, Port, Rm, SysInsn, SysOp, EXIT_EXCEPTION, EXIT_HLT, EXIT_SYSTEM,
    EXIT_UD,
};
use frontend::x86_64::X86Cpu;
use ir::{Builder, Op, Type};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RBX: usize = 3;
/// RFLAGS.IF.
const IF: u64 = 1 << 9;
/// RFLAGS.IOPL = 3.
const IOPL3: u64 = 3 << 12;

const CPL0: Mode = Mode::system64(0, 0);
const CPL3: Mode = Mode::system64(3, 0);

/// What a run stopped with.
#[derive(Debug, PartialEq, Eq)]
struct Stop {
    ret: u32,
    rip: u64,
    regs: [u64; 16],
    eflags: u64,
    cause: u64,
    error_code: u64,
    sys_op: u64,
    sys_addr: u64,
    sys_insn: Option<SysInsn>,
}

impl Stop {
    fn op(&self) -> SysInsn {
        self.sys_insn
            .unwrap_or_else(|| panic!("sys_op {:#x} does not decode", self.sys_op))
    }
}

fn run_one(code: &[u8], mode: Mode, exec: ExecMode, setup: &dyn Fn(&mut X86Cpu)) -> Stop {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    ram.write_slice(code, GuestAddress(CODE)).unwrap();
    let engine = Engine::new(
        FlatGuest::ram(RAM as u64).with_mode(mode),
        Arc::new(RamAndBus::new(ram, devices::bus::Bus::new())),
        EngineConfig {
            mode: exec,
            ..Default::default()
        },
    )
    .unwrap();
    let mut cpu = X86Cpu::new(CODE);
    cpu.regs[RSP] = STACK;
    cpu.regs[RBX] = DATA;
    setup(&mut cpu);
    let mut vcpu = Vcpu::new(engine, cpu);
    let ret = vcpu.run().unwrap();
    let c = vcpu.cpu();
    Stop {
        ret,
        rip: c.rip,
        regs: c.regs,
        eflags: c.eflags,
        cause: c.cause,
        error_code: c.error_code,
        sys_op: c.sys_op,
        sys_addr: c.sys_addr,
        sys_insn: c.sys_insn(),
    }
}

/// Runs `code` in `mode` under the JIT and the interpreter; they must agree.
fn run_with(code: &[u8], mode: Mode, setup: &dyn Fn(&mut X86Cpu)) -> Stop {
    let jit = run_one(code, mode, ExecMode::Jit, setup);
    let interp = run_one(code, mode, ExecMode::Interpreter, setup);
    assert_eq!(jit, interp, "JIT and interpreter disagree");
    jit
}

fn run(code: &[u8], mode: Mode) -> Stop {
    run_with(code, mode, &|_| {})
}

/// Assembles one instruction (64-bit Intel syntax). Every call has its own files: tests
/// run in parallel and may assemble the same source.
fn asm(source: &str) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    assemble(&format!("sys_{}_{n}", std::process::id()), source)
}

/// Asserts that `code` (one instruction at CODE) stops at CPL 0 with `op`, rip at the
/// instruction, the length of the instruction, and `addr` as its memory operand.
fn expect_op(what: &str, code: &[u8], op: SysOp, addr: Option<u64>) {
    let s = run_with(code, CPL0, &|c| {
        c.regs[RCX] = 2;
        c.fs_base = 0x4000;
    });
    assert_eq!(s.ret, EXIT_SYSTEM, "{what}: exit");
    assert_eq!(s.rip, CODE, "{what}: rip is the instruction");
    assert_eq!(
        s.op(),
        SysInsn {
            op,
            len: code.len() as u8
        },
        "{what}"
    );
    if let Some(a) = addr {
        assert_eq!(s.sys_addr, a, "{what}: sys_addr");
    }
}

/// The instructions every mode may decode, with what they must record at CPL 0.
fn cases() -> Vec<(&'static str, Vec<u8>, SysOp, Option<u64>)> {
    use SysOp::*;
    let a = |s: &'static str, op, addr| (s, asm(s), op, addr);
    let raw = |s: &'static str, bytes: &[u8], op, addr| (s, bytes.to_vec(), op, addr);
    vec![
        a("mov cr3, rax", MovToCr { cr: 3, gpr: 0 }, None),
        a("mov cr0, r9", MovToCr { cr: 0, gpr: 9 }, None),
        a("mov rbx, cr4", MovFromCr { cr: 4, gpr: 3 }, None),
        a("mov cr8, rdx", MovToCr { cr: 8, gpr: 2 }, None),
        a("mov dr7, rcx", MovToDr { dr: 7, gpr: 1 }, None),
        a("mov rdx, dr6", MovFromDr { dr: 6, gpr: 2 }, None),
        a("clts", Clts, None),
        a("rdmsr", Rdmsr, None),
        a("wrmsr", Wrmsr, None),
        a("swapgs", Swapgs, None),
        a("lgdt [rbx + 8]", Lgdt { size: 8 }, Some(DATA + 8)),
        a("lidt [rbx]", Lidt { size: 8 }, Some(DATA)),
        a("lldt ax", Lldt(Rm::Reg { gpr: 0, size: 2 }), None),
        a("ltr word ptr [rbx + rcx*8]", Ltr(Rm::Mem), Some(DATA + 16)),
        a("invlpg fs:[rbx + 0x10]", Invlpg, Some(0x4000 + DATA + 0x10)),
    ]
    .into_iter()
    .chain(vec![
        a("sgdt [rbx + 2]", Sgdt { size: 8 }, Some(DATA + 2)),
        a("sidt [rbx]", Sidt { size: 8 }, Some(DATA)),
        a("sldt eax", Sldt(Rm::Reg { gpr: 0, size: 4 }), None),
        a("str word ptr [rbx]", Str(Rm::Mem), Some(DATA)),
        a(
            "in al, 0x71",
            In {
                port: Port::Imm(0x71),
                size: 1,
            },
            None,
        ),
        a(
            "in eax, dx",
            In {
                port: Port::Dx,
                size: 4,
            },
            None,
        ),
        a(
            "out 0xf4, ax",
            Out {
                port: Port::Imm(0xf4),
                size: 2,
            },
            None,
        ),
        a(
            "out dx, al",
            Out {
                port: Port::Dx,
                size: 1,
            },
            None,
        ),
        a(
            "rep insw",
            Ins {
                size: 2,
                rep: true,
                addr_bits: 64,
            },
            None,
        ),
        a(
            "outsd",
            Outs {
                size: 4,
                rep: false,
                addr_bits: 64,
                seg: 3,
            },
            None,
        ),
        // fs outsb (segment override 0x64).
        raw(
            "fs outsb",
            &[0x64, 0x6e],
            Outs {
                size: 1,
                rep: false,
                addr_bits: 64,
                seg: 4,
            },
            None,
        ),
        a("iretq", Iret { size: 8 }, None),
        a("syscall", Syscall, None),
        a("sysretq", Sysret { size: 8 }, None),
        a("int 0x80", Int { vector: 0x80 }, None),
        a("int3", Int3, None),
        a("rdtsc", Rdtsc, None),
        a("rdtscp", Rdtscp, None),
        a("cpuid", Cpuid, None),
        // retfq (REX.W CB), retf imm16 (CA iw, 32-bit operand size).
        raw("retfq", &[0x48, 0xcb], Lret { size: 8, pop: 0 }, None),
        raw(
            "retf 8",
            &[0xca, 0x08, 0x00],
            Lret { size: 4, pop: 8 },
            None,
        ),
        // jmp far [rbx] (FF /5, m16:32), call far [rbx] with REX.W (FF /3, m16:64).
        raw("ljmp [rbx]", &[0xff, 0x2b], FarJmp { size: 4 }, Some(DATA)),
        raw(
            "lcall [rbx]",
            &[0x48, 0xff, 0x1b],
            FarCall { size: 8 },
            Some(DATA),
        ),
        a(
            "mov ss, ax",
            MovToSeg {
                seg: 2,
                src: Rm::Reg { gpr: 0, size: 2 },
            },
            None,
        ),
        a(
            "mov ds, word ptr [rbx + 4]",
            MovToSeg {
                seg: 3,
                src: Rm::Mem,
            },
            Some(DATA + 4),
        ),
        a(
            "mov ecx, gs",
            MovFromSeg {
                seg: 5,
                dst: Rm::Reg { gpr: 1, size: 4 },
            },
            None,
        ),
    ])
    .collect()
}

#[test]
fn at_cpl0_each_system_instruction_exits_with_its_operation_and_rip_at_itself() {
    for (what, code, op, addr) in cases() {
        expect_op(what, &code, op, addr);
    }
}

#[test]
fn the_instructions_before_a_system_one_have_run_when_it_exits() {
    // mov eax, 7 (5 bytes); out dx, al.
    let mut code = asm("mov eax, 7");
    code.extend(asm("out dx, al"));
    let s = run(&code, CPL0);
    assert_eq!(s.ret, EXIT_SYSTEM);
    assert_eq!(s.rip, CODE + 5);
    assert_eq!(s.regs[RAX], 7);
    assert_eq!(
        s.op().op,
        SysOp::Out {
            port: Port::Dx,
            size: 1
        }
    );
}

#[test]
fn at_cpl3_the_privileged_instructions_fault_with_gp0_at_themselves() {
    let privileged = [
        "mov cr3, rax",
        "mov rbx, cr0",
        "mov dr7, rcx",
        "mov rdx, dr6",
        "clts",
        "rdmsr",
        "wrmsr",
        "swapgs",
        "lgdt [rbx]",
        "lidt [rbx]",
        "lldt ax",
        "ltr word ptr [rbx]",
        "invlpg [rbx]",
        "hlt",
        "wbinvd",
        "invd",
    ];
    for what in privileged {
        let s = run_with(&asm(what), CPL3, &|c| c.regs[RAX] = 0x55);
        assert_eq!(s.ret, EXIT_EXCEPTION, "{what}");
        assert_eq!((s.cause, s.error_code), (vector::GP, 0), "{what}");
        assert_eq!(s.rip, CODE, "{what}");
        assert_eq!(s.regs[RAX], 0x55, "{what}: nothing happened");
    }
}

#[test]
fn at_cpl3_the_unprivileged_system_instructions_still_go_to_the_machine() {
    // Their checks (descriptor DPLs, EFER.SCE, CR4.TSD/UMIP) need the system state.
    for (what, op) in [
        ("sgdt [rbx]", SysOp::Sgdt { size: 8 }),
        ("iretq", SysOp::Iret { size: 8 }),
        ("syscall", SysOp::Syscall),
        ("sysretq", SysOp::Sysret { size: 8 }),
        ("int 0x80", SysOp::Int { vector: 0x80 }),
        ("int3", SysOp::Int3),
        ("rdtsc", SysOp::Rdtsc),
        ("cpuid", SysOp::Cpuid),
        ("pause", SysOp::Pause),
        ("verr ax", SysOp::Verr(Rm::Reg { gpr: 0, size: 2 })),
        ("verw word ptr [rbx]", SysOp::Verw(Rm::Mem)),
    ] {
        let s = run(&asm(what), CPL3);
        assert_eq!(s.ret, EXIT_SYSTEM, "{what}");
        assert_eq!((s.rip, s.op().op), (CODE, op), "{what}");
    }
}

#[test]
fn io_at_cpl3_needs_iopl_3() {
    for what in ["in al, dx", "out 0x80, al", "rep outsb", "insd"] {
        let code = asm(what);
        let s = run(&code, CPL3);
        assert_eq!(s.ret, EXIT_EXCEPTION, "{what} with IOPL 0");
        assert_eq!((s.cause, s.error_code, s.rip), (vector::GP, 0, CODE));
        let s = run_with(&code, CPL3, &|c| c.eflags |= IOPL3);
        assert_eq!(s.ret, EXIT_SYSTEM, "{what} with IOPL 3");
        assert_eq!(s.rip, CODE);
    }
}

#[test]
fn cli_and_sti_change_if_inline_at_cpl0() {
    let mut code = asm("cli");
    code.extend(asm("hlt"));
    let s = run_with(&code, CPL0, &|c| c.eflags |= IF);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CODE + 2));
    assert_eq!(s.eflags & IF, 0);

    let mut code = asm("sti");
    code.extend(asm("hlt"));
    let s = run(&code, CPL0);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CODE + 2));
    assert_ne!(s.eflags & IF, 0);
}

#[test]
fn cli_and_sti_at_cpl3_need_iopl_3() {
    for what in ["cli", "sti"] {
        let mut code = asm(what);
        code.extend(asm("hlt"));
        let s = run_with(&code, CPL3, &|c| c.eflags |= IF);
        assert_eq!(s.ret, EXIT_EXCEPTION, "{what}");
        assert_eq!((s.cause, s.error_code, s.rip), (vector::GP, 0, CODE));
        assert_ne!(s.eflags & IF, 0, "{what}: IF unchanged");
        // With IOPL 3 it works; the hlt after it is then #GP (CPL 3).
        let s = run_with(&code, CPL3, &|c| c.eflags |= IOPL3 | IF);
        assert_eq!((s.ret, s.rip), (EXIT_EXCEPTION, CODE + 1), "{what}");
        assert_eq!(s.eflags & IF != 0, what == "sti");
    }
}

/// Code readable from CODE on.
struct Bytes0(Vec<u8>);

impl CodeReader for Bytes0 {
    fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let off = vaddr.wrapping_sub(CODE) as usize;
        match self.0.get(off..off + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(MemFault::Page(vaddr)),
        }
    }
}

/// The addresses of the instructions translated into the block at CODE.
fn block_insns(mut code: Vec<u8>, mode: Mode) -> Vec<u64> {
    // The rest of the page reads as zeros, as in RAM.
    code.resize(0x1000, 0);
    let mut b = Builder::new(cpu::globals(), Type::I64);
    translate_mode(CODE, &mut Bytes0(code), &mut b, 64, mode).unwrap();
    let block = b.finish();
    ir::verify::verify(&block).unwrap();
    block
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::InsnStart { pc, .. } => Some(*pc),
            _ => None,
        })
        .collect()
}

#[test]
fn sti_ends_its_block_after_the_next_instruction_so_the_shadow_holds() {
    // sti; nop; nop; nop; hlt: the block holds sti and one nop; interrupts are taken
    // between blocks, so a pending one is taken after that nop, not between sti and it.
    let mut code = asm("sti");
    code.extend([0x90, 0x90, 0x90, 0xf4]);
    assert_eq!(block_insns(code.clone(), CPL0), vec![CODE, CODE + 1]);
    // cli does not end the block.
    code[0] = 0xfa;
    assert_eq!(block_insns(code, CPL0).len(), 5);
}

#[test]
fn popf_at_cpl0_may_set_if_and_ends_the_block() {
    let mut code = asm("push 0x3202");
    code.extend(asm("popfq"));
    code.extend(asm("hlt"));
    let s = run(&code, CPL0);
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.eflags & (IF | IOPL3), IF | IOPL3);
    let insns = block_insns(code.clone(), CPL0);
    assert_eq!(insns.len(), 2, "the block ends after popfq");
    // User mode: IF and IOPL stay (as Linux does at CPL 3).
    let s = run(&code, Mode::USER);
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.eflags & (IF | IOPL3), 0);
}

#[test]
fn hlt_and_wbinvd_at_cpl0() {
    let mut code = asm("wbinvd");
    code.extend(asm("hlt"));
    let s = run(&code, CPL0);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CODE + code.len() as u64));
}

/// mov eax, [ebx] (8b 03); inc eax (40, a REX prefix in 64-bit code); hlt (f4).
const MOV_INC_HLT: [u8; 4] = [0x8b, 0x03, 0x40, 0xf4];

#[test]
fn code_bits_32_decodes_32_bit_code() {
    let mode = Mode {
        code_bits: 32,
        ..CPL0
    };
    let ram_value = |c: &mut X86Cpu| c.regs[RBX] = DATA;
    let mut code = vec![0xc7, 0x03, 41, 0, 0, 0]; // mov dword [ebx], 41
    code.extend(MOV_INC_HLT);
    let s = run_with(&code, mode, &ram_value);
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[RAX], 42, "0x40 is inc eax in 32-bit code");
    assert_eq!(s.rip, CODE + code.len() as u64);
    // The same bytes as 64-bit code: 0x40 is an empty REX prefix of hlt.
    let s = run_with(&code, CPL0, &ram_value);
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[RAX], 41);
    // Privileged instructions decode as in 32-bit mode too: mov cr0, eax (0f 22 c0).
    let s = run(&[0x0f, 0x22, 0xc0], mode);
    assert_eq!(s.ret, EXIT_SYSTEM);
    assert_eq!(s.op().op, SysOp::MovToCr { cr: 0, gpr: 0 });
    // A 32-bit address is 32 bits: invlpg [ebx + ecx] wraps.
    let s = run_with(&[0x0f, 0x01, 0x3c, 0x0b], mode, &|c| {
        c.regs[RBX] = 0xffff_f000;
        c.regs[RCX] = 0x2000;
    });
    assert_eq!((s.ret, s.sys_addr), (EXIT_SYSTEM, 0x1000));
}

#[test]
fn user_mode_is_unchanged() {
    // Privileged instructions stay #UD (linux-user turns them into SIGILL/SIGSEGV as
    // Linux would) and hlt/syscall/int3 keep their user-mode exits.
    for what in [
        "cli",
        "in al, dx",
        "mov cr3, rax",
        "rdmsr",
        "lgdt [rbx]",
        "swapgs",
        "mov ds, ax",
    ] {
        let s = run(&asm(what), Mode::USER);
        assert_eq!(
            (s.ret, s.rip, s.cause),
            (EXIT_UD, CODE, vector::UD),
            "{what}"
        );
    }
    let s = run(&asm("hlt"), Mode::USER);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CODE + 1));
    let mut code = asm("rdtsc");
    code.extend(asm("hlt"));
    // The JIT and the interpreter read the host's TSC at different times: one run.
    let s = run_one(&code, Mode::USER, ExecMode::Jit, &|_| {});
    assert_eq!(s.ret, EXIT_HLT, "rdtsc runs inline in user mode");
    assert!(s.regs[RAX] | s.regs[RDX] != 0);
    assert_eq!(s.sys_op, 0);
}

#[test]
fn memory_operands_are_only_computed_the_machine_accesses_them() {
    // lgdt from an address with no memory: the exit, not a page fault, since paging and
    // the access are the machine's (its fault is then precise, at this rip).
    let s = run_with(&asm("lgdt [rbx]"), CPL0, &|c| c.regs[RBX] = 0x7000_0000);
    assert_ne!(s.ret, common::RET_FAULT_BASE + vector::PF as u32);
    assert_eq!((s.ret, s.rip, s.sys_addr), (EXIT_SYSTEM, CODE, 0x7000_0000));
}

const CPL0_32: Mode = Mode {
    code_bits: 32,
    ..CPL0
};

#[test]
fn thirty_two_bit_code_calls_returns_and_jumps_with_4_byte_slots() {
    // call f (e8 rel32 = 1); hlt; f: inc eax; ret.
    let code = [0xe8, 1, 0, 0, 0, 0xf4, 0x40, 0xc3];
    let s = run(&code, CPL0_32);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CODE + 6));
    assert_eq!(s.regs[RAX], 1);
    assert_eq!(
        s.regs[RSP], STACK,
        "call pushed 4 bytes and ret popped them"
    );
    // call [ebx] with the target in memory, then ret 4 releasing an argument: push 7
    // (6a 07); mov dword [ebx], CODE + 0x20 (c7 03 imm32); call [ebx] (ff 13); hlt.
    let mut code = vec![0x6a, 7, 0xc7, 0x03];
    code.extend((CODE as u32 + 0x20).to_le_bytes());
    code.extend([0xff, 0x13, 0xf4]);
    code.resize(0x20, 0x90);
    // At CODE + 0x20: mov eax, [esp + 4] (8b 44 24 04); ret 4 (c2 04 00).
    code.extend([0x8b, 0x44, 0x24, 0x04, 0xc2, 0x04, 0x00]);
    let s = run(&code, CPL0_32);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CODE + 11));
    assert_eq!(s.regs[RAX], 7);
    assert_eq!(s.regs[RSP], STACK);
    // jmp short over a hlt: eb 01; hlt; inc eax; hlt.
    let s = run(&[0xeb, 0x01, 0xf4, 0x40, 0xf4], CPL0_32);
    assert_eq!((s.ret, s.rip, s.regs[RAX]), (EXIT_HLT, CODE + 5, 1));
}

#[test]
fn a_direct_far_jump_in_32_bit_code_goes_to_the_machine() {
    // jmp 0x10:0x200000 (ea imm32 imm16): how the PVH entry reaches 64-bit code.
    let code = [0xea, 0x00, 0x00, 0x20, 0x00, 0x10, 0x00];
    let s = run(&code, CPL0_32);
    assert_eq!((s.ret, s.rip, s.sys_addr), (EXIT_SYSTEM, CODE, 0x20_0000));
    assert_eq!(
        s.op(),
        SysInsn {
            op: SysOp::FarJmpImm {
                selector: 0x10,
                size: 4
            },
            len: 7
        }
    );
}
