//! The static gates through the command line: exit codes, rule ids, locations.

use crate::support::{mesh_variant, repo_root, stderr, temp_dir, xtask};

#[test]
fn reference_mesh_has_no_static_findings() {
    let dir = mesh_variant("static-reference", |compose| compose);
    let config = dir.join("meshgate.toml");
    let output = xtask(&["gates", "--static", "--json", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings: usize = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["findings"].as_array().unwrap().len())
        .sum();
    assert_eq!(findings, 0, "{report:#}");
    // The gates that ran have their logs; the skipped ones add none.
    let logs: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("validate_"))
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(
        logs.iter()
            .all(|name| name.contains("network_contracts") || name.contains("artifact_hygiene")),
        "{logs:?}"
    );
}

#[test]
fn gateway_on_the_data_network_fails_at_the_compose_line() {
    let dir = mesh_variant("gateway-data", |compose| {
        compose.replace("networks: [edge, backend]", "networks: [edge, backend, data]")
    });
    let config = dir.join("meshgate.toml");
    let output =
        xtask(&["gates", "network-contracts", "--static", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = std::fs::read_to_string(dir.join("compose.yaml"))
        .unwrap()
        .lines()
        .position(|line| line.contains("[edge, backend, data]"))
        .unwrap()
        + 1;
    assert!(stderr.contains("network/network-mismatch"), "{stderr}");
    assert_eq!(
        stderr.matches(&format!("compose.yaml:{line}:")).count(),
        2,
        "both findings point at the edited line {line}: {stderr}"
    );
    assert!(
        stderr.contains("network/undeclared-reachability"),
        "gateway and ledger share `data`: {stderr}"
    );
}

#[test]
fn strict_flag_and_warning_mode_decide_the_exit_code() {
    let dir = mesh_variant("modes", |compose| {
        compose.replace("networks: [backend]\n", "networks: [backend, data]\n")
    });
    let config = dir.join("meshgate.toml");
    let config = config.to_str().unwrap();
    assert_eq!(
        xtask(&["gates", "--static", "--config", config, "--mode", "warning"]).status.code(),
        Some(0)
    );
    assert_eq!(
        xtask(&["gates", "--static", "--config", config, "--strict"]).status.code(),
        Some(1)
    );
}

#[test]
fn bad_configuration_exits_2_naming_file_and_line() {
    let dir = temp_dir("bad-config");
    std::fs::write(dir.join("meshgate.toml"), "[mesh]\nmode = \"strict\"\nfrobnicate = true\n")
        .unwrap();
    let output =
        xtask(&["gates", "--static", "--config", dir.join("meshgate.toml").to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("meshgate.toml:3") && stderr.contains("frobnicate"), "{stderr}");
    // The report says so, rather than an earlier run's report standing in for this one.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logs/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "error");
    assert_eq!(report["exit_code"], 2);
    assert!(report["error"].as_str().unwrap().contains("frobnicate"), "{report}");
}

#[test]
fn bad_compose_file_exits_2_naming_file_line_and_fix() {
    let dir = mesh_variant("bad-compose", |compose| {
        compose.replace("    networks: [backend]\n", "    netwroks: [backend]\n")
    });
    let output =
        xtask(&["gates", "--static", "--config", dir.join("meshgate.toml").to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("compose.yaml:")
            && stderr.contains("`netwroks`")
            && stderr.contains("did you mean `networks`"),
        "{stderr}"
    );
}

#[test]
fn discover_prints_every_contract() {
    let output = xtask(&["discover"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let services: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> =
        services.as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(names, ["catalog", "gateway", "ledger", "orders"]);
    assert!(repo_root().join("services/ledger/Dockerfile").is_file());
}

#[test]
fn a_network_meshgate_toml_misnames_is_a_finding_at_its_line() {
    let dir = mesh_variant("misnamed-network", |compose| compose);
    let config = dir.join("meshgate.toml");
    let text =
        std::fs::read_to_string(&config).unwrap().replace("[networks.data]", "[networks.dta]");
    std::fs::write(&config, &text).unwrap();
    let line = text.lines().position(|line| line == "[networks.dta]").unwrap() + 1;
    let output = xtask(&["gates", "--static", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("network/unknown-network")
            && stderr.contains(&format!("meshgate.toml:{line}:")),
        "{stderr}"
    );
}

#[test]
fn discover_infers_contracts_as_toml_that_meshgate_toml_accepts() {
    let dir = temp_dir("discover-infer");
    let compose =
        crate::support::shared().join("corpus/external/example-voting-app/docker-compose.yml");
    let config = dir.join("meshgate.toml");
    let head = format!(
        "[mesh]\ncrate_contracts = false\ncompose_files = [{:?}]\n\n",
        compose.display().to_string()
    );
    std::fs::write(&config, &head).unwrap();
    let output = xtask(&["discover", "--infer-contracts", "--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let inferred = String::from_utf8(output.stdout).unwrap();
    let tables = inferred.lines().filter(|line| line.starts_with("[external.")).count();
    assert_eq!(tables, 5, "one per active service (`seed` is in a profile): {inferred}");
    assert!(inferred.contains("[external.vote]\nlisten = [80]\n"), "{inferred}");
    // redis shows no port in the file, so vote's edge to it cannot be written down.
    assert!(inferred.contains("# depends on `redis`, whose ports"), "{inferred}");

    // Pasted into meshgate.toml, the contracts are declared ones: every service has one, and
    // the rules for declared intent now judge them.
    std::fs::write(&config, format!("{head}{inferred}\n")).unwrap();
    let output = xtask(&[
        "gates",
        "network-contracts",
        "--static",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_ne!(output.status.code(), Some(2), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rules: Vec<&str> = report["gates"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["rule"].as_str().unwrap())
        .collect();
    assert!(!rules.contains(&"discovery/no-contract"), "{rules:?}");
}

#[test]
fn inferred_contracts_talk_to_every_port_their_dependencies_listen_on() {
    let dir = temp_dir("infer-edges");
    let compose = "services:\n  web:\n    image: example/web:1.0\n    ports: [\"8080:80\"]\n    depends_on: [api]\n  api:\n    image: example/api:1.0\n    expose: [\"8080\", \"9000-9001\", \"5353/udp\"]\n";
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    let config = dir.join("meshgate.toml");
    std::fs::write(&config, "[mesh]\ncrate_contracts = false\n").unwrap();
    let output = xtask(&["discover", "--infer-contracts", "--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let inferred: toml::Table = toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let web = &inferred["external"]["web"];
    assert_eq!(web["public"].as_bool(), Some(true));
    assert_eq!(web["talks_to"].as_array().unwrap().len(), 3, "{web}");
    assert_eq!(web["talks_to"][0].as_str(), Some("api:8080"), "{web}");
    let api = &inferred["external"]["api"];
    assert_eq!(api["public"].as_bool(), Some(false));
    assert_eq!(api["listen"].to_string(), r#"["5353/udp", 8080, 9000, 9001]"#, "{api}");
    assert_eq!(api["networks"].to_string(), r#"["default"]"#, "{api}");
}

#[test]
fn a_second_run_compares_with_the_first_and_flags_new_findings() {
    let dir = mesh_variant("summary-deltas", |compose| compose);
    let config = dir.join("meshgate.toml");
    let run = || xtask(&["gates", "--static", "--config", config.to_str().unwrap()]);
    assert_eq!(run().status.code(), Some(0));
    let first = std::fs::read_to_string(dir.join("logs/summary.md")).unwrap();
    assert!(!first.contains("Compared with the last run"), "no earlier run: {first}");

    // The same kind of run again, now with gateway on the data network.
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let compose = compose.replace("networks: [edge, backend]", "networks: [edge, backend, data]");
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    assert_eq!(run().status.code(), Some(1));
    let second = std::fs::read_to_string(dir.join("logs/summary.md")).unwrap();
    assert!(second.contains("Compared with the last run of this kind"), "{second}");
    let row = second
        .lines()
        .find(|line| line.starts_with("| `findings{rule=\"all\"}`"))
        .unwrap_or_else(|| panic!("no findings row: {second}"));
    assert!(row.contains("| 2 | +2 |") && row.contains("**regression**"), "{row}");
    assert!(second.contains("regression(s)** beyond the tolerance"), "{second}");
    let history = std::fs::read_to_string(dir.join(".meshgate/history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 2, "{history}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logs/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(metrics["findings_by_rule"]["network/network-mismatch"], 1, "{metrics:#}");
}

#[test]
fn extreme_durations_and_an_include_are_input_errors_never_a_panic() {
    let dir = temp_dir("extreme-input");
    let config = dir.join("meshgate.toml");
    // Each input must stop the run with exit 2 at `at`, and the report must say so.
    let refused = |compose: &str, policy: &str, at: &str| {
        std::fs::write(dir.join("compose.yaml"), compose).unwrap();
        std::fs::write(&config, format!("[mesh]\ncrate_contracts = false\n{policy}")).unwrap();
        let output = xtask(&["gates", "--static", "--config", config.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(at), "{at}: {}", stderr(&output));
        let report = std::fs::read_to_string(dir.join("logs/report.json")).unwrap();
        assert!(report.contains("\"error\""), "{report}");
        stderr(&output)
    };
    let plain = "services:\n  api:\n    image: example/api:1.0\n";

    // A healthcheck interval beyond any clock, in the Compose file and in meshgate.toml.
    let healthcheck = format!(
        "{plain}    healthcheck:\n      test: [\"CMD\", \"/api\", \"healthcheck\"]\n      interval: 99999999999999999999h\n"
    );
    refused(&healthcheck, "", "compose.yaml:6");
    let timeout = "\n[gates.service_health]\ntimeout = \"9999999999999999999999s\"\n";
    refused(plain, timeout, "meshgate.toml:5");

    // A top-level `include:` is refused where it stands, not half read.
    let text = refused(&format!("include:\n  - db.yaml\n{plain}"), "", "compose.yaml:2");
    assert!(text.contains("mesh.compose_files"), "{text}");
}
