//! Time travel on a real node: `/get_metadata?at_offset=` and `?at=` against the answers
//! `/get_metadata` gave at each moment of a history of writes (recorded as the test goes), for
//! offsets in the live log and below the newest snapshot; `410` below the oldest kept snapshot,
//! `416` past the end, `400` for bad queries; and `yakt-dump --image --at` on the running
//! node's directory printing the same JSON as the endpoint.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{dump, eventually, Cluster};

/// Small snapshot intervals and segments, so a short history has purged segments and three
/// kept snapshots, the oldest well below the newest.
const SMALL: &[&str] = &[
    "--snapshot-every",
    "20",
    "--keep-after-snapshot",
    "5",
    "--keep-snapshots",
    "3",
    "--segment-bytes",
    "4096",
];

/// One moment of the history: the offset and `/get_metadata` answer right after a write, and
/// that write's record timestamp.
struct Moment {
    offset: u64,
    answer: Value,
    timestamp_ms: u64,
}

/// One write: method, path, body.
type Write = (&'static str, String, Option<Value>);

/// Registers, changes and deletes brokers, creates topics and partitions and registers
/// producers: `rounds` rounds of nine writes each.
fn script(round: u32) -> Vec<Write> {
    let b = i64::from(round) * 2 + 1;
    vec![
        (
            "POST",
            "/register_broker".into(),
            Some(json!({"brokerId": b, "brokerHost": format!("h{b}"), "brokerPort": 9092})),
        ),
        (
            "POST",
            "/register_broker".into(),
            Some(
                json!({"brokerId": b + 1, "brokerHost": format!("h{}", b + 1), "brokerPort": 9093}),
            ),
        ),
        (
            "POST",
            "/create_topic".into(),
            Some(json!({"name": format!("topic-{round}")})),
        ),
        (
            "PARTITION",
            format!("topic-{round}"),
            Some(json!({"partitionId": 0, "replicas": [b, b + 1], "ISR": [b], "leader": b})),
        ),
        (
            "PUT",
            "/broker_registration_change".into(),
            Some(json!({"brokerId": b, "brokerStatus": "FENCED"})),
        ),
        (
            "PUT",
            "/broker_registration_change".into(),
            Some(json!({"brokerId": b + 1, "brokerHost": format!("moved-{}", b + 1)})),
        ),
        ("POST", format!("/register_producer/{}", b + 1), None),
        (
            "POST",
            "/create_topic".into(),
            Some(json!({"name": format!("other-{round}")})),
        ),
        ("PUT", format!("/delete_broker/{b}"), None),
    ]
}

async fn write(c: &Cluster, (method, path, body): Write) -> u64 {
    let (method, path, body) = if method == "PARTITION" {
        let (_, topic) = c.get(0, &format!("/get_topic/{path}")).await;
        let mut body = body.expect("partition body");
        body["topicUUID"] = topic["metadata"]["topicUUID"].clone();
        ("POST", "/create_partition".to_string(), Some(body))
    } else {
        (method, path, body)
    };
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let (status, v) = c.request(0, m, &path, body).await;
    assert_eq!(status, 200, "{path}: {v}");
    v["offset"].as_u64().expect("offset")
}

/// Writes the script, recording each moment.
async fn record_history(c: &Cluster, rounds: u32) -> Vec<Moment> {
    let mut moments = Vec::new();
    for round in 0..rounds {
        for w in script(round) {
            let offset = write(c, w).await;
            let (status, answer) = c.get(0, "/get_metadata").await;
            assert_eq!(status, 200);
            // One node, one writer: the image right after the write is at its offset.
            assert_eq!(answer["offset"], offset, "{answer}");
            let (_, page) = c
                .get(0, &format!("/fetch?offset={offset}&max_records=1"))
                .await;
            let timestamp_ms = page["records"][0]["timestamp"]
                .as_u64()
                .unwrap_or_else(|| panic!("record {offset} not fetched: {page}"));
            moments.push(Moment {
                offset,
                answer,
                timestamp_ms,
            });
        }
    }
    moments
}

async fn at_offset(c: &Cluster, n: u64) -> (u16, Value) {
    c.get(0, &format!("/get_metadata?at_offset={n}")).await
}

/// Waits until the node holds at least `n` snapshots and has purged the log below one, and
/// answers the oldest offset it can rebuild (from the 410 below it).
async fn history_bounds(c: &Cluster) -> (u64, u64) {
    eventually(
        Duration::from_secs(30),
        "three snapshots and a purge",
        || async {
            let snaps = std::fs::read_dir(c.data_dir(0).join("snapshots"))
                .ok()?
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snap"))
                })
                .count();
            let view = c.cluster_view(0).await?;
            let newest = view["snapshot"]["offset"].as_u64()?;
            let (status, gone) = at_offset(c, 0).await;
            let oldest = gone["oldest_offset"].as_u64()?;
            (snaps == 3 && status == 410 && oldest < newest).then_some((oldest, newest))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_at_every_recorded_offset_is_the_answer_given_then() {
    let c = Cluster::start(1, SMALL).await;
    let moments = record_history(&c, 14).await;
    let (oldest, newest_snapshot) = history_bounds(&c).await;
    let last = moments.last().expect("moments").offset;

    let below_newest = moments
        .iter()
        .filter(|m| m.offset >= oldest && m.offset < newest_snapshot)
        .count();
    assert!(
        below_newest >= 5,
        "only {below_newest} recorded offsets between the oldest ({oldest}) and newest ({newest_snapshot}) snapshot"
    );
    let mut compared = 0;
    for m in &moments {
        let (status, v) = at_offset(&c, m.offset).await;
        if m.offset < oldest {
            assert_eq!(status, 410, "at {}: {v}", m.offset);
            assert_eq!(v["error"], "compacted");
            assert_eq!(v["oldest_offset"], oldest);
            assert!(v["message"].as_str().is_some_and(|s| !s.is_empty()));
        } else {
            assert_eq!(status, 200, "at {}: {v}", m.offset);
            assert_eq!(v, m.answer, "the image at offset {} differs", m.offset);
            compared += 1;
        }
    }
    assert!(compared >= 30, "only {compared} offsets compared");
    eprintln!(
        "{} writes up to offset {last}; {compared} compared from the oldest kept snapshot {oldest} \
         ({below_newest} below the newest, {newest_snapshot}); {} compacted",
        moments.len(),
        moments.len() - compared
    );

    // `at=`: the last record at or before the time. Where two records share a millisecond, one
    // ms before the later one still names the earlier.
    let mut timed = 0;
    for pair in moments.windows(2) {
        let (m, next) = (&pair[0], &pair[1]);
        if m.offset < oldest || next.timestamp_ms <= m.timestamp_ms {
            continue;
        }
        for at in [m.timestamp_ms, next.timestamp_ms - 1] {
            let (status, v) = c.get(0, &format!("/get_metadata?at={at}")).await;
            assert_eq!(status, 200, "at={at}: {v}");
            assert_eq!(
                v, m.answer,
                "at={at} is not the image at offset {}",
                m.offset
            );
        }
        timed += 1;
    }
    assert!(timed >= 10, "only {timed} moments had distinct timestamps");
    // A time before every record the node still holds is compacted.
    let (status, v) = c.get(0, "/get_metadata?at=2000-01-01T00:00:00Z").await;
    assert_eq!((status, &v["error"]), (410, &json!("compacted")), "{v}");
    // Unix seconds and RFC 3339 forms work as well: a time after the last record is the end.
    let (status, v) = c.get(0, "/get_metadata?at=2999-01-01T00:00:00Z").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, moments.last().expect("last").answer);

    // Past the end.
    let (status, v) = at_offset(&c, last + 1000).await;
    assert_eq!(status, 416, "{v}");
    assert_eq!(v["error"], "offset_out_of_range");
    assert_eq!(v["log_end_offset"], last);

    // Bad queries: both forms, a non-number, a duplicate, a bad time.
    for q in [
        "at_offset=3&at=1764000000",
        "at_offset=x",
        "at_offset=-1",
        "at_offset=3&at_offset=4",
        "at=yesterday",
    ] {
        let (status, v) = c.get(0, &format!("/get_metadata?{q}")).await;
        assert_eq!(status, 400, "{q}: {v}");
        assert_eq!(v["error"], "bad_request", "{q}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_dump_prints_what_the_running_node_answers() {
    let c = Cluster::start(1, SMALL).await;
    let moments = record_history(&c, 10).await;
    let (oldest, _) = history_bounds(&c).await;
    let dir = c.data_dir(0).display().to_string();
    let mut compared = 0;
    for m in moments.iter().filter(|m| m.offset >= oldest).step_by(3) {
        let (status, online) = at_offset(&c, m.offset).await;
        assert_eq!(status, 200);
        // Offline reads stop at the committed watermark, written behind the commit index: an
        // offset above it answers only once the watermark reaches it.
        let at = m.offset.to_string();
        let out = eventually(
            Duration::from_secs(10),
            "yakt-dump --image --at within the committed watermark",
            || async {
                let (code, out, _) = dump(&["--image", "--at", &at, &dir]);
                (code == 0).then_some(out)
            },
        )
        .await;
        let offline: Value = serde_json::from_str(&out).expect("dump prints JSON");
        assert_eq!(offline, online, "offline and online differ at {}", m.offset);
        compared += 1;
    }
    assert!(compared >= 5, "only {compared} offsets compared");
    // Without --at: the committed end, which is the last write once the watermark caught up.
    let last = moments.last().expect("last");
    eventually(
        Duration::from_secs(10),
        "the dump's image at the end",
        || async {
            let (code, out, _) = dump(&["--image", &dir]);
            let v: Value = serde_json::from_str(&out).ok()?;
            (code == 0 && v == last.answer).then_some(())
        },
    )
    .await;
    // Below the oldest kept snapshot, and past the committed end: exit 1, naming the range.
    let (code, _, err) = dump(&["--image", "--at", &(oldest - 1).to_string(), &dir]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("compacted"), "{err}");
    let (code, _, err) = dump(&["--image", "--at", &(last.offset + 1000).to_string(), &dir]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("past the end"), "{err}");
}
