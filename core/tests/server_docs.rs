//! docs/errors.md lists every error answer of the server's catalogue.

use mitoken_core::identity::Flavor;
use mitoken_core::server::Rejection;

const DOC: &str = include_str!("../../docs/errors.md");

#[test]
fn every_rejection_is_documented() {
    let mut missing = Vec::new();
    for flavor in [Flavor::Imds, Flavor::Extension] {
        for r in Rejection::ALL {
            let status = format!("| {} |", r.status(flavor));
            let error = format!("`{}`", r.error(flavor));
            // A row must carry the status, the error code and the description together.
            let ok = DOC.lines().any(|line| {
                line.starts_with(&status)
                    && line.contains(&error)
                    && r.description(flavor)
                        .is_none_or(|d| line.contains(d.trim_end()))
            });
            if !ok {
                missing.push(format!("{flavor:?} {r:?}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/errors.md: {missing:?}");
}
