//! A seeded simulation of the controller over a real Raft quorum: three voters of
//! [`crate::quorum`] on the hostile network of [`crate::sim`] (loss, duplication, reordering,
//! cuts, crashes), each with its own [`Controller`] fed by what its voter commits, and simulated
//! brokers that register, heartbeat, change ISRs, allocate producer ids, shut down, die and come
//! back, over a lossy network of their own whose delays also deliver stale requests of dead
//! incarnations.
//!
//! Checked after every committed entry, on every voter:
//!
//! - every partition's leader is in its ISR, registered, unfenced and not shutting down, or
//!   there is none; the ISR is never empty and is a set of replicas;
//! - a partition's leader epoch never goes back;
//! - no two registered brokers share a broker epoch;
//! - every voter's image after entry `n` is the same (committed metadata never diverges);
//! - every committed record applies (no metadata fault);
//!
//! and on every reply: a heartbeat is accepted only with the epoch of the registration in force,
//! and producer-id blocks never overlap. Every tick: a controller active since before a broker
//! died has decided to fence it within the session timeout and the longest message delay.
//! After the faults heal, the cluster must settle: one active controller, every broker
//! registered and unfenced, every partition led.
//!
//! Modules: `brokers` (the simulated brokers), `tests`.
//!
//! One `StdRng` seed drives the schedule (faults, delays, the brokers' choices). raft-rs draws
//! its randomized election timeouts from its own thread-local generator, so a seed replays the
//! same schedule but not always the same elections; a failure prints its seed and its first
//! violation, which is what to rerun.

mod brokers;
#[cfg(test)]
mod tests;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use potok_metadata::{decode_record, encode_record, BrokerId, MetadataImage, MetadataRecord};

use brokers::{Dead, Proc};
use potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest;
use potok_protocol::messages::alter_partition_request::{
    AlterPartitionRequest, BrokerState, PartitionData, TopicData,
};
use potok_protocol::messages::broker_heartbeat_request::BrokerHeartbeatRequest;
use potok_protocol::messages::broker_registration_request::{BrokerRegistrationRequest, Listener};
use potok_protocol::messages::internal::partition_record::PartitionRecord;
use potok_protocol::messages::internal::topic_record::TopicRecord;
use potok_protocol::{ErrorCode, Uuid};
use rand::Rng;

use super::{
    Controller, ControllerConfig, Effect, Event, MetadataOffset, PlantedBug, Reply, Request,
    RequestId,
};
use crate::sim::{Faults, Sim, VoterEvent};

const CLUSTER: &str = "sim-cluster";
/// Simulated milliseconds per tick of the quorum.
const TICK_MS: u64 = 100;
const SESSION_MS: u64 = 1_500;
const HEARTBEAT_MS: u64 = 300;
const BROKERS: i32 = 4;
/// Ticks of faults per schedule, before the healing.
#[cfg(test)]
const TICKS: u64 = 250;

/// One batch of records as one Raft entry: each record as Kafka serialises it, behind a
/// 4-byte length.
fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let bytes = encode_record(r).expect("the controller's records encode");
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_batch(mut data: &[u8]) -> Result<Vec<MetadataRecord>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 4 {
            return Err("truncated length".into());
        }
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        data = &data[4..];
        if data.len() < len {
            return Err("truncated record".into());
        }
        out.push(decode_record(Bytes::copy_from_slice(&data[..len])).map_err(|e| e.to_string())?);
        data = &data[len..];
    }
    Ok(out)
}

/// A digest of everything the image holds, for comparing voters (topics, partitions,
/// brokers, producer ids, record count).
fn digest(image: &MetadataImage) -> u64 {
    let mut h = DefaultHasher::new();
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by_key(|t| t.id);
    for t in topics {
        t.id.0.hash(&mut h);
        t.name.hash(&mut h);
        for (p, s) in &t.partitions {
            p.hash(&mut h);
            s.replicas.hash(&mut h);
            s.isr.hash(&mut h);
            s.leader.hash(&mut h);
            s.leader_epoch.0.hash(&mut h);
            s.partition_epoch.hash(&mut h);
        }
    }
    for r in image.brokers().values() {
        r.id.hash(&mut h);
        r.epoch.hash(&mut h);
        r.incarnation_id.0.hash(&mut h);
        r.fenced.hash(&mut h);
        r.in_controlled_shutdown.hash(&mut h);
    }
    image.next_producer_id().hash(&mut h);
    image.records_applied().hash(&mut h);
    h.finish()
}

/// How long a dead broker may still look alive to a controller that was active all along: the
/// longest delay of a heartbeat it sent before dying, its session, and a few ticks. The bound is
/// on the controller's decision (its speculative image); when the fence commits is the quorum's
/// liveness, which hostile schedules can delay at will.
const FENCE_BOUND_MS: u64 = SESSION_MS + 40 * TICK_MS + 5 * TICK_MS;

/// A message on the brokers' network.
#[derive(Debug)]
enum Msg {
    ToController {
        voter: u64,
        id: RequestId,
        request: Request,
    },
    ToBroker {
        broker: i32,
        incarnation: Uuid,
        reply: Reply,
    },
}

/// What a request was, to route and check its reply.
#[derive(Debug, Clone, Copy)]
struct Sent {
    broker: i32,
    incarnation: Uuid,
    /// The broker epoch a heartbeat carried.
    heartbeat_epoch: Option<i64>,
}

pub(crate) struct ControllerSim {
    net: Sim,
    ctrls: BTreeMap<u64, Option<Controller>>,
    /// The term each voter was told it leads in.
    leading: BTreeMap<u64, Option<u64>>,
    bug: PlantedBug,
    now_ms: u64,
    brokers: BTreeMap<i32, Option<Proc>>,
    incarnations: u64,
    in_flight: Vec<(u64, u64, Msg)>,
    seq: u64,
    next_request: RequestId,
    sent: HashMap<RequestId, Sent>,
    /// Brokers' network: loss, and a chance of a long delay (stale requests).
    loss: f64,
    long_delay: f64,
    /// Per voter: highest leader epoch seen per partition since its last start.
    epochs: BTreeMap<u64, BTreeMap<(Uuid, i32), i32>>,
    /// Offset -> image digest as first seen.
    digests: BTreeMap<i64, u64>,
    blocks: BTreeSet<(i64, i64)>,
    topics_created: bool,
    /// Per dead broker: since when, the incarnation that died, and when it may restart.
    dead: BTreeMap<i32, Dead>,
    /// Per voter: since when its controller has been active, continuously.
    active_since: BTreeMap<u64, u64>,
    pub(crate) violations: Vec<String>,
    /// Work done, to show the schedules were not trivial.
    pub(crate) stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub committed_batches: u64,
    pub fencings: u64,
    pub elections: u64,
    pub isr_changes: u64,
    pub controller_changes: u64,
    pub clean_shutdowns: u64,
    pub stale_epochs_refused: u64,
    /// Deaths long enough for the fencing bound to be checked.
    pub fencing_checked: u64,
    /// The most ticks a healed cluster took to settle.
    pub settle_ticks_max: u64,
}

impl ControllerSim {
    pub(crate) fn new(seed: u64, bug: PlantedBug) -> ControllerSim {
        let faults = Faults {
            propose: 0.0,
            ..Faults::hostile()
        };
        let mut net = Sim::new(seed, 3, faults);
        net.record_events();
        let ids = net.voter_ids();
        let mut sim = ControllerSim {
            net,
            ctrls: BTreeMap::new(),
            leading: ids.iter().map(|&i| (i, None)).collect(),
            bug,
            now_ms: 0,
            brokers: (1..=BROKERS).map(|b| (b, None)).collect(),
            incarnations: 0,
            in_flight: Vec::new(),
            seq: 0,
            next_request: 0,
            sent: HashMap::new(),
            loss: 0.05,
            long_delay: 0.03,
            epochs: BTreeMap::new(),
            digests: BTreeMap::new(),
            blocks: BTreeSet::new(),
            topics_created: false,
            dead: BTreeMap::new(),
            active_since: BTreeMap::new(),
            violations: Vec::new(),
            stats: Stats::default(),
        };
        for id in ids {
            sim.start_controller(id);
        }
        for b in 1..=BROKERS {
            sim.start_broker(b);
        }
        sim
    }

    fn start_controller(&mut self, voter: u64) {
        let c = Controller::new(ControllerConfig {
            session_timeout_ms: SESSION_MS,
            // Often enough that preferred-leader elections happen during the faults.
            leader_imbalance_check_interval_ms: 3_000,
            planted_bug: self.bug,
            ..ControllerConfig::new(CLUSTER)
        });
        self.ctrls.insert(voter, Some(c));
        self.leading.insert(voter, None);
        self.epochs.insert(voter, BTreeMap::new());
    }

    fn rng(&mut self) -> &mut rand::rngs::StdRng {
        &mut self.net.rng
    }

    /// One tick: the quorum, what its voters committed, leadership changes, the brokers.
    pub(crate) fn tick(&mut self) {
        self.now_ms += TICK_MS;
        self.net.tick();
        self.voter_events();
        self.leadership();
        for voter in self.net.voter_ids() {
            self.feed(voter, Event::Tick);
        }
        self.deliver();
        self.brokers_act();
        self.check_fencing();
    }

    fn voter_events(&mut self) {
        for e in self.net.take_events() {
            match e {
                VoterEvent::Crashed { voter } => {
                    self.ctrls.insert(voter, None);
                    self.leading.insert(voter, None);
                }
                VoterEvent::Restarted { voter } => self.start_controller(voter),
                VoterEvent::Committed { voter, index, data } => {
                    let records = match decode_batch(&data) {
                        Ok(r) => r,
                        Err(e) => {
                            self.violations
                                .push(format!("voter {voter} entry {index}: {e}"));
                            continue;
                        }
                    };
                    let offset = MetadataOffset(index as i64);
                    if !self.digests.contains_key(&offset.0) {
                        self.stats.fencings += records
                            .iter()
                            .filter(|r| matches!(r, MetadataRecord::FenceBroker(_)))
                            .count() as u64;
                    }
                    self.feed(voter, Event::Committed { offset, records });
                    self.check_image(voter, offset.0);
                }
            }
        }
    }

    /// Tells each controller when its voter starts or stops leading.
    fn leadership(&mut self) {
        for voter in self.net.voter_ids() {
            let now = self
                .net
                .voter(voter)
                .filter(|n| n.is_leader())
                .map(|n| (n.term(), n.last_index()));
            let was = self.leading[&voter];
            match (was, now) {
                (Some(t), Some((term, _))) if t == term => {}
                (_, Some((term, last))) => {
                    self.leading.insert(voter, Some(term));
                    self.stats.controller_changes += 1;
                    self.feed(
                        voter,
                        Event::BecameLeader {
                            next_offset: MetadataOffset(last as i64 + 1),
                        },
                    );
                }
                (Some(_), None) => {
                    self.leading.insert(voter, None);
                    self.feed(voter, Event::Resigned);
                }
                (None, None) => {}
            }
        }
    }

    /// Hands `event` to voter's controller and carries out what it asks.
    fn feed(&mut self, voter: u64, event: Event) {
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            let now = self.now_ms;
            let Some(c) = self.ctrls.get_mut(&voter).and_then(Option::as_mut) else {
                return;
            };
            let effects = c.handle(event, now);
            for e in effects {
                match e {
                    Effect::Propose { offset, records } => {
                        match self.net.propose_on(voter, encode_batch(&records)) {
                            Ok(index) if index as i64 == offset.0 => {}
                            Ok(index) => {
                                self.violations.push(format!(
                                    "voter {voter}: proposal for offset {} landed at {index}",
                                    offset.0
                                ));
                                queue.push(Event::Resigned);
                            }
                            Err(_) => queue.push(Event::Resigned),
                        }
                    }
                    Effect::Reply { id, reply } => self.reply(voter, id, reply),
                    Effect::MetadataFault { offset, error } => self.violations.push(format!(
                        "voter {voter} metadata fault at {}: {error}",
                        offset.0
                    )),
                }
            }
        }
    }

    fn reply(&mut self, voter: u64, id: RequestId, reply: Reply) {
        let Some(sent) = self.sent.remove(&id) else {
            return;
        };
        let image = self.ctrls[&voter].as_ref().map(|c| c.image());
        if let (Reply::BrokerHeartbeat(r), Some(epoch), Some(image)) =
            (&reply, sent.heartbeat_epoch, image)
        {
            let registered = image.brokers().get(&BrokerId(sent.broker)).map(|r| r.epoch);
            if r.error_code == 0 && registered != Some(epoch) {
                self.violations.push(format!(
                    "voter {voter} accepted a heartbeat of broker {} with epoch {epoch}, \
                     registered epoch {registered:?}",
                    sent.broker
                ));
            }
        }
        if let Reply::AllocateProducerIds(r) = &reply {
            if r.error_code == 0 {
                let block = (
                    r.producer_id_start,
                    r.producer_id_start + i64::from(r.producer_id_len),
                );
                let overlap = self.blocks.iter().any(|&(s, e)| s < block.1 && block.0 < e);
                if overlap {
                    self.violations
                        .push(format!("producer id block {block:?} handed out twice"));
                }
                self.blocks.insert(block);
            }
        }
        if let Reply::AlterPartition(r) = &reply {
            let ok = r
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .filter(|p| p.error_code == 0)
                .count();
            self.stats.isr_changes += ok as u64;
        }
        self.send(Msg::ToBroker {
            broker: sent.broker,
            incarnation: sent.incarnation,
            reply,
        });
    }

    fn send(&mut self, msg: Msg) {
        let (loss, long) = (self.loss, self.long_delay);
        if self.rng().gen_bool(loss) {
            return;
        }
        let delay = if self.rng().gen_bool(long) {
            self.rng().gen_range(5..40)
        } else {
            self.rng().gen_range(0..=2)
        };
        let at = self.now_ms / TICK_MS + delay;
        self.seq += 1;
        self.in_flight.push((at, self.seq, msg));
    }

    fn deliver(&mut self) {
        let now = self.now_ms / TICK_MS;
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].0 <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|m| (m.0, m.1));
        for (_, _, msg) in due {
            match msg {
                Msg::ToController { voter, id, request } => {
                    self.feed(voter, Event::Request { id, request });
                }
                Msg::ToBroker {
                    broker,
                    incarnation,
                    reply,
                } => self.broker_reply(broker, incarnation, reply),
            }
        }
    }

    /// A controller active since before a broker died must have decided to fence it within
    /// [`FENCE_BOUND_MS`].
    fn check_fencing(&mut self) {
        let now = self.now_ms;
        let mut checked = Vec::new();
        for (&voter, c) in &self.ctrls {
            let active = c.as_ref().is_some_and(|c| c.is_active());
            if !active {
                self.active_since.remove(&voter);
                continue;
            }
            let since = *self.active_since.entry(voter).or_insert(now);
            let Some(c) = c else { continue };
            for (&b, d) in &self.dead {
                if since > d.since_ms || now < d.since_ms + FENCE_BOUND_MS {
                    continue;
                }
                if !d.checked {
                    checked.push(b);
                }
                let decided = c.speculative_image().unwrap_or(c.image());
                if let Some(r) = decided.brokers().get(&BrokerId(b)) {
                    if r.incarnation_id == d.incarnation && !r.fenced {
                        self.violations.push(format!(
                            "t={now}: broker {b} dead since {} is still unfenced on voter \
                             {voter}, active since {since}",
                            d.since_ms
                        ));
                    }
                }
            }
        }
        for b in checked {
            if let Some(d) = self.dead.get_mut(&b) {
                if !d.checked {
                    d.checked = true;
                    self.stats.fencing_checked += 1;
                }
            }
        }
    }

    /// The invariants of one voter's image after the entry at `offset`.
    fn check_image(&mut self, voter: u64, offset: i64) {
        let Some(c) = self.ctrls[&voter].as_ref() else {
            return;
        };
        if c.committed_offset().0 != offset {
            return;
        }
        let image = c.image();
        // Work is counted once per entry, on the first voter that applies it.
        let first = !self.digests.contains_key(&offset);
        if first {
            self.stats.committed_batches += 1;
        }
        let mut v = Vec::new();
        let epochs = self.epochs.entry(voter).or_default();
        for t in image.topics() {
            for (&p, s) in &t.partitions {
                if s.isr.is_empty() {
                    v.push(format!("{}-{p}: empty ISR", t.name));
                }
                let mut isr = s.isr.clone();
                isr.sort();
                isr.dedup();
                if isr.len() != s.isr.len() || !s.isr.iter().all(|b| s.replicas.contains(b)) {
                    v.push(format!(
                        "{}-{p}: ISR {:?} not a set of replicas",
                        t.name, s.isr
                    ));
                }
                if let Some(l) = s.leader {
                    let usable = image
                        .brokers()
                        .get(&l)
                        .is_some_and(|r| !r.fenced && !r.in_controlled_shutdown);
                    if !s.isr.contains(&l) || !usable {
                        v.push(format!(
                            "{}-{p}: leader {l} (ISR {:?}, registration {:?})",
                            t.name,
                            s.isr,
                            image.brokers().get(&l)
                        ));
                    }
                }
                let seen = epochs.entry((t.id, p)).or_insert(s.leader_epoch.0);
                if s.leader_epoch.0 < *seen {
                    v.push(format!(
                        "{}-{p}: leader epoch went back from {seen} to {}",
                        t.name, s.leader_epoch.0
                    ));
                } else if s.leader_epoch.0 > *seen && first {
                    self.stats.elections += 1;
                }
                *seen = s.leader_epoch.0;
            }
        }
        let mut broker_epochs = BTreeSet::new();
        for r in image.brokers().values() {
            if !broker_epochs.insert(r.epoch) {
                v.push(format!("two brokers with epoch {}", r.epoch));
            }
        }
        let d = digest(image);
        match self.digests.get(&offset) {
            Some(other) if *other != d => v.push(format!(
                "images differ after entry {offset}: digest {d:x}, another voter's {other:x}"
            )),
            Some(_) => {}
            None => {
                self.digests.insert(offset, d);
            }
        }
        for x in v {
            self.violations.push(format!(
                "t={} voter {voter} after {offset}: {x}",
                self.now_ms
            ));
        }
    }

    /// Ends every fault and lets the cluster settle, for at most `max_ticks`: one controller
    /// must become active with every broker registered and unfenced and every partition led.
    pub(crate) fn heal_and_settle(&mut self, max_ticks: u64) -> Result<(), String> {
        self.net.heal();
        self.loss = 0.0;
        self.long_delay = 0.0;
        for b in 1..=BROKERS {
            if self.brokers[&b].is_none() {
                self.start_broker(b);
            }
            if let Some(Some(p)) = self.brokers.get_mut(&b) {
                p.want_shut_down = false;
            }
        }
        let mut settled = Err("no tick ran".to_string());
        for n in 1..=max_ticks {
            self.now_ms += TICK_MS;
            self.net.tick();
            self.voter_events();
            self.leadership();
            for voter in self.net.voter_ids() {
                self.feed(voter, Event::Tick);
            }
            self.deliver();
            // Brokers keep heartbeating, nothing else; one that stopped comes back.
            for b in 1..=BROKERS {
                if self.brokers[&b].is_none() {
                    self.start_broker(b);
                }
            }
            self.settling_brokers();
            self.check_fencing();
            if n % 10 == 0 {
                settled = self.settled();
                if settled.is_ok() {
                    self.stats.settle_ticks_max = n;
                    break;
                }
            }
        }
        settled
    }

    /// Whether the cluster has settled: one active controller whose committed image has every
    /// broker live and every partition led.
    fn settled(&self) -> Result<(), String> {
        let active: Vec<u64> = self
            .ctrls
            .iter()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| c.is_active()))
            .map(|(v, _)| *v)
            .collect();
        let [voter] = active.as_slice() else {
            return Err(format!("active controllers after healing: {active:?}"));
        };
        let image = self.ctrls[voter]
            .as_ref()
            .map(|c| c.image())
            .ok_or("down")?;
        for b in 1..=BROKERS {
            match image.brokers().get(&BrokerId(b)) {
                Some(r) if !r.fenced && !r.in_controlled_shutdown => {}
                other => return Err(format!("broker {b} not live after healing: {other:?}")),
            }
        }
        if image.topic_by_name("a").is_none() {
            return Err("the topics were never created".into());
        }
        for t in image.topics() {
            for (p, s) in &t.partitions {
                if s.leader.is_none() {
                    return Err(format!("{}-{p} has no leader after healing: {s:?}", t.name));
                }
            }
        }
        Ok(())
    }
}

/// Runs one seeded schedule of `ticks` ticks and the healing; returns the violations (a
/// failure to settle counts as one) and the work done.
pub(crate) fn run(seed: u64, ticks: u64, bug: PlantedBug) -> (Vec<String>, Stats) {
    let mut sim = ControllerSim::new(seed, bug);
    for _ in 0..ticks {
        sim.tick();
    }
    // Within 40 s of healing (the quorum alone is given 400 ticks to make progress again by
    // its own simulation).
    if let Err(e) = sim.heal_and_settle(400) {
        sim.violations.push(format!("seed {seed}: {e}"));
    }
    (sim.violations, sim.stats)
}
