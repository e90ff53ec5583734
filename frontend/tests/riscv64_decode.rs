//! The riscv64 decoder and disassembler checked against GNU binutils.
//!
//! `tests/data/riscv64_all.s` holds every instruction tern decodes and every RV64C form. It is
//! assembled at test time with Debian's `riscv64-linux-gnu-as`; each 32-bit instruction must
//! decode and disassemble exactly as `objdump -M no-aliases` prints it, and each compressed one
//! must decode to the same fields as the base instruction written after it in the source.
//! Then every 16-bit word, and a sample of random 32-bit words, are compared with objdump's
//! verdict, and a few million more random words must simply not panic.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use frontend::riscv64::compressed::decode_compressed;
use frontend::riscv64::decode::{decode, decode_at};
use frontend::riscv64::disasm::{disassemble, mnemonic, ALL_OPCODES};
use frontend::riscv64::{Insn, Opcode};

const SOURCE: &str = include_str!("data/riscv64_all.s");
const APT: &str = "apt-get install -y --no-install-recommends binutils-riscv64-linux-gnu";
const MARCH: &str = "-march=rv64gc_zba_zbb_zbs";

/// One line of `objdump -d` output.
#[derive(Debug)]
struct Line {
    addr: u64,
    bytes: Vec<u8>,
    /// Mnemonic and operands, one space between, comments and symbols removed.
    text: String,
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install it with `{APT}`"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("objdump prints UTF-8")
}

/// Assembles `src` and returns objdump's view of its .text.
fn assemble(name: &str, src: &str) -> Vec<Line> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("riscv64_decode");
    std::fs::create_dir_all(&dir).unwrap();
    let s = dir.join(format!("{name}.s"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, src).unwrap();
    let (s, o) = (s.to_str().unwrap(), o.to_str().unwrap());
    run("riscv64-linux-gnu-as", &[MARCH, s, "-o", o]);
    let dump = run("riscv64-linux-gnu-objdump", &["-d", "-M", "no-aliases", o]);
    dump.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let mut parts = line.split('\t');
    let addr = u64::from_str_radix(parts.next()?.trim().strip_suffix(':')?, 16).ok()?;
    let hex = parts.next()?.trim();
    let word = u32::from_str_radix(hex, 16).ok()?;
    let bytes = word.to_le_bytes()[..hex.len() / 2].to_vec();
    let mut text = parts.collect::<Vec<_>>().join(" ");
    if let Some(i) = text.find(" #") {
        text.truncate(i);
    }
    if let Some(i) = text.find(" <") {
        text.truncate(i);
    }
    let mnem = text.split(' ').next().unwrap_or("");
    let is_jump = matches!(
        mnem,
        "beq" | "bne" | "blt" | "bge" | "bltu" | "bgeu" | "jal" | "c.j" | "c.beqz" | "c.bnez"
    );
    if is_jump {
        // objdump prints targets as bare hex.
        let cut = text.rfind([',', ' ']).unwrap() + 1;
        text = format!("{}0x{}", &text[..cut], &text[cut..]);
    }
    Some(Line {
        addr,
        bytes,
        text: text.trim().to_string(),
    })
}

/// The fields that must agree between a compressed instruction and its expansion.
fn fields(i: &Insn) -> (Opcode, u8, u8, u8, u8, i64, u16, u8) {
    (i.op, i.rd, i.rs1, i.rs2, i.rs3, i.imm, i.csr, i.rm)
}

/// Every RV64C mnemonic objdump uses (`c.nop` prints as `c.addi zero,0`).
const C_MNEMONICS: &[&str] = &[
    "c.addi4spn",
    "c.fld",
    "c.lw",
    "c.ld",
    "c.fsd",
    "c.sw",
    "c.sd",
    "c.addi",
    "c.addiw",
    "c.li",
    "c.addi16sp",
    "c.lui",
    "c.srli",
    "c.srai",
    "c.andi",
    "c.sub",
    "c.xor",
    "c.or",
    "c.and",
    "c.subw",
    "c.addw",
    "c.j",
    "c.beqz",
    "c.bnez",
    "c.slli",
    "c.fldsp",
    "c.lwsp",
    "c.ldsp",
    "c.jr",
    "c.mv",
    "c.ebreak",
    "c.jalr",
    "c.add",
    "c.fsdsp",
    "c.swsp",
    "c.sdsp",
];

#[test]
fn every_instruction_matches_binutils() {
    let lines = assemble("all", SOURCE);
    let mut bad = String::new();
    let mut seen_ops = HashSet::new();
    let mut seen_c = BTreeSet::new();
    let mut compressed = Vec::new();
    for l in &lines {
        if l.text.starts_with('.') {
            continue; // data: the raw HINT halfwords, checked below
        }
        let Some(insn) = decode_at(&l.bytes) else {
            writeln!(bad, "{:#x}: {} did not decode", l.addr, l.text).unwrap();
            continue;
        };
        assert_eq!(usize::from(insn.len), l.bytes.len(), "{}", l.text);
        if insn.len == 2 {
            seen_c.insert(l.text.split(' ').next().unwrap().to_string());
            compressed.push(insn);
            continue;
        }
        seen_ops.insert(insn.op);
        let mine = disassemble(&insn, l.addr);
        if mine != l.text {
            writeln!(bad, "{:#x}: objdump `{}`, tern `{mine}`", l.addr, l.text).unwrap();
        }
    }
    assert!(bad.is_empty(), "disagreements with objdump:\n{bad}");
    for op in ALL_OPCODES {
        assert!(
            seen_ops.contains(op),
            "{op:?} is not covered by the test source"
        );
    }
    for c in C_MNEMONICS {
        assert!(seen_c.contains(*c), "{c} is not covered by the test source");
    }

    // Compressed lines, and the raw HINT halfwords, carry their expansion after '#'.
    let mut expansions = String::from("\t.option norvc\n");
    let after_rvc = SOURCE.split(".option rvc").nth(1).expect("an rvc section");
    for line in after_rvc.lines() {
        let Some((code, exp)) = line.split_once('#') else {
            continue;
        };
        let code = code.trim();
        if let Some(hw) = code.strip_prefix(".2byte") {
            let hw = u16::from_str_radix(hw.trim().trim_start_matches("0x"), 16).unwrap();
            compressed.push(decode_compressed(hw).expect("HINTs decode"));
        } else if code.is_empty() {
            continue;
        }
        writeln!(expansions, "\t{}", exp.trim()).unwrap();
    }
    let expanded = assemble("expanded", &expansions);
    assert_eq!(expanded.len(), compressed.len());
    for (c, e) in compressed.iter().zip(&expanded) {
        let e_insn = decode_at(&e.bytes).unwrap();
        assert_eq!(
            fields(c),
            fields(&e_insn),
            "{:#06x} should expand to `{}`",
            c.raw,
            e.text
        );
        assert_eq!(c.to_string(), e_insn.to_string());
    }
}

/// objdump's text for a compressed instruction rewritten as the base instruction.
fn expand_text(text: &str) -> Option<String> {
    let (m, ops) = text.split_once(' ').unwrap_or((text, ""));
    let o: Vec<&str> = ops.split(',').collect();
    let base = m.strip_prefix("c.")?;
    Some(match base {
        "nop" => "addi zero,zero,0".into(),
        "ebreak" => "ebreak".into(),
        "addi" | "addiw" | "srli" | "srai" | "slli" | "andi" | "sub" | "xor" | "or" | "and"
        | "subw" | "addw" | "add" => format!("{base} {},{},{}", o[0], o[0], o[1]),
        // RV128's shift-by-64 spelling of the RV64 shift-by-zero HINTs.
        "slli64" | "srli64" | "srai64" => format!("{} {},{},0x0", &base[..4], o[0], o[0]),
        "addi16sp" => format!("addi sp,sp,{}", o[1]),
        "addi4spn" => format!("addi {},sp,{}", o[0], o[2]),
        "li" => format!("addi {},zero,{}", o[0], o[1]),
        "lui" => format!("lui {},{}", o[0], o[1]),
        "mv" => format!("add {},zero,{}", o[0], o[1]),
        "jr" => format!("jalr zero,0({})", o[0]),
        "jalr" => format!("jalr ra,0({})", o[0]),
        "j" => format!("jal zero,{}", o[0]),
        "beqz" => format!("beq {},zero,{}", o[0], o[1]),
        "bnez" => format!("bne {},zero,{}", o[0], o[1]),
        _ => format!("{} {ops}", base.strip_suffix("sp").unwrap_or(base)),
    })
}

/// Whether `w` is one of the 16-bit encodings the manual reserves but objdump still prints.
fn reserved_compressed(w: u16) -> bool {
    let (q, f3) = (w & 3, w >> 13);
    let rd = (w >> 7) & 31;
    let ci = ((w >> 7) & 0x20) | ((w >> 2) & 31);
    match (q, f3) {
        (0, 0) => (w >> 5) & 0xff == 0, // c.addi4spn nzuimm = 0
        (1, 1) => rd == 0,              // c.addiw rd = 0
        (1, 3) => ci == 0,              // c.lui / c.addi16sp zero immediate
        (2, 2) | (2, 3) => rd == 0,     // c.lwsp / c.ldsp rd = 0
        (2, 4) => w & 0x1000 == 0 && rd == 0 && (w >> 2) & 31 == 0, // c.jr zero
        _ => false,
    }
}

#[test]
fn every_16_bit_word_agrees_with_objdump() {
    let mut src = String::from("\t.option rvc\n");
    let words: Vec<u16> = (0..=u16::MAX).filter(|w| w & 3 != 3).collect();
    for w in &words {
        writeln!(src, "\t.insn {w:#06x}").unwrap();
    }
    let lines = assemble("all16", &src);
    assert_eq!(lines.len(), words.len());
    let mut bad = String::new();
    for (w, l) in words.iter().zip(&lines) {
        let mine = decode_compressed(*w);
        let theirs = if l.text.starts_with('.') || reserved_compressed(*w) {
            None
        } else {
            expand_text(&l.text)
        };
        match (mine, theirs) {
            (None, None) => {}
            (Some(i), Some(t)) => {
                assert_eq!((i.len, i.raw), (2, u32::from(*w)));
                let mine = disassemble(&i, l.addr);
                if mine != t {
                    writeln!(bad, "{w:#06x}: objdump `{}`, tern `{mine}`", l.text).unwrap();
                }
            }
            (m, _) => writeln!(bad, "{w:#06x}: objdump `{}`, tern {m:?}", l.text).unwrap(),
        }
    }
    assert!(bad.is_empty(), "disagreements with objdump:\n{bad}");
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

#[test]
fn random_32_bit_words_agree_with_objdump() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut words = Vec::new();
    while words.len() < 100_000 {
        let w = rng.next() | 3;
        // Only 32-bit encodings; the 48-bit-and-longer prefixes are covered elsewhere.
        if w & 0x1c != 0x1c {
            words.push(w);
        }
    }
    let mut src = String::from("\t.option norvc\n");
    for w in &words {
        writeln!(src, "\t.insn {w:#010x}").unwrap();
    }
    let lines = assemble("random32", &src);
    assert_eq!(lines.len(), words.len());
    let mut bad = String::new();
    let mut decoded = 0;
    for (w, l) in words.iter().zip(&lines) {
        let mine = decode(*w);
        let major = w & 0x7f;
        match mine {
            None if l.text.starts_with('.') => {}
            // fence/fence.i ignore fields objdump insists on being zero.
            Some(i) if l.text.starts_with('.') && major == 0x0f => {
                assert!(matches!(i.op, Opcode::Fence | Opcode::FenceI))
            }
            Some(i) if !l.text.starts_with('.') => {
                decoded += 1;
                // Compare mnemonics (objdump knows more CSR names than tern).
                let mine = disassemble(&i, l.addr).replace(",rm5", ",unknown");
                let mine = mine.replace(",rm6", ",unknown");
                let (mm, mo) = mine.split_once(' ').unwrap_or((&mine, ""));
                let (tm, to) = l.text.split_once(' ').unwrap_or((&l.text, ""));
                let csr = mnemonic(i.op).starts_with("csr");
                if mm != tm || (!csr && mo != to) {
                    writeln!(bad, "{w:#010x}: objdump `{}`, tern `{mine}`", l.text).unwrap();
                }
            }
            m => writeln!(bad, "{w:#010x}: objdump `{}`, tern {m:?}", l.text).unwrap(),
        }
    }
    assert!(bad.is_empty(), "disagreements with objdump:\n{bad}");
    assert!(decoded > 1000, "too few random words decoded: {decoded}");
}

#[test]
fn millions_of_random_words_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut n = 0u32;
    for k in 0..4_000_000u32 {
        let w = rng.next();
        if let Some(i) = decode(w) {
            assert_eq!((i.len, i.raw), (4, w));
            n += 1;
            if k % 64 == 0 {
                assert!(!disassemble(&i, 0x1000).is_empty());
            }
        }
        let _ = decode_compressed(w as u16);
        let _ = decode_at(&w.to_le_bytes());
    }
    assert!(n > 0);
}

#[test]
fn reserved_encodings_are_rejected() {
    // c.addi4spn nzuimm = 0 (every rd'), including the all-zero word.
    for rd in 0..8u16 {
        assert_eq!(decode_compressed(rd << 2), None);
    }
    for imm in 0..64u16 {
        let hi = (imm & 0x20) << 7;
        let lo = (imm & 0x1f) << 2;
        for rd in 0..32u16 {
            // c.addiw rd = 0
            if rd == 0 {
                assert_eq!(decode_compressed(0x2001 | hi | lo), None);
                // c.lwsp / c.ldsp rd = 0
                assert_eq!(decode_compressed(0x4002 | hi | lo), None);
                assert_eq!(decode_compressed(0x6002 | hi | lo), None);
            }
        }
    }
    for rd in 0..32u16 {
        // c.lui and c.addi16sp with a zero immediate
        assert_eq!(decode_compressed(0x6001 | rd << 7), None);
    }
    // c.jr x0
    assert_eq!(decode_compressed(0x8002), None);
    // 48-bit and 64-bit (and longer) prefixes
    for low in [0x1f, 0x3f, 0x5f, 0x7f, 0xff] {
        assert_eq!(decode(0x1234_5000 | low), None);
    }
    // W shifts with shamt[5] set
    for f in [0x0000_1000u32, 0x0000_5000, 0x4000_5000, 0x6000_5000] {
        let w = 0x0200_001b | f | (10 << 7) | (10 << 15);
        assert_eq!(decode(w), None, "{w:#010x}");
        assert!(decode(w & !0x0200_0000).is_some(), "{w:#010x}");
    }
    // FP rounding modes 5 and 6 decode (the translator raises at run time).
    for rm in 5..=7u32 {
        let i = decode(0x02c5_8553 | rm << 12).unwrap();
        assert_eq!((i.op, u32::from(i.rm)), (Opcode::FaddD, rm));
    }
}

/// Decode speed, in release: `cargo test --release -p frontend --test riscv64_decode --
/// --ignored --nocapture`.
#[test]
#[ignore = "timing; run explicitly in release"]
fn decode_speed() {
    let lines = assemble("speed", SOURCE);
    let words: Vec<u32> = lines
        .iter()
        .filter(|l| l.bytes.len() == 4 && !l.text.starts_with('.'))
        .map(|l| u32::from_le_bytes(l.bytes[..4].try_into().unwrap()))
        .collect();
    let halves: Vec<u16> = lines
        .iter()
        .filter(|l| l.bytes.len() == 2 && !l.text.starts_with('.'))
        .map(|l| u16::from_le_bytes([l.bytes[0], l.bytes[1]]))
        .collect();
    let rounds = 20_000;
    let t = std::time::Instant::now();
    let mut sink = 0u64;
    for _ in 0..rounds {
        for w in &words {
            sink += decode(std::hint::black_box(*w)).map_or(0, |i| i.imm as u64);
        }
    }
    let ns32 = t.elapsed().as_nanos() as f64 / (rounds * words.len()) as f64;
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for w in &halves {
            sink += decode_compressed(std::hint::black_box(*w)).map_or(0, |i| i.imm as u64);
        }
    }
    let ns16 = t.elapsed().as_nanos() as f64 / (rounds * halves.len()) as f64;
    println!(
        "decode: {ns32:.1} ns per 32-bit instruction ({} kinds), {ns16:.1} ns per compressed \
         ({} kinds) [{sink}]",
        words.len(),
        halves.len()
    );
}
