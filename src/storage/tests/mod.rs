//! Behavioural tests of the segment log (round trips, rolling, recovery, group commit).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

mod corruption;
mod durability;
mod properties;
mod read_write;
mod truncating;

fn entry(index: u64, term: u64, ts: u64, len: usize) -> StoredEntry {
    StoredEntry {
        index,
        term,
        timestamp_ms: ts,
        payload: (0..len).map(|i| (index as usize * 31 + i) as u8).collect(),
    }
}

fn small() -> LogOptions {
    LogOptions {
        segment_bytes: 4096,
    }
}

fn open(dir: &Path) -> (SegmentLog, RecoveryReport) {
    SegmentLog::open(dir, small()).expect("open")
}

fn fill(log: &SegmentLog, from: u64, to: u64, len: usize) -> Vec<StoredEntry> {
    let es: Vec<_> = (from..=to)
        .map(|i| entry(i, 1 + i / 50, 1_000 + i * 10, len))
        .collect();
    for chunk in es.chunks(7) {
        log.append(chunk).expect("append");
    }
    es
}

/// Newest segment and the offset of a frame inside it.
fn newest(log: &SegmentLog) -> SegmentInfo {
    log.segments().last().cloned().expect("a segment")
}

/// Flips `n` bytes of a file at `at`.
fn flip(path: &Path, at: u64, n: usize) {
    let mut b = vec![0u8; n];
    fs::File::open(path)
        .expect("open")
        .read_exact_at(&mut b, at)
        .expect("read");
    for x in &mut b {
        *x ^= 0x5a;
    }
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .write_all_at(&b, at)
        .expect("write");
}

#[test]
fn log_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<SegmentLog>();
}
