//! orders: takes an order, prices it with catalog and records it in ledger.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meshkit::Service;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const NAME: &str = "orders";

/// The services orders calls, with the variables that may override their URLs.
pub const DEPENDENCIES: &[(&str, &str)] = &[("catalog", "CATALOG_URL"), ("ledger", "LEDGER_URL")];

/// An order as a customer places it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OrderRequest {
    pub item_id: String,
    pub quantity: u32,
}

/// A recorded order.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: u64,
    pub item_id: String,
    pub quantity: u32,
    pub total_cents: u64,
}

#[derive(Deserialize)]
struct Product {
    price_cents: u64,
}

#[derive(Deserialize, Serialize)]
struct LedgerEntry {
    #[serde(default, skip_serializing)]
    sequence: u64,
    item_id: String,
    quantity: u32,
    total_cents: u64,
}

impl From<LedgerEntry> for Order {
    fn from(entry: LedgerEntry) -> Order {
        Order {
            id: entry.sequence,
            item_id: entry.item_id,
            quantity: entry.quantity,
            total_cents: entry.total_cents,
        }
    }
}

/// Prices `quantity` items; `None` when the total does not fit.
pub fn total_cents(price_cents: u64, quantity: u32) -> Option<u64> {
    price_cents.checked_mul(u64::from(quantity))
}

pub fn routes(router: Router<Arc<Service>>) -> Router<Arc<Service>> {
    router.route("/orders", get(list_orders).post(create_order))
}

async fn create_order(
    State(service): State<Arc<Service>>,
    Json(request): Json<OrderRequest>,
) -> Response {
    if request.quantity == 0 {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "quantity must be at least 1");
    }
    let product_url =
        format!("{}/catalog/products/{}", service.dependency_url("catalog"), request.item_id);
    let product: Product = match service.client.get_json(&product_url).await {
        Ok(Some(product)) => product,
        Ok(None) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "unknown item"),
        Err(error) => return upstream_failed(&service, "catalog", &error),
    };
    let Some(total_cents) = total_cents(product.price_cents, request.quantity) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "order total too large");
    };

    let entry = LedgerEntry {
        sequence: 0,
        item_id: request.item_id,
        quantity: request.quantity,
        total_cents,
    };
    let ledger_url = format!("{}/entries", service.dependency_url("ledger"));
    match service.client.post_json::<_, LedgerEntry>(&ledger_url, &entry).await {
        Ok(Some(recorded)) => (StatusCode::CREATED, Json(Order::from(recorded))).into_response(),
        Ok(None) => upstream_failed(&service, "ledger", &anyhow::anyhow!("{ledger_url} not found")),
        Err(error) => upstream_failed(&service, "ledger", &error),
    }
}

async fn list_orders(State(service): State<Arc<Service>>) -> Response {
    let url = format!("{}/entries", service.dependency_url("ledger"));
    match service.client.get_json::<Vec<LedgerEntry>>(&url).await {
        Ok(entries) => {
            let orders: Vec<Order> =
                entries.unwrap_or_default().into_iter().map(Order::from).collect();
            Json(orders).into_response()
        }
        Err(error) => upstream_failed(&service, "ledger", &error),
    }
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

fn upstream_failed(service: &Service, dependency: &str, error: &anyhow::Error) -> Response {
    service.logger.error(
        "dependency call failed",
        &[("dependency", json!(dependency)), ("error", json!(format!("{error:#}")))],
    );
    refuse(StatusCode::BAD_GATEWAY, &format!("{dependency} unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_multiply_and_refuse_overflow() {
        assert_eq!(total_cents(1_900, 3), Some(5_700));
        assert_eq!(total_cents(u64::MAX, 2), None);
    }
}
