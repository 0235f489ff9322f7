//! One simulated broker's replica of the partition: an in-memory log, and the crate's
//! [`LeaderState`] or [`FollowerState`] driven as a broker would drive them (one fetch in
//! flight, a fetch timeout, AlterPartition retries, delayed `acks=all` produces).

use potok_metadata::{BrokerId, PartitionState};
use potok_records::{LeaderEpoch, Offset};

use super::log::{MemLog, Rec};
use super::{Msg, Node, SimConfig};
use crate::follower::{FetchAnswer, FetchOutcome, FetchPosition, FollowerRequest, FollowerState};
use crate::leader::{AcksOutcome, LeaderState};

/// An `acks=all` produce waiting for the high watermark (Kafka's `DelayedProduce`).
pub struct PendingAck {
    pub offset: i64,
    pub value: u64,
    pub deadline_tick: u64,
}

pub struct LeaderRole {
    pub state: LeaderState,
    pub acks: Vec<PendingAck>,
    /// When the in-flight AlterPartition was sent, until an answer arrives.
    pub alter_sent: Option<u64>,
    /// The in-flight AlterPartition's members with their broker epochs as proposed: a retry
    /// resends exactly this, never epochs learnt since (a restarted member's new epoch must not
    /// vouch for its previous incarnation's log end).
    pub alter_isr: Vec<(BrokerId, i64)>,
    /// The in-flight proposal's id: answers carry it, and answers to another are ignored.
    pub alter_id: u64,
}

pub enum Inflight {
    Fetch(FetchPosition),
    Offsets,
}

pub struct FollowerRole {
    pub state: FollowerState,
    /// The request in flight: its id, when it was sent, and what it asked.
    pub inflight: Option<(u64, u64, Inflight)>,
}

pub enum Role {
    None,
    Leader(Box<LeaderRole>),
    Follower(FollowerRole),
}

/// What a replica's step asks of the world.
pub enum Out {
    Send(Node, Msg),
    /// An `acks=all` produce was answered without error.
    Acked {
        offset: i64,
        value: u64,
    },
    /// This replica now leads at a new epoch (the checker looks at its log).
    BecameLeader,
    /// A rule was broken where only the replica can see it.
    Violation(String),
}

pub struct Replica {
    pub id: usize,
    pub alive: bool,
    pub broker_epoch: i64,
    pub log: MemLog,
    /// The high watermark when there is no role (just restarted) and the checkpointed one.
    pub saved_hw: Offset,
    pub hw_checkpoint: Offset,
    pub role: Role,
    pub applied_version: u64,
    pub known_leader_epoch: LeaderEpoch,
    /// Truncations on a diverging epoch or after OFFSET_OUT_OF_RANGE.
    pub truncations: u64,
    /// Restarts at the leader's log start after OFFSET_OUT_OF_RANGE.
    pub resets: u64,
    next_request_id: u64,
}

impl Replica {
    pub fn new(id: usize, broker_epoch: i64) -> Replica {
        Replica {
            id,
            alive: true,
            broker_epoch,
            log: MemLog::default(),
            saved_hw: Offset(0),
            hw_checkpoint: Offset(0),
            role: Role::None,
            applied_version: 0,
            known_leader_epoch: LeaderEpoch(-1),
            truncations: 0,
            resets: 0,
            next_request_id: 0,
        }
    }

    pub fn broker(&self) -> BrokerId {
        BrokerId(self.id as i32)
    }

    pub fn hw(&self) -> Offset {
        match &self.role {
            Role::Leader(l) => l.state.high_watermark(),
            Role::Follower(f) => f.state.high_watermark(),
            Role::None => self.saved_hw,
        }
    }

    pub fn leader(&mut self) -> Option<&mut LeaderRole> {
        match &mut self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// A crash: everything in memory is gone and so is the unflushed tail of the log; the
    /// high watermark comes back from its checkpoint, capped by what survived.
    pub fn crash(&mut self) {
        self.alive = false;
        self.role = Role::None;
        self.log.truncate(Offset(self.log.flushed));
        self.saved_hw = self.hw_checkpoint.min(self.log.end());
        self.applied_version = 0;
    }

    pub fn restart(&mut self, broker_epoch: i64) {
        self.alive = true;
        self.broker_epoch = broker_epoch;
    }

    pub fn flush(&mut self) {
        self.log.flushed = self.log.end().0;
        self.hw_checkpoint = self.hw();
    }

    /// Truncation to the high watermark, the planted bug's (pre-KIP-101) rule.
    fn truncate_to_hw(&mut self) {
        let hw = self.hw();
        if hw < self.log.end() {
            self.log.truncate(hw);
        }
    }

    /// Applies the controller's state `s` (version `version`), as a broker applies a metadata
    /// delta: Kafka's `makeLeader` / `makeFollower`.
    pub fn apply_metadata(
        &mut self,
        s: &PartitionState,
        version: u64,
        now_ms: i64,
        cfg: &SimConfig,
    ) -> Vec<Out> {
        let mut out = Vec::new();
        if version <= self.applied_version {
            return out;
        }
        self.applied_version = version;
        if s.leader_epoch < self.known_leader_epoch {
            out.push(Out::Violation(format!(
                "replica {} saw leader epoch {} after {}",
                self.id, s.leader_epoch, self.known_leader_epoch
            )));
        }
        self.known_leader_epoch = s.leader_epoch;
        let me = self.broker();
        if s.leader == Some(me) {
            if let Role::Leader(l) = &mut self.role {
                if l.state.leader_epoch() == s.leader_epoch {
                    if s.partition_epoch > l.state.partition_epoch()
                        && l.state
                            .on_isr_committed(s.isr.clone(), s.partition_epoch)
                            .is_ok()
                    {
                        l.alter_sent = None;
                    }
                    return out;
                }
            }
            let hw = self.hw();
            let end = self.log.end();
            self.log.assign_epoch(s.leader_epoch, end);
            match LeaderState::become_leader(me, s, end, hw, now_ms) {
                Ok(state) => {
                    self.role = Role::Leader(Box::new(LeaderRole {
                        state,
                        acks: Vec::new(),
                        alter_sent: None,
                        alter_isr: Vec::new(),
                        alter_id: 0,
                    }));
                    out.push(Out::BecameLeader);
                }
                Err(e) => out.push(Out::Violation(format!("become_leader: {e}"))),
            }
            return out;
        }
        let leader_changed = match &mut self.role {
            Role::Follower(f) => {
                let changed = f.state.become_follower(s.leader, s.leader_epoch);
                if changed {
                    f.inflight = None;
                }
                changed
            }
            Role::Leader(_) | Role::None => {
                // A deposed leader's waiting produces fail (NOT_LEADER_OR_FOLLOWER).
                let state = FollowerState::new(
                    me,
                    self.broker_epoch,
                    s.leader,
                    s.leader_epoch,
                    self.hw(),
                    self.log.view(),
                    cfg.fetch_backoff_ms,
                );
                self.role = Role::Follower(FollowerRole {
                    state,
                    inflight: None,
                });
                true
            }
        };
        if leader_changed && cfg.bugs.truncate_to_high_watermark {
            self.truncate_to_hw();
        }
        out
    }

    /// The follower's part of a step: time out a lost request, send the next one.
    pub fn follower_tick(&mut self, tick: u64, now_ms: i64, cfg: &SimConfig) -> Vec<Out> {
        let mut out = Vec::new();
        let Role::Follower(f) = &mut self.role else {
            return out;
        };
        if let Some((_, sent, _)) = &f.inflight {
            if tick - sent < cfg.request_timeout_ticks {
                return out;
            }
            f.inflight = None;
            f.state.on_request_failed(now_ms);
        }
        let Some(request) = f.state.next_request(self.log.view(), now_ms) else {
            return out;
        };
        let id = self.next_request_id;
        self.next_request_id += 1;
        let (to, msg, what) = match request {
            FollowerRequest::Fetch(pos) => (
                pos.leader,
                Msg::Fetch {
                    id,
                    from: self.id,
                    pos,
                },
                Inflight::Fetch(pos),
            ),
            FollowerRequest::LeaderOffsets {
                leader,
                current_leader_epoch,
            } => (
                leader,
                Msg::Offsets {
                    id,
                    from: self.id,
                    from_epoch: self.broker_epoch,
                    epoch: current_leader_epoch,
                },
                Inflight::Offsets,
            ),
        };
        f.inflight = Some((id, tick, what));
        out.push(Out::Send(Node::Broker(to.0 as usize), msg));
        out
    }

    /// The leader's answer to a fetch (`records` from the fetch offset when no error and no
    /// diverging epoch).
    pub fn on_fetch_answer(
        &mut self,
        id: u64,
        answer: FetchAnswer,
        records: &[Rec],
        now_ms: i64,
        cfg: &SimConfig,
    ) {
        let hw_before = self.hw();
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        let pos = match &f.inflight {
            Some((i, _, Inflight::Fetch(pos))) if *i == id => *pos,
            _ => return,
        };
        f.inflight = None;
        match f
            .state
            .on_fetch_response(&pos, answer, self.log.view(), now_ms)
        {
            FetchOutcome::Nothing => {}
            FetchOutcome::Append { log_start } => {
                for r in records {
                    self.log.append(*r);
                }
                // Kafka's follower `maybeIncrementLogStartOffset`: the leader deleted below its
                // log start, so the follower does too (never past its own log end).
                self.log.advance_start(log_start);
                f.state.on_appended(Offset(self.log.start), self.log.end());
            }
            FetchOutcome::Truncate { to } => {
                let to = if cfg.bugs.truncate_to_high_watermark {
                    hw_before.min(self.log.end())
                } else {
                    to
                };
                self.log.truncate(to);
                f.state.on_truncated(self.log.end());
                self.truncations += 1;
            }
            FetchOutcome::TruncateFullyAndStartAt { start } => {
                self.log.truncate_fully_and_start_at(start);
                f.state.on_truncated(self.log.end());
                self.truncations += 1;
                self.resets += 1;
            }
        }
    }

    pub fn on_offsets_answer(&mut self, id: u64, answer: Option<(Offset, Offset)>, now_ms: i64) {
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        match &f.inflight {
            Some((i, _, Inflight::Offsets)) if *i == id => {}
            _ => return,
        }
        f.inflight = None;
        let Some((start, end)) = answer else {
            f.state.on_request_failed(now_ms);
            return;
        };
        match f.state.on_leader_offsets(start, end, self.log.view()) {
            FetchOutcome::Truncate { to } => {
                self.log.truncate(to);
                f.state.on_truncated(self.log.end());
                self.truncations += 1;
            }
            FetchOutcome::TruncateFullyAndStartAt { start } => {
                self.log.truncate_fully_and_start_at(start);
                f.state.on_truncated(self.log.end());
                self.resets += 1;
            }
            FetchOutcome::Nothing | FetchOutcome::Append { .. } => {}
        }
    }

    /// The leader's part of a step: ISR maintenance with AlterPartition, then the waiting
    /// produces.
    pub fn leader_tick(&mut self, tick: u64, now_ms: i64, cfg: &SimConfig) -> Vec<Out> {
        let mut out = Vec::new();
        let broker_epoch = self.broker_epoch;
        let me = self.broker();
        let Role::Leader(l) = &mut self.role else {
            return out;
        };
        let st = &mut l.state;
        let send_alter = |st: &LeaderState, isr: &[(BrokerId, i64)], proposal: u64| {
            Out::Send(
                Node::Controller,
                Msg::Alter {
                    proposal,
                    from: me,
                    from_epoch: broker_epoch,
                    leader_epoch: st.leader_epoch(),
                    partition_epoch: st.partition_epoch(),
                    isr: isr.to_vec(),
                },
            )
        };
        match st.pending_isr() {
            None => {
                let proposal = st
                    .isr_to_shrink(now_ms, cfg.lag_max_ms)
                    .map(|isr| (isr, true))
                    .or_else(|| st.isr_to_expand().map(|isr| (isr, false)));
                if let Some((isr, shrink)) = proposal {
                    l.alter_isr = st.isr_with_broker_epochs(&isr, broker_epoch);
                    l.alter_id = st.propose_isr(isr.clone());
                    out.push(send_alter(st, &l.alter_isr, l.alter_id));
                    l.alter_sent = Some(tick);
                    if shrink && cfg.bugs.act_on_pending_shrink {
                        // The planted bug: the leader behaves as if the controller had already
                        // committed its shrink (high watermark, acks=all, min.insync.replicas).
                        let pe = st.partition_epoch();
                        let _ = st.on_isr_committed(isr, pe);
                    }
                }
            }
            Some(_) => {
                // Kafka's AlterPartitionManager resends a request that got no answer.
                if l.alter_sent
                    .is_some_and(|sent| tick - sent >= cfg.request_timeout_ticks)
                {
                    out.push(send_alter(st, &l.alter_isr, l.alter_id));
                    l.alter_sent = Some(tick);
                }
            }
        }
        let st = &l.state;
        l.acks.retain(
            |a| match st.acks_all_outcome(Offset(a.offset + 1), cfg.min_isr) {
                AcksOutcome::Done => {
                    out.push(Out::Acked {
                        offset: a.offset,
                        value: a.value,
                    });
                    false
                }
                AcksOutcome::NotEnoughReplicasAfterAppend => false,
                AcksOutcome::Wait => tick < a.deadline_tick,
            },
        );
        out
    }

    /// DeleteRecords on the leader: the log start moves to `to`, at most the high watermark.
    pub fn delete_records(&mut self, to: Offset) {
        if let Role::Leader(l) = &self.role {
            let to = to.min(l.state.high_watermark());
            self.log.advance_start(to);
        }
    }

    /// A producer's `acks=all` write of `value`; whether it was appended.
    pub fn produce(&mut self, value: u64, tick: u64, cfg: &SimConfig) -> bool {
        let Role::Leader(l) = &mut self.role else {
            return false;
        };
        if l.state.check_acks_all(cfg.min_isr).is_err() {
            return false;
        }
        let epoch = l.state.leader_epoch();
        let offset = self.log.append(Rec { epoch, value });
        l.state.on_local_append(self.log.end());
        l.acks.push(PendingAck {
            offset: offset.0,
            value,
            deadline_tick: tick + cfg.produce_timeout_ticks,
        });
        true
    }
}
