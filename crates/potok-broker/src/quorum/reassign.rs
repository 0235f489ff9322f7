//! AlterPartitionReassignments (API 45) and ListPartitionReassignments (API 46) on a voter
//! (KIP-455; `kafka-reassign-partitions.sh --execute|--verify|--list|--cancel`).
//!
//! The active controller validates every partition of the request against its image with
//! `potok_controller::controller::reassign::alter_reassignment` (unknown topic or partition,
//! an empty, duplicated or unregistered replica list, a cancellation with nothing in
//! progress) before anything is written, then proposes the accepted partitions' changes as one
//! entry and answers once it is committed; the controller's write path completes the
//! reassignments that can complete at once (a reorder, a removal within the ISR) in that same
//! entry. Refused partitions are answered with their error and do not stop the others, as in
//! Kafka's `ReplicationControlManager.alterPartitionReassignments`. Another node forwards
//! both APIs to the active controller (`super::forwarding`, as Kafka 4's brokers do) and
//! answers NOT_CONTROLLER only while no controller is known or reachable.

use std::sync::Arc;
use std::time::Duration;

use potok_controller::controller::partitions::unclean_enabled;
use potok_controller::controller::reassign::{
    alter_reassignment, list_reassignments, ReassignError,
};
use potok_controller::controller::{apply_entry, ControllerConfig};
use potok_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use potok_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use potok_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
};
use potok_protocol::{ApiKey, ErrorCode, Request, Response};

use crate::error::BrokerError;
use crate::registry::{Registry, Reply, RequestContext};
use crate::Broker;

/// How long the changes wait for their entry to commit at most (the request's own
/// `timeout_ms` when smaller).
const MAX_COMMIT_WAIT: Duration = Duration::from_secs(60);

/// Partitions one request may name: the answer and the proposed entry stay bounded.
const MAX_PARTITIONS: usize = 100_000;

/// Registers both APIs at version 0 (the only one Kafka 4.x defines).
pub fn register(r: &mut Registry) {
    r.register(
        ApiKey::AlterPartitionReassignments,
        0,
        0,
        |broker: Arc<Broker>, _ctx: RequestContext, request: Request| async move {
            let Request::AlterPartitionReassignments(request) = request else {
                return Err(BrokerError::NoHandler("AlterPartitionReassignments"));
            };
            Ok(Reply::Response(Response::AlterPartitionReassignments(
                alter(&broker, request).await?,
            )))
        },
    );
    r.register(
        ApiKey::ListPartitionReassignments,
        0,
        0,
        |broker: Arc<Broker>, _ctx: RequestContext, request: Request| async move {
            let Request::ListPartitionReassignments(request) = request else {
                return Err(BrokerError::NoHandler("ListPartitionReassignments"));
            };
            let Some(quorum) = broker.quorum.clone() else {
                return Err(BrokerError::NoHandler("ListPartitionReassignments"));
            };
            let mut response = ListPartitionReassignmentsResponse {
                error_message: None,
                ..Default::default()
            };
            let count: usize = request
                .topics
                .iter()
                .flatten()
                .map(|t| t.partition_indexes.len())
                .sum();
            if count > MAX_PARTITIONS {
                response.error_code = ErrorCode::InvalidRequest.code();
                response.error_message = Some(format!("at most {MAX_PARTITIONS} partitions"));
            } else if !quorum.is_leader() {
                response.error_code = ErrorCode::NotController.code();
                response.error_message = Some(super::not_controller().message);
            } else {
                let named: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let listed = broker
                    .topics
                    .with_image(|image| list_reassignments(image, named.as_deref()));
                response.topics = listed
                    .into_iter()
                    .map(|(name, parts)| OngoingTopicReassignment {
                        name,
                        partitions: parts
                            .into_iter()
                            .map(|o| OngoingPartitionReassignment {
                                partition_index: o.partition,
                                replicas: o.replicas,
                                adding_replicas: o.adding,
                                removing_replicas: o.removing,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect();
            }
            Ok(Reply::Response(Response::ListPartitionReassignments(
                response,
            )))
        },
    );
}

/// The error code of a refused partition.
fn code(e: &ReassignError) -> ErrorCode {
    match e {
        ReassignError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
        ReassignError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
        ReassignError::NoReassignmentInProgress => ErrorCode::NoReassignmentInProgress,
    }
}

/// One partition's outcome before the commit: whether a record was written, or the refusal.
type Outcome = (i32, Result<bool, ReassignError>);

async fn alter(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
) -> Result<AlterPartitionReassignmentsResponse, BrokerError> {
    let Some(quorum) = broker.quorum.clone() else {
        return Err(BrokerError::NoHandler("AlterPartitionReassignments"));
    };
    let count: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
    let top_error = if count > MAX_PARTITIONS {
        Some((
            ErrorCode::InvalidRequest,
            format!("at most {MAX_PARTITIONS} partitions"),
        ))
    } else if !quorum.is_leader() {
        Some((ErrorCode::NotController, super::not_controller().message))
    } else {
        None
    };
    if let Some((error, message)) = top_error {
        // Kafka's error response: the top-level error, repeated on every named partition
        // (not echoed when the list is over the limit).
        let echo = count <= MAX_PARTITIONS;
        return Ok(AlterPartitionReassignmentsResponse {
            error_code: error.code(),
            error_message: Some(message.clone()),
            responses: request
                .topics
                .iter()
                .filter(|_| echo)
                .map(|t| ReassignableTopicResponse {
                    name: t.name.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| ReassignablePartitionResponse {
                            partition_index: p.partition_index,
                            error_code: error.code(),
                            error_message: Some(message.clone()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    // One metadata write at a time on the controller, as the other admin writes.
    let _permit = quorum.writes.acquire().await;
    // Each partition is decided on an image with the earlier partitions' changes applied, so
    // a partition named twice is decided as the controller will apply the entry.
    let static_config = ControllerConfig::new(String::new());
    let mut image = broker.topics.with_image(|image| image.clone());
    let mut records = Vec::new();
    let mut outcomes: Vec<(String, Vec<Outcome>)> = Vec::new();
    for t in &request.topics {
        let unclean = unclean_enabled(&image, &static_config, &t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let outcome = alter_reassignment(
                &image,
                &t.name,
                p.partition_index,
                p.replicas.as_deref(),
                unclean,
            )
            .and_then(|record| match record {
                Some(r) => match apply_entry(&mut image, std::slice::from_ref(&r)) {
                    Ok(()) => {
                        records.push(r);
                        Ok(true)
                    }
                    Err(e) => Err(ReassignError::InvalidReplicaAssignment(e.to_string())),
                },
                None => Ok(false),
            });
            parts.push((p.partition_index, outcome));
        }
        outcomes.push((t.name.clone(), parts));
    }
    let wait = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0))
        .clamp(Duration::from_millis(1), MAX_COMMIT_WAIT);
    let committed = if records.is_empty() {
        Ok(())
    } else {
        quorum.propose(&records, wait).await
    };
    let mut responses = Vec::with_capacity(outcomes.len());
    for (name, parts) in outcomes {
        let mut topic = ReassignableTopicResponse {
            name,
            ..Default::default()
        };
        for (partition_index, outcome) in parts {
            let (error, message) = match (&outcome, &committed) {
                (Ok(true), Err(e)) => (e.code, Some(e.message.clone())),
                (Ok(_), _) => (ErrorCode::None, None),
                (Err(e), _) => (code(e), Some(e.message())),
            };
            topic.partitions.push(ReassignablePartitionResponse {
                partition_index,
                error_code: error.code(),
                error_message: message,
                ..Default::default()
            });
        }
        responses.push(topic);
    }
    Ok(AlterPartitionReassignmentsResponse {
        error_message: None,
        responses,
        ..Default::default()
    })
}
