//! Issue 3: a three-node cluster of real processes started with the original YAKt command lines
//! elects a leader, commits writes sent to any node at the same offsets everywhere, survives the
//! leader's SIGKILL, lets the killed node catch up, and lets a late fourth node join through a
//! snapshot after the start of the log was purged. Finally every node's log holds the same
//! records at the same offsets, and `yakt-dump --verify` passes on every data directory.
//!
//! And the same lifecycle in process: three nodes run with `api::server::run` and stopped with
//! `Node::shutdown` (what `yakt node` runs) serve writes, hand leadership over when the leader
//! stops, and leave no background task running and nothing holding their data directory.

mod support;

use std::time::Duration;

use openraft::type_config::async_runtime::WatchReceiver;
use serde_json::Value;
use support::{dump, eventually, Cluster};

const SECS_30: Duration = Duration::from_secs(30);

/// Records keyed by offset, from each node's log, compared on their common range.
async fn assert_same_logs(c: &Cluster, nodes: &[usize]) {
    let mut start = 1;
    for &i in nodes {
        let v = c.cluster_view(i).await.expect("cluster view");
        start = start.max(v["log_start_offset"].as_u64().unwrap_or(1));
    }
    let reference = c.records_from(nodes[0], start).await;
    assert!(!reference.is_empty(), "no records from offset {start}");
    for &i in &nodes[1..] {
        let other = c.records_from(i, start).await;
        assert_eq!(
            reference, other,
            "node {} and node {} differ from offset {start}",
            c.nodes[nodes[0]].id, c.nodes[i].id
        );
    }
}

async fn metadata(c: &Cluster, i: usize) -> Value {
    let (s, v) = c.get(i, "/get_metadata").await;
    assert_eq!(s, 200, "{v}");
    v["metadata"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_a_late_node_joins_by_snapshot() {
    let mut c = Cluster::start(
        3,
        &[
            "--snapshot-every",
            "40",
            "--keep-after-snapshot",
            "5",
            "--segment-bytes",
            "8192",
        ],
    )
    .await;
    let leader = c.leader(SECS_30).await;

    // A write on each node (leader and followers) commits and is visible on all three.
    let mut offsets = Vec::new();
    for i in 0..3 {
        offsets.push(c.create_topic(i, &format!("first-{i}")).await);
    }
    let last = *offsets.iter().max().expect("offsets");
    for i in 0..3 {
        c.wait_applied(i, last, SECS_30).await;
    }
    let reference = metadata(&c, 0).await;
    for i in 1..3 {
        assert_eq!(
            reference,
            metadata(&c, i).await,
            "image of node {}",
            c.nodes[i].id
        );
    }
    for (i, name) in ["first-0", "first-1", "first-2"].iter().enumerate() {
        for n in 0..3 {
            let (s, v) = c.get(n, &format!("/get_topic/{name}")).await;
            assert_eq!(s, 200, "topic {name} on node {n}: {v}");
        }
        let _ = i;
    }
    assert_same_logs(&c, &[0, 1, 2]).await;

    // SIGKILL the leader: the other two elect a new one and writes go on.
    c.nodes[leader].kill();
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = c.leader_among(&rest, Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader);
    for k in 0..60 {
        c.create_topic(rest[k % 2], &format!("after-kill-{k}"))
            .await;
    }

    // The killed node restarts from its data and catches up.
    c.nodes[leader].spawn();
    let head = c.create_topic(new_leader, "after-restart").await;
    c.wait_applied(leader, head, SECS_30).await;
    assert_eq!(metadata(&c, new_leader).await, metadata(&c, leader).await);

    // Snapshots have purged the start of the log by now (snapshot every 40 entries).
    let v = c.cluster_view(new_leader).await.expect("view");
    assert!(
        v["log_start_offset"].as_u64().unwrap_or(0) > 1,
        "log start should have moved: {v}"
    );
    assert!(
        v["snapshot"]["offset"].as_u64().unwrap_or(0) > 0,
        "a snapshot should exist: {v}"
    );

    // A fourth node joins late and catches up through the snapshot.
    let fourth = c.add_node();
    c.wait_voters(4, SECS_30).await;
    let head = c.create_topic(new_leader, "after-join").await;
    c.wait_applied(fourth, head, SECS_30).await;
    assert_eq!(metadata(&c, new_leader).await, metadata(&c, fourth).await);
    let v4 = c.cluster_view(fourth).await.expect("view");
    assert!(
        v4["snapshot"]["offset"].as_u64().unwrap_or(0) > 0,
        "the late node got no snapshot: {v4}"
    );
    eventually(SECS_30, "every node applied the last write", || async {
        for i in 0..4 {
            let v = c.cluster_view(i).await?;
            if v["applied_offset"].as_u64()? < head {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_same_logs(&c, &[0, 1, 2, 3]).await;

    // yakt-dump on every data directory shows the metadata records and verifies.
    for i in 0..4 {
        let dir = c.data_dir(i).display().to_string();
        let (code, out, err) = dump(&["--verify", &dir]);
        assert_eq!(code, 0, "yakt-dump --verify {dir}: {out}\n{err}");
        let (code, out, err) = dump(&[&dir]);
        assert_eq!(code, 0, "yakt-dump {dir}: {err}");
        assert!(
            out.contains("TopicRecord"),
            "dump of {dir} shows no TopicRecord:\n{out}"
        );
        assert!(
            out.contains("after-join"),
            "dump of {dir} misses the last topic:\n{out}"
        );
    }
}

/// One node run in this process exactly as `yakt node` runs it: `Node::start`,
/// `Node::bootstrap`, `api::server::run` until told to stop, then `Node::shutdown`.
struct InProcess {
    node: std::sync::Arc<yakt::raft::Node>,
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), yakt::api::server::ServerError>>,
}

impl InProcess {
    async fn start(id: u64, dir: &std::path::Path, seeds: Vec<(u64, String)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr").to_string();
        let mut opts = yakt::raft::NodeOptions::new(id, addr.clone(), dir.to_path_buf());
        // Elections far slower than a hand-over: a new leader within HANDED_OVER_WITHIN of
        // the old one stopping can only come from the hand-over.
        opts.election_timeout_ms = (5_000, 6_000);
        opts.heartbeat_ms = 100;
        let node = yakt::raft::Node::start(opts).await.expect("node starts");
        node.bootstrap(seeds).await.expect("bootstrap");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(yakt::api::server::run(
            listener,
            node.clone(),
            yakt::api::server::ServerOptions::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            node,
            addr,
            stop,
            server,
        }
    }

    /// Stops it the way SIGTERM does; returns once the node has stopped, every task it spawned
    /// included.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("server task")
            .expect("served until told to stop");
        self.node.shutdown().await.expect("node shuts down");
        assert_eq!(
            self.node.background_tasks(),
            0,
            "node {} left background tasks running",
            self.node.id
        );
        assert_eq!(self.node.role(), "shutdown", "node {}", self.node.id);
    }
}

async fn http_post(addr: &str, path: &str, body: Value) -> u16 {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    resp.map_or(0, |r| r.status().as_u16())
}

const HANDED_OVER_WITHIN: Duration = Duration::from_millis(2_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_nodes_serve_hand_over_and_stop_every_task_they_started() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let first = InProcess::start(1, dirs[0].path(), vec![]).await;
    let seed = vec![(1, first.addr.clone())];
    let mut nodes = vec![first];
    for id in 2..=3 {
        nodes.push(InProcess::start(id, dirs[id as usize - 1].path(), seed.clone()).await);
    }
    eventually(SECS_30, "three voters, one leader seen by all", || async {
        let leaders: Vec<_> = nodes.iter().map(|n| n.node.leader()).collect();
        let voters = nodes[0]
            .node
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        (voters == 3 && leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]))
            .then_some(())
    })
    .await;
    let leader_id = nodes[0].node.leader().expect("leader").id;
    assert_eq!(
        http_post(
            &nodes[2].addr,
            "/create_topic",
            serde_json::json!({"name": "t1"})
        )
        .await,
        200,
        "a write through a follower commits"
    );

    // Stopping the leader hands leadership over: the others lead again long before an
    // election timeout (5 s) could have passed.
    let at = nodes
        .iter()
        .position(|n| n.node.id == leader_id)
        .expect("leader is one of ours");
    let old = nodes.remove(at);
    let stopped_at = std::time::Instant::now();
    old.stop().await;
    let new_leader = eventually(SECS_30, "another node leads", || async {
        nodes[0]
            .node
            .leader()
            .filter(|l| l.id != leader_id && nodes[1].node.leader().as_ref() == Some(l))
    })
    .await;
    assert!(
        stopped_at.elapsed() < HANDED_OVER_WITHIN,
        "node {} led only {:?} after the leader began stopping: no hand-over",
        new_leader.id,
        stopped_at.elapsed()
    );
    assert_eq!(
        http_post(
            &new_leader.addr,
            "/create_topic",
            serde_json::json!({"name": "t2"})
        )
        .await,
        200,
        "the new leader takes writes"
    );

    // Once stopped and dropped, nothing holds a node: its data directory can be opened again
    // in this very process (the directory lock is an flock, held by the Node alone).
    for n in nodes {
        n.stop().await;
    }
    let again = InProcess::start(leader_id, dirs[leader_id as usize - 1].path(), vec![]).await;
    again.stop().await;
}
