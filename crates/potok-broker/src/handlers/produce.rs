//! Produce: validates each partition's batches (magic 2, CRC-32C, Kafka's client-batch rules,
//! `max.message.bytes`) and appends them as the unchanged bytes of the request; only the base
//! offset (and, under `LogAppendTime`, the timestamp) is rewritten in place by the log.
//!
//! acks: 0 sends no response, 1 and -1 answer after the append (on one node the leader is the
//! whole ISR, so -1 is satisfied at once unless `min.insync.replicas` > 1, which is
//! `NOT_ENOUGH_REPLICAS` as in Kafka). Other values are `INVALID_REQUIRED_ACKS`.

use std::sync::Arc;

use bytes::Bytes;
use potok_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use potok_protocol::messages::ProduceResponse;
use potok_protocol::{ErrorCode, Request, Response};
use potok_records::{split_batches, RecordsError};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::topics::{log_error_code, now_ms, ApiError, Topic};
use crate::Broker;

/// Handles Produce.
pub async fn handle(broker: Arc<Broker>, _ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::Produce(req) = req else {
        return Err(BrokerError::NoHandler("Produce"));
    };
    let acks = req.acks;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for td in req.topic_data {
        let topic = broker.topics.get(&td.name);
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let mut r = PartitionProduceResponse {
                index: pd.index,
                ..Default::default()
            };
            let outcome = if !matches!(acks, -1..=1) {
                Err((
                    ApiError::new(ErrorCode::InvalidRequiredAcks, "acks must be -1, 0 or 1"),
                    None,
                ))
            } else {
                match &topic {
                    None => Err((
                        ApiError::new(
                            ErrorCode::UnknownTopicOrPartition,
                            "This server does not host this topic-partition.",
                        ),
                        None,
                    )),
                    Some(t) => append(&broker, t, pd.index, pd.records, acks),
                }
            };
            match outcome {
                Ok(ok) => {
                    r.base_offset = ok.base_offset;
                    r.log_append_time_ms = ok.log_append_time_ms;
                    r.log_start_offset = ok.log_start_offset;
                }
                Err((e, batch_index)) => {
                    r.error_code = e.code.code();
                    r.base_offset = -1;
                    if let Some(i) = batch_index {
                        r.record_errors = vec![BatchIndexAndErrorMessage {
                            batch_index: i,
                            batch_index_error_message: Some(e.message.clone()),
                            ..Default::default()
                        }];
                    }
                    r.error_message = Some(e.message);
                }
            }
            parts.push(r);
        }
        responses.push(TopicProduceResponse {
            name: td.name,
            partition_responses: parts,
            ..Default::default()
        });
    }
    if acks == 0 {
        return Ok(Reply::None);
    }
    Ok(Reply::Response(Response::Produce(ProduceResponse {
        responses,
        ..Default::default()
    })))
}

struct Appended {
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
}

fn append(
    broker: &Broker,
    topic: &Topic,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
) -> std::result::Result<Appended, (ApiError, Option<i32>)> {
    let Some(p) = topic.partition(partition) else {
        return Err((
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic-partition.",
            ),
            None,
        ));
    };
    let config = topic.config();
    if acks == -1 && config.min_insync_replicas > 1 {
        return Err((
            ApiError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "The size of the current ISR 1 is insufficient to satisfy the min.isr requirement of {}",
                    config.min_insync_replicas
                ),
            ),
            None,
        ));
    }
    let records = records.unwrap_or_default();
    if records.is_empty() {
        return Err((
            ApiError::new(
                ErrorCode::InvalidRecord,
                "the produce request carries no records",
            ),
            None,
        ));
    }
    let mut n = 0i32;
    let mut count = 0u64;
    for (i, b) in split_batches(records.clone()).enumerate() {
        let i = i32::try_from(i).unwrap_or(i32::MAX);
        n = i + 1;
        let b = b.map_err(|e| (records_error(e), Some(i)))?;
        if b.len() > config.max_message_bytes {
            return Err((
                ApiError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "The record batch of {} bytes is larger than max.message.bytes {}",
                        b.len(),
                        config.max_message_bytes
                    ),
                ),
                Some(i),
            ));
        }
        b.validate_client_batch()
            .map_err(|e| (records_error(e), Some(i)))?;
        count += u64::try_from(b.header().records_count).unwrap_or(0);
    }
    if n == 0 {
        return Err((
            ApiError::new(ErrorCode::InvalidRecord, "no record batch"),
            None,
        ));
    }
    // Kafka requires exactly one v2 batch per partition in a produce request
    // (`LogValidator.validateOneBatchRecords`); it also keeps the append all-or-nothing.
    if n > 1 {
        return Err((
            ApiError::new(
                ErrorCode::InvalidRecord,
                format!(
                    "a produce request must carry exactly one record batch per partition, got {n}"
                ),
            ),
            None,
        ));
    }
    let bytes = records.len() as u64;
    let info = p
        .append(records, now_ms())
        .map_err(|e| (ApiError::new(log_error_code(&e), e.to_string()), None))?;
    // A duplicate of an idempotent batch (issue #6) wrote nothing; it is acknowledged with the
    // original offsets but not counted again.
    if !info.duplicate {
        broker.metrics.produced(topic.name(), bytes, count);
    }
    Ok(Appended {
        base_offset: info.first_offset.0,
        log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
        log_start_offset: info.log_start_offset.0,
    })
}

fn records_error(e: RecordsError) -> ApiError {
    let code = match e {
        RecordsError::CrcMismatch { .. }
        | RecordsError::Truncated { .. }
        | RecordsError::InvalidBatchLength { .. } => ErrorCode::CorruptMessage,
        RecordsError::UnsupportedMagic(_) => ErrorCode::UnsupportedForMessageFormat,
        RecordsError::UnknownCompression(_) => ErrorCode::UnsupportedCompressionType,
        _ => ErrorCode::InvalidRecord,
    };
    ApiError::new(code, e.to_string())
}
