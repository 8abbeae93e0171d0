//! Issue 16: broker liveness as a KRaft controller does it, on real three-node clusters with a
//! 2 s broker session timeout: unfencing by heartbeat, fencing when heartbeats stop (and the
//! leadership moves that come with it, on every node's stream), controlled shutdown, stale
//! epochs, heartbeats through followers, and a leader crash that must fence nobody.
//!
//! Every wait is a poll with a deadline; the one timing assertion is the contract's own bound
//! (fenced within the session timeout plus one second).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use support::{eventually, poll_until, stream_http, Cluster};
use yakt::client::sse;

const SECS_30: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(2);
const FLAGS: &[&str] = &["--broker-session-timeout", "2s"];

/// Registers broker `id` as `FENCED` (asking for liveness); answers its broker epoch.
async fn register_fenced(c: &Cluster, node: usize, id: i32) -> u64 {
    let (s, v) = c
        .post(
            node,
            "/register_broker",
            json!({"brokerId": id, "brokerHost": format!("kafka-{id}"), "brokerPort": 9092,
                   "brokerStatus": "FENCED"}),
        )
        .await;
    assert_eq!(s, 200, "register {id}: {v}");
    assert_eq!(
        v["brokerEpoch"], v["offset"],
        "brokerEpoch is the offset: {v}"
    );
    v["brokerEpoch"].as_u64().expect("brokerEpoch")
}

/// One heartbeat: status and body.
async fn beat(c: &Cluster, node: usize, id: i32, body: Value) -> (u16, Value) {
    c.post(node, &format!("/broker_heartbeat/{id}"), body).await
}

/// The broker's status as node `node` holds it.
async fn status(c: &Cluster, node: usize, id: i32) -> String {
    let (_, v) = c.get(node, &format!("/get_broker/{id}")).await;
    v["metadata"]["brokerStatus"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A partition as node `node` holds it.
async fn partition(c: &Cluster, node: usize, topic: &str, pid: i64) -> Value {
    let (s, v) = c
        .get(node, &format!("/get_partitions?topicUUID={topic}"))
        .await;
    assert_eq!(s, 200, "{v}");
    v["metadata"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["partitionId"] == pid).cloned())
        .unwrap_or_else(|| panic!("no partition {pid} in {v}"))
}

async fn create_partition(c: &Cluster, node: usize, topic: &str, pid: i64, replicas: &[i32]) {
    let (s, v) = c
        .post(
            node,
            "/create_partition",
            json!({"partitionId": pid, "topicUUID": topic, "replicas": replicas,
                   "ISR": replicas, "leader": replicas[0]}),
        )
        .await;
    assert_eq!(s, 200, "create partition {pid}: {v}");
}

async fn create_topic(c: &Cluster, node: usize, name: &str) -> String {
    let (s, v) = c.post(node, "/create_topic", json!({"name": name})).await;
    assert_eq!(s, 200, "{v}");
    v["metadata"]["topicUUID"]
        .as_str()
        .expect("uuid")
        .to_string()
}

/// Heartbeats for a set of brokers every 300 ms, as a broker's client would: each heartbeat
/// goes to the node that answered last, and to the next node when that one does not answer.
struct Heartbeater {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// The answers seen, per broker: (when, answer).
    answers: Arc<Mutex<Vec<(i32, Instant, Value)>>>,
}

impl Heartbeater {
    fn start(c: &Cluster, brokers: Vec<(i32, u64)>, first: usize) -> Heartbeater {
        let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr.clone()).collect();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (stop2, answers2) = (stop.clone(), answers.clone());
        let task = tokio::spawn(async move {
            let mut at = first;
            while !stop2.load(Ordering::Relaxed) {
                for (id, epoch) in &brokers {
                    for _ in 0..addrs.len() {
                        let url = format!("http://{}/broker_heartbeat/{id}", addrs[at]);
                        let body = json!({"brokerEpoch": epoch, "currentMetadataOffset": epoch});
                        match http.post(&url).json(&body).send().await {
                            Ok(r) if r.status().is_success() => {
                                let v: Value = r.json().await.unwrap_or(Value::Null);
                                answers2.lock().unwrap().push((*id, Instant::now(), v));
                                break;
                            }
                            _ => at = (at + 1) % addrs.len(),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Heartbeater {
            stop,
            task,
            answers,
        }
    }

    async fn stop(self) -> Vec<(i32, Instant, Value)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.answers.lock().unwrap().clone()
    }
}

/// The records named `names` that node `node`'s `/stream` carries from offset 0, read until
/// `done` holds for what was read so far (panics after 30 s).
async fn stream_records(
    c: &Cluster,
    node: usize,
    names: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let url = format!(
        "http://{}/stream?offset=0&names={names}",
        c.nodes[node].addr
    );
    let resp = stream_http().get(&url).send().await.expect("stream");
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + SECS_30;
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new(64 << 20);
    let mut out = Vec::new();
    loop {
        while let Some(ev) = parser.next_event().expect("well-formed SSE") {
            if ev.event == "record" {
                out.push(serde_json::from_str(&ev.data).expect("record JSON"));
            }
        }
        if done(&out) {
            return out;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(b))) => parser.feed(&b).expect("well-formed SSE"),
            other => panic!("stream of node {node} ended or timed out: {other:?}; read {out:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_unfence_and_a_silent_broker_is_fenced_with_its_leadership_moved_everywhere() {
    let c = Cluster::start(3, FLAGS).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3;
    let e1 = register_fenced(&c, l, 1).await;
    let e2 = register_fenced(&c, f, 2).await;
    let e3 = register_fenced(&c, l, 3).await;

    // Not caught up yet: stays fenced, says so.
    let (s, v) = beat(
        &c,
        l,
        1,
        json!({"brokerEpoch": e1, "currentMetadataOffset": e1 - 1}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"isCaughtUp": false, "isFenced": true, "shouldShutDown": false,
               "leaderId": c.nodes[l].id})
    );
    assert_eq!(status(&c, l, 1).await, "FENCED");
    // A watched broker that is still fenced cannot be made a leader.
    let t = create_topic(&c, l, "orders").await;
    let (s, v) = c
        .post(
            l,
            "/create_partition",
            json!({"partitionId": 0, "topicUUID": t, "replicas": [1], "leader": 1}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");

    // Caught up: unfenced, by the leader and through a follower alike.
    for (node, id, e) in [(l, 1, e1), (f, 2, e2), (f, 3, e3)] {
        let (s, v) = beat(
            &c,
            node,
            id,
            json!({"brokerEpoch": e, "currentMetadataOffset": e}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["isCaughtUp"], true);
        assert_eq!(v["isFenced"], false, "broker {id} via node {node}: {v}");
        assert_eq!(v["leaderId"], c.nodes[l].id);
        assert_eq!(status(&c, l, id).await, "UNFENCED");
    }

    create_partition(&c, l, &t, 0, &[1, 2, 3]).await;
    create_partition(&c, l, &t, 1, &[1, 2]).await;
    create_partition(&c, l, &t, 2, &[2, 1]).await;
    // Broker 5 registers the original way and never heartbeats: nothing may happen to it.
    let (s, v) = c
        .post(
            l,
            "/register_broker",
            json!({"brokerId": 5, "brokerHost": "kafka-5", "brokerPort": 9092}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    create_partition(&c, l, &t, 3, &[5]).await;
    let others = Heartbeater::start(&c, vec![(2, e2), (3, e3)], f);
    // Broker 1 heartbeats once more, then falls silent.
    let (s, _) = beat(
        &c,
        f,
        1,
        json!({"brokerEpoch": e1, "currentMetadataOffset": e1}),
    )
    .await;
    assert_eq!(s, 200);
    let silent_since = Instant::now();
    eventually(SESSION * 5, "broker 1 fenced", || async {
        (status(&c, l, 1).await == "FENCED").then_some(())
    })
    .await;
    let took = silent_since.elapsed();
    assert!(
        took <= SESSION + Duration::from_secs(1),
        "fenced after {took:?}, more than the session timeout + 1 s"
    );

    // Each partition it led has a new leader from its ISR, leaderEpoch + 1; it left every ISR.
    let p0 = partition(&c, l, &t, 0).await;
    assert_eq!(
        (
            &p0["leader"],
            &p0["ISR"],
            &p0["leaderEpoch"],
            &p0["partitionEpoch"]
        ),
        (&json!(2), &json!([2, 3]), &json!(1), &json!(1)),
        "{p0}"
    );
    let p1 = partition(&c, l, &t, 1).await;
    assert_eq!(
        (&p1["leader"], &p1["ISR"], &p1["leaderEpoch"]),
        (&json!(2), &json!([2]), &json!(1)),
        "{p1}"
    );
    let p2 = partition(&c, l, &t, 2).await;
    assert_eq!(
        (
            &p2["leader"],
            &p2["ISR"],
            &p2["leaderEpoch"],
            &p2["partitionEpoch"]
        ),
        (&json!(2), &json!([2]), &json!(0), &json!(1)),
        "{p2}"
    );
    assert!(others
        .stop()
        .await
        .iter()
        .all(|(_, _, v)| v["isFenced"] == false));
    // More than a session timeout has passed since broker 5 registered: it is untouched.
    assert_eq!(status(&c, l, 5).await, "ALIVE");
    let p3 = partition(&c, l, &t, 3).await;
    assert_eq!(
        (&p3["leader"], &p3["partitionEpoch"]),
        (&json!(5), &json!(0)),
        "{p3}"
    );

    // The same change records, at the same offsets, on every node's stream; the fence first.
    let names = "BrokerRegistrationChangeBrokerRecord,PartitionChangeRecord";
    let want = |recs: &[Value]| {
        recs.iter()
            .filter(|r| r["name"] == "PartitionChangeRecord")
            .count()
            >= 3
    };
    let on_leader = stream_records(&c, l, names, want).await;
    let fence = on_leader
        .iter()
        .find(|r| r["fields"]["brokerId"] == 1 && r["fields"]["brokerStatus"] == "FENCED")
        .expect("the fence record");
    let changes: Vec<&Value> = on_leader
        .iter()
        .filter(|r| r["name"] == "PartitionChangeRecord")
        .collect();
    assert_eq!(changes.len(), 3, "{on_leader:?}");
    for (k, ch) in changes.iter().enumerate() {
        assert_eq!(
            ch["offset"].as_u64(),
            fence["offset"].as_u64().map(|o| o + 1 + k as u64),
            "the moves follow the fence consecutively: {on_leader:?}"
        );
    }
    for node in 0..3 {
        let recs = stream_records(&c, node, names, want).await;
        assert_eq!(recs, on_leader, "node {node}'s stream");
    }

    // Time travel folds the change records: right after the fence, broker 1 still led
    // partition 0; right after the last move, broker 2 did.
    let at = |offset: u64| {
        let c = &c;
        async move {
            let (s, v) = c.get(f, &format!("/get_metadata?at_offset={offset}")).await;
            assert_eq!(s, 200, "{v}");
            let p0 = v["metadata"]["PartitionRecord"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["partitionId"] == 0).cloned())
                .expect("partition 0");
            let changes = v["metadata"]["PartitionChangeRecord"]
                .as_array()
                .map_or(0, Vec::len);
            (p0["leader"].clone(), changes)
        }
    };
    let fence_at = fence["offset"].as_u64().expect("offset");
    assert_eq!(at(fence_at).await, (json!(1), 0));
    let last = changes
        .last()
        .and_then(|r| r["offset"].as_u64())
        .expect("offset");
    assert_eq!(at(last).await, (json!(2), 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leadership_before_should_shut_down() {
    let c = Cluster::start(3, FLAGS).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 2) % 3;
    let e1 = register_fenced(&c, l, 1).await;
    let e2 = register_fenced(&c, l, 2).await;
    let others = Heartbeater::start(&c, vec![(2, e2)], l);
    let caught_up = json!({"brokerEpoch": e1, "currentMetadataOffset": e1});
    assert_eq!(beat(&c, l, 1, caught_up.clone()).await.1["isFenced"], false);
    eventually(SECS_30, "broker 2 unfenced", || async {
        (status(&c, l, 2).await == "UNFENCED").then_some(())
    })
    .await;
    let t = create_topic(&c, l, "payments").await;
    create_partition(&c, l, &t, 0, &[1, 2]).await;

    let (s, v) = beat(
        &c,
        f,
        1,
        json!({"brokerEpoch": e1, "currentMetadataOffset": e1, "wantShutDown": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["shouldShutDown"], true, "{v}");
    assert_eq!(v["isFenced"], true, "{v}");
    // By the time it may stop, it leads nothing: the move came first, then the fence.
    let p = partition(&c, l, &t, 0).await;
    assert_eq!((&p["leader"], &p["ISR"]), (&json!(2), &json!([2])), "{p}");
    let recs = c.records_from(l, 0).await;
    let offset_of = |pred: &dyn Fn(&Value) -> bool| {
        recs.iter()
            .find(|r| pred(r))
            .and_then(|r| r["offset"].as_u64())
    };
    let moved = offset_of(&|r| r["name"] == "PartitionChangeRecord").expect("the move");
    let fenced = offset_of(&|r| {
        r["name"] == "BrokerRegistrationChangeBrokerRecord"
            && r["fields"]["brokerStatus"] == "FENCED"
            && r["fields"]["brokerId"] == 1
    })
    .expect("the fence");
    assert!(moved < fenced, "move at {moved}, fence at {fenced}");
    // Asking again answers the same and writes nothing more.
    let (s, again) = beat(
        &c,
        l,
        1,
        json!({"brokerEpoch": e1, "currentMetadataOffset": e1, "wantShutDown": true}),
    )
    .await;
    assert_eq!(
        (s, &again["shouldShutDown"]),
        (200, &json!(true)),
        "{again}"
    );
    assert_eq!(c.records_from(l, 0).await.len(), recs.len());
    others.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_epochs_unknown_brokers_and_bad_bodies_are_refused() {
    let c = Cluster::start(3, FLAGS).await;
    let l = c.leader(SECS_30).await;
    let f = (l + 1) % 3;
    let e1 = register_fenced(&c, l, 1).await;
    let e2 = register_fenced(&c, l, 2).await;
    let hb = |e: u64| json!({"brokerEpoch": e, "currentMetadataOffset": e});
    let kind = |v: &Value| v["error"].as_str().unwrap_or("").to_string();

    let (s, v) = beat(&c, f, 1, hb(e1 + 1)).await;
    assert_eq!((s, kind(&v)), (409, "stale_broker_epoch".into()), "{v}");
    let (s, v) = beat(&c, f, 9, hb(e1)).await;
    assert_eq!(s, 404, "{v}");
    for bad in [
        json!({"currentMetadataOffset": 1}),
        json!({"brokerEpoch": -1, "currentMetadataOffset": 1}),
        json!({"brokerEpoch": e1, "currentMetadataOffset": 1, "wantFence": "yes"}),
        json!({"brokerEpoch": e1, "currentMetadataOffset": 1, "extra": 1}),
    ] {
        let (s, v) = beat(&c, f, 1, bad.clone()).await;
        assert_eq!(s, 400, "{bad} → {v}");
    }

    // Both unfenced; broker 2 leads a partition of replicas [2, 1].
    let others = Heartbeater::start(&c, vec![(1, e1), (2, e2)], l);
    eventually(SECS_30, "brokers unfenced", || async {
        (status(&c, l, 1).await == "UNFENCED" && status(&c, l, 2).await == "UNFENCED").then_some(())
    })
    .await;
    let t = create_topic(&c, l, "audit").await;
    create_partition(&c, l, &t, 0, &[2, 1]).await;
    let alter = |broker: i32, epoch: u64, pe: u64, isr: Value| {
        json!({"brokerId": broker, "brokerEpoch": epoch, "topicUUID": t, "partitionId": 0,
               "partitionEpoch": pe, "ISR": isr})
    };
    let (s, v) = c
        .post(f, "/alter_partition", alter(2, e2, 0, json!([2])))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            &v["metadata"]["ISR"],
            &v["metadata"]["partitionEpoch"],
            &v["metadata"]["leaderEpoch"]
        ),
        (&json!([2]), &json!(1), &json!(0)),
        "{v}"
    );
    for (body, status, k) in [
        (alter(2, e2, 0, json!([2, 1])), 409, "stale_partition_epoch"),
        (
            alter(1, e1, 1, json!([1, 2])),
            409,
            "not_leader_for_partition",
        ),
        (alter(2, e1, 1, json!([2, 1])), 409, "stale_broker_epoch"),
        (alter(2, e2, 1, json!([2, 3])), 400, "bad_request"),
        (alter(2, e2, 1, json!([])), 400, "bad_request"),
    ] {
        let (s, v) = c.post(f, "/alter_partition", body.clone()).await;
        assert_eq!((s, kind(&v)), (status, k.to_string()), "{body} → {v}");
    }
    let (s, v) = c
        .post(l, "/alter_partition", alter(2, e2, 1, json!([2, 1])))
        .await;
    assert_eq!(
        (s, &v["metadata"]["partitionEpoch"]),
        (200, &json!(2)),
        "{v}"
    );
    others.stop().await;

    // A CLOSED broker's heartbeat is a conflict; its registration again makes the old epoch stale.
    let (s, _) = c.put(l, "/delete_broker/1", json!({})).await;
    assert_eq!(s, 200);
    let (s, v) = beat(&c, f, 1, hb(e1)).await;
    assert_eq!((s, kind(&v)), (409, "conflict".into()), "{v}");
    let e1b = register_fenced(&c, l, 1).await;
    assert!(e1b > e1);
    let (s, v) = beat(&c, f, 1, hb(e1)).await;
    assert_eq!((s, kind(&v)), (409, "stale_broker_epoch".into()), "{v}");
    let (s, v) = beat(&c, f, 1, hb(e1b)).await;
    assert_eq!((s, &v["isFenced"]), (200, &json!(false)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: kills the leader and waits out several session timeouts"]
async fn killing_the_leader_fences_no_broker_that_keeps_heartbeating() {
    let mut c = Cluster::start(3, FLAGS).await;
    let l = c.leader(SECS_30).await;
    let mut brokers = Vec::new();
    for id in 1..=3 {
        brokers.push((id, register_fenced(&c, l, id).await));
    }
    // Broker 4 falls silent together with the leader: the new leader must still fence it (it
    // watches every broker that registered FENCED from the moment it leads).
    let e4 = register_fenced(&c, l, 4).await;
    let lone = Heartbeater::start(&c, vec![(4, e4)], l);
    // The heartbeats start at the leader, so they have to find the next one after the crash.
    let hb = Heartbeater::start(&c, brokers.clone(), l);
    eventually(SECS_30, "all unfenced", || async {
        for id in 1..=4 {
            if status(&c, l, id).await != "UNFENCED" {
                return None;
            }
        }
        Some(())
    })
    .await;
    let before = c.records_from(l, 0).await.len();
    lone.stop().await;
    c.nodes[l].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    let nl = c.leader_among(&survivors, SECS_30).await;
    // Heartbeats answered by the new leader over three session timeouts: long enough for it to
    // have fenced anyone it missed.
    let new_leader_id = c.nodes[nl].id;
    let answered = poll_until(SECS_30, || async {
        let a = hb.answers.lock().unwrap();
        let mut times = a
            .iter()
            .filter(|(_, _, v)| v["leaderId"] == new_leader_id)
            .map(|(_, t, _)| *t);
        let first = times.next()?;
        let last = times.next_back()?;
        (last.duration_since(first) >= SESSION * 3).then_some(())
    })
    .await;
    assert!(
        answered.is_some(),
        "the heartbeats did not reach the new leader"
    );
    hb.stop().await;
    let after = c.records_from(nl, 0).await;
    let fenced: Vec<&Value> = after[before..]
        .iter()
        .filter(|r| {
            r["name"] == "BrokerRegistrationChangeBrokerRecord"
                && r["fields"]["brokerStatus"] == "FENCED"
        })
        .map(|r| &r["fields"]["brokerId"])
        .collect();
    assert_eq!(fenced, [&json!(4)], "only the silent broker is fenced");
    for (id, _) in &brokers {
        assert_eq!(status(&c, nl, *id).await, "UNFENCED", "broker {id}");
    }
}

/// Adversarial review (rr10): the lane only covers plans still *running* on this node. An
/// unfence whose commit waits timed out (the leader lost its quorum for a while) has ended and
/// freed the lane, but its records are still in the leader's log and commit once the quorum is
/// back. A shouldShutDown heartbeat answered from the applied image in between hears "you lead
/// nothing, stop", and afterwards the plan decided before that answer unfences the broker and
/// makes it lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: stops both followers and waits out two commit timeouts"]
async fn a_timed_out_unfence_still_in_the_log_never_follows_should_shut_down() {
    let c = Cluster::start(3, &["--broker-session-timeout", "120s"]).await;
    let l = c.leader(SECS_30).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    let e1 = register_fenced(&c, l, 1).await;
    let hb = |fence: bool, shut: bool| {
        json!({"brokerEpoch": e1, "currentMetadataOffset": e1,
               "wantFence": fence, "wantShutDown": shut})
    };
    assert_eq!(beat(&c, l, 1, hb(false, false)).await.1["isFenced"], false);
    let t = create_topic(&c, l, "payments").await;
    create_partition(&c, l, &t, 0, &[1]).await;
    // The broker asks to be fenced: FENCED, partition 0 left without a leader.
    let (s, v) = beat(&c, l, 1, hb(true, false)).await;
    assert_eq!((s, &v["isFenced"]), (200, &json!(true)), "{v}");
    assert_eq!(partition(&c, l, &t, 0).await["leader"], -1);

    let last_log = |v: &Value| v["last_log_offset"].as_u64().unwrap_or(0);
    let before = last_log(&c.cluster_view(l).await.expect("view"));
    for f in &followers {
        c.nodes[*f].signal(libc::SIGSTOP);
    }
    // The broker asks to be unfenced, and hangs up; the plan (UNFENCED, then leader 1 for
    // partition 0) is appended but cannot commit.
    let quick = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let url = format!("http://{}/broker_heartbeat/1", c.nodes[l].addr);
    let _ = quick.post(&url).json(&hb(false, false)).send().await;
    eventually(SECS_30, "the unfence plan appended", || async {
        let v = c.cluster_view(l).await?;
        (last_log(&v) >= before + 2).then_some(())
    })
    .await;
    // The broker asks for a controlled shutdown; the answer comes once the lane is free (the
    // unfence's commit waits have timed out).
    let (s, v) = beat(&c, l, 1, hb(false, true)).await;
    for f in &followers {
        c.nodes[*f].signal(libc::SIGCONT);
    }
    let told = s == 200 && v["shouldShutDown"] == true;
    // Quorum back: whatever the leader's log holds commits (or is dropped) once a write of the
    // current leader's term commits. The resumed followers may hold an election first, so the
    // write is retried while its outcome is unknown (a 409 means an earlier try committed).
    let nl = eventually(
        SECS_30,
        "a write of the current leader's term commits",
        || async {
            let nl = c.leader(SECS_30).await;
            let (s, w) = c.post(nl, "/create_topic", json!({"name": "after"})).await;
            match s {
                200 | 409 => Some(nl),
                503 | 0 => None,
                other => panic!("create_topic after: {other} {w}"),
            }
        },
    )
    .await;
    let p = partition(&c, nl, &t, 0).await;
    let st = status(&c, nl, 1).await;
    assert!(
        !told || (st == "FENCED" && p["leader"] != 1),
        "broker 1 was told shouldShutDown ({v}), then the earlier unfence plan committed: \
         status {st}, partition 0 {p}"
    );
}
