//! The server imitating the other managed-identity sources (App Service 2019 and 2017, Azure
//! ML, Cloud Shell, Arc) on raw bytes (`Server::handle`), pipelined: the per-source checks of
//! `core/src/server/sources.rs` (secret headers, Arc's `Authorization`, api-versions, selector
//! names, Cloud Shell's form and allowlist) and their body writers.
//!
//! Input: a split byte (its low 3 bits pick the source), then the bytes a client sends.
//! Properties, as for the `server` target:
//! - nothing panics and, with ample buffers, `handle` never reports a buffer error;
//! - the answers are the same whether the bytes arrive whole or in the split byte's reads;
//! - `consumed` never exceeds the input; a closed connection ends the sequence;
//! - every answer is one complete HTTP response with the reported status and a JSON object body;
//! - a token is issued only to a request that carried the source's secret (App Service, 2017,
//!   Azure ML) or key (Arc), and only for identities in the table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::http::{Limits, ResponseParser, ResponseReader, Status};
use mitoken_core::identity::Flavor;
use mitoken_core::server::{Config, Handled, Outcome, Server};
use mitoken_core::source::Source;
use mitoken_fuzz::{FuzzIssuer, IssueMode, NOW, TENANT, cuts, split_byte, table};

/// The secret (App Service, 2017, Azure ML) and Arc key the server is configured with.
const SECRET: &str = "fuzz-secret";

const SOURCES: [Source; 5] = [
    Source::AppService,
    Source::AppService2017,
    Source::AzureMl,
    Source::CloudShell,
    Source::Arc,
];

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    bytes: Vec<u8>,
    status: u16,
    keep_alive: bool,
    consumed: Option<usize>,
}

fn serve(source: Source, wire: &[u8], cuts: &[usize]) -> Vec<Answer> {
    let t = table(Flavor::Imds, true, 2);
    let mut work = vec![0u8; 16 * 1024];
    let config = Config::for_source(source)
        .with_secret(SECRET.as_bytes())
        .with_realm("/var/opt/azcmagent/tokens/fuzz.key")
        .with_correlation_id("00000000-0000-4000-8000-000000000000")
        .with_tenant_id(TENANT)
        .with_limits(
        Limits::DEFAULT
            .with_max_line_len(1024)
            .with_max_headers(16)
            .with_max_body(1024),
    );
    let mut server = Server::new(&t, config, &mut work);
    let mut conn = server.connection();
    let mut issuer = FuzzIssuer::new(IssueMode::Ok);
    let mut out = vec![0u8; 16 * 1024];
    let mut input: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut answers = Vec::new();
    for &cut in cuts {
        input.extend_from_slice(&wire[fed..cut]);
        fed = cut;
        loop {
            let handled = server
                .handle(&mut conn, &mut input, NOW, &mut issuer, &mut out)
                .expect("ample buffers");
            let Handled::Response(r) = handled else {
                break;
            };
            assert!(
                r.consumed <= input.len(),
                "consumed {} of {}",
                r.consumed,
                input.len()
            );
            assert!(r.len <= out.len());
            if let Outcome::Token { resolved, .. } | Outcome::Closed { resolved } = r.outcome {
                assert_eq!(t.get(resolved.slot), Some(resolved.identity));
                if source != Source::CloudShell {
                    let carried = input
                        .windows(SECRET.len())
                        .any(|w| w == SECRET.as_bytes());
                    assert!(carried, "a token without the secret");
                }
            }
            // The parser skips one empty line before a request line (RFC 9112 §2.2).
            let head_only = input
                .strip_prefix(b"\r\n")
                .unwrap_or(&input)
                .starts_with(b"HEAD ");
            check_answer(&out[..r.len], r.status, head_only);
            answers.push(Answer {
                bytes: out[..r.len].to_vec(),
                status: r.status,
                keep_alive: r.keep_alive,
                // A malformed request is answered with what has arrived so far and closed.
                consumed: r.keep_alive.then_some(r.consumed),
            });
            if !r.keep_alive {
                return answers;
            }
            input.drain(..r.consumed);
        }
    }
    answers
}

fn check_answer(bytes: &[u8], status: u16, head_only: bool) {
    if status == 0 {
        assert!(bytes.is_empty());
        return;
    }
    let mut p = ResponseParser::default();
    let Ok(Status::Complete {
        value: head,
        len: head_len,
    }) = p.parse(bytes)
    else {
        panic!(
            "answer has no complete head: {:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    assert_eq!(head.status, status);
    // A well-formed HEAD request is answered with the head alone (a malformed one, whose
    // method the server cannot trust, with a whole response).
    if head_only && head_len == bytes.len() {
        return;
    }
    let mut buf = bytes.to_vec();
    let mut reader = ResponseReader::default();
    let Ok(Status::Complete { value, len }) = reader.feed(&mut buf, bytes.len()) else {
        panic!(
            "answer is not a complete response: {:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    assert_eq!((value.status, len), (status, bytes.len()));
    let body: serde_json::Value = serde_json::from_slice(value.body(&buf)).expect("a JSON body");
    assert!(body.is_object());
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, wire)) = split_byte(data) else {
        return;
    };
    let source = SOURCES[usize::from(seed & 0x07) % SOURCES.len()];
    let whole = serve(source, wire, &[wire.len()]);
    let split = serve(source, wire, &cuts(seed, wire.len()));
    assert_eq!(whole, split, "whole vs split answers differ");
});
