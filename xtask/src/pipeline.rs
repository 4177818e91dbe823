//! One gates run from start to verdict: discover → static gates → build images → compose up
//! under a project name of its own → health → runtime gates → teardown → verdict.
//!
//! Teardown (see `teardown`) is registered before anything is started and runs on every exit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::config::{self, Mode};
use crate::discover::{self, Mesh};
use crate::docker;
use crate::finding::Finding;
use crate::gates::{
    Gate, GateReport, artifact_hygiene, coverage, network_contracts, network_runtime,
    service_health,
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
    /// `--enforce-centralized-logs`: overrides meshgate.toml's setting when given.
    pub enforce_centralized_logs: Option<bool>,
    /// Where the report and logs go; `logs/` beside meshgate.toml when `None`.
    pub logs: Option<PathBuf>,
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
    let logs = options.logs.clone().unwrap_or_else(|| config_dir.join("logs"));
    let mut github = crate::github::Session::Off;
    let result = run_gates(sh, root, &logs, started_at, options, &mut github);
    if let Err(error) = &result {
        let report = report::ErrorReport::new(started_at, error);
        if let Err(write_error) = report::write_error(&logs, &report) {
            term::warn(&format!("{write_error:#}"));
        }
        // `--json` promises the report on stdout, this one too.
        if options.json
            && let Ok(json) = serde_json::to_string_pretty(&report)
        {
            term::stdout(&json);
        }
        // Nor is an earlier run's SARIF or JUnit file uploaded as this one's.
        crate::sarif::remove(&logs);
        crate::junit::remove(&logs);
        // Never left pending: a run that could not finish says so on every context, also
        // when it stopped before reading the `[github]` settings (a broken meshgate.toml).
        if matches!(github, crate::github::Session::Off) {
            github = crate::github::Session::start(&config::GithubPolicy::default())
                .unwrap_or(crate::github::Session::Off);
        }
        if let crate::github::Session::On(connected) = &mut github {
            connected.post_error(&options.gates, &report.error);
        }
    }
    github.report_problems();
    result
}

fn run_gates(
    sh: &xshell::Shell,
    root: &Path,
    logs: &Path,
    started_at: SystemTime,
    options: &Options,
    github: &mut crate::github::Session,
) -> anyhow::Result<i32> {
    let stamp = report::compact_timestamp(started_at);
    let clock = Instant::now();
    let mut config = match &options.config {
        Some(file) => config::load_file(file)?,
        None => config::load(root)?,
    };
    if let Some(enforce) = options.enforce_centralized_logs {
        config.hygiene.enforce_centralized_logs = enforce;
    }
    let mode = options.mode.unwrap_or(config.mode);
    let mut mesh = discover::discover(root, config)?;
    *github = match crate::github::Session::start(&mesh.config.github) {
        Ok(session) => session,
        Err(error) => {
            crate::github::Session::Silent { reason: format!("{error:#}"), pull_request: None }
        }
    };
    if let crate::github::Session::On(connected) = github {
        connected.post_pending(&options.gates);
    }
    let on_default_branch = match github {
        crate::github::Session::On(connected) => connected.context.default_branch,
        _ => false,
    };
    // Read before any gate runs, so a broken exception file stops the run at once.
    let exceptions = crate::exceptions::load(&mesh.config.exceptions.file, root)?;
    if options.infer_contracts {
        crate::infer::infer_contracts(&mut mesh);
    }
    let revision = revision(sh);
    // The service logs of an earlier run would read as this run's, which may start no mesh.
    let services_logs = logs.join("services");
    if let Err(error) = std::fs::remove_dir_all(&services_logs)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        return Err(error).with_context(|| {
            format!("failed to clear {} of an earlier run", services_logs.display())
        });
    }
    let mut metrics = Metrics::new(&revision, &stamp, run_kind(options));
    metrics.default_branch = on_default_branch;
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
    let mut hygiene = HygieneParts {
        scope: options.runtime_only.then_some("runtime checks only"),
        ..HygieneParts::default()
    };
    if selected(Gate::ArtifactHygiene) && !options.runtime_only {
        let clock = Instant::now();
        match artifact_hygiene::check_static(&mesh) {
            Ok((findings, detail)) => {
                hygiene.findings = findings;
                hygiene.detail = detail;
            }
            Err(error) => hygiene.not_computed = Some(format!("{error:#}")),
        }
        hygiene.duration += clock.elapsed();
    }
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
        state: crate::verdict::State::Success,
        description: String::new(),
        strict_verdict: report::Verdict::Passed,
        emergency: None,
        audit_head: None,
        pull_request: github.pull_request(),
        exit_code: 0,
    };

    let needs_mesh = !options.static_only
        && (selected(Gate::ServiceHealth)
            || selected(Gate::NetworkContracts)
            || selected(Gate::ArtifactHygiene));
    let network_failed = network_static.status == crate::gates::Status::Failed;
    let mut network = network_static;
    // One connection to the engine serves the whole run; failing to make it is a gate that
    // cannot run, not bad input.
    let engine = (needs_mesh && !network_failed).then(connect_engine);
    if needs_mesh && network_failed {
        term::warn("the static network contracts fail: the mesh is not started");
        network.scope = Some("static checks only: the mesh was not started");
        hygiene.scope = Some("static checks only: the mesh was not started");
        if selected(Gate::ServiceHealth) {
            reports.push(GateReport::not_computed(
                Gate::ServiceHealth,
                "network contracts failed statically",
                std::time::Duration::ZERO,
            ));
        }
    } else if let Some(Err(error)) = &engine {
        // Not a bad input but a gate that cannot run: never a pass, and strict mode fails on it.
        term::error(&format!("{error:#}"));
        let reason = "Docker is unreachable".to_owned();
        network = combine_network(network, Err(reason.clone()), options.runtime_only);
        if selected(Gate::ServiceHealth) {
            reports.push(GateReport::not_computed(Gate::ServiceHealth, reason, Duration::ZERO));
        }
    } else if let Some(Ok((runtime, docker))) = &engine {
        let engine = Engine { runtime, docker };
        let (health, runtime) =
            run_mesh(logs, &mesh, options, &engine, &mut report, &mut metrics, &mut hygiene)?;
        network = combine_network(network, runtime, options.runtime_only);
        if selected(Gate::ServiceHealth) {
            reports.push(health);
        }
    } else {
        network.scope = Some("static checks only");
        hygiene.scope = Some("static checks only");
        if selected(Gate::ServiceHealth) {
            reports.push(GateReport::skipped(Gate::ServiceHealth, "--static"));
        }
    }
    if selected(Gate::NetworkContracts) {
        reports.insert(0, network);
    }
    if selected(Gate::ArtifactHygiene) {
        reports.push(hygiene.into_report());
    }
    if selected(Gate::Coverage) {
        reports.push(run_coverage(root, logs, &mesh, options, &mut metrics)?);
    }

    teardown::ensure_not_interrupted()?;
    // Findings name files relative to the repository, as GitHub and editors expect.
    for finding in reports.iter_mut().flat_map(|report| report.findings.iter_mut()) {
        finding.location = finding.location.relative_to(root);
    }
    // Exceptions, then what each outcome means under its mode: the one path every output
    // (terminal, report, summary, statuses) reads from.
    crate::exceptions::apply(
        &mut reports,
        &exceptions,
        SystemTime::now(),
        mesh.config.exceptions.warn_within,
    );
    let modes = crate::verdict::Modes::new(&mesh.config, options.mode);
    // Approvals of warnings come from GitHub (a review of the head commit or the approval
    // label, by someone with write access); elsewhere a gate under `require_approval` stays
    // failing.
    let approver = match github {
        crate::github::Session::On(connected) if modes.require_approval => connected.approval(),
        _ => None,
    };
    let approval = approver.as_deref();
    for gate in &mut reports {
        gate.decision = Some(crate::verdict::decide_gate(gate, &modes, approval));
    }
    let overall = crate::verdict::decide_run(
        reports.iter().filter_map(|gate| Some((gate.gate, gate.decision.as_ref()?))),
    );
    report.state = overall.state;
    report.description = overall.description;
    report.strict_verdict =
        if overall.strict_blocks { report::Verdict::Failed } else { report::Verdict::Passed };
    if overall.blocks {
        report.verdict = report::Verdict::Failed;
        report.exit_code = 1;
        let remote = match github {
            crate::github::Session::On(connected) if connected.context.pull_request.is_some() => {
                Some(connected.override_grant(mesh.config.emergency.max_expiry, SystemTime::now()))
            }
            _ => None,
        };
        match use_override(sh, &mesh.config, &report.revision, &reports, &modes, remote) {
            Ok((used, head)) => {
                term::warn(&used.describe());
                report.verdict = report::Verdict::Overridden;
                report.exit_code = 0;
                report.state = crate::verdict::State::Success;
                report.description = crate::verdict::truncate(
                    &format!("{} ({})", used.describe(), report.description),
                    140,
                );
                report.emergency = Some(used);
                report.audit_head = Some(head);
            }
            // Said whenever an override was asked for, so a refused one is never silent.
            Err(reason) if mesh.config.emergency.audit_log.exists() => {
                term::note(&format!("no emergency override: {reason}"));
            }
            Err(reason) => term::verbose(&format!("no emergency override: {reason}")),
        }
    }
    let (verdict, exit_code) = (report.verdict, report.exit_code);
    report.gates = reports;
    report::write_all(logs, &report, root)?;
    crate::sarif::write(logs, &report.gates, &modes)?;
    crate::junit::write(logs, &report.gates, &modes)?;
    metrics.record_gates(&report.gates);
    metrics.project = report.project.clone();
    if let Some(engine) = &report.engine {
        metrics.tools.insert("docker".into(), engine.clone());
    }
    if let Some(compose) = &report.compose {
        metrics.tools.insert("compose".into(), compose.clone());
    }
    metrics.step("total", started_at.elapsed().unwrap_or_default());
    let github_policy = &mesh.config.github;
    let remember =
        github_policy.issue_after_runs.max(github_policy.issue_close_after_runs) as usize;
    let (summary_text, recent) = write_metrics(
        logs,
        &mesh.config.metrics,
        &metrics,
        &report.description,
        &report.gates,
        remember,
        &modes,
    )?;
    if let crate::github::Session::On(connected) = github {
        connected.post_final(&report);
        connected.upsert_comment(&summary_text);
        connected.track_issues(&report.gates, &recent);
    }
    for gate in report.gates.iter().filter(|gate| !gate.matrix.is_empty()) {
        term::block(&report::render_matrix(&gate.matrix));
    }
    for summary in report.gates.iter().filter_map(|gate| gate.coverage.as_ref()) {
        term::block(&coverage::render_table(summary));
    }
    term::block(&report::render_table(&report.gates, &modes));
    // Workflow commands on stdout would corrupt the JSON there.
    if crate::annotations::on_github_actions() && !options.json {
        crate::annotations::emit(&report.gates, &modes);
    }
    if options.json {
        term::stdout(
            &serde_json::to_string_pretty(&report).context("failed to encode the report")?,
        );
    }
    let summary = match (verdict, mode) {
        (report::Verdict::Passed, Mode::Monitoring) => {
            format!("gates measured (monitoring mode): {}", report.description)
        }
        (report::Verdict::Passed, Mode::Warning) => {
            format!("gates {} (warning mode)", report.description)
        }
        _ => format!("gates {}", report.description),
    };
    term::status(
        "Finished",
        &format!("{summary}; report at {}", logs.join("report.json").display()),
    );
    Ok(exit_code)
}

/// Who runs the gates, for the audit log: the Actions actor, else the login, else git's
/// configured user.
pub fn operator() -> String {
    ["GITHUB_ACTOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .or_else(|| {
            let sh = xshell::Shell::new().ok()?;
            let name =
                xshell::cmd!(sh, "git config user.name").quiet().ignore_stderr().read().ok()?;
            let email = xshell::cmd!(sh, "git config user.email")
                .quiet()
                .ignore_stderr()
                .read()
                .unwrap_or_default();
            Some(format!("{name} <{email}> (git config)"))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Uses a live emergency override of this exact commit, recording the use in the audit log.
/// `Err` says why none applies.
fn use_override(
    sh: &xshell::Shell,
    config: &config::Config,
    revision: &str,
    reports: &[GateReport],
    modes: &crate::verdict::Modes,
    remote: Option<Result<crate::audit::Grant, String>>,
) -> Result<(report::OverrideUsed, String), String> {
    let log = &config.emergency.audit_log;
    let now = SystemTime::now();
    let grant = match remote {
        // On a pull request only what the API says counts: the label, who added it, and
        // their permission. The grant is recorded before its use.
        Some(Ok(grant)) => {
            crate::audit::append(log, &crate::audit::Event::Grant(grant.clone()))
                .map_err(|error| format!("{error:#}"))?;
            grant
        }
        Some(Err(reason)) => {
            term::warn(&format!("no emergency override: {reason}"));
            return Err(reason);
        }
        None => {
            if !log.exists() {
                return Err("no override was granted".into());
            }
            if revision.ends_with("-dirty") || revision == "unknown" {
                return Err("the working tree has uncommitted changes: an override covers a commit, not a tree".into());
            }
            let verified = crate::audit::verify(log).map_err(|error| {
                term::error(&format!("{error:#}"));
                "the audit log is broken, so no override in it is trusted".to_owned()
            })?;
            let grant = crate::audit::live_grant(&verified.events, revision, now)?;
            let author = crate::audit::Author::of_commit(sh, revision)
                .map_err(|error| format!("{error:#}"))?;
            crate::audit::recheck_local(grant, &author, config.emergency.max_expiry, now)?
        }
    };
    let revision = grant.commit.clone();
    let revision = revision.as_str();
    let blocking: Vec<&GateReport> =
        reports.iter().filter(|gate| gate.decision.as_ref().is_some_and(|d| d.blocks)).collect();
    let findings = blocking
        .iter()
        .flat_map(|gate| {
            gate.findings
                .iter()
                .filter(|f| crate::verdict::blocks(modes, gate.gate, f))
                .map(|f| format!("{} {}", f.rule.id(), f.fingerprint()))
        })
        .collect();
    let entry = crate::audit::Use {
        commit: revision.to_owned(),
        at: crate::audit::rfc3339(now),
        by: operator(),
        gates: blocking.iter().map(|gate| gate.gate.name().to_owned()).collect(),
        findings,
        reason: grant.reason.clone(),
        approver: grant.approver.clone(),
        expires_at: grant.expires_at.clone(),
        source: grant.source.clone(),
        verified: grant.verified,
    };
    let head = crate::audit::append(log, &crate::audit::Event::Use(entry))
        .map_err(|error| format!("{error:#}"))?;
    let used = report::OverrideUsed {
        approver: grant.approver,
        reason: grant.reason,
        expires_at: grant.expires_at,
        source: grant.source,
        verified: grant.verified,
    };
    Ok((used, head))
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
    remember_runs: usize,
    modes: &crate::verdict::Modes,
) -> anyhow::Result<(String, Vec<Vec<String>>)> {
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
    // The fingerprints of earlier default-branch runs of this kind, newest first: what
    // tells a finding that persists, and one that has gone.
    let recent: Vec<Vec<String>> = match &history {
        Some(history) => history
            .recent_default_branch_runs(&metrics.kind, remember_runs)
            .into_iter()
            .map(|record| record.fingerprints.clone())
            .collect(),
        None => Vec::new(),
    };
    let comparisons = metrics::compare(metrics, previous, &policy.tolerance);
    let mut summary = metrics::summary_markdown(verdict, gates, metrics, previous, &comparisons);
    summary.push_str(&crate::annotations::findings_markdown(gates, modes));
    let summary = crate::annotations::cap_summary(summary, crate::annotations::SUMMARY_LIMIT);
    report::write_atomically(&logs.join("summary.md"), summary.as_bytes())?;
    let regressions: Vec<&str> =
        comparisons.iter().filter(|c| c.regressed).map(|c| c.key.as_str()).collect();
    if !regressions.is_empty() {
        term::warn(&format!(
            "{} figure(s) worse than the last run of this kind beyond the tolerance: {} (see {})",
            regressions.len(),
            regressions.join(", "),
            logs.join("summary.md").display()
        ));
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())
        && let Err(error) = append_to(Path::new(&path), &summary)
    {
        term::warn(&format!("could not add to the job summary: {error:#}"));
    }
    if let Some(history) = &mut history
        && let Err(error) = history.append(metrics::HistoryRecord::of(metrics, gates))
    {
        term::warn(&format!("{error:#}; this run is not kept in the history"));
    }
    Ok((summary, recent))
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

/// The artifact hygiene gate's findings as its static and runtime halves add them.
#[derive(Default)]
struct HygieneParts {
    findings: Vec<Finding>,
    detail: Vec<String>,
    duration: std::time::Duration,
    scope: Option<&'static str>,
    /// Why a part could not run.
    not_computed: Option<String>,
}

impl HygieneParts {
    fn into_report(self) -> GateReport {
        let mut report = GateReport::from_findings(
            Gate::ArtifactHygiene,
            self.findings,
            self.duration,
            self.detail,
        );
        report.scope = self.scope;
        if let Some(reason) = self.not_computed {
            report.status = crate::gates::Status::NotComputed(reason);
        }
        report
    }
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

/// The async runtime and a connection to the Docker engine; the error says where the engine
/// was looked for.
fn connect_engine() -> anyhow::Result<(tokio::runtime::Runtime, bollard::Docker)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let docker = runtime.block_on(docker::connect())?;
    Ok((runtime, docker))
}

/// What the runtime half of a run talks to the engine through.
struct Engine<'a> {
    runtime: &'a tokio::runtime::Runtime,
    docker: &'a bollard::Docker,
}

/// Builds, starts, waits for and tears down the mesh; returns the health gate's report and
/// the network gate's runtime half.
fn run_mesh(
    logs: &Path,
    mesh: &Mesh,
    options: &Options,
    connection: &Engine<'_>,
    report: &mut Report,
    metrics: &mut Metrics,
    hygiene: &mut HygieneParts,
) -> anyhow::Result<(GateReport, RuntimeResult)> {
    let (runtime, docker) = (connection.runtime, connection.docker);
    let root = mesh.root.as_path();
    let engine = runtime.block_on(docker::describe_engine(docker))?;
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
    let images =
        runtime.block_on(crate::images::build_images(docker, mesh, &binaries, &report.revision))?;
    drop(progress);
    metrics.step("build images", clock.elapsed());
    let rebuilt = images.services.iter().filter(|image| image.rebuilt).count();
    term::status("Images", &format!("{} ready ({rebuilt} rebuilt)", images.services.len()));
    let judge_hygiene = options.gates.contains(&Gate::ArtifactHygiene);
    if judge_hygiene {
        let clock = Instant::now();
        let (findings, detail) = runtime.block_on(artifact_hygiene::runtime::check_images(
            docker,
            mesh,
            &images.services,
            &report.revision,
        ))?;
        hygiene.findings.extend(findings);
        hygiene.detail.extend(detail);
        hygiene.duration += clock.elapsed();
    }

    let project = project_name();
    report.project = Some(project.clone());
    let guard = TeardownGuard;
    term::status("Starting", &format!("mesh as compose project {project}"));
    let started = start_and_wait(runtime, docker, &compose, mesh, &project, &images)?;
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
            docker,
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
            runtime.block_on(service_health::stop_containers(docker, mesh, &project))?;
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
    let saved = runtime.block_on(save_service_logs(docker, &project, &logs_dir));
    if let Err(error) = &saved {
        term::warn(&format!("could not save every service's log: {error:#}"));
    }
    if judge_hygiene && mesh.config.hygiene.enforce_centralized_logs {
        // Before teardown: the engine's diff needs the containers.
        let clock = Instant::now();
        match saved {
            Ok(()) => check_saved_logs(mesh, &logs_dir, hygiene)?,
            Err(error) => hygiene.not_computed = Some(format!("service logs not saved: {error:#}")),
        }
        let (findings, detail) = runtime
            .block_on(artifact_hygiene::runtime::check_container_changes(docker, mesh, &project))?;
        hygiene.findings.extend(findings);
        hygiene.detail.extend(detail);
        hygiene.duration += clock.elapsed();
    } else if judge_hygiene {
        hygiene.scope = Some("centralized logs not enforced (meshgate.toml)");
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
    images: &crate::images::Images,
) -> anyhow::Result<Started> {
    let files = run_files(mesh, images);
    let clock = Instant::now();
    let up = compose_up(compose, mesh, &files, project, &[]);
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
        outcome.findings = runtime.block_on(service_health::check_readiness(
            docker,
            mesh,
            project,
            &images.probe,
        ))?;
        readiness = Some(clock.elapsed());
    }
    Ok(Started { outcome, up_to_healthy, readiness })
}

/// The Compose files of a run: the mesh's, then the override that pins the images built for
/// it.
pub fn run_files(mesh: &Mesh, images: &crate::images::Images) -> Vec<PathBuf> {
    let mut files = mesh.project.files.clone();
    files.push(images.override_file.clone());
    files
}

/// `compose up --detach` of `files` with the mesh's active profiles and the images built
/// here (nothing built or pulled by Compose), plus `extra` arguments.
pub fn compose_up(
    compose: &tools::Compose,
    mesh: &Mesh,
    files: &[PathBuf],
    project: &str,
    extra: &[&str],
) -> crate::process::ProcessBuilder {
    let mut up = compose.command(project, files).args([
        "up",
        "--detach",
        "--no-build",
        "--pull",
        "never",
        "--remove-orphans",
    ]);
    up = up.args(extra.iter().copied());
    for profile in &mesh.project.profiles {
        up = up.args(["--profile", profile]);
    }
    up
}

/// Every active service's saved output against the log format.
fn check_saved_logs(mesh: &Mesh, dir: &Path, hygiene: &mut HygieneParts) -> anyhow::Result<()> {
    for service in mesh.project.active_services() {
        let file = dir.join(format!("{}.log", service.name));
        let Ok(text) = std::fs::read_to_string(&file) else {
            hygiene.detail.push(format!("{}: no output saved", service.name));
            continue;
        };
        hygiene.detail.push(format!(
            "{}: {} line(s) of output",
            service.name,
            text.lines().count()
        ));
        if let Some(finding) =
            artifact_hygiene::runtime::check_log_lines(&service.name, &file, &text)
        {
            hygiene.findings.push(finding);
        }
    }
    Ok(())
}

/// Writes each container's output to `<dir>/<service>.log`.
async fn save_service_logs(
    docker: &bollard::Docker,
    project: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    for container in docker::project_containers(docker, project).await? {
        let (Some(service), Some(id)) = (docker::service_of(&container), &container.id) else {
            continue;
        };
        let text = docker::container_logs(docker, id).await?;
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
