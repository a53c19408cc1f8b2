//! Property tests of the server side:
//! - resolution never yields an identity that does not match the selector given, and agrees
//!   with a linear-scan oracle of docs/protocol.md §3;
//! - every request the client writer produces parses here to the same fields;
//! - no input makes any parser (HTTP, parameters, GUIDs, resource ids) panic.

#![allow(clippy::single_match_else)]

mod server_common;

use mitoken_core::identity::{
    Flavor, Guid, Identity, IdentityKind, IdentityTable, ResolveError, Selector, Slot,
    is_user_assigned_resource_id,
};
use mitoken_core::request::{
    Connection, Endpoint, ResIdParam, Selector as ClientSelector, TokenRequest,
};
use mitoken_core::server::{Config, Handled, Outcome, RequestView, Server};
use proptest::prelude::*;
use server_common::{Mode, NOW, TestIssuer};

/// Owned strings for a random VM: GUIDs and resource ids.
#[derive(Debug, Clone)]
struct VmSpec {
    sami: Option<(String, String)>,
    uamis: Vec<(String, String, String)>,
}

impl VmSpec {
    fn table(&self) -> IdentityTable<&str, 64> {
        let mut t = IdentityTable::new(Flavor::Imds);
        if let Some((c, o)) = &self.sami {
            t.insert(Identity::system_assigned(c, o)).unwrap();
        }
        for (c, o, r) in &self.uamis {
            t.insert(Identity::user_assigned(c, o, r)).unwrap();
        }
        t
    }
}

fn guid_text(g: u128, upper: bool) -> String {
    let s = Guid(g).to_string();
    if upper { s.to_uppercase() } else { s }
}

/// Distinct GUIDs for every id, from a small space so that random selectors sometimes hit.
fn vm_spec() -> impl Strategy<Value = VmSpec> {
    (any::<bool>(), 0usize..12, any::<u64>()).prop_map(|(sami, n, seed)| {
        let base = u128::from(seed) << 32;
        let g = |i: usize| guid_text(base + i as u128, i.is_multiple_of(3));
        VmSpec {
            sami: sami.then(|| (g(100), g(101))),
            uamis: (0..n)
                .map(|i| {
                    (
                        g(2 * i),
                        g(2 * i + 1),
                        format!(
                            "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id{i:02}", Guid(u128::from(seed))
                        ),
                    )
                })
                .collect(),
        }
    })
}

/// A selector naming one of the VM's ids (maybe in another case), or a random one.
fn selector_for(spec: &VmSpec, kind: u8, pick: usize, flip_case: bool) -> String {
    let all: Vec<&String> = spec
        .uamis
        .iter()
        .flat_map(|(c, o, r)| [c, o, r])
        .chain(spec.sami.iter().flat_map(|(c, o)| [c, o]))
        .collect();
    let s = if all.is_empty() || kind == 3 {
        format!("{pick:032x}")
    } else {
        all[pick % all.len()].clone()
    };
    if flip_case { s.to_uppercase() } else { s }
}

/// The §3 rules as a linear scan.
fn oracle<'a>(
    t: &'a IdentityTable<&'a str, 64>,
    sel: &Selector<'_>,
) -> Result<Identity<'a>, ResolveError> {
    let all: Vec<Identity<'a>> = t
        .system_assigned()
        .into_iter()
        .chain(t.user_assigned())
        .collect();
    match sel {
        Selector::Default => {
            if let Some(s) = t.system_assigned() {
                return Ok(s);
            }
            match t.user_assigned_len() {
                0 => Err(ResolveError::NotFound),
                1 => Ok(t.user_assigned().next().unwrap()),
                _ => Err(ResolveError::MultipleUserAssigned),
            }
        }
        _ => {
            let found: Vec<_> = all.into_iter().filter(|i| i.matches(sel)).collect();
            assert!(found.len() <= 1, "ids are unique");
            found.first().copied().ok_or(ResolveError::NotFound)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn resolution_matches_the_selector(spec in vm_spec(), kind in 0u8..5, pick in any::<usize>(), flip in any::<bool>()) {
        let t = spec.table();
        let value = selector_for(&spec, kind, pick, flip);
        let sel = match kind {
            0 => Selector::ClientId(&value),
            1 => Selector::ObjectId(&value),
            2 | 3 => Selector::ResourceId(&value),
            _ => Selector::Default,
        };
        let got = t.resolve(&sel);
        if let Ok(r) = got {
            prop_assert!(r.identity.matches(&sel));
            prop_assert_eq!(t.get(r.slot), Some(r.identity));
            if matches!(sel, Selector::ResourceId(_)) {
                prop_assert_eq!(r.identity.kind, IdentityKind::UserAssigned);
            }
        }
        prop_assert_eq!(got.map(|r| r.identity), oracle(&t, &sel));
        // Every identity can be found by each of its ids.
        for (i, id) in t.user_assigned().enumerate() {
            for s in [Selector::ClientId(id.client_id), Selector::ObjectId(id.object_id), Selector::ResourceId(id.resource_id.unwrap())] {
                prop_assert_eq!(t.resolve(&s).map(|r| r.slot), Ok(Slot::UserAssigned(i)));
            }
        }
    }

    #[test]
    fn client_requests_parse_to_the_same_fields(
        spec in vm_spec(),
        resource in "[ -~]{1,80}|https://[a-z]{1,12}\\.azure\\.com/|\\PC{1,20}",
        kind in 0u8..5,
        pick in any::<usize>(),
        bypass in any::<bool>(),
        ext in any::<bool>(),
        keep_alive in any::<bool>(),
    ) {
        let t = spec.table();
        let (flavor, endpoint) = if ext { (Flavor::Extension, Endpoint::Extension) } else { (Flavor::Imds, Endpoint::Imds) };
        let table = {
            let mut e: IdentityTable<&str, 64> = IdentityTable::new(flavor);
            if let Some(s) = t.system_assigned() { e.insert(s).unwrap(); }
            for u in t.user_assigned().take(flavor.max_user_assigned()) { e.insert(u).unwrap(); }
            e
        };
        let value = selector_for(&spec, kind, pick, false);
        let client_sel = match kind {
            0 => Some(ClientSelector::ClientId(&value)),
            1 => Some(ClientSelector::ObjectId(&value)),
            2 => Some(ClientSelector::ResourceId { id: &value, param: ResIdParam::MsiResId }),
            3 => Some(ClientSelector::ResourceId { id: &value, param: ResIdParam::MiResId }),
            _ => None,
        };
        let server_sel = match client_sel {
            Some(ClientSelector::ClientId(v)) => Selector::ClientId(v),
            Some(ClientSelector::ObjectId(v)) => Selector::ObjectId(v),
            Some(ClientSelector::ResourceId { id, .. }) => Selector::ResourceId(id),
            None => Selector::Default,
        };
        let mut req = TokenRequest::new(&resource);
        req.selector = client_sel;
        req.bypass_cache = bypass;
        req.connection = if keep_alive { Connection::KeepAlive } else { Connection::Close };
        let mut bytes = vec![0u8; 4096];
        let Ok(n) = req.write(&endpoint, &mut bytes) else {
            // The client refuses some values (e.g. control characters); nothing to compare.
            return Ok(());
        };
        bytes.truncate(n);
        let mut work = vec![0u8; 16 * 1024];
        let mut server = Server::new(&table, Config::new(flavor), &mut work);
        let mut conn = server.connection();
        let mut out = vec![0u8; 8192];
        let mut issuer = TestIssuer::new(Mode::Ok);
        let Handled::Response(r) = server.handle(&mut conn, &mut bytes, NOW, &mut issuer, &mut out).unwrap() else {
            panic!("complete request reported partial");
        };
        prop_assert_eq!(r.consumed, n);
        prop_assert_eq!(r.keep_alive, keep_alive);
        match (table.resolve(&server_sel), r.outcome) {
            (Ok(want), Outcome::Token { resolved, bypass_cache }) => {
                prop_assert_eq!(resolved, want);
                prop_assert_eq!(bypass_cache, bypass, "bypass_cache is sent in both styles");
                prop_assert_eq!(issuer.calls.len(), 1);
                prop_assert_eq!(&issuer.calls[0].1, &resource);
            }
            (Err(e), Outcome::Rejected { rejection, .. }) => {
                prop_assert_eq!(rejection, e.into());
            }
            (want, got) => prop_assert!(false, "expected {:?}, got {:?}", want, got),
        }
    }

    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), ext in any::<bool>(), split in any::<usize>()) {
        let flavor = if ext { Flavor::Extension } else { Flavor::Imds };
        let table = server_common::table(flavor, server_common::SAMI_UA2);
        let mut work = vec![0u8; 2048];
        let mut server = Server::new(&table, Config::new(flavor), &mut work);
        let mut conn = server.connection();
        let mut out = vec![0u8; 4096];
        let mut buf = bytes.clone();
        let cut = if buf.is_empty() { 0 } else { split % buf.len() };
        // Feed a prefix, then everything; and also pipelined repeats.
        let _ = server.handle(&mut conn, &mut buf[..cut], NOW, &mut TestIssuer::new(Mode::Ok), &mut out);
        let _ = server.handle(&mut conn, &mut buf, NOW, &mut TestIssuer::new(Mode::Ok), &mut out);
        let _ = Guid::parse(&String::from_utf8_lossy(&bytes));
        let _ = is_user_assigned_resource_id(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_requests_never_panic(pos in any::<usize>(), byte in any::<u8>(), ext in any::<bool>(), small in 0usize..3) {
        let flavor = if ext { Flavor::Extension } else { Flavor::Imds };
        let table = server_common::table(flavor, server_common::SAMI_UA2);
        let base = if ext {
            server_common::post("/oauth2/token?x=1", "application/x-www-form-urlencoded", "resource=https%3A%2F%2Fa%2F&client_id=c1c1c1c1-1111-4111-8111-111111111111")
        } else {
            server_common::get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fa%2F&msi_res_id=%2Fsubscriptions%2Fx", "X-A: b\r\n")
        };
        let mut bytes = base.into_bytes();
        let i = pos % bytes.len();
        bytes[i] = byte;
        // Tiny buffers too: every size error must be an Err, not a panic.
        let (wl, ol) = [(16 * 1024, 8192), (64, 8192), (16 * 1024, 32)][small];
        let mut work = vec![0u8; wl];
        let mut server = Server::new(&table, Config::new(flavor), &mut work);
        let mut conn = server.connection();
        let mut out = vec![0u8; ol];
        let _ = server.handle(&mut conn, &mut bytes, NOW, &mut TestIssuer::new(Mode::Ok), &mut out);
    }

    #[test]
    fn decide_never_panics(
        method in "GET|POST|[A-Z]{0,6}",
        path in "/oauth2/token|/metadata/identity/oauth2/token|/metadata/identity/info|\\PC{0,20}",
        query in proptest::collection::vec(any::<u8>(), 0..200),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        md in proptest::option::of("true|True|false|\\PC{0,5}"),
        xff in any::<bool>(),
        ct in proptest::option::of("application/x-www-form-urlencoded|text/plain|\\PC{0,10}"),
        ext in any::<bool>(),
        work_len in 0usize..256,
    ) {
        let flavor = if ext { Flavor::Extension } else { Flavor::Imds };
        let table = server_common::table(flavor, server_common::UA2);
        let mut work = vec![0u8; 16];
        let server = Server::new(&table, Config::new(flavor).with_tenant_id("t"), &mut work);
        let view = RequestView {
            method: &method,
            path: &path,
            query: &query,
            metadata: md.as_deref().map(str::as_bytes),
            forwarded_for: xff,
            content_type: ct.as_deref().map(str::as_bytes),
            body: &body,
            ..RequestView::default()
        };
        let mut scratch = vec![0u8; work_len];
        let _ = server.decide(&view, &mut scratch);
    }
}
