//! The three parsers the benchmarks compare, each behind an `#[inline(never)]` entry point so
//! callgrind can attribute instructions to it (`--toggle-collect='*run_mitoken*'`).
#![allow(dead_code)]

pub mod serve;

use mitoken_core::token::Token;
use serde::Deserialize;

/// The token body, every field as borrowed text: what a naive derive does.
#[derive(Deserialize)]
pub struct NaiveToken<'a> {
    pub access_token: &'a str,
    pub client_id: Option<&'a str>,
    pub expires_in: &'a str,
    pub expires_on: &'a str,
    pub ext_expires_in: Option<&'a str>,
    pub not_before: &'a str,
    pub resource: &'a str,
    pub token_type: &'a str,
}

/// mitoken's parser; returns a value derived from the parse so nothing is optimised away.
#[inline(never)]
pub fn run_mitoken(body: &[u8]) -> usize {
    match Token::parse(body, &mut []) {
        Ok(t) => t.access_token.len() + t.resource.len(),
        Err(_) => 0,
    }
}

/// `serde_json::from_slice` into borrowed strings.
#[inline(never)]
pub fn run_serde_json(body: &[u8]) -> usize {
    match serde_json::from_slice::<NaiveToken<'_>>(body) {
        Ok(t) => t.access_token.len() + t.resource.len(),
        Err(_) => 0,
    }
}

/// `serde_json_core::from_slice` into borrowed strings.
#[inline(never)]
pub fn run_serde_json_core(body: &[u8]) -> usize {
    match serde_json_core::from_slice::<NaiveToken<'_>>(body) {
        Ok((t, _)) => t.access_token.len() + t.resource.len(),
        Err(_) => 0,
    }
}

/// Whole-response read buffer for mitoken, reused across iterations like a connection's
/// buffer (so the benchmark does not time zeroing 4 KiB).
const RESPONSE_CAP: usize = 4096;

std::thread_local! {
    static READ_BUF: core::cell::RefCell<[u8; RESPONSE_CAP]> =
        const { core::cell::RefCell::new([0; RESPONSE_CAP]) };
}

/// mitoken on a whole response: `ResponseReader` (head + body framing) then `Token::parse`.
/// The response is first copied into the read buffer, as a socket read would put it there;
/// that copy is counted against mitoken.
#[inline(never)]
pub fn run_mitoken_response(response: &[u8]) -> usize {
    use mitoken_core::http::{Limits, ResponseReader, Status};
    READ_BUF.with_borrow_mut(|buf| {
        let Some(dst) = buf.get_mut(..response.len()) else {
            return 0;
        };
        dst.copy_from_slice(response);
        let mut reader = ResponseReader::new(Limits::default());
        let Ok(Status::Complete { value, .. }) = reader.feed(buf, response.len()) else {
            return 0;
        };
        if value.status != 200 {
            return 0;
        }
        let range = value.body_range();
        match Token::parse(&buf[range], &mut []) {
            Ok(t) => t.access_token.len() + t.resource.len(),
            Err(_) => 0,
        }
    })
}

/// The usual std approach: `httparse` for the head, `Content-Length`, then `serde_json`.
#[inline(never)]
pub fn run_httparse_serde_json(response: &[u8]) -> usize {
    httparse_body(response).map_or(0, run_serde_json)
}

/// `httparse` for the head, then `serde-json-core`.
#[inline(never)]
pub fn run_httparse_serde_json_core(response: &[u8]) -> usize {
    httparse_body(response).map_or(0, run_serde_json_core)
}

fn httparse_body(response: &[u8]) -> Option<&[u8]> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(response).ok()? else {
        return None;
    };
    if parsed.code != Some(200) {
        return None;
    }
    let len: usize = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())?;
    response.get(head_len..head_len.checked_add(len)?)
}
