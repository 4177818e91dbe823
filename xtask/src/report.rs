//! The run's outputs: the verdict table on the terminal, `logs/report.json` (versioned shape,
//! written whole or not at all) and one detailed log per gate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::config::Mode;
use crate::gates::{GateReport, Status};

/// The version of `report.json`'s shape; bumped on any incompatible change.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub project: Option<String>,
    pub revision: String,
    pub started_at: String,
    pub mode: Mode,
    pub profiles: Vec<String>,
    pub engine: Option<String>,
    pub compose: Option<String>,
    pub gates: Vec<GateReport>,
    pub verdict: Verdict,
    /// The overall commit status: `success`, `failure` or `error`.
    pub state: crate::verdict::State,
    /// The overall status description (at most 140 characters).
    pub description: String,
    /// What strict mode would have decided, whatever the mode was.
    pub strict_verdict: Verdict,
    /// The emergency override this run used.
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub emergency: Option<OverrideUsed>,
    /// The audit log's head after this run, when an override was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<String>,
    /// The pull request the run checked, on GitHub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    pub exit_code: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
    /// Blocking findings bypassed by an emergency override.
    Overridden,
}

/// The override a run used, as its report and summary show it.
#[derive(Clone, Debug, Serialize)]
pub struct OverrideUsed {
    pub approver: String,
    pub reason: String,
    pub expires_at: String,
    pub source: String,
    pub verified: bool,
}

impl OverrideUsed {
    /// `OVERRIDDEN by bob (unverified): hotfix`.
    pub fn describe(&self) -> String {
        let verified = if self.verified { "" } else { " (unverified)" };
        format!("OVERRIDDEN by {}{verified}: {}", self.approver, self.reason)
    }
}

/// The report of a run that could not finish (exit code 2, or 128 + signal).
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub schema_version: u32,
    pub started_at: String,
    pub verdict: &'static str,
    pub error: String,
    pub exit_code: i32,
}

impl ErrorReport {
    pub fn new(started_at: std::time::SystemTime, error: &anyhow::Error) -> ErrorReport {
        let interrupted = crate::teardown::interrupted();
        ErrorReport {
            schema_version: REPORT_SCHEMA_VERSION,
            started_at: compact_timestamp(started_at),
            verdict: if interrupted.is_some() { "interrupted" } else { "error" },
            error: format!("{error:#}"),
            exit_code: interrupted.map_or(2, |signal| 128 + signal),
        }
    }
}

/// Replaces `logs/report.json` with the report of a run that could not finish.
pub fn write_error(logs: &Path, report: &ErrorReport) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).context("failed to encode the report")?;
    write_atomically(&logs.join("report.json"), &json)
}

/// `20261203T120000Z` for a time.
pub fn compact_timestamp(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string().replace(['-', ':'], "")
}

/// The verdict table and every finding, for the terminal.
pub fn render_table(gates: &[GateReport], modes: &crate::verdict::Modes) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["gate", "result", "findings", "time"]);
    for gate in gates {
        let mut result = match (&gate.decision, &gate.status) {
            (Some(decision), _) if decision.blocks => decision.description.to_uppercase(),
            (Some(decision), _) => decision.description.clone(),
            (None, Status::Passed) => "passed".to_owned(),
            (None, Status::Failed) => "FAILED".to_owned(),
            (None, Status::NotComputed(reason)) => format!("not computed: {reason}"),
            (None, Status::Skipped(reason)) => format!("skipped ({reason})"),
        };
        if let Some(scope) = gate.scope {
            result.push_str(&format!(" ({scope})"));
        }
        let time = if gate.duration.is_zero() {
            "-".to_owned()
        } else {
            format!("{:.1}s", gate.duration.as_secs_f64())
        };
        table.add_row([gate.gate.name().to_owned(), result, gate.findings.len().to_string(), time]);
    }
    let mut text = String::new();
    for gate in gates {
        for finding in &gate.findings {
            let _ = writeln!(
                text,
                "{}[{}]: {}\n  --> {}\n  = help: {}",
                if crate::verdict::blocks(modes, gate.gate, finding) { "error" } else { "warning" },
                finding.rule.id(),
                finding.message,
                finding.location,
                finding.remedy
            );
        }
    }
    let _ = write!(text, "{table}");
    text
}

/// The network gate's connection matrix, for the terminal and the gate's log.
pub fn render_matrix(matrix: &[crate::gates::network_runtime::Cell]) -> String {
    use crate::gates::network_runtime::Expected;

    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["source", "target", "expected", "observed", "address", "latency"]);
    for cell in matrix {
        let expected = match cell.expected {
            Expected::Connect => "connect",
            Expected::Refuse => "refuse",
            Expected::Incidental => "either (not judged)",
        };
        let verdict = match (cell.expected, cell.observed.as_str()) {
            (_, "probe-error") => "probe error",
            (Expected::Incidental, _) => "-",
            (Expected::Connect, "connected") => "ok",
            (Expected::Refuse, "connected") | (Expected::Connect, _) => "VIOLATION",
            (Expected::Refuse, _) => "ok",
        };
        table.add_row([
            cell.source.clone(),
            format!("{}:{}", cell.target, cell.port),
            expected.to_owned(),
            format!("{} ({verdict})", cell.observed),
            cell.address.clone().unwrap_or_default(),
            format!("{:.1} ms", cell.latency_ms),
        ]);
    }
    table.to_string()
}

/// Writes `path` through a temporary file and a rename, so readers never see half of it.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, contents)
        .with_context(|| format!("failed to write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("failed to write {}", path.display()))
}

/// Writes the JSON report and the per-gate logs; returns the paths written.
pub fn write_all(logs: &Path, report: &Report, root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let stamp = report.started_at.clone();
    for gate in &report.gates {
        let path = logs.join(format!("validate_{}_{stamp}.log", gate.gate.log_name()));
        let status = match &gate.status {
            Status::Passed => "passed".to_owned(),
            Status::Failed => "failed".to_owned(),
            Status::NotComputed(reason) => format!("not computed: {reason}"),
            // A skipped gate has nothing to log; the report says why it was skipped.
            Status::Skipped(_) => continue,
        };
        let mut text = format!(
            "gate: {}\nstatus: {status}\nduration: {:.3} s\n",
            gate.gate.name(),
            gate.duration.as_secs_f64()
        );
        if let Some(decision) = &gate.decision {
            let _ = writeln!(
                text,
                "decision: {} ({:?} mode{})",
                decision.description,
                decision.mode,
                if decision.blocks { ", blocks" } else { "" }
            );
        }
        if let Some(scope) = gate.scope {
            let _ = writeln!(text, "scope: {scope}");
        }
        text.push('\n');
        for line in &gate.detail {
            let _ = writeln!(text, "{line}");
        }
        if !gate.matrix.is_empty() {
            let _ = writeln!(text, "\n{}\n", render_matrix(&gate.matrix));
        }
        for finding in &gate.findings {
            let _ = writeln!(
                text,
                "{} [{}] {}: {} (fix: {}) fingerprint {}",
                finding.location.relative_to(root),
                finding.rule.id(),
                finding.service.as_deref().unwrap_or("-"),
                finding.message,
                finding.remedy,
                finding.fingerprint()
            );
        }
        for suppressed in &gate.suppressed {
            let _ = writeln!(
                text,
                "suppressed {} [{}]: {} (exception at {}: {}; owner {}, expires {})",
                suppressed.finding.location.relative_to(root),
                suppressed.finding.rule.id(),
                suppressed.finding.message,
                suppressed.exception,
                suppressed.reason,
                suppressed.owner,
                suppressed.expires
            );
        }
        write_atomically(&path, text.as_bytes())?;
        written.push(path);
    }
    let json = serde_json::to_vec_pretty(report).context("failed to encode the report")?;
    let path = logs.join("report.json");
    write_atomically(&path, &json)?;
    written.push(path);
    Ok(written)
}
