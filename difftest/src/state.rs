//! The machine state a sequence starts from and ends in, the sandbox layout both sides map,
//! and the comparison of two end states (with the flags the SDM leaves undefined masked).

use std::fmt::Write as _;

/// Guest (and child-process) address of the code area: the sequence, then `int3` padding.
pub const CODE_ADDR: u64 = 0x10_0000;
/// Bytes of the code area (two pages, so blocks also meet a page boundary).
pub const CODE_SIZE: usize = 0x2000;
/// Address of the data page that memory operands point into (r15 holds it).
pub const DATA_ADDR: u64 = 0x20_0000;
/// Bytes of the data page.
pub const DATA_SIZE: usize = 0x1000;
/// Address of the stack page, right after the data page.
pub const STACK_ADDR: u64 = DATA_ADDR + DATA_SIZE as u64;
/// Bytes of the stack page.
pub const STACK_SIZE: usize = 0x1000;
/// Bytes of compared memory: the data page and the stack page, contiguous.
pub const MEM_SIZE: usize = DATA_SIZE + STACK_SIZE;
/// Whether `len` bytes of code starting at `rip` fit the code area.
pub fn code_fits(rip: u64, len: usize) -> bool {
    rip >= CODE_ADDR && rip - CODE_ADDR + len as u64 <= CODE_SIZE as u64
}

/// FS base on both sides: `fs:[d]` addresses the data page.
pub const FS_BASE: u64 = DATA_ADDR;
/// GS base on both sides: `gs:[d]` addresses the data page from its middle.
pub const GS_BASE: u64 = DATA_ADDR + 0x800;

/// Initial rsp: the middle of the stack page, so bounded pushes and pops stay inside.
pub const STACK_TOP: u64 = STACK_ADDR + 0x800;

/// RFLAGS arithmetic flags: CF PF AF ZF SF OF.
pub const ARITH_FLAGS: u64 = 0x8d5;
/// RFLAGS direction flag.
pub const DF: u64 = 1 << 10;
/// The RFLAGS bits compared: the arithmetic flags and DF (IF, RF and the reserved bit are
/// the host kernel's business).
pub const COMPARED_FLAGS: u64 = ARITH_FLAGS | DF;

/// Names of the general registers in hardware encoding order.
pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Where a sequence starts: rip, registers, flags, SSE state and the sandbox memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitState {
    /// Where the code is placed and starts, inside the code area (near the end of its first
    /// page at times, so blocks and instructions cross the page boundary).
    pub rip: u64,
    /// rax..r15 (rsp and r15 are set by the generator to the stack and data pages).
    pub regs: [u64; 16],
    /// Initial arithmetic flags and DF (other bits ignored).
    pub rflags: u64,
    /// xmm0..xmm15, low quadword first.
    pub xmm: [[u64; 2]; 16],
    /// MXCSR (every exception masked: an unmasked one would be #XM on the host).
    pub mxcsr: u32,
    /// The data page then the stack page ([`MEM_SIZE`] bytes).
    pub mem: Vec<u8>,
}

impl InitState {
    /// The plainest start: code at the start of the code area, rsp at the stack top, r15 at
    /// the data page, everything else zero, default MXCSR (for tests of the runners).
    #[cfg(test)]
    pub(crate) fn blank() -> InitState {
        let mut regs = [0u64; 16];
        regs[4] = STACK_TOP;
        regs[15] = DATA_ADDR;
        InitState {
            rip: CODE_ADDR,
            regs,
            rflags: 0,
            xmm: [[0; 2]; 16],
            mxcsr: 0x1f80,
            mem: vec![0; MEM_SIZE],
        }
    }
}

/// Undefined-set bits (above RFLAGS) for the x87 condition codes C0, C1, C2, C3.
pub const X87_C0: u64 = 1 << 32;
/// C1.
pub const X87_C1: u64 = 1 << 33;
/// C2.
pub const X87_C2: u64 = 1 << 34;
/// C3.
pub const X87_C3: u64 = 1 << 35;
/// All four.
pub const X87_CC: u64 = X87_C0 | X87_C1 | X87_C2 | X87_C3;

/// The FSW bits of the condition codes in an undefined set.
pub fn fsw_cc_mask(undefined: u64) -> u16 {
    let mut m = 0;
    for (bit, sw) in [
        (X87_C0, 1 << 8),
        (X87_C1, 1 << 9),
        (X87_C2, 1 << 10),
        (X87_C3, 1 << 14),
    ] {
        if undefined & bit != 0 {
            m |= sw;
        }
    }
    m
}

/// The x87 state, as FXSAVE lays it out. Every run starts from `fninit`'s state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct X87 {
    /// Control word.
    pub cw: u16,
    /// Status word (TOP included).
    pub sw: u16,
    /// Abridged tag word: bit i set when physical register i holds a value.
    pub tags: u8,
    /// ST(0)..ST(7), 80-bit values.
    pub st: [[u8; 10]; 8],
}

impl X87 {
    /// Reads the x87 part of an FXSAVE image (at least 160 bytes).
    pub fn from_fxsave(image: &[u8]) -> X87 {
        let mut st = [[0u8; 10]; 8];
        for (i, s) in st.iter_mut().enumerate() {
            s.copy_from_slice(&image[32 + 16 * i..42 + 16 * i]);
        }
        X87 {
            cw: u16::from_le_bytes([image[0], image[1]]),
            sw: u16::from_le_bytes([image[2], image[3]]),
            tags: image[4],
            st,
        }
    }

    /// Whether ST(i) holds a value.
    pub fn valid(&self, i: usize) -> bool {
        let top = (self.sw >> 11 & 7) as usize;
        self.tags >> ((top + i) % 8) & 1 != 0
    }
}

/// How a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The trailing `int3` (rip is just past it).
    Trap,
    /// An exception with this vector (0 #DE, 6 #UD, 13 #GP, 14 #PF); rip is the faulting
    /// instruction.
    Fault(u8),
}

/// The state at the end of a run, as both sides report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineState {
    /// rax..r15.
    pub regs: [u64; 16],
    /// Where it stopped.
    pub rip: u64,
    /// Full RFLAGS (only [`COMPARED_FLAGS`] are compared).
    pub rflags: u64,
    /// xmm0..xmm15.
    pub xmm: [[u64; 2]; 16],
    /// MXCSR.
    pub mxcsr: u32,
    /// The data and stack pages.
    pub mem: Vec<u8>,
    /// The x87 state.
    pub x87: X87,
    /// How the run stopped.
    pub end: End,
}

/// One field that differs between two states, formatted for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// `rax`, `rflags`, `xmm3`, `mem[0x200010]`, `end`, ...
    pub field: String,
    /// The first state's value.
    pub left: String,
    /// The second state's value.
    pub right: String,
}

/// Names the set bits of an RFLAGS value (`CF ZF DF`...).
pub fn flag_names(f: u64) -> String {
    const NAMES: [(u64, &str); 7] = [
        (1, "CF"),
        (1 << 2, "PF"),
        (1 << 4, "AF"),
        (1 << 6, "ZF"),
        (1 << 7, "SF"),
        (1 << 10, "DF"),
        (1 << 11, "OF"),
    ];
    let v: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

/// Most differing memory quadwords listed in one comparison.
const MAX_MEM_DIFFS: usize = 8;

/// The fields of `a` and `b` that differ. `undefined` holds the RFLAGS bits the SDM leaves
/// undefined at the point where the run stopped: they are not compared.
pub fn compare(a: &MachineState, b: &MachineState, undefined: u64) -> Vec<FieldDiff> {
    let mut d = Vec::new();
    let mut push =
        |field: String, left: String, right: String| d.push(FieldDiff { field, left, right });
    if a.end != b.end {
        push("end".into(), format!("{:?}", a.end), format!("{:?}", b.end));
    }
    if a.rip != b.rip {
        push(
            "rip".into(),
            format!("{:#x}", a.rip),
            format!("{:#x}", b.rip),
        );
    }
    for (i, name) in GPR_NAMES.iter().enumerate() {
        if a.regs[i] != b.regs[i] {
            push(
                (*name).into(),
                format!("{:#018x}", a.regs[i]),
                format!("{:#018x}", b.regs[i]),
            );
        }
    }
    let mask = COMPARED_FLAGS & !undefined;
    if (a.rflags ^ b.rflags) & mask != 0 {
        push(
            "rflags".into(),
            format!("{:#x} [{}]", a.rflags & mask, flag_names(a.rflags & mask)),
            format!("{:#x} [{}]", b.rflags & mask, flag_names(b.rflags & mask)),
        );
    }
    for i in 0..16 {
        if a.xmm[i] != b.xmm[i] {
            push(
                format!("xmm{i}"),
                format!("{:016x}_{:016x}", a.xmm[i][1], a.xmm[i][0]),
                format!("{:016x}_{:016x}", b.xmm[i][1], b.xmm[i][0]),
            );
        }
    }
    let (x, y) = (&a.x87, &b.x87);
    if x.cw != y.cw {
        push(
            "fcw".into(),
            format!("{:#06x}", x.cw),
            format!("{:#06x}", y.cw),
        );
    }
    let sw_mask = !fsw_cc_mask(undefined);
    if (x.sw ^ y.sw) & sw_mask != 0 {
        push(
            "fsw".into(),
            format!("{:#06x}", x.sw & sw_mask),
            format!("{:#06x}", y.sw & sw_mask),
        );
    }
    if x.tags != y.tags {
        push(
            "ftw".into(),
            format!("{:#04x}", x.tags),
            format!("{:#04x}", y.tags),
        );
    }
    for i in 0..8 {
        // Only registers holding values (on both sides: the tags are compared above).
        if x.valid(i) && y.valid(i) && x.st[i] != y.st[i] {
            let f = |v: &[u8; 10]| {
                let mut s = String::new();
                for b in v.iter().rev() {
                    let _ = write!(s, "{b:02x}");
                }
                s
            };
            push(format!("st{i}"), f(&x.st[i]), f(&y.st[i]));
        }
    }
    if a.mxcsr != b.mxcsr {
        push(
            "mxcsr".into(),
            format!("{:#06x}", a.mxcsr),
            format!("{:#06x}", b.mxcsr),
        );
    }
    let mut listed = 0;
    for (k, (x, y)) in a.mem.chunks(8).zip(b.mem.chunks(8)).enumerate() {
        if x != y {
            if listed == MAX_MEM_DIFFS {
                push("mem".into(), "...".into(), "...".into());
                break;
            }
            listed += 1;
            let q = |c: &[u8]| {
                let mut s = String::from("0x");
                for byte in c.iter().rev() {
                    let _ = write!(s, "{byte:02x}");
                }
                s
            };
            push(format!("mem[{:#x}]", DATA_ADDR + 8 * k as u64), q(x), q(y));
        }
    }
    if a.mem.len() != b.mem.len() {
        push(
            "mem.len".into(),
            a.mem.len().to_string(),
            b.mem.len().to_string(),
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> MachineState {
        MachineState {
            regs: [7; 16],
            rip: CODE_ADDR + 10,
            rflags: 0x202 | 0x41,
            xmm: [[1, 2]; 16],
            mxcsr: 0x1f80,
            mem: vec![0; MEM_SIZE],
            x87: X87 {
                cw: 0x37f,
                sw: 6 << 11,
                tags: 0xc0,
                st: [[1; 10]; 8],
            },
            end: End::Trap,
        }
    }

    #[test]
    fn x87_condition_codes_compare_only_where_defined_and_st_only_where_valid() {
        let a = state();
        let mut b = state();
        b.x87.sw |= 1 << 14; // C3
        assert!(compare(&a, &b, X87_C3).is_empty());
        assert_eq!(compare(&a, &b, X87_C0)[0].field, "fsw");
        let mut c = state();
        c.x87.st[2] = [0; 10]; // ST(2) is physical 0: empty
        assert!(compare(&a, &c, 0).is_empty());
        c.x87.st[1] = [0; 10]; // ST(1) is physical 7: full
        assert_eq!(compare(&a, &c, 0)[0].field, "st1");
    }

    #[test]
    fn identical_states_have_no_differences() {
        assert!(compare(&state(), &state(), 0).is_empty());
    }

    #[test]
    fn an_undefined_flag_is_not_compared_but_a_defined_one_is() {
        let a = state();
        let mut b = state();
        b.rflags ^= 1 << 4; // AF
        assert!(compare(&a, &b, 1 << 4).is_empty(), "AF masked");
        let d = compare(&a, &b, 1 << 11);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "rflags");
        assert!(d[0].left.contains("ZF") && !d[0].left.contains("AF"));
        assert!(d[0].right.contains("AF"));
    }

    #[test]
    fn bits_outside_the_compared_flags_never_count() {
        let a = state();
        let mut b = state();
        b.rflags ^= 1 << 9 | 1 << 16; // IF, RF
        assert!(compare(&a, &b, 0).is_empty());
    }

    #[test]
    fn each_differing_field_is_named_once() {
        let a = state();
        let mut b = state();
        b.regs[3] = 0;
        b.xmm[15][1] = 9;
        b.mxcsr |= 1;
        b.mem[0x1008] = 0xff;
        b.end = End::Fault(0);
        let names: Vec<String> = compare(&a, &b, 0).into_iter().map(|d| d.field).collect();
        assert_eq!(names, ["end", "rbx", "xmm15", "mxcsr", "mem[0x201008]"]);
    }

    #[test]
    fn memory_differences_are_listed_up_to_a_limit() {
        let a = state();
        let mut b = state();
        for k in 0..20 {
            b.mem[8 * k] = 1;
        }
        let d = compare(&a, &b, 0);
        assert_eq!(d.len(), MAX_MEM_DIFFS + 1);
        assert_eq!(d.last().unwrap().left, "...");
    }

    #[test]
    fn flag_names_list_the_set_bits() {
        assert_eq!(flag_names(0x8c1), "CF ZF SF OF");
        assert_eq!(flag_names(0), "-");
    }
}
