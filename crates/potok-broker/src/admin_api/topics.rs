//! DeleteTopics, CreatePartitions, DeleteRecords, DescribeCluster and DescribeTopicPartitions.

use std::collections::{BTreeSet, HashSet};

use potok_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use potok_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use potok_protocol::messages::delete_topics_response::DeletableTopicResult;
use potok_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use potok_protocol::messages::describe_topic_partitions_response::{
    Cursor as ResponseCursor, DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
};
use potok_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use potok_protocol::{ErrorCode, Uuid};

use crate::internal_topics;

use super::{
    limits, AdminBackend, ApiError, TopicInfo, CLUSTER_OPERATIONS, OPERATIONS_NOT_REQUESTED,
    TOPIC_OPERATIONS,
};

/// Most partitions one topic may have. Kafka has no such limit, but every partition is a
/// directory with open files, so a single request must not be able to ask for billions of
/// them; 100 000 is far above any real topic on one node.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one
/// DescribeTopicPartitions response carries.
pub const DESCRIBE_TOPIC_PARTITIONS_LIMIT: i32 = 2000;

/// DeleteTopics v0-6: by name (all versions) or by topic id (v6+).
pub fn handle_delete_topics(
    backend: &dyn AdminBackend,
    request: &DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // Versions before 6 carry a list of names; v6 carries (name | id) pairs.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), Uuid::ZERO))
            .collect()
    };
    // A topic named twice (by name, or by id) is refused for every mention, as Kafka does,
    // because "delete it once" and "delete it twice" cannot both be reported truthfully.
    let mut name_counts = std::collections::HashMap::new();
    let mut id_counts = std::collections::HashMap::new();
    for (name, id) in &wanted {
        match name {
            Some(n) if *id == Uuid::ZERO => *name_counts.entry(n.clone()).or_insert(0) += 1,
            _ => *id_counts.entry(*id).or_insert(0) += 1,
        }
    }
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let mut result = DeletableTopicResult {
            name: name.clone(),
            topic_id: id,
            error_code: 0,
            error_message: None,
            ..Default::default()
        };
        let outcome = (|| -> Result<TopicInfo, ApiError> {
            let topic = match (&name, id) {
                (Some(n), Uuid::ZERO) => {
                    if name_counts.get(n).copied().unwrap_or(0) > 1 {
                        return Err(ApiError::new(
                            ErrorCode::InvalidRequest,
                            "Duplicate topic name.",
                        ));
                    }
                    backend.topic_by_name(n).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::UnknownTopicOrPartition,
                            "This server does not host this topic.",
                        )
                    })?
                }
                (None, id) if id != Uuid::ZERO => {
                    if id_counts.get(&id).copied().unwrap_or(0) > 1 {
                        return Err(ApiError::new(
                            ErrorCode::InvalidRequest,
                            "Duplicate topic id.",
                        ));
                    }
                    backend.topic_by_id(id).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::UnknownTopicId,
                            "This server does not host this topic ID.",
                        )
                    })?
                }
                _ => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        "Exactly one of topic name and topic id must be given.",
                    ))
                }
            };
            if topic.internal {
                return Err(internal_topics::deletion_refused(&topic.name));
            }
            backend.delete_topic(&topic.name)?;
            Ok(topic)
        })();
        match outcome {
            Ok(topic) => {
                result.name = Some(topic.name);
                if version >= 6 {
                    result.topic_id = topic.id;
                }
            }
            Err(error) => {
                result.error_code = error.code.code();
                if version >= 5 {
                    result.error_message = Some(error.message);
                }
            }
        }
        if version < 6 {
            // Before v6 the name is not nullable and there is no topic id field.
            result.name = Some(result.name.unwrap_or_default());
            result.topic_id = Uuid::ZERO;
        }
        responses.push(result);
    }
    DeleteTopicsResponse {
        throttle_time_ms: 0,
        responses,
        ..Default::default()
    }
}

/// CreatePartitions v0-3: increase only; an equal or smaller count is `INVALID_PARTITIONS`.
///
/// Every topic is validated before anything is created: first on its own, then the request as
/// a whole — at most [`limits::MAX_PARTITIONS_PER_REQUEST`] new partitions (Kafka's per-request
/// cap, applied here as in CreateTopics) and no more than `potok.max.partitions` on the broker;
/// either refusal is `POLICY_VIOLATION` for every topic that was otherwise valid.
pub fn handle_create_partitions(
    backend: &dyn AdminBackend,
    request: &CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<&str> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.as_str()))
        .map(|t| t.name.as_str())
        .collect();
    let node = backend.node_id();
    // Phase 1: each topic on its own; `Ok(added)` is the number of new partitions.
    let mut outcomes: Vec<Result<i64, ApiError>> = request
        .topics
        .iter()
        .map(|topic| {
            if duplicates.contains(topic.name.as_str()) {
                return Err(ApiError::new(ErrorCode::InvalidRequest, "Duplicate topic in request."));
            }
            let info = backend
                .topic_by_name(&topic.name)
                .ok_or_else(|| ApiError::new(ErrorCode::UnknownTopicOrPartition, "This server does not host this topic."))?;
            if info.internal {
                return Err(internal_topics::partition_change_refused(&info.name));
            }
            let current = info.leader_epochs.len() as i32;
            if topic.count < current {
                return Err(ApiError::new(
                    ErrorCode::InvalidPartitions,
                    format!("Topic currently has {current} partitions, which is higher than the requested {}.", topic.count),
                ));
            }
            if topic.count == current {
                return Err(ApiError::new(ErrorCode::InvalidPartitions, format!("Topic already has {current} partitions.")));
            }
            if topic.count > MAX_PARTITIONS_PER_TOPIC {
                return Err(ApiError::new(
                    ErrorCode::InvalidPartitions,
                    format!("A topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions on this broker."),
                ));
            }
            let added = i64::from(topic.count) - i64::from(current);
            if let Some(assignments) = &topic.assignments {
                if i64::try_from(assignments.len()).ok() != Some(added) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("Increasing the number of partitions by {added} but {} assignments provided.", assignments.len()),
                    ));
                }
                // One node: every new partition's only replica is this broker.
                if let Some(bad) = assignments.iter().find(|a| a.broker_ids != [node]) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("Replica assignment {:?} is not possible: the only broker is {node}.", bad.broker_ids),
                    ));
                }
            }
            Ok(added)
        })
        .collect();
    // Phase 2: the request as a whole, under the partition budget lock so that the count stays
    // true until the partitions exist.
    let _budget = limits::budget_guard();
    let adding = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .fold(0i64, |sum, n| sum.saturating_add(*n));
    let whole = limits::check_request_total(adding).and_then(|()| {
        limits::check_broker_total(backend.partition_count(), adding, backend.max_partitions())
    });
    if let Err(e) = whole {
        for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
            *o = Err(e.clone());
        }
    }
    // Phase 3: create.
    let results = request
        .topics
        .iter()
        .zip(outcomes)
        .map(|(topic, outcome)| {
            let outcome = outcome.and_then(|_| {
                if request.validate_only {
                    Ok(())
                } else {
                    backend.create_partitions(&topic.name, topic.count)
                }
            });
            let (error_code, error_message) = match outcome {
                Ok(()) => (0, None),
                Err(e) => (e.code.code(), Some(e.message)),
            };
            CreatePartitionsTopicResult {
                name: topic.name.clone(),
                error_code,
                error_message,
                ..Default::default()
            }
        })
        .collect();
    CreatePartitionsResponse {
        throttle_time_ms: 0,
        results,
        ..Default::default()
    }
}

/// DeleteRecords v0-2: moves each partition's log start offset; `-1` means the high watermark.
pub fn handle_delete_records(
    backend: &dyn AdminBackend,
    request: &DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let info = backend.topic_by_name(&topic.name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match &info {
                        // Kafka's `ReplicaManager.deleteRecordsOnLocalLog` checks this first.
                        _ if internal_topics::is_internal(&topic.name) => {
                            Err(internal_topics::delete_records_refused(&topic.name).code)
                        }
                        None => Err(ErrorCode::UnknownTopicOrPartition),
                        Some(info)
                            if p.partition_index < 0
                                || p.partition_index as usize >= info.leader_epochs.len() =>
                        {
                            Err(ErrorCode::UnknownTopicOrPartition)
                        }
                        // Kafka accepts -1 (high watermark) and nothing else below zero.
                        Some(_) if p.offset < -1 => Err(ErrorCode::OffsetOutOfRange),
                        Some(_) => backend
                            .delete_records(&topic.name, p.partition_index, p.offset)
                            .map_err(|e| e.code),
                    };
                    let (low_watermark, error_code) = match outcome {
                        Ok(low) => (low, 0),
                        Err(code) => (-1, code.code()),
                    };
                    DeleteRecordsPartitionResult {
                        partition_index: p.partition_index,
                        low_watermark,
                        error_code,
                        ..Default::default()
                    }
                })
                .collect();
            DeleteRecordsTopicResult {
                name: topic.name.clone(),
                partitions,
                ..Default::default()
            }
        })
        .collect();
    DeleteRecordsResponse {
        throttle_time_ms: 0,
        topics,
        ..Default::default()
    }
}

/// DescribeCluster v0-1: this broker is the whole cluster and its controller.
pub fn handle_describe_cluster(
    backend: &dyn AdminBackend,
    request: &DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let node = backend.node_id();
    let mut response = DescribeClusterResponse {
        throttle_time_ms: 0,
        error_code: 0,
        error_message: None,
        endpoint_type: request.endpoint_type,
        cluster_id: backend.cluster_id(),
        controller_id: node,
        brokers: Vec::new(),
        cluster_authorized_operations: OPERATIONS_NOT_REQUESTED,
        ..Default::default()
    };
    // Endpoint type 1 asks for brokers, 2 for controllers (KIP-919). Like a Kafka broker,
    // Potok answers only the former on its client listener.
    if version >= 1 && request.endpoint_type != 1 {
        response.error_code = ErrorCode::UnsupportedEndpointType.code();
        response.error_message =
            Some("This endpoint serves brokers only (endpoint type 1).".into());
        response.controller_id = -1;
        return response;
    }
    let (host, port) = backend.advertised_endpoint();
    response.brokers.push(DescribeClusterBroker {
        broker_id: node,
        host,
        port,
        rack: backend.rack(),
        ..Default::default()
    });
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    response
}

/// DescribeTopicPartitions v0 (KIP-966): topics in name order, partitions paged by
/// `response_partition_limit` with a cursor naming the first partition not returned.
pub fn handle_describe_topic_partitions(
    backend: &dyn AdminBackend,
    request: &DescribeTopicPartitionsRequest,
    _version: i16,
) -> DescribeTopicPartitionsResponse {
    let node = backend.node_id();
    // An empty topic list means every topic, as in Kafka.
    let names: BTreeSet<String> = if request.topics.is_empty() {
        backend.topics().into_iter().map(|t| t.name).collect()
    } else {
        request.topics.iter().map(|t| t.name.clone()).collect()
    };
    let limit = request
        .response_partition_limit
        .clamp(1, DESCRIBE_TOPIC_PARTITIONS_LIMIT) as usize;
    let (start_topic, start_partition) = match &request.cursor {
        Some(c) => (
            Some(c.topic_name.clone()),
            c.partition_index.max(0) as usize,
        ),
        None => (None, 0),
    };
    let mut remaining = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .iter()
        .filter(|n| start_topic.as_ref().is_none_or(|s| *n >= s))
    {
        if remaining == 0 {
            // The previous topic used up the budget exactly; continue with this one next time.
            if backend.topic_by_name(name).is_some() {
                next_cursor = Some(ResponseCursor {
                    topic_name: name.clone(),
                    partition_index: 0,
                    ..Default::default()
                });
                break;
            }
        }
        let Some(info) = backend.topic_by_name(name) else {
            topics.push(DescribeTopicPartitionsResponseTopic {
                error_code: ErrorCode::UnknownTopicOrPartition.code(),
                name: Some(name.clone()),
                topic_id: Uuid::ZERO,
                is_internal: internal_topics::is_internal(name),
                partitions: Vec::new(),
                // Kafka sets the topic operations on every entry it answers, unknown topics
                // included (`DescribeTopicPartitionsRequestHandler`).
                topic_authorized_operations: TOPIC_OPERATIONS,
                ..Default::default()
            });
            continue;
        };
        let first = if start_topic.as_deref() == Some(name.as_str()) {
            start_partition
        } else {
            0
        };
        let total = info.leader_epochs.len();
        let end = total.min(first.saturating_add(remaining));
        let partitions: Vec<_> = (first.min(end)..end)
            .map(|index| {
                let (leader, replicas, isr) = match info
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(index).cloned())
                {
                    Some(r) => r,
                    None => (node, vec![node], vec![node]),
                };
                (index, leader, replicas, isr)
            })
            .map(
                |(index, leader, replicas, isr)| DescribeTopicPartitionsResponsePartition {
                    error_code: if leader >= 0 {
                        0
                    } else {
                        ErrorCode::LeaderNotAvailable.code()
                    },
                    partition_index: index as i32,
                    leader_id: leader,
                    leader_epoch: info.leader_epochs[index],
                    replica_nodes: replicas,
                    isr_nodes: isr,
                    eligible_leader_replicas: Some(Vec::new()),
                    last_known_elr: Some(Vec::new()),
                    offline_replicas: Vec::new(),
                    ..Default::default()
                },
            )
            .collect();
        remaining -= partitions.len();
        topics.push(DescribeTopicPartitionsResponseTopic {
            error_code: 0,
            name: Some(info.name.clone()),
            topic_id: info.id,
            is_internal: info.internal,
            partitions,
            topic_authorized_operations: TOPIC_OPERATIONS,
            ..Default::default()
        });
        if end < total {
            next_cursor = Some(ResponseCursor {
                topic_name: info.name.clone(),
                partition_index: end as i32,
                ..Default::default()
            });
            break;
        }
    }
    DescribeTopicPartitionsResponse {
        throttle_time_ms: 0,
        topics,
        next_cursor,
        ..Default::default()
    }
}
