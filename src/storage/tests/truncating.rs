//! Truncating a conflicting tail, crash-safe at every step.

use super::*;

#[test]
fn truncate_after_then_append_and_reopen() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 200, 100);
    let before = log.segments().len();
    log.truncate_after(Some(57)).expect("truncate");
    assert!(log.segments().len() < before);
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(57));
    assert_eq!(log.durable_index(), Some(57));
    assert_eq!(
        log.read_range(0, u64::MAX, None).expect("read"),
        es[..57].to_vec()
    );
    let more: Vec<_> = (58..=70).map(|i| entry(i, 9, 5_000 + i, 50)).collect();
    log.append(&more).expect("append after truncate");
    drop(log);
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated_bytes, 0, "truncation left no garbage");
    let all = log.read_range(0, u64::MAX, None).expect("read");
    assert_eq!(all.len(), 70);
    assert_eq!(&all[57..], &more[..]);
    log.truncate_after(None).expect("truncate all");
    assert_eq!((log.first_index(), log.last_entry_id()), (None, None));
    assert!(log.segments().is_empty());
    log.append(&[entry(500, 9, 0, 1)])
        .expect("empty log without purge accepts any index");
}

/// Writes the on-disk states a crash inside `truncate_after(Some(keep))` can leave, after the
/// intent is saved: nothing done yet, later segments partly deleted, the tail's zeroing partly
/// written back (a zeroed sector with frames after it that were not zeroed). Each must open as
/// the prefix `..=keep`.
#[test]
fn truncation_interrupted_anywhere_reopens_as_a_prefix() {
    let keep = 45u64;
    for state in 0..4 {
        let d = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(d.path());
        let es = fill(&log, 1, 100, 100);
        log.sync().expect("sync");
        let segs = log.segments();
        drop(log);
        let seg_of_keep = segs
            .iter()
            .find(|s| s.first_index <= Some(keep) && s.last_index >= Some(keep))
            .expect("segment of keep")
            .clone();
        // The intent, as truncate_after saves it first.
        truncation::TruncationIntent::open(d.path())
            .expect("intent")
            .save(Some(keep))
            .expect("save");
        let later: Vec<_> = segs
            .iter()
            .filter(|s| s.base_index > keep)
            .cloned()
            .collect();
        assert!(later.len() >= 2, "the test needs later segments");
        match state {
            0 => {}
            1 => {
                fs::remove_file(&later.last().expect("newest").path).expect("rm");
            }
            2 | 3 => {
                for s in &later {
                    fs::remove_file(&s.path).expect("rm");
                }
                // A zeroed sector in the middle of the cut range, frames intact after it.
                let keep_end = (keep - seg_of_keep.base_index + 1) * 140;
                let hole = keep_end.div_ceil(512) * 512 + if state == 3 { 512 } else { 0 };
                assert!(hole + 512 < seg_of_keep.bytes, "frames after the hole");
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&seg_of_keep.path)
                    .expect("open");
                f.write_all_at(&[0u8; 512], hole).expect("zero");
            }
            _ => unreachable!(),
        }
        if state == 3 {
            // Without the intent the same bytes are corruption (zeros followed by frames).
            let intent = d.path().join("truncating");
            let saved = fs::read(&intent).expect("intent bytes");
            fs::remove_file(&intent).expect("rm intent");
            assert!(matches!(
                SegmentLog::open(d.path(), small()),
                Err(StorageError::DamagedLog { .. })
            ));
            fs::write(&intent, saved).expect("restore intent");
        }
        let (log, _) = open(d.path());
        assert_eq!(
            log.read_range(0, u64::MAX, None).expect("read"),
            es[..keep as usize].to_vec(),
            "state {state}"
        );
        assert!(!d.path().join("truncating").exists(), "intent cleared");
        log.append(&[entry(keep + 1, 9, 1, 10)])
            .expect("append after");
        drop(log);
        let (log, rep) = open(d.path());
        assert_eq!(rep.truncated_bytes, 0);
        assert_eq!(log.last_entry_id().map(|e| e.index), Some(keep + 1));
    }
}

#[test]
fn truncate_after_leaves_no_intent_and_reopens() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 100, 100);
    log.truncate_after(Some(33)).expect("truncate");
    assert!(!d.path().join("truncating").exists());
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(
        log.read_range(0, u64::MAX, None).expect("read"),
        es[..33].to_vec()
    );
}

#[test]
fn a_truncation_that_fails_after_its_intent_poisons_and_recovery_finishes_it() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 20, 100);
    log.inject_sync_failure();
    assert!(log.truncate_after(Some(12)).is_err());
    assert!(log.failed(), "a failed truncation stops every later write");
    assert!(log.append(&[entry(13, 2, 1, 10)]).is_err());
    assert!(d.path().join("truncating").exists(), "the intent stays");
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(
        log.read_range(0, u64::MAX, None).expect("read"),
        es[..12].to_vec()
    );
    assert!(!d.path().join("truncating").exists());
}
