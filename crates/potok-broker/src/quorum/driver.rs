//! The driver of the sans-IO voter: one OS thread that owns the `QuorumNode` and the
//! [`RaftStore`], ticks the node, steps what the transport delivers, proposes what the
//! handlers ask for, and acts on the node's outputs in their order: a `Persist` is written and
//! fsynced before any later message leaves, and committed entries (Kafka metadata records, one
//! `metadata_log` frame each) are applied in log order to the [`TopicManager`].
//!
//! A thread rather than a tokio task because every persist is an fsync and every applied
//! creation opens logs: blocking IO that must not run on the request workers. The thread
//! reads a bounded `std::sync::mpsc` inbox; tokio tasks only ever `try_send` to it.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use potok_controller::quorum::{Output, QuorumNode, QuorumStatus};
use potok_metadata::BrokerId;
use raft::eraftpb::Message;
use tokio::sync::{oneshot, watch};

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
}

/// How often this broker's registration is proposed again while the image lacks it, in ticks.
const REGISTER_EVERY_TICKS: u64 = 5;

/// The driver's state (owned by its thread).
pub struct Driver {
    pub(super) node: QuorumNode,
    pub(super) store: RaftStore,
    pub(super) peers: Peers,
    pub(super) topics: Arc<TopicManager>,
    pub(super) status: watch::Sender<QuorumStatus>,
    /// Proposals of this node by index: the term they were appended in and the reply.
    pub(super) pending:
        BTreeMap<u64, (u64, oneshot::Sender<std::result::Result<(), ProposeError>>)>,
    /// This broker's `RegisterBrokerRecord` frame and the epoch it carries.
    pub(super) registration: Vec<u8>,
    pub(super) broker_id: BrokerId,
    pub(super) broker_epoch: i64,
    pub(super) tick: Duration,
    pub(super) shutdown: watch::Receiver<bool>,
}

impl Driver {
    /// Runs until shutdown, the inbox closing, or a failed write of the Raft log (after which
    /// this voter must not say anything more: it stops, as Kafka's raft client does on a log
    /// write failure).
    pub fn run(mut self, inbox: Receiver<Event>) {
        let mut next_tick = Instant::now() + self.tick;
        let mut ticks: u64 = 0;
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
                Ok(Event::Propose { data, reply }) => match self.node.propose(data) {
                    Ok((index, term, out)) => {
                        self.pending.insert(index, (term, reply));
                        out
                    }
                    Err(potok_controller::ControllerError::NotLeader { leader }) => {
                        let _ = reply.send(Err(ProposeError::NotController(leader)));
                        Vec::new()
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ProposeError::Failed(e.to_string())));
                        Vec::new()
                    }
                },
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Err(e) = self.act(outputs) {
                tracing::error!(error = %e, "writing the raft log failed; this voter stops");
                break;
            }
            if Instant::now() >= next_tick {
                next_tick += self.tick;
                ticks += 1;
                let mut out = self.node.tick();
                if ticks.is_multiple_of(REGISTER_EVERY_TICKS) && self.needs_registration() {
                    match self.node.propose_forwarded(self.registration.clone()) {
                        Ok(more) => out.extend(more),
                        Err(e) => {
                            tracing::debug!(error = %e, "broker registration not proposed yet")
                        }
                    }
                }
                if let Err(e) = self.act(out) {
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
        for (_, (_, reply)) in std::mem::take(&mut self.pending) {
            let _ = reply.send(Err(ProposeError::Failed(
                "the quorum driver stopped".into(),
            )));
        }
    }

    /// Whether the image lacks this process's registration (and a leader is known to take it).
    fn needs_registration(&self) -> bool {
        self.node.leader().is_some()
            && !self.topics.with_image(|i| {
                i.brokers()
                    .get(&self.broker_id)
                    .is_some_and(|b| b.epoch == self.broker_epoch)
            })
    }

    fn publish(&self) {
        let s = self.node.status();
        if *self.status.borrow() != s {
            self.status.send_replace(s);
        }
    }

    fn act(&mut self, outputs: Vec<Output>) -> Result<()> {
        for o in outputs {
            match o {
                Output::Send { to, msg } => self.peers.send(to, msg),
                Output::Persist {
                    snapshot,
                    entries,
                    hard_state,
                } => self
                    .store
                    .persist(snapshot.as_ref(), &entries, hard_state.as_ref())?,
                Output::Committed { index, term, data } => self.apply(index, term, &data),
            }
        }
        Ok(())
    }

    /// Applies one committed entry and answers the proposal that made it, if it is ours.
    fn apply(&mut self, index: u64, term: u64, data: &[u8]) {
        let outcome = if data.is_empty() {
            // A new leader's empty entry: Raft's own, no records.
            Ok(())
        } else {
            match super::decode_entry(data) {
                Ok(records) => self
                    .topics
                    .apply_replicated(&records)
                    .map_err(ProposeError::Refused),
                Err(e) => Err(ProposeError::Refused(e)),
            }
        };
        if let Err(e) = &outcome {
            tracing::error!(index, term, error = ?e, "a committed metadata entry was refused by the image (on every node alike)");
        }
        let later = self.pending.split_off(&(index + 1));
        for (i, (t, reply)) in std::mem::replace(&mut self.pending, later) {
            let r = if i == index && t == term {
                outcome.clone()
            } else {
                Err(ProposeError::NotController(self.node.leader()))
            };
            let _ = reply.send(r);
        }
    }
}
