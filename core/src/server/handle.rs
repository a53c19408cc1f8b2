//! [`Server::handle`]: request bytes in, response bytes out, in one call — the connection's
//! framing ([`super::conn`]), then the verdict and answer ([`super::answer`]).

use super::answer::{self, Answer, Minted, Request, Verdict};
use super::conn::{
    Ctx, Framed, MIN_JSON_ROOM, Outcome, Response, ServerConnection, Texts, bare_fault, finish,
    framing_failed, write_rejection,
};
use super::respond;
use super::{
    Admission, Fault, Grant, HandleError, IssueError, Issuer, OtherAnswer, OtherRequest, Rejection,
    RequestView, Server,
};

/// What [`Server::handle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a response must be sent, and `consumed` bytes dropped from the input"]
pub enum Handled<'a> {
    /// The request is not complete: read more bytes, append them to the same buffer, call again.
    Partial,
    /// A response is ready in the output buffer.
    Response(Response<'a>),
}

impl<'a, S: AsRef<str>, const N: usize> Server<'_, 'a, S, N> {
    /// Handles the request at the start of `input` on connection `conn`.
    ///
    /// `input` holds the connection's unconsumed bytes: pass the same buffer, grown at its end,
    /// until a [`Handled::Response`]; then send `out[..len]`, drop `consumed` bytes from the
    /// front of the input, and (if `keep_alive`) call again for the next pipelined request.
    /// A chunked body is decoded in place inside `input`.
    ///
    /// Every input is answered: malformed HTTP with 400 (431 for oversized heads, 413 for
    /// oversized bodies) and `keep_alive: false`; nothing panics.
    ///
    /// On [`HandleError`] nothing is consumed and `conn` keeps its state: grow the named buffer
    /// and call again (the issuer may then be called a second time).
    pub fn handle<I: Issuer + ?Sized>(
        &mut self,
        conn: &mut ServerConnection,
        input: &mut [u8],
        now: u64,
        issuer: &mut I,
        out: &mut [u8],
    ) -> Result<Handled<'a>, HandleError> {
        let input_len = input.len();
        let request = match conn.frame(input, super::Mode::Resolve) {
            Framed::Partial => return Ok(Handled::Partial),
            Framed::Failed(rejection) => {
                return framing_failed(&self.config, conn, rejection, input_len, out)
                    .map(Handled::Response);
            }
            Framed::Request(request) => request,
        };
        let response = self.respond(&request.view, &request.ctx, now, issuer, out)?;
        conn.reset();
        Ok(Handled::Response(response))
    }

    /// Writes `fault` as a complete response (`Connection: close` unless `keep_alive`), e.g.
    /// to turn a connection away before reading it. Returns the response length.
    pub fn write_fault(
        &mut self,
        fault: &Fault<'_>,
        keep_alive: bool,
        out: &mut [u8],
    ) -> Result<usize, HandleError> {
        bare_fault(&self.config, fault, keep_alive, out)
    }

    /// Offers a request for a path the server does not own to [`Issuer::serve_other`]; `None`
    /// when the shell passes it on.
    fn respond_other<I: Issuer + ?Sized>(
        &mut self,
        view: &RequestView<'_>,
        ctx: &Ctx,
        now: u64,
        issuer: &mut I,
        out: &mut [u8],
    ) -> Option<Result<Response<'a>, HandleError>> {
        let config = self.config;
        let other = OtherRequest {
            method: view.method,
            path: view.path,
            query: view.query,
            body: view.body,
            now,
        };
        Some(match issuer.serve_other(&other, out) {
            OtherAnswer::Json { status, body_len } if body_len <= out.len() => {
                let body = |_: &mut [u8]| Ok(body_len);
                finish(&config, status, None, ctx, body, Outcome::Other, out)
            }
            OtherAnswer::TooSmall { required } => {
                Err(respond::too_small(crate::write::BufferTooSmall {
                    required,
                }))
            }
            OtherAnswer::Json { .. } => {
                // The shell claimed more than its buffer: a broken shell.
                let texts = Texts::default();
                let rejection = Rejection::IssueFailed;
                write_rejection(&config, rejection, None, &texts, ctx, self.work, out)
            }
            _ => return None,
        })
    }

    fn respond<I: Issuer + ?Sized>(
        &mut self,
        view: &RequestView<'_>,
        ctx: &Ctx,
        now: u64,
        issuer: &mut I,
        out: &mut [u8],
    ) -> Result<Response<'a>, HandleError> {
        let config = self.config;
        if !config.serves(view.path)
            && let Some(answer) = self.respond_other(view, ctx, now, issuer, out)
        {
            return answer;
        }
        let admission = Admission {
            method: view.method,
            path: view.path,
            now,
        };
        let request = Request::new(*view, *ctx, &config);
        let verdict = match issuer.admit(&admission) {
            Some(fault) => Verdict::Fault(fault),
            None => Verdict::Proceed,
        };
        let work_len = self.work.len();
        let server = Server::new(self.table, config, &mut []);
        let answer = server.answer(&request, &verdict, now, self.work, out)?;
        let mut issue = match answer {
            Answer::Response(response) => return Ok(response),
            Answer::Issue(issue) => issue,
        };
        let grant_request = issue.request;
        let area_len = issue.area().len();
        match issuer.issue(&grant_request, issue.area()) {
            Ok(written) => {
                let (config, ctx) = (issue.config(), *issue.ctx());
                let token = issue
                    .area()
                    .get(..written.token_len)
                    .and_then(|t| core::str::from_utf8(t).ok());
                let Some(token) = token else {
                    // The issuer claimed more than its buffer, or wrote non-UTF-8.
                    return issue.write_error(&IssueError::Failed, out);
                };
                let grant = Grant {
                    resolved: grant_request.resolved,
                    resource: grant_request.resource,
                    bypass_cache: grant_request.bypass_cache,
                };
                let minted = Minted {
                    token,
                    not_before: written.not_before,
                    expires_on: written.expires_on,
                };
                answer::token_response(&config, &grant, &minted, now, &ctx, out)
            }
            Err(IssueError::BufferTooSmall { required }) => {
                let used = work_len.saturating_sub(area_len);
                Err(HandleError::WorkTooSmall {
                    required: used.saturating_add(required).saturating_add(MIN_JSON_ROOM),
                })
            }
            Err(e) => issue.write_error(&e, out),
        }
    }
}
