//! Adversarial readers against real three-node clusters: readers attached to a follower that is
//! frozen (SIGSTOP) while the leader writes and purges past it, so that on SIGCONT it installs the
//! leader's snapshot under them. Every reader must see each offset at most once, in increasing
//! order, end up with the leader's image, and never a record the log did not commit.
//!
//! Every wait is a poll or a read with a deadline; nothing asserts timing.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use support::{eventually, stream_http as http, Cluster, PURGE_SOON};
use yakt::client::{ImageFold, StreamClient, StreamItem, StreamOptions};

const SECS_60: Duration = Duration::from_secs(60);

/// The topic written last: every reader reads until it sees it.
const LAST_TOPIC: &str = "the-end";

/// One server-sent event as the server sent it: `(event, id, data)`.
type RawEvent = (String, Option<u64>, Value);

/// Reads `/stream` at `url` with no client-side deduplication until the record of
/// [`LAST_TOPIC`] arrives.
async fn raw_stream(url: String, timeout: Duration) -> Vec<RawEvent> {
    let deadline = Instant::now() + timeout;
    let resp = http().get(&url).send().await.expect("open stream");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut ev, mut id, mut data) = (String::new(), None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            // Progress and the first parts of a chunked snapshot are not items; its end
            // (`id:` the image's offset) stands for the snapshot.
            if ev.is_empty() || ev == "progress" || ev == "snapshot_begin" || ev == "snapshot_chunk"
            {
                continue;
            }
            if ev == "snapshot_end" {
                ev = "snapshot".into();
            }
            let v: Value = serde_json::from_str(&data).expect("event data is JSON");
            let last = v["fields"]["name"] == LAST_TOPIC;
            out.push((ev, id, v));
            if last {
                return out;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => buf.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Err(e))) => panic!("{url}: stream failed after {} events: {e}", out.len()),
            Ok(None) => panic!("{url}: stream ended after {} events", out.len()),
            Err(_) => panic!("{url}: timed out after {} events", out.len()),
        }
    }
}

/// Pages through `/fetch` from `from` (long-polling) until the record of [`LAST_TOPIC`]:
/// `(offset, is_snapshot, record)` for every snapshot and record of every page.
async fn fetch_pages(addr: String, from: u64, timeout: Duration) -> Vec<(u64, bool, Value)> {
    let deadline = Instant::now() + timeout;
    let http = http();
    let mut next = from;
    let mut out = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "fetch from {from} timed out at {next}"
        );
        let url = format!("http://{addr}/fetch?offset={next}&max_records=7&wait_ms=1000");
        let Ok(resp) = http.get(&url).send().await else {
            continue;
        };
        let v: Value = resp.json().await.expect("fetch page");
        if let Some(s) = v.get("snapshot") {
            out.push((s["offset"].as_u64().expect("offset"), true, s.clone()));
        }
        for r in v["records"].as_array().expect("records") {
            out.push((r["offset"].as_u64().expect("offset"), false, r.clone()));
            if r["fields"]["name"] == LAST_TOPIC {
                return out;
            }
        }
        let n = v["next_offset"].as_u64().expect("next_offset");
        assert!(n >= next, "next_offset went back from {next} to {n}: {v}");
        next = n;
    }
}

fn applied(view: &Value) -> u64 {
    view["applied_offset"].as_u64().expect("applied_offset")
}

fn assert_strictly_increasing(what: &str, offsets: &[u64]) {
    for w in offsets.windows(2) {
        assert!(
            w[0] < w[1],
            "{what}: offsets not strictly increasing: {w:?}"
        );
    }
}

/// The records among `(offset, is_snapshot, value)` items after the last snapshot.
fn records_after_last_snapshot(items: &[(u64, bool, Value)]) -> (Option<u64>, Vec<Value>) {
    let last_snap = items.iter().rposition(|(_, s, _)| *s);
    let snap_offset = last_snap.map(|k| items[k].0);
    let from = last_snap.map_or(0, |k| k + 1);
    (
        snap_offset,
        items[from..].iter().map(|(_, _, v)| v.clone()).collect(),
    )
}

/// Adversary: a follower with readers at its tail (an unfiltered `/stream`, a `?names=` one,
/// and a long-polling `/fetch`) is frozen while the leader writes and purges its log past the
/// follower's position, then thawed: it must install the leader's snapshot under the readers.
/// Each reader gets every offset at most once and in order, a snapshot where the log was cut,
/// then exactly the leader's records; the unfiltered one folds into the follower's image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a follower frozen while the leader purges past it"]
async fn readers_on_a_follower_that_installs_the_leaders_snapshot_miss_nothing_twice_or_never() {
    let c = Cluster::start(3, PURGE_SOON).await;
    let leader = c.leader(SECS_60).await;
    let f = (leader + 1) % 3;
    let head = c.create_topics(leader, "early", 10).await;
    c.wait_applied(f, head, SECS_60).await;
    let tail = applied(&c.cluster_view(f).await.expect("view")) + 1;
    let addr = c.nodes[f].addr.clone();

    // Readers at the follower's tail, and one from the beginning.
    let opts = StreamOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(300),
        ..StreamOptions::default()
    };
    let mut client = StreamClient::new([addr.clone()], opts).expect("client");
    let from_zero = tokio::spawn(async move {
        let mut items = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let item = tokio::time::timeout(left, client.next())
                .await
                .expect("stream client timed out")
                .expect("stream client failed");
            let last = matches!(&item, StreamItem::Record(r) if r.fields["name"] == LAST_TOPIC);
            items.push(item);
            if last {
                return (items, client.duplicates_dropped(), client.connects());
            }
        }
    });
    let all_tail = tokio::spawn(raw_stream(
        format!("http://{addr}/stream?offset={tail}"),
        Duration::from_secs(180),
    ));
    let topics_tail = tokio::spawn(raw_stream(
        format!("http://{addr}/stream?offset={tail}&names=TopicRecord"),
        Duration::from_secs(180),
    ));
    let pager = tokio::spawn(fetch_pages(addr.clone(), tail, Duration::from_secs(180)));
    // The SSE readers are attached before the freeze (the node counts them); the pager
    // long-polls at the tail and needs no wait.
    let metrics = format!("http://{addr}/metrics");
    eventually(SECS_60, "three SSE readers attached", || async {
        let text = http().get(&metrics).send().await.ok()?.text().await.ok()?;
        text.lines()
            .any(|l| l.trim() == "yakt_sse_readers 3")
            .then_some(())
    })
    .await;

    c.nodes[f].signal(libc::SIGSTOP);
    let deadline = Instant::now() + SECS_60;
    for round in 0.. {
        c.create_topics(leader, &format!("frozen{round}"), 24).await;
        let v = c.cluster_view(leader).await.expect("leader view");
        if v["log_start_offset"].as_u64().is_some_and(|s| s > tail + 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never purged: {v}");
    }
    c.nodes[f].signal(libc::SIGCONT);
    let end = c.create_topic(leader, LAST_TOPIC).await;
    c.wait_applied(f, end, SECS_60).await;
    assert!(
        c.nodes[f]
            .log()
            .contains("snapshot installed from the leader"),
        "the follower must have caught up through the leader's snapshot"
    );

    let truth = c
        .records_from(
            leader,
            c.cluster_view(leader).await.expect("view")["log_start_offset"]
                .as_u64()
                .expect("log start"),
        )
        .await;
    let truth_after = |o: u64| -> Vec<Value> {
        truth
            .iter()
            .filter(|r| r["offset"].as_u64().expect("offset") > o)
            .cloned()
            .collect()
    };

    // The library reader from 0: nothing dropped as a duplicate, and the fold is the image.
    let (items, dups, connects) = from_zero.await.expect("from-zero reader");
    assert_eq!(
        dups, 0,
        "the server sent an offset twice ({connects} connects)"
    );
    let offsets: Vec<u64> = items.iter().map(StreamItem::offset).collect();
    assert_strictly_increasing("stream from 0", &offsets);
    let mut fold = ImageFold::new();
    for item in &items {
        fold.apply(item).expect("fold");
    }
    assert_eq!(
        fold.refused(),
        0,
        "a record did not apply on the folded image"
    );
    let (s, meta) = c.get(f, "/get_metadata").await;
    assert_eq!(s, 200);
    assert_eq!(
        fold.metadata_json(),
        meta["metadata"],
        "snapshot + records vs the image"
    );

    // The raw readers at the tail: a snapshot where the log was cut, then exactly the leader's.
    for (what, events, names) in [
        ("stream at the tail", all_tail.await.expect("reader"), None),
        (
            "TopicRecord stream at the tail",
            topics_tail.await.expect("reader"),
            Some("TopicRecord"),
        ),
    ] {
        let ids: Vec<u64> = events
            .iter()
            .map(|(_, id, _)| id.expect("every event has an id"))
            .collect();
        assert_strictly_increasing(what, &ids);
        let items: Vec<(u64, bool, Value)> = events
            .into_iter()
            .map(|(ev, id, v)| (id.expect("id"), ev == "snapshot", v))
            .collect();
        assert!(
            items.iter().any(|(_, s, _)| *s),
            "{what}: the log was cut under it, yet no snapshot"
        );
        let (snap, got) = records_after_last_snapshot(&items);
        let want: Vec<Value> = truth_after(snap.expect("snapshot"))
            .into_iter()
            .filter(|r| names.is_none_or(|n| r["name"] == n))
            .collect();
        assert_eq!(got, want, "{what}: records after the snapshot at {snap:?}");
    }

    let pages = pager.await.expect("pager");
    let offsets: Vec<u64> = pages.iter().map(|(o, _, _)| *o).collect();
    assert_strictly_increasing("fetch pages", &offsets);
    let (snap, got) = records_after_last_snapshot(&pages);
    assert_eq!(
        got,
        truth_after(snap.expect("a snapshot page")),
        "fetch after the snapshot"
    );
}
