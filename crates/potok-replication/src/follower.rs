//! The follower's side of replication for one partition (Kafka's `AbstractFetcherThread` /
//! `ReplicaFetcherThread` per-partition fetch state), as a value with no IO and no clock.
//!
//! # How a broker drives it
//!
//! The broker keeps one [`FollowerState`] beside each partition log it follows, and its replica
//! fetcher (one per leader broker, one request in flight at a time, as Kafka's fetcher threads)
//! loops:
//!
//! 1. [`FollowerState::next_request`] with a [`LogView`] of the local log and `now_ms` gives what
//!    to send for this partition: a [`FetchPosition`] (one partition of a Fetch v12+ request:
//!    `fetch_offset`, `last_fetched_epoch`, `current_leader_epoch`, `log_start_offset`,
//!    `ReplicaState`'s id and broker epoch), a [`FollowerRequest::LeaderOffsets`] (a ListOffsets
//!    for the leader's earliest and latest offsets after OFFSET_OUT_OF_RANGE), or nothing (no
//!    leader, backing off, or fenced until new metadata).
//! 2. The answer goes to [`FollowerState::on_fetch_response`] together with the position it
//!    answers (a stale answer — the leader, epoch or log end changed meanwhile — is ignored, as
//!    Kafka's fetcher ignores a response whose fetch offset is no longer current). The outcome
//!    says what to do to the log: append the returned batches unchanged (the leader's offsets
//!    and epochs; the log's leader-epoch cache learns each new epoch from them) and then report
//!    the new log end with [`FollowerState::on_appended`], which gives the follower's high
//!    watermark; or truncate the log (and its epoch cache) to an offset computed by leader epoch
//!    ([`crate::epochs::truncation_offset`]); or truncate it fully and restart at an offset.
//! 3. A failed request (timeout, connection lost) goes to [`FollowerState::on_request_failed`],
//!    which backs off `replica.fetch.backoff.ms`.
//! 4. A metadata change naming a leader and leader epoch goes to
//!    [`FollowerState::become_follower`] (Kafka's `makeFollower`): a newer epoch resets the
//!    fetch state; the log is not touched then, because truncation happens on the leader's
//!    `DivergingEpoch` answer (Kafka 4.x's truncation on fetch, KIP-595's mechanism applied to
//!    partitions) and never to the high watermark alone (KIP-101).

use potok_metadata::BrokerId;
use potok_records::{LeaderEpoch, Offset};

use crate::epochs::{truncation_offset, EpochStart};

/// Kafka's `replica.fetch.backoff.ms` default: how long a follower waits after a failed fetch.
pub const DEFAULT_FETCH_BACKOFF_MS: i64 = 1_000;

/// What a follower knows about its own log when it builds a request or handles an answer.
#[derive(Clone, Copy, Debug)]
pub struct LogView<'a> {
    pub log_start: Offset,
    pub log_end: Offset,
    /// The log's leader-epoch cache (`leader-epoch-checkpoint`), sorted by epoch.
    pub epochs: &'a [EpochStart],
}

impl LogView<'_> {
    /// The epoch of the log's last entry (Kafka's `latestEpoch`), sent as `LastFetchedEpoch`.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.last().map(|e| e.epoch)
    }
}

/// One partition of a follower's Fetch request (v12+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchPosition {
    /// The broker the request goes to.
    pub leader: BrokerId,
    /// `ReplicaState.ReplicaId`: this broker.
    pub replica_id: BrokerId,
    /// `ReplicaState.ReplicaEpoch` (KIP-903): this broker's registration epoch, so the leader
    /// can refuse a fetch from an earlier incarnation of it.
    pub replica_epoch: i64,
    /// `FetchOffset`: the follower's log end.
    pub fetch_offset: Offset,
    /// `LastFetchedEpoch`: the epoch of the follower's last record, `None` (-1) for an empty
    /// epoch cache.
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// `CurrentLeaderEpoch` (KIP-320): the epoch the follower believes the leader has.
    pub current_leader_epoch: LeaderEpoch,
    /// `LogStartOffset`: the follower's log start.
    pub log_start_offset: Offset,
}

/// What a follower asks its leader next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerRequest {
    Fetch(FetchPosition),
    /// ListOffsets for the leader's earliest and latest offsets (with `replica_id` set and
    /// `current_leader_epoch`), after OFFSET_OUT_OF_RANGE (Kafka's
    /// `AbstractFetcherThread.fetchOffsetAndTruncate`).
    LeaderOffsets {
        leader: BrokerId,
        current_leader_epoch: LeaderEpoch,
    },
}

/// The errors a leader answers a follower's fetch with, as the follower acts on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// FENCED_LEADER_EPOCH: the follower's `current_leader_epoch` is older than the leader's.
    FencedLeaderEpoch,
    /// UNKNOWN_LEADER_EPOCH: the follower's epoch is newer than the leader knows (the leader has
    /// not applied the metadata yet).
    UnknownLeaderEpoch,
    /// NOT_LEADER_OR_FOLLOWER: the broker does not lead the partition (or does not know this
    /// follower as a replica).
    NotLeaderOrFollower,
    /// OFFSET_OUT_OF_RANGE: the fetch offset is outside the leader's log.
    OffsetOutOfRange,
    /// Anything else (UNKNOWN_TOPIC_OR_PARTITION, a storage error): retried after a back-off.
    Other,
}

/// The leader's answer for one partition of a follower's fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchAnswer {
    /// Records from the fetch offset (possibly none) or a diverging epoch; with the leader's
    /// high watermark and log start.
    Data {
        high_watermark: Offset,
        log_start_offset: Offset,
        /// `DivergingEpoch`: the follower's log diverges from the leader's; `(epoch, end)` is
        /// where the leader's copy of that epoch ends. No records come with it.
        diverging_epoch: Option<(LeaderEpoch, Offset)>,
    },
    Error(FetchError),
}

/// What the caller does to its log after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Nothing (a stale answer, or an error handled by backing off or waiting for metadata).
    Nothing,
    /// Append the answer's batches as they are (their first offset must be the log end), raise
    /// the log start to `log_start` if it is higher (the leader deleted below it), then call
    /// [`FollowerState::on_appended`].
    Append { log_start: Offset },
    /// Truncate the log and its leader-epoch cache to `to` (entries starting at or after it go).
    Truncate { to: Offset },
    /// Delete the whole log and start it empty at `start` (the leader's log start is past the
    /// follower's log end: Kafka's `truncateFullyAndStartAt`).
    TruncateFullyAndStartAt { start: Offset },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No leader is known: nothing to fetch from.
    NoLeader,
    Fetching,
    /// Waiting until `until_ms` after an error (`replica.fetch.backoff.ms`).
    Backoff {
        until_ms: i64,
        then_offsets: bool,
    },
    /// The leader asked us to find its log bounds (OFFSET_OUT_OF_RANGE).
    NeedLeaderOffsets,
    /// Our leader epoch is older than the leader's: no fetch until metadata brings a newer one
    /// (Kafka's `onPartitionFenced`: "await the new LeaderAndIsr state before resuming").
    Fenced,
}

/// A follower's fetch state for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerState {
    local: BrokerId,
    broker_epoch: i64,
    leader: Option<BrokerId>,
    leader_epoch: LeaderEpoch,
    high_watermark: Offset,
    /// The leader's high watermark from the answer being appended.
    leader_high_watermark: Offset,
    phase: Phase,
    backoff_ms: i64,
}

impl FollowerState {
    /// A follower of `leader` (or of nobody) at `leader_epoch`, with the high watermark it last
    /// knew (the `replication-offset-checkpoint`), clamped to its log.
    pub fn new(
        local: BrokerId,
        broker_epoch: i64,
        leader: Option<BrokerId>,
        leader_epoch: LeaderEpoch,
        high_watermark: Offset,
        log: LogView<'_>,
        backoff_ms: i64,
    ) -> FollowerState {
        FollowerState {
            local,
            broker_epoch,
            leader,
            leader_epoch,
            high_watermark: high_watermark.max(log.log_start).min(log.log_end),
            leader_high_watermark: Offset(0),
            phase: if leader.is_some() {
                Phase::Fetching
            } else {
                Phase::NoLeader
            },
            backoff_ms,
        }
    }

    pub fn leader(&self) -> Option<BrokerId> {
        self.leader
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    /// The follower's high watermark: the leader's, capped by the local log end.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// Whether the follower waits for metadata after FENCED_LEADER_EPOCH.
    pub fn is_fenced(&self) -> bool {
        self.phase == Phase::Fenced
    }

    /// Metadata names `leader` at `leader_epoch` (Kafka's `makeFollower`). An older epoch than
    /// the one known is ignored (leader epochs only grow); a newer one, or a change of leader,
    /// restarts fetching from the log end. Returns whether anything changed.
    pub fn become_follower(&mut self, leader: Option<BrokerId>, leader_epoch: LeaderEpoch) -> bool {
        if leader_epoch < self.leader_epoch
            || (leader_epoch == self.leader_epoch && leader == self.leader)
        {
            return false;
        }
        self.leader = leader;
        self.leader_epoch = leader_epoch;
        self.phase = if leader.is_some() {
            Phase::Fetching
        } else {
            Phase::NoLeader
        };
        true
    }

    /// What to send to the leader now, if anything.
    pub fn next_request(&mut self, log: LogView<'_>, now_ms: i64) -> Option<FollowerRequest> {
        let leader = self.leader?;
        if let Phase::Backoff {
            until_ms,
            then_offsets,
        } = self.phase
        {
            if now_ms < until_ms {
                return None;
            }
            self.phase = if then_offsets {
                Phase::NeedLeaderOffsets
            } else {
                Phase::Fetching
            };
        }
        match self.phase {
            Phase::Fetching => Some(FollowerRequest::Fetch(FetchPosition {
                leader,
                replica_id: self.local,
                replica_epoch: self.broker_epoch,
                fetch_offset: log.log_end,
                last_fetched_epoch: log.latest_epoch(),
                current_leader_epoch: self.leader_epoch,
                log_start_offset: log.log_start,
            })),
            Phase::NeedLeaderOffsets => Some(FollowerRequest::LeaderOffsets {
                leader,
                current_leader_epoch: self.leader_epoch,
            }),
            Phase::NoLeader | Phase::Fenced | Phase::Backoff { .. } => None,
        }
    }

    /// Whether `position` is still what this follower would ask: the answer to anything else is
    /// stale (Kafka checks that the fetch offset and leader epoch are still current before
    /// processing a partition's response).
    fn is_current(&self, position: &FetchPosition, log: &LogView<'_>) -> bool {
        self.phase == Phase::Fetching
            && Some(position.leader) == self.leader
            && position.current_leader_epoch == self.leader_epoch
            && position.fetch_offset == log.log_end
    }

    fn back_off(&mut self, now_ms: i64, then_offsets: bool) {
        self.phase = Phase::Backoff {
            until_ms: now_ms.saturating_add(self.backoff_ms),
            then_offsets,
        };
    }

    /// The leader answered `position` with `answer`.
    pub fn on_fetch_response(
        &mut self,
        position: &FetchPosition,
        answer: FetchAnswer,
        log: LogView<'_>,
        now_ms: i64,
    ) -> FetchOutcome {
        if !self.is_current(position, &log) {
            return FetchOutcome::Nothing;
        }
        match answer {
            FetchAnswer::Data {
                diverging_epoch: Some(diverging),
                ..
            } => {
                // Kafka's `truncateOnFetchResponse`: cut where this log and the leader's agree
                // by epoch (KIP-279's rule), never at the high watermark alone.
                let to = truncation_offset(log.epochs, log.log_end, log.log_start, diverging);
                self.high_watermark = self.high_watermark.min(to);
                FetchOutcome::Truncate { to }
            }
            FetchAnswer::Data {
                high_watermark,
                log_start_offset,
                diverging_epoch: None,
            } => {
                self.leader_high_watermark = high_watermark;
                FetchOutcome::Append {
                    log_start: log_start_offset.max(log.log_start),
                }
            }
            FetchAnswer::Error(FetchError::FencedLeaderEpoch) => {
                // `AbstractFetcherThread.onPartitionFenced`: the request carried our current
                // epoch and the leader has a newer one, so our metadata is behind; fetching again
                // cannot succeed until it arrives.
                self.phase = Phase::Fenced;
                FetchOutcome::Nothing
            }
            FetchAnswer::Error(FetchError::OffsetOutOfRange) => {
                // `handleOutOfRangeError` → `fetchOffsetAndTruncate`: ask the leader for its log
                // bounds before deciding.
                self.phase = Phase::NeedLeaderOffsets;
                FetchOutcome::Nothing
            }
            FetchAnswer::Error(
                FetchError::UnknownLeaderEpoch
                | FetchError::NotLeaderOrFollower
                | FetchError::Other,
            ) => {
                // UNKNOWN_LEADER_EPOCH: the leader has not caught up with the metadata yet;
                // NOT_LEADER_OR_FOLLOWER: leadership is moving. Both are retried after
                // `replica.fetch.backoff.ms` (`partitionsWithError` → `delayPartitions`).
                self.back_off(now_ms, false);
                FetchOutcome::Nothing
            }
        }
    }

    /// The batches of the last [`FetchOutcome::Append`] are in the log, which now ends at
    /// `log_end`. Returns the follower's high watermark: the leader's, capped by the log end
    /// (Kafka's follower `updateHighWatermark`; it may go back when a new leader's high
    /// watermark still lags, KIP-207, but never past the local log).
    pub fn on_appended(&mut self, log_start: Offset, log_end: Offset) -> Offset {
        self.high_watermark = self.leader_high_watermark.max(log_start).min(log_end);
        self.high_watermark
    }

    /// The log was truncated to `log_end` by the caller: the high watermark cannot stay above it.
    pub fn on_truncated(&mut self, log_end: Offset) {
        self.high_watermark = self.high_watermark.min(log_end);
    }

    /// The leader's log bounds after OFFSET_OUT_OF_RANGE (Kafka's `fetchOffsetAndTruncate`):
    /// a leader whose log ends before ours (an unclean election) → truncate to its end; a leader
    /// whose log starts after ours ends (it deleted what we lack) → start over at its log
    /// start; otherwise fetch again from our log end.
    pub fn on_leader_offsets(
        &mut self,
        leader_log_start: Offset,
        leader_log_end: Offset,
        log: LogView<'_>,
    ) -> FetchOutcome {
        if self.phase != Phase::NeedLeaderOffsets {
            return FetchOutcome::Nothing;
        }
        self.phase = Phase::Fetching;
        if leader_log_end < log.log_end {
            self.high_watermark = self.high_watermark.min(leader_log_end);
            FetchOutcome::Truncate { to: leader_log_end }
        } else if leader_log_start > log.log_end {
            self.high_watermark = leader_log_start;
            FetchOutcome::TruncateFullyAndStartAt {
                start: leader_log_start,
            }
        } else {
            FetchOutcome::Nothing
        }
    }

    /// A request to the leader failed (timeout, disconnection, or an error answer to
    /// ListOffsets): retry after `replica.fetch.backoff.ms`, asking the same thing.
    pub fn on_request_failed(&mut self, now_ms: i64) {
        match self.phase {
            Phase::Fetching => self.back_off(now_ms, false),
            Phase::NeedLeaderOffsets => self.back_off(now_ms, true),
            Phase::NoLeader | Phase::Fenced | Phase::Backoff { .. } => {}
        }
    }
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
