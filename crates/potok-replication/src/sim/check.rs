//! The simulation's invariants, checked after every step and at the end of a seed.

use potok_records::{LeaderEpoch, Offset};

use super::controller::Controller;
use super::log::{MemLog, Rec};
use super::replica::{Replica, Role};

pub struct Checker {
    /// The committed prefix: the records below the highest high watermark any replica has
    /// reported. Once an offset is in it, its record never changes.
    pub committed: Vec<Rec>,
    /// Per replica: the prefix of its log already compared with `committed` and unchanged since.
    checked: Vec<i64>,
    /// Per replica: the leader epoch and high watermark it had as leader at the last step.
    leader_hw: Vec<Option<(LeaderEpoch, Offset)>>,
    controller_epoch: LeaderEpoch,
    /// Acknowledged `acks=all` writes: offset and value.
    pub acked: Vec<(i64, u64)>,
    /// The highest offset below which a leader deleted records (DeleteRecords): those records
    /// are gone by the user's request and no longer checked. A replica may still hold a
    /// divergent copy there: for an epoch older than every epoch the leader still has, Kafka's
    /// `endOffsetFor` answers the leader's log start, so the follower cuts its tail only down to
    /// it and deletes the rest when it learns that log start.
    pub deleted_below: i64,
}

impl Checker {
    pub fn new(replicas: usize) -> Checker {
        Checker {
            committed: Vec::new(),
            checked: vec![0; replicas],
            leader_hw: vec![None; replicas],
            controller_epoch: LeaderEpoch(-1),
            acked: Vec::new(),
            deleted_below: 0,
        }
    }

    /// Every record below the replica's high watermark is the committed one at its offset
    /// (extending the committed prefix with what no replica reported before).
    pub fn check_prefix(&mut self, r: &mut Replica) -> Result<(), String> {
        let hw = r.hw().0;
        let from = self.checked[r.id]
            .min(r.log.low_water)
            .max(r.log.start)
            .max(self.deleted_below);
        r.log.low_water = i64::MAX;
        for o in from..hw {
            let Some(rec) = r.log.get(o) else {
                return Err(format!(
                    "replica {}: high watermark {hw} past its log end {}",
                    r.id,
                    r.log.end()
                ));
            };
            let i = o as usize;
            match self.committed.get(i) {
                Some(c) if *c != rec => {
                    return Err(format!(
                        "replica {} has {rec:?} at offset {o} below its high watermark {hw}, \
                         but {c:?} was committed there",
                        r.id
                    ))
                }
                Some(_) => {}
                None if i == self.committed.len() => self.committed.push(rec),
                None => return Err(format!("replica {}: a gap below offset {o}", r.id)),
            }
        }
        self.checked[r.id] = from.max(hw);
        Ok(())
    }

    /// An `acks=all` write was acknowledged by `r`: it must be committed.
    pub fn on_acked(&mut self, r: &mut Replica, offset: i64, value: u64) -> Result<(), String> {
        self.check_prefix(r)?;
        match self.committed.get(offset as usize) {
            Some(c) if c.value == value => {
                self.acked.push((offset, value));
                Ok(())
            }
            other => Err(format!(
                "replica {} acknowledged value {value} at offset {offset}, committed: {other:?}",
                r.id
            )),
        }
    }

    /// A replica became leader: its log must hold every committed (so every acknowledged)
    /// record, or the new leader's log — which every follower copies — has lost it.
    pub fn on_new_leader(&self, r: &Replica) -> Result<(), String> {
        for (i, c) in self.committed.iter().enumerate() {
            let o = i as i64;
            if o < r.log.start.max(self.deleted_below) {
                continue;
            }
            if r.log.get(o) != Some(*c) {
                let acked = self.acked.iter().any(|(a, _)| *a == o);
                return Err(format!(
                    "new leader {} (epoch {}) has {:?} at offset {o} where {c:?} was committed{}",
                    r.id,
                    r.known_leader_epoch,
                    r.log.get(o),
                    if acked { " and acknowledged" } else { "" }
                ));
            }
        }
        Ok(())
    }

    /// The per-step checks.
    pub fn after_step(
        &mut self,
        replicas: &mut [Replica],
        ctrl: &Controller,
    ) -> Result<(), String> {
        if ctrl.state.leader_epoch < self.controller_epoch {
            return Err("the controller's leader epoch went back".into());
        }
        self.controller_epoch = ctrl.state.leader_epoch;
        for r in replicas.iter_mut().filter(|r| r.alive) {
            self.check_prefix(r)?;
            check_epochs(&r.log).map_err(|e| format!("replica {}: {e}", r.id))?;
            if let Role::Leader(l) = &r.role {
                let now = (l.state.leader_epoch(), l.state.high_watermark());
                if let Some((epoch, hw)) = self.leader_hw[r.id] {
                    if epoch == now.0 && now.1 < hw {
                        return Err(format!(
                            "leader {} moved its high watermark back from {hw} to {} in epoch {epoch}",
                            r.id, now.1
                        ));
                    }
                }
                self.leader_hw[r.id] = Some(now);
            } else {
                self.leader_hw[r.id] = None;
            }
        }
        Ok(())
    }
}

/// A log's epochs only grow: its leader-epoch cache strictly, its records never decrease.
pub fn check_epochs(log: &MemLog) -> Result<(), String> {
    for w in log.epochs.windows(2) {
        if w[0].epoch >= w[1].epoch || w[0].start_offset > w[1].start_offset {
            return Err(format!("epoch cache out of order: {:?}", log.epochs));
        }
    }
    Ok(())
}

/// At the end: records' epochs never decrease along a log.
pub fn check_record_epochs(log: &MemLog) -> Result<(), String> {
    for (i, w) in log.records.windows(2).enumerate() {
        if w[0].epoch > w[1].epoch {
            return Err(format!(
                "record epochs decrease at offset {}",
                log.start + i as i64 + 1
            ));
        }
    }
    Ok(())
}
