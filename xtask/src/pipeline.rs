//! One gates run from start to verdict: discover → static gates → build images → compose up
//! under a project name of its own → health → runtime gates → teardown → verdict.
//!
//! Teardown (see `teardown`) is registered before anything is started and runs on every exit.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::Context as _;

use crate::config::{self, Mode};
use crate::discover::{self, Mesh};
use crate::docker;
use crate::gates::{
    Gate, GateReport, coverage, network_contracts, network_runtime, service_health,
};
use crate::metrics::{self, Metrics, ServiceMetrics};
use crate::report::{self, Report};
use crate::teardown::{self, Teardown, TeardownGuard};
use crate::term;
use crate::tools;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub gates: Vec<Gate>,
    pub static_only: bool,
    /// Skip the static network checks: judge the running mesh only.
    pub runtime_only: bool,
    pub keep_up: bool,
    pub mode: Option<Mode>,
    pub json: bool,
    /// A meshgate.toml other than the repository's.
    pub config: Option<PathBuf>,
    /// Infer contracts for the Compose services that have none (`--infer-contracts`).
    pub infer_contracts: bool,
}

/// A project name no other run uses: lowercase, starting with a letter.
pub fn project_name() -> String {
    let nanos =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}{}-{:x}", docker::PROJECT_PREFIX, std::process::id(), nanos)
}

pub fn revision(sh: &xshell::Shell) -> String {
    let head = xshell::cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_else(|_| "unknown".into());
    let dirty = xshell::cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|s| !s.trim().is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

/// Runs the gates and returns the exit code (0 pass, 1 a gate failed).
///
/// A run that cannot finish still replaces `logs/report.json`, with the error, so no earlier
/// run's report is mistaken for this one's.
pub fn run(sh: &xshell::Shell, root: &Path, options: &Options) -> anyhow::Result<i32> {
    let started_at = SystemTime::now();
    let config_dir = match &options.config {
        Some(file) => file.parent().unwrap_or(root).to_path_buf(),
        None => root.to_path_buf(),
    };
    let logs = config_dir.join("logs");
    let result = run_gates(sh, root, &logs, started_at, options);
    if let Err(error) = &result {
        let report = report::ErrorReport::new(started_at, error);
        if let Err(write_error) = report::write_error(&logs, &report) {
            term::warn(&format!("{write_error:#}"));
        }
    }
    result
}

fn run_gates(
    sh: &xshell::Shell,
    root: &Path,
    logs: &Path,
    started_at: SystemTime,
    options: &Options,
) -> anyhow::Result<i32> {
    let stamp = report::compact_timestamp(started_at);
    let clock = Instant::now();
    let config = match &options.config {
        Some(file) => config::load_file(file)?,
        None => config::load(root)?,
    };
    let mode = options.mode.unwrap_or(config.mode);
    let mut mesh = discover::discover(root, config)?;
    if options.infer_contracts {
        crate::infer::infer_contracts(&mut mesh);
    }
    let revision = revision(sh);
    let mut metrics = Metrics::new(&revision, &stamp, run_kind(options));
    metrics.tools.insert("meshgate".into(), env!("CARGO_PKG_VERSION").into());
    metrics.step("discover", clock.elapsed());
    let selected = |gate: Gate| options.gates.contains(&gate);
    let mut reports: Vec<GateReport> = Vec::new();

    // Static gates: no Docker, no test run.
    let clock = Instant::now();
    let static_findings =
        if options.runtime_only { Vec::new() } else { network_contracts::check_static(&mesh) };
    let network_static = GateReport::from_findings(
        Gate::NetworkContracts,
        static_findings,
        clock.elapsed(),
        static_detail(&mesh),
    );
    metrics.step("static checks", clock.elapsed());

    let mut report = Report {
        schema_version: report::REPORT_SCHEMA_VERSION,
        project: None,
        revision,
        started_at: stamp,
        mode,
        profiles: mesh.project.profiles.clone(),
        engine: None,
        compose: None,
        gates: Vec::new(),
        verdict: report::Verdict::Passed,
        exit_code: 0,
    };

    let needs_mesh =
        !options.static_only && (selected(Gate::ServiceHealth) || selected(Gate::NetworkContracts));
    let network_failed = network_static.status == crate::gates::Status::Failed;
    let mut network = network_static;
    if needs_mesh && network_failed {
        term::warn("the static network contracts fail: the mesh is not started");
        network.scope = Some("static checks only: the mesh was not started");
        if selected(Gate::ServiceHealth) {
            reports.push(GateReport::not_computed(
                Gate::ServiceHealth,
                "network contracts failed statically",
                std::time::Duration::ZERO,
            ));
        }
    } else if needs_mesh {
        let (health, runtime) = run_mesh(root, logs, &mesh, options, &mut report, &mut metrics)?;
        network = combine_network(network, runtime, options.runtime_only);
        if selected(Gate::ServiceHealth) {
            reports.push(health);
        }
    } else {
        network.scope = Some("static checks only");
        if selected(Gate::ServiceHealth) {
            reports.push(GateReport::skipped(Gate::ServiceHealth, "--static"));
        }
    }
    if selected(Gate::NetworkContracts) {
        reports.insert(0, network);
    }
    if selected(Gate::ArtifactHygiene) {
        // FIXME: artifact hygiene is not implemented yet; it reports skipped.
        reports.push(GateReport::skipped(Gate::ArtifactHygiene, "not available yet"));
    }
    if selected(Gate::Coverage) {
        reports.push(run_coverage(root, logs, &mesh, options, &mut metrics)?);
    }

    teardown::ensure_not_interrupted()?;
    // Findings name files relative to the repository, as GitHub and editors expect.
    for finding in reports.iter_mut().flat_map(|report| report.findings.iter_mut()) {
        finding.location = finding.location.relative_to(root);
    }
    let (verdict, exit_code) = report::decide(&reports, mode);
    report.gates = reports;
    report.verdict = verdict;
    report.exit_code = exit_code;
    report::write_all(logs, &report, root)?;
    metrics.record_gates(&report.gates);
    metrics.project = report.project.clone();
    if let Some(engine) = &report.engine {
        metrics.tools.insert("docker".into(), engine.clone());
    }
    if let Some(compose) = &report.compose {
        metrics.tools.insert("compose".into(), compose.clone());
    }
    metrics.step("total", started_at.elapsed().unwrap_or_default());
    let verdict_text = match verdict {
        report::Verdict::Failed => "failed",
        _ => "passed",
    };
    write_metrics(logs, &mesh.config.metrics, &metrics, verdict_text, &report.gates)?;
    for gate in report.gates.iter().filter(|gate| !gate.matrix.is_empty()) {
        term::block(&report::render_matrix(&gate.matrix));
    }
    for summary in report.gates.iter().filter_map(|gate| gate.coverage.as_ref()) {
        term::block(&coverage::render_table(summary));
    }
    term::block(&report::render_table(&report.gates));
    if options.json {
        term::stdout(
            &serde_json::to_string_pretty(&report).context("failed to encode the report")?,
        );
    }
    let summary = match (verdict, mode) {
        (report::Verdict::Failed, _) => "gates failed",
        (_, Mode::Strict) => "gates passed",
        (_, Mode::Warning) => "gates passed (warning mode)",
        (_, Mode::Monitoring) => "gates measured (monitoring mode)",
    };
    term::status(
        "Finished",
        &format!("{summary}; report at {}", logs.join("report.json").display()),
    );
    Ok(exit_code)
}

/// The coverage gate, unless the run is `--static` (the pre-commit path runs no tests).
fn run_coverage(
    root: &Path,
    logs: &Path,
    mesh: &Mesh,
    options: &Options,
    metrics: &mut Metrics,
) -> anyhow::Result<GateReport> {
    if options.static_only {
        return Ok(GateReport::skipped(Gate::Coverage, "not run with --static"));
    }
    teardown::ensure_not_interrupted()?;
    let clock = Instant::now();
    let report = coverage::run(root, logs, mesh)?;
    metrics.step("coverage", clock.elapsed());
    if let Some(summary) = &report.coverage {
        metrics.coverage = coverage::metrics_of(summary);
        let version = summary.tool.trim_start_matches("cargo-llvm-cov ");
        metrics.tools.insert("cargo-llvm-cov".into(), version.to_owned());
    }
    Ok(report)
}

/// Which gates ran and how: a run's figures compare only with runs of the same kind.
fn run_kind(options: &Options) -> String {
    let gates: Vec<&str> = options.gates.iter().map(|gate| gate.name()).collect();
    let how = if options.static_only {
        "static"
    } else if options.runtime_only {
        "runtime"
    } else {
        "full"
    };
    format!("{}/{how}", gates.join(","))
}

/// Writes `logs/metrics.json`, `logs/summary.md` (also appended to the job summary on GitHub
/// Actions) and, when enabled, `logs/metrics.prom`; then adds the run to the history.
///
/// Only `metrics.json` is required: a history that cannot be read or written is reported and
/// the run goes on, since it only serves comparisons.
fn write_metrics(
    logs: &Path,
    policy: &config::MetricsPolicy,
    metrics: &Metrics,
    verdict: &str,
    gates: &[GateReport],
) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(metrics).context("failed to encode the metrics")?;
    report::write_atomically(&logs.join("metrics.json"), &json)?;
    if policy.prometheus {
        let text = metrics::prometheus_text(metrics)?;
        report::write_atomically(&logs.join("metrics.prom"), text.as_bytes())?;
    }
    let mut history = match metrics::History::load(&policy.history) {
        Ok(history) => Some(history),
        Err(error) => {
            term::warn(&format!("{error:#}; this run is not compared with earlier ones"));
            None
        }
    };
    let previous = history.as_ref().and_then(|history| history.last_of_kind(&metrics.kind));
    let comparisons = metrics::compare(metrics, previous, &policy.tolerance);
    let summary = metrics::summary_markdown(verdict, gates, metrics, previous, &comparisons);
    report::write_atomically(&logs.join("summary.md"), summary.as_bytes())?;
    let regressions: Vec<&str> =
        comparisons.iter().filter(|c| c.regressed).map(|c| c.key.as_str()).collect();
    if !regressions.is_empty() {
        term::warn(&format!(
            "{} figure(s) worse than the last run beyond the tolerance: {}",
            regressions.len(),
            regressions.join(", ")
        ));
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())
        && let Err(error) = append_to(Path::new(&path), &summary)
    {
        term::warn(&format!("could not add to the job summary: {error:#}"));
    }
    if let Some(history) = &mut history
        && let Err(error) = history.append(metrics::HistoryRecord::of(metrics))
    {
        term::warn(&format!("{error:#}; this run is not kept in the history"));
    }
    Ok(())
}

fn append_to(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("failed to write {}", path.display()))
}

fn static_detail(mesh: &Mesh) -> Vec<String> {
    let mut detail = vec![
        format!("compose files: {:?}", mesh.project.files),
        format!("profiles: {:?}", mesh.project.profiles),
    ];
    for contract in mesh.contracts.values() {
        for edge in &contract.talks_to {
            detail.push(format!(
                "declared edge: {} -> {}:{}",
                contract.service, edge.service, edge.port
            ));
        }
    }
    detail
}

/// The network gate's runtime half: what it found, or why it could not run.
type RuntimeResult = Result<(network_runtime::RuntimeOutcome, std::time::Duration), String>;

/// The static report with the runtime half's findings, detail and matrix added.
fn combine_network(
    mut network: GateReport,
    runtime: RuntimeResult,
    runtime_only: bool,
) -> GateReport {
    match runtime {
        Ok((outcome, duration)) => {
            let mut findings = std::mem::take(&mut network.findings);
            findings.extend(outcome.findings);
            let mut detail = std::mem::take(&mut network.detail);
            detail.extend(outcome.detail);
            let mut combined = GateReport::from_findings(
                Gate::NetworkContracts,
                findings,
                network.duration + duration,
                detail,
            );
            combined.matrix = outcome.matrix;
            combined.scope = runtime_only.then_some("runtime checks only");
            combined
        }
        Err(reason) if network.status == crate::gates::Status::Failed => {
            network.scope = Some("static checks only: runtime probes did not run");
            network.detail.push(format!("runtime probes did not run: {reason}"));
            network
        }
        Err(reason) => {
            let mut not_computed =
                GateReport::not_computed(Gate::NetworkContracts, reason, network.duration);
            not_computed.findings = network.findings;
            not_computed.detail = network.detail;
            not_computed
        }
    }
}

/// Builds, starts, waits for and tears down the mesh; returns the health gate's report and
/// the network gate's runtime half.
fn run_mesh(
    root: &Path,
    logs: &Path,
    mesh: &Mesh,
    options: &Options,
    report: &mut Report,
    metrics: &mut Metrics,
) -> anyhow::Result<(GateReport, RuntimeResult)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let docker = runtime.block_on(docker::connect())?;
    let engine = runtime.block_on(docker::describe_engine(&docker))?;
    term::status("Docker", &engine.to_string());
    report.engine = Some(engine.to_string());
    let compose = tools::ensure_compose(root)?;
    report.compose = Some(format!("Docker Compose {}", compose.version));

    let progress = term::Progress::start("building service binaries");
    term::status("Compiling", "service binaries (static, release)");
    let clock = Instant::now();
    let binaries = crate::images::build_binaries(mesh)?;
    metrics.step("build binaries", clock.elapsed());
    teardown::ensure_not_interrupted()?;
    let clock = Instant::now();
    progress.set_message("building images".into());
    let images = runtime.block_on(crate::images::build_images(
        &docker,
        mesh,
        &binaries,
        &report.revision,
    ))?;
    drop(progress);
    metrics.step("build images", clock.elapsed());
    let rebuilt = images.services.iter().filter(|image| image.rebuilt).count();
    term::status("Images", &format!("{} ready ({rebuilt} rebuilt)", images.services.len()));

    let project = project_name();
    report.project = Some(project.clone());
    let guard = TeardownGuard;
    term::status("Starting", &format!("mesh as compose project {project}"));
    let started = start_and_wait(&runtime, &docker, &compose, mesh, &project)?;
    metrics.step("compose up to healthy", started.up_to_healthy);
    if let Some(readiness) = started.readiness {
        metrics.step("readiness", readiness);
    }
    let duration = started.up_to_healthy + started.readiness.unwrap_or_default();
    let mut outcome = started.outcome;
    outcome
        .findings
        .extend(service_health::check_engine_support(&mesh.project, &engine.api_version));
    for (name, state) in &outcome.services {
        let image = images.services.iter().find(|image| image.service == *name);
        metrics.services.insert(
            name.clone(),
            ServiceMetrics {
                time_to_running_ms: state.time_to_running_ms,
                time_to_healthy_ms: state.time_to_healthy_ms,
                restarts: state.restarts,
                exit_code: state.exit_code,
                oom_killed: state.oom_killed,
                last_health_output: state.last_health_output.clone(),
                image_size_bytes: image.and_then(|image| image.size_bytes),
                stop_ms: None,
                stop_exit_code: None,
            },
        );
    }

    // The network gate's runtime half, on the healthy mesh only.
    let probed: RuntimeResult = if !options.gates.contains(&Gate::NetworkContracts) {
        Err("not selected".into())
    } else if !outcome.findings.is_empty() {
        Err("the mesh did not become healthy".into())
    } else {
        teardown::ensure_not_interrupted()?;
        let progress = term::Progress::start("probing connections between services");
        let clock = Instant::now();
        let checked = runtime.block_on(network_runtime::check(
            &docker,
            mesh,
            &project,
            &images.probe,
            mesh.config.probe_timeout,
        ))?;
        drop(progress);
        metrics.step("probes", clock.elapsed());
        Ok((checked, clock.elapsed()))
    };

    // Stopped by meshgate rather than by `compose down`, so the gate sees how each container
    // takes its stop signal; the logs saved next then end with each service's shutdown.
    if !options.keep_up {
        teardown::ensure_not_interrupted()?;
        let clock = Instant::now();
        let (stops, findings) =
            runtime.block_on(service_health::stop_containers(&docker, mesh, &project))?;
        metrics.step("stop", clock.elapsed());
        outcome.findings.extend(findings);
        for (name, stop) in stops {
            if let Some(service) = metrics.services.get_mut(&name) {
                service.stop_ms = Some(stop.duration_ms);
                service.stop_exit_code = stop.exit_code;
            }
            if let Some(state) = outcome.services.get_mut(&name) {
                state.stop = Some(stop);
            }
        }
    }

    // Every service's output is kept; failures point at it.
    let logs_dir = logs.join("services");
    if let Err(error) = runtime.block_on(save_service_logs(&docker, &project, &logs_dir)) {
        term::warn(&format!("could not save every service's log: {error:#}"));
    }

    let mut detail: Vec<String> = outcome
        .services
        .iter()
        .map(|(name, state)| {
            format!("{name}: {}", serde_json::to_string(state).unwrap_or_default())
        })
        .collect();
    let compose_command = compose.display(&project);
    if !outcome.findings.is_empty() {
        term::note(&format!("service logs saved under {}", logs_dir.display()));
        if !options.keep_up {
            term::note(&format!(
                "to look further: rerun with --keep-up, then `{compose_command} logs <service>`"
            ));
        }
        detail.push(format!("logs: {}", logs_dir.display()));
    }
    if options.keep_up {
        teardown::keep_up();
        term::status("Kept up", &format!("compose project {project}"));
        term::note(&format!("inspect with `{compose_command} logs <service>`"));
        term::note(&format!(
            "remove with `{compose_command} down --volumes` or `cargo xtask gates clean`"
        ));
    }
    let clock = Instant::now();
    drop(guard);
    if !options.keep_up {
        metrics.step("teardown", clock.elapsed());
    }
    let health = GateReport::from_findings(Gate::ServiceHealth, outcome.findings, duration, detail);
    Ok((health, probed))
}

/// What starting the mesh gave, and how long each part took.
pub struct Started {
    pub outcome: service_health::Outcome,
    /// From `compose up` to every container healthy (or the first failure).
    pub up_to_healthy: std::time::Duration,
    /// The readiness endpoints, when every container was healthy.
    pub readiness: Option<std::time::Duration>,
}

/// Starts the mesh as `project` and waits for it: the health gate's own work (also what
/// `cargo xtask bench health` times). The project is registered for teardown before
/// anything starts; the caller holds the `TeardownGuard`.
pub fn start_and_wait(
    runtime: &tokio::runtime::Runtime,
    docker: &bollard::Docker,
    compose: &tools::Compose,
    mesh: &Mesh,
    project: &str,
) -> anyhow::Result<Started> {
    let files = mesh.project.files.clone();
    let clock = Instant::now();
    let mut up = compose.command(project, &files).args([
        "up",
        "--detach",
        "--no-build",
        "--pull",
        "never",
        "--remove-orphans",
    ]);
    for profile in &mesh.project.profiles {
        up = up.args(["--profile", profile]);
    }
    let registration = Teardown { compose: compose.clone(), project: project.to_owned(), files };
    teardown::register_and_start(registration, || up.spawn())?;
    let up_finished = || teardown::poll_up(|output| up.failure(output));
    let progress = term::Progress::start("waiting for the mesh to be healthy");
    let waited = runtime.block_on(service_health::wait_for_health(
        docker,
        mesh,
        project,
        clock,
        up_finished,
    ));
    drop(progress);
    let mut outcome = waited?;
    let up_to_healthy = clock.elapsed();
    let mut readiness = None;
    if outcome.findings.is_empty() {
        let clock = Instant::now();
        outcome.findings =
            runtime.block_on(service_health::check_readiness(docker, mesh, project))?;
        readiness = Some(clock.elapsed());
    }
    Ok(Started { outcome, up_to_healthy, readiness })
}

/// Writes each container's output to `<dir>/<service>.log`.
async fn save_service_logs(
    docker: &bollard::Docker,
    project: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    for container in docker::project_containers(docker, project).await? {
        let service = container
            .labels
            .as_ref()
            .and_then(|labels| labels.get("com.docker.compose.service"))
            .cloned();
        let (Some(service), Some(id)) = (service, container.id) else { continue };
        let text = docker::container_logs(docker, &id).await?;
        report::write_atomically(&dir.join(format!("{service}.log")), text.as_bytes())?;
    }
    Ok(())
}

/// The process that created `project`, if it is still running on this host. Project names
/// are `meshgate-<pid>-<suffix>`.
fn owner_alive(project: &str) -> Option<u32> {
    let pid: u32 = project.strip_prefix(docker::PROJECT_PREFIX)?.split('-').next()?.parse().ok()?;
    Path::new("/proc").join(pid.to_string()).exists().then_some(pid)
}

/// Removes every resource left by earlier runs (a SIGKILL leaves them), found by label.
pub fn clean() -> anyhow::Result<usize> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let docker = docker::connect().await?;
        let mut total = 0;
        for project in docker::leftover_projects(&docker).await? {
            if let Some(pid) = owner_alive(&project) {
                term::note(&format!("{project} belongs to running process {pid}: left alone"));
                continue;
            }
            let removed = docker::remove_labelled(&docker, docker::PROJECT_LABEL, &project).await?;
            term::status(
                "Removed",
                &format!(
                    "{project}: {} container(s), {} network(s), {} volume(s)",
                    removed.containers, removed.networks, removed.volumes
                ),
            );
            total += removed.total();
        }
        Ok(total)
    })
}
