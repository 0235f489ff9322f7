//! Dynamic broker configs through the handlers, against the in-memory backend of `tests.rs`:
//! what Kafka lets change at run time is accepted per broker or as a cluster default, described
//! back with its level, and everything else is refused without a change.

use potok_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use potok_protocol::messages::incremental_alter_configs_request as inc;
use potok_protocol::messages::*;
use potok_protocol::ErrorCode;

use super::tests::{describe, Fake};
use super::*;

fn incremental(fake: &Fake, name: &str, ops: &[(&str, i8, Option<&str>)], only: bool) -> i16 {
    let request = IncrementalAlterConfigsRequest {
        resources: vec![inc::AlterConfigsResource {
            resource_type: RESOURCE_BROKER,
            resource_name: name.into(),
            configs: ops
                .iter()
                .map(|(name, op, value)| inc::AlterableConfig {
                    name: name.to_string(),
                    config_operation: *op,
                    value: value.map(String::from),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        validate_only: only,
        ..Default::default()
    };
    handle_incremental_alter_configs(fake, &request, 1).responses[0].error_code
}

fn legacy(fake: &Fake, name: &str, configs: &[(&str, &str)]) -> i16 {
    let request = AlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: RESOURCE_BROKER,
            resource_name: name.into(),
            configs: configs
                .iter()
                .map(|(n, v)| AlterableConfig {
                    name: n.to_string(),
                    value: Some(v.to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    handle_alter_configs(fake, &request, 2).responses[0].error_code
}

#[test]
fn legacy_alter_configs_sets_a_dynamic_broker_config() {
    // librdkafka's 0081-admin sets exactly this on broker resource "<id>" and expects success.
    let fake = Fake::new(&[]);
    assert_eq!(
        legacy(
            &fake,
            "1",
            &[("sasl.kerberos.min.time.before.relogin", "58000")]
        ),
        0
    );
    let described = describe(&fake, RESOURCE_BROKER, "1", None, 4, true, true);
    let entry = described
        .configs
        .iter()
        .find(|c| c.name == "sasl.kerberos.min.time.before.relogin")
        .expect("a stored dynamic config is described");
    assert_eq!(entry.value.as_deref(), Some("58000"));
    assert_eq!(entry.config_source, ConfigSource::DynamicBrokerConfig as i8);
    assert!(!entry.read_only);
    assert_eq!(entry.config_type, ConfigType::Long as i8);

    // Legacy AlterConfigs replaces the whole per-broker set: an empty set clears it.
    assert_eq!(legacy(&fake, "1", &[]), 0);
    assert!(fake.dynamic_broker_configs().per_broker.is_empty());
}

#[test]
fn static_and_unknown_configs_are_refused_without_change() {
    let fake = Fake::new(&[]);
    for name in ["log.dirs", "listeners", "no.such.config"] {
        assert_eq!(
            incremental(&fake, "1", &[(name, 0, Some("x"))], false),
            ErrorCode::InvalidRequest.code(),
            "{name}"
        );
    }
    // A bad value of a dynamic config, and a per-broker config set as a cluster default.
    assert_eq!(
        incremental(&fake, "1", &[("log.retention.ms", 0, Some("soon"))], false),
        ErrorCode::InvalidConfig.code()
    );
    assert_eq!(
        incremental(
            &fake,
            "",
            &[("sasl.kerberos.min.time.before.relogin", 0, Some("1"))],
            false
        ),
        ErrorCode::InvalidRequest.code()
    );
    // Another broker's id.
    assert_eq!(
        incremental(&fake, "7", &[("log.retention.ms", 0, Some("1"))], false),
        ErrorCode::InvalidRequest.code()
    );
    assert!(
        fake.calls().is_empty(),
        "refusals changed state: {:?}",
        fake.calls()
    );
    assert_eq!(fake.dynamic_broker_configs(), DynamicConfigs::default());
}

#[test]
fn levels_are_described_in_kafka_precedence() {
    let fake = Fake::new(&[("t", 1)]);
    assert_eq!(
        incremental(&fake, "", &[("log.retention.ms", 0, Some("1000"))], false),
        0
    );
    assert_eq!(
        incremental(&fake, "1", &[("log.retention.ms", 0, Some("2000"))], false),
        0
    );
    // The empty name describes only the cluster-wide defaults.
    let defaults = describe(&fake, RESOURCE_BROKER, "", None, 4, true, false);
    assert_eq!(defaults.configs.len(), 1);
    assert_eq!(
        defaults.configs[0].config_source,
        ConfigSource::DynamicDefaultBrokerConfig as i8
    );
    // The topic's retention.ms resolves from the per-broker value, with the default next.
    let topic = describe(
        &fake,
        RESOURCE_TOPIC,
        "t",
        Some(vec!["retention.ms"]),
        4,
        true,
        false,
    );
    let retention = &topic.configs[0];
    assert_eq!(retention.value.as_deref(), Some("2000"));
    assert_eq!(
        retention.config_source,
        ConfigSource::DynamicBrokerConfig as i8
    );
    let synonyms: Vec<_> = retention
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            (
                "log.retention.ms",
                Some("2000"),
                ConfigSource::DynamicBrokerConfig as i8
            ),
            (
                "log.retention.ms",
                Some("1000"),
                ConfigSource::DynamicDefaultBrokerConfig as i8
            ),
            (
                "log.retention.hours",
                Some("168"),
                ConfigSource::DefaultConfig as i8
            ),
        ]
    );
    // DELETE returns to the next level; validate_only changes nothing.
    assert_eq!(
        incremental(&fake, "1", &[("log.retention.ms", 1, None)], true),
        0
    );
    assert_eq!(fake.dynamic_broker_configs().per_broker.len(), 1);
    assert_eq!(
        incremental(&fake, "1", &[("log.retention.ms", 1, None)], false),
        0
    );
    let topic = describe(
        &fake,
        RESOURCE_TOPIC,
        "t",
        Some(vec!["retention.ms"]),
        4,
        false,
        false,
    );
    assert_eq!(topic.configs[0].value.as_deref(), Some("1000"));
}

#[test]
fn append_and_subtract_work_on_list_configs_only() {
    let fake = Fake::new(&[]);
    let rules = "sasl.kerberos.principal.to.local.rules";
    assert_eq!(incremental(&fake, "1", &[(rules, 0, Some("A"))], false), 0);
    assert_eq!(
        incremental(&fake, "1", &[(rules, 2, Some("B,A"))], false),
        0
    );
    assert_eq!(fake.dynamic_broker_configs().per_broker[rules], "A,B");
    assert_eq!(incremental(&fake, "1", &[(rules, 3, Some("A"))], false), 0);
    assert_eq!(fake.dynamic_broker_configs().per_broker[rules], "B");
    assert_eq!(
        incremental(
            &fake,
            "1",
            &[("sasl.kerberos.min.time.before.relogin", 2, Some("1"))],
            false
        ),
        ErrorCode::InvalidConfig.code()
    );
}
