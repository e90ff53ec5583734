//! `LookupAndGoto`: the inline jump-cache probe, and the call to the engine's lookup when it
//! misses.
//!
//! Indirect jumps and returns are frequent (every `ret` of an x86 guest, every `jalr` of a
//! RISC-V one), and the engine's lookup is a call behind three dependent loads. The probe
//! does what the lookup's hit path does without leaving generated code: index the vCPU's jump
//! cache with [`ir::abi::jump_cache_index`] of the pc, and jump to the slot's code if its pc,
//! its flags (against the probe's `block_flags`) and its epoch (against the block cache's)
//! all match. Anything else calls the lookup as before. The pc comes from the host register
//! that holds the pc global when one does (a mispredicted `jmp rax` waits for this whole
//! chain, so a store-and-reload of the pc would cost), else from the CPU state.
//!
//! ```text
//!         mov rsi, pc
//!         mov rdi, [env.jump_probe]
//!         rcx = group(pc) | fold(pc) ; rcx = rcx * 32 + probe.slots
//!         cmp rsi, [rcx.pc] ; jne miss
//!         mov rax, [probe.block_flags] ; cmp rax, [rcx.flags] ; jne miss
//!         mov rax, [probe.epoch] ; mov rax, [rax] ; cmp rax, [rcx.epoch] ; jne miss
//!         mov rax, [rcx.code] ; test rax, rax ; jz miss ; jmp rax
//! miss:   lea rdi, [env] ; call [env.lookup] ; mov rdx, exit_code ; jmp rax
//! ```

use ir::abi::{offsets, JumpCacheSlot, JUMP_CACHE_ENTRIES, JUMP_CACHE_GROUP, PAGE_BITS};

use super::asm::{self, env_mem, mem, Alu, Asm, Cc, Sh};
use crate::regs::*;

const _: () = assert!(std::mem::size_of::<JumpCacheSlot>() == 1 << SLOT_BITS);
const SLOT_BITS: u8 = 5;
const GROUP_BITS: u8 = JUMP_CACHE_GROUP.trailing_zeros() as u8;
const GROUP_MASK: i32 = (JUMP_CACHE_ENTRIES / JUMP_CACHE_GROUP - 1) as i32;

/// Where the guest pc is when the block ends with `LookupAndGoto`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pc {
    /// In this host register (as well as in the CPU state).
    Reg(Reg),
    /// Only in the CPU state, at this offset.
    Env(u32),
}

/// Emits the lookup: the inline probe when the guest pc's location is known (`pc`), then the
/// call. Every guest global must already be in the CPU state; `exit_code` is the block's
/// `Lookup` exit code, which the miss stub expects in rdx.
pub(super) fn lookup_and_goto(a: &mut Asm, pc: Option<Pc>, exit_code: u64) {
    if let Some(pc) = pc {
        probe(a, pc);
    }
    asm::env_ptr(a, RDI);
    asm::call_mem(a, env_mem(offsets::LOOKUP));
    asm::mov_ri(a, RDX, exit_code);
    asm::jmp_reg(a, RAX);
}

/// The probe: jumps to the cached block on a hit, falls through on a miss.
pub(super) fn probe(a: &mut Asm, pc: Pc) {
    let miss = a.new_label();
    let u64_op = ir::MemOp::unsigned(ir::Size::B64);
    // rsi = pc (the hash below is `ir::abi::jump_cache_index`)
    match pc {
        Pc::Reg(r) => asm::mov_rr(a, true, RSI, r),
        Pc::Env(offset) => asm::load(a, u64_op, true, RSI, env_mem(offset)),
    }
    asm::load(a, u64_op, true, RDI, env_mem(offsets::JUMP_PROBE));
    // rcx = group: ((page ^ page >> 7 ^ page >> 14) & mask) << GROUP_BITS
    asm::mov_rr(a, true, RAX, RSI);
    asm::shift_ri(a, Sh::Shr, true, RAX, PAGE_BITS as u8);
    asm::mov_rr(a, true, RCX, RAX);
    asm::shift_ri(a, Sh::Shr, true, RCX, 7);
    asm::alu_rr(a, Alu::Xor, true, RCX, RAX);
    asm::shift_ri(a, Sh::Shr, true, RAX, 14);
    asm::alu_rr(a, Alu::Xor, true, RCX, RAX);
    asm::alu_ri(a, Alu::And, false, RCX, GROUP_MASK);
    asm::shift_ri(a, Sh::Shl, false, RCX, GROUP_BITS);
    // rcx |= pc & (GROUP - 1)
    asm::mov_rr(a, false, RAX, RSI);
    asm::alu_ri(a, Alu::And, false, RAX, JUMP_CACHE_GROUP as i32 - 1);
    asm::alu_rr(a, Alu::Or, false, RCX, RAX);
    // rcx = &slots[index]
    asm::shift_ri(a, Sh::Shl, false, RCX, SLOT_BITS);
    asm::alu_rm(a, Alu::Add, true, RCX, mem(RDI, offsets::PROBE_SLOTS));
    asm::alu_rm(a, Alu::Cmp, true, RSI, mem(RCX, offsets::SLOT_PC));
    asm::jcc(a, Cc::Ne, miss);
    asm::load(a, u64_op, true, RAX, mem(RDI, offsets::PROBE_BLOCK_FLAGS));
    asm::alu_rm(a, Alu::Cmp, true, RAX, mem(RCX, offsets::SLOT_FLAGS));
    asm::jcc(a, Cc::Ne, miss);
    asm::load(a, u64_op, true, RAX, mem(RDI, offsets::PROBE_EPOCH));
    asm::load(a, u64_op, true, RAX, mem(RAX, 0));
    asm::alu_rm(a, Alu::Cmp, true, RAX, mem(RCX, offsets::SLOT_EPOCH));
    asm::jcc(a, Cc::Ne, miss);
    asm::load(a, u64_op, true, RAX, mem(RCX, offsets::SLOT_CODE));
    asm::alu_rr(a, Alu::Test, true, RAX, RAX);
    asm::jcc(a, Cc::E, miss);
    asm::jmp_reg(a, RAX);
    a.bind(miss);
}
