//! The three parsers the benchmarks compare, each behind an `#[inline(never)]` entry point so
//! callgrind can attribute instructions to it (`--toggle-collect='*run_mitoken*'`).
#![allow(dead_code)]

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
