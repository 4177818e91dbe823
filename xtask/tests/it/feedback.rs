//! The run's CI outputs and the pre-commit hook: annotations and the job summary on GitHub
//! Actions, `logs/meshgate.sarif` and `logs/junit.xml`, the workflow linters, and the hook in
//! a clone of the repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{mesh_variant, repo_root, stderr, temp_dir, xtask_with_env};

/// The reference mesh with catalog attached to `data`: two blocking findings, statically.
fn violated(name: &str) -> PathBuf {
    mesh_variant(name, |compose| {
        compose.replace("networks: [backend]\n", "networks: [backend, data]\n")
    })
}

/// A tool `.ci/run` installs into `.ci/.venv`, else one on the PATH. `None` when missing
/// outside CI; under CI a missing tool fails the test.
fn ci_tool(name: &str) -> Option<PathBuf> {
    let venv = repo_root().join(".ci/.venv/bin").join(name);
    if venv.is_file() {
        return Some(venv);
    }
    #[allow(clippy::disallowed_methods, reason = "a presence check")]
    let on_path = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if on_path {
        return Some(PathBuf::from(name));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "`{name}` is missing and CI is set: `.ci/run` installs it (pip install -r .ci/requirements.txt)"
    );
    #[allow(clippy::print_stderr, reason = "a local run says what it did not cover")]
    {
        eprintln!("`{name}` is not installed: skipped (pip install -r .ci/requirements.txt)");
    }
    None
}

#[allow(clippy::disallowed_methods, reason = "tests run git and the linters directly")]
fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .env("NO_COLOR", "1")
        .env("MESHGATE_XTASK", env!("CARGO_BIN_EXE_xtask"))
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn on_github_actions_findings_become_annotations_and_the_summary_lists_them() {
    let dir = violated("annotations");
    let step_summary = dir.join("step-summary.md");
    let config = dir.join("meshgate.toml");
    let output = xtask_with_env(
        &["gates", "--static", "--config", config.to_str().unwrap()],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", step_summary.to_str().unwrap())],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines.iter().all(|line| line.starts_with("::error file=")), "{stdout}");
    let mismatch = lines.iter().find(|line| line.contains("title=network/network-mismatch"));
    let mismatch = mismatch.unwrap_or_else(|| panic!("{stdout}"));
    assert!(mismatch.contains(",line=33,col="), "{mismatch}");
    assert!(mismatch.contains("%0Ahelp: remove `data`"), "{mismatch}");

    let summary = std::fs::read_to_string(&step_summary).unwrap();
    assert!(summary.contains("### Findings (2)"), "{summary}");
    assert!(summary.contains("`network/network-mismatch`"), "{summary}");

    // Without GITHUB_ACTIONS nothing goes to stdout.
    let output = xtask_with_env(&["gates", "--static", "--config", config.to_str().unwrap()], &[]);
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn a_violation_gives_a_valid_sarif_log_and_a_junit_failure() {
    let dir = violated("sarif-junit");
    let config = dir.join("meshgate.toml");
    let output = xtask_with_env(&["gates", "--static", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

    // SARIF: parsed back into the format's model, then the fields code scanning needs.
    let sarif_path = dir.join("logs/meshgate.sarif");
    let sarif_text = std::fs::read_to_string(&sarif_path).unwrap();
    let typed: serde_sarif::sarif::Sarif = serde_json::from_str(&sarif_text).unwrap();
    assert_eq!(typed.runs.len(), 1);
    let sarif: serde_json::Value = serde_json::from_str(&sarif_text).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let sarif_run = &sarif["runs"][0];
    assert_eq!(sarif_run["tool"]["driver"]["name"], "meshgate");
    let rules = sarif_run["tool"]["driver"]["rules"].as_array().unwrap();
    let rule_ids: Vec<&str> = rules.iter().map(|rule| rule["id"].as_str().unwrap()).collect();
    assert_eq!(rule_ids, ["network/undeclared-reachability", "network/network-mismatch"]);
    for rule in rules {
        assert!(!rule["shortDescription"]["text"].as_str().unwrap().is_empty(), "{rule}");
    }
    let results = sarif_run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{sarif:#}");
    for result in results {
        let rule_index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(result["ruleId"], rules[rule_index]["id"]);
        assert_eq!(result["level"], "error");
        assert!(result["message"]["text"].as_str().unwrap().contains("\nhelp: "));
        let physical = &result["locations"][0]["physicalLocation"];
        assert!(physical["artifactLocation"]["uri"].as_str().unwrap().ends_with("compose.yaml"));
        assert_eq!(physical["region"]["startLine"], 33);
        assert!(physical["region"]["startColumn"].as_u64().unwrap() > 0);
        assert_eq!(
            result["partialFingerprints"]["meshgateFingerprint/v1"].as_str().unwrap().len(),
            16
        );
    }
    // And against the SARIF 2.1.0 schema, where the checker is installed.
    if let Some(python) = ci_tool("python3").filter(|python| python.is_absolute()) {
        let schema = repo_root().join("xtask/tests/fixtures/sarif/sarif-schema-2.1.0.json");
        let check = run(
            &python,
            &[
                "-c",
                "import json, sys, jsonschema\n\
                 jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
                sarif_path.to_str().unwrap(),
                schema.to_str().unwrap(),
            ],
            &dir,
        );
        assert!(check.status.success(), "schema validation failed:\n{}", text(&check));
    }

    // JUnit: one suite per gate; the violation fails the network gate's cases.
    let xml = std::fs::read_to_string(dir.join("logs/junit.xml")).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let names: Vec<&str> = junit.test_suites.iter().map(|suite| suite.name.as_str()).collect();
    assert_eq!(names, ["network-contracts", "service-health", "artifact-hygiene", "coverage"]);
    let network = &junit.test_suites[0];
    assert_eq!(network.failures, 2, "{xml}");
    let mismatch = network
        .test_cases
        .iter()
        .find(|case| case.name.as_str().starts_with("network/network-mismatch at "))
        .unwrap_or_else(|| panic!("{xml}"));
    match &mismatch.status {
        quick_junit::TestCaseStatus::NonSuccess { kind, ty, .. } => {
            assert_eq!(*kind, quick_junit::NonSuccessKind::Failure);
            assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("network/network-mismatch"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(junit.test_suites[1].skipped, 1, "the health gate does not run with --static");

    // A run that cannot finish leaves neither file behind for an upload to take as its own.
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[policy.unknown]\n");
    std::fs::write(&config, toml).unwrap();
    let output = xtask_with_env(&["gates", "--static", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!sarif_path.exists());
    assert!(!dir.join("logs/junit.xml").exists());
}

#[test]
fn the_workflows_pass_actionlint_and_zizmor() {
    let root = repo_root();
    if let Some(actionlint) = ci_tool("actionlint") {
        let output = run(&actionlint, &["-no-color"], &root);
        assert!(output.status.success(), "actionlint:\n{}", text(&output));
    }
    if let Some(zizmor) = ci_tool("zizmor") {
        let output = run(&zizmor, &["--offline", "--no-progress", ".github/workflows/"], &root);
        assert!(output.status.success(), "zizmor:\n{}", text(&output));
        assert!(text(&output).contains("No findings"), "zizmor:\n{}", text(&output));
    }
}

fn git(dir: &Path, args: &[&str]) -> Output {
    run("git", args, dir)
}

fn git_ok(dir: &Path, args: &[&str]) {
    let output = git(dir, args);
    assert!(output.status.success(), "git {args:?}:\n{}", text(&output));
}

/// A clone of this repository with a committer configured.
fn clone(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let clone = dir.join("repo");
    git_ok(&dir, &["clone", "--quiet", "--no-hardlinks", repo_root().to_str().unwrap(), "repo"]);
    git_ok(&clone, &["config", "user.name", "Hook Test"]);
    git_ok(&clone, &["config", "user.email", "hook@example.com"]);
    git_ok(&clone, &["config", "commit.gpgsign", "false"]);
    clone
}

#[test]
fn the_hook_blocks_a_staged_contract_break_and_lets_a_clean_commit_through() {
    let repo = clone("hook");
    let install = run(env!("CARGO_BIN_EXE_xtask"), &["hooks", "install"], &repo);
    assert!(install.status.success(), "{}", text(&install));
    let hook = repo.join(".git/hooks/pre-commit");
    assert!(std::fs::read_to_string(&hook).unwrap().contains("hooks run"));

    // A staged compose change that breaks a contract: blocked, with the rule id.
    let compose = repo.join("compose.yaml");
    let clean = std::fs::read_to_string(&compose).unwrap();
    let broken = clean.replace("networks: [backend]\n", "networks: [backend, data]\n");
    assert_ne!(clean, broken);
    std::fs::write(&compose, &broken).unwrap();
    git_ok(&repo, &["add", "compose.yaml"]);
    let commit = git(&repo, &["commit", "--quiet", "-m", "attach catalog to data"]);
    assert!(!commit.status.success(), "{}", text(&commit));
    assert!(text(&commit).contains("error[network/network-mismatch]"), "{}", text(&commit));
    assert!(text(&commit).contains("the commit is blocked"), "{}", text(&commit));
    // The report the hook names outlives the hook's temporary export.
    let kept = repo.join("logs/pre-commit/report.json");
    assert!(text(&commit).contains(&kept.display().to_string()), "{}", text(&commit));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    assert_eq!(report["verdict"], "failed", "{report}");
    assert!(report["gates"].to_string().contains("compose.yaml"), "{report}");

    // What is judged is the index, not the working tree: the break left unstaged does not
    // block a clean staged change.
    git_ok(&repo, &["reset", "--quiet", "compose.yaml"]);
    let readme = repo.join("README.md");
    let mut text_before = std::fs::read_to_string(&readme).unwrap();
    text_before.push_str("\nA clean change.\n");
    std::fs::write(&readme, text_before).unwrap();
    git_ok(&repo, &["add", "README.md"]);
    let commit = git(&repo, &["commit", "--quiet", "-m", "a clean change"]);
    assert!(commit.status.success(), "{}", text(&commit));
    assert_eq!(std::fs::read_to_string(&compose).unwrap(), broken, "the working tree is untouched");

    // A staged log file is what the commit would track: blocked by the hygiene gate too. The
    // user's index is the one that still holds it afterwards, unchanged by the hook.
    std::fs::write(repo.join("debug.log"), "started\n").unwrap();
    git_ok(&repo, &["add", "debug.log"]);
    // One forced past `.gitignore` is staged all the same.
    std::fs::create_dir_all(repo.join("logs")).unwrap();
    std::fs::write(repo.join("logs/run.log"), "started\n").unwrap();
    git_ok(&repo, &["add", "--force", "logs/run.log"]);
    let commit = git(&repo, &["commit", "--quiet", "-m", "add a log"]);
    assert!(!commit.status.success(), "{}", text(&commit));
    assert!(text(&commit).contains("error[hygiene/tracked-log]"), "{}", text(&commit));
    assert!(text(&commit).contains("logs/run.log"), "{}", text(&commit));
    let staged = git(&repo, &["diff", "--cached", "--name-only"]);
    assert_eq!(String::from_utf8_lossy(&staged.stdout).trim(), "debug.log\nlogs/run.log");
}

#[test]
fn install_respects_core_hooks_path_and_keeps_a_foreign_hook() {
    let repo = clone("hook-install");
    git_ok(&repo, &["config", "core.hooksPath", "custom-hooks"]);
    std::fs::create_dir_all(repo.join("custom-hooks")).unwrap();
    let foreign = repo.join("custom-hooks/pre-commit");
    std::fs::write(&foreign, "#!/bin/sh\necho team hook\n").unwrap();

    let refused = run(env!("CARGO_BIN_EXE_xtask"), &["hooks", "install"], &repo);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("is not meshgate's hook"), "{}", text(&refused));
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "#!/bin/sh\necho team hook\n");

    let forced = run(env!("CARGO_BIN_EXE_xtask"), &["hooks", "install", "--force"], &repo);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(std::fs::read_to_string(&foreign).unwrap().contains("meshgate pre-commit hook"));
    let kept = repo.join("custom-hooks/pre-commit.local");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "#!/bin/sh\necho team hook\n");
    assert!(!repo.join(".git/hooks/pre-commit").exists());

    // Installing again over meshgate's own hook needs no --force.
    let again = run(env!("CARGO_BIN_EXE_xtask"), &["hooks", "install"], &repo);
    assert!(again.status.success(), "{}", text(&again));

    // The team's hook still runs, first: when it refuses, the commit is refused.
    let kept = repo.join("custom-hooks/pre-commit.local");
    std::fs::write(&kept, "#!/bin/sh\necho team hook refuses >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(repo.join("NOTES.md"), "a clean change\n").unwrap();
    git_ok(&repo, &["add", "NOTES.md"]);
    let commit = git(&repo, &["commit", "--quiet", "-m", "a clean change"]);
    assert!(!commit.status.success(), "{}", text(&commit));
    assert!(text(&commit).contains("team hook refuses"), "{}", text(&commit));
    std::fs::write(&kept, "#!/bin/sh\nexit 0\n").unwrap();
    let commit = git(&repo, &["commit", "--quiet", "-m", "a clean change"]);
    assert!(commit.status.success(), "{}", text(&commit));
}
