//! Entries of the per-segment transaction index (`.txnindex`, KIP-98): one per aborted
//! transaction, in Kafka's on-disk layout (`AbortedTxn`: version, producer id, first offset,
//! last offset, last stable offset; 34 bytes, big-endian), and the lookup a read_committed
//! fetch makes over them.
//!
//! This module holds the pure layout and lookup; the log does not write `.txnindex` files yet
//! (issue #21 lists what is left).

use potok_records::{Offset, ProducerId};

/// The only entry version Kafka defines (`AbortedTxn.CURRENT_VERSION`).
pub const TXN_INDEX_VERSION: i16 = 0;

/// version (2) + producer id (8) + first offset (8) + last offset (8) + last stable offset (8).
pub const TXN_INDEX_ENTRY_LEN: usize = 34;

/// One aborted transaction of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer that aborted.
    pub producer_id: ProducerId,
    /// Offset of the transaction's first batch.
    pub first_offset: Offset,
    /// Offset of its ABORT marker.
    pub last_offset: Offset,
    /// The partition's last stable offset once the abort completed. A fetch whose upper bound
    /// is at or below it needs no entry of a later segment, which lets the lookup stop early
    /// as Kafka's `collectAbortedTransactions` does.
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    /// The entry's 34 bytes.
    pub fn encode(&self) -> [u8; TXN_INDEX_ENTRY_LEN] {
        let mut out = [0u8; TXN_INDEX_ENTRY_LEN];
        out[0..2].copy_from_slice(&TXN_INDEX_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.0.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.0.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.0.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.0.to_be_bytes());
        out
    }

    /// Decodes a whole index file's bytes. Never panics on arbitrary bytes: a partial trailing
    /// entry, an unknown version or offsets out of order make the file invalid.
    pub fn decode_all(buf: &[u8]) -> Result<Vec<AbortedTxn>, String> {
        if !buf.len().is_multiple_of(TXN_INDEX_ENTRY_LEN) {
            return Err(format!(
                "{} bytes is not a whole number of {TXN_INDEX_ENTRY_LEN}-byte entries",
                buf.len()
            ));
        }
        let mut out = Vec::with_capacity(buf.len() / TXN_INDEX_ENTRY_LEN);
        for (i, e) in buf.chunks_exact(TXN_INDEX_ENTRY_LEN).enumerate() {
            let i16_at = |p: usize| i16::from_be_bytes([e[p], e[p + 1]]);
            let i64_at = |p: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&e[p..p + 8]);
                i64::from_be_bytes(a)
            };
            let version = i16_at(0);
            if version != TXN_INDEX_VERSION {
                return Err(format!("entry {i} has unknown version {version}"));
            }
            let t = AbortedTxn {
                producer_id: ProducerId(i64_at(2)),
                first_offset: Offset(i64_at(10)),
                last_offset: Offset(i64_at(18)),
                last_stable_offset: Offset(i64_at(26)),
            };
            if t.producer_id.0 < 0 || t.first_offset.0 < 0 || t.last_offset < t.first_offset {
                return Err(format!("entry {i} is invalid: {t:?}"));
            }
            out.push(t);
        }
        Ok(out)
    }
}

/// Appends to `out` the entries that overlap a read of `[start, upper)`: those whose marker is
/// at or after `start` and whose first batch is below `upper`. Returns `true` when the lookup
/// may stop (an entry's last stable offset reaches `upper`, so no later segment can hold a
/// transaction the read needs), as Kafka's `TransactionIndex.collectAbortedTxns`.
pub fn collect_aborted(
    entries: &[AbortedTxn],
    start: Offset,
    upper: Offset,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    for e in entries {
        if e.last_offset >= start && e.first_offset < upper {
            out.push(*e);
        }
        if e.last_stable_offset >= upper {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(pid),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_34_byte_layout() {
        let e = txn(7, 10, 20, 21);
        let bytes = e.encode();
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        let mut file = bytes.to_vec();
        file.extend_from_slice(&txn(8, 30, 31, 40).encode());
        assert_eq!(
            AbortedTxn::decode_all(&file),
            Ok(vec![e, txn(8, 30, 31, 40)])
        );
        assert!(AbortedTxn::decode_all(&file[..40]).is_err());
        let mut bad = bytes;
        bad[1] = 1;
        assert!(AbortedTxn::decode_all(&bad).is_err());
    }

    #[test]
    fn lookup_returns_overlapping_aborts_and_stops_at_the_upper_bound() {
        let entries = [txn(1, 0, 5, 3), txn(2, 3, 8, 9), txn(3, 10, 12, 13)];
        let mut out = Vec::new();
        assert!(collect_aborted(&entries, Offset(6), Offset(9), &mut out));
        assert_eq!(out, vec![txn(2, 3, 8, 9)]);
        out.clear();
        assert!(!collect_aborted(&entries, Offset(0), Offset(100), &mut out));
        assert_eq!(out.len(), 3);
        out.clear();
        // A read ending before a transaction begins does not get it.
        assert!(collect_aborted(&entries, Offset(0), Offset(3), &mut out));
        assert_eq!(out, vec![txn(1, 0, 5, 3)]);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = AbortedTxn::decode_all(&bytes);
        }
    }
}
