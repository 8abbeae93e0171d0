use super::*;

fn ev(id: Option<u64>, event: &str, data: &str) -> sse::Event {
    sse::Event {
        id: id.map(|i| i.to_string()),
        event: event.into(),
        data: data.into(),
    }
}

fn record(offset: u64) -> sse::Event {
    let data = serde_json::json!({"offset": offset, "epoch": 1, "timestamp": 1,
        "name": "TopicRecord", "fields": {"name": format!("t{offset}")}});
    ev(Some(offset), "record", &data.to_string())
}

fn progress(id: u64) -> sse::Event {
    let data = serde_json::json!({"applied_offset": id, "commit_offset": id,
        "leader_id": 1, "term": 1, "node_id": 2});
    ev(Some(id), "progress", &data.to_string())
}

/// Runs events through `r`, as connections that each end where the next begins: the ids
/// of the items yielded.
fn feed(r: &mut Resume, conns: Vec<Vec<sse::Event>>) -> Vec<u64> {
    let mut out = Vec::new();
    for events in conns {
        r.reconnected();
        for e in events {
            match r.handle(e) {
                Handled::Item(i) => out.push(i.offset()),
                Handled::Skip => {}
                Handled::Reconnect(_) => break,
            }
        }
    }
    out
}

#[test]
fn a_failover_resumes_after_the_last_id_without_repeats_or_gaps() {
    let mut r = Resume::default();
    // Node A sends 3, 5, a progress at 9 (6..=9 filtered out), then says it has no leader.
    // Node B (resumed after 9) resends 8 and 9 (an older cache), then 12; node C sends a
    // progress at 11 (behind what was yielded) and 13.
    let got = feed(
        &mut r,
        vec![
            vec![
                record(3),
                record(5),
                progress(9),
                ev(None, "stream_error", r#"{"error":"no_leader"}"#),
                record(10),
            ],
            vec![record(8), record(9), record(12)],
            vec![progress(11), record(13)],
        ],
    );
    assert_eq!(
        got,
        vec![3, 5, 12, 13],
        "record 10 came after the stream_error"
    );
    assert_eq!(r.last_id, Some(13));
    assert_eq!(r.duplicates, 2);
}

#[test]
fn progress_moves_the_resume_point_and_is_yielded_only_when_asked() {
    let mut quiet = Resume::default();
    assert_eq!(
        feed(&mut quiet, vec![vec![progress(4), record(2)]]),
        Vec::<u64>::new()
    );
    assert_eq!(quiet.last_id, Some(4));
    let mut loud = Resume {
        yield_progress: true,
        ..Resume::default()
    };
    assert_eq!(
        feed(&mut loud, vec![vec![progress(4), progress(4), record(5)]]),
        vec![4, 5]
    );
}

#[test]
fn a_snapshot_cut_mid_way_is_dropped_and_taken_whole_from_the_next_node() {
    let mut r = Resume::default();
    let begin = ev(None, "snapshot_begin", r#"{"offset":20,"epoch":2}"#);
    let chunk = |names: &str| {
        ev(
            None,
            "snapshot_chunk",
            &format!(r#"{{"metadata":{{"TopicRecord":[{names}]}}}}"#),
        )
    };
    let end = ev(Some(20), "snapshot_end", r#"{"offset":20,"epoch":2}"#);
    let a = r#"{"name":"a","topicUUID":"00000000-0000-4000-8000-000000000001"}"#;
    let b = r#"{"name":"b","topicUUID":"00000000-0000-4000-8000-000000000002"}"#;
    let mut items = Vec::new();
    for conn in [
        vec![begin.clone(), chunk(a)],
        vec![begin.clone(), chunk(a), chunk(b), end.clone(), record(21)],
    ] {
        r.reconnected();
        for e in conn {
            if let Handled::Item(i) = r.handle(e) {
                items.push(i);
            }
        }
    }
    assert_eq!(items.len(), 2, "{items:?}");
    let StreamItem::Snapshot {
        offset, metadata, ..
    } = &items[0]
    else {
        panic!("{items:?}")
    };
    assert_eq!(*offset, 20);
    assert_eq!(
        metadata["TopicRecord"].as_array().map(Vec::len),
        Some(2),
        "only the whole second copy: {metadata}"
    );
    assert_eq!(items[1].offset(), 21);
}
