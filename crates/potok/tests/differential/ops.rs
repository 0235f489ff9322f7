//! The client operations scenarios are written in: one method per Kafka request, at one fixed
//! version both brokers serve, recording the whole answer; plus unrecorded set-up (topics with
//! records, a stable group) and the waits Kafka needs after metadata changes.

use bytes::{BufMut, Bytes, BytesMut};
use potok_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use potok_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use potok_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use potok_protocol::messages::delete_topics_request::DeleteTopicState;
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use potok_protocol::messages::leave_group_request::MemberIdentity;
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::metadata_request::MetadataRequestTopic;
use potok_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use potok_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use potok_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use potok_protocol::messages::*;
use potok_protocol::messages::{
    alter_configs_request as ac, incremental_alter_configs_request as iac,
};
use potok_protocol::{ApiKey, Encode, Uuid};
use potok_records::RecordBatchBuilder;

use crate::session::Session;

/// Config resource types (`ConfigResource.Type`).
pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

/// IncrementalAlterConfigs operations (`AlterConfigOp.OpType`).
pub const SET: i8 = 0;
pub const DELETE: i8 = 1;
pub const APPEND: i8 = 2;
pub const SUBTRACT: i8 = 3;

/// ListOffsets special timestamps (`ListOffsetsRequest`).
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;

/// A topic of a CreateTopics request.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    partitions: i32,
    rf: i16,
    configs: Vec<(String, Option<String>)>,
    assignments: Vec<(i32, Vec<i32>)>,
}

/// `name` with `partitions` partitions and the default replication factor.
pub fn topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        partitions,
        rf: -1,
        configs: Vec::new(),
        assignments: Vec::new(),
    }
}

impl NewTopic {
    pub fn rf(mut self, rf: i16) -> Self {
        self.rf = rf;
        self
    }
    pub fn config(mut self, k: &str, v: &str) -> Self {
        self.configs.push((k.into(), Some(v.into())));
        self
    }
    pub fn null_config(mut self, k: &str) -> Self {
        self.configs.push((k.into(), None));
        self
    }
    pub fn assign(mut self, partition: i32, brokers: &[i32]) -> Self {
        self.assignments.push((partition, brokers.to_vec()));
        self
    }
    fn wire(&self) -> CreatableTopic {
        CreatableTopic {
            name: self.name.clone(),
            num_partitions: self.partitions,
            replication_factor: self.rf,
            assignments: self
                .assignments
                .iter()
                .map(|(p, b)| CreatableReplicaAssignment {
                    partition_index: *p,
                    broker_ids: b.clone(),
                    ..Default::default()
                })
                .collect(),
            configs: self
                .configs
                .iter()
                .map(|(k, v)| CreatableTopicConfig {
                    name: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// One batch of records with key `k` and the given (timestamp, value) pairs.
pub fn batch(records: &[(i64, &[u8])]) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for (ts, v) in records {
        b = b.key_value(*ts, Some(b"k"), Some(v));
    }
    b.build().unwrap().into_bytes()
}

/// `n` records of 10 bytes with timestamps 1000, 1001, ... in one batch.
pub fn records(n: usize) -> Bytes {
    let v = [b'v'; 10];
    let r: Vec<(i64, &[u8])> = (0..n).map(|i| (1000 + i as i64, &v[..])).collect();
    batch(&r)
}

/// Kafka's consumer protocol bytes (version 0 and the message): the subscription and
/// assignment a Java consumer sends, which the coordinator reads for OffsetDelete.
pub fn subscription(topics: &[&str]) -> Bytes {
    let s = ConsumerProtocolSubscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    versioned(&s)
}

pub fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    use potok_protocol::messages::consumer_protocol_assignment::TopicPartition;
    let a = ConsumerProtocolAssignment {
        assigned_partitions: vec![TopicPartition {
            topic: topic.into(),
            partitions: partitions.to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    versioned(&a)
}

fn versioned<M: Encode>(m: &M) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    m.encode(&mut b, 0).unwrap();
    b.freeze()
}

impl Session {
    // ---- topics -------------------------------------------------------------------------

    /// CreateTopics v7; waits until every created topic is served (not for validate_only).
    pub fn create_topics(
        &mut self,
        label: &str,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Option<CreateTopicsResponse> {
        let req = CreateTopicsRequest {
            topics: topics.iter().map(NewTopic::wire).collect(),
            timeout_ms: 30_000,
            validate_only,
            ..Default::default()
        };
        self.send(0, ApiKey::CreateTopics, 7, &req);
        // Kafka answers invalid names before the others; the order is not part of the contract.
        let r = self.recv_with(
            0,
            label,
            ApiKey::CreateTopics,
            7,
            |r: &mut CreateTopicsResponse| r.topics.sort_by(|a, b| a.name.cmp(&b.name)),
        );
        if let (Some(r), false) = (&r, validate_only) {
            for t in r.topics.iter().filter(|t| t.error_code == 0) {
                self.wait_topic(&t.name.clone(), t.num_partitions);
            }
        }
        r
    }

    /// CreateTopics of one topic.
    pub fn create(&mut self, label: &str, t: NewTopic) -> Option<CreateTopicsResponse> {
        self.create_topics(label, &[t], false)
    }

    /// Creates `{scenario}-{suffix}` (unrecorded) with configs and returns its name.
    pub fn setup_topic(
        &mut self,
        suffix: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> String {
        let mut t = topic(&self.n(suffix), partitions);
        for (k, v) in configs {
            t = t.config(k, v);
        }
        let req = CreateTopicsRequest {
            topics: vec![t.wire()],
            timeout_ms: 30_000,
            ..Default::default()
        };
        let r: CreateTopicsResponse = self.quiet(ApiKey::CreateTopics, 7, &req);
        assert_eq!(
            r.topics[0].error_code, 0,
            "{}: set-up create {r:?}",
            self.name
        );
        self.wait_topic(&t.name, partitions);
        t.name
    }

    /// Unrecorded Metadata v12 of `names`.
    fn metadata_quiet(&mut self, names: &[&str]) -> MetadataResponse {
        self.quiet(ApiKey::Metadata, 12, &metadata_request(Some(names), false))
    }

    /// Waits until `name` has `partitions` partitions, each with a leader.
    pub fn wait_topic(&mut self, name: &str, partitions: i32) {
        self.wait_until(&format!("topic {name} with {partitions} partitions"), |s| {
            let m = s.metadata_quiet(&[name]);
            let t = &m.topics[0];
            if !(t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions
                    .iter()
                    .all(|p| p.error_code == 0 && p.leader_id >= 0))
            {
                return false;
            }
            // Kafka's replica manager becomes the partitions' leader after its metadata
            // cache lists them; until then data requests get NOT_LEADER_OR_FOLLOWER.
            let req = ListOffsetsRequest {
                replica_id: -1,
                topics: vec![ListOffsetsTopic {
                    name: name.into(),
                    partitions: (0..partitions)
                        .map(|p| ListOffsetsPartition {
                            partition_index: p,
                            timestamp: LATEST,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let l: ListOffsetsResponse = s.quiet(ApiKey::ListOffsets, 8, &req);
            l.topics[0].partitions.iter().all(|p| p.error_code == 0)
        });
    }

    /// Waits until Metadata no longer knows `name`.
    pub fn wait_topic_gone(&mut self, name: &str) {
        self.wait_until(&format!("topic {name} deleted"), |s| {
            s.metadata_quiet(&[name]).topics[0].error_code == 3
        });
    }

    /// DeleteTopics v6 by name; waits until the deleted ones are gone.
    pub fn delete_topics(&mut self, label: &str, names: &[&str]) -> Option<DeleteTopicsResponse> {
        let req = DeleteTopicsRequest {
            topics: names
                .iter()
                .map(|n| DeleteTopicState {
                    name: Some(n.to_string()),
                    ..Default::default()
                })
                .collect(),
            timeout_ms: 30_000,
            ..Default::default()
        };
        self.send(0, ApiKey::DeleteTopics, 6, &req);
        let r = self.recv_with(
            0,
            label,
            ApiKey::DeleteTopics,
            6,
            |r: &mut DeleteTopicsResponse| r.responses.sort_by(|a, b| a.name.cmp(&b.name)),
        );
        for t in r
            .iter()
            .flat_map(|r| &r.responses)
            .filter(|t| t.error_code == 0)
        {
            let name = t.name.clone().unwrap_or_default();
            self.wait_topic_gone(&name);
        }
        r
    }

    /// DeleteTopics v6 of one topic id.
    pub fn delete_topic_id(&mut self, label: &str, id: Uuid) -> Option<DeleteTopicsResponse> {
        let req = DeleteTopicsRequest {
            topics: vec![DeleteTopicState {
                name: None,
                topic_id: id,
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        self.call(label, ApiKey::DeleteTopics, 6, &req)
    }

    /// Metadata v12 of `names` (all topics when `None`).
    pub fn metadata(
        &mut self,
        label: &str,
        names: &[&str],
        auto_create: bool,
    ) -> Option<MetadataResponse> {
        self.send(
            0,
            ApiKey::Metadata,
            12,
            &metadata_request(Some(names), auto_create),
        );
        self.recv_with(
            0,
            label,
            ApiKey::Metadata,
            12,
            |r: &mut MetadataResponse| r.topics.sort_by(|a, b| a.name.cmp(&b.name)),
        )
    }

    /// Metadata v12 of every topic, recording only this scenario's topics (both brokers hold
    /// the topics of every scenario run before).
    pub fn metadata_all(&mut self, label: &str) -> Option<MetadataResponse> {
        let prefix = format!("{}-", self.name);
        let req = metadata_request(None, false);
        self.send(0, ApiKey::Metadata, 12, &req);
        self.recv_with(
            0,
            label,
            ApiKey::Metadata,
            12,
            |r: &mut MetadataResponse| {
                r.topics
                    .retain(|t| t.name.as_deref().is_some_and(|n| n.starts_with(&prefix)));
                r.topics.sort_by(|a, b| a.name.cmp(&b.name));
            },
        )
    }

    /// CreatePartitions v3: `topic` to `count` partitions.
    pub fn create_partitions(
        &mut self,
        label: &str,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> Option<CreatePartitionsResponse> {
        let req = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: topic.into(),
                count,
                assignments: None,
                ..Default::default()
            }],
            timeout_ms: 30_000,
            validate_only,
            ..Default::default()
        };
        let r: Option<CreatePartitionsResponse> =
            self.call(label, ApiKey::CreatePartitions, 3, &req);
        if r.as_ref().is_some_and(|r| r.results[0].error_code == 0) && !validate_only {
            self.wait_topic(topic, count);
        }
        r
    }

    // ---- data ---------------------------------------------------------------------------

    /// Produce v9 of `records` (raw bytes, or none) to one partition with `acks`.
    pub fn produce_raw(
        &mut self,
        label: &str,
        acks: i16,
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
    ) -> Option<ProduceResponse> {
        let req = produce_request(acks, &[(topic, partition, records)]);
        self.call(label, ApiKey::Produce, 9, &req)
    }

    /// Produce v9 (acks=1) of one batch with key `k` and (timestamp, value) records.
    pub fn produce(
        &mut self,
        label: &str,
        topic: &str,
        partition: i32,
        records: &[(i64, &[u8])],
    ) -> Option<ProduceResponse> {
        self.produce_raw(label, 1, topic, partition, Some(batch(records)))
    }

    /// Produce v9 of several partitions in one request.
    pub fn produce_many(
        &mut self,
        label: &str,
        acks: i16,
        parts: &[(&str, i32, Option<Bytes>)],
    ) -> Option<ProduceResponse> {
        self.send(0, ApiKey::Produce, 9, &produce_request(acks, parts));
        self.recv_with(0, label, ApiKey::Produce, 9, |r: &mut ProduceResponse| {
            for t in &mut r.responses {
                t.partition_responses.sort_by_key(|p| p.index);
            }
        })
    }

    /// Appends `n` records to `topic`/`partition`, unrecorded.
    pub fn setup_records(&mut self, topic: &str, partition: i32, n: usize) {
        let r: ProduceResponse = self.quiet(
            ApiKey::Produce,
            9,
            &produce_request(1, &[(topic, partition, Some(records(n)))]),
        );
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{}: set-up produce {r:?}", self.name);
    }

    /// Fetch v12 of one partition from `offset`, without waiting for data.
    pub fn fetch(
        &mut self,
        label: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<FetchResponse> {
        let req = FetchRequest {
            replica_id: -1,
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition,
                    fetch_offset: offset,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.call(label, ApiKey::Fetch, 12, &req)
    }

    /// ListOffsets v8 of (partition, timestamp) pairs of one topic.
    pub fn list_offsets(
        &mut self,
        label: &str,
        topic: &str,
        parts: &[(i32, i64)],
    ) -> Option<ListOffsetsResponse> {
        let req = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: parts
                    .iter()
                    .map(|&(p, ts)| ListOffsetsPartition {
                        partition_index: p,
                        timestamp: ts,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        self.call(label, ApiKey::ListOffsets, 8, &req)
    }

    /// DeleteRecords v2 of (partition, offset) pairs of one topic.
    pub fn delete_records(
        &mut self,
        label: &str,
        topic: &str,
        parts: &[(i32, i64)],
    ) -> Option<DeleteRecordsResponse> {
        let req = DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: topic.into(),
                partitions: parts
                    .iter()
                    .map(|&(p, o)| DeleteRecordsPartition {
                        partition_index: p,
                        offset: o,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            timeout_ms: 30_000,
            ..Default::default()
        };
        self.call(label, ApiKey::DeleteRecords, 2, &req)
    }

    /// InitProducerId v4 without a transactional id, once the broker can allocate ids (Kafka
    /// answers COORDINATOR_LOAD_IN_PROGRESS until its producer-id manager has a block).
    pub fn init_producer_id(&mut self, label: &str) -> Option<InitProducerIdResponse> {
        let req = init_producer_id_request();
        self.wait_until("producer ids", |s| {
            let r: InitProducerIdResponse = s.quiet(ApiKey::InitProducerId, 4, &req);
            r.error_code == 0
        });
        self.call(label, ApiKey::InitProducerId, 4, &req)
    }
}

fn init_producer_id_request() -> InitProducerIdRequest {
    {
        InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        }
    }
}

impl Session {
    /// DescribeCluster v1.
    pub fn describe_cluster(&mut self, label: &str) -> Option<DescribeClusterResponse> {
        let req = DescribeClusterRequest {
            include_cluster_authorized_operations: false,
            endpoint_type: 1,
            ..Default::default()
        };
        self.call(label, ApiKey::DescribeCluster, 1, &req)
    }

    // ---- configs ------------------------------------------------------------------------

    /// DescribeConfigs v4 of one resource: `keys` (all when `None`), with synonyms or not.
    pub fn describe_configs(
        &mut self,
        label: &str,
        resource_type: i8,
        name: &str,
        keys: Option<&[&str]>,
        synonyms: bool,
    ) -> Option<DescribeConfigsResponse> {
        let req = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type,
                resource_name: name.into(),
                configuration_keys: keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }],
            include_synonyms: synonyms,
            include_documentation: false,
            ..Default::default()
        };
        self.send(0, ApiKey::DescribeConfigs, 4, &req);
        // Both brokers list configs in their own order; order is not part of the contract.
        self.recv_with(
            0,
            label,
            ApiKey::DescribeConfigs,
            4,
            |r: &mut DescribeConfigsResponse| {
                for res in &mut r.results {
                    res.configs.sort_by(|a, b| a.name.cmp(&b.name));
                }
            },
        )
    }

    /// AlterConfigs v2 (replaces every dynamic config of the resource).
    pub fn alter_configs(
        &mut self,
        label: &str,
        resource_type: i8,
        name: &str,
        configs: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> Option<AlterConfigsResponse> {
        let req = AlterConfigsRequest {
            resources: vec![ac::AlterConfigsResource {
                resource_type,
                resource_name: name.into(),
                configs: configs
                    .iter()
                    .map(|(k, v)| ac::AlterableConfig {
                        name: k.to_string(),
                        value: v.map(str::to_string),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            validate_only,
            ..Default::default()
        };
        let r: Option<AlterConfigsResponse> = self.call(label, ApiKey::AlterConfigs, 2, &req);
        if r.as_ref().is_some_and(|r| r.responses[0].error_code == 0) && !validate_only {
            for (k, v) in configs {
                let want = v.map(str::to_string);
                self.wait_config(resource_type, name, k, |c| {
                    c.value == want && c.config_source == 1
                });
            }
        }
        r
    }

    /// Waits until DescribeConfigs of `key` satisfies `done`: Kafka applies a committed config
    /// change to the broker's cache asynchronously, Potok at once.
    fn wait_config(
        &mut self,
        resource_type: i8,
        name: &str,
        key: &str,
        done: impl Fn(
            &potok_protocol::messages::describe_configs_response::DescribeConfigsResourceResult,
        ) -> bool,
    ) {
        let req = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type,
                resource_name: name.into(),
                configuration_keys: Some(vec![key.to_string()]),
                ..Default::default()
            }],
            ..Default::default()
        };
        self.wait_until(&format!("config {key} of {name} applied"), |s| {
            let r: DescribeConfigsResponse = s.quiet(ApiKey::DescribeConfigs, 4, &req);
            r.results[0].configs.iter().any(&done)
        });
    }

    /// IncrementalAlterConfigs v1 of (name, operation, value) on one resource.
    pub fn incremental_alter(
        &mut self,
        label: &str,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> Option<IncrementalAlterConfigsResponse> {
        let req = IncrementalAlterConfigsRequest {
            resources: vec![iac::AlterConfigsResource {
                resource_type,
                resource_name: name.into(),
                configs: ops
                    .iter()
                    .map(|(k, op, v)| iac::AlterableConfig {
                        name: k.to_string(),
                        config_operation: *op,
                        value: v.map(str::to_string),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            validate_only,
            ..Default::default()
        };
        let r: Option<IncrementalAlterConfigsResponse> =
            self.call(label, ApiKey::IncrementalAlterConfigs, 1, &req);
        if r.as_ref().is_some_and(|r| r.responses[0].error_code == 0) && !validate_only {
            for (k, op, v) in ops {
                let v = v.unwrap_or_default().to_string();
                let has = move |c: &potok_protocol::messages::describe_configs_response::DescribeConfigsResourceResult| {
                    c.value.as_deref().unwrap_or("").split(',').any(|x| x == v)
                };
                match *op {
                    SET => {
                        self.wait_config(resource_type, name, k, |c| c.config_source == 1 && has(c))
                    }
                    DELETE => self.wait_config(resource_type, name, k, |c| c.config_source != 1),
                    APPEND => self.wait_config(resource_type, name, k, |c| has(c)),
                    SUBTRACT => self.wait_config(resource_type, name, k, |c| !has(c)),
                    _ => {}
                }
            }
        }
        r
    }
}

fn metadata_request(names: Option<&[&str]>, auto_create: bool) -> MetadataRequest {
    MetadataRequest {
        topics: names.map(|n| {
            n.iter()
                .map(|n| MetadataRequestTopic {
                    name: Some(n.to_string()),
                    ..Default::default()
                })
                .collect()
        }),
        allow_auto_topic_creation: auto_create,
        ..Default::default()
    }
}

fn produce_request(acks: i16, parts: &[(&str, i32, Option<Bytes>)]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (t, p, records) in parts {
        let data = PartitionProduceData {
            index: *p,
            records: records.clone(),
            ..Default::default()
        };
        match topics.iter_mut().find(|x| x.name == *t) {
            Some(x) => x.partition_data.push(data),
            None => topics.push(TopicProduceData {
                name: t.to_string(),
                partition_data: vec![data],
                ..Default::default()
            }),
        }
    }
    ProduceRequest {
        acks,
        timeout_ms: 30_000,
        topic_data: topics,
        ..Default::default()
    }
}

// Group operations live in `group_ops.rs`; these are the request types they share.
pub use potok_protocol::messages::{
    JoinGroupRequest as Join, OffsetCommitRequest as Commit, SyncGroupRequest as Sync,
};

pub(crate) fn join_request(
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    protocol_type: &str,
    topics: &[&str],
    session_timeout_ms: i32,
) -> Join {
    Join {
        group_id: group.into(),
        session_timeout_ms,
        rebalance_timeout_ms: 10_000,
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_string),
        protocol_type: protocol_type.into(),
        protocols: vec![JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: subscription(topics),
            ..Default::default()
        }],
        reason: None,
        ..Default::default()
    }
}

pub(crate) fn sync_request(
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(String, Bytes)],
) -> Sync {
    Sync {
        group_id: group.into(),
        generation_id: generation,
        member_id: member_id.into(),
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| SyncGroupRequestAssignment {
                member_id: m.clone(),
                assignment: a.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub(crate) fn commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Commit {
    Commit {
        group_id: group.into(),
        generation_id_or_member_epoch: generation,
        member_id: member_id.into(),
        retention_time_ms: -1,
        topics: vec![OffsetCommitRequestTopic {
            name: topic.into(),
            partitions: offsets
                .iter()
                .map(|&(p, o)| OffsetCommitRequestPartition {
                    partition_index: p,
                    committed_offset: o,
                    committed_leader_epoch: -1,
                    commit_timestamp: -1,
                    committed_metadata: Some("m".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) fn offset_fetch_request(
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> OffsetFetchRequest {
    OffsetFetchRequest {
        groups: vec![OffsetFetchRequestGroup {
            group_id: group.into(),
            member_id: None,
            member_epoch: -1,
            topics: topics.map(|t| {
                t.iter()
                    .map(|(n, p)| OffsetFetchRequestTopics {
                        name: n.to_string(),
                        partition_indexes: p.to_vec(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) fn leave_request(group: &str, members: &[(&str, Option<&str>)]) -> LeaveGroupRequest {
    LeaveGroupRequest {
        group_id: group.into(),
        members: members
            .iter()
            .map(|(m, i)| MemberIdentity {
                member_id: m.to_string(),
                group_instance_id: i.map(str::to_string),
                reason: None,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub(crate) fn offset_delete_request(
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> OffsetDeleteRequest {
    OffsetDeleteRequest {
        group_id: group.into(),
        topics: vec![OffsetDeleteRequestTopic {
            name: topic.into(),
            partitions: partitions
                .iter()
                .map(|&p| OffsetDeleteRequestPartition {
                    partition_index: p,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}
