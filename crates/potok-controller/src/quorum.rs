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

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, Storage};

use crate::observer::{FetchAnswer, FetchRequest, MAX_FETCH_BYTES};
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
    /// Ticks an observer's fetch that finds nothing new waits for an entry to commit before it
    /// is answered empty (Kafka's fetch long poll; 0 answers at once).
    pub observer_wait_ticks: u64,
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
    /// Make these durable (one write and one fsync) before acting on any later output: the
    /// messages after it may promise them (a vote, an append acknowledgement) and the
    /// committed entries after it are covered by its hard state's commit index, so a restart
    /// from storage never forgets something already applied. `entries` may overwrite a
    /// suffix of the stored log from their first index on (a new leader's log wins).
    Persist {
        /// Replaces the log below and at its index (received from a leader).
        snapshot: Option<Snapshot>,
        /// Entries to append, in index order.
        entries: Vec<Entry>,
        /// The new term, vote and commit index, if they changed.
        hard_state: Option<HardState>,
    },
    /// The answer to [`QuorumNode::read_index`]: the leader's commit index when it confirmed
    /// its leadership. Once this node has applied `index`, its state is at least as recent as
    /// the quorum's was when the read was asked.
    ReadIndex {
        /// The caller's tag of the request answered.
        ctx: u64,
        /// The leader's commit index.
        index: u64,
    },
    /// An observer's fetch for voter `to` ([`crate::observer`]): sent on the observer's own
    /// connection; the voter answers with [`QuorumNode::serve_fetch`]. Voters never emit it.
    Fetch {
        /// The voter asked.
        to: u64,
        /// What is asked.
        request: FetchRequest,
    },
    /// The answer to observer `observer`'s ReadIndex tagged `ctx` ([`FetchRequest::read`]):
    /// send it a [`FetchAnswer`] whose `read` is `(ctx, index)`.
    ObserverRead {
        /// The observer.
        observer: u64,
        /// Its tag.
        ctx: u64,
        /// The leader's confirmed commit index.
        index: u64,
    },
    /// The answer to observer `observer`'s fetch that waited for a new entry
    /// ([`QuorumNode::serve_fetch`]): send it on the observer's connection.
    ObserverAnswer {
        /// The observer.
        observer: u64,
        /// The answer.
        answer: FetchAnswer,
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
    /// Observers that fetched from this voter: id → the last index they hold (for
    /// DescribeQuorum), at most [`MAX_OBSERVERS_TRACKED`].
    observers: std::collections::BTreeMap<u64, u64>,
    /// ReadIndex requests asked for observers: sequence → (observer, its tag). Their Raft
    /// tags have [`OBSERVER_READ`] set, so they never mix with this node's own; at most
    /// [`MAX_OBSERVERS_TRACKED`] (the oldest dropped: the observer asks again).
    observer_reads: std::collections::BTreeMap<u64, (u64, u64)>,
    next_observer_read: u64,
    /// Observers' fetches waiting for a new committed entry (Kafka's fetch long poll):
    /// observer → (its request, the tick, term and leader when it arrived); at most one per
    /// observer and [`MAX_OBSERVERS_TRACKED`] in all.
    parked: std::collections::BTreeMap<u64, (FetchRequest, u64, u64, u64)>,
    /// Ticks since start (the parked fetches' clock).
    ticks: u64,
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
        QuorumNode::restart_at(config, storage, 0)
    }

    /// [`Self::restart`] for a driver whose state machine already holds the committed entries
    /// up to `applied` (it rebuilt its image from the stored log): only later entries are
    /// handed out. `applied` must not exceed the stored commit index.
    pub fn restart_at(
        config: QuorumConfig,
        storage: MemStorage,
        applied: u64,
    ) -> Result<QuorumNode, ControllerError> {
        let raw = RawNode::new(&config.raft_config(applied), storage, &logger())?;
        Ok(QuorumNode {
            config,
            raw,
            applied,
            observers: Default::default(),
            observer_reads: Default::default(),
            next_observer_read: 0,
            parked: Default::default(),
            ticks: 0,
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
        self.ticks += 1;
        self.raw.tick();
        let mut out = self.drain();
        self.answer_parked(&mut out, true);
        out
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

    /// Proposes `data` (encoded metadata records) on the leader. Returns the index and term
    /// the entry was appended at: it is this proposal that commits if and only if an
    /// [`Output::Committed`] names the same index and term.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64, Vec<Output>), ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        }
        self.raw.propose(Vec::new(), data)?;
        let (index, term) = (self.raw.raft.raft_log.last_index(), self.term());
        Ok((index, term, self.drain()))
    }

    /// Proposes `data` from any voter: a follower forwards it to the leader it knows (raft-rs's
    /// proposal forwarding), without learning whether or where it commits. For idempotent
    /// proposals the driver repeats until it sees their effect (a broker's registration).
    pub fn propose_forwarded(&mut self, data: Vec<u8>) -> Result<Vec<Output>, ControllerError> {
        self.raw.propose(Vec::new(), data)?;
        Ok(self.drain())
    }

    /// What DescribeQuorum reports: leader, term, commit index, and on the leader each voter's
    /// highest replicated index.
    pub fn status(&self) -> QuorumStatus {
        let leading = self.is_leader();
        let voters = self
            .config
            .voters
            .iter()
            .map(|&id| {
                let matched = if id == self.config.id {
                    Some(self.raw.raft.raft_log.last_index())
                } else if leading {
                    self.raw.raft.prs().get(id).map(|p| p.matched)
                } else {
                    None
                };
                (id, matched)
            })
            .collect();
        QuorumStatus {
            id: self.config.id,
            leader: self.leader(),
            term: self.term(),
            commit: self.commit_index(),
            last_index: self.raw.raft.raft_log.last_index(),
            voters,
            observers: if leading {
                self.observers
                    .iter()
                    .map(|(&id, &last)| (id, last))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Answers observer `observer`'s fetch with the committed entries from `request.from_index`
    /// on (at most `request.max_bytes` of them, but at least one), this voter's term, the leader
    /// it knows and its commit index. Answering changes nothing of the Raft state: an observer
    /// is neither a voter nor a learner, so it is never counted in a majority; only its
    /// progress is noted for DescribeQuorum. A fetch carrying a ReadIndex on the leader asks
    /// Raft's ReadIndex for it: the outputs (the heartbeat round) go out like any, and the
    /// answer comes later as an [`Output::ObserverRead`]. A fetch that finds no new committed
    /// entry waits (`None`) until one commits, the term or leader changes, or
    /// [`QuorumConfig::observer_wait_ticks`] passed, and is then answered by an
    /// [`Output::ObserverAnswer`]; a newer fetch of the same observer replaces it.
    pub fn serve_fetch(
        &mut self,
        observer: u64,
        request: &FetchRequest,
    ) -> (Option<FetchAnswer>, Vec<Output>) {
        let mut out = Vec::new();
        if request.read != 0 && self.is_leader() {
            let seq = self.next_observer_read;
            self.next_observer_read = (seq + 1) % OBSERVER_READ;
            self.observer_reads.insert(seq, (observer, request.read));
            while self.observer_reads.len() > MAX_OBSERVERS_TRACKED {
                self.observer_reads.pop_first();
            }
            self.raw
                .read_index((OBSERVER_READ | seq).to_be_bytes().to_vec());
            out = self.drain();
        }
        let answer = self.fetch_answer(observer, request);
        let room = self.parked.len() < MAX_OBSERVERS_TRACKED || self.parked.contains_key(&observer);
        if answer.entries.is_empty()
            && request.from_index > answer.commit
            && self.config.observer_wait_ticks > 0
            && room
        {
            self.parked.insert(
                observer,
                (request.clone(), self.ticks, answer.term, answer.leader),
            );
            return (None, out);
        }
        self.parked.remove(&observer);
        (Some(answer), out)
    }

    /// Answers the parked fetches that can be: an entry they wait for committed, the term or
    /// the leader changed (observers learn a new leader at once), or, with `expire`, they waited
    /// long enough.
    fn answer_parked(&mut self, out: &mut Vec<Output>, expire: bool) {
        if self.parked.is_empty() {
            return;
        }
        let (commit, term, leader) = (self.commit_index(), self.term(), self.raw.raft.leader_id);
        let (now, wait) = (self.ticks, self.config.observer_wait_ticks);
        let due: Vec<u64> = self
            .parked
            .iter()
            .filter(|(_, (r, at, t, l))| {
                commit >= r.from_index
                    || *t != term
                    || *l != leader
                    || (expire && now.saturating_sub(*at) >= wait)
            })
            .map(|(&o, _)| o)
            .collect();
        for observer in due {
            if let Some((request, ..)) = self.parked.remove(&observer) {
                let answer = self.fetch_answer(observer, &request);
                out.push(Output::ObserverAnswer { observer, answer });
            }
        }
    }

    fn fetch_answer(&mut self, observer: u64, request: &FetchRequest) -> FetchAnswer {
        if !self.config.voters.contains(&observer)
            && (self.observers.len() < MAX_OBSERVERS_TRACKED
                || self.observers.contains_key(&observer))
        {
            self.observers
                .insert(observer, request.from_index.saturating_sub(1));
        }
        let log = &self.raw.raft.raft_log;
        let commit = log.committed;
        let low = request.from_index.max(log.first_index());
        let entries = if request.from_index >= log.first_index() && low <= commit {
            // `commit` never exceeds the last index, so the slice is within bounds.
            log.slice(
                low,
                commit + 1,
                u64::from(request.max_bytes.min(MAX_FETCH_BYTES)),
                raft::GetEntriesContext::empty(false),
            )
            .unwrap_or_default()
        } else {
            Vec::new()
        };
        FetchAnswer {
            leader: self.raw.raft.leader_id,
            term: self.term(),
            commit,
            read: None,
            entries,
        }
    }

    /// Asks the leader for its commit index (Raft's ReadIndex, confirmed by a heartbeat round),
    /// answered by an [`Output::ReadIndex`] in this or a later call's outputs. raft-rs drops
    /// the request while no leader is known or the leader has committed nothing in its term:
    /// the caller asks again until an answer comes.
    pub fn read_index(&mut self, ctx: u64) -> Vec<Output> {
        self.raw.read_index(ctx.to_be_bytes().to_vec());
        self.drain()
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
            let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
            if let Some(snap) = &snapshot {
                // A snapshot from the leader replaces the log below it; applying it to the
                // image is the driver's job once snapshots carry the image (not yet: the
                // log is never compacted, so no leader sends one).
                if let Err(e) = store.wl().apply_snapshot(snap.clone()) {
                    debug_assert!(false, "snapshot from raft-rs refused by its storage: {e}");
                }
            }
            let entries = ready.entries().clone();
            if let Err(e) = store.wl().append(&entries) {
                debug_assert!(false, "entries from raft-rs refused by its storage: {e}");
            }
            let mut hard_state = None;
            if let Some(hs) = ready.hs() {
                #[allow(unused_mut)]
                let mut hs = hs.clone();
                #[cfg(test)]
                if self.plant_unpersisted_vote {
                    hs.vote = 0;
                }
                store.wl().set_hardstate(hs.clone());
                hard_state = Some(hs);
            }
            if snapshot.is_some() || !entries.is_empty() || hard_state.is_some() {
                out.push(Output::Persist {
                    snapshot,
                    entries,
                    hard_state,
                });
            }
            self.committed(&mut out, ready.take_committed_entries());
            for r in ready.take_read_states() {
                let Ok(tag) = <[u8; 8]>::try_from(r.request_ctx.as_slice()) else {
                    continue;
                };
                let tag = u64::from_be_bytes(tag);
                if tag & OBSERVER_READ == 0 {
                    out.push(Output::ReadIndex {
                        ctx: tag,
                        index: r.index,
                    });
                } else if let Some((observer, ctx)) =
                    self.observer_reads.remove(&(tag & !OBSERVER_READ))
                {
                    out.push(Output::ObserverRead {
                        observer,
                        ctx,
                        index: r.index,
                    });
                }
            }
            self.send(&mut out, ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                store.wl().mut_hard_state().set_commit(commit);
                out.push(Output::Persist {
                    snapshot: None,
                    entries: Vec::new(),
                    hard_state: Some(store.rl().hard_state().clone()),
                });
            }
            self.send(&mut out, light.take_messages());
            self.committed(&mut out, light.take_committed_entries());
            self.raw.advance_apply();
        }
        self.answer_parked(&mut out, false);
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

    /// The index of the last entry of the log, persisted or not (a new leader's empty entry
    /// is in it as soon as it took over; its next proposal gets the index after).
    pub fn log_end(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The last index stored durably (for tests and DescribeQuorum's log end offset).
    pub fn last_index(&self) -> u64 {
        self.raw.store().last_index().unwrap_or(0)
    }
}

/// What a voter knows of the quorum (Kafka's DescribeQuorum answer is built from it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This voter.
    pub id: u64,
    /// The leader of the current term, if known.
    pub leader: Option<u64>,
    /// The current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// The commit index (Kafka's high watermark is the next offset).
    pub commit: u64,
    /// This voter's last log index.
    pub last_index: u64,
    /// Each voter with its highest replicated index: known for every voter on the leader,
    /// only for itself elsewhere.
    pub voters: Vec<(u64, Option<u64>)>,
    /// On the leader, each observer that fetched from it with the last index it held then.
    pub observers: Vec<(u64, u64)>,
}

/// How many observers a voter remembers for DescribeQuorum, and how many of their ReadIndex
/// requests it keeps pending (a bound: any node of the cluster may fetch).
pub const MAX_OBSERVERS_TRACKED: usize = 1024;

/// The bit that marks a Raft ReadIndex tag as an observer's (the node's own tags are small
/// counters).
const OBSERVER_READ: u64 = 1 << 63;

/// The protobuf encoding of raft-rs's messages and stored types, so that the driver's
/// transport and storage need no codec of their own. Decoding never panics; malformed bytes
/// are an error.
pub mod codec {
    use super::*;

    /// Encodes a raft message, entry, hard state or snapshot.
    pub fn encode<M: protobuf::Message>(m: &M) -> Result<Vec<u8>, ControllerError> {
        m.write_to_bytes()
            .map_err(|e| ControllerError::Codec(e.to_string()))
    }

    /// Decodes one raft message.
    pub fn decode_message(b: &[u8]) -> Result<Message, ControllerError> {
        Message::parse_from_bytes(b).map_err(|e| ControllerError::Codec(e.to_string()))
    }

    /// Decodes one log entry.
    pub fn decode_entry(b: &[u8]) -> Result<Entry, ControllerError> {
        Entry::parse_from_bytes(b).map_err(|e| ControllerError::Codec(e.to_string()))
    }

    /// Decodes a hard state.
    pub fn decode_hard_state(b: &[u8]) -> Result<HardState, ControllerError> {
        HardState::parse_from_bytes(b).map_err(|e| ControllerError::Codec(e.to_string()))
    }

    /// Decodes a snapshot.
    pub fn decode_snapshot(b: &[u8]) -> Result<Snapshot, ControllerError> {
        Snapshot::parse_from_bytes(b).map_err(|e| ControllerError::Codec(e.to_string()))
    }
}
