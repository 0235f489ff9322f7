//! Creating a coordinator's internal topic (`__consumer_offsets`, `__transaction_state`) in a
//! cluster: through the active controller, like any topic, so that every broker has it with
//! its replicas placed by the controller (Kafka's `AutoTopicCreationManager`, which a broker's
//! FindCoordinator triggers for the topic it needs).
//!
//! On the active controller the creation is proposed directly
//! ([`controller::create_internal_topics`]). Another node sends CreateTopics to the active
//! controller's client listener as it is registered in the metadata image, with the client id
//! [`INTERNAL_CREATION_CLIENT_ID`], which lets the controller create the internal name clients
//! may not create (Kafka forwards the request in an Envelope, KIP-590, which Potok does not
//! have; Potok has no authentication either, so the marker grants no more than a client can do
//! anyway, except the choice of an internal name, and only with the coordinators' settings as
//! the caller sends them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use potok_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use potok_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use potok_protocol::{ApiKey, ErrorCode};

use super::forward::Forward;
use super::{controller, Quorum};
use crate::topics::ApiError;
use crate::Broker;

/// The client id of a CreateTopics a broker sends to the active controller for an internal
/// topic.
pub const INTERNAL_CREATION_CLIENT_ID: &str = "potok-internal-topic-creation";

/// The CreateTopics version sent (flexible, Kafka 4.x's lowest is 2).
const VERSION: i16 = 7;
/// How long the exchange with the controller may take (connect, send, commit, answer).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (one topic's result).
const MAX_ANSWER: usize = 1024 * 1024;

/// Starts creating the internal topic `name` through the active controller on a task, unless
/// the flag `creating(broker)` says a creation is already under way (it is cleared when this
/// one ends, so the next FindCoordinator tries again after a failure); coordinators' clients
/// retry FindCoordinator meanwhile. `creating` finds the flag in the broker, since the task
/// outlives the caller's borrow.
pub fn spawn_creation(
    broker: &Arc<Broker>,
    quorum: Arc<Quorum>,
    name: &'static str,
    partitions: i32,
    replication_factor: i16,
    configs: std::collections::BTreeMap<String, String>,
    creating: fn(&Broker) -> Option<&AtomicBool>,
) {
    if creating(broker).is_none_or(|f| f.swap(true, Ordering::AcqRel)) {
        return;
    }
    let topic = CreatableTopic {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor,
        configs: configs
            .into_iter()
            .map(|(name, value)| CreatableTopicConfig {
                name,
                value: Some(value),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let b = Arc::clone(broker);
    tokio::spawn(async move {
        match create_internal_topic(&b, &quorum, topic).await {
            Ok(()) => tracing::info!("created the internal topic {name} through the controller"),
            Err(e) => {
                tracing::warn!(code = ?e.code, error = %e.message, "cannot create {name} yet")
            }
        }
        if let Some(f) = creating(&b) {
            f.store(false, Ordering::Release);
        }
    });
}

/// Creates `topic` (an internal topic) through the active controller. An existing topic is
/// success. Errors are the controller's (INVALID_REPLICATION_FACTOR while fewer brokers are
/// registered than the replication factor asks, NOT_CONTROLLER during an election, ...).
pub async fn create_internal_topic(
    broker: &Broker,
    quorum: &Quorum,
    topic: CreatableTopic,
) -> Result<(), ApiError> {
    let outcome = if quorum.is_leader() {
        controller::create_internal_topics(broker, quorum, std::slice::from_ref(&topic))
            .await
            .pop()
            .unwrap_or_else(|| Err(ApiError::new(ErrorCode::UnknownServerError, "no result")))
            .map(|_| ())
    } else {
        let leader = quorum
            .leader()
            .ok_or_else(|| ApiError::new(ErrorCode::NotController, "no active controller"))?;
        forward(broker, leader, topic)
            .await
            .map_err(|e| ApiError::new(ErrorCode::CoordinatorNotAvailable, e))
            .and_then(|(code, message)| match code {
                0 => Ok(()),
                c => Err(ApiError::new(
                    ErrorCode::from_code(c).unwrap_or(ErrorCode::UnknownServerError),
                    message.unwrap_or_default(),
                )),
            })
    };
    match outcome {
        Err(e) if e.code == ErrorCode::TopicAlreadyExists => Ok(()),
        other => other,
    }
}

/// Sends CreateTopics for `topic` to broker `leader`'s client listener; returns the topic's
/// error code and message.
async fn forward(
    broker: &Broker,
    leader: i32,
    topic: CreatableTopic,
) -> Result<(i16, Option<String>), String> {
    let req = CreateTopicsRequest {
        topics: vec![topic],
        timeout_ms: i32::try_from(TIMEOUT.as_millis()).unwrap_or(i32::MAX),
        validate_only: false,
        ..Default::default()
    };
    let resp: CreateTopicsResponse = Forward {
        key: ApiKey::CreateTopics,
        version: VERSION,
        client_id: INTERNAL_CREATION_CLIENT_ID,
        max_answer: MAX_ANSWER,
        timeout: TIMEOUT,
    }
    .call(broker, leader, &req)
    .await?;
    let t = resp
        .topics
        .into_iter()
        .next()
        .ok_or("the answer names no topic")?;
    Ok((t.error_code, t.error_message))
}
