//! The coordinator state machine: every transactional id's metadata and the transitions of
//! KIP-98 (with KIP-360 recovery, KIP-447 offsets and KIP-890 verification and epoch bumps).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use potok_records::{ProducerEpoch, ProducerId};

use crate::records::{self, StoredTxn, MAX_STRING_LEN};
use crate::{
    DescribedTxn, ListFilter, ListedTxn, Output, ProducerIdAndEpoch, TopicPartition, TxnError,
    TxnResult, TxnState,
};

/// Hands out fresh producer ids (the broker asks the controller's AllocateProducerIds blocks).
pub trait ProducerIdAllocator {
    /// The next unused producer id.
    fn allocate(&mut self) -> Result<ProducerId, TxnError>;
}

impl<F: FnMut() -> Result<ProducerId, TxnError>> ProducerIdAllocator for F {
    fn allocate(&mut self) -> Result<ProducerId, TxnError> {
        self()
    }
}

/// Configuration, with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (default 900000): the largest timeout a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (default 604800000): idle ids are removed after this.
    pub id_expiration_ms: i64,
    /// `offsets.topic.num.partitions` (default 50): places a group for AddOffsetsToTxn.
    pub offsets_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            offsets_partitions: 50,
        }
    }
}

/// The name of the offsets topic, whose partition AddOffsetsToTxn adds (KIP-98/KIP-447).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `isProducerEpochExhausted`: an epoch at `Short.MaxValue - 1` cannot be bumped for a
/// further fence, so the id is replaced.
fn exhausted(epoch: ProducerEpoch) -> bool {
    epoch.0 >= i16::MAX - 1
}

#[derive(Debug, Clone)]
struct Meta {
    stored: StoredTxn,
    /// The epoch before the last bump (in memory only, as Kafka's `lastProducerEpoch`): lets a
    /// retried InitProducerId / TV2 EndTxn be recognised.
    last_epoch: ProducerEpoch,
    /// Partitions whose markers are not yet acknowledged, with the completion's sequence.
    pending_markers: BTreeSet<TopicPartition>,
    marker_seq: u64,
}

/// The transaction coordinator of one broker (all `__transaction_state` partitions it leads).
#[derive(Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, Meta>,
    outputs: Vec<Output>,
    next_seq: u64,
}

/// Collects `__transaction_state` records at load time (latest value per key).
#[derive(Debug, Default)]
pub struct Loader {
    latest: HashMap<String, Option<StoredTxn>>,
}

impl Loader {
    /// A new, empty loader.
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Feeds one record in log order.
    pub fn add(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), TxnError> {
        let id = records::decode_key(key)?;
        let value = value.map(records::decode_value).transpose()?;
        self.latest.insert(id, value);
        Ok(())
    }
}

impl TxnCoordinator {
    /// An empty coordinator.
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            txns: BTreeMap::new(),
            outputs: Vec::new(),
            next_seq: 1,
        }
    }

    /// Rebuilds the state from a [`Loader`]. Transactions found in PrepareCommit/PrepareAbort
    /// get their markers re-sent ([`Output::WriteMarkers`] in [`Self::drain_outputs`]), as
    /// Kafka's coordinator does on loading a partition; the Complete record follows the acks.
    pub fn load(&mut self, loader: Loader) {
        for (id, value) in loader.latest {
            let Some(mut stored) = value else {
                self.txns.remove(&id);
                continue;
            };
            if stored.state == TxnState::Dead {
                self.txns.remove(&id);
                continue;
            }
            // A PrepareEpochFence status is never written by this coordinator; an Ongoing
            // transaction is what it guards, so it is treated as one and expires by timeout.
            if stored.state == TxnState::PrepareEpochFence {
                stored.state = TxnState::Ongoing;
            }
            let meta = Meta {
                stored,
                last_epoch: ProducerEpoch(-1),
                pending_markers: BTreeSet::new(),
                marker_seq: 0,
            };
            self.txns.insert(id.clone(), meta);
            let state = self.txns[&id].stored.state;
            if matches!(state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                self.send_markers(&id);
            }
        }
    }

    /// Drops every id stored in `__transaction_state` partition `partition` of `partitions`
    /// (this broker stopped leading it: Kafka's `TransactionStateManager.removeTransactionsForTxnTopicPartition`).
    /// Their state lives on in the log for the partition's next leader; returns how many ids
    /// were dropped. Markers of their completions acknowledged later are ignored (the id is
    /// unknown then).
    pub fn unload_partition(&mut self, partition: i32, partitions: i32) -> usize {
        let before = self.txns.len();
        self.txns
            .retain(|id, _| records::partition_for(id, partitions) != partition);
        before - self.txns.len()
    }

    /// Takes the outputs produced so far, in order.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    fn check_id(id: &str) -> Result<(), TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest("empty transactional.id"));
        }
        if id.len() > MAX_STRING_LEN {
            return Err(TxnError::InvalidRequest("transactional.id too long"));
        }
        Ok(())
    }

    fn persist(&mut self, id: &str) -> Result<(), TxnError> {
        let key = records::encode_key(id)?;
        let value = match self.txns.get(id) {
            Some(m) => Some(records::encode_value(&m.stored)?),
            None => None,
        };
        self.outputs.push(Output::Persist {
            transactional_id: id.to_owned(),
            key,
            value,
        });
        Ok(())
    }

    fn send_markers(&mut self, id: &str) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(m) = self.txns.get_mut(id) else {
            return;
        };
        let result = if m.stored.state == TxnState::PrepareCommit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        m.pending_markers = m.stored.partitions.clone();
        m.marker_seq = seq;
        self.outputs.push(Output::WriteMarkers {
            transactional_id: id.to_owned(),
            seq,
            producer_id: m.stored.producer_id,
            producer_epoch: m.stored.producer_epoch,
            result,
            partitions: m.stored.partitions.clone(),
        });
        // A transaction without partitions has nothing to mark; it completes at once.
        if m.pending_markers.is_empty() {
            let _ = self.complete(id, seq);
        }
    }

    /// InitProducerId with a `transactional.id` (KIP-98), `expected` being KIP-360's
    /// `ProducerId`/`ProducerEpoch` of a producer recovering its own id (None for -1/-1).
    ///
    /// An ongoing transaction of the id is aborted with a bumped epoch, which fences the old
    /// producer; the caller then gets `CONCURRENT_TRANSACTIONS` and retries, as with Kafka.
    pub fn init_producer_id(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        now_ms: i64,
        alloc: &mut dyn ProducerIdAllocator,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        Self::check_id(id)?;
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout {
                timeout_ms,
                max_ms: self.config.max_timeout_ms,
            });
        }
        let Some(m) = self.txns.get_mut(id) else {
            let producer_id = alloc.allocate()?;
            let stored = StoredTxn {
                producer_id,
                previous_producer_id: ProducerId(-1),
                next_producer_id: ProducerId(-1),
                producer_epoch: ProducerEpoch(0),
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now_ms,
                start_ms: -1,
                client_transaction_version: 0,
            };
            let meta = Meta {
                stored,
                last_epoch: ProducerEpoch(-1),
                pending_markers: BTreeSet::new(),
                marker_seq: 0,
            };
            self.txns.insert(id.to_owned(), meta);
            self.persist(id)?;
            return Ok(ProducerIdAndEpoch {
                producer_id,
                producer_epoch: ProducerEpoch(0),
            });
        };
        let s = &m.stored;
        if matches!(
            s.state,
            TxnState::PrepareCommit
                | TxnState::PrepareAbort
                | TxnState::PrepareEpochFence
                | TxnState::Dead
        ) {
            return Err(TxnError::ConcurrentTransactions);
        }
        let current = ProducerIdAndEpoch {
            producer_id: s.producer_id,
            producer_epoch: s.producer_epoch,
        };
        if let Some(exp) = expected {
            // KIP-360: the caller must hold the current epoch, or be retrying the bump it
            // already got (then it gets the same answer again, with no second bump).
            let retry = s.state != TxnState::Ongoing
                && ((exp.producer_id == s.producer_id && exp.producer_epoch == m.last_epoch)
                    || (exp.producer_id == s.previous_producer_id
                        && s.producer_epoch.0 == 0
                        && m.last_epoch.0 == -2));
            if retry {
                return Ok(current);
            }
            if exp.producer_id != s.producer_id || exp.producer_epoch != s.producer_epoch {
                return Err(TxnError::ProducerFenced);
            }
        }
        if s.state == TxnState::Ongoing {
            // Fence the running producer: abort its transaction with epoch + 1 (Kafka's
            // prepareFenceProducerEpoch + abort; an exhausted epoch aborts without a bump and
            // the retried InitProducerId moves to a new id).
            let epoch = s.producer_epoch;
            let m = self.txns.get_mut(id).expect("present");
            if !exhausted(epoch) {
                m.last_epoch = epoch;
                m.stored.producer_epoch = ProducerEpoch(epoch.0 + 1);
            }
            self.begin_end(id, TxnResult::Abort, now_ms)?;
            return Err(TxnError::ConcurrentTransactions);
        }
        // Empty / CompleteCommit / CompleteAbort: bump the epoch, or move to a new id when the
        // epoch is exhausted (KIP-360).
        let m = self.txns.get_mut(id).expect("present");
        if exhausted(m.stored.producer_epoch) {
            let new_id = alloc.allocate()?;
            m.stored.previous_producer_id = m.stored.producer_id;
            m.stored.producer_id = new_id;
            m.stored.producer_epoch = ProducerEpoch(0);
            // Marks "the retry of this switch" for the KIP-360 check above.
            m.last_epoch = ProducerEpoch(-2);
        } else {
            m.last_epoch = m.stored.producer_epoch;
            m.stored.producer_epoch = ProducerEpoch(m.stored.producer_epoch.0 + 1);
        }
        m.stored.timeout_ms = timeout_ms;
        m.stored.state = TxnState::Empty;
        m.stored.partitions.clear();
        m.stored.start_ms = -1;
        m.stored.last_update_ms = now_ms;
        m.stored.next_producer_id = ProducerId(-1);
        let answer = ProducerIdAndEpoch {
            producer_id: m.stored.producer_id,
            producer_epoch: m.stored.producer_epoch,
        };
        self.persist(id)?;
        Ok(answer)
    }

    /// Checks that the caller holds the id's current producer id and epoch.
    fn check_producer(
        &self,
        id: &str,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
    ) -> Result<&Meta, TxnError> {
        let m = self
            .txns
            .get(id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.stored.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch < m.stored.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if epoch > m.stored.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (all versions; v4+ batches several ids, which the broker answers by
    /// calling this per id). With `verify_only` (KIP-890 part 1, the `VerifyOnly` flag a
    /// partition leader sends before a producer's first transactional write) nothing is added:
    /// it succeeds only if the transaction is Ongoing and holds every partition, so a late
    /// write cannot join a transaction that has already ended.
    pub fn add_partitions(
        &mut self,
        id: &str,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        partitions: &[TopicPartition],
        verify_only: bool,
        now_ms: i64,
    ) -> Result<(), TxnError> {
        Self::check_id(id)?;
        if partitions.is_empty() {
            return Err(TxnError::InvalidRequest("no partitions"));
        }
        let m = self.check_producer(id, producer_id, epoch)?;
        let s = &m.stored;
        if matches!(
            s.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        ) {
            return Err(TxnError::ConcurrentTransactions);
        }
        if s.state == TxnState::Dead {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        let all_in = partitions.iter().all(|p| s.partitions.contains(p));
        if verify_only {
            return if s.state == TxnState::Ongoing && all_in {
                Ok(())
            } else {
                Err(TxnError::InvalidTxnState)
            };
        }
        if s.state == TxnState::Ongoing && all_in {
            return Ok(());
        }
        if partitions.iter().any(|p| p.topic.len() > MAX_STRING_LEN) {
            return Err(TxnError::InvalidRequest("topic name too long"));
        }
        let m = self.txns.get_mut(id).expect("checked");
        if m.stored.state != TxnState::Ongoing {
            m.stored.partitions.clear();
            m.stored.start_ms = now_ms;
            m.stored.state = TxnState::Ongoing;
        }
        m.stored.partitions.extend(partitions.iter().cloned());
        m.stored.last_update_ms = now_ms;
        self.persist(id)
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition, whose offsets
    /// TxnOffsetCommit will write and whose markers make them visible (KIP-98, KIP-447).
    pub fn add_offsets(
        &mut self,
        id: &str,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        group_id: &str,
        now_ms: i64,
    ) -> Result<TopicPartition, TxnError> {
        let tp = TopicPartition::new(
            OFFSETS_TOPIC,
            records::partition_for(group_id, self.config.offsets_partitions),
        );
        self.add_partitions(
            id,
            producer_id,
            epoch,
            std::slice::from_ref(&tp),
            false,
            now_ms,
        )?;
        Ok(tp)
    }

    /// EndTxn. `tv2` says the client runs `transaction.version` 2 (EndTxn v5+, KIP-890 part 2):
    /// the epoch is bumped by every completion so a delayed EndTxn of an earlier transaction is
    /// fenced, and the answer carries the id and epoch to use next. Under TV1 the answer is the
    /// unchanged id and epoch.
    pub fn end_txn(
        &mut self,
        id: &str,
        producer: ProducerIdAndEpoch,
        commit: bool,
        tv2: bool,
        now_ms: i64,
        alloc: &mut dyn ProducerIdAllocator,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        Self::check_id(id)?;
        let (producer_id, epoch) = (producer.producer_id, producer.producer_epoch);
        let wanted = if commit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let m = self
            .txns
            .get(id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let s = &m.stored;
        let answer = ProducerIdAndEpoch {
            producer_id: if s.next_producer_id.0 >= 0 {
                s.next_producer_id
            } else {
                s.producer_id
            },
            producer_epoch: if s.next_producer_id.0 >= 0 {
                ProducerEpoch(0)
            } else {
                s.producer_epoch
            },
        };
        let same_result = |state: TxnState| match wanted {
            TxnResult::Commit => {
                matches!(state, TxnState::PrepareCommit | TxnState::CompleteCommit)
            }
            TxnResult::Abort => matches!(state, TxnState::PrepareAbort | TxnState::CompleteAbort),
        };
        // TV2 retry: the completion already bumped the epoch, so the retry quotes the one
        // before, or (when the bump exhausted the epoch and the id moved on) the previous
        // producer id at the last usable epoch. Both are read from what is stored, as Kafka's
        // `endTxnEpochBumped` and `retryOnOverflow`, so a retry is recognised after the
        // coordinator moved too. A retry while the markers are being written gets the
        // retriable CONCURRENT_TRANSACTIONS; once complete, a retry of the same outcome is
        // answered and any other is refused.
        let bumped = producer_id == s.producer_id
            && epoch.0 >= 0
            && i32::from(epoch.0) + 1 == i32::from(s.producer_epoch.0);
        let overflowed = producer_id == s.previous_producer_id
            && epoch.0 == i16::MAX - 1
            && s.producer_epoch.0 == 0;
        let tv2_retry = tv2
            && s.client_transaction_version >= 2
            && (bumped || overflowed)
            && !matches!(s.state, TxnState::Ongoing | TxnState::Empty);
        if tv2_retry {
            return match s.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    Err(TxnError::ConcurrentTransactions)
                }
                state if same_result(state) => Ok(answer),
                _ => Err(TxnError::InvalidTxnState),
            };
        }
        if s.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch < s.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if epoch > s.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch);
        }
        match s.state {
            TxnState::Ongoing => {}
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                // The markers of the completion are being written: whatever is asked waits for
                // them (Kafka answers CONCURRENT_TRANSACTIONS while a transition is pending,
                // KAFKA-18464). Under TV2 this is also a producer that committed and at once
                // aborts an empty transaction at its new epoch, which must not be fatal.
                return Err(TxnError::ConcurrentTransactions);
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // A TV1 retry of a finished EndTxn succeeds (same epoch, same outcome); under
                // TV2 the epoch moved on, so a match here is a new, empty EndTxn.
                return if same_result(s.state) && !tv2 {
                    Ok(answer)
                } else if tv2 && !commit {
                    // TV2 lets a producer abort with no transaction open (KIP-890 part 2):
                    // nothing to mark, but the epoch is still bumped.
                    self.bump_empty(id, now_ms)
                } else {
                    Err(TxnError::InvalidTxnState)
                };
            }
            TxnState::Empty => {
                return if tv2 && !commit {
                    self.bump_empty(id, now_ms)
                } else {
                    Err(TxnError::InvalidTxnState)
                };
            }
            TxnState::PrepareEpochFence | TxnState::Dead => {
                return Err(TxnError::ConcurrentTransactions)
            }
        }
        let m = self.txns.get_mut(id).expect("present");
        if tv2 {
            m.stored.client_transaction_version = 2;
            m.last_epoch = m.stored.producer_epoch;
            if exhausted(m.stored.producer_epoch) {
                // The bump reaches Short.MaxValue: the markers fence with it, and the id moves
                // to a fresh producer id (`NextProducerId`) when the transaction completes.
                let next = alloc.allocate()?;
                let m = self.txns.get_mut(id).expect("present");
                m.stored.next_producer_id = next;
                m.stored.producer_epoch = ProducerEpoch(i16::MAX);
            } else {
                m.stored.producer_epoch = ProducerEpoch(m.stored.producer_epoch.0 + 1);
            }
        }
        self.begin_end(id, wanted, now_ms)?;
        let s = &self.txns[id].stored;
        Ok(if s.next_producer_id.0 >= 0 {
            ProducerIdAndEpoch {
                producer_id: s.next_producer_id,
                producer_epoch: ProducerEpoch(0),
            }
        } else {
            ProducerIdAndEpoch {
                producer_id: s.producer_id,
                producer_epoch: s.producer_epoch,
            }
        })
    }

    fn bump_empty(&mut self, id: &str, now_ms: i64) -> Result<ProducerIdAndEpoch, TxnError> {
        let m = self.txns.get_mut(id).expect("present");
        if exhausted(m.stored.producer_epoch) {
            return Err(TxnError::ProducerFenced);
        }
        m.last_epoch = m.stored.producer_epoch;
        m.stored.producer_epoch = ProducerEpoch(m.stored.producer_epoch.0 + 1);
        m.stored.client_transaction_version = 2;
        m.stored.state = TxnState::CompleteAbort;
        m.stored.last_update_ms = now_ms;
        let answer = ProducerIdAndEpoch {
            producer_id: m.stored.producer_id,
            producer_epoch: m.stored.producer_epoch,
        };
        self.persist(id)?;
        Ok(answer)
    }

    /// Writes Prepare* and asks for the markers.
    fn begin_end(&mut self, id: &str, result: TxnResult, now_ms: i64) -> Result<(), TxnError> {
        let m = self.txns.get_mut(id).expect("present");
        m.stored.state = match result {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        };
        m.stored.last_update_ms = now_ms;
        self.persist(id)?;
        self.send_markers(id);
        Ok(())
    }

    /// The broker wrote the markers of `partitions` for completion `seq`. When every partition
    /// of that completion is acknowledged the Complete record is written; returns whether that
    /// happened. An ack quoting another `seq` (a delayed ack of an earlier transaction) is
    /// ignored.
    pub fn markers_written(
        &mut self,
        id: &str,
        seq: u64,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<bool, TxnError> {
        let Some(m) = self.txns.get_mut(id) else {
            return Ok(false);
        };
        if m.marker_seq != seq
            || !matches!(
                m.stored.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        {
            return Ok(false);
        }
        for p in partitions {
            m.pending_markers.remove(p);
        }
        if !m.pending_markers.is_empty() {
            return Ok(false);
        }
        m.stored.last_update_ms = now_ms;
        self.complete(id, seq)
    }

    fn complete(&mut self, id: &str, seq: u64) -> Result<bool, TxnError> {
        let m = self.txns.get_mut(id).expect("present");
        if m.marker_seq != seq {
            return Ok(false);
        }
        m.stored.state = if m.stored.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        m.stored.partitions.clear();
        m.stored.start_ms = -1;
        if m.stored.next_producer_id.0 >= 0 {
            m.stored.previous_producer_id = m.stored.producer_id;
            m.stored.producer_id = m.stored.next_producer_id;
            m.stored.next_producer_id = ProducerId(-1);
            m.stored.producer_epoch = ProducerEpoch(0);
            m.last_epoch = ProducerEpoch(-1);
        }
        self.persist(id)?;
        Ok(true)
    }

    /// Partitions whose markers are still unacknowledged, with the completion's sequence (for
    /// the broker's retries and for tests).
    pub fn pending_markers(&self, id: &str) -> Option<(u64, BTreeSet<TopicPartition>)> {
        let m = self.txns.get(id)?;
        if m.pending_markers.is_empty() {
            return None;
        }
        Some((m.marker_seq, m.pending_markers.clone()))
    }

    /// Fires timers due at `now_ms`: transactions past `transaction.timeout.ms` (strictly, as
    /// Kafka's `timedOutTransactions`) are aborted
    /// with an epoch bump (Kafka's `abortTimedOutTransactions`, which fences the producer), and
    /// ids idle past `transactional.id.expiration.ms` are removed with a tombstone.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), TxnError> {
        let mut expired_txns = Vec::new();
        let mut expired_ids = Vec::new();
        for (id, m) in &self.txns {
            let s = &m.stored;
            match s.state {
                TxnState::Ongoing if s.start_ms + i64::from(s.timeout_ms) < now_ms => {
                    expired_txns.push(id.clone())
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    if s.last_update_ms + self.config.id_expiration_ms <= now_ms =>
                {
                    expired_ids.push(id.clone())
                }
                _ => {}
            }
        }
        for id in expired_txns {
            let m = self.txns.get_mut(&id).expect("present");
            if !exhausted(m.stored.producer_epoch) {
                m.last_epoch = m.stored.producer_epoch;
                m.stored.producer_epoch = ProducerEpoch(m.stored.producer_epoch.0 + 1);
            }
            self.begin_end(&id, TxnResult::Abort, now_ms)?;
        }
        for id in expired_ids {
            self.txns.remove(&id);
            self.persist(&id)?;
        }
        Ok(())
    }

    /// The earliest `now_ms` at which [`Self::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.txns
            .values()
            .filter_map(|m| {
                let s = &m.stored;
                match s.state {
                    // Kafka aborts once `start + timeout < now` (strictly), so the first due
                    // instant is one millisecond after.
                    TxnState::Ongoing => Some(s.start_ms + i64::from(s.timeout_ms) + 1),
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => Some(
                        s.last_update_ms
                            .saturating_add(self.config.id_expiration_ms),
                    ),
                    _ => None,
                }
            })
            .min()
    }

    /// DescribeTransactions for one id.
    pub fn describe(&self, id: &str) -> Result<DescribedTxn, TxnError> {
        let m = self.txns.get(id).ok_or(TxnError::TransactionalIdNotFound)?;
        let s = &m.stored;
        Ok(DescribedTxn {
            state: s.state,
            producer_id: s.producer_id,
            producer_epoch: s.producer_epoch,
            timeout_ms: s.timeout_ms,
            start_ms: s.start_ms,
            partitions: s.partitions.clone(),
        })
    }

    /// ListTransactions with its filters (KIP-664; KIP-994 duration filter: only transactions
    /// started at least `min_duration_ms` ago).
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> Vec<ListedTxn> {
        self.txns
            .iter()
            .filter(|(_, m)| {
                let s = &m.stored;
                (filter.states.is_empty() || filter.states.contains(&s.state))
                    && (filter.producer_ids.is_empty()
                        || filter.producer_ids.contains(&s.producer_id))
                    && (filter.min_duration_ms < 0
                        || (s.start_ms >= 0 && now_ms - s.start_ms >= filter.min_duration_ms))
            })
            .map(|(id, m)| ListedTxn {
                transactional_id: id.clone(),
                producer_id: m.stored.producer_id,
                state: m.stored.state,
            })
            .collect()
    }

    /// The stored state of an id (tests and replay checks).
    pub fn stored(&self, id: &str) -> Option<&StoredTxn> {
        self.txns.get(id).map(|m| &m.stored)
    }

    /// Every transactional id known.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.txns.keys().map(String::as_str)
    }
}
