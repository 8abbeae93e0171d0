//! The one error shape every endpoint answers with: `{"error": kind, "message": text}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::metadata::{ErrorKind, MetadataError};
use crate::raft::proposer::ProposeError;

/// An HTTP error: status, kind and a message for a person.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// API.md's `"error"` string.
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

/// API.md's `"error"` string for a status: the one table from status to kind, for every error
/// whose kind says no more than its status (the refusals of the model, axum's own rejections).
pub fn kind_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::RANGE_NOT_SATISFIABLE => "offset_out_of_range",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

/// The status the API answers a model refusal with: the one mapping from [`ErrorKind`].
pub fn status_for_kind(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict
        | ErrorKind::StaleBrokerEpoch
        | ErrorKind::StalePartitionEpoch
        | ErrorKind::NotLeaderForPartition => StatusCode::CONFLICT,
    }
}

impl ApiError {
    /// Builds an error of any status.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }
    /// An error whose kind is the status's ([`kind_for_status`]).
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, kind_for_status(status), message)
    }
    /// 400: the request is malformed or invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, message)
    }
    /// 404: the named entity or path does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::NOT_FOUND, message)
    }
    /// 503: no leader (or no commit in time); the client should retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<MetadataError> for ApiError {
    fn from(e: MetadataError) -> Self {
        Self::new(status_for_kind(e.kind), e.kind.code(), e.message)
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::Rejected(m) => m.into(),
            ProposeError::NotLeader {
                leader: Some((id, addr)),
            } => Self::unavailable(format!(
                "node {id} at {addr} leads, and the write could not be forwarded to it"
            )),
            ProposeError::NotLeader { leader: None } => {
                Self::unavailable("no leader is known right now")
            }
            ProposeError::Unavailable {
                message,
                maybe_committed,
            } => {
                let mut err = Self::unavailable(message);
                if maybe_committed {
                    err.kind = "unknown_outcome";
                }
                err
            }
        }
    }
}

impl From<crate::raft::MembershipError> for ApiError {
    fn from(e: crate::raft::MembershipError) -> Self {
        use crate::raft::MembershipError as M;
        match e {
            M::Raft(p) => p.into(),
            M::OtherCluster(m) => Self::new(StatusCode::CONFLICT, "cluster_mismatch", m),
            M::Invalid(m) => Self::with_status(StatusCode::CONFLICT, m),
            M::NotFound(m) => Self::not_found(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({"error": self.kind, "message": self.message}));
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refusals_answer_their_status_and_kind() {
        for (kind, status, name) in [
            (ErrorKind::BadRequest, 400, "bad_request"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::Conflict, 409, "conflict"),
            (ErrorKind::StaleBrokerEpoch, 409, "stale_broker_epoch"),
            (ErrorKind::StalePartitionEpoch, 409, "stale_partition_epoch"),
            (
                ErrorKind::NotLeaderForPartition,
                409,
                "not_leader_for_partition",
            ),
        ] {
            let e = ApiError::from(MetadataError {
                kind,
                message: "m".into(),
            });
            assert_eq!(
                (e.status.as_u16(), e.kind, e.message.as_str()),
                (status, name, "m")
            );
        }
        assert_eq!(ApiError::unavailable("x").kind, "unavailable");
        assert_eq!(kind_for_status(StatusCode::IM_A_TEAPOT), "bad_request");
        assert_eq!(kind_for_status(StatusCode::BAD_GATEWAY), "internal");
    }
}
