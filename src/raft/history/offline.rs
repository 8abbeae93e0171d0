//! Time travel on a data directory, offline (`yakt-dump --image`): the same [`rebuild_at`]
//! over the directory's files, read without taking its lock and without changing anything, so
//! it also works on the directory of a running node.
//!
//! A running node appends to its newest segment while this reads it: a frame cut short at the
//! end of the bytes read is simply not there yet. Nothing above the committed watermark
//! (`committed`, written behind the commit index) is read, so no uncommitted entry is folded.
//!
//! [`rebuild_at`]: super::rebuild_at

use std::cell::RefCell;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{HistoryError, HistorySource, CHUNK_BYTES};
use crate::raft::log_agreement::log_agrees;
use crate::storage::committed::{decode_committed, COMMITTED_FILE_NAME};
use crate::storage::frame::ScannedFrame;
use crate::storage::log::{decode_last_purged, LAST_PURGED_FILE_NAME, LAST_PURGED_MAGIC};
use crate::storage::snapshot::list_snapshot_files;
use crate::storage::{
    decode_meta, parse_segment_file_name, scan_segment, EntryId, SnapshotInfo, StorageError,
    StoredEntry,
};

/// One segment file read into memory and scanned.
struct LoadedSegment {
    bytes: Vec<u8>,
    frames: Vec<ScannedFrame>,
}

/// A data directory (`log/`, `snapshots/`, `committed`) as a [`HistorySource`].
pub struct DataDirHistory {
    dir: PathBuf,
    /// The segment last read: a rebuild reads forward, so most chunks come from it.
    segment: RefCell<Option<LoadedSegment>>,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError {
    let path = path.to_path_buf();
    move |source| HistoryError::Storage(StorageError::Io { op, path, source })
}

fn corrupt(path: &Path, reason: String) -> HistoryError {
    HistoryError::Storage(StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    })
}

/// A small file's bytes, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, HistoryError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

impl DataDirHistory {
    /// Reads the data directory `dir` (the one `yakt node --data-dir` names).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            segment: RefCell::new(None),
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// The segment files by base index, lowest first.
    fn segment_files(&self) -> Result<Vec<(u64, PathBuf)>, HistoryError> {
        let dir = self.log_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io("read dir", &dir))? {
            let e = e.map_err(io("read dir", &dir))?;
            if let Some(base) = parse_segment_file_name(&e.file_name().to_string_lossy()) {
                out.push((base, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Loads the segment holding `index` (the one with the highest base at or below it).
    fn load_segment_for(&self, index: u64) -> Result<LoadedSegment, HistoryError> {
        let files = self.segment_files()?;
        let Some((_, path)) = files.iter().rev().find(|(base, _)| *base <= index) else {
            return Err(HistoryError::Gap {
                want: index,
                got: None,
            });
        };
        let bytes = fs::read(path).map_err(io("read", path))?;
        let scan = scan_segment(&bytes);
        if let Some(bad) = scan.corrupt.first() {
            return Err(corrupt(
                path,
                format!("byte {}: {} (run yakt-dump --verify)", bad.pos, bad.reason),
            ));
        }
        Ok(LoadedSegment {
            bytes,
            frames: scan.frames,
        })
    }

    /// The last purged offset the log's own file records.
    fn purged_base(&self) -> Result<Option<u64>, HistoryError> {
        let path = self.log_dir().join(LAST_PURGED_FILE_NAME);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let body = decode_meta(LAST_PURGED_MAGIC, &bytes)
            .map_err(|(at, why)| corrupt(&path, format!("byte {at}: {why}")))?;
        Ok(decode_last_purged(body).map(|id| id.index))
    }

    /// The newest snapshot's offset when the log below it cannot be trusted: a node that
    /// crashed between writing a leader's snapshot and purging below it (the node purges there
    /// when it next opens). The log is trusted when it agrees ([`log_agrees`]) with the
    /// snapshot, or with the committed watermark, which bounds every read here anyway.
    fn untrusted_below(&self) -> Result<Option<u64>, HistoryError> {
        let Some(newest) = self.snapshots()?.into_iter().next() else {
            return Ok(None);
        };
        let snapshot = EntryId {
            index: newest.offset,
            term: newest.term,
        };
        if log_agrees(self.term_at(snapshot.index)?, snapshot) {
            return Ok(None);
        }
        if let Some(watermark) = self.committed_id()? {
            if log_agrees(self.term_at(watermark.index)?, watermark) {
                return Ok(None);
            }
        }
        Ok(Some(snapshot.index))
    }

    /// The term of the log's entry at `index`, if the log holds it.
    fn term_at(&self, index: u64) -> Result<Option<u64>, HistoryError> {
        let holds_it = self.segment_files()?.iter().any(|(base, _)| *base <= index);
        if !holds_it {
            return Ok(None);
        }
        Ok(self
            .load_segment_for(index)?
            .frames
            .iter()
            .find(|f| f.index == index)
            .map(|f| f.term))
    }

    /// The committed watermark (0 without the file): the highest offset whose log entry is
    /// known committed.
    fn committed(&self) -> Result<u64, HistoryError> {
        Ok(self.committed_id()?.map_or(0, |id| id.index))
    }

    /// The committed watermark with its term, `None` without the file.
    fn committed_id(&self) -> Result<Option<EntryId>, HistoryError> {
        let path = self.dir.join(COMMITTED_FILE_NAME);
        match read_optional(&path)? {
            Some(b) => decode_committed(&b)
                .map_err(|(at, why)| corrupt(&path, format!("byte {at}: {why}"))),
            None => Ok(None),
        }
    }
}

impl HistorySource for DataDirHistory {
    fn end(&self) -> Result<u64, HistoryError> {
        // A snapshot holds only committed entries, even when the watermark lags behind it.
        let newest_snapshot = self.snapshots()?.first().map_or(0, |s| s.offset);
        Ok(self.committed()?.max(newest_snapshot))
    }

    fn log_base(&self) -> Result<Option<u64>, HistoryError> {
        Ok(self.purged_base()?.max(self.untrusted_below()?))
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, HistoryError> {
        let dir = self.dir.join("snapshots");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        Ok(list_snapshot_files(&dir)?)
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, HistoryError> {
        // Never past the committed watermark, even below a newer snapshot: a snapshot installed
        // from the leader is written before the log below it is purged, so until then the log
        // there may hold entries that were never committed (a deposed leader's tail). Online
        // the same window is closed by `MetaState::log_floor`; offline `log_base` treats the
        // log below such a snapshot as purged once the watermark has passed it.
        let committed = self.committed()?;
        if from > committed {
            return Err(HistoryError::OutOfRange {
                asked: from,
                end: committed,
            });
        }
        let to = to.min(committed);
        let mut cached = self.segment.borrow_mut();
        let holds = |s: &LoadedSegment| {
            s.frames.first().is_some_and(|f| f.index <= from)
                && s.frames.last().is_some_and(|f| f.index >= from)
        };
        if !cached.as_ref().is_some_and(holds) {
            *cached = Some(self.load_segment_for(from)?);
        }
        let Some(seg) = cached.as_ref() else {
            return Ok(Vec::new());
        };
        let start = seg.frames.partition_point(|f| f.index < from);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for f in seg.frames[start..].iter().take_while(|f| f.index <= to) {
            let len = f.payload_len as usize;
            if !out.is_empty() && bytes + len > CHUNK_BYTES {
                break;
            }
            bytes += len;
            out.push(StoredEntry {
                index: f.index,
                term: f.term,
                timestamp_ms: f.timestamp_ms,
                payload: seg.bytes.get(f.payload_range()).unwrap_or(&[]).to_vec(),
            });
        }
        Ok(out)
    }
}
