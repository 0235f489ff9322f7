//! CreateTopics: name validation as Kafka, `validate_only`, configs, explicit assignments to
//! this node, `INVALID_REPLICATION_FACTOR` for a replication factor above 1 (one node), and the
//! partition limits of [`crate::admin_api::limits`], all checked before anything is written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use potok_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use potok_protocol::messages::CreateTopicsResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::admin_api::{limits, AdminBackend};
use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::topic_config::TOPIC_CONFIGS;
use crate::topics::{ApiError, NewTopic};
use crate::Broker;

/// Handles CreateTopics.
///
/// The whole request is validated before anything is written: first Kafka's per-request cap
/// (more than [`limits::MAX_PARTITIONS_PER_REQUEST`] partitions in total refuses every topic
/// with `POLICY_VIOLATION`, KAFKA-17870), then each topic on its own (name, replication factor,
/// partitions, assignments, configs, existence), then the broker-wide `potok.max.partitions`
/// over the topics still valid. Only then are the topics created, all in one metadata frame.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::CreateTopics(req) = req else {
        return Err(BrokerError::NoHandler("CreateTopics"));
    };
    if let Some(q) = broker.quorum.clone() {
        return quorum_create(broker, q, ctx, req).await;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.as_str()).or_default() += 1;
    }
    let requested = limits::create_topics_total(&req.topics, broker.config.num_partitions);
    let request_refusal = limits::check_request_total(requested).err();
    // Phase 1: every topic on its own, without IO.
    let planned: Vec<std::result::Result<NewTopic, ApiError>> = req
        .topics
        .iter()
        .map(|t| {
            if let Some(e) = &request_refusal {
                Err(e.clone())
            } else if counts.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("Found multiple entries for topic {}.", t.name),
                ))
            } else {
                plan_one(&broker, t)
            }
        })
        .collect();
    // Phases 2 and 3 do file IO (directories, the metadata log's fsync) and take the budget
    // lock, so they run on a blocking thread, not on an async worker.
    let validate_only = req.validate_only;
    let b = Arc::clone(&broker);
    let outcomes =
        match tokio::task::spawn_blocking(move || create_planned(&b, planned, validate_only)).await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // A panic in the creation (a bug): every topic gets an error rather than the
                // connection being dropped.
                tracing::error!(error = %e, "topic creation task failed");
                let err = ApiError::new(ErrorCode::UnknownServerError, "topic creation failed");
                req.topics.iter().map(|_| Err(err.clone())).collect()
            }
        };
    let mut results = Vec::with_capacity(req.topics.len());
    let mut answered_duplicates = std::collections::HashSet::new();
    for (t, outcome) in req.topics.iter().zip(outcomes) {
        // Kafka answers a topic named more than once in the request once (its result
        // collection is keyed by name).
        if counts.get(t.name.as_str()).copied().unwrap_or(0) > 1
            && !answered_duplicates.insert(t.name.as_str())
        {
            continue;
        }
        let mut res = CreatableTopicResult {
            name: t.name.clone(),
            error_message: None,
            ..Default::default()
        };
        match outcome {
            Ok((id, partitions, overrides)) => {
                res.topic_id = id;
                res.num_partitions = partitions;
                res.replication_factor = 1;
                if ctx.api_version >= 5 {
                    res.configs = Some(config_entries(&broker, &overrides));
                }
            }
            Err(e) => {
                res.error_code = e.code.code();
                res.error_message = Some(e.message);
                // topic_config_error_code (KIP-525) reports a failure to describe the created
                // topic's configs; Kafka leaves it NONE when the creation itself fails.
            }
        }
        results.push(res);
    }
    Ok(Reply::Response(Response::CreateTopics(
        CreateTopicsResponse {
            topics: results,
            ..Default::default()
        },
    )))
}

/// What phase 3 reports per topic: its id (zero with `validate_only`), partition count and
/// config overrides.
type Outcome = std::result::Result<(potok_protocol::Uuid, i32, BTreeMap<String, String>), ApiError>;

/// Phases 2 and 3 of [`handle`]: the broker-wide limit over the valid topics, under the budget
/// lock until the topics exist so concurrent creations cannot pass it together, then the
/// creation (or, with `validate_only`, what would be created). Every valid topic is created by
/// one `create_topics` call: one metadata append and one fsync, and one fsync of the data
/// directory, for the whole request (issue #14).
fn create_planned(
    broker: &Broker,
    mut planned: Vec<std::result::Result<NewTopic, ApiError>>,
    validate_only: bool,
) -> Vec<Outcome> {
    let _budget = limits::budget_guard();
    let adding = planned
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .fold(0i64, |sum, t| sum.saturating_add(i64::from(t.partitions)));
    if let Err(e) = limits::check_broker_total(
        AdminBackend::partition_count(broker),
        adding,
        broker.config.max_partitions,
    ) {
        for p in planned.iter_mut().filter(|p| p.is_ok()) {
            *p = Err(e.clone());
        }
    }
    if validate_only {
        return planned
            .into_iter()
            .map(|plan| {
                let new = plan?;
                let (overrides, _) = broker.topics.validate_new_topic(&new)?;
                Ok((potok_protocol::Uuid::ZERO, new.partitions, overrides))
            })
            .collect();
    }
    let valid: Vec<NewTopic> = planned.iter().filter_map(|p| p.clone().ok()).collect();
    let mut created = broker.topics.create_topics(valid).into_iter();
    planned
        .into_iter()
        .map(|plan| {
            let partitions = plan?.partitions;
            // One result per valid plan, in order, so the iterator cannot run short.
            let topic = created.next().ok_or_else(|| {
                ApiError::new(ErrorCode::UnknownServerError, "missing creation result")
            })??;
            Ok((topic.id(), partitions, topic.state().overrides))
        })
        .collect()
}

/// Validates one topic of the request (everything but the request-wide limits) and returns
/// what to create. Nothing is written.
fn plan_one(
    broker: &Broker,
    t: &potok_protocol::messages::create_topics_request::CreatableTopic,
) -> std::result::Result<NewTopic, ApiError> {
    let node = broker.config.node_id;
    let partitions = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut seen: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        seen.sort_unstable();
        if seen.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicaAssignment,
                "Partitions should be numbered consecutively from 0.",
            ));
        }
        for a in &t.assignments {
            if a.broker_ids.len() > 1 {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {} time(s): only 1 broker is registered.", a.broker_ids.len()),
                ));
            }
            if a.broker_ids.as_slice() != [node] {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "The manual partition assignment includes a broker other than {node}: {:?}",
                        a.broker_ids
                    ),
                ));
            }
        }
        t.assignments.len() as i32
    } else {
        match t.replication_factor {
            -1 | 1 => {}
            rf if rf > 1 => {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
                ))
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                ))
            }
        }
        match t.num_partitions {
            -1 => broker.config.num_partitions,
            n if n >= 1 => n,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.",
                ))
            }
        }
    };
    // As Kafka's ReplicationControlManager: every null-valued name in one INVALID_CONFIG
    // (AlterConfigs answers INVALID_REQUEST instead); a name given twice keeps its last value.
    let nulls: Vec<&str> = t
        .configs
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidConfig,
            format!(
                "Null value not supported for topic configs: {}",
                nulls.join(",")
            ),
        ));
    }
    let configs: BTreeMap<String, String> = t
        .configs
        .iter()
        .filter_map(|c| Some((c.name.clone(), c.value.clone()?)))
        .collect();
    let new = NewTopic {
        name: t.name.clone(),
        partitions,
        configs,
    };
    broker.topics.validate_new_topic(&new)?;
    Ok(new)
}

/// The created topic's configs as DescribeConfigs would report them (value and source), which
/// is what Kafka puts in CreateTopics v5+ results.
fn config_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = def.resolve(overrides, broker);
            CreatableTopicConfigs {
                name: def.name.to_string(),
                value: Some(value),
                read_only: false,
                config_source: source as i8,
                is_sensitive: false,
                ..Default::default()
            }
        })
        .collect()
}

/// CreateTopics on a voter of the controller quorum (see `crate::quorum::controller`).
async fn quorum_create(
    broker: Arc<Broker>,
    quorum: Arc<crate::quorum::Quorum>,
    ctx: RequestContext,
    req: potok_protocol::messages::CreateTopicsRequest,
) -> Result<Reply> {
    // A broker creating a coordinator's internal topic through the active controller
    // (`crate::quorum::internal`).
    let internal = ctx.header.client_id.as_deref()
        == Some(crate::quorum::internal::INTERNAL_CREATION_CLIENT_ID)
        && !req.validate_only
        && req
            .topics
            .iter()
            .all(|t| crate::internal_topics::is_internal(&t.name));
    let outcomes = if internal {
        crate::quorum::controller::create_internal_topics(&broker, &quorum, &req.topics).await
    } else {
        crate::quorum::controller::create_topics(&broker, &quorum, &req.topics, req.validate_only)
            .await
    };
    let mut results = Vec::with_capacity(req.topics.len());
    let mut answered = std::collections::HashSet::new();
    for (t, outcome) in req.topics.iter().zip(outcomes) {
        if !answered.insert(t.name.as_str()) {
            continue;
        }
        let mut res = CreatableTopicResult {
            name: t.name.clone(),
            error_message: None,
            ..Default::default()
        };
        match outcome {
            Ok((id, partitions, rf)) => {
                res.topic_id = id;
                res.num_partitions = partitions;
                res.replication_factor = rf;
                if ctx.api_version >= 5 {
                    let overrides: BTreeMap<String, String> = t
                        .configs
                        .iter()
                        .filter_map(|c| Some((c.name.clone(), c.value.clone()?)))
                        .collect();
                    res.configs = Some(config_entries(&broker, &overrides));
                }
            }
            Err(e) => {
                res.error_code = e.code.code();
                res.error_message = Some(e.message);
            }
        }
        results.push(res);
    }
    Ok(Reply::Response(Response::CreateTopics(
        CreateTopicsResponse {
            topics: results,
            ..Default::default()
        },
    )))
}
