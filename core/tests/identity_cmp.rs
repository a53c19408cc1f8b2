//! `cmp_ignore_ascii_case` (the fast path skips equal 16-byte chunks) orders exactly like the
//! plain definition: byte-wise comparison of the ASCII-lowercased strings.

use core::cmp::Ordering;

use mitoken_core::identity::cmp_ignore_ascii_case;
use proptest::prelude::*;

fn reference(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// ARM-id-like strings: long shared prefixes, case changes, differences anywhere.
fn arm_like() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "",
            "/subscriptions/",
            "/SUBSCRIPTIONS/",
            "/subscriptions/4",
        ]),
        "[a-zA-Z0-9/._-]{0,70}",
    )
        .prop_map(|(p, s)| format!("{p}{s}"))
}

proptest! {
    #[test]
    fn same_order_as_the_definition(a in arm_like(), b in arm_like()) {
        prop_assert_eq!(cmp_ignore_ascii_case(&a, &b), reference(&a, &b));
        prop_assert_eq!(cmp_ignore_ascii_case(&a, &a.to_uppercase()), Ordering::Equal);
    }

    #[test]
    fn any_text(a in ".{0,40}", b in ".{0,40}") {
        prop_assert_eq!(cmp_ignore_ascii_case(&a, &b), reference(&a, &b));
    }
}

#[test]
fn differences_inside_and_after_a_skipped_chunk() {
    let base = "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/rg/x";
    let upper = base.to_uppercase();
    assert_eq!(cmp_ignore_ascii_case(base, &upper), Ordering::Equal);
    assert_eq!(cmp_ignore_ascii_case(base, &base[..40]), Ordering::Greater);
    assert_eq!(cmp_ignore_ascii_case(&base[..40], base), Ordering::Less);
    let later = base.replace("/x", "/y");
    assert_eq!(cmp_ignore_ascii_case(base, &later), Ordering::Less);
}
