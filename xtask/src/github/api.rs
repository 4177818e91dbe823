//! Calls to GitHub's REST API through octocrab, with meshgate's own retry policy.
//!
//! octocrab's retries are off: they repeat a failed `POST` at once, which can file an issue
//! twice. Here every call says whether it may be repeated. Reads, updates and statuses (a
//! status replaces the previous one of its context) are retried after a rate limit (waiting
//! for `retry-after`, else until `x-ratelimit-reset`, else `github.retry_wait`, doubled each
//! time) and after a 5xx or a transport error (with the same growing wait). A create is never
//! retried blindly: the caller re-reads and looks for what it created before trying again.
//! A 4xx other than a rate limit is never retried. The token goes only into the client; no
//! message built here contains it.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use octocrab::Octocrab;
use serde_json::Value;

/// Whether a call may be sent again after a failure whose effect is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, updates, statuses: the same request twice has the effect of once.
    Safe,
    /// Creates (issues, comments): a second one may be a duplicate.
    Never,
}

/// A failed call, with what GitHub said.
#[derive(Debug)]
pub struct ApiError {
    pub status: Option<StatusCode>,
    pub message: String,
    /// Whether the request may have taken effect (a create that timed out, a 5xx).
    pub uncertain: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "GitHub answered {status}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ApiError {}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// The `rel="next"` page, from the `Link` header.
    pub next: Option<String>,
}

pub struct Api {
    octo: Octocrab,
    retry_wait: Duration,
    max_retries: u32,
    /// Waits taken, for the run's log.
    pub waits: std::sync::Mutex<Vec<Duration>>,
}

impl Api {
    /// A client for `base_url` (`GITHUB_API_URL`). Needs a Tokio runtime.
    pub fn new(
        base_url: &str,
        token: &str,
        retry_wait: Duration,
        max_retries: u32,
    ) -> anyhow::Result<Api> {
        use anyhow::Context as _;
        let octo = Octocrab::builder()
            .base_uri(base_url)
            .with_context(|| format!("`{base_url}` is not a URL for the GitHub API"))?
            .personal_token(token.to_owned())
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .add_header(http::header::ACCEPT, "application/vnd.github+json".into())
            .build()
            .context("failed to set up the GitHub client")?;
        Ok(Api { octo, retry_wait, max_retries, waits: Default::default() })
    }

    pub async fn get(&self, route: &str) -> Result<Answer, ApiError> {
        self.call(http::Method::GET, route, None, Repeat::Safe).await
    }

    /// Every item of a paginated list, following `Link` headers.
    pub async fn get_all(&self, route: &str) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        let mut next = Some(route.to_owned());
        while let Some(route) = next.take() {
            let answer = self.get(&route).await?;
            match answer.body {
                Value::Array(page) => items.extend(page),
                other => items.push(other),
            }
            next = answer.next;
        }
        Ok(items)
    }

    pub async fn post(
        &self,
        route: &str,
        body: &Value,
        repeat: Repeat,
    ) -> Result<Answer, ApiError> {
        self.call(http::Method::POST, route, Some(body), repeat).await
    }

    pub async fn patch(&self, route: &str, body: &Value) -> Result<Answer, ApiError> {
        self.call(http::Method::PATCH, route, Some(body), Repeat::Safe).await
    }

    async fn call(
        &self,
        method: http::Method,
        route: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Answer, ApiError> {
        let mut attempt = 0;
        loop {
            let sent = match method {
                http::Method::GET => self.octo._get(route).await,
                http::Method::POST => self.octo._post(route, body).await,
                _ => self.octo._patch(route, body).await,
            };
            let failure = match sent {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let text = self.octo.body_to_string(response).await.unwrap_or_default();
                    if status.is_success() {
                        let body = if text.trim().is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_str(&text).map_err(|error| ApiError {
                                status: Some(status),
                                message: format!("an answer that is not JSON ({error})"),
                                uncertain: false,
                            })?
                        };
                        return Ok(Answer { status, body, next: next_link(&headers) });
                    }
                    let message = github_message(&text);
                    let limited = is_rate_limited(status, &headers, &text);
                    let wait = if limited {
                        Some(
                            rate_limit_wait(&headers)
                                .unwrap_or(self.retry_wait * 2u32.pow(attempt)),
                        )
                    } else if status.is_server_error() && repeat == Repeat::Safe {
                        Some(self.retry_wait * 2u32.pow(attempt))
                    } else {
                        None
                    };
                    let error = ApiError {
                        status: Some(status),
                        message,
                        // A rate limit refused the request; a 5xx may or may not have acted.
                        uncertain: status.is_server_error(),
                    };
                    (error, wait)
                }
                Err(error) => {
                    let error = ApiError {
                        status: None,
                        message: format!("the request to GitHub failed: {}", describe(&error)),
                        uncertain: true,
                    };
                    let wait =
                        (repeat == Repeat::Safe).then(|| self.retry_wait * 2u32.pow(attempt));
                    (error, wait)
                }
            };
            let (error, wait) = failure;
            match wait {
                Some(wait) if attempt < self.max_retries => {
                    self.waits.lock().map(|mut waits| waits.push(wait)).ok();
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }
}

/// What an octocrab error says, without anything of the request's headers.
fn describe(error: &octocrab::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// GitHub's `message` and each `errors[]` field and message, which octocrab's own error hides.
pub fn github_message(text: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return crate::verdict::truncate(text.trim(), 300);
    };
    let mut message = value["message"].as_str().unwrap_or("no message").to_owned();
    if let Some(errors) = value["errors"].as_array() {
        let details: Vec<String> = errors
            .iter()
            .map(|error| match (error["field"].as_str(), error["message"].as_str()) {
                (Some(field), Some(text)) => format!("{field}: {text}"),
                (None, Some(text)) => text.to_owned(),
                (Some(field), None) => {
                    format!("{field}: {}", error["code"].as_str().unwrap_or("invalid"))
                }
                (None, None) => error.to_string(),
            })
            .collect();
        if !details.is_empty() {
            message.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    message
}

fn is_rate_limited(status: StatusCode, headers: &http::HeaderMap, text: &str) -> bool {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    status == StatusCode::FORBIDDEN
        && (headers.contains_key("retry-after")
            || header_number(headers, "x-ratelimit-remaining") == Some(0)
            || text.contains("rate limit"))
}

/// How long GitHub asks to wait: `retry-after`, else until `x-ratelimit-reset` when none remain.
fn rate_limit_wait(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(seconds) = header_number(headers, "retry-after") {
        return Some(Duration::from_secs(seconds));
    }
    if header_number(headers, "x-ratelimit-remaining") == Some(0) {
        let reset = SystemTime::UNIX_EPOCH
            + Duration::from_secs(header_number(headers, "x-ratelimit-reset")?);
        return Some(
            reset.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_secs(1),
        );
    }
    None
}

fn header_number(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &http::HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|param| param.trim() == "rel=\"next\"")
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_waits_come_from_the_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::LINK,
            "<http://127.0.0.1:9/x?page=2>; rel=\"next\", <http://127.0.0.1:9/x?page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers).as_deref(), Some("http://127.0.0.1:9/x?page=2"));
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(7)));
        let mut headers = http::HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 30;
        headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let wait = rate_limit_wait(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(32), "{wait:?}");
        assert!(is_rate_limited(StatusCode::FORBIDDEN, &headers, ""));
        assert!(!is_rate_limited(
            StatusCode::FORBIDDEN,
            &http::HeaderMap::new(),
            "Resource not accessible by integration"
        ));
    }

    #[test]
    fn validation_errors_show_the_field_and_message() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","field":"description","message":"description is too long (maximum is 140 characters)"}],"documentation_url":"https://docs.github.com/rest/commits/statuses#create-a-commit-status"}"#;
        assert_eq!(
            github_message(body),
            "Validation Failed (description: description is too long (maximum is 140 characters))"
        );
        assert_eq!(github_message("<html>bad gateway</html>"), "<html>bad gateway</html>");
    }
}
