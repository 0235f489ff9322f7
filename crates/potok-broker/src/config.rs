//! Broker configuration with Kafka's property names (`server.properties` style).
//!
//! Settings come, in increasing precedence, from the defaults in [`SETTINGS`], a properties
//! file (`--config`) and `name=value` overrides (`--set`). An unknown name or an invalid value
//! is an error at start-up ([`BrokerError::Config`]) naming the setting, so a typo cannot
//! silently fall back to a default.
//!
//! Adding a setting: add a row to [`SETTINGS`] (name, default, one-line doc — the table is also
//! what `docs/configuration.md` describes) and, if code needs it typed, a field on
//! [`BrokerConfig`] filled in [`BrokerConfig::from_properties`]. Code that only needs the raw
//! string can call [`BrokerConfig::get`].
//!
//! Topic-level configs (`retention.ms`, `max.message.bytes`, ...) are in [`crate::topic_config`];
//! the broker-wide `log.*` settings here are their defaults, as in Kafka.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::error::{BrokerError, Result};

/// One known broker setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Kafka's property name (or a `potok.` name for settings Kafka does not have).
    pub name: &'static str,
    /// The default as a string; empty means "unset".
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every setting the broker accepts. Names and defaults are Kafka's unless marked `potok.`.
pub const SETTINGS: &[Setting] = &[
    Setting { name: "listeners", default: "PLAINTEXT://127.0.0.1:9092", doc: "The listeners to bind: one PLAINTEXT listener for clients (port 0 picks a free port) and, on a voter of the controller quorum, one controller listener (CONTROLLER://host:port)." },
    Setting { name: "advertised.listeners", default: "", doc: "The address clients are told to connect to; defaults to `listeners`." },
    Setting { name: "node.id", default: "1", doc: "This broker's id, returned in Metadata as every partition's leader." },
    Setting { name: "broker.id", default: "", doc: "Alias of node.id (older Kafka name); must agree with node.id if both are set." },
    Setting { name: "process.roles", default: "broker,controller", doc: "broker, controller or both. A single node is both; with controller.quorum.voters, broker,controller makes the node a voter (combined mode) and broker a broker-only node (a Raft observer, not in the voters, without a controller listener); controller alone is not supported yet." },
    Setting { name: "controller.quorum.voters", default: "", doc: "The static voters of the controller quorum, id@host:port of each CONTROLLER listener, comma-separated. Unset: a single node with its own metadata log." },
    Setting { name: "controller.listener.names", default: "CONTROLLER", doc: "The name of the listener (in listeners) that carries the quorum's Raft messages." },
    Setting { name: "controller.quorum.election.timeout.ms", default: "1000", doc: "Longest a voter waits for a leader's message before starting an election (randomized up to twice this)." },
    Setting { name: "controller.quorum.fetch.timeout.ms", default: "2000", doc: "Longest a leader keeps leading without hearing from a majority (it steps down after it)." },
    Setting { name: "broker.heartbeat.interval.ms", default: "2000", doc: "How often a broker of a quorum sends BrokerHeartbeat (its broker epoch and metadata offset) to the active controller." },
    Setting { name: "broker.session.timeout.ms", default: "9000", doc: "The active controller fences a broker it has not heard from for this long and elects new leaders for its partitions from the ISR." },
    Setting { name: "potok.cluster.id", default: "", doc: "The cluster id every voter shares, stored in meta.properties at first start (Kafka sets it with kafka-storage format --cluster-id). Needed with controller.quorum.voters." },
    Setting { name: "log.dirs", default: "./potok-data", doc: "The data directory (one directory): topic metadata and one sub-directory per partition." },
    Setting { name: "log.dir", default: "", doc: "Used when log.dirs is not set explicitly (Kafka's fallback)." },
    Setting { name: "num.partitions", default: "1", doc: "Partitions of an auto-created topic or a CreateTopics request with num_partitions = -1." },
    Setting { name: "default.replication.factor", default: "1", doc: "Must be 1 on a single node." },
    Setting { name: "auto.create.topics.enable", default: "true", doc: "Create unknown topics named in Metadata requests that allow it." },
    Setting { name: "delete.topic.enable", default: "true", doc: "Whether DeleteTopics may delete topics." },
    Setting { name: "message.max.bytes", default: "1048588", doc: "Largest record batch accepted (default of the topic config max.message.bytes)." },
    Setting { name: "socket.request.max.bytes", default: "104857600", doc: "Largest request frame; a larger one closes the connection before anything is allocated." },
    Setting { name: "fetch.max.bytes", default: "57671680", doc: "Caps a Fetch request's max_bytes (the most one Fetch response carries, but for one oversized first batch); at least 1024." },
    Setting { name: "max.connections", default: "10000", doc: "Most client connections at once; further ones wait in the accept queue. (Kafka's default is unlimited; Potok bounds it.)" },
    Setting { name: "log.retention.hours", default: "168", doc: "Default retention.ms in hours (lowest precedence)." },
    Setting { name: "log.retention.minutes", default: "", doc: "Default retention.ms in minutes (overrides log.retention.hours)." },
    Setting { name: "log.retention.ms", default: "", doc: "Default retention.ms (overrides minutes and hours); -1 keeps data forever." },
    Setting { name: "log.retention.bytes", default: "-1", doc: "Default retention.bytes per partition; -1 is unlimited." },
    Setting { name: "log.segment.bytes", default: "1073741824", doc: "Default segment.bytes." },
    Setting { name: "log.roll.hours", default: "168", doc: "Default segment.ms in hours." },
    Setting { name: "log.roll.ms", default: "", doc: "Default segment.ms (overrides log.roll.hours)." },
    Setting { name: "log.index.size.max.bytes", default: "10485760", doc: "Default segment.index.bytes." },
    Setting { name: "log.index.interval.bytes", default: "4096", doc: "Default index.interval.bytes." },
    Setting { name: "log.flush.interval.messages", default: "9223372036854775807", doc: "Default flush.messages (fsync after this many records; the default leaves it to the OS)." },
    Setting { name: "log.flush.interval.ms", default: "", doc: "Default flush.ms (unset leaves flushing to the OS)." },
    Setting { name: "log.message.timestamp.type", default: "CreateTime", doc: "Default message.timestamp.type (CreateTime or LogAppendTime)." },
    Setting { name: "log.message.timestamp.before.max.ms", default: "9223372036854775807", doc: "Default message.timestamp.before.max.ms (how far in the past a CreateTime record may be)." },
    Setting { name: "log.message.timestamp.after.max.ms", default: "3600000", doc: "Default message.timestamp.after.max.ms (how far in the future a CreateTime record may be; Kafka 4.0's default of one hour, KIP-1030)." },
    Setting { name: "replica.lag.time.max.ms", default: "30000", doc: "A follower that has not caught up with the leader's log end for this long leaves the ISR (checked every half of it)." },
    Setting { name: "log.retention.check.interval.ms", default: "300000", doc: "How often retention runs over every partition." },
    Setting { name: "log.cleanup.policy", default: "delete", doc: "Default cleanup.policy: delete (retention), compact (the log cleaner keeps the latest record per key) or both." },
    Setting { name: "compression.type", default: "producer", doc: "Default compression.type: producer keeps batches as produced; a codec makes the broker recompress batches of another codec." },
    Setting { name: "compression.gzip.level", default: "-1", doc: "Default compression.gzip.level (-1: the codec's default)." },
    Setting { name: "compression.lz4.level", default: "9", doc: "Default compression.lz4.level (accepted, not enforced)." },
    Setting { name: "compression.zstd.level", default: "3", doc: "Default compression.zstd.level." },
    Setting { name: "log.roll.jitter.hours", default: "0", doc: "Default segment.jitter.ms in hours (accepted, not enforced)." },
    Setting { name: "log.roll.jitter.ms", default: "", doc: "Default segment.jitter.ms (accepted, not enforced)." },
    Setting { name: "log.cleaner.delete.retention.ms", default: "86400000", doc: "Default delete.retention.ms: how long compaction keeps a tombstone after the cleaning that first kept it (KIP-534)." },
    Setting { name: "log.cleaner.min.compaction.lag.ms", default: "0", doc: "Default min.compaction.lag.ms." },
    Setting { name: "log.cleaner.max.compaction.lag.ms", default: "9223372036854775807", doc: "Default max.compaction.lag.ms." },
    Setting { name: "log.cleaner.min.cleanable.ratio", default: "0.5", doc: "Default min.cleanable.dirty.ratio." },
    Setting { name: "log.cleaner.enable", default: "true", doc: "Run the log cleaner (compaction of topics whose cleanup.policy contains compact)." },
    Setting { name: "log.cleaner.threads", default: "1", doc: "Dedicated log cleaner threads (OS threads, not request workers)." },
    Setting { name: "log.cleaner.backoff.ms", default: "15000", doc: "How long a cleaner thread sleeps when no partition needs cleaning." },
    Setting { name: "log.cleaner.dedupe.buffer.size", default: "134217728", doc: "Memory for the cleaners' key -> offset maps, divided among the threads; a cleaning covers as much of the dirty log as fits." },
    Setting { name: "log.cleaner.io.buffer.size", default: "524288", doc: "Read and write buffer memory of the cleaners, divided among the threads." },
    Setting { name: "log.cleaner.io.buffer.load.factor", default: "0.9", doc: "Fraction of a cleaner's dedupe buffer its map may fill." },
    Setting { name: "log.cleaner.io.max.bytes.per.second", default: "1.7976931348623157E308", doc: "Rate limit of the cleaners' reads and writes together, in bytes per second." },
    Setting { name: "log.segment.delete.delay.ms", default: "60000", doc: "Default file.delete.delay.ms (accepted, not enforced: deleted segments are removed at once)." },
    Setting { name: "log.preallocate", default: "false", doc: "Default preallocate (accepted, not enforced)." },
    Setting { name: "log.local.retention.ms", default: "-2", doc: "Default local.retention.ms (tiered storage; accepted, not enforced)." },
    Setting { name: "log.local.retention.bytes", default: "-2", doc: "Default local.retention.bytes (tiered storage; accepted, not enforced)." },
    Setting { name: "unclean.leader.election.enable", default: "false", doc: "Default unclean.leader.election.enable: in a cluster, whether the active controller may elect a replica outside the ISR when no ISR member is left (topic overrides and the dynamic default win); one node has nothing to elect." },
    Setting { name: "auto.leader.rebalance.enable", default: "true", doc: "In a cluster, the active controller periodically gives partitions back to their preferred (first) replica when it is a live ISR member." },
    Setting { name: "leader.imbalance.check.interval.seconds", default: "300", doc: "How often the active controller looks for partitions not led by their preferred replica." },
    Setting { name: "leader.imbalance.per.broker.percentage", default: "10", doc: "Accepted for compatibility and not used, as in Kafka's KRaft controller (KAFKA-13682): every imbalanced partition is rebalanced." },
    Setting { name: "min.insync.replicas", default: "1", doc: "Default min.insync.replicas; acks=-1 produce fails with NOT_ENOUGH_REPLICAS when above 1 on one node." },
    Setting { name: "group.initial.rebalance.delay.ms", default: "3000", doc: "How long the first rebalance of an empty group waits for more members (extended while members keep joining, up to the rebalance timeout)." },
    Setting { name: "group.min.session.timeout.ms", default: "6000", doc: "Smallest session timeout a consumer group member may ask for." },
    Setting { name: "group.max.session.timeout.ms", default: "1800000", doc: "Largest session timeout a consumer group member may ask for." },
    Setting { name: "group.max.size", default: "2147483647", doc: "Most members in one consumer group; more get GROUP_MAX_SIZE_REACHED." },
    Setting { name: "offsets.topic.num.partitions", default: "50", doc: "Partitions of __consumer_offsets when it is created (a group lives in partition abs(hash(group)) % count). An existing topic keeps its own count, as in Kafka." },
    Setting { name: "offsets.topic.replication.factor", default: "3", doc: "Replicas of __consumer_offsets when a cluster creates it through the controller; as in Kafka, the creation fails (FindCoordinator answers COORDINATOR_NOT_AVAILABLE) until that many brokers are registered. A single node creates it with one replica." },
    Setting { name: "offsets.commit.timeout.ms", default: "5000", doc: "In a cluster, how long an offset commit or group metadata write waits for the ISR of its __consumer_offsets partition (as an acks=all produce) before it fails with COORDINATOR_NOT_AVAILABLE. Kafka 4 has no offsets.commit.required.acks: the coordinator always writes with acks=all." },
    Setting { name: "transaction.state.log.num.partitions", default: "50", doc: "Partitions of __transaction_state when it is created (a transactional id lives in partition abs(hash(id)) % count). An existing topic keeps its own count, as in Kafka." },
    Setting { name: "transaction.state.log.replication.factor", default: "3", doc: "Replicas of __transaction_state: in a cluster the controller creates it with this many (refused while fewer brokers are registered); on a single node the topic gets one (logged), where Kafka would refuse to create it." },
    Setting { name: "transaction.state.log.min.isr", default: "2", doc: "min.insync.replicas of __transaction_state, capped at its replica count." },
    Setting { name: "transaction.state.log.segment.bytes", default: "104857600", doc: "segment.bytes of __transaction_state." },
    Setting { name: "transaction.max.timeout.ms", default: "900000", doc: "Largest transaction.timeout.ms a producer may ask for (larger: INVALID_TRANSACTION_TIMEOUT)." },
    Setting { name: "transaction.version", default: "2", doc: "The finalized level of the transaction.version feature (KIP-1022) that ApiVersions tells clients: 2, the default of a new Kafka 4.x cluster, is KIP-890 part 2 (every commit or abort bumps the producer epoch; Produce v12 and TxnOffsetCommit v5 add their partitions to the transaction); 1 or 0 make clients run the older protocol (AddPartitionsToTxn, AddOffsetsToTxn, one epoch per producer session). Requests are served by their version either way, as Kafka does. Kafka sets it with kafka-storage format --feature or kafka-features; set it alike on every node of a cluster." },
    Setting { name: "transactional.id.expiration.ms", default: "604800000", doc: "A transactional id with no transaction for this long is removed from __transaction_state." },
    Setting { name: "offsets.retention.minutes", default: "10080", doc: "How long committed offsets of a group are kept after the group became empty (or, for stable consumer groups, after the last commit of a topic no member subscribes to)." },
    Setting { name: "offsets.retention.check.interval.ms", default: "600000", doc: "How often expired offsets are removed." },
    Setting { name: "offset.metadata.max.bytes", default: "4096", doc: "Largest metadata string of a committed offset." },
    Setting { name: "num.recovery.threads.per.data.dir", default: "2", doc: "Threads that open (and after a crash recover) partition logs at start and close them at shutdown, as Kafka's setting of this name (default 2 since Kafka 3.7)." },
    Setting { name: "potok.max.partitions", default: "100000", doc: "Most partitions this broker holds (each is a directory with three open files); CreateTopics, CreatePartitions and automatic creation beyond it get POLICY_VIOLATION. Kafka has no such setting." },
    Setting { name: "potok.log.max.open.files", default: "8000", doc: "Most segment files the partition logs keep open; the least recently used is closed and reopened on its next use. Kafka has no such setting (it keeps every segment open). The default leaves room for max.connections sockets under a 20,000 descriptor limit." },
    Setting { name: "num.replica.fetchers", default: "1", doc: "Replica fetcher tasks per source broker: the partitions a broker follows from one leader are spread over this many fetch connections (by partition hash)." },
    Setting { name: "replica.fetch.wait.max.ms", default: "500", doc: "How long a follower's Fetch waits at the leader for replica.fetch.min.bytes (a long poll woken by the leader's appends)." },
    Setting { name: "replica.fetch.min.bytes", default: "1", doc: "Bytes a follower's Fetch waits for at the leader before the leader answers." },
    Setting { name: "replica.fetch.max.bytes", default: "1048576", doc: "Bytes a follower asks per partition (partition_max_bytes); one larger batch still comes whole." },
    Setting { name: "replica.fetch.response.max.bytes", default: "10485760", doc: "Bytes a follower asks for one Fetch response at most (max_bytes)." },
    Setting { name: "replica.fetch.backoff.ms", default: "1000", doc: "How long a follower waits after a failed fetch before fetching that partition again." },
    Setting { name: "replica.socket.timeout.ms", default: "30000", doc: "How long a follower waits for a leader's answer beyond replica.fetch.wait.max.ms before it drops the connection." },
    Setting { name: "replica.high.watermark.checkpoint.interval.ms", default: "5000", doc: "How often every partition's high watermark is written to replication-offset-checkpoint in the data directory (also at clean shutdown)." },
    Setting { name: "potok.admin.listener", default: "", doc: "host:port of the HTTP admin endpoint serving Prometheus /metrics; unset disables it." },
];

/// A parsed `PLAINTEXT://host:port` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The host as written (may be empty for "all interfaces").
    pub host: String,
    /// The port (0 = pick a free one when binding).
    pub port: u16,
}

impl Listener {
    fn parse(name: &str, value: &str) -> Result<Listener> {
        let bad = |why: &str| BrokerError::Config(format!("{name}={value}: {why}"));
        let mut items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
        let first = items.next().ok_or_else(|| bad("no listener given"))?;
        if items.next().is_some() {
            return Err(bad("only one listener is supported"));
        }
        let rest = first
            .strip_prefix("PLAINTEXT://")
            .ok_or_else(|| bad("only PLAINTEXT://host:port listeners are supported"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("expected PLAINTEXT://host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        Ok(Listener {
            host: host.to_string(),
            port,
        })
    }

    /// The address to bind: an empty host binds every interface, as in Kafka.
    pub fn bind_addr(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The broker's typed configuration. See [`SETTINGS`] for names, defaults and meaning.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `listeners`.
    pub listener: Listener,
    /// `advertised.listeners` (defaults to `listeners`).
    pub advertised: Listener,
    /// `node.id`.
    pub node_id: i32,
    /// `log.dirs` (exactly one directory).
    pub data_dir: PathBuf,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `message.max.bytes`.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: usize,
    /// `max.connections`.
    pub max_connections: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `potok.admin.listener`.
    pub admin_listener: Option<SocketAddr>,
    /// `potok.max.partitions`.
    pub max_partitions: i64,
    /// `num.recovery.threads.per.data.dir`.
    pub recovery_threads: usize,
    /// `potok.log.max.open.files`.
    pub max_open_files: usize,
    /// The `log.cleaner.*` settings.
    pub cleaner: crate::cleaner::CleanerSettings,
    /// The controller quorum this node is a voter of (`controller.quorum.voters`), if any.
    pub quorum: Option<crate::quorum::config::QuorumSettings>,
    /// A test-only bug planted from the environment (`crate::planted`), not a setting.
    pub planted_bug: crate::planted::PlantedBug,
    /// Every setting's effective string value (defaults included, unset ones left out).
    values: BTreeMap<String, String>,
    /// The settings given in the file or as overrides (DescribeConfigs reports these as
    /// `STATIC_BROKER_CONFIG`, the rest as `DEFAULT_CONFIG`).
    explicit: std::collections::BTreeSet<String>,
}

fn lookup(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Parses `server.properties` text: `name=value` or `name: value` lines, `#`/`!` comments,
/// blank lines ignored. Line continuations and escapes of Java properties are not supported
/// (a trailing backslash is rejected rather than misread).
pub fn parse_properties(text: &str, origin: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        if line.ends_with('\\') {
            return Err(BrokerError::Config(format!(
                "{origin}:{}: line continuations are not supported",
                i + 1
            )));
        }
        let split = line.find(['=', ':']).ok_or_else(|| {
            BrokerError::Config(format!("{origin}:{}: expected name=value", i + 1))
        })?;
        let (k, v) = line.split_at(split);
        out.push((k.trim().to_string(), v[1..].trim().to_string()));
    }
    Ok(out)
}

/// Parses one `--set name=value` argument.
pub fn parse_override(arg: &str) -> Result<(String, String)> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| BrokerError::Config(format!("--set {arg}: expected name=value")))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| BrokerError::Config(format!("{name}={v}: not a valid number")))
}

/// The `log.cleaner.*` settings with Kafka's ranges (`KafkaConfig` / `CleanerConfig`).
fn cleaner_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<crate::cleaner::CleanerSettings> {
    let value = |name: &str| get(name).unwrap_or_default();
    let threads: usize = parse_num("log.cleaner.threads", value("log.cleaner.threads"))?;
    let backoff_ms: u64 = parse_num("log.cleaner.backoff.ms", value("log.cleaner.backoff.ms"))?;
    let dedupe: usize = parse_num(
        "log.cleaner.dedupe.buffer.size",
        value("log.cleaner.dedupe.buffer.size"),
    )?;
    let io_buffer: usize = parse_num(
        "log.cleaner.io.buffer.size",
        value("log.cleaner.io.buffer.size"),
    )?;
    let load_factor: f64 = parse_num(
        "log.cleaner.io.buffer.load.factor",
        value("log.cleaner.io.buffer.load.factor"),
    )?;
    let rate: f64 = parse_num(
        "log.cleaner.io.max.bytes.per.second",
        value("log.cleaner.io.max.bytes.per.second"),
    )?;
    let bad = |why: &str| Err(BrokerError::Config(why.to_string()));
    if threads == 0 {
        return bad("log.cleaner.threads must be >= 1");
    }
    if backoff_ms == 0 {
        return bad("log.cleaner.backoff.ms must be >= 1");
    }
    if !(0.0..=1.0).contains(&load_factor) || load_factor == 0.0 {
        return bad("log.cleaner.io.buffer.load.factor must be in (0, 1]");
    }
    if rate.is_nan() || rate <= 0.0 {
        return bad("log.cleaner.io.max.bytes.per.second must be > 0");
    }
    // Kafka requires at least 1 MiB of dedupe buffer per thread and 0 io buffer is useless.
    if dedupe / threads < 1 << 20 {
        return bad("log.cleaner.dedupe.buffer.size must be at least 1 MiB per cleaner thread");
    }
    if io_buffer == 0 {
        return bad("log.cleaner.io.buffer.size must be >= 1");
    }
    Ok(crate::cleaner::CleanerSettings {
        enable: parse_bool("log.cleaner.enable", value("log.cleaner.enable"))?,
        threads,
        backoff_ms,
        dedupe_buffer_bytes: dedupe,
        io_buffer_bytes: io_buffer,
        load_factor,
        io_max_bytes_per_second: rate,
    })
}

pub(crate) fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(BrokerError::Config(format!(
            "{name}={v}: expected true or false"
        ))),
    }
}

impl BrokerConfig {
    /// The configuration with every default.
    pub fn defaults() -> BrokerConfig {
        // The defaults are valid by construction; a failure here is a bug in SETTINGS.
        BrokerConfig::from_properties(Vec::new()).expect("default configuration is valid")
    }

    /// Loads `file` (if any) and then applies `overrides` (`name=value` strings).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig> {
        let mut props = Vec::new();
        if let Some(f) = file {
            let text = std::fs::read_to_string(f).map_err(|e| BrokerError::io(f, e))?;
            props.extend(parse_properties(&text, &f.display().to_string())?);
        }
        for o in overrides {
            props.push(parse_override(o)?);
        }
        BrokerConfig::from_properties(props)
    }

    /// Builds the configuration from `(name, value)` pairs applied in order over the defaults.
    pub fn from_properties(props: Vec<(String, String)>) -> Result<BrokerConfig> {
        let mut values: BTreeMap<String, String> = SETTINGS
            .iter()
            .filter(|s| !s.default.is_empty())
            .map(|s| (s.name.to_string(), s.default.to_string()))
            .collect();
        let mut explicit = std::collections::BTreeSet::new();
        for (k, v) in props {
            if lookup(&k).is_none() {
                return Err(BrokerError::Config(format!(
                    "unknown setting `{k}` (see docs/configuration.md for the supported settings)"
                )));
            }
            explicit.insert(k.clone());
            values.insert(k, v);
        }
        let get = |k: &str| values.get(k).map(String::as_str);

        let (client_listeners, controller_listener) = crate::quorum::config::split_listeners(
            get("listeners").unwrap_or_default(),
            get("controller.listener.names"),
        )?;
        let listener = Listener::parse("listeners", &client_listeners)?;
        let advertised = match get("advertised.listeners") {
            Some(v) => Listener::parse("advertised.listeners", v)?,
            None => listener.clone(),
        };
        if advertised.host.is_empty() || advertised.host == "0.0.0.0" || advertised.host == "::" {
            return Err(BrokerError::Config(format!(
                "advertised.listeners: `{}` is not an address clients can connect to; set \
                 advertised.listeners explicitly (Kafka refuses the meta-address too)",
                advertised.host
            )));
        }
        let node_id: i32 = parse_num("node.id", get("node.id").unwrap_or("1"))?;
        if node_id < 0 {
            return Err(BrokerError::Config(format!(
                "node.id={node_id}: must be >= 0"
            )));
        }
        let quorum =
            crate::quorum::config::QuorumSettings::parse(&get, node_id, controller_listener)?;
        if let Some(b) = get("broker.id") {
            let b: i32 = parse_num("broker.id", b)?;
            if b != node_id && explicit.contains("node.id") {
                return Err(BrokerError::Config(format!(
                    "broker.id={b} disagrees with node.id={node_id}"
                )));
            }
        }
        if let Some(r) = get("process.roles") {
            let ok = r
                .split(',')
                .map(str::trim)
                .all(|x| x == "broker" || x == "controller");
            if !ok {
                return Err(BrokerError::Config(format!(
                    "process.roles={r}: expected broker and/or controller"
                )));
            }
        }
        let dirs = if explicit.contains("log.dirs") || !explicit.contains("log.dir") {
            get("log.dirs").unwrap_or("./potok-data")
        } else {
            get("log.dir").unwrap_or("./potok-data")
        };
        let dirs: Vec<&str> = dirs
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if dirs.len() != 1 {
            return Err(BrokerError::Config(format!(
                "log.dirs: exactly one directory is supported, got {}",
                dirs.len()
            )));
        }
        let num_partitions: i32 =
            parse_num("num.partitions", get("num.partitions").unwrap_or("1"))?;
        if num_partitions < 1 {
            return Err(BrokerError::Config("num.partitions must be >= 1".into()));
        }
        let rf: i16 = parse_num(
            "default.replication.factor",
            get("default.replication.factor").unwrap_or("1"),
        )?;
        if rf != 1 {
            return Err(BrokerError::Config(format!(
                "default.replication.factor={rf}: a single node can only hold 1 replica"
            )));
        }
        let auto_create_topics = parse_bool(
            "auto.create.topics.enable",
            get("auto.create.topics.enable").unwrap_or("true"),
        )?;
        let delete_topic_enable = parse_bool(
            "delete.topic.enable",
            get("delete.topic.enable").unwrap_or("true"),
        )?;
        let message_max_bytes: i32 = parse_num(
            "message.max.bytes",
            get("message.max.bytes").unwrap_or_default(),
        )?;
        if message_max_bytes < 0 {
            return Err(BrokerError::Config("message.max.bytes must be >= 0".into()));
        }
        let socket_request_max_bytes: i32 = parse_num(
            "socket.request.max.bytes",
            get("socket.request.max.bytes").unwrap_or_default(),
        )?;
        if socket_request_max_bytes < 1 {
            return Err(BrokerError::Config(
                "socket.request.max.bytes must be >= 1".into(),
            ));
        }
        // Kafka's `fetch.max.bytes` is an int of at least 1024.
        let fetch_max_bytes: i32 = parse_num(
            "fetch.max.bytes",
            get("fetch.max.bytes").unwrap_or_default(),
        )?;
        if fetch_max_bytes < 1024 {
            return Err(BrokerError::Config(
                "fetch.max.bytes must be >= 1024".into(),
            ));
        }
        let max_connections: usize = parse_num(
            "max.connections",
            get("max.connections").unwrap_or_default(),
        )?;
        if max_connections == 0 {
            return Err(BrokerError::Config("max.connections must be >= 1".into()));
        }
        let retention_check_interval_ms: u64 = parse_num(
            "log.retention.check.interval.ms",
            get("log.retention.check.interval.ms").unwrap_or_default(),
        )?;
        if retention_check_interval_ms == 0 {
            return Err(BrokerError::Config(
                "log.retention.check.interval.ms must be >= 1".into(),
            ));
        }
        let replica_lag_time_max_ms: u64 = parse_num(
            "replica.lag.time.max.ms",
            get("replica.lag.time.max.ms").unwrap_or_default(),
        )?;
        if replica_lag_time_max_ms < 2 {
            return Err(BrokerError::Config(
                "replica.lag.time.max.ms must be >= 2".into(),
            ));
        }
        let admin_listener = match get("potok.admin.listener") {
            Some(a) if !a.is_empty() => Some(a.parse::<SocketAddr>().map_err(|_| {
                BrokerError::Config(format!("potok.admin.listener={a}: expected ip:port"))
            })?),
            _ => None,
        };
        let max_partitions: i64 = parse_num(
            "potok.max.partitions",
            get("potok.max.partitions").unwrap_or_default(),
        )?;
        if max_partitions < 1 {
            return Err(BrokerError::Config(
                "potok.max.partitions must be >= 1".into(),
            ));
        }
        let recovery_threads: usize = parse_num(
            "num.recovery.threads.per.data.dir",
            get("num.recovery.threads.per.data.dir").unwrap_or_default(),
        )?;
        if recovery_threads == 0 {
            return Err(BrokerError::Config(
                "num.recovery.threads.per.data.dir must be >= 1".into(),
            ));
        }
        let max_open_files: usize = parse_num(
            "potok.log.max.open.files",
            get("potok.log.max.open.files").unwrap_or_default(),
        )?;
        if max_open_files == 0 {
            return Err(BrokerError::Config(
                "potok.log.max.open.files must be >= 1".into(),
            ));
        }
        let cleaner = cleaner_settings(&get)?;
        let cfg = BrokerConfig {
            listener,
            advertised,
            node_id,
            data_dir: PathBuf::from(dirs[0]),
            num_partitions,
            auto_create_topics,
            delete_topic_enable,
            message_max_bytes,
            socket_request_max_bytes: socket_request_max_bytes as usize,
            fetch_max_bytes: fetch_max_bytes as usize,
            max_connections,
            retention_check_interval_ms,
            replica_lag_time_max_ms,
            admin_listener,
            max_partitions,
            recovery_threads,
            max_open_files,
            cleaner,
            quorum,
            planted_bug: crate::planted::PlantedBug::from_env()?,
            values,
            explicit,
        };
        // The broker-wide topic defaults must themselves be valid topic configs.
        crate::topic_config::TopicDefaults::from_broker(&cfg)?;
        Ok(cfg)
    }

    /// Whether `name` was set in the configuration file or with `--set`.
    pub fn is_explicit(&self, name: &str) -> bool {
        self.explicit.contains(name)
    }

    /// The effective string value of a setting (`None` when unset and without default).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_issue() {
        let c = BrokerConfig::defaults();
        assert_eq!(
            c.listener,
            Listener {
                host: "127.0.0.1".into(),
                port: 9092
            }
        );
        assert_eq!(c.advertised, c.listener);
        assert_eq!(c.node_id, 1);
        assert_eq!(c.data_dir, PathBuf::from("./potok-data"));
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.message_max_bytes, 1048588);
        assert_eq!(c.socket_request_max_bytes, 104857600);
        assert_eq!(c.fetch_max_bytes, 57671680);
        assert_eq!(c.retention_check_interval_ms, 300000);
    }

    #[test]
    fn unknown_and_invalid_settings_are_rejected() {
        let e = BrokerConfig::from_properties(vec![("log.dirz".into(), "x".into())]).unwrap_err();
        assert!(e.to_string().contains("unknown setting `log.dirz`"), "{e}");
        let e = BrokerConfig::from_properties(vec![("num.partitions".into(), "zero".into())])
            .unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = BrokerConfig::from_properties(vec![("listeners".into(), "SSL://h:1".into())])
            .unwrap_err();
        assert!(e.to_string().contains("PLAINTEXT"), "{e}");
        let e = BrokerConfig::from_properties(vec![(
            "log.message.timestamp.type".into(),
            "Whenever".into(),
        )])
        .unwrap_err();
        assert!(e.to_string().contains("message.timestamp.type"), "{e}");
    }

    #[test]
    fn properties_file_syntax() {
        let p = parse_properties("# c\n\na=1\nb : two\n! x\nc=x=y\n", "f").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two".into()),
                ("c".into(), "x=y".into())
            ]
        );
        assert!(parse_properties("novalue\n", "f").is_err());
    }
}
