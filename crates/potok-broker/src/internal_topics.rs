//! Kafka's internal topics: which names are internal, how the broker's own `__consumer_offsets`
//! is configured, and the error each client operation on an internal topic gets.
//!
//! A topic is internal by name, as in Kafka's `org.apache.kafka.common.internals.Topic`
//! (`isInternal`: `__consumer_offsets`, `__transaction_state`, `__share_group_state`); a user
//! topic that merely starts with `__` is not. Metadata, DescribeTopicPartitions and the admin
//! APIs report `is_internal` from [`is_internal`].
//!
//! `__transaction_state` is created by the transaction coordinator
//! ([`crate::txn::TxnService::ensure_topic`]) on the first FindCoordinator with `key_type=1` or
//! transactional InitProducerId, with `transaction.state.log.num.partitions` partitions and
//! [`transaction_state_overrides`]. `__consumer_offsets` is created by the group coordinator
//! ([`crate::group::GroupService::ensure_offsets_topic`]) on the first FindCoordinator, as
//! Kafka's `KafkaApis.getCoordinator` asks `AutoTopicCreationManager` to create it, with
//! `offsets.topic.num.partitions` partitions and the configs of Kafka's
//! `GroupCoordinatorService.groupMetadataTopicConfigs` ([`offsets_topic_overrides`]).
//! `__share_group_state` has no coordinator here. Clients may create none of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use potok_protocol::ErrorCode;

use crate::topics::{ApiError, LeadershipChange, LeadershipListener, Topic, TopicManager};
use crate::Broker;

/// The group coordinator's topic (Kafka's `Topic.GROUP_METADATA_TOPIC_NAME`).
pub const GROUP_METADATA_TOPIC: &str = "__consumer_offsets";

/// The transaction coordinator's topic (Kafka's `Topic.TRANSACTION_STATE_TOPIC_NAME`).
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The share coordinator's topic (Kafka's `Topic.SHARE_GROUP_STATE_TOPIC_NAME`).
pub const SHARE_GROUP_STATE_TOPIC: &str = "__share_group_state";

/// Kafka's default `offsets.topic.segment.bytes` (100 MiB), the `segment.bytes` of
/// `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: i64 = 100 * 1024 * 1024;

/// Whether `name` is one of Kafka's internal topics (`Topic.isInternal`).
pub fn is_internal(name: &str) -> bool {
    matches!(
        name,
        GROUP_METADATA_TOPIC | TRANSACTION_STATE_TOPIC | SHARE_GROUP_STATE_TOPIC
    )
}

/// The config overrides `__consumer_offsets` is created with, those of Kafka's
/// `GroupCoordinatorService.groupMetadataTopicConfigs`: compacted by the log cleaner and
/// never deleted by retention, `compression.type=producer` and `offsets.topic.segment.bytes`.
pub fn offsets_topic_overrides() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("compression.type".to_string(), "producer".to_string()),
        (
            "segment.bytes".to_string(),
            OFFSETS_TOPIC_SEGMENT_BYTES.to_string(),
        ),
    ])
}

/// The config overrides `__transaction_state` is created with, those of Kafka's
/// `TransactionStateManager` / `AutoTopicCreationManager`: compacted, never deleted by
/// retention, `min.insync.replicas` from `transaction.state.log.min.isr` (capped at the
/// replica count), `segment.bytes` from `transaction.state.log.segment.bytes`, uncompressed,
/// no unclean leader election.
pub fn transaction_state_overrides(min_isr: i32, segment_bytes: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("compression.type".to_string(), "uncompressed".to_string()),
        ("min.insync.replicas".to_string(), min_isr.to_string()),
        ("segment.bytes".to_string(), segment_bytes.to_string()),
        (
            "unclean.leader.election.enable".to_string(),
            "false".to_string(),
        ),
    ])
}

/// Produce to an internal topic: Kafka's `ReplicaManager.appendToLocalLog` refuses appends
/// to internal topics from clients with `INVALID_TOPIC_EXCEPTION`. (Kafka lets a client whose
/// id is `__admin_client` through; Potok does not, because its coordinator would not see
/// such records until they were replayed at the next start.)
pub fn append_refused(topic: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidTopicException,
        format!("Cannot append to internal topic {topic}"),
    )
}

/// DeleteRecords on an internal topic: `INVALID_TOPIC_EXCEPTION`, as Kafka's
/// `ReplicaManager.deleteRecordsOnLocalLog`.
pub fn delete_records_refused(topic: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidTopicException,
        format!("Cannot delete records of internal topic {topic}"),
    )
}

/// DeleteTopics on an internal topic. Kafka 4's controller accepts it and only its tools
/// refuse (`kafka-topics.sh --delete` filters internal topics out); Potok refuses in the
/// broker (issue #13), because deleting `__consumer_offsets` would drop every group's
/// committed offsets under a running coordinator. The code is the one Kafka's broker gives
/// for the other client operations it refuses on internal topics (appends and DeleteRecords
/// in `ReplicaManager`): `INVALID_TOPIC_EXCEPTION`.
pub fn deletion_refused(topic: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidTopicException,
        format!("Topic {topic} is an internal topic and cannot be deleted."),
    )
}

/// CreatePartitions on an internal topic. As for deletion, Kafka refuses it in its tools
/// only (`TopicCommand`: the partition count of the offsets topic cannot be changed, since
/// `partitionFor(group)` would move groups); Potok refuses in the broker with
/// `INVALID_TOPIC_EXCEPTION` (see [`deletion_refused`]).
pub fn partition_change_refused(topic: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidTopicException,
        format!("The number of partitions of internal topic {topic} cannot be changed."),
    )
}

/// CreateTopics of an internal name that does not exist yet. Kafka's controller refuses its
/// own internal topic (`__cluster_metadata`) with `INVALID_REQUEST` (`ControllerApis`); the
/// internal topics here belong to coordinators too (`__consumer_offsets` is created by the
/// group coordinator with its own partition count and configs, the other two have no
/// coordinator on Potok), so a client may not create them either.
pub fn creation_refused(topic: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("Creation of internal topic {topic} is prohibited."),
    )
}

/// The coordinator of a key stored in partition `partition` of the internal `topic`, from this
/// broker's metadata image: the partition's leader as `(node, host, port)`, or
/// COORDINATOR_NOT_AVAILABLE while it has none (or no registered address).
pub(crate) fn coordinator_address(
    topics: &TopicManager,
    topic: &Topic,
    partition: i32,
) -> Result<(i32, String, i32), ErrorCode> {
    let leader = topics.with_image(|i| {
        i.topic(topic.id())
            .and_then(|t| t.partitions.get(&partition))
            .and_then(|s| s.leader)
    });
    let leader = leader.ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let (host, port) = topics
        .broker_address(leader)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    Ok((leader.0, host, i32::from(port)))
}

/// What a coordinator does when this broker's leadership of a partition of its internal topic
/// changes (Kafka's `onElection` / `onResignation`).
#[derive(Clone, Copy)]
pub(crate) struct CoordinatorHooks {
    /// Elected: mark the partition loading (its keys answer COORDINATOR_LOAD_IN_PROGRESS).
    pub begin_load: fn(&Broker, i32, i32),
    /// Then read the partition's log and load it; runs on a blocking thread. At most one load
    /// per election is in flight; a stale one is dropped by the coordinator (its epoch no
    /// longer matches).
    pub load: fn(&Broker, i32, i32),
    /// Resigned: drop the partition's state (NOT_COORDINATOR afterwards).
    pub unload: fn(&Broker, i32),
}

/// The leadership hook's listener of one coordinator's topic.
struct Leadership {
    broker: Weak<Broker>,
    handle: tokio::runtime::Handle,
    hooks: CoordinatorHooks,
}

impl LeadershipListener for Leadership {
    fn leadership_changed(&self, _topic: &str, changes: &[LeadershipChange]) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        for change in changes {
            match *change {
                LeadershipChange::Resigned { partition, .. } => {
                    (self.hooks.unload)(&broker, partition)
                }
                LeadershipChange::Elected {
                    partition,
                    leader_epoch,
                } => {
                    (self.hooks.begin_load)(&broker, partition, leader_epoch.0);
                    let b = Arc::clone(&broker);
                    let load = self.hooks.load;
                    self.handle
                        .spawn_blocking(move || load(&b, partition, leader_epoch.0));
                }
            }
        }
    }
}

/// Makes a coordinator follow this broker's leaderships of `topic`'s partitions (call once the
/// broker exists, on its runtime, before the quorum applies entries).
pub(crate) fn follow_leadership(broker: &Arc<Broker>, topic: &str, hooks: CoordinatorHooks) {
    let listener = Arc::new(Leadership {
        broker: Arc::downgrade(broker),
        handle: tokio::runtime::Handle::current(),
        hooks,
    });
    broker.topics.watch_leadership(topic, listener);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_names_are_kafkas_three() {
        assert!(is_internal("__consumer_offsets"));
        assert!(is_internal("__transaction_state"));
        assert!(is_internal("__share_group_state"));
        // A user topic that only starts with "__" is not internal, as in Kafka.
        assert!(!is_internal("__my_topic"));
        assert!(!is_internal("__consumer_offsets2"));
        assert!(!is_internal("consumer_offsets"));
    }

    #[test]
    fn offsets_topic_configs_are_valid_topic_configs() {
        let overrides = offsets_topic_overrides();
        let normalized = crate::topic_config::normalize_overrides(&overrides).unwrap();
        assert_eq!(normalized, overrides);
        let overrides = transaction_state_overrides(1, 104_857_600);
        let normalized = crate::topic_config::normalize_overrides(&overrides).unwrap();
        assert_eq!(normalized, overrides);
    }
}
