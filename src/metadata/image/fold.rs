//! The fold rules: whether a record fits the image ([`Image::check`], shared by `prepare` and
//! `apply`) and how a committed record changes it.

use super::prepare::next_epoch;
use super::{Image, Registration, StoredPartition, TopicName};
use crate::metadata::naming::validate_topic_name;
use crate::metadata::record::{BrokerStatus, PartitionChangeRecord, NO_LEADER};
use crate::metadata::request::{
    broker_change_shape, broker_registration_shape, partition_change_shape, partition_shape,
    producer_id_shape,
};
use crate::metadata::{ErrorKind, MetadataCommand, MetadataError, Record};

impl Image {
    /// Whether `record` can be folded into this image; `Err` says why not. Used by both
    /// `prepare` and `apply`, so the two can never disagree.
    pub fn check(&self, record: &Record) -> Result<(), MetadataError> {
        match record {
            Record::RegisterBroker(r) => {
                broker_registration_shape(
                    r.broker_id,
                    &r.broker_host,
                    r.broker_port,
                    r.rack_id.as_deref(),
                    r.broker_status,
                )?;
                let expected = self.registration_epoch(r.broker_id)?;
                if r.epoch != expected {
                    return Err(MetadataError::conflict(format!(
                        "broker {} registration has epoch {}, expected {expected}",
                        r.broker_id, r.epoch
                    )));
                }
                if self
                    .brokers
                    .values()
                    .any(|b| b.internal_uuid == r.internal_uuid)
                {
                    return Err(MetadataError::conflict(format!(
                        "internalUUID {} is already used",
                        r.internal_uuid
                    )));
                }
                Ok(())
            }
            Record::Topic(t) => {
                validate_topic_name(&t.name)?;
                if self.topics.contains_key(t.name.as_str()) {
                    return Err(MetadataError::conflict(format!(
                        "topic {:?} already exists",
                        t.name
                    )));
                }
                if self.topic_uuids.contains_key(&t.topic_uuid) {
                    return Err(MetadataError::conflict(format!(
                        "topicUUID {} is already used",
                        t.topic_uuid
                    )));
                }
                Ok(())
            }
            Record::Partition(p) => {
                partition_shape(
                    p.partition_id,
                    &p.replicas,
                    &p.isr,
                    &p.removing_replicas,
                    &p.adding_replicas,
                    Some(p.leader),
                )?;
                if !self.topic_uuids.contains_key(&p.topic_uuid) {
                    return Err(MetadataError::not_found(format!(
                        "no topic has topicUUID {}",
                        p.topic_uuid
                    )));
                }
                for id in &p.replicas {
                    match self.brokers.get(id) {
                        None => {
                            return Err(MetadataError::not_found(format!(
                                "replica broker {id} is not registered"
                            )))
                        }
                        Some(b) if b.broker_status == BrokerStatus::Closed => {
                            return Err(MetadataError::not_found(format!(
                                "replica broker {id} is CLOSED; register it again first"
                            )))
                        }
                        Some(_) => {}
                    }
                }
                if self
                    .partitions
                    .contains_key(&(p.topic_uuid, p.partition_id))
                {
                    return Err(MetadataError::conflict(format!(
                        "partition {} of topic {} already exists",
                        p.partition_id, p.topic_uuid
                    )));
                }
                Ok(())
            }
            Record::ProducerIds(r) => {
                producer_id_shape(r.producer_id)?;
                let broker = self.live_broker(r.broker_id)?;
                if let Some(owner) = self.producers.get(&r.producer_id) {
                    return Err(MetadataError::conflict(format!(
                        "producerId {} is already registered to broker {}",
                        r.producer_id, owner.broker_id
                    )));
                }
                if r.broker_epoch != broker.epoch {
                    return Err(MetadataError::conflict(format!(
                        "brokerEpoch {} is stale: broker {} is at epoch {}",
                        r.broker_epoch, r.broker_id, broker.epoch
                    )));
                }
                Ok(())
            }
            Record::BrokerChange(c) => {
                let broker = self.live_broker(c.broker_id)?;
                broker_change_shape(
                    c.broker_id,
                    c.broker_host.as_deref(),
                    c.broker_port,
                    c.broker_host.is_none()
                        && c.broker_port.is_none()
                        && c.security_protocol.is_none()
                        && c.broker_status.is_none(),
                )?;
                let expected = next_epoch(broker)?;
                if c.epoch != expected {
                    return Err(MetadataError::conflict(format!(
                        "change of broker {} has epoch {}, expected {expected}",
                        c.broker_id, c.epoch
                    )));
                }
                Ok(())
            }
            Record::PartitionChange(c) => self.check_partition_change(c),
        }
    }

    /// The rules of a `PartitionChangeRecord`: the partition exists, the record's epochs follow
    /// its own, the new ISR fits its replicas, and no fenced broker becomes its leader or joins
    /// its ISR (see [`super::election::can_lead`]).
    fn check_partition_change(&self, c: &PartitionChangeRecord) -> Result<(), MetadataError> {
        let p = self
            .partitions
            .get(&(c.topic_uuid, c.partition_id))
            .ok_or_else(|| {
                MetadataError::not_found(format!(
                    "no partition {} of topicUUID {}",
                    c.partition_id, c.topic_uuid
                ))
            })?;
        partition_change_shape(c.partition_id, p.replicas(), &c.isr, c.leader)?;
        if c.partition_epoch != p.partition_epoch + 1 {
            return Err(MetadataError::new(
                ErrorKind::StalePartitionEpoch,
                format!(
                    "partition {} of {} is at partitionEpoch {}; a change must carry {}, not {}",
                    c.partition_id,
                    c.topic_uuid,
                    p.partition_epoch,
                    p.partition_epoch + 1,
                    c.partition_epoch
                ),
            ));
        }
        let leader_epoch = p.leader_epoch + u64::from(c.leader != p.leader);
        if c.leader_epoch != leader_epoch {
            return Err(MetadataError::conflict(format!(
                "partition {} of {}: leaderEpoch {} does not follow {} (expected {leader_epoch})",
                c.partition_id, c.topic_uuid, c.leader_epoch, p.leader_epoch
            )));
        }
        if c.leader != p.leader && c.leader != NO_LEADER && !self.broker_can_lead(c.leader) {
            return Err(MetadataError::conflict(format!(
                "broker {} is fenced (or not registered) and cannot lead partition {} of {}",
                c.leader, c.partition_id, c.topic_uuid
            )));
        }
        if let Some(b) = c
            .isr
            .iter()
            .find(|b| !p.isr().contains(b) && !self.broker_can_lead(**b))
        {
            return Err(MetadataError::bad_request(format!(
                "ISR names broker {b}, which is fenced (or not registered) and cannot join it"
            )));
        }
        Ok(())
    }

    /// Folds one committed record into the image.
    ///
    /// Deterministic (no clock, no randomness). A record that does not fit is refused with the
    /// image's records untouched; `last_offset` (and `last_timestamp_ms`) advance either way.
    pub fn apply(&mut self, offset: u64, cmd: &MetadataCommand) -> Result<(), MetadataError> {
        self.last_offset = offset;
        self.last_timestamp_ms = self.last_timestamp_ms.max(cmd.timestamp_ms);
        self.check(&cmd.record)?;
        match &cmd.record {
            Record::RegisterBroker(r) => {
                self.brokers.insert(r.broker_id, r.clone());
                self.registrations.insert(
                    r.broker_id,
                    Registration {
                        broker_epoch: offset,
                        watched: r.broker_status == BrokerStatus::Fenced,
                    },
                );
            }
            Record::Topic(t) => {
                self.topic_uuids.insert(t.topic_uuid, ());
                self.topics.insert(TopicName::new(&t.name), t.topic_uuid);
            }
            Record::Partition(p) => {
                self.partitions
                    .insert((p.topic_uuid, p.partition_id), StoredPartition::new(p));
            }
            Record::ProducerIds(r) => {
                self.producers.insert(r.producer_id, r.clone());
                self.next_producer_id = self.next_producer_id.max(r.producer_id.saturating_add(1));
            }
            Record::BrokerChange(c) => {
                if let Some(b) = self.brokers.get_mut(&c.broker_id) {
                    if let Some(h) = &c.broker_host {
                        b.broker_host = h.clone();
                    }
                    if let Some(p) = c.broker_port {
                        b.broker_port = p;
                    }
                    if let Some(s) = c.security_protocol {
                        b.security_protocol = s;
                    }
                    if let Some(s) = c.broker_status {
                        b.broker_status = s;
                    }
                    b.epoch = c.epoch;
                }
                self.broker_changes.push_back(c.clone());
            }
            Record::PartitionChange(c) => {
                if let Some(p) = self.partitions.get_mut(&(c.topic_uuid, c.partition_id)) {
                    p.leader = c.leader;
                    p.set_isr(&c.isr);
                    p.leader_epoch = c.leader_epoch;
                    p.partition_epoch = c.partition_epoch;
                }
                self.partition_changes.push_back(c.clone());
            }
        }
        Ok(())
    }

    /// [`Image::apply`] that also records the entry's Raft term as `last_epoch`.
    pub fn apply_entry(
        &mut self,
        offset: u64,
        epoch: u64,
        cmd: &MetadataCommand,
    ) -> Result<(), MetadataError> {
        self.last_epoch = epoch;
        self.apply(offset, cmd)
    }

    /// Folds `(offset, command)` pairs into an empty image, skipping refused records as the
    /// state machine does: replaying the same log always gives the same image.
    pub fn fold<'a, I>(entries: I) -> Image
    where
        I: IntoIterator<Item = (u64, &'a MetadataCommand)>,
    {
        let mut image = Image::new();
        for (offset, cmd) in entries {
            let _ = image.apply(offset, cmd);
        }
        image
    }
}
