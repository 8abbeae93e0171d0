//! Storage errors, each with the context an operator needs.

use std::path::PathBuf;

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed (e.g. `fdatasync`).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        #[source]
        /// The OS error.
        source: std::io::Error,
    },
    /// A checksum failed (or a frame is malformed) somewhere other than a torn tail.
    #[error("corrupt data in {path} at byte {offset}: {reason}. This is disk corruption, not a torn write; wipe this node's data directory and let it rejoin the cluster")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged frame or field in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// Another process holds the data directory's lock file.
    #[error("{path} is locked: another yakt process is using this data directory (stop it, or give this node its own --data-dir)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The caller broke an invariant (non-contiguous append, read of a purged index, ...).
    #[error("invalid operation: {0}")]
    Invalid(String),
}
