//! Relay mode: the server's HTTP front and checks without identity resolution, with a
//! deferred answer. See [`Relay`].

use super::conn::{self, Ctx, Framed, Outcome, Response, ServerConnection, Texts};
use super::respond::{self, Shape, TokenJson};
use super::{Config, Fault, HandleError, Mode, Rejection};
use crate::identity::{Flavor, Selector};

/// Relay mode: serve the token endpoint without an identity table and answer later, for a
/// shell that gets its tokens from elsewhere (the legacy-extension bridge asks IMDS).
///
/// [`Relay::handle`] runs the same HTTP front ([`ServerConnection`]) and the same checks as
/// [`Server::handle`](super::Server::handle), in the same order and with the same
/// [`Rejection`]s, but stops before identity resolution: a valid request comes back as a
/// [`RelayRequest`] (resource, selector, `bypass_cache`) and nothing is written yet. The shell
/// gets the token however it likes — typically awaiting an upstream request — and then writes
/// the answer with [`Relay::write_token`] or [`Relay::write_upstream_error`], which use the
/// server's own response writers (the flavor's JSON shape, `Content-Length`, `Retry-After`,
/// `Connection`).
///
/// A relay is stricter than a server in three ways, because it forwards what it is asked:
///
/// - an absolute-form target (`GET http://host/oauth2/token`) must name a loopback host
///   (`localhost`, `127.0.0.1` or `[::1]`, any port), else 401 `unknown_source`
///   `Unknown Source http://host/oauth2/token` (the extension's documented answer to a URI
///   that is not its localhost form) — a caller never picks the upstream;
/// - `X-Forwarded-For` **or** `Forwarded` is refused (400) whatever the flavor;
/// - only the token path is served (in the IMDS flavor `/metadata/identity/info` gets 404).
///
/// Validation order: target authority → path → method → `Metadata` → `X-Forwarded-For` /
/// `Forwarded` → POST content type → parameter syntax (count, duplicates, encoding) →
/// `api-version` (IMDS flavor) → `resource` → number of selectors.
///
/// ```
/// use mitoken_core::http::Limits;
/// use mitoken_core::identity::{Flavor, Selector};
/// use mitoken_core::server::{Config, Relay, Relayed};
/// use mitoken_core::token::{Secret, TokenJson};
///
/// let relay = Relay::new(Config::new(Flavor::Extension));
/// let mut conn = relay.connection();
/// let mut input = *b"GET /oauth2/token?resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nMetadata: true\r\n\r\n";
/// let (mut work, mut out) = ([0u8; 1024], [0u8; 1024]);
/// let Ok(Relayed::Relay(request)) = relay.handle(&mut conn, &mut input, &mut work, &mut out) else {
///     panic!("a valid request");
/// };
/// assert_eq!((request.resource, request.selector), ("https://vault.azure.net", Selector::Default));
/// // … the shell gets the token from upstream, then:
/// let token = TokenJson {
///     access_token: Secret::new("eyJ0eXAi"),
///     client_id: "",
///     expires_in: 3599,
///     expires_on: 1_700_003_599,
///     ext_expires_in: 0,
///     not_before: 1_699_999_700,
///     resource: request.resource,
/// };
/// let response = relay.write_token(&request.reply, &token, &mut out).unwrap();
/// assert!(out[..response.len].ends_with(br#""resource":"https://vault.azure.net","token_type":"Bearer"}"#));
/// assert_eq!(response.consumed, input.len());
/// ```
///
/// A relay holds only its configuration; buffers are lent per call, so one relay can serve
/// every connection of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay<'s> {
    config: Config<'s>,
}

/// What [`Relay::handle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a response must be sent, or the request relayed and answered"]
pub enum Relayed<'w> {
    /// The request is not complete: read more bytes, append them to the same buffer, call
    /// again.
    Partial,
    /// The request was refused; the answer is in the output buffer (send it, drop `consumed`
    /// bytes, close unless `keep_alive`).
    Response(Response<'static>),
    /// A valid token request: get the token, then answer with [`Relay::write_token`] or
    /// [`Relay::write_upstream_error`]. The connection state is already reset; the request's
    /// bytes are still in the input (drop [`Reply::consumed`] of them once answered).
    Relay(RelayRequest<'w>),
}

/// A valid token request to relay. Its strings are percent-decoded into the work buffer lent
/// to [`Relay::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRequest<'w> {
    /// The `resource` (audience), non-empty.
    pub resource: &'w str,
    /// The one selector the request carries (`client_id`, `object_id`, `msi_res_id` or
    /// `mi_res_id`), or [`Selector::Default`]. Not checked against any table: upstream resolves
    /// it, and the shell must key anything it caches by it.
    pub selector: Selector<'w>,
    /// `bypass_cache=true` was given.
    pub bypass_cache: bool,
    /// How to answer it.
    pub reply: Reply,
}

/// How to answer a relayed request: pass it to [`Relay::write_token`] or
/// [`Relay::write_upstream_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    ctx: Ctx,
}

impl Reply {
    /// Bytes of the input the request took; drop them once the answer is sent.
    pub const fn consumed(&self) -> usize {
        self.ctx.consumed
    }

    /// True when the client allows another request on the connection.
    pub const fn keep_alive(&self) -> bool {
        self.ctx.keep_alive
    }
}

/// True when `authority` (`host[:port]`) names this machine by a loopback name.
fn loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1"
}

impl<'s> Relay<'s> {
    /// A relay answering as `config` says (its flavor, limits, `Server` header,
    /// `default_retry_after`).
    pub const fn new(config: Config<'s>) -> Self {
        Self { config }
    }

    /// The configuration.
    pub const fn config(&self) -> &Config<'s> {
        &self.config
    }

    /// A fresh [`ServerConnection`] with this relay's limits.
    pub const fn connection(&self) -> ServerConnection {
        ServerConnection::new(self.config.limits)
    }

    /// Handles the request at the start of `input` on connection `conn`.
    ///
    /// `input` is used as by [`Server::handle`](super::Server::handle): pass the same buffer,
    /// grown at its end, until the answer is not [`Relayed::Partial`]. Parameters are decoded
    /// into `work`, which must hold the request line's query plus the form body (the request
    /// line limit plus the body limit, 16 KiB with the defaults, is always enough; a smaller
    /// one answers 400 `Query parameters are too long`).
    ///
    /// Every input is answered: a refused request with the catalogue's error in `out`
    /// ([`Relayed::Response`]; malformed HTTP with 400 / 431 / 413 and `keep_alive: false`).
    /// Nothing panics. On [`HandleError`] nothing is consumed and `conn` keeps its state: grow
    /// the named buffer and call again.
    pub fn handle<'w>(
        &self,
        conn: &mut ServerConnection,
        input: &mut [u8],
        work: &'w mut [u8],
        out: &mut [u8],
    ) -> Result<Relayed<'w>, HandleError> {
        let input_len = input.len();
        let request = match conn.frame(input, Mode::Relay) {
            Framed::Partial => return Ok(Relayed::Partial),
            Framed::Failed(rejection) => {
                return conn::framing_failed(&self.config, conn, rejection, input_len, out)
                    .map(Relayed::Response);
            }
            Framed::Request(request) => request,
        };
        let ctx = request.ctx;
        let view = request.view;
        let texts = Texts {
            path: view.path,
            authority: request.authority,
            ..Texts::default()
        };
        let checked = if request.authority.is_some_and(|a| !loopback_authority(a)) {
            Err((Rejection::UnknownSource, work))
        } else {
            super::validate(&self.config, &view, Mode::Relay, work)
        };
        let answer = match checked {
            Ok((valid, rest)) => {
                if let Some(resource) = valid.resource {
                    Ok(Relayed::Relay(RelayRequest {
                        resource,
                        selector: valid.selector,
                        bypass_cache: valid.bypass_cache,
                        reply: Reply { ctx },
                    }))
                } else {
                    // The info route is never valid in relay mode (`validate` treats it as an
                    // unknown path); answer as for one should that change.
                    let rejection = match self.config.flavor {
                        Flavor::Extension => Rejection::UnknownSource,
                        _ => Rejection::NotFound,
                    };
                    conn::write_rejection(&self.config, rejection, None, &texts, &ctx, rest, out)
                        .map(Relayed::Response)
                }
            }
            Err((rejection, rest)) => {
                conn::write_rejection(&self.config, rejection, None, &texts, &ctx, rest, out)
                    .map(Relayed::Response)
            }
        };
        if answer.is_ok() {
            conn.reset();
        }
        answer
    }

    /// Writes `fault` as a complete response (`Connection: close` unless `keep_alive`) without
    /// a request, e.g. to turn a connection away before reading it (a 503 when the shell has
    /// too many connections). Returns the response length.
    pub fn write_fault(
        &self,
        fault: &Fault<'_>,
        keep_alive: bool,
        out: &mut [u8],
    ) -> Result<usize, HandleError> {
        conn::bare_fault(&self.config, fault, keep_alive, out)
    }

    /// Writes the 200 answer carrying `token` for the request `reply` belongs to: the legacy
    /// extension's shape (docs/protocol.md §2.3: `access_token`, `refresh_token` `""`,
    /// `expires_in`, `expires_on`, `not_before`, `resource`, `token_type` `Bearer`, every value
    /// a string) in the extension flavor, IMDS's shape (adding `client_id` and
    /// `ext_expires_in`) in the IMDS flavor. `token.expires_in` is written as given: compute it
    /// from the token's expiry and the current time.
    ///
    /// The token is copied into `out` and nowhere else. On
    /// [`HandleError::OutputTooSmall`] grow `out` and call again.
    pub fn write_token(
        &self,
        reply: &Reply,
        token: &TokenJson<'_>,
        out: &mut [u8],
    ) -> Result<Response<'static>, HandleError> {
        let shape = match self.config.flavor {
            Flavor::Extension => Shape::Extension,
            _ => Shape::Imds,
        };
        let body =
            |o: &mut [u8]| respond::write_token_json(token, shape, o).map_err(respond::too_small);
        conn::finish(
            &self.config,
            200,
            None,
            &reply.ctx,
            body,
            Outcome::Relayed,
            out,
        )
    }

    /// Writes an error answer for the request `reply` belongs to: `error.status` with the body
    /// `{"error":…,"error_description":…}` (`{"error":…}` without a description) and
    /// `Retry-After` when given (429 and 503 always carry one, by default
    /// [`Config::default_retry_after`]). Use it to pass on upstream's answer unchanged — status,
    /// `error`, `error_description` — or to answer for an upstream that could not be reached.
    /// A status outside 100–999 is written as 500.
    ///
    /// On [`HandleError::OutputTooSmall`] grow `out` and call again.
    pub fn write_upstream_error(
        &self,
        reply: &Reply,
        error: &Fault<'_>,
        out: &mut [u8],
    ) -> Result<Response<'static>, HandleError> {
        let error = Fault {
            status: if (100..=999).contains(&error.status) {
                error.status
            } else {
                500
            },
            ..*error
        };
        let mut response = conn::write_fault(&self.config, &error, None, &reply.ctx, out)?;
        response.outcome = Outcome::Upstream;
        Ok(response)
    }
}
