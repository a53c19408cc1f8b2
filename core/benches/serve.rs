//! Wall clock of request building (mitoken-core vs a `format!`-based build), a whole request
//! through `Server::handle`, and how identity resolution, the server and the token cache scale
//! with 1 → 1000 user-assigned identities / cached tokens.
//!
//! `cargo bench -p mitoken-core --bench serve` (instruction counts of the same functions:
//! `parse_callgrind`, run by `cargo xtask bench`).

mod common;
#[path = "../tests/token_fixture.rs"]
mod fixture;

use common::serve;
use core::hint::black_box;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn build(c: &mut Criterion) {
    let request = serve::build_request();
    let Some(mitoken_core::request::Selector::ClientId(id)) = request.selector else {
        unreachable!("the build request names a client id");
    };
    assert_eq!(
        serve::run_build_mitoken(&request),
        serve::run_build_format(request.resource, id)
    );
    let mut g = c.benchmark_group("request_build");
    g.bench_function("mitoken", |b| {
        b.iter(|| serve::run_build_mitoken(black_box(&request)));
    });
    g.bench_function("format", |b| {
        b.iter(|| serve::run_build_format(black_box(request.resource), black_box(id)));
    });
    g.finish();
}

fn resolve(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolve_client");
    for n in serve::SIZES {
        let table = serve::table(n);
        let id = serve::client_id(serve::probe(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| serve::run_resolve_client(black_box(&table), black_box(&id)));
        });
    }
    g.finish();
    let mut g = c.benchmark_group("resolve_resource");
    for n in serve::SIZES {
        let table = serve::table(n);
        let id = serve::resource_id(serve::probe(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| serve::run_resolve_resource(black_box(&table), black_box(&id)));
        });
    }
    g.finish();
}

fn server(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_handle");
    let mut issuer = serve::CachedIssuer::new(fixture::IMDS_TOKEN_BODY.as_bytes());
    let mut bufs = serve::ServeBuffers::default();
    for n in serve::SIZES {
        let table = serve::table(n);
        let request = serve::serve_request(serve::probe(n));
        assert!(serve::run_server_handle(&table, &mut issuer, &mut bufs, &request) > 2000);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                serve::run_server_handle(&table, &mut issuer, &mut bufs, black_box(&request))
            });
        });
    }
    g.finish();
}

fn cache(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_get");
    for n in serve::SIZES {
        let body = fixture::IMDS_TOKEN_BODY.as_bytes();
        // A few MB: built on a thread with a large stack, then moved here (boxed).
        let mut cache = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || serve::cache(n, body))
            .expect("spawn")
            .join()
            .expect("build cache");
        let id = serve::client_id(serve::probe(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| serve::run_cache_get(black_box(&mut cache), black_box(&id)));
        });
    }
    g.finish();
}

criterion_group!(benches, build, resolve, server, cache);
criterion_main!(benches);
