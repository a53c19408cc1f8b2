//! Token-body parsing: mitoken vs `serde_json` vs `serde-json-core` on the captured IMDS body.
//!
//! `cargo bench -p mitoken-core --bench parse`

mod common;
#[path = "../tests/token_fixture.rs"]
mod fixture;

use common::{run_mitoken, run_serde_json, run_serde_json_core};
use core::hint::black_box;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn parse(c: &mut Criterion) {
    let body = fixture::IMDS_TOKEN_BODY.as_bytes();
    // All three must agree before they are timed.
    let want = run_serde_json(body);
    assert!(want > 2000);
    assert_eq!(run_mitoken(body), want);
    assert_eq!(run_serde_json_core(body), want);

    let mut g = c.benchmark_group("token_body");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("mitoken", |b| b.iter(|| run_mitoken(black_box(body))));
    g.bench_function("serde_json", |b| b.iter(|| run_serde_json(black_box(body))));
    g.bench_function("serde_json_core", |b| {
        b.iter(|| run_serde_json_core(black_box(body)));
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
