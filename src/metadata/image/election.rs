//! KRaft's partition election rules, as pure functions: who may lead, who stays in the ISR when a
//! broker leaves a partition (fenced or shutting down), and the `PartitionChangeRecord` that says
//! so. The liveness controller (`raft::liveness`) decides *when*; these decide *what*, the same
//! way on the leader's speculative image and at apply.

use uuid::Uuid;

use super::Image;
use crate::metadata::record::{BrokerStatus, PartitionChangeRecord, PartitionRecord, NO_LEADER};

/// Whether a broker in this status may lead a partition or be added to an ISR: only `ALIVE` and
/// `UNFENCED` may; `INIT` (not yet unfenced), `FENCED` and `CLOSED` count as fenced.
pub fn can_lead(status: BrokerStatus) -> bool {
    matches!(status, BrokerStatus::Alive | BrokerStatus::Unfenced)
}

/// A partition's new leader and ISR when `leaving` leaves it and the brokers in `avoid` (shutting
/// down) must not be chosen; `None` when neither changes.
///
/// - `leaving` leaves the ISR, unless it is the ISR's last member (KRaft keeps the last one, so
///   that the partition's data is not declared lost).
/// - The leader stays when it may still lead (`eligible`, not leaving, not avoided). Otherwise
///   the new leader is the first replica, in `replicas` order, that is in the new ISR, eligible
///   and not avoided; [`NO_LEADER`] (`-1`) when there is none.
///
/// With `leaving: None` this elects a leader for a leaderless partition once a replica in its ISR
/// may lead again.
pub fn reelect(
    p: &PartitionRecord,
    leaving: Option<i32>,
    avoid: &[i32],
    eligible: impl Fn(i32) -> bool,
) -> Option<(i32, Vec<i32>)> {
    let isr: Vec<i32> = match leaving {
        Some(b) if p.isr != [b] => p.isr.iter().copied().filter(|r| *r != b).collect(),
        _ => p.isr.clone(),
    };
    let may_lead = |r: i32| Some(r) != leaving && !avoid.contains(&r) && eligible(r);
    let leader = if p.leader != NO_LEADER && may_lead(p.leader) {
        p.leader
    } else {
        p.replicas
            .iter()
            .copied()
            .find(|r| isr.contains(r) && may_lead(*r))
            .unwrap_or(NO_LEADER)
    };
    (leader != p.leader || isr != p.isr).then_some((leader, isr))
}

/// The change record that sets `p`'s leader and ISR: `partitionEpoch` + 1, and `leaderEpoch` + 1
/// when the leader differs.
pub fn change_record(p: &PartitionRecord, leader: i32, isr: Vec<i32>) -> PartitionChangeRecord {
    PartitionChangeRecord {
        topic_uuid: p.topic_uuid,
        partition_id: p.partition_id,
        leader,
        isr,
        leader_epoch: p.leader_epoch + u64::from(leader != p.leader),
        partition_epoch: p.partition_epoch + 1,
    }
}

impl Image {
    /// Whether broker `id` is registered and may lead ([`can_lead`]).
    pub fn broker_can_lead(&self, id: i32) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(|b| can_lead(b.broker_status))
    }

    /// The partitions broker `id` leads or is in the ISR of: those a fence or a controlled
    /// shutdown of it may change, as (topicUUID, partitionId).
    pub fn partitions_of_broker(&self, id: i32) -> Vec<(Uuid, i32)> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.leader == id || p.isr().contains(&id))
            .map(|(key, _)| *key)
            .collect()
    }

    /// How many partitions broker `id` leads.
    pub fn partitions_led_by(&self, id: i32) -> usize {
        self.partitions.values().filter(|p| p.leader == id).count()
    }

    /// The leaderless partitions that list broker `id` in their ISR: those it may lead once it
    /// is unfenced.
    pub fn leaderless_with(&self, id: i32) -> Vec<(Uuid, i32)> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.leader == NO_LEADER && p.isr().contains(&id))
            .map(|(key, _)| *key)
            .collect()
    }

    /// [`reelect`] on this image's partition and brokers, as a change record; `None` when the
    /// partition is unknown or nothing changes.
    pub fn reelection(
        &self,
        topic_uuid: &Uuid,
        partition_id: i32,
        leaving: Option<i32>,
        avoid: &[i32],
    ) -> Option<PartitionChangeRecord> {
        let p = self.partition(topic_uuid, partition_id)?;
        let (leader, isr) = reelect(&p, leaving, avoid, |r| self.broker_can_lead(r))?;
        Some(change_record(&p, leader, isr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRecord {
        PartitionRecord {
            partition_id: 0,
            topic_uuid: Uuid::from_u128(1),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
        }
    }

    #[test]
    fn only_alive_and_unfenced_may_lead() {
        let can: Vec<bool> = BrokerStatus::ALL.into_iter().map(can_lead).collect();
        // INIT, FENCED, UNFENCED, ALIVE, CLOSED
        assert_eq!(can, [false, false, true, true, false]);
    }

    #[test]
    fn a_leaving_leader_is_replaced_by_the_first_eligible_replica_in_the_isr() {
        // Replica order decides, not ISR order; 2 is not in the ISR, 4 is fenced.
        let part = p(&[1, 2, 4, 3, 5], &[5, 3, 4, 1], 1);
        let all_but_4 = |r: i32| r != 4;
        assert_eq!(
            reelect(&part, Some(1), &[], all_but_4),
            Some((3, vec![5, 3, 4]))
        );
        // A shutting-down broker is avoided too.
        assert_eq!(
            reelect(&part, Some(1), &[3], all_but_4),
            Some((5, vec![5, 3, 4]))
        );
        // No one left who may lead: -1, and the leaver still leaves the ISR.
        assert_eq!(
            reelect(&part, Some(1), &[], |_| false),
            Some((NO_LEADER, vec![5, 3, 4]))
        );
    }

    #[test]
    fn the_last_isr_member_stays_and_a_follower_only_leaves_the_isr() {
        assert_eq!(
            reelect(&p(&[1, 2], &[1], 1), Some(1), &[], |_| true),
            Some((NO_LEADER, vec![1]))
        );
        // A follower leaving: the leader stays, the ISR shrinks.
        assert_eq!(
            reelect(&p(&[1, 2], &[1, 2], 1), Some(2), &[], |_| true),
            Some((1, vec![1]))
        );
        // Not involved at all: nothing to change.
        assert_eq!(reelect(&p(&[1, 2], &[1], 1), Some(3), &[], |_| true), None);
    }

    #[test]
    fn a_leaderless_partition_gets_a_leader_once_one_may_lead() {
        let part = p(&[1, 2], &[2], NO_LEADER);
        assert_eq!(reelect(&part, None, &[], |_| false), None);
        assert_eq!(reelect(&part, None, &[], |r| r == 2), Some((2, vec![2])));
    }

    #[test]
    fn change_records_bump_the_leader_epoch_only_when_the_leader_changes() {
        let part = p(&[1, 2], &[1, 2], 1);
        let moved = change_record(&part, 2, vec![2]);
        assert_eq!((moved.leader_epoch, moved.partition_epoch), (5, 10));
        let shrunk = change_record(&part, 1, vec![1]);
        assert_eq!((shrunk.leader_epoch, shrunk.partition_epoch), (4, 10));
    }
}
