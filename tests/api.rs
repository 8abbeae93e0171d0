//! Issue 4: the HTTP contract of `/work/shared/API.md`, driven against a real three-node cluster.
//! Every endpoint's success path and every error row, with the original YAKt envelope and bare
//! field objects; every error has the `{"error", "message"}` shape and appends nothing to the log;
//! concurrent conflicting writes at different nodes commit exactly once; the catch-up endpoints
//! answer both modes for every timestamp form.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, Cluster};

const SECS_30: Duration = Duration::from_secs(30);

const RECORD_NAMES: [&str; 5] = [
    "RegisterBrokerRecord",
    "TopicRecord",
    "PartitionRecord",
    "ProducerIdsRecord",
    "BrokerRegistrationChangeBrokerRecord",
];

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Asserts `v` has exactly the keys `names`.
fn assert_keys(v: &Value, names: &[&str], what: &str) {
    assert_eq!(keys(v), set(names), "{what}: wrong field names in {v}");
}

const BROKER_KEYS: &[&str] = &[
    "brokerId",
    "brokerHost",
    "brokerPort",
    "securityProtocol",
    "brokerStatus",
    "internalUUID",
    "epoch",
];
const TOPIC_KEYS: &[&str] = &["name", "topicUUID"];
const PARTITION_KEYS: &[&str] = &[
    "partitionId",
    "topicUUID",
    "replicas",
    "ISR",
    "removingReplicas",
    "addingReplicas",
    "leader",
    "partitionEpoch",
];
const PRODUCER_KEYS: &[&str] = &["brokerId", "brokerEpoch", "producerId"];

/// A raw answer: status, content type and body text.
struct Raw {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", self.body))
    }
}

/// Any request with any body and content type.
async fn raw(
    c: &Cluster,
    i: usize,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Raw {
    let url = format!("http://{}{}", c.nodes[i].addr, path);
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = c.http.request(m, &url);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(b) = body {
        req = req.body(b.to_vec());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on node {i}: {e}"));
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let body = resp.text().await.unwrap_or_default();
    Raw {
        status,
        content_type,
        retry_after,
        body,
    }
}

/// JSON request helper: status and JSON body, panicking on a non-JSON answer.
async fn call(
    c: &Cluster,
    i: usize,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let ct = bytes.as_ref().map(|_| "application/json");
    let r = raw(c, i, method, path, ct, bytes.as_deref()).await;
    assert!(
        r.content_type.starts_with("application/json"),
        "{method} {path}: content type {:?}, body {:?}",
        r.content_type,
        r.body
    );
    (r.status, r.json())
}

/// A 200 answer's body, or a panic naming the request.
async fn ok(c: &Cluster, i: usize, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(c, i, method, path, body.clone()).await;
    assert_eq!(s, 200, "{method} {path} with {body:?} on node {i}: {v}");
    v
}

/// The leader's last log offset once the cluster is idle (leader's commit == last log offset,
/// every node applied it): an exact measure of "nothing was appended".
async fn idle_log_end(c: &Cluster) -> u64 {
    let leader = c.leader(SECS_30).await;
    let end = eventually(SECS_30, "the leader's log is fully committed", || async {
        let v = c.cluster_view(leader).await?;
        let last = v["last_log_offset"].as_u64()?;
        (v["commit_offset"].as_u64()? == last && v["applied_offset"].as_u64()? == last)
            .then_some(last)
    })
    .await;
    for i in 0..c.nodes.len() {
        c.wait_applied(i, end, SECS_30).await;
    }
    end
}

/// Asserts an error answer: status, the exact `{"error", "message"}` shape, the kind, and that
/// the message mentions `needle`.
fn assert_error(r: &Raw, status: u16, kind: &str, needle: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: status; body {:?}", r.body);
    assert!(
        r.content_type.starts_with("application/json"),
        "{what}: content type {:?}, body {:?}",
        r.content_type,
        r.body
    );
    let v = r.json();
    assert_keys(&v, &["error", "message"], what);
    assert_eq!(v["error"], kind, "{what}: error kind in {v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(!msg.is_empty(), "{what}: empty message");
    assert!(
        msg.contains(needle),
        "{what}: message {msg:?} does not mention {needle:?}"
    );
}

/// Sends a request that must fail with `status`/`kind`, and checks the log did not grow.
#[allow(clippy::too_many_arguments)]
async fn expect_error(
    c: &Cluster,
    i: usize,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
    status: u16,
    kind: &str,
    needle: &str,
) {
    let shown: Option<String> =
        body.map(|b| String::from_utf8_lossy(b).chars().take(200).collect());
    let what = format!("{method} {path} on node {i} with {shown:?}");
    let before = idle_log_end(c).await;
    let r = raw(c, i, method, path, content_type, body).await;
    assert_error(&r, status, kind, needle, &what);
    let after = idle_log_end(c).await;
    assert_eq!(
        before, after,
        "{what}: a failed request appended to the log"
    );
}

/// [`expect_error`] for a JSON body.
#[allow(clippy::too_many_arguments)]
async fn expect_json_error(
    c: &Cluster,
    i: usize,
    method: &str,
    path: &str,
    body: Value,
    status: u16,
    kind: &str,
    needle: &str,
) {
    let b = body.to_string().into_bytes();
    expect_error(
        c,
        i,
        method,
        path,
        Some("application/json"),
        Some(&b),
        status,
        kind,
        needle,
    )
    .await;
}

fn envelope(name: &str, fields: Value) -> Value {
    json!({"type": "metadata", "name": name, "fields": fields})
}

/// Checks a write's answer: `{"message", "offset", "metadata"}` with the record's fields.
fn assert_write(v: &Value, fields: &[&str], what: &str) -> (u64, Value) {
    assert_keys(v, &["message", "offset", "metadata"], what);
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    let offset = v["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: offset in {v}"));
    assert_keys(&v["metadata"], fields, what);
    (offset, v["metadata"].clone())
}

/// Every record in node `i`'s log (from offset 1).
async fn log(c: &Cluster, i: usize) -> Vec<Value> {
    c.records_from(i, 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_and_every_error_row_on_three_nodes() {
    let c = Cluster::start(3, &["--max-body", "4096"]).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3; // a follower
    let g = (l + 2) % 3; // the other follower

    // ---- operating endpoints ----
    let v = ok(&c, f, "GET", "/cluster", None).await;
    for k in [
        "cluster_id",
        "node_id",
        "incarnation",
        "voting",
        "role",
        "leader_id",
        "leader_addr",
        "term",
        "members",
        "commit_offset",
        "applied_offset",
        "log_start_offset",
        "snapshot",
    ] {
        assert!(v.get(k).is_some(), "/cluster lacks {k}: {v}");
    }
    assert_eq!(v["leader_id"], c.nodes[l].id, "/cluster on a follower: {v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
    for m in v["members"].as_array().unwrap() {
        assert_keys(
            m,
            &["id", "addr", "voter", "incarnation"],
            "/cluster members",
        );
        assert!(
            m["incarnation"].is_string(),
            "every seat names its incarnation: {m}"
        );
    }
    let v = ok(&c, g, "GET", "/health", None).await;
    assert_eq!(v["leader_id"], c.nodes[l].id, "/health: {v}");

    // ---- register_broker: bare, envelope, port as a string, rackId ----
    let (_, b1) = assert_write(
        &ok(
            &c,
            l,
            "POST",
            "/register_broker",
            Some(json!({"brokerId": 1, "brokerHost": "kafka-1", "brokerPort": 9092})),
        )
        .await,
        BROKER_KEYS,
        "register broker 1 (bare)",
    );
    assert_eq!(
        b1["securityProtocol"], "PLAINTEXT",
        "default protocol: {b1}"
    );
    assert_eq!(b1["brokerStatus"], "ALIVE", "default status: {b1}");
    assert_eq!(b1["epoch"], 0, "first epoch: {b1}");
    let uuid1 = b1["internalUUID"]
        .as_str()
        .expect("internalUUID")
        .to_string();
    assert_eq!(uuid1.len(), 36, "internalUUID {uuid1}");
    assert_eq!(&uuid1[14..15], "4", "internalUUID {uuid1} is not a v4 UUID");
    // A write sent to a follower reaches the leader.
    let (_, b2) = assert_write(
        &ok(
            &c,
            f,
            "POST",
            "/register_broker",
            Some(envelope(
                "RegisterBrokerRecord",
                json!({"brokerId": 2, "brokerHost": "kafka-2", "brokerPort": "9093",
                       "securityProtocol": "SASL_SSL", "brokerStatus": "UNFENCED"}),
            )),
        )
        .await,
        BROKER_KEYS,
        "register broker 2 (envelope, via a follower)",
    );
    assert_eq!(b2["brokerPort"], 9093, "a numeric string port: {b2}");
    assert_eq!(b2["securityProtocol"], "SASL_SSL", "{b2}");
    let mut keys3 = BROKER_KEYS.to_vec();
    keys3.push("rackId");
    let (_, b3) = assert_write(
        &ok(
            &c,
            g,
            "POST",
            "/register_broker",
            Some(
                json!({"brokerId": 3, "brokerHost": "kafka-3", "brokerPort": 9094,
                        "rackId": "rack-a"}),
            ),
        )
        .await,
        &keys3,
        "register broker 3 (with rackId, via the other follower)",
    );
    let uuid3 = b3["internalUUID"].as_str().unwrap().to_string();
    // Linearizable read on a follower sees the write just made through the leader.
    let v = ok(&c, g, "GET", "/get_broker/2?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_broker");
    assert_eq!(v["metadata"], b2, "get_broker/2 on a follower (consistent)");
    let v = ok(&c, f, "GET", "/get_all_brokers?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_all_brokers");
    let ids: Vec<i64> = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["brokerId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3], "get_all_brokers: {v}");

    // ---- register_broker errors ----
    let json_ct = Some("application/json");
    expect_error(
        &c,
        l,
        "POST",
        "/register_broker",
        json_ct,
        Some(br#"{"brokerId": 4, "brokerHost": "#),
        400,
        "bad_request",
        "not valid JSON",
    )
    .await;
    expect_error(
        &c,
        f,
        "POST",
        "/register_broker",
        json_ct,
        Some(b""),
        400,
        "bad_request",
        "JSON",
    )
    .await;
    for (body, needle) in [
        (
            json!({"brokerId": "4", "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": 4.5, "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": -1, "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": 4, "brokerHost": 7, "brokerPort": 1}),
            "brokerHost",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": true}),
            "brokerPort",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 0}),
            "brokerPort",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 65536}),
            "brokerPort",
        ),
        (
            json!({"brokerId": 2147483648_i64, "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "two words", "brokerPort": 1}),
            "brokerHost",
        ),
        (json!({"brokerId": 4, "brokerPort": 1}), "brokerHost"),
        (json!({"brokerHost": "h", "brokerPort": 1}), "brokerId"),
        (json!({"brokerId": 4, "brokerHost": "h"}), "brokerPort"),
        (
            json!({"brokerId": 4, "brokerHots": "h", "brokerPort": 1}),
            "brokerHots",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "internalUUID": uuid1}),
            "internalUUID",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "securityProtocol": "plaintext"}),
            "securityProtocol",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "brokerStatus": "CLOSED"}),
            "CLOSED",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "brokerStatus": "DEAD"}),
            "brokerStatus",
        ),
        (json!([1, 2]), "object"),
        (
            envelope(
                "TopicRecord",
                json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1}),
            ),
            "RegisterBrokerRecord",
        ),
        (
            json!({"type": "data", "name": "RegisterBrokerRecord",
                "fields": {"brokerId": 4, "brokerHost": "h", "brokerPort": 1}}),
            "type",
        ),
        (
            json!({"type": "metadata", "name": "RegisterBrokerRecord"}),
            "fields",
        ),
    ] {
        expect_json_error(
            &c,
            f,
            "POST",
            "/register_broker",
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    // 409: broker 1 is registered and not CLOSED (through the leader and a follower).
    for node in [l, g] {
        expect_json_error(
            &c,
            node,
            "POST",
            "/register_broker",
            json!({"brokerId": 1, "brokerHost": "other", "brokerPort": 1}),
            409,
            "conflict",
            "already registered",
        )
        .await;
    }
    // 415: not JSON.
    expect_error(
        &c,
        l,
        "POST",
        "/register_broker",
        Some("text/plain"),
        Some(br#"{"brokerId": 4, "brokerHost": "h", "brokerPort": 1}"#),
        415,
        "unsupported_media_type",
        "JSON",
    )
    .await;
    expect_error(
        &c,
        f,
        "POST",
        "/create_topic",
        Some("application/x-www-form-urlencoded"),
        Some(b"name=t"),
        415,
        "unsupported_media_type",
        "JSON",
    )
    .await;
    // 413: a body over --max-body (4096), on the leader and on a follower.
    let big = json!({"name": "x".repeat(5000)}).to_string().into_bytes();
    for node in [l, f] {
        expect_error(
            &c,
            node,
            "POST",
            "/create_topic",
            json_ct,
            Some(&big),
            413,
            "payload_too_large",
            "4096",
        )
        .await;
    }

    // ---- get_broker / delete_broker errors ----
    for path in [
        "/get_broker/abc",
        "/get_broker/1.0",
        "/get_broker/-1",
        "/get_broker/99999999999",
    ] {
        expect_error(&c, f, "GET", path, None, None, 400, "bad_request", "").await;
    }
    expect_error(
        &c,
        f,
        "GET",
        "/get_broker/42",
        None,
        None,
        404,
        "not_found",
        "42",
    )
    .await;
    expect_error(
        &c,
        l,
        "PUT",
        "/delete_broker/x1",
        None,
        None,
        400,
        "bad_request",
        "",
    )
    .await;
    expect_error(
        &c,
        g,
        "PUT",
        "/delete_broker/42",
        None,
        None,
        404,
        "not_found",
        "42",
    )
    .await;

    // ---- delete_broker, then re-registration of the CLOSED broker ----
    let v = ok(&c, f, "PUT", "/delete_broker/3", None).await;
    assert_keys(&v, &["message", "offset", "brokerUUID"], "delete_broker");
    assert_eq!(
        v["brokerUUID"],
        uuid3.as_str(),
        "delete_broker answers the broker's UUID"
    );
    let closed = ok(&c, g, "GET", "/get_broker/3?consistent=true", None).await["metadata"].clone();
    assert_eq!(
        closed["brokerStatus"], "CLOSED",
        "get_broker answers a CLOSED broker: {closed}"
    );
    assert_eq!(closed["epoch"], 1, "closing bumps the epoch: {closed}");
    let v = ok(&c, g, "GET", "/get_all_brokers", None).await;
    assert!(
        v["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["brokerId"] != 3),
        "get_all_brokers lists a CLOSED broker: {v}"
    );
    for node in [l, f] {
        expect_error(
            &c,
            node,
            "PUT",
            "/delete_broker/3",
            None,
            None,
            409,
            "conflict",
            "CLOSED",
        )
        .await;
    }
    expect_json_error(
        &c,
        l,
        "PUT",
        "/broker_registration_change",
        json!({"brokerId": 3, "brokerHost": "x"}),
        409,
        "conflict",
        "CLOSED",
    )
    .await;
    expect_error(
        &c,
        g,
        "POST",
        "/register_producer/3",
        None,
        None,
        409,
        "conflict",
        "CLOSED",
    )
    .await;
    let (_, b3b) = assert_write(
        &ok(
            &c,
            f,
            "POST",
            "/register_broker",
            Some(json!({"brokerId": 3, "brokerHost": "kafka-3b", "brokerPort": 9095})),
        )
        .await,
        BROKER_KEYS,
        "re-register CLOSED broker 3",
    );
    assert_ne!(
        b3b["internalUUID"],
        uuid3.as_str(),
        "a re-registration gets a new internalUUID"
    );
    assert_eq!(
        b3b["epoch"], 2,
        "re-registration: the CLOSED broker's epoch (1) + 1: {b3b}"
    );
    assert_eq!(b3b["brokerStatus"], "ALIVE", "{b3b}");
    let uuid3 = b3b["internalUUID"].as_str().unwrap().to_string();

    // ---- topics ----
    let (_, t1) = assert_write(
        &ok(
            &c,
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
            &c,
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
            &c,
            f,
            "POST",
            "/create_topic",
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    for node in [l, f] {
        expect_json_error(
            &c,
            node,
            "POST",
            "/create_topic",
            envelope("TopicRecord", json!({"name": "orders"})),
            409,
            "conflict",
            "orders",
        )
        .await;
    }
    expect_error(
        &c,
        g,
        "GET",
        "/get_topic/nope",
        None,
        None,
        404,
        "not_found",
        "nope",
    )
    .await;

    // ---- partitions ----
    let (_, p0) = assert_write(
        &ok(
            &c,
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
            &c,
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
            &c,
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
            &c,
            l,
            "POST",
            "/create_partition",
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
            &c,
            f,
            "POST",
            "/create_partition",
            body,
            404,
            "not_found",
            needle,
        )
        .await;
    }
    expect_json_error(
        &c,
        g,
        "POST",
        "/create_partition",
        json!({"partitionId": 0, "topicUUID": tu1, "replicas": [1], "leader": 1}),
        409,
        "conflict",
        "",
    )
    .await;
    let v = ok(&c, f, "GET", "/get_partitions?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_partitions");
    assert_eq!(
        v["metadata"].as_array().map(Vec::len),
        Some(3),
        "all partitions: {v}"
    );
    let v = ok(
        &c,
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
        &c,
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
        &c,
        g,
        "GET",
        "/get_partitions?topicUUID=xyz",
        None,
        None,
        400,
        "bad_request",
        "",
    )
    .await;
    let v = ok(&c, g, "GET", "/get_topic/orders?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_topic");
    assert_eq!(
        v["metadata"],
        json!({"name": "orders", "topicUUID": tu1, "partitions": [p0, p1]}),
        "get_topic answers one object with its partitions"
    );

    // ---- producers ----
    let (_, pr0) = assert_write(
        &ok(&c, f, "POST", "/register_producer/1", None).await,
        PRODUCER_KEYS,
        "register_producer with an empty body",
    );
    assert_eq!(pr0["brokerId"], 1, "{pr0}");
    assert_eq!(pr0["brokerEpoch"], 0, "{pr0}");
    let allocated = pr0["producerId"].as_i64().expect("an allocated producerId");
    assert!(allocated >= 0, "{pr0}");
    let (_, pr1) = assert_write(
        &ok(
            &c,
            l,
            "POST",
            "/register_producer/3",
            Some(envelope("ProducerIdsRecord", json!({"producerId": 1000}))),
        )
        .await,
        PRODUCER_KEYS,
        "register_producer (envelope, explicit id)",
    );
    assert_eq!(
        pr1,
        json!({"brokerId": 3, "brokerEpoch": 2, "producerId": 1000})
    );
    let (_, pr2) = assert_write(
        &ok(
            &c,
            g,
            "POST",
            "/register_producer/2",
            Some(json!({"brokerId": 2})),
        )
        .await,
        PRODUCER_KEYS,
        "register_producer (bare, brokerId equal to the path)",
    );
    assert_eq!(
        pr2["producerId"], 1001,
        "allocation goes above every id ever used: {pr2}"
    );
    expect_json_error(
        &c,
        f,
        "POST",
        "/register_producer/2",
        json!({"producerId": 1000}),
        409,
        "conflict",
        "1000",
    )
    .await;
    expect_error(
        &c,
        l,
        "POST",
        "/register_producer/42",
        None,
        None,
        404,
        "not_found",
        "42",
    )
    .await;
    expect_error(
        &c,
        l,
        "POST",
        "/register_producer/one",
        None,
        None,
        400,
        "bad_request",
        "",
    )
    .await;
    for (body, needle) in [
        (json!({"producerId": -1}), "producerId"),
        (json!({"producerId": "7"}), "producerId"),
        (json!({"brokerId": 3}), "brokerId"),
        (json!({"brokerEpoch": 0}), "brokerEpoch"),
        (envelope("TopicRecord", json!({})), "ProducerIdsRecord"),
    ] {
        expect_json_error(
            &c,
            g,
            "POST",
            "/register_producer/2",
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    let v = ok(&c, f, "GET", "/get_producer_ids?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_producer_ids");
    assert_eq!(v["metadata"], json!([pr0, pr1, pr2]), "get_producer_ids");

    // ---- broker_registration_change: canonical name, alias, bare ----
    let mut change_keys = vec!["brokerId", "brokerHost", "epoch"];
    let (_, ch1) = assert_write(
        &ok(
            &c,
            f,
            "PUT",
            "/broker_registration_change",
            Some(envelope(
                "RegistrationChangeBrokerRecord",
                json!({"brokerId": 1, "brokerHost": "kafka-1.new"}),
            )),
        )
        .await,
        &change_keys,
        "broker_registration_change under the alias name",
    );
    assert_eq!(ch1["epoch"], 1, "change: epoch + 1: {ch1}");
    change_keys = vec!["brokerId", "brokerPort", "brokerStatus", "epoch"];
    let (_, ch2) = assert_write(
        &ok(
            &c,
            l,
            "PUT",
            "/broker_registration_change",
            Some(envelope(
                "BrokerRegistrationChangeBrokerRecord",
                json!({"brokerId": 1, "brokerPort": "9999", "brokerStatus": "FENCED"}),
            )),
        )
        .await,
        &change_keys,
        "broker_registration_change under the canonical name",
    );
    assert_eq!(ch2["epoch"], 2, "{ch2}");
    let (_, ch3) = assert_write(
        &ok(
            &c,
            g,
            "PUT",
            "/broker_registration_change",
            Some(json!({"brokerId": 2, "securityProtocol": "SSL"})),
        )
        .await,
        &["brokerId", "securityProtocol", "epoch"],
        "broker_registration_change (bare)",
    );
    let v = ok(&c, f, "GET", "/get_broker/1?consistent=true", None).await["metadata"].clone();
    assert_eq!(
        (
            &v["brokerHost"],
            &v["brokerPort"],
            &v["brokerStatus"],
            &v["epoch"]
        ),
        (
            &json!("kafka-1.new"),
            &json!(9999),
            &json!("FENCED"),
            &json!(2)
        ),
        "broker 1 after two changes: {v}"
    );
    for (body, needle) in [
        (json!({"brokerHost": "x"}), "brokerId"),
        (json!({"brokerId": 1, "brokerPort": 0}), "brokerPort"),
        (json!({"brokerId": 1, "epoch": 5}), "epoch"),
        (json!({"brokerId": 1, "rackId": "r"}), "rackId"),
        (
            envelope("RegisterBrokerRecord", json!({"brokerId": 1})),
            "BrokerRegistrationChangeBrokerRecord",
        ),
    ] {
        expect_json_error(
            &c,
            f,
            "PUT",
            "/broker_registration_change",
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    expect_json_error(
        &c,
        l,
        "PUT",
        "/broker_registration_change",
        json!({"brokerId": 42, "brokerHost": "x"}),
        404,
        "not_found",
        "42",
    )
    .await;

    // ---- unknown paths and wrong methods: JSON errors too ----
    expect_error(
        &c,
        f,
        "GET",
        "/no/such/path",
        None,
        None,
        404,
        "not_found",
        "/no/such/path",
    )
    .await;
    expect_json_error(
        &c,
        l,
        "POST",
        "/topics",
        json!({"name": "t"}),
        404,
        "not_found",
        "/topics",
    )
    .await;
    for (method, path) in [
        ("GET", "/register_broker"),
        ("POST", "/get_metadata"),
        ("DELETE", "/delete_broker/1"),
        ("POST", "/broker_registration_change"),
        ("PUT", "/create_topic"),
        ("POST", "/broker_mgmt/0"),
    ] {
        expect_error(
            &c,
            g,
            method,
            path,
            None,
            None,
            405,
            "method_not_allowed",
            path,
        )
        .await;
    }
    expect_error(
        &c,
        f,
        "GET",
        "/get_metadata?consistent=maybe",
        None,
        None,
        400,
        "bad_request",
        "consistent",
    )
    .await;

    // ---- inputs that reach axum's extractors or edge cases, never a 500 ----
    expect_error(
        &c,
        f,
        "GET",
        "/get_topic/%FF",
        None,
        None,
        400,
        "bad_request",
        "",
    )
    .await;
    expect_error(
        &c,
        g,
        "GET",
        "/get_metadata?consistent=true&consistent=true",
        None,
        None,
        400,
        "bad_request",
        "",
    )
    .await;
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes();
    expect_error(
        &c,
        l,
        "POST",
        "/create_topic",
        json_ct,
        Some(&deep),
        400,
        "bad_request",
        "JSON",
    )
    .await;
    for id in ["18446744073709551615", "x"] {
        let url = format!("http://{}/stream", c.nodes[f].addr);
        let resp = c
            .http
            .get(&url)
            .header("last-event-id", id)
            .send()
            .await
            .expect("stream with Last-Event-ID");
        let r = Raw {
            status: resp.status().as_u16(),
            content_type: resp.headers()["content-type"].to_str().unwrap().to_string(),
            retry_after: None,
            body: resp.text().await.unwrap_or_default(),
        };
        assert_error(
            &r,
            400,
            "bad_request",
            "Last-Event-ID",
            &format!("Last-Event-ID {id}"),
        );
    }

    // ---- get_metadata: every node folds the same image ----
    let end = idle_log_end(&c).await;
    let v = ok(&c, l, "GET", "/get_metadata", None).await;
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
        m["BrokerRegistrationChangeBrokerRecord"][3], ch3,
        "change records in offset order"
    );
    for i in [f, g] {
        let w = ok(&c, i, "GET", "/get_metadata", None).await;
        assert_eq!(w, v, "node {i}'s image differs from the leader's");
    }

    // ---- the log by offset: /fetch and /stream ----
    let records = log(&c, g).await;
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
    let v = ok(&c, f, "GET", "/fetch?offset=end", None).await;
    assert_keys(
        &v,
        &[
            "records",
            "next_offset",
            "high_watermark",
            "log_start_offset",
        ],
        "fetch",
    );
    assert_eq!(v["high_watermark"], end + 1, "{v}");
    assert_eq!(v["records"], json!([]), "{v}");
    let v = ok(&c, f, "GET", "/fetch?offset=0&names=TopicRecord", None).await;
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
        &c,
        f,
        "GET",
        "/fetch?offset=minus",
        None,
        None,
        400,
        "bad_request",
        "offset",
    )
    .await;
    expect_error(
        &c,
        f,
        "GET",
        "/fetch?names=Nope",
        None,
        None,
        400,
        "bad_request",
        "Nope",
    )
    .await;
    let sse = stream_records(&c, g, "/stream?offset=0&names=TopicRecord", 2).await;
    assert_eq!(
        sse.iter()
            .map(|r| r["fields"]["name"].clone())
            .collect::<Vec<_>>(),
        vec![json!("orders"), json!("pay.ments-v2_x")],
        "/stream ?names= filters"
    );

    // ---- catch-up: delta mode straddling a time, every timestamp form; snapshot mode ----
    let batch_a_end = records.last().unwrap()["timestamp"].as_u64().unwrap();
    // Write until a record lands in a later second than batch A's last one, so a whole-second
    // timestamp falls between the two batches.
    let boundary_s = batch_a_end / 1000 + 1;
    let mut n = 0;
    eventually(SECS_30, "a record in a later second", || {
        n += 1;
        let name = format!("later-{n}");
        let c = &c;
        async move {
            let v = ok(c, f, "POST", "/create_topic", Some(json!({"name": name}))).await;
            let off = v["offset"].as_u64().unwrap();
            let r = ok(
                c,
                f,
                "GET",
                &format!("/fetch?offset={off}&max_records=1"),
                None,
            )
            .await;
            (r["records"][0]["timestamp"].as_u64()? >= boundary_s * 1000).then_some(())
        }
    })
    .await;
    ok(&c, l, "POST", "/register_producer/2", None).await;
    ok(
        &c,
        l,
        "PUT",
        "/broker_registration_change",
        Some(json!({"brokerId": 2, "brokerStatus": "ALIVE"})),
    )
    .await;
    ok(
        &c,
        l,
        "POST",
        "/create_partition",
        Some(json!({"partitionId": 7, "topicUUID": tu2, "replicas": [2], "leader": 2})),
    )
    .await;
    let end = idle_log_end(&c).await;
    let all = log(&c, f).await;
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
            let v = ok(&c, node, "GET", &format!("/{path}/{form}"), None).await;
            let what = format!("/{path}/{form}");
            assert_keys(&v, &["mode", "since", "offset", "metadata"], &what);
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
    let image = ok(&c, l, "GET", "/get_metadata", None).await["metadata"].clone();
    for (path, with_producers) in [("broker_mgmt", true), ("client_mgmt", false)] {
        let v = ok(&c, f, "GET", &format!("/{path}/{old}"), None).await;
        let what = format!("/{path}/{old}");
        assert_keys(&v, &["mode", "since", "offset", "metadata"], &what);
        assert_eq!(v["mode"], "snapshot", "{what}: {v}");
        let mut want = image.clone();
        if !with_producers {
            want.as_object_mut().unwrap().remove("ProducerIdsRecord");
        }
        assert_eq!(v["metadata"], want, "{what}: snapshot is the image");
        // Exactly at the window's edge it is still delta.
        let edge = newest - 600_000;
        let v = ok(&c, f, "GET", &format!("/{path}/{edge}"), None).await;
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
                &c,
                g,
                "GET",
                &format!("/{path}/{}", bad.replace(' ', "%20")),
                None,
                None,
                400,
                "bad_request",
                "timestamp",
            )
            .await;
        }
    }
}

/// Reads `n` `record` events of an SSE stream.
async fn stream_records(c: &Cluster, i: usize, path: &str, n: usize) -> Vec<Value> {
    use futures::StreamExt;
    let url = format!("http://{}{}", c.nodes[i].addr, path);
    let resp = c.http.get(&url).send().await.expect("stream");
    assert_eq!(resp.status(), 200, "{path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{path}: {ct}");
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + SECS_30;
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("stream events in time")
            .expect("stream open")
            .expect("stream chunk");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut kind = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(v.trim().to_string());
                }
            }
            if kind.as_deref() == Some("record") {
                let r: Value = serde_json::from_str(&data.unwrap()).unwrap();
                assert_eq!(id, Some(r["offset"].to_string()), "SSE id is the offset");
                out.push(r);
            }
        }
    }
    out
}

/// Fires `per_node` copies of the same write at every node at once; returns the statuses.
async fn race(c: &Cluster, path: &str, body: Value, per_node: usize) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for round in 0..per_node {
        for i in 0..c.nodes.len() {
            let url = format!("http://{}{}", c.nodes[i].addr, path);
            let http = c.http.clone();
            let body = body.clone();
            let _ = round;
            tasks.push(tokio::spawn(async move {
                let resp = http.post(&url).json(&body).send().await.expect("send");
                let s = resp.status().as_u16();
                (s, resp.json::<Value>().await.unwrap_or(Value::Null))
            }));
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_writes_commit_once_and_without_a_leader_writes_are_503() {
    let mut c = Cluster::start(3, &[]).await;
    c.leader(SECS_30).await;
    for (path, body, kind, is_it) in [
        (
            "/create_topic",
            json!({"name": "race"}),
            "TopicRecord",
            Box::new(|f: &Value| f["name"] == "race") as Box<dyn Fn(&Value) -> bool>,
        ),
        (
            "/register_broker",
            envelope(
                "RegisterBrokerRecord",
                json!({"brokerId": 7, "brokerHost": "h7", "brokerPort": 9092}),
            ),
            "RegisterBrokerRecord",
            Box::new(|f: &Value| f["brokerId"] == 7),
        ),
    ] {
        let answers = race(&c, path, body, 10).await;
        let ok = answers.iter().filter(|(s, _)| *s == 200).count();
        let conflicts = answers.iter().filter(|(s, _)| *s == 409).count();
        assert_eq!(
            (ok, conflicts),
            (1, answers.len() - 1),
            "{path}: exactly one 200 and the rest 409: {answers:?}"
        );
        for (s, v) in &answers {
            if *s == 409 {
                assert_eq!(v["error"], "conflict", "{path}: {v}");
            }
        }
        idle_log_end(&c).await;
        for i in 0..3 {
            let n = log(&c, i)
                .await
                .iter()
                .filter(|r| r["name"] == kind && is_it(&r["fields"]))
                .count();
            assert_eq!(
                n, 1,
                "{path}: node {i}'s log holds {n} records of the raced write"
            );
        }
    }

    // Without a leader: kill the leader and one follower; the last node loses its leader and
    // answers writes (direct or to be forwarded) with 503 + Retry-After, appending nothing.
    let l = c.leader(SECS_30).await;
    let survivor = (l + 1) % 3;
    c.nodes[l].kill();
    c.nodes[(l + 2) % 3].kill();
    eventually(SECS_30, "the survivor sees no leader", || async {
        let r = raw(&c, survivor, "GET", "/health", None, None).await;
        (r.status == 503).then_some(())
    })
    .await;
    let before = c.cluster_view(survivor).await.expect("view")["last_log_offset"].clone();
    for (path, body) in [
        ("/create_topic", json!({"name": "leaderless"})),
        (
            "/register_broker",
            json!({"brokerId": 8, "brokerHost": "h", "brokerPort": 1}),
        ),
    ] {
        let b = body.to_string().into_bytes();
        let r = raw(
            &c,
            survivor,
            "POST",
            path,
            Some("application/json"),
            Some(&b),
        )
        .await;
        assert_error(
            &r,
            503,
            "unavailable",
            "leader",
            &format!("{path} without a leader"),
        );
        assert!(r.retry_after.is_some(), "{path}: 503 without Retry-After");
    }
    let r = raw(
        &c,
        survivor,
        "GET",
        "/get_metadata?consistent=true",
        None,
        None,
    )
    .await;
    assert_error(
        &r,
        503,
        "unavailable",
        "",
        "consistent read without a leader",
    );
    let after = c.cluster_view(survivor).await.expect("view")["last_log_offset"].clone();
    assert_eq!(
        before, after,
        "a write without a leader appended to the log"
    );
}

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
        let c = &c;
        async move {
            let v = ok(
                c,
                f,
                "POST",
                "/create_topic",
                Some(json!({"name": format!("t{n}")})),
            )
            .await;
            let off = v["offset"].as_u64().unwrap();
            let r = ok(
                c,
                f,
                "GET",
                &format!("/fetch?offset={off}&max_records=1"),
                None,
            )
            .await;
            (r["records"][0]["timestamp"].as_u64()? > t0 + 1000).then_some(())
        }
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
    assert_keys(
        &v,
        &[
            "records",
            "next_offset",
            "high_watermark",
            "log_start_offset",
            "snapshot",
        ],
        "fetch below the log start",
    );
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
