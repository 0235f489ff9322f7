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
//! is one rule per config. Only configs whose behaviour Potok implements are accepted; anything
//! else is `INVALID_CONFIG` rather than a setting that is stored but silently ignored.

use std::collections::BTreeMap;

use potok_log::{LogConfig, TimestampPolicy};
use potok_protocol::ErrorCode;

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
/// [`BrokerConfig`] (and so by the running broker); a test double is enough for unit tests.
pub trait BrokerConfigLookup {
    /// The value of broker property `name` and whether it was set explicitly (in the config
    /// file or with `--set`), or `None` when the broker has no value for it (Kafka's "null"
    /// defaults such as `log.retention.ms`).
    fn broker_value(&self, name: &str) -> Option<(String, bool)>;
}

impl BrokerConfigLookup for BrokerConfig {
    fn broker_value(&self, name: &str) -> Option<(String, bool)> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (v.to_string(), self.is_explicit(name)))
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
    pub(crate) fn invalid(message: impl Into<String>) -> ConfigError {
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
    /// One of these strings (exact match, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// Every list element is one of these (Kafka's `ValidList`), no duplicates.
    ListOf(&'static [&'static str]),
}

/// How a broker synonym's value converts into the topic config's unit.
#[derive(Clone, Copy, Debug)]
enum Unit {
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
    /// Broker properties the default comes from, highest precedence first.
    synonyms: &'static [(&'static str, Unit)],
}

const LONG_MAX: &str = "9223372036854775807";
const I32: i64 = i32::MAX as i64;

/// Every topic config Potok accepts, sorted by name: exactly the configs whose behaviour the
/// broker implements ([`TopicDefaults::effective`] turns each into what the logs and the produce
/// path obey), because a config that is stored but silently ignored would lie to the user.
/// Names, types, defaults, ranges and broker synonyms are Apache Kafka 4.x's (`TopicConfig` /
/// `LogConfig`), except that `segment.bytes` may go down to 14 bytes (one batch header; Kafka's
/// floor is 1 MiB) because tests use tiny segments; the documentation strings are Potok's own
/// words.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", ConfigType::List, "Comma-separated list of policies for old segments: `delete` removes them by retention time or size, `compact` keeps the latest record per key.", Rule::ListOf(&["compact", "delete"]), "delete", &[("log.cleanup.policy", Unit::Same)]),
    def("flush.messages", ConfigType::Long, "Force an fsync after this many records; the default leaves flushing to the operating system.", Rule::Range(1, i64::MAX), LONG_MAX, &[("log.flush.interval.messages", Unit::Same)]),
    def("flush.ms", ConfigType::Long, "Force an fsync when unflushed data is this old; the default leaves flushing to the operating system.", Rule::Range(0, i64::MAX), LONG_MAX, &[("log.flush.interval.ms", Unit::Same)]),
    def("index.interval.bytes", ConfigType::Int, "Bytes appended between two entries of the sparse offset index.", Rule::Range(0, I32), "4096", &[("log.index.interval.bytes", Unit::Same)]),
    def("max.message.bytes", ConfigType::Int, "Largest record batch (after compression) the topic accepts.", Rule::Range(0, I32), "1048588", &[("message.max.bytes", Unit::Same)]),
    def("message.timestamp.after.max.ms", ConfigType::Long, "How far a CreateTime record's timestamp may lie ahead of the broker's clock (KIP-937).", Rule::Range(0, i64::MAX), "3600000", &[("log.message.timestamp.after.max.ms", Unit::Same)]),
    def("message.timestamp.before.max.ms", ConfigType::Long, "How far a CreateTime record's timestamp may lie behind the broker's clock (KIP-937).", Rule::Range(0, i64::MAX), LONG_MAX, &[("log.message.timestamp.before.max.ms", Unit::Same)]),
    def("message.timestamp.type", ConfigType::String, "Whether record timestamps are the producer's (CreateTime) or stamped on append (LogAppendTime).", Rule::OneOf(&["CreateTime", "LogAppendTime"]), "CreateTime", &[("log.message.timestamp.type", Unit::Same)]),
    def("min.insync.replicas", ConfigType::Int, "Replicas that must acknowledge a write with acks=all.", Rule::Range(1, I32), "1", &[("min.insync.replicas", Unit::Same)]),
    def("retention.bytes", ConfigType::Long, "Largest size a partition may grow to before its oldest segments are deleted; -1 means unlimited.", Rule::None, "-1", &[("log.retention.bytes", Unit::Same)]),
    def("retention.ms", ConfigType::Long, "How long a segment is kept after its newest record; -1 means forever.", Rule::Range(-1, i64::MAX), "604800000", &[("log.retention.ms", Unit::Same), ("log.retention.minutes", Unit::MinutesToMs), ("log.retention.hours", Unit::HoursToMs)]),
    def("segment.bytes", ConfigType::Int, "Size at which the active segment is closed and a new one started.", Rule::Range(14, I32), "1073741824", &[("log.segment.bytes", Unit::Same)]),
    def("segment.index.bytes", ConfigType::Int, "Preallocated size of each segment's offset and time index.", Rule::Range(24, I32), "10485760", &[("log.index.size.max.bytes", Unit::Same)]),
    def("segment.ms", ConfigType::Long, "Age after which the active segment is closed even if it is not full.", Rule::Range(1, i64::MAX), "604800000", &[("log.roll.ms", Unit::Same), ("log.roll.hours", Unit::HoursToMs)]),
];

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
        let mut out = Vec::new();
        for (explicit, source) in [
            (true, ConfigSource::StaticBrokerConfig),
            (false, ConfigSource::DefaultConfig),
        ] {
            for &(synonym, unit) in self.synonyms {
                if let Some((value, is_explicit)) = broker.broker_value(synonym) {
                    if is_explicit == explicit {
                        out.push((synonym, unit, value, source));
                    }
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
    // Only the types the accepted topic configs have: integers, strings and lists.
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
            if let Rule::Range(min, max) = def.rule {
                if parsed < min {
                    return Err(bad(&format!("Value must be at least {min}")));
                }
                if parsed > max {
                    return Err(bad(&format!("Value must be no more than {max}")));
                }
            }
            Ok(parsed.to_string())
        }
        ConfigType::List => {
            let items = split_list(trimmed);
            if let Rule::ListOf(allowed) = def.rule {
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

/// The elements of a list value (Kafka's `LIST` type): comma-separated, trimmed; an empty or
/// blank value is the empty list.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// Validates every override (name and value, with [`validate_value`]) and returns them as
/// stored.
pub fn normalize_overrides(
    overrides: &BTreeMap<String, String>,
) -> std::result::Result<BTreeMap<String, String>, ConfigError> {
    overrides
        .iter()
        .map(|(name, value)| Ok((name.clone(), validate_value(name, value)?)))
        .collect()
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
    /// `cleanup.policy` contains `compact` (Potok does not compact; such topics are not
    /// deleted by retention either, which is what `compact` alone means in Kafka). Produce
    /// refuses records without a key on such a topic, as Kafka's `LogValidator` does.
    pub compact: bool,
    /// `message.timestamp.before.max.ms` (KIP-937).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937).
    pub timestamp_after_max_ms: i64,
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
    pub fn from_broker(cfg: &BrokerConfig) -> Result<TopicDefaults> {
        let mut values = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            // Kafka parses every setting at start, also one hidden by a synonym of higher
            // precedence, so log.retention.hours=abc next to log.retention.ms is refused.
            for &(synonym, unit) in def.synonyms {
                if let Some((value, _)) = cfg.broker_value(synonym) {
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
        Ok(EffectiveTopicConfig {
            log,
            max_message_bytes: fit("max.message.bytes", number("max.message.bytes")?)?,
            min_insync_replicas: fit("min.insync.replicas", number("min.insync.replicas")?)?,
            compact,
            timestamp_before_max_ms: number("message.timestamp.before.max.ms")?,
            timestamp_after_max_ms: number("message.timestamp.after.max.ms")?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Broker values as a test double: (name, value, explicitly set).
    pub(crate) struct Broker(pub(crate) Vec<(&'static str, &'static str, bool)>);

    impl BrokerConfigLookup for Broker {
        fn broker_value(&self, name: &str) -> Option<(String, bool)> {
            self.0
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, v, e)| (v.to_string(), *e))
        }
    }

    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn broker(props: &[(&str, &str)]) -> BrokerConfig {
        BrokerConfig::from_properties(
            props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn table_is_sorted_and_defaults_are_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for def in TOPIC_CONFIGS {
            assert_eq!(
                validate_value(def.name, def.default).as_deref(),
                Ok(def.default),
                "default of {}",
                def.name
            );
            for (synonym, _) in def.synonyms {
                assert!(
                    crate::config::SETTINGS.iter().any(|s| s.name == *synonym),
                    "{}: synonym {synonym} is not a broker setting",
                    def.name
                );
            }
        }
    }

    #[test]
    fn the_broker_defaults_are_the_tables_defaults() {
        // Kafka's broker defaults and topic defaults agree; so must Potok's two tables.
        let cfg = BrokerConfig::defaults();
        for def in TOPIC_CONFIGS {
            assert_eq!(
                def.resolve(&BTreeMap::new(), &cfg).0,
                def.default,
                "{}",
                def.name
            );
        }
        let e = TopicDefaults::from_broker(&cfg)
            .unwrap()
            .effective(&BTreeMap::new())
            .unwrap();
        assert_eq!(e.log, LogConfig::default());
        assert_eq!((e.max_message_bytes, e.min_insync_replicas), (1_048_588, 1));
        assert!(!e.compact);
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        assert_eq!(validate_value("retention.ms", " 1000 "), Ok("1000".into()));
        assert_eq!(validate_value("retention.ms", "-1"), Ok("-1".into()));
        for (name, value) in [
            ("retention.ms", "abc"),
            ("retention.ms", "-2"),
            ("retention.ms", "1.5"),
            ("segment.bytes", "13"),
            ("segment.bytes", "2147483648"),
            ("min.insync.replicas", "0"),
            ("cleanup.policy", "shred"),
            ("cleanup.policy", "delete,delete"),
            ("message.timestamp.type", "createtime"),
            ("no.such.config", "1"),
            // Kafka knows it, but Potok does not implement it: refused rather than ignored.
            ("compression.type", "gzip"),
        ] {
            let error = validate_value(name, value).expect_err(&format!("{name}={value} accepted"));
            assert_eq!(error.code, ErrorCode::InvalidConfig, "{name}={value}");
        }
        assert_eq!(
            validate_value("cleanup.policy", " compact , delete "),
            Ok("compact,delete".into())
        );
        assert_eq!(validate_value("cleanup.policy", ""), Ok("".into()));
        // Kafka's ConfigException wording, which clients show to users.
        assert_eq!(
            validate_value("segment.bytes", "2147483648")
                .unwrap_err()
                .message,
            "Invalid value 2147483648 for configuration segment.bytes: Not a number of type INT"
        );
        assert_eq!(
            validate_value("retention.ms", "-2").unwrap_err().message,
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            validate_value("no.such.config", "1").unwrap_err().message,
            "Unknown topic config name: no.such.config"
        );
    }

    #[test]
    fn defaults_follow_broker_synonyms() {
        let b = Broker(vec![
            ("log.retention.hours", "168", false),
            ("message.max.bytes", "1048588", false),
        ]);
        assert_eq!(
            effective_value("retention.ms", &BTreeMap::new(), &b),
            Some(("604800000".into(), ConfigSource::DefaultConfig))
        );
        assert_eq!(
            effective_value("max.message.bytes", &BTreeMap::new(), &b),
            Some(("1048588".into(), ConfigSource::DefaultConfig))
        );
        let set = Broker(vec![
            ("log.retention.hours", "168", false),
            ("log.retention.minutes", "30", true),
        ]);
        assert_eq!(
            effective_value("retention.ms", &BTreeMap::new(), &set),
            Some(("1800000".into(), ConfigSource::StaticBrokerConfig))
        );
        assert_eq!(
            effective_value("retention.ms", &map(&[("retention.ms", "5")]), &set),
            Some(("5".into(), ConfigSource::DynamicTopicConfig))
        );
        assert_eq!(
            lookup("retention.ms").unwrap().broker_synonyms(&set),
            vec![
                (
                    "log.retention.minutes",
                    "30".to_string(),
                    ConfigSource::StaticBrokerConfig
                ),
                (
                    "log.retention.hours",
                    "168".to_string(),
                    ConfigSource::DefaultConfig
                )
            ]
        );
        // No broker value at all: the definition's default.
        assert_eq!(
            effective_value("cleanup.policy", &BTreeMap::new(), &Broker(vec![])),
            Some(("delete".into(), ConfigSource::DefaultConfig))
        );
        assert_eq!(effective_value("nope", &BTreeMap::new(), &b), None);
    }

    /// Kafka treats any negative broker retention as "forever" (-1), whichever unit set it.
    #[test]
    fn negative_broker_retention_means_forever() {
        for (name, value) in [
            ("log.retention.hours", "-1"),
            ("log.retention.minutes", "-5"),
            ("log.retention.ms", "-2"),
        ] {
            let d = TopicDefaults::from_broker(&broker(&[(name, value)])).unwrap();
            let e = d.effective(&BTreeMap::new()).unwrap();
            assert_eq!(e.log.retention_ms, -1, "{name}={value}");
            let (v, _) =
                effective_value("retention.ms", &BTreeMap::new(), &broker(&[(name, value)]))
                    .unwrap();
            assert_eq!(v, "-1", "{name}={value}");
        }
    }

    #[test]
    fn broker_defaults_and_overrides() {
        let d = TopicDefaults::from_broker(&broker(&[("log.retention.minutes", "5")])).unwrap();
        let e = d.effective(&BTreeMap::new()).unwrap();
        assert_eq!(e.log.retention_ms, 300_000);
        assert_eq!(e.max_message_bytes, 1_048_588);
        let d = TopicDefaults::from_broker(&broker(&[
            ("log.retention.ms", "2000"),
            ("log.retention.minutes", "5"),
            ("log.roll.hours", "1"),
        ]))
        .unwrap();
        let e = d.effective(&BTreeMap::new()).unwrap();
        assert_eq!((e.log.retention_ms, e.log.segment_ms), (2000, 3_600_000));

        let mut o = map(&[
            ("retention.ms", " 1000 "),
            ("message.timestamp.type", "LogAppendTime"),
            ("flush.messages", "10"),
        ]);
        let e = d.effective(&o).unwrap();
        assert_eq!(e.log.retention_ms, 1000);
        assert_eq!(e.log.timestamp_policy, TimestampPolicy::LogAppendTime);
        assert_eq!(e.log.flush_messages, Some(10));
        o.insert("no.such".to_string(), "1".to_string());
        assert_eq!(
            d.effective(&o).unwrap_err(),
            ConfigError::invalid("Unknown topic config name: no.such")
        );
        // The same validation as AlterConfigs: the same code and message.
        for (name, value) in [("retention.ms", "soon"), ("cleanup.policy", "shred")] {
            assert_eq!(
                d.effective(&map(&[(name, value)])),
                Err(validate_value(name, value).unwrap_err())
            );
        }
    }

    #[test]
    fn cleanup_policy_without_delete_keeps_data() {
        let d = TopicDefaults::from_broker(&BrokerConfig::defaults()).unwrap();
        for policy in ["compact", ""] {
            let e = d
                .effective(&map(&[("cleanup.policy", policy), ("retention.ms", "5")]))
                .unwrap();
            assert_eq!((e.log.retention_ms, e.log.retention_bytes), (-1, -1));
            assert_eq!(e.compact, policy == "compact");
        }
        let e = d
            .effective(&map(&[("cleanup.policy", "compact,delete")]))
            .unwrap();
        assert!(e.compact);
        assert_eq!(e.log.retention_ms, potok_log::SEVEN_DAYS_MS);
    }

    #[test]
    fn bad_broker_defaults_refuse_to_start() {
        for props in [
            vec![("log.retention.minutes", "abc")],
            // Hidden by log.retention.ms, still refused (Kafka parses every setting).
            vec![("log.retention.ms", "1000"), ("log.retention.hours", "x")],
            // Kafka: `log.roll.hours` is at least 1 (a negative retention, by contrast, means
            // forever; see `negative_broker_retention_means_forever`).
            vec![("log.roll.hours", "-1")],
            vec![("log.segment.bytes", "10")],
            vec![("log.message.timestamp.type", "Now")],
            vec![("log.cleanup.policy", "shred")],
        ] {
            let props = props
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert!(
                matches!(
                    BrokerConfig::from_properties(props),
                    Err(BrokerError::Config(_))
                ),
                "accepted"
            );
        }
    }

    #[test]
    fn normalized_overrides_are_what_is_stored() {
        assert_eq!(
            normalize_overrides(&map(&[
                ("retention.ms", " 5 "),
                ("cleanup.policy", "compact , delete")
            ])),
            Ok(map(&[
                ("retention.ms", "5"),
                ("cleanup.policy", "compact,delete")
            ]))
        );
        assert_eq!(
            normalize_overrides(&map(&[("segment.ms", "0")]))
                .unwrap_err()
                .code,
            ErrorCode::InvalidConfig
        );
    }
}
