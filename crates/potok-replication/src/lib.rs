//! Partition replication as pure state (issues 13 and 18): what a partition's leader knows about
//! its replicas, what a follower fetches and truncates, with Kafka's rules and no IO or clock
//! (the caller passes `now_ms`, log ends and leader-epoch caches in; decisions come out).
//!
//! - [`leader::LeaderState`]: the leader's view — replicas, the committed ISR and an in-flight
//!   change (KIP-497's maximal ISR), each follower's log end offset, broker epoch (KIP-903) and
//!   last caught-up time, the high watermark (smallest log end offset in the maximal ISR, never
//!   moving back), ISR shrink and expand proposals (`replica.lag.time.max.ms`), the `acks=all` /
//!   `min.insync.replicas` outcomes (NOT_ENOUGH_REPLICAS before, NOT_ENOUGH_REPLICAS_AFTER_APPEND
//!   after the append, on the committed ISR), the answer to a follower's fetch (fencing by
//!   `current_leader_epoch`, the diverging epoch) and KIP-207's OFFSET_NOT_AVAILABLE.
//! - [`follower::FollowerState`]: the follower's fetch state — the next Fetch (v12+:
//!   `last_fetched_epoch`, `current_leader_epoch`, the replica's broker epoch), the handling of
//!   the answer (append with the leader's offsets and epochs, truncate by epoch on a diverging
//!   epoch, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH / NOT_LEADER_OR_FOLLOWER /
//!   OFFSET_OUT_OF_RANGE as Kafka's fetcher threads) and its high watermark.
//! - [`epochs`]: the leader-epoch rules that keep logs identical across leader changes: the
//!   leader's answer to a follower's `(last_fetched_epoch, fetch_offset)` and the follower's
//!   truncation point (KIP-101, KIP-279) — never the high watermark alone.
//!
//! Each module's documentation says how a broker drives it. The crate's tests include a seeded
//! deterministic simulation of three replicas, a controller and producers under crashes,
//! message loss and elections (`sim`, test-only; `docs/replication.md`).
//!
//! On a single node the ISR is the leader alone, so the high watermark is the log end offset;
//! the same code then serves replication unchanged.

pub mod epochs;
pub mod follower;
pub mod leader;

#[cfg(test)]
mod sim;

pub use epochs::{diverging_epoch, end_offset_for, truncation_offset, EpochStart};
pub use follower::{
    FetchAnswer, FetchError, FetchOutcome, FetchPosition, FollowerRequest, FollowerState, LogView,
};
pub use leader::{
    AcksOutcome, ClientOffsetQuery, LeaderFetchAnswer, LeaderState, ReplicationError,
};

impl ReplicationError {
    /// How a follower sees this refusal of its fetch.
    pub fn as_fetch_error(&self) -> FetchError {
        match self {
            ReplicationError::FencedLeaderEpoch { .. } => FetchError::FencedLeaderEpoch,
            ReplicationError::UnknownLeaderEpoch { .. } => FetchError::UnknownLeaderEpoch,
            ReplicationError::NotLeader
            | ReplicationError::UnknownReplica(_)
            | ReplicationError::StaleReplicaEpoch { .. } => FetchError::NotLeaderOrFollower,
            ReplicationError::OffsetOutOfRange { .. } => FetchError::OffsetOutOfRange,
            ReplicationError::NotEnoughReplicas { .. }
            | ReplicationError::OffsetNotAvailable { .. }
            | ReplicationError::StaleIsrChange => FetchError::Other,
        }
    }
}
