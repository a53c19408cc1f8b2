//! Wall clock of mitoken's in-process cached `TokenClient::get_token`: the call an application
//! linking `mitoken-host` makes for every request after the first (compass goal ≤ 1 µs), to
//! set beside Python `azure-identity`'s cached `ManagedIdentityCredential.get_token`
//! (`cargo xtask bench` measures both).
//!
//! The token comes once from an in-process emulator on 127.0.0.1; every timed call is a cache
//! hit (no I/O). `cargo bench -p mitoken-host --bench get_token`.

use core::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use mitoken_host::emulate::config::{EmulatorConfig, Flavor};
use mitoken_host::emulate::serve::{Emulator, EmulatorOptions};
use mitoken_host::token_client::{ClientConfig, TokenClient, TokenSpec};

fn get_token(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (emulator, client, spec) = rt.block_on(async {
        let options = EmulatorOptions::new(Flavor::Imds, EmulatorConfig::builtin());
        let emulator = Emulator::start(options).await.expect("emulator");
        let client =
            TokenClient::new(ClientConfig::new(emulator.base_url())).expect("token client");
        let spec = TokenSpec::new("https://management.azure.com/");
        // The one fetch: every timed call after it is answered from the cache.
        let first = client.get_token(&spec).await.expect("first token");
        assert!(!first.access_token.expose().is_empty());
        (emulator, client, spec)
    });
    let mut g = c.benchmark_group("get_token");
    g.bench_function("mitoken_cached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(client.get_token(black_box(&spec)).await.is_ok());
                }
                t.elapsed()
            })
        });
    });
    g.finish();
    rt.block_on(emulator.shutdown());
}

criterion_group!(benches, get_token);
criterion_main!(benches);
