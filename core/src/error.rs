//! Errors of every layer, rolled up into [`Error`].
//!
//! Each layer has its own small `Copy` error enum whose variants say what a person needs to act
//! on; [`Error`] wraps any of them for callers that do not care which layer failed.

use core::fmt;

use crate::cache::CacheError;
use crate::client::ClientError;
use crate::http::{HttpError, WriteError};
use crate::query::QueryError;
use crate::request::RequestError;
use crate::retry::RetryError;
use crate::token::JsonError;
use crate::write::BufferTooSmall;

/// Any error mitoken-core can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// HTTP/1.1 parsing or framing.
    Http(HttpError),
    /// Writing an HTTP head.
    HttpWrite(WriteError),
    /// Building a token request.
    Request(RequestError),
    /// Token or error JSON.
    Json(JsonError),
    /// Query strings and form bodies.
    Query(QueryError),
    /// The client exchange.
    Client(ClientError),
    /// A caller-lent buffer is too small.
    BufferTooSmall(BufferTooSmall),
    /// The retry policy gave up.
    Retry(RetryError),
    /// The token cache refused an entry.
    Cache(CacheError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(e) => fmt::Display::fmt(e, f),
            Self::HttpWrite(e) => fmt::Display::fmt(e, f),
            Self::Request(e) => fmt::Display::fmt(e, f),
            Self::Json(e) => fmt::Display::fmt(e, f),
            Self::Query(e) => fmt::Display::fmt(e, f),
            Self::Client(e) => fmt::Display::fmt(e, f),
            Self::BufferTooSmall(e) => fmt::Display::fmt(e, f),
            Self::Retry(e) => fmt::Display::fmt(e, f),
            Self::Cache(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl core::error::Error for Error {}

macro_rules! from_layer {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        })*
    };
}

from_layer!(
    Http(HttpError),
    HttpWrite(WriteError),
    Request(RequestError),
    Json(JsonError),
    Query(QueryError),
    Client(ClientError),
    BufferTooSmall(BufferTooSmall),
    Retry(RetryError),
    Cache(CacheError),
);
