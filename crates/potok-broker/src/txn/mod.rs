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
//! every partition, so it coordinates every transactional id; on a broker of a cluster it
//! coordinates the ids of the partitions it leads, created, loaded and dropped as `cluster.rs`
//! describes, and its markers go out as `markers.rs` describes (the sections below are the
//! single node's).
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

mod cluster;
pub mod handlers;
mod load;
mod markers;
mod partition_side;
mod settings;
pub mod verify;

pub use cluster::{watch_leadership, Called};
pub use settings::{TxnSettings, MAX_TRANSACTION_VERSION};

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use potok_log::LogError;
use potok_protocol::ErrorCode;
use potok_records::{ProducerId, RecordBatchBuilder};
use potok_txn::{
    records, Output, ProducerIdAllocator, TopicPartition, TxnCoordinator, TxnError, TxnResult,
    TxnState,
};
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group::GroupService;
use crate::handlers::delayed_produce::Waiting;
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

struct Inner {
    coordinator: TxnCoordinator,
    /// The partitions of `__transaction_state` by index; empty until the topic exists.
    partitions: Vec<Arc<Partition>>,
    /// In a cluster: the partitions this broker leads (`cluster.rs`); unused on a single node.
    led: std::collections::BTreeMap<i32, cluster::Led>,
    /// In a cluster: the appends of the current call that its answer waits for.
    waits: Vec<Waiting>,
    /// In a cluster: the marker jobs of the current call, started once the lock is released.
    jobs: Vec<markers::MarkerJob>,
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
    /// Set on a broker of a cluster: the coordinator serves the partitions it leads.
    cluster: Option<cluster::ClusterSettings>,
    /// KIP-890 verification guards of transactional produce verified by another broker's
    /// coordinator (`verify.rs`); taken under the coordinator's lock, never the other way.
    guards: Mutex<verify::Guards>,
    next_guard: AtomicU64,
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

/// Producer ids for the coordinator: the node's durable blocks on a single node; in a cluster
/// the id the request took from the controller's blocks before entering the coordinator's lock
/// (taking one may wait for the controller, which must not happen under the lock).
struct Ids<'a> {
    ids: &'a ProducerIds,
    prefetched: Option<ProducerId>,
}

impl ProducerIdAllocator for Ids<'_> {
    fn allocate(&mut self) -> std::result::Result<ProducerId, TxnError> {
        match self.ids {
            ProducerIds::Local(ids) => ids
                .next_id()
                .map(ProducerId)
                .map_err(|e| TxnError::ProducerIdUnavailable(e.to_string())),
            ProducerIds::Cluster(_) => self.prefetched.take().ok_or_else(|| {
                TxnError::ProducerIdUnavailable(
                    "no producer id was reserved for this request".into(),
                )
            }),
        }
    }
}

/// What [`TxnService::call`] needs of the broker besides the service.
pub struct Deps<'a> {
    /// The group service (markers on `__consumer_offsets`).
    pub groups: &'a GroupService,
    /// Producer ids.
    pub producer_ids: &'a ProducerIds,
    /// In a cluster: a producer id taken from the controller's blocks for this call.
    pub prefetched: Option<ProducerId>,
}

impl<'a> Deps<'a> {
    /// The dependencies a broker provides.
    pub fn of(broker: &'a Broker) -> Deps<'a> {
        Deps {
            groups: &broker.groups,
            producer_ids: &broker.producer_ids,
            prefetched: None,
        }
    }
}

impl TxnService {
    /// The `transaction.version` finalized in ApiVersions.
    pub fn transaction_version(&self) -> i16 {
        self.settings.transaction_version
    }

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
        let cluster = svc_cluster(&topics, &settings);
        let in_cluster = cluster.is_some();
        let svc = TxnService {
            inner: Mutex::new(Inner {
                coordinator: TxnCoordinator::new(settings.coordinator.clone()),
                partitions: Vec::new(),
                led: Default::default(),
                waits: Vec::new(),
                jobs: Vec::new(),
            }),
            timer: Notify::new(),
            topics,
            settings,
            failpoint,
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            cluster,
            guards: Mutex::new(Default::default()),
            next_guard: AtomicU64::new(0),
        };
        if in_cluster {
            // The leadership hook loads the partitions this broker leads (`cluster.rs`).
            if let Some(t) = svc.topics.get(TRANSACTION_STATE_TOPIC) {
                lock(&svc.inner).partitions = t.state().partitions;
            }
            return Ok(svc);
        }
        if let Some(t) = svc.topics.get(TRANSACTION_STATE_TOPIC) {
            let mut inner = lock(&svc.inner);
            inner.partitions = t.state().partitions;
            let coordinator =
                load::load_coordinator(&svc.settings.coordinator, &inner.partitions, false)
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
        if self.cluster.is_some() {
            // In a cluster the controller creates the topic (`cluster.rs`).
            let topic = self.topics.get(TRANSACTION_STATE_TOPIC).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    format!("{TRANSACTION_STATE_TOPIC} does not exist yet"),
                )
            })?;
            inner.partitions = topic.state().partitions;
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
    /// written (the coordinator was then reloaded from the log). With `id`, the call is for
    /// that transactional id and answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS when
    /// this broker does not coordinate it now (a cluster). In a cluster the answer waits for
    /// the appends ([`Called::acked`]) and markers are sent by tasks (`markers.rs`).
    pub fn call<R>(
        &self,
        deps: &Deps<'_>,
        id: Option<&str>,
        f: impl FnOnce(&mut TxnCoordinator, i64, &mut dyn ProducerIdAllocator) -> R,
    ) -> Called<R> {
        let mut inner = lock(&self.inner);
        if let Err(e) = self.ensure_locked(&mut inner) {
            tracing::warn!(error = %e.message, "cannot create {TRANSACTION_STATE_TOPIC}");
            return Called::new(Err(ErrorCode::CoordinatorNotAvailable), Vec::new());
        }
        if let Some(id) = id {
            if let Err(code) = self.owner(&inner, id) {
                return Called::new(Err(code), Vec::new());
            }
        }
        let now = now_ms();
        let before = inner.coordinator.next_deadline();
        let mut ids = Ids {
            ids: deps.producer_ids,
            prefetched: deps.prefetched,
        };
        // Deadlines already passed take effect before the request, so what a client sees does
        // not depend on how late the timer task runs.
        let ticked = inner.coordinator.tick(now);
        let r = f(&mut inner.coordinator, now, &mut ids);
        let outputs = inner.coordinator.drain_outputs();
        let result = self.apply_outputs(&mut inner, outputs, deps.groups);
        let after = inner.coordinator.next_deadline();
        let waits = std::mem::take(&mut inner.waits);
        let jobs = std::mem::take(&mut inner.jobs);
        drop(inner);
        self.spawn_jobs(jobs);
        if after.is_some() && (before.is_none() || after < before) {
            self.timer.notify_one();
        }
        if let Err(e) = ticked {
            tracing::error!(error = %e, "transaction coordinator timer failed");
        }
        Called::new(result.map(|()| r), waits)
    }

    /// The coordinator rebuilt from the log: every partition on a single node, the partitions
    /// loaded as their leader in a cluster.
    fn reload(&self, inner: &mut Inner) {
        let partitions: Vec<Arc<Partition>> = if self.cluster.is_some() {
            Self::loaded_partitions(inner)
                .keys()
                .filter_map(|p| usize::try_from(*p).ok())
                .filter_map(|i| inner.partitions.get(i).cloned())
                .collect()
        } else {
            inner.partitions.clone()
        };
        match load::load_coordinator(
            &self.settings.coordinator,
            &partitions,
            self.cluster.is_some(),
        ) {
            Ok(c) => inner.coordinator = c,
            Err(e) => {
                tracing::error!(error = %e, "reloading the transaction coordinator failed")
            }
        }
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
            // In a cluster markers are sent by tasks once the Prepare record is committed.
            let o = match self.marker_job(inner, o) {
                Ok(job) => {
                    inner.jobs.push(job);
                    continue;
                }
                Err(o) => o,
            };
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
            self.reload(inner);
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
            // In a cluster markers are sent by tasks once the Prepare record is committed.
            let o = match self.marker_job(inner, o) {
                Ok(job) => {
                    inner.jobs.push(job);
                    continue;
                }
                Err(o) => o,
            };
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
        inner: &mut Inner,
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
        let info = part.append(batch.as_bytes().clone(), now)?;
        if self.cluster.is_some() {
            let w = cluster::waiting_for(&self.topics, TRANSACTION_STATE_TOPIC, &part, &info);
            inner.waits.push(w);
        }
        Ok(())
    }

    /// Read-only access for Describe/ListTransactions.
    pub fn read<R>(&self, f: impl FnOnce(&TxnCoordinator, i64) -> R) -> R {
        let inner = lock(&self.inner);
        f(&inner.coordinator, now_ms())
    }

    /// Fires due timers and retries markers that failed.
    fn tick(&self, deps: &Deps<'_>) {
        let pending = self
            .call(deps, None, |c, _, _| {
                c.ids()
                    .filter_map(|id| c.pending_markers(id).map(|(s, p)| (id.to_owned(), s, p)))
                    .collect::<Vec<_>>()
            })
            .result;
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
        inner.waits.clear();
        let jobs = std::mem::take(&mut inner.jobs);
        drop(inner);
        self.spawn_jobs(jobs);
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

/// The cluster part of the service on a broker of a cluster, `None` on a single node.
fn svc_cluster(topics: &TopicManager, settings: &TxnSettings) -> Option<cluster::ClusterSettings> {
    topics
        .is_replicated()
        .then(|| cluster::ClusterSettings::new(settings.replication_factor))
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
