//! What the active controller writes for CreateTopics: Kafka's records for each valid topic
//! (`TopicRecord`, its `ConfigRecord`s, one `PartitionRecord` per partition) with replicas
//! placed by `potok_controller::placement` over the registered live brokers, proposed as one
//! entry and answered once it is committed and applied here.
//!
//! A new partition's ISR is all its replicas, as Kafka's controller writes it: every replica
//! starts with an empty log, so all are in sync, and followers copy the leader from there
//! (issue 18, `crate::replica`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use potok_controller::placement;
use potok_metadata::{BrokerId, MetadataRecord};
use potok_protocol::messages::create_topics_request::CreatableTopic;
use potok_protocol::messages::internal::{config_record::ConfigRecord, topic_record::TopicRecord};
use potok_protocol::{ErrorCode, Uuid};

use super::Quorum;
use crate::topics::{random_uuid, ApiError, NewTopic};
use crate::Broker;

/// How long a creation waits for its entry to commit (Kafka's CreateTopics `timeout_ms` is
/// capped by this too).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// One topic's outcome: its id and partition count, or the error.
pub type Outcome = std::result::Result<(Uuid, i32, i16), ApiError>;

fn plan(
    broker: &Broker,
    t: &CreatableTopic,
    live: &[placement::LiveBroker],
    leads: &mut BTreeMap<BrokerId, usize>,
) -> std::result::Result<(NewTopic, Vec<Vec<BrokerId>>), ApiError> {
    let invalid_rf = |m: String| ApiError::new(ErrorCode::InvalidReplicationFactor, m);
    let assignment: Vec<Vec<BrokerId>> = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut a: Vec<_> = t.assignments.iter().collect();
        a.sort_by_key(|x| x.partition_index);
        if a.iter()
            .enumerate()
            .any(|(i, x)| x.partition_index != i as i32)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicaAssignment,
                "Partitions should be numbered consecutively from 0.",
            ));
        }
        let mut out = Vec::new();
        for x in a {
            let ids: Vec<BrokerId> = x.broker_ids.iter().map(|&b| BrokerId(b)).collect();
            let mut dedup = ids.clone();
            dedup.sort_unstable();
            dedup.dedup();
            if ids.is_empty() || dedup.len() != ids.len() {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "Invalid replica assignment for partition {}: {:?}",
                        x.partition_index, x.broker_ids
                    ),
                ));
            }
            if let Some(b) = ids.iter().find(|b| !live.iter().any(|l| l.id == **b)) {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("The manual partition assignment includes broker {}, which is not registered.", b.0),
                ));
            }
            out.push(ids);
        }
        out
    } else {
        let rf = match t.replication_factor {
            -1 => 1,
            rf if rf >= 1 => i32::from(rf),
            _ => {
                return Err(invalid_rf(
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .into(),
                ))
            }
        };
        let partitions = match t.num_partitions {
            -1 => broker.config.num_partitions,
            n if n >= 1 => n,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.",
                ))
            }
        };
        if rf as usize > live.len() {
            return Err(invalid_rf(format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                live.len()
            )));
        }
        placement::place_replicas(live, partitions, rf, leads)
            .map_err(|e| invalid_rf(e.to_string()))?
    };
    for r in &assignment {
        if let Some(first) = r.first() {
            *leads.entry(*first).or_insert(0) += 1;
        }
    }
    if t.configs.iter().any(|c| c.value.is_none()) {
        return Err(ApiError::new(
            ErrorCode::InvalidConfig,
            "Null value not supported for topic configs",
        ));
    }
    let new = NewTopic {
        name: t.name.clone(),
        partitions: assignment.len() as i32,
        configs: t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.value.clone()?)))
            .collect(),
    };
    Ok((new, assignment))
}

/// Creates `topics` through the quorum. Every topic is answered NOT_CONTROLLER when this node
/// is not the active controller.
pub async fn create_topics(
    broker: &Broker,
    quorum: &Quorum,
    topics: &[CreatableTopic],
    validate_only: bool,
) -> Vec<Outcome> {
    create(broker, quorum, topics, validate_only, false).await
}

/// [`create_topics`] for the coordinators' internal topics (Kafka's internal-origin creation by
/// `AutoTopicCreationManager`): the names clients may not create are allowed.
pub async fn create_internal_topics(
    broker: &Broker,
    quorum: &Quorum,
    topics: &[CreatableTopic],
) -> Vec<Outcome> {
    create(broker, quorum, topics, false, true).await
}

async fn create(
    broker: &Broker,
    quorum: &Quorum,
    topics: &[CreatableTopic],
    validate_only: bool,
    internal_origin: bool,
) -> Vec<Outcome> {
    if !quorum.is_leader() {
        return topics
            .iter()
            .map(|_| Err(super::not_controller()))
            .collect();
    }
    let Ok(_permit) = quorum.writes.acquire().await else {
        return topics
            .iter()
            .map(|_| Err(super::not_controller()))
            .collect();
    };
    let (live, mut leads) = broker
        .topics
        .with_image(|i| (placement::live_brokers(i), placement::leader_counts(i)));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in topics {
        *counts.entry(t.name.as_str()).or_default() += 1;
    }
    let mut records = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(topics.len());
    for t in topics {
        if counts[t.name.as_str()] > 1 {
            outcomes.push(Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Found multiple entries for topic {}.", t.name),
            )));
            continue;
        }
        let planned = plan(broker, t, &live, &mut leads).and_then(|(new, replicas)| {
            let (overrides, _) = if internal_origin {
                broker.topics.validate_internal_topic(&new)?
            } else {
                broker.topics.validate_new_topic(&new)?
            };
            Ok((new, replicas, overrides))
        });
        let (new, replicas, overrides) = match planned {
            Ok(p) => p,
            Err(e) => {
                outcomes.push(Err(e));
                continue;
            }
        };
        let rf = replicas.first().map_or(1, |r| r.len() as i16);
        let id = random_uuid();
        records.push(MetadataRecord::Topic(TopicRecord {
            name: new.name.clone(),
            topic_id: id,
            ..Default::default()
        }));
        for (k, v) in &overrides {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: potok_metadata::image::TOPIC_RESOURCE,
                resource_name: new.name.clone(),
                name: k.clone(),
                value: Some(v.clone()),
                ..Default::default()
            }));
        }
        records.extend(placement::partition_records(id, &replicas));
        outcomes.push(Ok((id, new.partitions, rf)));
    }
    if validate_only || records.is_empty() {
        return outcomes;
    }
    if let Err(e) = quorum.propose(&records, COMMIT_TIMEOUT).await {
        return outcomes
            .into_iter()
            .map(|o| o.and(Err(e.clone())))
            .collect();
    }
    outcomes
}
