//! The server answering with values: `receive` → the shell's `Verdict` → `answer` → for a
//! token request an `Issue`, written with the shell's token. Buffers too small are grown and
//! the same write repeated; the shell's decisions are made once per request.

mod server_common;

use mitoken_core::identity::{Flavor, Slot};
use mitoken_core::server::{
    Answer, Config, Fault, HandleError, IssueError, Minted, Outcome, Received, Response, Server,
    ServerConnection, Verdict,
};
use server_common::{NOW, SAMI_CLIENT, SAMI_UA2, TENANT, UA_CLIENT, table};

const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.e30.c2lnbmF0dXJl";

/// What the scripted shell decides, and how often it was asked.
#[derive(Default)]
struct Shell {
    verdicts: usize,
    tokens: usize,
}

/// Runs one request through the value API with an output buffer starting at `start` bytes
/// (the work buffer at the 16 KiB the defaults always need), growing them as the core asks;
/// returns the answer text and its response.
fn exchange(
    shell: &mut Shell,
    request: &[u8],
    start: usize,
    verdict_for: impl Fn(&str) -> Verdict<'static>,
    mint: impl Fn(&str) -> Result<Minted<'static>, IssueError<'static>>,
) -> (String, Response<'static>) {
    let table: &'static _ = Box::leak(Box::new(table(Flavor::Imds, SAMI_UA2)));
    let config = Config::new(Flavor::Imds).with_tenant_id(TENANT);
    let server = Server::new(table, config, &mut []);
    let mut conn = ServerConnection::new(config.limits);
    let mut input = request.to_vec();
    let (mut work, mut out) = (vec![0u8; 16 * 1024], vec![0u8; start]);
    let grow = |e: HandleError, out: &mut Vec<u8>, work: &mut Vec<u8>| match e {
        HandleError::OutputTooSmall { required } => out.resize(required, 0),
        HandleError::WorkTooSmall { required } => work.resize(required, 0),
        _ => panic!("{e}"),
    };
    let received = loop {
        match server.receive(&mut conn, &mut input, &mut out) {
            Ok(r) => break r,
            Err(e) => grow(e, &mut out, &mut work),
        }
    };
    let request = match received {
        Received::Request(request) => request,
        Received::Response(r) => {
            return (String::from_utf8_lossy(&out[..r.len]).into_owned(), r);
        }
        Received::Partial => panic!("a complete request"),
    };
    shell.verdicts += 1;
    let verdict = verdict_for(request.path());
    // Growing a buffer repeats the same pure call; the token is asked for once.
    let mut attempt = server.answer(&request, &verdict, NOW, &mut work, &mut out);
    let response = loop {
        match attempt {
            Ok(Answer::Response(r)) => break r,
            Ok(Answer::Issue(mut issue)) => {
                assert_eq!(issue.consumed(), request.consumed());
                shell.tokens += 1;
                let minted = mint(issue.request.resource);
                break loop {
                    let written = match &minted {
                        Ok(m) => issue.write_token(m, &mut out),
                        Err(e) => issue.write_error(e, &mut out),
                    };
                    match written {
                        Ok(r) => break r,
                        Err(HandleError::OutputTooSmall { required }) => out.resize(required, 0),
                        Err(e) => panic!("{e}"),
                    }
                };
            }
            Err(e) => {
                grow(e, &mut out, &mut work);
                attempt = server.answer(&request, &verdict, NOW, &mut work, &mut out);
            }
        }
    };
    (
        String::from_utf8_lossy(&out[..response.len]).into_owned(),
        response,
    )
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nMetadata: true\r\n\r\n").into_bytes()
}

const TOKEN_PATH: &str = "/metadata/identity/oauth2/token?api-version=2018-02-01";

#[allow(
    clippy::unnecessary_wraps,
    reason = "the shape of every scripted issuer, some of which fail"
)]
fn minted(_resource: &str) -> Result<Minted<'static>, IssueError<'static>> {
    Ok(Minted {
        token: TOKEN,
        not_before: NOW - 300,
        expires_on: NOW + 3600,
    })
}

#[test]
fn a_token_request_is_an_issue_and_the_token_is_written_once_decided() {
    for start in [8, 64, 16 * 1024] {
        let mut shell = Shell::default();
        let target = format!(
            "{TOKEN_PATH}&resource=https%3A%2F%2Fvault.azure.net&client_id={}",
            UA_CLIENT[1]
        );
        let (text, r) = exchange(
            &mut shell,
            &get(&target),
            start,
            |_| Verdict::Proceed,
            minted,
        );
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains(&format!("\"access_token\":\"{TOKEN}\"")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\"client_id\":\"{}\"", UA_CLIENT[1])),
            "{text}"
        );
        assert!(
            text.contains("\"resource\":\"https://vault.azure.net\""),
            "{text}"
        );
        assert!(text.contains("\"expires_in\":\"3600\""), "{text}");
        let Outcome::Token { resolved, .. } = r.outcome else {
            panic!("{:?}", r.outcome);
        };
        assert_eq!(resolved.slot, Slot::UserAssigned(1));
        assert!(r.keep_alive);
        // However small the buffers started, the shell was asked once for each decision.
        assert_eq!((shell.verdicts, shell.tokens), (1, 1), "start {start}");
    }
}

#[test]
fn the_shells_fault_and_json_answer_without_validation() {
    let mut shell = Shell::default();
    let throttled = |_: &str| {
        Verdict::Fault(Fault {
            status: 429,
            error: "too_many_requests",
            description: Some("slow down"),
            retry_after: Some(7),
        })
    };
    // No `resource`: a fault verdict answers before validation.
    let (text, r) = exchange(&mut shell, &get(TOKEN_PATH), 8, throttled, minted);
    assert!(text.starts_with("HTTP/1.1 429 "), "{text}");
    assert!(text.contains("Retry-After: 7\r\n"), "{text}");
    assert!(matches!(r.outcome, Outcome::Fault { resolved: None }));
    assert_eq!(shell.tokens, 0);

    let jwks = |path: &str| {
        assert_eq!(path, "/.well-known/jwks.json");
        Verdict::Json {
            status: 200,
            body: br#"{"keys":[]}"#,
        }
    };
    let (text, r) = exchange(&mut shell, &get("/.well-known/jwks.json"), 8, jwks, minted);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n{\"keys\":[]}"), "{text}");
    assert_eq!(r.outcome, Outcome::Other);

    // Passed on, a path the server does not own is IMDS's 404.
    let (text, _) = exchange(&mut shell, &get("/nope"), 64, |_| Verdict::Proceed, minted);
    assert!(text.starts_with("HTTP/1.1 404 "), "{text}");
}

#[test]
fn issue_errors_are_written_by_the_core() {
    let mut shell = Shell::default();
    let target = format!("{TOKEN_PATH}&resource=https%3A%2F%2Fnobody.example");
    let unknown = |_: &str| Err(IssueError::UnknownResource);
    let (text, r) = exchange(&mut shell, &get(&target), 16, |_| Verdict::Proceed, unknown);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.contains("invalid_resource"), "{text}");
    assert!(text.contains("https://nobody.example"), "{text}");
    let Outcome::Rejected { resolved, .. } = r.outcome else {
        panic!("{:?}", r.outcome);
    };
    assert_eq!(resolved.map(|r| r.identity.client_id), Some(SAMI_CLIENT));

    let close = |_: &str| Err(IssueError::Close);
    let (text, r) = exchange(&mut shell, &get(&target), 16, |_| Verdict::Proceed, close);
    assert_eq!((text.as_str(), r.len, r.keep_alive), ("", 0, false));
    assert!(matches!(r.outcome, Outcome::Closed { .. }));
}

#[test]
fn malformed_bytes_are_answered_at_receive() {
    let mut shell = Shell::default();
    let (text, r) = exchange(
        &mut shell,
        b"GET /x HTTP/1.1\r\nBad header\r\n\r\n",
        16,
        |_| Verdict::Proceed,
        minted,
    );
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(!r.keep_alive);
    assert_eq!(
        shell.verdicts, 0,
        "nothing to decide for bytes that are not a request"
    );
}
