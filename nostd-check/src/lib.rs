//! Links mitoken-core into a `#![no_std]` static library with its own panic handler.
//!
//! If any dependency of mitoken-core pulled in `std`, this crate would fail to link with a
//! duplicate `panic_impl` lang item. `cargo xtask ci` builds it in release mode with
//! `panic = "abort"`.
#![no_std]

use core::panic::PanicInfo;

/// Keeps mitoken-core's code reachable so the linker must resolve it.
#[unsafe(no_mangle)]
pub extern "C" fn mitoken_nostd_probe() -> usize {
    core::mem::size_of::<mitoken_core::Error>()
}

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {}
}
