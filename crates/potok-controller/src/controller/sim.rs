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
//! and producer-id blocks never overlap. After the faults heal, the cluster must settle: one
//! active controller, every broker registered and unfenced, every partition led.
//!
//! One `StdRng` seed drives the schedule (faults, delays, the brokers' choices). raft-rs draws
//! its randomized election timeouts from its own thread-local generator, so a seed replays the
//! same schedule but not always the same elections; a failure prints its seed and its first
//! violation, which is what to rerun.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use potok_metadata::{decode_record, encode_record, BrokerId, MetadataImage, MetadataRecord};
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

/// A running broker process.
#[derive(Debug)]
struct Proc {
    incarnation: Uuid,
    epoch: Option<i64>,
    registering_since: Option<u64>,
    next_heartbeat_ms: u64,
    fenced: bool,
    want_shut_down: bool,
}

/// A broker process that stopped.
#[derive(Debug, Clone, Copy)]
struct Dead {
    since_ms: u64,
    incarnation: Uuid,
    restart_after_ms: u64,
    checked: bool,
}

/// How long a dead broker may still look alive to a controller that was active all along: its
/// session, the longest delay of a heartbeat it sent before dying, and time to commit the fence.
const FENCE_BOUND_MS: u64 = SESSION_MS + 40 * TICK_MS + 2_000;

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
        let mut c = Controller::new(ControllerConfig {
            session_timeout_ms: SESSION_MS,
            ..ControllerConfig::new(CLUSTER)
        });
        c.bug = self.bug;
        self.ctrls.insert(voter, Some(c));
        self.leading.insert(voter, None);
        self.epochs.insert(voter, BTreeMap::new());
    }

    fn start_broker(&mut self, b: i32) {
        self.dead.remove(&b);
        self.incarnations += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.incarnations.to_be_bytes());
        id[15] = b as u8;
        self.brokers.insert(
            b,
            Some(Proc {
                incarnation: Uuid(id),
                epoch: None,
                registering_since: None,
                next_heartbeat_ms: self.now_ms,
                fenced: true,
                want_shut_down: false,
            }),
        );
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

    fn broker_reply(&mut self, broker: i32, incarnation: Uuid, reply: Reply) {
        let now = self.now_ms;
        let Some(Some(p)) = self.brokers.get_mut(&broker) else {
            return;
        };
        if p.incarnation != incarnation {
            // The connection died with the process that sent the request.
            return;
        }
        match reply {
            Reply::BrokerRegistration(r) => {
                p.registering_since = None;
                if r.error_code == 0 {
                    p.epoch = Some(r.broker_epoch);
                    p.fenced = true;
                    p.next_heartbeat_ms = now;
                }
            }
            Reply::BrokerHeartbeat(r) => {
                if r.error_code == ErrorCode::StaleBrokerEpoch as i16 {
                    p.epoch = None;
                    self.stats.stale_epochs_refused += 1;
                } else if r.error_code == 0 {
                    p.fenced = r.is_fenced;
                    if r.should_shut_down && p.want_shut_down {
                        // A clean stop.
                        self.stop_broker(broker, 0);
                        self.stats.clean_shutdowns += 1;
                    } else if r.should_shut_down {
                        // Fenced on its way out (its session expired in controlled shutdown):
                        // it comes back with a new registration.
                        p.epoch = None;
                    }
                }
            }
            _ => {}
        }
    }

    /// Broker `b`'s process stops (a crash or a clean stop); it may restart `outage_ms` later.
    fn stop_broker(&mut self, b: i32, outage_ms: u64) {
        if let Some(Some(p)) = self.brokers.insert(b, None) {
            self.dead.insert(
                b,
                Dead {
                    since_ms: self.now_ms,
                    incarnation: p.incarnation,
                    restart_after_ms: self.now_ms + outage_ms,
                    checked: false,
                },
            );
        }
    }

    /// A controller active since before a broker died must have fenced it within
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
                if let Some(r) = c.image().brokers().get(&BrokerId(b)) {
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

    /// The voter a broker talks to: the one it believes leads, else any running one.
    fn target(&mut self) -> Option<u64> {
        let up: Vec<u64> = self
            .net
            .voter_ids()
            .into_iter()
            .filter(|v| self.ctrls[v].is_some())
            .collect();
        if let Some(&l) = up
            .iter()
            .find(|v| self.net.voter(**v).is_some_and(|n| n.is_leader()))
        {
            if self.rng().gen_bool(0.9) {
                return Some(l);
            }
        }
        if up.is_empty() {
            return None;
        }
        let i = self.rng().gen_range(0..up.len());
        Some(up[i])
    }

    fn request(&mut self, voter: u64, broker: i32, request: Request) {
        let Some(Some(p)) = self.brokers.get(&broker) else {
            return;
        };
        self.next_request += 1;
        let id = self.next_request;
        let heartbeat_epoch = match &request {
            Request::BrokerHeartbeat(h) => Some(h.broker_epoch),
            _ => None,
        };
        self.sent.insert(
            id,
            Sent {
                broker,
                incarnation: p.incarnation,
                heartbeat_epoch,
            },
        );
        self.send(Msg::ToController { voter, id, request });
    }

    fn brokers_act(&mut self) {
        self.maybe_create_topics();
        for b in 1..=BROKERS {
            // Lifecycle faults.
            let alive = self.brokers[&b].is_some();
            if alive && self.rng().gen_bool(0.004) {
                // Some outages are long, so that fencing is seen to happen.
                let outage = if self.rng().gen_bool(0.3) { 10_000 } else { 0 };
                self.stop_broker(b, outage);
                continue;
            }
            if !alive {
                let may = self
                    .dead
                    .get(&b)
                    .is_none_or(|d| self.now_ms >= d.restart_after_ms);
                if may && self.rng().gen_bool(0.03) {
                    self.start_broker(b);
                }
                continue;
            }
            let unfenced = self.brokers[&b].as_ref().is_some_and(|p| !p.fenced);
            if unfenced && self.rng().gen_bool(0.003) {
                if let Some(Some(p)) = self.brokers.get_mut(&b) {
                    p.want_shut_down = true;
                }
            }
            let Some(voter) = self.target() else {
                continue;
            };
            let view_offset = self.ctrls[&voter]
                .as_ref()
                .map_or(0, |c| c.committed_offset().0);
            let now = self.now_ms;
            let Some(Some(p)) = self.brokers.get_mut(&b) else {
                continue;
            };
            match p.epoch {
                None => {
                    let stuck = p.registering_since.is_some_and(|t| now - t > 2_000);
                    if p.registering_since.is_none() || stuck {
                        p.registering_since = Some(now);
                        let incarnation = p.incarnation;
                        self.request(voter, b, registration(b, incarnation));
                    }
                }
                Some(epoch) => {
                    let fenced = p.fenced;
                    if now >= p.next_heartbeat_ms {
                        p.next_heartbeat_ms = now + HEARTBEAT_MS;
                        let want_shut_down = p.want_shut_down;
                        self.request(
                            voter,
                            b,
                            Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                                broker_id: b,
                                broker_epoch: epoch,
                                current_metadata_offset: view_offset,
                                want_fence: false,
                                want_shut_down,
                                ..Default::default()
                            }),
                        );
                    }
                    if !fenced && self.rng().gen_bool(0.08) {
                        self.alter_isr(voter, b, epoch);
                    }
                    if self.rng().gen_bool(0.01) {
                        self.request(
                            voter,
                            b,
                            Request::AllocateProducerIds(AllocateProducerIdsRequest {
                                broker_id: b,
                                broker_epoch: epoch,
                                ..Default::default()
                            }),
                        );
                    }
                }
            }
        }
    }

    /// A leader shrinks or expands the ISR of one partition it leads, as its (possibly stale)
    /// view of the metadata says.
    fn alter_isr(&mut self, voter: u64, b: i32, epoch: i64) {
        let Some(view) = self.ctrls[&voter].as_ref().map(|c| c.image().clone()) else {
            return;
        };
        let mut led: Vec<(Uuid, i32, potok_metadata::PartitionState)> = Vec::new();
        let mut topics: Vec<_> = view.topics().collect();
        topics.sort_by_key(|t| t.id);
        for t in topics {
            for (&p, s) in &t.partitions {
                if s.leader == Some(BrokerId(b)) {
                    led.push((t.id, p, s.clone()));
                }
            }
        }
        if led.is_empty() {
            return;
        }
        let i = self.rng().gen_range(0..led.len());
        let (topic, p, s) = led.swap_remove(i);
        let outside: Vec<BrokerId> = s
            .replicas
            .iter()
            .copied()
            .filter(|r| !s.isr.contains(r))
            .collect();
        let mut isr = s.isr.clone();
        if !outside.is_empty() && self.rng().gen_bool(0.6) {
            let j = self.rng().gen_range(0..outside.len());
            isr.push(outside[j]);
        } else if isr.len() > 1 {
            let others: Vec<usize> = (0..isr.len()).filter(|&k| isr[k] != BrokerId(b)).collect();
            let k = others[self.rng().gen_range(0..others.len())];
            isr.remove(k);
        } else {
            return;
        }
        let members = isr
            .iter()
            .map(|m| BrokerState {
                broker_id: m.0,
                broker_epoch: view.brokers().get(m).map_or(-1, |r| r.epoch),
                ..Default::default()
            })
            .collect();
        let req = AlterPartitionRequest {
            broker_id: b,
            broker_epoch: epoch,
            topics: vec![TopicData {
                topic_id: topic,
                partitions: vec![PartitionData {
                    partition_index: p,
                    leader_epoch: s.leader_epoch.0,
                    new_isr_with_epochs: members,
                    partition_epoch: s.partition_epoch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.request(
            voter,
            b,
            Request::AlterPartition {
                version: 3,
                request: req,
            },
        );
    }

    /// Two topics of RF 3 over the brokers, written as soon as a controller is active (the
    /// brokers may not even be registered yet).
    fn maybe_create_topics(&mut self) {
        if self.topics_created {
            return;
        }
        let Some(voter) = self
            .ctrls
            .iter()
            .find(|(_, c)| c.as_ref().is_some_and(|c| c.is_active()))
            .map(|(v, _)| *v)
        else {
            return;
        };
        if let Some(c) = self.ctrls[&voter].as_ref() {
            if c.image().topic_by_name("a").is_some() {
                self.topics_created = true;
                return;
            }
        }
        let mut records = Vec::new();
        for (n, name) in ["a", "b"].iter().enumerate() {
            let id = Uuid([n as u8 + 1; 16]);
            records.push(MetadataRecord::Topic(TopicRecord {
                name: (*name).into(),
                topic_id: id,
                ..Default::default()
            }));
            for p in 0..4 {
                let replicas: Vec<i32> = (0..3).map(|k| 1 + (p + k + n as i32) % BROKERS).collect();
                // Written as an admin path builds it from its own view (the first replica
                // leads), whatever has happened to that broker since: the controller must
                // repair leaders that are not live ISR members.
                records.push(MetadataRecord::Partition(PartitionRecord {
                    partition_id: p,
                    topic_id: id,
                    replicas: replicas.clone(),
                    leader: replicas[0],
                    isr: replicas,
                    ..Default::default()
                }));
            }
        }
        self.next_request += 1;
        let id = self.next_request;
        // Straight to the controller (an admin write forwarded from a broker).
        self.feed(
            voter,
            Event::Request {
                id,
                request: Request::Write(records),
            },
        );
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

    /// Ends every fault and lets the cluster settle; then one controller must be active with
    /// every broker registered and unfenced and every partition led.
    pub(crate) fn heal_and_settle(&mut self, ticks: u64) -> Result<(), String> {
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
        for _ in 0..ticks {
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
        }
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

    fn settling_brokers(&mut self) {
        self.maybe_create_topics();
        for b in 1..=BROKERS {
            let Some(voter) = self.target() else {
                continue;
            };
            let view_offset = self.ctrls[&voter]
                .as_ref()
                .map_or(0, |c| c.committed_offset().0);
            let now = self.now_ms;
            let Some(Some(p)) = self.brokers.get_mut(&b) else {
                continue;
            };
            match p.epoch {
                None => {
                    let stuck = p.registering_since.is_some_and(|t| now - t > 2_000);
                    if p.registering_since.is_none() || stuck {
                        p.registering_since = Some(now);
                        let incarnation = p.incarnation;
                        self.request(voter, b, registration(b, incarnation));
                    }
                }
                Some(epoch) if now >= p.next_heartbeat_ms => {
                    p.next_heartbeat_ms = now + HEARTBEAT_MS;
                    self.request(
                        voter,
                        b,
                        Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                            broker_id: b,
                            broker_epoch: epoch,
                            current_metadata_offset: view_offset,
                            ..Default::default()
                        }),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn registration(b: i32, incarnation: Uuid) -> Request {
    Request::BrokerRegistration(BrokerRegistrationRequest {
        broker_id: b,
        cluster_id: CLUSTER.into(),
        incarnation_id: incarnation,
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + b as u16,
            ..Default::default()
        }],
        rack: None,
        ..Default::default()
    })
}

/// Runs one seeded schedule of `ticks` ticks and the healing; returns the violations (a
/// failure to settle counts as one) and the work done.
pub(crate) fn run(seed: u64, ticks: u64, bug: PlantedBug) -> (Vec<String>, Stats) {
    let mut sim = ControllerSim::new(seed, bug);
    for _ in 0..ticks {
        sim.tick();
    }
    if let Err(e) = sim.heal_and_settle(150) {
        sim.violations.push(format!("seed {seed}: {e}"));
    }
    (sim.violations, sim.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let records = vec![MetadataRecord::Topic(TopicRecord {
            name: "x".into(),
            topic_id: Uuid([1; 16]),
            ..Default::default()
        })];
        assert_eq!(decode_batch(&encode_batch(&records)).unwrap(), records);
        assert!(decode_batch(&[0, 0, 0, 9, 1]).is_err());
    }

    /// Runs `seeds` and checks that the schedules did real work in total.
    fn run_seeds(seeds: std::ops::Range<u64>) {
        let mut total = Stats::default();
        let n = seeds.end - seeds.start;
        for seed in seeds {
            let (violations, stats) = run(seed, TICKS, PlantedBug::None);
            assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
            total.committed_batches += stats.committed_batches;
            total.elections += stats.elections;
            total.isr_changes += stats.isr_changes;
            total.controller_changes += stats.controller_changes;
            total.fencings += stats.fencings;
            total.clean_shutdowns += stats.clean_shutdowns;
            total.stale_epochs_refused += stats.stale_epochs_refused;
            total.fencing_checked += stats.fencing_checked;
        }
        eprintln!("{n} seeds: {total:?}");
        // The schedules must have done real work, or the checks proved nothing.
        assert!(total.elections > n && total.isr_changes > n, "{total:?}");
        assert!(
            total.controller_changes > n && total.fencings > n,
            "{total:?}"
        );
        assert!(
            total.clean_shutdowns > n / 10 && total.stale_epochs_refused > n / 10,
            "{total:?}"
        );
        assert!(total.fencing_checked > n / 10, "{total:?}");
    }

    // 2,000 seeds in two halves, so that the test threads share them.
    #[test]
    fn the_controller_keeps_its_invariants_over_a_faulty_quorum_seeds_0_to_999() {
        run_seeds(0..1_000);
    }

    #[test]
    fn the_controller_keeps_its_invariants_over_a_faulty_quorum_seeds_1000_to_1999() {
        run_seeds(1_000..2_000);
    }

    fn first_caught(bug: PlantedBug, seeds: u64) -> Option<(u64, Vec<String>)> {
        (0..seeds).find_map(|seed| {
            let (v, _) = run(seed, TICKS, bug);
            (!v.is_empty()).then_some((seed, v))
        })
    }

    #[test]
    fn the_simulation_catches_a_leader_elected_outside_the_isr() {
        let (seed, v) = first_caught(PlantedBug::ElectOutsideIsr, 200)
            .expect("no schedule exposed elections outside the ISR");
        eprintln!("elect-outside-ISR caught with seed {seed}: {}", v[0]);
        assert!(run(seed, TICKS, PlantedBug::None).0.is_empty());
    }

    #[test]
    fn the_simulation_catches_a_stale_broker_epoch_accepted() {
        let (seed, v) = first_caught(PlantedBug::AcceptStaleBrokerEpoch, 200)
            .expect("no schedule exposed a stale broker epoch accepted");
        eprintln!("stale-broker-epoch caught with seed {seed}: {}", v[0]);
        assert!(run(seed, TICKS, PlantedBug::None).0.is_empty());
    }

    #[test]
    fn the_simulation_catches_a_controller_that_never_fences_a_silent_broker() {
        let (seed, v) = first_caught(PlantedBug::NeverExpireSessions, 200)
            .expect("no schedule exposed sessions that never expire");
        eprintln!("never-expiring sessions caught with seed {seed}: {}", v[0]);
        assert!(run(seed, TICKS, PlantedBug::None).0.is_empty());
    }
}
