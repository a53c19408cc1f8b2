//! Instruction counts for the token-body parsers, for callgrind (noise-free):
//!
//! ```text
//! cargo bench -p mitoken-core --bench parse_callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*run_mitoken*' target/release/deps/parse_callgrind-* mitoken 1000
//! ```
//! Instructions per parse = collected `Ir` / iterations. Parsers: `mitoken`, `serde_json`,
//! `serde_json_core`. Without arguments (as `cargo bench` runs it) each runs once as a check.

mod common;
#[path = "../tests/token_fixture.rs"]
mod fixture;

use core::hint::black_box;

fn main() {
    let body = fixture::IMDS_TOKEN_BODY.as_bytes();
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let which = args.next();
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let run: fn(&[u8]) -> usize = match which.as_deref() {
        Some("mitoken") => common::run_mitoken,
        Some("serde_json") => common::run_serde_json,
        Some("serde_json_core") => common::run_serde_json_core,
        _ => {
            let a = common::run_mitoken(body);
            assert_eq!(a, common::run_serde_json(body));
            assert_eq!(a, common::run_serde_json_core(body));
            println!("parse_callgrind: parsers agree; pass <parser> <iterations> under callgrind");
            return;
        }
    };
    let mut sum = 0usize;
    for _ in 0..iterations {
        sum = sum.wrapping_add(run(black_box(body)));
    }
    println!("{sum}");
}
