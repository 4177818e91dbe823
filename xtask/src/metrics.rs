//! What a run measured, and how that compares with earlier runs.
//!
//! Every run writes `logs/metrics.json` (this run's figures, with the tools and revision they
//! came from). Runs that finish append their figures to a history (`.meshgate/history.jsonl`
//! beside meshgate.toml unless configured), and `logs/summary.md` shows each figure with its
//! change since the last run of the same kind (same gates, same `--static`), flagging
//! regressions beyond the configured tolerance. `logs/metrics.prom` holds the figures in the
//! Prometheus text format when `metrics.prometheus` is on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::gates::GateReport;
use crate::gates::network_runtime::Cell;

/// The version of `metrics.json`'s and the history's shape.
pub const METRICS_SCHEMA_VERSION: u32 = 1;

/// How many runs the history keeps; older ones are dropped.
const HISTORY_LIMIT: usize = 500;

/// One service's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServiceMetrics {
    /// From the start of `compose up` to the container's start (engine timestamp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_running_ms: Option<u64>,
    /// From the start of `compose up` to the first healthy state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_healthy_ms: Option<u64>,
    pub restarts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_health_output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size_bytes: Option<i64>,
    /// How long the container took to stop on its stop signal at the end of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_exit_code: Option<i64>,
}

/// One gate's figures.
#[derive(Clone, Debug, Serialize)]
pub struct GateMetrics {
    pub status: String,
    pub duration_ms: u64,
    pub findings: usize,
}

/// One connect probe's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeMetrics {
    pub source: String,
    pub target: String,
    pub port: u16,
    pub observed: String,
    pub latency_ms: f64,
}

/// One service's coverage.
#[derive(Clone, Debug, Serialize)]
pub struct CoverageMetrics {
    pub lines_percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions_percent: Option<f64>,
}

/// Everything a run measured: `logs/metrics.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Metrics {
    pub schema_version: u32,
    pub revision: String,
    pub started_at: String,
    /// Which gates ran and how: runs compare only with runs of the same kind.
    pub kind: String,
    pub project: Option<String>,
    /// Tool name → version.
    pub tools: BTreeMap<String, String>,
    /// Step name → wall time in milliseconds, in the order of the run.
    pub steps: Vec<(String, u64)>,
    pub gates: BTreeMap<String, GateMetrics>,
    pub services: BTreeMap<String, ServiceMetrics>,
    pub probes: Vec<ProbeMetrics>,
    pub coverage: BTreeMap<String, CoverageMetrics>,
    pub findings_by_rule: BTreeMap<String, usize>,
    /// A run on the repository's default branch on GitHub: only such runs count towards
    /// persistent findings.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default_branch: bool,
}

impl Metrics {
    pub fn new(revision: &str, started_at: &str, kind: String) -> Metrics {
        Metrics {
            schema_version: METRICS_SCHEMA_VERSION,
            revision: revision.to_owned(),
            started_at: started_at.to_owned(),
            kind,
            ..Metrics::default()
        }
    }

    /// Records a step's wall time.
    pub fn step(&mut self, name: &str, duration: Duration) {
        self.steps.push((name.to_owned(), millis(duration)));
    }

    /// Records what the gates reported: durations, findings per rule, the probe matrix.
    pub fn record_gates(&mut self, gates: &[GateReport]) {
        for gate in gates {
            let status = match &gate.status {
                crate::gates::Status::Passed => "passed",
                crate::gates::Status::Failed => "failed",
                crate::gates::Status::NotComputed(_) => "not-computed",
                crate::gates::Status::Skipped(_) => "skipped",
            };
            self.gates.insert(
                gate.gate.name().to_owned(),
                GateMetrics {
                    status: status.to_owned(),
                    duration_ms: millis(gate.duration),
                    findings: gate.findings.len(),
                },
            );
            for finding in &gate.findings {
                *self.findings_by_rule.entry(finding.rule.id().to_owned()).or_default() += 1;
            }
            self.probes.extend(gate.matrix.iter().map(probe_metrics));
        }
    }

    /// The figures that are compared between runs, by a stable key.
    pub fn figures(&self) -> Vec<Figure> {
        let mut figures = Vec::new();
        let mut add = |metric: &'static str, labels: Vec<(&'static str, String)>, value: f64| {
            figures.push(Figure { metric, labels, value });
        };
        for (step, ms) in &self.steps {
            add("step_duration_seconds", vec![("step", step.clone())], *ms as f64 / 1000.0);
        }
        for (gate, metrics) in &self.gates {
            if metrics.status != "skipped" {
                let seconds = metrics.duration_ms as f64 / 1000.0;
                add("gate_duration_seconds", vec![("gate", gate.clone())], seconds);
            }
        }
        for (service, metrics) in &self.services {
            let labels = || vec![("service", service.clone())];
            if let Some(ms) = metrics.time_to_running_ms {
                add("service_time_to_running_seconds", labels(), ms as f64 / 1000.0);
            }
            if let Some(ms) = metrics.time_to_healthy_ms {
                add("service_time_to_healthy_seconds", labels(), ms as f64 / 1000.0);
            }
            add("service_restarts", labels(), metrics.restarts as f64);
            if let Some(bytes) = metrics.image_size_bytes {
                add("image_size_bytes", labels(), bytes as f64);
            }
            if let Some(ms) = metrics.stop_ms {
                add("service_stop_seconds", labels(), ms as f64 / 1000.0);
            }
        }
        for probe in &self.probes {
            let labels = vec![
                ("source", probe.source.clone()),
                ("target", format!("{}:{}", probe.target, probe.port)),
            ];
            add("probe_latency_seconds", labels, probe.latency_ms / 1000.0);
        }
        for (service, coverage) in &self.coverage {
            add(
                "coverage_lines_percent",
                vec![("service", service.clone())],
                coverage.lines_percent,
            );
            if let Some(regions) = coverage.regions_percent {
                add("coverage_regions_percent", vec![("service", service.clone())], regions);
            }
        }
        let total: usize = self.findings_by_rule.values().sum();
        add("findings", vec![("rule", "all".to_owned())], total as f64);
        for (rule, count) in &self.findings_by_rule {
            add("findings", vec![("rule", rule.clone())], *count as f64);
        }
        figures
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn probe_metrics(cell: &Cell) -> ProbeMetrics {
    ProbeMetrics {
        source: cell.source.clone(),
        target: cell.target.clone(),
        port: cell.port,
        observed: cell.observed.clone(),
        latency_ms: cell.latency_ms,
    }
}

/// One measured figure: a metric name, its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub metric: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Which way a figure gets worse, and below which change it is noise.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

impl Figure {
    /// `metric{label="value",…}`: the figure's key in the history.
    pub fn key(&self) -> String {
        if self.labels.is_empty() {
            return self.metric.to_owned();
        }
        let labels: Vec<String> =
            self.labels.iter().map(|(name, value)| format!("{name}=\"{value}\"")).collect();
        format!("{}{{{}}}", self.metric, labels.join(","))
    }

    fn direction(&self) -> Direction {
        if self.metric.starts_with("coverage_") {
            Direction::HigherIsBetter
        } else {
            Direction::LowerIsBetter
        }
    }

    /// The smallest change that counts, whatever the tolerance: below it a change is noise.
    fn floor(&self, tolerance: &Tolerance) -> f64 {
        if self.metric.ends_with("_seconds") {
            tolerance.min_change_seconds
        } else if self.metric.ends_with("_bytes") {
            tolerance.min_change_bytes
        } else if self.metric.ends_with("_percent") {
            tolerance.min_change_percent
        } else {
            0.0
        }
    }

    /// Whether going from `previous` to this value is a regression.
    fn regressed(&self, previous: f64, tolerance: &Tolerance) -> bool {
        let change = self.value - previous;
        let worse = match self.direction() {
            Direction::LowerIsBetter => change > 0.0,
            Direction::HigherIsBetter => change < 0.0,
        };
        if !worse || change.abs() <= self.floor(tolerance) {
            return false;
        }
        // Counts (restarts, findings) regress on any increase and percentages on any drop
        // beyond the floor (they are already relative); measurements beyond the relative
        // tolerance.
        let absolute = self.metric == "findings"
            || self.metric == "service_restarts"
            || self.metric.ends_with("_percent");
        absolute || previous == 0.0 || change.abs() / previous.abs() > tolerance.relative
    }
}

/// When a worse figure counts as a regression.
#[derive(Clone, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative change, e.g. 0.25 for 25 %.
    pub relative: f64,
    pub min_change_seconds: f64,
    pub min_change_bytes: f64,
    pub min_change_percent: f64,
}

impl Default for Tolerance {
    fn default() -> Tolerance {
        Tolerance {
            relative: 0.25,
            min_change_seconds: 0.5,
            min_change_bytes: 64.0 * 1024.0,
            min_change_percent: 0.5,
        }
    }
}

/// One run in the history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HistoryRecord {
    pub schema_version: u32,
    pub started_at: String,
    pub revision: String,
    pub kind: String,
    pub figures: BTreeMap<String, f64>,
    /// The fingerprints of the run's findings, to tell which persist across runs.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    #[serde(default)]
    pub default_branch: bool,
}

impl HistoryRecord {
    pub fn of(metrics: &Metrics, gates: &[GateReport]) -> HistoryRecord {
        let mut fingerprints: Vec<String> = gates
            .iter()
            .flat_map(|gate| gate.findings.iter().map(crate::finding::Finding::fingerprint))
            .collect();
        fingerprints.sort();
        fingerprints.dedup();
        HistoryRecord {
            schema_version: METRICS_SCHEMA_VERSION,
            started_at: metrics.started_at.clone(),
            revision: metrics.revision.clone(),
            kind: metrics.kind.clone(),
            figures: metrics.figures().into_iter().map(|f| (f.key(), f.value)).collect(),
            fingerprints,
            default_branch: metrics.default_branch,
        }
    }
}

/// The history file: one JSON record per line, oldest first.
pub struct History {
    path: PathBuf,
    records: Vec<HistoryRecord>,
    /// Lines that could not be read, kept as they are so that nothing is lost.
    unreadable: Vec<String>,
}

impl History {
    /// Reads the history; a missing file is an empty history. A line that is not a record
    /// (a newer schema, a hand edit) is kept untouched and reported once.
    pub fn load(path: &Path) -> anyhow::Result<History> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("failed to read {}", path.display()));
            }
        };
        let mut records = Vec::new();
        let mut unreadable = Vec::new();
        for (index, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            match serde_json::from_str::<HistoryRecord>(line) {
                Ok(record) if record.schema_version == METRICS_SCHEMA_VERSION => {
                    records.push(record);
                }
                Ok(_) | Err(_) => {
                    crate::term::warn(&format!(
                        "{}:{}: not a history record of this version; kept, not compared",
                        path.display(),
                        index + 1
                    ));
                    unreadable.push(line.to_owned());
                }
            }
        }
        Ok(History { path: path.to_path_buf(), records, unreadable })
    }

    /// The latest run of `kind`.
    pub fn last_of_kind(&self, kind: &str) -> Option<&HistoryRecord> {
        self.records.iter().rev().find(|record| record.kind == kind)
    }

    /// The last `count` default-branch runs of a kind, newest first.
    pub fn recent_default_branch_runs(&self, kind: &str, count: usize) -> Vec<&HistoryRecord> {
        self.records
            .iter()
            .rev()
            .filter(|record| record.kind == kind && record.default_branch)
            .take(count)
            .collect()
    }

    /// The newest recorded value of a figure, whatever the kind of run that recorded it.
    pub fn last_figure(&self, key: &str) -> Option<f64> {
        self.records.iter().rev().find_map(|record| record.figures.get(key).copied())
    }

    /// Adds a run and rewrites the file atomically, keeping the newest runs.
    pub fn append(&mut self, record: HistoryRecord) -> anyhow::Result<()> {
        self.records.push(record);
        let excess = self.records.len().saturating_sub(HISTORY_LIMIT);
        self.records.drain(..excess);
        let mut text = String::new();
        for line in &self.unreadable {
            let _ = writeln!(text, "{line}");
        }
        for record in &self.records {
            let line =
                serde_json::to_string(record).context("failed to encode a history record")?;
            let _ = writeln!(text, "{line}");
        }
        crate::report::write_atomically(&self.path, text.as_bytes())
    }
}

/// One figure compared with the previous run.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub key: String,
    pub value: f64,
    pub previous: Option<f64>,
    pub regressed: bool,
}

/// Every figure of `metrics` against `previous`.
pub fn compare(
    metrics: &Metrics,
    previous: Option<&HistoryRecord>,
    tolerance: &Tolerance,
) -> Vec<Comparison> {
    metrics
        .figures()
        .into_iter()
        .map(|figure| {
            let before = previous.and_then(|record| record.figures.get(&figure.key())).copied();
            Comparison {
                key: figure.key(),
                value: figure.value,
                previous: before,
                regressed: before.is_some_and(|before| figure.regressed(before, tolerance)),
            }
        })
        .collect()
}

fn format_value(key: &str, value: f64) -> String {
    if key.contains("_seconds") {
        format!("{value:.2} s")
    } else if key.contains("_bytes") {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else if key.contains("_percent") {
        format!("{value:.1} %")
    } else {
        format!("{value}")
    }
}

fn format_change(key: &str, value: f64, previous: f64) -> String {
    let change = value - previous;
    let sign = if change > 0.0 {
        "+"
    } else if change < 0.0 {
        "−"
    } else {
        "±"
    };
    let magnitude = format_value(key, change.abs());
    if previous == 0.0 {
        format!("{sign}{magnitude}")
    } else {
        format!("{sign}{magnitude} ({:+.0} %)", change / previous.abs() * 100.0)
    }
}

/// `logs/summary.md`: the verdict, the gates and every figure with its change.
pub fn summary_markdown(
    verdict: &str,
    gates: &[GateReport],
    metrics: &Metrics,
    previous: Option<&HistoryRecord>,
    comparisons: &[Comparison],
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "## meshgate: {verdict}\n");
    let _ = writeln!(text, "Revision `{}`, run {}.\n", metrics.revision, metrics.started_at);
    let _ = writeln!(text, "| gate | result | findings | time |\n|---|---|---|---|");
    for gate in gates {
        let result = match (&gate.decision, &gate.status) {
            (Some(decision), _) if decision.blocks => format!("**{}**", decision.description),
            (Some(decision), _) => decision.description.clone(),
            (None, crate::gates::Status::Passed) => "passed".to_owned(),
            (None, crate::gates::Status::Failed) => "**failed**".to_owned(),
            (None, crate::gates::Status::NotComputed(reason)) => format!("not computed: {reason}"),
            (None, crate::gates::Status::Skipped(reason)) => format!("skipped ({reason})"),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.1} s |",
            gate.gate.name(),
            escape(&result),
            gate.findings.len(),
            gate.duration.as_secs_f64()
        );
    }
    match previous {
        Some(record) => {
            let _ = writeln!(
                text,
                "\nCompared with the last run of this kind: revision `{}`, run {}.\n",
                record.revision, record.started_at
            );
        }
        None => {
            let _ = writeln!(text, "\nNo earlier run of this kind to compare with.\n");
        }
    }
    let regressions = comparisons.iter().filter(|c| c.regressed).count();
    if regressions > 0 {
        let _ = writeln!(text, "**{regressions} regression(s)** beyond the tolerance.\n");
    }
    let _ = writeln!(text, "| figure | this run | change | |\n|---|---|---|---|");
    for comparison in comparisons {
        let change = match comparison.previous {
            Some(previous) => format_change(&comparison.key, comparison.value, previous),
            None => "new".to_owned(),
        };
        let _ = writeln!(
            text,
            "| `{}` | {} | {} | {} |",
            escape(&comparison.key),
            format_value(&comparison.key, comparison.value),
            change,
            if comparison.regressed { "**regression**" } else { "" }
        );
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The figures in the Prometheus text format (OpenMetrics flavour), one gauge family per
/// metric, named `meshgate_<metric>`.
pub fn prometheus_text(metrics: &Metrics) -> anyhow::Result<String> {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use std::sync::atomic::AtomicU64;

    type Labels = Vec<(String, String)>;
    let mut registry = prometheus_client::registry::Registry::with_prefix("meshgate");
    let mut families: BTreeMap<&'static str, Family<Labels, Gauge<f64, AtomicU64>>> =
        BTreeMap::new();
    for figure in metrics.figures() {
        let family = families.entry(figure.metric).or_default();
        let labels: Labels = figure
            .labels
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .chain([("revision".to_owned(), metrics.revision.clone())])
            .collect();
        family.get_or_create(&labels).set(figure.value);
    }
    for (metric, family) in families {
        registry.register(metric, format!("meshgate {}", metric.replace('_', " ")), family);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .context("failed to encode the metrics for Prometheus")?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(healthy_ms: u64, findings: usize, coverage: f64) -> Metrics {
        let mut metrics = Metrics::new("abc", "20261203T120000Z", "all".into());
        metrics.step("build images", Duration::from_millis(1200));
        metrics.services.insert(
            "catalog".into(),
            ServiceMetrics {
                time_to_healthy_ms: Some(healthy_ms),
                image_size_bytes: Some(3_000_000),
                ..ServiceMetrics::default()
            },
        );
        if findings > 0 {
            metrics.findings_by_rule.insert("health/unhealthy".into(), findings);
        }
        metrics.coverage.insert(
            "catalog".into(),
            CoverageMetrics { lines_percent: coverage, regions_percent: None },
        );
        metrics
    }

    #[test]
    fn regressions_need_a_worse_change_beyond_tolerance_and_noise() {
        let tolerance = Tolerance::default();
        let before = HistoryRecord::of(&metrics(2_000, 0, 85.0), &[]);
        let regressed = |now: &Metrics, key: &str| {
            compare(now, Some(&before), &tolerance).into_iter().find(|c| c.key == key).unwrap()
        };
        let healthy = "service_time_to_healthy_seconds{service=\"catalog\"}";
        assert!(!regressed(&metrics(2_300, 0, 85.0), healthy).regressed, "15 %: within tolerance");
        assert!(regressed(&metrics(4_000, 0, 85.0), healthy).regressed, "twice as slow");
        assert!(!regressed(&metrics(1_000, 0, 85.0), healthy).regressed, "faster is no regression");
        let coverage = "coverage_lines_percent{service=\"catalog\"}";
        assert!(regressed(&metrics(2_000, 0, 80.0), coverage).regressed, "coverage fell 5 points");
        assert!(!regressed(&metrics(2_000, 0, 84.8), coverage).regressed, "0.2 points is noise");
        let findings = "findings{rule=\"all\"}";
        assert!(regressed(&metrics(2_000, 1, 85.0), findings).regressed, "a new finding");
    }

    #[test]
    fn history_keeps_unreadable_lines_and_compares_by_kind() {
        let dir = std::env::temp_dir().join(format!("meshgate-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        std::fs::write(&path, "{\"schema_version\": 99}\n").unwrap();

        let mut history = History::load(&path).unwrap();
        assert!(history.last_of_kind("all").is_none());
        history.append(HistoryRecord::of(&metrics(2_000, 0, 85.0), &[])).unwrap();
        let mut static_run = metrics(0, 0, 0.0);
        static_run.kind = "static".into();
        history.append(HistoryRecord::of(&static_run, &[])).unwrap();

        let history = History::load(&path).unwrap();
        let last = history.last_of_kind("all").unwrap();
        assert_eq!(last.figures["service_time_to_healthy_seconds{service=\"catalog\"}"], 2.0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"schema_version\": 99}\n"), "kept as it was: {text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_shows_changes_and_prometheus_text_is_parseable() {
        let before = HistoryRecord::of(&metrics(2_000, 0, 85.0), &[]);
        let now = metrics(4_000, 0, 85.0);
        let comparisons = compare(&now, Some(&before), &Tolerance::default());
        let summary = summary_markdown("passed", &[], &now, Some(&before), &comparisons);
        assert!(summary.contains("| 4.00 s | +2.00 s (+100 %) | **regression** |"), "{summary}");
        assert!(summary.contains("1 regression(s)"), "{summary}");

        let text = prometheus_text(&now).unwrap();
        assert!(text.contains("# TYPE meshgate_service_time_to_healthy_seconds gauge"), "{text}");
        assert!(
            text.contains(
                "meshgate_service_time_to_healthy_seconds{service=\"catalog\",revision=\"abc\"} 4.0"
            ),
            "{text}"
        );
    }
}
