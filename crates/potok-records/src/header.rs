//! The fixed 61-byte RecordBatch v2 header.
//!
//! Layout (all integers big-endian; byte offsets from the start of the batch):
//!
//! | offset | size | field                |
//! |-------:|-----:|----------------------|
//! |      0 |    8 | baseOffset           |
//! |      8 |    4 | batchLength          |
//! |     12 |    4 | partitionLeaderEpoch |
//! |     16 |    1 | magic (= 2)          |
//! |     17 |    4 | crc (CRC-32C of bytes 21..end) |
//! |     21 |    2 | attributes           |
//! |     23 |    4 | lastOffsetDelta      |
//! |     27 |    8 | baseTimestamp        |
//! |     35 |    8 | maxTimestamp         |
//! |     43 |    8 | producerId           |
//! |     51 |    2 | producerEpoch        |
//! |     53 |    4 | baseSequence         |
//! |     57 |    4 | recordsCount         |
//!
//! `batchLength` counts the bytes after itself, so a whole batch is `batchLength + 12` bytes
//! ([`LOG_OVERHEAD`]). Magic sits at byte 16 in the legacy v0/v1 message format too, which is
//! how a legacy message is recognised and refused before anything else is read.

use crate::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, RecordsError, Result};

/// Size of the fixed part of a v2 batch, before the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s coverage starts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// The smallest valid `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only supported magic value.
pub const MAGIC_V2: i8 = 2;

pub(crate) const BASE_OFFSET_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH_OFFSET: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub(crate) const BASE_TIMESTAMP_OFFSET: usize = 27;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
pub(crate) const PRODUCER_ID_OFFSET: usize = 43;
pub(crate) const PRODUCER_EPOCH_OFFSET: usize = 51;
pub(crate) const BASE_SEQUENCE_OFFSET: usize = 53;
pub(crate) const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits (Kafka `DefaultRecordBatch`): bits 0-2 codec, bit 3 timestamp type,
/// bit 4 transactional, bit 5 control, bit 6 delete horizon set (KIP-534).
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec of a batch (attribute bits 0-2), with the ids Kafka assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Uncompressed (0).
    #[default]
    None,
    /// gzip (1).
    Gzip,
    /// snappy (2), in the xerial framing the Java client writes.
    Snappy,
    /// lz4 (3), in the LZ4 frame format.
    Lz4,
    /// zstd (4), KIP-110.
    Zstd,
}

impl Compression {
    /// The codec id stored in the attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an id; 5-7 are unassigned and rejected.
    pub fn from_id(id: u8) -> Result<Compression> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(RecordsError::UnknownCompression(other)),
        })
    }

    /// The lowercase name Kafka uses in `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Whether timestamps were set by the producer or by the broker on append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's timestamps (`message.timestamp.type=CreateTime`).
    #[default]
    CreateTime,
    /// The broker overwrote the max timestamp on append (`LogAppendTime`).
    LogAppendTime,
}

/// The parsed fixed header of a v2 record batch. Field names follow Kafka's
/// `DefaultRecordBatch`; see the module docs for the byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes following this field (whole batch size minus 12).
    pub batch_length: i32,
    /// Leader epoch of the appending leader.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 for a parsed header.
    pub magic: i8,
    /// CRC-32C over bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// `lastOffset - baseOffset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when bit 6 is set).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the append time for `LogAppendTime`.
    pub max_timestamp: i64,
    /// Producer id, `-1` when not idempotent.
    pub producer_id: i64,
    /// Producer epoch, `-1` when not idempotent.
    pub producer_epoch: i16,
    /// Sequence number of the first record, `-1` when not idempotent.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

pub(crate) fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

pub(crate) fn read_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

pub(crate) fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf` (which may hold more bytes).
    ///
    /// Refuses magic other than 2 with [`RecordsError::UnsupportedMagic`] as soon as byte 16 is
    /// available (legacy messages can be shorter than 61 bytes), reports a short buffer as
    /// [`RecordsError::Truncated`] and a `batchLength` below [`MIN_BATCH_LENGTH`] as
    /// [`RecordsError::InvalidBatchLength`]. It does not check the CRC; see
    /// [`crate::RecordBatch::validate`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() > MAGIC_OFFSET {
            let magic = buf[MAGIC_OFFSET] as i8;
            if magic != MAGIC_V2 {
                return Err(RecordsError::UnsupportedMagic(magic));
            }
        }
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordsError::Truncated {
                position: 0,
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        // The slice indexing below cannot fail: the length was checked against the largest
        // field end (61) above.
        let header = BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: read_i32(buf, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: read_i32(buf, CRC_OFFSET) as u32,
            attributes: read_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: read_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: read_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: read_i32(buf, RECORDS_COUNT_OFFSET),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(RecordsError::InvalidBatchLength {
                length: header.batch_length,
                reason: "smaller than the 49 bytes a batch header needs after the length field",
            });
        }
        Ok(header)
    }

    /// Writes this header into the first 61 bytes of `out` exactly as stored (the CRC field is
    /// written as given; call [`crate::recompute_crc`] on the whole batch afterwards).
    pub fn write(&self, out: &mut [u8]) -> Result<()> {
        let out = out
            .get_mut(..BATCH_HEADER_LEN)
            .ok_or(RecordsError::InvalidArgument(format!(
                "a batch header needs {BATCH_HEADER_LEN} bytes"
            )))?;
        out[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        out[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out[16] = self.magic as u8;
        out[17..21].copy_from_slice(&self.crc.to_be_bytes());
        out[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        out[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        out[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        out[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        out[57..61].copy_from_slice(&self.records_count.to_be_bytes());
        Ok(())
    }

    /// The codec from attribute bits 0-2.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// Timestamp type from attribute bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attribute bit 4: the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attribute bit 5: the batch holds a control record (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Attribute bit 6 (KIP-534): `base_timestamp` holds the delete horizon for tombstones.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> Offset {
        Offset(self.base_offset)
    }

    /// Offset of the last record: `base_offset + last_offset_delta` (saturating, so a hostile
    /// header cannot make it wrap).
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset).saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset following this batch (`last_offset + 1`), where the next batch starts.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().saturating_add(1)
    }

    /// Partition leader epoch as a newtype.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.partition_leader_epoch)
    }

    /// Producer id as a newtype.
    pub fn producer_id(&self) -> ProducerId {
        ProducerId(self.producer_id)
    }

    /// Producer epoch as a newtype.
    pub fn producer_epoch(&self) -> ProducerEpoch {
        ProducerEpoch(self.producer_epoch)
    }

    /// Size of the whole batch in bytes: `batch_length + 12`. A header from [`Self::parse`]
    /// always has a valid length; a hand-built one with a negative length counts as just the
    /// 12-byte overhead rather than wrapping.
    pub fn total_size(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> BatchHeader {
        BatchHeader {
            base_offset: 0x0102030405060708,
            batch_length: 49,
            partition_leader_epoch: 7,
            magic: 2,
            crc: 0xdeadbeef,
            attributes: 0x0013,
            last_offset_delta: 4,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_123,
            producer_id: 99,
            producer_epoch: 3,
            base_sequence: 10,
            records_count: 5,
        }
    }

    #[test]
    fn write_then_parse_roundtrips() {
        let h = sample();
        let mut buf = [0u8; BATCH_HEADER_LEN];
        h.write(&mut buf).unwrap();
        assert_eq!(BatchHeader::parse(&buf).unwrap(), h);
        // Spot-check positions against the documented layout.
        assert_eq!(&buf[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(buf[16], 2);
        assert_eq!(&buf[17..21], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&buf[57..61], &[0, 0, 0, 5]);
    }

    #[test]
    fn attribute_helpers() {
        let h = sample();
        assert_eq!(h.compression().unwrap(), Compression::Lz4);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert_eq!(h.last_offset(), Offset(0x0102030405060708 + 4));
        assert_eq!(h.total_size(), 61);
        let h2 = BatchHeader {
            attributes: 0x0028 | 5,
            ..h
        };
        assert_eq!(h2.timestamp_type(), TimestampType::LogAppendTime);
        assert!(h2.is_control());
        assert_eq!(h2.compression(), Err(RecordsError::UnknownCompression(5)));
    }

    #[test]
    fn parse_refuses_legacy_magic_even_when_short() {
        // A magic-1 message can be shorter than a v2 header; refuse it by magic, not length.
        let mut buf = [0u8; 34];
        buf[16] = 1;
        assert_eq!(
            BatchHeader::parse(&buf),
            Err(RecordsError::UnsupportedMagic(1))
        );
        buf[16] = 0;
        let err = BatchHeader::parse(&buf).unwrap_err();
        assert!(err.to_string().contains("removed in Kafka 4.0"), "{err}");
    }

    #[test]
    fn parse_reports_short_buffer_and_bad_length() {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        sample().write(&mut buf).unwrap();
        assert!(matches!(
            BatchHeader::parse(&buf[..60]),
            Err(RecordsError::Truncated {
                needed: 61,
                available: 60,
                ..
            })
        ));
        let bad = BatchHeader {
            batch_length: 48,
            ..sample()
        };
        bad.write(&mut buf).unwrap();
        assert!(matches!(
            BatchHeader::parse(&buf),
            Err(RecordsError::InvalidBatchLength { length: 48, .. })
        ));
        let neg = BatchHeader {
            batch_length: -1,
            ..sample()
        };
        assert_eq!(neg.total_size(), 12);
    }

    #[test]
    fn last_offset_saturates_on_hostile_header() {
        let h = BatchHeader {
            base_offset: i64::MAX - 1,
            last_offset_delta: i32::MAX,
            ..sample()
        };
        assert_eq!(h.last_offset(), Offset(i64::MAX));
    }
}
