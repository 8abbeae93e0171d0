//! Issue 8: operating yakt. `yakt cluster` as a process, `/cluster` and `/metrics` contents,
//! the bearer-token rules, JSON logs, the data directory lock, and a SIGTERM under load that loses no acknowledged
//! write, ends SSE streams, exits 0 and rejoins on restart.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{
    eventually, free_base_port, free_port, leaders_voters, port_open, spawn_yakt, terminate_child,
    Cluster, FAST,
};

const SECS_30: Duration = Duration::from_secs(30);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Any request with an optional bearer token; status 0 when nothing answered.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Waits until every address answers `/health` 200 naming one leader whose `/cluster` lists
/// `addrs.len()` voters.
async fn wait_formed(http: &reqwest::Client, addrs: &[String]) {
    eventually(
        SECS_30,
        "every node healthy under one leader with all voters",
        || async {
            let mut leader = None;
            for a in addrs {
                let (s, v) = call(
                    http,
                    reqwest::Method::GET,
                    &format!("http://{a}/health"),
                    None,
                    None,
                )
                .await;
                if s != 200 {
                    return None;
                }
                let l = v["leader_id"].as_u64()?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            for a in addrs {
                let (_, v) = call(
                    http,
                    reqwest::Method::GET,
                    &format!("http://{a}/cluster"),
                    None,
                    None,
                )
                .await;
                if let Some(voters) = leaders_voters(&v) {
                    return (voters == addrs.len()).then_some(());
                }
            }
            None
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_command_runs_three_nodes_stops_them_on_sigterm_and_reuses_its_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port(3);
    let addrs: Vec<String> = (0..3)
        .map(|k| format!("127.0.0.1:{}", base + 10 * k))
        .collect();
    let mut args = vec![
        "cluster".to_string(),
        "--base-port".into(),
        base.to_string(),
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
        "--".into(),
    ];
    args.extend(FAST.iter().map(|s| s.to_string()));
    let log = dir.path().join("cluster.log");
    let http = client();

    let mut child = spawn_yakt(&args, &log);
    wait_formed(&http, &addrs).await;
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.contains(&format!("listens on http://{}", addrs[2])),
        "{out}"
    );
    assert!(
        out.contains("[node-1]") && out.contains("[node-3]"),
        "no prefixed node logs: {out}"
    );

    let created = eventually(SECS_30, "topic created", || async {
        let (s, v) = call(
            &http,
            reqwest::Method::POST,
            &format!("http://{}/create_topic", addrs[1]),
            None,
            Some(json!({"name": "kept"})),
        )
        .await;
        (s == 200).then_some(v)
    })
    .await;
    assert!(created["offset"].as_u64().is_some(), "{created}");

    let status = terminate_child(&mut child, SECS_30).expect("yakt cluster exits after SIGTERM");
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "yakt cluster exited with {status}: {out}");
    for a in &addrs {
        assert!(
            !port_open(a),
            "a node still listens on {a} after yakt cluster exited"
        );
    }

    // Second run on the same data: the nodes restart from their state (and ignore -e).
    let mut child = spawn_yakt(&args, &log);
    wait_formed(&http, &addrs).await;
    for a in &addrs {
        let (s, v) = call(
            &http,
            reqwest::Method::GET,
            &format!("http://{a}/get_topic/kept?consistent=true"),
            None,
            None,
        )
        .await;
        assert_eq!(s, 200, "topic missing on {a} after the restart: {v}");
    }
    let status = terminate_child(&mut child, SECS_30).expect("yakt cluster exits after SIGTERM");
    assert!(status.success(), "second run exited with {status}");
}

/// `/metrics` as name{labels} -> value (comments skipped).
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad metric line {l:?}"));
            let v: f64 = v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (k.to_string(), v)
        })
        .collect()
}

async fn metrics(http: &reqwest::Client, addr: &str) -> BTreeMap<String, f64> {
    let resp = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain"), "content type {ct}");
    parse_prometheus(&resp.text().await.expect("metrics body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_and_metrics_report_offsets_requests_fsyncs_lag_and_readers() {
    let c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let follower = (leader + 1) % 3;
    let mut last = 0;
    for k in 0..5 {
        last = c.create_topic(leader, &format!("m{k}")).await;
    }
    c.wait_applied(follower, last, SECS_30).await;

    let v = c.cluster_view(leader).await.expect("cluster view");
    assert_eq!(v["role"], "leader");
    assert_eq!(v["node_id"].as_u64(), Some(c.nodes[leader].id));
    assert_eq!(v["leader_id"].as_u64(), Some(c.nodes[leader].id));
    assert_eq!(
        v["leader_addr"].as_str(),
        Some(c.nodes[leader].addr.as_str())
    );
    assert!(v["term"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
    assert!(v["commit_offset"].as_u64().unwrap_or(0) >= last, "{v}");
    assert!(v["applied_offset"].as_u64().unwrap_or(0) >= last, "{v}");

    let http = client();
    let addr = &c.nodes[leader].addr;
    let m = metrics(&http, addr).await;
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no metric {k} in {m:?}"));
    assert_eq!(get("yakt_role{role=\"leader\"}"), 1.0);
    assert_eq!(get("yakt_role{role=\"follower\"}"), 0.0);
    assert_eq!(get("yakt_leader_id"), c.nodes[leader].id as f64);
    assert!(get("yakt_term") >= 1.0);
    assert!(get("yakt_applied_offset") >= last as f64);
    assert!(get("yakt_commit_offset") >= last as f64);
    assert!(get("yakt_last_log_offset") >= last as f64);
    assert!(get("yakt_log_fsyncs_total") > 0.0);
    let fsyncs = get("yakt_log_fsyncs_total");
    assert!(get("yakt_log_fsync_duration_seconds_count") >= 1.0);
    assert!(get("yakt_log_fsync_duration_seconds_sum") > 0.0);
    let inf = get("yakt_log_fsync_duration_seconds_bucket{le=\"+Inf\"}");
    assert!(inf >= get("yakt_log_fsync_duration_seconds_bucket{le=\"5\"}"));
    assert!(inf >= 1.0 && fsyncs >= 1.0, "{inf} {fsyncs}");
    assert_eq!(
        get("yakt_snapshot_age_seconds"),
        -1.0,
        "no snapshot taken yet"
    );
    assert!(get("yakt_records_proposed_total") >= 5.0);
    assert!(get("yakt_http_requests_total{route=\"/create_topic\",status=\"200\"}") >= 5.0);
    assert!(get("yakt_http_request_duration_seconds_count{route=\"/create_topic\"}") >= 5.0);
    assert!(
        get("yakt_http_request_duration_seconds_bucket{route=\"/create_topic\",le=\"+Inf\"}")
            >= 5.0
    );
    let lags: Vec<_> = m
        .keys()
        .filter(|k| k.starts_with("yakt_replication_lag_entries{"))
        .collect();
    assert_eq!(lags.len(), 2, "one lag per follower: {lags:?}");
    for k in lags {
        assert!(m[k] >= 0.0 && m[k] <= last as f64, "{k} = {}", m[k]);
    }

    let fm = metrics(&http, &c.nodes[follower].addr).await;
    assert_eq!(fm.get("yakt_role{role=\"follower\"}"), Some(&1.0), "{fm:?}");
    assert!(fm.get("yakt_applied_offset").copied().unwrap_or(0.0) >= last as f64);
    assert!(
        !fm.keys()
            .any(|k| k.starts_with("yakt_replication_lag_entries{")),
        "a follower reports no replication lag"
    );

    // An open SSE reader is counted, and uncounted when it goes away.
    let stream = http
        .get(format!("http://{addr}/stream?offset=end"))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    eventually(
        Duration::from_secs(10),
        "one SSE reader counted",
        || async {
            (metrics(&http, addr).await.get("yakt_sse_readers") == Some(&1.0)).then_some(())
        },
    )
    .await;
    drop(stream);
    eventually(Duration::from_secs(20), "SSE reader uncounted", || async {
        (metrics(&http, addr).await.get("yakt_sse_readers") == Some(&0.0)).then_some(())
    })
    .await;
}

/// One request of the token test: method, node index, path, token sent, body, the status
/// expected, and what the row checks.
type AuthRow<'a> = (
    &'a reqwest::Method,
    usize,
    &'a str,
    Option<&'a str>,
    Option<Value>,
    u16,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guards_writes_raft_and_protected_reads_and_nodes_use_it_among_themselves() {
    // The cluster forming at all shows joins (and Raft RPC) carry the token.
    let mut c = Cluster::start(3, &["--token", "s3cret"]).await;
    let leader = c.leader(SECS_30).await;
    let follower = (leader + 1) % 3;
    let http = client();
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr.clone()).collect();
    let url = |i: usize, p: &str| format!("http://{}{p}", addrs[i]);
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let (s, v) = call(
        &http,
        post.clone(),
        &url(leader, "/create_topic"),
        None,
        Some(json!({"name": "a"})),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "unauthorized", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    // In order: each row's status, given the rows before it.
    let rows: [AuthRow; 7] = [
        (
            &post,
            leader,
            "/create_topic",
            Some("wrong"),
            Some(json!({"name": "a"})),
            401,
            "a wrong token is refused",
        ),
        (
            &post,
            leader,
            "/create_topic",
            Some("s3cret"),
            Some(json!({"name": "a"})),
            200,
            "the token opens writes",
        ),
        // Through a follower: forwarded to the leader with the client's token.
        (
            &post,
            follower,
            "/create_topic",
            Some("s3cret"),
            Some(json!({"name": "b"})),
            200,
            "a follower forwards with the token",
        ),
        (
            &post,
            follower,
            "/create_topic",
            None,
            Some(json!({"name": "c"})),
            401,
            "a follower refuses a write without one",
        ),
        // Reads are open without --protect-reads.
        (
            &get,
            follower,
            "/get_topic/a?consistent=true",
            None,
            None,
            200,
            "reads are open",
        ),
        // Node-to-node routes are not.
        (
            &post,
            follower,
            "/raft/vote",
            None,
            Some(json!({})),
            401,
            "Raft RPC needs the token",
        ),
        (
            &post,
            follower,
            "/raft/join",
            Some("wrong"),
            Some(json!({"id": 9, "addr": "127.0.0.1:1"})),
            401,
            "a join with a wrong token is refused",
        ),
    ];
    for (method, node, path, token, body, status, what) in rows {
        let (s, v) = call(&http, method.clone(), &url(node, path), token, body).await;
        assert_eq!(s, status, "{what}: {} {path} on node {node}: {v}", method);
        if status == 401 {
            assert_eq!(v["error"], "unauthorized", "{what}: {v}");
        }
    }

    // Restart the follower with --protect-reads: reads need the token there now.
    c.nodes[follower].kill();
    c.nodes[follower].args.push("--protect-reads".into());
    c.nodes[follower].spawn();
    let (s, v) = eventually(SECS_30, "the restarted follower answers", || async {
        let r = call(&http, get.clone(), &url(follower, "/cluster"), None, None).await;
        (r.0 != 0).then_some(r)
    })
    .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "unauthorized", "{v}");
    let (s, _) = call(&http, get.clone(), &url(follower, "/health"), None, None).await;
    assert_eq!(s, 401);
    // With the token: a linearizable read there asks the leader for a read index (with the token).
    eventually(
        SECS_30,
        "a consistent read on the protected follower",
        || async {
            let (s, v) = call(
                &http,
                get.clone(),
                &url(follower, "/get_topic/b?consistent=true"),
                Some("s3cret"),
                None,
            )
            .await;
            match s {
                200 => Some(()),
                503 | 0 => None,
                other => panic!("consistent read: {other} {v}"),
            }
        },
    )
    .await;
    // The open node still serves reads without a token.
    let (s, _) = call(&http, get, &url(leader, "/get_topic/b"), None, None).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_and_name_the_leader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args: Vec<String> = vec![
        "--log-format".into(),
        "json".into(),
        "node".into(),
        "-i".into(),
        "1".into(),
        "-a".into(),
        addr.clone(),
        "--data-dir".into(),
        dir.path().join("node-1").display().to_string(),
    ];
    args.extend(FAST.iter().map(|s| s.to_string()));
    let log = dir.path().join("node.log");
    let http = client();
    let mut child = spawn_yakt(&args, &log);
    eventually(SECS_30, "topic created on the one-node cluster", || async {
        let (s, _) = call(
            &http,
            reqwest::Method::POST,
            &format!("http://{addr}/create_topic"),
            None,
            Some(json!({"name": "j"})),
        )
        .await;
        (s == 200).then_some(())
    })
    .await;
    // A node that cannot start (the address is taken) reports that as JSON too, and fails.
    let mut clash = args.clone();
    let d = clash
        .iter()
        .position(|a| a == "--data-dir")
        .expect("data dir arg")
        + 1;
    clash[d] = dir.path().join("clash").display().to_string();
    let out = std::process::Command::new(support::YAKT)
        .args(&clash)
        .env("RUST_LOG", "info")
        .output()
        .expect("run a clashing node");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let failed: Vec<Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(
        failed
            .iter()
            .any(|l| l["message"] == "yakt failed" && l["level"] == "ERROR"),
        "{err}"
    );

    // A second node on the same data directory (another address) is refused by the LOCK file,
    // and the running node's data is untouched.
    let mut twin = args.clone();
    let a = twin.iter().position(|a| a == "-a").expect("address arg") + 1;
    twin[a] = format!("127.0.0.1:{}", free_port());
    let out = std::process::Command::new(support::YAKT)
        .args(&twin)
        .env("RUST_LOG", "info")
        .output()
        .expect("run a second node on the same data dir");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is locked: another yakt process is using this data directory"),
        "{err}"
    );
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        &format!("http://{addr}/get_topic/j"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "the first node still serves its data");

    let status = terminate_child(&mut child, SECS_30).expect("node exits after SIGTERM");
    assert!(status.success(), "{status}");

    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    for l in &lines {
        assert!(l["level"].is_string() && l["message"].is_string(), "{l}");
    }
    let leader = lines
        .iter()
        .find(|l| l["message"] == "leader changed")
        .unwrap_or_else(|| panic!("no leader-change line in {text}"));
    assert_eq!(leader["leader_id"], 1, "{leader}");
    assert_eq!(leader["level"], "INFO", "{leader}");
    assert!(
        lines.iter().any(|l| l["message"] == "stopped"),
        "no final line: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_on_the_leader_under_load_loses_no_acknowledged_write_and_it_rejoins() {
    let mut c = Cluster::start(3, &[]).await;
    let leader = c.leader(SECS_30).await;
    let http = client();
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr.clone()).collect();

    // An SSE reader on the leader: it must not hold the shutdown up, and it is told why.
    let sse = http
        .get(format!("http://{}/stream?offset=end", addrs[leader]))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("stream");
    assert_eq!(sse.status(), 200);
    let sse_task = tokio::spawn(async move {
        let mut body = String::new();
        let mut s = sse;
        while let Ok(Some(chunk)) = s.chunk().await {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
        body
    });

    // A long-polling fetch on the leader: answered (empty) at shutdown, not cut off. It waits
    // for a record the load never writes (an offset past the end would be a 416).
    let poll_url = format!(
        "http://{}/fetch?offset=end&names=ProducerIdsRecord&wait_ms=30000",
        addrs[leader]
    );
    let poll_http = http.clone();
    let poll_task = tokio::spawn(async move {
        let r = poll_http
            .get(poll_url)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .expect("long poll answered");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    });

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..3 {
        let (stop, acked, addrs, http) = (stop.clone(), acked.clone(), addrs.clone(), http.clone());
        writers.push(tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{w}-{k}");
                let target = &addrs[((w + k) % 3) as usize];
                let (s, v) = call(
                    &http,
                    reqwest::Method::POST,
                    &format!("http://{target}/create_topic"),
                    None,
                    Some(json!({"name": name})),
                )
                .await;
                if s == 200 {
                    acked
                        .lock()
                        .unwrap()
                        .push((name, v["offset"].as_u64().expect("offset")));
                } else if s == 0 || s == 503 || s == 421 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                } else if s != 409 {
                    panic!("write {name} to {target}: {s} {v}");
                }
                k += 1;
            }
        }));
    }
    let count = || acked.lock().unwrap().len();
    eventually(SECS_30, "20 writes acknowledged", || async {
        (count() >= 20).then_some(())
    })
    .await;

    c.nodes[leader].signal(libc::SIGTERM);
    let deadline = Instant::now() + SECS_30;
    let status = loop {
        if let Some(st) = c.nodes[leader]
            .child
            .as_mut()
            .and_then(|ch| ch.try_wait().ok().flatten())
        {
            c.nodes[leader].child = None;
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the leader did not exit after SIGTERM: {}",
            c.nodes[leader].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit {status}: {}", c.nodes[leader].log());
    let sse_body = tokio::time::timeout(SECS_30, sse_task)
        .await
        .expect("SSE stream ended")
        .expect("reader task");
    assert!(
        sse_body.contains("event: shutdown"),
        "no shutdown event in: {sse_body}"
    );
    let (s, v) = tokio::time::timeout(SECS_30, poll_task)
        .await
        .expect("long poll ended")
        .expect("poll task");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(0), "{v}");

    // The other two elect a leader and keep acknowledging writes.
    let before = count();
    eventually(
        SECS_30,
        "writes acknowledged after the leader left",
        || async { (count() >= before + 20).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().unwrap().clone();
    let max = acked.iter().map(|(_, o)| *o).max().expect("acked writes");
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    c.leader_among(&rest, SECS_30).await;

    for &i in &rest {
        check_acked(&c, i, &acked, max).await;
    }

    // Restarted without any operator action, the old leader rejoins and catches up.
    c.nodes[leader].spawn();
    check_acked(&c, leader, &acked, max).await;
    let v = c.cluster_view(leader).await.expect("cluster view");
    assert!(v["leader_id"].is_u64(), "restarted node sees a leader: {v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
}

/// Node `i` has applied `max` and answers every acknowledged topic.
async fn check_acked(c: &Cluster, i: usize, acked: &[(String, u64)], max: u64) {
    c.wait_applied(i, max, SECS_30).await;
    for (name, offset) in acked {
        let (s, v) = c.get(i, &format!("/get_topic/{name}")).await;
        assert_eq!(
            s, 200,
            "acknowledged write {name} (offset {offset}) missing on node {}: {v}",
            c.nodes[i].id
        );
    }
}
