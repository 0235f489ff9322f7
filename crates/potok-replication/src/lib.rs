//! Partition replication as pure state (issues 13 and 18): what a partition's leader knows about
//! its replicas, and what a follower must truncate, with Kafka's rules and no IO or clock (the
//! caller passes `now_ms` and log end offsets in; decisions come out).
//!
//! - [`leader::LeaderState`]: the leader's view — replicas, the committed ISR and an in-flight
//!   change (KIP-497's maximal ISR), each follower's log end offset and last caught-up time, the
//!   high watermark (smallest log end offset in the ISR, never moving back), ISR shrink and
//!   expand proposals (`replica.lag.time.max.ms`), and the `acks=all` / `min.insync.replicas`
//!   outcomes (NOT_ENOUGH_REPLICAS before, NOT_ENOUGH_REPLICAS_AFTER_APPEND after the append).
//! - [`epochs`]: the leader-epoch rules that keep logs identical across leader changes: the
//!   leader's answer to a follower's `(last_fetched_epoch, fetch_offset)` (a diverging epoch, as
//!   Fetch v12+ returns it) and the follower's truncation point (KIP-101, KIP-279) — never the
//!   high watermark alone.
//!
//! On a single node the ISR is the leader alone, so the high watermark is the log end offset;
//! the same code then serves replication unchanged.

pub mod epochs;
pub mod leader;

pub use epochs::{diverging_epoch, end_offset_for, truncation_offset, EpochStart};
pub use leader::{AcksOutcome, LeaderState, ReplicationError};
