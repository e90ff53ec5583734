//! `-d in_asm,op,op_opt,out_asm`-style logs of translated blocks, as `info` records with target
//! `tern::log` (the binary shows them when asked, without decoration).

use std::fmt::Write;

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, NasmFormatter};

use crate::guest::{CodeReader, Guest};

pub(crate) const TARGET: &str = "tern::log";

/// Logs the guest instructions of the block at `pc` (which has `insns` instructions).
pub(crate) fn in_asm<G: Guest>(
    guest: &G,
    pc: u64,
    insn_pcs: &[(u64, u64)],
    code: &mut dyn CodeReader,
) {
    let mut text = format!("IN: {pc:#x}\n");
    for &(at, _) in insn_pcs {
        match guest.disassemble(at, code) {
            Some((insn, _)) => writeln!(text, "  {at:#018x}:  {insn}").unwrap(),
            None => writeln!(text, "  {at:#018x}:  ?").unwrap(),
        }
    }
    log::info!(target: TARGET, "{text}");
}

/// Logs an IR block under `title`.
pub(crate) fn ops(title: &str, pc: u64, block: &ir::Block) {
    log::info!(target: TARGET, "{title}: {pc:#x}\n{block}");
}

/// Logs host code that runs at `address`.
pub(crate) fn out_asm(pc: u64, address: usize, code: &[u8]) {
    let mut text = format!("OUT: [guest {pc:#x}] {} bytes\n", code.len());
    let mut decoder = Decoder::with_ip(64, code, address as u64, DecoderOptions::NONE);
    let mut formatter = NasmFormatter::new();
    let mut insn = Instruction::default();
    let mut line = String::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        line.clear();
        formatter.format(&insn, &mut line);
        writeln!(text, "  {:#x}:  {line}", insn.ip()).unwrap();
    }
    log::info!(target: TARGET, "{text}");
}
