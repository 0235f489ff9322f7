//! Topic and configuration administration APIs: DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DescribeCluster, DeleteRecords and
//! DescribeTopicPartitions (KIP-966).
//!
//! The handlers are plain functions from a decoded request (and its version) to a response.
//! They validate everything first and then change state only through [`AdminBackend`], which
//! the broker implements over its topic registry, partition logs and durable metadata log
//! (see `backend.rs`). Keeping the Kafka semantics here, behind a narrow trait, lets unit tests
//! drive every refusal and every version difference with an in-memory backend.
//!
//! Versions: every version of Kafka 4.0's definitions that potok-protocol decodes is served
//! (see [`ADMIN_API_VERSIONS`]), which covers what librdkafka 2.x, the Java client 3.x/4.x and
//! kafka-python negotiate.

pub mod config_ops;
pub mod limits;

mod backend;
mod broker_configs;
mod configs;
mod topics;

#[cfg(test)]
mod broker_config_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use potok_protocol::{ApiKey, Uuid};

pub use crate::dynamic_config::DynamicConfigs;
pub use crate::topic_config::{BrokerConfigLookup, ConfigSource, ConfigType};
pub use crate::topics::ApiError;
pub use backend::register;
pub use configs::{
    handle_alter_configs, handle_describe_configs, handle_incremental_alter_configs,
};
pub use topics::{
    handle_create_partitions, handle_delete_records, handle_delete_topics, handle_describe_cluster,
    handle_describe_topic_partitions,
};

/// The APIs of this module with the version range the broker advertises in ApiVersions.
pub const ADMIN_API_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
];

/// What the admin handlers need to know about one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    /// Leader epoch of each partition, indexed by partition number; its length is the
    /// partition count.
    pub leader_epochs: Vec<i32>,
    /// The topic's config overrides (only what was set on the topic).
    pub overrides: BTreeMap<String, String>,
    pub internal: bool,
    /// In a cluster, each partition's `(leader, replicas, ISR)` from the metadata image
    /// (`None` on a single node, where this broker is every partition's only replica).
    pub replication: Option<Vec<PartitionReplication>>,
}

/// One partition's `(leader or -1, replicas, ISR)` in a cluster.
pub type PartitionReplication = (i32, Vec<i32>, Vec<i32>);

/// One broker property as DescribeConfigs reports it for a BROKER resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfigEntry {
    pub name: String,
    /// `None` for a property without a value (Kafka's null defaults).
    pub value: Option<String>,
    /// Set in the config file or with `--set` (STATIC_BROKER_CONFIG), else DEFAULT_CONFIG.
    pub explicit: bool,
    /// Passwords and secrets: their value is never sent.
    pub sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: String,
}

/// The broker state the admin handlers read and change. Every mutating method must make its
/// change durable in the metadata log before it returns `Ok`, so that an acknowledged admin
/// operation survives a crash; and must apply it to the live partitions (a new retention.ms
/// takes effect without a restart).
pub trait AdminBackend: BrokerConfigLookup {
    /// This broker's `node.id`.
    fn node_id(&self) -> i32;
    /// The cluster id (KRaft `cluster.id`, a base64 UUID string).
    fn cluster_id(&self) -> String;
    /// The advertised host and port of the listener the request came in on.
    fn advertised_endpoint(&self) -> (String, i32);
    /// `node.rack`, if set.
    fn rack(&self) -> Option<String> {
        None
    }
    /// Every topic, sorted by name.
    fn topics(&self) -> Vec<TopicInfo>;
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo>;
    fn topic_by_id(&self, id: Uuid) -> Option<TopicInfo>;
    /// Every broker property with its current value.
    fn broker_configs(&self) -> Vec<BrokerConfigEntry>;
    /// Partitions of every topic on this broker (what `potok.max.partitions` limits).
    fn partition_count(&self) -> usize;
    /// `potok.max.partitions`: the most partitions this broker may hold.
    fn max_partitions(&self) -> i64;

    /// Deletes topic `name`: records the deletion in the metadata log, closes its partition
    /// logs and removes their directories.
    fn delete_topic(&self, name: &str) -> Result<(), ApiError>;
    /// Grows topic `name` to `new_total` partitions (already validated to be larger).
    fn create_partitions(&self, name: &str, new_total: i32) -> Result<(), ApiError>;
    /// Replaces the config overrides of topic `name` (already validated) and applies them to
    /// its partition logs.
    fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), ApiError>;
    /// The stored dynamic broker configs (this broker's and the cluster-wide defaults).
    fn dynamic_broker_configs(&self) -> DynamicConfigs;
    /// Replaces this broker's dynamic configs (`cluster_default = false`) or the cluster-wide
    /// defaults with `configs` (each already validated by [`crate::dynamic_config::validate`]),
    /// durably, and applies the enforced ones; with `validate_only`, checks only.
    fn set_dynamic_broker_configs(
        &self,
        cluster_default: bool,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError>;
    /// Moves the log start offset of `name`[`partition`] to `offset`, where `-1` means the
    /// high watermark; an offset above the high watermark is `OFFSET_OUT_OF_RANGE`. Returns the
    /// new low watermark.
    fn delete_records(&self, name: &str, partition: i32, offset: i64) -> Result<i64, ApiError>;
}

/// Kafka's config resource types (`ConfigResource.Type`).
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Topic operations reported in `topic_authorized_operations` (Kafka's `AclOperation` codes as
/// bits). Potok has no authorizer yet, so, as Kafka does without one, every operation that
/// applies to the resource type is allowed: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub(crate) const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// Cluster operations without an authorizer: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub(crate) const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// Kafka's "authorized operations were not requested" marker (`Integer.MIN_VALUE`).
pub(crate) const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
