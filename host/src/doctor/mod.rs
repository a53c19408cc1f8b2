//! `mitoken doctor`: why this machine can or cannot get managed-identity tokens, each check
//! with a verdict and what to do.
//!
//! - [`imds`]: route to 169.254.169.254, TCP connect, an answer in IMDS's shape, a token for
//!   the default identity and each selector given (claims summarised, never the token), and
//!   the clock against the token service's.
//! - [`environment`]: proxy variables that would send SDK traffic for IMDS through a proxy.
//! - [`legacy`]: the retired VM extension: who listens on 127.0.0.1:50342, its files on disk,
//!   and the running bridge's migration report.
//!
//! What an answer means (IMDS's shape or not, which IMDS error, clock verdicts) is decided by
//! [`mitoken_core::diagnose`]; this module gathers the facts (sockets, environment, `/proc`)
//! and words the verdicts. Exit code: 0 all checks ok, 1 a warning, 2 a failure. `--json`
//! prints `{"checks":[{"id","status","detail","fix"}]}` (see `docs/operations.md`).

pub mod claims;
pub mod environment;
pub mod imds;
pub mod legacy;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

/// Arguments of `mitoken doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The resource to ask a test token for.
    #[arg(
        long,
        short = 'r',
        value_name = "URI",
        default_value = "https://management.azure.com/"
    )]
    pub resource: String,
    /// Also check a user-assigned identity by client id (repeatable).
    #[arg(long, value_name = "GUID")]
    pub client_id: Vec<String>,
    /// Also check a user-assigned identity by object id (repeatable).
    #[arg(long, value_name = "GUID")]
    pub object_id: Vec<String>,
    /// Also check a user-assigned identity by ARM resource id (repeatable).
    #[arg(long, value_name = "ARM_ID")]
    pub resource_id: Vec<String>,
    /// Print `{"checks":[{"id","status","detail","fix"}]}` instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time allowed for each connection and answer.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// The bridge's status socket (default: /run/mitoken-bridge/status.sock, the service's).
    #[arg(long, value_name = "PATH")]
    pub bridge_socket: Option<PathBuf>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 600.0 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!("`{s}`: expected a number of seconds in (0, 600]")),
    }
}

/// Widest id column in the text form.
const MAX_ID_COLUMN: usize = 16;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works now, but something will or may break.
    Warn,
    /// Broken.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `imds.connect`, `token.client_id`.
    pub id: String,
    /// The verdict.
    pub status: Status,
    /// What was found (never a token).
    pub detail: String,
    /// What to do about it (`None` when nothing needs doing).
    pub fix: Option<String>,
}

impl Check {
    /// A check with no fix.
    pub fn ok(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check with a verdict and a fix.
    pub fn with_fix(
        id: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Everything `mitoken doctor` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst verdict (`Ok` for no checks).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// The process exit code: 0 all ok, 1 warnings, 2 failures.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        }
    }

    /// The text form: one line per check, its fix indented below, and a verdict line.
    pub fn text(&self) -> String {
        // Ids longer than this (selector checks) push their detail right.
        let width = self
            .checks
            .iter()
            .map(|c| c.id.len())
            .max()
            .unwrap_or(0)
            .min(MAX_ID_COLUMN);
        let mut out = String::new();
        for c in &self.checks {
            let label = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            let _ = writeln!(out, "{label}  {:width$}  {}", c.id, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "      {:width$}  fix: {fix}", "");
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let _ = writeln!(
            out,
            "verdict: {} ({} ok, {} warning(s), {} failure(s))",
            match self.worst() {
                Status::Ok => "all good",
                Status::Warn => "works, with warnings",
                Status::Fail => "problems found",
            },
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        );
        out
    }
}

/// Runs every check and prints the report; returns the exit code.
pub async fn run(args: DoctorArgs) -> u8 {
    let mut report = Report::default();
    report
        .checks
        .extend(environment::proxy_checks(|name| std::env::var(name).ok()));
    report.checks.extend(imds::checks(&args).await);
    report
        .checks
        .extend(legacy::checks(args.timeout, args.bridge_socket.as_deref()).await);
    let text = if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".to_owned()) + "\n"
    } else {
        report.text()
    };
    print!("{text}");
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_worst_check() {
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        r.checks.push(Check::ok("a", "fine"));
        assert_eq!(r.exit_code(), 0);
        r.checks
            .push(Check::with_fix("b", Status::Warn, "meh", "do x"));
        assert_eq!(r.exit_code(), 1);
        r.checks
            .push(Check::with_fix("c", Status::Fail, "broken", "do y"));
        assert_eq!(r.exit_code(), 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][0]["status"], "ok");
        assert_eq!(json["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(json["checks"][2]["status"], "fail");
        assert!(r.text().contains("FAIL  c  broken"));
    }
}
