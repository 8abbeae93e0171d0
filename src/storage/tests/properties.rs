//! Property tests: a torn tail at any byte reopens at the last whole entry, and random
//! append/truncate/purge/reopen sequences match a model.

use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// What a torn write leaves in the last frame of the newest segment (zeros from a sector
    /// boundary inside it, or the file cut short inside it) reopens at the last whole entry;
    /// garbage over the end of a complete last frame is no torn write and refuses to open.
    #[test]
    fn torn_tail_reopens_at_last_whole_entry(n in 1u64..40, sizes in proptest::collection::vec(0usize..300, 40), cut_frac in 0.0f64..1.0, mode in 0u8..3) {
        let d = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(d.path());
        let es: Vec<_> = (1..=n).map(|i| entry(i, 1, i, sizes[(i - 1) as usize])).collect();
        log.append(&es).expect("append");
        let seg = newest(&log);
        let positions: Vec<u64> = {
            let mut p = 0;
            let mut v = Vec::new();
            for e in es.iter().filter(|e| e.index >= seg.base_index) {
                v.push(p);
                p += 40 + e.payload.len() as u64;
            }
            v
        };
        drop(log);
        let last_pos = *positions.last().expect("frame");
        let cut = last_pos + 1 + ((seg.bytes - last_pos - 1) as f64 * cut_frac) as u64;
        let f = fs::OpenOptions::new().write(true).open(&seg.path).expect("open");
        match mode {
            0 => {
                // The sectors from a boundary inside the last frame were never written.
                let boundary = cut.div_ceil(512) * 512;
                prop_assume!(boundary < seg.bytes);
                let before = fs::read(&seg.path).expect("read");
                prop_assume!(before[boundary as usize..seg.bytes as usize].iter().any(|&b| b != 0));
                f.write_all_at(&vec![0; (seg.bytes - boundary) as usize], boundary).expect("zero");
            }
            1 => f.set_len(cut).expect("cut the file"),
            _ => {
                // After the length field: a garbage length that runs past the end of the file
                // reads as a frame cut short (see segments-format.md).
                let cut = cut.max(last_pos + 12);
                f.write_all_at(&vec![0x5A; (seg.bytes - cut) as usize], cut).expect("garbage");
            }
        }
        drop(f);
        if mode == 2 {
            let refused = matches!(
                SegmentLog::open(d.path(), small()),
                Err(StorageError::DamagedLog { offset, .. }) if offset == last_pos
            );
            prop_assert!(refused, "garbage over a complete last frame must refuse");
            return Ok(());
        }
        let (log, rep) = open(d.path());
        let want_last = n - 1;
        prop_assert_eq!(log.last_entry_id().map(|e| e.index).unwrap_or(0), want_last);
        prop_assert!(rep.truncated_bytes > 0);
        prop_assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es[..want_last as usize].to_vec());
        let again = es[want_last as usize].clone();
        log.append(std::slice::from_ref(&again)).expect("append again");
        drop(log);
        let (log, rep) = open(d.path());
        prop_assert_eq!(rep.truncated_bytes, 0);
        prop_assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es.clone());
    }

    /// Random operation sequences agree with a simple in-memory model, also across reopen.
    #[test]
    fn model_check(ops in proptest::collection::vec((0u8..4, 0u64..60, 1usize..200), 1..25)) {
        let d = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(d.path());
        let mut model: Vec<StoredEntry> = Vec::new();
        let mut purged: Option<u64> = None;
        for (op, k, len) in ops {
            let next = model.last().map(|e| e.index + 1).or(purged.map(|p| p + 1)).unwrap_or(1);
            match op {
                0 => {
                    let es: Vec<_> = (next..next + k % 20 + 1).map(|i| entry(i, 1, i * 2, len)).collect();
                    log.append(&es).expect("append");
                    model.extend(es);
                }
                1 => {
                    let at = next.saturating_sub(k % 10 + 1);
                    log.truncate_after(Some(at)).expect("truncate");
                    model.retain(|e| e.index <= at);
                }
                2 => {
                    let upto = purged.unwrap_or(0).max(next.saturating_sub(1).saturating_sub(k % 30)) + k % 3;
                    log.purge_upto(EntryId { index: upto, term: 1 }).expect("purge");
                    model.retain(|e| e.index > upto);
                    purged = Some(upto);
                }
                _ => {
                    drop(log);
                    log = open(d.path()).0;
                }
            }
            let from = purged.map_or(0, |p| p + 1);
            prop_assert_eq!(log.read_range(from, u64::MAX, None).expect("read"), model.clone());
            if let Some(p) = purged {
                // A read from at or below the purge point is told so, never moved up silently.
                let below = log.read_range(p.saturating_sub(k % 5), u64::MAX, None);
                prop_assert!(
                    matches!(below, Err(StorageError::Purged { last_purged, .. }) if last_purged == p),
                    "{:?}", below
                );
            }
            prop_assert_eq!(log.first_index(), model.first().map(|e| e.index));
            prop_assert_eq!(log.last_purged().map(|p| p.index), purged);
        }
    }
}
