//! The server's answers as values: [`Server::receive`] → the shell's [`Verdict`] →
//! [`Server::answer`] → for a token request, [`Issue::write_token`] with the shell's token.
//!
//! Nothing is asked of the shell through a callback, so nothing is asked twice: when a buffer
//! is too small the shell grows it and repeats the same *write* with the values it already
//! holds (the verdict, the token), never the decision.

use super::conn::{self, Ctx, Framed, Outcome, Response, ServerConnection, Texts};
use super::respond::{self, Shape, TokenJson};
use super::sources;
use super::{
    Config, Decision, Fault, Grant, HandleError, IssueError, IssueRequest, Rejection, RequestView,
    Server,
};
use crate::identity::Flavor;
use crate::query::Plus;
use crate::token::Secret;

/// What [`Server::receive`] found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "send the response, or give the request a verdict"]
pub enum Received<'i> {
    /// More bytes are needed: append them to the same input and receive again.
    Partial,
    /// Not a request the server accepts: its 400 / 431 / 413 is in `out`; close once sent.
    Response(Response<'static>),
    /// A complete, well-formed request: give it a [`Verdict`] and call [`Server::answer`].
    /// `conn` is ready for the next one; these bytes stay in the input until answered.
    Request(Request<'i>),
}

/// A complete request, before validation: what the shell looks at to choose its [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'i> {
    view: RequestView<'i>,
    ctx: Ctx,
    own: bool,
}

impl<'i> Request<'i> {
    /// A framed request (the legacy driver builds one too).
    pub(crate) fn new(view: RequestView<'i>, ctx: Ctx, config: &Config<'_>) -> Self {
        Request {
            own: config.serves(view.path),
            view,
            ctx,
        }
    }

    /// The method, e.g. `GET`.
    pub const fn method(&self) -> &'i str {
        self.view.method
    }

    /// The path (still encoded), without the query.
    pub const fn path(&self) -> &'i str {
        self.view.path
    }

    /// The query string (after `?`, still encoded); empty when there is none.
    pub const fn query(&self) -> &'i [u8] {
        self.view.query
    }

    /// The (decoded) body; empty when there is none.
    pub const fn body(&self) -> &'i [u8] {
        self.view.body
    }

    /// True when the path is one of the server's own endpoints ([`serves_path`](super::serves_path)):
    /// the others are the shell's to answer ([`Verdict::Json`]) or to pass on
    /// ([`Verdict::Proceed`] answers them as an unknown path).
    pub const fn is_own_path(&self) -> bool {
        self.own
    }

    /// Bytes of the input the request took; drop them once the answer is sent.
    pub const fn consumed(&self) -> usize {
        self.ctx.consumed
    }
}

/// The shell's verdict on a [`Request`], before the server validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict<'v> {
    /// Validate the request and answer it (a valid token request comes back as
    /// [`Answer::Issue`]). A path the server does not own gets the flavor's 404 / 401.
    Proceed,
    /// Answer with this error (throttling, fault injection, maintenance).
    Fault(Fault<'v>),
    /// Answer with `status` and this JSON body, without validation (the shell's own paths:
    /// a JWKS, an admin API). The server writes the head in front of it.
    Json {
        /// The HTTP status, 100–999.
        status: u16,
        /// The JSON body.
        body: &'v [u8],
    },
}

/// What [`Server::answer`] did.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a response must be sent, or the token issued and written"]
pub enum Answer<'a, 'w> {
    /// The answer is in the output buffer.
    Response(Response<'a>),
    /// A valid token request for a resolved identity: get the token, then write the answer
    /// with [`Issue::write_token`] or [`Issue::write_error`].
    Issue(Issue<'a, 'w>),
}

/// Resolved identity X needs a token for resource R: [`Issue::request`] says which, and the
/// `Issue` writes the answer once the shell has the token (or an error).
#[derive(Debug, PartialEq, Eq)]
pub struct Issue<'a, 'w> {
    /// The identity, the resource (percent-decoded into the work buffer), `bypass_cache`,
    /// `now` and the flavor.
    pub request: IssueRequest<'w, 'a>,
    config: Config<'w>,
    ctx: Ctx,
    /// The rest of the work buffer, for error texts that name the resource.
    area: &'w mut [u8],
}

/// A token the shell supplies to [`Issue::write_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minted<'t> {
    /// The token (ASCII, e.g. a JWT). Copied into the output buffer and nowhere else.
    pub token: &'t str,
    /// When it becomes valid, Unix seconds (the JWT `nbf`).
    pub not_before: u64,
    /// When it expires, Unix seconds (the JWT `exp`). `expires_in` is `expires_on − now`.
    pub expires_on: u64,
}

impl<'a, 'w> Issue<'a, 'w> {
    /// Writes the 200 answer carrying `minted`, in the flavor's JSON shape. On
    /// [`HandleError::OutputTooSmall`] grow `out` and call again with the same token.
    pub fn write_token(
        &mut self,
        minted: &Minted<'_>,
        out: &mut [u8],
    ) -> Result<Response<'a>, HandleError> {
        token_response(
            &self.config,
            &self.grant(),
            minted,
            self.request.now,
            &self.ctx,
            out,
        )
    }

    /// Writes the answer for an issuer that produced no token: `UnknownResource` → 400
    /// `invalid_resource` naming the resource, `Throttled` → 429, `Unavailable` → 503,
    /// `Fault` as given, `Failed` (and `BufferTooSmall`, which has no meaning here) → 500.
    /// [`IssueError::Close`] writes nothing: a response of length 0, status 0,
    /// `keep_alive: false`, [`Outcome::Closed`] (close the connection without answering).
    /// On [`HandleError::OutputTooSmall`] grow `out` and call again with the same error.
    pub fn write_error(
        &mut self,
        error: &IssueError<'_>,
        out: &mut [u8],
    ) -> Result<Response<'a>, HandleError> {
        let resolved = self.request.resolved;
        let (rejection, retry_after) = match *error {
            IssueError::Close => {
                return Ok(Response {
                    consumed: self.ctx.consumed,
                    len: 0,
                    status: 0,
                    keep_alive: false,
                    outcome: Outcome::Closed { resolved },
                });
            }
            IssueError::Fault(fault) => {
                return conn::write_fault(&self.config, &fault, Some(resolved), &self.ctx, out);
            }
            IssueError::UnknownResource => (Rejection::InvalidResource, None),
            IssueError::Throttled { retry_after } => (Rejection::Throttled, retry_after),
            IssueError::Unavailable { retry_after } => (Rejection::Unavailable, retry_after),
            _ => (Rejection::IssueFailed, None),
        };
        let texts = Texts {
            path: "",
            authority: None,
            resource: self.request.resource,
            tenant: self.config.tenant_id.unwrap_or("the VM's tenant"),
            api_version: "",
        };
        conn::write_rejection_retry(
            &self.config,
            rejection,
            Some(resolved),
            &texts,
            retry_after,
            &self.ctx,
            self.area,
            out,
        )
    }

    /// Bytes of the input the request took; drop them once the answer is sent.
    pub const fn consumed(&self) -> usize {
        self.ctx.consumed
    }

    fn grant(&self) -> Grant<'a, '_> {
        Grant {
            resolved: self.request.resolved,
            resource: self.request.resource,
            bypass_cache: self.request.bypass_cache,
        }
    }

    /// The rest of the work buffer (the legacy [`Issuer`](super::Issuer) writes its token
    /// there).
    pub(crate) fn area(&mut self) -> &mut [u8] {
        self.area
    }

    /// The answer's framing, for the legacy driver.
    pub(crate) const fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The configuration, for the legacy driver.
    pub(crate) const fn config(&self) -> Config<'w> {
        self.config
    }
}

/// Writes the 200 answer for `minted` (the one token writer of both drivers).
pub(crate) fn token_response<'a>(
    config: &Config<'_>,
    grant: &Grant<'a, '_>,
    minted: &Minted<'_>,
    now: u64,
    ctx: &Ctx,
    out: &mut [u8],
) -> Result<Response<'a>, HandleError> {
    let resolved = grant.resolved;
    if config.is_source() {
        let identity = resolved.identity;
        let fields = sources::SourceToken {
            access_token: minted.token,
            client_id: identity.client_id,
            object_id: identity.object_id,
            resource_id: identity.resource_id,
            expires_in: minted.expires_on.saturating_sub(now),
            expires_on: minted.expires_on,
            not_before: minted.not_before,
            ext_expires_in: config.ext_expires_in,
            resource: grant.resource,
        };
        let body = |o: &mut [u8]| {
            sources::write_token_body(config.source, &fields, o).map_err(respond::too_small)
        };
        let outcome = Outcome::Token {
            resolved,
            bypass_cache: grant.bypass_cache,
        };
        return conn::finish(config, 200, None, ctx, body, outcome, out);
    }
    let fields = TokenJson {
        access_token: Secret::new(minted.token),
        client_id: resolved.identity.client_id,
        expires_in: minted.expires_on.saturating_sub(now),
        expires_on: minted.expires_on,
        ext_expires_in: config.ext_expires_in,
        not_before: minted.not_before,
        resource: grant.resource,
    };
    let shape = match config.flavor {
        Flavor::Extension => Shape::Extension,
        _ => Shape::Imds,
    };
    let body =
        |o: &mut [u8]| respond::write_token_json(&fields, shape, o).map_err(respond::too_small);
    let outcome = Outcome::Token {
        resolved,
        bypass_cache: grant.bypass_cache,
    };
    conn::finish(config, 200, None, ctx, body, outcome, out)
}

impl<'s, 'a, S: AsRef<str>, const N: usize> Server<'s, 'a, S, N> {
    /// Frames the request at the start of `input` on connection `conn`: the first step of
    /// answering with values (see [`Answer`]).
    ///
    /// `input` is used as by [`Server::handle`]: pass the same buffer, grown at its end, until
    /// the result is not [`Received::Partial`]. Malformed HTTP is answered here (400 / 431 /
    /// 413, `keep_alive: false`). On [`HandleError`] nothing is consumed: grow `out` and call
    /// again.
    pub fn receive<'i>(
        &self,
        conn: &mut ServerConnection,
        input: &'i mut [u8],
        out: &mut [u8],
    ) -> Result<Received<'i>, HandleError> {
        let input_len = input.len();
        match conn.frame(input, super::Mode::Resolve) {
            Framed::Partial => Ok(Received::Partial),
            Framed::Failed(rejection) => {
                conn::framing_failed(&self.config, conn, rejection, input_len, out)
                    .map(Received::Response)
            }
            Framed::Request(request) => {
                conn.reset();
                Ok(Received::Request(Request::new(
                    request.view,
                    request.ctx,
                    &self.config,
                )))
            }
        }
    }

    /// Answers `request` as the shell's `verdict` says, at time `now`: a fault or the shell's
    /// JSON as given, else validation and identity resolution — an error answer, the info
    /// answer, or, for a valid token request, [`Answer::Issue`] (nothing written yet).
    ///
    /// Parameters are decoded into `work` (the request line limit plus the body limit, 16 KiB
    /// by default, is always enough). On [`HandleError`] grow the named buffer and call again
    /// with the same request and verdict.
    pub fn answer<'w>(
        &self,
        request: &Request<'_>,
        verdict: &Verdict<'_>,
        now: u64,
        work: &'w mut [u8],
        out: &mut [u8],
    ) -> Result<Answer<'a, 'w>, HandleError>
    where
        's: 'w,
    {
        let config = &self.config;
        let ctx = &request.ctx;
        let view = &request.view;
        match *verdict {
            Verdict::Fault(fault) => {
                return conn::write_fault(config, &fault, None, ctx, out).map(Answer::Response);
            }
            Verdict::Json { status, body } => {
                let write = |o: &mut [u8]| {
                    let dst = o.get_mut(..body.len()).ok_or(HandleError::OutputTooSmall {
                        required: body.len(),
                    })?;
                    dst.copy_from_slice(body);
                    Ok(body.len())
                };
                return conn::finish(config, status, None, ctx, write, Outcome::Other, out)
                    .map(Answer::Response);
            }
            Verdict::Proceed => {}
        }
        let (decision, rest) = super::decide_with(self.table, config, view, work);
        let grant = match decision {
            Decision::Token(grant) => grant,
            Decision::Info => {
                let tenant = config.tenant_id.unwrap_or_default();
                let body = |o: &mut [u8]| respond::info_json(tenant, o);
                return conn::finish(config, 200, None, ctx, body, Outcome::Info, out)
                    .map(Answer::Response);
            }
            Decision::Reject(rejection) => {
                // A source's error texts quote the resource as asked, decoded (on the stack:
                // the work buffer holds the decision). Built for a rejection only: a token
                // answer needs none of it.
                let mut decoded = [0u8; 512];
                let raw_resource = raw_param(view.query, view.body, "resource");
                let resource = crate::query::decode_into(raw_resource, &mut decoded, Plus::Space)
                    .unwrap_or(raw_resource);
                let texts = Texts {
                    path: view.path,
                    authority: None,
                    resource,
                    tenant: config.tenant_id.unwrap_or("the VM's tenant"),
                    api_version: raw_param(view.query, &[], "api-version"),
                };
                return conn::write_rejection(config, rejection, None, &texts, ctx, rest, out)
                    .map(Answer::Response);
            }
        };
        // The resource lives at the front of the work buffer; the rest is free.
        let resource: &'w str = grant.resource;
        Ok(Answer::Issue(Issue {
            request: IssueRequest {
                resolved: grant.resolved,
                resource,
                now,
                bypass_cache: grant.bypass_cache,
                flavor: config.flavor,
            },
            config: *config,
            ctx: *ctx,
            area: rest,
        }))
    }
}

/// The raw (still encoded) value of the first `name` parameter in `query` or `form`, for error
/// texts; empty when absent or not UTF-8. Quoting it needs no decoding: the JSON writer escapes.
fn raw_param<'r>(query: &'r [u8], form: &'r [u8], name: &str) -> &'r str {
    [query, form]
        .into_iter()
        .flat_map(crate::query::Pairs::new)
        .find(|(n, _)| *n == name.as_bytes())
        .and_then(|(_, v)| core::str::from_utf8(v).ok())
        .unwrap_or_default()
}
