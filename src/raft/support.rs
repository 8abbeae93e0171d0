//! Two small helpers the openraft glue modules share: the wall clock in milliseconds (record
//! timestamps, snapshot times), and a storage error as the `io::Error` openraft's storage traits
//! return.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::storage::StorageError;

/// Milliseconds since the Unix epoch; 0 for a clock set before it.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A storage error as openraft's storage traits want it, its context kept as the source.
pub(crate) fn io_err(e: StorageError) -> std::io::Error {
    std::io::Error::other(e)
}
