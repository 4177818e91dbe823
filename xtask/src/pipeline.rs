//! One gates run from start to verdict: discover → static gates → build images → compose up
//! under a project name of its own → health → runtime gates → teardown → verdict.
//!
//! Teardown is registered before anything is started and runs on every exit: success,
//! failure, error, panic (through `Drop`) and SIGINT/SIGTERM (through the signal handler).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;

use crate::config::{self, Mode};
use crate::discover::{self, Mesh};
use crate::docker;
use crate::gates::{Gate, GateReport, network_contracts, service_health};
use crate::report::{self, Report};
use crate::term;
use crate::tools::{self, Compose};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub gates: Vec<Gate>,
    pub static_only: bool,
    pub keep_up: bool,
    pub mode: Option<Mode>,
    pub json: bool,
    /// A meshgate.toml other than the repository's.
    pub config: Option<PathBuf>,
}

/// What must be removed when the run ends, however it ends.
struct Teardown {
    compose: Compose,
    project: String,
    files: Vec<PathBuf>,
}

static ACTIVE_TEARDOWN: Mutex<Option<Teardown>> = Mutex::new(None);
static UP_PROCESS: Mutex<Option<Child>> = Mutex::new(None);

/// Removes the registered project, if any. Safe to call from any thread, any number of times.
fn teardown_now() {
    if let Some(child) = UP_PROCESS.lock().unwrap_or_else(|e| e.into_inner()).take() {
        stop_gently(child);
    }
    let Some(teardown) = ACTIVE_TEARDOWN.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    term::status("Removing", &format!("compose project {}", teardown.project));
    let down = teardown.compose.command(&teardown.project, &teardown.files).args([
        "down",
        "--volumes",
        "--remove-orphans",
        "--timeout",
        "10",
    ]);
    if let Err(error) = down.read() {
        term::warn(&format!("{error:#}"));
    }
    // Whatever Compose did not remove (a killed `up`, a renamed file) goes by label.
    let swept = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|runtime| {
        runtime.block_on(async {
            let docker = docker::connect().await?;
            docker::remove_labelled(&docker, docker::PROJECT_LABEL, &teardown.project).await
        })
    });
    match swept {
        Ok(Ok(removed)) if removed.total() > 0 => {
            term::note(&format!("removed {} leftover resource(s) by label", removed.total()))
        }
        Ok(Err(error)) => {
            term::warn(&format!("label sweep of {} failed: {error:#}", teardown.project))
        }
        _ => {}
    }
}

/// Stops a running `compose up`: SIGTERM lets it cancel the engine calls it has under way, so
/// nothing is created after teardown has looked; SIGKILL only if it ignores that.
fn stop_gently(mut child: Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let Ok(pid) = i32::try_from(child.id()).map(Pid::from_raw) else { return };
    if kill(pid, Signal::SIGTERM).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    if receiver.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = receiver.recv();
    }
}

/// Runs teardown when dropped: on return and during a panic's unwinding.
struct TeardownGuard;

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        teardown_now();
    }
}

/// Tears down and exits on SIGINT or SIGTERM.
pub fn install_signal_handler() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        term::warn("interrupted: tearing the mesh down");
        teardown_now();
        std::process::exit(130);
    })
    .context("failed to install the SIGINT/SIGTERM handler")
}

/// A project name no other run uses: lowercase, starting with a letter.
fn project_name() -> String {
    let nanos =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}{}-{:x}", docker::PROJECT_PREFIX, std::process::id(), nanos)
}

fn revision(sh: &xshell::Shell) -> String {
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
pub fn run(sh: &xshell::Shell, root: &Path, options: &Options) -> anyhow::Result<i32> {
    let started_at = SystemTime::now();
    let stamp = report::compact_timestamp(started_at);
    let config = match &options.config {
        Some(file) => config::load_file(file)?,
        None => config::load(root)?,
    };
    let logs = config.dir.join("logs");
    let mode = options.mode.unwrap_or(config.mode);
    let mesh = discover::discover(root, config)?;
    let selected = |gate: Gate| options.gates.contains(&gate);
    let mut reports: Vec<GateReport> = Vec::new();

    // Static gates: no Docker, no test run.
    let clock = Instant::now();
    let static_findings = network_contracts::check_static(&mesh);
    let network_static = GateReport::from_findings(
        Gate::NetworkContracts,
        static_findings,
        clock.elapsed(),
        static_detail(&mesh),
    );

    let mut report = Report {
        schema_version: report::REPORT_SCHEMA_VERSION,
        project: None,
        revision: revision(sh),
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
    if selected(Gate::NetworkContracts) {
        reports.push(network_static);
    }
    if needs_mesh && network_failed {
        term::warn("the static network contracts fail: the mesh is not started");
        if selected(Gate::ServiceHealth) {
            reports.push(GateReport::not_computed(
                Gate::ServiceHealth,
                "network contracts failed statically",
                std::time::Duration::ZERO,
            ));
        }
    } else if needs_mesh {
        let health = run_mesh(root, &logs, &mesh, options, &mut report)?;
        if selected(Gate::ServiceHealth) {
            reports.push(health);
        }
    } else if selected(Gate::ServiceHealth) {
        reports.push(GateReport::skipped(Gate::ServiceHealth, "--static"));
    }
    for gate in [Gate::ArtifactHygiene, Gate::Coverage] {
        if selected(gate) {
            // FIXME: artifact hygiene and coverage are not implemented yet; they report skipped.
            reports.push(GateReport::skipped(gate, "not available yet"));
        }
    }

    let (verdict, exit_code) = report::decide(&reports, mode);
    report.gates = reports;
    report.verdict = verdict;
    report.exit_code = exit_code;
    report::write_all(&logs, &report, root)?;
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

/// Builds, starts, waits for and tears down the mesh; returns the health gate's report.
fn run_mesh(
    root: &Path,
    logs: &Path,
    mesh: &Mesh,
    options: &Options,
    report: &mut Report,
) -> anyhow::Result<GateReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let docker = runtime.block_on(docker::connect())?;
    let engine = runtime.block_on(docker::describe_engine(&docker))?;
    term::status("Docker", &engine);
    report.engine = Some(engine);
    let compose = tools::ensure_compose(root)?;
    report.compose = Some(format!("Docker Compose {}", compose.version));

    let progress = term::Progress::start("building service binaries");
    term::status("Compiling", "service binaries (static, release)");
    let binaries = crate::images::build_binaries(mesh)?;
    progress.set_message("building images".into());
    let images = runtime.block_on(crate::images::build_images(
        &docker,
        mesh,
        &binaries,
        &report.revision,
    ))?;
    drop(progress);
    let rebuilt = images.iter().filter(|image| image.rebuilt).count();
    term::status("Images", &format!("{} ready ({rebuilt} rebuilt)", images.len()));

    let project = project_name();
    report.project = Some(project.clone());
    let files = mesh.project.files.clone();
    *ACTIVE_TEARDOWN.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(Teardown { compose: compose.clone(), project: project.clone(), files: files.clone() });
    let guard = TeardownGuard;

    term::status("Starting", &format!("mesh as compose project {project}"));
    let clock = Instant::now();
    let mut up = compose.command(&project, &files).args([
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
    let child = up.spawn()?;
    *UP_PROCESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    let up_finished = || {
        let mut slot = UP_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        let child = slot.as_mut()?;
        match child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => {
                let child = slot.take()?;
                let output = child.wait_with_output().ok()?;
                if status.success() { Some(Ok(())) } else { Some(Err(up.failure(&output))) }
            }
            Err(error) => Some(Err(error.into())),
        }
    };
    let progress = term::Progress::start("waiting for the mesh to be healthy");
    let waited = runtime.block_on(service_health::wait_for_health(
        &docker,
        mesh,
        &project,
        clock,
        up_finished,
    ));
    drop(progress);
    let mut outcome = waited?;
    if outcome.findings.is_empty() {
        outcome.findings =
            runtime.block_on(service_health::check_readiness(&docker, mesh, &project))?;
    }
    let duration = clock.elapsed();

    // Every service's output is kept; failures point at it.
    let logs_dir = logs.join("services");
    let containers = runtime.block_on(docker::project_containers(&docker, &project))?;
    for container in containers {
        let service = container
            .labels
            .as_ref()
            .and_then(|labels| labels.get("com.docker.compose.service"))
            .cloned();
        let (Some(service), Some(id)) = (service, container.id) else { continue };
        let text = runtime.block_on(docker::container_logs(&docker, &id))?;
        report::write_atomically(&logs_dir.join(format!("{service}.log")), text.as_bytes())?;
    }

    let mut detail: Vec<String> = outcome
        .services
        .iter()
        .map(|(name, state)| {
            format!("{name}: {}", serde_json::to_string(state).unwrap_or_default())
        })
        .collect();
    if !outcome.findings.is_empty() {
        let compose_hint = format!("docker compose -p {project} logs <service>");
        term::note(&format!("service logs saved under {}", logs_dir.display()));
        term::note(&format!("to look further: rerun with --keep-up, then `{compose_hint}`"));
        detail.push(format!("logs: {}", logs_dir.display()));
    }
    if options.keep_up {
        ACTIVE_TEARDOWN.lock().unwrap_or_else(|e| e.into_inner()).take();
        term::status("Kept up", &format!("compose project {project}"));
        term::note(&format!("inspect with `docker compose -p {project} logs <service>`"));
        term::note(&format!(
            "remove with `docker compose -p {project} down --volumes` or `cargo xtask gates clean`"
        ));
    }
    drop(guard);
    Ok(GateReport::from_findings(Gate::ServiceHealth, outcome.findings, duration, detail))
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
