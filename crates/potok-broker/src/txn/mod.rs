//! The transaction coordinator service (issue 21): drives the sans-IO
//! [`potok_txn::TxnCoordinator`] with real time, stores its records in the internal
//! `__transaction_state` topic, writes the COMMIT/ABORT markers of every completed transaction
//! to its partitions (and through the group service to `__consumer_offsets`), and checks
//! transactional produce against the coordinator (KIP-890 part 1).
//!
//! # Storage
//!
//! `__transaction_state` is an internal topic of the [`TopicManager`] with
//! `transaction.state.log.num.partitions` partitions and the configs of Kafka's
//! `TransactionStateManager` (compacted, `transaction.state.log.min.isr`,
//! `transaction.state.log.segment.bytes`; [`crate::internal_topics::transaction_state_overrides`]).
//! As Kafka does, it is created when first needed: by FindCoordinator with `key_type=1` or the
//! first InitProducerId with a transactional id. A transactional id lives in partition
//! `abs(hash(id)) % partitions` of the existing topic. On a single node this broker leads
//! every partition, so it coordinates every transactional id.
//!
//! # Load
//!
//! At start every partition is read in full into a [`potok_txn::Loader`] (latest value per
//! id); the coordinator then re-sends the markers of every transaction it finds in
//! PrepareCommit or PrepareAbort and writes its Complete record, as Kafka's coordinator does
//! when it loads a partition. A failed append of a coordinator record makes the service load
//! the coordinator again from the log, so memory never stays ahead of what was written.
//!
//! # Markers
//!
//! A completion's markers are written in process, synchronously, before the EndTxn answer:
//! one control batch per partition (Kafka's `EndTransactionMarker`, the coordinator epoch being
//! the leader epoch of the id's `__transaction_state` partition), `__consumer_offsets`
//! partitions through [`crate::group::GroupService::write_txn_marker`]. A partition that no
//! longer exists counts as written (Kafka's marker channel drops markers of deleted
//! partitions); a failed write stays pending and is retried by the timer task.
//!
//! # Locking
//!
//! One `std::sync::Mutex` guards the coordinator and the topic's partitions; it is taken
//! before the group service's lock and before any partition's lock, never across an
//! `.await`. A transactional produce is verified and appended under it
//! ([`TxnService::append_verified`]), so a marker can never be written between the
//! verification of a batch and its append: a late write cannot join (and hang behind) a
//! transaction that already ended.
//!
//! # Failpoints (tests only)
//!
//! `POTOK_TEST_TXN_FAILPOINT=after-prepare-commit` aborts the process right after a
//! PrepareCommit record is appended; `after-first-marker` right after the first marker of a
//! transaction with more than one partition. The crash tests use them to check that a
//! restarted coordinator completes such transactions; nothing else reads the variable.

pub mod handlers;
mod load;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use potok_log::LogError;
use potok_protocol::ErrorCode;
use potok_records::{ControlRecordType, ProducerEpoch, ProducerId, RecordBatchBuilder};
use potok_txn::{
    records, Output, ProducerIdAllocator, TopicPartition, TxnConfig, TxnCoordinator, TxnError,
    TxnResult, TxnState,
};
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group::GroupService;
use crate::internal_topics::{transaction_state_overrides, TRANSACTION_STATE_TOPIC};
use crate::producer_ids::ProducerIds;
use crate::topics::{now_ms, ApiError, NewTopic, Partition, Topic, TopicManager};
use crate::Broker;

/// The test-only crash switch (see the module docs).
const FAILPOINT_ENV: &str = "POTOK_TEST_TXN_FAILPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failpoint {
    AfterPrepareCommit,
    AfterFirstMarker,
}

/// Settings of the service, from Kafka's names.
#[derive(Debug, Clone)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.replication.factor` (capped at the live brokers: one).
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: i64,
    /// The coordinator's own settings.
    pub coordinator: TxnConfig,
}

fn parse<T: std::str::FromStr>(cfg: &BrokerConfig, name: &str) -> Result<T> {
    let v = cfg.get(name).unwrap_or_default();
    v.parse()
        .map_err(|_| BrokerError::Config(format!("{name}={v}: not a valid number")))
}

impl TxnSettings {
    /// Reads and checks the settings.
    pub fn from_config(cfg: &BrokerConfig) -> Result<TxnSettings> {
        let partitions: i32 = parse(cfg, "transaction.state.log.num.partitions")?;
        let replication_factor: i16 = parse(cfg, "transaction.state.log.replication.factor")?;
        let min_isr: i32 = parse(cfg, "transaction.state.log.min.isr")?;
        let max_timeout_ms: i32 = parse(cfg, "transaction.max.timeout.ms")?;
        let id_expiration_ms: i64 = parse(cfg, "transactional.id.expiration.ms")?;
        let offsets_partitions: i32 = parse(cfg, "offsets.topic.num.partitions")?;
        let segment_bytes: i64 = parse(cfg, "transaction.state.log.segment.bytes")?;
        let positive = |name: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(BrokerError::Config(format!("{name} must be at least 1")))
            }
        };
        positive("transaction.state.log.num.partitions", partitions >= 1)?;
        positive(
            "transaction.state.log.replication.factor",
            replication_factor >= 1,
        )?;
        positive("transaction.state.log.min.isr", min_isr >= 1)?;
        positive("transaction.max.timeout.ms", max_timeout_ms >= 1)?;
        positive("transactional.id.expiration.ms", id_expiration_ms >= 1)?;
        Ok(TxnSettings {
            partitions,
            replication_factor,
            min_isr,
            segment_bytes,
            coordinator: TxnConfig {
                max_timeout_ms,
                id_expiration_ms,
                offsets_partitions,
            },
        })
    }
}

struct Inner {
    coordinator: TxnCoordinator,
    /// The partitions of `__transaction_state` by index; empty until the topic exists.
    partitions: Vec<Arc<Partition>>,
}

/// The broker's transaction coordinator. Thread-safe; see the module docs for the lock order.
pub struct TxnService {
    inner: Mutex<Inner>,
    timer: Notify,
    topics: Arc<TopicManager>,
    settings: TxnSettings,
    failpoint: Option<Failpoint>,
    /// Transactions completed since start, by outcome (metrics).
    committed: AtomicU64,
    aborted: AtomicU64,
}

impl std::fmt::Debug for TxnService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The coordinator keeps its invariants per call (a failed append reloads it), so a panic
    // in one request must not take every transaction down.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kafka's codes for the coordinator's errors (`TransactionCoordinator`'s results; the
/// version-dependent PRODUCER_FENCED is mapped by the handlers).
pub fn error_code(e: &TxnError) -> ErrorCode {
    match e {
        TxnError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        TxnError::InvalidTransactionTimeout { .. } => ErrorCode::InvalidTransactionTimeout,
        TxnError::ProducerFenced => ErrorCode::ProducerFenced,
        TxnError::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping => ErrorCode::InvalidProducerIdMapping,
        TxnError::ConcurrentTransactions => ErrorCode::ConcurrentTransactions,
        TxnError::InvalidTxnState => ErrorCode::InvalidTxnState,
        TxnError::TransactionalIdNotFound => ErrorCode::TransactionalIdNotFound,
        TxnError::ProducerIdUnavailable(_) => ErrorCode::CoordinatorNotAvailable,
        TxnError::CorruptRecord { .. }
        | TxnError::UnsupportedVersion { .. }
        | TxnError::Encode { .. } => ErrorCode::UnknownServerError,
    }
}

/// Producer ids for the coordinator from the broker's durable blocks.
struct Ids<'a>(&'a ProducerIds);

impl ProducerIdAllocator for Ids<'_> {
    fn allocate(&mut self) -> std::result::Result<ProducerId, TxnError> {
        match self.0 {
            ProducerIds::Local(ids) => ids
                .next_id()
                .map(ProducerId)
                .map_err(|e| TxnError::ProducerIdUnavailable(e.to_string())),
            // Transactions are served on a single node only (their APIs are not advertised by
            // quorum members yet), so a cluster's controller-issued blocks are never asked here.
            ProducerIds::Cluster(_) => Err(TxnError::ProducerIdUnavailable(
                "transactions are not served by a cluster member yet".into(),
            )),
        }
    }
}

/// What [`TxnService::call`] needs of the broker besides the service.
pub struct Deps<'a> {
    /// The group service (markers on `__consumer_offsets`).
    pub groups: &'a GroupService,
    /// Producer ids.
    pub producer_ids: &'a ProducerIds,
}

impl<'a> Deps<'a> {
    /// The dependencies a broker provides.
    pub fn of(broker: &'a Broker) -> Deps<'a> {
        Deps {
            groups: &broker.groups,
            producer_ids: &broker.producer_ids,
        }
    }
}

impl TxnService {
    /// Loads every existing partition of `__transaction_state` and completes the transactions
    /// found prepared (their markers are written now). Blocking (file IO); call before serving,
    /// after the group service is open.
    pub fn open(
        cfg: &BrokerConfig,
        topics: Arc<TopicManager>,
        groups: &GroupService,
    ) -> Result<TxnService> {
        let mut settings = TxnSettings::from_config(cfg)?;
        // Groups are placed by the existing offsets topic's partition count.
        settings.coordinator.offsets_partitions = groups.partitions();
        let failpoint = match std::env::var(FAILPOINT_ENV).ok().as_deref() {
            Some("after-prepare-commit") => Some(Failpoint::AfterPrepareCommit),
            Some("after-first-marker") => Some(Failpoint::AfterFirstMarker),
            _ => None,
        };
        let svc = TxnService {
            inner: Mutex::new(Inner {
                coordinator: TxnCoordinator::new(settings.coordinator.clone()),
                partitions: Vec::new(),
            }),
            timer: Notify::new(),
            topics,
            settings,
            failpoint,
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
        };
        if let Some(t) = svc.topics.get(TRANSACTION_STATE_TOPIC) {
            let mut inner = lock(&svc.inner);
            inner.partitions = t.state().partitions;
            let coordinator = load::load_coordinator(&svc.settings.coordinator, &inner.partitions)
                .map_err(|e| {
                    BrokerError::Config(format!("loading {TRANSACTION_STATE_TOPIC}: {e}"))
                })?;
            inner.coordinator = coordinator;
            tracing::info!(
                ids = inner.coordinator.ids().count(),
                "transaction coordinator loaded"
            );
        }
        // Markers of transactions found prepared; producer ids are never needed here.
        let mut inner = lock(&svc.inner);
        let outputs = inner.coordinator.drain_outputs();
        let _ = svc.apply_outputs(&mut inner, outputs, groups);
        drop(inner);
        Ok(svc)
    }

    /// Creates `__transaction_state` unless it exists. Blocking (file IO).
    pub fn ensure_topic(&self) -> std::result::Result<(), ApiError> {
        let mut inner = lock(&self.inner);
        self.ensure_locked(&mut inner)
    }

    fn ensure_locked(&self, inner: &mut Inner) -> std::result::Result<(), ApiError> {
        if !inner.partitions.is_empty() {
            return Ok(());
        }
        let topic = self.create_topic()?;
        inner.partitions = topic.state().partitions;
        Ok(())
    }

    fn create_topic(&self) -> std::result::Result<Arc<Topic>, ApiError> {
        if let Some(t) = self.topics.get(TRANSACTION_STATE_TOPIC) {
            return Ok(t);
        }
        if self.settings.replication_factor > 1 {
            // Kafka would refuse to create the topic with more replicas than live brokers
            // (COORDINATOR_NOT_AVAILABLE until enough brokers register); a single node has one.
            tracing::info!(
                configured = self.settings.replication_factor,
                "transaction.state.log.replication.factor above the single node's one replica; creating {TRANSACTION_STATE_TOPIC} with one"
            );
        }
        let t = self.topics.create_internal_topic(NewTopic {
            name: TRANSACTION_STATE_TOPIC.to_string(),
            partitions: self.settings.partitions,
            configs: transaction_state_overrides(
                self.settings.min_isr.min(1),
                self.settings.segment_bytes,
            ),
        })?;
        tracing::info!(
            partitions = self.settings.partitions,
            "created the internal topic {TRANSACTION_STATE_TOPIC}"
        );
        Ok(t)
    }

    /// The partition count that places ids: the existing topic's, else the configured one.
    fn partition_count(&self, inner: &Inner) -> i32 {
        if inner.partitions.is_empty() {
            self.settings.partitions
        } else {
            i32::try_from(inner.partitions.len()).unwrap_or(i32::MAX)
        }
    }

    /// Runs `f` on the coordinator (after firing due timers), then appends its records and
    /// writes its markers. Returns `f`'s result, or `Err(code)` when a record could not be
    /// written (the coordinator was then reloaded from the log).
    pub fn call<R>(
        &self,
        deps: &Deps<'_>,
        f: impl FnOnce(&mut TxnCoordinator, i64, &mut dyn ProducerIdAllocator) -> R,
    ) -> std::result::Result<R, ErrorCode> {
        let mut inner = lock(&self.inner);
        if let Err(e) = self.ensure_locked(&mut inner) {
            tracing::warn!(error = %e.message, "cannot create {TRANSACTION_STATE_TOPIC}");
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let now = now_ms();
        let before = inner.coordinator.next_deadline();
        let mut ids = Ids(deps.producer_ids);
        // Deadlines already passed take effect before the request, so what a client sees does
        // not depend on how late the timer task runs.
        let ticked = inner.coordinator.tick(now);
        let r = f(&mut inner.coordinator, now, &mut ids);
        let outputs = inner.coordinator.drain_outputs();
        let result = self.apply_outputs(&mut inner, outputs, deps.groups);
        let after = inner.coordinator.next_deadline();
        drop(inner);
        if after.is_some() && (before.is_none() || after < before) {
            self.timer.notify_one();
        }
        if let Err(e) = ticked {
            tracing::error!(error = %e, "transaction coordinator timer failed");
        }
        result.map(|()| r)
    }

    /// Appends records and writes markers in order; a failed append reloads the coordinator
    /// from the log and returns its code.
    fn apply_outputs(
        &self,
        inner: &mut Inner,
        outputs: Vec<Output>,
        groups: &GroupService,
    ) -> std::result::Result<(), ErrorCode> {
        let mut queue: std::collections::VecDeque<Output> = outputs.into();
        let mut failed = None;
        while let Some(o) = queue.pop_front() {
            let now = now_ms();
            match o {
                Output::Persist {
                    transactional_id,
                    key,
                    value,
                } => {
                    let prepare_commit = self.failpoint == Some(Failpoint::AfterPrepareCommit)
                        && value
                            .clone()
                            .and_then(|v| records::decode_value(v).ok())
                            .is_some_and(|s| s.state == TxnState::PrepareCommit);
                    if let Err(e) = self.append_record(inner, &transactional_id, key, value, now) {
                        tracing::error!(id = %transactional_id, error = %e, "cannot append to {TRANSACTION_STATE_TOPIC}");
                        failed = Some(append_error_code(&e));
                        break;
                    }
                    if prepare_commit {
                        tracing::error!("failpoint after-prepare-commit: aborting the process");
                        std::process::abort();
                    }
                }
                Output::WriteMarkers {
                    transactional_id,
                    seq,
                    producer_id,
                    producer_epoch,
                    result,
                    partitions,
                } => {
                    let coordinator_epoch = self.coordinator_epoch(inner, &transactional_id);
                    let written = self.write_markers(
                        &partitions,
                        producer_id,
                        producer_epoch,
                        result,
                        coordinator_epoch,
                        groups,
                    );
                    match inner
                        .coordinator
                        .markers_written(&transactional_id, seq, &written, now)
                    {
                        Ok(completed) => {
                            if completed {
                                self.count_completion(result);
                            }
                            queue.extend(inner.coordinator.drain_outputs())
                        }
                        Err(e) => {
                            tracing::error!(id = %transactional_id, error = %e, "completing a transaction failed");
                        }
                    }
                }
            }
        }
        if let Some(code) = failed {
            // Memory holds changes the log does not: start again from the log (Kafka unloads
            // and reloads a partition whose append failed).
            match load::load_coordinator(&self.settings.coordinator, &inner.partitions) {
                Ok(c) => inner.coordinator = c,
                Err(e) => {
                    tracing::error!(error = %e, "reloading the transaction coordinator failed")
                }
            }
            // The re-sent markers of prepared transactions, without a second reload (their own
            // failures are retried by the timer task).
            let again = inner.coordinator.drain_outputs();
            let _ = self.apply_outputs_once(inner, again, groups);
            return Err(code);
        }
        Ok(())
    }

    /// [`Self::apply_outputs`] without a second reload (after a reload's own outputs).
    fn apply_outputs_once(
        &self,
        inner: &mut Inner,
        outputs: Vec<Output>,
        groups: &GroupService,
    ) -> std::result::Result<(), ErrorCode> {
        for o in outputs {
            if let Output::WriteMarkers {
                transactional_id,
                seq,
                producer_id,
                producer_epoch,
                result,
                partitions,
            } = o
            {
                let coordinator_epoch = self.coordinator_epoch(inner, &transactional_id);
                let written = self.write_markers(
                    &partitions,
                    producer_id,
                    producer_epoch,
                    result,
                    coordinator_epoch,
                    groups,
                );
                if let Ok(true) =
                    inner
                        .coordinator
                        .markers_written(&transactional_id, seq, &written, now_ms())
                {
                    self.count_completion(result);
                }
                for out in inner.coordinator.drain_outputs() {
                    if let Output::Persist {
                        transactional_id,
                        key,
                        value,
                    } = out
                    {
                        if let Err(e) =
                            self.append_record(inner, &transactional_id, key, value, now_ms())
                        {
                            tracing::error!(error = %e, "cannot append to {TRANSACTION_STATE_TOPIC}");
                            return Err(append_error_code(&e));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn state_partition(&self, inner: &Inner, id: &str) -> Option<Arc<Partition>> {
        let p = records::partition_for(id, self.partition_count(inner));
        usize::try_from(p)
            .ok()
            .and_then(|i| inner.partitions.get(i))
            .cloned()
    }

    /// Kafka's coordinator epoch: the leader epoch of the id's `__transaction_state` partition.
    fn coordinator_epoch(&self, inner: &Inner, id: &str) -> i32 {
        self.state_partition(inner, id)
            .map_or(0, |p| p.leader_epoch().0.max(0))
    }

    fn append_record(
        &self,
        inner: &Inner,
        id: &str,
        key: bytes::Bytes,
        value: Option<bytes::Bytes>,
        now: i64,
    ) -> std::result::Result<(), LogError> {
        let part = self.state_partition(inner, id).ok_or(LogError::Offline)?;
        let batch = RecordBatchBuilder::new()
            .record(potok_records::NewRecord {
                timestamp: now,
                key: Some(key),
                value,
                headers: Vec::new(),
            })
            .build()
            .map_err(LogError::InvalidBatch)?;
        part.append(batch.as_bytes().clone(), now)?;
        Ok(())
    }

    /// Writes the markers of one completion; returns the partitions written (or gone).
    fn write_markers(
        &self,
        partitions: &BTreeSet<TopicPartition>,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        result: TxnResult,
        coordinator_epoch: i32,
        groups: &GroupService,
    ) -> Vec<TopicPartition> {
        let marker = match result {
            TxnResult::Commit => ControlRecordType::Commit,
            TxnResult::Abort => ControlRecordType::Abort,
        };
        let mut written = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let now = now_ms();
            let r = if tp.topic == crate::internal_topics::GROUP_METADATA_TOPIC {
                groups.write_txn_marker(
                    tp.partition,
                    producer_id,
                    epoch,
                    marker,
                    coordinator_epoch,
                    now,
                )
            } else {
                match self
                    .topics
                    .get(&tp.topic)
                    .and_then(|t| t.partition(tp.partition))
                {
                    // A deleted partition needs no marker (Kafka's marker channel drops it).
                    None => Ok(()),
                    Some(part) => {
                        write_marker(&part, producer_id, epoch, marker, coordinator_epoch, now)
                    }
                }
            };
            match r {
                Ok(()) => written.push(tp.clone()),
                Err(e) => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "writing a transaction marker failed; retried later");
                }
            }
            if self.failpoint == Some(Failpoint::AfterFirstMarker)
                && partitions.len() > 1
                && written.len() == 1
            {
                tracing::error!("failpoint after-first-marker: aborting the process");
                std::process::abort();
            }
        }
        written
    }

    /// Verifies that `tp` belongs to the ongoing transaction of `transactional_id` held by
    /// `producer_id`/`epoch` (KIP-890 part 1) and runs `append` under the coordinator's lock,
    /// so no marker can be written in between. A failed verification answers Kafka's produce
    /// codes: an older epoch or another producer id `INVALID_PRODUCER_EPOCH`, a transaction
    /// still completing `CONCURRENT_TRANSACTIONS` (retriable), anything else
    /// `INVALID_TXN_STATE`.
    pub fn append_verified<R>(
        &self,
        transactional_id: &str,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        tp: TopicPartition,
        append: impl FnOnce() -> R,
    ) -> std::result::Result<R, ErrorCode> {
        let inner = &mut *lock(&self.inner);
        let now = now_ms();
        let verified = inner.coordinator.add_partitions(
            transactional_id,
            producer_id,
            epoch,
            std::slice::from_ref(&tp),
            true,
            now,
        );
        match verified {
            Ok(()) => Ok(append()),
            Err(TxnError::ProducerFenced | TxnError::InvalidProducerEpoch) => {
                Err(ErrorCode::InvalidProducerEpoch)
            }
            Err(TxnError::ConcurrentTransactions) => Err(ErrorCode::ConcurrentTransactions),
            Err(_) => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Runs `f` with the coordinator locked and the `__consumer_offsets` partition of a
    /// TxnOffsetCommit verified to be in the transaction (KIP-890 for TxnOffsetCommit), so
    /// that the offsets are written while the transaction is still ongoing.
    pub fn with_verified_offsets<R>(
        &self,
        transactional_id: &str,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        group_id: &str,
        offsets_partitions: i32,
        f: impl FnOnce() -> R,
    ) -> std::result::Result<R, TxnError> {
        let inner = &mut *lock(&self.inner);
        let tp = TopicPartition::new(
            crate::internal_topics::GROUP_METADATA_TOPIC,
            records::partition_for(group_id, offsets_partitions),
        );
        inner.coordinator.add_partitions(
            transactional_id,
            producer_id,
            epoch,
            std::slice::from_ref(&tp),
            true,
            now_ms(),
        )?;
        Ok(f())
    }

    /// Writes one marker now, under the coordinator's lock (the WriteTxnMarkers API).
    pub fn write_marker_now(
        &self,
        groups: &GroupService,
        tp: &TopicPartition,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> std::result::Result<(), LogError> {
        let _inner = lock(&self.inner);
        let marker = match result {
            TxnResult::Commit => ControlRecordType::Commit,
            TxnResult::Abort => ControlRecordType::Abort,
        };
        let now = now_ms();
        if tp.topic == crate::internal_topics::GROUP_METADATA_TOPIC {
            return groups.write_txn_marker(
                tp.partition,
                producer_id,
                epoch,
                marker,
                coordinator_epoch,
                now,
            );
        }
        let part = self
            .topics
            .get(&tp.topic)
            .and_then(|t| t.partition(tp.partition))
            .ok_or(LogError::Offline)?;
        write_marker(&part, producer_id, epoch, marker, coordinator_epoch, now)
    }

    /// Read-only access for Describe/ListTransactions.
    pub fn read<R>(&self, f: impl FnOnce(&TxnCoordinator, i64) -> R) -> R {
        let inner = lock(&self.inner);
        f(&inner.coordinator, now_ms())
    }

    /// Fires due timers and retries markers that failed.
    fn tick(&self, deps: &Deps<'_>) {
        let pending = self.call(deps, |c, _, _| {
            c.ids()
                .filter_map(|id| c.pending_markers(id).map(|(s, p)| (id.to_owned(), s, p)))
                .collect::<Vec<_>>()
        });
        if let Ok(pending) = pending {
            self.retry_markers(deps.groups, pending);
        }
    }

    fn retry_markers(
        &self,
        groups: &GroupService,
        pending: Vec<(String, u64, BTreeSet<TopicPartition>)>,
    ) {
        if pending.is_empty() {
            return;
        }
        let mut inner = lock(&self.inner);
        for (id, seq, partitions) in pending {
            let Some(s) = inner.coordinator.stored(&id).cloned() else {
                continue;
            };
            let result = match s.state {
                TxnState::PrepareCommit => TxnResult::Commit,
                TxnState::PrepareAbort => TxnResult::Abort,
                _ => continue,
            };
            let outputs = vec![Output::WriteMarkers {
                transactional_id: id,
                seq,
                producer_id: s.producer_id,
                producer_epoch: s.producer_epoch,
                result,
                partitions,
            }];
            let _ = self.apply_outputs(&mut inner, outputs, groups);
        }
    }

    fn next_deadline(&self) -> Option<i64> {
        lock(&self.inner).coordinator.next_deadline()
    }

    fn count_completion(&self, result: TxnResult) {
        let counter = match result {
            TxnResult::Commit => &self.committed,
            TxnResult::Abort => &self.aborted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus lines: open transactions and the transactions completed since start.
    pub fn render_metrics(&self) -> String {
        format!(
            "# TYPE potok_txn_open gauge\npotok_txn_open {}\n\
             # TYPE potok_txn_committed_total counter\npotok_txn_committed_total {}\n\
             # TYPE potok_txn_aborted_total counter\npotok_txn_aborted_total {}\n",
            self.open_transactions(),
            self.committed.load(Ordering::Relaxed),
            self.aborted.load(Ordering::Relaxed)
        )
    }

    /// Open transactions (Ongoing or completing), for metrics.
    pub fn open_transactions(&self) -> usize {
        let inner = lock(&self.inner);
        inner
            .coordinator
            .ids()
            .filter(|id| {
                inner.coordinator.stored(id).is_some_and(|s| {
                    matches!(
                        s.state,
                        TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                    )
                })
            })
            .count()
    }
}

fn write_marker(
    part: &Partition,
    producer_id: ProducerId,
    epoch: ProducerEpoch,
    marker: ControlRecordType,
    coordinator_epoch: i32,
    now: i64,
) -> std::result::Result<(), LogError> {
    let batch = RecordBatchBuilder::end_transaction_marker(
        producer_id,
        epoch,
        marker,
        coordinator_epoch,
        now,
    )
    .build()
    .map_err(LogError::InvalidBatch)?;
    part.append(batch.as_bytes().clone(), now)?;
    Ok(())
}

/// Kafka's mapping of a failed `__transaction_state` append
/// (`TransactionStateManager.appendTransactionToLog`): storage trouble and a partition not
/// available answer `COORDINATOR_NOT_AVAILABLE` (the client retries), a record too large
/// `UNKNOWN_SERVER_ERROR`.
fn append_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::BatchTooLarge { .. }
        | LogError::InvalidBatch(_)
        | LogError::InvalidBatchFields(_) => ErrorCode::UnknownServerError,
        _ => ErrorCode::CoordinatorNotAvailable,
    }
}

/// Fires the coordinator's timers (transaction timeouts, id expiry, marker retries) until
/// shutdown.
pub async fn run_timers(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let txn = &broker.txn;
    loop {
        let wait = match txn.next_deadline() {
            Some(d) => Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0)),
            None => Duration::from_secs(1),
        };
        // At least every second: clock jumps and marker retries.
        let wait = wait.min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = txn.timer.notified() => {}
            _ = shutdown.changed() => return,
        }
        if txn.next_deadline().is_none() && lock(&txn.inner).partitions.is_empty() {
            // No transactional id was ever seen: nothing to do, and the topic must not be
            // created by the timer.
            continue;
        }
        let b = Arc::clone(&broker);
        // Appends and marker writes are file IO: off the async workers.
        let _ = tokio::task::spawn_blocking(move || b.txn.tick(&Deps::of(&b))).await;
    }
}
