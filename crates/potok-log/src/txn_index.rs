//! Entries of the per-segment transaction index (`.txnindex`, KIP-98): one per aborted
//! transaction, in Kafka's on-disk layout (`AbortedTxn`: version, producer id, first offset,
//! last offset, last stable offset; 34 bytes, big-endian), and the lookup a read_committed
//! fetch makes over them.
//!
//! [`TxnIndex`] is one segment's index: its entries live in memory (a segment holds an entry
//! per ABORT marker in it, so they are few) and every append is written through to the file
//! at once, with a short-lived file handle so the index costs no descriptor between appends
//! (`potok.log.max.open.files` bounds the held ones). The file is fsynced with its segment.
//! Segments without an aborted transaction have no file, as in Kafka, which creates it on
//! the first append.

use std::path::{Path, PathBuf};

use potok_records::{Offset, ProducerId};

use crate::storage::{read_exact_at, write_all_at, Storage};
use crate::{LogError, Result};

/// Refuse to load index files larger than this (about a million aborted transactions in one
/// segment), so a corrupt length cannot make the open allocate without bound.
const MAX_TXN_INDEX_BYTES: u64 = 32 << 20;

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

/// One segment's `.txnindex`: its entries in memory, written through to the file.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    /// Entries written since the last fsync.
    dirty: bool,
}

impl TxnIndex {
    /// An empty index at `path`; the file is made by the first append.
    pub(crate) fn new(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            entries: Vec::new(),
            dirty: false,
        }
    }

    /// Loads the file at `path`. `Ok(Err(reason))` when it is not a valid index (the caller
    /// rebuilds it from the segment's batches).
    pub(crate) fn load(
        storage: &dyn Storage,
        path: PathBuf,
    ) -> Result<std::result::Result<TxnIndex, String>> {
        let file = storage
            .open(&path, false)
            .map_err(|e| LogError::io(&path, e))?;
        let len = file.len().map_err(|e| LogError::io(&path, e))?;
        if len > MAX_TXN_INDEX_BYTES {
            return Ok(Err(format!(
                "{len} bytes is larger than any transaction index"
            )));
        }
        // A partial entry at the end is a write a crash cut short: its marker is past the last
        // producer-state snapshot (a roll fsyncs the index before writing one), so the replay
        // at open adds the entry again; the next append overwrites the partial bytes.
        let whole = len - len % TXN_INDEX_ENTRY_LEN as u64;
        let mut buf = vec![0u8; whole as usize];
        read_exact_at(&*file, &mut buf, 0).map_err(|e| LogError::io(&path, e))?;
        Ok(AbortedTxn::decode_all(&buf).and_then(|entries| {
            if entries
                .windows(2)
                .any(|w| w[1].last_offset <= w[0].last_offset)
            {
                return Err("entries out of offset order".into());
            }
            // The log indexes only transactions with data, which precedes the marker.
            if let Some(e) = entries.iter().find(|e| e.last_offset <= e.first_offset) {
                return Err(format!("entry {e:?} has no data before its marker"));
            }
            Ok(TxnIndex {
                path,
                entries,
                dirty: false,
            })
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Whether the file changed since its last fsync.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Appends an entry (markers come in offset order; an entry not after the last one is
    /// refused, as Kafka's `TransactionIndex.append` does).
    pub(crate) fn append(&mut self, storage: &dyn Storage, e: AbortedTxn) -> Result<()> {
        if self
            .entries
            .last()
            .is_some_and(|l| e.last_offset <= l.last_offset)
        {
            return Err(LogError::InvalidBatchFields(format!(
                "aborted transaction ending at {} is not after the last one",
                e.last_offset.0
            )));
        }
        let file = storage
            .open(&self.path, true)
            .map_err(|err| LogError::io(&self.path, err))?;
        let pos = (self.entries.len() * TXN_INDEX_ENTRY_LEN) as u64;
        write_all_at(&*file, &e.encode(), pos).map_err(|err| LogError::io(&self.path, err))?;
        self.entries.push(e);
        self.dirty = true;
        Ok(())
    }

    /// Removes the entries whose marker is at or after `offset` (Kafka's
    /// `TransactionIndex.truncateTo`).
    pub(crate) fn truncate_to(&mut self, storage: &dyn Storage, offset: Offset) -> Result<()> {
        let keep = self
            .entries
            .iter()
            .take_while(|e| e.last_offset < offset)
            .count();
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.set_file_len(storage)
    }

    /// Drops every entry (the segment's are about to be rebuilt from its batches).
    pub(crate) fn reset(&mut self, storage: &dyn Storage) -> Result<()> {
        self.entries.clear();
        match storage.exists(&self.path) {
            Ok(false) => Ok(()),
            Ok(true) => self.set_file_len(storage),
            Err(e) => Err(LogError::io(&self.path, e)),
        }
    }

    fn set_file_len(&mut self, storage: &dyn Storage) -> Result<()> {
        let len = (self.entries.len() * TXN_INDEX_ENTRY_LEN) as u64;
        storage
            .open(&self.path, true)
            .and_then(|f| f.set_len(len))
            .map_err(|e| LogError::io(&self.path, e))?;
        self.dirty = true;
        Ok(())
    }

    /// fsyncs the file if it changed since the last sync.
    pub(crate) fn sync(&mut self, storage: &dyn Storage) -> Result<()> {
        if self.dirty {
            match storage.open(&self.path, false).and_then(|f| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&self.path, e)),
            }
            self.dirty = false;
        }
        Ok(())
    }
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
