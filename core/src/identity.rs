//! The managed identities of a VM, the selectors a token request can carry, and the default rules
//! that pick one (docs/protocol.md §3).
//!
//! An [`IdentityTable`] holds at most one system-assigned identity and up to `N` user-assigned
//! ones. Its strings are kept as the shell chooses: borrowed (`IdentityTable<&str, N>`, for
//! constants or a firmware's static configuration) or owned (`IdentityTable<Box<str>, N>` in a
//! shell with a heap: the emulator's table lives and dies with the emulator, nothing leaked).
//! Every lookup answers with an [`Identity`] borrowed from the table.
//! GUIDs are parsed to `u128` once, when an identity is inserted, and kept in sorted indexes, so
//! [`IdentityTable::resolve`] is a binary search (`O(log n)`), not a scan, even at IMDS's limit of
//! 1000 user-assigned identities.
//!
//! Comparisons follow Azure: GUIDs compare by value (so `ABCD…` and `abcd…` are the same client
//! id) and ARM resource ids compare ASCII-case-insensitively.

use core::cmp::Ordering;
use core::fmt;

use heapless::Vec;

/// Largest number of user-assigned identities IMDS allows on one VM (docs/protocol.md §2.3, §7 #3).
pub const IMDS_MAX_USER_ASSIGNED: usize = 1000;

/// Largest number of user-assigned identities the legacy VM extension allows (docs/protocol.md §2.3).
pub const EXTENSION_MAX_USER_ASSIGNED: usize = 32;

/// Which service a server (and its identity table) imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flavor {
    /// The Instance Metadata Service at `169.254.169.254` (`/metadata/identity/oauth2/token`).
    Imds,
    /// The legacy managed-identity VM extension at `localhost:50342` (`/oauth2/token`).
    Extension,
}

impl Flavor {
    /// How many user-assigned identities this flavor allows: 1000 (IMDS) or 32 (extension).
    pub const fn max_user_assigned(self) -> usize {
        match self {
            Flavor::Imds => IMDS_MAX_USER_ASSIGNED,
            Flavor::Extension => EXTENSION_MAX_USER_ASSIGNED,
        }
    }

    /// A short human name: `IMDS` or `VM extension`.
    pub const fn name(self) -> &'static str {
        match self {
            Flavor::Imds => "IMDS",
            Flavor::Extension => "VM extension",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GUID as a number, parsed from its `8-4-4-4-12` hexadecimal text form.
///
/// Hex digits are accepted in either case, so equal GUIDs compare equal whatever their spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub u128);

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits of either case).
    ///
    /// Anything else (braces, missing hyphens, surrounding spaces, wrong length) is `None`.
    pub fn parse(s: &str) -> Option<Guid> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut value: u128 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b != b'-' {
                    return None;
                }
                continue;
            }
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return None,
            };
            value = (value << 4) | u128::from(digit);
        }
        Some(Guid(value))
    }
}

/// A string was not a GUID in the `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidGuid;

impl fmt::Display for InvalidGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hex digits)")
    }
}

impl core::error::Error for InvalidGuid {}

impl core::str::FromStr for Guid {
    type Err = InvalidGuid;

    /// [`Guid::parse`], as a `Result`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guid::parse(s).ok_or(InvalidGuid)
    }
}

impl fmt::Display for Guid {
    /// Lower-case `8-4-4-4-12` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}

/// Compares two strings ASCII-case-insensitively (the order used for ARM resource ids).
pub fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // Identical bytes are identical ignoring case: skip the common prefix 16 bytes at a time
    // (ARM ids share long prefixes such as `/subscriptions/<sub>/resourceGroups/`).
    let mut pos = 0usize;
    while let (Some(chunk_a), Some(chunk_b)) = (
        a.get(pos..pos.saturating_add(16)),
        b.get(pos..pos.saturating_add(16)),
    ) {
        if chunk_a != chunk_b {
            break;
        }
        pos = pos.saturating_add(16);
    }
    let rest_a = a.get(pos..).unwrap_or_default();
    let rest_b = b.get(pos..).unwrap_or_default();
    for (ca, cb) in rest_a.iter().zip(rest_b) {
        let (la, lb) = (ca.to_ascii_lowercase(), cb.to_ascii_lowercase());
        if la != lb {
            return la.cmp(&lb);
        }
    }
    rest_a.len().cmp(&rest_b.len())
}

/// The kind of a managed identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityKind {
    /// Tied to the VM's lifetime; at most one per VM.
    SystemAssigned,
    /// A standalone ARM resource (`Microsoft.ManagedIdentity/userAssignedIdentities`).
    UserAssigned,
}

/// One managed identity, borrowing its strings from storage the shell owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity<'a> {
    /// System- or user-assigned.
    pub kind: IdentityKind,
    /// Entra client (application) id, a GUID.
    pub client_id: &'a str,
    /// Entra object id (principal id), a GUID.
    pub object_id: &'a str,
    /// ARM resource id; required for a user-assigned identity, `None` for the system-assigned one.
    pub resource_id: Option<&'a str>,
}

impl<'a> Identity<'a> {
    /// A system-assigned identity.
    pub const fn system_assigned(client_id: &'a str, object_id: &'a str) -> Self {
        Identity {
            kind: IdentityKind::SystemAssigned,
            client_id,
            object_id,
            resource_id: None,
        }
    }

    /// A user-assigned identity with its ARM resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`).
    pub const fn user_assigned(
        client_id: &'a str,
        object_id: &'a str,
        resource_id: &'a str,
    ) -> Self {
        Identity {
            kind: IdentityKind::UserAssigned,
            client_id,
            object_id,
            resource_id: Some(resource_id),
        }
    }

    /// True when `selector` names this identity: GUIDs by value, resource ids ignoring ASCII case.
    /// [`Selector::Default`] names no identity in particular and matches every one.
    pub fn matches(&self, selector: &Selector<'_>) -> bool {
        match *selector {
            Selector::Default => true,
            Selector::ClientId(s) => guid_eq(self.client_id, s),
            Selector::ObjectId(s) => guid_eq(self.object_id, s),
            Selector::ResourceId(s) => self.resource_id.is_some_and(|r| r.eq_ignore_ascii_case(s)),
        }
    }
}

fn guid_eq(a: &str, b: &str) -> bool {
    matches!((Guid::parse(a), Guid::parse(b)), (Some(x), Some(y)) if x == y)
}

/// How a token request names the identity it wants (docs/protocol.md §1.3–1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Selector<'s> {
    /// No selector: apply the default rules of docs/protocol.md §3.
    Default,
    /// `client_id=<guid>`.
    ClientId(&'s str),
    /// `object_id=<guid>`.
    ObjectId(&'s str),
    /// `msi_res_id=<ARM id>` (or its alternative spelling `mi_res_id`).
    ResourceId(&'s str),
}

/// Where an identity sits in its table: a stable handle for per-identity state in the shell
/// (request counters, fault plans, token caches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The system-assigned identity.
    SystemAssigned,
    /// The user-assigned identity inserted `n`-th (from 0), in insertion order.
    UserAssigned(usize),
}

impl Slot {
    /// A dense index: 0 for the system-assigned identity, `n + 1` for user-assigned `n`.
    /// A shell can keep per-identity state in an array of `N + 1` entries.
    pub const fn index(self) -> usize {
        match self {
            Slot::SystemAssigned => 0,
            Slot::UserAssigned(n) => n.saturating_add(1),
        }
    }
}

/// The identity a request resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resolved<'a> {
    /// Its place in the table.
    pub slot: Slot,
    /// The identity itself.
    pub identity: Identity<'a>,
}

/// Why an identity could not be added to an [`IdentityTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TableError {
    /// More user-assigned identities than the flavor allows.
    TooManyUserAssigned {
        /// The table's flavor.
        flavor: Flavor,
        /// Its limit (1000 for IMDS, 32 for the extension).
        limit: usize,
    },
    /// More user-assigned identities than the table's const-generic capacity `N`.
    CapacityExceeded {
        /// The table's capacity.
        capacity: usize,
    },
    /// A second system-assigned identity.
    DuplicateSystemAssigned,
    /// The client id is not a GUID.
    InvalidClientId,
    /// The object id is not a GUID.
    InvalidObjectId,
    /// A user-assigned identity without a resource id, or one that is not an ARM id of a
    /// `Microsoft.ManagedIdentity/userAssignedIdentities` resource (see
    /// [`check_user_assigned_resource_id`]).
    InvalidResourceId(ResourceIdError),
    /// A system-assigned identity that carries a resource id.
    UnexpectedResourceId,
    /// The client id is already used by another identity of the table.
    DuplicateClientId {
        /// The identity that has it.
        first: Slot,
    },
    /// The object id is already used by another identity of the table.
    DuplicateObjectId {
        /// The identity that has it.
        first: Slot,
    },
    /// The resource id (compared ignoring ASCII case) is already in the table.
    DuplicateResourceId {
        /// The identity that has it.
        first: Slot,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TableError::TooManyUserAssigned { flavor, limit } => write!(
                f,
                "too many user-assigned identities: {flavor} allows at most {limit} per VM"
            ),
            TableError::CapacityExceeded { capacity } => write!(
                f,
                "identity table is full: capacity is {capacity} user-assigned identities"
            ),
            TableError::DuplicateSystemAssigned => {
                f.write_str("a VM has at most one system-assigned identity")
            }
            TableError::InvalidClientId => {
                f.write_str("client_id is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
            }
            TableError::InvalidObjectId => {
                f.write_str("object_id is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
            }
            TableError::InvalidResourceId(problem) => {
                write!(f, "not a user-assigned identity resource_id: {problem}")
            }
            TableError::UnexpectedResourceId => {
                f.write_str("a system-assigned identity has no user-assigned resource_id")
            }
            TableError::DuplicateClientId { .. } => {
                f.write_str("client_id is used by two identities")
            }
            TableError::DuplicateObjectId { .. } => {
                f.write_str("object_id is used by two identities")
            }
            TableError::DuplicateResourceId { .. } => {
                f.write_str("resource_id is used by two identities (ARM ids ignore case)")
            }
        }
    }
}

impl core::error::Error for TableError {}

/// Why a selector resolved to no identity (docs/protocol.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResolveError {
    /// The selector names no identity of the VM (or the VM has none): IMDS's `Identity not found`.
    NotFound,
    /// No selector, no system-assigned identity and several user-assigned ones.
    MultipleUserAssigned,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResolveError::NotFound => "identity not found",
            ResolveError::MultipleUserAssigned => {
                "several user-assigned identities and no system-assigned one: name one"
            }
        })
    }
}

impl core::error::Error for ResolveError {}

/// One identity as the table keeps it: its strings in the table's storage type `S`, its GUIDs
/// parsed.
#[derive(Debug, Clone)]
struct Entry<S> {
    kind: IdentityKind,
    client_id: S,
    object_id: S,
    resource_id: Option<S>,
    client: Guid,
    object: Guid,
}

impl<S: AsRef<str>> Entry<S> {
    /// Stores `identity` (already validated) with its parsed GUIDs.
    fn store<'x>(identity: Identity<'x>, client: Guid, object: Guid) -> Self
    where
        S: From<&'x str>,
    {
        Entry {
            kind: identity.kind,
            client_id: S::from(identity.client_id),
            object_id: S::from(identity.object_id),
            resource_id: identity.resource_id.map(S::from),
            client,
            object,
        }
    }

    /// The identity, borrowing the stored strings.
    fn identity(&self) -> Identity<'_> {
        Identity {
            kind: self.kind,
            client_id: self.client_id.as_ref(),
            object_id: self.object_id.as_ref(),
            resource_id: self.resource_id.as_ref().map(AsRef::as_ref),
        }
    }
}

/// The identities of one VM: an optional system-assigned identity and up to `N` user-assigned
/// ones (never more than the flavor's limit), with sorted indexes for `O(log n)` resolution.
///
/// `S` is how the table keeps the identities' strings: `&'a str` borrows them from storage
/// that outlives the table (a `static`, the firmware's constants), an owning type such as
/// `String`, `Box<str>` or `Arc<str>` (in a shell with a heap) makes the table own them, so a
/// long-running shell can hold the table without leaking its configuration. Either way
/// [`insert`](Self::insert) takes an [`Identity`] and every lookup answers with an [`Identity`]
/// borrowed from the table.
///
/// `N` only sizes the storage; the flavor's limit (1000 / 32) is enforced on top of it. About
/// `100 × N` bytes; put an IMDS-sized table in a `static` or a `Box` rather than on a small stack.
#[derive(Debug, Clone)]
pub struct IdentityTable<S, const N: usize> {
    flavor: Flavor,
    system: Option<Entry<S>>,
    /// User-assigned identities in insertion order (their [`Slot::UserAssigned`] numbers).
    users: Vec<Entry<S>, N>,
    /// Positions in `users`, sorted by client id.
    by_client: Vec<u16, N>,
    /// Positions in `users`, sorted by object id.
    by_object: Vec<u16, N>,
    /// Positions in `users`, sorted by resource id ignoring ASCII case.
    by_resource: Vec<u16, N>,
}

impl<S, const N: usize> IdentityTable<S, N> {
    /// An empty table for `flavor`.
    pub const fn new(flavor: Flavor) -> Self {
        IdentityTable {
            flavor,
            system: None,
            users: Vec::new(),
            by_client: Vec::new(),
            by_object: Vec::new(),
            by_resource: Vec::new(),
        }
    }
}

impl<S: AsRef<str>, const N: usize> IdentityTable<S, N> {
    /// A table holding `identities` (in order), or the first error.
    pub fn from_identities<'x>(
        flavor: Flavor,
        identities: &[Identity<'x>],
    ) -> Result<Self, TableError>
    where
        S: From<&'x str>,
    {
        let mut table = Self::new(flavor);
        for identity in identities {
            table.insert(*identity)?;
        }
        Ok(table)
    }

    /// The flavor whose limit the table enforces.
    pub const fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The system-assigned identity, if the VM has one.
    pub fn system_assigned(&self) -> Option<Identity<'_>> {
        self.system.as_ref().map(Entry::identity)
    }

    /// The user-assigned identities, in insertion order.
    pub fn user_assigned(&self) -> impl ExactSizeIterator<Item = Identity<'_>> + '_ {
        self.users.iter().map(Entry::identity)
    }

    /// Number of user-assigned identities.
    pub fn user_assigned_len(&self) -> usize {
        self.users.len()
    }

    /// The identity at `slot`, if there is one.
    pub fn get(&self, slot: Slot) -> Option<Identity<'_>> {
        match slot {
            Slot::SystemAssigned => self.system_assigned(),
            Slot::UserAssigned(n) => self.users.get(n).map(Entry::identity),
        }
    }

    /// Adds `identity`, validating its ids and refusing duplicates and tables over the flavor's
    /// limit. Returns the identity's slot. On error the table is unchanged.
    /// The strings are stored as `S` (copied for an owning `S`, borrowed for `&str`).
    pub fn insert<'x>(&mut self, identity: Identity<'x>) -> Result<Slot, TableError>
    where
        S: From<&'x str>,
    {
        let client = Guid::parse(identity.client_id).ok_or(TableError::InvalidClientId)?;
        let object = Guid::parse(identity.object_id).ok_or(TableError::InvalidObjectId)?;
        let first = Slot::SystemAssigned;
        if let Some(sys) = &self.system {
            if sys.client == client {
                return Err(TableError::DuplicateClientId { first });
            }
            if sys.object == object {
                return Err(TableError::DuplicateObjectId { first });
            }
        }
        match identity.kind {
            IdentityKind::SystemAssigned => {
                if identity.resource_id.is_some() {
                    return Err(TableError::UnexpectedResourceId);
                }
                if self.system.is_some() {
                    return Err(TableError::DuplicateSystemAssigned);
                }
                if let Ok(n) = self.find_client(client) {
                    return Err(TableError::DuplicateClientId {
                        first: Slot::UserAssigned(n),
                    });
                }
                if let Ok(n) = self.find_object(object) {
                    return Err(TableError::DuplicateObjectId {
                        first: Slot::UserAssigned(n),
                    });
                }
                self.system = Some(Entry::store(identity, client, object));
                Ok(Slot::SystemAssigned)
            }
            IdentityKind::UserAssigned => self.insert_user(identity, client, object),
        }
    }

    fn insert_user<'x>(
        &mut self,
        identity: Identity<'x>,
        client: Guid,
        object: Guid,
    ) -> Result<Slot, TableError>
    where
        S: From<&'x str>,
    {
        let limit = self.flavor.max_user_assigned();
        let n = self.users.len();
        if n >= limit {
            return Err(TableError::TooManyUserAssigned {
                flavor: self.flavor,
                limit,
            });
        }
        if n >= N {
            return Err(TableError::CapacityExceeded { capacity: N });
        }
        // n < limit <= 1000, so the position fits in a u16.
        let pos = u16::try_from(n).map_err(|_| TableError::CapacityExceeded { capacity: N })?;
        let resource = identity
            .resource_id
            .ok_or(TableError::InvalidResourceId(ResourceIdError::Missing))?;
        check_user_assigned_resource_id(resource).map_err(TableError::InvalidResourceId)?;
        let at_client = match self.find_client(client) {
            Ok(n) => {
                return Err(TableError::DuplicateClientId {
                    first: Slot::UserAssigned(n),
                });
            }
            Err(at) => at,
        };
        let at_object = match self.find_object(object) {
            Ok(n) => {
                return Err(TableError::DuplicateObjectId {
                    first: Slot::UserAssigned(n),
                });
            }
            Err(at) => at,
        };
        let at_resource = match self.find_resource(resource) {
            Ok(n) => {
                return Err(TableError::DuplicateResourceId {
                    first: Slot::UserAssigned(n),
                });
            }
            Err(at) => at,
        };
        // Capacity was checked above, so none of these pushes/inserts can fail.
        let full = TableError::CapacityExceeded { capacity: N };
        let entry = Entry::store(identity, client, object);
        self.users.push(entry).map_err(|_| full)?;
        self.by_client.insert(at_client, pos).map_err(|_| full)?;
        self.by_object.insert(at_object, pos).map_err(|_| full)?;
        self.by_resource
            .insert(at_resource, pos)
            .map_err(|_| full)?;
        Ok(Slot::UserAssigned(n))
    }

    fn user(&self, pos: u16) -> Option<&Entry<S>> {
        self.users.get(usize::from(pos))
    }

    /// Binary search of `by_client`: `Ok(position in users)` or `Err(insertion point)`.
    fn find_client(&self, g: Guid) -> Result<usize, usize> {
        self.by_client
            .binary_search_by(|&p| self.user(p).map_or(Ordering::Less, |e| e.client.cmp(&g)))
            .and_then(|i| self.by_client.get(i).map(|&p| usize::from(p)).ok_or(i))
    }

    fn find_object(&self, g: Guid) -> Result<usize, usize> {
        self.by_object
            .binary_search_by(|&p| self.user(p).map_or(Ordering::Less, |e| e.object.cmp(&g)))
            .and_then(|i| self.by_object.get(i).map(|&p| usize::from(p)).ok_or(i))
    }

    fn find_resource(&self, r: &str) -> Result<usize, usize> {
        self.by_resource
            .binary_search_by(|&p| {
                self.user(p)
                    .and_then(|e| e.resource_id.as_ref())
                    .map_or(Ordering::Less, |x| cmp_ignore_ascii_case(x.as_ref(), r))
            })
            .and_then(|i| self.by_resource.get(i).map(|&p| usize::from(p)).ok_or(i))
    }

    fn resolved_user(&self, pos: usize) -> Result<Resolved<'_>, ResolveError> {
        self.users
            .get(pos)
            .map(|e| Resolved {
                slot: Slot::UserAssigned(pos),
                identity: e.identity(),
            })
            .ok_or(ResolveError::NotFound)
    }

    fn resolved_system(&self) -> Option<Resolved<'_>> {
        self.system.as_ref().map(|e| Resolved {
            slot: Slot::SystemAssigned,
            identity: e.identity(),
        })
    }

    /// Picks the identity `selector` names, applying docs/protocol.md §3 when there is none:
    ///
    /// 1. no selector and a system-assigned identity → the system-assigned identity;
    /// 2. no selector, no system-assigned identity, exactly one user-assigned → that one;
    /// 3. no selector, no system-assigned identity, several user-assigned →
    ///    [`ResolveError::MultipleUserAssigned`];
    /// 4. no identity at all, or a selector that matches nothing (including one that is not a
    ///    GUID) → [`ResolveError::NotFound`].
    ///
    /// `client_id` / `object_id` selectors also match the system-assigned identity's ids.
    /// The result always [`matches`](Identity::matches) `selector`.
    pub fn resolve(&self, selector: &Selector<'_>) -> Result<Resolved<'_>, ResolveError> {
        match *selector {
            Selector::Default => {
                if let Some(r) = self.resolved_system() {
                    return Ok(r);
                }
                match self.users.len() {
                    0 => Err(ResolveError::NotFound),
                    1 => self.resolved_user(0),
                    _ => Err(ResolveError::MultipleUserAssigned),
                }
            }
            Selector::ClientId(s) => {
                let g = Guid::parse(s).ok_or(ResolveError::NotFound)?;
                if let Some(r) = self
                    .resolved_system()
                    .filter(|_| self.system_is(|e| e.client == g))
                {
                    return Ok(r);
                }
                let pos = self.find_client(g).map_err(|_| ResolveError::NotFound)?;
                self.resolved_user(pos)
            }
            Selector::ObjectId(s) => {
                let g = Guid::parse(s).ok_or(ResolveError::NotFound)?;
                if let Some(r) = self
                    .resolved_system()
                    .filter(|_| self.system_is(|e| e.object == g))
                {
                    return Ok(r);
                }
                let pos = self.find_object(g).map_err(|_| ResolveError::NotFound)?;
                self.resolved_user(pos)
            }
            Selector::ResourceId(s) => {
                let pos = self.find_resource(s).map_err(|_| ResolveError::NotFound)?;
                self.resolved_user(pos)
            }
        }
    }

    fn system_is(&self, f: impl FnOnce(&Entry<S>) -> bool) -> bool {
        self.system.as_ref().is_some_and(f)
    }
}

/// Why a string is not the ARM resource id of a user-assigned identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceIdError {
    /// A user-assigned identity without a resource id.
    Missing,
    /// Not the nine `/`-separated segments of
    /// `/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`
    /// (the fixed segments compared ignoring ASCII case).
    Shape,
    /// The subscription segment is not a GUID.
    Subscription,
    /// The resource group name is empty, longer than 90 characters, ends with `.` or has a
    /// character other than letters, digits, `-`, `_`, `.`, `(`, `)` (ARM's naming rules).
    ResourceGroup,
    /// The identity name is not 3–128 ASCII letters, digits, `-` or `_` starting with a letter
    /// or digit (ARM's rules for `userAssignedIdentities`).
    Name,
}

impl fmt::Display for ResourceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceIdError::Missing => "a user-assigned identity needs a resource_id",
            ResourceIdError::Shape => {
                "expected /subscriptions/<guid>/resourceGroups/<rg>/providers/\
                 Microsoft.ManagedIdentity/userAssignedIdentities/<name>"
            }
            ResourceIdError::Subscription => "the subscription is not a GUID",
            ResourceIdError::ResourceGroup => "invalid resource group name",
            ResourceIdError::Name => {
                "invalid identity name (3-128 letters, digits, '-' or '_', starting with a \
                 letter or digit)"
            }
        })
    }
}

impl core::error::Error for ResourceIdError {}

/// Checks that `s` is the ARM resource id of a user-assigned identity,
/// `/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// with ARM's naming rules: the fixed segments in any ASCII case, the subscription a GUID, the
/// resource group 1–90 letters, digits, `-`, `_`, `.`, `(`, `)` not ending with `.`, and the
/// name 3–128 ASCII letters, digits, `-`, `_` starting with a letter or digit.
///
/// The one rule for an identity table's resource ids: the emulator's configuration and the
/// server's table both use it (an id Azure could not create is a configuration error, not an
/// identity the server answers for).
pub fn check_user_assigned_resource_id(s: &str) -> Result<(), ResourceIdError> {
    let mut parts = s.split('/');
    let mut next = || parts.next().ok_or(ResourceIdError::Shape);
    let fixed = |part: &str, lit: &str| {
        if part.eq_ignore_ascii_case(lit) {
            Ok(())
        } else {
            Err(ResourceIdError::Shape)
        }
    };
    fixed(next()?, "")?;
    fixed(next()?, "subscriptions")?;
    let subscription = next()?;
    fixed(next()?, "resourceGroups")?;
    let group = next()?;
    fixed(next()?, "providers")?;
    fixed(next()?, "Microsoft.ManagedIdentity")?;
    fixed(next()?, "userAssignedIdentities")?;
    let name = next()?;
    if parts.next().is_some() {
        return Err(ResourceIdError::Shape);
    }
    if Guid::parse(subscription).is_none() {
        return Err(ResourceIdError::Subscription);
    }
    let group_ok = !group.is_empty()
        && group.chars().count() <= 90
        && !group.ends_with('.')
        && group
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if !group_ok {
        return Err(ResourceIdError::ResourceGroup);
    }
    let name_ok = (3..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !name_ok {
        return Err(ResourceIdError::Name);
    }
    Ok(())
}

/// True when [`check_user_assigned_resource_id`] accepts `s`.
pub fn is_user_assigned_resource_id(s: &str) -> bool {
    check_user_assigned_resource_id(s).is_ok()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::borrow::ToOwned;
    use std::format;
    use std::string::String;
    use std::vec::Vec as StdVec;

    const RID: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one";

    #[test]
    fn guid_parse_and_display() {
        let g = Guid::parse("0123ABCD-4567-89ab-cdef-0123456789AB").unwrap();
        assert_eq!(g.0, 0x0123_abcd_4567_89ab_cdef_0123_4567_89ab);
        assert_eq!(format!("{g}"), "0123abcd-4567-89ab-cdef-0123456789ab");
        for bad in [
            "",
            "0123abcd456789abcdef0123456789ab",
            "{0123abcd-4567-89ab-cdef-0123456789ab}",
            "0123abcd-4567-89ab-cdef-0123456789ag",
            "0123abcd+4567-89ab-cdef-0123456789ab",
            " 123abcd-4567-89ab-cdef-0123456789ab",
            "0123abcd-4567-89ab-cdef-0123456789a\u{e9}",
        ] {
            assert_eq!(Guid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn resource_id_shape() {
        assert!(is_user_assigned_resource_id(RID));
        assert!(is_user_assigned_resource_id(&RID.to_ascii_lowercase()));
        assert!(!is_user_assigned_resource_id(
            "/subscriptions/s/resourceGroups/rg"
        ));
        assert!(!is_user_assigned_resource_id(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
        ));
        assert!(!is_user_assigned_resource_id(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        ));
        assert!(!is_user_assigned_resource_id(&format!("{RID}/x")));
        let sub = "/subscriptions/40000000-0000-4000-8000-000000000000";
        let cases = [
            (
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/abc".to_owned(),
                ResourceIdError::Subscription,
            ),
            (
                format!("{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/abc"),
                ResourceIdError::Shape,
            ),
            (
                format!("{sub}/resourceGroups/rg./providers/Microsoft.ManagedIdentity/userAssignedIdentities/abc"),
                ResourceIdError::ResourceGroup,
            ),
            (
                format!("{sub}/resourceGroups/r?g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/abc"),
                ResourceIdError::ResourceGroup,
            ),
            (
                format!("{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ab"),
                ResourceIdError::Name,
            ),
            (
                format!("{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a b c"),
                ResourceIdError::Name,
            ),
            (
                format!("{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/-abc"),
                ResourceIdError::Name,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(check_user_assigned_resource_id(&text), Err(want), "{text}");
        }
        let unicode_group = format!(
            "{sub}/resourceGroups/gr\u{fc}ppe(1)/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id_1"
        );
        assert_eq!(check_user_assigned_resource_id(&unicode_group), Ok(()));
    }

    #[test]
    fn flavor_limits_are_enforced() {
        let names: StdVec<String> = (0..33).map(|i| format!("{RID}{i}")).collect();
        let guids: StdVec<String> = (0..66u128).map(|i| format!("{}", Guid(i + 7))).collect();
        let mut t: IdentityTable<&str, 40> = IdentityTable::new(Flavor::Extension);
        for i in 0..33usize {
            let r = t.insert(Identity::user_assigned(
                &guids[2 * i],
                &guids[2 * i + 1],
                &names[i],
            ));
            if i < 32 {
                assert_eq!(r, Ok(Slot::UserAssigned(i)));
            } else {
                let e = r.unwrap_err();
                assert_eq!(
                    e,
                    TableError::TooManyUserAssigned {
                        flavor: Flavor::Extension,
                        limit: 32
                    }
                );
                assert_eq!(
                    format!("{e}"),
                    "too many user-assigned identities: VM extension allows at most 32 per VM"
                );
            }
        }
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn duplicates_and_invalid_ids_are_refused() {
        let a = "11111111-1111-1111-1111-11111111111a";
        let b = "22222222-2222-2222-2222-222222222222";
        let c = "33333333-3333-3333-3333-333333333333";
        let d = "44444444-4444-4444-4444-444444444444";
        let e = "55555555-5555-5555-5555-555555555555";
        let upper_a = a.to_ascii_uppercase();
        let lower = RID.to_ascii_lowercase();
        let f = "66666666-6666-6666-6666-666666666666";
        let mut t: IdentityTable<&str, 4> = IdentityTable::new(Flavor::Imds);
        assert_eq!(
            t.insert(Identity::system_assigned(a, b)),
            Ok(Slot::SystemAssigned)
        );
        assert_eq!(
            t.insert(Identity::system_assigned(c, d)),
            Err(TableError::DuplicateSystemAssigned)
        );
        assert_eq!(
            t.insert(Identity::user_assigned(c, d, RID)),
            Ok(Slot::UserAssigned(0))
        );
        assert_eq!(
            t.insert(Identity::user_assigned(&upper_a, e, RID)),
            Err(TableError::DuplicateClientId {
                first: Slot::SystemAssigned
            })
        );
        assert_eq!(
            t.insert(Identity::user_assigned(e, d, RID)),
            Err(TableError::DuplicateObjectId {
                first: Slot::UserAssigned(0)
            })
        );
        assert_eq!(
            t.insert(Identity::user_assigned(e, b, RID)),
            Err(TableError::DuplicateObjectId {
                first: Slot::SystemAssigned
            })
        );
        assert_eq!(
            t.insert(Identity::user_assigned(e, f, &lower)),
            Err(TableError::DuplicateResourceId {
                first: Slot::UserAssigned(0)
            })
        );
        assert_eq!(
            t.insert(Identity::user_assigned("nope", e, RID)),
            Err(TableError::InvalidClientId)
        );
        assert_eq!(
            t.insert(Identity::user_assigned(e, "nope", RID)),
            Err(TableError::InvalidObjectId)
        );
        assert_eq!(
            t.insert(Identity::user_assigned(e, f, "/x")),
            Err(TableError::InvalidResourceId(ResourceIdError::Shape))
        );
        let no_resource = Identity {
            resource_id: None,
            ..Identity::user_assigned(e, f, RID)
        };
        assert_eq!(
            t.insert(no_resource),
            Err(TableError::InvalidResourceId(ResourceIdError::Missing))
        );
        assert_eq!(t.user_assigned_len(), 1);
    }

    #[test]
    fn capacity_below_flavor_limit() {
        let mut t: IdentityTable<&str, 0> = IdentityTable::new(Flavor::Imds);
        assert_eq!(
            t.insert(Identity::user_assigned(
                "11111111-1111-1111-1111-111111111111",
                "22222222-2222-2222-2222-222222222222",
                RID
            )),
            Err(TableError::CapacityExceeded { capacity: 0 })
        );
    }
}
