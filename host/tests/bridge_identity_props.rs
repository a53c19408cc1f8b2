//! Issue #7 part 4: the bridge never returns a token for an identity other than the one the
//! request resolves to.
//!
//! A property test over random VM identity tables and random legacy requests: each case starts
//! the in-process emulator (IMDS flavor) with a generated table and the in-process bridge
//! pointed at it (loopback, ephemeral ports, on a tokio runtime built for the case), sends the
//! requests to the bridge over real TCP connections — hand-written HTTP/1.1, legacy GET or form
//! POST — and checks every answer against an oracle written from docs/protocol.md §3 (and the
//! docs/errors.md), not by calling the code under test:
//!
//! - the oracle resolves an identity → `200`, the answer's `resource` is the requested one, and
//!   the JWT's payload has that identity's `appid` and `oid` and `aud` = the resource;
//! - otherwise → `400 invalid_request` with the oracle's `error_description`: `Identity not
//!   found`, `Multiple user assigned identities exist, …` or, for two selectors, `Only one of
//!   client_id, object_id and msi_res_id may be specified`. An empty selector (`client_id=`)
//!   names no identity: the bridge answers `Identity not found` itself, without asking IMDS
//!   (which cannot be sent an empty selector), like the emulator.
//!
//! Tables: 0/1 system-assigned and 0–8 user-assigned identities, GUIDs often drawn from two
//! 120-bit prefixes (so ids differ only in their last hex digits, and a client id of one
//! identity is often the object id of another), resource ids whose names share prefixes
//! (`id-1`, `id-12`) across two subscriptions and three resource groups. Requests: no
//! selector; `client_id` / `object_id` / `msi_res_id` / `mi_res_id` naming an identity in
//! lower, upper or mixed case; near misses (last bit flipped, a truncated GUID, a resource id
//! one character longer or shorter, a GUID after a space, an empty value) and random GUIDs; a
//! value of the wrong kind (an object id as `client_id`, a resource id as `object_id`);
//! sometimes two selectors, sometimes `bypass_cache=true`; three resources; `/` in resource ids
//! raw or `%2F`; GET, POST with a form body, POST with `resource` in the query and the rest in
//! the body.
//!
//! Cache and single-flight: requests come in waves; a wave's requests (with some repeated) are
//! sent at once, each on its own connection, while the emulator delays every answer 20 ms so
//! that identical requests share one upstream request; afterwards all of the case's requests
//! are sent again, pipelined on one keep-alive connection, so most are answered from the
//! bridge's cache, interleaving identities and resources. Every token seen in a case must also
//! belong to exactly one (identity, resource).
//!
//! Cases: 24 by default (`PROPTEST_CASES` overrides), ~0.1–0.2 s each (mostly the 20 ms
//! delays), ~5 s in all in debug.
//!
//! Shrinking: a case is a `Vm` (the table) and its `waves` (the requests, whose selectors name
//! identities by index into the table, so they stay meaningful while the table shrinks).
//! proptest drops identities, waves and requests, moves indices towards the first identity and
//! values towards the first variant, and prints the minimal `vm` and `waves` (GUIDs in their
//! text form). The failure message names the phase (which wave, or the replay), the table as
//! configured, the failing request as sent on the wire, the oracle's expectation and the
//! answer (a token shown by its `appid`/`oid`/`aud`): "this table, this request, expected X,
//! got Y". The seed is saved in `host/tests/bridge_identity_props.proptest-regressions`, so
//! the failure replays first on the next run.

use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use mitoken_core::identity::{Flavor, Guid};
use mitoken_host::bridge::{Bridge, BridgeOptions};
use mitoken_host::emulate::config::{EmulatorConfig, IdentityConfig, IdentityKind};
use mitoken_host::emulate::faults::FaultRule;
use mitoken_host::emulate::serve::{Emulator, EmulatorOptions};
use mitoken_host::emulate::signing::SigningKey;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

// ---- the generated world ------------------------------------------------------------------

/// Resources asked for.
const RESOURCES: [&str; 3] = [
    "https://management.azure.com/",
    "https://vault.azure.net",
    "api://mitoken-props/app",
];
/// GUID prefixes shared by most generated ids (low byte zero: the generator fills it).
const GUID_BASES: [u128; 2] = [
    0x2000_0000_0000_4000_8000_0000_0000_0000,
    0xabcd_ef01_2345_4678_9abc_def0_1234_5600,
];
const SUBSCRIPTIONS: [&str; 2] = [
    "40000000-0000-4000-8000-000000000000",
    "40000000-0000-4000-8000-00000000000a",
];
const RESOURCE_GROUPS: [&str; 3] = ["rg", "RG-apps", "rg.prod(1)"];
/// A GUID and a resource id no generated identity has (used when the table has none to name).
const UNASSIGNED_GUID: Id = Id(0x5000_0000_0000_4000_8000_0000_0000_0001);
const UNASSIGNED_RESOURCE_ID: &str = "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nobody";

const NOT_FOUND: &str = "Identity not found";
const MULTIPLE_USER_ASSIGNED: &str = "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request";
const TWO_SELECTORS: &str = "Only one of client_id, object_id and msi_res_id may be specified";

#[derive(Clone, Debug)]
struct UserAssigned {
    client: Id,
    object: Id,
    resource_id: String,
}

/// One VM's identities.
#[derive(Clone, Debug)]
struct Vm {
    /// (client id, object id)
    system: Option<(Id, Id)>,
    users: Vec<UserAssigned>,
}

impl Vm {
    /// (client id, object id) of every identity, the system-assigned one first.
    fn ids(&self) -> Vec<(Id, Id)> {
        self.system
            .iter()
            .copied()
            .chain(self.users.iter().map(|u| (u.client, u.object)))
            .collect()
    }

    fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            tenant_id: EmulatorConfig::DEFAULT_TENANT_ID,
            system_assigned: self.system.map(|(client, object)| IdentityConfig {
                client_id: Guid(client.0),
                object_id: Guid(object.0),
                kind: IdentityKind::SystemAssigned,
            }),
            user_assigned: self
                .users
                .iter()
                .map(|u| IdentityConfig {
                    client_id: Guid(u.client.0),
                    object_id: Guid(u.object.0),
                    kind: IdentityKind::UserAssigned {
                        resource_id: u.resource_id.parse().expect("generated resource id"),
                    },
                })
                .collect(),
        }
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        match self.system {
            Some((c, o)) => {
                let _ = writeln!(s, "  system-assigned client={} object={}", guid(c), guid(o));
            }
            None => s.push_str("  no system-assigned identity\n"),
        }
        for u in &self.users {
            let _ = writeln!(
                s,
                "  user-assigned client={} object={} resource_id={}",
                guid(u.client),
                guid(u.object),
                u.resource_id
            );
        }
        s
    }
}

/// A GUID (client or object id), shown in its text form, also in proptest's shrunk input.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Id(u128);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn guid(id: Id) -> String {
    id.to_string()
}

fn guid_strategy() -> impl Strategy<Value = Id> + Clone {
    prop_oneof![
        // Shared prefixes, and frequent coincidences between client and object ids.
        4 => (0..GUID_BASES.len(), 0u128..24).prop_map(|(b, low)| Id(GUID_BASES[b] | low)),
        1 => any::<u128>().prop_map(Id),
    ]
}

fn vm_strategy() -> impl Strategy<Value = Vm> {
    let user = (
        guid_strategy(),
        guid_strategy(),
        0..SUBSCRIPTIONS.len(),
        0..RESOURCE_GROUPS.len(),
        "(id|ID|uami)-[0-9]{1,2}",
    );
    let users = prop_oneof![
        prop::collection::vec(user.clone(), 0..=1),
        prop::collection::vec(user.clone(), 0..=3),
        prop::collection::vec(user, 0..=8),
    ];
    (prop::option::of((guid_strategy(), guid_strategy())), users).prop_map(|(system, raw)| {
        // The emulator's (and Azure's) rule: client ids, object ids and resource ids (ignoring
        // case) unique on the VM; a client id may equal another identity's object id.
        let mut clients = BTreeSet::new();
        let mut objects = BTreeSet::new();
        let mut resource_ids = BTreeSet::new();
        let system = system.filter(|&(c, o)| clients.insert(c) && objects.insert(o));
        let mut users = Vec::new();
        for (client, object, sub, rg, name) in raw {
            let resource_id = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
                SUBSCRIPTIONS[sub], RESOURCE_GROUPS[rg]
            );
            if clients.contains(&client)
                || objects.contains(&object)
                || resource_ids.contains(&resource_id.to_ascii_lowercase())
            {
                continue;
            }
            clients.insert(client);
            objects.insert(object);
            resource_ids.insert(resource_id.to_ascii_lowercase());
            users.push(UserAssigned {
                client,
                object,
                resource_id,
            });
        }
        Vm { system, users }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Lower,
    Upper,
    Mixed,
}

fn apply_case(text: &str, case: Case) -> String {
    match case {
        Case::Lower => text.to_ascii_lowercase(),
        Case::Upper => text.to_ascii_uppercase(),
        Case::Mixed => text
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
    }
}

/// A selector's value, relative to the table (indices wrap around).
#[derive(Clone, Debug)]
enum Value {
    /// Identity `n`'s client id (system-assigned first).
    Client(usize, Case),
    /// Identity `n`'s object id.
    Object(usize, Case),
    /// User-assigned identity `n`'s resource id; `true`: `/` sent as `%2F`.
    Resource(usize, Case, bool),
    /// Identity `n`'s client id with its lowest bit flipped (may name a neighbour).
    ClientNear(usize),
    /// Identity `n`'s object id with its lowest bit flipped.
    ObjectNear(usize),
    /// Identity `n`'s client id without its last digit (not a GUID).
    ClientTruncated(usize),
    /// User-assigned identity `n`'s resource id with one more character (`id-1` → `id-10`).
    ResourceLonger(usize),
    /// User-assigned identity `n`'s resource id with one character less (`id-12` → `id-1`).
    ResourceShorter(usize),
    /// Any GUID (almost surely unassigned).
    Random(Id),
    /// Empty.
    Empty,
    /// Identity `n`'s client id after a space.
    ClientPadded(usize),
}

impl Value {
    /// The decoded value, and whether `/` is to be percent-encoded.
    fn text(&self, vm: &Vm) -> (String, bool) {
        let ids = vm.ids();
        let id = |n: usize| ids.get(n % ids.len().max(1)).copied();
        let user = |n: usize| {
            vm.users
                .get(n % vm.users.len().max(1))
                .map_or(UNASSIGNED_RESOURCE_ID, |u| u.resource_id.as_str())
        };
        let client = |n| id(n).map_or(UNASSIGNED_GUID, |(c, _)| c);
        let object = |n| id(n).map_or(UNASSIGNED_GUID, |(_, o)| o);
        match *self {
            Value::Client(n, case) => (apply_case(&guid(client(n)), case), true),
            Value::Object(n, case) => (apply_case(&guid(object(n)), case), true),
            Value::Resource(n, case, encode) => (apply_case(user(n), case), encode),
            Value::ClientNear(n) => (guid(Id(client(n).0 ^ 1)), true),
            Value::ObjectNear(n) => (guid(Id(object(n).0 ^ 1)), true),
            Value::ClientTruncated(n) => {
                let mut g = guid(client(n));
                g.pop();
                (g, true)
            }
            Value::ResourceLonger(n) => (format!("{}0", user(n)), false),
            Value::ResourceShorter(n) => {
                let mut r = user(n).to_owned();
                r.pop();
                (r, true)
            }
            Value::Random(g) => (guid(g), true),
            Value::Empty => (String::new(), true),
            Value::ClientPadded(n) => (format!(" {}", guid(client(n))), true),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A selector parameter: `client_id`, `object_id`, `msi_res_id`, `mi_res_id`.
enum Param {
    Client,
    Object,
    MsiRes,
    MiRes,
}

impl Param {
    const ALL: [Param; 4] = [Param::Client, Param::Object, Param::MsiRes, Param::MiRes];

    fn name(self) -> &'static str {
        match self {
            Param::Client => "client_id",
            Param::Object => "object_id",
            Param::MsiRes => "msi_res_id",
            Param::MiRes => "mi_res_id",
        }
    }

    fn next(self) -> Param {
        let i = Param::ALL.iter().position(|&p| p == self).unwrap_or(0);
        Param::ALL[(i + 1) % Param::ALL.len()]
    }
}

fn case_strategy() -> impl Strategy<Value = Case> {
    prop_oneof![2 => Just(Case::Lower), 1 => Just(Case::Upper), 1 => Just(Case::Mixed)]
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let n = 0usize..9;
    prop_oneof![
        (n.clone(), case_strategy()).prop_map(|(n, c)| Value::Client(n, c)),
        (n.clone(), case_strategy()).prop_map(|(n, c)| Value::Object(n, c)),
        (n.clone(), case_strategy(), any::<bool>()).prop_map(|(n, c, e)| Value::Resource(n, c, e)),
        n.clone().prop_map(Value::ClientNear),
        n.clone().prop_map(Value::ObjectNear),
        n.clone().prop_map(Value::ClientTruncated),
        n.clone().prop_map(Value::ResourceLonger),
        n.prop_map(Value::ResourceShorter),
        guid_strategy().prop_map(Value::Random),
        Just(Value::Empty),
        (0usize..9).prop_map(Value::ClientPadded),
    ]
}

fn selector_strategy() -> impl Strategy<Value = (Param, Value)> {
    let n = 0usize..9;
    prop_oneof![
        // Mostly a selector naming an identity by the right kind of id …
        4 => (n.clone(), case_strategy()).prop_map(|(n, c)| (Param::Client, Value::Client(n, c))),
        3 => (n.clone(), case_strategy()).prop_map(|(n, c)| (Param::Object, Value::Object(n, c))),
        2 => (n.clone(), case_strategy(), any::<bool>())
            .prop_map(|(n, c, e)| (Param::MsiRes, Value::Resource(n, c, e))),
        1 => (n, case_strategy(), any::<bool>())
            .prop_map(|(n, c, e)| (Param::MiRes, Value::Resource(n, c, e))),
        // … else anything: misses, near misses, the wrong kind of id.
        4 => (prop::sample::select(&Param::ALL[..]), value_strategy()),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// `GET /oauth2/token?…`
    Get,
    /// `POST /oauth2/token` with every parameter in the form body.
    Post,
    /// `POST /oauth2/token?resource=…` with the rest in the form body.
    PostSplit,
}

#[derive(Clone, Debug)]
struct Request {
    method: Method,
    resource: usize,
    selectors: Vec<(Param, Value)>,
    bypass_cache: bool,
}

fn request_strategy() -> impl Strategy<Value = Request> {
    let selectors = prop_oneof![
        2 => Just(Vec::new()),
        6 => selector_strategy().prop_map(|s| vec![s]),
        1 => (selector_strategy(), selector_strategy()).prop_map(|(a, mut b)| {
            if b.0 == a.0 {
                b.0 = a.0.next();
            }
            vec![a, b]
        }),
    ];
    (
        prop_oneof![3 => Just(Method::Get), 2 => Just(Method::Post), 1 => Just(Method::PostSplit)],
        // Mostly the first resource, so that identities meet in the cache.
        prop_oneof![3 => Just(0usize), 1 => 1..RESOURCES.len()],
        selectors,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(method, resource, selectors, bypass_cache)| Request {
            method,
            resource,
            selectors,
            bypass_cache,
        })
}

/// Requests sent at once: the generated ones, then copies of the first `repeats` of them.
fn wave_strategy() -> impl Strategy<Value = Vec<Request>> {
    (prop::collection::vec(request_strategy(), 1..=4), 0usize..=3).prop_map(
        |(mut reqs, repeats)| {
            let copies: Vec<Request> = reqs.iter().take(repeats).cloned().collect();
            reqs.extend(copies);
            reqs
        },
    )
}

// ---- the wire -----------------------------------------------------------------------------

fn percent_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A request rendered against a table: its decoded selectors (for the oracle) and its bytes.
struct Rendered {
    selectors: Vec<(Param, String)>,
    resource: &'static str,
    wire: String,
}

impl Request {
    fn render(&self, vm: &Vm) -> Rendered {
        let resource = RESOURCES[self.resource];
        let mut selectors = Vec::new();
        let mut rest = Vec::new();
        for (param, value) in &self.selectors {
            let (text, encode_slash) = value.text(vm);
            rest.push(format!(
                "{}={}",
                param.name(),
                percent_encode(&text, encode_slash)
            ));
            selectors.push((*param, text));
        }
        if self.bypass_cache {
            rest.push("bypass_cache=true".to_owned());
        }
        let resource_param = format!("resource={}", percent_encode(resource, true));
        let head = "Host: localhost:50342\r\nMetadata: true\r\n";
        let wire = match self.method {
            Method::Get => {
                let mut params = vec![resource_param];
                params.extend(rest);
                format!(
                    "GET /oauth2/token?{} HTTP/1.1\r\n{head}\r\n",
                    params.join("&")
                )
            }
            Method::Post | Method::PostSplit => {
                let (target, body) = if self.method == Method::Post {
                    let mut params = vec![resource_param];
                    params.extend(rest);
                    ("/oauth2/token".to_owned(), params.join("&"))
                } else {
                    (format!("/oauth2/token?{resource_param}"), rest.join("&"))
                };
                format!(
                    "POST {target} HTTP/1.1\r\n{head}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
        };
        Rendered {
            selectors,
            resource,
            wire,
        }
    }
}

/// Reads one HTTP response (status and body, framed by `Content-Length`) from `stream`,
/// keeping bytes past it in `buffer`.
async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<(u16, String), String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line in {head:?}"))?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
            let total = end + 4 + length;
            while buffer.len() < total {
                let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed inside a body".to_owned());
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buffer[end + 4..total]).into_owned();
            buffer.drain(..total);
            return Ok((status, body));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed without an answer".to_owned());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `wires` pipelined on one new connection and reads their answers.
async fn exchange(addr: SocketAddr, wires: Vec<String>) -> Result<Vec<(u16, String)>, String> {
    let run = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(wires.concat().as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buffer = Vec::new();
        let mut answers = Vec::with_capacity(wires.len());
        for _ in &wires {
            answers.push(read_response(&mut stream, &mut buffer).await?);
        }
        Ok(answers)
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .map_err(|_| "no answer within 20 s".to_owned())?
}

// ---- the oracle (docs/protocol.md §3, docs/errors.md) -----------------

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// A token for the identity with these (client id, object id).
    Token(Id, Id),
    /// `400 invalid_request` with this description.
    Refused(&'static str),
    /// An empty selector: `400 invalid_request`, `Identity not found` (it names no identity)
    /// or the bridge's own refusal of a parameter it cannot send to IMDS (README, `mitoken
    /// bridge`, "Errors"): the bridge does not forward `client_id=`.
    RefusedEmpty,
}

/// A GUID in its `8-4-4-4-12` form, hex digits of either case; anything else is none.
fn parse_guid(text: &str) -> Option<Id> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut value = 0u128;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let digit = char::from(b).to_digit(16)?;
        value = (value << 4) | u128::from(digit);
    }
    Some(Id(value))
}

fn oracle(vm: &Vm, selectors: &[(Param, String)]) -> Expected {
    let found = |hit: Option<(Id, Id)>| {
        hit.map_or(Expected::Refused(NOT_FOUND), |(c, o)| Expected::Token(c, o))
    };
    match selectors {
        // Default identity: the system-assigned one, else the only user-assigned one.
        [] => match (vm.system, vm.users.as_slice()) {
            (Some((c, o)), _) => Expected::Token(c, o),
            (None, []) => Expected::Refused(NOT_FOUND),
            (None, [only]) => Expected::Token(only.client, only.object),
            (None, _) => Expected::Refused(MULTIPLE_USER_ASSIGNED),
        },
        [(_, v)] if v.is_empty() => Expected::RefusedEmpty,
        // By client or object id: any identity of the VM, GUIDs compared by value.
        [(Param::Client, v)] => {
            found(parse_guid(v).and_then(|g| vm.ids().into_iter().find(|&(c, _)| c == g)))
        }
        [(Param::Object, v)] => {
            found(parse_guid(v).and_then(|g| vm.ids().into_iter().find(|&(_, o)| o == g)))
        }
        // By ARM resource id (either parameter name): user-assigned only, ignoring case.
        [(Param::MsiRes | Param::MiRes, v)] => found(
            vm.users
                .iter()
                .find(|u| u.resource_id.eq_ignore_ascii_case(v))
                .map(|u| (u.client, u.object)),
        ),
        _ => Expected::Refused(TWO_SELECTORS),
    }
}

// ---- checking an answer -------------------------------------------------------------------

fn json_str<'a>(value: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(serde_json::Value::as_str)
}

/// What every token seen in one case was for: access token → (client id, resource).
type Seen = HashMap<String, (Id, &'static str)>;

/// The claims of a JWT (its middle part, base64url), if it is one.
fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An answer for a failure message: a token shown by its identity claims, not its text.
fn summary(status: u16, json: &serde_json::Value) -> String {
    match json_str(json, "access_token").and_then(jwt_claims) {
        Some(claims) => format!(
            "{status}, a token with appid={:?} oid={:?} aud={:?}, resource={:?}",
            json_str(&claims, "appid"),
            json_str(&claims, "oid"),
            json_str(&claims, "aud"),
            json_str(json, "resource"),
        ),
        None => format!("{status} {json}"),
    }
}

fn check(
    vm: &Vm,
    rendered: &Rendered,
    (status, body): &(u16, String),
    seen: &mut Seen,
    phase: &str,
) -> Result<(), TestCaseError> {
    let expected = oracle(vm, &rendered.selectors);
    let json: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        TestCaseError::fail(format!(
            "{phase}: answer is not JSON ({e}): {status} {body}"
        ))
    })?;
    let context = || {
        format!(
            "\n{phase}\ntable:\n{}request:\n  {:?}\nexpected: {expected:?}\ngot: {}",
            vm.describe(),
            rendered.wire,
            summary(*status, &json)
        )
    };
    let error = json_str(&json, "error");
    let description = json_str(&json, "error_description").unwrap_or_default();
    match expected {
        Expected::Refused(expected_description) => {
            prop_assert!(
                *status == 400
                    && error == Some("invalid_request")
                    && description == expected_description,
                "{}",
                context()
            );
        }
        Expected::RefusedEmpty => {
            prop_assert!(
                *status == 400 && error == Some("invalid_request") && description == NOT_FOUND,
                "{}",
                context()
            );
        }
        Expected::Token(client, object) => {
            prop_assert_eq!(*status, 200, "{}", context());
            prop_assert_eq!(
                json_str(&json, "resource"),
                Some(rendered.resource),
                "{}",
                context()
            );
            let token = json_str(&json, "access_token").unwrap_or_default();
            let claims = jwt_claims(token)
                .ok_or_else(|| TestCaseError::fail(format!("not a JWT{}", context())))?;
            let id = |name: &str| json_str(&claims, name).and_then(parse_guid);
            prop_assert_eq!(id("appid"), Some(client), "appid{}", context());
            prop_assert_eq!(id("oid"), Some(object), "oid{}", context());
            prop_assert_eq!(
                json_str(&claims, "aud"),
                Some(rendered.resource),
                "aud{}",
                context()
            );
            // Independently of the claims: one token text, one (identity, resource).
            let owner = *seen
                .entry(token.to_owned())
                .or_insert((client, rendered.resource));
            prop_assert_eq!(
                owner,
                (client, rendered.resource),
                "one token served for two identities or resources{}",
                context()
            );
        }
    }
    Ok(())
}

// ---- one case -----------------------------------------------------------------------------

/// One RSA key for every case (generating one per case would dominate the run time).
fn signing_key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    Arc::clone(KEY.get_or_init(|| Arc::new(SigningKey::generate().expect("generate a key"))))
}

fn setup_error(what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

async fn run_case(vm: &Vm, waves: &[Vec<Request>]) -> Result<(), TestCaseError> {
    let mut options = EmulatorOptions::new(Flavor::Imds, vm.config());
    options.signing_key = Some(signing_key());
    // Every upstream answer 20 ms late, so concurrent identical requests overlap upstream.
    options.faults = vec![
        "delay=20ms"
            .parse::<FaultRule>()
            .map_err(|e| setup_error("fault", e))?,
    ];
    let emulator = Emulator::start(options)
        .await
        .map_err(|e| setup_error("start the emulator", e))?;
    let mut options = BridgeOptions::new(emulator.base_url());
    options.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let bridge = Bridge::start(options)
        .await
        .map_err(|e| setup_error("start the bridge", e))?;
    let addr = bridge.local_addr();

    let mut seen = Seen::new();
    let mut all = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        let rendered: Vec<Rendered> = wave.iter().map(|r| r.render(vm)).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, r) in rendered.iter().enumerate() {
            let wire = vec![r.wire.clone()];
            tasks.spawn(async move { (i, exchange(addr, wire).await) });
        }
        let mut answers = vec![None; rendered.len()];
        while let Some(done) = tasks.join_next().await {
            let (i, answer) = done.map_err(|e| setup_error("client task", e))?;
            let mut answer = answer.map_err(|e| {
                TestCaseError::fail(format!("wave {w}: {e}\nrequest: {:?}", rendered[i].wire))
            })?;
            answers[i] = answer.pop();
        }
        for (r, answer) in rendered.iter().zip(&answers) {
            let answer = answer
                .as_ref()
                .ok_or_else(|| setup_error("answer", "missing"))?;
            check(
                vm,
                r,
                answer,
                &mut seen,
                &format!("wave {w} (concurrent connections)"),
            )?;
        }
        all.extend(rendered);
    }
    // Everything again, pipelined on one keep-alive connection, in order and then in reverse:
    // mostly cache hits, identities and resources interleaved.
    for reverse in [false, true] {
        let mut order: Vec<&Rendered> = all.iter().collect();
        if reverse {
            order.reverse();
        }
        let phase = format!("replay (one pipelined connection, reverse: {reverse})");
        let answers = exchange(addr, order.iter().map(|r| r.wire.clone()).collect())
            .await
            .map_err(|e| TestCaseError::fail(format!("{phase}: {e}")))?;
        for (r, answer) in order.iter().zip(&answers) {
            check(vm, r, answer, &mut seen, &phase)?;
        }
    }
    bridge.shutdown().await;
    emulator.shutdown().await;
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    ProptestConfig {
        cases,
        // Each case takes ~0.1 s: bound the time a failure spends shrinking.
        max_shrink_iters: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bridge_serves_only_the_resolved_identity(
        vm in vm_strategy(),
        waves in prop::collection::vec(wave_strategy(), 1..=3),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| setup_error("runtime", e))?;
        runtime.block_on(run_case(&vm, &waves))?;
    }
}
