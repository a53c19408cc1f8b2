//! A summary of an access token's claims (`aud`, `oid`, `appid`, `tid`, lifetimes) for the
//! doctor's report. The token itself is never shown; the payload is decoded with `base64` and
//! `serde_json` and only the named claims are kept.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The claims the doctor reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `aud`: the resource the token is for.
    pub aud: Option<String>,
    /// `oid`: the identity's object id.
    pub oid: Option<String>,
    /// `appid` (v1) or `azp` (v2): the identity's client id.
    pub appid: Option<String>,
    /// `tid`: the tenant.
    pub tid: Option<String>,
    /// `iat`, Unix seconds.
    pub iat: Option<u64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<u64>,
    /// `exp`, Unix seconds.
    pub exp: Option<u64>,
}

/// The claims of `jwt`, or `None` when it is not a JWT with a JSON payload.
pub fn decode(jwt: &str) -> Option<Claims> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let num = |k: &str| json.get(k).and_then(serde_json::Value::as_u64);
    Some(Claims {
        aud: text("aud"),
        oid: text("oid"),
        appid: text("appid").or_else(|| text("azp")),
        tid: text("tid"),
        iat: num("iat"),
        nbf: num("nbf"),
        exp: num("exp"),
    })
}

/// `1h 05m`-style duration text for `secs`.
pub fn span(secs: u64) -> String {
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {:02}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

impl Claims {
    /// One line: `aud=… oid=… appid=… tid=…, issued 5m ago, valid 23h 55m more`.
    pub fn summary(&self, now: u64) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("aud", &self.aud),
            ("oid", &self.oid),
            ("appid", &self.appid),
            ("tid", &self.tid),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        let mut text = parts.join(" ");
        if let Some(iat) = self.iat {
            if iat <= now {
                let _ = write!(text, ", issued {} ago", span(now - iat));
            } else {
                let _ = write!(text, ", issued {} in the future", span(iat - now));
            }
        }
        if let Some(exp) = self.exp {
            if exp > now {
                let _ = write!(text, ", valid {} more", span(exp - now));
            } else {
                text.push_str(", expired");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_named_claims_only() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"aud":"https://vault.azure.net","oid":"o","azp":"a","tid":"t","iat":100,"nbf":100,"exp":3800,"secret":"x"}"#,
        );
        let c = decode(&format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")).unwrap();
        assert_eq!(c.appid.as_deref(), Some("a"));
        assert_eq!(
            c.summary(400),
            "aud=https://vault.azure.net oid=o appid=a tid=t, issued 5m 00s ago, valid 56m 40s more"
        );
        assert!(decode("not-a-jwt").is_none());
    }
}
