//! Reading the log: entries by index (a purged range is reported, never skipped), the
//! boundaries, the time index, and a summary of the segment files.

use std::path::Path;

use super::{corrupt, EntryId, SegmentInfo, SegmentLog, StoredEntry};
use crate::storage::StorageError;

impl SegmentLog {
    /// Entries in `[start, end)` that exist, at least one if any; `max_bytes` bounds payload bytes.
    /// A range that starts at or below the last purged index is [`StorageError::Purged`]: the
    /// log never answers a later start than asked for because a purge ran.
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        max_bytes: Option<usize>,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        let st = self.inner.read_state();
        if let Some(p) = st.last_purged.filter(|p| start < end && start <= p.index) {
            return Err(StorageError::Purged {
                start,
                last_purged: p.index,
            });
        }
        let (Some(first), Some(last)) = (st.first_index(), st.last_index()) else {
            return Ok(Vec::new());
        };
        let from = start.max(first);
        let to = end.min(last.saturating_add(1));
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut idx = from;
        while idx < to {
            let Some(seg) = st.segment_for(idx) else {
                break;
            };
            let f = seg.frame_at(seg.positions[(idx - seg.base) as usize])?;
            if f.index != idx {
                return Err(corrupt(
                    &seg.path,
                    seg.positions[(idx - seg.base) as usize],
                    format!("frame has index {} but {idx} was expected", f.index),
                ));
            }
            if let Some(max) = max_bytes {
                if !out.is_empty() && bytes + f.payload.len() > max {
                    break;
                }
            }
            bytes += f.payload.len();
            out.push(StoredEntry {
                index: f.index,
                term: f.term,
                timestamp_ms: f.timestamp_ms,
                payload: f.payload.to_vec(),
            });
            idx += 1;
        }
        Ok(out)
    }

    /// The first index present (> last_purged), None if the log holds no entry.
    pub fn first_index(&self) -> Option<u64> {
        self.inner.read_state().first_index()
    }

    /// The last entry present, None if the log holds no entry (combine with `last_purged`).
    pub fn last_entry_id(&self) -> Option<EntryId> {
        let st = self.inner.read_state();
        st.first_index()?;
        let seg = st.segments.iter().rev().find(|s| s.len() > 0)?;
        let pos = *seg.positions.last()?;
        seg.frame_at(pos).ok().map(|f| EntryId {
            index: f.index,
            term: f.term,
        })
    }

    /// The persisted last purged id (read from the meta file at open, never derived).
    pub fn last_purged(&self) -> Option<EntryId> {
        self.inner.read_state().last_purged
    }

    /// Index of the first entry with `timestamp_ms >= ts_ms`, ignoring untimestamped (0) entries.
    pub fn find_index_by_timestamp(&self, ts_ms: u64) -> Result<Option<u64>, StorageError> {
        let st = self.inner.read_state();
        let Some(first) = st.first_index() else {
            return Ok(None);
        };
        for seg in &st.segments {
            if seg.time.last_ts.is_none_or(|l| l < ts_ms) {
                continue;
            }
            let start = seg
                .time
                .scan_start(ts_ms)
                .unwrap_or(seg.base)
                .max(first)
                .max(seg.base);
            for idx in start..seg.base + seg.len() {
                let pos = seg.positions[(idx - seg.base) as usize];
                let f = seg.frame_at(pos)?;
                if f.timestamp_ms != 0 && f.timestamp_ms >= ts_ms {
                    return Ok(Some(idx));
                }
            }
        }
        Ok(None)
    }

    /// A summary of every segment file, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = self.inner.read_state();
        st.segments
            .iter()
            .map(|s| SegmentInfo {
                path: s.path.clone(),
                base_index: s.base,
                first_index: (s.len() > 0).then_some(s.base),
                last_index: s.last_index(),
                entries: s.len(),
                bytes: s.write_pos,
                capacity: s.capacity,
                first_timestamp_ms: s.time.first_ts,
                last_timestamp_ms: s.time.last_ts,
            })
            .collect()
    }

    /// Drops the pages of every sealed segment (all but the newest) from the process's resident
    /// set. Reading old offsets (a replay at start, a catch-up reader, a follower far behind)
    /// maps them in, and they would stay counted in the node's RSS until the segment is purged;
    /// the page cache keeps them, so the next read of them costs a minor fault, not a disk read.
    pub fn release_sealed_pages(&self) {
        let sealed: Vec<_> = {
            let st = self.inner.read_state();
            match st.segments.split_last() {
                Some((_newest, sealed)) => sealed.iter().map(|s| s.mapped_pages()).collect(),
                None => Vec::new(),
            }
        };
        for pages in sealed {
            pages.release();
        }
    }

    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}
