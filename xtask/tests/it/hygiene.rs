//! The artifact hygiene gate beyond its fixture corpus: the repository itself, the hygiene
//! cases of ../shared/cases (C08–C14), the external Compose corpus (no false alarm: every
//! finding is checked against the file), the public linters on the same fixtures, and the
//! running mesh (a service printing plain text, a service writing a log file).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use xtask::compose::{LoadOptions, load};
use xtask::config::HygienePolicy;
use xtask::finding::Rule;
use xtask::yaml::Node;

use crate::hygiene_fixtures::{fixtures_dir, git, hygiene_findings};
use crate::support::{
    docker_or_skip, leftovers, mesh_variant, repo_root, shared, stderr, temp_dir, xtask,
};

/// (rule, `file:line`) pairs of a run, without severities.
fn pairs(found: &[(String, String, String)]) -> BTreeSet<(String, String)> {
    found.iter().map(|(rule, at, _)| (rule.clone(), at.clone())).collect()
}

fn pair(rule: &str, at: &str) -> (String, String) {
    (rule.to_owned(), at.to_owned())
}

/// A project in a temporary folder: `files` written, meshgate.toml with `toml` added.
fn project(name: &str, files: &[(&str, &str)], toml: &str) -> PathBuf {
    let dir = temp_dir(&format!("hygiene-case-{name}"));
    let config = format!("[mesh]\ncrate_contracts = false\n{toml}");
    std::fs::write(dir.join("meshgate.toml"), config).unwrap();
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn case_input(case: &str, file: &str) -> String {
    std::fs::read_to_string(shared().join("cases/inputs").join(case).join(file)).unwrap()
}

/// The findings of some rules only.
fn of_rules(found: &[(String, String, String)], rules: &[Rule]) -> BTreeSet<(String, String)> {
    let ids: Vec<&str> = rules.iter().map(|rule| rule.id()).collect();
    pairs(found).into_iter().filter(|(rule, _)| ids.contains(&rule.as_str())).collect()
}

const IMAGE_RULES: &[Rule] = &[Rule::ImageLatest, Rule::ImageNotPinned, Rule::ImageUnresolved];

#[test]
fn the_repository_passes_the_static_hygiene_gate() {
    let output = xtask(&["gates", "artifact-hygiene", "--static", "--json"]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let gate = &report["gates"][0];
    assert_eq!(gate["gate"], "artifact-hygiene");
    assert_eq!(gate["findings"].as_array().unwrap().len(), 0, "{gate:#}");
}

#[test]
fn enforce_centralized_logs_is_a_flag_of_the_hygiene_gate() {
    let output = xtask(&["gates", "artifact-hygiene", "--help"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("--enforce-centralized-logs"));
    let output = xtask(&["gates", "network-contracts", "--enforce-centralized-logs"]);
    assert_eq!(output.status.code(), Some(2), "only the hygiene gate takes it");
}

#[test]
fn c08_image_references_are_parsed_before_the_latest_rule() {
    let compose = case_input("C08-image-references", "compose.yaml");
    let files = [("compose.yaml", compose.as_str())];
    // b, c and d pass the tag rule; only a (untagged behind a registry port), e (latest)
    // and f (unset variable) are findings.
    let dir = project("c08", &files, "[gates.artifact_hygiene]\nrequire_digest = false\n");
    let (code, found, stderr) = hygiene_findings(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    let expected: BTreeSet<_> = [
        pair("hygiene/image-latest", "compose.yaml:2"),
        pair("hygiene/image-latest", "compose.yaml:6"),
        pair("hygiene/image-unresolved", "compose.yaml:7"),
    ]
    .into();
    assert_eq!(of_rules(&found, IMAGE_RULES), expected, "{stderr}");
    // With digests required (the default), the tag-only b is one more.
    let dir = project("c08-digest", &files, "");
    let (_, found, stderr) = hygiene_findings(&dir);
    let mut expected = expected;
    expected.insert(pair("hygiene/image-not-pinned", "compose.yaml:3"));
    assert_eq!(of_rules(&found, IMAGE_RULES), expected, "{stderr}");
}

#[test]
fn c09_a_shell_healthcheck_in_a_distroless_image_is_a_warning() {
    let files = [
        ("compose.yaml", case_input("C09-distroless-healthcheck", "compose.yaml")),
        ("Dockerfile", case_input("C09-distroless-healthcheck", "Dockerfile")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let dir = project("c09", &files, "");
    let (_, found, stderr) = hygiene_findings(&dir);
    let shell: Vec<_> = found.iter().filter(|f| f.0 == "hygiene/healthcheck-needs-shell").collect();
    assert_eq!(shell.len(), 1, "{stderr}");
    assert_eq!((shell[0].1.as_str(), shell[0].2.as_str()), ("compose.yaml:5", "warning"));
    // The other findings are true of the input: no USER, tag-only bases, no .dockerignore.
    for rule in ["hygiene/root-user", "hygiene/image-not-pinned", "hygiene/dockerignore-missing"] {
        assert!(found.iter().any(|f| f.0 == rule), "{rule}: {stderr}");
    }
    assert!(!found.iter().any(|f| f.0 == "hygiene/dockerfile-syntax"), "{stderr}");
}

/// A Compose file building the Dockerfile beside it, for the Dockerfile cases.
fn dockerfile_project(name: &str, dockerfile: &str, toml: &str) -> PathBuf {
    let compose = "services:\n  app:\n    build: .\n";
    project(name, &[("compose.yaml", compose), ("Dockerfile", dockerfile)], toml)
}

#[test]
fn c10_apt_variables_and_local_debs_are_not_unpinned_but_a_missing_separator_is() {
    let dir = dockerfile_project("c10", &case_input("C10-apt-pinning", "Dockerfile"), "");
    let (_, found, stderr) = hygiene_findings(&dir);
    assert!(!found.iter().any(|f| f.0 == "hygiene/apt-unpinned"), "{stderr}");
    let wrong = "FROM debian:12.7\nRUN apt-get install -y pkg=1 apt-get clean\n";
    let dir = dockerfile_project("c10-separator", wrong, "");
    let (_, found, stderr) = hygiene_findings(&dir);
    assert_eq!(
        of_rules(&found, &[Rule::AptUnpinned]),
        [pair("hygiene/apt-unpinned", "Dockerfile:2")].into(),
        "{stderr}"
    );
    assert!(stderr.contains("`&&` is missing"), "{stderr}");
}

#[test]
fn c11_arg_defaults_stage_names_and_digests_pass_the_tag_rule() {
    let input = case_input("C11-base-image-tags", "Dockerfile");
    let no_digest = "[gates.artifact_hygiene]\nrequire_digest = false\n";
    let dir = dockerfile_project("c11", &input, no_digest);
    let (_, found, stderr) = hygiene_findings(&dir);
    assert_eq!(of_rules(&found, IMAGE_RULES), BTreeSet::new(), "{stderr}");
    // With digests required, the tag-only default of BASE is the one finding.
    let dir = dockerfile_project("c11-digest", &input, "");
    let (_, found, stderr) = hygiene_findings(&dir);
    assert_eq!(
        of_rules(&found, IMAGE_RULES),
        [pair("hygiene/image-not-pinned", "Dockerfile:2")].into(),
        "{stderr}"
    );
    // An ARG without a default is unresolvable, not untagged.
    let dir = dockerfile_project("c11-no-default", "ARG BASE\nFROM ${BASE} AS build\n", no_digest);
    let (_, found, stderr) = hygiene_findings(&dir);
    assert_eq!(
        of_rules(&found, IMAGE_RULES),
        [pair("hygiene/image-unresolved", "Dockerfile:2")].into(),
        "{stderr}"
    );
}

#[test]
fn c12_heredoc_run_blocks_parse_and_the_next_instruction_is_read() {
    let input = case_input("C12-heredoc-run", "Dockerfile");
    let dir =
        dockerfile_project("c12", &input, "[gates.artifact_hygiene]\nrequire_digest = false\n");
    let (_, found, stderr) = hygiene_findings(&dir);
    // No parse error and no pipefail complaint: only the true findings of the file remain
    // (no USER, no healthcheck, no .dockerignore).
    let rules: BTreeSet<&str> = found.iter().map(|f| f.0.as_str()).collect();
    let expected: BTreeSet<&str> = [
        "hygiene/root-user",
        "hygiene/no-healthcheck",
        "hygiene/dockerignore-missing",
        "hygiene/no-restart-policy",
        "hygiene/logging-missing",
    ]
    .into();
    assert_eq!(rules, expected, "{stderr}");
    // An instruction after the heredoc is read: a USER there is seen.
    let with_user = input.replace("COPY app /app", "COPY app /app\nUSER 10001");
    let dir = dockerfile_project(
        "c12-user",
        &with_user,
        "[gates.artifact_hygiene]\nrequire_digest = false\n",
    );
    let (_, found, stderr) = hygiene_findings(&dir);
    assert!(!found.iter().any(|f| f.0 == "hygiene/root-user"), "{stderr}");
}

#[test]
fn c13_tracked_build_outputs_are_found_whatever_gitignore_claims() {
    let compose = "services: {}\n";
    let dir = project("c13", &[("compose.yaml", compose), (".gitignore", "/target\n")], "");
    let tracked =
        ["crates/api/target/debug/api", "target-release/release/api", "logs/run-2024-01-01.log"];
    for path in tracked {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "ELF").unwrap();
    }
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    // Untracked, ignored build output is no finding.
    std::fs::create_dir_all(dir.join("target/debug")).unwrap();
    std::fs::write(dir.join("target/debug/api"), "ELF").unwrap();
    let (code, found, stderr) = hygiene_findings(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    let expected: BTreeSet<_> = [
        pair("hygiene/tracked-build-output", "crates/api/target/debug/api:0"),
        pair("hygiene/tracked-build-output", "target-release/release/api:0"),
        pair("hygiene/tracked-log", "logs/run-2024-01-01.log:0"),
        // `/target` alone leaves logs/ unignored, which is how the log got in.
        pair("hygiene/logs-not-ignored", ".gitignore:0"),
    ]
    .into();
    assert_eq!(pairs(&found), expected, "{stderr}");
}

#[test]
fn c14_placeholder_secrets_in_a_tracked_env_file_are_found_and_a_guard_is_no_literal() {
    let env_example = case_input("C14-placeholder-secrets", ".env.example");
    let compose = case_input("C14-placeholder-secrets", "compose.yaml");
    // The value Compose needs comes from an untracked .env, as it would on a developer's machine.
    let files = [
        ("compose.yaml", compose.as_str()),
        (".env.example", env_example.as_str()),
        (".env", "SECRET_KEY=a-real-value-kept-out-of-git\n"),
        (".gitignore", "/logs\n/.env\n"),
    ];
    let dir = project("c14", &files, "");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    let (code, found, stderr) = hygiene_findings(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    let secrets =
        of_rules(&found, &[Rule::SecretInEnvFile, Rule::SecretInCompose, Rule::SecretInFile]);
    assert_eq!(secrets, [pair("hygiene/env-file-secret", ".env.example:2")].into(), "{stderr}");
    let message = stderr
        .lines()
        .find(|line| line.contains("hygiene/env-file-secret"))
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("(SECRET_KEY, DB_PASSWORD, JWT_SECRET)"), "{message}");
    assert!(!message.contains("PUBLIC_URL"), "{message}");
}

/// The fact behind a finding on a third-party Compose file, read from the service's tree.
#[track_caller]
fn assert_true_finding(
    name: &str,
    project: &xtask::compose::Project,
    finding: &xtask::finding::Finding,
) {
    let service = &project.services[finding.service.as_deref().unwrap()];
    let node = &service.node;
    let text = |key: &str| node.get(key).and_then(Node::text).map(str::to_owned);
    let what = format!("{name}: {} on `{}`: {}", finding.rule.id(), service.name, finding.message);
    let holds = match finding.rule {
        Rule::ImageLatest => {
            let image = text("image").unwrap_or_default();
            let last = image.rsplit('/').next().unwrap_or_default().to_owned();
            !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
        }
        Rule::ImageNotPinned => text("image").is_some_and(|image| !image.contains('@')),
        Rule::ImageUnresolved => text("image").is_some_and(|image| image.trim().is_empty()),
        Rule::NoHealthcheck => node
            .get("healthcheck")
            .is_none_or(|h| h.get("disable").and_then(Node::text) == Some("true")),
        Rule::NoRestartPolicy => {
            text("restart").is_none_or(|r| r == "no")
                && node.get("deploy").and_then(|d| d.get("restart_policy")).is_none()
        }
        Rule::Privileged => text("privileged").as_deref() == Some("true"),
        Rule::DockerSocket => node.get("volumes").and_then(Node::as_seq).is_some_and(|volumes| {
            volumes.iter().any(|volume| {
                let source = volume.text().map_or_else(
                    || volume.get("source").and_then(Node::text).unwrap_or("").to_owned(),
                    str::to_owned,
                );
                source.contains("docker.sock")
            })
        }),
        Rule::LoggingMissing => node
            .get("logging")
            .is_none_or(|logging| logging.get("driver").and_then(Node::text) == Some("none")),
        Rule::LoggingNoRotation => node.get("logging").is_some_and(|logging| {
            logging.get("driver").and_then(Node::text).is_none_or(|d| d == "json-file")
                && logging.get("options").and_then(|o| o.get("max-size")).is_none()
        }),
        Rule::LoggingDiffers => node.get("logging").is_some(),
        Rule::LoggingNotShared => {
            let file = std::fs::read_to_string(&finding.location.file).unwrap();
            let line = file.lines().nth(finding.location.line as usize - 1).unwrap_or_default();
            let column = finding.location.column as usize - 1;
            node.get("logging").is_some() && line.chars().nth(column) != Some('*')
        }
        Rule::SecretInCompose => {
            let file = std::fs::read_to_string(&finding.location.file).unwrap();
            let line = file.lines().nth(finding.location.line as usize - 1).unwrap_or_default();
            !line.contains('$') && line.contains(finding.key.as_deref().unwrap_or("?"))
        }
        _ => false,
    };
    assert!(holds, "{what}");
}

#[test]
fn external_corpus_gives_only_true_compose_hygiene_findings() {
    let policy = HygienePolicy::default();
    let mut latest_in_hyperswitch = 0;
    for (name, files) in crate::cases::corpus_sets() {
        let project = load(&LoadOptions::with_process_env(files.clone(), Vec::new()))
            .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        let findings = xtask::gates::artifact_hygiene::check_compose_file(&project, &policy);
        for finding in &findings {
            assert!(files.contains(&finding.location.file), "{name}: {finding:?}");
            assert!(finding.location.line > 0, "{name}: {finding:?}");
            assert_true_finding(name, &project, finding);
        }
        if name == "hyperswitch" {
            latest_in_hyperswitch = findings
                .iter()
                .filter(|f| f.rule == Rule::ImageLatest && f.message.contains("tagged `latest`"))
                .count();
        }
    }
    // The corpus notes list hyperswitch's explicit `:latest` images; the default profile
    // activates some of them.
    assert!(latest_in_hyperswitch > 0, "hyperswitch's `:latest` images were missed");
}

// ---- the public linters on the same fixtures

/// A linter installed by `.ci/run` under `.meshgate/tools/lint` (pip `--target`), or on PATH.
/// `None` outside CI when it is missing (said on stderr); in CI a missing linter fails.
fn linter(name: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("MESHGATE_LINT_DIR")
        .map_or_else(|| repo_root().join(".meshgate/tools/lint"), PathBuf::from);
    let candidate = dir.join("bin").join(name);
    if candidate.is_file() {
        return Some((candidate, dir));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is not installed at {} and CI is set: .ci/run installs it with pip",
        candidate.display()
    );
    #[allow(clippy::print_stderr, reason = "a local run says what it did not cover")]
    {
        eprintln!("{name} is not installed at {}: comparison skipped", candidate.display());
    }
    None
}

fn run_linter(program: &Path, lib: &Path, args: &[&str], dir: &Path) -> String {
    #[allow(clippy::disallowed_methods, reason = "running a third-party linter to compare")]
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PYTHONPATH", lib)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// hadolint's codes on a fixture's `app/Dockerfile`.
fn hadolint_codes(hadolint: &(PathBuf, PathBuf), fixture: &str) -> BTreeSet<String> {
    let dir = fixtures_dir().join(fixture).join("app");
    let json =
        run_linter(&hadolint.0, &hadolint.1, &["--no-fail", "-f", "json", "Dockerfile"], &dir);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    findings.iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

/// compose-lint's rule ids on a fixture's compose.yaml, without the rules meshgate has no
/// counterpart for (no-new-privileges, capabilities, resource limits, …).
fn compose_lint_codes(compose_lint: &(PathBuf, PathBuf), fixture: &str) -> BTreeSet<String> {
    let dir = fixtures_dir().join(fixture);
    let args = ["check", "--no-env", "--format", "json", "compose.yaml"];
    let json = run_linter(&compose_lint.0, &compose_lint.1, &args, &dir);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_owned())
        .filter(|id| ["CL-0001", "CL-0002", "CL-0004", "CL-0019", "CL-0020"].contains(&id.as_str()))
        .collect()
}

/// Where hadolint and meshgate agree and differ on the fixtures (README, "Compared with
/// hadolint and compose-lint"): fixture, hadolint's codes.
const HADOLINT: &[(&str, &[&str])] = &[
    // Agree: hygiene/image-latest = DL3007; hygiene/root-user (USER root) = DL3002;
    // hygiene/apt-unpinned = DL3008; hygiene/dockerfile-syntax = DL1000.
    ("dockerfile-from-alpine-latest", &["DL3007"]),
    ("dockerfile-user-root", &["DL3002", "DL3066"]),
    ("apt-missing-separator", &["DL3008", "DL3015"]),
    ("dockerfile-syntax", &["DL1000"]),
    // Agree in substance: DL3025 (JSON form) also covers a shell-form HEALTHCHECK.
    ("dockerfile-healthcheck-shell-form", &["DL3025"]),
    // Differ: meshgate requires a USER (hadolint flags only an explicit root), resolves ARGs
    // (an ARG without default is unresolvable), and judges .dockerignore, which hadolint
    // never reads.
    ("dockerfile-no-user", &[]),
    ("dockerfile-arg-without-default", &[]),
    ("dockerignore-missing", &[]),
    // Differ, hadolint's false positives: packages from a variable and local .debs
    // (DL3008, C10), and a heredoc RUN (DL1000, C12).
    ("pass-apt-variables-and-local-debs", &["DL3008", "SC2086"]),
    ("pass-heredoc-run", &["DL1000"]),
    // Agree: clean.
    ("pass-scratch-build", &[]),
    ("pass-multi-stage-arg-and-digest", &[]),
];

#[test]
fn hadolint_agrees_and_differs_as_the_readme_says() {
    let Some(hadolint) = linter("hadolint") else { return };
    for (fixture, expected) in HADOLINT {
        let expected: BTreeSet<String> = expected.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(hadolint_codes(&hadolint, fixture), expected, "{fixture}");
    }
}

/// fixture, compose-lint's overlapping rule ids.
const COMPOSE_LINT: &[(&str, &[&str])] = &[
    // Agree: hygiene/image-latest = CL-0004, hygiene/image-not-pinned = CL-0019,
    // hygiene/privileged = CL-0002, hygiene/docker-socket = CL-0001,
    // hygiene/compose-secret = CL-0020.
    ("image-latest", &["CL-0004"]),
    ("image-untagged-behind-a-registry-port", &["CL-0004"]),
    ("image-not-pinned", &["CL-0019"]),
    ("privileged", &["CL-0002"]),
    ("docker-socket", &["CL-0001"]),
    ("compose-literal-password", &["CL-0020"]),
    ("pass-image-service", &[]),
    ("pass-secret-from-a-guarded-variable", &[]),
    // Differ: an unset `${APP_IMAGE}` is unresolved for meshgate, untagged for compose-lint;
    // with require_digest = false meshgate accepts a version tag.
    ("image-unresolved-variable", &["CL-0004"]),
    ("pass-tag-when-digest-not-required", &["CL-0019"]),
    // Differ: compose-lint has no healthcheck, restart or logging rules.
    ("no-healthcheck", &[]),
    ("no-restart-policy", &[]),
    ("logging-missing", &[]),
    ("logging-no-rotation", &[]),
];

#[test]
fn compose_lint_agrees_and_differs_as_the_readme_says() {
    let Some(compose_lint) = linter("compose-lint") else { return };
    for (fixture, expected) in COMPOSE_LINT {
        let expected: BTreeSet<String> = expected.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(compose_lint_codes(&compose_lint, fixture), expected, "{fixture}");
    }
}

// ---- the running mesh

/// A tiny static program for the test services: prints one line (a JSON log object, or
/// plain text with `--plain`), writes `/tmp/app.log` with `--log-file`, then waits.
const SCRIBE: &str = r#"
use std::io::Write as _;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "healthcheck") { return; }
    let service = std::env::var("SERVICE").unwrap_or_default();
    let mut out = std::io::stdout();
    if args.iter().any(|a| a == "--plain") {
        let _ = writeln!(out, "listening on 8080");
    } else {
        let _ = writeln!(out, "{{\"timestamp\":\"2026-01-01T00:00:00Z\",\"level\":\"info\",\"service\":\"{service}\",\"message\":\"up\"}}");
    }
    let _ = out.flush();
    if args.iter().any(|a| a == "--log-file") {
        std::fs::write("/tmp/app.log", "started\n").expect("write /tmp/app.log");
    }
    loop { std::thread::sleep(std::time::Duration::from_secs(1)); }
}
"#;

fn host_triple() -> String {
    #[allow(clippy::disallowed_methods, reason = "asking rustc for the host triple")]
    let output = std::process::Command::new("rustc").arg("-vV").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_owned()
}

/// Builds the scribe image `tag` (FROM scratch, non-root, exec-form healthcheck).
fn build_scribe_image(tag: &str) {
    let dir = temp_dir("scribe-image");
    std::fs::write(dir.join("scribe.rs"), SCRIBE).unwrap();
    let triple = host_triple();
    #[allow(clippy::disallowed_methods, reason = "building the test service's binary")]
    let status = std::process::Command::new("rustc")
        .args(["-O", "-C", "target-feature=+crt-static", "--target", &triple])
        .args(["-o", "scribe", "scribe.rs"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "rustc failed on the scribe");
    // Scratch has no /tmp: the image gets one owned by the service user.
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("tmp/.keep"), "").unwrap();
    let dockerfile = "FROM scratch\nCOPY scribe /scribe\nCOPY --chown=65534:65534 tmp /tmp\nUSER 65534:65534\nENTRYPOINT [\"/scribe\"]\n";
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    #[allow(clippy::disallowed_methods, reason = "building the test service's image")]
    let status = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag, "."])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "docker build of {tag} failed");
}

fn remove_image(tag: &str) {
    #[allow(clippy::disallowed_methods, reason = "removing the test service's image")]
    let _ = std::process::Command::new("docker").args(["rmi", "-f", tag]).output();
}

/// Removes the image when the test ends, failed or not.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        remove_image(&self.0);
    }
}

#[test]
fn integration_plain_text_output_and_a_log_file_fail_with_their_own_rules() {
    if !docker_or_skip("integration_plain_text_output_and_a_log_file_fail_with_their_own_rules") {
        return;
    }
    let tag = format!("meshgate-test/scribe:{}", std::process::id());
    build_scribe_image(&tag);
    let _guard = ImageGuard(tag.clone());
    // Two services of their own (no network, so no contract edges): `chatter` prints plain
    // text; `scribe` logs JSON but writes /tmp/app.log, which needs a writable root
    // filesystem (a tmpfs would hide the file from the engine's diff).
    let service = |name: &str, args: &str, read_only: bool| {
        format!(
            "  {name}:\n    <<: *service\n    image: {tag}\n    command: [{args}]\n    read_only: {read_only}\n    network_mode: none\n    environment: {{SERVICE: {name}}}\n    stop_signal: SIGKILL\n    healthcheck: {{test: [\"CMD\", \"/scribe\", \"healthcheck\"], interval: 1s}}\n\n"
        )
    };
    let dir = mesh_variant("hygiene-runtime", |compose| {
        let extra =
            service("chatter", "\"--plain\"", true) + &service("scribe", "\"--log-file\"", false);
        compose.replacen("services:\n", &format!("services:\n{extra}"), 1)
    });
    let config = dir.join("meshgate.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[external.chatter]\n\n[external.scribe]\n\n[gates.artifact_hygiene]\nrequire_digest = false\n");
    std::fs::write(&config, toml).unwrap();

    let output =
        xtask(&["gates", "artifact-hygiene", "--json", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let project = report["project"].as_str().unwrap().to_owned();
    assert_eq!(leftovers(&project), 0, "the run left resources of {project}");
    let gate = &report["gates"][0];
    assert_eq!(gate["gate"], "artifact-hygiene");
    let found: BTreeSet<(String, String)> = gate["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (f["rule"].as_str().unwrap().to_owned(), f["service"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("hygiene/log-not-json".to_owned(), "chatter".to_owned()),
        ("hygiene/log-file-written".to_owned(), "scribe".to_owned()),
    ]
    .into();
    assert_eq!(found, expected, "{stderr}");
    assert!(stderr.contains("listening on 8080"), "the sample line is shown: {stderr}");
    assert!(stderr.contains("/tmp/app.log"), "{stderr}");
    // The gate's detailed log is written with the run's timestamp.
    let logs: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter()
            .any(|name| name.starts_with("validate_artifact_hygiene_") && name.ends_with("Z.log")),
        "{logs:?}"
    );
}

#[test]
fn integration_an_image_over_its_budget_fails_after_the_build() {
    if !docker_or_skip("integration_an_image_over_its_budget_fails_after_the_build") {
        return;
    }
    let dir = mesh_variant("hygiene-image-budget", |compose| compose);
    let config = dir.join("meshgate.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[gates.artifact_hygiene.services.catalog]\nimage_size_budget = \"1KB\"\n");
    std::fs::write(&config, toml).unwrap();
    let output =
        xtask(&["gates", "artifact-hygiene", "--json", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(leftovers(report["project"].as_str().unwrap()), 0);
    let findings = report["gates"][0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{stderr}");
    assert_eq!(findings[0]["rule"], "hygiene/image-too-large");
    assert_eq!(findings[0]["service"], "catalog");
    assert_eq!(findings[0]["location"]["file"], "services/catalog/Dockerfile");
}
