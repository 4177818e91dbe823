//! catalog as a real process: its routes, its healthcheck command and its shutdown.

use meshkit::testing::{ServiceProcess, http_get};

const BINARY: &str = env!("CARGO_BIN_EXE_catalog");

#[test]
fn lists_products_and_answers_one_by_id() {
    let service = ServiceProcess::start(BINARY, &[]).unwrap();

    let (status, body) = http_get(&format!("{}/catalog/products", service.base_url)).unwrap();
    assert_eq!(status, 200);
    let products: Vec<catalog::Product> = serde_json::from_str(&body).unwrap();
    assert_eq!(products, catalog::products());

    let (status, body) = http_get(&format!("{}/catalog/products/kb-01", service.base_url)).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("Keyboard"));

    let (status, _) = http_get(&format!("{}/catalog/products/none", service.base_url)).unwrap();
    assert_eq!(status, 404);
}

#[test]
fn is_ready_without_dependencies_and_its_healthcheck_passes() {
    let service = ServiceProcess::start(BINARY, &[]).unwrap();
    let (status, _) = http_get(&format!("{}/readyz", service.base_url)).unwrap();
    assert_eq!(status, 200);
    assert!(service.run_healthcheck(BINARY).unwrap().success());
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    // Port 1 is privileged: nothing in a test run listens there.
    #[allow(clippy::disallowed_methods)]
    let status = std::process::Command::new(BINARY)
        .arg("healthcheck")
        .env("PORT", "1")
        .output()
        .unwrap()
        .status;
    assert!(!status.success());
}

#[test]
fn stops_cleanly_on_sigterm_and_logs_json_lines() {
    let service = ServiceProcess::start(BINARY, &[]).unwrap();
    http_get(&format!("{}/catalog/products", service.base_url)).unwrap();
    let (status, output) = service.terminate().unwrap();
    assert!(status.success(), "exit status {status}");

    let messages: Vec<String> = output
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
            assert_eq!(event["service"], "catalog");
            for key in ["timestamp", "level", "message"] {
                assert!(event[key].is_string(), "{key} missing in {line}");
            }
            event["message"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(messages, ["listening", "request handled", "shutting down", "stopped"]);
}

#[test]
fn healthcheck_probes_the_path_it_is_given() {
    let service = ServiceProcess::start(BINARY, &[]).unwrap();
    let probe = |path: &str| {
        #[allow(clippy::disallowed_methods)]
        let output = std::process::Command::new(BINARY)
            .args(["healthcheck", path])
            .env("PORT", service.port.to_string())
            .output()
            .unwrap();
        output.status.success()
    };
    assert!(probe("/readyz"));
    assert!(!probe("/nowhere"));
    assert!(!probe("readyz"), "a path must start with a slash");
}
