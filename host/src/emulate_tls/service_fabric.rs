//! The Service Fabric managed-identity endpoint over HTTPS with a generated self-signed
//! certificate; clients pin its SHA-1 thumbprint (`IDENTITY_SERVER_THUMBPRINT`).

use mitoken_core::service_fabric::{
    API_VERSION, TOKEN_PATH, check_request, write_error_body, write_error_with, write_token_body,
};

use super::{Gate, Gated, random_guid};
use crate::client::unix_now;
use crate::emulate::config::IdentityConfig;
use crate::emulate::jwt::TokenMinter;
use crate::tls::server::{Answer, Handler, Request};

/// Answers Service Fabric token requests for one application identity.
#[derive(Debug)]
pub struct ServiceFabricHandler {
    secret: String,
    identity: IdentityConfig,
    minter: TokenMinter,
    gate: Gate,
}

impl ServiceFabricHandler {
    pub(crate) fn new(
        secret: String,
        identity: IdentityConfig,
        minter: TokenMinter,
        gate: Gate,
    ) -> Self {
        Self {
            secret,
            identity,
            minter,
            gate,
        }
    }
}

fn error_answer(
    status: u16,
    body: Result<usize, mitoken_core::write::BufferTooSmall>,
    buf: &[u8],
) -> Answer {
    let len = body.unwrap_or(0);
    Answer::json(status, buf.get(..len).unwrap_or_default().to_vec())
}

impl Handler for ServiceFabricHandler {
    fn handle(&self, request: &Request<'_>) -> Answer {
        let correlation_id = random_guid();
        let mut buf = [0u8; 1024];
        if request.path.trim_end_matches('/') != TOKEN_PATH {
            let n = write_error_with(
                "NotFound",
                "The requested resource was not found.",
                &correlation_id,
                &mut buf,
            );
            return error_answer(404, n, &buf);
        }
        if request.method != "GET" {
            let n = write_error_with(
                "MethodNotAllowed",
                "The requested method is not allowed.",
                &correlation_id,
                &mut buf,
            );
            return error_answer(405, n, &buf).with_header("Allow", "GET");
        }
        let mut answer = match self.gate.check(request.path, Some(self.identity.client_id)) {
            Gated::Pass(a) => a,
            Gated::Close(a) => return a,
            Gated::Fault(base, fault) => {
                let n = write_error_with(
                    &fault.error,
                    &fault.error_description,
                    &correlation_id,
                    &mut buf,
                );
                let mut a = error_answer(fault.status, n, &buf);
                a.delay = base.delay;
                a.hold = base.hold;
                if let Some(secs) = fault.retry_after {
                    a = a.with_header("Retry-After", secs.to_string());
                }
                return a;
            }
        };
        let mut scratch = [0u8; 2048];
        let secret = request.headers.get_str("secret");
        let resource = match check_request(request.query, secret, &self.secret, &mut scratch) {
            Ok(r) => r,
            Err(rejection) => {
                tracing::info!(
                    status = rejection.status(),
                    code = rejection.code().as_str(),
                    "service-fabric token request refused"
                );
                let n = write_error_body(&rejection, &correlation_id, &mut buf);
                let mut a = error_answer(rejection.status(), n, &buf);
                a.delay = answer.delay;
                a.hold = answer.hold.take();
                return a;
            }
        };
        let minted = match self.minter.mint(&self.identity, resource, unix_now()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cannot sign a token: {e}");
                let n = write_error_with(
                    "InternalServerError",
                    "Failed to sign the token.",
                    &correlation_id,
                    &mut buf,
                );
                return error_answer(500, n, &buf);
            }
        };
        let mut body = vec![0u8; minted.jwt().len() + resource.len() * 2 + 256];
        let Ok(n) = write_token_body(minted.jwt(), minted.expires_on, resource, &mut body) else {
            return Answer::json(500, Vec::new());
        };
        body.truncate(n);
        tracing::info!(resource, "service-fabric token issued");
        let ok = Answer::json(200, body);
        Answer {
            delay: answer.delay,
            hold: answer.hold.take(),
            ..ok
        }
    }
}

/// The variables that point SDKs at a Service Fabric endpoint. With `cert` (the server
/// certificate's PEM file), also `NODE_EXTRA_CA_CERTS`: msal-node does not pin the thumbprint
/// but validates the chain, as on a cluster node whose store trusts the cluster certificate.
pub fn env_vars(
    endpoint: &str,
    secret: &str,
    thumbprint: &str,
    cert: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        (
            mitoken_core::source::ENV_IDENTITY_ENDPOINT,
            endpoint.to_owned(),
        ),
        (mitoken_core::source::ENV_IDENTITY_HEADER, secret.to_owned()),
        (
            mitoken_core::source::ENV_IDENTITY_SERVER_THUMBPRINT,
            thumbprint.to_owned(),
        ),
        ("IDENTITY_API_VERSION", API_VERSION.to_owned()),
    ];
    if let Some(cert) = cert {
        vars.push(("NODE_EXTRA_CA_CERTS", cert.to_owned()));
    }
    vars
}

/// The token URL of an emulator at `addr`.
pub fn endpoint_url(addr: core::net::SocketAddr) -> String {
    format!("https://{addr}{TOKEN_PATH}")
}
