//! `logs/meshgate.sarif`: the run's findings as SARIF 2.1.0, for GitHub code scanning and
//! other SARIF viewers. One rule per rule id the run reported, one result per finding, with
//! its repository-relative location and its fingerprint for matching across runs.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;
use serde_sarif::sarif;

use crate::annotations::{self, Level};
use crate::finding::{Finding, Rule};
use crate::gates::GateReport;
use crate::verdict::Modes;

/// The key of `partialFingerprints` holding [`Finding::fingerprint`].
pub const FINGERPRINT_KEY: &str = "meshgateFingerprint/v1";

/// The SARIF log of a run's findings.
pub fn render(gates: &[GateReport], modes: &Modes) -> anyhow::Result<String> {
    let findings = annotations::ordered(gates, modes);
    let used: BTreeSet<Rule> = findings.iter().map(|(_, _, finding)| finding.rule).collect();
    let rules: Vec<sarif::ReportingDescriptor> =
        used.iter().map(|rule| descriptor(*rule)).collect();
    let results: Vec<sarif::Result> = findings
        .iter()
        .map(|(level, _, finding)| {
            let index = used.iter().position(|rule| rule == &finding.rule).unwrap_or(0);
            result(*level, finding, index)
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name("meshgate")
        .version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://github.com/meshgate/meshgate#readme")
        .rules(rules)
        .build();
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .results(results)
        .column_kind(serde_json::json!("unicodeCodePoints"))
        .build();
    let log = sarif::Sarif::builder()
        .schema(sarif::SCHEMA_URL)
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_string_pretty(&log).context("failed to encode the SARIF log")
}

/// Writes `logs/meshgate.sarif`, whole or not at all.
pub fn write(logs: &Path, gates: &[GateReport], modes: &Modes) -> anyhow::Result<()> {
    crate::report::write_atomically(&logs.join("meshgate.sarif"), render(gates, modes)?.as_bytes())
}

/// Removes an earlier run's log, for a run that could not finish.
pub fn remove(logs: &Path) {
    let _ = std::fs::remove_file(logs.join("meshgate.sarif"));
}

fn descriptor(rule: Rule) -> sarif::ReportingDescriptor {
    let level = match rule.default_severity() {
        crate::finding::Severity::Error => "error",
        crate::finding::Severity::Warning => "warning",
    };
    sarif::ReportingDescriptor::builder()
        .id(rule.id())
        .name(rule.id().replace(['/', '-'], "_"))
        .short_description(
            sarif::MultiformatMessageString::builder().text(rule.description()).build(),
        )
        .default_configuration(
            sarif::ReportingConfiguration::builder().level(serde_json::json!(level)).build(),
        )
        .build()
}

fn result(level: Level, finding: &Finding, rule_index: usize) -> sarif::Result {
    let level = match level {
        Level::Error => sarif::ResultLevel::Error,
        Level::Warning => sarif::ResultLevel::Warning,
    };
    let text = format!("{}\nhelp: {}", finding.message, finding.remedy);
    let mut result = sarif::Result::builder()
        .rule_id(finding.rule.id())
        .rule_index(rule_index as i64)
        .level(level)
        .message(sarif::Message::builder().text(text).build())
        .partial_fingerprints(std::collections::BTreeMap::from([(
            FINGERPRINT_KEY.to_owned(),
            finding.fingerprint(),
        )]))
        .build();
    if let Some(location) = location(&finding.location) {
        result.locations = Some(vec![location]);
    }
    result
}

fn location(location: &crate::location::Location) -> Option<sarif::Location> {
    if location.file.as_os_str().is_empty() {
        return None;
    }
    // Findings name repository-relative files; one outside the repository keeps its absolute
    // path, as a `file://` URI.
    let artifact = if location.file.is_absolute() {
        sarif::ArtifactLocation::builder().uri(format!("file://{}", uri(&location.file))).build()
    } else {
        sarif::ArtifactLocation::builder().uri(uri(&location.file)).uri_base_id("%SRCROOT%").build()
    };
    let mut physical = sarif::PhysicalLocation::builder().artifact_location(artifact).build();
    if location.line > 0 {
        let mut region = sarif::Region::builder().start_line(i64::from(location.line)).build();
        if location.column > 0 {
            region.start_column = Some(i64::from(location.column));
        }
        physical.region = Some(region);
    }
    Some(sarif::Location::builder().physical_location(physical).build())
}

/// A relative path as a URI reference: forward slashes, reserved characters percent-encoded.
fn uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri(Path::new("services/my api/Cargo.toml")), "services/my%20api/Cargo.toml");
        assert_eq!(uri(Path::new("compose.yaml")), "compose.yaml");
        let outside = location(&crate::location::Location::line("/tmp/a b/c.yaml", 3)).unwrap();
        let artifact = outside.physical_location.unwrap().artifact_location.unwrap();
        assert_eq!(artifact.uri.as_deref(), Some("file:///tmp/a%20b/c.yaml"));
        assert_eq!(artifact.uri_base_id, None);
    }
}
