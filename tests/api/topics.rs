//! Topics and partitions: creation in every accepted form and every refused one, and the reads
//! that answer them (`get_topic`, `get_partitions`).

use serde_json::{json, Value};

use super::brokers::{self, Brokers};
use super::common::*;

/// What [`create`] wrote.
pub struct Topics {
    pub t1: Value,
    pub t2: Value,
    pub tu1: String,
    pub tu2: String,
}

/// What [`create_partitions`] wrote.
pub struct Partitions {
    pub p0: Value,
    pub p1: Value,
    pub p2: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_partitions_are_created_refused_and_read() {
    let cx = Ctx::start().await;
    let b = brokers_with_broker_3_reregistered(&cx).await;
    let t = create(&cx).await;
    errors(&cx, &t).await;
    let p = create_partitions(&cx, &b, &t).await;
    partition_errors_and_reads(&cx, &t, &p).await;
}

/// Brokers 1, 2 and 3, with 3 closed and registered again (epoch 2): the state partitions and
/// producers are written against.
pub async fn brokers_with_broker_3_reregistered(cx: &Ctx) -> Brokers {
    let mut b = brokers::register(cx).await;
    brokers::close(cx, &b).await;
    brokers::reregister(cx, &mut b).await;
    b
}

/// Topics `orders` (bare) and `pay.ments-v2_x` (envelope, via a follower).
pub async fn create(cx: &Ctx) -> Topics {
    let c = &cx.c;
    let (l, g) = (cx.l, cx.g);
    let (_, t1) = assert_write(
        &ok(
            c,
            l,
            "POST",
            "/create_topic",
            Some(json!({"name": "orders"})),
        )
        .await,
        TOPIC_KEYS,
        "create topic (bare)",
    );
    let (_, t2) = assert_write(
        &ok(
            c,
            g,
            "POST",
            "/create_topic",
            Some(envelope("TopicRecord", json!({"name": "pay.ments-v2_x"}))),
        )
        .await,
        TOPIC_KEYS,
        "create topic (envelope, via a follower)",
    );
    let tu1 = t1["topicUUID"].as_str().unwrap().to_string();
    let tu2 = t2["topicUUID"].as_str().unwrap().to_string();
    Topics { t1, t2, tu1, tu2 }
}

/// Bad names and shapes are 400s, a duplicate a 409, an unknown topic a 404.
pub async fn errors(cx: &Ctx, t: &Topics) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let tu1 = &t.tu1;
    for (body, needle) in [
        (json!({"name": "bad name"}), "name"),
        (json!({"name": ".."}), "name"),
        (json!({"name": "."}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(250)}), "name"),
        (json!({"name": "ü"}), "name"),
        (json!({"name": 5}), "name"),
        (json!({}), "name"),
        (json!({"name": "t", "topicUUID": tu1}), "topicUUID"),
        (
            envelope("PartitionRecord", json!({"name": "t"})),
            "TopicRecord",
        ),
        (
            json!({"type": "metadata", "name": "TopicRecord", "fields": {"name": "t"},
                "extra": 1}),
            "extra",
        ),
        (json!({"type": "metadata", "fields": ["t"]}), "fields"),
        (json!("orders"), "object"),
    ] {
        expect_json_error(
            c,
            (f, "POST", "/create_topic"),
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    for node in [l, f] {
        expect_json_error(
            c,
            (node, "POST", "/create_topic"),
            envelope("TopicRecord", json!({"name": "orders"})),
            409,
            "conflict",
            "orders",
        )
        .await;
    }
    expect_error(c, (g, "GET", "/get_topic/nope"), 404, "not_found", "nope").await;
}

/// Three partitions: leader as an id, leader as the broker's `internalUUID`, a second topic.
pub async fn create_partitions(cx: &Ctx, b: &Brokers, t: &Topics) -> Partitions {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let (uuid3, tu1, tu2) = (&b.uuid3, &t.tu1, &t.tu2);
    let (_, p0) = assert_write(
        &ok(
            c,
            f,
            "POST",
            "/create_partition",
            Some(envelope(
                "PartitionRecord",
                json!({"partitionId": 0, "topicUUID": tu1, "replicas": [1, 2, 3],
                       "ISR": [1, 2], "removingReplicas": [3], "addingReplicas": [],
                       "leader": 2}),
            )),
        )
        .await,
        PARTITION_KEYS,
        "create partition 0 (envelope, leader as id)",
    );
    assert_eq!(p0["partitionEpoch"], 0, "{p0}");
    assert_eq!(p0["leader"], 2, "{p0}");
    // `leader` as the broker's internalUUID; ISR and the lists take their defaults.
    let (_, p1) = assert_write(
        &ok(
            c,
            l,
            "POST",
            "/create_partition",
            Some(
                json!({"partitionId": 1, "topicUUID": tu1, "replicas": [3, 1],
                        "leader": uuid3}),
            ),
        )
        .await,
        PARTITION_KEYS,
        "create partition 1 (bare, leader as internalUUID)",
    );
    assert_eq!(
        p1["leader"], 3,
        "leader given as internalUUID is stored as the id: {p1}"
    );
    assert_eq!(p1["ISR"], json!([3, 1]), "ISR defaults to replicas: {p1}");
    assert_eq!(p1["removingReplicas"], json!([]), "{p1}");
    assert_eq!(p1["addingReplicas"], json!([]), "{p1}");
    let (_, p2) = assert_write(
        &ok(
            c,
            g,
            "POST",
            "/create_partition",
            Some(json!({"partitionId": 0, "topicUUID": tu2, "replicas": [1],
                        "leader": 1})),
        )
        .await,
        PARTITION_KEYS,
        "create partition 0 of the second topic",
    );
    Partitions { p0, p1, p2 }
}

/// Every refused partition, then `get_partitions` (all, by topic) and `get_topic`.
pub async fn partition_errors_and_reads(cx: &Ctx, t: &Topics, p: &Partitions) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let (tu1, tu2) = (&t.tu1, &t.tu2);
    let Partitions { p0, p1, p2 } = p;
    let part = |extra: Value| {
        let mut b = json!({"partitionId": 5, "topicUUID": tu1, "replicas": [1, 2],
                           "leader": 1});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    for (body, needle) in [
        (part(json!({"partitionId": null})), "partitionId"),
        (part(json!({"topicUUID": null})), "topicUUID"),
        (part(json!({"replicas": null})), "replicas"),
        (part(json!({"leader": null})), "leader"),
        (part(json!({"partitionId": "5"})), "partitionId"),
        (part(json!({"partitionId": -1})), "partitionId"),
        (part(json!({"topicUUID": "not-a-uuid"})), "topicUUID"),
        (part(json!({"replicas": "1,2"})), "replicas"),
        (part(json!({"replicas": []})), "replicas"),
        (part(json!({"replicas": [1, 1]})), "replicas"),
        (part(json!({"ISR": [3]})), "ISR"),
        (part(json!({"leader": 3})), "leader"),
        (part(json!({"leader": true})), "leader"),
        (
            part(json!({"addingReplicas": [2], "removingReplicas": [2]})),
            "Replicas",
        ),
        (part(json!({"partitionEpoch": 0})), "partitionEpoch"),
        (envelope("TopicRecord", part(json!({}))), "PartitionRecord"),
    ] {
        expect_json_error(
            c,
            (l, "POST", "/create_partition"),
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    let unknown_topic = "00000000-0000-4000-8000-000000000000";
    for (body, needle) in [
        (part(json!({"topicUUID": unknown_topic})), unknown_topic),
        (part(json!({"replicas": [1, 42], "leader": 1})), "42"),
        (part(json!({"leader": unknown_topic})), unknown_topic),
    ] {
        expect_json_error(
            c,
            (f, "POST", "/create_partition"),
            body,
            404,
            "not_found",
            needle,
        )
        .await;
    }
    expect_json_error(
        c,
        (g, "POST", "/create_partition"),
        json!({"partitionId": 0, "topicUUID": tu1, "replicas": [1], "leader": 1}),
        409,
        "conflict",
        "",
    )
    .await;
    let v = ok(c, f, "GET", "/get_partitions?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_partitions");
    assert_eq!(
        v["metadata"].as_array().map(Vec::len),
        Some(3),
        "all partitions: {v}"
    );
    let v = ok(
        c,
        g,
        "GET",
        &format!("/get_partitions?topicUUID={tu1}"),
        None,
    )
    .await;
    assert_eq!(
        v["metadata"],
        json!([p0, p1]),
        "get_partitions?topicUUID= filters"
    );
    let v = ok(
        c,
        g,
        "GET",
        &format!("/get_partitions?topicUUID={tu2}"),
        None,
    )
    .await;
    assert_eq!(
        v["metadata"],
        json!([p2]),
        "get_partitions?topicUUID= filters"
    );
    expect_error(
        c,
        (g, "GET", "/get_partitions?topicUUID=xyz"),
        400,
        "bad_request",
        "",
    )
    .await;
    let v = ok(c, g, "GET", "/get_topic/orders?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_topic");
    assert_eq!(
        v["metadata"],
        json!({"name": "orders", "topicUUID": tu1, "partitions": [p0, p1]}),
        "get_topic answers one object with its partitions"
    );
}
