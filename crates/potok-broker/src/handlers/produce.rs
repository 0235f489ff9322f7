//! Produce: validates each partition's batches (magic 2, CRC-32C, Kafka's client-batch rules,
//! `max.message.bytes`), then every record as Kafka's `LogValidator` does (structure, a key on
//! compacted topics, the `CreateTime` window of KIP-937), and appends them as the unchanged
//! bytes of the request. Only header fields are rewritten in place: the base offset (and, under
//! `LogAppendTime`, the timestamp) by the log, and a `CreateTime` batch's max timestamp here when
//! the client's header disagrees with its records (Kafka rewrites it too; a bogus
//! `maxTimestamp = 0` would otherwise make time-based retention delete fresh data).
//!
//! A topic whose `compression.type` names a codec gets every batch in that codec: a batch in
//! another one is recompressed before the append, as Kafka's `LogValidator` does.
//!
//! A refused record is reported in `record_errors` (v8+) by its index in the batch, every one of
//! them, as Kafka does; nothing of the batch is appended. Batch-level refusals carry no
//! `record_errors`, also as in Kafka.
//!
//! The append runs on the worker thread under the partition's lock, as Kafka's request handler
//! threads append: it writes into the active segment's file (the page cache). A roll on the
//! way creates the new segment and queues the old one's fsyncs on the background flusher
//! (`potok_log::flusher`), so a produce never waits for a disk flush unless the topic's
//! `flush.messages` asks for one.
//!
//! acks: 0 sends no response, 1 answers after the append, -1 (`all`) first refuses with
//! NOT_ENOUGH_REPLICAS when the committed ISR is smaller than `min.insync.replicas` (topic
//! config, else the broker's), then appends and waits until the high watermark covers the
//! records (`delayed_produce`: Kafka's purgatory, bounded by the request's `timeout_ms`). On one
//! node the leader is the whole ISR, so the wait ends at once. Other values are
//! `INVALID_REQUIRED_ACKS`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use potok_log::TimestampPolicy;
use potok_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use potok_protocol::messages::ProduceResponse;
use potok_protocol::{ErrorCode, Request, Response};
use potok_records::Offset;
use potok_records::{
    set_max_timestamp, split_batches, Compression, RecordBatch, RecordChecks, RecordFault,
    RecordFaultKind, RecordsError, TimestampType, TimestampWindow, DEFAULT_MAX_DECOMPRESSED_BYTES,
};
use potok_records::{ProducerEpoch, ProducerId};
use potok_replication::ReplicationError;
use potok_txn::TopicPartition;

use super::delayed_produce::{self, Waiting};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::topics::{log_error_code, now_ms, ApiError, Topic};
use crate::Broker;

/// Kafka's answer for a partition another broker leads (clients refresh Metadata and retry at
/// the leader).
pub(crate) fn not_leader() -> ApiError {
    ApiError::new(
        ErrorCode::NotLeaderOrFollower,
        "This server is not the leader for that topic-partition.",
    )
}

/// The log start offset a refused produce answers: Kafka's `ReplicaManager.appendToLocalLog`
/// reports the partition's log start offset for every failure but the ones it lists as
/// unknown-append-info (unknown topic or partition, not leader, record or batch too large,
/// corrupt record, storage error), which answer -1; so do requests refused before any
/// partition is looked at (invalid acks).
fn failed_log_start_offset(topic: Option<&Topic>, partition: i32, code: ErrorCode) -> i64 {
    let unknown_info = matches!(
        code,
        ErrorCode::UnknownTopicOrPartition
            | ErrorCode::NotLeaderOrFollower
            | ErrorCode::MessageTooLarge
            | ErrorCode::RecordListTooLarge
            | ErrorCode::CorruptMessage
            | ErrorCode::KafkaStorageError
            | ErrorCode::UnknownTopicId
            | ErrorCode::InvalidRequiredAcks
    );
    if unknown_info {
        return -1;
    }
    topic
        .and_then(|t| t.partition(partition))
        .and_then(|p| p.offsets().ok())
        .map_or(-1, |(start, _)| start.0)
}

/// Handles Produce.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::Produce(req) = req else {
        return Err(BrokerError::NoHandler("Produce"));
    };
    let acks = req.acks;
    let transactional_id = req.transactional_id;
    // KIP-890: transactional batches whose coordinator is another broker are verified with it
    // first (part 1, a cluster); from v12 (part 2) their partitions are added to the
    // transaction first, by whichever broker coordinates it (`crate::txn::verify`).
    let verified = match transactional_id.as_deref() {
        Some(id) => {
            crate::txn::verify::verify_produce(&broker, id, &req.topic_data, ctx.api_version >= 12)
                .await
        }
        None => Default::default(),
    };
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // acks=all partitions appended and waiting for the ISR, with their (topic, partition)
    // positions in `responses`.
    let mut waiting: Vec<(usize, usize, Waiting)> = Vec::new();
    for td in req.topic_data {
        let topic = broker.topics.get(&td.name);
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let has_records = pd.records.as_ref().is_some_and(|b| !b.is_empty());
            let mut r = PartitionProduceResponse {
                index: pd.index,
                ..Default::default()
            };
            let outcome = if !matches!(acks, -1..=1) {
                Err(Refusal::batch(ApiError::new(
                    ErrorCode::InvalidRequiredAcks,
                    "acks must be -1, 0 or 1",
                )))
            } else {
                match &topic {
                    None => Err(Refusal::batch(ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    ))),
                    Some(t) => append(
                        &broker,
                        t,
                        pd.index,
                        pd.records,
                        acks,
                        transactional_id.as_deref(),
                        verified.get(&(td.name.clone(), pd.index)).copied(),
                    ),
                }
            };
            match outcome {
                Ok(ok) => {
                    if let Some(w) = ok.waiting {
                        waiting.push((responses.len(), parts.len(), w));
                    }
                    r.base_offset = ok.base_offset;
                    r.log_append_time_ms = ok.log_append_time_ms;
                    r.log_start_offset = ok.log_start_offset;
                }
                Err(Refusal {
                    error: e,
                    record_errors,
                }) => {
                    r.error_code = e.code.code();
                    r.base_offset = -1;
                    r.log_start_offset = if has_records {
                        failed_log_start_offset(topic.as_deref(), pd.index, e.code)
                    } else {
                        // Kafka refuses null or empty records before the log
                        // (`ProduceRequest.validateRecords`).
                        -1
                    };
                    r.record_errors = record_errors;
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
    if !waiting.is_empty() {
        let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
        let (positions, waits): (Vec<_>, Vec<_>) =
            waiting.into_iter().map(|(t, p, w)| ((t, p), w)).unzip();
        let results = delayed_produce::wait(&waits, timeout).await;
        for ((t, p), result) in positions.into_iter().zip(results) {
            if let Err(code) = result {
                // Kafka's DelayedProduce sets the error and keeps the append's offsets.
                let r = &mut responses[t].partition_responses[p];
                r.error_code = code.code();
                r.error_message = Some(match code {
                    ErrorCode::RequestTimedOut => {
                        "the in-sync replicas did not acknowledge the records within the request's timeout".into()
                    }
                    ErrorCode::NotEnoughReplicasAfterAppend => {
                        "the records were written, but the ISR shrank below min.insync.replicas before every member had them".into()
                    }
                    _ => "this broker stopped leading the partition before the in-sync replicas had the records".into(),
                });
            }
        }
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
    /// For acks=all: what the response waits for.
    waiting: Option<Waiting>,
}

/// Why a partition's data was refused: the error and, when individual records are to blame,
/// one `record_errors` entry per record.
struct Refusal {
    error: ApiError,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    /// A refusal of the whole batch (no `record_errors`).
    fn batch(error: ApiError) -> Refusal {
        Refusal {
            error,
            record_errors: Vec::new(),
        }
    }
}

fn append(
    broker: &Broker,
    topic: &Topic,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
    transactional_id: Option<&str>,
    verified: Option<std::result::Result<u64, ErrorCode>>,
) -> std::result::Result<Appended, Refusal> {
    let Some(p) = topic.partition(partition) else {
        return Err(Refusal::batch(ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )));
    };
    if p.is_led_elsewhere() {
        return Err(Refusal::batch(not_leader()));
    }
    // After the existence check, before anything is validated or appended, as Kafka's
    // `ReplicaManager.appendToLocalLog` refuses internal topics.
    if crate::internal_topics::is_internal(topic.name()) {
        return Err(Refusal::batch(crate::internal_topics::append_refused(
            topic.name(),
        )));
    }
    let config = topic.config();
    if acks == -1 {
        // min.insync.replicas against the partition's committed ISR, before anything is
        // appended (Kafka's `Partition.appendRecordsToLeader`).
        let min_isr = usize::try_from(config.min_insync_replicas).unwrap_or(usize::MAX);
        if let Some(Err(ReplicationError::NotEnoughReplicas { isr, min_isr })) =
            p.replication().map(|s| s.check_acks_all(min_isr))
        {
            return Err(Refusal::batch(ApiError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr}"
                ),
            )));
        }
    }
    let records = records.unwrap_or_default();
    if records.is_empty() {
        return Err(Refusal::batch(ApiError::new(
            ErrorCode::InvalidRecord,
            "the produce request carries no records",
        )));
    }
    let mut batches = split_batches(records.clone());
    let batch = match batches.next() {
        None => {
            return Err(Refusal::batch(ApiError::new(
                ErrorCode::InvalidRecord,
                "no record batch",
            )))
        }
        Some(b) => b.map_err(|e| Refusal::batch(records_error(e)))?,
    };
    // Kafka requires exactly one v2 batch per partition in a produce request
    // (`LogValidator.validateOneBatchRecords`); it also keeps the append all-or-nothing.
    if let Some(next) = batches.next() {
        next.map_err(|e| Refusal::batch(records_error(e)))?;
        let n = 2 + batches.count();
        return Err(Refusal::batch(ApiError::new(
            ErrorCode::InvalidRecord,
            format!("a produce request must carry exactly one record batch per partition, got {n}"),
        )));
    }
    if batch.len() > config.max_message_bytes {
        return Err(Refusal::batch(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The record batch of {} bytes is larger than max.message.bytes {}",
                batch.len(),
                config.max_message_bytes
            ),
        )));
    }
    batch
        .validate_client_batch()
        .map_err(|e| Refusal::batch(records_error(e)))?;
    // A transactional batch must name its transactional id (Kafka's `ProduceRequest` refuses
    // transactional records without one).
    let txn_header = batch.header();
    let txn =
        if txn_header.is_transactional() {
            match transactional_id {
                Some(id) => Some((
                    id.to_owned(),
                    ProducerId(txn_header.producer_id),
                    ProducerEpoch(txn_header.producer_epoch),
                )),
                _ => return Err(Refusal::batch(ApiError::new(
                    ErrorCode::InvalidTxnState,
                    "a transactional batch needs the transactional id of an ongoing transaction",
                ))),
            }
        } else {
            None
        };
    let count = u64::try_from(batch.header().records_count).unwrap_or(0);

    let now = now_ms();
    let create_time = config.log.timestamp_policy == TimestampPolicy::CreateTime;
    let checks = RecordChecks {
        require_key: config.compact,
        create_time_window: create_time.then_some(TimestampWindow {
            now_ms: now,
            before_max_ms: config.timestamp_before_max_ms,
            after_max_ms: config.timestamp_after_max_ms,
        }),
    };
    let scan = batch
        .scan_records(&checks, DEFAULT_MAX_DECOMPRESSED_BYTES)
        .map_err(|e| Refusal::batch(records_error(e)))?;
    if !scan.faults.is_empty() {
        return Err(record_faults(
            topic.name(),
            partition,
            &checks,
            &scan.faults,
        ));
    }
    // Kafka's LogValidator sets a CreateTime batch's max timestamp to the one its records
    // carry (`setMaxTimestamp(CREATE_TIME, maxBatchTimestamp)`). Only a batch whose header is
    // wrong is copied and rewritten; LogAppendTime batches are stamped by the log.
    let header = batch.header();
    let records = if create_time
        && (header.max_timestamp != scan.max_timestamp
            || header.timestamp_type() != TimestampType::CreateTime)
    {
        let mut fixed = records.to_vec();
        set_max_timestamp(&mut fixed, TimestampType::CreateTime, scan.max_timestamp)
            .map_err(|e| Refusal::batch(records_error(e)))?;
        Bytes::from(fixed)
    } else {
        records
    };
    // A topic whose compression.type names a codec stores only batches in that codec (Kafka's
    // LogValidator recompression); the header, with the max timestamp fixed above, is kept.
    let records = match config.compression {
        Some((codec, level)) => {
            recompress(records, codec, level, config.max_message_bytes).map_err(Refusal::batch)?
        }
        None => records,
    };
    let bytes = records.len() as u64;
    let leader_epoch = p.leader_epoch();
    let appended = match txn {
        None => p.append(records, now),
        // KIP-890 part 1: the coordinator confirms that the partition belongs to the
        // producer's ongoing transaction, and the append happens under its lock, so no marker
        // can end the transaction in between (a late write would otherwise open a transaction
        // nothing ends and hold read_committed consumers at its offset).
        Some((id, producer_id, epoch)) => broker
            .txn
            .append_verified(
                &id,
                producer_id,
                epoch,
                TopicPartition::new(topic.name(), partition),
                verified.transpose().map_err(|code| {
                    Refusal::batch(ApiError::new(
                        code,
                        format!("the transaction coordinator did not verify the batch of producer {} epoch {} on this partition", producer_id.0, epoch.0),
                    ))
                })?,
                || p.append(records, now),
            )
            .map_err(|code| {
                Refusal::batch(ApiError::new(
                    code,
                    format!(
                        "the batch of producer {} epoch {} is not part of an ongoing transaction of {id} on this partition",
                        producer_id.0, epoch.0
                    ),
                ))
            })?,
    };
    let info = appended.map_err(|e| {
        // Leadership moved between the check above and the append (the partition refuses to
        // append as leader when it no longer leads).
        if p.is_led_elsewhere() {
            return Refusal::batch(not_leader());
        }
        Refusal::batch(ApiError::new(log_error_code(&e), e.to_string()))
    })?;
    // A duplicate of an idempotent batch (issue #6) wrote nothing; it is acknowledged with the
    // original offsets but not counted again.
    if !info.duplicate {
        broker.metrics.produced(topic.name(), bytes, count);
    }
    let waiting = (acks == -1).then(|| Waiting {
        partition: Arc::clone(&p),
        leader_epoch,
        required_end: Offset(info.last_offset.0 + 1),
        min_isr: usize::try_from(config.min_insync_replicas).unwrap_or(usize::MAX),
    });
    Ok(Appended {
        base_offset: info.first_offset.0,
        log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
        log_start_offset: info.log_start_offset.0,
        waiting,
    })
}

/// The refusal of a batch with refused records, worded as Kafka's `LogValidator`
/// (`validateKey`, `validateTimestamp`, `processRecordErrors`): `INVALID_TIMESTAMP` when any
/// record's timestamp is to blame, else `INVALID_RECORD`, and every record in `record_errors`.
fn record_faults(
    topic: &str,
    partition: i32,
    checks: &RecordChecks,
    faults: &[RecordFault],
) -> Refusal {
    let (min, max) = checks
        .create_time_window
        .map_or((i64::MIN, i64::MAX), |w| (w.min(), w.max()));
    let record_errors: Vec<BatchIndexAndErrorMessage> = faults
        .iter()
        .map(|f| BatchIndexAndErrorMessage {
            batch_index: f.index,
            batch_index_error_message: Some(match f.kind {
                RecordFaultKind::MissingKey => format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                ),
                RecordFaultKind::TimestampOutOfRange { timestamp, offset } => format!(
                    "Timestamp {timestamp} of message with offset {offset} is out of range. \
                     The timestamp should be within [{min}, {max}]"
                ),
                RecordFaultKind::LogAppendTimeFromProducer => format!(
                    "Invalid timestamp type in message at index {}. Producer should not set \
                     timestamp type to LogAppendTime.",
                    f.index
                ),
            }),
            ..Default::default()
        })
        .collect();
    let timestamps = faults
        .iter()
        .any(|f| !matches!(f.kind, RecordFaultKind::MissingKey));
    let error = if timestamps {
        ApiError::new(
            ErrorCode::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp",
        )
    } else {
        let first: Vec<String> = record_errors
            .iter()
            .take(3)
            .map(|e| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    e.batch_index,
                    e.batch_index_error_message.as_deref().unwrap_or_default()
                )
            })
            .collect();
        ApiError::new(
            ErrorCode::InvalidRecord,
            format!(
                "One or more records have been rejected due to {} record errors in total, and \
                 only showing the first three errors at most: [{}]",
                record_errors.len(),
                first.join(", ")
            ),
        )
    };
    Refusal {
        error,
        record_errors,
    }
}

/// Enforces a topic's `compression.type` on the one batch of a partition: a batch in another
/// codec is rewritten in the topic's codec (Kafka's `LogValidator` recompression), keeping its
/// offsets, timestamps, headers and producer fields; a batch already in it is kept as it came.
/// The rewritten batch must still fit `max.message.bytes`, as in Kafka.
fn recompress(
    records: Bytes,
    codec: Compression,
    level: Option<i32>,
    max_message_bytes: usize,
) -> std::result::Result<Bytes, ApiError> {
    let batch = RecordBatch::new(records).map_err(records_error)?;
    if batch.header().compression().map_err(records_error)? == codec {
        return Ok(batch.into_bytes());
    }
    let out = batch
        .recompress(codec, level, DEFAULT_MAX_DECOMPRESSED_BYTES)
        .map_err(records_error)?;
    if out.len() > max_message_bytes {
        return Err(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The record batch of {} bytes after recompression to {} is larger than max.message.bytes {max_message_bytes}",
                out.len(),
                codec.name()
            ),
        ));
    }
    Ok(out.into_bytes())
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
