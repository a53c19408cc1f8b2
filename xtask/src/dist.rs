//! `cargo xtask dist`: release artifacts in `target/dist/`, and the package's install test.
//!
//! [`dist`] builds `mitoken` in release mode and writes:
//! - `mitoken_<version>-1_<arch>.deb` (built by `cargo-deb`, installed into `$CARGO_HOME` with
//!   `cargo install --locked cargo-deb` when missing): `/usr/bin/mitoken`, the hardened
//!   `mitoken-bridge.service` (installed, not enabled), the conffile `/etc/mitoken/bridge.env`,
//!   man pages and bash/zsh/fish completions generated from the clap definition;
//! - `mitoken-<version>-<arch>-linux-gnu.tar.gz` with the same files, and its `.sha256`;
//! - `BUILD-INFO.txt`: the newest glibc symbol version the binary needs.
//!
//! [`test_package`] is the CI check (root and `dpkg` required): `dpkg -i`, `mitoken --version`,
//! `systemd-analyze verify` of the installed unit, an edited conffile survives `dpkg -r`, and
//! `dpkg --purge` removes it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory as _;
use mitoken_host::cli::Cli;

use crate::{Result, StepFailed, cargo, run};

/// The package (and binary) name.
const PACKAGE: &str = "mitoken";
/// Where the conffile is installed.
const CONFFILE: &str = "/etc/mitoken/bridge.env";
/// Where the unit is installed.
const UNIT: &str = "/lib/systemd/system/mitoken-bridge.service";
/// The repository unit's command line (manual installs put the binary in /usr/local/bin).
const REPO_EXEC_START: &str = "ExecStart=/usr/local/bin/mitoken bridge --listen 127.0.0.1:50342 --upstream http://169.254.169.254";
/// The packaged unit's command line: the defaults are the same address and upstream; the
/// conffile adds options.
const PACKAGE_EXEC_START: &str = "EnvironmentFile=-/etc/mitoken/bridge.env\n\
     ExecStart=/usr/bin/mitoken bridge $MITOKEN_BRIDGE_OPTS";

/// What [`dist`] wrote.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The Debian package.
    pub deb: PathBuf,
    /// The tarball.
    pub tarball: PathBuf,
    /// The package version (`0.1.0`).
    pub version: String,
}

fn failed(step: &str, reason: impl Into<String>) -> StepFailed {
    StepFailed {
        step: step.to_owned(),
        reason: reason.into(),
    }
}

fn io(step: &str, path: &Path, e: &std::io::Error) -> StepFailed {
    failed(step, format!("{}: {e}", path.display()))
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io("dist", dir, &e))?;
    }
    fs::write(path, bytes).map_err(|e| io("dist", path, &e))
}

/// Runs `cmd` and returns its stdout, failing unless it exits 0.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| failed(&shown, format!("could not start: {e}")))?;
    if !out.status.success() {
        return Err(failed(
            &shown,
            format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Installs `cargo-deb` into the current `CARGO_HOME` unless `cargo deb --version` works.
fn ensure_cargo_deb(root: &Path) -> Result {
    let present = cargo(root)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    println!("cargo-deb is missing; installing it (cargo install --locked cargo-deb)");
    run(cargo(root).args(["install", "--locked", "cargo-deb"]))
}

/// The packaged unit: the repository's unit with the package's binary path and conffile.
fn packaged_unit(root: &Path) -> Result<String> {
    let path = root.join("host/dist/mitoken-bridge.service");
    let text = fs::read_to_string(&path).map_err(|e| io("dist", &path, &e))?;
    if !text.lines().any(|l| l == REPO_EXEC_START) {
        return Err(failed(
            "dist",
            format!(
                "{} has no `{REPO_EXEC_START}` line to adapt",
                path.display()
            ),
        ));
    }
    let text = text
        .lines()
        .map(|l| {
            if l == REPO_EXEC_START {
                PACKAGE_EXEC_START
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(text.replace(
        "Install: see README.md, \"Replacing the VM extension\".",
        "Installed by the mitoken package; settings in /etc/mitoken/bridge.env.",
    ) + "\n")
}

/// Man pages (one per command and subcommand) into `dir`.
fn man_pages(dir: &Path) -> Result {
    fn render(cmd: &clap::Command, name: &str, dir: &Path) -> Result {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone().name(name.to_owned()))
            .render(&mut page)
            .map_err(|e| failed("man pages", e.to_string()))?;
        let file = dir.join(format!("{name}.1"));
        write(&file, page)?;
        // Debian installs man pages compressed (reproducibly: no name, no time stamp).
        run(Command::new("gzip").args(["-9nf"]).arg(&file))?;
        for sub in cmd.get_subcommands() {
            render(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    render(&Cli::command(), PACKAGE, dir)
}

/// Shell completions into `dir/{bash,zsh,fish}`.
fn completions(dir: &Path) -> Result {
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "bash/mitoken"),
        (Shell::Zsh, "zsh/_mitoken"),
        (Shell::Fish, "fish/mitoken.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), PACKAGE, &mut text);
        write(&dir.join(file), text)?;
    }
    Ok(())
}

/// The newest `GLIBC_x.y[.z]` version the binary's dynamic symbols need.
pub fn glibc_needed(binary: &Path) -> Result<String> {
    let text = output(Command::new("objdump").arg("-T").arg(binary))?;
    let mut best: Option<(Vec<u32>, String)> = None;
    for word in text.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        let Some(v) = word.strip_prefix("GLIBC_") else {
            continue;
        };
        let Ok(parts) = v
            .split('.')
            .map(str::parse)
            .collect::<std::result::Result<Vec<u32>, _>>()
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| parts > *b) {
            best = Some((parts, v.to_owned()));
        }
    }
    best.map(|(_, v)| v)
        .ok_or_else(|| failed("glibc", "objdump -T lists no GLIBC_ symbol version"))
}

/// Builds everything into `target/dist/`.
pub fn dist(root: &Path) -> Result<Artifacts> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let target = target_dir(root);
    let out = target.join("dist");
    let staging = out.join("staging");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| io("dist", &staging, &e))?;
    }
    run(cargo(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mitoken-host",
        "--bin",
        PACKAGE,
    ]))?;
    let binary = target.join("release").join(PACKAGE);

    // The files both artifacts carry, laid out as installed.
    write(
        &staging.join("mitoken-bridge.service"),
        packaged_unit(root)?,
    )?;
    let env_src = root.join("host/dist/bridge.env");
    let env_text = fs::read(&env_src).map_err(|e| io("dist", &env_src, &e))?;
    write(&staging.join("bridge.env"), env_text)?;
    man_pages(&staging.join("man"))?;
    completions(&staging.join("completions"))?;

    ensure_cargo_deb(root)?;
    let deb = out.join(format!("{PACKAGE}_{version}-1_amd64.deb"));
    run(cargo(root)
        .args([
            "deb",
            "-p",
            "mitoken-host",
            "--no-build",
            "--locked",
            "--deb-revision",
            "1",
            "--output",
        ])
        .arg(&deb))?;

    let glibc = glibc_needed(&binary)?;
    let tar_name = format!("{PACKAGE}-{version}-x86_64-linux-gnu");
    let tar_dir = out.join(&tar_name);
    if tar_dir.exists() {
        fs::remove_dir_all(&tar_dir).map_err(|e| io("dist", &tar_dir, &e))?;
    }
    fs::create_dir_all(&tar_dir).map_err(|e| io("dist", &tar_dir, &e))?;
    run(Command::new("cp").arg(&binary).arg(&tar_dir))?;
    run(Command::new("cp")
        .arg("-r")
        .args(
            ["mitoken-bridge.service", "bridge.env", "man", "completions"].map(|f| staging.join(f)),
        )
        .arg(&tar_dir))?;
    let tarball = out.join(format!("{tar_name}.tar.gz"));
    run(Command::new("tar")
        .current_dir(&out)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
        .arg(&tarball)
        .arg(&tar_name))?;
    fs::remove_dir_all(&tar_dir).map_err(|e| io("dist", &tar_dir, &e))?;
    for file in [&tarball, &deb] {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sum = output(Command::new("sha256sum").current_dir(&out).arg(&name))?;
        write(&out.join(format!("{name}.sha256")), sum)?;
    }

    let musl = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "x86_64-unknown-linux-musl"));
    let mut info = String::new();
    let _ = writeln!(info, "mitoken {version} (x86_64-unknown-linux-gnu)");
    let _ = writeln!(
        info,
        "needs glibc >= {glibc} (Debian 12 ships 2.36, Ubuntu 22.04 ships 2.35)"
    );
    let _ = writeln!(
        info,
        "static musl build: {}",
        if musl {
            "target installed but not built by this task"
        } else {
            "not built: the x86_64-unknown-linux-musl target is not installed here"
        }
    );
    write(&out.join("BUILD-INFO.txt"), &info)?;
    print!("{info}");
    println!("dist: {}\ndist: {}", deb.display(), tarball.display());
    Ok(Artifacts {
        deb,
        tarball,
        version,
    })
}

fn dpkg(args: &[&str], deb: Option<&Path>) -> Result {
    let mut cmd = Command::new("dpkg");
    cmd.args(args);
    if let Some(deb) = deb {
        cmd.arg(deb);
    }
    output(&mut cmd).map(drop)
}

fn check(condition: bool, what: &str) -> Result {
    if condition {
        println!("package test: {what}: ok");
        Ok(())
    } else {
        Err(failed("package test", what))
    }
}

/// The CI test of the package on this machine (needs root and dpkg; leaves the package
/// removed).
pub fn test_package(artifacts: &Artifacts) -> Result {
    let uid = output(Command::new("id").arg("-u"))?;
    if uid.trim() != "0" {
        return Err(failed(
            "package test",
            "needs root (dpkg -i); run cargo xtask ci as root",
        ));
    }
    for file in [&artifacts.tarball, &artifacts.deb] {
        let dir = file.parent().unwrap_or(Path::new("."));
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        output(
            Command::new("sha256sum")
                .current_dir(dir)
                .args(["-c", &format!("{name}.sha256")]),
        )?;
        println!("package test: {name}.sha256 verifies: ok");
    }
    dpkg(&["-i"], Some(&artifacts.deb))?;
    let outcome = installed_checks(artifacts);
    // Whatever happened, leave the machine as it was.
    let purge = dpkg(&["--purge", PACKAGE], None);
    outcome?;
    purge?;
    check(
        !Path::new(CONFFILE).exists(),
        "dpkg --purge removed the conffile",
    )?;
    check(
        !Path::new("/etc/mitoken").exists(),
        "dpkg --purge removed /etc/mitoken",
    )
}

fn installed_checks(artifacts: &Artifacts) -> Result {
    let version = output(Command::new("/usr/bin/mitoken").arg("--version"))?;
    check(
        version.trim() == format!("mitoken {}", artifacts.version),
        &format!("mitoken --version says `{}`", version.trim()),
    )?;
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no", UNIT])
        .output()
        .map_err(|e| failed("systemd-analyze verify", e.to_string()))?;
    let warnings = String::from_utf8_lossy(&verify.stderr);
    check(
        verify.status.success() && warnings.trim().is_empty(),
        &format!(
            "systemd-analyze verify {UNIT} (no warnings) {}",
            warnings.trim()
        ),
    )?;
    let enabled =
        Path::new("/etc/systemd/system/multi-user.target.wants/mitoken-bridge.service").exists();
    check(!enabled, "the unit is installed, not enabled")?;
    for path in [
        "/usr/share/man/man1/mitoken.1.gz",
        "/usr/share/bash-completion/completions/mitoken",
    ] {
        check(Path::new(path).exists(), &format!("{path} installed"))?;
    }
    let conffiles = output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]))?;
    check(
        conffiles.contains(CONFFILE),
        &format!("{CONFFILE} is a conffile"),
    )?;

    let edited = "MITOKEN_BRIDGE_OPTS=\"--idle-timeout 30\" # edited by the package test\n";
    let mut text =
        fs::read_to_string(CONFFILE).map_err(|e| io("package test", Path::new(CONFFILE), &e))?;
    text.push_str(edited);
    fs::write(CONFFILE, &text).map_err(|e| io("package test", Path::new(CONFFILE), &e))?;
    dpkg(&["-r", PACKAGE], None)?;
    check(
        !Path::new("/usr/bin/mitoken").exists(),
        "dpkg -r removed /usr/bin/mitoken",
    )?;
    check(!Path::new(UNIT).exists(), "dpkg -r removed the unit")?;
    let kept = fs::read_to_string(CONFFILE).unwrap_or_default();
    check(kept.contains(edited), "dpkg -r kept the edited conffile")
}
