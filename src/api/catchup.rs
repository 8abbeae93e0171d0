//! `GET /broker_mgmt/{timestamp}` and `GET /client_mgmt/{timestamp}`: what changed since a time.
//!
//! Delta mode answers every record at or after the time, found through the segment log's time
//! index (never by scanning the image). Snapshot mode answers the whole image when the newest
//! record is more than the catch-up window newer than the time, or when records at or after the
//! time may have been deleted after a snapshot: once anything was purged, the oldest record still
//! in the log must be stamped strictly before the time (records share milliseconds, so one
//! stamped at the time itself may have had purged neighbours of the same millisecond). A delta of
//! more than `--catchup-max-records` records is answered in snapshot mode too, so an answer is
//! never an unbounded list of records; the snapshot answer is written entity by entity from a
//! copy of the image, never as one JSON tree. Every answer carries `until`, the timestamp of the
//! newest record it includes: the `{timestamp}` of the next call.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::log_read::{Entries, Follow, Reader, Step};
use super::stream::walk::{walk, Visitor, WalkError};
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
) -> Result<Response, ApiError> {
    catch_up(&node, &ts, &Limits::from(&opts), true).await
}

async fn client_mgmt(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
    Path(ts): Path<String>,
) -> Result<Response, ApiError> {
    catch_up(&node, &ts, &Limits::from(&opts), false).await
}

/// When a catch-up answer switches to snapshot mode.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The newest record more than this newer than the time asked for.
    pub window: Duration,
    /// More records than this at or after the time asked for.
    pub max_records: u64,
}

impl From<&ApiOptions> for Limits {
    fn from(opts: &ApiOptions) -> Self {
        Self {
            window: opts.catchup_window,
            max_records: opts.catchup_max_records,
        }
    }
}

/// Why a snapshot answer could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the catch-up image: {0}")]
struct WriteError(#[from] WalkError);

/// Writes the `metadata` object of a snapshot answer, entity by entity, leaving out the
/// producers when not asked for.
struct MetadataWriter<'a> {
    out: &'a mut Vec<u8>,
    include_producers: bool,
    /// Whether the current list is written (not a left-out one).
    writing: bool,
    lists: usize,
    in_list: usize,
}

impl Visitor for MetadataWriter<'_> {
    fn name(&mut self, name: &str) -> Result<(), WalkError> {
        if self.writing {
            self.out.push(b']');
        }
        self.writing = self.include_producers || name != "ProducerIdsRecord";
        if !self.writing {
            return Ok(());
        }
        if self.lists > 0 {
            self.out.push(b',');
        }
        serde_json::to_writer(&mut *self.out, name).map_err(|e| WalkError::Shape(e.to_string()))?;
        self.out.extend_from_slice(b":[");
        self.lists += 1;
        self.in_list = 0;
        Ok(())
    }

    fn entity(&mut self, json: &[u8]) -> Result<(), WalkError> {
        if !self.writing {
            return Ok(());
        }
        if self.in_list > 0 {
            self.out.push(b',');
        }
        self.out.extend_from_slice(json);
        self.in_list += 1;
        Ok(())
    }
}

/// The image as a catch-up answer in snapshot mode, written straight from a copy of the image
/// (no JSON tree of it, no lock held while writing). `until` is the newest record timestamp
/// applied, read before the copy is taken: never newer than the image.
fn snapshot_answer(node: &Node, since: u64, include_producers: bool) -> Result<Response, ApiError> {
    let until = node.state.last_timestamp_ms();
    let snap = node.committed().image();
    let mut out = Vec::with_capacity(4096);
    let head = json!({"mode": "snapshot", "since": since, "offset": snap.offset, "until": until});
    // `{"mode":..,"offset":..,"since":..,"until":..` then `,"metadata":{..}}`.
    let head = head.to_string();
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"metadata\":{");
    let mut writer = MetadataWriter {
        out: &mut out,
        include_producers,
        writing: false,
        lists: 0,
        in_list: 0,
    };
    walk(&snap.image, &mut writer).map_err(|e| ApiError::unavailable(WriteError(e).to_string()))?;
    if writer.writing {
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// Builds a catch-up answer for `since` (any accepted timestamp form).
pub async fn catch_up(
    node: &Arc<Node>,
    since_raw: &str,
    limits: &Limits,
    include_producers: bool,
) -> Result<Response, ApiError> {
    let since = parse_timestamp(since_raw)?;
    let applied = node.state.applied();
    let newest = node.state.last_timestamp_ms();
    let beyond_window = newest.saturating_sub(since) > limits.window.as_millis() as u64;
    if beyond_window {
        return snapshot_answer(node, since, include_producers);
    }
    let committed = node.committed();
    let since_in_log = committed
        .records_since(since, applied.offset)
        .map_err(|e| ApiError::unavailable(format!("reading the time index: {e}")))?;
    let start = match since_in_log {
        Since::From(start) => start,
        Since::Lost => return snapshot_answer(node, since, include_producers),
    };
    let mut records: Vec<LogRecord> = Vec::new();
    if let Some(start) = start {
        let mut reader = Reader::new(node.clone(), start, Follow::UpTo(applied.offset), Entries);
        while let Some(step) = reader.step().await? {
            let entries = match step {
                Step::Items(entries) => entries,
                // Purged while this answer was read: the records from `since` on are no
                // longer all in the log, the image answers instead.
                Step::Snapshot(_) => return snapshot_answer(node, since, include_producers),
            };
            records.extend(
                entries
                    .iter()
                    .filter_map(|e| e.log_record())
                    .filter(|r| r.timestamp >= since),
            );
            // Too many for one answer: the image is smaller than the delta (and bounded).
            if records.len() as u64 > limits.max_records {
                return snapshot_answer(node, since, include_producers);
            }
        }
    }
    let until = records.iter().map(|r| r.timestamp).max().unwrap_or(since);
    Ok(Json(json!({
        "mode": "delta",
        "since": since,
        "until": until,
        "offset": applied.offset,
        "metadata": group_by_name(&records, include_producers),
    }))
    .into_response())
}
