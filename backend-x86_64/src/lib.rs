//! Compiles verified `ir` translation blocks to x86_64 host code.
//!
//! - [`code_buffer`]: the dual-mapped (W^X) executable buffer; the only unsafe module.
//! - [`liveness`] and [`regalloc`]: a backward liveness pass, then a local linear allocator
//!   (QEMU-style) that keeps globals in registers while live and syncs them at block exits,
//!   helper calls and slow paths.
//! - `emit`: lowering per op, the softmmu fast path inline and its slow path out of line
//!   (dirty globals stored, globals in caller-saved registers reloaded after the call, other
//!   live caller-saved values saved), terminals with patchable `goto_tb` jumps.
//! - `emit::asm`: a small encoder emitting the shortest form of every instruction (REX only
//!   when needed, disp8/imm8, rel8 backward branches) into a vector reused across blocks.
//!
//! **Register conventions** (see [`regs`]): `r14` = CPU state + 128 (so the whole header and
//! the first 80 bytes of globals are in disp8 reach), `rsp` = the frame the entry trampoline
//! built (256 spill slots + 16 save slots, 16-byte aligned), `r11` = scratch; the 13 other
//! registers are allocated, globals preferably to callee-saved ones (they then survive calls
//! and slow paths untouched). Blocks have no prologue: the trampoline saves every
//! callee-saved register once, so chained blocks jump straight into each other.
//!
//! **Translation cost** (`cargo test --release -p backend-x86_64 translation_speed --
//! --ignored --nocapture`): about 65-70 ns per IR op on RISC-V-shaped blocks and 80-90 on
//! random ones (thread CPU time, on the shared 2-core development VM), 25 and 17.5 bytes of
//! code per op.

pub mod code_buffer;
mod emit;
mod features;
pub mod liveness;
pub mod regalloc;
pub mod regs;

use code_buffer::CodeBuffer;
pub use features::HostFeatures;
use regs::*;

/// Errors of the backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The code buffer has no room for the block: flush and retry.
    #[error("code buffer full")]
    BufferFull,
    /// The block needs more than the frame offers (spill slots, registers).
    #[error("block too complex: {0}")]
    TooComplex(String),
    /// Creating the code buffer failed.
    #[error("mapping the code buffer: {0}")]
    Mmap(#[from] std::io::Error),
}

/// Backend parameters.
#[derive(Debug, Clone, Copy)]
pub struct BackendConfig {
    /// Size of the code buffer in bytes.
    pub code_size: usize,
    /// Optional instructions the code may use.
    pub features: HostFeatures,
    /// The CPU-state offset of the guest pc that the engine's jump cache is keyed by: with it,
    /// `LookupAndGoto` probes the jump cache inline (see `emit/lookup.rs`); without it, every
    /// lookup calls out.
    pub pc_offset: Option<u32>,
    /// System emulation, where the engine never links a block to code on another guest page
    /// (the page's mapping may change) nor to a block spanning two pages: with `pc_offset`,
    /// each `goto_tb` slot also gets a probe stub ([`GotoSlot::probe_stub`]) that looks the
    /// target up in the jump cache inline, as `LookupAndGoto` does; the engine points such an
    /// unlinkable slot there instead of leaving generated code for every one of its jumps.
    pub cross_page_probe: bool,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            code_size: 32 << 20,
            features: HostFeatures::detect(),
            pc_offset: None,
            cross_page_probe: false,
        }
    }
}

/// A patchable `goto_tb` jump of a compiled block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GotoSlot {
    /// Executable address of the jump's 4-byte aligned rel32 field.
    pub field: usize,
    /// Executable address of the block's own exit stub for this slot (the unlinked target).
    pub exit_stub: usize,
    /// Executable address of the slot's probe stub (with
    /// [`BackendConfig::cross_page_probe`]): jumps to the target found in the jump cache,
    /// else continues at the exit stub.
    pub probe_stub: Option<usize>,
}

/// A block in the code buffer.
#[derive(Clone, Debug)]
pub struct CompiledBlock {
    /// Executable address of the first instruction.
    pub entry: usize,
    /// Length of the code in bytes (body and stubs).
    pub len: usize,
    /// The block's `GotoTb` slots, by slot number.
    pub goto_slots: [Option<GotoSlot>; 2],
}

/// The x86_64 JIT backend: the code buffer, the shared stubs and the compiler's buffers.
pub struct Backend {
    buf: CodeBuffer,
    /// What every block is compiled for (`code_size` aside).
    config: BackendConfig,
    /// Offset of the first byte after the shared stubs.
    stubs_end: usize,
    /// Bump pointer.
    used: usize,
    trampoline: usize,
    epilogue: usize,
    lookup_miss: usize,
    scratch: emit::Scratch,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("used", &self.used)
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

/// Code alignment of blocks.
const BLOCK_ALIGN: usize = 16;

/// The code that enters generated code ([`Backend::enter`] without the `Backend`). Valid while
/// the backend that made it lives.
#[derive(Debug, Clone, Copy)]
pub struct Trampoline(usize);

impl Trampoline {
    /// Runs code from `entry` until a block returns; returns the raw exit code.
    ///
    /// # Safety
    /// As for [`Backend::enter`], and the backend that made this trampoline is alive.
    pub unsafe fn enter(&self, env: *mut u8, entry: usize) -> u64 {
        // SAFETY: forwarded to the caller; the address is the backend's trampoline.
        unsafe { CodeBuffer::call_trampoline(self.0, env, entry) }
    }
}

impl Backend {
    /// Maps the code buffer and emits the shared stubs (entry trampoline, epilogue, lookup
    /// miss).
    pub fn new(config: BackendConfig) -> Result<Backend, BackendError> {
        let mut buf = CodeBuffer::new(config.code_size)?;
        let base = buf.rx_base();
        use emit::asm::{self, mem, Alu};
        let mut a = asm::Asm::new(base);
        // enter(env: rdi, entry: rsi) -> rax
        let saved = [RBP, RBX, R12, R13, R14, R15];
        for &r in &saved {
            if r >= 8 {
                a.push(0x41);
            }
            a.push(0x50 | (r & 7)); // push r
        }
        asm::alu_ri(&mut a, Alu::Sub, true, RSP, FRAME_SIZE);
        asm::lea(&mut a, true, ENV, mem(RDI, ENV_BIAS)); // the biased state pointer
        asm::jmp_reg(&mut a, RSI);
        let epilogue = a.offset();
        asm::alu_ri(&mut a, Alu::Add, true, RSP, FRAME_SIZE);
        for &r in saved.iter().rev() {
            if r >= 8 {
                a.push(0x41);
            }
            a.push(0x58 | (r & 7)); // pop r
        }
        a.push(0xc3); // ret
        let lookup_miss = a.offset();
        // The looking-up block left its own Lookup exit code in rdx.
        asm::mov_rr(&mut a, true, RAX, RDX);
        asm::jmp_abs(&mut a, base + epilogue);
        let bytes = &a.buf;
        if bytes.len() > buf.capacity() {
            return Err(BackendError::BufferFull);
        }
        buf.write(0, bytes);
        let stubs_end = bytes.len().next_multiple_of(BLOCK_ALIGN);
        Ok(Backend {
            buf,
            config,
            stubs_end,
            used: stubs_end,
            trampoline: base,
            epilogue: base + epilogue,
            lookup_miss: base + lookup_miss,
            scratch: emit::Scratch::default(),
        })
    }

    /// Compiles one block. `block_id` is the engine's id, returned in every ExitCode of this
    /// block. `Err(BufferFull)` when the code buffer has no room: flush and retry.
    pub fn compile(
        &mut self,
        block: &ir::Block,
        block_id: u32,
    ) -> Result<CompiledBlock, BackendError> {
        let offset = self.used.next_multiple_of(BLOCK_ALIGN);
        let base = self.buf.rx_base() + offset;
        let goto = emit::compile(
            block,
            block_id,
            base,
            self.epilogue,
            &self.config,
            &mut self.scratch,
        )?;
        let code = &self.scratch.asm.buf;
        if offset + code.len() > self.buf.capacity() {
            return Err(BackendError::BufferFull);
        }
        self.buf.write(offset, code);
        self.used = offset + code.len();
        let slot = |g: Option<emit::GotoOffsets>| {
            g.map(|g| GotoSlot {
                field: base + g.field,
                exit_stub: base + g.exit_stub,
                probe_stub: g.probe_stub.map(|p| base + p),
            })
        };
        log::trace!(
            "compiled block {block_id}: {} ops -> {} bytes at {base:#x}",
            block.ops.len(),
            code.len()
        );
        Ok(CompiledBlock {
            entry: base,
            len: code.len(),
            goto_slots: [slot(goto[0]), slot(goto[1])],
        })
    }

    /// Forgets every compiled block (their code may be overwritten by the next compiles).
    pub fn flush(&mut self) {
        self.used = self.stubs_end;
    }

    /// Runs code from `entry` until a block returns; returns the raw exit code
    /// (`ir::abi::ExitCode::decode`).
    ///
    /// # Safety
    /// `env` points to a CPU state starting with `EnvHeader` that is valid for every global,
    /// EnvLoad and EnvStore of the blocks it may reach, with valid slow-path and lookup
    /// functions and TLBs; `entry` is the entry of a block compiled since the last flush.
    pub unsafe fn enter(&self, env: *mut u8, entry: usize) -> u64 {
        // SAFETY: forwarded to the caller; the trampoline is ours.
        unsafe { CodeBuffer::call_trampoline(self.trampoline, env, entry) }
    }

    /// The entry trampoline as a value, for engines that keep the `Backend` behind a lock
    /// (compiling) while vCPU threads run code.
    pub fn trampoline(&self) -> Trampoline {
        Trampoline(self.trampoline)
    }

    /// Patches a GotoTb slot to jump straight to `target` (another block's entry). Atomic
    /// with respect to threads executing the code.
    pub fn link(&self, slot: &GotoSlot, target: usize) {
        let rel = target.wrapping_sub(slot.field + 4) as isize;
        assert!(rel == rel as i32 as isize, "link target out of rel32 range");
        self.buf
            .patch_u32(slot.field - self.buf.rx_base(), rel as i32 as u32);
    }

    /// Restores a slot to its exit path (the block returns `ExitKind::GotoTbN` again).
    pub fn unlink(&self, slot: &GotoSlot) {
        self.link(slot, slot.exit_stub);
    }

    /// The address the engine's lookup function returns when it has no block: jumping there
    /// returns `ExitKind::Lookup` to the loop, with the id of the block that looked up (the
    /// block passes its exit code in rdx).
    pub fn lookup_miss_address(&self) -> usize {
        self.lookup_miss
    }

    /// Bytes of the buffer in use (stubs included).
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Size of the code buffer.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Host code of a compiled block, for `-d out_asm` logs.
    pub fn code(&self, block: &CompiledBlock) -> &[u8] {
        self.buf.bytes(block.entry - self.buf.rx_base(), block.len)
    }

    /// The features the code is compiled for.
    pub fn features(&self) -> HostFeatures {
        self.config.features
    }
}

#[cfg(test)]
mod tests;
