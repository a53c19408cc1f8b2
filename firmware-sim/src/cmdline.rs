//! The guest's configuration, from the kernel command line (`-append`):
//!
//! ```text
//! ip=169.254.169.15/24 gw=169.254.169.2 endpoint=imds resource=https://management.azure.com/
//! req=system req=client_id:<guid> req=object_id:<guid> req=msi_res_id:/subscriptions/…
//! retry_div=1 timeout_ms=5000
//! ```
//!
//! Words are separated by spaces; unknown words are ignored (QEMU may add its own). `endpoint`
//! is `imds` (169.254.169.254:80, as on Azure) or `http://<ipv4>[:port][/path]`. Requests run in
//! the order given.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::net::IpConfig;

/// Most requests on one command line.
pub const MAX_REQUESTS: usize = 16;

/// Which identity a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick<'a> {
    /// No selector: the VM's default (system-assigned) identity.
    System,
    /// `client_id=`.
    ClientId(&'a str),
    /// `object_id=`.
    ObjectId(&'a str),
    /// `msi_res_id=`.
    MsiResId(&'a str),
}

/// Everything the command line says.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// Guest address and gateway.
    pub ip: IpConfig,
    /// `imds` or an `http://` URL.
    pub endpoint: &'a str,
    /// The resource every request asks for.
    pub resource: &'a str,
    /// The requests, in order.
    pub requests: [Option<Pick<'a>>; MAX_REQUESTS],
    /// Divides every time of mitoken-core's IMDS retry policy (1: as on Azure; the simulation
    /// uses a larger value so a retried 410 takes milliseconds, not 10 s).
    pub retry_div: u64,
    /// Deadline for one attempt (connect, send, receive).
    pub timeout_ms: u64,
}

/// A word the guest could not use.
#[derive(Debug, Clone, Copy)]
pub struct BadWord<'a>(pub &'a str);

fn parse_ipv4(s: &str) -> Option<Ipv4Address> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        *o = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Address::from(octets))
}

/// Parses an IPv4 address for connecting (`endpoint` hosts must be literals: no DNS here).
pub fn ipv4(s: &str) -> Option<Ipv4Address> {
    parse_ipv4(s)
}

impl<'a> Settings<'a> {
    /// Parses the command line.
    pub fn parse(line: &'a str) -> Result<Self, BadWord<'a>> {
        let mut s = Settings {
            ip: IpConfig {
                addr: Ipv4Cidr::new(Ipv4Address::new(169, 254, 169, 15), 24),
                gateway: Ipv4Address::new(169, 254, 169, 2),
            },
            endpoint: "imds",
            resource: "https://management.azure.com/",
            requests: [None; MAX_REQUESTS],
            retry_div: 1,
            timeout_ms: 5000,
        };
        let mut n = 0;
        for word in line.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let bad = BadWord(word);
            match key {
                "ip" => {
                    let (a, p) = value.split_once('/').ok_or(bad)?;
                    let addr = parse_ipv4(a).ok_or(bad)?;
                    let prefix: u8 = p.parse().map_err(|_| bad)?;
                    if prefix > 32 {
                        return Err(bad);
                    }
                    s.ip.addr = Ipv4Cidr::new(addr, prefix);
                }
                "gw" => s.ip.gateway = parse_ipv4(value).ok_or(bad)?,
                "endpoint" => s.endpoint = value,
                "resource" => s.resource = value,
                "retry_div" => {
                    s.retry_div = value.parse().map_err(|_| bad)?;
                    if s.retry_div == 0 {
                        return Err(bad);
                    }
                }
                "timeout_ms" => s.timeout_ms = value.parse().map_err(|_| bad)?,
                "req" => {
                    let pick = match value.split_once(':') {
                        None if value == "system" => Pick::System,
                        Some(("client_id", v)) => Pick::ClientId(v),
                        Some(("object_id", v)) => Pick::ObjectId(v),
                        Some(("msi_res_id", v)) => Pick::MsiResId(v),
                        _ => return Err(bad),
                    };
                    *s.requests.get_mut(n).ok_or(bad)? = Some(pick);
                    n += 1;
                }
                _ => {}
            }
        }
        Ok(s)
    }
}
