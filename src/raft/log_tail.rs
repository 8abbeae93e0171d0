//! The newest entries of the log, kept decoded in memory.
//!
//! Every entry the leader appends is read back at once, by each follower's replication stream
//! and by apply; on a follower, by apply. Read from the segment log, each read is a frame read
//! and a MessagePack decode of an entry that was in memory a moment before (about 5 % of the
//! leader's CPU per committed write, docs/performance-round-three.md). The tail keeps the
//! entries as appended and answers those reads with clones.
//!
//! It never answers anything the log would not: it only serves a range that starts inside it
//! and only while its last entry is the log's last entry (the caller checks that against the
//! log, see [`LogTail::read`]). Appends enter it after the log took them; truncations and purges
//! leave it before the log changes; anything unexpected (a gap, a failed append) empties it, and
//! the log answers alone until the next append.

use std::collections::VecDeque;

use super::Entry;

/// Most entries the tail keeps.
const MAX_ENTRIES: usize = 16_384;
/// Most payload bytes (as stored) the tail keeps.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// Consecutive newest entries, each with its stored payload size (the unit of the
/// replication read cap).
#[derive(Default)]
pub struct LogTail {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl LogTail {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    /// The index of the last entry held.
    pub fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    /// Takes entries the log has just appended, in order, with their stored payload sizes. An
    /// entry that does not follow the last one held (a gap) empties the tail first.
    pub fn appended(&mut self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        for (e, n) in entries {
            if self
                .last_index()
                .is_some_and(|l| l.checked_add(1) != Some(e.log_id.index))
            {
                self.clear();
            }
            self.bytes += n;
            self.entries.push_back((e, n));
        }
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            match self.entries.pop_front() {
                Some((_, n)) => self.bytes -= n,
                None => break,
            }
        }
    }

    /// Drops every entry after `after` (all of them for `None`): the log is about to lose them.
    pub fn truncate_after(&mut self, after: Option<u64>) {
        while let Some(last) = self.last_index() {
            if after.is_some_and(|a| last <= a) {
                break;
            }
            if let Some((_, n)) = self.entries.pop_back() {
                self.bytes -= n;
            }
        }
    }

    /// Drops every entry up to `upto`: the log is about to purge them.
    pub fn purge_upto(&mut self, upto: u64) {
        while self.first_index().is_some_and(|f| f <= upto) {
            if let Some((_, n)) = self.entries.pop_front() {
                self.bytes -= n;
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Entries in `[start, end)`, the first ones up to about `max_bytes` of payload (at least
    /// one), as the segment log's `read_range` would answer them; `None` when the tail cannot
    /// answer alone: `start` is not inside it, or `log_last` (the log's last index, read by the
    /// caller while it holds the tail) is not the tail's last entry.
    pub fn read(
        &self,
        start: u64,
        end: u64,
        max_bytes: Option<usize>,
        log_last: Option<u64>,
    ) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let last = self.last_index()?;
        if log_last != Some(last) || start < first || start > last {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (e, n) in self.entries.iter().skip(skip) {
            if e.log_id.index >= end {
                break;
            }
            if let Some(max) = max_bytes {
                if !out.is_empty() && bytes + n > max {
                    break;
                }
            }
            bytes += n;
            out.push(e.clone());
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;
    use crate::raft::log_id;

    fn entry(term: u64, index: u64) -> (Entry, usize) {
        (
            Entry {
                log_id: log_id(term, index),
                payload: EntryPayload::Blank,
            },
            10,
        )
    }

    fn indexes(v: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn answers_only_ranges_that_start_inside_it_while_it_ends_where_the_log_ends() {
        let mut t = LogTail::default();
        t.appended((5..10).map(|i| entry(1, i)));
        assert_eq!(
            indexes(t.read(6, 8, None, Some(9))),
            Some(vec![6, 7]),
            "inside"
        );
        assert_eq!(
            indexes(t.read(7, u64::MAX, None, Some(9))),
            Some(vec![7, 8, 9])
        );
        assert_eq!(
            indexes(t.read(4, 8, None, Some(9))),
            None,
            "starts below it"
        );
        assert_eq!(indexes(t.read(10, 12, None, Some(9))), None, "past its end");
        assert_eq!(
            indexes(t.read(6, 8, None, Some(10))),
            None,
            "the log has an entry the tail has not seen: the log answers"
        );
        assert_eq!(indexes(t.read(6, 8, None, None)), None, "an empty log");
    }

    #[test]
    fn the_byte_cap_keeps_at_least_one_entry() {
        let mut t = LogTail::default();
        t.appended((1..=4).map(|i| entry(1, i)));
        assert_eq!(indexes(t.read(1, 5, Some(25), Some(4))), Some(vec![1, 2]));
        assert_eq!(indexes(t.read(1, 5, Some(1), Some(4))), Some(vec![1]));
    }

    #[test]
    fn truncation_purge_and_gaps_leave_only_what_the_log_still_holds() {
        let mut t = LogTail::default();
        t.appended((1..=6).map(|i| entry(1, i)));
        t.truncate_after(Some(4));
        assert_eq!(t.last_index(), Some(4));
        t.appended([entry(2, 5)]);
        assert_eq!(
            t.read(5, 6, None, Some(5)).map(|v| v[0].log_id),
            Some(log_id(2, 5)),
            "the new term's entry replaced the truncated one"
        );
        t.purge_upto(2);
        assert_eq!(indexes(t.read(2, 6, None, Some(5))), None, "purged");
        assert_eq!(indexes(t.read(3, 6, None, Some(5))), Some(vec![3, 4, 5]));
        t.appended([entry(2, 9)]);
        assert_eq!(indexes(t.read(9, 10, None, Some(9))), Some(vec![9]));
        assert_eq!(
            indexes(t.read(5, 10, None, Some(9))),
            None,
            "a gap emptied the tail before the new entry"
        );
        t.truncate_after(None);
        assert_eq!(t.last_index(), None);
    }

    #[test]
    fn it_stays_within_its_bounds() {
        let mut t = LogTail::default();
        t.appended((0..(MAX_ENTRIES as u64 + 10)).map(|i| entry(1, i)));
        assert_eq!(t.entries.len(), MAX_ENTRIES);
        assert_eq!(t.first_index(), Some(10));
        assert_eq!(t.bytes, MAX_ENTRIES * 10);
    }
}
