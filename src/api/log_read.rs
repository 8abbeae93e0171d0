//! Reading committed entries by offset for `/stream` and `/fetch`: from the segment files (or,
//! for `/stream`, the shared [`EventCache`] of recent ones) up to what this node has applied,
//! or the image when the offset was purged below the log start.

use bytes::Bytes;
use serde_json::json;

use super::event_cache::{CachedEntry, EventCache};
use super::sse;
use super::ApiError;
use crate::metadata::{LogRecord, RECORD_NAMES};
use crate::raft::codec::{stored_to_command, stored_to_log_record, CodecError};
use crate::raft::Node;
use crate::storage::{StorageError, StoredEntry};

/// Payload bytes read from the log per batch.
const READ_BATCH_BYTES: usize = 1024 * 1024;

/// Why a read of the log failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The segment log could not be read.
    #[error("reading the log: {0}")]
    Log(#[from] StorageError),
    /// An entry did not decode.
    #[error("undecodable entry at offset {offset}: {source}")]
    Undecodable {
        offset: u64,
        #[source]
        source: CodecError,
    },
    /// A record could not be printed as JSON (not expected: records are plain data).
    #[error("unprintable record at offset {offset}: {source}")]
    Unprintable {
        offset: u64,
        #[source]
        source: serde_json::Error,
    },
    /// The log answered other offsets than asked for.
    #[error("the log returned offset {got} where {want} was expected")]
    Misread { want: u64, got: u64 },
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

/// A name filter from `?names=A,B`: a bit per [`RECORD_NAMES`] entry; none set means all.
#[derive(Clone, Copy, Default)]
pub struct NameFilter(u8);

impl NameFilter {
    /// Parses `names=`; an unknown name is a 400.
    pub fn parse(names: Option<&str>) -> Result<Self, ApiError> {
        let Some(names) = names else {
            return Ok(Self::default());
        };
        let mut bits = 0u8;
        for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match RECORD_NAMES.iter().position(|k| *k == n) {
                Some(i) => bits |= 1 << i,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "unknown record name {n:?} in names; known: {}",
                        RECORD_NAMES.join(", ")
                    )))
                }
            }
        }
        Ok(Self(bits))
    }

    /// Whether records named `name` pass.
    pub fn allows(&self, name: &str) -> bool {
        self.0 == 0
            || RECORD_NAMES
                .iter()
                .position(|k| *k == name)
                .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// The image as a reader below the log start receives it.
pub struct ImageSnapshot {
    /// The applied offset the image is at.
    pub offset: u64,
    /// The term of that entry.
    pub epoch: u64,
    /// `/get_metadata`'s `metadata`.
    pub metadata: serde_json::Value,
}

impl ImageSnapshot {
    fn now(node: &Node) -> Self {
        let at = node.state.read();
        ImageSnapshot {
            offset: at.applied.offset,
            epoch: at.applied.term,
            metadata: at.image.metadata_json(),
        }
    }

    /// `{"offset", "epoch", "metadata"}`, as the stream and fetch send it.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"offset": self.offset, "epoch": self.epoch, "metadata": self.metadata})
    }

    /// The `event: snapshot` of the stream.
    pub fn event(&self) -> Bytes {
        sse::event(Some(self.offset), "snapshot", &self.to_json().to_string())
    }
}

/// Whether `next` lies below the log start (purged after a snapshot), or below the floor of an
/// installed snapshot whose log below it is not yet purged ([`MetaState::log_floor`]), yet is
/// applied: the image answers it.
///
/// [`MetaState::log_floor`]: crate::raft::state_machine::MetaState::log_floor
fn purged(node: &Node, next: u64, applied: u64) -> bool {
    let below_start = match node.log.first_index() {
        Some(first) => next < first,
        None => node.log.last_purged().is_some_and(|p| next <= p.index),
    };
    (below_start || next < node.state.log_floor()) && next <= applied
}

/// The first offset readers can take from the log: the log start, or the floor of an installed
/// snapshot when that is higher.
pub fn log_start(node: &Node) -> Option<u64> {
    node.log
        .first_index()
        .map(|first| first.max(node.state.log_floor()))
}

/// Reads committed entries from `next` up to the applied offset, at most `READ_BATCH_BYTES` of
/// payload. `None` when a purge ran since [`purged`] said no: `read_range` then starts at the
/// new log start, and reading on would skip records silently.
fn read_log(node: &Node, next: u64, applied: u64) -> Result<Option<Vec<StoredEntry>>, ReadError> {
    let entries = node
        .log
        .read_range(next, applied + 1, Some(READ_BATCH_BYTES))?;
    match entries.first() {
        Some(e) if e.index > next && node.log.last_purged().is_some_and(|p| next <= p.index) => {
            Ok(None)
        }
        Some(e) if e.index != next => Err(ReadError::Misread {
            want: next,
            got: e.index,
        }),
        _ => Ok(Some(entries)),
    }
}

/// What one read for `/fetch` found.
pub enum Chunk {
    /// The offset is below the log start: the image; continue after its offset.
    Snapshot(ImageSnapshot),
    /// Records (already filtered) and the next offset to read.
    Records {
        /// The records that passed the filter.
        records: Vec<LogRecord>,
        /// The offset after the last entry looked at.
        next: u64,
    },
}

/// Reads committed records from `next` for `/fetch`, at most `max_records`.
pub fn read_chunk(
    node: &Node,
    next: u64,
    max_records: usize,
    filter: &NameFilter,
) -> Result<Chunk, ReadError> {
    let applied = node.state.applied().offset;
    if purged(node, next, applied) {
        return Ok(Chunk::Snapshot(ImageSnapshot::now(node)));
    }
    if next > applied {
        return Ok(Chunk::Records {
            records: Vec::new(),
            next,
        });
    }
    let Some(entries) = read_log(node, next, applied)? else {
        return Ok(Chunk::Snapshot(ImageSnapshot::now(node)));
    };
    let mut records = Vec::new();
    let mut cursor = next;
    for entry in &entries {
        if records.len() >= max_records {
            break;
        }
        cursor = entry.index + 1;
        match stored_to_log_record(entry) {
            Ok(Some(r)) if filter.allows(&r.name) => records.push(r),
            Ok(_) => {}
            Err(source) => {
                return Err(ReadError::Undecodable {
                    offset: entry.index,
                    source,
                })
            }
        }
    }
    Ok(Chunk::Records {
        records,
        next: cursor,
    })
}

/// What one read for `/stream` found.
pub enum Step {
    /// The offset is below the log start: the image; continue after its offset.
    Snapshot(ImageSnapshot),
    /// The entries from the offset asked for on were appended to the caller's buffer (nothing
    /// when `next` is that same offset: nothing new is applied); read on from `next`.
    Entries {
        /// The offset after the last entry appended.
        next: u64,
    },
}

/// Most entries taken from the cache at once (bounds the time its lock is held).
const CACHE_BATCH: usize = 1024;

/// Reads committed entries from `next` for `/stream` into `out` as encoded events: from the
/// cache when it holds `next`, else from the log (and offers what it read to the cache).
pub fn read_events(
    node: &Node,
    cache: &EventCache,
    next: u64,
    out: &mut Vec<CachedEntry>,
) -> Result<Step, ReadError> {
    out.clear();
    let applied = node.state.applied().offset;
    if purged(node, next, applied) {
        return Ok(Step::Snapshot(ImageSnapshot::now(node)));
    }
    if next > applied {
        return Ok(Step::Entries { next });
    }
    let hit = cache.get(next, applied, CACHE_BATCH, out);
    if hit > next {
        return Ok(Step::Entries { next: hit });
    }
    let Some(entries) = read_log(node, next, applied)? else {
        return Ok(Step::Snapshot(ImageSnapshot::now(node)));
    };
    out.reserve(entries.len());
    for entry in &entries {
        out.push(encode(entry)?);
    }
    cache.insert(next, out, applied);
    Ok(Step::Entries {
        next: next + entries.len() as u64,
    })
}

/// One stored entry as the stream sends it.
fn encode(entry: &StoredEntry) -> Result<CachedEntry, ReadError> {
    let offset = entry.index;
    match stored_to_command(entry) {
        Ok(Some(cmd)) => Ok(CachedEntry::Record {
            name: cmd.record.name(),
            event: sse::record_event(offset, entry.term, &cmd)
                .map_err(|source| ReadError::Unprintable { offset, source })?,
        }),
        Ok(None) => Ok(CachedEntry::Skip),
        Err(source) => Err(ReadError::Undecodable { offset, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filter() {
        let all = NameFilter::parse(None).unwrap();
        assert!(all.allows("TopicRecord") && all.allows("anything"));
        let some = NameFilter::parse(Some("TopicRecord, PartitionRecord,")).unwrap();
        assert!(some.allows("TopicRecord") && some.allows("PartitionRecord"));
        assert!(!some.allows("RegisterBrokerRecord") && !some.allows("nope"));
        assert!(NameFilter::parse(Some("TopicRecrod")).is_err());
        assert!(NameFilter::parse(Some(""))
            .unwrap()
            .allows("ProducerIdsRecord"));
    }
}
