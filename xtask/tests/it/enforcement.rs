//! Modes, exceptions and the emergency override through the command line, on the reference
//! mesh with one injected violation (catalog attached to `data`), checked statically.

use std::path::{Path, PathBuf};

use crate::support::{mesh_variant, repo_root, stderr, xtask};

fn violated(name: &str) -> PathBuf {
    mesh_variant(name, |compose| {
        compose.replace("networks: [backend]\n", "networks: [backend, data]\n")
    })
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("logs/report.json")).unwrap()).unwrap()
}

fn summary(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("logs/summary.md")).unwrap()
}

fn git(args: &[&str]) -> String {
    #[allow(clippy::disallowed_methods, reason = "reading the repository the test runs in")]
    let output =
        std::process::Command::new("git").args(args).current_dir(repo_root()).output().unwrap();
    assert!(output.status.success(), "git {args:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn one_violation_blocks_in_strict_warns_in_warning_and_is_measured_in_monitoring() {
    let dir = violated("modes-table");
    let config = dir.join("meshgate.toml");
    let run = |mode: &str| {
        xtask(&["gates", "--static", "--config", config.to_str().unwrap(), "--mode", mode])
    };

    let output = run("strict");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("error[network/network-mismatch]"));
    let strict = report(&dir);
    assert_eq!(strict["verdict"], "failed");
    assert_eq!(strict["state"], "failure");
    assert_eq!(strict["description"], "failed: network-contracts");
    assert_eq!(strict["gates"][0]["decision"]["blocks"], true);

    let output = run("warning");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("warning[network/network-mismatch]"), "{}", stderr(&output));
    let warning = report(&dir);
    assert_eq!(warning["verdict"], "passed");
    assert_eq!(warning["state"], "success");
    assert_eq!(warning["strict_verdict"], "failed");
    assert!(summary(&dir).contains("passed with 2 warning(s)"), "{}", summary(&dir));

    let output = run("monitoring");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let monitoring = report(&dir);
    assert_eq!(monitoring["verdict"], "passed");
    assert_eq!(monitoring["strict_verdict"], "failed");
    assert!(summary(&dir).contains("strict would fail"), "{}", summary(&dir));
}

#[test]
fn a_gate_that_could_not_run_fails_strict_and_is_reported_in_the_other_modes() {
    // A mesh with nothing wrong, and no engine to run it on.
    let dir = mesh_variant("not-computed", |compose| compose);
    let config = dir.join("meshgate.toml");
    // Each gate that needs the engine on its own (the whole run would also run the tests).
    let run = |gate: &str, mode: &str| {
        crate::support::xtask_with_env(
            &["gates", gate, "--config", config.to_str().unwrap(), "--mode", mode],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        )
    };
    for gate in ["network-contracts", "service-health"] {
        let output = run(gate, "strict");
        assert_eq!(output.status.code(), Some(1), "{gate}: {}", stderr(&output));
        assert!(stderr(&output).contains("cannot reach the Docker engine"), "{}", stderr(&output));
        let strict = report(&dir);
        assert_eq!(strict["gates"][0]["gate"], gate);
        assert_eq!(strict["gates"][0]["status"]["state"], "not-computed", "{strict:#}");
        assert_eq!(strict["state"], "error");
        assert_eq!(strict["verdict"], "failed");
        for mode in ["warning", "monitoring"] {
            let output = run(gate, mode);
            assert_eq!(output.status.code(), Some(0), "{gate} {mode}: {}", stderr(&output));
            let description = report(&dir)["description"].as_str().unwrap().to_owned();
            assert!(
                description.contains(&format!("not computed: {gate}")),
                "{mode}: {description}"
            );
        }
    }
}

#[test]
fn a_rule_set_to_warning_in_meshgate_toml_no_longer_blocks() {
    let dir = violated("rule-mode");
    let config = dir.join("meshgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[rules.\"network/network-mismatch\"]\nmode = \"warning\"\n[rules.\"network/undeclared-reachability\"]\nmode = \"warning\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let output = xtask(&["gates", "--static", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // `--strict` on the command line is above every setting.
    let output = xtask(&["gates", "--static", "--strict", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn exceptions_suppress_by_fingerprint_until_they_expire() {
    let dir = violated("exceptions");
    let config = dir.join("meshgate.toml");
    let config = config.to_str().unwrap();
    assert_eq!(xtask(&["gates", "--static", "--config", config]).status.code(), Some(1));
    let findings = report(&dir)["gates"][0]["findings"].as_array().unwrap().clone();
    let mut file = String::new();
    for finding in &findings {
        file.push_str(&format!(
            "[[exception]]\nrule = {}\nfingerprint = {}\nreason = \"catalog reads the ledger during the migration\"\nowner = \"platform\"\nexpires = 2099-12-31\n\n",
            finding["rule"], finding["fingerprint"]
        ));
    }
    std::fs::write(dir.join("meshgate-exceptions.toml"), &file).unwrap();
    let output = xtask(&["gates", "--static", "--config", config]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let suppressed = &report(&dir)["gates"][0]["suppressed"];
    assert_eq!(suppressed.as_array().unwrap().len(), findings.len(), "{suppressed:#}");

    // Expired, they suppress nothing and are findings at their own line.
    std::fs::write(dir.join("meshgate-exceptions.toml"), file.replace("2099-12-31", "2020-01-31"))
        .unwrap();
    let output = xtask(&["gates", "--static", "--config", config]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[exception/expired]"), "{stderr}");
    assert!(stderr.contains("meshgate-exceptions.toml:1:"), "{stderr}");
    assert!(stderr.contains("error[network/network-mismatch]"), "{stderr}");

    // A broken exception file stops the run before anything runs.
    std::fs::write(dir.join("meshgate-exceptions.toml"), "[[exception]]\nrule = \"network/x\"\n")
        .unwrap();
    let output = xtask(&["gates", "--static", "--config", config]);
    assert_eq!(output.status.code(), Some(2), "{}", crate::support::stderr(&output));
}

#[test]
fn overrides_are_refused_for_the_author_beyond_the_maximum_and_for_another_commit() {
    let dir = violated("override");
    let config = dir.join("meshgate.toml");
    let config = config.to_str().unwrap();
    let author = git(&["log", "-1", "--format=%an"]);
    let head = git(&["rev-parse", "HEAD"]);
    let grant = |args: &[&str]| {
        let mut all = vec!["gates", "override", "--config", config, "--reason", "outage hotfix"];
        all.extend_from_slice(args);
        xtask(&all)
    };

    let output = grant(&["--approver", &author]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("self-approval refused"), "{}", stderr(&output));
    let output = grant(&["--approver", "release-manager", "--expires", "3days"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("at most 24h (`override.max_expiry`), not 72h"),
        "{}",
        stderr(&output)
    );

    // Granted for the parent commit, it does not cover HEAD.
    let output = grant(&["--approver", "release-manager", "--commit", "HEAD~1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("UNVERIFIED"), "{}", stderr(&output));
    let output = xtask(&["gates", "--static", "--config", config]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

    // An override that has expired covers nothing either.
    let output = grant(&["--approver", "release-manager", "--expires", "1s"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let output = xtask(&["gates", "--static", "--config", config]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

    let audit = dir.join(".meshgate/audit.jsonl");
    let verify = || xtask(&["gates", "audit", "verify", "--config", config]);
    assert_eq!(verify().status.code(), Some(0), "{}", stderr(&verify()));

    // A live one for HEAD bypasses the verdict of a clean checkout, and says so everywhere.
    let output = grant(&["--approver", "release-manager"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let clean = git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let output = xtask(&["gates", "--static", "--config", config]);
    if clean {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let report = report(&dir);
        assert_eq!(report["verdict"], "overridden");
        assert!(
            report["description"]
                .as_str()
                .unwrap()
                .starts_with("OVERRIDDEN by release-manager (unverified): outage hotfix"),
            "{report:#}"
        );
        assert!(summary(&dir).contains("OVERRIDDEN by release-manager"));
        let log = std::fs::read_to_string(&audit).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"]["kind"], "use");
        assert_eq!(last["event"]["commit"], head.as_str());
        assert_eq!(last["event"]["gates"][0], "network-contracts");
        assert_eq!(report["audit_head"], last["hash"]);
    } else {
        // A working tree with changes is not the commit the override names.
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    }

    // One flipped byte in the log, and verification fails at that entry.
    let mut bytes = std::fs::read(&audit).unwrap();
    let at = bytes.windows(12).position(|w| w == b"outage hotfi").unwrap();
    bytes[at] = b'O';
    std::fs::write(&audit, bytes).unwrap();
    let output = verify();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("audit.jsonl:1: the audit log is broken"),
        "{}",
        stderr(&output)
    );
    // And a broken log grants nothing.
    let output = xtask(&["gates", "--static", "--config", config]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn grants_written_into_the_log_by_hand_are_checked_again_when_used() {
    let dir = violated("override-forged");
    let config = dir.join("meshgate.toml");
    let config = config.to_str().unwrap();
    let author = git(&["log", "-1", "--format=%an <%ae>"]);
    let head = git(&["rev-parse", "HEAD"]);

    // The author spelled as `Name <email>` is still the author.
    let output = xtask(&[
        "gates",
        "override",
        "--config",
        config,
        "--reason",
        "outage",
        "--approver",
        &author,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("self-approval refused"), "{}", stderr(&output));

    // Entries appended by hand with a valid chain: a "verified" GitHub grant, a self-approval,
    // a grant for ten years. None of them may bypass the verdict.
    let log = dir.join(".meshgate/audit.jsonl");
    let now = std::time::SystemTime::now();
    let grant = |source: &str, approver: &str, hours: u64| {
        xtask::audit::Event::Grant(xtask::audit::Grant {
            commit: head.clone(),
            reason: "forged".into(),
            approver: approver.into(),
            author: author.clone(),
            expires_at: xtask::audit::rfc3339(now + std::time::Duration::from_secs(hours * 3600)),
            source: source.into(),
            verified: true,
            granted_by: approver.into(),
            at: xtask::audit::rfc3339(now),
        })
    };
    for forged in [
        grant("github", "trusted-maintainer", 2),
        grant("local", &author, 2),
        grant("local", "bob", 87_600),
    ] {
        std::fs::remove_file(&log).ok();
        xtask::audit::append(&log, &forged).unwrap();
        let output = xtask(&["gates", "--static", "--config", config]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("no emergency override:"),
            "said why: {}",
            stderr(&output)
        );
    }

    // A log that is not there is no proof of anything.
    std::fs::remove_file(&log).ok();
    let output = xtask(&["gates", "audit", "verify", "--config", config]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no audit log at"), "{}", stderr(&output));
}

#[test]
fn json_output_holds_the_error_report_when_the_run_cannot_finish() {
    let dir = violated("json-error");
    std::fs::write(dir.join("meshgate.toml"), "[mesh]\nfrobnicate = 1\n").unwrap();
    let output = xtask(&[
        "gates",
        "--static",
        "--json",
        "--config",
        dir.join("meshgate.toml").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["verdict"], "error");
    assert_eq!(report["exit_code"], 2);
}
