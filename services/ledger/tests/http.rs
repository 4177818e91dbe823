//! ledger as a real process: appends survive a restart, bad input is refused.

use meshkit::testing::{ServiceProcess, http_get, http_post_json};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_ledger");

fn temp_ledger(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ledger-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ledger.jsonl")
}

#[test]
fn keeps_entries_across_restarts() {
    let file = temp_ledger("restart");
    let file_text = file.to_str().unwrap();

    let service = ServiceProcess::start(BINARY, &[("LEDGER_FILE", file_text)]).unwrap();
    let order = json!({ "item_id": "kb-01", "quantity": 2, "total_cents": 9800 });
    let (status, body) = http_post_json(&format!("{}/entries", service.base_url), &order).unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, _) = service.terminate().unwrap();
    assert!(status.success());

    let service = ServiceProcess::start(BINARY, &[("LEDGER_FILE", file_text)]).unwrap();
    let (status, body) = http_get(&format!("{}/entries", service.base_url)).unwrap();
    assert_eq!(status, 200);
    let entries: Vec<ledger::Entry> = serde_json::from_str(&body).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].sequence, 1);
    assert_eq!(entries[0].order.total_cents, 9800);
}

#[test]
fn refuses_an_empty_order_and_malformed_json() {
    let file = temp_ledger("refuse");
    let service =
        ServiceProcess::start(BINARY, &[("LEDGER_FILE", file.to_str().unwrap())]).unwrap();
    let url = format!("{}/entries", service.base_url);
    let (status, _) =
        http_post_json(&url, &json!({ "item_id": "x", "quantity": 0, "total_cents": 0 })).unwrap();
    assert_eq!(status, 422);
    let (status, _) = http_post_json(&url, &json!({ "item_id": "x" })).unwrap();
    assert_eq!(status, 422);
    assert!(!file.exists(), "nothing may be written for refused entries");
}

#[test]
fn answers_500_when_the_volume_is_not_writable() {
    let service =
        ServiceProcess::start(BINARY, &[("LEDGER_FILE", "/proc/ledger-cannot-exist/x.jsonl")])
            .unwrap();
    let order = json!({ "item_id": "kb-01", "quantity": 1, "total_cents": 1 });
    let (status, _) = http_post_json(&format!("{}/entries", service.base_url), &order).unwrap();
    assert_eq!(status, 500);
    let (status, output) = service.terminate().unwrap();
    assert!(status.success());
    assert!(output.contains("failed to open"), "{output}");
}
