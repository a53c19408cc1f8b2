//! `mitoken_request`: what to ask for and where, as C passes it.

use mitoken_core::request::{
    DEFAULT_API_VERSION, EXTENSION_TOKEN_PATH, Endpoint, IMDS_TOKEN_PATH, ResIdParam, Selector,
    Style, TokenRequest,
};

use crate::raw::{self, mitoken_str};
use crate::result::mitoken_result;

/// No selector: the endpoint's default identity (the system-assigned one on IMDS).
pub const MITOKEN_SELECTOR_NONE: u32 = 0;
/// `client_id=<selector>`: a user-assigned identity by client (application) ID.
pub const MITOKEN_SELECTOR_CLIENT_ID: u32 = 1;
/// `object_id=<selector>`: a user-assigned identity by object (principal) ID.
pub const MITOKEN_SELECTOR_OBJECT_ID: u32 = 2;
/// `msi_res_id=<selector>`: a user-assigned identity by ARM resource ID (IMDS's documented
/// name).
pub const MITOKEN_SELECTOR_MSI_RES_ID: u32 = 3;
/// `mi_res_id=<selector>`: the same, under the name App Service honours.
pub const MITOKEN_SELECTOR_MI_RES_ID: u32 = 4;

/// IMDS at `169.254.169.254:80`, `/metadata/identity/oauth2/token`.
pub const MITOKEN_ENDPOINT_IMDS: u32 = 0;
/// The legacy VM extension at `localhost:50342`, `/oauth2/token`.
pub const MITOKEN_ENDPOINT_EXTENSION: u32 = 1;
/// Another server: `host`, `port`, `path` and `style` of the request.
pub const MITOKEN_ENDPOINT_CUSTOM: u32 = 2;

/// A custom endpoint speaks IMDS's dialect (`api-version` first, `bypass_cache` honoured).
pub const MITOKEN_STYLE_IMDS: u32 = 0;
/// A custom endpoint speaks the legacy extension's dialect (no `api-version`).
pub const MITOKEN_STYLE_EXTENSION: u32 = 1;

/// A token request. Zero-initialise it (`mitoken_request req = {0};`), then set `resource`
/// and whatever else you need: all-zero means "IMDS, default identity, default api-version".
///
/// Every string is `ptr` + `len` (no NUL needed) and is only read during the call it is
/// passed to; the request is copied into the exchange buffer as HTTP bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mitoken_request {
    /// The resource (audience) URI, e.g. `https://management.azure.com/`. Required.
    pub resource: mitoken_str,
    /// One of `MITOKEN_SELECTOR_*`.
    pub selector_kind: u32,
    /// The selector's value (a GUID or an ARM resource ID); ignored for `MITOKEN_SELECTOR_NONE`.
    pub selector: mitoken_str,
    /// One of `MITOKEN_ENDPOINT_*`.
    pub endpoint_kind: u32,
    /// `MITOKEN_ENDPOINT_CUSTOM` only: host name or IP address (IPv6 without brackets).
    pub host: mitoken_str,
    /// `MITOKEN_ENDPOINT_CUSTOM` only: TCP port (1–65535).
    pub port: u16,
    /// `MITOKEN_ENDPOINT_CUSTOM` only: token path; empty means the style's standard path.
    pub path: mitoken_str,
    /// `MITOKEN_ENDPOINT_CUSTOM` only: one of `MITOKEN_STYLE_*`.
    pub style: u32,
    /// `api-version` (IMDS style); empty means `2018-02-01`.
    pub api_version: mitoken_str,
    /// Send `bypass_cache=true` (IMDS style): IMDS fetches a fresh token from Entra ID.
    pub bypass_cache: bool,
}

/// The Rust request and endpoint a [`mitoken_request`] describes.
pub struct Parsed<'a> {
    /// The request.
    pub request: TokenRequest<'a>,
    /// Where it goes.
    pub endpoint: Endpoint<'a>,
}

/// Reads the [`mitoken_request`] at `req` (NULL and misalignment are errors): its strings and
/// kinds. Values are validated when the request is written.
///
/// # Safety
/// `req` is NULL or points to a valid `mitoken_request`, and every `mitoken_str` in it is
/// `{NULL, 0}` or points to `len` readable bytes that stay unchanged during `'a`.
pub unsafe fn parse<'a>(req: *const mitoken_request) -> Result<Parsed<'a>, mitoken_result> {
    // SAFETY: `req` is NULL or a valid request (the contract above).
    let req = unsafe { raw::get(req) }?;
    // SAFETY: the contract above, for `resource`.
    let resource = unsafe { raw::text(req.resource) }?;
    // SAFETY: the contract above, for `selector`.
    let value = unsafe { raw::text(req.selector) }?;
    // SAFETY: the contract above, for `api_version`.
    let api_version = unsafe { raw::text(req.api_version) }?;
    let selector = match req.selector_kind {
        MITOKEN_SELECTOR_NONE => None,
        MITOKEN_SELECTOR_CLIENT_ID => Some(Selector::ClientId(value)),
        MITOKEN_SELECTOR_OBJECT_ID => Some(Selector::ObjectId(value)),
        MITOKEN_SELECTOR_MSI_RES_ID => Some(Selector::ResourceId {
            id: value,
            param: ResIdParam::MsiResId,
        }),
        MITOKEN_SELECTOR_MI_RES_ID => Some(Selector::ResourceId {
            id: value,
            param: ResIdParam::MiResId,
        }),
        _ => return Err(mitoken_result::InvalidArgument),
    };
    let endpoint = match req.endpoint_kind {
        MITOKEN_ENDPOINT_IMDS => Endpoint::Imds,
        MITOKEN_ENDPOINT_EXTENSION => Endpoint::Extension,
        MITOKEN_ENDPOINT_CUSTOM => {
            let style = match req.style {
                MITOKEN_STYLE_IMDS => Style::Imds,
                MITOKEN_STYLE_EXTENSION => Style::Extension,
                _ => return Err(mitoken_result::InvalidArgument),
            };
            // SAFETY: the contract above, for `host`.
            let host = unsafe { raw::text(req.host) }?;
            // SAFETY: the contract above, for `path`.
            let path = match unsafe { raw::text(req.path) }? {
                "" if style == Style::Imds => IMDS_TOKEN_PATH,
                "" => EXTENSION_TOKEN_PATH,
                p => p,
            };
            Endpoint::Custom {
                host,
                port: req.port,
                path,
                style,
            }
        }
        _ => return Err(mitoken_result::InvalidArgument),
    };
    let mut request = TokenRequest::new(resource)
        .with_api_version(if api_version.is_empty() {
            DEFAULT_API_VERSION
        } else {
            api_version
        })
        .with_bypass_cache(req.bypass_cache);
    if let Some(selector) = selector {
        request = request.with_selector(selector);
    }
    Ok(Parsed { request, endpoint })
}
