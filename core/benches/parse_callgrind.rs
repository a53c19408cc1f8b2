//! Instruction counts for the parsers, for callgrind (noise-free):
//!
//! ```text
//! cargo bench -p mitoken-core --bench parse_callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*run_mitoken_response*' \
//!     target/release/deps/parse_callgrind-* mitoken_response 1000
//! ```
//! Instructions per parse = collected `Ir` / iterations. Parsers: `mitoken_response`,
//! `httparse_serde_json`, `httparse_serde_json_core` (whole response), `mitoken`, `serde_json`,
//! `serde_json_core` (body only). Without arguments (as `cargo bench` runs it) each runs once as a
//! check. `cargo xtask bench` runs all of them under callgrind and prints the ratios.

mod common;
#[path = "../tests/token_fixture.rs"]
mod fixture;

use core::hint::black_box;

/// A parser entry point of `common`.
type Parser = fn(&[u8]) -> usize;

fn main() {
    let body = fixture::IMDS_TOKEN_BODY.as_bytes();
    let resp = fixture::IMDS_TOKEN_RESPONSE;
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let which = args.next();
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let (run, input): (Parser, &[u8]) = match which.as_deref() {
        Some("mitoken_response") => (common::run_mitoken_response, resp),
        Some("httparse_serde_json") => (common::run_httparse_serde_json, resp),
        Some("httparse_serde_json_core") => (common::run_httparse_serde_json_core, resp),
        Some("mitoken") => (common::run_mitoken, body),
        Some("serde_json") => (common::run_serde_json, body),
        Some("serde_json_core") => (common::run_serde_json_core, body),
        _ => {
            let a = common::run_mitoken(body);
            assert_eq!(a, common::run_serde_json(body));
            assert_eq!(a, common::run_serde_json_core(body));
            assert_eq!(a, common::run_mitoken_response(resp));
            assert_eq!(a, common::run_httparse_serde_json(resp));
            assert_eq!(a, common::run_httparse_serde_json_core(resp));
            println!("parse_callgrind: parsers agree; pass <parser> <iterations> under callgrind");
            return;
        }
    };
    let mut sum = 0usize;
    for _ in 0..iterations {
        sum = sum.wrapping_add(run(black_box(input)));
    }
    println!("{sum}");
}
