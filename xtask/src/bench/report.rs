//! `docs/benchmarks.md`, the charts and the README's performance table, from one run's
//! [`Results`].

use std::fmt::Write as _;
use std::path::Path;

use super::callgrind::{BODY, BUILD, RESPONSE, SCALING};
use super::{Results, charts, fail};

/// Where the README's generated table starts and ends.
const README_BEGIN: &str = "<!-- bench-table:begin (written by `cargo xtask bench`) -->";
const README_END: &str = "<!-- bench-table:end -->";

/// The machine the run was on.
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// 1-minute load average at the start and at the end.
    pub load: (String, String),
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    /// Describes this machine now.
    pub fn describe(load_at_start: String) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Machine {
            cpu,
            kernel,
            rustc,
            load: (load_at_start, loadavg()),
        }
    }
}

#[allow(clippy::cast_precision_loss)] // every count here is far below 2^52
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// `12345` → `12,345`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn check(ok: bool) -> &'static str {
    if ok { "✔" } else { "✘" }
}

fn ns(wall: Option<&super::wallclock::Medians>, id: &str) -> String {
    wall.and_then(|w| w.get(id))
        .map_or_else(|| "–".into(), |v| format!("{v:.0} ns"))
}

/// The criterion ids of the parse / build cases, in the order of the callgrind cases.
const RESPONSE_IDS: [&str; 3] = [
    "token_response/mitoken",
    "token_response/httparse+serde_json",
    "token_response/httparse+serde_json_core",
];
const BODY_IDS: [&str; 3] = [
    "token_body/mitoken",
    "token_body/serde_json",
    "token_body/serde_json_core",
];
const BUILD_IDS: [&str; 2] = ["request_build/mitoken", "request_build/format"];

/// A parse/build table: title, cases, their counts, their criterion ids.
type Table<'a> = (
    &'a str,
    &'a [super::callgrind::Case],
    &'a [u64],
    &'a [&'a str],
);

/// Headline figures, shared by the report and the README table.
struct Headline {
    parse: f64,
    emulator: Option<f64>,
    bridge: Option<f64>,
    client: Option<(f64, f64)>,
    python_client: Option<f64>,
    /// mitoken's in-process cached `TokenClient::get_token`, ns (criterion median).
    get_token_ns: Option<f64>,
    /// Python `azure-identity`'s in-process cached `get_token`, ns.
    python_get_token_ns: Option<f64>,
}

/// Goal: req/s at least nginx's on the same seat.
const RPS_GOAL: f64 = 1.0;
/// Goal: in-process cached `get_token` at most this many ns.
const GET_TOKEN_GOAL_NS: f64 = 1000.0;

fn headline(r: &Results) -> Headline {
    let vs_nginx = |name: &str| r.load.vs_nginx(name);
    let timing = |name: &str| {
        r.clients
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.median_ms)
    };
    Headline {
        parse: ratio(
            r.counts.response.first().copied().unwrap_or(0),
            r.counts.response.get(1).copied().unwrap_or(0),
        ),
        emulator: vs_nginx("mitoken emulate"),
        bridge: vs_nginx("mitoken bridge"),
        client: timing("mitoken token").zip(timing("curl")),
        python_client: timing("Python azure-identity"),
        get_token_ns: r
            .wall
            .as_ref()
            .and_then(|w| w.get(super::wallclock::GET_TOKEN_ID)),
        python_get_token_ns: r.load.python_ops.as_ref().ok().map(|(ops, _)| 1e9 / ops),
    }
}

/// The median p99 of `name`'s valid rounds and of nginx's ([`Server::median_p99`]).
///
/// [`Server::median_p99`]: super::load::Server::median_p99
fn p99s(r: &Results, name: &str) -> Option<(f64, f64)> {
    let of = |n: &str| r.load.server(n)?.median_p99();
    Some((of(name)?, of("nginx")?))
}

/// The whole report (Markdown).
#[allow(clippy::too_many_lines, clippy::many_single_char_names)]
pub fn render(r: &Results) -> String {
    let mut o = String::new();
    let h = headline(r);
    let m = &r.machine;
    let _ = writeln!(
        o,
        "# Benchmarks\n\nWritten by `cargo xtask bench` ({:.0?} for the whole run, compile \
         included). Machine: {} CPU(s), {}, Linux {}, {}; load average (1/5/15 min) {} at the \
         start and {} at the end{}.\n",
        r.elapsed,
        r.cpus.count,
        m.cpu,
        m.kernel,
        m.rustc,
        m.load.0,
        m.load.1,
        if r.cpus.pinned() {
            "; each server alone on CPU 1, the load generator and the clients on CPU 0 (`taskset`)"
        } else {
            "; not pinned (one CPU: the load figures measure server and generator together)"
        }
    );

    // ---- goals ---------------------------------------------------------------------------
    let _ = writeln!(o, "## Goals\n\n| goal | measured | |\n|---|---:|---|");
    let _ = writeln!(
        o,
        "| full token response parse ≤ 1.0× the instructions of `httparse` + `serde_json` | {:.2}× | {} |",
        h.parse,
        check(h.parse <= 1.0)
    );
    for (label, name, v) in [
        ("emulator", "mitoken emulate", h.emulator),
        ("bridge", "mitoken bridge", h.bridge),
    ] {
        match v {
            Some(v) => {
                let _ = writeln!(
                    o,
                    "| {label} ≥ {RPS_GOAL:.1}× nginx req/s, same seat, cached tokens | {v:.2}× | {} |",
                    check(v >= RPS_GOAL)
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "| {label} ≥ {RPS_GOAL:.1}× nginx req/s, same seat, cached tokens | no valid run | ✘ |"
                );
            }
        }
        if let Some((p99, nginx)) = p99s(r, name) {
            let _ = writeln!(
                o,
                "| {label} p99 ≤ nginx's (median of the valid rounds) | {p99:.0} µs vs {nginx:.0} µs | {} |",
                check(p99 <= nginx)
            );
        }
    }
    if let Some(ns) = h.get_token_ns {
        let _ = writeln!(
            o,
            "| in-process cached `TokenClient::get_token` ≤ 1 µs | {ns:.0} ns | {} |",
            check(ns <= GET_TOKEN_GOAL_NS)
        );
    }
    if let Some((mt, curl)) = h.client {
        let _ = writeln!(
            o,
            "| `mitoken token` start-to-token ≤ `curl` | {mt:.2} ms vs {curl:.2} ms ({:.2}×) | {} |",
            mt / curl,
            check(mt <= curl)
        );
    }
    if let Some(Ok(f)) = &r.sim {
        let core = f.sizes.text.saturating_sub(f.sizes.base_text);
        let _ = writeln!(
            o,
            "| mitoken-core's firmware `.text` ≤ 48 KiB | {:.1} KiB | {} |",
            kib(core),
            check(core <= 48 * 1024)
        );
        let stack: u64 = f.stack_core.parse().unwrap_or(u64::MAX);
        let _ = writeln!(
            o,
            "| mitoken-core's peak stack ≤ 8 KiB | {stack} B | {} |",
            check(stack <= 8 * 1024)
        );
    }
    for (case, points) in SCALING.iter().zip(&r.counts.scaling) {
        // Over the last decade (100 → 1000) a linear scan that shows grows ≈ 10×; a binary
        // search adds a constant (≈ 1.3× here); under 2× is flat or logarithmic.
        if let [.., (n0, c0), (n1, c1)] = points.as_slice()
            && n1 / n0.max(&1) >= 10
        {
            let growth = ratio(*c1, *c0);
            let _ = writeln!(
                o,
                "| {} flat or logarithmic | {growth:.2}× from n = {n0} to {n1} (linear: ≈ 10×) | {} |",
                case.label,
                check(growth < 2.0)
            );
        }
    }
    o.push('\n');

    // ---- 1. parse, build, serve --------------------------------------------------------
    let _ = writeln!(
        o,
        "## 1. Parse, build, serve (instructions per call: callgrind; wall clock: criterion median)\n\n\
         The IMDS fixtures (`fixtures/`); instruction counts are exact and do not depend on the \
         machine's load, wall clock does.\n"
    );
    let wall = r.wall.as_ref();
    let tables: [Table<'_>; 3] = [
        (
            "Whole 200-OK response (`imds-token-response.http`: head + 2.5 KB JSON body)",
            &RESPONSE,
            &r.counts.response,
            &RESPONSE_IDS,
        ),
        (
            "Body only (`imds-token-body.json`)",
            &BODY,
            &r.counts.body,
            &BODY_IDS,
        ),
        (
            "Request build (IMDS, `client_id` selector)",
            &BUILD,
            &r.counts.build,
            &BUILD_IDS,
        ),
    ];
    for (title, cases, counts, ids) in tables {
        let peer = counts.get(1).copied().unwrap_or(1);
        let _ = writeln!(
            o,
            "### {title}\n\n| | instructions | ratio to {} | wall clock |\n|---|---:|---:|---:|",
            cases.get(1).map_or("", |c| c.label)
        );
        for ((case, &count), id) in cases.iter().zip(counts).zip(ids) {
            let _ = writeln!(
                o,
                "| {} | {} | {:.2}× | {} |",
                case.label,
                thousands(count),
                ratio(count, peer),
                ns(wall, id)
            );
        }
        o.push('\n');
    }
    if let Some(handle) = r.counts.scaling.get(2).and_then(|p| p.first()) {
        let _ = writeln!(
            o,
            "### Server request handling\n\nOne whole IMDS token request (`client_id` selector, \
             {} user-assigned identities + a system-assigned one) through `Server::handle`: \
             request parsed, validated, identity resolved, the cached 2.3 KB token copied in and \
             IMDS's response written: **{} instructions** ({}).\n",
            handle.0,
            thousands(handle.1),
            ns(wall, &format!("server_handle/{}", handle.0))
        );
    }

    // ---- 2. load -----------------------------------------------------------------------
    render_load(&mut o, r);
    render_in_process(&mut o, r, &h);
    render_costs(&mut o, r);

    // ---- 3. client ---------------------------------------------------------------------
    let curl = r
        .clients
        .iter()
        .find(|t| t.name == "curl")
        .map_or(f64::NAN, |t| t.median_ms);
    let _ = writeln!(
        o,
        "## 3. Client cost: process start to token (`hyperfine -N`, against the emulator)\n\n\
         ![start-to-token](bench-client.svg)\n\n\
         | client | median | MAD | vs curl | runs |\n|---|---:|---:|---:|---:|"
    );
    for t in &r.clients {
        let _ = writeln!(
            o,
            "| {} | {:.2} ms | {:.2} ms | {:.2}× | {} |",
            t.name,
            t.median_ms,
            t.mad_ms,
            t.median_ms / curl,
            t.runs
        );
    }
    let _ = writeln!(o, "\nCommands (`PORT`: the emulator's ephemeral port):\n");
    for t in &r.clients {
        let _ = writeln!(o, "- {}: `{}`", t.name, t.command);
    }
    let _ = writeln!(
        o,
        "\n`get_token.py`:\n\n```python\n{}```\n",
        super::client::PY_SCRIPT
    );

    // ---- 4. footprint ------------------------------------------------------------------
    let _ = writeln!(
        o,
        "## 4. Footprint\n\n| what | size |\n|---|---:|\n| `mitoken` (release: LTO, 1 codegen unit) | {:.0} KiB |\n| `mitoken`, stripped | {:.0} KiB |",
        kib(r.binary.0),
        kib(r.binary.1)
    );
    if let Some(idle) = r.load.emulator_rss_idle_kib {
        let _ = writeln!(
            o,
            "| `mitoken emulate` RSS idle (after one token) | {idle} KiB |"
        );
    }
    for srv in &r.load.servers {
        if let Some((peak, hwm)) = srv.rss_load_kib {
            let _ = writeln!(
                o,
                "| {} RSS under load (peak sampled / `VmHWM`) | {peak} / {hwm} KiB |",
                srv.name
            );
        }
    }
    match &r.sim {
        Some(Ok(f)) => {
            let z = &f.sizes;
            let _ = writeln!(
                o,
                "| firmware image `.text` / `.rodata` / `.data` / `.bss` | {} / {} / {} / {} B |\n\
                 | firmware loaded image / ELF file | {} / {} B |\n\
                 | **mitoken-core's share** (image minus the core-free baseline): `.text` / `.rodata` / `.data` | **{} B ({:.1} KiB)** / {} / {} B |\n\
                 | symbols named `mitoken_core` in `.text` | {} B |\n\
                 | peak stack: one full token fetch (core + smoltcp + virtio) | {} B |\n\
                 | **peak stack: mitoken-core alone** | **{} B** |\n\
                 | boot to first token (QEMU TCG) | {} ms |",
                z.text,
                z.rodata,
                z.data,
                z.bss,
                z.text + z.rodata + z.data,
                z.file,
                z.text.saturating_sub(z.base_text),
                kib(z.text.saturating_sub(z.base_text)),
                z.rodata.saturating_sub(z.base_rodata),
                z.data.saturating_sub(z.base_data),
                z.core_symbols_text,
                f.stack_fetch,
                f.stack_core,
                f.first_token_ms
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(o, "| firmware (`cargo xtask sim`) | failed: {e} |");
        }
        None => {}
    }
    o.push('\n');

    // ---- 5. scaling --------------------------------------------------------------------
    let _ = writeln!(
        o,
        "## 5. Scaling: 1 → 1000 user-assigned identities / cached tokens (instructions per call)\n\n\
         The identity asked for is the last one inserted. Resolution uses sorted indexes (binary \
         search: GUIDs by value, resource ids ignoring case); the core's `TokenCache` binary-searches \
         a sorted index of 64-bit key hashes (the emulator's own cache is a `HashMap`).\n\n\
         ![scaling](bench-scaling.svg)\n"
    );
    let sizes: Vec<usize> = r
        .counts
        .scaling
        .first()
        .map(|p| p.iter().map(|x| x.0).collect())
        .unwrap_or_default();
    let head: Vec<String> = sizes.iter().map(|n| format!("n = {n}")).collect();
    let _ = writeln!(
        o,
        "| | {} |\n|---|{}",
        head.join(" | "),
        "---:|".repeat(sizes.len())
    );
    for (case, points) in SCALING.iter().zip(&r.counts.scaling) {
        let cells: Vec<String> = points
            .iter()
            .map(|&(n, c)| {
                let w = ns(wall, &format!("{}/{n}", case.arg));
                format!("{} ({w})", thousands(c))
            })
            .collect();
        let _ = writeln!(o, "| {} | {} |", case.label, cells.join(" | "));
    }
    o.push('\n');

    let _ = writeln!(
        o,
        "## Reproduce\n\n`cargo xtask bench` (installs `valgrind`, `wrk`, `nginx-light`, \
         `hyperfine` from Debian when missing; Python `azure-identity` in `target/py-venv`). By \
         hand: `cargo bench -p mitoken-core --bench parse --bench serve` (criterion); \
         `cargo bench -p mitoken-core --bench parse_callgrind --no-run`, then \
         `valgrind --tool=callgrind --toggle-collect='*run_<case>' <bench binary> <case> <N> [n]`. \
         `cargo xtask ci` runs `cargo xtask bench --smoke` (every measurement, tiny, nothing written)."
    );
    o
}

/// Section 2: the servers under plain wrk, with the generator's and the servers' CPU use.
#[allow(clippy::too_many_lines)]
fn render_load(o: &mut String, r: &Results) {
    let s = &r.load.settings;
    let seats = if r.cpus.pinned() {
        "Seats: each server runs alone on CPU 1 (`taskset -c 1`; nginx with `worker_processes 1`, \
         its master and worker both on CPU 1; `mitoken`'s tokio runtime sizes itself to that one \
         CPU), wrk runs on CPU 0 (`taskset -c 0 wrk …`, one thread)."
    } else {
        "Seats: one CPU, not pinned: server and generator share it, so these figures measure both."
    };
    let _ = writeln!(
        o,
        "## 2. Servers under load (loopback, `{}`, {} interleaved rounds)\n\n\
         Plain `wrk`: no Lua script, wrk's own static request and report. Every request is a `GET` \
         with `Metadata: true`; token bodies are {} B and nginx serves a file of exactly that size \
         (`access_log off`). Tokens are cached. Logging as in production: `mitoken bridge` at \
         `info`, the level its Debian package sets (`MITOKEN_LOG=info`: a line per new client \
         process, none per request); `mitoken emulate` at `--log warn` (its default `info` \
         writes a line per request, for tests that read them). {seats}\n\n\
         **The generator is measured too.** For each run, wrk's own CPU use (utime + stime from \
         `/proc/<pid>/stat` over the middle of the run, % of its one CPU) and the server's (all \
         threads, nginx's worker included) are recorded. A run whose generator used more than \
         {:.0} % of its CPU (or that had errors) measured the generator, not the server: it is \
         marked INVALID and is never a ratio. The nginx rounds are the calibration: the rate the \
         same generator on the same seat reaches against nginx; *generator ceiling* is req/s ÷ \
         its CPU share, the rate it could reach before saturating. Each server's figure is its \
         best valid round; ratios are to nginx's best valid round; latency tails are compared as the \
         median p99 of each server's valid rounds. A run whose server used less \
         than {:.0} % of its CPU had a limit other than the server or the generator (other work \
         on the machine, or too few connections): it is flagged *server not saturated*, and its \
         ratio says little.\n\n\
         ![throughput relative to nginx](bench-throughput.svg)\n\n\
         | server | requests | req/s | vs nginx | p50 | p90 | p99 | wrk CPU | server CPU | generator ceiling |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        s.command(),
        s.rounds,
        r.load.body_len,
        super::wrk::GENERATOR_LIMIT,
        super::wrk::SERVER_SATURATED
    );
    let nginx = r.load.nginx();
    for srv in &r.load.servers {
        if let Some(b) = srv.best() {
            let _ = writeln!(
                o,
                "| {} | {} | {:.0} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {} | {} | {} |",
                srv.name,
                srv.what,
                b.rps,
                nginx.map_or_else(|| "–".into(), |n| format!("{:.2}×", b.rps / n)),
                b.percentile(50.0),
                b.percentile(90.0),
                b.percentile(99.0),
                super::load::percent(b.generator_cpu),
                super::load::percent(b.server_cpu),
                b.generator_ceiling()
                    .map_or_else(|| "?".into(), |c| format!("{c:.0} req/s")),
            );
        } else {
            let _ = writeln!(
                o,
                "| {} | {} | INVALID: no round with generator headroom | | | | | | | |",
                srv.name, srv.what
            );
        }
    }
    let _ = writeln!(
        o,
        "\nEvery round (req/s, p99, wrk CPU, server CPU); the p99 goal compares each server's \
         median p99 over its valid rounds with nginx's:\n\n| server | {} | median p99 |\n|---|{}---:|",
        (1..=s.rounds)
            .map(|i| format!("round {i}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(s.rounds as usize)
    );
    for srv in &r.load.servers {
        let cells: Vec<String> = srv
            .runs
            .iter()
            .map(|x| {
                format!(
                    "{:.0} ({:.0} µs, {}, {}){}",
                    x.rps,
                    x.percentile(99.0),
                    super::load::percent(x.generator_cpu),
                    super::load::percent(x.server_cpu),
                    if x.valid() && !x.server_bound() {
                        " (server not saturated)".into()
                    } else if x.valid() {
                        String::new()
                    } else if x.errors > 0 {
                        format!(" INVALID: {} errors", x.errors)
                    } else {
                        " INVALID: generator saturated".into()
                    }
                )
            })
            .collect();
        let median = srv
            .median_p99()
            .map_or_else(|| "–".into(), |p| format!("{p:.0} µs"));
        let _ = writeln!(o, "| {} | {} | {median} |", srv.name, cells.join(" | "));
    }
    let _ = writeln!(o, "\n![latency percentiles](bench-latency-cdf.svg)\n");
}

/// The hand-written reading of the per-request figures (what the profile showed, what was
/// fixed, where the rest goes).
const COST_NOTES: &str = include_str!("per_request_notes.md");

/// Section 2a: instructions and system calls per request, and where `mitoken`'s go.
fn render_costs(o: &mut String, r: &Results) {
    let _ = writeln!(
        o,
        "## Per-request cost (instructions and system calls, independent of the machine's load)\n\n\
         *Instructions*: user-space instructions of the server's own process per request — the \
         server runs under callgrind (instrumentation switched on only for a plain wrk run after a \
         warm-up) and the count is divided by the requests wrk completed. *System calls*: perf's \
         syscall tracepoints on the native server (nginx: master and worker) over one more whole plain \
         wrk run, divided by the requests it completed. \
         Kernel time (loopback TCP) is in neither figure but scales with the system calls.\n\n\
         | server | instructions per request | system calls per request | of which |\n|---|---:|---:|---|"
    );
    for c in &r.costs {
        let sys = r.load.server(c.name).map(|s| &s.syscalls);
        let (total, calls) = match sys {
            Some(Ok(sc)) => {
                let total =
                    sc.0.iter()
                        .find(|(n, _)| n == "total")
                        .map_or_else(|| "?".into(), |(_, v)| format!("{v:.2}"));
                let calls: Vec<String> =
                    sc.0.iter()
                        .filter(|(n, v)| n != "total" && *v >= 0.005)
                        .map(|(n, v)| format!("`{n}` {v:.2}"))
                        .collect();
                (total, calls.join(", "))
            }
            Some(Err(e)) => (
                "–".into(),
                format!("not measured: {}", e.lines().next().unwrap_or_default()),
            ),
            None => ("–".into(), String::new()),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {total} | {calls} |",
            c.name,
            thousands(c.instructions)
        );
    }
    let mitoken: Vec<&super::per_request::Cost> =
        r.costs.iter().filter(|c| !c.steps.is_empty()).collect();
    if !mitoken.is_empty() {
        let names: Vec<&str> = mitoken.iter().map(|c| c.name).collect();
        let _ = writeln!(
            o,
            "\n`mitoken`'s instructions per request by step (inclusive cost of the step's \
             function; what the compiler inlined into the connection loop is under *other*):\n\n\
             | step | {} |\n|---|{}",
            names.join(" | "),
            "---:|".repeat(names.len())
        );
        for (i, step) in super::per_request::STEPS.iter().enumerate() {
            let cells: Vec<String> = mitoken
                .iter()
                .map(|c| thousands(c.steps.get(i).copied().unwrap_or(0)))
                .collect();
            let _ = writeln!(o, "| {} | {} |", step.label, cells.join(" | "));
        }
        let other: Vec<String> = mitoken
            .iter()
            .map(|c| thousands(c.instructions.saturating_sub(c.steps.iter().sum())))
            .collect();
        let _ = writeln!(
            o,
            "| other: the connection loop, tokio's scheduling and I/O driver, buffers, counters, log-level checks | {} |",
            other.join(" | ")
        );
        let total: Vec<String> = mitoken
            .iter()
            .map(|c| format!("**{}**", thousands(c.instructions)))
            .collect();
        let _ = writeln!(o, "| **total** | {} |", total.join(" | "));
    }
    let _ = writeln!(o, "\n{}", COST_NOTES.trim_end());
    o.push('\n');
}

/// Section 2b: in-process cached `get_token`, a function call (not an HTTP round trip).
fn render_in_process(o: &mut String, r: &Results, h: &Headline) {
    let _ = writeln!(
        o,
        "### In-process cached `get_token` (a function call, not an HTTP round trip)\n\n\
         An application asking its library for a token it already has: no I/O. mitoken: \
         `TokenClient::get_token` on a current-thread tokio runtime (criterion median, \
         `host/benches/get_token.rs`). Python: `ManagedIdentityCredential.get_token` in a loop \
         (`time.perf_counter`, one thread). Both fetched their token once from the emulator.\n\n\
         | client | per call | calls/s | goal |\n|---|---:|---:|---|"
    );
    match h.get_token_ns {
        Some(ns) => {
            let _ = writeln!(
                o,
                "| mitoken `TokenClient::get_token`, cached | {ns:.0} ns | {:.0} | ≤ 1 µs {} |",
                1e9 / ns,
                check(ns <= GET_TOKEN_GOAL_NS)
            );
        }
        None => {
            let _ = writeln!(
                o,
                "| mitoken `TokenClient::get_token`, cached | not measured (`--smoke`) | | ≤ 1 µs |"
            );
        }
    }
    match &r.load.python_ops {
        Ok((ops, n)) => {
            let _ = writeln!(
                o,
                "| Python `azure-identity` `ManagedIdentityCredential.get_token`, cached ({n} calls) | {:.2} µs | {ops:.0} | |",
                1e6 / ops
            );
        }
        Err(e) => {
            let _ = writeln!(o, "| Python `azure-identity` | not measured: {e} | | |");
        }
    }
    o.push('\n');
}

#[allow(clippy::cast_precision_loss)]
fn kib(b: u64) -> f64 {
    b as f64 / 1024.0
}

/// The README table's rows for the emulator and the bridge under load, against nginx.
fn readme_server_rows(o: &mut String, r: &Results, h: &Headline) {
    let nginx = r.load.nginx();
    let nginx_p99 = r
        .load
        .server("nginx")
        .and_then(super::load::Server::median_p99);
    let nginx_text = match (nginx, nginx_p99) {
        (Some(rps), Some(p99)) => format!("{rps:.0} (p99 {p99:.0} µs)"),
        (Some(rps), None) => format!("{rps:.0}"),
        _ => "no valid run".into(),
    };
    for (name, v) in [
        ("mitoken emulate", h.emulator),
        ("mitoken bridge", h.bridge),
    ] {
        let server = r.load.server(name);
        let best = server.and_then(super::load::Server::best);
        let p99 = server.and_then(super::load::Server::median_p99);
        match (best, v) {
            (Some(best), Some(v)) => {
                let tail = match (p99, nginx_p99) {
                    (Some(ours), Some(theirs)) => {
                        format!(", p99 ≤ nginx's {}", check(ours <= theirs))
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    o,
                    "| `{name}`, cached token, req/s (median p99) | {:.0} ({}) | nginx, same seat, same-size file: {nginx_text} | **{v:.2}×** | ≥ {RPS_GOAL:.1}× {}{tail} |",
                    best.rps,
                    p99.map_or_else(|| "–".into(), |p| format!("{p:.0} µs")),
                    check(v >= RPS_GOAL)
                );
            }
            _ => {
                let _ = writeln!(
                    o,
                    "| `{name}`, cached token, req/s | no valid run | nginx: {nginx_text} | | ≥ {RPS_GOAL:.1}× |"
                );
            }
        }
    }
}

/// The README's performance table.
pub fn readme_table(r: &Results) -> String {
    let h = headline(r);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| measure (`cargo xtask bench`) | mitoken | reference | ratio | goal |\n|---|---:|---:|---:|---|"
    );
    let resp = &r.counts.response;
    let _ = writeln!(
        o,
        "| full token response parse, instructions | {} | `httparse` + `serde_json` {} | **{:.2}×** | ≤ 1.0× {} |",
        thousands(resp.first().copied().unwrap_or(0)),
        thousands(resp.get(1).copied().unwrap_or(0)),
        h.parse,
        check(h.parse <= 1.0)
    );
    readme_server_rows(&mut o, r, &h);
    if let Some(ns) = h.get_token_ns {
        let py = h.python_get_token_ns.map_or_else(String::new, |p| {
            format!("Python `azure-identity` {:.2} µs", p / 1e3)
        });
        let _ = writeln!(
            o,
            "| in-process cached `TokenClient::get_token` | {ns:.0} ns | {py} | | ≤ 1 µs {} |",
            check(ns <= GET_TOKEN_GOAL_NS)
        );
    }
    if let Some((mt, curl)) = h.client {
        let _ = writeln!(
            o,
            "| `mitoken token` process start to token | {mt:.2} ms | `curl` {curl:.2} ms | **{:.2}×** | ≤ curl {} |",
            mt / curl,
            check(mt <= curl)
        );
        if let Some(py) = h.python_client {
            let _ = writeln!(
                o,
                "| Python `azure-identity` script, start to token | | {py:.1} ms | {:.0}× curl | |",
                py / curl
            );
        }
    }
    if let Some(Ok(f)) = &r.sim {
        let core = f.sizes.text.saturating_sub(f.sizes.base_text);
        let _ = writeln!(
            o,
            "| mitoken-core in the firmware image: `.text` / peak stack | {:.1} KiB / {} B | | | ≤ 48 KiB / ≤ 8 KiB |",
            kib(core),
            f.stack_core
        );
    }
    if let Some(points) = r.counts.scaling.first()
        && let (Some(a), Some(b)) = (points.first(), points.last())
    {
        let _ = writeln!(
            o,
            "| identity resolution, {} vs {} user-assigned identities, instructions | {} | {} | {:.2}× | flat or log |",
            b.0,
            a.0,
            thousands(b.1),
            thousands(a.1),
            ratio(b.1, a.1)
        );
    }
    let _ = writeln!(
        o,
        "| `mitoken` binary, stripped | {:.0} KiB | | | |",
        kib(r.binary.1)
    );
    o
}

/// Replaces the README's generated table (between the markers) with `table`.
pub fn update_readme(readme: &Path, table: &str) -> crate::Result {
    let text = std::fs::read_to_string(readme).map_err(|e| fail("README", e))?;
    let (Some(a), Some(b)) = (text.find(README_BEGIN), text.find(README_END)) else {
        return Err(fail(
            "README",
            format!("markers `{README_BEGIN}` … `{README_END}` not found"),
        ));
    };
    let new = format!("{}{README_BEGIN}\n{table}{}", &text[..a], &text[b..]);
    std::fs::write(readme, new).map_err(|e| fail("README", e))
}

/// Writes the charts into `docs/`.
pub fn charts(r: &Results, docs: &Path) -> crate::Result {
    let nginx = r.load.nginx().unwrap_or(f64::NAN);
    let bars: Vec<(String, f64)> = r
        .load
        .servers
        .iter()
        .filter_map(|s| Some((s.name.to_owned(), s.best()?.rps / nginx * 100.0)))
        .filter(|b| b.1.is_finite())
        .collect();
    charts::bars(
        &docs.join("bench-throughput.svg"),
        "Cached-token req/s, % of nginx on the same seat (valid runs only)",
        "% of nginx req/s",
        &bars,
        Some((100.0, "goal: 100%")),
    )?;
    let cdf: Vec<(String, Vec<(f64, f64)>)> = r
        .load
        .servers
        .iter()
        .filter_map(|s| Some((s.name.to_owned(), s.best()?.cdf.clone())))
        .collect();
    charts::cdf(&docs.join("bench-latency-cdf.svg"), &cdf)?;
    #[allow(clippy::cast_precision_loss)]
    let scaling: Vec<(String, Vec<(f64, f64)>)> = SCALING
        .iter()
        .zip(&r.counts.scaling)
        .map(|(c, p)| {
            (
                c.arg.to_owned(),
                p.iter().map(|&(n, i)| (n as f64, i as f64)).collect(),
            )
        })
        .collect();
    charts::lines_log_x(
        &docs.join("bench-scaling.svg"),
        "Cost per call vs identities / cached tokens (callgrind)",
        ("n (log scale)", "instructions per call (log scale)"),
        &scaling,
        true,
    )?;
    let clients: Vec<(String, f64)> = r
        .clients
        .iter()
        .map(|t| (t.name.replace('`', ""), t.median_ms))
        .collect();
    charts::bars(
        &docs.join("bench-client.svg"),
        "Process start to token, median ms (hyperfine)",
        "ms",
        &clients,
        None,
    )
}
