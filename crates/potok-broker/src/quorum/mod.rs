//! The controller quorum across processes (issue 17): the IO around `potok-controller`'s
//! sans-IO Raft voter.
//!
//! - [`config`]: the settings with Kafka's names.
//! - [`storage`]: the durable Raft log, hard state and snapshots (CRC-framed, fsynced).
//! - [`transport`]: the CONTROLLER listener and one bounded, reconnecting queue per peer.
//! - [`driver`]: the thread that ticks, steps and proposes, persists before it sends, and
//!   applies committed entries (Kafka's metadata records) to the [`TopicManager`].
//! - [`controller`]: what the active controller writes for CreateTopics.
//! - [`admin`]: DeleteTopics, CreatePartitions, AlterConfigs, IncrementalAlterConfigs through the
//!   quorum (the single-node handlers' validation over a backend that records), DescribeCluster.
//! - [`describe`]: DescribeQuorum (API 55).
//! - [`forwarding`]: the admin writes a node that is not the active controller forwards to it
//!   (KIP-590, without Envelope).
//! - [`lifecycle`]: this broker's registration and heartbeats to the active controller, and
//!   the control frames that carry them between voters.
//!
//! Every voter is also a broker (combined mode); a node with `process.roles=broker` is a
//! broker-only node, an observer of the quorum ([`member`], `potok_controller::observer`): it
//! fetches the committed entries from the voters and applies them like a voter, registers and
//! heartbeats the same way, and never votes. Each committed entry is one frame of the
//! local metadata log's format (`metadata_log::encode_frame`: Kafka's records, CRC-checked), so
//! the quorum replicates exactly what a single node stores. Every node applies the same
//! entries in the same order; the active controller is the Raft leader, and admin writes
//! reaching another node are forwarded to it ([`forwarding`]), as Kafka 4's brokers do; only
//! while no controller is known or reachable are they answered NOT_CONTROLLER (Kafka's code;
//! clients refresh Metadata, whose `controller_id` names the leader, and retry).

pub mod admin;
pub mod config;
pub mod controller;
pub mod describe;
pub mod driver;
pub mod elect;
pub(crate) mod forward;
pub mod forwarding;
pub mod internal;
pub mod lifecycle;
pub mod member;
pub mod reassign;
pub mod storage;
pub mod transport;

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use potok_controller::controller::{self as ctl, Controller, ControllerConfig, MetadataOffset};
use potok_controller::observer::{ObserverConfig, ObserverNode, DEFAULT_FETCH_MAX_BYTES};
use potok_controller::quorum::{QuorumConfig, QuorumNode, QuorumStatus};
use potok_metadata::{MetadataImage, MetadataRecord};
use potok_protocol::messages::alter_partition_request::AlterPartitionRequest;
use potok_protocol::messages::alter_partition_response::AlterPartitionResponse;
use potok_protocol::messages::broker_registration_request::Listener;
use potok_protocol::ErrorCode;
use raft::storage::MemStorage;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::topics::ApiError;
use crate::TopicManager;
use config::QuorumSettings;
use driver::{Driver, Event, ProposeError};
use member::Member;
use storage::RaftStore;

/// The quorum's directory under the metadata directory.
pub const QUORUM_DIR: &str = "quorum";
/// Events queued for the driver before new ones are dropped (messages) or refused (proposals).
const INBOX: usize = 4096;
/// Kafka's PLAINTEXT security protocol id.
const PLAINTEXT: i16 = 0;

/// Encodes records as one committed entry's data.
pub fn encode_entry(records: &[MetadataRecord]) -> Result<Vec<u8>> {
    crate::metadata_log::encode_frame(records)
}

/// Decodes one entry's data (exactly one whole metadata-log frame).
pub fn decode_entry(data: &[u8]) -> std::result::Result<Vec<MetadataRecord>, String> {
    let (records, end) =
        crate::metadata_log::parse_frames(data, std::path::Path::new("raft entry"))
            .map_err(|e| e.to_string())?;
    if end != data.len() {
        return Err("the entry is not one whole metadata frame".into());
    }
    Ok(records)
}

/// The records of the committed entries the image accepts, in order, as the driver applied
/// them (an entry the image refused was skipped on every node, and is skipped again).
pub fn accepted_records(entries: &[raft::eraftpb::Entry]) -> Vec<MetadataRecord> {
    let mut image = MetadataImage::new();
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| !e.data.is_empty()) {
        let Ok(records) = decode_entry(&e.data) else {
            continue;
        };
        let mut next = image.clone();
        if records.iter().all(|r| next.apply(r).is_ok()) {
            image = next;
            out.extend(records);
        }
    }
    out
}

/// A voter's handle, shared by the handlers.
#[derive(Debug)]
pub struct Quorum {
    /// This node's id.
    pub node_id: i32,
    /// The settings.
    pub settings: QuorumSettings,
    inbox: SyncSender<Event>,
    status: watch::Receiver<QuorumStatus>,
    /// Admin writes on the active controller, one at a time: Kafka's controller handles its
    /// events one after another, so a request is validated against the image that includes
    /// every earlier write.
    pub writes: Semaphore,
    /// Becomes true once the controller allowed this broker to stop (`should_shut_down`).
    shut_down_ok: watch::Receiver<bool>,
    /// Becomes true once this node has applied the quorum's metadata as of its start
    /// ([`Quorum::caught_up`]).
    caught_up: watch::Receiver<bool>,
    /// Partitions whose ISR may have to grow (a follower caught up), for `crate::isr`.
    isr_candidates: tokio::sync::mpsc::Sender<crate::isr::Candidate>,
    /// The receiving end, taken once by the ISR task.
    isr_inbox: Mutex<Option<tokio::sync::mpsc::Receiver<crate::isr::Candidate>>>,
}

impl Quorum {
    /// The node's current view of the quorum.
    pub fn status(&self) -> QuorumStatus {
        self.status.borrow().clone()
    }

    /// The active controller, if known.
    pub fn leader(&self) -> Option<i32> {
        self.status.borrow().leader.map(|l| l as i32)
    }

    /// Whether this node is the active controller.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// Waits until this node has applied every metadata entry the quorum had committed when
    /// the node started (Raft's ReadIndex, asked of the leader once one is known) and its own
    /// registration is unfenced in that image. Until then the image replayed from the local
    /// log may be stale (a restarted deposed leader would name itself leader and take `acks=1`
    /// writes that the real leader's log then truncates), and a node still fenced would answer
    /// Metadata without itself. Kafka's broker likewise reads no client request before it is
    /// caught up and unfenced (`BrokerServer.startup`).
    pub async fn caught_up(&self) {
        let mut rx = self.caught_up.clone();
        let _ = rx.wait_for(|&v| v).await;
    }

    /// Controlled shutdown (KIP-631): heartbeats ask `want_shut_down`, the active controller
    /// moves this broker's leaderships away, and answers `should_shut_down` once every live
    /// broker has applied that. Waits for it at most `timeout`; true when it came.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        if self.inbox.try_send(Event::WantShutDown).is_err() {
            return false;
        }
        let mut ok = self.shut_down_ok.clone();
        tokio::time::timeout(timeout, ok.wait_for(|&v| v))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends an AlterPartition of this broker's partitions to the active controller and waits
    /// for its answer, at most `timeout`; `None` when there was none (no active controller,
    /// not registered yet, a lost frame, a busy driver): the caller retries.
    pub async fn alter_partition(
        &self,
        request: AlterPartitionRequest,
        timeout: Duration,
    ) -> Option<AlterPartitionResponse> {
        let (tx, rx) = oneshot::channel();
        self.inbox
            .try_send(Event::AlterPartition { request, reply: tx })
            .ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }

    /// Tells the ISR task that `partition` of topic `topic_id` may have a follower ready to
    /// join its ISR (a follower fetch reached the high watermark). Dropped when the task's
    /// queue is full: its periodic check finds the partition anyway.
    pub fn isr_candidate(&self, candidate: crate::isr::Candidate) {
        let _ = self.isr_candidates.try_send(candidate);
    }

    /// The ISR task's queue of candidates (once).
    pub(crate) fn take_isr_inbox(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<crate::isr::Candidate>> {
        self.isr_inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// A block of producer ids from the active controller for this broker: `(start, len)`,
    /// committed in the metadata log (a `ProducerIdsRecord`) before it is answered. Errors are
    /// Kafka's codes (not registered yet, no controller, NOT_CONTROLLER, timeout); the caller
    /// retries.
    pub async fn allocate_producer_ids(
        &self,
        timeout: Duration,
    ) -> std::result::Result<(i64, i32), ErrorCode> {
        let (tx, rx) = oneshot::channel();
        self.inbox
            .try_send(Event::AllocateProducerIds { reply: tx })
            .map_err(|_| ErrorCode::RequestTimedOut)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) if r.error_code == 0 && r.producer_id_start >= 0 && r.producer_id_len > 0 => {
                Ok((r.producer_id_start, r.producer_id_len))
            }
            Ok(Ok(r)) if r.error_code != 0 => {
                Err(ErrorCode::from_code(r.error_code).unwrap_or(ErrorCode::UnknownServerError))
            }
            Ok(Ok(_)) => Err(ErrorCode::UnknownServerError),
            Ok(Err(_)) => Err(ErrorCode::UnknownServerError),
            Err(_) => Err(ErrorCode::RequestTimedOut),
        }
    }

    /// Replicates `records` as one entry and waits until it is committed and applied here, at
    /// most `timeout`.
    pub async fn propose(
        &self,
        records: &[MetadataRecord],
        timeout: Duration,
    ) -> std::result::Result<(), ApiError> {
        let data = encode_entry(records)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.inbox
            .try_send(Event::Propose { data, reply: tx })
            .map_err(|_| ApiError::new(ErrorCode::RequestTimedOut, "the controller is busy"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(ProposeError::NotController(_)))) => Err(not_controller()),
            Ok(Ok(Err(ProposeError::Refused(e)))) => {
                Err(ApiError::new(ErrorCode::InvalidRequest, e))
            }
            Ok(Ok(Err(ProposeError::Failed(e)))) => {
                Err(ApiError::new(ErrorCode::UnknownServerError, e))
            }
            Ok(Err(_)) => Err(ApiError::new(
                ErrorCode::UnknownServerError,
                "the quorum driver stopped",
            )),
            Err(_) => Err(ApiError::new(
                ErrorCode::RequestTimedOut,
                "the metadata change was not committed in time",
            )),
        }
    }
}

/// Kafka's answer to an admin write that reached a node other than the active controller.
pub fn not_controller() -> ApiError {
    ApiError::new(
        ErrorCode::NotController,
        "this node is not the active controller",
    )
}

/// What [`open`] prepares before the broker exists, and [`launch`] starts after.
pub struct Prepared {
    store: RaftStore,
    mem: MemStorage,
    applied: u64,
    rx: Receiver<Event>,
    status: watch::Sender<QuorumStatus>,
    /// The CONTROLLER listener (a voter's; an observer has none).
    listener: Option<TcpListener>,
    shut_down_ok: watch::Sender<bool>,
    caught_up: watch::Sender<bool>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("applied", &self.applied)
            .finish()
    }
}

/// Opens the Raft store and the topics it describes (blocking: call off the request threads).
pub fn open_store(
    cfg: &BrokerConfig,
    q: &QuorumSettings,
) -> Result<(RaftStore, MemStorage, TopicManager, u64)> {
    let voters: Vec<u64> = q.voters.keys().map(|&v| v as u64).collect();
    let dir = cfg
        .data_dir
        .join(crate::metadata_log::METADATA_DIR)
        .join(QUORUM_DIR);
    let (store, mem) = RaftStore::open(&dir, &voters)?;
    let committed = storage::committed_entries(&mem)?;
    let applied = mem.rl().hard_state().commit;
    let records = accepted_records(&committed);
    tracing::info!(
        committed_entries = committed.len(),
        records = records.len(),
        "replayed the quorum's committed metadata log"
    );
    let topics = TopicManager::open_replicated(cfg, &records)?;
    Ok((store, mem, topics, applied))
}

/// Binds the CONTROLLER listener and builds the handle; the driver starts in [`launch`].
pub async fn prepare(
    cfg: &BrokerConfig,
    q: &QuorumSettings,
    store: RaftStore,
    mem: MemStorage,
    applied: u64,
) -> Result<(Arc<Quorum>, Prepared)> {
    let listener = match &q.controller_listener {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| BrokerError::io(addr, e))?,
        ),
        None => None,
    };
    let (tx, rx) = sync_channel(INBOX);
    let (status_tx, status_rx) = watch::channel(QuorumStatus::default());
    let (ok_tx, ok_rx) = watch::channel(false);
    let (caught_up_tx, caught_up_rx) = watch::channel(false);
    let (isr_tx, isr_rx) = tokio::sync::mpsc::channel(crate::isr::CANDIDATES);
    let quorum = Arc::new(Quorum {
        node_id: cfg.node_id,
        settings: q.clone(),
        inbox: tx,
        status: status_rx,
        writes: Semaphore::new(1),
        shut_down_ok: ok_rx,
        caught_up: caught_up_rx,
        isr_candidates: isr_tx,
        isr_inbox: Mutex::new(Some(isr_rx)),
    });
    Ok((
        quorum,
        Prepared {
            store,
            mem,
            applied,
            rx,
            status: status_tx,
            listener,
            shut_down_ok: ok_tx,
            caught_up: caught_up_tx,
        },
    ))
}

/// Starts the transport and the driver thread.
pub fn launch(
    quorum: &Arc<Quorum>,
    p: Prepared,
    cfg: &BrokerConfig,
    advertised_port: u16,
    topics: Arc<TopicManager>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let q = &quorum.settings;
    let tick_ms = (q.election_timeout_ms / 10).clamp(1, 100);
    let election_ticks = (q.election_timeout_ms / tick_ms).max(2) as usize;
    let voters: Vec<u64> = q.voters.keys().map(|&v| v as u64).collect();
    let mem_for_replay = p.mem.clone();
    let node = if q.observer {
        // Kafka's observers give up a fetch after `controller.quorum.fetch.timeout.ms` and
        // look for the leader among the voters.
        let fetch_timeout_ticks = (q.fetch_timeout_ms / tick_ms).max(2);
        Member::Observer(
            ObserverNode::restart(
                ObserverConfig {
                    id: cfg.node_id as u64,
                    voters,
                    fetch_timeout_ticks,
                    max_bytes: DEFAULT_FETCH_MAX_BYTES,
                },
                p.mem,
            )
            .map_err(|e| BrokerError::Config(format!("the quorum observer cannot start: {e}")))?,
        )
    } else {
        let config = QuorumConfig {
            id: cfg.node_id as u64,
            voters,
            election_ticks,
            heartbeat_ticks: (election_ticks / 5).max(1),
            // An observer's fetch that finds nothing new waits up to 500 ms for the next
            // commit (Kafka's raft fetch max wait), well within the observer's fetch timeout.
            observer_wait_ticks: (500 / tick_ms).min(q.fetch_timeout_ms / tick_ms / 2).max(1),
        };
        Member::Voter(Box::new(
            QuorumNode::restart_at(config, p.mem, p.applied)
                .map_err(|e| BrokerError::Config(format!("the quorum voter cannot start: {e}")))?,
        ))
    };
    let peers = transport::start_peers(
        cfg.node_id,
        &q.cluster_id,
        &q.voters,
        &shutdown,
        q.observer.then(|| quorum.inbox.clone()),
    );
    if let Some(listener) = p.listener {
        let voters: Vec<i32> = q.voters.keys().copied().collect();
        tokio::spawn(transport::serve(
            listener,
            q.cluster_id.clone(),
            voters,
            quorum.inbox.clone(),
            peers.observers(),
            shutdown.clone(),
        ));
    }
    // Every node runs the controller logic over the committed log, so that whichever leads
    // can be the active controller; it starts from the entries replayed at open.
    let mut controller = Controller::new(ControllerConfig {
        session_timeout_ms: q.session_timeout_ms,
        auto_leader_rebalance_enable: q.auto_leader_rebalance_enable,
        leader_imbalance_check_interval_ms: q.leader_imbalance_check_interval_ms,
        unclean_leader_election_enable: q.unclean_leader_election_enable,
        planted_bug: cfg.planted_bug.controller(),
        ..ControllerConfig::new(q.cluster_id.clone())
    });
    for e in storage::committed_entries(&mem_for_replay)? {
        let records = if e.data.is_empty() {
            Vec::new()
        } else {
            decode_entry(&e.data).unwrap_or_default()
        };
        for effect in controller.handle(
            ctl::Event::Committed {
                offset: MetadataOffset(e.index as i64),
                records,
            },
            0,
        ) {
            if let ctl::Effect::MetadataFault { offset, error } = effect {
                tracing::warn!(offset = offset.0, %error, "a replayed entry was refused by the controller's image");
            }
        }
    }
    let started = std::time::Instant::now();
    // This broker's PLAINTEXT listener as clients reach it, with a new incarnation id per
    // process (a restart with the same node.id takes its registration over, KIP-631).
    let lifecycle = lifecycle::BrokerLifecycle::new(
        cfg.node_id,
        q.cluster_id.clone(),
        crate::topics::random_uuid(),
        Listener {
            name: "PLAINTEXT".into(),
            host: cfg.advertised.host.clone(),
            port: advertised_port,
            security_protocol: PLAINTEXT,
            ..Default::default()
        },
        Duration::from_millis(q.heartbeat_interval_ms),
        started,
    );
    let driver = Driver {
        node,
        store: p.store,
        peers,
        topics,
        status: p.status,
        controller,
        effects: Default::default(),
        origins: Default::default(),
        next_request: 1,
        led_term: None,
        lifecycle,
        started,
        tick: Duration::from_millis(tick_ms),
        shutdown,
        shut_down_ok: p.shut_down_ok,
        alters: HashMap::new(),
        next_alter: 1,
        pid_waiters: HashMap::new(),
        next_pid_request: 1,
        catch_up: driver::CatchUp::new(p.applied, p.caught_up),
    };
    let rx = p.rx;
    std::thread::Builder::new()
        .name("potok-quorum".into())
        .spawn(move || driver.run(rx))
        .map_err(|e| BrokerError::Config(format!("cannot start the quorum thread: {e}")))?;
    tracing::info!(
        node_id = cfg.node_id,
        voters = ?q.voters,
        controller_listener = ?q.controller_listener,
        tick_ms,
        election_ticks,
        role = if q.observer { "observer (process.roles=broker)" } else { "voter" },
        "controller quorum member started"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use potok_protocol::messages::internal::topic_record::TopicRecord;
    use potok_protocol::Uuid;

    fn entry(index: u64, records: &[MetadataRecord]) -> raft::eraftpb::Entry {
        raft::eraftpb::Entry {
            index,
            term: 1,
            data: encode_entry(records).unwrap().into(),
            ..Default::default()
        }
    }

    fn topic(name: &str, id: u8) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: Uuid([id; 16]),
            ..Default::default()
        })
    }

    #[test]
    fn entries_the_image_refuses_are_skipped_whole_at_replay_as_when_applied() {
        let noop = raft::eraftpb::Entry {
            index: 1,
            term: 1,
            ..Default::default()
        };
        let garbage = raft::eraftpb::Entry {
            index: 5,
            term: 1,
            data: b"not a frame".to_vec().into(),
            ..Default::default()
        };
        let entries = vec![
            noop,
            entry(2, &[topic("a", 1)]),
            // A second topic named "a" (another id) is refused, and with it the whole entry,
            // the valid "b" included.
            entry(3, &[topic("b", 2), topic("a", 3)]),
            entry(4, &[topic("c", 4)]),
            garbage,
        ];
        assert_eq!(
            accepted_records(&entries),
            vec![topic("a", 1), topic("c", 4)]
        );
        // An entry is exactly one frame: trailing bytes are refused.
        let mut data = encode_entry(&[topic("d", 5)]).unwrap();
        assert_eq!(decode_entry(&data).unwrap(), vec![topic("d", 5)]);
        data.push(0);
        assert!(decode_entry(&data).is_err());
    }
}
