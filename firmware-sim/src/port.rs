//! x86 port I/O and the QEMU exit device.
#![allow(unsafe_code)]

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// Port writes reach devices directly; the caller must know what the port does.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller; `out` touches no memory and no flags.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
    }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// Port reads may have side effects on the device.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded to the caller; `in` touches no memory and no flags.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags));
    }
    value
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: forwarded to the caller; `out` touches no memory and no flags.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags));
    }
}

/// Reads a 32-bit word from an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: forwarded to the caller; `in` touches no memory and no flags.
    unsafe {
        asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags));
    }
    value
}

/// Port of QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const EXIT_PORT: u16 = 0xF4;

/// Success: QEMU exits with `(0x10 << 1) | 1` = 33, which neither a triple fault (0) nor a QEMU
/// error (1) can produce.
pub const EXIT_SUCCESS: u32 = 0x10;
/// Failure: QEMU exits with 35.
pub const EXIT_FAILURE: u32 = 0x11;
/// Panic: QEMU exits with 37.
pub const EXIT_PANIC: u32 = 0x12;

/// Ends the QEMU process with status `(code << 1) | 1`.
pub fn exit(code: u32) -> ! {
    // SAFETY: the debug-exit device only terminates QEMU; nothing in the guest is touched.
    unsafe { outl(EXIT_PORT, code) };
    // Without the device (a real machine), stop here.
    loop {
        // SAFETY: interrupts are off, so `hlt` just parks the CPU.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}
