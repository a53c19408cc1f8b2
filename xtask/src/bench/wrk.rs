//! One plain `wrk` run (no Lua script: wrk's own static request, its own report) and what it
//! measured: req/s, latency percentiles, errors, and the CPU use of the generator and of the
//! server over the middle of the run, which tell whether the run measured the server.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::fail;
use super::procs::{self, Cpus};

/// wrk settings shared by every server.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seconds per run.
    pub seconds: u32,
    /// Open connections.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// Runs per server, interleaved (nginx, emulator, bridge, nginx, …); the best valid run is
    /// reported.
    pub rounds: u32,
}

impl Settings {
    /// The wrk command line (without the URL).
    pub fn command(&self) -> String {
        format!(
            "wrk -t{} -c{} -d{}s --latency -H 'Metadata: true'",
            self.threads, self.connections, self.seconds
        )
    }
}

/// Above this share of its CPU (%), the load generator is taken as saturated: the run measured
/// the generator and is invalid.
pub const GENERATOR_LIMIT: f64 = 90.0;

/// At or above this share of its CPU (%), the server is taken as the limit of the run.
pub const SERVER_SATURATED: f64 = 90.0;

/// The latency percentiles plain `wrk --latency` prints.
pub const PERCENTILES: [f64; 4] = [50.0, 75.0, 90.0, 99.0];

/// One wrk run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Requests per second.
    pub rps: f64,
    /// Requests completed.
    pub requests: u64,
    /// Socket errors, timeouts and non-2xx answers.
    pub errors: u64,
    /// `(percentile, latency µs)` for each of [`PERCENTILES`].
    pub cdf: Vec<(f64, f64)>,
    /// The load generator's CPU use over the middle of the run, % of its one CPU.
    pub generator_cpu: Option<f64>,
    /// The server's CPU use (all its threads and worker processes) over the same window, % of
    /// one CPU.
    pub server_cpu: Option<f64>,
}

impl Run {
    /// The latency at percentile `p` (µs).
    pub fn percentile(&self, p: f64) -> f64 {
        self.cdf
            .iter()
            .find(|(q, _)| (*q - p).abs() < 1e-9)
            .map_or(f64::NAN, |c| c.1)
    }

    /// True when the generator's CPU use was measured and had headroom.
    pub fn valid(&self) -> bool {
        self.generator_cpu.is_some_and(|c| c <= GENERATOR_LIMIT) && self.errors == 0
    }

    /// True when the server used at least [`SERVER_SATURATED`] of its CPU: it was the limit.
    /// When neither it nor the generator was (a busy machine), the run measures neither.
    pub fn server_bound(&self) -> bool {
        self.server_cpu.is_some_and(|c| c >= SERVER_SATURATED)
    }

    /// The rate the generator could reach on its CPU if its cost per request stayed the same
    /// (req/s ÷ its CPU share): how far from saturation it was.
    pub fn generator_ceiling(&self) -> Option<f64> {
        self.generator_cpu
            .filter(|c| *c > 0.0)
            .map(|c| self.rps * 100.0 / c)
    }
}

/// A latency as wrk prints it (`160.00us`, `1.20ms`, `2.00s`), in µs.
fn wrk_latency_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let v: f64 = value.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(v * scale)
}

/// Parses plain `wrk --latency` output.
fn parse_wrk(text: &str) -> Option<Run> {
    let mut run = Run {
        rps: 0.0,
        requests: 0,
        errors: 0,
        cdf: Vec::new(),
        generator_cpu: None,
        server_cpu: None,
    };
    // The numbers after the line's colon, summed.
    let numbers = |s: &str| -> u64 {
        s.split_once(':')
            .map_or("", |(_, rest)| rest)
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    for line in text.lines().map(str::trim) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v] => run.rps = v.parse().ok()?,
            [n, "requests", "in", ..] => run.requests = n.parse().ok()?,
            [p, latency] if p.ends_with('%') => {
                let p: f64 = p.trim_end_matches('%').parse().ok()?;
                if PERCENTILES.contains(&p) {
                    run.cdf.push((p, wrk_latency_us(latency)?));
                }
            }
            _ if line.starts_with("Socket errors:") => run.errors += numbers(line),
            _ if line.starts_with("Non-2xx or 3xx responses:") => run.errors += numbers(line),
            _ => {}
        }
    }
    (run.requests > 0 && run.rps > 0.0).then_some(run)
}

/// CPU ticks of `pid` sampled at two instants: `(ticks, when)`.
type Sample = (Option<u64>, Instant);

fn cpu_share(a: Sample, b: Sample, tick: f64) -> Option<f64> {
    let ticks = b.0?.checked_sub(a.0?)?;
    let wall = b.1.duration_since(a.1).as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // tick counts are small
    let used = ticks as f64 / tick;
    (wall > 0.0).then(|| used / wall * 100.0)
}

/// The sampling window inside a run of `seconds`: after the connections are up, before wrk
/// starts tearing down.
fn window(seconds: u32) -> (Duration, Duration) {
    let total = Duration::from_secs(u64::from(seconds));
    let from = (total / 5).min(Duration::from_secs(1));
    let to = total.saturating_sub((total / 10).min(Duration::from_millis(500)));
    (from, to)
}

/// One plain wrk run against `url` with `Metadata: true`, the generator on `cpus.client`;
/// samples its CPU use and the server's (`server_pid` and its child processes).
pub fn wrk(url: &str, s: Settings, cpus: Cpus, server_pid: u32) -> crate::Result<Run> {
    let child = procs::pinned(cpus.client, "wrk")
        .arg(format!("-t{}", s.threads))
        .arg(format!("-c{}", s.connections))
        .arg(format!("-d{}s", s.seconds))
        .args(["--latency", "-H", "Metadata: true"])
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail("wrk", e))?;
    // `taskset` execs wrk: the child's pid is wrk's.
    let pid = child.id();
    let tick = procs::clock_ticks();
    let (from, to) = window(s.seconds);
    let start = Instant::now();
    std::thread::sleep(from);
    let sample = || {
        (
            procs::cpu_ticks(pid),
            procs::cpu_ticks_with_children(server_pid),
            Instant::now(),
        )
    };
    let a = sample();
    std::thread::sleep(to.saturating_sub(start.elapsed()));
    let b = sample();
    let out = child.wait_with_output().map_err(|e| fail("wrk", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(fail(
            "wrk",
            format!("{url}: {}{text}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    let mut run = parse_wrk(&text)
        .ok_or_else(|| fail("wrk", format!("{url}: no requests completed:\n{text}")))?;
    run.generator_cpu = cpu_share((a.0, a.2), (b.0, b.2), tick);
    run.server_cpu = cpu_share((a.1, a.2), (b.1, b.2), tick);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 8s test @ http://127.0.0.1:1/token.json
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   180.12us   40.00us   2.10ms   90.00%
    Req/Sec   170.00k     3.00k  180.00k    70.00%
  Latency Distribution
     50%  170.00us
     75%  190.00us
     90%  220.00us
     99%    1.20ms
  1357913 requests in 8.00s, 2.00GB read
  Socket errors: connect 0, read 1, write 2, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec: 169739.12
Transfer/sec:    256.00MB
";

    #[test]
    fn plain_wrk_output_is_parsed() {
        let run = parse_wrk(OUTPUT).unwrap();
        assert_eq!(run.requests, 1_357_913);
        assert!((run.rps - 169_739.12).abs() < 1e-6);
        assert_eq!(run.errors, 10);
        assert!((run.percentile(50.0) - 170.0).abs() < 1e-9);
        assert!((run.percentile(99.0) - 1200.0).abs() < 1e-9);
        assert_eq!(run.cdf.len(), PERCENTILES.len());
    }

    #[test]
    fn a_saturated_generator_makes_a_run_invalid() {
        let mut run = parse_wrk(OUTPUT).unwrap();
        run.errors = 0;
        assert!(!run.valid(), "unmeasured generator CPU is not valid");
        run.generator_cpu = Some(95.0);
        assert!(!run.valid());
        run.generator_cpu = Some(60.0);
        assert!(run.valid());
        assert!((run.generator_ceiling().unwrap() - 169_739.12 / 0.6).abs() < 1e-6);
    }

    #[test]
    fn output_without_requests_is_refused() {
        assert!(parse_wrk("Requests/sec: 0.00\n").is_none());
    }
}
