//! `cargo xtask sim`: boots firmware-sim under QEMU against the real `mitoken emulate` and checks
//! what the guest got.
//!
//! 1. Builds the image (`firmware-sim/`, release) and its mitoken-core-free twin `baseline`, and
//!    sizes both.
//! 2. Starts `mitoken emulate` on an ephemeral loopback port with four identities and one
//!    injected `410` for the "flaky" identity.
//! 3. Runs `qemu-system-x86_64 -accel tcg` with user-mode networking sealed by `restrict=on`; the
//!    guest's 169.254.169.254:80 is a `guestfwd` whose relay is `xtask relay` (see
//!    [`crate::relay`]), which records the guest's bytes.
//! 4. Checks the serial log: tokens for the system-assigned identity, by `client_id`, by
//!    `msi_res_id`, IMDS's error for an unknown identity, and the flaky identity's 410 retried —
//!    and that every request the guest sent is byte for byte what mitoken-core writes for
//!    `Endpoint::Imds`. Fails on any mismatch, a missing line, a timeout, a triple fault or a panic.
//!
//! Environment: `MITOKEN_BIN` runs that emulator binary instead of building `mitoken`;
//! `SIM_TIMEOUT_SECS` (default 60) bounds the QEMU run.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mitoken_core::request::{Endpoint, ResIdParam, Selector, TokenRequest};

use crate::{StepFailed, cargo, elf, run, step};

const RESOURCE: &str = "https://management.azure.com/";
const SYSTEM_CLIENT: &str = "20000000-0000-4000-8000-000000000001";
const SYSTEM_OBJECT: &str = "30000000-0000-4000-8000-000000000001";
const UA_CLIENT: &str = "20000000-0000-4000-8000-000000000002";
const UA_OBJECT: &str = "30000000-0000-4000-8000-000000000002";
const RES_CLIENT: &str = "20000000-0000-4000-8000-000000000003";
const RES_OBJECT: &str = "30000000-0000-4000-8000-000000000003";
const RES_ID: &str = "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/sim/providers/Microsoft.ManagedIdentity/userAssignedIdentities/by-resource-id";
const FLAKY_CLIENT: &str = "20000000-0000-4000-8000-000000000004";
const FLAKY_OBJECT: &str = "30000000-0000-4000-8000-000000000004";
const UNKNOWN_CLIENT: &str = "20000000-0000-4000-8000-0000000000ff";

/// QEMU exit status for the guest's success code 0x10 (`(0x10 << 1) | 1`).
const QEMU_SUCCESS: i32 = 33;

/// One request the guest makes and what must come back.
struct Case {
    label: &'static str,
    /// The `req=` word for the guest.
    word: String,
    selector: Option<Selector<'static>>,
    /// Expected status, and for a token the client ID it must be for.
    status: u16,
    client_id: Option<&'static str>,
    /// Attempts expected (2 = one retried 410).
    attempts: u32,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "system-assigned",
            word: "req=system".into(),
            selector: None,
            status: 200,
            client_id: Some(SYSTEM_CLIENT),
            attempts: 1,
        },
        Case {
            label: "by client_id",
            word: format!("req=client_id:{UA_CLIENT}"),
            selector: Some(Selector::ClientId(UA_CLIENT)),
            status: 200,
            client_id: Some(UA_CLIENT),
            attempts: 1,
        },
        Case {
            label: "by msi_res_id",
            word: format!("req=msi_res_id:{RES_ID}"),
            selector: Some(Selector::ResourceId {
                id: RES_ID,
                param: ResIdParam::MsiResId,
            }),
            status: 200,
            client_id: Some(RES_CLIENT),
            attempts: 1,
        },
        Case {
            label: "unknown identity",
            word: format!("req=client_id:{UNKNOWN_CLIENT}"),
            selector: Some(Selector::ClientId(UNKNOWN_CLIENT)),
            status: 400,
            client_id: None,
            attempts: 1,
        },
        Case {
            label: "410 retried (object_id)",
            word: format!("req=object_id:{FLAKY_OBJECT}"),
            selector: Some(Selector::ObjectId(FLAKY_OBJECT)),
            status: 200,
            client_id: Some(FLAKY_CLIENT),
            attempts: 2,
        },
        Case {
            label: "system again (guest cache)",
            word: "req=system".into(),
            selector: None,
            status: 200,
            client_id: Some(SYSTEM_CLIENT),
            attempts: 0,
        },
    ]
}

fn config_toml() -> String {
    format!(
        "# written by `cargo xtask sim`\n\
         [system_assigned]\nclient_id = \"{SYSTEM_CLIENT}\"\nobject_id = \"{SYSTEM_OBJECT}\"\n\n\
         [[user_assigned]]\nclient_id = \"{UA_CLIENT}\"\nobject_id = \"{UA_OBJECT}\"\n\
         resource_id = \"/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/sim/providers/Microsoft.ManagedIdentity/userAssignedIdentities/by-client-id\"\n\n\
         [[user_assigned]]\nclient_id = \"{RES_CLIENT}\"\nobject_id = \"{RES_OBJECT}\"\nresource_id = \"{RES_ID}\"\n\n\
         [[user_assigned]]\nclient_id = \"{FLAKY_CLIENT}\"\nobject_id = \"{FLAKY_OBJECT}\"\n\
         resource_id = \"/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/sim/providers/Microsoft.ManagedIdentity/userAssignedIdentities/flaky\"\n"
    )
}

fn fail(step: &str, reason: impl Into<String>) -> StepFailed {
    StepFailed {
        step: step.into(),
        reason: reason.into(),
    }
}

/// Runs the whole simulation.
pub fn sim(root: &Path) -> crate::Result {
    measure(root).map(|_| ())
}

/// What a simulation measured, for `cargo xtask bench`.
pub struct Figures {
    /// Section sizes of the image and of the core-free baseline.
    pub sizes: Sizes,
    /// Peak stack of one full token fetch (driver + core + smoltcp + virtio), bytes.
    pub stack_fetch: String,
    /// Peak stack of mitoken-core alone (the response replayed from memory), bytes.
    pub stack_core: String,
    /// Boot to first token (guest TSC), milliseconds.
    pub first_token_ms: String,
}

/// Runs the whole simulation and returns its figures.
pub fn measure(root: &Path) -> crate::Result<Figures> {
    let started = Instant::now();
    let qemu = ensure_qemu()?;
    println!("qemu: {}", qemu.display());
    let fw = root.join("firmware-sim");
    step("build firmware image", || {
        run(cargo(&fw).args(["build", "--release", "--quiet"]))
    })?;
    let out = fw.join("target/x86_64-unknown-linux-gnu/release");
    let image = out.join("firmware-sim");
    let sizes = image_sizes(&image, &out.join("baseline"))?;
    let emulator = if let Some(p) = env::var_os("MITOKEN_BIN") {
        PathBuf::from(p)
    } else {
        step("build mitoken", || {
            run(cargo(root).args(["build", "--quiet", "-p", "mitoken-host", "--bin", "mitoken"]))
        })?;
        root.join("target/debug/mitoken")
    };

    let work = root.join("target/sim");
    let record = work.join("relay");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&record).map_err(|e| fail("sim dir", e.to_string()))?;
    let config = work.join("identities.toml");
    std::fs::write(&config, config_toml()).map_err(|e| fail("sim config", e.to_string()))?;

    let mut emu = Emulator::start(&emulator, &config)?;
    let result = boot_and_check(&qemu, &image, emu.addr.as_str(), &record, &sizes);
    let counted = emulator_token_requests(&emu.addr);
    emu.stop();
    // The emulator's own count: every attempt the guest reported, and nothing for the request
    // it answered from its cache.
    let want: u32 = cases().iter().map(|c| c.attempts).sum();
    if let Ok(n) = &counted {
        println!(
            "emulator counted {n} token requests for {} guest requests ({want} attempts \
             reported; {} answered from the guest's cache)",
            cases().len(),
            cases().iter().filter(|c| c.attempts == 0).count()
        );
    }
    let (report, stack_fetch, stack_core, first_token_ms) = result?;
    println!("{report}");
    let counted = counted?;
    if counted != u64::from(want) {
        return Err(fail(
            "emulator counters",
            format!("{counted} token requests reached the emulator, want {want}"),
        ));
    }
    println!("xtask sim: ok ({:.1?} in all)", started.elapsed());
    Ok(Figures {
        sizes,
        stack_fetch,
        stack_core,
        first_token_ms,
    })
}

/// Section sizes of the image and of the core-free baseline, bytes.
#[allow(missing_docs)]
pub struct Sizes {
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub bss: u64,
    pub file: u64,
    pub base_text: u64,
    pub base_rodata: u64,
    pub base_data: u64,
    pub core_symbols_text: u64,
}

fn image_sizes(image: &Path, baseline: &Path) -> Result<Sizes, StepFailed> {
    let img = elf::read(image).map_err(|e| fail("size image", e))?;
    let base = elf::read(baseline).map_err(|e| fail("size baseline", e))?;
    Ok(Sizes {
        text: img.section(".text"),
        rodata: img.section(".rodata"),
        data: img.section(".data"),
        bss: img.section(".bss"),
        file: std::fs::metadata(image).map_or(0, |m| m.len()),
        base_text: base.section(".text"),
        base_rodata: base.section(".rodata"),
        base_data: base.section(".data"),
        core_symbols_text: img.symbols_matching(".text", "mitoken_core"),
    })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

const QEMU_INSTALL_HINT: &str = "install QEMU from bookworm-backports (the same version as the \
preinstalled qemu-utils, which Debian 12's own qemu-system-x86 would remove):\n  \
echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list\n  \
apt-get update && apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86";

/// Finds `qemu-system-x86_64`, installing it from bookworm-backports when we are root on
/// Debian 12, or says exactly what to run.
fn ensure_qemu() -> Result<PathBuf, StepFailed> {
    if let Some(p) = find_in_path("qemu-system-x86_64") {
        return Ok(p);
    }
    let bookworm = std::fs::read_to_string("/etc/os-release")
        .is_ok_and(|s| s.contains("VERSION_CODENAME=bookworm"));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !(bookworm && root && find_in_path("apt-get").is_some()) {
        return Err(fail("qemu-system-x86_64 not found", QEMU_INSTALL_HINT));
    }
    println!("qemu-system-x86_64 missing: installing qemu-system-x86 from bookworm-backports");
    let has_backports = ["/etc/apt/sources.list", "/etc/apt/sources.list.d"]
        .iter()
        .flat_map(|p| {
            let p = Path::new(p);
            if p.is_dir() {
                std::fs::read_dir(p)
                    .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                    .unwrap_or_default()
            } else {
                vec![p.to_path_buf()]
            }
        })
        .any(|f| std::fs::read_to_string(f).is_ok_and(|s| s.contains("bookworm-backports")));
    if !has_backports {
        std::fs::write(
            "/etc/apt/sources.list.d/bookworm-backports.sources",
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .map_err(|e| {
            fail(
                "adding bookworm-backports",
                format!("{e}\n{QEMU_INSTALL_HINT}"),
            )
        })?;
    }
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-t",
            "bookworm-backports",
            "qemu-system-x86",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    find_in_path("qemu-system-x86_64").ok_or_else(|| {
        fail(
            "qemu-system-x86_64 still missing after install",
            QEMU_INSTALL_HINT,
        )
    })
}

/// The running emulator.
struct Emulator {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
}

impl Emulator {
    fn start(bin: &Path, config: &Path) -> Result<Self, StepFailed> {
        let fault = format!("status=410,count=1,identity={FLAKY_CLIENT}");
        let mut child = Command::new(bin)
            .arg("emulate")
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .args(["--fault", &fault])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail("start mitoken emulate", format!("{}: {e}", bin.display())))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the emulator never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(l))) => l,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match other {
                    Ok(None) => "it exited without printing its `listening on http://…` line \
                                 (its error is above; a `mitoken` without `emulate` is too old)"
                        .to_owned(),
                    Err(_) => "no `listening on http://…` line within 30 s".to_owned(),
                    Ok(Some(Err(e))) => format!("reading its output: {e}"),
                    Ok(Some(Ok(_))) => unreachable!("matched above"),
                };
                return Err(fail(&format!("start {} emulate", bin.display()), why));
            }
        };
        let addr = line
            .split_once("listening on http://")
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('/')
            })
            .filter(|a| a.starts_with("127.0.0.1:"))
            .map(str::to_owned);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(
                "start mitoken emulate",
                format!("unexpected first line {line:?} (want a loopback `listening on http://…`)"),
            ));
        };
        println!("emulator: {line}");
        Ok(Self { child, addr })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed `mitoken-sim:` line: the word after the prefix and its `key=value` pairs.
#[derive(Debug, Default)]
struct Line {
    kind: String,
    fields: BTreeMap<String, String>,
}

fn parse_line(line: &str) -> Option<Line> {
    let rest = line.trim_end().strip_prefix("mitoken-sim: ")?;
    let (kind, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut fields = BTreeMap::new();
    while let Some((key, after)) = rest.trim_start().split_once('=') {
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        fields.insert(key.to_owned(), value.to_owned());
        rest = next;
    }
    Some(Line {
        kind: kind.to_owned(),
        fields,
    })
}

#[allow(clippy::too_many_lines)]
fn boot_and_check(
    qemu: &Path,
    image: &Path,
    emulator: &str,
    record: &Path,
    sizes: &Sizes,
) -> Result<(String, String, String, String), StepFailed> {
    let relay_exe = env::current_exe().map_err(|e| fail("relay path", e.to_string()))?;
    let relay = format!(
        "{} relay {emulator} --record {}",
        relay_exe.display(),
        record.display()
    );
    if relay.contains(',') || relay_exe.to_string_lossy().contains(' ') {
        return Err(fail(
            "relay path",
            format!("{relay:?} must not contain commas or spaces (QEMU option syntax)"),
        ));
    }
    let cases = cases();
    let mut append = format!(
        "ip=169.254.169.15/24 gw=169.254.169.2 endpoint=imds resource={RESOURCE} \
         retry_div=200 timeout_ms=5000"
    );
    for c in &cases {
        append.push(' ');
        append.push_str(&c.word);
    }
    let netdev = format!(
        "user,id=n0,restrict=on,net=168.0.0.0/7,host=169.254.169.2,\
         guestfwd=tcp:169.254.169.254:80-cmd:{relay}"
    );
    let mut cmd = Command::new(qemu);
    cmd.args(["-accel", "tcg", "-m", "64M", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-netdev", &netdev])
        .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
        .arg("-kernel")
        .arg(image)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!("==> qemu: {cmd:?}");
    let timeout = Duration::from_secs(
        env::var("SIM_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| fail("start qemu", format!("{}: {e}", qemu.display())))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
            // Echo complete lines as they come.
            while let Some(pos) = all.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = all.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line).replace('\r', "");
                print!("guest| {text}");
                let _ = tx.send(text);
            }
        }
        if !all.is_empty() {
            let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
        }
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| fail("qemu", e.to_string()))? {
            break Some(status);
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let wall = t0.elapsed();
    let _ = reader.join();
    let qemu_stderr = err_reader.join().unwrap_or_default();
    let log: Vec<String> = rx.try_iter().collect();

    let mut problems = Vec::new();
    match status {
        None => problems.push(format!("timed out after {timeout:?}")),
        Some(s) => match s.code() {
            Some(QEMU_SUCCESS) => {}
            Some(0) => problems.push("QEMU exited 0: the guest triple-faulted or reset".into()),
            Some(37) => problems.push("the guest panicked (status 37)".into()),
            other => problems.push(format!(
                "QEMU exited with {other:?} (want {QEMU_SUCCESS}); stderr: {}",
                qemu_stderr.trim()
            )),
        },
    }
    let lines: Vec<Line> = log.iter().filter_map(|l| parse_line(l)).collect();
    let results: BTreeMap<usize, &Line> = lines
        .iter()
        .filter(|l| l.kind == "RESULT")
        .filter_map(|l| Some((l.fields.get("req")?.parse().ok()?, l)))
        .collect();
    let retries: Vec<&Line> = lines.iter().filter(|l| l.kind == "RETRY").collect();
    let field = |l: &Line, k: &str| l.fields.get(k).cloned().unwrap_or_default();

    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "\n{:<26} {:>6} {:>8} {:>9} {:>12} {:>9}",
        "request", "status", "attempts", "token", "expires_on", "ms"
    );
    for (i, c) in cases.iter().enumerate() {
        let n = i + 1;
        let Some(r) = results.get(&n) else {
            problems.push(format!("no RESULT line for request {n} ({})", c.label));
            continue;
        };
        let status: u16 = field(r, "status").parse().unwrap_or(0);
        let attempts: u32 = field(r, "attempts").parse().unwrap_or(0);
        let _ = writeln!(
            summary,
            "{:<26} {:>6} {:>8} {:>9} {:>12} {:>9}",
            c.label,
            status,
            attempts,
            r.fields
                .get("token_len")
                .map_or("-".into(), |t| format!("{t} B")),
            r.fields.get("expires_on").map_or("-", String::as_str),
            field(r, "ms"),
        );
        if status != c.status {
            problems.push(format!(
                "request {n} ({}): status {status}, want {} ({})",
                c.label,
                c.status,
                log_line_of(r)
            ));
        }
        if let Some(want) = c.client_id
            && r.fields.get("client_id").map(String::as_str) != Some(want)
        {
            problems.push(format!(
                "request {n} ({}): token for client_id {:?}, want {want}",
                c.label,
                r.fields.get("client_id")
            ));
        }
        if c.status == 200 {
            let len: usize = field(r, "token_len").parse().unwrap_or(0);
            let exp: u64 = field(r, "expires_on").parse().unwrap_or(0);
            if len < 100 || exp == 0 {
                problems.push(format!(
                    "request {n} ({}): token_len {len}, expires_on {exp}",
                    c.label
                ));
            }
        } else if field(r, "error") != "invalid_request" {
            problems.push(format!(
                "request {n} ({}): error {:?}, want invalid_request",
                c.label,
                field(r, "error")
            ));
        }
        if attempts != c.attempts {
            problems.push(format!(
                "request {n} ({}): {attempts} attempts, want {}",
                c.label, c.attempts
            ));
        }
        let retried_410 = retries
            .iter()
            .any(|l| field(l, "req") == n.to_string() && field(l, "after").starts_with("HTTP 410"));
        if (c.attempts > 1) != retried_410 {
            problems.push(format!(
                "request {n} ({}): RETRY after 410 {}",
                c.label,
                if retried_410 { "unexpected" } else { "missing" }
            ));
        }
    }
    check_recorded_bytes(record, &cases, &mut problems);

    let done = lines.iter().find(|l| l.kind == "DONE");
    let stackl = lines.iter().find(|l| l.kind == "STACK");
    if done.is_none() {
        problems.push("no DONE line".into());
    }
    let first_token_ms = done.map(|l| field(l, "first_token_ms")).unwrap_or_default();
    let core_text = sizes.text.saturating_sub(sizes.base_text);
    let _ = writeln!(
        summary,
        "\nimage {}: {} B file, {} B loaded; .text {} B, .rodata {} B, .data {} B, .bss {} B",
        image.display(),
        sizes.file,
        sizes.text + sizes.rodata + sizes.data,
        sizes.text,
        sizes.rodata,
        sizes.data,
        sizes.bss
    );
    let _ = writeln!(
        summary,
        "mitoken-core's share (image minus core-free baseline): .text {} B ({:.1} KiB), .rodata {} B, .data {} B; symbols named mitoken_core: {} B of .text",
        core_text,
        kib(core_text),
        sizes.rodata.saturating_sub(sizes.base_rodata),
        sizes.data.saturating_sub(sizes.base_data),
        sizes.core_symbols_text
    );
    if let Some(s) = stackl {
        let _ = writeln!(
            summary,
            "stack: full fetch (core + smoltcp + virtio) peak {} B; mitoken-core alone {} B; exchange buffer {} B (static)",
            field(s, "fetch_max"),
            field(s, "core_only"),
            field(s, "exchange_buf")
        );
    } else {
        problems.push("no STACK line".into());
    }
    let _ = writeln!(
        summary,
        "boot to first token (guest TSC): {first_token_ms} ms; QEMU wall time {:.0} ms",
        wall.as_secs_f64() * 1000.0
    );

    // Between the 410 and its retry (a 10 s slot / retry_div 200 = 50 ms) the guest must halt,
    // not spin.
    match lines.iter().find(|l| l.kind == "IDLE") {
        Some(idle) => {
            let halted: u64 = field(idle, "halted_ms").parse().unwrap_or(0);
            let _ = writeln!(
                summary,
                "idle: halted {halted} ms of {} ms of requests ({} hlt)",
                field(idle, "requests_ms"),
                field(idle, "halts")
            );
            if halted < 40 {
                problems.push(format!(
                    "the guest halted only {halted} ms: it should sleep through the 410's retry slot"
                ));
            }
        }
        None => problems.push("no IDLE line".into()),
    }
    if core_text > 48 * 1024 {
        problems.push(format!(
            "mitoken-core adds {core_text} B of .text, over the 48 KiB goal"
        ));
    }
    if problems.is_empty() {
        let stack = |key| stackl.map(|s| field(s, key)).unwrap_or_default();
        Ok((
            summary,
            stack("fetch_max"),
            stack("core_only"),
            first_token_ms,
        ))
    } else {
        println!("{summary}");
        Err(fail("sim", format!("\n  - {}", problems.join("\n  - "))))
    }
}

/// The emulator's count of token requests (`GET /mitoken/admin/counters`, field `total`).
fn emulator_token_requests(addr: &str) -> Result<u64, StepFailed> {
    use std::io::Write as _;
    let step = "emulator counters";
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| fail(step, e.to_string()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        s,
        "GET /mitoken/admin/counters HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(step, e.to_string()))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| fail(step, e.to_string()))?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| fail(step, format!("no body in {reply:?}")))?;
    let json: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|e| fail(step, format!("{e}: {body}")))?;
    json["total"]
        .as_u64()
        .ok_or_else(|| fail(step, format!("no `total` in {json}")))
}

fn kib(b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let f = b as f64;
    f / 1024.0
}

fn log_line_of(l: &Line) -> String {
    l.fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every request the guest sent must be exactly what mitoken-core writes for `Endpoint::Imds`
/// (so exactly what it would send on Azure), each once, the retried one twice.
fn check_recorded_bytes(record: &Path, cases: &[Case], problems: &mut Vec<String>) {
    let mut got: Vec<Vec<u8>> = std::fs::read_dir(record)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut want = Vec::new();
    for c in cases {
        let mut req = TokenRequest::new(RESOURCE);
        if let Some(sel) = c.selector {
            req = req.with_selector(sel);
        }
        let mut buf = vec![0u8; 4096];
        match req.write(&Endpoint::Imds, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                for _ in 0..c.attempts {
                    want.push((c.label, buf.clone()));
                }
            }
            Err(e) => problems.push(format!("cannot build the expected request: {e}")),
        }
    }
    for (label, bytes) in &want {
        if let Some(i) = got.iter().position(|g| g == bytes) {
            got.swap_remove(i);
        } else {
            problems.push(format!(
                "the guest never sent the exact IMDS request for {label}:\n{}",
                String::from_utf8_lossy(bytes)
            ));
        }
    }
    for extra in got {
        problems.push(format!(
            "the guest sent an unexpected connection's bytes:\n{}",
            String::from_utf8_lossy(&extra)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_lines_with_quoted_values() {
        let l = parse_line(
            "mitoken-sim: RESULT req=4 status=400 error=invalid_request gave_up=\"HTTP 400 is not retried\" description=\"Identity not found\"\r\n",
        )
        .expect("a sim line");
        assert_eq!(l.kind, "RESULT");
        assert_eq!(l.fields["req"], "4");
        assert_eq!(l.fields["error"], "invalid_request");
        assert_eq!(l.fields["gave_up"], "HTTP 400 is not retried");
        assert_eq!(l.fields["description"], "Identity not found");
        assert!(parse_line("SeaBIOS noise").is_none());
    }

    #[test]
    fn expected_requests_are_what_the_core_writes() {
        for c in cases() {
            let mut req = TokenRequest::new(RESOURCE);
            if let Some(sel) = c.selector {
                req = req.with_selector(sel);
            }
            let mut buf = [0u8; 1024];
            let n = req.write(&Endpoint::Imds, &mut buf).expect("fits");
            let text = std::str::from_utf8(&buf[..n]).expect("ascii");
            assert!(text.starts_with("GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"));
            assert!(text.contains("\r\nHost: 169.254.169.254\r\nMetadata: true\r\n"));
            // The guest's `req=` word names the same selector.
            if let Some(sel) = c.selector {
                assert!(c.word.contains(sel.value()), "{}", c.word);
            }
        }
    }
}
