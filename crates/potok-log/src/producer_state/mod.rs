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

use potok_records::{BatchHeader, Offset, ProducerEpoch, ProducerId};

use crate::{LogError, Result};

mod snapshot;

#[cfg(test)]
use snapshot::SNAPSHOT_HEADER_LEN;
pub(crate) use snapshot::{list_snapshots, read_snapshot, remove_snapshot, write_snapshot};
pub use snapshot::{snapshot_file, SNAPSHOT_SUFFIX};

/// How many batches per producer are remembered for duplicate detection. Kafka keeps five
/// (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`), matching the clients' limit of five in-flight
/// requests per connection with idempotence on.
pub const BATCHES_PER_PRODUCER: usize = 5;

/// Default `producer.id.expiration.ms`: one day, Kafka's default.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// How often appends look for expired producer ids; Kafka's
/// `producer.id.expiration.check.interval.ms` default (10 minutes).
pub(crate) const EXPIRATION_CHECK_INTERVAL_MS: i64 = 10 * 60 * 1000;

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
    /// The coordinator epoch of the last transaction marker written for the producer, -1
    /// before any (Kafka's `ProducerStateEntry.coordinatorEpoch`): a marker from an older
    /// coordinator is fenced.
    pub coordinator_epoch: i32,
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
    /// A marker's coordinator epoch (set by the log from the marker's record), -1 otherwise.
    pub(crate) coordinator_epoch: i32,
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
            coordinator_epoch: -1,
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
        self.check_leader_update(h, update, earlier)
    }

    /// [`Self::check_leader_batch`] for a marker whose update the caller completed with the
    /// coordinator epoch read from its record.
    pub(crate) fn check_leader_batch_update(
        &self,
        h: &BatchHeader,
        update: ProducerUpdate,
    ) -> Result<LeaderCheck> {
        self.check_leader_update(h, update, std::iter::empty())
    }

    fn check_leader_update(
        &self,
        h: &BatchHeader,
        update: ProducerUpdate,
        earlier: impl DoubleEndedIterator<Item = ProducerUpdate>,
    ) -> Result<LeaderCheck> {
        if update.control {
            // Markers carry no data sequence; Kafka's `appendEndTxnMarker` checks the producer
            // epoch (an older one is a zombie's) and the coordinator epoch (an older one is a
            // coordinator that lost its `__transaction_state` partition).
            if let Some(e) = self.entries.get(&update.producer_id) {
                if update.epoch < e.epoch.0 {
                    return Err(LogError::InvalidProducerEpoch {
                        producer_id: ProducerId(update.producer_id),
                        epoch: ProducerEpoch(update.epoch),
                        current_epoch: e.epoch,
                    });
                }
                if update.coordinator_epoch < e.coordinator_epoch {
                    return Err(LogError::TransactionCoordinatorFenced {
                        producer_id: ProducerId(update.producer_id),
                        coordinator_epoch: update.coordinator_epoch,
                        current: e.coordinator_epoch,
                    });
                }
            }
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
        let entry = self
            .entries
            .entry(u.producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_id: ProducerId(u.producer_id),
                epoch: ProducerEpoch(u.epoch),
                last_timestamp: u.batch.timestamp,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
                current_txn_first_offset: None,
                coordinator_epoch: -1,
            });
        if u.control {
            // Kafka's `appendEndTxnMarker` then `ProducerStateEntry.update`: the marker ends
            // the transaction, and its epoch and coordinator epoch become the producer's, so
            // a marker carrying an epoch bumped by EndTxn (KIP-890 part 2) fences the data
            // batches of the transaction it ended. A marker for a producer the partition did
            // not know (expired, or its batches removed) makes an entry without batches.
            if let Some(first) = entry.current_txn_first_offset.take() {
                self.ongoing.remove(&(first, u.producer_id));
            }
            if entry.epoch.0 != u.epoch {
                entry.epoch = ProducerEpoch(u.epoch);
                entry.batches.clear();
            }
            entry.coordinator_epoch = entry.coordinator_epoch.max(u.coordinator_epoch);
            entry.last_timestamp = entry.last_timestamp.max(u.batch.timestamp);
            return;
        }
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
            coordinator_epoch: -1,
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
        // A marker for an unknown producer has nothing to end, but its epochs are kept (an
        // entry without batches) so a stale marker after it is fenced.
        s.apply(&ProducerUpdate {
            coordinator_epoch: 3,
            ..marker(9, 9)
        });
        let e = s.get(ProducerId(9)).unwrap();
        assert_eq!((e.batches().len(), e.coordinator_epoch), (0, 3));
        assert_eq!(s.first_unstable_offset(), None);
        let stale = potok_records::RecordBatchBuilder::end_transaction_marker(
            ProducerId(9),
            ProducerEpoch(0),
            potok_records::ControlRecordType::Abort,
            2,
            0,
        )
        .build()
        .unwrap();
        let mut u = ProducerUpdate::from_header(stale.header()).unwrap();
        u.coordinator_epoch = 2;
        let fenced = |s: &ProducerStateManager, u: ProducerUpdate| {
            let h = stale.header();
            s.check_leader_batch_update(h, u)
        };
        assert!(matches!(
            fenced(&s, u),
            Err(LogError::TransactionCoordinatorFenced { current: 3, .. })
        ));
        // A marker with a newer epoch bumps the producer's epoch (KIP-890 part 2); one with an
        // older epoch after it is refused.
        s.apply(&ProducerUpdate {
            epoch: 1,
            coordinator_epoch: 3,
            ..marker(9, 10)
        });
        assert_eq!(s.get(ProducerId(9)).unwrap().epoch, ProducerEpoch(1));
        u.coordinator_epoch = 3;
        assert!(matches!(
            fenced(&s, u),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        // A producer with an ongoing transaction does not expire.
        s.apply(&txn(3, 1, 1, 10));
        assert_eq!(s.remove_expired(i64::MAX, 1), 3);
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
