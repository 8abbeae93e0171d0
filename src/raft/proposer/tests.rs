//! Unit tests of the proposer: the outcome rules, the re-share check, and a plan cut off
//! mid-submission on a real one-node Raft.

use std::sync::Arc;
use std::time::Duration;

use openraft::raft::ClientWriteResponse;

use super::*;
use crate::metadata::TopicRecord;
use crate::raft::{log_id, ApplyOutcome};

fn topic() -> Record {
    Record::Topic(TopicRecord {
        name: "x".into(),
        topic_uuid: uuid::Uuid::from_u128(7),
    })
}

fn answered(refused: Option<MetadataError>) -> Outcome {
    Ok(Ok(Ok(ClientWriteResponse {
        log_id: log_id(3, 42),
        data: ApplyOutcome {
            offset: 42,
            refused,
        },
        membership: None,
    })))
}

#[tokio::test]
async fn a_commit_timeout_drops_the_speculative_image_and_is_an_unknown_outcome() {
    let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
        .await
        .unwrap_err();
    let r = resolve(Err(elapsed), topic(), 1);
    assert!(
        !r.keep_image,
        "the timed-out record may yet be discarded: the image is rebuilt once it has applied"
    );
    assert!(matches!(
        r.result,
        Err(ProposeError::Unavailable {
            maybe_committed: true,
            ..
        })
    ));
}

#[test]
fn the_applied_image_is_shared_only_once_it_holds_every_proposed_record() {
    assert!(caught_up(10, 10, 0), "nothing proposed since the copy");
    assert!(caught_up(13, 10, 3), "all three proposals applied");
    assert!(!caught_up(12, 10, 3), "one still in flight");
    assert!(!caught_up(10, 10, 3), "none applied yet");
}

/// A plan is cut off mid-submission when its caller stops waiting and nothing else runs it on:
/// a long plan yields inside `raft.write` once the task's cooperative budget is spent (a bounded
/// channel's send), after its record was folded into the speculative image and before it was
/// sent. That record was never proposed; a write for the same thing must not be told it exists.
/// ([`Node::propose_plan`] runs plans in a task of their own so that they are not cut; this is
/// the proposer's own guarantee, for a future dropped anyway.) On a current-thread runtime
/// nothing runs between the cut and the next write, so the records submitted before the cut
/// are all still in flight then (no re-share hides it).
#[tokio::test(flavor = "current_thread")]
async fn a_plan_cut_off_mid_submission_leaves_no_unproposed_record_in_the_image() {
    use crate::raft::node::testing::one_node_leader;
    const PLANNED: usize = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = one_node_leader(dir.path()).await;
    let proposer = Proposer::default();
    let create = |name: &str| WriteRequest::CreateTopic { name: name.into() };
    // One write first: the speculative image exists, so the plan below starts proposing
    // without awaiting anything.
    proposer
        .propose(&node.raft, &node.state, create("warm"))
        .await
        .expect("warm-up write");

    let mut handed: Vec<String> = Vec::new();
    {
        let plan = proposer.propose_plan(&node.raft, &node.state, |_| {
            if handed.len() == PLANNED {
                return None;
            }
            let name = format!("planned-{}", handed.len());
            handed.push(name.clone());
            Some(Ok(create(&name)))
        });
        let mut plan = std::pin::pin!(plan);
        assert!(futures::poll!(plan.as_mut()).is_pending());
    } // dropped: the caller went away
    assert!(
        !handed.is_empty() && handed.len() < PLANNED,
        "the test's premise: the plan was cut off inside its submissions ({} of {PLANNED})",
        handed.len()
    );
    let cut = handed.last().cloned().expect("a record");
    match proposer
        .propose(&node.raft, &node.state, create(&cut))
        .await
    {
        Ok(c) => assert_eq!(
            c.record,
            node.state
                .read()
                .image
                .topic_record(&cut)
                .map(Record::Topic)
                .expect("applied")
        ),
        Err(e) => panic!("{cut} was folded but never proposed; creating it answered {e}"),
    }
    let image = node.state.read().image.clone();
    for name in &handed[..handed.len() - 1] {
        assert!(
            image.topic_record(name).is_some(),
            "{name} was submitted before the cut"
        );
    }
    node.shutdown().await.expect("stops");
}

/// A node's plan is proposed whole even when its caller goes away in the middle: a heartbeat
/// whose broker hung up must not leave the broker fenced and its partitions' leadership moves
/// never proposed. The caller here is dropped after its first poll, the point where a plan run
/// in the caller's own future was cut off (the test above); every planned record must still
/// reach the log, in the plan's order, with nothing between them.
#[tokio::test(flavor = "current_thread")]
async fn a_plan_whose_caller_goes_away_is_still_proposed_to_its_end() {
    use crate::raft::node::testing::one_node_leader;
    const PLANNED: usize = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = one_node_leader(dir.path()).await;
    let create = |name: &str| WriteRequest::CreateTopic { name: name.into() };
    node.propose(create("warm")).await.expect("warm-up write");
    let warm_offset = node.state.read().image.last_offset;

    let handed = Arc::new(std::sync::Mutex::new(0usize));
    {
        let handed = Arc::clone(&handed);
        let plan = node.propose_plan(
            move |_| {
                let mut n = handed.lock().expect("not poisoned");
                if *n == PLANNED {
                    return None;
                }
                *n += 1;
                Some(Ok(WriteRequest::CreateTopic {
                    name: format!("planned-{}", *n - 1),
                }))
            },
            (),
        );
        let mut plan = std::pin::pin!(plan);
        assert!(futures::poll!(plan.as_mut()).is_pending());
    } // dropped: the caller went away

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let last = format!("planned-{}", PLANNED - 1);
    while node.state.read().image.topic_record(&last).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the plan stopped after {} of {PLANNED} records",
            *handed.lock().expect("not poisoned")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let image = node.state.read().image.clone();
    for i in 0..PLANNED {
        assert!(
            image.topic_record(&format!("planned-{i}")).is_some(),
            "planned-{i} was never proposed"
        );
    }
    assert_eq!(
        image.last_offset,
        warm_offset + PLANNED as u64,
        "the plan's records are consecutive, right after the warm-up write"
    );
    node.shutdown().await.expect("stops");
}

#[test]
fn only_writes_queued_before_a_failed_rebuild_share_its_answer() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(10);
    assert!(!shares_failed_rebuild(None, t0), "no failure: wait");
    assert!(
        shares_failed_rebuild(Some(later), t0),
        "queued while it failed: the same answer, at once"
    );
    assert!(
        !shares_failed_rebuild(Some(t0), later),
        "arrived after it failed: try again, the quorum may be back"
    );
}

#[test]
fn a_record_refused_at_apply_is_answered_with_the_refusal_not_200() {
    let refusal = MetadataError::conflict("topic \"x\" already exists");
    let r = resolve(answered(Some(refusal.clone())), topic(), 1);
    assert!(
        !r.keep_image,
        "the speculative image disagrees with the applied one"
    );
    match r.result {
        Err(ProposeError::Rejected(e)) => assert_eq!(e, refusal),
        other => panic!("expected the refusal, got {other:?}"),
    }
}

#[test]
fn an_applied_record_is_committed_at_its_offset() {
    let r = resolve(answered(None), topic(), 5);
    assert!(r.keep_image);
    let c = r.result.expect("committed");
    assert_eq!((c.offset, c.timestamp_ms), (42, 5));
    assert_eq!(c.record, topic());
}

#[test]
fn a_dropped_responder_or_lost_leadership_drops_the_image() {
    let r = resolve(Ok(Err(())), topic(), 1);
    assert!(!r.keep_image);
    assert!(matches!(
        r.result,
        Err(ProposeError::Unavailable {
            maybe_committed: true,
            ..
        })
    ));
    let lost = Ok(Ok(Err(ClientWriteError::ForwardToLeader(
        openraft::errors::ForwardToLeader::empty(),
    ))));
    let r = resolve(lost, topic(), 1);
    assert!(!r.keep_image);
}
