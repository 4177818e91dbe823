//! The real main job: images built, the mesh up under Compose, health waited for, teardown.

use crate::support::{docker_or_skip, leftovers, mesh_variant, stderr, xtask};

fn report_of(dir: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(dir.join("logs/report.json")).expect("report.json is written");
    serde_json::from_str(&text).expect("report.json is JSON")
}

#[test]
fn integration_reference_mesh_passes_and_leaves_nothing() {
    if !docker_or_skip("integration_reference_mesh_passes_and_leaves_nothing") {
        return;
    }
    // A copy of the configuration, so this run's logs do not race the other tests'.
    let dir = mesh_variant("reference", |compose| compose);
    let config = dir.join("meshgate.toml");
    let output = xtask(&["gates", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("service-health") && stderr.contains("passed"), "{stderr}");

    let report = report_of(&dir);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["verdict"], "passed");
    let project = report["project"].as_str().unwrap();
    assert!(project.starts_with("meshgate-"), "{project}");
    assert_eq!(leftovers(project), 0, "the run left containers, networks or volumes of {project}");

    // Every gate has its detailed log, and every service's output was kept.
    let logs: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for gate in ["network_contracts", "service_health", "artifact_hygiene", "coverage"] {
        assert!(
            logs.iter()
                .any(|name| name.starts_with(&format!("validate_{gate}_"))
                    && name.ends_with("Z.log")),
            "{gate}: {logs:?}"
        );
    }
    // The network gate proved the contracts on the running containers.
    let network = &report["gates"][0];
    assert_eq!(network["gate"], "network-contracts");
    assert!(network.get("scope").is_none(), "both halves ran: {network:#}");
    let observed = |source: &str, target: &str| {
        let cell = network["matrix"]
            .as_array()
            .unwrap()
            .iter()
            .find(|cell| cell["source"] == source && cell["target"] == target)
            .unwrap_or_else(|| panic!("no cell {source} -> {target}: {network:#}"));
        (
            cell["expected"].as_str().unwrap().to_owned(),
            cell["observed"].as_str().unwrap().to_owned(),
        )
    };
    for (source, target) in
        [("gateway", "catalog"), ("gateway", "orders"), ("orders", "catalog"), ("orders", "ledger")]
    {
        assert_eq!(observed(source, target), ("connect".into(), "connected".into()));
    }
    for (source, target) in [("gateway", "ledger"), ("catalog", "ledger"), ("ledger", "gateway")] {
        let (expected, seen) = observed(source, target);
        assert_eq!(expected, "refuse");
        assert!(seen != "connected" && seen != "probe-error", "{source} -> {target}: {seen}");
    }
    assert!(
        stderr.contains("gateway") && stderr.contains("catalog:8080"),
        "matrix shown: {stderr}"
    );

    let catalog_log = std::fs::read_to_string(dir.join("logs/services/catalog.log")).unwrap();
    assert!(
        catalog_log.lines().any(|line| line.contains("\"message\":\"listening\"")),
        "{catalog_log}"
    );
    // Artifact hygiene judged the built images and the running containers, and found nothing.
    let hygiene = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|gate| gate["gate"] == "artifact-hygiene")
        .unwrap();
    assert_eq!(hygiene["status"]["state"], "passed", "{hygiene:#}");
    assert!(hygiene.get("scope").is_none(), "both halves ran: {hygiene:#}");
    assert_eq!(hygiene["findings"].as_array().unwrap().len(), 0, "{hygiene:#}");
}

#[test]
fn integration_broken_healthcheck_fails_naming_the_service() {
    if !docker_or_skip("integration_broken_healthcheck_fails_naming_the_service") {
        return;
    }
    // catalog's healthcheck probes a path that never answers 2xx.
    let dir = mesh_variant("broken", |compose| {
        compose.replace(
            "    image: meshgate/catalog:local\n",
            "    image: meshgate/catalog:local\n    healthcheck:\n      test: [\"CMD\", \"/catalog\", \"healthcheck\", \"/nowhere\"]\n      interval: 1s\n      retries: 2\n",
        )
    });
    let config = dir.join("meshgate.toml");
    let started = std::time::Instant::now();
    let output = xtask(&["gates", "service-health", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("health/unhealthy") && stderr.contains("`catalog` is unhealthy"),
        "{stderr}"
    );
    assert!(stderr.contains("--keep-up"), "the failure says how to look further: {stderr}");

    let report = report_of(&dir);
    assert_eq!(report["verdict"], "failed");
    let project = report["project"].as_str().unwrap();
    assert_eq!(leftovers(project), 0, "the failed run left resources of {project}");
    assert!(dir.join("logs/services/catalog.log").is_file());
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
}

#[test]
fn integration_clean_removes_what_a_killed_run_left() {
    if !docker_or_skip("integration_clean_removes_what_a_killed_run_left") {
        return;
    }
    // What a SIGKILLed run leaves: resources labelled with a meshgate project whose process is
    // gone (no pid reaches 4194304, the kernel's limit), while this test's own runs go on.
    let project = format!("meshgate-4194304-{}", std::process::id());
    let label = format!("com.docker.compose.project={project}");
    for args in [
        ["network", "create", "--label", &label, &format!("{project}_default")],
        ["volume", "create", "--label", &label, &format!("{project}_data")],
    ] {
        #[allow(clippy::disallowed_methods, reason = "setting up what a killed run leaves")]
        let status = std::process::Command::new("docker").args(args).output().unwrap().status;
        assert!(status.success(), "docker {args:?}");
    }
    assert_eq!(leftovers(&project), 2);

    let output = xtask(&["gates", "clean"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains(&project), "{}", stderr(&output));
    assert_eq!(leftovers(&project), 0);
}

/// Starts a health run, interrupts it with `signal` once its containers exist, and checks
/// the exit code and that nothing of the run is left.
fn interrupt_mid_run(name: &str, signal: &str, expected_code: i32) {
    use std::io::BufRead as _;

    let dir = mesh_variant(name, |compose| compose);
    let config = dir.join("meshgate.toml");
    #[allow(clippy::disallowed_methods, reason = "the test needs the child's pid to signal it")]
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["gates", "service-health", "--config", config.to_str().unwrap()])
        .current_dir(crate::support::repo_root())
        .env("CARGO_MANIFEST_DIR", crate::support::repo_root().join("xtask"))
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // The project name is announced before `compose up` starts.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut transcript = String::new();
    let project = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the run ended early:\n{transcript}");
        transcript.push_str(&line);
        if let Some(project) = line.trim().strip_prefix("Starting mesh as compose project ") {
            break project.to_owned();
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while leftovers(&project) == 0 {
        assert!(std::time::Instant::now() < deadline, "no resource of {project} appeared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    #[allow(clippy::disallowed_methods, reason = "sending the signal under test")]
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    transcript.push_str(&rest);
    assert_eq!(status.code(), Some(expected_code), "{transcript}");
    assert_eq!(leftovers(&project), 0, "{signal} left resources of {project}:\n{transcript}");
    // The report says so, rather than an earlier run's report standing in for this one.
    let report = report_of(&dir);
    assert_eq!(report["verdict"], "interrupted", "{report:#}");
    assert_eq!(report["exit_code"], expected_code);
}

#[test]
fn integration_sigint_mid_run_removes_everything() {
    if docker_or_skip("integration_sigint_mid_run_removes_everything") {
        interrupt_mid_run("sigint", "-INT", 130);
    }
}

#[test]
fn integration_sigterm_mid_run_removes_everything() {
    if docker_or_skip("integration_sigterm_mid_run_removes_everything") {
        interrupt_mid_run("sigterm", "-TERM", 143);
    }
}

#[test]
fn integration_gateway_on_the_data_network_fails_the_runtime_probe() {
    if !docker_or_skip("integration_gateway_on_the_data_network_fails_the_runtime_probe") {
        return;
    }
    let dir = mesh_variant("runtime-gateway-data", |compose| {
        compose.replace("networks: [edge, backend]", "networks: [edge, backend, data]")
    });
    let config = dir.join("meshgate.toml");
    let output = xtask(&[
        "gates",
        "network-contracts",
        "--runtime-only",
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = std::fs::read_to_string(dir.join("compose.yaml"))
        .unwrap()
        .lines()
        .position(|line| line.contains("[edge, backend, data]"))
        .unwrap()
        + 1;
    assert!(stderr.contains("network/forbidden-connects"), "{stderr}");
    assert!(stderr.contains("`gateway` connected to `ledger`"), "{stderr}");
    assert!(stderr.contains(&format!("compose.yaml:{line}:")), "points at line {line}: {stderr}");
    assert!(stderr.contains("network/runtime-attachment"), "{stderr}");
    assert!(!stderr.contains("network/network-mismatch"), "static checks were skipped: {stderr}");

    let report = report_of(&dir);
    assert_eq!(report["gates"][0]["scope"], "runtime checks only");
    let project = report["project"].as_str().unwrap();
    assert_eq!(leftovers(project), 0, "probe containers and the mesh are gone: {project}");
}

/// The figures the run recorded, `logs/metrics.json`.
fn metrics_of(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("logs/metrics.json")).expect("metrics.json");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

#[test]
fn integration_crashing_service_fails_fast_with_its_exit_code() {
    if !docker_or_skip("integration_crashing_service_fails_fast_with_its_exit_code") {
        return;
    }
    // catalog cannot read its port, so it exits with code 2 as soon as it starts.
    let dir = mesh_variant("crash", |compose| {
        compose.replace(
            "    image: meshgate/catalog:local\n",
            "    image: meshgate/catalog:local\n    environment:\n      PORT: not-a-port\n",
        )
    });
    let config = dir.join("meshgate.toml");
    let output = xtask(&["gates", "service-health", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("health/exited"), "{stderr}");
    assert!(
        stderr.contains("`catalog` exited with code 2")
            || stderr.contains("`catalog` restarted") && stderr.contains("last exit code 2"),
        "names the service and its exit code: {stderr}"
    );

    // Failed within 5 s of the crash, not at the 120 s budget: the crash came right after
    // the container started.
    let report = report_of(&dir);
    let health = &report["gates"][0];
    assert_eq!(health["gate"], "service-health");
    let metrics = metrics_of(&dir);
    let started = metrics["services"]["catalog"]["time_to_running_ms"].as_u64().unwrap();
    let failed = health["duration_ms"].as_u64().unwrap();
    assert!(failed < started + 5_000, "failed {failed} ms after up, catalog ran at {started} ms");
    let catalog_log = std::fs::read_to_string(dir.join("logs/services/catalog.log")).unwrap();
    assert!(catalog_log.contains("PORT is not a port number"), "{catalog_log}");
    assert_eq!(leftovers(report["project"].as_str().unwrap()), 0);
}

#[test]
fn integration_c15_every_failure_under_way_is_named_before_the_budget() {
    if !docker_or_skip("integration_c15_every_failure_under_way_is_named_before_the_budget") {
        return;
    }
    // C15 with the mesh's own images: `ledger` crashes at start (an unknown command exits 2),
    // `catalog`'s healthcheck always fails; orders and gateway wait on both. A zero start
    // period would inherit the image's 10 s, so the start period is 1 ms.
    let dir = mesh_variant("c15", |compose| {
        compose
            .replace(
                "    image: meshgate/catalog:local\n",
                "    image: meshgate/catalog:local\n    healthcheck:\n      test: [\"CMD\", \"/catalog\", \"healthcheck\", \"/nowhere\"]\n      interval: 1s\n      timeout: 1s\n      retries: 1\n      start_period: 1ms\n",
            )
            .replace(
                "    image: meshgate/ledger:local\n",
                "    image: meshgate/ledger:local\n    restart: \"no\"\n    command: [\"crash\"]\n",
            )
    });
    let config = dir.join("meshgate.toml");
    let output = xtask(&["gates", "service-health", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`ledger` exited with code 2"), "{stderr}");
    assert!(stderr.contains("`catalog` is unhealthy (last probe output:"), "{stderr}");
    let report = report_of(&dir);
    assert!(report["gates"][0]["duration_ms"].as_u64().unwrap() < 60_000, "{report:#}");
    assert_eq!(leftovers(report["project"].as_str().unwrap()), 0);
}

#[test]
fn integration_health_timeout_fails_naming_the_service_and_leaves_nothing() {
    if !docker_or_skip("integration_health_timeout_fails_naming_the_service_and_leaves_nothing") {
        return;
    }
    // catalog's probe never passes, but inside its hour-long start period failures do not
    // count: it stays `starting` until its 4 s budget from meshgate.toml runs out.
    let dir = mesh_variant("timeout", |compose| {
        compose.replace(
            "    image: meshgate/catalog:local\n",
            "    image: meshgate/catalog:local\n    healthcheck:\n      test: [\"CMD\", \"/catalog\", \"healthcheck\", \"/nowhere\"]\n      interval: 1s\n      start_period: 1h\n",
        )
    });
    let config = dir.join("meshgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[gates.service_health.services.catalog]\ntimeout = \"4s\"\n");
    std::fs::write(&config, text).unwrap();
    let output = xtask(&["gates", "service-health", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("health/timeout"), "{stderr}");
    assert!(stderr.contains("`catalog` did not become healthy within 4s"), "{stderr}");
    let report = report_of(&dir);
    assert_eq!(leftovers(report["project"].as_str().unwrap()), 0);
}

#[test]
fn integration_two_runs_at_once_keep_to_their_own_projects() {
    if !docker_or_skip("integration_two_runs_at_once_keep_to_their_own_projects") {
        return;
    }
    let dirs = [mesh_variant("twin-a", |c| c), mesh_variant("twin-b", |c| c)];
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let config = dir.join("meshgate.toml");
                scope.spawn(move || {
                    xtask(&["gates", "service-health", "--config", config.to_str().unwrap()])
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for output in &outputs {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    }
    let projects: Vec<String> =
        dirs.iter().map(|dir| report_of(dir)["project"].as_str().unwrap().to_owned()).collect();
    assert_ne!(projects[0], projects[1]);
    for project in &projects {
        assert_eq!(leftovers(project), 0, "{project} left resources");
    }
}

#[test]
fn integration_a_service_that_ignores_its_stop_signal_is_named() {
    if !docker_or_skip("integration_a_service_that_ignores_its_stop_signal_is_named") {
        return;
    }
    // SIGWINCH is ignored by default: the engine has to kill ledger after its 2 s grace.
    let dir = mesh_variant("stop-signal", |compose| {
        compose.replace(
            "    image: meshgate/ledger:local\n",
            "    image: meshgate/ledger:local\n    stop_signal: SIGWINCH\n    stop_grace_period: 2s\n",
        )
    });
    let config = dir.join("meshgate.toml");
    let output = xtask(&["gates", "service-health", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("health/ignored-stop-signal"), "{stderr}");
    assert!(stderr.contains("`ledger` did not exit within its 2s grace period"), "{stderr}");
    assert!(!stderr.contains("`catalog` did not exit"), "only ledger: {stderr}");
    let metrics = metrics_of(&dir);
    assert_eq!(metrics["services"]["ledger"]["stop_exit_code"], 137);
    assert_eq!(metrics["services"]["catalog"]["stop_exit_code"], 0);
    assert_eq!(leftovers(report_of(&dir)["project"].as_str().unwrap()), 0);
}

#[test]
fn integration_readiness_is_asked_over_the_mesh_from_a_caller() {
    if !docker_or_skip("integration_readiness_is_asked_over_the_mesh_from_a_caller") {
        return;
    }
    // orders is alive (its /healthz answers) but looks for ledger on a port nothing listens
    // on, so its /readyz answers 503: healthy, not ready.
    let dir = mesh_variant("not-ready", |compose| {
        compose.replace(
            "    image: meshgate/orders:local\n",
            "    image: meshgate/orders:local\n    environment:\n      LEDGER_URL: http://ledger:9999\n",
        )
    });
    let config = dir.join("meshgate.toml");
    let output = xtask(&["gates", "service-health", "--config", config.to_str().unwrap()]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("health/not-ready"), "{stderr}");
    // gateway declares `orders:8080`, so orders' readiness is asked from gateway's namespace.
    assert!(
        stderr.contains(
            "`orders` is healthy but GET http://orders:8080/readyz from `gateway` answered 503"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("`catalog` is healthy but"), "only orders: {stderr}");
    let report = report_of(&dir);
    assert_eq!(leftovers(report["project"].as_str().unwrap()), 0, "readiness helpers are gone");
}

#[test]
fn integration_a_panic_mid_run_still_removes_the_mesh() {
    if !docker_or_skip("integration_a_panic_mid_run_still_removes_the_mesh") {
        return;
    }
    // In this process, as the gates run: the mesh registered for teardown and coming up, then
    // a panic unwinds through the guard.
    let root = crate::support::repo_root();
    let config = xtask::config::load(&root).unwrap();
    let mesh = xtask::discover::discover(&root, config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let docker = runtime.block_on(xtask::docker::connect()).unwrap();
    let binaries = xtask::images::build_binaries(&mesh).unwrap();
    // The revision the other runs use, so the images are not built again for this test.
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(&root);
    let revision = xtask::pipeline::revision(&sh);
    let images = runtime
        .block_on(xtask::images::build_images(&docker, &mesh, &binaries, &revision))
        .unwrap();
    let compose = xtask::tools::ensure_compose(&root).unwrap();
    let project = xtask::pipeline::project_name();

    let panicked = std::panic::catch_unwind(|| {
        let _guard = xtask::teardown::TeardownGuard;
        let files = xtask::pipeline::run_files(&mesh, &images);
        let up = xtask::pipeline::compose_up(&compose, &mesh, &files, &project, &[]);
        let registration =
            xtask::teardown::Teardown { compose: compose.clone(), project: project.clone(), files };
        xtask::teardown::register_and_start(registration, || up.spawn()).unwrap();
        // Wait until the engine holds something of the project, so there is something to leak.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while leftovers(&project) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(leftovers(&project) > 0, "the mesh never started");
        panic!("a bug in a gate");
    });
    assert!(panicked.is_err());
    assert_eq!(leftovers(&project), 0, "the panic left resources of {project}");
}
