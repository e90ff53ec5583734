//! Tests of the privileged architecture, each stating the rule of volume II it checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use accel_tcg::{Access, MemFault, PageProt, RamAndBus};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::csr::{self, *};
use super::mmu::{self, *};
use super::pmp::{self, *};
use super::trap::{self, code, irq, Exception, INTERRUPT};
use super::{helpers, PRIV_M, PRIV_S, PRIV_U};
use crate::riscv64::Riscv64Cpu;

const ILLEGAL: Exception = Exception::IllegalInstruction(0);

fn hart(priv_level: u64) -> Box<Riscv64Cpu> {
    let mut cpu = Riscv64Cpu::new(0x8000_0000);
    cpu.priv_level = priv_level;
    cpu
}

/// A hart whose `time` is the returned counter.
fn hart_with_clock(priv_level: u64) -> (Box<Riscv64Cpu>, Arc<AtomicU64>) {
    let mut cpu = hart(priv_level);
    let clock = Arc::new(AtomicU64::new(1000));
    let c = clock.clone();
    cpu.time_source = Some(Arc::new(move || c.load(Ordering::Relaxed)));
    (cpu, clock)
}

mod csrs {
    use super::*;

    #[test]
    fn a_new_hart_is_a_user_mode_hart() {
        let cpu = Riscv64Cpu::new(0x1000);
        assert_eq!(cpu.priv_level, PRIV_U);
        assert_eq!(cpu.csrs.satp, 0);
    }

    #[test]
    fn reset_puts_the_hart_in_m_mode_with_its_hartid_and_fp_off() {
        let mut cpu = hart(PRIV_U);
        cpu.csrs.satp = 8 << 60;
        cpu.csrs.mstatus |= MSTATUS_FS;
        super::super::reset(&mut cpu, 3, 0x1000);
        assert_eq!((cpu.priv_level, cpu.pc), (PRIV_M, 0x1000));
        assert_eq!(csr::read(&mut cpu, MHARTID), Ok(3));
        assert_eq!(csr::read(&mut cpu, SATP), Ok(0));
        assert!(!super::super::fp_enabled(&cpu));
    }

    #[test]
    fn unimplemented_csrs_are_illegal_even_in_m_mode() {
        let mut cpu = hart(PRIV_M);
        // mseccfg (no Smepmp), tselect (no triggers), pmpcfg1 (odd: RV32 only), a custom CSR.
        for number in [0x747, 0x7a0, 0x3a1, 0x7c0, 0x600] {
            assert_eq!(csr::read(&mut cpu, number), Err(ILLEGAL), "{number:#x}");
        }
    }

    #[test]
    fn privilege_comes_from_bits_9_8_of_the_number() {
        let mut s = hart(PRIV_S);
        assert_eq!(csr::read(&mut s, MSTATUS), Err(ILLEGAL));
        assert_eq!(csr::write(&mut s, MSCRATCH, 1), Err(ILLEGAL));
        assert!(csr::read(&mut s, SSTATUS).is_ok());
        let mut u = hart(PRIV_U);
        assert_eq!(csr::read(&mut u, SSTATUS), Err(ILLEGAL));
        assert_eq!(csr::read(&mut u, SSCRATCH), Err(ILLEGAL));
    }

    #[test]
    fn read_only_csrs_are_illegal_to_write_even_in_m_mode() {
        let mut cpu = hart(PRIV_M);
        cpu.csrs.mhartid = 5;
        assert_eq!(csr::read(&mut cpu, MHARTID), Ok(5));
        assert_eq!(csr::write(&mut cpu, MHARTID, 1), Err(ILLEGAL));
        assert_eq!(csr::write(&mut cpu, CYCLE, 1), Err(ILLEGAL));
        for id in [MVENDORID, MARCHID, MIMPID, MCONFIGPTR] {
            assert_eq!(csr::read(&mut cpu, id), Ok(0));
        }
        // A read-only CSR read by csrrs x0 (no write) is fine.
        assert_eq!(
            csr::read_modify_write(&mut cpu, MHARTID, CsrOp::Set, 0, false),
            Ok((5, WriteEffect::None))
        );
    }

    #[test]
    fn misa_says_rv64imafdc_with_s_and_u_and_ignores_writes() {
        let mut cpu = hart(PRIV_M);
        let misa = csr::read(&mut cpu, MISA).unwrap();
        assert_eq!(misa >> 62, 2);
        let letters: String = (0..26)
            .filter(|b| misa & (1 << b) != 0)
            .map(|b| (b'A' + b as u8) as char)
            .collect();
        assert_eq!(letters, "ACDFIMSU");
        assert_eq!(csr::write(&mut cpu, MISA, 0), Ok(WriteEffect::None));
        assert_eq!(csr::read(&mut cpu, MISA), Ok(misa));
    }

    #[test]
    fn mstatus_xlen_fields_are_fixed_at_64_bits() {
        let mut cpu = hart(PRIV_M);
        csr::write(&mut cpu, MSTATUS, 0).unwrap();
        let s = csr::read(&mut cpu, MSTATUS).unwrap();
        assert_eq!((s >> 32) & 3, 2, "UXL");
        assert_eq!((s >> 34) & 3, 2, "SXL");
    }

    #[test]
    fn mstatus_mpp_keeps_its_old_value_when_written_with_the_reserved_2() {
        let mut cpu = hart(PRIV_M);
        csr::write(&mut cpu, MSTATUS, 1 << MSTATUS_MPP_SHIFT).unwrap();
        csr::write(&mut cpu, MSTATUS, 2 << MSTATUS_MPP_SHIFT).unwrap();
        assert_eq!(cpu.csrs.mstatus & MSTATUS_MPP, 1 << MSTATUS_MPP_SHIFT);
        csr::write(&mut cpu, MSTATUS, 3 << MSTATUS_MPP_SHIFT).unwrap();
        assert_eq!(cpu.csrs.mstatus & MSTATUS_MPP, 3 << MSTATUS_MPP_SHIFT);
    }

    #[test]
    fn any_fs_but_off_reads_as_dirty_with_sd() {
        let mut cpu = hart(PRIV_M);
        for fs in 1..=3u64 {
            csr::write(&mut cpu, MSTATUS, fs << 13).unwrap();
            let s = csr::read(&mut cpu, MSTATUS).unwrap();
            assert_eq!(s & MSTATUS_FS, MSTATUS_FS, "FS written {fs}");
            assert_ne!(s & MSTATUS_SD, 0);
        }
        csr::write(&mut cpu, MSTATUS, 0).unwrap();
        assert_eq!(
            csr::read(&mut cpu, MSTATUS).unwrap() & (MSTATUS_FS | MSTATUS_SD),
            0
        );
    }

    #[test]
    fn sstatus_is_a_restricted_view_of_mstatus() {
        let mut cpu = hart(PRIV_M);
        csr::write(
            &mut cpu,
            MSTATUS,
            MSTATUS_MIE | MSTATUS_SIE | MSTATUS_MPP | MSTATUS_TVM,
        )
        .unwrap();
        let s = csr::read(&mut cpu, SSTATUS).unwrap();
        assert_eq!(s & (MSTATUS_MIE | MSTATUS_MPP | MSTATUS_TVM), 0);
        assert_ne!(s & MSTATUS_SIE, 0);
        assert_eq!((s >> 32) & 3, 2, "UXL shows");
        assert_eq!((s >> 34) & 3, 0, "SXL does not");
        // Writing sstatus cannot touch M-only fields.
        csr::write(&mut cpu, SSTATUS, MSTATUS_SUM).unwrap();
        let m = cpu.csrs.mstatus;
        assert_ne!(m & MSTATUS_MIE, 0);
        assert_ne!(m & MSTATUS_TVM, 0);
        assert_eq!(m & MSTATUS_SIE, 0);
        assert_ne!(m & MSTATUS_SUM, 0);
    }

    #[test]
    fn satp_accepts_bare_sv39_and_sv48_and_ignores_other_modes() {
        let mut cpu = hart(PRIV_S);
        let sv39 = (SATP_MODE_SV39 << 60) | (7 << 44) | 0x80123;
        assert_eq!(csr::write(&mut cpu, SATP, sv39), Ok(WriteEffect::FlushTlb));
        assert_eq!(csr::read(&mut cpu, SATP), Ok(sv39));
        // Linux probes Sv57 by writing it and reading back: the write must have no effect.
        assert_eq!(
            csr::write(&mut cpu, SATP, (10 << 60) | 0x80000),
            Ok(WriteEffect::None)
        );
        assert_eq!(csr::read(&mut cpu, SATP), Ok(sv39));
        let sv48 = (SATP_MODE_SV48 << 60) | 0x80000;
        csr::write(&mut cpu, SATP, sv48).unwrap();
        assert_eq!(csr::read(&mut cpu, SATP), Ok(sv48));
        csr::write(&mut cpu, SATP, 0).unwrap();
        assert_eq!(csr::read(&mut cpu, SATP), Ok(0));
    }

    #[test]
    fn satp_traps_in_s_mode_with_tvm_but_not_in_m_mode() {
        let mut cpu = hart(PRIV_S);
        cpu.csrs.mstatus |= MSTATUS_TVM;
        assert_eq!(csr::read(&mut cpu, SATP), Err(ILLEGAL));
        assert_eq!(csr::write(&mut cpu, SATP, 0), Err(ILLEGAL));
        cpu.priv_level = PRIV_M;
        assert_eq!(csr::read(&mut cpu, SATP), Ok(0));
    }

    #[test]
    fn medeleg_cannot_delegate_ecall_from_m_and_mideleg_only_s_interrupts() {
        let mut cpu = hart(PRIV_M);
        csr::write(&mut cpu, MEDELEG, u64::MAX).unwrap();
        let e = csr::read(&mut cpu, MEDELEG).unwrap();
        assert_eq!(e & (1 << code::ECALL_M), 0);
        assert_ne!(e & (1 << code::ECALL_U), 0);
        assert_ne!(e & (1 << code::STORE_PAGE_FAULT), 0);
        csr::write(&mut cpu, MIDELEG, u64::MAX).unwrap();
        assert_eq!(
            csr::read(&mut cpu, MIDELEG),
            Ok(MIP_SSIP | MIP_STIP | MIP_SEIP)
        );
    }

    #[test]
    fn counters_below_m_are_gated_by_mcounteren_and_scounteren() {
        let (mut cpu, clock) = hart_with_clock(PRIV_S);
        assert_eq!(csr::read(&mut cpu, TIME), Err(ILLEGAL));
        cpu.csrs.mcounteren = 0b010;
        assert_eq!(csr::read(&mut cpu, TIME), Ok(1000));
        assert_eq!(csr::read(&mut cpu, CYCLE), Err(ILLEGAL));
        cpu.priv_level = PRIV_U;
        assert_eq!(
            csr::read(&mut cpu, TIME),
            Err(ILLEGAL),
            "U needs scounteren too"
        );
        cpu.csrs.scounteren = 0b010;
        clock.store(2000, Ordering::Relaxed);
        assert_eq!(csr::read(&mut cpu, TIME), Ok(2000));
        cpu.priv_level = PRIV_M;
        cpu.csrs.mcounteren = 0;
        assert_eq!(csr::read(&mut cpu, TIME), Ok(2000), "M is never gated");
    }

    #[test]
    fn hpm_counters_and_events_read_zero_and_ignore_writes() {
        let mut cpu = hart(PRIV_M);
        for n in [MHPMCOUNTER3, MHPMCOUNTER31, MHPMEVENT3, MHPMEVENT31] {
            assert_eq!(csr::write(&mut cpu, n, 1), Ok(WriteEffect::None));
            assert_eq!(csr::read(&mut cpu, n), Ok(0));
        }
        assert_eq!(csr::read(&mut cpu, HPMCOUNTER31), Ok(0));
    }

    #[test]
    fn mcycle_writes_set_the_counter_which_then_advances_with_time() {
        let (mut cpu, clock) = hart_with_clock(PRIV_M);
        csr::write(&mut cpu, MCYCLE, 50).unwrap();
        clock.store(1010, Ordering::Relaxed);
        assert_eq!(csr::read(&mut cpu, MCYCLE), Ok(60));
        assert_eq!(csr::read(&mut cpu, CYCLE), Ok(60));
    }

    #[test]
    fn fp_csrs_are_illegal_while_fs_is_off() {
        let mut cpu = hart(PRIV_U);
        cpu.fflags = 0x15;
        cpu.frm = 3;
        assert_eq!(csr::read(&mut cpu, FFLAGS), Err(ILLEGAL));
        cpu.csrs.mstatus |= MSTATUS_FS;
        assert_eq!(csr::read(&mut cpu, FCSR), Ok(3 << 5 | 0x15));
        csr::write(&mut cpu, FCSR, 0xff).unwrap();
        assert_eq!((cpu.frm, cpu.fflags), (7, 0x1f));
    }

    #[test]
    fn sie_and_sip_show_and_write_only_delegated_bits() {
        let mut cpu = hart(PRIV_M);
        cpu.csrs.mideleg = MIP_SSIP | MIP_STIP;
        csr::write(&mut cpu, MIE, MIP_ALL).unwrap();
        cpu.priv_level = PRIV_S;
        assert_eq!(csr::read(&mut cpu, SIE), Ok(MIP_SSIP | MIP_STIP));
        csr::write(&mut cpu, SIE, 0).unwrap();
        assert_eq!(cpu.csrs.mie, MIP_ALL & !(MIP_SSIP | MIP_STIP));
        // SSIP is the only bit S-mode may write in sip, and only when delegated.
        csr::write(&mut cpu, SIP, MIP_SSIP | MIP_STIP).unwrap();
        assert_eq!(cpu.csrs.mip, MIP_SSIP);
        cpu.csrs.mideleg = 0;
        csr::write(&mut cpu, SIP, 0).unwrap();
        assert_eq!(cpu.csrs.mip, MIP_SSIP);
    }

    #[test]
    fn mip_shows_device_lines_that_software_cannot_clear() {
        let mut cpu = hart(PRIV_M);
        cpu.irq_lines.store(MIP_MTIP | MIP_MEIP, Ordering::Release);
        assert_eq!(csr::read(&mut cpu, MIP), Ok(MIP_MTIP | MIP_MEIP));
        csr::write(&mut cpu, MIP, MIP_STIP | MIP_MSIP).unwrap();
        assert_eq!(csr::read(&mut cpu, MIP), Ok(MIP_MTIP | MIP_MEIP | MIP_STIP));
    }

    #[test]
    fn mip_seip_reads_as_line_or_software_bit_but_rmw_uses_the_software_bit() {
        let mut cpu = hart(PRIV_M);
        cpu.irq_lines.store(MIP_SEIP, Ordering::Release);
        assert_eq!(csr::read(&mut cpu, MIP), Ok(MIP_SEIP));
        // csrs mip, SSIP: the line's SEIP must not be latched into the software bit.
        let (old, _) = csr::read_modify_write(&mut cpu, MIP, CsrOp::Set, MIP_SSIP, true).unwrap();
        assert_eq!(old, MIP_SEIP);
        cpu.irq_lines.store(0, Ordering::Release);
        assert_eq!(csr::read(&mut cpu, MIP), Ok(MIP_SSIP));
        csr::read_modify_write(&mut cpu, MIP, CsrOp::Set, MIP_SEIP, true).unwrap();
        assert_eq!(csr::read(&mut cpu, MIP), Ok(MIP_SSIP | MIP_SEIP));
        csr::write(&mut cpu, MIP, 0).unwrap();
        assert_eq!(csr::read(&mut cpu, MIP), Ok(0));
    }

    #[test]
    fn sstc_stimecmp_needs_stce_below_m_and_drives_stip() {
        let (mut cpu, clock) = hart_with_clock(PRIV_S);
        cpu.csrs.mcounteren = 0b010;
        assert_eq!(csr::read(&mut cpu, STIMECMP), Err(ILLEGAL));
        cpu.csrs.menvcfg = MENVCFG_STCE;
        assert_eq!(
            csr::write(&mut cpu, STIMECMP, 1500),
            Ok(WriteEffect::EndBlock)
        );
        assert_eq!(csr::mip(&cpu) & MIP_STIP, 0);
        clock.store(1500, Ordering::Relaxed);
        assert_ne!(csr::mip(&cpu) & MIP_STIP, 0);
        // With Sstc on, mip.STIP is not software-writable.
        cpu.priv_level = PRIV_M;
        csr::write(&mut cpu, MIP, 0).unwrap();
        assert_ne!(csr::mip(&cpu) & MIP_STIP, 0);
        csr::write(&mut cpu, STIMECMP, u64::MAX).unwrap();
        assert_eq!(csr::mip(&cpu) & MIP_STIP, 0);
    }

    #[test]
    fn menvcfg_keeps_only_fiom_and_stce() {
        let mut cpu = hart(PRIV_M);
        csr::write(&mut cpu, MENVCFG, u64::MAX).unwrap();
        assert_eq!(csr::read(&mut cpu, MENVCFG), Ok(MENVCFG_STCE | ENVCFG_FIOM));
    }

    #[test]
    fn trap_vectors_ignore_reserved_modes_and_epcs_clear_bit_0() {
        let mut cpu = hart(PRIV_M);
        csr::write(&mut cpu, MTVEC, 0x8000_0101).unwrap();
        csr::write(&mut cpu, MTVEC, 0x9000_0002).unwrap();
        assert_eq!(csr::read(&mut cpu, MTVEC), Ok(0x8000_0101));
        csr::write(&mut cpu, MEPC, 0x1235).unwrap();
        assert_eq!(csr::read(&mut cpu, MEPC), Ok(0x1234));
        csr::write(&mut cpu, SEPC, 0x1237).unwrap();
        assert_eq!(csr::read(&mut cpu, SEPC), Ok(0x1236));
    }

    #[test]
    fn write_effects_say_what_the_engine_must_redo() {
        let mut cpu = hart(PRIV_M);
        assert_eq!(csr::write(&mut cpu, MSCRATCH, 1), Ok(WriteEffect::None));
        assert_eq!(
            csr::write(&mut cpu, MSTATUS, MSTATUS_MIE),
            Ok(WriteEffect::EndBlock)
        );
        assert_eq!(
            csr::write(&mut cpu, MSTATUS, MSTATUS_MXR),
            Ok(WriteEffect::FlushTlb)
        );
        assert_eq!(
            csr::write(&mut cpu, MIE, MIP_MTIP),
            Ok(WriteEffect::EndBlock)
        );
        assert_eq!(csr::write(&mut cpu, PMPADDR0, 1), Ok(WriteEffect::FlushTlb));
        assert!(csr::write_ends_block(MSTATUS) && csr::write_ends_block(SATP));
        assert!(!csr::write_ends_block(MSCRATCH) && !csr::write_ends_block(FFLAGS));
    }

    #[test]
    fn pmpcfg_packs_eight_entries_per_even_register() {
        let mut cpu = hart(PRIV_M);
        // Legal entries only: R=0 W=1 is reserved and bits 6:5 read zero.
        let v = 0x0f0d_0b09_1f1d_1b19;
        csr::write(&mut cpu, PMPCFG0 + 2, v).unwrap();
        assert_eq!(cpu.csrs.pmpcfg[8], 0x19);
        assert_eq!(cpu.csrs.pmpcfg[15], 0x0f);
        assert_eq!(csr::read(&mut cpu, PMPCFG0 + 2), Ok(v));
        assert_eq!(csr::write(&mut cpu, PMPCFG0 + 3, 0), Err(ILLEGAL));
        csr::write(&mut cpu, PMPADDR0 + 63, u64::MAX).unwrap();
        assert_eq!(csr::read(&mut cpu, PMPADDR63), Ok(PMPADDR_MASK));
    }
}

mod traps {
    use super::*;

    #[test]
    fn a_delegated_exception_from_u_goes_to_s() {
        let mut cpu = hart(PRIV_U);
        cpu.pc = 0x1000;
        cpu.csrs.medeleg = 1 << code::LOAD_PAGE_FAULT;
        cpu.csrs.stvec = 0xffff_ffff_8000_0001; // vectored: exceptions still go to the base
        cpu.csrs.mstatus |= MSTATUS_SIE;
        cpu.reservation = 0x40;
        trap::take_trap(&mut cpu, code::LOAD_PAGE_FAULT, 0xdead);
        assert_eq!(cpu.priv_level, PRIV_S);
        assert_eq!(cpu.pc, 0xffff_ffff_8000_0000);
        let c = &cpu.csrs;
        assert_eq!((c.sepc, c.scause, c.stval), (0x1000, 13, 0xdead));
        assert_eq!(c.mstatus & MSTATUS_SIE, 0);
        assert_ne!(c.mstatus & MSTATUS_SPIE, 0);
        assert_eq!(c.mstatus & MSTATUS_SPP, 0, "came from U");
        assert_eq!(c.mepc, 0, "M state untouched");
        assert_eq!(cpu.reservation, u64::MAX);
    }

    #[test]
    fn an_exception_that_is_not_delegated_goes_to_m() {
        let mut cpu = hart(PRIV_S);
        cpu.pc = 0x2000;
        cpu.csrs.mtvec = 0x8000_0000;
        cpu.csrs.mstatus |= MSTATUS_MIE;
        trap::take_trap(&mut cpu, code::ECALL_S, 0);
        assert_eq!(cpu.priv_level, PRIV_M);
        assert_eq!(cpu.pc, 0x8000_0000);
        let c = &cpu.csrs;
        assert_eq!((c.mepc, c.mcause, c.mtval), (0x2000, 9, 0));
        assert_eq!((c.mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT, PRIV_S);
        assert_ne!(c.mstatus & MSTATUS_MPIE, 0);
        assert_eq!(c.mstatus & MSTATUS_MIE, 0);
    }

    #[test]
    fn traps_in_m_mode_stay_in_m_mode_whatever_medeleg_says() {
        let mut cpu = hart(PRIV_M);
        cpu.csrs.medeleg = MEDELEG_WRITABLE;
        trap::take_trap(&mut cpu, code::ILLEGAL_INSTRUCTION, 0x13);
        assert_eq!(cpu.priv_level, PRIV_M);
        assert_eq!(cpu.csrs.mcause, 2);
        assert_eq!(
            (cpu.csrs.mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT,
            PRIV_M
        );
    }

    #[test]
    fn a_trap_from_s_to_s_records_spp_s() {
        let mut cpu = hart(PRIV_S);
        cpu.csrs.medeleg = 1 << code::BREAKPOINT;
        trap::take_trap(&mut cpu, code::BREAKPOINT, 0);
        assert_eq!(cpu.priv_level, PRIV_S);
        assert_ne!(cpu.csrs.mstatus & MSTATUS_SPP, 0);
    }

    #[test]
    fn vectored_interrupts_jump_to_base_plus_four_times_the_cause() {
        let mut cpu = hart(PRIV_U);
        cpu.csrs.mideleg = MIP_STIP;
        cpu.csrs.stvec = 0x1_0001;
        trap::take_trap(&mut cpu, INTERRUPT | irq::STI, 0);
        assert_eq!(cpu.pc, 0x1_0000 + 4 * 5);
        assert_eq!(cpu.csrs.scause, INTERRUPT | 5);
        cpu.csrs.mtvec = 0x2_0000; // direct
        trap::take_trap(&mut cpu, INTERRUPT | irq::MTI, 0);
        assert_eq!(cpu.pc, 0x2_0000);
    }

    #[test]
    fn mret_returns_to_mpp_restores_mie_and_leaves_mpp_u() {
        let mut cpu = hart(PRIV_S);
        cpu.pc = 0x3000;
        cpu.csrs.mstatus |= MSTATUS_MIE;
        trap::take_trap(&mut cpu, code::ECALL_S, 0);
        cpu.csrs.mepc += 4;
        cpu.csrs.mstatus |= MSTATUS_MPRV;
        trap::mret(&mut cpu).unwrap();
        assert_eq!(cpu.priv_level, PRIV_S);
        assert_eq!(cpu.pc, 0x3004);
        let s = cpu.csrs.mstatus;
        assert_ne!(s & MSTATUS_MIE, 0);
        assert_ne!(s & MSTATUS_MPIE, 0);
        assert_eq!(s & MSTATUS_MPP, 0);
        assert_eq!(s & MSTATUS_MPRV, 0, "leaving M clears MPRV");
    }

    #[test]
    fn mret_back_to_m_keeps_mprv() {
        let mut cpu = hart(PRIV_M);
        cpu.csrs.mstatus |= MSTATUS_MPRV | MSTATUS_MPP;
        trap::mret(&mut cpu).unwrap();
        assert_eq!(cpu.priv_level, PRIV_M);
        assert_ne!(cpu.csrs.mstatus & MSTATUS_MPRV, 0);
    }

    #[test]
    fn sret_returns_to_spp_and_restores_sie() {
        let mut cpu = hart(PRIV_U);
        cpu.pc = 0x4000;
        cpu.csrs.medeleg = 1 << code::ECALL_U;
        cpu.csrs.mstatus |= MSTATUS_SIE;
        trap::take_trap(&mut cpu, code::ECALL_U, 0);
        assert_eq!(cpu.csrs.mstatus & MSTATUS_SIE, 0);
        cpu.csrs.sepc += 4;
        trap::sret(&mut cpu).unwrap();
        assert_eq!(cpu.priv_level, PRIV_U);
        assert_eq!(cpu.pc, 0x4004);
        assert_ne!(cpu.csrs.mstatus & MSTATUS_SIE, 0);
        assert_ne!(cpu.csrs.mstatus & MSTATUS_SPIE, 0);
        assert_eq!(cpu.csrs.mstatus & MSTATUS_SPP, 0);
    }

    #[test]
    fn xret_from_too_low_a_privilege_or_under_tsr_is_illegal() {
        let mut cpu = hart(PRIV_S);
        assert_eq!(trap::mret(&mut cpu), Err(ILLEGAL));
        cpu.csrs.mstatus |= MSTATUS_TSR;
        assert_eq!(trap::sret(&mut cpu), Err(ILLEGAL));
        cpu.priv_level = PRIV_M;
        assert_eq!(trap::sret(&mut cpu), Ok(()), "TSR does not apply to M");
        let mut u = hart(PRIV_U);
        assert_eq!(trap::sret(&mut u), Err(ILLEGAL));
        assert_eq!(u.pc, 0x8000_0000, "nothing changed");
    }

    #[test]
    fn wfi_is_illegal_in_u_and_in_s_under_tw() {
        assert_eq!(trap::wfi(&mut hart(PRIV_U)), Err(ILLEGAL));
        let mut s = hart(PRIV_S);
        assert_eq!(trap::wfi(&mut s), Ok(()));
        s.csrs.mstatus |= MSTATUS_TW;
        assert_eq!(trap::wfi(&mut s), Err(ILLEGAL));
        let mut m = hart(PRIV_M);
        m.csrs.mstatus |= MSTATUS_TW;
        assert_eq!(trap::wfi(&mut m), Ok(()));
    }

    #[test]
    fn wfi_wakes_on_an_enabled_pending_interrupt_whatever_mie_says() {
        let mut cpu = hart(PRIV_M);
        cpu.irq_lines.store(MIP_MTIP, Ordering::Release);
        assert!(!trap::wfi_wakeup(&cpu));
        cpu.csrs.mie = MIP_MTIP;
        assert!(trap::wfi_wakeup(&cpu));
        assert_eq!(trap::pending_interrupt(&cpu), None, "mstatus.MIE is clear");
    }

    /// A hart with every interrupt enabled in mie and `pending` raised.
    fn pending(priv_level: u64, pending: u64, mideleg: u64, mstatus: u64) -> Option<u64> {
        let mut cpu = hart(priv_level);
        cpu.csrs.mie = MIP_ALL;
        cpu.csrs.mideleg = mideleg;
        cpu.csrs.mstatus |= mstatus;
        cpu.csrs.mip = pending & (MIP_SSIP | MIP_STIP);
        cpu.irq_lines
            .store(pending & MIP_DEVICE_BITS, Ordering::Release);
        trap::pending_interrupt(&cpu).map(|c| c & !INTERRUPT)
    }

    #[test]
    fn interrupt_priority_is_mei_msi_mti_sei_ssi_sti() {
        let order = [
            (MIP_MEIP, irq::MEI),
            (MIP_MSIP, irq::MSI),
            (MIP_MTIP, irq::MTI),
            (MIP_SEIP, irq::SEI),
            (MIP_SSIP, irq::SSI),
            (MIP_STIP, irq::STI),
        ];
        for (i, &(_, expected)) in order.iter().enumerate() {
            let set = order[i..].iter().fold(0, |a, (bit, _)| a | bit);
            assert_eq!(pending(PRIV_U, set, 0, 0), Some(expected));
        }
    }

    #[test]
    fn m_interrupts_in_m_mode_need_mstatus_mie() {
        assert_eq!(pending(PRIV_M, MIP_MTIP, 0, 0), None);
        assert_eq!(pending(PRIV_M, MIP_MTIP, 0, MSTATUS_MIE), Some(irq::MTI));
        // Below M, M interrupts are always enabled.
        assert_eq!(pending(PRIV_S, MIP_MTIP, 0, 0), Some(irq::MTI));
    }

    #[test]
    fn delegated_interrupts_are_never_taken_in_m_and_need_sie_in_s() {
        let d = MIP_STIP | MIP_SEIP | MIP_SSIP;
        assert_eq!(
            pending(PRIV_M, MIP_STIP, d, MSTATUS_MIE | MSTATUS_SIE),
            None
        );
        assert_eq!(pending(PRIV_S, MIP_STIP, d, 0), None);
        assert_eq!(pending(PRIV_S, MIP_STIP, d, MSTATUS_SIE), Some(irq::STI));
        assert_eq!(pending(PRIV_U, MIP_STIP, d, 0), Some(irq::STI));
    }

    #[test]
    fn interrupts_for_m_come_before_higher_priority_ones_for_s() {
        // SEI (delegated) outranks STI, but STI is for M here and M goes first.
        let got = pending(PRIV_U, MIP_SEIP | MIP_STIP, MIP_SEIP, 0);
        assert_eq!(got, Some(irq::STI));
    }

    #[test]
    fn sstc_raises_sti_when_time_reaches_stimecmp() {
        let (mut cpu, clock) = hart_with_clock(PRIV_U);
        cpu.csrs.menvcfg = MENVCFG_STCE;
        cpu.csrs.mideleg = MIP_STIP;
        cpu.csrs.mie = MIP_STIP;
        cpu.csrs.stimecmp = 1200;
        assert_eq!(trap::sstc_deadline(&cpu), Some(1200));
        assert_eq!(trap::pending_interrupt(&cpu), None);
        clock.store(1200, Ordering::Relaxed);
        assert_eq!(trap::pending_interrupt(&cpu), Some(INTERRUPT | irq::STI));
    }

    #[test]
    fn exceptions_carry_their_cause_codes_and_values() {
        assert_eq!(Exception::IllegalInstruction(0x73).cause(), 2);
        assert_eq!(Exception::IllegalInstruction(0x73).tval(), 0x73);
        assert_eq!(Exception::EcallM.cause(), 11);
        assert_eq!(Exception::StorePageFault(8).cause(), 15);
        let mut cpu = hart(PRIV_U);
        Exception::LoadAccessFault(0x10).record(&mut cpu);
        assert_eq!((cpu.cause, cpu.tval), (5, 0x10));
    }
}

/// Guest RAM at 0x8000_0000 (16 MiB) holding page tables built by `map`.
struct Space {
    mem: RamAndBus,
    root: u64,
    levels: u32,
    next_table: u64,
}

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: u64 = 0x100_0000;

fn table_pte(pa: u64) -> u64 {
    ((pa >> 12) << PTE_PPN_SHIFT) | PTE_V
}

fn leaf_pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << PTE_PPN_SHIFT) | flags | PTE_V
}

impl Space {
    fn new(levels: u32) -> Space {
        let ram =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_BASE), RAM_SIZE as usize)])
                .unwrap();
        Space {
            mem: RamAndBus::new(ram, devices::bus::Bus::new()),
            root: RAM_BASE + 0x10_0000,
            levels,
            next_table: RAM_BASE + 0x10_1000,
        }
    }

    fn satp(&self) -> u64 {
        let mode = if self.levels == 3 {
            SATP_MODE_SV39
        } else {
            SATP_MODE_SV48
        };
        (mode << 60) | (self.root >> 12)
    }

    fn hart(&self, priv_level: u64) -> Box<Riscv64Cpu> {
        let mut cpu = hart(priv_level);
        cpu.csrs.satp = self.satp();
        cpu
    }

    fn read(&self, addr: u64) -> u64 {
        self.mem.ram().read_obj(GuestAddress(addr)).unwrap()
    }

    fn write(&self, addr: u64, value: u64) {
        self.mem.ram().write_obj(value, GuestAddress(addr)).unwrap()
    }

    /// Maps `va` with a leaf at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB...) holding `pte`;
    /// returns the leaf's address.
    fn map_pte(&mut self, va: u64, level: u32, pte: u64) -> u64 {
        let mut table = self.root;
        for l in (level + 1..self.levels).rev() {
            let slot = table + ((va >> (12 + 9 * l)) & 0x1ff) * 8;
            let entry = self.read(slot);
            table = if entry & PTE_V == 0 {
                let t = self.next_table;
                self.next_table += 0x1000;
                self.write(slot, table_pte(t));
                t
            } else {
                ((entry & PTE_PPN) >> PTE_PPN_SHIFT) << 12
            };
        }
        let slot = table + ((va >> (12 + 9 * level)) & 0x1ff) * 8;
        self.write(slot, pte);
        slot
    }

    fn map(&mut self, va: u64, pa: u64, level: u32, flags: u64) -> u64 {
        self.map_pte(va, level, leaf_pte(pa, flags))
    }

    fn walk(
        &self,
        cpu: &mut Riscv64Cpu,
        va: u64,
        access: Access,
        idx: u8,
    ) -> Result<(u64, PageProt), MemFault> {
        mmu::translate(cpu, &self.mem, va, access, idx).map(|m| (m.phys_page, m.prot))
    }
}

const RWX: u64 = PTE_R | PTE_W | PTE_X;
const LOAD_PF: MemFault = MemFault::Page(code::LOAD_PAGE_FAULT);
const STORE_PF: MemFault = MemFault::Page(code::STORE_PAGE_FAULT);
const FETCH_PF: MemFault = MemFault::Page(code::INSTRUCTION_PAGE_FAULT);

mod paging {
    use super::*;

    #[test]
    fn sv39_maps_a_4k_page_and_sets_a_on_a_load() {
        let mut sp = Space::new(3);
        let leaf = sp.map(0x4000_1000, 0x8020_0000, 0, PTE_R | PTE_W);
        let mut cpu = sp.hart(PRIV_S);
        let (page, prot) = sp.walk(&mut cpu, 0x4000_1234, Access::Read, MMU_S).unwrap();
        assert_eq!(page, 0x8020_0000);
        assert!(prot.read && !prot.execute);
        assert!(!prot.write, "D is clear: a store must walk again to set it");
        let pte = sp.read(leaf);
        assert_ne!(pte & PTE_A, 0);
        assert_eq!(pte & PTE_D, 0);
    }

    #[test]
    fn a_g_bit_in_the_leaf_or_above_makes_the_mapping_global() {
        let mut sp = Space::new(3);
        sp.map(0x4000_1000, 0x8020_0000, 0, PTE_R | PTE_G);
        sp.map(0x4000_2000, 0x8020_1000, 0, PTE_R);
        let mut cpu = sp.hart(PRIV_S);
        let global = |cpu: &mut Riscv64Cpu, va| {
            mmu::translate(cpu, &sp.mem, va, Access::Read, MMU_S)
                .unwrap()
                .global
        };
        assert!(global(&mut cpu, 0x4000_1000));
        assert!(!global(&mut cpu, 0x4000_2000));
        // G on the root's entry covers everything below it.
        let root_shift = 12 + 9 * (sp.levels - 1);
        let root_slot = sp.root + ((0x4000_2000u64 >> root_shift) & 0x1ff) * 8;
        sp.write(root_slot, sp.read(root_slot) | PTE_G);
        assert!(global(&mut cpu, 0x4000_2000));
    }

    #[test]
    fn a_store_sets_d_and_is_granted_write() {
        let mut sp = Space::new(3);
        let leaf = sp.map(0x4000_1000, 0x8020_0000, 0, PTE_R | PTE_W);
        let mut cpu = sp.hart(PRIV_S);
        let (_, prot) = sp
            .walk(&mut cpu, 0x4000_1000, Access::Write, MMU_S)
            .unwrap();
        assert!(prot.write && prot.read);
        assert_eq!(sp.read(leaf) & (PTE_A | PTE_D), PTE_A | PTE_D);
        // Once D is set, a load's walk grants write too.
        let (_, prot) = sp.walk(&mut cpu, 0x4000_1000, Access::Read, MMU_S).unwrap();
        assert!(prot.write);
    }

    #[test]
    fn stores_to_read_only_pages_fault_without_setting_d() {
        let mut sp = Space::new(3);
        let leaf = sp.map(0x4000_1000, 0x8020_0000, 0, PTE_R);
        let mut cpu = sp.hart(PRIV_S);
        assert_eq!(
            sp.walk(&mut cpu, 0x4000_1000, Access::Write, MMU_S),
            Err(STORE_PF)
        );
        assert_eq!(sp.read(leaf) & (PTE_A | PTE_D), 0);
    }

    #[test]
    fn superpages_take_the_low_page_number_bits_from_the_address() {
        let mut sp = Space::new(3);
        sp.map(0x4020_0000, 0x8040_0000, 1, RWX | PTE_A | PTE_D); // 2 MiB
        sp.map(0xc000_0000, 0x1_0000_0000, 2, RWX | PTE_A | PTE_D); // 1 GiB
        let mut cpu = sp.hart(PRIV_S);
        let got = sp
            .walk(&mut cpu, 0x4031_2345, Access::Read, MMU_S)
            .unwrap()
            .0;
        assert_eq!(got, 0x8051_2000);
        let got = sp
            .walk(&mut cpu, 0xc123_4567, Access::Execute, MMU_S)
            .unwrap()
            .0;
        assert_eq!(got, 0x1_0123_4000);
        assert!(cpu.superpages.contains(0x4020_0000) && cpu.superpages.contains(0xc000_0000));
    }

    #[test]
    fn misaligned_superpages_fault() {
        let mut sp = Space::new(3);
        sp.map(0x4020_0000, 0x8040_1000, 1, RWX);
        sp.map(0xc000_0000, 0x8020_0000, 2, RWX);
        let mut cpu = sp.hart(PRIV_S);
        assert_eq!(
            sp.walk(&mut cpu, 0x4020_0000, Access::Read, MMU_S),
            Err(LOAD_PF)
        );
        assert_eq!(
            sp.walk(&mut cpu, 0xc000_0000, Access::Execute, MMU_S),
            Err(FETCH_PF)
        );
    }

    #[test]
    fn non_canonical_addresses_fault_in_sv39_and_sv48() {
        let mut sp = Space::new(3);
        sp.map(0xffff_ffc0_0000_0000, 0x8020_0000, 0, RWX);
        let mut cpu = sp.hart(PRIV_S);
        assert!(sp
            .walk(&mut cpu, 0xffff_ffc0_0000_0000, Access::Read, MMU_S)
            .is_ok());
        // Bit 38 set but bits 63:39 not all equal to it.
        assert_eq!(
            sp.walk(&mut cpu, 0x0000_0040_0000_0000, Access::Read, MMU_S),
            Err(LOAD_PF)
        );
        assert_eq!(
            sp.walk(&mut cpu, 0x7fff_ffc0_0000_0000, Access::Write, MMU_S),
            Err(STORE_PF)
        );
        let mut sp = Space::new(4);
        sp.map(0x0000_7fff_ffff_f000, 0x8020_0000, 0, RWX);
        let mut cpu = sp.hart(PRIV_S);
        assert!(sp
            .walk(&mut cpu, 0x0000_7fff_ffff_f000, Access::Read, MMU_S)
            .is_ok());
        assert_eq!(
            sp.walk(&mut cpu, 0x0000_8000_0000_0000, Access::Read, MMU_S),
            Err(LOAD_PF)
        );
        assert_eq!(
            sp.walk(&mut cpu, 0xffff_0000_0000_0000, Access::Read, MMU_S),
            Err(LOAD_PF)
        );
    }

    #[test]
    fn sv48_walks_four_levels() {
        let mut sp = Space::new(4);
        sp.map(0x0000_7fff_ffff_e000, 0x8030_0000, 0, PTE_R | PTE_U);
        sp.map(0xffff_8000_0000_0000, 0x8000_0000, 2, RWX | PTE_A | PTE_D);
        let mut cpu = sp.hart(PRIV_U);
        let got = sp.walk(&mut cpu, 0x0000_7fff_ffff_e008, Access::Read, MMU_U);
        assert_eq!(got.map(|g| g.0), Ok(0x8030_0000));
        cpu.priv_level = PRIV_S;
        let got = sp.walk(&mut cpu, 0xffff_8000_0123_4000, Access::Write, MMU_S);
        assert_eq!(got.map(|g| g.0), Ok(0x8123_4000));
    }

    #[test]
    fn u_pages_need_sum_from_s_and_are_never_executable_from_s() {
        let mut sp = Space::new(3);
        sp.map(0x1000, 0x8020_0000, 0, RWX | PTE_U);
        let mut cpu = sp.hart(PRIV_S);
        assert_eq!(sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S), Err(LOAD_PF));
        let (_, prot) = sp.walk(&mut cpu, 0x1000, Access::Write, MMU_S_SUM).unwrap();
        assert!(prot.read && prot.write && !prot.execute);
        assert_eq!(
            sp.walk(&mut cpu, 0x1000, Access::Execute, MMU_S_SUM),
            Err(FETCH_PF)
        );
        assert_eq!(
            sp.walk(&mut cpu, 0x1000, Access::Execute, MMU_S),
            Err(FETCH_PF)
        );
        let (_, prot) = sp.walk(&mut cpu, 0x1000, Access::Execute, MMU_U).unwrap();
        assert!(prot.execute);
    }

    #[test]
    fn s_pages_are_out_of_reach_of_u() {
        let mut sp = Space::new(3);
        sp.map(0x1000, 0x8020_0000, 0, RWX);
        let mut cpu = sp.hart(PRIV_U);
        assert_eq!(sp.walk(&mut cpu, 0x1000, Access::Read, MMU_U), Err(LOAD_PF));
        assert!(sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S).is_ok());
    }

    #[test]
    fn mxr_makes_execute_only_pages_readable() {
        let mut sp = Space::new(3);
        sp.map(0x1000, 0x8020_0000, 0, PTE_X);
        let mut cpu = sp.hart(PRIV_S);
        assert_eq!(sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S), Err(LOAD_PF));
        assert!(sp.walk(&mut cpu, 0x1000, Access::Execute, MMU_S).is_ok());
        cpu.csrs.mstatus |= MSTATUS_MXR;
        let (_, prot) = sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S).unwrap();
        assert!(prot.read && !prot.write);
    }

    #[test]
    fn invalid_reserved_and_write_only_ptes_fault() {
        let mut sp = Space::new(3);
        let mut cpu = sp.hart(PRIV_S);
        let cases = [
            leaf_pte(0x8020_0000, RWX) & !PTE_V,
            leaf_pte(0x8020_0000, PTE_W),
            leaf_pte(0x8020_0000, PTE_W | PTE_X),
            leaf_pte(0x8020_0000, RWX) | 1 << 63, // N (Svnapot)
            leaf_pte(0x8020_0000, RWX) | 1 << 61, // PBMT (Svpbmt)
            leaf_pte(0x8020_0000, RWX) | 1 << 54, // reserved
        ];
        for pte in cases {
            sp.map_pte(0x1000, 0, pte);
            assert_eq!(
                sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S),
                Err(LOAD_PF),
                "{pte:#x}"
            );
        }
        sp.map_pte(0x1000, 0, leaf_pte(0x8020_0000, PTE_R));
        assert!(sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S).is_ok());
    }

    #[test]
    fn a_pointer_pte_at_level_0_faults() {
        let mut sp = Space::new(3);
        sp.map_pte(0x1000, 0, table_pte(0x8030_0000));
        let mut cpu = sp.hart(PRIV_S);
        assert_eq!(sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S), Err(LOAD_PF));
    }

    #[test]
    fn a_page_table_outside_ram_is_an_access_fault() {
        let sp = Space::new(3);
        let mut cpu = sp.hart(PRIV_S);
        cpu.csrs.satp = (SATP_MODE_SV39 << 60) | (0x1000_0000 >> 12);
        assert_eq!(
            sp.walk(&mut cpu, 0x1000, Access::Write, MMU_S),
            Err(MemFault::Page(code::STORE_ACCESS))
        );
        assert_eq!(
            sp.walk(&mut cpu, 0x1000, Access::Execute, MMU_S),
            Err(MemFault::Page(code::INSTRUCTION_ACCESS))
        );
    }

    #[test]
    fn m_mode_and_bare_satp_are_untranslated() {
        let mut sp = Space::new(3);
        sp.map(0x8020_0000, 0x8030_0000, 0, RWX);
        let mut cpu = sp.hart(PRIV_M);
        let (page, prot) = sp.walk(&mut cpu, 0x8020_0123, Access::Read, MMU_M).unwrap();
        assert_eq!((page, prot), (0x8020_0000, PageProt::ALL));
        cpu.csrs.satp = 0;
        let got = sp
            .walk(&mut cpu, 0x8020_0123, Access::Read, MMU_S)
            .unwrap()
            .0;
        assert_eq!(got, 0x8020_0000);
        assert_eq!(
            sp.walk(&mut cpu, 1 << 60, Access::Read, MMU_S),
            Err(MemFault::Page(code::LOAD_ACCESS)),
            "beyond the 56-bit physical address space"
        );
    }

    #[test]
    fn data_accesses_use_mpp_under_mprv_and_sum_picks_its_own_index() {
        let mut cpu = hart(PRIV_M);
        assert_eq!((data_mmu_idx(&cpu), code_mmu_idx(&cpu)), (MMU_M, MMU_M));
        cpu.csrs.mstatus |= MSTATUS_MPRV | (1 << MSTATUS_MPP_SHIFT);
        assert_eq!((data_mmu_idx(&cpu), code_mmu_idx(&cpu)), (MMU_S, MMU_M));
        cpu.csrs.mstatus |= MSTATUS_SUM;
        assert_eq!(data_mmu_idx(&cpu), MMU_S_SUM);
        cpu.csrs.mstatus &= !MSTATUS_MPP;
        assert_eq!(data_mmu_idx(&cpu), MMU_U);
        cpu.priv_level = PRIV_S; // MPRV only applies in M
        assert_eq!((data_mmu_idx(&cpu), code_mmu_idx(&cpu)), (MMU_S_SUM, MMU_S));
        cpu.priv_level = PRIV_U;
        assert_eq!((data_mmu_idx(&cpu), code_mmu_idx(&cpu)), (MMU_U, MMU_U));
    }

    #[test]
    fn faults_map_to_exception_codes_of_their_access() {
        let f = mmu::exception_for;
        assert_eq!(f(MemFault::Page(13), Access::Read, 0x10), (13, 0x10));
        assert_eq!(f(MemFault::Misaligned, Access::Write, 0x11), (6, 0x11));
        assert_eq!(f(MemFault::Misaligned, Access::Read, 0x11), (4, 0x11));
        assert_eq!(f(MemFault::Bus, Access::Execute, 0x12), (1, 0x12));
        assert_eq!(f(MemFault::Bus, Access::Write, 0x12), (7, 0x12));
    }
}

mod pmps {
    use super::*;

    fn napot(base: u64, size: u64) -> u64 {
        (base >> 2) | ((size >> 3) - 1)
    }

    fn cfg(a: u8, perms: u8) -> u8 {
        (a << CFG_A_SHIFT) | perms
    }

    #[test]
    fn with_no_active_entry_everyone_passes() {
        let cpu = hart(PRIV_S);
        assert!(pmp::check(&cpu, 0x8000_0000, 8, Access::Write, PRIV_S));
        assert!(pmp::check(&cpu, 0x8000_0000, 8, Access::Write, PRIV_U));
    }

    #[test]
    fn napot_covers_its_power_of_two_region_exactly() {
        let mut cpu = hart(PRIV_M);
        pmp::write_addr(&mut cpu.csrs, 0, napot(0x8000_0000, 0x4_0000));
        pmp::write_cfg(&mut cpu.csrs, 0, cfg(A_NAPOT, CFG_R));
        assert!(pmp::check(&cpu, 0x8000_0000, 4, Access::Read, PRIV_S));
        assert!(pmp::check(&cpu, 0x8003_fffc, 4, Access::Read, PRIV_S));
        assert!(!pmp::check(&cpu, 0x8000_0000, 4, Access::Write, PRIV_S));
        // Outside every entry, with one active: S and U fail, M passes.
        assert!(!pmp::check(&cpu, 0x8004_0000, 4, Access::Read, PRIV_S));
        assert!(!pmp::check(&cpu, 0x7fff_fffc, 4, Access::Read, PRIV_U));
        assert!(pmp::check(&cpu, 0x8004_0000, 4, Access::Read, PRIV_M));
        // Straddling the top boundary fails.
        assert!(!pmp::check(&cpu, 0x8003_fffc, 8, Access::Read, PRIV_S));
    }

    #[test]
    fn tor_spans_from_the_previous_address_and_the_lowest_entry_wins() {
        let mut cpu = hart(PRIV_M);
        // Entry 0: [0, 0x8000_0000) TOR no access; entry 1: [0x8000_0000, 0x9000_0000) RW;
        // entry 2: everything (NAPOT of all ones) RWX.
        pmp::write_addr(&mut cpu.csrs, 0, 0x8000_0000 >> 2);
        pmp::write_addr(&mut cpu.csrs, 1, 0x9000_0000 >> 2);
        pmp::write_addr(&mut cpu.csrs, 2, u64::MAX);
        pmp::write_cfg(&mut cpu.csrs, 0, cfg(A_TOR, 0));
        pmp::write_cfg(&mut cpu.csrs, 1, cfg(A_TOR, CFG_R | CFG_W));
        pmp::write_cfg(&mut cpu.csrs, 2, cfg(A_NAPOT, CFG_R | CFG_W | CFG_X));
        assert!(!pmp::check(&cpu, 0x1000, 4, Access::Read, PRIV_S));
        assert!(pmp::check(&cpu, 0x8000_0000, 4, Access::Write, PRIV_S));
        assert!(!pmp::check(&cpu, 0x8fff_fffc, 4, Access::Execute, PRIV_S));
        assert!(pmp::check(&cpu, 0x9000_0000, 4, Access::Execute, PRIV_U));
        assert!(
            pmp::check(&cpu, 0x1000, 4, Access::Read, PRIV_M),
            "M ignores unlocked"
        );
    }

    #[test]
    fn na4_covers_four_bytes() {
        let mut cpu = hart(PRIV_M);
        pmp::write_addr(&mut cpu.csrs, 0, 0x1000 >> 2);
        pmp::write_cfg(&mut cpu.csrs, 0, cfg(A_NA4, CFG_R));
        assert!(pmp::check(&cpu, 0x1000, 4, Access::Read, PRIV_S));
        assert!(!pmp::check(&cpu, 0x1004, 4, Access::Read, PRIV_S));
    }

    #[test]
    fn locked_entries_bind_m_mode_and_ignore_writes() {
        let mut cpu = hart(PRIV_M);
        pmp::write_addr(&mut cpu.csrs, 0, 0x8000_0000 >> 2);
        pmp::write_addr(&mut cpu.csrs, 1, 0x8010_0000 >> 2);
        pmp::write_cfg(&mut cpu.csrs, 1, cfg(A_TOR, CFG_L | CFG_R));
        assert!(!pmp::check(&cpu, 0x8000_0000, 4, Access::Write, PRIV_M));
        assert!(pmp::check(&cpu, 0x8000_0000, 4, Access::Read, PRIV_M));
        // The entry and the bottom of its TOR range are frozen until reset.
        pmp::write_cfg(&mut cpu.csrs, 1, cfg(A_OFF, 0));
        pmp::write_addr(&mut cpu.csrs, 1, 0);
        pmp::write_addr(&mut cpu.csrs, 0, 0);
        assert_eq!(cpu.csrs.pmpcfg[1], cfg(A_TOR, CFG_L | CFG_R));
        assert_eq!(cpu.csrs.pmpaddr[..2], [0x8000_0000 >> 2, 0x8010_0000 >> 2]);
        // Through the CSRs too.
        csr::write(&mut cpu, PMPCFG0, 0).unwrap();
        assert_eq!(cpu.csrs.pmpcfg[1], cfg(A_TOR, CFG_L | CFG_R));
    }

    #[test]
    fn the_reserved_write_only_combination_is_not_stored() {
        let mut cpu = hart(PRIV_M);
        pmp::write_cfg(&mut cpu.csrs, 3, cfg(A_NAPOT, CFG_R));
        pmp::write_cfg(&mut cpu.csrs, 3, cfg(A_NAPOT, CFG_W));
        assert_eq!(cpu.csrs.pmpcfg[3], cfg(A_NAPOT, CFG_R));
    }

    #[test]
    fn translation_applies_pmp_to_pages_and_to_the_walk_itself() {
        let mut sp = Space::new(3);
        sp.map(0x1000, 0x8080_0000, 0, RWX | PTE_A | PTE_D);
        let mut cpu = sp.hart(PRIV_S);
        // S may use RAM except the firmware's first 1 MiB (where the page tables are not).
        pmp::write_addr(&mut cpu.csrs, 0, napot(RAM_BASE, 0x10_0000));
        pmp::write_cfg(&mut cpu.csrs, 0, cfg(A_NAPOT, 0));
        pmp::write_addr(&mut cpu.csrs, 1, u64::MAX);
        pmp::write_cfg(&mut cpu.csrs, 1, cfg(A_NAPOT, CFG_R | CFG_X));
        let (_, prot) = sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S).unwrap();
        assert_eq!(
            prot,
            PageProt {
                read: true,
                write: false,
                execute: true
            }
        );
        // The store passes the page table's W and D, then fails PMP: an access fault.
        assert_eq!(
            sp.walk(&mut cpu, 0x1000, Access::Write, MMU_S),
            Err(MemFault::Page(code::STORE_ACCESS))
        );
        // A page table inside the protected range: the walk's own read is an access fault.
        cpu.csrs.satp = (SATP_MODE_SV39 << 60) | (RAM_BASE >> 12);
        assert_eq!(
            sp.walk(&mut cpu, 0x1000, Access::Read, MMU_S),
            Err(MemFault::Page(code::LOAD_ACCESS))
        );
        // Bare S-mode accesses are checked as well; M-mode ones are not (unlocked).
        assert_eq!(
            sp.walk(&mut cpu, RAM_BASE, Access::Execute, MMU_M)
                .map(|m| m.0),
            Ok(RAM_BASE)
        );
        cpu.csrs.satp = 0;
        assert_eq!(
            sp.walk(&mut cpu, RAM_BASE, Access::Execute, MMU_S),
            Err(MemFault::Page(code::INSTRUCTION_ACCESS))
        );
    }
}

mod helper_calls {
    use std::cell::RefCell;

    use super::*;

    thread_local! {
        static FLUSHES: RefCell<Vec<Option<u64>>> = const { RefCell::new(Vec::new()) };
    }

    unsafe fn record_flush(_env: u64, page: Option<u64>) {
        FLUSHES.with(|f| f.borrow_mut().push(page));
    }

    fn flushes() -> Vec<Option<u64>> {
        FLUSHES.with(|f| std::mem::take(&mut *f.borrow_mut()))
    }

    fn call(h: &ir::Helper, cpu: &mut Riscv64Cpu, args: [u64; 5]) -> u64 {
        let env = cpu as *mut Riscv64Cpu as u64;
        // SAFETY: `env` is a live hart that nothing else touches during the call.
        unsafe { (h.func)(env, args[0], args[1], args[2], args[3], args[4]) }
    }

    #[test]
    fn csr_rw_returns_the_old_value_and_writes_the_new() {
        let mut cpu = hart(PRIV_M);
        cpu.csrs.mscratch = 0xf0;
        let old = call(&helpers::CSR_RW, &mut cpu, [MSCRATCH as u64, 0x0f, 1, 1, 0]);
        assert_eq!((old, cpu.csrs.mscratch), (0xf0, 0xff));
        let old = call(&helpers::CSR_RW, &mut cpu, [MSCRATCH as u64, 0xf0, 2, 1, 0]);
        assert_eq!((old, cpu.csrs.mscratch), (0xff, 0x0f));
        assert_eq!(cpu.header.unwind, 0);
    }

    #[test]
    fn csr_rw_raises_illegal_instruction_with_the_instruction_bits() {
        let mut cpu = hart(PRIV_S);
        let insn = 0x3400_2573; // csrrs a0, mscratch, x0
        call(&helpers::CSR_RW, &mut cpu, [MSCRATCH as u64, 0, 1, 0, insn]);
        assert_eq!(cpu.header.unwind, 1);
        assert_eq!((cpu.cause, cpu.tval), (2, insn));
    }

    #[test]
    fn satp_writes_through_the_helper_flush_the_tlb() {
        let mut cpu = hart(PRIV_S);
        cpu.flush_tlb = Some(record_flush);
        flushes();
        call(&helpers::CSR_RW, &mut cpu, [SATP as u64, 8 << 60, 0, 1, 0]);
        assert_eq!(flushes(), [None]);
        call(&helpers::CSR_RW, &mut cpu, [SSCRATCH as u64, 1, 0, 1, 0]);
        assert_eq!(flushes(), []);
    }

    #[test]
    fn sfence_vma_flushes_one_page_unless_it_lies_in_a_cached_superpage() {
        let mut cpu = hart(PRIV_S);
        cpu.flush_tlb = Some(record_flush);
        flushes();
        call(&helpers::SFENCE_VMA, &mut cpu, [0x1234, 0, 1, 0, 0]);
        call(&helpers::SFENCE_VMA, &mut cpu, [0, 0, 0, 0, 0]);
        assert_eq!(flushes(), [Some(0x1000), None]);
        cpu.superpages.add(0x4000_0000, 0x20_0000);
        call(&helpers::SFENCE_VMA, &mut cpu, [0x4010_0000, 0, 1, 0, 0]);
        assert_eq!(flushes(), [None]);
        assert_eq!(cpu.superpages, mmu::SuperpageSpan::EMPTY);
    }

    thread_local! {
        static NON_GLOBAL_FLUSHES: RefCell<u32> = const { RefCell::new(0) };
    }

    unsafe fn record_non_global_flush(_env: u64) {
        NON_GLOBAL_FLUSHES.with(|f| *f.borrow_mut() += 1);
    }

    fn non_global_flushes() -> u32 {
        NON_GLOBAL_FLUSHES.with(|f| std::mem::take(&mut *f.borrow_mut()))
    }

    #[test]
    fn a_new_root_or_asid_in_the_same_mode_keeps_global_mappings_a_new_mode_does_not() {
        let mut cpu = hart(PRIV_S);
        cpu.flush_tlb = Some(record_flush);
        cpu.flush_tlb_non_global = Some(record_non_global_flush);
        flushes();
        non_global_flushes();
        let sv39 = SATP_MODE_SV39 << 60;
        call(
            &helpers::CSR_RW,
            &mut cpu,
            [SATP as u64, sv39 | 0x80000, 0, 1, 0],
        );
        assert_eq!(
            (flushes(), non_global_flushes()),
            (vec![None], 0),
            "Bare to Sv39"
        );
        call(
            &helpers::CSR_RW,
            &mut cpu,
            [SATP as u64, sv39 | 5 << 44 | 0x80001, 0, 1, 0],
        );
        assert_eq!(
            (flushes(), non_global_flushes()),
            (vec![], 1),
            "another root and ASID"
        );
        // sfence.vma x0, a0 leaves global mappings; sfence.vma x0, x0 does not.
        call(&helpers::SFENCE_VMA, &mut cpu, [0, 5, 2, 0, 0]);
        assert_eq!((flushes(), non_global_flushes()), (vec![], 1));
        call(&helpers::SFENCE_VMA, &mut cpu, [0, 0, 0, 0, 0]);
        assert_eq!((flushes(), non_global_flushes()), (vec![None], 0));
    }

    #[test]
    fn sfence_vma_is_illegal_in_u_and_under_tvm() {
        let mut cpu = hart(PRIV_U);
        call(&helpers::SFENCE_VMA, &mut cpu, [0, 0, 0, 0x1200_0073, 0]);
        assert_eq!(
            (cpu.header.unwind, cpu.cause, cpu.tval),
            (1, 2, 0x1200_0073)
        );
        let mut cpu = hart(PRIV_S);
        cpu.csrs.mstatus |= MSTATUS_TVM;
        call(&helpers::SFENCE_VMA, &mut cpu, [0, 0, 0, 0, 0]);
        assert_eq!(cpu.header.unwind, 1);
    }

    #[test]
    fn mret_and_sret_helpers_set_pc_and_privilege() {
        let mut cpu = hart(PRIV_M);
        cpu.csrs.mepc = 0x8020_0000;
        cpu.csrs.mstatus |= 1 << MSTATUS_MPP_SHIFT;
        assert_eq!(call(&helpers::MRET, &mut cpu, [0; 5]), 0);
        assert_eq!((cpu.pc, cpu.priv_level), (0x8020_0000, PRIV_S));
        cpu.csrs.sepc = 0x1000;
        call(&helpers::SRET, &mut cpu, [0; 5]);
        assert_eq!(
            (cpu.pc, cpu.priv_level, cpu.header.unwind),
            (0x1000, PRIV_U, 0)
        );
        call(&helpers::MRET, &mut cpu, [0x3020_0073, 0, 0, 0, 0]);
        assert_eq!((cpu.header.unwind, cpu.tval), (1, 0x3020_0073));
    }

    #[test]
    fn wfi_helper_checks_tw() {
        let mut cpu = hart(PRIV_S);
        call(&helpers::WFI, &mut cpu, [0x1050_0073, 0, 0, 0, 0]);
        assert_eq!(cpu.header.unwind, 0);
        cpu.csrs.mstatus |= MSTATUS_TW;
        call(&helpers::WFI, &mut cpu, [0x1050_0073, 0, 0, 0, 0]);
        assert_eq!((cpu.header.unwind, cpu.tval), (1, 0x1050_0073));
    }
}
