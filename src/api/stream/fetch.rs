//! `GET /fetch`: the log by offset as JSON pages, long-polling when there is nothing new, for
//! clients without SSE. The same read loop as `/stream` ([`super::super::log_read`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

use super::{parse_offset, raft_position};
use crate::api::error::ApiError;
use crate::api::log_read::{log_end, out_of_range, Entries, Follow, NameFilter, Reader, Step};
use crate::metadata::LogRecord;
use crate::raft::Node;

/// `/fetch`'s query; unknown parameters are refused, `access_token` is read by the auth layer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchQuery {
    offset: Option<String>,
    max_records: Option<String>,
    wait_ms: Option<String>,
    names: Option<String>,
    #[allow(dead_code)]
    access_token: Option<String>,
}

fn parse_num(raw: Option<&str>, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(v) => Ok(v.min(max)),
            Err(_) => Err(ApiError::bad_request(format!(
                "{name} must be a non-negative integer, got {s:?}"
            ))),
        },
    }
}

/// Most records one fetch returns.
pub const FETCH_MAX_RECORDS: u64 = 10_000;
/// Longest a fetch waits for new records.
pub const FETCH_MAX_WAIT_MS: u64 = 30_000;

pub(super) async fn fetch(
    State(node): State<Arc<Node>>,
    Query(q): Query<FetchQuery>,
) -> Result<Response, ApiError> {
    let filter = NameFilter::parse(q.names.as_deref())?;
    let offset = parse_offset(q.offset.as_deref(), &node)?;
    let end = log_end(&node);
    if offset > end {
        return Ok(out_of_range(offset, end));
    }
    let max_records = parse_num(
        q.max_records.as_deref(),
        "max_records",
        1000,
        FETCH_MAX_RECORDS,
    )?
    .max(1) as usize;
    let wait_ms = parse_num(q.wait_ms.as_deref(), "wait_ms", 0, FETCH_MAX_WAIT_MS)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let page = |records: Vec<LogRecord>, next: u64, snapshot: Option<serde_json::Value>| {
        let (commit, leader, _) = raft_position(&node);
        let mut body = json!({
            "records": records,
            "next_offset": next,
            "high_watermark": node.state.applied().offset + 1,
            "log_start_offset": node.committed().read_start().unwrap_or(next),
            "commit_offset": commit,
            "leader_id": leader,
        });
        if let Some(s) = snapshot {
            body["snapshot"] = s;
        }
        Json(body).into_response()
    };
    let mut reader = Reader::new(node.clone(), offset, Follow::Until(deadline), Entries);
    loop {
        let from = reader.next_offset();
        match reader.step().await? {
            None => return Ok(page(Vec::new(), reader.next_offset(), None)),
            Some(Step::Snapshot(snap)) => {
                return Ok(page(Vec::new(), snap.offset + 1, Some(snap.to_json())));
            }
            Some(Step::Items(entries)) => {
                let mut records = Vec::new();
                let mut cursor = from;
                for entry in &entries {
                    if records.len() >= max_records {
                        break;
                    }
                    cursor = entry.offset + 1;
                    if let Some(r) = entry.log_record().filter(|r| filter.allows(&r.name)) {
                        records.push(r);
                    }
                }
                // Only Raft's own or filtered-out entries: read on while the wait lasts.
                if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                    return Ok(page(records, cursor, None));
                }
            }
        }
    }
}
