//! What the liveness controller writes, as plans over the leader's speculative image: each call
//! answers the next write given the image the writes before it leave, `None` when done (see
//! [`crate::raft::proposer::Proposer::propose_plan`]). Pure, so the rules are unit-tested.

use crate::metadata::image::election::can_lead;
use crate::metadata::{BrokerStatus, Image, MetadataError, WriteRequest};

/// A plan: the next write on the image as it stands, or `None`.
pub type Plan = Box<dyn FnMut(&Image) -> Option<Result<WriteRequest, MetadataError>> + Send>;

/// `plan`, for one incarnation of `broker` only: the registration whose `internalUUID` is
/// `incarnation`. Once the image it is decided on holds another registration of the broker (it
/// was deleted and registered anew while the plan waited for the lane), it writes nothing more
/// and says so through `stale`: a heartbeat of the old incarnation must not fence, unfence or
/// move the leadership of the new one. (The UUID, not the broker epoch: the speculative image
/// folds records at offset 0, so its epochs are not the applied ones.)
pub fn for_incarnation(
    broker: i32,
    incarnation: uuid::Uuid,
    mut plan: Plan,
    stale: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Plan {
    Box::new(move |img| {
        if img.broker_record(broker).map(|b| b.internal_uuid) != Some(incarnation) {
            stale.store(true, std::sync::atomic::Ordering::SeqCst);
            return None;
        }
        plan(img)
    })
}

/// A change of one broker's status.
fn set_status(broker_id: i32, status: BrokerStatus) -> WriteRequest {
    WriteRequest::ChangeBroker {
        broker_id,
        broker_host: None,
        broker_port: None,
        security_protocol: None,
        broker_status: Some(status),
    }
}

/// The next leadership move off `broker` (avoiding `avoid`), if any partition still needs one.
fn next_move(img: &Image, broker: i32, avoid: &[i32]) -> Option<WriteRequest> {
    img.partitions_of_broker(broker)
        .into_iter()
        .find(|(t, p)| img.reelection(t, *p, Some(broker), avoid).is_some())
        .map(|(topic_uuid, partition_id)| WriteRequest::Reelect {
            topic_uuid,
            partition_id,
            leaving: Some(broker),
            avoid: avoid.to_vec(),
        })
}

/// Fence `broker`: `FENCED` first (so from then on nothing can make it a leader), then every
/// partition it leads gets a new leader and it leaves every ISR it is in (unless the last
/// member), avoiding the brokers in `avoid` (shutting down).
pub fn fence(broker: i32, avoid: Vec<i32>) -> Plan {
    let mut status_done = false;
    Box::new(move |img| {
        if !status_done {
            status_done = true;
            let b = img.broker_record(broker)?;
            if can_lead(b.broker_status) {
                return Some(Ok(set_status(broker, BrokerStatus::Fenced)));
            }
        }
        next_move(img, broker, &avoid).map(Ok)
    })
}

/// Controlled shutdown of `broker`: leadership (and ISR membership) moves off it first, while
/// it still serves; once it leads nothing it is `FENCED`.
pub fn shut_down(broker: i32, avoid: Vec<i32>) -> Plan {
    let mut fenced = false;
    Box::new(move |img| {
        if let Some(m) = next_move(img, broker, &avoid) {
            return Some(Ok(m));
        }
        if fenced || img.partitions_led_by(broker) > 0 {
            return None;
        }
        fenced = true;
        let b = img.broker_record(broker)?;
        can_lead(b.broker_status).then(|| Ok(set_status(broker, BrokerStatus::Fenced)))
    })
}

/// Unfence `broker`: `UNFENCED`, then a leader for every leaderless partition it may lead.
pub fn unfence(broker: i32, avoid: Vec<i32>) -> Plan {
    let mut status_done = false;
    Box::new(move |img| {
        // A broker whose session is shutting down is not unfenced: a heartbeat that decided to
        // unfence it before its shutdown began, and reached the lane after, writes nothing.
        // (Sessions live in this leader's memory, for one term: see docs/fault-tolerance.md.)
        if avoid.contains(&broker) {
            return None;
        }
        if !status_done {
            status_done = true;
            let b = img.broker_record(broker)?;
            if matches!(b.broker_status, BrokerStatus::Fenced | BrokerStatus::Init) {
                return Some(Ok(set_status(broker, BrokerStatus::Unfenced)));
            }
            return None;
        }
        img.leaderless_with(broker)
            .into_iter()
            .find(|(t, p)| img.reelection(t, *p, None, &avoid).is_some())
            .map(|(topic_uuid, partition_id)| {
                Ok(WriteRequest::Reelect {
                    topic_uuid,
                    partition_id,
                    leaving: None,
                    avoid: avoid.clone(),
                })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{LeaderRef, MetadataCommand, Record, SecurityProtocol};

    /// Runs a plan as the proposer does: prepare each write on the image, fold it, ask again.
    fn run(img: &mut Image, mut plan: Plan) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(req) = plan(img) {
            out.push(commit(img, req.expect("a write")));
            assert!(out.len() < 100, "the plan does not end");
        }
        out
    }

    /// Prepares `req` on `img` and applies the record at the next offset; returns the record.
    fn commit(img: &mut Image, req: WriteRequest) -> Record {
        let record = img.prepare(req).expect("prepares");
        let offset = img.last_offset + 1;
        img.apply(
            offset,
            &MetadataCommand {
                timestamp_ms: offset,
                record: record.clone(),
            },
        )
        .expect("applies");
        record
    }

    fn cluster() -> (Image, uuid::Uuid) {
        let mut img = Image::new();
        let mut reqs: Vec<WriteRequest> = (1..=3)
            .map(|b| WriteRequest::RegisterBroker {
                broker_id: b,
                broker_host: format!("h{b}"),
                broker_port: 9092,
                security_protocol: SecurityProtocol::Plaintext,
                broker_status: BrokerStatus::Alive,
                rack_id: None,
            })
            .collect();
        reqs.push(WriteRequest::CreateTopic { name: "t".into() });
        for r in reqs {
            commit(&mut img, r);
        }
        let t = img.topic_record("t").unwrap().topic_uuid;
        for (pid, replicas) in [(0, vec![1, 2, 3]), (1, vec![2, 1]), (2, vec![1])] {
            commit(
                &mut img,
                WriteRequest::CreatePartition {
                    partition_id: pid,
                    topic_uuid: t,
                    isr: replicas.clone(),
                    leader: LeaderRef::Id(replicas[0]),
                    replicas,
                    removing_replicas: vec![],
                    adding_replicas: vec![],
                },
            );
        }
        (img, t)
    }

    #[test]
    fn a_fence_comes_first_then_every_partition_moves_off_the_broker() {
        let (mut img, t) = cluster();
        let recs = run(&mut img, fence(1, vec![]));
        assert_eq!(recs[0].name(), "BrokerRegistrationChangeBrokerRecord");
        assert_eq!(recs.len(), 4, "{recs:?}");
        let p = |img: &Image, id| img.partition(&t, id).unwrap();
        let (p0, p1, p2) = (p(&img, 0), p(&img, 1), p(&img, 2));
        assert_eq!((p0.leader, p0.isr, p0.leader_epoch), (2, vec![2, 3], 1));
        // Broker 1 only follows partition 1: it leaves the ISR, the leader stays.
        assert_eq!((p1.leader, p1.isr, p1.leader_epoch), (2, vec![2], 0));
        // Partition 2's only replica is 1: no leader, and 1 stays its last ISR member.
        assert_eq!((p2.leader, p2.isr), (-1, vec![1]));
        // Fencing again changes nothing.
        assert!(run(&mut img, fence(1, vec![])).is_empty());
        // A broker shutting down is not unfenced, whoever decided to (adversarial review).
        assert!(run(&mut img, unfence(1, vec![1])).is_empty());
        assert!(!img.broker_can_lead(1));
        // Unfencing elects it for the partition that has no leader.
        let back = run(&mut img, unfence(1, vec![]));
        assert_eq!(back.len(), 2);
        assert_eq!((p(&img, 2).leader, p(&img, 2).leader_epoch), (1, 2));
    }

    #[test]
    fn a_controlled_shutdown_moves_leadership_before_the_fence() {
        let (mut img, t) = cluster();
        let recs = run(&mut img, shut_down(1, vec![1, 3]));
        let names: Vec<&str> = recs.iter().map(Record::name).collect();
        // Three partitions move (as for a fence: partition 2, whose only replica is 1, is left
        // without a leader), and only then is the broker fenced.
        assert_eq!(
            names,
            [
                "PartitionChangeRecord",
                "PartitionChangeRecord",
                "PartitionChangeRecord",
                "BrokerRegistrationChangeBrokerRecord"
            ]
        );
        // 3 is shutting down too, so partition 0 goes to 2.
        assert_eq!(img.partition(&t, 0).unwrap().leader, 2);
        assert_eq!(img.partition(&t, 2).unwrap().leader, -1);
        assert_eq!(img.partitions_led_by(1), 0);
        assert!(!img.broker_can_lead(1));
        // Broker 3 leads nothing: it leaves partition 0's ISR, then the fence comes, last.
        let (mut img, t) = cluster();
        let recs = run(&mut img, shut_down(3, vec![3]));
        let names: Vec<&str> = recs.iter().map(Record::name).collect();
        assert_eq!(
            names,
            [
                "PartitionChangeRecord",
                "BrokerRegistrationChangeBrokerRecord"
            ]
        );
        assert_eq!(img.partition(&t, 0).unwrap().isr, vec![1, 2]);
        assert!(!img.broker_can_lead(3));
    }
}
