//! `mitoken_exchange`: one token request out, one response in, over a caller buffer.

use core::ffi::c_char;

use mitoken_core::client::{ClientError, Exchange, Outcome, Progress};
use mitoken_core::http::Limits;
use mitoken_core::token::Token;

use crate::message;
use crate::raw::{self, Storage};
use crate::request::{self, mitoken_request};
use crate::response::mitoken_response;
use crate::result::mitoken_result;

/// Words (`uint64_t`) of a `mitoken_exchange`.
pub const MITOKEN_EXCHANGE_WORDS: usize = 80;
/// Bytes of a `mitoken_exchange`.
pub const MITOKEN_EXCHANGE_SIZE: usize = MITOKEN_EXCHANGE_WORDS * 8;
/// A buffer size that fits any IMDS token response with room to spare (tokens are
/// 1.5–4 KB). The request is written into the same buffer first.
pub const MITOKEN_BUFFER_SIZE_RECOMMENDED: usize = 16384;

/// Storage for one exchange. Opaque: declare it (static, global or on the stack), pass its
/// address, never read or write its contents. It holds no pointer that needs freeing.
#[repr(C)]
pub struct mitoken_exchange {
    /// Private.
    pub opaque: [u64; MITOKEN_EXCHANGE_WORDS],
}

/// What the storage holds once started.
pub(crate) struct State {
    /// Where the exchange is.
    phase: Phase,
    /// Why it failed, for `mitoken_exchange_error_text`.
    last_error: Option<ClientError>,
}

/// Where an exchange is.
// The storage is fixed-size and caller-provided: there is nothing to gain by boxing (and no
// heap to box into).
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Failed, or finished without a token.
    Over,
    /// Sending or receiving.
    Active(Exchange<'static>),
    /// Finished with this token (borrowing the caller's buffer), for `mitoken_cache_insert`.
    Token(Token<'static>),
}

// SAFETY: a repr(C) struct holding only a `u64` array.
unsafe impl Storage for mitoken_exchange {
    type State = State;
    const TAG: u64 = 0x6d69_746f_6b65_7831; // "mitokex1"
    fn words(&mut self) -> &mut [u64] {
        &mut self.opaque
    }
}

const _: () = assert!(raw::fits::<mitoken_exchange>());

impl State {
    /// The exchange, while it runs.
    fn exchange(&mut self) -> Option<&mut Exchange<'static>> {
        match &mut self.phase {
            Phase::Active(x) => Some(x),
            _ => None,
        }
    }

    /// Records `e`: the exchange is over.
    fn fail(&mut self, e: ClientError) -> mitoken_result {
        self.phase = Phase::Over;
        self.last_error = Some(e);
        e.into()
    }
}

/// The started exchange in `ex`, or the code to return.
///
/// # Safety
/// As [`raw::storage`].
unsafe fn active<'a>(ex: *mut mitoken_exchange) -> Result<&'a mut State, mitoken_result> {
    // SAFETY: forwarded contract.
    let storage = unsafe { raw::storage(ex) }?;
    match raw::state(storage) {
        Some(state) if matches!(state.phase, Phase::Active(_)) => Ok(state),
        _ => Err(mitoken_result::Misuse),
    }
}

fn code(r: Result<mitoken_result, mitoken_result>) -> mitoken_result {
    r.unwrap_or_else(|e| e)
}

/// Writes the HTTP request for `req` into `buf` and starts an exchange in `ex` (any previous
/// state in `ex` is forgotten).
///
/// `buf` (`buf_len` bytes) is lent to the exchange: the request is written at its start, the
/// response is then read into it, and the token fields point into it. Keep it alive and
/// untouched (except through `mitoken_exchange_receive_buf`) until you are done with the
/// response. `req`'s strings are only read during this call and must not point into `buf`.
///
/// Returns `OK`; `NULL_ARGUMENT`, `MISALIGNED`, `INVALID_ARGUMENT`, `INVALID_UTF8`; the
/// request's own errors (`CONTROL_CHARACTER`, `EMPTY_VALUE`, `INVALID_HOST`, `INVALID_PATH`,
/// `INVALID_PORT`); `BUFFER_TOO_SMALL` (`mitoken_request_size` says how much the request needs).
/// After an error the exchange is failed; `mitoken_exchange_error_text` explains it.
///
/// # Safety
/// `ex` points to a `mitoken_exchange`, `req` to a `mitoken_request` whose strings are valid
/// and outside `buf`, `buf` to `buf_len` writable bytes that outlive the exchange; none is
/// used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_start(
    ex: *mut mitoken_exchange,
    req: *const mitoken_request,
    buf: *mut u8,
    buf_len: usize,
) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let storage = match unsafe { raw::storage(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let state = raw::put(
        storage,
        State {
            phase: Phase::Over,
            last_error: None,
        },
    );
    // SAFETY: `req` is NULL or a valid request whose strings are valid for this call (contract); `parsed` does not outlive it.
    let parsed = match unsafe { request::parse(req) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: `buf` is NULL or `buf_len` writable bytes that outlive the exchange and are not
    // otherwise used while it runs (contract); the 'static lifetime is that promise.
    let buf: &'static mut [u8] = match unsafe { raw::bytes_mut(buf, buf_len) } {
        Ok(b) => b,
        Err(e) => return e,
    };
    match Exchange::new(&parsed.request, &parsed.endpoint, buf, Limits::DEFAULT) {
        Ok(exchange) => {
            state.phase = Phase::Active(exchange);
            mitoken_result::Ok
        }
        Err(e) => state.fail(e),
    }
}

/// The exact size in bytes of the HTTP request `req` describes, in `*size`.
///
/// Returns `OK`, or the errors of `mitoken_exchange_start` other than `BUFFER_TOO_SMALL`.
///
/// # Safety
/// `req` points to a valid `mitoken_request`, `size` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_request_size(
    req: *const mitoken_request,
    size: *mut usize,
) -> mitoken_result {
    // SAFETY: `req` is NULL or a valid request whose strings are valid for this call (contract).
    let parsed = match unsafe { request::parse(req) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    match parsed.request.encoded_len(&parsed.endpoint) {
        // SAFETY: `size` is NULL or writable (contract).
        Ok(n) => code(unsafe { raw::out(size, n) }.map(|()| mitoken_result::Ok)),
        Err(e) => e.into(),
    }
}

/// The request bytes not sent yet: `*data` and `*len` (0 once all are sent). `*data` points
/// into the exchange buffer; send them, then report with `mitoken_exchange_sent`.
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`, `MISUSE` (not started, failed or finished).
///
/// # Safety
/// `ex` points to a `mitoken_exchange`, `data` and `len` to writable out-parameters.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_to_send(
    ex: *mut mitoken_exchange,
    data: *mut *const u8,
    len: *mut usize,
) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let state = match unsafe { active(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let pending = state.exchange().map_or(&[][..], |x| x.to_send());
    // SAFETY: `data` is NULL or writable (contract).
    if let Err(e) = unsafe { raw::out(data, pending.as_ptr()) } {
        return e;
    }
    // SAFETY: `len` is NULL or writable (contract).
    code(unsafe { raw::out(len, pending.len()) }.map(|()| mitoken_result::Ok))
}

/// Records that `n` more request bytes were sent (counts beyond the request are ignored).
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`, `MISUSE`.
///
/// # Safety
/// `ex` points to a `mitoken_exchange`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_sent(
    ex: *mut mitoken_exchange,
    n: usize,
) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    match unsafe { active(ex) } {
        Ok(state) => {
            if let Some(exchange) = state.exchange() {
                exchange.sent(n);
            }
            mitoken_result::Ok
        }
        Err(e) => e,
    }
}

/// Where to read the next response bytes: `*data`, at most `*len` bytes, inside the exchange
/// buffer. Read (`recv`) into it, then report with `mitoken_exchange_received`.
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`, `MISUSE` (request not fully sent, or not
/// started/failed/finished), `RESPONSE_TOO_LARGE` (the buffer is full; the exchange fails).
///
/// # Safety
/// `ex` points to a `mitoken_exchange`, `data` and `len` to writable out-parameters.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_receive_buf(
    ex: *mut mitoken_exchange,
    data: *mut *mut u8,
    len: *mut usize,
) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let state = match unsafe { active(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let free = match state.exchange().map(Exchange::receive_buf) {
        Some(Ok(free)) => free,
        Some(Err(ClientError::Misuse)) | None => return mitoken_result::Misuse,
        Some(Err(e)) => return state.fail(e),
    };
    let (ptr, n) = (free.as_mut_ptr(), free.len());
    // SAFETY: `data` is NULL or writable (contract).
    if let Err(e) = unsafe { raw::out(data, ptr) } {
        return e;
    }
    // SAFETY: `len` is NULL or writable (contract).
    code(unsafe { raw::out(len, n) }.map(|()| mitoken_result::Ok))
}

/// Records that `n` bytes were read into the receive buffer, and parses them.
///
/// Returns `NEED_MORE` (read more), `COMPLETE` (call `mitoken_exchange_finish`), or an error:
/// `INVALID_HTTP`, `RESPONSE_TOO_LARGE` (the exchange fails; see
/// `mitoken_exchange_error_text`), `MISUSE` (`n` larger than offered, or not receiving),
/// `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `ex` points to a `mitoken_exchange`; the buffer's first `n` free bytes were written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_received(
    ex: *mut mitoken_exchange,
    n: usize,
) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let state = match unsafe { active(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    match state.exchange().map(|x| x.received(n)) {
        Some(Ok(Progress::NeedMore)) => mitoken_result::NeedMore,
        Some(Ok(Progress::Complete)) => mitoken_result::Complete,
        Some(Err(ClientError::Misuse)) | None => mitoken_result::Misuse,
        Some(Err(e)) => state.fail(e),
    }
}

/// Records that the peer closed the connection (`recv` returned 0).
///
/// Returns `COMPLETE` when the response is complete (including one delimited by the close);
/// `CLOSED_EARLY` when it was cut short (an I/O failure: retry); `INVALID_HTTP`; `MISUSE`,
/// `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `ex` points to a `mitoken_exchange`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_eof(ex: *mut mitoken_exchange) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let state = match unsafe { active(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    match state.exchange().map(Exchange::eof) {
        Some(Ok(_)) => mitoken_result::Complete,
        Some(Err(ClientError::Misuse)) | None => mitoken_result::Misuse,
        Some(Err(e)) => state.fail(e),
    }
}

/// Parses the complete response into `*out` and ends the exchange. `now` is the current Unix
/// time in seconds (it turns `expires_in` into `expires_at` and an HTTP-date `Retry-After`
/// into seconds).
///
/// `*out`'s strings point into the exchange buffer: valid until you reuse it. A non-200
/// answer is `OK` with `out->kind == MITOKEN_RESPONSE_KIND_SERVICE_ERROR`; decide on a retry
/// with `mitoken_attempt_from_response` and `mitoken_retry_decide`.
///
/// Returns `OK`; `INVALID_TOKEN` (HTTP 200 but no valid token: do not retry); `MISUSE` (not
/// complete yet); `NULL_ARGUMENT`, `MISALIGNED`. The exchange is over either way (start a new
/// one for a retry); `*out` is written only on `OK`.
///
/// # Safety
/// `ex` points to a `mitoken_exchange`, `out` to a writable `mitoken_response`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_finish(
    ex: *mut mitoken_exchange,
    now: u64,
    out: *mut mitoken_response,
) -> mitoken_result {
    if out.is_null() {
        return mitoken_result::NullArgument;
    }
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let state = match unsafe { active(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Phase::Active(exchange) = core::mem::replace(&mut state.phase, Phase::Over) else {
        return mitoken_result::Misuse;
    };
    match exchange.finish(now) {
        Ok(outcome) => {
            if let Outcome::Token(t) = outcome {
                state.phase = Phase::Token(t);
            }
            // SAFETY: `out` is writable (contract; NULL checked above).
            code(
                unsafe { raw::out(out, mitoken_response::of(&outcome, now)) }
                    .map(|()| mitoken_result::Ok),
            )
        }
        Err(e) => state.fail(e),
    }
}

/// Explains the error that failed the exchange: NUL-terminated English text in `text`
/// (`cap` bytes), its length (without the NUL) in `*len`. The text is never truncated: if it
/// does not fit, `BUFFER_TOO_SMALL` with the length in `*len` (provide `*len + 1` bytes);
/// 256 bytes always suffice. No error yet gives the empty text.
///
/// Returns `OK`, `BUFFER_TOO_SMALL`, `NULL_ARGUMENT`, `MISALIGNED`, `MISUSE` (never started).
///
/// # Safety
/// `ex` points to a `mitoken_exchange`, `text` to `cap` writable bytes, `len` to a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_exchange_error_text(
    ex: *mut mitoken_exchange,
    text: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> mitoken_result {
    // SAFETY: `ex` is NULL or valid, exclusive storage (contract).
    let storage = match unsafe { raw::storage(ex) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(state) = raw::state(storage) else {
        return mitoken_result::Misuse;
    };
    // SAFETY: `text` is NULL or `cap` writable bytes (contract).
    let text = match unsafe { raw::bytes_mut(text.cast::<u8>(), cap) } {
        Ok(t) => t,
        Err(e) => return e,
    };
    let (result, n) = match state.last_error {
        Some(e) => message::write(text, e),
        None => message::write(text, ""),
    };
    // SAFETY: `len` is NULL or writable (contract).
    code(unsafe { raw::out(len, n) }.map(|()| result))
}

/// The token the finished exchange in `ex` ended with, if it ended with one.
///
/// # Safety
/// As [`raw::storage`]; the exchange's buffer is still intact (the caller's contract).
pub(crate) unsafe fn finished_token(
    ex: *mut mitoken_exchange,
) -> Result<Token<'static>, mitoken_result> {
    // SAFETY: forwarded contract.
    let storage = unsafe { raw::storage(ex) }?;
    match raw::state(storage).map(|s| &s.phase) {
        Some(Phase::Token(t)) => Ok(*t),
        _ => Err(mitoken_result::Misuse),
    }
}
