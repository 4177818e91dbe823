//! Enforcement: what each gate's outcome means under its mode, and the run's verdict.
//!
//! Every gate is decided the same way, from its status and findings, by [`decide_gate`]: the
//! one table that the README documents (mode × outcome → blocks, status state, description).
//! A finding's mode is the command line's `--mode` if given, else its rule's mode from
//! `[rules."<id>"]`, else its gate's, else the mesh's.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Config, Mode};
use crate::finding::{Finding, Rule, Severity};
use crate::gates::{Gate, GateReport, Status};

/// A commit status state, as GitHub names them (`pending` is posted when a run starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Success,
    Failure,
    Error,
}

/// What one gate's outcome means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub mode: Mode,
    /// Whether it fails the run (exit code 1).
    pub blocks: bool,
    /// The status to post; `None` for a gate that did not run.
    pub state: Option<State>,
    /// At most 140 characters, as GitHub allows.
    pub description: String,
    /// What strict mode would have decided.
    pub strict_blocks: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// Modes as configured, with the command line's `--mode` above everything.
#[derive(Clone, Debug)]
pub struct Modes {
    pub cli: Option<Mode>,
    pub mesh: Mode,
    pub gates: BTreeMap<&'static str, Mode>,
    pub rules: BTreeMap<Rule, Mode>,
    pub require_approval: bool,
}

impl Modes {
    pub fn new(config: &Config, cli: Option<Mode>) -> Modes {
        Modes {
            cli,
            mesh: config.mode,
            gates: config.gate_modes.clone(),
            rules: config.rule_modes.clone(),
            require_approval: config.require_approval,
        }
    }

    /// One mode for the whole mesh, nothing set per gate or rule.
    pub fn uniform(mesh: Mode) -> Modes {
        Modes {
            cli: None,
            mesh,
            gates: BTreeMap::new(),
            rules: BTreeMap::new(),
            require_approval: false,
        }
    }

    pub fn gate(&self, gate: Gate) -> Mode {
        self.cli.or_else(|| self.gates.get(gate.name()).copied()).unwrap_or(self.mesh)
    }

    pub fn finding(&self, gate: Gate, finding: &Finding) -> Mode {
        self.cli.or_else(|| self.rules.get(&finding.rule).copied()).unwrap_or(self.gate(gate))
    }
}

/// Whether a finding fails its gate under the mode that applies to it.
pub fn blocks(modes: &Modes, gate: Gate, finding: &Finding) -> bool {
    finding.severity == Severity::Error && modes.finding(gate, finding) == Mode::Strict
}

/// Decides one gate. `approval` names who approved this run's warnings, when someone did.
pub fn decide_gate(report: &GateReport, modes: &Modes, approval: Option<&str>) -> Decision {
    let mode = modes.gate(report.gate);
    let decision = |blocks, state, description: String, strict_blocks| Decision {
        mode,
        blocks,
        state,
        description: truncate(&description, 140),
        strict_blocks,
        approved_by: None,
    };
    match &report.status {
        Status::Skipped(reason) => decision(false, None, format!("skipped: {reason}"), false),
        Status::NotComputed(reason) => decision(
            mode == Mode::Strict,
            Some(State::Error),
            format!("not computed: {reason}"),
            true,
        ),
        Status::Passed | Status::Failed => {
            let findings = &report.findings;
            let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
            let blocking = findings.iter().filter(|f| blocks(modes, report.gate, f)).count();
            let warnings = findings.len() - blocking;
            let strict_blocks = errors > 0;
            if blocking > 0 {
                let mut text = format!("{blocking} error(s)");
                if warnings > 0 {
                    text.push_str(&format!(", {warnings} warning(s)"));
                }
                return decision(true, Some(State::Failure), text, true);
            }
            if warnings == 0 {
                return decision(false, Some(State::Success), "passed".into(), false);
            }
            if mode == Mode::Monitoring {
                let text = if strict_blocks {
                    format!("monitoring: strict would fail ({errors} error(s))")
                } else {
                    format!("monitoring: {warnings} warning(s)")
                };
                return decision(false, Some(State::Success), text, strict_blocks);
            }
            if mode == Mode::Warning && modes.require_approval && strict_blocks {
                return match approval {
                    Some(approver) => Decision {
                        approved_by: Some(approver.to_owned()),
                        ..decision(
                            false,
                            Some(State::Success),
                            format!("passed with {warnings} warning(s), approved by {approver}"),
                            true,
                        )
                    },
                    None => decision(
                        true,
                        Some(State::Failure),
                        format!("{warnings} warning(s) await approval"),
                        true,
                    ),
                };
            }
            decision(
                false,
                Some(State::Success),
                format!("passed with {warnings} warning(s)"),
                strict_blocks,
            )
        }
    }
}

/// The run's verdict from its gates' decisions: the status of the overall context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Overall {
    pub blocks: bool,
    pub state: State,
    pub description: String,
    pub strict_blocks: bool,
}

pub fn decide_run<'a>(gates: impl IntoIterator<Item = (Gate, &'a Decision)>) -> Overall {
    let gates: Vec<(Gate, &Decision)> = gates.into_iter().collect();
    let failed: Vec<&str> =
        gates.iter().filter(|(_, d)| d.blocks).map(|(gate, _)| gate.name()).collect();
    let strict_blocks = gates.iter().any(|(_, d)| d.strict_blocks);
    let not_computed: Vec<&str> = gates
        .iter()
        .filter(|(_, d)| d.state == Some(State::Error))
        .map(|(gate, _)| gate.name())
        .collect();
    let warned: Vec<&str> = gates
        .iter()
        .filter(|(_, d)| !d.blocks && d.description != "passed" && d.state == Some(State::Success))
        .map(|(gate, _)| gate.name())
        .collect();
    let (state, description) = if !failed.is_empty() {
        let state = if failed.iter().all(|gate| not_computed.contains(gate)) {
            State::Error
        } else {
            State::Failure
        };
        (state, format!("failed: {}", failed.join(", ")))
    } else {
        let mut text = if warned.is_empty() {
            "passed".to_owned()
        } else {
            format!("passed with warnings: {}", warned.join(", "))
        };
        if !not_computed.is_empty() {
            text.push_str(&format!("; not computed: {}", not_computed.join(", ")));
        }
        if strict_blocks {
            text.push_str(" (strict would fail)");
        }
        (State::Success, text)
    };
    Overall {
        blocks: !failed.is_empty(),
        state,
        description: truncate(&description, 140),
        strict_blocks,
    }
}

/// Cuts `text` to at most `limit` characters, ending in `…` when cut.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::Location;

    fn modes(mesh: Mode) -> Modes {
        Modes::uniform(mesh)
    }

    fn gate(status: Status, findings: Vec<Finding>) -> GateReport {
        let mut report = GateReport::skipped(Gate::NetworkContracts, "");
        report.status = status;
        report.findings = findings;
        report
    }

    fn error() -> Finding {
        Finding::new(Rule::HostNetwork, Location::line("compose.yaml", 3), "host", "fix")
    }

    fn warning() -> Finding {
        Finding::new(Rule::StartIntervalIgnored, Location::line("compose.yaml", 4), "w", "fix")
    }

    /// Every cell of the README's table: mode × outcome → blocks, state, description.
    #[test]
    fn the_mode_table_cell_by_cell() {
        use State::*;
        let passed = gate(Status::Passed, vec![]);
        let failed = gate(Status::Failed, vec![error()]);
        let warned = gate(Status::Passed, vec![warning()]);
        let not_computed = gate(Status::NotComputed("Docker is unreachable".into()), vec![]);
        let skipped = gate(Status::Skipped("--static".into()), vec![]);
        // mode, outcome, blocks, state, description, strict would block
        type Cell<'a> = (Mode, &'a GateReport, bool, Option<State>, &'a str, bool);
        let cells: &[Cell] = &[
            (Mode::Strict, &passed, false, Some(Success), "passed", false),
            (Mode::Strict, &failed, true, Some(Failure), "1 error(s)", true),
            (Mode::Strict, &warned, false, Some(Success), "passed with 1 warning(s)", false),
            (
                Mode::Strict,
                &not_computed,
                true,
                Some(Error),
                "not computed: Docker is unreachable",
                true,
            ),
            (Mode::Strict, &skipped, false, None, "skipped: --static", false),
            (Mode::Warning, &passed, false, Some(Success), "passed", false),
            (Mode::Warning, &failed, false, Some(Success), "passed with 1 warning(s)", true),
            (Mode::Warning, &warned, false, Some(Success), "passed with 1 warning(s)", false),
            (
                Mode::Warning,
                &not_computed,
                false,
                Some(Error),
                "not computed: Docker is unreachable",
                true,
            ),
            (Mode::Warning, &skipped, false, None, "skipped: --static", false),
            (Mode::Monitoring, &passed, false, Some(Success), "passed", false),
            (
                Mode::Monitoring,
                &failed,
                false,
                Some(Success),
                "monitoring: strict would fail (1 error(s))",
                true,
            ),
            (Mode::Monitoring, &warned, false, Some(Success), "monitoring: 1 warning(s)", false),
            (
                Mode::Monitoring,
                &not_computed,
                false,
                Some(Error),
                "not computed: Docker is unreachable",
                true,
            ),
            (Mode::Monitoring, &skipped, false, None, "skipped: --static", false),
        ];
        for (mode, report, blocks, state, description, strict) in cells {
            let decision = decide_gate(report, &modes(*mode), None);
            assert_eq!(
                (
                    decision.blocks,
                    decision.state,
                    decision.description.as_str(),
                    decision.strict_blocks
                ),
                (*blocks, *state, *description, *strict),
                "{mode:?} × {:?}",
                report.status
            );
        }
    }

    #[test]
    fn warnings_await_approval_when_required_and_say_who_approved() {
        let mut modes = modes(Mode::Warning);
        modes.require_approval = true;
        let failed = gate(Status::Failed, vec![error()]);
        let waiting = decide_gate(&failed, &modes, None);
        assert!(waiting.blocks);
        assert_eq!(waiting.state, Some(State::Failure));
        assert_eq!(waiting.description, "1 warning(s) await approval");
        let approved = decide_gate(&failed, &modes, Some("octo-reviewer"));
        assert!(!approved.blocks);
        assert_eq!(approved.approved_by.as_deref(), Some("octo-reviewer"));
        assert!(approved.description.ends_with("approved by octo-reviewer"));
        // Severity-warning findings alone never need approval.
        assert!(!decide_gate(&gate(Status::Passed, vec![warning()]), &modes, None).blocks);
    }

    #[test]
    fn a_rule_mode_beats_its_gate_and_the_command_line_beats_both() {
        let mut modes = modes(Mode::Strict);
        modes.rules.insert(Rule::HostNetwork, Mode::Warning);
        let failed = gate(Status::Failed, vec![error()]);
        assert!(!decide_gate(&failed, &modes, None).blocks);
        modes.cli = Some(Mode::Strict);
        assert!(decide_gate(&failed, &modes, None).blocks);
    }

    #[test]
    fn the_run_fails_when_a_gate_blocks_and_says_strict_would_fail_otherwise() {
        let strict = decide_gate(&gate(Status::Failed, vec![error()]), &modes(Mode::Strict), None);
        let monitoring =
            decide_gate(&gate(Status::Failed, vec![error()]), &modes(Mode::Monitoring), None);
        let run = decide_run([(Gate::NetworkContracts, &strict)]);
        assert!(run.blocks);
        assert_eq!(run.state, State::Failure);
        assert_eq!(run.description, "failed: network-contracts");
        let run = decide_run([(Gate::NetworkContracts, &monitoring)]);
        assert!(!run.blocks);
        assert_eq!(run.state, State::Success);
        assert!(run.description.ends_with("(strict would fail)"), "{}", run.description);
        let not_computed =
            decide_gate(&gate(Status::NotComputed("x".into()), vec![]), &modes(Mode::Strict), None);
        assert_eq!(decide_run([(Gate::ServiceHealth, &not_computed)]).state, State::Error);
        assert_eq!(truncate(&"x".repeat(200), 140).chars().count(), 140);
    }
}
