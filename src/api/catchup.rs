//! `GET /broker_mgmt/{timestamp}` and `GET /client_mgmt/{timestamp}`: what changed since a time.
//!
//! Delta mode answers every record at or after the time, found through the segment log's time
//! index (never by scanning the image). Snapshot mode answers the whole image when the newest
//! record is more than the catch-up window newer than the time, or when records at or after the
//! time may have been deleted after a snapshot: once anything was purged, the oldest record still
//! in the log must be stamped strictly before the time (records share milliseconds, so one
//! stamped at the time itself may have had purged neighbours of the same millisecond).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::log_read::{Entries, Follow, Reader, Step};
use super::ApiOptions;
use crate::metadata::record::group_by_name;
use crate::metadata::timestamp::parse_timestamp;
use crate::metadata::LogRecord;
use crate::raft::committed::Since;
use crate::raft::Node;

/// The catch-up routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/broker_mgmt/{timestamp}", get(broker_mgmt))
        .route("/client_mgmt/{timestamp}", get(client_mgmt))
}

async fn broker_mgmt(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
    Path(ts): Path<String>,
) -> Result<Json<Value>, ApiError> {
    catch_up(&node, &ts, opts.catchup_window, true)
        .await
        .map(Json)
}

async fn client_mgmt(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
    Path(ts): Path<String>,
) -> Result<Json<Value>, ApiError> {
    catch_up(&node, &ts, opts.catchup_window, false)
        .await
        .map(Json)
}

/// The image as a catch-up answer in snapshot mode.
fn snapshot_answer(node: &Node, since: u64, include_producers: bool) -> Value {
    let at = node.state.read();
    let mut metadata = at.image.metadata_json();
    if !include_producers {
        if let Some(m) = metadata.as_object_mut() {
            m.remove("ProducerIdsRecord");
        }
    }
    json!({"mode": "snapshot", "since": since, "offset": at.applied.offset, "metadata": metadata})
}

/// Builds a catch-up answer for `since` (any accepted timestamp form).
pub async fn catch_up(
    node: &Arc<Node>,
    since_raw: &str,
    window: Duration,
    include_producers: bool,
) -> Result<Value, ApiError> {
    let since = parse_timestamp(since_raw)?;
    let applied = node.state.applied();
    let newest = node.state.last_timestamp_ms();
    let beyond_window = newest.saturating_sub(since) > window.as_millis() as u64;
    if beyond_window {
        return Ok(snapshot_answer(node, since, include_producers));
    }
    let committed = node.committed();
    let since_in_log = committed
        .records_since(since, applied.offset)
        .map_err(|e| ApiError::unavailable(format!("reading the time index: {e}")))?;
    let start = match since_in_log {
        Since::From(start) => start,
        Since::Lost => return Ok(snapshot_answer(node, since, include_producers)),
    };
    let mut records: Vec<LogRecord> = Vec::new();
    if let Some(start) = start {
        let mut reader = Reader::new(node.clone(), start, Follow::UpTo(applied.offset), Entries);
        while let Some(step) = reader.step().await? {
            let entries = match step {
                Step::Items(entries) => entries,
                // Purged while this answer was read: the records from `since` on are no
                // longer all in the log, the image answers instead.
                Step::Snapshot(_) => return Ok(snapshot_answer(node, since, include_producers)),
            };
            records.extend(
                entries
                    .iter()
                    .filter_map(|e| e.log_record())
                    .filter(|r| r.timestamp >= since),
            );
        }
    }
    Ok(json!({
        "mode": "delta",
        "since": since,
        "offset": applied.offset,
        "metadata": group_by_name(&records, include_producers),
    }))
}
