//! Reading what was written: `/get_metadata` is the same image on every node, `/fetch` and
//! `/stream` serve the log by offset, and the catch-up endpoints (`/broker_mgmt`, `/client_mgmt`)
//! answer delta and snapshot mode for every timestamp form.

use serde_json::{json, Value};

use super::brokers;
use super::common::*;
use super::producers::{self, Producers};
use super::topics::{self, brokers_with_broker_3_reregistered, Topics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_the_log_and_catch_up_agree_with_every_write() {
    let cx = Ctx::start().await;
    // The same successful writes, in the same order, as the concern tests make.
    let b = brokers_with_broker_3_reregistered(&cx).await;
    let t = topics::create(&cx).await;
    topics::create_partitions(&cx, &b, &t).await;
    let p = producers::register(&cx).await;
    let ch3 = brokers::change(&cx).await;
    image(&cx, &t, &p, &ch3).await;
    let records = fetch_and_stream(&cx).await;
    catch_up(&cx, &records, &t).await;
}

/// Every node answers the same `/get_metadata`, at the idle leader's last offset.
pub async fn image(cx: &Ctx, t: &Topics, p: &Producers, ch3: &Value) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let (t1, t2) = (&t.t1, &t.t2);
    let Producers { pr0, pr1, pr2 } = p;
    let end = idle_log_end(c).await;
    let v = ok(c, l, "GET", "/get_metadata", None).await;
    assert_keys(&v, &["offset", "epoch", "metadata"], "get_metadata");
    assert_keys(&v["metadata"], &RECORD_NAMES, "get_metadata.metadata");
    assert_eq!(v["offset"], end, "get_metadata offset on the idle leader");
    let m = &v["metadata"];
    assert_eq!(
        m["RegisterBrokerRecord"].as_array().map(Vec::len),
        Some(3),
        "{m}"
    );
    assert_eq!(
        m["TopicRecord"],
        json!([t1, t2])
            .as_array()
            .map(|a| {
                let mut a = a.clone();
                a.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
                Value::Array(a)
            })
            .unwrap(),
        "topics by name"
    );
    assert_eq!(
        m["ProducerIdsRecord"],
        json!([pr0, pr1, pr2]),
        "producers by id"
    );
    assert_eq!(
        m["BrokerRegistrationChangeBrokerRecord"]
            .as_array()
            .map(Vec::len),
        Some(4),
        "the close of broker 3 and three changes: {m}"
    );
    assert_eq!(
        m["BrokerRegistrationChangeBrokerRecord"][3], *ch3,
        "change records in offset order"
    );
    for i in [f, g] {
        let w = ok(c, i, "GET", "/get_metadata", None).await;
        assert_eq!(w, v, "node {i}'s image differs from the leader's");
    }
}

/// The log by offset: one record per write, `/fetch` and `/stream` with `?names=`; returns the
/// log.
pub async fn fetch_and_stream(cx: &Ctx) -> Vec<Value> {
    let c = &cx.c;
    let (f, g) = (cx.f, cx.g);
    let end = idle_log_end(c).await;
    let records = log(c, g).await;
    assert_eq!(
        records.len(),
        16,
        "one record per successful write: {records:#?}"
    );
    for r in &records {
        assert_keys(
            r,
            &["offset", "epoch", "timestamp", "name", "fields"],
            "log record",
        );
    }
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["timestamp"].as_u64() <= w[1]["timestamp"].as_u64()
                && w[0]["offset"].as_u64() < w[1]["offset"].as_u64()),
        "timestamps never go backwards along the log"
    );
    let v = ok(c, f, "GET", "/fetch?offset=end", None).await;
    assert_keys(&v, FETCH_KEYS, "fetch");
    assert_eq!(v["high_watermark"], end + 1, "{v}");
    assert_eq!(v["records"], json!([]), "{v}");
    let v = ok(c, f, "GET", "/fetch?offset=0&names=TopicRecord", None).await;
    let names: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fields"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["orders", "pay.ments-v2_x"],
        "fetch ?names= filters: {v}"
    );
    expect_error(
        c,
        (f, "GET", "/fetch?offset=minus"),
        400,
        "bad_request",
        "offset",
    )
    .await;
    expect_error(
        c,
        (f, "GET", "/fetch?names=Nope"),
        400,
        "bad_request",
        "Nope",
    )
    .await;
    let sse = stream_records(c, g, "/stream?offset=0&names=TopicRecord", 2).await;
    assert_eq!(
        sse.iter()
            .map(|r| r["fields"]["name"].clone())
            .collect::<Vec<_>>(),
        vec![json!("orders"), json!("pay.ments-v2_x")],
        "/stream ?names= filters"
    );
    records
}

/// Delta mode straddling a time in every timestamp form, snapshot mode past the window, and
/// every malformed timestamp.
pub async fn catch_up(cx: &Ctx, records: &[Value], t: &Topics) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let tu2 = &t.tu2;
    let batch_a_end = records.last().unwrap()["timestamp"].as_u64().unwrap();
    // Write until a record lands in a later second than batch A's last one, so a whole-second
    // timestamp falls between the two batches.
    let boundary_s = batch_a_end / 1000 + 1;
    let mut n = 0;
    eventually(SECS_30, "a record in a later second", || {
        n += 1;
        topic_written_after(c, f, format!("later-{n}"), boundary_s * 1000)
    })
    .await;
    ok(c, l, "POST", "/register_producer/2", None).await;
    ok(
        c,
        l,
        "PUT",
        "/broker_registration_change",
        Some(json!({"brokerId": 2, "brokerStatus": "ALIVE"})),
    )
    .await;
    ok(
        c,
        l,
        "POST",
        "/create_partition",
        Some(json!({"partitionId": 7, "topicUUID": tu2, "replicas": [2], "leader": 2})),
    )
    .await;
    let end = idle_log_end(c).await;
    let all = log(c, f).await;
    let newest = all.last().unwrap()["timestamp"].as_u64().unwrap();
    let since_ms = batch_a_end + 1;
    let dt = chrono::DateTime::from_timestamp_millis(since_ms as i64).unwrap();
    let boundary = chrono::DateTime::from_timestamp(boundary_s as i64, 0).unwrap();
    let forms: Vec<(String, u64)> = vec![
        (
            boundary.format("%Y-%m-%d_%H:%M:%S").to_string(),
            boundary_s * 1000,
        ),
        (boundary_s.to_string(), boundary_s * 1000),
        (
            format!("{}.{:03}", since_ms / 1000, since_ms % 1000),
            since_ms,
        ),
        (since_ms.to_string(), since_ms),
        (
            dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            since_ms,
        ),
        (
            dt.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
                .replace('+', "%2B"),
            since_ms,
        ),
    ];
    for (form, since) in forms {
        let expected: Vec<&Value> = all
            .iter()
            .filter(|r| r["timestamp"].as_u64().unwrap() >= since)
            .collect();
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{form}: the time must straddle the log"
        );
        assert!(
            expected.iter().any(|r| r["name"] == "ProducerIdsRecord"),
            "{form}: a producer record after the time"
        );
        for (path, with_producers, node) in [("broker_mgmt", true, f), ("client_mgmt", false, g)] {
            let v = ok(c, node, "GET", &format!("/{path}/{form}"), None).await;
            let what = format!("/{path}/{form}");
            assert_keys(&v, &["mode", "since", "until", "offset", "metadata"], &what);
            assert_eq!(v["mode"], "delta", "{what}: {v}");
            assert_eq!(v["since"], since, "{what}");
            assert_eq!(v["offset"], end, "{what}");
            let mut want = serde_json::Map::new();
            for name in RECORD_NAMES {
                if name == "ProducerIdsRecord" && !with_producers {
                    continue;
                }
                let list: Vec<Value> = expected
                    .iter()
                    .filter(|r| r["name"] == name)
                    .map(|r| (*r).clone())
                    .collect();
                want.insert(name.to_string(), Value::Array(list));
            }
            assert_eq!(v["metadata"], Value::Object(want), "{what}: delta records");
        }
    }
    // Snapshot mode: a time more than the (default, 10 min) window older than the newest record.
    let old = newest - 600_000 - 1;
    let image = ok(c, l, "GET", "/get_metadata", None).await["metadata"].clone();
    for (path, with_producers) in [("broker_mgmt", true), ("client_mgmt", false)] {
        let v = ok(c, f, "GET", &format!("/{path}/{old}"), None).await;
        let what = format!("/{path}/{old}");
        assert_keys(&v, &["mode", "since", "until", "offset", "metadata"], &what);
        assert_eq!(v["mode"], "snapshot", "{what}: {v}");
        let mut want = image.clone();
        if !with_producers {
            want.as_object_mut().unwrap().remove("ProducerIdsRecord");
        }
        assert_eq!(v["metadata"], want, "{what}: snapshot is the image");
        // Exactly at the window's edge it is still delta.
        let edge = newest - 600_000;
        let v = ok(c, f, "GET", &format!("/{path}/{edge}"), None).await;
        assert_eq!(v["mode"], "delta", "/{path}/{edge}: {v}");
    }
    for bad in [
        "yesterday",
        "2025-13-01_00:00:00",
        "2025-11-24 16:00:00",
        "12345678901234",
        "-5",
        "1.2.3",
        "2025-11-24T16:00:00",
    ] {
        for path in ["broker_mgmt", "client_mgmt"] {
            expect_error(
                c,
                (g, "GET", &format!("/{path}/{}", bad.replace(' ', "%20"))),
                400,
                "bad_request",
                "timestamp",
            )
            .await;
        }
    }
}
