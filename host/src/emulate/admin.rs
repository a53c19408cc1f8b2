//! The admin path: the emulator's run-time controls as a pure function from (method, path, body)
//! to a JSON answer, so the glue only routes requests whose path starts with [`ADMIN_PREFIX`]
//! here. Everything is JSON; errors use the IMDS error shape `{"error", "error_description"}`.
//!
//! | method | path | effect |
//! |---|---|---|
//! | `GET` | `/mitoken/admin/faults` | the rules with remaining counts ([`FaultDocument`]) |
//! | `PUT` | `/mitoken/admin/faults` | replace all rules with the body's [`FaultDocument`] |
//! | `POST` | `/mitoken/admin/faults` | append the body's [`FaultRule`] |
//! | `DELETE` | `/mitoken/admin/faults` | remove every rule |
//! | `GET` | `/mitoken/admin/counters` | the counters ([`CountersSnapshot`]) |
//! | `DELETE` | `/mitoken/admin/counters` | the counters, then zero them |
//! | `GET` | `/mitoken/admin/throttle` | [`ThrottleDocument`] |
//! | `PUT` | `/mitoken/admin/throttle` | enable/disable, change limits ([`ThrottleDocument`]) |
//! | `DELETE` | `/mitoken/admin/cache` | forget every cached token |
//!
//! The admin path is not part of IMDS; it is as open as the listener (loopback by default).

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::cache::TokenCache;
use super::counters::Counters;
use super::faults::{FaultDocument, FaultPlan, FaultRule};
use super::throttle::{Throttle, ThrottleLimits};

/// Every admin path starts with this.
pub const ADMIN_PREFIX: &str = "/mitoken/admin/";

/// The throttle's admin document. In a `PUT`, absent limits keep their current values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleDocument {
    /// Whether requests are throttled.
    pub enabled: bool,
    /// Sustained requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Burst size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Concurrent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Requests holding a permit now (read-only; ignored in a `PUT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u32>,
}

/// An admin answer: a status and a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// For `405`: the `Allow` header value.
    pub allow: Option<&'static str>,
}

impl AdminResponse {
    fn ok<T: Serialize>(value: &T) -> Self {
        Self {
            status: 200,
            body: serde_json::to_string(value).unwrap_or_default(),
            allow: None,
        }
    }

    fn error(status: u16, error: &str, description: &str) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": error, "error_description": description })
                .to_string(),
            allow: None,
        }
    }
}

/// The state the admin path controls and the request path reads. Share it in an `Arc`.
#[derive(Debug)]
pub struct EmulatorControls {
    /// Fault rules, consulted for every request.
    pub faults: Mutex<FaultPlan>,
    /// Request counters.
    pub counters: Counters,
    /// The token cache.
    pub cache: Arc<TokenCache>,
    throttle: Mutex<(bool, Throttle)>,
}

impl EmulatorControls {
    /// Controls with these initial rules, throttle setting and cache.
    pub fn new(
        faults: FaultPlan,
        throttle: Option<ThrottleLimits>,
        cache: Arc<TokenCache>,
    ) -> Self {
        Self {
            faults: Mutex::new(faults),
            counters: Counters::new(),
            cache,
            throttle: Mutex::new((
                throttle.is_some(),
                Throttle::new(throttle.unwrap_or_default()),
            )),
        }
    }

    /// The throttle to consult for a request, if throttling is on. Permits taken from it stay
    /// valid when the limits change.
    pub fn throttle(&self) -> Option<Throttle> {
        let guard = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0.then(|| guard.1.clone())
    }

    fn throttle_document(&self) -> ThrottleDocument {
        let guard = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        let limits = guard.1.limits();
        ThrottleDocument {
            enabled: guard.0,
            requests_per_second: Some(limits.requests_per_second),
            burst: Some(limits.burst),
            max_concurrent: Some(limits.max_concurrent),
            in_flight: Some(guard.1.in_flight()),
        }
    }

    /// Answers an admin request, or `None` when `path` is not under [`ADMIN_PREFIX`]. `path`
    /// excludes the query string.
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> Option<AdminResponse> {
        let name = path.strip_prefix(ADMIN_PREFIX)?;
        let bad = |e: &dyn core::fmt::Display| {
            AdminResponse::error(400, "invalid_request", &e.to_string())
        };
        let not_allowed = |allow| AdminResponse {
            allow: Some(allow),
            ..AdminResponse::error(405, "method_not_allowed", "Not allowed")
        };
        let response = match (name, method) {
            ("faults", "GET") => AdminResponse::ok(&self.faults().document()),
            ("faults", "PUT") => {
                let mut faults = self.faults();
                match faults.replace_json(body) {
                    Ok(()) => AdminResponse::ok(&faults.document()),
                    Err(e) => bad(&e),
                }
            }
            ("faults", "POST") => match serde_json::from_slice::<FaultRule>(body) {
                Err(e) => bad(&e),
                Ok(rule) => {
                    let mut faults = self.faults();
                    match faults.push(rule) {
                        Ok(()) => AdminResponse::ok(&faults.document()),
                        Err(e) => bad(&e),
                    }
                }
            },
            ("faults", "DELETE") => {
                let mut faults = self.faults();
                faults.clear();
                AdminResponse::ok(&faults.document())
            }
            ("faults", _) => not_allowed("GET, PUT, POST, DELETE"),
            ("counters", "GET") => AdminResponse::ok(&self.counters.snapshot()),
            ("counters", "DELETE") => AdminResponse::ok(&self.counters.take()),
            ("counters", _) => not_allowed("GET, DELETE"),
            ("throttle", "GET") => AdminResponse::ok(&self.throttle_document()),
            ("throttle", "PUT") => match serde_json::from_slice::<ThrottleDocument>(body) {
                Err(e) => bad(&e),
                Ok(doc) => {
                    if [doc.requests_per_second, doc.burst].contains(&Some(0)) {
                        return Some(AdminResponse::error(
                            400,
                            "invalid_request",
                            "requests_per_second and burst must be at least 1",
                        ));
                    }
                    {
                        let mut guard =
                            self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
                        let old = guard.1.limits();
                        let limits = ThrottleLimits {
                            requests_per_second: doc
                                .requests_per_second
                                .unwrap_or(old.requests_per_second),
                            burst: doc.burst.unwrap_or(old.burst),
                            max_concurrent: doc.max_concurrent.unwrap_or(old.max_concurrent),
                        };
                        if limits != old {
                            guard.1 = Throttle::new(limits);
                        }
                        guard.0 = doc.enabled;
                    }
                    AdminResponse::ok(&self.throttle_document())
                }
            },
            ("throttle", _) => not_allowed("GET, PUT"),
            ("cache", "DELETE") => {
                self.cache.clear();
                AdminResponse::ok(&serde_json::json!({ "cleared": true }))
            }
            ("cache", _) => not_allowed("DELETE"),
            _ => AdminResponse::error(404, "not_found", "Unknown admin path"),
        };
        Some(response)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, FaultPlan> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current fault document (for the start-up banner).
    pub fn fault_document(&self) -> FaultDocument {
        self.faults().document()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::*;
    use crate::emulate::counters::{Origin, Outcome};
    use crate::emulate::faults::{FaultAction, FaultRequest};

    fn controls() -> EmulatorControls {
        EmulatorControls::new(FaultPlan::default(), None, Arc::new(TokenCache::default()))
    }

    fn call(c: &EmulatorControls, method: &str, name: &str, body: &str) -> (u16, Value) {
        let r = c
            .handle(method, &format!("{ADMIN_PREFIX}{name}"), body.as_bytes())
            .unwrap();
        (r.status, serde_json::from_str(&r.body).unwrap())
    }

    #[test]
    fn faults_over_the_admin_path() {
        let c = controls();
        let (s, v) = call(
            &c,
            "PUT",
            "faults",
            r#"{"rules":[{"status":410,"count":3}]}"#,
        );
        assert_eq!((s, v), (200, json!({"rules":[{"status":410,"count":3}]})));
        let (s, _) = call(&c, "POST", "faults", r#"{"delay_ms":5}"#);
        assert_eq!(s, 200);
        let req = FaultRequest {
            path: "/metadata/identity/oauth2/token",
            identity: None,
        };
        let decision = c.faults.lock().unwrap().decide(&req, 0);
        assert!(matches!(decision.action, FaultAction::Respond(ref r) if r.status == 410));
        let (_, v) = call(&c, "GET", "faults", "");
        assert_eq!(
            v,
            json!({"rules":[{"status":410,"count":2},{"delay_ms":5}]})
        );

        let (s, v) = call(&c, "PUT", "faults", r#"{"rules":[{"status":99}]}"#);
        assert_eq!(s, 400);
        assert_eq!(v["error"], "invalid_request");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains("rules[0]")
        );
        let (s, _) = call(&c, "POST", "faults", "{");
        assert_eq!(s, 400);
        assert_eq!(c.fault_document().rules.len(), 2);

        let (s, v) = call(&c, "DELETE", "faults", "");
        assert_eq!((s, v), (200, json!({"rules":[]})));
    }

    #[test]
    fn counters_over_the_admin_path() {
        let c = controls();
        c.counters
            .record(None, Outcome::Answered(200), Origin::Emulator);
        let (s, v) = call(&c, "GET", "counters", "");
        assert_eq!((s, v["total"].as_u64()), (200, Some(1)));
        let (_, v) = call(&c, "DELETE", "counters", "");
        assert_eq!(v["by_status"]["200"], 1);
        let (_, v) = call(&c, "GET", "counters", "");
        assert_eq!(v["total"], 0);
    }

    #[test]
    fn throttle_toggle_and_limits() {
        let c = controls();
        assert!(c.throttle().is_none());
        let (s, v) = call(
            &c,
            "PUT",
            "throttle",
            r#"{"enabled":true,"max_concurrent":1}"#,
        );
        assert_eq!(s, 200);
        assert_eq!(
            v,
            json!({"enabled":true,"requests_per_second":20,"burst":20,"max_concurrent":1,"in_flight":0})
        );
        let t = c.throttle().unwrap();
        let now = Instant::now();
        let permit = t.try_acquire(now).unwrap();
        assert!(t.try_acquire(now).is_err());
        let (_, v) = call(&c, "GET", "throttle", "");
        assert_eq!(v["in_flight"], 1);
        drop(permit);
        let (s, _) = call(&c, "PUT", "throttle", r#"{"enabled":true,"burst":0}"#);
        assert_eq!(s, 400);
        call(&c, "PUT", "throttle", r#"{"enabled":false}"#);
        assert!(c.throttle().is_none());
    }

    #[test]
    fn routing() {
        let c = controls();
        assert!(
            c.handle("GET", "/metadata/identity/oauth2/token", b"")
                .is_none()
        );
        let (s, _) = call(&c, "GET", "nope", "");
        assert_eq!(s, 404);
        let r = c.handle("PATCH", "/mitoken/admin/faults", b"").unwrap();
        assert_eq!((r.status, r.allow), (405, Some("GET, PUT, POST, DELETE")));
        let (s, v) = call(&c, "DELETE", "cache", "");
        assert_eq!((s, v), (200, json!({"cleared":true})));
    }
}
