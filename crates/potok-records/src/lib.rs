//! Kafka RecordBatch v2 (magic 2) over `Bytes`: parsing, validation, offset rewriting, codecs.
//!
//! This crate does no IO. It understands the on-wire and on-disk record batch format that Kafka
//! has used since 0.11 (KIP-98) and that is the only format Kafka 4.0 accepts (KIP-724 removed
//! magic 0 and 1). The byte layout is drawn in `docs/format.md`, section "Record batch v2".
//!
//! # Public API
//!
//! * Newtypes [`Offset`], [`LeaderEpoch`], [`ProducerId`], [`ProducerEpoch`] (all `Copy + Ord +
//!   Debug + Display`, with a public inner field).
//! * [`BatchHeader`] and [`BatchHeader::parse`] for the fixed [`BATCH_HEADER_LEN`] (61) byte
//!   header, with helpers [`BatchHeader::compression`], [`BatchHeader::timestamp_type`],
//!   [`BatchHeader::is_transactional`], [`BatchHeader::is_control`], [`BatchHeader::last_offset`]
//!   and [`BatchHeader::total_size`] (`batch_length + 12`).
//! * [`RecordBatch`]: one whole batch as [`bytes::Bytes`] (zero-copy), with
//!   [`RecordBatch::validate`] (magic, length, CRC-32C) and
//!   [`RecordBatch::validate_client_batch`] (plus Kafka's produce-time batch checks).
//! * [`split_batches`] / [`BatchIter`]: iterate a buffer of concatenated batches (a Produce
//!   request's `records`, a segment file). An incomplete tail is reported as
//!   [`RecordsError::Truncated`] so callers can tell it apart from corruption.
//! * In-place rewriting on `&mut [u8]` (works on `BytesMut` and on a `Vec<u8>`):
//!   [`set_base_offset`], [`set_partition_leader_epoch`],
//!   [`set_max_timestamp`], [`set_max_timestamp_and_log_append_time`] and [`recompute_crc`].
//! * [`RecordBatch::scan_records`]: the leader's per-record checks (structure, keys on compacted
//!   topics, the `CreateTime` window [`TimestampWindow`]) and the batch's true max timestamp in
//!   one pass that allocates nothing per record ([`RecordChecks`], [`RecordsScan`]).
//! * [`RecordBatch::records`] / [`RecordBatch::records_with_limit`]: a [`Records`] iterator of
//!   [`Record`] (`offset_delta`, `timestamp_delta`, `key`, `value`, `headers` as [`Header`]),
//!   zero-copy for uncompressed batches, decompressing once (bounded) for compressed ones.
//!   [`Record::offset`] and [`Record::timestamp`] give absolute values.
//! * [`Compression`] (`None`, `Gzip`, `Snappy`, `Lz4`, `Zstd`) with [`Compression::compress`]
//!   and [`Compression::decompress`] (bounded by a caller-given limit, default
//!   [`DEFAULT_MAX_DECOMPRESSED_BYTES`]). Snappy is written in snappy-java's xerial framing and
//!   read in both xerial and raw form; lz4 uses the LZ4 frame format.
//! * [`RecordBatch::recompress`]: the batch with its records in another codec (and level),
//!   every header field kept, as a broker enforcing a topic's `compression.type` needs.
//! * Log compaction: [`RecordBatch::with_retained_records`] (a subset of a batch's records,
//!   offsets and producer fields kept, optional KIP-534 delete horizon) and
//!   [`RecordBatch::empty_like`]; [`BatchHeader::delete_horizon_ms`].
//! * [`RecordBatchBuilder`] (with [`NewRecord`]) to build valid batches for tests, tools and
//!   internal topics, including transaction markers ([`ControlRecordType`]).
//! * All errors are [`RecordsError`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use potok_records::{split_batches, set_base_offset, Compression, Offset, RecordBatchBuilder};
//!
//! let batch = RecordBatchBuilder::new()
//!     .compression(Compression::Lz4)
//!     .key_value(1_700_000_000_000, Some(b"key"), Some(b"value"))
//!     .build()
//!     .unwrap();
//! // A leader assigns the offset in place; the CRC does not cover it.
//! let mut wire = batch.as_bytes().to_vec();
//! set_base_offset(&mut wire, Offset(42)).unwrap();
//! for batch in split_batches(Bytes::from(wire)) {
//!     let batch = batch.unwrap();
//!     batch.validate().unwrap();
//!     for record in batch.records().unwrap() {
//!         let record = record.unwrap();
//!         assert_eq!(record.offset(batch.header()), Offset(42));
//!         assert_eq!(record.value.as_deref(), Some(&b"value"[..]));
//!     }
//! }
//! ```
//!
//! # Safety against hostile input
//!
//! Every length read from the bytes is checked against the bytes that remain before it is used
//! for slicing or allocation; nothing here panics on malformed input.

mod batch;
mod builder;
mod compact;
mod compression;
mod error;
mod header;
mod recompress;
mod record;
mod rewrite;
mod scan;
mod types;
mod varint;

pub use batch::{split_batches, BatchIter, RecordBatch};
pub use builder::{ControlRecordType, NewRecord, RecordBatchBuilder};
pub use compression::DEFAULT_MAX_DECOMPRESSED_BYTES;
pub use error::RecordsError;
pub use header::{
    BatchHeader, Compression, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
    MIN_BATCH_LENGTH,
};
pub use record::{Header, Record, Records};
pub use rewrite::{
    recompute_crc, set_base_offset, set_max_timestamp, set_max_timestamp_and_log_append_time,
    set_partition_leader_epoch,
};
pub use scan::{
    RecordChecks, RecordFault, RecordFaultKind, RecordsScan, TimestampWindow, NO_TIMESTAMP,
};
pub use types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// Shorthand for results in this crate.
pub type Result<T, E = RecordsError> = std::result::Result<T, E>;
