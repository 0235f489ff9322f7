//! Per-partition state of idempotent producers (KIP-98), kept by the log like Kafka's
//! `ProducerStateManager`: for every producer id that wrote to the partition, its current epoch
//! and the sequence ranges and offsets of its last five batches.
//!
//! The leader checks each appended batch that carries a producer id against this state before
//! writing it ([`ProducerStateManager::check_leader_batch`]): a retried batch that is one of the
//! last five is a duplicate and is answered with its original offsets, an older epoch is
//! refused ([`LogError::InvalidProducerEpoch`]) and a sequence that does not follow the last one
//! is refused ([`LogError::OutOfOrderSequence`]). Followers and recovery apply batches without
//! checks, so every replica and every restart derives the same state from the same log.
//!
//! The state survives restarts through snapshot files `{offset:020}.snapshot` beside the
//! segments (Kafka names them the same way), each holding the state as of the log end offset in
//! its name. The log writes one when it rolls a segment and when it is closed; on open it loads
//! the newest valid snapshot at or below the recovered log end offset and replays the batch
//! headers after it. The byte format is in `docs/format.md`, section "Producer state snapshot".
//!
//! Thread-safety: the manager is plain data owned by its [`crate::Log`] and mutated only
//! through `&mut Log`, so it needs no lock of its own.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use potok_records::{BatchHeader, Offset, ProducerEpoch, ProducerId};

use crate::storage::{read_exact_at, Storage};
use crate::{LogError, Result};

/// Suffix of producer state snapshot files (`{offset:020}.snapshot`, as Kafka).
pub const SNAPSHOT_SUFFIX: &str = "snapshot";

/// How many batches per producer are remembered for duplicate detection. Kafka keeps five
/// (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`), matching the clients' limit of five in-flight
/// requests per connection with idempotence on.
pub const BATCHES_PER_PRODUCER: usize = 5;

/// Default `producer.id.expiration.ms`: one day, Kafka's default.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// How often appends look for expired producer ids; Kafka's
/// `producer.id.expiration.check.interval.ms` default (10 minutes).
pub(crate) const EXPIRATION_CHECK_INTERVAL_MS: i64 = 10 * 60 * 1000;

/// Version 2 added each producer's ongoing transaction; version 1 files (written before
/// transactions existed, so without any) are still read.
const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_VERSION_V1: u16 = 1;
/// version (2) + crc (4) + offset (8) + producer count (4).
const SNAPSHOT_HEADER_LEN: usize = 18;
/// producer id (8) + epoch (2) + last timestamp (8) + batch count (1), version 1.
const ENTRY_HEADER_LEN_V1: usize = 19;
/// Version 2 adds the first offset of the ongoing transaction (8, -1 for none).
const ENTRY_HEADER_LEN: usize = 27;
/// first seq (4) + last seq (4) + first offset (8) + last offset (8) + timestamp (8).
const BATCH_LEN: usize = 32;
/// Refuse to read snapshot files larger than this: a partition with more producers than fit
/// here (about 100k producers with five batches each) is far beyond what Kafka supports either.
const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

/// One remembered batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence number of the batch's first record.
    pub first_seq: i32,
    /// Sequence number of the batch's last record (wrapping past `i32::MAX` to 0, as the
    /// clients do).
    pub last_seq: i32,
    /// Offset the batch's first record was written at.
    pub first_offset: Offset,
    /// Offset of the batch's last record.
    pub last_offset: Offset,
    /// The batch's max timestamp as stored (the append time under `LogAppendTime`).
    pub timestamp: i64,
}

/// What the partition knows about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer id.
    pub producer_id: ProducerId,
    /// The newest epoch seen for it.
    pub epoch: ProducerEpoch,
    /// Timestamp of its last batch; drives `producer.id.expiration.ms`.
    pub last_timestamp: i64,
    /// Its last batches of the current epoch, oldest first, at most [`BATCHES_PER_PRODUCER`].
    batches: VecDeque<BatchMetadata>,
    /// Offset of the first batch of the producer's ongoing transaction (KIP-98), set by its
    /// first transactional batch and cleared by the COMMIT or ABORT marker that ends it, as
    /// Kafka's `ProducerStateEntry.currentTxnFirstOffset`.
    pub current_txn_first_offset: Option<Offset>,
}

impl ProducerEntry {
    /// The remembered batches of the current epoch, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &BatchMetadata> + '_ {
        self.batches.iter()
    }

    /// Sequence number of the last record written (-1 when no batch is remembered), as
    /// DescribeProducers reports it.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    /// Offset of the last record written, if any batch is remembered.
    pub fn last_offset(&self) -> Option<Offset> {
        self.batches.back().map(|b| b.last_offset)
    }

    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch.0 {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

/// One batch's effect on the producer state, computed before the write and applied after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerUpdate {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) batch: BatchMetadata,
    /// A data batch of a transaction: it opens one unless the producer has one ongoing.
    pub(crate) transactional: bool,
    /// A control batch (a COMMIT or ABORT marker): it ends the producer's ongoing
    /// transaction and carries no data sequence.
    pub(crate) control: bool,
}

/// The last sequence of a batch starting at `first_seq` with `last_offset_delta + 1` records;
/// sequences wrap from `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`).
pub(crate) fn increment_sequence(first_seq: i32, delta: i32) -> i32 {
    if first_seq > i32::MAX - delta {
        delta - (i32::MAX - first_seq) - 1
    } else {
        first_seq + delta
    }
}

/// Whether `next` directly follows `last` (with the wrap from `i32::MAX` to 0).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

impl ProducerUpdate {
    /// The update a stored (or about-to-be-stored, offsets assigned) batch makes, or `None`
    /// for batches without a producer id. Control batches (transaction markers) give an
    /// update that only ends the producer's transaction: whether it committed or aborted
    /// does not matter to the state, both make the transaction's offsets stable.
    pub(crate) fn from_header(h: &BatchHeader) -> Option<ProducerUpdate> {
        if h.producer_id < 0 {
            return None;
        }
        let delta = h.last_offset_delta.max(0);
        Some(ProducerUpdate {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            batch: BatchMetadata {
                first_seq: h.base_sequence,
                last_seq: increment_sequence(h.base_sequence.max(0), delta),
                first_offset: h.base_offset(),
                last_offset: h.last_offset(),
                timestamp: h.max_timestamp,
            },
            transactional: h.is_transactional(),
            control: h.is_control(),
        })
    }
}

/// The producer states of one partition. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    entries: BTreeMap<i64, ProducerEntry>,
    /// The ongoing transactions as (first offset, producer id), kept beside `entries` so the
    /// first unstable offset that every Fetch reports is the first element, not a scan of all
    /// producers (Kafka's `ongoingTxns`, ordered by first offset).
    ongoing: BTreeSet<(Offset, i64)>,
}

/// What the leader check decided for one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaderCheck {
    /// Not an idempotent batch; nothing to track.
    Untracked,
    /// Accepted; apply this update once the batch is written.
    Accept(ProducerUpdate),
    /// A retry of a batch already in the log, with the original's metadata.
    Duplicate(BatchMetadata),
}

impl ProducerStateManager {
    /// An empty state.
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// The entry of `producer_id`, if the partition knows it.
    pub fn get(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id.0)
    }

    /// All known producers, by producer id.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &ProducerEntry> + '_ {
        self.entries.values()
    }

    /// Number of known producers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a batch about to be appended by the leader (its offsets already assigned).
    /// `earlier` holds the accepted updates of earlier batches of the same append, which count
    /// as already written for the sequence check (as Kafka's `ProducerAppendInfo` does); the
    /// duplicate check looks only at what is in the log, as Kafka's does.
    pub(crate) fn check_leader_batch(
        &self,
        h: &BatchHeader,
        earlier: impl DoubleEndedIterator<Item = ProducerUpdate>,
    ) -> Result<LeaderCheck> {
        let Some(update) = ProducerUpdate::from_header(h) else {
            return Ok(LeaderCheck::Untracked);
        };
        if update.control {
            // Markers carry no data sequence; Kafka's `appendEndTxnMarker` checks only the
            // coordinator epoch, which belongs to the coordinator path that writes them.
            return Ok(LeaderCheck::Accept(update));
        }
        let pid = update.producer_id;
        if h.base_sequence < 0 || h.producer_epoch < 0 {
            // Kafka's LogValidator refuses these as INVALID_RECORD.
            return Err(LogError::InvalidBatchFields(format!(
                "producer id {pid} with epoch {} and base sequence {}",
                h.producer_epoch, h.base_sequence
            )));
        }
        let entry = self.entries.get(&pid);
        if let Some(dup) = entry
            .and_then(|e| e.find_duplicate(update.epoch, h.base_sequence, update.batch.last_seq))
        {
            return Ok(LeaderCheck::Duplicate(dup));
        }
        // The state as of the previous batch of this producer: one earlier in this append,
        // else the stored entry.
        let current = earlier
            .rev()
            .find(|u| u.producer_id == pid && !u.control)
            .map(|u| (u.epoch, Some(u.batch.last_seq)))
            .or_else(|| entry.map(|e| (e.epoch.0, e.batches.back().map(|b| b.last_seq))));
        let Some((current_epoch, last_seq)) = current else {
            // An unknown producer (new, or expired, or its batches were removed by retention)
            // may start at any sequence: since KIP-360 (Kafka 2.5) the broker accepts the write
            // instead of answering UNKNOWN_PRODUCER_ID.
            return Ok(LeaderCheck::Accept(update));
        };
        if update.epoch < current_epoch {
            // Kafka answers INVALID_PRODUCER_EPOCH here (it replaced PRODUCER_FENCED in the
            // produce path in 2.7).
            return Err(LogError::InvalidProducerEpoch {
                producer_id: ProducerId(pid),
                epoch: ProducerEpoch(update.epoch),
                current_epoch: ProducerEpoch(current_epoch),
            });
        }
        let expected = if update.epoch > current_epoch {
            // A bumped epoch (KIP-360) restarts the sequence at 0.
            0
        } else {
            match last_seq {
                Some(last) if !in_sequence(last, h.base_sequence) => increment_sequence(last, 1),
                _ => h.base_sequence,
            }
        };
        if h.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence {
                producer_id: ProducerId(pid),
                epoch: ProducerEpoch(update.epoch),
                sequence: h.base_sequence,
                expected,
            });
        }
        Ok(LeaderCheck::Accept(update))
    }

    /// Records a written batch (leader after the check, follower and recovery without one).
    /// A different epoch replaces the remembered batches, as Kafka's `maybeUpdateProducerEpoch`.
    pub(crate) fn apply(&mut self, u: &ProducerUpdate) {
        if u.control {
            // A marker for a producer the partition does not know (expired, or its batches
            // removed) has no transaction to end; Kafka would keep an empty entry, which
            // carries nothing the state needs.
            if let Some(e) = self.entries.get_mut(&u.producer_id) {
                if let Some(first) = e.current_txn_first_offset.take() {
                    self.ongoing.remove(&(first, u.producer_id));
                }
                e.last_timestamp = e.last_timestamp.max(u.batch.timestamp);
            }
            return;
        }
        let entry = self
            .entries
            .entry(u.producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_id: ProducerId(u.producer_id),
                epoch: ProducerEpoch(u.epoch),
                last_timestamp: u.batch.timestamp,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
                current_txn_first_offset: None,
            });
        if u.transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(u.batch.first_offset);
            self.ongoing.insert((u.batch.first_offset, u.producer_id));
        }
        if entry.epoch.0 != u.epoch {
            entry.epoch = ProducerEpoch(u.epoch);
            entry.batches.clear();
        }
        if entry.batches.len() >= BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(u.batch);
        entry.last_timestamp = u.batch.timestamp;
    }

    /// Forgets producers whose last batch is `expiration_ms` or more older than `now_ms`
    /// (Kafka's `removeExpiredProducers` with `producer.id.expiration.ms`). Returns how many.
    pub(crate) fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        // A producer with an ongoing transaction never expires (Kafka's `isProducerExpired`):
        // forgetting it would drop the transaction and move the last stable offset past it.
        self.entries.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.entries.len()
    }

    /// The first offset of the earliest ongoing transaction (Kafka's first unstable offset),
    /// if any producer has one.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.ongoing.first().map(|&(first, _)| first)
    }

    /// The `.txnindex` entry an ABORT marker of `producer_id` at `marker_offset` makes, if the
    /// producer has an open transaction: its first offset, the marker's offset, and the last
    /// stable offset once it is complete, which is the earliest other open transaction, or the
    /// offset after the marker when none is open (Kafka's `ProducerStateManager.lastStableOffset`
    /// for a completed transaction). Call it before the marker is applied.
    pub fn aborted_txn_entry(
        &self,
        producer_id: ProducerId,
        marker_offset: Offset,
    ) -> Option<crate::txn_index::AbortedTxn> {
        let first = self.entries.get(&producer_id.0)?.current_txn_first_offset?;
        let last_stable = self
            .ongoing
            .iter()
            .find(|&&(_, pid)| pid != producer_id.0)
            .map(|&(first, _)| first)
            .unwrap_or(Offset(marker_offset.0.saturating_add(1)));
        Some(crate::txn_index::AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: marker_offset,
            last_stable_offset: last_stable,
        })
    }

    /// Forgets everything (the log was emptied).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.ongoing.clear();
    }

    /// Encodes the state as a snapshot at `offset` (format in `docs/format.md`).
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let body_len: usize = self
            .entries
            .values()
            .map(|e| ENTRY_HEADER_LEN + BATCH_LEN * e.batches.len())
            .sum();
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + body_len);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&offset.to_be_bytes());
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for e in self.entries.values().take(count as usize) {
            out.extend_from_slice(&e.producer_id.0.to_be_bytes());
            out.extend_from_slice(&e.epoch.0.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            let txn = e.current_txn_first_offset.map_or(-1, |o| o.0);
            out.extend_from_slice(&txn.to_be_bytes());
            // At most BATCHES_PER_PRODUCER (5), so the cast is exact.
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.0.to_be_bytes());
                out.extend_from_slice(&b.last_offset.0.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot, checking its CRC, that it is for `offset`, and that every field is
    /// in range; never panics on arbitrary bytes.
    pub(crate) fn decode_snapshot(
        buf: &[u8],
        offset: i64,
    ) -> std::result::Result<ProducerStateManager, String> {
        let mut r = Reader { buf, pos: 0 };
        let version = u16::from_be_bytes(r.array()?);
        let entry_header_len = match version {
            SNAPSHOT_VERSION => ENTRY_HEADER_LEN,
            SNAPSHOT_VERSION_V1 => ENTRY_HEADER_LEN_V1,
            _ => return Err(format!("unknown snapshot version {version}")),
        };
        let crc = u32::from_be_bytes(r.array()?);
        let computed = crc32c::crc32c(buf.get(6..).unwrap_or(&[]));
        if crc != computed {
            return Err(format!(
                "CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
            ));
        }
        let stored_offset = i64::from_be_bytes(r.array()?);
        if stored_offset != offset {
            return Err(format!(
                "snapshot holds offset {stored_offset}, its name says {offset}"
            ));
        }
        let count = u32::from_be_bytes(r.array()?) as usize;
        // Each entry needs at least its fixed header, so this bounds the count by the file
        // size before anything is built from it.
        if count > r.remaining() / entry_header_len {
            return Err(format!("{count} producers cannot fit in the file"));
        }
        let mut entries = BTreeMap::new();
        for _ in 0..count {
            let pid = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let last_timestamp = i64::from_be_bytes(r.array()?);
            let txn = if version == SNAPSHOT_VERSION_V1 {
                -1
            } else {
                i64::from_be_bytes(r.array()?)
            };
            let [n] = r.array::<1>()?;
            if pid < 0
                || epoch < 0
                || n == 0
                || usize::from(n) > BATCHES_PER_PRODUCER
                || txn < -1
                || txn >= offset
            {
                return Err(format!(
                    "invalid producer entry (id {pid}, epoch {epoch}, {n} batches, transaction at {txn})"
                ));
            }
            let mut batches = VecDeque::with_capacity(BATCHES_PER_PRODUCER);
            let mut prev_last = -1i64;
            for _ in 0..n {
                let b = BatchMetadata {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    first_offset: Offset(i64::from_be_bytes(r.array()?)),
                    last_offset: Offset(i64::from_be_bytes(r.array()?)),
                    timestamp: i64::from_be_bytes(r.array()?),
                };
                if b.first_seq < 0
                    || b.last_seq < 0
                    || b.first_offset.0 <= prev_last
                    || b.last_offset < b.first_offset
                    || b.last_offset.0 >= offset
                {
                    return Err(format!("invalid batch entry for producer {pid}: {b:?}"));
                }
                prev_last = b.last_offset.0;
                batches.push_back(b);
            }
            let entry = ProducerEntry {
                producer_id: ProducerId(pid),
                epoch: ProducerEpoch(epoch),
                last_timestamp,
                batches,
                current_txn_first_offset: (txn >= 0).then_some(Offset(txn)),
            };
            if entries.insert(pid, entry).is_some() {
                return Err(format!("producer {pid} appears twice"));
            }
        }
        if r.remaining() != 0 {
            return Err(format!("{} trailing bytes", r.remaining()));
        }
        let ongoing = entries
            .values()
            .filter_map(|e| Some((e.current_txn_first_offset?, e.producer_id.0)))
            .collect();
        Ok(ProducerStateManager { entries, ongoing })
    }
}

/// A bounds-checked big-endian reader over a snapshot.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let end = self.pos.checked_add(N).ok_or("length overflow")?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| format!("snapshot truncated at byte {}", self.pos))?;
        let mut a = [0u8; N];
        a.copy_from_slice(bytes);
        self.pos = end;
        Ok(a)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// The path of the snapshot at `offset`.
pub fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

/// The snapshots in `dir` as `(offset, path)`, oldest first.
pub(crate) fn list_snapshots(storage: &dyn Storage, dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for path in storage.list_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some((offset, SNAPSHOT_SUFFIX)) = crate::segment::parse_segment_file_name(name) {
            out.push((offset, path));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes `state` as the snapshot at `offset`: to a `.tmp` file, fsynced, renamed into place,
/// directory fsynced, so a crash leaves either no snapshot or a whole one (a torn one would
/// also be caught by the CRC).
pub(crate) fn write_snapshot(
    storage: &dyn Storage,
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
) -> Result<()> {
    let path = snapshot_file(dir, offset);
    let bytes = state.encode_snapshot(offset);
    crate::checkpoint::replace_file(storage, dir, &path, &bytes)
}

/// Reads and decodes the snapshot at `offset`; `Ok(Err(reason))` when it is invalid.
pub(crate) fn read_snapshot(
    storage: &dyn Storage,
    path: &Path,
    offset: i64,
) -> Result<std::result::Result<ProducerStateManager, String>> {
    let file = storage
        .open(path, false)
        .map_err(|e| LogError::io(path, e))?;
    let len = file.len().map_err(|e| LogError::io(path, e))?;
    if len > MAX_SNAPSHOT_BYTES {
        return Ok(Err(format!("snapshot of {len} bytes is too large")));
    }
    let mut buf = vec![0u8; len as usize];
    match read_exact_at(&*file, &mut buf, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Ok(Err("snapshot shrank while being read".into()))
        }
        Err(e) => return Err(LogError::io(path, e)),
    }
    Ok(ProducerStateManager::decode_snapshot(&buf, offset))
}

/// Removes a snapshot file, ignoring one that is already gone.
pub(crate) fn remove_snapshot(storage: &dyn Storage, path: &Path) -> Result<()> {
    match storage.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn update(pid: i64, epoch: i16, first_seq: i32, n: i32, offset: i64) -> ProducerUpdate {
        ProducerUpdate {
            producer_id: pid,
            epoch,
            batch: BatchMetadata {
                first_seq,
                last_seq: increment_sequence(first_seq, n - 1),
                first_offset: Offset(offset),
                last_offset: Offset(offset + i64::from(n) - 1),
                timestamp: offset * 10,
            },
            transactional: false,
            control: false,
        }
    }

    fn txn(pid: i64, first_seq: i32, n: i32, offset: i64) -> ProducerUpdate {
        ProducerUpdate {
            transactional: true,
            ..update(pid, 0, first_seq, n, offset)
        }
    }

    fn marker(pid: i64, offset: i64) -> ProducerUpdate {
        ProducerUpdate {
            transactional: true,
            control: true,
            ..update(pid, 0, 0, 1, offset)
        }
    }

    #[test]
    fn transactions_open_on_their_first_batch_and_end_at_their_marker() {
        let mut s = ProducerStateManager::new();
        s.apply(&update(1, 0, 0, 2, 0));
        assert_eq!(s.first_unstable_offset(), None);
        s.apply(&txn(2, 0, 2, 2));
        s.apply(&txn(3, 0, 1, 4));
        s.apply(&txn(2, 2, 2, 5));
        assert_eq!(s.first_unstable_offset(), Some(Offset(2)));
        assert_eq!(
            s.get(ProducerId(2)).unwrap().current_txn_first_offset,
            Some(Offset(2))
        );
        s.apply(&marker(2, 7));
        assert_eq!(s.first_unstable_offset(), Some(Offset(4)));
        // The marker is not a data batch: the sequence state is unchanged.
        assert_eq!(s.get(ProducerId(2)).unwrap().last_sequence(), 3);
        s.apply(&marker(3, 8));
        assert_eq!(s.first_unstable_offset(), None);
        // A marker for an unknown producer has nothing to end.
        s.apply(&marker(9, 9));
        assert!(s.get(ProducerId(9)).is_none());
        // A producer with an ongoing transaction does not expire.
        s.apply(&txn(3, 1, 1, 10));
        assert_eq!(s.remove_expired(i64::MAX, 1), 2);
        assert_eq!(s.first_unstable_offset(), Some(Offset(10)));
    }

    #[test]
    fn an_abort_entry_records_the_last_stable_offset_after_it() {
        let mut s = ProducerStateManager::new();
        s.apply(&txn(1, 0, 2, 0));
        s.apply(&txn(2, 0, 1, 2));
        assert_eq!(s.aborted_txn_entry(ProducerId(3), Offset(5)), None);
        let e = s.aborted_txn_entry(ProducerId(1), Offset(5)).unwrap();
        assert_eq!(
            (e.first_offset, e.last_offset, e.last_stable_offset),
            (Offset(0), Offset(5), Offset(2))
        );
        s.apply(&marker(1, 5));
        assert_eq!(s.aborted_txn_entry(ProducerId(1), Offset(6)), None);
        let e = s.aborted_txn_entry(ProducerId(2), Offset(6)).unwrap();
        assert_eq!(
            (e.first_offset, e.last_offset, e.last_stable_offset),
            (Offset(2), Offset(6), Offset(7))
        );
    }

    #[test]
    fn snapshots_carry_ongoing_transactions_and_version_1_is_still_read() {
        let mut s = ProducerStateManager::new();
        s.apply(&update(1, 0, 0, 2, 0));
        s.apply(&txn(2, 0, 2, 2));
        let bytes = s.encode_snapshot(4);
        let back = ProducerStateManager::decode_snapshot(&bytes, 4).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.first_unstable_offset(), Some(Offset(2)));
        // A transaction starting at or after the snapshot's offset is invalid.
        assert!(ProducerStateManager::decode_snapshot(&s.encode_snapshot(2), 2).is_err());
        // Version 1: the same entries without the transaction field.
        let mut v1 = vec![0, 1, 0, 0, 0, 0];
        v1.extend_from_slice(&4i64.to_be_bytes());
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&1i64.to_be_bytes());
        v1.extend_from_slice(&0i16.to_be_bytes());
        v1.extend_from_slice(&10i64.to_be_bytes());
        v1.push(1);
        for x in [0i32, 1] {
            v1.extend_from_slice(&x.to_be_bytes());
        }
        for x in [0i64, 1, 10] {
            v1.extend_from_slice(&x.to_be_bytes());
        }
        let crc = crc32c::crc32c(&v1[6..]);
        v1[2..6].copy_from_slice(&crc.to_be_bytes());
        let old = ProducerStateManager::decode_snapshot(&v1, 4).unwrap();
        let e = old.get(ProducerId(1)).unwrap();
        assert_eq!((e.last_sequence(), e.current_txn_first_offset), (1, None));
    }

    #[test]
    fn sequences_wrap_like_the_clients() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(4, 5));
        assert!(!in_sequence(4, 6));
    }

    #[test]
    fn apply_keeps_five_batches_and_resets_on_a_new_epoch() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.apply(&update(3, 0, i * 2, 2, i64::from(i) * 2));
        }
        let e = s.get(ProducerId(3)).unwrap();
        assert_eq!(e.batches().len(), 5);
        assert_eq!(e.batches().next().unwrap().first_seq, 4);
        assert_eq!(e.last_sequence(), 13);
        s.apply(&update(3, 1, 0, 1, 14));
        let e = s.get(ProducerId(3)).unwrap();
        assert_eq!(
            (e.epoch, e.batches().len(), e.last_sequence()),
            (ProducerEpoch(1), 1, 0)
        );
    }

    #[test]
    fn snapshot_round_trips_and_detects_corruption() {
        let mut s = ProducerStateManager::new();
        for i in 0..9 {
            s.apply(&update(i64::from(i % 3), 2, i * 3, 3, i64::from(i) * 3));
        }
        let bytes = s.encode_snapshot(27);
        assert_eq!(
            ProducerStateManager::decode_snapshot(&bytes, 27),
            Ok(s.clone())
        );
        assert!(ProducerStateManager::decode_snapshot(&bytes, 28).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                ProducerStateManager::decode_snapshot(&bad, 27).is_err(),
                "flipped byte {i} went unnoticed"
            );
            assert!(ProducerStateManager::decode_snapshot(&bytes[..i], 27).is_err());
        }
        let empty = ProducerStateManager::new().encode_snapshot(0);
        assert_eq!(empty.len(), SNAPSHOT_HEADER_LEN);
        assert_eq!(
            ProducerStateManager::decode_snapshot(&empty, 0),
            Ok(ProducerStateManager::new())
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), offset in 0i64..1000) {
            let _ = ProducerStateManager::decode_snapshot(&bytes, offset);
        }

        #[test]
        fn decoding_bytes_with_a_valid_crc_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut bytes = vec![0, 1, 0, 0, 0, 0];
            bytes.extend_from_slice(&body);
            let crc = crc32c::crc32c(&bytes[6..]);
            bytes[2..6].copy_from_slice(&crc.to_be_bytes());
            let offset = body.get(..8).map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap()));
            let _ = ProducerStateManager::decode_snapshot(&bytes, offset);
        }
    }
}
