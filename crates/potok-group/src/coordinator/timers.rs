//! The coordinator's timers: Kafka's purgatories as keyed deadlines in one set.

use super::*;

/// Timer identities. A timer is rescheduled by replacing its entry, never duplicated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// Session expiry of a member (Kafka's `DelayedHeartbeat`).
    Heartbeat(String, String),
    /// Expiry of a KIP-394 pending member that never rejoined.
    PendingMember(String, String),
    /// End of the join phase (`DelayedJoin` / `InitialDelayedJoin`).
    Join(String),
    /// Members that do not send SyncGroup within the rebalance timeout are removed.
    PendingSync(String),
    /// The periodic offset-expiration task.
    OffsetExpiry,
}

/// A set of deadlines keyed by [`TimerKey`], ordered by time.
#[derive(Debug, Default)]
pub(super) struct Timers {
    pub(super) by_time: BTreeSet<(i64, TimerKey)>,
    pub(super) by_key: HashMap<TimerKey, i64>,
}

impl Timers {
    pub(super) fn schedule(&mut self, key: TimerKey, deadline_ms: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), deadline_ms) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((deadline_ms, key));
    }

    pub(super) fn cancel(&mut self, key: &TimerKey) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    pub(super) fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    pub(super) fn pop_due(&mut self, now_ms: i64) -> Option<(i64, TimerKey)> {
        let (t, _) = self.by_time.first()?;
        if *t > now_ms {
            return None;
        }
        let (t, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some((t, key))
    }
}
