//! orders as a real process, talking to a real catalog and ledger on loopback.

use std::sync::Arc;

use meshkit::testing::{ServiceProcess, http_get, http_post_json};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_orders");

/// Starts catalog and ledger in a background runtime and returns their base URLs.
fn start_dependencies(name: &str) -> (tokio::runtime::Runtime, String, String) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("orders-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(ledger::Store::new(dir.join("ledger.jsonl")));
    let (catalog_url, ledger_url) = runtime.block_on(async {
        let catalog = meshkit::server::spawn_on_loopback("catalog", Vec::new(), catalog::routes);
        let ledger =
            meshkit::server::spawn_on_loopback("ledger", Vec::new(), ledger::routes(store));
        (catalog.await.unwrap(), ledger.await.unwrap())
    });
    (runtime, catalog_url, ledger_url)
}

#[test]
fn prices_records_and_lists_an_order() {
    let (_runtime, catalog_url, ledger_url) = start_dependencies("create");
    let service = ServiceProcess::start(
        BINARY,
        &[("CATALOG_URL", &catalog_url), ("LEDGER_URL", &ledger_url)],
    )
    .unwrap();
    let (status, _) = http_get(&format!("{}/readyz", service.base_url)).unwrap();
    assert_eq!(status, 200);

    let url = format!("{}/orders", service.base_url);
    let (status, body) =
        http_post_json(&url, &json!({ "item_id": "ms-02", "quantity": 3 })).unwrap();
    assert_eq!(status, 201, "{body}");
    let order: orders::Order = serde_json::from_str(&body).unwrap();
    assert_eq!(
        order,
        orders::Order { id: 1, item_id: "ms-02".into(), quantity: 3, total_cents: 5_700 }
    );

    let (status, body) = http_get(&url).unwrap();
    assert_eq!(status, 200);
    let listed: Vec<orders::Order> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed, [order]);
}

#[test]
fn refuses_unknown_items_and_empty_orders() {
    let (_runtime, catalog_url, ledger_url) = start_dependencies("refuse");
    let service = ServiceProcess::start(
        BINARY,
        &[("CATALOG_URL", &catalog_url), ("LEDGER_URL", &ledger_url)],
    )
    .unwrap();
    let url = format!("{}/orders", service.base_url);
    let (status, body) =
        http_post_json(&url, &json!({ "item_id": "nope", "quantity": 1 })).unwrap();
    assert_eq!(status, 422);
    assert!(body.contains("unknown item"));
    let (status, _) = http_post_json(&url, &json!({ "item_id": "kb-01", "quantity": 0 })).unwrap();
    assert_eq!(status, 422);
    let (_, body) = http_get(&url).unwrap();
    assert_eq!(body, "[]");
}

#[test]
fn is_not_ready_and_answers_502_while_ledger_is_down() {
    let (_runtime, catalog_url, _ledger_url) = start_dependencies("down");
    let dead = meshkit::testing::DEAD_URL;
    let service =
        ServiceProcess::start(BINARY, &[("CATALOG_URL", &catalog_url), ("LEDGER_URL", dead)])
            .unwrap();
    let (status, body) = http_get(&format!("{}/readyz", service.base_url)).unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("ledger"), "{body}");

    let url = format!("{}/orders", service.base_url);
    let (status, _) = http_post_json(&url, &json!({ "item_id": "kb-01", "quantity": 1 })).unwrap();
    assert_eq!(status, 502);
    let (status, output) = service.terminate().unwrap();
    assert!(status.success());
    assert!(output.contains("dependency call failed"));
}

#[test]
fn answers_502_naming_catalog_while_catalog_is_down() {
    let (_runtime, _catalog_url, ledger_url) = start_dependencies("catalog-down");
    let dead = meshkit::testing::DEAD_URL;
    let service =
        ServiceProcess::start(BINARY, &[("CATALOG_URL", dead), ("LEDGER_URL", &ledger_url)])
            .unwrap();
    let url = format!("{}/orders", service.base_url);
    let (status, body) =
        http_post_json(&url, &json!({ "item_id": "kb-01", "quantity": 1 })).unwrap();
    assert_eq!(status, 502);
    assert!(body.contains("catalog unavailable"), "{body}");

    // Nothing was recorded: the order never reached the ledger.
    let (status, body) = http_get(&url).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "[]");
}
