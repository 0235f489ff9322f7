//! The Potok broker: configuration, durable topic metadata, partitions, the network server and
//! the Kafka request handlers. This crate is the composition root; the `potok` binary only
//! parses arguments and calls [`run`].
//!
//! # Map
//!
//! - [`config`]: [`BrokerConfig`] with Kafka's property names; unknown or invalid settings are
//!   errors at start.
//! - [`topic_config`]: topic-level configs (`retention.ms`, `max.message.bytes`, ...), their
//!   broker defaults and the effective `potok_log::LogConfig`.
//! - [`metadata_log`]: the append-only, CRC-checked log of Kafka's KRaft metadata records
//!   (`potok-metadata`) replayed at start into the metadata image — the unit a Raft quorum will
//!   replicate later — and the data directory's format version and migration.
//! - [`topics`]: [`TopicManager`] — topics, [`topics::Partition`]s (one `potok_log::Log`
//!   each, in `{log.dirs}/{topic}-{partition}`) and every metadata change.
//! - [`registry`]: handler registration; the registry is the only source of the ApiVersions
//!   answer.
//! - [`handlers`]: one module per API.
//! - [`server`]: the tokio TCP server (bounded connections and frames, in-order responses).
//! - [`sendfile`]: zero-copy Fetch responses.
//! - [`metrics`]: counters and the Prometheus text served by [`admin`].
//!
//! `docs/configuration.md` lists the settings. A new API is a module under [`handlers`] (or
//! its own module, as [`admin_api`] and [`group`]) added to [`handlers::register_all`].
//!
//! # Threads and locks
//!
//! Handlers run on tokio worker threads and call the synchronous partition log directly: an
//! append or read touches the page cache only, as Kafka's request handler threads do. The
//! fsyncs of a segment roll and of `flush.ms` run on the partition logs' background flusher
//! (`potok_log::BackgroundFlusher`, owned by the [`TopicManager`]); only `flush.messages`, which
//! asks for durability before the answer, fsyncs on the worker.
//! Retention and the data directory's checkpoints run on blocking threads and hold a
//! partition's lock only for short steps (issue #14). Locks are `std::sync` locks, never held
//! across an `.await`; their order is documented on [`TopicManager`].

pub mod admin;
pub mod admin_api;
pub mod cleaner;
pub mod config;
pub mod dynamic_config;
pub mod error;
pub mod frames;
pub mod group;
pub mod handlers;
pub mod internal_topics;
pub mod isr;
pub mod metadata_log;
pub mod metrics;
pub mod planted;
pub mod producer_ids;
pub mod quorum;
pub mod registry;
pub mod replica;
pub mod sendfile;
pub mod server;
pub mod topic_config;
pub mod topics;
pub mod txn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::BrokerConfig;
pub use error::{BrokerError, Result};
pub use metrics::Metrics;
pub use registry::{Registry, Reply, RequestContext};
pub use topics::{ApiError, TopicManager};

/// The broker: everything a handler can reach.
#[derive(Debug)]
pub struct Broker {
    /// The configuration.
    pub config: BrokerConfig,
    /// Topics and partitions (shared with the group coordinator, which creates and writes
    /// `__consumer_offsets`).
    pub topics: Arc<TopicManager>,
    /// The registered handlers.
    pub registry: Registry,
    /// Metrics.
    pub metrics: Metrics,
    /// Producer id allocation for InitProducerId (issue #6).
    pub producer_ids: producer_ids::ProducerIds,
    /// The group coordinator (consumer groups and committed offsets).
    pub groups: group::GroupService,
    /// The transaction coordinator (issue 21).
    pub txn: txn::TxnService,
    /// The cluster id (persisted in `{log.dirs}/meta.properties`, as Kafka does).
    pub cluster_id: String,
    /// The port clients are told to use (the bound port when `listeners` used port 0).
    pub advertised_port: u16,
    /// Dynamic broker configs (AlterConfigs on a BROKER resource). The lock is held across the
    /// file replace of a change so that changes are stored in the order they are applied; it
    /// is never held across an `.await`.
    pub dynamic: std::sync::Mutex<dynamic_config::DynamicConfigs>,
    /// The controller quorum this node is a voter of (`controller.quorum.voters`); `None` on
    /// a single node with its own metadata log.
    pub quorum: Option<Arc<quorum::Quorum>>,
    /// Incremental fetch sessions of follower fetches (KIP-227).
    pub fetch_sessions: handlers::fetch_sessions::FetchSessions,
    shutdown: watch::Sender<bool>,
}

impl Broker {
    /// A receiver that changes to `true` when shutdown starts. Long-running waits (fetch long
    /// polls, connection loops) select on it.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Reads or creates `{log.dirs}/meta.properties` (`cluster.id`, `node.id`), refusing to start
/// when the directory belongs to another node id, as Kafka does.
fn cluster_identity(cfg: &BrokerConfig) -> Result<String> {
    let path = cfg.data_dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let props = config::parse_properties(&text, &path.display().to_string())?;
            let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if let Some(n) = get("node.id") {
                if n != cfg.node_id.to_string() {
                    return Err(BrokerError::Config(format!(
                        "{} belongs to node.id={n}, but node.id={} is configured",
                        path.display(),
                        cfg.node_id
                    )));
                }
            }
            let stored = get("cluster.id").ok_or_else(|| BrokerError::CorruptMetadata {
                path: path.clone(),
                reason: "no cluster.id".into(),
            })?;
            // A voter refuses to start in another cluster than the one its data belongs to,
            // as Kafka refuses a meta.properties whose cluster.id differs from the quorum's.
            if let Some(q) = cfg.quorum.as_ref().filter(|q| q.cluster_id != stored) {
                return Err(BrokerError::Config(format!(
                    "{} belongs to cluster {stored}, but potok.cluster.id={} is configured",
                    path.display(),
                    q.cluster_id
                )));
            }
            Ok(stored)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = match &cfg.quorum {
                Some(q) => q.cluster_id.clone(),
                None => base64_url(&topics::random_uuid().0),
            };
            let text = format!(
                "# Written by potok at first start.\nversion=1\ncluster.id={cluster_id}\nnode.id={}\n",
                cfg.node_id
            );
            let tmp = cfg.data_dir.join("meta.properties.tmp");
            std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| BrokerError::io(&path, e))?;
            Ok(cluster_id)
        }
        Err(e) => Err(BrokerError::io(&path, e)),
    }
}

/// Kafka cluster ids are a UUID in URL-safe base64 without padding (22 characters).
fn base64_url(b: &[u8; 16]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut bits = 0u32;
    let mut n = 0;
    for &x in b {
        bits = (bits << 8) | u32::from(x);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(A[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(A[((bits << (6 - n)) & 63) as usize] as char);
    }
    out
}

/// A running broker: its address and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// The broker.
    pub broker: Arc<Broker>,
    /// The bound client address.
    pub addr: SocketAddr,
    /// The bound admin address, if enabled.
    pub admin_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    cleaner: Option<cleaner::CleanerThreads>,
}

impl Running {
    /// Stops accepting, ends connections and long polls, and closes every log cleanly
    /// (flush, checkpoints, clean-shutdown marker).
    pub async fn shutdown(self) {
        let _ = self.broker.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let b = Arc::clone(&self.broker);
        let cleaner = self.cleaner;
        let _ = tokio::task::spawn_blocking(move || {
            // The cleaner threads stop before the logs close under them.
            if let Some(c) = cleaner {
                c.stop();
            }
            b.topics.close_all(b.config.recovery_threads);
        })
        .await;
        tracing::info!("shut down cleanly");
    }
}

/// Raises the soft limit on open file descriptors to the hard limit, as Kafka's start scripts
/// advise (`ulimit -n`): every partition holds segment and index files open and every client a
/// socket, and the soft limit (often 1,024) is far below what a broker with thousands of
/// partitions needs. Returns `(before, after)`; a failure leaves the limit as it was.
fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur))
}

/// How often the data directory's recovery-point and log-start-offset checkpoints are
/// rewritten: Kafka's defaults of `log.flush.offset.checkpoint.interval.ms` and
/// `log.flush.start.offset.checkpoint.interval.ms` (60 s). After a crash only what was
/// appended since the last write is scanned.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// Rewrites the data directory's checkpoints every [`CHECKPOINT_INTERVAL`] until shutdown.
async fn checkpoint_periodically(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let b = Arc::clone(&broker);
        // Two file replacements with fsyncs: off the request threads.
        let r = tokio::task::spawn_blocking(move || b.topics.write_dir_checkpoints()).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "writing the data directory's checkpoints failed");
        }
    }
}

/// Descriptors kept free besides segment files and client sockets: the metadata log, the
/// consumer-offsets logs, checkpoint and index files being written, the runtime's own.
const RESERVED_FDS: u64 = 512;

/// The `potok.log.max.open.files` bound to use under the descriptor limit `limit`: the
/// configured one when segment files, `max.connections` sockets and [`RESERVED_FDS`] fit,
/// otherwise what is left for segment files (at least 64), with a warning, so that a broker
/// never runs out of descriptors because of its own files.
fn fit_open_files(configured: usize, max_connections: usize, limit: u64) -> usize {
    let room = limit
        .saturating_sub(max_connections as u64)
        .saturating_sub(RESERVED_FDS)
        .max(64);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if configured > room {
        tracing::warn!(
            configured,
            used = room,
            limit,
            max_connections,
            "potok.log.max.open.files does not fit under the open file limit with max.connections; lowered"
        );
        room
    } else {
        tracing::info!(
            bound = configured,
            "segment files kept open at most (potok.log.max.open.files)"
        );
        configured
    }
}

/// Opens the data directory, binds the listeners and starts serving. Returns once the broker
/// accepts connections.
pub async fn start(mut config: BrokerConfig) -> Result<Running> {
    let limit = match raise_fd_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(
                before,
                after,
                "raised the open file limit (RLIMIT_NOFILE) to its hard limit"
            );
            Some(after)
        }
        Ok((_, after)) => {
            tracing::info!(limit = after, "open file limit (RLIMIT_NOFILE)");
            Some(after)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open file limit");
            None
        }
    };
    if let Some(limit) = limit {
        config.max_open_files =
            fit_open_files(config.max_open_files, config.max_connections, limit);
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| BrokerError::io(&config.data_dir, e))?;
    let cluster_id = cluster_identity(&config)?;
    // Recover every partition before binding: a client that can connect must be served.
    // A voter's topics are the committed entries of the quorum's log.
    let (topics, raft_store) = {
        let cfg = config.clone();
        tokio::task::spawn_blocking(move || {
            // An interrupted rewrite of an offsets partition is repaired before its log is
            // opened (see `group`'s "Replay").
            group::finish_interrupted_rewrites(&cfg.data_dir)?;
            match &cfg.quorum {
                Some(q) => {
                    let (store, mem, topics, applied) = quorum::open_store(&cfg, q)?;
                    Ok::<_, BrokerError>((topics, Some((store, mem, applied))))
                }
                None => Ok((TopicManager::open(&cfg)?, None)),
            }
        })
        .await
        .map_err(|e| BrokerError::Config(format!("start-up task failed: {e}")))??
    };
    let topics = Arc::new(topics);
    let quorum_parts = match (&config.quorum, raft_store) {
        (Some(q), Some((store, mem, applied))) => {
            Some(quorum::prepare(&config, q, store, mem, applied).await?)
        }
        _ => None,
    };
    let producer_ids = match &quorum_parts {
        Some((q, _)) => producer_ids::ProducerIds::Cluster(
            producer_ids::cluster::ClusterProducerIds::from_quorum(Arc::clone(q)),
        ),
        None => producer_ids::ProducerIds::Local(producer_ids::ProducerIdManager::open(
            &config.data_dir,
        )?),
    };
    let dynamic = dynamic_config::load(&dynamic_config::file_path(
        &config.data_dir.join(metadata_log::METADATA_DIR),
    ))?;
    if dynamic != dynamic_config::DynamicConfigs::default() {
        // Stored dynamic topic defaults (log.retention.ms, ...) apply from the start, as in
        // Kafka, where the broker reads its dynamic configs before it serves.
        let defaults = topic_config::TopicDefaults::from_broker(&dynamic_config::Layered {
            config: &config,
            dynamic: &dynamic,
        })?;
        topics
            .set_defaults(defaults)
            .map_err(|e| BrokerError::Config(format!("dynamic broker configs: {}", e.message)))?;
    }
    // Groups and committed offsets are loaded before binding too.
    let groups = {
        let cfg = config.clone();
        let topics = Arc::clone(&topics);
        tokio::task::spawn_blocking(move || group::GroupService::open(&cfg, topics))
            .await
            .map_err(|e| BrokerError::Config(format!("start-up task failed: {e}")))??
    };
    // The transaction coordinator completes the transactions it finds prepared (writing their
    // markers, some through the group service) before the broker serves.
    let txn = {
        let cfg = config.clone();
        let topics = Arc::clone(&topics);
        tokio::task::spawn_blocking(move || {
            txn::TxnService::open(&cfg, topics, &groups).map(|t| (t, groups))
        })
        .await
        .map_err(|e| BrokerError::Config(format!("start-up task failed: {e}")))??
    };
    let (txn, groups) = txn;
    let bind = config.listener.bind_addr();
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|e| BrokerError::io(&bind, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BrokerError::io(&bind, e))?;
    let advertised_port = if config.advertised.port == 0 {
        addr.port()
    } else {
        config.advertised.port
    };
    let (shutdown, _) = watch::channel(false);
    let admin_bind = config.admin_listener;
    let (quorum, prepared) = match quorum_parts {
        Some((q, p)) => (Some(q), Some(p)),
        None => (None, None),
    };
    let registry = if quorum.is_some() {
        handlers::register_quorum_member()
    } else {
        handlers::register_all()
    };
    let broker = Arc::new(Broker {
        config,
        topics,
        registry,
        metrics: Metrics::default(),
        producer_ids,
        groups,
        txn,
        cluster_id,
        advertised_port,
        dynamic: std::sync::Mutex::new(dynamic),
        quorum,
        fetch_sessions: Default::default(),
        shutdown,
    });
    // In a cluster the group coordinator follows the leaderships of `__consumer_offsets`
    // from here on, before the quorum applies further entries.
    group::watch_leadership(&broker);
    // The transaction coordinator likewise follows `__transaction_state` (issue 21).
    txn::watch_leadership(&broker);
    if let (Some(q), Some(p)) = (&broker.quorum, prepared) {
        quorum::launch(
            q,
            p,
            &broker.config,
            advertised_port,
            Arc::clone(&broker.topics),
            broker.shutdown_signal(),
        )?;
    }
    let mut tasks = Vec::new();
    let mut admin_addr = None;
    if let Some(a) = admin_bind {
        let l = TcpListener::bind(a)
            .await
            .map_err(|e| BrokerError::io(a.to_string(), e))?;
        admin_addr = Some(
            l.local_addr()
                .map_err(|e| BrokerError::io(a.to_string(), e))?,
        );
        tasks.push(tokio::spawn(admin::serve(Arc::clone(&broker), l)));
    }
    tasks.push(tokio::spawn(handlers::retention::run(Arc::clone(&broker))));
    tasks.push(tokio::spawn(checkpoint_periodically(Arc::clone(&broker))));
    let replica_settings = replica::ReplicaSettings::from_config(&broker.config)?;
    tasks.push(tokio::spawn(replica::checkpoint_high_watermarks(
        Arc::clone(&broker),
        replica_settings,
    )));
    if broker.quorum.is_some() {
        // The replica fetchers of the partitions this broker follows (issue 18).
        tasks.push(tokio::spawn(replica::run(
            Arc::clone(&broker),
            replica_settings,
        )));
    }
    // Compaction runs on dedicated OS threads, never on the request workers.
    let cleaner = Some(cleaner::CleanerThreads::start(&broker));
    tasks.push(tokio::spawn(group::run_timers(Arc::clone(&broker))));
    if let Some(q) = &broker.quorum {
        tasks.push(tokio::spawn(isr::run(Arc::clone(&broker), Arc::clone(q))));
    }
    tasks.push(tokio::spawn(txn::run_timers(Arc::clone(&broker))));
    tasks.push(tokio::spawn(server::serve(Arc::clone(&broker), listener)));
    tracing::info!(%addr, admin = ?admin_addr, node_id = broker.config.node_id, cluster_id = %broker.cluster_id, data = %broker.config.data_dir.display(), "potok broker started");
    Ok(Running {
        broker,
        addr,
        admin_addr,
        tasks,
        cleaner,
    })
}

/// Starts the broker and runs it until SIGTERM or SIGINT, then shuts down cleanly.
pub async fn run(config: BrokerConfig) -> Result<()> {
    let running = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutdown signal received");
    if let Some(q) = &running.broker.quorum {
        // Controlled shutdown (KIP-631): the controller moves this broker's leaderships away
        // before it stops, so that clients never see a partition without a leader. Bounded by
        // broker.session.timeout.ms: past it the controller would fence the broker anyway.
        let bound = Duration::from_millis(q.settings.session_timeout_ms);
        if q.controlled_shutdown(bound).await {
            tracing::info!("controlled shutdown: the controller let this broker go");
        } else {
            tracing::warn!(
                ?bound,
                "controlled shutdown not confirmed in time; stopping anyway"
            );
        }
    }
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let hard = lim.rlim_max;
        // Lower the soft limit (any process may) so that raising it is observable; 4,096 is
        // far above what the other tests of this process open at once.
        lim.rlim_cur = hard.min(4096);
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let (before, after) = super::raise_fd_limit().unwrap();
        assert_eq!(before, hard.min(4096));
        assert_eq!(after, hard);
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, hard);
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let s = super::base64_url(&[0xff; 16]);
        assert_eq!(s.len(), 22);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
