//! catalog: the product list of the reference mesh, served read-only.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meshkit::Service;
use serde::{Deserialize, Serialize};

pub const NAME: &str = "catalog";

/// catalog calls no other service.
pub const DEPENDENCIES: &[(&str, &str)] = &[];

/// One product on offer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price_cents: u64,
}

/// The products on offer, in a stable order.
pub fn products() -> Vec<Product> {
    [("kb-01", "Keyboard", 4_900), ("ms-02", "Mouse", 1_900), ("mn-27", "Monitor 27\"", 21_900)]
        .into_iter()
        .map(|(id, name, price_cents)| Product { id: id.into(), name: name.into(), price_cents })
        .collect()
}

/// Looks a product up by id.
pub fn find_product(id: &str) -> Option<Product> {
    products().into_iter().find(|product| product.id == id)
}

pub fn routes(router: Router<Arc<Service>>) -> Router<Arc<Service>> {
    router
        .route("/catalog/products", get(list_products))
        .route("/catalog/products/{id}", get(get_product))
}

async fn list_products() -> impl IntoResponse {
    axum::Json(products())
}

async fn get_product(Path(id): Path<String>) -> Response {
    match find_product(&id) {
        Some(product) => axum::Json(product).into_response(),
        None => {
            (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": "no such product" })))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_are_unique() {
        let mut ids: Vec<String> = products().into_iter().map(|product| product.id).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }

    #[test]
    fn finds_a_product_by_id_and_nothing_else() {
        assert_eq!(find_product("ms-02").unwrap().price_cents, 1_900);
        assert_eq!(find_product("nope"), None);
    }
}
