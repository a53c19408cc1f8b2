//! Sleeping instead of spinning: `hlt` until a PIT channel-0 one-shot interrupt.
//!
//! Interrupts stay off (`cli`) everywhere except inside [`fw_idle_hlt`], a three-instruction
//! assembly routine (`sti; hlt; cli`): the precompiled `core` uses the red zone, and an
//! interrupt taken in the middle of Rust code would overwrite it. Inside `fw_idle_hlt` the
//! stack top is its own return address, so the interrupt frame lands below live data only.
//!
//! [`init`] loads an IDT whose vectors 32–47 (the remapped PIC's IRQs) point at a handler that
//! acknowledges the interrupt and returns; every PIC line but IRQ 0 (the PIT) stays masked.
//! [`sleep_us`] arms the PIT for at most ~54 ms at a time and halts; time spent halted is
//! counted ([`halted_us`]) so the guest can report how idle it was.
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;
use crate::port::outb;
use crate::statics::Once;

global_asm!(
    ".section .text.fw_idle,\"ax\"",
    ".global fw_idle_hlt",
    "fw_idle_hlt:",
    "    sti",
    "    hlt",
    "    cli",
    "    ret",
    ".global fw_irq_master",
    "fw_irq_master:",
    "    push rax",
    "    mov al, 0x20",
    "    out 0x20, al",
    "    pop rax",
    "    iretq",
    ".global fw_irq_slave",
    "fw_irq_slave:",
    "    push rax",
    "    mov al, 0x20",
    "    out 0xA0, al",
    "    out 0x20, al",
    "    pop rax",
    "    iretq",
);

unsafe extern "C" {
    /// `sti; hlt; cli`: waits for the next interrupt with interrupts enabled only while halted.
    fn fw_idle_hlt();
    /// Handler for IRQs 0–7: EOI to the master PIC.
    fn fw_irq_master();
    /// Handler for IRQs 8–15: EOI to both PICs.
    fn fw_irq_slave();
}

/// One 64-bit interrupt gate.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Self = Self {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    #[allow(clippy::cast_possible_truncation)] // splitting an address into its fields
    fn interrupt(handler: usize, selector: u16) -> Self {
        let a = handler as u64;
        Self {
            offset_low: a as u16,
            selector,
            ist: 0,
            attributes: 0x8E, // present, ring 0, 64-bit interrupt gate
            offset_mid: (a >> 16) as u16,
            offset_high: (a >> 32) as u32,
            reserved: 0,
        }
    }
}

/// Vectors 0–47: CPU exceptions (absent: a fault still ends in a triple fault, as before) and
/// the 16 PIC IRQs.
const VECTORS: usize = 48;
/// PIT input frequency in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Longest one-shot the 16-bit PIT counter holds, in µs (65 535 ticks ≈ 54.9 ms).
const MAX_SHOT_US: u64 = 54_000;

static IDT: Once<[Gate; VECTORS]> = Once::new([Gate::MISSING; VECTORS]);
static HALTED_US: AtomicU64 = AtomicU64::new(0);
static HALTS: AtomicU64 = AtomicU64::new(0);

#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

/// Loads the IDT and programs the PICs (IRQ 0 only). Call once, before [`sleep_us`].
pub fn init() {
    let Some(idt) = IDT.take() else { return };
    let cs: u16;
    // SAFETY: reading CS has no side effects.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    for (v, gate) in idt.iter_mut().enumerate().skip(32) {
        let handler = if v < 40 {
            fw_irq_master as *const () as usize
        } else {
            fw_irq_slave as *const () as usize
        };
        *gate = Gate::interrupt(handler, cs);
    }
    let pointer = IdtPointer {
        limit: u16::try_from(core::mem::size_of::<[Gate; VECTORS]>() - 1).unwrap_or(u16::MAX),
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is a `'static` table of valid gates (or absent ones); interrupts stay
    // disabled until `fw_idle_hlt`. The PIC sequence is the standard ICW1–ICW4 remap to
    // vectors 32/40, then the masks: only IRQ 0 (PIT) may interrupt.
    unsafe {
        asm!("lidt [{}]", in(reg) &raw const pointer, options(readonly, nostack, preserves_flags));
        outb(0x20, 0x11);
        outb(0xA0, 0x11);
        outb(0x21, 0x20);
        outb(0xA1, 0x28);
        outb(0x21, 0x04);
        outb(0xA1, 0x02);
        outb(0x21, 0x01);
        outb(0xA1, 0x01);
        outb(0x21, 0xFE);
        outb(0xA1, 0xFF);
    }
}

/// Arms PIT channel 0 to interrupt once after `us` microseconds (at most [`MAX_SHOT_US`]).
fn arm(us: u64) {
    let ticks = (us.min(MAX_SHOT_US) * PIT_HZ / 1_000_000).clamp(1, 0xFFFF);
    let [lo, hi, ..] = ticks.to_le_bytes();
    // SAFETY: PIT channel 0 is used only here (calibration uses channel 2): mode 0
    // (interrupt on terminal count), lobyte/hibyte.
    unsafe {
        outb(0x43, 0x30);
        outb(0x40, lo);
        outb(0x40, hi);
    }
}

/// Halts for about `us` microseconds (woken early by any unmasked interrupt; the caller looks
/// at its clock and sleeps again if it must).
pub fn sleep_us(clock: &Clock, us: u64) {
    if us == 0 {
        return;
    }
    let start = clock.micros();
    arm(us);
    // SAFETY: `fw_idle_hlt` only enables interrupts for the duration of `hlt`; the IDT set up
    // by `init` handles every unmasked vector.
    unsafe { fw_idle_hlt() };
    HALTED_US.fetch_add(clock.micros().saturating_sub(start), Ordering::Relaxed);
    HALTS.fetch_add(1, Ordering::Relaxed);
}

/// Sleeps until `deadline_us` on `clock` (µs since boot).
pub fn sleep_until(clock: &Clock, deadline_us: u64) {
    loop {
        let now = clock.micros();
        if now >= deadline_us {
            return;
        }
        sleep_us(clock, deadline_us - now);
    }
}

/// Microseconds spent halted so far.
pub fn halted_us() -> u64 {
    HALTED_US.load(Ordering::Relaxed)
}

/// `hlt`s so far.
pub fn halts() -> u64 {
    HALTS.load(Ordering::Relaxed)
}
