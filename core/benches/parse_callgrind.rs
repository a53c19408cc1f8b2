//! Instruction counts for callgrind (noise-free): the parsers, request building, the server,
//! and how identity resolution and the token cache scale.
//!
//! ```text
//! cargo bench -p mitoken-core --bench parse_callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*run_mitoken_response' \
//!     target/release/deps/parse_callgrind-* mitoken_response 1000
//! valgrind --tool=callgrind --toggle-collect='*run_resolve_client' \
//!     target/release/deps/parse_callgrind-* resolve_client 1000 100
//! ```
//! Instructions per call = collected `Ir` / iterations. Cases (`<case> <iterations> [n]`):
//!
//! - whole response: `mitoken_response`, `httparse_serde_json`, `httparse_serde_json_core`;
//!   body only: `mitoken`, `serde_json`, `serde_json_core`;
//! - request build: `build_mitoken`, `build_format`;
//! - scaling over `n` user-assigned identities (plus a system-assigned one), asking for the
//!   last inserted: `resolve_client`, `resolve_resource` (`IdentityTable::resolve`),
//!   `server_handle` (a whole request through `Server::handle`, answered from a cached token);
//!   over `n` cached tokens: `cache_get` (`TokenCache::get`).
//!
//! Without arguments (as `cargo bench` runs it) each case runs once as a check. `cargo xtask
//! bench` runs all of them under callgrind and writes `docs/benchmarks.md`.

mod common;
#[path = "../tests/token_fixture.rs"]
mod fixture;

use common::serve;
use core::hint::black_box;

/// A parser entry point of `common`.
type Parser = fn(&[u8]) -> usize;

fn parser(which: &str) -> Option<(Parser, &'static [u8])> {
    let body = fixture::IMDS_TOKEN_BODY.as_bytes();
    let resp = fixture::IMDS_TOKEN_RESPONSE;
    Some(match which {
        "mitoken_response" => (common::run_mitoken_response, resp),
        "httparse_serde_json" => (common::run_httparse_serde_json, resp),
        "httparse_serde_json_core" => (common::run_httparse_serde_json_core, resp),
        "mitoken" => (common::run_mitoken, body),
        "serde_json" => (common::run_serde_json, body),
        "serde_json_core" => (common::run_serde_json_core, body),
        _ => return None,
    })
}

/// Runs `case` `iterations` times over fixtures of size `n`; `None` for an unknown case.
fn run_case(case: &str, iterations: usize, n: usize) -> Option<usize> {
    let mut sum = 0usize;
    let mut add = |v: usize| sum = sum.wrapping_add(v);
    if let Some((run, input)) = parser(case) {
        for _ in 0..iterations {
            add(run(black_box(input)));
        }
        return Some(sum);
    }
    match case {
        "build_mitoken" => {
            let request = serve::build_request();
            for _ in 0..iterations {
                add(serve::run_build_mitoken(black_box(&request)));
            }
        }
        "build_format" => {
            let request = serve::build_request();
            let Some(mitoken_core::request::Selector::ClientId(id)) = request.selector else {
                return None;
            };
            for _ in 0..iterations {
                add(serve::run_build_format(
                    black_box(request.resource),
                    black_box(id),
                ));
            }
        }
        "resolve_client" | "resolve_resource" => {
            let table = serve::table(n);
            let client = serve::client_id(serve::probe(n));
            let resource = serve::resource_id(serve::probe(n));
            for _ in 0..iterations {
                add(if case == "resolve_client" {
                    serve::run_resolve_client(black_box(&table), black_box(&client))
                } else {
                    serve::run_resolve_resource(black_box(&table), black_box(&resource))
                });
            }
        }
        "server_handle" => {
            let table = serve::table(n);
            let mut issuer = serve::CachedIssuer::new(fixture::IMDS_TOKEN_BODY.as_bytes());
            let mut bufs = serve::ServeBuffers::default();
            let request = serve::serve_request(serve::probe(n));
            for _ in 0..iterations {
                add(serve::run_server_handle(
                    &table,
                    &mut issuer,
                    &mut bufs,
                    black_box(&request),
                ));
            }
        }
        "cache_get" => {
            // The cache is a few MB: build it off the main thread's stack.
            let body = fixture::IMDS_TOKEN_BODY.as_bytes();
            return std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(move || {
                    let mut cache = serve::cache(n, body);
                    let client = serve::client_id(serve::probe(n));
                    let mut sum = 0usize;
                    for _ in 0..iterations {
                        sum = sum.wrapping_add(serve::run_cache_get(
                            black_box(&mut cache),
                            black_box(&client),
                        ));
                    }
                    sum
                })
                .ok()?
                .join()
                .ok();
        }
        _ => return None,
    }
    Some(sum)
}

/// Every case once, checking that each did its work.
fn check() {
    let body = fixture::IMDS_TOKEN_BODY.as_bytes();
    let want = common::run_serde_json(body);
    for case in [
        "mitoken_response",
        "httparse_serde_json",
        "httparse_serde_json_core",
        "mitoken",
        "serde_json",
        "serde_json_core",
    ] {
        assert_eq!(run_case(case, 1, 1), Some(want), "{case}");
    }
    let built = run_case("build_mitoken", 1, 1).unwrap_or(0);
    assert!(built > 100);
    assert_eq!(run_case("build_format", 1, 1), Some(built));
    for n in serve::SIZES {
        assert_eq!(
            run_case("resolve_client", 1, n),
            Some(serve::probe(n) + 1),
            "{n}"
        );
        assert_eq!(
            run_case("resolve_resource", 1, n),
            Some(serve::probe(n) + 1),
            "{n}"
        );
        assert!(run_case("server_handle", 1, n).unwrap_or(0) > 2000, "{n}");
        assert!(run_case("cache_get", 1, n).unwrap_or(0) > 2000, "{n}");
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(case) = args.next() else {
        check();
        println!(
            "parse_callgrind: every case agrees; pass <case> <iterations> [n] under callgrind"
        );
        return;
    };
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    if let Some(sum) = run_case(&case, iterations, n) {
        println!("{sum}");
    } else {
        eprintln!("parse_callgrind: unknown case `{case}`");
        std::process::exit(2);
    }
}
