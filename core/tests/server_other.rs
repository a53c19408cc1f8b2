//! `Issuer::serve_other`: a shell answering its own paths (a JWKS, an admin API) through the
//! core's parser and writer, on the same keep-alive connection as token requests.

mod server_common;

use mitoken_core::identity::{Flavor, IdentityTable};
use mitoken_core::server::{
    Admission, Config, Fault, HandleError, Handled, IssueError, IssueRequest, Issued, Issuer,
    OtherAnswer, OtherRequest, Outcome, Server, serves_path,
};
use server_common::{Mode, NOW, SAMI_UA2, TENANT, TestIssuer, parse_response, table};

/// Serves `/jwks` (GET) and `/admin` (echoes the POST body), passes everything else on, and
/// admits nothing but the core's own paths with a 410 when `gone` is set.
struct Shell {
    inner: TestIssuer,
    gone: bool,
    seen: Vec<(String, String, Vec<u8>, Vec<u8>)>,
    admitted: Vec<String>,
}

impl Shell {
    fn new(gone: bool) -> Self {
        Shell {
            inner: TestIssuer::new(Mode::Ok),
            gone,
            seen: Vec::new(),
            admitted: Vec::new(),
        }
    }
}

impl Issuer for Shell {
    fn issue(
        &mut self,
        request: &IssueRequest<'_, '_>,
        out: &mut [u8],
    ) -> Result<Issued, IssueError<'_>> {
        self.inner.issue(request, out)
    }

    fn admit(&mut self, request: &Admission<'_>) -> Option<Fault<'_>> {
        self.admitted.push(request.path.to_string());
        self.gone.then_some(Fault {
            status: 410,
            error: "gone",
            description: None,
            retry_after: None,
        })
    }

    fn serve_other(&mut self, request: &OtherRequest<'_>, out: &mut [u8]) -> OtherAnswer {
        self.seen.push((
            request.method.to_string(),
            request.path.to_string(),
            request.query.to_vec(),
            request.body.to_vec(),
        ));
        let body: Vec<u8> = match request.path {
            "/jwks" => br#"{"keys":[]}"#.to_vec(),
            "/admin" => request.body.to_vec(),
            "/big" => vec![b' '; 20_000],
            _ => return OtherAnswer::Pass,
        };
        let Some(dst) = out.get_mut(..body.len()) else {
            return OtherAnswer::TooSmall {
                required: body.len(),
            };
        };
        dst.copy_from_slice(&body);
        OtherAnswer::Json {
            status: if request.path == "/admin" { 201 } else { 200 },
            body_len: body.len(),
        }
    }
}

/// Status, headers, body, bytes consumed, outcome.
type Served = (u16, Vec<(String, String)>, Vec<u8>, usize, Outcome<'static>);

fn serve(
    flavor: Flavor,
    shell: &mut Shell,
    request: &[u8],
    out_len: usize,
) -> Result<Served, HandleError> {
    let table: &'static IdentityTable<&'static str, 8> =
        Box::leak(Box::new(table(flavor, SAMI_UA2)));
    let mut work = vec![0u8; 16 * 1024];
    let mut server = Server::new(table, Config::new(flavor).with_tenant_id(TENANT), &mut work);
    let mut conn = server.connection();
    let mut input = request.to_vec();
    let mut out = vec![0u8; out_len];
    match server.handle(&mut conn, &mut input, NOW, shell, &mut out)? {
        Handled::Partial => panic!("incomplete"),
        Handled::Response(r) => {
            let (status, headers, body) = parse_response(&out[..r.len]);
            assert_eq!(status, r.status);
            Ok((status, headers, body, r.consumed, r.outcome))
        }
    }
}

#[test]
fn shell_paths_are_answered_without_metadata_or_admission() {
    let mut shell = Shell::new(true);
    let req = b"GET /jwks?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    let (status, headers, body, consumed, outcome) =
        serve(Flavor::Imds, &mut shell, req, 4096).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, br#"{"keys":[]}"#);
    assert_eq!(consumed, req.len());
    assert_eq!(outcome, Outcome::Other);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "Content-Type" && v.starts_with("application/json"))
    );
    assert_eq!(shell.seen[0].2, b"x=1");
    // `admit` (faults, throttling) never saw the shell's path.
    assert!(shell.admitted.is_empty());
}

#[test]
fn post_body_reaches_the_shell_on_both_flavors() {
    for flavor in [Flavor::Imds, Flavor::Extension] {
        let mut shell = Shell::new(false);
        let req = b"POST /admin HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n{\"a\":true}\n";
        let (status, _, body, _, _) = serve(flavor, &mut shell, req, 4096).unwrap();
        assert_eq!(status, 201);
        assert_eq!(body, b"{\"a\":true}\n");
        assert_eq!(shell.seen[0].0, "POST");
    }
}

#[test]
fn passed_paths_get_the_flavor_answer_and_core_paths_never_reach_the_shell() {
    let mut shell = Shell::new(false);
    let req = b"GET /nope HTTP/1.1\r\nHost: h\r\nMetadata: true\r\n\r\n";
    let (status, _, body, _, _) = serve(Flavor::Imds, &mut shell, req, 4096).unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (404, &br#"{"error":"Not found"}"#[..])
    );
    assert_eq!(shell.admitted, ["/nope"]);
    let (status, _, _, _, _) = serve(Flavor::Extension, &mut shell, req, 4096).unwrap();
    assert_eq!(status, 401);

    let mut shell = Shell::new(false);
    let req = b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=r HTTP/1.1\r\nMetadata: true\r\n\r\n";
    let (status, _, _, _, outcome) = serve(Flavor::Imds, &mut shell, req, 8192).unwrap();
    assert_eq!(status, 200);
    assert!(matches!(outcome, Outcome::Token { .. }));
    assert!(shell.seen.is_empty());
    assert!(serves_path(Flavor::Imds, "/metadata/identity/info"));
    assert!(!serves_path(
        Flavor::Extension,
        "/metadata/identity/oauth2/token"
    ));
    assert!(serves_path(Flavor::Extension, "/oauth2/token"));
}

#[test]
fn large_shell_bodies_ask_for_a_larger_output_buffer() {
    let mut shell = Shell::new(false);
    let req = b"GET /big HTTP/1.1\r\n\r\n";
    let err = serve(Flavor::Imds, &mut shell, req, 4096).unwrap_err();
    let HandleError::OutputTooSmall { required } = err else {
        panic!("{err:?}");
    };
    assert!(required >= 20_000);
    let (status, _, body, _, _) = serve(Flavor::Imds, &mut shell, req, required).unwrap();
    assert_eq!((status, body.len()), (200, 20_000));
    // HEAD: the head says how long the body is, but the body is not sent.
    let req = b"HEAD /jwks HTTP/1.1\r\n\r\n";
    let table: &'static IdentityTable<&'static str, 8> =
        Box::leak(Box::new(table(Flavor::Imds, SAMI_UA2)));
    let mut work = vec![0u8; 16 * 1024];
    let mut server = Server::new(table, Config::new(Flavor::Imds), &mut work);
    let mut conn = server.connection();
    let mut out = vec![0u8; 4096];
    let Handled::Response(r) = server
        .handle(&mut conn, &mut req.to_vec(), NOW, &mut shell, &mut out)
        .unwrap()
    else {
        panic!("incomplete");
    };
    let head = String::from_utf8_lossy(&out[..r.len]);
    assert!(head.contains("Content-Length: 11\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
}
