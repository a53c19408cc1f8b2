//! The compatibility matrix: every real Azure SDK client, installed from its registry at a
//! pinned version and run unmodified against `mitoken emulate` over real sockets.
//!
//! | client | pinned in | reaches the emulator by |
//! |---|---|---|
//! | Python `azure-identity`, `msal` | `tests/compat/python/requirements.txt` | `AZURE_POD_IDENTITY_AUTHORITY_HOST`, or the IMDS address |
//! | JavaScript `@azure/identity` (MSAL Node) | `tests/compat/node/package-lock.json` | `AZURE_POD_IDENTITY_AUTHORITY_HOST`, or the IMDS address |
//! | Rust `azure_identity` | `tests/compat/rust-azure-identity/Cargo.lock` | `HTTP_PROXY` (absolute-form requests) |
//! | `curl` lines of Microsoft's docs | — | the IMDS address / `localhost:50342` |
//!
//! Every client runs inside a private network namespace (`unshare -n`) whose `lo` also carries
//! 169.254.169.254, with three emulators sharing one signing key: IMDS on `127.0.0.1:8080`, IMDS
//! on `169.254.169.254:80` (for the clients' defaults and `DefaultAzureCredential`'s probe) and
//! the VM extension on `127.0.0.1:50342`. Nothing can leave the namespace. Each token is checked
//! by `PyJWT` against the emulator's JWKS (signature, issuer, `aud`) and its `oid` / `appid`
//! compared with the identity asked for.
//!
//! The run prints the matrix and writes it between `<!-- compat-table:begin -->` and
//! `<!-- compat-table:end -->` in `docs/compatibility.md` and (when it has the markers) README.md.
//! Installs land under `target/` (`py-venv`, `compat-node`, `compat-rust`); needs root (for the
//! namespace), `python3`, `node`/`npm`, `curl`, `ip` and network access to the registries.
//! Run by `cargo xtask ci` (step "compatibility matrix"); alone:
//! `cargo test -p mitoken-tests --test compat_matrix -- --ignored --nocapture`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use mitoken_tests::builtin::{SAMI, UA1, UA2, UA2_RES};
use mitoken_tests::{mitoken_bin, python_with_azure_identity, workspace_root};
use serde_json::Value;

/// A client id no identity of the emulated VM has.
const UNKNOWN_CLIENT: &str = "99999999-0000-4000-8000-000000000000";
/// Where the generated table goes, in docs/compatibility.md and README.md.
const BEGIN: &str = "<!-- compat-table:begin -->";
const END: &str = "<!-- compat-table:end -->";
/// The longest error text a table cell shows.
const MAX_ERROR: usize = 320;

fn compat_dir() -> PathBuf {
    workspace_root().join("tests/compat")
}

/// `cargo` as the test was started with.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run_ok(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(status.success(), "{what} failed: {status}");
}

/// `npm ci` of the pinned `@azure/identity` into `target/compat-node` (skipped when the lock
/// file is unchanged since the last install); returns that directory, which holds the driver.
fn node_client() -> PathBuf {
    let src = compat_dir().join("node");
    let dir = workspace_root().join("target/compat-node");
    std::fs::create_dir_all(&dir).expect("create target/compat-node");
    let lock = std::fs::read_to_string(src.join("package-lock.json")).expect("read package-lock");
    for file in ["package.json", "package-lock.json", "driver.cjs"] {
        std::fs::copy(src.join(file), dir.join(file)).expect("copy the node client");
    }
    let stamp = dir.join("node_modules/.mitoken-lock");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == lock) {
        return dir;
    }
    run_ok(
        Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(&dir),
        "npm ci (tests/compat/node)",
    );
    std::fs::write(&stamp, lock).expect("write the npm stamp");
    dir
}

/// `cargo build --locked` of the pinned Rust client into `target/compat-rust`.
fn rust_client() -> PathBuf {
    let manifest = compat_dir().join("rust-azure-identity/Cargo.toml");
    let target = workspace_root().join("target/compat-rust");
    run_ok(
        cargo()
            .args(["build", "--locked", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS"),
        "cargo build (tests/compat/rust-azure-identity)",
    );
    target.join("debug/compat-rust-azure-identity")
}

/// The version of `name` in the Rust client's Cargo.lock.
fn locked_crate_version(name: &str) -> String {
    let lock = std::fs::read_to_string(compat_dir().join("rust-azure-identity/Cargo.lock"))
        .expect("read Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    let at = lock.find(&needle).expect("crate in Cargo.lock") + needle.len();
    lock[at..].split('"').next().unwrap_or_default().to_owned()
}

/// `'…'` for sh.
fn quote(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

/// One client program run inside a session, with its own environment.
struct Driver {
    env: Vec<(&'static str, String)>,
    argv: Vec<String>,
}

/// What a session left: the validated rows, and per emulator its counters and the
/// `METHOD path -> status` forms it answered.
struct SessionResult {
    name: &'static str,
    rows: Vec<Value>,
    counters: Vec<(&'static str, Value)>,
    paths: Vec<(&'static str, BTreeSet<String>)>,
}

/// The three emulators of a session: name, `emulate` arguments, base URL inside the namespace.
const EMULATORS: [(&str, &str, &str); 3] = [
    ("local", "--listen 127.0.0.1:8080", "http://127.0.0.1:8080"),
    (
        "imds",
        "--listen 169.254.169.254:80 --allow-non-loopback",
        "http://169.254.169.254",
    ),
    (
        "extension",
        "--flavor extension --listen 127.0.0.1:50342",
        "http://127.0.0.1:50342",
    ),
];

/// Runs `drivers` in a fresh private network namespace with the three emulators, validates
/// every token there, and collects the rows, counters and request forms.
fn session(name: &'static str, drivers: &[Driver]) -> SessionResult {
    let dir = workspace_root().join("target/compat-run").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the session directory");
    let python = python_with_azure_identity();
    let mut script = format!(
        "set -u\n\
         ip link set lo up && ip addr add 169.254.169.254/32 dev lo || exit 90\n\
         D={dir}\nM={bin}\n\
         start() {{\n  n=$1; shift\n  MITOKEN_LOG=info \"$M\" emulate \"$@\" >\"$D/$n.out\" 2>\"$D/$n.log\" &\n  \
         echo $! >>\"$D/pids\"\n  \
         for _ in $(seq 1 400); do grep -q 'identities:' \"$D/$n.out\" && return 0; sleep 0.05; done\n  \
         echo \"emulator $n did not start\" >&2; cat \"$D/$n.log\" >&2; exit 91\n}}\n",
        dir = quote(dir.to_string_lossy()),
        bin = quote(mitoken_bin().to_string_lossy()),
    );
    for (i, (emu, args, _)) in EMULATORS.iter().enumerate() {
        let key = if i == 0 {
            "--export-signing-key \"$D/key.pem\""
        } else {
            "--signing-key \"$D/key.pem\""
        };
        let _ = writeln!(script, "start {emu} {args} {key}");
    }
    let validate = compat_dir().join("python/validate.py");
    for (i, driver) in drivers.iter().enumerate() {
        let mut line = String::from("env -i PATH=\"$PATH\" HOME=\"$HOME\" LANG=C.UTF-8");
        for (k, v) in &driver.env {
            let _ = write!(line, " {k}={}", quote(v));
        }
        for arg in &driver.argv {
            let _ = write!(line, " {}", quote(arg));
        }
        let _ = writeln!(
            script,
            "timeout 420 {line} >\"$D/rows-{i}.json\" 2>\"$D/driver-{i}.err\" || echo \"driver {i} exit $?\" >>\"$D/failures\"\n\
             {py} {val} http://127.0.0.1:8080 <\"$D/rows-{i}.json\" >\"$D/checked-{i}.json\" 2>>\"$D/driver-{i}.err\" || echo \"validate {i} exit $?\" >>\"$D/failures\"\n\
             rm -f \"$D/rows-{i}.json\"",
            py = quote(python.to_string_lossy()),
            val = quote(validate.to_string_lossy()),
        );
    }
    for (emu, _, base) in EMULATORS {
        let _ = writeln!(
            script,
            "curl -s --noproxy '*' --max-time 5 {base}/mitoken/admin/counters >\"$D/counters-{emu}.json\""
        );
    }
    // The raw tokens (rows-*.json) are gone already; the signing key goes too.
    script.push_str("kill $(cat \"$D/pids\") 2>/dev/null; wait; rm -f \"$D/key.pem\"\n");
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux; needs root)");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert!(
        out.status.success() && read("failures").is_empty(),
        "session {name} failed ({:?}): {}{}\n{}\ndriver stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        read("failures"),
        (0..drivers.len())
            .map(|i| read(&format!("driver-{i}.err")))
            .collect::<Vec<_>>()
            .join("\n---\n"),
    );
    let mut rows = Vec::new();
    for i in 0..drivers.len() {
        let text = read(&format!("checked-{i}.json"));
        let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "session {name}, driver {i}: no rows ({e}): {text}\n{}",
                read(&format!("driver-{i}.err"))
            )
        });
        rows.extend(parsed.as_array().cloned().unwrap_or_default());
    }
    let counters = EMULATORS
        .iter()
        .map(|(emu, _, _)| {
            let text = read(&format!("counters-{emu}.json"));
            (*emu, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
        .collect();
    let paths = EMULATORS
        .iter()
        .map(|(emu, _, _)| (*emu, answered_forms(&read(&format!("{emu}.log")))))
        .collect();
    SessionResult {
        name,
        rows,
        counters,
        paths,
    }
}

/// `GET /metadata/identity/oauth2/token/ -> 200` for each `answered` line of an emulator log.
fn answered_forms(log: &str) -> BTreeSet<String> {
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!(" {key}="))? + key.len() + 2;
        let rest = &line[at..];
        let value = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next()?,
            None => rest.split(' ').next()?,
        };
        Some(value.to_owned())
    };
    log.lines()
        .filter(|l| l.contains(" answered "))
        .filter_map(|l| {
            Some(format!(
                "{} {} -> {}",
                field(l, "method")?,
                field(l, "path")?,
                field(l, "status")?
            ))
        })
        .collect()
}

/// The common environment of the drivers: the identities to ask for.
fn identity_env() -> Vec<(&'static str, String)> {
    vec![
        ("COMPAT_UA1_CLIENT", UA1.0.to_owned()),
        ("COMPAT_UA2_RESOURCE_ID", UA2_RES.to_owned()),
        ("COMPAT_UA2_OBJECT", UA2.1.to_owned()),
        ("COMPAT_UNKNOWN_CLIENT", UNKNOWN_CLIENT.to_owned()),
    ]
}

fn driver(extra: &[(&'static str, &str)], argv: &[&Path]) -> Driver {
    let mut env = identity_env();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Driver {
        env,
        argv: argv
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    }
}

/// The verdict on one row.
struct Verdict {
    pass: bool,
    surfaced: String,
}

/// Texts with which the clients report IMDS's `400 Identity not found` (theirs, quoted in
/// docs/compatibility.md); an unknown-identity row passes only with one of them.
const IDENTITY_NOT_FOUND: [&str; 4] = [
    "Identity not found",
    "identity has not been assigned",
    "isn't assigned",
    "No identity has been assigned",
];

/// How many answers with `status` the session's emulator `emu` gave.
fn answered(result: &SessionResult, emu: &str, status: &str) -> u64 {
    result
        .counters
        .iter()
        .filter(|(e, _)| emu == "any" || *e == emu)
        .map(|(_, c)| c["by_status"][status].as_u64().unwrap_or(0))
        .sum()
}

/// A row passes when its token validates and names the identity asked for; a probe row also
/// needs the emulator at 169.254.169.254 to have answered the probe (400, no `Metadata`); an
/// unknown-identity row needs no token, an emulator's 400, and the client saying so.
fn judge(row: &Value, session: &SessionResult) -> Verdict {
    let text = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
    let wanted = match text("expect").as_str() {
        "system" => Some(SAMI),
        "ua1" => Some(UA1),
        "ua2" => Some(UA2),
        _ => None,
    };
    let error = text("error");
    let Some((client, object)) = wanted else {
        let named = IDENTITY_NOT_FOUND.iter().any(|t| error.contains(t));
        return Verdict {
            pass: row["claims"].is_null() && named && answered(session, "any", "400") > 0,
            surfaced: focus(&error),
        };
    };
    let claims = &row["claims"];
    if claims.is_null() {
        let why = if error.is_empty() {
            format!("token rejected: {}", text("jwt_error"))
        } else {
            focus(&error)
        };
        return Verdict {
            pass: false,
            surfaced: why,
        };
    }
    let right =
        claims["appid"] == client && claims["oid"] == object && claims["aud"] == row["resource"];
    let probe = text("case").starts_with("probe");
    let probed = answered(session, "imds", "400") > 0;
    let surfaced = match (right, probe) {
        (false, _) => format!("wrong token: {claims}"),
        (true, true) if probed => {
            "probe (a GET without `Metadata`) answered 400 at once, then a token (signature, aud, oid, appid checked)".to_owned()
        }
        (true, true) => "token, but no probe answered".to_owned(),
        (true, false) => "token (signature, aud, oid, appid checked)".to_owned(),
    };
    Verdict {
        pass: right && (!probe || probed),
        surfaced,
    }
}

/// An aggregated `DefaultAzureCredential` error reduced to its first sentence and its
/// `ManagedIdentityCredential` part, the one this matrix is about.
fn focus(error: &str) -> String {
    let one: String = error.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(at) = one
        .get(1..)
        .and_then(|s| s.find("ManagedIdentityCredential"))
    else {
        return one;
    };
    let mi = &one[at + 1..];
    if at < 80 {
        return one;
    }
    let head = one.split(". ").next().unwrap_or_default();
    format!("{head}. … {mi}")
}

/// `text` for a markdown table cell: one line, `|` escaped, at most [`MAX_ERROR`] characters.
fn cell(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = one.chars().take(MAX_ERROR).collect();
    if short.len() < one.len() {
        short.push('…');
    }
    short.replace('|', "\\|")
}

/// The generated block: the matrix, then the request forms each session's emulators answered.
fn render(results: &[SessionResult], verdicts: &[Vec<Verdict>]) -> String {
    let mut t = String::from(
        "| Client | Version | API | Case | Reaches the emulator by | Result | What the client surfaced |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (result, verdicts) in results.iter().zip(verdicts) {
        for (row, v) in result.rows.iter().zip(verdicts) {
            let s = |k: &str| cell(row[k].as_str().unwrap_or_default());
            let api = if s("client").starts_with("curl") {
                format!("`{}`", s("api"))
            } else {
                s("api")
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s("client"),
                s("version"),
                api,
                s("case"),
                s("route"),
                if v.pass { "pass" } else { "**FAIL**" },
                cell(&v.surfaced)
            );
        }
    }
    t.push_str(
        "\nRequests the emulators answered, per run (method, path without the query, status):\n\n\
         | Run | Emulator | Requests |\n|---|---|---|\n",
    );
    for result in results {
        for (emu, forms) in &result.paths {
            if forms.is_empty() {
                continue;
            }
            let list: Vec<String> = forms.iter().map(|f| format!("`{f}`")).collect();
            let _ = writeln!(t, "| {} | {emu} | {} |", result.name, list.join(", "));
        }
    }
    t
}

/// The README's compact form of the matrix: one row per (client, version, API, route), its
/// cases with a mark each; the full table with what each client surfaced is in
/// docs/compatibility.md.
fn render_summary(results: &[SessionResult], verdicts: &[Vec<Verdict>]) -> String {
    let mut groups: Vec<([String; 4], Vec<String>)> = Vec::new();
    for (result, verdicts) in results.iter().zip(verdicts) {
        for (row, v) in result.rows.iter().zip(verdicts) {
            let s = |k: &str| cell(row[k].as_str().unwrap_or_default());
            let client = s("client");
            let api = if client.starts_with("curl") {
                "doc lines".to_owned()
            } else {
                s("api")
            };
            let key = [client, s("version"), api, s("route")];
            let mark = format!("{} {}", if v.pass { "✔" } else { "✘ **FAIL**" }, s("case"));
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, cases)) => cases.push(mark),
                None => groups.push((key, vec![mark])),
            }
        }
    }
    let mut t = String::from(
        "| client | version | API | reaches the emulator by | cases |\n|---|---|---|---|---|\n",
    );
    for ([client, version, api, route], cases) in &groups {
        let _ = writeln!(
            t,
            "| {client} | {version} | {api} | {route} | {} |",
            cases.join(" · ")
        );
    }
    t
}

/// Byte offset of the line that is exactly `marker` (markers quoted in prose do not count).
fn marker_line(text: &str, marker: &str) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == marker {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// Replaces the lines between the marker lines in `path`; false when the file has no markers.
fn write_between_markers(path: &Path, block: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let (Some(b), Some(e)) = (marker_line(&text, BEGIN), marker_line(&text, END)) else {
        return false;
    };
    if e < b {
        return false;
    }
    let updated = format!("{}{BEGIN}\n{block}{}", &text[..b], &text[e..]);
    std::fs::write(path, updated).expect("write the compatibility table");
    true
}

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare -n: run by cargo xtask ci"]
fn every_sdk_against_the_emulator() {
    let py = python_with_azure_identity().to_path_buf();
    let python_dir = compat_dir().join("python");
    let py_driver = python_dir.join("driver.py");
    let curl_driver = python_dir.join("curl_lines.py");
    let node = node_client();
    let node_driver = node.join("driver.cjs");
    let rust = rust_client();
    let rust_version = format!(
        "{} (azure_core {})",
        locked_crate_version("azure_identity"),
        locked_crate_version("azure_core")
    );
    let pod = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:8080");
    let node_bin = Path::new("node");
    let results = vec![
        session(
            "python-env",
            &[driver(&[("COMPAT_MODE", "env"), pod], &[&py, &py_driver])],
        ),
        session(
            "python-imds",
            &[driver(&[("COMPAT_MODE", "imds")], &[&py, &py_driver])],
        ),
        session(
            "node-env",
            &[driver(
                &[("COMPAT_MODE", "env"), pod],
                &[node_bin, &node_driver],
            )],
        ),
        session(
            "node-imds",
            &[driver(
                &[("COMPAT_MODE", "imds")],
                &[node_bin, &node_driver],
            )],
        ),
        session(
            "rust-proxy",
            &[driver(
                &[
                    ("COMPAT_VERSION", &rust_version),
                    ("HTTP_PROXY", "http://127.0.0.1:8080"),
                    ("http_proxy", "http://127.0.0.1:8080"),
                ],
                &[&rust],
            )],
        ),
        session("curl", &[driver(&[], &[&py, &curl_driver])]),
    ];
    let verdicts: Vec<Vec<Verdict>> = results
        .iter()
        .map(|r| r.rows.iter().map(|row| judge(row, r)).collect())
        .collect();
    let block = render(&results, &verdicts);
    println!("\nCompatibility matrix (real SDKs against mitoken emulate):\n\n{block}");
    let docs = workspace_root().join("docs/compatibility.md");
    assert!(
        write_between_markers(&docs, &block),
        "docs/compatibility.md lacks the {BEGIN} / {END} markers"
    );
    let summary = render_summary(&results, &verdicts);
    if write_between_markers(&workspace_root().join("README.md"), &summary) {
        println!("(written to docs/compatibility.md and README.md)");
    } else {
        println!("(written to docs/compatibility.md; README.md has no compat-table markers)");
    }

    let failed: Vec<String> = results
        .iter()
        .zip(&verdicts)
        .flat_map(|(r, vs)| r.rows.iter().zip(vs))
        .filter(|(_, v)| !v.pass)
        .map(|(row, v)| {
            format!(
                "{} / {} / {}: {}",
                row["client"], row["api"], row["case"], v.surfaced
            )
        })
        .collect();
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
    let total: usize = results.iter().map(|r| r.rows.len()).sum();
    assert!(total >= 30, "only {total} cases ran");
}
