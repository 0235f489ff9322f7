//! One voter of the controller quorum: raft-rs's `RawNode` behind a sans-IO interface.
//!
//! Events in: [`QuorumNode::tick`] (the driver's clock, one call per tick interval),
//! [`QuorumNode::step`] (a message from another voter), [`QuorumNode::propose`] (metadata
//! records to replicate, on the leader). Outputs out: messages to send and committed entries to
//! apply, in order.
//!
//! Durability is the storage's job: the node writes entries, the hard state (term, vote,
//! commit) and snapshots to its [`MemStorage`] exactly when raft-rs's `Ready` protocol says they
//! must be durable, and only then releases the messages that depend on them (a vote, an append
//! acknowledgement). A crash loses everything else; a node rebuilt from the same storage
//! ([`QuorumNode::restart`]) is the same voter. The tests' simulated crashes rely on this, and
//! the broker's driver will put a file-backed store behind the same points.

use raft::eraftpb::{ConfState, Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, Storage};

use crate::ControllerError;

/// The quorum's timing in ticks, as Kafka's `controller.quorum.*` settings divided by the tick
/// interval the driver uses.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This voter's id (`node.id`; raft-rs needs it non-zero).
    pub id: u64,
    /// Every voter (`controller.quorum.voters`), this one included.
    pub voters: Vec<u64>,
    /// Ticks without a leader's message before a follower starts an election
    /// (`controller.quorum.election.timeout.ms`; raft-rs randomizes within [this, 2 × this)).
    pub election_ticks: usize,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_ticks: usize,
}

impl QuorumConfig {
    fn raft_config(&self, applied: u64) -> Config {
        Config {
            id: self.id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            // A leader that cannot reach a majority steps down (Kafka's `check-quorum`
            // behaviour: `controller.quorum.fetch.timeout.ms`), and a partitioned voter's
            // pre-vote (KIP-996) keeps it from disturbing the quorum when it comes back.
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..Default::default()
        }
    }
}

/// What the driver must do after an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `msg` to voter `to` (loss, delay and reordering are tolerated).
    Send {
        /// The receiving voter.
        to: u64,
        /// The message.
        msg: Message,
    },
    /// The entry at `index` is committed: apply `data` (empty for Raft's own entries, such as a
    /// new leader's no-op, which still take an index).
    Committed {
        /// Its log index.
        index: u64,
        /// The term it was written in.
        term: u64,
        /// The proposed bytes.
        data: Vec<u8>,
    },
}

/// One voter.
pub struct QuorumNode {
    config: QuorumConfig,
    raw: RawNode<MemStorage>,
    /// The highest index handed out as [`Output::Committed`].
    applied: u64,
    /// Test-only fault: store the hard state without the vote. Exists so that a test can show
    /// that the fault tests catch a real Raft bug: a voter that forgets its vote across a crash
    /// votes twice in one term, and two leaders can be elected in it.
    #[cfg(test)]
    pub(crate) plant_unpersisted_vote: bool,
}

fn logger() -> slog::Logger {
    // raft-rs logs through slog; the driver logs what matters through tracing.
    slog::Logger::root(slog::Discard, slog::o!())
}

impl QuorumNode {
    /// A voter with empty storage (first start of a formatted node).
    pub fn new(config: QuorumConfig) -> Result<QuorumNode, ControllerError> {
        let storage =
            MemStorage::new_with_conf_state(ConfState::from((config.voters.clone(), vec![])));
        QuorumNode::restart(config, storage)
    }

    /// A voter over existing durable `storage` (after a restart or a crash). Committed entries
    /// are handed out again from the first index, because the state machine they feed (the
    /// metadata image) is rebuilt from the log.
    pub fn restart(
        config: QuorumConfig,
        storage: MemStorage,
    ) -> Result<QuorumNode, ControllerError> {
        let raw = RawNode::new(&config.raft_config(0), storage, &logger())?;
        Ok(QuorumNode {
            config,
            raw,
            applied: 0,
            #[cfg(test)]
            plant_unpersisted_vote: false,
        })
    }

    /// The durable storage (what survives a crash).
    pub fn storage(&self) -> MemStorage {
        self.raw.store().clone()
    }

    /// This voter's id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The leader this voter knows of in its current term.
    pub fn leader(&self) -> Option<u64> {
        let id = self.raw.raft.leader_id;
        (id != raft::INVALID_ID).then_some(id)
    }

    /// Whether this voter is the active controller.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current term (Kafka's leader epoch of the metadata log).
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The highest committed index this voter knows.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// One tick of the driver's clock.
    pub fn tick(&mut self) -> Vec<Output> {
        self.raw.tick();
        self.drain()
    }

    /// A message from another voter. A message for another node or a stale one is dropped by
    /// raft-rs; an error means the message was malformed for this group.
    pub fn step(&mut self, msg: Message) -> Result<Vec<Output>, ControllerError> {
        if msg.to != self.config.id {
            return Ok(Vec::new());
        }
        self.raw.step(msg)?;
        Ok(self.drain())
    }

    /// Proposes `data` (encoded metadata records) on the leader.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Vec<Output>, ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        }
        self.raw.propose(Vec::new(), data)?;
        Ok(self.drain())
    }

    /// Runs raft-rs's `Ready` protocol until nothing is pending: messages that need nothing
    /// durable go out first, then entries and the hard state are stored, and only then the
    /// messages that promise them (votes, append acknowledgements).
    fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        while self.raw.has_ready() {
            let mut ready = self.raw.ready();
            self.send(&mut out, ready.take_messages());
            let store = self.raw.store().clone();
            if !ready.snapshot().is_empty() {
                // A snapshot from the leader replaces the log below it; applying it to the
                // image is the driver's job once snapshots carry the image (not yet: the
                // log is never compacted, so no leader sends one).
                if let Err(e) = store.wl().apply_snapshot(ready.snapshot().clone()) {
                    debug_assert!(false, "snapshot from raft-rs refused by its storage: {e}");
                }
            }
            self.committed(&mut out, ready.take_committed_entries());
            if let Err(e) = store.wl().append(ready.entries()) {
                debug_assert!(false, "entries from raft-rs refused by its storage: {e}");
            }
            if let Some(hs) = ready.hs() {
                #[allow(unused_mut)]
                let mut hs = hs.clone();
                #[cfg(test)]
                if self.plant_unpersisted_vote {
                    hs.vote = 0;
                }
                store.wl().set_hardstate(hs);
            }
            self.send(&mut out, ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                store.wl().mut_hard_state().set_commit(commit);
            }
            self.send(&mut out, light.take_messages());
            self.committed(&mut out, light.take_committed_entries());
            self.raw.advance_apply();
        }
        out
    }

    fn send(&self, out: &mut Vec<Output>, msgs: Vec<Message>) {
        out.extend(msgs.into_iter().map(|msg| Output::Send { to: msg.to, msg }));
    }

    fn committed(&mut self, out: &mut Vec<Output>, entries: Vec<Entry>) {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            self.applied = e.index;
            let data = if e.get_entry_type() == EntryType::EntryNormal {
                e.data.to_vec()
            } else {
                Vec::new()
            };
            out.push(Output::Committed {
                index: e.index,
                term: e.term,
                data,
            });
        }
    }

    /// The last index stored durably (for tests and DescribeQuorum's log end offset).
    pub fn last_index(&self) -> u64 {
        self.raw.store().last_index().unwrap_or(0)
    }
}
