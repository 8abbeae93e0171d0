//! `/stream` read by a real browser from a page of another origin: CORS, `?access_token=`, and
//! `EventSource`'s own reconnect with `Last-Event-ID` across a SIGKILL and restart of the node
//! it reads from. Also the CORS answers themselves, header by header.
//!
//! The page is served by a tiny HTTP server inside the test on its own loopback port, so its
//! origin (`http://127.0.0.1:PORT`) differs from every node's. It opens an `EventSource` on a
//! follower and appends the offset of each `record` event to a list in the DOM (other event
//! types, such as `progress`, are not counted); the test reads that list.

mod support;

#[path = "support/browser.rs"]
mod browser;

use std::time::Duration;

use browser::Headless;
use reqwest::Method;
use serde_json::{json, Value};
use support::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The token of the cluster in the browser test: reads are protected, so `EventSource` (which
/// cannot send headers) passes it as `?access_token=`.
const TOKEN: &str = "browser-s3cret";

/// How long the page gets to show what it should.
const PAGE: Duration = Duration::from_secs(60);

/// The page: an `EventSource` on `src`, each `record` event's offset appended to `#offsets`.
fn page(src: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>stream</title></head><body>
<ol id="offsets"></ol>
<script>
window.opens = 0; window.errors = 0;
const es = new EventSource({src});
window.es = es;
es.addEventListener("open", () => {{ window.opens += 1; }});
es.addEventListener("error", () => {{ window.errors += 1; }});
es.addEventListener("record", (e) => {{
  const r = JSON.parse(e.data);
  const li = document.createElement("li");
  li.textContent = String(r.offset);
  li.dataset.id = e.lastEventId;
  document.getElementById("offsets").appendChild(li);
}});
</script></body></html>"#,
        src = serde_json::to_string(src).expect("a JS string")
    )
}

/// Serves `html` to every request on `listener` until the test ends.
fn serve_page(listener: TcpListener, html: String) {
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                    html.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(html.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
}

/// A loopback listener on a free port, and the origin a page served from it has.
async fn page_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a page port");
    let port = l.local_addr().expect("its address").port();
    (l, format!("http://127.0.0.1:{port}"))
}

/// `n` nodes whose reads need [`TOKEN`] and that allow `origin` (`--cors-origin`); the test's
/// own client sends the token.
async fn protected(n: usize, origin: &str) -> Cluster {
    let mut c = Cluster::empty(&["--token", TOKEN, "--protect-reads", "--cors-origin", origin]);
    c.http = support::http_with_token(TOKEN);
    for _ in 0..n {
        c.add_node();
    }
    c.wait_voters(n, Duration::from_secs(30)).await;
    c
}

/// Creates `n` topics through node `i`; their offsets.
async fn write(c: &Cluster, i: usize, prefix: &str, n: usize) -> Vec<u64> {
    let mut offsets = Vec::new();
    for k in 0..n {
        let (st, v) = c
            .post(i, "/create_topic", json!({"name": format!("{prefix}-{k}")}))
            .await;
        assert_eq!(st, 200, "create {prefix}-{k}: {v}");
        offsets.push(v["offset"].as_u64().expect("an offset"));
    }
    offsets
}

const SHOWN: &str = "return {
    offsets: Array.from(document.querySelectorAll('#offsets li')).map(li => Number(li.textContent)),
    ids: Array.from(document.querySelectorAll('#offsets li')).map(li => li.dataset.id),
    opens: window.opens, errors: window.errors, state: window.es ? window.es.readyState : -1 };";

fn offsets(v: &Value) -> Vec<u64> {
    v["offsets"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a 3-node cluster and headless Chromium"]
async fn a_page_of_another_origin_streams_from_a_follower_across_its_restart() {
    let (allowed, allowed_origin) = page_listener().await;
    let mut c = protected(3, &allowed_origin).await;
    let l = c.leader(Duration::from_secs(30)).await;
    let f = (0..3).find(|&i| i != l).expect("a follower");
    let cluster_id = c.cluster_view(f).await.expect("a view")["cluster_id"].clone();
    assert!(cluster_id.is_string(), "the follower knows its cluster");
    let src = format!(
        "http://{}/stream?offset=0&access_token={TOKEN}",
        c.nodes[f].addr
    );
    serve_page(allowed, page(&src));
    let mut expected = write(&c, l, "before", 10).await;
    c.wait_applied(
        f,
        *expected.last().expect("written"),
        Duration::from_secs(30),
    )
    .await;

    let b = Headless::start().await;

    b.client()
        .goto(&format!("{allowed_origin}/"))
        .await
        .expect("open the page");
    let shown = b
        .poll("the first records", PAGE, SHOWN, |v| {
            (offsets(v) == expected).then(|| v.clone())
        })
        .await;
    assert_eq!(shown["opens"], 1, "{shown}");

    // The node the page reads from dies; records are written meanwhile; it comes back.
    c.nodes[f].kill();
    b.poll("the stream broken off", PAGE, SHOWN, |v| {
        (v["errors"].as_u64().unwrap_or(0) >= 1).then_some(())
    })
    .await;
    expected.extend(write(&c, l, "while-down", 10).await);
    c.nodes[f].spawn();
    expected.extend(write(&c, l, "after", 10).await);

    let shown = b
        .poll("every record once, in order", PAGE, SHOWN, |v| {
            let got = offsets(v);
            assert!(
                got.len() <= expected.len() && got[..] == expected[..got.len()],
                "the page showed a record twice or out of order: {got:?}, expected {expected:?}"
            );
            (got == expected).then(|| v.clone())
        })
        .await;
    assert!(
        shown["opens"].as_u64().unwrap_or(0) >= 2,
        "the browser reconnected on its own: {shown}"
    );
    let ids: Vec<String> = expected.iter().map(u64::to_string).collect();
    assert_eq!(shown["ids"], json!(ids), "each event's id is its offset");
    // The restarted node names the same cluster, in /cluster and in its headers.
    let after = c.cluster_view(f).await.expect("a view");
    assert_eq!(
        after["cluster_id"], cluster_id,
        "the cluster id survives a restart"
    );
    let resp = c
        .http
        .get(format!("http://{}/get_all_brokers", c.nodes[f].addr))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        resp.headers()
            .get("x-yakt-cluster-id")
            .and_then(|v| v.to_str().ok()),
        cluster_id.as_str(),
        "the header after a restart"
    );

    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a node and headless Chromium"]
async fn a_page_of_an_origin_not_allowed_shows_nothing_when_reads_are_protected() {
    let (allowed, allowed_origin) = page_listener().await;
    let (other, other_origin) = page_listener().await;
    let c = protected(1, &allowed_origin).await;
    let written = write(&c, 0, "t", 3).await;
    let src = format!(
        "http://{}/stream?offset=0&access_token={TOKEN}",
        c.nodes[0].addr
    );
    serve_page(allowed, page(&src));
    serve_page(other, page(&src));

    let b = Headless::start().await;
    // The control: the same page from the allowed origin shows the records.
    b.client()
        .goto(&format!("{allowed_origin}/"))
        .await
        .expect("open the allowed page");
    b.poll("the records", PAGE, SHOWN, |v| {
        (offsets(v) == written).then_some(())
    })
    .await;
    // From another origin the browser refuses the answer: the EventSource fails for good
    // (readyState 2, CLOSED) and nothing is shown.
    b.client()
        .goto(&format!("{other_origin}/"))
        .await
        .expect("open the other page");
    let shown = b
        .poll("the stream refused", PAGE, SHOWN, |v| {
            (v["state"] == 2).then(|| v.clone())
        })
        .await;
    assert_eq!(offsets(&shown), Vec::<u64>::new(), "{shown}");
    b.close().await;
}

/// Sends a request with an `Origin` and returns the status and the CORS headers it answered.
async fn cors(
    addr: &str,
    method: Method,
    path: &str,
    origin: &str,
    preflight_for: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut req = http
        .request(method, format!("http://{addr}{path}"))
        .header("origin", origin);
    if let Some(m) = preflight_for {
        req = req.header("access-control-request-method", m).header(
            "access-control-request-headers",
            "authorization, content-type",
        );
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("an answer");
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map_or(Value::Null, |s| Value::String(s.to_string()))
    };
    let headers = json!({
        "allow_origin": h("access-control-allow-origin"),
        "allow_methods": h("access-control-allow-methods"),
        "allow_headers": h("access-control-allow-headers"),
        "expose": h("access-control-expose-headers"),
        "node": h("x-yakt-node-id"),
        "cluster": h("x-yakt-cluster-id"),
    });
    (resp.status().as_u16(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_star_on_open_reads_and_listed_origins_everywhere() {
    // An open node: reads from anywhere, writes from nowhere.
    let open = Cluster::start(1, &[]).await;
    let a = open.nodes[0].addr.clone();
    let page = "http://127.0.0.1:1";
    let (st, h) = cors(&a, Method::GET, "/get_metadata", page, None, None).await;
    assert_eq!((st, &h["allow_origin"]), (200, &json!("*")), "{h}");
    assert!(
        h["expose"]
            .as_str()
            .is_some_and(|e| e.contains("x-yakt-cluster-id")),
        "the page may read the identity headers: {h}"
    );
    assert!(h["cluster"].is_string() && h["node"] == "1", "{h}");
    let (st, h) = cors(&a, Method::OPTIONS, "/stream", page, Some("GET"), None).await;
    assert_eq!(
        (st, &h["allow_origin"]),
        (204, &json!("*")),
        "a read's preflight: {h}"
    );
    assert!(
        h["cluster"].is_string(),
        "a preflight names the cluster too: {h}"
    );
    let (st, h) = cors(
        &a,
        Method::OPTIONS,
        "/create_topic",
        page,
        Some("POST"),
        None,
    )
    .await;
    assert_ne!(
        st, 204,
        "a write's preflight from an origin not listed: {h}"
    );
    assert_eq!(h["allow_origin"], Value::Null, "{h}");
    let (_, h) = cors(&a, Method::POST, "/create_topic", page, None, None).await;
    assert_eq!(
        h["allow_origin"],
        Value::Null,
        "a write from an origin not listed: {h}"
    );

    // Protected reads: only the listed origin, for every method, preflight included.
    let listed = "http://127.0.0.1:2";
    let p = protected(1, listed).await;
    let a = p.nodes[0].addr.clone();
    let (st, h) = cors(&a, Method::GET, "/cluster", page, None, Some(TOKEN)).await;
    assert_eq!(
        (st, &h["allow_origin"]),
        (200, &Value::Null),
        "reads are not for '*': {h}"
    );
    let (st, h) = cors(&a, Method::GET, "/cluster", listed, None, Some(TOKEN)).await;
    assert_eq!((st, &h["allow_origin"]), (200, &json!(listed)), "{h}");
    let (st, h) = cors(&a, Method::GET, "/cluster", listed, None, None).await;
    assert_eq!(
        (st, &h["allow_origin"]),
        (401, &json!(listed)),
        "the page may read why it was refused: {h}"
    );
    let (st, h) = cors(
        &a,
        Method::OPTIONS,
        "/create_topic",
        listed,
        Some("POST"),
        None,
    )
    .await;
    assert_eq!((st, &h["allow_origin"]), (204, &json!(listed)), "{h}");
    assert!(
        h["allow_methods"]
            .as_str()
            .is_some_and(|m| m.contains("POST") && m.contains("DELETE")),
        "{h}"
    );
    assert!(
        h["allow_headers"]
            .as_str()
            .is_some_and(|m| m.contains("authorization")),
        "{h}"
    );
    let (st, h) = cors(
        &a,
        Method::OPTIONS,
        "/get_metadata",
        page,
        Some("GET"),
        None,
    )
    .await;
    assert_ne!((st, &h["allow_origin"]), (204, &json!("*")), "{h}");
    let (st, v) = p
        .request(0, Method::POST, "/create_topic", Some(json!({"name": "x"})))
        .await;
    assert_eq!(st, 200, "{v}");
}
