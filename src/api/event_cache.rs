//! The most recent committed entries, encoded once as `/stream` events and shared by every
//! reader of the node.
//!
//! Readers at the tail all want the same few offsets at about the same time. The first one that
//! misses reads them from the segment log, encodes them one after the other into one block of
//! bytes, and puts them here; the others copy the handles (a reference count each) instead of
//! decoding and encoding the records again. Consecutive events of one block join into one
//! `Bytes` without a copy ([`Framed::join`]), so a reader at the tail hands a whole batch to its
//! connection as one piece.
//! Only entries close to the applied offset are kept, so a reader catching up from far behind
//! neither fills the cache with old entries nor evicts what the tail readers need: it reads the
//! log directly until it reaches the cached range.
//!
//! What is cached never goes stale: an offset at or below the applied offset is committed, and a
//! committed entry never changes (Raft's log matching), on any node.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// One event's bytes: a range of the block its batch was encoded into.
#[derive(Clone, Debug)]
pub struct Framed {
    block: Bytes,
    start: usize,
    end: usize,
}

impl Framed {
    /// The bytes `range` of `block`.
    pub fn new(block: Bytes, range: std::ops::Range<usize>) -> Self {
        debug_assert!(range.start <= range.end && range.end <= block.len());
        Self {
            block,
            start: range.start,
            end: range.end,
        }
    }

    /// Bytes of their own (a block of one event).
    pub fn whole(bytes: Bytes) -> Self {
        let end = bytes.len();
        Self::new(bytes, 0..end)
    }

    /// The event's bytes (a reference to the block, no copy).
    pub fn bytes(&self) -> Bytes {
        self.block.slice(self.start..self.end)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Extends `self` by `next` when `next` directly follows it in the same block (then both are
    /// one range); `false`, and `self` unchanged, otherwise.
    pub fn join(&mut self, next: &Framed) -> bool {
        let same_block =
            self.block.as_ptr() == next.block.as_ptr() && self.block.len() == next.block.len();
        if same_block && self.end == next.start {
            self.end = next.end;
            true
        } else {
            false
        }
    }
}

/// Most events joined into one [`Run`].
pub const RUN_MAX_EVENTS: usize = 256;
/// Most bytes of one [`Run`].
pub const RUN_MAX_BYTES: usize = 64 * 1024;

/// Consecutive record events (of the records a reader wants) that lie next to each other in
/// one block: sent to the reader as one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The events' bytes.
    pub bytes: Framed,
    /// How many events.
    pub events: usize,
    /// The offset of the last one.
    pub last: u64,
}

/// Appends the event of the record at `offset` to `runs`: to the last run when it directly
/// follows it in the same block and the run has room ([`RUN_MAX_EVENTS`], [`RUN_MAX_BYTES`]),
/// else as a new run.
pub fn push_run(runs: &mut Vec<Run>, offset: u64, event: &Framed) {
    if let Some(r) = runs.last_mut() {
        if r.events < RUN_MAX_EVENTS
            && r.bytes.len() + event.len() <= RUN_MAX_BYTES
            && r.bytes.join(event)
        {
            r.events += 1;
            r.last = offset;
            return;
        }
    }
    runs.push(Run {
        bytes: event.clone(),
        events: 1,
        last: offset,
    });
}

impl PartialEq for Framed {
    fn eq(&self, other: &Self) -> bool {
        self.block[self.start..self.end] == other.block[other.start..other.end]
    }
}

impl Eq for Framed {}

/// Entries kept at most, by default.
pub const DEFAULT_MAX_EVENTS: usize = 16 * 1024;
/// Event bytes kept at most, by default.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// One log entry as `/stream` sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CachedEntry {
    /// Raft's own entry (blank, membership): takes an offset, sends nothing.
    Skip,
    /// A metadata record: its name (for `names=` filters) and its encoded event.
    Record {
        /// [`Record::name`](crate::metadata::Record::name).
        name: &'static str,
        /// The whole `id:`/`event:`/`data:` frame.
        event: Framed,
    },
}

impl CachedEntry {
    fn bytes(&self) -> usize {
        match self {
            CachedEntry::Skip => 0,
            CachedEntry::Record { event, .. } => event.len(),
        }
    }
}

/// Consecutive entries `first, first + 1, ...`.
#[derive(Default)]
struct Window {
    first: u64,
    entries: VecDeque<CachedEntry>,
    bytes: usize,
}

impl Window {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn clear(&mut self, first: u64) {
        self.first = first;
        self.entries.clear();
        self.bytes = 0;
    }

    fn push(&mut self, e: &CachedEntry) {
        self.bytes += e.bytes();
        self.entries.push_back(e.clone());
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.bytes();
            self.first += 1;
        }
    }
}

/// A bounded window of the most recent encoded entries, keyed by offset.
///
/// The lock is held only to copy `Bytes` handles in or out, never while reading the log.
pub struct EventCache {
    window: Mutex<Window>,
    max_events: usize,
    max_bytes: usize,
}

impl Default for EventCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENTS, DEFAULT_MAX_BYTES)
    }
}

impl EventCache {
    /// A cache of at most `max_events` entries and `max_bytes` event bytes.
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            window: Mutex::new(Window::default()),
            max_events: max_events.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // Nothing in here panics while holding the lock; should it, the window is still
        // consistent enough to read (every mutation keeps `first`/`entries`/`bytes` in step).
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends to `out` the cached entries from offset `from` on, up to offset `last` inclusive
    /// and at most `max` of them. Returns the offset after the last one appended: `from` when
    /// `from` is not cached.
    pub fn get(&self, from: u64, last: u64, max: usize, out: &mut Vec<CachedEntry>) -> u64 {
        self.visit(from, last, max, |_, e| out.push(e.clone()))
    }

    /// Like [`get`](Self::get), but hands each cached entry (with its offset) to `f` under the
    /// lock instead of copying it out: a reader that joins consecutive events into runs clones
    /// one handle per run, not one per entry.
    pub fn visit(
        &self,
        from: u64,
        last: u64,
        max: usize,
        mut f: impl FnMut(u64, &CachedEntry),
    ) -> u64 {
        let w = self.lock();
        if from < w.first || from >= w.end() || from > last {
            return from;
        }
        let end = w.end().min(last.saturating_add(1));
        let n = ((end - from) as usize).min(max);
        let start = (from - w.first) as usize;
        for (offset, e) in (from..).zip(w.entries.range(start..start + n)) {
            f(offset, e);
        }
        from + n as u64
    }

    /// Offers `entries`, the entries at offsets `from, from + 1, ...`, read when `head` was the
    /// applied offset. Only the ones within the cache's size of `head` are kept: they extend the
    /// cached window at its end, or replace it when they start after its end (it was left behind,
    /// e.g. while no reader was at the tail). Older entries are dropped.
    pub fn insert(&self, from: u64, entries: &[CachedEntry], head: u64) {
        let recent = head
            .saturating_add(1)
            .saturating_sub(self.max_events as u64);
        let skip = recent.saturating_sub(from).min(entries.len() as u64);
        let (from, entries) = (from + skip, &entries[skip as usize..]);
        if entries.is_empty() {
            return;
        }
        let mut w = self.lock();
        let end = w.end();
        if w.entries.is_empty() || from > end {
            w.clear(from);
        } else if from < w.first {
            // Before the window (and it does not reach past its end, or it would not be older
            // than the window's start by more than the cache's size): keep what is cached.
            if from + (entries.len() as u64) <= end {
                return;
            }
            w.clear(from);
        }
        let end = w.end();
        let have = end.saturating_sub(from) as usize;
        for e in entries.iter().skip(have) {
            w.push(e);
        }
        while w.entries.len() > self.max_events || (w.bytes > self.max_bytes && w.entries.len() > 1)
        {
            w.pop_front();
        }
    }

    /// The cached offsets, `first..end` (for tests and metrics).
    pub fn range(&self) -> std::ops::Range<u64> {
        let w = self.lock();
        w.first..w.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64) -> CachedEntry {
        CachedEntry::Record {
            name: "TopicRecord",
            event: Framed::whole(Bytes::from(format!("id: {offset}\n\n"))),
        }
    }

    fn recs(from: u64, to: u64) -> Vec<CachedEntry> {
        (from..to).map(rec).collect()
    }

    fn block_of(events: &[&str]) -> Vec<Framed> {
        let block = Bytes::from(events.concat());
        let mut at = 0;
        events
            .iter()
            .map(|e| {
                let f = Framed::new(block.clone(), at..at + e.len());
                at += e.len();
                f
            })
            .collect()
    }

    #[test]
    fn adjacent_events_of_one_block_join_without_a_copy_and_others_do_not() {
        let f = block_of(&["id: 1\n\n", "id: 2\n\n", "id: 3\n\n"]);
        let mut a = f[0].clone();
        assert!(!a.join(&f[2]), "not adjacent");
        assert!(a.join(&f[1]));
        assert!(a.join(&f[2]));
        assert_eq!(
            a.bytes(),
            Bytes::from_static(b"id: 1\n\nid: 2\n\nid: 3\n\n")
        );
        assert_eq!(
            a.bytes().as_ptr(),
            f[0].bytes().as_ptr(),
            "a slice of the block"
        );
        let other = Framed::whole(Bytes::from_static(b"id: 4\n\n"));
        let mut b = f[2].clone();
        assert!(!b.join(&other), "another block");
        assert_eq!(b, f[2]);
    }

    #[test]
    fn runs_join_what_follows_and_split_at_gaps_and_limits() {
        let f = block_of(&["a", "b", "c", "d"]);
        let mut runs = Vec::new();
        push_run(&mut runs, 10, &f[0]);
        push_run(&mut runs, 11, &f[1]);
        push_run(&mut runs, 13, &f[3]); // "c" filtered out: a gap in the block
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].bytes.bytes(), runs[0].events, runs[0].last),
            (Bytes::from_static(b"ab"), 2, 11)
        );
        assert_eq!(
            (runs[1].bytes.bytes(), runs[1].events, runs[1].last),
            (Bytes::from_static(b"d"), 1, 13)
        );

        let many: Vec<String> = (0..RUN_MAX_EVENTS + 1)
            .map(|i| format!("{}", i % 10))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let f = block_of(&refs);
        let mut runs = Vec::new();
        for (o, e) in f.iter().enumerate() {
            push_run(&mut runs, o as u64, e);
        }
        assert_eq!(runs.len(), 2, "at most RUN_MAX_EVENTS in one run");
        assert_eq!(runs[0].events, RUN_MAX_EVENTS);
        assert_eq!(runs[1].last, RUN_MAX_EVENTS as u64);
    }

    #[test]
    fn a_miss_returns_from_and_a_hit_copies_up_to_last_and_max() {
        let c = EventCache::new(100, 1 << 20);
        let mut out = Vec::new();
        assert_eq!(c.get(5, 10, 10, &mut out), 5);
        c.insert(5, &recs(5, 15), 14);
        assert_eq!(c.range(), 5..15);
        assert_eq!(c.get(4, 14, 10, &mut out), 4);
        assert!(out.is_empty());
        assert_eq!(c.get(7, 10, 100, &mut out), 11);
        assert_eq!(out, recs(7, 11));
        out.clear();
        assert_eq!(c.get(7, 100, 3, &mut out), 10);
        assert_eq!(out, recs(7, 10));
        out.clear();
        assert_eq!(c.get(15, 100, 3, &mut out), 15);
        assert!(out.is_empty());
    }

    #[test]
    fn inserts_extend_the_end_skip_what_is_held_and_reset_on_a_gap() {
        let c = EventCache::new(100, 1 << 20);
        c.insert(10, &[rec(10), CachedEntry::Skip, rec(12)], 12);
        c.insert(11, &recs(11, 16), 15);
        assert_eq!(c.range(), 10..16);
        let mut out = Vec::new();
        c.get(10, 15, 100, &mut out);
        assert_eq!(out[1], CachedEntry::Skip, "entries already held are kept");
        assert_eq!(out[5], rec(15));
        c.insert(12, &recs(12, 14), 15);
        assert_eq!(c.range(), 10..16);
        c.insert(20, &recs(20, 22), 21);
        assert_eq!(c.range(), 20..22, "a gap replaces the window");
        c.insert(15, &recs(15, 19), 21);
        assert_eq!(c.range(), 20..22, "older and not reaching the end: ignored");
        c.insert(15, &recs(15, 25), 24);
        assert_eq!(c.range(), 15..25, "older but past the end: replaces");
    }

    #[test]
    fn only_entries_near_the_head_are_kept_and_the_window_is_bounded() {
        let c = EventCache::new(10, 1 << 20);
        c.insert(0, &recs(0, 50), 1000);
        assert_eq!(
            c.range(),
            0..0,
            "a far-behind reader's entries are not cached"
        );
        c.insert(985, &recs(985, 1001), 1000);
        assert_eq!(c.range(), 991..1001);
        c.insert(1001, &recs(1001, 1006), 1005);
        assert_eq!(c.range(), 996..1006);
        let by_bytes = EventCache::new(100, 30);
        by_bytes.insert(0, &recs(0, 10), 9); // "id: N\n\n" is 7 bytes
        assert_eq!(by_bytes.range(), 6..10);
    }
}
