//! x86_64 disassembly for logs (`in_asm`), with iced-x86's NASM formatter.

use accel_tcg::CodeReader;
use iced_x86::{Formatter, NasmFormatter};

/// The instruction at `pc` as NASM-syntax text and its length; `None` when it cannot be read
/// or decoded.
pub fn disassemble(pc: u64, code: &mut dyn CodeReader) -> Option<(String, u64)> {
    let instr = super::translate::fetch(code, pc).ok()??;
    let mut text = String::new();
    NasmFormatter::new().format(&instr, &mut text);
    Some((text, instr.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use accel_tcg::MemFault;

    struct Bytes(Vec<u8>);

    impl CodeReader for Bytes {
        fn read(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemFault> {
            let off = vaddr as usize - 0x1000;
            let src = self.0.get(off..off + buf.len()).ok_or(MemFault::Bus)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn formats_one_instruction_and_gives_its_length() {
        let mut code = Bytes([0x48, 0x01, 0xd8].into_iter().chain([0x90; 16]).collect());
        assert_eq!(
            disassemble(0x1000, &mut code),
            Some(("add rax,rbx".into(), 3))
        );
        let mut bad = Bytes(vec![0x06].into_iter().chain([0; 16]).collect());
        assert_eq!(disassemble(0x1000, &mut bad), None);
    }
}
