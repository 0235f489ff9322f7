//! Observers of the controller quorum: broker-only nodes (`process.roles=broker`) that learn the
//! committed metadata log without being voters (KIP-595's observers, KIP-631's broker role).
//!
//! As in Kafka's KRaft, an observer is not in the voter set and the voters do not know it in
//! advance: it pulls the log by sending fetches to a voter, preferably the leader, and learns
//! the leader and its epoch from the answers. It never receives nor sends a Raft message, so it
//! can neither vote, nor stand for election, nor count towards any majority: those are
//! structural, not rules it must remember to follow.
//!
//! One difference from Kafka: a voter answers an observer with **committed** entries only
//! (Kafka's leader sends its whole log and the high watermark, and the observer truncates when
//! the leader's log diverges). Committed entries never change, so an observer's log is always a
//! prefix of the quorum's committed log and needs no truncation; the cost is that an entry
//! reaches observers one round after it committed, which the metadata consumers (topics,
//! brokers' fencing) tolerate: they only act on committed entries anyway.
//!
//! Durability mirrors the voter's ([`crate::quorum`]): the node writes each fetched range to its
//! [`MemStorage`] (entries and a hard state whose commit is the last of them) and emits
//! [`Output::Persist`] before the [`Output::Committed`] of the same entries, so a driver that
//! stores before it applies never applies what a restart would forget.

use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
use raft::storage::MemStorage;
use raft::Storage;

use crate::quorum::{codec, Output, QuorumStatus};
use crate::ControllerError;

/// A fetch larger than this many bytes of entries is cut (at least one entry is always sent).
pub const DEFAULT_FETCH_MAX_BYTES: u32 = 1024 * 1024;
/// The most bytes of entries a voter puts in one answer, whatever the observer asks (a bound
/// well under the transport's 8 MiB frames; at least one entry always goes).
pub const MAX_FETCH_BYTES: u32 = 4 * 1024 * 1024;
/// The most entries a fetch answer may carry, whatever their size: a bound for decoding.
pub const MAX_FETCH_ENTRIES: u32 = 64 * 1024;

/// An observer's fetch: the entries from `from_index` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The first index wanted (the observer's last stored index plus one).
    pub from_index: u64,
    /// The answer's entries stop once they exceed this many bytes.
    pub max_bytes: u32,
    /// A ReadIndex the observer waits for (its tag; 0: none): the leader asks Raft's ReadIndex
    /// (confirmed by a heartbeat round) on its behalf and answers with [`FetchAnswer::read`].
    pub read: u64,
}

/// A voter's answer to an observer's fetch.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchAnswer {
    /// The leader the voter knows in `term` (0: none).
    pub leader: u64,
    /// The voter's current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// The voter's commit index.
    pub commit: u64,
    /// The answer to the observer's ReadIndex `(tag, index)`: the leader's commit index once a
    /// heartbeat round confirmed its leadership, so it covers everything the quorum committed
    /// before the request (what a follower's or a deposed leader's commit index may not).
    pub read: Option<(u64, u64)>,
    /// Committed entries from the requested index on, contiguous, all at or below `commit`.
    pub entries: Vec<Entry>,
}

fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], ControllerError> {
    if b.len() < n {
        return Err(ControllerError::Codec("fetch frame cut short".into()));
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn get_u64(b: &mut &[u8]) -> Result<u64, ControllerError> {
    let mut a = [0u8; 8];
    a.copy_from_slice(take(b, 8)?);
    Ok(u64::from_be_bytes(a))
}

fn get_u32(b: &mut &[u8]) -> Result<u32, ControllerError> {
    let mut a = [0u8; 4];
    a.copy_from_slice(take(b, 4)?);
    Ok(u32::from_be_bytes(a))
}

impl FetchRequest {
    /// `u64 BE from_index`, `u32 BE max_bytes`, `u64 BE read`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(20);
        put_u64(&mut b, self.from_index);
        b.extend_from_slice(&self.max_bytes.to_be_bytes());
        put_u64(&mut b, self.read);
        b
    }

    /// Decodes exactly one request; anything else is an error.
    pub fn decode(mut b: &[u8]) -> Result<FetchRequest, ControllerError> {
        let from_index = get_u64(&mut b)?;
        let max_bytes = get_u32(&mut b)?;
        let read = get_u64(&mut b)?;
        if !b.is_empty() {
            return Err(ControllerError::Codec(
                "trailing bytes after a fetch".into(),
            ));
        }
        Ok(FetchRequest {
            from_index,
            max_bytes,
            read,
        })
    }
}

impl FetchAnswer {
    /// `u64 BE leader, term, commit`, `u8` 1 and `u64 BE` tag and index when `read` is set (else
    /// `u8` 0), `u32 BE count`, then per entry `u32 BE length` and the entry in raft-rs's
    /// protobuf encoding.
    pub fn encode(&self) -> Result<Vec<u8>, ControllerError> {
        let mut b = Vec::new();
        put_u64(&mut b, self.leader);
        put_u64(&mut b, self.term);
        put_u64(&mut b, self.commit);
        match self.read {
            Some((tag, index)) => {
                b.push(1);
                put_u64(&mut b, tag);
                put_u64(&mut b, index);
            }
            None => b.push(0),
        }
        b.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            let body = codec::encode(e)?;
            b.extend_from_slice(&(body.len() as u32).to_be_bytes());
            b.extend_from_slice(&body);
        }
        Ok(b)
    }

    /// Decodes exactly one answer. Counts and lengths are checked against the bytes left
    /// before anything is allocated.
    pub fn decode(mut b: &[u8]) -> Result<FetchAnswer, ControllerError> {
        let leader = get_u64(&mut b)?;
        let term = get_u64(&mut b)?;
        let commit = get_u64(&mut b)?;
        let read = match take(&mut b, 1)?[0] {
            0 => None,
            1 => Some((get_u64(&mut b)?, get_u64(&mut b)?)),
            _ => return Err(ControllerError::Codec("bad read flag".into())),
        };
        let n = get_u32(&mut b)?;
        // Every entry takes at least its 4-byte length.
        if n > MAX_FETCH_ENTRIES || n as usize > b.len() / 4 {
            return Err(ControllerError::Codec(format!("{n} entries in a fetch")));
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = get_u32(&mut b)? as usize;
            entries.push(codec::decode_entry(take(&mut b, len)?)?);
        }
        if !b.is_empty() {
            return Err(ControllerError::Codec(
                "trailing bytes after a fetch answer".into(),
            ));
        }
        Ok(FetchAnswer {
            leader,
            term,
            commit,
            read,
            entries,
        })
    }
}

/// An observer's settings, in ticks of the driver's clock.
#[derive(Clone, Debug)]
pub struct ObserverConfig {
    /// This node's id (`node.id`, not one of the voters).
    pub id: u64,
    /// The voters (`controller.quorum.voters`), which it fetches from.
    pub voters: Vec<u64>,
    /// Ticks without an answer before the fetch is given up and the next voter is tried
    /// (Kafka's `controller.quorum.fetch.timeout.ms` on an observer).
    pub fetch_timeout_ticks: u64,
    /// Bytes of entries asked per fetch.
    pub max_bytes: u32,
}

/// One observer.
pub struct ObserverNode {
    config: ObserverConfig,
    storage: MemStorage,
    /// The last index stored (and handed out as committed): every stored entry is committed.
    last: u64,
    /// The leader known in `term`.
    leader: Option<u64>,
    term: u64,
    /// The highest commit index heard of.
    commit: u64,
    /// The voter fetched from: the leader once known.
    target: u64,
    /// The tick the outstanding fetch was sent at.
    in_flight: Option<u64>,
    now: u64,
    /// A ReadIndex asked and not answered yet (its tag).
    read: Option<u64>,
}

impl ObserverNode {
    /// An observer over durable `storage` (empty on first start). What it holds was applied by
    /// the driver at start; only later entries are handed out.
    pub fn restart(
        config: ObserverConfig,
        storage: MemStorage,
    ) -> Result<ObserverNode, ControllerError> {
        if config.voters.is_empty() || config.voters.contains(&config.id) {
            return Err(ControllerError::InvalidArgument {
                what: "observer id (a voter, or no voters)",
                value: config.id as i64,
            });
        }
        let last = storage.last_index()?;
        let term = storage.initial_state()?.hard_state.term;
        let target = config.voters[(config.id as usize) % config.voters.len()];
        Ok(ObserverNode {
            config,
            storage,
            last,
            leader: None,
            term,
            commit: last,
            target,
            in_flight: None,
            now: 0,
            read: None,
        })
    }

    /// A first-start observer with empty storage.
    pub fn new(config: ObserverConfig) -> Result<ObserverNode, ControllerError> {
        let storage =
            MemStorage::new_with_conf_state(ConfState::from((config.voters.clone(), vec![])));
        ObserverNode::restart(config, storage)
    }

    /// The durable storage.
    pub fn storage(&self) -> MemStorage {
        self.storage.clone()
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The leader learnt from the voters' answers, if any.
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// The highest term heard of.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The last index stored and handed out.
    pub fn last_index(&self) -> u64 {
        self.last
    }

    /// What DescribeQuorum would say from here: no voter's progress is known.
    pub fn status(&self) -> QuorumStatus {
        QuorumStatus {
            id: self.config.id,
            leader: self.leader,
            term: self.term,
            commit: self.commit.min(self.last),
            last_index: self.last,
            voters: self.config.voters.iter().map(|&v| (v, None)).collect(),
            observers: Vec::new(),
        }
    }

    /// One tick: sends a fetch when none is outstanding, gives up one that went unanswered for
    /// the fetch timeout (the voter is down, or the message was lost) and tries the next voter.
    pub fn tick(&mut self) -> Vec<Output> {
        self.now += 1;
        if let Some(sent) = self.in_flight {
            if self.now.saturating_sub(sent) < self.config.fetch_timeout_ticks {
                return Vec::new();
            }
            // The voter did not answer: whatever it led may be over. Forget the leader and
            // try the next voter, which names the leader if it knows one.
            self.in_flight = None;
            self.leader = None;
            let i = self
                .config
                .voters
                .iter()
                .position(|&v| v == self.target)
                .unwrap_or(0);
            self.target = self.config.voters[(i + 1) % self.config.voters.len()];
        }
        vec![self.fetch()]
    }

    fn fetch(&mut self) -> Output {
        self.in_flight = Some(self.now);
        Output::Fetch {
            to: self.target,
            request: FetchRequest {
                from_index: self.last + 1,
                max_bytes: self.config.max_bytes,
                read: self.read.unwrap_or(0),
            },
        }
    }

    /// Asks for the quorum's commit index as the leader confirms it (Raft's ReadIndex, for the
    /// start-up catch-up): every fetch carries the request until the leader answers it, and
    /// the answer becomes an [`Output::ReadIndex`]. `ctx` must not be 0.
    pub fn read_index(&mut self, ctx: u64) -> Vec<Output> {
        if ctx != 0 {
            self.read = Some(ctx);
        }
        Vec::new()
    }

    /// The answer of voter `from`. Entries that do not continue the stored log exactly (a
    /// late answer to an older fetch) are ignored; the answer's leader and term are learnt
    /// when they are not older than what is known. An answer with entries is followed at once
    /// by the next fetch, so a far-behind observer catches up at the network's pace and an
    /// up-to-date one waits at the voter for the next commit.
    pub fn on_answer(&mut self, from: u64, answer: FetchAnswer) -> Vec<Output> {
        if !self.config.voters.contains(&from) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if answer.term > self.term || (answer.term == self.term && self.leader.is_none()) {
            self.term = answer.term;
            self.leader = (answer.leader != 0).then_some(answer.leader);
        }
        if let Some(l) = self.leader {
            if self.config.voters.contains(&l) {
                self.target = l;
            }
        }
        self.commit = self.commit.max(answer.commit);
        let got = !answer.entries.is_empty();
        let mut entries = Vec::new();
        let mut next = self.last + 1;
        let mut prev_term = self.storage.term(self.last).unwrap_or(0);
        for e in answer.entries {
            if e.index != next || e.index > answer.commit || e.term < prev_term {
                break;
            }
            next += 1;
            prev_term = e.term;
            entries.push(e);
        }
        if !entries.is_empty() {
            let last = next - 1;
            let hard_state = HardState {
                term: self.term,
                vote: 0,
                commit: last,
                ..Default::default()
            };
            let store = &self.storage;
            if let Err(e) = store.wl().append(&entries) {
                debug_assert!(false, "contiguous entries refused by the storage: {e}");
                return out;
            }
            store.wl().set_hardstate(hard_state.clone());
            self.last = last;
            out.push(Output::Persist {
                snapshot: None,
                entries: entries.clone(),
                hard_state: Some(hard_state),
            });
            for e in entries {
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
        if let (Some((tag, index)), Some(ctx)) = (answer.read, self.read) {
            if tag == ctx {
                self.read = None;
                out.push(Output::ReadIndex { ctx, index });
            }
        }
        // The answer to the outstanding fetch (a read's answer is extra): fetch again at once
        // while behind or after new entries, since the voter holds a fetch that finds nothing
        // new until something commits (the long poll); after an empty answer, at the next tick.
        if answer.read.is_none() && self.in_flight.is_some() {
            self.in_flight = None;
            if got || self.last < self.commit {
                out.push(self.fetch());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
