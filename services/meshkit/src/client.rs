//! A small HTTP/1 client for calls between services, with a deadline on every request.

use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response, StatusCode, header};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A cheap-to-clone HTTP client; every request is bounded by `timeout`.
#[derive(Clone, Debug)]
pub struct Client {
    inner: HyperClient<HttpConnector, Body>,
    timeout: Duration,
}

impl Client {
    pub fn new(timeout: Duration) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let inner = HyperClient::builder(TokioExecutor::new()).build(connector);
        Client { inner, timeout }
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: Request<Body>) -> anyhow::Result<(StatusCode, Bytes)> {
        let target = request.uri().to_string();
        let response = self.send_streaming(request).await?;
        let status = response.status();
        let body =
            tokio::time::timeout(self.timeout, axum::body::to_bytes(response.into_body(), 4 << 20))
                .await
                .with_context(|| format!("timed out reading the answer of {target}"))?
                .with_context(|| format!("failed to read the answer of {target}"))?;
        Ok((status, body))
    }

    /// Sends a request and hands back the answer with its body still streaming.
    pub async fn send_streaming(&self, request: Request<Body>) -> anyhow::Result<Response<Body>> {
        let target = request.uri().to_string();
        let response = tokio::time::timeout(self.timeout, self.inner.request(request))
            .await
            .with_context(|| format!("timed out after {:?} calling {target}", self.timeout))?
            .with_context(|| format!("failed to call {target}"))?;
        Ok(response.map(Body::new))
    }

    /// GETs `url` and decodes a 2xx JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<Option<T>> {
        let request = Request::get(url).body(Body::empty()).context("invalid request url")?;
        let (status, body) = self.send(request).await?;
        decode(url, status, &body)
    }

    /// POSTs `value` as JSON to `url` and decodes a 2xx JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        value: &B,
    ) -> anyhow::Result<Option<T>> {
        let body = serde_json::to_vec(value).context("failed to encode request body")?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .context("invalid request url")?;
        let (status, body) = self.send(request).await?;
        decode(url, status, &body)
    }

    /// GETs `url` and reports whether it answered 2xx.
    pub async fn probe(&self, url: &str) -> anyhow::Result<StatusCode> {
        let request = Request::get(url).body(Body::empty()).context("invalid request url")?;
        Ok(self.send(request).await?.0)
    }
}

/// Decodes a JSON answer: `None` for 404, an error for any other non-2xx status.
fn decode<T: DeserializeOwned>(
    url: &str,
    status: StatusCode,
    body: &[u8],
) -> anyhow::Result<Option<T>> {
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        anyhow::bail!("{url} answered {status}: {text}");
    }
    let value = serde_json::from_slice(body).with_context(|| format!("{url} sent invalid JSON"))?;
    Ok(Some(value))
}
