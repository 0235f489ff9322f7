//! Domain types of the coordinator's inputs and outputs.
//!
//! These mirror what the group APIs carry but are independent of any wire version: the broker
//! converts a decoded request into one of these, and a result back into the response of the
//! version the client asked for (for example, LeaveGroup v0-v2 carries one member at the top
//! level, v3+ a batch; both become a [`LeaveGroupRequest`]).

use std::fmt;

use bytes::Bytes;
use potok_protocol::ErrorCode;
use potok_records::{LeaderEpoch, Offset};

/// Identifies a parked JoinGroup or SyncGroup request. The broker picks the value (e.g. a
/// counter) and gets it back in [`Output::Join`] / [`Output::Sync`], possibly much later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// The classic group states, as Kafka names them (`ClassicGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; the group may still hold offsets.
    Empty,
    /// A rebalance started: members must (re)join before the join phase ends.
    PreparingRebalance,
    /// The join phase ended; the coordinator waits for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments and heartbeat.
    Stable,
    /// The group was removed. Dead groups are not kept in memory, so this state is only
    /// reported for groups that do not exist (DescribeGroups before v6, as Kafka).
    Dead,
}

impl GroupState {
    /// The name used by DescribeGroups and ListGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One protocol (assignor) a member supports, with its metadata (for "consumer" groups a
/// `ConsumerProtocolSubscription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// The protocol name, e.g. "range", "cooperative-sticky".
    pub name: String,
    /// Opaque to the coordinator except for computing subscribed topics.
    pub metadata: Bytes,
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group.
    pub group_id: String,
    /// The member id, empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The protocol type ("consumer").
    pub protocol_type: String,
    /// The supported protocols in order of preference.
    pub protocols: Vec<Protocol>,
    /// The session timeout.
    pub session_timeout_ms: i32,
    /// The rebalance timeout (the session timeout for JoinGroup v0).
    pub rebalance_timeout_ms: i32,
    /// The client id from the request header.
    pub client_id: String,
    /// The client's address, as Kafka prints it (`/127.0.0.1`).
    pub client_host: String,
    /// JoinGroup v4+: a new dynamic member first gets `MEMBER_ID_REQUIRED` with its id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: the leader of a stable group that rejoins as a static member may be told
    /// to skip computing an assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

/// A member as listed to the leader in a JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// The error.
    pub error: ErrorCode,
    /// The generation id (-1 on error).
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// KIP-814: the leader must not compute a new assignment.
    pub skip_assignment: bool,
    /// The member's id (also set with `MEMBER_ID_REQUIRED`).
    pub member_id: String,
    /// The members with their metadata; only the leader gets them.
    pub members: Vec<JoinedMember>,
}

impl JoinGroupResponse {
    /// An error response.
    pub fn error(error: ErrorCode, member_id: impl Into<String>) -> Self {
        JoinGroupResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member believes is current.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_name: Option<String>,
    /// The leader's assignment (member id, assignment); empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// The error.
    pub error: ErrorCode,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The group's protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// An error response.
    pub fn error(error: ErrorCode) -> Self {
        SyncGroupResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A Heartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
}

/// One member leaving (LeaveGroup v3+ carries several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member id; may be empty when `group_instance_id` names a static member (an admin
    /// removing static members, KIP-345).
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
}

/// The outcome of a LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    /// The top-level error (unknown group, ...).
    pub error: ErrorCode,
    /// Per-member results, in request order.
    pub members: Vec<(LeavingMember, ErrorCode)>,
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    /// The partition.
    pub partition: i32,
    /// The offset to commit.
    pub offset: Offset,
    /// The leader epoch of the last consumed record, `LeaderEpoch(-1)` if unknown.
    pub leader_epoch: LeaderEpoch,
    /// Client metadata (`None` is stored as the empty string, as Kafka does).
    pub metadata: Option<String>,
}

/// An OffsetCommit request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// The generation, or -1 for a group that does not use group management ("simple"
    /// consumers and admin tools).
    pub generation_id: i32,
    /// The member id, empty for simple consumers.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-v4 `retention_time_ms`; -1 uses `offsets.retention.minutes`.
    pub retention_time_ms: i64,
    /// Topics and their partitions.
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// One fetched offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// The partition.
    pub partition: i32,
    /// The committed offset, `Offset(-1)` when none.
    pub offset: Offset,
    /// The committed leader epoch, `LeaderEpoch(-1)` when none.
    pub leader_epoch: LeaderEpoch,
    /// The committed metadata (empty when none).
    pub metadata: String,
    /// Per-partition error.
    pub error: ErrorCode,
}

/// The offsets of one group (OffsetFetch; v8+ asks for several groups at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// Group-level error.
    pub error: ErrorCode,
    /// Topics with their partitions' offsets.
    pub topics: Vec<(String, Vec<FetchedOffset>)>,
}

/// A ListGroups entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group.
    pub group_id: String,
    /// The protocol type ("" for groups that only store offsets).
    pub protocol_type: String,
    /// The state.
    pub state: GroupState,
}

/// A member in DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// The member's metadata for the selected protocol (empty unless Stable, as Kafka).
    pub metadata: Bytes,
    /// The member's assignment (empty unless Stable, as Kafka).
    pub assignment: Bytes,
}

/// A DescribeGroups entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group_id: String,
    /// The state.
    pub state: GroupState,
    /// The protocol type.
    pub protocol_type: String,
    /// The selected protocol (empty unless Stable, as Kafka).
    pub protocol: String,
    /// The members.
    pub members: Vec<MemberDescription>,
}

/// One record to append to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRecord {
    /// The encoded key.
    pub key: Bytes,
    /// The encoded value; `None` is a tombstone.
    pub value: Option<Bytes>,
}

/// Identifies a change that waits for its [`Output::Persist`] to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PendingId(pub u64);

/// Something the broker must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Append these records to `__consumer_offsets` partition `partition`. Replies that follow
    /// in the same drain depend on them, so the broker appends before it sends those replies
    /// (Kafka answers a commit or a SyncGroup only once its records are written).
    Persist {
        /// The `__consumer_offsets` partition.
        partition: i32,
        /// The records, in order.
        records: Vec<PersistRecord>,
        /// A change that waits for the outcome of this append: the broker must report it with
        /// [`crate::GroupCoordinator::persisted`] before it releases the coordinator (Kafka
        /// applies committed offsets and a completed rebalance only in the append callback).
        /// `None` when nothing depends on the outcome.
        pending: Option<PendingId>,
        /// `Some((producer id, producer epoch))` for a TxnOffsetCommit: the records go in one
        /// transactional batch of that producer, which the transaction's COMMIT or ABORT marker
        /// on this partition later resolves (KIP-98).
        producer: Option<(i64, i16)>,
    },
    /// Answer a parked or immediate JoinGroup.
    Join(Token, JoinGroupResponse),
    /// Answer a parked or immediate SyncGroup.
    Sync(Token, SyncGroupResponse),
}

/// A TxnOffsetCommit request (KIP-98, with KIP-447's group generation and member checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// The transactional producer's id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// The consumer's generation (v3+, KIP-447), -1 when not known.
    pub generation_id: i32,
    /// The consumer's member id (v3+), empty when not known.
    pub member_id: String,
    /// The consumer's static instance id (v3+).
    pub group_instance_id: Option<String>,
    /// Topics and their partitions.
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// Per-partition results of OffsetCommit and OffsetDelete: `(topic, [(partition, error)])`, in
/// request order.
pub type PartitionResults = Vec<(String, Vec<(i32, ErrorCode)>)>;
