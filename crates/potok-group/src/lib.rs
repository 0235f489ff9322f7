//! Potok's group coordinator: Kafka's classic consumer-group protocol as a sans-IO state
//! machine.
//!
//! # Model
//!
//! [`GroupCoordinator`] owns every group of the broker. The broker feeds it requests (domain
//! types in [`types`], converted from whichever wire version the client used) together with
//! `now_ms`, and fires timers with [`GroupCoordinator::tick`] at
//! [`GroupCoordinator::next_deadline`]. It gets back:
//!
//! - immediate results (Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
//!   DescribeGroups, DeleteGroups, OffsetDelete) as return values, and
//! - an ordered queue of [`Output`]s ([`GroupCoordinator::drain_outputs`]): records to append to
//!   `__consumer_offsets` ([`Output::Persist`]) and JoinGroup / SyncGroup answers, which may
//!   come long after the request (a JoinGroup is parked until the join phase ends). The broker
//!   appends `Persist` records before it sends any reply that follows them. A `Persist` that
//!   carries a [`PendingId`] has a change waiting for it (committed offsets, the assignment that
//!   completed a rebalance, a static member's new id): the broker reports the append's outcome with
//!   [`GroupCoordinator::persisted`], which applies the change or discards it, so the state in
//!   memory never runs ahead of what was written (as Kafka's append callbacks).
//!
//! There are no sockets, clocks, threads or tokio here; every rule is tested in
//! `src/tests.rs` by feeding events and times.
//!
//! # Protocol
//!
//! The classic rebalance protocol as Kafka runs it: states Empty / PreparingRebalance /
//! CompletingRebalance / Stable (Dead groups are dropped), generation ids, member-id fencing
//! (`ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `REBALANCE_IN_PROGRESS`, `FENCED_INSTANCE_ID`),
//! `MEMBER_ID_REQUIRED` (KIP-394), session and rebalance timeouts, pending-sync expiry,
//! `group.initial.rebalance.delay.ms`, protocol selection by vote, the leader's assignment
//! relayed by SyncGroup, static membership (KIP-345, with KIP-814 `skip_assignment`),
//! `group.max.size`, batched LeaveGroup, offset commit validation, offset expiry after
//! `offsets.retention.minutes` (for empty groups counted from when they became empty; for
//! stable consumer groups only for topics no member subscribes to), DeleteGroups and
//! OffsetDelete (KIP-496).
//!
//! # Persistence
//!
//! Offsets and group generations are written as Kafka's own `__consumer_offsets` records
//! ([`records`]); a [`Loader`] collects them at start-up (latest value per key) and
//! [`GroupCoordinator::load`] rebuilds the state. The offsets topic grows without bound until
//! log compaction exists; [`GroupCoordinator::snapshot_records`] gives the live records so that
//! the broker can rewrite a partition whose log is much larger than its live state.

mod coordinator;
mod error;
pub mod records;
#[cfg(test)]
mod tests;
pub mod types;

pub use coordinator::{GroupConfig, GroupCoordinator, LoadReport, Loader};
pub use error::GroupError;
pub use types::*;
