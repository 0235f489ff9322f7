//! The simulated cluster: the network (loss, duplication, delay, cut links), the nemesis
//! (crashes, fencing after the session timeout, restarts, controlled elections), metadata
//! propagation, producers, and the step loop that runs the checker after every step.

use potok_records::Offset;

use super::check::{check_epochs, check_record_epochs, Checker};
use super::controller::{AlterError, Controller};
use super::replica::{Out, Replica, Role};
use super::{Msg, Node, Rng, SimConfig, Stats};
use crate::follower::{FetchAnswer, FetchError};

pub struct World<'a> {
    cfg: &'a SimConfig,
    rng: Rng,
    tick: u64,
    now_ms: i64,
    healing: bool,
    replicas: Vec<Replica>,
    ctrl: Controller,
    net: Vec<(u64, Node, Msg)>,
    cuts: Vec<(usize, usize, u64)>,
    /// Per replica: when its session times out (it crashed and is not fenced yet).
    fence_at: Vec<Option<u64>>,
    /// Per replica: when it restarts (fenced and down).
    restart_at: Vec<Option<u64>>,
    max_down: usize,
    check: Checker,
    next_value: u64,
    stats: Stats,
    /// With `POTOK_SIM_TRACE` set, what happened, printed when a seed fails.
    trace: Option<Vec<String>>,
}

impl<'a> World<'a> {
    pub fn new(seed: u64, cfg: &'a SimConfig) -> World<'a> {
        let mut rng = Rng::new(seed);
        let n = cfg.replicas;
        let ctrl = Controller::new(n);
        let replicas = (0..n)
            .map(|i| Replica::new(i, ctrl.broker_epoch[i]))
            .collect();
        // Most schedules keep one broker down at a time; some allow two, which leaves the
        // partition below min.insync.replicas.
        let max_down = if rng.chance(0.3) { 2 } else { 1 };
        World {
            cfg,
            rng,
            tick: 0,
            now_ms: 0,
            healing: false,
            replicas,
            ctrl,
            net: Vec::new(),
            cuts: Vec::new(),
            fence_at: vec![None; n],
            restart_at: vec![None; n],
            max_down,
            check: Checker::new(n),
            next_value: 0,
            stats: Stats::default(),
            trace: std::env::var_os("POTOK_SIM_TRACE").map(|_| Vec::new()),
        }
    }

    fn trace(&mut self, what: impl FnOnce(&World<'_>) -> String) {
        if self.trace.is_some() {
            let line = format!("{:>4} {}", self.tick, what(self));
            if let Some(t) = &mut self.trace {
                t.push(line);
            }
        }
    }

    fn describe(&self, r: usize) -> String {
        let x = &self.replicas[r];
        let role = match &x.role {
            Role::Leader(l) => format!(
                "leader e{} isr {:?} pending {:?}",
                l.state.leader_epoch().0,
                l.state.isr(),
                l.state.pending_isr()
            ),
            Role::Follower(f) => format!(
                "follower of {:?} e{}",
                f.state.leader(),
                f.state.leader_epoch().0
            ),
            Role::None => "none".into(),
        };
        let tail: Vec<String> = x
            .log
            .records
            .iter()
            .enumerate()
            .skip(x.log.records.len().saturating_sub(6))
            .map(|(i, r)| format!("{}:e{}v{}", x.log.start + i as i64, r.epoch.0, r.value))
            .collect();
        format!(
            "r{r} {role} start {} end {} hw {} flushed {} epochs {:?} tail {:?}",
            x.log.start,
            x.log.end(),
            x.hw(),
            x.log.flushed,
            x.log
                .epochs
                .iter()
                .map(|e| (e.epoch.0, e.start_offset.0))
                .collect::<Vec<_>>(),
            tail
        )
    }

    pub fn run(mut self) -> Result<Stats, String> {
        for r in 0..self.replicas.len() {
            self.apply_metadata(r)?;
        }
        let total = self.cfg.fault_ticks + self.cfg.heal_ticks;
        while self.tick < total {
            self.healing = self.tick >= self.cfg.fault_ticks;
            self.now_ms = self.tick as i64 * self.cfg.tick_ms;
            if let Err(e) = self.step() {
                if let Some(t) = &self.trace {
                    for line in t {
                        eprintln!("{line}");
                    }
                    for r in 0..self.replicas.len() {
                        eprintln!("{}", self.describe(r));
                    }
                }
                return Err(format!("tick {}: {e}", self.tick));
            }
            self.tick += 1;
        }
        self.finish()?;
        self.stats.acked = self.check.acked.len() as u64;
        self.stats.elections = u64::from(self.ctrl.elections);
        self.stats.truncations = self.replicas.iter().map(|r| r.truncations).sum();
        self.stats.resets = self.replicas.iter().map(|r| r.resets).sum();
        Ok(self.stats)
    }

    fn step(&mut self) -> Result<(), String> {
        self.nemesis()?;
        self.deliver()?;
        for r in 0..self.replicas.len() {
            let behind = self.replicas[r].applied_version < self.ctrl.version;
            if self.replicas[r].alive
                && behind
                && (self.healing || self.rng.chance(self.cfg.p_metadata))
            {
                self.apply_metadata(r)?;
            }
        }
        for r in 0..self.replicas.len() {
            if !self.replicas[r].alive {
                continue;
            }
            let mut out = self.replicas[r].follower_tick(self.tick, self.now_ms, self.cfg);
            out.extend(self.replicas[r].leader_tick(self.tick, self.now_ms, self.cfg));
            self.handle(r, out)?;
        }
        if !self.healing && self.rng.chance(self.cfg.p_produce) {
            self.produce();
        }
        for r in 0..self.replicas.len() {
            if self.replicas[r].alive && self.rng.chance(self.cfg.p_flush) {
                self.replicas[r].flush();
            }
        }
        self.check.after_step(&mut self.replicas, &self.ctrl)
    }

    fn nemesis(&mut self) -> Result<(), String> {
        let n = self.replicas.len();
        let down = self.replicas.iter().filter(|r| !r.alive).count();
        if !self.healing && down < self.max_down && self.rng.chance(self.cfg.p_crash) {
            let r = self.rng.below(n);
            if self.replicas[r].alive {
                self.trace(|w| format!("crash {}", w.describe(r)));
                self.replicas[r].crash();
                self.fence_at[r] = Some(self.tick + self.rng.range(2, 8));
                self.stats.crashes += 1;
            }
        }
        for r in 0..n {
            if self.fence_at[r].is_some_and(|t| t <= self.tick) {
                self.fence_at[r] = None;
                self.ctrl.fence(r, &mut self.rng, &self.cfg.bugs);
                self.trace(|w| format!("fence r{r}: {:?}", w.ctrl.state));
                let wait = if self.healing {
                    0
                } else {
                    self.rng.range(3, 30)
                };
                self.restart_at[r] = Some(self.tick + wait);
            }
            if self.restart_at[r].is_some_and(|t| t <= self.tick || self.healing) {
                self.restart_at[r] = None;
                let epoch = self.ctrl.register(r, &mut self.rng, &self.cfg.bugs);
                self.replicas[r].restart(epoch);
                self.trace(|w| {
                    format!(
                        "restart r{r} epoch {epoch}: {:?} / {}",
                        w.ctrl.state,
                        w.describe(r)
                    )
                });
                self.apply_metadata(r)?;
            }
        }
        if self.healing {
            self.cuts.clear();
            return Ok(());
        }
        if self.rng.chance(self.cfg.p_delete_records) {
            if let Some(l) = self.ctrl.state.leader.map(|b| b.0 as usize) {
                if self.replicas[l].alive {
                    let x = &self.replicas[l];
                    let to = self
                        .rng
                        .range(x.log.start as u64, x.hw().0.max(x.log.start) as u64);
                    self.replicas[l].delete_records(Offset(to as i64));
                    let start = self.replicas[l].log.start;
                    self.check.deleted_below = self.check.deleted_below.max(start);
                    self.trace(|w| format!("delete records below {to}: {}", w.describe(l)));
                }
            }
        }
        if self.rng.chance(self.cfg.p_election) {
            self.ctrl.move_leadership(&mut self.rng, &self.cfg.bugs);
            self.trace(|w| format!("election: {:?}", w.ctrl.state));
        }
        let tick = self.tick;
        self.cuts.retain(|c| c.2 > tick);
        if self.rng.chance(self.cfg.p_cut) {
            let a = self.rng.below(n);
            let b = (a + 1 + self.rng.below(n - 1)) % n;
            let until = self.tick + self.rng.range(5, 40);
            self.cuts.push((a, b, until));
        }
        Ok(())
    }

    fn cut(&self, a: Node, b: Node) -> bool {
        let (Node::Broker(a), Node::Broker(b)) = (a, b) else {
            return false;
        };
        self.cuts
            .iter()
            .any(|c| (c.0 == a && c.1 == b) || (c.0 == b && c.1 == a))
    }

    fn send(&mut self, from: Node, to: Node, msg: Msg) {
        if self.healing {
            self.net.push((self.tick + 1, to, msg));
            return;
        }
        if self.cut(from, to) || self.rng.chance(self.cfg.p_loss) {
            return;
        }
        if self.rng.chance(self.cfg.p_duplicate) {
            let due = self.tick + 1 + self.rng.range(0, self.cfg.max_delay_ticks);
            self.net.push((due, to, msg.clone()));
        }
        let due = self.tick + 1 + self.rng.range(0, self.cfg.max_delay_ticks);
        self.net.push((due, to, msg));
    }

    fn deliver(&mut self) -> Result<(), String> {
        let tick = self.tick;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.0 <= tick);
        self.net = later;
        for (_, to, msg) in due {
            match to {
                Node::Controller => self.at_controller(msg),
                Node::Broker(r) if self.replicas[r].alive => self.at_broker(r, msg)?,
                Node::Broker(_) => {}
            }
        }
        Ok(())
    }

    fn at_controller(&mut self, msg: Msg) {
        if let Msg::Alter {
            proposal,
            from,
            from_epoch,
            leader_epoch,
            partition_epoch,
            isr,
        } = msg
        {
            let result = self
                .ctrl
                .alter_partition(from, leader_epoch, partition_epoch, &isr);
            self.trace(|_| {
                format!(
                    "alter from {from} e{} pe{partition_epoch} {isr:?}: {result:?}",
                    leader_epoch.0
                )
            });
            let answer = Msg::AlterAnswer {
                proposal,
                to_epoch: from_epoch,
                leader_epoch,
                result,
            };
            self.send(Node::Controller, Node::Broker(from.0 as usize), answer);
        }
    }

    fn at_broker(&mut self, r: usize, msg: Msg) -> Result<(), String> {
        let now = self.now_ms;
        let me = Node::Broker(r);
        match msg {
            Msg::Fetch { id, from, pos } => {
                let replica = &mut self.replicas[r];
                let (answer, records) = match &mut replica.role {
                    Role::Leader(l) => {
                        match l.state.answer_follower_fetch(&pos, replica.log.view(), now) {
                            Ok(a) => {
                                let records = match a.answer {
                                    FetchAnswer::Data {
                                        diverging_epoch: None,
                                        ..
                                    } => {
                                        let end = replica.log.end().0;
                                        let to = end.min(
                                            pos.fetch_offset.0 + self.cfg.max_fetch_records as i64,
                                        );
                                        (pos.fetch_offset.0..to)
                                            .filter_map(|o| replica.log.get(o))
                                            .collect()
                                    }
                                    _ => Vec::new(),
                                };
                                (a.answer, records)
                            }
                            Err(e) => (FetchAnswer::Error(e.as_fetch_error()), Vec::new()),
                        }
                    }
                    _ => (
                        FetchAnswer::Error(FetchError::NotLeaderOrFollower),
                        Vec::new(),
                    ),
                };
                let msg = Msg::FetchAnswer {
                    id,
                    to_epoch: pos.replica_epoch,
                    answer,
                    records,
                };
                self.send(me, Node::Broker(from), msg);
            }
            Msg::FetchAnswer {
                id,
                to_epoch,
                answer,
                records,
            } => {
                let replica = &mut self.replicas[r];
                if replica.broker_epoch == to_epoch {
                    let before = replica.truncations;
                    replica.on_fetch_answer(id, answer, &records, now, self.cfg);
                    if self.replicas[r].truncations != before {
                        self.trace(|w| format!("truncated after {answer:?}: {}", w.describe(r)));
                    }
                }
            }
            Msg::Offsets {
                id,
                from,
                from_epoch,
                epoch,
            } => {
                let replica = &mut self.replicas[r];
                let answer = match &replica.role {
                    Role::Leader(l) => l
                        .state
                        .check_leader_epoch(Some(epoch))
                        .ok()
                        .map(|()| (Offset(replica.log.start), replica.log.end())),
                    _ => None,
                };
                let msg = Msg::OffsetsAnswer {
                    id,
                    to_epoch: from_epoch,
                    answer,
                };
                self.send(me, Node::Broker(from), msg);
            }
            Msg::OffsetsAnswer {
                id,
                to_epoch,
                answer,
            } => {
                let replica = &mut self.replicas[r];
                if replica.broker_epoch == to_epoch {
                    replica.on_offsets_answer(id, answer, now);
                }
            }
            Msg::AlterAnswer {
                proposal,
                to_epoch,
                leader_epoch,
                result,
            } => {
                let replica = &mut self.replicas[r];
                if replica.broker_epoch != to_epoch {
                    return Ok(());
                }
                let Some(l) = replica.leader() else {
                    return Ok(());
                };
                if l.state.leader_epoch() != leader_epoch {
                    return Ok(());
                }
                if proposal == l.alter_id {
                    l.alter_sent = None;
                }
                match result {
                    Ok(s) => {
                        if s.partition_epoch > l.state.partition_epoch() {
                            let _ = l.state.on_isr_committed(s.isr, s.partition_epoch);
                        }
                    }
                    Err(AlterError::IneligibleReplica) => {
                        l.state.on_isr_change_refused(proposal);
                    }
                    // The change may have been applied: wait for the metadata (Kafka's
                    // `handleAlterPartitionError`).
                    Err(_) => {}
                }
            }
            Msg::Alter { .. } => {}
        }
        Ok(())
    }

    fn apply_metadata(&mut self, r: usize) -> Result<(), String> {
        let state = self.ctrl.state.clone();
        let out = self.replicas[r].apply_metadata(&state, self.ctrl.version, self.now_ms, self.cfg);
        if !out.is_empty() || self.trace.is_some() {
            self.trace(|w| {
                format!(
                    "metadata v{} {:?} -> {}",
                    w.ctrl.version,
                    w.ctrl.state,
                    w.describe(r)
                )
            });
        }
        self.handle(r, out)
    }

    fn handle(&mut self, r: usize, out: Vec<Out>) -> Result<(), String> {
        for o in out {
            match o {
                Out::Send(to, msg) => self.send(Node::Broker(r), to, msg),
                Out::Acked { offset, value } => {
                    self.trace(|_| format!("r{r} acked {offset}:v{value}"));
                    self.check.on_acked(&mut self.replicas[r], offset, value)?
                }
                Out::BecameLeader => self.check.on_new_leader(&self.replicas[r])?,
                Out::Violation(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn produce(&mut self) {
        let n = self.replicas.len();
        // Mostly to the leader the controller names; sometimes to a broker whose metadata may
        // be stale (a deposed leader that has not learnt it yet).
        let target = if self.rng.chance(0.85) {
            self.ctrl.state.leader.map(|b| b.0 as usize)
        } else {
            Some(self.rng.below(n))
        };
        let Some(t) = target.filter(|t| self.replicas[*t].alive) else {
            return;
        };
        let value = self.next_value;
        self.next_value += 1;
        let leads = matches!(self.replicas[t].role, Role::Leader(_));
        if self.replicas[t].produce(value, self.tick, self.cfg) {
            self.stats.produced += 1;
            if self.ctrl.state.leader != Some(self.replicas[t].broker()) {
                self.stats.deposed_writes += 1;
            }
        } else if leads {
            self.stats.refused += 1;
        }
    }

    /// After healing: every broker is up; with a leader, every replica holds the leader's log
    /// and the high watermark reached its end.
    fn finish(&mut self) -> Result<(), String> {
        for r in &self.replicas {
            check_epochs(&r.log)?;
            check_record_epochs(&r.log).map_err(|e| format!("replica {}: {e}", r.id))?;
        }
        let Some(leader) = self.ctrl.state.leader.map(|b| b.0 as usize) else {
            self.stats.offline = true;
            return Ok(());
        };
        let l = &self.replicas[leader];
        if !matches!(&l.role, Role::Leader(s) if s.state.leader_epoch() == self.ctrl.state.leader_epoch)
        {
            return Err(format!("after healing, broker {leader} does not lead yet"));
        }
        if l.hw() != l.log.end() {
            return Err(format!(
                "after healing, the high watermark {} is below the log end {}",
                l.hw(),
                l.log.end()
            ));
        }
        for r in &self.replicas {
            // Below the larger log start one of them has deleted the records.
            let start = r.log.start.max(l.log.start);
            let same = r.log.end() == l.log.end()
                && (start..l.log.end().0).all(|o| r.log.get(o) == l.log.get(o));
            if !r.alive || !same {
                return Err(format!(
                    "after healing, replica {} (alive {}) differs from leader {leader}: {} vs {} records",
                    r.id,
                    r.alive,
                    r.log.records.len(),
                    l.log.records.len()
                ));
            }
        }
        Ok(())
    }
}
