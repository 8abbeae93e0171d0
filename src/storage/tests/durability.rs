//! Group commit, the flusher thread, concurrent readers, fsync failures and the acknowledged
//! watermark.

use super::*;

#[test]
fn group_commit_batches_callbacks() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    let done = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let n = 2000u64;
    for i in 1..=n {
        log.append(&[entry(i, 1, i, 50)]).expect("append");
        let done = Arc::clone(&done);
        let tx = tx.clone();
        log.on_durable(
            i,
            Box::new(move |r| {
                assert!(r.is_ok());
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(i);
            }),
        );
    }
    for _ in 0..n {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("callback ran");
    }
    assert_eq!(done.load(Ordering::SeqCst), n as usize);
    assert!(log.durable_index() >= Some(n));
    let syncs = log.sync_count();
    assert!(
        syncs >= 1 && syncs < n / 10,
        "{syncs} syncs for {n} callbacks"
    );
}

#[test]
fn concurrent_sync_callers_share_rounds() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 1..=2000u64 {
                log.append(&[entry(i, 1, 0, 64)]).expect("append");
            }
        })
    };
    let syncers: Vec<_> = (0..8)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let last_before = log.last_entry_id().map(|e| e.index);
                    let d = log.sync().expect("sync");
                    assert!(d >= last_before, "sync covers what was appended before it");
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for s in syncers {
        s.join().expect("syncer");
    }
    assert_eq!(log.sync().expect("sync"), Some(2000));
    assert!(
        log.sync_count() <= 401,
        "{} rounds for 400 sync calls",
        log.sync_count()
    );
}

#[test]
fn readers_run_concurrently_with_appends() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let log = Arc::new(log);
    let w = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || fill(&log, 1, 500, 60))
    };
    let mut next = 1;
    while next <= 500 {
        for e in log.read_range(next, next + 50, None).expect("read") {
            assert_eq!(e.index, next);
            assert_eq!(e, entry(next, 1 + next / 50, 1_000 + next * 10, 60));
            next += 1;
        }
    }
    w.join().expect("writer");
}

#[test]
fn on_durable_waits_for_future_index_and_drop_fails_the_rest() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let (tx, rx) = mpsc::channel();
    let t1 = tx.clone();
    log.on_durable(5, Box::new(move |r| t1.send((5, r.is_ok())).expect("send")));
    std::thread::sleep(Duration::from_millis(30));
    assert!(rx.try_recv().is_err(), "index 5 not appended yet");
    fill(&log, 1, 5, 10);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).expect("callback"),
        (5, true)
    );
    assert_eq!(log.durable_index(), Some(5));
    let t2 = tx.clone();
    log.on_durable(
        100,
        Box::new(move |r| t2.send((100, r.is_ok())).expect("send")),
    );
    drop(log);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).expect("callback"),
        (100, false)
    );
}

#[test]
fn reads_proceed_while_syncs_run() {
    // Reads make progress while append+sync run back to back (a smoke test: it hangs or crawls
    // if reads queue behind fsync, but it does not time individual reads).
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    fill(&log, 1, 100, 100);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncer = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 101;
            while !stop.load(Ordering::Relaxed) {
                log.append(&[entry(i, 9, 0, 4096)]).expect("append");
                log.sync().expect("sync");
                i += 1;
            }
        })
    };
    for _ in 0..2000 {
        assert_eq!(log.read_range(1, 11, None).expect("read").len(), 10);
    }
    stop.store(true, Ordering::Relaxed);
    syncer.join().expect("syncer");
}

#[test]
fn rolling_to_a_new_segment_syncs_the_old_one_first() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    // 29 frames of 140 bytes fill 4060 of 4096 bytes; the 30th rolls.
    fill(&log, 1, 29, 100);
    assert_eq!(log.segments().len(), 1);
    let before = log.sync_count();
    assert_eq!(log.durable_index(), None, "nothing synced yet");
    log.append(&[entry(30, 1, 1, 100)]).expect("append");
    assert_eq!(log.segments().len(), 2, "rolled");
    assert_eq!(log.sync_count(), before + 1, "one fdatasync at the roll");
    assert_eq!(
        log.durable_index(),
        Some(29),
        "the old segment is durable, the new entry not yet"
    );
}

#[test]
fn the_first_failed_fdatasync_poisons_the_log() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 5, 100);
    log.sync().expect("sync");
    fill(&log, 6, 8, 100);
    log.inject_sync_failure();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    log.on_durable(8, Box::new(move |r| tx.send(r.is_ok()).expect("send")));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(false),
        "the failing round's callback errs"
    );
    assert!(log.failed());
    // No later call reports durability, even for indexes synced before the failure, and
    // even though the device would now succeed (the hook fails only once).
    assert!(log.sync().is_err());
    log.on_durable(3, Box::new(move |r| tx2.send(r.is_ok()).expect("send")));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(false));
    assert!(log.append(&[entry(9, 1, 1, 10)]).is_err(), "append refuses");
    assert!(log.truncate_after(Some(4)).is_err(), "truncate refuses");
    // Reopening (what a restarted process does) recovers from the disk.
    drop(log);
    let (log, _) = open(d.path());
    assert!(!log.failed());
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(8));
}

#[test]
fn the_acknowledged_watermark_follows_syncs_and_truncations() {
    let d = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = open(d.path());
        assert_eq!(log.acked_at_open(), None);
        fill(&log, 1, 20, 30);
        log.sync().expect("sync");
    }
    let (log, _) = open(d.path());
    assert_eq!(
        log.acked_at_open().map(|a| a.index),
        Some(20),
        "every synced entry counts"
    );
    log.truncate_after(Some(12)).expect("truncate");
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(
        log.acked_at_open().map(|a| a.index),
        Some(12),
        "a truncation brings the watermark down first"
    );
    drop(log);
    // A log that lost synced entries (a disk that lied) ends before its watermark.
    let seg = d.path().join(segment_file_name(1));
    let len = fs::metadata(&seg).expect("stat").len();
    let f = fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(&vec![0u8; len as usize], 0).expect("zero");
    drop(f);
    let (log, _) = open(d.path());
    assert_eq!(log.acked_at_open().map(|a| a.index), Some(12));
    assert!(log.last_entry_id().is_none_or(|e| e.index < 12));
}

/// Review 4 (session 11): a node recovering from a loss stops recovering only once
/// `durable_index` reaches its commit index, and a snapshot installed from the leader sets that
/// commit index beyond a log that ends earlier. What the rule relies on: purging through a
/// point past the log's end counts everything up to it as durable, now and after a reopen
/// (the log then is empty and starts after the purge point), and a purge that keeps entries
/// leaves the durable index where the kept entries put it.
#[test]
fn a_purge_past_the_end_counts_as_durable_before_and_after_a_reopen() {
    let d = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = open(d.path());
        fill(&log, 1, 5, 10);
        log.sync().expect("sync");
        assert_eq!(log.durable_index(), Some(5));
        log.purge_upto(EntryId {
            index: 100,
            term: 3,
        })
        .expect("purge past the end");
        assert_eq!(
            log.durable_index(),
            Some(100),
            "a snapshot's point on an empty log"
        );
    }
    let (log, _) = open(d.path());
    assert_eq!(
        log.durable_index(),
        Some(100),
        "after a reopen, from the purge point"
    );
    fill(&log, 101, 110, 10);
    log.sync().expect("sync");
    log.purge_upto(EntryId {
        index: 105,
        term: 3,
    })
    .expect("purge below the end");
    assert_eq!(log.durable_index(), Some(110));
}
