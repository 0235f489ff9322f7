//! FindCoordinator (key type 0 for groups, 1 for transactional ids; KIP-98, KIP-699 batched
//! keys from v4): on a single node this broker coordinates everything and creates the internal
//! topic on the first lookup; in a cluster a group's coordinator is the leader of its
//! `__consumer_offsets` partition in the metadata image (`super::cluster`).

use std::sync::Arc;

use potok_protocol::messages::find_coordinator_response::Coordinator;
use potok_protocol::messages::FindCoordinatorResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::Broker;

/// Key types of FindCoordinator (KIP-98 transactions share the API).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(super) async fn find_coordinator(
    broker: Arc<Broker>,
    ctx: RequestContext,
    req: Request,
) -> Result<Reply> {
    let Request::FindCoordinator(req) = req else {
        return Err(BrokerError::NoHandler("FindCoordinator"));
    };
    // v4+ asks for several keys at once; earlier versions for one.
    let keys: Vec<String> = if ctx.api_version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let mut answers = Vec::with_capacity(keys.len());
    for key in &keys {
        answers.push(coordinator_of(&broker, req.key_type, key).await);
    }
    let mut resp = FindCoordinatorResponse::default();
    if ctx.api_version >= 4 {
        resp.coordinators = keys
            .into_iter()
            .zip(answers)
            .map(|(key, a)| match a {
                Ok((node_id, host, port)) => Coordinator {
                    key,
                    node_id,
                    host,
                    port,
                    ..Default::default()
                },
                Err(code) => Coordinator {
                    key,
                    node_id: -1,
                    port: -1,
                    error_code: code.code(),
                    ..Default::default()
                },
            })
            .collect();
    } else {
        match answers.pop() {
            Some(Ok((node_id, host, port))) => {
                resp.node_id = node_id;
                resp.host = host;
                resp.port = port;
            }
            Some(Err(code)) => {
                resp.error_code = code.code();
                resp.node_id = -1;
                resp.port = -1;
            }
            None => resp.error_code = ErrorCode::InvalidRequest.code(),
        }
    }
    Ok(Reply::Response(Response::FindCoordinator(resp)))
}

/// The coordinator of one key: `(node, host, port)` or the error to answer.
async fn coordinator_of(
    broker: &Arc<Broker>,
    key_type: i8,
    key: &str,
) -> std::result::Result<(i32, String, i32), ErrorCode> {
    if broker.quorum.is_some() {
        // In a cluster the coordinator of a group is the leader of its `__consumer_offsets`
        // partition (`super::cluster`), that of a transactional id the leader of its
        // `__transaction_state` partition (`crate::txn::cluster`).
        return match key_type {
            KEY_TYPE_GROUP => broker.groups.cluster_coordinator(broker, key).await,
            KEY_TYPE_TRANSACTION => broker.txn.cluster_coordinator(broker, key).await,
            _ => Err(ErrorCode::InvalidRequest),
        };
    }
    // On a single node this broker leads every partition of the internal topics, so it is
    // the coordinator of every group (and every transactional id). Share groups (key type 2)
    // are not supported.
    let code = match key_type {
        KEY_TYPE_GROUP => {
            // Kafka's `KafkaApis.getCoordinator` creates `__consumer_offsets` when it does not
            // exist yet and answers COORDINATOR_NOT_AVAILABLE until it does; here the creation
            // is synchronous, so only a failed creation gets that answer.
            let b = Arc::clone(broker);
            match tokio::task::spawn_blocking(move || b.groups.ensure_offsets_topic()).await {
                Ok(Ok(())) => ErrorCode::None,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e.message, "cannot create the offsets topic");
                    ErrorCode::CoordinatorNotAvailable
                }
                Err(_) => ErrorCode::CoordinatorNotAvailable,
            }
        }
        KEY_TYPE_TRANSACTION => {
            // As for groups: `__transaction_state` is created on the first lookup.
            let b = Arc::clone(broker);
            match tokio::task::spawn_blocking(move || b.txn.ensure_topic()).await {
                Ok(Ok(())) => ErrorCode::None,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e.message, "cannot create the transaction state topic");
                    ErrorCode::CoordinatorNotAvailable
                }
                Err(_) => ErrorCode::CoordinatorNotAvailable,
            }
        }
        _ => ErrorCode::InvalidRequest,
    };
    if code != ErrorCode::None {
        return Err(code);
    }
    Ok((
        broker.config.node_id,
        broker.config.advertised.host.clone(),
        i32::from(broker.advertised_port),
    ))
}
