//! Issue 12: a node that loses or damages its data never costs an acknowledged write.
//!
//! Each scenario acknowledges writes, then breaks a node's disk the way a real one breaks
//! (flipped bytes, a wiped directory, acknowledged entries that never reached the platter, a
//! power loss that tears every node's last write), crashes the leader, and restarts the nodes in
//! the order most likely to lose data. Every acknowledged topic must be on every node at the
//! end, at the offset it was acknowledged with. The damaged node either refuses to start with a
//! message that names the file and says what to do, or starts and takes no part in elections
//! until a leader has caught it up.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{disk, eventually, Cluster};

const SECS_60: Duration = Duration::from_secs(60);

/// Creates `n` topics through node `via`; returns name → acknowledged offset.
async fn acked_topics(c: &Cluster, via: usize, prefix: &str, n: usize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for k in 0..n {
        let name = format!("{prefix}-{k}");
        let offset = c.create_topic(via, &name).await;
        out.insert(name, offset);
    }
    out
}

/// Waits until every acknowledged topic is on node `i` at its acknowledged offset.
async fn wait_all_present(c: &Cluster, i: usize, acked: &BTreeMap<String, u64>) {
    eventually(
        SECS_60,
        &format!("every acknowledged topic on node {}", c.nodes[i].id),
        || async {
            let v = c.cluster_view(i).await?;
            let applied = v["applied_offset"].as_u64()?;
            let max = *acked.values().max()?;
            if applied < max {
                return None;
            }
            Some(())
        },
    )
    .await;
    let view = c.cluster_view(i).await.expect("view");
    let start = view["log_start_offset"].as_u64().unwrap_or(0);
    let records = c.records_from(i, start).await;
    let by_offset: BTreeMap<u64, &Value> = records
        .iter()
        .map(|r| (r["offset"].as_u64().expect("offset"), r))
        .collect();
    let (s, image) = c.get(i, "/get_metadata").await;
    assert_eq!(s, 200, "{image}");
    let topics: std::collections::BTreeSet<&str> = image["metadata"]["TopicRecord"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for (name, offset) in acked {
        assert!(
            topics.contains(name.as_str()),
            "node {}: acknowledged topic {name} (offset {offset}) is missing from the image",
            c.nodes[i].id
        );
        if *offset < start {
            continue;
        }
        let rec = by_offset.get(offset).unwrap_or_else(|| {
            panic!(
                "node {}: acknowledged topic {name} at offset {offset} is missing from the log",
                c.nodes[i].id
            )
        });
        assert_eq!(
            rec["fields"]["name"], *name,
            "node {}: offset {offset} holds {rec}, not the acknowledged topic {name}",
            c.nodes[i].id
        );
    }
}

/// The leader's index and its two followers, the first of which (`f1`) was started with `-e`
/// (so it rejoins through its seeds after a wipe, as the README's start lines do).
async fn roles(c: &Cluster) -> (usize, usize, usize) {
    let l = c.leader(SECS_60).await;
    let mut followers: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    followers.sort_by_key(|&i| !c.nodes[i].args.iter().any(|a| a == "-e"));
    (l, followers[0], followers[1])
}

/// Asserts that no leader emerges among `nodes` for `window`: the survivors must wait for the
/// node that has the acknowledged writes rather than elect one that lacks them.
async fn assert_no_leader_among(c: &Cluster, nodes: &[usize], window: Duration) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        for &i in nodes {
            if let Some(v) = c.cluster_view(i).await {
                assert_ne!(
                    v["role"], "leader",
                    "node {} became leader without the node holding the acknowledged writes: {v}",
                    c.nodes[i].id
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The opening of the scenarios: three nodes, follower F2 down, five topics acknowledged by the
/// leader and F1 (so F1 and the leader are the only holders), F1 has applied them.
async fn only_leader_and_f1_hold(
    prefix: &str,
) -> (Cluster, usize, usize, usize, BTreeMap<String, u64>) {
    let mut c = Cluster::start(3, &[]).await;
    let (l, f1, f2) = roles(&c).await;
    c.nodes[f2].kill();
    let acked = acked_topics(&c, l, prefix, 5).await;
    let last = *acked.values().max().expect("acked");
    c.wait_applied(f1, last, SECS_60).await;
    (c, l, f1, f2, acked)
}

/// Scenario 1 of the issue: a flipped byte in a follower's last frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: several real-process restarts"]
async fn a_flipped_byte_in_the_last_frame_refuses_to_start_and_loses_nothing() {
    let (mut c, l, f1, f2, acked) = only_leader_and_f1_hold("flip").await;
    c.nodes[f1].kill();
    let (seg, index) = disk::flip_last_frame(c.data_dir(f1));
    c.nodes[l].kill();

    c.nodes[f1].spawn();
    let status = c.wait_exit(f1, Duration::from_secs(20));
    let log = c.nodes[f1].log();
    assert!(!status.success(), "a corrupt log must not start");
    let file = seg.file_name().expect("name").to_string_lossy().to_string();
    assert!(
        log.contains(&file),
        "the error names the file {file}: {log}"
    );
    assert!(
        log.contains("member remove") && log.contains("wipe"),
        "the error says what to do: {log}"
    );
    let _ = index;

    c.nodes[f2].spawn();
    c.nodes[l].spawn();
    c.leader_among(&[l, f2], SECS_60).await;
    for i in [l, f2] {
        wait_all_present(&c, i, &acked).await;
    }

    // The documented remedy: wipe the damaged node and start it again as it was started.
    std::fs::remove_dir_all(c.data_dir(f1)).expect("wipe");
    c.nodes[f1].spawn();
    wait_all_present(&c, f1, &acked).await;
    wait_voting(&c, f1).await;
}

/// Waits until node `i` reports that it votes again.
async fn wait_voting(c: &Cluster, i: usize) {
    eventually(
        SECS_60,
        &format!("node {} votes again", c.nodes[i].id),
        || async { (c.cluster_view(i).await?["voting"] == true).then_some(()) },
    )
    .await;
}

/// Scenario 2 of the issue: the wiped node comes back with its usual command line while the
/// only other holder of the acknowledged writes is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: several real-process restarts"]
async fn a_wiped_node_does_not_vote_until_caught_up() {
    let (mut c, l, f1, f2, acked) = only_leader_and_f1_hold("wipe").await;
    let before: Value = c.cluster_view(f1).await.expect("view");
    c.nodes[f1].kill();
    std::fs::remove_dir_all(c.data_dir(f1)).expect("wipe");
    c.nodes[l].kill();

    c.nodes[f1].spawn();
    c.nodes[f2].spawn();
    eventually(
        SECS_60,
        "the wiped node answers and says it is recovering",
        || async {
            let v = c.cluster_view(f1).await?;
            (v["voting"] == false && v["recovering"].is_string()).then_some(())
        },
    )
    .await;
    assert_no_leader_among(&c, &[f1, f2], Duration::from_secs(4)).await;

    c.nodes[l].spawn();
    c.leader(SECS_60).await;
    for i in [l, f1, f2] {
        wait_all_present(&c, i, &acked).await;
    }
    wait_voting(&c, f1).await;
    let after = c.cluster_view(f1).await.expect("view");
    assert_ne!(
        before["incarnation"], after["incarnation"],
        "a wiped directory is a new incarnation"
    );
    let leader = c.leader(SECS_60).await;
    let view = c.cluster_view(leader).await.expect("view");
    let seat = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["id"] == c.nodes[f1].id)
        .cloned()
        .expect("the wiped node is a member");
    assert_eq!(seat["voter"], true, "{view}");
    assert_eq!(
        seat["incarnation"], after["incarnation"],
        "the seat moved to the new incarnation: {view}"
    );
}

/// A disk that lied: acknowledged entries vanished from a follower's tail (they look like
/// never-written space), then the leader crashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: several real-process restarts"]
async fn a_follower_that_lost_acknowledged_entries_waits_for_the_leader() {
    let (mut c, l, f1, f2, acked) = only_leader_and_f1_hold("lost").await;
    let last = *acked.values().max().expect("acked");
    c.nodes[f1].kill();
    let first_lost = disk::lose_last_frames(c.data_dir(f1), 2);
    assert!(first_lost <= last);
    c.nodes[l].kill();

    c.nodes[f1].spawn();
    c.nodes[f2].spawn();
    eventually(
        SECS_60,
        "the damaged node says it is recovering",
        || async {
            let v = c.cluster_view(f1).await?;
            (v["voting"] == false
                && v["recovering"]
                    .as_str()
                    .is_some_and(|r| r.contains("that it had acknowledged")))
            .then_some(())
        },
    )
    .await;
    assert_no_leader_among(&c, &[f1, f2], Duration::from_secs(4)).await;

    c.nodes[l].spawn();
    c.leader(SECS_60).await;
    for i in [l, f1, f2] {
        wait_all_present(&c, i, &acked).await;
    }
    wait_voting(&c, f1).await;
}

/// A power loss of the whole cluster under write load: every node's last write is torn. That is
/// no loss of anything acknowledged, so the nodes come back and elect by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a cluster under load, killed and restarted"]
async fn a_power_loss_of_every_node_with_torn_tails_comes_back_by_itself() {
    let mut c = Cluster::start(3, &[]).await;
    let l = c.leader(SECS_60).await;
    let addr = c.nodes[l].addr.clone();
    let http = c.http.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, addr, acked) = (http.clone(), addr.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for k in 0.. {
                let name = format!("power-{w}-{k}");
                let resp = http
                    .post(format!("http://{addr}/create_topic"))
                    .json(&json!({"name": name}))
                    .send()
                    .await;
                let Ok(resp) = resp else { return };
                if resp.status() != 200 {
                    return;
                }
                let Ok(v) = resp.json::<Value>().await else {
                    return;
                };
                if let Some(o) = v["offset"].as_u64() {
                    acked.lock().expect("lock").insert(name, o);
                }
            }
        }));
    }
    eventually(SECS_60, "200 writes acknowledged", || async {
        (acked.lock().expect("lock").len() >= 200).then_some(())
    })
    .await;
    for n in c.nodes.iter_mut() {
        n.signal(libc::SIGKILL);
    }
    for n in c.nodes.iter_mut() {
        n.kill();
    }
    for w in writers {
        let _ = w.await;
    }
    for i in 0..3 {
        disk::append_torn_frame(c.data_dir(i));
    }
    for n in c.nodes.iter_mut() {
        n.spawn();
    }
    c.leader(SECS_60).await;
    let acked = acked.lock().expect("lock").clone();
    for i in 0..3 {
        wait_all_present(&c, i, &acked).await;
    }
    let logs: Vec<Vec<Value>> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(c.records_from(i, 0).await);
        }
        v
    };
    assert_eq!(logs[0], logs[1], "nodes 1 and 2 hold the same log");
    assert_eq!(logs[0], logs[2], "nodes 1 and 3 hold the same log");
}

/// A member removed, wiped and added back catches up through a snapshot (its log was purged
/// meanwhile) and votes again; a node of another cluster is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: membership changes on real processes"]
async fn a_removed_and_wiped_member_comes_back_and_another_cluster_is_refused() {
    let mut c = Cluster::start(3, &["--snapshot-every", "20", "--keep-after-snapshot", "5"]).await;
    let (l, f1, _) = roles(&c).await;
    let mut acked = acked_topics(&c, l, "before", 10).await;
    let id = c.nodes[f1].id;

    let (s, v) = c
        .request(
            l,
            reqwest::Method::DELETE,
            &format!("/cluster/members/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let view = c.cluster_view(l).await.expect("view");
    assert!(
        !view["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["id"] == id),
        "node {id} is no member any more: {view}"
    );
    c.nodes[f1].kill();
    std::fs::remove_dir_all(c.data_dir(f1)).expect("wipe");
    acked.extend(acked_topics(&c, l, "while-away", 60).await);
    let leader_view = c.cluster_view(l).await.expect("view");
    assert!(
        leader_view["log_start_offset"].as_u64().unwrap_or(0) > 1,
        "the leader purged its log: {leader_view}"
    );

    c.nodes[f1].spawn();
    eventually(SECS_60, "the wiped node answers", || async {
        c.cluster_view(f1).await.map(|_| ())
    })
    .await;
    let (s, v) = c
        .post(
            l,
            "/cluster/members",
            json!({"id": id, "addr": c.nodes[f1].addr}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_voting(&c, f1).await;
    wait_all_present(&c, f1, &acked).await;
    let own = c.cluster_view(f1).await.expect("view");
    assert!(
        own["snapshot"].is_object(),
        "it caught up through a snapshot: {own}"
    );

    // Another cluster: a one-node cluster of its own.
    let other_addr = format!("127.0.0.1:{}", support::free_port());
    let other_dir = c.dir.path().join("other");
    let mut other = support::spawn_yakt(
        &[
            "node".into(),
            "-i".into(),
            "9".into(),
            "-a".into(),
            other_addr.clone(),
            "--data-dir".into(),
            other_dir.display().to_string(),
        ],
        &c.dir.path().join("other.log"),
    );
    let other_view: Value = eventually(SECS_60, "the other cluster has a leader", || async {
        let v: Value = c
            .http
            .get(format!("http://{other_addr}/cluster"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["role"] == "leader").then_some(v)
    })
    .await;
    assert_ne!(other_view["cluster_id"], view["cluster_id"]);
    let resp = c
        .http
        .get(format!("http://{}/get_all_brokers", c.nodes[l].addr))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        resp.headers()
            .get("x-yakt-cluster-id")
            .and_then(|v| v.to_str().ok()),
        view["cluster_id"].as_str(),
        "every response names the cluster"
    );
    assert_eq!(
        resp.headers()
            .get("x-yakt-node-id")
            .and_then(|v| v.to_str().ok()),
        Some(c.nodes[l].id.to_string().as_str()),
        "every response names the node"
    );
    let (s, v) = c
        .post(l, "/cluster/members", json!({"id": 9, "addr": other_addr}))
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "cluster_mismatch", "{v}");
    // A Raft RPC that names this cluster is refused by the other one, and the refusal is logged.
    let resp = c
        .http
        .post(format!("http://{other_addr}/raft/vote"))
        .header(
            "x-yakt-cluster-id",
            view["cluster_id"].as_str().expect("id"),
        )
        .header("content-type", "application/msgpack")
        .body(vec![0x80])
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 409);
    let log = std::fs::read_to_string(c.dir.path().join("other.log")).expect("log");
    assert!(log.contains("refusing Raft traffic from cluster"), "{log}");
    let _ = other.kill();
}

/// Writes `log/truncating` as a truncation that keeps entries up to `keep` would (the small
/// atomic file of `segments-format.md`: magic `YKTR`, version 1, body `1u8` then `keep`).
fn write_truncation_intent(data_dir: &std::path::Path, keep: u64) {
    let mut body = vec![1u8];
    body.extend_from_slice(&keep.to_le_bytes());
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&u32::from_le_bytes(*b"YKTR").to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes);
    hasher.update(&body);
    bytes.extend_from_slice(&hasher.finalize().to_le_bytes());
    bytes.extend_from_slice(&body);
    std::fs::write(data_dir.join("log").join("truncating"), bytes).expect("write intent");
}

/// A deposed leader crashed half-way through cutting its uncommitted tail: the intent file is
/// there, the first removed frame is half zeroed, later ones are intact (without the intent
/// that reads as corruption, and the node refuses to start: checked by hand). It finishes the
/// cut at start, rejoins, and nothing acknowledged is lost; the never-committed writes stay gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a partition, a crash and a restart on real processes"]
async fn a_crash_in_the_middle_of_a_truncation_is_finished_at_start() {
    let mut pc = support::netfault::ProxiedCluster::start(3, &[]).await;
    let old = pc.c.leader(SECS_60).await;
    let mut acked = acked_topics(&pc.c, old, "before", 5).await;
    let committed = pc.c.cluster_view(old).await.expect("view")["commit_offset"]
        .as_u64()
        .expect("commit");
    // Cut off, the old leader keeps appending writes it cannot commit.
    pc.isolate(old);
    let http = pc.c.http.clone();
    let doomed: Vec<_> = (0..3)
        .map(|k| {
            let (http, addr) = (http.clone(), pc.c.nodes[old].addr.clone());
            tokio::spawn(async move {
                let _ = http
                    .post(format!("http://{addr}/create_topic"))
                    .json(&json!({"name": format!("doomed-{k}")}))
                    .send()
                    .await;
            })
        })
        .collect();
    let last = eventually(SECS_60, "uncommitted entries on the old leader", || async {
        let v = pc.c.cluster_view(old).await?;
        let l = v["last_log_offset"].as_u64()?;
        (l >= committed + 3).then_some(l)
    })
    .await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = eventually(SECS_60, "a leader among the majority", || async {
        let mut leader = None;
        for &i in &rest {
            let id = pc.c.cluster_view(i).await?["leader_id"].as_u64()?;
            if leader.is_some_and(|l| l != id) {
                return None;
            }
            leader = Some(id);
        }
        let idx = rest
            .iter()
            .copied()
            .find(|&i| Some(pc.c.nodes[i].id) == leader)?;
        (pc.c.cluster_view(idx).await?["role"] == "leader").then_some(idx)
    })
    .await;
    acked.extend(acked_topics(&pc.c, new, "after", 5).await);
    pc.c.nodes[old].kill();
    for d in doomed {
        let _ = d.await;
    }

    let (seg, frames) = disk::newest_frames(pc.c.data_dir(old));
    assert_eq!(frames.last().map(|f| f.index), Some(last));
    let first_cut = frames
        .iter()
        .find(|f| f.index == committed + 1)
        .copied()
        .expect("the first uncommitted frame");
    write_truncation_intent(pc.c.data_dir(old), committed);
    let from = first_cut.pos + 40 + first_cut.len / 2;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(
        &f,
        &vec![0u8; first_cut.len - first_cut.len / 2],
        from as u64,
    )
    .expect("half-zero the first removed frame");
    drop(f);

    pc.heal();
    pc.c.nodes[old].spawn();
    let node = &pc.c.nodes[old];
    eventually(
        SECS_60,
        "the node finishes the interrupted truncation",
        || async {
            node.log()
                .contains("finishing a truncation interrupted by a crash")
                .then_some(())
        },
    )
    .await;
    for i in 0..3 {
        wait_all_present(&pc.c, i, &acked).await;
    }
    let (s, image) = pc.c.get(old, "/get_metadata").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = image["metadata"]["TopicRecord"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("doomed-")),
        "a never-committed write survived: {names:?}"
    );
}
