//! Time travel over HTTP: `GET /get_metadata?at_offset=N` and `?at=TIMESTAMP`, the image as it
//! was right after an older offset (see `docs/api.md`, "Time travel"). The rebuild itself is
//! [`crate::raft::history`]; this module parses the request and shapes the answer and its
//! errors: `410 compacted` with `oldest_offset`, `416 offset_out_of_range` with
//! `log_end_offset`.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use crate::metadata::timestamp::parse_timestamp;
use crate::raft::history::online::Point;
use crate::raft::history::HistoryError;
use crate::raft::Node;

/// The time-travel point a `/get_metadata` query names, `None` when it names none (the current
/// image). `at_offset` and `at` together are a `400`.
pub fn point(at_offset: Option<&str>, at: Option<&str>) -> Result<Option<Point>, ApiError> {
    match (at_offset, at) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "at_offset and at name the point in two ways; give one of them",
        )),
        (Some(n), None) => n
            .parse::<u64>()
            .map(|n| Some(Point::Offset(n)))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "at_offset must be a non-negative integer offset, got {n:?}"
                ))
            }),
        (None, Some(t)) => Ok(Some(Point::Time(parse_timestamp(t)?))),
    }
}

/// Answers the image as of `point`, `/get_metadata`'s shape.
pub async fn image_at(node: &Arc<Node>, point: Point) -> Result<Response, ApiError> {
    match node.history().image_at(point).await {
        Ok(answer) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            answer.body.clone(),
        )
            .into_response()),
        Err(e) => error_response(&e),
    }
}

/// `410` and `416` carry one more field than the error shape; every other failure is a `500`
/// in the usual shape (the node's own files could not be read).
fn error_response(e: &HistoryError) -> Result<Response, ApiError> {
    match e {
        HistoryError::Compacted { oldest, .. } => Ok((
            StatusCode::GONE,
            Json(json!({
                "error": "compacted",
                "message": e.to_string(),
                "oldest_offset": oldest,
            })),
        )
            .into_response()),
        HistoryError::OutOfRange { end, .. } => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            Json(json!({
                "error": "offset_out_of_range",
                "message": e.to_string(),
                "log_end_offset": end,
            })),
        )
            .into_response()),
        other => {
            tracing::warn!(error = %other, "time-travel rebuild failed");
            Err(ApiError::with_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                other.to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_is_an_offset_or_a_time_never_both() {
        assert_eq!(point(None, None).expect("none"), None);
        assert_eq!(
            point(Some("42"), None).expect("offset"),
            Some(Point::Offset(42))
        );
        assert_eq!(
            point(None, Some("1764000000")).expect("seconds"),
            Some(Point::Time(1_764_000_000_000))
        );
        for (o, t) in [
            (Some("1"), Some("1764000000")),
            (Some("-1"), None),
            (Some("x"), None),
            (None, Some("yesterday")),
        ] {
            let e = point(o, t).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{o:?} {t:?}");
        }
    }
}
