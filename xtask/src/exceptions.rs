//! Reviewed exceptions: the one file (`meshgate-exceptions.toml` unless configured) where a
//! finding is suppressed by rule id and fingerprint or path, with a reason, an owner and an
//! expiry date.
//!
//! [`apply`] is the only place expiry is judged, and it runs once per run before any output
//! is written, so every gate and every output (terminal, report, summary, statuses) sees the
//! same result: expired exceptions suppress nothing and are `exception/expired` findings,
//! exceptions that match nothing in a gate that ran in full are `exception/stale`, and those
//! expiring within `exceptions.warn_within` are `exception/expiring`.
//!
//! ```toml
//! [[exception]]
//! rule = "network/undeclared-reachability"
//! fingerprint = "3f1c0a9d2b7e4c51"   # or: path = "compose.yaml" (a glob), or both
//! reason = "the legacy importer shares `data` until it moves to the API"
//! owner = "platform-team"
//! expires = 2027-01-31
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{LineIndex, toml_error};
use crate::finding::{Finding, Rule};
use crate::gates::{Gate, GateReport, Status};
use crate::location::{InputError, InputErrors, Location};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    #[serde(default)]
    exception: Vec<Spanned<ExceptionRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionRaw {
    rule: Spanned<String>,
    fingerprint: Option<String>,
    path: Option<Spanned<String>>,
    reason: Option<String>,
    owner: Option<String>,
    expires: Option<Spanned<toml::value::Datetime>>,
}

/// One reviewed exception.
#[derive(Clone, Debug, Serialize)]
pub struct Exception {
    #[serde(serialize_with = "serialize_rule")]
    pub rule: Rule,
    pub fingerprint: Option<String>,
    pub path: Option<String>,
    #[serde(skip)]
    glob: Option<globset::GlobMatcher>,
    pub reason: String,
    pub owner: String,
    /// `YYYY-MM-DD`: the last day it suppresses.
    pub expires: String,
    #[serde(skip)]
    expires_at: SystemTime,
    pub location: Location,
}

fn serialize_rule<S: serde::Serializer>(rule: &Rule, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(rule.id())
}

impl Exception {
    fn matches(&self, finding: &Finding) -> bool {
        finding.rule == self.rule
            && self.fingerprint.as_ref().is_none_or(|f| *f == finding.fingerprint())
            && self.glob.as_ref().is_none_or(|glob| glob.is_match(&finding.location.file))
    }
}

/// A finding an exception suppressed, kept in the report with the exception's reason.
#[derive(Clone, Debug, Serialize)]
pub struct Suppressed {
    pub finding: Finding,
    pub exception: Location,
    pub reason: String,
    pub owner: String,
    pub expires: String,
}

/// Reads the exception file; a missing file holds no exceptions. `repo` is where the file's
/// paths and locations are relative to.
pub fn load(file: &Path, repo: &Path) -> anyhow::Result<Vec<Exception>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", file.display()));
        }
    };
    let shown: PathBuf = file.strip_prefix(repo).unwrap_or(file).to_path_buf();
    let raw: FileRaw = toml::from_str(&text).map_err(|error| toml_error(&shown, &text, &error))?;
    let lines = LineIndex::new(&text);
    let at = |span: std::ops::Range<usize>| Location::line(&shown, lines.line_of(span.start));
    let mut errors = Vec::new();
    let mut exceptions = Vec::new();
    for entry in raw.exception {
        let location = at(entry.span());
        let raw = entry.into_inner();
        let mut problem = |message: String, help: &str| {
            errors.push(InputError::new(location.clone(), message, help));
        };
        let rule = Rule::from_id(raw.rule.get_ref());
        if rule.is_none() {
            problem(
                format!("`rule = \"{}\"` names no rule", raw.rule.get_ref()),
                "use a rule id as the reports print it; README.md lists them",
            );
        }
        if raw.fingerprint.is_none() && raw.path.is_none() {
            problem(
                "the exception names neither a `fingerprint` nor a `path`, so it would suppress the rule everywhere".into(),
                "copy the finding's `fingerprint` from logs/report.json, or give the `path` it is in",
            );
        }
        let glob = match &raw.path {
            Some(path) => match globset::Glob::new(path.get_ref()) {
                Ok(glob) => Some(glob.compile_matcher()),
                Err(error) => {
                    problem(
                        format!("`path` is not a glob: {error}"),
                        "write a path such as `services/*/Dockerfile`",
                    );
                    None
                }
            },
            None => None,
        };
        let mut required = |value: Option<String>, key: &str, help: &str| match value {
            Some(value) if !value.trim().is_empty() => value,
            _ => {
                errors.push(InputError::new(
                    location.clone(),
                    format!("the exception has no `{key}`"),
                    help,
                ));
                String::new()
            }
        };
        let reason =
            required(raw.reason, "reason", "say why the finding is accepted, for the reviewers");
        let owner = required(raw.owner, "owner", "name who answers for it (a person or a team)");
        let expires = match raw.expires.as_ref().map(|e| (e.get_ref(), at(e.span()))) {
            Some((toml::value::Datetime { date: Some(date), time: None, offset: None }, _)) => {
                Some(date.to_string())
            }
            Some((_, location)) => {
                errors.push(InputError::new(
                    location,
                    "`expires` is not a date",
                    "write a date without quotes, such as `expires = 2027-01-31`",
                ));
                None
            }
            None => {
                errors.push(InputError::new(
                    location.clone(),
                    "the exception has no `expires` date",
                    "add `expires = YYYY-MM-DD`; exceptions are reviewed again when they expire",
                ));
                None
            }
        };
        let expires_at = expires.as_ref().and_then(|date| end_of_day(date));
        if let (Some(rule), Some(expires), Some(expires_at)) = (rule, expires, expires_at) {
            exceptions.push(Exception {
                rule,
                fingerprint: raw.fingerprint,
                path: raw.path.map(Spanned::into_inner),
                glob,
                reason,
                owner,
                expires,
                expires_at,
                location,
            });
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    Ok(exceptions)
}

/// The end of a `YYYY-MM-DD` day in UTC: an exception suppresses through its last day.
fn end_of_day(date: &str) -> Option<SystemTime> {
    let start = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    Some(start + Duration::from_secs(86_400))
}

/// The gate that reports a rule's findings.
pub fn gate_of(rule: Rule) -> Option<Gate> {
    let family = rule.id().split('/').next()?;
    match family {
        "discovery" | "network" => Some(Gate::NetworkContracts),
        "health" => Some(Gate::ServiceHealth),
        "hygiene" => Some(Gate::ArtifactHygiene),
        "coverage" => Some(Gate::Coverage),
        _ => None,
    }
}

/// Whether a gate's report can tell that a rule found nothing: the gate ran, and so did the
/// half of it the rule belongs to (a `--static` run judges no rule that needs running
/// containers, a `--runtime-only` run no static rule).
pub fn judged(report: &GateReport, rule: Rule) -> bool {
    if !matches!(report.status, Status::Passed | Status::Failed) {
        return false;
    }
    match report.scope {
        None => true,
        Some(scope) if scope.starts_with("static checks only") => !rule.needs_running_mesh(),
        Some(scope) if scope.starts_with("runtime checks only") => rule.needs_running_mesh(),
        Some(_) => false,
    }
}

/// Applies the exceptions to the gates' findings as of `now`: suppressed findings move to
/// each gate's `suppressed`, findings about the exceptions themselves join the gate of the
/// rule they name, and each gate's status follows its remaining findings.
pub fn apply(
    reports: &mut [GateReport],
    exceptions: &[Exception],
    now: SystemTime,
    warn_within: Duration,
) {
    for exception in exceptions {
        let Some(gate) = gate_of(exception.rule) else { continue };
        let Some(report) = reports.iter_mut().find(|report| report.gate == gate) else {
            // The gate did not run at all: nothing to judge the exception against.
            continue;
        };
        let finding = |rule: Rule, message: String, remedy: &str| {
            Finding::new(rule, exception.location.clone(), message, remedy).key(format!(
                "{}|{:?}|{:?}",
                exception.rule.id(),
                exception.fingerprint,
                exception.path
            ))
        };
        if now >= exception.expires_at {
            report.findings.push(finding(
                Rule::ExceptionExpired,
                format!(
                    "the exception for `{}` expired on {} and suppresses nothing (owner: {})",
                    exception.rule.id(),
                    exception.expires,
                    exception.owner
                ),
                "fix the finding and remove the exception, or review it again and set a new `expires`",
            ));
            continue;
        }
        let (matched, kept): (Vec<Finding>, Vec<Finding>) =
            std::mem::take(&mut report.findings).into_iter().partition(|f| exception.matches(f));
        report.findings = kept;
        if matched.is_empty() && judged(report, exception.rule) {
            report.findings.push(finding(
                Rule::ExceptionStale,
                format!("the exception for `{}` matches no finding", exception.rule.id()),
                "remove the exception: what it excused is gone",
            ));
        }
        if exception.expires_at.duration_since(now).unwrap_or_default() <= warn_within {
            report.findings.push(finding(
                Rule::ExceptionExpiring,
                format!(
                    "the exception for `{}` expires on {} (owner: {})",
                    exception.rule.id(),
                    exception.expires,
                    exception.owner
                ),
                "fix the finding before then, or review the exception and extend `expires`",
            ));
        }
        report.suppressed.extend(matched.into_iter().map(|finding| Suppressed {
            finding,
            exception: exception.location.clone(),
            reason: exception.reason.clone(),
            owner: exception.owner.clone(),
            expires: exception.expires.clone(),
        }));
    }
    for report in reports.iter_mut() {
        if matches!(report.status, Status::Passed | Status::Failed) {
            let failed =
                report.findings.iter().any(|f| f.severity == crate::finding::Severity::Error);
            report.status = if failed { Status::Failed } else { Status::Passed };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn write(text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "meshgate-exceptions-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("meshgate-exceptions.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    fn host_network() -> Finding {
        Finding::new(Rule::HostNetwork, Location::line("compose.yaml", 7), "`api` uses host", "fix")
            .service("api")
    }

    fn network_gate(findings: Vec<Finding>) -> Vec<GateReport> {
        vec![GateReport::from_findings(Gate::NetworkContracts, findings, Duration::ZERO, vec![])]
    }

    fn exception(fingerprint: &str, expires: &str) -> String {
        format!(
            "[[exception]]\nrule = \"network/host-network\"\nfingerprint = \"{fingerprint}\"\nreason = \"vendor image\"\nowner = \"platform\"\nexpires = {expires}\n"
        )
    }

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-12-04T12:00:00Z").unwrap()
    }

    #[test]
    fn a_matching_exception_suppresses_and_the_gate_passes() {
        let finding = host_network();
        let (dir, file) = write(&exception(&finding.fingerprint(), "2027-06-30"));
        let exceptions = load(&file, &dir).unwrap();
        let mut reports = network_gate(vec![finding]);
        apply(&mut reports, &exceptions, now(), 14 * DAY);
        assert!(reports[0].findings.is_empty(), "{:?}", reports[0].findings);
        assert_eq!(reports[0].status, Status::Passed);
        assert_eq!(reports[0].suppressed.len(), 1);
        assert_eq!(reports[0].suppressed[0].reason, "vendor image");
    }

    #[test]
    fn expired_exceptions_suppress_nothing_and_are_findings_at_their_line() {
        let finding = host_network();
        let (dir, file) =
            write(&format!("# reviewed\n{}", exception(&finding.fingerprint(), "2026-12-03")));
        let exceptions = load(&file, &dir).unwrap();
        let mut reports = network_gate(vec![finding]);
        apply(&mut reports, &exceptions, now(), 14 * DAY);
        let rules: Vec<&str> = reports[0].findings.iter().map(|f| f.rule.id()).collect();
        assert_eq!(rules, ["network/host-network", "exception/expired"]);
        assert_eq!(reports[0].findings[1].location.line, 2);
        assert_eq!(reports[0].status, Status::Failed);
        // The last day still counts.
        let mut reports = network_gate(vec![host_network()]);
        let today = humantime::parse_rfc3339("2026-12-03T23:59:00Z").unwrap();
        apply(&mut reports, &exceptions, today, Duration::ZERO);
        assert!(reports[0].findings.is_empty(), "{:?}", reports[0].findings);
    }

    #[test]
    fn stale_and_expiring_exceptions_are_warnings() {
        let (dir, file) = write(&exception("0000000000000000", "2026-12-10"));
        let exceptions = load(&file, &dir).unwrap();
        let mut reports = network_gate(vec![]);
        apply(&mut reports, &exceptions, now(), 14 * DAY);
        let rules: Vec<&str> = reports[0].findings.iter().map(|f| f.rule.id()).collect();
        assert_eq!(rules, ["exception/stale", "exception/expiring"]);
        assert_eq!(reports[0].status, Status::Passed, "warnings only");
        // A gate that ran only in part cannot tell a stale exception for the other part.
        let mut reports = network_gate(vec![]);
        reports[0].scope = Some("runtime checks only");
        apply(&mut reports, &exceptions, now(), Duration::ZERO);
        assert!(reports[0].findings.is_empty(), "{:?}", reports[0].findings);
        let mut reports = network_gate(vec![]);
        reports[0].scope = Some("static checks only");
        assert!(judged(&reports[0], Rule::HostNetwork));
        assert!(!judged(&reports[0], Rule::EdgeRefused));
        reports[0].status = Status::NotComputed("Docker is unreachable".into());
        assert!(!judged(&reports[0], Rule::HostNetwork));
    }

    #[test]
    fn an_exception_for_another_fingerprint_or_path_suppresses_nothing() {
        let (dir, file) = write(
            "[[exception]]\nrule = \"network/host-network\"\npath = \"other/*.yaml\"\nreason = \"r\"\nowner = \"o\"\nexpires = 2027-01-01\n",
        );
        let exceptions = load(&file, &dir).unwrap();
        let mut reports = network_gate(vec![host_network()]);
        apply(&mut reports, &exceptions, now(), Duration::ZERO);
        assert_eq!(reports[0].findings.len(), 2, "the finding stays, the exception is stale");
        assert_eq!(reports[0].status, Status::Failed);
    }

    #[test]
    fn incomplete_exceptions_are_errors_naming_their_line() {
        let (dir, file) = write(
            "[[exception]]\nrule = \"network/host-network\"\nfingerprint = \"ab\"\nexpires = 2027-01-01T10:00:00\n\n[[exception]]\nrule = \"network/nope\"\npath = \"x\"\nreason = \"r\"\nowner = \"o\"\nexpires = 2027-01-01\n",
        );
        let error = format!("{:#}", load(&file, &dir).unwrap_err());
        assert!(error.contains("meshgate-exceptions.toml:1"), "{error}");
        assert!(error.contains("no `reason`") && error.contains("no `owner`"), "{error}");
        assert!(error.contains("`expires` is not a date"), "{error}");
        assert!(error.contains("meshgate-exceptions.toml:6"), "{error}");
        assert!(error.contains("names no rule"), "{error}");
        let (dir, file) =
            write("[[exception]]\nrule = \"network/host-network\"\nfingerprnt = \"x\"\n");
        let error = format!("{:#}", load(&file, &dir).unwrap_err());
        assert!(error.contains("fingerprnt"), "{error}");
    }
}
