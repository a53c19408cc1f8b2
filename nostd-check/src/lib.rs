//! Links mitoken-core into a `#![no_std]` static library with its own panic handler.
//!
//! If any dependency of mitoken-core pulled in `std`, this crate would fail to link with a
//! duplicate `panic_impl` lang item. `cargo xtask ci` builds it in release mode with
//! `panic = "abort"`. The probe calls real core code (request writer, response reader, token
//! parser) so it is compiled and linked, not just named.
#![no_std]
#![deny(unsafe_code)]

use core::panic::PanicInfo;

use mitoken_core::http::{Limits, ResponseReader, Status};
use mitoken_core::request::{Endpoint, TokenRequest};
use mitoken_core::token::Token;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 124\r\n\r\n\
{\"access_token\":\"eyJ0.e30.sig\",\"expires_in\":\"86400\",\"expires_on\":\"1796086799\",\
\"resource\":\"https://x/\",\"token_type\":\"Bearer\"}";

/// Writes a token request and parses a token response; returns the request length plus the
/// token length (0 on any error).
#[allow(unsafe_code)]
// SAFETY: `no_mangle` exports this symbol; no other item in the link defines it.
#[unsafe(no_mangle)]
pub extern "C" fn mitoken_nostd_probe() -> usize {
    let mut out = [0u8; 512];
    let request = TokenRequest::new("https://management.azure.com/");
    let written = request.write(&Endpoint::Imds, &mut out).unwrap_or(0);

    let mut buf = [0u8; 512];
    let Some(dst) = buf.get_mut(..RESPONSE.len()) else {
        return 0;
    };
    dst.copy_from_slice(RESPONSE);
    let mut reader = ResponseReader::new(Limits::default());
    let Ok(Status::Complete { value, .. }) = reader.feed(&mut buf, RESPONSE.len()) else {
        return 0;
    };
    let body = value.body(&buf);
    let token_len = Token::parse(body, &mut []).map_or(0, |t| t.access_token.len());
    written + token_len
}

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {}
}
