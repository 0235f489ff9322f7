//! [`LogConfig`]: the per-topic settings the log obeys, named after Kafka's topic configs.

use crate::{LogError, Result};

/// Whether record timestamps come from the producer or are stamped by the log on append
/// (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampPolicy {
    /// Keep the producer's timestamps (`CreateTime`, the default).
    #[default]
    CreateTime,
    /// Overwrite each batch's max timestamp with the append time (`LogAppendTime`).
    LogAppendTime,
}

/// Configuration of one partition log. Defaults are Kafka's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow beyond this (default 1 GiB).
    /// At most `i32::MAX`, because index positions are 32-bit.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this
    /// (default 7 days).
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file (default 10 MiB); a full
    /// index forces a roll.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes appended between two sparse index entries (default 4096).
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete closed segments whose largest timestamp is older than this;
    /// negative means keep forever (default 7 days).
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger than this;
    /// negative means unlimited (the default, -1).
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many appended records; `None` leaves flushing to
    /// the OS page cache (the default, as in Kafka).
    pub flush_messages: Option<u64>,
    /// `flush.ms`: fsync when the oldest unflushed append is this old; `None` = page cache.
    pub flush_ms: Option<i64>,
    /// fsync every append before returning (and so before the broker acknowledges it).
    pub fsync_before_ack: bool,
    /// `message.timestamp.type`.
    pub timestamp_policy: TimestampPolicy,
    /// How many closed segments may keep their indexes (and, after a timestamp lookup, their
    /// `.log` file) memory-mapped at once; older mappings are dropped and re-created on demand
    /// so memory stays bounded as the log grows.
    pub max_mapped_closed_indexes: usize,
    /// `producer.id.expiration.ms` (a broker config in Kafka): forget an idempotent producer
    /// whose last batch is this old (default 1 day). See `producer_state`.
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy` contains `compact`: the log cleaner keeps the latest record per key
    /// (see [`crate::cleaner`]). Retention (`delete`) is governed by `retention.ms` and
    /// `retention.bytes`, which the broker sets to -1 when the policy lacks `delete`.
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone survives after the cleaning that first
    /// kept it (KIP-534's delete horizon; default 1 day).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment is not cleaned until its largest timestamp is this
    /// old (default 0).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a compacted log whose oldest dirty record is this old is
    /// cleaned whatever its dirty ratio, and its active segment rolls at this age (default
    /// `i64::MAX`, never).
    pub max_compaction_lag_ms: i64,
}

/// One day in milliseconds, Kafka's default for `delete.retention.ms`.
pub const ONE_DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// 7 days in milliseconds, Kafka's default for `segment.ms` and `retention.ms`.
pub const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: SEVEN_DAYS_MS,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: SEVEN_DAYS_MS,
            retention_bytes: -1,
            flush_messages: None,
            flush_ms: None,
            fsync_before_ack: false,
            timestamp_policy: TimestampPolicy::CreateTime,
            max_mapped_closed_indexes: 64,
            producer_id_expiration_ms: crate::producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            compact: false,
            delete_retention_ms: ONE_DAY_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// The age at which the active segment rolls: `segment.ms`, or `max.compaction.lag.ms`
    /// when that is smaller on a compacted log (Kafka's `LogConfig.maxSegmentMs`), so the
    /// cleaner can reach every record within the lag.
    pub fn effective_segment_ms(&self) -> i64 {
        if self.compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }

    /// Checks the ranges Kafka enforces (plus the ones this implementation needs).
    pub fn validate(&self) -> Result<()> {
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return Err(LogError::InvalidConfig(format!(
                "segment.bytes {} must be in [14, {}]",
                self.segment_bytes,
                i32::MAX
            )));
        }
        if self.segment_ms < 1 {
            return Err(LogError::InvalidConfig("segment.ms must be >= 1".into()));
        }
        // At least two entries of the larger (12-byte) time index, so a fresh segment can
        // always take its first entries.
        if self.segment_index_bytes < 24 || self.segment_index_bytes > i32::MAX as u64 {
            return Err(LogError::InvalidConfig(format!(
                "segment.index.bytes {} must be in [24, {}]",
                self.segment_index_bytes,
                i32::MAX
            )));
        }
        if self.flush_messages == Some(0) {
            return Err(LogError::InvalidConfig(
                "flush.messages must be >= 1".into(),
            ));
        }
        if matches!(self.flush_ms, Some(ms) if ms < 0) {
            return Err(LogError::InvalidConfig("flush.ms must be >= 0".into()));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(LogError::InvalidConfig(
                "producer.id.expiration.ms must be >= 1".into(),
            ));
        }
        if self.delete_retention_ms < 0 || self.min_compaction_lag_ms < 0 {
            return Err(LogError::InvalidConfig(
                "delete.retention.ms and min.compaction.lag.ms must be >= 0".into(),
            ));
        }
        if self.max_compaction_lag_ms < 1 {
            return Err(LogError::InvalidConfig(
                "max.compaction.lag.ms must be >= 1".into(),
            ));
        }
        if self.max_mapped_closed_indexes == 0 {
            return Err(LogError::InvalidConfig(
                "max_mapped_closed_indexes must be >= 1".into(),
            ));
        }
        Ok(())
    }
}
