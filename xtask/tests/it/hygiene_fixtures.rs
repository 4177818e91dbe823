//! The fixture corpus of the artifact hygiene gate: every folder under
//! `tests/fixtures/hygiene/` is a small project (Compose file, Dockerfiles, `.dockerignore`,
//! meshgate.toml) with an `expect.toml` listing exactly the findings the gate's static half
//! must give. With `git = true` the folder becomes a git repository with everything staged,
//! after the `[files]` of `expect.toml` are written: files this repository must not track
//! itself (logs, build outputs, keys).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use xtask::finding::Rule;

use crate::support::{copy_dir, stderr, temp_dir, xtask};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Make the copy a git repository with every file staged.
    #[serde(default)]
    git: bool,
    /// The findings, as rule id and `file:line` relative to the fixture's folder.
    findings: Vec<Expected>,
    /// Files to write into the copy before it is staged.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    at: String,
}

const FAMILY: &str = "hygiene";

pub(crate) fn fixtures_dir() -> PathBuf {
    crate::support::fixtures_of(FAMILY)
}

fn fixture_names() -> Vec<String> {
    crate::support::fixture_names(FAMILY)
}

fn read_expect(name: &str) -> Expect {
    crate::support::read_expect(FAMILY, name)
}

pub(crate) fn git(dir: &Path, args: &[&str]) {
    #[allow(clippy::disallowed_methods, reason = "setting up a fixture repository")]
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// Runs the static hygiene gate on `dir` and returns the exit code and findings as
/// (rule, `file:line` relative to `dir`, severity).
pub(crate) fn hygiene_findings(dir: &Path) -> (Option<i32>, Vec<(String, String, String)>, String) {
    let config = dir.join("meshgate.toml");
    let output = xtask(&[
        "gates",
        "artifact-hygiene",
        "--static",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        return (output.status.code(), Vec::new(), stderr(&output));
    };
    let gate = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|gate| gate["gate"] == "artifact-hygiene")
        .unwrap();
    let mut found = Vec::new();
    for finding in gate["findings"].as_array().unwrap() {
        let location = &finding["location"];
        let file = Path::new(location["file"].as_str().unwrap());
        let file = file.strip_prefix(dir).unwrap_or(file);
        found.push((
            finding["rule"].as_str().unwrap().to_owned(),
            format!("{}:{}", file.display(), location["line"]),
            finding["severity"].as_str().unwrap().to_owned(),
        ));
    }
    (output.status.code(), found, stderr(&output))
}

/// Prepares a copy of a fixture: its files, its `[files]`, and git when asked.
pub(crate) fn prepare(name: &str) -> PathBuf {
    let expect = read_expect(name);
    let dir = temp_dir(&format!("hygiene-{name}"));
    copy_dir(&fixtures_dir().join(name), &dir);
    std::fs::remove_file(dir.join("expect.toml")).unwrap();
    for (path, text) in &expect.files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    if expect.git {
        git(&dir, &["init", "-q"]);
        git(&dir, &["add", "-A"]);
    }
    dir
}

fn run_fixture(name: &str) -> Option<String> {
    let expect = read_expect(name);
    let dir = prepare(name);
    let (code, found, stderr) = hygiene_findings(&dir);
    let failing = found.iter().any(|(_, _, severity)| severity == "error");
    let mut found: Vec<Expected> =
        found.into_iter().map(|(rule, at, _)| Expected { rule, at }).collect();
    let mut expected = expect.findings;
    found.sort();
    expected.sort();
    if found == expected && code == Some(i32::from(failing)) {
        let _ = std::fs::remove_dir_all(&dir);
        return None;
    }
    let (found, expected): (BTreeSet<Expected>, BTreeSet<Expected>) =
        (found.into_iter().collect(), expected.into_iter().collect());
    let show = |set: &BTreeSet<Expected>| -> String {
        set.iter().map(|e| format!("\n    {} at {}", e.rule, e.at)).collect()
    };
    Some(format!(
        "exit {code:?} (or a finding given twice)\n  missing:{}\n  unexpected:{}\n{stderr}",
        show(&expected.difference(&found).cloned().collect()),
        show(&found.difference(&expected).cloned().collect()),
    ))
}

#[test]
fn every_hygiene_fixture_gives_exactly_its_expected_findings() {
    let names = fixture_names();
    assert!(names.len() >= 25, "the corpus shrank to {} fixtures", names.len());
    let good = names.iter().filter(|name| name.starts_with("pass-")).count();
    assert!(good >= 8, "only {good} fixtures show a clean project");
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| run_fixture(name).map(|why| format!("fixture `{name}`: {why}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_static_hygiene_rule_has_a_fixture_where_it_fires_alone() {
    let mut alone = BTreeSet::new();
    for name in fixture_names() {
        let findings = read_expect(&name).findings;
        let rules: BTreeSet<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        if rules.len() == 1 {
            alone.insert(findings[0].rule.clone());
        }
    }
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .filter(|rule| !rule.needs_running_mesh())
        .map(|rule| rule.id())
        .filter(|id| id.starts_with("hygiene/"))
        .filter(|id| !alone.contains(*id))
        .collect();
    assert!(missing.is_empty(), "no fixture shows these rules firing alone: {missing:?}");
}
