//! The pure logic of DescribeConfigs / AlterConfigs / IncrementalAlterConfigs on a topic's
//! override map, over the table of topic configs in [`crate::topic_config`].
//!
//! Nothing here touches the network, the disk or shared state, so the handlers can validate a
//! whole request before changing anything and unit tests can cover the rules exhaustively.

use std::collections::BTreeMap;

use crate::topic_config::{
    effective_value, is_ignored_legacy_config, lookup, split_list, validate_ignored_legacy,
    validate_value, BrokerConfigLookup, ConfigError, ConfigSource, ConfigType, TOPIC_CONFIGS,
};

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
        if is_ignored_legacy_config(name) {
            // Accepted and ignored, as Kafka 3.x did (see topic_config::MESSAGE_FORMAT_VERSION).
            validate_ignored_legacy(name, value)?;
            continue;
        }
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
        if is_ignored_legacy_config(name) {
            // Accepted and ignored, as Kafka 3.x did (see topic_config::MESSAGE_FORMAT_VERSION).
            if let (AlterOp::Set, Some(v)) = (op, value) {
                validate_ignored_legacy(name, v)?;
            }
            continue;
        }
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
                next.insert(
                    name.to_string(),
                    validate_value(name, &append_or_subtract(&base, op, value))?,
                );
            }
        }
    }
    Ok(next)
}

/// APPEND (items not yet in `base` added at the end) or SUBTRACT (items removed) of the
/// comma-separated `value` on the list `base`, as Kafka's `ConfigAdminManager` applies them to
/// a list config; the result is comma-separated again.
pub(crate) fn append_or_subtract(base: &str, op: AlterOp, value: &str) -> String {
    let mut items: Vec<&str> = split_list(base);
    let changes = split_list(value);
    if op == AlterOp::Append {
        for item in changes {
            if !items.contains(&item) {
                items.push(item);
            }
        }
    } else {
        items.retain(|i| !changes.contains(i));
    }
    items.join(",")
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
            let (value, source) = def.resolve(overrides, broker);
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((
                    def.name.to_string(),
                    Some(v.clone()),
                    ConfigSource::DynamicTopicConfig,
                ));
            }
            synonyms.extend(
                def.broker_synonyms(broker)
                    .into_iter()
                    .map(|(name, value, source)| (name.to_string(), Some(value), source)),
            );
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

#[cfg(test)]
mod tests {
    use potok_protocol::ErrorCode;

    use super::*;
    use crate::topic_config::tests::{map, Broker};

    fn defaults() -> Broker {
        Broker(vec![
            ("log.retention.hours", "168", false),
            ("message.max.bytes", "1048588", false),
            ("log.segment.bytes", "1073741824", false),
        ])
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
