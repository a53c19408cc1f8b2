//! `mitoken token`: get one access token and print it.

use std::io::Write;

use mitoken_core::request::{Endpoint, ResIdParam, Selector, TokenRequest};

use crate::cli::{OutputFormat, TokenArgs};
use crate::client::{FetchFailure, TokenResponse, fetch_once, unix_now};
use crate::exit::Failure;
use crate::output::render;

/// Environment variable the Azure SDKs read to redirect IMDS (e.g. to an emulator).
pub const IMDS_OVERRIDE_ENV: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";

/// Parses `--endpoint` (or its default): `imds`, `extension`, or a base URL.
pub fn parse_endpoint(spec: &str) -> Result<Endpoint<'_>, mitoken_core::request::RequestError> {
    match spec {
        "imds" => Ok(Endpoint::Imds),
        "extension" => Ok(Endpoint::Extension),
        url => Endpoint::parse_url(url),
    }
}

/// Runs `mitoken token`.
pub async fn run(args: TokenArgs) -> Result<(), Failure> {
    let override_url = std::env::var(IMDS_OVERRIDE_ENV)
        .ok()
        .filter(|v| !v.is_empty());
    let spec = args
        .endpoint
        .as_deref()
        .or(override_url.as_deref())
        .unwrap_or("imds");
    let endpoint = parse_endpoint(spec).map_err(|e| {
        eprintln!("mitoken: --endpoint `{spec}`: {e}");
        Failure::Usage
    })?;
    let mut request = TokenRequest::from_scope(&args.resource).map_err(|e| {
        eprintln!("mitoken: --resource: {e}");
        Failure::Usage
    })?;
    request = request
        .with_api_version(&args.api_version)
        .with_bypass_cache(args.bypass_cache);
    if let Some(id) = &args.client_id {
        request = request.with_selector(Selector::ClientId(id));
    } else if let Some(id) = &args.object_id {
        request = request.with_selector(Selector::ObjectId(id));
    } else if let Some(id) = &args.resource_id {
        request = request.with_selector(Selector::ResourceId {
            id,
            param: ResIdParam::MsiResId,
        });
    }
    match fetch_once(&endpoint, &request, args.timeout).await {
        Ok(token) => print_token(&token, args.output),
        Err(e) => {
            eprintln!("mitoken: {e}");
            Err(failure_of(&e))
        }
    }
}

/// The exit-code class of a fetch failure.
pub fn failure_of(e: &FetchFailure) -> Failure {
    match e {
        FetchFailure::InvalidRequest(_) => Failure::Usage,
        FetchFailure::Connect { .. } | FetchFailure::Io { .. } | FetchFailure::Timeout { .. } => {
            Failure::Network
        }
        FetchFailure::Protocol { .. } => Failure::Protocol,
        FetchFailure::Service(_) => Failure::Service,
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
