//! Every managed-identity source, client side: the request bytes, every token and error body
//! form (fixtures under `fixtures/sources/`), the `expires_on` date forms (a property test
//! against chrono), Arc's challenge, and detection (one row per case of the SDK-order table).
//! Built with the core's `sources` feature (its default); `imds_only.rs` covers the build without.

#![cfg(feature = "sources")]

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use mitoken_core::client::{ClientError, Exchange, Outcome, Progress};
use mitoken_core::http::Limits;
use mitoken_core::request::{
    Endpoint, RequestError, RequestField, ResIdParam, Selector, Style, TokenRequest,
};
use mitoken_core::source::{DetectError, Source, detect};
use mitoken_core::token::{JsonError, ServiceError, Token, parse_expires_on};
use proptest::prelude::*;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/sources/",
            $path
        ))
    };
}

const UA: &str = concat!("User-Agent: mitoken/", env!("CARGO_PKG_VERSION"));
const SECRET: &str = "9ea3ac3c-6a3b-4a1b-9c5e-8f1d2e3a4b5c";

fn ep(url: &str, style: Style) -> Endpoint<'_> {
    Endpoint::parse_url_for(url, style).unwrap()
}

fn written(req: &TokenRequest<'_>, endpoint: &Endpoint<'_>) -> String {
    let mut buf = [0u8; 1024];
    let n = req.write(endpoint, &mut buf).unwrap();
    assert_eq!(req.encoded_len(endpoint), Ok(n));
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn app_service_2019_request() {
    let e = ep("http://127.0.0.1:41741/MSI/token/", Style::AppService);
    let r = TokenRequest::new("https://vault.azure.net").with_secret(SECRET);
    assert_eq!(
        written(&r, &e),
        format!(
            "GET /MSI/token/?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\n\
             Host: 127.0.0.1:41741\r\nX-IDENTITY-HEADER: {SECRET}\r\nConnection: close\r\n\
             Accept: application/json\r\n{UA}\r\n\r\n"
        )
    );
    for (sel, q) in [
        (Selector::ClientId("c"), "&client_id=c "),
        (Selector::ObjectId("o"), "&object_id=o "),
        // App Service honours only `mi_res_id`, whatever spelling the caller chose.
        (
            Selector::ResourceId {
                id: "/r",
                param: ResIdParam::MsiResId,
            },
            "&mi_res_id=%2Fr ",
        ),
    ] {
        assert!(written(&r.with_selector(sel), &e).contains(q), "{q}");
    }
    // The secret is mandatory, refused with a control character, and never in Debug.
    assert_eq!(
        TokenRequest::new("r").write(&e, &mut [0; 512]),
        Err(RequestError::MissingSecret {
            source: Source::AppService
        })
    );
    for bad in ["a\r\nX-Evil: 1", "a\nb", "a\u{7f}", "a\0"] {
        assert_eq!(
            TokenRequest::new("r")
                .with_secret(bad)
                .write(&e, &mut [0; 512]),
            Err(RequestError::ControlCharacter {
                field: RequestField::Secret
            })
        );
    }
    assert!(!format!("{r:?}").contains(SECRET));
}

#[test]
fn app_service_2017_and_azure_ml_requests() {
    let e = ep("http://localhost:46809/MSI/token", Style::AppService2017);
    let r = TokenRequest::new("https://vault.azure.net").with_secret(SECRET);
    let text = written(&r.with_selector(Selector::ClientId("cid")), &e);
    assert!(text.starts_with(
        "GET /MSI/token?api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net&clientid=cid HTTP/1.1\r\nHost: localhost:46809\r\n"
    ));
    assert!(text.contains(&format!("\r\nsecret: {SECRET}\r\n")));
    assert!(!text.contains("Metadata"));
    assert!(!written(&r, &e).contains("clientid"));
    assert_eq!(
        r.with_selector(Selector::ObjectId("o"))
            .write(&e, &mut [0; 512]),
        Err(RequestError::SelectorNotSupported {
            source: Source::AppService2017,
            selector: RequestField::ObjectId
        })
    );
    let ml = ep("http://localhost:46809/MSI/token", Style::AzureMl);
    assert_eq!(
        r.write(&ml, &mut [0; 512]),
        Err(RequestError::ClientIdRequired)
    );
    let text = written(&r.with_selector(Selector::ClientId("default-id")), &ml);
    assert!(text.contains(
        "api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net&clientid=default-id "
    ));
    assert!(text.contains("\r\nsecret: "));
}

#[test]
fn arc_requests() {
    let e = ep(
        "http://localhost:40342/metadata/identity/oauth2/token",
        Style::Arc,
    );
    let r = TokenRequest::new("https://management.azure.com");
    let step1 = written(&r, &e);
    assert_eq!(
        step1,
        format!(
            "GET /metadata/identity/oauth2/token?api-version=2020-06-01&resource=https%3A%2F%2Fmanagement.azure.com HTTP/1.1\r\n\
             Host: localhost:40342\r\nMetadata: true\r\nConnection: close\r\nAccept: application/json\r\n{UA}\r\n\r\n"
        )
    );
    let step2 = written(&r.with_secret("0123abcd"), &e);
    assert!(step2.contains("\r\nMetadata: true\r\nAuthorization: Basic 0123abcd\r\n"));
    let res = Selector::ResourceId {
        id: "/x",
        param: ResIdParam::MiResId,
    };
    assert!(written(&r.with_selector(res), &e).contains("&msi_res_id=%2Fx "));
}

#[test]
fn cloud_shell_request() {
    let e = ep("http://localhost:50342/oauth2/token", Style::CloudShell);
    let r = TokenRequest::new("https://management.azure.com/");
    let body = "resource=https%3A%2F%2Fmanagement.azure.com%2F";
    assert_eq!(
        written(&r, &e),
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: localhost:50342\r\nMetadata: true\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\nAccept: application/json\r\n{UA}\r\n\r\n{body}",
            body.len()
        )
    );
    assert_eq!(
        r.with_selector(Selector::ClientId("c"))
            .write(&e, &mut [0; 512]),
        Err(RequestError::SelectorNotSupported {
            source: Source::CloudShell,
            selector: RequestField::ClientId
        })
    );
    assert_eq!(
        r.with_secret("s").write(&e, &mut [0; 512]),
        Err(RequestError::SecretNotUsed)
    );
}

#[test]
fn service_fabric_request() {
    assert_eq!(
        Endpoint::parse_url_for("http://localhost:2377/x", Style::ServiceFabric),
        Err(RequestError::HttpsRequired)
    );
    assert_eq!(
        Endpoint::parse_url_for("https://localhost:2377/x", Style::AppService),
        Err(RequestError::HttpsNotSupported)
    );
    let e = ep(
        "https://localhost:2377/metadata/identity/oauth2/token",
        Style::ServiceFabric,
    );
    let r = TokenRequest::new("https://vault.azure.net").with_secret(SECRET);
    let text = written(&r, &e);
    assert!(text.starts_with(
        "GET /metadata/identity/oauth2/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: localhost:2377\r\n"
    ));
    assert!(text.contains(&format!("\r\nSecret: {SECRET}\r\n")));
    assert_eq!(
        r.with_selector(Selector::ClientId("c"))
            .write(&e, &mut [0; 512]),
        Err(RequestError::SelectorNotSupported {
            source: Source::ServiceFabric,
            selector: RequestField::ClientId
        })
    );
    let default_port = ep("https://sf.local/t", Style::ServiceFabric);
    assert_eq!(default_port.port(), 443);
    assert!(written(&r, &default_port).contains("\r\nHost: sf.local\r\n"));
}

#[test]
fn imds_request_is_unchanged_and_takes_no_secret() {
    let r = TokenRequest::new("https://management.azure.com/");
    assert!(written(&r, &Endpoint::Imds).starts_with(
        "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n"
    ));
    assert_eq!(
        r.with_secret("s").write(&Endpoint::Imds, &mut [0; 512]),
        Err(RequestError::SecretNotUsed)
    );
}

fn token(style: Style, body: &[u8]) -> Token<'_> {
    Token::parse_for(style, body, &mut []).unwrap()
}

#[test]
fn token_bodies_of_every_source() {
    let t = token(Style::AppService, fixture!("app-service/token.json"));
    assert_eq!((t.expires_on, t.expires_in), (Some(1_586_984_735), None));
    assert_eq!(t.client_id, Some("5E29463D-71DA-4FE0-8E69-999999999999"));
    let cases: [(&[u8], u64); 4] = [
        (
            fixture!("app-service-2017/token-windows.json"),
            1_578_643_288,
        ),
        (fixture!("app-service-2017/token-linux.json"), 1_560_999_478),
        (
            fixture!("app-service-2017/token-doc-sample.json"),
            1_505_390_400,
        ),
        (
            fixture!("app-service-2017/token-iso8601.json"),
            1_729_281_097,
        ),
    ];
    for (body, on) in cases {
        assert_eq!(token(Style::AppService2017, body).expires_on, Some(on));
    }
    let t = token(Style::AzureMl, fixture!("azure-ml/token.json"));
    assert_eq!(
        (t.expires_on, t.expires_in),
        (Some(1_697_818_980), Some(85_702))
    );
    let t = token(Style::Arc, fixture!("arc/token.json"));
    assert_eq!(t.resource, "https://management.azure.com");
    let t = token(Style::ServiceFabric, fixture!("service-fabric/token.json"));
    assert_eq!(t.expires_on, Some(1_565_244_611));
    // Cloud Shell alone may omit `resource`.
    let body = fixture!("cloud-shell/token-no-resource.json");
    let t = token(Style::CloudShell, body);
    assert_eq!((t.resource, t.expires_in), ("", Some(3599)));
    for style in [Style::Imds, Style::AppService, Style::Arc, Style::AzureMl] {
        assert_eq!(
            Token::parse_for(style, body, &mut []),
            Err(JsonError::MissingField {
                field: mitoken_core::token::Field::Resource
            })
        );
    }
}

fn service(body: &[u8]) -> ServiceError<'_> {
    ServiceError::parse(500, None, body, &mut []).unwrap()
}

#[test]
fn error_bodies_of_every_source() {
    let e = service(fixture!("app-service/error-500.json"));
    assert_eq!(e.error, "");
    assert_eq!(
        e.description,
        Some("An unexpected error occured while fetching the AAD Token.")
    );
    assert_eq!(
        e.correlation_id,
        Some("7e7e4a3c-3b41-4c2e-9b7a-2d0b6c1e5f10")
    );
    let e = service(fixture!("app-service/error-unsupported-api-version.json"));
    assert_eq!(e.error, "UnsupportedApiVersion");
    assert!(
        e.description
            .unwrap()
            .contains("does not support the API version")
    );
    let e = service(fixture!("app-service-2017/error-503.json"));
    assert_eq!(
        (e.error, e.description, e.correlation_id),
        (
            "service_unavailable",
            None,
            Some("0b6c1e5f-7e7e-4a3c-3b41-4c2e9b7a2d0b")
        )
    );
    let e = service(fixture!("cloud-shell/error-audience.json"));
    assert_eq!(e.error, "AudienceNotSupported");
    let e = service(fixture!("service-fabric/error-invalid-api-version.json"));
    assert_eq!(
        (e.error, e.correlation_id),
        (
            "InvalidApiVersion",
            Some("7f8a6f3e-2b0c-4d5e-9a1b-3c4d5e6f7a8b")
        )
    );
    assert!(e.to_string().contains("correlation id 7f8a6f3e"));
    let e = service(br#"{"error":"invalid_request","error_description":"Identity not found"}"#);
    assert_eq!(
        (e.error, e.description),
        ("invalid_request", Some("Identity not found"))
    );
    let e = service(br#"{"ExceptionMessage":"boom","ErrorCode":"x","Message":""}"#);
    assert_eq!(e.description, Some("boom"));
}

/// Runs one exchange over `answer` and returns the outcome (or error).
fn exchange<'b>(
    req: &TokenRequest<'_>,
    e: &Endpoint<'_>,
    buf: &'b mut [u8],
    answer: &[u8],
) -> Result<Outcome<'b>, ClientError> {
    let mut ex = Exchange::new(req, e, buf, Limits::default())?;
    let n = ex.to_send().len();
    ex.sent(n);
    ex.receive_buf()?[..answer.len()].copy_from_slice(answer);
    assert_eq!(ex.received(answer.len())?, Progress::Complete);
    ex.finish(0)
}

#[test]
fn arc_challenge_outcome() {
    let e = ep(
        "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        Style::Arc,
    );
    let r = TokenRequest::new("https://management.azure.com");
    let answer = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=/var/opt/azcmagent/tokens/abc.key\r\nContent-Length: 0\r\n\r\n";
    let mut buf = [0u8; 2048];
    assert_eq!(
        exchange(&r, &e, &mut buf, answer),
        Ok(Outcome::ArcChallenge {
            key_path: "/var/opt/azcmagent/tokens/abc.key"
        })
    );
    // The authorized request's 401 is the service's refusal, not a new challenge.
    let mut buf = [0u8; 2048];
    assert!(matches!(
        exchange(&r.with_secret("k"), &e, &mut buf, answer),
        Ok(Outcome::Service(ServiceError { status: 401, .. }))
    ));
    let bad = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"/a.key\"\r\nContent-Length: 0\r\n\r\n";
    let mut buf = [0u8; 2048];
    assert_eq!(
        exchange(&r, &e, &mut buf, bad),
        Err(ClientError::Arc(
            mitoken_core::arc::ArcError::MalformedChallenge
        ))
    );
    // Another source's 401 with the same header is just a 401.
    let app = ep("http://127.0.0.1:1/t", Style::AppService);
    let mut buf = [0u8; 2048];
    assert!(matches!(
        exchange(&r.with_secret("s"), &app, &mut buf, answer),
        Ok(Outcome::Service(_))
    ));
}

/// One detection case: the environment, whether the Arc agent is installed, the expected
/// answer and the variables that must be named as deciding.
type Row = (
    &'static [(&'static str, &'static str)],
    bool,
    Result<Source, DetectError>,
    &'static [&'static str],
);

const E: &str = "http://127.0.0.1:1/t";

/// One row per case of the SDK-order table (sources.md §1, protocol.md §4.1).
const DETECTION_ROWS: &[Row] = &[
    (
        &[
            ("IDENTITY_ENDPOINT", E),
            ("IDENTITY_HEADER", "h"),
            ("IDENTITY_SERVER_THUMBPRINT", "ab"),
        ],
        false,
        Ok(Source::ServiceFabric),
        &[
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "IDENTITY_SERVER_THUMBPRINT",
        ],
    ),
    (
        &[("IDENTITY_ENDPOINT", E), ("IDENTITY_HEADER", "h")],
        false,
        Ok(Source::AppService),
        &["IDENTITY_ENDPOINT", "IDENTITY_HEADER"],
    ),
    // App Service wins over Arc and the MSI_* pair (earlier row).
    (
        &[
            ("IDENTITY_ENDPOINT", E),
            ("IDENTITY_HEADER", "h"),
            ("IMDS_ENDPOINT", E),
            ("MSI_ENDPOINT", E),
        ],
        false,
        Ok(Source::AppService),
        &["IDENTITY_ENDPOINT", "IDENTITY_HEADER"],
    ),
    (
        &[("IDENTITY_ENDPOINT", E), ("IMDS_ENDPOINT", E)],
        false,
        Ok(Source::Arc),
        &["IDENTITY_ENDPOINT", "IMDS_ENDPOINT"],
    ),
    // Arc (env) before Azure ML: azure-identity's order (MSAL Python says ML).
    (
        &[
            ("IDENTITY_ENDPOINT", E),
            ("IMDS_ENDPOINT", E),
            ("MSI_ENDPOINT", E),
            ("MSI_SECRET", "s"),
        ],
        false,
        Ok(Source::Arc),
        &["IDENTITY_ENDPOINT", "IMDS_ENDPOINT"],
    ),
    // IDENTITY_ENDPOINT alone: no source, and MSI_ENDPOINT is not looked at.
    (
        &[("IDENTITY_ENDPOINT", E), ("MSI_ENDPOINT", E)],
        false,
        Err(DetectError::IncompleteIdentityEndpoint),
        &[],
    ),
    (
        &[
            ("MSI_ENDPOINT", E),
            ("MSI_SECRET", "s"),
            ("DEFAULT_IDENTITY_CLIENT_ID", "d"),
        ],
        false,
        Ok(Source::AzureMl),
        &["MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID"],
    ),
    (
        &[("MSI_ENDPOINT", E), ("MSI_SECRET", "s")],
        false,
        Ok(Source::AppService2017),
        &["MSI_ENDPOINT", "MSI_SECRET"],
    ),
    (
        &[("MSI_ENDPOINT", E)],
        false,
        Ok(Source::CloudShell),
        &["MSI_ENDPOINT"],
    ),
    // Cloud Shell before the installed Arc agent (MSAL .NET/node order).
    (
        &[("MSI_ENDPOINT", E)],
        true,
        Ok(Source::CloudShell),
        &["MSI_ENDPOINT"],
    ),
    (&[], true, Ok(Source::Arc), &[]),
    (
        &[
            ("AZURE_AUTHORITY_HOST", "https://login"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ],
        false,
        Ok(Source::WorkloadIdentity),
        &[
            "AZURE_AUTHORITY_HOST",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
        ],
    ),
    (
        &[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ],
        false,
        Ok(Source::Imds),
        &[],
    ),
    (&[], false, Ok(Source::Imds), &[]),
    (
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", E)],
        false,
        Ok(Source::Imds),
        &["AZURE_POD_IDENTITY_AUTHORITY_HOST"],
    ),
    // Empty values count as unset.
    (
        &[
            ("IDENTITY_ENDPOINT", ""),
            ("IDENTITY_HEADER", "h"),
            ("MSI_ENDPOINT", E),
            ("MSI_SECRET", ""),
        ],
        false,
        Ok(Source::CloudShell),
        &["MSI_ENDPOINT"],
    ),
    (
        &[
            ("IDENTITY_ENDPOINT", E),
            ("IDENTITY_HEADER", ""),
            ("IMDS_ENDPOINT", ""),
        ],
        false,
        Err(DetectError::IncompleteIdentityEndpoint),
        &[],
    ),
];

#[test]
fn detection_table() {
    for (i, (env, agent, want, vars)) in DETECTION_ROWS.iter().enumerate() {
        let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let got = detect(lookup, *agent);
        assert_eq!(got.map(|d| d.source), *want, "row {i}");
        if let Ok(d) = got {
            assert_eq!(d.deciding_vars().collect::<Vec<_>>(), *vars, "row {i}");
            // No secret in Debug.
            assert!(!format!("{d:?}").contains("\"h\""), "row {i}");
        }
    }
    let d = detect(|_| None, true).unwrap();
    assert_eq!(d.endpoint, Some(mitoken_core::source::ARC_DEFAULT_ENDPOINT));
    assert!(d.by_arc_agent);
}

fn formats(dt: DateTime<FixedOffset>) -> Vec<String> {
    vec![
        dt.format("%-m/%-d/%Y %-I:%M:%S %p %:z").to_string(),
        dt.format("%m/%d/%Y %I:%M:%S %p %:z").to_string(),
        dt.format("%m/%d/%Y %H:%M:%S %:z").to_string(),
        dt.format("%-m/%-d/%Y %-H:%M:%S %:z").to_string(),
        // .NET's "o" format: seven fraction digits (chrono has no %.7f).
        format!(
            "{}.0000000{}",
            dt.format("%Y-%m-%dT%H:%M:%S"),
            dt.format("%:z")
        ),
        dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        dt.with_timezone(&Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
    ]
}

proptest! {
    /// Every form chrono writes for an instant parses back to that instant.
    #[test]
    fn expires_on_round_trips_through_chrono(
        secs in 2 * 86_400i64..253_402_300_799 - 2 * 86_400,
        offset_min in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let tz = FixedOffset::east_opt(offset_min * 60).unwrap();
        let dt = tz.timestamp_opt(secs, 0).unwrap();
        for text in formats(dt) {
            prop_assert_eq!(parse_expires_on(&text), Some(u64::try_from(secs).unwrap()), "{}", text);
        }
        prop_assert_eq!(parse_expires_on(&secs.to_string()), Some(u64::try_from(secs).unwrap()));
    }

    /// Arbitrary text never panics, and whatever parses is a plausible instant.
    #[test]
    fn expires_on_any_text(text in ".{0,48}") {
        if let Some(t) = parse_expires_on(&text) {
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit()) || t <= 253_402_300_799 + 86_400);
        }
    }

    /// chrono's own parser agrees with ours on the 2017 Linux form for any field values
    /// (valid or not). Seconds stop at 59: chrono reads `:60` as a leap second, which no
    /// token service sends and we refuse.
    #[test]
    fn localized_agrees_with_chrono(
        m in 0u32..14, d in 0u32..33, y in 1969i32..2101, h in 0u32..25, mi in 0u32..61, s in 0u32..60,
    ) {
        let text = format!("{m:02}/{d:02}/{y} {h:02}:{mi:02}:{s:02} +00:00");
        let chrono = DateTime::parse_from_str(&text, "%m/%d/%Y %H:%M:%S %:z")
            .ok()
            .and_then(|t| u64::try_from(t.timestamp()).ok());
        prop_assert_eq!(parse_expires_on(&text), chrono, "{}", text);
    }
}

/// The cache key tells sources apart even at one address, and keeps the style through its
/// encoding.
#[test]
fn cache_key_distinguishes_sources() {
    use mitoken_core::cache::{CacheKey, Lookup, TokenCache};
    let body = fixture!("azure-ml/token.json");
    let token = Token::parse(body, &mut []).unwrap();
    let now = 1_697_000_000_000;
    let mut cache: TokenCache<8, 2048, 256> = TokenCache::new();
    let at = |style| Endpoint::parse_url_for("http://127.0.0.1:8080/t", style).unwrap();
    let resource = "https://management.core.windows.net/";
    cache
        .insert(
            &CacheKey::new(at(Style::AzureMl), None, resource),
            &token,
            now,
        )
        .unwrap();
    for style in Style::ALL {
        if style == Style::ServiceFabric {
            continue; // https only
        }
        let key = CacheKey::new(at(style), None, resource);
        let found = matches!(cache.get(&key, now), Lookup::Fresh(_) | Lookup::Stale(_));
        assert_eq!(found, style == Style::AzureMl, "{style:?}");
    }
    let Lookup::Fresh(t) = cache.get(&CacheKey::new(at(Style::AzureMl), None, resource), now)
    else {
        panic!("the Azure ML token is cached");
    };
    assert_eq!(t.key.endpoint.style(), Style::AzureMl);
}

/// An Arc challenge the shell did not answer is a 401 to the engine: one attempt, no retry.
#[test]
fn unanswered_arc_challenge_is_one_unretried_attempt() {
    use mitoken_core::cache::CacheKey;
    use mitoken_core::engine::{Answer, Ask, Cause, Engine, EngineConfig, Reply};
    let e = ep(
        "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        Style::Arc,
    );
    let key = CacheKey::new(e, None, "https://management.azure.com");
    let mut engine: Engine<4, 2048, 256, 4, 8> = Engine::new(EngineConfig::DEFAULT, 1);
    let now = 1_800_000_000_000;
    let Ok(Ask::Wait(ticket)) = engine.request(&key, now, now + 30_000, false) else {
        panic!("expected to wait");
    };
    let t = engine.poll_transmit(now).unwrap();
    let flight = t.flight;
    let req = t.request("unused");
    let answer = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=/var/opt/azcmagent/tokens/a.key\r\nContent-Length: 0\r\n\r\n";
    let mut buf = [0u8; 2048];
    let outcome = exchange(&req, &e, &mut buf, answer).unwrap();
    assert!(matches!(outcome, Outcome::ArcChallenge { .. }));
    engine
        .handle_reply(flight, now + 1, Reply::from(outcome))
        .unwrap();
    let wake = engine.poll_wake(now + 1).expect("answered at once");
    assert_eq!(wake.ticket, ticket);
    let Answer::Failed(f) = wake.answer else {
        panic!("expected a failure");
    };
    assert!(matches!(
        f.cause,
        Cause::Service(ServiceError { status: 401, .. })
    ));
    assert_eq!(f.attempts, 1);
}
