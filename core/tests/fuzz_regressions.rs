//! Inputs the fuzz targets (`fuzz/`, run with `cargo xtask fuzz`) found, minimised, one test
//! each. Each names its target and the property that failed.

use mitoken_core::token::{Field, JsonError, Token};

/// `token` target, property "`access_token` holds no control character" (it goes into an
/// `Authorization` header): a raw DEL (0x7F) is valid JSON, and only escaped tokens were checked
/// for controls, so `"a\x7fb"` was accepted while `"a\u007fb"` was refused.
#[test]
fn token_raw_del_in_access_token() {
    let body = b"{\"access_token\":\"a\x7fb\",\"expires_on\":\"1\",\"resource\":\"r\",\"token_type\":\"Bearer\"}";
    assert_eq!(
        Token::parse(body, &mut []),
        Err(JsonError::ControlInHeaderValue {
            field: Field::AccessToken
        })
    );
    // The shape the fuzzer found: the real IMDS token body with one byte of the JWT turned DEL.
    let fixture = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/imds-token-body.json"
    ));
    let mut body = fixture.as_bytes().to_vec();
    let at = fixture.find("eyJ").expect("a JWT") + 100;
    body[at] = 0x7F;
    assert_eq!(
        Token::parse(&body, &mut [0u8; 64]),
        Err(JsonError::ControlInHeaderValue {
            field: Field::AccessToken
        })
    );
    // Elsewhere a raw DEL is just text.
    let body = b"{\"access_token\":\"ab\",\"expires_on\":\"1\",\"resource\":\"r\x7f\",\"token_type\":\"Bearer\"}";
    assert_eq!(Token::parse(body, &mut []).unwrap().resource, "r\x7f");
}

#[path = "server_common/mod.rs"]
mod server_common;

/// `server` target (long run), property "every answer is one complete response (a `HEAD`
/// answer may be the head alone)": after a kept-alive request, `\r\nHEAD …` is a HEAD request
/// (one empty line before a request line is ignored, RFC 9112 §2.2), and its answer is rightly
/// the head alone — the harness had looked for `HEAD ` at the very start of the bytes. This
/// pins the server's side: the empty line is skipped, the method honoured, no body written.
#[test]
fn server_head_after_an_empty_line_is_answered_with_the_head_alone() {
    use mitoken_core::http::{ResponseParser, Status};
    use mitoken_core::identity::Flavor;
    use mitoken_core::server::{Config, Handled, Server};
    use server_common::{Mode, NOW, SAMI, TestIssuer, table};

    let t = table(Flavor::Imds, SAMI);
    let mut work = [0u8; 4096];
    let mut server = Server::new(&t, Config::new(Flavor::Imds), &mut work);
    let mut conn = server.connection();
    let mut issuer = TestIssuer::new(Mode::Ok);
    let mut out = [0u8; 4096];
    let mut input =
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let mut answers = Vec::new();
    while let Ok(Handled::Response(r)) =
        server.handle(&mut conn, &mut input, NOW, &mut issuer, &mut out)
    {
        answers.push(out[..r.len].to_vec());
        input.drain(..r.consumed);
        if !r.keep_alive || input.is_empty() {
            break;
        }
    }
    assert_eq!(answers.len(), 2, "two answers");
    let (get, head) = (&answers[0], &answers[1]);
    let mut p = ResponseParser::default();
    let Ok(Status::Complete { len, .. }) = p.parse(get) else {
        panic!("GET answer: {:?}", String::from_utf8_lossy(get))
    };
    assert!(len < get.len(), "GET gets a body");
    let mut p = ResponseParser::default();
    let Ok(Status::Complete { value, len }) = p.parse(head) else {
        panic!("HEAD answer: {:?}", String::from_utf8_lossy(head))
    };
    assert_eq!(value.status, 404);
    assert_eq!(len, head.len(), "HEAD gets the head alone");
    assert!(value.headers.get("content-length").is_some());
}
