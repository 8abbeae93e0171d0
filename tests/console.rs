//! The web console in a real browser: headless Chromium (the distribution's `chromium` and
//! `chromium-driver` packages) driven over WebDriver, against real `yakt` processes.
//!
//! The browser tests are `#[ignore]`d (slow); CI runs them with `--include-ignored`. Without
//! chromedriver they fail, saying how to install it: they never skip.
//!
//! The page is read through small scripts (`execute`) that return what the DOM shows, polled
//! with a deadline: the members table is redrawn at every poll, so element handles would go
//! stale. The user's actions (tabs, the offset field, buttons, the token) are real clicks and
//! keystrokes.

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::time::Duration;

use browser::Headless;
use serde_json::{json, Value};
use support::{eventually, Cluster};

/// How long the page gets to show something.
const PAGE: Duration = Duration::from_secs(20);

/// The members table as the page shows it: `[{id, role}]`.
const MEMBERS: &str = "return [...document.querySelectorAll('#members tbody tr')]\
    .map(tr => ({id: Number(tr.dataset.memberId), role: tr.dataset.role}));";

/// The record rows in view: `[{offset, name, snapshot}]`.
const RECORD_ROWS: &str = "return [...document.querySelectorAll('#records .record-row')]\
    .map(r => ({offset: Number(r.dataset.offset), name: r.dataset.name, \
    fields: r.children[4].textContent}));";

/// The one leader's id when the table lists `n` members of which exactly one leads.
fn one_leader(v: &Value, n: usize) -> Option<u64> {
    let rows = v.as_array()?;
    let leaders: Vec<u64> = rows
        .iter()
        .filter(|r| r["role"] == "leader")
        .filter_map(|r| r["id"].as_u64())
        .collect();
    (rows.len() == n && leaders.len() == 1).then(|| leaders[0])
}

async fn post_ok(c: &Cluster, i: usize, path: &str, body: Value) -> Value {
    eventually(
        Duration::from_secs(20),
        &format!("POST {path} answered 200"),
        || {
            let body = body.clone();
            async move {
                let (s, v) = c.post(i, path, body).await;
                match s {
                    200 => Some(v),
                    0 | 503 => None,
                    other => panic!("POST {path}: {other} {v}"),
                }
            }
        },
    )
    .await
}

/// Three brokers, a dozen topics with three partitions each: something to look at.
async fn populate(c: &Cluster, i: usize) -> Vec<(String, String)> {
    for b in 1..=3 {
        post_ok(
            c,
            i,
            "/register_broker",
            json!({"brokerId": b, "brokerHost": format!("broker-{b}.local"), "brokerPort": 9092, "rackId": format!("rack-{}", b % 2)}),
        )
        .await;
    }
    let mut topics = Vec::new();
    for name in [
        "orders",
        "payments",
        "clicks",
        "inventory",
        "audit.log",
        "sessions",
        "emails",
        "shipments",
        "refunds",
        "search-queries",
        "metrics.raw",
        "user-events",
    ] {
        let t = post_ok(c, i, "/create_topic", json!({"name": name})).await;
        let uuid = t["metadata"]["topicUUID"]
            .as_str()
            .expect("topicUUID")
            .to_string();
        for p in 0..3 {
            let replicas = [1 + p % 3, 1 + (p + 1) % 3, 1 + (p + 2) % 3];
            post_ok(
                c,
                i,
                "/create_partition",
                json!({"topicUUID": uuid, "partitionId": p, "replicas": replicas,
                       "ISR": replicas, "leader": replicas[0]}),
            )
            .await;
        }
        topics.push((name.to_string(), uuid));
    }
    topics
}

/// A client that does not follow redirects and sends no token.
fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `GET /` sends the browser to the page; the page's files come with their content types and
/// `Cache-Control: no-cache` plus an `ETag`, so a node with a new binary is seen at once.
async fn check_static_files(addr: &str) {
    let http = plain_http();
    let root = http
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("GET /");
    assert!(
        root.status().is_redirection(),
        "GET / answered {}",
        root.status()
    );
    assert_eq!(root.headers()["location"], "/ui/");
    for (path, ct) in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/events.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let r = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("GET a console file");
        assert_eq!(r.status(), 200, "GET {path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap_or("").starts_with(ct),
            "{path} is served as {:?}",
            h["content-type"]
        );
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let etag = h["etag"].clone();
        let again = http
            .get(format!("http://{addr}{path}"))
            .header("if-none-match", etag)
            .send()
            .await
            .expect("a conditional GET");
        assert_eq!(again.status(), 304, "{path} with its own ETag");
    }
    let missing = http
        .get(format!("http://{addr}/ui/nope.js"))
        .send()
        .await
        .expect("GET a missing file");
    assert_eq!(missing.status(), 404);
}

/// The whole console against a three-node cluster: members and the one leader, a topic created
/// over HTTP appearing without a reload, the new leader after the old one is SIGKILLed, and the
/// record stream from a chosen offset, in order, paused and resumed without a gap or a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a three-node cluster and a headless browser"]
async fn console_shows_a_live_cluster() {
    // Small segments and a snapshot every 40 entries: populating purges the start of the log,
    // so the page's stream from offset 0 begins with a snapshot.
    let mut c = Cluster::start(
        3,
        &[
            "--snapshot-every",
            "40",
            "--keep-after-snapshot",
            "2",
            "--segment-bytes",
            "1024",
        ],
    )
    .await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let page_node = (leader + 1) % 3; // a follower: it outlives the leader
    let addr = c.nodes[page_node].addr.clone();
    check_static_files(&addr).await;
    populate(&c, page_node).await;
    eventually(
        Duration::from_secs(20),
        "the page's node purged the start of its log",
        || async {
            let (s, v) = c.get(page_node, "/fetch?offset=0&max_records=1").await;
            (s == 200 && v.get("snapshot").is_some()).then_some(())
        },
    )
    .await;

    let b = Headless::start().await;
    b.client()
        .goto(&format!("http://{addr}/"))
        .await
        .expect("open the console");
    let url = b.client().current_url().await.expect("the page's URL");
    assert_eq!(url.path(), "/ui/", "GET / leads to the console");

    // The three members, exactly one of them the leader, and it is the one the nodes name.
    let leader_id = c.nodes[leader].id;
    let shown = b
        .poll("three members with one leader", PAGE, MEMBERS, |v| {
            one_leader(v, 3)
        })
        .await;
    assert_eq!(
        shown, leader_id,
        "the page names the leader the cluster has"
    );
    b.poll(
        "which node it talks to",
        PAGE,
        "return document.getElementById('talking-to').dataset.nodeId",
        |v| (v.as_str() == Some(&c.nodes[page_node].id.to_string())).then_some(()),
    )
    .await;

    // Topics, folded from the stream: all of them, with their partitions.
    b.click("a[data-tab=topics]").await;
    b.poll(
        "the twelve topics in the count",
        PAGE,
        "return document.getElementById('topic-count').textContent",
        |v| (v.as_str() == Some("12")).then_some(()),
    )
    .await;
    b.click(".topic-row[data-name=orders]").await;
    b.poll(
        "the three partitions of the topic picked",
        PAGE,
        "return [...document.querySelectorAll('#partitions .vrow')].map(r => r.dataset.partition)",
        |v| (v == &json!(["0", "1", "2"])).then_some(()),
    )
    .await;

    if let Some(path) = std::env::var_os("YAKT_CONSOLE_SCREENSHOT") {
        b.eval("window.scrollTo(0, 0); return null").await;
        let png = b.client().screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).expect("write the screenshot");
    }

    // A topic created over HTTP shows up in the same page (no reload: the marker survives).
    b.eval("window.__notReloaded = 17; return null").await;
    b.type_into("#topic-filter", "late-topic").await;
    c.create_topic(page_node, "late-topic").await;
    b.poll(
        "late-topic in the topic list",
        PAGE,
        "return [...document.querySelectorAll('#topics .topic-row')].map(r => r.dataset.name)",
        |v| (v == &json!(["late-topic"])).then_some(()),
    )
    .await;
    assert_eq!(b.eval("return window.__notReloaded").await, json!(17));

    // SIGKILL the leader: the page shows the one the others elect, and the old one unreachable.
    c.nodes[leader].kill();
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = c.nodes[c.leader_among(&rest, Duration::from_secs(30)).await].id;
    let rows = b
        .poll("the new leader", PAGE, MEMBERS, |v| {
            (one_leader(v, 3) == Some(new_leader)).then(|| v.clone())
        })
        .await;
    let old = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == leader_id))
        .expect("the old leader's row");
    assert_eq!(old["role"], "unreachable", "the killed leader: {rows}");
    assert_eq!(b.eval("return window.__notReloaded").await, json!(17));

    // The record stream from offset 0, below the log start: the snapshot as one row, then
    // the records after it, in order.
    b.click("a[data-tab=stream]").await;
    b.type_into("#stream-offset", "0").await;
    b.click("#stream-start").await;
    b.poll("a snapshot row", PAGE, RECORD_ROWS, |v| {
        (v.as_array()?.first()?["name"] == "snapshot").then_some(())
    })
    .await;
    c.create_topic(page_node, "after-the-snapshot").await;
    let rows = b
        .poll(
            "the snapshot row, then a new record",
            PAGE,
            RECORD_ROWS,
            |v| {
                let rows = v.as_array()?;
                let last = rows.last()?["fields"].as_str()?;
                (rows.len() >= 2 && last.contains("after-the-snapshot")).then(|| v.clone())
            },
        )
        .await;
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows[0]["name"], "snapshot", "{rows:?}");
    assert!(
        rows.windows(2)
            .all(|w| w[0]["offset"].as_u64() < w[1]["offset"].as_u64()),
        "offsets increase after the snapshot: {rows:?}"
    );

    // The record stream from a chosen offset: the records the node has from there, in order.
    let from = c.create_topic(page_node, "stream-from-here").await;
    c.create_topic(page_node, "and-after-it").await;
    b.type_into("#stream-offset", &from.to_string()).await;
    b.click("#stream-start").await;
    let expected: Vec<u64> = c
        .records_from(page_node, from)
        .await
        .iter()
        .filter_map(|r| r["offset"].as_u64())
        .collect();
    assert!(expected.len() >= 2 && expected[0] == from);
    let offsets = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(|r| r["offset"].as_u64()).collect())
            .unwrap_or_default()
    };
    let shown = b
        .poll(
            "the records from the chosen offset",
            PAGE,
            RECORD_ROWS,
            |v| (offsets(v) == expected).then(|| v.clone()),
        )
        .await;
    assert!(
        shown[0]["fields"]
            .as_str()
            .is_some_and(|f| f.contains("stream-from-here")),
        "the first row is the record at the chosen offset: {shown}"
    );

    // Pause, write, resume: the stream continues after the last offset shown, nothing lost,
    // nothing shown twice.
    b.click("#stream-pause").await;
    b.poll(
        "the stream paused",
        PAGE,
        "return document.getElementById('stream-state').dataset.state",
        |v| (v == "paused").then_some(()),
    )
    .await;
    let during = c.create_topic(page_node, "written-while-paused").await;
    b.click("#stream-pause").await;
    let expected: Vec<u64> = c
        .records_from(page_node, from)
        .await
        .iter()
        .filter_map(|r| r["offset"].as_u64())
        .collect();
    assert!(expected.contains(&during));
    b.poll("the records after resuming", PAGE, RECORD_ROWS, |v| {
        (offsets(v) == expected).then_some(())
    })
    .await;
    b.close().await;
}

/// `?access_token=` on `/stream` and `/fetch` (for `EventSource`, which cannot send headers),
/// and the console's own files open while everything it reads needs the token.
#[tokio::test]
async fn access_token_in_the_query_opens_stream_and_fetch_only() {
    let mut c = Cluster::empty(&["--token", "s3cr3t+/=", "--protect-reads"]);
    c.add_node();
    let addr = c.nodes[0].addr.clone();
    let http = plain_http();
    let get = |path: String, bearer: Option<&'static str>| {
        let mut req = http.get(format!("http://{addr}{path}"));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    eventually(Duration::from_secs(20), "the node up", || async {
        (get("/cluster".into(), Some("s3cr3t+/=")).await == 200).then_some(())
    })
    .await;
    // Percent-encoded, as a browser's URLSearchParams writes it.
    let good = "access_token=s3cr3t%2B%2F%3D";
    assert_eq!(get(format!("/fetch?offset=0&{good}"), None).await, 200);
    assert_eq!(
        get("/fetch?offset=0&access_token=wrong".into(), None).await,
        401
    );
    assert_eq!(get("/fetch?offset=0".into(), None).await, 401);
    // The header still works, and wins over the query.
    assert_eq!(get("/fetch?offset=0".into(), Some("s3cr3t+/=")).await, 200);
    assert_eq!(
        get(format!("/fetch?offset=0&{good}"), Some("wrong")).await,
        401
    );
    // A stream opens with the token in the query (its head is enough: the body never ends).
    let stream = http
        .get(format!("http://{addr}/stream?offset=0&{good}"))
        .send()
        .await
        .expect("GET /stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    drop(stream);
    assert_eq!(
        get("/stream?offset=0&access_token=wrong".into(), None).await,
        401
    );
    // Only there: other reads and every write still need the header.
    assert_eq!(get(format!("/cluster?{good}"), None).await, 401);
    assert_eq!(get(format!("/get_metadata?{good}"), None).await, 401);
    assert_eq!(get(format!("/ui/api/members?{good}"), None).await, 401);
    let write = http
        .post(format!("http://{addr}/create_topic?{good}"))
        .json(&json!({"name": "t"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(write.status(), 401);
    // The console itself and its settings are open; its members view is a read like any other.
    assert_eq!(get("/ui/".into(), None).await, 200);
    assert_eq!(get("/ui/app.js".into(), None).await, 200);
    assert_eq!(get("/ui/api/members".into(), None).await, 401);
    assert_eq!(get("/ui/api/members".into(), Some("s3cr3t+/=")).await, 200);
    let settings: Value = http
        .get(format!("http://{addr}/ui/api/settings"))
        .send()
        .await
        .expect("GET settings")
        .json()
        .await
        .expect("JSON");
    assert_eq!(settings, json!({"token": "reads"}));
}

/// With `--protect-reads`, the page asks for the token, and once given (kept in the tab's
/// sessionStorage only) shows the cluster and the topics it streams with `?access_token=`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a node and a headless browser"]
async fn console_asks_for_the_token_when_reads_are_protected() {
    const TOKEN: &str = "console-token";
    let mut c = Cluster::empty(&["--token", TOKEN, "--protect-reads"]);
    c.add_node();
    let addr = c.nodes[0].addr.clone();
    let http = plain_http();
    eventually(Duration::from_secs(20), "a topic created", || async {
        let r = http
            .post(format!("http://{addr}/create_topic"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": "guarded"}))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    let b = Headless::start().await;
    b.client()
        .goto(&format!("http://{addr}/ui/#topics"))
        .await
        .expect("open the console");
    b.poll(
        "the token field, asked for",
        PAGE,
        "const box = document.getElementById('token-box'); \
         return !box.hidden && box.classList.contains('needed') && \
                document.getElementById('banner').dataset.kind === 'auth'",
        |v| (v == true).then_some(()),
    )
    .await;
    b.poll(
        "the stream refused without the token",
        PAGE,
        "return document.getElementById('live').dataset.state",
        |v| (v == "unauthorized").then_some(()),
    )
    .await;

    b.type_into("#token", TOKEN).await;
    b.click("#token-use").await;
    b.poll("the one member, leading", PAGE, MEMBERS, |v| {
        one_leader(v, 1)
    })
    .await;
    b.poll(
        "the topic, streamed with the token",
        PAGE,
        "return [...document.querySelectorAll('#topics .topic-row')].map(r => r.dataset.name)",
        |v| (v == &json!(["guarded"])).then_some(()),
    )
    .await;
    // A phone-width window: the page itself does not scroll sideways (the members table
    // scrolls in its own box, long identifiers are dropped).
    b.client()
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    b.poll(
        "no sideways scrolling at phone width",
        PAGE,
        "return [document.documentElement.scrollWidth, window.innerWidth]",
        |v| {
            let (w, inner) = (v[0].as_u64()?, v[1].as_u64()?);
            (inner < 760 && w <= inner).then_some(())
        },
    )
    .await;
    let stored = b
        .eval("return [sessionStorage.getItem('yakt.console.token'), localStorage.length, document.cookie]")
        .await;
    assert_eq!(
        stored,
        json!([TOKEN, 0, ""]),
        "the token is kept in sessionStorage only"
    );
    b.close().await;
}
