//! The server side of the managed-identity sources other than IMDS and the VM extension:
//! App Service (2019-08-01 and the legacy 2017-09-01), Azure Machine Learning, Cloud Shell and
//! Azure Arc (docs/protocol.md §4, docs/sources-emulator.md).
//!
//! Each source has its own token path, secret, api-version, selector names, identity rules,
//! token body and error body; the HTTP framing, the parameter decoding and the identity table
//! are the IMDS server's. [`Config::source`](super::Config::source) selects the source.

use super::params::{self, SelectorNames};
use super::{Config, Rejection, RequestView, Valid};
use crate::catalogue::{self, SourceError, SourceFailure};
use crate::identity::{IdentityTable, Resolved, Selector};
use crate::source::Source;
use crate::token::write_json_string;
use crate::write::{BufferTooSmall, SliceWriter};

/// The token path of App Service (2019 and 2017) and Azure ML emulators (`IDENTITY_ENDPOINT` /
/// `MSI_ENDPOINT` name it; the real platforms use `/MSI/token` and `/msi/token`).
pub const APP_SERVICE_TOKEN_PATH: &str = "/MSI/token";
/// The Cloud Shell token path (`MSI_ENDPOINT=http://localhost:50342/oauth2/token`).
pub const CLOUD_SHELL_TOKEN_PATH: &str = "/oauth2/token";
/// The Arc token path (HIMDS serves IMDS's path on port 40342).
pub const ARC_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// The audiences Cloud Shell issues tokens for by default (its documented allowlist, the
/// common ones). Compared ASCII-case-insensitively, ignoring one trailing `/`.
pub const CLOUD_SHELL_AUDIENCES: [&str; 12] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://graph.microsoft.com",
    "https://vault.azure.net",
    "https://storage.azure.com",
    "https://database.windows.net",
    "https://ossrdbms-aad.database.windows.net",
    "https://analysis.windows.net/powerbi/api",
    "https://servicebus.azure.net",
    "https://eventhubs.azure.net",
    "https://cognitiveservices.azure.com",
    "https://api.loganalytics.io",
];

/// The api-version App Service serves.
const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// The api-version of App Service 2017 and Azure ML.
const LEGACY_API_VERSION: &str = "2017-09-01";

/// True when `path` is `source`'s token endpoint (one trailing `/` allowed: App Service's
/// `IDENTITY_ENDPOINT` sometimes ends in `/MSI/token/`). App Service paths compare
/// ASCII-case-insensitively (IIS and Kestrel routes do).
pub fn is_token_path(source: Source, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    match source {
        Source::AppService | Source::AppService2017 | Source::AzureMl => {
            path.eq_ignore_ascii_case(APP_SERVICE_TOKEN_PATH)
        }
        Source::CloudShell => path == CLOUD_SHELL_TOKEN_PATH,
        Source::Arc => path == ARC_TOKEN_PATH,
        _ => false,
    }
}

/// The parameter names that select an identity at `source`.
pub(crate) const fn selector_names(source: Source) -> SelectorNames {
    match source {
        // `principal_id` is App Service's own name, `object_id` its alias; `msi_res_id` is
        // ignored as App Service ignores it.
        Source::AppService => SelectorNames {
            client: &["client_id"],
            object: &["principal_id", "object_id"],
            resource: &["mi_res_id"],
        },
        Source::AppService2017 | Source::AzureMl => SelectorNames {
            client: &["clientid"],
            object: &[],
            resource: &[],
        },
        // Agent 1.67 ignores `mi_res_id` (and answers for the system-assigned identity).
        Source::Arc => SelectorNames {
            client: &["client_id"],
            object: &["object_id"],
            resource: &["msi_res_id"],
        },
        Source::CloudShell => SelectorNames {
            client: &[],
            object: &[],
            resource: &[],
        },
        _ => SelectorNames::IMDS,
    }
}

/// Compares two byte strings in time independent of where they differ.
fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when `header` carries `expected`. An unconfigured secret accepts nothing.
fn secret_ok(header: Option<&[u8]>, expected: Option<&[u8]>) -> bool {
    match (header, expected) {
        (Some(h), Some(e)) => !e.is_empty() && secret_eq(h.trim_ascii(), e),
        _ => false,
    }
}

/// True when `authorization` is `Basic <key>` for the current key.
fn arc_key_ok(authorization: &[u8], key: Option<&[u8]>) -> bool {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return false;
    };
    let value = authorization.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6).unwrap_or((value, &[]));
    scheme.eq_ignore_ascii_case(b"Basic ") && secret_eq(rest.trim_ascii(), key.trim_ascii())
}

/// True when `resource` is on the allowlist (ASCII case and one trailing `/` ignored).
fn audience_allowed(resource: &str, allowed: &[&str]) -> bool {
    let trim = |s: &str| -> usize { s.strip_suffix('/').unwrap_or(s).len() };
    let r = resource.get(..trim(resource)).unwrap_or(resource);
    allowed.iter().any(|a| {
        let a = a.get(..trim(a)).unwrap_or(a);
        a.eq_ignore_ascii_case(r)
    })
}

/// The checks of [`Server::decide`](super::Server::decide) for a source, up to identity
/// resolution, in this order: path, method, secret (Arc: `Metadata`, then the key), parameter
/// syntax, `api-version`, `resource` (Cloud Shell: the allowlist), selector count, Azure ML's
/// mandatory `clientid`.
#[allow(clippy::type_complexity)]
pub(crate) fn validate<'w>(
    config: &Config<'_>,
    req: &RequestView<'_>,
    work: &'w mut [u8],
) -> Result<(Valid<'w>, &'w mut [u8]), (Rejection, &'w mut [u8])> {
    let source = config.source;
    if !is_token_path(source, req.path) {
        return Err((Rejection::NotFound, work));
    }
    let post = req.method == "POST";
    let method_ok = match source {
        Source::CloudShell => post,
        _ => req.method == "GET",
    };
    if !method_ok {
        return Err((Rejection::MethodNotAllowed, work));
    }
    let metadata = req
        .metadata
        .is_some_and(|v| v.eq_ignore_ascii_case(b"true"));
    match source {
        Source::AppService if !secret_ok(req.identity_header, config.secret) => {
            return Err((Rejection::SecretMissing, work));
        }
        Source::AppService2017 | Source::AzureMl if !secret_ok(req.secret, config.secret) => {
            return Err((Rejection::SecretMissing, work));
        }
        Source::Arc | Source::CloudShell if !metadata => {
            return Err((Rejection::MetadataHeaderMissing, work));
        }
        _ => {}
    }
    if source == Source::Arc {
        match req.authorization {
            None => return Err((Rejection::ArcChallenge, work)),
            Some(a) if !arc_key_ok(a, config.secret) => {
                return Err((Rejection::ArcKeyInvalid, work));
            }
            Some(_) => {}
        }
    }
    let form: &[u8] = if post {
        match req.content_type {
            Some(ct) if super::is_form_urlencoded(ct) => req.body,
            None if req.body.is_empty() => &[],
            _ => return Err((Rejection::UnsupportedContentType, work)),
        }
    } else {
        &[]
    };
    let (params, rest) = params::parse_with(&[req.query, form], &selector_names(source), work)?;
    let version_ok = match source {
        Source::AppService => params.api_version == Some(APP_SERVICE_API_VERSION),
        Source::AppService2017 | Source::AzureMl => params.api_version == Some(LEGACY_API_VERSION),
        Source::Arc => params
            .api_version
            .is_some_and(|v| super::api_version_accepted(config.api_versions, v)),
        _ => true,
    };
    if !version_ok {
        return Err((Rejection::ApiVersion, rest));
    }
    let Some(resource) = params.resource.filter(|r| !r.is_empty()) else {
        return Err((Rejection::ResourceMissing, rest));
    };
    if source == Source::CloudShell && !audience_allowed(resource, config.audiences) {
        return Err((Rejection::AudienceNotSupported, rest));
    }
    if params.selectors > 1 {
        return Err((Rejection::MultipleSelectors, rest));
    }
    if source == Source::AzureMl && params.selector == Selector::Default {
        return Err((Rejection::ClientIdRequired, rest));
    }
    let selector = if source == Source::CloudShell {
        Selector::Default
    } else {
        params.selector
    };
    let valid = Valid {
        resource: Some(resource),
        selector,
        bypass_cache: params.bypass_cache,
    };
    Ok((valid, rest))
}

/// Picks the identity for `selector` by `source`'s rules: App Service 2017 falls back to the
/// default identity for a `clientid` it does not know; Arc answers 404 for an identity that is
/// not assigned; Cloud Shell always answers for its one identity (the signed-in user, which the
/// emulator keeps as the system-assigned identity); the others answer 400.
pub(crate) fn resolve<'a, S: AsRef<str>, const N: usize>(
    table: &'a IdentityTable<S, N>,
    source: Source,
    selector: &Selector<'_>,
) -> Result<Resolved<'a>, Rejection> {
    match (source, table.resolve(selector)) {
        (_, Ok(r)) => Ok(r),
        (Source::AppService2017, Err(_)) => table
            .resolve(&Selector::Default)
            .map_err(|_| Rejection::IdentityNotFound),
        (Source::Arc, Err(_)) => Err(Rejection::IdentityNotAssigned),
        (_, Err(_)) => Err(Rejection::IdentityNotFound),
    }
}

/// The source's failure for a rejection.
pub(crate) const fn failure(rejection: Rejection) -> SourceFailure {
    use SourceFailure as F;
    match rejection {
        Rejection::NotFound | Rejection::UnknownSource => F::NotFound,
        Rejection::SecretMissing => F::SecretMissing,
        Rejection::ApiVersion => F::UnsupportedApiVersion,
        Rejection::ResourceMissing => F::ResourceMissing,
        Rejection::IdentityNotFound | Rejection::MultipleUserAssigned => F::IdentityNotFound,
        Rejection::ClientIdRequired => F::ClientIdRequired,
        Rejection::AudienceNotSupported => F::AudienceNotSupported,
        Rejection::ArcChallenge => F::ChallengeRequired,
        Rejection::ArcKeyInvalid => F::KeyInvalid,
        Rejection::IdentityNotAssigned => F::IdentityNotAssigned,
        Rejection::Throttled => F::Throttled,
        Rejection::Unavailable => F::Unavailable,
        Rejection::IssueFailed | Rejection::InvalidResource => F::IssueFailed,
        _ => F::BadRequest,
    }
}

/// What goes into a source's error body besides the catalogue entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorTexts<'t> {
    /// The request path (App Service's api-version message names it).
    pub path: &'t str,
    /// The api-version asked for.
    pub api_version: &'t str,
    /// The resource asked for.
    pub resource: &'t str,
    /// The correlation id, when the shell gave one.
    pub correlation_id: &'t str,
}

/// The status, code and message (a template) of an error body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorParts<'e> {
    pub status: u16,
    pub code: &'e str,
    pub message: &'e str,
}

impl From<SourceError> for ErrorParts<'static> {
    fn from(e: SourceError) -> Self {
        ErrorParts {
            status: e.status,
            code: e.code,
            message: e.message,
        }
    }
}

/// Writes `template` with `<path>`, `<version>` and `<resource>` filled in, as a JSON string.
fn message(template: &str, texts: &ErrorTexts<'_>, w: &mut SliceWriter<'_>) {
    let mut buf = [0u8; 1024];
    let mut m = SliceWriter::new(&mut buf);
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('<') {
        m.put_str(before);
        let (name, tail) = after.split_once('>').unwrap_or((after, ""));
        match name {
            "path" => m.put_str(texts.path),
            "version" => m.put_str(texts.api_version),
            "resource" => m.put_str(texts.resource),
            other => {
                m.put_byte(b'<');
                m.put_str(other);
                m.put_byte(b'>');
            }
        }
        rest = tail;
    }
    m.put_str(rest);
    let len = m.len();
    if m.fits() {
        let text = buf.get(..len).unwrap_or_default();
        write_json_string(core::str::from_utf8(text).unwrap_or(template), w);
    } else {
        // A path or resource too long to quote: the template alone.
        write_json_string(template, w);
    }
}

/// Writes `source`'s error body for `error` (status, code, message) into `out`:
/// App Service and Azure ML `{"statusCode":…,"message":…,"correlationId":…}` (App Service's
/// api-version error is the nested `{"error":{"code":"UnsupportedApiVersion",…,"innerError":null}}`);
/// App Service 2017 the recorded 2017 shape `{"ExceptionMessage":…,"ErrorCode":…,…,"CorrelationId":…}`;
/// Cloud Shell `{"error":{"code":…,"message":…}}`; Arc IMDS's `{"error":…,"error_description":…}`.
/// Azure ML's own error body is unrecorded: it gets App Service's shape.
pub(crate) fn write_error_body(
    source: Source,
    error: &ErrorParts<'_>,
    texts: &ErrorTexts<'_>,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    match source {
        Source::AppService if error.code == "UnsupportedApiVersion" => {
            w.put_str("{\"error\":{\"code\":");
            write_json_string(error.code, &mut w);
            w.put_str(",\"message\":");
            message(error.message, texts, &mut w);
            w.put_str(",\"innerError\":null}}");
        }
        // Azure ML's error body is unrecorded: App Service's shape, which every client reads.
        Source::AppService | Source::AzureMl => {
            w.put_str("{\"statusCode\":");
            w.put_u64(u64::from(error.status));
            w.put_str(",\"message\":");
            message(error.message, texts, &mut w);
            w.put_str(",\"correlationId\":");
            write_json_string(texts.correlation_id, &mut w);
            w.put_byte(b'}');
        }
        Source::AppService2017 => {
            w.put_str("{\"ExceptionMessage\":");
            message(error.message, texts, &mut w);
            w.put_str(",\"ErrorCode\":");
            write_json_string(error.code, &mut w);
            w.put_str(",\"ServiceErrorCodes\":null,\"StatusCode\":");
            w.put_u64(u64::from(error.status));
            w.put_str(",\"Message\":null,\"CorrelationId\":");
            write_json_string(texts.correlation_id, &mut w);
            w.put_byte(b'}');
        }
        Source::CloudShell => {
            w.put_str("{\"error\":{\"code\":");
            write_json_string(error.code, &mut w);
            w.put_str(",\"message\":");
            message(error.message, texts, &mut w);
            w.put_str("}}");
        }
        _ => {
            w.put_str("{\"error\":");
            write_json_string(error.code, &mut w);
            w.put_str(",\"error_description\":");
            message(error.message, texts, &mut w);
            w.put_byte(b'}');
        }
    }
    w.finish()
}

/// The values of a source's token body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceToken<'a> {
    pub access_token: &'a str,
    pub client_id: &'a str,
    pub object_id: &'a str,
    pub resource_id: Option<&'a str>,
    pub expires_in: u64,
    pub expires_on: u64,
    pub not_before: u64,
    pub ext_expires_in: u64,
    pub resource: &'a str,
}

fn member_str(w: &mut SliceWriter<'_>, key: &str, value: &str) {
    w.put_byte(b'"');
    w.put_str(key);
    w.put_str("\":");
    write_json_string(value, w);
}

/// `"key":"123"`.
fn member_num_str(w: &mut SliceWriter<'_>, key: &str, value: u64) {
    w.put_byte(b'"');
    w.put_str(key);
    w.put_str("\":\"");
    w.put_u64(value);
    w.put_byte(b'"');
}

/// `"key":123`.
fn member_int(w: &mut SliceWriter<'_>, key: &str, value: u64) {
    w.put_byte(b'"');
    w.put_str(key);
    w.put_str("\":");
    w.put_u64(value);
}

/// Writes `source`'s 200 body:
/// - App Service: `access_token, client_id, expires_on` (numeric string), `not_before`,
///   `resource, token_type` — no `expires_in`;
/// - App Service 2017: `access_token, expires_on` (`"MM/DD/YYYY HH:MM:SS +00:00"`, as Linux
///   hosts write it), `resource, token_type`;
/// - Azure ML: `access_token, expires_in, expires_on` (JSON integers), `resource, token_type`;
/// - Cloud Shell: `access_token, expires_in, expires_on, not_before` (numeric strings),
///   `resource, token_type`;
/// - Arc: IMDS's body plus the echo of the identity used (`object_id`, and `msi_res_id` for a
///   user-assigned identity).
pub(crate) fn write_token_body(
    source: Source,
    t: &SourceToken<'_>,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    w.put_byte(b'{');
    member_str(&mut w, "access_token", t.access_token);
    match source {
        Source::AppService => {
            w.put_byte(b',');
            member_str(&mut w, "client_id", t.client_id);
            w.put_byte(b',');
            member_num_str(&mut w, "expires_on", t.expires_on);
            w.put_byte(b',');
            member_num_str(&mut w, "not_before", t.not_before);
        }
        Source::AppService2017 => {
            w.put_str(",\"expires_on\":\"");
            put_legacy_date(&mut w, t.expires_on);
            w.put_byte(b'"');
        }
        Source::AzureMl => {
            w.put_byte(b',');
            member_int(&mut w, "expires_in", t.expires_in);
            w.put_byte(b',');
            member_int(&mut w, "expires_on", t.expires_on);
        }
        Source::Arc => {
            w.put_byte(b',');
            member_str(&mut w, "client_id", t.client_id);
            w.put_byte(b',');
            member_num_str(&mut w, "expires_in", t.expires_in);
            w.put_byte(b',');
            member_num_str(&mut w, "expires_on", t.expires_on);
            w.put_byte(b',');
            member_num_str(&mut w, "ext_expires_in", t.ext_expires_in);
            if let Some(id) = t.resource_id {
                w.put_byte(b',');
                member_str(&mut w, "msi_res_id", id);
            }
            w.put_byte(b',');
            member_num_str(&mut w, "not_before", t.not_before);
            w.put_byte(b',');
            member_str(&mut w, "object_id", t.object_id);
        }
        _ => {
            w.put_byte(b',');
            member_num_str(&mut w, "expires_in", t.expires_in);
            w.put_byte(b',');
            member_num_str(&mut w, "expires_on", t.expires_on);
            w.put_byte(b',');
            member_num_str(&mut w, "not_before", t.not_before);
        }
    }
    w.put_byte(b',');
    member_str(&mut w, "resource", t.resource);
    w.put_str(",\"token_type\":\"Bearer\"}");
    w.finish()
}

/// The civil date (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's algorithm).
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Writes `n` with at least two digits.
fn put_2(w: &mut SliceWriter<'_>, n: u64) {
    if n < 10 {
        w.put_byte(b'0');
    }
    w.put_u64(n);
}

/// Writes Unix time `secs` as App Service 2017 on Linux does: `MM/DD/YYYY HH:MM:SS +00:00`.
pub(crate) fn put_legacy_date(w: &mut SliceWriter<'_>, secs: u64) {
    // Beyond year 9999 the format has no room; such a time is clamped.
    let secs = secs.min(253_402_300_799);
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    put_2(w, month);
    w.put_byte(b'/');
    put_2(w, day);
    w.put_byte(b'/');
    w.put_u64(year);
    w.put_byte(b' ');
    put_2(w, rem / 3600);
    w.put_byte(b':');
    put_2(w, rem % 3600 / 60);
    w.put_byte(b':');
    put_2(w, rem % 60);
    w.put_str(" +00:00");
}

/// The catalogue entry for `rejection` at `source`.
pub(crate) const fn source_error(source: Source, rejection: Rejection) -> SourceError {
    let mut e = catalogue::for_source(source, failure(rejection));
    // The status of the few rejections the catalogue does not key: the IMDS server's.
    if matches!(failure(rejection), SourceFailure::BadRequest) {
        e.status = rejection.status(crate::identity::Flavor::Imds);
        if let Some(d) = rejection.description(crate::identity::Flavor::Imds) {
            e.message = d;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(secs: u64) -> heapless::String<64> {
        let mut buf = [0u8; 64];
        let mut w = SliceWriter::new(&mut buf);
        put_legacy_date(&mut w, secs);
        let n = w.finish().unwrap();
        let mut s = heapless::String::new();
        s.push_str(core::str::from_utf8(&buf[..n]).unwrap())
            .unwrap();
        s
    }

    #[test]
    fn legacy_dates() {
        // The recorded Linux example: 06/20/2019 02:57:58 +00:00.
        assert_eq!(date(1_560_999_478), "06/20/2019 02:57:58 +00:00");
        assert_eq!(date(0), "01/01/1970 00:00:00 +00:00");
        assert_eq!(date(951_782_400), "02/29/2000 00:00:00 +00:00");
        assert_eq!(date(u64::MAX), "12/31/9999 23:59:59 +00:00");
    }

    #[test]
    fn paths() {
        assert!(is_token_path(Source::AppService, "/MSI/token"));
        assert!(is_token_path(Source::AppService, "/msi/token/"));
        assert!(!is_token_path(Source::AppService, "/MSI/token//"));
        assert!(is_token_path(Source::CloudShell, "/oauth2/token"));
        assert!(is_token_path(Source::Arc, ARC_TOKEN_PATH));
        assert!(!is_token_path(Source::Imds, ARC_TOKEN_PATH));
    }

    #[test]
    fn secrets_and_keys() {
        assert!(secret_ok(Some(b"abc"), Some(b"abc")));
        assert!(!secret_ok(Some(b"abd"), Some(b"abc")));
        assert!(!secret_ok(None, Some(b"abc")));
        assert!(!secret_ok(Some(b""), Some(b"")));
        assert!(arc_key_ok(b"Basic k3y", Some(b"k3y")));
        assert!(arc_key_ok(b"basic k3y", Some(b"k3y\n")));
        assert!(!arc_key_ok(b"Bearer k3y", Some(b"k3y")));
        assert!(!arc_key_ok(b"Basic", Some(b"k3y")));
        assert!(!arc_key_ok(b"Basic k3y", None));
    }

    #[test]
    fn audiences() {
        let list = CLOUD_SHELL_AUDIENCES;
        assert!(audience_allowed("https://management.azure.com/", &list));
        assert!(audience_allowed("https://VAULT.azure.net", &list));
        assert!(!audience_allowed("https://example.com", &list));
        assert!(!audience_allowed("", &list));
    }
}
