//! `logs/junit.xml`: the run as JUnit XML, for CI dashboards. One test suite per gate; one
//! test case per finding (failed when it blocks), a passing case for a gate without findings,
//! a skipped case for a gate that did not run.

use anyhow::Context as _;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::annotations::{self, Level};
use crate::gates::{GateReport, Status};
use crate::verdict::Modes;

/// Writes `logs/junit.xml`, whole or not at all.
pub fn write(logs: &std::path::Path, gates: &[GateReport], modes: &Modes) -> anyhow::Result<()> {
    crate::report::write_atomically(&logs.join("junit.xml"), render(gates, modes)?.as_bytes())
}

/// Removes an earlier run's file, for a run that could not finish.
pub fn remove(logs: &std::path::Path) {
    let _ = std::fs::remove_file(logs.join("junit.xml"));
}

/// The JUnit XML of a run.
pub fn render(gates: &[GateReport], modes: &Modes) -> anyhow::Result<String> {
    let mut report = Report::new("meshgate");
    let findings = annotations::ordered(gates, modes);
    for gate in gates {
        let mut suite = TestSuite::new(gate.gate.name());
        suite.set_time(gate.duration);
        match &gate.status {
            Status::Skipped(reason) | Status::NotComputed(reason) if gate.findings.is_empty() => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason.as_str());
                let blocks = gate.decision.as_ref().is_some_and(|decision| decision.blocks);
                // A gate that could not run and blocks (strict mode) is a failure, not a skip.
                let status = if blocks {
                    let mut failed = TestCaseStatus::non_success(NonSuccessKind::Error);
                    failed.set_message(format!("not computed: {reason}"));
                    failed
                } else {
                    status
                };
                suite.add_test_case(TestCase::new(gate.gate.name(), status));
            }
            _ if gate.findings.is_empty() => {
                suite.add_test_case(TestCase::new(gate.gate.name(), TestCaseStatus::success()));
            }
            _ => {
                for (level, _, finding) in findings.iter().filter(|(_, g, _)| *g == gate.gate) {
                    let name = format!("{} at {}", finding.rule.id(), finding.location);
                    let mut case = match level {
                        Level::Error => {
                            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                            status
                                .set_message(finding.message.as_str())
                                .set_type(finding.rule.id())
                                .set_description(format!(
                                    "{}\n  --> {}\n  = help: {}",
                                    finding.message, finding.location, finding.remedy
                                ));
                            TestCase::new(name, status)
                        }
                        Level::Warning => {
                            let mut case = TestCase::new(name, TestCaseStatus::success());
                            case.set_system_out(format!(
                                "warning (does not block): {}\n  = help: {}",
                                finding.message, finding.remedy
                            ));
                            case
                        }
                    };
                    case.set_classname(gate.gate.name())
                        .add_property(("fingerprint", finding.fingerprint().as_str()));
                    suite.add_test_case(case);
                }
            }
        }
        report.add_test_suite(suite);
    }
    report.to_string().context("failed to encode the JUnit report")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::gates::Gate;

    fn modes(mode: Mode) -> Modes {
        Modes::uniform(mode)
    }

    #[test]
    fn a_gate_that_could_not_run_is_an_error_only_when_it_blocks() {
        let decided = |mode| {
            let mut gate = GateReport::not_computed(
                Gate::ServiceHealth,
                "Docker is unreachable",
                Default::default(),
            );
            gate.decision = Some(crate::verdict::decide_gate(&gate, &modes(mode), None));
            render(&[gate], &modes(mode)).unwrap()
        };
        let strict = decided(Mode::Strict);
        assert!(
            strict.contains(r#"<error message="not computed: Docker is unreachable"/>"#),
            "{strict}"
        );
        let monitoring = decided(Mode::Monitoring);
        assert!(
            monitoring.contains(r#"<skipped message="Docker is unreachable"/>"#),
            "{monitoring}"
        );
    }
}
