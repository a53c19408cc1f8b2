//! The same shell as `firmware-sim` without mitoken-core: it sends one fixed request per `req=`
//! and counts the answer's bytes. It exists to measure mitoken-core's share of the image
//! (`cargo xtask sim` compares the two); its behaviour is not the point.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use embedded_io::{Read, Write};
use firmware_sim::cmdline::Settings;
use firmware_sim::{port, sprintln};
use smoltcp::wire::Ipv4Address;

const REQUEST: &[u8] = b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nConnection: close\r\n\r\n";

/// Called by the boot stub in long mode with the `hvm_start_info` address.
#[allow(unsafe_code)]
// SAFETY: the boot stub calls this symbol by name; no other item defines it.
#[unsafe(no_mangle)]
pub extern "C" fn fw_main(start_info: u32) -> ! {
    let (clock, line) = firmware_sim::start(start_info);
    let Ok(settings) = Settings::parse(line) else {
        port::exit(port::EXIT_FAILURE)
    };
    let mut net = firmware_sim::bring_up_net(settings.ip, clock);
    let mut buf = [0u8; 512];
    for _ in settings.requests.iter().flatten() {
        let Ok(mut conn) = net.connect(
            Ipv4Address::new(169, 254, 169, 254),
            80,
            settings.timeout_ms,
        ) else {
            port::exit(port::EXIT_FAILURE)
        };
        let mut total = 0;
        if conn.write_all(REQUEST).is_ok() {
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                total += n;
            }
        }
        sprintln!("baseline: {total} bytes");
    }
    port::exit(port::EXIT_SUCCESS)
}
