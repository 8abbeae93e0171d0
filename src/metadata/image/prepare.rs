//! The leader's half of a write: validate a request against the image and decide every
//! server-set field (UUIDs, epochs, the next producer id), giving the record to propose.

use uuid::Uuid;

use super::election::{can_lead, change_record};
use super::Image;
use crate::metadata::record::{
    BrokerRegistrationChangeBrokerRecord, BrokerStatus, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, TopicRecord,
};
use crate::metadata::request::LeaderRef;
use crate::metadata::{ErrorKind, MetadataError, Record, WriteRequest};

impl Image {
    /// Validates a request against this image and decides the server-set fields.
    pub fn prepare(&self, req: WriteRequest) -> Result<Record, MetadataError> {
        req.validate()?;
        let record = match req {
            WriteRequest::RegisterBroker {
                broker_id,
                broker_host,
                broker_port,
                security_protocol,
                broker_status,
                rack_id,
            } => {
                let epoch = self.registration_epoch(broker_id)?;
                let mut internal_uuid = Uuid::new_v4();
                while self
                    .brokers
                    .values()
                    .any(|b| b.internal_uuid == internal_uuid)
                {
                    internal_uuid = Uuid::new_v4();
                }
                Record::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    broker_host,
                    broker_port,
                    security_protocol,
                    broker_status,
                    rack_id,
                    internal_uuid,
                    epoch,
                })
            }
            WriteRequest::CreateTopic { name } => {
                let mut topic_uuid = Uuid::new_v4();
                while self.topic_uuids.contains_key(&topic_uuid) {
                    topic_uuid = Uuid::new_v4();
                }
                Record::Topic(TopicRecord { name, topic_uuid })
            }
            WriteRequest::CreatePartition {
                partition_id,
                topic_uuid,
                replicas,
                isr,
                removing_replicas,
                adding_replicas,
                leader,
            } => {
                let leader = match leader {
                    LeaderRef::Id(id) => id,
                    LeaderRef::InternalUuid(u) => self
                        .brokers
                        .values()
                        .find(|b| b.internal_uuid == u && b.broker_status != BrokerStatus::Closed)
                        .map(|b| b.broker_id)
                        .ok_or_else(|| {
                            MetadataError::not_found(format!(
                                "leader: no registered broker has internalUUID {u}"
                            ))
                        })?,
                };
                Record::Partition(PartitionRecord {
                    partition_id,
                    topic_uuid,
                    replicas,
                    isr,
                    removing_replicas,
                    adding_replicas,
                    leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                })
            }
            WriteRequest::RegisterProducer {
                broker_id,
                producer_id,
            } => {
                let broker = self.live_broker(broker_id)?;
                let producer_id = match producer_id {
                    Some(p) => p,
                    None => {
                        if self.producers.contains_key(&self.next_producer_id) {
                            return Err(MetadataError::conflict(
                                "no producer id is left to allocate",
                            ));
                        }
                        self.next_producer_id
                    }
                };
                Record::ProducerIds(ProducerIdsRecord {
                    broker_id,
                    broker_epoch: broker.epoch,
                    producer_id,
                })
            }
            WriteRequest::ChangeBroker {
                broker_id,
                broker_host,
                broker_port,
                security_protocol,
                broker_status,
            } => {
                let broker = self.live_broker(broker_id)?;
                Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
                    broker_id,
                    broker_host,
                    broker_port,
                    security_protocol,
                    broker_status,
                    epoch: next_epoch(broker)?,
                })
            }
            WriteRequest::DeleteBroker { broker_id } => {
                let broker = match self.live_broker(broker_id) {
                    Err(e) if e.kind == ErrorKind::Conflict => {
                        return Err(MetadataError::conflict(format!(
                            "broker {broker_id} is already CLOSED"
                        )))
                    }
                    other => other?,
                };
                Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
                    broker_id,
                    broker_host: None,
                    broker_port: None,
                    security_protocol: None,
                    broker_status: Some(BrokerStatus::Closed),
                    epoch: next_epoch(broker)?,
                })
            }
            WriteRequest::AlterPartition {
                broker_id,
                topic_uuid,
                partition_id,
                partition_epoch,
                isr,
            } => self.prepare_alter_partition(
                broker_id,
                topic_uuid,
                partition_id,
                partition_epoch,
                isr,
            )?,
            WriteRequest::Reelect {
                topic_uuid,
                partition_id,
                leaving,
                avoid,
            } => {
                if !self.partitions.contains_key(&(topic_uuid, partition_id)) {
                    return Err(MetadataError::not_found(format!(
                        "no partition {partition_id} of topicUUID {topic_uuid}"
                    )));
                }
                let change = self
                    .reelection(&topic_uuid, partition_id, leaving, &avoid)
                    .ok_or_else(|| {
                        MetadataError::conflict(format!(
                            "partition {partition_id} of {topic_uuid}: leader and ISR already fit"
                        ))
                    })?;
                Record::PartitionChange(change)
            }
        };
        self.check(&record)?;
        if let Record::Partition(p) = &record {
            self.check_new_leader_unfenced(p)?;
        }
        Ok(record)
    }

    /// A broker that registered `FENCED` (and so asked to be watched) leads no new partition
    /// until its heartbeats have unfenced it. A rule of the leader's, checked here only and not
    /// at apply: whether a broker is watched comes from its registration record, which an image
    /// read from an older snapshot format does not know, so a fold that depended on it could
    /// differ between a node that replayed the registration and one that started from such a
    /// snapshot. A broker fenced between this check and the record's apply still gets the
    /// partition; the liveness controller moves it off at the broker's fence.
    fn check_new_leader_unfenced(&self, p: &PartitionRecord) -> Result<(), MetadataError> {
        let Some(b) = self.brokers.get(&p.leader) else {
            return Ok(());
        };
        let watched = self.registrations.get(&p.leader).is_some_and(|r| r.watched);
        if watched && !can_lead(b.broker_status) {
            return Err(MetadataError::conflict(format!(
                "broker {} is {} and registered for liveness: it leads no partition until its \
                 heartbeats have unfenced it",
                p.leader, b.broker_status
            )));
        }
        Ok(())
    }

    /// `/alter_partition`: the asking broker leads the partition, the epoch it saw is current,
    /// and the new ISR names replicas only, none of them fenced. The leader stays.
    fn prepare_alter_partition(
        &self,
        broker_id: i32,
        topic_uuid: Uuid,
        partition_id: i32,
        partition_epoch: u64,
        isr: Vec<i32>,
    ) -> Result<Record, MetadataError> {
        self.live_broker(broker_id)?;
        let p = self.partition(&topic_uuid, partition_id).ok_or_else(|| {
            MetadataError::not_found(format!(
                "no partition {partition_id} of topicUUID {topic_uuid}"
            ))
        })?;
        if p.leader != broker_id {
            return Err(MetadataError::new(
                ErrorKind::NotLeaderForPartition,
                format!(
                    "broker {broker_id} does not lead partition {partition_id} of {topic_uuid} \
                     (its leader is {})",
                    p.leader
                ),
            ));
        }
        if partition_epoch != p.partition_epoch {
            return Err(MetadataError::new(
                ErrorKind::StalePartitionEpoch,
                format!(
                    "partitionEpoch {partition_epoch} is stale: partition {partition_id} of \
                     {topic_uuid} is at {}",
                    p.partition_epoch
                ),
            ));
        }
        if let Some(b) = isr.iter().find(|b| !p.replicas.contains(b)) {
            return Err(MetadataError::bad_request(format!(
                "ISR must be a subset of replicas {:?}; broker {b} is not a replica",
                p.replicas
            )));
        }
        if let Some(b) = isr.iter().find(|b| !self.broker_can_lead(**b)) {
            return Err(MetadataError::bad_request(format!(
                "ISR names broker {b}, which is fenced"
            )));
        }
        Ok(Record::PartitionChange(change_record(&p, p.leader, isr)))
    }

    /// The epoch a (re-)registration of `broker_id` gets: 0 for a new id, one above the last
    /// for a CLOSED broker; Conflict while the broker is registered and not CLOSED.
    pub(super) fn registration_epoch(&self, broker_id: i32) -> Result<u64, MetadataError> {
        match self.brokers.get(&broker_id) {
            None => Ok(0),
            Some(b) if b.broker_status == BrokerStatus::Closed => next_epoch(b),
            Some(b) => Err(MetadataError::conflict(format!(
                "broker {broker_id} is already registered (status {}); a broker can register \
                 again only after delete_broker",
                b.broker_status
            ))),
        }
    }

    /// A registered broker that is not CLOSED: NotFound when unknown, Conflict when CLOSED.
    pub(super) fn live_broker(&self, id: i32) -> Result<&RegisterBrokerRecord, MetadataError> {
        match self.brokers.get(&id) {
            None => Err(MetadataError::not_found(format!(
                "no broker {id} is registered"
            ))),
            Some(b) if b.broker_status == BrokerStatus::Closed => Err(MetadataError::conflict(
                format!("broker {id} is CLOSED; register it again first"),
            )),
            Some(b) => Ok(b),
        }
    }
}

/// A broker's epoch + 1, the epoch of its next change record.
pub(super) fn next_epoch(b: &RegisterBrokerRecord) -> Result<u64, MetadataError> {
    b.epoch.checked_add(1).ok_or_else(|| {
        MetadataError::conflict(format!("broker {}'s epoch is exhausted", b.broker_id))
    })
}
