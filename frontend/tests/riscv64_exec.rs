//! RISC-V instruction semantics at their edges, run end to end: snippets assembled with
//! Debian's riscv64-linux-gnu-as, translated by the frontend and run by the engine (under the
//! JIT and under the interpreter), with results checked against what the ISA manual states.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use accel_tcg::{
    Access, Action, CodeReader, Engine, EngineConfig, ExecMode, Guest, MemFault, PageMapping,
    PageProt, RamAndBus, Vcpu,
};
use frontend::riscv64::translate::{self, EXIT_EBREAK, EXIT_ECALL, EXIT_ILLEGAL};
use frontend::riscv64::{cpu, Riscv64Cpu};
use ir::abi::PAGE_MASK;
use ir::{Builder, GlobalDef, Type};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const CODE: u64 = 0x1_0000;
const DATA: u64 = 0x8_0000;
const RAM: usize = 1 << 20;

/// A bare hart: flat memory (virtual = physical), ecall ends the run.
struct Bare;

const RET_ECALL: u32 = 1;
const RET_EBREAK: u32 = 2;
const RET_ILLEGAL: u32 = 3;
const RET_FAULT: u32 = 4;

impl Guest for Bare {
    type Cpu = Riscv64Cpu;
    fn globals(&self) -> Arc<[GlobalDef]> {
        cpu::globals()
    }
    fn addr_type(&self) -> Type {
        Type::I64
    }
    fn block_key(&self, cpu: &Riscv64Cpu) -> (u64, u32) {
        (cpu.pc, 0)
    }
    fn code_mmu_idx(&self, _: u32) -> u8 {
        0
    }
    fn translate(
        &self,
        pc: u64,
        _: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max: u32,
    ) -> Result<(), MemFault> {
        translate::translate(pc, code, b, max, 0)
    }
    fn restore_state(&self, cpu: &mut Riscv64Cpu, pc: u64, extra: u64) {
        translate::restore_state(cpu, pc, extra)
    }
    fn page_walk(
        &self,
        _: &mut Riscv64Cpu,
        vaddr: u64,
        _: Access,
        _: u8,
    ) -> Result<PageMapping, MemFault> {
        if vaddr >= RAM as u64 {
            return Err(MemFault::Page(0));
        }
        Ok(PageMapping {
            phys_page: vaddr & PAGE_MASK,
            prot: PageProt::ALL,
            global: false,
        })
    }
    fn raise(&self, cpu: &mut Riscv64Cpu, fault: MemFault, vaddr: u64, _: Access) {
        cpu.cause = match fault {
            MemFault::Misaligned => 6,
            _ => 7,
        };
        cpu.tval = vaddr;
    }
    fn on_exit(&self, _: &mut Riscv64Cpu, reason: u32) -> Action {
        Action::Return(match reason {
            EXIT_ECALL => RET_ECALL,
            EXIT_EBREAK => RET_EBREAK,
            EXIT_ILLEGAL => RET_ILLEGAL,
            _ => 99,
        })
    }
    fn on_exception(&self, _: &mut Riscv64Cpu) -> Action {
        Action::Return(RET_FAULT)
    }
    fn on_exit_request(&self, _: &mut Riscv64Cpu) -> Action {
        Action::Continue
    }
}

/// Assembles `source` (RV64GC + Zba/Zbb/Zbs) into flat machine code.
fn assemble(name: &str, source: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("riscv64_exec");
    std::fs::create_dir_all(&dir).unwrap();
    let (s, o, bin) = (
        dir.join(format!("{name}.s")),
        dir.join(format!("{name}.o")),
        dir.join(format!("{name}.bin")),
    );
    std::fs::write(
        &s,
        format!(".option norelax\n.option norvc\n.text\n{source}\n"),
    )
    .unwrap();
    let status = Command::new("riscv64-linux-gnu-as")
        .args(["-march=rv64gc_zba_zbb_zbs", "-o"])
        .arg(&o)
        .arg(&s)
        .status()
        .unwrap_or_else(|e| panic!("riscv64-linux-gnu-as not runnable ({e}): apt-get install binutils-riscv64-linux-gnu"));
    assert!(status.success(), "assembling {name} failed");
    let status = Command::new("riscv64-linux-gnu-objcopy")
        .args(["-O", "binary", "-j", ".text"])
        .arg(&o)
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&bin).unwrap()
}

struct Run {
    ret: u32,
    cpu: Box<Riscv64Cpu>,
    ram: GuestMemoryMmap,
}

impl Run {
    fn x(&self, name: &str) -> u64 {
        let i = cpu::XREG_NAMES
            .iter()
            .position(|&n| n == name)
            .unwrap_or_else(|| panic!("no register {name}"));
        self.cpu.x[i]
    }
}

/// Runs `source` (which ends with `ecall`) under `mode`; `DATA` holds `data` first.
fn run_mode(name: &str, source: &str, data: &[u8], mode: ExecMode) -> Run {
    let code = assemble(name, source);
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    ram.write_slice(&code, GuestAddress(CODE)).unwrap();
    ram.write_slice(data, GuestAddress(DATA)).unwrap();
    let engine = Engine::new(
        Bare,
        Arc::new(RamAndBus::new(ram.clone(), devices::bus::Bus::new())),
        EngineConfig {
            mode,
            system: false,
            ..Default::default()
        },
    )
    .unwrap();
    let mut vcpu = Vcpu::new(engine, Riscv64Cpu::new(CODE));
    let ret = vcpu.run().unwrap();
    let c = vcpu.cpu();
    let mut cpu = Riscv64Cpu::new(c.pc);
    cpu.x = c.x;
    cpu.f = c.f;
    cpu.fflags = c.fflags;
    cpu.frm = c.frm;
    cpu.cause = c.cause;
    cpu.tval = c.tval;
    Run { ret, cpu, ram }
}

/// Runs under both the JIT and the interpreter, requires identical registers, returns one.
fn run(name: &str, source: &str) -> Run {
    run_with(name, source, &[])
}

fn run_with(name: &str, source: &str, data: &[u8]) -> Run {
    let jit = run_mode(name, source, data, ExecMode::Jit);
    let interp = run_mode(name, source, data, ExecMode::Interpreter);
    assert_eq!(jit.ret, interp.ret, "{name}: exit");
    assert_eq!(
        jit.cpu.x, interp.cpu.x,
        "{name}: JIT and interpreter disagree"
    );
    assert_eq!(jit.cpu.pc, interp.cpu.pc, "{name}: pc");
    jit
}

const MIN: u64 = 1 << 63;

#[test]
fn division_by_zero_and_overflow_give_the_manual_s_results() {
    let r = run(
        "div",
        "li a0, 7; li a1, 0; div a2, a0, a1; divu a3, a0, a1; rem a4, a0, a1; remu a5, a0, a1
         li t0, 1; slli t0, t0, 63; li t1, -1; div a6, t0, t1; rem a7, t0, t1
         li t2, 0x80000000; divw s2, t2, t1; remw s3, t2, t1; divuw s4, a0, a1; remuw s5, t2, a1
         li t3, -7; li t4, 2; div s6, t3, t4; rem s7, t3, t4
         ecall",
    );
    assert_eq!(r.ret, RET_ECALL);
    assert_eq!(r.x("a2"), u64::MAX, "x / 0 = -1");
    assert_eq!(r.x("a3"), u64::MAX, "x /u 0 = 2^64 - 1");
    assert_eq!(r.x("a4"), 7, "x % 0 = x");
    assert_eq!(r.x("a5"), 7);
    assert_eq!(r.x("a6"), MIN, "MIN / -1 = MIN");
    assert_eq!(r.x("a7"), 0, "MIN % -1 = 0");
    assert_eq!(
        r.x("s2"),
        0xffff_ffff_8000_0000,
        "divw overflow is sign-extended MIN32"
    );
    assert_eq!(r.x("s3"), 0);
    assert_eq!(
        r.x("s4"),
        u64::MAX,
        "divuw by zero: all ones, sign-extended"
    );
    assert_eq!(
        r.x("s5"),
        0xffff_ffff_8000_0000,
        "remuw by zero: the dividend's low word, sign-extended"
    );
    assert_eq!(r.x("s6"), (-3i64) as u64, "division rounds toward zero");
    assert_eq!(
        r.x("s7"),
        (-1i64) as u64,
        "remainder has the dividend's sign"
    );
}

#[test]
fn shifts_use_the_low_bits_of_the_amount_and_w_forms_sign_extend() {
    let r = run(
        "shift",
        "li a0, 1; li a1, 65; sll a2, a0, a1; li t0, 33; sllw a3, a0, t0
         li t1, 0x80000000; srlw a4, t1, zero; sraw a5, t1, zero; sraiw a6, t1, 4; srliw a7, t1, 4
         li t2, 0x7fffffff; addiw s2, t2, 1; addw s3, t2, t2; slliw s4, a0, 31
         li t3, -1; srli s5, t3, 60; srai s6, t3, 60
         ecall",
    );
    assert_eq!(r.x("a2"), 2, "sll uses shamt mod 64");
    assert_eq!(r.x("a3"), 2, "sllw uses shamt mod 32");
    assert_eq!(
        r.x("a4"),
        0xffff_ffff_8000_0000,
        "srlw by 0 still sign-extends the word"
    );
    assert_eq!(r.x("a5"), 0xffff_ffff_8000_0000);
    assert_eq!(r.x("a6"), 0xffff_ffff_f800_0000);
    assert_eq!(r.x("a7"), 0x0800_0000);
    assert_eq!(r.x("s2"), 0xffff_ffff_8000_0000, "addiw wraps in 32 bits");
    assert_eq!(r.x("s3"), 0xffff_ffff_ffff_fffe);
    assert_eq!(r.x("s4"), 0xffff_ffff_8000_0000);
    assert_eq!(r.x("s5"), 0xf);
    assert_eq!(r.x("s6"), u64::MAX);
}

#[test]
fn x0_reads_zero_and_ignores_writes() {
    let r = run(
        "x0",
        "li zero, 5; addi a0, zero, 3; add zero, a0, a0; mv a1, zero; lui zero, 1; ecall",
    );
    assert_eq!((r.x("a0"), r.x("a1"), r.cpu.x[0]), (3, 0, 0));
}

#[test]
fn multiply_high_parts() {
    let r = run(
        "mulh",
        "li a0, -1; li a1, -1; mulh a2, a0, a1; mulhu a3, a0, a1; mulhsu a4, a0, a1
         li t0, 0x100000000; mulw a5, t0, t0; li t1, 0x10000; mulw a6, t1, t1
         ecall",
    );
    assert_eq!(r.x("a2"), 0);
    assert_eq!(r.x("a3"), u64::MAX - 1);
    assert_eq!(
        r.x("a4"),
        u64::MAX,
        "signed -1 times unsigned 2^64-1: high part -1"
    );
    assert_eq!(r.x("a5"), 0);
    assert_eq!(r.x("a6"), 0, "2^32 wraps to 0 in 32 bits");
}

#[test]
fn loads_sign_or_zero_extend_and_stores_write_their_width() {
    let data = [0x80u8, 0xff, 0xff, 0xff, 0x11, 0x22, 0x33, 0x44];
    let r = run_with(
        "mem",
        "li s0, 0x80000
         lb a0, 0(s0); lbu a1, 0(s0); lh a2, 0(s0); lhu a3, 0(s0); lw a4, 0(s0); lwu a5, 0(s0); ld a6, 0(s0)
         li t0, 0x55; sb t0, 8(s0); sh t0, 10(s0); sw t0, 12(s0); ld a7, 8(s0)
         lw s2, 1(s0)
         ecall",
        &data,
    );
    assert_eq!(r.x("a0"), 0xffff_ffff_ffff_ff80);
    assert_eq!(r.x("a1"), 0x80);
    assert_eq!(r.x("a2"), 0xffff_ffff_ffff_ff80);
    assert_eq!(r.x("a3"), 0xff80);
    assert_eq!(r.x("a4"), 0xffff_ffff_ffff_ff80);
    assert_eq!(r.x("a5"), 0xffff_ff80);
    assert_eq!(r.x("a6"), 0x4433_2211_ffff_ff80);
    assert_eq!(r.x("a7"), 0x0000_0055_0055_0055);
    assert_eq!(r.x("s2"), 0x11ff_ffff, "misaligned loads work in user code");
    assert_eq!(
        r.ram.read_obj::<u64>(GuestAddress(DATA + 8)).unwrap(),
        0x0000_0055_0055_0055
    );
}

#[test]
fn branches_jumps_and_links() {
    let r = run(
        "branch",
        "li a0, 0; li t0, 10
         1: addi a0, a0, 3; addi t0, t0, -1; bnez t0, 1b
         li t1, -1; li t2, 1; blt t1, t2, 2f; li a1, 1; j 3f
         2: li a1, 2
         3: bltu t1, t2, 4f; li a2, 5
         4: jal ra, 5f; li a3, 9; ecall
         5: auipc a4, 0; jalr zero, 0(ra)",
    );
    assert_eq!(r.x("a0"), 30);
    assert_eq!(r.x("a1"), 2, "signed compare");
    assert_eq!(r.x("a2"), 5, "unsigned compare of -1 and 1 falls through");
    assert_eq!(r.x("a3"), 9, "returned through jalr");
    assert_eq!(r.x("a4"), r.x("ra") + 4 + 4, "auipc sees its own pc");
}

#[test]
fn compressed_instructions_behave_as_their_expansions() {
    let r = run(
        "rvc",
        ".option rvc
         li sp, 0x90000; c.li a0, 5; c.addi a0, -1; c.slli a0, 3; c.mv a1, a0; c.add a1, a0; c.addiw a1, 1
         c.li a2, -1; c.srli a2, 60; c.andi a2, 5; c.lui a3, 1; c.sub a3, a2
         addi sp, sp, -16; c.sdsp a1, 8(sp); c.ldsp a4, 8(sp); addi sp, sp, 16
         c.j 1f; c.li a5, 1
         1: c.beqz a5, 2f; c.li a5, 2
         2: ecall",
    );
    assert_eq!(r.x("a0"), 32);
    assert_eq!(r.x("a1"), 65);
    assert_eq!(r.x("a2"), 5);
    assert_eq!(r.x("a3"), 0x1000 - 5);
    assert_eq!(r.x("a4"), 65);
    assert_eq!(r.x("a5"), 0);
}

#[test]
fn lr_sc_and_amos() {
    let r = run(
        "atomic",
        "li s0, 0x80000; li t0, 10; sd t0, 0(s0)
         lr.d a0, (s0); addi t1, a0, 1; sc.d a1, t1, (s0); ld a2, 0(s0)
         sc.d a3, t1, (s0)
         li t2, 5; amoadd.d a4, t2, (s0); ld a5, 0(s0)
         li t3, -1; amomaxu.d a6, t3, (s0); ld a7, 0(s0)
         li t4, 0x7fffffff; sw t4, 8(s0); addi s1, s0, 8; li t5, -2; amomin.w s2, t5, (s1); lw s3, 8(s0)
         amominu.w s4, t4, (s1); lw s5, 8(s0); amoswap.w s6, zero, (s1); lw s7, 8(s0)
         ecall",
    );
    assert_eq!(
        (r.x("a0"), r.x("a1"), r.x("a2")),
        (10, 0, 11),
        "LR then SC succeeds"
    );
    assert_eq!(r.x("a3"), 1, "a second SC without LR fails");
    assert_eq!((r.x("a4"), r.x("a5")), (11, 16));
    assert_eq!((r.x("a6"), r.x("a7")), (16, u64::MAX));
    assert_eq!((r.x("s2"), r.x("s3")), (0x7fff_ffff, (-2i64) as u64));
    assert_eq!(
        (r.x("s4"), r.x("s5")),
        ((-2i64) as u64, 0x7fff_ffff),
        "amominu compares words unsigned"
    );
    assert_eq!((r.x("s6"), r.x("s7")), (0x7fff_ffff, 0));
}

#[test]
fn misaligned_atomics_fault() {
    let r = run(
        "amo_misaligned",
        "li s0, 0x80001; amoadd.w a0, zero, (s0); ecall",
    );
    assert_eq!(r.ret, RET_FAULT);
    assert_eq!((r.cpu.cause, r.cpu.tval), (6, 0x80001));
    assert_eq!(
        r.cpu.pc,
        CODE + 8,
        "the pc of the amo (li of a 20-bit value is two instructions)"
    );
}

#[test]
fn bit_manipulation_extensions() {
    let r = run(
        "zb",
        "li a0, 0x0f; li a1, 0x100; add.uw a2, a1, a1; sh1add a3, a0, a1; sh3add.uw a4, a0, a1; slli.uw a5, a0, 4
         li t0, -1; add.uw t1, t0, zero
         andn s2, a1, a0; orn s3, zero, a0; xnor s4, a0, a0
         clz s5, a0; ctz s6, a1; cpop s7, t0; clzw s8, a0; ctzw s9, zero; cpopw s10, t0
         li t2, -5; max s11, t2, a0; maxu t3, t2, a0; min t4, t2, a0; minu t5, t2, a0
         li t6, 0x80; sext.b a6, t6; zext.h a7, t0
         rori gp, a0, 4; rolw tp, a1, t6
         ecall",
    );
    assert_eq!(r.x("a2"), 0x200);
    assert_eq!(r.x("a3"), 0x11e);
    assert_eq!(r.x("a4"), 0x178);
    assert_eq!(r.x("a5"), 0xf0);
    assert_eq!(r.x("t1"), 0xffff_ffff, "add.uw zero-extends rs1");
    assert_eq!(r.x("s2"), 0x100);
    assert_eq!(r.x("s3"), !0xfu64);
    assert_eq!(r.x("s4"), u64::MAX);
    assert_eq!((r.x("s5"), r.x("s6"), r.x("s7")), (60, 8, 64));
    assert_eq!((r.x("s8"), r.x("s9"), r.x("s10")), (28, 32, 32));
    assert_eq!(
        (r.x("s11"), r.x("t3"), r.x("t4"), r.x("t5")),
        (0xf, (-5i64) as u64, (-5i64) as u64, 0xf)
    );
    assert_eq!((r.x("a6"), r.x("a7")), ((-128i64) as u64, 0xffff));
    assert_eq!(r.x("gp"), 0xf000_0000_0000_0000);
    assert_eq!(r.x("tp"), 0x100, "rolw by 0x80 rotates by 0 (mod 32)");
}

#[test]
fn single_bit_and_byte_operations() {
    let r = run(
        "zbs",
        "li a0, 0xff; bclri a1, a0, 0; bseti a2, zero, 63; binvi a3, a0, 7; bexti a4, a0, 3; li t0, 67; bset a5, zero, t0
         li t1, 0x0100200003000040; orc.b a6, t1; rev8 a7, t1
         ecall",
    );
    assert_eq!(
        (r.x("a1"), r.x("a2"), r.x("a3"), r.x("a4")),
        (0xfe, MIN, 0x7f, 1)
    );
    assert_eq!(r.x("a5"), 8, "bset uses rs2 mod 64");
    assert_eq!(r.x("a6"), 0xff00_ff00_ff00_00ff);
    assert_eq!(r.x("a7"), 0x4000_0003_0020_0001);
}

#[test]
fn fp_csrs_and_counters() {
    let r = run(
        "csr",
        "li t0, 0xff; csrw fcsr, t0; csrr a0, fcsr; csrr a1, fflags; csrr a2, frm
         csrwi fflags, 1; csrr a3, fcsr; csrsi frm, 0; csrr a4, frm
         ecall",
    );
    assert_eq!((r.x("a0"), r.x("a1"), r.x("a2")), (0xff, 0x1f, 7));
    assert_eq!(r.x("a3"), 0xe1);
    assert_eq!(r.x("a4"), 7);
    for mode in [ExecMode::Jit, ExecMode::Interpreter] {
        let r = run_mode("time", "rdtime a5; li t0, 100000; 1: addi t0, t0, -1; bnez t0, 1b; rdtime a6; rdcycle a7; ecall", &[], mode);
        assert!(
            r.x("a6") > r.x("a5"),
            "time advances: {} then {}",
            r.x("a5"),
            r.x("a6")
        );
    }
}

#[test]
fn illegal_and_privileged_instructions_stop_with_their_bits() {
    let r = run("illegal", "li a0, 1; .word 0xffffffff; li a0, 2");
    assert_eq!(
        (r.ret, r.cpu.pc, r.cpu.tval, r.x("a0")),
        (RET_ILLEGAL, CODE + 4, 0xffff_ffff, 1)
    );
    let r = run("mret", "li a0, 1; mret");
    assert_eq!(
        (r.ret, r.cpu.pc, r.cpu.tval),
        (RET_ILLEGAL, CODE + 4, 0x3020_0073)
    );
    let r = run("csr_bad", "csrr a0, mstatus");
    assert_eq!(r.ret, RET_ILLEGAL);
    let r = run("csr_ro", "csrw cycle, zero");
    assert_eq!(r.ret, RET_ILLEGAL, "writing a read-only counter");
    let r = run("zero16", ".half 0; nop");
    assert_eq!((r.ret, r.cpu.pc, r.cpu.tval), (RET_ILLEGAL, CODE, 0));
    let r = run("ebreak", "nop; ebreak");
    assert_eq!((r.ret, r.cpu.pc), (RET_EBREAK, CODE + 4));
}

#[test]
fn a_fault_leaves_the_registers_of_earlier_instructions() {
    let r = run(
        "fault",
        "li a0, 1; li s0, 0x200000; li a1, 2; ld a2, 0(s0); li a0, 3; ecall",
    );
    assert_eq!(r.ret, RET_FAULT);
    assert_eq!((r.x("a0"), r.x("a1"), r.x("a2")), (1, 2, 0));
    assert_eq!(r.cpu.tval, 0x200000);
}

#[test]
fn floating_point_through_the_helpers() {
    let r = run(
        "fp",
        "li t0, 0x3ff8000000000000; fmv.d.x ft0, t0; fadd.d ft1, ft0, ft0; fmv.x.d a0, ft1
         li t1, 0x40490fdb; fmv.w.x ft2, t1; fmv.x.d a1, ft2; fcvt.w.s a2, ft2, rtz
         fcvt.d.s ft3, ft2; fcvt.l.d a3, ft3, rup
         fmv.d.x ft4, t0; fcvt.s.d ft5, ft4; fmv.x.w a4, ft5
         li t2, 0x7ff0000000000000; fmv.d.x ft6, t2; fsub.d ft7, ft6, ft6; fmv.x.d a5, ft7; csrr a6, fflags
         fdiv.d ft8, ft0, fa7; csrr a7, fflags
         fcvt.w.d s2, ft6, rtz; fclass.d s3, ft6; feq.d s4, ft0, ft0; flt.d s5, ft7, ft0
         li t3, 5; fcvt.d.w ft9, t3; fsqrt.d ft10, ft9; fmul.d ft11, ft10, ft10; fmv.x.d s6, ft11
         ecall",
    );
    assert_eq!(r.ret, RET_ECALL);
    assert_eq!(r.x("a0"), 0x4008_0000_0000_0000, "1.5 + 1.5 = 3.0");
    assert_eq!(r.x("a1"), 0xffff_ffff_4049_0fdb, "fmv.w.x NaN-boxes");
    assert_eq!(r.x("a2"), 3);
    assert_eq!(r.x("a3"), 4, "pi rounded up");
    assert_eq!(
        r.x("a4"),
        0x3fc0_0000,
        "fmv.x.w sign-extends the single's bits"
    );
    assert_eq!(
        r.x("a5"),
        0x7ff8_0000_0000_0000,
        "inf - inf is the canonical NaN"
    );
    assert_eq!(
        r.x("a6"),
        0x11,
        "and raises NV (NX accrued from the inexact conversions before)"
    );
    assert_eq!(r.x("a7"), 0x19, "1.5 / +0 raises DZ (fa7 is +0)");
    assert_eq!(r.x("s2"), 0x7fff_ffff, "fcvt.w.d of +inf saturates");
    assert_eq!(r.x("s3"), 1 << 7, "fclass: +inf");
    assert_eq!((r.x("s4"), r.x("s5")), (1, 0));
    assert_eq!(
        r.x("s6"),
        0x4014_0000_0000_0001,
        "sqrt(5)^2 rounds just above 5"
    );
}

#[test]
fn a_reserved_or_invalid_rounding_mode_is_an_illegal_instruction() {
    // rm = 5 in the instruction: fadd.d ft0, ft0, ft0 with funct3 101.
    let r = run("rm5", "li a0, 1; .word 0x02005053");
    assert_eq!((r.ret, r.cpu.pc), (RET_ILLEGAL, CODE + 4));
    // Dynamic rm with frm = 5.
    let r = run(
        "frm5",
        "li t0, 5; csrw frm, t0; fadd.d ft0, ft0, ft0, dyn; li a0, 1",
    );
    assert_eq!((r.ret, r.cpu.pc, r.x("a0")), (RET_ILLEGAL, CODE + 8, 0));
    let r = run(
        "frm_ok",
        "li t0, 4; csrw frm, t0; fadd.d ft0, ft0, ft0, dyn; li a0, 1; ecall",
    );
    assert_eq!((r.ret, r.x("a0")), (RET_ECALL, 1));
}
