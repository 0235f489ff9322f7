//! Topic configuration: the table of topic-level configs Potok knows (Kafka's names, types,
//! defaults and valid ranges), their broker-level synonyms, and the pure logic of
//! DescribeConfigs / AlterConfigs / IncrementalAlterConfigs on a topic's override map.
//!
//! A topic stores only its *overrides* (`BTreeMap<name, value>`), as Kafka does; every other
//! value is derived from the broker configuration through the synonyms listed here (for example
//! `retention.ms` falls back to `log.retention.ms`, then `log.retention.minutes`, then
//! `log.retention.hours`). Nothing here touches the network, the disk or shared state, so the
//! handlers can validate a whole request before changing anything and unit tests can cover the
//! rules exhaustively.

use std::collections::BTreeMap;

use potok_protocol::ErrorCode;

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

/// Kafka's `ConfigSource` as sent in DescribeConfigs v1+ (`config_source`, synonyms' `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown = 0,
    DynamicTopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// The broker-side values that topic defaults derive from. Implemented by the broker's
/// configuration; a test double is enough for unit tests.
pub trait BrokerConfigLookup {
    /// The value of broker property `name` and whether it was set explicitly (in the config
    /// file or with `--set`), or `None` when the broker has no value for it (Kafka's "null"
    /// defaults such as `log.retention.ms`).
    fn broker_value(&self, name: &str) -> Option<(String, bool)>;
}

/// A refusal with the Kafka error code the response carries and a message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub code: ErrorCode,
    pub message: String,
}

impl ConfigError {
    fn invalid(message: impl Into<String>) -> ConfigError {
        ConfigError {
            code: ErrorCode::InvalidConfig,
            message: message.into(),
        }
    }

    fn request(message: impl Into<String>) -> ConfigError {
        ConfigError {
            code: ErrorCode::InvalidRequest,
            message: message.into(),
        }
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
/// broker implements (`crate::config_schema::TOPIC_SETTINGS`, a test keeps the two lists equal),
/// because a config that is stored but silently ignored would lie to the user. Names, types,
/// defaults, ranges and broker synonyms are Apache Kafka 4.x's (`TopicConfig` / `LogConfig`);
/// the documentation strings are Potok's own words.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", ConfigType::List, "Comma-separated list of policies for old segments: `delete` removes them by retention time or size, `compact` keeps the latest record per key.", Rule::ListOf(&["compact", "delete"]), "delete", &[("log.cleanup.policy", Unit::Same)]),
    def("flush.messages", ConfigType::Long, "Force an fsync after this many records; the default leaves flushing to the operating system.", Rule::Range(1, i64::MAX), LONG_MAX, &[("log.flush.interval.messages", Unit::Same)]),
    def("flush.ms", ConfigType::Long, "Force an fsync when unflushed data is this old; the default leaves flushing to the operating system.", Rule::Range(0, i64::MAX), LONG_MAX, &[("log.flush.interval.ms", Unit::Same)]),
    def("index.interval.bytes", ConfigType::Int, "Bytes appended between two entries of the sparse offset index.", Rule::Range(0, I32), "4096", &[("log.index.interval.bytes", Unit::Same)]),
    def("max.message.bytes", ConfigType::Int, "Largest record batch (after compression) the topic accepts.", Rule::Range(0, I32), "1048588", &[("message.max.bytes", Unit::Same)]),
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

/// The definition of topic config `name`, if Potok knows it.
pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

/// Checks one value against its definition and returns it as stored (trimmed; list elements
/// trimmed and re-joined with commas), as Kafka's `ConfigDef.parseType` reads it.
pub fn validate_value(name: &str, value: &str) -> Result<String, ConfigError> {
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
            let parsed: i64 = trimmed.parse().map_err(|_| bad("Not a number"))?;
            let (type_min, type_max) = match def.config_type {
                ConfigType::Int => (i32::MIN as i64, I32),
                ConfigType::Short => (i16::MIN as i64, i16::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if parsed < type_min || parsed > type_max {
                return Err(bad("Out of range for its type"));
            }
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

fn split_list(value: &str) -> Vec<&str> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// Validates a complete set of overrides (name/value pairs, as AlterConfigs sends them) and
/// returns the map to store. A name given twice or without a value is an `INVALID_REQUEST`, as
/// in Kafka.
pub fn validate_overrides<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut overrides = BTreeMap::new();
    for (name, value) in entries {
        let value = value.ok_or_else(|| {
            ConfigError::request(format!(
                "Null value not supported for topic configs: {name}"
            ))
        })?;
        let value = validate_value(name, value)?;
        if overrides.insert(name.to_string(), value).is_some() {
            return Err(ConfigError::request(format!("Duplicate config key {name}")));
        }
    }
    Ok(overrides)
}

/// An IncrementalAlterConfigs operation (`config_operation` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterOp {
    pub fn from_i8(code: i8) -> Option<AlterOp> {
        match code {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }
}

/// Applies IncrementalAlterConfigs operations to `current` and returns the new override map,
/// or the first refusal; `current` is untouched either way so a failed or validate-only request
/// changes nothing. APPEND/SUBTRACT work on list configs only and start from the current
/// effective value (the override, else the default), as Kafka's `ConfigAdminManager` does.
pub fn apply_incremental<'a>(
    current: &BTreeMap<String, String>,
    ops: impl IntoIterator<Item = (&'a str, AlterOp, Option<&'a str>)>,
    broker: &(impl BrokerConfigLookup + ?Sized),
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = current.clone();
    let mut seen: Vec<&str> = Vec::new();
    for (name, op, value) in ops {
        if seen.contains(&name) {
            return Err(ConfigError::request(format!(
                "Error due to duplicate config keys: {name}"
            )));
        }
        seen.push(name);
        let def = lookup(name)
            .ok_or_else(|| ConfigError::invalid(format!("Unknown topic config name: {name}")))?;
        match op {
            AlterOp::Delete => {
                next.remove(name);
            }
            AlterOp::Set => {
                let value = value.ok_or_else(|| {
                    ConfigError::request(format!("Null value not supported for : {name}"))
                })?;
                next.insert(name.to_string(), validate_value(name, value)?);
            }
            AlterOp::Append | AlterOp::Subtract => {
                if def.config_type != ConfigType::List {
                    return Err(ConfigError::invalid(format!(
                        "Config value append/subtract is not allowed for config key: {name}"
                    )));
                }
                let value = value.ok_or_else(|| {
                    ConfigError::request(format!("Null value not supported for : {name}"))
                })?;
                let base = match next.get(name) {
                    Some(v) => v.clone(),
                    None => effective_value(name, &BTreeMap::new(), broker)
                        .map(|(v, _)| v)
                        .unwrap_or_default(),
                };
                let mut items: Vec<String> =
                    split_list(&base).into_iter().map(str::to_string).collect();
                let changes = split_list(value);
                if op == AlterOp::Append {
                    for item in changes {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    }
                } else {
                    items.retain(|i| !changes.contains(&i.as_str()));
                }
                next.insert(name.to_string(), validate_value(name, &items.join(","))?);
            }
        }
    }
    Ok(next)
}

/// The effective value of topic config `name` and where it comes from: the topic override,
/// else the first broker synonym that is set (converted to the topic's unit), else the
/// definition's default. `None` for an unknown name.
pub fn effective_value(
    name: &str,
    overrides: &BTreeMap<String, String>,
    broker: &(impl BrokerConfigLookup + ?Sized),
) -> Option<(String, ConfigSource)> {
    let def = lookup(name)?;
    if let Some(v) = overrides.get(name) {
        return Some((v.clone(), ConfigSource::DynamicTopicConfig));
    }
    // An explicitly set synonym wins over a defaulted one even if the defaulted one has higher
    // precedence (log.retention.hours=24 set in the file beats the built-in nothing of
    // log.retention.ms), as in Kafka, where unset synonyms have no value at all.
    for explicit in [true, false] {
        for (synonym, unit) in def.synonyms {
            if let Some((value, is_explicit)) = broker.broker_value(synonym) {
                if is_explicit == explicit {
                    if let Some(converted) = convert(&value, *unit) {
                        let source = if explicit {
                            ConfigSource::StaticBrokerConfig
                        } else {
                            ConfigSource::DefaultConfig
                        };
                        return Some((converted, source));
                    }
                }
            }
        }
    }
    Some((def.default.to_string(), ConfigSource::DefaultConfig))
}

fn convert(value: &str, unit: Unit) -> Option<String> {
    match unit {
        Unit::Same => Some(value.to_string()),
        Unit::MinutesToMs => value
            .trim()
            .parse::<i64>()
            .ok()?
            .checked_mul(60_000)
            .map(|v| v.to_string()),
        Unit::HoursToMs => value
            .trim()
            .parse::<i64>()
            .ok()?
            .checked_mul(3_600_000)
            .map(|v| v.to_string()),
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: Option<String>,
    /// `(name, value, source)`, highest precedence first (Kafka's synonyms order).
    pub synonyms: Vec<(String, Option<String>, ConfigSource)>,
}

/// Describes every topic config (or those named in `only`, unknown names skipped as Kafka does)
/// of a topic with `overrides`.
pub fn describe_topic(
    overrides: &BTreeMap<String, String>,
    broker: &(impl BrokerConfigLookup + ?Sized),
    only: Option<&[&str]>,
) -> Vec<DescribedConfig> {
    TOPIC_CONFIGS
        .iter()
        .filter(|def| only.is_none_or(|names| names.contains(&def.name)))
        .map(|def| {
            let (value, source) =
                effective_value(def.name, overrides, broker).unwrap_or_default_for(def);
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((
                    def.name.to_string(),
                    Some(v.clone()),
                    ConfigSource::DynamicTopicConfig,
                ));
            }
            for explicit in [true, false] {
                for (synonym, _) in def.synonyms {
                    if let Some((v, is_explicit)) = broker.broker_value(synonym) {
                        if is_explicit == explicit {
                            let source = if explicit {
                                ConfigSource::StaticBrokerConfig
                            } else {
                                ConfigSource::DefaultConfig
                            };
                            synonyms.push((synonym.to_string(), Some(v), source));
                        }
                    }
                }
            }
            DescribedConfig {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                sensitive: def.config_type == ConfigType::Password,
                config_type: def.config_type,
                documentation: Some(def.documentation.to_string()),
                synonyms,
            }
        })
        .collect()
}

trait OrDefault {
    fn unwrap_or_default_for(self, def: &TopicConfigDef) -> (String, ConfigSource);
}

impl OrDefault for Option<(String, ConfigSource)> {
    fn unwrap_or_default_for(self, def: &TopicConfigDef) -> (String, ConfigSource) {
        self.unwrap_or_else(|| (def.default.to_string(), ConfigSource::DefaultConfig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker values as a test double: (name, value, explicitly set).
    struct Broker(Vec<(&'static str, &'static str, bool)>);

    impl BrokerConfigLookup for Broker {
        fn broker_value(&self, name: &str) -> Option<(String, bool)> {
            self.0
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, v, e)| (v.to_string(), *e))
        }
    }

    fn defaults() -> Broker {
        Broker(vec![
            ("log.retention.hours", "168", false),
            ("message.max.bytes", "1048588", false),
            ("log.segment.bytes", "1073741824", false),
        ])
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
        }
    }

    #[test]
    fn table_matches_the_configs_the_broker_implements() {
        let described: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut implemented: Vec<&str> = crate::topic_config::TOPIC_SETTINGS
            .iter()
            .map(|s| s.name)
            .collect();
        implemented.sort_unstable();
        assert_eq!(described, implemented);
        for def in TOPIC_CONFIGS {
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
    }

    #[test]
    fn create_overrides_refuse_duplicates_and_nulls() {
        assert_eq!(
            validate_overrides([
                ("retention.ms", Some("5")),
                ("cleanup.policy", Some("compact"))
            ],),
            Ok(map(&[("retention.ms", "5"), ("cleanup.policy", "compact")]))
        );
        assert_eq!(
            validate_overrides([("retention.ms", Some("5")), ("retention.ms", Some("6"))],)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            validate_overrides([("retention.ms", None)])
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn incremental_operations() {
        let b = defaults();
        let start = map(&[("retention.ms", "1000")]);
        let next = apply_incremental(
            &start,
            [("cleanup.policy", AlterOp::Append, Some("compact"))],
            &b,
        )
        .unwrap();
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("delete,compact"),
            "APPEND starts from the default"
        );
        let next = apply_incremental(
            &next,
            [("cleanup.policy", AlterOp::Append, Some("compact"))],
            &b,
        )
        .unwrap();
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("delete,compact"),
            "APPEND of a present value"
        );
        let next = apply_incremental(
            &next,
            [("cleanup.policy", AlterOp::Subtract, Some("delete"))],
            &b,
        )
        .unwrap();
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        let next = apply_incremental(
            &next,
            [
                ("retention.ms", AlterOp::Delete, None),
                ("segment.ms", AlterOp::Set, Some("60000")),
            ],
            &b,
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[("cleanup.policy", "compact"), ("segment.ms", "60000")])
        );
        // DELETE of something never set is not an error (Kafka ignores it).
        assert_eq!(
            apply_incremental(&next, [("flush.ms", AlterOp::Delete, None)], &b),
            Ok(next.clone())
        );

        type Ops<'a> = Vec<(&'a str, AlterOp, Option<&'a str>)>;
        let refusals: Vec<(Ops, ErrorCode)> = vec![
            (
                vec![("retention.ms", AlterOp::Append, Some("5"))],
                ErrorCode::InvalidConfig,
            ),
            (
                vec![("retention.ms", AlterOp::Set, Some("x"))],
                ErrorCode::InvalidConfig,
            ),
            (
                vec![("nope", AlterOp::Delete, None)],
                ErrorCode::InvalidConfig,
            ),
            (
                vec![("cleanup.policy", AlterOp::Append, Some("shred"))],
                ErrorCode::InvalidConfig,
            ),
            (
                vec![("retention.ms", AlterOp::Set, None)],
                ErrorCode::InvalidRequest,
            ),
            (
                vec![
                    ("retention.ms", AlterOp::Set, Some("1")),
                    ("retention.ms", AlterOp::Delete, None),
                ],
                ErrorCode::InvalidRequest,
            ),
        ];
        for (ops, code) in refusals {
            assert_eq!(
                apply_incremental(&start, ops.clone(), &b).map_err(|e| e.code),
                Err(code),
                "{ops:?}"
            );
        }
    }

    #[test]
    fn defaults_follow_broker_synonyms() {
        let b = defaults();
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
        // No broker value at all: the definition's default.
        assert_eq!(
            effective_value("cleanup.policy", &BTreeMap::new(), &Broker(vec![])),
            Some(("delete".into(), ConfigSource::DefaultConfig))
        );
        assert_eq!(effective_value("nope", &BTreeMap::new(), &b), None);
    }

    #[test]
    fn describe_lists_synonyms_in_precedence_order() {
        let set = Broker(vec![
            ("log.retention.hours", "168", false),
            ("log.retention.minutes", "30", true),
        ]);
        let described = describe_topic(
            &map(&[("retention.ms", "5")]),
            &set,
            Some(&["retention.ms", "unknown.name"]),
        );
        assert_eq!(described.len(), 1);
        let retention = &described[0];
        assert_eq!(
            (retention.value.as_deref(), retention.source),
            (Some("5"), ConfigSource::DynamicTopicConfig)
        );
        let names: Vec<_> = retention
            .synonyms
            .iter()
            .map(|(n, _, s)| (n.as_str(), *s))
            .collect();
        assert_eq!(
            names,
            vec![
                ("retention.ms", ConfigSource::DynamicTopicConfig),
                ("log.retention.minutes", ConfigSource::StaticBrokerConfig),
                ("log.retention.hours", ConfigSource::DefaultConfig)
            ]
        );
        assert_eq!(
            describe_topic(&BTreeMap::new(), &set, None).len(),
            TOPIC_CONFIGS.len()
        );
    }
}
