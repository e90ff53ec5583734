//! "toy": a minimal guest architecture for testing the engine without a real frontend.
//!
//! Instructions are 8 bytes: opcode, rd, rs, unused, then a signed 32-bit immediate (little
//! endian). Eight 64-bit registers and a pc are globals. Memory is identity-mapped (physical =
//! virtual), except that virtual addresses from `FAULT_BASE` up fault. The only MMU mode is 0.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use accel_tcg::{Access, Action, CodeReader, CpuState, Guest, MemFault, PageMapping, PageProt};
use ir::abi::{EnvHeader, PAGE_MASK};
use ir::{BinOp, Builder, Cond, GlobalDef, Helper, HelperFlags, MemOp, Size, Type};

pub const LI: u8 = 1;
pub const ADDI: u8 = 2;
pub const ADD: u8 = 3;
pub const LD: u8 = 4;
pub const ST: u8 = 5;
pub const BNEZ: u8 = 6;
pub const JMP: u8 = 7;
pub const JR: u8 = 8;
pub const HALT: u8 = 9;
pub const LDW: u8 = 10;
pub const STW: u8 = 11;
/// Raises a "check" exception (through a MAY_RAISE helper) when rd is zero.
pub const CHK: u8 = 12;

/// Virtual addresses from here up fault.
pub const FAULT_BASE: u64 = 0x7000_0000;

/// `on_exit` reasons.
pub const EXIT_HALT: u32 = 1;
pub const EXIT_ILLEGAL: u32 = 2;

/// `run` return codes.
pub const RET_HALT: u32 = 1;
pub const RET_EXCEPTION: u32 = 100;
pub const RET_STOPPED: u32 = 3;
pub const RET_ILLEGAL: u32 = 4;

/// Exception kinds recorded in `ToyCpu::fault_kind`.
pub const FAULT_PAGE: u64 = 1;
pub const FAULT_MISALIGNED: u64 = 2;
pub const FAULT_BUS: u64 = 3;
pub const FAULT_CHECK: u64 = 4;

#[repr(C)]
pub struct ToyCpu {
    pub header: EnvHeader,
    pub regs: [u64; 8],
    pub pc: u64,
    pub fault_kind: u64,
    pub fault_addr: u64,
}

// SAFETY: repr(C) with the header first; the globals below are its fields.
unsafe impl CpuState for ToyCpu {
    fn header(&self) -> &EnvHeader {
        &self.header
    }
    fn header_mut(&mut self) -> &mut EnvHeader {
        &mut self.header
    }
}

impl ToyCpu {
    pub fn new(pc: u64) -> Box<ToyCpu> {
        Box::new(ToyCpu {
            header: EnvHeader::detached(),
            regs: [0; 8],
            pc,
            fault_kind: 0,
            fault_addr: 0,
        })
    }
}

fn offset_of_reg(i: usize) -> u32 {
    (std::mem::offset_of!(ToyCpu, regs) + 8 * i) as u32
}

/// `CHK`'s helper: raises when its argument is zero.
unsafe extern "C" fn check_helper(env: u64, value: u64, pc: u64, _: u64, _: u64, _: u64) -> u64 {
    if value == 0 {
        // SAFETY: env is the ToyCpu the block runs on.
        let cpu = unsafe { &mut *(env as *mut ToyCpu) };
        cpu.fault_kind = FAULT_CHECK;
        cpu.fault_addr = pc;
        cpu.header.unwind = 1;
    }
    0
}

static CHECK: Helper = Helper {
    name: "check",
    func: check_helper,
    flags: HelperFlags::MAY_RAISE,
};

/// The toy frontend. Counts what it is asked to do.
#[derive(Default)]
pub struct Toy {
    pub translations: AtomicU64,
    pub exit_requests: AtomicU64,
    /// When set, `on_exit_request` keeps running instead of returning.
    pub keep_running: Mutex<bool>,
}

impl Guest for Toy {
    type Cpu = ToyCpu;

    fn globals(&self) -> Arc<[GlobalDef]> {
        const NAMES: [&str; 8] = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"];
        let mut g: Vec<GlobalDef> = (0..8)
            .map(|i| GlobalDef {
                name: NAMES[i],
                ty: Type::I64,
                offset: offset_of_reg(i),
            })
            .collect();
        g.push(GlobalDef {
            name: "pc",
            ty: Type::I64,
            offset: std::mem::offset_of!(ToyCpu, pc) as u32,
        });
        Arc::from(g)
    }

    fn addr_type(&self) -> Type {
        Type::I64
    }

    fn block_key(&self, cpu: &ToyCpu) -> (u64, u32) {
        (cpu.pc, 0)
    }

    fn pc_offset(&self) -> Option<u32> {
        Some(std::mem::offset_of!(ToyCpu, pc) as u32)
    }

    fn code_mmu_idx(&self, _flags: u32) -> u8 {
        0
    }

    fn translate(
        &self,
        pc: u64,
        _flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault> {
        self.translations.fetch_add(1, Ordering::Relaxed);
        let reg = |b: &Builder, r: u8| b.global((r & 7) as usize);
        let pc_g = b.global(8);
        let mut pc = pc;
        for n in 0..max_insns {
            let mut raw = [0u8; 8];
            if let Err(fault) = code.read(pc, &mut raw) {
                if n == 0 {
                    return Err(fault);
                }
                b.movi(pc_g, pc);
                b.exit_tb(0);
                return Ok(());
            }
            let (op, rd, rs) = (raw[0], reg(b, raw[1]), reg(b, raw[2]));
            let imm = i32::from_le_bytes(raw[4..8].try_into().unwrap()) as i64 as u64;
            b.insn_start(pc, 0);
            let next = pc.wrapping_add(8);
            match op {
                LI => b.movi(rd, imm),
                ADDI => b.addi(rd, rs, imm),
                ADD => {
                    let rt = reg(b, raw[3]);
                    b.binary(BinOp::Add, rd, rs, rt)
                }
                LD | LDW | ST | STW => {
                    let addr = b.scratch(Type::I64);
                    b.addi(addr, rs, imm);
                    let size = if op == LD || op == ST {
                        Size::B64
                    } else {
                        Size::B32
                    };
                    if op == LD || op == LDW {
                        b.load(rd, addr, MemOp::unsigned(size), 0);
                    } else {
                        b.store(rd, addr, MemOp::unsigned(size), 0);
                    }
                }
                CHK => {
                    let pc_c = b.constant(Type::I64, pc);
                    b.call(&CHECK, &[ir::Temp::ENV, rd, pc_c], None);
                }
                BNEZ => {
                    let taken = b.new_label();
                    b.brcondi(Cond::Ne, rd, 0, taken);
                    b.movi(pc_g, next);
                    b.goto_tb(1);
                    b.set_label(taken);
                    b.movi(pc_g, pc.wrapping_add(imm));
                    b.goto_tb(0);
                    return Ok(());
                }
                JMP => {
                    b.movi(pc_g, pc.wrapping_add(imm));
                    b.goto_tb(0);
                    return Ok(());
                }
                JR => {
                    b.mov(pc_g, rd);
                    b.lookup_and_goto();
                    return Ok(());
                }
                HALT => {
                    b.movi(pc_g, next);
                    b.exit_tb(EXIT_HALT);
                    return Ok(());
                }
                _ => {
                    b.movi(pc_g, pc);
                    b.exit_tb(EXIT_ILLEGAL);
                    return Ok(());
                }
            }
            pc = next;
        }
        b.movi(pc_g, pc);
        b.goto_tb(0);
        Ok(())
    }

    fn restore_state(&self, cpu: &mut ToyCpu, pc: u64, _extra: u64) {
        cpu.pc = pc;
    }

    fn page_walk(
        &self,
        _cpu: &mut ToyCpu,
        vaddr: u64,
        _access: Access,
        _mmu_idx: u8,
    ) -> Result<PageMapping, MemFault> {
        if (FAULT_BASE..FAULT_BASE + 0x1000_0000).contains(&vaddr) {
            return Err(MemFault::Page(FAULT_PAGE));
        }
        Ok(PageMapping {
            phys_page: vaddr & PAGE_MASK,
            prot: PageProt::ALL,
            global: false,
        })
    }

    fn raise(&self, cpu: &mut ToyCpu, fault: MemFault, vaddr: u64, _access: Access) {
        cpu.fault_kind = match fault {
            MemFault::Page(_) => FAULT_PAGE,
            MemFault::Misaligned => FAULT_MISALIGNED,
            MemFault::Bus => FAULT_BUS,
        };
        cpu.fault_addr = vaddr;
    }

    fn on_exit(&self, _cpu: &mut ToyCpu, reason: u32) -> Action {
        match reason {
            EXIT_HALT => Action::Return(RET_HALT),
            EXIT_ILLEGAL => Action::Return(RET_ILLEGAL),
            _ => Action::Continue,
        }
    }

    fn on_exception(&self, _cpu: &mut ToyCpu) -> Action {
        Action::Return(RET_EXCEPTION)
    }

    fn on_exit_request(&self, _cpu: &mut ToyCpu) -> Action {
        self.exit_requests.fetch_add(1, Ordering::Relaxed);
        if *self.keep_running.lock().unwrap() {
            Action::Continue
        } else {
            Action::Return(RET_STOPPED)
        }
    }
}

/// Encodes one instruction.
pub fn insn(op: u8, rd: u8, rs: u8, imm: i32) -> [u8; 8] {
    let mut raw = [op, rd, rs, 0, 0, 0, 0, 0];
    raw[4..].copy_from_slice(&imm.to_le_bytes());
    raw
}

/// Encodes `ADD rd, rs, rt`.
pub fn add(rd: u8, rs: u8, rt: u8) -> [u8; 8] {
    [ADD, rd, rs, rt, 0, 0, 0, 0]
}

/// Assembles a program.
pub fn program(insns: &[[u8; 8]]) -> Vec<u8> {
    insns.iter().flatten().copied().collect()
}
