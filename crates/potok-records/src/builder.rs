//! [`RecordBatchBuilder`]: builds valid v2 batches for tests, tools and internal topics.
//!
//! The broker itself never re-encodes client batches; this builder exists for data Potok
//! writes on its own (internal topics, transaction markers), for the CLI and for tests.

use bytes::Bytes;

use crate::header::{CONTROL_BIT, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT};
use crate::{
    recompute_crc, BatchHeader, Compression, Header, LeaderEpoch, Offset, ProducerEpoch,
    ProducerId, Record, RecordBatch, RecordsError, Result, TimestampType, BATCH_HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2,
};

/// A record to be added to a builder, with an absolute timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NewRecord {
    /// Creation timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<Bytes>,
    /// Value, `None` for null.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

/// Builds one v2 record batch with a correct CRC.
///
/// Defaults match a plain (non-idempotent) Kafka producer: base offset 0, leader epoch -1,
/// no compression, `CreateTime`, producer id/epoch/sequence -1. Offsets inside the batch are
/// consecutive from the base offset; the base timestamp is the first record's timestamp and the
/// max timestamp the largest one (or the append time for `LogAppendTime`).
#[derive(Clone, Debug)]
pub struct RecordBatchBuilder {
    base_offset: Offset,
    leader_epoch: LeaderEpoch,
    compression: Compression,
    log_append_time: Option<i64>,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    records: Vec<NewRecord>,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        RecordBatchBuilder::new()
    }
}

/// Kafka's control record types (`ControlRecordType`): the key of a transaction marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecordType {
    /// Transaction aborted (type 0).
    Abort,
    /// Transaction committed (type 1).
    Commit,
}

impl ControlRecordType {
    /// Reads a control record's key (Kafka's `ControlRecordType.parse`: `[version i16][type
    /// i16]`, version 0, later versions keep the type where it is). `None` for a key too short
    /// or a type that is not a transaction marker (Kafka's other control types, such as the
    /// KRaft leader change, are not markers).
    pub fn parse(key: &[u8]) -> Option<ControlRecordType> {
        let version = i16::from_be_bytes([*key.first()?, *key.get(1)?]);
        if version < 0 {
            return None;
        }
        match i16::from_be_bytes([*key.get(2)?, *key.get(3)?]) {
            0 => Some(ControlRecordType::Abort),
            1 => Some(ControlRecordType::Commit),
            _ => None,
        }
    }
}

impl RecordBatchBuilder {
    /// A builder with the defaults described on the type.
    pub fn new() -> RecordBatchBuilder {
        RecordBatchBuilder {
            base_offset: Offset(0),
            leader_epoch: LeaderEpoch(-1),
            compression: Compression::None,
            log_append_time: None,
            producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(-1),
            base_sequence: -1,
            transactional: false,
            control: false,
            records: Vec::new(),
        }
    }

    /// Sets the base offset.
    pub fn base_offset(mut self, offset: Offset) -> Self {
        self.base_offset = offset;
        self
    }

    /// Sets the partition leader epoch.
    pub fn leader_epoch(mut self, epoch: LeaderEpoch) -> Self {
        self.leader_epoch = epoch;
        self
    }

    /// Sets the compression codec of the records section.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Marks the batch `LogAppendTime` with the given append time as its max timestamp.
    pub fn log_append_time(mut self, append_time_ms: i64) -> Self {
        self.log_append_time = Some(append_time_ms);
        self
    }

    /// Sets idempotent-producer fields (KIP-98).
    pub fn producer(mut self, id: ProducerId, epoch: ProducerEpoch, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the transactional attribute.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Sets the control attribute (use [`Self::end_transaction_marker`] for real markers).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Adds a record.
    pub fn record(mut self, record: NewRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Adds a record with key and value and no headers.
    pub fn key_value(self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        self.record(NewRecord {
            timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Vec::new(),
        })
    }

    /// Adds a record through a mutable reference (for loops).
    pub fn push(&mut self, record: NewRecord) {
        self.records.push(record);
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record has been added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A transaction marker batch as a transaction coordinator writes it (Kafka
    /// `EndTransactionMarker`): transactional and control bits set, one record whose key is
    /// `[version i16 = 0][type i16]` and whose value is `[version i16 = 0][coordinatorEpoch i32]`.
    pub fn end_transaction_marker(
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        marker: ControlRecordType,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> RecordBatchBuilder {
        let kind: i16 = match marker {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        };
        let mut key = Vec::with_capacity(4);
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&kind.to_be_bytes());
        let mut value = Vec::with_capacity(6);
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        RecordBatchBuilder::new()
            .producer(producer_id, producer_epoch, -1)
            .transactional(true)
            .control(true)
            .record(NewRecord {
                timestamp,
                key: Some(Bytes::from(key)),
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
            })
    }

    /// Encodes the batch. Fails with [`RecordsError::InvalidArgument`] if a field cannot be
    /// represented (more than `i32::MAX` records, a key longer than `i32::MAX`, a timestamp
    /// delta overflowing, or a batch over 2 GiB).
    pub fn build(&self) -> Result<RecordBatch> {
        let count = i32::try_from(self.records.len())
            .map_err(|_| RecordsError::InvalidArgument("too many records".into()))?;
        let base_timestamp = self.records.first().map_or(-1, |r| r.timestamp);
        let mut max_timestamp = -1i64;
        let mut encoded = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            check_len(&r.key, "key")?;
            check_len(&r.value, "value")?;
            i32::try_from(r.headers.len())
                .map_err(|_| RecordsError::InvalidArgument("too many headers".into()))?;
            for h in &r.headers {
                check_len(&Some(h.key.clone()), "header key")?;
                check_len(&h.value, "header value")?;
            }
            let timestamp_delta = r
                .timestamp
                .checked_sub(base_timestamp)
                .ok_or_else(|| RecordsError::InvalidArgument("timestamp delta overflows".into()))?;
            max_timestamp = max_timestamp.max(r.timestamp);
            let record = Record {
                attributes: 0,
                timestamp_delta,
                // `i < count <= i32::MAX`, so this cannot truncate.
                offset_delta: i as i32,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            };
            if record.body_len() > i32::MAX as usize {
                return Err(RecordsError::InvalidArgument("record too large".into()));
            }
            record.write(&mut encoded);
        }
        let payload = match self.compression {
            Compression::None => encoded,
            codec => codec.compress(&encoded)?,
        };
        let total = BATCH_HEADER_LEN + payload.len();
        let batch_length = i32::try_from(total - LOG_OVERHEAD)
            .map_err(|_| RecordsError::InvalidArgument("batch larger than 2 GiB".into()))?;
        let mut attributes = i16::from(self.compression.id());
        if self.log_append_time.is_some() {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        let header = BatchHeader {
            base_offset: self.base_offset.0,
            batch_length,
            partition_leader_epoch: self.leader_epoch.0,
            magic: MAGIC_V2,
            crc: 0,
            attributes,
            last_offset_delta: count.saturating_sub(1).max(0),
            base_timestamp,
            max_timestamp: self.log_append_time.unwrap_or(max_timestamp),
            producer_id: self.producer_id.0,
            producer_epoch: self.producer_epoch.0,
            base_sequence: self.base_sequence,
            records_count: count,
        };
        let mut buf = vec![0u8; total];
        header.write(&mut buf)?;
        buf[BATCH_HEADER_LEN..].copy_from_slice(&payload);
        recompute_crc(&mut buf)?;
        RecordBatch::new(Bytes::from(buf))
    }

    /// The timestamp type the built batch will have.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.log_append_time.is_some() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
}

fn check_len(b: &Option<Bytes>, what: &str) -> Result<()> {
    match b {
        Some(b) if i32::try_from(b.len()).is_err() => Err(RecordsError::InvalidArgument(format!(
            "{what} longer than i32::MAX bytes"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn builder() -> RecordBatchBuilder {
        RecordBatchBuilder::new()
            .base_offset(Offset(100))
            .leader_epoch(LeaderEpoch(3))
            .producer(ProducerId(42), ProducerEpoch(1), 7)
            .key_value(1_000, Some(b"k1"), Some(b"v1"))
            .record(NewRecord {
                timestamp: 1_005,
                key: None,
                value: Some(Bytes::from_static(b"second")),
                headers: vec![Header {
                    key: Bytes::from_static(b"trace"),
                    value: Some(Bytes::from_static(b"abc")),
                }],
            })
            .key_value(990, Some(b"k3"), None)
    }

    #[test]
    fn builds_valid_batches_for_every_codec() {
        for c in ALL {
            let batch = builder().compression(c).build().unwrap();
            batch.validate().unwrap();
            let h = batch.header();
            assert_eq!(h.compression().unwrap(), c);
            assert_eq!(h.base_offset, 100);
            assert_eq!(h.partition_leader_epoch, 3);
            assert_eq!(h.records_count, 3);
            assert_eq!(h.last_offset_delta, 2);
            assert_eq!(h.base_timestamp, 1_000);
            assert_eq!(h.max_timestamp, 1_005);
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 1, 7)
            );
            let recs: Vec<Record> = batch.records().unwrap().collect::<Result<_>>().unwrap();
            assert_eq!(recs.len(), 3);
            assert_eq!(recs[1].offset(h), Offset(101));
            assert_eq!(recs[2].timestamp(h), 990);
            assert_eq!(recs[1].headers[0].key_str(), Some("trace"));
            assert_eq!(recs[2].value, None);
            assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
        }
    }

    #[test]
    fn uncompressed_records_are_zero_copy() {
        let batch = builder().build().unwrap();
        let range = batch.as_bytes().as_ptr_range();
        let first = batch.records().unwrap().next().unwrap().unwrap();
        let key = first.key.unwrap();
        assert!(
            range.contains(&key.as_ptr()),
            "key must point into the batch"
        );
    }

    #[test]
    fn flags_and_log_append_time() {
        let b = builder()
            .transactional(true)
            .log_append_time(5_000)
            .build()
            .unwrap();
        b.validate().unwrap();
        assert!(b.header().is_transactional());
        assert!(!b.header().is_control());
        assert_eq!(b.header().timestamp_type(), TimestampType::LogAppendTime);
        let r = b.records().unwrap().next().unwrap().unwrap();
        assert_eq!(r.timestamp(b.header()), 5_000);
    }

    #[test]
    fn transaction_marker_layout() {
        let b = RecordBatchBuilder::end_transaction_marker(
            ProducerId(9),
            ProducerEpoch(2),
            ControlRecordType::Commit,
            5,
            77,
        )
        .build()
        .unwrap();
        b.validate().unwrap();
        assert!(b.header().is_control() && b.header().is_transactional());
        let r = b.records().unwrap().next().unwrap().unwrap();
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 5][..]));
        assert_eq!(
            ControlRecordType::parse(r.key.as_deref().unwrap()),
            Some(ControlRecordType::Commit)
        );
        assert_eq!(
            ControlRecordType::parse(&[0, 0, 0, 0]),
            Some(ControlRecordType::Abort)
        );
        // Too short, a negative version, and the KRaft leader-change type (2) are no markers.
        assert_eq!(ControlRecordType::parse(&[0, 0, 0]), None);
        assert_eq!(ControlRecordType::parse(&[0xff, 0xff, 0, 1]), None);
        assert_eq!(ControlRecordType::parse(&[0, 0, 0, 2]), None);
    }

    #[test]
    fn client_batch_checks_follow_kafka_log_validator() {
        builder().build().unwrap().validate_client_batch().unwrap();
        let empty = RecordBatchBuilder::new().build().unwrap();
        assert!(empty.validate_client_batch().is_err());
        let marker = RecordBatchBuilder::end_transaction_marker(
            ProducerId(1),
            ProducerEpoch(0),
            ControlRecordType::Abort,
            0,
            0,
        )
        .build()
        .unwrap();
        marker.validate().unwrap();
        assert!(marker.validate_client_batch().is_err());
        let no_seq = builder()
            .producer(ProducerId(5), ProducerEpoch(0), -1)
            .build()
            .unwrap();
        assert!(no_seq.validate_client_batch().is_err());
        let mut bytes = builder().build().unwrap().as_bytes().to_vec();
        bytes[23..27].copy_from_slice(&5i32.to_be_bytes());
        recompute_crc(&mut bytes).unwrap();
        let bad_range = RecordBatch::new(Bytes::from(bytes)).unwrap();
        bad_range.validate().unwrap();
        assert!(bad_range.validate_client_batch().is_err());
    }

    #[test]
    fn empty_batch_is_valid() {
        let b = RecordBatchBuilder::new().build().unwrap();
        b.validate().unwrap();
        assert_eq!(b.len(), BATCH_HEADER_LEN);
        assert_eq!(b.records().unwrap().count(), 0);
    }

    #[test]
    fn decompression_limit_applies_to_records() {
        let big = vec![b'x'; 100_000];
        let b = RecordBatchBuilder::new()
            .compression(Compression::Gzip)
            .key_value(1, None, Some(&big))
            .build()
            .unwrap();
        assert!(b.as_bytes().len() < 1_000);
        assert_eq!(
            b.records_with_limit(50_000).unwrap_err(),
            RecordsError::DecompressedTooLarge { limit: 50_000 }
        );
        assert_eq!(b.records_with_limit(200_000).unwrap().count(), 1);
    }

    #[test]
    fn timestamp_delta_overflow_rejected() {
        let r = RecordBatchBuilder::new()
            .key_value(i64::MAX, None, None)
            .key_value(i64::MIN, None, None)
            .build();
        assert!(matches!(r, Err(RecordsError::InvalidArgument(_))));
    }
}
