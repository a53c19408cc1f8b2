//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Most targets read their input as one **split byte** followed by the payload: the split byte
//! seeds [`cuts`], which chooses where a simulated socket read ends, so the fuzzer explores
//! splits and contents together and every crash replays exactly.

use mitoken_core::identity::{Flavor, Identity, IdentityTable};
use mitoken_core::server::{IssueError, IssueRequest, Issued, Issuer};

/// Splits the input into its split byte and payload; `None` for an empty input.
pub fn split_byte(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&b, rest)| (b, rest))
}

/// Fill levels `0 < c1 < c2 < … < len` at which a reader sees the payload grow, derived from
/// `seed`: the low three bits choose the largest step (1, 2, 3, 7, 16, 64, 512 bytes, or the
/// whole payload at once), the rest seeds a xorshift generator for the step sizes. Always ends
/// with `len` (and is `[0]` for an empty payload, so a reader is still called once).
pub fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let max_step = match seed & 7 {
        0 => 1,
        1 => 2,
        2 => 3,
        3 => 7,
        4 => 16,
        5 => 64,
        6 => 512,
        _ => usize::MAX,
    };
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let step = if max_step == usize::MAX {
            len
        } else {
            1 + state as usize % max_step
        };
        at = at.saturating_add(step).min(len);
        out.push(at);
    }
    if out.is_empty() {
        out.push(0);
    }
    out
}

/// A fixed clock for every target (2025-09-12).
pub const NOW: u64 = 1_757_687_322;

/// Tenant of the fuzz tables.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The system-assigned identity's client and object ids.
pub const SAMI: (&str, &str) = (
    "a0a0a0a0-0000-4000-8000-000000000001",
    "b0b0b0b0-0000-4000-8000-000000000001",
);
/// User-assigned identities: client id, object id, resource id.
pub const UAMIS: [(&str, &str, &str); 3] = [
    (
        "c1c1c1c1-1111-4111-8111-111111111111",
        "d1d1d1d1-1111-4111-8111-111111111111",
        "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one",
    ),
    (
        "c2c2c2c2-2222-4222-8222-222222222222",
        "d2d2d2d2-2222-4222-8222-222222222222",
        "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/two",
    ),
    (
        "c3c3c3c3-3333-4333-8333-333333333333",
        "d3d3d3d3-3333-4333-8333-333333333333",
        "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/three",
    ),
];

/// A table for `flavor` with or without the system-assigned identity and the first `uamis`
/// (at most 3) user-assigned ones.
pub fn table(flavor: Flavor, sami: bool, uamis: usize) -> IdentityTable<&'static str, 4> {
    let mut t = IdentityTable::new(flavor);
    if sami {
        t.insert(Identity::system_assigned(SAMI.0, SAMI.1))
            .expect("valid SAMI");
    }
    for (client, object, res) in UAMIS.iter().take(uamis) {
        t.insert(Identity::user_assigned(client, object, res))
            .expect("valid UAMI");
    }
    t
}

/// What [`FuzzIssuer`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueMode {
    /// Issue `tok.<slot>.<resource length>`.
    Ok,
    /// The resource is unknown (400).
    UnknownResource,
    /// Throttled (429) with this `Retry-After`.
    Throttled(Option<u32>),
    /// Failed (500).
    Failed,
}

/// A simple issuer: tokens are `tok.<slot index>.<resource length>`, valid from `now − 300`
/// for a day. Counts its calls.
#[derive(Debug, Clone)]
pub struct FuzzIssuer {
    /// What to answer.
    pub mode: IssueMode,
    /// How often [`Issuer::issue`] was called.
    pub calls: usize,
}

impl FuzzIssuer {
    /// An issuer answering as `mode` says.
    pub fn new(mode: IssueMode) -> Self {
        Self { mode, calls: 0 }
    }

    /// The token this issuer writes for slot index `slot` and a resource of `resource_len`
    /// bytes.
    pub fn token_for(slot: usize, resource_len: usize) -> String {
        format!("tok.{slot}.{resource_len}")
    }
}

impl Issuer for FuzzIssuer {
    fn issue(
        &mut self,
        req: &IssueRequest<'_, '_>,
        out: &mut [u8],
    ) -> Result<Issued, IssueError<'_>> {
        self.calls += 1;
        match self.mode {
            IssueMode::Ok => {}
            IssueMode::UnknownResource => return Err(IssueError::UnknownResource),
            IssueMode::Throttled(retry_after) => return Err(IssueError::Throttled { retry_after }),
            IssueMode::Failed => return Err(IssueError::Failed),
        }
        let token = Self::token_for(req.resolved.slot.index(), req.resource.len());
        let Some(dst) = out.get_mut(..token.len()) else {
            return Err(IssueError::BufferTooSmall {
                required: token.len(),
            });
        };
        dst.copy_from_slice(token.as_bytes());
        Ok(Issued {
            token_len: token.len(),
            not_before: req.now - 300,
            expires_on: req.now + 86_400,
        })
    }
}
