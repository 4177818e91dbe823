//! gateway as a real process in front of a real catalog.

use meshkit::testing::{ServiceProcess, http_get, http_post_json};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

#[test]
fn forwards_catalog_paths_and_rejects_unknown_ones() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let catalog_url = runtime
        .block_on(meshkit::server::spawn_on_loopback("catalog", Vec::new(), catalog::routes))
        .unwrap();
    let dead = meshkit::testing::DEAD_URL;
    let service =
        ServiceProcess::start(BINARY, &[("CATALOG_URL", &catalog_url), ("ORDERS_URL", dead)])
            .unwrap();

    let (status, body) = http_get(&format!("{}/catalog/products/kb-01", service.base_url)).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("Keyboard"));
    let (status, _) = http_get(&format!("{}/catalog/products/zz", service.base_url)).unwrap();
    assert_eq!(status, 404, "upstream statuses pass through");
    let (status, _) = http_get(&format!("{}/entries", service.base_url)).unwrap();
    assert_eq!(status, 404);

    let order = json!({ "item_id": "kb-01", "quantity": 1 });
    let (status, _) = http_post_json(&format!("{}/orders", service.base_url), &order).unwrap();
    assert_eq!(status, 502, "orders is down");
    let (status, _) = http_get(&format!("{}/readyz", service.base_url)).unwrap();
    assert_eq!(status, 503);

    let (status, output) = service.terminate().unwrap();
    assert!(status.success());
    assert!(output.contains("upstream call failed"));
}
