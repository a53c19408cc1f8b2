//! `TokenClient` against the in-process emulator over loopback: single-flight, the cache,
//! `bypass_cache`, retries and giving up — counted by the emulator itself.

use std::sync::PoisonError;
use std::time::Duration;

use mitoken_core::identity::Flavor;
use mitoken_host::client::FetchFailure;
use mitoken_host::emulate::config::EmulatorConfig;
use mitoken_host::emulate::faults::FaultRule;
use mitoken_host::emulate::serve::{Emulator, EmulatorOptions, RunningEmulator};
use mitoken_host::token_client::{
    ClientConfig, GetTokenError, IdentitySelector, TokenClient, TokenSpec,
};

const ARM: &str = "https://management.azure.com/";
const UA1: &str = "20000000-0000-4000-8000-000000000002";

async fn emulator() -> RunningEmulator {
    Emulator::start(EmulatorOptions::new(
        Flavor::Imds,
        EmulatorConfig::builtin(),
    ))
    .await
    .expect("start the emulator")
}

fn token_requests(emu: &RunningEmulator) -> u64 {
    emu.controls().counters.snapshot().total
}

fn add_fault(emu: &RunningEmulator, rule: &str) {
    let rule: FaultRule = rule.parse().expect("fault rule");
    emu.controls()
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(rule)
        .expect("valid rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_request_then_the_cache() {
    let emu = emulator().await;
    // Slow answers so the callers really overlap.
    add_fault(&emu, "delay=200ms");
    let client = TokenClient::new(ClientConfig::new(emu.base_url())).unwrap();
    let spec = TokenSpec::new(ARM);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, spec) = (client.clone(), spec.clone());
        tasks.spawn(async move { client.get_token(&spec).await });
    }
    let mut tokens = Vec::new();
    while let Some(done) = tasks.join_next().await {
        tokens.push(done.unwrap().expect("a token"));
    }
    assert_eq!(token_requests(&emu), 1, "50 callers, one upstream request");
    assert!(
        tokens
            .windows(2)
            .all(|w| w[0].access_token == w[1].access_token)
    );
    // Later callers are served from the cache, with expires_in counting down from the same expiry.
    let again = client.get_token(&spec).await.unwrap();
    assert_eq!(again.access_token, tokens[0].access_token);
    assert_eq!(again.expires_on, tokens[0].expires_on);
    assert_eq!(token_requests(&emu), 1, "served from the cache");
    // Another identity is another key.
    let other = spec
        .clone()
        .with_selector(Some(IdentitySelector::ClientId(UA1.to_owned())));
    let token = client.get_token(&other).await.unwrap();
    assert_eq!(token.client_id.as_deref(), Some(UA1));
    assert_eq!(token_requests(&emu), 2);
    // bypass_cache goes upstream and comes back with a new token.
    let mut bypass = spec.clone();
    bypass.bypass_cache = true;
    let fresh = client.get_token(&bypass).await.unwrap();
    assert_ne!(fresh.access_token, tokens[0].access_token);
    assert_eq!(token_requests(&emu), 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn retries_through_faults_and_gives_up_on_a_400() {
    let emu = emulator().await;
    add_fault(&emu, "status=404,count=1");
    add_fault(&emu, "status=503,count=1,retry_after=1");
    let client = TokenClient::new(ClientConfig::new(emu.base_url())).unwrap();
    let started = std::time::Instant::now();
    let token = client.get_token(&TokenSpec::new(ARM)).await.unwrap();
    assert!(!token.access_token.expose().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    let counters = emu.controls().counters.snapshot();
    assert_eq!(counters.total, 3, "404, 503, then 200");
    assert_eq!(counters.by_status.get(&404), Some(&1));
    assert_eq!(counters.by_status.get(&503), Some(&1));

    let missing = TokenSpec::new(ARM).with_selector(Some(IdentitySelector::ClientId(
        "99999999-0000-4000-8000-000000000000".to_owned(),
    )));
    let err = client.get_token(&missing).await.unwrap_err();
    let GetTokenError::Failed {
        last: FetchFailure::Service(service),
        attempts,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (service.status, service.description.as_deref()),
        (400, Some("Identity not found"))
    );
    assert_eq!(attempts, 1, "a 400 is not retried");
    assert_eq!(token_requests(&emu), 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_500_storm_ends_in_a_bounded_number_of_retries() {
    let emu = emulator().await;
    add_fault(&emu, "status=500");
    let mut config = ClientConfig::new(emu.base_url());
    // Shrink the schedule's times (not its shape) to keep the test short.
    config.retry.base_delay_ms = 20;
    config.retry.min_server_delay_ms = 10;
    let client = TokenClient::new(config).unwrap();
    let err = client.get_token(&TokenSpec::new(ARM)).await.unwrap_err();
    let GetTokenError::Failed {
        attempts, retry, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*attempts, 6, "one try and five retries");
    assert!(retry.is_some(), "{err}");
    assert_eq!(token_requests(&emu), 6);
    emu.shutdown().await;
}
