//! Tests of `tcg_sys`: each system instruction performed on a CPU state, as the SDM says.
//!
//! Every test builds a small machine ([`Rig`]: 4 MiB of RAM, a port bus with a [`Probe`]
//! device, one or two local APICs), puts a CPU in the mode the instruction is specified for,
//! performs one [`SysInsn`] and checks what the architecture says must have happened, and
//! what must not.

use super::*;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use accel_kvm::regs::{BootCpuState, Segment as BootSegment};
use devices::apic::lapic::{LocalApic, REG_LVT_TIMER, REG_TPR};
use devices::apic::VcpuKicker;
use devices::bus::BusDevice;
use devices::clock::{Clock, ManualClock};
use frontend::x86_64::cpu::RSI;
use frontend::x86_64::sys::cr::{CR0_ET, CR0_PG, CR0_WP, CR4_PAE};
use frontend::x86_64::sys::mmu::{PTE_P, PTE_PS, PTE_RW, PTE_US};
use frontend::x86_64::sys::msr::{
    APIC_BASE_EN, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, MSR_FMASK, MSR_FS_BASE, MSR_GS_BASE,
    MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_STAR, MSR_TSC, MSR_TSC_AUX,
};
use frontend::x86_64::sys::seg::{ATTR_DPL_SHIFT, ATTR_L, ATTR_P};
use frontend::x86_64::sys::{TableReg, BP, OF};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::x86_64::boot::{BOOT_CS, BOOT_DS, BOOT_TSS, GDT_CODE32, GDT_CODE64, GDT_DATA, GDT_TSS};
use crate::x86_64::phys_mem::RamPhysMem;
use crate::x86_64::tcg_boot;

/// rbx, rdi (the rest come from `frontend::x86_64::cpu`).
const RBX: usize = 3;
const RDI: usize = 7;

/// The TSC frequency of the test machine: 1 GHz, one tick a nanosecond.
const HZ: u64 = 1_000_000_000;
/// RAM size.
const RAM: usize = 4 << 20;
/// The 4-level paging structures of [`long_mode_cpu`].
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
/// Where a test's GDT lives.
const GDT: u64 = 0x8000;
/// Scratch memory for operands and string I/O.
const BUF: u64 = 0x1_0000;
/// A stack.
const STACK: u64 = 0x2_0000;
/// The probe's two port ranges: one an immediate can name, one above 255 (DX only).
const PORT_LO: u16 = 0x40;
const PORT_HI: u16 = 0x1f0;
/// The first byte the probe returns.
const FIRST: u8 = 0xa1;

/// A port device that answers reads with a running byte counter (so the order and width of
/// reads show in what the CPU got) and records every write (port, bytes).
struct Probe {
    next: u8,
    writes: Vec<(u16, Vec<u8>)>,
}

impl BusDevice for Probe {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        for b in data {
            *b = self.next;
            self.next = self.next.wrapping_add(1);
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        self.writes.push(((base + offset) as u16, data.to_vec()));
    }
}

/// Nobody to kick: the tests look at the APICs themselves.
struct NoKick;

impl VcpuKicker for NoKick {
    fn kick(&self, _cpu: usize) {}
}

/// What `perform` borrows: RAM, the port bus, the APIC bus and the TSC.
struct Rig {
    ram: GuestMemoryMmap,
    pio: Bus,
    apic: Arc<ApicBus>,
    tsc: Tsc,
    probe: Arc<Mutex<Probe>>,
    cpus: u32,
    cpu_index: usize,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_cpus(1)
    }

    fn with_cpus(cpus: usize) -> Rig {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
        let probe = Arc::new(Mutex::new(Probe {
            next: FIRST,
            writes: Vec::new(),
        }));
        let mut pio = Bus::new();
        pio.insert(probe.clone(), u64::from(PORT_LO), 8).unwrap();
        pio.insert(probe.clone(), u64::from(PORT_HI), 8).unwrap();
        let clock = Arc::new(ManualClock::new());
        let tsc = Tsc::new(HZ, clock.now()).unwrap();
        let lapics = (0..cpus)
            .map(|i| {
                let clock: Arc<dyn Clock> = clock.clone();
                Arc::new(Mutex::new(LocalApic::new(i as u8, i == 0, clock, tsc)))
            })
            .collect();
        let apic = ApicBus::new(lapics, Arc::new(NoKick)).unwrap();
        Rig {
            ram,
            pio,
            apic,
            tsc,
            probe,
            cpus: cpus as u32,
            cpu_index: 0,
        }
    }

    /// Performs `op` (an instruction of `len` bytes) on `cpu`.
    fn perform(&self, cpu: &mut X86Cpu, op: SysOp, len: u8) -> Result<TlbFlush, Event> {
        let mut mem = RamPhysMem(&self.ram);
        let mut env = SysEnv {
            mem: &mut mem,
            pio: &self.pio,
            apic: &self.apic,
            cpu_index: self.cpu_index,
            cpus: self.cpus,
            tsc: self.tsc,
            tsc_hz: HZ,
        };
        perform(cpu, SysInsn { op, len }, &mut env)
    }

    fn probe(&self) -> MutexGuard<'_, Probe> {
        self.probe.lock().unwrap()
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.ram.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    fn write(&self, addr: u64, data: &[u8]) {
        self.ram.write_slice(data, GuestAddress(addr)).unwrap();
    }

    /// The guest's TSC now, as `rdtsc` would read it on `cpu`.
    fn guest_tsc(&self, cpu: &X86Cpu) -> u64 {
        self.tsc
            .ticks_at(Instant::now())
            .wrapping_add(cpu.sys.msrs.tsc_offset)
    }
}

/// The #GP(0) a fault comes back as.
fn gp0() -> Event {
    Exception::gp(0).into()
}

/// A CPU in 64-bit mode at CPL 0: 4-level paging identity-mapping the first GiB in 2 MiB
/// pages (present, writable, user: so a CPL 3 test reaches its operands), CS the boot
/// GDT's 64-bit code segment (selector 0x10), flat data segments.
fn long_mode_cpu(rig: &Rig) -> Box<X86Cpu> {
    rig.ram
        .write_obj(PDPT | PTE_P | PTE_RW | PTE_US, GuestAddress(PML4))
        .unwrap();
    rig.ram
        .write_obj(PD | PTE_P | PTE_RW | PTE_US, GuestAddress(PDPT))
        .unwrap();
    for i in 0..512u64 {
        let e = i << 21 | PTE_P | PTE_RW | PTE_US | PTE_PS;
        rig.ram.write_obj(e, GuestAddress(PD + 8 * i)).unwrap();
    }
    let boot = BootCpuState {
        rip: 0x20_0000,
        cr0: CR0_PE | CR0_ET | CR0_WP | CR0_PG,
        cr3: PML4,
        cr4: CR4_PAE,
        efer: EFER_LME | EFER_LMA,
        cs: BootSegment::from_gdt_entry(BOOT_CS, GDT_CODE64),
        data: BootSegment::from_gdt_entry(BOOT_DS, GDT_DATA),
        tr: BootSegment::from_gdt_entry(BOOT_TSS, GDT_TSS),
        ..Default::default()
    };
    let mut cpu = X86Cpu::new(0);
    tcg_boot::apply(&boot, &mut cpu);
    assert!(cpu.sys.in_64bit_mode());
    cpu
}

/// A CPU in flat 32-bit protected mode at CPL 0, paging off (the PVH entry state).
fn protected_cpu() -> Box<X86Cpu> {
    let boot = BootCpuState {
        rip: 0x10_0000,
        cr0: CR0_PE | CR0_ET,
        cs: BootSegment::from_gdt_entry(BOOT_CS, GDT_CODE32),
        data: BootSegment::from_gdt_entry(BOOT_DS, GDT_DATA),
        tr: BootSegment::from_gdt_entry(BOOT_TSS, GDT_TSS),
        ..Default::default()
    };
    let mut cpu = X86Cpu::new(0);
    tcg_boot::apply(&boot, &mut cpu);
    assert!(!cpu.sys.long_mode());
    cpu
}

/// A CPU in real mode (the RESET state), CS = 0x0100 (base 0x1000) and IP 0x0010, so `rip`
/// holds the linear 0x1010.
fn real_mode_cpu() -> Box<X86Cpu> {
    let mut cpu = X86Cpu::new(0x1010);
    let cs = cpu.sys.seg_mut(Segment::Cs);
    cs.selector = 0x100;
    cs.base = 0x1000;
    assert_eq!(cpu.sys.cr0 & CR0_PE, 0);
    cpu
}

// ---------------------------------------------------------------------------------------
// in / out

#[test]
fn in_of_one_or_two_bytes_keeps_the_rest_of_rax_and_four_bytes_zero_extends() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RAX] = 0x1122_3344_5566_7788;

    // in al, 0x40: the probe answers 0xa1.
    rig.perform(
        &mut cpu,
        SysOp::In {
            port: Port::Imm(PORT_LO as u8),
            size: 1,
        },
        2,
    )
    .unwrap();
    assert_eq!(cpu.regs[RAX], 0x1122_3344_5566_77a1);
    assert_eq!(cpu.rip, 0x20_0002);

    // in ax, dx (a port above 255): 0xa2, 0xa3.
    cpu.regs[RDX] = 0xdead_0000 | u64::from(PORT_HI + 2);
    rig.perform(
        &mut cpu,
        SysOp::In {
            port: Port::Dx,
            size: 2,
        },
        2,
    )
    .unwrap();
    assert_eq!(cpu.regs[RAX], 0x1122_3344_5566_a3a2, "only ax changes");

    // in eax, dx: a 32-bit destination clears bits 63:32.
    rig.perform(
        &mut cpu,
        SysOp::In {
            port: Port::Dx,
            size: 4,
        },
        1,
    )
    .unwrap();
    assert_eq!(cpu.regs[RAX], 0x0000_0000_a7a6_a5a4);
    assert_eq!(cpu.rip, 0x20_0005);
}

#[test]
fn in_from_a_port_with_nothing_behind_it_reads_all_ones() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RAX] = 0x1122_3344_5566_7788;
    rig.perform(
        &mut cpu,
        SysOp::In {
            port: Port::Imm(0x80),
            size: 1,
        },
        2,
    )
    .unwrap();
    assert_eq!(cpu.regs[RAX], 0x1122_3344_5566_77ff);
    cpu.regs[RDX] = 0x9999;
    rig.perform(
        &mut cpu,
        SysOp::In {
            port: Port::Dx,
            size: 2,
        },
        1,
    )
    .unwrap();
    assert_eq!(cpu.regs[RAX], 0x1122_3344_5566_ffff);
    rig.perform(
        &mut cpu,
        SysOp::In {
            port: Port::Dx,
            size: 4,
        },
        1,
    )
    .unwrap();
    assert_eq!(cpu.regs[RAX], 0xffff_ffff);
    assert_eq!(rig.probe().next, FIRST, "the probe was not read");
}

#[test]
fn out_writes_the_low_bytes_of_rax_to_the_port() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RAX] = 0x1122_3344_5566_7788;
    let out = |cpu: &mut X86Cpu, port, size| {
        rig.perform(cpu, SysOp::Out { port, size }, 1).unwrap();
    };
    out(&mut cpu, Port::Imm(PORT_LO as u8 + 1), 1);
    cpu.regs[RDX] = u64::from(PORT_HI + 2);
    out(&mut cpu, Port::Dx, 2);
    cpu.regs[RDX] = u64::from(PORT_HI);
    out(&mut cpu, Port::Dx, 4);
    // Nothing at the port: the write is dropped and the instruction completes.
    cpu.regs[RDX] = 0x9999;
    out(&mut cpu, Port::Dx, 4);
    assert_eq!(
        rig.probe().writes,
        vec![
            (PORT_LO + 1, vec![0x88]),
            (PORT_HI + 2, vec![0x88, 0x77]),
            (PORT_HI, vec![0x88, 0x77, 0x66, 0x55]),
        ]
    );
    assert_eq!(cpu.rip, 0x20_0004);
    assert_eq!(cpu.regs[RAX], 0x1122_3344_5566_7788, "rax is only read");
}

// ---------------------------------------------------------------------------------------
// ins / outs

fn rep_insb(addr_bits: u8) -> SysOp {
    SysOp::Ins {
        size: 1,
        rep: true,
        addr_bits,
    }
}

fn rep_outsb(addr_bits: u8) -> SysOp {
    SysOp::Outs {
        size: 1,
        rep: true,
        addr_bits,
        seg: Segment::Ds as u8,
    }
}

#[test]
fn rep_insb_with_df_clear_stores_rcx_bytes_upward_from_rdi() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    rig.write(BUF - 1, &[0xcc; 8]);
    cpu.regs[RDI] = BUF;
    cpu.regs[RCX] = 5;
    cpu.regs[RDX] = u64::from(PORT_LO);
    assert_eq!(rig.perform(&mut cpu, rep_insb(64), 2), Ok(TlbFlush::None));
    assert_eq!(
        rig.read(BUF - 1, 7),
        [0xcc, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xcc]
    );
    assert_eq!((cpu.regs[RDI], cpu.regs[RCX]), (BUF + 5, 0));
    assert_eq!(cpu.rip, 0x20_0002);
}

#[test]
fn rep_insb_with_df_set_stores_downward_from_rdi() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.set_rflags(RFLAGS_DF | 2);
    rig.write(BUF - 1, &[0xcc; 8]);
    cpu.regs[RDI] = BUF + 4;
    cpu.regs[RCX] = 5;
    cpu.regs[RDX] = u64::from(PORT_LO);
    rig.perform(&mut cpu, rep_insb(64), 2).unwrap();
    assert_eq!(
        rig.read(BUF - 1, 7),
        [0xcc, 0xa5, 0xa4, 0xa3, 0xa2, 0xa1, 0xcc]
    );
    assert_eq!((cpu.regs[RDI], cpu.regs[RCX]), (BUF - 1, 0));
}

#[test]
fn rep_outsb_sends_rcx_bytes_from_rsi_upward_or_downward_by_df() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    rig.write(BUF, b"hello");
    cpu.regs[RSI] = BUF;
    cpu.regs[RCX] = 5;
    cpu.regs[RDX] = u64::from(PORT_HI);
    rig.perform(&mut cpu, rep_outsb(64), 2).unwrap();
    assert_eq!((cpu.regs[RSI], cpu.regs[RCX]), (BUF + 5, 0));

    cpu.set_rflags(RFLAGS_DF | 2);
    cpu.regs[RSI] = BUF + 4;
    cpu.regs[RCX] = 5;
    rig.perform(&mut cpu, rep_outsb(64), 2).unwrap();
    assert_eq!((cpu.regs[RSI], cpu.regs[RCX]), (BUF - 1, 0));

    let sent: Vec<u8> = rig
        .probe()
        .writes
        .iter()
        .map(|(port, data)| {
            assert_eq!((*port, data.len()), (PORT_HI, 1), "one byte at a time");
            data[0]
        })
        .collect();
    assert_eq!(sent, b"helloolleh");
}

#[test]
fn a_16_bit_address_size_wraps_di_si_and_cx_within_their_low_16_bits() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    // ES = DS = 0x0200 (base 0x2000).
    for s in [Segment::Es, Segment::Ds] {
        let c = cpu.sys.seg_mut(s);
        c.selector = 0x200;
        c.base = 0x2000;
    }
    rig.write(0x2000, &[0xcc; 2]);
    rig.write(0x2000 + 0xffff, &[0xcc; 1]);
    cpu.regs[RDI] = 0x1234_ffff;
    cpu.regs[RCX] = 0xabcd_0002;
    cpu.regs[RDX] = u64::from(PORT_LO);
    rig.perform(&mut cpu, rep_insb(16), 2).unwrap();
    // DI 0xffff, then 0x0000: ES:FFFF and ES:0000.
    assert_eq!(rig.read(0x2000 + 0xffff, 1), [0xa1]);
    assert_eq!(rig.read(0x2000, 2), [0xa2, 0xcc]);
    assert_eq!(cpu.regs[RDI], 0x1234_0001, "bits 31:16 of edi stay");
    assert_eq!(
        cpu.regs[RCX], 0xabcd_0000,
        "cx counted, bits 31:16 of ecx stay"
    );
    assert_eq!(cpu.rip, 0x1012);

    // Downward: SI 0x0001, 0x0000, 0xffff.
    cpu.set_rflags(RFLAGS_DF | 2);
    rig.write(0x2000, &[0x10, 0x11]);
    rig.write(0x2000 + 0xffff, &[0x12]);
    cpu.regs[RSI] = 0x5555_0001;
    cpu.regs[RCX] = 3;
    rig.perform(&mut cpu, rep_outsb(16), 2).unwrap();
    assert_eq!(cpu.regs[RSI], 0x5555_fffe);
    let sent: Vec<u8> = rig.probe().writes.iter().map(|(_, d)| d[0]).collect();
    assert_eq!(sent, [0x11, 0x10, 0x12]);
}

#[test]
fn a_32_bit_address_size_wraps_edi_at_4_gib() {
    let rig = Rig::new();
    let mut cpu = protected_cpu();
    cpu.set_rflags(RFLAGS_DF | 2);
    rig.write(0, &[0xcc; 3]);
    cpu.regs[RDI] = 1;
    cpu.regs[RCX] = 3;
    cpu.regs[RDX] = u64::from(PORT_LO);
    rig.perform(&mut cpu, rep_insb(32), 2).unwrap();
    // EDI 1, 0, then 0xffffffff (no RAM there: the byte is dropped).
    assert_eq!(rig.read(0, 3), [0xa2, 0xa1, 0xcc]);
    assert_eq!(rig.probe().next, FIRST + 3, "three reads of the port");
    assert_eq!(cpu.regs[RDI], 0xffff_fffe, "edi wrapped, not rdi");
    assert_eq!(cpu.regs[RCX], 0);
}

#[test]
fn a_rep_longer_than_one_slice_runs_again_from_the_same_instruction() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    let count = MAX_STRING_ITERATIONS + 904;
    cpu.regs[RDI] = BUF;
    cpu.regs[RCX] = count;
    cpu.regs[RDX] = u64::from(PORT_LO);

    assert_eq!(rig.perform(&mut cpu, rep_insb(64), 2), Ok(TlbFlush::None));
    assert_eq!(
        cpu.rip, 0x20_0000,
        "rip stays on the instruction while rcx != 0"
    );
    assert_eq!(cpu.regs[RCX], 904);
    assert_eq!(cpu.regs[RDI], BUF + MAX_STRING_ITERATIONS);

    assert_eq!(rig.perform(&mut cpu, rep_insb(64), 2), Ok(TlbFlush::None));
    assert_eq!(cpu.rip, 0x20_0002);
    assert_eq!((cpu.regs[RCX], cpu.regs[RDI]), (0, BUF + count));
    let got = rig.read(BUF, count as usize);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == FIRST.wrapping_add(i as u8)),
        "every byte once, in order"
    );
}

#[test]
fn rep_with_rcx_zero_does_nothing_but_move_on() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RDI] = BUF;
    cpu.regs[RDX] = u64::from(PORT_LO);
    rig.perform(&mut cpu, rep_insb(64), 2).unwrap();
    assert_eq!(rig.probe().next, FIRST, "no port read");
    assert_eq!((cpu.regs[RDI], cpu.rip), (BUF, 0x20_0002));
}

// ---------------------------------------------------------------------------------------
// lgdt / lidt / sgdt / sidt

#[test]
fn lgdt_and_lidt_in_64_bit_mode_read_a_ten_byte_operand() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    rig.write(BUF, &0x0fffu16.to_le_bytes());
    rig.write(BUF + 2, &0xffff_8000_1234_5000u64.to_le_bytes());
    cpu.sys_addr = BUF;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Lgdt { size: 8 }, 3),
        Ok(TlbFlush::None)
    );
    assert_eq!(
        cpu.sys.gdtr,
        TableReg {
            base: 0xffff_8000_1234_5000,
            limit: 0x0fff
        }
    );
    assert_eq!(cpu.rip, 0x20_0003);

    rig.write(BUF + 0x10, &0x00ffu16.to_le_bytes());
    rig.write(BUF + 0x12, &0xffff_ffff_ff57_1000u64.to_le_bytes());
    cpu.sys_addr = BUF + 0x10;
    rig.perform(&mut cpu, SysOp::Lidt { size: 8 }, 3).unwrap();
    assert_eq!(
        cpu.sys.idtr,
        TableReg {
            base: 0xffff_ffff_ff57_1000,
            limit: 0xff
        }
    );

    // A non-canonical base is #GP(0) and loads nothing.
    rig.write(BUF + 0x12, &0x0000_8000_0000_0000u64.to_le_bytes());
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Lidt { size: 8 }, 3),
        Err(gp0())
    );
    assert_eq!(cpu.sys.idtr.base, 0xffff_ffff_ff57_1000);
    assert_eq!(cpu.rip, 0x20_0006);
}

#[test]
fn lgdt_with_a_32_bit_operand_takes_32_bits_of_base() {
    let rig = Rig::new();
    let mut cpu = protected_cpu();
    rig.write(BUF, &0x0027u16.to_le_bytes());
    rig.write(BUF + 2, &0x9abc_def0_1234_5678u64.to_le_bytes());
    cpu.sys_addr = BUF;
    rig.perform(&mut cpu, SysOp::Lgdt { size: 4 }, 7).unwrap();
    assert_eq!(
        cpu.sys.gdtr,
        TableReg {
            base: 0x1234_5678,
            limit: 0x27
        }
    );
    rig.perform(&mut cpu, SysOp::Lidt { size: 4 }, 7).unwrap();
    assert_eq!(cpu.sys.idtr, cpu.sys.gdtr);
}

#[test]
fn lgdt_with_a_16_bit_operand_takes_24_bits_of_base() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    rig.write(BUF, &0x0017u16.to_le_bytes());
    rig.write(BUF + 2, &0x1234_5678u32.to_le_bytes());
    cpu.sys_addr = BUF;
    rig.perform(&mut cpu, SysOp::Lgdt { size: 2 }, 5).unwrap();
    assert_eq!(
        cpu.sys.gdtr,
        TableReg {
            base: 0x34_5678,
            limit: 0x17
        }
    );
    rig.perform(&mut cpu, SysOp::Lidt { size: 2 }, 5).unwrap();
    assert_eq!(cpu.sys.idtr.base, 0x34_5678);
    assert_eq!(cpu.rip, 0x1010 + 10);
}

#[test]
fn sgdt_stores_ten_bytes_in_64_bit_mode_and_sidt_six_outside_it() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.sys.gdtr = TableReg {
        base: 0xffff_8000_dead_b000,
        limit: 0x7f,
    };
    rig.write(BUF, &[0xcc; 16]);
    cpu.sys_addr = BUF;
    rig.perform(&mut cpu, SysOp::Sgdt { size: 8 }, 3).unwrap();
    let mut want = vec![0x7f, 0x00];
    want.extend_from_slice(&0xffff_8000_dead_b000u64.to_le_bytes());
    want.extend_from_slice(&[0xcc; 6]);
    assert_eq!(rig.read(BUF, 16), want);

    let mut cpu = protected_cpu();
    cpu.sys.idtr = TableReg {
        base: 0x0012_3000,
        limit: 0x7ff,
    };
    rig.write(BUF, &[0xcc; 16]);
    cpu.sys_addr = BUF;
    rig.perform(&mut cpu, SysOp::Sidt { size: 4 }, 3).unwrap();
    assert_eq!(
        rig.read(BUF, 8),
        [0xff, 0x07, 0x00, 0x30, 0x12, 0x00, 0xcc, 0xcc]
    );
}

#[test]
fn lgdt_at_cpl_3_is_a_general_protection_fault_that_changes_nothing() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.sys.cpl = 3;
    let before = cpu.sys.gdtr;
    rig.write(BUF, &0x0fffu16.to_le_bytes());
    rig.write(BUF + 2, &0x5000u64.to_le_bytes());
    cpu.sys_addr = BUF;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Lgdt { size: 8 }, 3),
        Err(gp0())
    );
    assert_eq!(cpu.sys.gdtr, before);
    assert_eq!(cpu.rip, 0x20_0000, "a fault leaves rip on the instruction");
}

// ---------------------------------------------------------------------------------------
// Control registers

#[test]
fn mov_to_cr3_flushes_every_non_global_translation() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RBX] = 0x5000;
    assert_eq!(
        rig.perform(
            &mut cpu,
            SysOp::MovToCr {
                cr: 3,
                gpr: RBX as u8
            },
            3
        ),
        Ok(TlbFlush::NonGlobal),
        "global pages survive a CR3 load"
    );
    assert_eq!(cpu.sys.cr3, 0x5000);
    assert_eq!(cpu.rip, 0x20_0003);
}

#[test]
fn invlpg_flushes_the_page_of_its_operand() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.sys_addr = 0xffff_8000_0012_3456;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Invlpg, 3),
        Ok(TlbFlush::Page(0xffff_8000_0012_3456))
    );
    assert_eq!(cpu.rip, 0x20_0003);
}

#[test]
fn paging_without_protection_is_refused_and_changes_nothing() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    let before = cpu.sys.clone();
    cpu.regs[RAX] = CR0_PG | CR0_ET;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::MovToCr { cr: 0, gpr: 0 }, 3),
        Err(gp0())
    );
    assert_eq!(cpu.sys, before);
    assert_eq!(cpu.rip, 0x1010);

    // PE alone enters protected mode, and the translations of real mode are stale.
    cpu.regs[RAX] = CR0_PE | CR0_ET;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::MovToCr { cr: 0, gpr: 0 }, 3),
        Ok(TlbFlush::All)
    );
    assert_eq!(cpu.sys.cr0, CR0_PE | CR0_ET);
    assert_eq!(cpu.rip, 0x1013);
}

#[test]
fn cr8_is_the_task_priority_of_the_local_apic() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RAX] = 9;
    rig.perform(&mut cpu, SysOp::MovToCr { cr: 8, gpr: 0 }, 4)
        .unwrap();
    assert_eq!(rig.apic.read(0, REG_TPR), Ok(0x90), "TPR[7:4] = CR8");
    rig.perform(&mut cpu, SysOp::MovFromCr { cr: 8, gpr: 1 }, 4)
        .unwrap();
    assert_eq!(cpu.regs[RCX], 9);

    // A write to the TPR through the APIC shows in CR8.
    rig.apic.write(0, REG_TPR, 0x5a).unwrap();
    rig.perform(&mut cpu, SysOp::MovFromCr { cr: 8, gpr: 1 }, 4)
        .unwrap();
    assert_eq!(cpu.regs[RCX], 5);

    // Bits 63:4 are reserved.
    cpu.regs[RAX] = 0x10;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::MovToCr { cr: 8, gpr: 0 }, 4),
        Err(gp0())
    );
    assert_eq!(rig.apic.read(0, REG_TPR), Ok(0x5a));
}

// ---------------------------------------------------------------------------------------
// MSRs

fn rdmsr(rig: &Rig, cpu: &mut X86Cpu, index: u32) -> Result<u64, Event> {
    cpu.regs[RCX] = u64::from(index);
    rig.perform(cpu, SysOp::Rdmsr, 2)?;
    Ok(cpu.regs[RDX] << 32 | cpu.regs[RAX])
}

fn wrmsr(rig: &Rig, cpu: &mut X86Cpu, index: u32, value: u64) -> Result<TlbFlush, Event> {
    cpu.regs[RCX] = u64::from(index);
    cpu.regs[RAX] = value & 0xffff_ffff;
    cpu.regs[RDX] = value >> 32;
    rig.perform(cpu, SysOp::Wrmsr, 2)
}

#[test]
fn efer_round_trips_and_a_change_of_nxe_flushes() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    // rdmsr writes edx:eax, clearing the upper halves.
    cpu.regs[RAX] = u64::MAX;
    cpu.regs[RDX] = u64::MAX;
    assert_eq!(rdmsr(&rig, &mut cpu, MSR_EFER), Ok(EFER_LME | EFER_LMA));
    assert_eq!((cpu.regs[RAX], cpu.regs[RDX]), (EFER_LME | EFER_LMA, 0));

    // wrmsr takes edx:eax: the upper half of rax is ignored.
    cpu.regs[RCX] = u64::from(MSR_EFER);
    cpu.regs[RAX] = 0xdead_beef_0000_0000 | EFER_LME | EFER_LMA | EFER_NXE;
    cpu.regs[RDX] = 0;
    assert_eq!(rig.perform(&mut cpu, SysOp::Wrmsr, 2), Ok(TlbFlush::All));
    assert_eq!(
        rdmsr(&rig, &mut cpu, MSR_EFER),
        Ok(EFER_LME | EFER_LMA | EFER_NXE)
    );
    // The same value again changes nothing a translation depends on.
    assert_eq!(
        wrmsr(&rig, &mut cpu, MSR_EFER, EFER_LME | EFER_LMA | EFER_NXE),
        Ok(TlbFlush::None)
    );
    assert_eq!(cpu.rip, 0x20_0000 + 4 * 2);
}

#[test]
fn an_unknown_msr_is_a_general_protection_fault_that_leaves_rax_and_rdx() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RCX] = 0xc000_1234;
    cpu.regs[RAX] = 0x1111;
    cpu.regs[RDX] = 0x2222;
    assert_eq!(rig.perform(&mut cpu, SysOp::Rdmsr, 2), Err(gp0()));
    assert_eq!((cpu.regs[RAX], cpu.regs[RDX]), (0x1111, 0x2222));
    assert_eq!(rig.perform(&mut cpu, SysOp::Wrmsr, 2), Err(gp0()));
    assert_eq!(cpu.rip, 0x20_0000);
}

#[test]
fn writing_ia32_tsc_moves_what_rdtsc_reads() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    let written = 1u64 << 44;
    wrmsr(&rig, &mut cpu, MSR_TSC, written).unwrap();
    cpu.regs[RAX] = u64::MAX;
    cpu.regs[RDX] = u64::MAX;
    rig.perform(&mut cpu, SysOp::Rdtsc, 2).unwrap();
    assert!(cpu.regs[RAX] <= 0xffff_ffff && cpu.regs[RDX] <= 0xffff_ffff);
    let read = cpu.regs[RDX] << 32 | cpu.regs[RAX];
    assert!(
        read >= written && read - written < HZ,
        "rdtsc {read:#x} within a second after writing {written:#x}"
    );
    let again = rdmsr(&rig, &mut cpu, MSR_TSC).unwrap();
    assert!(again >= read && again - read < HZ, "rdmsr IA32_TSC agrees");
}

/// Puts vCPU 0's local APIC timer in TSC-deadline mode (LVT timer bits 18:17 = 2).
fn tsc_deadline_mode(rig: &Rig) {
    rig.apic.write(0, REG_LVT_TIMER, 2 << 17 | 0xec).unwrap();
}

#[test]
fn the_tsc_deadline_msr_is_the_local_apics_in_the_guests_tsc() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    tsc_deadline_mode(&rig);
    wrmsr(&rig, &mut cpu, MSR_TSC, 1 << 40).unwrap();
    let offset = cpu.sys.msrs.tsc_offset;
    assert_ne!(offset, 0);

    // Five seconds from now, in the guest's TSC.
    let deadline = rig.guest_tsc(&cpu) + 5 * HZ;
    assert_eq!(
        wrmsr(&rig, &mut cpu, MSR_TSC_DEADLINE, deadline),
        Ok(TlbFlush::None)
    );
    assert_eq!(rdmsr(&rig, &mut cpu, MSR_TSC_DEADLINE), Ok(deadline));
    // The APIC counts the machine's TSC.
    let machine = deadline.wrapping_sub(offset);
    assert_eq!(rig.apic.read_msr(0, MSR_TSC_DEADLINE), Ok(Some(machine)));
    let fire = rig.apic.next_deadline().expect("the timer is armed");
    assert_eq!(Some(fire), rig.tsc.instant_of(machine));
    let now = Instant::now();
    assert!(fire > now + Duration::from_secs(4) && fire < now + Duration::from_secs(6));

    // 0 disarms.
    wrmsr(&rig, &mut cpu, MSR_TSC_DEADLINE, 0).unwrap();
    assert_eq!(rdmsr(&rig, &mut cpu, MSR_TSC_DEADLINE), Ok(0));
    assert_eq!(rig.apic.next_deadline(), None);
}

#[test]
fn a_tsc_deadline_already_past_in_the_guests_tsc_fires_at_once() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    tsc_deadline_mode(&rig);
    // The guest's TSC is far ahead of the machine's (it wrote IA32_TSC)...
    wrmsr(&rig, &mut cpu, MSR_TSC, 1 << 40).unwrap();
    // ...and it asks for a deadline that has passed (SDM 11.5.4.1: the timer fires when
    // the TSC is greater than or equal to the deadline, so at once).
    wrmsr(&rig, &mut cpu, MSR_TSC_DEADLINE, 1 << 39).unwrap();
    let fire = rig.apic.next_deadline().expect("the timer is armed");
    assert!(fire <= Instant::now(), "the deadline has passed");
}

// ---------------------------------------------------------------------------------------
// Software interrupts

#[test]
fn int_n_is_a_software_interrupt_with_rip_past_the_instruction() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Int { vector: 0x80 }, 2),
        Err(Event {
            vector: 0x80,
            kind: EventKind::Software,
            error_code: None,
            cr2: None,
        })
    );
    assert_eq!(cpu.rip, 0x20_0002);
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Int3, 1),
        Err(Event::software(BP))
    );
    assert_eq!(cpu.rip, 0x20_0003);
}

#[test]
fn into_traps_only_when_of_is_set() {
    let rig = Rig::new();
    let mut cpu = protected_cpu();
    assert_eq!(rig.perform(&mut cpu, SysOp::Into, 1), Ok(TlbFlush::None));
    assert_eq!(cpu.rip, 0x10_0001, "OF clear: a no-op");
    cpu.set_rflags(RFLAGS_OF | 2);
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Into, 1),
        Err(Event::software(OF))
    );
    assert_eq!(cpu.rip, 0x10_0002, "a trap: rip past the instruction");
}

// ---------------------------------------------------------------------------------------
// FS and GS bases

#[test]
fn swapgs_exchanges_the_gs_base_with_kernel_gs_base_and_the_translated_code_sees_it() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.sys.seg_mut(Segment::Gs).base = 0x7f00_1000;
    sync_bases(&mut cpu);
    assert_eq!(cpu.gs_base, 0x7f00_1000);
    wrmsr(&rig, &mut cpu, MSR_KERNEL_GS_BASE, 0xffff_8880_0000_0000).unwrap();

    rig.perform(&mut cpu, SysOp::Swapgs, 3).unwrap();
    assert_eq!(cpu.gs_base, 0xffff_8880_0000_0000);
    assert_eq!(
        rdmsr(&rig, &mut cpu, MSR_GS_BASE),
        Ok(0xffff_8880_0000_0000)
    );
    assert_eq!(rdmsr(&rig, &mut cpu, MSR_KERNEL_GS_BASE), Ok(0x7f00_1000));

    rig.perform(&mut cpu, SysOp::Swapgs, 3).unwrap();
    assert_eq!(cpu.gs_base, 0x7f00_1000);
    assert_eq!(cpu.sys.msrs.kernel_gs_base, 0xffff_8880_0000_0000);
}

#[test]
fn wrmsr_fs_base_and_gs_base_show_in_the_bases_the_translated_code_adds() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    wrmsr(&rig, &mut cpu, MSR_FS_BASE, 0x7f12_3456_7000).unwrap();
    assert_eq!(cpu.fs_base, 0x7f12_3456_7000);
    wrmsr(&rig, &mut cpu, MSR_GS_BASE, 0xffff_8880_1234_0000).unwrap();
    assert_eq!(cpu.gs_base, 0xffff_8880_1234_0000);
    assert_eq!(cpu.fs_base, 0x7f12_3456_7000);
}

// ---------------------------------------------------------------------------------------
// Segment loads and far transfers

#[test]
fn a_real_mode_far_jump_loads_cs_as_a_paragraph_and_keeps_rip_linear() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    cpu.sys_addr = 0x5678;
    let op = SysOp::FarJmpImm {
        selector: 0x1234,
        size: 2,
    };
    assert_eq!(rig.perform(&mut cpu, op, 5), Ok(TlbFlush::None));
    let cs = cpu.sys.seg(Segment::Cs);
    assert_eq!((cs.selector, cs.base), (0x1234, 0x1_2340));
    assert_eq!(cpu.rip, 0x1_2340 + 0x5678, "rip = CS.base + IP");
}

#[test]
fn mov_to_a_segment_register_in_real_mode_loads_the_paragraph() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    // mov ds, ax: only ax counts.
    cpu.regs[RAX] = 0xffff_0000_abcd_1234;
    let op = SysOp::MovToSeg {
        seg: Segment::Ds as u8,
        src: Rm::Reg { gpr: 0, size: 2 },
    };
    rig.perform(&mut cpu, op, 2).unwrap();
    let ds = cpu.sys.seg(Segment::Ds);
    assert_eq!((ds.selector, ds.base), (0x1234, 0x1_2340));
    assert_eq!(cpu.rip, 0x1012);

    // mov es, [m16].
    rig.write(BUF, &0xb800u16.to_le_bytes());
    cpu.sys_addr = BUF;
    let op = SysOp::MovToSeg {
        seg: Segment::Es as u8,
        src: Rm::Mem,
    };
    rig.perform(&mut cpu, op, 4).unwrap();
    let es = cpu.sys.seg(Segment::Es);
    assert_eq!((es.selector, es.base), (0xb800, 0xb_8000));
}

/// A user (DPL 3) writable data segment.
const GDT_USER_DATA: u64 = 0x00cf_f300_0000_ffff;
/// A user (DPL 3) 64-bit code segment.
const GDT_USER_CODE64: u64 = 0x00af_fb00_0000_ffff;
/// Entries of [`load_gdt`]'s table.
const GDT_ENTRIES: u64 = 6;

/// A GDT at [`GDT`]: null, 32-bit code at 0x08, 64-bit code at 0x10, data at 0x18 (the boot
/// GDT's, DPL 0), user data at 0x20 and user 64-bit code at 0x28 (DPL 3).
fn load_gdt(rig: &Rig, cpu: &mut X86Cpu) {
    let table = [
        0,
        GDT_CODE32,
        GDT_CODE64,
        GDT_DATA,
        GDT_USER_DATA,
        GDT_USER_CODE64,
    ];
    for (i, d) in table.into_iter().enumerate() {
        rig.write(GDT + 8 * i as u64, &d.to_le_bytes());
    }
    cpu.sys.gdtr = TableReg {
        base: GDT,
        limit: (GDT_ENTRIES * 8 - 1) as u16,
    };
}

#[test]
fn lret_in_64_bit_mode_to_a_64_bit_code_segment_of_the_same_cpl() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    load_gdt(&rig, &mut cpu);
    // Start in the 32-bit code segment's selector so the reload shows.
    cpu.sys.seg_mut(Segment::Cs).selector = 0x08;
    let target = 0x0000_7fff_0000_1234u64;
    rig.write(STACK, &target.to_le_bytes());
    rig.write(STACK + 8, &0x10u64.to_le_bytes());
    cpu.regs[RSP] = STACK;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Lret { size: 8, pop: 0x10 }, 4),
        Ok(TlbFlush::None)
    );
    assert_eq!(cpu.rip, target, "all 64 bits of the offset");
    assert_eq!(
        cpu.regs[RSP],
        STACK + 16 + 0x10,
        "the frame and the imm16 released"
    );
    let cs = cpu.sys.seg(Segment::Cs);
    assert_eq!(cs.selector, 0x10);
    assert_ne!(cs.attr & ATTR_L, 0);
    assert_eq!(cpu.sys.cpl, 0);
    assert!(cpu.sys.in_64bit_mode());
}

#[test]
fn lret_from_64_bit_mode_to_a_32_bit_code_segment_enters_compatibility_mode() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    load_gdt(&rig, &mut cpu);
    rig.write(STACK, &0xffff_ffff_8000_1000u64.to_le_bytes());
    rig.write(STACK + 8, &0x08u64.to_le_bytes());
    cpu.regs[RSP] = STACK;
    rig.perform(&mut cpu, SysOp::Lret { size: 8, pop: 0 }, 2)
        .unwrap();
    assert!(!cpu.sys.in_64bit_mode());
    assert!(cpu.sys.long_mode());
    assert_eq!(cpu.sys.seg(Segment::Cs).selector, 0x08);
    assert_eq!(
        cpu.rip, 0x8000_1000,
        "a 32-bit code segment has a 32-bit eip"
    );
}

#[test]
fn lret_to_a_selector_beyond_the_gdt_is_a_general_protection_fault() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    load_gdt(&rig, &mut cpu);
    rig.write(STACK, &0x1234u64.to_le_bytes());
    rig.write(STACK + 8, &(GDT_ENTRIES * 8).to_le_bytes());
    cpu.regs[RSP] = STACK;
    let before = cpu.sys.clone();
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Lret { size: 8, pop: 0 }, 2),
        Err(Exception::gp(GDT_ENTRIES as u32 * 8).into())
    );
    assert_eq!(cpu.sys, before);
    assert_eq!((cpu.rip, cpu.regs[RSP]), (0x20_0000, STACK));
}

/// A 64-bit `lret` frame to user mode: rip, CS 0x2b, rsp, SS 0x23.
fn user_return_frame(rig: &Rig, cpu: &mut X86Cpu) {
    load_gdt(rig, cpu);
    for (i, v) in [0x40_1000u64, 0x2b, 0x7fff_f000, 0x23]
        .into_iter()
        .enumerate()
    {
        rig.write(STACK + 8 * i as u64, &v.to_le_bytes());
    }
    cpu.regs[RSP] = STACK;
}

#[test]
fn lret_to_an_outer_level_pops_the_callers_stack_too() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    user_return_frame(&rig, &mut cpu);
    rig.perform(&mut cpu, SysOp::Lret { size: 8, pop: 0 }, 2)
        .unwrap();
    assert_eq!(cpu.sys.cpl, 3);
    assert_eq!(cpu.rip, 0x40_1000);
    assert_eq!(cpu.regs[RSP], 0x7fff_f000);
    assert_eq!(cpu.sys.seg(Segment::Cs).selector, 0x2b);
    let ss = cpu.sys.seg(Segment::Ss);
    assert_eq!((ss.selector, ss.dpl()), (0x23, 3));
    assert!(cpu.sys.in_64bit_mode());
}

#[test]
fn lret_to_an_outer_level_nulls_the_data_segments_the_new_cpl_may_not_use() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    user_return_frame(&rig, &mut cpu);
    // DS and ES hold the DPL 0 data segment, FS the user one.
    let user = cpu.sys.seg(Segment::Ds).base;
    cpu.sys.seg_mut(Segment::Fs).attr |= 3 << ATTR_DPL_SHIFT;
    rig.perform(&mut cpu, SysOp::Lret { size: 8, pop: 0 }, 2)
        .unwrap();
    for s in [Segment::Ds, Segment::Es] {
        let c = cpu.sys.seg(s);
        assert_eq!(
            (c.selector, c.attr & ATTR_P),
            (0, 0),
            "{s:?}: DPL 0 < CPL 3, nulled"
        );
    }
    assert_eq!(cpu.sys.seg(Segment::Fs).selector, BOOT_DS, "DPL 3: kept");
    assert_eq!(cpu.sys.seg(Segment::Fs).base, user);
}

#[test]
fn a_far_call_and_return_on_a_16_bit_stack_move_sp_only() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    let ss = cpu.sys.seg_mut(Segment::Ss);
    ss.selector = 0x9000;
    ss.base = 0x9_0000;
    // SP = 0 (the first push wraps to 0xfffe); bits 31:16 of ESP hold something.
    cpu.regs[RSP] = 0x1234_0000;
    cpu.sys_addr = 0x5678;
    let call = SysOp::FarCallImm {
        selector: 0x2000,
        size: 2,
    };
    rig.perform(&mut cpu, call, 5).unwrap();
    assert_eq!(cpu.rip, 0x2_0000 + 0x5678);
    // IP 0x0015 (past the call at 0x0100:0x0010) and CS 0x0100 at SS:FFFC.
    assert_eq!(rig.read(0x9_0000 + 0xfffc, 4), [0x15, 0x00, 0x00, 0x01]);
    assert_eq!(
        cpu.regs[RSP], 0x1234_fffc,
        "SP = 0xfffc, the rest of rsp unchanged"
    );

    rig.perform(&mut cpu, SysOp::Lret { size: 2, pop: 0 }, 1)
        .unwrap();
    assert_eq!(cpu.sys.seg(Segment::Cs).base, 0x1000);
    assert_eq!(cpu.rip, 0x1015);
    assert_eq!(cpu.regs[RSP], 0x1234_0000, "SP wraps back to 0");
}

#[test]
fn a_32_bit_address_size_in_64_bit_mode_zero_extends_rdi_and_rcx() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RDI] = 0xdead_beef_0000_0000 | BUF;
    cpu.regs[RCX] = 0x1_0000_0002;
    cpu.regs[RDX] = u64::from(PORT_LO);
    rig.perform(&mut cpu, rep_insb(32), 3).unwrap();
    assert_eq!(rig.read(BUF, 2), [0xa1, 0xa2], "edi addresses, ecx counts");
    assert_eq!(cpu.regs[RDI], BUF + 2);
    assert_eq!(cpu.regs[RCX], 0);
}

#[test]
fn wrmsr_apic_base_with_reserved_bits_faults_before_changing_the_apic() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    rig.apic.write(0, REG_TPR, 0x20).unwrap();
    // The default base with EN clear and reserved bit 0 set.
    assert_eq!(
        wrmsr(&rig, &mut cpu, MSR_APIC_BASE, 0xfee0_0000 | 1),
        Err(gp0())
    );
    let base = rig.apic.read_msr(0, MSR_APIC_BASE).unwrap().unwrap();
    assert_ne!(base & APIC_BASE_EN, 0, "the APIC is still enabled");
    assert_eq!(
        rig.apic.read(0, REG_TPR),
        Ok(0x20),
        "and kept its registers"
    );
    assert_eq!(rdmsr(&rig, &mut cpu, MSR_APIC_BASE), Ok(base));
}

#[test]
fn wrmsr_apic_base_can_disable_the_apic_and_rdmsr_reads_it_back() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    let base = rdmsr(&rig, &mut cpu, MSR_APIC_BASE).unwrap();
    assert_eq!(base & !0xfff, 0xfee0_0000);
    assert_ne!(base & APIC_BASE_EN, 0);
    wrmsr(&rig, &mut cpu, MSR_APIC_BASE, base & !APIC_BASE_EN).unwrap();
    assert_eq!(
        rdmsr(&rig, &mut cpu, MSR_APIC_BASE),
        Ok(base & !APIC_BASE_EN)
    );
    assert_eq!(cpu.sys.msrs.apic_base, base & !APIC_BASE_EN);
    // Another base is not supported: #GP, nothing changes.
    assert_eq!(
        wrmsr(&rig, &mut cpu, MSR_APIC_BASE, 0xfed0_0000 | APIC_BASE_EN),
        Err(gp0())
    );
    assert_eq!(
        rdmsr(&rig, &mut cpu, MSR_APIC_BASE),
        Ok(base & !APIC_BASE_EN)
    );
}

// ---------------------------------------------------------------------------------------
// Faults on the way: nothing done, or the progress a `rep` made

#[test]
fn a_page_fault_on_the_operand_is_delivered_with_nothing_done() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    let before = cpu.sys.gdtr;
    // Only the first GiB is mapped.
    cpu.sys_addr = 0x4000_0000;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Lgdt { size: 8 }, 3),
        Err(Exception::pf(0, 0x4000_0000).into()),
        "#PF: a supervisor read of a not-present page"
    );
    assert_eq!(cpu.sys.gdtr, before);
    assert_eq!(cpu.rip, 0x20_0000);
}

#[test]
fn a_rep_outs_that_faults_midway_keeps_the_progress_made() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RSI] = 0x3fff_fffe;
    cpu.regs[RCX] = 4;
    cpu.regs[RDX] = u64::from(PORT_LO);
    assert_eq!(
        rig.perform(&mut cpu, rep_outsb(64), 2),
        Err(Exception::pf(0, 0x4000_0000).into())
    );
    assert_eq!(rig.probe().writes.len(), 2, "two bytes went out");
    assert_eq!((cpu.regs[RSI], cpu.regs[RCX]), (0x4000_0000, 2));
    assert_eq!(cpu.rip, 0x20_0000, "restarts from the faulting iteration");
}

// ---------------------------------------------------------------------------------------
// More control, debug and segment registers

#[test]
fn control_register_moves_outside_64_bit_mode_use_32_bits() {
    let rig = Rig::new();
    let mut cpu = protected_cpu();
    cpu.regs[RAX] = 0xffff_ffff_0000_0000 | CR0_PE | CR0_ET | CR0_TS;
    assert_eq!(
        rig.perform(&mut cpu, SysOp::MovToCr { cr: 0, gpr: 0 }, 3),
        Ok(TlbFlush::None),
        "bits 63:32 of rax are not an operand"
    );
    assert_eq!(cpu.sys.cr0, CR0_PE | CR0_ET | CR0_TS);
    rig.perform(&mut cpu, SysOp::Clts, 2).unwrap();
    assert_eq!(cpu.sys.cr0, CR0_PE | CR0_ET);
    cpu.regs[RBX] = u64::MAX;
    rig.perform(
        &mut cpu,
        SysOp::MovFromCr {
            cr: 0,
            gpr: RBX as u8,
        },
        3,
    )
    .unwrap();
    assert_eq!(cpu.regs[RBX], CR0_PE | CR0_ET);
    assert_eq!(cpu.rip, 0x10_0008);
}

#[test]
fn debug_registers_read_their_reset_values_and_ignore_writes() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RAX] = 0x1234;
    rig.perform(&mut cpu, SysOp::MovToDr { dr: 7, gpr: 0 }, 3)
        .unwrap();
    rig.perform(&mut cpu, SysOp::MovFromDr { dr: 6, gpr: 1 }, 3)
        .unwrap();
    rig.perform(&mut cpu, SysOp::MovFromDr { dr: 7, gpr: 2 }, 3)
        .unwrap();
    assert_eq!((cpu.regs[RCX], cpu.regs[RDX]), (0xffff_0ff0, 0x400));
    assert_eq!(cpu.rip, 0x20_0009);
}

#[test]
fn mov_to_cs_is_an_invalid_opcode_in_every_mode() {
    let rig = Rig::new();
    let op = SysOp::MovToSeg {
        seg: Segment::Cs as u8,
        src: Rm::Reg { gpr: 0, size: 2 },
    };
    let mut cpu = protected_cpu();
    cpu.regs[RAX] = 0x08;
    assert_eq!(rig.perform(&mut cpu, op, 2), Err(Exception::ud().into()));
    let mut cpu = real_mode_cpu();
    cpu.regs[RAX] = 0x2000;
    assert_eq!(rig.perform(&mut cpu, op, 2), Err(Exception::ud().into()));
    assert_eq!(cpu.sys.seg(Segment::Cs).base, 0x1000);
    assert_eq!(cpu.rip, 0x1010);
}

#[test]
fn lds_in_real_mode_loads_the_segment_and_the_offset_register() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    rig.write(BUF, &[0x34, 0x12, 0x00, 0xb8]);
    cpu.sys_addr = BUF;
    cpu.regs[RSI] = 0xffff_0000_5555_0000;
    let op = SysOp::LoadFarPointer {
        seg: Segment::Ds as u8,
        gpr: RSI as u8,
        size: 2,
    };
    rig.perform(&mut cpu, op, 4).unwrap();
    let ds = cpu.sys.seg(Segment::Ds);
    assert_eq!((ds.selector, ds.base), (0xb800, 0xb_8000));
    assert_eq!(cpu.regs[RSI], 0xffff_0000_5555_1234, "si only");
}

#[test]
fn mov_from_a_segment_register_zero_extends_into_32_bits_and_stores_16_in_memory() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    let from_ds = |dst| SysOp::MovFromSeg {
        seg: Segment::Ds as u8,
        dst,
    };
    cpu.regs[RAX] = u64::MAX;
    rig.perform(&mut cpu, from_ds(Rm::Reg { gpr: 0, size: 4 }), 2)
        .unwrap();
    assert_eq!(cpu.regs[RAX], u64::from(BOOT_DS));
    cpu.regs[RAX] = u64::MAX;
    rig.perform(&mut cpu, from_ds(Rm::Reg { gpr: 0, size: 2 }), 3)
        .unwrap();
    assert_eq!(cpu.regs[RAX], 0xffff_ffff_ffff_0000 | u64::from(BOOT_DS));
    rig.write(BUF, &[0xcc; 4]);
    cpu.sys_addr = BUF;
    rig.perform(&mut cpu, from_ds(Rm::Mem), 3).unwrap();
    assert_eq!(rig.read(BUF, 4), [BOOT_DS as u8, 0, 0xcc, 0xcc]);
}

// ---------------------------------------------------------------------------------------
// syscall / sysret, rdtsc / rdtscp

#[test]
fn syscall_enters_lstar_with_the_return_address_in_rcx_and_sysretq_goes_back() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    // Linux's layout: kernel CS 0x10 (SS 0x18), user base 0x23 (SS 0x2b, 64-bit CS 0x33).
    wrmsr(&rig, &mut cpu, MSR_STAR, 0x0023_0010_0000_0000).unwrap();
    wrmsr(&rig, &mut cpu, MSR_LSTAR, 0xffff_ffff_8100_0000).unwrap();
    wrmsr(&rig, &mut cpu, MSR_FMASK, RFLAGS_IF | RFLAGS_DF).unwrap();
    let efer = cpu.sys.msrs.efer | EFER_SCE;
    wrmsr(&rig, &mut cpu, MSR_EFER, efer).unwrap();
    let at = cpu.rip;
    cpu.set_rflags(RFLAGS_IF | RFLAGS_DF | 2);

    assert_eq!(rig.perform(&mut cpu, SysOp::Syscall, 2), Ok(TlbFlush::None));
    assert_eq!(cpu.rip, 0xffff_ffff_8100_0000);
    assert_eq!(cpu.regs[RCX], at + 2, "the next instruction");
    assert_eq!(cpu.regs[11], RFLAGS_IF | RFLAGS_DF | 2);
    assert_eq!(cpu.rflags() & (RFLAGS_IF | RFLAGS_DF), 0, "FMASK");
    assert_eq!(cpu.sys.seg(Segment::Cs).selector, 0x10);
    assert_eq!(cpu.sys.seg(Segment::Ss).selector, 0x18);
    assert_eq!(cpu.sys.cpl, 0);

    rig.perform(&mut cpu, SysOp::Sysret { size: 8 }, 3).unwrap();
    assert_eq!(cpu.rip, at + 2);
    assert_eq!(cpu.sys.cpl, 3);
    assert_eq!(cpu.sys.seg(Segment::Cs).selector, 0x33);
    assert_eq!(cpu.sys.seg(Segment::Ss).selector, 0x2b);
    assert!(cpu.sys.in_64bit_mode());
    assert_ne!(cpu.rflags() & RFLAGS_IF, 0, "RFLAGS from r11");
}

#[test]
fn rdtsc_at_cpl_3_with_cr4_tsd_is_a_general_protection_fault() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.sys.cr4 |= CR4_TSD;
    cpu.sys.cpl = 3;
    cpu.regs[RAX] = 0x1111;
    assert_eq!(rig.perform(&mut cpu, SysOp::Rdtsc, 2), Err(gp0()));
    assert_eq!((cpu.regs[RAX], cpu.rip), (0x1111, 0x20_0000));
    cpu.sys.cpl = 0;
    assert_eq!(rig.perform(&mut cpu, SysOp::Rdtsc, 2), Ok(TlbFlush::None));
}

#[test]
fn rdtscp_also_reads_tsc_aux_into_ecx() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    wrmsr(&rig, &mut cpu, MSR_TSC_AUX, 7).unwrap();
    cpu.regs[RCX] = u64::MAX;
    rig.perform(&mut cpu, SysOp::Rdtscp, 3).unwrap();
    assert_eq!(cpu.regs[RCX], 7);
}

// ---------------------------------------------------------------------------------------
// Task register and LDT

/// An available 64-bit TSS at 0x9000 (limit 0x67): the low half of its 16-byte descriptor.
const TSS_DESC_LOW: u64 = 0x0000_8900_9000_0067;
/// Its selector, after [`load_gdt`]'s six entries.
const TSS_SEL: u16 = 0x30;

#[test]
fn ltr_loads_the_task_register_and_marks_the_tss_busy_and_str_reads_the_selector() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    load_gdt(&rig, &mut cpu);
    rig.write(GDT + u64::from(TSS_SEL), &TSS_DESC_LOW.to_le_bytes());
    rig.write(GDT + u64::from(TSS_SEL) + 8, &0u64.to_le_bytes());
    cpu.sys.gdtr.limit = TSS_SEL + 15;
    cpu.regs[RAX] = u64::from(TSS_SEL);
    rig.perform(&mut cpu, SysOp::Ltr(Rm::Reg { gpr: 0, size: 2 }), 3)
        .unwrap();
    assert_eq!(
        (cpu.sys.tr.selector, cpu.sys.tr.base, cpu.sys.tr.limit),
        (TSS_SEL, 0x9000, 0x67)
    );
    let desc = u64::from_le_bytes(rig.read(GDT + u64::from(TSS_SEL), 8).try_into().unwrap());
    assert_eq!(desc >> 40 & 0xf, 0xb, "the descriptor is now a busy TSS");

    // A busy TSS cannot be loaded again.
    assert_eq!(
        rig.perform(&mut cpu, SysOp::Ltr(Rm::Reg { gpr: 0, size: 2 }), 3),
        Err(Exception::gp(u32::from(TSS_SEL)).into())
    );

    cpu.regs[RCX] = u64::MAX;
    rig.perform(&mut cpu, SysOp::Str(Rm::Reg { gpr: 1, size: 4 }), 3)
        .unwrap();
    assert_eq!(cpu.regs[RCX], u64::from(TSS_SEL), "zero-extended");
}

#[test]
fn lldt_with_a_null_selector_leaves_no_ldt_and_sldt_reads_it() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    rig.write(BUF, &0u16.to_le_bytes());
    cpu.sys_addr = BUF;
    rig.perform(&mut cpu, SysOp::Lldt(Rm::Mem), 3).unwrap();
    assert_eq!(cpu.sys.ldtr.attr & ATTR_P, 0, "unusable");
    cpu.regs[RAX] = 0xffff_ffff_ffff_ffff;
    rig.perform(&mut cpu, SysOp::Sldt(Rm::Reg { gpr: 0, size: 2 }), 3)
        .unwrap();
    assert_eq!(cpu.regs[RAX], 0xffff_ffff_ffff_0000, "a 16-bit destination");
}

#[test]
fn descriptor_table_register_instructions_are_invalid_in_real_mode() {
    let rig = Rig::new();
    let ops = [
        SysOp::Lldt(Rm::Reg { gpr: 0, size: 2 }),
        SysOp::Ltr(Rm::Reg { gpr: 0, size: 2 }),
        SysOp::Sldt(Rm::Reg { gpr: 0, size: 2 }),
        SysOp::Str(Rm::Reg { gpr: 0, size: 2 }),
    ];
    for op in ops {
        let mut cpu = real_mode_cpu();
        cpu.regs[RAX] = 0x28;
        assert_eq!(
            rig.perform(&mut cpu, op, 3),
            Err(Exception::ud().into()),
            "{op:?}"
        );
        assert_eq!(cpu.rip, 0x1010);
    }
}

// ---------------------------------------------------------------------------------------
// iretq

#[test]
fn iretq_to_the_same_level_pops_rip_cs_rflags_rsp_and_ss() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    load_gdt(&rig, &mut cpu);
    let frame = [0x20_1234u64, 0x10, RFLAGS_IF | 2, 0x3_0000, 0x18];
    for (i, v) in frame.into_iter().enumerate() {
        rig.write(STACK + 8 * i as u64, &v.to_le_bytes());
    }
    cpu.regs[RSP] = STACK;
    rig.perform(&mut cpu, SysOp::Iret { size: 8 }, 2).unwrap();
    assert_eq!(cpu.rip, 0x20_1234);
    assert_eq!(cpu.regs[RSP], 0x3_0000);
    assert_ne!(cpu.rflags() & RFLAGS_IF, 0);
    assert!(interrupts_enabled(&cpu));
    assert_eq!(cpu.sys.seg(Segment::Ss).selector, 0x18);
    assert_eq!(cpu.sys.cpl, 0);
}

// ---------------------------------------------------------------------------------------
// CPUID

#[test]
fn cpuid_leaf_0_names_genuine_intel() {
    let rig = Rig::new();
    let mut cpu = long_mode_cpu(&rig);
    cpu.regs[RAX] = 0xffff_ffff_0000_0000;
    cpu.regs[RCX] = 0;
    rig.perform(&mut cpu, SysOp::Cpuid, 2).unwrap();
    let mut vendor = Vec::new();
    for r in [RBX, RDX, RCX] {
        assert!(cpu.regs[r] <= 0xffff_ffff, "32-bit results zero-extend");
        vendor.extend_from_slice(&(cpu.regs[r] as u32).to_le_bytes());
    }
    assert_eq!(vendor, b"GenuineIntel");
    assert!(
        cpu.regs[RAX] >= 1 && cpu.regs[RAX] <= 0xffff_ffff,
        "max leaf"
    );
    assert_eq!(cpu.rip, 0x20_0002);
}

#[test]
fn cpuid_leaf_1_reports_the_apic_id_of_the_asking_cpu() {
    let mut rig = Rig::with_cpus(2);
    for index in [0, 1] {
        rig.cpu_index = index;
        let mut cpu = long_mode_cpu(&rig);
        cpu.regs[RAX] = 1;
        rig.perform(&mut cpu, SysOp::Cpuid, 2).unwrap();
        assert_eq!(cpu.regs[RBX] >> 24, index as u64, "EBX[31:24]");
    }
}

// ---------------------------------------------------------------------------------------
// verr / verw

/// `verr`/`verw` of the selector in rbx at `cpl`: the ZF it leaves.
fn verify(rig: &Rig, cpl: u8, selector: u16, write: bool) -> bool {
    let mut cpu = long_mode_cpu(rig);
    load_gdt(rig, &mut cpu);
    cpu.sys.cpl = cpl;
    cpu.regs[RBX] = u64::from(selector);
    cpu.set_rflags(0x2);
    let rm = Rm::Reg {
        gpr: RBX as u8,
        size: 2,
    };
    let op = if write {
        SysOp::Verw(rm)
    } else {
        SysOp::Verr(rm)
    };
    rig.perform(&mut cpu, op, 3).unwrap();
    assert_eq!(cpu.rip, 0x20_0000 + 3, "verr/verw complete");
    cpu.rflags() & (1 << 6) != 0
}

#[test]
fn verw_is_set_for_writable_data_the_privilege_may_use_and_clear_otherwise() {
    let rig = Rig::new();
    assert!(verify(&rig, 0, 0x18, true), "kernel data at CPL 0");
    assert!(verify(&rig, 3, 0x23, true), "user data at CPL 3");
    assert!(!verify(&rig, 3, 0x18, true), "kernel data at CPL 3");
    assert!(
        !verify(&rig, 0, 0x1b, true),
        "RPL 3 above the DPL 0 segment"
    );
    assert!(!verify(&rig, 0, 0x10, true), "code is never writable");
    assert!(!verify(&rig, 0, 0, true), "the null selector");
    assert!(!verify(&rig, 0, 0x80, true), "beyond the GDT's limit");
}

#[test]
fn verr_is_set_for_data_and_readable_code() {
    let rig = Rig::new();
    assert!(verify(&rig, 0, 0x10, false), "readable kernel code");
    assert!(verify(&rig, 3, 0x2b, false), "readable user code at CPL 3");
    assert!(!verify(&rig, 3, 0x10, false), "kernel code at CPL 3");
    assert!(verify(&rig, 0, 0x18, false), "data is readable");
}

#[test]
fn verr_and_verw_are_invalid_in_real_mode() {
    let rig = Rig::new();
    let mut cpu = real_mode_cpu();
    let op = SysOp::Verw(Rm::Reg { gpr: 0, size: 2 });
    assert_eq!(rig.perform(&mut cpu, op, 3).unwrap_err().vector, 6);
}
