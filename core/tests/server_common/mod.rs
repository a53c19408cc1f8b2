//! Shared fixtures for the server tests: VM configurations, a scripted issuer, and a helper that
//! runs one request through `Server::handle` and parses the answer with httparse.
#![allow(dead_code, clippy::missing_panics_doc)]

use mitoken_core::identity::{Flavor, Identity, IdentityTable, Slot};
use mitoken_core::server::{
    Config, Fault, Handled, IssueError, IssueRequest, Issued, Issuer, Outcome, Server,
};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SAMI_CLIENT: &str = "a0a0a0a0-0000-4000-8000-000000000001";
pub const SAMI_OBJECT: &str = "b0b0b0b0-0000-4000-8000-000000000001";
pub const UA_CLIENT: [&str; 3] = [
    "c1c1c1c1-1111-4111-8111-111111111111",
    "c2c2c2c2-2222-4222-8222-222222222222",
    "c3c3c3c3-3333-4333-8333-333333333333",
];
pub const UA_OBJECT: [&str; 3] = [
    "d1d1d1d1-1111-4111-8111-111111111111",
    "d2d2d2d2-2222-4222-8222-222222222222",
    "d3d3d3d3-3333-4333-8333-333333333333",
];
pub const UA_RES: [&str; 3] = [
    "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one",
    "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/two",
    "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/three",
];
pub const NOW: u64 = 1_757_687_322;

/// A VM configuration: system-assigned or not, and how many user-assigned identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vm {
    pub sami: bool,
    pub uamis: usize,
}

pub const NONE: Vm = Vm {
    sami: false,
    uamis: 0,
};
pub const SAMI: Vm = Vm {
    sami: true,
    uamis: 0,
};
pub const SAMI_UA2: Vm = Vm {
    sami: true,
    uamis: 2,
};
pub const UA1: Vm = Vm {
    sami: false,
    uamis: 1,
};
pub const UA2: Vm = Vm {
    sami: false,
    uamis: 2,
};

pub fn table(flavor: Flavor, vm: Vm) -> IdentityTable<&'static str, 8> {
    let mut t = IdentityTable::new(flavor);
    if vm.sami {
        t.insert(Identity::system_assigned(SAMI_CLIENT, SAMI_OBJECT))
            .unwrap();
    }
    for i in 0..vm.uamis {
        t.insert(Identity::user_assigned(
            UA_CLIENT[i],
            UA_OBJECT[i],
            UA_RES[i],
        ))
        .unwrap();
    }
    t
}

/// What the scripted issuer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    UnknownResource,
    Throttled(Option<u32>),
    Unavailable(Option<u32>),
    Failed,
    Fault(u16),
    AdmitFault(u16),
    Close,
}

/// Issues `tok-<slot>` tokens valid from `now − 300` to `now + 86400 − age` (a cached token of
/// age `age`), or fails as `mode` says; records what it was asked.
#[derive(Debug, Clone)]
pub struct TestIssuer {
    pub mode: Mode,
    pub age: u64,
    pub calls: Vec<(Slot, String, bool)>,
}

impl TestIssuer {
    pub fn new(mode: Mode) -> Self {
        TestIssuer {
            mode,
            age: 0,
            calls: Vec::new(),
        }
    }
}

impl Issuer for TestIssuer {
    fn issue(
        &mut self,
        req: &IssueRequest<'_, '_>,
        out: &mut [u8],
    ) -> Result<Issued, IssueError<'_>> {
        self.calls.push((
            req.resolved.slot,
            req.resource.to_string(),
            req.bypass_cache,
        ));
        match self.mode {
            Mode::UnknownResource => return Err(IssueError::UnknownResource),
            Mode::Throttled(r) => return Err(IssueError::Throttled { retry_after: r }),
            Mode::Unavailable(r) => return Err(IssueError::Unavailable { retry_after: r }),
            Mode::Failed => return Err(IssueError::Failed),
            Mode::Close => return Err(IssueError::Close),
            Mode::Fault(status) => {
                return Err(IssueError::Fault(Fault {
                    status,
                    error: "injected",
                    description: Some("fault injected by the test"),
                    retry_after: None,
                }));
            }
            Mode::Ok | Mode::AdmitFault(_) => {}
        }
        let token = format!("eyJ0eXAiOiJKV1QifQ.tok-{}.sig", req.resolved.slot.index());
        let Some(dst) = out.get_mut(..token.len()) else {
            return Err(IssueError::BufferTooSmall {
                required: token.len(),
            });
        };
        dst.copy_from_slice(token.as_bytes());
        let issued_at = req.now - self.age;
        Ok(Issued {
            token_len: token.len(),
            not_before: issued_at - 300,
            expires_on: issued_at + 86_400,
        })
    }

    fn admit(&mut self, _: &mitoken_core::server::Admission<'_>) -> Option<Fault<'_>> {
        match self.mode {
            Mode::AdmitFault(status) => Some(Fault {
                status,
                error: if status == 404 { "not_found" } else { "gone" },
                description: Some("IMDS is updating"),
                retry_after: None,
            }),
            _ => None,
        }
    }
}

/// A parsed answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    pub raw_body: Vec<u8>,
    pub consumed: usize,
    pub keep_alive: bool,
    pub outcome: Outcome<'static>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(|v| v.as_str())
    }
}

/// Parses one HTTP response with httparse (an independent parser).
pub fn parse_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = resp.parse(bytes).expect("valid response head")
    else {
        panic!("incomplete response head");
    };
    let hs: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8(h.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let len: usize = hs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("Content-Length");
    let body = bytes[head_len..].to_vec();
    assert_eq!(body.len(), len, "Content-Length matches the body");
    (resp.code.unwrap(), hs, body)
}

/// Runs `request` through a fresh server of `flavor` over `vm`.
pub fn run(flavor: Flavor, vm: Vm, issuer: &mut TestIssuer, request: &str) -> Reply {
    run_with(
        Config::new(flavor).with_tenant_id(TENANT),
        vm,
        issuer,
        request,
    )
}

/// Runs `request` through a fresh server configured by `config` over `vm`.
pub fn run_with(config: Config<'static>, vm: Vm, issuer: &mut TestIssuer, request: &str) -> Reply {
    let flavor = config.flavor;
    let table: &'static IdentityTable<&'static str, 8> = Box::leak(Box::new(table(flavor, vm)));
    let work: &'static mut [u8] = Box::leak(vec![0u8; 16 * 1024].into_boxed_slice());
    let mut server = Server::new(table, config, work);
    let mut conn = server.connection();
    let mut input = request.as_bytes().to_vec();
    let mut out = vec![0u8; 8192];
    let handled = server
        .handle(&mut conn, &mut input, NOW, issuer, &mut out)
        .expect("buffers are large enough");
    let Handled::Response(r) = handled else {
        panic!("request incomplete: {request:?}");
    };
    let (status, headers, raw_body) = parse_response(&out[..r.len]);
    assert_eq!(status, r.status);
    let body = serde_json::from_slice(&raw_body).expect("JSON body");
    Reply {
        status,
        headers,
        body,
        raw_body,
        consumed: r.consumed,
        keep_alive: r.keep_alive,
        outcome: r.outcome,
    }
}

/// `GET <target>` with `Metadata: true` and extra header lines.
pub fn get(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n{extra}\r\n")
}

/// `GET <target>` without the Metadata header.
pub fn get_bare(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n{extra}\r\n")
}

/// `POST <target>` with `Metadata: true`, a form body and its content type.
pub fn post(target: &str, content_type: &str, body: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: localhost:50342\r\nMetadata: true\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub const RES: &str = "https%3A%2F%2Fmanagement.azure.com%2F";
pub const RES_DECODED: &str = "https://management.azure.com/";
