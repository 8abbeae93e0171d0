//! Why a request was refused. STUB.

/// The class of a refusal; the API maps it to an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400
    BadRequest,
    /// 404
    NotFound,
    /// 409
    Conflict,
}

/// A refused request: its kind and a message for a person.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct MetadataError {
    pub kind: ErrorKind,
    pub message: String,
}
