//! Stack high-water measurement: the boot stub paints the stack with
//! [`STACK_PAINT`](crate::boot::STACK_PAINT); [`repaint`] paints again below the current frame
//! and [`lowest_touched`] finds the deepest byte written since.
#![allow(unsafe_code)]

use crate::boot::{STACK_PAINT, stack_bounds};

/// Bytes left unpainted below the stack pointer: more than the red zone and `repaint`'s frame.
const MARGIN: usize = 512;

/// The current stack pointer.
#[allow(clippy::inline_always)] // must run in the caller's frame to read its stack pointer
#[inline(always)]
pub fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads `rsp` into a register; no memory or flags are touched.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    };
    sp
}

/// Paints the free part of the stack (below the caller, less a margin) with the paint byte.
#[inline(never)]
pub fn repaint() {
    let (bottom, _) = stack_bounds();
    let end = sp().saturating_sub(MARGIN);
    if end > bottom {
        // SAFETY: `[bottom, end)` lies below the live stack (the stack grows down and nothing
        // else runs: one CPU, interrupts off), so no live object is overwritten.
        unsafe { core::ptr::write_bytes(bottom as *mut u8, STACK_PAINT, end - bottom) };
    }
}

/// The lowest stack address written since the last paint.
#[inline(never)]
pub fn lowest_touched() -> usize {
    let (bottom, top) = stack_bounds();
    let mut addr = bottom;
    while addr < top {
        // SAFETY: `addr` is inside the stack, which is mapped and initialised (painted).
        if unsafe { core::ptr::read_volatile(addr as *const u8) } != STACK_PAINT {
            break;
        }
        addr += 1;
    }
    addr
}
