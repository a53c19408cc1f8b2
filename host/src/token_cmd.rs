//! `mitoken token`: get one access token and print it.

use std::io::Write;

use std::time::Duration;

use mitoken_core::request::{Endpoint, Style, TokenRequest};

use crate::cli::{OutputFormat, TokenArgs};
use crate::client::{FetchFailure, TokenResponse, unix_now};
use crate::exit::Failure;
use crate::output::render;
use crate::token_client::{ClientConfig, EngineSize, IdentitySelector, TokenClient, TokenSpec};
use crate::token_source::{ProcessEnv, resolve};

/// Environment variable the Azure SDKs read to redirect IMDS (e.g. to an emulator).
pub const IMDS_OVERRIDE_ENV: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";

/// Runs `mitoken token`.
pub async fn run(args: TokenArgs) -> Result<(), Failure> {
    let resolved = resolve(args.source, args.endpoint.as_deref(), &ProcessEnv).map_err(|e| {
        eprintln!("mitoken: {e}");
        Failure::Usage
    })?;
    if args.explain {
        for line in &resolved.explain {
            eprintln!("mitoken: {line}");
        }
    }
    let spec_text = resolved.endpoint.clone();
    let parsed = match resolved.style {
        Style::Imds => Endpoint::parse_spec(&spec_text),
        style => Endpoint::parse_url_for(&spec_text, style),
    };
    if let Err(e) = parsed {
        eprintln!("mitoken: {} endpoint `{spec_text}`: {e}", resolved.source);
        return Err(Failure::Usage);
    }
    let resource = TokenRequest::from_scope(&args.resource)
        .map_err(|e| {
            eprintln!("mitoken: --resource: {e}");
            Failure::Usage
        })?
        .resource
        .to_owned();
    let selector = if let Some(id) = &args.client_id {
        Some(IdentitySelector::ClientId(id.clone()))
    } else if let Some(id) = &args.object_id {
        Some(IdentitySelector::ObjectId(id.clone()))
    } else {
        args.resource_id
            .as_ref()
            .map(|id| IdentitySelector::ResourceId {
                id: id.clone(),
                mi_spelling: false,
            })
    };
    // Azure ML needs a `clientid` on every request: its default identity unless one is named.
    let selector = selector.or_else(|| {
        resolved
            .default_client_id
            .clone()
            .map(IdentitySelector::ClientId)
    });
    let mut spec = TokenSpec::new(resource).with_selector(selector);
    spec.bypass_cache = args.bypass_cache;

    let mut config = ClientConfig::new(spec_text.clone());
    config.style = resolved.style;
    config.auth.secret.clone_from(&resolved.secret);
    config.auth.thumbprint.clone_from(&resolved.thumbprint);
    if let Some(dir) = &args.arc_tokens_dir {
        config.auth.arc_tokens_dir.clone_from(dir);
    }
    config.api_version.clone_from(&args.api_version);
    config.cache = false;
    config.engine_size = EngineSize::OneShot;
    config.attempt_timeout = args.timeout.min(config.attempt_timeout);
    config.retry.deadline_ms = u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX);
    if args.no_retry {
        config.retry.max_retries = 0;
        config.retry.max_gone_retries = 0;
    }
    let client = TokenClient::new(config).map_err(|e| {
        eprintln!("mitoken: {e}");
        Failure::Usage
    })?;
    // The retry deadline bounds when a retry may start; this bounds the whole command.
    let hard_limit = args.timeout.saturating_add(Duration::from_secs(1));
    match tokio::time::timeout(hard_limit, client.get_token(&spec)).await {
        Ok(Ok(token)) => print_token(&token, args.output),
        Ok(Err(e)) => {
            eprintln!("mitoken: {e}");
            let failure = e.last_failure().map_or(Failure::Usage, failure_of);
            if failure == Failure::Network {
                eprintln!("mitoken: {}", unreachable_hint(&spec_text));
            }
            Err(failure)
        }
        Err(_) => {
            eprintln!("mitoken: no token within {:?}", args.timeout);
            eprintln!("mitoken: {}", unreachable_hint(&spec_text));
            Err(Failure::Network)
        }
    }
}

/// One line on what an unreachable endpoint most likely means and what to do, for `spec` (the
/// `--endpoint` value in effect).
pub fn unreachable_hint(spec: &str) -> String {
    match spec {
        "imds" | "extension" => format!(
            "hint: nothing answered at the {} address: most likely this machine is not an Azure \
             VM, or a container network or firewall blocks it; elsewhere, run `mitoken emulate` \
             and pass its address with --endpoint URL",
            if spec == "imds" {
                "IMDS (169.254.169.254)"
            } else {
                "VM extension (localhost:50342)"
            }
        ),
        url => format!(
            "hint: nothing answered at {url}: start the token server there (for a local IMDS: \
             `mitoken emulate --listen ADDR`) or pass the right --endpoint URL"
        ),
    }
}

/// The exit-code class of a fetch failure.
pub fn failure_of(e: &FetchFailure) -> Failure {
    match e {
        FetchFailure::InvalidRequest(_)
        | FetchFailure::ArcKey(_)
        | FetchFailure::NoTlsTransport => Failure::Usage,
        FetchFailure::Connect { .. } | FetchFailure::Io { .. } | FetchFailure::Timeout { .. } => {
            Failure::Network
        }
        FetchFailure::Protocol { .. } | FetchFailure::Tls(_) => Failure::Protocol,
        FetchFailure::Service(_) | FetchFailure::ArcChallenge { .. } => Failure::Service,
    }
}

fn print_token(token: &TokenResponse, format: OutputFormat) -> Result<(), Failure> {
    let text = render(token, format, unix_now()).map_err(|e| {
        eprintln!("mitoken: {e}");
        Failure::Internal
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| {
            eprintln!("mitoken: cannot write the token: {e}");
            Failure::Internal
        })
}
