//! The emulator's identity configuration: a TOML file describing one VM.
//!
//! ```toml
//! tenant_id = "10000000-0000-4000-8000-000000000000"   # optional, see `EmulatorConfig::DEFAULT_TENANT_ID`
//!
//! [system_assigned]          # omit the table: the VM has no system-assigned identity
//! client_id = "20000000-0000-4000-8000-000000000001"
//! object_id = "30000000-0000-4000-8000-000000000001"
//!
//! [[user_assigned]]          # 0..=1000 (imds flavor) or 0..=32 (extension flavor)
//! client_id = "20000000-0000-4000-8000-000000000002"
//! object_id = "30000000-0000-4000-8000-000000000002"
//! resource_id = "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>"
//! ```
//!
//! Every error names the file, the line and column, and the field (`user_assigned[2].client_id`).
//! Client IDs, object IDs and resource IDs must be unique across all identities of the VM.

use core::fmt;
use core::ops::Range;
use core::str::FromStr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Which endpoint the emulator imitates (the core's type): it decides the identity limit, the
/// request shape and the default port.
pub use mitoken_core::identity::Flavor;

/// A GUID such as a tenant, client or object ID: the core's type (a `u128` parsed from the
/// `8-4-4-4-12` text, hex digits of either case, shown in lower case), so the configuration and
/// the core's identity table agree on what a GUID is.
pub use mitoken_core::identity::{Guid, InvalidGuid};

/// serde for the core's [`Guid`] (which has no serde of its own: the core does not depend on
/// serde), as its text form, for `#[serde(with = …)]`.
pub mod guid_serde {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Guid;

    fn parse<E: serde::de::Error>(text: &str) -> Result<Guid, E> {
        text.parse().map_err(E::custom)
    }

    /// An `Option<Guid>` as `null` / `"xxxxxxxx-…"`.
    pub mod option {
        use super::{Cow, Deserialize, Deserializer, Guid, Serializer, parse};

        /// Serializes the GUID's text, or `None`.
        pub fn serialize<S: Serializer>(value: &Option<Guid>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(g) => s.collect_str(g),
                None => s.serialize_none(),
            }
        }

        /// Reads an optional GUID string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Guid>, D::Error> {
            let text: Option<Cow<'de, str>> = Option::deserialize(d)?;
            text.map(|t| parse(&t)).transpose()
        }
    }

    /// A `BTreeMap<Guid, V>` as an object keyed by the GUIDs' text.
    pub mod map {
        use super::{BTreeMap, Deserialize, Deserializer, Guid, Serialize, Serializer, parse};

        /// Serializes the map with text keys.
        pub fn serialize<S: Serializer, V: Serialize>(
            map: &BTreeMap<Guid, V>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
        }

        /// Reads a map with GUID-text keys.
        pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
            d: D,
        ) -> Result<BTreeMap<Guid, V>, D::Error> {
            let raw = BTreeMap::<String, V>::deserialize(d)?;
            raw.into_iter().map(|(k, v)| Ok((parse(&k)?, v))).collect()
        }
    }
}

/// Why a string is not a user-assigned identity's ARM resource ID: the core's rule
/// ([`check_user_assigned_resource_id`]), the one the server's identity table applies.
pub use mitoken_core::identity::ResourceIdError;
use mitoken_core::identity::{
    Identity, IdentityTable, Slot, TableError, check_user_assigned_resource_id,
};

/// The ARM resource ID of a user-assigned identity:
/// `/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// checked by the core's [`check_user_assigned_resource_id`].
///
/// Kept as written; compared case-insensitively, as ARM does.
#[derive(Clone, Debug)]
pub struct ResourceId {
    text: String,
}

impl ResourceId {
    /// The resource ID as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Eq for ResourceId {}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ResourceId {
    type Err = ResourceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_user_assigned_resource_id(s)?;
        Ok(Self { text: s.to_owned() })
    }
}

/// What kind of managed identity an [`IdentityConfig`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityKind {
    /// The VM's system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity, with its ARM resource ID (the token's `xms_mirid`).
    UserAssigned {
        /// The identity's ARM resource ID.
        resource_id: ResourceId,
    },
}

/// One managed identity of the emulated VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Entra client (application) ID: the token's `appid`, the `client_id` selector.
    pub client_id: Guid,
    /// Entra object (principal) ID: the token's `oid` and `sub`, the `object_id` selector.
    pub object_id: Guid,
    /// System- or user-assigned.
    pub kind: IdentityKind,
}

impl IdentityConfig {
    /// Whether this is the VM's system-assigned identity.
    pub fn is_system_assigned(&self) -> bool {
        matches!(self.kind, IdentityKind::SystemAssigned)
    }

    /// The ARM resource ID of a user-assigned identity; `None` for the system-assigned one.
    pub fn resource_id(&self) -> Option<&ResourceId> {
        match &self.kind {
            IdentityKind::SystemAssigned => None,
            IdentityKind::UserAssigned { resource_id } => Some(resource_id),
        }
    }

    /// The key used for caches and counters: the client ID, unique within a configuration.
    pub fn key(&self) -> Guid {
        self.client_id
    }
}

impl fmt::Display for IdentityConfig {
    /// One line for the start-up banner, e.g.
    /// `system-assigned client_id=… object_id=…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IdentityKind::SystemAssigned => write!(
                f,
                "system-assigned client_id={} object_id={}",
                self.client_id, self.object_id
            ),
            IdentityKind::UserAssigned { resource_id } => write!(
                f,
                "user-assigned   client_id={} object_id={} resource_id={resource_id}",
                self.client_id, self.object_id
            ),
        }
    }
}

/// The emulated VM: its tenant and identities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// The Entra tenant the identities live in (the token's `tid`).
    pub tenant_id: Guid,
    /// The system-assigned identity, if the VM has one.
    pub system_assigned: Option<IdentityConfig>,
    /// The user-assigned identities, in configuration order.
    pub user_assigned: Vec<IdentityConfig>,
}

/// Where in a configuration file something is (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset` in `source`.
    pub fn of_offset(source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let mut start = offset;
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let before = &source[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// What is wrong at a place in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file is not valid TOML (the TOML parser's explanation).
    #[error("TOML syntax error: {message}")]
    Syntax {
        /// The parser's explanation.
        message: String,
    },
    /// A required field is missing.
    #[error("required field is missing")]
    MissingField,
    /// A field that the configuration does not know.
    #[error(
        "unknown field (expected tenant_id, system_assigned, user_assigned; in identities client_id, object_id, resource_id)"
    )]
    UnknownField,
    /// A value of the wrong TOML type (the deserializer's explanation).
    #[error("{message}")]
    WrongType {
        /// The deserializer's explanation.
        message: String,
    },
    /// A value that must be a GUID is not one.
    #[error("`{value}` is {}", InvalidGuid)]
    InvalidGuid {
        /// The value as written.
        value: String,
    },
    /// A resource ID of the wrong shape.
    #[error("`{value}` is not a user-assigned identity resource ID: {problem}")]
    InvalidResourceId {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        problem: ResourceIdError,
    },
    /// A client ID, object ID or resource ID used by two identities.
    #[error("`{value}` is already used by {first_field} (line {first_line})")]
    Duplicate {
        /// The repeated value.
        value: String,
        /// The field where it first appears.
        first_field: String,
        /// The line where it first appears.
        first_line: usize,
    },
    /// More user-assigned identities than the flavor allows.
    #[error("{count} user-assigned identities, but the {flavor} flavor allows at most {limit}")]
    TooManyUserAssigned {
        /// How many the file has.
        count: usize,
        /// The flavor's limit.
        limit: usize,
        /// The flavor.
        flavor: Flavor,
    },
    /// Any other reason the core's identity table refuses the identity.
    #[error("{0}")]
    Identity(TableError),
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read configuration: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but something in it is wrong.
    #[error("{}:{}:{}: {}{kind}", path.display(), location.line, location.column, FieldPrefix(field))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where in the file.
        location: Location,
        /// The field, as a path such as `user_assigned[2].client_id`; empty when the error is not
        /// about one field (a TOML syntax error between fields).
        field: String,
        /// What is wrong.
        kind: ConfigErrorKind,
    },
}

struct FieldPrefix<'a>(&'a str);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

impl ConfigError {
    /// Where in the file the error is, when it is about the file's content.
    pub fn location(&self) -> Option<Location> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid { location, .. } => Some(*location),
        }
    }

    /// The field path the error is about (empty if none, `None` for read errors).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid { field, .. } => Some(field),
        }
    }

    /// What is wrong, when it is about the file's content.
    pub fn kind(&self) -> Option<&ConfigErrorKind> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid { kind, .. } => Some(kind),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tenant_id: Option<Spanned<String>>,
    system_assigned: Option<RawSystemAssigned>,
    #[serde(default)]
    user_assigned: Vec<RawUserAssigned>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystemAssigned {
    client_id: Spanned<String>,
    object_id: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(clippy::struct_field_names, reason = "the names are the TOML keys")]
struct RawUserAssigned {
    client_id: Spanned<String>,
    object_id: Spanned<String>,
    resource_id: Spanned<String>,
}

/// Builds located errors for one file.
struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Ctx<'_> {
    fn error(&self, span: &Range<usize>, field: String, kind: ConfigErrorKind) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            location: Location::of_offset(self.source, span.start),
            field,
            kind,
        }
    }

    fn guid(&self, value: &Spanned<String>, field: &str) -> Result<Guid, ConfigError> {
        value.get_ref().parse().map_err(|InvalidGuid| {
            self.error(
                &value.span(),
                field.to_owned(),
                ConfigErrorKind::InvalidGuid {
                    value: value.get_ref().clone(),
                },
            )
        })
    }

    /// Places the core table's refusal of identity `f` in the file.
    fn table_error(
        &self,
        error: TableError,
        f: &Fields<'_>,
        all: &[Fields<'_>],
        user_assigned: usize,
    ) -> ConfigError {
        let field = |name: &str| format!("{}.{name}", f.name);
        let at = |value: &Spanned<String>, name: &str, kind| {
            self.error(&value.span(), field(name), kind)
        };
        let first = |slot: Slot| {
            let index = match slot {
                Slot::SystemAssigned => 0,
                Slot::UserAssigned(n) => {
                    n + usize::from(all.first().is_some_and(|x| x.resource_id.is_none()))
                }
            };
            all.get(index)
        };
        let duplicate =
            |value: &Spanned<String>, name: &str, earlier: Option<(&str, &Spanned<String>)>| {
                let (first_field, first_line) = earlier.map_or((String::new(), 0), |(owner, v)| {
                    let line = Location::of_offset(self.source, v.span().start).line;
                    (format!("{owner}.{name}"), line)
                });
                at(
                    value,
                    name,
                    ConfigErrorKind::Duplicate {
                        value: value.get_ref().clone(),
                        first_field,
                        first_line,
                    },
                )
            };
        match error {
            TableError::InvalidClientId => at(
                f.client_id,
                "client_id",
                ConfigErrorKind::InvalidGuid {
                    value: f.client_id.get_ref().clone(),
                },
            ),
            TableError::InvalidObjectId => at(
                f.object_id,
                "object_id",
                ConfigErrorKind::InvalidGuid {
                    value: f.object_id.get_ref().clone(),
                },
            ),
            TableError::InvalidResourceId(problem) if f.resource_id.is_some() => {
                let value = f.resource_id.unwrap_or(f.client_id);
                at(
                    value,
                    "resource_id",
                    ConfigErrorKind::InvalidResourceId {
                        value: value.get_ref().clone(),
                        problem,
                    },
                )
            }
            TableError::DuplicateClientId { first: slot } => {
                let earlier = first(slot).map(|x| (x.name.as_str(), x.client_id));
                duplicate(f.client_id, "client_id", earlier)
            }
            TableError::DuplicateObjectId { first: slot } => {
                let earlier = first(slot).map(|x| (x.name.as_str(), x.object_id));
                duplicate(f.object_id, "object_id", earlier)
            }
            TableError::DuplicateResourceId { first: slot } => {
                let value = f.resource_id.unwrap_or(f.client_id);
                let earlier = first(slot).and_then(|x| Some((x.name.as_str(), x.resource_id?)));
                duplicate(value, "resource_id", earlier)
            }
            TableError::TooManyUserAssigned { flavor, limit } => self.error(
                &f.client_id.span(),
                f.name.clone(),
                ConfigErrorKind::TooManyUserAssigned {
                    count: user_assigned,
                    limit,
                    flavor,
                },
            ),
            other => self.error(
                &f.client_id.span(),
                f.name.clone(),
                ConfigErrorKind::Identity(other),
            ),
        }
    }

    /// Turns a TOML/serde error into a located error, naming the field as well as the text allows.
    fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let message = err.message();
        let backticked = message
            .split('`')
            .nth(1)
            .filter(|_| message.matches('`').count() >= 2)
            .map(str::to_owned);
        let table = table_path_at(self.source, span.start);
        let key_here = key_at(self.source, span.start);
        let join = |key: &str| {
            if table.is_empty() {
                key.to_owned()
            } else {
                format!("{table}.{key}")
            }
        };
        let (field, kind) = if message.starts_with("missing field") {
            (
                join(backticked.as_deref().unwrap_or_default()),
                ConfigErrorKind::MissingField,
            )
        } else if message.starts_with("unknown field") {
            (
                join(backticked.as_deref().unwrap_or_default()),
                ConfigErrorKind::UnknownField,
            )
        } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
            (
                key_here.map_or_else(|| table.clone(), |k| join(&k)),
                ConfigErrorKind::WrongType {
                    message: message.to_owned(),
                },
            )
        } else {
            (
                key_here.map_or_else(String::new, |k| join(&k)),
                ConfigErrorKind::Syntax {
                    message: message.to_owned(),
                },
            )
        };
        self.error(&span, field, kind)
    }
}

/// The table header in force at `offset`: `""`, `system_assigned` or `user_assigned[i]`.
fn table_path_at(source: &str, offset: usize) -> String {
    let mut current = String::new();
    let mut user_assigned = 0usize;
    let mut pos = 0usize;
    for line in source.split_inclusive('\n') {
        if pos > offset {
            break;
        }
        let t = line.trim();
        if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = inner.trim();
            if name == "user_assigned" {
                current = format!("user_assigned[{user_assigned}]");
                user_assigned += 1;
            } else {
                name.clone_into(&mut current);
            }
        } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            inner.trim().clone_into(&mut current);
        }
        pos += line.len();
    }
    current
}

/// The bare key assigned on the line containing `offset`, if that line is `key = value`.
fn key_at(source: &str, offset: usize) -> Option<String> {
    let offset = offset.min(source.len());
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = source[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    bare.then(|| key.to_owned())
}

/// Where one identity's fields are in the file, to place the core table's errors.
struct Fields<'r> {
    /// `system_assigned` or `user_assigned[i]`.
    name: String,
    client_id: &'r Spanned<String>,
    object_id: &'r Spanned<String>,
    resource_id: Option<&'r Spanned<String>>,
}

impl Fields<'_> {
    /// The core's view of the identity, borrowing the file's strings.
    fn identity(&self) -> Identity<'_> {
        let (client, object) = (self.client_id.get_ref(), self.object_id.get_ref());
        match self.resource_id {
            None => Identity::system_assigned(client, object),
            Some(r) => Identity::user_assigned(client, object, r.get_ref()),
        }
    }
}

/// Capacity of the identity table that validates a configuration: IMDS's limit.
const TABLE_CAPACITY: usize = mitoken_core::identity::IMDS_MAX_USER_ASSIGNED;

impl EmulatorConfig {
    /// The tenant used when the file has no `tenant_id`.
    pub const DEFAULT_TENANT_ID: Guid = Guid(0x1000_0000_0000_4000_8000_0000_0000_0000);

    /// Reads and validates a configuration file.
    pub fn load(path: &Path, flavor: Flavor) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&source, path, flavor)
    }

    /// Parses and validates configuration text; `path` is only used in error messages.
    pub fn parse(source: &str, path: &Path, flavor: Flavor) -> Result<Self, ConfigError> {
        let ctx = Ctx { path, source };
        let raw: RawConfig = toml::from_str(source).map_err(|e| ctx.toml_error(&e))?;

        let tenant_id = match &raw.tenant_id {
            Some(t) => ctx.guid(t, "tenant_id")?,
            None => Self::DEFAULT_TENANT_ID,
        };

        let mut fields: Vec<Fields<'_>> = Vec::with_capacity(raw.user_assigned.len() + 1);
        if let Some(sa) = &raw.system_assigned {
            fields.push(Fields {
                name: "system_assigned".to_owned(),
                client_id: &sa.client_id,
                object_id: &sa.object_id,
                resource_id: None,
            });
        }
        for (i, ua) in raw.user_assigned.iter().enumerate() {
            fields.push(Fields {
                name: format!("user_assigned[{i}]"),
                client_id: &ua.client_id,
                object_id: &ua.object_id,
                resource_id: Some(&ua.resource_id),
            });
        }
        // The identity rules (GUIDs, resource ids, uniqueness, the flavor's limit) are the
        // core table's: the server that answers requests applies the same ones.
        let mut table = Box::new(IdentityTable::<&str, TABLE_CAPACITY>::new(flavor));
        let mut slots = Vec::with_capacity(fields.len());
        for f in &fields {
            let slot = table
                .insert(f.identity())
                .map_err(|e| ctx.table_error(e, f, &fields, raw.user_assigned.len()))?;
            slots.push(slot);
        }

        let mut system_assigned = None;
        let mut user_assigned = Vec::with_capacity(raw.user_assigned.len());
        for f in &fields {
            let identity = IdentityConfig {
                client_id: ctx.guid(f.client_id, &format!("{}.client_id", f.name))?,
                object_id: ctx.guid(f.object_id, &format!("{}.object_id", f.name))?,
                kind: match f.resource_id {
                    None => IdentityKind::SystemAssigned,
                    Some(r) => IdentityKind::UserAssigned {
                        resource_id: ResourceId {
                            text: r.get_ref().clone(),
                        },
                    },
                },
            };
            if identity.is_system_assigned() {
                system_assigned = Some(identity);
            } else {
                user_assigned.push(identity);
            }
        }

        Ok(Self {
            tenant_id,
            system_assigned,
            user_assigned,
        })
    }

    /// The VM used without `--config`: a system-assigned identity and two user-assigned ones
    /// (`uami-1`, `uami-2`), with fixed, recognisable IDs.
    pub fn builtin() -> Self {
        let guid = |first: u8, last: u8| {
            Guid((u128::from(first) << 120) | (0x4000_8000_u128 << 48) | u128::from(last))
        };
        let user = |n: u8| {
            IdentityConfig {
            client_id: guid(0x20, n + 1),
            object_id: guid(0x30, n + 1),
            kind: IdentityKind::UserAssigned {
                resource_id: format!(
                    "/subscriptions/{}/resourceGroups/mitoken-emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-{n}",
                    guid(0x40, 0)
                )
                .parse()
                .unwrap_or_else(|_| unreachable!("the built-in resource ID is well formed")),
            },
        }
        };
        Self {
            tenant_id: Self::DEFAULT_TENANT_ID,
            system_assigned: Some(IdentityConfig {
                client_id: guid(0x20, 1),
                object_id: guid(0x30, 1),
                kind: IdentityKind::SystemAssigned,
            }),
            user_assigned: vec![user(1), user(2)],
        }
    }

    /// All identities: the system-assigned one first, then the user-assigned ones in order.
    pub fn identities(&self) -> impl Iterator<Item = &IdentityConfig> {
        self.system_assigned.iter().chain(&self.user_assigned)
    }

    /// The identity at `slot` of the core's identity table built from this configuration
    /// (the system-assigned identity, then the user-assigned ones in order).
    pub fn get(&self, slot: Slot) -> Option<&IdentityConfig> {
        match slot {
            Slot::SystemAssigned => self.system_assigned.as_ref(),
            Slot::UserAssigned(n) => self.user_assigned.get(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use core::fmt::Write as _;

    use super::*;

    const RID: &str = "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/";

    fn parse(src: &str) -> Result<EmulatorConfig, ConfigError> {
        EmulatorConfig::parse(src, Path::new("vm.toml"), Flavor::Imds)
    }

    fn err(src: &str) -> (usize, String, ConfigErrorKind, String) {
        let e = parse(src).expect_err("config should be rejected");
        let text = e.to_string();
        match e {
            ConfigError::Invalid {
                location,
                field,
                kind,
                ..
            } => (location.line, field, kind, text),
            ConfigError::Read { .. } => panic!("unexpected read error"),
        }
    }

    fn ua(n: u32) -> String {
        format!(
            "[[user_assigned]]\nclient_id = \"20000000-0000-4000-8000-{n:012}\"\nobject_id = \"30000000-0000-4000-8000-{n:012}\"\nresource_id = \"{RID}id-{n}\"\n"
        )
    }

    #[test]
    fn guid_round_trip_and_rejects() {
        let g: Guid = "AbCdEf01-2345-6789-abcd-ef0123456789".parse().unwrap();
        assert_eq!(g.to_string(), "abcdef01-2345-6789-abcd-ef0123456789");
        for bad in [
            "",
            "abcdef01-2345-6789-abcd-ef012345678",
            "abcdef01-2345-6789-abcd-ef012345678g",
            "abcdef0112345-6789-abcd-ef0123456789",
            "{bcdef01-2345-6789-abcd-ef0123456789}",
        ] {
            assert_eq!(bad.parse::<Guid>(), Err(InvalidGuid), "{bad}");
        }
    }

    #[test]
    fn resource_ids_follow_the_core_rule() {
        let r: ResourceId = format!("{RID}my-id").to_ascii_lowercase().parse().unwrap();
        assert_eq!(r, format!("{RID}MY-ID").parse().unwrap());
        let bad = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/abc";
        assert_eq!(
            bad.parse::<ResourceId>().unwrap_err(),
            ResourceIdError::Subscription
        );
    }

    #[test]
    fn good_config() {
        let src = format!(
            "tenant_id = \"aaaaaaaa-0000-4000-8000-000000000000\"\n\n[system_assigned]\nclient_id = \"20000000-0000-4000-8000-000000000000\"\nobject_id = \"30000000-0000-4000-8000-000000000000\"\n\n{}\n{}",
            ua(1),
            ua(2)
        );
        let c = parse(&src).unwrap();
        assert_eq!(
            c.tenant_id.to_string(),
            "aaaaaaaa-0000-4000-8000-000000000000"
        );
        assert!(c.system_assigned.as_ref().unwrap().is_system_assigned());
        assert_eq!(c.user_assigned.len(), 2);
        assert_eq!(c.identities().count(), 3);
        let id2 = &c.user_assigned[1];
        assert_eq!(c.get(Slot::UserAssigned(1)), Some(id2));
        assert_eq!(c.get(Slot::SystemAssigned), c.system_assigned.as_ref());
        assert_eq!(c.get(Slot::UserAssigned(2)), None);
    }

    #[test]
    fn empty_config_has_no_identities_and_default_tenant() {
        let c = parse("").unwrap();
        assert_eq!(c.tenant_id, EmulatorConfig::DEFAULT_TENANT_ID);
        assert_eq!(c.identities().count(), 0);
    }

    #[test]
    fn builtin_is_valid_and_round_trips_through_its_own_rules() {
        let c = EmulatorConfig::builtin();
        assert!(c.system_assigned.is_some());
        assert_eq!(c.user_assigned.len(), 2);
        let mut src = format!("tenant_id = \"{}\"\n", c.tenant_id);
        let sa = c.system_assigned.as_ref().unwrap();
        writeln!(
            src,
            "[system_assigned]\nclient_id = \"{}\"\nobject_id = \"{}\"",
            sa.client_id, sa.object_id
        )
        .unwrap();
        for u in &c.user_assigned {
            writeln!(
                src,
                "[[user_assigned]]\nclient_id = \"{}\"\nobject_id = \"{}\"\nresource_id = \"{}\"",
                u.client_id,
                u.object_id,
                u.resource_id().unwrap()
            )
            .unwrap();
        }
        assert_eq!(parse(&src).unwrap(), c);
        assert_eq!(
            c.tenant_id.to_string(),
            "10000000-0000-4000-8000-000000000000"
        );
        let ids: Vec<String> = c.identities().map(|i| i.client_id.to_string()).collect();
        assert_eq!(
            ids,
            [
                "20000000-0000-4000-8000-000000000001",
                "20000000-0000-4000-8000-000000000002",
                "20000000-0000-4000-8000-000000000003"
            ]
        );
    }

    #[test]
    fn bad_guid_names_line_and_field() {
        let src = format!(
            "{}{}",
            ua(1),
            ua(2).replace("30000000-0000", "3000000x-0000")
        );
        let (line, field, kind, text) = err(&src);
        assert_eq!(line, 7);
        assert_eq!(field, "user_assigned[1].object_id");
        assert!(matches!(kind, ConfigErrorKind::InvalidGuid { .. }));
        assert!(
            text.starts_with("vm.toml:7:13: user_assigned[1].object_id: "),
            "{text}"
        );
    }

    #[test]
    fn bad_tenant() {
        let (line, field, kind, _) = err("\n\ntenant_id = \"nope\"\n");
        assert_eq!((line, field.as_str()), (3, "tenant_id"));
        assert!(matches!(kind, ConfigErrorKind::InvalidGuid { value } if value == "nope"));
    }

    #[test]
    fn bad_resource_id() {
        let src = ua(1).replace("userAssignedIdentities", "userAssignedIdentity");
        let (line, field, kind, _) = err(&src);
        assert_eq!((line, field.as_str()), (4, "user_assigned[0].resource_id"));
        assert!(matches!(
            kind,
            ConfigErrorKind::InvalidResourceId {
                problem: ResourceIdError::Shape,
                ..
            }
        ));
    }

    #[test]
    fn duplicates_name_both_places() {
        let src = format!(
            "{}{}",
            ua(1),
            ua(1)
                .replace("30000000", "31000000")
                .replace("id-1", "other")
        );
        let (line, field, kind, text) = err(&src);
        assert_eq!((line, field.as_str()), (6, "user_assigned[1].client_id"));
        assert_eq!(
            kind,
            ConfigErrorKind::Duplicate {
                value: "20000000-0000-4000-8000-000000000001".into(),
                first_field: "user_assigned[0].client_id".into(),
                first_line: 2,
            }
        );
        assert!(text.contains("already used by user_assigned[0].client_id (line 2)"));

        // The system-assigned identity shares the client-ID space.
        let src = format!(
            "[system_assigned]\nclient_id = \"20000000-0000-4000-8000-000000000001\"\nobject_id = \"30000000-0000-4000-8000-000000000000\"\n{}",
            ua(1)
        );
        let (line, field, _, _) = err(&src);
        assert_eq!((line, field.as_str()), (5, "user_assigned[0].client_id"));

        // Resource IDs compare case-insensitively.
        let src = format!("{}{}", ua(1), ua(2).replace("id-2", "ID-1"));
        let (line, field, kind, _) = err(&src);
        assert_eq!((line, field.as_str()), (8, "user_assigned[1].resource_id"));
        assert!(matches!(
            kind,
            ConfigErrorKind::Duplicate { first_line: 4, .. }
        ));
    }

    #[test]
    fn missing_and_unknown_fields() {
        let src = format!(
            "{}[[user_assigned]]\nclient_id = \"20000000-0000-4000-8000-000000000009\"\nresource_id = \"{RID}x-9\"\n",
            ua(1)
        );
        let (line, field, kind, _) = err(&src);
        assert_eq!(kind, ConfigErrorKind::MissingField);
        assert_eq!(field, "user_assigned[1].object_id");
        assert_eq!(line, 5, "the second [[user_assigned]] header");

        let src = "[system_assigned]\nclient_id = \"20000000-0000-4000-8000-000000000000\"\nobject_id = \"30000000-0000-4000-8000-000000000000\"\nclientid = \"x\"\n";
        let (line, field, kind, _) = err(src);
        assert_eq!(kind, ConfigErrorKind::UnknownField);
        assert_eq!((line, field.as_str()), (4, "system_assigned.clientid"));

        let (line, field, kind, _) = err("tenant = \"x\"\n");
        assert_eq!(kind, ConfigErrorKind::UnknownField);
        assert_eq!((line, field.as_str()), (1, "tenant"));
    }

    #[test]
    fn wrong_type_and_syntax() {
        let (line, field, kind, _) = err("\ntenant_id = 42\n");
        assert!(
            matches!(kind, ConfigErrorKind::WrongType { .. }),
            "{kind:?}"
        );
        assert_eq!((line, field.as_str()), (2, "tenant_id"));

        let (line, _, kind, text) = err("tenant_id = \"x\"\n[system_assigned\n");
        assert!(matches!(kind, ConfigErrorKind::Syntax { .. }), "{kind:?}");
        assert_eq!(line, 2);
        assert!(text.starts_with("vm.toml:2:"), "{text}");
    }

    #[test]
    fn flavor_limits() {
        let many: String = (1..=33).map(ua).collect();
        assert_eq!(parse(&many).unwrap().user_assigned.len(), 33);
        let e = EmulatorConfig::parse(&many, Path::new("vm.toml"), Flavor::Extension).unwrap_err();
        assert_eq!(e.field(), Some("user_assigned[32]"));
        assert_eq!(e.location().unwrap().line, 32 * 4 + 2);
        assert_eq!(
            e.kind(),
            Some(&ConfigErrorKind::TooManyUserAssigned {
                count: 33,
                limit: 32,
                flavor: Flavor::Extension
            })
        );
        let many: String = (1..=1001).map(ua).collect();
        let e = parse(&many).unwrap_err();
        assert!(matches!(
            e.kind(),
            Some(ConfigErrorKind::TooManyUserAssigned { limit: 1000, .. })
        ));
    }

    #[test]
    fn read_error_names_file() {
        let e = EmulatorConfig::load(Path::new("/nonexistent/vm.toml"), Flavor::Imds).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/vm.toml: cannot read")
        );
    }
}
