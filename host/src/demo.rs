//! `mitoken demo`: the main job end to end on one machine with no Azure.
//!
//! Starts the emulator in-process on an ephemeral loopback port and gets tokens through the same
//! client code as `mitoken token` ([`crate::token_client::TokenClient`]): the system-assigned identity,
//! a user-assigned one by `client_id` and by resource id, each checked against the emulator's
//! published key. Then the default-identity rules on VMs without a system-assigned identity: one
//! user-assigned identity is the default; with two, IMDS's error. Exits 0 when every step behaved
//! as IMDS does.

use std::time::Duration;

use mitoken_core::request::{ResIdParam, Selector, TokenRequest};

use crate::cli::DemoArgs;
use crate::client::{FetchFailure, TokenResponse};
use crate::emulate::config::{EmulatorConfig, Flavor, IdentityConfig};
use crate::emulate::jwt::verify_rs256;
use crate::emulate::serve::{Emulator, EmulatorOptions, RunningEmulator};
use crate::emulate::signing::SigningKey;
use crate::exit::Failure;
use crate::token_client::{
    ClientConfig, EngineSize, GetTokenError, IdentitySelector, TokenClient, TokenSpec,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A demo step that did not go as IMDS would.
#[derive(Debug)]
struct Unexpected(String);

/// Runs `mitoken demo`.
pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    match demo(&args.resource).await {
        Ok(()) => {
            println!("\ndemo finished: every answer matched IMDS's rules");
            Ok(())
        }
        Err(Unexpected(why)) => {
            eprintln!("mitoken demo: {why}");
            Err(Failure::Internal)
        }
    }
}

async fn start(
    config: EmulatorConfig,
    key: &std::sync::Arc<SigningKey>,
) -> Result<RunningEmulator, Unexpected> {
    let options = EmulatorOptions {
        signing_key: Some(std::sync::Arc::clone(key)),
        ..EmulatorOptions::new(Flavor::Imds, config)
    };
    Emulator::start(options)
        .await
        .map_err(|e| Unexpected(format!("cannot start the emulator: {e}")))
}

async fn fetch(
    emulator: &RunningEmulator,
    resource: &str,
    selector: Option<Selector<'_>>,
) -> Result<TokenResponse, FetchFailure> {
    let resource = TokenRequest::from_scope(resource)
        .map_err(FetchFailure::InvalidRequest)?
        .resource
        .to_owned();
    let selector = selector.map(|s| match s {
        Selector::ClientId(id) => IdentitySelector::ClientId(id.to_owned()),
        Selector::ObjectId(id) => IdentitySelector::ObjectId(id.to_owned()),
        Selector::ResourceId { id, param } => IdentitySelector::ResourceId {
            id: id.to_owned(),
            mi_spelling: param == ResIdParam::MiResId,
        },
    });
    let mut config = ClientConfig::new(emulator.base_url());
    config.cache = false;
    config.engine_size = EngineSize::OneShot;
    config.attempt_timeout = TIMEOUT;
    let client = TokenClient::new(config).map_err(GetTokenError::into_fetch_failure)?;
    client
        .get_token(&TokenSpec::new(resource).with_selector(selector))
        .await
        .map(|token| TokenResponse::clone(&token))
        .map_err(GetTokenError::into_fetch_failure)
}

/// Prints what the token says about itself and checks it names `expected`.
fn show_token(
    emulator: &RunningEmulator,
    token: &TokenResponse,
    expected: &IdentityConfig,
    resource: &str,
) -> Result<(), Unexpected> {
    let jwk = emulator.signing_key().jwk();
    let claims = verify_rs256(token.access_token.expose(), jwk)
        .ok_or_else(|| Unexpected("the token's signature does not verify".into()))?;
    let claim = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let (oid, appid, aud) = (claim("oid"), claim("appid"), claim("aud"));
    println!(
        "   <- 200: RS256 JWT ({} bytes), signature verified with JWKS key {}",
        token.access_token.expose().len(),
        jwk.kid
    );
    println!("      aud={aud} oid={oid} appid={appid}");
    println!(
        "      expires_in={} expires_on={} not_before={} (lifetime {} s, like IMDS)",
        token.expires_in.unwrap_or_default(),
        token.expires_on.unwrap_or_default(),
        token.not_before.unwrap_or_default(),
        token
            .expires_on
            .unwrap_or_default()
            .saturating_sub(token.not_before.unwrap_or_default())
    );
    if oid != expected.object_id.to_string()
        || appid != expected.client_id.to_string()
        || aud != resource
    {
        return Err(Unexpected(format!(
            "token for the wrong identity or audience: oid={oid} appid={appid} aud={aud}"
        )));
    }
    Ok(())
}

async fn expect_token(
    emulator: &RunningEmulator,
    resource: &str,
    selector: Option<Selector<'_>>,
    expected: &IdentityConfig,
) -> Result<(), Unexpected> {
    let token = fetch(emulator, resource, selector)
        .await
        .map_err(|e| Unexpected(format!("expected a token: {e}")))?;
    show_token(emulator, &token, expected, resource)
}

fn user(config: &EmulatorConfig, n: usize) -> Result<IdentityConfig, Unexpected> {
    config
        .user_assigned
        .get(n)
        .cloned()
        .ok_or_else(|| Unexpected("the built-in VM lost an identity".into()))
}

async fn demo(resource: &str) -> Result<(), Unexpected> {
    println!("mitoken demo: managed-identity tokens end to end, with no Azure");
    let key = std::sync::Arc::new(
        tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(|e| Unexpected(e.to_string()))?
            .map_err(|e| Unexpected(e.to_string()))?,
    );
    let vm = EmulatorConfig::builtin();
    let sami = vm
        .system_assigned
        .clone()
        .ok_or_else(|| Unexpected("the built-in VM has no system-assigned identity".into()))?;
    let (ua1, ua2) = (user(&vm, 0)?, user(&vm, 1)?);
    let emulator = start(vm.clone(), &key).await?;
    println!(
        "\nIMDS emulator on {} (in-process), VM with a system-assigned and two user-assigned identities",
        emulator.base_url()
    );
    println!(
        "tokens are fetched with the client code of `mitoken token` (mitoken-core over tokio)\n"
    );

    println!("1. system-assigned identity (no selector)");
    expect_token(&emulator, resource, None, &sami).await?;

    let ua1_client = ua1.client_id.to_string();
    println!("\n2. user-assigned identity by client_id={ua1_client}");
    expect_token(
        &emulator,
        resource,
        Some(Selector::ClientId(&ua1_client)),
        &ua1,
    )
    .await?;

    let ua2_res = ua2
        .resource_id()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default();
    println!("\n3. user-assigned identity by resource id (msi_res_id={ua2_res})");
    let by_res = Selector::ResourceId {
        id: &ua2_res,
        param: ResIdParam::MsiResId,
    };
    expect_token(&emulator, resource, Some(by_res), &ua2).await?;

    println!(
        "\n4. an identity the VM does not have (client_id=00000000-0000-0000-0000-000000000000)"
    );
    let missing = Selector::ClientId("00000000-0000-0000-0000-000000000000");
    expect_error(&emulator, resource, Some(missing), "Identity not found").await?;
    emulator.shutdown().await;

    println!("\nThe default identity on a VM without a system-assigned identity:");
    let mut one = vm.clone();
    one.system_assigned = None;
    one.user_assigned.truncate(1);
    let emulator = start(one, &key).await?;
    println!(
        "\n5. VM with one user-assigned identity ({}), no selector: IMDS uses it",
        emulator.base_url()
    );
    expect_token(&emulator, resource, None, &ua1).await?;
    emulator.shutdown().await;

    let mut two = vm;
    two.system_assigned = None;
    let emulator = start(two, &key).await?;
    println!(
        "\n6. VM with two user-assigned identities ({}), no selector: IMDS refuses to guess",
        emulator.base_url()
    );
    expect_error(
        &emulator,
        resource,
        None,
        "Multiple user assigned identities exist",
    )
    .await?;
    println!("   (name one: mitoken token --client-id | --object-id | --resource-id)");
    emulator.shutdown().await;
    Ok(())
}

async fn expect_error(
    emulator: &RunningEmulator,
    resource: &str,
    selector: Option<Selector<'_>>,
    text: &str,
) -> Result<(), Unexpected> {
    match fetch(emulator, resource, selector).await {
        Err(FetchFailure::Service(e))
            if e.status == 400 && e.description.as_deref().is_some_and(|d| d.contains(text)) =>
        {
            println!("   <- {e}");
            Ok(())
        }
        Ok(_) => Err(Unexpected(format!("expected `{text}`, got a token"))),
        Err(e) => Err(Unexpected(format!("expected `{text}`, got: {e}"))),
    }
}
