//! DescribeQuorum (API 55, KIP-595/KIP-836): the metadata log's quorum as this voter sees it.
//!
//! As Kafka's `KafkaRaftClient.handleDescribeQuorumRequest`, only the leader knows every
//! voter's progress: it answers the leader, its epoch (the Raft term), the high watermark (the
//! offset after the last committed entry; Raft index `i` is offset `i - 1`) and each voter's
//! log end offset. Another voter answers NOT_LEADER_OR_FOLLOWER for the partition, with the
//! leader and epoch it knows. Only `__cluster_metadata` partition 0 exists.

use std::sync::Arc;

use potok_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use potok_protocol::messages::DescribeQuorumResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::Broker;

/// Kafka's metadata log topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

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
