//! DescribeQuorum (API 55, KIP-595/KIP-836): the metadata log's quorum as this voter sees it.
//!
//! As Kafka's `KafkaRaftClient.handleDescribeQuorumRequest`, only the leader knows every
//! voter's progress: it answers the leader, its epoch (the Raft term), the high watermark (the
//! offset after the last committed entry; Raft index `i` is offset `i - 1`) and each voter's
//! log end offset. Only `__cluster_metadata` partition 0 exists.
//!
//! A client may send it to any broker: Kafka's brokers forward DescribeQuorum to the active
//! controller (`KafkaApis.handleDescribeQuorumRequest`, `forwardToController`), and Kafka's
//! `kafka-metadata-quorum --bootstrap-server` relies on that. A Potok voter that does not lead
//! sends the request on to the leader's client listener (as registered in the metadata image)
//! and relays the answer; the forwarded request carries [`FORWARDED_CLIENT_ID`], so it is never
//! forwarded twice (a leader that lost its leadership meanwhile answers NOT_LEADER_OR_FOLLOWER
//! with the leader and epoch it knows, as does a voter that cannot reach the leader).

use std::sync::Arc;
use std::time::Duration;

use potok_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use potok_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};
use potok_protocol::{ApiKey, ErrorCode, Request, Response};

use super::forward::Forward;
use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::Broker;

/// Kafka's metadata log topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The client id of a DescribeQuorum forwarded by a voter to the leader.
pub const FORWARDED_CLIENT_ID: &str = "potok-describe-quorum-forward";
/// How long forwarding may take (connect, send, answer).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer relayed (a quorum description is a few hundred bytes).
const MAX_FORWARDED: usize = 1024 * 1024;

/// Sends `req` at `version` to broker `leader`'s client listener and decodes its answer.
async fn forward(
    broker: &Broker,
    leader: i32,
    version: i16,
    req: &DescribeQuorumRequest,
) -> std::result::Result<DescribeQuorumResponse, String> {
    Forward {
        key: ApiKey::DescribeQuorum,
        version,
        client_id: FORWARDED_CLIENT_ID,
        max_answer: MAX_FORWARDED,
        timeout: FORWARD_TIMEOUT,
    }
    .call(broker, leader, req)
    .await
}

/// Handles DescribeQuorum.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::DescribeQuorum(req) = req else {
        return Err(BrokerError::NoHandler("DescribeQuorum"));
    };
    let Some(quorum) = broker.quorum.as_ref() else {
        return Err(BrokerError::NoHandler("DescribeQuorum"));
    };
    let status = quorum.status();
    let leading = status.leader == Some(status.id);
    let forwarded = ctx.header.client_id.as_deref() == Some(FORWARDED_CLIENT_ID);
    if let (false, false, Some(leader)) = (leading, forwarded, status.leader) {
        match forward(&broker, leader as i32, ctx.api_version, &req).await {
            Ok(resp) => return Ok(Reply::Response(Response::DescribeQuorum(resp))),
            Err(e) => {
                tracing::debug!(leader, error = %e, "DescribeQuorum not forwarded to the leader")
            }
        }
    }
    let topics = req
        .topics
        .iter()
        .map(|t| TopicData {
            topic_name: t.topic_name.clone(),
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = PartitionData {
                        partition_index: p.partition_index,
                        leader_id: status.leader.map_or(-1, |l| l as i32),
                        leader_epoch: status.term as i32,
                        high_watermark: -1,
                        ..Default::default()
                    };
                    if t.topic_name != METADATA_TOPIC || p.partition_index != 0 {
                        out.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    } else if !leading {
                        out.error_code = ErrorCode::NotLeaderOrFollower.code();
                    } else {
                        out.high_watermark = status.commit as i64;
                        out.current_voters = status
                            .voters
                            .iter()
                            .map(|&(id, matched)| ReplicaState {
                                replica_id: id as i32,
                                log_end_offset: matched.map_or(-1, |m| m as i64),
                                last_fetch_timestamp: -1,
                                last_caught_up_timestamp: -1,
                                ..Default::default()
                            })
                            .collect();
                        // Broker-only nodes that fetch the log (KIP-595's observers), with
                        // the last index they held at their latest fetch.
                        out.observers = status
                            .observers
                            .iter()
                            .map(|&(id, last)| ReplicaState {
                                replica_id: id as i32,
                                log_end_offset: last as i64,
                                last_fetch_timestamp: -1,
                                last_caught_up_timestamp: -1,
                                ..Default::default()
                            })
                            .collect();
                    }
                    out
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    // v2 lists the voters' controller endpoints.
    let nodes = if ctx.api_version >= 2 {
        quorum
            .settings
            .voters
            .iter()
            .filter_map(|(&id, addr)| {
                let (host, port) = addr.rsplit_once(':')?;
                Some(Node {
                    node_id: id,
                    listeners: vec![Listener {
                        name: "CONTROLLER".into(),
                        host: host.to_string(),
                        port: port.parse().ok()?,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Reply::Response(Response::DescribeQuorum(
        DescribeQuorumResponse {
            topics,
            nodes,
            ..Default::default()
        },
    )))
}
