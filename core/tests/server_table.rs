//! Identity tables at the flavors' limits: 1000 user-assigned identities for IMDS, 32 for the
//! extension; one more is an error that names the limit; every identity resolves by each id.

use mitoken_core::identity::{Flavor, Guid, Identity, IdentityTable, Selector, Slot, TableError};

fn ids(n: usize) -> Vec<(String, String, String)> {
    (0..n)
        .map(|i| {
            let i = i as u128;
            (
                Guid(0x1000_0000 + i).to_string(),
                Guid(0x2000_0000 + i).to_string().to_uppercase(),
                format!("/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-{i}"),
            )
        })
        .collect()
}

fn at_limit<const N: usize>(flavor: Flavor, limit: usize, message: &str) {
    let ids = ids(limit + 1);
    let mut table: Box<IdentityTable<&str, N>> = Box::new(IdentityTable::new(flavor));
    for (i, (c, o, r)) in ids.iter().enumerate() {
        let got = table.insert(Identity::user_assigned(c, o, r));
        if i < limit {
            assert_eq!(got, Ok(Slot::UserAssigned(i)));
        } else {
            let e = got.unwrap_err();
            assert_eq!(e, TableError::TooManyUserAssigned { flavor, limit });
            assert_eq!(e.to_string(), message);
        }
    }
    assert_eq!(table.user_assigned_len(), limit);
    for (i, (c, o, r)) in ids.iter().take(limit).enumerate() {
        let r_lower = r.to_lowercase();
        let c_upper = c.to_uppercase();
        for sel in [
            Selector::ClientId(&c_upper),
            Selector::ObjectId(o),
            Selector::ResourceId(&r_lower),
        ] {
            assert_eq!(table.resolve(&sel).unwrap().slot, Slot::UserAssigned(i));
        }
    }
}

#[test]
fn imds_holds_1000() {
    at_limit::<1024>(
        Flavor::Imds,
        1000,
        "too many user-assigned identities: IMDS allows at most 1000 per VM",
    );
}

#[test]
fn extension_holds_32() {
    at_limit::<64>(
        Flavor::Extension,
        32,
        "too many user-assigned identities: VM extension allows at most 32 per VM",
    );
}
