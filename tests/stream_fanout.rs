//! Issue 18: readers at the tail share what the node encodes (one block of events per batch,
//! handed to each reader as slices of it, several records at once). Many readers at the tail of
//! one node, with different name filters, must each still get exactly their records: every one,
//! once, in offset order, byte for byte what `/fetch` says, while writes land in concurrent
//! batches.
//!
//! Every wait is a read with a deadline; nothing asserts timing.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use support::{stream_http as http, Cluster};
use yakt::client::sse;

const SECS_30: Duration = Duration::from_secs(30);

/// Reads a `/stream` response until an event with an id at or past `head`; returns the
/// `record` events as `(id, data)` and panics on a `stream_error`, an early end or after
/// `timeout`.
async fn records_until(resp: reqwest::Response, head: u64, timeout: Duration) -> Vec<(u64, Value)> {
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(1 << 20);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        while let Some(e) = parser.next_event().expect("a well-formed SSE stream") {
            assert_ne!(e.event, "stream_error", "{}", e.data);
            let id: Option<u64> = e.id.as_deref().and_then(|v| v.parse().ok());
            if e.event == "record" {
                let id = id.expect("a record has an id");
                out.push((id, serde_json::from_str(&e.data).expect("record JSON")));
            }
            if id.is_some_and(|i| i >= head) {
                return out;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => parser.feed(&b).expect("a well-formed SSE stream"),
            Ok(Some(Err(e))) => panic!("stream failed after {} records: {e}", out.len()),
            Ok(None) => panic!("stream ended early after {} records", out.len()),
            Err(_) => panic!("stream timed out after {} records", out.len()),
        }
    }
}

/// Opens `/stream` from `start` on `addr`, with `names=` when `names` is given.
async fn open(addr: &str, start: u64, names: Option<&str>) -> reqwest::Response {
    let q = match names {
        Some(n) => format!("offset={start}&names={n}"),
        None => format!("offset={start}"),
    };
    let resp = http()
        .get(format!("http://{addr}/stream?{q}"))
        .send()
        .await
        .expect("open /stream");
    assert_eq!(resp.status(), 200);
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readers_at_the_tail_with_different_filters_each_get_exactly_their_records_in_order() {
    let c = Cluster::start(1, &["--progress-interval", "200ms"]).await;
    let l = c.leader(SECS_30).await;
    let start = c.create_topic(l, "before").await + 1;
    let addr = c.nodes[l].addr.clone();

    // Readers at the tail, opened before the writes: none, one and two names, several of each.
    let filters: Vec<Option<&str>> = [
        None,
        Some("TopicRecord"),
        Some("RegisterBrokerRecord"),
        Some("TopicRecord,RegisterBrokerRecord"),
    ]
    .into_iter()
    .cycle()
    .take(16)
    .collect();
    let mut opened = Vec::new();
    for f in &filters {
        opened.push(open(&addr, start, *f).await);
    }

    // Writes in concurrent batches: topics eight at a time while brokers register.
    let topics = c.create_topics(l, "t", 64);
    let brokers = async {
        let mut head = 0;
        for b in 0..24 {
            let (s, v) = c
                .post(
                    l,
                    "/register_broker",
                    json!({"brokerId": b, "brokerHost": "localhost", "brokerPort": 9092}),
                )
                .await;
            assert_eq!(s, 200, "register_broker: {v}");
            head = v["offset"].as_u64().expect("offset");
        }
        head
    };
    let (t, b) = futures::join!(topics, brokers);
    let head = t.max(b);
    c.wait_applied(l, head, SECS_30).await;

    let truth: Vec<Value> = c.records_from(l, start).await;
    // The premise of the filtered readers: a record they must skip lies between two they want,
    // so a run that joined across it would carry the skipped event's bytes.
    let names: Vec<&str> = truth.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(
        names
            .windows(3)
            .any(|w| w == ["TopicRecord", "RegisterBrokerRecord", "TopicRecord"]),
        "the writes interleave in the log: {names:?}"
    );

    // Readers opened after the writes read the same records from the log, where one read
    // encodes many of them, of both kinds, into one block.
    let mut filters = filters;
    for f in [
        None,
        Some("TopicRecord"),
        Some("RegisterBrokerRecord"),
        Some("TopicRecord,RegisterBrokerRecord"),
    ] {
        opened.push(open(&addr, start, f).await);
        filters.push(f);
    }

    let reads = futures::future::join_all(
        opened
            .into_iter()
            .map(|resp| records_until(resp, head, SECS_30)),
    )
    .await;
    for (f, got) in filters.iter().zip(reads) {
        let want: Vec<(u64, Value)> = truth
            .iter()
            .filter(|r| {
                f.is_none_or(|names| names.split(',').any(|n| r["name"] == n))
                    && r["offset"].as_u64().is_some_and(|o| o <= head)
            })
            .map(|r| (r["offset"].as_u64().expect("offset"), r.clone()))
            .collect();
        assert!(!want.is_empty());
        let got_ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        let want_ids: Vec<u64> = want.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            got_ids, want_ids,
            "filter {f:?}: every record once, in order"
        );
        for ((id, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(g, w, "filter {f:?}: record {id} as /fetch has it");
            assert_eq!(g["offset"].as_u64(), Some(*id), "id is the offset");
        }
    }
}
