//! Time travel: the image as of any offset this node can still rebuild.
//!
//! The image at offset `N` is the fold of every committed record up to `N`. A rebuild starts from
//! the newest kept snapshot at or below `N` (or from the empty image when the log still holds
//! everything from its first entry) and folds the committed entries after it, up to `N`, read in
//! chunks. [`rebuild_at`] is the one rebuild: the online endpoint (through [`online::History`])
//! and the offline `yakt-dump --image` (through [`offline::DataDirHistory`]) both call it over
//! a [`HistorySource`], so the two cannot disagree.
//!
//! What can be rebuilt: every offset from the oldest kept snapshot whose offset is at or above the
//! log's purge point (the entries after it are all in the log) up to the source's end (the applied
//! offset online, the committed watermark offline). Below it a rebuild is
//! [`HistoryError::Compacted`], above it [`HistoryError::OutOfRange`].

pub mod offline;
pub mod online;

use std::path::PathBuf;

use super::codec::{stored_to_command, CodecError};
use crate::metadata::{Image, MetadataAnswer};
use crate::storage::{SnapshotInfo, StorageError, StoredEntry};

/// Payload bytes of one chunk of entries read during a rebuild.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Why the image at an offset could not be given.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The offset lies below what can be rebuilt (older than the oldest kept snapshot).
    #[error("offset {asked} is compacted: the oldest offset this node can rebuild is {oldest}")]
    Compacted {
        /// The offset asked for.
        asked: u64,
        /// The oldest offset that can be rebuilt.
        oldest: u64,
    },
    /// The offset lies past the end (the applied offset online, the committed one offline).
    #[error("offset {asked} is past the end: the last offset that can be rebuilt is {end}")]
    OutOfRange {
        /// The offset asked for.
        asked: u64,
        /// The highest offset that can be rebuilt.
        end: u64,
    },
    /// The segment log or a snapshot file could not be read.
    #[error("reading the history: {0}")]
    Storage(#[from] StorageError),
    /// A snapshot file read back but its image did not decode.
    #[error("snapshot {path}: the image does not decode: {reason}")]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Why it did not decode.
        reason: String,
    },
    /// An entry did not decode.
    #[error("undecodable entry at offset {offset}: {source}")]
    Undecodable {
        /// The entry's offset.
        offset: u64,
        /// Why it did not decode.
        #[source]
        source: CodecError,
    },
    /// The log did not hold the entry a rebuild needed next.
    #[error("the log answered offset {got:?} where {want} was expected")]
    Gap {
        /// The offset needed.
        want: u64,
        /// What the log gave instead (`None`: nothing).
        got: Option<u64>,
    },
    /// The rebuild task itself failed (panicked or was cancelled).
    #[error("the rebuild task failed: {0}")]
    Task(String),
}

impl HistoryError {
    /// Whether this error may come from a purge or snapshot retention racing the rebuild
    /// (a file deleted under it), so that starting over from the current listing can succeed.
    fn is_race(&self) -> bool {
        match self {
            HistoryError::Storage(StorageError::Purged { .. }) => true,
            HistoryError::Storage(StorageError::Io { source, .. }) => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            HistoryError::Gap { .. } => true,
            _ => false,
        }
    }
}

/// Where a rebuild reads from: snapshot files and committed entries, online or offline.
pub trait HistorySource {
    /// The highest offset a rebuild may reach: never an entry that is not known committed
    /// (and, online, applied).
    fn end(&self) -> Result<u64, HistoryError>;
    /// The highest offset below which the log cannot be used, `None` when it holds every entry
    /// from the first: the last purged index (online also just below an installed snapshot's
    /// floor, where the log may still hold entries that were never committed).
    fn log_base(&self) -> Result<Option<u64>, HistoryError>;
    /// The snapshot files kept, highest offset first (unverified).
    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, HistoryError>;
    /// Reads and decodes one snapshot file's image.
    fn load_snapshot(&self, info: &SnapshotInfo) -> Result<Image, HistoryError> {
        let file = crate::storage::SnapshotStore::read_file(&info.path)?;
        Image::decode(&file.payload).map_err(|e| HistoryError::Snapshot {
            path: info.path.clone(),
            reason: e.to_string(),
        })
    }
    /// Consecutive entries from `from` up to `to` (inclusive), at least one, about
    /// [`CHUNK_BYTES`] of payload at most.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, HistoryError>;
}

/// The oldest offset `source` can rebuild: 0 when its log holds everything, else the oldest
/// kept snapshot at or above the log's base (`None` when there is none).
pub fn oldest_offset(source: &dyn HistorySource) -> Result<Option<u64>, HistoryError> {
    match source.log_base()? {
        None => Ok(Some(0)),
        Some(base) => Ok(source
            .snapshots()?
            .iter()
            .map(|s| s.offset)
            .filter(|&o| o >= base)
            .min()),
    }
}

/// The image as of offset `n`: the fold of every committed record at or below `n`. Its
/// `last_offset`/`last_epoch` are the last record at or below `n` and its term.
///
/// Runs on the calling thread (callers on an async runtime use `spawn_blocking`); holds one
/// image and one chunk of entries at a time. A purge or snapshot retention that deletes a file
/// under it makes it start over once from the current files, then answer what they allow.
pub fn rebuild_at(source: &dyn HistorySource, n: u64) -> Result<Image, HistoryError> {
    let mut tries = 0;
    loop {
        match rebuild_once(source, n) {
            Err(e) if e.is_race() && tries < 2 => tries += 1,
            other => return other,
        }
    }
}

fn rebuild_once(source: &dyn HistorySource, n: u64) -> Result<Image, HistoryError> {
    let end = source.end()?;
    if n > end {
        return Err(HistoryError::OutOfRange { asked: n, end });
    }
    let base = source.log_base()?;
    let snapshots = source.snapshots()?;
    let compacted = || HistoryError::Compacted {
        asked: n,
        oldest: snapshots
            .iter()
            .map(|s| s.offset)
            .filter(|&o| base.is_none_or(|b| o >= b))
            .min()
            .unwrap_or(end),
    };
    // The newest snapshot at or below `n` from which the log reaches `n`.
    let start = snapshots
        .iter()
        .find(|s| s.offset <= n && base.is_none_or(|b| s.offset >= b));
    let mut image = match start {
        Some(info) => source.load_snapshot(info)?,
        None if base.is_none() => Image::new(),
        None => return Err(compacted()),
    };
    let mut next = start.map_or(1, |s| s.offset + 1);
    while next <= n {
        let chunk = source.entries(next, n)?;
        if chunk.first().map(|e| e.index) != Some(next) {
            return Err(HistoryError::Gap {
                want: next,
                got: chunk.first().map(|e| e.index),
            });
        }
        for stored in &chunk {
            if stored.index != next {
                return Err(HistoryError::Gap {
                    want: next,
                    got: Some(stored.index),
                });
            }
            let command =
                stored_to_command(stored).map_err(|source| HistoryError::Undecodable {
                    offset: stored.index,
                    source,
                })?;
            if let Some(cmd) = command {
                // A refused record advances the image's position and changes nothing else,
                // exactly as the state machine folds it.
                let _ = image.apply_entry(stored.index, stored.term, &cmd);
            }
            next += 1;
        }
    }
    Ok(image)
}

/// `/get_metadata`'s JSON for a rebuilt image: `{"epoch", "metadata", "offset"}`, where
/// `offset` is the last record at or below the offset asked for and `epoch` its term.
pub fn answer_json(image: &Image) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&MetadataAnswer {
        image,
        offset: image.last_offset,
        epoch: image.last_epoch,
    })
}

#[cfg(test)]
mod tests;
