//! Issue 15: streams a consumer can rely on, against real nodes: progress events and resuming
//! from them, `no_leader` after `--stale-after` and the client moving on, `416` beyond the
//! committed log, chunked snapshots of a large image (and the node's memory meanwhile), catch-up
//! `until` and `--catchup-max-records`, and the first bytes and headers of every stream.
//!
//! Every wait is a poll or a read with a deadline; nothing asserts timing.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use support::{eventually, stream_http as http, Cluster, PURGE_SOON};
use yakt::client::sse;
use yakt::client::{StreamClient, StreamItem, StreamOptions};

const SECS_30: Duration = Duration::from_secs(30);

/// One event of a raw stream: `(event, id, data)`.
type Ev = (String, Option<u64>, Value);

/// Reads `(event, id, data)` from an open `/stream` response until `done` says so; panics after
/// `timeout` or when the stream ends first.
async fn read_events(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    parser: &mut sse::Parser,
    timeout: Duration,
    mut done: impl FnMut(&Ev) -> bool,
) -> Vec<Ev> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        while let Some(e) = parser.next_event().expect("a well-formed SSE stream") {
            let id = e.id.as_deref().and_then(|v| v.parse().ok());
            let v: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
            let ev = (e.event, id, v);
            let stop = done(&ev);
            out.push(ev);
            if stop {
                return out;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => parser.feed(&b).expect("a well-formed SSE stream"),
            Ok(Some(Err(e))) => panic!("stream failed after {out:?}: {e}"),
            Ok(None) => panic!("stream ended early after {out:?}"),
            Err(_) => panic!(
                "stream timed out after {} events, last {:?}",
                out.len(),
                out.last()
            ),
        }
    }
}

/// Opens `/stream` on `addr` with `query` (and `Last-Event-ID` when given).
async fn open(addr: &str, query: &str, last_id: Option<u64>) -> reqwest::Response {
    let mut req = http().get(format!("http://{addr}/stream?{query}"));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    req.send().await.expect("open /stream")
}

/// The uuid of topic `name` as node `i` sees it.
async fn topic_uuid(c: &Cluster, i: usize, name: &str) -> Value {
    let (s, t) = c.get(i, &format!("/get_topic/{name}")).await;
    assert_eq!(s, 200, "get_topic: {t}");
    t["metadata"]["topicUUID"].clone()
}

/// Writes `n` partitions of topic `uuid` through node `i`; returns the last offset.
async fn write_partitions(c: &Cluster, i: usize, uuid: &Value, from: i32, n: i32) -> u64 {
    let mut head = 0;
    for p in from..from + n {
        let (s, v) = c
            .post(
                i,
                "/create_partition",
                json!({"partitionId": p, "topicUUID": uuid, "replicas": [1], "ISR": [1], "leader": 1}),
            )
            .await;
        assert_eq!(s, 200, "create_partition: {v}");
        head = v["offset"].as_u64().expect("offset");
    }
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_starts_with_retry_and_is_not_buffered_by_proxies() {
    let c = Cluster::start(1, &[]).await;
    c.create_topic(0, "a").await;
    let resp = open(&c.nodes[0].addr, "offset=0", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-accel-buffering")
            .and_then(|v| v.to_str().ok()),
        Some("no")
    );
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    let deadline = Instant::now() + SECS_30;
    while got.len() < 13 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => got.extend_from_slice(&b),
            other => panic!(
                "stream ended or timed out: {:?}",
                other.map(|o| o.is_some())
            ),
        }
    }
    assert!(
        got.starts_with(b"retry: 1000\n\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_beyond_the_committed_log_are_416_with_its_end() {
    let c = Cluster::start(1, &[]).await;
    let head = c.create_topic(0, "a").await;
    c.wait_applied(0, head, SECS_30).await;
    let addr = &c.nodes[0].addr;
    let v = c.cluster_view(0).await.expect("view");
    let end = v["commit_offset"].as_u64().expect("commit") + 1;
    for (what, resp) in [
        (
            "stream offset",
            open(addr, &format!("offset={}", end + 1), None).await,
        ),
        ("stream Last-Event-ID", open(addr, "", Some(end + 5)).await),
        (
            "fetch",
            http()
                .get(format!("http://{addr}/fetch?offset={}", end + 1))
                .send()
                .await
                .expect("fetch"),
        ),
    ] {
        assert_eq!(resp.status(), 416, "{what}");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(v["error"], "offset_out_of_range", "{what}: {v}");
        assert_eq!(v["log_end_offset"], end, "{what}: {v}");
        assert!(v["message"].is_string(), "{what}: {v}");
    }
    // The end itself is fine: a reader there waits for the next record.
    let resp = open(addr, &format!("offset={end}"), None).await;
    assert_eq!(resp.status(), 200);
    let (s, v) = c.get(0, &format!("/fetch?offset={end}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["commit_offset"], end - 1, "{v}");
    assert_eq!(v["leader_id"], 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_reader_gets_progress_and_resumes_from_it_with_nothing_missed_or_repeated() {
    let c = Cluster::start(3, &["--progress-interval", "200ms"]).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3;
    let (s, v) = c
        .post(
            l,
            "/register_broker",
            json!({"brokerId": 1, "brokerHost": "localhost", "brokerPort": 9092}),
        )
        .await;
    assert_eq!(s, 200, "register_broker: {v}");
    let t = c.create_topic(l, "base").await;
    c.wait_applied(f, t, SECS_30).await;
    let uuid = topic_uuid(&c, l, "base").await;
    let addr = c.nodes[f].addr.clone();

    let resp = open(&addr, &format!("names=TopicRecord&offset={}", t + 1), None).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(1 << 20);
    let head = write_partitions(&c, l, &uuid, 0, 12).await;
    let events = read_events(&mut body, &mut parser, SECS_30, |(e, id, _)| {
        e == "progress" && id.is_some_and(|i| i >= head)
    })
    .await;
    assert!(
        events.iter().all(|(e, _, _)| e == "progress"),
        "only progress events while nothing matches: {events:?}"
    );
    let mut ids: Vec<u64> = events.iter().filter_map(|(_, id, _)| *id).collect();
    ids.dedup();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let (_, last, data) = events.last().cloned().expect("a progress event");
    let last = last.expect("an id");
    for key in [
        "applied_offset",
        "commit_offset",
        "leader_id",
        "term",
        "node_id",
    ] {
        assert!(data.get(key).is_some(), "progress lacks {key}: {data}");
    }
    assert_eq!(data["node_id"], c.nodes[f].id);
    assert_eq!(data["applied_offset"], last);
    drop(body);

    // More filtered-out entries, then the next match; resume after the last progress id.
    write_partitions(&c, l, &uuid, 12, 3).await;
    let next = c.create_topic(l, "next").await;
    let resp = open(&addr, "names=TopicRecord", Some(last)).await;
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(1 << 20);
    let events = read_events(&mut body, &mut parser, SECS_30, |(e, _, _)| e == "record").await;
    let (_, id, rec) = events.last().cloned().expect("a record");
    assert_eq!(
        id,
        Some(next),
        "the next matching record, exactly: {events:?}"
    );
    assert_eq!(rec["fields"]["name"], "next");
    assert!(events[..events.len() - 1]
        .iter()
        .all(|(e, _, _)| e == "progress"));
}

/// Runs `client` in a task until it is stopped; its items come out of the channel, and the task
/// gives the client back (to ask where it went).
fn drive(
    mut client: StreamClient,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<StreamItem>,
    tokio::task::JoinHandle<StreamClient>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(item) = client.next().await {
            if tx.send(item).is_err() {
                break;
            }
        }
        client
    });
    (rx, task)
}

/// Items from `rx` until one at or past `head`.
async fn collect_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<StreamItem>,
    out: &mut Vec<StreamItem>,
    head: u64,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while out.last().is_none_or(|i| i.offset() < head) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(i)) => out.push(i),
            _ => panic!(
                "client stopped or timed out at {:?} waiting for {head}",
                out.last().map(StreamItem::offset)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_ends_its_streams_and_the_client_carries_on_elsewhere() {
    let c = Cluster::start(3, &["--stale-after", "1s", "--progress-interval", "200ms"]).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3;
    let o = (l + 2) % 3;
    let head = c.create_topics(l, "before", 5).await;
    c.wait_applied(f, head, SECS_30).await;

    // The client is given only the follower: it learns the others from /cluster.
    let opts = StreamOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(1),
        ..StreamOptions::default()
    };
    let client = StreamClient::new([c.nodes[f].addr.clone()], opts).expect("client");
    let stop = client.stop_handle();
    let (mut rx, task) = drive(client);
    let mut items = Vec::new();
    collect_until(&mut rx, &mut items, head, SECS_30).await;

    let addr = c.nodes[f].addr.clone();
    let strict = open(&addr, "offset=end", None).await;
    let lenient = open(&addr, "offset=end&require_leader=false", None).await;
    let (mut strict, mut lenient) = (strict.bytes_stream(), lenient.bytes_stream());
    let (mut ps, mut pl) = (sse::Parser::new(1 << 20), sse::Parser::new(1 << 20));

    c.nodes[l].signal(libc::SIGSTOP);
    c.nodes[o].signal(libc::SIGSTOP);
    let events = read_events(&mut strict, &mut ps, SECS_30, |(e, _, _)| {
        e == "stream_error"
    })
    .await;
    let (_, _, why) = events.last().cloned().expect("stream_error");
    assert_eq!(why["error"], "no_leader", "{why}");
    assert!(why["message"].is_string());
    // The lenient stream is still open: it says, with progress, that there is no leader.
    let events = read_events(&mut lenient, &mut pl, SECS_30, |(e, _, d)| {
        e == "progress" && d["leader_id"].is_null()
    })
    .await;
    assert!(events.iter().all(|(e, _, _)| e == "progress"), "{events:?}");
    read_events(&mut lenient, &mut pl, SECS_30, |(e, _, _)| e == "progress").await;

    c.nodes[l].signal(libc::SIGCONT);
    c.nodes[o].signal(libc::SIGCONT);
    let l2 = c.leader(SECS_30).await;
    let head2 = c.create_topics(l2, "after", 5).await;
    collect_until(&mut rx, &mut items, head2, Duration::from_secs(60)).await;
    stop.stop();
    let client = task.await.expect("client task");
    assert!(
        client.connects() >= 2,
        "the client reconnected after no_leader: {:?}",
        client.last_error()
    );
    assert!(
        client
            .last_error()
            .is_some_and(|e| e.contains("no_leader") || e.contains("127.0.0.1")),
        "{:?}",
        client.last_error()
    );

    let offsets: Vec<u64> = items.iter().map(StreamItem::offset).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets strictly increasing: {offsets:?}"
    );
    let got: Vec<Value> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Record(r) => Some(serde_json::to_value(r).expect("json")),
            _ => None,
        })
        .collect();
    let want = c.records_from(l2, 0).await;
    let want: Vec<Value> = want
        .into_iter()
        .filter(|r| r["offset"].as_u64().is_some_and(|o| o <= head2))
        .collect();
    assert_eq!(got, want, "every record exactly once, in order");
}

/// A leader keeps calling itself leader when it is cut off (openraft has no check-quorum
/// step-down), so its own streams must still end; an idle, healthy leader's must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_followers_ends_its_streams_and_a_healthy_idle_one_does_not() {
    let c = Cluster::start(3, &["--stale-after", "1s", "--progress-interval", "200ms"]).await;
    let l = c.leader(SECS_30).await;
    let head = c.create_topics(l, "before", 1).await;
    for i in 0..3 {
        c.wait_applied(i, head, SECS_30).await;
    }
    let stream = open(&c.nodes[l].addr, "offset=end", None).await;
    let mut body = stream.bytes_stream();
    let mut parser = sse::Parser::new(1 << 20);

    // Idle and healthy: twenty progress events (four times --stale-after), never a cut-off.
    let mut progress = 0;
    let idle = read_events(&mut body, &mut parser, SECS_30, |(e, _, _)| {
        progress += usize::from(e == "progress");
        progress >= 20 || e == "stream_error"
    })
    .await;
    assert!(
        idle.iter().all(|(e, _, _)| e == "progress"),
        "a healthy leader's idle stream was cut off: {idle:?}"
    );

    let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    for &i in &others {
        c.nodes[i].signal(libc::SIGSTOP);
    }
    let cut = read_events(&mut body, &mut parser, SECS_30, |(e, _, _)| {
        e == "stream_error"
    })
    .await;
    let (_, _, why) = cut.last().cloned().expect("stream_error");
    assert_eq!(why["error"], "no_leader", "{why}");
    for &i in &others {
        c.nodes[i].signal(libc::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_answers_carry_until_and_switch_to_snapshot_past_max_records() {
    let c = Cluster::start(1, &["--catchup-max-records", "5"]).await;
    let first = c.create_topic(0, "t0").await;
    let head = c.create_topics(0, "few", 2).await;
    c.wait_applied(0, head, SECS_30).await;
    let recs = c.records_from(0, first).await;
    let since = recs[0]["timestamp"].as_u64().expect("timestamp");
    let newest = recs
        .iter()
        .map(|r| r["timestamp"].as_u64().expect("ts"))
        .max()
        .expect("records");
    let (s, v) = c.get(0, &format!("/broker_mgmt/{since}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["mode"], "delta", "{v}");
    assert_eq!(v["until"], newest, "until is the newest record's time: {v}");
    assert_eq!(
        v["metadata"]["TopicRecord"].as_array().map(Vec::len),
        Some(3)
    );
    // Past five records since then: the image, with until the newest time it includes.
    let head = c.create_topics(0, "many", 6).await;
    c.wait_applied(0, head, SECS_30).await;
    let newest = c
        .records_from(0, head)
        .await
        .last()
        .and_then(|r| r["timestamp"].as_u64())
        .expect("newest");
    let (s, v) = c.get(0, &format!("/client_mgmt/{since}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["mode"], "snapshot", "{v}");
    assert_eq!(v["until"], newest, "{v}");
    let (_, image) = c.get(0, "/get_metadata").await;
    let mut want = image["metadata"].clone();
    want.as_object_mut()
        .expect("object")
        .remove("ProducerIdsRecord");
    assert_eq!(v["metadata"], want);
}

/// The node's peak resident memory since its last reset, KiB.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Names of about 220 bytes, so a few thousand topics make megabytes of image.
fn long_name(k: usize) -> String {
    format!("{k:06}-{}", "m".repeat(210))
}

/// Creates topics `long_name(0..n)` on node `i`, 64 at a time.
async fn create_many(c: &Cluster, i: usize, n: usize) -> u64 {
    let mut head = 0;
    let names: Vec<String> = (0..n).map(long_name).collect();
    for chunk in names.chunks(64) {
        let offs = futures::future::join_all(chunk.iter().map(|t| c.create_topic(i, t))).await;
        head = head.max(offs.into_iter().max().unwrap_or(0));
    }
    head
}

/// Reads one stream from offset 0 until the image is complete: the chunk payload sizes and the
/// lists of all chunks joined, or (an old node) the one `snapshot` event's.
async fn read_image(addr: String) -> (Vec<usize>, Value) {
    let resp = open(&addr, "offset=0", None).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(256 << 20);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut sizes = Vec::new();
    let mut lists = serde_json::Map::new();
    loop {
        while let Some(e) = parser.next_event().expect("well-formed") {
            match e.event.as_str() {
                "snapshot_chunk" => {
                    // The whole event: id-less `event:` and `data:` lines.
                    sizes.push("event: snapshot_chunk\ndata: \n\n".len() + e.data.len());
                    let v: Value = serde_json::from_str(&e.data).expect("chunk json");
                    for (name, list) in v["metadata"].as_object().expect("metadata") {
                        let into = lists
                            .entry(name.clone())
                            .or_insert_with(|| Value::Array(Vec::new()));
                        into.as_array_mut()
                            .expect("list")
                            .extend(list.as_array().expect("list").iter().cloned());
                    }
                }
                "snapshot_end" => return (sizes, Value::Object(lists)),
                "snapshot" => {
                    let v: Value = serde_json::from_str(&e.data).expect("snapshot json");
                    return (vec![e.data.len()], v["metadata"].clone());
                }
                "record" => panic!("a record before the image: the log start did not move"),
                _ => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => parser.feed(&b).expect("well-formed"),
            other => panic!("image stream ended: {:?}", other.map(|o| o.is_some())),
        }
    }
}

/// A node whose image is several MiB, read from below its log start by twenty readers at once:
/// each gets the image in chunks of at most 1 MiB that together are `/get_metadata`'s image.
/// The node's peak memory while they read is printed (docs/performance.md has the figures);
/// `YAKT_RSS_BIN` runs the same scenario on another build of the node (one that sends the image
/// as one `snapshot` event is read that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: writes about 16,000 topics"]
async fn twenty_readers_below_the_log_start_of_a_large_image_get_it_in_bounded_chunks() {
    let topics: usize = std::env::var("YAKT_RSS_TOPICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16_000);
    let mut c = Cluster::empty(PURGE_SOON);
    if let Ok(bin) = std::env::var("YAKT_RSS_BIN") {
        // Another build: spawn it in the same way.
        let i = c.add_node();
        c.nodes[i].kill();
        let _ = std::fs::remove_dir_all(&c.nodes[i].data_dir);
        let mut cmd = std::process::Command::new(bin);
        let log = std::fs::File::create(&c.nodes[i].log_path).expect("log");
        cmd.args(&c.nodes[i].args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        c.nodes[i].child = Some(cmd.spawn().expect("spawn the other build"));
    } else {
        c.add_node();
    }
    c.wait_voters(1, SECS_30).await;
    let head = create_many(&c, 0, topics).await;
    c.wait_applied(0, head, SECS_30).await;
    eventually(SECS_30, "the log start past offset 1", || async {
        let v = c.cluster_view(0).await?;
        (v["log_start_offset"].as_u64()? > 1).then_some(())
    })
    .await;
    let (s, image) = c.get(0, "/get_metadata").await;
    assert_eq!(s, 200);
    let image = image["metadata"].clone();
    let image_bytes = image.to_string().len();
    assert!(image_bytes > 3 << 20, "image of {image_bytes} bytes");

    let pid = c.nodes[0].child.as_ref().expect("running").id();
    let before = vm_hwm(pid);
    // Reset the peak to the current resident size, so the peak read afterwards is the readers'.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let rss = vm_hwm(pid);
    let readers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(read_image(c.nodes[0].addr.clone())))
        .collect();
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await.expect("reader"));
    }
    let peak = vm_hwm(pid);
    println!(
        "image {image_bytes} bytes ({topics} topics): VmHWM {before} KiB after the writes, \
         {rss} KiB before the readers, {peak} KiB peak with 20 readers (+{} KiB)",
        peak.saturating_sub(rss)
    );
    for (sizes, lists) in &results {
        if std::env::var("YAKT_RSS_BIN").is_err() {
            assert!(sizes.len() > 3, "{} chunks", sizes.len());
            assert!(sizes.iter().all(|&n| n <= 1 << 20), "chunk sizes {sizes:?}");
        }
        assert_eq!(lists, &image, "the chunks together are the image");
    }
}
