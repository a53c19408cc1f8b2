//! Query-string and form-body parameters of a token request, percent-decoded into the server's
//! work buffer.

use heapless::Vec;

use super::{MAX_PARAMS, Rejection};
use crate::identity::Selector;
use crate::query::{Pairs, Plus, QueryError, decode_bytes};

/// The parameters the server looks at; others are ignored (after the duplicate check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params<'w> {
    pub api_version: Option<&'w str>,
    pub resource: Option<&'w str>,
    pub selector: Selector<'w>,
    /// How many selector parameters the request carries (more than one is an error).
    pub selectors: usize,
    pub bypass_cache: bool,
}

/// The parameter names that select an identity, by kind (they differ per source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SelectorNames {
    /// Names of a client id selector.
    pub client: &'static [&'static str],
    /// Names of an object (principal) id selector.
    pub object: &'static [&'static str],
    /// Names of an ARM resource id selector.
    pub resource: &'static [&'static str],
}

impl SelectorNames {
    /// IMDS and the extension: `client_id`, `object_id`, `msi_res_id` (or `mi_res_id`).
    pub const IMDS: SelectorNames = SelectorNames {
        client: &["client_id"],
        object: &["object_id"],
        resource: &["msi_res_id", "mi_res_id"],
    };

    /// The selector `name` = `value` makes, if `name` is a selector name.
    fn selector<'w>(&self, name: &str, value: &'w str) -> Option<Selector<'w>> {
        if self.client.contains(&name) {
            Some(Selector::ClientId(value))
        } else if self.object.contains(&name) {
            Some(Selector::ObjectId(value))
        } else if self.resource.contains(&name) {
            Some(Selector::ResourceId(value))
        } else {
            None
        }
    }
}

/// Decodes one raw name or value into the front of `rest` and advances `rest` past it.
#[allow(clippy::mut_mut)] // a cursor over the work buffer
fn take_decoded<'w>(rest: &mut &'w mut [u8], raw: &[u8]) -> Result<&'w str, Rejection> {
    let buf = core::mem::take(rest);
    // Decoded without a UTF-8 check: the one check is on the result's slice below.
    let n = match decode_bytes(raw, &mut *buf, Plus::Space) {
        Ok(n) => n,
        Err(e) => {
            *rest = buf;
            return Err(match e {
                QueryError::BufferTooSmall { .. } => Rejection::ParametersTooLong,
                _ => Rejection::InvalidEncoding,
            });
        }
    };
    if n > buf.len() {
        *rest = buf;
        return Err(Rejection::ParametersTooLong);
    }
    #[allow(clippy::indexing_slicing)] // n <= buf.len(), checked above
    let (head, tail) = buf.split_at_mut(n);
    *rest = tail;
    let head: &'w [u8] = head;
    core::str::from_utf8(head).map_err(|_| Rejection::InvalidEncoding)
}

/// Parses the pairs of every source (the query string, then a form body) as one set of
/// parameters. Names and values are percent-decoded (`+` is a space) into `work`; the unused
/// rest of `work` is returned.
///
/// Errors: more than [`MAX_PARAMS`] pairs, a name that appears twice (compared after decoding,
/// across sources), a bad `%` escape or non-UTF-8 result, or a `work` buffer too small; the
/// unused rest of `work` comes back with the error.
#[allow(clippy::type_complexity)]
pub(crate) fn parse<'w>(
    sources: &[&[u8]],
    work: &'w mut [u8],
) -> Result<(Params<'w>, &'w mut [u8]), (Rejection, &'w mut [u8])> {
    parse_with(sources, &SelectorNames::IMDS, work)
}

/// [`parse`] with the selector names of a source.
#[allow(clippy::type_complexity)]
pub(crate) fn parse_with<'w>(
    sources: &[&[u8]],
    names: &SelectorNames,
    work: &'w mut [u8],
) -> Result<(Params<'w>, &'w mut [u8]), (Rejection, &'w mut [u8])> {
    let mut pairs: Vec<(&'w str, &'w str), MAX_PARAMS> = Vec::new();
    let mut rest = work;
    for src in sources {
        for (raw_name, raw_value) in Pairs::new(*src) {
            if pairs.is_full() {
                return Err((Rejection::TooManyParameters, rest));
            }
            let name = match take_decoded(&mut rest, raw_name) {
                Ok(name) => name,
                Err(r) => return Err((r, rest)),
            };
            let value = match take_decoded(&mut rest, raw_value) {
                Ok(value) => value,
                Err(r) => return Err((r, rest)),
            };
            if pairs.iter().any(|&(n, _)| n == name) {
                return Err((Rejection::DuplicateParameter, rest));
            }
            if pairs.push((name, value)).is_err() {
                return Err((Rejection::TooManyParameters, rest));
            }
        }
    }
    let mut params = Params {
        api_version: None,
        resource: None,
        selector: Selector::Default,
        selectors: 0,
        bypass_cache: false,
    };
    for &(name, value) in &pairs {
        let selector = match name {
            "api-version" => {
                params.api_version = Some(value);
                continue;
            }
            "resource" => {
                params.resource = Some(value);
                continue;
            }
            "bypass_cache" => {
                params.bypass_cache = value.eq_ignore_ascii_case("true");
                continue;
            }
            _ => match names.selector(name, value) {
                Some(selector) => selector,
                None => continue,
            },
        };
        params.selector = selector;
        params.selectors = params.selectors.saturating_add(1);
    }
    Ok((params, rest))
}
