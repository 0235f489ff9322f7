//! In-place rewriting of a batch's header fields.
//!
//! The CRC covers bytes 21..end only, deliberately leaving out baseOffset, batchLength,
//! partitionLeaderEpoch and magic so that a leader can assign offsets and stamp its epoch
//! without recomputing it (KIP-98). Changing the timestamp type or max timestamp
//! (`LogAppendTime`, `message.timestamp.type`) does touch covered bytes, so that helper
//! recomputes the CRC.
//!
//! Every function takes a slice that starts with a v2 batch; it may extend past the batch
//! (the rest is left alone). They work on `BytesMut` and `Vec<u8>` through deref.

use crate::header::{
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, MAX_TIMESTAMP_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET, TIMESTAMP_TYPE_BIT,
};
use crate::{BatchHeader, LeaderEpoch, Offset, RecordsError, Result, TimestampType};

/// Parses the header and checks the slice holds the whole batch, returning its size.
fn whole_batch(buf: &[u8]) -> Result<(BatchHeader, usize)> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_size();
    if buf.len() < total {
        return Err(RecordsError::Truncated {
            position: 0,
            needed: total,
            available: buf.len(),
        });
    }
    Ok((header, total))
}

/// Writes `offset` into the batch's baseOffset field. The CRC stays valid.
///
/// Only the header is checked (magic 2, at least 61 bytes), so this works on a batch whose
/// records are still arriving as long as its header is there.
pub fn set_base_offset(batch: &mut [u8], offset: Offset) -> Result<()> {
    BatchHeader::parse(batch)?;
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&offset.0.to_be_bytes());
    Ok(())
}

/// Writes `epoch` into the partitionLeaderEpoch field. The CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) -> Result<()> {
    BatchHeader::parse(batch)?;
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.0.to_be_bytes());
    Ok(())
}

/// Recomputes and stores the CRC-32C over bytes 21..end of the batch; returns the new CRC.
pub fn recompute_crc(batch: &mut [u8]) -> Result<u32> {
    let (_, total) = whole_batch(batch)?;
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..total]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(crc)
}

/// Sets the batch's timestamp type and maxTimestamp and recomputes the CRC, as Kafka's
/// `DefaultRecordBatch.setMaxTimestamp` does; returns whether anything changed. When both
/// fields already hold these values the batch is left untouched (no CRC pass), so a leader
/// pays for the rewrite only when a client's header was wrong.
pub fn set_max_timestamp(
    batch: &mut [u8],
    timestamp_type: TimestampType,
    max_timestamp: i64,
) -> Result<bool> {
    let (header, _) = whole_batch(batch)?;
    let attributes = match timestamp_type {
        TimestampType::LogAppendTime => header.attributes | TIMESTAMP_TYPE_BIT,
        TimestampType::CreateTime => header.attributes & !TIMESTAMP_TYPE_BIT,
    };
    if header.attributes == attributes && header.max_timestamp == max_timestamp {
        return Ok(false);
    }
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    recompute_crc(batch)?;
    Ok(true)
}

/// Marks the batch as `LogAppendTime` and sets its maxTimestamp to `append_time_ms` (see
/// [`set_max_timestamp`]), as Kafka does when a topic has
/// `message.timestamp.type=LogAppendTime`. The records' own timestamp deltas are left
/// unchanged; readers use the max timestamp for every record of such a batch.
pub fn set_max_timestamp_and_log_append_time(batch: &mut [u8], append_time_ms: i64) -> Result<()> {
    set_max_timestamp(batch, TimestampType::LogAppendTime, append_time_ms).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::raw_batch;
    use crate::RecordBatch;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn leader_epoch_rewrite_keeps_crc_valid() {
        let mut v = BytesMut::from(&raw_batch(3, b"xyz")[..]);
        set_partition_leader_epoch(&mut v, LeaderEpoch(17)).unwrap();
        let b = RecordBatch::new(v.freeze()).unwrap();
        assert_eq!(b.header().leader_epoch(), LeaderEpoch(17));
        b.validate().unwrap();
    }

    #[test]
    fn log_append_time_rewrite_recomputes_crc() {
        let mut v = raw_batch(3, b"xyz");
        let before = v.clone();
        set_max_timestamp_and_log_append_time(&mut v, 9_999).unwrap();
        assert_ne!(before[17..21], v[17..21], "CRC must change");
        let b = RecordBatch::new(Bytes::from(v.clone())).unwrap();
        b.validate().unwrap();
        assert_eq!(b.header().timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(b.header().max_timestamp, 9_999);
        // Idempotent.
        let again = v.clone();
        set_max_timestamp_and_log_append_time(&mut v, 9_999).unwrap();
        assert_eq!(again, v);
    }

    #[test]
    fn create_time_max_rewrite_only_when_different() {
        let mut v = raw_batch(3, b"xyz");
        let before = v.clone();
        assert!(!set_max_timestamp(&mut v, TimestampType::CreateTime, 1000).unwrap());
        assert_eq!(before, v, "an unchanged header is not rewritten");
        assert!(set_max_timestamp(&mut v, TimestampType::CreateTime, 0).unwrap());
        let b = RecordBatch::new(Bytes::from(v.clone())).unwrap();
        b.validate().unwrap();
        assert_eq!(b.header().max_timestamp, 0);
        // From LogAppendTime back to CreateTime clears the type bit.
        set_max_timestamp_and_log_append_time(&mut v, 5).unwrap();
        assert!(set_max_timestamp(&mut v, TimestampType::CreateTime, 5).unwrap());
        let b = RecordBatch::new(Bytes::from(v)).unwrap();
        b.validate().unwrap();
        assert_eq!(b.header().timestamp_type(), TimestampType::CreateTime);
    }

    #[test]
    fn recompute_crc_only_covers_this_batch() {
        let mut two = raw_batch(0, b"a");
        let first_len = two.len();
        two.extend(raw_batch(1, b"b"));
        two[first_len + 30] ^= 0xff; // corrupt the second batch
        let crc = recompute_crc(&mut two).unwrap();
        assert_eq!(crc, crc32c::crc32c(&two[21..first_len]));
    }

    #[test]
    fn rewrites_reject_short_or_foreign_buffers() {
        let mut short = vec![0u8; 10];
        assert!(set_base_offset(&mut short, Offset(1)).is_err());
        let mut legacy = raw_batch(0, b"a");
        legacy[16] = 1;
        assert_eq!(
            set_base_offset(&mut legacy, Offset(1)),
            Err(RecordsError::UnsupportedMagic(1))
        );
        let v = raw_batch(0, b"abcdef");
        let mut cut = v[..v.len() - 2].to_vec();
        assert!(matches!(
            recompute_crc(&mut cut),
            Err(RecordsError::Truncated { .. })
        ));
        assert!(set_max_timestamp_and_log_append_time(&mut cut, 1).is_err());
    }
}
