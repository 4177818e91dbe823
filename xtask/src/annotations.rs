//! GitHub Actions output of a run: findings as workflow-command annotations on stdout (most
//! important first, within GitHub's per-step limits) and the findings section of the job
//! summary, kept under the summary's size limit.
//!
//! Escaping follows actions/toolkit (`packages/core/src/command.ts`): data escapes `%`, `\r`
//! and `\n`; property values also escape `:` and `,`. `%` is always escaped first.

use std::fmt::Write as _;

use crate::finding::{Finding, Severity};
use crate::gates::{Gate, GateReport};
use crate::verdict::{self, Modes};

/// GitHub shows at most this many annotations of one level per step.
pub const PER_LEVEL: usize = 10;

/// GitHub refuses a step summary above 1 MiB.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// An annotation's level: what the finding means for the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The finding blocks the run.
    Error,
    /// Reported; does not block.
    Warning,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// Whether the gates run inside GitHub Actions, where annotations are printed.
pub fn on_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true")
}

/// A workflow command's message.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value (`file=`, `title=`, …).
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Every finding with its level, most important first: blocking findings, then the others;
/// within a level errors before warnings, then in gate order and as the gate reported them.
pub fn ordered<'a>(gates: &'a [GateReport], modes: &Modes) -> Vec<(Level, Gate, &'a Finding)> {
    let mut findings: Vec<(Level, Gate, &Finding)> = gates
        .iter()
        .flat_map(|gate| gate.findings.iter().map(move |finding| (gate.gate, finding)))
        .map(|(gate, finding)| {
            let level =
                if verdict::blocks(modes, gate, finding) { Level::Error } else { Level::Warning };
            (level, gate, finding)
        })
        .collect();
    // A stable sort keeps each gate's own order among equals.
    findings.sort_by_key(|(level, gate, finding)| (*level, finding.severity, *gate));
    findings
}

/// One `::error …::…` or `::warning …::…` line.
pub fn command(level: Level, finding: &Finding) -> String {
    let mut properties = Vec::new();
    let location = &finding.location;
    if !location.file.as_os_str().is_empty() {
        properties.push(format!("file={}", escape_property(&location.file.to_string_lossy())));
        if location.line > 0 {
            properties.push(format!("line={}", location.line));
            if location.column > 0 {
                properties.push(format!("col={}", location.column));
            }
        }
    }
    properties.push(format!("title={}", escape_property(finding.rule.id())));
    let message = format!("{}\nhelp: {}", finding.message, finding.remedy);
    format!("::{} {}::{}", level.command(), properties.join(","), escape_data(&message))
}

/// The annotation lines to print: at most [`PER_LEVEL`] per level, most important first, and
/// a notice counting the rest when some do not fit.
pub fn render(gates: &[GateReport], modes: &Modes) -> Vec<String> {
    let findings = ordered(gates, modes);
    let mut lines = Vec::new();
    let mut left_out = [0usize; 2];
    for level in [Level::Error, Level::Warning] {
        let of_level: Vec<_> = findings.iter().filter(|(l, ..)| *l == level).collect();
        for (_, _, finding) in of_level.iter().take(PER_LEVEL) {
            lines.push(command(level, finding));
        }
        left_out[level as usize] = of_level.len().saturating_sub(PER_LEVEL);
    }
    let [errors, warnings] = left_out;
    if errors + warnings > 0 {
        let text = format!(
            "{} more finding(s) not annotated here ({errors} error(s), {warnings} warning(s)): \
             every finding is in the job summary and in logs/report.json",
            errors + warnings
        );
        lines.push(format!("::notice title=meshgate::{}", escape_data(&text)));
    }
    lines
}

/// Prints the annotations on stdout, where the runner reads workflow commands.
pub fn emit(gates: &[GateReport], modes: &Modes) {
    for line in render(gates, modes) {
        crate::term::stdout(&line);
    }
}

/// Prints an annotation for a run that could not finish (exit code 2), e.g. a bad
/// meshgate.toml.
pub fn emit_error(message: &str) {
    crate::term::stdout(&error_command(message));
}

fn error_command(message: &str) -> String {
    format!(
        "::error title={}::{}",
        escape_property("meshgate: the gates could not run"),
        escape_data(message)
    )
}

/// The summary's list of every finding, most important first.
pub fn findings_markdown(gates: &[GateReport], modes: &Modes) -> String {
    let findings = ordered(gates, modes);
    if findings.is_empty() {
        return String::new();
    }
    let mut text = format!("\n### Findings ({})\n\n", findings.len());
    text.push_str("| | rule | where | finding | fix |\n|---|---|---|---|---|\n");
    for (level, _, finding) in findings {
        let icon = match (level, finding.severity) {
            (Level::Error, _) => "🛑 error",
            (Level::Warning, Severity::Error) => "⚠️ warning (not blocking)",
            (Level::Warning, Severity::Warning) => "⚠️ warning",
        };
        let _ = writeln!(
            text,
            "| {icon} | `{}` | `{}` | {} | {} |",
            finding.rule.id(),
            finding.location,
            cell(&finding.message),
            cell(&finding.remedy)
        );
    }
    text
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// `summary` cut at a line boundary so that it, a closing note and the newline the job
/// summary adds fit in `limit` bytes.
pub fn cap_summary(summary: String, limit: usize) -> String {
    if summary.len() < limit {
        return summary;
    }
    let note = format!(
        "\n\n> **Truncated**: the summary exceeded GitHub's {} KiB limit. Every finding is in \
         `logs/report.json`, `logs/meshgate.sarif` and `logs/junit.xml` (the run's artifact).\n",
        limit / 1024
    );
    let mut budget = limit.saturating_sub(note.len() + 1);
    while !summary.is_char_boundary(budget) {
        budget -= 1;
    }
    let cut = summary[..budget].rfind('\n').unwrap_or(0);
    let mut capped = summary[..cut].to_owned();
    capped.push_str(&note);
    capped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::finding::Rule;
    use crate::location::Location;

    fn modes(mode: Mode) -> Modes {
        Modes::uniform(mode)
    }

    #[test]
    fn escaping_follows_the_actions_toolkit() {
        assert_eq!(escape_data("50%\r\nnext: a,b"), "50%25%0D%0Anext: a,b");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        // `%` first: an escape sequence in the input is not taken for one of ours.
        assert_eq!(escape_data("%0A"), "%250A");
        assert_eq!(escape_property("%3A"), "%253A");
    }

    #[test]
    fn a_command_names_file_line_column_and_rule() {
        let finding = Finding::new(
            Rule::NetworkMismatch,
            Location { file: "dir,x/compose.yaml".into(), line: 31, column: 5 },
            "`catalog` is on networks [backend, data]: 100% wrong",
            "attach it to `backend` only",
        );
        assert_eq!(
            command(Level::Error, &finding),
            "::error file=dir%2Cx/compose.yaml,line=31,col=5,title=network/network-mismatch::\
             `catalog` is on networks [backend, data]: 100%25 wrong%0Ahelp: attach it to \
             `backend` only"
        );
        let whole_file = Finding { location: Location::file("meshgate.toml"), ..finding.clone() };
        assert!(
            command(Level::Warning, &whole_file)
                .starts_with("::warning file=meshgate.toml,title=network/network-mismatch::")
        );
        let nowhere = Finding { location: Location::default(), ..finding };
        assert!(command(Level::Error, &nowhere).starts_with("::error title=network/"));
    }

    #[test]
    fn a_run_that_could_not_finish_is_one_error() {
        assert_eq!(
            error_command("meshgate.toml:3:1: unknown key `mdoe`\n  help: did you mean `mode`?"),
            "::error title=meshgate%3A the gates could not run::meshgate.toml:3:1: unknown key \
             `mdoe`%0A  help: did you mean `mode`?"
        );
    }

    fn gates(errors: usize, warnings: usize) -> Vec<GateReport> {
        let finding = |rule: Rule, n: usize| {
            Finding::new(rule, Location::line("compose.yaml", n as u32 + 1), format!("n{n}"), "x")
        };
        // Warnings first in the gate's own order, to show the output reorders them.
        let mut findings: Vec<Finding> =
            (0..warnings).map(|n| finding(Rule::UnquotedPort, n)).collect();
        findings.extend((0..errors).map(|n| finding(Rule::HostNetwork, n)));
        vec![GateReport::from_findings(
            Gate::NetworkContracts,
            findings,
            Default::default(),
            vec![],
        )]
    }

    #[test]
    fn blocking_errors_come_first_ten_per_level_then_a_notice() {
        let lines = render(&gates(12, 11), &modes(Mode::Strict));
        assert_eq!(lines.len(), 21, "{lines:#?}");
        assert!(lines[..10].iter().all(|line| line.starts_with("::error ")), "{lines:#?}");
        assert!(lines[0].ends_with("::n0%0Ahelp: x"), "{}", lines[0]);
        assert!(lines[10..20].iter().all(|line| line.starts_with("::warning ")));
        assert_eq!(
            lines[20],
            "::notice title=meshgate::3 more finding(s) not annotated here (2 error(s), 1 \
             warning(s)): every finding is in the job summary and in logs/report.json"
        );

        let few = render(&gates(1, 2), &modes(Mode::Strict));
        assert_eq!(few.len(), 3);
        assert!(few[0].starts_with("::error "));
    }

    #[test]
    fn the_level_follows_the_enforcement_decision() {
        // In warning mode nothing blocks: errors of the rules become warnings, listed first.
        let lines = render(&gates(2, 1), &modes(Mode::Warning));
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|line| line.starts_with("::warning ")), "{lines:#?}");
        assert!(lines[0].contains("title=network/host-network"), "{}", lines[0]);
        assert!(lines[2].contains("title=network/unquoted-port"), "{}", lines[2]);
    }

    #[test]
    fn the_summary_lists_findings_and_stays_under_the_limit() {
        let text = findings_markdown(&gates(1, 1), &modes(Mode::Strict));
        assert!(text.contains("### Findings (2)"), "{text}");
        assert!(text.contains("| 🛑 error | `network/host-network` | `compose.yaml:1:1` |"));

        let long = "| row |\n".repeat(200_000);
        let capped = cap_summary(long.clone(), SUMMARY_LIMIT);
        assert!(capped.len() < SUMMARY_LIMIT, "{}", capped.len());
        assert!(capped.ends_with("(the run's artifact).\n"));
        assert!(capped.contains("| row |\n\n> **Truncated**"));
        let short = "short\n".to_owned();
        assert_eq!(cap_summary(short.clone(), SUMMARY_LIMIT), short);
        // Never cut inside a character.
        let wide = "é".repeat(600_000);
        assert!(cap_summary(wide, SUMMARY_LIMIT).len() < SUMMARY_LIMIT);
    }
}
