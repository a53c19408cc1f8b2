//! The external tools `cargo xtask bench` drives, installed from Debian when missing, and the
//! Python environment with `azure-identity` (the same `target/py-venv` the tests use).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::fail;

/// A program and the Debian package that provides it.
pub struct Tool {
    /// The program looked up in `PATH`.
    pub program: &'static str,
    /// Its Debian package.
    pub package: &'static str,
}

/// What the full run needs.
pub const TOOLS: [Tool; 7] = [
    Tool {
        program: "valgrind",
        package: "valgrind",
    },
    Tool {
        program: "wrk",
        package: "wrk",
    },
    Tool {
        program: "nginx",
        package: "nginx-light",
    },
    Tool {
        program: "hyperfine",
        package: "hyperfine",
    },
    Tool {
        program: "curl",
        package: "curl",
    },
    Tool {
        program: "taskset",
        package: "util-linux",
    },
    Tool {
        program: "strip",
        package: "binutils",
    },
];

/// The path of `program` in `PATH` (and the sbin directories, where nginx lives).
pub fn in_path(program: &str) -> Option<PathBuf> {
    let paths = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&paths)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Installs every missing tool with `apt-get` (as root), or fails saying what to install.
pub fn ensure() -> crate::Result {
    let missing: Vec<&Tool> = TOOLS
        .iter()
        .filter(|t| in_path(t.program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let how = format!("apt-get install -y {}", packages.join(" "));
    println!("bench: missing {}; running `{how}`", {
        let p: Vec<&str> = missing.iter().map(|t| t.program).collect();
        p.join(", ")
    });
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&packages);
    let installed = quiet(&install) || (quiet(&["update"]) && quiet(&install));
    if !installed {
        return Err(fail(
            "bench tools",
            format!("could not install them; as root run `apt-get update && {how}`"),
        ));
    }
    match TOOLS.iter().find(|t| in_path(t.program).is_none()) {
        Some(t) => Err(fail(
            "bench tools",
            format!("`{}` still missing after `{how}`", t.program),
        )),
        None => Ok(()),
    }
}

/// A Python with `azure-identity`: `MITOKEN_PYTHON`, else `target/py-venv` (created with
/// `python3 -m venv` and `pip install azure-identity PyJWT[crypto]` when missing, as the tests
/// do). An error says why there is none.
pub fn python(target_dir: &Path) -> crate::Result<PathBuf> {
    if let Some(p) = env::var_os("MITOKEN_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = target_dir.join("py-venv");
    let python = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import azure.identity"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    println!("bench: creating {} (azure-identity, PyJWT)", venv.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    let installed = made
        && Command::new(&python)
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
            .is_ok_and(|s| s.success());
    if installed && ready(&python) {
        Ok(python)
    } else {
        Err(fail(
            "python",
            format!(
                "no Python with azure-identity: `python3 -m venv {0}` + `{0}/bin/pip install \
                 azure-identity` failed (set MITOKEN_PYTHON to one that has it)",
                venv.display()
            ),
        ))
    }
}
