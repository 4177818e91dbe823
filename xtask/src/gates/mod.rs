//! The four gates and what each one reports.

pub mod artifact_hygiene;
pub mod coverage;
pub mod network_contracts;
pub mod network_runtime;
pub mod service_health;

use std::time::Duration;

use serde::Serialize;

use crate::finding::{Finding, Severity};

/// The gates, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    NetworkContracts,
    ServiceHealth,
    ArtifactHygiene,
    Coverage,
}

impl Gate {
    pub const ALL: [Gate; 4] =
        [Gate::NetworkContracts, Gate::ServiceHealth, Gate::ArtifactHygiene, Gate::Coverage];

    /// The kebab-case name used on the command line and in meshgate.toml's modes.
    pub fn name(self) -> &'static str {
        match self {
            Gate::NetworkContracts => "network-contracts",
            Gate::ServiceHealth => "service-health",
            Gate::ArtifactHygiene => "artifact-hygiene",
            Gate::Coverage => "coverage",
        }
    }

    /// The snake_case name of its log file, `validate_<gate>_<timestamp>.log`.
    pub fn log_name(self) -> String {
        self.name().replace('-', "_")
    }
}

/// How a gate ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    /// The gate could not run; never a pass.
    NotComputed(String),
    /// Not part of this run (`--static`, or another gate was asked for).
    Skipped(String),
}

/// One gate's result.
#[derive(Clone, Debug, Serialize)]
pub struct GateReport {
    pub gate: Gate,
    pub status: Status,
    pub findings: Vec<Finding>,
    #[serde(serialize_with = "serialize_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// What the detailed log holds beyond the findings.
    #[serde(skip)]
    pub detail: Vec<String>,
    /// What part of the gate ran, when not all of it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// The network contracts gate's connection matrix: source × target → expected, observed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<network_runtime::Cell>,
    /// Findings a reviewed exception suppressed, with the exception's reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<crate::exceptions::Suppressed>,
    /// What the gate's outcome means under its mode; set once every gate has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::verdict::Decision>,
    /// The coverage gate's per-service figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Box<coverage::Summary>>,
}

fn serialize_millis<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

impl GateReport {
    /// A report whose status follows from its findings.
    pub fn from_findings(
        gate: Gate,
        findings: Vec<Finding>,
        duration: Duration,
        detail: Vec<String>,
    ) -> GateReport {
        let failed = findings.iter().any(|finding| finding.severity == Severity::Error);
        let status = if failed { Status::Failed } else { Status::Passed };
        GateReport {
            gate,
            status,
            findings,
            duration,
            detail,
            scope: None,
            matrix: Vec::new(),
            suppressed: Vec::new(),
            decision: None,
            coverage: None,
        }
    }

    pub fn not_computed(gate: Gate, reason: impl Into<String>, duration: Duration) -> GateReport {
        GateReport {
            gate,
            status: Status::NotComputed(reason.into()),
            findings: Vec::new(),
            duration,
            detail: Vec::new(),
            scope: None,
            matrix: Vec::new(),
            suppressed: Vec::new(),
            decision: None,
            coverage: None,
        }
    }

    pub fn skipped(gate: Gate, reason: impl Into<String>) -> GateReport {
        GateReport {
            gate,
            status: Status::Skipped(reason.into()),
            findings: Vec::new(),
            duration: Duration::ZERO,
            detail: Vec::new(),
            scope: None,
            matrix: Vec::new(),
            suppressed: Vec::new(),
            decision: None,
            coverage: None,
        }
    }
}
