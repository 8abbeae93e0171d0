//! Unit tests of the liveness controller: which heartbeats may name a broker, and answers that
//! plans still running (or still in the log) must never contradict, on a real one-node Raft.

use super::*;
use crate::metadata::{MetadataCommand, SecurityProtocol};

#[test]
fn heartbeats_must_name_a_live_broker_and_its_current_epoch() {
    let mut img = Image::new();
    let reg = |status| WriteRequest::RegisterBroker {
        broker_id: 1,
        broker_host: "h".into(),
        broker_port: 9092,
        security_protocol: SecurityProtocol::Plaintext,
        broker_status: status,
        rack_id: None,
    };
    let apply = |img: &mut Image, req, offset| {
        let record = img.prepare(req).unwrap();
        img.apply(
            offset,
            &MetadataCommand {
                timestamp_ms: 1,
                record,
            },
        )
        .unwrap();
    };
    assert_eq!(
        check_broker(&img, 1, 0).unwrap_err().kind,
        ErrorKind::NotFound
    );
    apply(&mut img, reg(BrokerStatus::Fenced), 7);
    assert_eq!(check_broker(&img, 1, 7).unwrap().broker_epoch, 7);
    assert_eq!(
        check_broker(&img, 1, 6).unwrap_err().kind,
        ErrorKind::StaleBrokerEpoch
    );
    apply(&mut img, WriteRequest::DeleteBroker { broker_id: 1 }, 8);
    assert_eq!(
        check_broker(&img, 1, 7).unwrap_err().kind,
        ErrorKind::Conflict
    );
    apply(&mut img, reg(BrokerStatus::Fenced), 9);
    assert_eq!(
        check_broker(&img, 1, 7).unwrap_err().kind,
        ErrorKind::StaleBrokerEpoch,
        "a re-registration makes the old epoch stale"
    );
}

const DEADLINE: Duration = Duration::from_secs(30);

fn register(broker_status: BrokerStatus) -> WriteRequest {
    WriteRequest::RegisterBroker {
        broker_id: 1,
        broker_host: "h1".into(),
        broker_port: 9092,
        security_protocol: SecurityProtocol::Plaintext,
        broker_status,
        rack_id: None,
    }
}

fn beat(epoch: u64, want_fence: bool, want_shut_down: bool) -> Heartbeat {
    Heartbeat {
        broker_epoch: epoch,
        current_metadata_offset: u64::MAX,
        want_fence,
        want_shut_down,
    }
}

/// A one-node leader where broker 1 registered, led partition 0 of topic `t` (its only
/// replica), then asked to be fenced: FENCED, and the partition has no leader. Its epoch.
async fn fenced_broker_with_a_leaderless_partition(node: &Arc<Node>) -> u64 {
    use crate::metadata::LeaderRef;
    node.propose(register(BrokerStatus::Alive))
        .await
        .expect("registers");
    node.propose(WriteRequest::CreateTopic { name: "t".into() })
        .await
        .expect("topic");
    let t = node.state.read().image.topic_record("t").expect("t");
    node.propose(WriteRequest::CreatePartition {
        partition_id: 0,
        topic_uuid: t.topic_uuid,
        replicas: vec![1],
        isr: vec![1],
        leader: LeaderRef::Id(1),
        removing_replicas: vec![],
        adding_replicas: vec![],
    })
    .await
    .expect("partition");
    let epoch = node
        .state
        .read()
        .image
        .registration(1)
        .expect("reg")
        .broker_epoch;
    let fenced = node
        .liveness()
        .heartbeat(node, 1, beat(epoch, true, false))
        .await
        .expect("fence");
    assert!(fenced.is_fenced);
    assert_eq!(node.state.read().image.partitions_led_by(1), 0);
    epoch
}

/// A busy proposer: a plan that holds the proposer's lock, proposing topic after topic, until
/// the flag is set. Returns once it has started.
async fn busy_proposer(
    node: &Arc<Node>,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<
        Result<Vec<Result<crate::raft::proposer::Committed, ProposeError>>, ProposeError>,
    >,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let release = Arc::new(AtomicBool::new(false));
    let handed = Arc::new(AtomicUsize::new(0));
    let busy = {
        let (node, release, handed) = (node.clone(), release.clone(), handed.clone());
        tokio::spawn(async move {
            node.propose_plan(
                move |_| {
                    if release.load(Ordering::SeqCst) {
                        return None;
                    }
                    let n = handed.fetch_add(1, Ordering::SeqCst);
                    Some(Ok(WriteRequest::CreateTopic {
                        name: format!("busy-{n}"),
                    }))
                },
                (),
            )
            .await
        })
    };
    let until = tokio::time::Instant::now() + DEADLINE;
    while handed.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < until,
            "the busy plan never started"
        );
        tokio::task::yield_now().await;
    }
    (release, busy)
}

/// Waits until everything proposed so far has applied: a write after it, once answered.
async fn barrier(node: &Node) {
    tokio::task::yield_now().await;
    tokio::time::timeout(
        DEADLINE,
        node.propose(WriteRequest::CreateTopic {
            name: "after".into(),
        }),
    )
    .await
    .expect("in time")
    .expect("the barrier write");
}

/// A heartbeat's answer must stay true: once a broker hears `shouldShutDown` (it leads nothing
/// and is fenced) no plan the controller accepted *earlier* may unfence it and make it a leader
/// afterwards. Here the broker's unfence heartbeat waits behind a busy proposer, the broker
/// hangs up (its handler is dropped) and asks for a controlled shutdown instead. The abandoned
/// unfence plan must not run after that answer (adversarial review of the detached plans).
#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_heartbeat_plan_never_contradicts_a_later_answer() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = crate::raft::node::testing::one_node_leader(dir.path()).await;
    let epoch = fenced_broker_with_a_leaderless_partition(&node).await;
    let (release, busy) = busy_proposer(&node).await;

    // The broker, caught up, asks to be unfenced; its request waits, and it hangs up.
    {
        let unfence = node
            .liveness()
            .heartbeat(&node, 1, beat(epoch, false, false));
        let mut unfence = std::pin::pin!(unfence);
        assert!(futures::poll!(unfence.as_mut()).is_pending());
    }
    // It asks for a controlled shutdown instead (the proposer is released meanwhile, so an
    // answer that waits for the abandoned plan gets one).
    let answer = {
        let shut = node
            .liveness()
            .heartbeat(&node, 1, beat(epoch, false, true));
        let mut shut = std::pin::pin!(shut);
        let first = futures::poll!(shut.as_mut());
        release.store(true, Ordering::SeqCst);
        match first {
            std::task::Poll::Ready(a) => a,
            std::task::Poll::Pending => tokio::time::timeout(DEADLINE, shut)
                .await
                .expect("the shutdown heartbeat is answered"),
        }
    }
    .expect("the shutdown heartbeat is answered");
    busy.await.expect("joins").expect("the busy plan");
    barrier(&node).await;

    let img = node.state.read().image.clone();
    assert!(
        answer.should_shut_down,
        "the broker leads nothing and is fenced: {answer:?}"
    );
    assert!(
        !img.broker_can_lead(1) && img.partitions_led_by(1) == 0,
        "the broker was told shouldShutDown, then an abandoned plan unfenced it (status {:?}) \
         and made it lead {} partition(s)",
        img.broker_record(1).map(|b| b.broker_status),
        img.partitions_led_by(1)
    );
    node.shutdown().await.expect("stops");
}

/// A shutdown heartbeat that waited for a running plan is taken again whole, its broker epoch
/// checked again: if the broker registered anew meanwhile (a restart), the old incarnation's
/// heartbeat is stale (409 `stale_broker_epoch`) and must not fence the new one or move its
/// leadership (second adversarial review).
#[tokio::test(flavor = "current_thread")]
async fn a_shutdown_heartbeat_that_waited_is_stale_once_its_broker_registered_anew() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = crate::raft::node::testing::one_node_leader(dir.path()).await;
    let old_epoch = fenced_broker_with_a_leaderless_partition(&node).await;
    let (release, busy) = busy_proposer(&node).await;

    // An unfence heartbeat takes the lane; its plan waits behind the busy proposer.
    let unfence = node
        .liveness()
        .heartbeat(&node, 1, beat(old_epoch, false, false));
    let mut unfence = std::pin::pin!(unfence);
    assert!(futures::poll!(unfence.as_mut()).is_pending());
    // The shutdown heartbeat of the same incarnation: the applied image says "fenced, leads
    // nothing", so it waits for the lane before answering.
    let shut = node
        .liveness()
        .heartbeat(&node, 1, beat(old_epoch, false, true));
    let mut shut = std::pin::pin!(shut);
    assert!(futures::poll!(shut.as_mut()).is_pending());
    // Meanwhile the broker restarts and registers again (delete, then register: ALIVE).
    let again = {
        let node = node.clone();
        let mut steps = vec![
            register(BrokerStatus::Alive),
            WriteRequest::DeleteBroker { broker_id: 1 },
        ];
        tokio::spawn(async move { node.propose_plan(move |_| steps.pop().map(Ok), ()).await })
    };
    release.store(true, Ordering::SeqCst);

    let answer = tokio::time::timeout(DEADLINE, shut)
        .await
        .expect("the shutdown heartbeat is answered");
    let _ = tokio::time::timeout(DEADLINE, unfence)
        .await
        .expect("answered");
    let again = again.await.expect("joins").expect("proposed");
    assert!(
        again.iter().all(Result::is_ok),
        "deleted and registered again: {again:?}"
    );
    busy.await.expect("joins").expect("the busy plan");
    barrier(&node).await;

    let img = node.state.read().image.clone();
    let new_epoch = img.registration(1).expect("reg").broker_epoch;
    assert!(new_epoch > old_epoch, "registered anew");
    match answer {
        // Stale, or CLOSED if it came between the delete and the new registration: refused.
        Err(LivenessError::Refused(e)) => assert!(
            matches!(e.kind, ErrorKind::StaleBrokerEpoch | ErrorKind::Conflict),
            "{e}"
        ),
        other => panic!("the old incarnation's shutdown heartbeat was answered {other:?}"),
    }
    assert!(
        img.broker_can_lead(1),
        "the stale shutdown heartbeat fenced the new incarnation: {:?}",
        img.broker_record(1).map(|b| b.broker_status)
    );
    node.shutdown().await.expect("stops");
}

/// A heartbeat's plan acts for the incarnation that sent it, never for a later one: an unfence
/// heartbeat that waited for the lane while its broker was deleted and registered again (a
/// restart, FENCED) must not unfence the new incarnation and make it lead; it is answered
/// `stale_broker_epoch` (third adversarial review).
#[tokio::test(flavor = "current_thread")]
async fn a_heartbeat_that_waited_never_acts_for_a_new_incarnation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = crate::raft::node::testing::one_node_leader(dir.path()).await;
    let old_epoch = fenced_broker_with_a_leaderless_partition(&node).await;

    let lane = Arc::clone(&node.liveness().act).lock_owned().await;
    let unfence = node
        .liveness()
        .heartbeat(&node, 1, beat(old_epoch, false, false));
    let mut unfence = std::pin::pin!(unfence);
    assert!(
        futures::poll!(unfence.as_mut()).is_pending(),
        "it waits for the lane"
    );
    node.propose(WriteRequest::DeleteBroker { broker_id: 1 })
        .await
        .expect("deleted");
    node.propose(register(BrokerStatus::Fenced))
        .await
        .expect("registered anew");
    drop(lane);

    let answer = tokio::time::timeout(DEADLINE, unfence)
        .await
        .expect("the unfence heartbeat is answered");
    barrier(&node).await;
    let img = node.state.read().image.clone();
    assert!(
        !img.broker_can_lead(1) && img.partitions_led_by(1) == 0,
        "the old incarnation's heartbeat unfenced the new one (status {:?}) and made it lead {} \
         partition(s)",
        img.broker_record(1).map(|b| b.broker_status),
        img.partitions_led_by(1)
    );
    match answer {
        Err(LivenessError::Refused(e)) => assert_eq!(e.kind, ErrorKind::StaleBrokerEpoch, "{e}"),
        other => panic!("the old incarnation's heartbeat was answered {other:?}"),
    }
    node.shutdown().await.expect("stops");
}
