//! The harness the x86_64 execution tests share: assemble Intel-syntax snippets with the
//! host's GNU as, run them under the JIT and the interpreter (which must agree), and run the
//! same code natively to compare with the host CPU.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use accel_tcg::{Engine, EngineConfig, ExecMode, RamAndBus, Vcpu};
use frontend::x86_64::flags::{compute_flags, CcOp, CF, OF, PF, SF, ZF};
use frontend::x86_64::flat::FlatGuest;
use frontend::x86_64::translate::EXIT_HLT;
use frontend::x86_64::{cpu, X86Cpu};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub const CODE: u64 = 0x1_0000;
pub const DATA: u64 = 0x8_0000;
pub const STACK: u64 = 0x9_0000;
pub const RAM: usize = 1 << 20;

/// Exceptions come back from `Vcpu::run` as `RET_FAULT_BASE + vector`.
pub use frontend::x86_64::flat::RET_EXCEPTION_BASE as RET_FAULT_BASE;

/// Assembles `source` (Intel syntax, 64-bit) into flat machine code at `CODE`.
pub fn assemble(name: &str, source: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("x86_64_exec");
    std::fs::create_dir_all(&dir).unwrap();
    let (s, o, bin) = (
        dir.join(format!("{name}.s")),
        dir.join(format!("{name}.o")),
        dir.join(format!("{name}.bin")),
    );
    std::fs::write(&s, format!(".intel_syntax noprefix\n.text\n{source}\n")).unwrap();
    let status = Command::new("as")
        .args(["--64", "-o"])
        .arg(&o)
        .arg(&s)
        .status()
        .unwrap_or_else(|e| panic!("GNU as not runnable ({e}): apt-get install binutils"));
    assert!(status.success(), "assembling {name} failed");
    let status = Command::new("objcopy")
        .args(["-O", "binary", "-j", ".text"])
        .arg(&o)
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&bin).unwrap()
}

pub struct Run {
    pub ret: u32,
    pub regs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub xmm: [[u64; 2]; 16],
    pub mxcsr: u64,
    pub ram: GuestMemoryMmap,
}

impl Run {
    pub fn r(&self, name: &str) -> u64 {
        let i = cpu::REG_NAMES
            .iter()
            .position(|&n| n == name)
            .unwrap_or_else(|| panic!("no register {name}"));
        self.regs[i]
    }
    pub fn mem64(&self, addr: u64) -> u64 {
        self.ram.read_obj(GuestAddress(addr)).unwrap()
    }
}

pub fn run_mode(code: &[u8], data: &[u8], fs_base: u64, mode: ExecMode) -> Run {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    ram.write_slice(code, GuestAddress(CODE)).unwrap();
    ram.write_slice(data, GuestAddress(DATA)).unwrap();
    let engine = Engine::new(
        FlatGuest::ram(RAM as u64),
        Arc::new(RamAndBus::new(ram.clone(), devices::bus::Bus::new())),
        EngineConfig {
            mode,
            system: false,
            ..Default::default()
        },
    )
    .unwrap();
    let mut cpu = X86Cpu::new(CODE);
    cpu.regs[cpu::RSP] = STACK;
    cpu.fs_base = fs_base;
    let mut vcpu = Vcpu::new(engine, cpu);
    let ret = vcpu.run().unwrap();
    let c = vcpu.cpu();
    Run {
        ret,
        regs: c.regs,
        rip: c.rip,
        rflags: c.rflags(),
        xmm: c.xmm,
        mxcsr: c.mxcsr,
        ram,
    }
}

/// Runs under both the JIT and the interpreter, requires identical results, returns one.
pub fn run_full(name: &str, source: &str, data: &[u8], fs_base: u64) -> Run {
    let code = assemble(name, source);
    let jit = run_mode(&code, data, fs_base, ExecMode::Jit);
    let interp = run_mode(&code, data, fs_base, ExecMode::Interpreter);
    assert_eq!(jit.ret, interp.ret, "{name}: exit");
    assert_eq!(
        jit.regs, interp.regs,
        "{name}: JIT and interpreter disagree"
    );
    assert_eq!(jit.rip, interp.rip, "{name}: rip");
    assert_eq!(jit.rflags, interp.rflags, "{name}: rflags");
    assert_eq!(jit.xmm, interp.xmm, "{name}: xmm");
    assert_eq!(jit.mxcsr, interp.mxcsr, "{name}: mxcsr");
    jit
}

pub fn run(name: &str, source: &str) -> Run {
    let r = run_full(name, source, &[], 0);
    assert_eq!(r.ret, EXIT_HLT, "{name} did not reach hlt");
    r
}

pub const CC_NAMES: [&str; 16] = [
    "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
];

/// Whether condition `cc` holds for `flags` (the SDM's table of condition codes).
pub fn holds(cc: usize, f: u64) -> bool {
    let (c, z, s, o, p) = (
        f & CF != 0,
        f & ZF != 0,
        f & SF != 0,
        f & OF != 0,
        f & PF != 0,
    );
    let v = match cc / 2 {
        0 => o,
        1 => c,
        2 => z,
        3 => c || z,
        4 => s,
        5 => p,
        6 => s != o,
        _ => z || s != o,
    };
    v != (cc % 2 == 1)
}

/// For every condition: `setcc` into a bitmask in r14 and `jcc` into r15, right after `op`
/// (static lazy flags) when `split` is false, or after a jump that ends the block.
pub fn conditions_after(setup: &str, op: &str, split: bool) -> String {
    let mut s = String::from("xor r14, r14; xor r15, r15\n");
    for (cc, name) in CC_NAMES.iter().enumerate() {
        let brk = if split { "jmp 7f; 7:" } else { "" };
        s += &format!(
            "{setup}; {op}; {brk} set{name} cl; movzx ecx, cl; shl rcx, {cc}; or r14, rcx
             {setup}; {op}; {brk} j{name} 8f; jmp 9f; 8: or r15, {bit}; 9:\n",
            bit = 1u64 << cc
        );
    }
    s + "hlt"
}

/// The bitmask of conditions that hold after `op`, which set lazy flags `cc` with values
/// `(dst, src, src2)` (the reference `compute_flags` is checked against the host separately).
pub fn expected(cc: CcOp, dst: u64, src: u64, src2: u64) -> u64 {
    let f = compute_flags(cc.encode(), dst, src, src2);
    (0..16).filter(|&c| holds(c, f)).map(|c| 1 << c).sum()
}

pub fn check_conditions(name: &str, setup: &str, op: &str, want: u64) {
    for split in [false, true] {
        let r = run(name, &conditions_after(setup, op, split));
        assert_eq!(
            r.r("r14"),
            want,
            "{name} setcc (split {split}): {setup}; {op}"
        );
        assert_eq!(
            r.r("r15"),
            want,
            "{name} jcc (split {split}): {setup}; {op}"
        );
    }
}

/// What a native run ends with: the registers (rsp left 0), RFLAGS, xmm0..15 and MXCSR.
pub struct Native {
    pub regs: [u64; 16],
    pub flags: u64,
    pub xmm: [[u64; 2]; 16],
    pub mxcsr: u64,
}

/// Bytes the native program writes out: 16 registers, RFLAGS, 16 XMM registers, MXCSR.
pub const NATIVE_OUT: usize = 136 + 256 + 8;

/// Runs `body` natively as a static Linux program and returns the state it ends with.
pub fn run_native(name: &str, body: &str) -> Native {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("x86_64_exec");
    std::fs::create_dir_all(&dir).unwrap();
    let (s, o, exe) = (
        dir.join(format!("{name}.native.s")),
        dir.join(format!("{name}.native.o")),
        dir.join(format!("{name}.native")),
    );
    let mut src = format!(".intel_syntax noprefix\n.globl _start\n.text\n_start:\n{body}\n");
    for (i, r) in cpu::REG_NAMES.iter().enumerate() {
        if i != cpu::RSP {
            src += &format!("mov [rip + buf + {}], {r}\n", 8 * i);
        }
    }
    src += "pushfq; pop rax; mov [rip + buf + 128], rax\n";
    for i in 0..16 {
        src += &format!("movdqu [rip + buf + {}], xmm{i}\n", 136 + 16 * i);
    }
    src += "stmxcsr [rip + buf + 392]
            mov eax, 1; mov edi, 1; lea rsi, [rip + buf]; mov edx, 400; syscall
            mov eax, 60; xor edi, edi; syscall
            .bss
            buf: .zero 400\n";
    std::fs::write(&s, src).unwrap();
    assert!(Command::new("as")
        .args(["--64", "-o"])
        .arg(&o)
        .arg(&s)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ld")
        .arg("-o")
        .arg(&exe)
        .arg(&o)
        .status()
        .unwrap()
        .success());
    let out = Command::new(&exe).output().unwrap();
    assert_eq!(out.stdout.len(), NATIVE_OUT, "{name}: native run");
    let word = |i: usize| u64::from_le_bytes(out.stdout[8 * i..8 * i + 8].try_into().unwrap());
    let mut regs = [0; 16];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = word(i);
    }
    Native {
        regs,
        flags: word(16),
        xmm: core::array::from_fn(|i| [word(17 + 2 * i), word(18 + 2 * i)]),
        mxcsr: word(49) & 0xffff_ffff,
    }
}

/// How the frontend's run of `body` differs from the host's, if it does.
pub fn host_mismatch(name: &str, body: &str) -> Option<String> {
    let Native {
        regs,
        flags,
        xmm,
        mxcsr,
    } = run_native(name, body);
    let r = run(name, &format!("{body}\nhlt"));
    for (i, (got, host)) in r.xmm.iter().zip(xmm).enumerate() {
        if *got != host {
            return Some(format!("xmm{i}: {got:x?}, host {host:x?}"));
        }
    }
    if r.mxcsr != mxcsr {
        return Some(format!("mxcsr {:#x}, host {mxcsr:#x}", r.mxcsr));
    }
    for i in (0..16).filter(|&i| i != cpu::RSP) {
        if r.regs[i] != regs[i] {
            return Some(format!(
                "{}: {:#x}, host {:#x}",
                cpu::REG_NAMES[i],
                r.regs[i],
                regs[i]
            ));
        }
    }
    let defined = CF | PF | ZF | SF | OF;
    (r.rflags & defined != flags & defined)
        .then(|| format!("flags {:#x}, host {:#x}", r.rflags, flags))
}

/// Random programs per differential test (each is assembled, linked and run natively).
pub const PROGRAMS: u32 = 48;

/// Runs `PROGRAMS` programs from `gen` against the host (a random generator of prologue, lines and
/// epilogue); on a difference, reports the shortest failing prefix so the message names the
/// instruction that went wrong.
pub fn compare_programs(
    seed: u64,
    kind: &str,
    gen: impl Fn(&mut u64) -> (String, Vec<String>, String),
) {
    let mut rng = seed;
    for n in 0..PROGRAMS {
        let (pro, lines, epi) = gen(&mut rng);
        let name = format!("random{kind}{n}");
        let body = |k: usize| format!("{pro}{}{epi}", lines[..k].concat());
        if host_mismatch(&name, &body(lines.len())).is_none() {
            continue;
        }
        let k = (1..=lines.len())
            .find(|&k| host_mismatch(&name, &body(k)).is_some())
            .unwrap();
        let what = host_mismatch(&name, &body(k)).unwrap();
        panic!(
            "{name}: {what} after `{}`\n{}",
            lines[k - 1].trim(),
            body(k)
        );
    }
}
