//! Token requests for every managed-identity source (`TokenRequest::write` with each
//! `Style`), with arbitrary values.
//!
//! Input: structured (style, resource, selector, secret, URL path). Properties:
//! - `write` never panics and agrees with `validate` and `encoded_len`;
//! - a written request is one HTTP/1.1 head (CRLF lines, no bare CR or LF, no control byte),
//!   plus, for Cloud Shell only, a form body of exactly `Content-Length` bytes;
//! - the secret appears verbatim at the end of a header line, and `Debug` does not depend on
//!   its text.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mitoken_core::request::{Endpoint, ResIdParam, Selector, Style, TokenRequest};

#[derive(Debug)]
struct Case {
    style: u8,
    resource: String,
    selector: Option<(u8, String)>,
    secret: Option<String>,
    path: String,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    Ok(Case {
        style: u.arbitrary()?,
        resource: u.arbitrary()?,
        selector: u.arbitrary()?,
        secret: u.arbitrary()?,
        path: u.arbitrary()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = case(&mut Unstructured::new(data)) else {
        return;
    };
    let style = Style::ALL[usize::from(case.style) % Style::ALL.len()];
    let endpoint = Endpoint::Custom {
        host: "127.0.0.1",
        port: 8080,
        path: &case.path,
        style,
    };
    let mut req = TokenRequest::new(&case.resource);
    if let Some((kind, id)) = &case.selector {
        req = req.with_selector(match kind % 4 {
            0 => Selector::ClientId(id),
            1 => Selector::ObjectId(id),
            2 => Selector::ResourceId {
                id,
                param: ResIdParam::MsiResId,
            },
            _ => Selector::ResourceId {
                id,
                param: ResIdParam::MiResId,
            },
        });
    }
    let stand_in = case.secret.as_ref().map(|s| "x".repeat(s.len()));
    if let (Some(secret), Some(stand_in)) = (&case.secret, &stand_in) {
        // `Debug` is the same whatever the secret's text: only its length shows.
        let shown = format!("{:?}", req.with_secret(stand_in));
        req = req.with_secret(secret);
        assert_eq!(format!("{req:?}"), shown);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let written = req.write(&endpoint, &mut buf);
    assert_eq!(written.map(|_| ()), req.validate(&endpoint));
    let Ok(n) = written else {
        return;
    };
    assert_eq!(req.encoded_len(&endpoint), Ok(n));
    let text = std::str::from_utf8(&buf[..n]).expect("UTF-8 out of UTF-8 in");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a blank line ends the head");
    for line in head.split("\r\n") {
        assert!(line.bytes().all(|b| b >= 0x20 && b != 0x7F), "{line:?}");
    }
    if style == Style::CloudShell {
        assert!(head.starts_with("POST "));
        let len: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("Content-Length")
            .parse()
            .expect("digits");
        assert_eq!(body.len(), len);
        assert!(body.starts_with("resource="));
    } else {
        assert!(head.starts_with("GET "));
        assert!(body.is_empty());
    }
    if let Some(secret) = &case.secret {
        let header_line = head
            .split("\r\n")
            .find(|l| l.ends_with(secret.as_str()) && l.contains(": "))
            .expect("the secret's header");
        assert!(header_line.len() > secret.len());
    }
});
