//! [`Secret`]: a string that never shows in `Debug` or `Display` (access and refresh tokens,
//! a source's secret header). Used by the request writer and the token parser alike.

use core::fmt;

/// A secret string (an access or refresh token, a source's secret). `Debug` and `Display` never show it; call
/// [`Secret::expose`] where the text is really needed, e.g. to build an `Authorization` header.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Secret<'a>(&'a str);

impl<'a> Secret<'a> {
    /// Wraps `text`.
    pub const fn new(text: &'a str) -> Self {
        Self(text)
    }

    /// The secret text. Keep it out of logs.
    pub const fn expose(&self) -> &'a str {
        self.0
    }

    /// Length in bytes (not secret).
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret (legacy responses send `"refresh_token":""`).
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

impl fmt::Display for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
