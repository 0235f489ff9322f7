//! The single error type of this crate.

use std::path::PathBuf;

use potok_records::{Offset, ProducerEpoch, ProducerId, RecordsError};

/// Everything that can go wrong in the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An IO operation on one of the log's files failed.
    #[error("io error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A read or lookup asked for an offset outside `[log_start_offset, log_end_offset]`
    /// (Kafka's `OFFSET_OUT_OF_RANGE`).
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// The log start offset at the time.
        log_start_offset: Offset,
        /// The log end offset at the time.
        log_end_offset: Offset,
    },
    /// An appended buffer does not hold well-formed v2 batches (Kafka's `CORRUPT_MESSAGE` or
    /// `INVALID_RECORD`).
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] RecordsError),
    /// A batch's header is well-formed but its offsets or counts are inconsistent.
    #[error("invalid record batch: {0}")]
    InvalidBatchFields(String),
    /// A follower append carried offsets that do not follow the log end offset.
    #[error("out of order offsets: batch starts at {batch_base_offset}, log end offset is {log_end_offset}")]
    OutOfOrderOffsets {
        /// Base offset of the offending batch.
        batch_base_offset: Offset,
        /// The log end offset it should have been at or above.
        log_end_offset: Offset,
    },
    /// One batch is larger than a whole segment may be (Kafka's `RECORD_BATCH_TOO_LARGE`).
    #[error("record batch of {size} bytes exceeds segment.bytes {segment_bytes}")]
    BatchTooLarge {
        /// Size of the batch.
        size: usize,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// The data on disk is not what the log wrote: a bad batch inside a segment that recovery
    /// did not (or could not) repair, or an unreadable checkpoint.
    #[error("corrupt log data in {path}: {reason}")]
    Corrupt {
        /// The file holding the bad data.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configuration is out of range.
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
    /// An earlier IO failure left the in-memory state uncertain; the log refuses further work
    /// until it is reopened (Kafka takes the whole log directory offline in this case).
    #[error("log is offline after an earlier IO failure; reopen it to recover")]
    Offline,
    /// An idempotent batch's producer epoch is older than the newest the partition has seen
    /// for that producer id (Kafka's `INVALID_PRODUCER_EPOCH`; see `producer_state`).
    #[error(
        "producer {producer_id}: epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: ProducerId,
        /// The batch's epoch.
        epoch: ProducerEpoch,
        /// The newest epoch known for the producer.
        current_epoch: ProducerEpoch,
    },
    /// A transaction marker from a transaction coordinator older than the last one that wrote
    /// a marker for this producer (Kafka's `TRANSACTION_COORDINATOR_FENCED`, raised by
    /// `ProducerAppendInfo.checkCoordinatorEpoch`): a coordinator that lost its partition must
    /// not complete transactions any more.
    #[error("producer {producer_id}: marker from coordinator epoch {coordinator_epoch}, older than {current}")]
    TransactionCoordinatorFenced {
        /// The producer id.
        producer_id: ProducerId,
        /// The marker's coordinator epoch.
        coordinator_epoch: i32,
        /// The last coordinator epoch seen for the producer.
        current: i32,
    },
    /// An idempotent batch's first sequence does not follow the producer's last written
    /// sequence (Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("producer {producer_id} epoch {epoch}: sequence {sequence} is out of order, expected {expected}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: ProducerId,
        /// The batch's epoch.
        epoch: ProducerEpoch,
        /// The batch's first sequence.
        sequence: i32,
        /// The sequence that would have been accepted.
        expected: i32,
    },
}

impl LogError {
    /// Wraps an IO error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
