//! Fault injection: rules such as "answer the next 3 requests with 410", "10 % of requests get
//! 500", "delay every answer 200 ms", set from the command line (`--fault SPEC`, see
//! [`FaultRule`]'s `FromStr`) and replaced at run time from a JSON admin document
//! ([`FaultDocument`]).
//!
//! Evaluation, per request, in rule order: a rule applies when its `path` prefix and `identity`
//! match and its `percent` draw succeeds; an applying rule uses up one of its `count` (a rule
//! whose count reaches 0 is removed), adds its `delay_ms` and `skew_secs`, and, if it has a
//! `status` or `close`,
//! decides the answer and ends the evaluation. Randomness comes in as one `u32` per request, so a
//! seeded source makes runs reproducible.

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Guid;

/// The longest delay a rule may add (ten minutes).
pub const MAX_DELAY_MS: u64 = 600_000;
/// The largest clock skew a rule may set, either way (one day).
pub const MAX_SKEW_SECS: i64 = 86_400;

/// One fault rule. In JSON every field is optional, e.g.
/// `{"status": 410, "count": 3}`, `{"status": 500, "percent": 10}`, `{"delay_ms": 200}`,
/// `{"path": "/metadata/identity", "identity": "<client-id>", "close": true, "count": 1}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests whose path starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only requests resolved to the identity with this client ID.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::config::guid_serde::option"
    )]
    pub identity: Option<Guid>,
    /// Answer with this status (400–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body's `error`; defaults by status (see [`FaultResponse::for_status`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The body's `error_description`; defaults by status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// A `Retry-After` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// Close the connection without answering.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub close: bool,
    /// Delay the answer (whatever it is) by this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Skew the token issuer's clock: tokens are minted as if it were this many seconds later
    /// (negative: earlier), so their `iat`, `nbf` and `exp` (`expires_on`) are off by that much
    /// from the client's clock; `expires_in` stays the emulator's own count from its real
    /// clock. Skewed tokens bypass the emulator's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_secs: Option<i64>,
    /// Apply to this percentage of matching requests (0–100); absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Apply this many more times, then disappear; absent: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// What is wrong with a rule.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultRuleProblem {
    /// The rule neither answers, closes, delays nor skews.
    #[error("the rule does nothing: give status, close, delay_ms or skew_secs")]
    NoEffect,
    /// Both `status` and `close`.
    #[error("status and close exclude each other")]
    StatusAndClose,
    /// A status outside 400–599.
    #[error("status {0} is not an error status (400-599)")]
    Status(u16),
    /// A percentage outside 0–100.
    #[error("percent {0} is outside 0-100")]
    Percent(f64),
    /// A delay over [`MAX_DELAY_MS`].
    #[error("delay of {0} ms is longer than the 600000 ms limit")]
    Delay(u64),
    /// A skew over [`MAX_SKEW_SECS`] either way.
    #[error("clock skew of {0} s is beyond the 86400 s limit")]
    Skew(i64),
    /// `count` = 0.
    #[error("count must be at least 1")]
    ZeroCount,
    /// `error`, `error_description` or `path` contains a control character or a `"`/`\\` would
    /// have to be escaped in a header (control characters only are refused).
    #[error("error, error_description and path must not contain control characters")]
    ControlCharacter,
}

impl FaultRule {
    /// Checks the rule's values.
    pub fn validate(&self) -> Result<(), FaultRuleProblem> {
        if self.status.is_none()
            && !self.close
            && self.delay_ms.is_none()
            && self.skew_secs.is_none()
        {
            return Err(FaultRuleProblem::NoEffect);
        }
        if self.status.is_some() && self.close {
            return Err(FaultRuleProblem::StatusAndClose);
        }
        if let Some(s) = self.status
            && !(400..=599).contains(&s)
        {
            return Err(FaultRuleProblem::Status(s));
        }
        if let Some(p) = self.percent
            && !(0.0..=100.0).contains(&p)
        {
            return Err(FaultRuleProblem::Percent(p));
        }
        if let Some(d) = self.delay_ms
            && d > MAX_DELAY_MS
        {
            return Err(FaultRuleProblem::Delay(d));
        }
        if let Some(s) = self.skew_secs
            && !(-MAX_SKEW_SECS..=MAX_SKEW_SECS).contains(&s)
        {
            return Err(FaultRuleProblem::Skew(s));
        }
        if self.count == Some(0) {
            return Err(FaultRuleProblem::ZeroCount);
        }
        let texts = [&self.error, &self.error_description, &self.path];
        if texts
            .iter()
            .filter_map(|t| t.as_deref())
            .any(|t| t.chars().any(char::is_control))
        {
            return Err(FaultRuleProblem::ControlCharacter);
        }
        Ok(())
    }

    fn matches(&self, request: &FaultRequest<'_>) -> bool {
        self.path
            .as_deref()
            .is_none_or(|p| request.path.starts_with(p))
            && self.identity.is_none_or(|id| request.identity == Some(id))
    }

    fn draw(&self, random: u32) -> bool {
        match self.percent {
            None => true,
            // `random` is uniform over 0..2^32; compare against the percentage of that range.
            Some(p) => f64::from(random) < p / 100.0 * 4_294_967_296.0,
        }
    }
}

/// The rule keys that take a value (`close` is the one that needs none), with their aliases.
const VALUE_KEYS: [&str; 11] = [
    "status",
    "count",
    "percent",
    "delay",
    "delay_ms",
    "retry_after",
    "identity",
    "path",
    "error",
    "description",
    "error_description",
];

/// A `--fault` value that could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultSpecError {
    /// A key other than `status`, `count`, `percent`, `delay`, `skew`, `path`, `identity`,
    /// `error`, `description`, `retry_after`, `close`.
    #[error(
        "unknown key `{0}` (expected status, count, percent, delay, skew, path, identity, error, description, retry_after, close)"
    )]
    UnknownKey(String),
    /// A key that needs a value had none.
    #[error("`{0}` needs a value (`{0}=…`)")]
    MissingValue(String),
    /// A value that could not be read.
    #[error("bad value `{value}` for `{key}`")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The rule was read but is not valid.
    #[error(transparent)]
    Invalid(#[from] FaultRuleProblem),
}

impl FromStr for FaultRule {
    type Err = FaultSpecError;

    /// Reads a comma-separated `key=value` list, e.g. `status=410,count=3`,
    /// `status=500,percent=10%`, `delay=200ms`, `close,count=1,path=/metadata`, `skew=600`.
    /// `delay` takes `ms` (default) or `s`; `skew` takes seconds (`s` optional, may be
    /// negative); `percent` may end with `%`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn num<T: FromStr>(key: &str, value: &str) -> Result<T, FaultSpecError> {
            value.parse().map_err(|_| FaultSpecError::BadValue {
                key: key.to_owned(),
                value: value.to_owned(),
            })
        }
        let mut rule = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            if key == "close" {
                rule.close = match value {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => return Err(num::<bool>(key, v).unwrap_err()),
                };
                continue;
            }
            let Some(value) = value else {
                // `bogus` alone is an unknown key, not a known one missing its value.
                return Err(if VALUE_KEYS.contains(&key) {
                    FaultSpecError::MissingValue(key.to_owned())
                } else {
                    FaultSpecError::UnknownKey(key.to_owned())
                });
            };
            match key {
                "status" => rule.status = Some(num(key, value)?),
                "count" => rule.count = Some(num(key, value)?),
                "percent" => rule.percent = Some(num(key, value.trim_end_matches('%'))?),
                "delay" | "delay_ms" => {
                    let ms = if let Some(ms) = value.strip_suffix("ms") {
                        num::<u64>(key, ms)?
                    } else if let Some(secs) = value.strip_suffix('s') {
                        num::<u64>(key, secs)?.saturating_mul(1000)
                    } else {
                        num::<u64>(key, value)?
                    };
                    rule.delay_ms = Some(ms);
                }
                "skew" | "skew_secs" => {
                    rule.skew_secs = Some(num(key, value.strip_suffix('s').unwrap_or(value))?);
                }
                "retry_after" => rule.retry_after = Some(num(key, value)?),
                "identity" => rule.identity = Some(num(key, value)?),
                "path" => rule.path = Some(value.to_owned()),
                "error" => rule.error = Some(value.to_owned()),
                "description" | "error_description" => {
                    rule.error_description = Some(value.to_owned());
                }
                other => return Err(FaultSpecError::UnknownKey(other.to_owned())),
            }
        }
        rule.validate()?;
        Ok(rule)
    }
}

/// The request a decision is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRequest<'a> {
    /// The request path, without the query.
    pub path: &'a str,
    /// The client ID of the identity the request resolved to, if it did.
    pub identity: Option<Guid>,
}

/// An error answer chosen by a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultResponse {
    /// HTTP status.
    pub status: u16,
    /// The body's `error`.
    pub error: String,
    /// The body's `error_description`.
    pub error_description: String,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u32>,
}

impl FaultResponse {
    /// The answer IMDS gives with `status` (docs/protocol.md §1.9), without `Retry-After`.
    pub fn for_status(status: u16) -> Self {
        let entry = mitoken_core::catalogue::for_status(status);
        Self {
            status,
            error: entry.error.to_owned(),
            error_description: entry.description.to_owned(),
            retry_after: None,
        }
    }
}

/// What to do with a request besides (or instead of) serving it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Serve it normally.
    Pass,
    /// Answer with this error instead.
    Respond(FaultResponse),
    /// Close the connection without answering.
    Close,
}

/// The decision for one request: wait `delay`, then do `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultDecision {
    /// How long to wait before answering (zero: no delay).
    pub delay: Duration,
    /// Seconds to add to the clock tokens are minted with (zero: none).
    pub skew_secs: i64,
    /// What to answer.
    pub action: FaultAction,
}

impl FaultDecision {
    /// No delay, serve normally.
    pub const PASS: Self = Self {
        delay: Duration::ZERO,
        skew_secs: 0,
        action: FaultAction::Pass,
    };
}

/// The admin document: the whole rule list, as read (`GET`) and replaced (`PUT`). Counts are the
/// remaining ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDocument {
    /// The rules, in evaluation order.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// A rule list that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultDocumentError {
    /// The JSON does not have the document's shape.
    #[error("invalid fault document: {0}")]
    Json(#[from] serde_json::Error),
    /// A rule is invalid.
    #[error("rules[{index}]: {problem}")]
    Rule {
        /// Its position.
        index: usize,
        /// What is wrong.
        problem: FaultRuleProblem,
    },
}

/// The active fault rules. Not synchronised: the glue keeps it in a `Mutex`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// A plan with these rules, validated.
    pub fn new(rules: Vec<FaultRule>) -> Result<Self, FaultDocumentError> {
        let mut plan = Self::default();
        plan.replace(FaultDocument { rules })?;
        Ok(plan)
    }

    /// Decides what happens to `request`; `random` is one uniformly random `u32` for this
    /// request. Updates the rules' remaining counts.
    #[must_use]
    pub fn decide(&mut self, request: &FaultRequest<'_>, random: u32) -> FaultDecision {
        self.decide_among(request, random, |_| true)
    }

    /// Like [`FaultPlan::decide`], over only the rules `select` picks; the others are skipped
    /// and keep their counts. The emulator decides rules without an `identity` when a request
    /// arrives, and rules with one once the request has resolved to an identity.
    #[must_use]
    pub fn decide_among(
        &mut self,
        request: &FaultRequest<'_>,
        random: u32,
        select: impl Fn(&FaultRule) -> bool,
    ) -> FaultDecision {
        let mut decision = FaultDecision::PASS;
        let mut index = 0;
        while index < self.rules.len() {
            let rule = &mut self.rules[index];
            if !select(rule) || !rule.matches(request) || !rule.draw(mix(random, index)) {
                index += 1;
                continue;
            }
            if let Some(ms) = rule.delay_ms {
                decision.delay += Duration::from_millis(ms);
            }
            if let Some(secs) = rule.skew_secs {
                decision.skew_secs = decision.skew_secs.saturating_add(secs);
            }
            if let Some(status) = rule.status {
                let mut response = FaultResponse::for_status(status);
                if let Some(e) = &rule.error {
                    response.error.clone_from(e);
                }
                if let Some(d) = &rule.error_description {
                    response.error_description.clone_from(d);
                }
                response.retry_after = rule.retry_after;
                decision.action = FaultAction::Respond(response);
            } else if rule.close {
                decision.action = FaultAction::Close;
            }
            let decided = decision.action != FaultAction::Pass;
            let exhausted = rule.count.as_mut().is_some_and(|count| {
                *count -= 1;
                *count == 0
            });
            if exhausted {
                self.rules.remove(index);
            } else {
                index += 1;
            }
            if decided {
                break;
            }
        }
        decision
    }

    /// Replaces all rules (admin `PUT`); on error nothing changes.
    pub fn replace(&mut self, document: FaultDocument) -> Result<(), FaultDocumentError> {
        for (index, rule) in document.rules.iter().enumerate() {
            rule.validate()
                .map_err(|problem| FaultDocumentError::Rule { index, problem })?;
        }
        self.rules = document.rules;
        Ok(())
    }

    /// Replaces all rules from a JSON [`FaultDocument`]; on error nothing changes.
    pub fn replace_json(&mut self, json: &[u8]) -> Result<(), FaultDocumentError> {
        self.replace(serde_json::from_slice(json)?)
    }

    /// Appends a rule (admin `POST`, `--fault`).
    pub fn push(&mut self, rule: FaultRule) -> Result<(), FaultRuleProblem> {
        rule.validate()?;
        self.rules.push(rule);
        Ok(())
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The current rules with their remaining counts (admin `GET`).
    pub fn document(&self) -> FaultDocument {
        FaultDocument {
            rules: self.rules.clone(),
        }
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl fmt::Display for FaultPlan {
    /// The rules as one JSON line, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(&self.document()).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// Derives an independent-looking 32-bit draw per rule from the request's one random value
/// (the `SplitMix64` finaliser).
fn mix(random: u32, index: usize) -> u32 {
    let mut z = (u64::from(random) << 32 | (index as u64 & 0xffff_ffff))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    // The high half of the 64-bit result; truncation is the point.
    #[allow(clippy::cast_possible_truncation)]
    let high = (z ^ (z >> 31)) >> 32;
    high as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_rules_add_up_and_do_not_decide_the_answer() {
        let rule: FaultRule = "skew=600s".parse().unwrap();
        assert_eq!(rule.skew_secs, Some(600));
        let behind: FaultRule = "skew=-30,count=1".parse().unwrap();
        let mut plan = FaultPlan::new(vec![rule, behind]).unwrap();
        let first = plan.decide(&req(), 0);
        assert_eq!((first.skew_secs, first.action), (570, FaultAction::Pass));
        assert_eq!(plan.decide(&req(), 0).skew_secs, 600);
        assert_eq!(
            "skew=86401".parse::<FaultRule>(),
            Err(FaultSpecError::Invalid(FaultRuleProblem::Skew(86_401)))
        );
    }

    const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

    fn req() -> FaultRequest<'static> {
        FaultRequest {
            path: TOKEN_PATH,
            identity: None,
        }
    }

    /// A seeded xorshift source for reproducible draws.
    struct Seeded(u64);
    impl Seeded {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 32) as u32
        }
    }

    fn status_of(d: &FaultDecision) -> Option<u16> {
        match &d.action {
            FaultAction::Respond(r) => Some(r.status),
            _ => None,
        }
    }

    #[test]
    fn next_n_then_pass() {
        let mut plan = FaultPlan::new(vec!["status=410,count=3".parse().unwrap()]).unwrap();
        let got: Vec<_> = (0..5).map(|_| status_of(&plan.decide(&req(), 0))).collect();
        assert_eq!(got, [Some(410), Some(410), Some(410), None, None]);
        assert!(plan.is_empty());
    }

    #[test]
    fn percentage_with_seeded_source() {
        let mut plan = FaultPlan::new(vec!["status=500,percent=10%".parse().unwrap()]).unwrap();
        let mut rng = Seeded(0x5eed_1234_abcd_0001);
        let n = 10_000;
        let hits = (0..n)
            .filter(|_| status_of(&plan.decide(&req(), rng.next())) == Some(500))
            .count();
        assert!((850..=1150).contains(&hits), "{hits} of {n}");
        // Same seed, same outcome.
        let mut again = FaultPlan::new(vec!["status=500,percent=10".parse().unwrap()]).unwrap();
        let mut rng = Seeded(0x5eed_1234_abcd_0001);
        let hits_again = (0..n)
            .filter(|_| status_of(&again.decide(&req(), rng.next())) == Some(500))
            .count();
        assert_eq!(hits, hits_again);
        // 0 % never, 100 % always.
        let mut never = FaultPlan::new(vec!["status=500,percent=0".parse().unwrap()]).unwrap();
        let mut always = FaultPlan::new(vec!["status=500,percent=100".parse().unwrap()]).unwrap();
        for r in [0, 1, u32::MAX / 2, u32::MAX] {
            assert_eq!(never.decide(&req(), r), FaultDecision::PASS);
            assert_eq!(status_of(&always.decide(&req(), r)), Some(500));
        }
    }

    #[test]
    fn delay_adds_up_and_combines_with_status() {
        let mut plan = FaultPlan::new(vec![
            "delay=200ms".parse().unwrap(),
            "delay=1s,count=1".parse().unwrap(),
            "status=503,retry_after=7,count=1".parse().unwrap(),
        ])
        .unwrap();
        let first = plan.decide(&req(), 0);
        assert_eq!(first.delay, Duration::from_millis(1200));
        let FaultAction::Respond(resp) = first.action else {
            panic!("expected a response");
        };
        assert_eq!(
            resp,
            FaultResponse {
                status: 503,
                error: "service_unavailable".into(),
                error_description: "Service unavailable".into(),
                retry_after: Some(7),
            }
        );
        let second = plan.decide(&req(), 0);
        assert_eq!(
            second,
            FaultDecision {
                delay: Duration::from_millis(200),
                skew_secs: 0,
                action: FaultAction::Pass
            }
        );
        assert_eq!(plan.document().rules.len(), 1);
    }

    #[test]
    fn first_deciding_rule_wins_and_later_counts_are_untouched() {
        let mut plan = FaultPlan::new(vec![
            "status=410,count=1".parse().unwrap(),
            "status=500,count=1".parse().unwrap(),
        ])
        .unwrap();
        assert_eq!(status_of(&plan.decide(&req(), 0)), Some(410));
        assert_eq!(status_of(&plan.decide(&req(), 0)), Some(500));
        assert_eq!(plan.decide(&req(), 0), FaultDecision::PASS);
    }

    #[test]
    fn path_and_identity_filters() {
        let id: Guid = "20000000-0000-4000-8000-000000000002".parse().unwrap();
        let mut plan = FaultPlan::new(vec![
            format!("status=404,identity={id}").parse().unwrap(),
            "close,path=/admin".parse().unwrap(),
        ])
        .unwrap();
        assert_eq!(plan.decide(&req(), 0), FaultDecision::PASS);
        let for_id = FaultRequest {
            identity: Some(id),
            ..req()
        };
        assert_eq!(status_of(&plan.decide(&for_id, 0)), Some(404));
        let admin = FaultRequest {
            path: "/admin/counters",
            identity: None,
        };
        assert_eq!(plan.decide(&admin, 0).action, FaultAction::Close);
    }

    #[test]
    fn admin_json_round_trip_and_validation() {
        let mut plan = FaultPlan::default();
        plan.replace_json(
            br#"{"rules":[{"status":429,"count":2,"retry_after":3,"error_description":"slow down"},{"delay_ms":50}]}"#,
        )
        .unwrap();
        let d = plan.decide(&req(), 0);
        let FaultAction::Respond(r) = &d.action else {
            panic!()
        };
        assert_eq!(
            (
                r.status,
                r.error.as_str(),
                r.error_description.as_str(),
                r.retry_after
            ),
            (429, "too_many_requests", "slow down", Some(3))
        );
        let json = serde_json::to_value(plan.document()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"rules":[
                {"status":429,"count":1,"retry_after":3,"error_description":"slow down"},
                {"delay_ms":50}
            ]})
        );

        let before = plan.document();
        for (bad, index, problem) in [
            (
                r#"{"rules":[{"delay_ms":1},{"status":200}]}"#,
                1,
                FaultRuleProblem::Status(200),
            ),
            (r#"{"rules":[{"count":2}]}"#, 0, FaultRuleProblem::NoEffect),
            (
                r#"{"rules":[{"status":500,"percent":101}]}"#,
                0,
                FaultRuleProblem::Percent(101.0),
            ),
            (
                r#"{"rules":[{"status":500,"close":true}]}"#,
                0,
                FaultRuleProblem::StatusAndClose,
            ),
            (
                r#"{"rules":[{"status":500,"count":0}]}"#,
                0,
                FaultRuleProblem::ZeroCount,
            ),
            (
                r#"{"rules":[{"delay_ms":600001}]}"#,
                0,
                FaultRuleProblem::Delay(600_001),
            ),
            (
                r#"{"rules":[{"status":500,"error":"a\nb"}]}"#,
                0,
                FaultRuleProblem::ControlCharacter,
            ),
        ] {
            match plan.replace_json(bad.as_bytes()) {
                Err(FaultDocumentError::Rule {
                    index: i,
                    problem: p,
                }) => {
                    assert_eq!((i, p), (index, problem), "{bad}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in [
            r#"{"rulez":[]}"#,
            r#"{"rules":[{"statsu":500}]}"#,
            "nope",
            r#"{"rules":[{"identity":"x","status":500}]}"#,
        ] {
            assert!(
                matches!(
                    plan.replace_json(bad.as_bytes()),
                    Err(FaultDocumentError::Json(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(plan.document(), before);
        plan.clear();
        assert!(plan.is_empty());
        plan.replace_json(b"{}").unwrap();
        assert_eq!(plan.to_string(), r#"{"rules":[]}"#);
    }

    #[test]
    fn spec_parsing_errors() {
        assert_eq!(
            "statux=500".parse::<FaultRule>(),
            Err(FaultSpecError::UnknownKey("statux".into()))
        );
        assert_eq!(
            "status".parse::<FaultRule>(),
            Err(FaultSpecError::MissingValue("status".into()))
        );
        assert!(matches!(
            "status=abc".parse::<FaultRule>(),
            Err(FaultSpecError::BadValue { .. })
        ));
        assert_eq!(
            "count=3".parse::<FaultRule>(),
            Err(FaultSpecError::Invalid(FaultRuleProblem::NoEffect))
        );
        let r: FaultRule =
            "status=500, error=unknown, description=Failed to retrieve token, count=2"
                .parse()
                .unwrap();
        assert_eq!(r.error.as_deref(), Some("unknown"));
        assert_eq!(
            r.error_description.as_deref(),
            Some("Failed to retrieve token")
        );
        assert_eq!(r.count, Some(2));
    }

    #[test]
    fn default_bodies_follow_the_catalogue() {
        assert_eq!(FaultResponse::for_status(404).error, "not_found");
        assert_eq!(FaultResponse::for_status(429).error, "too_many_requests");
        assert_eq!(FaultResponse::for_status(500).error, "server_error");
        assert_eq!(FaultResponse::for_status(502).error, "server_error");
        assert_eq!(FaultResponse::for_status(418).error, "invalid_request");
    }
}
