//! Head writers: output, refusals, and round trips through the parsers.

use mitoken_core::http::{
    Framing, RequestParser, ResponseParser, Status, WriteError, end_head, reason_phrase,
    write_content_length, write_header, write_http_date, write_request_line, write_status_line,
};
use mitoken_core::write::{BufferTooSmall, SliceWriter};

#[test]
fn request_head_round_trips() {
    let mut buf = [0u8; 256];
    let mut w = SliceWriter::new(&mut buf);
    write_request_line(
        &mut w,
        "GET",
        "/metadata/identity/oauth2/token?api-version=2018-02-01",
    )
    .unwrap();
    write_header(&mut w, "Host", "169.254.169.254").unwrap();
    write_header(&mut w, "Metadata", b"true").unwrap();
    end_head(&mut w);
    let n = w.finish().unwrap();
    assert_eq!(
        &buf[..n],
        b"GET /metadata/identity/oauth2/token?api-version=2018-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"
    );
    let mut p = RequestParser::default();
    let Ok(Status::Complete { value, len }) = p.parse(&buf[..n]) else {
        panic!()
    };
    assert_eq!(len, n);
    assert_eq!(value.target.query, Some("api-version=2018-02-01"));
    assert_eq!(value.headers.get_str("metadata"), Some("true"));
}

#[test]
fn response_head_round_trips() {
    let mut buf = [0u8; 256];
    let mut w = SliceWriter::new(&mut buf);
    write_status_line(&mut w, 429, reason_phrase(429)).unwrap();
    write_header(&mut w, "Content-Type", "application/json").unwrap();
    w.put(b"Retry-After: ");
    write_http_date(&mut w, 1_796_000_405).unwrap();
    w.put(b"\r\n");
    write_content_length(&mut w, 2);
    end_head(&mut w);
    w.put(b"{}");
    let n = w.finish().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 429 Too Many Requests\r\n"));
    let mut p = ResponseParser::default();
    let Ok(Status::Complete { value, len }) = p.parse(&buf[..n]) else {
        panic!()
    };
    assert_eq!(len, n - 2);
    assert_eq!(value.status, 429);
    assert_eq!(value.framing, Framing::Length(2));
    assert_eq!(
        value.retry_after,
        Some(mitoken_core::http::RetryAfter::At(1_796_000_405))
    );
}

#[test]
fn header_injection_is_refused() {
    let mut buf = [0u8; 64];
    let mut w = SliceWriter::new(&mut buf);
    for bad in [
        &b"a\r\nX-Injected: 1"[..],
        b"a\rb",
        b"a\nb",
        b"a\x00b",
        b"a\x7f",
        b"\x1b",
    ] {
        assert_eq!(
            write_header(&mut w, "X", bad),
            Err(WriteError::InvalidHeaderValue)
        );
    }
    assert_eq!(
        write_header(&mut w, "", "v"),
        Err(WriteError::InvalidHeaderName)
    );
    assert_eq!(
        write_header(&mut w, "X Y", "v"),
        Err(WriteError::InvalidHeaderName)
    );
    assert_eq!(
        write_header(&mut w, "X:", "v"),
        Err(WriteError::InvalidHeaderName)
    );
    assert_eq!(
        write_status_line(&mut w, 99, "x"),
        Err(WriteError::InvalidStatus)
    );
    assert_eq!(
        write_status_line(&mut w, 1000, "x"),
        Err(WriteError::InvalidStatus)
    );
    assert_eq!(
        write_status_line(&mut w, 200, "O\r\nK"),
        Err(WriteError::InvalidReason)
    );
    assert_eq!(
        write_request_line(&mut w, "G T", "/"),
        Err(WriteError::InvalidMethod)
    );
    assert_eq!(
        write_request_line(&mut w, "", "/"),
        Err(WriteError::InvalidMethod)
    );
    assert_eq!(
        write_request_line(&mut w, "GET", "/a b"),
        Err(WriteError::InvalidTarget)
    );
    assert_eq!(
        write_request_line(&mut w, "GET", "/\r\n"),
        Err(WriteError::InvalidTarget)
    );
    assert_eq!(
        write_request_line(&mut w, "GET", ""),
        Err(WriteError::InvalidTarget)
    );
    // Refused calls wrote nothing.
    assert!(w.is_empty());
    write_header(&mut w, "X", "tab\tok").unwrap();
    assert_eq!(w.finish(), Ok(11));
}

#[test]
fn small_buffer_reports_required_size() {
    let mut buf = [0u8; 8];
    let mut w = SliceWriter::new(&mut buf);
    write_status_line(&mut w, 200, "OK").unwrap();
    end_head(&mut w);
    assert_eq!(w.finish(), Err(BufferTooSmall { required: 19 }));
}
