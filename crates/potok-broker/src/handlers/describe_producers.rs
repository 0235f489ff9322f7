//! DescribeProducers (KIP-664): the idempotent producers each partition knows, from the log's
//! producer state (`potok_log::Log::producer_state`).
//!
//! `coordinator_epoch` is the epoch of the coordinator that wrote the producer's last
//! transaction marker and `current_txn_start_offset` the first offset of its open transaction on
//! the partition, -1 for either when there is none, as Kafka reports them (KIP-664: the
//! `kafka-transactions abort --start-offset` tool finds a hanging transaction's producer by it).

use std::sync::Arc;

use potok_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use potok_protocol::messages::DescribeProducersResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::topics::log_error_code;
use crate::Broker;

/// Handles DescribeProducers.
pub async fn handle(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::DescribeProducers(req) = req else {
        return Err(BrokerError::NoHandler("DescribeProducers"));
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topics.get(&t.name);
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for index in t.partition_indexes {
            let mut r = PartitionResponse {
                partition_index: index,
                ..Default::default()
            };
            match topic.as_ref().and_then(|t| t.partition(index)) {
                None => {
                    r.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    r.error_message =
                        Some("This server does not host this topic-partition.".into());
                }
                // Producer state is the leader's to report (Kafka answers
                // NOT_LEADER_OR_FOLLOWER elsewhere).
                Some(p) if p.is_led_elsewhere() => {
                    r.error_code = ErrorCode::NotLeaderOrFollower.code();
                }
                Some(p) => {
                    let producers = p.with_log(|log| {
                        Ok(log
                            .producer_state()
                            .entries()
                            .map(|e| ProducerState {
                                producer_id: e.producer_id.0,
                                producer_epoch: i32::from(e.epoch.0),
                                last_sequence: e.last_sequence(),
                                last_timestamp: e.last_timestamp,
                                coordinator_epoch: e.coordinator_epoch,
                                current_txn_start_offset: e
                                    .current_txn_first_offset
                                    .map_or(-1, |o| o.0),
                                ..Default::default()
                            })
                            .collect::<Vec<_>>())
                    });
                    match producers {
                        Ok(v) => r.active_producers = v,
                        Err(e) => {
                            r.error_code = log_error_code(&e).code();
                            r.error_message = Some(e.to_string());
                        }
                    }
                }
            }
            partitions.push(r);
        }
        topics.push(TopicResponse {
            name: t.name,
            partitions,
            ..Default::default()
        });
    }
    Ok(Reply::Response(Response::DescribeProducers(
        DescribeProducersResponse {
            topics,
            ..Default::default()
        },
    )))
}
