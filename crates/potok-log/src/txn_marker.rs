//! Transaction markers (KIP-98) as the log reads them: a COMMIT or ABORT control batch, which
//! a transaction coordinator writes to end a producer's transaction on a partition. The log
//! needs two things from one: whether it aborts (an aborted transaction gets a `.txnindex`
//! entry) and the coordinator epoch (a marker from an older coordinator is fenced).
//!
//! Layout (Kafka's `EndTransactionMarker`): a control batch with exactly one record whose key
//! is `[version i16][type i16]` (0 = ABORT, 1 = COMMIT) and whose value is
//! `[version i16][coordinator epoch i32]`. Other control types (KRaft's leader change) are not
//! markers and leave the producer state alone, as in Kafka's `ProducerAppendInfo.append`.

use bytes::Bytes;
use potok_records::{
    ControlRecordType, LeaderEpoch, ProducerEpoch, ProducerId, RecordBatch, RecordBatchBuilder,
};

use crate::{LogError, Result};

/// A control batch is tiny; a larger "marker" is refused before its records are decoded.
const MAX_MARKER_BATCH_BYTES: usize = 4096;

/// What a COMMIT or ABORT marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTxnMarker {
    /// COMMIT (`true`) or ABORT (`false`).
    pub commit: bool,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// Reads the marker in a control batch; `Ok(None)` for a control batch of another type.
/// Errors for a control batch whose structure does not fit Kafka's layout; never panics on
/// arbitrary bytes.
pub fn parse_marker(batch: &[u8]) -> Result<Option<EndTxnMarker>> {
    let bad = |why: &str| LogError::InvalidBatchFields(format!("control batch: {why}"));
    if batch.len() > MAX_MARKER_BATCH_BYTES {
        return Err(bad("larger than any transaction marker"));
    }
    let b = RecordBatch::new(Bytes::copy_from_slice(batch))?;
    let mut records = b.records_with_limit(MAX_MARKER_BATCH_BYTES)?;
    let Some(first) = records.next() else {
        return Err(bad("no record"));
    };
    let r = first?;
    let key = r
        .key
        .as_deref()
        .ok_or_else(|| bad("record without a key"))?;
    let i16_at = |buf: &[u8], p: usize| -> Option<i16> {
        Some(i16::from_be_bytes([*buf.get(p)?, *buf.get(p + 1)?]))
    };
    let (Some(key_version), Some(kind)) = (i16_at(key, 0), i16_at(key, 2)) else {
        return Err(bad("key shorter than 4 bytes"));
    };
    if key_version < 0 {
        return Err(bad("negative key version"));
    }
    let commit = match kind {
        0 => false,
        1 => true,
        _ => return Ok(None),
    };
    // Kafka's `EndTransactionMarker.deserialize`: exactly one record, a value of at least
    // version and coordinator epoch (later versions may append fields).
    if records.next().is_some() {
        return Err(bad("a transaction marker holds exactly one record"));
    }
    let value = r
        .value
        .as_deref()
        .ok_or_else(|| bad("marker without a value"))?;
    let version = i16_at(value, 0).ok_or_else(|| bad("marker value too short"))?;
    let epoch = value
        .get(2..6)
        .map(|e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]))
        .ok_or_else(|| bad("marker value too short"))?;
    if version < 0 {
        return Err(bad("negative marker version"));
    }
    Ok(Some(EndTxnMarker {
        commit,
        coordinator_epoch: epoch,
    }))
}

/// A marker the transaction coordinator asks a partition leader to append
/// ([`crate::Log::append_marker`], Kafka's WriteTxnMarkers for one partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkerRequest {
    /// The producer whose transaction ends.
    pub producer_id: ProducerId,
    /// The producer epoch the marker carries (with KIP-890 part 2 the epoch bumped by EndTxn).
    pub producer_epoch: ProducerEpoch,
    /// COMMIT or ABORT.
    pub commit: bool,
    /// The coordinator's epoch (the leader epoch of its `__transaction_state` partition).
    pub coordinator_epoch: i32,
    /// The partition leader epoch stamped into the batch.
    pub leader_epoch: LeaderEpoch,
    /// KIP-1022's `transaction.version` the coordinator runs: 2 (KIP-890 part 2) makes every
    /// marker carry an epoch above the producer's current one, so a marker at the current
    /// epoch or below is a stale one and refused; below 2 only an older epoch is.
    pub transaction_version: i16,
}

impl MarkerRequest {
    /// The control batch (one record, `timestamp` as its time).
    pub(crate) fn build(&self, timestamp: i64) -> Result<Bytes> {
        let kind = if self.commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        let batch = RecordBatchBuilder::end_transaction_marker(
            self.producer_id,
            self.producer_epoch,
            kind,
            self.coordinator_epoch,
            timestamp,
        )
        .leader_epoch(self.leader_epoch)
        .build()?;
        Ok(batch.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(commit: bool, epoch: i32) -> MarkerRequest {
        MarkerRequest {
            producer_id: ProducerId(4),
            producer_epoch: ProducerEpoch(2),
            commit,
            coordinator_epoch: epoch,
            leader_epoch: LeaderEpoch(0),
            transaction_version: 2,
        }
    }

    #[test]
    fn built_markers_parse_back() {
        for (commit, epoch) in [(true, 0), (false, 7)] {
            let b = req(commit, epoch).build(5).unwrap();
            assert_eq!(
                parse_marker(&b).unwrap(),
                Some(EndTxnMarker {
                    commit,
                    coordinator_epoch: epoch
                })
            );
        }
        // A control batch of another type (KRaft's leader change, type 2) is no marker.
        let other = RecordBatchBuilder::new()
            .control(true)
            .key_value(0, Some(&[0, 0, 0, 2]), Some(&[0, 0]))
            .build()
            .unwrap()
            .into_bytes();
        assert_eq!(parse_marker(&other).unwrap(), None);
        // A marker with a short value is refused.
        let short = RecordBatchBuilder::new()
            .control(true)
            .key_value(0, Some(&[0, 0, 0, 1]), Some(&[0, 0, 0]))
            .build()
            .unwrap()
            .into_bytes();
        assert!(parse_marker(&short).is_err());
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_marker(&bytes);
        }
    }
}
