//! Dynamic broker configs through the wire (issue 15, point 4 as librdkafka's 0081-admin
//! exercises it): AlterConfigs and IncrementalAlterConfigs on a BROKER resource change what
//! Kafka lets change at run time, the change applies at once (a dynamic `message.max.bytes`
//! refuses the next oversized batch), is described back with its level, and survives a
//! restart; static settings are refused. Raw protocol, real broker.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use potok_protocol::messages::alter_configs_request::{
    AlterConfigsResource as LegacyResource, AlterableConfig as LegacyConfig,
};
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use potok_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use potok_protocol::ApiKey;
use potok_records::{NewRecord, RecordBatchBuilder};

use common::wire::Client;
use common::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUEST: i16 = 42;

fn incremental(c: &mut Client, name: &str, ops: &[(&str, i8, Option<&str>)]) -> i16 {
    let r: IncrementalAlterConfigsResponse = c.call(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: RESOURCE_BROKER,
                resource_name: name.into(),
                configs: ops
                    .iter()
                    .map(|(n, op, v)| AlterableConfig {
                        name: (*n).into(),
                        config_operation: *op,
                        value: v.map(String::from),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.responses[0].error_code
}

/// DescribeConfigs v4 of one resource: name -> (value, source).
fn describe(c: &mut Client, kind: i8, name: &str) -> BTreeMap<String, (Option<String>, i8)> {
    let r: DescribeConfigsResponse = c.call(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: kind,
                resource_name: name.into(),
                configuration_keys: None,
                ..Default::default()
            }],
            include_synonyms: true,
            ..Default::default()
        },
    );
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    r.results[0]
        .configs
        .iter()
        .map(|c| (c.name.clone(), (c.value.clone(), c.config_source)))
        .collect()
}

/// One batch of one record with a `size`-byte value.
fn batch(size: usize) -> Bytes {
    RecordBatchBuilder::new()
        .record(NewRecord {
            value: Some(Bytes::from(vec![b'x'; size])),
            ..Default::default()
        })
        .build()
        .unwrap()
        .into_bytes()
}

fn produce(c: &mut Client, size: usize) -> i16 {
    c.produce("t", 0, batch(size)).responses[0].partition_responses[0].error_code
}

#[test]
fn dynamic_broker_configs_apply_at_once_and_survive_a_restart() {
    let mut broker = Broker::builder().set("node.id", "3").start();
    let mut c = Client::new(&broker);
    c.create_topic("t", 1, &[]);
    assert_eq!(produce(&mut c, 5_000), 0);

    // Exactly what librdkafka's 0081-admin sends (legacy AlterConfigs, this broker's id).
    let r: AlterConfigsResponse = c.call(
        ApiKey::AlterConfigs,
        2,
        &AlterConfigsRequest {
            resources: vec![LegacyResource {
                resource_type: RESOURCE_BROKER,
                resource_name: "3".into(),
                configs: vec![LegacyConfig {
                    name: "sasl.kerberos.min.time.before.relogin".into(),
                    value: Some("58000".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );

    // Enforced at once: the broker-wide default of max.message.bytes.
    assert_eq!(
        incremental(&mut c, "3", &[("message.max.bytes", 0, Some("2000"))]),
        0
    );
    assert_eq!(produce(&mut c, 5_000), MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut c, 100), 0);
    // A cluster-wide default is kept below the per-broker value.
    assert_eq!(
        incremental(&mut c, "", &[("log.retention.ms", 0, Some("86400000"))]),
        0
    );
    // Static settings and other brokers' ids are refused, and change nothing.
    assert_eq!(
        incremental(&mut c, "3", &[("log.dirs", 0, Some("/elsewhere"))]),
        INVALID_REQUEST
    );
    assert_eq!(
        incremental(&mut c, "4", &[("message.max.bytes", 0, Some("1"))]),
        INVALID_REQUEST
    );

    let check = |c: &mut Client| {
        let b = describe(c, RESOURCE_BROKER, "3");
        assert_eq!(
            b["sasl.kerberos.min.time.before.relogin"],
            (Some("58000".into()), DYNAMIC_BROKER_CONFIG)
        );
        assert_eq!(
            b["message.max.bytes"],
            (Some("2000".into()), DYNAMIC_BROKER_CONFIG)
        );
        assert!(b["log.dirs"].0.as_deref() != Some("/elsewhere"));
        let defaults = describe(c, RESOURCE_BROKER, "");
        assert_eq!(
            defaults.into_iter().collect::<Vec<_>>(),
            vec![(
                "log.retention.ms".to_string(),
                (Some("86400000".into()), DYNAMIC_DEFAULT_BROKER_CONFIG)
            )]
        );
        let t = describe(c, RESOURCE_TOPIC, "t");
        assert_eq!(
            t["max.message.bytes"],
            (Some("2000".into()), DYNAMIC_BROKER_CONFIG)
        );
        assert_eq!(
            t["retention.ms"],
            (Some("86400000".into()), DYNAMIC_DEFAULT_BROKER_CONFIG)
        );
    };
    check(&mut c);

    assert!(broker.sigterm().success());
    broker.restart();
    let mut c = Client::new(&broker);
    check(&mut c);
    assert_eq!(produce(&mut c, 5_000), MESSAGE_TOO_LARGE);

    // Deleting the dynamic value returns to the static default at once.
    assert_eq!(
        incremental(&mut c, "3", &[("message.max.bytes", 1, None)]),
        0
    );
    assert_eq!(produce(&mut c, 5_000), 0);
}
