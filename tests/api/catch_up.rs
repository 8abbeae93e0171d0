//! Catch-up past its window and below the log start: the endpoints answer the image.

use serde_json::json;

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_switches_to_snapshot_beyond_a_small_window() {
    let c = Cluster::start(3, &["--catchup-window", "1s"]).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3;
    let v = ok(
        &c,
        l,
        "POST",
        "/register_broker",
        Some(json!({"brokerId": 1, "brokerHost": "h", "brokerPort": 1})),
    )
    .await;
    let off = v["offset"].as_u64().unwrap();
    ok(&c, l, "POST", "/register_producer/1", None).await;
    c.wait_applied(f, off + 1, SECS_30).await;
    let recs = c.records_from(f, off).await;
    let t0 = recs[0]["timestamp"].as_u64().unwrap();
    let newest = recs[1]["timestamp"].as_u64().unwrap();
    // Nothing newer than the window yet...
    if newest - t0 <= 1000 {
        let v = ok(&c, f, "GET", &format!("/broker_mgmt/{t0}"), None).await;
        assert_eq!(v["mode"], "delta", "{v}");
        assert_eq!(
            v["metadata"]["RegisterBrokerRecord"],
            json!([recs[0]]),
            "{v}"
        );
    }
    // ...then write until the newest record is more than 1 s newer than t0.
    let mut n = 0;
    eventually(SECS_30, "a record more than the window after t0", || {
        n += 1;
        topic_written_after(&c, f, format!("t{n}"), t0 + 1001)
    })
    .await;
    idle_log_end(&c).await;
    let image = ok(&c, l, "GET", "/get_metadata", None).await["metadata"].clone();
    for i in 0..3 {
        let v = ok(&c, i, "GET", &format!("/broker_mgmt/{t0}"), None).await;
        assert_eq!(v["mode"], "snapshot", "node {i}: {v}");
        assert_eq!(v["metadata"], image, "node {i}: snapshot is the image");
        let v = ok(&c, i, "GET", &format!("/client_mgmt/{t0}"), None).await;
        assert_eq!(v["mode"], "snapshot", "node {i}: {v}");
        let mut want = image.clone();
        want.as_object_mut().unwrap().remove("ProducerIdsRecord");
        assert_eq!(
            v["metadata"], want,
            "node {i}: client snapshot leaves out producers"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_and_fetch_below_the_log_start_answer_the_image() {
    let c = Cluster::start(
        3,
        &[
            "--snapshot-every",
            "10",
            "--keep-after-snapshot",
            "2",
            "--segment-bytes",
            "1024",
        ],
    )
    .await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3;
    let v = ok(
        &c,
        l,
        "POST",
        "/create_topic",
        Some(json!({"name": "first"})),
    )
    .await;
    let first_off = v["offset"].as_u64().unwrap();
    c.wait_applied(f, first_off, SECS_30).await;
    let t0 = ok(
        &c,
        f,
        "GET",
        &format!("/fetch?offset={first_off}&max_records=1"),
        None,
    )
    .await["records"][0]["timestamp"]
        .as_u64()
        .expect("the first record's timestamp");
    // Write until the follower has deleted the log up to and past the first record.
    let mut n = 0;
    eventually(
        SECS_30,
        "the first record purged from the follower's log",
        || {
            n += 1;
            let c = &c;
            async move {
                let name = format!("t{n}");
                ok(c, l, "POST", "/create_topic", Some(json!({"name": name}))).await;
                let v = c.cluster_view(f).await?;
                (v["log_start_offset"].as_u64()? > first_off + 1).then_some(())
            }
        },
    )
    .await;
    idle_log_end(&c).await;
    let image = ok(&c, f, "GET", "/get_metadata", None).await;
    // Within the 10-minute window, but older than the oldest record left: snapshot mode.
    for path in ["broker_mgmt", "client_mgmt"] {
        let v = ok(&c, f, "GET", &format!("/{path}/{}", t0 - 1), None).await;
        assert_eq!(v["mode"], "snapshot", "/{path} below the log start: {v}");
        assert_eq!(v["offset"], image["offset"], "/{path}: {v}");
        let mut want = image["metadata"].clone();
        if path == "client_mgmt" {
            want.as_object_mut().unwrap().remove("ProducerIdsRecord");
        }
        assert_eq!(v["metadata"], want, "/{path}: snapshot is the image");
    }
    // A time of a record still in the log: delta mode again.
    let start = c.cluster_view(f).await.unwrap()["log_start_offset"]
        .as_u64()
        .unwrap();
    let kept = c.records_from(f, start).await;
    let last = kept.last().expect("records left in the log");
    let t_last = last["timestamp"].as_u64().unwrap();
    let v = ok(&c, f, "GET", &format!("/broker_mgmt/{t_last}"), None).await;
    assert_eq!(v["mode"], "delta", "{v}");
    assert!(
        v["metadata"]["TopicRecord"]
            .as_array()
            .unwrap()
            .contains(last),
        "delta holds the newest record: {v}"
    );
    // /fetch below the log start answers the image as a snapshot page.
    let v = ok(&c, f, "GET", "/fetch?offset=1", None).await;
    let snapshot_page_keys = [FETCH_KEYS, &["snapshot"]].concat();
    assert_keys(&v, &snapshot_page_keys, "fetch below the log start");
    assert_keys(
        &v["snapshot"],
        &["offset", "epoch", "metadata"],
        "fetch snapshot",
    );
    assert_eq!(v["snapshot"]["metadata"], image["metadata"], "{v}");
    assert_eq!(
        v["next_offset"],
        v["snapshot"]["offset"].as_u64().unwrap() + 1,
        "{v}"
    );
}
