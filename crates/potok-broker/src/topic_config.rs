//! Topic-level configs, the one table of them and everything derived from it: which configs
//! Potok accepts (Kafka's names, types, defaults, valid ranges and broker synonyms), the
//! validation of a value, the broker-wide defaults ([`TopicDefaults`]) and the effective
//! [`EffectiveTopicConfig`] of a topic.
//!
//! A topic stores only its *overrides* (name → value strings, persisted in the metadata log), as
//! Kafka does. The effective value of a config is the override if present, else the first of
//! its broker synonyms that has a value (converted to the topic config's unit: `retention.ms`
//! falls back to `log.retention.ms`, then `log.retention.minutes`, then `log.retention.hours`),
//! else the table's default. CreateTopics, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs, the broker's start-up check of its `log.*` settings and the replay of
//! the metadata log all go through [`validate_value`] and [`TopicConfigDef::resolve`], so there
//! is one rule per config. Every topic config of Kafka 4.x is accepted (the table is in
//! `topic_config/table.rs`); the ones whose behaviour Potok does not implement yet say so in
//! their documentation and in `docs/compatibility.md`. A name Kafka 4.x does not know is
//! `INVALID_CONFIG`.

use std::collections::BTreeMap;

use potok_log::{LogConfig, TimestampPolicy};
use potok_protocol::ErrorCode;
use potok_records::Compression;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::topics::ApiError;

/// Kafka's `ConfigType` as sent in DescribeConfigs v3+ (`config_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// Kafka's `ConfigSource` as sent in DescribeConfigs v1+ (`config_source`, synonyms' `source`)
/// and CreateTopics v5+ (`config_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown = 0,
    DynamicTopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// The broker-side values that topic defaults derive from. Implemented by
/// [`BrokerConfig`] (static settings only) and by the running broker (which layers dynamic
/// broker configs over them); a test double is enough for unit tests.
pub trait BrokerConfigLookup {
    /// The value of broker property `name` at one level of Kafka's precedence (one of
    /// [`BROKER_CONFIG_LEVELS`]), or `None` when that level has no value for it (Kafka's "null"
    /// defaults such as `log.retention.ms` have none at any level).
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String>;

    /// The value of `name` at the highest level that has one, with that level.
    fn broker_value(&self, name: &str) -> Option<(String, ConfigSource)> {
        BROKER_CONFIG_LEVELS
            .iter()
            .find_map(|&level| self.broker_value_at(name, level).map(|v| (v, level)))
    }
}

/// The levels a broker property can be set at, highest precedence first, as Kafka's
/// `DynamicBrokerConfig` documents them: dynamic per-broker, dynamic cluster-wide default,
/// the static config file (or `--set`), the built-in default.
pub const BROKER_CONFIG_LEVELS: [ConfigSource; 4] = [
    ConfigSource::DynamicBrokerConfig,
    ConfigSource::DynamicDefaultBrokerConfig,
    ConfigSource::StaticBrokerConfig,
    ConfigSource::DefaultConfig,
];

impl BrokerConfigLookup for BrokerConfig {
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String> {
        let explicit = match level {
            ConfigSource::StaticBrokerConfig => true,
            ConfigSource::DefaultConfig => false,
            _ => return None,
        };
        self.get(name)
            .filter(|v| !v.is_empty() && self.is_explicit(name) == explicit)
            .map(str::to_string)
    }
}

/// A refusal with the Kafka error code the response carries and a message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub code: ErrorCode,
    pub message: String,
}

impl ConfigError {
    /// `INVALID_CONFIG`: Kafka's `InvalidConfigurationException` / `ConfigException`.
    pub fn invalid(message: impl Into<String>) -> ConfigError {
        ConfigError {
            code: ErrorCode::InvalidConfig,
            message: message.into(),
        }
    }

    /// `INVALID_REQUEST`: the request itself is malformed (a name twice, a null value).
    pub(crate) fn request(message: impl Into<String>) -> ConfigError {
        ConfigError {
            code: ErrorCode::InvalidRequest,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> ApiError {
        ApiError::new(e.code, e.message)
    }
}

/// The value constraint of one config, checked after parsing its type.
#[derive(Clone, Copy, Debug)]
enum Rule {
    None,
    /// Inclusive numeric range.
    Range(i64, i64),
    /// A DOUBLE in 0..=1 (Kafka's `between(0, 1)`).
    Fraction,
    /// Kafka's gzip level validator: 1..=9, or -1 for the codec's default.
    GzipLevel,
    /// Kafka's `ThrottledReplicaListValidator`: `*`, or `partition:broker` entries.
    ThrottledReplicas,
    /// A BOOLEAN that must be false, with the message Kafka gives for true.
    NotTrue(&'static str),
    /// One of these strings (exact match, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// Every list element is one of these (Kafka's `ValidList`), no duplicates.
    ListOf(&'static [&'static str]),
}

/// How a broker synonym's value converts into the topic config's unit.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Same,
    MinutesToMs,
    HoursToMs,
}

/// One topic-level config definition.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub documentation: &'static str,
    rule: Rule,
    /// Value when neither the topic nor any broker synonym has one.
    default: &'static str,
    /// Broker properties the default comes from, highest precedence first (the first is
    /// always in the topic config's own unit).
    pub(crate) synonyms: &'static [(&'static str, Unit)],
}

mod table;

pub use table::TOPIC_CONFIGS;

const LONG_MAX: &str = "9223372036854775807";
const I32: i64 = i32::MAX as i64;

const fn def(
    name: &'static str,
    config_type: ConfigType,
    documentation: &'static str,
    rule: Rule,
    default: &'static str,
    synonyms: &'static [(&'static str, Unit)],
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        documentation,
        rule,
        default,
        synonyms,
    }
}

impl TopicConfigDef {
    /// The broker settings that currently give this config a value, highest precedence first,
    /// as `(name, value, source)`. An explicitly set synonym comes before a defaulted one even
    /// if the defaulted one has higher precedence (`log.retention.hours=24` set in the file
    /// beats the built-in nothing of `log.retention.ms`), as in Kafka, where unset synonyms
    /// have no value at all.
    pub fn broker_synonyms(
        &self,
        broker: &(impl BrokerConfigLookup + ?Sized),
    ) -> Vec<(&'static str, String, ConfigSource)> {
        self.synonyms_with_units(broker)
            .into_iter()
            .map(|(name, _, value, source)| (name, value, source))
            .collect()
    }

    fn synonyms_with_units(
        &self,
        broker: &(impl BrokerConfigLookup + ?Sized),
    ) -> Vec<(&'static str, Unit, String, ConfigSource)> {
        // Level-major order, as Kafka's `ConfigHelper` lists synonyms: every synonym's dynamic
        // per-broker value, then every dynamic default, then static, then built-in defaults.
        let mut out = Vec::new();
        for level in BROKER_CONFIG_LEVELS {
            for &(synonym, unit) in self.synonyms {
                if let Some(value) = broker.broker_value_at(synonym, level) {
                    out.push((synonym, unit, value, level));
                }
            }
        }
        out
    }

    /// The effective value of this config and where it comes from: the topic override, else
    /// the first broker synonym with a value (converted to this config's unit), else the
    /// table's default.
    pub fn resolve(
        &self,
        overrides: &BTreeMap<String, String>,
        broker: &(impl BrokerConfigLookup + ?Sized),
    ) -> (String, ConfigSource) {
        if let Some(v) = overrides.get(self.name) {
            return (v.clone(), ConfigSource::DynamicTopicConfig);
        }
        self.synonyms_with_units(broker)
            .into_iter()
            .find_map(|(_, unit, value, source)| {
                let v = convert(&value, unit)?;
                // Kafka's `KafkaConfig.logRetentionTimeMillis`: any negative broker retention
                // (`log.retention.ms/minutes/hours`) means "keep forever", i.e. -1.
                if self.name == "retention.ms" && v.parse::<i64>().is_ok_and(|n| n < 0) {
                    return Some(("-1".to_string(), source));
                }
                Some((v, source))
            })
            .unwrap_or_else(|| (self.default.to_string(), ConfigSource::DefaultConfig))
    }
}

/// The definition of topic config `name`, if Potok knows it.
pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

/// The effective value of topic config `name` and where it comes from (see
/// [`TopicConfigDef::resolve`]); `None` for an unknown name.
pub fn effective_value(
    name: &str,
    overrides: &BTreeMap<String, String>,
    broker: &(impl BrokerConfigLookup + ?Sized),
) -> Option<(String, ConfigSource)> {
    lookup(name).map(|def| def.resolve(overrides, broker))
}

/// Checks one value against its definition and returns it as stored (trimmed; list elements
/// trimmed and re-joined with commas), as Kafka's `ConfigDef.parseType` reads it. The messages
/// are Kafka's `ConfigException` ones ("Invalid value V for configuration N: ...").
pub fn validate_value(name: &str, value: &str) -> std::result::Result<String, ConfigError> {
    let def = lookup(name)
        .ok_or_else(|| ConfigError::invalid(format!("Unknown topic config name: {name}")))?;
    let bad = |why: &str| {
        ConfigError::invalid(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    let trimmed = value.trim();
    match def.config_type {
        ConfigType::Int | ConfigType::Short | ConfigType::Long => {
            let (type_name, type_min, type_max) = match def.config_type {
                ConfigType::Int => ("INT", i32::MIN as i64, I32),
                ConfigType::Short => ("SHORT", i16::MIN as i64, i16::MAX as i64),
                _ => ("LONG", i64::MIN, i64::MAX),
            };
            // Java's Integer.parseInt fails on a value beyond the type's range too, so Kafka
            // reports both cases as "Not a number of type INT".
            let parsed = trimmed
                .parse::<i64>()
                .ok()
                .filter(|v| (type_min..=type_max).contains(v))
                .ok_or_else(|| bad(&format!("Not a number of type {type_name}")))?;
            match def.rule {
                Rule::Range(min, _) if parsed < min => {
                    return Err(bad(&format!("Value must be at least {min}")));
                }
                Rule::Range(_, max) if parsed > max => {
                    return Err(bad(&format!("Value must be no more than {max}")));
                }
                Rule::GzipLevel if parsed != -1 && !(1..=9).contains(&parsed) => {
                    return Err(bad("Value must be between 1 and 9 or equal to -1"));
                }
                _ => {}
            }
            Ok(parsed.to_string())
        }
        ConfigType::Double => {
            // Kafka's Double.parseDouble would also take NaN, which no range check can
            // refuse; Potok asks for a finite number.
            let parsed = trimmed
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad("Not a number of type DOUBLE"))?;
            if matches!(def.rule, Rule::Fraction) {
                if parsed < 0.0 {
                    return Err(bad("Value must be at least 0"));
                }
                if parsed > 1.0 {
                    return Err(bad("Value must be no more than 1"));
                }
            }
            Ok(trimmed.to_string())
        }
        ConfigType::Boolean => {
            // Kafka's ConfigDef.parseType: "true" or "false" in any case.
            let parsed = match trimmed.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("Expected value to be either true or false")),
            };
            if let (Rule::NotTrue(message), true) = (def.rule, parsed) {
                return Err(ConfigError::invalid(message));
            }
            Ok(parsed.to_string())
        }
        ConfigType::List => {
            let items = split_list(trimmed);
            match def.rule {
                Rule::ListOf(allowed) => {
                    for (i, item) in items.iter().enumerate() {
                        if !allowed.contains(item) {
                            return Err(bad(&format!(
                                "String must be one of: {}",
                                allowed.join(", ")
                            )));
                        }
                        if items[..i].contains(item) {
                            return Err(bad("Values must not be duplicated"));
                        }
                    }
                }
                Rule::ThrottledReplicas if !valid_throttled_replicas(&items) => {
                    return Err(bad(&format!("{name} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")));
                }
                _ => {}
            }
            Ok(items.join(","))
        }
        _ => {
            if let Rule::OneOf(allowed) = def.rule {
                if !allowed.contains(&trimmed) {
                    return Err(bad(&format!(
                        "String must be one of: {}",
                        allowed.join(", ")
                    )));
                }
            }
            Ok(trimmed.to_string())
        }
    }
}

/// Kafka's `ThrottledReplicaListValidator`: exactly `*`, or `partition:broker` pairs of
/// non-negative 32-bit integers, where empty entries may only trail.
fn valid_throttled_replicas(items: &[&str]) -> bool {
    if items == ["*"] {
        return true;
    }
    let mut seen_empty = false;
    items.iter().all(|item| {
        if item.is_empty() {
            seen_empty = true;
            return true;
        }
        let pair = item.split_once(':').filter(|(p, b)| {
            [p, b].iter().all(|n| {
                !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && n.parse::<i32>().is_ok()
            })
        });
        !seen_empty && pair.is_some()
    })
}

/// Kafka 3.x's `message.format.version`, removed in Kafka 4.0 (KIP-724). A 3.x broker with
/// inter.broker.protocol.version 3.0 or later accepted it, checked that it named a version and
/// then ignored it; Potok does the same so that tools and scripts written for 3.x still work,
/// and neither stores nor describes it.
pub const MESSAGE_FORMAT_VERSION: &str = "message.format.version";

/// Whether `name` is a legacy config that is accepted and ignored (see
/// [`MESSAGE_FORMAT_VERSION`]).
pub fn is_ignored_legacy_config(name: &str) -> bool {
    name == MESSAGE_FORMAT_VERSION
}

/// Checks the value of an ignored legacy config: a version such as `0.10.2`, `2.8-IV1` or
/// `3.0`, as Kafka 3.x's `MetadataVersionValidator` required.
pub fn validate_ignored_legacy(name: &str, value: &str) -> std::result::Result<(), ConfigError> {
    let v = value.trim();
    let (numbers, iv) = match v.split_once("-IV") {
        Some((n, iv)) => (n, Some(iv)),
        None => (v, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    // Kafka 3.x's `MetadataVersion.fromVersionString` looks up the first three segments of a
    // `0.x` version and the first two of any other, so longer strings such as `0.10.0.0`
    // (librdkafka's test 0092 sends it) or `2.8.1` are accepted.
    let max_parts = if numbers.starts_with("0.") { 4 } else { 3 };
    if (2..=max_parts).contains(&parts.len())
        && parts.iter().all(|p| numeric(p))
        && iv.is_none_or(numeric)
    {
        Ok(())
    } else {
        Err(ConfigError::invalid(format!(
            "Invalid value {value} for configuration {name}: not a Kafka version"
        )))
    }
}

/// The elements of a list value (Kafka's `LIST` type): comma-separated, trimmed; an empty or
/// blank value is the empty list.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// Validates every override (name and value, with [`validate_value`]) and returns them as
/// stored; an ignored legacy config ([`is_ignored_legacy_config`]) is checked and dropped.
pub fn normalize_overrides(
    overrides: &BTreeMap<String, String>,
) -> std::result::Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, value) in overrides {
        if is_ignored_legacy_config(name) {
            validate_ignored_legacy(name, value)?;
            continue;
        }
        out.insert(name.clone(), validate_value(name, value)?);
    }
    Ok(out)
}

fn convert(value: &str, unit: Unit) -> Option<String> {
    let factor = match unit {
        Unit::Same => return Some(value.to_string()),
        Unit::MinutesToMs => 60_000,
        Unit::HoursToMs => 3_600_000,
    };
    value
        .trim()
        .parse::<i64>()
        .ok()?
        .checked_mul(factor)
        .map(|v| v.to_string())
}

/// The resolved configs of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveTopicConfig {
    /// What the partition logs obey.
    pub log: LogConfig,
    /// `max.message.bytes`: largest batch a producer may append.
    pub max_message_bytes: usize,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `cleanup.policy` contains `compact`: the log cleaner compacts the topic (`log.compact`);
    /// without `delete` too, retention does not remove its segments. Produce
    /// refuses records without a key on such a topic, as Kafka's `LogValidator` does.
    pub compact: bool,
    /// `message.timestamp.before.max.ms` (KIP-937).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937).
    pub timestamp_after_max_ms: i64,
    /// `compression.type`: the codec every stored batch must have, with its level
    /// (`compression.gzip.level` / `compression.zstd.level`; `None` for the codec's default);
    /// `None` for `producer`, which keeps each batch as it came.
    pub compression: Option<(Compression, Option<i32>)>,
}

/// The broker-wide default of every topic config (validated and normalized), derived once from
/// the broker's settings through the synonyms in [`TOPIC_CONFIGS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    values: BTreeMap<&'static str, String>,
}

impl TopicDefaults {
    /// Derives the defaults from the broker's settings. A setting that is not a number where
    /// a unit conversion needs one (`log.retention.minutes=abc`), or a default that is not a
    /// valid value of its topic config, is a start-up error, as in Kafka.
    pub fn from_broker(cfg: &(impl BrokerConfigLookup + ?Sized)) -> Result<TopicDefaults> {
        let mut values = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            // Kafka parses every setting at start, also one hidden by a synonym of higher
            // precedence, so log.retention.hours=abc next to log.retention.ms is refused.
            for &(synonym, unit) in def.synonyms {
                for value in BROKER_CONFIG_LEVELS
                    .iter()
                    .filter_map(|&level| cfg.broker_value_at(synonym, level))
                {
                    if convert(&value, unit).is_none() {
                        return Err(BrokerError::Config(format!(
                            "{synonym}={value}: not a valid number"
                        )));
                    }
                }
            }
            let (value, _) = def.resolve(&BTreeMap::new(), cfg);
            let value = validate_value(def.name, &value).map_err(|e| {
                BrokerError::Config(format!("broker default of a topic config: {}", e.message))
            })?;
            values.insert(def.name, value);
        }
        let defaults = TopicDefaults { values };
        defaults.effective(&BTreeMap::new()).map_err(|e| {
            BrokerError::Config(format!("broker default of a topic config: {}", e.message))
        })?;
        Ok(defaults)
    }

    /// Resolves `overrides` over these defaults. Every override goes through
    /// [`validate_value`], so an unknown name or a bad value is the same `INVALID_CONFIG` as
    /// in AlterConfigs.
    pub fn effective(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> std::result::Result<EffectiveTopicConfig, ConfigError> {
        let mut values: BTreeMap<&str, String> =
            self.values.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (name, value) in overrides {
            values.insert(name, validate_value(name, value)?);
        }
        let text = |name: &str| values.get(name).map(String::as_str).unwrap_or_default();
        // Every value is validated, so these conversions fail only if the table and this
        // function disagree about a config's type; that is still an error, never a panic.
        let number = |name: &str| -> std::result::Result<i64, ConfigError> {
            text(name).parse().map_err(|_| {
                ConfigError::invalid(format!(
                    "Invalid value {} for configuration {name}: Not a number",
                    text(name)
                ))
            })
        };
        fn fit<T: TryFrom<i64>>(name: &str, v: i64) -> std::result::Result<T, ConfigError> {
            T::try_from(v).map_err(|_| {
                ConfigError::invalid(format!(
                    "Invalid value {v} for configuration {name}: Out of range"
                ))
            })
        }

        let timestamp_policy = match text("message.timestamp.type") {
            "CreateTime" => TimestampPolicy::CreateTime,
            "LogAppendTime" => TimestampPolicy::LogAppendTime,
            other => {
                return Err(ConfigError::invalid(format!(
                    "Invalid value {other} for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
                )))
            }
        };
        let flush_messages = number("flush.messages")?;
        let mut log = LogConfig {
            retention_ms: number("retention.ms")?,
            retention_bytes: number("retention.bytes")?,
            segment_bytes: fit("segment.bytes", number("segment.bytes")?)?,
            segment_ms: number("segment.ms")?,
            segment_index_bytes: fit("segment.index.bytes", number("segment.index.bytes")?)?,
            index_interval_bytes: fit("index.interval.bytes", number("index.interval.bytes")?)?,
            // Long.MAX_VALUE is Kafka's way of saying "never"; keep it as "no policy".
            flush_messages: match flush_messages {
                i64::MAX => None,
                v => Some(fit("flush.messages", v)?),
            },
            flush_ms: Some(number("flush.ms")?).filter(|&v| v != i64::MAX),
            timestamp_policy,
            ..LogConfig::default()
        };
        let policy = split_list(text("cleanup.policy"));
        let compact = policy.contains(&"compact");
        if !policy.contains(&"delete") {
            // Without `delete` (also with an empty policy), Kafka never removes data by time
            // or size.
            log.retention_ms = -1;
            log.retention_bytes = -1;
        }
        log.validate()
            .map_err(|e| ConfigError::invalid(e.to_string()))?;
        // Kafka's LogConfig.validateValues: the one cross-config rule of the topic configs
        // (the tiered-storage rules cannot apply, remote.storage.enable being always false).
        let (min_lag, max_lag) = (
            number("min.compaction.lag.ms")?,
            number("max.compaction.lag.ms")?,
        );
        if min_lag > max_lag {
            return Err(ConfigError::invalid(format!(
                "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
            )));
        }
        // Compaction settings the log cleaner obeys (`potok_log::cleaner`).
        log.compact = compact;
        log.delete_retention_ms = number("delete.retention.ms")?;
        log.min_compaction_lag_ms = min_lag;
        log.max_compaction_lag_ms = max_lag;
        log.validate()
            .map_err(|e| ConfigError::invalid(e.to_string()))?;
        let compression = match text("compression.type") {
            "producer" => None,
            "uncompressed" => Some((Compression::None, None)),
            "gzip" => Some((
                Compression::Gzip,
                Some(fit::<i32>(
                    "compression.gzip.level",
                    number("compression.gzip.level")?,
                )?)
                .filter(|&l| l != -1),
            )),
            "snappy" => Some((Compression::Snappy, None)),
            "lz4" => Some((Compression::Lz4, None)),
            "zstd" => Some((
                Compression::Zstd,
                Some(fit(
                    "compression.zstd.level",
                    number("compression.zstd.level")?,
                )?),
            )),
            other => {
                return Err(ConfigError::invalid(format!(
                    "Invalid value {other} for configuration compression.type"
                )))
            }
        };
        Ok(EffectiveTopicConfig {
            log,
            max_message_bytes: fit("max.message.bytes", number("max.message.bytes")?)?,
            min_insync_replicas: fit("min.insync.replicas", number("min.insync.replicas")?)?,
            compact,
            timestamp_before_max_ms: number("message.timestamp.before.max.ms")?,
            timestamp_after_max_ms: number("message.timestamp.after.max.ms")?,
            compression,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
