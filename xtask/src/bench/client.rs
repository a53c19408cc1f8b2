//! Client cost: a whole process from start to token against the emulator — `mitoken token`
//! vs `curl` vs a Python `azure-identity` script — timed by `hyperfine` (no shell), pinned
//! away from the emulator's CPU.

use std::net::SocketAddr;
use std::path::Path;

use super::fail;
use super::procs::{self, Cpus};

/// One timed command.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Its name in the report.
    pub name: String,
    /// The command line as the report shows it (no paths of the machine, no port).
    pub command: String,
    /// Median wall time, ms.
    pub median_ms: f64,
    /// Median absolute deviation, ms.
    pub mad_ms: f64,
    /// Runs timed.
    pub runs: usize,
}

/// The Python script a user would write: one token, printed.
pub const PY_SCRIPT: &str = "from azure.identity import ManagedIdentityCredential\n\
    print(ManagedIdentityCredential().get_token(\"https://management.azure.com/.default\").token)\n";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Times each client `runs` times (after `warmup` untimed runs).
pub fn measure(
    mitoken: &Path,
    emu: SocketAddr,
    python: Option<&Path>,
    work: &Path,
    cpus: Cpus,
    (warmup, runs): (u32, u32),
) -> crate::Result<Vec<Timing>> {
    // (name, command line run, command line shown)
    let mut commands: Vec<(String, String, String)> = vec![
        (
            "mitoken token".into(),
            format!(
                "{} token --endpoint http://{emu} --resource {} -o raw",
                mitoken.display(),
                procs::RESOURCE
            ),
            format!(
                "mitoken token --endpoint http://127.0.0.1:PORT --resource {} -o raw",
                procs::RESOURCE
            ),
        ),
        (
            "curl".into(),
            format!("curl -s -H Metadata:true http://{emu}{}", procs::IMDS_PATH),
            format!(
                "curl -s -H Metadata:true http://127.0.0.1:PORT{}",
                procs::IMDS_PATH
            ),
        ),
    ];
    if let Some(py) = python {
        let script = work.join("get_token.py");
        std::fs::write(&script, PY_SCRIPT).map_err(|e| fail("python script", e))?;
        commands.push((
            "Python azure-identity".into(),
            format!("{} {}", py.display(), script.display()),
            "python get_token.py".into(),
        ));
    }
    commands.push((
        "`mitoken --version` (process start only)".into(),
        format!("{} --version", mitoken.display()),
        "mitoken --version".into(),
    ));
    let json = work.join("hyperfine.json");
    let mut cmd = procs::pinned(cpus.client, "hyperfine");
    cmd.args(["-N", "--style", "basic", "--warmup"])
        .arg(warmup.to_string())
        .arg("--runs")
        .arg(runs.to_string())
        .arg("--export-json")
        .arg(&json);
    for (name, line, _) in &commands {
        cmd.args(["-n", name, line]);
    }
    load_env(&mut cmd, emu);
    crate::run(&mut cmd)?;
    let text = std::fs::read_to_string(&json).map_err(|e| fail("hyperfine", e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail("hyperfine", e))?;
    let results = v["results"]
        .as_array()
        .ok_or_else(|| fail("hyperfine", "no results"))?;
    Ok(commands
        .iter()
        .zip(results)
        .map(|((name, _, shown), r)| {
            let mut times: Vec<f64> = r["times"]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                .unwrap_or_default();
            let m = median(&mut times);
            let mut dev: Vec<f64> = times.iter().map(|t| (t - m).abs()).collect();
            Timing {
                name: name.clone(),
                command: shown.clone(),
                median_ms: m * 1e3,
                mad_ms: median(&mut dev) * 1e3,
                runs: times.len(),
            }
        })
        .collect())
}

fn load_env(cmd: &mut std::process::Command, emu: SocketAddr) {
    super::load::python_env(cmd, emu);
}
