//! The real-SDK sessions of `tests/tests/source_service_fabric.rs` and
//! `source_workload_identity.rs`: in a private network namespace (only `lo`, so nothing can
//! leave the machine), start `mitoken emulate --source S --env-file`, run the Python and
//! JavaScript drivers (`tests/compat/{python,node}/sources_tls.*`) with exactly that
//! environment, and collect their rows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::{mitoken_bin, python_with_azure_identity, workspace_root};

/// The resource every session asks for.
pub const RESOURCE: &str = "https://vault.azure.net";

/// `npm ci` of the pinned `@azure/identity` (tests/compat/node) into `target/compat-node`,
/// skipped when the lock file is unchanged since the last install; every file of
/// tests/compat/node is copied there. Returns that directory.
///
/// # Panics
/// If npm fails.
pub fn node_with_azure_identity() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = workspace_root().join("tests/compat/node");
        let dir = workspace_root().join("target/compat-node");
        std::fs::create_dir_all(&dir).expect("create target/compat-node");
        for entry in std::fs::read_dir(&src).expect("read tests/compat/node") {
            let path = entry.expect("list tests/compat/node").path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(path.file_name().expect("a file name")))
                    .expect("copy the node client");
            }
        }
        let lock =
            std::fs::read_to_string(src.join("package-lock.json")).expect("read package-lock");
        let stamp = dir.join("node_modules/.mitoken-lock");
        if !std::fs::read_to_string(&stamp).is_ok_and(|s| s == lock) {
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
        }
        dir
    })
}

/// Single-quotes `s` for `sh`.
pub fn quote(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

/// What a session left behind.
#[derive(Debug)]
pub struct Session {
    /// Its directory under `target/compat-run/`.
    pub dir: PathBuf,
    /// Every driver's rows, tagged with `emulator` (which emulator the driver ran against).
    pub rows: Vec<Value>,
}

impl Session {
    /// A file of the session's directory ("" when absent).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// The row of `client` / `case` (against emulator `emulator`).
    ///
    /// # Panics
    /// If there is no such row.
    pub fn row(&self, emulator: &str, client: &str, case: &str) -> &Value {
        self.rows
            .iter()
            .find(|r| r["emulator"] == emulator && r["client"] == client && r["case"] == case)
            .unwrap_or_else(|| panic!("no row {emulator} / {client} / {case} in {:#?}", self.rows))
    }
}

/// One emulator of a session: its name, and its `mitoken emulate` arguments after
/// `--source S --listen 127.0.0.1:0 --state-dir … --env-file … --export-signing-key …`.
pub struct Emulator<'a> {
    /// Name (files are `<name>.out`, `<name>.log`, `<name>.env`).
    pub name: &'a str,
    /// Extra arguments.
    pub args: &'a str,
}

/// Runs a session for `source` with `emulators`; each runs both drivers. `extra` is more shell
/// run while the emulators are up (`$D` is the session directory, `$M` the binary, and
/// `run_env NAME CMD…` runs CMD with exactly emulator NAME's environment).
///
/// # Panics
/// If the namespace, an emulator or a driver cannot start.
pub fn run(name: &str, source: &str, emulators: &[Emulator<'_>], extra: &str) -> Session {
    let dir = workspace_root().join("target/compat-run").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the session directory");
    let python = python_with_azure_identity();
    let node_dir = node_with_azure_identity();
    let py_driver = workspace_root().join("tests/compat/python/sources_tls.py");
    let mut script = format!(
        "set -u\n\
         ip link set lo up || exit 90\n\
         D={dir}\nM={bin}\n\
         run_env() {{ n=$1; shift; env -i PATH=\"$PATH\" HOME=\"$HOME\" LANG=C.UTF-8 $(cat \"$D/$n.env\") \"$@\"; }}\n",
        dir = quote(dir.to_string_lossy()),
        bin = quote(mitoken_bin().to_string_lossy()),
    );
    for e in emulators {
        let _ = write!(
            script,
            "mkdir -p \"$D/{n}-state\"\n\
             MITOKEN_LOG=info \"$M\" emulate --source {source} --listen 127.0.0.1:0 --state-dir \"$D/{n}-state\" \
             --env-file \"$D/{n}.env\" --export-signing-key \"$D/{n}-key.pem\" {args} >\"$D/{n}.out\" 2>\"$D/{n}.log\" &\n\
             echo $! >>\"$D/pids\"\n\
             for _ in $(seq 1 400); do grep -q '^ready' \"$D/{n}.out\" && break; sleep 0.05; done\n\
             grep -q '^ready' \"$D/{n}.out\" || {{ echo \"emulator {n} did not start\"; cat \"$D/{n}.log\"; exit 91; }}\n",
            n = e.name,
            args = e.args,
        );
    }
    for e in emulators {
        let _ = write!(
            script,
            "run_env {n} timeout 300 {py} {drv} {source} \"$D/{n}-key.pem\" {res} >\"$D/{n}-py.json\" 2>\"$D/{n}-py.err\" || echo \"python driver ({n}) exit $?\" >>\"$D/failures\"\n\
             (cd {node} && run_env {n} timeout 300 node sources_tls.cjs {source} {res} >\"$D/{n}-js.json\" 2>\"$D/{n}-js.err\") || echo \"node driver ({n}) exit $?\" >>\"$D/failures\"\n",
            n = e.name,
            py = quote(python.to_string_lossy()),
            drv = quote(py_driver.to_string_lossy()),
            node = quote(node_dir.to_string_lossy()),
            res = quote(RESOURCE),
        );
    }
    script.push_str(extra);
    script.push_str("\nkill $(cat \"$D/pids\") 2>/dev/null; wait; rm -f \"$D\"/*-key.pem\n");
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux; needs root)");
    let session = Session {
        dir: dir.clone(),
        rows: Vec::new(),
    };
    assert!(
        out.status.success() && session.read("failures").is_empty(),
        "session {name} failed ({:?}): {}{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        session.read("failures"),
        emulators
            .iter()
            .map(|e| format!(
                "{}\n{}",
                session.read(&format!("{}-py.err", e.name)),
                session.read(&format!("{}-js.err", e.name))
            ))
            .collect::<Vec<_>>()
            .join("\n---\n"),
    );
    let mut rows = Vec::new();
    for e in emulators {
        for lang in ["py", "js"] {
            let text = session.read(&format!("{}-{lang}.json", e.name));
            let parsed: Value = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("{name}: {} {lang} rows ({err}): {text}", e.name));
            for mut row in parsed.as_array().cloned().unwrap_or_default() {
                row["emulator"] = Value::String(e.name.to_owned());
                rows.push(row);
            }
        }
    }
    Session { dir, rows }
}

/// A markdown table of `rows` (client, case, result), for docs/sources-tls.md.
pub fn table(source: &str, rows: &[Value]) -> String {
    let mut out = String::from("| source | client | case | result |\n|---|---|---|---|\n");
    for r in rows {
        let result = if r["ok"] == true {
            format!(
                "token (aud `{}`)",
                r["claims"]["aud"].as_str().unwrap_or("")
            )
        } else {
            let e = r["error"].as_str().unwrap_or("");
            let short: String = e.chars().take(240).collect();
            format!(
                "error: {}{}",
                short.replace('|', "\\|"),
                if e.len() > short.len() { "…" } else { "" }
            )
        };
        let _ = writeln!(
            out,
            "| {source} ({}) | {} | {} | {result} |",
            r["emulator"].as_str().unwrap_or(""),
            r["client"].as_str().unwrap_or(""),
            r["case"].as_str().unwrap_or(""),
        );
    }
    out
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in
/// `docs/sources-tls.md`; `false` when the markers are missing.
pub fn record(name: &str, block: &str) -> bool {
    let path = workspace_root().join("docs/sources-tls.md");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return false;
    };
    let (begin, end) = (
        format!("<!-- {name}:begin -->\n"),
        format!("<!-- {name}:end -->"),
    );
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return false;
    };
    let updated = format!("{}{begin}{block}{}", &text[..b], &text[e..]);
    std::fs::write(&path, updated).is_ok()
}
