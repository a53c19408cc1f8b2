//! Azure Arc: the challenge header (`arc::parse_challenge`) and the key-path rules
//! (`arc::check_key_path`).
//!
//! Input: one byte choosing the directory, then the `WWW-Authenticate` value. Properties:
//! - neither function panics;
//! - an accepted challenge has exactly one `=`, and its path is a trimmed, unquoted substring;
//! - an accepted key path is exactly `<dir>/<name>`: one component after the directory, ending
//!   in `.key` with something before it, no `.`/`..` component, no backslash, no control
//!   character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::arc::{check_key_path, parse_challenge};
use mitoken_fuzz::split_byte;

const DIRS: [&str; 3] = [
    "/var/opt/azcmagent/tokens",
    "/var/opt/azcmagent/tokens/",
    "/t",
];

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = split_byte(data) else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let dir = DIRS[usize::from(pick) % DIRS.len()];
    // The header value as a challenge, and the raw text as a path.
    for path in [parse_challenge(value).ok(), Some(value)]
        .into_iter()
        .flatten()
    {
        if let Some(p) = parse_challenge(value).ok().filter(|p| *p == path) {
            assert_eq!(value.bytes().filter(|&b| b == b'=').count(), 1);
            assert_eq!(p, p.trim());
            assert!(!p.is_empty() && !p.contains('"'));
        }
        let Ok(name) = check_key_path(path, dir) else {
            continue;
        };
        let base = dir.trim_end_matches('/');
        assert_eq!(path, format!("{base}/{name}"));
        assert!(!name.contains('/') && !name.contains('\\'));
        assert!(name.len() > ".key".len() && name.ends_with(".key"));
        assert!(path.split('/').all(|c| c != "." && c != ".."));
        assert!(path.bytes().all(|b| b >= 0x20 && b != 0x7F));
    }
});
