//! The coverage gate through the command line: the real instrumented run of the workspace's
//! services (slow, so one test does install, report and a raised threshold in turn), and the
//! errors that stop the gate before anything is built.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{mesh_variant, repo_root, stderr, xtask};

/// Where the gate installs cargo-llvm-cov, and the lock runs and installs share.
fn tool_root() -> PathBuf {
    repo_root().join(".meshgate/tools/cargo-llvm-cov-0.9.1")
}

/// A copy of the reference configuration with `extra` appended to its `[gates.coverage]`.
fn config_with(name: &str, extra: &str) -> PathBuf {
    let dir = mesh_variant(name, |compose| compose);
    let config = dir.join("meshgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[gates.coverage]"), "the reference configuration sets coverage");
    std::fs::write(&config, format!("{}\n{extra}", text.trim_end())).unwrap();
    config
}

fn report_of(config: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(config.with_file_name("logs").join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `cargo xtask gates coverage` with extra environment variables.
fn xtask_with_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    #[allow(clippy::disallowed_methods, reason = "tests run the binary under test directly")]
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo_root())
        .env("CARGO_MANIFEST_DIR", repo_root().join("xtask"))
        .env_remove("RUSTFLAGS")
        .env("NO_COLOR", "1")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    output
}

/// Removes the installed cargo-llvm-cov under the install lock, so no run loses it mid-way.
fn remove_installed_tool() -> std::time::SystemTime {
    let lock_path = repo_root().join(".meshgate/tools/cargo-llvm-cov.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock =
        std::fs::File::options().create(true).truncate(false).write(true).open(&lock_path).unwrap();
    lock.lock().unwrap();
    let _ = std::fs::remove_dir_all(tool_root());
    let removed_at = std::time::SystemTime::now();
    lock.unlock().unwrap();
    removed_at
}

#[test]
fn coverage_reinstalls_its_tool_reports_every_service_and_fails_a_raised_threshold() {
    // Removing the tool makes the run install it again (from the kept build folder, so only
    // the first install on a machine takes minutes).
    let removed_at = remove_installed_tool();
    let config = config_with("coverage", "");
    let output = xtask(&["gates", "coverage", "--config", config.to_str().unwrap()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    // This run installed it, or (should another test's run have come first) one did after
    // the removal: `cargo install` links the binary anew, which sets its change time.
    let binary = tool_root().join("bin/cargo-llvm-cov");
    let changed = std::fs::metadata(&binary)
        .map(|metadata| std::os::unix::fs::MetadataExt::ctime(&metadata))
        .unwrap_or_else(|error| {
            panic!("{} is not installed again: {error}\n{text}", binary.display())
        });
    let removed = removed_at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(
        text.contains("Installing cargo-llvm-cov v0.9.1") || changed >= removed,
        "{} was not reinstalled:\n{text}",
        binary.display()
    );

    // The per-service table, with the library and the notes that explain the figures.
    for row in ["catalog", "gateway", "ledger", "orders", "meshkit (library)"] {
        assert!(
            text.lines().any(|line| line.contains(row) && line.contains(" ok ")),
            "{row}: {text}"
        );
    }
    assert!(text.contains("doctests: not instrumented"), "{text}");
    assert!(text.contains("not measured (gates.coverage.exclude_packages): xtask, meshgate-probe"));

    // The same figures in the report, the gate's log and the metrics.
    let report = report_of(&config);
    let gate = &report["gates"][0];
    assert_eq!(
        (gate["gate"].as_str(), gate["status"]["state"].as_str()),
        (Some("coverage"), Some("passed"))
    );
    let rows = gate["coverage"]["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|row| row["package"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["catalog", "gateway", "ledger", "meshkit", "orders"],
        "xtask and probe are not counted"
    );
    let ledger = rows.iter().find(|row| row["package"] == "ledger").unwrap();
    let ledger_lines = ledger["lines_percent"].as_f64().unwrap();
    for row in rows {
        let lines = row["lines_percent"].as_f64().unwrap();
        assert!(lines >= 80.0, "the reference services reach 80 % lines: {row}");
    }
    let logs = config.with_file_name("logs");
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().starts_with("validate_coverage_"))
        .expect("the gate's log is written");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("meshkit (library)") && log.contains("lines ≥ 80"), "{log}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["coverage"]["ledger"]["lines_percent"].as_f64(), Some(ledger_lines));

    // Raising ledger's threshold above its figure fails the gate naming ledger, at the line
    // of that threshold, and no other service.
    let raised = (ledger_lines + 0.5).min(100.0);
    let config = config_with(
        "coverage-raised",
        &format!("\n[gates.coverage.services.ledger]\nlines = {raised:.1}\n"),
    );
    let output = xtask(&["gates", "coverage", "--config", config.to_str().unwrap()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|line| line == "[gates.coverage.services.ledger]")
        .unwrap()
        + 1;
    assert!(text.contains("error[coverage/below-threshold]: `ledger` has"), "{text}");
    assert!(
        text.contains(&format!("--> {}:{line}", config.display()))
            || text.contains(&format!("meshgate.toml:{line}")),
        "{text}"
    );
    assert_eq!(text.matches("coverage/below-threshold").count(), 1, "{text}");
    let report = report_of(&config);
    let findings = report["gates"][0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["service"], "ledger");
    assert_eq!(findings[0]["location"]["line"], line);
}

#[test]
fn coverage_is_not_run_with_static() {
    let config = config_with("coverage-static", "");
    let output = xtask(&["gates", "coverage", "--static", "--config", config.to_str().unwrap()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("skipped: not run with --static"), "{text}");
}

#[test]
fn llvm_tools_of_another_version_stop_the_gate_with_what_to_do() {
    let config = config_with("coverage-llvm", "");
    let output = xtask_with_env(
        &["gates", "coverage", "--config", config.to_str().unwrap()],
        &[("LLVM_COV", "/nonexistent/llvm-cov"), ("LLVM_PROFDATA", "/nonexistent/llvm-profdata")],
    );
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("LLVM_COV (/nonexistent/llvm-cov) does not run"), "{text}");
    assert_eq!(report_of(&config)["verdict"], "error", "the report says the run did not finish");
}

#[test]
fn bad_coverage_settings_stop_the_gate_at_their_line() {
    let config = config_with("coverage-unknown", "exclude_packages = [\"xtask\", \"nope\"]\n");
    let output = xtask(&["gates", "coverage", "--config", config.to_str().unwrap()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    let line = std::fs::read_to_string(&config).unwrap().lines().count();
    assert!(text.contains(&format!("meshgate.toml:{line}")), "{text}");
    assert!(text.contains("names `nope`, no package of the workspace"), "{text}");

    // Doctests on a stable toolchain: an error, not silently dropped (C20).
    let config = config_with("coverage-doctests", "doctests = true\n");
    let output = xtask(&["gates", "coverage", "--config", config.to_str().unwrap()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("`gates.coverage.doctests = true` needs a nightly toolchain"), "{text}");

    let config = config_with("coverage-service", "[gates.coverage.services.nobody]\nlines = 50\n");
    let output = xtask(&["gates", "coverage", "--config", config.to_str().unwrap()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("`gates.coverage.services.nobody` names no measured service"), "{text}");
}
