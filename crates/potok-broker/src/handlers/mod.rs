//! Request handlers, one module per API, and [`register_all`], the list of served APIs and
//! versions (which is what ApiVersions advertises).
//!
//! Version ranges: the lowest versions are those Kafka 4.0 still accepts (KIP-896 removed
//! older ones); the highest are the newest stable versions whose semantics are implemented
//! here (the registry additionally clamps to what the codec decodes).

pub mod api_versions;
pub mod create_topics;
pub mod delayed_produce;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod fetch;
pub mod fetch_sessions;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod replica_fetch;
pub mod retention;

use potok_protocol::ApiKey;

use crate::registry::Registry;

/// Builds the registry of every handler this broker serves.
pub fn register_all() -> Registry {
    let mut r = Registry::new();
    r.register(ApiKey::ApiVersions, 0, 4, api_versions::handle);
    r.register(ApiKey::Metadata, 0, 12, metadata::handle);
    r.register(ApiKey::Produce, 3, 12, produce::handle);
    r.register(ApiKey::Fetch, 4, 17, fetch::handle);
    // v9+ adds EARLIEST_LOCAL / LATEST_TIERED lookups (KIP-1005), which need tiered-storage
    // semantics Potok does not have; v8 covers MAX_TIMESTAMP (KIP-734).
    r.register(ApiKey::ListOffsets, 1, 8, list_offsets::handle);
    // Kafka 4.0 accepts v2-v4 (KIP-896); v3 adds replica_id, v4 is flexible.
    r.register(
        ApiKey::OffsetForLeaderEpoch,
        2,
        4,
        offset_for_leader_epoch::handle,
    );
    r.register(ApiKey::CreateTopics, 2, 7, create_topics::handle);
    // Idempotent producers (issue #6) and transactional ones (issue 21). InitProducerId v5+
    // belongs to KIP-939's two-phase commit, which Potok does not implement.
    r.register(ApiKey::InitProducerId, 0, 4, init_producer_id::handle);
    r.register(ApiKey::DescribeProducers, 0, 0, describe_producers::handle);
    // Kafka 4.x serves v1-v4 (v0 removed by KIP-896).
    r.register(ApiKey::DescribeLogDirs, 1, 4, describe_log_dirs::handle);
    // DeleteTopics, CreatePartitions, DeleteRecords, Describe/Alter/IncrementalAlterConfigs,
    // DescribeCluster, DescribeTopicPartitions (versions in admin_api::ADMIN_API_VERSIONS).
    crate::admin_api::register(&mut r);
    crate::group::handlers::register(&mut r);
    crate::txn::handlers::register(&mut r);
    r
}

/// The registry of a voter of the controller quorum: the APIs of [`register_all`], with the
/// admin writes and DescribeCluster in their quorum versions (`crate::quorum::admin`), plus
/// DescribeQuorum. The group APIs are served as on a single node, by the leader of each group's
/// `__consumer_offsets` partition (`crate::group::cluster`), the transaction APIs by the leader
/// of each transactional id's `__transaction_state` partition (`crate::txn::cluster`). Absent
/// APIs are not advertised by ApiVersions.
pub fn register_quorum_member() -> Registry {
    let mut r = register_all();
    for key in [
        ApiKey::DeleteTopics,
        ApiKey::CreatePartitions,
        ApiKey::AlterConfigs,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::DescribeCluster,
    ] {
        r.unregister(key);
    }
    crate::quorum::admin::register(&mut r);
    // Preferred and unclean elections on the controller (KIP-460); a single node has nothing
    // to elect, so it leaves the API out.
    crate::quorum::elect::register(&mut r);
    // Partition reassignment on the controller (KIP-455); nothing to move on a single node.
    crate::quorum::reassign::register(&mut r);
    // Kafka 4.x serves v0-v2.
    r.register(
        ApiKey::DescribeQuorum,
        0,
        2,
        crate::quorum::describe::handle,
    );
    // Last: wraps the admin writes registered above so that a node that is not the active
    // controller forwards them to it (KIP-590).
    crate::quorum::forwarding::register(&mut r);
    r
}

/// Converts an `i32` count or size from the wire into a `usize`, treating negatives as 0.
pub(crate) fn non_negative(v: i32) -> usize {
    usize::try_from(v).unwrap_or(0)
}
