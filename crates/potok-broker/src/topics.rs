//! Topics and partitions: the [`MetadataImage`] replayed from the metadata log (Kafka's KRaft
//! records) plus one open [`potok_log::Log`] per partition, and the operations that change
//! them. Each change is a list of Kafka's records, the ones Kafka's controller writes for it
//! (`TopicRecord` + `ConfigRecord`s + a `PartitionRecord` per partition for a creation,
//! `PartitionRecord`s for added partitions, `ConfigRecord`s for config changes,
//! `RemoveTopicRecord` for a deletion), appended as one frame and then applied to the image.
//!
//! # Ownership and lock order
//!
//! [`TopicManager`] owns the [`MetadataLog`] and the [`MetadataImage`] (behind `meta`, a
//! `Mutex` that serialises every metadata change, held while the change is fsynced and
//! applied), the name and id maps
//! (`topics`, an `RwLock`), each [`Topic`]'s mutable state (an `RwLock`), each [`Partition`]'s
//! log (a `Mutex`) and its fetch waiters (a `Mutex`). Locks are only ever taken in that order
//! (meta → topics → topic state → partition log → waiters), all are `std::sync` locks, and none
//! is held across an `.await`: handlers clone the `Arc<Topic>` / `Arc<Partition>` they need and
//! drop the guards before awaiting.
//!
//! Partition `p` of topic `t` lives in `{log.dirs}/{t}-{p}`, as in Kafka, except for the
//! internal `__consumer_offsets` (see `partition_dir`), which the group coordinator creates
//! through [`TopicManager::create_internal_topic`] and clients may not create.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use potok_log::{
    AppendInfo, BoundedStorage, DirCheckpoint, Log, LogError, OffsetEntry, OpenFiles, ReadSlice,
    RealStorage, Storage, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use potok_protocol::{ErrorCode, Uuid};
use potok_records::{LeaderEpoch, Offset};
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::internal_topics::{self, is_internal, GROUP_METADATA_TOPIC};
use crate::metadata_log::{partition_record, MetadataLog, METADATA_DIR};
use crate::topic_config::{normalize_overrides, EffectiveTopicConfig, TopicDefaults};
use potok_metadata::image::TOPIC_RESOURCE;
use potok_metadata::{BrokerId, MetadataImage, MetadataRecord, PartitionState};
use potok_protocol::messages::internal::{
    config_record::ConfigRecord, remove_topic_record::RemoveTopicRecord, topic_record::TopicRecord,
};
use potok_replication::LeaderState;

/// The leader epoch of a new partition (its `PartitionRecord`), as in Kafka. A partition's
/// epoch afterwards is the metadata image's, read from each [`Partition`] wherever it is
/// reported or checked.
pub const INITIAL_LEADER_EPOCH: i32 = 0;

/// A Kafka error code with a message, the per-topic / per-partition outcome of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable message for the client (Kafka's `error_message` fields).
    pub message: String,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Maps a partition log error to the Kafka error code a client should see.
pub fn log_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::InvalidBatch(potok_records::RecordsError::CrcMismatch { .. }) => {
            ErrorCode::CorruptMessage
        }
        LogError::InvalidBatch(_) | LogError::InvalidBatchFields(_) => ErrorCode::InvalidRecord,
        LogError::BatchTooLarge { .. } => ErrorCode::RecordListTooLarge,
        LogError::OutOfOrderOffsets { .. } => ErrorCode::InvalidRecord,
        LogError::Io { .. } | LogError::Corrupt { .. } | LogError::Offline => {
            ErrorCode::KafkaStorageError
        }
        LogError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        LogError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
    }
}

/// The clock, in milliseconds since the epoch (the logs take it injected).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh random version-4 UUID (topic ids, cluster id), from the OS random source.
pub fn random_uuid() -> Uuid {
    let mut b = [0u8; 16];
    // /dev/urandom never blocks and is always present on Linux; fall back to the clock and the
    // process id only if it is unreadable, which still gives distinct ids on one node.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid(b)
}

/// One partition: its log, its replication state as this broker leads it (leader epoch,
/// replicas, ISR, high watermark: a [`LeaderState`] built from the metadata image), and the
/// fetch requests waiting for new data.
///
/// On a single node the ISR is this broker alone, so the high watermark reaches the log end
/// offset as soon as an append returns; with replication the same state waits for followers.
/// Lock order: the log, then the replication state.
#[derive(Debug)]
pub struct Partition {
    topic: String,
    index: i32,
    log: Mutex<Option<Log>>,
    /// Long-polling fetches to wake on append. Entries whose fetch is gone (only this list
    /// holds the `Arc`) are pruned on every insert, so the list is bounded by the number of
    /// fetches currently waiting.
    waiters: Mutex<Vec<Arc<Notify>>>,
    /// The leader's replication state. Its leader epoch is stamped into appended batches and
    /// checked against clients' `current_leader_epoch` (KIP-320).
    replica: Mutex<LeaderState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a Log half-updated in a way the Log itself does
    // not guard against (it marks itself offline), so poisoning is not propagated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

fn offline() -> LogError {
    LogError::Offline
}

/// The state `metadata_log::partition_record` gives a new partition on this single node: this
/// broker is its only replica, in the ISR and leading, at the initial epochs.
fn single_node_partition(node: BrokerId) -> PartitionState {
    PartitionState {
        replicas: vec![node],
        isr: vec![node],
        leader: Some(node),
        leader_epoch: LeaderEpoch(INITIAL_LEADER_EPOCH),
        partition_epoch: 0,
    }
}

/// Kafka's `makeLeader` on an open log: the leader-epoch cache records where the image's epoch
/// starts, and the replication state starts from the log end, which on this node is also the
/// high watermark (nothing was acknowledged beyond it).
fn make_leader(
    log: &mut Log,
    local: BrokerId,
    state: &PartitionState,
    now_ms: i64,
) -> Result<LeaderState, LogError> {
    log.assign_leader_epoch(state.leader_epoch)?;
    let end = log.log_end_offset();
    LeaderState::become_leader(local, state, end, end, now_ms).map_err(|e| LogError::Corrupt {
        path: log.dir().to_path_buf(),
        reason: format!(
            "the metadata image does not make this broker ({local}) lead the partition: {e:?}"
        ),
    })
}

impl Partition {
    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition index.
    pub fn index(&self) -> i32 {
        self.index
    }

    /// Runs `f` with the log locked. Keep `f` short and synchronous.
    pub fn with_log<R>(
        &self,
        f: impl FnOnce(&mut Log) -> Result<R, LogError>,
    ) -> Result<R, LogError> {
        let mut g = lock(&self.log);
        match g.as_mut() {
            Some(log) => f(log),
            None => Err(offline()),
        }
    }

    /// The log's lock cell, for the log cleaner ([`potok_log::Cleaner::clean`] locks it only
    /// to prepare a cleaning and for each segment swap).
    pub fn log_cell(&self) -> &Mutex<Option<Log>> {
        &self.log
    }

    /// The current partition leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        lock(&self.replica).leader_epoch()
    }

    /// A copy of the partition's replication state (replicas, ISR, epochs, high watermark).
    pub fn replication(&self) -> LeaderState {
        lock(&self.replica).clone()
    }

    /// This broker (again) leads the partition with the metadata image's `state` (a leadership
    /// change: a new leader epoch). The leader-epoch cache records that the epoch starts at the
    /// log end offset, and the replication state starts over from it, as Kafka's `makeLeader`
    /// does.
    pub fn become_leader(
        &self,
        local: BrokerId,
        state: &PartitionState,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.with_log(|log| {
            let leader = make_leader(log, local, state, now_ms)?;
            *lock(&self.replica) = leader;
            Ok(())
        })
    }

    /// KIP-320's check of a client's `current_leader_epoch`: -1 skips it, an older epoch is
    /// `FENCED_LEADER_EPOCH`, a newer one `UNKNOWN_LEADER_EPOCH` (Kafka's
    /// `Partition.checkCurrentLeaderEpoch`).
    pub fn check_current_leader_epoch(&self, current: i32) -> Option<ErrorCode> {
        let mine = self.leader_epoch().0;
        match current {
            -1 => None,
            c if c < mine => Some(ErrorCode::FencedLeaderEpoch),
            c if c > mine => Some(ErrorCode::UnknownLeaderEpoch),
            _ => None,
        }
    }

    /// Appends batches as the leader, stamping the current leader epoch into each, and wakes
    /// waiting fetches.
    pub fn append(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = self.with_log(|log| {
            let mut replica = lock(&self.replica);
            let info = log.append_with_leader_epoch(batches, replica.leader_epoch(), now_ms)?;
            replica.on_local_append(log.log_end_offset());
            Ok(info)
        })?;
        self.wake_waiters();
        Ok(info)
    }

    /// `(log start offset, high watermark)`.
    pub fn offsets(&self) -> Result<(Offset, Offset), LogError> {
        self.with_log(|log| Ok((log.log_start_offset(), self.high_watermark(log))))
    }

    /// The high watermark, never above the log end (a truncation below it, which only
    /// DeleteRecords-style operations at the log start could cause, cannot make it point past
    /// the data).
    fn high_watermark(&self, log: &Log) -> Offset {
        lock(&self.replica)
            .high_watermark()
            .min(log.log_end_offset())
    }

    /// Reads for a consumer: whole batches from `from`, at most `max_bytes` (but at least one
    /// batch), below the high watermark. Returns the slice and `(log start, high watermark)`.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
    ) -> Result<(ReadSlice, Offset, Offset), LogError> {
        self.with_log(|log| {
            let hw = self.high_watermark(log);
            let slice = log.read(from, max_bytes, Some(hw))?;
            Ok((slice, log.log_start_offset(), hw))
        })
    }

    /// Registers `n` to be notified on the next append.
    pub fn add_waiter(&self, n: &Arc<Notify>) {
        let mut w = lock(&self.waiters);
        w.retain(|x| Arc::strong_count(x) > 1);
        if !w.iter().any(|x| Arc::ptr_eq(x, n)) {
            w.push(Arc::clone(n));
        }
    }

    fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.notify_one();
        }
    }

    /// Replaces the partition's log: `swap` gets the open log (`None` if the partition was
    /// closed), must close it and return the log that takes its place, which then leads in the
    /// partition's current epoch. The group coordinator uses it to swap in a rewritten
    /// `__consumer_offsets` partition at start. If `swap` fails the partition stays offline.
    pub(crate) fn replace_log(
        &self,
        swap: impl FnOnce(Option<Log>) -> Result<Log, LogError>,
    ) -> Result<(), LogError> {
        let mut g = lock(&self.log);
        let mut log = swap(g.take())?;
        log.assign_leader_epoch(self.leader_epoch())?;
        *g = Some(log);
        drop(g);
        self.wake_waiters();
        Ok(())
    }

    /// The directory of the partition's log.
    pub fn dir(&self) -> Result<PathBuf, LogError> {
        self.with_log(|log| Ok(log.dir().to_path_buf()))
    }

    /// Closes the log cleanly (flush, checkpoints, clean-shutdown marker). Later calls fail
    /// with `Offline`.
    pub fn close(&self) -> Result<(), LogError> {
        let log = lock(&self.log).take();
        self.wake_waiters();
        match log {
            Some(l) => l.close(),
            None => Ok(()),
        }
    }

    fn delete(&self) -> Result<(), LogError> {
        let log = lock(&self.log).take();
        self.wake_waiters();
        match log {
            Some(l) => l.delete(),
            None => Ok(()),
        }
    }
}

/// The mutable part of a topic.
#[derive(Debug, Clone)]
pub struct TopicState {
    /// Partitions by index (`partitions[i].index() == i`).
    pub partitions: Vec<Arc<Partition>>,
    /// Config overrides as set by the user.
    pub overrides: BTreeMap<String, String>,
    /// The resolved configs.
    pub config: EffectiveTopicConfig,
}

/// A topic.
#[derive(Debug)]
pub struct Topic {
    name: String,
    id: Uuid,
    state: RwLock<TopicState>,
}

impl Topic {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// A snapshot of the mutable state (cheap: `Arc`s and small maps).
    pub fn state(&self) -> TopicState {
        read(&self.state).clone()
    }

    /// Every partition's current leader epoch, by index.
    pub fn leader_epochs(&self) -> Vec<i32> {
        read(&self.state)
            .partitions
            .iter()
            .map(|p| p.leader_epoch().0)
            .collect()
    }

    /// The partition count.
    pub fn partition_count(&self) -> usize {
        read(&self.state).partitions.len()
    }

    /// One partition.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let i = usize::try_from(index).ok()?;
        read(&self.state).partitions.get(i).cloned()
    }

    /// The resolved configs.
    pub fn config(&self) -> EffectiveTopicConfig {
        read(&self.state).config.clone()
    }
}

/// Kafka's topic name rules (`org.apache.kafka.common.internals.Topic.validate`): 1 to 249
/// characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII \
             alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Kafka treats `.` and `_` as the same character in metric names, so topics differing only
/// there collide (`Topic.unifyCollisionChars`).
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[derive(Debug, Default)]
struct Maps {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// What a topic creation should do.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count (already resolved from -1 to `num.partitions`).
    pub partitions: i32,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// The metadata log and the image it replays to, changed together under one lock.
#[derive(Debug)]
struct Meta {
    log: MetadataLog,
    image: MetadataImage,
}

impl Meta {
    /// Makes `records` durable as one frame (one fsync), then applies them to the image.
    /// The records are built from state checked under the same lock, so the image refusing
    /// one is a bug; it is reported as a storage error and logged, and the next start
    /// refuses the log, as Kafka's controller treats a record it cannot replay as fatal.
    fn commit(&mut self, records: &[MetadataRecord]) -> std::result::Result<(), ApiError> {
        self.log.append(records).map_err(storage_error)?;
        for r in records {
            self.image.apply(r).map_err(|e| {
                tracing::error!(error = %e, "the metadata image refused a record just written");
                ApiError::new(ErrorCode::KafkaStorageError, e.to_string())
            })?;
        }
        Ok(())
    }
}

/// All topics and partitions of this node. See the module docs for the lock order.
#[derive(Debug)]
pub struct TopicManager {
    data_dir: PathBuf,
    /// Behind a lock because dynamic broker configs (`log.retention.ms`, ...) change it at
    /// run time; see [`TopicManager::set_defaults`].
    defaults: RwLock<TopicDefaults>,
    storage: Arc<dyn Storage>,
    /// The bounded set of open segment files shared by every partition log
    /// (`potok.log.max.open.files`).
    open_files: Arc<OpenFiles>,
    /// Serialises writes of the data directory's checkpoint files; `true` once
    /// [`TopicManager::close_all`] wrote them for a clean shutdown, after which nothing may
    /// overwrite them. Taken after `meta` and before `maps` (see the lock order above).
    dir_checkpoints: Mutex<bool>,
    /// Segments scanned by crash recovery when the partitions were opened at start (0 after a
    /// clean shutdown).
    segments_recovered: std::sync::atomic::AtomicU64,
    node: BrokerId,
    meta: Mutex<Meta>,
    maps: RwLock<Maps>,
}

fn topic_config_record(topic: &str, name: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: TOPIC_RESOURCE,
        resource_name: topic.to_string(),
        name: name.to_string(),
        value: value.map(str::to_string),
        ..Default::default()
    })
}

impl TopicManager {
    /// Opens the metadata log under `log.dirs`, replays it and opens (recovers) every
    /// partition log. Partition directories of deleted topics (left by a crash during deletion)
    /// are removed.
    pub fn open(cfg: &BrokerConfig) -> Result<TopicManager> {
        TopicManager::open_with_storage(cfg, Arc::new(RealStorage))
    }

    /// [`Self::open`] with the storage every partition log goes through (tests inject faults
    /// with `potok_log::FaultyStorage`).
    pub fn open_with_storage(
        cfg: &BrokerConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<TopicManager> {
        let data_dir = cfg.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| BrokerError::io(&data_dir, e))?;
        let defaults = TopicDefaults::from_broker(cfg)?;
        let node = BrokerId(cfg.node_id);
        let (log, records) = MetadataLog::open(&data_dir, node)?;
        let corrupt = |reason: String| BrokerError::CorruptMetadata {
            path: data_dir.join(METADATA_DIR),
            reason,
        };
        let image = MetadataImage::replay(&records).map_err(|e| corrupt(e.to_string()))?;
        // The topics to open, by name: id, partitions' leader epochs by index, overrides.
        type Replayed = (Uuid, Vec<PartitionState>, BTreeMap<String, String>);
        let mut wanted: BTreeMap<String, Replayed> = BTreeMap::new();
        for t in image.topics() {
            // Partitions are numbered from 0 without gaps (Kafka only ever adds the next
            // indexes); a gap would leave a hole in `TopicState::partitions`.
            if t.partitions
                .keys()
                .copied()
                .ne(0..t.partitions.len() as i32)
            {
                return Err(corrupt(format!(
                    "topic {}: partition indexes have gaps",
                    t.name
                )));
            }
            let states: Vec<PartitionState> = t.partitions.values().cloned().collect();
            wanted.insert(t.name.clone(), (t.id, states, image.topic_configs(&t.name)));
        }
        let open_files = OpenFiles::new(cfg.max_open_files);
        let mgr = TopicManager {
            data_dir,
            defaults: RwLock::new(defaults),
            storage: Arc::new(BoundedStorage::new(storage, Arc::clone(&open_files))),
            open_files,
            dir_checkpoints: Mutex::new(false),
            segments_recovered: std::sync::atomic::AtomicU64::new(0),
            node,
            meta: Mutex::new(Meta { log, image }),
            maps: RwLock::new(Maps::default()),
        };
        // Effective configs first (cheap, and an invalid one fails the start before any log
        // is opened), then every partition log opened on `num.recovery.threads.per.data.dir`
        // threads, since opening, and above all recovering after a crash, is per-partition IO
        // that one thread would do one partition after another.
        let mut topics = Vec::with_capacity(wanted.len());
        let mut jobs = Vec::new();
        for (name, (id, epochs, overrides)) in wanted {
            let config = read(&mgr.defaults).effective(&overrides).map_err(|e| {
                BrokerError::CorruptMetadata {
                    path: mgr.data_dir.join(METADATA_DIR),
                    reason: format!("topic {name}: {}", e.message),
                }
            })?;
            jobs.extend((0..epochs.len() as i32).map(|p| (topics.len(), p)));
            topics.push((id, name, epochs, overrides, config));
        }
        let dir_state = mgr.read_dir_checkpoints()?;
        let started = std::time::Instant::now();
        let opened = parallel_map(&jobs, cfg.recovery_threads, |&(t, p)| {
            let (_, name, epochs, _, config) = &topics[t];
            let known = dir_state.as_ref().map(|d| d.partition(name, p));
            mgr.open_partition_known(name, p, config, known, &epochs[p as usize])
        });
        let mut opened = opened.into_iter();
        let mut live_dirs = std::collections::HashSet::new();
        for (id, name, epochs, overrides, config) in topics {
            let mut parts = Vec::with_capacity(epochs.len());
            for p in 0..epochs.len() as i32 {
                live_dirs.insert(format!("{name}-{p}"));
                // One result per job, in job order, so the iterator cannot run short.
                if let Some(part) = opened.next() {
                    parts.push(part?);
                }
            }
            let topic = Arc::new(Topic {
                name: name.clone(),
                id,
                state: RwLock::new(TopicState {
                    partitions: parts,
                    overrides,
                    config,
                }),
            });
            let mut maps = write(&mgr.maps);
            maps.by_id.insert(id, Arc::clone(&topic));
            maps.by_name.insert(name, topic);
        }
        mgr.remove_orphans(&live_dirs)?;
        let recovered = mgr.segments_recovered.load(Ordering::Relaxed);
        tracing::info!(
            partitions = jobs.len(),
            segments_recovered = recovered,
            clean_shutdown = dir_state.as_ref().is_some_and(|d| d.clean),
            seconds = started.elapsed().as_secs_f64(),
            "opened partition logs"
        );
        // The files now describe exactly the live partitions (entries of deleted topics drop
        // out), and the marker goes before any write is accepted: from here a crash is unclean.
        mgr.write_dir_checkpoints()?;
        potok_log::remove_clean_shutdown(&*mgr.storage, &mgr.data_dir)?;
        Ok(mgr)
    }

    /// Reads the data directory's `recovery-point-offset-checkpoint`,
    /// `log-start-offset-checkpoint` and clean-shutdown marker (Kafka's `LogManager` files).
    /// `None` when the directory has none yet (new, or written by a version that kept them per
    /// partition): each log then reads its own files once.
    fn read_dir_checkpoints(&self) -> Result<Option<DirCheckpoints>> {
        let st = &*self.storage;
        let dir = &self.data_dir;
        let recovery = match potok_log::read_offsets_file(st, dir, RECOVERY_POINT_FILE) {
            Ok(None) => return Ok(None),
            Ok(Some(entries)) => Some(entries),
            Err(e) => {
                // Losing recovery points only costs longer scans (Kafka recovers every log).
                tracing::warn!(error = %e, "unreadable recovery point checkpoint; recovering every partition");
                None
            }
        };
        let clean = recovery.is_some() && potok_log::has_clean_shutdown(st, dir)?;
        let starts = potok_log::read_offsets_file(st, dir, LOG_START_OFFSET_FILE)?;
        let map = |entries: Option<Vec<OffsetEntry>>| -> HashMap<(String, i32), i64> {
            entries
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p, o)| ((t, p), o))
                .collect()
        };
        Ok(Some(DirCheckpoints {
            clean,
            recovery_points: map(recovery),
            log_starts: map(starts),
        }))
    }

    /// Writes the data directory's two checkpoint files from every open partition log (two
    /// file replacements, whatever the number of partitions). Kafka writes them every
    /// `log.flush.offset.checkpoint.interval.ms` and at shutdown; Potok also writes them at
    /// start, after DeleteRecords and after a topic deletion, so that a moved log start offset
    /// survives a crash and no entry of a deleted topic outlives it. A no-op after
    /// [`TopicManager::close_all`].
    pub fn write_dir_checkpoints(&self) -> Result<()> {
        let closed = lock(&self.dir_checkpoints);
        if *closed {
            return Ok(());
        }
        let mut recovery = Vec::new();
        let mut starts = Vec::new();
        for p in self.all_partitions() {
            if let Ok((rp, start)) =
                p.with_log(|log| Ok((log.recovery_point(), log.log_start_offset())))
            {
                recovery.push((p.topic.clone(), p.index, rp.0));
                starts.push((p.topic.clone(), p.index, start.0));
            }
        }
        self.write_dir_files(&recovery, &starts)
    }

    fn write_dir_files(&self, recovery: &[OffsetEntry], starts: &[OffsetEntry]) -> Result<()> {
        let st = &*self.storage;
        potok_log::write_offsets_file(st, &self.data_dir, LOG_START_OFFSET_FILE, starts)?;
        potok_log::write_offsets_file(st, &self.data_dir, RECOVERY_POINT_FILE, recovery)?;
        Ok(())
    }

    /// Segments scanned by crash recovery at start (0 after a clean shutdown).
    pub fn segments_recovered(&self) -> u64 {
        self.segments_recovered.load(Ordering::Relaxed)
    }

    /// Prometheus series of the partition logs (see `metrics` for the format).
    pub fn render_metrics(&self) -> String {
        let f = &self.open_files;
        format!(
            "# HELP potok_log_segments_recovered Segments scanned by crash recovery when the broker started (0 after a clean shutdown).\n\
             # TYPE potok_log_segments_recovered gauge\n\
             potok_log_segments_recovered {}\n\
             # HELP potok_log_open_segment_files Segment files held open (at most potok.log.max.open.files).\n\
             # TYPE potok_log_open_segment_files gauge\n\
             potok_log_open_segment_files {}\n\
             # HELP potok_log_max_open_segment_files The bound in force (potok.log.max.open.files, lowered to fit the descriptor limit).\n\
             # TYPE potok_log_max_open_segment_files gauge\n\
             potok_log_max_open_segment_files {}\n\
             # HELP potok_log_segment_file_closes_total Segment files closed to stay within the bound.\n\
             # TYPE potok_log_segment_file_closes_total counter\n\
             potok_log_segment_file_closes_total {}\n",
            self.segments_recovered(),
            f.open_count(),
            f.max_open(),
            f.evictions(),
        )
    }

    fn remove_orphans(&self, live: &std::collections::HashSet<String>) -> Result<()> {
        let entries =
            std::fs::read_dir(&self.data_dir).map_err(|e| BrokerError::io(&self.data_dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_partition_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                && name
                    .rsplit_once('-')
                    .is_some_and(|(t, p)| !t.is_empty() && p.parse::<u32>().is_ok());
            if is_partition_dir && !live.contains(&name) {
                tracing::warn!(dir = %e.path().display(), "removing the directory of a deleted partition");
                std::fs::remove_dir_all(e.path()).map_err(|err| BrokerError::io(e.path(), err))?;
            }
        }
        Ok(())
    }

    fn partition_dir(&self, topic: &str, p: i32) -> PathBuf {
        if topic == GROUP_METADATA_TOPIC {
            // `__consumer_offsets` keeps the layout the group coordinator gave it before it
            // became a topic of this manager, one level down (`{log.dirs}/__consumer_offsets/
            // __consumer_offsets-{p}`), so that data directories written by earlier releases
            // open without moving their offsets logs. Kafka keeps it directly under log.dirs.
            return self
                .data_dir
                .join(GROUP_METADATA_TOPIC)
                .join(format!("{topic}-{p}"));
        }
        self.data_dir.join(format!("{topic}-{p}"))
    }

    /// Opens a partition created at run time (nothing to recover).
    fn open_partition(
        &self,
        topic: &str,
        p: i32,
        config: &EffectiveTopicConfig,
        state: &PartitionState,
    ) -> Result<Arc<Partition>> {
        self.open_partition_known(topic, p, config, Some(DirCheckpoint::default()), state)
    }

    /// Opens a partition with what the data directory's checkpoint files say about it (`None`:
    /// the directory has none, the log reads its own once).
    fn open_partition_known(
        &self,
        topic: &str,
        p: i32,
        config: &EffectiveTopicConfig,
        known: Option<DirCheckpoint>,
        state: &PartitionState,
    ) -> Result<Arc<Partition>> {
        let dir = self.partition_dir(topic, p);
        // The image's leader epoch is assigned as part of the open (then again, as a no-op,
        // by `make_leader`), so an unchanged leader-epoch checkpoint is not rewritten.
        let mut log = Log::open_managed(
            &dir,
            config.log.clone(),
            Arc::clone(&self.storage),
            now_ms(),
            known,
            Some(state.leader_epoch),
        )?;
        let r = log.recovery_report();
        self.segments_recovered
            .fetch_add(r.scanned_segments.len() as u64, Ordering::Relaxed);
        if !r.scanned_segments.is_empty() || r.truncated_bytes > 0 {
            tracing::info!(partition = %dir.display(), scanned = r.scanned_segments.len(), truncated_bytes = r.truncated_bytes, "recovered partition log");
        }
        // This broker leads the partition from now on in the image's epoch.
        let leader = make_leader(&mut log, self.node, state, now_ms())?;
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index: p,
            log: Mutex::new(Some(log)),
            waiters: Mutex::new(Vec::new()),
            replica: Mutex::new(leader),
        }))
    }

    /// The shared set of open segment files (for metrics).
    pub fn open_files(&self) -> &Arc<OpenFiles> {
        &self.open_files
    }

    /// The storage every partition log goes through.
    pub(crate) fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.maps).by_name.get(name).cloned()
    }

    /// A topic by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        read(&self.maps).by_id.get(&id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = read(&self.maps).by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checks whether `t` could be created (name rules, collisions, existence, configs)
    /// without creating it, in Kafka's order (names before configs). Returns the overrides as
    /// they are stored (normalized by [`crate::topic_config::validate_value`]) and the
    /// resolved configs.
    pub fn validate_new_topic(
        &self,
        t: &NewTopic,
    ) -> std::result::Result<(BTreeMap<String, String>, EffectiveTopicConfig), ApiError> {
        self.validate(t, false)
    }

    /// [`Self::validate_new_topic`]; `internal_origin` is true when the broker itself creates
    /// one of its internal topics, which clients may not create.
    fn validate(
        &self,
        t: &NewTopic,
        internal_origin: bool,
    ) -> std::result::Result<(BTreeMap<String, String>, EffectiveTopicConfig), ApiError> {
        validate_topic_name(&t.name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
        if t.name == METADATA_DIR {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!("Topic name {} is reserved", t.name),
            ));
        }
        {
            let maps = read(&self.maps);
            if maps.by_name.contains_key(&t.name) {
                return Err(ApiError::new(
                    ErrorCode::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", t.name),
                ));
            }
            let key = collision_key(&t.name);
            if let Some(other) = maps.by_name.keys().find(|n| collision_key(n) == key) {
                return Err(ApiError::new(
                    ErrorCode::InvalidTopicException,
                    format!("Topic '{}' collides with existing topic: {other}", t.name),
                ));
            }
        }
        if is_internal(&t.name) && !internal_origin {
            return Err(internal_topics::creation_refused(&t.name));
        }
        if t.partitions < 1 {
            return Err(ApiError::new(
                ErrorCode::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        let overrides = normalize_overrides(&t.configs)?;
        let config = read(&self.defaults).effective(&overrides)?;
        Ok((overrides, config))
    }

    /// Creates a topic: validates it, makes its metadata records durable, opens its partition
    /// logs and publishes it.
    pub fn create_topic(&self, t: NewTopic) -> std::result::Result<Arc<Topic>, ApiError> {
        self.create_topics(vec![t])
            .pop()
            .unwrap_or_else(|| Err(ApiError::new(ErrorCode::UnknownServerError, "no result")))
    }

    /// Creates one of the broker's internal topics (Kafka's internal-origin creation, which
    /// `AutoTopicCreationManager` does for the coordinators). Existing partition directories
    /// are adopted rather than removed: an internal topic is never deleted, so they hold the
    /// data of this topic as earlier releases stored it outside the metadata log.
    pub fn create_internal_topic(&self, t: NewTopic) -> std::result::Result<Arc<Topic>, ApiError> {
        self.create(vec![t], true)
            .pop()
            .unwrap_or_else(|| Err(ApiError::new(ErrorCode::UnknownServerError, "no result")))
    }

    /// Creates topics, with one result per topic in input order: validates each (under the
    /// metadata lock, so that concurrent creations cannot both pass; a topic is also checked
    /// against the ones before it in `topics`), makes the records of every valid topic durable
    /// as one frame (one fsync for a whole CreateTopics request), then opens their partition
    /// logs and publishes them.
    pub fn create_topics(
        &self,
        topics: Vec<NewTopic>,
    ) -> Vec<std::result::Result<Arc<Topic>, ApiError>> {
        self.create(topics, false)
    }

    /// [`Self::create_topics`]; `internal_origin` as in [`Self::validate`].
    fn create(
        &self,
        topics: Vec<NewTopic>,
        internal_origin: bool,
    ) -> Vec<std::result::Result<Arc<Topic>, ApiError>> {
        let mut meta = lock(&self.meta);
        let mut records = Vec::new();
        let mut planned = Vec::with_capacity(topics.len());
        let mut batch: Vec<&str> = Vec::new();
        for t in &topics {
            let plan = self
                .validate(t, internal_origin)
                .and_then(|(overrides, config)| {
                    if let Some(other) = batch
                        .iter()
                        .find(|n| collision_key(n) == collision_key(&t.name))
                    {
                        return Err(if *other == t.name {
                            ApiError::new(
                                ErrorCode::TopicAlreadyExists,
                                format!("Topic '{}' already exists.", t.name),
                            )
                        } else {
                            ApiError::new(
                                ErrorCode::InvalidTopicException,
                                format!("Topic '{}' collides with existing topic: {other}", t.name),
                            )
                        });
                    }
                    Ok((overrides, config))
                });
            let (overrides, config) = match plan {
                Ok(p) => p,
                Err(e) => {
                    planned.push(Err(e));
                    continue;
                }
            };
            batch.push(&t.name);
            let mut id = random_uuid();
            while id == Uuid::ZERO || meta.image.topic(id).is_some() {
                id = random_uuid();
            }
            // Kafka's controller writes a creation as the TopicRecord, the topic's
            // ConfigRecords, then one PartitionRecord per partition.
            records.push(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: id,
                ..Default::default()
            }));
            for (k, v) in &overrides {
                records.push(topic_config_record(&t.name, k, Some(v)));
            }
            records.extend((0..t.partitions).map(|p| partition_record(id, p, self.node)));
            planned.push(Ok((id, overrides, config)));
        }
        // Stale directories of an earlier topic with the same name (a crash during its
        // deletion) must not be adopted by the new topic. An internal topic adopts them
        // (see `create_internal_topic`).
        for (t, _) in topics
            .iter()
            .zip(&planned)
            .filter(|(_, p)| p.is_ok() && !internal_origin)
        {
            for p in 0..t.partitions {
                let dir = self.partition_dir(&t.name, p);
                if dir.exists() {
                    tracing::warn!(dir = %dir.display(), "removing a stale partition directory before creating the topic");
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        if let Err(e) = meta.commit(&records) {
            return planned.into_iter().map(|p| p.and(Err(e.clone()))).collect();
        }
        drop(meta);
        topics
            .into_iter()
            .zip(planned)
            .map(|(t, plan)| {
                let (id, overrides, config) = plan?;
                let name = t.name.clone();
                self.publish_new_topic(t, id, overrides, config, internal_origin)
                    .inspect_err(|_| self.roll_back_creation(id, &name))
            })
            .collect()
    }

    /// Undoes a creation whose records are durable but whose partition logs could not be
    /// opened (descriptors or disk exhausted): a `RemoveTopicRecord` follows, so neither the
    /// image nor a replay keeps a topic nobody can use, and a retry of the same name is a new
    /// creation rather than a second `TopicRecord` for a name the image already holds.
    fn roll_back_creation(&self, id: Uuid, name: &str) {
        let mut meta = lock(&self.meta);
        if let Err(e) = meta.commit(&[MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id,
            ..Default::default()
        })]) {
            tracing::error!(topic = name, error = %e.message, "could not roll back a failed topic creation");
        }
    }

    /// Opens the partition logs of a topic whose records are durable and publishes it.
    fn publish_new_topic(
        &self,
        t: NewTopic,
        id: Uuid,
        overrides: BTreeMap<String, String>,
        config: EffectiveTopicConfig,
        internal_origin: bool,
    ) -> std::result::Result<Arc<Topic>, ApiError> {
        let mut parts = Vec::new();
        for p in 0..t.partitions {
            // An adopted directory keeps its own checkpoint files (it was written outside this
            // manager): `None` reads them once, as for a directory of an older version.
            let adopted = internal_origin && self.partition_dir(&t.name, p).exists();
            let known = if adopted {
                None
            } else {
                Some(DirCheckpoint::default())
            };
            match self.open_partition_known(
                &t.name,
                p,
                &config,
                known,
                &single_node_partition(self.node),
            ) {
                Ok(part) => parts.push(part),
                Err(e) => {
                    // The partitions opened so far go with the failed creation; an internal
                    // topic's are only closed, since they may be adopted logs of an earlier
                    // release that hold committed offsets.
                    for part in &parts {
                        let undone = if internal_origin {
                            part.close()
                        } else {
                            part.delete()
                        };
                        if let Err(err) = undone {
                            tracing::warn!(topic = %t.name, error = %err, "could not remove a partition of a failed creation");
                        }
                    }
                    return Err(storage_error(e));
                }
            }
        }
        let topic = Arc::new(Topic {
            name: t.name.clone(),
            id,
            state: RwLock::new(TopicState {
                partitions: parts,
                overrides,
                config,
            }),
        });
        let mut maps = write(&self.maps);
        maps.by_id.insert(id, Arc::clone(&topic));
        maps.by_name.insert(t.name, Arc::clone(&topic));
        tracing::info!(topic = %topic.name, id = %id, partitions = topic.partition_count(), "created topic");
        Ok(topic)
    }

    /// Deletes a topic: the deletion is made durable, the topic unpublished, its logs closed
    /// and its directories removed.
    pub fn delete_topic(&self, id: Uuid) -> std::result::Result<(), ApiError> {
        let mut meta = lock(&self.meta);
        let topic = self.get_by_id(id).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownTopicId, format!("unknown topic id {id}"))
        })?;
        meta.commit(&[MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id,
            ..Default::default()
        })])?;
        {
            let mut maps = write(&self.maps);
            maps.by_id.remove(&id);
            maps.by_name.remove(&topic.name);
        }
        for p in topic.state().partitions {
            if let Err(e) = p.delete() {
                tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "could not remove a deleted partition's directory; it is removed at the next start");
            }
        }
        // A topic created later under the same name must not inherit these partitions'
        // checkpointed offsets (Kafka rewrites the checkpoints on deletion too).
        if let Err(e) = self.write_dir_checkpoints() {
            tracing::warn!(error = %e, "could not rewrite the data directory's checkpoints after a topic deletion");
        }
        tracing::info!(topic = %topic.name, id = %id, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `total` partitions. A decrease or no change is `INVALID_PARTITIONS`.
    /// With `validate_only` nothing changes.
    pub fn create_partitions(
        &self,
        id: Uuid,
        total: i32,
        validate_only: bool,
    ) -> std::result::Result<(), ApiError> {
        let meta_guard = lock(&self.meta);
        let mut meta = meta_guard;
        let topic = self.get_by_id(id).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownTopicId, format!("unknown topic id {id}"))
        })?;
        let state = topic.state();
        let current = state.partitions.len() as i32;
        if total <= current {
            let msg = if total == current {
                format!("Topic already has {current} partitions.")
            } else {
                format!("The topic {} currently has {current} partition(s); {total} would not be an increase.", topic.name)
            };
            return Err(ApiError::new(ErrorCode::InvalidPartitions, msg));
        }
        if validate_only {
            return Ok(());
        }
        // Kafka's controller writes a PartitionRecord per new partition.
        let records: Vec<MetadataRecord> = (current..total)
            .map(|p| partition_record(id, p, self.node))
            .collect();
        meta.commit(&records)?;
        let mut new_parts = Vec::new();
        for p in current..total {
            new_parts.push(
                self.open_partition(
                    &topic.name,
                    p,
                    &state.config,
                    &single_node_partition(self.node),
                )
                .map_err(storage_error)?,
            );
        }
        write(&topic.state).partitions.extend(new_parts);
        Ok(())
    }

    /// Checks that every topic's overrides still resolve over `defaults` (the broker-wide
    /// topic defaults recomputed after a dynamic broker config change), without changing
    /// anything.
    pub fn check_defaults(&self, defaults: &TopicDefaults) -> std::result::Result<(), ApiError> {
        for topic in self.all() {
            defaults.effective(&topic.state().overrides)?;
        }
        Ok(())
    }

    /// Makes `defaults` the broker-wide topic defaults and applies the resulting effective
    /// config to every partition log, so a dynamic `log.retention.ms` takes effect without a
    /// restart, as Kafka's `DynamicLogConfig.reconfigure` does.
    pub fn set_defaults(&self, defaults: TopicDefaults) -> std::result::Result<(), ApiError> {
        // The metadata lock orders this against set_topic_configs, which reads the defaults
        // and writes a topic's effective config under it.
        let _meta = lock(&self.meta);
        self.check_defaults(&defaults)?;
        *write(&self.defaults) = defaults.clone();
        for topic in self.all() {
            let parts = {
                let mut st = write(&topic.state);
                st.config = defaults.effective(&st.overrides)?;
                st.partitions.clone()
            };
            let log_config = read(&topic.state).config.log.clone();
            for p in parts {
                p.with_log(|log| log.set_config(log_config.clone()))
                    .map_err(|e| ApiError::new(log_error_code(&e), e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Replaces a topic's config overrides with `overrides` (after validating them), writing
    /// one `ConfigRecord` per changed config, and applies the result to every partition log.
    pub fn set_topic_configs(
        &self,
        id: Uuid,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> std::result::Result<(), ApiError> {
        let mut meta = lock(&self.meta);
        let topic = self.get_by_id(id).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownTopicId, format!("unknown topic id {id}"))
        })?;
        let overrides = normalize_overrides(&overrides)?;
        let config = read(&self.defaults).effective(&overrides)?;
        if validate_only {
            return Ok(());
        }
        // One ConfigRecord per changed config (a null value removes the override, as in
        // Kafka), all in one frame so the change is durable whole or not at all.
        let old = topic.state().overrides;
        let mut records: Vec<MetadataRecord> = overrides
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|(k, v)| topic_config_record(&topic.name, k, Some(v)))
            .collect();
        records.extend(
            old.keys()
                .filter(|k| !overrides.contains_key(*k))
                .map(|k| topic_config_record(&topic.name, k, None)),
        );
        meta.commit(&records)?;
        let parts = {
            let mut st = write(&topic.state);
            st.overrides = overrides;
            st.config = config.clone();
            st.partitions.clone()
        };
        for p in parts {
            p.with_log(|log| log.set_config(config.log.clone()))
                .map_err(|e| ApiError::new(log_error_code(&e), e.to_string()))?;
        }
        Ok(())
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.all()
            .into_iter()
            .flat_map(|t| t.state().partitions)
            .collect()
    }

    /// Closes every partition log cleanly (SIGTERM path).
    pub fn close_all(&self, threads: usize) {
        let mut closed = lock(&self.dir_checkpoints);
        if *closed {
            return;
        }
        *closed = true;
        // Closing flushes each log: spread over the same threads as opening (Kafka uses
        // `num.recovery.threads.per.data.dir` for shutdown flushes too). A closed log is
        // durable up to its end, which is then its recovery point.
        let results = parallel_map(&self.all_partitions(), threads, |p| {
            let offsets = p.with_log(|log| Ok((log.log_end_offset(), log.log_start_offset())));
            match offsets.and_then(|o| p.close().map(|()| o)) {
                Ok((end, start)) => Some((p.topic.clone(), p.index, end.0, start.0)),
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "closing partition log failed");
                    None
                }
            }
        });
        let all_closed = results.iter().all(Option::is_some);
        let (recovery, starts): (Vec<OffsetEntry>, Vec<OffsetEntry>) = results
            .into_iter()
            .flatten()
            .map(|(t, p, end, start)| ((t.clone(), p, end), (t, p, start)))
            .unzip();
        // The marker last, and only when every log closed: it vouches for all of them.
        let written = self.write_dir_files(&recovery, &starts).and_then(|()| {
            if all_closed {
                potok_log::write_clean_shutdown(&*self.storage, &self.data_dir)?;
            }
            Ok(())
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing the data directory's checkpoints failed; the next start recovers");
        }
    }
}

/// The data directory's checkpoint files as read at start.
struct DirCheckpoints {
    /// The clean-shutdown marker was present.
    clean: bool,
    recovery_points: HashMap<(String, i32), i64>,
    log_starts: HashMap<(String, i32), i64>,
}

impl DirCheckpoints {
    /// What the files say about one partition. A partition missing from the recovery points is
    /// recovered from its start even after a clean shutdown: nothing vouches for it.
    fn partition(&self, topic: &str, p: i32) -> DirCheckpoint {
        let key = (topic.to_string(), p);
        let recovery_point = self.recovery_points.get(&key).copied();
        DirCheckpoint {
            clean_shutdown: self.clean && recovery_point.is_some(),
            recovery_point,
            log_start_offset: self.log_starts.get(&key).copied(),
        }
    }
}

/// `f` applied to every item on up to `threads` scoped threads; results in item order. Items
/// are handed out one at a time, so a slow item (a partition with much to recover) does not
/// hold up a whole share of the others.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                // A panicking worker is a bug; re-raise it on the calling thread.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn storage_error(e: BrokerError) -> ApiError {
    tracing::error!(error = %e, "metadata or log storage failure");
    ApiError::new(ErrorCode::KafkaStorageError, e.to_string())
}

#[cfg(test)]
mod tests;
