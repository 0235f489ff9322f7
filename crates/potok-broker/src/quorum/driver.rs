//! The driver of the sans-IO voter: one OS thread that owns the `QuorumNode` and the
//! [`RaftStore`], ticks the node, steps what the transport delivers, proposes what the
//! handlers ask for, and acts on the node's outputs in their order: a `Persist` is written and
//! fsynced before any later message leaves, and committed entries (Kafka metadata records, one
//! `metadata_log` frame each) are applied in log order to the [`TopicManager`].
//!
//! The driver also runs this node's [`Controller`] (the sans-IO active-controller logic) as
//! its module docs ask: every committed entry is reported to it in order, leadership changes
//! become `BecameLeader` / `Resigned`, its deadlines become `Tick`s, and each of its `Propose`
//! effects is proposed as exactly one entry that must land at the effect's offset (otherwise
//! the leadership it was decided under is over, and the controller is told it resigned). Admin
//! writes reach it as `Request::Write`; this broker's own registration and heartbeats
//! ([`BrokerLifecycle`]) reach it directly when this node is the active controller, else over
//! the CONTROLLER listener to the leader, whose driver answers the same way.
//!
//! Producer-id blocks ([`Event::AllocateProducerIds`]) travel the same way as the lifecycle's
//! requests, with this broker's epoch.
//!
//! A thread rather than a tokio task because every persist is an fsync and every applied
//! creation opens logs: blocking IO that must not run on the request workers. The thread
//! reads a bounded `std::sync::mpsc` inbox; tokio tasks only ever `try_send` to it.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use potok_controller::controller::{
    self as ctl, Controller, Effect, MetadataOffset, Reply, Request, WriteError,
};
use potok_controller::observer::{FetchAnswer, FetchRequest};
use potok_controller::quorum::{Output, QuorumStatus};
use potok_protocol::codec::Message as _;
use potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest;
use potok_protocol::messages::allocate_producer_ids_response::AllocateProducerIdsResponse;
use potok_protocol::messages::alter_partition_request::AlterPartitionRequest;
use potok_protocol::messages::alter_partition_response::AlterPartitionResponse;
use potok_protocol::ErrorCode;
use raft::eraftpb::Message;
use tokio::sync::{oneshot, watch};

use super::lifecycle::{BrokerLifecycle, ControlMessage};
use super::member::Member;
use super::storage::RaftStore;
use super::transport::Peers;
use crate::error::Result;
use crate::TopicManager;

/// Why a proposal did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node does not lead, or lost the leadership before the entry committed (another
    /// entry committed at its index). Kafka's NOT_CONTROLLER; the leader known, if any.
    NotController(Option<u64>),
    /// The entry committed but the metadata image refused its records on every node.
    Refused(String),
    /// The proposal could not be made (raft-rs refused it, the driver stopped).
    Failed(String),
}

/// What the driver thread receives.
#[derive(Debug)]
pub enum Event {
    /// A message from another voter.
    Message(Message),
    /// Records to replicate (one encoded `metadata_log` frame); the reply comes once they are
    /// committed and applied here.
    Propose {
        /// The entry's data.
        data: Vec<u8>,
        /// Where the outcome goes.
        reply: oneshot::Sender<std::result::Result<(), ProposeError>>,
    },
    /// SIGTERM: ask the controller for controlled shutdown.
    WantShutDown,
    /// An ISR change of partitions this broker leads (`crate::isr`), for the active
    /// controller. The driver fills in this broker's id and broker epoch (top level, and for
    /// its own ISR entry when that says -1); the reply is dropped unanswered when there is no
    /// active controller or this broker is not registered (the sender retries).
    AlterPartition {
        /// The request, at AlterPartition's highest version.
        request: AlterPartitionRequest,
        /// Where the controller's answer goes.
        reply: oneshot::Sender<AlterPartitionResponse>,
    },
    /// A block of producer ids for this broker (AllocateProducerIds, KIP-730), asked of the
    /// active controller with this broker's epoch; the answer (or an error code: not
    /// registered yet, no controller known, NOT_CONTROLLER) goes to `reply`.
    AllocateProducerIds {
        /// Where the controller's answer goes.
        reply: oneshot::Sender<AllocateProducerIdsResponse>,
    },
    /// An observer's fetch (on a voter).
    Fetch {
        /// The observer, as it shook hands.
        from: i32,
        /// What it asks.
        request: FetchRequest,
    },
    /// A voter's answer to this observer's fetch.
    Fetched {
        /// The voter.
        from: i32,
        /// Its answer.
        answer: FetchAnswer,
    },
    /// A control frame (a broker's request to the active controller, or the controller's
    /// reply) from node `from`.
    Control {
        /// The sender, as it shook hands.
        from: i32,
        /// The frame's body ([`ControlMessage`]).
        data: Vec<u8>,
    },
}

/// Who waits for a controller reply.
#[derive(Debug)]
pub(super) enum Origin {
    /// This broker's lifecycle, request `id`.
    Local(u64),
    /// Another voter's lifecycle: its request `id`.
    Remote { from: i32, id: u64 },
    /// An admin write of this node's handlers.
    Admin(oneshot::Sender<std::result::Result<(), ProposeError>>),
    /// This broker's AlterPartition, on this node's own active controller.
    Alter(oneshot::Sender<AlterPartitionResponse>),
    /// This broker's producer-id manager, asking this node's own active controller for a block.
    ProducerIds(oneshot::Sender<AllocateProducerIdsResponse>),
}

/// The driver's state (owned by its thread).
pub struct Driver {
    pub(super) node: Member,
    pub(super) store: RaftStore,
    pub(super) peers: Peers,
    pub(super) topics: Arc<TopicManager>,
    pub(super) status: watch::Sender<QuorumStatus>,
    /// The active-controller logic (every node runs one; only the leader's is active).
    pub(super) controller: Controller,
    /// Controller effects not yet carried out, in emission order.
    pub(super) effects: VecDeque<Effect>,
    /// Requests handed to the controller, by the controller's request id.
    pub(super) origins: HashMap<u64, Origin>,
    pub(super) next_request: u64,
    /// The term this node leads in, as reported to the controller.
    pub(super) led_term: Option<u64>,
    pub(super) lifecycle: BrokerLifecycle,
    /// The driver's monotonic clock's origin (the controller's `now_ms` counts from it).
    pub(super) started: Instant,
    pub(super) tick: Duration,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Set once the controller allowed this broker to stop (controlled shutdown).
    pub(super) shut_down_ok: watch::Sender<bool>,
    /// This broker's AlterPartition requests sent to a remote active controller, by the id
    /// of their control frame (answered ones removed; abandoned ones pruned on the next send).
    pub(super) alters: HashMap<u64, oneshot::Sender<AlterPartitionResponse>>,
    pub(super) next_alter: u64,
    /// Producer-id blocks asked of a remote active controller, by control-frame id (pruned
    /// like `alters`).
    pub(super) pid_waiters: HashMap<u64, oneshot::Sender<AllocateProducerIdsResponse>>,
    pub(super) next_pid_request: u64,
    /// The start-up catch-up with the quorum's committed metadata ([`super::Quorum::caught_up`]).
    pub(super) catch_up: CatchUp,
}

/// How often a ReadIndex that got no answer (no leader known yet, a leader that has committed
/// nothing in its term, a lost message) is asked again.
const READ_INDEX_RETRY: Duration = Duration::from_millis(200);

/// The start-up gate, in two steps as Kafka's `BrokerServer` has them: first catch up with
/// the quorum (ask the leader its commit index with ReadIndex, then apply up to it), then wait
/// until this process's own registration is unfenced in the image this node applied. Only then
/// are client requests read.
///
/// The second step is Kafka's: `BrokerServer.startup` enables request processing only after
/// `lifecycleManager.setReadyToUnfence()` completed. Without it a node restarted within
/// `broker.session.timeout.ms` served clients while the controller still held its previous
/// incarnation's registration (a new one is refused as DUPLICATE_BROKER_REGISTRATION until the
/// old session expires), and once that expired its Metadata answers left itself out; after a
/// run of kills every node did so and librdkafka, which forgets every broker a Metadata answer
/// omits, was left with none (docs/reliability.md, "The 3-node runs with consumer groups").
pub struct CatchUp {
    /// The last entry applied here.
    applied: u64,
    /// The leader's commit index, once it answered.
    target: Option<u64>,
    /// When to ask (again).
    next_ask: Instant,
    asked: u64,
    /// The first step is done.
    caught_up: bool,
    done: watch::Sender<bool>,
    started: Instant,
}

impl CatchUp {
    pub(super) fn new(applied: u64, done: watch::Sender<bool>) -> CatchUp {
        CatchUp {
            applied,
            target: None,
            next_ask: Instant::now(),
            asked: 0,
            caught_up: false,
            done,
            started: Instant::now(),
        }
    }

    fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Marks the first step done once the target is applied.
    fn check(&mut self) {
        if let Some(t) = self.target {
            if self.applied >= t && !self.caught_up {
                tracing::info!(
                    applied = self.applied,
                    leader_commit = t,
                    seconds = self.started.elapsed().as_secs_f64(),
                    "caught up with the quorum's metadata; waiting to be unfenced"
                );
                self.caught_up = true;
            }
        }
    }

    /// Opens the gate once caught up and `unfenced` (this process's registration is unfenced
    /// in the applied image).
    fn open_if(&mut self, unfenced: bool) {
        if self.caught_up && unfenced && !self.is_done() {
            tracing::info!(
                seconds = self.started.elapsed().as_secs_f64(),
                "unfenced under this process's registration; serving clients"
            );
            self.done.send_replace(true);
        }
    }
}

impl Driver {
    /// Runs until shutdown, the inbox closing, or a failed write of the Raft log (after which
    /// this voter must not say anything more: it stops, as Kafka's raft client does on a log
    /// write failure).
    pub fn run(mut self, inbox: Receiver<Event>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            let outputs = match inbox.recv_timeout(wait) {
                Ok(Event::Message(m)) => self.node.step(m).unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "raft message refused");
                    Vec::new()
                }),
                Ok(Event::Propose { data, reply }) => {
                    match super::decode_entry(&data) {
                        Ok(records) => {
                            let id = self.origin(Origin::Admin(reply));
                            self.controller_event(ctl::Event::Request {
                                id,
                                request: Request::Write(records),
                            });
                        }
                        Err(e) => {
                            let _ = reply.send(Err(ProposeError::Failed(e)));
                        }
                    }
                    Vec::new()
                }
                Ok(Event::WantShutDown) => {
                    self.lifecycle.want_shut_down = true;
                    self.lifecycle.hurry(Instant::now());
                    Vec::new()
                }
                Ok(Event::Control { from, data }) => {
                    self.control(from, &data);
                    Vec::new()
                }
                Ok(Event::Fetch { from, request }) => {
                    let (answer, out) = self.node.serve_fetch(from as u64, &request);
                    if let Some(answer) = answer {
                        self.peers.send_fetched(from as u64, answer);
                    }
                    out
                }
                Ok(Event::Fetched { from, answer }) => self.node.on_fetched(from as u64, answer),
                Ok(Event::AlterPartition { request, reply }) => {
                    self.alter_partition(request, reply);
                    Vec::new()
                }
                Ok(Event::AllocateProducerIds { reply }) => {
                    self.allocate_producer_ids(reply);
                    Vec::new()
                }
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Err(e) = self.act(outputs).and_then(|()| self.settle()) {
                tracing::error!(error = %e, "writing the raft log failed; this voter stops");
                break;
            }
            if Instant::now() >= next_tick {
                next_tick += self.tick;
                let mut out = self.node.tick();
                if !self.catch_up.is_done()
                    && self.catch_up.target.is_none()
                    && Instant::now() >= self.catch_up.next_ask
                {
                    self.catch_up.next_ask = Instant::now() + READ_INDEX_RETRY;
                    self.catch_up.asked += 1;
                    out.extend(self.node.read_index(self.catch_up.asked));
                }
                let r = self.act(out).and_then(|()| {
                    let now = self.now_ms();
                    if self.controller.next_deadline_ms().is_some_and(|d| d <= now) {
                        self.controller_event(ctl::Event::Tick);
                    }
                    self.heartbeat();
                    self.settle()
                });
                if let Err(e) = r {
                    tracing::error!(error = %e, "writing the raft log failed; this voter stops");
                    break;
                }
                // A slow fsync must not make the ticks pile up into a burst.
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
            }
            self.publish();
        }
        for (_, origin) in std::mem::take(&mut self.origins) {
            if let Origin::Admin(reply) = origin {
                let _ = reply.send(Err(ProposeError::Failed(
                    "the quorum driver stopped".into(),
                )));
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn origin(&mut self, o: Origin) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        self.origins.insert(id, o);
        id
    }

    /// Hands `event` to the controller and queues its effects. A leadership change first drops
    /// the proposals still queued from the leadership before: they were decided on an image
    /// that is no longer this node's to extend (their requests are answered by the resign).
    fn controller_event(&mut self, event: ctl::Event) {
        if matches!(
            event,
            ctl::Event::BecameLeader { .. } | ctl::Event::Resigned
        ) {
            self.effects
                .retain(|e| !matches!(e, Effect::Propose { .. }));
        }
        let now = self.now_ms();
        let effects = self.controller.handle(event, now);
        self.effects.extend(effects);
    }

    /// Reports leadership changes to the controller and carries out its effects until none
    /// are left.
    fn settle(&mut self) -> Result<()> {
        loop {
            self.leadership();
            let Some(effect) = self.effects.pop_front() else {
                return Ok(());
            };
            match effect {
                Effect::Propose { offset, records } => self.propose(offset, &records)?,
                Effect::Reply { id, reply } => self.reply(id, reply),
                Effect::MetadataFault { offset, error } => {
                    tracing::error!(offset = offset.0, %error, "metadata fault in the controller");
                }
            }
        }
    }

    fn leadership(&mut self) {
        let term = self.node.term();
        match (self.node.is_leader(), self.led_term) {
            (true, Some(t)) if t == term => {}
            (true, _) => {
                self.led_term = Some(term);
                // raft-rs appended the new leader's empty entry when it took over; the next
                // proposal follows it.
                let next_offset = MetadataOffset(self.node.log_end() as i64 + 1);
                tracing::info!(
                    term,
                    next_offset = next_offset.0,
                    "this node leads the quorum; the controller claims activity"
                );
                self.controller_event(ctl::Event::BecameLeader { next_offset });
            }
            (false, Some(_)) => {
                self.led_term = None;
                self.controller_event(ctl::Event::Resigned);
            }
            (false, None) => {}
        }
    }

    /// One controller proposal as one Raft entry at exactly `offset`.
    fn propose(
        &mut self,
        offset: MetadataOffset,
        records: &[potok_metadata::MetadataRecord],
    ) -> Result<()> {
        let data = super::encode_entry(records)?;
        match self.node.propose(data) {
            Ok((index, _term, out)) => {
                self.act(out)?;
                if index as i64 != offset.0 {
                    // The controller's epochs are these offsets: an entry elsewhere means the
                    // log is not the one it decided on; its contract treats it as lost
                    // leadership.
                    tracing::warn!(
                        index,
                        expected = offset.0,
                        "a controller proposal landed at another offset; the controller resigns"
                    );
                    self.controller_event(ctl::Event::Resigned);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "controller proposal refused; the controller resigns");
                self.controller_event(ctl::Event::Resigned);
            }
        }
        Ok(())
    }

    fn reply(&mut self, id: u64, reply: Reply) {
        match self.origins.remove(&id) {
            Some(Origin::Local(lid)) => self.lifecycle.on_reply(lid, reply, Instant::now()),
            Some(Origin::Remote { from, id }) => {
                if let Some(b) = (ControlMessage::Reply { id, reply }).encode() {
                    self.peers.send_control(from as u64, b);
                }
            }
            Some(Origin::Admin(tx)) => {
                let r = match reply {
                    Reply::Write(Ok(_)) => Ok(()),
                    Reply::Write(Err(WriteError::NotController)) => {
                        Err(ProposeError::NotController(self.node.leader()))
                    }
                    Reply::Write(Err(WriteError::Invalid(e))) => Err(ProposeError::Refused(e)),
                    other => Err(ProposeError::Failed(format!("unexpected reply {other:?}"))),
                };
                let _ = tx.send(r);
            }
            Some(Origin::Alter(tx)) => {
                if let Reply::AlterPartition(r) = reply {
                    let _ = tx.send(r);
                }
            }
            Some(Origin::ProducerIds(tx)) => {
                if let Reply::AllocateProducerIds(r) = reply {
                    let _ = tx.send(r);
                }
            }
            None => {}
        }
    }

    /// Sends this broker's AlterPartition to the active controller: this node's own, or the
    /// leader's over the CONTROLLER listener.
    fn alter_partition(
        &mut self,
        mut request: AlterPartitionRequest,
        reply: oneshot::Sender<AlterPartitionResponse>,
    ) {
        let (Some(leader), Some(epoch)) = (self.node.leader(), self.lifecycle.epoch()) else {
            return;
        };
        let me = self.node.id() as i32;
        request.broker_id = me;
        request.broker_epoch = epoch;
        for t in &mut request.topics {
            for p in &mut t.partitions {
                for m in &mut p.new_isr_with_epochs {
                    if m.broker_id == me && m.broker_epoch == -1 {
                        m.broker_epoch = epoch;
                    }
                }
            }
        }
        let version = AlterPartitionRequest::VALID_VERSIONS.1;
        let request = Request::AlterPartition { version, request };
        if leader == self.node.id() {
            let cid = self.origin(Origin::Alter(reply));
            self.controller_event(ctl::Event::Request { id: cid, request });
            return;
        }
        self.alters.retain(|_, tx| !tx.is_closed());
        let id = self.next_alter;
        self.next_alter += 1;
        if let Some(b) = (ControlMessage::Request { id, request }).encode() {
            self.peers.send_control(leader, b);
            self.alters.insert(id, reply);
        }
    }

    /// Asks the active controller for a block of producer ids with this broker's registration
    /// (Kafka's `RPCProducerIdManager`): in process when this node leads, else as a control
    /// frame to the leader. Without a registration or a known leader the answer is an error at
    /// once; the manager retries.
    fn allocate_producer_ids(&mut self, reply: oneshot::Sender<AllocateProducerIdsResponse>) {
        let refuse = |code: ErrorCode| AllocateProducerIdsResponse {
            error_code: code as i16,
            ..Default::default()
        };
        let (Some(leader), Some(epoch)) = (self.node.leader(), self.lifecycle.epoch()) else {
            let _ = reply.send(refuse(ErrorCode::BrokerNotAvailable));
            return;
        };
        let request = Request::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id: self.node.id() as i32,
            broker_epoch: epoch,
            ..Default::default()
        });
        if leader == self.node.id() {
            let cid = self.origin(Origin::ProducerIds(reply));
            self.controller_event(ctl::Event::Request { id: cid, request });
            return;
        }
        // Waiters that gave up (their manager timed out and asks again) are forgotten, so
        // that lost replies cannot grow the map.
        self.pid_waiters.retain(|_, tx| !tx.is_closed());
        let id = self.next_pid_request;
        self.next_pid_request += 1;
        match (ControlMessage::Request { id, request }).encode() {
            Some(b) => {
                self.pid_waiters.insert(id, reply);
                self.peers.send_control(leader, b);
            }
            None => {
                let _ = reply.send(refuse(ErrorCode::UnknownServerError));
            }
        }
    }

    /// A control frame from voter `from`: a request for this node's controller, or the reply
    /// to this broker's lifecycle.
    fn control(&mut self, from: i32, data: &[u8]) {
        match ControlMessage::decode(data) {
            Some(ControlMessage::Request { id, request }) => {
                let cid = self.origin(Origin::Remote { from, id });
                self.controller_event(ctl::Event::Request { id: cid, request });
            }
            Some(ControlMessage::Reply {
                id,
                reply: Reply::AlterPartition(r),
            }) => {
                if let Some(tx) = self.alters.remove(&id) {
                    let _ = tx.send(r);
                }
            }
            Some(ControlMessage::Reply {
                id,
                reply: Reply::AllocateProducerIds(r),
            }) => {
                if let Some(tx) = self.pid_waiters.remove(&id) {
                    let _ = tx.send(r);
                }
            }
            Some(ControlMessage::Reply { id, reply }) => {
                self.lifecycle.on_reply(id, reply, Instant::now());
            }
            None => tracing::debug!(from, "malformed control frame dropped"),
        }
    }

    /// Sends this broker's registration or heartbeat when due, to the active controller.
    fn heartbeat(&mut self) {
        let Some(leader) = self.node.leader() else {
            return;
        };
        let offset = self.controller.committed_offset().0;
        let Some((id, request)) = self.lifecycle.poll(Instant::now(), offset) else {
            return;
        };
        if leader == self.node.id() {
            let cid = self.origin(Origin::Local(id));
            self.controller_event(ctl::Event::Request { id: cid, request });
        } else if let Some(b) = (ControlMessage::Request { id, request }).encode() {
            self.peers.send_control(leader, b);
        }
    }

    fn publish(&mut self) {
        if !self.catch_up.is_done() {
            let unfenced = self.lifecycle.epoch().is_some_and(|epoch| {
                let me = potok_metadata::BrokerId(self.node.id() as i32);
                self.topics.with_image(|i| {
                    i.brokers()
                        .get(&me)
                        .is_some_and(|b| b.epoch == epoch && !b.fenced)
                })
            });
            self.catch_up.open_if(unfenced);
        }
        if self.lifecycle.should_shut_down && !*self.shut_down_ok.borrow() {
            self.shut_down_ok.send_replace(true);
        }
        let s = self.node.status();
        if *self.status.borrow() != s {
            self.status.send_replace(s);
        }
    }

    fn act(&mut self, outputs: Vec<Output>) -> Result<()> {
        for o in outputs {
            match o {
                Output::Send { to, msg } => self.peers.send(to, msg),
                Output::Fetch { to, request } => self.peers.send_fetch(to, request),
                Output::ObserverAnswer { observer, answer } => {
                    self.peers.send_fetched(observer, answer)
                }
                Output::ObserverRead {
                    observer,
                    ctx,
                    index,
                } => {
                    let s = self.node.status();
                    self.peers.send_fetched(
                        observer,
                        FetchAnswer {
                            leader: s.leader.unwrap_or(0),
                            term: s.term,
                            commit: s.commit,
                            read: Some((ctx, index)),
                            entries: Vec::new(),
                        },
                    );
                }
                Output::Persist {
                    snapshot,
                    entries,
                    hard_state,
                } => self
                    .store
                    .persist(snapshot.as_ref(), &entries, hard_state.as_ref())?,
                Output::Committed { index, term, data } => {
                    self.apply(index, term, &data);
                    self.catch_up.applied = index;
                    self.catch_up.check();
                }
                Output::ReadIndex { index, .. } => {
                    if self.catch_up.target.is_none() {
                        self.catch_up.target = Some(index);
                        self.catch_up.check();
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies one committed entry to the topics and reports it to the controller (whose
    /// replies to the requests that wrote it follow).
    fn apply(&mut self, index: u64, term: u64, data: &[u8]) {
        let records = if data.is_empty() {
            // A new leader's empty entry: Raft's own, no records.
            Vec::new()
        } else {
            match super::decode_entry(data) {
                Ok(records) => {
                    if let Err(e) = self.topics.apply_replicated(&records) {
                        tracing::error!(index, term, error = %e, "a committed metadata entry was refused by the image (on every node alike)");
                    }
                    records
                }
                Err(e) => {
                    tracing::error!(index, term, error = %e, "a committed entry is not a metadata frame; skipped on every node alike");
                    Vec::new()
                }
            }
        };
        self.controller_event(ctl::Event::Committed {
            offset: MetadataOffset(index as i64),
            records,
        });
    }
}
