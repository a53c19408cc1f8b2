//! The bridge's connections: bytes in → the core's [`Relay`] → a token from the shared
//! [`TokenClient`] → the core's legacy answer → bytes out.
//!
//! The connection loop itself (buffers, deadlines, the cap) is the one shared with the emulator
//! (`serve_loop::connection`); this module is the bridge's [`Answerer`]. The cached
//! path allocates nothing: the relay decodes the parameters into the work buffer, the cache is
//! looked up by a key borrowing them, and the answer is written from the cache entry straight
//! into the output buffer under the cache's (synchronous, never awaited-across) lock. Only a
//! cache miss builds an owned request for the token client, whose single-flight and upstream
//! limiter then decide when IMDS is asked.
//!
//! Logs (target `mitoken_host::bridge::serve`): one `debug` line per request (status, whether
//! it came from the cache, latency), `warn` for failed upstream requests. Tokens are never
//! logged.

use core::net::SocketAddr;
use std::sync::Arc;

use mitoken_core::server::{Fault, Relay, RelayRequest, Relayed, Response, ServerConnection};

use super::answer::{
    ErrorAnswer, cached_json, error_answer, fetched_json, token_request, token_spec,
    wrong_identity, wrong_identity_answer,
};
use super::report::{ConnectionAttribution, Tracker};
use crate::client::unix_now;
use crate::serve_loop::connection::{Answerer, Exchange, Step};
use crate::serve_loop::write_growing;
use crate::token_client::TokenClient;

/// What every connection shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub relay: Relay<'static>,
    pub client: TokenClient,
    /// The migration report's counts.
    pub report: Arc<Tracker>,
}

fn write_error(
    relay: &Relay<'_>,
    request: &RelayRequest<'_>,
    answer: &ErrorAnswer,
    out: &mut Vec<u8>,
) -> Option<Response<'static>> {
    let fault = Fault {
        status: answer.status,
        error: &answer.error,
        description: Some(&answer.description),
        retry_after: answer.retry_after,
    };
    write_growing(out, |o| {
        relay.write_upstream_error(&request.reply, &fault, o)
    })
}

/// How a relayed request was answered, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Cache,
    Upstream,
}

/// Answers a valid request: from the cache when it holds a valid token (refreshing a due one
/// in the background), else from upstream through the token client.
async fn answer(
    shared: &Shared,
    request: &RelayRequest<'_>,
    out: &mut Vec<u8>,
) -> Option<(Response<'static>, Source)> {
    let relay = &shared.relay;
    let client = &shared.client;
    if !request.bypass_cache {
        let api_version = client.config().api_version.as_str();
        let key = token_request(request, api_version);
        // `Err` when the cached token names another identity (it is then not written).
        let hit = client.with_cached(&key, |cached, now_ms| {
            if wrong_identity(request.selector, cached.client_id) {
                return Err(());
            }
            let json = cached_json(cached, now_ms, request.resource);
            Ok(write_growing(out, |o| {
                relay.write_token(&request.reply, &json, o)
            }))
        });
        match hit {
            Some(Ok(response)) => return response.map(|r| (r, Source::Cache)),
            Some(Err(())) => {
                return write_error(relay, request, &wrong_identity_answer(), out)
                    .map(|r| (r, Source::Cache));
            }
            None => {}
        }
    }
    let spec = token_spec(request);
    let response = match client.get_token(&spec).await {
        Ok(token) if wrong_identity(request.selector, token.client_id.as_deref()) => {
            tracing::warn!(
                resource = ?spec.resource,
                "upstream answered for another client_id; token withheld"
            );
            write_error(relay, request, &wrong_identity_answer(), out)
        }
        Ok(token) => {
            let json = fetched_json(&token, unix_now(), request.resource);
            write_growing(out, |o| relay.write_token(&request.reply, &json, o))
        }
        Err(e) => {
            tracing::warn!(error = %e, resource = ?spec.resource, "no token from upstream");
            write_error(relay, request, &error_answer(&e), out)
        }
    };
    response.map(|r| (r, Source::Upstream))
}

/// The bridge's side of the [one connection loop](crate::serve_loop::connection): the core's
/// relay, answered from the cache or upstream.
pub(super) struct BridgeAnswerer {
    shared: Arc<Shared>,
    conn: ServerConnection,
    peer: SocketAddr,
    /// This end of the connection (for the migration report's `/proc` lookup).
    local: Option<SocketAddr>,
    /// Who the peer is, once looked up.
    attribution: ConnectionAttribution,
}

impl BridgeAnswerer {
    /// A fresh connection's answerer.
    pub(super) fn new(shared: Arc<Shared>, peer: SocketAddr, local: Option<SocketAddr>) -> Self {
        let conn = shared.relay.connection();
        Self {
            shared,
            conn,
            peer,
            local,
            attribution: ConnectionAttribution::default(),
        }
    }
}

impl Answerer for BridgeAnswerer {
    async fn answer(&mut self, mut ex: Exchange<'_>) -> Step {
        let relay = self.shared.relay;
        let (response, source) = match relay.handle(&mut self.conn, ex.input, ex.work, ex.out) {
            Ok(Relayed::Partial) => return Step::Partial,
            Ok(Relayed::Response(r)) => (r, None),
            Ok(Relayed::Relay(request)) => {
                if let Some(local) = self.local {
                    let (selector, resource) = (&request.selector, request.resource);
                    self.shared
                        .report
                        .record(&self.attribution, self.peer, local, selector, resource)
                        .await;
                }
                match answer(&self.shared, &request, ex.out).await {
                    Some((r, source)) => (r, Some(source)),
                    None => return Step::Close,
                }
            }
            Err(e) => return Step::Grow(e),
        };
        tracing::debug!(
            peer = %self.peer,
            status = response.status,
            cached = source.map(|s| s == Source::Cache),
            latency = ?ex.started.elapsed(),
            "answered"
        );
        if !ex
            .reply
            .send(ex.out.get(..response.len).unwrap_or_default())
            .await
        {
            return Step::Close;
        }
        Step::Done {
            consumed: response.consumed,
            keep_alive: response.keep_alive,
        }
    }
}
