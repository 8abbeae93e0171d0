//! The one error shape every endpoint answers with: `{"error": kind, "message": text}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::metadata::{ErrorKind, MetadataError};
use crate::raft::proposer::ProposeError;

/// An HTTP error: status, kind and a message for a person.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
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
    /// 400: the request is malformed or invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 404: the named entity or path does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 503: no leader (or no commit in time); the client should retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<MetadataError> for ApiError {
    fn from(e: MetadataError) -> Self {
        match e.kind {
            ErrorKind::BadRequest => Self::bad_request(e.message),
            ErrorKind::NotFound => Self::not_found(e.message),
            ErrorKind::Conflict => Self::new(StatusCode::CONFLICT, "conflict", e.message),
        }
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
            M::Invalid(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
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
