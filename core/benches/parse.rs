//! Parsing the 200-OK IMDS fixture: mitoken-core vs the usual std pair (`httparse` +
//! `serde_json`) vs `httparse` + `serde-json-core`, whole responses and bodies alone.
//!
//! `cargo bench -p mitoken-core --bench parse`

mod common;
#[path = "../tests/token_fixture.rs"]
mod fixture;

use common::{
    run_httparse_serde_json, run_httparse_serde_json_core, run_mitoken, run_mitoken_response,
    run_serde_json, run_serde_json_core,
};
use core::hint::black_box;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn response(c: &mut Criterion) {
    let resp = fixture::IMDS_TOKEN_RESPONSE;
    // All three must agree before they are timed.
    let want = run_httparse_serde_json(resp);
    assert!(want > 2000);
    assert_eq!(run_mitoken_response(resp), want);
    assert_eq!(run_httparse_serde_json_core(resp), want);

    let mut g = c.benchmark_group("token_response");
    g.throughput(Throughput::Bytes(resp.len() as u64));
    g.bench_function("mitoken", |b| {
        b.iter(|| run_mitoken_response(black_box(resp)));
    });
    g.bench_function("httparse+serde_json", |b| {
        b.iter(|| run_httparse_serde_json(black_box(resp)));
    });
    g.bench_function("httparse+serde_json_core", |b| {
        b.iter(|| run_httparse_serde_json_core(black_box(resp)));
    });
    g.finish();
}

fn body(c: &mut Criterion) {
    let body = fixture::IMDS_TOKEN_BODY.as_bytes();
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

criterion_group!(benches, response, body);
criterion_main!(benches);
