//! Why a request was refused, and why stored bytes could not be read.

/// The class of a refusal; `api::error` maps it to an HTTP status and API.md's error string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule that needs no state (HTTP 400).
    BadRequest,
    /// The request names an entity the image does not hold (HTTP 404).
    NotFound,
    /// The request is well formed but clashes with the current image (HTTP 409).
    Conflict,
    /// A heartbeat or `/alter_partition` names a broker epoch that is not the broker's current
    /// one: the broker registered again since (HTTP 409, `stale_broker_epoch`).
    StaleBrokerEpoch,
    /// `/alter_partition` names a partition epoch that is not current (HTTP 409,
    /// `stale_partition_epoch`): the partition changed since its leader last saw it.
    StalePartitionEpoch,
    /// `/alter_partition` from a broker that does not lead the partition (HTTP 409,
    /// `not_leader_for_partition`).
    NotLeaderForPartition,
}

impl ErrorKind {
    /// API.md's `"error"` string for this kind.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::StaleBrokerEpoch => "stale_broker_epoch",
            ErrorKind::StalePartitionEpoch => "stale_partition_epoch",
            ErrorKind::NotLeaderForPartition => "not_leader_for_partition",
        }
    }
}

/// A refused request: its kind and a message for a person. Serializable because the state
/// machine hands a record's refusal at apply back to the writer waiting on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct MetadataError {
    /// Which status the API answers with.
    pub kind: ErrorKind,
    /// What was refused and why, for a person.
    pub message: String,
}

impl MetadataError {
    /// A 400: the request itself is malformed or breaks a rule that needs no state.
    pub fn bad_request(message: impl Into<String>) -> Self {
        MetadataError {
            kind: ErrorKind::BadRequest,
            message: message.into(),
        }
    }

    /// A 404: the request names an entity the image does not hold.
    pub fn not_found(message: impl Into<String>) -> Self {
        MetadataError {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }

    /// A 409: the request is well formed but clashes with the current image.
    pub fn conflict(message: impl Into<String>) -> Self {
        MetadataError {
            kind: ErrorKind::Conflict,
            message: message.into(),
        }
    }

    /// A refusal of any kind (the liveness kinds have no shorthand of their own).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        MetadataError {
            kind,
            message: message.into(),
        }
    }
}

/// Stored bytes (a Raft entry or a snapshot) that do not decode; never a client's fault, so it is
/// kept apart from [`MetadataError`] and carries the decoder's reason for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {what}: {reason}")]
pub struct DecodeError {
    /// What was being decoded (`"metadata command"`, `"image"`).
    pub what: &'static str,
    /// The decoder's message.
    pub reason: String,
}
