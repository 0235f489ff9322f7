//! The delayed produce of `acks=all` (Kafka's `DelayedProduce` in the produce purgatory): after
//! the leader appended, the response waits until the high watermark covers each partition's
//! records, i.e. until every member of the (maximal) ISR has them.
//!
//! - **Completion.** Each partition is settled by [`Partition::acks_all_outcome`]: done once the
//!   high watermark reached the batch's end, NOT_ENOUGH_REPLICAS_AFTER_APPEND if the committed
//!   ISR shrank below `min.insync.replicas` while it waited, NOT_LEADER_OR_FOLLOWER if the
//!   partition changed leader epoch or was closed (its records may be truncated by the new
//!   leader, so they must not be acknowledged).
//! - **Waking.** The request registers one [`Notify`] as a waiter on each partition it waits
//!   for; the partition wakes its waiters on every append and on every change of its
//!   replication state ([`Partition::with_leader`]: follower fetches, ISR changes), so
//!   a high-watermark advance completes the produce without polling. Registering before
//!   checking, and `Notify`'s stored permit, mean no wake-up is lost between the two.
//! - **Bounds.** The wait ends at the request's `timeout_ms` with REQUEST_TIMED_OUT for the
//!   partitions still short of it (Kafka's `onExpiration`). A connection handles one request at
//!   a time (`crate::server`; Kafka mutes the channel likewise), so at most one delayed produce
//!   per connection exists, bounded by `max.connections`; it holds only the response being built
//!   and the partitions' handles, never the records.

use std::sync::Arc;
use std::time::Duration;

use potok_protocol::ErrorCode;
use potok_records::{LeaderEpoch, Offset};
use potok_replication::AcksOutcome;
use tokio::sync::Notify;

use crate::topics::Partition;

/// One partition's appended records waiting for the ISR.
#[derive(Debug)]
pub struct Waiting {
    /// The partition.
    pub partition: Arc<Partition>,
    /// The leader epoch the records were appended in.
    pub leader_epoch: LeaderEpoch,
    /// One past the last appended offset: the high watermark must reach it.
    pub required_end: Offset,
    /// `min.insync.replicas` for the partition's topic.
    pub min_isr: usize,
}

impl Waiting {
    /// `None` while it must wait; else the partition's result.
    fn settled(&self) -> Option<Result<(), ErrorCode>> {
        match self
            .partition
            .acks_all_outcome(self.leader_epoch, self.required_end, self.min_isr)
        {
            Err(code) => Some(Err(code)),
            Ok(AcksOutcome::Done) => Some(Ok(())),
            Ok(AcksOutcome::NotEnoughReplicasAfterAppend) => {
                Some(Err(ErrorCode::NotEnoughReplicasAfterAppend))
            }
            Ok(AcksOutcome::Wait) => None,
        }
    }
}

/// Waits until every partition of `waiting` is settled or `timeout` passed, and returns each
/// one's result in order (REQUEST_TIMED_OUT for those still waiting at the deadline).
pub async fn wait(waiting: &[Waiting], timeout: Duration) -> Vec<Result<(), ErrorCode>> {
    let mut results: Vec<Option<Result<(), ErrorCode>>> = vec![None; waiting.len()];
    let notify = Arc::new(Notify::new());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for (w, r) in waiting.iter().zip(results.iter_mut()) {
            if r.is_none() {
                w.partition.add_waiter(&notify);
                *r = w.settled();
            }
        }
        if results.iter().all(Option::is_some) {
            break;
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {
                // One last look: the deadline and a completing fetch may coincide.
                for (w, r) in waiting.iter().zip(results.iter_mut()) {
                    if r.is_none() {
                        *r = w.settled();
                    }
                }
                break;
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ErrorCode::RequestTimedOut)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use potok_metadata::{BrokerId, PartitionState};

    use super::*;
    use crate::config::BrokerConfig;
    use crate::topics::{now_ms, NewTopic, TopicManager};

    /// A partition led by broker 1 with broker 2 in its ISR (broker 2 has not fetched yet),
    /// holding one record: the high watermark is 0 until broker 2 fetches from offset 1.
    fn partition(dir: &std::path::Path) -> (TopicManager, Arc<Partition>) {
        let cfg =
            BrokerConfig::from_properties(vec![("log.dirs".into(), dir.display().to_string())])
                .unwrap();
        let m = TopicManager::open(&cfg).unwrap();
        let t = m
            .create_topic(NewTopic {
                name: "acks".into(),
                partitions: 1,
                configs: BTreeMap::new(),
            })
            .unwrap();
        let p = t.partition(0).unwrap();
        let state = PartitionState {
            replicas: vec![BrokerId(1), BrokerId(2)],
            isr: vec![BrokerId(1), BrokerId(2)],
            leader: Some(BrokerId(1)),
            leader_epoch: LeaderEpoch(1),
            partition_epoch: 1,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        p.become_leader(BrokerId(1), &state, now_ms()).unwrap();
        let batch = potok_records::RecordBatchBuilder::new()
            .key_value(1, None, Some(b"v"))
            .build()
            .unwrap()
            .into_bytes();
        p.append(batch, now_ms()).unwrap();
        assert_eq!(
            p.with_leader(|r| r.clone()).unwrap().high_watermark(),
            Offset(0)
        );
        (m, p)
    }

    fn waiting(p: &Arc<Partition>) -> Vec<Waiting> {
        vec![Waiting {
            partition: Arc::clone(p),
            leader_epoch: LeaderEpoch(1),
            required_end: Offset(1),
            min_isr: 2,
        }]
    }

    #[tokio::test]
    async fn completes_when_a_follower_fetch_moves_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, p) = partition(dir.path());
        let w = waiting(&p);
        let fetcher = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // A fetch below the end does not complete it; the one reaching it does.
                p.with_leader(|r| r.on_follower_fetch(BrokerId(2), Offset(0), now_ms()))
                    .unwrap()
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                p.with_leader(|r| r.on_follower_fetch(BrokerId(2), Offset(1), now_ms()))
                    .unwrap()
                    .unwrap();
            })
        };
        let started = std::time::Instant::now();
        let r = wait(&w, Duration::from_secs(30)).await;
        assert_eq!(r, vec![Ok(())]);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(10));
        fetcher.await.unwrap();
    }

    #[tokio::test]
    async fn times_out_while_a_follower_lacks_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, p) = partition(dir.path());
        let r = wait(&waiting(&p), Duration::from_millis(100)).await;
        assert_eq!(r, vec![Err(ErrorCode::RequestTimedOut)]);
        // A zero timeout still completes what is already complete.
        p.with_leader(|r| r.on_follower_fetch(BrokerId(2), Offset(1), now_ms()))
            .unwrap()
            .unwrap();
        assert_eq!(wait(&waiting(&p), Duration::ZERO).await, vec![Ok(())]);
    }

    #[tokio::test]
    async fn an_isr_shrinking_below_min_isr_while_waiting_is_not_enough_after_append() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, p) = partition(dir.path());
        let w = waiting(&p);
        let shrink = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // The committed ISR becomes the leader alone: the high watermark reaches the
                // leader's end, but min.insync.replicas=2 is no longer met.
                p.with_leader(|r| r.on_isr_committed(vec![BrokerId(1)], 2))
                    .unwrap()
                    .unwrap();
            })
        };
        let r = wait(&w, Duration::from_secs(30)).await;
        assert_eq!(r, vec![Err(ErrorCode::NotEnoughReplicasAfterAppend)]);
        shrink.await.unwrap();
    }

    #[tokio::test]
    async fn a_leadership_change_while_waiting_is_not_leader() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, p) = partition(dir.path());
        let w = waiting(&p);
        let moved = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let state = PartitionState {
                    replicas: vec![BrokerId(1), BrokerId(2)],
                    isr: vec![BrokerId(1)],
                    leader: Some(BrokerId(1)),
                    leader_epoch: LeaderEpoch(2),
                    partition_epoch: 2,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                };
                p.become_leader(BrokerId(1), &state, now_ms()).unwrap();
            })
        };
        let r = wait(&w, Duration::from_secs(30)).await;
        assert_eq!(r, vec![Err(ErrorCode::NotLeaderOrFollower)]);
        moved.await.unwrap();
    }
}
