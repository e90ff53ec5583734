//! 16- and 32-bit code in system mode: real-mode code runs where CS.base + IP says (`rip`
//! is linear in 16-bit code), near calls push the IP and returns come back to CS.base + IP,
//! every memory operand and the stack add their segment's base (read from the CPU state at
//! run time), 16-bit offsets and SP wrap at 64 KiB, and 64-bit mode ignores the bases of
//! DS/ES/SS/CS as before. What an application processor needs to get from its SIPI vector
//! to protected mode. Each run goes through the JIT and the interpreter, which must agree.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use accel_tcg::{Engine, EngineConfig, ExecMode, RamAndBus, Vcpu};
use common::{assemble, RAM, RET_FAULT_BASE};
use frontend::x86_64::cpu::{self, RAX, RCX, RSI, RSP};
use frontend::x86_64::flat::FlatGuest;
use frontend::x86_64::sys::Segment;
use frontend::x86_64::translate::{
    translate_mode, vector, Mode, SysInsn, SysOp, EXIT_HLT, EXIT_SYSTEM, EXIT_UD,
};
use frontend::x86_64::X86Cpu;
use ir::{Builder, Op, Type};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RBX: usize = 3;
const RBP: usize = 5;
const RDI: usize = 7;

/// Real mode at CPL 0.
const REAL: Mode = Mode {
    system: true,
    cpl: 0,
    code_bits: 16,
    mmu_idx: 0,
};
/// 32-bit protected mode at CPL 0.
const PM32: Mode = Mode {
    code_bits: 32,
    ..REAL
};
/// 64-bit mode at CPL 0.
const LONG: Mode = Mode::system64(0, 0);

/// CS = 0x0900: base 0x9000, as after a SIPI with vector 0x09.
const CS_BASE: u64 = 0x9000;
/// Where the code starts in its segment.
const IP: u64 = 0x100;
/// The stack segment 0x0700 (base 0x7000).
const SS_BASE: u64 = 0x7000;
/// The data segment 0x2000 (base 0x2_0000).
const DS_BASE: u64 = 0x2_0000;
/// The extra segment 0x3000 (base 0x3_0000).
const ES_BASE: u64 = 0x3_0000;

/// What a run ended with.
struct Stop {
    ret: u32,
    rip: u64,
    regs: [u64; 16],
    rflags: u64,
    sys_op: u64,
    sys_addr: u64,
    ram: GuestMemoryMmap,
}

impl Stop {
    fn op(&self) -> SysInsn {
        SysInsn::decode(self.sys_op)
            .unwrap_or_else(|| panic!("sys_op {:#x} does not decode", self.sys_op))
    }

    fn u16_at(&self, addr: u64) -> u16 {
        self.ram.read_obj(GuestAddress(addr)).unwrap()
    }

    fn u32_at(&self, addr: u64) -> u32 {
        self.ram.read_obj(GuestAddress(addr)).unwrap()
    }
}

/// Real-mode segments: CS 0x0900, SS 0x0700, DS 0x2000, ES 0x3000 (base = selector << 4).
fn real_mode_segments(c: &mut X86Cpu) {
    for (seg, base) in [
        (Segment::Cs, CS_BASE),
        (Segment::Ss, SS_BASE),
        (Segment::Ds, DS_BASE),
        (Segment::Es, ES_BASE),
    ] {
        let s = c.sys.seg_mut(seg);
        s.base = base;
        s.selector = (base >> 4) as u16;
    }
}

/// Bytes to place in RAM before a run: (linear address, bytes).
type Data<'a> = &'a [(u64, &'a [u8])];

/// Runs `code` placed at linear `at` (rip = `at`) in `mode` on one engine, with `data` in
/// RAM.
fn run_one(
    code: &[u8],
    at: u64,
    mode: Mode,
    data: Data,
    exec: ExecMode,
    setup: &dyn Fn(&mut X86Cpu),
) -> Stop {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    for &(addr, bytes) in data {
        ram.write_slice(bytes, GuestAddress(addr)).unwrap();
    }
    ram.write_slice(code, GuestAddress(at)).unwrap();
    let engine = Engine::new(
        FlatGuest::ram(RAM as u64).with_mode(mode),
        Arc::new(RamAndBus::new(ram.clone(), devices::bus::Bus::new())),
        EngineConfig {
            mode: exec,
            ..Default::default()
        },
    )
    .unwrap();
    let mut cpu = X86Cpu::new(at);
    setup(&mut cpu);
    let mut vcpu = Vcpu::new(engine, cpu);
    let ret = vcpu.run().unwrap();
    let c = vcpu.cpu();
    Stop {
        ret,
        rip: c.rip,
        regs: c.regs,
        rflags: c.rflags(),
        sys_op: c.sys_op,
        sys_addr: c.sys_addr,
        ram,
    }
}

/// [`run_one`] under the JIT and the interpreter: registers, exit and memory must agree.
fn run_at(code: &[u8], at: u64, mode: Mode, data: Data, setup: &dyn Fn(&mut X86Cpu)) -> Stop {
    let jit = run_one(code, at, mode, data, ExecMode::Jit, setup);
    let interp = run_one(code, at, mode, data, ExecMode::Interpreter, setup);
    assert_eq!(
        (
            jit.ret,
            jit.rip,
            jit.regs,
            jit.rflags,
            jit.sys_op,
            jit.sys_addr
        ),
        (
            interp.ret,
            interp.rip,
            interp.regs,
            interp.rflags,
            interp.sys_op,
            interp.sys_addr
        ),
        "JIT and interpreter disagree"
    );
    let (mut a, mut b) = (vec![0u8; RAM], vec![0u8; RAM]);
    jit.ram.read_slice(&mut a, GuestAddress(0)).unwrap();
    interp.ram.read_slice(&mut b, GuestAddress(0)).unwrap();
    assert!(a == b, "JIT and interpreter leave different memory");
    jit
}

/// Real-mode code at CS:IP = 0900:0100 (linear 0x9100) with the real-mode segments, SP
/// 0x200, `data` in RAM, and `setup` after that.
fn run_real(code: &[u8], data: Data, setup: &dyn Fn(&mut X86Cpu)) -> Stop {
    run_at(code, CS_BASE + IP, REAL, data, &|c| {
        real_mode_segments(c);
        c.regs[RSP] = 0x200;
        setup(c);
    })
}

/// Assembles `source` (Intel syntax) as 16-bit code.
fn asm16(source: &str) -> Vec<u8> {
    asm_bits(".code16", source)
}

/// Assembles `source` (Intel syntax) as 32-bit code.
fn asm32(source: &str) -> Vec<u8> {
    asm_bits(".code32", source)
}

fn asm_bits(directive: &str, source: &str) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("realmode_{}_{n}", std::process::id());
    assemble(&name, &format!("{directive}\n{source}"))
}

#[test]
fn a_near_call_pushes_the_ip_and_ret_comes_back_to_cs_base_plus_ip() {
    let code = asm16(
        "
        call f          # 3 bytes: pushes IP 0x103
        hlt
    f:  mov ax, 0x1234
        ret
    ",
    );
    let s = run_real(&code, &[], &|_| {});
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.rip, CS_BASE + IP + 4, "rip is linear: CS.base + IP");
    assert_eq!(s.regs[RAX] & 0xffff, 0x1234);
    assert_eq!(s.regs[RSP], 0x200, "ret popped the 2 bytes call pushed");
    assert_eq!(
        s.u16_at(SS_BASE + 0x1fe),
        (IP + 3) as u16,
        "call pushed the IP, not the linear address, at SS.base + SP"
    );
}

#[test]
fn the_ip_pushed_and_popped_depends_on_cs_base_at_run_time() {
    // The same bytes at the same linear address under CS bases 0x9000 and 0x8000 (IP
    // 0x100 and 0x1100): the pushed IP differs, the return lands at the same place.
    let code = asm16("call f\n hlt\n f: ret");
    let linear = CS_BASE + IP;
    for cs_base in [CS_BASE, CS_BASE - 0x1000] {
        let s = run_at(&code, linear, REAL, &[], &|c| {
            real_mode_segments(c);
            c.sys.seg_mut(Segment::Cs).base = cs_base;
            c.regs[RSP] = 0x200;
        });
        assert_eq!(
            (s.ret, s.rip),
            (EXIT_HLT, linear + 4),
            "CS.base {cs_base:#x}"
        );
        assert_eq!(s.u16_at(SS_BASE + 0x1fe), (linear + 3 - cs_base) as u16);
    }
}

#[test]
fn indirect_near_jumps_and_calls_go_to_cs_base_plus_the_target() {
    let code = asm16(
        "
        mov ax, 0x109   # 3 bytes: the IP of t
        call ax         # 2 bytes
        hlt             # IP 0x105
        nop
        nop
        nop
    t:  mov dx, 7       # IP 0x109
        ret
    ",
    );
    let s = run_real(&code, &[], &|_| {});
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CS_BASE + 0x106));
    assert_eq!(s.regs[2] & 0xffff, 7);
    assert_eq!(s.regs[RSP], 0x200);
    // jmp word ptr [bx]: the target IP (0x104, `mov cx, 3`) read from DS:BX.
    let code = asm16("jmp word ptr [bx]\n hlt\n hlt\n mov cx, 3\n hlt");
    let target = ((IP + 4) as u16).to_le_bytes();
    let s = run_real(&code, &[(DS_BASE + 0x40, &target)], &|c| c.regs[RBX] = 0x40);
    assert_eq!((s.ret, s.rip), (EXIT_HLT, CS_BASE + IP + 8));
    assert_eq!(s.regs[RCX] & 0xffff, 3);
}

#[test]
fn data_operands_add_their_segments_base_and_16_bit_offsets_wrap() {
    let code = asm16(
        "
        mov ax, [bx + 2]        # DS
        mov cx, [bp + 2]        # SS: bp-based
        mov dx, es:[bx]         # an override
        mov di, 2
        mov word ptr [di], 0x5aa5
        mov bx, 0xffff
        mov si, 2
        mov bl, [bx + si]       # the offset 0xffff + 2 wraps to 1
        hlt
    ",
    );
    let s = run_real(
        &code,
        &[
            (DS_BASE + 0x12, &[0x11, 0x11]),
            (SS_BASE + 0x22, &[0x22, 0x22]),
            (ES_BASE + 0x10, &[0x33, 0x33]),
            (DS_BASE + 1, &[0x44]),
            // Where a 17-bit offset would land: must not be read.
            (DS_BASE + 0x1_0001, &[0x99]),
        ],
        &|c| {
            c.regs[RBX] = 0x10;
            c.regs[RBP] = 0x20;
        },
    );
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[RAX] & 0xffff, 0x1111);
    assert_eq!(s.regs[RCX] & 0xffff, 0x2222);
    assert_eq!(s.regs[2] & 0xffff, 0x3333);
    assert_eq!(s.regs[RBX] & 0xff, 0x44);
    assert_eq!(s.u16_at(DS_BASE + 2), 0x5aa5, "a store goes through DS too");
    // lea computes the offset only.
    let s = run_real(&asm16("lea ax, [bx + si + 0x10]\n hlt"), &[], &|c| {
        c.regs[RBX] = 0xfff0;
        c.regs[RSI] = 0x8;
    });
    assert_eq!(s.regs[RAX] & 0xffff, 0x0008, "0xfff0 + 8 + 0x10 wraps");
}

#[test]
fn a_fault_through_a_segment_base_stops_at_the_instructions_linear_address() {
    // DS.base at the end of RAM: the load faults, nothing after it runs, rip is CS.base +
    // IP of the load.
    let code = asm16("inc cx\n mov ax, [bx]\n mov dx, 1\n hlt");
    let s = run_real(&code, &[], &|c| {
        c.sys.seg_mut(Segment::Ds).base = RAM as u64;
    });
    assert_eq!(s.ret, RET_FAULT_BASE + vector::PF as u32);
    assert_eq!(s.rip, CS_BASE + IP + 1);
    assert_eq!((s.regs[RCX], s.regs[2]), (1, 0));
}

#[test]
fn sixteen_bit_pushes_and_pops_use_ss_base_plus_sp_and_sp_wraps() {
    let code = asm16(
        "
        push ax
        push 0x55
        pop bx
        pop cx
        push dx         # at SP 0x200 - 2
        hlt
    ",
    );
    let s = run_real(&code, &[], &|c| {
        c.regs[RAX] = 0x1234;
        c.regs[2] = 0xbeef;
        // Bits 63:16 of rsp are not SP: a 16-bit stack leaves them alone.
        c.regs[RSP] = 0xabcd_0000_0000_0200;
    });
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[RBX] & 0xffff, 0x55);
    assert_eq!(s.regs[RCX] & 0xffff, 0x1234);
    assert_eq!(s.regs[RSP], 0xabcd_0000_0000_01fe);
    assert_eq!(s.u16_at(SS_BASE + 0x1fe), 0xbeef);
    // SP 0: a push wraps to 0xfffe in the same segment.
    let s = run_real(&asm16("push ax\n hlt"), &[], &|c| {
        c.regs[RAX] = 0x4321;
        c.regs[RSP] = 0;
    });
    assert_eq!(s.regs[RSP], 0xfffe);
    assert_eq!(s.u16_at(SS_BASE + 0xfffe), 0x4321);
}

#[test]
fn pusha_popa_enter_and_leave_on_a_16_bit_stack() {
    let code = asm16(
        "
        pusha
        mov ax, 1
        mov cx, 2
        mov di, 3
        popa
        enter 4, 0      # push bp; bp = sp; sp -= 4
        mov word ptr [bp - 2], 0x1357
        leave           # sp = bp; pop bp
        hlt
    ",
    );
    let s = run_real(&code, &[], &|c| {
        c.regs[RAX] = 0xa0a0;
        c.regs[RCX] = 0xc0c0;
        c.regs[RDI] = 0xd0d0;
        c.regs[RBP] = 0xb0b0;
        c.regs[2] = 0x0d0d;
    });
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(
        (s.regs[RAX], s.regs[RCX], s.regs[RDI], s.regs[RBP]),
        (0xa0a0, 0xc0c0, 0xd0d0, 0xb0b0),
        "popa and leave restored them"
    );
    assert_eq!(s.regs[RSP], 0x200);
    // pusha's frame (AX CX DX BX SP BP SI DI from 0x1fe down), where enter did not
    // overwrite it: DX third, the old SP fifth, DI last.
    assert_eq!(s.u16_at(SS_BASE + 0x1fa), 0x0d0d);
    assert_eq!(s.u16_at(SS_BASE + 0x1f6), 0x200);
    assert_eq!(s.u16_at(SS_BASE + 0x1f0), 0xd0d0);
    // enter's frame: the old bp at 0x1fe, the local at bp - 2 = 0x1fc.
    assert_eq!(s.u16_at(SS_BASE + 0x1fe), 0xb0b0);
    assert_eq!(s.u16_at(SS_BASE + 0x1fc), 0x1357);
}

#[test]
fn loop_counts_in_cx_and_conditional_jumps_stay_in_the_segment() {
    let code = asm16(
        "
        mov cx, 5
    l:  inc ax
        loop l
        cmp ax, 5
        jne bad
        mov dx, 1
        hlt
    bad:
        mov dx, 2
        hlt
    ",
    );
    let s = run_real(&code, &[], &|c| c.regs[RCX] = 0xaaaa_0000_0000_0000);
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[RAX] & 0xffff, 5);
    assert_eq!(s.regs[2] & 0xffff, 1, "jne not taken");
    assert_eq!(
        s.regs[RCX], 0xaaaa_0000_0000_0000,
        "loop counted in cx only"
    );
    // jcxz on cx with the upper bits of rcx set.
    let s = run_real(&asm16("jcxz z\n hlt\n z: mov dx, 9\n hlt"), &[], &|c| {
        c.regs[RCX] = 0x1_0000;
    });
    assert_eq!(s.regs[2] & 0xffff, 9);
}

#[test]
fn pushf_and_popf_in_16_bit_code_and_their_32_bit_forms() {
    let code = asm16(
        "
        pushf
        push 0
        popf            # clears the arithmetic flags (CPL 0: ends the block)
        pushfd          # 4 bytes
        pop eax         # 4 bytes
        mov edx, eax
        or eax, 0x200000
        push eax
        popfd           # sets ID
        pushfd
        pop ecx
        popf            # the first pushf back
        hlt
    ",
    );
    let s = run_real(&code, &[], &|c| c.set_rflags(0x2 | 0x1 | 0x40));
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[2], 0x2, "no flags after popf of 0");
    assert_eq!(s.regs[RCX] & 0x20_0000, 0x20_0000, "ID set by popfd");
    assert_eq!(s.rflags & 0xff, 0x43, "CF and ZF back from the first pushf");
    assert_eq!(s.regs[RSP], 0x200);
}

#[test]
fn sixteen_bit_string_instructions_use_ds_si_and_es_di() {
    let code = asm16("rep movsb\n hlt");
    let s = run_real(&code, &[(DS_BASE + 0x10, b"abcd")], &|c| {
        c.regs[RSI] = 0x10;
        c.regs[RDI] = 0x20;
        c.regs[RCX] = 0x7777_0000_0000_0004;
    });
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.u32_at(ES_BASE + 0x20), u32::from_le_bytes(*b"abcd"));
    assert_eq!(s.regs[RCX], 0x7777_0000_0000_0000, "counted in cx");
    assert_eq!((s.regs[RSI], s.regs[RDI]), (0x14, 0x24));
    // si wraps at 64 KiB: lodsb at si 0xffff leaves si 0.
    let s = run_real(
        &asm16("lodsb\n hlt"),
        &[(DS_BASE + 0xffff, &[0x5e])],
        &|c| c.regs[RSI] = 0x1_ffff,
    );
    assert_eq!(s.regs[RAX] & 0xff, 0x5e);
    assert_eq!(s.regs[RSI], 0x1_0000, "only si wrapped");
    // xlat: al = DS:[bx + al].
    let s = run_real(&asm16("xlatb\n hlt"), &[(DS_BASE + 0x105, &[0x77])], &|c| {
        c.regs[RBX] = 0x100;
        c.regs[RAX] = 5;
    });
    assert_eq!(s.regs[RAX] & 0xff, 0x77);
}

#[test]
fn system_operands_in_real_mode_are_linear_addresses() {
    let op = |code: &[u8], setup: &dyn Fn(&mut X86Cpu)| {
        let s = run_real(code, &[], setup);
        assert_eq!(s.ret, EXIT_SYSTEM);
        assert_eq!(s.rip, CS_BASE + IP, "rip is the instruction (linear)");
        (s.op(), s.sys_addr)
    };
    // lgdtl / lidtl (0x66: a 32-bit base) at DS.base + offset.
    let (insn, addr) = op(&asm16(".byte 0x66\n lgdt [0x40]"), &|_| {});
    assert_eq!(insn.op, SysOp::Lgdt { size: 4 });
    assert_eq!(addr, DS_BASE + 0x40);
    let (insn, addr) = op(&asm16("lidt [bx]"), &|c| c.regs[RBX] = 0x80);
    assert_eq!(insn.op, SysOp::Lidt { size: 2 });
    assert_eq!(addr, DS_BASE + 0x80);
    // lss sp, [bx]: the far pointer's address; the machine loads SS and SP.
    let (insn, addr) = op(&asm16("lss sp, [bx + 4]"), &|c| c.regs[RBX] = 0x10);
    assert_eq!(
        insn.op,
        SysOp::LoadFarPointer {
            seg: 2,
            gpr: RSP as u8,
            size: 2
        }
    );
    assert_eq!(addr, DS_BASE + 0x14);
    let (insn, addr) = op(&asm16("les di, ss:[bp]"), &|c| c.regs[RBP] = 0x30);
    assert_eq!(
        insn.op,
        SysOp::LoadFarPointer {
            seg: 0,
            gpr: RDI as u8,
            size: 2
        }
    );
    assert_eq!(addr, SS_BASE + 0x30);
    // ljmpl $0x10, $0x100000 (0x66 0xea): the 32-bit offset in sys_addr.
    let ljmpl = [0x66, 0xea, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00];
    let (insn, addr) = op(&ljmpl, &|_| {});
    assert_eq!(
        insn,
        SysInsn {
            op: SysOp::FarJmpImm {
                selector: 0x10,
                size: 4
            },
            len: 8
        }
    );
    assert_eq!(addr, 0x10_0000);
    // jmp far ptr [bx] (m16:16) through DS.
    let (insn, addr) = op(&asm16("jmp dword ptr [bx]"), &|c| c.regs[RBX] = 8);
    assert_eq!(insn.op, SysOp::FarJmp { size: 2 });
    assert_eq!(addr, DS_BASE + 8);
}

#[test]
fn thirty_two_bit_code_adds_nonzero_data_and_stack_segment_bases() {
    let code = asm32(
        "
        mov eax, [ebx]          # DS
        push eax                # SS
        mov ecx, [esp]          # SS: esp-based
        pop edx
        mov esi, 0
        mov edi, 0
        movsd                   # DS:esi -> ES:edi
        hlt
    ",
    );
    let s = run_at(
        &code,
        0x1_0000,
        PM32,
        &[(DS_BASE + 0x100, &0x1234_5678u32.to_le_bytes())],
        &|c| {
            c.sys.seg_mut(Segment::Cs).base = 0;
            c.sys.seg_mut(Segment::Ds).base = DS_BASE;
            c.sys.seg_mut(Segment::Ss).base = SS_BASE;
            c.sys.seg_mut(Segment::Es).base = ES_BASE;
            c.regs[RBX] = 0x100;
            c.regs[RSP] = 0x1000;
        },
    );
    assert_eq!(s.ret, EXIT_HLT);
    assert_eq!(s.regs[RAX], 0x1234_5678);
    assert_eq!(s.regs[RCX], 0x1234_5678, "[esp] read at SS.base + esp");
    assert_eq!(s.regs[2], 0x1234_5678);
    assert_eq!(
        s.u32_at(SS_BASE + 0xffc),
        0x1234_5678,
        "push stored through SS"
    );
    assert_eq!(s.regs[RSP], 0x1000);
    assert_eq!(
        s.u32_at(ES_BASE),
        0,
        "movsd read DS:0 (zero) and wrote ES:0"
    );
    // The linear address wraps at 4 GiB: DS.base 0xffff_f000 + 0x1100.
    let s = run_at(
        &asm32("mov eax, [ebx]\n hlt"),
        0x1_0000,
        PM32,
        &[(0x100, &[0x42])],
        &|c| {
            c.sys.seg_mut(Segment::Ds).base = 0xffff_f000;
            c.regs[RBX] = 0x1100;
        },
    );
    assert_eq!(s.regs[RAX], 0x42);
}

#[test]
fn thirty_two_bit_calls_use_the_stack_segment() {
    let code = asm32("call f\n hlt\n f: ret");
    let s = run_at(&code, 0x1_0000, PM32, &[], &|c| {
        c.sys.seg_mut(Segment::Cs).base = 0;
        c.sys.seg_mut(Segment::Ss).base = SS_BASE;
        c.regs[RSP] = 0x800;
    });
    assert_eq!((s.ret, s.rip), (EXIT_HLT, 0x1_0006));
    assert_eq!(
        s.u32_at(SS_BASE + 0x7fc),
        0x1_0005,
        "EIP pushed at SS.base + esp"
    );
}

#[test]
fn sixty_four_bit_mode_ignores_the_bases_of_ds_es_ss_and_cs() {
    let code = [
        0x48, 0x8b, 0x03, // mov rax, [rbx]
        0x50, // push rax
        0x59, // pop rcx
        0xf4, // hlt
    ];
    let s = run_at(&code, 0x1_0000, LONG, &[(0x100, &[0x5a])], &|c| {
        for seg in [Segment::Cs, Segment::Ds, Segment::Ss, Segment::Es] {
            c.sys.seg_mut(seg).base = 0x4_0000;
        }
        c.regs[RBX] = 0x100;
        c.regs[RSP] = 0x2000;
    });
    assert_eq!((s.ret, s.rip), (EXIT_HLT, 0x1_0006));
    assert_eq!((s.regs[RAX], s.regs[RCX]), (0x5a, 0x5a));
    assert_eq!(s.ram.read_obj::<u64>(GuestAddress(0x1ff8)).unwrap(), 0x5a);
}

/// Code readable from `at` on (the rest of its page zeros).
struct CodeAt(u64, Vec<u8>);

impl accel_tcg::CodeReader for CodeAt {
    fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), accel_tcg::MemFault> {
        let off = vaddr.wrapping_sub(self.0) as usize;
        match self.1.get(off..off + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(accel_tcg::MemFault::Page(vaddr)),
        }
    }
}

/// Translates each instruction of `code` (16-bit, at linear `at`) as a block of its own
/// and returns the mnemonics that ended in #UD.
fn undefined_in(code: &[u8], at: u64) -> Vec<String> {
    let mut bytes = code.to_vec();
    bytes.resize(0x1000, 0);
    let mut decoder = iced_x86::Decoder::with_ip(16, code, at, iced_x86::DecoderOptions::NONE);
    let mut bad = Vec::new();
    for insn in &mut decoder {
        let mut b = Builder::new(cpu::globals(), Type::I64);
        let mut reader = CodeAt(at, bytes.clone());
        translate_mode(insn.ip(), &mut reader, &mut b, 1, REAL).unwrap();
        let block = b.finish();
        ir::verify::verify(&block).unwrap();
        let ud = block
            .ops
            .iter()
            .any(|op| matches!(op, Op::ExitTb { reason } if *reason == EXIT_UD));
        if insn.is_invalid() || ud {
            bad.push(format!("{:?} at {:#x}", insn.code(), insn.ip()));
        }
    }
    bad
}

#[test]
fn an_ap_trampoline_and_a_cpu_check_translate_without_ud() {
    // The instruction forms of an SMP trampoline up to protected mode and of a 16-bit
    // long-mode check (flags, cpuid, MSRs, jumps), as Linux and tests/guests use them.
    let code = asm16(
        "
        cli
        wbinvd
        cld
        mov ax, cs
        mov ds, ax
        mov es, ax
        mov ss, ax
        xor ax, ax
        mov esp, 0x1000
        lss sp, [0x20]
        call check
        test eax, eax
        jnz fail
        .byte 0x66
        lidt [0x30]
        .byte 0x66
        lgdt [0x38]
        mov dx, 0x18
        mov eax, 0x11
        mov cr0, eax
        mov eax, cr0
        or eax, 1
        .byte 0x66, 0xea
        .long 0x100000
        .word 0x10
    fail:
        hlt
        jmp fail
    check:
        pushf
        push 0
        popf
        pushfd
        pop eax
        mov ebx, eax
        xor eax, 0x200000
        push eax
        popfd
        pushfd
        pop eax
        cmp eax, ebx
        jz no
        mov eax, 0
        cpuid
        cmp eax, 1
        jb no
        xor di, di
        cmp ebx, 0x68747541
        jnz not_amd
        inc di
    not_amd:
        mov eax, 0x80000001
        cpuid
        and edx, 0x20000000
        xor edx, 0x20000000
        jnz no
        mov ecx, 0xc0010015
        rdmsr
        btr eax, 15
        wrmsr
        test di, di
        jz no
        popf
        xor eax, eax
        ret
    no:
        popf
        mov eax, 1
        ret
        int3
    ",
    );
    assert_eq!(undefined_in(&code, CS_BASE), Vec::<String>::new());
}

/// The 16-bit part of the project's own AP trampoline (tests/guests/smp_trampoline.S),
/// assembled with the host's gcc: the bytes from its start through its far jump to 32-bit
/// code.
fn guest_trampoline() -> Vec<u8> {
    let guests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("x86_64_exec");
    std::fs::create_dir_all(&dir).unwrap();
    let (obj, bin) = (dir.join("smp_trampoline.o"), dir.join("smp_trampoline.bin"));
    let status = std::process::Command::new("gcc")
        .args(["-m64", "-fno-pic", "-fno-pie", "-c", "-I"])
        .arg(guests.join("rt"))
        .arg(guests.join("smp_trampoline.S"))
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("gcc not runnable ({e}): apt-get install gcc"));
    assert!(status.success(), "assembling smp_trampoline.S failed");
    let status = std::process::Command::new("objcopy")
        .args(["-O", "binary", "-j", ".text"])
        .arg(&obj)
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read(&bin).unwrap();
    let mut decoder = iced_x86::Decoder::with_ip(16, &text, 0, iced_x86::DecoderOptions::NONE);
    let end = decoder
        .iter()
        .find(|i| i.op0_kind() == iced_x86::OpKind::FarBranch32)
        .map(|i| i.next_ip() as usize)
        .expect("the trampoline ends with ljmpl to 32-bit code");
    text[..end].to_vec()
}

#[test]
fn the_guests_ap_trampoline_translates_and_its_lgdtl_reads_through_ds() {
    let code = guest_trampoline();
    // Where the BSP copies it: 0800:0000.
    assert_eq!(undefined_in(&code, 0x8000), Vec::<String>::new());
    // It runs to its first system instruction (mov ds, ax) with rip linear; with DS
    // loaded (base 0, what `xor ax, ax; mov ds, ax` makes it) the lgdtl that follows reads
    // its 32-bit pseudo-descriptor at DS.base + the absolute offset.
    let s = run_at(&code, 0x8000, REAL, &[], &|c| {
        c.sys.seg_mut(Segment::Cs).base = 0x8000;
        c.sys.seg_mut(Segment::Cs).selector = 0x800;
    });
    assert_eq!(s.ret, EXIT_SYSTEM);
    assert!(matches!(s.op().op, SysOp::MovToSeg { seg: 3, .. }));
    let at_lgdt = s.rip + s.op().len as u64;
    let s = run_at(&code, 0x8000, REAL, &[], &|c| {
        c.sys.seg_mut(Segment::Cs).base = 0x8000;
        c.sys.seg_mut(Segment::Ds).base = 0;
        c.rip = at_lgdt;
    });
    assert_eq!((s.ret, s.rip), (EXIT_SYSTEM, at_lgdt));
    assert_eq!(s.op().op, SysOp::Lgdt { size: 4 });
    let offset = u16::from_le_bytes([
        code[(at_lgdt - 0x8000) as usize + 4],
        code[(at_lgdt - 0x8000) as usize + 5],
    ]);
    assert_eq!(s.sys_addr, offset as u64);
}
