//! Token request bytes: every endpoint style × every selector, encoding, validation, sizes.

use mitoken_core::request::{
    Connection, DEFAULT_API_VERSION, Endpoint, RequestError, RequestField, ResIdParam, Selector,
    Style, TokenRequest, USER_AGENT,
};

/// The fixed tail of every request head after the `Host` value, with `Connection: close`.
macro_rules! head {
    ($target:literal, $host:literal) => {
        concat!(
            "GET ",
            $target,
            " HTTP/1.1\r\nHost: ",
            $host,
            "\r\nMetadata: true\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: mitoken/",
            env!("CARGO_PKG_VERSION"),
            "\r\n\r\n"
        )
    };
}

const ARM: &str = "https://management.azure.com/";
const CLIENT: &str = "b9c48cb0-1720-400e-8ca8-2984fcb042d9";
const OBJECT: &str = "5966eb44-e0c6-4744-9511-3dc30e9a8df5";
const RES_ID: &str = "/subscriptions/a83c546d-bc4d-43dc-96c9-3f01a9f18630/resourcegroups/rg-imds-bench/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-imds-bench";

const CUSTOM: Endpoint<'static> = Endpoint::Custom {
    host: "127.0.0.1",
    port: 8080,
    path: "/metadata/identity/oauth2/token",
    style: Style::Imds,
};
const CUSTOM_EXT: Endpoint<'static> = Endpoint::Custom {
    host: "bridge.local",
    port: 80,
    path: "/oauth2/token",
    style: Style::Extension,
};

fn selectors() -> [Option<Selector<'static>>; 5] {
    [
        None,
        Some(Selector::ClientId(CLIENT)),
        Some(Selector::ObjectId(OBJECT)),
        Some(Selector::ResourceId {
            id: RES_ID,
            param: ResIdParam::MsiResId,
        }),
        Some(Selector::ResourceId {
            id: RES_ID,
            param: ResIdParam::MiResId,
        }),
    ]
}

/// Expected bytes for (endpoint, selector index).
fn expected(ep: usize, sel: usize) -> &'static str {
    const TABLE: [[&str; 5]; 4] = [
        [
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "169.254.169.254"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=b9c48cb0-1720-400e-8ca8-2984fcb042d9",
                "169.254.169.254"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&object_id=5966eb44-e0c6-4744-9511-3dc30e9a8df5",
                "169.254.169.254"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&msi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "169.254.169.254"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&mi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "169.254.169.254"
            ),
        ],
        [
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "localhost:50342"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=b9c48cb0-1720-400e-8ca8-2984fcb042d9",
                "localhost:50342"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&object_id=5966eb44-e0c6-4744-9511-3dc30e9a8df5",
                "localhost:50342"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&msi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "localhost:50342"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&mi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "localhost:50342"
            ),
        ],
        [
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "127.0.0.1:8080"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=b9c48cb0-1720-400e-8ca8-2984fcb042d9",
                "127.0.0.1:8080"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&object_id=5966eb44-e0c6-4744-9511-3dc30e9a8df5",
                "127.0.0.1:8080"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&msi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "127.0.0.1:8080"
            ),
            head!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&mi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "127.0.0.1:8080"
            ),
        ],
        [
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F",
                "bridge.local"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=b9c48cb0-1720-400e-8ca8-2984fcb042d9",
                "bridge.local"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&object_id=5966eb44-e0c6-4744-9511-3dc30e9a8df5",
                "bridge.local"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&msi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "bridge.local"
            ),
            head!(
                "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F&mi_res_id=%2Fsubscriptions%2Fa83c546d-bc4d-43dc-96c9-3f01a9f18630%2Fresourcegroups%2Frg-imds-bench%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid-imds-bench",
                "bridge.local"
            ),
        ],
    ];
    TABLE[ep][sel]
}

const ENDPOINTS: [Endpoint<'static>; 4] = [Endpoint::Imds, Endpoint::Extension, CUSTOM, CUSTOM_EXT];

fn request(sel: Option<Selector<'static>>) -> TokenRequest<'static> {
    let req = TokenRequest::new(ARM);
    match sel {
        Some(s) => req.with_selector(s),
        None => req,
    }
}

fn write_vec(req: &TokenRequest<'_>, ep: &Endpoint<'_>) -> Result<Vec<u8>, RequestError> {
    let mut buf = vec![0u8; 4096];
    let n = req.write(ep, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn user_agent_is_mitoken_version() {
    assert_eq!(USER_AGENT, concat!("mitoken/", env!("CARGO_PKG_VERSION")));
    assert!(USER_AGENT.starts_with("mitoken/0."));
}

#[test]
fn imds_default_literal_bytes() {
    // Spelled out in full once, independent of the `head!` macro.
    let got = write_vec(&TokenRequest::new(ARM), &Endpoint::Imds).unwrap();
    let want = format!(
        "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\n\
         Host: 169.254.169.254\r\n\
         Metadata: true\r\n\
         Connection: close\r\n\
         Accept: application/json\r\n\
         User-Agent: mitoken/{}\r\n\
         \r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(String::from_utf8(got).unwrap(), want);
}

#[test]
fn every_endpoint_and_selector() {
    for (e, ep) in ENDPOINTS.iter().enumerate() {
        for (s, sel) in selectors().into_iter().enumerate() {
            let got = write_vec(&request(sel), ep).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                expected(e, s),
                "endpoint {ep:?}, selector {sel:?}"
            );
        }
    }
}

#[test]
fn buffer_too_small_reports_exact_size_at_every_length() {
    for ep in &ENDPOINTS {
        for sel in selectors() {
            let req = request(sel).with_bypass_cache(true);
            let full = write_vec(&req, ep).unwrap();
            let n = full.len();
            assert_eq!(req.encoded_len(ep), Ok(n));
            for size in 0..n {
                let mut buf = vec![0u8; size];
                assert_eq!(
                    req.write(ep, &mut buf),
                    Err(RequestError::BufferTooSmall { required: n }),
                    "size {size}"
                );
            }
            let mut exact = vec![0u8; n];
            assert_eq!(req.write(ep, &mut exact), Ok(n));
            assert_eq!(exact, full);
        }
    }
}

#[test]
fn encoding_of_tricky_values() {
    let cases: &[(&str, &str)] = &[
        (ARM, "https%3A%2F%2Fmanagement.azure.com%2F"),
        ("https://vault.azure.net", "https%3A%2F%2Fvault.azure.net"),
        ("api://my app/x y", "api%3A%2F%2Fmy%20app%2Fx%20y"),
        ("https://例え.jp/", "https%3A%2F%2F%E4%BE%8B%E3%81%88.jp%2F"),
        ("é😀", "%C3%A9%F0%9F%98%80"),
        ("a+b&c=d?e#f%g", "a%2Bb%26c%3Dd%3Fe%23f%25g"),
        ("AZaz09-._~", "AZaz09-._~"),
        (
            "\"<>'`{}|^[]!$()*,;@",
            "%22%3C%3E%27%60%7B%7D%7C%5E%5B%5D%21%24%28%29%2A%2C%3B%40",
        ),
    ];
    for &(value, enc) in cases {
        let got = write_vec(&TokenRequest::new(value), &Endpoint::Extension).unwrap();
        let want = format!("GET /oauth2/token?resource={enc} HTTP/1.1\r\n");
        assert!(
            got.starts_with(want.as_bytes()),
            "{value:?}: {}",
            String::from_utf8_lossy(&got)
        );
        // Same encoding for selector values and the api-version.
        let req = TokenRequest::new("r")
            .with_selector(Selector::ClientId(value))
            .with_api_version(value);
        let got = write_vec(&req, &Endpoint::Imds).unwrap();
        let want = format!(
            "GET /metadata/identity/oauth2/token?api-version={enc}&resource=r&client_id={enc} HTTP/1.1\r\n"
        );
        assert!(got.starts_with(want.as_bytes()), "{value:?}");
    }
}

#[test]
fn options_api_version_bypass_cache_keep_alive() {
    let req = TokenRequest::new("https://storage.azure.com/")
        .with_api_version("2023-07-01")
        .with_bypass_cache(true)
        .with_connection(Connection::KeepAlive)
        .with_selector(Selector::ObjectId(OBJECT));
    let got = String::from_utf8(write_vec(&req, &Endpoint::Imds).unwrap()).unwrap();
    assert_eq!(
        got,
        format!(
            "GET /metadata/identity/oauth2/token?api-version=2023-07-01&resource=https%3A%2F%2Fstorage.azure.com%2F&object_id={OBJECT}&bypass_cache=true HTTP/1.1\r\n\
             Host: 169.254.169.254\r\nMetadata: true\r\nConnection: keep-alive\r\nAccept: application/json\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
        )
    );
    // The extension style sends no api-version, but bypass_cache when asked for (the emulator
    // and the bridge honour it there too).
    let got = String::from_utf8(write_vec(&req, &Endpoint::Extension).unwrap()).unwrap();
    assert!(got.starts_with(&format!(
        "GET /oauth2/token?resource=https%3A%2F%2Fstorage.azure.com%2F&object_id={OBJECT}&bypass_cache=true HTTP/1.1\r\n"
    )));
    assert_eq!(TokenRequest::new("x").api_version, DEFAULT_API_VERSION);
}

const BAD_CHARS: [char; 8] = ['\r', '\n', '\0', '\t', '\x0b', '\x1b', '\x1f', '\x7f'];

#[test]
fn control_characters_rejected_in_every_field() {
    for c in BAD_CHARS {
        let bad = format!("a{c}b");
        let bad: &str = &bad;
        let bad_path = format!("/p{c}");
        let cases: Vec<(TokenRequest<'_>, Endpoint<'_>, RequestField)> = vec![
            (
                TokenRequest::new(bad),
                Endpoint::Imds,
                RequestField::Resource,
            ),
            (
                TokenRequest::new(bad),
                Endpoint::Extension,
                RequestField::Resource,
            ),
            (
                TokenRequest::new(ARM).with_selector(Selector::ClientId(bad)),
                Endpoint::Imds,
                RequestField::ClientId,
            ),
            (
                TokenRequest::new(ARM).with_selector(Selector::ObjectId(bad)),
                Endpoint::Extension,
                RequestField::ObjectId,
            ),
            (
                TokenRequest::new(ARM).with_selector(Selector::ResourceId {
                    id: bad,
                    param: ResIdParam::MiResId,
                }),
                Endpoint::Imds,
                RequestField::ResourceId,
            ),
            (
                TokenRequest::new(ARM).with_api_version(bad),
                Endpoint::Imds,
                RequestField::ApiVersion,
            ),
            (
                TokenRequest::new(ARM),
                Endpoint::Custom {
                    host: bad,
                    port: 80,
                    path: "/p",
                    style: Style::Imds,
                },
                RequestField::Host,
            ),
            (
                TokenRequest::new(ARM),
                Endpoint::Custom {
                    host: "h",
                    port: 80,
                    path: &bad_path,
                    style: Style::Extension,
                },
                RequestField::Path,
            ),
        ];
        for (req, ep, field) in cases {
            let mut buf = [0u8; 1024];
            assert_eq!(
                req.write(&ep, &mut buf),
                Err(RequestError::ControlCharacter { field }),
                "{c:?} in {field}"
            );
            // Validation comes before sizing: an empty buffer gets the same answer.
            assert_eq!(
                req.encoded_len(&ep),
                Err(RequestError::ControlCharacter { field })
            );
        }
        assert_eq!(
            Endpoint::parse_url(&format!("http://h/p{c}")),
            Err(RequestError::ControlCharacter {
                field: RequestField::Url
            })
        );
    }
}

#[test]
fn api_version_with_control_is_ignored_by_extension_style() {
    // The extension style never sends api-version, so it is not validated there.
    let req = TokenRequest::new(ARM).with_api_version("x\r\ny");
    assert!(write_vec(&req, &Endpoint::Extension).is_ok());
}

#[test]
fn empty_values_rejected() {
    let mut buf = [0u8; 512];
    assert_eq!(
        TokenRequest::new("").write(&Endpoint::Imds, &mut buf),
        Err(RequestError::Empty {
            field: RequestField::Resource
        })
    );
    assert_eq!(
        TokenRequest::new(ARM)
            .with_selector(Selector::ClientId(""))
            .write(&Endpoint::Imds, &mut buf),
        Err(RequestError::Empty {
            field: RequestField::ClientId
        })
    );
    assert_eq!(
        TokenRequest::new(ARM)
            .with_api_version("")
            .write(&Endpoint::Imds, &mut buf),
        Err(RequestError::Empty {
            field: RequestField::ApiVersion
        })
    );
    let bad_eps = [
        (
            Endpoint::Custom {
                host: "",
                port: 1,
                path: "/",
                style: Style::Imds,
            },
            RequestError::Empty {
                field: RequestField::Host,
            },
        ),
        (
            Endpoint::Custom {
                host: "h",
                port: 0,
                path: "/",
                style: Style::Imds,
            },
            RequestError::InvalidPort,
        ),
        (
            Endpoint::Custom {
                host: "h",
                port: 1,
                path: "",
                style: Style::Imds,
            },
            RequestError::InvalidPath,
        ),
        (
            Endpoint::Custom {
                host: "h",
                port: 1,
                path: "/a b",
                style: Style::Imds,
            },
            RequestError::InvalidPath,
        ),
        (
            Endpoint::Custom {
                host: "h",
                port: 1,
                path: "/a?b",
                style: Style::Imds,
            },
            RequestError::InvalidPath,
        ),
        (
            Endpoint::Custom {
                host: "h h",
                port: 1,
                path: "/",
                style: Style::Imds,
            },
            RequestError::InvalidHost,
        ),
        (
            Endpoint::Custom {
                host: "h/x",
                port: 1,
                path: "/",
                style: Style::Imds,
            },
            RequestError::InvalidHost,
        ),
    ];
    for (ep, err) in bad_eps {
        assert_eq!(
            TokenRequest::new(ARM).write(&ep, &mut buf),
            Err(err),
            "{ep:?}"
        );
    }
}

#[test]
fn from_scope() {
    let ok = [
        (
            "https://management.azure.com/.default",
            "https://management.azure.com",
        ),
        (
            "https://vault.azure.net/.default",
            "https://vault.azure.net",
        ),
        ("https://storage.azure.com/", "https://storage.azure.com/"),
        ("api://app-id", "api://app-id"),
        ("https://x/.default/.default", "https://x/.default"),
    ];
    for (scope, resource) in ok {
        let req = TokenRequest::from_scope(scope).unwrap();
        assert_eq!(req.resource, resource);
        assert_eq!(req.selector, None);
        assert_eq!(req.api_version, DEFAULT_API_VERSION);
    }
    let bad = [
        (
            "https://a/.default https://b/.default",
            RequestError::MultipleScopes,
        ),
        ("https://a/.default ", RequestError::MultipleScopes),
        ("a\tb", RequestError::MultipleScopes),
        (
            "",
            RequestError::Empty {
                field: RequestField::Resource,
            },
        ),
        (
            "/.default",
            RequestError::Empty {
                field: RequestField::Resource,
            },
        ),
    ];
    for (scope, err) in bad {
        assert_eq!(TokenRequest::from_scope(scope), Err(err), "{scope:?}");
    }
}

#[test]
fn parse_url_ok() {
    let imds_path = "/metadata/identity/oauth2/token";
    let cases: &[(&str, &str, u16, &str)] = &[
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, imds_path),
        ("http://127.0.0.1:8080/", "127.0.0.1", 8080, imds_path),
        ("http://localhost", "localhost", 80, imds_path),
        (
            "HTTP://Emulator.Local:81/custom/token",
            "Emulator.Local",
            81,
            "/custom/token",
        ),
        (
            "http://localhost:50342/oauth2/token",
            "localhost",
            50342,
            "/oauth2/token",
        ),
        ("http://[::1]:8080", "::1", 8080, imds_path),
        ("http://[fe80::1]/x", "fe80::1", 80, "/x"),
        ("http://h:65535//", "h", 65535, "//"),
    ];
    for &(url, host, port, path) in cases {
        let ep = Endpoint::parse_url(url).unwrap();
        assert_eq!(
            ep,
            Endpoint::Custom {
                host,
                port,
                path,
                style: Style::Imds
            },
            "{url}"
        );
        assert_eq!(ep.connect_addr(), (host, port));
        assert_eq!(ep.path(), path);
        assert_eq!(ep.style(), Style::Imds);
    }
}

#[test]
fn parse_url_errors() {
    let cases: &[(&str, RequestError)] = &[
        ("https://127.0.0.1:8080", RequestError::HttpsNotSupported),
        ("HTTPS://x", RequestError::HttpsNotSupported),
        ("ftp://x", RequestError::NotHttpUrl),
        ("localhost:8080", RequestError::NotHttpUrl),
        ("", RequestError::NotHttpUrl),
        ("http:/x", RequestError::NotHttpUrl),
        ("http://", RequestError::MissingHost),
        ("http:///path", RequestError::MissingHost),
        ("http://:8080", RequestError::MissingHost),
        ("http://h:", RequestError::InvalidPort),
        ("http://h:0", RequestError::InvalidPort),
        ("http://h:65536", RequestError::InvalidPort),
        ("http://h:123456", RequestError::InvalidPort),
        ("http://h:8a", RequestError::InvalidPort),
        ("http://h:+80", RequestError::InvalidPort),
        ("http://h:80:81", RequestError::InvalidPort),
        ("http://user@h", RequestError::UserInfoInUrl),
        ("http://user:pw@h:80/", RequestError::UserInfoInUrl),
        ("http://h/p?x=1", RequestError::QueryInUrl),
        ("http://h?x", RequestError::QueryInUrl),
        ("http://h#frag", RequestError::QueryInUrl),
        ("http://h h", RequestError::InvalidHost),
        ("http://h%41", RequestError::InvalidHost),
        ("http://例え.jp", RequestError::InvalidHost),
        ("http://[::1", RequestError::InvalidHost),
        ("http://[::1]x", RequestError::InvalidHost),
        ("http://[abc]", RequestError::InvalidHost),
        ("http://[::g]", RequestError::InvalidHost),
        ("http://h/a b", RequestError::InvalidPath),
        ("http://h/é", RequestError::InvalidPath),
        (
            "http://h\r\n/",
            RequestError::ControlCharacter {
                field: RequestField::Url,
            },
        ),
    ];
    for &(url, err) in cases {
        assert_eq!(Endpoint::parse_url(url), Err(err), "{url:?}");
    }
}

#[test]
fn parsed_urls_write_host_header() {
    let cases = [
        ("http://[::1]:8080", "Host: [::1]:8080\r\n"),
        ("http://[::1]", "Host: [::1]\r\n"),
        ("http://localhost:80/", "Host: localhost\r\n"),
        (
            "http://localhost:50342/oauth2/token",
            "Host: localhost:50342\r\n",
        ),
    ];
    for (url, host_line) in cases {
        let ep = Endpoint::parse_url(url).unwrap();
        let got = String::from_utf8(write_vec(&TokenRequest::new("r"), &ep).unwrap()).unwrap();
        assert!(got.contains(host_line), "{url}: {got}");
    }
    let ext = Endpoint::parse_url("http://localhost:50342/oauth2/token")
        .unwrap()
        .with_style(Style::Extension);
    let got = String::from_utf8(write_vec(&TokenRequest::new(ARM), &ext).unwrap()).unwrap();
    assert_eq!(got, expected(1, 0));
}

#[test]
fn builtin_endpoint_accessors() {
    assert_eq!(Endpoint::Imds.connect_addr(), ("169.254.169.254", 80));
    assert_eq!(Endpoint::Extension.connect_addr(), ("localhost", 50342));
    assert_eq!(Endpoint::Imds.path(), "/metadata/identity/oauth2/token");
    assert_eq!(Endpoint::Extension.path(), "/oauth2/token");
    assert_eq!(Endpoint::Extension.style(), Style::Extension);
    assert_eq!(
        Endpoint::Imds.with_style(Style::Extension),
        Endpoint::Custom {
            host: "169.254.169.254",
            port: 80,
            path: "/metadata/identity/oauth2/token",
            style: Style::Extension
        }
    );
}

#[test]
fn errors_display_names_the_field() {
    let e = RequestError::ControlCharacter {
        field: RequestField::ClientId,
    };
    assert_eq!(
        e.to_string(),
        "client_id contains CR, LF or another control character"
    );
    let e = RequestError::BufferTooSmall { required: 321 };
    assert!(e.to_string().contains("321"));
    let _: &dyn core::error::Error = &e;
}

mod cross_check {
    //! Every request we write is read back by `httparse` and its query decoded to the inputs.
    use super::*;
    use mitoken_core::query::{Pairs, Plus, decode_into};
    use proptest::prelude::*;

    fn decoded(v: &[u8]) -> String {
        let mut out = vec![0u8; v.len()];
        decode_into(v, &mut out, Plus::Literal).unwrap().to_owned()
    }

    proptest! {
        #[test]
        fn written_requests_parse_back(
            resource in any::<String>(),
            id in any::<String>(),
            kind in 0u8..5,
            ep in 0usize..4,
            bypass in any::<bool>(),
        ) {
            let sel = match kind {
                0 => None,
                1 => Some(Selector::ClientId(&id)),
                2 => Some(Selector::ObjectId(&id)),
                3 => Some(Selector::ResourceId { id: &id, param: ResIdParam::MsiResId }),
                _ => Some(Selector::ResourceId { id: &id, param: ResIdParam::MiResId }),
            };
            let mut req = TokenRequest::new(&resource).with_bypass_cache(bypass);
            if let Some(s) = sel {
                req = req.with_selector(s);
            }
            let endpoint = ENDPOINTS[ep];
            let mut buf = vec![0u8; 8192];
            let n = match req.write(&endpoint, &mut buf) {
                Ok(n) => n,
                Err(RequestError::ControlCharacter { .. } | RequestError::Empty { .. }) => {
                    let bad = |s: &str| s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f);
                    prop_assert!(bad(&resource) || (sel.is_some() && bad(&id)));
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            };
            prop_assert_eq!(req.encoded_len(&endpoint), Ok(n));
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut parsed = httparse::Request::new(&mut headers);
            let status = parsed.parse(&buf[..n]).unwrap();
            prop_assert_eq!(status, httparse::Status::Complete(n));
            prop_assert_eq!(parsed.method, Some("GET"));
            prop_assert_eq!(parsed.version, Some(1));
            let names: Vec<&str> = parsed.headers.iter().map(|h| h.name).collect();
            prop_assert_eq!(names, ["Host", "Metadata", "Connection", "Accept", "User-Agent"]);
            prop_assert_eq!(parsed.headers[1].value, b"true");
            let (path, query) = parsed.path.unwrap().split_once('?').unwrap();
            prop_assert_eq!(path, endpoint.path());
            let pairs: Vec<(String, String)> =
                Pairs::new(query).map(|(k, v)| (decoded(k), decoded(v))).collect();
            let mut want = Vec::new();
            if endpoint.style() == Style::Imds {
                want.push(("api-version".to_owned(), "2018-02-01".to_owned()));
            }
            want.push(("resource".to_owned(), resource.clone()));
            if let Some(s) = sel {
                want.push((s.param().to_owned(), id.clone()));
            }
            if bypass {
                want.push(("bypass_cache".to_owned(), "true".to_owned()));
            }
            prop_assert_eq!(pairs, want);
        }
    }
}
