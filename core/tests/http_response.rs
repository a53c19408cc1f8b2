//! Response parsing: fixtures, hand-written cases, and split-invariance for every case.

mod http_support;

use http_support::*;
use mitoken_core::http::{
    Framing, HttpError, Limits, ResponseParser, ResponseReader, RetryAfter, Status,
};

/// `res!(name, input, |r| checks)`: parses `input` whole with the default limits, asserts that
/// byte-wise and every two-piece split agree, then runs the checks on the `Result<Res, _>`.
macro_rules! res {
    ($name:ident, $input:expr, |$r:ident| $body:block) => {
        res!($name, $input, Limits::default(), |$r| $body);
    };
    ($name:ident, $input:expr, $limits:expr, |$r:ident| $body:block) => {
        #[test]
        fn $name() {
            let input: &[u8] = $input;
            let $r = assert_split_invariant(input, $limits);
            $body
        }
    };
}

fn header<'a>(r: &'a Res, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

res!(fixture_token_content_length, TOKEN, |r| {
    let r = r.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, b"OK");
    assert_eq!(r.minor, 1);
    assert_eq!(r.framing, Framing::Length(2529));
    assert!(r.keep_alive);
    assert_eq!(r.retry_after, None);
    assert_eq!(r.headers.len(), 4);
    assert_eq!(
        header(&r, "content-type"),
        Some(&b"application/json; charset=utf-8"[..])
    );
    assert_eq!(header(&r, "SERVER"), Some(&b"IMDS/150.870.65.1854"[..]));
    assert_eq!(r.body, TOKEN_BODY);
    assert_eq!(r.len, TOKEN.len());
});

res!(fixture_token_chunked, TOKEN_CHUNKED, |r| {
    let r = r.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert_eq!(header(&r, "transfer-encoding"), Some(&b"chunked"[..]));
    assert_eq!(r.body, TOKEN_BODY);
    assert_eq!(r.len, TOKEN_CHUNKED.len());
});

res!(fixture_error_400, ERROR_400, |r| {
    let r = r.unwrap();
    assert_eq!((r.status, r.reason.as_slice()), (400, &b"Bad Request"[..]));
    assert_eq!(
        r.body,
        br#"{"error":"invalid_request","error_description":"Identity not found"}"#
    );
});

res!(fixture_error_400_no_metadata, ERROR_400_NO_METADATA, |r| {
    let r = r.unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .ends_with(b"Required metadata header not specified\"}")
    );
});

res!(fixture_error_429, ERROR_429, |r| {
    let r = r.unwrap();
    assert_eq!(
        (r.status, r.reason.as_slice()),
        (429, &b"Too Many Requests"[..])
    );
    assert_eq!(r.retry_after, None);
    assert!(r.body.starts_with(br#"{"error":"too_many_requests""#));
});

res!(
    retry_after_seconds,
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nContent-Length: 2\r\n\r\n{}",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.retry_after, Some(RetryAfter::Seconds(5)));
        assert_eq!(r.body, b"{}");
    }
);

res!(
    retry_after_http_date,
    b"HTTP/1.1 429 Too Many Requests\r\nretry-after:  Mon, 30 Nov 2026 01:00:05 GMT \r\nContent-Length: 0\r\n\r\n",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.retry_after, Some(RetryAfter::At(1_796_000_405)));
        assert_eq!(r.retry_after.unwrap().delay_from(1_796_000_400), 5);
        assert_eq!(r.body, b"");
    }
);

res!(
    retry_after_malformed_is_ignored,
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: soon\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
    |r| {
        assert_eq!(r.unwrap().retry_after, None);
    }
);

res!(
    server_error_500,
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(r.body, b"oops!");
    }
);

res!(
    pipelined_bytes_after_response_are_left_alone,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.body, b"abc");
        assert_eq!(r.len, 60);
    }
);

res!(
    until_close_body,
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.framing, Framing::UntilClose);
        assert!(!r.keep_alive);
        assert_eq!(r.body, b"hello world");
    }
);

res!(
    no_body_statuses,
    b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.framing, Framing::None);
        assert_eq!(r.body, b"");
    }
);

res!(
    interim_100_is_skipped,
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    |r| {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"x");
    }
);

res!(
    lf_only_response_is_accepted,
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    |r| {
        let r = r.unwrap();
        assert_eq!(header(&r, "content-length"), Some(&b"2"[..]));
        assert_eq!(r.body, b"ok");
    }
);

res!(
    chunked_with_extensions_and_trailers,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n4;name=\"v\"\r\nWiki\r\n5 ;x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n",
    |r| {
        assert_eq!(r.unwrap().body, b"Wikipedia in\r\n\r\nchunks.");
    }
);

res!(
    status_without_reason,
    b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    |r| {
        assert_eq!(r.unwrap().reason, b"");
    }
);

res!(
    http_1_0_keep_alive_response,
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    |r| {
        assert!(r.unwrap().keep_alive);
    }
);

res!(
    connection_close_response,
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    |r| {
        assert!(!r.unwrap().keep_alive);
    }
);

// ---- errors ----

res!(
    truncated_body_at_eof,
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    |r| {
        assert_eq!(r, Err(HttpError::TruncatedBody));
    }
);

res!(
    truncated_chunked_body_at_eof,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::TruncatedBody));
    }
);

res!(
    truncated_head_at_eof,
    b"HTTP/1.1 200 OK\r\nContent-Le",
    |r| {
        assert_eq!(r, Err(HttpError::TruncatedHead));
    }
);

res!(empty_input_at_eof, b"", |r| {
    assert_eq!(r, Err(HttpError::TruncatedHead));
});

res!(
    oversized_head_line,
    &[
        b"HTTP/1.1 200 OK\r\nX-Big: ".as_slice(),
        &[b'a'; 200],
        b"\r\n\r\n"
    ]
    .concat(),
    Limits::default().with_max_line_len(100),
    |r| {
        assert_eq!(r, Err(HttpError::LineTooLong));
    }
);

res!(
    too_many_headers,
    b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n",
    Limits::default().with_max_headers(3),
    |r| {
        assert_eq!(r, Err(HttpError::TooManyHeaders));
    }
);

res!(
    exactly_max_headers_is_fine,
    b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n",
    Limits::default().with_max_headers(3),
    |r| {
        assert_eq!(r.unwrap().headers.len(), 3);
    }
);

res!(
    body_too_large_by_length,
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
    Limits::default().with_max_body(10),
    |r| {
        assert_eq!(r, Err(HttpError::BodyTooLarge));
    }
);

res!(
    body_too_large_chunked,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n",
    Limits::default().with_max_body(10),
    |r| {
        assert_eq!(r, Err(HttpError::BodyTooLarge));
    }
);

res!(
    body_too_large_until_close,
    b"HTTP/1.1 200 OK\r\n\r\n01234567890",
    Limits::default().with_max_body(10),
    |r| {
        assert_eq!(r, Err(HttpError::BodyTooLarge));
    }
);

res!(garbage, b"\x00\xff\x13garbage\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::InvalidStatusLine));
});

res!(
    binary_garbage_without_line_end,
    b"\x16\x03\x01\x02\x00",
    |r| {
        assert_eq!(r, Err(HttpError::InvalidStatusLine));
    }
);

res!(http2_preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::InvalidStatusLine));
});

res!(http_2_version, b"HTTP/2.0 200 OK\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::UnsupportedVersion));
});

res!(bad_status_codes, b"HTTP/1.1 20 OK\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::InvalidStatusCode));
});

res!(four_digit_status, b"HTTP/1.1 2000 OK\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::InvalidStatusCode));
});

res!(status_below_100, b"HTTP/1.1 099 Low\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::InvalidStatusCode));
});

res!(control_in_reason, b"HTTP/1.1 200 O\x01K\r\n\r\n", |r| {
    assert_eq!(r, Err(HttpError::InvalidStatusLine));
});

res!(
    bare_cr_in_response,
    b"HTTP/1.1 200 OK\r\nA: b\rC: d\r\n\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::BareCr));
    }
);

res!(
    response_smuggling_cl_and_te,
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::ContentLengthWithTransferEncoding));
    }
);

res!(
    response_conflicting_lengths,
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    |r| {
        assert_eq!(r, Err(HttpError::ConflictingContentLength));
    }
);

res!(
    response_gzip_transfer_coding,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::UnsupportedTransferEncoding));
    }
);

res!(
    chunk_data_without_crlf,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::MissingChunkCrlf));
    }
);

res!(
    chunk_size_not_hex,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::InvalidChunkSize));
    }
);

res!(
    chunk_size_too_many_digits,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::ChunkSizeTooLarge));
    }
);

res!(
    chunk_size_bare_lf,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::BareLf));
    }
);

res!(
    bad_trailer,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n",
    |r| {
        assert_eq!(r, Err(HttpError::MissingColon));
    }
);

res!(
    too_many_trailers,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
    Limits::default().with_max_headers(1),
    |r| {
        assert_eq!(r, Err(HttpError::TooManyHeaders));
    }
);

// ---- incremental behaviour ----

#[test]
fn line_too_long_is_reported_before_its_end_arrives() {
    let limits = Limits::default().with_max_line_len(16);
    let mut p = ResponseParser::new(limits);
    let mut buf = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    assert_eq!(p.parse(&buf), Ok(Status::Partial));
    buf.extend_from_slice(&[b'a'; 13]); // "X: " + 13 = 16 bytes: still allowed
    assert_eq!(p.parse(&buf), Ok(Status::Partial));
    buf.push(b'a'); // 17 bytes, no CRLF in sight
    assert_eq!(p.parse(&buf), Err(HttpError::LineTooLong));
}

#[test]
fn too_many_headers_is_reported_when_the_next_line_starts() {
    let mut p = ResponseParser::new(Limits::default().with_max_headers(1));
    assert_eq!(p.parse(b"HTTP/1.1 200 OK\r\nA: 1\r\n"), Ok(Status::Partial));
    assert_eq!(
        p.parse(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r"),
        Ok(Status::Partial)
    );
    let mut p = ResponseParser::new(Limits::default().with_max_headers(1));
    assert_eq!(
        p.parse(b"HTTP/1.1 200 OK\r\nA: 1\r\nB"),
        Err(HttpError::TooManyHeaders)
    );
}

#[test]
fn validated_lines_are_not_parsed_again() {
    // Resumption proof: after the first call validated the status line, the parser does not
    // look at it again (the caller broke the contract by changing it, and it goes unnoticed).
    let mut p = ResponseParser::default();
    assert_eq!(p.parse(b"HTTP/1.1 200 OK\r\nA: 1\r\n"), Ok(Status::Partial));
    let head = p.parse(b"XXXXXXXXXXXXXXXXXA: 1\r\n\r\n").unwrap();
    let Status::Complete { value, len } = head else {
        panic!("expected complete")
    };
    assert_eq!((value.status, len), (200, 25));
    // A shrunk buffer is detected.
    assert_eq!(p.parse(b"HTTP"), Err(HttpError::BufferMismatch));
}

#[test]
fn complete_is_idempotent() {
    let mut p = ResponseParser::default();
    let first = p.parse(ERROR_400).unwrap();
    let second = p.parse(ERROR_400).unwrap();
    assert_eq!(first, second);
    assert!(p.is_complete());
    p.reset();
    assert!(!p.is_complete());
}

#[test]
fn head_parser_partial_until_exactly_the_blank_line() {
    for (name, input) in FIXTURES {
        let mut whole = ResponseParser::default();
        let Status::Complete {
            len: head_len,
            value,
        } = whole.parse(input).unwrap()
        else {
            panic!("{name}: head incomplete")
        };
        let mut p = ResponseParser::default();
        for n in 0..head_len {
            assert_eq!(p.parse(&input[..n]), Ok(Status::Partial), "{name} at {n}");
        }
        assert_eq!(
            p.parse(&input[..head_len]),
            Ok(Status::Complete {
                value,
                len: head_len
            }),
            "{name}"
        );
    }
}

#[test]
fn every_fixture_every_split() {
    for (name, input) in FIXTURES {
        let r = assert_split_invariant(input, Limits::default());
        assert!(r.is_ok(), "{name}: {r:?}");
        assert_eq!(r.unwrap().len, input.len(), "{name}");
    }
}

#[test]
fn reader_rejects_filled_past_buffer() {
    let mut buf = [0u8; 4];
    let mut r = ResponseReader::default();
    assert_eq!(r.feed(&mut buf, 5), Err(HttpError::BufferMismatch));
}

#[test]
fn reader_body_is_contiguous_in_the_callers_buffer() {
    let mut buf = TOKEN_CHUNKED.to_vec();
    let mut r = ResponseReader::default();
    let n = buf.len();
    let Status::Complete { value, len } = r.feed(&mut buf, n).unwrap() else {
        panic!()
    };
    assert_eq!(len, n);
    assert_eq!(value.body_range().len(), TOKEN_BODY.len());
    assert_eq!(value.body(&buf), TOKEN_BODY);
    assert!(r.is_complete());
    let head = r.head(&buf).unwrap();
    assert_eq!(
        head.headers.get_str("date"),
        Some("Mon, 30 Nov 2026 01:00:00 GMT")
    );
}

// Regression: the early `HTTP/` check must not look past the line limit either.
res!(
    short_line_limit_before_bad_prefix,
    b"HTx",
    Limits::default().with_max_line_len(2),
    |r| {
        assert_eq!(r, Err(HttpError::LineTooLong));
    }
);
