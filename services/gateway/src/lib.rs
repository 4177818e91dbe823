//! gateway: the mesh's only public entry; forwards `/catalog/*` to catalog and `/orders*` to
//! orders, path and query unchanged.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use meshkit::Service;
use serde_json::json;

pub const NAME: &str = "gateway";

/// The services gateway forwards to, with the variables that may override their URLs.
pub const DEPENDENCIES: &[(&str, &str)] = &[("catalog", "CATALOG_URL"), ("orders", "ORDERS_URL")];

/// The service that owns `path`, if any.
pub fn route_for(path: &str) -> Option<&'static str> {
    if path.starts_with("/catalog/") {
        Some("catalog")
    } else if path == "/orders" || path.starts_with("/orders/") {
        Some("orders")
    } else {
        None
    }
}

pub fn routes(router: Router<Arc<Service>>) -> Router<Arc<Service>> {
    router.fallback(forward)
}

async fn forward(State(service): State<Arc<Service>>, request: Request) -> Response {
    let Some(upstream) = route_for(request.uri().path()) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no route" }))).into_response();
    };
    let path_and_query = request.uri().path_and_query().map_or("/", |value| value.as_str());
    let target = format!("{}{path_and_query}", service.dependency_url(upstream));
    let Ok(uri) = target.parse::<Uri>() else {
        return (StatusCode::BAD_REQUEST, "invalid path").into_response();
    };

    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.headers.remove(header::HOST);
    match service.client.send_streaming(Request::from_parts(parts, Body::new(body))).await {
        Ok(response) => response.into_response(),
        Err(error) => {
            service.logger.error(
                "upstream call failed",
                &[("upstream", json!(upstream)), ("error", json!(format!("{error:#}")))],
            );
            let body = json!({ "error": format!("{upstream} unavailable") });
            (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_prefix_only() {
        assert_eq!(route_for("/catalog/products"), Some("catalog"));
        assert_eq!(route_for("/orders"), Some("orders"));
        assert_eq!(route_for("/orders/7"), Some("orders"));
        assert_eq!(route_for("/ordersx"), None);
        assert_eq!(route_for("/catalog"), None);
        assert_eq!(route_for("/entries"), None);
    }
}
