//! What the engine needs from a guest architecture: the frontend contract.
//!
//! A frontend (riscv64, x86_64) implements [`Guest`] for its CPU model. The engine owns the
//! loop, the block cache, the softmmu and code fetch; the frontend owns decoding, the meaning
//! of its CPU-state fields, page walks, and what to do with exceptions and `ExitTb` reasons.

use std::sync::Arc;

use ir::abi::EnvHeader;
use ir::{Builder, GlobalDef, Type};

/// The CPU state generated code runs on.
///
/// # Safety
/// Implementors are `#[repr(C)]` and start with an [`EnvHeader`]; every global the frontend
/// declares lies inside the struct. Generated code and the slow paths access the state
/// through a raw pointer to it.
pub unsafe trait CpuState: Send + 'static {
    /// The header at the start of the state.
    fn header(&self) -> &EnvHeader;
    /// The header, mutably.
    fn header_mut(&mut self) -> &mut EnvHeader;
}

/// The kind of a memory access, for page walks and faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A data load.
    Read,
    /// A data store.
    Write,
    /// An instruction fetch.
    Execute,
}

/// Permissions a page walk grants for a page, beyond the access that was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageProt {
    /// Loads are allowed.
    pub read: bool,
    /// Stores are allowed.
    pub write: bool,
    /// Fetches are allowed.
    pub execute: bool,
}

impl PageProt {
    /// Everything allowed (flat physical addressing, MMU off).
    pub const ALL: PageProt = PageProt {
        read: true,
        write: true,
        execute: true,
    };
}

/// A successful page walk: where the virtual page lives and what it allows in this MMU mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageMapping {
    /// Physical address of the page (page-aligned).
    pub phys_page: u64,
    /// What the page allows. Must include the access that was walked for.
    pub prot: PageProt,
    /// The mapping is global: it survives [`crate::Vcpu::flush_tlb_non_global`] (x86 global
    /// pages across CR3 loads). `false` for guests without the notion.
    pub global: bool,
}

/// Why a guest memory access failed; the frontend turns it into its architectural exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemFault {
    /// The page walk refused the access; the value is the frontend's own fault code.
    Page(u64),
    /// A naturally aligned access was required and the address was not.
    Misaligned,
    /// The physical address is neither RAM nor a device.
    Bus,
}

/// What the loop does after the frontend has handled an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keep running guest code.
    Continue,
    /// Return from [`crate::Vcpu::run`] with this frontend-defined code (a syscall in user
    /// mode, a halted or powered-off CPU in system mode).
    Return(u32),
}

/// The engine's view of one guest architecture.
pub trait Guest: Send + Sync + 'static {
    /// The CPU state.
    type Cpu: CpuState;

    /// The globals of the CPU state (guest registers and the pc).
    fn globals(&self) -> Arc<[GlobalDef]>;

    /// The type of guest virtual addresses (I32 for 32-bit guests).
    fn addr_type(&self) -> Type;

    /// The virtual pc of the next block and the CPU-mode flags that change how code at that pc
    /// translates (privilege level, address size, ...): the block-cache key besides the
    /// physical pc.
    fn block_key(&self, cpu: &Self::Cpu) -> (u64, u32);

    /// Byte offset in the CPU state of the pc that [`Guest::block_key`] returns, when the pc
    /// is such a field (it is for every guest tern has): indirect jumps then probe the jump
    /// cache inline instead of calling out of generated code. `None` (the default) keeps
    /// every lookup a call. Either way, an instruction that changes the block-key flags must
    /// end its block with an `exit_tb` (see `ir::abi`, "Indirect jumps").
    fn pc_offset(&self) -> Option<u32> {
        None
    }

    /// The MMU mode used for fetching code translated under `flags`.
    fn code_mmu_idx(&self, flags: u32) -> u8;

    /// Translates guest code at `pc` into `b`, at most `max_insns` instructions, reading code
    /// through `code`. Must emit an `InsnStart` per instruction and end every path with a
    /// terminal. When `code` fails for the first instruction, return `Err(fault)`; for a
    /// later one, end the block before it.
    fn translate(
        &self,
        pc: u64,
        flags: u32,
        code: &mut dyn CodeReader,
        b: &mut Builder,
        max_insns: u32,
    ) -> Result<(), MemFault>;

    /// Puts the state back to the start of the instruction whose `InsnStart` had `pc` and
    /// `extra` (after an exception in the middle of a block).
    fn restore_state(&self, cpu: &mut Self::Cpu, pc: u64, extra: u64);

    /// Translates the virtual page of `vaddr` for `access` in MMU mode `mmu_idx`, updating
    /// accessed/dirty bits as the architecture requires. Must not record an exception: the
    /// engine calls [`Guest::raise`] if the fault really happens.
    fn page_walk(
        &self,
        cpu: &mut Self::Cpu,
        vaddr: u64,
        access: Access,
        mmu_idx: u8,
    ) -> Result<PageMapping, MemFault>;

    /// Records the guest exception for `fault` at `vaddr` in the CPU state, to be taken by
    /// [`Guest::on_exception`] once the state is restored to the faulting instruction.
    fn raise(&self, cpu: &mut Self::Cpu, fault: MemFault, vaddr: u64, access: Access);

    /// A block returned through `ExitTb { reason }`.
    fn on_exit(&self, cpu: &mut Self::Cpu, reason: u32) -> Action;

    /// A recorded exception is to be taken (the state is at the faulting instruction).
    fn on_exception(&self, cpu: &mut Self::Cpu) -> Action;

    /// `exit_request` was seen (interrupts, stop requests): check what is pending.
    fn on_exit_request(&self, cpu: &mut Self::Cpu) -> Action;

    /// The instruction at `pc` as text and its length, for `in_asm` logs; `None` when it
    /// cannot be read or decoded.
    fn disassemble(&self, _pc: u64, _code: &mut dyn CodeReader) -> Option<(String, u64)> {
        None
    }
}

/// Guest code as the translator reads it.
pub trait CodeReader {
    /// Reads `buf.len()` bytes of code at virtual address `vaddr`.
    fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemFault>;
}
