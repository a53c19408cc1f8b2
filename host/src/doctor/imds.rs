//! IMDS checks: route, connect, an answer in IMDS's shape, tokens, and the clock.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mitoken_core::diagnose::{
    ClockVerdict, ErrorMeaning, SKEW_FAIL_SECS, classify_error, clock_verdict, service_clock_skew,
};
use mitoken_core::request::{Endpoint, TokenRequest};
use tokio::net::TcpStream;

use super::claims::{self, Claims};
use super::{Check, DoctorArgs, Status};
use crate::client::{FetchFailure, fetch_with, unix_now};
use crate::token_client::{IdentitySelector, TokenSpec};

/// IMDS's address.
pub const IMDS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), 80);
/// The api-version the doctor asks with.
const API_VERSION: &str = "2018-02-01";
/// Answers slower than this get a warning: SDK probes of IMDS give up after about a second.
const SLOW_ANSWER: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// What a token fetch gave, with everything later checks need (never the token).
struct Fetched {
    elapsed: Duration,
    received_at: u64,
    outcome: Result<TokenFacts, FetchFailure>,
}

/// The facts of a token answer.
struct TokenFacts {
    claims: Option<Claims>,
    expires_on: Option<u64>,
    expires_in: Option<u64>,
    not_before: Option<u64>,
    client_id: Option<String>,
}

async fn fetch(spec: &TokenSpec, timeout: Duration) -> Fetched {
    let request: TokenRequest<'_> = spec.as_request(API_VERSION);
    let started = Instant::now();
    let outcome = fetch_with(&Endpoint::Imds, &request, timeout, |t| TokenFacts {
        claims: claims::decode(t.access_token.expose()),
        expires_on: t.expires_on,
        expires_in: t.expires_in,
        not_before: t.not_before,
        client_id: t.client_id.map(str::to_owned),
    })
    .await;
    Fetched {
        elapsed: started.elapsed(),
        received_at: unix_now(),
        outcome,
    }
}

/// `imds.route`: asks the kernel for a route (a UDP `connect` sends nothing).
fn route_check() -> Result<Check, Check> {
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|s| {
        s.connect(IMDS_ADDR)?;
        s.local_addr()
    });
    match probe {
        Ok(local) => Ok(Check::ok(
            "imds.route",
            format!("169.254.169.254 is routed (source address {})", local.ip()),
        )),
        Err(e) => Err(Check::with_fix(
            "imds.route",
            Status::Fail,
            format!("no route to 169.254.169.254: {e}"),
            "this is not an Azure VM, or its network has no link-local route: in a container \
             use the host's network (or one that routes 169.254.169.254); check `ip route get \
             169.254.169.254`",
        )),
    }
}

/// `imds.connect`: one TCP connection, closed at once.
async fn connect_check(timeout: Duration) -> Result<Check, Check> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(IMDS_ADDR)).await {
        Ok(Ok(_stream)) => Ok(Check::ok(
            "imds.connect",
            format!("connected to {IMDS_ADDR} in {}", ms(started.elapsed())),
        )),
        Ok(Err(e)) => Err(Check::with_fix(
            "imds.connect",
            Status::Fail,
            format!("cannot connect to {IMDS_ADDR}: {e}"),
            "a firewall (iptables/nftables, a container's network policy) rejects \
             169.254.169.254:80, or this is not an Azure VM; allow outbound TCP to \
             169.254.169.254:80",
        )),
        Err(_) => Err(Check::with_fix(
            "imds.connect",
            Status::Fail,
            format!("no TCP answer from {IMDS_ADDR} within {timeout:?}: packets are dropped"),
            "a firewall or the container network drops traffic to 169.254.169.254; allow \
             outbound TCP to 169.254.169.254:80",
        )),
    }
}

/// `imds.answer`: is what answered IMDS, and how fast? An IMDS error answer (say `Identity
/// not found`) passes here: it is the token check's to report.
fn answer_check(fetched: &Fetched, timeout: Duration) -> Check {
    let took = ms(fetched.elapsed);
    match &fetched.outcome {
        Ok(_) => answered_in(fetched.elapsed, format!("IMDS answered a token in {took}")),
        Err(FetchFailure::Service(f)) => {
            match classify_error(f.status, &f.error, f.description.as_deref()) {
                ErrorMeaning::NotImds => Check::with_fix(
                    "imds.answer",
                    Status::Fail,
                    format!(
                        "HTTP {} from 169.254.169.254 is not IMDS (not IMDS's error JSON{}): a \
                         container runtime, proxy or firewall answered in IMDS's place",
                        f.status,
                        f.description
                            .as_deref()
                            .map(|d| format!(": \"{d}\""))
                            .unwrap_or_default()
                    ),
                    "run where IMDS is reachable (host network), or configure the container \
                     runtime / proxy / firewall to pass 169.254.169.254 through untouched",
                ),
                _ => answered_in(
                    fetched.elapsed,
                    format!("IMDS answered (HTTP {}) in {took}", f.status),
                ),
            }
        }
        Err(FetchFailure::Timeout { .. }) => Check::with_fix(
            "imds.answer",
            Status::Fail,
            format!(
                "169.254.169.254:80 accepted the connection but sent no answer within {timeout:?}"
            ),
            "something intercepts 169.254.169.254 without answering (a transparent proxy, a \
             container sidecar), or the VM is overloaded: retry with a longer --timeout; SDK \
             probes give up after about a second",
        ),
        Err(FetchFailure::Protocol { error, .. }) => Check::with_fix(
            "imds.answer",
            Status::Fail,
            format!("the answer from 169.254.169.254 is not IMDS's: {error}"),
            "something other than IMDS answers on 169.254.169.254:80 (a proxy or container \
             runtime); let traffic to 169.254.169.254 through untouched",
        ),
        Err(e) => Check::with_fix(
            "imds.answer",
            Status::Fail,
            format!("no answer from IMDS: {e}"),
            "retry; if it persists, restart the VM's network or contact Azure support",
        ),
    }
}

fn answered_in(elapsed: Duration, detail: String) -> Check {
    if elapsed > SLOW_ANSWER {
        Check::with_fix(
            "imds.answer",
            Status::Warn,
            format!("{detail}: slow"),
            "SDK probes that allow about a second will time out: the VM is busy; give the \
             credential a longer timeout or retry",
        )
    } else {
        Check::ok("imds.answer", detail)
    }
}

/// The check id and the words for a selector.
fn describe(selector: Option<&IdentitySelector>) -> (String, String) {
    match selector {
        None => (
            "token.default".to_owned(),
            "the default identity".to_owned(),
        ),
        Some(IdentitySelector::ClientId(id)) => {
            (format!("token.client_id={id}"), format!("client_id {id}"))
        }
        Some(IdentitySelector::ObjectId(id)) => {
            (format!("token.object_id={id}"), format!("object_id {id}"))
        }
        Some(IdentitySelector::ResourceId { id, .. }) => {
            (format!("token.msi_res_id={id}"), format!("msi_res_id {id}"))
        }
    }
}

/// `token.*`: the token for one identity.
fn token_check(selector: Option<&IdentitySelector>, resource: &str, fetched: &Fetched) -> Check {
    let (id, who) = describe(selector);
    let facts = match &fetched.outcome {
        Ok(facts) => facts,
        Err(FetchFailure::Service(f)) => {
            let (detail, fix) = match classify_error(f.status, &f.error, f.description.as_deref()) {
                ErrorMeaning::IdentityNotFound => (
                    format!(
                        "IMDS is up and answered `Identity not found` for {who}: that identity \
                         is not assigned to this VM{}",
                        if selector.is_none() {
                            " (it has no system-assigned identity)"
                        } else {
                            ""
                        }
                    ),
                    if selector.is_none() {
                        "enable the VM's system-assigned identity (az vm identity assign -g RG \
                         -n VM), or ask for a user-assigned identity with --client-id"
                            .to_owned()
                    } else {
                        format!(
                            "assign it to this VM (az vm identity assign -g RG -n VM \
                             --identities <its resource id>) or fix the id; {who} was asked for"
                        )
                    },
                ),
                ErrorMeaning::SelectorRequired => (
                    format!("IMDS needs a selector: several user-assigned identities, {who} asked"),
                    "pass --client-id (or set the SDK's managed identity client id)".to_owned(),
                ),
                ErrorMeaning::UnknownResource => (
                    format!("Entra ID does not know the resource `{resource}`"),
                    "check the resource URI (e.g. https://management.azure.com/)".to_owned(),
                ),
                ErrorMeaning::Throttled => (
                    format!("IMDS throttles {who}: {f}"),
                    "fewer token requests: cache tokens until they near expiry".to_owned(),
                ),
                ErrorMeaning::Updating => (
                    format!("IMDS is being updated: {f}"),
                    "retry within 70 seconds (SDKs do)".to_owned(),
                ),
                ErrorMeaning::NotImds => (
                    format!("no token for {who}: the answer was not IMDS's ({f})"),
                    "see imds.answer".to_owned(),
                ),
                _ => (
                    format!("no token for {who}: {f}"),
                    "retry; if it persists, check the identity's configuration".to_owned(),
                ),
            };
            return Check::with_fix(id, Status::Fail, detail, fix);
        }
        Err(e) => {
            return Check::with_fix(
                id,
                Status::Fail,
                format!("no token for {who}: {e}"),
                "see imds.connect and imds.answer",
            );
        }
    };
    let now = fetched.received_at;
    let mut detail = format!("token for {who}");
    if let Some(c) = &facts.claims {
        detail.push_str(": ");
        detail.push_str(&c.summary(now));
    } else if let Some(cid) = &facts.client_id {
        let _ = write!(detail, ": client_id={cid} (not a JWT)");
    }
    Check::ok(id, detail)
}

/// `clock.skew`: the machine's clock against the token service's.
fn clock_check(fetched: &Fetched) -> Option<Check> {
    let facts = fetched.outcome.as_ref().ok()?;
    let now = fetched.received_at;
    let skew = service_clock_skew(facts.expires_on, facts.expires_in, now);
    let nbf = facts
        .not_before
        .or(facts.claims.as_ref().and_then(|c| c.nbf));
    let skew_text = skew.map_or_else(
        || "the answer has no expires_in to compare".to_owned(),
        |s| match s {
            0 => "the token service's clock agrees with this machine's".to_owned(),
            s if s > 0 => format!("the token service's clock is {s} s ahead of this machine's"),
            s => format!(
                "the token service's clock is {} s behind this machine's",
                -s
            ),
        },
    );
    let fix = "synchronise the clock: chrony or systemd-timesyncd with the Hyper-V PTP source \
               (/dev/ptp_hyperv) or time.windows.com";
    Some(match clock_verdict(skew, nbf, now) {
        ClockVerdict::Ok => Check::ok("clock.skew", skew_text),
        ClockVerdict::Drifting => Check::with_fix("clock.skew", Status::Warn, skew_text, fix),
        ClockVerdict::NotYetValid => Check::with_fix(
            "clock.skew",
            Status::Fail,
            format!(
                "the token is not valid yet by this machine's clock: its nbf is {} s after this \
                 machine's now, so this clock is behind the token issuer's",
                nbf.unwrap_or(now).saturating_sub(now)
            ),
            fix,
        ),
        _ => Check::with_fix(
            "clock.skew",
            Status::Fail,
            format!(
                "{skew_text}: beyond Entra ID's {SKEW_FAIL_SECS} s tolerance, tokens are \
                 rejected as not yet valid or expired"
            ),
            fix,
        ),
    })
}

/// Every IMDS check, in order; later checks are skipped when an earlier one fails.
pub async fn checks(args: &DoctorArgs) -> Vec<Check> {
    let mut out = Vec::new();
    match route_check() {
        Ok(c) => out.push(c),
        Err(c) => {
            out.push(c);
            return out;
        }
    }
    match connect_check(args.timeout).await {
        Ok(c) => out.push(c),
        Err(c) => {
            out.push(c);
            return out;
        }
    }
    let default = fetch(&TokenSpec::new(args.resource.clone()), args.timeout).await;
    let answer = answer_check(&default, args.timeout);
    let imds_answered = answer.status != Status::Fail;
    out.push(answer);
    if !imds_answered {
        return out;
    }
    out.push(token_check(None, &args.resource, &default));
    let selectors = args
        .client_id
        .iter()
        .map(|id| IdentitySelector::ClientId(id.clone()))
        .chain(
            args.object_id
                .iter()
                .map(|id| IdentitySelector::ObjectId(id.clone())),
        )
        .chain(
            args.resource_id
                .iter()
                .map(|id| IdentitySelector::ResourceId {
                    id: id.clone(),
                    mi_spelling: false,
                }),
        );
    let mut clock_source = default.outcome.is_ok().then_some(default);
    for selector in selectors {
        let spec = TokenSpec::new(args.resource.clone()).with_selector(Some(selector.clone()));
        let fetched = fetch(&spec, args.timeout).await;
        out.push(token_check(Some(&selector), &args.resource, &fetched));
        if clock_source.is_none() && fetched.outcome.is_ok() {
            clock_source = Some(fetched);
        }
    }
    if let Some(check) = clock_source.as_ref().and_then(clock_check) {
        out.push(check);
    }
    out
}
