//! The active controller's logic as a sans-IO state machine (issue 17): what Kafka's
//! `QuorumController` decides for broker registration and heartbeats (`ClusterControlManager`,
//! `BrokerHeartbeatManager`), fencing, controlled shutdown, AlterPartition and preferred
//! leaders (`ReplicationControlManager`, `PartitionChangeBuilder`) and producer-id blocks
//! (`ProducerIdControlManager`), written as Kafka's own metadata records over the
//! [`MetadataImage`].
//!
//! # Driving it
//!
//! [`Controller::handle`] takes one [`Event`] and the driver's monotonic clock (`now_ms`) and
//! returns [`Effect`]s: records to propose to the quorum, replies to send, faults to log. It
//! never reads a clock, never blocks and never does IO; the broker's driver owns the quorum node,
//! the sockets and the timers. Every node of the quorum runs one `Controller`; only the node that
//! leads the Raft quorum is *active* and answers requests, the others answer `NOT_CONTROLLER`
//! and keep their committed image current so that any of them can take over.
//!
//! The driver's side of the contract:
//!
//! 1. Every committed entry of the metadata log is reported in log order as
//!    [`Event::Committed`] with its offset (the Raft index), on every node, including entries
//!    without records (a new Raft leader's empty entry).
//! 2. When the local quorum node becomes leader, [`Event::BecameLeader`] names the offset its
//!    next proposal will get (the log end after the leader's own empty entry). The controller
//!    becomes active once everything before that offset is committed and reported: as Kafka's
//!    new active controller first replays the log up to its epoch's start, it decides nothing on
//!    an image that could still miss a predecessor's records.
//! 3. Every [`Effect::Propose`] becomes exactly one log entry, at the effect's `offset`, in the
//!    order emitted (raft-rs appends a leader's proposals in order). Broker epochs are those
//!    offsets, as Kafka's are the offsets of their `RegisterBrokerRecord`s. When a proposal is
//!    refused or the node stops leading, the driver reports [`Event::Resigned`].
//! 4. [`Event::Tick`] whenever `now_ms` reaches [`Controller::next_deadline_ms`] (session
//!    expiry, `broker.session.timeout.ms`, and the preferred-leader check,
//!    `leader.imbalance.check.interval.seconds`); any other event also checks the deadlines.
//!
//! A driver's loop, with a log that commits every proposal at once (a one-voter quorum):
//!
//! ```
//! use potok_controller::controller::{
//!     Controller, ControllerConfig, Effect, Event, MetadataOffset, Reply, Request,
//! };
//! use potok_protocol::messages::broker_registration_request::BrokerRegistrationRequest;
//!
//! let mut c = Controller::new(ControllerConfig::new("cluster-1"));
//! // The voter was elected; its own empty entry 1 commits; it proposes from offset 2.
//! c.handle(Event::BecameLeader { next_offset: MetadataOffset(2) }, 0);
//! c.handle(Event::Committed { offset: MetadataOffset(1), records: vec![] }, 0);
//! assert!(c.is_active());
//!
//! let request = Request::BrokerRegistration(BrokerRegistrationRequest {
//!     broker_id: 1,
//!     cluster_id: "cluster-1".into(),
//!     ..Default::default()
//! });
//! let mut effects = c.handle(Event::Request { id: 7, request }, 0);
//! let mut replies = Vec::new();
//! while let Some(effect) = effects.pop() {
//!     match effect {
//!         // The quorum appends the entry at `offset` and reports it once committed.
//!         Effect::Propose { offset, records } => {
//!             effects.extend(c.handle(Event::Committed { offset, records }, 0));
//!         }
//!         Effect::Reply { id, reply } => replies.push((id, reply)),
//!         Effect::MetadataFault { error, .. } => panic!("{error}"),
//!     }
//! }
//! // The broker epoch is the offset of its registration record.
//! let [(7, Reply::BrokerRegistration(r))] = replies.as_slice() else { panic!() };
//! assert_eq!((r.error_code, r.broker_epoch), (0, 2));
//! ```
//!
//! # Committed and speculative state
//!
//! Records take effect only when they are reported committed: [`Controller::image`] is the
//! committed state, and replies wait until the records they depend on are committed (a request
//! that writes nothing waits for the proposals before it, as Kafka's controller completes an
//! event only once the log is committed up to it). To decide several requests while earlier
//! proposals are in flight, the active controller keeps a speculative copy of the image with its
//! own uncommitted proposals applied (Kafka's timeline data structures do the same). Losing
//! leadership drops the speculative state and answers the waiting requests `NOT_CONTROLLER`; a
//! dropped proposal that a later leader still commits is then simply applied like any other
//! committed entry.
//!
//! # Errors as Kafka codes
//!
//! The replies are Kafka's response messages with Kafka's error codes, like `potok-group`'s:
//! the codes are protocol outcomes that the requesting broker acts on (`STALE_BROKER_EPOCH`
//! makes it re-register, `INVALID_UPDATE_VERSION` makes it refresh its metadata), not errors
//! of this crate.
//!
//! Modules: [`brokers`] (registration, heartbeats, fencing, controlled shutdown),
//! [`partitions`] (elections and AlterPartition), [`producer_ids`] (AllocateProducerIds),
//! [`reassign`] (partition reassignment, KIP-455).

pub mod brokers;
pub mod partitions;
pub mod producer_ids;
pub mod reassign;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use potok_metadata::{BrokerId, MetadataImage, MetadataRecord};
use potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest;
use potok_protocol::messages::allocate_producer_ids_response::AllocateProducerIdsResponse;
use potok_protocol::messages::alter_partition_request::AlterPartitionRequest;
use potok_protocol::messages::alter_partition_response::AlterPartitionResponse;
use potok_protocol::messages::broker_heartbeat_request::BrokerHeartbeatRequest;
use potok_protocol::messages::broker_heartbeat_response::BrokerHeartbeatResponse;
use potok_protocol::messages::broker_registration_request::BrokerRegistrationRequest;
use potok_protocol::messages::broker_registration_response::BrokerRegistrationResponse;
use potok_protocol::ErrorCode;

use brokers::Session;

/// An offset of the metadata log: the Raft index of an entry (one entry holds one proposed
/// batch of records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetadataOffset(pub i64);

/// The controller's settings, with Kafka's names.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The cluster id every registering broker must present (`meta.properties`'
    /// `cluster.id`); another one is `INCONSISTENT_CLUSTER_ID`.
    pub cluster_id: String,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced (Kafka's
    /// default 9,000).
    pub session_timeout_ms: u64,
    /// The static `unclean.leader.election.enable` (default false); a topic's override and the
    /// cluster-wide dynamic default in the image take precedence, as Kafka's
    /// `ConfigurationControlManager.uncleanLeaderElectionEnabledForTopic` resolves them.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable` (default true): partitions whose preferred replica (the
    /// first) is a live ISR member but does not lead are given back to it periodically.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` in milliseconds (Kafka's default 300 s).
    pub leader_imbalance_check_interval_ms: u64,
    /// A test-only fault ([`PlantedBug::None`] in production): the simulation and the
    /// real-broker tests of the fault harness set it to show that they catch the bug.
    pub planted_bug: PlantedBug,
}

impl ControllerConfig {
    /// Kafka's defaults for `cluster_id`.
    pub fn new(cluster_id: impl Into<String>) -> ControllerConfig {
        ControllerConfig {
            cluster_id: cluster_id.into(),
            session_timeout_ms: 9_000,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            planted_bug: PlantedBug::None,
        }
    }
}

/// The driver's handle on a request, echoed in its [`Effect::Reply`].
pub type RequestId = u64;

/// A request from a broker to the active controller, as decoded from the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// BrokerRegistration (API 62).
    BrokerRegistration(BrokerRegistrationRequest),
    /// BrokerHeartbeat (API 63).
    BrokerHeartbeat(BrokerHeartbeatRequest),
    /// AlterPartition (API 56) at request version `version` (topics by name before v2, the
    /// new ISR without broker epochs before v3).
    AlterPartition {
        /// The request's API version.
        version: i16,
        /// The request.
        request: AlterPartitionRequest,
    },
    /// AllocateProducerIds (API 67).
    AllocateProducerIds(AllocateProducerIdsRequest),
    /// Metadata records built elsewhere (the admin APIs: CreateTopics, configs, ...), to be
    /// ordered with the controller's own proposals. They are checked by applying them to the
    /// speculative image; records that do not apply are refused whole.
    Write(Vec<MetadataRecord>),
}

/// Why a [`Request::Write`] was not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// This node is not (or no longer) the active controller (Kafka's `NOT_CONTROLLER`).
    NotController,
    /// The records contradict the metadata (for example a topic that exists already).
    Invalid(String),
}

/// A reply to a [`Request`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// To a BrokerRegistration.
    BrokerRegistration(BrokerRegistrationResponse),
    /// To a BrokerHeartbeat.
    BrokerHeartbeat(BrokerHeartbeatResponse),
    /// To an AlterPartition.
    AlterPartition(AlterPartitionResponse),
    /// To an AllocateProducerIds.
    AllocateProducerIds(AllocateProducerIdsResponse),
    /// To a Write: the offset its records were committed at.
    Write(Result<MetadataOffset, WriteError>),
}

impl Reply {
    /// The reply to `request` that carries only the top-level `error`.
    pub fn error(request: &Request, error: ErrorCode) -> Reply {
        let code = error as i16;
        match request {
            Request::BrokerRegistration(_) => {
                Reply::BrokerRegistration(BrokerRegistrationResponse {
                    error_code: code,
                    broker_epoch: -1,
                    ..Default::default()
                })
            }
            Request::BrokerHeartbeat(_) => Reply::BrokerHeartbeat(BrokerHeartbeatResponse {
                error_code: code,
                is_fenced: true,
                ..Default::default()
            }),
            Request::AlterPartition { .. } => Reply::AlterPartition(AlterPartitionResponse {
                error_code: code,
                ..Default::default()
            }),
            Request::AllocateProducerIds(_) => {
                Reply::AllocateProducerIds(AllocateProducerIdsResponse {
                    error_code: code,
                    ..Default::default()
                })
            }
            Request::Write(_) => Reply::Write(Err(match error {
                ErrorCode::NotController => WriteError::NotController,
                other => WriteError::Invalid(format!("{other:?}")),
            })),
        }
    }

    /// This reply's kind with only the top-level `error` (what a request waiting on a dropped
    /// proposal is answered).
    fn into_error(self, error: ErrorCode) -> Reply {
        let code = error as i16;
        match self {
            Reply::BrokerRegistration(_) => Reply::BrokerRegistration(BrokerRegistrationResponse {
                error_code: code,
                broker_epoch: -1,
                ..Default::default()
            }),
            Reply::BrokerHeartbeat(_) => Reply::BrokerHeartbeat(BrokerHeartbeatResponse {
                error_code: code,
                is_fenced: true,
                ..Default::default()
            }),
            Reply::AlterPartition(_) => Reply::AlterPartition(AlterPartitionResponse {
                error_code: code,
                ..Default::default()
            }),
            Reply::AllocateProducerIds(_) => {
                Reply::AllocateProducerIds(AllocateProducerIdsResponse {
                    error_code: code,
                    ..Default::default()
                })
            }
            Reply::Write(_) => Reply::Write(Err(WriteError::NotController)),
        }
    }
}

/// What happened, for [`Controller::handle`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The quorum committed the entry at `offset` holding `records` (empty for an entry
    /// without records).
    Committed {
        /// The entry's offset.
        offset: MetadataOffset,
        /// Its records, decoded.
        records: Vec<MetadataRecord>,
    },
    /// The local quorum node leads; its next proposal will be the entry at `next_offset`.
    BecameLeader {
        /// The log end after the new leader's own empty entry.
        next_offset: MetadataOffset,
    },
    /// The local quorum node no longer leads, or refused a proposal.
    Resigned,
    /// A request from a broker.
    Request {
        /// The driver's handle, echoed in the reply.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// The clock reached [`Controller::next_deadline_ms`].
    Tick,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Propose `records` as one entry of the metadata log; it must land at `offset`.
    Propose {
        /// The offset the entry will have.
        offset: MetadataOffset,
        /// The records, in order.
        records: Vec<MetadataRecord>,
    },
    /// Send `reply` for request `id`.
    Reply {
        /// The request's handle.
        id: RequestId,
        /// The reply.
        reply: Reply,
    },
    /// A committed record could not be applied to the image (the record is skipped). Kafka
    /// treats this as a metadata fault: log it and count it; an active controller resigns (this
    /// one already has), so the driver should let another voter lead.
    MetadataFault {
        /// The entry's offset.
        offset: MetadataOffset,
        /// What was wrong.
        error: String,
    },
}

/// A test-only fault, so that the simulation and the fault harness can show they catch real
/// controller bugs (issue 18, acceptance 3). Only tests set it: the broker accepts it from the
/// `potok.test.planted.bug` setting in debug builds alone, so a release binary always runs
/// with [`PlantedBug::None`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlantedBug {
    /// No fault.
    #[default]
    None,
    /// Elections ignore the ISR (any live replica may lead).
    ElectOutsideIsr,
    /// Broker epochs in heartbeats are not checked against the registration.
    AcceptStaleBrokerEpoch,
    /// Sessions never expire: a silent broker is never fenced.
    NeverExpireSessions,
}

/// One proposed entry not yet committed, with the replies that wait for it.
#[derive(Debug)]
struct Batch {
    offset: MetadataOffset,
    records: Vec<MetadataRecord>,
    replies: Vec<(RequestId, Reply)>,
}

/// The state only the active controller has.
#[derive(Debug)]
pub(crate) struct Active {
    /// The committed image with every pending batch applied.
    pub(crate) image: MetadataImage,
    /// The offset the next proposal will get.
    next_offset: MetadataOffset,
    /// Proposed, not yet committed, in offset order.
    pending: VecDeque<Batch>,
    /// Per registered broker, the soft state of its heartbeats (not in the log, as Kafka's
    /// `BrokerHeartbeatManager`): rebuilt when a controller becomes active.
    pub(crate) sessions: BTreeMap<BrokerId, Session>,
    /// Set when staged records had to be dropped: the speculative image is rebuilt from the
    /// committed one and the pending batches.
    rebuild: bool,
    /// When preferred leaders are checked next (`auto.leader.rebalance.enable`).
    next_rebalance_ms: u64,
}

#[derive(Debug)]
enum Role {
    Standby,
    /// Leading the quorum, waiting for the log before `next_offset` to be committed.
    Claiming {
        next_offset: MetadataOffset,
    },
    Active(Box<Active>),
}

/// The controller of one quorum node. See the module docs for the driver's contract.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    /// The committed metadata.
    image: MetadataImage,
    /// The offset of the last committed entry reported (0 before the first: Raft's first
    /// index is 1).
    committed: MetadataOffset,
    role: Role,
}

impl Controller {
    /// A controller with an empty image (a node that replays its log from the start).
    pub fn new(config: ControllerConfig) -> Controller {
        Controller {
            config,
            image: MetadataImage::new(),
            committed: MetadataOffset(0),
            role: Role::Standby,
        }
    }

    /// The committed metadata image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// What the active controller decides on: the committed image with its own uncommitted
    /// proposals applied (`None` unless active).
    pub fn speculative_image(&self) -> Option<&MetadataImage> {
        match &self.role {
            Role::Active(a) => Some(&a.image),
            _ => None,
        }
    }

    /// The offset of the last committed entry reported.
    pub fn committed_offset(&self) -> MetadataOffset {
        self.committed
    }

    /// Whether this node is the active controller (leads the quorum and has caught up).
    pub fn is_active(&self) -> bool {
        matches!(self.role, Role::Active(_))
    }

    /// The settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// When the driver must send [`Event::Tick`] next: the earliest expiry of an unfenced
    /// broker's session, on the active controller.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match &self.role {
            Role::Active(a) => {
                let expiry = brokers::next_expiry(a, self.config.session_timeout_ms);
                let rebalance = self
                    .config
                    .auto_leader_rebalance_enable
                    .then_some(a.next_rebalance_ms);
                expiry.into_iter().chain(rebalance).min()
            }
            _ => None,
        }
    }

    /// Handles one event at time `now_ms` (monotonic milliseconds of the driver's clock).
    pub fn handle(&mut self, event: Event, now_ms: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        match event {
            Event::Committed { offset, records } => {
                self.on_committed(offset, records, now_ms, &mut out)
            }
            Event::BecameLeader { next_offset } => {
                self.resign(&mut out);
                self.role = Role::Claiming { next_offset };
                self.maybe_activate(now_ms);
            }
            Event::Resigned => self.resign(&mut out),
            Event::Request { id, request } => self.request(id, request, now_ms, &mut out),
            Event::Tick => {}
        }
        let bug = self.bug();
        if let Role::Active(active) = &mut self.role {
            let batches = brokers::expire_sessions(active, &self.config, now_ms, bug);
            for batch in batches {
                match batch {
                    Ok(records) => self.submit(records, None, &mut out),
                    Err(e) => out.push(Effect::MetadataFault {
                        offset: self.committed,
                        error: format!("controller built an invalid record: {e}"),
                    }),
                }
            }
        }
        self.maybe_rebalance(now_ms, &mut out);
        self.rebuild_if_needed();
        out
    }

    /// Kafka's `maybeBalancePartitionLeaders`: every `leader.imbalance.check.interval.seconds`,
    /// partitions whose preferred replica is a live ISR member but not the leader get it back,
    /// at most [`partitions::MAX_ELECTIONS_PER_IMBALANCE`] per entry; with more left, the next
    /// entry follows at once.
    fn maybe_rebalance(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let interval = self.config.leader_imbalance_check_interval_ms;
        let Role::Active(active) = &mut self.role else {
            return;
        };
        if !self.config.auto_leader_rebalance_enable || now_ms < active.next_rebalance_ms {
            return;
        }
        let records = partitions::preferred_elections(&active.image);
        active.next_rebalance_ms = if records.len() >= partitions::MAX_ELECTIONS_PER_IMBALANCE {
            now_ms
        } else {
            now_ms.saturating_add(interval)
        };
        let mut staged = Staged::new(active);
        let mut result = Ok(());
        for r in records {
            if let Err(e) = staged.push(r) {
                result = Err(e);
                break;
            }
        }
        match result {
            Ok(()) => {
                let records = staged.finish();
                self.submit(records, None, out);
            }
            Err(e) => {
                staged.rollback();
                out.push(Effect::MetadataFault {
                    offset: self.committed,
                    error: format!("controller built an invalid record: {e}"),
                });
            }
        }
    }

    /// Rebuilds the speculative image after staged records were dropped.
    fn rebuild_if_needed(&mut self) {
        let Role::Active(active) = &mut self.role else {
            return;
        };
        if !active.rebuild {
            return;
        }
        active.rebuild = false;
        let mut image = self.image.clone();
        for batch in &active.pending {
            // These applied to the speculative image before, in the same order.
            let _ = apply_entry(&mut image, &batch.records);
        }
        active.image = image;
    }

    fn bug(&self) -> PlantedBug {
        self.config.planted_bug
    }

    fn on_committed(
        &mut self,
        offset: MetadataOffset,
        records: Vec<MetadataRecord>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        if offset <= self.committed {
            out.push(Effect::MetadataFault {
                offset,
                error: format!(
                    "entry {} reported committed after entry {}",
                    offset.0, self.committed.0
                ),
            });
            return;
        }
        self.committed = offset;
        let faulty = match apply_entry(&mut self.image, &records) {
            Ok(()) => false,
            Err(e) => {
                out.push(Effect::MetadataFault {
                    offset,
                    error: e.to_string(),
                });
                true
            }
        };
        match &mut self.role {
            Role::Active(active) => {
                // Our own proposals commit in order while we lead; anything else means the
                // log moved on without them (a lost leadership the driver has not reported yet).
                let ours = active
                    .pending
                    .front()
                    .is_some_and(|b| b.offset == offset && b.records == records);
                if ours && !faulty {
                    if let Some(batch) = active.pending.pop_front() {
                        for (id, reply) in batch.replies {
                            out.push(Effect::Reply { id, reply });
                        }
                    }
                } else {
                    self.resign(out);
                }
            }
            Role::Claiming { .. } => self.maybe_activate(now_ms),
            Role::Standby => {}
        }
    }

    fn maybe_activate(&mut self, now_ms: u64) {
        let Role::Claiming { next_offset } = self.role else {
            return;
        };
        if self.committed.0 + 1 < next_offset.0 {
            return;
        }
        if self.committed.0 + 1 > next_offset.0 {
            // Entries past our first proposal's offset are committed: the leadership this
            // claim was for is over.
            self.role = Role::Standby;
            return;
        }
        let sessions = self
            .image
            .brokers()
            .keys()
            .map(|&id| (id, Session::new(now_ms)))
            .collect();
        self.role = Role::Active(Box::new(Active {
            image: self.image.clone(),
            next_offset,
            pending: VecDeque::new(),
            sessions,
            rebuild: false,
            next_rebalance_ms: now_ms
                .saturating_add(self.config.leader_imbalance_check_interval_ms),
        }));
    }

    /// Stops being active: every waiting request is answered `NOT_CONTROLLER`.
    fn resign(&mut self, out: &mut Vec<Effect>) {
        if let Role::Active(active) = std::mem::replace(&mut self.role, Role::Standby) {
            for batch in active.pending {
                for (id, reply) in batch.replies {
                    out.push(Effect::Reply {
                        id,
                        reply: reply.into_error(ErrorCode::NotController),
                    });
                }
            }
        }
    }

    fn request(&mut self, id: RequestId, request: Request, now_ms: u64, out: &mut Vec<Effect>) {
        let bug = self.bug();
        let Role::Active(active) = &mut self.role else {
            out.push(Effect::Reply {
                id,
                reply: Reply::error(&request, ErrorCode::NotController),
            });
            return;
        };
        let mut staged = Staged::new(active);
        let config = &self.config;
        let reply = match &request {
            Request::BrokerRegistration(r) => brokers::register(&mut staged, config, r, now_ms),
            Request::BrokerHeartbeat(r) => brokers::heartbeat(&mut staged, config, r, now_ms, bug),
            Request::AlterPartition { version, request } => {
                partitions::alter_partition(&mut staged, config, *version, request, bug)
            }
            Request::AllocateProducerIds(r) => producer_ids::allocate(&mut staged, r),
            Request::Write(records) => {
                let mut result = Ok(());
                for r in records {
                    if let Err(e) = staged.push(r.clone()) {
                        result = Err(e);
                        break;
                    }
                }
                if result.is_ok() {
                    // Records built on an older image may name a leader that has been fenced
                    // since: such partitions get an election in the same entry, so a write
                    // never leaves a leader outside the live ISR.
                    let touched = partitions::touched(records);
                    for r in partitions::repair_leaders(staged.image(), config, &touched) {
                        if let Err(e) = staged.push(r) {
                            result = Err(e);
                            break;
                        }
                    }
                }
                match result {
                    Ok(()) => Ok(Reply::Write(Ok(staged.offset()))),
                    Err(e) => {
                        staged.rollback();
                        Ok(Reply::Write(Err(WriteError::Invalid(e.to_string()))))
                    }
                }
            }
        };
        match reply {
            Ok(reply) => {
                let records = staged.finish();
                self.submit(records, Some((id, reply)), out);
            }
            Err(e) => {
                // A record this controller built does not apply to its own image: a bug, not
                // the request's fault. Nothing is proposed.
                staged.rollback();
                out.push(Effect::MetadataFault {
                    offset: self.committed,
                    error: format!("controller built an invalid record: {e}"),
                });
                out.push(Effect::Reply {
                    id,
                    reply: Reply::error(&request, ErrorCode::UnknownServerError),
                });
            }
        }
    }

    /// Proposes `records` (already applied to the speculative image) as the next entry, or, when
    /// there are none, answers once every earlier proposal is committed.
    fn submit(
        &mut self,
        records: Vec<MetadataRecord>,
        reply: Option<(RequestId, Reply)>,
        out: &mut Vec<Effect>,
    ) {
        let Role::Active(active) = &mut self.role else {
            return;
        };
        if records.is_empty() {
            if let Some((id, reply)) = reply {
                match active.pending.back_mut() {
                    Some(last) => last.replies.push((id, reply)),
                    None => out.push(Effect::Reply { id, reply }),
                }
            }
            return;
        }
        let offset = active.next_offset;
        active.next_offset = MetadataOffset(offset.0 + 1);
        out.push(Effect::Propose {
            offset,
            records: records.clone(),
        });
        active.pending.push_back(Batch {
            offset,
            records,
            replies: reply.into_iter().collect(),
        });
    }
}

/// Applies one committed entry whole or not at all: its records were decided together (one
/// batch of the active controller), so a refused record voids the entry, on every node alike
/// (the broker's driver skips such an entry the same way). A single record applies atomically
/// by itself; a longer entry is tried on a copy first.
pub fn apply_entry(
    image: &mut MetadataImage,
    records: &[MetadataRecord],
) -> Result<(), potok_metadata::MetadataError> {
    match records {
        [] => Ok(()),
        [one] => image.apply(one),
        _ => {
            let mut next = image.clone();
            for r in records {
                next.apply(r)?;
            }
            *image = next;
            Ok(())
        }
    }
}

/// The records of one request being built: each is applied to the speculative image as it is
/// added, so that later decisions of the same request see it; [`Staged::rollback`] restores
/// the image if the request ends up proposing nothing.
pub(crate) struct Staged<'a> {
    pub(crate) active: &'a mut Active,
    records: Vec<MetadataRecord>,
}

impl<'a> Staged<'a> {
    pub(crate) fn new(active: &'a mut Active) -> Staged<'a> {
        Staged {
            active,
            records: Vec::new(),
        }
    }

    /// The speculative image, with this request's records so far.
    pub(crate) fn image(&self) -> &MetadataImage {
        &self.active.image
    }

    /// The offset this request's records will be proposed at (a broker epoch, for a
    /// registration).
    pub(crate) fn offset(&self) -> MetadataOffset {
        self.active.next_offset
    }

    /// The offset of the last proposal so far (committed or not).
    pub(crate) fn last_offset(&self) -> MetadataOffset {
        MetadataOffset(self.active.next_offset.0 - 1)
    }

    /// Applies `record` to the speculative image and adds it to the request's batch.
    pub(crate) fn push(
        &mut self,
        record: MetadataRecord,
    ) -> Result<(), potok_metadata::MetadataError> {
        self.active.image.apply(&record)?;
        self.records.push(record);
        Ok(())
    }

    /// Drops this request's records (rare: only a refused write or a bug gets here); the
    /// controller then rebuilds the speculative image from the committed one and the pending
    /// batches.
    pub(crate) fn rollback(&mut self) {
        if self.records.is_empty() {
            return;
        }
        self.records.clear();
        self.active.rebuild = true;
    }

    pub(crate) fn finish(self) -> Vec<MetadataRecord> {
        self.records
    }
}
