//! What every concern shares: the cluster they run on ([`Ctx`]), requests that check the shape of
//! every answer, and error checks that also prove nothing was appended.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

pub use super::support::{eventually, Cluster};
use yakt::client::sse;

pub const SECS_30: Duration = Duration::from_secs(30);

pub const RECORD_NAMES: [&str; 6] = [
    "RegisterBrokerRecord",
    "TopicRecord",
    "PartitionRecord",
    "ProducerIdsRecord",
    "BrokerRegistrationChangeBrokerRecord",
    "PartitionChangeRecord",
];

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {v}"))
        .keys()
        .cloned()
        .collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Asserts `v` has exactly the keys `names`.
pub fn assert_keys(v: &Value, names: &[&str], what: &str) {
    assert_eq!(keys(v), set(names), "{what}: wrong field names in {v}");
}

pub const BROKER_KEYS: &[&str] = &[
    "brokerId",
    "brokerHost",
    "brokerPort",
    "securityProtocol",
    "brokerStatus",
    "internalUUID",
    "epoch",
];
pub const TOPIC_KEYS: &[&str] = &["name", "topicUUID"];
pub const PARTITION_KEYS: &[&str] = &[
    "partitionId",
    "topicUUID",
    "replicas",
    "ISR",
    "removingReplicas",
    "addingReplicas",
    "leader",
    "leaderEpoch",
    "partitionEpoch",
];
pub const PRODUCER_KEYS: &[&str] = &["brokerId", "brokerEpoch", "producerId"];
/// A `/fetch` page's keys (a page below the log start adds `snapshot`).
pub const FETCH_KEYS: &[&str] = &[
    "records",
    "next_offset",
    "high_watermark",
    "log_start_offset",
    "commit_offset",
    "leader_id",
];

/// A raw answer: status, content type and body text.
pub struct Raw {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", self.body))
    }
}

/// Any request with any body and content type.
pub async fn raw(
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
pub async fn call(
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
pub async fn ok(c: &Cluster, i: usize, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(c, i, method, path, body.clone()).await;
    assert_eq!(s, 200, "{method} {path} with {body:?} on node {i}: {v}");
    v
}

/// The leader's last log offset once the cluster is idle (leader's commit == last log offset,
/// every node applied it): an exact measure of "nothing was appended".
pub async fn idle_log_end(c: &Cluster) -> u64 {
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
pub fn assert_error(r: &Raw, status: u16, kind: &str, needle: &str, what: &str) {
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

/// Where a request goes: the node's index, the method and the path.
pub type At<'a> = (usize, &'a str, &'a str);

/// Sends a request with `body` of `content_type` that must fail with `status`/`kind` and a
/// message mentioning `needle`, and checks the log did not grow.
pub async fn expect_body_error(
    c: &Cluster,
    (i, method, path): At<'_>,
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

/// [`expect_body_error`] without a body.
pub async fn expect_error(c: &Cluster, at: At<'_>, status: u16, kind: &str, needle: &str) {
    expect_body_error(c, at, None, None, status, kind, needle).await;
}

/// [`expect_body_error`] for a JSON body.
pub async fn expect_json_error(
    c: &Cluster,
    at: At<'_>,
    body: Value,
    status: u16,
    kind: &str,
    needle: &str,
) {
    let b = body.to_string().into_bytes();
    let json = Some("application/json");
    expect_body_error(c, at, json, Some(&b), status, kind, needle).await;
}

pub fn envelope(name: &str, fields: Value) -> Value {
    json!({"type": "metadata", "name": name, "fields": fields})
}

/// Checks a write's answer: `{"message", "offset", "metadata"}` with the record's fields; a
/// registration's also carries `brokerEpoch`, its offset (API.md "Broker liveness").
pub fn assert_write(v: &Value, fields: &[&str], what: &str) -> (u64, Value) {
    if fields.contains(&"internalUUID") {
        assert_keys(v, &["message", "offset", "metadata", "brokerEpoch"], what);
        assert_eq!(
            v["brokerEpoch"], v["offset"],
            "{what}: brokerEpoch is the offset"
        );
    } else {
        assert_keys(v, &["message", "offset", "metadata"], what);
    }
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

/// Creates topic `name` through node `i`; `Some` once its record's timestamp is at or after
/// `at_ms` (for polling until the leader's clock has passed a time).
pub async fn topic_written_after(c: &Cluster, i: usize, name: String, at_ms: u64) -> Option<()> {
    let v = ok(c, i, "POST", "/create_topic", Some(json!({ "name": name }))).await;
    let off = v["offset"].as_u64().unwrap();
    let path = format!("/fetch?offset={off}&max_records=1");
    let r = ok(c, i, "GET", &path, None).await;
    (r["records"][0]["timestamp"].as_u64()? >= at_ms).then_some(())
}

/// Every record in node `i`'s log (from offset 1).
pub async fn log(c: &Cluster, i: usize) -> Vec<Value> {
    c.records_from(i, 1).await
}
/// Reads `n` `record` events of an SSE stream.
pub async fn stream_records(c: &Cluster, i: usize, path: &str, n: usize) -> Vec<Value> {
    use futures::StreamExt;
    let url = format!("http://{}{}", c.nodes[i].addr, path);
    let resp = c.http.get(&url).send().await.expect("stream");
    assert_eq!(resp.status(), 200, "{path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{path}: {ct}");
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(1 << 20);
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + SECS_30;
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("stream events in time")
            .expect("stream open")
            .expect("stream chunk");
        parser.feed(&chunk).expect("an SSE stream");
        while let Some(event) = parser.next_event().expect("an SSE event") {
            if event.event == "record" {
                let r: Value = serde_json::from_str(&event.data).unwrap();
                assert_eq!(
                    event.id,
                    Some(r["offset"].to_string()),
                    "SSE id is the offset"
                );
                out.push(r);
            }
        }
    }
    out
}

/// A three-node cluster accepting bodies up to 4096 bytes, its leader and two followers.
pub struct Ctx {
    pub c: Cluster,
    /// The leader when the test started.
    pub l: usize,
    /// A follower.
    pub f: usize,
    /// The other follower.
    pub g: usize,
}

impl Ctx {
    /// Starts the cluster and waits for a leader.
    pub async fn start() -> Ctx {
        let c = Cluster::start(3, &["--max-body", "4096"]).await;
        let l = c.leader(SECS_30).await;
        Ctx {
            c,
            l,
            f: (l + 1) % 3,
            g: (l + 2) % 3,
        }
    }
}
