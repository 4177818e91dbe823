//! ledger: the append-only record of orders, one JSON line per entry in a file on a volume.
//!
//! Entries are numbered in the order they are written and never changed or removed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meshkit::Service;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;

pub const NAME: &str = "ledger";

/// ledger calls no other service.
pub const DEPENDENCIES: &[(&str, &str)] = &[];

/// Where the ledger lives when `LEDGER_FILE` is not set: on the service's volume.
pub const DEFAULT_FILE: &str = "/data/ledger.jsonl";

/// What a caller asks to record.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Serialize)]
pub struct NewEntry {
    pub item_id: String,
    pub quantity: u32,
    pub total_cents: u64,
}

/// A recorded entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub sequence: u64,
    #[serde(flatten)]
    pub order: NewEntry,
}

/// The ledger file; writes are serialized so sequence numbers stay dense.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Store {
    pub fn new(path: impl Into<PathBuf>) -> Store {
        Store { path: path.into(), lock: Mutex::new(()) }
    }

    pub fn from_env() -> Store {
        Store::new(std::env::var("LEDGER_FILE").unwrap_or_else(|_| DEFAULT_FILE.to_owned()))
    }

    /// Reads every entry; a missing file is an empty ledger.
    pub async fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("failed to read {}", self.path.display()));
            }
        };
        text.lines()
            .enumerate()
            .map(|(index, line)| {
                serde_json::from_str(line).with_context(|| {
                    format!("{}:{} is not a ledger entry", self.path.display(), index + 1)
                })
            })
            .collect()
    }

    /// Appends an entry and returns it with its sequence number.
    pub async fn append(&self, order: NewEntry) -> anyhow::Result<Entry> {
        let _guard = self.lock.lock().await;
        let sequence = self.entries().await?.len() as u64 + 1;
        let entry = Entry { sequence, order };
        let mut line = serde_json::to_vec(&entry).context("failed to encode entry")?;
        line.push(b'\n');
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .with_context(|| format!("failed to open {} for appending", self.path.display()))?;
        file.write_all(&line).await.context("failed to append to the ledger")?;
        file.sync_data().await.context("failed to flush the ledger")?;
        Ok(entry)
    }
}

/// The ledger's routes over `store`.
pub fn routes(store: Arc<Store>) -> impl FnOnce(Router<Arc<Service>>) -> Router<Arc<Service>> {
    move |router| {
        router.route("/entries", get(list_entries).post(append_entry)).layer(Extension(store))
    }
}

async fn list_entries(Extension(store): Extension<Arc<Store>>) -> Response {
    match store.entries().await {
        Ok(entries) => Json(entries).into_response(),
        Err(error) => internal_error(&error),
    }
}

async fn append_entry(
    Extension(store): Extension<Arc<Store>>,
    Json(order): Json<NewEntry>,
) -> Response {
    if order.quantity == 0 {
        let body = json!({ "error": "quantity must be at least 1" });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    }
    match store.append(order).await {
        Ok(entry) => (StatusCode::CREATED, Json(entry)).into_response(),
        Err(error) => internal_error(&error),
    }
}

fn internal_error(error: &anyhow::Error) -> Response {
    meshkit::Logger::new(NAME).error(&format!("{error:#}"), &[]);
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "ledger unavailable" })))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(item: &str) -> NewEntry {
        NewEntry { item_id: item.into(), quantity: 1, total_cents: 100 }
    }

    #[tokio::test]
    async fn numbers_entries_in_write_order_and_reads_them_back() {
        let dir = std::env::temp_dir().join(format!("ledger-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::new(dir.join("a.jsonl"));
        assert!(store.entries().await.unwrap().is_empty());
        assert_eq!(store.append(entry("a")).await.unwrap().sequence, 1);
        assert_eq!(store.append(entry("b")).await.unwrap().sequence, 2);
        let items: Vec<String> =
            store.entries().await.unwrap().into_iter().map(|e| e.order.item_id).collect();
        assert_eq!(items, ["a", "b"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_line_is_an_error_naming_the_line() {
        let dir = std::env::temp_dir().join(format!("ledger-corrupt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.jsonl");
        std::fs::write(
            &path,
            "{\"sequence\":1,\"item_id\":\"a\",\"quantity\":1,\"total_cents\":1}\nnot json\n",
        )
        .unwrap();
        let error = Store::new(&path).entries().await.unwrap_err();
        assert!(format!("{error:#}").contains("b.jsonl:2"), "{error:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
