//! KIP-890 part 1 on a partition leader that is not the producer's transaction coordinator (a
//! cluster): before a transactional batch is appended, the leader asks the coordinator's broker
//! whether the partition belongs to the producer's ongoing transaction (AddPartitionsToTxn v4
//! with `verify_only`, as Kafka's `AddPartitionsToTxnManager`), unless the producer already has
//! a transaction open on the partition.
//!
//! KIP-890 part 2 (Produce v12, TxnOffsetCommit v5): the client no longer sends
//! AddPartitionsToTxn/AddOffsetsToTxn, so the leader *adds* the partition instead of verifying
//! it: the same request without `verify_only` to another broker's coordinator, or the
//! coordinator's own call when this broker coordinates the id. The append is then checked as
//! for part 1.
//!
//! The answer alone is not enough: the transaction may end between the answer and the append,
//! and a batch appended after its transaction's marker would open a transaction nothing ends.
//! As Kafka's `VerificationGuard`, a guard for (partition, producer) is registered *before*
//! the request is sent, every marker written on the partition for the producer removes it
//! (under the coordinator's lock, `partition_side.rs`; under `transaction.version` 2 except a
//! marker at the guard's own epoch, which ends the previous transaction), and the append,
//! under the same lock,
//! goes ahead only if the guard it was verified with is still there or the producer's
//! transaction is open on the partition. A guard is shared by the concurrent requests of one
//! producer (up to five in flight), so one request's failure does not fail another's append.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use potok_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use potok_protocol::messages::produce_request::TopicProduceData;
use potok_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::{split_batches, ProducerEpoch, ProducerId};
use potok_txn::TopicPartition;

use super::{lock, Deps, TxnService};
use crate::quorum::forward::Forward;
use crate::topics::{now_ms, Partition};
use crate::Broker;

/// The AddPartitionsToTxn version of a verification (v4 introduced `verify_only`).
const VERSION: i16 = 4;
/// How long a verification may take.
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 1024 * 1024;
const CLIENT_ID: &str = "potok-txn-verification";
/// Guards kept before old ones are purged: one per (partition, producer) with a transaction
/// being verified or open, so this only bounds what producers that vanished leave behind.
const MAX_GUARDS: usize = 100_000;

/// The guards of a broker, per (partition, producer id).
pub(super) type Guards = HashMap<(TopicPartition, i64), Guard>;

/// One verification guard (Kafka's `VerificationStateEntry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Guard {
    token: u64,
    /// When it was registered, to purge those of producers that vanished.
    registered_ms: i64,
    /// The highest producer epoch of the writes verified under it.
    epoch: ProducerEpoch,
    /// Registered by a KIP-890 part 2 write (Produce v12, TxnOffsetCommit v5), whose
    /// transactions end with markers at the next transaction's epoch.
    epoch_bump: bool,
}

/// Registers the guard of `key` for a write at `epoch` unless one exists, which concurrent
/// writes of the producer then share (raising its epoch, as Kafka's
/// `maybeUpdateLowestSequenceAndEpoch`). Returns its token.
fn register(
    guards: &mut Guards,
    key: (TopicPartition, i64),
    epoch: ProducerEpoch,
    epoch_bump: bool,
    now_ms: i64,
    next_token: impl FnOnce() -> u64,
) -> u64 {
    let g = guards.entry(key).or_insert_with(|| Guard {
        token: next_token(),
        registered_ms: now_ms,
        epoch,
        epoch_bump,
    });
    g.epoch = g.epoch.max(epoch);
    g.token
}

/// A marker at `marker_epoch` was written for the producer of `key`: its guard no longer lets
/// writes in, except under `transaction.version` 2 when the marker carries the guard's own
/// epoch. EndTxn v5 bumps the epoch, so such a marker ends the *previous* transaction while
/// the guard belongs to the next one, whose write the coordinator may accept just after the
/// marker (Kafka's `isV2NextTransactionStarted` in `UnifiedLog`); refusing that write would
/// fail a good transaction with INVALID_TXN_STATE.
fn clear(guards: &mut Guards, key: &(TopicPartition, i64), marker_epoch: ProducerEpoch) {
    let next_transaction = guards
        .get(key)
        .is_some_and(|g| g.epoch_bump && g.epoch == marker_epoch);
    if !next_transaction {
        guards.remove(key);
    }
}

/// What the verification of a produce request's transactional batches found, per partition:
/// the guard to append under, or the code to refuse the batch with.
pub type Verified = HashMap<(String, i32), Result<u64, ErrorCode>>;

impl TxnService {
    /// Whether the transactional batches of `id` are verified by the coordinator's broker
    /// ([`verify_produce`]): in a cluster, when this broker does not coordinate `id` now.
    pub fn needs_remote_verification(&self, id: &str) -> bool {
        self.cluster.is_some() && self.owner_error(id).is_some()
    }

    /// The guard of `(tp, producer)` for a write at `epoch` (`epoch_bump`: a KIP-890 part 2
    /// write), registered now unless one exists.
    fn register_guard(
        &self,
        tp: &TopicPartition,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        epoch_bump: bool,
    ) -> u64 {
        let mut guards = lock(&self.guards);
        let now = now_ms();
        if guards.len() >= MAX_GUARDS {
            // Producers that vanished mid-transaction: their transactions were aborted by
            // `transaction.max.timeout.ms` at the latest, so older guards guard nothing.
            let max_age = i64::from(self.settings.coordinator.max_timeout_ms);
            guards.retain(|_, g| now - g.registered_ms <= max_age);
        }
        let next = &self.next_guard;
        register(
            &mut guards,
            (tp.clone(), producer_id.0),
            epoch,
            epoch_bump,
            now,
            || next.fetch_add(1, Ordering::Relaxed) + 1,
        )
    }

    /// A marker at `epoch` for `producer_id` was written on `tp`: its guard is gone, unless it
    /// is the next transaction's ([`clear`]; call under the coordinator's lock).
    pub(super) fn clear_guard(
        &self,
        tp: &TopicPartition,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
    ) {
        clear(&mut lock(&self.guards), &(tp.clone(), producer_id.0), epoch);
    }

    /// Whether the guard `token` of `(tp, producer)` still stands (call under the coordinator's
    /// lock).
    pub(super) fn guard_holds(
        &self,
        tp: &TopicPartition,
        producer_id: ProducerId,
        token: u64,
    ) -> bool {
        lock(&self.guards)
            .get(&(tp.clone(), producer_id.0))
            .is_some_and(|g| g.token == token)
    }

    /// For a write to `tp` whose transactional id another broker coordinates: whether it may
    /// be appended (the producer's transaction is open on the partition, or the verification
    /// `guard` still stands: no marker came in between, since markers are written under the
    /// coordinator's lock, which the caller holds). `None` when it was never verified here.
    pub(super) fn remotely_verified(
        &self,
        tp: &TopicPartition,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        guard: Option<u64>,
    ) -> Option<bool> {
        let open = self
            .topics
            .get(&tp.topic)
            .and_then(|t| t.partition(tp.partition))
            .is_some_and(|p| has_open_txn(&p, producer_id, epoch));
        match guard {
            _ if open => Some(true),
            Some(g) => Some(self.guard_holds(tp, producer_id, g)),
            None => None,
        }
    }
}

/// Whether `producer_id` at `epoch` has a transaction open on `part`.
pub(super) fn has_open_txn(
    part: &Partition,
    producer_id: ProducerId,
    epoch: ProducerEpoch,
) -> bool {
    part.with_log(|log| {
        Ok(log
            .producer_state()
            .get(producer_id)
            .is_some_and(|e| e.epoch == epoch && e.current_txn_first_offset.is_some()))
    })
    .unwrap_or(false)
}

/// Kafka's codes for a failed verification as a produce answer (`AddPartitionsToTxnManager`):
/// the coordinator unreachable, moving or loading becomes the retriable
/// NOT_ENOUGH_REPLICAS; a fenced or older producer INVALID_PRODUCER_EPOCH; a transaction still
/// completing CONCURRENT_TRANSACTIONS; anything else INVALID_TXN_STATE.
fn produce_code(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotCoordinator
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::RequestTimedOut => ErrorCode::NotEnoughReplicas,
        ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch => {
            ErrorCode::InvalidProducerEpoch
        }
        ErrorCode::ConcurrentTransactions => ErrorCode::ConcurrentTransactions,
        _ => ErrorCode::InvalidTxnState,
    }
}

/// The producer of a partition's records when its first batch is transactional.
fn transactional_producer(records: Option<&Bytes>) -> Option<(ProducerId, ProducerEpoch)> {
    let batch = split_batches(records?.clone()).next()?.ok()?;
    let h = batch.header();
    h.is_transactional()
        .then_some((ProducerId(h.producer_id), ProducerEpoch(h.producer_epoch)))
}

/// Verifies the transactional batches of a produce request of `id` with the id's coordinator,
/// or with `add` (Produce v12+) adds their partitions to the transaction (see the module docs):
/// the partitions this broker leads whose producer has no transaction open there. Partitions
/// left out of the answer need no verification (or are refused by the produce path for other
/// reasons); a partition added by this broker's own coordinator is left out too, since the
/// append checks it under the coordinator's lock.
pub async fn verify_produce(
    broker: &Arc<Broker>,
    id: &str,
    topics: &[TopicProduceData],
    add: bool,
) -> Verified {
    let remote = broker.txn.needs_remote_verification(id);
    if !remote && !add {
        return Verified::new();
    }
    let mut wanted: BTreeMap<(ProducerId, ProducerEpoch), Vec<TopicPartition>> = BTreeMap::new();
    for t in topics {
        let Some(topic) = broker.topics.get(&t.name) else {
            continue;
        };
        for p in &t.partition_data {
            let Some((pid, epoch)) = transactional_producer(p.records.as_ref()) else {
                continue;
            };
            let Some(part) = topic.partition(p.index) else {
                continue;
            };
            if part.is_led_elsewhere() || has_open_txn(&part, pid, epoch) {
                continue;
            }
            wanted
                .entry((pid, epoch))
                .or_default()
                .push(TopicPartition::new(&t.name, p.index));
        }
    }
    let mut out = Verified::new();
    for ((pid, epoch), tps) in wanted {
        if !remote {
            if let Err(code) = add_here(broker, id, (pid, epoch), tps.clone()).await {
                for tp in tps {
                    out.insert((tp.topic, tp.partition), Err(produce_code(code)));
                }
            }
            continue;
        }
        let guards: Vec<u64> = tps
            .iter()
            .map(|tp| broker.txn.register_guard(tp, pid, epoch, add))
            .collect();
        let codes = ask(broker, id, (pid, epoch), &tps, !add).await;
        for (tp, guard) in tps.into_iter().zip(guards) {
            let r = match codes.as_ref().map(|c| c.get(&tp).copied()) {
                Ok(Some(ErrorCode::None)) => Ok(guard),
                Ok(Some(code)) => Err(produce_code(code)),
                // The coordinator left the partition out of its answer.
                Ok(None) => Err(ErrorCode::InvalidTxnState),
                Err(code) => Err(produce_code(*code)),
            };
            out.insert((tp.topic, tp.partition), r);
        }
    }
    out
}

/// For a TxnOffsetCommit of `id`: verifies with the id's coordinator that the group's
/// `__consumer_offsets` partition is in the producer's ongoing transaction (a broker that does
/// not coordinate the id), or with `add` (TxnOffsetCommit v5+) adds it to the transaction. The
/// guard to commit under (`None` when this broker coordinates the id: the commit is checked
/// under its lock), or the code to answer every partition with.
pub async fn verify_offsets(
    broker: &Arc<Broker>,
    id: &str,
    (pid, epoch): (ProducerId, ProducerEpoch),
    group_id: &str,
    add: bool,
) -> Result<Option<u64>, ErrorCode> {
    let tp = TopicPartition::new(
        crate::internal_topics::GROUP_METADATA_TOPIC,
        potok_txn::records::partition_for(group_id, broker.groups.partitions()),
    );
    if !broker.txn.needs_remote_verification(id) {
        if !add {
            return Ok(None);
        }
        return add_here(broker, id, (pid, epoch), vec![tp])
            .await
            .map(|()| None)
            .map_err(offsets_code);
    }
    let guard = broker.txn.register_guard(&tp, pid, epoch, add);
    let code = match ask(broker, id, (pid, epoch), std::slice::from_ref(&tp), !add).await {
        Ok(codes) => codes
            .get(&tp)
            .copied()
            .unwrap_or(ErrorCode::InvalidTxnState),
        Err(code) => code,
    };
    match code {
        ErrorCode::None => Ok(Some(guard)),
        code => Err(offsets_code(code)),
    }
}

/// Kafka's codes for a failed verification or addition as a TxnOffsetCommit answer.
fn offsets_code(code: ErrorCode) -> ErrorCode {
    match code {
        // The coordinator unreachable, moving or loading: the client retries (it looks up the
        // group's coordinator again and sends the commit anew).
        ErrorCode::NotCoordinator
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::ProducerFenced
        | ErrorCode::InvalidProducerEpoch
        | ErrorCode::ConcurrentTransactions => code,
        _ => ErrorCode::InvalidTxnState,
    }
}

/// KIP-890 part 2 when this broker coordinates `id`: adds `tps` to the producer's transaction
/// as AddPartitionsToTxn would, and waits until the coordinator's record is committed (a
/// cluster), so the append that follows finds the partitions in the transaction.
async fn add_here(
    broker: &Arc<Broker>,
    id: &str,
    (pid, epoch): (ProducerId, ProducerEpoch),
    tps: Vec<TopicPartition>,
) -> Result<(), ErrorCode> {
    let b = Arc::clone(broker);
    let id = id.to_string();
    // The coordinator appends to `__transaction_state`: off the async workers.
    let (r, waits) = tokio::task::spawn_blocking(move || {
        b.txn
            .call(&Deps::of(&b), Some(&id), |c, now, _| {
                c.add_partitions(&id, pid, epoch, &tps, false, now)
            })
            .split()
    })
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "adding partitions to a transaction failed");
        ErrorCode::UnknownServerError
    })?;
    match r {
        Ok(Ok(())) => super::cluster::wait_all(&waits).await,
        Ok(Err(e)) => Err(super::error_code(&e)),
        Err(code) => Err(code),
    }
}

/// Sends the verification (or, without `verify_only`, the addition) to the coordinator's
/// broker; its code per partition, or the code of a failed exchange.
async fn ask(
    broker: &Arc<Broker>,
    id: &str,
    (pid, epoch): (ProducerId, ProducerEpoch),
    tps: &[TopicPartition],
    verify_only: bool,
) -> Result<HashMap<TopicPartition, ErrorCode>, ErrorCode> {
    let (node, _, _) = broker.txn.cluster_coordinator(broker, id).await?;
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for tp in tps {
        match topics.iter_mut().find(|t| t.name == tp.topic) {
            Some(t) => t.partitions.push(tp.partition),
            None => topics.push(AddPartitionsToTxnTopic {
                name: tp.topic.clone(),
                partitions: vec![tp.partition],
                ..Default::default()
            }),
        }
    }
    let req = AddPartitionsToTxnRequest {
        transactions: vec![AddPartitionsToTxnTransaction {
            transactional_id: id.to_string(),
            producer_id: pid.0,
            producer_epoch: epoch.0,
            verify_only,
            topics,
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp: AddPartitionsToTxnResponse = Forward {
        key: ApiKey::AddPartitionsToTxn,
        version: VERSION,
        client_id: CLIENT_ID,
        max_answer: MAX_ANSWER,
        timeout: TIMEOUT,
    }
    .call(broker, node, &req)
    .await
    .map_err(|e| {
        tracing::warn!(node, error = %e, "transaction verification failed");
        ErrorCode::CoordinatorNotAvailable
    })?;
    if resp.error_code != 0 {
        return Err(ErrorCode::from_code(resp.error_code).unwrap_or(ErrorCode::UnknownServerError));
    }
    let mut codes = HashMap::new();
    for r in resp.results_by_transaction {
        for t in r.topic_results {
            for p in t.results_by_partition {
                codes.insert(
                    TopicPartition::new(&t.name, p.partition_index),
                    ErrorCode::from_code(p.partition_error_code)
                        .unwrap_or(ErrorCode::UnknownServerError),
                );
            }
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (TopicPartition, i64) {
        (TopicPartition::new("t", 0), 7)
    }

    /// Found by `tests/cluster_transactions_java.rs` (Kafka's Java producer, TV2): the
    /// previous transaction's marker, at the epoch EndTxn v5 bumped to, landed between the
    /// registration of the next transaction's guard and the coordinator's answer, and the
    /// good write was refused with INVALID_TXN_STATE.
    #[test]
    fn a_tv2_marker_at_the_guards_epoch_ends_the_previous_transaction_and_keeps_the_guard() {
        let mut g = Guards::new();
        let token = register(&mut g, key(), ProducerEpoch(3), true, 0, || 1);
        clear(&mut g, &key(), ProducerEpoch(3));
        assert_eq!(g.get(&key()).map(|g| g.token), Some(token));
        // The transaction's own marker (at the next epoch) removes it.
        clear(&mut g, &key(), ProducerEpoch(4));
        assert!(g.is_empty());
    }

    #[test]
    fn any_other_marker_removes_the_guard() {
        // TV1 (KIP-890 part 1): markers carry the transaction's own epoch.
        let mut g = Guards::new();
        register(&mut g, key(), ProducerEpoch(3), false, 0, || 1);
        clear(&mut g, &key(), ProducerEpoch(3));
        assert!(g.is_empty());
        // TV2, a marker at a later epoch (a fence or a timeout abort bumped it again).
        register(&mut g, key(), ProducerEpoch(3), true, 0, || 2);
        clear(&mut g, &key(), ProducerEpoch(5));
        assert!(g.is_empty());
    }

    #[test]
    fn concurrent_writes_share_a_guard_at_their_highest_epoch() {
        let mut g = Guards::new();
        let first = register(&mut g, key(), ProducerEpoch(3), true, 0, || 1);
        let second = register(&mut g, key(), ProducerEpoch(4), true, 5, || 2);
        assert_eq!(first, second);
        let guard = g[&key()];
        assert_eq!((guard.epoch, guard.registered_ms), (ProducerEpoch(4), 0));
        // A write of the older epoch does not lower it.
        register(&mut g, key(), ProducerEpoch(2), true, 9, || 3);
        assert_eq!(g[&key()].epoch, ProducerEpoch(4));
        // The marker ending the epoch-3 transaction (at epoch 4) keeps the shared guard; a
        // late write of epoch 3 appended under it is refused by the partition's producer
        // state, whose epoch the marker raised to 4.
        clear(&mut g, &key(), ProducerEpoch(4));
        assert_eq!(g[&key()].token, first);
    }

    #[test]
    fn verification_failures_take_kafkas_produce_codes() {
        for retriable in [
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::RequestTimedOut,
        ] {
            assert_eq!(produce_code(retriable), ErrorCode::NotEnoughReplicas);
        }
        assert_eq!(
            produce_code(ErrorCode::ProducerFenced),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            produce_code(ErrorCode::ConcurrentTransactions),
            ErrorCode::ConcurrentTransactions
        );
        assert_eq!(
            produce_code(ErrorCode::InvalidTxnState),
            ErrorCode::InvalidTxnState
        );
        assert_eq!(
            produce_code(ErrorCode::UnknownServerError),
            ErrorCode::InvalidTxnState
        );
    }

    #[test]
    fn only_transactional_batches_name_their_producer() {
        let txn = potok_records::RecordBatchBuilder::new()
            .producer(ProducerId(7), ProducerEpoch(3), 0)
            .transactional(true)
            .key_value(0, Some(b"k"), Some(b"v"))
            .build()
            .unwrap()
            .into_bytes();
        assert_eq!(
            transactional_producer(Some(&txn)),
            Some((ProducerId(7), ProducerEpoch(3)))
        );
        let plain = potok_records::RecordBatchBuilder::new()
            .producer(ProducerId(7), ProducerEpoch(3), 0)
            .key_value(0, Some(b"k"), Some(b"v"))
            .build()
            .unwrap()
            .into_bytes();
        assert_eq!(transactional_producer(Some(&plain)), None);
        assert_eq!(transactional_producer(None), None);
        assert_eq!(
            transactional_producer(Some(&Bytes::from_static(b"garbage"))),
            None
        );
    }
}
