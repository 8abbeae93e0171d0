//! The rules a write follows that need no image: ranges, list shapes, Kafka's naming rules.
//! Requests are held to them when parsed, and [`Image::check`](crate::metadata::Image::check)
//! holds records to the same functions when it folds them.

use super::{LeaderRef, WriteRequest};
use crate::metadata::error::MetadataError;
use crate::metadata::naming::{validate_label, validate_topic_name};
use crate::metadata::record::BrokerStatus;

fn non_negative(key: &str, n: i64) -> Result<(), MetadataError> {
    if n < 0 {
        Err(MetadataError::bad_request(format!(
            "{key} must not be negative, got {n}"
        )))
    } else {
        Ok(())
    }
}

fn no_repeats(key: &str, ids: &[i32]) -> Result<(), MetadataError> {
    for (i, id) in ids.iter().enumerate() {
        non_negative(key, i64::from(*id))?;
        if ids[..i].contains(id) {
            return Err(MetadataError::bad_request(format!(
                "{key} lists broker {id} more than once"
            )));
        }
    }
    Ok(())
}

fn subset(key: &str, ids: &[i32], replicas: &[i32]) -> Result<(), MetadataError> {
    match ids.iter().find(|id| !replicas.contains(id)) {
        Some(id) => Err(MetadataError::bad_request(format!(
            "{key} must be a subset of replicas {replicas:?}; broker {id} is not a replica"
        ))),
        None => Ok(()),
    }
}

/// The port rule, 1–65535, for a port given in code rather than parsed (the parsers already
/// refuse 0).
fn port_ok(port: u16) -> Result<(), MetadataError> {
    if port == 0 {
        return Err(MetadataError::bad_request(
            "brokerPort must be an integer from 1 to 65535, got 0",
        ));
    }
    Ok(())
}

/// The shape of a broker registration: id, host, port, rack; never as CLOSED.
pub(in crate::metadata) fn broker_registration_shape(
    broker_id: i32,
    broker_host: &str,
    broker_port: u16,
    rack_id: Option<&str>,
    broker_status: BrokerStatus,
) -> Result<(), MetadataError> {
    non_negative("brokerId", i64::from(broker_id))?;
    validate_label("brokerHost", broker_host)?;
    port_ok(broker_port)?;
    if let Some(r) = rack_id {
        validate_label("rackId", r)?;
    }
    if broker_status == BrokerStatus::Closed {
        return Err(MetadataError::bad_request(
            "a broker cannot register as CLOSED; register it as INIT, FENCED, UNFENCED or ALIVE",
        ));
    }
    Ok(())
}

/// The shape of a new partition (Kafka's rules): replicas non-empty, no list repeats a broker,
/// ISR, removing and adding are subsets of replicas, adding and removing are disjoint, and the
/// leader, when named by id, is a replica.
pub(in crate::metadata) fn partition_shape(
    partition_id: i32,
    replicas: &[i32],
    isr: &[i32],
    removing_replicas: &[i32],
    adding_replicas: &[i32],
    leader_id: Option<i32>,
) -> Result<(), MetadataError> {
    non_negative("partitionId", i64::from(partition_id))?;
    if replicas.is_empty() {
        return Err(MetadataError::bad_request(
            "replicas must list at least one broker",
        ));
    }
    no_repeats("replicas", replicas)?;
    no_repeats("ISR", isr)?;
    no_repeats("removingReplicas", removing_replicas)?;
    no_repeats("addingReplicas", adding_replicas)?;
    subset("ISR", isr, replicas)?;
    subset("removingReplicas", removing_replicas, replicas)?;
    subset("addingReplicas", adding_replicas, replicas)?;
    if let Some(id) = adding_replicas
        .iter()
        .find(|id| removing_replicas.contains(id))
    {
        return Err(MetadataError::bad_request(format!(
            "broker {id} cannot be both in addingReplicas and removingReplicas"
        )));
    }
    if let Some(id) = leader_id.filter(|id| !replicas.contains(id)) {
        return Err(MetadataError::bad_request(format!(
            "leader must be one of the replicas {replicas:?}, got {id}"
        )));
    }
    Ok(())
}

/// The shape of a partition's new leader and ISR (a `PartitionChangeRecord`, an
/// `/alter_partition`): the ISR repeats no broker and is a subset of `replicas`; the leader is a
/// replica or `-1` (no leader).
pub(in crate::metadata) fn partition_change_shape(
    partition_id: i32,
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
) -> Result<(), MetadataError> {
    non_negative("partitionId", i64::from(partition_id))?;
    no_repeats("ISR", isr)?;
    subset("ISR", isr, replicas)?;
    if leader != crate::metadata::record::NO_LEADER && !replicas.contains(&leader) {
        return Err(MetadataError::bad_request(format!(
            "leader must be one of the replicas {replicas:?} or -1, got {leader}"
        )));
    }
    Ok(())
}

/// The shape of a broker change: a valid host and port when given, and at least one field set
/// (`sets_nothing` says none is).
pub(in crate::metadata) fn broker_change_shape(
    broker_id: i32,
    broker_host: Option<&str>,
    broker_port: Option<u16>,
    sets_nothing: bool,
) -> Result<(), MetadataError> {
    non_negative("brokerId", i64::from(broker_id))?;
    if let Some(h) = broker_host {
        validate_label("brokerHost", h)?;
    }
    if let Some(p) = broker_port {
        port_ok(p)?;
    }
    if sets_nothing {
        return Err(MetadataError::bad_request(
            "a broker change must set at least one of brokerHost, brokerPort, securityProtocol, \
             brokerStatus",
        ));
    }
    Ok(())
}

/// A producer id given explicitly (or recorded) is not negative.
pub(in crate::metadata) fn producer_id_shape(producer_id: i64) -> Result<(), MetadataError> {
    non_negative("producerId", producer_id)
}

impl WriteRequest {
    /// Checks every rule that needs no image. The parsers call it; `Image::prepare` calls it
    /// again, so a request built directly in code is held to the same rules.
    pub fn validate(&self) -> Result<(), MetadataError> {
        match self {
            WriteRequest::RegisterBroker {
                broker_id,
                broker_host,
                broker_port,
                broker_status,
                rack_id,
                ..
            } => broker_registration_shape(
                *broker_id,
                broker_host,
                *broker_port,
                rack_id.as_deref(),
                *broker_status,
            ),
            WriteRequest::CreateTopic { name } => validate_topic_name(name),
            WriteRequest::CreatePartition {
                partition_id,
                replicas,
                isr,
                removing_replicas,
                adding_replicas,
                leader,
                ..
            } => partition_shape(
                *partition_id,
                replicas,
                isr,
                removing_replicas,
                adding_replicas,
                match leader {
                    LeaderRef::Id(id) => Some(*id),
                    LeaderRef::InternalUuid(_) => None,
                },
            ),
            WriteRequest::RegisterProducer {
                broker_id,
                producer_id,
            } => {
                non_negative("brokerId", i64::from(*broker_id))?;
                producer_id.map_or(Ok(()), producer_id_shape)
            }
            WriteRequest::ChangeBroker {
                broker_id,
                broker_host,
                broker_port,
                ..
            } => broker_change_shape(
                *broker_id,
                broker_host.as_deref(),
                *broker_port,
                matches!(
                    self,
                    WriteRequest::ChangeBroker {
                        broker_host: None,
                        broker_port: None,
                        security_protocol: None,
                        broker_status: None,
                        ..
                    }
                ),
            ),
            WriteRequest::DeleteBroker { broker_id } => {
                non_negative("brokerId", i64::from(*broker_id))
            }
            WriteRequest::AlterPartition {
                broker_id,
                partition_id,
                isr,
                ..
            } => {
                non_negative("brokerId", i64::from(*broker_id))?;
                non_negative("partitionId", i64::from(*partition_id))?;
                if isr.is_empty() {
                    return Err(MetadataError::bad_request(
                        "ISR must list at least one broker (the leader)",
                    ));
                }
                no_repeats("ISR", isr)
            }
            WriteRequest::Reelect { partition_id, .. } => {
                non_negative("partitionId", i64::from(*partition_id))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ErrorKind;

    #[test]
    fn validate_catches_requests_built_in_code() {
        let r = WriteRequest::RegisterProducer {
            broker_id: -1,
            producer_id: None,
        };
        assert_eq!(r.validate().unwrap_err().kind, ErrorKind::BadRequest);
        let r = WriteRequest::ChangeBroker {
            broker_id: 1,
            broker_host: None,
            broker_port: Some(0),
            security_protocol: None,
            broker_status: None,
        };
        assert!(r.validate().is_err());
    }
}
