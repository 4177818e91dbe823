//! `meshgate.toml`: the mesh-wide policy. Read in two phases: a raw form that rejects unknown
//! keys and wrong types (with file and line from the TOML parser), then `validate`, which
//! collects every remaining problem before failing once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use toml::Spanned;

use crate::contract::{Contract, ContractRaw};
use crate::location::{InputError, InputErrors, Location};

pub const FILE_NAME: &str = "meshgate.toml";

/// How findings turn into a verdict.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Any failing finding fails its gate and the build.
    #[default]
    Strict,
    /// Findings are reported; the build passes.
    Warning,
    /// Gates run and measure; nothing blocks.
    Monitoring,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    mesh: MeshRaw,
    #[serde(default)]
    networks: BTreeMap<String, Spanned<NetworkRaw>>,
    #[serde(default)]
    policy: PolicyRaw,
    /// Services that are not crates of this workspace (third-party images).
    #[serde(default)]
    external: BTreeMap<String, Spanned<ContractRaw>>,
    #[serde(default)]
    gates: GatesRaw,
    /// Per-rule settings, keyed by rule id: `[rules."network/host-network"]`.
    #[serde(default)]
    rules: BTreeMap<String, Spanned<RuleRaw>>,
    #[serde(default)]
    exceptions: ExceptionsRaw,
    #[serde(default, rename = "override")]
    emergency: OverrideRaw,
    #[serde(default)]
    github: GithubRaw,
    #[serde(default)]
    metrics: MetricsRaw,
}

/// `[metrics]`: where the history of runs is kept and when a change is a regression.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsRaw {
    /// The history file, relative to meshgate.toml.
    history: Option<String>,
    /// Relative change beyond which a worse figure is a regression, e.g. 0.25.
    tolerance: Option<Spanned<f64>>,
    /// Changes below these are noise, whatever the relative change.
    min_change_seconds: Option<f64>,
    min_change_bytes: Option<f64>,
    min_change_percent: Option<f64>,
    /// Also write `logs/metrics.prom` (Prometheus text format).
    #[serde(default)]
    prometheus: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeshRaw {
    #[serde(default = "default_compose_files")]
    compose_files: Vec<Spanned<String>>,
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    mode: Mode,
    /// The Cargo workspace whose crates declare contracts; the repository when absent.
    workspace: Option<Spanned<String>>,
    /// Whether the workspace's crates carry contracts at all.
    #[serde(default = "yes")]
    crate_contracts: bool,
    /// In warning mode, a gate with findings fails until an authorized reviewer approves.
    #[serde(default)]
    require_approval: bool,
}

impl Default for MeshRaw {
    fn default() -> MeshRaw {
        MeshRaw {
            compose_files: default_compose_files(),
            profiles: Vec::new(),
            mode: Mode::Strict,
            workspace: None,
            crate_contracts: true,
            require_approval: false,
        }
    }
}

fn default_compose_files() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "compose.yaml".to_owned())]
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRaw {
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    internal: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyRaw {
    #[serde(default = "yes")]
    least_privilege: bool,
}

impl Default for PolicyRaw {
    fn default() -> PolicyRaw {
        PolicyRaw { least_privilege: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatesRaw {
    #[serde(default)]
    network_contracts: NetworkGateRaw,
    #[serde(default)]
    service_health: HealthRaw,
    #[serde(default)]
    artifact_hygiene: HygieneRaw,
    #[serde(default)]
    coverage: CoverageRaw,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRaw {
    mode: Option<Mode>,
}

/// `[exceptions]`: the reviewed exception file and how early expiry is announced.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsRaw {
    file: Option<String>,
    warn_within: Option<Spanned<String>>,
}

/// `[override]`: the emergency override's limits and its audit log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRaw {
    default_expiry: Option<Spanned<String>>,
    max_expiry: Option<Spanned<String>>,
    audit_log: Option<String>,
}

/// `[github]`: what a run on GitHub posts and reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GithubRaw {
    context: Option<String>,
    statuses: Option<bool>,
    pr_comment: Option<bool>,
    issues: Option<bool>,
    issue_label: Option<String>,
    issue_after_runs: Option<u32>,
    issue_close_after_runs: Option<u32>,
    max_issues_per_run: Option<u32>,
    approval_label: Option<String>,
    override_label: Option<String>,
    retry_wait: Option<Spanned<String>>,
    max_retries: Option<u32>,
}

/// `[gates.artifact_hygiene]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HygieneRaw {
    mode: Option<Mode>,
    /// Judge the running containers' output and filesystem (default true).
    enforce_centralized_logs: Option<bool>,
    /// Base and service images must be pinned by digest, not by tag alone (default true).
    require_digest: Option<bool>,
    /// The largest an image may be, such as "64MiB".
    image_size_budget: Option<Spanned<String>>,
    /// The largest binary file the repository may track, such as "1MiB".
    max_tracked_binary: Option<Spanned<String>>,
    /// The file of reviewed exceptions, relative to meshgate.toml.
    allow_list: Option<Spanned<String>>,
    /// Per-service settings.
    #[serde(default)]
    services: BTreeMap<String, HygieneServiceRaw>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HygieneServiceRaw {
    image_size_budget: Option<Spanned<String>>,
}

/// The allow-list file: `[[allow]]` entries with a rule, a path glob and a reason.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowListRaw {
    #[serde(default)]
    allow: Vec<Spanned<AllowRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowRaw {
    /// A rule id, or a glob over rule ids such as `hygiene/*`.
    rule: Spanned<String>,
    /// A glob over repository paths, relative to meshgate.toml.
    path: Spanned<String>,
    /// Why the exception is acceptable; required.
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkGateRaw {
    mode: Option<Mode>,
    /// How long one connect probe may take before it counts as not connected.
    probe_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthRaw {
    mode: Option<Mode>,
    /// The whole health gate's budget.
    timeout: Option<Spanned<String>>,
    /// Per-service budgets, overriding what the healthcheck timing gives.
    #[serde(default)]
    services: BTreeMap<String, ServiceHealthRaw>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceHealthRaw {
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoverageRaw {
    mode: Option<Mode>,
    /// The line coverage every package must reach, in percent, unless its crate overrides it.
    lines: Option<Spanned<f64>>,
    /// The region coverage every package must reach; regions are shown but not judged when absent.
    regions: Option<Spanned<f64>>,
    /// Source files left out of the figures: globs relative to the workspace root.
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    /// Workspace packages neither tested nor reported (tooling); `["xtask", "meshgate-probe"]`.
    exclude_packages: Option<Vec<Spanned<String>>>,
    /// Fail when a package's line coverage falls more than this many points below its last
    /// recorded figure; no ratchet when absent.
    ratchet: Option<Spanned<f64>>,
    /// Instrument doctests too; needs a nightly toolchain with llvm-tools.
    #[serde(default)]
    doctests: bool,
    /// Per-service thresholds set by the mesh's policy, overriding the crates' own.
    #[serde(default)]
    services: BTreeMap<String, Spanned<ServiceCoverageRaw>>,
    /// Whether profiles skipped at the merge (a degraded run) warn or fail the gate.
    #[serde(default)]
    skipped_profiles: SkippedProfiles,
}

/// What a degraded coverage run (profiles skipped at the merge) means for the gate.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SkippedProfiles {
    /// A warning: the figures come from the profiles that could be read.
    #[default]
    Warn,
    /// An error: the gate fails.
    Fail,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceCoverageRaw {
    lines: Option<f64>,
    regions: Option<f64>,
}

/// Thresholds meshgate.toml sets for one service.
#[derive(Clone, Debug)]
pub struct ServiceCoverage {
    pub lines: Option<f64>,
    pub regions: Option<f64>,
    pub location: Location,
}

/// `[gates.coverage]`, checked.
#[derive(Clone, Debug)]
pub struct CoveragePolicy {
    pub lines: f64,
    /// Where `lines` is written (meshgate.toml itself when it is the default).
    pub lines_location: Location,
    pub regions: Option<f64>,
    pub regions_location: Location,
    /// The exclude globs as written, and compiled.
    pub exclude: Vec<String>,
    pub exclude_set: globset::GlobSet,
    /// Package names, each with where it is written.
    pub exclude_packages: Vec<(String, Location)>,
    /// Allowed drop below the last recorded line figure, in percentage points, and where
    /// it is written.
    pub ratchet: Option<(f64, Location)>,
    pub doctests: bool,
    /// `[gates.coverage.services.<service>]`, by service (or library package) name.
    pub services: BTreeMap<String, ServiceCoverage>,
    pub skipped_profiles: SkippedProfiles,
}

/// The packages the coverage gate leaves out unless configured: the gates' own tooling.
pub const COVERAGE_EXCLUDED_PACKAGES: [&str; 2] = ["xtask", "meshgate-probe"];

/// A network of the mesh and what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub purpose: String,
    /// Must be `internal: true` in the Compose file (no route out).
    pub internal: bool,
    /// Where meshgate.toml describes the network.
    pub location: Location,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    /// The folder the configuration's paths are relative to; `logs/` is written there.
    pub dir: PathBuf,
    pub compose_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    pub mode: Mode,
    /// The Cargo workspace whose crates declare contracts; `None` for the repository.
    pub workspace: Option<PathBuf>,
    /// Whether to read contracts from the workspace's crates (`false`: meshgate.toml only).
    pub crate_contracts: bool,
    pub networks: BTreeMap<String, NetworkPolicy>,
    pub least_privilege: bool,
    pub external: BTreeMap<String, Contract>,
    pub gate_modes: BTreeMap<&'static str, Mode>,
    pub health_timeout: Duration,
    /// The budget of one runtime connect probe.
    pub probe_timeout: Duration,
    pub service_health_timeouts: BTreeMap<String, Duration>,
    pub coverage: CoveragePolicy,
    pub metrics: MetricsPolicy,
    /// Modes set for single rules; they take precedence over their gate's mode.
    pub rule_modes: BTreeMap<crate::finding::Rule, Mode>,
    pub require_approval: bool,
    pub exceptions: ExceptionsPolicy,
    pub emergency: OverridePolicy,
    pub github: GithubPolicy,
    pub hygiene: HygienePolicy,
}

/// What a run on GitHub posts and reads.
#[derive(Clone, Debug)]
pub struct GithubPolicy {
    /// The overall status context; each gate posts `<context>/<gate>`.
    pub context: String,
    pub statuses: bool,
    pub pr_comment: bool,
    pub issues: bool,
    pub issue_label: String,
    /// A finding seen in this many runs in a row (this one included) gets an issue.
    pub issue_after_runs: u32,
    /// An issue whose finding was absent from this many runs in a row is closed.
    pub issue_close_after_runs: u32,
    pub max_issues_per_run: u32,
    /// A label that approves a PR's warnings when `mesh.require_approval` is on.
    pub approval_label: String,
    pub override_label: String,
    /// The first wait after a rate limit that names no time; doubled on each retry.
    pub retry_wait: Duration,
    pub max_retries: u32,
}

/// The reviewed exception file.
#[derive(Clone, Debug)]
pub struct ExceptionsPolicy {
    pub file: PathBuf,
    /// Exceptions that expire within this long are announced.
    pub warn_within: Duration,
}

/// Limits of the emergency override, and where its uses are recorded.
#[derive(Clone, Debug)]
pub struct OverridePolicy {
    pub default_expiry: Duration,
    pub max_expiry: Duration,
    pub audit_log: PathBuf,
}

impl Default for GithubPolicy {
    fn default() -> GithubPolicy {
        GithubPolicy {
            context: "ci/quality-gates".into(),
            statuses: true,
            pr_comment: true,
            issues: true,
            issue_label: "meshgate".into(),
            issue_after_runs: 3,
            issue_close_after_runs: 3,
            max_issues_per_run: 5,
            approval_label: "meshgate-approved".into(),
            override_label: "meshgate-override".into(),
            retry_wait: Duration::from_secs(60),
            max_retries: 4,
        }
    }
}

/// The artifact hygiene gate's settings.
#[derive(Clone, Debug)]
pub struct HygienePolicy {
    pub enforce_centralized_logs: bool,
    pub require_digest: bool,
    pub image_size_budget: u64,
    pub service_budgets: BTreeMap<String, u64>,
    pub max_tracked_binary: u64,
    /// Reviewed exceptions, from the allow-list file.
    pub allow: Vec<Allowance>,
}

impl Default for HygienePolicy {
    fn default() -> HygienePolicy {
        HygienePolicy {
            enforce_centralized_logs: true,
            require_digest: true,
            image_size_budget: 64 << 20,
            service_budgets: BTreeMap::new(),
            max_tracked_binary: 1 << 20,
            allow: Vec::new(),
        }
    }
}

impl HygienePolicy {
    /// The image size budget of one service.
    pub fn budget_of(&self, service: &str) -> u64 {
        self.service_budgets.get(service).copied().unwrap_or(self.image_size_budget)
    }
}

/// One reviewed exception: findings of matching rules on matching paths are not reported.
#[derive(Clone, Debug)]
pub struct Allowance {
    pub rule: globset::GlobMatcher,
    pub path: globset::GlobMatcher,
    pub reason: String,
    /// Where the allow-list states it.
    pub location: Location,
}

/// The default allow-list file, relative to meshgate.toml; a missing one means no exceptions.
pub const ALLOW_LIST_FILE: &str = "hygiene-allow.toml";

/// `64MiB`, `10MB`, `512k` or a plain number of bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let number: f64 = text[..split].parse().ok()?;
    let factor: f64 = match text[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor) as u64)
}

/// Reads the allow-list; every entry needs a reason, a known rule and valid globs.
fn load_allow_list(file: &Path, errors: &mut Vec<InputError>) -> Vec<Allowance> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            errors.push(InputError::new(
                Location::file(file),
                format!("cannot read the allow-list: {error}"),
                "create it, or point `gates.artifact_hygiene.allow_list` at it",
            ));
            return Vec::new();
        }
    };
    let raw: AllowListRaw = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(error) => {
            errors.push(toml_error(file, &text, &error));
            return Vec::new();
        }
    };
    let lines = LineIndex::new(&text);
    let at = |span: std::ops::Range<usize>| Location::line(file, lines.line_of(span.start));
    let mut allowances = Vec::new();
    for entry in raw.allow {
        let location = at(entry.span());
        let entry = entry.into_inner();
        let reason = entry.reason.unwrap_or_default();
        if reason.trim().is_empty() {
            errors.push(InputError::new(
                location.clone(),
                format!(
                    "the exception for `{}` on `{}` gives no reason",
                    entry.rule.get_ref(),
                    entry.path.get_ref()
                ),
                "add `reason = \"…\"`: why the finding is acceptable, for whoever reviews it next",
            ));
        }
        let rule_text = entry.rule.get_ref();
        let known = crate::finding::Rule::ALL.iter().any(|rule| rule.id() == rule_text);
        if !known && !rule_text.contains('*') {
            errors.push(InputError::new(
                at(entry.rule.span()),
                format!("`{rule_text}` is no rule id"),
                "use a rule id from README.md, such as `hygiene/secret`, or a glob such as `hygiene/*`",
            ));
        }
        let glob = |value: &Spanned<String>, errors: &mut Vec<InputError>| {
            match globset::GlobBuilder::new(value.get_ref()).literal_separator(true).build() {
                Ok(glob) => Some(glob.compile_matcher()),
                Err(error) => {
                    errors.push(InputError::new(
                        at(value.span()),
                        format!("invalid glob `{}`: {error}", value.get_ref()),
                        "write a glob such as `tests/fixtures/**`",
                    ));
                    None
                }
            }
        };
        let (Some(rule), Some(path)) = (glob(&entry.rule, errors), glob(&entry.path, errors))
        else {
            continue;
        };
        allowances.push(Allowance { rule, path, reason, location });
    }
    allowances
}

/// Where the history of runs lives and how runs are compared.
#[derive(Clone, Debug)]
pub struct MetricsPolicy {
    pub history: PathBuf,
    pub tolerance: crate::metrics::Tolerance,
    pub prometheus: bool,
}

impl Config {
    /// The mode of one gate: its own, else the mesh's.
    pub fn gate_mode(&self, gate: &str) -> Mode {
        self.gate_modes.get(gate).copied().unwrap_or(self.mode)
    }
}

/// Reads `meshgate.toml` from `root`; a missing file means every default.
pub fn load(root: &Path) -> anyhow::Result<Config> {
    let file = root.join(FILE_NAME);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", file.display()));
        }
    };
    parse(&file, &text, root)
}

/// Reads a configuration file given on the command line; its paths are relative to its folder.
pub fn load_file(file: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read {}", file.display()))?;
    let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parse(file, &text, dir)
}

pub fn parse(file: &Path, text: &str, root: &Path) -> anyhow::Result<Config> {
    let raw: Raw = toml::from_str(text).map_err(|error| toml_error(file, text, &error))?;
    validate(raw, file, text, root)
}

/// Turns a TOML parse error into an input error at its line.
pub fn toml_error(file: &Path, text: &str, error: &toml::de::Error) -> InputError {
    let line = error.span().map_or(0, |span| line_of(text, span.start));
    InputError::new(
        Location::line(file, line),
        error.message().trim().to_owned(),
        "check the key against the configuration reference in README.md",
    )
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> u32 {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() as u32 + 1
}

/// Where each line of a text starts, so that many offsets turn into lines without scanning
/// the text again for each (a meshgate.toml of 500 contracts has tens of thousands of spans).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let after_newlines = text.match_indices('\n').map(|(offset, _)| offset + 1);
        LineIndex { starts: std::iter::once(0).chain(after_newlines).collect() }
    }

    /// The 1-based line of a byte offset, as `line_of` gives it.
    pub fn line_of(&self, offset: usize) -> u32 {
        self.starts.partition_point(|start| *start <= offset) as u32
    }
}

fn validate(raw: Raw, file: &Path, text: &str, root: &Path) -> anyhow::Result<Config> {
    let mut errors = Vec::new();
    let lines = LineIndex::new(text);
    let at = |span: std::ops::Range<usize>| {
        Location::line(file, if span.is_empty() { 0 } else { lines.line_of(span.start) })
    };

    let mut compose_files = Vec::new();
    for name in &raw.mesh.compose_files {
        let path = root.join(name.get_ref());
        if !path.is_file() {
            errors.push(InputError::new(
                at(name.span()),
                format!("Compose file `{}` does not exist", name.get_ref()),
                "set `mesh.compose_files` to the Compose files of the mesh, relative to the repository root",
            ));
        }
        compose_files.push(path);
    }

    let workspace = raw.mesh.workspace.as_ref().map(|dir| {
        let path = root.join(dir.get_ref());
        if !path.join("Cargo.toml").is_file() {
            errors.push(InputError::new(
                at(dir.span()),
                format!("`mesh.workspace` folder `{}` holds no Cargo.toml", dir.get_ref()),
                "name the folder of the Cargo workspace whose crates carry the contracts, relative to meshgate.toml",
            ));
        }
        path
    });

    let mut parse_timeout = |value: &Option<Spanned<String>>, default: Duration| match value {
        None => default,
        Some(value) => match crate::compose::parse_duration(value.get_ref()) {
            Some(duration) if !duration.is_zero() => duration,
            _ => {
                errors.push(InputError::new(
                    at(value.span()),
                    format!("`{}` is not a duration", value.get_ref()),
                    "write a duration with its unit, such as \"90s\" or \"2m\"",
                ));
                default
            }
        },
    };
    let health_timeout = parse_timeout(&raw.gates.service_health.timeout, Duration::from_secs(300));
    let probe_timeout =
        parse_timeout(&raw.gates.network_contracts.probe_timeout, Duration::from_secs(2));
    let mut service_health_timeouts = BTreeMap::new();
    for (service, settings) in &raw.gates.service_health.services {
        if settings.timeout.is_some() {
            service_health_timeouts
                .insert(service.clone(), parse_timeout(&settings.timeout, health_timeout));
        }
    }

    let retry_wait = parse_timeout(&raw.github.retry_wait, Duration::from_secs(60));
    let warn_within = parse_timeout(&raw.exceptions.warn_within, Duration::from_secs(14 * 86_400));
    let default_expiry =
        parse_timeout(&raw.emergency.default_expiry, Duration::from_secs(4 * 3600));
    let max_expiry = parse_timeout(&raw.emergency.max_expiry, Duration::from_secs(24 * 3600));

    let mut external = BTreeMap::new();
    for (name, contract) in raw.external {
        let location = at(contract.span());
        match Contract::from_raw(name.clone(), contract.into_inner(), location, file, &lines) {
            Ok(contract) => {
                external.insert(name, contract);
            }
            Err(mut contract_errors) => errors.append(&mut contract_errors),
        }
    }

    let coverage = validate_coverage(&raw.gates.coverage, file, &at, &mut errors);

    let mut tolerance = crate::metrics::Tolerance::default();
    if let Some(relative) = &raw.metrics.tolerance {
        if (0.0..=10.0).contains(relative.get_ref()) {
            tolerance.relative = *relative.get_ref();
        } else {
            errors.push(InputError::new(
                at(relative.span()),
                format!("`metrics.tolerance` is {}, not a fraction", relative.get_ref()),
                "give the relative change that counts as a regression, such as 0.25 for 25 %",
            ));
        }
    }
    for (value, floor) in [
        (raw.metrics.min_change_seconds, &mut tolerance.min_change_seconds),
        (raw.metrics.min_change_bytes, &mut tolerance.min_change_bytes),
        (raw.metrics.min_change_percent, &mut tolerance.min_change_percent),
    ] {
        if let Some(value) = value {
            *floor = value.max(0.0);
        }
    }
    if default_expiry > max_expiry {
        let span = raw.emergency.default_expiry.as_ref().map(|v| v.span()).unwrap_or_default();
        errors.push(InputError::new(
            at(span),
            "`override.default_expiry` is longer than `override.max_expiry`".to_owned(),
            "shorten the default or raise the maximum",
        ));
    }
    let mut rule_modes = BTreeMap::new();
    for (id, settings) in &raw.rules {
        match crate::finding::Rule::from_id(id) {
            Some(rule) => {
                if let Some(mode) = settings.get_ref().mode {
                    rule_modes.insert(rule, mode);
                }
            }
            None => errors.push(InputError::new(
                at(settings.span()),
                format!("`rules.\"{id}\"` names no rule"),
                "use a rule id as the reports print it, such as \"network/host-network\"; README.md lists them",
            )),
        }
    }
    let exceptions = ExceptionsPolicy {
        file: root.join(raw.exceptions.file.as_deref().unwrap_or("meshgate-exceptions.toml")),
        warn_within,
    };
    let emergency = OverridePolicy {
        default_expiry,
        max_expiry,
        audit_log: root.join(raw.emergency.audit_log.as_deref().unwrap_or(".meshgate/audit.jsonl")),
    };
    let defaults = GithubPolicy::default();
    let github = GithubPolicy {
        context: raw.github.context.unwrap_or(defaults.context),
        statuses: raw.github.statuses.unwrap_or(defaults.statuses),
        pr_comment: raw.github.pr_comment.unwrap_or(defaults.pr_comment),
        issues: raw.github.issues.unwrap_or(defaults.issues),
        issue_label: raw.github.issue_label.unwrap_or(defaults.issue_label),
        issue_after_runs: raw.github.issue_after_runs.unwrap_or(defaults.issue_after_runs).max(1),
        issue_close_after_runs: raw
            .github
            .issue_close_after_runs
            .unwrap_or(defaults.issue_close_after_runs)
            .max(1),
        max_issues_per_run: raw.github.max_issues_per_run.unwrap_or(defaults.max_issues_per_run),
        approval_label: raw.github.approval_label.unwrap_or(defaults.approval_label),
        override_label: raw.github.override_label.unwrap_or(defaults.override_label),
        retry_wait,
        max_retries: raw.github.max_retries.unwrap_or(defaults.max_retries),
    };
    let metrics = MetricsPolicy {
        history: root.join(raw.metrics.history.as_deref().unwrap_or(".meshgate/history.jsonl")),
        tolerance,
        prometheus: raw.metrics.prometheus,
    };

    let hygiene = validate_hygiene(&raw.gates.artifact_hygiene, root, &at, &mut errors);

    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    let mut gate_modes = BTreeMap::new();
    for (gate, mode) in [
        ("network-contracts", raw.gates.network_contracts.mode),
        ("service-health", raw.gates.service_health.mode),
        ("artifact-hygiene", raw.gates.artifact_hygiene.mode),
        ("coverage", raw.gates.coverage.mode),
    ] {
        if let Some(mode) = mode {
            gate_modes.insert(gate, mode);
        }
    }
    Ok(Config {
        file: file.to_path_buf(),
        dir: root.to_path_buf(),
        compose_files,
        profiles: raw.mesh.profiles,
        mode: raw.mesh.mode,
        workspace,
        crate_contracts: raw.mesh.crate_contracts,
        networks: raw
            .networks
            .into_iter()
            .map(|(name, network)| {
                let location = at(network.span());
                let network = network.into_inner();
                (
                    name,
                    NetworkPolicy {
                        purpose: network.purpose,
                        internal: network.internal,
                        location,
                    },
                )
            })
            .collect(),
        least_privilege: raw.policy.least_privilege,
        external,
        gate_modes,
        health_timeout,
        probe_timeout,
        service_health_timeouts,
        coverage,
        metrics,
        rule_modes,
        require_approval: raw.mesh.require_approval,
        exceptions,
        emergency,
        github,
        hygiene,
    })
}

fn validate_hygiene(
    raw: &HygieneRaw,
    root: &Path,
    at: &dyn Fn(std::ops::Range<usize>) -> Location,
    errors: &mut Vec<InputError>,
) -> HygienePolicy {
    let defaults = HygienePolicy::default();
    let mut size = |value: &Option<Spanned<String>>, default: u64| match value {
        None => default,
        Some(value) => match parse_size(value.get_ref()) {
            Some(bytes) if bytes > 0 => bytes,
            _ => {
                errors.push(InputError::new(
                    at(value.span()),
                    format!("`{}` is not a size", value.get_ref()),
                    "write a size with its unit, such as \"64MiB\" or \"500KB\"",
                ));
                default
            }
        },
    };
    let image_size_budget = size(&raw.image_size_budget, defaults.image_size_budget);
    let max_tracked_binary = size(&raw.max_tracked_binary, defaults.max_tracked_binary);
    let mut service_budgets = BTreeMap::new();
    for (service, settings) in &raw.services {
        if settings.image_size_budget.is_some() {
            service_budgets
                .insert(service.clone(), size(&settings.image_size_budget, image_size_budget));
        }
    }
    let allow = match &raw.allow_list {
        Some(file) => {
            let path = root.join(file.get_ref());
            if path.is_file() {
                load_allow_list(&path, errors)
            } else {
                errors.push(InputError::new(
                    at(file.span()),
                    format!("the allow-list `{}` does not exist", file.get_ref()),
                    "create it, or remove `allow_list` to use no exceptions",
                ));
                Vec::new()
            }
        }
        None => {
            let path = root.join(ALLOW_LIST_FILE);
            if path.is_file() { load_allow_list(&path, errors) } else { Vec::new() }
        }
    };
    HygienePolicy {
        enforce_centralized_logs: raw.enforce_centralized_logs.unwrap_or(true),
        require_digest: raw.require_digest.unwrap_or(true),
        image_size_budget,
        service_budgets,
        max_tracked_binary,
        allow,
    }
}

fn validate_coverage(
    raw: &CoverageRaw,
    file: &Path,
    at: &dyn Fn(std::ops::Range<usize>) -> Location,
    errors: &mut Vec<InputError>,
) -> CoveragePolicy {
    let mut percentage = |key: &str, value: &Option<Spanned<f64>>| {
        let value = value.as_ref()?;
        if !(0.0..=100.0).contains(value.get_ref()) {
            errors.push(InputError::new(
                at(value.span()),
                format!("`gates.coverage.{key}` is {}, outside 0 to 100", value.get_ref()),
                "give a percentage such as 80",
            ));
        }
        Some((*value.get_ref(), at(value.span())))
    };
    let lines = percentage("lines", &raw.lines);
    let regions = percentage("regions", &raw.regions);
    let ratchet = raw.ratchet.as_ref().map(|ratchet| {
        if !(0.0..=100.0).contains(ratchet.get_ref()) {
            errors.push(InputError::new(
                at(ratchet.span()),
                format!(
                    "`gates.coverage.ratchet` is {}, not a number of points",
                    ratchet.get_ref()
                ),
                "give the drop in percentage points that fails the gate, such as 0.5",
            ));
        }
        (*ratchet.get_ref(), at(ratchet.span()))
    });
    let mut globs = globset::GlobSetBuilder::new();
    for pattern in &raw.exclude {
        match globset::GlobBuilder::new(pattern.get_ref()).literal_separator(true).build() {
            Ok(glob) => {
                globs.add(glob);
            }
            Err(error) => errors.push(InputError::new(
                at(pattern.span()),
                format!("`gates.coverage.exclude` entry {:?} is not a glob: {error}", pattern.get_ref()),
                "write a glob relative to the workspace root, such as \"services/*/src/generated/**\"",
            )),
        }
    }
    let exclude_set = globs.build().unwrap_or_else(|_| globset::GlobSet::empty());
    let mut services = BTreeMap::new();
    for (name, settings) in &raw.services {
        let location = at(settings.span());
        for threshold in
            [settings.get_ref().lines, settings.get_ref().regions].into_iter().flatten()
        {
            if !(0.0..=100.0).contains(&threshold) {
                errors.push(InputError::new(
                    location.clone(),
                    format!("coverage threshold {threshold} of `{name}` is outside 0 to 100"),
                    "give a percentage such as 80",
                ));
            }
        }
        let ServiceCoverageRaw { lines, regions } = *settings.get_ref();
        services.insert(name.clone(), ServiceCoverage { lines, regions, location });
    }
    let exclude_packages = match &raw.exclude_packages {
        Some(names) => names.iter().map(|name| (name.get_ref().clone(), at(name.span()))).collect(),
        None => COVERAGE_EXCLUDED_PACKAGES
            .iter()
            .map(|name| ((*name).to_owned(), Location::file(file)))
            .collect(),
    };
    CoveragePolicy {
        lines: lines.as_ref().map_or(80.0, |(value, _)| *value),
        lines_location: lines.map_or_else(|| Location::file(file), |(_, location)| location),
        regions: regions.as_ref().map(|(value, _)| *value),
        regions_location: regions.map_or_else(|| Location::file(file), |(_, location)| location),
        exclude: raw.exclude.iter().map(|pattern| pattern.get_ref().clone()).collect(),
        exclude_set,
        exclude_packages,
        ratchet,
        doctests: raw.doctests,
        services,
        skipped_profiles: raw.skipped_profiles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> anyhow::Result<Config> {
        let root = std::env::temp_dir();
        std::fs::write(root.join("compose.yaml"), "services: {}\n").unwrap();
        parse(&root.join(FILE_NAME), text, &root)
    }

    #[test]
    fn the_line_index_agrees_with_counting_newlines() {
        for text in ["", "a", "a\n", "a\nbc\n\nd", "\n\n"] {
            let lines = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(lines.line_of(offset), line_of(text, offset), "{text:?} at {offset}");
            }
        }
    }

    #[test]
    fn an_empty_file_gives_every_default() {
        let config = parse_text("").unwrap();
        assert_eq!(config.mode, Mode::Strict);
        assert!(config.least_privilege);
        assert_eq!(config.gate_mode("coverage"), Mode::Strict);
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let error = parse_text("[mesh]\nmode = \"strict\"\nmodee = 1\n").unwrap_err().to_string();
        assert!(error.contains("meshgate.toml:3"), "{error}");
        assert!(error.contains("modee"), "{error}");
    }

    #[test]
    fn wrong_types_and_values_are_errors_with_their_line() {
        let error = parse_text("[mesh]\nmode = \"lenient\"\n").unwrap_err().to_string();
        assert!(error.contains(":2") && error.contains("lenient"), "{error}");
        let error =
            parse_text("[gates.service_health]\ntimeout = \"soon\"\n").unwrap_err().to_string();
        assert!(error.contains(":2") && error.contains("not a duration"), "{error}");
        let error =
            parse_text("[mesh]\ncompose_files = [\"nope.yaml\"]\n").unwrap_err().to_string();
        assert!(error.contains(":2") && error.contains("does not exist"), "{error}");
    }

    #[test]
    fn crate_contracts_come_from_the_named_workspace_or_none() {
        let config = parse_text("[mesh]\ncrate_contracts = false\n").unwrap();
        assert!(!config.crate_contracts);
        assert_eq!(config.workspace, None);
        let error = parse_text("[mesh]\nworkspace = \"no-such-folder\"\n").unwrap_err().to_string();
        assert!(error.contains(":2") && error.contains("holds no Cargo.toml"), "{error}");
    }

    #[test]
    fn network_policies_keep_their_line() {
        let config =
            parse_text("[mesh]\nmode = \"strict\"\n\n[networks.data]\ninternal = true\n").unwrap();
        assert_eq!(config.networks["data"].location.line, 4, "the table's header");
    }

    #[test]
    fn hygiene_settings_and_their_errors() {
        let config = parse_text("[gates.artifact_hygiene]\nimage_size_budget = \"20MiB\"\nrequire_digest = false\n[gates.artifact_hygiene.services.api]\nimage_size_budget = \"1MB\"\n").unwrap();
        assert_eq!(config.hygiene.budget_of("web"), 20 << 20);
        assert_eq!(config.hygiene.budget_of("api"), 1_000_000);
        assert!(!config.hygiene.require_digest && config.hygiene.enforce_centralized_logs);
        let error = parse_text("[gates.artifact_hygiene]\nimage_size_budget = \"huge\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains(":2") && error.contains("not a size"), "{error}");
        let error =
            parse_text("[gates.artifact_hygiene]\nenforce_logs = true\n").unwrap_err().to_string();
        assert!(error.contains(":2") && error.contains("enforce_logs"), "{error}");
    }

    #[test]
    fn an_allow_list_entry_without_a_reason_is_an_error_at_its_line() {
        let dir = std::env::temp_dir().join(format!("meshgate-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), "services: {}\n").unwrap();
        let list = "[[allow]]\nrule = \"hygiene/secret\"\npath = \"keys/*.pem\"\nreason = \"test key\"\n\n[[allow]]\nrule = \"hygiene/tracked-log\"\npath = \"x.log\"\n";
        std::fs::write(dir.join(ALLOW_LIST_FILE), list).unwrap();
        let error = parse(&dir.join(FILE_NAME), "", &dir).unwrap_err().to_string();
        assert!(error.contains("hygiene-allow.toml:6") && error.contains("no reason"), "{error}");
        std::fs::write(dir.join(ALLOW_LIST_FILE), &list[..list.find("\n\n").unwrap()]).unwrap();
        let config = parse(&dir.join(FILE_NAME), "", &dir).unwrap();
        assert_eq!(config.hygiene.allow.len(), 1);
        assert!(config.hygiene.allow[0].path.is_match("keys/a.pem"));
        assert!(!config.hygiene.allow[0].path.is_match("keys/sub/a.pem"));
        std::fs::write(
            dir.join(ALLOW_LIST_FILE),
            "[[allow]]\nrule = \"hygiene/nope\"\npath = \"x\"\nreason = \"r\"\n",
        )
        .unwrap();
        let error = parse(&dir.join(FILE_NAME), "", &dir).unwrap_err().to_string();
        assert!(error.contains(":2") && error.contains("no rule id"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn coverage_settings_keep_their_lines_and_default_to_the_tooling_excluded() {
        let config = parse_text("").unwrap();
        assert_eq!(config.coverage.lines, 80.0);
        assert_eq!(config.coverage.regions, None);
        assert_eq!(config.coverage.ratchet, None);
        let excluded: Vec<&str> =
            config.coverage.exclude_packages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(excluded, ["xtask", "meshgate-probe"]);

        let config = parse_text(
            "[gates.coverage]\nlines = 85\nregions = 70.5\nratchet = 0.5\n\
             exclude = [\"**/generated/**\"]\nexclude_packages = [\"xtask\"]\n",
        )
        .unwrap();
        let coverage = &config.coverage;
        assert_eq!((coverage.lines, coverage.lines_location.line), (85.0, 2));
        assert_eq!((coverage.regions, coverage.regions_location.line), (Some(70.5), 3));
        assert_eq!(
            coverage.ratchet.as_ref().map(|(points, at)| (*points, at.line)),
            Some((0.5, 4))
        );
        assert!(coverage.exclude_set.is_match("services/a/src/generated/x.rs"));
        assert!(!coverage.exclude_set.is_match("services/a/src/x.rs"));
        assert_eq!(coverage.exclude_packages[0].1.line, 6);
        assert_eq!(coverage.skipped_profiles, SkippedProfiles::Warn);
        let config = parse_text("[gates.coverage]\nskipped_profiles = \"fail\"\n").unwrap();
        assert_eq!(config.coverage.skipped_profiles, SkippedProfiles::Fail);
    }

    #[test]
    fn bad_coverage_settings_are_errors_with_their_line() {
        let error = parse_text("[gates.coverage]\nlines = 180\n").unwrap_err().to_string();
        assert!(error.contains("meshgate.toml:2") && error.contains("outside 0 to 100"), "{error}");
        let error = parse_text("[gates.coverage]\n\nexclude = [\"src/[x\"]\n").unwrap_err();
        let error = error.to_string();
        assert!(error.contains("meshgate.toml:3") && error.contains("not a glob"), "{error}");
        let error =
            parse_text("[gates.coverage]\nskipped_profiles = \"maybe\"\n").unwrap_err().to_string();
        assert!(error.contains("meshgate.toml:2") && error.contains("maybe"), "{error}");
        let error = parse_text("[gates.coverage]\nline = 80\n").unwrap_err().to_string();
        assert!(error.contains("meshgate.toml:2") && error.contains("line"), "{error}");
    }

    #[test]
    fn per_gate_modes_override_the_mesh_mode() {
        let config =
            parse_text("[mesh]\nmode = \"warning\"\n[gates.coverage]\nmode = \"monitoring\"\n")
                .unwrap();
        assert_eq!(config.gate_mode("coverage"), Mode::Monitoring);
        assert_eq!(config.gate_mode("network-contracts"), Mode::Warning);
    }
}
