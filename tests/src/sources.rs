//! The real-SDK sessions of `tests/tests/source_<name>.rs`: one `mitoken emulate --source S`
//! in a private network namespace (loopback only, so nothing leaves the machine and the
//! sources' real ports are free), the pinned Python (azure-identity, msal) and JavaScript
//! (@azure/identity) clients configured only by the emulator's `--env-file`, every token
//! checked against the emulator's JWKS (`tests/compat/python/validate.py`), and a row per
//! (source, client, API, case) written to `target/source-results/<source>.json` and
//! `target/source-results/<source>.md` for the compatibility table.
//!
//! Arc runs in a private mount namespace too: a tmpfs on `/var/opt` and a temporary directory
//! bind-mounted on `/var/opt/azcmagent/tokens`, so the emulator writes its key files where the
//! SDKs look for them and the machine is untouched.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::builtin::{SAMI, UA1, UA2, UA2_RES};
use crate::{mitoken_bin, python_with_azure_identity, workspace_root};

/// A client id no identity of the emulator has.
pub const UNKNOWN_CLIENT: &str = "99999999-0000-4000-8000-000000000000";

/// What a case must give.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// A token whose `appid` is this client id (and whose signature and `aud` check).
    Token(&'static str),
    /// An error whose text contains one of these (ASCII case ignored).
    Error(&'static [&'static str]),
}

/// The system-assigned identity's client id.
pub const SYSTEM: Expect = Expect::Token(SAMI.0);
/// `uami-1`'s client id.
pub const USER1: Expect = Expect::Token(UA1.0);
/// `uami-2`'s client id.
pub const USER2: Expect = Expect::Token(UA2.0);

/// `quote` for a POSIX shell.
fn quote(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

/// `npm ci` of the pinned `@azure/identity` (tests/compat/node) into `target/compat-node`,
/// skipped when the lock file is unchanged since the last install (the compatibility
/// matrix's installation).
///
/// # Panics
/// If npm fails.
pub fn node_client_dir() -> PathBuf {
    let src = workspace_root().join("tests/compat/node");
    let dir = workspace_root().join("target/compat-node");
    std::fs::create_dir_all(&dir).expect("create target/compat-node");
    let lock = std::fs::read_to_string(src.join("package-lock.json")).expect("read package-lock");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(file), dir.join(file)).expect("copy the node client");
    }
    let stamp = dir.join("node_modules/.mitoken-lock");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == lock) {
        return dir;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .status()
        .expect("start npm");
    assert!(status.success(), "npm ci (tests/compat/node) failed");
    std::fs::write(&stamp, lock).expect("write the npm stamp");
    dir
}

/// What one session left.
#[derive(Debug)]
pub struct SourceSession {
    /// The checked rows (tokens replaced by their claims).
    pub rows: Vec<Value>,
    /// The `KEY=VALUE` lines of the emulator's `--env-file`.
    pub env_file: String,
    /// What `mitoken env SOURCE --endpoint … [--secret …]` printed.
    pub exports: String,
    /// The emulator's log (one line per request; never a token or the secret).
    pub log: String,
    /// The emulator's admin counters.
    pub counters: Value,
    /// `ls -l` of the Arc key directory while the emulator ran (empty for other sources).
    pub key_listing: String,
}

/// The shell script of a session in `dir`: the emulator, `mitoken env`, both drivers and the
/// token check, the counters.
fn session_script(source: &str, resource: &str, dir: &std::path::Path) -> String {
    let python = python_with_azure_identity();
    let node = node_client_dir();
    let drivers = workspace_root().join("tests/compat/sources");
    let validate = workspace_root().join("tests/compat/python/validate.py");
    let arc = source == "arc";
    let mut script = format!(
        "set -u\nip link set lo up || exit 90\nD={d}\nM={m}\n",
        d = quote(dir.to_string_lossy()),
        m = quote(mitoken_bin().to_string_lossy()),
    );
    let mut emulate = format!("--source {source} --env-file \"$D/env\"");
    if arc {
        script.push_str(
            "mount -t tmpfs -o mode=0755 tmpfs /var/opt && mkdir -p /var/opt/azcmagent/tokens \
             && mount --bind \"$D/tokens\" /var/opt/azcmagent/tokens || exit 92\n",
        );
        emulate.push_str(" --arc-tokens-dir /var/opt/azcmagent/tokens");
    }
    let _ = writeln!(
        script,
        "MITOKEN_LOG=info \"$M\" emulate {emulate} >\"$D/emu.out\" 2>\"$D/emu.log\" &\n\
         echo $! >\"$D/pid\"\n\
         for _ in $(seq 1 400); do grep -q 'identities:' \"$D/emu.out\" && break; sleep 0.05; done\n\
         grep -q 'identities:' \"$D/emu.out\" || {{ cat \"$D/emu.log\" >&2; exit 91; }}\n\
         BASE=$(sed -n 's/^listening on //p' \"$D/emu.out\")\n\
         SECRET=$(sed -n 's/^\\(IDENTITY_HEADER\\|MSI_SECRET\\)=//p' \"$D/env\")\n\
         CLIENT=$(sed -n 's/^DEFAULT_IDENTITY_CLIENT_ID=//p' \"$D/env\")\n\
         set -- env {source} --endpoint \"$BASE\"\n\
         [ -n \"$SECRET\" ] && set -- \"$@\" --secret \"$SECRET\"\n\
         [ -n \"$CLIENT\" ] && set -- \"$@\" --client-id \"$CLIENT\"\n\
         \"$M\" \"$@\" >\"$D/exports\" || exit 93\n\
         ls -l /var/opt/azcmagent/tokens >\"$D/keys\" 2>/dev/null"
    );
    let compat = format!(
        "COMPAT_SOURCE={source} COMPAT_RESOURCE={} COMPAT_UA1_CLIENT={} COMPAT_UA2_RESOURCE_ID={} \
         COMPAT_UA2_OBJECT={} COMPAT_UNKNOWN_CLIENT={UNKNOWN_CLIENT}",
        quote(resource),
        UA1.0,
        quote(UA2_RES),
        UA2.1,
    );
    let runs = [
        (
            "python",
            String::new(),
            format!(
                "{} {}",
                quote(python.to_string_lossy()),
                quote(drivers.join("driver.py").to_string_lossy())
            ),
        ),
        (
            "node",
            format!("cd {} && ", quote(node.to_string_lossy())),
            format!(
                "node {}",
                quote(drivers.join("driver.cjs").to_string_lossy())
            ),
        ),
    ];
    for (name, cd, argv) in runs {
        let _ = writeln!(
            script,
            "( {cd}timeout 300 env -i PATH=\"$PATH\" HOME=\"$D\" LANG=C.UTF-8 $(cat \"$D/env\") {compat} {argv} \
               >\"$D/rows-{name}.json\" 2>\"$D/{name}.err\" ) || echo \"{name} exit $?\" >>\"$D/failures\"\n\
             {py} {val} \"$BASE\" <\"$D/rows-{name}.json\" >\"$D/checked-{name}.json\" 2>>\"$D/{name}.err\" \
               || echo \"validate {name} exit $?\" >>\"$D/failures\"\n\
             rm -f \"$D/rows-{name}.json\"",
            py = quote(python.to_string_lossy()),
            val = quote(validate.to_string_lossy()),
        );
    }
    script.push_str(
        "curl -s --max-time 5 \"$BASE/mitoken/admin/counters\" >\"$D/counters.json\"\n\
         kill $(cat \"$D/pid\") 2>/dev/null; wait\n",
    );
    script
}

/// Runs the Python and JavaScript clients against `mitoken emulate --source source` asking
/// for `resource`, inside `unshare -n` (and `-m` for Arc).
///
/// # Panics
/// If the namespace, the emulator or a driver cannot be started.
pub fn run_session(source: &str, resource: &str) -> SourceSession {
    let dir = workspace_root().join("target/source-run").join(source);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).expect("create the session directory");
    let script = session_script(source, resource, &dir);
    let arc = source == "arc";
    let ns = if arc { "-mn" } else { "-n" };
    let out = Command::new("unshare")
        .args([ns, "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux; needs root)");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert!(
        out.status.success() && read("failures").is_empty(),
        "session {source} failed ({:?}): {}{}\n{}\npython:\n{}\nnode:\n{}\nemulator:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        read("failures"),
        read("python.err"),
        read("node.err"),
        read("emu.log"),
    );
    let mut rows = Vec::new();
    for name in ["python", "node"] {
        let text = read(&format!("checked-{name}.json"));
        let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{source} {name}: no rows ({e}): {text}\n{}",
                read(&format!("{name}.err"))
            )
        });
        rows.extend(parsed.as_array().cloned().unwrap_or_default());
    }
    // The env file held the secret; it is not left behind.
    let env_file = read("env");
    let _ = std::fs::remove_file(dir.join("env"));
    SourceSession {
        rows,
        env_file,
        exports: read("exports"),
        log: read("emu.log"),
        counters: serde_json::from_str(&read("counters.json")).unwrap_or(Value::Null),
        key_listing: read("keys"),
    }
}

/// Judges every row of `session` against `expect` (keyed by client prefix, API and case),
/// writes the results files, and returns the failures (empty when every row passed).
///
/// # Panics
/// If a row has no expectation: every case the drivers run must be judged.
pub fn judge_and_record(
    source: &str,
    session: &SourceSession,
    expect: impl Fn(&str, &str, &str) -> Option<Expect>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut table = String::from(
        "| Source | Client | API | Case | Result | What the client shows |\n|---|---|---|---|---|---|\n",
    );
    let mut recorded = Vec::new();
    for row in &session.rows {
        let text = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
        let (client, api, case) = (text("client"), text("api"), text("case"));
        let Some(want) = expect(&client, &api, &case) else {
            panic!("{source}: no expectation for {client} / {api} / {case}");
        };
        let got = match (
            &row["claims"],
            row["error"].as_str(),
            row["jwt_error"].as_str(),
        ) {
            (_, _, Some(e)) => format!("token that does not check: {e}"),
            (Value::Object(c), _, _) => format!(
                "token for appid {} (aud {})",
                c["appid"].as_str().unwrap_or("?"),
                c["aud"].as_str().unwrap_or("?")
            ),
            (_, Some(e), _) => format!("error: {e}"),
            _ => "nothing".to_owned(),
        };
        let pass = match want {
            Expect::Token(client_id) => {
                row["claims"]["appid"].as_str() == Some(client_id)
                    && row["claims"]["aud"].as_str() == row["resource"].as_str()
            }
            Expect::Error(needles) => {
                let e = row["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                row["claims"].is_null()
                    && !e.is_empty()
                    && needles.iter().any(|n| e.contains(&n.to_ascii_lowercase()))
            }
        };
        if !pass {
            failures.push(format!(
                "{client} / {api} / {case}: want {want:?}, got {got}"
            ));
        }
        let shown: String = got.chars().take(240).collect();
        let _ = writeln!(
            table,
            "| {source} | {client} {} | {api} | {case} | {} | {} |",
            text("version"),
            if pass { "pass" } else { "FAIL" },
            shown.replace('|', "\\|")
        );
        let mut kept = row.clone();
        kept["pass"] = Value::Bool(pass);
        kept["shown"] = Value::String(got);
        recorded.push(kept);
    }
    let out = workspace_root().join("target/source-results");
    std::fs::create_dir_all(&out).expect("create target/source-results");
    let json = serde_json::to_string_pretty(&recorded).unwrap_or_default();
    std::fs::write(out.join(format!("{source}.json")), json).expect("write the results");
    std::fs::write(out.join(format!("{source}.md")), &table).expect("write the table");
    println!("\n{table}");
    failures
}

/// The checks every session shares: the env file and `mitoken env` agree, the log and the
/// files hold no secret or token, and the emulator counted the requests.
///
/// # Panics
/// On any difference.
pub fn check_common(source: &str, session: &SourceSession, secret_var: Option<&str>) {
    let from_file: Vec<String> = session
        .env_file
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            format!("export {k}='{v}'")
        })
        .collect();
    let printed: Vec<&str> = session.exports.lines().collect();
    assert_eq!(
        printed, from_file,
        "{source}: mitoken env and --env-file differ"
    );
    if let Some(var) = secret_var {
        let secret = session
            .env_file
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")))
            .expect("the secret line");
        assert!(
            secret.len() >= 32,
            "{source}: a short secret: {}",
            secret.len()
        );
        assert!(
            !session.log.contains(secret),
            "{source}: the secret is in the emulator log"
        );
    }
    assert!(
        !session.log.contains("eyJ"),
        "{source}: a token is in the emulator log"
    );
    assert!(
        session.counters.is_object(),
        "{source}: no counters: {:?}",
        session.counters
    );
}
