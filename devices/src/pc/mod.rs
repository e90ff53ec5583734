//! The legacy PC interrupt and timer chips the x86_64 machine emulates when its CPU runs on
//! the JIT (under KVM the in-kernel irqchip and PIT stand in for them): the 8259A
//! programmable interrupt controller pair and the 8254 programmable interval timer.
//!
//! Wiring on the machine (see the tests below):
//!
//! ```text
//! let pic = Pic::new();                       // ports 0x20, 0xa0, 0x4d0 (2 each)
//! pic.set_output(cpu_intr_line);              // INTR -> the vCPU loop
//! let pit = Pit::new(clock, pic.pin(0)?);     // ports 0x40 (4), IRQ 0
//! let port61 = pit.port61();                  // port 0x61 (1)
//! pit.set_deadline_notifier(wake_timer_thread); // guest reprogrammed counter 0
//! // timer thread: pit.poll(); wait until pit.next_deadline()
//! // vCPU: if pic.intr() && IF { vector = pic.acknowledge(); deliver(vector) }
//! ```
//!
//! Lock order: the PIT's lock is held while it drives IRQ 0, which takes the PIC's lock; the
//! PIC's lock is held while it drives its output. Neither calls back the other way.

pub mod pic;
pub mod pit;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::pic::{Pic, PIC_MASTER_BASE};
    use super::pit::{Pit, PIT_BASE};
    use crate::bus::BusDevice;
    use crate::clock::{Clock, ManualClock};
    use crate::irq::RecordingIrq;

    /// Linux's PIC and periodic PIT setup at HZ = 100, then a CPU that takes every interrupt
    /// (INTA, handler, EOI): 100 timer vectors 0x20 in a second of polled time.
    #[test]
    fn pit_ticks_reach_the_cpu_through_the_pic_at_the_programmed_rate() {
        let clock = Arc::new(ManualClock::new());
        let mut pic = Pic::new();
        let intr = Arc::new(RecordingIrq::default());
        pic.set_output(intr.clone());
        let mut pit = Pit::new(clock.clone(), pic.pin(0).unwrap());
        for (port, value) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0xfe), // only the timer
            (0xa1, 0xff),
        ] {
            let base = port & !1;
            pic.write(base, port - base, &[value]);
        }
        for value in [0x34, 0x9c, 0x2e] {
            // Control word for mode 2, then LATCH = 11932 (0x2e9c).
            let offset = if value == 0x34 { 3 } else { 0 };
            pit.write(PIT_BASE, offset, &[value]);
        }
        // The control word raised OUT: Linux takes (and ignores) that first interrupt.
        fn take(pic: &mut Pic, vectors: &mut Vec<u8>) {
            while pic.intr() {
                vectors.push(pic.acknowledge());
                pic.write(PIC_MASTER_BASE, 0, &[0x20]);
            }
        }
        let mut vectors = Vec::new();
        take(&mut pic, &mut vectors);
        assert_eq!(vectors, [0x20]);
        vectors.clear();
        let start = clock.now();
        while clock.now() - start < Duration::from_millis(1000) {
            let deadline = pit.next_deadline().unwrap();
            let now = clock.now();
            clock.advance(
                deadline
                    .saturating_duration_since(now)
                    .max(Duration::from_micros(50)),
            );
            pit.poll();
            take(&mut pic, &mut vectors);
        }
        assert_eq!(vectors.len(), 100);
        assert!(vectors.iter().all(|&v| v == 0x20));
        assert!(!intr.level());
    }
}
