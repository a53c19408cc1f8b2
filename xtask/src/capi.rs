//! `cargo xtask capi`: the C API end to end.
//!
//! 1. `capi/`'s own checks: `cargo fmt --check`, `clippy -D warnings`, its tests (including
//!    the property test that drives the `extern "C"` functions).
//! 2. Builds the staticlib (release, LTO, `panic = "abort"`) and checks that nothing in it
//!    needs an allocator: `nm -u` lists no `malloc`/`free`/`calloc`/`realloc`/… (and `nm` must
//!    see the library's own `mitoken_*` functions, so the check is not blind).
//! 3. Regenerates `capi/include/mitoken.h` with cbindgen (installed if missing) and fails if
//!    the checked-in header differs.
//! 4. Builds `examples/c/fetch_token.c` with `cc -Wall -Wextra -Werror -std=c11` and runs it
//!    against the real `mitoken emulate`: system-assigned and user-assigned tokens (their JWT
//!    claims name the right identity), an unknown identity (IMDS's error text on stderr, exit
//!    1), a `410` fault ridden out; each natively and under
//!    `valgrind --leak-check=full --error-exitcode=1`.
//! 5. Measures what a C integrator budgets: the library's `.text`/`.rodata` linked into
//!    `fetch_token` with `--gc-sections` (from the linker map), and the peak stack of a whole
//!    exchange and of the cache calls (`capi/measure/stack_probe.c`: a painted stack, like
//!    firmware-sim).
//!
//! Environment: `MITOKEN_BIN` runs that emulator binary instead of building `mitoken`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use std::{env, fs};

use base64::Engine as _;
use mitoken_core::request::{Endpoint, Style, TokenRequest};

use crate::{StepFailed, cargo, run, step};

const SYSTEM_CLIENT: &str = "c0000000-0000-4000-8000-000000000001";
const SYSTEM_OBJECT: &str = "c0000000-0000-4000-8000-000000000002";
const UA_CLIENT: &str = "c1000000-0000-4000-8000-000000000001";
const UA_OBJECT: &str = "c1000000-0000-4000-8000-000000000002";
const UNKNOWN_CLIENT: &str = "c9000000-0000-4000-8000-000000000009";
const RESOURCE: &str = "https://management.azure.com/";
/// What IMDS (and the emulator) says about a client id that names no identity of the VM.
const IMDS_UNKNOWN_IDENTITY: &str = "Identity not found";
/// Symbols a heap-free library must not need.
const ALLOCATOR_SYMBOLS: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "aligned_alloc",
    "posix_memalign",
    "memalign",
    "__rust_alloc",
];

fn fail(step: &str, reason: impl Into<String>) -> StepFailed {
    StepFailed {
        step: step.into(),
        reason: reason.into(),
    }
}

/// What `cargo xtask capi` measured.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Bytes of the library's code linked into `fetch_token` (`--gc-sections`).
    pub text: u64,
    /// Bytes of the library's code linked into the stack probe, which also uses the cache.
    pub text_with_cache: u64,
    /// Bytes of the library's read-only data linked into `fetch_token`.
    pub rodata: u64,
    /// Peak stack of one whole exchange through the C API, bytes.
    pub stack: u64,
    /// Peak stack of the cache calls (init, insert, get), bytes.
    pub cache_stack: u64,
    /// The staticlib's file size, bytes.
    pub archive: u64,
}

/// Runs every check and prints the figures.
pub fn capi(root: &Path) -> crate::Result {
    let started = Instant::now();
    let dir = root.join("capi");
    let work = dir.join("target/xtask");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| fail("capi work dir", e.to_string()))?;

    step("capi: fmt, clippy, tests", || {
        run(cargo(&dir).args(["fmt", "--", "--check"]))?;
        run(cargo(&dir).args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
        run(cargo(&dir).args(["test", "--quiet"]))
    })?;
    let lib = dir.join("target/release/libmitoken_capi.a");
    step("capi: build the staticlib", || {
        run(cargo(&dir).args([
            "rustc",
            "--release",
            "--quiet",
            "--lib",
            "--crate-type",
            "staticlib",
        ]))
    })?;
    step("capi: no allocator symbols (nm -u)", || {
        check_no_allocator(&lib)
    })?;
    step("capi: header is what cbindgen generates", || {
        check_header(&dir, &work)
    })?;

    let fetch = work.join("fetch_token");
    let map = work.join("fetch_token.map");
    step("capi: cc examples/c/fetch_token.c", || {
        run(Command::new("cc")
            .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-O2"])
            .args([
                "-ffunction-sections",
                "-fdata-sections",
                "-Wl,--gc-sections",
            ])
            .arg(format!("-Wl,-Map={}", map.display()))
            .arg("-I")
            .arg(dir.join("include"))
            .arg(root.join("examples/c/fetch_token.c"))
            .arg(&lib)
            .arg("-o")
            .arg(&fetch))
    })?;
    let probe = work.join("stack_probe");
    let probe_map = work.join("stack_probe.map");
    step("capi: cc capi/measure/stack_probe.c", || {
        run(Command::new("cc")
            .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-O2", "-pthread"])
            .args([
                "-ffunction-sections",
                "-fdata-sections",
                "-Wl,--gc-sections",
            ])
            .arg(format!("-Wl,-Map={}", probe_map.display()))
            .arg("-I")
            .arg(dir.join("include"))
            .arg(dir.join("measure/stack_probe.c"))
            .arg(&lib)
            .arg("-o")
            .arg(&probe))
    })?;

    let valgrind = ensure_valgrind()?;
    let emulator = emulator_binary(root)?;
    let config = work.join("identities.toml");
    fs::write(&config, config_toml()).map_err(|e| fail("capi config", e.to_string()))?;

    let mut stack = (0, 0);
    step("capi: fetch_token against mitoken emulate", || {
        let emu = Emulator::start(&emulator, &config, &[])?;
        let checks = run_cases(&fetch, &valgrind, &emu.port);
        let measured = checks.and_then(|()| measure_stack(&probe, &emu.port, &work));
        drop(emu);
        stack = measured?;
        for under_valgrind in [false, true] {
            let emu = Emulator::start(&emulator, &config, &["status=410,count=2"])?;
            let result = run_gone_case(&fetch, &valgrind, &emu.port, under_valgrind);
            drop(emu);
            result?;
        }
        Ok(())
    })?;

    let (text, rodata) = library_sections(&map, &lib)?;
    let (text_with_cache, _) = library_sections(&probe_map, &lib)?;
    let archive = fs::metadata(&lib).map_or(0, |m| m.len());
    let figures = Figures {
        text,
        text_with_cache,
        rodata,
        stack: stack.0,
        cache_stack: stack.1,
        archive,
    };
    print_figures(&figures);
    println!("xtask capi: ok ({:.1?} in all)", started.elapsed());
    Ok(())
}

fn print_figures(f: &Figures) {
    println!("| C API figure (x86_64, release, opt-level s, LTO) | value |");
    println!("|---|---|");
    println!(
        "| library `.text` linked into fetch_token (`--gc-sections`) | {} B |",
        f.text
    );
    println!(
        "| library `.text` with the cache too (stack_probe: exchange, retry, cache) | {} B |",
        f.text_with_cache
    );
    println!(
        "| library `.rodata` linked into fetch_token | {} B |",
        f.rodata
    );
    println!(
        "| peak stack of one exchange + retry decision (painted stack) | {} B |",
        f.stack
    );
    println!(
        "| peak stack of the cache calls (init, insert, get; painted stack) | {} B |",
        f.cache_stack
    );
    println!(
        "| libmitoken_capi.a on disk (mostly compiler_builtins; the linker keeps what is used) | {} B |",
        f.archive
    );
}

fn check_no_allocator(lib: &Path) -> crate::Result {
    let undefined = capture(Command::new("nm").arg("-u").arg(lib), "nm -u")?;
    let needed: Vec<&str> = undefined
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| ALLOCATOR_SYMBOLS.contains(s))
        .collect();
    if !needed.is_empty() {
        return Err(fail(
            "capi: no allocator symbols",
            format!("{} needs {needed:?}", lib.display()),
        ));
    }
    // nm must actually read the library's code (a plugin that cannot read an object would
    // make it silently see nothing).
    let defined = capture(Command::new("nm").arg("--defined-only").arg(lib), "nm")?;
    if !defined
        .lines()
        .any(|l| l.ends_with(" T mitoken_exchange_start"))
    {
        return Err(fail(
            "capi: no allocator symbols",
            "nm does not list `T mitoken_exchange_start`: it cannot read the library's objects",
        ));
    }
    let mut wanted: Vec<&str> = undefined
        .lines()
        .filter(|l| l.trim_start().starts_with("U "))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    println!("undefined symbols (resolved by libc/compiler_builtins): {wanted:?}");
    Ok(())
}

fn check_header(dir: &Path, work: &Path) -> crate::Result {
    let cbindgen = ensure_cbindgen()?;
    let fresh = work.join("mitoken.h");
    run(Command::new(cbindgen)
        .current_dir(dir)
        .args([
            "--quiet",
            "--config",
            "cbindgen.toml",
            "--crate",
            "mitoken-capi",
            "--output",
        ])
        .arg(&fresh)
        .arg("."))?;
    let checked_in = dir.join("include/mitoken.h");
    let a = fs::read(&checked_in).map_err(|e| fail("capi header", e.to_string()))?;
    let b = fs::read(&fresh).map_err(|e| fail("capi header", e.to_string()))?;
    if a != b {
        return Err(fail(
            "capi header",
            format!(
                "{} differs from a fresh cbindgen run ({}); regenerate it: \
                 cd capi && cbindgen --config cbindgen.toml --crate mitoken-capi \
                 --output include/mitoken.h .",
                checked_in.display(),
                fresh.display()
            ),
        ));
    }
    Ok(())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    );
    home.join("bin").join(name)
}

fn ensure_cbindgen() -> crate::Result<PathBuf> {
    if let Some(p) = find_in_path("cbindgen") {
        return Ok(p);
    }
    let p = cargo_bin("cbindgen");
    if p.is_file() {
        return Ok(p);
    }
    println!("cbindgen missing: cargo install --locked cbindgen");
    run(cargo(Path::new(".")).args(["install", "--locked", "cbindgen"]))?;
    Ok(p)
}

fn ensure_valgrind() -> crate::Result<PathBuf> {
    if let Some(p) = find_in_path("valgrind") {
        return Ok(p);
    }
    println!("valgrind missing: apt-get install -y valgrind");
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "valgrind"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    find_in_path("valgrind").ok_or_else(|| fail("valgrind", "still missing after apt-get"))
}

fn emulator_binary(root: &Path) -> crate::Result<PathBuf> {
    if let Some(p) = env::var_os("MITOKEN_BIN") {
        return Ok(PathBuf::from(p));
    }
    step("build mitoken", || {
        run(cargo(root).args(["build", "--quiet", "-p", "mitoken-host", "--bin", "mitoken"]))
    })?;
    Ok(root.join("target/debug/mitoken"))
}

fn config_toml() -> String {
    format!(
        "# written by `cargo xtask capi`\n\
         [system_assigned]\nclient_id = \"{SYSTEM_CLIENT}\"\nobject_id = \"{SYSTEM_OBJECT}\"\n\n\
         [[user_assigned]]\nclient_id = \"{UA_CLIENT}\"\nobject_id = \"{UA_OBJECT}\"\n\
         resource_id = \"/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/capi/providers/Microsoft.ManagedIdentity/userAssignedIdentities/capi\"\n"
    )
}

fn capture(cmd: &mut Command, what: &str) -> crate::Result<String> {
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .map_err(|e| fail(what, format!("could not start: {e}")))?;
    if !out.status.success() {
        return Err(fail(what, format!("exited with {}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running `mitoken emulate` on an ephemeral loopback port; stopped when dropped.
struct Emulator {
    child: Child,
    port: String,
}

impl Emulator {
    fn start(bin: &Path, config: &Path, faults: &[&str]) -> crate::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args([
            "emulate",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--config",
        ])
        .arg(config);
        for f in faults {
            cmd.args(["--fault", f]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail("start mitoken emulate", format!("{}: {e}", bin.display())))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(fail("start mitoken emulate", "no stdout pipe"));
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the emulator never blocks on a full pipe.
            for _ in lines {}
        });
        let mut emu = Self {
            child,
            port: String::new(),
        };
        let Ok(Some(Ok(line))) = rx.recv_timeout(Duration::from_secs(30)) else {
            return Err(fail(
                "start mitoken emulate",
                "no `listening on http://127.0.0.1:PORT` line within 30 s",
            ));
        };
        let port = line
            .split_once("listening on http://127.0.0.1:")
            .map(|(_, rest)| rest.trim().trim_end_matches('/'))
            .filter(|p| p.parse::<u16>().is_ok());
        match port {
            Some(p) => p.clone_into(&mut emu.port),
            None => {
                return Err(fail(
                    "start mitoken emulate",
                    format!("unexpected first line {line:?}"),
                ));
            }
        }
        Ok(emu)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fetch_token` (under valgrind if asked) and returns its output.
fn fetch_token(
    fetch: &Path,
    valgrind: &Path,
    under_valgrind: bool,
    args: &[&str],
) -> crate::Result<Output> {
    let mut cmd = if under_valgrind {
        let mut c = Command::new(valgrind);
        c.args(["--quiet", "--leak-check=full", "--error-exitcode=99"])
            .arg(fetch);
        c
    } else {
        Command::new(fetch)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail("run fetch_token", e.to_string()))
}

/// The `appid` and `oid` claims of a JWT.
fn jwt_identity(token: &str) -> Option<(String, String)> {
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&json).ok()?;
    Some((
        claims.get("appid")?.as_str()?.to_owned(),
        claims.get("oid")?.as_str()?.to_owned(),
    ))
}

fn expect_token(
    name: &str,
    out: &Output,
    client: &str,
    object: &str,
    under_valgrind: bool,
) -> crate::Result {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "fetch_token {name}{}",
        if under_valgrind { " (valgrind)" } else { "" }
    );
    if !out.status.success() {
        return Err(fail(
            &what,
            format!("exited with {}; stderr:\n{stderr}", out.status),
        ));
    }
    let token = stdout.trim_end_matches('\n');
    if token.contains('\n') {
        return Err(fail(&what, "stdout holds more than the token"));
    }
    match jwt_identity(token) {
        Some((appid, oid)) if appid == client && oid == object => {
            println!("{what}: token of {appid} ({} bytes)", token.len());
            Ok(())
        }
        other => Err(fail(
            &what,
            format!("token's (appid, oid) = {other:?}, want ({client}, {object})"),
        )),
    }
}

fn run_cases(fetch: &Path, valgrind: &Path, port: &str) -> crate::Result {
    for under_valgrind in [false, true] {
        let out = fetch_token(
            fetch,
            valgrind,
            under_valgrind,
            &["127.0.0.1", port, RESOURCE],
        )?;
        expect_token(
            "system-assigned",
            &out,
            SYSTEM_CLIENT,
            SYSTEM_OBJECT,
            under_valgrind,
        )?;
        let out = fetch_token(
            fetch,
            valgrind,
            under_valgrind,
            &["127.0.0.1", port, RESOURCE, UA_CLIENT],
        )?;
        expect_token("user-assigned", &out, UA_CLIENT, UA_OBJECT, under_valgrind)?;
        let out = fetch_token(
            fetch,
            valgrind,
            under_valgrind,
            &["127.0.0.1", port, RESOURCE, UNKNOWN_CLIENT],
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!(
            "fetch_token unknown identity{}",
            if under_valgrind { " (valgrind)" } else { "" }
        );
        if out.status.code() != Some(1) || !out.stdout.is_empty() {
            return Err(fail(
                &what,
                format!(
                    "want exit 1 and empty stdout, got {} and {} bytes; stderr:\n{stderr}",
                    out.status,
                    out.stdout.len()
                ),
            ));
        }
        if !stderr.contains(IMDS_UNKNOWN_IDENTITY) || !stderr.contains("HTTP 400") {
            return Err(fail(
                &what,
                format!("stderr lacks `HTTP 400 … {IMDS_UNKNOWN_IDENTITY}`:\n{stderr}"),
            ));
        }
        println!("{what}: {}", stderr.lines().next().unwrap_or_default());
    }
    Ok(())
}

fn run_gone_case(fetch: &Path, valgrind: &Path, port: &str, under_valgrind: bool) -> crate::Result {
    let t = Instant::now();
    let out = fetch_token(
        fetch,
        valgrind,
        under_valgrind,
        &["127.0.0.1", port, RESOURCE],
    )?;
    expect_token(
        "410 x2 ridden out",
        &out,
        SYSTEM_CLIENT,
        SYSTEM_OBJECT,
        under_valgrind,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let retries = stderr.matches("(HTTP 410); retrying").count();
    if retries != 2 {
        return Err(fail(
            "fetch_token 410",
            format!("want 2 retries after HTTP 410, stderr says {retries}:\n{stderr}"),
        ));
    }
    println!(
        "fetch_token 410: 2 retries on the IMDS 10 s slots, token after {:.1?}",
        t.elapsed()
    );
    Ok(())
}

/// Records a real token response from the emulator (the request is what mitoken-core writes)
/// and runs the stack probe over it: (exchange + retry, cache) peak stack in bytes.
fn measure_stack(probe: &Path, port: &str, work: &Path) -> crate::Result<(u64, u64)> {
    let port_number: u16 = port.parse().map_err(|_| fail("stack probe", "bad port"))?;
    let endpoint = Endpoint::Custom {
        host: "127.0.0.1",
        port: port_number,
        path: mitoken_core::request::IMDS_TOKEN_PATH,
        style: Style::Imds,
    };
    let mut request = [0u8; 1024];
    let n = TokenRequest::new(RESOURCE)
        .write(&endpoint, &mut request)
        .map_err(|e| fail("stack probe request", e.to_string()))?;
    let mut response = Vec::new();
    let io = |e: std::io::Error| fail("stack probe: record a response", e.to_string());
    let mut conn = TcpStream::connect(("127.0.0.1", port_number)).map_err(io)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    conn.write_all(&request[..n]).map_err(io)?;
    conn.read_to_end(&mut response).map_err(io)?;
    let recorded = work.join("response.http");
    fs::write(&recorded, &response).map_err(io)?;
    let out = capture(Command::new(probe).arg(&recorded), "stack_probe")?;
    println!("stack_probe: {}", out.trim());
    let field = |name: &str| {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| fail("stack probe", format!("no {name} in {out:?}")))
    };
    Ok((field("stack_bytes=")?, field("cache_stack_bytes=")?))
}

/// Sums the `.text*` and `.rodata*` input sections the linker took from `lib`, from a GNU ld
/// map file (only the kept ones: the map's memory-map part, after the discarded list).
fn library_sections(map: &Path, lib: &Path) -> crate::Result<(u64, u64)> {
    let text = fs::read_to_string(map).map_err(|e| fail("linker map", e.to_string()))?;
    let lib_name = lib
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("libmitoken_capi.a");
    let Some((_, kept)) = text.split_once("Linker script and memory map") else {
        return Err(fail("linker map", "no `Linker script and memory map` part"));
    };
    let (mut code, mut rodata) = (0u64, 0u64);
    let mut pending: Option<String> = None;
    for line in kept.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name, rest) = match words.as_slice() {
            [name] if line.starts_with(' ') && name.starts_with('.') => {
                pending = Some((*name).to_owned());
                continue;
            }
            [addr, ..] if addr.starts_with("0x") => match pending.take() {
                Some(name) => (name, &words[..]),
                None => continue,
            },
            [name, rest @ ..] if line.starts_with(' ') && name.starts_with('.') => {
                pending = None;
                ((*name).to_owned(), rest)
            }
            _ => {
                pending = None;
                continue;
            }
        };
        let [_addr, size, file, ..] = rest else {
            continue;
        };
        if !file.contains(lib_name) {
            continue;
        }
        let Ok(size) = u64::from_str_radix(size.trim_start_matches("0x"), 16) else {
            continue;
        };
        if name.starts_with(".text") {
            code += size;
        } else if name.starts_with(".rodata") {
            rodata += size;
        }
    }
    if code == 0 {
        return Err(fail(
            "linker map",
            format!("no .text from {lib_name} in {}", map.display()),
        ));
    }
    Ok((code, rodata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linker_map_counts_only_kept_library_sections() {
        let dir = env::temp_dir().join(format!("xtask-capi-map-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let map = dir.join("x.map");
        fs::write(
            &map,
            "Discarded input sections\n\n \
             .text.mitoken_request_size\n                0x0000000000000000      0x10b /l/libmitoken_capi.a(a.o)\n\n\
             Linker script and memory map\n\n\
             .text           0x0000000000001040     0x9000\n \
             .text          0x0000000000001040       0x20 /usr/lib/crt1.o\n \
             .text.mitoken_exchange_start\n                0x0000000000001060      0x143 /l/libmitoken_capi.a(a.o)\n \
             .text.main     0x00000000000011a3       0x80 /tmp/fetch_token.o\n \
             .text          0x0000000000001223       0x10 /l/libmitoken_capi.a(udivti3.o)\n \
             .rodata.cst16  0x0000000000002000       0x30 /l/libmitoken_capi.a(a.o)\n",
        )
        .expect("write map");
        let got = library_sections(&map, Path::new("/l/libmitoken_capi.a"));
        let _ = fs::remove_dir_all(&dir);
        let (text, rodata) = got.expect("parsed");
        assert_eq!((text, rodata), (0x143 + 0x10, 0x30));
    }

    #[test]
    fn jwt_identity_reads_appid_and_oid() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"appid":"a","oid":"o","aud":"x"}"#);
        assert_eq!(
            jwt_identity(&format!("e30.{claims}.sig")),
            Some(("a".to_owned(), "o".to_owned()))
        );
        assert_eq!(jwt_identity("not-a-jwt"), None);
    }
}
