//! Dynamic broker configs: the broker properties a client may change at run time with
//! AlterConfigs / IncrementalAlterConfigs on a BROKER resource, per broker (resource name = this
//! broker's id) or as cluster-wide defaults (empty resource name), as Kafka's
//! `DynamicBrokerConfig` defines them.
//!
//! Which names are dynamic follows Kafka 4.x's `DynamicBrokerConfig.AllDynamicConfigs`,
//! restricted to what Potok can honour or harmlessly keep:
//! - the broker-wide defaults of topic configs (`log.retention.ms`, `message.max.bytes`, ...:
//!   Kafka's `DynamicLogConfig`) are **enforced**: a change is applied to every partition whose
//!   topic does not override it, without a restart;
//! - the SASL/Kerberos login tuning, connection limits, thread-pool sizes, log-cleaner tuning,
//!   and producer-state settings are **accepted, stored and described but not enforced** (Potok
//!   has no SASL yet, its runtime is not sized by those pools, and the cleaner reads its own
//!   settings at start); `docs/compatibility.md` lists them; `leader.replication.throttled.rate`
//!   and `follower.replication.throttled.rate` are stored the same way and read where they
//!   apply (`crate::replica::throttle`);
//! - listener, SSL and SASL-mechanism settings are refused: Potok has no TLS or SASL listeners
//!   whose change it could apply, and accepting them would claim a change that did not happen.
//!
//! Kafka keeps dynamic configs as `ConfigRecord`s of the metadata log; Potok's single node keeps
//! them in one small file, `{log.dirs}/__potok_metadata/dynamic-broker-configs`, replaced
//! atomically (temp file, fsync, rename, directory fsync) before a change is acknowledged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::topic_config::{
    BrokerConfigLookup, ConfigError, ConfigSource, ConfigType, TOPIC_CONFIGS,
};

/// Where a dynamic config applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only per broker (Kafka's `PerBrokerConfigs`): refused as a cluster-wide default.
    PerBroker,
    /// Per broker or as a cluster-wide default.
    ClusterWide,
}

/// One dynamic config Potok accepts but does not enforce (see the module docs).
struct Inert {
    name: &'static str,
    config_type: ConfigType,
    scope: Scope,
}

const fn inert(name: &'static str, config_type: ConfigType, scope: Scope) -> Inert {
    Inert {
        name,
        config_type,
        scope,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, Short, String as Str};
use Scope::{ClusterWide, PerBroker};

/// The dynamic configs Potok stores without enforcing them, with Kafka's types and scopes.
const INERT: &[Inert] = &[
    // DynamicListenerConfig's SASL login tuning (per broker in Kafka).
    inert("sasl.kerberos.kinit.cmd", Str, PerBroker),
    inert("sasl.kerberos.min.time.before.relogin", Long, PerBroker),
    inert("sasl.kerberos.principal.to.local.rules", List, PerBroker),
    inert("sasl.kerberos.service.name", Str, PerBroker),
    inert("sasl.kerberos.ticket.renew.jitter", Double, PerBroker),
    inert(
        "sasl.kerberos.ticket.renew.window.factor",
        Double,
        PerBroker,
    ),
    inert("sasl.login.refresh.buffer.seconds", Short, PerBroker),
    inert("sasl.login.refresh.min.period.seconds", Short, PerBroker),
    inert("sasl.login.refresh.window.factor", Double, PerBroker),
    inert("sasl.login.refresh.window.jitter", Double, PerBroker),
    // Connection limits (DynamicListenerConfig's cluster-level ones and SocketServer's).
    inert("max.connection.creation.rate", Int, ClusterWide),
    inert("max.connections", Int, ClusterWide),
    inert("max.connections.per.ip", Int, ClusterWide),
    inert("max.connections.per.ip.overrides", Str, ClusterWide),
    // DynamicThreadPool and the network threads.
    inert("background.threads", Int, ClusterWide),
    inert("num.io.threads", Int, ClusterWide),
    inert("num.network.threads", Int, ClusterWide),
    inert("num.recovery.threads.per.data.dir", Int, ClusterWide),
    inert("num.replica.fetchers", Int, ClusterWide),
    // LogCleaner.RECONFIGURABLE_CONFIGS.
    inert("log.cleaner.backoff.ms", Long, ClusterWide),
    inert("log.cleaner.dedupe.buffer.size", Long, ClusterWide),
    inert("log.cleaner.io.buffer.load.factor", Double, ClusterWide),
    inert("log.cleaner.io.buffer.size", Int, ClusterWide),
    inert("log.cleaner.io.max.bytes.per.second", Double, ClusterWide),
    inert("log.cleaner.threads", Int, ClusterWide),
    // The replication throttles of reassignments (Kafka's `QuotaConfig`, set and cleared by
    // `kafka-reassign-partitions`). Both rates are read where they apply
    // (`crate::replica::throttle`: the leader's Fetch answers, the follower's fetchers).
    inert("leader.replication.throttled.rate", Long, ClusterWide),
    inert("follower.replication.throttled.rate", Long, ClusterWide),
    inert(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        Long,
        ClusterWide,
    ),
    // DynamicProducerStateManagerConfig.
    inert("producer.id.expiration.ms", Int, ClusterWide),
    inert(
        "transaction.partition.verification.enable",
        Boolean,
        ClusterWide,
    ),
];

/// What Potok knows about a dynamic config name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub scope: Scope,
    /// Applied at once (the topic-config defaults); otherwise stored only.
    pub enforced: bool,
}

/// The definition of dynamic config `name`, if Potok lets it change at run time.
pub fn lookup(name: &str) -> Option<DynamicDef> {
    if let Some(def) = INERT.iter().find(|d| d.name == name) {
        return Some(DynamicDef {
            name: def.name,
            config_type: def.config_type,
            scope: def.scope,
            enforced: false,
        });
    }
    // Every broker synonym of a topic config is dynamic (Kafka's DynamicLogConfig: the values
    // of ServerTopicConfigSynonyms). The hour/minute forms are INTs; the others share the
    // topic config's type.
    TOPIC_CONFIGS.iter().find_map(|def| {
        let (synonym, _) = def.synonyms.iter().find(|(s, _)| *s == name)?;
        let config_type = if synonym.ends_with(".hours") || synonym.ends_with(".minutes") {
            Int
        } else {
            def.config_type
        };
        Some(DynamicDef {
            name: synonym,
            config_type,
            scope: ClusterWide,
            enforced: true,
        })
    })
}

/// Every dynamic config name Potok accepts, for documentation and tests.
pub fn names() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = INERT.iter().map(|d| d.name).collect();
    for def in TOPIC_CONFIGS {
        out.extend(def.synonyms.iter().map(|(s, _)| *s));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Checks that `name` may be set to `value` dynamically at the given level (`cluster_default`
/// for the empty resource name) and returns the value to store. The topic-default synonyms are
/// checked further by recomputing the topic defaults (see `Broker::set_dynamic_broker_configs`).
pub fn validate(name: &str, value: &str, cluster_default: bool) -> Result<String, ConfigError> {
    let def = lookup(name).ok_or_else(|| {
        // Kafka's DynamicBrokerConfig.validateConfigs message for a static config.
        ConfigError::request(format!(
            "Cannot update these configs dynamically: Set({name})"
        ))
    })?;
    if cluster_default && def.scope == PerBroker {
        return Err(ConfigError::request(format!(
            "Cannot update these configs at default cluster level, broker id must be specified: Set({name})"
        )));
    }
    let value = value.trim();
    let ok = match def.config_type {
        Int => value.parse::<i32>().is_ok(),
        Long => value.parse::<i64>().is_ok(),
        Short => value.parse::<i16>().is_ok(),
        Double => value.parse::<f64>().is_ok_and(f64::is_finite),
        Boolean => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        _ => true,
    };
    if !ok {
        return Err(ConfigError::invalid(format!(
            "Invalid value {value} for configuration {name}: Expected value to be a {}",
            type_word(def.config_type)
        )));
    }
    Ok(if def.config_type == Boolean {
        value.to_ascii_lowercase()
    } else {
        value.to_string()
    })
}

fn type_word(t: ConfigType) -> &'static str {
    match t {
        Int => "32-bit integer",
        Long => "64-bit integer",
        Short => "16-bit integer",
        Double => "double",
        Boolean => "boolean",
        _ => "string",
    }
}

/// The stored dynamic configs: this broker's and the cluster-wide defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicConfigs {
    pub per_broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicConfigs {
    /// The map of one level.
    pub fn level(&self, cluster_default: bool) -> &BTreeMap<String, String> {
        if cluster_default {
            &self.cluster_default
        } else {
            &self.per_broker
        }
    }
}

/// The broker's settings seen through Kafka's precedence: dynamic per-broker values over
/// dynamic cluster defaults over the static config over built-in defaults.
pub struct Layered<'a> {
    pub config: &'a BrokerConfig,
    pub dynamic: &'a DynamicConfigs,
}

impl BrokerConfigLookup for Layered<'_> {
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String> {
        match level {
            ConfigSource::DynamicBrokerConfig => self.dynamic.per_broker.get(name).cloned(),
            ConfigSource::DynamicDefaultBrokerConfig => {
                self.dynamic.cluster_default.get(name).cloned()
            }
            _ => self.config.broker_value_at(name, level),
        }
    }
}

const FILE_NAME: &str = "dynamic-broker-configs";
const HEADER: &str = "# potok dynamic broker configs v1";

/// The file under `metadata_dir` that holds the dynamic configs.
pub fn file_path(metadata_dir: &Path) -> PathBuf {
    metadata_dir.join(FILE_NAME)
}

/// Reads the stored configs; a missing file is an empty set. A line Potok cannot read fails
/// the start (the file is only ever replaced whole, so a torn write cannot leave one), and a
/// name that is no longer dynamic is dropped with a warning, as Kafka ignores a stored dynamic
/// config it no longer knows.
pub fn load(path: &Path) -> Result<DynamicConfigs> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DynamicConfigs::default()),
        Err(e) => return Err(BrokerError::io(path, e)),
    };
    let corrupt = |reason: String| BrokerError::CorruptMetadata {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(corrupt(format!("first line is not {HEADER:?}")));
    }
    let mut out = DynamicConfigs::default();
    for (n, line) in lines.enumerate() {
        let mut fields = line.splitn(3, '\t');
        let (Some(level), Some(name), Some(value)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(corrupt(format!("line {}: expected three fields", n + 2)));
        };
        let value =
            unescape(value).ok_or_else(|| corrupt(format!("line {}: bad escape", n + 2)))?;
        let map = match level {
            "broker" => &mut out.per_broker,
            "default" => &mut out.cluster_default,
            other => return Err(corrupt(format!("line {}: unknown level {other:?}", n + 2))),
        };
        if lookup(name).is_none() {
            tracing::warn!(
                name,
                "dropping a stored dynamic broker config that is not dynamic"
            );
            continue;
        }
        map.insert(name.to_string(), value);
    }
    Ok(out)
}

/// Replaces the stored configs with `configs`, durably.
pub fn store(path: &Path, configs: &DynamicConfigs) -> Result<()> {
    let mut text = String::from(HEADER);
    text.push('\n');
    for (level, map) in [
        ("broker", &configs.per_broker),
        ("default", &configs.cluster_default),
    ] {
        for (name, value) in map {
            text.push_str(&format!("{level}\t{name}\t{}\n", escape(value)));
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| BrokerError::io(path, e))
}

/// Values may hold any character (a JAAS line has spaces, quotes and semicolons); tabs,
/// newlines and backslashes are escaped so that one line holds one config.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_dynamic_names_are_accepted_and_static_ones_refused() {
        assert_eq!(
            validate("sasl.kerberos.min.time.before.relogin", "58000", false).unwrap(),
            "58000"
        );
        assert!(lookup("log.retention.ms").unwrap().enforced);
        assert!(lookup("message.max.bytes").unwrap().enforced);
        assert!(!lookup("log.cleaner.threads").unwrap().enforced);
        let e = validate("log.dirs", "/x", false).unwrap_err();
        assert!(e
            .message
            .contains("Cannot update these configs dynamically"));
        // Listener and SSL settings cannot be applied by Potok, so they are refused.
        assert!(validate("listeners", "PLAINTEXT://:1", false).is_err());
        assert!(validate("ssl.keystore.location", "/k", false).is_err());
    }

    #[test]
    fn per_broker_configs_are_refused_as_cluster_defaults() {
        assert!(validate("sasl.kerberos.min.time.before.relogin", "1", true).is_err());
        assert!(validate("log.retention.ms", "1000", true).is_ok());
    }

    #[test]
    fn values_are_checked_against_the_type() {
        assert!(validate("sasl.kerberos.min.time.before.relogin", "soon", false).is_err());
        assert!(validate("log.retention.hours", "99999999999", false).is_err());
        assert!(validate("sasl.kerberos.ticket.renew.jitter", "0.05", false).is_ok());
        assert!(validate("sasl.kerberos.ticket.renew.jitter", "NaN", false).is_err());
        assert_eq!(
            validate("transaction.partition.verification.enable", "TRUE", false).unwrap(),
            "true"
        );
    }

    #[test]
    fn stored_configs_round_trip_with_any_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        assert_eq!(load(&path).unwrap(), DynamicConfigs::default());
        let mut configs = DynamicConfigs::default();
        configs.per_broker.insert(
            "sasl.kerberos.principal.to.local.rules".into(),
            "RULE:[1:$1]\\tx\nDEFAULT\t".into(),
        );
        configs
            .cluster_default
            .insert("log.retention.ms".into(), "1000".into());
        store(&path, &configs).unwrap();
        assert_eq!(load(&path).unwrap(), configs);
    }

    #[test]
    fn a_corrupt_file_fails_and_an_unknown_name_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        std::fs::write(&path, "nonsense\n").unwrap();
        assert!(load(&path).is_err());
        std::fs::write(&path, format!("{HEADER}\nbroker\tlog.dirs\t/x\n")).unwrap();
        assert_eq!(load(&path).unwrap(), DynamicConfigs::default());
        std::fs::write(&path, format!("{HEADER}\nbroker\tlog.retention.ms\n")).unwrap();
        assert!(load(&path).is_err());
    }
}
