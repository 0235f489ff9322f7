//! Leadership of an internal topic's partitions, as the coordinators need it: the broker that
//! leads a partition of `__consumer_offsets` (or `__transaction_state`) is the coordinator of
//! the groups (transactional ids) stored there, loads them from the partition's log when it
//! becomes leader and drops them when it stops leading (Kafka's `ReplicaManager.applyDelta`
//! calling `GroupCoordinator.onElection` / `onResignation` for the internal topics' partitions).
//!
//! A coordinator registers a [`LeadershipListener`] for its topic with
//! [`TopicManager::watch_leadership`]. After every role change that follows the metadata image
//! (`replicated.rs` → `roles.rs`), the manager compares which partitions of each watched topic
//! this broker leads, and at which leader epoch, with what it last reported, and reports the
//! difference in partition order: [`LeadershipChange::Resigned`] for a partition no longer led
//! (or led at another epoch: the log may have been truncated and appended to by other leaders
//! in between, so what was loaded is stale), then [`LeadershipChange::Elected`] for a partition
//! led now. Registering reports the partitions led at that moment, so a coordinator registered
//! after start sees the leaderships the image already gave this broker. A topic created or
//! deleted later is picked up by the same comparison (its partitions appear or disappear).
//!
//! # Threads and locks
//!
//! Listeners are called on the thread that applied the metadata (the quorum driver's OS
//! thread, or the caller of `watch_leadership`), after every topic lock was released, under the
//! watch list's own mutex so that the reports of one topic never interleave or reorder. A
//! listener must therefore return quickly: it records the change and hands any IO (reading a
//! partition's log to load it) to a task, and it must not call back into `watch_leadership`.

use super::*;

/// One change of this broker's leadership of an internal topic's partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipChange {
    /// This broker now leads `partition` at `leader_epoch`: load its state from the log.
    Elected {
        /// The partition index.
        partition: i32,
        /// The leader epoch it leads at.
        leader_epoch: LeaderEpoch,
    },
    /// This broker no longer leads `partition` at the epoch last reported (it follows, is not
    /// a replica any more, the topic was deleted, or it leads at a newer epoch and an
    /// [`LeadershipChange::Elected`] follows): drop its state.
    Resigned {
        /// The partition index.
        partition: i32,
        /// The leader epoch it led at.
        leader_epoch: LeaderEpoch,
    },
}

/// Receives the leadership changes of one topic's partitions (see the module docs for the
/// thread it runs on and what it may do).
pub trait LeadershipListener: Send + Sync {
    /// `changes` of `topic`, in the order they apply.
    fn leadership_changed(&self, topic: &str, changes: &[LeadershipChange]);
}

/// One registered listener and what it was last told.
struct Watch {
    topic: String,
    listener: Arc<dyn LeadershipListener>,
    /// The partitions it was last told this broker leads, with their epochs.
    led: BTreeMap<i32, LeaderEpoch>,
}

/// The registered listeners (part of [`ReplicationContext`]).
#[derive(Default)]
pub struct LeadershipWatches {
    watches: Mutex<Vec<Watch>>,
}

impl std::fmt::Debug for LeadershipWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<String> = lock(&self.watches)
            .iter()
            .map(|w| w.topic.clone())
            .collect();
        f.debug_struct("LeadershipWatches")
            .field("topics", &topics)
            .finish()
    }
}

/// The changes from `before` to `now` (see the module docs for their order).
fn diff(
    before: &BTreeMap<i32, LeaderEpoch>,
    now: &BTreeMap<i32, LeaderEpoch>,
) -> Vec<LeadershipChange> {
    let mut out = Vec::new();
    for (&partition, &leader_epoch) in before {
        if now.get(&partition) != Some(&leader_epoch) {
            out.push(LeadershipChange::Resigned {
                partition,
                leader_epoch,
            });
        }
    }
    for (&partition, &leader_epoch) in now {
        if before.get(&partition) != Some(&leader_epoch) {
            out.push(LeadershipChange::Elected {
                partition,
                leader_epoch,
            });
        }
    }
    out
}

impl TopicManager {
    /// Registers `listener` for the leadership of `topic`'s partitions and reports at once the
    /// partitions this broker leads now (see the module docs).
    pub fn watch_leadership(&self, topic: &str, listener: Arc<dyn LeadershipListener>) {
        let mut watches = lock(&self.replication.leadership.watches);
        let now = self.led_partitions(topic);
        let changes = diff(&BTreeMap::new(), &now);
        if !changes.is_empty() {
            listener.leadership_changed(topic, &changes);
        }
        watches.push(Watch {
            topic: topic.to_string(),
            listener,
            led: now,
        });
    }

    /// Reports every watched topic's leadership changes since the last report. Called after
    /// the roles followed the metadata image; must not be called with a topic lock held.
    pub(super) fn report_leadership(&self) {
        let mut watches = lock(&self.replication.leadership.watches);
        for w in watches.iter_mut() {
            let now = self.led_partitions(&w.topic);
            let changes = diff(&w.led, &now);
            if changes.is_empty() {
                continue;
            }
            w.led = now;
            w.listener.leadership_changed(&w.topic, &changes);
        }
    }

    /// The partitions of `topic` this broker leads now, with their leader epochs.
    fn led_partitions(&self, topic: &str) -> BTreeMap<i32, LeaderEpoch> {
        let Some(t) = self.get(topic) else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for p in t.state().partitions {
            if let Role::Leader(s) = &*lock(&p.replica) {
                out.insert(p.index, s.leader_epoch());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &[(i32, i32)]) -> BTreeMap<i32, LeaderEpoch> {
        v.iter().map(|&(p, e)| (p, LeaderEpoch(e))).collect()
    }

    #[test]
    fn diff_resigns_before_it_elects_and_reloads_on_a_new_epoch() {
        let before = m(&[(0, 1), (1, 1), (2, 4)]);
        let now = m(&[(1, 1), (2, 5), (3, 0)]);
        assert_eq!(
            diff(&before, &now),
            vec![
                LeadershipChange::Resigned {
                    partition: 0,
                    leader_epoch: LeaderEpoch(1)
                },
                LeadershipChange::Resigned {
                    partition: 2,
                    leader_epoch: LeaderEpoch(4)
                },
                LeadershipChange::Elected {
                    partition: 2,
                    leader_epoch: LeaderEpoch(5)
                },
                LeadershipChange::Elected {
                    partition: 3,
                    leader_epoch: LeaderEpoch(0)
                },
            ]
        );
        assert!(diff(&now, &now).is_empty());
    }
}
