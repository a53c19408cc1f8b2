//! COM1 (16550 UART at port 0x3F8), polled.
#![allow(unsafe_code)]

use core::fmt;

use crate::port::{inb, outb};

const COM1: u16 = 0x3F8;

/// The serial console. Zero-sized: every instance writes to COM1.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Serial {
    /// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
    pub fn init() -> Self {
        // SAFETY: standard 16550 programming sequence on COM1's own registers.
        unsafe {
            outb(COM1 + 1, 0x00); // no interrupts
            outb(COM1 + 3, 0x80); // DLAB
            outb(COM1, 0x01); // divisor 1: 115200 baud
            outb(COM1 + 1, 0x00);
            outb(COM1 + 3, 0x03); // 8N1
            outb(COM1 + 2, 0xC7); // FIFO on, cleared
            outb(COM1 + 4, 0x03); // DTR, RTS
        }
        Self
    }

    /// Sends one byte, waiting for the transmitter to be free.
    pub fn put(self, byte: u8) {
        // SAFETY: reading the line status and writing the data register of COM1 only.
        unsafe {
            while inb(COM1 + 5) & 0x20 == 0 {
                core::hint::spin_loop();
            }
            outb(COM1, byte);
        }
    }
}

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

/// Prints to the serial console, like `print!`.
#[macro_export]
macro_rules! sprint {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Serial, format_args!($($arg)*));
    }};
}

/// Prints a line to the serial console, like `println!`.
#[macro_export]
macro_rules! sprintln {
    () => { $crate::sprint!("\n") };
    ($($arg:tt)*) => {{
        $crate::sprint!($($arg)*);
        $crate::sprint!("\n");
    }};
}
