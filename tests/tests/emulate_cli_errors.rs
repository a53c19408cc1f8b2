//! `mitoken emulate`'s start-up errors, from the real binary: each names what to type instead.

use std::process::Output;

use mitoken_tests::mitoken_bin;

fn emulate(args: &[&str]) -> Output {
    std::process::Command::new(mitoken_bin())
        .arg("emulate")
        .args(args)
        .output()
        .expect("run mitoken emulate")
}

#[test]
fn a_non_loopback_listen_address_names_the_flag() {
    let out = emulate(&["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "a refused value exits 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0.0:0 is not a loopback address"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
}

#[test]
fn an_unknown_fault_key_lists_the_keys() {
    for rule in ["bogus", "bogus=1", "status=500,bogus"] {
        let out = emulate(&["--listen", "127.0.0.1:0", "--fault", rule]);
        assert_eq!(out.status.code(), Some(2), "{rule}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unknown key `bogus`"), "{rule}: {stderr}");
        assert!(
            stderr.contains("(expected status, count, percent, delay,")
                && stderr.contains("identity"),
            "{rule}: {stderr}"
        );
        assert!(!stderr.contains("needs a value"), "{rule}: {stderr}");
    }
    // A known key without its value still says so.
    let out = emulate(&["--listen", "127.0.0.1:0", "--fault", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`status` needs a value"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
