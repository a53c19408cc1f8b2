//! Helpers shared by mitoken's end-to-end tests: locating (and building once) the real `mitoken`
//! binary, and reading the shared fixtures.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Path of a file in `../shared/fixtures/` (next to the project checkout).
pub fn fixture_path(name: &str) -> PathBuf {
    workspace_root().join("../shared/fixtures").join(name)
}

/// Bytes of a shared fixture.
///
/// # Panics
/// If the fixture cannot be read (a broken test setup).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Path of the `mitoken` binary, built once per test process with the same profile as the
/// tests (`cargo build -p mitoken-host --bin mitoken`).
///
/// # Panics
/// If the build fails.
pub fn mitoken_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "mitoken-host", "--bin", "mitoken"])
            .status()
            .expect("start cargo build");
        assert!(status.success(), "cargo build of mitoken failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        target.join("debug").join("mitoken")
    })
}

/// A Python interpreter with `azure-identity` and `PyJWT[crypto]` installed: a virtual
/// environment under `target/py-venv`, created (from the Python package index) on first use. `MITOKEN_PYTHON`
/// overrides it with an interpreter that already has both.
///
/// # Panics
/// If the environment cannot be created (no `python3`, no network to the package index).
pub fn python_with_azure_identity() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("MITOKEN_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = workspace_root().join("target/py-venv");
        let python = venv.join("bin/python");
        let ready = Command::new(&python)
            .args(["-c", "import azure.identity, jwt, cryptography"])
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("start python3 -m venv");
            assert!(made.success(), "python3 -m venv {} failed", venv.display());
            let pip = Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "azure-identity>=1.15",
                    "PyJWT[crypto]>=2.8",
                ])
                .status()
                .expect("start pip");
            assert!(pip.success(), "pip install azure-identity PyJWT failed");
        }
        python
    })
}
