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
    AppendInfo, BackgroundFlusher, BoundedStorage, DirCheckpoint, Log, LogError, OffsetEntry,
    OpenFiles, ReadSlice, RealStorage, Storage, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
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
use potok_replication::{AcksOutcome, LeaderState};

mod checkpoints;
mod create;
mod leadership;
mod partition;
mod replicated;
mod roles;

pub(crate) use checkpoints::parallel_map;
pub use checkpoints::HW_CHECKPOINT_FILE;
pub use leadership::{LeadershipChange, LeadershipListener};
use partition::{lock, make_leader, read, single_node_partition, write};
pub use partition::{IsolatedRead, Partition};
pub use roles::{ReplicationContext, Role};

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
        LogError::TransactionCoordinatorFenced { .. } => ErrorCode::TransactionCoordinatorFenced,
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
    /// Under the controller quorum the image follows the quorum's committed log only
    /// (`replicated.rs`); a local change would make this node diverge, so it is refused.
    replicated: bool,
}

impl Meta {
    /// Makes `records` durable as one frame (one fsync), then applies them to the image.
    /// The records are built from state checked under the same lock, so the image refusing
    /// one is a bug; it is reported as a storage error and logged, and the next start
    /// refuses the log, as Kafka's controller treats a record it cannot replay as fatal.
    fn commit(&mut self, records: &[MetadataRecord]) -> std::result::Result<(), ApiError> {
        if self.replicated {
            return Err(ApiError::new(
                ErrorCode::NotController,
                "metadata changes of this cluster go through the active controller",
            ));
        }
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
    /// Runs the fsyncs of every partition log's rolls and `flush.ms` flushes off the request
    /// threads (issue #14; see `potok_log::flusher`).
    flusher: Arc<BackgroundFlusher>,
    node: BrokerId,
    /// See [`Meta::replicated`].
    replicated: bool,
    meta: Mutex<Meta>,
    maps: RwLock<Maps>,
    /// What partitions' role changes share (`roles.rs`).
    replication: ReplicationContext,
}

/// Threads of the background flusher. Kafka runs the flush of a rolled segment on its scheduler
/// (`background.threads`, 10 by default, shared with other periodic work); fsyncs of different
/// files proceed in parallel on most disks, and a few threads keep one slow fsync from holding
/// up the recovery point of every other partition.
const FLUSH_THREADS: usize = 4;

/// Queued background flushes; beyond this a roll flushes inline (backpressure) rather than
/// queueing without bound. A job is a few hundred bytes.
const FLUSH_QUEUE: usize = 4096;

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
        TopicManager::open_inner(cfg, storage, None)
    }

    /// Opens the topics of a member of the controller quorum: `records` are the committed
    /// entries of the quorum's log (the local metadata log must be empty: a directory that
    /// served as a single node cannot join a quorum), and from here on the image changes only
    /// through [`Self::apply_replicated`].
    pub fn open_replicated(cfg: &BrokerConfig, records: &[MetadataRecord]) -> Result<TopicManager> {
        TopicManager::open_inner(cfg, Arc::new(RealStorage), Some(records))
    }

    fn open_inner(
        cfg: &BrokerConfig,
        storage: Arc<dyn Storage>,
        replicated: Option<&[MetadataRecord]>,
    ) -> Result<TopicManager> {
        let data_dir = cfg.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| BrokerError::io(&data_dir, e))?;
        let defaults = TopicDefaults::from_broker(cfg)?;
        let node = BrokerId(cfg.node_id);
        let (log, mut records) = MetadataLog::open(&data_dir, node)?;
        let corrupt = |reason: String| BrokerError::CorruptMetadata {
            path: data_dir.join(METADATA_DIR),
            reason,
        };
        if let Some(quorum_records) = replicated {
            if !records.is_empty() {
                return Err(corrupt(
                    "this data directory holds the metadata log of a single node; a member of \
                     a controller quorum starts from an empty directory"
                        .into(),
                ));
            }
            records = quorum_records.to_vec();
        }
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
        let flusher = BackgroundFlusher::start(FLUSH_THREADS, FLUSH_QUEUE)
            .map_err(|e| BrokerError::io(&data_dir, e))?;
        let mgr = TopicManager {
            data_dir,
            defaults: RwLock::new(defaults),
            storage: Arc::new(BoundedStorage::new(storage, Arc::clone(&open_files))),
            open_files,
            dir_checkpoints: Mutex::new(false),
            segments_recovered: std::sync::atomic::AtomicU64::new(0),
            flusher,
            node,
            replicated: replicated.is_some(),
            meta: Mutex::new(Meta {
                log,
                image,
                replicated: replicated.is_some(),
            }),
            maps: RwLock::new(Maps::default()),
            replication: ReplicationContext::new(
                crate::replica::ReplicaSettings::from_config(cfg)?.fetch_backoff_ms,
                cfg.planted_bug,
            ),
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
        mgr.read_hw_checkpoint();
        let started = std::time::Instant::now();
        let opened = parallel_map(&jobs, cfg.recovery_threads, |&(t, p)| {
            let (_, name, epochs, _, config) = &topics[t];
            let known = dir_state.as_ref().map(|d| d.partition(name, p));
            mgr.open_replica(name, p, config, known, &epochs[p as usize], false)
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
             potok_log_segment_file_closes_total {}\n\
             # HELP potok_log_background_flushes_total Flushes of rolled segments and flush.ms run on the background flusher's threads.\n\
             # TYPE potok_log_background_flushes_total counter\n\
             potok_log_background_flushes_total {}\n\
             # HELP potok_log_inline_flushes_total Flushes run on the appending thread because the background flusher's queue was full.\n\
             # TYPE potok_log_inline_flushes_total counter\n\
             potok_log_inline_flushes_total {}\n",
            self.segments_recovered(),
            f.open_count(),
            f.max_open(),
            f.evictions(),
            self.flusher.completed(),
            self.flusher.ran_inline(),
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

    /// Creates the log of a partition created at run time ([`Log::create_managed`]: its
    /// directory and leader-epoch file, no fsync, nothing read; the caller fsyncs the parent
    /// directory once for all partitions it creates).
    fn create_partition(
        &self,
        topic: &str,
        p: i32,
        config: &EffectiveTopicConfig,
        state: &PartitionState,
    ) -> Result<Arc<Partition>> {
        let dir = self.partition_dir(topic, p);
        let mut log = Log::create_managed(
            &dir,
            config.log.clone(),
            Arc::clone(&self.storage),
            now_ms(),
            state.leader_epoch,
        )?;
        log.set_background_flusher(Some(Arc::clone(&self.flusher)));
        let role = self.make_role(Some(&mut log), state, Offset(0))?;
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index: p,
            log: Mutex::new(Some(log)),
            waiters: Mutex::new(Vec::new()),
            replica: Mutex::new(role),
        }))
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
        log.set_background_flusher(Some(Arc::clone(&self.flusher)));
        // This broker leads or follows the partition from now on in the image's epoch, from the
        // high watermark it checkpointed.
        let hw = self.checkpointed_hw(topic, p);
        let role = self.make_role(Some(&mut log), state, hw)?;
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index: p,
            log: Mutex::new(Some(log)),
            waiters: Mutex::new(Vec::new()),
            replica: Mutex::new(role),
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
            // In a cluster a partition this broker does not replicate has no log to change.
            for p in parts.iter().filter(|p| p.is_local_replica()) {
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
        // In a cluster a partition this broker does not replicate has no log to change.
        for p in parts.iter().filter(|p| p.is_local_replica()) {
            p.with_log(|log| log.set_config(config.log.clone()))
                .map_err(|e| ApiError::new(log_error_code(&e), e.to_string()))?;
        }
        Ok(())
    }

    /// Every partition of every topic that has a log here, led or followed (in a cluster, not
    /// the placeholders of partitions this broker is no replica of: retention, checkpoints and
    /// shutdown have nothing to do for them).
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.all()
            .into_iter()
            .flat_map(|t| t.state().partitions)
            .filter(|p| p.is_local_replica())
            .collect()
    }

    /// Closes every partition log cleanly (SIGTERM path).
    pub fn close_all(&self, threads: usize) {
        let mut closed = lock(&self.dir_checkpoints);
        if *closed {
            return;
        }
        *closed = true;
        // The high watermarks first, while the logs are open (Kafka checkpoints them when the
        // replica manager shuts down, before the logs close).
        if let Err(e) = self.write_hw_checkpoint() {
            tracing::warn!(error = %e, "writing replication-offset-checkpoint failed");
        }
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

fn storage_error(e: BrokerError) -> ApiError {
    tracing::error!(error = %e, "metadata or log storage failure");
    ApiError::new(ErrorCode::KafkaStorageError, e.to_string())
}

#[cfg(test)]
mod tests;
