//! The partition log: segments, sparse indexes, crash recovery and retention.
//!
//! Synchronous (no tokio). Every file operation goes through the [`Storage`] trait
//! ([`RealStorage`] in production, [`FaultyStorage`] in tests). File formats are drawn in
//! `docs/format.md` (sections "Partition directory" to "Producer state snapshot").
//!
//! # Public API (for the broker)
//!
//! * [`Log::open`]`(dir, LogConfig, Arc<dyn Storage>, now_ms)` opens or creates the partition
//!   directory `{topic}-{partition}` (the caller builds the path) and recovers it; see
//!   [`Log::recovery_report`] for what recovery did. [`Log::open_managed`] does the same with
//!   the recovery point, log start offset and clean-shutdown state the caller keeps per data
//!   directory ([`read_offsets_file`], [`write_offsets_file`], [`write_clean_shutdown`]), and
//!   the log then writes none of those files itself.
//! * [`BoundedStorage`] wraps a [`Storage`] so that all logs opened through it keep at most a
//!   fixed number of segment files open ([`OpenFiles`]; see [`open_files`]).
//! * [`Log::append`]`(Bytes, now_ms) -> AppendInfo` (leader: assigns offsets in place, stamps
//!   `LogAppendTime` if configured) and [`Log::append_as_follower`]`(Bytes, now_ms)` (keeps the
//!   offsets). The input is one or more concatenated v2 batches whose CRCs the broker has
//!   already checked; the buffer is rewritten in place when it is uniquely owned, else copied.
//! * [`Log::read`]`(from, max_bytes, max_offset) -> ReadSlice { file, position, len,
//!   first_offset }`: whole batches from one segment, starting at the batch containing `from`,
//!   for `sendfile` ([`ReadSlice::read_bytes`] copies instead). `max_offset` (exclusive) is the
//!   high watermark for consumers. `from == log_end_offset` gives an empty slice;
//!   outside `[log_start_offset, log_end_offset]` is [`LogError::OffsetOutOfRange`].
//! * [`Log::log_start_offset`], [`Log::log_end_offset`], [`Log::recovery_point`],
//!   [`Log::size_bytes`], [`Log::segment_base_offsets`].
//! * [`Log::offset_for_timestamp`]`(ts) -> Option<(Offset, record timestamp)>` (ListOffsets),
//!   [`Log::max_timestamp_and_offset`] (ListOffsets `MAX_TIMESTAMP`).
//! * Leader epochs: [`Log::end_offset_for_epoch`] (OffsetForLeaderEpoch), [`Log::latest_epoch`],
//!   [`Log::epoch_for_offset`], [`Log::leader_epoch_entries`], kept in `leader-epoch-checkpoint`
//!   from the batches' partition leader epochs (see `leader_epoch`).
//! * [`Log::truncate_to`] and [`Log::truncate_fully_and_start_at`] (followers),
//!   [`Log::delete_records_before`] (DeleteRecords; the caller checks the high watermark).
//! * [`Log::apply_retention`]`(now_ms)` / [`Log::apply_retention_below`]`(now_ms, hw)`, or
//!   [`Log::detach_expired_segments`] under the caller's lock and
//!   [`DeletedSegments::remove_files`] after it, [`Log::roll`], [`Log::flush`],
//!   [`Log::maybe_flush`]`(now_ms)` (call periodically for `flush.ms`), [`Log::close`] (clean
//!   shutdown), [`Log::delete`].
//! * [`BackgroundFlusher`]: threads shared by many logs ([`Log::set_background_flusher`]) that
//!   run the fsyncs of rolls and `flush.ms` flushes off the appending thread (see [`flusher`]).
//! * [`AppendInfo`] `{ first_offset, last_offset, max_timestamp, offset_of_max_timestamp,
//!   log_append_time_ms, batches, records, bytes, log_start_offset }`.
//! * Errors are one enum, [`LogError`]: `OffsetOutOfRange` (Kafka `OFFSET_OUT_OF_RANGE`),
//!   `InvalidBatch` / `InvalidBatchFields` (`CORRUPT_MESSAGE` / `INVALID_RECORD`),
//!   `BatchTooLarge` (`RECORD_BATCH_TOO_LARGE`), `OutOfOrderOffsets` (follower), `Io`,
//!   `Corrupt` (bad data found on disk), `InvalidConfig`, `Offline` (after a failed write that
//!   could not be undone or a failed fsync the log refuses work until reopened, as Kafka takes
//!   the log directory offline).
//! * The clock is injected: every time-dependent call takes `now_ms` (milliseconds since the
//!   epoch); the crate never reads the system clock.
//! * The high watermark is kept by the caller: pass it as `max_offset` to [`Log::read`] for
//!   consumers and to [`Log::apply_retention_below`].
//! * [`LogConfig`] carries the topic configs with Kafka's names and defaults (`segment.bytes`,
//!   `segment.ms`, `segment.index.bytes`, `index.interval.bytes`, `retention.ms`,
//!   `retention.bytes`, `flush.messages`, `flush.ms`, `message.timestamp.type`,
//!   `producer.id.expiration.ms`) plus
//!   `fsync_before_ack` and `max_mapped_closed_indexes`.
//! * Idempotent producers (KIP-98): [`Log::append`] checks every batch carrying a producer id
//!   against the partition's [`ProducerStateManager`] before writing. A retry of one of the
//!   producer's last five batches writes nothing and returns the original offsets with
//!   [`AppendInfo::duplicate`] set (Kafka answers it with no error); an older epoch is
//!   [`LogError::InvalidProducerEpoch`] (`INVALID_PRODUCER_EPOCH`), a sequence that does not
//!   follow is [`LogError::OutOfOrderSequence`] (`OUT_OF_ORDER_SEQUENCE_NUMBER`); an unknown
//!   producer may start at any sequence (KIP-360, so `UNKNOWN_PRODUCER_ID` is never returned).
//!   Follower appends update the state unchecked. [`Log::producer_state`] serves
//!   DescribeProducers; [`Log::remove_expired_producers`] applies
//!   [`LogConfig::producer_id_expiration_ms`] (appends also do every 10 minutes). The state is
//!   snapshotted to `{offset}.snapshot` on roll and close and rebuilt on open from the newest
//!   snapshot plus the log tail (see [`producer_state`]).
//! * Transactions (KIP-98): the producer state tracks open transactions and
//!   [`Log::last_stable_offset`]; [`Log::append_marker`] appends a COMMIT/ABORT marker with the
//!   epoch checks of Kafka's `appendEndTxnMarker`; an ABORT adds a `.txnindex` entry to its
//!   segment ([`txn_index`]), and [`Log::collect_aborted_transactions`] gives a read_committed
//!   fetch the aborted transactions overlapping what it reads ([`ReadSlice::end_offset`]).
//! * Log compaction ([`cleaner`]): [`Cleaner::clean`]`(&impl LogAccess, now_ms, high
//!   watermark, &mut impl CleanerIo)` cleans a log whose [`LogConfig::compact`] is set,
//!   holding the log's lock only to prepare and to swap segments in;
//!   [`Log::cleanable_stats`] gives the dirty ratio and compaction delay for choosing logs.
//! * Tests of other crates can use [`FaultyStorage`] to inject crashes, short writes and IO
//!   errors, and [`Log::recovery_report`] to see what recovery did.
//!
//! # Retention and rolling
//!
//! Rolls happen before an append when the active segment would exceed `segment.bytes`, when its
//! first batch's timestamp (or, without one, the clock when it got its first data) is more than
//! `segment.ms` old, or when an index is full. Retention deletes whole segments, oldest first,
//! never a partial one: by `retention.ms` judged by each segment's **largest** record timestamp,
//! so a record stamped in the far future keeps its segment (and, because deletion stops at the
//! first segment to keep, every later one) until the clock passes it — Kafka behaves the same way;
//! and by `retention.bytes`. If the active segment alone has expired it is rolled and deleted,
//! as Kafka does.
//!
//! `Log` is `Send + Sync`; mutation takes `&mut self`, so wrap it in a `Mutex` and do not hold
//! the lock across an `.await`.
//!
//! # Durability
//!
//! By default data reaches the page cache only, and fsync happens on roll, on close, and per
//! `flush.messages` / `flush.ms` (Kafka's defaults and semantics). With
//! [`LogConfig::fsync_before_ack`] every append is fsynced before it returns. The recovery
//! point (the offset below which everything is fsynced) is checkpointed on roll, truncation and
//! close. With a [`BackgroundFlusher`] the fsyncs of a roll and of `flush.ms` run on the
//! flusher's threads and the recovery point advances when they complete, as in Kafka; only
//! data below the recovery point is promised to survive a power loss (a process crash loses
//! nothing that reached the page cache).
//!
//! # Recovery
//!
//! On open, if the clean-shutdown marker is present, segments are trusted after cheap sanity
//! checks of their indexes (a missing, mis-sized, non-monotonic or inconsistent index is
//! rebuilt from the `.log`). Otherwise every segment from the one containing the recovery point
//! onwards is scanned: each batch is parsed and CRC-checked
//! ([`potok_records::RecordBatch::validate`]) and its offsets must follow the previous batch;
//! the first torn, zero-filled, garbage or otherwise invalid batch and everything after it
//! is truncated with a `tracing::warn!`, and the indexes are rebuilt. Invalid data inside a
//! segment below the recovery point is reported ([`RecoveryReport::corrupt_segments`]) and not
//! served; nothing on disk can make the log panic.

mod checkpoint;
pub mod cleaner;
mod config;
mod deferred_file;
mod error;
pub mod fault;
pub mod flusher;
mod index;
mod leader_epoch;
mod log;
pub mod open_files;
pub mod producer_state;
mod segment;
pub mod storage;
pub mod txn_index;
pub mod txn_marker;

pub use checkpoint::{
    has_clean_shutdown, read_offsets_file, remove_clean_shutdown, write_clean_shutdown,
    write_offsets_file, OffsetEntry, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
};
pub use cleaner::{
    CleanStats, CleanableStats, Cleaner, CleanerConfig, CleanerIo, LogAccess, Unthrottled,
    CLEANER_OFFSET_FILE,
};
pub use config::{LogConfig, TimestampPolicy, ONE_DAY_MS, SEVEN_DAYS_MS};
pub use error::{LogError, Result};
pub use fault::{FaultPlan, FaultyStorage};
pub use flusher::BackgroundFlusher;
pub use leader_epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT_FILE};
pub use log::{AppendInfo, DeletedSegments, DirCheckpoint, Log, ReadSlice, RecoveryReport};
pub use open_files::{BoundedStorage, OpenFiles};
pub use potok_records::Offset;
pub use producer_state::{BatchMetadata, ProducerEntry, ProducerStateManager, SNAPSHOT_SUFFIX};
pub use segment::{segment_file, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX};
pub use storage::{RealStorage, Storage, StorageFile};
pub use txn_index::{AbortedTxn, TXN_INDEX_ENTRY_LEN};
pub use txn_marker::{EndTxnMarker, MarkerRequest};
