//! The execution engine, specified through the "toy" guest: chaining, self-modifying code,
//! the softmmu paths, precise exceptions, code-buffer flushes and exit requests, each under
//! the JIT and under the interpreter.

mod toy;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use accel_tcg::{Engine, EngineConfig, ExecMode, RamAndBus, Vcpu};
use devices::bus::{Bus, BusDevice};
use toy::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const CODE: u64 = 0x1000;
const DATA: u64 = 0x8000;
const MMIO: u64 = 0x1000_0000;
const RAM_SIZE: usize = 4 << 20;

/// A device register file: remembers writes, answers reads with the last one, counts both.
#[derive(Default)]
struct Register {
    value: u64,
    reads: u32,
    writes: u32,
}

impl BusDevice for Register {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        self.reads += 1;
        let n = data.len().min(8);
        data[..n].copy_from_slice(&self.value.to_le_bytes()[..n]);
    }
    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        self.writes += 1;
        let mut v = [0u8; 8];
        v[..data.len().min(8)].copy_from_slice(&data[..data.len().min(8)]);
        self.value = u64::from_le_bytes(v);
    }
}

struct Machine {
    vcpu: Vcpu<Toy>,
    ram: GuestMemoryMmap,
    device: Arc<Mutex<Register>>,
}

fn machine(mode: ExecMode, code: &[u8], config: impl FnOnce(&mut EngineConfig)) -> Machine {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM_SIZE)]).unwrap();
    ram.write_slice(code, GuestAddress(CODE)).unwrap();
    let device = Arc::new(Mutex::new(Register::default()));
    let mut bus = Bus::new();
    bus.insert(device.clone(), MMIO, 0x1000).unwrap();
    let mut cfg = EngineConfig {
        mode,
        ..EngineConfig::default()
    };
    config(&mut cfg);
    let engine = Engine::new(
        Toy::default(),
        Arc::new(RamAndBus::new(ram.clone(), bus)),
        cfg,
    )
    .unwrap();
    Machine {
        vcpu: Vcpu::new(engine, ToyCpu::new(CODE)),
        ram,
        device,
    }
}

fn both_modes(test: impl Fn(ExecMode)) {
    test(ExecMode::Jit);
    test(ExecMode::Interpreter);
}

#[test]
fn a_counted_loop_stays_in_chained_code() {
    both_modes(|mode| {
        let code = program(&[
            insn(LI, 0, 0, 100_000),
            insn(LI, 1, 0, 0),
            // loop: r1 += 3; r0 -= 1; bnez r0, loop
            insn(ADDI, 1, 1, 3),
            insn(ADDI, 0, 0, -1),
            insn(BNEZ, 0, 0, -16),
            insn(HALT, 0, 0, 0),
        ]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
        assert_eq!(m.vcpu.cpu().regs[0], 0);
        assert_eq!(m.vcpu.cpu().regs[1], 300_000);
        assert_eq!(m.vcpu.cpu().pc, CODE + 6 * 8);
        let dispatches = m.vcpu.stats().dispatches;
        match mode {
            // Entry block, the loop block once before it links to itself, the exit path.
            ExecMode::Jit => assert!(dispatches < 10, "{dispatches} dispatcher entries"),
            ExecMode::Interpreter => assert!(dispatches >= 100_000, "{dispatches}"),
        }
    });
}

#[test]
fn indirect_jumps_find_their_block_through_the_lookup() {
    both_modes(|mode| {
        let code = program(&[
            insn(LI, 0, 0, 1000),
            insn(LI, 2, 0, (CODE + 2 * 8) as i32),
            // loop: r0 -= 1; if r0 == 0 goto done (via BNEZ to the jr) ; jr r2
            insn(ADDI, 0, 0, -1),
            insn(BNEZ, 0, 0, 16),
            insn(JMP, 0, 0, 16),
            insn(JR, 2, 0, 0),
            insn(HALT, 0, 0, 0),
        ]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
        assert_eq!(m.vcpu.cpu().regs[0], 0);
        if mode == ExecMode::Jit {
            assert!(
                m.vcpu.stats().dispatches < 100,
                "{} dispatcher entries",
                m.vcpu.stats().dispatches
            );
            // After the first round trips fill the jump cache, the inline probe finds the
            // loop block: 1000 `jr`s, a handful of lookup calls.
            assert!(
                m.vcpu.stats().lookup_calls < 10,
                "{} lookup calls",
                m.vcpu.stats().lookup_calls
            );
        }
    });
}

#[test]
fn code_written_to_a_translated_page_runs_its_new_version() {
    both_modes(|mode| {
        // The subroutine at CODE+0x100 sets r3 = 1. The main program runs it, then patches
        // its immediate to 2 and runs it again.
        let sub = CODE + 0x100;
        let mut code = program(&[
            insn(LI, 5, 0, 0),          // r5 = pass count
            insn(LI, 2, 0, sub as i32), // r2 = &sub
            insn(JR, 2, 0, 0),          // call sub (it jumps back to CODE + 0x18)
            insn(BNEZ, 5, 0, 0x28),     // second pass: done
            insn(LI, 4, 0, 2),          // new immediate
            insn(STW, 4, 2, 4),         // patch sub's imm32
            insn(LI, 5, 0, 1),
            insn(JMP, 0, 0, -0x28), // back to the call
            insn(HALT, 0, 0, 0),
        ]);
        code.resize(0x100, 0);
        code.extend(program(&[insn(LI, 3, 0, 1), insn(JMP, 0, 0, 0x18 - 0x108)]));
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
        assert_eq!(m.vcpu.cpu().regs[3], 2, "the patched instruction ran");
    });
}

#[test]
fn a_block_that_modifies_its_own_later_instruction_runs_the_new_one() {
    both_modes(|mode| {
        // One block: store a new LI over the instruction two slots ahead, then run it.
        let code = program(&[
            insn(LI, 2, 0, (CODE + 3 * 8 + 4) as i32), // r2 = &imm of insn 3
            insn(LI, 4, 0, 77),
            insn(STW, 4, 2, 0), // patch insn 3's immediate to 77
            insn(LI, 3, 0, 11), // insn 3: becomes LI r3, 77
            insn(HALT, 0, 0, 0),
        ]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
        assert_eq!(m.vcpu.cpu().regs[3], 77);
        let mut word = [0u8; 4];
        m.ram
            .read_slice(&mut word, GuestAddress(CODE + 3 * 8 + 4))
            .unwrap();
        assert_eq!(
            u32::from_le_bytes(word),
            77,
            "the store itself happened once"
        );
        assert!(m.vcpu.stats().invalidated_blocks >= 1);
    });
}

#[test]
fn loads_and_stores_hit_ram_miss_the_tlb_and_reach_devices() {
    both_modes(|mode| {
        let code = program(&[
            insn(LI, 1, 0, DATA as i32),
            insn(LI, 2, 0, 0x1234),
            insn(ST, 2, 1, 0),          // RAM store (TLB miss, then fills)
            insn(LD, 3, 1, 0),          // RAM load (hit)
            insn(ST, 2, 1, 0x1000 - 4), // crosses into the next page
            insn(LD, 4, 1, 0x1000 - 4),
            insn(LI, 5, 0, MMIO as i32),
            insn(ST, 3, 5, 0), // device write
            insn(LD, 6, 5, 0), // device read
            insn(HALT, 0, 0, 0),
        ]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
        let cpu = m.vcpu.cpu();
        assert_eq!(cpu.regs[3], 0x1234);
        assert_eq!(cpu.regs[4], 0x1234);
        assert_eq!(cpu.regs[6], 0x1234);
        assert_eq!(m.ram.read_obj::<u64>(GuestAddress(DATA)).unwrap(), 0x1234);
        assert_eq!(
            m.ram
                .read_obj::<u64>(GuestAddress(DATA + 0x1000 - 4))
                .unwrap(),
            0x1234
        );
        let dev = m.device.lock().unwrap();
        assert_eq!((dev.reads, dev.writes, dev.value), (1, 1, 0x1234));
    });
}

#[test]
fn a_fault_in_the_middle_of_a_block_leaves_exactly_the_earlier_instructions_done() {
    both_modes(|mode| {
        let code = program(&[
            insn(LI, 1, 0, 5),
            insn(LI, 2, 0, FAULT_BASE as i32),
            insn(ADDI, 3, 3, 1),
            insn(LD, 4, 2, 8), // faults
            insn(LI, 1, 0, 99),
            insn(HALT, 0, 0, 0),
        ]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_EXCEPTION);
        let cpu = m.vcpu.cpu();
        assert_eq!(cpu.pc, CODE + 3 * 8, "pc of the faulting load");
        assert_eq!(
            (cpu.fault_kind, cpu.fault_addr),
            (FAULT_PAGE, FAULT_BASE + 8)
        );
        assert_eq!(cpu.regs[1], 5);
        assert_eq!(cpu.regs[3], 1);
        assert_eq!(cpu.regs[4], 0);
    });
}

#[test]
fn a_helper_that_raises_reports_its_own_instruction() {
    both_modes(|mode| {
        let code = program(&[
            insn(LI, 1, 0, 1),
            insn(CHK, 1, 0, 0),
            insn(LI, 2, 0, 7),
            insn(CHK, 0, 0, 0),
            insn(LI, 2, 0, 8),
            insn(HALT, 0, 0, 0),
        ]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_EXCEPTION);
        let cpu = m.vcpu.cpu();
        assert_eq!(
            (cpu.pc, cpu.fault_kind, cpu.fault_addr),
            (CODE + 3 * 8, FAULT_CHECK, CODE + 3 * 8)
        );
        assert_eq!(cpu.regs[2], 7);
    });
}

#[test]
fn fetching_from_an_unmapped_page_is_a_guest_exception() {
    both_modes(|mode| {
        let code = program(&[insn(LI, 1, 0, FAULT_BASE as i32), insn(JR, 1, 0, 0)]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_EXCEPTION);
        assert_eq!(
            (m.vcpu.cpu().pc, m.vcpu.cpu().fault_kind),
            (FAULT_BASE, FAULT_PAGE)
        );
    });
}

#[test]
fn a_full_code_buffer_is_flushed_and_execution_goes_on() {
    // 5000 blocks of "ADDI r0, r0, 1; JMP +8", each a block of its own.
    let mut insns = Vec::new();
    for _ in 0..5000 {
        insns.push(insn(ADDI, 0, 0, 1));
        insns.push(insn(JMP, 0, 0, 8));
    }
    insns.push(insn(HALT, 0, 0, 0));
    let code = program(&insns);
    let mut m = machine(ExecMode::Jit, &code, |c| c.code_size = 128 << 10);
    assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
    assert_eq!(m.vcpu.cpu().regs[0], 5000);
    assert!(
        m.vcpu.engine().stats().flushes.load(Ordering::Relaxed) >= 1,
        "the buffer filled up"
    );
}

#[test]
fn an_exit_request_breaks_an_endless_chained_loop() {
    both_modes(|mode| {
        let code = program(&[insn(ADDI, 0, 0, 1), insn(JMP, 0, 0, -8)]);
        let mut m = machine(mode, &code, |_| {});
        let requester = m.vcpu.exit_requester();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            requester.request();
        });
        assert_eq!(m.vcpu.run().unwrap(), RET_STOPPED);
        t.join().unwrap();
        assert!(m.vcpu.cpu().regs[0] > 0);
        // Back to the loop; the pc is at an instruction boundary of the loop.
        assert!(m.vcpu.cpu().pc == CODE || m.vcpu.cpu().pc == CODE + 8);
    });
}

#[test]
fn illegal_instructions_return_to_the_frontend() {
    both_modes(|mode| {
        let code = program(&[insn(LI, 0, 0, 1), [0xff; 8]]);
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(m.vcpu.run().unwrap(), RET_ILLEGAL);
        assert_eq!(m.vcpu.cpu().pc, CODE + 8);
    });
}

#[test]
fn many_distinct_blocks_of_register_arithmetic_agree_between_jit_and_interpreter() {
    let mut insns = vec![insn(LI, 1, 0, 0x10_0000)];
    for i in 0..2000 {
        for k in 0..7 {
            insns.push(insn(
                ADDI,
                2 + (k % 4) as u8,
                2 + ((k + 1) % 4) as u8,
                i * 7 + k,
            ));
            insns.push(add(
                2 + ((k + 2) % 4) as u8,
                2 + (k % 4) as u8,
                2 + ((k + 3) % 4) as u8,
            ));
        }
        insns.push(insn(LD, 6, 1, 0));
        insns.push(insn(JMP, 0, 0, 8));
    }
    insns.push(insn(HALT, 0, 0, 0));
    let code = program(&insns);
    let mut results = Vec::new();
    for mode in [ExecMode::Interpreter, ExecMode::Jit] {
        let mut m = machine(mode, &code, |_| {});
        assert_eq!(
            m.vcpu.run().unwrap(),
            RET_HALT,
            "{mode:?}: pc {:#x}",
            m.vcpu.cpu().pc
        );
        results.push(m.vcpu.cpu().regs);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0][1], 0x10_0000);
}

#[test]
fn system_mode_never_links_blocks_across_guest_pages_but_stays_in_generated_code() {
    // A loop whose two halves sit on different pages.
    let mut code = program(&[
        insn(LI, 0, 0, 1000),
        insn(ADDI, 1, 1, 1),
        insn(JMP, 0, 0, 0x1000 - 8),
    ]);
    code.resize(0x1000 + 8, 0);
    code.extend(program(&[
        insn(ADDI, 0, 0, -1),
        insn(BNEZ, 0, 0, -0x1008),
        insn(HALT, 0, 0, 0),
    ]));
    for system in [true, false] {
        let mut m = machine(ExecMode::Jit, &code, |c| c.system = system);
        assert_eq!(m.vcpu.run().unwrap(), RET_HALT);
        assert_eq!(m.vcpu.cpu().regs[1], 1000);
        let stats = m.vcpu.stats();
        if system {
            // Both jumps of the loop cross a page: neither is linked (only the loop's exit to
            // HALT, on the same page, may be), and each goes through the inline jump-cache
            // probe of its goto_tb exit instead of the loop.
            assert!(stats.links <= 1, "no cross-page link: {stats:?}");
        } else {
            assert!(stats.links >= 2, "user mode links across pages: {stats:?}");
        }
        assert!(
            stats.dispatches < 10,
            "the loop stays in generated code: {stats:?}"
        );
    }
}

#[test]
fn a_store_from_another_vcpu_through_an_older_tlb_entry_still_invalidates_code() {
    both_modes(|mode| {
        // vCPU B's program (at 0x3000): a store into the page of A's code before A translated
        // it (so B's TLB maps that page for writes, unwatched), then, after A ran, a store that
        // patches A's instruction.
        let b_code = 0x3000u64;
        let mut code = program(&[insn(LI, 0, 0, 1), insn(HALT, 0, 0, 0)]);
        code.resize((b_code - CODE) as usize, 0);
        code.extend(program(&[
            insn(LI, 1, 0, (CODE + 0x800) as i32),
            insn(STW, 1, 1, 0),
            insn(HALT, 0, 0, 0),
            insn(LI, 1, 0, (CODE + 4) as i32),
            insn(LI, 2, 0, 9),
            insn(STW, 2, 1, 0),
            insn(HALT, 0, 0, 0),
        ]));
        let m = machine(mode, &code, |_| {});
        let engine = m.vcpu.engine().clone();
        let mut a = m.vcpu;
        let mut b = Vcpu::new(engine, ToyCpu::new(b_code));
        assert_eq!(
            b.run().unwrap(),
            RET_HALT,
            "B writes into A's (not yet code) page"
        );
        assert_eq!(a.run().unwrap(), RET_HALT);
        assert_eq!(a.cpu().regs[0], 1);
        assert_eq!(b.run().unwrap(), RET_HALT, "B patches A's immediate");
        a.cpu_mut().pc = CODE;
        assert_eq!(a.run().unwrap(), RET_HALT);
        assert_eq!(a.cpu().regs[0], 9, "A runs the patched instruction");
    });
}
