// The metadata image, folded in the browser from the node's stream: a snapshot replaces it,
// each record changes it as the node's state machine does (src/metadata/image.rs), including
// its refusals of records that do not fit (a topic name taken, an unknown topic...), so that a
// refused record in the log does not show here either.

/** Key of one partition. */
export function partitionKey(topicUUID, partitionId) {
  return `${topicUUID}/${partitionId}`;
}

export class Image {
  constructor() {
    this.version = 0; // any change
    this.topicsVersion = 0; // the set of topics changed
    this.brokersVersion = 0;
    this.clear();
  }

  clear() {
    this.brokers = new Map(); // brokerId -> broker
    this.topics = new Map(); // topicUUID -> topic
    this.topicNames = new Map(); // name -> topicUUID
    this.partitions = new Map(); // topicUUID -> Map(partitionId -> partition)
    this.partitionCount = 0;
    this.producerIds = 0;
    this.brokerChanges = 0;
    this.partitionChanges = 0;
    this.offset = null; // the last offset folded in
    this.epoch = null;
    this.snapshotOffset = null;
    this.touchAll();
  }

  touchAll() {
    this.version += 1;
    this.topicsVersion += 1;
    this.brokersVersion += 1;
  }

  /** Replaces the image with a snapshot's `{offset, epoch, metadata}`. */
  loadSnapshot(snap) {
    this.clear();
    const m = snap.metadata || {};
    for (const b of m.RegisterBrokerRecord || []) this.brokers.set(b.brokerId, { ...b });
    for (const t of m.TopicRecord || []) this.addTopic(t);
    for (const p of m.PartitionRecord || []) this.putPartition({ leaderEpoch: 0, ...p });
    this.producerIds = (m.ProducerIdsRecord || []).length;
    this.brokerChanges = (m.BrokerRegistrationChangeBrokerRecord || []).length;
    this.partitionChanges = (m.PartitionChangeRecord || []).length;
    this.offset = snap.offset;
    this.epoch = snap.epoch;
    this.snapshotOffset = snap.offset;
    this.touchAll();
  }

  addTopic(t) {
    this.topics.set(t.topicUUID, { name: t.name, topicUUID: t.topicUUID });
    this.topicNames.set(t.name, t.topicUUID);
  }

  putPartition(p) {
    let of = this.partitions.get(p.topicUUID);
    if (!of) this.partitions.set(p.topicUUID, (of = new Map()));
    if (!of.has(p.partitionId)) this.partitionCount += 1;
    of.set(p.partitionId, p);
  }

  partition(topicUUID, partitionId) {
    const of = this.partitions.get(topicUUID);
    return of ? of.get(partitionId) : undefined;
  }

  /** Folds one record; false when the node's state machine would have refused it. */
  apply(rec) {
    if (this.offset !== null && rec.offset <= this.offset) return false;
    this.offset = rec.offset;
    this.epoch = rec.epoch;
    this.version += 1;
    const f = rec.fields || {};
    switch (rec.name) {
      case 'RegisterBrokerRecord': {
        const old = this.brokers.get(f.brokerId);
        if (old && old.brokerStatus !== 'CLOSED') return false;
        this.brokers.set(f.brokerId, { ...f });
        this.brokersVersion += 1;
        return true;
      }
      case 'BrokerRegistrationChangeBrokerRecord': {
        const b = this.brokers.get(f.brokerId);
        if (!b || b.brokerStatus === 'CLOSED') return false;
        for (const k of ['brokerHost', 'brokerPort', 'securityProtocol', 'brokerStatus']) {
          if (f[k] !== undefined && f[k] !== null) b[k] = f[k];
        }
        if (f.epoch !== undefined) b.epoch = f.epoch;
        this.brokerChanges += 1;
        this.brokersVersion += 1;
        return true;
      }
      case 'TopicRecord': {
        if (this.topicNames.has(f.name) || this.topics.has(f.topicUUID)) return false;
        this.addTopic(f);
        this.topicsVersion += 1;
        return true;
      }
      case 'PartitionRecord': {
        if (!this.topics.has(f.topicUUID) || this.partition(f.topicUUID, f.partitionId)) return false;
        // Entries written before leaderEpoch existed carry none: it is 0, as on the node.
        this.putPartition({ leaderEpoch: 0, ...f });
        this.topicsVersion += 1;
        return true;
      }
      case 'PartitionChangeRecord': {
        // The node's rules (src/metadata/image/fold.rs): the partition exists and the record's
        // partitionEpoch follows its own; the record carries the new leader, ISR and epochs.
        const p = this.partition(f.topicUUID, f.partitionId);
        if (!p || f.partitionEpoch !== (p.partitionEpoch || 0) + 1) return false;
        for (const k of ['leader', 'ISR', 'leaderEpoch', 'partitionEpoch']) {
          if (f[k] !== undefined && f[k] !== null) p[k] = f[k];
        }
        this.partitionChanges += 1;
        this.topicsVersion += 1;
        return true;
      }
      case 'ProducerIdsRecord':
        this.producerIds += 1;
        return true;
      default:
        // A record type this page does not know yet: shown in the stream view, not folded.
        return false;
    }
  }

  /** Counts of brokers by status. */
  brokerStatuses() {
    const counts = {};
    for (const b of this.brokers.values()) counts[b.brokerStatus] = (counts[b.brokerStatus] || 0) + 1;
    return counts;
  }

  /** Partitions of a topic whose ISR is smaller than their replica set, and those without a leader. */
  topicHealth(topicUUID) {
    let under = 0;
    let leaderless = 0;
    const of = this.partitions.get(topicUUID);
    if (of) {
      for (const p of of.values()) {
        if ((p.ISR || []).length < (p.replicas || []).length) under += 1;
        if (p.leader === -1 || p.leader === undefined || p.leader === null) leaderless += 1;
      }
    }
    return { count: of ? of.size : 0, under, leaderless };
  }
}
