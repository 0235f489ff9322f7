//! The group coordinator service: drives the sans-IO [`potok_group::GroupCoordinator`] with
//! real time, persists its records in the internal `__consumer_offsets` topic and parks
//! JoinGroup / SyncGroup requests until the state machine answers them.
//!
//! # Storage
//!
//! `__consumer_offsets` is an internal topic of the [`TopicManager`], like any other in the
//! metadata log and listed by Metadata with `is_internal`, with `offsets.topic.num.partitions`
//! partitions (50) in `{log.dirs}/__consumer_offsets/__consumer_offsets-{p}` (see
//! `TopicManager::partition_dir`). As in Kafka, the coordinator creates it when it is first
//! needed: on the first FindCoordinator for a group (Kafka's `KafkaApis.getCoordinator` asks
//! `AutoTopicCreationManager` for it), when a Metadata request names it and may create
//! topics, or on the first write of a client that skipped FindCoordinator (Kafka would answer
//! `NOT_COORDINATOR` there; this node is every group's coordinator, so it creates the topic
//! instead). An idle broker therefore has no offsets logs. Once the topic exists its partition
//! count decides where groups live, as Kafka's coordinator takes it from the metadata image
//! and `offsets.topic.num.partitions` only for a topic it has yet to create. A data directory
//! of an earlier release (offsets logs in that directory, no topic in the metadata log) gets
//! the topic at start, adopting the logs. Clients may read the topic (Fetch, ListOffsets) but
//! not write, delete or grow it (`crate::internal_topics`). Its `cleanup.policy` is `compact`:
//! the log cleaner compacts it as any compacted topic, and retention never deletes live
//! offsets (the start-up rewrite under "Replay" predates the cleaner).
//!
//! # Replay
//!
//! At start every existing partition is read in full and fed to a [`Loader`], which keeps only
//! the latest value per key, then the coordinator loads that live state. Reading is
//! proportional to the log size; to keep the next start proportional to live state, a
//! partition whose log holds more than [`COMPACT_RATIO`] times as many records as live keys
//! (and at least [`COMPACT_MIN_RECORDS`]) is rewritten with only its live records: the new log
//! is written beside the old one, flushed, and swapped in by renames, so a crash at any point
//! leaves either the old or the new log complete; [`finish_interrupted_rewrites`] completes or
//! rolls back an interrupted swap before the topic manager opens the logs.
//!
//! # Failed appends
//!
//! When an append fails, the requests that depended on it get the mapped error
//! (`append_error_code`, after Kafka's `GroupMetadataManager`) and the coordinator is told so
//! (`GroupCoordinator::persisted`): committed offsets are applied only after their append
//! succeeded, and a rebalance whose assignment was not written starts over, so a later
//! OffsetFetch or a restart never sees state that is not on disk. Tombstones of expired or
//! deleted offsets and groups follow Kafka instead: the cache forgets first and a failed write
//! is logged (such entries can come back after a restart, as in Kafka).
//!
//! # Locking
//!
//! One `std::sync::Mutex` guards the coordinator and the offsets partitions together, so that
//! records reach the log in the order the state machine produced them; it is taken before the
//! topic manager's locks (creating the topic happens under it). It is never held across an `.await`:
//! a handler locks, feeds one request, appends the records, unlocks, and only then sends the
//! answers of parked requests through their oneshot channels (`parked`, a second mutex taken
//! only after the first is released, or alone). Appends touch the page cache only, as for any
//! other partition.
//!
//! # Timers
//!
//! [`run_timers`] sleeps until the coordinator's next deadline (or until a request moves it
//! earlier, signalled through a `Notify`) and fires it with `tick(now)`.

mod cluster;
mod find_coordinator;
pub mod handlers;
mod storage;

pub use cluster::watch_leadership;
pub use storage::finish_interrupted_rewrites;
use storage::{build_batch, has_offsets_logs, replay_into};
mod txn;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use potok_group::{
    GroupConfig, GroupCoordinator, JoinGroupResponse, Loader, Output, PersistRecord,
    SyncGroupResponse, Token,
};
use potok_log::{Log, LogError};
use potok_protocol::ErrorCode;
use potok_records::Offset;
use tokio::sync::{oneshot, Notify};

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::handlers::delayed_produce::Waiting;
use crate::internal_topics::{offsets_topic_overrides, GROUP_METADATA_TOPIC};
use crate::topics::{now_ms, ApiError, NewTopic, Partition, Topic, TopicManager};
use crate::Broker;

/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = GROUP_METADATA_TOPIC;

/// Rewrite a partition at start-up when it holds this many times more records than live keys.
pub const COMPACT_RATIO: u64 = 4;

/// ...and at least this many records (small logs are cheap to replay as they are).
pub const COMPACT_MIN_RECORDS: u64 = 10_000;

/// A parked JoinGroup or SyncGroup answer.
#[derive(Debug)]
pub enum Parked {
    /// A JoinGroup answer.
    Join(JoinGroupResponse),
    /// A SyncGroup answer.
    Sync(SyncGroupResponse),
}

struct Inner {
    coordinator: GroupCoordinator,
    /// The partitions of `__consumer_offsets` by index; empty until the topic exists.
    partitions: Vec<Arc<Partition>>,
    /// In a cluster, the appends of the current call that must reach the ISR before the
    /// answers that depend on them are sent (`cluster.rs`).
    waits: Vec<Waiting>,
}

/// The broker's group coordinator. Thread-safe; see the module docs for the lock order
/// (`inner` before `parked`, never both across an `.await`).
pub struct GroupService {
    inner: Mutex<Inner>,
    parked: Mutex<HashMap<u64, oneshot::Sender<Parked>>>,
    next_token: AtomicU64,
    timer: Notify,
    topics: Arc<TopicManager>,
    partitions: i32,
    /// Set on a broker of a cluster: the coordinator serves the partitions it leads.
    cluster: Option<cluster::ClusterSettings>,
}

impl std::fmt::Debug for GroupService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupService")
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The coordinator keeps its invariants per call; a panic in one request must not take
    // every group down, so poisoning is not propagated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse<T: std::str::FromStr>(cfg: &BrokerConfig, name: &str) -> Result<T> {
    let v = cfg.get(name).unwrap_or_default();
    v.parse()
        .map_err(|_| BrokerError::Config(format!("{name}={v}: not a valid number")))
}

/// The coordinator settings from the broker configuration (Kafka's names).
pub fn group_config(cfg: &BrokerConfig) -> Result<GroupConfig> {
    let partitions: i32 = parse(cfg, "offsets.topic.num.partitions")?;
    if partitions < 1 {
        return Err(BrokerError::Config(
            "offsets.topic.num.partitions must be at least 1".into(),
        ));
    }
    let retention_minutes: i64 = parse(cfg, "offsets.retention.minutes")?;
    let max_size: i64 = parse(cfg, "group.max.size")?;
    let seed = u64::from_le_bytes(
        crate::topics::random_uuid().0[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    Ok(GroupConfig {
        min_session_timeout_ms: parse(cfg, "group.min.session.timeout.ms")?,
        max_session_timeout_ms: parse(cfg, "group.max.session.timeout.ms")?,
        initial_rebalance_delay_ms: parse(cfg, "group.initial.rebalance.delay.ms")?,
        max_size: usize::try_from(max_size.max(1)).unwrap_or(usize::MAX),
        offsets_retention_ms: retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: parse(cfg, "offsets.retention.check.interval.ms")?,
        offset_metadata_max_bytes: parse(cfg, "offset.metadata.max.bytes")?,
        offsets_partitions: partitions,
        new_member_join_timeout_ms: 300_000,
        member_id_seed: seed,
    })
}

impl GroupService {
    /// Replays every partition of `__consumer_offsets` (creating the topic first when an
    /// earlier release left offsets logs without it) and loads the groups. Blocking (file IO);
    /// call from `spawn_blocking` or before serving, after [`finish_interrupted_rewrites`] and
    /// [`TopicManager::open`].
    pub fn open(cfg: &BrokerConfig, topics: Arc<TopicManager>) -> Result<GroupService> {
        if topics.is_replicated() {
            return cluster::open(cfg, topics);
        }
        let mut config = group_config(cfg)?;
        let mut topic = topics.get(OFFSETS_TOPIC);
        if topic.is_none() && has_offsets_logs(&cfg.data_dir.join(OFFSETS_TOPIC)) {
            tracing::info!(
                "creating the {OFFSETS_TOPIC} topic for the offsets logs of an earlier release"
            );
            topic = Some(
                create_offsets_topic(&topics, config.offsets_partitions)
                    .map_err(|e| BrokerError::Config(format!("{OFFSETS_TOPIC}: {}", e.message)))?,
            );
        }
        let partitions = match &topic {
            Some(t) => t.state().partitions,
            None => Vec::new(),
        };
        if let Some(t) = &topic {
            let n = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
            if n != config.offsets_partitions {
                // Kafka's coordinator takes the count from the metadata image and uses
                // offsets.topic.num.partitions only for a topic it has yet to create: the
                // groups already stored must be found where they are.
                tracing::warn!(
                    topic = t.name(),
                    partitions = n,
                    configured = config.offsets_partitions,
                    "offsets.topic.num.partitions differs from the existing topic; using the topic's partition count"
                );
                config.offsets_partitions = n;
            }
        }
        let now = now_ms();
        let mut coordinator = GroupCoordinator::new(config.clone(), now);
        let mut loader = Loader::new();
        let mut stats = Vec::new();
        for part in &partitions {
            let p = part.index();
            let mut part_loader = Loader::new();
            replay_into(part, &mut part_loader)
                .map_err(|e| BrokerError::Config(format!("replaying {OFFSETS_TOPIC}-{p}: {e}")))?;
            let (read, live) = (part_loader.records_read(), part_loader.live_keys() as u64);
            tracing::info!(
                partition = p,
                records = read,
                live_keys = live,
                "replayed {OFFSETS_TOPIC}"
            );
            loader.merge(part_loader);
            stats.push((p, read, live));
        }
        let report = coordinator.load(loader, now);
        if report.corrupt_records > 0 {
            tracing::warn!(
                corrupt = report.corrupt_records,
                "skipped undecodable {OFFSETS_TOPIC} records"
            );
        }
        tracing::info!(
            groups = report.groups,
            offsets = report.offsets,
            "group coordinator loaded"
        );
        let svc = GroupService {
            inner: Mutex::new(Inner {
                coordinator,
                partitions,
                waits: Vec::new(),
            }),
            parked: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            timer: Notify::new(),
            topics,
            partitions: config.offsets_partitions,
            cluster: None,
        };
        svc.compact_at_start(&stats, now)?;
        Ok(svc)
    }

    /// Creates `__consumer_offsets` unless it exists (see the module docs for when). Blocking
    /// (creating the topic is file IO); call from `spawn_blocking`.
    pub fn ensure_offsets_topic(&self) -> std::result::Result<(), ApiError> {
        let mut inner = lock(&self.inner);
        self.ensure_locked(&mut inner)
    }

    fn ensure_locked(&self, inner: &mut Inner) -> std::result::Result<(), ApiError> {
        if !inner.partitions.is_empty() {
            return Ok(());
        }
        if self.cluster.is_some() {
            // In a cluster the controller creates the topic (`cluster.rs`); this node only
            // takes its partitions once the metadata image has them.
            let topic = self.topics.get(OFFSETS_TOPIC).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    format!("{OFFSETS_TOPIC} does not exist yet"),
                )
            })?;
            inner.partitions = topic.state().partitions;
            return Ok(());
        }
        let topic = create_offsets_topic(&self.topics, self.partitions)?;
        inner.partitions = topic.state().partitions;
        Ok(())
    }

    /// Rewrites partitions whose log is much larger than their live state (see module docs).
    fn compact_at_start(&self, stats: &[(i32, u64, u64)], now: i64) -> Result<()> {
        let inner = lock(&self.inner);
        let storage = self.topics.storage();
        let mut rewrote = false;
        for &(p, read, live) in stats {
            if read < COMPACT_MIN_RECORDS || read < live.saturating_mul(COMPACT_RATIO) {
                continue;
            }
            // Offsets of a transaction still waiting for its marker live only in the log; a
            // rewrite from the live state would drop them.
            if inner.coordinator.has_pending_txn_on_partition(p) {
                continue;
            }
            let records = inner
                .coordinator
                .snapshot_records(p)
                .map_err(|e| BrokerError::Config(format!("snapshot of partition {p}: {e}")))?;
            let Some(part) = usize::try_from(p)
                .ok()
                .and_then(|i| inner.partitions.get(i))
                .cloned()
            else {
                continue;
            };
            let failed = |e: LogError| BrokerError::Config(format!("{OFFSETS_TOPIC}-{p}: {e}"));
            let pdir = part.dir().map_err(failed)?;
            let log_config = part
                .with_log(|log| Ok(log.config().clone()))
                .map_err(failed)?;
            let tmp = pdir.with_extension("compacting");
            let old = pdir.with_extension("old");
            let _ = std::fs::remove_dir_all(&tmp);
            let mut fresh = Log::open(&tmp, log_config.clone(), Arc::clone(&storage), now)
                .map_err(|e| BrokerError::Config(format!("{}: {e}", tmp.display())))?;
            for chunk in records.chunks(1000) {
                let batch = build_batch(chunk, now)
                    .map_err(|e| BrokerError::Config(format!("{}: {e}", tmp.display())))?;
                fresh
                    .append(batch, now)
                    .map_err(|e| BrokerError::Config(format!("{}: {e}", tmp.display())))?;
            }
            fresh
                .close()
                .map_err(|e| BrokerError::Config(format!("{}: {e}", tmp.display())))?;
            // The swap runs under the partition's log lock; a crash between the renames is
            // repaired by `finish_interrupted_rewrites` at the next start.
            part.replace_log(|current| {
                if let Some(log) = current {
                    log.close()?;
                }
                let io = |path: &Path, e: std::io::Error| LogError::Io {
                    path: path.to_path_buf(),
                    source: e,
                };
                std::fs::rename(&pdir, &old).map_err(|e| io(&pdir, e))?;
                std::fs::rename(&tmp, &pdir).map_err(|e| io(&tmp, e))?;
                let _ = std::fs::remove_dir_all(&old);
                // The rewritten log kept its own checkpoint files (it was written outside the
                // topic manager): `None` reads them once, as for a directory of an older
                // version, and leaves the checkpoints to the manager from then on.
                Log::open_managed(
                    &pdir,
                    log_config.clone(),
                    Arc::clone(&storage),
                    now,
                    None,
                    None,
                )
            })
            .map_err(failed)?;
            tracing::info!(
                partition = p,
                before = read,
                after = records.len(),
                "rewrote {OFFSETS_TOPIC} partition with its live records"
            );
            rewrote = true;
        }
        if rewrote {
            // The data directory's recovery points must describe the new logs before a crash
            // can make the next start rely on them.
            self.topics.write_dir_checkpoints()?;
        }
        Ok(())
    }

    /// The number of `__consumer_offsets` partitions.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Runs `f` on the coordinator, persists what it produced and delivers parked answers.
    /// Returns `f`'s result, or `Err(code)` when the records could not be written (the caller
    /// answers with that code, as Kafka does when the offsets topic append fails). In a
    /// cluster the parked answers that depend on the records are sent once the ISR has them
    /// (`cluster.rs`); the result itself does not wait: see [`Self::call_acked`].
    pub fn call<R>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> R,
    ) -> std::result::Result<R, ErrorCode> {
        let (r, replies, failed, waits) = self.call_inner(f);
        if waits.is_empty() {
            self.deliver(replies, failed);
        } else {
            cluster::deliver_when_replicated(self, waits, replies, failed);
        }
        match failed {
            Some(code) => Err(code),
            None => Ok(r),
        }
    }

    /// [`Self::call`], answering only once the records it wrote are replicated to the ISR of
    /// their `__consumer_offsets` partition, within `offsets.commit.timeout.ms` (an offset
    /// commit completes like an `acks=all` produce, as in Kafka); `Err` with Kafka's code when
    /// they are not.
    pub async fn call_acked<R>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> R,
    ) -> std::result::Result<R, ErrorCode> {
        let (r, replies, mut failed, waits) = self.call_inner(f);
        if failed.is_none() && !waits.is_empty() {
            failed = cluster::wait_replicated(self, &waits).await.err();
        }
        self.deliver(replies, failed);
        match failed {
            Some(code) => Err(code),
            None => Ok(r),
        }
    }

    #[allow(clippy::type_complexity)]
    fn call_inner<R>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> R,
    ) -> (R, Vec<(Token, Parked)>, Option<ErrorCode>, Vec<Waiting>) {
        let now = now_ms();
        let mut replies = Vec::new();
        let mut failed = None;
        let mut inner = lock(&self.inner);
        let before = inner.coordinator.next_deadline();
        // Deadlines that have passed take effect before the request is handled, so that
        // what a client sees does not depend on how late the timer task runs: a DeleteGroups
        // sent just after the last member's session expired finds the group empty (as
        // librdkafka's 0081-admin expects right at `session.timeout.ms` after closing its
        // static members), and a heartbeat after its member's deadline is too late.
        inner.coordinator.tick(now);
        let r = f(&mut inner.coordinator, now);
        let outputs: Vec<Output> = inner.coordinator.drain_outputs().collect();
        self.apply_outputs(&mut inner, outputs, now, &mut replies, &mut failed);
        let after = inner.coordinator.next_deadline();
        if after.is_some() && (before.is_none() || after < before) {
            self.timer.notify_one();
        }
        let waits = std::mem::take(&mut inner.waits);
        (r, replies, failed, waits)
    }

    /// Appends the records in order and reports each pending append's outcome to the
    /// coordinator, which applies or discards the change that waited for it (committed offsets,
    /// a completed rebalance); whatever that produces is handled in turn. The coordinator's
    /// state therefore never runs ahead of `__consumer_offsets`, except where Kafka's does too
    /// (tombstones of expired or deleted offsets and groups are written after the cache
    /// forgot them, and a failure is only logged, as in Kafka's `cleanupGroupMetadata`).
    fn apply_outputs(
        &self,
        inner: &mut Inner,
        outputs: Vec<Output>,
        now: i64,
        replies: &mut Vec<(Token, Parked)>,
        failed: &mut Option<ErrorCode>,
    ) {
        let mut queue: std::collections::VecDeque<Output> = outputs.into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Persist {
                    partition,
                    records,
                    pending,
                    producer,
                } => {
                    let result = self
                        .persist(inner, partition, &records, producer, now)
                        .map_err(|e| {
                        tracing::error!(partition, error = %e, "cannot append to {OFFSETS_TOPIC}");
                        append_error_code(&e)
                    });
                    if let Err(code) = result {
                        *failed = Some(code);
                    }
                    if let Some(id) = pending {
                        inner.coordinator.persisted(id, result, now);
                        queue.extend(inner.coordinator.drain_outputs());
                    }
                }
                Output::Join(t, r) => replies.push((t, Parked::Join(r))),
                Output::Sync(t, r) => replies.push((t, Parked::Sync(r))),
            }
        }
    }

    fn persist(
        &self,
        inner: &mut Inner,
        partition: i32,
        records: &[PersistRecord],
        producer: Option<(i64, i16)>,
        now: i64,
    ) -> std::result::Result<(), LogError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some((producer_id, epoch)) = producer {
            return self.persist_transactional(inner, partition, records, producer_id, epoch, now);
        }
        if let Err(e) = self.ensure_locked(inner) {
            tracing::error!(error = %e.message, "cannot create {OFFSETS_TOPIC}");
            return Err(LogError::Offline);
        }
        let part = usize::try_from(partition)
            .ok()
            .and_then(|i| inner.partitions.get(i))
            .ok_or(LogError::Offline)?;
        let info = part.append(build_batch(records, now)?, now)?;
        if self.cluster.is_some() {
            inner
                .waits
                .push(cluster::waiting(&self.topics, part, &info));
        }
        Ok(())
    }

    fn deliver(&self, replies: Vec<(Token, Parked)>, failed: Option<ErrorCode>) {
        if replies.is_empty() {
            return;
        }
        let mut parked = lock(&self.parked);
        for (t, reply) in replies {
            if let Some(tx) = parked.remove(&t.0) {
                // The client may have gone; its answer is dropped.
                let _ = tx.send(failed_reply(reply, failed));
            }
        }
    }

    /// Registers a parked request and returns its token and receiver. The map holds at most
    /// one entry per in-flight JoinGroup/SyncGroup, and a connection has at most one request
    /// in flight, so it is bounded by `max.connections`.
    pub fn park(&self) -> (Token, oneshot::Receiver<Parked>) {
        let t = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.parked).insert(t, tx);
        (Token(t), rx)
    }

    /// Forgets a parked request whose client went away before it was answered.
    pub fn unpark(&self, token: Token) {
        lock(&self.parked).remove(&token.0);
    }

    /// Fires due timers.
    fn tick(&self) {
        let _ = self.call(|c, now| c.tick(now));
    }

    fn next_deadline(&self) -> Option<i64> {
        lock(&self.inner).coordinator.next_deadline()
    }

    /// Prometheus lines for consumer lag: committed offset vs the high watermark of each
    /// partition a group committed for (`potok_group_committed_offset`, `potok_group_lag`).
    pub fn render_metrics(&self, broker: &Broker) -> String {
        use std::fmt::Write as _;
        let committed: Vec<(String, String, i32, Offset)> = {
            let inner = lock(&self.inner);
            inner
                .coordinator
                .all_committed()
                .map(|(g, t, p, o)| (g.to_owned(), t.to_owned(), p, o))
                .collect()
        };
        let mut out = String::new();
        out.push_str("# TYPE potok_group_committed_offset gauge\n");
        for (g, t, p, o) in &committed {
            let _ = writeln!(
                out,
                "potok_group_committed_offset{{group=\"{}\",topic=\"{}\",partition=\"{p}\"}} {}",
                escape(g),
                escape(t),
                o.0
            );
        }
        out.push_str("# TYPE potok_group_lag gauge\n");
        for (g, t, p, o) in &committed {
            let hw = broker
                .topics
                .get(t)
                .and_then(|topic| topic.partition(*p))
                .and_then(|part| part.offsets().ok())
                .map(|(_, hw)| hw.0);
            if let Some(hw) = hw {
                let _ = writeln!(
                    out,
                    "potok_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{p}\"}} {}",
                    escape(g),
                    escape(t),
                    (hw - o.0).max(0)
                );
            }
        }
        out
    }
}

/// A parked answer, or its error form when the records it depends on were not written
/// (`failed`).
fn failed_reply(reply: Parked, failed: Option<ErrorCode>) -> Parked {
    match (failed, reply) {
        (None, reply) => reply,
        (Some(code), Parked::Join(r)) => Parked::Join(JoinGroupResponse::error(code, r.member_id)),
        (Some(code), Parked::Sync(_)) => Parked::Sync(SyncGroupResponse::error(code)),
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Creates `__consumer_offsets` with `partitions` partitions and Kafka's configs for it, as
/// an internal-origin creation; an existing topic is returned as it is.
fn create_offsets_topic(
    topics: &TopicManager,
    partitions: i32,
) -> std::result::Result<Arc<Topic>, ApiError> {
    if let Some(t) = topics.get(OFFSETS_TOPIC) {
        return Ok(t);
    }
    let t = topics.create_internal_topic(NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions,
        configs: offsets_topic_overrides(),
    })?;
    tracing::info!(partitions, "created the internal topic {OFFSETS_TOPIC}");
    Ok(t)
}

/// The error code for a failed `__consumer_offsets` append, as Kafka maps the append's error in
/// `GroupMetadataManager` (`storeOffsets` and `storeGroup` callbacks): a storage failure
/// (Kafka's `KAFKA_STORAGE_ERROR`, which an IO error on a log becomes) answers
/// `NOT_COORDINATOR`, so that clients rediscover the coordinator and retry; a batch too large
/// answers `UNKNOWN_SERVER_ERROR` (Kafka gives `INVALID_COMMIT_OFFSET_SIZE` for offset commits
/// only; one code per call is kept here); anything else `COORDINATOR_NOT_AVAILABLE`.
fn append_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::Io { .. } => ErrorCode::NotCoordinator,
        LogError::BatchTooLarge { .. }
        | LogError::InvalidBatch(_)
        | LogError::InvalidBatchFields(_) => ErrorCode::UnknownServerError,
        _ => ErrorCode::CoordinatorNotAvailable,
    }
}

/// Fires the coordinator's timers until shutdown.
pub async fn run_timers(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let groups = &broker.groups;
    loop {
        let wait = match groups.next_deadline() {
            Some(d) => Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0)),
            // The offset-expiry task always has a deadline; this is only a fallback.
            None => Duration::from_secs(1),
        };
        // Wake at least every second so that clock jumps are noticed.
        let wait = wait.min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = groups.timer.notified() => {}
            _ = shutdown.changed() => return,
        }
        groups.tick();
    }
}

#[cfg(test)]
mod tests;
