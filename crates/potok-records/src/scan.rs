//! The leader's per-record checks of a batch a client produced, and the batch's true maximum
//! timestamp, in one pass that allocates nothing per record ([`RecordBatch::scan_records`]).
//!
//! This is the record half of Kafka's `LogValidator` (`assignOffsetsNonCompressed` and
//! `validateMessagesAndAssignOffsetsCompressed`): every record is walked, its structure
//! checked, a compacted topic's records must have a key, a `CreateTime` record's timestamp must
//! lie within `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` of the
//! broker's clock (KIP-937), a producer may not mark a batch `LogAppendTime`, and the maximum
//! record timestamp is recomputed, because a client's header may carry a bogus one (librdkafka
//! has sent `maxTimestamp = 0` with real record times). Keys, values and headers are skipped
//! over, never copied, like Kafka's `skipKeyValueIterator`; a compressed batch is decompressed
//! once into one buffer.

use crate::varint::{corrupt, SliceReader};
use crate::{Compression, RecordBatch, RecordsError, Result, TimestampType};

/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record (or batch) without a timestamp.
pub const NO_TIMESTAMP: i64 = -1;

/// What [`RecordBatch::scan_records`] checks in each record besides its structure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordChecks {
    /// The topic is compacted (`cleanup.policy` contains `compact`): every record needs a key.
    pub require_key: bool,
    /// The topic keeps producer timestamps (`message.timestamp.type=CreateTime`): record
    /// timestamps are checked against this window. `None` for `LogAppendTime` topics, whose
    /// records get the broker's time instead.
    pub create_time_window: Option<TimestampWindow>,
}

/// The accepted range of `CreateTime` record timestamps around the broker's clock (KIP-937).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampWindow {
    /// The broker's clock, in ms since the epoch.
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms`: how far a timestamp may lie in the past.
    pub before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far a timestamp may lie in the future.
    pub after_max_ms: i64,
}

impl TimestampWindow {
    /// Whether `timestamp` is inside the window (Kafka's `recordHasInvalidTimestamp`, computed
    /// without overflow). `Long.MAX_VALUE`, Kafka's default for the past, means no bound at
    /// all, as it does in Kafka.
    pub fn contains(&self, timestamp: i64) -> bool {
        let diff = i128::from(self.now_ms) - i128::from(timestamp);
        (self.before_max_ms == i64::MAX || diff <= i128::from(self.before_max_ms))
            && (self.after_max_ms == i64::MAX || -diff <= i128::from(self.after_max_ms))
    }

    /// The lowest accepted timestamp, for messages (saturating).
    pub fn min(&self) -> i64 {
        self.now_ms.saturating_sub(self.before_max_ms)
    }

    /// The highest accepted timestamp, for messages (saturating).
    pub fn max(&self) -> i64 {
        self.now_ms.saturating_add(self.after_max_ms)
    }
}

/// Why one record makes the leader refuse its batch. The broker turns each into an entry of
/// the ProduceResponse's `record_errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFaultKind {
    /// A record without a key on a compacted topic (Kafka: `INVALID_RECORD`).
    MissingKey,
    /// A `CreateTime` timestamp outside the topic's window (Kafka: `INVALID_TIMESTAMP`).
    TimestampOutOfRange {
        /// The record's timestamp.
        timestamp: i64,
        /// The record's offset as the client wrote it (base offset plus delta).
        offset: i64,
    },
    /// The producer marked the batch `LogAppendTime`, which only a broker may set (Kafka:
    /// `INVALID_TIMESTAMP`).
    LogAppendTimeFromProducer,
}

/// One refused record: its index within the batch and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFault {
    /// Position of the record in the batch, from 0 (the protocol's `batch_index`).
    pub index: i32,
    /// What is wrong with it.
    pub kind: RecordFaultKind,
}

/// The outcome of a scan that found the batch well-formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordsScan {
    /// The largest record timestamp, or [`NO_TIMESTAMP`] when no record has one.
    pub max_timestamp: i64,
    /// Index of the first record carrying `max_timestamp` (-1 when there is none).
    pub index_of_max_timestamp: i32,
    /// Records refused by the checks, in batch order; empty when the batch is acceptable.
    /// Kafka reports them all, and librdkafka fails exactly those records with the error and
    /// the others of the batch with `_INVALID_DIFFERENT_RECORD`.
    pub faults: Vec<RecordFault>,
}

impl RecordBatch {
    /// Walks every record once: checks its structure (lengths within bounds, exactly
    /// `recordsCount` records and no bytes left over), applies `checks`, and computes the true
    /// maximum timestamp (for a `LogAppendTime` batch every record's timestamp is the header's
    /// max timestamp, as readers see it). A compressed batch is decompressed once, at most
    /// `max_decompressed` bytes.
    ///
    /// A malformed record is an error ([`RecordsError::Corrupt`]); refused but well-formed
    /// records are reported in [`RecordsScan::faults`].
    pub fn scan_records(
        &self,
        checks: &RecordChecks,
        max_decompressed: usize,
    ) -> Result<RecordsScan> {
        let header = self.header();
        let payload = self.records_payload();
        let decompressed;
        let records: &[u8] = match header.compression()? {
            Compression::None => {
                if payload.len() > max_decompressed {
                    return Err(RecordsError::DecompressedTooLarge {
                        limit: max_decompressed,
                    });
                }
                &payload
            }
            codec => {
                decompressed = codec.decompress(&payload, max_decompressed)?;
                &decompressed
            }
        };
        let count = u32::try_from(header.records_count)
            .map_err(|_| corrupt(format!("negative record count {}", header.records_count)))?;
        let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
        let mut scan = RecordsScan {
            max_timestamp: NO_TIMESTAMP,
            index_of_max_timestamp: -1,
            faults: Vec::new(),
        };
        let mut r = SliceReader::new(records);
        for index in 0..count {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let (timestamp_delta, offset_delta, has_key) = skip_record(&mut r)?;
            let timestamp = if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(timestamp_delta)
            };
            if timestamp > scan.max_timestamp {
                scan.max_timestamp = timestamp;
                scan.index_of_max_timestamp = index;
            }
            // Kafka's order: the key first, then the timestamp; one fault per record.
            let kind = if checks.require_key && !has_key {
                Some(RecordFaultKind::MissingKey)
            } else {
                match checks.create_time_window {
                    Some(w) if timestamp != NO_TIMESTAMP => {
                        (!w.contains(timestamp)).then_some(RecordFaultKind::TimestampOutOfRange {
                            timestamp,
                            offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
                        })
                    }
                    _ => log_append_time.then_some(RecordFaultKind::LogAppendTimeFromProducer),
                }
            };
            if let Some(kind) = kind {
                scan.faults.push(RecordFault { index, kind });
            }
        }
        if r.remaining() != 0 {
            return Err(corrupt(format!(
                "{} bytes remain after the declared number of records",
                r.remaining()
            )));
        }
        Ok(scan)
    }
}

/// Steps over one record (the layout in [`crate::record`]'s module docs), checking every
/// length, and returns its timestamp delta, offset delta and whether it has a key.
fn skip_record(r: &mut SliceReader<'_>) -> Result<(i64, i32, bool)> {
    let len = r.read_varint("record length")?;
    let len = usize::try_from(len).map_err(|_| corrupt(format!("negative record length {len}")))?;
    let mut b = SliceReader::new(r.take(len, "record")?);
    b.read_i8("record attributes")?;
    let timestamp_delta = b.read_varlong("timestamp delta")?;
    let offset_delta = b.read_varint("offset delta")?;
    let has_key = b.skip_nullable_bytes("record key")?;
    b.skip_nullable_bytes("record value")?;
    let count = b.read_varint("header count")?;
    let count =
        usize::try_from(count).map_err(|_| corrupt(format!("negative header count {count}")))?;
    // Each header takes at least two bytes, so the remaining bytes bound the count.
    if count > b.remaining() / 2 {
        return Err(corrupt(format!(
            "header count {count} cannot fit in the {} bytes remaining",
            b.remaining()
        )));
    }
    for _ in 0..count {
        let key_len = b.read_varint("header key length")?;
        let key_len = usize::try_from(key_len)
            .map_err(|_| corrupt(format!("negative header key length {key_len}")))?;
        b.take(key_len, "header key")?;
        b.skip_nullable_bytes("header value")?;
    }
    if b.remaining() != 0 {
        return Err(corrupt(format!(
            "record declares {len} bytes but its fields use {}",
            b.position()
        )));
    }
    Ok((timestamp_delta, offset_delta, has_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        recompute_crc, set_max_timestamp, Header, NewRecord, RecordBatchBuilder, BATCH_HEADER_LEN,
    };
    use bytes::Bytes;

    const T: i64 = 1_700_000_000_000;

    fn window(before: i64, after: i64) -> Option<TimestampWindow> {
        Some(TimestampWindow {
            now_ms: T,
            before_max_ms: before,
            after_max_ms: after,
        })
    }

    fn build(compression: Compression, records: &[(i64, Option<&[u8]>)]) -> RecordBatch {
        let mut b = RecordBatchBuilder::new().compression(compression);
        for (ts, key) in records {
            b = b.key_value(*ts, *key, Some(b"value"));
        }
        b.build().unwrap()
    }

    /// Overwrites the header's max timestamp the way a careless client does.
    fn with_header_max(batch: &RecordBatch, max: i64) -> RecordBatch {
        let mut v = batch.as_bytes().to_vec();
        v[35..43].copy_from_slice(&max.to_be_bytes());
        recompute_crc(&mut v).unwrap();
        RecordBatch::new(Bytes::from(v)).unwrap()
    }

    #[test]
    fn recomputes_the_max_timestamp_whatever_the_header_says() {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let good = build(
                codec,
                &[
                    (T, Some(b"a")),
                    (T + 7, Some(b"b")),
                    (T + 7, Some(b"c")),
                    (T + 3, Some(b"d")),
                ],
            );
            for bogus in [0, -1, T + 1_000_000] {
                let b = with_header_max(&good, bogus);
                let scan = b.scan_records(&RecordChecks::default(), 1 << 20).unwrap();
                assert_eq!(scan.max_timestamp, T + 7, "{codec:?}");
                assert_eq!(scan.index_of_max_timestamp, 1, "first record with the max");
                assert!(scan.faults.is_empty());
            }
        }
    }

    #[test]
    fn records_without_timestamps_have_no_max() {
        let b = build(Compression::None, &[(-1, Some(b"a")), (-1, Some(b"b"))]);
        let scan = b
            .scan_records(
                &RecordChecks {
                    create_time_window: window(0, 0),
                    ..Default::default()
                },
                1 << 20,
            )
            .unwrap();
        assert_eq!(
            (scan.max_timestamp, scan.index_of_max_timestamp),
            (NO_TIMESTAMP, -1)
        );
        // NO_TIMESTAMP is exempt from the window, as in Kafka.
        assert!(scan.faults.is_empty());
    }

    #[test]
    fn compacted_topics_need_keys_and_every_fault_is_reported() {
        let recs: Vec<(i64, Option<&[u8]>)> = (0..10)
            .map(|i| (T, if i % 4 == 0 { None } else { Some(&b"k"[..]) }))
            .collect();
        for codec in [Compression::None, Compression::Gzip] {
            let b = build(codec, &recs);
            let checks = RecordChecks {
                require_key: true,
                ..Default::default()
            };
            let scan = b.scan_records(&checks, 1 << 20).unwrap();
            let idx: Vec<i32> = scan.faults.iter().map(|f| f.index).collect();
            assert_eq!(idx, vec![0, 4, 8], "{codec:?}");
            assert!(scan
                .faults
                .iter()
                .all(|f| f.kind == RecordFaultKind::MissingKey));
            // An empty key is a key.
            let b = build(codec, &[(T, Some(b""))]);
            assert!(b.scan_records(&checks, 1 << 20).unwrap().faults.is_empty());
        }
    }

    #[test]
    fn timestamp_window_is_kip_937() {
        let b = build(
            Compression::None,
            &[
                (T - 1001, Some(b"a")),
                (T - 1000, Some(b"b")),
                (T + 10, Some(b"c")),
                (T + 11, Some(b"d")),
            ],
        );
        let scan = b
            .scan_records(
                &RecordChecks {
                    create_time_window: window(1000, 10),
                    ..Default::default()
                },
                1 << 20,
            )
            .unwrap();
        assert_eq!(
            scan.faults,
            vec![
                RecordFault {
                    index: 0,
                    kind: RecordFaultKind::TimestampOutOfRange {
                        timestamp: T - 1001,
                        offset: 0
                    }
                },
                RecordFault {
                    index: 3,
                    kind: RecordFaultKind::TimestampOutOfRange {
                        timestamp: T + 11,
                        offset: 3
                    }
                },
            ]
        );
        // The default window (Long.MAX_VALUE both ways) never overflows.
        let wide = TimestampWindow {
            now_ms: T,
            before_max_ms: i64::MAX,
            after_max_ms: i64::MAX,
        };
        assert!(wide.contains(i64::MIN) && wide.contains(i64::MAX));
    }

    #[test]
    fn producers_may_not_send_log_append_time() {
        let b = build(Compression::None, &[(T, Some(b"a"))]);
        let mut v = b.as_bytes().to_vec();
        set_max_timestamp(&mut v, TimestampType::LogAppendTime, T).unwrap();
        let b = RecordBatch::new(Bytes::from(v)).unwrap();
        // On a LogAppendTime topic (no window) it is refused ...
        let scan = b.scan_records(&RecordChecks::default(), 1 << 20).unwrap();
        assert_eq!(
            scan.faults[0].kind,
            RecordFaultKind::LogAppendTimeFromProducer
        );
        // ... on a CreateTime topic a valid timestamp passes, and the header max is the time.
        let scan = b
            .scan_records(
                &RecordChecks {
                    create_time_window: window(i64::MAX, i64::MAX),
                    ..Default::default()
                },
                1 << 20,
            )
            .unwrap();
        assert!(scan.faults.is_empty());
        assert_eq!(scan.max_timestamp, T);
    }

    #[test]
    fn malformed_records_are_errors() {
        let good = build(Compression::None, &[(T, Some(b"a")), (T, Some(b"b"))]);
        // Claim one record more than there is, and one less (bytes left over).
        for count in [3i32, 1] {
            let mut v = good.as_bytes().to_vec();
            v[57..61].copy_from_slice(&count.to_be_bytes());
            recompute_crc(&mut v).unwrap();
            let b = RecordBatch::new(Bytes::from(v)).unwrap();
            assert!(
                matches!(
                    b.scan_records(&RecordChecks::default(), 1 << 20),
                    Err(RecordsError::Corrupt(_))
                ),
                "count {count}"
            );
        }
        // Every truncation of the records section inside a record is an error, never a panic.
        let bytes = good.as_bytes().to_vec();
        for cut in BATCH_HEADER_LEN..bytes.len() {
            let mut v = bytes[..cut].to_vec();
            let len = (cut - 12) as i32;
            v[8..12].copy_from_slice(&len.to_be_bytes());
            recompute_crc(&mut v).unwrap();
            let b = RecordBatch::new(Bytes::from(v)).unwrap();
            assert!(
                b.scan_records(&RecordChecks::default(), 1 << 20).is_err(),
                "cut {cut}"
            );
        }
        // The decompression limit applies to uncompressed batches too.
        assert!(matches!(
            good.scan_records(&RecordChecks::default(), 10),
            Err(RecordsError::DecompressedTooLarge { limit: 10 })
        ));
    }

    #[test]
    fn headers_are_stepped_over() {
        let b = RecordBatchBuilder::new()
            .record(NewRecord {
                timestamp: T + 5,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: vec![
                    Header {
                        key: Bytes::from_static(b"h1"),
                        value: Some(Bytes::from_static(b"x")),
                    },
                    Header {
                        key: Bytes::from_static(b"h2"),
                        value: None,
                    },
                ],
            })
            .build()
            .unwrap();
        let scan = b.scan_records(&RecordChecks::default(), 1 << 20).unwrap();
        assert_eq!(scan.max_timestamp, T + 5);
    }
}
