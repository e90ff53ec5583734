//! The block loop: fetching across page ends, #UD exits, the static cc_op.

use super::*;
use crate::x86_64::flags::CcKind;
use ir::{Block, Op};

/// Code readable in `[start, end)` only.
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

impl CodeReader for Window {
    fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let off = vaddr.wrapping_sub(self.start) as usize;
        match self.bytes.get(off..off + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(MemFault::Page(vaddr)),
        }
    }
}

fn translate_at(pc: u64, code: &mut Window) -> Result<Block, MemFault> {
    let mut b = Builder::new(cpu::globals(), Type::I64);
    translate(pc, code, &mut b, 64, 0)?;
    let block = b.finish();
    ir::verify::verify(&block).unwrap();
    Ok(block)
}

/// The last page of a window ending at 0x2000 holds `tail` at its very end.
fn page_end(tail: &[u8]) -> (u64, Window) {
    let mut bytes = vec![0x90; 0x1000 - tail.len()];
    bytes.extend_from_slice(tail);
    let pc = 0x2000 - tail.len() as u64;
    (
        pc,
        Window {
            start: 0x1000,
            bytes,
        },
    )
}

#[test]
fn an_instruction_running_into_an_unreadable_page_faults_when_first() {
    // mov eax, imm32 (b8 + 4 bytes) with only 3 bytes readable.
    let (pc, mut code) = page_end(&[0xb8, 1, 2]);
    assert_eq!(
        translate_at(pc, &mut code).err(),
        Some(MemFault::Page(0x2000))
    );
}

#[test]
fn a_block_stops_before_an_instruction_it_cannot_fetch_whole() {
    let (pc, mut code) = page_end(&[0x90, 0xb8, 1, 2]);
    let block = translate_at(pc, &mut code).unwrap();
    assert_eq!(block.insn_starts().len(), 1);
}

#[test]
fn a_short_instruction_at_a_page_end_needs_no_bytes_beyond_it() {
    let (pc, mut code) = page_end(&[0x48, 0x01, 0xd8]); // add rax, rbx
    let block = translate_at(pc, &mut code).unwrap();
    assert_eq!(block.insn_starts(), vec![(pc, u64::MAX)]);
    assert!(matches!(block.ops.last(), Some(Op::GotoTb { slot: 0 })));
}

#[test]
fn undecodable_bytes_and_unimplemented_instructions_exit_with_ud() {
    for bytes in [&[0x0f, 0xff][..], &[0x0f, 0x01, 0xd0], &[0x06]] {
        let mut code = Window {
            start: 0x1000,
            bytes: bytes.iter().copied().chain([0x90; 16]).collect(),
        };
        let block = translate_at(0x1000, &mut code).unwrap();
        assert!(
            matches!(block.ops.last(), Some(Op::ExitTb { reason: EXIT_UD })),
            "{bytes:x?}"
        );
    }
}

#[test]
fn the_static_cc_op_rides_in_insn_start_and_is_written_once() {
    // cmp rax, rbx; cmp rax, rcx; jb ...
    let mut code = Window {
        start: 0x1000,
        bytes: [0x48, 0x39, 0xd8, 0x48, 0x39, 0xc8, 0x72, 0x00]
            .into_iter()
            .chain([0x90; 16])
            .collect(),
    };
    let block = translate_at(0x1000, &mut code).unwrap();
    let sub64 = CcOp::new(CcKind::Sub, 3).encode();
    assert_eq!(
        block.insn_starts(),
        vec![(0x1000, u64::MAX), (0x1003, sub64), (0x1006, sub64)]
    );
    let cc_op = Temp(1 + cpu::CC_OP_GLOBAL as u32);
    let writes = block
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Mov { dst, .. } if *dst == cc_op))
        .count();
    assert_eq!(writes, 1);
    assert!(
        !block.ops.iter().any(|op| matches!(op, Op::Call { .. })),
        "jb compares directly"
    );
}

#[test]
fn conditions_after_inc_dec_shifts_and_carry_chains_need_no_flags_helper() {
    for (what, bytes) in [
        // (inc and dec keep CF: after a cmp, they take it straight from the cmp's values.)
        (
            "cmp; dec ecx; jl",
            &[0x39, 0xd8, 0xff, 0xc9, 0x7c, 0x00][..],
        ),
        ("cmp; inc eax; jo", &[0x39, 0xd8, 0xff, 0xc0, 0x70, 0x00]),
        (
            "cmp; inc eax; adc ebx, ecx",
            &[0x39, 0xd8, 0xff, 0xc0, 0x11, 0xcb, 0xeb, 0x00],
        ),
        ("shl eax, 1; jc", &[0xd1, 0xe0, 0x72, 0x00]),
        ("sar eax, 1; jc", &[0xd1, 0xf8, 0x72, 0x00]),
        (
            "add; adc; adc",
            &[0x01, 0xd8, 0x11, 0xd1, 0x11, 0xfe, 0xeb, 0x00],
        ),
        (
            "sub; sbb; sbb",
            &[0x29, 0xd8, 0x19, 0xd1, 0x19, 0xfe, 0xeb, 0x00],
        ),
    ] {
        let mut code = Window {
            start: 0x1000,
            bytes: bytes.iter().copied().chain([0x90; 16]).collect(),
        };
        let block = translate_at(0x1000, &mut code).unwrap();
        assert!(
            !block.ops.iter().any(|op| matches!(op, Op::Call { .. })),
            "{what}: the condition compares the lazy values directly"
        );
    }
}
