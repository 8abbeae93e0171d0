//! Concurrent conflicting writes at different nodes commit exactly once; without a leader,
//! writes are 503 and append nothing.

use serde_json::{json, Value};

use super::common::*;

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

/// The leader's speculative image is replaced by a copy of the applied one whenever the count of
/// record entries applied equals the count at the last copy plus the records proposed since
/// (`src/raft/proposer.rs`). Raft appends entries of its own in the leader's term that the
/// proposer never submitted: a node joining adds three membership entries (learner, joint,
/// final). Counted as records, they would make "applied" reach "proposed" while some proposed
/// records are still in flight; the copy would then lack them, and an identical write racing
/// them would be validated against it and reach the log a second time (refused at apply, so
/// only the log shows it). So: write once (the proposer copies the applied image), let a fourth
/// node join in the same term, then race identical writes for many names at every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_writes_racing_after_a_node_joined_in_the_same_term_commit_once() {
    let mut c = Cluster::start(3, &[]).await;
    let l = c.leader(SECS_30).await;
    let term_of = |v: Option<Value>| v.and_then(|v| v["term"].as_u64()).expect("a term");
    ok(
        &c,
        l,
        "POST",
        "/create_topic",
        Some(json!({"name": "warm"})),
    )
    .await;
    let term = term_of(c.cluster_view(l).await);

    let joined = c.add_node();
    c.wait_listening(joined).await;
    c.wait_voters(4, SECS_30).await;
    eventually(SECS_30, "every node names the leader", || async {
        for i in 0..c.nodes.len() {
            let v = c.cluster_view(i).await?;
            v["leader_id"].as_u64().filter(|id| *id == c.nodes[l].id)?;
        }
        Some(())
    })
    .await;

    const NAMES: usize = 16;
    const PER_NODE: usize = 3;
    let mut tasks = Vec::new();
    for k in 0..NAMES {
        for _ in 0..PER_NODE {
            for i in 0..c.nodes.len() {
                let url = format!("http://{}/create_topic", c.nodes[i].addr);
                let http = c.http.clone();
                tasks.push(tokio::spawn(async move {
                    let resp = http
                        .post(&url)
                        .json(&json!({"name": format!("joined-{k}")}))
                        .send()
                        .await
                        .expect("send");
                    let s = resp.status().as_u16();
                    (k, s, resp.text().await.unwrap_or_default())
                }));
            }
        }
    }
    let mut ok_per_name = [0usize; NAMES];
    for t in tasks {
        let (k, s, body) = t.await.expect("task");
        assert!(s == 200 || s == 409, "joined-{k}: status {s}: {body}");
        ok_per_name[k] += usize::from(s == 200);
    }
    assert_eq!(
        ok_per_name, [1; NAMES],
        "each name: exactly one 200 and the rest 409"
    );
    let l_after = c.leader(SECS_30).await;
    assert_eq!(
        (l_after, term_of(c.cluster_view(l_after).await)),
        (l, term),
        "the test's premise: the join and the races happen in one leader's term"
    );

    idle_log_end(&c).await;
    for i in 0..c.nodes.len() {
        let records = log(&c, i).await;
        for k in 0..NAMES {
            let name = format!("joined-{k}");
            let n = records
                .iter()
                .filter(|r| r["name"] == "TopicRecord" && r["fields"]["name"] == name.as_str())
                .count();
            assert_eq!(n, 1, "node {i}'s log holds {n} records of {name}");
        }
    }
}
