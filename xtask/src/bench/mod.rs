//! `cargo xtask bench`: how fast the static network gate is on generated meshes, next to
//! `docker compose config` on the same file, and whether it meets its targets (500 services
//! over 40 networks in under 1 s and 100 MB).
//!
//! Each size is generated into a temporary folder (see `generate`), checked once to prove
//! the mesh is valid (no finding), then timed in this process a few times: load
//! meshgate.toml, discover (Compose file and contracts), run the static checks, as
//! `gates network-contracts --static` does. Peak memory comes from a child process that does
//! the same once and reports its high-water mark (`VmHWM`), so one size's allocations do not
//! hide another's.

pub mod coverage;
pub mod generate;
pub mod health;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::discover::{self, Mesh};
use crate::finding::Finding;
use crate::flags::{BenchFlags, BenchTarget};
use crate::gates::network_contracts;
use crate::process::ProcessBuilder;
use crate::term;
use crate::tools::{self, Compose};

use generate::MeshSpec;

/// The size the targets apply to, and the targets.
const TARGET_SERVICES: usize = 500;
const TARGET_TIME: Duration = Duration::from_secs(1);
const TARGET_MEMORY_KIB: u64 = 100 * 1024;

/// What one size measured.
struct Measurement {
    spec: MeshSpec,
    edges: usize,
    /// Config, discovery and checks: the whole static gate.
    total: Duration,
    /// The checks alone.
    checks: Duration,
    compose: Option<ComposeTime>,
    peak_memory_kib: Option<u64>,
}

/// What the child process reports on stdout.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildReport {
    findings: usize,
    peak_memory_kib: Option<u64>,
}

/// Runs the benchmark; returns the exit code (1 when a target is missed).
pub fn run(sh: &xshell::Shell, root: &Path, flags: &BenchFlags) -> anyhow::Result<u8> {
    if let Some(dir) = &flags.measure_child {
        return measure_child(dir);
    }
    if flags.target == BenchTarget::Health {
        return health::run(sh, root, flags.runs);
    }
    if flags.target == BenchTarget::Hook {
        return crate::hooks::bench(root, flags.runs);
    }
    if flags.target == BenchTarget::Coverage {
        return coverage::run(root, flags.runs);
    }
    let compose = if flags.no_compose { None } else { Some(tools::ensure_compose(root)?) };
    let measurements = match &flags.out {
        Some(out) => {
            let measurements = measure_sizes(flags, compose.as_ref(), out)?;
            term::note(&format!("the generated meshes are in {}", out.display()));
            measurements
        }
        None => {
            let scratch =
                std::env::temp_dir().join(format!("meshgate-bench-{}", std::process::id()));
            let result = measure_sizes(flags, compose.as_ref(), &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            result?
        }
    };

    term::block(&render_table(&measurements));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    term::note(&format!(
        "median of {} run(s) per size; xtask built in {profile} mode; {} CPU(s)",
        flags.runs,
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    ));
    Ok(judge(&measurements))
}

fn measure_sizes(
    flags: &BenchFlags,
    compose: Option<&Compose>,
    scratch: &Path,
) -> anyhow::Result<Vec<Measurement>> {
    let mut measurements = Vec::new();
    for &size in &flags.sizes {
        let size = size as usize;
        let spec = MeshSpec::for_size(size, flags.seed);
        let dir = scratch.join(format!("mesh-{size}"));
        let mesh = generate::write(spec, &dir)?;
        term::status(
            "Measuring",
            &format!("{size} services, {} networks, {} edges", spec.networks, mesh.edges),
        );

        // A generated mesh is valid by construction; a finding is a bug of the generator or
        // of the gate, and the timings would mean nothing.
        let findings = check_static(&dir)?.1;
        ensure_no_findings(size, &findings)?;

        let mut totals = Vec::new();
        let mut checks = Vec::new();
        for _ in 0..flags.runs {
            let clock = Instant::now();
            let mesh = discover_mesh(&dir)?;
            let checked = Instant::now();
            let findings = network_contracts::check_static(&mesh);
            checks.push(checked.elapsed());
            totals.push(clock.elapsed());
            drop(findings);
        }
        let compose_time = match compose {
            Some(compose) => {
                Some(time_compose(compose, &dir, flags.runs, flags.compose_timeout.into())?)
            }
            None => None,
        };
        let peak_memory_kib = peak_memory_of_child(&dir)?;
        measurements.push(Measurement {
            spec,
            edges: mesh.edges,
            total: median(&mut totals),
            checks: median(&mut checks),
            compose: compose_time,
            peak_memory_kib,
        });
    }
    Ok(measurements)
}

/// Loads the generated mesh in `dir` as the gate does, with `dir` as the repository root.
fn discover_mesh(dir: &Path) -> anyhow::Result<Mesh> {
    let config = crate::config::load_file(&dir.join(crate::config::FILE_NAME))?;
    discover::discover(dir, config)
}

fn check_static(dir: &Path) -> anyhow::Result<(Mesh, Vec<Finding>)> {
    let mesh = discover_mesh(dir)?;
    let findings = network_contracts::check_static(&mesh);
    Ok((mesh, findings))
}

fn ensure_no_findings(size: usize, findings: &[Finding]) -> anyhow::Result<()> {
    if let Some(first) = findings.first() {
        anyhow::bail!(
            "the generated mesh of {size} services has {} finding(s), the first: [{}] at {}: {}",
            findings.len(),
            first.rule.id(),
            first.location,
            first.message
        );
    }
    Ok(())
}

/// How long `compose config` took on one mesh.
#[derive(Clone, Copy, Debug)]
enum ComposeTime {
    /// The median of the timed runs.
    Median(Duration),
    /// The warm-up run did not finish within this budget and was stopped. Compose follows
    /// every `depends_on` path, so a mesh where every pair that shares a network waits for
    /// the other (what least privilege asks for) costs it time exponential in the depth.
    GaveUp(Duration),
}

/// The median time of `compose config --quiet` on the mesh in `dir`, after one warm-up run
/// that must finish within `budget`.
fn time_compose(
    compose: &Compose,
    dir: &Path,
    runs: u32,
    budget: Duration,
) -> anyhow::Result<ComposeTime> {
    let files = [dir.join("compose.yaml")];
    let command = compose.command("meshgate-bench", &files).args(["config", "--quiet"]).dir(dir);
    let mut times = Vec::new();
    for run in 0..=runs {
        let clock = Instant::now();
        let mut child = command.spawn()?;
        let finished = wait_timeout::ChildExt::wait_timeout(&mut child, budget)
            .with_context(|| format!("failed to wait for `{command}`"))?;
        if finished.is_none() {
            // Best effort: the child is ours and is reaped right after.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(ComposeTime::GaveUp(budget));
        }
        let output = child
            .wait_with_output()
            .with_context(|| format!("failed to read the output of `{command}`"))?;
        let elapsed = clock.elapsed();
        if !output.status.success() {
            return Err(command.failure(&output))
                .context("Compose rejects the generated mesh, so the comparison means nothing");
        }
        if run > 0 {
            times.push(elapsed);
        }
    }
    Ok(ComposeTime::Median(median(&mut times)))
}

/// Runs the static gate on `dir` in a child process and returns its peak resident memory.
fn peak_memory_of_child(dir: &Path) -> anyhow::Result<Option<u64>> {
    let exe = std::env::current_exe().context("failed to find the xtask executable")?;
    let command = ProcessBuilder::new(exe).arg("bench").arg("--measure-child").arg(dir);
    let stdout = command.read()?;
    let report: ChildReport = serde_json::from_str(stdout.trim())
        .with_context(|| format!("unexpected output of `{command}`: {stdout:?}"))?;
    Ok(report.peak_memory_kib)
}

/// The child's side: one static run on `dir`, then the findings and the high-water mark.
fn measure_child(dir: &Path) -> anyhow::Result<u8> {
    let (_mesh, findings) = check_static(dir)?;
    let report = ChildReport { findings: findings.len(), peak_memory_kib: peak_memory_kib() };
    term::stdout(&serde_json::to_string(&report).context("failed to encode the measurement")?);
    Ok(0)
}

/// This process's peak resident set size (`VmHWM` of /proc/self/status), in KiB.
// FIXME: peak memory is only measured where /proc exists (Linux); elsewhere it is not shown.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn render_table(measurements: &[Measurement]) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "services",
        "networks",
        "edges",
        "meshgate",
        "of which checks",
        "compose config",
        "ratio",
        "peak memory",
    ]);
    for measurement in measurements {
        let ratio = |compose: Duration| measurement.total.as_secs_f64() / compose.as_secs_f64();
        let (compose, ratio) = match measurement.compose {
            Some(ComposeTime::Median(compose)) if !compose.is_zero() => {
                (millis(compose), format!("{:.2}", ratio(compose)))
            }
            Some(ComposeTime::GaveUp(budget)) => (
                format!("> {} (stopped)", humantime::format_duration(budget)),
                format!("< {:.4}", ratio(budget)),
            ),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        table.add_row([
            measurement.spec.services.to_string(),
            measurement.spec.networks.to_string(),
            measurement.edges.to_string(),
            millis(measurement.total),
            millis(measurement.checks),
            compose,
            ratio,
            measurement.peak_memory_kib.map_or_else(|| "-".to_owned(), mebibytes),
        ]);
    }
    table.to_string()
}

/// Prints the verdict on the targets and returns the exit code.
fn judge(measurements: &[Measurement]) -> u8 {
    let Some(target) = measurements.iter().find(|m| m.spec.services == TARGET_SERVICES) else {
        term::note(&format!("the targets apply to {TARGET_SERVICES} services, not measured here"));
        return 0;
    };
    let time_met = target.total < TARGET_TIME;
    let memory_met = target.peak_memory_kib.map(|kib| kib < TARGET_MEMORY_KIB);
    let memory = match target.peak_memory_kib {
        Some(kib) => format!("peak memory {} (target < 100 MiB)", mebibytes(kib)),
        None => "peak memory not measured on this system".to_owned(),
    };
    let message =
        format!("{TARGET_SERVICES} services: {} (target < 1 s), {memory}", millis(target.total));
    if time_met && memory_met != Some(false) {
        term::status("Met", &message);
        0
    } else {
        term::error(&format!("target missed: {message}"));
        1
    }
}

/// Prints the median of the per-pair ratios of two alternately timed cycles against
/// `target`; returns the exit code (1 when the target is missed).
fn report_pairs(what: &str, ours: &mut [Duration], theirs: &mut [Duration], target: f64) -> u8 {
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(theirs.iter())
        .map(|(ours, theirs)| ours.as_secs_f64() / theirs.as_secs_f64().max(f64::EPSILON))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
    let message = format!(
        "{what}: median ratio {ratio:.3} over {} pair(s) (median {} against {}; target ≤ {target:.2})",
        ratios.len(),
        seconds(median(ours)),
        seconds(median(theirs)),
    );
    if ratio <= target {
        term::status("Met", &message);
        0
    } else {
        term::error(&format!("target missed: {message}"));
        1
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}
