//! ACPI tables describing tern's x86_64 machine to the guest.
//!
//! Debian's kernel has virtio-mmio as a module without `virtio_mmio.device=` support, so the
//! virtio-mmio slots are described as ACPI devices (`LNRO0005`, which the virtio_mmio driver
//! matches), the way QEMU's microvm does. The platform is "hardware-reduced" ACPI: no PM1
//! event/control blocks, no SCI; power-off goes through the FADT's sleep control register
//! (the `_S5` package's SLP_TYP), reset through the FADT's reset register. Both registers live
//! in `devices::acpi_pm`.
//!
//! Tables, in guest memory from `ACPI_START`: RSDP, XSDT, FADT, MADT, DSDT, and an HPET table
//! when the machine has an HPET (the machine on the JIT does; KVM's has none).

use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use devices::acpi_pm;

use super::layout::*;

const OEM_ID: [u8; 6] = *b"TERN  ";
const OEM_TABLE_ID: [u8; 8] = *b"TERNPC  ";
const OEM_REVISION: u32 = 1;

/// FADT flags bit 10: the reset register is supported.
const FADT_RESET_REG_SUP: u32 = 1 << 10;
/// IA-PC boot architecture flags bit 2: no VGA.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// The CMOS RTC's century register (devices::rtc keeps the century there).
const CMOS_CENTURY: u8 = 0x32;
/// MADT flags bit 0: the machine also has dual 8259s (KVM's in-kernel PIC).
const MADT_PCAT_COMPAT: u32 = 1;

/// One virtio-mmio slot as the DSDT describes it.
#[derive(Debug, Clone, Copy)]
pub struct VirtioSlot {
    pub addr: u64,
    pub gsi: u32,
}

/// The tables for a machine with `cpus` CPUs, the given virtio-mmio slots and, if `hpet`, the
/// HPET of `devices::hpet`, as bytes to copy to `ACPI_START`. The RSDP comes first (Linux
/// also finds it by scanning 0xE0000-0xFFFFF).
pub fn build_tables(cpus: u32, virtio: &[VirtioSlot], hpet: bool) -> Vec<u8> {
    let mut blob = Vec::new();
    let mut place = |table: &[u8]| -> u64 {
        while blob.len() % 16 != 0 {
            blob.push(0);
        }
        let addr = ACPI_START + blob.len() as u64;
        blob.extend_from_slice(table);
        addr
    };
    // The RSDP's fields depend on the XSDT's address, which depends on the RSDP's size: reserve
    // its space now and fill it in at the end.
    let rsdp_len = Rsdp::len();
    place(&vec![0u8; rsdp_len]);

    let dsdt_addr = place(&dsdt(virtio));
    let fadt_addr = place(&fadt(dsdt_addr));
    let madt_addr = place(&madt(cpus));
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    if hpet {
        xsdt.add_entry(place(&hpet_table()));
    }
    let xsdt_addr = place(&aml_bytes(&xsdt));

    let rsdp = aml_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    blob[..rsdp_len].copy_from_slice(&rsdp);
    assert!(ACPI_START + (blob.len() as u64) <= ACPI_END);
    blob
}

/// AML already serialized, to nest inside a scope.
struct RawAml(Vec<u8>);

impl Aml for RawAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(&self.0);
    }
}

fn aml_bytes(item: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    item.to_aml_bytes(&mut bytes);
    bytes
}

fn io_register(port: u16) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(port),
    )
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .dsdt_64(dsdt_addr);
    fadt.flags = (fadt.flags.get() | FADT_RESET_REG_SUP).into();
    fadt.iapc_boot_arch = IAPC_VGA_NOT_PRESENT.into();
    fadt.century = CMOS_CENTURY;
    fadt.sleep_control_reg = io_register(ACPI_PM_PORT + acpi_pm::SLEEP_CONTROL_OFFSET as u16);
    fadt.sleep_status_reg = io_register(ACPI_PM_PORT + acpi_pm::SLEEP_STATUS_OFFSET as u16);
    fadt.reset_reg = io_register(ACPI_PM_PORT + acpi_pm::RESET_OFFSET as u16);
    fadt.reset_value = acpi_pm::RESET_VALUE;
    aml_bytes(&fadt.finalize())
}

fn madt(cpus: u32) -> Vec<u8> {
    let mut madt = Sdt::new(*b"APIC", 44, 5, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    madt.write_u32(36, LAPIC_ADDR as u32);
    madt.write_u32(40, MADT_PCAT_COMPAT);
    for cpu in 0..cpus {
        // Processor Local APIC: type 0, length 8, ACPI UID, APIC ID, flags (enabled).
        madt.append_slice(&[0, 8, cpu as u8, cpu as u8, 1, 0, 0, 0]);
    }
    // I/O APIC: type 1, length 12, ID, reserved, address, GSI base 0.
    let mut ioapic = vec![1, 12, 0, 0];
    ioapic.extend_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    madt.append_slice(&ioapic);
    // Interrupt Source Override: ISA IRQ 0 (the PIT) arrives on IOAPIC pin 2, as on a PC.
    let mut iso = vec![2, 10, 0, 0];
    iso.extend_from_slice(&2u32.to_le_bytes());
    iso.extend_from_slice(&0u16.to_le_bytes());
    madt.append_slice(&iso);
    // Local APIC NMI: all processors (UID 0xff), LINT1.
    madt.append_slice(&[4, 6, 0xff, 0, 0, 1]);
    madt.as_slice().to_vec()
}

/// The HPET description table (IA-PC HPET specification 1.0a, table 3): the event timer
/// block's ID (the low half of its capabilities register), its base address, HPET number 0,
/// the minimum periodic tick, no page protection.
fn hpet_table() -> Vec<u8> {
    use devices::hpet;
    let mut t = Sdt::new(*b"HPET", 56, 1, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    // Revision 1, NUM_TIM_CAP (timers - 1) at bit 8, 64-bit counter (13), legacy
    // replacement capable (15), PCI vendor ID in the high half.
    let id = 1 | (hpet::TIMERS as u32 - 1) << 8 | 1 << 13 | 1 << 15 | 0x1af4 << 16;
    t.write_u32(36, id);
    // Base address: a GAS in system memory, 64-bit registers.
    t.write_u8(40, 0);
    t.write_u8(41, 64);
    t.write_u8(42, 0);
    t.write_u8(43, 0);
    t.write_u64(44, hpet::HPET_BASE);
    t.write_u8(52, 0);
    // Minimum clock tick in periodic mode: 100 µs worth of counter ticks.
    t.write_u16(53, (hpet::FREQUENCY_HZ / 10_000) as u16);
    t.write_u8(55, 0);
    t.as_slice().to_vec()
}

fn dsdt(virtio: &[VirtioSlot]) -> Vec<u8> {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);

    let com1 = RawAml(aml_bytes(&aml::Device::new(
        "COM1".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new(
                "_CRS".into(),
                &aml::ResourceTemplate::new(vec![
                    &aml::IO::new(COM1_PORT, COM1_PORT, 1, 8),
                    &aml::Interrupt::new(true, true, false, false, COM1_IRQ),
                ]),
            ),
        ],
    )));
    let virtio_devices: Vec<RawAml> = virtio
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let memory = aml::Memory32Fixed::new(true, slot.addr as u32, VIRTIO_MMIO_SIZE as u32);
            let irq = aml::Interrupt::new(true, false, false, false, slot.gsi);
            let crs = aml::ResourceTemplate::new(vec![&memory, &irq]);
            let name = format!("VR{i:02X}");
            RawAml(aml_bytes(&aml::Device::new(
                name.as_str().into(),
                vec![
                    &aml::Name::new("_HID".into(), &"LNRO0005"),
                    &aml::Name::new("_UID".into(), &i),
                    &aml::Name::new("_CCA".into(), &aml::ONE),
                    &aml::Name::new("_CRS".into(), &crs),
                ],
            )))
        })
        .collect();

    let mut children: Vec<&dyn Aml> = vec![&com1];
    children.extend(virtio_devices.iter().map(|d| d as &dyn Aml));
    let sb = aml::Scope::new("_SB_".into(), children);
    sb.to_aml_bytes(&mut dsdt);

    // \_S5: the SLP_TYP value the guest writes to the sleep control register to power off.
    let s5_typ = acpi_pm::S5_SLP_TYP;
    let s5 = aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&s5_typ, &aml::ZERO, &aml::ZERO, &aml::ZERO]),
    );
    s5.to_aml_bytes(&mut dsdt);
    dsdt.as_slice().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(table: &[u8]) -> bool {
        table.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    fn table_at(blob: &[u8], addr: u64) -> &[u8] {
        let off = (addr - ACPI_START) as usize;
        let len = u32::from_le_bytes(blob[off + 4..off + 8].try_into().unwrap()) as usize;
        &blob[off..off + len]
    }

    fn u64_at(bytes: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn rsdp_leads_to_fadt_madt_and_dsdt_with_valid_checksums() {
        let slots = [VirtioSlot {
            addr: VIRTIO_MMIO_BASE,
            gsi: 16,
        }];
        let blob = build_tables(2, &slots, false);
        assert_eq!(&blob[..8], b"RSD PTR ");
        assert!(checksum_ok(&blob[..20]) && checksum_ok(&blob[..36]));
        let xsdt = table_at(&blob, u64_at(&blob, 24));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert!(checksum_ok(xsdt));
        let fadt = table_at(&blob, u64_at(xsdt, 36));
        let madt = table_at(&blob, u64_at(xsdt, 44));
        assert_eq!(&fadt[..4], b"FACP");
        assert_eq!(&madt[..4], b"APIC");
        assert!(checksum_ok(fadt) && checksum_ok(madt));
        // FADT flags at offset 112: hardware-reduced (bit 20) and reset register (bit 10).
        let flags = u32::from_le_bytes(fadt[112..116].try_into().unwrap());
        assert_ne!(flags & (1 << 20), 0);
        assert_ne!(flags & FADT_RESET_REG_SUP, 0);
        // X_DSDT at offset 140.
        let dsdt = table_at(&blob, u64_at(fadt, 140));
        assert_eq!(&dsdt[..4], b"DSDT");
        assert!(checksum_ok(dsdt));
        let has = |needle: &[u8]| dsdt.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"LNRO0005") && has(b"_S5_") && has(b"COM1") && has(b"VR00"));
        // Two local APICs, one IOAPIC, one override, one NMI entry.
        assert_eq!(madt.len(), 44 + 2 * 8 + 12 + 10 + 6);
    }

    #[test]
    fn an_hpet_table_names_the_hpet_when_the_machine_has_one() {
        let blob = build_tables(1, &[], true);
        let xsdt = table_at(&blob, u64_at(&blob, 24));
        assert_eq!(xsdt.len(), 36 + 3 * 8, "FADT, MADT and HPET");
        let hpet = table_at(&blob, u64_at(xsdt, 52));
        assert_eq!(&hpet[..4], b"HPET");
        assert_eq!(hpet.len(), 56);
        assert!(checksum_ok(hpet));
        assert_eq!(u64_at(hpet, 44), devices::hpet::HPET_BASE);
        let id = u32::from_le_bytes(hpet[36..40].try_into().unwrap());
        assert_eq!((id >> 8) & 0x1f, 2, "three comparators");
        let without = build_tables(1, &[], false);
        let xsdt = table_at(&without, u64_at(&without, 24));
        assert_eq!(xsdt.len(), 36 + 2 * 8);
    }
}
