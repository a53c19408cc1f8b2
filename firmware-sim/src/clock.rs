//! Time: the TSC, calibrated against PIT channel 2, and the CMOS real-time clock.
#![allow(unsafe_code)]

use crate::port::{inb, outb};

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads the counter (CR4.TSD is clear: we never set it).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// PIT input frequency in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms.
const CAL_DIVISOR: u64 = 100;

/// A calibrated monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// TSC at the image's first instruction.
    pub boot_tsc: u64,
}

impl Clock {
    /// Calibrates the TSC against 10 ms of PIT channel 2 (takes 10 ms).
    pub fn calibrate(boot_tsc: u64) -> Self {
        let latch = PIT_HZ / CAL_DIVISOR;
        // SAFETY: PIT channel 2 and port 0x61's gate bit are only used here; the speaker stays
        // off (bit 1 clear). Same sequence as the classic PIT calibration loop.
        let ticks = unsafe {
            outb(0x61, (inb(0x61) & !0x02) | 0x01);
            outb(0x43, 0xB0); // channel 2, lobyte/hibyte, mode 0
            let [lo, hi, ..] = latch.to_le_bytes();
            outb(0x42, lo);
            outb(0x42, hi);
            let start = rdtsc();
            while inb(0x61) & 0x20 == 0 {
                core::hint::spin_loop();
            }
            rdtsc() - start
        };
        Self {
            tsc_hz: (ticks * CAL_DIVISOR).max(1),
            boot_tsc,
        }
    }

    /// Microseconds since the image's first instruction.
    pub fn micros(&self) -> u64 {
        self.ticks_to_micros(rdtsc().saturating_sub(self.boot_tsc))
    }

    /// Converts a TSC difference to microseconds.
    pub fn ticks_to_micros(&self, ticks: u64) -> u64 {
        u64::try_from(u128::from(ticks) * 1_000_000 / u128::from(self.tsc_hz)).unwrap_or(u64::MAX)
    }
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: selecting a CMOS register (NMI stays enabled, bit 7 clear) and reading it.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

/// Unix time in seconds from the CMOS RTC (which QEMU sets to the host's UTC time).
pub fn unix_time() -> u64 {
    // Wait out an update in progress so the fields are consistent.
    while cmos(0x0A) & 0x80 != 0 {
        core::hint::spin_loop();
    }
    let status_b = cmos(0x0B);
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| {
        if bcd {
            u64::from((v & 0x0F) + (v >> 4) * 10)
        } else {
            u64::from(v)
        }
    };
    let sec = conv(cmos(0x00));
    let min = conv(cmos(0x02));
    let hour_raw = cmos(0x04);
    let mut hour = conv(hour_raw & 0x7F);
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12; // 12-hour mode, PM
    }
    let day = conv(cmos(0x07));
    let month = conv(cmos(0x08));
    let year = 2000 + conv(cmos(0x09));
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
