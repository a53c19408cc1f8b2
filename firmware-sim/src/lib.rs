//! `firmware-sim`: a bare-metal `x86_64` image that fetches Azure managed-identity tokens from IMDS
//! with mitoken-core over virtio-net and smoltcp.
//!
//! This library is the *shell*: boot, serial, clock, PCI, the virtio HAL and NIC, the network
//! stack, stack measurement. Every module that touches hardware or raw memory says so with
//! `#![allow(unsafe_code)]` at its top; the rest of the crate denies unsafe code. The token
//! logic lives in the binaries (`src/main.rs`; `src/bin/baseline.rs` is the same shell without
//! mitoken-core, to measure the core's share of the image).
#![no_std]
#![deny(unsafe_code)]

pub mod boot;
pub mod clock;
pub mod cmdline;
pub mod hal;
pub mod idle;
mod mem;
pub mod net;
pub mod nic;
pub mod pci;
pub mod port;
pub mod serial;
pub mod stack;
pub mod statics;

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    sprintln!("mitoken-sim: PANIC: {info}");
    port::exit(port::EXIT_PANIC)
}

/// The precompiled `core` is built for unwinding; without LTO the link wants this symbol.
#[allow(unsafe_code)]
// SAFETY: nothing else defines this symbol (std is not linked); with `panic = "abort"` it is
// never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// What every binary does first: serial, clock calibration, the command line.
pub fn start(start_info: u32) -> (clock::Clock, &'static str) {
    let _ = serial::Serial::init();
    let clock = clock::Clock::calibrate(boot::entry_tsc());
    idle::init();
    (clock, boot::cmdline(start_info))
}

/// Brings up the NIC and the network stack, or reports why not and exits.
pub fn bring_up_net(ip: net::IpConfig, clock: clock::Clock) -> net::Net {
    match nic::Nic::init() {
        Ok(nic) => net::Net::new(nic, ip, clock),
        Err(e) => {
            sprintln!("mitoken-sim: FAIL nic: {e:?}");
            port::exit(port::EXIT_FAILURE)
        }
    }
}
