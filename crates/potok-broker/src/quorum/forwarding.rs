//! Admin writes forwarded to the active controller (KIP-590): a node that is not the active
//! controller sends CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs and
//! IncrementalAlterConfigs of topics, ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments to the active controller's client listener (as registered in
//! the metadata image) and relays the answer to its client unchanged, so clients never see
//! NOT_CONTROLLER from a broker (the API list is Kafka 4's `forwardToController` cases in
//! `KafkaApis.handle` that Potok serves).
//!
//! Where Potok differs from Kafka's `ForwardingManager`:
//! - No Envelope (API 58): peers are Potok nodes, so the request itself goes, at the client's
//!   version, and the answer is decoded at that version and relayed. The client's principal is
//!   not carried (Potok has no ACLs yet); its client id is, behind [`FORWARDED_PREFIX`], which
//!   marks the request as forwarded so that it is never forwarded again (two nodes with
//!   different ideas of the controller would otherwise pass it back and forth). A forwarded
//!   request reaching a node that lost the leadership meanwhile is answered NOT_CONTROLLER
//!   there, and that answer is relayed.
//! - When no active controller is known, or it cannot be reached in [`FORWARD_TIMEOUT`], the
//!   node answers as before forwarding existed: NOT_CONTROLLER, which clients retry (Kafka
//!   queues the request until a controller is known and answers REQUEST_TIMED_OUT after
//!   `request.timeout.ms`; both are retriable).
//! - Configs of BROKER resources stay on the node that receives them (Potok's dynamic broker
//!   configs are each node's own file), so AlterConfigs and IncrementalAlterConfigs are
//!   forwarded only when they name a topic. Kafka's admin client sends broker resources to the
//!   broker they name and topics to any broker, so requests do not mix them in practice.
//! - One connection per forwarded request (Kafka keeps one channel to the controller): admin
//!   writes are rare and each waits for a commit, so a connection setup does not matter.

use std::sync::Arc;
use std::time::Duration;

use potok_protocol::{ApiKey, Request};

use crate::admin_api::RESOURCE_TOPIC;
use crate::registry::{Handler, HandlerFuture, Registry, Reply, RequestContext};
use crate::Broker;

/// The APIs forwarded, as Kafka 4's brokers do (`KafkaApis.handle`: `forwardToController`,
/// and `handleIncrementalAlterConfigsRequest` / `handleAlterConfigsRequest` for topics).
/// DescribeQuorum is forwarded by its own handler (`super::describe`).
pub const FORWARDED: [ApiKey; 8] = [
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
];

/// The client id of a forwarded request starts with this, followed by the client's own id.
pub const FORWARDED_PREFIX: &str = "potok-forwarded:";

/// The whole forwarded exchange at most: the controller's own commit waits are 30 s for the
/// admin writes (Kafka's `request.timeout.ms` default, also the admin client's), plus a margin
/// for the connection and the answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(35);

/// The largest answer relayed (Kafka's `socket.request.max.bytes` bounds requests at 100 MiB;
/// an admin answer is far smaller, a ListPartitionReassignments of every partition included).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Wraps the handlers of [`FORWARDED`] in `r` so that they forward when this node is not the
/// active controller.
pub fn register(r: &mut Registry) {
    for key in FORWARDED {
        r.wrap(key, |inner| {
            let handler: Handler = Arc::new(
                move |broker: Arc<Broker>,
                      ctx: RequestContext,
                      request: Request|
                      -> HandlerFuture {
                    Box::pin(forward_or_serve(Arc::clone(&inner), broker, ctx, request))
                },
            );
            handler
        });
    }
}

/// Whether `request` is one for the active controller (see the module's note on configs).
fn for_controller(request: &Request) -> bool {
    match request {
        Request::AlterConfigs(r) => r
            .resources
            .iter()
            .any(|x| x.resource_type == RESOURCE_TOPIC),
        Request::IncrementalAlterConfigs(r) => r
            .resources
            .iter()
            .any(|x| x.resource_type == RESOURCE_TOPIC),
        _ => true,
    }
}

async fn forward_or_serve(
    inner: Handler,
    broker: Arc<Broker>,
    mut ctx: RequestContext,
    request: Request,
) -> crate::error::Result<Reply> {
    let forwarded = ctx
        .header
        .client_id
        .as_deref()
        .and_then(|c| c.strip_prefix(FORWARDED_PREFIX))
        .map(str::to_string);
    if let Some(client_id) = forwarded {
        // Served here whatever this node's role now: a forwarded request is never forwarded
        // again. The handlers see the client's own id.
        ctx.header.client_id = Some(client_id);
        return inner(broker, ctx, request).await;
    }
    let target = broker
        .quorum
        .as_ref()
        .filter(|q| !q.is_leader())
        .and_then(|q| q.leader())
        .filter(|l| *l != broker.config.node_id);
    if let Some(to) = target.filter(|_| for_controller(&request)) {
        let client_id = format!(
            "{FORWARDED_PREFIX}{}",
            ctx.header.client_id.as_deref().unwrap_or("")
        );
        let forward = super::forward::Forward {
            key: ctx.api_key,
            version: ctx.api_version,
            client_id: &client_id,
            max_answer: MAX_ANSWER,
            timeout: FORWARD_TIMEOUT,
        };
        match forward.relay(&broker, to, &request).await {
            Ok(response) => return Ok(Reply::Response(response)),
            Err(e) => tracing::info!(
                api = ?ctx.api_key,
                controller = to,
                error = %e,
                "forwarding to the active controller failed; answering here"
            ),
        }
    }
    // The active controller itself, no controller known, or it could not be reached: the
    // handler answers (NOT_CONTROLLER in the last two cases).
    inner(broker, ctx, request).await
}

#[cfg(test)]
mod tests {
    use potok_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    use potok_protocol::messages::IncrementalAlterConfigsRequest;

    use super::*;
    use crate::admin_api::RESOURCE_BROKER;

    fn alter(types: &[i8]) -> Request {
        Request::IncrementalAlterConfigs(IncrementalAlterConfigsRequest {
            resources: types
                .iter()
                .map(|t| AlterConfigsResource {
                    resource_type: *t,
                    resource_name: "x".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn only_config_changes_naming_a_topic_go_to_the_controller() {
        assert!(for_controller(&alter(&[RESOURCE_TOPIC])));
        assert!(for_controller(&alter(&[RESOURCE_BROKER, RESOURCE_TOPIC])));
        assert!(!for_controller(&alter(&[RESOURCE_BROKER])));
        assert!(!for_controller(&alter(&[])));
        assert!(for_controller(&Request::CreateTopics(Default::default())));
    }
}
