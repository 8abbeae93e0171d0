//! A sparse in-memory time index per segment, like Kafka's `.timeindex`.
//!
//! It records `(timestamp_ms, index)` for the first timestamped entry after every
//! [`TIME_INDEX_INTERVAL_BYTES`] of segment data. Entries with `timestamp_ms == 0` (Raft's own
//! entries) are never indexed. It is rebuilt from the frames at open and never persisted.

/// Bytes of segment data between two time-index points.
pub const TIME_INDEX_INTERVAL_BYTES: u64 = 4096;

/// One point of the sparse time index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimePoint {
    pub timestamp_ms: u64,
    pub index: u64,
    pub pos: u64,
}

/// The sparse time index of one segment plus its first/last non-zero timestamps.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeIndex {
    points: Vec<TimePoint>,
    /// First and last non-zero timestamp in the segment.
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
}

impl TimeIndex {
    /// Notes an entry written at byte `pos`; call in index order.
    pub fn observe(&mut self, index: u64, timestamp_ms: u64, pos: u64) {
        if timestamp_ms == 0 {
            return;
        }
        if self.first_ts.is_none() {
            self.first_ts = Some(timestamp_ms);
        }
        self.last_ts = Some(timestamp_ms);
        let due = self
            .points
            .last()
            .is_none_or(|p| pos >= p.pos + TIME_INDEX_INTERVAL_BYTES);
        if due {
            self.points.push(TimePoint {
                timestamp_ms,
                index,
                pos,
            });
        }
    }

    /// The index to start a forward scan from for the first entry with timestamp >= `ts`:
    /// the last point whose timestamp is < `ts` (every later match lies at or after it).
    pub fn scan_start(&self, ts: u64) -> Option<u64> {
        let n = self.points.partition_point(|p| p.timestamp_ms < ts);
        n.checked_sub(1).map(|i| self.points[i].index)
    }

    /// Drops points for entries with index > `last`; the caller recomputes `last_ts` with
    /// [`TimeIndex::reset_last_ts`] from a scan starting at [`TimeIndex::last_point`].
    pub fn truncate_after(&mut self, last: u64) {
        self.points.retain(|p| p.index <= last);
        if self.points.is_empty() {
            self.first_ts = None;
            self.last_ts = None;
        } else {
            self.last_ts = self.points.last().map(|p| p.timestamp_ms);
        }
    }

    /// The last remaining point (a truncation rescans from here).
    pub fn last_point(&self) -> Option<TimePoint> {
        self.points.last().copied()
    }

    /// Sets the last timestamp after a rescan (and the first, if nothing was indexed).
    pub fn reset_last_ts(&mut self, first: Option<u64>, last: Option<u64>) {
        if self.first_ts.is_none() {
            self.first_ts = first;
        }
        if last.is_some() {
            self.last_ts = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_points_and_start() {
        let mut t = TimeIndex::default();
        for i in 0..100u64 {
            t.observe(i, if i % 10 == 0 { 0 } else { 1000 + i }, i * 1000);
        }
        assert!(t.points.len() < 40);
        assert_eq!(t.first_ts, Some(1001));
        assert_eq!(t.last_ts, Some(1099));
        assert_eq!(t.scan_start(0), None);
        let s = t.scan_start(1050).expect("start");
        assert!(s < 50);
        t.truncate_after(30);
        assert!(t.last_point().is_some_and(|p| p.index <= 30));
    }
}
