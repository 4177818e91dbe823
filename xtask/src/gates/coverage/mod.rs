//! The coverage gate: one instrumented test run of the workspace (cargo-llvm-cov), then line
//! and region coverage per package from its JSON export, judged against each package's
//! threshold and, when configured, against its last recorded figure (the ratchet).
//!
//! Scope: every workspace member except the excluded packages (by default the gates' own
//! tooling, `xtask` and `meshgate-probe`, whose tests start Docker meshes), excluded from the
//! test run and from the figures. Files are attributed to packages through their manifest
//! directories (see `export`). Thresholds: `gates.coverage` in meshgate.toml, overridden per
//! service by `coverage = { lines = N, regions = M }` in the crate's
//! `[package.metadata.meshgate]`.
//!
//! What the figures cover: the host-run tests, including the service binaries those tests
//! start (`CARGO_BIN_EXE_*`), which write their profile when they exit on their own or on
//! SIGTERM; a process killed with SIGKILL writes none. The binaries in the Compose mesh are
//! separate uninstrumented builds and are never counted. Doctests are measured only on a
//! nightly toolchain (`gates.coverage.doctests`); otherwise the report says they are not.
//!
//! Profiles that cannot be merged (a truncated file, another profile version) are skipped,
//! listed with their cause, and make the run degraded (a warning, or an error with
//! `gates.coverage.skipped_profiles = "fail"`); when none can be merged, or the run left
//! none, there is no coverage data and the gate cannot run.
//!
//! FIXME: profiles are not attributed to the binaries that wrote them, so a service binary
//! that a test started and then killed with SIGKILL shows as uncovered code rather than as
//! "this binary left no profile".

pub mod export;
pub mod toolchain;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use crate::discover::Mesh;
use crate::finding::{Finding, Rule};
use crate::gates::{Gate, GateReport};
use crate::location::{InputError, InputErrors, Location};
use crate::metrics::{CoverageMetrics, History};
use crate::process::ProcessBuilder;
use crate::term;

use export::{PackageDir, Totals};

/// Variables through which a process running under cargo-llvm-cov passes instrumentation
/// on to its children. Removed from the gate's own cargo runs, so that gates run under
/// cargo-llvm-cov neither nest one instrumented run in another nor instrument tool installs.
const INSTRUMENTATION_ENV: &[&str] = &[
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "LLVM_PROFILE_FILE",
    "CARGO_ENCODED_RUSTFLAGS",
    "__LLVM_PROFILE_RT_INIT_ONCE",
];

/// The instrumentation variables of this process: the fixed ones and every `CARGO_LLVM_COV*`
/// and `__CARGO_LLVM_COV*` variable.
pub fn instrumentation_env() -> Vec<String> {
    let mut variables: Vec<String> =
        INSTRUMENTATION_ENV.iter().map(|variable| (*variable).to_owned()).collect();
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_LLVM_COV") || key.starts_with("__CARGO_LLVM_COV") {
            variables.push(key.into_owned());
        }
    }
    variables
}

/// What the gate measured, for the terminal, `report.json` and the gate's log.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub tool: String,
    pub llvm_tools: String,
    /// Whether doctests were instrumented, in words.
    pub doctests: String,
    /// Profiles skipped at the merge, with their cause: a degraded run when not empty.
    pub skipped_profiles: Vec<SkippedProfile>,
    pub excluded_packages: Vec<String>,
    pub export: PathBuf,
    pub rows: Vec<Row>,
}

/// One package's figures and verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The Compose service the package builds; `None` for a library.
    pub service: Option<String>,
    pub package: String,
    pub lines_percent: Option<f64>,
    pub regions_percent: Option<f64>,
    #[serde(flatten)]
    pub totals: Totals,
    pub threshold_lines: f64,
    pub threshold_regions: Option<f64>,
    /// The line figure of the last recorded run that had one.
    pub previous_lines_percent: Option<f64>,
    pub verdict: Verdict,
}

impl Row {
    /// The name the row goes by: its service, else its package.
    pub fn name(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.package)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    BelowThreshold,
    Dropped,
    NoData,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Passed => "ok",
            Verdict::BelowThreshold => "BELOW",
            Verdict::Dropped => "DROPPED",
            Verdict::NoData => "NO DATA",
        }
    }
}

/// A profile llvm-profdata could not merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedProfile {
    pub file: String,
    pub cause: String,
}

/// The workspace the gate measures.
struct Scope {
    workspace: PathBuf,
    target_dir: PathBuf,
    packages: Vec<PackageDir>,
    counted: Vec<String>,
    excluded: Vec<String>,
}

/// Runs the gate on the mesh's workspace. `root` holds the tool directory; the export and
/// the tool's output go under `logs/coverage/`.
pub fn run(root: &Path, logs: &Path, mesh: &Mesh) -> anyhow::Result<GateReport> {
    let clock = Instant::now();
    let policy = &mesh.config.coverage;
    let workspace = mesh.config.workspace.clone().unwrap_or_else(|| mesh.root.clone());
    let scope = read_scope(&workspace, mesh)?;
    check_service_names(mesh, &scope)?;
    let doctests = check_doctests(&workspace, policy.doctests)?;
    let llvm = toolchain::ensure_llvm_tools(&workspace)?;
    let tool = toolchain::ensure_cargo_llvm_cov(root)?;

    let out_dir = logs.join("coverage");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("failed to create {}", out_dir.display()))?;
    let export_path = out_dir.join("export.json");
    // A failed run must not leave an earlier run's export to be read as this one's.
    let _ = std::fs::remove_file(&export_path);
    let command = llvm_cov_command(&tool.program, &scope, policy.doctests)
        .arg("--output-path")
        .arg(&export_path);

    let lock = lock_workspace(&scope.target_dir)?;
    term::status(
        "Measuring",
        &format!(
            "coverage of {} package(s) with cargo-llvm-cov {} (one instrumented test run)",
            scope.counted.len(),
            tool.version
        ),
    );
    let progress = term::Progress::start("running the instrumented tests");
    let output = command.output();
    drop(progress);
    drop(lock);
    let output = output?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let transcript = out_dir.join("cargo-llvm-cov.log");
    let text =
        format!("$ {command}\n\n{}\n{stderr}", String::from_utf8_lossy(&output.stdout).trim_end());
    crate::report::write_atomically(&transcript, text.as_bytes())?;

    let merge = read_merge_messages(&stderr);
    if !output.status.success() {
        let findings = failed_tests(&stderr, &scope, &transcript);
        if findings.is_empty() {
            return Err(run_error(&command, &stderr, &merge, &llvm, &transcript));
        }
        let detail =
            vec![format!("instrumented test run failed; its output: {}", transcript.display())];
        return Ok(GateReport::from_findings(Gate::Coverage, findings, clock.elapsed(), detail));
    }

    let export = export::read(&export_path)?;
    let attribution = export::attribute(
        &export,
        &scope.packages,
        &scope.counted,
        &scope.workspace,
        &policy.exclude_set,
    );
    let history = match History::load(&mesh.config.metrics.history) {
        Ok(history) => Some(history),
        Err(error) => {
            term::warn(&format!("{error:#}; coverage is not compared with earlier runs"));
            None
        }
    };
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for (package, totals) in &attribution.packages {
        let (service, thresholds) = thresholds(mesh, package);
        let name = service.as_deref().unwrap_or(package);
        let previous = history.as_ref().and_then(|history| last_lines_percent(history, name));
        let ratchet = policy.ratchet.as_ref();
        let (row, mut row_findings) =
            judge(package, service.clone(), &thresholds, ratchet, *totals, previous);
        rows.push(row);
        findings.append(&mut row_findings);
    }
    if !merge.skipped.is_empty() {
        let mut finding = skipped_profiles_finding(mesh, &merge.skipped, &transcript);
        if policy.skipped_profiles == crate::config::SkippedProfiles::Fail {
            finding.severity = crate::finding::Severity::Error;
        }
        findings.push(finding);
    }

    let summary = Summary {
        tool: format!("cargo-llvm-cov {}", tool.version),
        llvm_tools: format!(
            "LLVM {} ({}; rustc LLVM {})",
            llvm.version, llvm.source, llvm.rustc_llvm
        ),
        doctests,
        skipped_profiles: merge.skipped,
        excluded_packages: scope.excluded.clone(),
        export: export_path,
        rows,
    };
    let mut detail: Vec<String> = render_table(&summary).lines().map(str::to_owned).collect();
    detail.push(format!("export: {}", summary.export.display()));
    detail.push(format!("tool output: {}", transcript.display()));
    for file in &attribution.outside {
        detail.push(format!("not counted, under no workspace package: {}", file.display()));
    }
    for file in &attribution.excluded {
        detail.push(format!("not counted, excluded by gates.coverage.exclude: {}", file.display()));
    }
    if !attribution.outside.is_empty() {
        term::verbose(&format!(
            "{} file(s) of the export are under no workspace package and are not counted",
            attribution.outside.len()
        ));
    }
    let mut report = GateReport::from_findings(Gate::Coverage, findings, clock.elapsed(), detail);
    report.coverage = Some(Box::new(summary));
    Ok(report)
}

/// The figures to record in the metrics, by service (or package for a library).
pub fn metrics_of(summary: &Summary) -> BTreeMap<String, CoverageMetrics> {
    summary
        .rows
        .iter()
        .filter_map(|row| {
            let lines_percent = row.lines_percent?;
            Some((
                row.name().to_owned(),
                CoverageMetrics { lines_percent, regions_percent: row.regions_percent },
            ))
        })
        .collect()
}

/// The workspace's packages from cargo metadata, and which the gate counts.
fn read_scope(workspace: &Path, mesh: &Mesh) -> anyhow::Result<Scope> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(workspace.join("Cargo.toml"))
        .no_deps()
        .exec()
        .with_context(|| {
            format!("failed to read the workspace {} with `cargo metadata`", workspace.display())
        })?;
    let packages: Vec<PackageDir> = metadata
        .workspace_packages()
        .iter()
        .map(|package| PackageDir {
            name: package.name.to_string(),
            manifest_dir: package
                .manifest_path
                .parent()
                .map_or_else(|| workspace.to_path_buf(), |dir| dir.as_std_path().to_path_buf()),
        })
        .collect();
    let policy = &mesh.config.coverage;
    let unknown: Vec<InputError> = policy
        .exclude_packages
        .iter()
        .filter(|(name, location)| {
            // The default list names the tooling of this repository; elsewhere it may be absent.
            location.line > 0 && !packages.iter().any(|package| package.name == *name)
        })
        .map(|(name, location)| {
            InputError::new(
                location.clone(),
                format!(
                    "`gates.coverage.exclude_packages` names `{name}`, no package of the workspace"
                ),
                format!(
                    "name workspace packages: {}",
                    packages
                        .iter()
                        .map(|package| package.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(InputErrors(unknown).into());
    }
    let is_excluded =
        |name: &str| policy.exclude_packages.iter().any(|(excluded, _)| excluded == name);
    let counted: Vec<String> = packages
        .iter()
        .map(|package| package.name.clone())
        .filter(|name| !is_excluded(name))
        .collect();
    let excluded: Vec<String> = packages
        .iter()
        .map(|package| package.name.clone())
        .filter(|name| is_excluded(name))
        .collect();
    anyhow::ensure!(
        !counted.is_empty(),
        "`gates.coverage.exclude_packages` leaves no package of {} to measure",
        workspace.display()
    );
    Ok(Scope {
        workspace: workspace.to_path_buf(),
        target_dir: metadata.target_directory.into_std_path_buf(),
        packages,
        counted,
        excluded,
    })
}

/// Every `[gates.coverage.services.<name>]` must name a measured service or library.
fn check_service_names(mesh: &Mesh, scope: &Scope) -> anyhow::Result<()> {
    let names: Vec<String> = scope
        .counted
        .iter()
        .map(|package| {
            mesh.contracts
                .values()
                .find(|contract| contract.package.as_ref().is_some_and(|p| p.name == *package))
                .map_or_else(|| package.clone(), |contract| contract.service.clone())
        })
        .collect();
    let unknown: Vec<InputError> = mesh
        .config
        .coverage
        .services
        .iter()
        .filter(|(name, _)| !names.contains(name))
        .map(|(name, settings)| {
            InputError::new(
                settings.location.clone(),
                format!("`gates.coverage.services.{name}` names no measured service or library"),
                format!("use one of: {}", names.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() { Ok(()) } else { Err(InputErrors(unknown).into()) }
}

/// Doctests need `--doctests` on a nightly toolchain; on stable they are left out and the
/// report says so.
fn check_doctests(workspace: &Path, wanted: bool) -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let verbose = ProcessBuilder::new(&rustc).arg("-vV").dir(workspace).read()?;
    let release = verbose
        .lines()
        .find_map(|line| line.strip_prefix("release: "))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let nightly = release.contains("nightly") || release.contains("-dev");
    match (wanted, nightly) {
        (true, true) => Ok(format!("instrumented (rustc {release})")),
        (true, false) => anyhow::bail!(
            "`gates.coverage.doctests = true` needs a nightly toolchain, and rustc is {release}: \
             run the gate with a nightly toolchain that has llvm-tools, or remove the key"
        ),
        (false, _) => Ok(format!(
            "not instrumented (rustc {release}): code tested only by doc examples counts as \
             uncovered; `gates.coverage.doctests = true` measures them on nightly"
        )),
    }
}

/// `cargo llvm-cov` testing and reporting the scope in one run. `--failure-mode all` makes
/// the merge skip unreadable profiles (each named in a warning) instead of failing on one.
fn llvm_cov_command(program: &Path, scope: &Scope, doctests: bool) -> ProcessBuilder {
    let mut command =
        ProcessBuilder::new(program).args(["llvm-cov", "--workspace"]).dir(&scope.workspace);
    for package in &scope.excluded {
        command = command.args(["--exclude", package]);
    }
    command = command.args(["--locked", "--json", "--summary-only", "--failure-mode", "all"]);
    if doctests {
        command = command.arg("--doctests");
    }
    for variable in instrumentation_env() {
        command = command.env_remove(variable);
    }
    command
        .env("CARGO_TERM_COLOR", "never")
        // The gate installs what is missing itself; the tool must never stop to ask.
        .env("CARGO_LLVM_COV_SETUP", "no")
}

/// The bare `cargo llvm-cov` run the benchmark compares the gate with: the same workspace,
/// the same packages excluded, the same export into `out`, nothing else.
pub fn bare_command(program: &Path, mesh: &Mesh, out: &Path) -> anyhow::Result<ProcessBuilder> {
    let workspace = mesh.config.workspace.clone().unwrap_or_else(|| mesh.root.clone());
    let scope = read_scope(&workspace, mesh)?;
    let mut command =
        ProcessBuilder::new(program).args(["llvm-cov", "--workspace"]).dir(&workspace);
    for package in &scope.excluded {
        command = command.args(["--exclude", package]);
    }
    Ok(command
        .args(["--locked", "--json", "--summary-only", "--output-path"])
        .arg(out)
        .env("CARGO_TERM_COLOR", "never"))
}

/// Serialises instrumented runs of one workspace: they share the profile folder, and each
/// run starts by deleting the profiles it finds there.
fn lock_workspace(target_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(target_dir)
        .with_context(|| format!("failed to create {}", target_dir.display()))?;
    let path = target_dir.join("meshgate-coverage.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    if file.try_lock().is_err() {
        term::status(
            "Waiting",
            &format!("for another coverage run of this workspace ({})", path.display()),
        );
        file.lock().with_context(|| format!("failed to lock {}", path.display()))?;
    }
    Ok(file)
}

/// What llvm-profdata said about the merge.
#[derive(Debug, Default, PartialEq, Eq)]
struct MergeMessages {
    skipped: Vec<SkippedProfile>,
    /// No profile at all was found, or none could be merged.
    no_data: Option<String>,
}

fn read_merge_messages(stderr: &str) -> MergeMessages {
    let mut messages = MergeMessages::default();
    for line in stderr.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("warning: ")
            && let Some((file, cause)) = rest.split_once(".profraw: ")
        {
            messages.skipped.push(SkippedProfile {
                file: format!("{file}.profraw"),
                cause: cause.trim().to_owned(),
            });
        } else if line.contains("no profile can be merged")
            || line.contains("not found *.profraw files")
        {
            messages.no_data = Some(line.trim_start_matches("error: ").to_owned());
        }
    }
    messages
}

/// Whether a merge message says the profile was written by another LLVM version.
fn is_version_mismatch(cause: &str) -> bool {
    let cause = cause.to_ascii_lowercase();
    cause.contains("version") && (cause.contains("unsupported") || cause.contains("mismatch"))
}

/// The error for a run that failed without a failing test.
fn run_error(
    command: &ProcessBuilder,
    stderr: &str,
    merge: &MergeMessages,
    llvm: &toolchain::LlvmTools,
    transcript: &Path,
) -> anyhow::Error {
    if let Some(no_data) = &merge.no_data {
        let mut message = format!("no coverage data: {no_data}");
        if !merge.skipped.is_empty() {
            let _ = write!(message, "; every profile was unreadable:");
            for skipped in &merge.skipped {
                let _ = write!(message, "\n  {}: {}", skipped.file, skipped.cause);
            }
        }
        if merge.skipped.iter().any(|skipped| is_version_mismatch(&skipped.cause)) {
            let _ = write!(
                message,
                "\nthe profiles come from another LLVM version than the tools read (llvm-tools \
                 LLVM {}, rustc LLVM {}): remove the profiles with `cargo llvm-cov clean \
                 --workspace` and use llvm-tools of rustc's LLVM version",
                llvm.version, llvm.rustc_llvm
            );
        } else {
            let _ = write!(
                message,
                "\nthe instrumented tests wrote no readable profile: check that the tests ran \
                 and that no test process was killed (see {})",
                transcript.display()
            );
        }
        return anyhow::anyhow!(message);
    }
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    anyhow::anyhow!(
        "the instrumented test run `{command}` failed:\n{}\n(whole output: {})",
        tail.join("\n"),
        transcript.display()
    )
}

/// A finding per package whose tests failed in the instrumented run, from cargo's
/// "test failed, to rerun pass `-p <package> …`" lines.
fn failed_tests(stderr: &str, scope: &Scope, transcript: &Path) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for line in stderr.lines() {
        let Some((_, rerun)) = line.split_once("to rerun pass `") else { continue };
        let rerun = rerun.trim_end_matches('`');
        let Some(package) = rerun.strip_prefix("-p ").and_then(|rest| rest.split(' ').next())
        else {
            continue;
        };
        let Some(dir) = scope.packages.iter().find(|p| p.name == package) else { continue };
        if findings.iter().any(|finding| finding.service.as_deref() == Some(package)) {
            continue;
        }
        findings.push(
            Finding::new(
                Rule::CoverageTestsFailed,
                Location::file(dir.manifest_dir.join("Cargo.toml")),
                format!("tests of `{package}` failed in the instrumented run (`{rerun}`)"),
                format!(
                    "fix the failing test (`cargo test {rerun}`); the output is in {}",
                    transcript.display()
                ),
            )
            .service(package)
            .key("tests failed"),
        );
    }
    findings
}

/// The last recorded line figure of `name`, from the newest run that has one.
fn last_lines_percent(history: &History, name: &str) -> Option<f64> {
    history.last_figure(&format!("coverage_lines_percent{{service=\"{name}\"}}"))
}

/// The thresholds that apply to `package`, with where each is written.
struct Thresholds {
    lines: (f64, Location),
    regions: Option<(f64, Location)>,
}

fn thresholds(mesh: &Mesh, package: &str) -> (Option<String>, Thresholds) {
    let policy = &mesh.config.coverage;
    let contract = mesh
        .contracts
        .values()
        .find(|contract| contract.package.as_ref().is_some_and(|p| p.name == package));
    let mut thresholds = Thresholds {
        lines: (policy.lines, policy.lines_location.clone()),
        regions: policy.regions.map(|regions| (regions, policy.regions_location.clone())),
    };
    if let Some(contract) = contract {
        let at = contract.coverage_location.clone().unwrap_or_else(|| contract.location.clone());
        if let Some(lines) = contract.coverage_lines {
            thresholds.lines = (lines, at.clone());
        }
        if let Some(regions) = contract.coverage_regions {
            thresholds.regions = Some((regions, at));
        }
    }
    let service = contract.map(|contract| contract.service.clone());
    // The mesh's policy for the service has the last word.
    if let Some(settings) = policy.services.get(service.as_deref().unwrap_or(package)) {
        if let Some(lines) = settings.lines {
            thresholds.lines = (lines, settings.location.clone());
        }
        if let Some(regions) = settings.regions {
            thresholds.regions = Some((regions, settings.location.clone()));
        }
    }
    (service, thresholds)
}

/// One package's row and findings.
fn judge(
    package: &str,
    service: Option<String>,
    thresholds: &Thresholds,
    ratchet: Option<&(f64, Location)>,
    totals: Totals,
    previous_lines: Option<f64>,
) -> (Row, Vec<Finding>) {
    let name = service.clone().unwrap_or_else(|| package.to_owned());
    let mut findings = Vec::new();
    let mut verdict = Verdict::Passed;
    let finding = |rule, location: &Location, message: String, remedy: String, key: &str| {
        Finding::new(rule, location.clone(), message, remedy).service(&name).key(key)
    };

    let Some(lines) = totals.lines_percent() else {
        findings.push(finding(
            Rule::CoverageNoData,
            &thresholds.lines.1,
            format!(
                "no coverage data for `{name}`: none of its source lines is in the export of the \
                 instrumented run, so its coverage is unknown (not 0 %)"
            ),
            format!(
                "add tests to package `{package}`, check that `gates.coverage.exclude` does not \
                 drop all of its files, or list it in `gates.coverage.exclude_packages`"
            ),
            "no data",
        ));
        let row = Row {
            service,
            package: package.to_owned(),
            lines_percent: None,
            regions_percent: None,
            totals,
            threshold_lines: thresholds.lines.0,
            threshold_regions: thresholds.regions.as_ref().map(|(value, _)| *value),
            previous_lines_percent: previous_lines,
            verdict: Verdict::NoData,
        };
        return (row, findings);
    };
    let regions = totals.regions_percent();
    let html = format!("`cargo llvm-cov --package {package} --html` shows the uncovered lines");

    let (threshold, at) = &thresholds.lines;
    if lines < *threshold {
        verdict = Verdict::BelowThreshold;
        findings.push(finding(
            Rule::CoverageBelowThreshold,
            at,
            format!(
                "`{name}` has {lines:.1} % line coverage ({} of {} lines), below its threshold \
                 of {threshold} %",
                totals.lines_covered, totals.lines
            ),
            format!("add tests for the uncovered behaviour of `{package}` ({html}), or change the threshold here"),
            "lines below threshold",
        ));
    }
    if let (Some((threshold, at)), Some(regions)) = (&thresholds.regions, regions)
        && regions < *threshold
    {
        verdict = Verdict::BelowThreshold;
        findings.push(finding(
            Rule::CoverageBelowThreshold,
            at,
            format!(
                "`{name}` has {regions:.1} % region coverage ({} of {} regions), below its \
                 threshold of {threshold} %",
                totals.regions_covered, totals.regions
            ),
            format!("add tests for the uncovered branches of `{package}` ({html}), or change the threshold here"),
            "regions below threshold",
        ));
    }
    if let (Some((tolerance, at)), Some(before)) = (ratchet, previous_lines)
        && lines < before - tolerance
    {
        if verdict == Verdict::Passed {
            verdict = Verdict::Dropped;
        }
        findings.push(finding(
            Rule::CoverageDropped,
            at,
            format!(
                "`{name}` line coverage fell from {before:.1} % to {lines:.1} %, more than the \
                 ratchet's {tolerance} point(s)"
            ),
            format!("add tests for the code of `{package}` that lost coverage ({html}), or raise the ratchet here"),
            "lines dropped",
        ));
    }
    let row = Row {
        service,
        package: package.to_owned(),
        lines_percent: Some(lines),
        regions_percent: regions,
        totals,
        threshold_lines: thresholds.lines.0,
        threshold_regions: thresholds.regions.as_ref().map(|(value, _)| *value),
        previous_lines_percent: previous_lines,
        verdict,
    };
    (row, findings)
}

fn skipped_profiles_finding(mesh: &Mesh, skipped: &[SkippedProfile], transcript: &Path) -> Finding {
    let mut causes: Vec<String> =
        skipped.iter().map(|skipped| format!("{} ({})", skipped.file, skipped.cause)).collect();
    causes.truncate(5);
    Finding::new(
        Rule::CoverageProfilesSkipped,
        Location::file(&mesh.config.file),
        format!(
            "{} coverage profile(s) could not be merged and were skipped, so the figures are \
             from the rest (degraded run): {}",
            skipped.len(),
            causes.join(", ")
        ),
        format!(
            "a test process was probably killed while writing its profile; see {} and let \
             test processes exit or stop them with SIGTERM",
            transcript.display()
        ),
    )
    .key("profiles skipped")
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1} %"))
}

/// The per-service table, with the notes that explain the figures.
pub fn render_table(summary: &Summary) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["service", "lines", "regions", "threshold", "delta", "verdict"]);
    for row in &summary.rows {
        let name = match &row.service {
            Some(service) if *service != row.package => format!("{service} ({})", row.package),
            Some(service) => service.clone(),
            None => format!("{} (library)", row.package),
        };
        let lines = match row.lines_percent {
            Some(_) => format!(
                "{} ({}/{})",
                percent(row.lines_percent),
                row.totals.lines_covered,
                row.totals.lines
            ),
            None => "-".to_owned(),
        };
        let mut threshold = format!("lines ≥ {}", row.threshold_lines);
        if let Some(regions) = row.threshold_regions {
            let _ = write!(threshold, ", regions ≥ {regions}");
        }
        let delta = match (row.lines_percent, row.previous_lines_percent) {
            (Some(now), Some(before)) => format!("{:+.1}", now - before),
            _ => "-".to_owned(),
        };
        table.add_row([
            name,
            lines,
            percent(row.regions_percent),
            threshold,
            delta,
            row.verdict.text().to_owned(),
        ]);
    }
    let mut text = format!("{table}\n");
    let _ = writeln!(text, "coverage by {}, {}", summary.tool, summary.llvm_tools);
    let _ = writeln!(text, "doctests: {}", summary.doctests);
    if !summary.excluded_packages.is_empty() {
        let _ = writeln!(
            text,
            "not measured (gates.coverage.exclude_packages): {}",
            summary.excluded_packages.join(", ")
        );
    }
    if !summary.skipped_profiles.is_empty() {
        let _ = writeln!(
            text,
            "degraded: {} profile(s) skipped at the merge",
            summary.skipped_profiles.len()
        );
        for skipped in &summary.skipped_profiles {
            let _ = writeln!(text, "  {}: {}", skipped.file, skipped.cause);
        }
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What llvm-profdata 22 printed, merging with `--failure-mode=all`, for a profile cut
    /// after 200 bytes, a profile whose header names raw format 5, and a good one.
    const MERGE_DEGRADED: &str = "\
warning: /t/llvm-cov-target/wt6-1-2_0.profraw: raw profile version mismatch: Profile uses raw profile format version = 5; expected version = 10
PLEASE update this tool to version in the raw profile, or regenerate raw profile with expected version.
warning: /t/llvm-cov-target/wt6-3-4_0.profraw: invalid instrumentation profile data (file header is corrupt)
";

    fn totals(lines: (u64, u64), regions: (u64, u64)) -> Totals {
        Totals {
            lines_covered: lines.0,
            lines: lines.1,
            regions_covered: regions.0,
            regions: regions.1,
        }
    }

    fn thresholds(lines: f64, regions: Option<f64>) -> Thresholds {
        Thresholds {
            lines: (lines, Location::line("services/orders/Cargo.toml", 27)),
            regions: regions.map(|regions| (regions, Location::line("meshgate.toml", 30))),
        }
    }

    fn rules(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|finding| finding.rule.id()).collect()
    }

    #[test]
    fn skipped_profiles_are_listed_with_their_cause() {
        let merge = read_merge_messages(MERGE_DEGRADED);
        assert_eq!(merge.no_data, None, "the good profile was merged");
        assert_eq!(merge.skipped.len(), 2);
        assert_eq!(merge.skipped[1].file, "/t/llvm-cov-target/wt6-3-4_0.profraw");
        assert_eq!(
            merge.skipped[1].cause,
            "invalid instrumentation profile data (file header is corrupt)"
        );
        assert!(is_version_mismatch(&merge.skipped[0].cause));
        assert!(!is_version_mismatch(&merge.skipped[1].cause));
    }

    fn llvm() -> toolchain::LlvmTools {
        toolchain::LlvmTools {
            source: "rustup component llvm-tools".into(),
            version: "22.1.2".into(),
            rustc_llvm: "22.1.2".into(),
        }
    }

    #[test]
    fn no_readable_profile_is_no_data_never_zero_percent() {
        let command = ProcessBuilder::new("cargo-llvm-cov").arg("llvm-cov");
        let log = Path::new("logs/coverage/cargo-llvm-cov.log");

        // Every profile truncated: the merge fails, and the error lists each with its cause.
        let stderr = "warning: /t/a.profraw: invalid instrumentation profile data (file header is corrupt)\nerror: no profile can be merged\n";
        let merge = read_merge_messages(stderr);
        let error = run_error(&command, stderr, &merge, &llvm(), log).to_string();
        assert!(error.starts_with("no coverage data: no profile can be merged"), "{error}");
        assert!(error.contains("/t/a.profraw: invalid instrumentation profile data"), "{error}");
        assert!(error.contains("no test process was killed"), "{error}");

        // Another profile version: the error names both LLVM versions and the fix.
        let stderr = format!("{MERGE_DEGRADED}error: no profile can be merged\n");
        let merge = read_merge_messages(&stderr);
        let error = run_error(&command, &stderr, &merge, &llvm(), log).to_string();
        assert!(error.contains("raw profile version mismatch"), "{error}");
        assert!(error.contains("llvm-tools LLVM 22.1.2, rustc LLVM 22.1.2"), "{error}");
        assert!(error.contains("cargo llvm-cov clean --workspace"), "{error}");

        // No profile at all.
        let stderr = "error: not found *.profraw files in /t/llvm-cov-target; this may occur if target directory is accidentally cleared\n";
        let merge = read_merge_messages(stderr);
        let error = run_error(&command, stderr, &merge, &llvm(), log).to_string();
        assert!(error.starts_with("no coverage data: not found *.profraw files"), "{error}");
    }

    #[test]
    fn another_failure_shows_the_command_and_the_end_of_its_output() {
        let command = ProcessBuilder::new("cargo-llvm-cov").args(["llvm-cov", "--workspace"]);
        let stderr = "   Compiling orders\nerror[E0425]: cannot find value `x`\n";
        let merge = read_merge_messages(stderr);
        let error = run_error(&command, stderr, &merge, &llvm(), Path::new("x.log")).to_string();
        assert!(error.contains("`cargo-llvm-cov llvm-cov --workspace` failed"), "{error}");
        assert!(error.contains("cannot find value `x`"), "{error}");
        assert!(error.contains("(whole output: x.log)"), "{error}");
    }

    #[test]
    fn a_failing_test_is_a_finding_on_its_package() {
        let scope = Scope {
            workspace: PathBuf::from("/w"),
            target_dir: PathBuf::from("/w/target"),
            packages: vec![PackageDir {
                name: "orders".into(),
                manifest_dir: PathBuf::from("/w/services/orders"),
            }],
            counted: vec!["orders".into()],
            excluded: Vec::new(),
        };
        let stderr = "test result: FAILED. 2 passed; 1 failed\nerror: test failed, to rerun pass `-p orders --test http`\n";
        let findings = failed_tests(stderr, &scope, Path::new("x.log"));
        assert_eq!(rules(&findings), ["coverage/tests-failed"]);
        assert_eq!(findings[0].location.file, Path::new("/w/services/orders/Cargo.toml"));
        assert!(findings[0].remedy.contains("cargo test -p orders --test http"));
    }

    #[test]
    fn below_the_threshold_fails_at_the_line_of_the_threshold_that_applies() {
        let (row, findings) = judge(
            "orders",
            Some("orders".into()),
            &thresholds(90.0, None),
            None,
            totals((44, 68), (71, 120)),
            None,
        );
        assert_eq!(row.verdict, Verdict::BelowThreshold);
        assert_eq!(rules(&findings), ["coverage/below-threshold"]);
        let finding = &findings[0];
        assert_eq!(finding.service.as_deref(), Some("orders"));
        assert_eq!(finding.location, Location::line("services/orders/Cargo.toml", 27));
        assert!(finding.message.contains("64.7 % line coverage (44 of 68 lines)"), "{finding:?}");
        assert!(finding.message.contains("threshold of 90 %"), "{finding:?}");

        // At the threshold exactly is a pass; regions are judged only when configured.
        let (row, findings) =
            judge("orders", None, &thresholds(50.0, None), None, totals((1, 2), (0, 9)), None);
        assert_eq!((row.verdict, findings.len()), (Verdict::Passed, 0));
        let (_, findings) = judge(
            "orders",
            None,
            &thresholds(50.0, Some(10.0)),
            None,
            totals((1, 2), (0, 9)),
            None,
        );
        assert_eq!(findings[0].location, Location::line("meshgate.toml", 30));
        assert!(findings[0].message.contains("0.0 % region coverage"), "{:?}", findings[0]);
    }

    #[test]
    fn the_ratchet_fails_a_drop_beyond_its_tolerance_only() {
        let ratchet = (1.0, Location::line("meshgate.toml", 31));
        let judge_at = |covered, previous| {
            judge(
                "ledger",
                Some("ledger".into()),
                &thresholds(80.0, None),
                Some(&ratchet),
                totals((covered, 100), (1, 1)),
                previous,
            )
        };
        let (row, findings) = judge_at(90, Some(92.0));
        assert_eq!((row.verdict, rules(&findings)), (Verdict::Dropped, vec!["coverage/dropped"]));
        assert_eq!(findings[0].location, ratchet.1);
        assert!(findings[0].message.contains("from 92.0 % to 90.0 %"), "{:?}", findings[0]);
        assert!(judge_at(91, Some(92.0)).1.is_empty(), "one point is within the tolerance");
        assert!(judge_at(90, None).1.is_empty(), "nothing recorded yet");
        assert_eq!(judge_at(90, Some(92.0)).0.previous_lines_percent, Some(92.0));
    }

    #[test]
    fn a_package_without_data_is_an_error_not_a_figure() {
        let (row, findings) =
            judge("meshkit", None, &thresholds(80.0, None), None, Totals::default(), Some(90.0));
        assert_eq!(row.verdict, Verdict::NoData);
        assert_eq!(row.lines_percent, None);
        assert_eq!(rules(&findings), ["coverage/no-data"]);
        assert!(findings[0].message.contains("not 0 %"), "{:?}", findings[0]);
        let summary = Summary {
            tool: "cargo-llvm-cov 0.9.1".into(),
            llvm_tools: "LLVM 22.1.2".into(),
            doctests: "not instrumented (rustc 1.95.0)".into(),
            skipped_profiles: Vec::new(),
            excluded_packages: vec!["xtask".into()],
            export: PathBuf::from("export.json"),
            rows: vec![row],
        };
        assert!(metrics_of(&summary).is_empty(), "no figure is recorded for missing data");
        let table = render_table(&summary);
        assert!(table.contains("meshkit (library)") && table.contains("NO DATA"), "{table}");
        assert!(table.contains("doctests: not instrumented"), "{table}");
    }

    #[test]
    fn the_table_shows_figures_thresholds_and_the_change() {
        let (row, _) = judge(
            "orders",
            Some("orders".into()),
            &thresholds(80.0, Some(70.0)),
            None,
            totals((64, 68), (101, 116)),
            Some(64.7),
        );
        let summary = Summary {
            tool: "cargo-llvm-cov 0.9.1".into(),
            llvm_tools: "LLVM 22.1.2".into(),
            doctests: "not instrumented".into(),
            skipped_profiles: read_merge_messages(MERGE_DEGRADED).skipped,
            excluded_packages: Vec::new(),
            export: PathBuf::from("export.json"),
            rows: vec![row],
        };
        let table = render_table(&summary);
        for expected in [
            "94.1 % (64/68)",
            "87.1 %",
            "lines ≥ 80, regions ≥ 70",
            "+29.4",
            "ok",
            "degraded: 2 profile(s) skipped",
            "file header is corrupt",
        ] {
            assert!(table.contains(expected), "{expected}: {table}");
        }
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["rows"][0]["lines_covered"], 64);
        assert_eq!(json["rows"][0]["verdict"], "passed");
        assert_eq!(metrics_of(&summary)["orders"].regions_percent.map(f64::round), Some(87.0));
    }
}
