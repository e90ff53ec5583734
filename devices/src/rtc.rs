//! The MC146818 CMOS real-time clock and its 128 bytes of CMOS RAM (ports 0x70/0x71).
//!
//! Guests read the wall-clock time from it at boot, and firmware-style code reads the CMOS
//! memory-size bytes. Port 0x70 (offset 0) selects a register — bit 7 is the PC's NMI mask,
//! which is ignored — and port 0x71 (offset 1) reads or writes it.
//!
//! What is modelled:
//!
//! - the time and date registers (0x00, 0x02, 0x04, 0x06–0x09, and the PC century byte 0x32),
//!   computed on every read from a [`Clock`] (the host's UTC wall clock in the machine, a fake
//!   one in tests) plus an offset the guest sets by writing them;
//! - register B's data mode (`DM`: binary or BCD) and 12/24-hour bits, honoured on reads and
//!   writes; its `SET` bit freezes the registers so the guest can write a new time, which
//!   becomes an offset from host time when `SET` is cleared (the host clock is never touched);
//! - register A's update-in-progress bit, high for the 244 µs before each second boundary and
//!   the 1984 µs update cycle after it (datasheet timing), so both "wait for UIP to rise" and
//!   "wait for UIP to fall" loops finish within a second of guest time;
//! - register C reads 0 (no interrupt flags), register D reads `VRT` (the battery is good);
//! - the rest of the 128 bytes as plain RAM, with [`Rtc::set_memory_size`] filling the
//!   conventional PC memory-size bytes.
//!
//! Left out: periodic, alarm and update-ended interrupts (the alarm registers and the
//! interrupt-enable bits are stored but nothing ever fires, so there is no IRQ 8), the
//! square-wave output, daylight-saving adjustment (`DSE`), and register A's divider control
//! (the clock always runs). A guest-written day of week is ignored: it is always derived from
//! the date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bus::BusDevice;

/// Length of the device's port range: index at offset 0, data at offset 1.
pub const RTC_LEN: u64 = 2;
/// Size of CMOS RAM, clock registers included.
pub const CMOS_SIZE: usize = 128;

// Port offsets.
/// Index register (port 0x70).
const INDEX_OFFSET: u64 = 0;
/// Data register (port 0x71).
const DATA_OFFSET: u64 = 1;
/// Index bits that select a register; bit 7 is the NMI mask.
const INDEX_MASK: u8 = 0x7f;

// Clock registers.
const REG_SECONDS: u8 = 0x00;
const REG_SECONDS_ALARM: u8 = 0x01;
const REG_MINUTES: u8 = 0x02;
const REG_MINUTES_ALARM: u8 = 0x03;
const REG_HOURS: u8 = 0x04;
const REG_HOURS_ALARM: u8 = 0x05;
const REG_DAY_OF_WEEK: u8 = 0x06;
const REG_DAY_OF_MONTH: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
/// The century byte by IBM PC convention (the FADT's `CENTURY` field names it).
const REG_CENTURY: u8 = 0x32;

// Register A.
/// Update in progress: the time registers are about to change or changing.
const REG_A_UIP: u8 = 0x80;
/// Register A after reset as PC firmware sets it: 32.768 kHz time base, 1024 Hz rate.
const DEFAULT_REG_A: u8 = 0x26;

// Register B.
/// Halt updates so the time can be set.
const REG_B_SET: u8 = 0x80;
/// Update-ended interrupt enable (stored only; cleared when SET is written, per datasheet).
const REG_B_UIE: u8 = 0x10;
/// Data mode: 1 = binary, 0 = BCD.
const REG_B_DM_BINARY: u8 = 0x04;
/// Hour format: 1 = 24-hour, 0 = 12-hour with bit 7 of the hour meaning PM.
const REG_B_24H: u8 = 0x02;
/// Register B as PC firmware leaves it: BCD, 24-hour.
const DEFAULT_REG_B: u8 = REG_B_24H;

// Register D.
/// Valid RAM and time: the battery has not run down.
const REG_D_VRT: u8 = 0x80;

/// In 12-hour mode, bit 7 of the hours register marks PM.
const HOUR_PM: u8 = 0x80;

/// UIP rises this long before each update cycle (datasheet: 244 µs).
const UIP_LEAD: Duration = Duration::from_micros(244);
/// An update cycle lasts this long after the second boundary (datasheet: 1984 µs).
const UPDATE_CYCLE: Duration = Duration::from_micros(1984);

// Conventional PC CMOS memory-size bytes.
/// Base memory in KiB (low, high).
const CMOS_BASE_MEM: u8 = 0x15;
/// Extended memory above 1 MiB in KiB, capped at 0xFFFF (low, high); copied at 0x30.
const CMOS_EXT_MEM: u8 = 0x17;
/// Same as [`CMOS_EXT_MEM`], the copy firmware reports after POST.
const CMOS_EXT_MEM_POST: u8 = 0x30;
/// Memory above 16 MiB in 64 KiB units, capped at 0xFFFF (low, high).
const CMOS_MEM_ABOVE_16M: u8 = 0x34;
/// Memory above 4 GiB in 64 KiB units, 24 bits (low, middle, high).
const CMOS_MEM_ABOVE_4G: u8 = 0x5b;
/// First and last bytes covered by the standard checksum at 0x2E (high) / 0x2F (low).
const CHECKSUM_FIRST: usize = 0x10;
const CHECKSUM_LAST: usize = 0x2d;
const CHECKSUM_HIGH: usize = 0x2e;

/// Largest guest-to-host offset a snapshot may restore: about 10,000 years.
const MAX_OFFSET_SECS: i64 = 10_000 * 366 * 86_400;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Where the RTC gets the time of day.
pub trait Clock: Send {
    /// The time elapsed since the Unix epoch, UTC.
    fn now(&self) -> Duration;
}

/// The host's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A host clock set before 1970 reads as the epoch rather than failing.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A calendar date and time of day, UTC, as the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcTime {
    /// Full year, e.g. 2024.
    pub year: i64,
    /// 1..=12 when valid.
    pub month: u8,
    /// 1..=31 when valid.
    pub day: u8,
    /// 0..=23 when valid.
    pub hour: u8,
    /// 0..=59 when valid.
    pub minute: u8,
    /// 0..=59 when valid.
    pub second: u8,
}

impl RtcTime {
    /// The time `secs` seconds after the Unix epoch (negative: before it).
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (of_day / 3600) as u8,
            minute: (of_day / 60 % 60) as u8,
            second: (of_day % 60) as u8,
        }
    }

    /// Seconds since the Unix epoch, or `None` if a field is out of range.
    fn to_unix(self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        // Checked, because a restored snapshot may carry any year at all.
        days_from_civil(self.year, self.month, self.day)
            .checked_mul(86_400)?
            .checked_add(
                i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second),
            )
    }

    /// Day of the week as the RTC counts it: 1 = Sunday .. 7 = Saturday.
    fn day_of_week(self) -> u8 {
        let days = days_from_civil(self.year, self.month.clamp(1, 12), self.day.max(1));
        // 1970-01-01 was a Thursday.
        (days + 4).rem_euclid(7) as u8 + 1
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date. Counts in 400-year eras (146097
/// days), with years starting in March so the leap day falls last.
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let month = i64::from(month);
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let march_month = (month + 9) % 12; // March = 0 .. February = 11
    let day_of_year = (153 * march_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let days = days + 719_468; // shift the epoch to 0000-03-01
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u8;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// Decodes BCD; invalid digits give a (harmless) out-of-range value, never a panic.
fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// Saved state of an [`Rtc`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtcState {
    /// The selected register.
    pub index: u8,
    /// CMOS RAM. The time registers' bytes are unused: time comes from the clock.
    pub cmos: [u8; CMOS_SIZE],
    /// Guest time minus host time, in seconds.
    pub offset_secs: i64,
    /// The time being set while register B's `SET` bit is on.
    pub frozen: Option<RtcTime>,
}

/// The CMOS RTC.
pub struct Rtc {
    index: u8,
    cmos: [u8; CMOS_SIZE],
    offset_secs: i64,
    frozen: Option<RtcTime>,
    clock: Box<dyn Clock>,
}

impl Rtc {
    /// An RTC showing `clock`'s time, with CMOS RAM cleared and registers A/B as PC firmware
    /// leaves them (BCD, 24-hour).
    pub fn new(clock: Box<dyn Clock>) -> Self {
        let mut cmos = [0; CMOS_SIZE];
        cmos[usize::from(REG_A)] = DEFAULT_REG_A;
        cmos[usize::from(REG_B)] = DEFAULT_REG_B;
        Self {
            index: 0,
            cmos,
            offset_secs: 0,
            frozen: None,
            clock,
        }
    }

    /// The RTC's state, for snapshots.
    pub fn state(&self) -> RtcState {
        RtcState {
            index: self.index,
            cmos: self.cmos,
            offset_secs: self.offset_secs,
            frozen: self.frozen,
        }
    }

    /// Rebuilds an RTC from a saved state; the guest's clock keeps its offset from `clock`.
    pub fn from_state(state: &RtcState, clock: Box<dyn Clock>) -> Self {
        // Keep dates within years 0..=9999 so no calendar arithmetic can overflow, whatever
        // the snapshot says.
        let frozen = state.frozen.map(|t| RtcTime {
            year: t.year.clamp(0, 9999),
            ..t
        });
        Self {
            index: state.index & INDEX_MASK,
            cmos: state.cmos,
            offset_secs: state.offset_secs.clamp(-MAX_OFFSET_SECS, MAX_OFFSET_SECS),
            frozen,
            clock,
        }
    }

    /// Fills the CMOS bytes firmware-style code reads to size memory: base memory (640 KiB),
    /// extended memory above 1 MiB in KiB (0x17/0x18 and 0x30/0x31, capped at 0xFFFF), memory
    /// above 16 MiB in 64 KiB units (0x34/0x35, capped), and memory above 4 GiB in 64 KiB
    /// units (0x5B–0x5D, capped at 24 bits), then updates the checksum at 0x2E/0x2F.
    pub fn set_memory_size(&mut self, below_4g: u64, above_4g: u64) {
        let base_kib = 640u64.min(below_4g / KIB);
        let ext_kib = (below_4g.saturating_sub(MIB) / KIB).min(0xffff);
        let above_16m = (below_4g.saturating_sub(16 * MIB) / (64 * KIB)).min(0xffff);
        let above_4g = (above_4g / (64 * KIB)).min(0xff_ffff);
        self.put_le(CMOS_BASE_MEM, base_kib, 2);
        self.put_le(CMOS_EXT_MEM, ext_kib, 2);
        self.put_le(CMOS_EXT_MEM_POST, ext_kib, 2);
        self.put_le(CMOS_MEM_ABOVE_16M, above_16m, 2);
        self.put_le(CMOS_MEM_ABOVE_4G, above_4g, 3);
        let sum: u16 = self.cmos[CHECKSUM_FIRST..=CHECKSUM_LAST]
            .iter()
            .map(|&b| u16::from(b))
            .sum();
        self.cmos[CHECKSUM_HIGH..CHECKSUM_HIGH + 2].copy_from_slice(&sum.to_be_bytes());
    }

    fn put_le(&mut self, at: u8, value: u64, len: usize) {
        let at = usize::from(at);
        self.cmos[at..at + len].copy_from_slice(&value.to_le_bytes()[..len]);
    }

    fn reg_b(&self) -> u8 {
        self.cmos[usize::from(REG_B)]
    }

    fn host_now(&self) -> Duration {
        self.clock.now()
    }

    fn host_secs(now: Duration) -> i64 {
        i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
    }

    /// The time the registers show: the frozen one while setting, else host time + offset.
    fn current_time(&self) -> RtcTime {
        match self.frozen {
            Some(t) => t,
            None => RtcTime::from_unix(
                Self::host_secs(self.host_now()).saturating_add(self.offset_secs),
            ),
        }
    }

    /// Makes `t` the guest's time from now on, if it is a valid date.
    fn commit(&mut self, t: RtcTime) {
        match t.to_unix() {
            Some(secs) => {
                self.offset_secs = secs.saturating_sub(Self::host_secs(self.host_now()));
                log::debug!(
                    "rtc: guest set the time; offset from host is {}s",
                    self.offset_secs
                );
            }
            None => log::warn!("rtc: guest set an invalid date/time {t:?}; keeping the old time"),
        }
    }

    fn update_in_progress(&self) -> bool {
        if self.reg_b() & REG_B_SET != 0 {
            // SET inhibits updates and clears UIP.
            return false;
        }
        let into_second = Duration::from_nanos(u64::from(self.host_now().subsec_nanos()));
        into_second < UPDATE_CYCLE || into_second >= Duration::from_secs(1) - UIP_LEAD
    }

    fn binary(&self) -> bool {
        self.reg_b() & REG_B_DM_BINARY != 0
    }

    fn encode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, hour: u8) -> u8 {
        if self.reg_b() & REG_B_24H != 0 {
            return self.encode(hour);
        }
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        let hour12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(hour12) | pm
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.reg_b() & REG_B_24H != 0 {
            return self.decode(v);
        }
        let pm = if v & HOUR_PM != 0 { 12 } else { 0 };
        self.decode(v & !HOUR_PM) % 12 + pm
    }

    fn read_time_field(&self, reg: u8) -> u8 {
        let t = self.current_time();
        match reg {
            REG_SECONDS => self.encode(t.second),
            REG_MINUTES => self.encode(t.minute),
            REG_HOURS => self.encode_hour(t.hour),
            REG_DAY_OF_WEEK => self.encode(t.day_of_week()),
            REG_DAY_OF_MONTH => self.encode(t.day),
            REG_MONTH => self.encode(t.month),
            REG_YEAR => self.encode(t.year.rem_euclid(100) as u8),
            _ => self.encode(t.year.div_euclid(100).rem_euclid(100) as u8),
        }
    }

    fn read_register(&self, reg: u8) -> u8 {
        match reg {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_DAY_OF_WEEK | REG_DAY_OF_MONTH
            | REG_MONTH | REG_YEAR | REG_CENTURY => self.read_time_field(reg),
            REG_A => {
                let uip = if self.update_in_progress() {
                    REG_A_UIP
                } else {
                    0
                };
                (self.cmos[usize::from(REG_A)] & !REG_A_UIP) | uip
            }
            REG_C => 0,
            REG_D => REG_D_VRT,
            _ => self.cmos[usize::from(reg & INDEX_MASK)],
        }
    }

    fn write_time_field(&mut self, reg: u8, value: u8) {
        let mut t = self.current_time();
        match reg {
            REG_SECONDS => t.second = self.decode(value),
            REG_MINUTES => t.minute = self.decode(value),
            REG_HOURS => t.hour = self.decode_hour(value),
            REG_DAY_OF_MONTH => t.day = self.decode(value),
            REG_MONTH => t.month = self.decode(value),
            REG_YEAR => t.year = t.year.div_euclid(100) * 100 + i64::from(self.decode(value)),
            REG_CENTURY => {
                t.year = i64::from(self.decode(value)) * 100 + t.year.rem_euclid(100);
            }
            _ => return,
        }
        match &mut self.frozen {
            Some(frozen) => *frozen = t,
            // Without SET the clock keeps running from the new value at once.
            None => self.commit(t),
        }
    }

    fn write_register(&mut self, reg: u8, value: u8) {
        match reg {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_DAY_OF_MONTH | REG_MONTH | REG_YEAR
            | REG_CENTURY => self.write_time_field(reg, value),
            REG_DAY_OF_WEEK => log::debug!("rtc: day-of-week write ignored; it is derived"),
            REG_A => {
                self.cmos[usize::from(REG_A)] = value & !REG_A_UIP;
            }
            REG_B => {
                let old = self.reg_b();
                let mut value = value;
                if value & REG_B_SET != 0 {
                    if old & REG_B_SET == 0 {
                        self.frozen = Some(self.current_time());
                    }
                    value &= !REG_B_UIE;
                }
                self.cmos[usize::from(REG_B)] = value;
                if value & REG_B_SET == 0 {
                    if let Some(t) = self.frozen.take() {
                        self.commit(t);
                    }
                }
            }
            REG_C | REG_D => log::debug!("rtc: write {value:#x} to read-only register {reg:#x}"),
            // The alarms are stored but never compared (no interrupts).
            REG_SECONDS_ALARM | REG_MINUTES_ALARM | REG_HOURS_ALARM => {
                self.cmos[usize::from(reg)] = value;
            }
            _ => self.cmos[usize::from(reg & INDEX_MASK)] = value,
        }
    }
}

impl BusDevice for Rtc {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = match offset + i as u64 {
                // The index register is write-only.
                INDEX_OFFSET => 0xff,
                DATA_OFFSET => self.read_register(self.index),
                _ => 0xff,
            };
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        for (i, &byte) in data.iter().enumerate() {
            match offset + i as u64 {
                INDEX_OFFSET => self.index = byte & INDEX_MASK,
                DATA_OFFSET => self.write_register(self.index, byte),
                _ => log::debug!("rtc: write beyond the device at offset {offset:#x}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// 2024-02-29 13:45:59 UTC, a Thursday in a leap year.
    const LEAP_DAY: u64 = 1_709_214_359;

    /// A clock the test sets by hand, optionally moving on by `step` at every reading.
    #[derive(Clone)]
    struct FakeClock {
        now: Arc<Mutex<Duration>>,
        step: Duration,
    }

    impl FakeClock {
        fn at(secs: u64, nanos: u32) -> Self {
            Self {
                now: Arc::new(Mutex::new(Duration::new(secs, nanos))),
                step: Duration::ZERO,
            }
        }
        fn set(&self, secs: u64, nanos: u32) {
            *self.now.lock().unwrap() = Duration::new(secs, nanos);
        }
        fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            let mut now = self.now.lock().unwrap();
            let t = *now;
            *now += self.step;
            t
        }
    }

    fn rtc_at(secs: u64) -> (Rtc, FakeClock) {
        let clock = FakeClock::at(secs, 500_000_000);
        (Rtc::new(Box::new(clock.clone())), clock)
    }

    fn rd(rtc: &mut Rtc, reg: u8) -> u8 {
        rtc.write(0x70, 0, &[reg]);
        let mut b = [0];
        rtc.read(0x70, 1, &mut b);
        b[0]
    }

    fn wr(rtc: &mut Rtc, reg: u8, value: u8) {
        rtc.write(0x70, 0, &[reg]);
        rtc.write(0x70, 1, &[value]);
    }

    fn time_regs(rtc: &mut Rtc) -> [u8; 8] {
        [
            REG_CENTURY,
            REG_YEAR,
            REG_MONTH,
            REG_DAY_OF_MONTH,
            REG_DAY_OF_WEEK,
            REG_HOURS,
            REG_MINUTES,
            REG_SECONDS,
        ]
        .map(|r| rd(rtc, r))
    }

    #[test]
    fn reads_host_time_in_bcd_by_default() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        assert_eq!(
            time_regs(&mut rtc),
            [0x20, 0x24, 0x02, 0x29, 0x05, 0x13, 0x45, 0x59]
        );
    }

    #[test]
    fn binary_mode_reads_binary() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, REG_B_24H | REG_B_DM_BINARY);
        assert_eq!(time_regs(&mut rtc), [20, 24, 2, 29, 5, 13, 45, 59]);
    }

    #[test]
    fn twelve_hour_mode_marks_pm_in_bit_7() {
        let (mut rtc, clock) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, 0); // BCD, 12-hour
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x81, "13:45 is 1 PM");
        clock.set(946_684_798 - 86_400 + 1, 0); // 1999-12-30 23:59:59
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x91, "11 PM");
        clock.advance(Duration::from_secs(1)); // midnight
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x12, "midnight is 12 AM");
        clock.advance(Duration::from_secs(12 * 3600));
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x92, "noon is 12 PM");
        wr(&mut rtc, REG_B, REG_B_DM_BINARY);
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x80 | 12);
    }

    #[test]
    fn dates_roll_over_years_and_centuries() {
        let (mut rtc, clock) = rtc_at(946_684_798); // 1999-12-31 23:59:58, a Friday
        assert_eq!(
            time_regs(&mut rtc),
            [0x19, 0x99, 0x12, 0x31, 0x06, 0x23, 0x59, 0x58]
        );
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            time_regs(&mut rtc),
            [0x20, 0x00, 0x01, 0x01, 0x07, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn calendar_conversions_agree_both_ways() {
        for days in [-719_468, -1, 0, 59, 365, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn uip_is_high_only_around_the_second_boundary() {
        let (mut rtc, clock) = rtc_at(LEAP_DAY);
        let uip = |rtc: &mut Rtc| rd(rtc, REG_A) & REG_A_UIP != 0;
        assert!(!uip(&mut rtc));
        clock.set(LEAP_DAY, 999_900_000);
        assert!(uip(&mut rtc), "244 us before the update");
        clock.set(LEAP_DAY, 999_000_000);
        assert!(!uip(&mut rtc));
        clock.set(LEAP_DAY + 1, 1_000_000);
        assert!(uip(&mut rtc), "during the update cycle");
        clock.set(LEAP_DAY + 1, 2_500_000);
        assert!(!uip(&mut rtc));
        assert_eq!(rd(&mut rtc, REG_A) & !REG_A_UIP, DEFAULT_REG_A);
    }

    #[test]
    fn linux_style_uip_wait_loops_terminate() {
        // Each register read advances time by 50 us, like a guest spinning on port 0x71.
        let clock = FakeClock {
            now: Arc::new(Mutex::new(Duration::new(LEAP_DAY, 999_000_000))),
            step: Duration::from_micros(50),
        };
        let mut rtc = Rtc::new(Box::new(clock));
        let uip = |rtc: &mut Rtc| rd(rtc, REG_A) & REG_A_UIP != 0;
        let rise = (0..1_000_000).position(|_| uip(&mut rtc));
        assert!(
            rise.is_some_and(|n| n < 100),
            "UIP rose after {rise:?} reads"
        );
        let fall = (0..1_000_000).position(|_| !uip(&mut rtc));
        assert!(
            fall.is_some_and(|n| n < 100),
            "UIP fell after {fall:?} reads"
        );
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x00, "the second ticked over");
    }

    #[test]
    fn setting_the_time_keeps_an_offset_from_the_host() {
        let (mut rtc, clock) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, REG_B_24H | REG_B_SET);
        assert_eq!(rd(&mut rtc, REG_A) & REG_A_UIP, 0, "SET clears UIP");
        for (reg, v) in [
            (REG_CENTURY, 0x20),
            (REG_YEAR, 0x31),
            (REG_MONTH, 0x07),
            (REG_DAY_OF_MONTH, 0x04),
            (REG_HOURS, 0x00),
            (REG_MINUTES, 0x30),
            (REG_SECONDS, 0x00),
        ] {
            wr(&mut rtc, reg, v);
        }
        // Frozen while SET is on, even as the host clock moves.
        clock.advance(Duration::from_secs(5));
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x00);
        wr(&mut rtc, REG_B, REG_B_24H);
        assert_eq!(
            rtc.state().offset_secs,
            1_940_891_400 - (LEAP_DAY as i64 + 5)
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            time_regs(&mut rtc),
            [0x20, 0x31, 0x07, 0x04, 0x06, 0x00, 0x30, 0x10]
        );
    }

    #[test]
    fn a_write_without_set_takes_effect_at_once() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_MINUTES, 0x05);
        assert_eq!(rd(&mut rtc, REG_MINUTES), 0x05);
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x13);
        assert_eq!(rtc.state().offset_secs, -40 * 60);
    }

    #[test]
    fn an_invalid_date_is_not_committed() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, REG_B_24H | REG_B_SET);
        wr(&mut rtc, REG_MONTH, 0x13);
        wr(&mut rtc, REG_B, REG_B_24H);
        assert_eq!(rtc.state().offset_secs, 0);
        assert_eq!(rd(&mut rtc, REG_MONTH), 0x02);
        // Garbage BCD does not panic either.
        wr(&mut rtc, REG_SECONDS, 0xff);
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x59);
    }

    #[test]
    fn status_registers_c_and_d() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_C, 0xff);
        wr(&mut rtc, REG_D, 0x00);
        assert_eq!(rd(&mut rtc, REG_C), 0);
        assert_eq!(rd(&mut rtc, REG_D), REG_D_VRT);
    }

    #[test]
    fn nmi_mask_bit_is_ignored_and_ram_holds_bytes() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        assert_eq!(rd(&mut rtc, 0x80 | REG_B), DEFAULT_REG_B);
        wr(&mut rtc, 0x40, 0xab);
        wr(&mut rtc, 0x7f, 0xcd);
        wr(&mut rtc, REG_HOURS_ALARM, 0x12);
        assert_eq!(rd(&mut rtc, 0xc0), 0xab);
        assert_eq!(rd(&mut rtc, 0x7f), 0xcd);
        assert_eq!(rd(&mut rtc, REG_HOURS_ALARM), 0x12);
        let mut b = [0];
        rtc.read(0x70, 0, &mut b);
        assert_eq!(b, [0xff], "the index port is write-only");
    }

    #[test]
    fn memory_size_bytes() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        rtc.set_memory_size(3 << 30, 1 << 30);
        let bytes = |rtc: &mut Rtc, at: u8, n: u8| -> Vec<u8> {
            (at..at + n).map(|r| rd(rtc, r)).collect()
        };
        assert_eq!(bytes(&mut rtc, 0x15, 2), [0x80, 0x02], "640 KiB");
        assert_eq!(bytes(&mut rtc, 0x17, 2), [0xff, 0xff]);
        assert_eq!(bytes(&mut rtc, 0x30, 2), [0xff, 0xff]);
        assert_eq!(
            bytes(&mut rtc, 0x34, 2),
            [0x00, 0xbf],
            "(3 GiB - 16 MiB) / 64 KiB"
        );
        assert_eq!(
            bytes(&mut rtc, 0x5b, 3),
            [0x00, 0x40, 0x00],
            "1 GiB / 64 KiB"
        );
        let sum: u16 = (0x10..=0x2d).map(|r| u16::from(rd(&mut rtc, r))).sum();
        assert_eq!(bytes(&mut rtc, 0x2e, 2), sum.to_be_bytes());
        // Small machines do not underflow.
        rtc.set_memory_size(8 << 20, 0);
        assert_eq!(bytes(&mut rtc, 0x34, 2), [0, 0]);
        assert_eq!(bytes(&mut rtc, 0x17, 2), [0x00, 0x1c], "7 MiB in KiB");
    }

    #[test]
    fn state_round_trips_with_offset_and_frozen_time() {
        let (mut rtc, clock) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_MINUTES, 0x00);
        wr(&mut rtc, 0x50, 0x77);
        wr(&mut rtc, REG_B, REG_B_24H | REG_B_SET);
        wr(&mut rtc, REG_SECONDS, 0x30);
        let state = rtc.state();
        let mut restored = Rtc::from_state(&state, Box::new(clock.clone()));
        assert_eq!(restored.state(), state);
        wr(&mut restored, REG_B, REG_B_24H);
        assert_eq!(rd(&mut restored, REG_MINUTES), 0x00);
        assert_eq!(rd(&mut restored, REG_SECONDS), 0x30);
        assert_eq!(rd(&mut restored, 0x50), 0x77);
    }

    #[test]
    fn absurd_snapshots_are_clamped_not_fatal() {
        let (rtc, clock) = rtc_at(LEAP_DAY);
        let mut state = rtc.state();
        state.offset_secs = i64::MAX;
        let mut restored = Rtc::from_state(&state, Box::new(clock.clone()));
        time_regs(&mut restored);
        wr(&mut restored, REG_MINUTES, 0x01);
        state.frozen = Some(RtcTime {
            year: i64::MIN,
            month: 0,
            day: 0,
            hour: 99,
            minute: 99,
            second: 99,
        });
        state.cmos[usize::from(REG_B)] = REG_B_SET;
        let mut restored = Rtc::from_state(&state, Box::new(clock));
        time_regs(&mut restored);
        wr(&mut restored, REG_YEAR, 0x99);
        wr(&mut restored, REG_B, 0);
    }
}
