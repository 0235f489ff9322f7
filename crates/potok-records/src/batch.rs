//! [`RecordBatch`] (one whole batch over `Bytes`) and [`split_batches`] over a buffer of
//! concatenated batches.

use bytes::Bytes;

use crate::compression::DEFAULT_MAX_DECOMPRESSED_BYTES;
use crate::header::{ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, MAGIC_OFFSET};
use crate::{
    BatchHeader, Compression, Records, RecordsError, Result, BATCH_HEADER_LEN, LOG_OVERHEAD,
    MAGIC_V2, MIN_BATCH_LENGTH,
};

/// One complete v2 record batch, held as `Bytes` so it can be passed from socket to segment
/// without copying. The header is parsed once on construction; the CRC is only checked by
/// [`RecordBatch::validate`], because a follower or a recovery scan may want to decide when
/// to pay for it.
///
/// Invariant: `bytes.len() == header.total_size()` and the header's magic is 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
    header: BatchHeader,
}

impl RecordBatch {
    /// Wraps `bytes`, which must hold exactly one batch (header plus `batchLength - 49` bytes of
    /// records). A shorter buffer is [`RecordsError::Truncated`], a longer one an
    /// [`RecordsError::InvalidBatchLength`]; use [`split_batches`] for concatenated batches.
    pub fn new(bytes: Bytes) -> Result<RecordBatch> {
        let header = BatchHeader::parse(&bytes)?;
        let total = header.total_size();
        if bytes.len() < total {
            return Err(RecordsError::Truncated {
                position: 0,
                needed: total,
                available: bytes.len(),
            });
        }
        if bytes.len() > total {
            return Err(RecordsError::InvalidBatchLength {
                length: header.batch_length,
                reason: "buffer holds more bytes than the batch length declares",
            });
        }
        Ok(RecordBatch { bytes, header })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, header included, exactly as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives back the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The bytes after the 61-byte header: the records, compressed or not.
    pub fn records_payload(&self) -> Bytes {
        self.bytes.slice(BATCH_HEADER_LEN..)
    }

    /// Size of the whole batch in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a batch has at least its header. Present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The CRC-32C the batch's bytes actually have (attributes to the end).
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    /// Iterates the records, decompressing first if the batch is compressed (at most
    /// [`DEFAULT_MAX_DECOMPRESSED_BYTES`]). Uncompressed batches are iterated without copying.
    pub fn records(&self) -> Result<Records> {
        self.records_with_limit(DEFAULT_MAX_DECOMPRESSED_BYTES)
    }

    /// Like [`Self::records`] with an explicit cap on the decompressed size; a batch that
    /// would decompress to more is [`RecordsError::DecompressedTooLarge`]. The cap also applies
    /// to an uncompressed batch's records section, so one limit governs both.
    pub fn records_with_limit(&self, max_decompressed: usize) -> Result<Records> {
        let payload = self.records_payload();
        let payload = match self.header.compression()? {
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
        Records::new(payload, self.header.records_count)
    }

    /// Checks what Kafka's `DefaultRecordBatch.ensureValid` checks, plus a non-negative record
    /// count: magic 2 and a sane length (both already enforced on construction, re-checked here
    /// so the method is self-contained), `recordsCount >= 0`, `lastOffsetDelta >= 0`, and the
    /// CRC-32C (Castagnoli) over bytes 21..end. It does not decompress or walk the records;
    /// [`RecordBatch::records`] checks those as it goes.
    pub fn validate(&self) -> Result<()> {
        if self.header.magic != MAGIC_V2 {
            return Err(RecordsError::UnsupportedMagic(self.header.magic));
        }
        if self.header.batch_length < MIN_BATCH_LENGTH
            || self.header.total_size() != self.bytes.len()
        {
            return Err(RecordsError::InvalidBatchLength {
                length: self.header.batch_length,
                reason: "does not match the batch's bytes",
            });
        }
        let computed = self.computed_crc();
        if computed != self.header.crc {
            return Err(RecordsError::CrcMismatch {
                stored: self.header.crc,
                computed,
            });
        }
        if self.header.records_count < 0 {
            return Err(RecordsError::Corrupt(format!(
                "negative record count {}",
                self.header.records_count
            )));
        }
        if self.header.last_offset_delta < 0 {
            return Err(RecordsError::Corrupt(format!(
                "negative last offset delta {}",
                self.header.last_offset_delta
            )));
        }
        Ok(())
    }
    /// The batch-level checks Kafka's `LogValidator.validateBatch` applies to a batch that a
    /// client produced (`AppendOrigin.CLIENT`), on top of [`Self::validate`]:
    /// at least one record, `lastOffsetDelta + 1 == recordsCount` ("inconsistent batch offset
    /// range"), no control batches (only transaction coordinators write those), and a
    /// non-negative base sequence whenever a producer id is set. The broker maps a failure to
    /// `INVALID_RECORD` (or `CORRUPT_MESSAGE` for a CRC mismatch).
    pub fn validate_client_batch(&self) -> Result<()> {
        self.validate()?;
        let h = &self.header;
        if h.records_count <= 0 {
            return Err(RecordsError::Corrupt(format!(
                "record batch count {} is not positive",
                h.records_count
            )));
        }
        if i64::from(h.last_offset_delta) + 1 != i64::from(h.records_count) {
            return Err(RecordsError::Corrupt(format!(
                "inconsistent batch offset range: last offset delta {} with {} records",
                h.last_offset_delta, h.records_count
            )));
        }
        if h.is_control() {
            return Err(RecordsError::Corrupt(
                "clients are not allowed to write control records".into(),
            ));
        }
        if h.producer_id >= 0 && h.base_sequence < 0 {
            return Err(RecordsError::Corrupt(format!(
                "invalid base sequence {} for producer id {}",
                h.base_sequence, h.producer_id
            )));
        }
        Ok(())
    }
}

/// Iterates over `bytes` holding zero or more concatenated batches (a Produce request's
/// `records` field, a Fetch response, a segment file read into memory).
///
/// Each batch is a zero-copy slice of `bytes`. The iterator stops after the first error:
/// [`RecordsError::Truncated`] when the tail is an incomplete batch (the only error a caller
/// may treat as "end of data"), [`RecordsError::UnsupportedMagic`] or
/// [`RecordsError::InvalidBatchLength`] otherwise. CRCs are not checked here; call
/// [`RecordBatch::validate`] on each batch.
pub fn split_batches(bytes: Bytes) -> BatchIter {
    BatchIter {
        bytes,
        position: 0,
        done: false,
    }
}

/// Iterator returned by [`split_batches`]. [`BatchIter::position`] tells where the next batch
/// (or the error) starts, which is where log recovery truncates.
#[derive(Clone, Debug)]
pub struct BatchIter {
    bytes: Bytes,
    position: usize,
    done: bool,
}

/// Bytes needed to see both the length and the magic byte of a batch (or legacy message).
const HEADER_UP_TO_MAGIC: usize = MAGIC_OFFSET + 1;

impl BatchIter {
    /// Byte position (within the split buffer) of the next batch to be returned. After an
    /// error it is the position of the offending batch; after the end, the buffer length.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The bytes not yet consumed (starting at [`Self::position`]).
    pub fn remainder(&self) -> Bytes {
        self.bytes.slice(self.position.min(self.bytes.len())..)
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        let rest = self.bytes.get(self.position..).unwrap_or(&[]);
        if rest.is_empty() {
            return None;
        }
        if rest.len() < HEADER_UP_TO_MAGIC {
            return Some(Err(RecordsError::Truncated {
                position: self.position,
                needed: HEADER_UP_TO_MAGIC,
                available: rest.len(),
            }));
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Some(Err(RecordsError::UnsupportedMagic(magic)));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&rest[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]);
        let batch_length = i32::from_be_bytes(len);
        if batch_length < MIN_BATCH_LENGTH {
            return Some(Err(RecordsError::InvalidBatchLength {
                length: batch_length,
                reason: "smaller than the 49 bytes a batch header needs after the length field",
            }));
        }
        // batch_length >= 49 here, so the conversion and the addition cannot fail on any
        // platform with at least 32-bit usize; checked anyway to keep the no-panic rule local.
        let total = match usize::try_from(batch_length)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD))
        {
            Some(t) => t,
            None => {
                return Some(Err(RecordsError::InvalidBatchLength {
                    length: batch_length,
                    reason: "does not fit in memory",
                }))
            }
        };
        if rest.len() < total {
            return Some(Err(RecordsError::Truncated {
                position: self.position,
                needed: total,
                available: rest.len(),
            }));
        }
        let slice = self.bytes.slice(self.position..self.position + total);
        match RecordBatch::new(slice) {
            Ok(batch) => {
                self.position += total;
                Some(Ok(batch))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_batch();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl std::iter::FusedIterator for BatchIter {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{recompute_crc, set_base_offset, Offset};

    /// A batch with an opaque payload and a correct CRC, for tests that do not need records.
    pub(crate) fn raw_batch(base_offset: i64, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; BATCH_HEADER_LEN + payload.len()];
        let header = BatchHeader {
            base_offset,
            batch_length: (BATCH_HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: 1000,
            max_timestamp: 1000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 1,
        };
        header.write(&mut buf).unwrap();
        buf[BATCH_HEADER_LEN..].copy_from_slice(payload);
        recompute_crc(&mut buf).unwrap();
        buf
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard CRC-32C check value; CRC-32 (IEEE) would give 0xcbf43926.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn valid_batch_validates() {
        let b = RecordBatch::new(Bytes::from(raw_batch(5, b"hello"))).unwrap();
        b.validate().unwrap();
        assert_eq!(b.header().base_offset, 5);
        assert_eq!(&b.records_payload()[..], b"hello");
        assert_eq!(b.len(), 66);
    }

    #[test]
    fn crc_corruption_detected_in_every_covered_byte() {
        let good = raw_batch(5, b"payload bytes");
        for i in ATTRIBUTES_OFFSET..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            let batch = RecordBatch::new(Bytes::from(bad)).unwrap();
            assert!(
                matches!(batch.validate(), Err(RecordsError::CrcMismatch { .. })),
                "flip at byte {i} not detected"
            );
        }
        let mut bad_crc = good.clone();
        bad_crc[17] ^= 0x80;
        let batch = RecordBatch::new(Bytes::from(bad_crc)).unwrap();
        assert!(matches!(
            batch.validate(),
            Err(RecordsError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn legacy_magic_refused() {
        let mut v = raw_batch(0, b"x");
        v[MAGIC_OFFSET] = 1;
        let err = RecordBatch::new(Bytes::from(v.clone())).unwrap_err();
        assert_eq!(err, RecordsError::UnsupportedMagic(1));
        assert!(err.to_string().contains("unsupported record batch magic 1"));
        let mut it = split_batches(Bytes::from(v));
        assert_eq!(it.next(), Some(Err(RecordsError::UnsupportedMagic(1))));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn new_rejects_wrong_sizes() {
        let v = raw_batch(0, b"abc");
        assert!(matches!(
            RecordBatch::new(Bytes::from(v[..v.len() - 1].to_vec())),
            Err(RecordsError::Truncated { .. })
        ));
        let mut longer = v.clone();
        longer.push(0);
        assert!(matches!(
            RecordBatch::new(Bytes::from(longer)),
            Err(RecordsError::InvalidBatchLength { .. })
        ));
    }

    #[test]
    fn validate_rejects_negative_counts() {
        let mut v = raw_batch(0, b"abc");
        v[57..61].copy_from_slice(&(-1i32).to_be_bytes());
        recompute_crc(&mut v).unwrap();
        assert!(matches!(
            RecordBatch::new(Bytes::from(v)).unwrap().validate(),
            Err(RecordsError::Corrupt(_))
        ));
    }

    #[test]
    fn split_concatenated_batches_zero_copy() {
        let mut all = raw_batch(0, b"one");
        all.extend(raw_batch(1, b"second"));
        all.extend(raw_batch(2, b""));
        let bytes = Bytes::from(all);
        let base = bytes.as_ptr();
        let batches: Vec<_> = split_batches(bytes.clone()).collect::<Result<_>>().unwrap();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[1].header().base_offset, 1);
        assert_eq!(&batches[1].records_payload()[..], b"second");
        // Zero-copy: the second batch points into the original buffer.
        assert_eq!(batches[1].as_bytes().as_ptr(), base.wrapping_add(64));
        for b in &batches {
            b.validate().unwrap();
        }
    }

    #[test]
    fn split_reports_truncated_tail_distinctly() {
        let mut all = raw_batch(0, b"one");
        let first_len = all.len();
        let second = raw_batch(1, b"second");
        for cut in 1..second.len() {
            let mut buf = all.clone();
            buf.extend_from_slice(&second[..cut]);
            let mut it = split_batches(Bytes::from(buf));
            assert!(it.next().unwrap().is_ok());
            match it.next() {
                Some(Err(RecordsError::Truncated {
                    position,
                    available,
                    ..
                })) => {
                    assert_eq!(position, first_len);
                    assert_eq!(available, cut);
                }
                other => panic!("cut {cut}: expected Truncated, got {other:?}"),
            }
            assert_eq!(it.position(), first_len);
            assert_eq!(it.remainder().len(), cut);
            assert_eq!(it.next(), None);
        }
        all.extend_from_slice(&second);
        assert_eq!(split_batches(Bytes::from(all)).count(), 2);
    }

    #[test]
    fn split_rejects_tiny_length_as_corrupt_not_truncated() {
        let mut v = raw_batch(0, b"abc");
        v[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            split_batches(Bytes::from(v)).next(),
            Some(Err(RecordsError::InvalidBatchLength { length: 10, .. }))
        ));
    }

    #[test]
    fn zero_filled_tail_is_not_a_batch() {
        // A preallocated, zero-filled segment tail reads as magic 0 and is refused.
        let mut v = raw_batch(0, b"abc");
        v.extend(std::iter::repeat_n(0u8, 100));
        let mut it = split_batches(Bytes::from(v));
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next(), Some(Err(RecordsError::UnsupportedMagic(0))));
        assert_eq!(it.position(), 64);
    }

    #[test]
    fn base_offset_rewrite_keeps_crc_valid() {
        let mut v = raw_batch(0, b"abc");
        set_base_offset(&mut v, Offset(123_456)).unwrap();
        let b = RecordBatch::new(Bytes::from(v)).unwrap();
        assert_eq!(b.header().base_offset, 123_456);
        b.validate().unwrap();
    }
}
