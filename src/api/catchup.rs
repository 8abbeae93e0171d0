//! `GET /broker_mgmt/{timestamp}` and `GET /client_mgmt/{timestamp}`: what changed since a time.
//!
//! Delta mode answers every record at or after the time, found through the segment log's time
//! index (never by scanning the image). Snapshot mode answers the whole image when the newest
//! record is more than the catch-up window newer than the time, or when the time is older than
//! the oldest record still in the log (the log before it was deleted after a snapshot).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::ApiOptions;
use crate::metadata::record::group_by_name;
use crate::metadata::timestamp::parse_timestamp;
use crate::metadata::LogRecord;
use crate::raft::codec::stored_to_log_record;
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
    catch_up(&node, &ts, opts.catchup_window, true).map(Json)
}

async fn client_mgmt(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
    Path(ts): Path<String>,
) -> Result<Json<Value>, ApiError> {
    catch_up(&node, &ts, opts.catchup_window, false).map(Json)
}

fn first_record_timestamp(node: &Node) -> Result<Option<u64>, ApiError> {
    let Some(mut next) = super::log_read::log_start(node) else {
        return Ok(None);
    };
    let applied = node.state.applied().offset;
    while next <= applied {
        let batch = node
            .log
            .read_range(next, applied + 1, Some(64 * 1024))
            .map_err(|e| ApiError::unavailable(format!("reading the log: {e}")))?;
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        if let Some(e) = batch.iter().find(|e| e.timestamp_ms != 0) {
            return Ok(Some(e.timestamp_ms));
        }
        next = last.index + 1;
    }
    Ok(None)
}

/// Builds a catch-up answer for `since` (any accepted timestamp form).
pub fn catch_up(
    node: &Node,
    since_raw: &str,
    window: Duration,
    include_producers: bool,
) -> Result<Value, ApiError> {
    let since = parse_timestamp(since_raw)?;
    let applied = node.state.applied();
    let newest = node.state.last_timestamp_ms();
    // Below an installed snapshot's floor the log may still hold uncommitted entries: it counts
    // as purged there.
    let floor = node.state.log_floor();
    let log_was_purged = node.log.last_purged().is_some() || floor > 0;
    let too_old_for_log =
        log_was_purged && first_record_timestamp(node)?.is_none_or(|first| since < first);
    let beyond_window = newest.saturating_sub(since) > window.as_millis() as u64;
    if beyond_window || too_old_for_log {
        let at = node.state.read();
        let mut metadata = at.image.metadata_json();
        if !include_producers {
            if let Some(m) = metadata.as_object_mut() {
                m.remove("ProducerIdsRecord");
            }
        }
        return Ok(
            json!({"mode": "snapshot", "since": since, "offset": at.applied.offset, "metadata": metadata}),
        );
    }
    let mut records: Vec<LogRecord> = Vec::new();
    let start = node
        .log
        .find_index_by_timestamp(since)
        .map_err(|e| ApiError::unavailable(format!("reading the time index: {e}")))?;
    if let Some(mut next) = start.map(|s| s.max(floor)) {
        while next <= applied.offset {
            let batch = node
                .log
                .read_range(next, applied.offset + 1, Some(1024 * 1024))
                .map_err(|e| ApiError::unavailable(format!("reading the log: {e}")))?;
            let Some(last) = batch.last() else { break };
            next = last.index + 1;
            for e in &batch {
                match stored_to_log_record(e) {
                    Ok(Some(r)) if r.timestamp >= since => records.push(r),
                    Ok(_) => {}
                    Err(err) => {
                        return Err(ApiError::unavailable(format!(
                            "undecodable entry {}: {err}",
                            e.index
                        )))
                    }
                }
            }
        }
    }
    Ok(json!({
        "mode": "delta",
        "since": since,
        "offset": applied.offset,
        "metadata": group_by_name(&records, include_producers),
    }))
}
