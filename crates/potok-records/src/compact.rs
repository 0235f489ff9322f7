//! Rewriting a batch for log compaction: [`RecordBatch::with_retained_records`] keeps a subset
//! of a batch's records and [`RecordBatch::empty_like`] keeps only its header, as Kafka's
//! `MemoryRecords.filterTo` does when the log cleaner drops records.
//!
//! Offsets never move: the base offset and the last offset delta of the original batch are
//! kept even when the first or last records are gone (Kafka's builder
//! `overrideLastOffset`), so a compacted batch still covers the same offset range and an
//! idempotent producer's last sequence (`baseSequence + lastOffsetDelta`) is unchanged. Every
//! retained record keeps its offset delta, key, value, headers and absolute timestamp.
//!
//! KIP-534 delete horizon: when tombstones or markers survive a cleaning for the first time,
//! the cleaner stamps `now + delete.retention.ms` into the batch's base timestamp and sets
//! attribute bit 6; the records' timestamp deltas are then re-encoded against that base so
//! their absolute timestamps stay the same. A later cleaning drops the tombstones once the
//! horizon has passed.

use bytes::Bytes;

use crate::header::{COMPRESSION_MASK, DELETE_HORIZON_BIT};
use crate::{
    recompute_crc, BatchHeader, Record, RecordBatch, RecordsError, Result, TimestampType,
    BATCH_HEADER_LEN, LOG_OVERHEAD,
};

impl BatchHeader {
    /// The KIP-534 delete horizon (milliseconds since the epoch) stored in the base timestamp,
    /// when attribute bit 6 is set.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then_some(self.base_timestamp)
    }
}

impl RecordBatch {
    /// This batch with only `retained` (records of this batch, in their original order). The
    /// header keeps base offset, last offset delta, leader epoch, producer id, epoch and base
    /// sequence, timestamp type, transactional and control bits and the codec; the records
    /// count, max timestamp (for `CreateTime`, the largest retained timestamp), length and CRC
    /// are recomputed. With `delete_horizon`, the base timestamp becomes that horizon and
    /// attribute bit 6 is set; otherwise an existing horizon is kept.
    ///
    /// `retained` must not be empty (use [`RecordBatch::empty_like`]).
    pub fn with_retained_records(
        &self,
        retained: &[Record],
        delete_horizon: Option<i64>,
    ) -> Result<RecordBatch> {
        let h = self.header();
        if retained.is_empty() {
            return Err(RecordsError::InvalidArgument(
                "a rewritten batch needs at least one record".into(),
            ));
        }
        let count = i32::try_from(retained.len())
            .map_err(|_| RecordsError::InvalidArgument("too many records".into()))?;
        let absolute = |r: &Record| h.base_timestamp.wrapping_add(r.timestamp_delta);
        // The base timestamp is the horizon when one is (or was) set; otherwise the original
        // base is kept so that unchanged records re-encode to the same bytes.
        let (base_timestamp, attributes) = match delete_horizon.or(h.delete_horizon_ms()) {
            Some(horizon) => (horizon, h.attributes | DELETE_HORIZON_BIT),
            None => (h.base_timestamp, h.attributes),
        };
        let mut encoded = Vec::new();
        let mut max_timestamp = -1i64;
        for r in retained {
            if r.offset_delta < 0 || r.offset_delta > h.last_offset_delta {
                return Err(RecordsError::InvalidArgument(format!(
                    "record offset delta {} outside the batch",
                    r.offset_delta
                )));
            }
            let ts = absolute(r);
            max_timestamp = max_timestamp.max(ts);
            let moved = Record {
                timestamp_delta: ts.wrapping_sub(base_timestamp),
                ..r.clone()
            };
            moved.write(&mut encoded);
        }
        let codec = h.compression()?;
        let payload = match codec {
            crate::Compression::None => encoded,
            c => c.compress(&encoded)?,
        };
        let max_timestamp = match h.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => max_timestamp,
        };
        let header = BatchHeader {
            batch_length: batch_length(payload.len())?,
            crc: 0,
            attributes,
            base_timestamp,
            max_timestamp,
            records_count: count,
            ..*h
        };
        finish(header, &payload)
    }

    /// A batch with this batch's header and no records (Kafka's
    /// `DefaultRecordBatch.writeEmptyHeader`): same offset range, producer id, epoch and base
    /// sequence, leader epoch, timestamp type, transactional and control bits; uncompressed,
    /// with the max timestamp as both base and max timestamp. The log cleaner keeps such a
    /// batch when it holds an idempotent producer's last sequence.
    pub fn empty_like(&self) -> Result<RecordBatch> {
        let h = self.header();
        let header = BatchHeader {
            batch_length: batch_length(0)?,
            crc: 0,
            attributes: h.attributes & !COMPRESSION_MASK & !DELETE_HORIZON_BIT,
            base_timestamp: h.max_timestamp,
            records_count: 0,
            ..*h
        };
        finish(header, &[])
    }
}

fn batch_length(payload: usize) -> Result<i32> {
    i32::try_from(BATCH_HEADER_LEN + payload - LOG_OVERHEAD)
        .map_err(|_| RecordsError::InvalidArgument("batch larger than 2 GiB".into()))
}

fn finish(header: BatchHeader, payload: &[u8]) -> Result<RecordBatch> {
    let mut buf = vec![0u8; BATCH_HEADER_LEN + payload.len()];
    header.write(&mut buf)?;
    buf[BATCH_HEADER_LEN..].copy_from_slice(payload);
    recompute_crc(&mut buf)?;
    RecordBatch::new(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use crate::{
        Compression, LeaderEpoch, Offset, ProducerEpoch, ProducerId, Record, RecordBatchBuilder,
        TimestampType,
    };

    use super::*;

    fn batch(codec: Compression) -> RecordBatch {
        RecordBatchBuilder::new()
            .compression(codec)
            .base_offset(Offset(100))
            .leader_epoch(LeaderEpoch(4))
            .producer(ProducerId(9), ProducerEpoch(2), 30)
            .key_value(1_000, Some(b"a"), Some(b"1"))
            .key_value(1_050, Some(b"b"), None)
            .key_value(1_020, Some(b"c"), Some(b"3"))
            .key_value(1_010, Some(b"d"), Some(b"4"))
            .build()
            .unwrap()
    }

    fn records(b: &RecordBatch) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
        let h = *b.header();
        b.records()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.offset(&h).0, r.timestamp(&h), r.key, r.value)
            })
            .collect()
    }

    #[test]
    fn retained_subset_keeps_offsets_timestamps_and_producer_fields() {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let b = batch(codec);
            let all: Vec<Record> = b.records().unwrap().map(|r| r.unwrap()).collect();
            let keep = vec![all[1].clone(), all[2].clone()];
            let out = b.with_retained_records(&keep, None).unwrap();
            out.validate().unwrap();
            let (h, o) = (b.header(), out.header());
            assert_eq!(o.base_offset, 100);
            assert_eq!(o.last_offset_delta, 3, "the offset range is kept");
            assert_eq!(o.records_count, 2);
            assert_eq!(
                (o.producer_id, o.producer_epoch, o.base_sequence),
                (h.producer_id, h.producer_epoch, h.base_sequence)
            );
            assert_eq!(o.partition_leader_epoch, 4);
            assert_eq!(o.compression().unwrap(), codec);
            assert_eq!(o.max_timestamp, 1_050);
            assert!(!o.has_delete_horizon());
            let want: Vec<_> = records(&b).into_iter().skip(1).take(2).collect();
            assert_eq!(records(&out), want);
        }
    }

    #[test]
    fn delete_horizon_rebases_timestamps() {
        let b = batch(Compression::None);
        let all: Vec<Record> = b.records().unwrap().map(|r| r.unwrap()).collect();
        let out = b.with_retained_records(&all, Some(90_000)).unwrap();
        out.validate().unwrap();
        assert_eq!(out.header().delete_horizon_ms(), Some(90_000));
        assert_eq!(records(&out), records(&b));
        // A second rewrite keeps the horizon it found.
        let again: Vec<Record> = out.records().unwrap().map(|r| r.unwrap()).collect();
        let out2 = out.with_retained_records(&again[..1], None).unwrap();
        assert_eq!(out2.header().delete_horizon_ms(), Some(90_000));
        assert_eq!(records(&out2), records(&b)[..1].to_vec());
    }

    #[test]
    fn empty_like_keeps_the_header_range() {
        let b = batch(Compression::Gzip);
        let e = b.empty_like().unwrap();
        e.validate().unwrap();
        let h = e.header();
        assert_eq!(h.records_count, 0);
        assert_eq!(h.last_offset().0, 103);
        assert_eq!(h.base_sequence, 30);
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(e.records().unwrap().count(), 0);
    }

    #[test]
    fn foreign_offset_delta_is_refused() {
        let b = batch(Compression::None);
        let bad = Record {
            offset_delta: 4,
            ..Record::default()
        };
        assert!(b.with_retained_records(&[bad], None).is_err());
        assert!(b.with_retained_records(&[], None).is_err());
    }
}
