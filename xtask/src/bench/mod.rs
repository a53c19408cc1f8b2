//! `cargo xtask bench`: everything issue #8 asks for, measured in one run and written to
//! `docs/benchmarks.md`, `docs/bench-*.svg` and the README's performance table.
//!
//! 1. instruction counts (callgrind) and wall clock (criterion) of parsing, request building and
//!    the server, against their std peers;
//! 2. `mitoken emulate` and `mitoken bridge` under plain `wrk` load against nginx serving a file
//!    of the same size (each server alone on CPU 1, wrk on CPU 0, the CPU use of both recorded;
//!    runs with a saturated generator are invalid); in-process cached `get_token`: mitoken's
//!    `TokenClient` (criterion) beside Python `azure-identity`'s;
//! 3. process start-to-token: `mitoken token` vs `curl` vs a Python script (`hyperfine`);
//! 4. footprint: `mitoken`'s size, the firmware image (`cargo xtask sim`), the emulator's RSS;
//! 5. scaling of identity resolution, the server and the core's token cache, 1 → 1000;
//! 6. SVG charts.
//!
//! `--smoke` (in `cargo xtask ci`): every measurement, tiny (1 s of wrk, 3 runs), against the
//! debug `mitoken`; nothing is written.

mod callgrind;
mod charts;
mod client;
mod load;
mod per_request;
mod procs;
mod report;
mod tools;
mod wallclock;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::{StepFailed, cargo, run, step};

/// A step failure with `reason`.
fn fail(step: &str, reason: impl std::fmt::Display) -> StepFailed {
    StepFailed {
        step: step.into(),
        reason: reason.to_string(),
    }
}

/// Everything one run measured.
pub struct Results {
    /// Instruction counts.
    pub counts: callgrind::Counts,
    /// Criterion medians (full runs only).
    pub wall: Option<wallclock::Medians>,
    /// Servers under load.
    pub load: load::Load,
    /// Instructions per request of each server (callgrind).
    pub costs: Vec<per_request::Cost>,
    /// Start-to-token timings.
    pub clients: Vec<client::Timing>,
    /// `mitoken`'s size: as built and stripped, bytes.
    pub binary: (u64, u64),
    /// The firmware figures (full runs only), or why not.
    pub sim: Option<Result<crate::sim::Figures, String>>,
    /// CPU placement.
    pub cpus: procs::Cpus,
    /// Machine description and load averages at start and end.
    pub machine: report::Machine,
    /// Wall time of the whole run.
    pub elapsed: std::time::Duration,
}

/// Runs the benchmarks; `smoke` checks every part in seconds without writing anything.
#[allow(clippy::too_many_lines)]
pub fn run_bench(root: &Path, smoke: bool) -> crate::Result {
    let started = Instant::now();
    let load_at_start = report::loadavg();
    step("bench tools", tools::ensure)?;
    let target = target_dir(root);
    let profile = if smoke { "debug" } else { "release" };
    step(&format!("build mitoken ({profile})"), || {
        let mut c = cargo(root);
        c.args(["build", "--quiet", "-p", "mitoken-host", "--bin", "mitoken"]);
        if !smoke {
            c.arg("--release");
        }
        run(&mut c)
    })?;
    let mitoken = target.join(profile).join("mitoken");
    let binary = binary_sizes(&mitoken, &target)?;

    let mut counts = None;
    step("instruction counts (callgrind)", || {
        counts = Some(callgrind::measure(root, smoke)?);
        Ok(())
    })?;
    let counts = counts.ok_or_else(|| fail("callgrind", "no counts"))?;
    let mut wall = None;
    if smoke {
        step("get_token bench (criterion test mode)", || {
            wallclock::smoke(root)
        })?;
    } else {
        step("wall clock (criterion)", || {
            wall = Some(wallclock::measure(root, &target)?);
            Ok(())
        })?;
    }

    let work = std::env::temp_dir().join(format!("mitoken-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| fail("bench dir", e))?;
    let python = match tools::python(&target) {
        Ok(p) => Some(p),
        Err(e) => {
            println!("bench: Python measurements skipped: {e}");
            None
        }
    };
    let cpus = procs::Cpus::detect();
    let settings = if smoke {
        wrk::Settings {
            seconds: 1,
            connections: 32,
            threads: 1,
            rounds: 1,
        }
    } else {
        wrk::Settings {
            seconds: 8,
            connections: 32,
            threads: 1,
            rounds: 5,
        }
    };
    let (mut emu, emu_addr) = procs::emulator(&mitoken, cpus)?;
    let mut load = None;
    step("servers under load (wrk)", || {
        load = Some(load::measure(
            &mitoken,
            (&emu, emu_addr),
            python.as_deref(),
            &work,
            cpus,
            settings,
        )?);
        Ok(())
    })?;
    let mut costs = Vec::new();
    step("instructions per request (servers under callgrind)", || {
        let (_, body) = procs::get(emu_addr, procs::IMDS_PATH)?;
        let s = wrk::Settings {
            seconds: if smoke { 1 } else { 5 },
            ..settings
        };
        costs = per_request::instructions(&mitoken, emu_addr, &body, &work, cpus, s)?;
        Ok(())
    })?;
    let mut clients = Vec::new();
    step("client start-to-token (hyperfine)", || {
        let runs = if smoke { (1, 3) } else { (3, 30) };
        clients = client::measure(&mitoken, emu_addr, python.as_deref(), &work, cpus, runs)?;
        Ok(())
    })?;
    emu.stop();
    let load = load.ok_or_else(|| fail("load", "no results"))?;

    let sim = if smoke {
        None // `cargo xtask ci` runs the simulation as its own step
    } else {
        Some(crate::sim::measure(root).map_err(|e| e.to_string()))
    };
    let _ = std::fs::remove_dir_all(&work);

    let results = Results {
        counts,
        wall,
        load,
        costs,
        clients,
        binary,
        sim,
        cpus,
        machine: report::Machine::describe(load_at_start),
        elapsed: started.elapsed(),
    };
    let text = report::render(&results);
    print!("{text}");
    if smoke {
        println!(
            "bench --smoke: every measurement ran ({:.1?})",
            started.elapsed()
        );
        return Ok(());
    }
    let docs = root.join("docs");
    std::fs::write(docs.join("benchmarks.md"), &text).map_err(|e| fail("write report", e))?;
    report::charts(&results, &docs)?;
    report::update_readme(&root.join("README.md"), &report::readme_table(&results))?;
    println!(
        "wrote docs/benchmarks.md, docs/bench-*.svg and the README's performance table ({:.0?} in all)",
        started.elapsed()
    );
    Ok(())
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The binary's size as built and stripped (`strip -o` into the target directory).
fn binary_sizes(bin: &Path, target: &Path) -> crate::Result<(u64, u64)> {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| fail("size", e))
    };
    let stripped = target.join("mitoken.stripped");
    run(std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(bin))?;
    let s = size(&stripped)?;
    let _ = std::fs::remove_file(&stripped);
    Ok((size(bin)?, s))
}
