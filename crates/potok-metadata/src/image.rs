//! [`MetadataImage`]: topics with their partitions (replicas, ISR, leader, epochs), topic
//! configs, registered brokers, feature levels and the next producer id block, as Kafka's
//! `MetadataImage` / `TopicsImage` / `ConfigurationsImage` / `ClusterImage` hold them.

use std::collections::{BTreeMap, HashMap};

use potok_protocol::messages::internal::partition_change_record::PartitionChangeRecord;
use potok_protocol::messages::internal::partition_record::PartitionRecord;
use potok_protocol::Uuid;
use potok_records::LeaderEpoch;

use crate::{BrokerId, MetadataError, MetadataRecord};

/// `ConfigRecord.resource_type` of a topic (Kafka's `ConfigResource.Type.TOPIC`).
pub const TOPIC_RESOURCE: i8 = 2;
/// `ConfigRecord.resource_type` of a broker (Kafka's `ConfigResource.Type.BROKER`).
pub const BROKER_RESOURCE: i8 = 4;

/// `PartitionChangeRecord.leader` meaning "the leader does not change" (Kafka's
/// `LeaderConstants.NO_LEADER_CHANGE`).
pub const NO_LEADER_CHANGE: i32 = -2;

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Replicas in preferred order.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// The leader, `None` when the partition has none (Kafka's -1).
    pub leader: Option<BrokerId>,
    /// The leader epoch, bumped on every leader change.
    pub leader_epoch: LeaderEpoch,
    /// Bumped on every change of this partition.
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (KIP-455): members of `replicas` that are not
    /// part of the assignment before it. Empty when no reassignment is in progress.
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas an ongoing reassignment removes once the target replicas are all in the ISR.
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionState {
    /// Whether a reassignment is in progress (Kafka's
    /// `PartitionReassignmentReplicas.isReassignmentInProgress`).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its partitions by index.
    pub partitions: BTreeMap<i32, PartitionState>,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Its id.
    pub id: BrokerId,
    /// The epoch the controller gave this registration.
    pub epoch: i64,
    /// The broker process's incarnation id: a restarted process registers with a new one, which
    /// is how the controller tells a restart from a retried registration (Kafka's
    /// `DUPLICATE_BROKER_REGISTRATION` check).
    pub incarnation_id: Uuid,
    /// Its rack (`broker.rack`).
    pub rack: Option<String>,
    /// Its listeners: (name, host, port).
    pub listeners: Vec<(String, String, u16)>,
    /// Fenced brokers lead nothing and are not in ISRs.
    pub fenced: bool,
    /// In controlled shutdown.
    pub in_controlled_shutdown: bool,
}

/// The whole metadata state. `Clone` so that readers can hold a consistent snapshot while the
/// next records are applied to a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    topics: HashMap<Uuid, TopicImage>,
    names: HashMap<String, Uuid>,
    /// Topic config overrides by topic name (ConfigRecords name the resource, not the id).
    topic_configs: HashMap<String, BTreeMap<String, String>>,
    /// Dynamic broker configs by resource name ("" = cluster-wide default).
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    features: BTreeMap<String, i16>,
    next_producer_id: i64,
    /// Records applied, so that a replayed log can be compared with its source.
    records_applied: u64,
}

fn broker_ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().copied().map(BrokerId).collect()
}

fn leader(id: i32) -> Option<BrokerId> {
    (id >= 0).then_some(BrokerId(id))
}

impl MetadataImage {
    /// An empty image.
    pub fn new() -> MetadataImage {
        MetadataImage::default()
    }

    /// Builds an image from records in log order.
    pub fn replay<'a>(
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<MetadataImage, MetadataError> {
        let mut image = MetadataImage::new();
        for r in records {
            image.apply(r)?;
        }
        Ok(image)
    }

    /// A topic by id.
    pub fn topic(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.get(&id)
    }

    /// A topic by name.
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.names.get(name).and_then(|id| self.topics.get(id))
    }

    /// Every topic, in no particular order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    /// A topic's config overrides (empty when it has none).
    pub fn topic_configs(&self, name: &str) -> BTreeMap<String, String> {
        self.topic_configs.get(name).cloned().unwrap_or_default()
    }

    /// Dynamic broker configs of `resource` ("" for the cluster-wide default).
    pub fn broker_configs(&self, resource: &str) -> BTreeMap<String, String> {
        self.broker_configs
            .get(resource)
            .cloned()
            .unwrap_or_default()
    }

    /// Registered brokers by id.
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerRegistration> {
        &self.brokers
    }

    /// A feature's finalized level.
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }

    /// The first producer id not yet handed out in a block.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// How many records were applied.
    pub fn records_applied(&self) -> u64 {
        self.records_applied
    }

    /// The total number of partitions.
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// Applies one record. On error the image is unchanged.
    pub fn apply(&mut self, r: &MetadataRecord) -> Result<(), MetadataError> {
        match r {
            MetadataRecord::Topic(t) => {
                if self.topics.contains_key(&t.topic_id) || self.names.contains_key(&t.name) {
                    return Err(MetadataError::TopicExists {
                        name: t.name.clone(),
                        id: t.topic_id,
                    });
                }
                if t.topic_id == Uuid::ZERO || t.name.is_empty() {
                    return Err(MetadataError::Invalid(
                        "TopicRecord without a name or id".into(),
                    ));
                }
                self.names.insert(t.name.clone(), t.topic_id);
                self.topics.insert(
                    t.topic_id,
                    TopicImage {
                        id: t.topic_id,
                        name: t.name.clone(),
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition(p) => self.apply_partition(p)?,
            MetadataRecord::PartitionChange(c) => self.apply_partition_change(c)?,
            MetadataRecord::RemoveTopic(r) => {
                let t = self
                    .topics
                    .remove(&r.topic_id)
                    .ok_or(MetadataError::UnknownTopic(r.topic_id))?;
                self.names.remove(&t.name);
                // Kafka drops a deleted topic's config overrides with it.
                self.topic_configs.remove(&t.name);
            }
            MetadataRecord::Config(c) => {
                let map = match c.resource_type {
                    TOPIC_RESOURCE => self
                        .topic_configs
                        .entry(c.resource_name.clone())
                        .or_default(),
                    BROKER_RESOURCE => self
                        .broker_configs
                        .entry(c.resource_name.clone())
                        .or_default(),
                    // Other resource types (client metrics, groups) are not tracked.
                    _ => return self.applied(),
                };
                match &c.value {
                    Some(v) => {
                        map.insert(c.name.clone(), v.clone());
                    }
                    None => {
                        map.remove(&c.name);
                    }
                }
            }
            MetadataRecord::RegisterBroker(b) => {
                let id = BrokerId(b.broker_id);
                self.brokers.insert(
                    id,
                    BrokerRegistration {
                        id,
                        epoch: b.broker_epoch,
                        incarnation_id: b.incarnation_id,
                        rack: b.rack.clone(),
                        listeners: b
                            .end_points
                            .iter()
                            .map(|e| (e.name.clone(), e.host.clone(), e.port))
                            .collect(),
                        fenced: b.fenced,
                        in_controlled_shutdown: b.in_controlled_shutdown,
                    },
                );
            }
            MetadataRecord::UnregisterBroker(u) => {
                let id = BrokerId(u.broker_id);
                // Kafka ignores an unregistration of an older registration (epoch mismatch).
                if self
                    .brokers
                    .get(&id)
                    .is_some_and(|b| b.epoch == u.broker_epoch)
                {
                    self.brokers.remove(&id);
                }
            }
            MetadataRecord::FenceBroker(f) => self.set_fenced(f.id, f.epoch, Some(true), None)?,
            MetadataRecord::UnfenceBroker(f) => {
                self.set_fenced(f.id, f.epoch, Some(false), None)?
            }
            MetadataRecord::BrokerRegistrationChange(c) => {
                // Kafka's encoding: -1 unfenced, 0 no change, 1 fenced; 1 = in controlled shutdown.
                let fenced = match c.fenced {
                    -1 => Some(false),
                    1 => Some(true),
                    _ => None,
                };
                let shutdown = (c.in_controlled_shutdown == 1).then_some(true);
                self.set_fenced(c.broker_id, c.broker_epoch, fenced, shutdown)?;
            }
            MetadataRecord::FeatureLevel(f) => {
                // Level 0 removes the feature (Kafka's FeaturesDelta).
                if f.feature_level == 0 {
                    self.features.remove(&f.name);
                } else {
                    self.features.insert(f.name.clone(), f.feature_level);
                }
            }
            MetadataRecord::ProducerIds(p) => {
                if p.next_producer_id < self.next_producer_id {
                    return Err(MetadataError::Invalid(format!(
                        "ProducerIdsRecord moves the next producer id back from {} to {}",
                        self.next_producer_id, p.next_producer_id
                    )));
                }
                self.next_producer_id = p.next_producer_id;
            }
            MetadataRecord::NoOp(_) | MetadataRecord::Other { .. } => {}
        }
        self.applied()
    }

    fn applied(&mut self) -> Result<(), MetadataError> {
        self.records_applied += 1;
        Ok(())
    }

    fn set_fenced(
        &mut self,
        id: i32,
        epoch: i64,
        fenced: Option<bool>,
        shutdown: Option<bool>,
    ) -> Result<(), MetadataError> {
        let b = self
            .brokers
            .get_mut(&BrokerId(id))
            .ok_or_else(|| MetadataError::Invalid(format!("unknown broker {id}")))?;
        if b.epoch != epoch {
            return Err(MetadataError::Invalid(format!(
                "broker {id} has epoch {}, the record names {epoch}",
                b.epoch
            )));
        }
        if let Some(f) = fenced {
            b.fenced = f;
        }
        if let Some(s) = shutdown {
            b.in_controlled_shutdown = s;
        }
        Ok(())
    }

    fn apply_partition(&mut self, p: &PartitionRecord) -> Result<(), MetadataError> {
        let t = self
            .topics
            .get_mut(&p.topic_id)
            .ok_or(MetadataError::UnknownTopic(p.topic_id))?;
        if p.partition_id < 0 {
            return Err(MetadataError::Invalid(format!(
                "partition id {}",
                p.partition_id
            )));
        }
        if p.replicas.is_empty() {
            return Err(MetadataError::Invalid(format!(
                "partition {} of {} has no replicas",
                p.partition_id, t.name
            )));
        }
        // A PartitionRecord for an existing partition replaces it (Kafka's TopicDelta).
        t.partitions.insert(
            p.partition_id,
            PartitionState {
                replicas: broker_ids(&p.replicas),
                isr: broker_ids(&p.isr),
                leader: leader(p.leader),
                leader_epoch: LeaderEpoch(p.leader_epoch),
                partition_epoch: p.partition_epoch,
                adding_replicas: broker_ids(&p.adding_replicas),
                removing_replicas: broker_ids(&p.removing_replicas),
            },
        );
        Ok(())
    }

    /// Kafka's `PartitionRegistration.merge`: null fields keep their value, a leader other
    /// than [`NO_LEADER_CHANGE`] replaces the leader and bumps the leader epoch, and every
    /// change bumps the partition epoch.
    fn apply_partition_change(&mut self, c: &PartitionChangeRecord) -> Result<(), MetadataError> {
        let t = self
            .topics
            .get_mut(&c.topic_id)
            .ok_or(MetadataError::UnknownTopic(c.topic_id))?;
        let p = t
            .partitions
            .get_mut(&c.partition_id)
            .ok_or(MetadataError::UnknownPartition {
                topic: c.topic_id,
                partition: c.partition_id,
            })?;
        if let Some(r) = &c.replicas {
            if r.is_empty() {
                return Err(MetadataError::Invalid(
                    "PartitionChangeRecord empties the replicas".into(),
                ));
            }
        }
        if let Some(isr) = &c.isr {
            p.isr = broker_ids(isr);
        }
        if let Some(r) = &c.replicas {
            p.replicas = broker_ids(r);
        }
        if let Some(r) = &c.adding_replicas {
            p.adding_replicas = broker_ids(r);
        }
        if let Some(r) = &c.removing_replicas {
            p.removing_replicas = broker_ids(r);
        }
        if c.leader != NO_LEADER_CHANGE {
            p.leader = leader(c.leader);
            p.leader_epoch = LeaderEpoch(p.leader_epoch.0.saturating_add(1));
        }
        p.partition_epoch = p.partition_epoch.saturating_add(1);
        Ok(())
    }
}
