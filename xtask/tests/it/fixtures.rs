//! The fixture corpus of the network contracts gate: every folder under
//! `tests/fixtures/network/` is a mesh (Compose files, `.env`, a meshgate.toml carrying its
//! contracts) with an `expect.toml` listing exactly the findings its static gate must give.
//! An extra finding fails as surely as a missing one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use xtask::finding::Rule;

use crate::support::{copy_dir, stderr, temp_dir, xtask};

/// A fixture's `expect.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Extra flags for `cargo xtask gates network-contracts --static`.
    #[serde(default)]
    args: Vec<String>,
    /// The findings, as rule id and `file:line` relative to the fixture's folder.
    findings: Vec<Expected>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    at: String,
}

const FAMILY: &str = "network";

fn fixtures_dir() -> PathBuf {
    crate::support::fixtures_of(FAMILY)
}

fn fixture_names() -> Vec<String> {
    crate::support::fixture_names(FAMILY)
}

fn read_expect(name: &str) -> Expect {
    crate::support::read_expect(FAMILY, name)
}

/// Runs one fixture in a copy of its folder (the run writes `logs/` there) and returns what
/// differs from its expectations, if anything.
fn run_fixture(name: &str) -> Option<String> {
    let expect = read_expect(name);
    let dir = temp_dir(&format!("fixture-{name}"));
    copy_dir(&fixtures_dir().join(name), &dir);
    let config = dir.join("meshgate.toml");
    let mut args = vec!["gates", "network-contracts", "--static", "--json", "--config"];
    args.push(config.to_str().unwrap());
    args.extend(expect.args.iter().map(String::as_str));
    let output = xtask(&args);
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        return Some(format!("exit {:?}, no report:\n{}", output.status.code(), stderr(&output)));
    };

    let gate = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|gate| gate["gate"] == "network-contracts")
        .unwrap();
    let mut failing = false;
    // A list, not a set: a finding reported twice is one too many.
    let mut found = Vec::new();
    for finding in gate["findings"].as_array().unwrap() {
        failing |= finding["severity"] == "error";
        let location = &finding["location"];
        let file = Path::new(location["file"].as_str().unwrap());
        let file = file.strip_prefix(&dir).unwrap_or(file);
        found.push(Expected {
            rule: finding["rule"].as_str().unwrap().to_owned(),
            at: format!("{}:{}", file.display(), location["line"]),
        });
    }
    let mut expected = expect.findings;
    found.sort();
    expected.sort();
    let code = output.status.code();
    if found == expected && code == Some(i32::from(failing)) {
        return None;
    }
    let (found, expected): (BTreeSet<Expected>, BTreeSet<Expected>) =
        (found.into_iter().collect(), expected.into_iter().collect());
    let show = |set: &BTreeSet<Expected>| -> String {
        set.iter().map(|e| format!("\n    {} at {}", e.rule, e.at)).collect()
    };
    Some(format!(
        "exit {code:?} (or a finding given twice)\n  missing:{}\n  unexpected:{}\n{}",
        show(&expected.difference(&found).cloned().collect()),
        show(&found.difference(&expected).cloned().collect()),
        stderr(&output)
    ))
}

#[test]
fn every_fixture_gives_exactly_its_expected_findings() {
    let names = fixture_names();
    assert!(names.len() >= 30, "the corpus shrank to {} fixtures", names.len());
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| run_fixture(name).map(|why| format!("fixture `{name}`: {why}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_network_and_discovery_rule_has_a_fixture_where_it_fires_alone() {
    let alone: BTreeSet<String> = fixture_names()
        .iter()
        .map(|name| read_expect(name).findings)
        .filter(|findings| findings.len() == 1)
        .map(|mut findings| findings.remove(0).rule)
        .collect();
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .filter(|rule| !rule.needs_running_mesh())
        .map(|rule| rule.id())
        .filter(|id| id.starts_with("network/") || id.starts_with("discovery/"))
        .filter(|id| !alone.contains(*id))
        .collect();
    assert!(missing.is_empty(), "no fixture shows these rules firing alone: {missing:?}");
}
