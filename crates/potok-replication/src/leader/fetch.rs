//! The leader's answers: a follower's Fetch (Kafka's `Partition.fetchRecords` for a follower:
//! `localLogWithEpochOrThrow`, `followerReplicaOrThrow`, the diverging-epoch check of
//! `readRecords`, then `updateFollowerFetchState`), a follower's ListOffsets, and a client's
//! ListOffsets while the high watermark lags the epoch start (KIP-207).

use potok_records::{LeaderEpoch, Offset};

use super::{LeaderState, ReplicationError};
use crate::epochs::diverging_epoch;
use crate::follower::{FetchAnswer, FetchPosition, LogView};

/// The leader's answer to one partition of a follower's fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderFetchAnswer {
    /// What goes back to the follower. With no diverging epoch the broker reads records from
    /// the fetch offset up to the log end (within the request's byte limits); with one it sends
    /// none.
    pub answer: FetchAnswer,
    /// The high watermark after this fetch moved it: the broker completes the `acks=all`
    /// produce requests and wakes the consumers waiting for it.
    pub new_high_watermark: Option<Offset>,
}

/// What a client's ListOffsets asks, for the KIP-207 check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientOffsetQuery {
    /// `EARLIEST_TIMESTAMP` (and the other log-start lookups): always answerable.
    Earliest,
    /// `LATEST_TIMESTAMP`: the high watermark, which a new leader does not know yet.
    Latest,
    /// A timestamp lookup that found `found` (`None`: no record at or after the timestamp).
    Timestamp { found: Option<Offset> },
}

impl LeaderState {
    /// KIP-320's check of a request's `current_leader_epoch` (`None`: the request sent -1 and is
    /// not checked): an older epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
    pub fn check_leader_epoch(&self, request: Option<LeaderEpoch>) -> Result<(), ReplicationError> {
        let Some(request) = request.filter(|e| e.0 >= 0) else {
            return Ok(());
        };
        let current = self.leader_epoch;
        if request < current {
            Err(ReplicationError::FencedLeaderEpoch { request, current })
        } else if request > current {
            Err(ReplicationError::UnknownLeaderEpoch { request, current })
        } else {
            Ok(())
        }
    }

    /// Answers a follower's fetch `position` against the leader's log `log` (whose end is the
    /// one reported with `on_local_append`) at `now_ms`.
    ///
    /// In Kafka's order: the leader epoch (fencing a follower that has not learnt of a newer
    /// leader, or one that has while this leader has not); the follower must be a replica, and
    /// not an earlier incarnation than one already seen (KIP-903); then, when it names its last
    /// fetched epoch, whether its log diverges (Fetch v12+'s `DivergingEpoch`, KIP-320/KIP-595):
    /// a diverging follower's fetch does not count as progress, because its log end is not a
    /// prefix of the leader's; and finally the fetch offset must lie in the log. Only then is the
    /// follower's fetch state updated, which may move the high watermark.
    ///
    /// The answer carries the high watermark as it was before the update, as Kafka's
    /// `readRecords` captures it; the follower learns the moved one on its next fetch.
    pub fn answer_follower_fetch(
        &mut self,
        position: &FetchPosition,
        log: LogView<'_>,
        now_ms: i64,
    ) -> Result<LeaderFetchAnswer, ReplicationError> {
        self.check_leader_epoch(Some(position.current_leader_epoch))?;
        let replica = position.replica_id;
        let known_epoch = self
            .followers
            .get(&replica)
            .ok_or(ReplicationError::UnknownReplica(replica))?
            .broker_epoch;
        if let Some(known) = known_epoch {
            if position.replica_epoch >= 0 && position.replica_epoch < known {
                return Err(ReplicationError::StaleReplicaEpoch {
                    replica,
                    request: position.replica_epoch,
                    known,
                });
            }
        }
        let log_end = self.local_log_end;
        let high_watermark = self.high_watermark;
        if let Some(last) = position.last_fetched_epoch.filter(|e| e.0 >= 0) {
            if let Some(diverging) =
                diverging_epoch(log.epochs, log_end, last, position.fetch_offset)
            {
                return Ok(LeaderFetchAnswer {
                    answer: FetchAnswer::Data {
                        high_watermark,
                        log_start_offset: log.log_start,
                        diverging_epoch: Some(diverging),
                    },
                    new_high_watermark: None,
                });
            }
        }
        if position.fetch_offset > log_end || position.fetch_offset < log.log_start {
            return Err(ReplicationError::OffsetOutOfRange {
                offset: position.fetch_offset,
                log_start: log.log_start,
                log_end,
            });
        }
        let new_high_watermark = self.on_follower_fetch(replica, position.fetch_offset, now_ms)?;
        if position.replica_epoch >= 0 {
            if let Some(f) = self.followers.get_mut(&replica) {
                f.broker_epoch = Some(position.replica_epoch);
            }
        }
        Ok(LeaderFetchAnswer {
            answer: FetchAnswer::Data {
                high_watermark,
                log_start_offset: log.log_start,
                diverging_epoch: None,
            },
            new_high_watermark,
        })
    }

    /// KIP-207 for a client's ListOffsets: after a leader change the new leader's high
    /// watermark may still be below the start of its epoch, where the previous leader's was
    /// higher; answering it would move a consumer's "latest" backwards. Kafka's
    /// `Partition.fetchOffsetForTimestamp` then answers OFFSET_NOT_AVAILABLE for the latest
    /// offset and for a timestamp lookup landing at or past the high watermark (the client
    /// retries); the earliest offset is always answered.
    pub fn check_client_list_offsets(
        &self,
        query: ClientOffsetQuery,
    ) -> Result<(), ReplicationError> {
        let lagging = self.high_watermark < self.epoch_start_offset;
        let refused = lagging
            && match query {
                ClientOffsetQuery::Earliest => false,
                ClientOffsetQuery::Latest => true,
                ClientOffsetQuery::Timestamp { found } => {
                    found.is_some_and(|o| o >= self.high_watermark)
                }
            };
        if refused {
            return Err(ReplicationError::OffsetNotAvailable {
                high_watermark: self.high_watermark,
                epoch_start: self.epoch_start_offset,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
