//! Unit tests of the topic config table, validation and resolution.

use super::*;

/// Broker values as a test double: (name, value, explicitly set).
pub(crate) struct Broker(pub(crate) Vec<(&'static str, &'static str, bool)>);

impl BrokerConfigLookup for Broker {
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String> {
        let explicit = match level {
            ConfigSource::StaticBrokerConfig => true,
            ConfigSource::DefaultConfig => false,
            _ => return None,
        };
        self.0
            .iter()
            .find(|(n, _, e)| *n == name && *e == explicit)
            .map(|(_, v, _)| v.to_string())
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
        ("compression.type", "GZIP"),
        ("compression.type", "brotli"),
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.zstd.level", "23"),
        ("compression.lz4.level", "0"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "-0.1"),
        ("min.cleanable.dirty.ratio", "NaN"),
        ("preallocate", "yes"),
        ("remote.storage.enable", "true"),
        ("local.retention.ms", "-3"),
        ("leader.replication.throttled.replicas", "0:x"),
        ("leader.replication.throttled.replicas", "*,0:1"),
        ("follower.replication.throttled.replicas", "0:1,,1:1"),
        ("max.compaction.lag.ms", "0"),
        // Removed in Kafka 4.0 (KIP-724, KIP-937): unknown, as in 4.x.
        ("message.downconversion.enable", "true"),
        ("message.timestamp.difference.max.ms", "1000"),
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
            effective_value("retention.ms", &BTreeMap::new(), &broker(&[(name, value)])).unwrap();
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

#[test]
fn kafka_4_configs_accept_their_valid_values() {
    for (name, value, stored) in [
        ("compression.type", "zstd", "zstd"),
        ("compression.gzip.level", "-1", "-1"),
        ("compression.gzip.level", "9", "9"),
        ("compression.zstd.level", "-131072", "-131072"),
        ("min.cleanable.dirty.ratio", " 0.25 ", "0.25"),
        ("preallocate", "TRUE", "true"),
        ("remote.storage.enable", "False", "false"),
        ("leader.replication.throttled.replicas", "*", "*"),
        (
            "follower.replication.throttled.replicas",
            "0:1, 1:1,",
            "0:1,1:1,",
        ),
        ("follower.replication.throttled.replicas", "", ""),
        ("local.retention.bytes", "-2", "-2"),
        ("remote.copy.lag.ms", "-1", "-1"),
        ("message.timestamp.after.max.ms", "0", "0"),
    ] {
        assert_eq!(
            validate_value(name, value).as_deref(),
            Ok(stored),
            "{name}={value}"
        );
    }
    assert_eq!(
        validate_value("remote.storage.enable", "true")
            .unwrap_err()
            .message,
        "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
    );
}

#[test]
fn message_format_version_is_accepted_and_dropped() {
    assert!(is_ignored_legacy_config("message.format.version"));
    assert_eq!(
        normalize_overrides(&map(&[
            ("message.format.version", "2.8-IV1"),
            ("retention.ms", "5")
        ])),
        Ok(map(&[("retention.ms", "5")]))
    );
    assert!(normalize_overrides(&map(&[("message.format.version", "0.10.2")])).is_ok());
    // Kafka 3.x reads only the first three segments of a 0.x version (librdkafka's 0092).
    assert!(normalize_overrides(&map(&[("message.format.version", "0.10.0.0")])).is_ok());
    assert!(normalize_overrides(&map(&[("message.format.version", "2.8.1")])).is_ok());
    for bad in ["2.8.1.0", "0.10.0.0.0", "1", "0.x.1"] {
        assert!(
            normalize_overrides(&map(&[("message.format.version", bad)])).is_err(),
            "{bad} was accepted"
        );
    }
    assert_eq!(
        normalize_overrides(&map(&[("message.format.version", "latest")]))
            .unwrap_err()
            .code,
        ErrorCode::InvalidConfig
    );
}

#[test]
fn compression_and_compaction_lags_resolve() {
    let d = TopicDefaults::from_broker(&BrokerConfig::defaults()).unwrap();
    assert_eq!(d.effective(&BTreeMap::new()).unwrap().compression, None);
    let e = d
        .effective(&map(&[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "7"),
        ]))
        .unwrap();
    assert_eq!(e.compression, Some((Compression::Zstd, Some(7))));
    let e = d.effective(&map(&[("compression.type", "gzip")])).unwrap();
    assert_eq!(e.compression, Some((Compression::Gzip, None)));
    let e = d
        .effective(&map(&[("compression.type", "uncompressed")]))
        .unwrap();
    assert_eq!(e.compression, Some((Compression::None, None)));
    let broker_wide = TopicDefaults::from_broker(&broker(&[("compression.type", "lz4")])).unwrap();
    assert_eq!(
        broker_wide.effective(&BTreeMap::new()).unwrap().compression,
        Some((Compression::Lz4, None))
    );
    let e = d
        .effective(&map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]))
        .unwrap_err();
    assert_eq!(
        e.message,
        "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
    );
}
