//! OffsetForLeaderEpoch (API key 23, KIP-101/KIP-279/KIP-320): the end offset of a leader
//! epoch, answered from the partition log's leader-epoch cache (`leader-epoch-checkpoint`).
//! Consumers (`replica_id` -1) use it to detect log truncation after a leader change; a
//! follower would use it to find where to truncate.

use std::sync::Arc;

use potok_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use potok_protocol::messages::OffsetForLeaderEpochResponse;
use potok_protocol::{ErrorCode, Request, Response};
use potok_records::LeaderEpoch;

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::topics::log_error_code;
use crate::Broker;

/// Handles OffsetForLeaderEpoch. Every partition is led by this broker, so `replica_id`
/// (-1 for consumers, -2 for debugging tools, a broker id for followers) does not change the
/// answer: Kafka serves all three from the leader.
pub async fn handle(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::OffsetForLeaderEpoch(req) = req else {
        return Err(BrokerError::NoHandler("OffsetForLeaderEpoch"));
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topics.get(&t.topic);
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut r = EpochEndOffset {
                    partition: p.partition,
                    ..Default::default()
                };
                let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                    r.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    return r;
                };
                // Only the leader answers (another broker of a cluster holds no log of it).
                if part.is_led_elsewhere() {
                    r.error_code = ErrorCode::NotLeaderOrFollower.code();
                    return r;
                }
                // Kafka's Partition.lastOffsetForLeaderEpoch checks current_leader_epoch first.
                if let Some(code) = part.check_current_leader_epoch(p.current_leader_epoch) {
                    r.error_code = code.code();
                    return r;
                }
                match part.with_log(|log| Ok(log.end_offset_for_epoch(LeaderEpoch(p.leader_epoch))))
                {
                    // None is Kafka's (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET) with no error.
                    Ok(None) => {}
                    Ok(Some((epoch, offset))) => {
                        r.leader_epoch = epoch.0;
                        r.end_offset = offset.0;
                    }
                    Err(e) => r.error_code = log_error_code(&e).code(),
                }
                r
            })
            .collect();
        topics.push(OffsetForLeaderTopicResult {
            topic: t.topic,
            partitions,
            ..Default::default()
        });
    }
    Ok(Reply::Response(Response::OffsetForLeaderEpoch(
        OffsetForLeaderEpochResponse {
            topics,
            ..Default::default()
        },
    )))
}
