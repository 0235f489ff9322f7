//! Which `__consumer_offsets` partitions this coordinator serves (Kafka's coordinator
//! partitions: `GroupCoordinator.onElection` / `onResignation`, the runtime's
//! `scheduleLoadOperation` / `scheduleUnloadOperation`).
//!
//! On a single node the coordinator serves every partition from the start
//! ([`GroupCoordinator::new`]). In a cluster ([`GroupCoordinator::new_partitioned`]) it serves
//! the partitions whose leader this broker is: the driver calls
//! [`GroupCoordinator::begin_load`] when the broker becomes a partition's leader, reads the
//! partition's log into a [`Loader`] off the coordinator, and hands it to
//! [`GroupCoordinator::complete_load`]; it calls [`GroupCoordinator::unload`] when the broker
//! stops leading it. Requests for a group of a partition being loaded answer
//! `COORDINATOR_LOAD_IN_PROGRESS`, of a partition not served `NOT_COORDINATOR` (clients look
//! the coordinator up again); so do the JoinGroup and SyncGroup requests parked on a group that
//! is unloaded (Kafka's `onResignation` completes them with `NOT_COORDINATOR`).
//!
//! Each load carries the partition's leader epoch: a load that completes after the partition
//! was unloaded, or loaded again at a newer epoch, is dropped.

use super::*;

/// A served partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Served {
    /// Its log is being read; groups answer `COORDINATOR_LOAD_IN_PROGRESS`.
    Loading { epoch: i32 },
    /// Loaded: its groups are served.
    Active { epoch: i32 },
}

/// Which partitions the coordinator serves.
#[derive(Debug, Clone, Default)]
pub(super) enum Ownership {
    /// Every partition (a single node leads all of them).
    #[default]
    All,
    /// Only these, by partition index.
    Some(HashMap<i32, Served>),
}

impl GroupCoordinator {
    /// A coordinator that serves no partition until [`Self::begin_load`] and
    /// [`Self::complete_load`] make it serve one (a broker in a cluster).
    pub fn new_partitioned(config: GroupConfig, now_ms: i64) -> GroupCoordinator {
        let mut c = GroupCoordinator::new(config, now_ms);
        c.ownership = Ownership::Some(HashMap::new());
        c
    }

    /// Whether `group_id` is served here: `Err(NOT_COORDINATOR)` when its partition is not,
    /// `Err(COORDINATOR_LOAD_IN_PROGRESS)` while it is being loaded.
    pub fn check_coordinator(&self, group_id: &str) -> Result<(), ErrorCode> {
        self.check_partition(self.partition_for(group_id))
    }

    pub(super) fn check_partition(&self, partition: i32) -> Result<(), ErrorCode> {
        match &self.ownership {
            Ownership::All => Ok(()),
            Ownership::Some(m) => match m.get(&partition) {
                Some(Served::Active { .. }) => Ok(()),
                Some(Served::Loading { .. }) => Err(ErrorCode::CoordinatorLoadInProgress),
                None => Err(ErrorCode::NotCoordinator),
            },
        }
    }

    /// Whether any served partition is still being loaded (ListGroups answers
    /// `COORDINATOR_LOAD_IN_PROGRESS` then, as Kafka's does).
    pub fn is_loading(&self) -> bool {
        match &self.ownership {
            Ownership::All => false,
            Ownership::Some(m) => m.values().any(|s| matches!(s, Served::Loading { .. })),
        }
    }

    /// The broker became the leader of `partition` at `epoch`: its groups answer
    /// `COORDINATOR_LOAD_IN_PROGRESS` until [`Self::complete_load`] with the same epoch. A
    /// partition still served from an older epoch is unloaded first. Ignored on a coordinator
    /// that serves every partition.
    pub fn begin_load(&mut self, partition: i32, epoch: i32, now_ms: i64) {
        let current = match &self.ownership {
            Ownership::All => return,
            Ownership::Some(m) => m.get(&partition).copied(),
        };
        match current {
            Some(Served::Loading { epoch: e } | Served::Active { epoch: e }) if e >= epoch => {}
            Some(_) => {
                self.unload(partition, now_ms);
                self.set_served(partition, Served::Loading { epoch });
            }
            None => self.set_served(partition, Served::Loading { epoch }),
        }
    }

    /// The live records of `partition`'s log read at `epoch` (see [`Self::begin_load`]): loads
    /// its groups (as [`Self::load`] does at start) and serves them. `None` when the load is
    /// stale (the partition was unloaded or reloaded at another epoch meanwhile): nothing is
    /// loaded.
    pub fn complete_load(
        &mut self,
        partition: i32,
        epoch: i32,
        loader: Loader,
        now_ms: i64,
    ) -> Option<LoadReport> {
        match &self.ownership {
            Ownership::Some(m) if m.get(&partition) == Some(&Served::Loading { epoch }) => {}
            _ => return None,
        }
        let before = self.groups.len();
        let mut report = self.load(loader, now_ms);
        report.groups = self.groups.len() - before;
        self.set_served(partition, Served::Active { epoch });
        Some(report)
    }

    /// The broker no longer leads `partition`: its groups are dropped (they live on in the log,
    /// for the next leader to load), their timers cancelled, the JoinGroup and SyncGroup
    /// requests parked on them answered `NOT_COORDINATOR`, and later requests for them answer
    /// `NOT_COORDINATOR`. Ignored on a coordinator that serves every partition.
    pub fn unload(&mut self, partition: i32, _now_ms: i64) {
        let Ownership::Some(m) = &mut self.ownership else {
            return;
        };
        m.remove(&partition);
        let ids: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.partition == partition)
            .map(|g| g.group_id.clone())
            .collect();
        for id in ids {
            let Some(g) = self.groups.remove(&id) else {
                continue;
            };
            for m in g.members.values() {
                self.timers
                    .cancel(&TimerKey::Heartbeat(id.clone(), m.member_id.clone()));
                if let Some(t) = m.join_waiter {
                    self.reply_join(
                        t,
                        JoinGroupResponse::error(ErrorCode::NotCoordinator, m.member_id.clone()),
                    );
                }
                if let Some(t) = m.sync_waiter {
                    self.reply_sync(t, SyncGroupResponse::error(ErrorCode::NotCoordinator));
                }
            }
            for p in &g.pending_members {
                self.timers
                    .cancel(&TimerKey::PendingMember(id.clone(), p.clone()));
            }
            self.timers.cancel(&TimerKey::Join(id.clone()));
            self.timers.cancel(&TimerKey::PendingSync(id.clone()));
        }
        // Transactional offsets of the partition wait in its log for their marker; the next
        // leader stages them again when it loads.
        for offsets in self.txn_offsets.values_mut() {
            offsets.retain(|o| o.offsets_partition != partition);
        }
        self.txn_offsets.retain(|_, o| !o.is_empty());
    }

    /// The partitions served (loaded or loading), in order.
    pub fn served_partitions(&self) -> Option<Vec<i32>> {
        match &self.ownership {
            Ownership::All => None,
            Ownership::Some(m) => {
                let mut v: Vec<i32> = m.keys().copied().collect();
                v.sort_unstable();
                Some(v)
            }
        }
    }

    fn set_served(&mut self, partition: i32, s: Served) {
        if let Ownership::Some(m) = &mut self.ownership {
            m.insert(partition, s);
        }
    }
}
