//! [`StoredPartition`]: a partition as the image keeps it, a third of a `PartitionRecord`.
//!
//! A `PartitionRecord` is 136 bytes: four `Vec`s (24 bytes each, two of them nearly always
//! empty), its map key again (topicUUID and partitionId), and a heap block for each non-empty
//! list. In the image's map that made a 160-byte slot per partition. A stored partition is the
//! record without its key (the map's key holds it) and with its four lists in one boxed slice:
//! 48 bytes and one heap block. The reads give the `PartitionRecord` back
//! ([`StoredPartition::to_record`]), so what the API, the snapshots and the views see is the
//! same type, serialized by the same code.

use uuid::Uuid;

use crate::metadata::record::PartitionRecord;

/// A partition without its key, its replica lists in one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPartition {
    /// `leaderEpoch`.
    pub leader_epoch: u64,
    /// `partitionEpoch`.
    pub partition_epoch: u64,
    /// `leader` (or `-1`, no leader).
    pub leader: i32,
    /// Where replicas, ISR and removingReplicas end in `lists`; addingReplicas is the rest.
    ends: [u32; 3],
    /// replicas, then ISR, then removingReplicas, then addingReplicas.
    lists: Box<[i32]>,
}

/// A list's end in `lists`. A list is at most as long as the brokers registered (or, read from
/// a snapshot, a MessagePack array: at most `u32::MAX` long), so the conversion holds; were it
/// ever to fail, the lists would read empty rather than out of bounds.
fn end(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl StoredPartition {
    /// The stored form of `p` (its topicUUID and partitionId are the map's key).
    pub fn new(p: &PartitionRecord) -> Self {
        let mut lists = Vec::with_capacity(
            p.replicas.len() + p.isr.len() + p.removing_replicas.len() + p.adding_replicas.len(),
        );
        lists.extend_from_slice(&p.replicas);
        let replicas = end(lists.len());
        lists.extend_from_slice(&p.isr);
        let isr = end(lists.len());
        lists.extend_from_slice(&p.removing_replicas);
        let removing = end(lists.len());
        lists.extend_from_slice(&p.adding_replicas);
        StoredPartition {
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            leader: p.leader,
            ends: [replicas, isr, removing],
            lists: lists.into_boxed_slice(),
        }
    }

    /// The list between two ends (an end past the block reads as empty).
    fn list(&self, from: u32, to: usize) -> &[i32] {
        self.lists.get(from as usize..to).unwrap_or(&[])
    }

    /// `replicas`.
    pub fn replicas(&self) -> &[i32] {
        self.list(0, self.ends[0] as usize)
    }
    /// `ISR`.
    pub fn isr(&self) -> &[i32] {
        self.list(self.ends[0], self.ends[1] as usize)
    }
    /// `removingReplicas`.
    pub fn removing_replicas(&self) -> &[i32] {
        self.list(self.ends[1], self.ends[2] as usize)
    }
    /// `addingReplicas`.
    pub fn adding_replicas(&self) -> &[i32] {
        self.list(self.ends[2], self.lists.len())
    }

    /// Replaces the ISR (a `PartitionChangeRecord` folded), keeping the other lists.
    pub fn set_isr(&mut self, isr: &[i32]) {
        let mut lists = Vec::with_capacity(self.lists.len() - self.isr().len() + isr.len());
        lists.extend_from_slice(self.replicas());
        lists.extend_from_slice(isr);
        let isr_end = end(lists.len());
        lists.extend_from_slice(self.removing_replicas());
        let removing_end = end(lists.len());
        lists.extend_from_slice(self.adding_replicas());
        self.ends[1] = isr_end;
        self.ends[2] = removing_end;
        self.lists = lists.into_boxed_slice();
    }

    /// The record this partition is, under its key.
    pub fn to_record(&self, topic_uuid: Uuid, partition_id: i32) -> PartitionRecord {
        PartitionRecord {
            isr: self.isr().to_vec(),
            adding_replicas: self.adding_replicas().to_vec(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            partition_id,
            removing_replicas: self.removing_replicas().to_vec(),
            replicas: self.replicas().to_vec(),
            topic_uuid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(replicas: &[i32], isr: &[i32], removing: &[i32], adding: &[i32]) -> PartitionRecord {
        PartitionRecord {
            isr: isr.to_vec(),
            adding_replicas: adding.to_vec(),
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 7,
            partition_epoch: u64::MAX,
            partition_id: 3,
            removing_replicas: removing.to_vec(),
            replicas: replicas.to_vec(),
            topic_uuid: Uuid::from_u128(42),
        }
    }

    fn shapes() -> Vec<PartitionRecord> {
        vec![
            record(&[1], &[1], &[], &[]),
            record(&[1, 2, 3], &[3, 1], &[], &[]),
            record(&[1, 2, 3, 4], &[2], &[1], &[4]),
            record(&[5, 6], &[], &[5, 6], &[]),
            record(&[5, 6], &[6], &[], &[5, 6]),
            record(&[], &[], &[], &[]),
        ]
    }

    #[test]
    fn gives_back_the_record_it_was_made_from() {
        for p in shapes() {
            let s = StoredPartition::new(&p);
            assert_eq!(s.to_record(p.topic_uuid, p.partition_id), p);
            assert_eq!(s.replicas(), p.replicas.as_slice());
            assert_eq!(s.isr(), p.isr.as_slice());
            assert_eq!(s.removing_replicas(), p.removing_replicas.as_slice());
            assert_eq!(s.adding_replicas(), p.adding_replicas.as_slice());
        }
    }

    #[test]
    fn a_new_isr_changes_the_isr_alone() {
        for p in shapes() {
            for isr in [&[][..], &[9][..], &[9, 8, 7, 6, 5][..]] {
                let mut s = StoredPartition::new(&p);
                s.set_isr(isr);
                let mut want = p.clone();
                want.isr = isr.to_vec();
                assert_eq!(s.to_record(p.topic_uuid, p.partition_id), want);
                assert_eq!(s, StoredPartition::new(&want));
            }
        }
    }

    #[test]
    fn is_smaller_than_the_record() {
        assert_eq!(std::mem::size_of::<StoredPartition>(), 48);
        assert!(std::mem::size_of::<PartitionRecord>() >= 136);
    }
}
