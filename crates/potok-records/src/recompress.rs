//! [`RecordBatch::recompress`]: the same batch with its records section in another codec, as a
//! Kafka broker rewrites a batch whose codec differs from the topic's `compression.type`
//! (`LogValidator.validateMessagesAndAssignOffsetsCompressed`).
//!
//! Only the records section changes. Every header field is kept — base offset, leader epoch,
//! last offset delta, both timestamps, producer id, epoch and base sequence, record count, the
//! timestamp-type, transactional and control bits — so offsets, timestamps, headers and
//! idempotence state are exactly those of the original batch. The records themselves are
//! copied byte for byte (the record encoding does not depend on the codec); only the codec
//! bits, the batch length and the CRC are new.

use bytes::Bytes;

use crate::header::COMPRESSION_MASK;
use crate::record::Records;
use crate::{
    recompute_crc, BatchHeader, Compression, RecordBatch, RecordsError, Result, BATCH_HEADER_LEN,
    LOG_OVERHEAD,
};

impl RecordBatch {
    /// This batch with its records compressed by `target` at `level` (see
    /// [`Compression::compress_level`]). The records are decompressed at most up to
    /// `max_decompressed` bytes and every record is parsed, so a batch whose records are
    /// malformed is refused ([`RecordsError`]) instead of being re-wrapped. A batch already in
    /// `target` is returned as it is.
    pub fn recompress(
        &self,
        target: Compression,
        level: Option<i32>,
        max_decompressed: usize,
    ) -> Result<RecordBatch> {
        let source = self.header().compression()?;
        if source == target {
            return Ok(self.clone());
        }
        let payload = self.records_payload();
        let plain = match source {
            Compression::None => {
                if payload.len() > max_decompressed {
                    return Err(RecordsError::DecompressedTooLarge {
                        limit: max_decompressed,
                    });
                }
                payload
            }
            codec => Bytes::from(codec.decompress(&payload, max_decompressed)?),
        };
        // Kafka's LogValidator reads every record while recompressing; so does this.
        for record in Records::new(plain.clone(), self.header().records_count)? {
            record?;
        }
        let section = match target {
            Compression::None => plain.to_vec(),
            codec => codec.compress_level(&plain, level)?,
        };
        let total = BATCH_HEADER_LEN + section.len();
        let batch_length = i32::try_from(total - LOG_OVERHEAD)
            .map_err(|_| RecordsError::InvalidArgument("batch larger than 2 GiB".into()))?;
        let header = BatchHeader {
            batch_length,
            crc: 0,
            attributes: (self.header().attributes & !COMPRESSION_MASK) | i16::from(target.id()),
            ..*self.header()
        };
        let mut buf = vec![0u8; total];
        header.write(&mut buf)?;
        buf[BATCH_HEADER_LEN..].copy_from_slice(&section);
        recompute_crc(&mut buf)?;
        RecordBatch::new(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Header, LeaderEpoch, NewRecord, Offset, ProducerEpoch, ProducerId, Record,
        RecordBatchBuilder, TimestampType,
    };

    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn batch(codec: Compression) -> RecordBatch {
        RecordBatchBuilder::new()
            .compression(codec)
            .base_offset(Offset(40))
            .leader_epoch(LeaderEpoch(2))
            .producer(ProducerId(7), ProducerEpoch(1), 12)
            .transactional(true)
            .key_value(1_000, Some(b"k1"), Some(b"one"))
            .record(NewRecord {
                timestamp: 1_010,
                key: None,
                value: Some(Bytes::from(vec![b'x'; 3000])),
                headers: vec![Header {
                    key: Bytes::from_static(b"h"),
                    value: Some(Bytes::from_static(b"v")),
                }],
            })
            .key_value(990, Some(b"k3"), None)
            .build()
            .unwrap()
    }

    #[test]
    fn every_codec_to_every_codec_keeps_every_field_and_record() {
        for from in ALL {
            let original = batch(from);
            let records: Vec<Record> = original.records().unwrap().map(|r| r.unwrap()).collect();
            for to in ALL {
                let level = (to == Compression::Zstd).then_some(5);
                let out = original.recompress(to, level, 1 << 20).unwrap();
                out.validate().unwrap();
                out.validate_client_batch().unwrap();
                let (a, b) = (original.header(), out.header());
                assert_eq!(b.compression().unwrap(), to, "{from:?} -> {to:?}");
                assert_eq!(
                    BatchHeader {
                        batch_length: 0,
                        crc: 0,
                        attributes: b.attributes & !COMPRESSION_MASK,
                        ..*b
                    },
                    BatchHeader {
                        batch_length: 0,
                        crc: 0,
                        attributes: a.attributes & !COMPRESSION_MASK,
                        ..*a
                    },
                    "{from:?} -> {to:?}"
                );
                assert!(b.is_transactional());
                assert_eq!(b.timestamp_type(), TimestampType::CreateTime);
                let again: Vec<Record> = out.records().unwrap().map(|r| r.unwrap()).collect();
                assert_eq!(again, records, "{from:?} -> {to:?}");
                if from == to {
                    assert_eq!(out.as_bytes(), original.as_bytes());
                }
            }
        }
    }

    #[test]
    fn compression_actually_happens_and_limits_hold() {
        let plain = batch(Compression::None);
        let zstd = plain.recompress(Compression::Zstd, None, 1 << 20).unwrap();
        assert!(
            zstd.len() < plain.len() / 2,
            "{} vs {}",
            zstd.len(),
            plain.len()
        );
        assert_eq!(
            zstd.recompress(Compression::Gzip, None, 100).unwrap_err(),
            RecordsError::DecompressedTooLarge { limit: 100 }
        );
        assert_eq!(
            plain
                .recompress(Compression::Gzip, Some(9), 100)
                .unwrap_err(),
            RecordsError::DecompressedTooLarge { limit: 100 }
        );
    }

    #[test]
    fn malformed_records_are_refused_not_rewrapped() {
        // A valid header and CRC over records that do not parse.
        let mut bytes = batch(Compression::None).as_bytes().to_vec();
        let len = bytes.len();
        bytes[BATCH_HEADER_LEN..len].fill(0xff);
        recompute_crc(&mut bytes).unwrap();
        let bad = RecordBatch::new(Bytes::from(bytes)).unwrap();
        bad.validate().unwrap();
        assert!(bad.recompress(Compression::Zstd, None, 1 << 20).is_err());
    }
}
