//! Handler tests against an in-memory [`AdminBackend`]: every refusal, validate_only, the
//! version-dependent response shapes and DescribeTopicPartitions paging.

use std::collections::BTreeMap;
use std::sync::Mutex;

use potok_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use potok_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use potok_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use potok_protocol::messages::delete_topics_request::DeleteTopicState;
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use potok_protocol::messages::incremental_alter_configs_request as inc;
use potok_protocol::messages::*;
use potok_protocol::{Encode, ErrorCode, Uuid};

use super::*;

pub(super) struct Fake {
    topics: Mutex<BTreeMap<String, TopicInfo>>,
    /// (topic, partition) -> (log start, high watermark)
    offsets: Mutex<BTreeMap<(String, i32), (i64, i64)>>,
    calls: Mutex<Vec<String>>,
    dynamic: Mutex<DynamicConfigs>,
}

impl Fake {
    pub(super) fn new(topics: &[(&str, i32)]) -> Fake {
        let fake = Fake {
            topics: Mutex::new(BTreeMap::new()),
            offsets: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
            dynamic: Mutex::new(DynamicConfigs::default()),
        };
        for (i, (name, parts)) in topics.iter().enumerate() {
            let mut id = [0u8; 16];
            id[15] = i as u8 + 1;
            fake.topics.lock().unwrap().insert(
                name.to_string(),
                TopicInfo {
                    name: name.to_string(),
                    id: Uuid(id),
                    leader_epochs: vec![0; *parts as usize],
                    overrides: BTreeMap::new(),
                    internal: crate::internal_topics::is_internal(name),
                    replication: None,
                },
            );
            for p in 0..*parts {
                fake.offsets
                    .lock()
                    .unwrap()
                    .insert((name.to_string(), p), (0, 10));
            }
        }
        fake
    }

    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn overrides(&self, topic: &str) -> BTreeMap<String, String> {
        self.topics.lock().unwrap()[topic].overrides.clone()
    }
}

impl BrokerConfigLookup for Fake {
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String> {
        let dynamic = self.dynamic.lock().unwrap();
        match level {
            ConfigSource::DynamicBrokerConfig => return dynamic.per_broker.get(name).cloned(),
            ConfigSource::DynamicDefaultBrokerConfig => {
                return dynamic.cluster_default.get(name).cloned()
            }
            _ => {}
        }
        let (value, explicit) = match name {
            "log.retention.hours" => ("168", false),
            "message.max.bytes" => ("1048588", false),
            "log.dirs" => ("/data", true),
            _ => return None,
        };
        let at = if explicit {
            ConfigSource::StaticBrokerConfig
        } else {
            ConfigSource::DefaultConfig
        };
        (at == level).then(|| value.to_string())
    }
}

impl AdminBackend for Fake {
    fn node_id(&self) -> i32 {
        1
    }
    fn cluster_id(&self) -> String {
        "cluster-x".into()
    }
    fn advertised_endpoint(&self) -> (String, i32) {
        ("127.0.0.1".into(), 9092)
    }
    fn topics(&self) -> Vec<TopicInfo> {
        self.topics.lock().unwrap().values().cloned().collect()
    }
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo> {
        self.topics.lock().unwrap().get(name).cloned()
    }
    fn topic_by_id(&self, id: Uuid) -> Option<TopicInfo> {
        self.topics
            .lock()
            .unwrap()
            .values()
            .find(|t| t.id == id)
            .cloned()
    }
    fn broker_configs(&self) -> Vec<BrokerConfigEntry> {
        vec![
            BrokerConfigEntry {
                name: "log.dirs".into(),
                value: Some("/data".into()),
                explicit: true,
                sensitive: false,
                config_type: ConfigType::String,
                documentation: "dirs".into(),
            },
            BrokerConfigEntry {
                name: "ssl.key.password".into(),
                value: Some("secret".into()),
                explicit: true,
                sensitive: true,
                config_type: ConfigType::Password,
                documentation: "pw".into(),
            },
        ]
    }
    fn partition_count(&self) -> usize {
        self.topics
            .lock()
            .unwrap()
            .values()
            .map(|t| t.leader_epochs.len())
            .sum()
    }
    fn max_partitions(&self) -> i64 {
        50
    }
    fn delete_topic(&self, name: &str) -> Result<(), ApiError> {
        self.calls.lock().unwrap().push(format!("delete {name}"));
        self.topics
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| ApiError::new(ErrorCode::UnknownTopicOrPartition, "gone"))
    }
    fn create_partitions(&self, name: &str, new_total: i32) -> Result<(), ApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("partitions {name} {new_total}"));
        self.topics
            .lock()
            .unwrap()
            .get_mut(name)
            .unwrap()
            .leader_epochs
            .resize(new_total as usize, 0);
        Ok(())
    }
    fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        self.calls.lock().unwrap().push(format!("configs {name}"));
        self.topics.lock().unwrap().get_mut(name).unwrap().overrides = overrides;
        Ok(())
    }
    fn dynamic_broker_configs(&self) -> DynamicConfigs {
        self.dynamic.lock().unwrap().clone()
    }
    fn set_dynamic_broker_configs(
        &self,
        cluster_default: bool,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        if validate_only {
            return Ok(());
        }
        self.calls
            .lock()
            .unwrap()
            .push(format!("broker configs default={cluster_default}"));
        let mut dynamic = self.dynamic.lock().unwrap();
        if cluster_default {
            dynamic.cluster_default = configs;
        } else {
            dynamic.per_broker = configs;
        }
        Ok(())
    }
    fn delete_records(&self, name: &str, partition: i32, offset: i64) -> Result<i64, ApiError> {
        let mut offsets = self.offsets.lock().unwrap();
        let entry = offsets.get_mut(&(name.to_string(), partition)).unwrap();
        let offset = if offset == -1 { entry.1 } else { offset };
        if offset > entry.1 {
            return Err(ApiError::new(ErrorCode::OffsetOutOfRange, "beyond hw"));
        }
        entry.0 = entry.0.max(offset);
        Ok(entry.0)
    }
}

/// Every response must encode at every version it can be asked for.
fn encodes<T: Encode>(message: &T, versions: std::ops::RangeInclusive<i16>) {
    for v in versions {
        let mut buf = bytes::BytesMut::new();
        message
            .encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("encode at v{v}: {e:?}"));
    }
}

#[test]
fn delete_topics_by_name_and_id() {
    let fake = Fake::new(&[("a", 1), ("b", 2), ("c", 1)]);
    let b_id = fake.topic_by_name("b").unwrap().id;
    let request = DeleteTopicsRequest {
        topic_names: vec!["a".into(), "nope".into(), "c".into(), "c".into()],
        ..Default::default()
    };
    let response = handle_delete_topics(&fake, &request, 5);
    let codes: Vec<_> = response
        .responses
        .iter()
        .map(|r| (r.name.clone().unwrap(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("a".into(), 0),
            ("nope".into(), ErrorCode::UnknownTopicOrPartition.code()),
            ("c".into(), ErrorCode::InvalidRequest.code()),
            ("c".into(), ErrorCode::InvalidRequest.code())
        ]
    );
    encodes(&response, 0..=5);

    let request = DeleteTopicsRequest {
        topics: vec![
            DeleteTopicState {
                name: None,
                topic_id: b_id,
                ..Default::default()
            },
            DeleteTopicState {
                name: None,
                topic_id: Uuid([9; 16]),
                ..Default::default()
            },
            DeleteTopicState {
                name: None,
                topic_id: Uuid::ZERO,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let response = handle_delete_topics(&fake, &request, 6);
    assert_eq!(response.responses[0].name.as_deref(), Some("b"));
    assert_eq!(response.responses[0].topic_id, b_id);
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(
        response.responses[1].error_code,
        ErrorCode::UnknownTopicId.code()
    );
    assert_eq!(
        response.responses[2].error_code,
        ErrorCode::InvalidRequest.code()
    );
    encodes(&response, 6..=6);
    assert_eq!(fake.calls(), vec!["delete a", "delete b"]);
    assert!(fake.topics().iter().all(|t| t.name == "c"));
}

#[test]
fn create_partitions_increase_only() {
    let fake = Fake::new(&[("t", 3)]);
    let topic = |name: &str, count| CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments: None,
        ..Default::default()
    };
    let run = |topics: Vec<CreatePartitionsTopic>, validate_only| {
        let request = CreatePartitionsRequest {
            topics,
            validate_only,
            timeout_ms: 1000,
            ..Default::default()
        };
        let response = handle_create_partitions(&fake, &request, 3);
        encodes(&response, 0..=3);
        response
            .results
            .into_iter()
            .map(|r| r.error_code)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(vec![topic("t", 2)], false),
        vec![ErrorCode::InvalidPartitions.code()]
    );
    assert_eq!(
        run(vec![topic("t", 3)], false),
        vec![ErrorCode::InvalidPartitions.code()]
    );
    assert_eq!(
        run(vec![topic("t", i32::MAX)], false),
        vec![ErrorCode::InvalidPartitions.code()]
    );
    assert_eq!(
        run(vec![topic("x", 5)], false),
        vec![ErrorCode::UnknownTopicOrPartition.code()]
    );
    assert_eq!(
        run(vec![topic("t", 5), topic("t", 6)], false),
        vec![ErrorCode::InvalidRequest.code(); 2]
    );
    assert_eq!(run(vec![topic("t", 5)], true), vec![0]);
    assert!(
        fake.calls().is_empty(),
        "refusals and validate_only change nothing: {:?}",
        fake.calls()
    );
    let mut assigned = topic("t", 5);
    assigned.assignments = Some(vec![
        CreatePartitionsAssignment {
            broker_ids: vec![2],
            ..Default::default()
        };
        2
    ]);
    assert_eq!(
        run(vec![assigned.clone()], false),
        vec![ErrorCode::InvalidReplicaAssignment.code()]
    );
    assigned.assignments = Some(vec![CreatePartitionsAssignment {
        broker_ids: vec![1],
        ..Default::default()
    }]);
    assert_eq!(
        run(vec![assigned.clone()], false),
        vec![ErrorCode::InvalidReplicaAssignment.code()]
    );
    assigned.assignments = Some(vec![
        CreatePartitionsAssignment {
            broker_ids: vec![1],
            ..Default::default()
        };
        2
    ]);
    assert_eq!(run(vec![assigned], false), vec![0]);
    assert_eq!(fake.calls(), vec!["partitions t 5"]);
    assert_eq!(fake.topic_by_name("t").unwrap().leader_epochs.len(), 5);
}

#[test]
fn delete_records_results() {
    let fake = Fake::new(&[("t", 2)]);
    let part = |partition_index, offset| DeleteRecordsPartition {
        partition_index,
        offset,
        ..Default::default()
    };
    let request = DeleteRecordsRequest {
        topics: vec![
            DeleteRecordsTopic {
                name: "t".into(),
                partitions: vec![part(0, 4), part(1, 11), part(2, 1), part(0, -2)],
                ..Default::default()
            },
            DeleteRecordsTopic {
                name: "nope".into(),
                partitions: vec![part(0, 1)],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let response = handle_delete_records(&fake, &request, 2);
    encodes(&response, 0..=2);
    let got: Vec<_> = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.low_watermark, p.error_code)))
        .collect();
    assert_eq!(
        got,
        vec![
            (4, 0),
            (-1, ErrorCode::OffsetOutOfRange.code()),
            (-1, ErrorCode::UnknownTopicOrPartition.code()),
            (-1, ErrorCode::OffsetOutOfRange.code()),
            (-1, ErrorCode::UnknownTopicOrPartition.code())
        ]
    );
    let request = DeleteRecordsRequest {
        topics: vec![DeleteRecordsTopic {
            name: "t".into(),
            partitions: vec![part(1, -1)],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        handle_delete_records(&fake, &request, 2).topics[0].partitions[0].low_watermark,
        10
    );
}

#[test]
fn describe_cluster_shapes() {
    let fake = Fake::new(&[]);
    let request = DescribeClusterRequest {
        include_cluster_authorized_operations: true,
        endpoint_type: 1,
        ..Default::default()
    };
    let response = handle_describe_cluster(&fake, &request, 1);
    assert_eq!(response.error_code, 0);
    assert_eq!(
        (response.controller_id, response.cluster_id.as_str()),
        (1, "cluster-x")
    );
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(
        (response.brokers[0].host.as_str(), response.brokers[0].port),
        ("127.0.0.1", 9092)
    );
    assert_eq!(response.cluster_authorized_operations, CLUSTER_OPERATIONS);
    encodes(&response, 0..=1);
    let controllers = DescribeClusterRequest {
        endpoint_type: 2,
        ..Default::default()
    };
    assert_eq!(
        handle_describe_cluster(&fake, &controllers, 1).error_code,
        ErrorCode::UnsupportedEndpointType.code()
    );
    let plain = DescribeClusterRequest::default();
    assert_eq!(
        handle_describe_cluster(&fake, &plain, 0).cluster_authorized_operations,
        OPERATIONS_NOT_REQUESTED
    );
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    let fake = Fake::new(&[("b", 5), ("a", 1), ("c", 2)]);
    let mut request = DescribeTopicPartitionsRequest {
        topics: vec![
            TopicRequest {
                name: "c".into(),
                ..Default::default()
            },
            TopicRequest {
                name: "b".into(),
                ..Default::default()
            },
            TopicRequest {
                name: "zz".into(),
                ..Default::default()
            },
        ],
        response_partition_limit: 3,
        cursor: None,
        ..Default::default()
    };
    let mut pages = Vec::new();
    loop {
        let response = handle_describe_topic_partitions(&fake, &request, 0);
        encodes(&response, 0..=0);
        let page: Vec<(String, Vec<i32>, i16)> = response
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.clone().unwrap(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                    t.error_code,
                )
            })
            .collect();
        pages.push(page);
        match response.next_cursor {
            Some(c) => {
                request.cursor = Some(Cursor {
                    topic_name: c.topic_name,
                    partition_index: c.partition_index,
                    ..Default::default()
                })
            }
            None => break,
        }
        assert!(pages.len() < 10);
    }
    assert_eq!(
        pages,
        vec![
            vec![("b".to_string(), vec![0, 1, 2], 0)],
            vec![
                ("b".to_string(), vec![3, 4], 0),
                ("c".to_string(), vec![0], 0)
            ],
            vec![
                ("c".to_string(), vec![1], 0),
                (
                    "zz".to_string(),
                    vec![],
                    ErrorCode::UnknownTopicOrPartition.code()
                )
            ],
        ]
    );
    // An empty topic list means all topics; a budget that ends exactly at a topic's end points
    // the cursor at the next topic's first partition.
    let all = DescribeTopicPartitionsRequest {
        topics: vec![],
        response_partition_limit: 1,
        cursor: None,
        ..Default::default()
    };
    let response = handle_describe_topic_partitions(&fake, &all, 0);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.as_deref(), Some("a"));
    let cursor = response.next_cursor.unwrap();
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("b", 0)
    );
}

pub(super) fn describe(
    fake: &Fake,
    resource_type: i8,
    name: &str,
    keys: Option<Vec<&str>>,
    version: i16,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest {
        resources: vec![DescribeConfigsResource {
            resource_type,
            resource_name: name.into(),
            configuration_keys: keys.map(|k| k.into_iter().map(String::from).collect()),
            ..Default::default()
        }],
        include_synonyms: synonyms,
        include_documentation: docs,
        ..Default::default()
    };
    let response = handle_describe_configs(fake, &request, version);
    encodes(&response, version..=version);
    response.results.into_iter().next().unwrap()
}

#[test]
fn describe_configs_by_version() {
    let fake = Fake::new(&[("t", 1)]);
    fake.set_topic_overrides("t", [("retention.ms".to_string(), "5".to_string())].into())
        .unwrap();
    let v0 = describe(
        &fake,
        RESOURCE_TOPIC,
        "t",
        Some(vec!["retention.ms", "cleanup.policy"]),
        0,
        false,
        false,
    );
    assert_eq!(v0.error_code, 0);
    let by_name: BTreeMap<_, _> = v0.configs.iter().map(|c| (c.name.as_str(), c)).collect();
    assert_eq!(by_name.len(), 2);
    assert!(!by_name["retention.ms"].is_default);
    assert!(by_name["cleanup.policy"].is_default);

    let v4 = describe(&fake, RESOURCE_TOPIC, "t", None, 4, true, true);
    let retention = v4
        .configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("5"));
    assert_eq!(
        retention.config_source,
        ConfigSource::DynamicTopicConfig as i8
    );
    assert_eq!(retention.config_type, ConfigType::Long as i8);
    assert!(retention
        .documentation
        .as_deref()
        .is_some_and(|d| !d.is_empty()));
    let synonyms: Vec<_> = retention.synonyms.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(synonyms, vec!["retention.ms", "log.retention.hours"]);
    let no_extras = describe(&fake, RESOURCE_TOPIC, "t", None, 4, false, false);
    assert!(no_extras
        .configs
        .iter()
        .all(|c| c.synonyms.is_empty() && c.documentation.is_none()));

    assert_eq!(
        describe(&fake, RESOURCE_TOPIC, "nope", None, 4, false, false).error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        describe(&fake, 8, "1", None, 4, false, false).error_code,
        ErrorCode::InvalidRequest.code()
    );

    let broker = describe(&fake, RESOURCE_BROKER, "1", None, 4, true, true);
    assert_eq!(broker.error_code, 0);
    let dirs = broker
        .configs
        .iter()
        .find(|c| c.name == "log.dirs")
        .unwrap();
    assert!(dirs.read_only);
    assert_eq!(dirs.config_source, ConfigSource::StaticBrokerConfig as i8);
    let password = broker
        .configs
        .iter()
        .find(|c| c.name == "ssl.key.password")
        .unwrap();
    // Kafka lists a sensitive config's synonyms with their sources but never their values.
    assert!(password.is_sensitive && password.value.is_none());
    assert!(password.synonyms.iter().all(|s| s.value.is_none()));
    assert_eq!(
        describe(&fake, RESOURCE_BROKER, "2", None, 4, false, false).error_code,
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(
        describe(&fake, RESOURCE_BROKER, "", None, 4, false, false)
            .configs
            .len(),
        0
    );
}

fn incremental(
    fake: &Fake,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> i16 {
    let request = IncrementalAlterConfigsRequest {
        resources: vec![inc::AlterConfigsResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: topic.into(),
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
        validate_only,
        ..Default::default()
    };
    let response = handle_incremental_alter_configs(fake, &request, 1);
    encodes(&response, 0..=1);
    response.responses[0].error_code
}

#[test]
fn incremental_alter_configs_semantics() {
    let fake = Fake::new(&[("t", 1)]);
    assert_eq!(
        incremental(&fake, "t", &[("retention.ms", 0, Some("100"))], true),
        0
    );
    assert!(fake.calls().is_empty(), "validate_only changed state");
    assert_eq!(
        incremental(
            &fake,
            "t",
            &[
                ("retention.ms", 0, Some("100")),
                ("cleanup.policy", 2, Some("compact"))
            ],
            false
        ),
        0
    );
    assert_eq!(
        fake.overrides("t"),
        [
            ("cleanup.policy".to_string(), "delete,compact".to_string()),
            ("retention.ms".to_string(), "100".to_string())
        ]
        .into()
    );
    assert_eq!(
        incremental(&fake, "t", &[("retention.ms", 0, Some("x"))], false),
        ErrorCode::InvalidConfig.code()
    );
    assert_eq!(
        incremental(&fake, "t", &[("retention.ms", 7, Some("1"))], false),
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(
        incremental(&fake, "nope", &[("retention.ms", 0, Some("1"))], false),
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        fake.calls().len(),
        1,
        "refusals changed state: {:?}",
        fake.calls()
    );
    assert_eq!(
        incremental(&fake, "t", &[("retention.ms", 1, None)], false),
        0
    );
    assert_eq!(
        fake.overrides("t"),
        [("cleanup.policy".to_string(), "delete,compact".to_string())].into()
    );
}

#[test]
fn legacy_alter_configs_replaces_overrides() {
    let fake = Fake::new(&[("t", 1)]);
    fake.set_topic_overrides(
        "t",
        [("cleanup.policy".to_string(), "compact".to_string())].into(),
    )
    .unwrap();
    let alter = |configs: Vec<(&str, Option<&str>)>, validate_only| {
        let request = AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: "t".into(),
                configs: configs
                    .into_iter()
                    .map(|(n, v)| AlterableConfig {
                        name: n.into(),
                        value: v.map(String::from),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            validate_only,
            ..Default::default()
        };
        let response = handle_alter_configs(&fake, &request, 2);
        encodes(&response, 0..=2);
        response.responses[0].error_code
    };
    assert_eq!(alter(vec![("retention.ms", Some("100"))], true), 0);
    assert_eq!(
        fake.overrides("t"),
        [("cleanup.policy".to_string(), "compact".to_string())].into()
    );
    assert_eq!(
        alter(vec![("segment.bytes", Some("-5"))], false),
        ErrorCode::InvalidConfig.code()
    );
    assert_eq!(
        alter(vec![("retention.ms", None)], false),
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(alter(vec![("retention.ms", Some("100"))], false), 0);
    assert_eq!(
        fake.overrides("t"),
        [("retention.ms".to_string(), "100".to_string())].into()
    );
}

#[test]
fn both_alter_apis_refuse_every_entry_of_a_duplicated_resource() {
    let fake = Fake::new(&[("t", 1), ("u", 1)]);
    let legacy = |name: &str| AlterConfigsResource {
        resource_type: RESOURCE_TOPIC,
        resource_name: name.into(),
        configs: vec![AlterableConfig {
            name: "retention.ms".into(),
            value: Some("100".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = handle_alter_configs(
        &fake,
        &AlterConfigsRequest {
            resources: vec![legacy("t"), legacy("u"), legacy("t")],
            ..Default::default()
        },
        2,
    );
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    let refused = ErrorCode::InvalidRequest.code();
    assert_eq!(codes, [refused, 0, refused]);
    let incremental = |name: &str| inc::AlterConfigsResource {
        resource_type: RESOURCE_TOPIC,
        resource_name: name.into(),
        configs: vec![inc::AlterableConfig {
            name: "segment.ms".into(),
            config_operation: 0,
            value: Some("1000".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = handle_incremental_alter_configs(
        &fake,
        &IncrementalAlterConfigsRequest {
            resources: vec![incremental("u"), incremental("t"), incremental("u")],
            ..Default::default()
        },
        1,
    );
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [refused, 0, refused]);
    assert_eq!(
        fake.calls(),
        ["configs u", "configs t"],
        "only the resources named once changed"
    );
    assert_eq!(
        fake.overrides("t"),
        [("segment.ms".to_string(), "1000".to_string())].into()
    );
}
