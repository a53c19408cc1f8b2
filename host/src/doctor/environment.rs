//! Proxy variables: the Azure SDKs' HTTP stacks honour `HTTP_PROXY` / `HTTPS_PROXY` /
//! `ALL_PROXY` (and lower-case spellings) unless `NO_PROXY` exempts the host, so a proxy set
//! for the internet also receives requests for IMDS, which IMDS refuses to serve through a
//! proxy (and a proxy cannot reach 169.254.169.254 anyway). `mitoken` itself never uses a
//! proxy.

use std::net::Ipv4Addr;

use super::{Check, Status};

/// IMDS's address.
const IMDS_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The proxy variables SDK HTTP stacks read, in the order reported.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// True when one `NO_PROXY` entry exempts 169.254.169.254: `*`, the address itself (with or
/// without a port or leading dot), or a CIDR block containing it.
fn entry_exempts_imds(entry: &str) -> bool {
    let entry = entry.trim().trim_start_matches('.');
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
            return false;
        };
        if bits > 32 {
            return false;
        }
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        return u32::from(net) & mask == u32::from(IMDS_IP) & mask;
    }
    let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip == IMDS_IP)
}

/// True when a `NO_PROXY` value exempts IMDS.
pub fn no_proxy_exempts_imds(value: &str) -> bool {
    value.split(',').any(entry_exempts_imds)
}

/// The proxy check, reading variables through `var` (the process environment in production).
pub fn proxy_checks(var: impl Fn(&str) -> Option<String>) -> Vec<Check> {
    let set: Vec<&str> = PROXY_VARS
        .iter()
        .copied()
        .filter(|name| var(name).is_some_and(|v| !v.trim().is_empty()))
        .collect();
    if set.is_empty() {
        return vec![Check::ok(
            "env.proxy",
            "no proxy variable is set; SDKs reach IMDS directly",
        )];
    }
    let no_proxy = ["NO_PROXY", "no_proxy"]
        .iter()
        .find_map(|n| var(n).filter(|v| !v.trim().is_empty()));
    let names = set.join(", ");
    match no_proxy {
        Some(v) if no_proxy_exempts_imds(&v) => vec![Check::ok(
            "env.proxy",
            format!("{names} set; NO_PROXY exempts 169.254.169.254"),
        )],
        other => vec![Check::with_fix(
            "env.proxy",
            Status::Warn,
            format!(
                "{names} set and {}: SDKs would send IMDS requests through the proxy, which \
                 fails or times out (mitoken itself never uses a proxy)",
                if other.is_some() {
                    "NO_PROXY does not list 169.254.169.254"
                } else {
                    "NO_PROXY is not set"
                }
            ),
            "add 169.254.169.254 to NO_PROXY (and no_proxy) for the application's environment",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_forms() {
        for yes in [
            "169.254.169.254",
            "localhost,169.254.169.254",
            " .169.254.169.254",
            "169.254.169.254:80",
            "169.254.0.0/16",
            "0.0.0.0/0",
            "*",
        ] {
            assert!(no_proxy_exempts_imds(yes), "{yes}");
        }
        for no in [
            "",
            "localhost,127.0.0.1",
            "169.254.169.0/30",
            "10.0.0.0/8",
            "bad/99",
        ] {
            assert!(!no_proxy_exempts_imds(no), "{no}");
        }
    }

    #[test]
    fn verdicts() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(proxy_checks(env(&[]))[0].status, Status::Ok);
        let warn = &proxy_checks(env(&[("https_proxy", "http://proxy:3128")]))[0];
        assert_eq!(warn.status, Status::Warn);
        assert!(
            warn.detail.starts_with("https_proxy set"),
            "{}",
            warn.detail
        );
        let exempt = proxy_checks(env(&[
            ("HTTP_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "localhost,169.254.169.254"),
        ]));
        assert_eq!(exempt[0].status, Status::Ok);
    }
}
