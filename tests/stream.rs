//! Issue 5: reading the log by offset (`GET /stream`, `GET /fetch`) against real three-node
//! clusters, with the library's `StreamClient` and with lean raw readers.
//!
//! Every wait is a poll or a read with a deadline; nothing asserts timing.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use support::{dump, eventually, stream_http as http, Cluster, PURGE_SOON};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yakt::client::sse;
use yakt::client::{ClientError, ImageFold, StartAt, StreamClient, StreamItem, StreamOptions};

const SECS_30: Duration = Duration::from_secs(30);

fn opts() -> StreamOptions {
    StreamOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..StreamOptions::default()
    }
}

fn client_on(c: &Cluster, order: &[usize], opts: StreamOptions) -> StreamClient {
    StreamClient::new(order.iter().map(|&i| c.nodes[i].addr.clone()), opts).expect("client")
}

/// Reads items until one at or past `head`, or panics after `timeout`.
async fn read_until(client: &mut StreamClient, head: u64, timeout: Duration) -> Vec<StreamItem> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.last().is_none_or(|i: &StreamItem| i.offset() < head) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next()).await {
            Ok(Ok(item)) => out.push(item),
            Ok(Err(e)) => panic!("stream client failed: {e}"),
            Err(_) => panic!(
                "timed out reading to offset {head}; got up to {:?}, last error {:?}",
                out.last().map(StreamItem::offset),
                client.last_error()
            ),
        }
    }
    out
}

/// The records among stream items, as the API's JSON.
fn record_values(items: &[StreamItem]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Record(r) => Some(serde_json::to_value(r).expect("record json")),
            StreamItem::Snapshot { .. } | StreamItem::Progress(_) => None,
        })
        .collect()
}

fn assert_strictly_increasing(offsets: &[u64]) {
    for w in offsets.windows(2) {
        assert!(w[0] < w[1], "offsets not strictly increasing: {w:?}");
    }
}

/// POSTs a topic to `addr` with its own client, retrying while there is no leader.
async fn post_topic(http: &reqwest::Client, addr: &str, name: &str) -> u64 {
    let deadline = Instant::now() + SECS_30;
    loop {
        let r = http
            .post(format!("http://{addr}/create_topic"))
            .json(&json!({ "name": name }))
            .send()
            .await;
        if let Ok(resp) = r {
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            match status {
                200 => return v["offset"].as_u64().expect("offset"),
                503 => {}
                other => panic!("create_topic {name}: {other} {v}"),
            }
        }
        assert!(Instant::now() < deadline, "could not create topic {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw SSE reader (the library's parser, not the failover client): `(event, id, data)` triples
/// (progress events left out) from an open `/stream` response, until
/// `done` says so, or panics after `timeout`.
async fn raw_events(
    resp: reqwest::Response,
    timeout: Duration,
    mut done: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Option<u64>, Value)> {
    let deadline = Instant::now() + timeout;
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(64 << 20);
    let mut out = Vec::new();
    loop {
        while let Some(event) = parser.next_event().expect("a well-formed SSE stream") {
            // Progress events come whenever a reader waits (tests/stream_consumer.rs checks them).
            if event.event.is_empty() || event.event == "progress" {
                continue;
            }
            let id = event.id.as_deref().and_then(|v| v.parse().ok());
            let v: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let stop = done(&event.event, &v);
            out.push((event.event, id, v));
            if stop {
                return out;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => parser.feed(&b).expect("a well-formed SSE stream"),
            Ok(Some(Err(e))) => panic!("raw stream failed: {e}"),
            Ok(None) => panic!("raw stream ended early after {} events", out.len()),
            Err(_) => panic!("raw stream timed out after {} events", out.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reader_from_zero_gets_exactly_the_leaders_logged_records() {
    let c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let follower = (leader + 1) % 3;
    c.create_topics(leader, "via-leader", 15).await;
    let head = c.create_topics(follower, "via-follower", 15).await;
    c.wait_applied(follower, head, SECS_30).await;

    let mut client = client_on(
        &c,
        &[follower],
        StreamOptions {
            start: StartAt::Offset(0),
            ..opts()
        },
    );
    let items = read_until(&mut client, head, SECS_30).await;
    assert!(
        items.iter().all(|i| matches!(i, StreamItem::Record(_))),
        "nothing was purged, so no snapshot event is expected"
    );
    let got: Vec<(u64, String, Value)> = record_values(&items)
        .into_iter()
        .map(|r| {
            (
                r["offset"].as_u64().expect("offset"),
                r["name"].as_str().expect("name").to_string(),
                r["fields"].clone(),
            )
        })
        .collect();
    let offsets: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_strictly_increasing(&offsets);

    let dir = c.data_dir(leader).display().to_string();
    let (code, out, err) = dump(&["--json", &dir]);
    assert_eq!(code, 0, "yakt-dump --json {dir}: {err}");
    let entries: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "entry" && v["index"].as_u64().is_some_and(|i| i <= head))
        .collect();
    let raft_own: HashSet<u64> = entries
        .iter()
        .filter(|v| v["name"] == "Blank" || v["name"] == "Membership")
        .filter_map(|v| v["index"].as_u64())
        .collect();
    let want: Vec<(u64, String, Value)> = entries
        .iter()
        .filter(|v| v["name"].is_string() && v["name"] != "Blank" && v["name"] != "Membership")
        .map(|v| {
            (
                v["index"].as_u64().expect("index"),
                v["name"].as_str().expect("name").to_string(),
                v["fields"].clone(),
            )
        })
        .collect();
    assert_eq!(want.len(), 30, "the leader's dump should hold 30 records");
    assert_eq!(
        got, want,
        "stream on the follower vs the leader's segment files"
    );
    // No gaps except Raft's own entries.
    for w in offsets.windows(2) {
        for gap in w[0] + 1..w[1] {
            assert!(
                raft_own.contains(&gap),
                "offset {gap} is missing and is not Raft's own entry"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_last_event_id_and_loses_nothing() {
    let c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let reader = (leader + 2) % 3;
    let first = c.create_topics(leader, "before", 12).await;

    // Read part of the log, then drop the client (and its connection) mid-stream.
    let mut client = client_on(&c, &[reader], opts());
    let mut items = Vec::new();
    while items.len() < 5 {
        items.push(client.next().await.expect("item"));
    }
    let last = client.last_event_id().expect("a last event id");
    assert!(last < first);
    drop(client);

    let head = c.create_topics(leader, "after", 12).await;
    c.wait_applied(reader, head, SECS_30).await;

    // Reconnect by hand with Last-Event-ID: the server resumes right after it.
    let resp = http()
        .get(format!("http://{}/stream", c.nodes[reader].addr))
        .header("Last-Event-ID", last.to_string())
        .send()
        .await
        .expect("reconnect");
    assert_eq!(resp.status(), 200);
    let events = raw_events(resp, SECS_30, |ev, v| {
        ev == "record" && v["offset"].as_u64().is_some_and(|o| o >= head)
    })
    .await;
    let mut all = record_values(&items);
    for (ev, id, v) in events {
        assert_eq!(ev, "record");
        assert_eq!(id, v["offset"].as_u64(), "id: is the offset");
        all.push(v);
    }
    let expected = c.records_from(leader, 0).await;
    assert_eq!(all, expected, "every record exactly once, in order");

    // The client's own disconnect/reconnect path does the same.
    let mut client = client_on(&c, &[reader], opts());
    let mut items = Vec::new();
    while items.len() < 7 {
        items.push(client.next().await.expect("item"));
    }
    client.disconnect();
    items.extend(read_until(&mut client, head, SECS_30).await);
    assert_eq!(client.connects(), 2);
    assert_eq!(record_values(&items), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_node_is_killed_moves_on_and_gets_every_record_once() {
    let mut c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let victim = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    c.create_topics(leader, "warmup", 5).await;

    let mut client = client_on(&c, &[victim, other, leader], opts());
    let mut items = Vec::new();
    while items.len() < 3 {
        items.push(client.next().await.expect("item"));
    }

    // Writes continue from another task while the reader's node dies.
    let addr = c.nodes[leader].addr.clone();
    let writer = tokio::spawn(async move {
        let http = http();
        let mut head = 0;
        for k in 0..40 {
            head = post_topic(&http, &addr, &format!("during-{k}")).await;
        }
        head
    });
    while items.len() < 8 {
        items.push(client.next().await.expect("item"));
    }
    c.nodes[victim].kill();

    // Read until the writer is done. The writer can finish while `next()` waits for a record
    // that will never come, so wait on both (`next()` is cancel-safe).
    let deadline = Instant::now() + SECS_30;
    let mut writer = writer;
    let head = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            done = &mut writer => break done.expect("writer"),
            item = tokio::time::timeout(left, client.next()) => match item {
                Ok(Ok(item)) => items.push(item),
                Ok(Err(e)) => panic!("client: {e}"),
                Err(_) => panic!("timed out while writes were running"),
            },
        }
    };
    if items.last().is_none_or(|i| i.offset() < head) {
        items.extend(read_until(&mut client, head, SECS_30).await);
    }
    assert!(client.connects() >= 2, "the client should have reconnected");
    assert_ne!(
        client.current_node(),
        format!("http://{}", c.nodes[victim].addr)
    );
    let got = record_values(&items);
    let expected = c.records_from(leader, 0).await;
    assert_eq!(got, expected, "every record exactly once, in order");
}

/// Registers brokers, a partition, a producer and a broker change through node `i`.
async fn write_mixed(c: &Cluster, i: usize, topic: &str) -> u64 {
    let mut head = 0;
    for (b, port) in [(1, 9092), (2, 9093)] {
        let (s, v) = c
            .post(
                i,
                "/register_broker",
                json!({"brokerId": b, "brokerHost": "localhost", "brokerPort": port}),
            )
            .await;
        assert_eq!(s, 200, "register_broker: {v}");
        head = head.max(v["offset"].as_u64().expect("offset"));
    }
    let (s, t) = c.get(i, &format!("/get_topic/{topic}")).await;
    assert_eq!(s, 200, "get_topic: {t}");
    let uuid = t["metadata"]["topicUUID"].clone();
    let (s, v) = c
        .post(
            i,
            "/create_partition",
            json!({"partitionId": 0, "topicUUID": uuid, "replicas": [1, 2], "ISR": [1], "leader": 1}),
        )
        .await;
    assert_eq!(s, 200, "create_partition: {v}");
    let (s, v) = c.post(i, "/register_producer/1", json!({})).await;
    assert_eq!(s, 200, "register_producer: {v}");
    let (s, v) = c
        .put(
            i,
            "/broker_registration_change",
            json!({"brokerId": 2, "brokerStatus": "FENCED"}),
        )
        .await;
    assert_eq!(s, 200, "broker_registration_change: {v}");
    head.max(v["offset"].as_u64().expect("offset"))
}

/// Writes until node `i`'s log start has moved past offset 2 (a snapshot purged segments).
async fn write_until_purged(c: &Cluster, i: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut head = 0;
    for round in 0.. {
        head = head.max(c.create_topics(i, &format!("fill{round}"), 24).await);
        c.wait_applied(i, head, SECS_30).await;
        let v = c.cluster_view(i).await.expect("cluster view");
        if v["log_start_offset"].as_u64().is_some_and(|s| s > 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the log start never moved: {v}");
    }
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_below_the_log_start_gets_the_snapshot_then_the_rest() {
    let c = Cluster::start(3, PURGE_SOON).await;
    let leader = c.leader(SECS_30).await;
    let reader = (leader + 1) % 3;
    c.create_topic(leader, "early").await;
    write_mixed(&c, leader, "early").await;
    write_until_purged(&c, reader).await;
    let head = c.create_topics(leader, "late", 6).await;
    c.wait_applied(reader, head, SECS_30).await;

    let mut client = client_on(&c, &[reader], opts());
    let items = read_until(&mut client, head, SECS_30).await;
    let StreamItem::Snapshot { offset: snap, .. } = &items[0] else {
        panic!("the first item should be a snapshot: {:?}", items[0]);
    };
    assert!(
        items[1..]
            .iter()
            .all(|i| matches!(i, StreamItem::Record(_))),
        "one snapshot, then records"
    );
    let offsets: Vec<u64> = items.iter().map(StreamItem::offset).collect();
    assert_strictly_increasing(&offsets);
    let mut fold = ImageFold::new();
    for item in &items {
        fold.apply(item).expect("fold");
    }
    assert_eq!(fold.refused(), 0);
    let (s, v) = c.get(reader, "/get_metadata").await;
    assert_eq!(s, 200);
    assert_eq!(
        fold.metadata_json(),
        v["metadata"],
        "snapshot at {snap} + records folded vs /get_metadata"
    );
    assert!(!v["metadata"]["PartitionRecord"]
        .as_array()
        .expect("partitions")
        .is_empty());
    // The records after the snapshot are the node's log from there.
    let rest = c.records_from(reader, snap + 1).await;
    assert_eq!(record_values(&items[1..]), rest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_readers_on_one_node_each_get_every_record() {
    const READERS: usize = 200;
    let c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let node = (leader + 1) % 3;
    c.create_topics(leader, "pre", 5).await;

    let http = http();
    let url = format!("http://{}/stream?offset=0", c.nodes[node].addr);
    // Counts readers whose response has started: the server has registered them by then.
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let req = http.get(&url);
        let connected = connected.clone();
        readers.push(tokio::spawn(async move {
            let resp = req.send().await.expect("connect");
            assert_eq!(resp.status(), 200);
            connected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let events = raw_events(resp, Duration::from_secs(50), |ev, v| {
                ev == "record" && v["fields"]["name"] == "the-end"
            })
            .await;
            events
                .into_iter()
                .map(|(ev, _, v)| {
                    assert_eq!(ev, "record");
                    v["offset"].as_u64().expect("offset")
                })
                .collect::<Vec<u64>>()
        }));
    }
    eventually(SECS_30, "200 readers connected", || async {
        (connected.load(std::sync::atomic::Ordering::SeqCst) == READERS).then_some(())
    })
    .await;

    c.create_topics(leader, "during", 30).await;
    c.create_topic(leader, "the-end").await;
    let expected: Vec<u64> = c
        .records_from(leader, 0)
        .await
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    for r in readers {
        assert_eq!(r.await.expect("reader task"), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_end_delivers_only_what_comes_after() {
    let c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let node = (leader + 1) % 3;
    let before = c.create_topics(leader, "old", 4).await;
    c.wait_applied(node, before, SECS_30).await;

    // offset=end: the position is fixed when the response starts.
    let resp = http()
        .get(format!("http://{}/stream?offset=end", c.nodes[node].addr))
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let mut new = Vec::new();
    for k in 0..3 {
        new.push(c.create_topic(leader, &format!("new-{k}")).await);
    }
    let last = *new.last().expect("offsets");
    let events = raw_events(resp, SECS_30, |_, v| v["offset"].as_u64() == Some(last)).await;
    let got: Vec<u64> = events
        .iter()
        .map(|(_, _, v)| v["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(got, new, "only the records after the start");

    // The library's StartAt::End, once it has reached a node, sees what follows.
    let mut client = client_on(
        &c,
        &[node],
        StreamOptions {
            start: StartAt::End,
            ..opts()
        },
    );
    let stop = client.stop_handle();
    let mut reader = tokio::spawn(async move {
        let item = client.next().await;
        (item, client)
    });
    // The reader's position is fixed when it reaches the node, which may come after a write:
    // write until it has an item (one write was a race: a write that committed before the
    // reader connected is behind its end, and the reader waited forever).
    let deadline = Instant::now() + SECS_30;
    let mut one;
    let mut n = 0;
    let (item, mut client) = loop {
        one = c.create_topic(leader, &format!("after-end-{n}")).await;
        n += 1;
        match tokio::time::timeout(Duration::from_millis(300), &mut reader).await {
            Ok(done) => break done.expect("reader"),
            Err(_) => assert!(
                Instant::now() < deadline,
                "a StartAt::End reader saw none of {n} writes after it started"
            ),
        }
    };
    let item = item.expect("an item");
    assert!(item.offset() > last && item.offset() <= one, "{item:?}");
    stop.stop();
    assert!(matches!(client.next().await, Err(ClientError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_filter_delivers_only_the_named_records() {
    let c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let node = (leader + 1) % 3;
    c.create_topics(leader, "old", 4).await;

    // names=TopicRecord: only those arrive, among brokers, partitions, producers and changes.
    let head = write_mixed(&c, leader, "old-0").await;
    let tail = c.create_topic(leader, "tail").await;
    assert!(tail > head);
    let mut client = client_on(
        &c,
        &[node],
        StreamOptions {
            names: vec!["TopicRecord".into()],
            ..opts()
        },
    );
    let items = read_until(&mut client, tail, SECS_30).await;
    let expected: Vec<Value> = c
        .records_from(leader, 0)
        .await
        .into_iter()
        .filter(|r| r["name"] == "TopicRecord")
        .collect();
    assert_eq!(record_values(&items), expected);

    // An unknown name is refused, not retried forever.
    let mut bad = client_on(
        &c,
        &[node],
        StreamOptions {
            names: vec!["NoSuchRecord".into()],
            ..opts()
        },
    );
    match bad.next().await {
        Err(ClientError::Rejected { status: 400, .. }) => {}
        other => panic!("expected a 400 rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_polls_pages_and_answers_a_snapshot_below_the_log_start() {
    let c = Cluster::start(3, PURGE_SOON).await;
    let leader = c.leader(SECS_30).await;
    let node = (leader + 1) % 3;
    let head = write_until_purged(&c, node).await;

    // Below the log start: the snapshot, and where to continue.
    let (s, v) = c.get(node, "/fetch?offset=0").await;
    assert_eq!(s, 200, "{v}");
    let snap = v["snapshot"]["offset"].as_u64().expect("a snapshot");
    assert_eq!(v["next_offset"].as_u64(), Some(snap + 1));
    assert!(v["snapshot"]["metadata"]["TopicRecord"].is_array());
    assert!(v["log_start_offset"].as_u64().expect("log start") > 1);

    // max_records is respected (the snapshot answered is the image at the applied offset, so
    // read from the log start for a page of records).
    let start = v["log_start_offset"].as_u64().expect("log start");
    assert!(start <= snap);
    let (s, v) = c
        .get(node, &format!("/fetch?offset={start}&max_records=3"))
        .await;
    assert_eq!(s, 200, "{v}");
    let recs = v["records"].as_array().expect("records");
    assert_eq!(recs.len(), 3, "{v}");
    assert_eq!(
        v["next_offset"].as_u64(),
        Some(recs[2]["offset"].as_u64().expect("offset") + 1)
    );

    // Nothing new: a short wait answers an empty page at the head.
    let at = c.cluster_view(node).await.expect("view")["applied_offset"]
        .as_u64()
        .expect("applied")
        + 1;
    assert!(at > head);
    let (s, v) = c
        .get(node, &format!("/fetch?offset={at}&wait_ms=200"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"], json!([]));
    assert_eq!(v["next_offset"].as_u64(), Some(at));

    // A long poll at the head returns with the record written meanwhile by another task.
    let url = format!(
        "http://{}/fetch?offset={at}&wait_ms=5000",
        c.nodes[node].addr
    );
    let poll = tokio::spawn(async move {
        let v: Value = http()
            .get(url)
            .send()
            .await
            .expect("fetch")
            .json()
            .await
            .expect("json");
        v
    });
    let written = c.create_topic(leader, "long-polled").await;
    let v = poll.await.expect("poll task");
    let recs = v["records"].as_array().expect("records");
    assert!(
        recs.iter()
            .any(|r| r["offset"].as_u64() == Some(written) && r["fields"]["name"] == "long-polled"),
        "the long poll should return the new record: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_cut_off_and_the_node_serves_on() {
    let c = Cluster::start(3, &["--slow-reader-timeout", "1s"]).await;
    let leader = c.leader(SECS_30).await;
    let addr = c.nodes[leader].addr.clone();

    // A raw reader with a tiny receive buffer that sends its request and never reads.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = sock
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    stalled
        .write_all(
            format!(
                "GET /stream?offset=0 HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("request");

    // Write (long topic names: bigger events) until the node reports the cut-off.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..12 {
        let (addr, stop) = (addr.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = http();
            let mut k = 0;
            let pad = "x".repeat(200);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                post_topic(&http, &addr, &format!("{pad}-{w}-{k}")).await;
                k += 1;
            }
        }));
    }
    eventually(
        Duration::from_secs(50),
        "the node cuts off the slow reader",
        || async { c.nodes[leader].log().contains("slow_reader").then_some(()) },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }

    // Reading at last: the buffered events, then the error event, then the end.
    let mut raw = Vec::new();
    tokio::time::timeout(SECS_30, stalled.read_to_end(&mut raw))
        .await
        .expect("the cut-off reader's connection should end")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let tail = &text[text.len().saturating_sub(2000)..];
    assert!(
        tail.contains("event: stream_error") && tail.contains("slow_reader"),
        "expected a slow_reader error event at the end: {tail}"
    );

    // The node keeps serving: a new reader gets everything.
    let head = c.create_topic(leader, "still-serving").await;
    let mut client = client_on(&c, &[leader], opts());
    let items = read_until(&mut client, head, Duration::from_secs(50)).await;
    let offsets: Vec<u64> = items.iter().map(StreamItem::offset).collect();
    assert_strictly_increasing(&offsets);
    // So many records were written that the start of the log may have been purged meanwhile.
    let (from, records) = match &items[0] {
        StreamItem::Snapshot { offset, .. } => (offset + 1, &items[1..]),
        StreamItem::Record(_) | StreamItem::Progress(_) => (0, &items[..]),
    };
    assert_eq!(record_values(records), c.records_from(leader, from).await);
}
